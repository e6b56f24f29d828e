// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The tiering runtime on this host (one node, no tiermm.ko, no PMU):
 *  - backend choice: "auto" fails with ENOTSUP naming why each backend is
 *    unusable, a forced unusable backend fails without falling back, an
 *    unknown name is EINVAL;
 *  - bad options: documented errors before anything runs (and nothing moves);
 *  - the engine and the runtime's threads against a fake world (a test
 *    backend delivering synthetic observations, an environment simulating
 *    a fast and a slow tier page by page over a reserved region, the
 *    topology of a captured three-tier machine): the hot set is promoted
 *    within the budget, cold pages are demoted to make room, hysteresis
 *    keeps a placed range against a slightly denser one, pins and
 *    NO_MIGRATE are never moved against, HOT hints bias, a budget change
 *    takes effect at the next epoch, rate limit and CPU quota hold, stop()
 *    is prompt, the application's calls never wait for an epoch, a fork
 *    child has no runtime, the managed process's exit ends the runtime;
 *  - place.c's mover on real memory: windows capped by the pacer, only
 *    present pages walked.
 * Run under ASan too.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "internal.h"
#include "engine.h"

#define MIB ((uint64_t)1 << 20)
#define PG ((uint64_t)4096)
#define REGION (256 * MIB)
#define NPAGES (REGION / PG)
#define NODE_FAST 2		/* fakeheteromemtiers: tier 0 = nodes 2, 4 */
#define NODE_SLOW 6		/* tier 2 = nodes 6, 8, 9 */
#define ABSENT 0xff
#define TIER0_BYTES (1024 * MIB)	/* nodes 2 and 4: 512 MiB each */

static struct tiermm_topo *topo;
static struct tiermm_runtime *running;	/* stopped by teardown if a test fails */

/* ---- the fake world ---------------------------------------------------- */

struct hot {
	uint64_t off, len;
	uint32_t hits;
};

struct guard {
	uint64_t off, len;
	int never_to;		/* node the pages must never move to; -1: any move */
};

static struct world {
	pthread_mutex_t lock;
	char *base;
	uint8_t node[NPAGES];
	uint64_t fast_pages, max_fast_pages;
	uint64_t tier_free;
	struct hot hot[4];
	int nhot;
	unsigned int fail_poll;	/* poll fails with ESRCH from this poll on */
	uint64_t polls;
	struct guard guard[4];
	int nguard;
	int violations;
	char violation[256];
	unsigned int window_sleep_us, window_spin_us;
	unsigned int mappings_spin_us;	/* CPU of each mappings() call */
	uint64_t moved_pages, move_calls, windows;
	uint64_t max_window_bytes;
} W = { .lock = PTHREAD_MUTEX_INITIALIZER };

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* Reset the world: every page on node n (ABSENT: none present). */
static void world_reset(uint8_t n)
{
	pthread_mutex_lock(&W.lock);
	memset(W.node, n, sizeof(W.node));
	W.fast_pages = W.max_fast_pages = n == NODE_FAST ? NPAGES : 0;
	W.tier_free = 512 * MIB;
	W.nhot = 0;
	W.fail_poll = 0;
	W.polls = 0;
	W.nguard = 0;
	W.violations = 0;
	W.violation[0] = '\0';
	W.window_sleep_us = W.window_spin_us = 0;
	W.mappings_spin_us = 0;
	W.moved_pages = W.move_calls = W.windows = W.max_window_bytes = 0;
	pthread_mutex_unlock(&W.lock);
}

static void set_hot(int i, uint64_t off, uint64_t len, uint32_t hits)
{
	pthread_mutex_lock(&W.lock);
	W.hot[i] = (struct hot){ off, len, hits };
	if (W.nhot <= i)
		W.nhot = i + 1;
	pthread_mutex_unlock(&W.lock);
}

/* Pages of [off, off + len) on node n. */
static uint64_t pages_on(uint64_t off, uint64_t len, uint8_t n)
{
	uint64_t c = 0;

	pthread_mutex_lock(&W.lock);
	for (uint64_t i = off / PG; i < (off + len) / PG; i++)
		c += W.node[i] == n;
	pthread_mutex_unlock(&W.lock);
	return c;
}

static int env_open(void *arg, const struct tiermm__engine_cfg *cfg, void **env)
{
	(void)cfg;
	*env = arg;
	return 0;
}

static void env_close(void *env)
{
	(void)env;
}

static void spin_us(unsigned int us);

static int env_mappings(void *env, bool residency, struct tiermm__mapping **out,
			size_t *n)
{
	struct tiermm__mapping *m = malloc(sizeof(*m));

	(void)env;
	(void)residency;	/* always given: the fake's residency is free */
	if (!m)
		return -ENOMEM;
	/* The cost of reading an address space (the engine's epoch work) */
	if (W.mappings_spin_us)
		spin_us(W.mappings_spin_us);
	pthread_mutex_lock(&W.lock);
	m->start = (uint64_t)(uintptr_t)W.base;
	m->end = m->start + REGION;
	m->fast = W.fast_pages * PG;
	m->slow = 0;
	for (uint64_t i = 0; i < NPAGES; i++)
		m->slow += W.node[i] == NODE_SLOW;
	m->slow *= PG;
	m->other = 0;
	pthread_mutex_unlock(&W.lock);
	*out = m;
	*n = 1;
	return 0;
}

static void env_epoch(void *env)
{
	(void)env;
}

static void spin_us(unsigned int us)
{
	uint64_t end = now_ns() + us * 1000ULL;
	volatile uint64_t x = 0;

	while (now_ns() < end)
		x++;
}

static int env_move(void *env, uint64_t start, uint64_t end, int tier,
		    struct tiermm__move_ctl *ctl, struct tiermm_move_result *r)
{
	uint8_t target = tier == 0 ? NODE_FAST : NODE_SLOW;
	uint64_t a = start, base = (uint64_t)(uintptr_t)W.base, counted;

	(void)env;
	r->pages = (end - start) / PG;
	pthread_mutex_lock(&W.lock);
	W.move_calls++;
	pthread_mutex_unlock(&W.lock);
	if (start < base || end > base + REGION || start % PG || end % PG) {
		pthread_mutex_lock(&W.lock);
		W.violations++;
		snprintf(W.violation, sizeof(W.violation), "move outside the region");
		pthread_mutex_unlock(&W.lock);
		return -EFAULT;
	}
	while (a < end) {
		uint64_t cap = ctl && ctl->window ? ctl->window(ctl->ctx, r) : UINT64_MAX;
		uint64_t take = (end - a) / PG;

		if (!cap) {
			ctl->stopped = true;
			break;
		}
		if (take > 512)
			take = 512;
		if (take > cap / PG)
			take = cap / PG;
		if (!take) {
			ctl->stopped = true;
			break;
		}
		pthread_mutex_lock(&W.lock);
		W.windows++;
		if (take * PG > W.max_window_bytes)
			W.max_window_bytes = take * PG;
		for (uint64_t i = (a - base) / PG; i < (a - base) / PG + take; i++) {
			uint8_t n = W.node[i];

			if (n == ABSENT) {
				r->not_present++;
				continue;
			}
			if (n == target) {
				r->already_there++;
				continue;
			}
			for (int g = 0; g < W.nguard; g++) {
				const struct guard *gd = &W.guard[g];

				if (i * PG >= gd->off && i * PG < gd->off + gd->len &&
				    (gd->never_to < 0 || gd->never_to == target)) {
					W.violations++;
					snprintf(W.violation, sizeof(W.violation),
						 "page at offset %" PRIu64 " MiB moved to node %d (guard %d)",
						 i * PG / MIB, target, g);
				}
			}
			W.node[i] = target;
			r->moved++;
			W.moved_pages++;
			if (n == NODE_FAST) {
				W.fast_pages--;
				W.tier_free += PG;
			}
			if (target == NODE_FAST) {
				W.fast_pages++;
				W.tier_free -= W.tier_free >= PG ? PG : W.tier_free;
			}
			if (ctl && ctl->from_nodes && tiermm__bit_test(ctl->from_nodes, n))
				ctl->moved_from++;
		}
		if (W.fast_pages > W.max_fast_pages)
			W.max_fast_pages = W.fast_pages;
		pthread_mutex_unlock(&W.lock);
		if (W.window_sleep_us)
			usleep(W.window_sleep_us);
		if (W.window_spin_us)
			spin_us(W.window_spin_us);
		a += take * PG;
	}
	if (ctl)
		ctl->resume = a;
	counted = r->moved + r->already_there + r->not_present + r->failed;
	r->skipped = r->pages - counted;
	return 0;
}

static uint64_t env_tier_free(void *env, int tier)
{
	uint64_t f;

	(void)env;
	(void)tier;
	pthread_mutex_lock(&W.lock);
	f = W.tier_free;
	pthread_mutex_unlock(&W.lock);
	return f;
}

/* Status queries (the engine asks where NO_MIGRATE memory is). */
static int env_where(void *env, const uint64_t *addrs, size_t n, uint8_t *cls)
{
	uint64_t base = (uint64_t)(uintptr_t)W.base;

	(void)env;
	pthread_mutex_lock(&W.lock);
	for (size_t j = 0; j < n; j++) {
		uint8_t nd = addrs[j] >= base && addrs[j] < base + REGION ?
			     W.node[(addrs[j] - base) / PG] : ABSENT;

		cls[j] = nd == NODE_FAST ? TIERMM__WHERE_FAST :
			 nd == NODE_SLOW ? TIERMM__WHERE_SLOW : TIERMM__WHERE_OTHER;
	}
	pthread_mutex_unlock(&W.lock);
	return 0;
}

static const struct tiermm__env_ops fake_env = {
	.where = env_where,
	.open = env_open,
	.close = env_close,
	.mappings = env_mappings,
	.epoch = env_epoch,
	.move = env_move,
	.tier_free = env_tier_free,
};

/* ---- the test backend ------------------------------------------------ */

struct tiermm__backend {
	struct tiermm__backend_stats st;
};

static int tb_usable(const struct tiermm__backend_cfg *cfg, char *why, size_t len)
{
	(void)cfg;
	snprintf(why, len, "test: synthetic observations");
	return 1;
}

static int tb_open(const struct tiermm__backend_cfg *cfg, struct tiermm__backend **b)
{
	(void)cfg;
	*b = calloc(1, sizeof(**b));
	return *b ? 0 : -ENOMEM;
}

static int tb_poll(struct tiermm__backend *b, tiermm__obs_sink sink, void *ctx)
{
	struct tiermm__obs obs[4];
	int n = 0;

	pthread_mutex_lock(&W.lock);
	W.polls++;
	if (W.fail_poll && W.polls >= W.fail_poll) {
		pthread_mutex_unlock(&W.lock);
		return tiermm__fail(ESRCH, "test backend: the process exited");
	}
	for (int i = 0; i < W.nhot; i++) {
		if (!W.hot[i].len || !W.hot[i].hits)
			continue;
		obs[n++] = (struct tiermm__obs){
			.addr = (uint64_t)(uintptr_t)W.base + W.hot[i].off,
			.weight = (uint32_t)(W.hot[i].len / PG),
			.hits = W.hot[i].hits,
			.flags = TIERMM__OBS_RANGE,
			.time_ns = now_ns(),
		};
	}
	pthread_mutex_unlock(&W.lock);
	b->st.polls++;
	b->st.observations += (uint64_t)n;
	return n ? sink(obs, (size_t)n, ctx) : 0;
}

static uint64_t tb_cpu_ns(struct tiermm__backend *b)
{
	(void)b;
	return 0;
}

static void tb_stats(struct tiermm__backend *b, struct tiermm__backend_stats *s)
{
	*s = b->st;
}

static void tb_close(struct tiermm__backend *b)
{
	free(b);
}

static const struct tiermm__backend_ops test_backend = {
	.name = "test",
	.usable = tb_usable,
	.open = tb_open,
	.poll = tb_poll,
	.cpu_ns = tb_cpu_ns,
	.stats = tb_stats,
	.close = tb_close,
};

/* ---- helpers ------------------------------------------------------------ */

static int setup(void **state)
{
	(void)state;
	tiermm__runtime_set_test_backend(&test_backend);
	tiermm__runtime_set_test_env(&fake_env, &W);
	tiermm__hints_reset();
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	if (running)
		tiermm_runtime_stop(running);
	running = NULL;
	tiermm__runtime_set_test_backend(NULL);
	tiermm__runtime_set_test_env(NULL, NULL);
	tiermm__hints_reset();
	return 0;
}

static struct tiermm_runtime_stats get_stats(struct tiermm_runtime *rt)
{
	struct tiermm_runtime_stats s = { .sz = sizeof(s) };

	assert_int_equal(tiermm_runtime_stats(rt, &s), 0);
	return s;
}

static struct tiermm_runtime *start_fake(uint64_t budget, unsigned int flags,
					 double quota, double rate)
{
	TIERMM_OPTS(tiermm_runtime_opts, o, .backend = "test", .budget_bytes = budget,
		    .epoch_ms = 20, .topo = topo, .flags = flags, .cpu_quota = quota,
		    .rate_limit_mib_s = rate);
	struct tiermm_runtime *rt = NULL;
	int ret = tiermm_runtime_start(&o, &rt);

	if (ret)
		print_message("start: %s\n", tiermm_errmsg());
	assert_int_equal(ret, 0);
	assert_non_null(rt);
	running = rt;
	return rt;
}

static void stop_fake(struct tiermm_runtime *rt)
{
	assert_int_equal(tiermm_runtime_stop(rt), 0);
	if (running == rt)
		running = NULL;
}

/* The statistics of an epoch that ended after now (they are published at
 * the end of each epoch). */
static struct tiermm_runtime_stats next_stats(struct tiermm_runtime *rt)
{
	uint64_t e0 = get_stats(rt).epochs;

	while (get_stats(rt).epochs < e0 + 2)
		sleep_ms(2);
	return get_stats(rt);
}

#define FREE_RUN (TIERMM_RUNTIME_NO_RATE_LIMIT | TIERMM_RUNTIME_NO_CPU_QUOTA)

/* Wait up to ms for pages_on(off, len, n) == len / PG; the epochs it took. */
static long wait_placed(struct tiermm_runtime *rt, uint64_t off, uint64_t len, uint8_t n,
			unsigned int ms)
{
	uint64_t t_end = now_ns() + ms * 1000000ULL;

	while (now_ns() < t_end) {
		if (pages_on(off, len, n) == len / PG)
			return (long)get_stats(rt).epochs;
		sleep_ms(5);
	}
	return -1;
}

static void assert_no_violation(void)
{
	pthread_mutex_lock(&W.lock);
	if (W.violations)
		print_message("violation: %s\n", W.violation);
	assert_int_equal(W.violations, 0);
	pthread_mutex_unlock(&W.lock);
}

/* ---- backend choice on this host -------------------------------------- */

static void test_auto_host(void **state)
{
	struct tiermm__backend_cfg cfg = { 0 };
	const struct tiermm__backend_ops *ops;
	struct tiermm_runtime *rt = (void *)1;
	char why[1024];
	int ret;

	(void)state;
	tiermm__runtime_set_test_env(NULL, NULL);
	ret = tiermm__backend_auto(&cfg, &ops, why, sizeof(why));
	if (ret == -ENODEV) {
		/* perf, scan and damon all unusable here: start says why, each. */
		ret = tiermm_runtime_start(NULL, &rt);
		assert_int_equal(ret, -ENOTSUP);
		assert_int_equal(errno, ENOTSUP);
		assert_null(rt);
		print_message("  auto: %s\n", tiermm_errmsg());
		assert_non_null(strstr(tiermm_errmsg(), "no hotness backend is usable"));
		assert_non_null(strstr(tiermm_errmsg(), "perf: "));
		assert_non_null(strstr(tiermm_errmsg(), "scan: "));
		assert_non_null(strstr(tiermm_errmsg(), "damon: "));
	} else {
		print_message("  auto would pick %s here: %s\n", ops->name, why);
		ret = tiermm_runtime_start(NULL, &rt);
		if (!ret)
			tiermm_runtime_stop(rt);
		else
			print_message("  start: %s\n", tiermm_errmsg());
	}
	/* A forced backend that is unusable fails loudly, no fallback. */
	for (int i = 0; tiermm__backends[i]; i++) {
		TIERMM_OPTS(tiermm_runtime_opts, o, .backend = tiermm__backends[i]->name);

		if (tiermm__backends[i]->usable(&cfg, why, sizeof(why)) == 1)
			continue;
		rt = (void *)1;
		assert_int_equal(tiermm_runtime_start(&o, &rt), -ENOTSUP);
		assert_null(rt);
		assert_non_null(strstr(tiermm_errmsg(), "is not usable (no fallback)"));
		print_message("  %s: %s\n", o.backend, tiermm_errmsg());
	}
	{
		TIERMM_OPTS(tiermm_runtime_opts, o, .backend = "pebs");

		assert_int_equal(tiermm_runtime_start(&o, &rt), -EINVAL);
		assert_non_null(strstr(tiermm_errmsg(), "unknown hotness backend 'pebs'"));
	}
	/* The test backend, the real world and the live one-tier machine. */
	{
		TIERMM_OPTS(tiermm_runtime_opts, o, .backend = "test");
		struct tiermm_topo *live;
		int nt;

		assert_int_equal(tiermm_topo_load(NULL, &live), 0);
		nt = tiermm_topo_nr_tiers(live);
		tiermm_topo_free(live);
		ret = tiermm_runtime_start(&o, &rt);
		if (nt == 1) {
			assert_int_equal(ret, -ENOTSUP);
			assert_non_null(strstr(tiermm_errmsg(), "one memory tier"));
		} else if (!ret) {
			tiermm_runtime_stop(rt);
		}
	}
	/* The real world with a captured machine's topology: its nodes are not here. */
	{
		TIERMM_OPTS(tiermm_runtime_opts, o, .backend = "test", .topo = topo);

		ret = tiermm_runtime_start(&o, &rt);
		assert_int_equal(ret, -ENODEV);
		print_message("  captured topology, real world: %s\n", tiermm_errmsg());
	}
	tiermm__runtime_set_test_env(&fake_env, &W);
}

/* ---- options ------------------------------------------------------------- */

static void expect_start_error(const struct tiermm_runtime_opts *o, int err, const char *what)
{
	struct tiermm_runtime *rt = (void *)1;
	int ret = tiermm_runtime_start(o, &rt);

	if (ret != err)
		print_message("%s: got %d (%s)\n", what, ret, tiermm_errmsg());
	assert_int_equal(ret, err);
	assert_int_equal(errno, -err);
	assert_null(rt);
}

static void test_bad_opts(void **state)
{
	(void)state;
	world_reset(NODE_SLOW);
	{
		TIERMM_OPTS(tiermm_runtime_opts, o, .backend = "test", .topo = topo, .fast_tier = 3);
		expect_start_error(&o, -ENOENT, "fast tier 3");
		assert_non_null(strstr(tiermm_errmsg(), "tier 3 does not exist"));
	}
	{
		TIERMM_OPTS(tiermm_runtime_opts, o, .backend = "test", .topo = topo, .slow_tier = 7);
		expect_start_error(&o, -ENOENT, "slow tier 7");
	}
	{
		TIERMM_OPTS(tiermm_runtime_opts, o, .backend = "test", .topo = topo, .fast_tier = -1);
		expect_start_error(&o, -ENOENT, "fast tier -1");
	}
	{
		TIERMM_OPTS(tiermm_runtime_opts, o, .backend = "test", .topo = topo, .fast_tier = 2);
		expect_start_error(&o, -EINVAL, "fast tier = slow tier");
	}
	{
		TIERMM_OPTS(tiermm_runtime_opts, o, .backend = "test", .topo = topo,
			    .fast_tier = 2, .slow_tier = 1);
		expect_start_error(&o, -EINVAL, "fast tier slower than the slow tier");
	}
	{
		TIERMM_OPTS(tiermm_runtime_opts, o, .backend = "test", .topo = topo,
			    .budget_bytes = TIER0_BYTES + 1);
		expect_start_error(&o, -EINVAL, "budget larger than the tier");
		assert_non_null(strstr(tiermm_errmsg(), "more than the fast tier"));
		print_message("  %s\n", tiermm_errmsg());
	}
	{
		TIERMM_OPTS(tiermm_runtime_opts, o, .backend = "test", .topo = topo,
			    .budget_share = 1.5);
		expect_start_error(&o, -EINVAL, "share 1.5");
	}
	{
		TIERMM_OPTS(tiermm_runtime_opts, o, .backend = "test", .topo = topo,
			    .backoff_max = 1025);
		expect_start_error(&o, -EINVAL, "backoff_max 1025");
		assert_non_null(strstr(tiermm_errmsg(), "backoff_max 1025 is more than 1024"));
	}
	{
		TIERMM_OPTS(tiermm_runtime_opts, o, .backend = "test", .topo = topo,
			    .budget_share = NAN);
		expect_start_error(&o, -EINVAL, "share NaN");
	}
	{
		TIERMM_OPTS(tiermm_runtime_opts, o, .backend = "test", .topo = topo,
			    .budget_share = 0.2, .budget_bytes = MIB);
		expect_start_error(&o, -EINVAL, "share and bytes");
	}
	{
		TIERMM_OPTS(tiermm_runtime_opts, o, .backend = "test", .topo = topo, .epoch_ms = 5);
		expect_start_error(&o, -EINVAL, "epoch 5 ms");
	}
	{
		TIERMM_OPTS(tiermm_runtime_opts, o, .backend = "test", .topo = topo,
			    .rate_limit_mib_s = -1);
		expect_start_error(&o, -EINVAL, "negative rate");
	}
	{
		TIERMM_OPTS(tiermm_runtime_opts, o, .backend = "test", .topo = topo,
			    .rate_limit_mib_s = 5, .flags = TIERMM_RUNTIME_NO_RATE_LIMIT);
		expect_start_error(&o, -EINVAL, "rate with NO_RATE_LIMIT");
	}
	{
		TIERMM_OPTS(tiermm_runtime_opts, o, .backend = "test", .topo = topo,
			    .cpu_quota = INFINITY);
		expect_start_error(&o, -EINVAL, "infinite quota");
	}
	{
		TIERMM_OPTS(tiermm_runtime_opts, o, .backend = "test", .topo = topo, .flags = 1u << 9);
		expect_start_error(&o, -EINVAL, "unknown flag");
	}
	{
		TIERMM_OPTS(tiermm_runtime_opts, o, .backend = "test", .topo = topo, .pid = -3);
		expect_start_error(&o, -EINVAL, "negative pid");
	}
	{
		TIERMM_OPTS(tiermm_runtime_opts, o, .backend = "test", .topo = topo);

		o.sz = sizeof(size_t);
		expect_start_error(&o, -EINVAL, "sz too small");
	}
	{
		struct {
			struct tiermm_runtime_opts o;
			uint64_t extra;
		} big;

		memset(&big, 0, sizeof(big));
		big.o.sz = sizeof(big);
		big.o.backend = "test";
		big.o.topo = topo;
		big.extra = 1;
		expect_start_error(&big.o, -EINVAL, "unknown trailing bytes");
		big.extra = 0;
		{
			struct tiermm_runtime *rt = NULL;

			assert_int_equal(tiermm_runtime_start(&big.o, &rt), 0);
			stop_fake(rt);
		}
	}
	assert_int_equal(tiermm_runtime_start(NULL, NULL), -EINVAL);
	assert_int_equal(tiermm_runtime_stop(NULL), 0);
	{
		struct tiermm_runtime_stats s = { .sz = sizeof(s) };

		assert_int_equal(tiermm_runtime_stats(NULL, &s), -EINVAL);
		assert_int_equal(tiermm_runtime_set_budget(NULL, 0), -EINVAL);
	}
	/* Nothing of the failed starts moved a page. */
	assert_int_equal(W.move_calls, 0);
	assert_int_equal(pages_on(0, REGION, NODE_SLOW), NPAGES);
}

/* ---- placement ----------------------------------------------------------- */

/* A 32 MiB hot set on the slow tier, a 64 MiB budget: promoted, never over. */
static void test_promote_hot(void **state)
{
	struct tiermm_runtime *rt;
	struct tiermm_runtime_stats s;
	long epochs;

	(void)state;
	world_reset(NODE_SLOW);
	set_hot(0, 96 * MIB, 32 * MIB, 8);
	set_hot(1, 0, REGION, 0);
	rt = start_fake(64 * MIB, FREE_RUN, 0, 0);
	epochs = wait_placed(rt, 96 * MIB, 32 * MIB, NODE_FAST, 10000);
	s = next_stats(rt);
	print_message("  hot set promoted after %ld epochs: %" PRIu64 " pages promoted, %" PRIu64
		      " demoted, hot set %" PRIu64 " MiB, budget %" PRIu64 " MiB, %" PRIu64
		      " ranges, %" PRIu64 " samples, backend %s\n",
		      epochs, s.promoted_pages, s.demoted_pages, s.hot_set_bytes / MIB,
		      s.budget_bytes / MIB, s.ranges, s.samples, s.backend);
	assert_true(epochs > 0);
	assert_string_equal(s.backend, "test");
	assert_non_null(strstr(s.backend_why, "test"));
	assert_int_equal(s.state, TIERMM_RUNTIME_RUNNING);
	assert_int_equal(s.budget_bytes, 64 * MIB);
	assert_true(s.hot_set_bytes <= 64 * MIB);
	assert_true(s.hot_set_bytes >= 32 * MIB);
	assert_true(s.promoted_pages >= 32 * MIB / PG);
	assert_int_equal(s.promoted_bytes, s.promoted_pages * PG);
	assert_int_equal(s.moved_bytes, s.promoted_bytes + s.demoted_bytes);
	assert_true(s.samples > 0);
	assert_true(s.ranges > 1);
	assert_true(s.splits > 0);
	assert_int_equal(s.failed_pages, 0);
	/* The budget is never exceeded, and cold pages stay where they are. */
	sleep_ms(200);
	assert_true(W.max_fast_pages * PG <= 64 * MIB);
	assert_int_equal(pages_on(0, 64 * MIB, NODE_SLOW), 64 * MIB / PG);
	stop_fake(rt);
	assert_no_violation();
}

/* Everything first-touched on the fast tier, a 32 MiB budget: cold pages go. */
static void test_budget_demote(void **state)
{
	struct tiermm_runtime *rt;
	struct tiermm_runtime_stats s;
	uint64_t e0, t_end;
	long epochs;

	(void)state;
	world_reset(NODE_FAST);
	/* The last 32 MiB never present. */
	memset(W.node + (REGION - 32 * MIB) / PG, ABSENT, 32 * MIB / PG);
	W.fast_pages -= 32 * MIB / PG;
	set_hot(0, 32 * MIB, 16 * MIB, 8);
	rt = start_fake(32 * MIB, FREE_RUN, 0, 0);
	t_end = now_ns() + 10000000000ULL;
	while (now_ns() < t_end && pages_on(0, REGION, NODE_FAST) > 32 * MIB / PG)
		sleep_ms(5);
	s = next_stats(rt);
	print_message("  demoted to the budget after %" PRIu64 " epochs: %" PRIu64
		      " pages demoted, fast %" PRIu64 " MiB\n",
		      s.epochs, s.demoted_pages, pages_on(0, REGION, NODE_FAST) * PG / MIB);
	assert_true(pages_on(0, REGION, NODE_FAST) * PG <= 32 * MIB);
	assert_int_equal(pages_on(32 * MIB, 16 * MIB, NODE_FAST), 16 * MIB / PG);
	assert_true(s.demoted_pages >= (REGION - 64 * MIB) / PG);
	assert_true(s.resident_bytes == REGION - 32 * MIB);

	/* A smaller budget takes effect from the next epoch on. */
	e0 = get_stats(rt).epochs;
	assert_int_equal(tiermm_runtime_set_budget(rt, 8 * MIB), 0);
	t_end = now_ns() + 10000000000ULL;
	while (now_ns() < t_end && pages_on(0, REGION, NODE_FAST) > 8 * MIB / PG)
		sleep_ms(5);
	s = next_stats(rt);
	print_message("  budget 32 -> 8 MiB: %" PRIu64 " epochs later, fast %" PRIu64 " MiB\n",
		      s.epochs - e0, pages_on(0, REGION, NODE_FAST) * PG / MIB);
	assert_int_equal(s.budget_bytes, 8 * MIB);
	assert_true(pages_on(0, REGION, NODE_FAST) * PG <= 8 * MIB);
	assert_true(s.epochs - e0 <= 8);
	assert_int_equal(pages_on(32 * MIB, 8 * MIB, NODE_FAST) +
			 pages_on(40 * MIB, 8 * MIB, NODE_FAST), 8 * MIB / PG);

	/* As a share of the resident memory. */
	assert_int_equal(tiermm_runtime_set_budget_share(rt, 0.125), 0);
	e0 = get_stats(rt).epochs;
	while (get_stats(rt).epochs < e0 + 2)
		sleep_ms(5);
	s = next_stats(rt);
	assert_int_equal(s.budget_bytes, (uint64_t)(0.125 * (double)(REGION - 32 * MIB)));
	/* Bad budgets change nothing. */
	assert_int_equal(tiermm_runtime_set_budget(rt, TIER0_BYTES + 1), -EINVAL);
	assert_int_equal(tiermm_runtime_set_budget_share(rt, 0), -EINVAL);
	assert_int_equal(tiermm_runtime_set_budget_share(rt, 1.01), -EINVAL);
	assert_int_equal(tiermm_runtime_set_budget_share(rt, NAN), -EINVAL);
	e0 = get_stats(rt).epochs;
	while (get_stats(rt).epochs < e0 + 2)
		sleep_ms(5);
	assert_int_equal(get_stats(rt).budget_bytes, s.budget_bytes);
	/* A zero budget: nothing of the process on the fast tier. */
	assert_int_equal(tiermm_runtime_set_budget(rt, 0), 0);
	epochs = wait_placed(rt, 0, REGION - 32 * MIB, NODE_SLOW, 10000);
	assert_true(epochs > 0);
	stop_fake(rt);
	assert_no_violation();
}

/*
 * The fast tier is full to the budget (or has no free memory) with cold
 * pages: they are demoted as the promotions need room, not all of them.
 */
static void test_make_room(void **state)
{
	struct tiermm_runtime *rt;
	struct tiermm_runtime_stats s;
	long epochs;

	(void)state;
	/* Budget-bound: 32 MiB cold on the fast tier, a 32 MiB budget. */
	world_reset(NODE_SLOW);
	memset(W.node, NODE_FAST, 32 * MIB / PG);
	W.fast_pages = W.max_fast_pages = 32 * MIB / PG;
	set_hot(0, 96 * MIB, 16 * MIB, 8);
	rt = start_fake(32 * MIB, FREE_RUN, 0, 0);
	epochs = wait_placed(rt, 96 * MIB, 16 * MIB, NODE_FAST, 10000);
	s = next_stats(rt);
	stop_fake(rt);
	print_message("  budget-bound: hot set placed at epoch %ld, %" PRIu64 " MiB demoted for room, fast tier at most %" PRIu64 " MiB\n",
		      epochs, s.demoted_bytes / MIB, W.max_fast_pages * PG / MIB);
	assert_true(epochs > 0);
	assert_true(W.max_fast_pages * PG <= 32 * MIB);
	assert_true(s.demoted_bytes >= 16 * MIB);
	assert_true(s.demoted_bytes <= 20 * MIB);
	assert_int_equal(pages_on(0, 32 * MIB, NODE_FAST), 16 * MIB / PG);

	/* Memory-bound: a large budget, but only 4 MiB free on the fast tier. */
	world_reset(NODE_SLOW);
	memset(W.node, NODE_FAST, 32 * MIB / PG);
	W.fast_pages = W.max_fast_pages = 32 * MIB / PG;
	W.tier_free = 4 * MIB;
	set_hot(0, 96 * MIB, 16 * MIB, 8);
	rt = start_fake(256 * MIB, FREE_RUN, 0, 0);
	epochs = wait_placed(rt, 96 * MIB, 16 * MIB, NODE_FAST, 10000);
	s = next_stats(rt);
	stop_fake(rt);
	print_message("  memory-bound: hot set placed at epoch %ld, %" PRIu64 " MiB demoted for room\n",
		      epochs, s.demoted_bytes / MIB);
	assert_true(epochs > 0);
	assert_true(s.demoted_bytes >= 12 * MIB);
	assert_true(s.demoted_bytes <= 16 * MIB);
	assert_true(W.max_fast_pages * PG <= 36 * MIB);
	assert_no_violation();
}

/* Hysteresis: a range 10% denser does not displace; three times denser does. */
static void test_hysteresis(void **state)
{
	struct tiermm_runtime *rt;
	uint64_t moved0;
	long epochs;

	(void)state;
	world_reset(NODE_SLOW);
	set_hot(0, 64 * MIB, 16 * MIB, 10);
	rt = start_fake(16 * MIB, FREE_RUN, 0, 0);
	epochs = wait_placed(rt, 64 * MIB, 16 * MIB, NODE_FAST, 10000);
	assert_true(epochs > 0);
	/* Settle: the tree keeps splitting for a while. */
	sleep_ms(300);
	pthread_mutex_lock(&W.lock);
	moved0 = W.moved_pages;
	pthread_mutex_unlock(&W.lock);
	set_hot(1, 160 * MIB, 16 * MIB, 11);
	sleep_ms(1500);
	print_message("  B 1.1x as dense: %" PRIu64 " pages moved in %" PRIu64 " epochs\n",
		      W.moved_pages - moved0, get_stats(rt).epochs);
	assert_int_equal(pages_on(64 * MIB, 16 * MIB, NODE_FAST), 16 * MIB / PG);
	assert_int_equal(pages_on(160 * MIB, 16 * MIB, NODE_FAST), 0);
	assert_int_equal(W.moved_pages, moved0);
	set_hot(1, 160 * MIB, 16 * MIB, 30);
	epochs = wait_placed(rt, 160 * MIB, 16 * MIB, NODE_FAST, 10000);
	print_message("  B 3x as dense: placed at epoch %ld\n", epochs);
	assert_true(epochs > 0);
	assert_true(pages_on(0, REGION, NODE_FAST) * PG <= 16 * MIB);
	stop_fake(rt);
	assert_no_violation();
}

/* Polls of the test backend in ms of wall time. */
static uint64_t polls_in(unsigned int ms)
{
	uint64_t p0, p1;

	pthread_mutex_lock(&W.lock);
	p0 = W.polls;
	pthread_mutex_unlock(&W.lock);
	sleep_ms(ms);
	pthread_mutex_lock(&W.lock);
	p1 = W.polls;
	pthread_mutex_unlock(&W.lock);
	return p1 - p0;
}

/* Wait up to ms for the pace to reach at least b; the pace reached. */
static unsigned int wait_backoff(struct tiermm_runtime *rt, unsigned int b, unsigned int ms)
{
	uint64_t t_end = now_ns() + ms * 1000000ULL;
	unsigned int cur = get_stats(rt).backoff;

	while (cur < b && now_ns() < t_end) {
		sleep_ms(5);
		cur = get_stats(rt).backoff;
	}
	return cur;
}

/*
 * Settling: once placement is done the pace drops (fewer polls, longer
 * epochs) down to backoff_max; a shift of the hot set, a new budget or a
 * new hint brings the full pace back; backoff_max 1 never slows down.
 */
static void test_settle(void **state)
{
	struct tiermm_runtime *rt;
	struct tiermm_runtime_stats s;
	uint64_t full, slow, w0, t0;
	long epochs;

	(void)state;
	/* backoff_max 1: the full pace throughout. */
	world_reset(NODE_SLOW);
	set_hot(0, 64 * MIB, 16 * MIB, 10);
	{
		TIERMM_OPTS(tiermm_runtime_opts, o, .backend = "test", .budget_bytes = 32 * MIB,
			    .epoch_ms = 20, .topo = topo, .flags = FREE_RUN, .backoff_max = 1);

		assert_int_equal(tiermm_runtime_start(&o, &rt), 0);
		running = rt;
	}
	assert_true(wait_placed(rt, 64 * MIB, 16 * MIB, NODE_FAST, 10000) > 0);
	sleep_ms(500);
	full = polls_in(500);
	s = get_stats(rt);
	assert_int_equal(s.backoff, 1);
	assert_int_equal(s.backoff_epochs, 0);
	assert_true(isnan(s.scan_window_ms));	/* not the scan backend */
	assert_true(s.epochs >= 30);
	stop_fake(rt);
	assert_no_violation();

	/* The default: the pace drops once placed, 8x, 16x, then 32x. */
	world_reset(NODE_SLOW);
	set_hot(0, 64 * MIB, 16 * MIB, 10);
	rt = start_fake(32 * MIB, FREE_RUN, 0, 0);
	epochs = wait_placed(rt, 64 * MIB, 16 * MIB, NODE_FAST, 10000);
	assert_true(epochs > 0);
	assert_int_equal(wait_backoff(rt, 32, 10000), 32);
	slow = polls_in(1300);
	s = get_stats(rt);
	print_message("  placed at epoch %ld, pace 1/%u after %" PRIu64 " epochs (%" PRIu64 " slow); polls %.0f/s at full pace, %.0f/s settled\n",
		      epochs, s.backoff, s.epochs, s.backoff_epochs, full / 0.5, slow / 1.3);
	assert_true(s.backoff_epochs > 0);
	assert_true(slow / 1.3 * 4 < full / 0.5);
	/*
	 * The statistics stay fresh: published every base epoch (20 ms), not
	 * only at the end of a slow one (640 ms): a poll's samples show
	 * within 60 ms.
	 */
	w0 = get_stats(rt).samples;
	pthread_mutex_lock(&W.lock);
	t0 = W.polls;
	pthread_mutex_unlock(&W.lock);
	for (;;) {
		pthread_mutex_lock(&W.lock);
		full = W.polls;	/* (reused) */
		pthread_mutex_unlock(&W.lock);
		if (full != t0)
			break;
		sleep_ms(1);
	}
	sleep_ms(60);
	assert_true(get_stats(rt).samples > w0);

	/* The hot set moves: full pace at the first epoch that moves pages. */
	set_hot(0, 64 * MIB, 16 * MIB, 0);
	set_hot(1, 160 * MIB, 16 * MIB, 40);
	epochs = wait_placed(rt, 160 * MIB, 16 * MIB, NODE_FAST, 10000);
	print_message("  shifted hot set placed at epoch %ld, pace 1/%u\n", epochs,
		      get_stats(rt).backoff);
	assert_true(epochs > 0);
	assert_int_equal(wait_backoff(rt, 32, 10000), 32);

	/* A new budget: taken at the next base epoch, not the next slow one. */
	assert_int_equal(tiermm_runtime_set_budget(rt, 8 * MIB), 0);
	t0 = now_ns();
	while (get_stats(rt).budget_bytes != 8 * MIB && now_ns() - t0 < 5000000000ULL)
		sleep_ms(2);
	print_message("  budget 32 -> 8 MiB in force after %.0f ms (a slow epoch: 640 ms)\n",
		      (double)(now_ns() - t0) / 1e6);
	assert_int_equal(get_stats(rt).budget_bytes, 8 * MIB);
	assert_true(now_ns() - t0 < 320000000ULL);
	/*
	 * And the epochs after it at the full pace, not from the slow
	 * epoch's deadline (the budget came at its start: ~620 ms away).
	 */
	w0 = get_stats(rt).epochs;
	t0 = now_ns();
	while (get_stats(rt).epochs < w0 + 3 && now_ns() - t0 < 5000000000ULL)
		sleep_ms(2);
	print_message("  3 more epochs in %.0f ms (pace 1/%u)\n", (double)(now_ns() - t0) / 1e6,
		      get_stats(rt).backoff);
	assert_true(now_ns() - t0 < 300000000ULL);

	/* A new hint: the same. */
	assert_int_equal(wait_backoff(rt, 32, 10000), 32);
	/* (recorded only: the engine moves the pages, not the call) */
	assert_int_equal(tiermm_hint((char *)W.base + 160 * MIB, 16 * MIB,
				     TIERMM_HINT_PIN_SLOW, TIERMM_HINT_RECORD_ONLY), 0);
	t0 = now_ns();
	while (pages_on(160 * MIB, 16 * MIB, NODE_SLOW) != 16 * MIB / PG &&
	       now_ns() - t0 < 5000000000ULL)
		sleep_ms(2);
	print_message("  PIN_SLOW in force after %.0f ms\n", (double)(now_ns() - t0) / 1e6);
	assert_int_equal(pages_on(160 * MIB, 16 * MIB, NODE_SLOW), 16 * MIB / PG);
	assert_true(now_ns() - t0 < 320000000ULL);
	stop_fake(rt);
	assert_no_violation();
}

/* Pins and NO_MIGRATE under budget pressure; a HOT hint wins a tie. */
static void test_pins(void **state)
{
	struct tiermm_runtime *rt;
	struct tiermm_runtime_stats s;
	char *b = W.base;
	long epochs;

	(void)state;
	world_reset(NODE_SLOW);
	/* R1 PIN_FAST and R2 NO_MIGRATE, both on the fast tier, both cold. */
	memset(W.node + 0, NODE_FAST, 32 * MIB / PG);
	W.fast_pages = 32 * MIB / PG;
	assert_int_equal(tiermm_hint(b, 16 * MIB, TIERMM_HINT_PIN_FAST, TIERMM_HINT_RECORD_ONLY), 0);
	assert_int_equal(tiermm_hint(b + 16 * MIB, 16 * MIB, TIERMM_HINT_NO_MIGRATE, 0), 0);
	/* R3 PIN_SLOW, hot. */
	assert_int_equal(tiermm_hint(b + 64 * MIB, 16 * MIB, TIERMM_HINT_PIN_SLOW,
				     TIERMM_HINT_RECORD_ONLY), 0);
	/* C and D equally hot; D hinted HOT. Room for one of them. */
	assert_int_equal(tiermm_hint(b + 192 * MIB, 16 * MIB, TIERMM_HINT_HOT, 0), 0);
	W.guard[0] = (struct guard){ 0, 16 * MIB, NODE_SLOW };
	W.guard[1] = (struct guard){ 16 * MIB, 16 * MIB, -1 };
	W.guard[2] = (struct guard){ 64 * MIB, 16 * MIB, NODE_FAST };
	W.nguard = 3;
	set_hot(0, 64 * MIB, 16 * MIB, 20);
	set_hot(1, 128 * MIB, 16 * MIB, 5);
	set_hot(2, 192 * MIB, 16 * MIB, 5);
	/* Budget: R1 + R2 (pinned, resident) + 16 MiB. */
	rt = start_fake(48 * MIB, FREE_RUN, 0, 0);
	epochs = wait_placed(rt, 192 * MIB, 16 * MIB, NODE_FAST, 10000);
	sleep_ms(500);
	s = next_stats(rt);
	print_message("  HOT-hinted range placed at epoch %ld; hinted %" PRIu64
		      " MiB, promoted %" PRIu64 ", demoted %" PRIu64 "\n",
		      epochs, s.hinted_bytes / MIB, s.promoted_pages, s.demoted_pages);
	assert_true(epochs > 0);
	assert_int_equal(pages_on(0, 32 * MIB, NODE_FAST), 32 * MIB / PG);
	assert_int_equal(pages_on(64 * MIB, 16 * MIB, NODE_SLOW), 16 * MIB / PG);
	assert_int_equal(pages_on(128 * MIB, 16 * MIB, NODE_FAST), 0);
	assert_int_equal(s.hinted_bytes, 48 * MIB);
	/* R1 and R2 cannot leave the fast tier: the plan has 16 MiB, D's */
	assert_true(s.hot_set_bytes <= 16 * MIB);
	assert_no_violation();

	/* Pages of the PIN_SLOW range that appear on the fast tier are taken back. */
	pthread_mutex_lock(&W.lock);
	memset(W.node + 64 * MIB / PG, NODE_FAST, MIB / PG);
	W.fast_pages += MIB / PG;
	W.nguard = 2;
	pthread_mutex_unlock(&W.lock);
	assert_int_equal(tiermm_hint(b + 64 * MIB, 16 * MIB, TIERMM_HINT_PIN_SLOW,
				     TIERMM_HINT_RECORD_ONLY), 0);
	epochs = wait_placed(rt, 64 * MIB, 16 * MIB, NODE_SLOW, 10000);
	assert_true(epochs > 0);
	stop_fake(rt);
	assert_no_violation();
	tiermm__hints_reset();
}

/* ---- pacing ------------------------------------------------------------- */

static void test_rate_limit(void **state)
{
	struct tiermm_runtime *rt;
	struct tiermm_runtime_stats s;
	uint64_t t0, moved;
	double secs;

	(void)state;
	world_reset(NODE_SLOW);
	set_hot(0, 0, 128 * MIB, 8);
	t0 = now_ns();
	rt = start_fake(256 * MIB, TIERMM_RUNTIME_NO_CPU_QUOTA, 0, 16);
	sleep_ms(1500);
	stop_fake(rt);
	secs = (double)(now_ns() - t0) / 1e9;
	moved = W.moved_pages * PG;
	print_message("  16 MiB/s: %.1f MiB moved in %.2f s, windows of at most %" PRIu64
		      " KiB\n", (double)moved / MIB, secs, W.max_window_bytes / 1024);
	/* One epoch's worth (at least 2 MiB) of tokens to start with. */
	assert_true((double)moved <= 16.0 * MIB * secs + 2 * MIB + PG);
	assert_true(moved > 0);
	(void)s;
}

static void test_cpu_quota(void **state)
{
	struct tiermm_runtime *rt;
	struct tiermm_runtime_stats s;
	double cpu;

	(void)state;
	world_reset(NODE_SLOW);
	set_hot(0, 0, 128 * MIB, 8);
	W.window_spin_us = 2000;	/* 2 ms of CPU a batch */
	rt = start_fake(256 * MIB, TIERMM_RUNTIME_NO_RATE_LIMIT, 0.05, 0);
	sleep_ms(2000);
	s = get_stats(rt);
	stop_fake(rt);
	cpu = s.cpu_sampling_s + s.cpu_classify_s + s.cpu_migrate_s;
	print_message("  quota 0.05: %.3f s CPU in %.2f s (%.1f%%: sampling %.3f, classify %.3f, migrate %.3f), limited %" PRIu64 " times\n",
		      cpu, s.wall_s, 100 * cpu / s.wall_s, s.cpu_sampling_s, s.cpu_classify_s,
		      s.cpu_migrate_s, s.quota_limited);
	assert_true(s.quota_limited > 0);
	/* The quota plus one batch and the starting credit of two epochs. */
	assert_true(cpu <= 0.05 * s.wall_s + 0.002 + 0.05 * 0.04 + 0.02);
	assert_true(s.cpu_migrate_s > 0);
}

/*
 * An epoch whose work before its first move (reading the address space,
 * classifying: here 20 ms of CPU) costs more than the quota's credit can
 * hold (two epochs' worth: 2 ms at 5% and 20 ms epochs; under emulation
 * the real engine's costs 100-600 ms). The runtime used to spend that work
 * every epoch and then refuse every move because the credit was negative:
 * the CPU went to deciding and nothing ever moved. Now each epoch may move
 * for as long as it decided, and the next epoch waits until the debt is
 * paid back, so the hot set is placed and the quota still holds on average.
 */
static void test_cpu_quota_progress(void **state)
{
	struct tiermm_runtime *rt;
	struct tiermm_runtime_stats s;
	uint64_t t0 = now_ns();
	double cpu;
	long epochs;

	(void)state;
	world_reset(NODE_SLOW);
	set_hot(0, 0, 32 * MIB, 8);
	W.mappings_spin_us = 20000;	/* 20 ms of CPU an epoch before moving */
	W.window_spin_us = 500;		/* 0.5 ms a batch of 512 pages */
	rt = start_fake(256 * MIB, TIERMM_RUNTIME_NO_RATE_LIMIT, 0.05, 0);
	epochs = wait_placed(rt, 0, 32 * MIB, NODE_FAST, 6000);
	print_message("  quota 0.05, 20 ms an epoch before moving: hot set placed after %ld epochs, %.2f s; %" PRIu64 " pages moved\n",
		      epochs, (double)(now_ns() - t0) / 1e9, W.moved_pages);
	/* and on (every epoch still costs 20 ms): the average holds */
	while (now_ns() - t0 < 3000000000ULL)
		sleep_ms(10);
	s = get_stats(rt);
	stop_fake(rt);
	cpu = s.cpu_sampling_s + s.cpu_classify_s + s.cpu_migrate_s;
	print_message("  %.3f s CPU in %.2f s (%.1f%%), %" PRIu64 " epochs, limited %" PRIu64 " times\n",
		      cpu, s.wall_s, 100 * cpu / s.wall_s, s.epochs, s.quota_limited);
	assert_true(W.moved_pages > 0);
	assert_true(epochs > 0);
	assert_true(s.quota_limited > 0);
	/*
	 * Within the quota but for what one epoch may borrow: its work before
	 * the first move twice (deciding, then moving as long), one batch,
	 * and the starting credit.
	 */
	assert_true(cpu <= 0.05 * s.wall_s + 2 * 0.020 + 0.001 + 0.002 + 0.01);
	assert_no_violation();
}

/* ---- threads -------------------------------------------------------------- */

static void test_stop_prompt(void **state)
{
	struct tiermm_runtime *rt;
	uint64_t t0;
	double ms;

	(void)state;
	/* While migrating slowly (10 ms a batch). */
	world_reset(NODE_SLOW);
	set_hot(0, 0, 128 * MIB, 8);
	W.window_sleep_us = 10000;
	rt = start_fake(256 * MIB, FREE_RUN, 0, 0);
	while (W.windows < 5)
		sleep_ms(5);
	t0 = now_ns();
	stop_fake(rt);
	ms = (double)(now_ns() - t0) / 1e6;
	print_message("  stop while migrating: %.1f ms\n", ms);
	assert_true(ms < 200);
	/* While waiting for a long epoch. */
	{
		TIERMM_OPTS(tiermm_runtime_opts, o, .backend = "test", .epoch_ms = 60000,
			    .topo = topo);

		world_reset(NODE_SLOW);
		assert_int_equal(tiermm_runtime_start(&o, &rt), 0);
		sleep_ms(50);
		t0 = now_ns();
		stop_fake(rt);
		ms = (double)(now_ns() - t0) / 1e6;
		print_message("  stop during a 60 s epoch: %.1f ms\n", ms);
		assert_true(ms < 200);
	}
}

struct prober {
	struct tiermm_runtime *rt;
	volatile int stop;
	uint64_t calls, max_ns, slow, very_slow;
};

static void *probe_thread(void *arg)
{
	struct prober *p = arg;

	while (!p->stop) {
		struct tiermm_runtime_stats s = { .sz = sizeof(s) };
		uint64_t t0 = now_ns(), d;

		if (tiermm_runtime_stats(p->rt, &s))
			break;
		if (p->calls % 64 == 0)
			tiermm_runtime_set_budget(p->rt, 64 * MIB);
		d = now_ns() - t0;
		if (d > p->max_ns)
			p->max_ns = d;
		p->slow += d > 1000000;
		p->very_slow += d > 25000000;
		p->calls++;
	}
	return NULL;
}

/* The application's calls never wait for the engine, however slow it is. */
static void test_no_blocking(void **state)
{
	struct prober p = { 0 };
	pthread_t thr;
	uint64_t epochs;

	(void)state;
	world_reset(NODE_SLOW);
	set_hot(0, 0, 128 * MIB, 8);
	set_hot(1, 128 * MIB, 64 * MIB, 3);
	W.window_sleep_us = 30000;	/* every batch holds the engine 30 ms */
	p.rt = start_fake(64 * MIB, FREE_RUN, 0, 0);
	assert_int_equal(pthread_create(&thr, NULL, probe_thread, &p), 0);
	sleep_ms(1500);
	p.stop = 1;
	pthread_join(thr, NULL);
	epochs = get_stats(p.rt).epochs;
	stop_fake(p.rt);
	print_message("  %" PRIu64 " stats/set_budget calls during %" PRIu64
		      " epochs (30 ms batches): longest %.3f ms, %" PRIu64 " over 1 ms, %" PRIu64 " over 25 ms\n",
		      p.calls, epochs, (double)p.max_ns / 1e6, p.slow, p.very_slow);
	assert_true(p.calls > 1000);
	assert_true(epochs > 0);
	/*
	 * Waiting for the engine would take a batch (30 ms) or more, at least
	 * once an epoch; what remains is the host's scheduling noise (a loop
	 * that only reads the clock sees gaps of several ms on a loaded host).
	 */
	assert_true(epochs >= 10);
	assert_true(p.very_slow * 4 < epochs);
	assert_true(p.max_ns < 200000000ULL);
}

static void test_fork(void **state)
{
	struct tiermm_runtime *rt;
	uint64_t e0;
	pid_t pid;
	int status;

	(void)state;
	world_reset(NODE_SLOW);
	set_hot(0, 0, 16 * MIB, 8);
	rt = start_fake(64 * MIB, FREE_RUN, 0, 0);
	while (get_stats(rt).epochs < 2)
		sleep_ms(5);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct tiermm_runtime_stats s = { .sz = sizeof(s) };
		int bad = 0;

		bad |= tiermm_runtime_stats(rt, &s) != -EOWNERDEAD;
		bad |= errno != EOWNERDEAD;
		bad |= !strstr(tiermm_errmsg(), "fork");
		bad |= (tiermm_runtime_set_budget(rt, MIB) != -EOWNERDEAD) << 1;
		bad |= (tiermm_runtime_set_budget_share(rt, 0.5) != -EOWNERDEAD) << 2;
		bad |= (tiermm_runtime_stop(rt) != 0) << 3;
		/* The child may start a runtime of its own. */
		{
			TIERMM_OPTS(tiermm_runtime_opts, o, .backend = "test",
				    .epoch_ms = 20, .topo = topo);
			struct tiermm_runtime *mine = NULL;

			bad |= (tiermm_runtime_start(&o, &mine) != 0) << 4;
			if (mine) {
				struct tiermm_runtime_stats m = { .sz = sizeof(m) };

				sleep_ms(100);
				bad |= (tiermm_runtime_stats(mine, &m) != 0 || m.epochs == 0) << 5;
				bad |= (tiermm_runtime_stop(mine) != 0) << 6;
			}
		}
		_exit(bad);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	/* The parent's runtime goes on. */
	e0 = get_stats(rt).epochs;
	while (get_stats(rt).epochs < e0 + 3)
		sleep_ms(5);
	assert_int_equal(get_stats(rt).state, TIERMM_RUNTIME_RUNNING);
	stop_fake(rt);
}

/* The managed process is gone (the backend says so): EXITED, stats still work. */
static void test_exited(void **state)
{
	struct tiermm_runtime *rt;
	struct tiermm_runtime_stats s;
	uint64_t t_end;

	(void)state;
	world_reset(NODE_SLOW);
	set_hot(0, 0, 16 * MIB, 8);
	W.fail_poll = 20;
	rt = start_fake(64 * MIB, FREE_RUN, 0, 0);
	t_end = now_ns() + 5000000000ULL;
	while (now_ns() < t_end && get_stats(rt).state == TIERMM_RUNTIME_RUNNING)
		sleep_ms(5);
	s = get_stats(rt);
	print_message("  %s (error %d)\n", s.error_msg, s.error);
	assert_int_equal(s.state, TIERMM_RUNTIME_EXITED);
	assert_int_equal(s.error, -ESRCH);
	assert_non_null(strstr(s.error_msg, "exited"));
	/* Calls still answer; stop frees. */
	assert_int_equal(tiermm_runtime_set_budget(rt, MIB), 0);
	stop_fake(rt);
}

/* An older, shorter stats struct gets its part only. */
static void test_stats_sz(void **state)
{
	struct tiermm_runtime *rt;
	struct tiermm_runtime_stats s;

	(void)state;
	world_reset(NODE_SLOW);
	rt = start_fake(64 * MIB, FREE_RUN, 0, 0);
	memset(&s, 0xa5, sizeof(s));
	s.sz = offsetof(struct tiermm_runtime_stats, backend_why);
	assert_int_equal(tiermm_runtime_stats(rt, &s), 0);
	assert_int_equal(s.sz, offsetof(struct tiermm_runtime_stats, backend_why));
	assert_string_equal(s.backend, "test");
	assert_int_equal((unsigned char)s.backend_why[0], 0xa5);
	s.sz = 1;
	assert_int_equal(tiermm_runtime_stats(rt, &s), -EINVAL);
	assert_int_equal(tiermm_runtime_stats(rt, NULL), -EINVAL);
	stop_fake(rt);
}

/* ---- the mover on this host's memory ----------------------------------- */

struct pacer {
	uint64_t cap, calls, stop_after;
};

static uint64_t pacer_window(void *ctx, const struct tiermm_move_result *sofar)
{
	struct pacer *p = ctx;

	(void)sofar;
	p->calls++;
	if (p->stop_after && p->calls > p->stop_after)
		return 0;
	return p->cap;
}

static void test_mover_host(void **state)
{
	struct tiermm_topo *live;
	struct tiermm__mover *mv;
	struct tiermm_move_result r;
	struct pacer p = { .cap = 64 * PG };
	struct tiermm__move_ctl ctl = { .window = pacer_window, .ctx = &p };
	size_t len = 4 * MIB;
	char *m;
	int n;

	(void)state;
	assert_int_equal(tiermm_topo_load(NULL, &live), 0);
	assert_int_equal(tiermm__mover_new(live, 0, 0, &mv), 0);
	assert_non_null(tiermm__mover_nodes(mv, &n));
	assert_true(n >= 1);
	m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(m != MAP_FAILED);
	madvise(m, len, MADV_NOHUGEPAGE);
	/* The first 256 pages written, the rest never touched. */
	for (size_t i = 0; i < 256; i++)
		m[i * PG] = 1;
	memset(&r, 0, sizeof(r));
	r.sz = sizeof(r);
	assert_int_equal(tiermm__mover_run(mv, (uint64_t)(uintptr_t)m,
					   (uint64_t)(uintptr_t)m + len, &ctl, &r), 0);
	print_message("  mover: %" PRIu64 " pages: %" PRIu64 " already there, %" PRIu64
		      " not present, %" PRIu64 " windows, %" PRIu64 " syscalls\n",
		      r.pages, r.already_there, r.not_present, p.calls, r.syscalls);
	assert_int_equal(r.pages, len / PG);
	assert_int_equal(r.already_there + r.not_present, len / PG);
	assert_int_equal(r.moved + r.failed + r.skipped, 0);
	assert_false(ctl.stopped);
	assert_int_equal(ctl.resume, (uint64_t)(uintptr_t)m + len);
	/* 256 present pages in windows of 64, whatever PAGEMAP_SCAN says. */
	assert_true(p.calls >= 4);
	if (r.already_there == 256)
		assert_true(r.syscalls <= 2 * 4 + 2);	/* only present pages walked */
	/* Stopped by the pacer: the rest is skipped, resume says where. */
	p.calls = 0;
	p.stop_after = 2;
	memset(&r, 0, sizeof(r));
	r.sz = sizeof(r);
	assert_int_equal(tiermm__mover_run(mv, (uint64_t)(uintptr_t)m,
					   (uint64_t)(uintptr_t)m + len, &ctl, &r), 0);
	assert_true(ctl.stopped);
	assert_true(r.skipped > 0);
	assert_int_equal(r.pages, r.already_there + r.not_present + r.skipped);
	assert_true(ctl.resume < (uint64_t)(uintptr_t)m + len);
	/* A cap smaller than one page stops before anything. */
	p.calls = 0;
	p.stop_after = 0;
	p.cap = PG - 1;
	memset(&r, 0, sizeof(r));
	r.sz = sizeof(r);
	assert_int_equal(tiermm__mover_run(mv, (uint64_t)(uintptr_t)m,
					   (uint64_t)(uintptr_t)m + len, &ctl, &r), 0);
	assert_true(ctl.stopped);
	assert_int_equal(r.already_there, 0);
	tiermm__mover_free(mv);
	munmap(m, len);
	tiermm_topo_free(live);
}

/*
 * The real world's status queries flag pages that transparent huge pages
 * map, and only those: a huge page is looked for only in mappings that
 * smaps says some back (migrator.c, read_thp_maps()). One mapping asks
 * for huge pages and gets them (when the host's THP allows: otherwise only
 * the second half is checked), the other refuses them.
 */
static void test_env_huge_host(void **state)
{
	const size_t len = 8 * MIB;
	struct tiermm__engine_cfg cfg = { .pid = 0 };
	struct tiermm__mapping *maps;
	struct tiermm_topo *live;
	uint64_t addrs[4];
	uint8_t cls[4];
	size_t nmaps;
	char *raw, *thp, *flat;
	void *env;

	(void)state;
	assert_int_equal(tiermm_topo_load(NULL, &live), 0);
	cfg.topo = live;
	assert_int_equal(tiermm__real_env.open(NULL, &cfg, &env), 0);
	raw = mmap(NULL, 2 * len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	flat = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(raw != MAP_FAILED && flat != MAP_FAILED);
	thp = (char *)(((uintptr_t)raw + 2 * MIB - 1) & ~(uintptr_t)(2 * MIB - 1));
	madvise(thp, 4 * MIB, MADV_HUGEPAGE);
	madvise(flat, len, MADV_NOHUGEPAGE);
	memset(thp, 1, 4 * MIB);
	memset(flat, 1, len);
	assert_int_equal(tiermm__real_env.mappings(env, true, &maps, &nmaps), 0);
	free(maps);
	addrs[0] = (uint64_t)(uintptr_t)thp;
	addrs[1] = (uint64_t)(uintptr_t)thp + 2 * MIB + 5 * PG;
	addrs[2] = (uint64_t)(uintptr_t)flat;
	addrs[3] = (uint64_t)(uintptr_t)flat + 3 * MIB;
	assert_int_equal(tiermm__real_env.where(env, addrs, 4, cls), 0);
	print_message("  classes: %#x %#x (MADV_HUGEPAGE) %#x %#x (MADV_NOHUGEPAGE)\n", cls[0],
		      cls[1], cls[2], cls[3]);
	assert_false(cls[2] & TIERMM__WHERE_HUGE);
	assert_false(cls[3] & TIERMM__WHERE_HUGE);
	{
		/* what PAGEMAP_SCAN says of the 4 MiB, asked directly */
		uint64_t bits[1] = { 0 };
		int ret = tiermm__huge_blocks(0, addrs[0], addrs[0] + 4 * MIB, bits, 2);

		if (ret == -ENOTTY || ret == -EINVAL) {
			print_message("  (no PAGEMAP_SCAN: huge pages are not looked for)\n");
		} else {
			assert_int_equal(ret, 0);
			assert_int_equal(!!(cls[0] & TIERMM__WHERE_HUGE), !!(bits[0] & 1));
			assert_int_equal(!!(cls[1] & TIERMM__WHERE_HUGE), !!(bits[0] & 2));
			if (!bits[0])
				print_message("  (the host gave no huge page: only the refusal is checked)\n");
		}
	}
	tiermm__real_env.close(env);
	munmap(raw, 2 * len);
	munmap(flat, len);
	tiermm_topo_free(live);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_auto_host),
		T(test_bad_opts),
		T(test_promote_hot),
		T(test_budget_demote),
		T(test_make_room),
		T(test_hysteresis),
		T(test_settle),
		T(test_pins),
		T(test_rate_limit),
		T(test_cpu_quota),
		T(test_cpu_quota_progress),
		T(test_stop_prompt),
		T(test_no_blocking),
		T(test_fork),
		T(test_exited),
		T(test_stats_sz),
		T(test_mover_host),
		T(test_env_huge_host),
	};
	const char *fx = getenv("TIERMM_FIXTURES");
	char root[4096];
	int ret;

	if (!fx) {
		fprintf(stderr, "TIERMM_FIXTURES is not set\n");
		return 1;
	}
	snprintf(root, sizeof(root), "%s/fakeheteromemtiers", fx);
	{
		TIERMM_OPTS(tiermm_topo_opts, o, .fsroot = root);

		if (tiermm_topo_load(&o, &topo)) {
			fprintf(stderr, "cannot load %s: %s\n", root, tiermm_errmsg());
			return 1;
		}
	}
	W.base = mmap(NULL, REGION, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		      -1, 0);
	if (W.base == MAP_FAILED)
		return 1;
	if (getenv("TEST_FILTER"))
		cmocka_set_test_filter(getenv("TEST_FILTER"));
	ret = cmocka_run_group_tests(tests, NULL, NULL);
	tiermm_topo_free(topo);
	munmap(W.base, REGION);
	return ret;
}
