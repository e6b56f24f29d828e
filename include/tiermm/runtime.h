/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * tiermm runtime: the tiering engine (Demeter's guest-delegated tiering) in
 * a background thread of the calling process. It samples which memory is
 * accessed (a hotness backend), ranks ranges of the managed process's
 * address space by access density, fits the hottest to a fast-tier budget
 * and moves pages between the fast and the slow tier with move_pages(2),
 * within a rate limit and a CPU quota. See tiermm_runtime_start(3).
 */
#ifndef TIERMM_RUNTIME_H
#define TIERMM_RUNTIME_H

#include <sys/types.h>
#include <tiermm/common.h>
#include <tiermm/topo.h>

#ifdef __cplusplus
extern "C" {
#endif

struct tiermm_runtime;

/* Flags of struct tiermm_runtime_opts. */
enum tiermm_runtime_flag {
	/* No rate limit on migration (rate_limit_mib_s must be 0). */
	TIERMM_RUNTIME_NO_RATE_LIMIT = 1u << 0,
	/* No CPU quota (cpu_quota must be 0). */
	TIERMM_RUNTIME_NO_CPU_QUOTA = 1u << 1,
};

/* The largest tiermm_runtime_opts.backoff_max. Since 0.2.0. */
#define TIERMM_RUNTIME_BACKOFF_MAX 1024

struct tiermm_runtime_opts {
	size_t sz;		/* sizeof(struct tiermm_runtime_opts) */
	pid_t pid;		/* managed process; 0: the calling process */
	/* Hotness backend: "auto" (NULL), "perf", "scan" or "damon". */
	const char *backend;
	/*
	 * Fast-tier budget of the managed process: bytes, or a share (0, 1]
	 * of its resident memory; at most one of the two. Both 0: what the
	 * fast tier could give it at start (its free memory plus what the
	 * process has there already).
	 */
	uint64_t budget_bytes;
	double budget_share;
	unsigned int epoch_ms;	/* 0: 500 (Demeter's epoch) */
	double rate_limit_mib_s;	/* 0: 256 MiB/s */
	double cpu_quota;	/* share of one CPU; 0: 0.05 */
	int fast_tier;		/* 0: tier 0 */
	int slow_tier;		/* 0: the last tier */
	const struct tiermm_topo *topo;	/* NULL: the running machine */
	unsigned int flags;	/* TIERMM_RUNTIME_* */
	/*
	 * Settling: once placement has settled (after 8 epochs, and with the
	 * scanner 32 passes, four epochs in a row that moved less than 1/64
	 * of the budget per base epoch, none cut short by the rate limit, the
	 * quota or the engine's limit on demotions for room, and whose hot set
	 * changed by less than 1/64 of the budget), the runtime samples and
	 * classifies less often: the epoch becomes 8, then 16, 32 ... times
	 * its base, up to backoff_max times, and the backend is sampled two
	 * rounds an epoch. An epoch that is not quiet, a budget
	 * change or a new hint brings the full pace back at once. 0: 32; 1:
	 * always the full pace; at most TIERMM_RUNTIME_BACKOFF_MAX.
	 * Since 0.2.0.
	 */
	unsigned int backoff_max;
};

/* Start managing memory. 0 or -errno; *rt is NULL on failure. */
TIERMM_API int tiermm_runtime_start(const struct tiermm_runtime_opts *opts,
				    struct tiermm_runtime **rt);
/* Stop and free (memory stays where it is). NULL is fine. 0 or -errno. */
TIERMM_API int tiermm_runtime_stop(struct tiermm_runtime *rt);

/* What the runtime is doing. */
enum tiermm_runtime_state {
	TIERMM_RUNTIME_RUNNING = 0,
	TIERMM_RUNTIME_EXITED = 1,	/* the managed process is gone */
	TIERMM_RUNTIME_FAILED = 2,	/* stopped by an error (error, error_msg) */
};

struct tiermm_runtime_stats {
	size_t sz;		/* in: sizeof(struct tiermm_runtime_stats) */
	int state;		/* enum tiermm_runtime_state */
	int error;		/* FAILED: the negative errno */
	pid_t pid;		/* the managed process */
	int fast_tier, slow_tier;
	char backend[16];	/* "perf", "scan", "damon" */
	char backend_why[512];	/* why it was chosen, or what auto passed over */
	char error_msg[256];	/* FAILED: what happened */
	uint64_t epochs;
	uint64_t promoted_pages, promoted_bytes;	/* to the fast tier */
	uint64_t demoted_pages, demoted_bytes;		/* to the slow tier */
	uint64_t moved_bytes;	/* promoted + demoted */
	uint64_t failed_pages;	/* pages that did not move, by reason: */
	uint64_t failed_busy;	/* EBUSY/EAGAIN after every retry */
	uint64_t failed_nomem;	/* the target tier was full */
	uint64_t failed_fault;	/* unmapped meanwhile, or not movable */
	uint64_t failed_other;	/* pinned (DMA, io_uring), shared, ... */
	uint64_t hot_set_bytes;	/* planned for the fast tier, last epoch */
	uint64_t budget_bytes;	/* fast-tier budget in force */
	uint64_t fast_bytes;	/* resident on the fast tier, last epoch */
	uint64_t resident_bytes;	/* resident anywhere, last epoch */
	uint64_t hinted_bytes;	/* under PIN_* or NO_MIGRATE hints */
	uint64_t samples;	/* observations the backend delivered */
	uint64_t samples_lost;	/* lost by the backend or the queue */
	uint64_t samples_missed;	/* outside the managed mappings */
	uint64_t ranges;	/* in the range tree */
	uint64_t splits, merges;
	uint64_t rate_limited;	/* epochs whose migration the rate limit cut */
	uint64_t quota_limited;	/* epochs or polls the CPU quota delayed or cut */
	double cpu_sampling_s;	/* backend: our sampler thread, its helpers */
	double cpu_classify_s;	/* range tree, plan, address-space tracking */
	double cpu_migrate_s;	/* residency and move_pages(2) */
	double wall_s;		/* since start */
	/*
	 * Of the pages the backend saw accessed in its last complete pass (the
	 * last that saw any page of known tier), the share on the fast tier:
	 * the fast-tier access share as the backend observes it, by pages, not
	 * by accesses. NaN when there is none yet, and with backends that report
	 * ranges rather than pages (perf, damon). Since 0.2.0.
	 */
	double fast_access_share;
	/*
	 * The pace now: 1 = full, N = epochs N times their base and the
	 * sampler's pauses half such an epoch (settled placement:
	 * tiermm_runtime_opts.backoff_max). Since 0.2.0.
	 */
	unsigned int backoff;
	uint64_t backoff_epochs;	/* epochs run at a reduced pace */
	/*
	 * The scan backend's window now, in ms: how long an accessed bit
	 * gathers accesses before it is read (it adapts: busy processes get
	 * short windows). NaN with the other backends. Since 0.2.0.
	 */
	double scan_window_ms;
};

/* A consistent copy of the counters; never waits for the engine. */
TIERMM_API int tiermm_runtime_stats(struct tiermm_runtime *rt,
				    struct tiermm_runtime_stats *stats);
/* New fast-tier budget in bytes, from the next epoch on. */
TIERMM_API int tiermm_runtime_set_budget(struct tiermm_runtime *rt,
					 uint64_t bytes);
/* New budget as a share (0, 1] of the resident memory. */
TIERMM_API int tiermm_runtime_set_budget_share(struct tiermm_runtime *rt,
					       double share);

#ifdef __cplusplus
}
#endif

#endif /* TIERMM_RUNTIME_H */
