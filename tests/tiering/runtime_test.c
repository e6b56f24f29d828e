// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * runtime_test: the tiering runtime (tiermm_runtime_start(3)) against real
 * tiers, in the tiered guest (tests/vm/presets/tiered.conf: DRAM nodes 0
 * and 1 = tier 0, CPU-less slow node 2 = tier 1). Run by
 * tests/vm/guest/check-runtime.sh.
 *
 *   runtime_test promote BACKEND   a 32 MiB hot set on the slow node and
 *                                  96 MiB of cold memory on the fast tier,
 *                                  a 64 MiB budget: the hot set is promoted,
 *                                  cold pages demoted, the budget held
 *   runtime_test integrity BACKEND [SECONDS]
 *                                  writer threads verify their data while
 *                                  the runtime moves it (shifting hot
 *                                  windows, a budget that changes)
 *   runtime_test pins BACKEND      PIN_FAST, PIN_SLOW and NO_MIGRATE ranges
 *                                  keep their pages with the fast tier
 *                                  nearly full (another process) while the
 *                                  engine demotes and promotes around them
 *   runtime_test budget BACKEND    set_budget / set_budget_share take effect
 *                                  at the next epoch
 *   runtime_test exit BACKEND [ROUNDS]
 *                                  a managed process (another pid) killed
 *                                  while being migrated; one that manages
 *                                  itself killed likewise (scan): nothing
 *                                  left behind
 *   runtime_test errors            bad input: documented errors, nothing
 *                                  moved, no kdamond left
 *
 * Options after BACKEND: --quota Q (CPU quota; default none: under TCG
 * every instruction, move_pages(2)'s copies and the membarrier IPIs of RCU
 * grace periods cost 10-50 times what they do on hardware, and the default
 * quota of 5% would make convergence take many minutes; the quota itself
 * is tested on the host, tests/unit/test_runtime.c), --timeout S
 * (convergence, default 240 s).
 *
 * Output: "PASS what", "FAIL what" and "# note" lines; exit status 0 when
 * nothing failed, 77 when the backend is not usable here.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <tiermm.h>

#include "internal.h"
#include "tiering.h"

#define MIB ((uint64_t)1 << 20)
#define HUGE (2 * MIB)

static size_t ps;
static int failures;
static const char *backend = "scan";
static double quota;		/* 0: no quota */
static double timeout_s = 240;
static struct tiermm_topo *topo;

static void check(bool ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void check(bool ok, const char *fmt, ...)
{
	va_list ap;

	printf("%s ", ok ? "PASS" : "FAIL");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
	if (!ok)
		failures++;
}

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...)
{
	va_list ap;

	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
	printf("FAIL %s: %s (%s)\n", what, strerror(errno), tiermm_errmsg());
	exit(1);
}

/* len bytes, 2 MiB aligned, written once; huge: THP allowed, else base pages. */
static char *region(size_t len, bool huge)
{
	char *raw = mmap(NULL, len + HUGE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *p;

	if (raw == MAP_FAILED)
		die("mmap");
	p = (char *)(((uintptr_t)raw + HUGE - 1) & ~(uintptr_t)(HUGE - 1));
	madvise(p, len, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
	for (size_t off = 0; off < len; off += ps)
		p[off] = (char)(off / ps + 1);
	return p;
}

static void move_to(pid_t pid, char *p, size_t len, int node)
{
	struct tiermm_move_result r = { .sz = sizeof(r) };

	if (tiermm_move(pid, p, len, node, 0, &r))
		die("tiermm_move");
	if (r.failed)
		note("setup move to node %d: %" PRIu64 " of %" PRIu64 " pages failed", node,
		     r.failed, r.pages);
}

/* Pages of [p, p + len) of pid on tier 0 and in all. */
static uint64_t on_fast(pid_t pid, const void *p, size_t len, uint64_t *present)
{
	uint64_t c[8] = { 0 }, absent = 0;

	if (tiermm_residency_tiers(topo, pid, p, len, c, 8, &absent) < 0)
		return 0;
	if (present)
		*present = len / ps - absent;
	return c[0];
}

/* Exact per-node counts, for ranges that must not change. */
static void nodes_of(const void *p, size_t len, uint64_t out[4])
{
	memset(out, 0, 4 * sizeof(uint64_t));
	if (tiermm_residency(0, p, len, out, 4, NULL) < 0)
		die("tiermm_residency");
}

static uint64_t node_free(int node)
{
	return (uint64_t)tiermm__node_usable_free(node);
}

static void print_stats(const char *what, const struct tiermm_runtime_stats *s)
{
	double cpu = s->cpu_sampling_s + s->cpu_classify_s + s->cpu_migrate_s;

	note("%s: backend %s, %" PRIu64 " epochs in %.1f s; promoted %" PRIu64 " pages (%.1f MiB), demoted %" PRIu64
	     " (%.1f MiB); failed %" PRIu64 " (busy %" PRIu64 ", nomem %" PRIu64 ", fault %" PRIu64
	     ", other %" PRIu64 "); hot set %.1f MiB, budget %.1f MiB, fast %.1f MiB of %.1f MiB resident; "
	     "%" PRIu64 " samples (%" PRIu64 " lost, %" PRIu64 " missed), %" PRIu64 " ranges (%" PRIu64
	     " splits, %" PRIu64 " merges); rate-limited %" PRIu64 ", quota-limited %" PRIu64
	     "; pace 1/%u (%" PRIu64 " slow epochs)",
	     what, s->backend, s->epochs, s->wall_s, s->promoted_pages,
	     (double)s->promoted_bytes / MIB, s->demoted_pages, (double)s->demoted_bytes / MIB,
	     s->failed_pages, s->failed_busy, s->failed_nomem, s->failed_fault, s->failed_other,
	     (double)s->hot_set_bytes / MIB, (double)s->budget_bytes / MIB,
	     (double)s->fast_bytes / MIB, (double)s->resident_bytes / MIB, s->samples,
	     s->samples_lost, s->samples_missed, s->ranges, s->splits, s->merges,
	     s->rate_limited, s->quota_limited, s->backoff, s->backoff_epochs);
	note("%s: CPU sampling %.2f s, classification %.2f s, migration %.2f s = %.1f%% of one CPU (TCG: emulated CPU time, 10-50x hardware)",
	     what, s->cpu_sampling_s, s->cpu_classify_s, s->cpu_migrate_s,
	     s->wall_s > 0 ? 100 * cpu / s->wall_s : 0);
}

static struct tiermm_runtime_stats stats_of(struct tiermm_runtime *rt)
{
	struct tiermm_runtime_stats s = { .sz = sizeof(s) };

	if (tiermm_runtime_stats(rt, &s))
		die("tiermm_runtime_stats");
	return s;
}

/* Start on pid with a budget in bytes; exit 77 if the backend is not usable. */
static struct tiermm_runtime *start(pid_t pid, uint64_t budget)
{
	TIERMM_OPTS(tiermm_runtime_opts, o, .pid = pid, .backend = backend,
		    .budget_bytes = budget, .cpu_quota = quota, .topo = topo,
		    .flags = quota ? 0 : TIERMM_RUNTIME_NO_CPU_QUOTA);
	struct tiermm_runtime *rt;
	int ret = tiermm_runtime_start(&o, &rt);

	if (ret == -ENOTSUP && strstr(tiermm_errmsg(), "not usable")) {
		printf("# SKIP backend %s: %s\n", backend, tiermm_errmsg());
		exit(77);
	}
	if (ret)
		die("tiermm_runtime_start");
	note("runtime started: backend %s", stats_of(rt).backend_why);
	return rt;
}

static void wait_epochs(struct tiermm_runtime *rt, uint64_t n)
{
	uint64_t e0 = stats_of(rt).epochs;
	double t0 = now_s();

	while (stats_of(rt).epochs < e0 + n && now_s() - t0 < timeout_s)
		usleep(50000);
}

/* ---------------------------------------------------------------- workload */

static volatile int stop_work;

struct hammer {
	char *p;
	size_t len;
	unsigned int seed;
	uint64_t ops;
};

/* Random writes all over [p, p + len): every page accessed all the time. */
static void *hammer(void *arg)
{
	struct hammer *h = arg;
	uint64_t x = h->seed | 1;
	size_t words = h->len / sizeof(uint64_t);
	uint64_t *q = (uint64_t *)(void *)h->p;

	while (!__atomic_load_n(&stop_work, __ATOMIC_RELAXED)) {
		for (int k = 0; k < 4096; k++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			q[x % words] += 1;
		}
		h->ops += 4096;
	}
	return NULL;
}

static void start_hammers(struct hammer *h, pthread_t *th, int n, char *p, size_t len)
{
	for (int i = 0; i < n; i++) {
		h[i] = (struct hammer){ .p = p + len / (size_t)n * (size_t)i,
					.len = len / (size_t)n, .seed = 7u + (unsigned int)i };
		if (pthread_create(&th[i], NULL, hammer, &h[i]))
			die("pthread_create");
	}
}

static void stop_hammers(pthread_t *th, int n)
{
	__atomic_store_n(&stop_work, 1, __ATOMIC_RELAXED);
	for (int i = 0; i < n; i++)
		pthread_join(th[i], NULL);
	__atomic_store_n(&stop_work, 0, __ATOMIC_RELAXED);
}

/* ---------------------------------------------------------------- promote */

#define RESV_LEN (256ULL << 30)

/* This process's resident memory (VmRSS), in bytes. */
static uint64_t self_rss(void)
{
	char line[256];
	unsigned long long v = 0;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		die("/proc/self/status");
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %llu", &v) == 1)
			break;
	fclose(f);
	return v * 1024;
}

static int cmd_promote(void)
{
	const size_t len = 256 * MIB, hot_off = 128 * MIB, hot_len = 32 * MIB;
	const size_t cold_len = 96 * MIB;
	const uint64_t budget = 64 * MIB;
	struct hammer h[2];
	pthread_t th[2];
	struct tiermm_runtime *rt;
	struct tiermm_runtime_stats s;
	uint64_t hot_fast = 0, region_fast = 0, cold_fast0, max_region_fast = 0;
	double t0, t_conv = -1;
	uint64_t e_conv = 0;
	char *p = region(len, true), *resv = NULL;
	uint64_t rss0, rss1;

	move_to(0, p, len, 2);
	move_to(0, p, cold_len, 0);
	cold_fast0 = on_fast(0, p, cold_len, NULL);
	note("start: hot set %zu MiB at +%zu MiB on node 2, %" PRIu64 " MiB cold on tier 0, budget %" PRIu64 " MiB",
	     hot_len / MIB, hot_off / MIB, cold_fast0 * ps / MIB, budget / MIB);
	/*
	 * Beside it, a reservation of 256 GiB with a few pages in use (a JVM
	 * heap, a sanitizer's shadow): the page counts must follow what is
	 * used, not what is reserved (a block a 2 MiB would be 72 MiB).
	 */
	if (!strcmp(backend, "scan")) {
		resv = mmap(NULL, RESV_LEN, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (resv == MAP_FAILED)
			die("mmap 256 GiB NORESERVE");
		for (size_t i = 0; i < 16; i++)
			resv[i * (RESV_LEN / 16)] = 1;
	}
	start_hammers(h, th, 2, p + hot_off, hot_len);
	rss0 = self_rss();
	rt = start(0, budget);
	t0 = now_s();
	while (now_s() - t0 < timeout_s) {
		sleep(2);
		s = stats_of(rt);
		hot_fast = on_fast(0, p + hot_off, hot_len, NULL);
		region_fast = on_fast(0, p, len, NULL);
		if (region_fast > max_region_fast && t_conv < 0)
			max_region_fast = region_fast;
		note("t=%.0f s epoch %" PRIu64 ": hot set %.0f%% on tier 0, region %.1f MiB on tier 0, promoted %" PRIu64
		     ", demoted %" PRIu64 ", hot set planned %.1f MiB, %" PRIu64 " ranges",
		     now_s() - t0, s.epochs, 100.0 * (double)hot_fast * (double)ps / (double)hot_len,
		     (double)region_fast * (double)ps / MIB, s.promoted_pages, s.demoted_pages,
		     (double)s.hot_set_bytes / MIB, s.ranges);
		if (s.state != TIERMM_RUNTIME_RUNNING)
			break;
		if (t_conv < 0 && hot_fast * ps >= hot_len * 9 / 10) {
			t_conv = now_s() - t0;
			e_conv = s.epochs;
			/* A few more epochs: nothing must undo it. */
			wait_epochs(rt, 6);
			hot_fast = on_fast(0, p + hot_off, hot_len, NULL);
			region_fast = on_fast(0, p, len, NULL);
			break;
		}
	}
	s = stats_of(rt);
	rss1 = self_rss();
	stop_hammers(th, 2);
	if (resv) {
		check(rss1 < rss0 + 32 * MIB,
		      "%s: the runtime's memory follows the memory used, not the 256 GiB reserved: RSS %.1f -> %.1f MiB",
		      backend, (double)rss0 / MIB, (double)rss1 / MIB);
		munmap(resv, RESV_LEN);
	}
	check(s.state == TIERMM_RUNTIME_RUNNING && !strcmp(s.backend, backend),
	      "the runtime runs with backend %s (%s)", s.backend,
	      s.state == TIERMM_RUNTIME_RUNNING ? "running" : s.error_msg);
	check(t_conv >= 0, "%s: the hot set reached 90%% on the fast tier in %.0f s, %" PRIu64 " epochs",
	      backend, t_conv, e_conv);
	check(hot_fast * ps >= hot_len * 9 / 10,
	      "%s: %.0f%% of the hot set stays on the fast tier", backend,
	      100.0 * (double)hot_fast * (double)ps / (double)hot_len);
	check(on_fast(0, p, cold_len, NULL) < cold_fast0 && s.demoted_pages > 0,
	      "%s: cold pages demoted to make room (%" PRIu64 " -> %" PRIu64 " MiB of the cold part on tier 0, %" PRIu64 " pages demoted)",
	      backend, cold_fast0 * ps / MIB, on_fast(0, p, cold_len, NULL) * ps / MIB,
	      s.demoted_pages);
	check(region_fast * ps <= budget,
	      "%s: the region's fast-tier memory is within the budget (%.1f of %" PRIu64 " MiB)",
	      backend, (double)region_fast * (double)ps / MIB, budget / MIB);
	check(s.promoted_pages >= hot_len * 8 / 10 / ps && s.samples > 0 && s.hot_set_bytes <= budget,
	      "%s: counters: %" PRIu64 " pages promoted, %" PRIu64 " samples, hot set %.1f MiB <= budget",
	      backend, s.promoted_pages, s.samples, (double)s.hot_set_bytes / MIB);
	check(strcmp(s.backend, "scan") ?
	      isnan(s.scan_window_ms) : s.scan_window_ms >= 1 && s.scan_window_ms <= 100,
	      "%s: scan window %.1f ms (1 to 100 with the scanner, NaN otherwise)",
	      backend, s.scan_window_ms);
	print_stats(backend, &s);
	tiermm_runtime_stop(rt);
	return 0;
}

/* ---------------------------------------------------------------- integrity */

#define NWRITERS 3
#define WBUF (48 * MIB)
#define WIN (8 * MIB)

static int hot_window;	/* __atomic: which window of each buffer is hot */

struct writer {
	int id;
	char *p;
	uint32_t *gen;		/* per page */
	uint64_t errors, first_bad, passes, full;
};

static uint64_t word(uint32_t gen, int id, size_t i)
{
	return ((uint64_t)gen << 40) ^ ((uint64_t)id << 32) ^ (i * 0x9e3779b97f4a7c15ULL);
}

/* Verify and rewrite pages [a, b) of the writer's buffer. */
static void pass(struct writer *w, size_t a, size_t b)
{
	uint64_t *q = (uint64_t *)(void *)w->p;
	size_t wpp = ps / sizeof(uint64_t);

	for (size_t pg = a; pg < b; pg++) {
		uint32_t g = w->gen[pg];

		for (size_t i = pg * wpp; i < (pg + 1) * wpp; i++) {
			if (q[i] != word(g, w->id, i) && !w->errors++)
				w->first_bad = i;
			q[i] = word(g + 1, w->id, i);
		}
		w->gen[pg] = g + 1;
	}
}

static void *writer(void *arg)
{
	struct writer *w = arg;
	size_t pages = WBUF / ps, wpages = WIN / ps;
	uint64_t *q = (uint64_t *)(void *)w->p;

	for (size_t i = 0; i < WBUF / sizeof(uint64_t); i++)
		q[i] = word(0, w->id, i);
	while (!__atomic_load_n(&stop_work, __ATOMIC_RELAXED)) {
		size_t win = (size_t)(__atomic_load_n(&hot_window, __ATOMIC_RELAXED) + w->id) %
			     (WBUF / WIN);

		pass(w, win * wpages, (win + 1) * wpages);
		if (++w->passes % 16 == 0) {
			pass(w, 0, pages);	/* the cold pages too */
			w->full++;
		}
	}
	return NULL;
}

static int cmd_integrity(int seconds)
{
	struct writer w[NWRITERS];
	pthread_t th[NWRITERS];
	struct tiermm_runtime *rt;
	struct tiermm_runtime_stats s;
	double t0;
	int step = 0;

	for (int i = 0; i < NWRITERS; i++) {
		w[i] = (struct writer){ .id = i, .p = region(WBUF, i == 0) };
		w[i].gen = calloc(WBUF / ps, sizeof(uint32_t));
		if (!w[i].gen)
			die("calloc");
		move_to(0, w[i].p, WBUF, 2);
	}
	for (int i = 0; i < NWRITERS; i++)
		if (pthread_create(&th[i], NULL, writer, &w[i]))
			die("pthread_create");
	rt = start(0, 24 * MIB);
	t0 = now_s();
	while (now_s() - t0 < seconds) {
		sleep(5);
		step++;
		/* The hot windows move; the budget breathes: pages go both ways. */
		__atomic_add_fetch(&hot_window, 1, __ATOMIC_RELAXED);
		if (tiermm_runtime_set_budget(rt, step % 2 ? 8 * MIB : 32 * MIB))
			die("tiermm_runtime_set_budget");
		s = stats_of(rt);
		note("t=%.0f s: epoch %" PRIu64 ", promoted %" PRIu64 ", demoted %" PRIu64 ", failed %" PRIu64
		     ", budget %.0f MiB, fast %.1f MiB",
		     now_s() - t0, s.epochs, s.promoted_pages, s.demoted_pages, s.failed_pages,
		     (double)s.budget_bytes / MIB, (double)s.fast_bytes / MIB);
		if (s.state != TIERMM_RUNTIME_RUNNING)
			break;
	}
	__atomic_store_n(&stop_work, 1, __ATOMIC_RELAXED);
	for (int i = 0; i < NWRITERS; i++)
		pthread_join(th[i], NULL);
	__atomic_store_n(&stop_work, 0, __ATOMIC_RELAXED);
	s = stats_of(rt);
	print_stats("integrity", &s);
	check(s.state == TIERMM_RUNTIME_RUNNING, "the runtime ran for %.0f s (%s)", now_s() - t0,
	      s.state == TIERMM_RUNTIME_RUNNING ? "running" : s.error_msg);
	for (int i = 0; i < NWRITERS; i++) {
		check(w[i].errors == 0 && w[i].passes > 1,
		      "writer %d (%s pages) saw no corrupted word in %" PRIu64 " window passes and %" PRIu64
		      " full passes%s", i, i == 0 ? "huge" : "base", w[i].passes, w[i].full,
		      w[i].errors ? " (corruption!)" : "");
		free(w[i].gen);
	}
	check(s.promoted_pages > 0 && s.demoted_pages > 0,
	      "pages moved under the writers both ways: %" PRIu64 " promoted, %" PRIu64 " demoted",
	      s.promoted_pages, s.demoted_pages);
	check(s.failed_pages <= (s.promoted_pages + s.demoted_pages) / 20,
	      "moves under writers rarely fail: %" PRIu64 " of %" PRIu64 " pages", s.failed_pages,
	      s.promoted_pages + s.demoted_pages + s.failed_pages);
	tiermm_runtime_stop(rt);
	return 0;
}

/* ---------------------------------------------------------------- pins */

static int cmd_pins(void)
{
	const size_t part = 32 * MIB, len = 6 * part;
	struct hammer h[3];
	pthread_t th[3];
	struct tiermm_runtime *rt;
	struct tiermm_runtime_stats s;
	uint64_t before[4][4], after[4][4], free_fast;
	uint64_t hot_fast = 0, cold_fast0;
	const char *names[4] = { "PIN_FAST", "NO_MIGRATE (fast, cold)", "NO_MIGRATE (slow, hot)",
				 "PIN_SLOW (hot)" };
	int go[2], done[2], status;
	pid_t filler;
	char *p, c;
	double t0;

	/*
	 * Memory pressure: another process fills the fast tier but ~96 MiB.
	 * Forked before the region exists: pages shared copy-on-write with it
	 * could not be moved (EACCES), and a write would copy them to the
	 * writer's node, which is no move of the engine's. It fills once the
	 * region is in place (go), and says when it is done (done).
	 */
	if (pipe(go) || pipe(done))
		die("pipe");
	filler = fork();
	if (filler < 0)
		die("fork");
	if (!filler) {
		uint64_t f0, f1;
		size_t n0, n1;
		char *a, *b;

		close(go[1]);
		close(done[0]);
		if (read(go[0], &c, 1) != 1)
			_exit(1);
		f0 = node_free(0);
		f1 = node_free(1);
		n0 = f0 > 48 * MIB ? (size_t)(f0 - 48 * MIB) : 0;
		n1 = f1 > 48 * MIB ? (size_t)(f1 - 48 * MIB) : 0;
		a = n0 ? region(n0, false) : NULL;
		b = n1 ? region(n1, false) : NULL;
		if (a)
			move_to(0, a, n0, 0);
		if (b)
			move_to(0, b, n1, 1);
		if (write(done[1], "x", 1) != 1)
			_exit(1);
		pause();
		_exit(0);
	}
	close(go[0]);
	close(done[1]);
	p = region(len, false);

	/*
	 * P0 PIN_FAST cold on tier 0, P1 NO_MIGRATE cold on tier 0, P2
	 * NO_MIGRATE hot on node 2, P3 PIN_SLOW hot on node 2, P4 hot on node
	 * 2 (to promote), P5 cold on tier 0 (to demote).
	 */
	move_to(0, p, len, 2);
	move_to(0, p, 2 * part, 0);
	move_to(0, p + 5 * part, part, 1);
	if (tiermm_hint(p, part, TIERMM_HINT_PIN_FAST, TIERMM_HINT_RECORD_ONLY) ||
	    tiermm_hint(p + part, 2 * part, TIERMM_HINT_NO_MIGRATE, 0) ||
	    tiermm_hint(p + 3 * part, part, TIERMM_HINT_PIN_SLOW, TIERMM_HINT_RECORD_ONLY))
		die("tiermm_hint");
	for (int k = 0; k < 4; k++)
		nodes_of(p + (size_t)k * part, part, before[k]);
	cold_fast0 = on_fast(0, p + 5 * part, part, NULL);
	if (write(go[1], "x", 1) != 1 || read(done[0], &c, 1) != 1)
		die("filler");
	close(go[1]);
	close(done[0]);
	free_fast = node_free(0) + node_free(1);
	note("fast tier usable free memory with the filler: %" PRIu64 " MiB", free_fast / MIB);

	start_hammers(h, th, 3, p + 2 * part, 3 * part);	/* P2, P3, P4 */
	/*
	 * What is on the fast tier counts in the budget, pinned or not: P0
	 * and P1 (64 MiB) + 32 MiB for the hot part + 8 MiB for the rest of
	 * the process.
	 */
	rt = start(0, 104 * MIB);
	t0 = now_s();
	while (now_s() - t0 < timeout_s) {
		sleep(2);
		s = stats_of(rt);
		hot_fast = on_fast(0, p + 4 * part, part, NULL);
		note("t=%.0f s epoch %" PRIu64 ": hot part %.0f%% on tier 0, cold part %" PRIu64 " MiB on tier 0, promoted %" PRIu64
		     ", demoted %" PRIu64 ", hinted %.0f MiB, pace 1/%u",
		     now_s() - t0, s.epochs, 100.0 * (double)hot_fast * (double)ps / (double)part,
		     on_fast(0, p + 5 * part, part, NULL) * ps / MIB, s.promoted_pages,
		     s.demoted_pages, (double)s.hinted_bytes / MIB, s.backoff);
		if (s.state != TIERMM_RUNTIME_RUNNING || hot_fast * ps >= part * 9 / 10)
			break;
	}
	wait_epochs(rt, 4);
	s = stats_of(rt);
	stop_hammers(th, 3);
	for (int k = 0; k < 4; k++) {
		nodes_of(p + (size_t)k * part, part, after[k]);
		check(!memcmp(before[k], after[k], sizeof(before[k])),
		      "%s: no page moved (nodes 0/1/2: %" PRIu64 "/%" PRIu64 "/%" PRIu64 " -> %" PRIu64 "/%" PRIu64 "/%" PRIu64 ")",
		      names[k], before[k][0], before[k][1], before[k][2], after[k][0], after[k][1],
		      after[k][2]);
	}
	check(hot_fast * ps >= part * 9 / 10,
	      "the unhinted hot part was promoted under pressure (%.0f%% on tier 0)",
	      100.0 * (double)hot_fast * (double)ps / (double)part);
	check(on_fast(0, p + 5 * part, part, NULL) < cold_fast0,
	      "the unhinted cold part was demoted (%" PRIu64 " -> %" PRIu64 " MiB on tier 0)",
	      cold_fast0 * ps / MIB, on_fast(0, p + 5 * part, part, NULL) * ps / MIB);
	check(s.hinted_bytes >= 4 * part,
	      "the runtime saw the hinted ranges (%.0f MiB)", (double)s.hinted_bytes / MIB);
	print_stats("pins", &s);
	tiermm_runtime_stop(rt);
	kill(filler, SIGKILL);
	waitpid(filler, &status, 0);
	tiermm__hints_reset();
	return 0;
}

/* ---------------------------------------------------------------- budget */

static int cmd_budget(void)
{
	const size_t len = 128 * MIB, hot = 64 * MIB;
	struct hammer h[2];
	pthread_t th[2];
	struct tiermm_runtime *rt;
	struct tiermm_runtime_stats s;
	uint64_t e0, fast = 0, present = 0;
	double t0;
	bool reached = false;
	char *p = region(len, true);

	move_to(0, p, len, 2);
	start_hammers(h, th, 2, p, hot);
	rt = start(0, 96 * MIB);
	t0 = now_s();
	while (now_s() - t0 < timeout_s && on_fast(0, p, hot, NULL) * ps < hot * 9 / 10)
		sleep(2);
	s = stats_of(rt);
	check(on_fast(0, p, hot, NULL) * ps >= hot * 9 / 10,
	      "96 MiB budget: the 64 MiB hot set is on the fast tier after %" PRIu64 " epochs (%.0f s)",
	      s.epochs, now_s() - t0);

	/* Shrink: from the next epoch on. */
	e0 = s.epochs;
	if (tiermm_runtime_set_budget(rt, 16 * MIB))
		die("tiermm_runtime_set_budget");
	t0 = now_s();
	while (now_s() - t0 < timeout_s) {
		s = stats_of(rt);
		fast = on_fast(0, p, len, NULL);
		if (s.epochs > e0 + 1 && fast * ps <= 16 * MIB) {
			reached = true;
			break;
		}
		usleep(200000);
	}
	check(s.budget_bytes == 16 * MIB,
	      "set_budget(16 MiB): in force from the next epoch (stats say %.1f MiB at epoch %" PRIu64 ", set at %" PRIu64 ")",
	      (double)s.budget_bytes / MIB, s.epochs, e0);
	check(reached, "the region came down to %.1f MiB on the fast tier in %" PRIu64 " epochs (%.0f s)",
	      (double)fast * (double)ps / MIB, s.epochs - e0, now_s() - t0);

	/* Grow as a share of the resident memory. */
	if (tiermm_runtime_set_budget_share(rt, 0.5))
		die("tiermm_runtime_set_budget_share");
	e0 = stats_of(rt).epochs;
	wait_epochs(rt, 2);
	s = stats_of(rt);
	check(s.budget_bytes > 16 * MIB && s.budget_bytes >= s.resident_bytes / 2 - MIB &&
		      s.budget_bytes <= s.resident_bytes / 2 + MIB,
	      "set_budget_share(0.5): %.1f MiB of %.1f MiB resident", (double)s.budget_bytes / MIB,
	      (double)s.resident_bytes / MIB);
	t0 = now_s();
	while (now_s() - t0 < timeout_s && on_fast(0, p, hot, &present) * ps < hot * 9 / 10)
		sleep(2);
	check(on_fast(0, p, hot, NULL) * ps >= hot * 9 / 10,
	      "the hot set came back to the fast tier in %" PRIu64 " epochs", stats_of(rt).epochs - e0);
	/* Bad budgets change nothing. */
	check(tiermm_runtime_set_budget(rt, (uint64_t)1 << 50) == -EINVAL &&
		      tiermm_runtime_set_budget_share(rt, 2) == -EINVAL,
	      "a budget larger than the tier or a share above 1: EINVAL (%s)", tiermm_errmsg());
	s = stats_of(rt);
	print_stats("budget", &s);
	stop_hammers(th, 2);
	tiermm_runtime_stop(rt);
	return 0;
}

/* ---------------------------------------------------------------- exit */

static uint64_t read_u64(const char *path)
{
	char buf[64] = "";
	FILE *f = fopen(path, "r");
	unsigned long long v = UINT64_MAX;

	if (!f)
		return UINT64_MAX;
	if (fgets(buf, sizeof(buf), f))
		sscanf(buf, "%llu", &v);
	fclose(f);
	return v;
}

static int count_fds(void)
{
	int n = 0;

	for (int fd = 0; fd < 1024; fd++)
		n += fcntl(fd, F_GETFD) != -1;
	return n;
}

static uint64_t anon_pages(void)
{
	char line[256];
	unsigned long long v = 0;
	FILE *f = fopen("/proc/meminfo", "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "AnonPages: %llu", &v) == 1)
			break;
	fclose(f);
	return v * 1024;
}

static int kdamonds_running(void)
{
	uint64_t n = read_u64("/sys/kernel/mm/damon/admin/kdamonds/nr_kdamonds");
	int on = 0;

	for (uint64_t k = 0; n != UINT64_MAX && k < n; k++) {
		char path[128], buf[16] = "";
		FILE *f;

		snprintf(path, sizeof(path), "/sys/kernel/mm/damon/admin/kdamonds/%" PRIu64 "/state", k);
		f = fopen(path, "r");
		if (f && fgets(buf, sizeof(buf), f) && !strncmp(buf, "on", 2))
			on++;
		if (f)
			fclose(f);
	}
	return on;
}

/* A child that keeps 64 MiB hot on node 2; it reports its buffer's address. */
static pid_t spawn_workload(char **addr, size_t len, bool self_managed)
{
	int pfd[2];
	pid_t child;

	if (pipe(pfd))
		die("pipe");
	child = fork();
	if (child < 0)
		die("fork");
	if (!child) {
		char *m = region(len, false);
		struct hammer h = { .p = m, .len = len, .seed = 99 };

		close(pfd[0]);
		move_to(0, m, len, 2);
		if (self_managed) {
			TIERMM_OPTS(tiermm_runtime_opts, o, .backend = backend,
				    .budget_bytes = len, .cpu_quota = quota,
				    .flags = TIERMM_RUNTIME_NO_RATE_LIMIT |
					     (quota ? 0 : TIERMM_RUNTIME_NO_CPU_QUOTA));
			struct tiermm_runtime *rt;

			o.topo = topo;
			if (tiermm_runtime_start(&o, &rt))
				_exit(3);
		}
		if (write(pfd[1], &m, sizeof(m)) != sizeof(m))
			_exit(1);
		hammer(&h);
		_exit(0);
	}
	close(pfd[1]);
	if (read(pfd[0], addr, sizeof(*addr)) != sizeof(*addr)) {
		int status;

		waitpid(child, &status, 0);
		note("workload child exited with %d before starting", WEXITSTATUS(status));
		close(pfd[0]);
		return -1;
	}
	close(pfd[0]);
	return child;
}

static int cmd_exit(int rounds)
{
	const size_t len = 64 * MIB;
	const char *refcnt = "/sys/module/tiermm/refcnt";
	uint64_t ref0, kd0, anon0, free0 = 0, free1 = 0;
	int fds0, exited = 0, moved_before_kill = 0;
	struct tiermm_ab_scanner *sc;

	/*
	 * The library keeps one /dev/tiermm descriptor for the life of the
	 * process (pt.c): open it before the baseline.
	 */
	if (!tiermm_ab_scan_open(0, 0, 0, NULL, &sc))
		tiermm_ab_scan_close(sc);
	ref0 = read_u64(refcnt);
	kd0 = read_u64("/sys/kernel/mm/damon/admin/kdamonds/nr_kdamonds");
	anon0 = anon_pages();
	fds0 = count_fds();

	for (int n = 0; n < 3; n++)
		free0 += node_free(n);
	for (int round = 0; round < rounds; round++) {
		struct tiermm_runtime *rt;
		struct tiermm_runtime_stats s;
		char *m;
		int status;
		double t0;
		pid_t child = spawn_workload(&m, len, false);

		if (child < 0)
			die("spawn");
		rt = start(child, 2 * len);
		/* Kill it while pages move (or after a few epochs at most). */
		t0 = now_s();
		while (now_s() - t0 < timeout_s / 4) {
			s = stats_of(rt);
			if (s.promoted_pages > 0)
				break;
			usleep(20000);
		}
		moved_before_kill += stats_of(rt).promoted_pages > 0;
		usleep((unsigned int)(round * 37000 % 200000));
		kill(child, SIGKILL);
		waitpid(child, &status, 0);
		t0 = now_s();
		while (now_s() - t0 < 30 && stats_of(rt).state == TIERMM_RUNTIME_RUNNING)
			usleep(50000);
		s = stats_of(rt);
		exited += s.state == TIERMM_RUNTIME_EXITED;
		note("round %d: pid %d killed after %" PRIu64 " pages promoted; runtime %s: %s", round,
		     (int)child, s.promoted_pages,
		     s.state == TIERMM_RUNTIME_EXITED ? "exited" :
		     s.state == TIERMM_RUNTIME_FAILED ? "failed" : "still running", s.error_msg);
		tiermm_runtime_stop(rt);
	}
	check(exited == rounds, "the runtime saw each managed process exit (%d of %d)", exited,
	      rounds);
	check(moved_before_kill > 0, "processes were killed while being migrated (%d of %d had pages promoted)",
	      moved_before_kill, rounds);

	/* A process that manages itself, killed mid-migration (scan: no DAMON slot to reclaim). */
	if (!strcmp(backend, "scan")) {
		for (int round = 0; round < rounds; round++) {
			char *m;
			int status;
			pid_t child = spawn_workload(&m, len, true);

			if (child < 0)
				die("spawn self-managed");
			usleep(300000 + (unsigned int)(round * 211000 % 1000000));
			kill(child, SIGKILL);
			waitpid(child, &status, 0);
		}
		note("%d self-managed processes killed while their runtime ran", rounds);
	}
	sleep(1);
	for (int n = 0; n < 3; n++)
		free1 += node_free(n);
	check(read_u64(refcnt) == ref0, "tiermm.ko's reference count is back (%" PRIu64 " -> %" PRIu64 ")",
	      ref0, read_u64(refcnt));
	check(read_u64("/sys/kernel/mm/damon/admin/kdamonds/nr_kdamonds") == kd0 &&
		      kdamonds_running() == 0,
	      "no kdamond left (nr_kdamonds %" PRIu64 " -> %" PRIu64 ", %d running)", kd0,
	      read_u64("/sys/kernel/mm/damon/admin/kdamonds/nr_kdamonds"), kdamonds_running());
	check(anon_pages() <= anon0 + 8 * MIB,
	      "the processes' memory was freed (AnonPages %" PRIu64 " -> %" PRIu64 " KiB, usable free %" PRIu64 " -> %" PRIu64 " MiB)",
	      anon0 / 1024, anon_pages() / 1024, free0 / MIB, free1 / MIB);
	check(count_fds() == fds0, "no descriptor leaked (%d before, %d after)", fds0, count_fds());
	check(waitpid(-1, NULL, WNOHANG) == -1 && errno == ECHILD, "no child left");
	return 0;
}

/* ---------------------------------------------------------------- errors */

static void expect_error(const struct tiermm_runtime_opts *o, int err, const char *what)
{
	struct tiermm_runtime *rt = (void *)1;
	int ret = tiermm_runtime_start(o, &rt);

	check(ret == err && rt == NULL, "%s: %s (%d, expected %d): %s", what,
	      tiermm_strerror(ret), ret, err, tiermm_errmsg());
	if (!ret)
		tiermm_runtime_stop(rt);
}

static int cmd_errors(void)
{
	const size_t len = 32 * MIB;
	char *p = region(len, false);
	uint64_t before[4], after[4];
	uint64_t kd0 = read_u64("/sys/kernel/mm/damon/admin/kdamonds/nr_kdamonds");
	struct tiermm_runtime *rt;
	uint64_t cap = 0;
	pid_t gone;
	int status;

	for (int i = 0; i < tiermm_topo_nr_nodes(topo); i++) {
		struct tiermm_node_info info = { .sz = sizeof(info) };

		if (!tiermm_topo_node(topo, i, &info) && info.tier == 0)
			cap += info.capacity;
	}
	move_to(0, p, len, 2);
	nodes_of(p, len, before);
	{
		TIERMM_OPTS(tiermm_runtime_opts, o, .backend = "damon", .budget_bytes = cap + 1,
			    .topo = topo);
		expect_error(&o, -EINVAL, "a budget larger than the fast tier");
	}
	{
		TIERMM_OPTS(tiermm_runtime_opts, o, .backend = "damon", .fast_tier = 5, .topo = topo);
		expect_error(&o, -ENOENT, "fast tier 5 does not exist");
	}
	{
		TIERMM_OPTS(tiermm_runtime_opts, o, .backend = "damon", .slow_tier = 2, .topo = topo);
		expect_error(&o, -ENOENT, "slow tier 2 does not exist");
	}
	{
		TIERMM_OPTS(tiermm_runtime_opts, o, .backend = "damon", .fast_tier = 1, .topo = topo);
		expect_error(&o, -EINVAL, "the fast tier is the slow tier");
	}
	{
		TIERMM_OPTS(tiermm_runtime_opts, o, .backend = "hotness9000", .topo = topo);
		expect_error(&o, -EINVAL, "a backend that does not exist");
	}
	{
		TIERMM_OPTS(tiermm_runtime_opts, o, .backend = "perf", .topo = topo);
		struct tiermm__backend_cfg cfg = { 0 };
		char why[512];

		if (tiermm__perf_backend.usable(&cfg, why, sizeof(why)) != 1)
			expect_error(&o, -ENOTSUP, "perf without PEBS/IBS (forced, no fallback)");
	}
	{
		TIERMM_OPTS(tiermm_runtime_opts, o, .backend = "damon", .budget_share = 1.5,
			    .topo = topo);
		expect_error(&o, -EINVAL, "a share above 1");
	}
	gone = fork();
	if (!gone)
		_exit(0);
	waitpid(gone, &status, 0);
	{
		TIERMM_OPTS(tiermm_runtime_opts, o, .backend = "damon", .pid = gone, .topo = topo);
		expect_error(&o, -ESRCH, "a process that does not exist");
	}
	nodes_of(p, len, after);
	check(!memcmp(before, after, sizeof(before)),
	      "nothing moved (nodes 0/1/2: %" PRIu64 "/%" PRIu64 "/%" PRIu64 ")", after[0], after[1],
	      after[2]);
	check(read_u64("/sys/kernel/mm/damon/admin/kdamonds/nr_kdamonds") == kd0 &&
		      kdamonds_running() == 0,
	      "no kdamond left by the failed starts");
	/* auto picks a backend and says why. */
	{
		TIERMM_OPTS(tiermm_runtime_opts, o, .topo = topo, .budget_bytes = 64 * MIB);
		int ret = tiermm_runtime_start(&o, &rt);

		check(ret == 0, "auto: %s", ret ? tiermm_errmsg() : stats_of(rt).backend_why);
		if (!ret) {
			check(tiermm_runtime_set_budget(rt, cap + 1) == -EINVAL,
			      "set_budget larger than the tier: EINVAL (%s)", tiermm_errmsg());
			tiermm_runtime_stop(rt);
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	const char *cmd;
	int arg = 0;

	ps = (size_t)sysconf(_SC_PAGESIZE);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 2) {
		fprintf(stderr,
			"usage: %s promote|integrity|pins|budget|exit BACKEND [N] [--quota Q] [--timeout S] | errors\n",
			argv[0]);
		return 2;
	}
	cmd = argv[1];
	for (int i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "--quota") && i + 1 < argc)
			quota = atof(argv[++i]);
		else if (!strcmp(argv[i], "--timeout") && i + 1 < argc)
			timeout_s = atof(argv[++i]);
		else if (i == 2 && strcmp(cmd, "errors"))
			backend = argv[i];
		else
			arg = atoi(argv[i]);
	}
	if (tiermm_topo_load(NULL, &topo))
		die("tiermm_topo_load");
	if (tiermm_topo_nr_tiers(topo) < 2) {
		printf("FAIL needs two memory tiers (the tiered preset)\n");
		return 1;
	}
	if (!strcmp(cmd, "promote"))
		cmd_promote();
	else if (!strcmp(cmd, "integrity"))
		cmd_integrity(arg ? arg : 60);
	else if (!strcmp(cmd, "pins"))
		cmd_pins();
	else if (!strcmp(cmd, "budget"))
		cmd_budget();
	else if (!strcmp(cmd, "exit"))
		cmd_exit(arg ? arg : 5);
	else if (!strcmp(cmd, "errors"))
		cmd_errors();
	else {
		fprintf(stderr, "unknown command %s\n", cmd);
		return 2;
	}
	tiermm_topo_free(topo);
	return failures ? 1 : 0;
}
