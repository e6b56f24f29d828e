// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * CPU groups for VMs that hide NUMA (vMitosis's "NUMA-oblivious" guests):
 * CPUs that share a socket hand a cache line to each other faster than
 * CPUs on different sockets, so cache-line hand-off latency reveals the
 * sockets the hypervisor does not show.
 *
 * 1. The measurement (tiermm__pingpong_measure)
 *
 * Two threads per pair, pinned to the pair's CPUs at creation
 * (pthread_attr_setaffinity_np: the calling thread's own affinity is never
 * touched), bounce one counter that sits alone on a 64-byte line. Thread A
 * waits (load-acquire spin) until the counter is even and compare-and-swaps
 * it to the next odd value; thread B waits for odd and swaps to even. The
 * spin reads and the single compare-and-swap per turn keep the line moving
 * only once per hand-off (a CAS inside the spin, as in vMitosis, would steal
 * the line back and forth while waiting); the CAS also lets either side
 * stop the pair atomically (PP_STOP). After a 1 ms warm-up, A times
 * windows of `sample_s` seconds on CLOCK_MONOTONIC, reading the clock once
 * every PP_CHECK round trips; one window gives elapsed / (2 x round trips)
 * ns per one-way hand-off, and the minimum is kept (the least disturbed
 * run, as vMitosis). A window is disturbed when either thread waited more
 * than 50 us for the other (its partner was descheduled: an interrupt is
 * shorter); the minimum is taken over undisturbed windows, A runs up to
 * 3 x `samples` windows to collect `samples` of them, and after a disturbed
 * window the next ones are halved (down to 0.5 ms) to fit between the time
 * slices of other tasks. If none was undisturbed, the minimum of all is
 * returned and a WARN message says it overestimates the latency.
 *
 * The pairs of one call run concurrently, but never more than (CPUs the
 * caller may run on) / 2 pairs at a time: more spinning threads than CPUs
 * would starve each other. The rest run in further sequential rounds.
 * A waiting thread spins PP_SPINS times between clock reads and, after
 * 50 us without progress, yields the CPU; after 1 s without progress it
 * gives up: the sample in progress is discarded, the pair stops, a WARN
 * message names it, and the minimum of the completed samples is used
 * (-ETIMEDOUT when none completed).
 *
 * 2. The clustering (tiermm__cpugroups_find)
 *
 * vMitosis measures all n(n-1)/2 pairs (18336 for 192 vCPUs, tens of
 * seconds). Here about n x groups pairs are measured, in four steps.
 * Throughout, a pair measured twice counts with its minimum: interference
 * only ever adds latency.
 *
 * a) Seed. The K = min(n, 24) CPUs at evenly spaced positions of cpus[]
 *    (j*n/K: a sequentially numbered VM's sockets all get seed CPUs) are
 *    measured all-pairs, K-1 rounds of K/2 disjoint pairs (circle method).
 *    The sorted latencies are cut at a gap: neighbours >= validate apart,
 *    the upper one >= threshold x the median of the values below it (the
 *    test a CPU passes to join a group, see b). Of such gaps the widest is
 *    taken (a narrower one can come from sockets of unequal in-socket
 *    latency). Groups are the complete-linkage clusters below the cut:
 *    every pair of a group under the cut (single linkage would chain two
 *    sockets through a third that is close to both). A cut whose clusters
 *    all have <= 2 CPUs is an SMT level (x86 cores have at most 2 threads)
 *    and is passed over: an SMT sibling is much faster than the rest of
 *    its socket and must not become a group of its own. No cut: one group.
 *    Pairs above the cut whose CPUs are both within the cut of a third CPU
 *    contradict the clusters (a disturbed measurement splits a socket):
 *    they are measured again and the seed clustered again.
 *    If only fast disjoint pairs show, they are SMT siblings or sockets
 *    that gave the seed <= 2 CPUs each: the seed is doubled once (48 CPUs
 *    give >= 3 to each of up to 16 equal sockets). Still only pairs: read
 *    as SMT siblings when there are more than 8 of them (that many 2-CPU
 *    sockets would be an implausible machine), else reported as ambiguous
 *    and never validated.
 *
 * b) Assignment. Each group keeps its typical in-group latency T_g: the
 *    median of (up to 64) in-group measurements, so one SMT sibling pair
 *    (one per CPU at most) cannot set the bar; groups with fewer than 3
 *    such measurements use the median over all groups. Every other CPU c
 *    is measured against one member of every group, the member rotating
 *    through the group, so a round can pair many new CPUs with different
 *    members of the same group (a round is one batch of disjoint pairs,
 *    built greedily; up to n/2 pairs). With g* the group closest to c and
 *    rho_g = latency(c, g) / T_g:
 *      rho_g* < threshold            -> c joins g*,
 *      otherwise                      -> c founds a new group.
 *    Ambiguous cases are measured once more, against another member:
 *    rho_g* in [threshold / 1.1, threshold x 1.3) (wider upwards: a
 *    disturbed in-socket measurement looks slow, never fast), or a second
 *    group also under 1.1 x threshold. The minimum then decides; a case
 *    still ambiguous is counted and lowers the confidence. At most one
 *    group is founded per pass: other CPUs that found no group wait to be
 *    measured against the new one (two CPUs of a socket that is not yet
 *    represented must not found two groups).
 *
 * c) Validation measurements: every pair of group representatives (first
 *    members), 2 random cross pairs per pair of groups and up to 16 random
 *    in-group pairs per group. Then the in-group pairs that would fail the
 *    checks below are measured once more (slowest first, at most
 *    max(16, n/2)).
 *
 * d) Checks, over every pair measured, against the final groups:
 *      V1 separation: max in-group x validate < min cross-group. (The
 *         vMitosis check, max in-group < 1.1 x min cross-group, lets
 *         in-group latencies exceed cross-group ones by 10%: it passes a
 *         socket merged into another when its cross latency is 1.15x the
 *         in-group one. The form here asks cross-group latencies to exceed
 *         in-group ones by the margin.)
 *      V2 no sub-structure: within each group, ignoring SMT-level pairs
 *         (faster than T_g / threshold), the sorted in-group latencies
 *         have no jump >= validate between neighbours; a jump means the
 *         group may hold two sockets (or dies) closer than threshold.
 *         Noise as large as such a jump hides it: latency alone cannot
 *         help that.
 *      One group (no cross-group scale): in-group latencies, ignoring
 *         SMT-level pairs, must be uniform: max < validate x min.
 *      An ambiguous fast-pair structure (see a) or a budget stop is never
 *         validated.
 *
 * Defaults. threshold 1.5: vMitosis groups below 1.4-1.6x the row minimum;
 * on real machines cross-socket hand-offs cost >= 1.5-2.5x in-socket ones
 * while in-socket latencies (mesh distance, noise) stay within ~1.3x of
 * their median, so 1.5 leaves margin on both sides, and being relative to
 * the group median it is not fooled by SMT siblings at 1/3 the latency.
 * validate 1.1, as vMitosis. Sockets less than validate apart are one
 * group by definition; between validate and threshold they are merged and
 * the checks report it unless noise hides it.
 *
 * Confidence (0..1, a margin, not a probability):
 *   >= 2 groups: sep = min cross / max in-group,
 *                c = clamp((sep / validate - 1) / (threshold / validate - 1))
 *                (0 at the validation limit, 1 at a threshold-sized margin);
 *   one group:   c = clamp((threshold - spread) / (threshold - 1)) x (1 - 1/n)
 *                with spread = max / min in-group latency (SMT pairs aside);
 *                (1 - 1/n) because n CPUs of equal latency could also be n
 *                one-CPU sockets: 0.5 for 2 CPUs;
 *   then x (1 - ambiguous decisions / n); capped at 0.25 when not validated;
 *   x classified / n on a budget stop. One CPU: 1.
 *
 * Budget: checked before every batch; when spent, the CPUs not yet
 * classified get group -1, budget_hit is set and nothing is validated.
 *
 * Known limits: the groups are the finest level above SMT that is
 * >= threshold apart, which on AMD machines may be the L3 complex (CCX)
 * rather than the socket; more than 16 sockets of equal size, or sockets
 * of <= 2 CPUs, can have their sockets read as SMT pairs.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysinfo.h>
#include <time.h>

#include "internal.h"
#include "probes.h"

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------------------ */
/* Ping-pong measurement                                               */
/* ------------------------------------------------------------------ */

#define PP_SAMPLES	10
#define PP_SAMPLE_S	0.01
#define PP_STOP		UINT64_MAX	/* odd: never a value B waits for */
#define PP_WARMUP_NS	1000000ULL	/* 1 ms */
#define PP_STALL_NS	1000000000ULL	/* 1 s without progress */
#define PP_YIELD_NS	50000ULL	/* yield after 50 us of waiting */
#define PP_LATE_NS	50000ULL	/* a longer wait disturbs the window */
#define PP_MIN_WINDOW_NS 500000ULL	/* windows shrink down to 0.5 ms */
#define PP_SPINS	1024		/* spins between clock reads */
#define PP_CHECK	64		/* round trips between clock reads */
#define PP_STACK	(256 * 1024)	/* thread stack size */

struct pp_pair {
	uint64_t line __attribute__((aligned(64)));	/* alone on its line */
	uint64_t b_late __attribute__((aligned(64)));	/* B's late waits */
	int cpu[2] __attribute__((aligned(64)));
	uint64_t sample_ns;
	int samples;
	int windows;		/* windows completed */
	int clean;		/* of which undisturbed */
	int stalled;		/* 1 + index of the discarded window, 0: none */
	double best_ns;		/* min over clean windows, else over all */
};

struct pp_gate {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int go;			/* 0: wait, 1: run, -1: abort */
};

struct pp_thread {
	struct pp_gate *gate;
	struct pp_pair *pair;
	int role;		/* 0: A (timer), 1: B */
};

static inline void pp_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#else
	__asm__ __volatile__("" ::: "memory");
#endif
}

/*
 * Wait until *line == want: 0; PP_STOP seen: 1; no progress for 1 s: 2.
 * A wait longer than PP_LATE_NS (the partner was descheduled, not just
 * interrupted) increments *late.
 */
static int pp_wait(uint64_t *line, uint64_t want, uint64_t *late)
{
	uint64_t start = 0;
	bool counted = false;

	for (;;) {
		for (int i = 0; i < PP_SPINS; i++) {
			uint64_t x = __atomic_load_n(line, __ATOMIC_ACQUIRE);

			if (x == want)
				return 0;
			if (x == PP_STOP)
				return 1;
			pp_relax();
		}
		uint64_t t = now_ns();

		if (!start) {
			start = t;
			continue;
		}
		if (t - start > PP_LATE_NS && !counted) {
			__atomic_fetch_add(late, 1, __ATOMIC_RELAXED);
			counted = true;
		}
		if (t - start > PP_STALL_NS)
			return 2;
		if (t - start > PP_YIELD_NS)
			sched_yield();
	}
}

/* Hand the line over: v -> v + 1. false when the partner stopped. */
static bool pp_pass(uint64_t *line, uint64_t v)
{
	uint64_t expect = v;

	return __atomic_compare_exchange_n(line, &expect, v + 1, false,
					   __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

/*
 * Thread A times windows until `samples` of them ran undisturbed (neither
 * thread waited > PP_LATE_NS for the other) or 3 x samples windows ran;
 * after a disturbed window the next ones are halved (down to 0.5 ms) to
 * fit between the time slices of whatever else runs on these CPUs.
 */
static void pp_run_a(struct pp_pair *p)
{
	uint64_t v = 0, t0 = now_ns(), t1, a_late = 0, win = p->sample_ns;
	uint64_t min_win = p->sample_ns < PP_MIN_WINDOW_NS ? p->sample_ns :
							     PP_MIN_WINDOW_NS;
	double best_any = 0;
	int w = -1;

	/* Warm-up: both threads running, the line in their caches. */
	do {
		for (int i = 0; i < PP_CHECK; i++) {
			if (pp_wait(&p->line, v, &a_late) ||
			    !pp_pass(&p->line, v))
				goto stalled;
			v += 2;
		}
	} while (now_ns() - t0 < PP_WARMUP_NS);

	for (w = 0; w < 3 * p->samples && p->clean < p->samples; w++) {
		uint64_t trips = 0, a0 = a_late;
		uint64_t b0 = __atomic_load_n(&p->b_late, __ATOMIC_RELAXED);
		double ns;

		t0 = now_ns();
		do {
			for (int i = 0; i < PP_CHECK; i++) {
				if (pp_wait(&p->line, v, &a_late) ||
				    !pp_pass(&p->line, v))
					goto stalled;
				v += 2;
			}
			trips += PP_CHECK;
			t1 = now_ns();
		} while (t1 - t0 < win);
		ns = (double)(t1 - t0) / (2.0 * (double)trips);
		if (!p->windows || ns < best_any)
			best_any = ns;
		p->windows++;
		if (a_late == a0 &&
		    __atomic_load_n(&p->b_late, __ATOMIC_RELAXED) == b0) {
			if (!p->clean || ns < p->best_ns)
				p->best_ns = ns;
			p->clean++;
		} else if (win / 2 >= min_win) {
			win /= 2;
		}
	}
	if (!p->clean)
		p->best_ns = best_any;
	__atomic_store_n(&p->line, PP_STOP, __ATOMIC_RELEASE);
	return;
stalled:
	/* Our wait timed out, or B timed out and stopped the pair. */
	p->stalled = w + 2;	/* 1: warm-up, 2: window 0, ... */
	if (!p->clean)
		p->best_ns = best_any;
	__atomic_store_n(&p->line, PP_STOP, __ATOMIC_RELEASE);
}

static void pp_run_b(struct pp_pair *p)
{
	for (uint64_t v = 1;; v += 2) {
		if (pp_wait(&p->line, v, &p->b_late) || !pp_pass(&p->line, v))
			break;
	}
	/* Wakes A if B gave up; harmless if A already stopped. */
	__atomic_store_n(&p->line, PP_STOP, __ATOMIC_RELEASE);
}

static void *pp_thread_main(void *arg)
{
	struct pp_thread *t = arg;
	int go;

	pthread_mutex_lock(&t->gate->mu);
	while (!t->gate->go)
		pthread_cond_wait(&t->gate->cv, &t->gate->mu);
	go = t->gate->go;
	pthread_mutex_unlock(&t->gate->mu);
	if (go < 0)
		return NULL;
	if (t->role == 0)
		pp_run_a(t->pair);
	else
		pp_run_b(t->pair);
	return NULL;
}

/* Run m pairs concurrently (m <= allowed CPUs / 2). 0 or -errno. */
static int pp_round(struct pp_pair *pp, int m, struct pp_thread *thr,
		    pthread_t *tid)
{
	struct pp_gate gate = { .go = 0 };
	size_t setsz = CPU_ALLOC_SIZE(TIERMM__CPU_BITS);
	cpu_set_t *set = CPU_ALLOC(TIERMM__CPU_BITS);
	int created = 0, err = 0, bad_cpu = -1;
	struct sched_param prio0 = { .sched_priority = 0 };

	if (!set)
		return tiermm__fail(ENOMEM, "ping-pong: out of memory");
	pthread_mutex_init(&gate.mu, NULL);
	pthread_cond_init(&gate.cv, NULL);
	for (int i = 0; i < 2 * m && !err; i++) {
		pthread_attr_t attr;
		int cpu = pp[i / 2].cpu[i % 2];

		thr[i] = (struct pp_thread){ &gate, &pp[i / 2], i % 2 };
		CPU_ZERO_S(setsz, set);
		CPU_SET_S((size_t)cpu, setsz, set);
		err = pthread_attr_init(&attr);
		if (err) {
			bad_cpu = cpu;
			break;
		}
		err = pthread_attr_setaffinity_np(&attr, setsz, set);
		/*
		 * Spinning threads must not inherit a real-time policy from
		 * the caller: they would keep the CPU from everything else.
		 */
		if (!err)
			err = pthread_attr_setinheritsched(&attr,
							   PTHREAD_EXPLICIT_SCHED);
		if (!err)
			err = pthread_attr_setschedpolicy(&attr, SCHED_OTHER);
		if (!err)
			err = pthread_attr_setschedparam(&attr, &prio0);
		/* Up to thousands of threads: keep their stacks small. */
		if (!err)
			err = pthread_attr_setstacksize(&attr, PP_STACK);
		if (!err)
			err = pthread_create(&tid[i], &attr, pp_thread_main,
					     &thr[i]);
		pthread_attr_destroy(&attr);
		if (err)
			bad_cpu = cpu;
		else
			created++;
	}
	pthread_mutex_lock(&gate.mu);
	gate.go = err ? -1 : 1;
	pthread_cond_broadcast(&gate.cv);
	pthread_mutex_unlock(&gate.mu);
	for (int i = 0; i < created; i++)
		pthread_join(tid[i], NULL);
	pthread_cond_destroy(&gate.cv);
	pthread_mutex_destroy(&gate.mu);
	CPU_FREE(set);
	if (err)
		return tiermm__fail(err,
				    "ping-pong: cannot start a thread pinned to CPU %d: %s",
				    bad_cpu, strerror(err));
	return 0;
}

int tiermm__pingpong_measure(const int (*pairs)[2], int npairs, double *ns,
			     void *ctx)
{
	const struct tiermm__pingpong_params *prm = ctx;
	size_t setsz = CPU_ALLOC_SIZE(TIERMM__CPU_BITS);
	cpu_set_t *allowed = NULL, *seen = NULL;
	struct pp_pair *pp = NULL;
	struct pp_thread *thr = NULL;
	pthread_t *tid = NULL;
	int samples = PP_SAMPLES, nconf, conc, ret = 0, saved_errno = errno;
	double sample_s = PP_SAMPLE_S;

	if (prm && prm->samples)
		samples = prm->samples;
	if (prm && prm->sample_s != 0)
		sample_s = prm->sample_s;
	if (samples < 1 || samples > 10000)
		return tiermm__fail(EINVAL,
				    "ping-pong: samples %d is out of range 1-10000",
				    samples);
	if (!isfinite(sample_s) || sample_s < 1e-6 || sample_s > 10)
		return tiermm__fail(EINVAL,
				    "ping-pong: sample_s %g is out of range 1e-6-10 s",
				    sample_s);
	if (npairs < 0 || (npairs > 0 && (!pairs || !ns)))
		return tiermm__fail(EINVAL, "ping-pong: bad pair list");
	if (npairs == 0)
		return 0;

	allowed = CPU_ALLOC(TIERMM__CPU_BITS);
	seen = CPU_ALLOC(TIERMM__CPU_BITS);
	if (!allowed || !seen) {
		ret = tiermm__fail(ENOMEM, "ping-pong: out of memory");
		goto out;
	}
	if (sched_getaffinity(0, setsz, allowed)) {
		int e = errno;

		ret = tiermm__fail(e, "ping-pong: sched_getaffinity: %s",
				   strerror(e));
		goto out;
	}
	CPU_ZERO_S(setsz, seen);
	nconf = get_nprocs_conf();
	for (int i = 0; i < npairs; i++) {
		for (int k = 0; k < 2; k++) {
			int cpu = pairs[i][k];

			if (cpu < 0 || cpu >= TIERMM__CPU_BITS || cpu >= nconf) {
				ret = tiermm__fail(EINVAL,
						   "ping-pong: CPU %d does not exist (this machine has %d)",
						   cpu, nconf);
				goto out;
			}
			if (CPU_ISSET_S((size_t)cpu, setsz, seen)) {
				ret = tiermm__fail(EINVAL,
						   "ping-pong: CPU %d appears twice in one batch of pairs",
						   cpu);
				goto out;
			}
			CPU_SET_S((size_t)cpu, setsz, seen);
			if (!CPU_ISSET_S((size_t)cpu, setsz, allowed)) {
				ret = tiermm__fail(EINVAL,
						   "ping-pong: CPU %d is offline or not in the calling thread's allowed CPUs",
						   cpu);
				goto out;
			}
		}
	}

	conc = CPU_COUNT_S(setsz, allowed) / 2;
	if (conc < 1)
		conc = 1;
	if (conc > npairs)
		conc = npairs;
	pp = aligned_alloc(64, (size_t)conc * sizeof(*pp));
	thr = calloc((size_t)conc * 2, sizeof(*thr));
	tid = calloc((size_t)conc * 2, sizeof(*tid));
	if (!pp || !thr || !tid) {
		ret = tiermm__fail(ENOMEM, "ping-pong: out of memory");
		goto out;
	}
	for (int base = 0; base < npairs; base += conc) {
		int m = npairs - base < conc ? npairs - base : conc;

		memset(pp, 0, (size_t)m * sizeof(*pp));
		for (int i = 0; i < m; i++) {
			pp[i].cpu[0] = pairs[base + i][0];
			pp[i].cpu[1] = pairs[base + i][1];
			pp[i].samples = samples;
			pp[i].sample_ns = (uint64_t)(sample_s * 1e9);
		}
		ret = pp_round(pp, m, thr, tid);
		if (ret)
			goto out;
		for (int i = 0; i < m; i++) {
			struct pp_pair *p = &pp[i];

			if (!p->windows) {
				ret = tiermm__fail(ETIMEDOUT,
						   "ping-pong: CPUs %d and %d made no progress for 1 s (%s): no sample completed",
						   p->cpu[0], p->cpu[1],
						   p->stalled == 1 ? "warm-up" : "first sample");
				goto out;
			}
			if (p->stalled)
				tiermm__log(TIERMM_LOG_WARN,
					    "ping-pong: CPUs %d and %d: sample %d made no progress for 1 s and was discarded; using the minimum of %d samples",
					    p->cpu[0], p->cpu[1], p->stalled - 1,
					    p->windows);
			if (!p->clean)
				tiermm__log(TIERMM_LOG_WARN,
					    "ping-pong: CPUs %d and %d: all %d samples were disturbed (a thread waited > 50 us for its partner: other tasks on these CPUs?); %.1f ns overestimates the latency",
					    p->cpu[0], p->cpu[1], p->windows,
					    p->best_ns);
			ns[base + i] = p->best_ns;
			tiermm__log(TIERMM_LOG_DEBUG,
				    "ping-pong: CPUs %d-%d: %.1f ns (%d of %d windows undisturbed)",
				    p->cpu[0], p->cpu[1], p->best_ns, p->clean,
				    p->windows);
		}
	}
out:
	free(tid);
	free(thr);
	free(pp);
	if (seen)
		CPU_FREE(seen);
	if (allowed)
		CPU_FREE(allowed);
	if (!ret)
		errno = saved_errno;
	return ret;
}

/* ------------------------------------------------------------------ */
/* Clustering                                                          */
/* ------------------------------------------------------------------ */

#define CG_THRESHOLD	1.5
#define CG_VALIDATE	1.1
#define CG_SEED		24	/* all-pairs seed size (doubled once) */
#define CG_MAX_SOCKETS	8	/* more sockets of 2 CPUs: implausible */
#define CG_TYP_SAMPLES	64	/* in-group samples kept per group for T_g */
#define CG_AMBIG	1.1	/* ambiguity band: threshold / 1.1 ... */
#define CG_AMBIG_UP	1.3	/* ... threshold x 1.3 (outliers are high) */
#define CG_VAL_IN	16	/* random in-group pairs per group */
#define CG_VAL_CROSS	2	/* random cross pairs per pair of groups */

enum { PH_SEED, PH_ASSIGN, PH_CHECK };

struct cg_meas {
	int a, b;		/* indices into cpus[] */
	double ns;
};

struct cg_group {
	int *mem;		/* indices into cpus[] */
	int nmem, capmem;
	int rr;			/* next member to use */
	int used;		/* members used by the round being built */
	double samp[CG_TYP_SAMPLES];
	int nsamp;
	double typ;
	bool dirty;
};

struct cg {
	const int *cpus;
	int n;
	tiermm__pair_measure_fn measure;
	void *mctx;
	tiermm__progress_fn progress;
	void *pctx;
	double thr, val, budget;
	uint64_t t_start;

	int *group;		/* per index: group or -1 */
	struct cg_group *g;
	int ng, capg;
	double glob_typ;
	bool glob_dirty;

	/* Assignment: per pending CPU and group, min / count / needed. */
	double *vmin;
	uint8_t *vcnt, *vneed;
	bool *rechecked;
	int *pending, npending;

	/* One batch of disjoint pairs (at most n / 2). */
	int (*bidx)[2];
	int (*bcpu)[2];
	double *bns;
	int *stamp, stampno;

	struct cg_meas *log;	/* every measurement */
	size_t nlog, caplog;
	struct cg_meas *pm;	/* per pair: the minimum (cg_dedup) */
	size_t npm;
	uint64_t npairs[3];
	int nrounds;

	int nseed;
	bool seed_all;
	bool smt_only;		/* only fast pairs, ambiguous */
	bool smt_assumed;	/* only fast pairs, read as SMT siblings */
	int smt_pairs;
	double smt_max_ns, smt_next_ns;
	int nclassified, nambig;
	bool budget_hit;
	uint64_t rng;
};

static uint64_t cg_rand(struct cg *st)
{
	/* xorshift64*: deterministic, so results are reproducible. */
	st->rng ^= st->rng >> 12;
	st->rng ^= st->rng << 25;
	st->rng ^= st->rng >> 27;
	return st->rng * 2685821657736338717ULL;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static int cmp_meas(const void *a, const void *b)
{
	return cmp_double(&((const struct cg_meas *)a)->ns,
			  &((const struct cg_meas *)b)->ns);
}

static int cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;

	return (x > y) - (x < y);
}

/* Median of v[0..n-1] (n > 0); sorts v. */
static double median_sort(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static double cg_glob_typ(struct cg *st)
{
	if (st->glob_dirty) {
		double *v = malloc(sizeof(*v) * CG_TYP_SAMPLES *
				   (size_t)(st->ng ? st->ng : 1));
		int nv = 0;

		if (!v)
			return st->glob_typ;	/* keep the previous value */
		for (int g = 0; g < st->ng; g++)
			for (int i = 0; i < st->g[g].nsamp; i++)
				v[nv++] = st->g[g].samp[i];
		if (nv)
			st->glob_typ = median_sort(v, nv);
		free(v);
		st->glob_dirty = false;
	}
	return st->glob_typ;
}

/* Typical in-group latency of group gi (see the top comment). */
static double cg_typ(struct cg *st, int gi)
{
	struct cg_group *g = &st->g[gi];

	if (g->nsamp < 3)
		return cg_glob_typ(st);
	if (g->dirty) {
		double v[CG_TYP_SAMPLES];

		memcpy(v, g->samp, sizeof(double) * (size_t)g->nsamp);
		g->typ = median_sort(v, g->nsamp);
		g->dirty = false;
	}
	return g->typ;
}

static void cg_add_sample(struct cg *st, int gi, double ns)
{
	struct cg_group *g = &st->g[gi];

	if (g->nsamp < CG_TYP_SAMPLES) {
		g->samp[g->nsamp++] = ns;
		g->dirty = true;
		st->glob_dirty = true;
	}
}

static int cg_add_member(struct cg *st, int gi, int c)
{
	struct cg_group *g = &st->g[gi];

	if (g->nmem == g->capmem) {
		int cap = g->capmem ? 2 * g->capmem : 8;
		int *m = realloc(g->mem, sizeof(*m) * (size_t)cap);

		if (!m)
			return tiermm__fail(ENOMEM, "cpugroups: out of memory");
		g->mem = m;
		g->capmem = cap;
	}
	g->mem[g->nmem++] = c;
	st->group[c] = gi;
	return 0;
}

/* A new empty group; returns its index or -ENOMEM. */
static int cg_new_group(struct cg *st)
{
	if (st->ng == st->capg) {
		int cap = st->capg ? 2 * st->capg : 8;
		struct cg_group *g = realloc(st->g, sizeof(*g) * (size_t)cap);

		if (!g)
			return tiermm__fail(ENOMEM, "cpugroups: out of memory");
		st->g = g;
		if (st->vmin) {
			/* Re-lay the per-CPU vectors out with cap columns. */
			size_t cells = (size_t)st->n * (size_t)cap;
			double *vs = calloc(cells, sizeof(*vs));
			uint8_t *vc = calloc(cells, 1), *vn = calloc(cells, 1);

			if (!vs || !vc || !vn) {
				free(vs);
				free(vc);
				free(vn);
				return tiermm__fail(ENOMEM,
						    "cpugroups: out of memory");
			}
			for (int c = 0; c < st->n; c++) {
				size_t o = (size_t)c * (size_t)st->capg;
				size_t nw = (size_t)c * (size_t)cap;

				memcpy(vs + nw, st->vmin + o,
				       sizeof(*vs) * (size_t)st->capg);
				memcpy(vc + nw, st->vcnt + o, (size_t)st->capg);
				memcpy(vn + nw, st->vneed + o, (size_t)st->capg);
			}
			free(st->vmin);
			free(st->vcnt);
			free(st->vneed);
			st->vmin = vs;
			st->vcnt = vc;
			st->vneed = vn;
		}
		st->capg = cap;
	}
	memset(&st->g[st->ng], 0, sizeof(st->g[0]));
	st->g[st->ng].dirty = true;
	if (st->vneed)
		for (int c = 0; c < st->n; c++)
			st->vneed[(size_t)c * (size_t)st->capg + (size_t)st->ng] = 1;
	return st->ng++;
}

static double cg_elapsed(const struct cg *st)
{
	return (double)(now_ns() - st->t_start) / 1e9;
}

static void cg_report(struct cg *st, const char *what, int done, int total)
{
	if (st->progress)
		st->progress(what, done, total, st->pctx);
}

/*
 * Measure the nb pairs in st->bidx into st->bns and log them.
 * 0, 1 when the budget is spent (nothing measured), or -errno.
 */
static int cg_run(struct cg *st, int nb, int phase)
{
	int r;

	if (st->budget > 0 && cg_elapsed(st) >= st->budget) {
		st->budget_hit = true;
		return 1;
	}
	for (int i = 0; i < nb; i++) {
		st->bcpu[i][0] = st->cpus[st->bidx[i][0]];
		st->bcpu[i][1] = st->cpus[st->bidx[i][1]];
	}
	r = st->measure((const int (*)[2])st->bcpu, nb, st->bns, st->mctx);
	if (r) {
		/* The measure function described its failure. */
		if (r > 0)
			r = -EIO;
		errno = -r;
		return r;
	}
	if (st->nlog + (size_t)nb > st->caplog) {
		size_t cap = st->caplog ? st->caplog : 256;
		struct cg_meas *l;

		while (cap < st->nlog + (size_t)nb)
			cap *= 2;
		l = realloc(st->log, sizeof(*l) * cap);
		if (!l)
			return tiermm__fail(ENOMEM, "cpugroups: out of memory");
		st->log = l;
		st->caplog = cap;
	}
	for (int i = 0; i < nb; i++) {
		double ns = st->bns[i];

		if (!isfinite(ns) || ns <= 0)
			return tiermm__fail(EIO,
					    "cpugroups: the measurement of CPUs %d and %d returned %g ns",
					    st->bcpu[i][0], st->bcpu[i][1], ns);
		st->log[st->nlog++] = (struct cg_meas){ st->bidx[i][0],
							st->bidx[i][1], ns };
	}
	st->npairs[phase] += (uint64_t)nb;
	st->nrounds++;
	return 0;
}

/*
 * Measure a list of pairs (indices into cpus[]) in rounds of disjoint pairs,
 * greedily; ns[i] receives pair i. 0, 1 (budget spent) or -errno.
 */
static int cg_measure_list(struct cg *st, const int (*vp)[2], size_t nvp,
			   double *ns, int phase, const char *what)
{
	bool *taken = calloc(nvp ? nvp : 1, sizeof(*taken));
	size_t *slot = calloc((size_t)st->n / 2 + 1, sizeof(*slot));
	size_t done = 0;
	int ret = 0;

	if (!taken || !slot) {
		ret = tiermm__fail(ENOMEM, "cpugroups: out of memory");
		goto out;
	}
	while (done < nvp) {
		int nb = 0;

		st->stampno++;
		for (size_t i = 0; i < nvp; i++) {
			int a = vp[i][0], b = vp[i][1];

			if (taken[i] || st->stamp[a] == st->stampno ||
			    st->stamp[b] == st->stampno)
				continue;
			st->stamp[a] = st->stamp[b] = st->stampno;
			st->bidx[nb][0] = a;
			st->bidx[nb][1] = b;
			slot[nb++] = i;
			taken[i] = true;
		}
		ret = cg_run(st, nb, phase);
		if (ret)
			goto out;
		for (int j = 0; j < nb; j++)
			ns[slot[j]] = st->bns[j];
		done += (size_t)nb;
		cg_report(st, what, (int)done, (int)nvp);
	}
out:
	free(slot);
	free(taken);
	return ret;
}

/* ---- a) seed ---- */

/*
 * Complete linkage over the k x k matrix mat: merge the two clusters whose
 * farthest pair is the closest, while that pair is <= cut, so every group
 * is a clique below the cut (single linkage would chain two sockets
 * through a third socket that is close to both). cl[i] = the cluster of i
 * (the index of one member). Returns the size of the largest cluster.
 */
static int cl_cluster(const double *mat, int k, double cut, int *cl,
		      double *cd, int *size)
{
	int max = 1;

	for (int i = 0; i < k; i++) {
		cl[i] = i;
		size[i] = 1;
	}
	memcpy(cd, mat, sizeof(double) * (size_t)k * (size_t)k);
	for (;;) {
		int ba = -1, bb = -1;
		double bd = INFINITY;

		for (int a = 0; a < k; a++) {
			if (cl[a] != a)
				continue;
			for (int b = a + 1; b < k; b++)
				if (cl[b] == b && cd[a * k + b] < bd) {
					bd = cd[a * k + b];
					ba = a;
					bb = b;
				}
		}
		if (ba < 0 || bd > cut)
			return max;
		for (int x = 0; x < k; x++) {
			double d = cd[ba * k + x] > cd[bb * k + x] ?
				   cd[ba * k + x] : cd[bb * k + x];

			cd[ba * k + x] = cd[x * k + ba] = d;
		}
		for (int i = 0; i < k; i++)
			if (cl[i] == bb)
				cl[i] = ba;
		size[ba] += size[bb];
		if (size[ba] > max)
			max = size[ba];
	}
}

/* One all-pairs seed: k CPU indices and their latency matrix. */
struct cg_seedset {
	int k;
	int *sidx;		/* k indices into cpus[], increasing */
	double *mat;		/* k x k */
};

static void cg_seedset_free(struct cg_seedset *s)
{
	free(s->sidx);
	free(s->mat);
	memset(s, 0, sizeof(*s));
}

/*
 * Measure all pairs of a new seed of k evenly spaced CPUs, reusing the
 * pairs prev (may be NULL) already measured. The pairs are listed in the
 * order of the circle method, so the greedy scheduler of cg_measure_list
 * runs them as k-1 rounds of k/2 disjoint pairs. 0, 1 (budget) or -errno.
 */
static int cg_seed_measure(struct cg *st, struct cg_seedset *s, int k,
			   const struct cg_seedset *prev)
{
	int p = k + (k & 1), np = 0, ret = 0;
	size_t cap = (size_t)k * (size_t)(k - 1) / 2 + 1;
	int *pos = calloc((size_t)p, sizeof(int));
	int *prevpos = calloc((size_t)st->n, sizeof(int));
	int (*list)[2] = calloc(cap, sizeof(*list));
	int (*local)[2] = calloc(cap, sizeof(*local));
	double *ns = calloc(cap, sizeof(double));

	s->k = k;
	s->sidx = calloc((size_t)k, sizeof(int));
	s->mat = calloc((size_t)k * (size_t)k, sizeof(double));
	if (!pos || !prevpos || !list || !local || !ns || !s->sidx ||
	    !s->mat) {
		ret = tiermm__fail(ENOMEM, "cpugroups: out of memory");
		goto out;
	}
	for (int j = 0; j < k; j++)
		s->sidx[j] = (int)((int64_t)j * st->n / k);
	for (int i = 0; i < st->n; i++)
		prevpos[i] = -1;
	for (int j = 0; prev && j < prev->k; j++)
		prevpos[prev->sidx[j]] = j;
	for (int i = 0; i < p; i++)
		pos[i] = i;
	for (int r = 0; r < p - 1; r++) {
		for (int i = 0; i < p / 2; i++) {
			int a = pos[i], b = pos[p - 1 - i], pa, pb;

			if (a >= k || b >= k)
				continue;	/* the bye of an odd k */
			pa = prevpos[s->sidx[a]];
			pb = prevpos[s->sidx[b]];
			if (pa >= 0 && pb >= 0) {
				s->mat[a * k + b] = s->mat[b * k + a] =
					prev->mat[pa * prev->k + pb];
				continue;
			}
			list[np][0] = s->sidx[a];
			list[np][1] = s->sidx[b];
			local[np][0] = a;
			local[np][1] = b;
			np++;
		}
		/* Rotate all but pos[0]. */
		int last = pos[p - 1];

		memmove(&pos[2], &pos[1], sizeof(int) * (size_t)(p - 2));
		pos[1] = last;
	}
	ret = cg_measure_list(st, (const int (*)[2])list, (size_t)np, ns,
			      PH_SEED, "cpugroups: seed");
	for (int i = 0; !ret && i < np; i++) {
		int a = local[i][0], b = local[i][1];

		s->mat[a * k + b] = s->mat[b * k + a] = ns[i];
	}
out:
	free(ns);
	free(local);
	free(list);
	free(prevpos);
	free(pos);
	return ret;
}

/*
 * Cut the nv sorted seed latencies. A candidate gap lies between
 * neighbours >= validate apart, with the upper side >= threshold x the
 * median of the values below it (the test a CPU passes to join a group).
 * Candidates are tried from the widest gap down (a narrower one can come
 * from sockets of unequal in-socket latency); one whose complete-linkage
 * clusters all have <= 2 CPUs is an SMT level and is passed over. No
 * candidate left: one group. Returns the number of values below the cut
 * and leaves the clusters in cl.
 */
static int cg_seed_cut(struct cg *st, struct cg_meas *v, int nv,
		       const double *mat, int k, int *cl, double *cd,
		       int *size)
{
	int ncut = 0, ncand = 0;
	int *cand = calloc((size_t)nv + 1, sizeof(int));

	st->smt_pairs = 0;
	st->smt_only = false;
	qsort(v, (size_t)nv, sizeof(*v), cmp_meas);
	if (!cand)
		return -tiermm__fail(ENOMEM, "cpugroups: out of memory");
	for (int j = 0; j + 1 < nv; j++)
		if (v[j + 1].ns >= st->val * v[j].ns &&
		    v[j + 1].ns >= st->thr * v[j / 2].ns)
			cand[ncand++] = j;
	while (ncand) {
		int best = 0;

		for (int c = 1; c < ncand; c++) {
			int j = cand[c], b = cand[best];

			if (v[j + 1].ns / v[j].ns > v[b + 1].ns / v[b].ns)
				best = c;
		}
		int j = cand[best];

		cand[best] = cand[--ncand];
		if (cl_cluster(mat, k, v[j].ns, cl, cd, size) > 2) {
			ncut = j + 1;
			break;
		}
		if (!st->smt_pairs || j + 1 < st->smt_pairs) {
			st->smt_pairs = j + 1;
			st->smt_max_ns = v[j].ns;
			st->smt_next_ns = v[j + 1].ns;
		}
	}
	free(cand);
	if (!ncut) {
		ncut = nv;		/* one group */
		st->smt_only = st->smt_pairs > 0;
	}
	cl_cluster(mat, k, v[ncut - 1].ns, cl, cd, size);
	return ncut;
}

/*
 * Cluster a measured seed (cl[], the cut in *ncut). A pair above the cut
 * whose CPUs are both within the cut of a third CPU contradicts the
 * clusters; interference only adds latency, so such pairs (at most a
 * quarter of the seed) are measured again, their minimum kept, and the
 * seed clustered again. 0, 1 (budget) or -errno.
 */
static int cg_seed_cluster(struct cg *st, struct cg_seedset *s, int *cl)
{
	int k = s->k, nv = 0, ncut, nre = 0, ret = 0;
	size_t npairs = (size_t)k * (size_t)(k - 1) / 2 + 1;
	struct cg_meas *v = calloc(npairs, sizeof(*v));
	double *cd = calloc((size_t)k * (size_t)k, sizeof(double));
	int *size = calloc((size_t)k, sizeof(int));
	int (*re)[2] = calloc(npairs / 4 + 1, sizeof(*re));
	int (*rel)[2] = calloc(npairs / 4 + 1, sizeof(*rel));
	double *rens = calloc(npairs / 4 + 1, sizeof(double));
	double *mat = s->mat, cut;

	if (!v || !cd || !size || !re || !rel || !rens) {
		ret = tiermm__fail(ENOMEM, "cpugroups: out of memory");
		goto out;
	}
	for (int a = 0; a < k; a++)
		for (int b = a + 1; b < k; b++)
			v[nv++] = (struct cg_meas){ a, b, mat[a * k + b] };
	ncut = cg_seed_cut(st, v, nv, mat, k, cl, cd, size);
	if (ncut < 0 || ncut == nv) {
		ret = ncut < 0 ? ncut : 0;
		goto out;
	}
	cut = v[ncut - 1].ns;
	for (int a = 0; a < k; a++)
		for (int b = a + 1; b < k && nre < nv / 4; b++) {
			if (mat[a * k + b] <= cut)
				continue;
			for (int c = 0; c < k; c++)
				if (c != a && c != b && mat[a * k + c] <= cut &&
				    mat[b * k + c] <= cut) {
					re[nre][0] = s->sidx[a];
					re[nre][1] = s->sidx[b];
					rel[nre][0] = a;
					rel[nre][1] = b;
					nre++;
					break;
				}
		}
	if (!nre)
		goto out;
	ret = cg_measure_list(st, (const int (*)[2])re, (size_t)nre, rens,
			      PH_SEED, "cpugroups: seed re-check");
	if (ret)
		goto out;
	for (int i = 0; i < nre; i++) {
		int a = rel[i][0], b = rel[i][1];

		if (rens[i] < mat[a * k + b])
			mat[a * k + b] = mat[b * k + a] = rens[i];
	}
	nv = 0;
	for (int a = 0; a < k; a++)
		for (int b = a + 1; b < k; b++)
			v[nv++] = (struct cg_meas){ a, b, mat[a * k + b] };
	ncut = cg_seed_cut(st, v, nv, mat, k, cl, cd, size);
	if (ncut < 0)
		ret = ncut;
out:
	free(rens);
	free(rel);
	free(re);
	free(size);
	free(cd);
	free(v);
	return ret;
}

static int cg_seed(struct cg *st)
{
	struct cg_seedset s1 = { 0 }, s2 = { 0 }, *s = &s1;
	int k = st->n < CG_SEED ? st->n : CG_SEED, ret;
	int *cl = calloc((size_t)(st->n < 2 * CG_SEED ? st->n : 2 * CG_SEED),
			 sizeof(int));
	int *gid = NULL;

	if (!cl) {
		ret = tiermm__fail(ENOMEM, "cpugroups: out of memory");
		goto out;
	}
	ret = cg_seed_measure(st, &s1, k, NULL);
	if (!ret)
		ret = cg_seed_cluster(st, &s1, cl);
	/*
	 * Only disjoint fast pairs: SMT siblings, or sockets that gave the
	 * seed <= 2 CPUs each. A seed twice as large gives such sockets
	 * >= 3 CPUs unless there are more than 24 of them.
	 */
	if (!ret && st->smt_only && st->n > k) {
		k = st->n < 2 * CG_SEED ? st->n : 2 * CG_SEED;
		ret = cg_seed_measure(st, &s2, k, &s1);
		if (!ret)
			ret = cg_seed_cluster(st, &s2, cl);
		s = &s2;
	}
	if (ret)
		goto out;	/* budget (1) or error */
	/*
	 * Still only fast pairs: read them as SMT siblings (one group). If
	 * there are more than CG_MAX_SOCKETS of them, 2-CPU sockets would
	 * make an implausible machine; otherwise the result stays ambiguous
	 * and is never validated.
	 */
	if (st->smt_only && st->smt_pairs > CG_MAX_SOCKETS) {
		st->smt_only = false;
		st->smt_assumed = true;
	}
	st->nseed = k;
	st->seed_all = k == st->n;
	gid = calloc((size_t)k, sizeof(int));
	if (!gid) {
		ret = tiermm__fail(ENOMEM, "cpugroups: out of memory");
		goto out;
	}
	for (int j = 0; j < k; j++)
		gid[j] = -1;
	for (int j = 0; j < k; j++) {
		int root = cl[j];

		if (gid[root] < 0) {
			int g = cg_new_group(st);

			if (g < 0) {
				ret = g;
				goto out;
			}
			gid[root] = g;
		}
		ret = cg_add_member(st, gid[root], s->sidx[j]);
		if (ret)
			goto out;
	}
	for (int a = 0; a < k; a++)
		for (int b = a + 1; b < k; b++)
			if (cl[a] == cl[b])
				cg_add_sample(st, gid[cl[a]], s->mat[a * k + b]);
	st->nclassified = k;
	tiermm__log(TIERMM_LOG_DEBUG,
		    "cpugroups: seed of %d CPUs: %d groups%s", k, st->ng,
		    st->smt_pairs ? " (an SMT-like level was passed over)" : "");
out:
	free(gid);
	free(cl);
	cg_seedset_free(&s2);
	cg_seedset_free(&s1);
	return ret;
}

/* ---- b) assignment ---- */

static size_t cg_cell(const struct cg *st, int c, int g)
{
	return (size_t)c * (size_t)st->capg + (size_t)g;
}

static bool cg_complete(const struct cg *st, int c)
{
	for (int g = 0; g < st->ng; g++)
		if (st->vcnt[cg_cell(st, c, g)] < st->vneed[cg_cell(st, c, g)])
			return false;
	return true;
}

/* Decide CPU c (complete). 0: decided; 1: re-check requested; -errno. */
static int cg_decide(struct cg *st, int c)
{
	int best = 0, second = -1;
	double rb, rs = INFINITY, lat = INFINITY;
	bool amb;

	/* The closest group, by latency; then how close, relative to it. */
	for (int g = 0; g < st->ng; g++) {
		size_t o = cg_cell(st, c, g);
		double l = st->vmin[o];

		if (l < lat) {
			lat = l;
			best = g;
		}
	}
	rb = lat / cg_typ(st, best);
	for (int g = 0; g < st->ng; g++) {
		size_t o = cg_cell(st, c, g);
		double rho = st->vmin[o] / cg_typ(st, g);

		if (g != best && rho < rs) {
			second = g;
			rs = rho;
		}
	}
	amb = (rb > st->thr / CG_AMBIG && rb < st->thr * CG_AMBIG_UP) ||
	      (second >= 0 && rs < st->thr * CG_AMBIG);
	if (amb && !st->rechecked[c]) {
		st->rechecked[c] = true;
		st->vneed[cg_cell(st, c, best)] = 2;
		if (second >= 0 && rs < st->thr * CG_AMBIG)
			st->vneed[cg_cell(st, c, second)] = 2;
		return 1;
	}
	if (amb)
		st->nambig++;
	if (rb < st->thr) {
		int r = cg_add_member(st, best, c);

		if (r)
			return r;
		cg_add_sample(st, best, lat);
		tiermm__log(TIERMM_LOG_DEBUG,
			    "cpugroups: CPU %d joins group %d (%.1f ns, %.2fx typical)",
			    st->cpus[c], best, lat, rb);
	} else {
		int g = cg_new_group(st);

		if (g < 0)
			return g;
		g = cg_add_member(st, g, c);
		if (g)
			return g;
		tiermm__log(TIERMM_LOG_DEBUG,
			    "cpugroups: CPU %d founds group %d (closest %.1f ns, %.2fx typical)",
			    st->cpus[c], st->ng - 1, lat, rb);
	}
	st->nclassified++;
	return 0;
}

/* Decide every complete pending CPU, in order; compact the list. */
static int cg_decide_pass(struct cg *st)
{
	int kept = 0;

	for (int i = 0; i < st->npending; i++) {
		int c = st->pending[i], r = 1;

		if (cg_complete(st, c)) {
			r = cg_decide(st, c);
			if (r < 0)
				return r;
		}
		if (r)
			st->pending[kept++] = c;
	}
	st->npending = kept;
	return 0;
}

/* A member of g not used in this round, rotating; -1 if none. */
static int cg_pick_member(struct cg *st, int gi)
{
	struct cg_group *g = &st->g[gi];

	if (g->used >= g->nmem)
		return -1;
	for (int t = 0; t < g->nmem; t++) {
		int m = g->mem[(g->rr + t) % g->nmem];

		if (st->stamp[m] != st->stampno) {
			g->rr = (g->rr + t + 1) % g->nmem;
			g->used++;
			return m;
		}
	}
	g->used = g->nmem;
	return -1;
}

static int cg_assign(struct cg *st)
{
	int ret;

	for (int i = 0; i < st->n; i++)
		if (st->group[i] < 0)
			st->pending[st->npending++] = i;
	for (;;) {
		int nb = 0;

		ret = cg_decide_pass(st);
		if (ret)
			return ret;
		if (!st->npending)
			return 0;
		st->stampno++;
		for (int g = 0; g < st->ng; g++)
			st->g[g].used = 0;
		for (int i = 0; i < st->npending; i++) {
			int c = st->pending[i];

			for (int t = 0; t < st->ng; t++) {
				int g = (c + t + st->nrounds) % st->ng, m;
				size_t o = cg_cell(st, c, g);

				if (st->vcnt[o] >= st->vneed[o])
					continue;
				m = cg_pick_member(st, g);
				if (m < 0)
					continue;
				st->bidx[nb][0] = c;
				st->bidx[nb][1] = m;
				st->stamp[c] = st->stamp[m] = st->stampno;
				nb++;
				break;
			}
		}
		if (!nb)
			return tiermm__fail(EIO,
					    "cpugroups: internal error: %d CPUs pending and nothing to measure",
					    st->npending);
		ret = cg_run(st, nb, PH_ASSIGN);
		if (ret)
			return ret;	/* budget (1) or error */
		for (int i = 0; i < nb; i++) {
			int c = st->bidx[i][0], g = st->group[st->bidx[i][1]];
			size_t o = cg_cell(st, c, g);

			if (!st->vcnt[o] || st->bns[i] < st->vmin[o])
				st->vmin[o] = st->bns[i];
			st->vcnt[o]++;
		}
		cg_report(st, "cpugroups: assign", st->nclassified, st->n);
	}
}

/* ---- c) validation ---- */

static int cg_check_measure(struct cg *st)
{
	int (*vp)[2] = NULL;
	double *ns = NULL;
	size_t nvp = 0, cap = 0;
	int ret = 0;

#define CG_ADD_PAIR(x, y)						\
	do {								\
		if (nvp == cap) {					\
			size_t nc = cap ? 2 * cap : 64;			\
			int (*t)[2] = realloc(vp, sizeof(*vp) * nc);	\
			if (!t) {					\
				ret = tiermm__fail(ENOMEM,		\
					"cpugroups: out of memory");	\
				goto out;				\
			}						\
			vp = t;						\
			cap = nc;					\
		}							\
		vp[nvp][0] = (x);					\
		vp[nvp][1] = (y);					\
		nvp++;							\
	} while (0)

	for (int g = 0; g < st->ng; g++) {
		const struct cg_group *a = &st->g[g];
		int64_t all = (int64_t)a->nmem * (a->nmem - 1) / 2;

		for (int h = g + 1; h < st->ng; h++) {
			const struct cg_group *b = &st->g[h];

			CG_ADD_PAIR(a->mem[0], b->mem[0]);
			for (int i = 0; i < CG_VAL_CROSS; i++)
				CG_ADD_PAIR(a->mem[cg_rand(st) % (uint64_t)a->nmem],
					    b->mem[cg_rand(st) % (uint64_t)b->nmem]);
		}
		if (all <= CG_VAL_IN) {
			for (int i = 0; i < a->nmem; i++)
				for (int j = i + 1; j < a->nmem; j++)
					CG_ADD_PAIR(a->mem[i], a->mem[j]);
		} else {
			for (int i = 0; i < CG_VAL_IN; i++) {
				uint64_t x = cg_rand(st) % (uint64_t)a->nmem;
				uint64_t y = cg_rand(st) % (uint64_t)(a->nmem - 1);

				if (y >= x)
					y++;
				CG_ADD_PAIR(a->mem[x], a->mem[y]);
			}
		}
	}
#undef CG_ADD_PAIR
	ns = calloc(nvp ? nvp : 1, sizeof(*ns));
	if (!ns) {
		ret = tiermm__fail(ENOMEM, "cpugroups: out of memory");
		goto out;
	}
	ret = cg_measure_list(st, (const int (*)[2])vp, nvp, ns, PH_CHECK,
			      "cpugroups: validate");
out:
	free(ns);
	free(vp);
	return ret;
}

static int cmp_pair(const void *x, const void *y)
{
	const struct cg_meas *a = x, *b = y;

	if (a->a != b->a)
		return (a->a > b->a) - (a->a < b->a);
	return (a->b > b->b) - (a->b < b->b);
}

/* st->pm: one entry per pair measured (a < b), its minimum latency. */
static int cg_dedup(struct cg *st)
{
	size_t n = 0;

	free(st->pm);
	st->npm = 0;
	st->pm = malloc(sizeof(*st->pm) * (st->nlog ? st->nlog : 1));
	if (!st->pm)
		return tiermm__fail(ENOMEM, "cpugroups: out of memory");
	for (size_t i = 0; i < st->nlog; i++) {
		struct cg_meas m = st->log[i];

		if (m.a > m.b) {
			int t = m.a;

			m.a = m.b;
			m.b = t;
		}
		st->pm[i] = m;
	}
	qsort(st->pm, st->nlog, sizeof(*st->pm), cmp_pair);
	for (size_t i = 0; i < st->nlog; i++) {
		if (n && st->pm[n - 1].a == st->pm[i].a &&
		    st->pm[n - 1].b == st->pm[i].b) {
			if (st->pm[i].ns < st->pm[n - 1].ns)
				st->pm[n - 1].ns = st->pm[i].ns;
			continue;
		}
		st->pm[n++] = st->pm[i];
	}
	st->npm = n;
	return 0;
}

struct cg_verdict {
	double max_in, min_cross;
	struct cg_meas in_at, cross_at;
	double spread;		/* one group: max / min, SMT pairs aside */
	double spread_lo;
	int gap_group;		/* first group with a jump, -1: none */
	double gap_lo, gap_hi;
	int n_in;
};

/*
 * Judge the per-pair minima (st->pm) against the groups; lo (optional,
 * ng entries) receives each group's lowest in-group latency above the SMT
 * level (0: none).
 */
static int cg_judge(struct cg *st, struct cg_verdict *vd, double *lo)
{
	int *cnt = calloc((size_t)st->ng + 1, sizeof(int));
	int *off = calloc((size_t)st->ng + 1, sizeof(int));
	double *vals = NULL;

	*vd = (struct cg_verdict){ .min_cross = INFINITY, .gap_group = -1,
				   .spread = 1 };
	if (!cnt || !off)
		goto nomem;
	for (size_t i = 0; i < st->npm; i++) {
		const struct cg_meas *m = &st->pm[i];
		int ga = st->group[m->a], gb = st->group[m->b];

		if (ga < 0 || gb < 0)
			continue;
		if (ga == gb) {
			cnt[ga]++;
			vd->n_in++;
			if (m->ns > vd->max_in) {
				vd->max_in = m->ns;
				vd->in_at = *m;
			}
		} else if (m->ns < vd->min_cross) {
			vd->min_cross = m->ns;
			vd->cross_at = *m;
		}
	}
	for (int g = 0; g < st->ng; g++)
		off[g + 1] = off[g] + cnt[g];
	vals = calloc((size_t)vd->n_in + 1, sizeof(*vals));
	if (!vals)
		goto nomem;
	memset(cnt, 0, sizeof(int) * (size_t)st->ng);
	for (size_t i = 0; i < st->npm; i++) {
		const struct cg_meas *m = &st->pm[i];
		int g = st->group[m->a];

		if (g >= 0 && g == st->group[m->b])
			vals[off[g] + cnt[g]++] = m->ns;
	}
	for (int g = 0; g < st->ng; g++) {
		double *v = vals + off[g], med, cut;
		int nv = cnt[g], first = 0;

		if (lo)
			lo[g] = 0;
		if (!nv)
			continue;
		med = median_sort(v, nv);
		cut = med / st->thr;	/* faster: SMT level, ignored */
		while (first < nv && v[first] < cut)
			first++;
		if (first >= nv)
			continue;
		if (lo)
			lo[g] = v[first];
		if (st->ng == 1) {
			vd->spread = v[nv - 1] / v[first];
			vd->spread_lo = v[first];
		}
		for (int i = first; i + 1 < nv && vd->gap_group < 0; i++) {
			if (v[i + 1] >= st->val * v[i]) {
				vd->gap_group = g;
				vd->gap_lo = v[i];
				vd->gap_hi = v[i + 1];
			}
		}
	}
	free(vals);
	free(off);
	free(cnt);
	return 0;
nomem:
	free(vals);
	free(off);
	free(cnt);
	return tiermm__fail(ENOMEM, "cpugroups: out of memory");
}

static int cmp_meas_desc(const void *a, const void *b)
{
	return cmp_meas(b, a);
}

/*
 * Measure once more the in-group pairs that would fail the checks (slower
 * than min cross-group / validate, or than validate x their group's
 * fastest non-SMT pair), slowest first, at most max(16, n/2) of them:
 * a disturbed measurement must not decide. 0, 1 (budget) or -errno.
 */
static int cg_refine(struct cg *st)
{
	struct cg_verdict vd;
	double *lo = calloc((size_t)st->ng + 1, sizeof(*lo)), *ns = NULL;
	struct cg_meas *sus = NULL;
	int (*vp)[2] = NULL;
	size_t nsus = 0, cap = (size_t)(st->n / 2 > 16 ? st->n / 2 : 16);
	int ret;

	if (!lo) {
		ret = tiermm__fail(ENOMEM, "cpugroups: out of memory");
		goto out;
	}
	ret = cg_dedup(st);
	if (!ret)
		ret = cg_judge(st, &vd, lo);
	if (ret)
		goto out;
	sus = calloc(st->npm + 1, sizeof(*sus));
	if (!sus) {
		ret = tiermm__fail(ENOMEM, "cpugroups: out of memory");
		goto out;
	}
	for (size_t i = 0; i < st->npm; i++) {
		const struct cg_meas *m = &st->pm[i];
		int g = st->group[m->a];

		if (g < 0 || g != st->group[m->b])
			continue;
		if (m->ns * st->val >= vd.min_cross ||
		    (lo[g] > 0 && m->ns >= st->val * lo[g]))
			sus[nsus++] = *m;
	}
	if (!nsus)
		goto out;
	qsort(sus, nsus, sizeof(*sus), cmp_meas_desc);
	if (nsus > cap)
		nsus = cap;
	vp = calloc(nsus, sizeof(*vp));
	ns = calloc(nsus, sizeof(*ns));
	if (!vp || !ns) {
		ret = tiermm__fail(ENOMEM, "cpugroups: out of memory");
		goto out;
	}
	for (size_t i = 0; i < nsus; i++) {
		vp[i][0] = sus[i].a;
		vp[i][1] = sus[i].b;
	}
	ret = cg_measure_list(st, (const int (*)[2])vp, nsus, ns, PH_CHECK,
			      "cpugroups: re-check");
out:
	free(ns);
	free(vp);
	free(sus);
	free(lo);
	return ret;
}

static double clamp01(double x)
{
	return x < 0 ? 0 : x > 1 ? 1 : x;
}

/* Fill out's verdict, confidence and why. */
static int cg_conclude(struct cg *st, struct tiermm__cpugroups *out)
{
	struct cg_verdict vd;
	char verdict[200], ambig[40] = "";
	const int *c = st->cpus;
	double conf;
	uint64_t total = st->npairs[0] + st->npairs[1] + st->npairs[2];
	uint64_t all = (uint64_t)st->n * (uint64_t)(st->n - 1) / 2;
	int r = cg_dedup(st);

	if (!r)
		r = cg_judge(st, &vd, NULL);
	if (r)
		return r;
	out->max_in_ns = vd.max_in;
	out->min_cross_ns = isfinite(vd.min_cross) ? vd.min_cross : 0;
	out->validated = false;
	if (st->budget_hit) {
		snprintf(verdict, sizeof(verdict),
			 "budget %.3g s hit: %d of %d CPUs classified, the rest have group -1, partial",
			 st->budget, st->nclassified, st->n);
	} else if (st->smt_only) {
		snprintf(verdict, sizeof(verdict),
			 "the only structure is %d disjoint fast pairs (<= %.1f vs >= %.1f ns): SMT siblings of one socket or 2-CPU sockets, latency cannot tell",
			 st->smt_pairs, st->smt_max_ns, st->smt_next_ns);
	} else if (st->ng == 1) {
		if (vd.spread < st->val) {
			out->validated = true;
			snprintf(verdict, sizeof(verdict),
				 "one group, in-group latencies %.1f-%.1f ns, uniform within %.2fx",
				 vd.spread_lo, vd.max_in, vd.spread);
		} else {
			snprintf(verdict, sizeof(verdict),
				 "one group but in-group latencies spread %.1f-%.1f ns (%.2fx >= %.2fx, CPUs %d-%d): it may hide sockets",
				 vd.spread_lo, vd.max_in, vd.spread, st->val,
				 c[vd.in_at.a], c[vd.in_at.b]);
		}
	} else if (!vd.n_in || !isfinite(vd.min_cross)) {
		snprintf(verdict, sizeof(verdict),
			 "no in-group or no cross-group pair measured");
	} else if (vd.max_in * st->val >= vd.min_cross) {
		snprintf(verdict, sizeof(verdict),
			 "in-group %.1f ns (CPUs %d-%d) x %.2f >= cross-group %.1f ns (CPUs %d-%d): groups not separated",
			 vd.max_in, c[vd.in_at.a], c[vd.in_at.b], st->val,
			 vd.min_cross, c[vd.cross_at.a], c[vd.cross_at.b]);
	} else if (vd.gap_group >= 0) {
		snprintf(verdict, sizeof(verdict),
			 "in-group latencies of the group of CPU %d jump %.1f -> %.1f ns (>= %.2fx): it may hold 2 sockets or dies",
			 c[st->g[vd.gap_group].mem[0]], vd.gap_lo, vd.gap_hi,
			 st->val);
	} else {
		out->validated = true;
		snprintf(verdict, sizeof(verdict),
			 "in-group <= %.1f ns, cross-group >= %.1f ns (%.2fx)",
			 vd.max_in, vd.min_cross, vd.min_cross / vd.max_in);
	}

	if (st->n == 1) {
		conf = 1;
		out->validated = true;
		snprintf(verdict, sizeof(verdict),
			 "one CPU, nothing to measure");
	} else if (st->ng >= 2 && vd.n_in && isfinite(vd.min_cross)) {
		double sep = vd.min_cross / vd.max_in;

		conf = st->thr > st->val ?
		       clamp01((sep / st->val - 1) / (st->thr / st->val - 1)) :
		       (sep > st->val);
	} else {
		conf = clamp01((st->thr - vd.spread) / (st->thr - 1)) *
		       (1 - 1.0 / st->n);
	}
	conf *= 1 - (double)st->nambig / st->n;
	if (!out->validated && conf > 0.25)
		conf = 0.25;
	if (st->budget_hit)
		conf *= (double)st->nclassified / st->n;
	out->confidence = conf;
	if (st->nambig)
		snprintf(ambig, sizeof(ambig), ", %d CPUs ambiguous",
			 st->nambig);
	else if (st->smt_assumed)
		snprintf(ambig, sizeof(ambig), ", fast pairs read as SMT");

	/* The verdict first: a truncated line still says it. */
	if (snprintf(out->why, sizeof(out->why),
		     "%s: %s; %d group%s, %llu pairs (seed %llu, assign %llu, check %llu; all-pairs %llu)%s",
		     out->validated ? "validated" : "not validated", verdict,
		     st->ng, st->ng == 1 ? "" : "s", (unsigned long long)total,
		 (unsigned long long)st->npairs[0],
		 (unsigned long long)st->npairs[1],
		     (unsigned long long)st->npairs[2],
		     (unsigned long long)all, ambig) >= (int)sizeof(out->why))
		tiermm__log(TIERMM_LOG_DEBUG, "cpugroups: why truncated");
	return 0;
}

static void cg_state_free(struct cg *st)
{
	for (int g = 0; g < st->ng; g++)
		free(st->g[g].mem);
	free(st->g);
	free(st->group);
	free(st->vmin);
	free(st->vcnt);
	free(st->vneed);
	free(st->rechecked);
	free(st->pending);
	free(st->bidx);
	free(st->bcpu);
	free(st->bns);
	free(st->stamp);
	free(st->log);
	free(st->pm);
}

int tiermm__cpugroups_find(const int *cpus, int ncpus,
			   tiermm__pair_measure_fn measure, void *measure_ctx,
			   const struct tiermm__cpugroups_params *p,
			   struct tiermm__cpugroups *out)
{
	struct cg st = { 0 };
	int *sorted = NULL, *map = NULL, ret = 0, saved_errno = errno;
	size_t nb;

	if (!out)
		return tiermm__fail(EINVAL, "cpugroups: out is NULL");
	memset(out, 0, sizeof(*out));
	if (!cpus || ncpus < 1 || !measure)
		return tiermm__fail(EINVAL,
				    "cpugroups: need at least one CPU and a measure function");
	st.thr = p && p->threshold != 0 ? p->threshold : CG_THRESHOLD;
	st.val = p && p->validate != 0 ? p->validate : CG_VALIDATE;
	st.budget = p ? p->budget_s : 0;
	if (!isfinite(st.thr) || st.thr <= 1 || st.thr > 100)
		return tiermm__fail(EINVAL,
				    "cpugroups: threshold %g must be in (1, 100]",
				    st.thr);
	if (!isfinite(st.val) || st.val < 1 || st.val > 100)
		return tiermm__fail(EINVAL,
				    "cpugroups: validate %g must be in [1, 100]",
				    st.val);
	if (!isfinite(st.budget) || st.budget < 0)
		return tiermm__fail(EINVAL,
				    "cpugroups: budget_s %g must be >= 0",
				    st.budget);
	sorted = malloc(sizeof(int) * (size_t)ncpus);
	if (!sorted)
		return tiermm__fail(ENOMEM, "cpugroups: out of memory");
	memcpy(sorted, cpus, sizeof(int) * (size_t)ncpus);
	qsort(sorted, (size_t)ncpus, sizeof(int), cmp_int);
	for (int i = 0; i < ncpus; i++) {
		if (sorted[i] < 0 || (i && sorted[i] == sorted[i - 1])) {
			ret = tiermm__fail(EINVAL,
					   "cpugroups: CPU %d is %s",
					   sorted[i],
					   sorted[i] < 0 ? "negative" : "listed twice");
			free(sorted);
			return ret;
		}
	}
	free(sorted);

	st.cpus = cpus;
	st.n = ncpus;
	st.measure = measure;
	st.mctx = measure_ctx;
	st.progress = p ? p->progress : NULL;
	st.pctx = p ? p->progress_ctx : NULL;
	st.t_start = now_ns();
	st.rng = 0x9e3779b97f4a7c15ULL;
	st.glob_dirty = true;
	nb = (size_t)ncpus / 2 + 1;
	st.group = malloc(sizeof(int) * (size_t)ncpus);
	st.rechecked = calloc((size_t)ncpus, sizeof(bool));
	st.pending = calloc((size_t)ncpus, sizeof(int));
	st.stamp = calloc((size_t)ncpus, sizeof(int));
	st.bidx = calloc(nb, sizeof(*st.bidx));
	st.bcpu = calloc(nb, sizeof(*st.bcpu));
	st.bns = calloc(nb, sizeof(*st.bns));
	if (!st.group || !st.rechecked || !st.pending || !st.stamp ||
	    !st.bidx || !st.bcpu || !st.bns) {
		ret = tiermm__fail(ENOMEM, "cpugroups: out of memory");
		goto out;
	}
	for (int i = 0; i < ncpus; i++)
		st.group[i] = -1;

	if (ncpus == 1) {
		ret = cg_new_group(&st);
		if (ret >= 0)
			ret = cg_add_member(&st, 0, 0);
		if (ret < 0)
			goto out;
		st.nclassified = 1;
		st.seed_all = true;
	} else {
		ret = cg_seed(&st);
		if (ret < 0)
			goto out;
		if (!ret && !st.seed_all) {
			size_t cells = (size_t)ncpus * (size_t)st.capg;

			st.vmin = calloc(cells, sizeof(*st.vmin));
			st.vcnt = calloc(cells, 1);
			st.vneed = calloc(cells, 1);
			if (!st.vmin || !st.vcnt || !st.vneed) {
				ret = tiermm__fail(ENOMEM,
						   "cpugroups: out of memory");
				goto out;
			}
			memset(st.vneed, 1, cells);
			ret = cg_assign(&st);
			if (ret < 0)
				goto out;
			if (!ret)
				ret = cg_check_measure(&st);
			if (ret < 0)
				goto out;
		}
		if (!ret)
			ret = cg_refine(&st);
		if (ret < 0)
			goto out;
		ret = 0;	/* a budget stop is a (partial) result */
	}

	/* Number groups in the order of cpus[]; -1 for unclassified CPUs. */
	map = malloc(sizeof(int) * (size_t)(st.ng ? st.ng : 1));
	out->cpu = malloc(sizeof(int) * (size_t)ncpus);
	out->group = malloc(sizeof(int) * (size_t)ncpus);
	if (!map || !out->cpu || !out->group) {
		ret = tiermm__fail(ENOMEM, "cpugroups: out of memory");
		goto out;
	}
	ret = cg_conclude(&st, out);
	if (ret)
		goto out;
	for (int g = 0; g < st.ng; g++)
		map[g] = -1;
	out->ngroups = 0;
	for (int i = 0; i < ncpus; i++) {
		int g = st.group[i];

		if (g >= 0 && map[g] < 0)
			map[g] = out->ngroups++;
		out->cpu[i] = cpus[i];
		out->group[i] = g >= 0 ? map[g] : -1;
	}
	out->ncpus = ncpus;
	out->pairs_measured = st.npairs[0] + st.npairs[1] + st.npairs[2];
	out->budget_hit = st.budget_hit;
	tiermm__log(TIERMM_LOG_DEBUG, "cpugroups: %s (%d rounds, %.3f s)",
		    out->why, st.nrounds, cg_elapsed(&st));
out:
	free(map);
	cg_state_free(&st);
	if (ret) {
		int e = errno;

		tiermm__cpugroups_free(out);
		errno = e;
	} else {
		errno = saved_errno;
	}
	return ret;
}

void tiermm__cpugroups_free(struct tiermm__cpugroups *g)
{
	if (!g)
		return;
	free(g->cpu);
	free(g->group);
	memset(g, 0, sizeof(*g));
}
