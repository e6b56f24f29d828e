// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The in-process tiering runtime (tiermm_runtime_start(3)): two threads
 * around the engine (engine.c) and a hotness backend.
 *
 *   sampler thread:  backend poll() every POLL interval -> observations in
 *                    chunks -> liburcu wait-free queue (cds_wfcq_enqueue)
 *   engine thread:   every epoch: dequeue -> range tree -> plan within the
 *                    budget -> migration, paced -> statistics published
 *
 * Why two threads: the migration of an epoch may take long (move_pages(2)
 * of many pages, all the more under a rate limit), and sampling must go on
 * meanwhile (the scanner's passes, perf rings that would overflow, DAMON's
 * queue). The sampler never waits for the engine: enqueueing is wait-free,
 * and a queue that grows beyond QUEUE_MAX observations (the engine is far
 * behind) drops chunks, counted as lost.
 *
 * The application's threads never wait for the runtime:
 *  - tiermm_runtime_stats() copies the last published statistics inside an
 *    RCU read-side critical section (liburcu-bp, as hints.c and rtree.c:
 *    the readers are the application's threads, which the library cannot
 *    register); the engine publishes a new copy once an epoch with
 *    rcu_assign_pointer() and frees the old one after a grace period
 *    (synchronize_rcu(): a membarrier, microseconds on hardware; under
 *    TCG emulation it costs milliseconds, hence once, not more);
 *  - tiermm_runtime_set_budget() stores one atomic word that the engine
 *    reads at its next epoch;
 *  - hints (tiermm_hint()) are read by the engine through their own RCU
 *    snapshots.
 * The runtime's mutex and condition variable are used by its two threads
 * (the CPU quota's accounting, sleeping) and by stop(), never by those
 * calls.
 *
 * Pacing of the migration (engine.h, struct tiermm__pace), checked before
 * every move_pages(2) batch:
 *  - rate limit: a token bucket of rate_limit bytes a second holding at
 *    most one epoch's worth (at least 2 MiB, one huge page); a batch covers
 *    at most the tokens left, so the bytes moved never exceed the bucket;
 *  - CPU quota: credit grows by quota x wall time and shrinks by the CPU
 *    time of the two runtime threads, capped at two epochs' worth. An
 *    epoch starts only when the credit is not negative (the engine sleeps
 *    until it is). Within the epoch, what it does before it first asks
 *    the pace (ingesting observations, classifying: deciding) is not
 *    metered, and its migration (moves, and the move_pages(2) status
 *    queries of page mode) may go on for as long as it decided, or for
 *    as long as the credit it had left, whichever is more; the debt is
 *    paid back before the next epoch starts. So the CPU stays at the quota
 *    on average (one epoch may borrow about twice what its decision
 *    cost), and an epoch with pages to move gets to move some. Metering
 *    the moves against the credit alone was a livelock when deciding
 *    costs more than the credit's cap (two epochs' worth: 50 ms at 5% and
 *    500 ms epochs; the engine's page mode takes 100-600 ms of emulated
 *    CPU for it under TCG): every epoch spent its credit deciding, every
 *    move was refused, and nothing ever migrated.
 *    The sampler has a credit of its own at half the quota (it skips
 *    polls when that runs out, but finishes a pass it started and the
 *    reporting passes that follow an arming one: scan_backend.c), and
 *    waits until its credit is back rather than waking up to skip
 *    (under TCG twenty wake-ups a second took its whole share), so sampling
 *    alone cannot starve classification and migration. CPU spent
 *    outside our threads (kdamond, the damon backend's reader thread) is
 *    reported under sampling but not throttled: the runtime cannot slow it
 *    down other than by stopping it;
 *  - stop(): the engine stops at the next batch (at most 64 MiB).
 *
 * fork(): the runtime's threads do not exist in a child. A handler
 * registered with pthread_atfork() counts forks in the child; a handle
 * started before the current fork count belongs to a parent, and every call
 * but stop() fails with EOWNERDEAD. stop() then frees what is plain memory
 * without touching the parent's kernel state: no join, no backend close
 * (the damon backend would switch off the parent's kdamond), descriptors
 * and the backend's own memory are left (inherited copies). The child
 * starts a runtime of its own with tiermm_runtime_start() if it wants one
 * ("not at all", unless asked). liburcu-bp's own fork handlers are
 * registered by hints.c, which start() initialises.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <urcu/urcu-bp.h>
#include <urcu/wfcqueue.h>

#include "internal.h"
#include "engine.h"

#define DEF_EPOCH_MS 500
#define MIN_EPOCH_MS 10
#define MAX_EPOCH_MS 60000
#define DEF_RATE_MIB 256.0
#define DEF_QUOTA 0.05
#define POLL_MAX_NS 100000000ULL	/* sampler polls at least every 100 ms */
#define POLL_MIN_NS 10000000ULL
#define QUEUE_MAX (1u << 17)	/* observations queued (12 MiB) */
/* Settling (tiermm_runtime_opts.backoff_max): see engine_settle(). */
#define DEF_BACKOFF 32
#define WARM_EPOCHS 8		/* never before this many epochs */
#define SLOW_POLLS 2		/* settled: sampler rounds a slow epoch */
#define SHARE_BIT (1ULL << 63)
#define MPOL_PREFERRED_ 1		/* set_mempolicy(2) modes (linux/mempolicy.h) */
#define MPOL_PREFERRED_MANY_ 5	/* ... since Linux 5.15 */
#define SHARE_ONE 1000000000ULL	/* shares in billionths */

struct chunk {
	struct cds_wfcq_node node;
	size_t n;
	struct tiermm__obs obs[];
};

struct tiermm_runtime {
	unsigned long fork_gen;
	/* Configuration, immutable once started. */
	pid_t pid;
	int fast_tier, slow_tier;
	uint64_t epoch_ns, poll_ns;
	double rate;		/* bytes/s; 0: unlimited */
	double quota;		/* share of one CPU; 0: none */
	uint64_t capacity;	/* fast tier, bytes */
	uint64_t ps;
	unsigned long slow_mask[TIERMM__MAX_NODES / (8 * sizeof(unsigned long))];
	const struct tiermm__backend_ops *bops;
	struct tiermm__backend *backend;
	char backend_name[16];
	char backend_why[512];
	struct tiermm_topo *own_topo;
	struct tiermm__engine *engine;
	uint64_t t_start;

	/* Sampler -> engine. */
	struct __cds_wfcq_head qhead;
	struct cds_wfcq_tail qtail;
	uint64_t queued;	/* __atomic: observations in the queue */

	/* __atomic counters. */
	uint64_t samples, queue_lost, backend_lost;
	uint64_t sampler_cpu_ns, engine_cpu_ns, helper_cpu_ns;
	uint64_t sampler_skips;
	uint64_t budget_req;	/* bytes, or SHARE_BIT | billionths */
	int halt;
	unsigned int backoff;	/* the pace: 1 full, N times slower */
	unsigned int backoff_max;

	/* The runtime threads and stop(). */
	pthread_t engine_thr, sampler_thr;
	bool engine_started, sampler_started;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	/* under lock */
	int state, error;
	char error_msg[256];
	uint64_t wake_gen;	/* the pace went back to full: sleepers wake */
	double credit_ns;	/* CPU quota */
	uint64_t q_wall, q_cpu;

	/* Sampler thread only: its own share of the quota. */
	double s_credit_ns;
	uint64_t s_wall, s_cpu;

	/* Engine thread only. */
	uint64_t ep_cpu0;	/* its CPU time when the epoch started */
	bool ep_moving;		/* pace_allow() was asked this epoch */
	double ep_floor;	/* the credit this epoch's moves may spend down to */
	double tokens;		/* rate limit, bytes */
	uint64_t tok_last;
	bool rate_hit, quota_hit;
	uint64_t rate_limited, quota_limited;
	uint64_t cpu_classify_ns, cpu_migrate_ns;
	struct tiermm__settle settle;
	uint64_t nomem_seen;	/* the engine's ENOMEM failures, last epoch */
	uint64_t seen_budget, seen_hints;
	uint64_t backoff_epochs;
	uint64_t scan_window_ns;	/* sampler: the scan backend's window; 0: none */

	/* Published statistics (RCU). */
	struct tiermm_runtime_stats *pub;
};

static unsigned long fork_gen;	/* __atomic; children increment it */
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;
static const struct tiermm__backend_ops *test_backend;
static const struct tiermm__env_ops *test_env;
static void *test_env_arg;

void tiermm__runtime_set_test_backend(const struct tiermm__backend_ops *ops)
{
	test_backend = ops;
}

void tiermm__runtime_set_test_env(const struct tiermm__env_ops *ops, void *arg)
{
	test_env = ops;
	test_env_arg = arg;
}

static void fork_child(void)
{
	__atomic_add_fetch(&fork_gen, 1, __ATOMIC_RELAXED);
}

static void fork_setup(void)
{
	pthread_atfork(NULL, NULL, fork_child);
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static bool halted(struct tiermm_runtime *rt)
{
	return __atomic_load_n(&rt->halt, __ATOMIC_ACQUIRE);
}

/* Sleep until the absolute CLOCK_MONOTONIC time, or until halted. */
static void sleep_until(struct tiermm_runtime *rt, uint64_t deadline)
{
	struct timespec ts = { .tv_sec = (time_t)(deadline / 1000000000ULL),
			       .tv_nsec = (long)(deadline % 1000000000ULL) };

	pthread_mutex_lock(&rt->lock);
	while (!halted(rt) && mono_ns() < deadline)
		if (pthread_cond_timedwait(&rt->cond, &rt->lock, &ts) == ETIMEDOUT)
			break;
	pthread_mutex_unlock(&rt->lock);
}

/*
 * The sampler's sleep: until deadline, halted, or the pace went back to
 * full (wake_gen moved on from gen).
 */
static void sleep_until_wake(struct tiermm_runtime *rt, uint64_t deadline, uint64_t gen)
{
	struct timespec ts = { .tv_sec = (time_t)(deadline / 1000000000ULL),
			       .tv_nsec = (long)(deadline % 1000000000ULL) };

	pthread_mutex_lock(&rt->lock);
	while (!halted(rt) && rt->wake_gen == gen && mono_ns() < deadline)
		if (pthread_cond_timedwait(&rt->cond, &rt->lock, &ts) == ETIMEDOUT)
			break;
	pthread_mutex_unlock(&rt->lock);
}

static void halt(struct tiermm_runtime *rt)
{
	pthread_mutex_lock(&rt->lock);
	__atomic_store_n(&rt->halt, 1, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&rt->cond);
	pthread_mutex_unlock(&rt->lock);
}

/* The first end wins: EXITED for -ESRCH, else FAILED with the message. */
static void finish(struct tiermm_runtime *rt, int err, const char *msg)
{
	pthread_mutex_lock(&rt->lock);
	if (rt->state == TIERMM_RUNTIME_RUNNING) {
		rt->state = err == -ESRCH ? TIERMM_RUNTIME_EXITED : TIERMM_RUNTIME_FAILED;
		rt->error = err;
		snprintf(rt->error_msg, sizeof(rt->error_msg), "%s", msg);
	}
	__atomic_store_n(&rt->halt, 1, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&rt->cond);
	pthread_mutex_unlock(&rt->lock);
	tiermm__log(err == -ESRCH ? TIERMM_LOG_INFO : TIERMM_LOG_ERROR,
		    "tiering runtime for pid %d stopped: %s", (int)rt->pid, msg);
}

/* ---- CPU quota ---- */

/* The credit now (under rt->lock). */
static double credit_locked(struct tiermm_runtime *rt)
{
	uint64_t now = mono_ns();
	uint64_t cpu = __atomic_load_n(&rt->sampler_cpu_ns, __ATOMIC_RELAXED) +
		       __atomic_load_n(&rt->engine_cpu_ns, __ATOMIC_RELAXED);
	double cap = rt->quota * 2.0 * (double)rt->epoch_ns;

	rt->credit_ns += rt->quota * (double)(now - rt->q_wall) - (double)(cpu - rt->q_cpu);
	if (rt->credit_ns > cap)
		rt->credit_ns = cap;
	rt->q_wall = now;
	rt->q_cpu = cpu;
	return rt->credit_ns;
}

static double credit(struct tiermm_runtime *rt)
{
	double c;

	if (!rt->quota)
		return 1;
	pthread_mutex_lock(&rt->lock);
	c = credit_locked(rt);
	pthread_mutex_unlock(&rt->lock);
	return c;
}

/*
 * The sampler's credit: it may use half of the quota, so that sampling
 * alone cannot starve classification and migration (the scanner on a large
 * process, or under emulation, could take all of it).
 */
static double sampler_credit(struct tiermm_runtime *rt)
{
	uint64_t now = mono_ns(), cpu = tiermm__thread_cpu_ns();
	double share = rt->quota / 2, cap = share * 2.0 * (double)rt->epoch_ns;

	if (!rt->quota)
		return 1;
	rt->s_credit_ns += share * (double)(now - rt->s_wall) - (double)(cpu - rt->s_cpu);
	if (rt->s_credit_ns > cap)
		rt->s_credit_ns = cap;
	rt->s_wall = now;
	rt->s_cpu = cpu;
	return rt->s_credit_ns;
}

/* ---- sampler thread ---- */

static int sink(const struct tiermm__obs *obs, size_t n, void *ctx)
{
	struct tiermm_runtime *rt = ctx;
	struct chunk *c;
	size_t seen = 0;

	if (!n)
		return 0;
	/* what a clearing read found present is no sample */
	for (size_t i = 0; i < n; i++)
		seen += !(obs[i].flags & TIERMM__OBS_PRESENT);
	__atomic_add_fetch(&rt->samples, seen, __ATOMIC_RELAXED);
	if (__atomic_load_n(&rt->queued, __ATOMIC_RELAXED) + n > QUEUE_MAX ||
	    !(c = malloc(sizeof(*c) + n * sizeof(*obs)))) {
		__atomic_add_fetch(&rt->queue_lost, n, __ATOMIC_RELAXED);
		return 0;
	}
	cds_wfcq_node_init(&c->node);
	c->n = n;
	memcpy(c->obs, obs, n * sizeof(*obs));
	__atomic_add_fetch(&rt->queued, n, __ATOMIC_RELAXED);
	cds_wfcq_enqueue(&rt->qhead, &rt->qtail, &c->node);
	return 0;
}

static void sampler_counters(struct tiermm_runtime *rt)
{
	struct tiermm__backend_stats bs;

	memset(&bs, 0, sizeof(bs));
	rt->bops->stats(rt->backend, &bs);
	__atomic_store_n(&rt->backend_lost, bs.lost + bs.dropped, __ATOMIC_RELAXED);
	__atomic_store_n(&rt->helper_cpu_ns, rt->bops->cpu_ns(rt->backend),
			 __ATOMIC_RELAXED);
	__atomic_store_n(&rt->sampler_cpu_ns, tiermm__thread_cpu_ns(), __ATOMIC_RELAXED);
	__atomic_store_n(&rt->scan_window_ns, bs.window_ns, __ATOMIC_RELAXED);
}

/*
 * The sampler's pause between rounds (a poll, or a scanner burst) at pace
 * 1/slow: poll_ns at the full pace; settled, SLOW_POLLS rounds a slow
 * epoch. The engine then gets as many reports an epoch at 1/32 as at 1/8
 * (a burst is SCAN_BURST reporting passes: 8 an epoch, half the heat's
 * decay period), not 8 times more: at 1/32 a pause of poll_ns x 32 (1.6 s
 * at the default epoch) gave the engine ten bursts for each of its 16 s
 * epochs, and they were most of a settled runtime's CPU (gups in the TCG
 * guest, 25% of a CPU, two thirds of it the scanner's). Two rounds, not
 * four: settled, the scanner was still most of the CPU (gups in
 * instruction time, tierbench1, 120 s: sampling 3.1 of 4.6 CPU seconds;
 * docs/tiering-benchmark.md), and a shift is still seen
 * at the end of the epoch it happens in, by counts a decay period deep.
 */
static uint64_t idle_gap(const struct tiermm_runtime *rt, unsigned int slow)
{
	uint64_t gap = rt->poll_ns * slow;

	if (slow > 1 && rt->epoch_ns * slow / SLOW_POLLS > gap)
		gap = rt->epoch_ns * slow / SLOW_POLLS;
	return gap;
}

/*
 * The runtime's own memory (the engine's tables and lists, the sampler's
 * buffers) comes from the slow tier: each runtime thread prefers its nodes.
 * On a full fast tier it would otherwise take the room a promotion was
 * made for, and in-process the engine counts it against the budget as the
 * application's (tierbench, zipf-shift: the engine demoted a 2 MiB huge
 * page of its own heap to make room, the heap took the room again, and
 * 2231 promotions failed with ENOMEM). Preferred, not bound: where the slow
 * tier is full, the kernel takes memory from elsewhere. Threads of the
 * application are not affected; pages they touch first go by their policy.
 */
static void prefer_slow_tier(struct tiermm_runtime *rt, const char *who)
{
	const unsigned long maxnode = TIERMM__MAX_NODES + 1;
	int first = -1;

	for (int i = 0; i < TIERMM__MAX_NODES && first < 0; i++)
		if (rt->slow_mask[i / (8 * sizeof(unsigned long))] &
		    (1UL << (i % (8 * sizeof(unsigned long)))))
			first = i;
	if (first < 0)
		return;
	if (!syscall(SYS_set_mempolicy, MPOL_PREFERRED_MANY_, rt->slow_mask, maxnode))
		return;
	/* before Linux 5.15: the first node of the tier */
	{
		unsigned long one[TIERMM__MAX_NODES / (8 * sizeof(unsigned long))] = { 0 };
		int err;

		one[first / (8 * sizeof(unsigned long))] = 1UL << (first % (8 * sizeof(unsigned long)));
		if (!syscall(SYS_set_mempolicy, MPOL_PREFERRED_, one, maxnode))
			return;
		err = errno;
		tiermm__log(TIERMM_LOG_WARN,
			    "tiering runtime: %s thread: set_mempolicy(MPOL_PREFERRED, node %d): %s; its memory goes where the kernel puts it",
			    who, first, strerror(err));
	}
}

static void *sampler_main(void *arg)
{
	struct tiermm_runtime *rt = arg;
	uint64_t next = mono_ns(), last_counters = 0;
	bool busy = false;

	prefer_slow_tier(rt, "sampler");

	rt->s_wall = mono_ns();
	rt->s_cpu = tiermm__thread_cpu_ns();
	rt->s_credit_ns = rt->quota * (double)rt->epoch_ns;
	while (!halted(rt)) {
		uint64_t now, wait = 0, gen = __atomic_load_n(&rt->wake_gen, __ATOMIC_ACQUIRE);
		unsigned int slow = rt->bops->fixed_poll ? 1 :
				    __atomic_load_n(&rt->backoff, __ATOMIC_RELAXED);
		double sc = sampler_credit(rt);

		/* over the quota, a backend in mid-pass still finishes it */
		if (sc >= 0 || busy) {
			int ret = rt->bops->poll(rt->backend, sink, rt);

			busy = ret == 1;

			if (ret < 0) {
				char msg[256];

				snprintf(msg, sizeof(msg), "%s", tiermm_errmsg());
				sampler_counters(rt);
				finish(rt, ret, msg);
				break;
			}
		} else {
			__atomic_add_fetch(&rt->sampler_skips, 1, __ATOMIC_RELAXED);
			/*
			 * Until the credit is back (up to half an epoch, for
			 * the counters below), not a poll period: under
			 * emulation waking up 20 times a second to skip took
			 * as much CPU as the sampler's whole share.
			 */
			wait = (uint64_t)(-sc / (rt->quota / 2)) + 1;
			if (wait > rt->epoch_ns / 2)
				wait = rt->epoch_ns / 2;
		}
		__atomic_store_n(&rt->sampler_cpu_ns, tiermm__thread_cpu_ns(), __ATOMIC_RELAXED);
		now = mono_ns();
		if (now - last_counters >= rt->epoch_ns / 2) {
			sampler_counters(rt);
			last_counters = now;
		}
		/* a pass or a burst under way comes on time, at any pace */
		next += busy ? rt->poll_ns : idle_gap(rt, slow);
		if (next < now + wait)
			next = now + wait;
		sleep_until_wake(rt, next, gen);
		if (__atomic_load_n(&rt->wake_gen, __ATOMIC_ACQUIRE) != gen)
			next = mono_ns();	/* full pace again: poll now */
	}
	sampler_counters(rt);
	return NULL;
}

/* ---- engine thread ---- */

static uint64_t pace_allow(void *ctx)
{
	struct tiermm_runtime *rt = ctx;
	uint64_t now;

	if (halted(rt))
		return 0;
	if (rt->quota) {
		uint64_t cpu = tiermm__thread_cpu_ns();
		double c;

		__atomic_store_n(&rt->engine_cpu_ns, cpu, __ATOMIC_RELAXED);
		c = credit(rt);
		if (!rt->ep_moving) {
			/*
			 * The epoch's first migration work: it may migrate for
			 * as long as it decided, or on the credit left if that
			 * is more.
			 */
			double decided = (double)(cpu - rt->ep_cpu0);

			rt->ep_moving = true;
			rt->ep_floor = c - decided < 0 ? c - decided : 0;
		}
		if (c < rt->ep_floor) {
			rt->quota_hit = true;
			return 0;
		}
	}
	if (!rt->rate)
		return UINT64_MAX;
	now = mono_ns();
	rt->tokens += rt->rate * (double)(now - rt->tok_last) / 1e9;
	rt->tok_last = now;
	{
		double cap = rt->rate * (double)rt->epoch_ns / 1e9;

		if (cap < (double)(2u << 20))
			cap = (double)(2u << 20);
		if (rt->tokens > cap)
			rt->tokens = cap;
	}
	if (rt->tokens < (double)rt->ps) {
		rt->rate_hit = true;
		return 0;
	}
	return (uint64_t)rt->tokens;
}

static void pace_used(void *ctx, uint64_t bytes)
{
	struct tiermm_runtime *rt = ctx;

	rt->tokens -= (double)bytes;
}

static void budget_decode(uint64_t w, struct tiermm__budget_req *req)
{
	if (w & SHARE_BIT) {
		req->share = (double)(w & ~SHARE_BIT) / (double)SHARE_ONE;
		req->bytes = 0;
	} else {
		req->share = 0;
		req->bytes = w;
	}
}

/* Publish the statistics (engine thread, or start() before the threads). */
static int publish(struct tiermm_runtime *rt)
{
	struct tiermm_runtime_stats *s = calloc(1, sizeof(*s)), *old;
	uint64_t helper = __atomic_load_n(&rt->helper_cpu_ns, __ATOMIC_RELAXED), window;

	if (!s)
		return -ENOMEM;
	s->sz = sizeof(*s);
	pthread_mutex_lock(&rt->lock);
	s->state = rt->state;
	s->error = rt->error;
	snprintf(s->error_msg, sizeof(s->error_msg), "%s", rt->error_msg);
	pthread_mutex_unlock(&rt->lock);
	s->pid = rt->pid;
	s->fast_tier = rt->fast_tier;
	s->slow_tier = rt->slow_tier;
	snprintf(s->backend, sizeof(s->backend), "%s", rt->backend_name);
	snprintf(s->backend_why, sizeof(s->backend_why), "%s", rt->backend_why);
	tiermm__engine_stats(rt->engine, s);
	s->samples = __atomic_load_n(&rt->samples, __ATOMIC_RELAXED);
	s->samples_lost = __atomic_load_n(&rt->queue_lost, __ATOMIC_RELAXED) +
			  __atomic_load_n(&rt->backend_lost, __ATOMIC_RELAXED);
	s->rate_limited = rt->rate_limited;
	s->quota_limited = rt->quota_limited +
			   __atomic_load_n(&rt->sampler_skips, __ATOMIC_RELAXED);
	s->cpu_sampling_s = (double)(__atomic_load_n(&rt->sampler_cpu_ns, __ATOMIC_RELAXED) +
				     helper) / 1e9;
	s->cpu_classify_s = (double)rt->cpu_classify_ns / 1e9;
	s->cpu_migrate_s = (double)rt->cpu_migrate_ns / 1e9;
	s->wall_s = (double)(mono_ns() - rt->t_start) / 1e9;
	s->backoff = __atomic_load_n(&rt->backoff, __ATOMIC_RELAXED);
	s->backoff_epochs = rt->backoff_epochs;
	window = __atomic_load_n(&rt->scan_window_ns, __ATOMIC_RELAXED);
	s->scan_window_ms = window ? (double)window / 1e6 : NAN;
	old = rt->pub;
	rcu_assign_pointer(rt->pub, s);
	if (old) {
		urcu_bp_synchronize_rcu();
		free(old);
	}
	return 0;
}

/* Dequeue every chunk into the engine. */
/* Take the sampler's observations into the engine; the CPU it took, in ns. */
static uint64_t drain(struct tiermm_runtime *rt)
{
	uint64_t t0 = tiermm__thread_cpu_ns();
	struct cds_wfcq_node *node;

	while ((node = __cds_wfcq_dequeue_blocking(&rt->qhead, &rt->qtail))) {
		struct chunk *c = caa_container_of(node, struct chunk, node);

		tiermm__engine_record(rt->engine, c->obs, c->n);
		__atomic_sub_fetch(&rt->queued, c->n, __ATOMIC_RELAXED);
		free(c);
	}
	return tiermm__thread_cpu_ns() - t0;
}

/* Back to the full pace (engine thread): wake the sampler if it was slow. */
static void pace_full(struct tiermm_runtime *rt)
{
	rt->settle.quiet = 0;
	if (__atomic_load_n(&rt->backoff, __ATOMIC_RELAXED) == 1)
		return;
	pthread_mutex_lock(&rt->lock);
	__atomic_store_n(&rt->backoff, 1, __ATOMIC_RELAXED);
	__atomic_store_n(&rt->wake_gen, rt->wake_gen + 1, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&rt->cond);
	pthread_mutex_unlock(&rt->lock);
}

/* A new budget or a new hint since the epoch started (engine thread). */
static bool pace_news(struct tiermm_runtime *rt)
{
	if (__atomic_load_n(&rt->budget_req, __ATOMIC_RELAXED) != rt->seen_budget)
		return true;
	return !rt->pid && tiermm__hints_generation() != rt->seen_hints;
}

/*
 * Sleep until the next epoch. At a reduced pace, look every base epoch
 * whether the application set a budget or a hint (those calls only store
 * a word: they never wait for us), and start the epoch then (and count
 * the next one from now, not from the slow deadline); and publish
 * the statistics, so that their CPU times and counters are never more
 * than an epoch old.
 * Page mode, settled: also take in the sampler's reports as they come,
 * and end the epoch at once when their plan share says the hot set moved
 * (tiermm__settle_share_fell(); the epoch's settling step then brings the
 * full pace back). Otherwise a shift waited for the slow deadline: at 1/8
 * and 1/16 that was 4-8 s of zipf-shift's 10 s between shifts spent with
 * the old hot set in place (tierbench, 2026-11-29). The sampler reports
 * twice a slow epoch (SLOW_POLLS): a shift can be seen at the first burst
 * after it, half a slow epoch later, if that burst's share is low enough
 * (in the guest, at 1/32, one shift was seen at the first burst, another
 * only at the second: 14.5 s).
 */
static void engine_wait(struct tiermm_runtime *rt, uint64_t *next)
{
	for (;;) {
		uint64_t now = mono_ns(), until = *next;

		if (halted(rt) || now >= *next)
			return;
		if (rt->backoff > 1 && until > now + rt->epoch_ns)
			until = now + rt->epoch_ns;
		sleep_until(rt, until);
		if (until == *next || halted(rt))
			continue;
		if (pace_news(rt)) {
			/* the epochs after this one come at the full pace too */
			pace_full(rt);
			*next = mono_ns();
			return;
		}
		if (__atomic_load_n(&rt->queued, __ATOMIC_RELAXED)) {
			double share;

			rt->cpu_classify_ns += drain(rt);
			share = tiermm__engine_plan_share_now(rt->engine);
			if (tiermm__settle_share_fell(&rt->settle, rt->backoff, share)) {
				tiermm__log(TIERMM_LOG_DEBUG,
					    "tiering runtime: the plan holds %.3f of the pages seen (%.3f settled): the epoch ends now",
					    share, rt->settle.share_ref);
				*next = mono_ns();
				return;
			}
		}
		publish(rt);
	}
}

/*
 * Settling (after the epoch's migration). An epoch is quiet
 * (tiermm__settle_busy()) when it was not cut by pacing (rate, quota, or
 * the engine's own limit on demotions for room), its plan changed by less
 * than 1/TIERMM__SETTLE_SHARE of the budget (bytes that entered or left
 * the hot set, by address in range mode: a split can move a range's hot
 * part without changing the hot set's size, and the tree splits on what
 * each epoch brings; by count in page mode), and it moved little per base
 * epoch (a slow epoch of b base epochs may move b times as much: pages
 * that count alike, GUPS's cold ones, trade places on sampling noise at a
 * steady rate per pass, and a slow epoch sees more passes). Little, in
 * range mode: less than 1/TIERMM__SETTLE_SHARE of the budget in pages. In
 * page mode: moves that brought less than 1/TIERMM__SETTLE_GAIN of the
 * plan's heat onto the fast tier, net (tiermm__engine_gain_share()),
 * whatever their number. Why heat, not pages: a placement's long tail
 * (Zipf's pages of middling popularity, whose counts pass the hysteresis
 * one decay period after another) moved 200-700 pages an epoch, over the
 * 1/64 of the budget, for 0.2-1.5% of the plan's heat each, and kept
 * the runtime at the full pace until about 20 s: 1.45 CPU seconds between
 * 8 s and 15 s to go from 96.5% of the oracle's share to 97.8%
 * (tierbench, zipf, instruction time, 2026-11-29; over 120 s the rule
 * took zipf from 4.74 to 4.28 CPU seconds at the same share). At a slow
 * pace the tail still moves, by passes, which come slower. While the
 * signal builds up nothing moves yet but the plan changes: that is not
 * settled; an idle process's hot set stays empty: that is. After
 * WARM_EPOCHS epochs (and, in page mode, 32 passes: tiermm__engine_warm())
 * and TIERMM__SETTLE_EPOCHS quiet ones in a row at the full
 * pace, the pace drops to 1/TIERMM__BACKOFF_FIRST, then halves after each quiet
 * epoch (long ones by then) down to 1/backoff_max. Any epoch that is not
 * quiet brings the full pace back.
 *
 * Page mode's shift detector: a hot set that moves changes neither the
 * plan's size nor, at first, what moves: its new pages count less than
 * the old ones, which keep them out (swap_limit()) until they have cooled,
 * and settled, the passes that cool them come slowly. So a settled epoch
 * is also not quiet when the heat of the plan's pages that are not on the
 * fast tier (tiermm__engine_misplaced()) is TIERMM__MISPLACED_SHIFT per mille or
 * more and at least twice what it was in the quiet epochs that settled:
 * that much is noise at the threshold, which does not go away by moving
 * pages (in the unit tests' world of pages seen in 3 passes of 10, 40-56
 * per mille; a moved hot set, 100 after 8 passes and up to 240).
 * The reference must be noise, not a shift under way, so at the full pace
 * an epoch is not quiet either when promotions failed because the fast
 * tier's memory was full (nothing moved, but not because nothing had to),
 * and the quiet run starts again when the misplaced heat rises to
 * TIERMM__MISPLACED_SHIFT and twice its least in the run (tierbench,
 * zipf-shift: after refused promotions it settled at 1/32 with 65-131 per
 * mille as reference and a fifth of the oracle's share, and stayed), or
 * when the plan's share of the pages seen leaves the band of the run:
 * under 2/3 of its most, over 3/2 of its least (zipf-shift, once the
 * placement's tail no longer kept the pace full: a shift came during the
 * quiet run and it settled 1.5 s later with the shift's share as its
 * reference, 0.25 against 0.46; a 120 s run ended at a fifth of the
 * oracle's share).
 * The misplaced heat rises late once settled: the new hot pages enter the
 * plan only when their counts pass the old ones', which halve every 16
 * passes, 8 of which come in a 16 s epoch at 1/32 (in the guest a shift
 * was seen after 35 s). The plan's share of the pages a pass sees
 * (tiermm__engine_plan_share(), the least of the epoch's passes) falls at
 * the first pass after a shift: a settled epoch whose share is under 2/3
 * of the reference is not quiet either (0.43-0.47 settled, 0.085-0.265
 * after shifts in the guest).
 *
 * Why from 1 straight to 8: the scanner judges pages by the time between
 * its passes (scan_backend.c: a pass reports what was touched since the
 * one before); gaps of 200-400 ms would widen that window and make cold
 * pages look warmer. From 800 ms on, every pass after a pause only arms
 * and the burst of reporting passes after it comes on time, so a sample
 * keeps its meaning and only the pauses between bursts grow.
 * What it saves: our threads' CPU (passes, classification, residency
 * queries). kdamond and the kernel's perf sampling run at their own rate.
 */
bool tiermm__settle_share_fell(const struct tiermm__settle *s, unsigned int pace,
			       double share)
{
	return pace > 1 && share * 3 < s->share_ref * 2;
}

unsigned int tiermm__settle_step(struct tiermm__settle *s,
				 const struct tiermm__settle_in *in)
{
	unsigned int b = in->pace;

	if (in->busy) {
		s->quiet = 0;
		return 1;
	}
	if (b > 1) {
		if ((in->mis >= TIERMM__MISPLACED_SHIFT && in->mis >= 2 * s->mis_ref) ||
		    tiermm__settle_share_fell(s, b, in->share)) {
			s->quiet = 0;
			return 1;
		}
		/*
		 * A slow epoch's least share is of more passes than a fast
		 * one's, and no shift: the most of them is the reference (in
		 * the guest a fast epoch's 0.167 stood against slow ones'
		 * 0.43-0.47, and hid a shift to 0.265).
		 */
		s->share_ref = fmax(s->share_ref, in->share);
	} else {
		/*
		 * Not settled: promotions the fast tier's memory refused,
		 * misplaced heat that rises through the quiet run (a shift the
		 * hysteresis holds back: it must not become the reference),
		 * or a plan share that leaves the band of the run (under 2/3
		 * of its most: a shift, whose new hot pages the plan does not
		 * hold yet; over 3/2 of its least: the plan catching up).
		 */
		if (in->nomem || (s->quiet && in->mis >= TIERMM__MISPLACED_SHIFT &&
				  in->mis >= 2 * s->mis_min) ||
		    (s->quiet && (in->share * 3 < s->share_max * 2 ||
				  in->share * 2 > s->share_ref * 3)))
			s->quiet = 0;
		if (in->nomem)
			return 1;
		/* the noise the settled epochs compare with */
		if (!s->quiet) {
			s->mis_ref = s->mis_min = in->mis;
			s->share_ref = s->share_max = in->share;
		} else {
			s->mis_ref = in->mis > s->mis_ref ? in->mis : s->mis_ref;
			s->mis_min = in->mis < s->mis_min ? in->mis : s->mis_min;
			s->share_ref = fmin(s->share_ref, in->share);
			s->share_max = fmax(s->share_max, in->share);
		}
	}
	if (in->pace_max <= 1 || !in->warm)
		return b;
	if (b == 1 && ++s->quiet < TIERMM__SETTLE_EPOCHS)
		return 1;
	s->quiet = 0;
	b = b == 1 ? TIERMM__BACKOFF_FIRST : b * 2;
	return b > in->pace_max ? in->pace_max : b;
}

bool tiermm__settle_busy(unsigned int pace, bool paced, uint64_t moved, uint64_t dhot,
			 uint64_t budget_pages, double gain)
{
	if (paced || dhot * TIERMM__SETTLE_SHARE >= budget_pages)
		return true;
	if (!isnan(gain))
		return fabs(gain) * TIERMM__SETTLE_GAIN >= pace;
	return moved * TIERMM__SETTLE_SHARE >= budget_pages * pace;
}

static void engine_settle(struct tiermm_runtime *rt, uint64_t moved, bool paced)
{
	struct tiermm_runtime_stats es = { .sz = sizeof(es) };
	struct tiermm__settle_in in = { .pace = rt->backoff, .pace_max = rt->backoff_max };
	uint64_t budget_pages, dhot;
	unsigned int b;
	double gain;

	tiermm__engine_stats(rt->engine, &es);
	budget_pages = es.budget_bytes / rt->ps;
	dhot = tiermm__engine_plan_changed(rt->engine) / rt->ps;
	if (!budget_pages)
		budget_pages = 1;
	in.nomem = es.failed_nomem != rt->nomem_seen;
	rt->nomem_seen = es.failed_nomem;
	gain = tiermm__engine_gain_share(rt->engine);
	in.busy = tiermm__settle_busy(in.pace, paced, moved, dhot, budget_pages, gain);
	in.warm = es.epochs >= WARM_EPOCHS && tiermm__engine_warm(rt->engine);
	in.share = NAN;
	if (!in.busy) {
		in.mis = tiermm__engine_misplaced(rt->engine);
		in.share = tiermm__engine_plan_share(rt->engine);
		tiermm__log(TIERMM_LOG_DEBUG,
			    "tiering runtime: pace 1/%u, %u quiet, moved %" PRIu64 " pages for %.4f of the plan's heat, misplaced %u per mille (reference %u), plan share %.3f (reference %.3f)%s",
			    in.pace, rt->settle.quiet, moved, gain, in.mis, rt->settle.mis_ref,
			    in.share, rt->settle.share_ref,
			    in.nomem ? ", the fast tier refused promotions" : "");
	}
	b = tiermm__settle_step(&rt->settle, &in);
	if (b == in.pace)
		return;
	if (b == 1) {
		if (!in.busy)
			tiermm__log(TIERMM_LOG_DEBUG,
				    "tiering runtime: %u per mille of the plan's heat is off the fast tier (%u when it settled), the plan holds %.3f of the pages seen (%.3f): back to the full pace",
				    in.mis, rt->settle.mis_ref, in.share, rt->settle.share_ref);
		pace_full(rt);
		return;
	}
	tiermm__log(TIERMM_LOG_DEBUG,
		    "tiering runtime: placement settled: pace 1/%u (misplaced %u per mille)", b,
		    in.mis);
	__atomic_store_n(&rt->backoff, b, __ATOMIC_RELAXED);
}

static void *engine_main(void *arg)
{
	struct tiermm_runtime *rt = arg;
	struct tiermm__pace pace = { pace_allow, pace_used, rt };
	uint64_t next = mono_ns() + rt->epoch_ns;

	prefer_slow_tier(rt, "engine");
	rt->tok_last = mono_ns();
	while (!halted(rt)) {
		struct tiermm__budget_req req;
		uint64_t t0, t1, t2, moved0, tdrain;
		int ret;

		engine_wait(rt, &next);
		if (halted(rt))
			break;
		/*
		 * Over the CPU quota: wait until the debt is paid back (the
		 * sampler spends from the same credit meanwhile, so look
		 * again after each wait).
		 */
		__atomic_store_n(&rt->engine_cpu_ns, tiermm__thread_cpu_ns(), __ATOMIC_RELAXED);
		if (rt->quota) {
			double c = credit(rt);

			if (c < 0)
				rt->quota_limited++;
			while (c < 0 && !halted(rt)) {
				uint64_t w = (uint64_t)(-c / rt->quota) + 1;

				/* the statistics stay at most an epoch old */
				sleep_until(rt, mono_ns() + (w < rt->epoch_ns ? w : rt->epoch_ns));
				c = credit(rt);
				if (c < 0 && !halted(rt))
					publish(rt);
			}
			if (halted(rt))
				break;
		}
		t0 = tiermm__thread_cpu_ns();
		rt->ep_cpu0 = t0;
		rt->ep_moving = false;
		if (rt->backoff > 1 && pace_news(rt))
			pace_full(rt);
		rt->seen_budget = __atomic_load_n(&rt->budget_req, __ATOMIC_RELAXED);
		if (!rt->pid)
			rt->seen_hints = tiermm__hints_generation();
		moved0 = tiermm__engine_moved_pages(rt->engine);
		tdrain = drain(rt);
		budget_decode(rt->seen_budget, &req);
		tiermm__engine_set_pace(rt->engine, rt->backoff);
		ret = tiermm__engine_classify(rt->engine, &req, rt->capacity);
		t1 = tiermm__thread_cpu_ns();
		rt->cpu_classify_ns += t1 - t0;
		if (ret) {
			finish(rt, ret, tiermm_errmsg());
			break;
		}
		rt->rate_hit = rt->quota_hit = false;
		ret = tiermm__engine_migrate(rt->engine, &pace);
		t2 = tiermm__thread_cpu_ns();
		rt->cpu_migrate_ns += t2 - t1;
		rt->rate_limited += rt->rate_hit;
		rt->quota_limited += rt->quota_hit;
		__atomic_store_n(&rt->engine_cpu_ns, t2, __ATOMIC_RELAXED);
		if (ret < 0) {
			finish(rt, ret, tiermm_errmsg());
			break;
		}
		rt->backoff_epochs += rt->backoff > 1;
		tiermm__log(TIERMM_LOG_DEBUG,
			    "tiering runtime: epoch CPU: classify %.1f ms (observations in %.1f), migrate %.1f ms; sampler %.1f ms in all",
			    (double)(t1 - t0) / 1e6, (double)tdrain / 1e6, (double)(t2 - t1) / 1e6,
			    (double)__atomic_load_n(&rt->sampler_cpu_ns, __ATOMIC_RELAXED) / 1e6);
		engine_settle(rt, tiermm__engine_moved_pages(rt->engine) - moved0,
			      ret == 1 || rt->rate_hit || rt->quota_hit);
		publish(rt);
		next += rt->epoch_ns * rt->backoff;
		if (next < mono_ns())
			next = mono_ns();
	}
	publish(rt);
	return NULL;
}

/* ---- the API ---- */

static int check_alive(const struct tiermm_runtime *rt, const char *what)
{
	if (!rt)
		return tiermm__fail(EINVAL, "%s: rt is NULL", what);
	if (rt->fork_gen != __atomic_load_n(&fork_gen, __ATOMIC_RELAXED))
		return tiermm__fail(EOWNERDEAD,
				    "%s: this runtime was started before fork(); the child has no runtime (its threads exist in the parent only): free the handle with tiermm_runtime_stop() and start a new one",
				    what);
	return 0;
}

/* Free everything; threads joined or (child) never there. */
static void rt_free(struct tiermm_runtime *rt, bool child)
{
	struct cds_wfcq_node *node;

	for (;;) {
		node = child ? __cds_wfcq_dequeue_nonblocking(&rt->qhead, &rt->qtail) :
			       __cds_wfcq_dequeue_blocking(&rt->qhead, &rt->qtail);
		if (!node || node == CDS_WFCQ_WOULDBLOCK)
			break;
		free(caa_container_of(node, struct chunk, node));
	}
	if (!child && rt->backend)
		rt->bops->close(rt->backend);
	tiermm__engine_free(rt->engine);
	tiermm_topo_free(rt->own_topo);
	free(rt->pub);
	if (!child) {
		pthread_mutex_destroy(&rt->lock);
		pthread_cond_destroy(&rt->cond);
	}
	free(rt);
}

int tiermm_runtime_stop(struct tiermm_runtime *rt)
{
	int saved = errno;

	if (!rt)
		return 0;
	if (rt->fork_gen != __atomic_load_n(&fork_gen, __ATOMIC_RELAXED)) {
		rt_free(rt, true);
		errno = saved;
		return 0;
	}
	halt(rt);
	if (rt->sampler_started)
		pthread_join(rt->sampler_thr, NULL);
	if (rt->engine_started)
		pthread_join(rt->engine_thr, NULL);
	rt_free(rt, false);
	errno = saved;
	return 0;
}

int tiermm_runtime_stats(struct tiermm_runtime *rt, struct tiermm_runtime_stats *stats)
{
	const struct tiermm_runtime_stats *s;
	struct tiermm_runtime_stats copy;
	size_t sz;
	int ret = check_alive(rt, "tiermm_runtime_stats"), saved = errno;

	if (ret)
		return ret;
	if (!stats || stats->sz < offsetof(struct tiermm_runtime_stats, error))
		return tiermm__fail(EINVAL,
				    "tiermm_runtime_stats: stats is NULL or stats->sz (%zu) is not set",
				    stats ? stats->sz : 0);
	sz = stats->sz < sizeof(copy) ? stats->sz : sizeof(copy);
	urcu_bp_read_lock();
	s = rcu_dereference(rt->pub);
	memcpy(&copy, s, sizeof(copy));
	urcu_bp_read_unlock();
	copy.sz = sz;
	if (copy.state == TIERMM_RUNTIME_RUNNING)
		copy.wall_s = (double)(mono_ns() - rt->t_start) / 1e9;
	memcpy(stats, &copy, sz);
	errno = saved;
	return 0;
}

static int set_budget_word(struct tiermm_runtime *rt, uint64_t w)
{
	__atomic_store_n(&rt->budget_req, w, __ATOMIC_RELAXED);
	return 0;
}

int tiermm_runtime_set_budget(struct tiermm_runtime *rt, uint64_t bytes)
{
	int ret = check_alive(rt, "tiermm_runtime_set_budget");

	if (ret)
		return ret;
	if (bytes > rt->capacity)
		return tiermm__fail(EINVAL,
				    "tiermm_runtime_set_budget: %" PRIu64 " bytes is more than the fast tier (tier %d) holds, %" PRIu64 " bytes",
				    bytes, rt->fast_tier, rt->capacity);
	return set_budget_word(rt, bytes);
}

int tiermm_runtime_set_budget_share(struct tiermm_runtime *rt, double share)
{
	int ret = check_alive(rt, "tiermm_runtime_set_budget_share");

	if (ret)
		return ret;
	if (!(share > 0 && share <= 1))
		return tiermm__fail(EINVAL,
				    "tiermm_runtime_set_budget_share: share %g is not in (0, 1]",
				    share);
	return set_budget_word(rt, SHARE_BIT | (uint64_t)(share * (double)SHARE_ONE + 0.5));
}

/* The fast tier's size: its nodes' capacities (else their MemTotal here). */
static uint64_t tier_capacity(const struct tiermm_topo *topo, int tier)
{
	uint64_t sum = 0;
	int nn = tiermm_topo_nr_nodes(topo);

	for (int i = 0; i < nn; i++) {
		struct tiermm_node_info info = { .sz = sizeof(info) };
		uint64_t cap;

		if (tiermm_topo_node(topo, i, &info) || info.tier != tier)
			continue;
		cap = info.capacity;
		if (!cap) {
			struct tiermm__fs fs = { .root = "" };
			char path[96], buf[4096], *p;
			unsigned long long kb;

			snprintf(path, sizeof(path), "/sys/devices/system/node/node%d/meminfo",
				 info.os_index);
			if (tiermm__fs_read(&fs, path, buf, sizeof(buf)) > 0 &&
			    (p = strstr(buf, "MemTotal:")) && sscanf(p, "MemTotal: %llu", &kb) == 1)
				cap = (uint64_t)kb * 1024;
		}
		sum += cap;
	}
	return sum;
}

static int resolve_backend(const struct tiermm_runtime_opts *o,
			   const struct tiermm__backend_cfg *cfg,
			   const struct tiermm__backend_ops **ops, char *why, size_t whylen)
{
	const char *name = o->backend ? o->backend : "auto";
	char one[512];
	int ret;

	if (test_backend && !strcmp(name, test_backend->name)) {
		*ops = test_backend;
		snprintf(why, whylen, "%s (test backend)", name);
		return 0;
	}
	if (!strcmp(name, "auto")) {
		ret = tiermm__backend_auto(cfg, ops, why, whylen);
		if (ret == -ENODEV) {
			char list[1024];

			snprintf(list, sizeof(list), "%s", tiermm_errmsg());
			return tiermm__fail(ENOTSUP, "tiermm_runtime_start: %s", list);
		}
		return ret;
	}
	*ops = tiermm__backend_find(name);
	if (!*ops) {
		snprintf(one, sizeof(one), "%s", tiermm_errmsg());
		return tiermm__fail(EINVAL, "tiermm_runtime_start: %s", one);
	}
	one[0] = '\0';
	if ((*ops)->usable(cfg, one, sizeof(one)) != 1)
		return tiermm__fail(ENOTSUP,
				    "tiermm_runtime_start: backend '%s' was asked for and is not usable (no fallback): %s",
				    name, one[0] ? one : "no reason given");
	snprintf(why, whylen, "%s (asked for: %s)", name, one);
	return 0;
}

/* Checks that need nothing but the options. */
static int check_opts(const struct tiermm_runtime_opts *o)
{
	const unsigned int known = TIERMM_RUNTIME_NO_RATE_LIMIT | TIERMM_RUNTIME_NO_CPU_QUOTA;
	const char *w = "tiermm_runtime_start";

	if (o->flags & ~known)
		return tiermm__fail(EINVAL, "%s: unknown flags 0x%x", w, o->flags & ~known);
	if (o->pid < 0)
		return tiermm__fail(EINVAL, "%s: pid %d is negative", w, (int)o->pid);
	if (!(o->budget_share >= 0 && o->budget_share <= 1))
		return tiermm__fail(EINVAL, "%s: budget_share %g is not in (0, 1]", w,
				    o->budget_share);
	if (o->budget_share > 0 && o->budget_bytes)
		return tiermm__fail(EINVAL, "%s: budget_bytes and budget_share are both set", w);
	if (o->epoch_ms && (o->epoch_ms < MIN_EPOCH_MS || o->epoch_ms > MAX_EPOCH_MS))
		return tiermm__fail(EINVAL, "%s: epoch_ms %u is not in %d..%d", w, o->epoch_ms,
				    MIN_EPOCH_MS, MAX_EPOCH_MS);
	if (!(o->rate_limit_mib_s >= 0) || !isfinite(o->rate_limit_mib_s))
		return tiermm__fail(EINVAL, "%s: rate_limit_mib_s %g is negative or not finite",
				    w, o->rate_limit_mib_s);
	if ((o->flags & TIERMM_RUNTIME_NO_RATE_LIMIT) && o->rate_limit_mib_s)
		return tiermm__fail(EINVAL, "%s: rate_limit_mib_s with TIERMM_RUNTIME_NO_RATE_LIMIT",
				    w);
	if (!(o->cpu_quota >= 0) || !isfinite(o->cpu_quota))
		return tiermm__fail(EINVAL, "%s: cpu_quota %g is negative or not finite", w,
				    o->cpu_quota);
	if ((o->flags & TIERMM_RUNTIME_NO_CPU_QUOTA) && o->cpu_quota)
		return tiermm__fail(EINVAL, "%s: cpu_quota with TIERMM_RUNTIME_NO_CPU_QUOTA", w);
	if (o->backoff_max > TIERMM_RUNTIME_BACKOFF_MAX)
		return tiermm__fail(EINVAL, "%s: backoff_max %u is more than %d", w,
				    o->backoff_max, TIERMM_RUNTIME_BACKOFF_MAX);
	if (o->fast_tier < 0 || o->slow_tier < 0)
		return tiermm__fail(ENOENT, "%s: tier %d does not exist", w,
				    o->fast_tier < 0 ? o->fast_tier : o->slow_tier);
	return 0;
}

static int start_thread(struct tiermm_runtime *rt, pthread_t *thr, void *(*fn)(void *),
			const char *name)
{
	sigset_t all, old;
	int ret;

	/* The application's signals are not ours to receive. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	ret = pthread_create(thr, NULL, fn, rt);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret)
		return tiermm__fail(ret, "tiermm_runtime_start: cannot start a thread: %s",
				    strerror(ret));
	pthread_setname_np(*thr, name);
	return 0;
}

int tiermm_runtime_start(const struct tiermm_runtime_opts *opts, struct tiermm_runtime **out)
{
	const size_t min_sz = offsetof(struct tiermm_runtime_opts, pid) + sizeof(pid_t);
	struct tiermm_runtime_opts o;
	struct tiermm__backend_cfg bcfg;
	struct tiermm__engine_cfg ecfg;
	const struct tiermm__backend_ops *bops = NULL;
	const struct tiermm_topo *topo;
	struct tiermm_runtime *rt = NULL;
	pthread_condattr_t ca;
	uint64_t fast_now, resident;
	char why[512];
	int ret, nr_tiers, saved = errno;

	if (!out)
		return tiermm__fail(EINVAL, "tiermm_runtime_start: rt is NULL");
	*out = NULL;
	ret = tiermm__opts_check(opts, min_sz, sizeof(o), "tiermm_runtime_start");
	if (ret)
		return ret;
	memset(&o, 0, sizeof(o));
	if (opts)
		memcpy(&o, opts, opts->sz < sizeof(o) ? opts->sz : sizeof(o));
	ret = check_opts(&o);
	if (ret)
		return ret;
	if (o.pid && kill(o.pid, 0) && errno == ESRCH)
		return tiermm__fail(ESRCH, "tiermm_runtime_start: process %d does not exist",
				    (int)o.pid);
	pthread_once(&fork_once, fork_setup);
	/* hints.c's fork handlers keep liburcu-bp usable in children. */
	tiermm__hints_generation();

	memset(&bcfg, 0, sizeof(bcfg));
	bcfg.pid = o.pid;
	why[0] = '\0';
	ret = resolve_backend(&o, &bcfg, &bops, why, sizeof(why));
	if (ret)
		return ret;

	rt = calloc(1, sizeof(*rt));
	if (!rt)
		return tiermm__fail(ENOMEM, "tiermm_runtime_start: out of memory");
	rt->fork_gen = __atomic_load_n(&fork_gen, __ATOMIC_RELAXED);
	rt->t_start = mono_ns();
	rt->pid = o.pid;
	rt->ps = (uint64_t)sysconf(_SC_PAGESIZE);
	rt->bops = bops;
	snprintf(rt->backend_name, sizeof(rt->backend_name), "%s", bops->name);
	snprintf(rt->backend_why, sizeof(rt->backend_why), "%s", why);
	pthread_mutex_init(&rt->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&rt->cond, &ca);
	pthread_condattr_destroy(&ca);
	__cds_wfcq_init(&rt->qhead, &rt->qtail);

	topo = o.topo;
	if (!topo) {
		ret = tiermm_topo_load(NULL, &rt->own_topo);
		if (ret)
			goto fail;
		topo = rt->own_topo;
	}
	nr_tiers = tiermm_topo_nr_tiers(topo);
	rt->fast_tier = o.fast_tier;
	rt->slow_tier = o.slow_tier ? o.slow_tier : nr_tiers - 1;
	if (rt->fast_tier >= nr_tiers || rt->slow_tier >= nr_tiers) {
		ret = tiermm__fail(ENOENT,
				   "tiermm_runtime_start: tier %d does not exist (the topology has %d tier%s, 0..%d)",
				   rt->fast_tier >= nr_tiers ? rt->fast_tier : rt->slow_tier,
				   nr_tiers, nr_tiers == 1 ? "" : "s", nr_tiers - 1);
		goto fail;
	}
	if (nr_tiers < 2) {
		ret = tiermm__fail(ENOTSUP,
				   "tiermm_runtime_start: the machine has one memory tier: nothing to tier");
		goto fail;
	}
	if (rt->fast_tier >= rt->slow_tier) {
		ret = tiermm__fail(EINVAL,
				   "tiermm_runtime_start: the fast tier (%d) must be faster than the slow tier (%d): a lower index",
				   rt->fast_tier, rt->slow_tier);
		goto fail;
	}
	rt->capacity = tier_capacity(topo, rt->fast_tier);
	for (int i = 0; i < tiermm_topo_nr_nodes(topo); i++) {
		struct tiermm_node_info info = { .sz = sizeof(info) };

		if (!tiermm_topo_node(topo, i, &info) && info.tier == rt->slow_tier &&
		    info.os_index >= 0 && info.os_index < TIERMM__MAX_NODES)
			rt->slow_mask[info.os_index / (8 * sizeof(unsigned long))] |=
				1UL << (info.os_index % (8 * sizeof(unsigned long)));
	}
	if (o.budget_bytes > rt->capacity) {
		char nodes[128] = "";

		tiermm_topo_tier_nodes(topo, rt->fast_tier, nodes, sizeof(nodes));
		ret = tiermm__fail(EINVAL,
				   "tiermm_runtime_start: budget of %" PRIu64 " bytes is more than the fast tier (tier %d, node%s %s) holds, %" PRIu64 " bytes",
				   o.budget_bytes, rt->fast_tier, strpbrk(nodes, ",-") ? "s" : "",
				   nodes, rt->capacity);
		goto fail;
	}
	rt->epoch_ns = (uint64_t)(o.epoch_ms ? o.epoch_ms : DEF_EPOCH_MS) * 1000000ULL;
	rt->poll_ns = rt->epoch_ns / 10;
	if (rt->poll_ns > POLL_MAX_NS)
		rt->poll_ns = POLL_MAX_NS;
	if (rt->poll_ns < POLL_MIN_NS)
		rt->poll_ns = POLL_MIN_NS;
	rt->rate = (o.flags & TIERMM_RUNTIME_NO_RATE_LIMIT) ? 0 :
		   (o.rate_limit_mib_s ? o.rate_limit_mib_s : DEF_RATE_MIB) * 1048576.0;
	rt->quota = (o.flags & TIERMM_RUNTIME_NO_CPU_QUOTA) ? 0 :
		    (o.cpu_quota ? o.cpu_quota : DEF_QUOTA);
	rt->credit_ns = rt->quota * 2.0 * (double)rt->epoch_ns;
	rt->backoff = 1;
	rt->backoff_max = o.backoff_max ? o.backoff_max : DEF_BACKOFF;
	rt->q_wall = mono_ns();
	rt->tokens = rt->rate * (double)rt->epoch_ns / 1e9;

	memset(&ecfg, 0, sizeof(ecfg));
	ecfg.pid = o.pid;
	ecfg.topo = topo;
	ecfg.fast_tier = rt->fast_tier;
	ecfg.slow_tier = rt->slow_tier;
	ecfg.nr_tiers = nr_tiers;
	ret = tiermm__engine_new(&ecfg, test_env ? test_env : &tiermm__real_env,
				 test_env ? test_env_arg : NULL, &rt->engine);
	if (ret)
		goto fail;
	tiermm__engine_usage(rt->engine, &fast_now, &resident);
	if (o.budget_share > 0) {
		rt->budget_req = SHARE_BIT | (uint64_t)(o.budget_share * (double)SHARE_ONE + 0.5);
	} else if (o.budget_bytes) {
		rt->budget_req = o.budget_bytes;
	} else {
		uint64_t b = fast_now + tiermm__engine_tier_free(rt->engine, rt->fast_tier);

		rt->budget_req = b < rt->capacity ? b : rt->capacity;
	}

	ret = bops->open(&bcfg, &rt->backend);
	if (ret)
		goto fail;
	ret = publish(rt);
	if (ret) {
		ret = tiermm__fail(ENOMEM, "tiermm_runtime_start: out of memory");
		goto fail;
	}
	ret = start_thread(rt, &rt->sampler_thr, sampler_main, "tiermm-sampler");
	if (ret)
		goto fail;
	rt->sampler_started = true;
	ret = start_thread(rt, &rt->engine_thr, engine_main, "tiermm-engine");
	if (ret)
		goto fail;
	rt->engine_started = true;
	tiermm__log(TIERMM_LOG_INFO,
		    "tiering runtime: pid %d, backend %s, tiers %d -> %d, budget %s%" PRIu64 "%s, epoch %" PRIu64 " ms",
		    (int)rt->pid, rt->backend_why, rt->fast_tier, rt->slow_tier,
		    (rt->budget_req & SHARE_BIT) ? "share " : "",
		    (uint64_t)((rt->budget_req & SHARE_BIT) ? (rt->budget_req & ~SHARE_BIT) :
						      rt->budget_req),
		    (rt->budget_req & SHARE_BIT) ? " ppb" : " bytes", rt->epoch_ns / 1000000);
	*out = rt;
	errno = saved;
	return 0;
fail:
	if (rt->sampler_started || rt->engine_started) {
		halt(rt);
		if (rt->sampler_started)
			pthread_join(rt->sampler_thr, NULL);
		if (rt->engine_started)
			pthread_join(rt->engine_thr, NULL);
	}
	rt_free(rt, false);
	errno = -ret;
	return ret;
}
