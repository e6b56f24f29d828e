/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The tiering engine's private interfaces (Demeter's guest-delegated
 * tiering, ARCHITECTURE.md "The runtime"):
 *
 *   backends --observations--> classifier (range tree) --plan--> migrator
 *
 * Backends deliver access observations through one ingestion path; the
 * classifier keeps a range tree over the managed process's virtual address
 * space and ranks ranges by access density; the hot set is fitted to the
 * fast-tier budget; the migrator moves pages with move_pages(2).
 */
#ifndef TIERMM_TIERING_H
#define TIERMM_TIERING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "hints.h"	/* hints of the calling process (hints.c) */

/* ---- Observations (one ingestion path for every backend) ---- */

/*
 * One observation. A sample (perf): weight accesses at addr. A range
 * (TIERMM__OBS_RANGE: the scanner, DAMON): the weight pages [addr, addr +
 * weight * 4096) were accessed, each max(hits, 1) times, i.e. weight *
 * max(hits, 1) accesses spread evenly over them. Density, the classifier's
 * measure, is accesses per byte either way. Scales: perf, 1 per sample; the
 * scanner, 1 per page found accessed in a pass (hits 1); DAMON, hits = the
 * region's nr_accesses (sampling intervals per aggregation interval in which
 * it was seen accessed, 0..aggr/sample). Only one backend feeds an engine,
 * so the scales need not agree with each other.
 */
struct tiermm__obs {
	uint64_t addr;		/* virtual address in the managed process */
	uint32_t weight;	/* sample: accesses it stands for (>= 1);
				 * range: pages */
	uint32_t flags;		/* TIERMM__OBS_* */
	uint64_t time_ns;	/* CLOCK_MONOTONIC */
	uint32_t hits;		/* range: accesses per page (0 counts as 1) */
	uint32_t reserved;	/* 0 */
	/*
	 * TIERMM__OBS_BITS: the accessed pages of the 2 MiB block holding
	 * addr, bit i = page (addr & ~(2 MiB - 1)) + i * 4096 (the scanner's
	 * pass): what the page-level classifier (heat.c) learns from.
	 */
	uint64_t bits[8];
};

#define TIERMM__OBS_STORE	(1u << 0)	/* a store (else a load) */
#define TIERMM__OBS_RANGE	(1u << 1)	/* addr..addr+weight*4096 was
						 * accessed, weight pages, each
						 * max(hits, 1) times */
#define TIERMM__OBS_BITS	(1u << 3)	/* bits[] is valid */
#define TIERMM__OBS_PASS	(1u << 4)	/* no access: the scanner finished
						 * a pass over the address space */
#define TIERMM__OBS_PRESENT	(1u << 5)	/* with BITS: no access in this
						 * pass, the pages exist (the
						 * scanner's clearing read):
						 * page counts for them
						 * (heat.c), nothing counted */
#define TIERMM__OBS_SPREAD	(1u << 2)	/* with RANGE: hits accesses in
						 * all, spread evenly over the
						 * weight pages (a summary of
						 * a sparse area: the scanner's
						 * accessed pages per 2 MiB) */

/* Where observations go: returns 0, or -errno to stop the producer. */
typedef int (*tiermm__obs_sink)(const struct tiermm__obs *obs, size_t n,
				void *ctx);

/* ---- Hotness backends (backends.c, perf_backend.c, scan_backend.c,
 * damon.c) ---- */

struct tiermm__backend;

struct tiermm__backend_cfg {
	pid_t pid;		/* managed process (0: self) */
	/* perf: sample periods (0: Demeter's: loads 4093, stores 65535) */
	uint64_t load_period;
	uint64_t store_period;
	/*
	 * perf (Intel): load-latency threshold, in core cycles as the PMU's
	 * ldlat field counts them (0: 64, Demeter's value).
	 */
	uint32_t load_latency;
	uint32_t test_flags;	/* TIERMM__BACKEND_TEST_*: 0 in production */
	/*
	 * scan: minimum time between the starts of two passes; damon: the
	 * sampling interval (aggregation = 20 x sampling). Microseconds,
	 * 0: the backend's default (scan 100 ms, damon 5 ms).
	 */
	uint64_t interval_us;
	/* scan: 4 KiB pages examined per poll at most (0: 262144, 1 GiB) */
	uint64_t max_pages;
	/*
	 * Root for every /sys and /proc path (NULL: the running machine).
	 * Tests point damon at a fake sysfs tree with it; perf and scan need
	 * the live kernel and refuse another root.
	 */
	const char *fsroot;
};

/*
 * perf: use the software page-fault event instead of PEBS/IBS (addresses of
 * first touches, no hotness): runs the whole perf path (per-CPU inherited
 * events, rings, parsing) on machines without precise sampling. Tests only.
 */
#define TIERMM__BACKEND_TEST_SWEVENT	(1u << 0)

/* Counters every backend keeps (all zero when not applicable). */
struct tiermm__backend_stats {
	uint64_t polls;
	uint64_t observations;	/* delivered to the sink */
	uint64_t samples;	/* perf: samples parsed */
	uint64_t dropped;	/* perf: samples without a usable address or
				 * of another process; damon: snapshots lost
				 * because nobody polled */
	uint64_t lost;		/* perf: records the kernel could not write
				 * (PERF_RECORD_LOST) + samples the PMU lost
				 * (PERF_RECORD_LOST_SAMPLES) */
	uint64_t throttled;	/* perf: PERF_RECORD_THROTTLE */
	uint64_t passes;	/* scan: complete reporting passes; damon:
				 * snapshots */
	uint64_t arm_passes;	/* scan: passes that only cleared bits */
	uint64_t pages_scanned;	/* scan */
	uint64_t pages_accessed;	/* scan */
	uint64_t regions;	/* damon: regions read (all snapshots) */
	uint64_t window_ns;	/* scan: how long a page's bit may gather
				 * accesses before it is read (adaptive) */
	uint64_t paired_passes;	/* scan: passes that cleared each chunk
				 * just before reading it (short window) */
};

/*
 * A backend handle is used by one thread at a time (the engine's); the
 * damon backend's helper thread is internal. Different handles are
 * independent, except that DAMON can run only as many as there are free
 * kdamond slots (damon.c).
 */
struct tiermm__backend_ops {
	const char *name;	/* "perf", "scan", "damon" */
	/*
	 * Probe without side effects: 1 usable, 0 not, with the reason in
	 * why (one line starting with the backend's name and ": ", also
	 * written when usable, saying what was found). Logs nothing itself
	 * (scan's probe of tiermm.ko may log a failure at WARN).
	 */
	int (*usable)(const struct tiermm__backend_cfg *cfg, char *why,
		      size_t whylen);
	/* 0 or -errno with tiermm_errmsg() set. */
	int (*open)(const struct tiermm__backend_cfg *cfg,
		    struct tiermm__backend **b);
	/*
	 * Deliver what was observed since the last call to sink. Never blocks
	 * for long (bounded work). 0, 1 (in the middle of a unit of work:
	 * call again at the next poll even when over the CPU quota), or
	 * -errno (-ESRCH: the process is gone).
	 */
	int (*poll)(struct tiermm__backend *b, tiermm__obs_sink sink, void *ctx);
	/*
	 * CPU time spent on the backend's behalf outside the caller's thread
	 * (helper threads, kernel threads such as kdamond), ns. Work done
	 * inside poll() (ring parsing, scanner ioctls) is the caller's thread
	 * time: measure it around poll(). 0 when nothing can be measured
	 * (perf: the sampling cost in interrupt context is not observable).
	 */
	uint64_t (*cpu_ns)(struct tiermm__backend *b);
	void (*stats)(struct tiermm__backend *b, struct tiermm__backend_stats *s);
	void (*close)(struct tiermm__backend *b);
	/*
	 * Polls stay at the base period when the runtime slows down for
	 * settled placement (perf: the kernel samples at its own rate, and a
	 * ring read less often overflows; reading an empty one costs little).
	 */
	bool fixed_poll;
};

extern const struct tiermm__backend_ops tiermm__perf_backend;
extern const struct tiermm__backend_ops tiermm__scan_backend;
extern const struct tiermm__backend_ops tiermm__damon_backend;

/* All backends, in the order "auto" tries them: perf, scan, damon; NULL. */
extern const struct tiermm__backend_ops *const tiermm__backends[];
/* By name; NULL (-EINVAL via tiermm__fail) if unknown. */
const struct tiermm__backend_ops *tiermm__backend_find(const char *name);
/*
 * The first usable backend in tiermm__backends[] order into *ops. why gets
 * one line naming the choice and why each earlier backend was passed over
 * ("damon (perf: ...; scan: ...)"). 0, or -ENODEV (tiermm_errmsg() and why
 * list every reason) when none is usable.
 */
int tiermm__backend_auto(const struct tiermm__backend_cfg *cfg,
			 const struct tiermm__backend_ops **ops, char *why,
			 size_t whylen);

/* Write a usable() reason into why (snprintf rules); returns 0. */
int tiermm__backend_why(char *why, size_t whylen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * perf: the events the perf backend would open on the machine under
 * cfg->fsroot, one line each (PMU/event, type, config, config1, period,
 * sample_type, precise_ip limit, TIERMM__PERF_* flags, exclusions,
 * inheritance, clock, CPUs) into out. Returns the number of events, or
 * -errno with the reason in out. For tests: the PMU side cannot run here.
 */
int tiermm__perf_plan_describe(const struct tiermm__backend_cfg *cfg,
			       char *out, size_t len);

/*
 * perf ring-buffer parsing (perf_parse.c), separate from perf_event_open so
 * recorded or synthetic streams go through the same code.
 */
struct tiermm__perf_id {
	uint64_t id;		/* PERF_EVENT_IOC_ID of an event */
	uint32_t flags;		/* TIERMM__PERF_* for its samples */
};

#define TIERMM__PERF_STORES	(1u << 0)	/* samples are stores */
#define TIERMM__PERF_MEM_OP	(1u << 1)	/* load or store from the
						 * sample's data_src (AMD IBS
						 * op); others are dropped */

struct tiermm__perf_stream {
	uint64_t sample_type;	/* as given to perf_event_open (the same for
				 * every event of the stream) */
	pid_t pid;		/* keep only samples of this process (needs
				 * PERF_SAMPLE_TID); 0: all */
	uint32_t flags;		/* TIERMM__PERF_* without a table */
	/*
	 * With PERF_SAMPLE_IDENTIFIER: the kind of each event, sorted by id
	 * (samples of an unknown id are dropped); NULL: flags for all.
	 */
	const struct tiermm__perf_id *ids;
	size_t nr_ids;
	uint64_t now_ns;	/* time of samples without PERF_SAMPLE_TIME */
};

/* What one parse found (added to, never reset, by the parser). */
struct tiermm__perf_counts {
	uint64_t samples;	/* PERF_RECORD_SAMPLE records */
	uint64_t loads, stores;	/* delivered as observations */
	uint64_t no_addr;	/* dropped: address 0, kernel half, or not a
				 * load/store (TIERMM__PERF_MEM_OP) */
	uint64_t other_pid;	/* dropped: another process */
	uint64_t unknown_id;	/* dropped: id not in the table */
	uint64_t lost;		/* sum of PERF_RECORD_LOST lost fields */
	uint64_t lost_samples;	/* sum of PERF_RECORD_LOST_SAMPLES */
	uint64_t throttle, unthrottle;
	uint64_t other_records;	/* valid records of other types, skipped */
	uint64_t weight_sum;	/* sum of the latency weights (var1) ... */
	uint64_t weight_n;	/* ... of this many samples with one != 0 */
};

/*
 * Parse the records in data[0..len) (a copy of a ring's data area; records
 * do not wrap here, the input need not be aligned) for s, and send the
 * samples' data addresses to sink as observations, TIERMM__OBS_STORE set
 * for stores. The whole stream is validated before anything is delivered:
 * a truncated, oversized or garbage record fails it all. sample_type bits
 * whose size depends on other attributes (READ, BRANCH_STACK, REGS_USER,
 * STACK_USER, REGS_INTR, AUX) are refused with -EOPNOTSUPP. counts may be
 * NULL. Returns the number of observations delivered, -EINVAL for a
 * malformed stream (never reading outside data), or the sink's error.
 */
int tiermm__perf_parse(const void *data, size_t len,
		       const struct tiermm__perf_stream *s,
		       tiermm__obs_sink sink, void *ctx,
		       struct tiermm__perf_counts *counts);

/*
 * Copy the records a perf ring holds (meta: the ring's first page; data:
 * its data area of size bytes, a power of two) to out (outlen >= size),
 * linearised, and release them to the kernel. Loads data_head with acquire
 * and stores data_tail with release semantics. Returns the bytes copied,
 * or -EIO if data_head is inconsistent (the ring is then reset to empty).
 */
struct perf_event_mmap_page;
ssize_t tiermm__perf_ring_drain(struct perf_event_mmap_page *meta,
				const unsigned char *data, uint64_t size,
				void *out, size_t outlen);

/* ---- Classification: the range tree (rtree.c) ---- */

/*
 * Demeter's range-based classification (SOSP'25), in guest-virtual address
 * space of the managed process. The tree is an ordered set of disjoint,
 * page-aligned ranges covering exactly the regions given to
 * tiermm__rtree_map() (heap and mmap areas; each starts as one range).
 * Every epoch (the runtime calls tiermm__rtree_epoch() every 500 ms, as
 * Demeter) all counts are halved, converged neighbours merge and ranges with
 * a significant hot/cold contrast split in half. Ranges are ranked by access
 * density (decayed count per byte); the densest that fit the fast tier are
 * the hot set.
 *
 * Parameters (0 selects the default). Counts are in units of observation
 * weight: one perf sample is one access (perf backends deliver weight 1),
 * one page of a TIERMM__OBS_RANGE observation is one access. After the
 * halving, a range's count is about its samples per epoch in steady state,
 * which is what the sample thresholds compare against. Thresholds in samples
 * scale with nr_cpus because the sample rate does (one PEBS stream per CPU).
 *
 *  min_range 2 MiB     Demeter's minimum; one huge page, so splits never cut
 *                      a THP (split points are 2 MiB aligned when possible).
 *  split_min 4 MiB     Demeter: only ranges >= 4 MiB split (two 2 MiB halves).
 *                      Must be >= 2 x min_range.
 *  max_ranges 2048     Demeter's cap; bounds memory (about 560 B a range
 *                      with the epoch's scratch: 1.1 MiB at 2048) and epoch
 *                      time. When full, the most similar adjacent pair
 *                      merges to make room for a split that gains clearly
 *                      more (8x) than the merge loses.
 *  nr_cpus online CPUs Scale of the sample thresholds.
 *  split_samples 15    A range splits only with >= 15 x nr_cpus samples
 *                      (Demeter): less is noise.
 *  split_contrast 30   ... and only if it beats a neighbour (or one part of
 *                      it beats the rest) by > 30 x nr_cpus samples
 *                      (Demeter). "Beats" is defined in rtree.c
 *                      (split_gain()): the excess is measured at equal size
 *                      (density difference x the range's size) and must
 *                      also exceed 4 standard deviations of the counts (so
 *                      a uniform pattern does not split at high sample
 *                      rates).
 *  cooling_epochs 3    Demeter: halves made by a split in the last 3 epochs
 *                      are "cooling": not newly promoted, not merged.
 *  merge_ratio 1.25    tiermm (Demeter's paper describes merging, its code
 *                      does not): adjacent ranges whose densities are within
 *                      this factor (or whose difference is below half the
 *                      split significance) merge back, unless the merged
 *                      range would split again at once (so merges never
 *                      fight splits).
 */
struct tiermm__rtree_params {
	uint64_t min_range;	/* bytes; 0: 2 MiB */
	uint64_t split_min;	/* a range splits only if >= this; 0: 4 MiB */
	uint32_t max_ranges;	/* 0: 2048 */
	uint32_t nr_cpus;	/* thresholds scale with it; 0: online CPUs */
	double split_samples;	/* x nr_cpus samples to split; 0: 15 */
	double split_contrast;	/* x nr_cpus above a neighbour; 0: 30 */
	uint32_t cooling_epochs;	/* 0: 3 */
	double merge_ratio;	/* merge neighbours whose densities are within
				 * this factor; 0: 1.25 */
};

struct tiermm__range {
	uint64_t start, end;	/* page aligned */
	uint64_t id;		/* identity across epochs: kept while the range
				 * lives (unmap trims keep it); a range made by
				 * map, split or merge gets a new one */
	double count;		/* decayed access count */
	double density;		/* count per byte */
	uint64_t hot;		/* [start, start + hot) is in the last recorded
				 * plan (0: cold; end - start: all of it) */
	uint32_t age;		/* epochs since created (map, split, merge) */
	bool cooling;		/* made by a split in the last cooling_epochs
				 * epochs */
};

/* Counters of a tree since tiermm__rtree_new(). */
struct tiermm__rtree_stats {
	uint64_t epochs;
	uint64_t observations;	/* recorded, a TIERMM__OBS_RANGE counting one */
	uint64_t missed;	/* ... of them outside every range */
	uint64_t splits, merges;	/* merges: converged pairs */
	uint64_t forced_merges;	/* pairs merged to stay within max_ranges */
	uint64_t publications;	/* snapshots published */
	uint64_t mem_bytes;	/* the tree's memory with one snapshot */
};

/*
 * What readers see: an immutable ranking published by the writer.
 * ranges[] is sorted by density, densest first (ties: lower address first);
 * by_addr[k] is the index in ranges[] of the k-th range by address.
 */
struct tiermm__rtree_snap {
	uint64_t epoch;		/* epochs completed when published */
	size_t n;
	uint64_t bytes;		/* mapped bytes covered */
	uint64_t hot_bytes;	/* in the recorded plan */
	double count;		/* sum of the counts */
	struct tiermm__rtree_stats stats;
	const struct tiermm__range *ranges;
	const uint32_t *by_addr;
};

struct tiermm__rtree;

/*
 * Threads. The runtime thread is the only writer: every call below except
 * tiermm__rtree_snapshot_get/put and tiermm__rtree_snap_find must come from
 * one thread at a time. Readers (statistics, hint calls, the migrator) use
 * snapshots, from any thread:
 *  - tiermm__rtree_snapshot_get() returns the last published snapshot with
 *    a reference; it never blocks, never fails and never waits for the
 *    writer (an RCU read-side critical section of two loads and one atomic
 *    increment; liburcu's bulletproof flavor, so reader threads need no
 *    registration: they are the application's threads);
 *  - the snapshot is immutable and stays valid until
 *    tiermm__rtree_snapshot_put(), however long that is (holding it delays
 *    neither the writer nor RCU grace periods), even after
 *    tiermm__rtree_free(); every get needs exactly one put;
 *  - tiermm__rtree_snapshot_get() must not race with tiermm__rtree_free(),
 *    and neither may be called from a signal handler.
 * The writer publishes in tiermm__rtree_epoch(), tiermm__rtree_set_hot(),
 * tiermm__rtree_plan() and tiermm__rtree_publish(), then waits for an RCU
 * grace period before dropping its reference on the previous snapshot (the
 * wait covers only read-side sections already running, a few instructions
 * each, never snapshot holders). map/unmap/record are seen by readers at
 * the next publication. After fork(), a child that goes on using trees must
 * have called urcu_bp_before_fork() and urcu_bp_after_fork_child() around it
 * (liburcu-bp's rule).
 */
int tiermm__rtree_new(const struct tiermm__rtree_params *p,
		      struct tiermm__rtree **t);
/* Snapshots still held stay valid until put. */
void tiermm__rtree_free(struct tiermm__rtree *t);
/*
 * The managed address space changed: [start, end) mapped / unmapped (rounded
 * out to pages). map adds the parts not yet covered as new ranges; when the
 * tree is full it merges the most similar adjacent pair first, and fails
 * with -ENOSPC, mapping nothing (merges made for room stay), if it cannot.
 * unmap trims, splits (a hole) or removes ranges; it cannot fail for want
 * of room (a hole may leave the tree above max_ranges when no adjacent pair
 * can merge), only -ENOMEM.
 * Both: 0 or -errno (-EINVAL: empty or wrapping interval).
 */
int tiermm__rtree_map(struct tiermm__rtree *t, uint64_t start, uint64_t end);
int tiermm__rtree_unmap(struct tiermm__rtree *t, uint64_t start, uint64_t end);
/*
 * Count observations (addresses outside every range are ignored and counted
 * as missed). A point observation adds weight to its range; a
 * TIERMM__OBS_RANGE one adds one access per page over every range it
 * overlaps. O(log n) a point (a binary search; repeated hits in the same
 * range skip it).
 */
void tiermm__rtree_record(struct tiermm__rtree *t,
			  const struct tiermm__obs *obs, size_t n);
/*
 * End of an epoch: halve counts, age, merge converged neighbours, split
 * (up to 4 halvings deep, as far as the sub-range counts support), then
 * publish. 0, or -ENOMEM if only the publication failed (readers keep the
 * previous snapshot; the tree itself is updated).
 */
int tiermm__rtree_epoch(struct tiermm__rtree *t);
/* Publish the current state now. 0 or -ENOMEM. */
int tiermm__rtree_publish(struct tiermm__rtree *t);
/* Number of ranges now. */
size_t tiermm__rtree_size(const struct tiermm__rtree *t);
/*
 * All ranges of the current state sorted by density, densest first, into a
 * new array (*out, *n; free() it). 0 or -ENOMEM.
 */
int tiermm__rtree_ranked(const struct tiermm__rtree *t,
			 struct tiermm__range **out, size_t *n);
/* Consistency check (tests): 0, or -EUCLEAN with tiermm_errmsg() saying why. */
int tiermm__rtree_check(const struct tiermm__rtree *t);

/* Any thread: see the rules above. */
const struct tiermm__rtree_snap *
tiermm__rtree_snapshot_get(struct tiermm__rtree *t);
void tiermm__rtree_snapshot_put(const struct tiermm__rtree_snap *s);
/* The range of s holding addr, or NULL. O(log n). */
const struct tiermm__range *
tiermm__rtree_snap_find(const struct tiermm__rtree_snap *s, uint64_t addr);

/*
 * Fit the hot set to the fast-tier budget (bytes). ranked[] must be sorted
 * by density, densest first (as tiermm__rtree_ranked() and snapshots are);
 * ranked[i].hot is the previous plan (callers may edit a copy to pin or
 * unpin). Ranges are taken in order of key = density, x hysteresis (0: 1.2)
 * for ranges hot in the previous plan: an incumbent stays hot unless a
 * range denser than it by that factor needs its room. Cooling ranges and
 * ranges without accesses are never newly promoted (incumbents may stay).
 * The first range that does not fit gets the rest of the budget as a
 * prefix (rounded down to pages), so a range larger than the budget still
 * fills it; the budget is never exceeded. hot[i] receives the bytes of
 * ranked[i] in the hot set, from its start. Returns the hot-set size.
 */
uint64_t tiermm__fit_hot_set(const struct tiermm__range *ranked, size_t n,
			     uint64_t budget, double hysteresis, uint64_t *hot);
/*
 * Record a plan (hot[i] for ranked[i], as from tiermm__fit_hot_set()) as
 * the tree's previous plan, carried across splits (halves inherit their
 * part), merges and trims, then publish. Ranges of the tree not in ranked[]
 * become cold. ranked[] must describe the current state (matched by start
 * and id); entries that no longer match are skipped. Returns how many were
 * skipped, or -ENOMEM.
 */
int tiermm__rtree_set_hot(struct tiermm__rtree *t,
			  const struct tiermm__range *ranked, size_t n,
			  const uint64_t *hot);
/*
 * Rank, fit (tiermm__fit_hot_set() with the recorded plan as incumbents),
 * record and publish in one call. *hot_bytes (may be NULL) gets the hot-set
 * size. 0 or -ENOMEM.
 */
int tiermm__rtree_plan(struct tiermm__rtree *t, uint64_t budget,
		       double hysteresis, uint64_t *hot_bytes);

/* ---- Migration primitive (place.c) ---- */

/*
 * The engine's mover: tiermm_move_tier()'s windows of up to 512 entries (a
 * PMD-mapped huge page is one entry, given by its head address), status
 * checks before and after, retries of busy pages with back-off, nearest
 * target node with room, with the targets prepared once (the nodes of one
 * tier that have memory and are in the process's cpuset) and each window
 * paced by the caller. Only present pages are walked (PAGEMAP_SCAN, Linux
 * 6.7; every base page on older kernels), so sparse ranges cost what they
 * hold; pages skipped count as not_present. No check that the range is
 * mapped: pages unmapped meanwhile fail with EFAULT, holes are skipped.
 */
struct tiermm__mover;

struct tiermm_move_result;
struct tiermm_topo;

struct tiermm__move_ctl {
	/*
	 * Called before each window with the counts so far: the most bytes
	 * the next window may cover (an entry larger than what is left ends
	 * the walk), or 0 to stop. NULL: no limit.
	 */
	uint64_t (*window)(void *ctx, const struct tiermm_move_result *sofar);
	void *ctx;
	bool all_pages;		/* walk every page, present or not */
	/*
	 * Bitmap of TIERMM__MAX_NODES nodes (or NULL): moved_from counts the
	 * pages moved away from them.
	 */
	const uint64_t *from_nodes;
	uint64_t moved_from;	/* out */
	uint64_t resume;	/* out: where the walk stopped (end: done) */
	bool stopped;		/* out: window() or the cap ended it early */
};

/* Targets of tier tier of topo for pid (0: self). 0 or -errno, as
 * tiermm_move_tier() (-ENOENT, -ENODEV, -EACCES, -ESRCH). */
int tiermm__mover_new(const struct tiermm_topo *topo, pid_t pid, int tier,
		      struct tiermm__mover **m);
/*
 * Re-read the target nodes' free memory (once an epoch; their low
 * watermarks are read once, by tiermm__mover_new()).
 */
void tiermm__mover_refresh(struct tiermm__mover *m);
/* Their usable free memory (above the low watermarks) at the last refresh. */
uint64_t tiermm__mover_free_bytes(const struct tiermm__mover *m);
/* The target nodes (the kernel's numbers). */
const int *tiermm__mover_nodes(const struct tiermm__mover *m, int *n);
/*
 * Move the present pages of [start, end) to the tier. result (sz set by
 * the mover) as tiermm_move_tier()'s. 0, or -errno for the whole operation
 * (-ESRCH: the process exited).
 */
int tiermm__mover_run(struct tiermm__mover *m, uint64_t start, uint64_t end,
		      struct tiermm__move_ctl *ctl,
		      struct tiermm_move_result *result);
void tiermm__mover_free(struct tiermm__mover *m);

#endif /* TIERMM_TIERING_H */
