/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Measured micro-probes of the topology (private). Each probe runs on
 * request only, is bounded in time, restores the caller's CPU affinity and
 * memory policy, and frees what it allocated.
 */
#ifndef TIERMM_PROBES_H
#define TIERMM_PROBES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Progress reports: what is being measured, done of total steps. */
typedef void (*tiermm__progress_fn)(const char *what, int done, int total,
				    void *ctx);

/* ---- Memory latency and bandwidth (memprobe.c) ---- */

struct tiermm__memprobe_params {
	size_t bytes;		/* buffer size; 0: default (see memprobe.c) */
	double budget_s;	/* wall-time budget of one measurement; 0: default */
};

/*
 * Dependent-load pointer chase over a buffer bound to target_node (every
 * page's placement verified with move_pages), run on one CPU of cpus (a
 * list of CPU ids, ncpus entries). *ns = nanoseconds per load (> 0).
 * Returns 0, or -errno with tiermm__fail() describing the failure
 * (-ENOMEM, -EIO when pages did not land on target_node, -EINVAL, ...).
 */
int tiermm__probe_latency(const int *cpus, int ncpus, int target_node,
			  const struct tiermm__memprobe_params *p, double *ns);

/*
 * Streaming reads and writes with one thread per CPU in cpus, over a
 * buffer bound to target_node. *read_gbps / *write_gbps = GB/s (1e9 B/s).
 */
int tiermm__probe_bandwidth(const int *cpus, int ncpus, int target_node,
			    const struct tiermm__memprobe_params *p,
			    double *read_gbps, double *write_gbps);

/* ---- CPU groups for VMs that hide NUMA (cpugroups.c) ---- */

/*
 * Measure the cache-line hand-off latency of npairs disjoint CPU pairs
 * (no CPU appears twice), in parallel; ns[i] = the minimum over samples for
 * pairs[i], in nanoseconds. Returns 0 or -errno.
 */
typedef int (*tiermm__pair_measure_fn)(const int (*pairs)[2], int npairs,
				       double *ns, void *ctx);

/* The real measurement: two pinned threads per pair bouncing one line. */
struct tiermm__pingpong_params {
	int samples;		/* undisturbed samples per pair wanted (at most
				 * 3x samples run), minimum kept; 0: default */
	double sample_s;	/* duration of one sample; 0: default */
};
int tiermm__pingpong_measure(const int (*pairs)[2], int npairs, double *ns,
			     void *ctx /* struct tiermm__pingpong_params * or NULL */);

struct tiermm__cpugroups_params {
	double threshold;	/* relative: a CPU joins a group if its latency
				 * to it < threshold x the group's median
				 * in-group latency; 0: default (1.5) */
	double validate;	/* max in-group x validate < min cross-group;
				 * 0: default (1.1, as vMitosis) */
	double budget_s;	/* stop measuring after this; 0: no limit */
	tiermm__progress_fn progress;
	void *progress_ctx;
};

struct tiermm__cpugroups {
	int ncpus;
	int *cpu;		/* ncpus CPU ids, as given */
	int *group;		/* group index of cpu[i], 0..ngroups-1; -1 when
				 * the budget stopped before cpu[i] was placed */
	int ngroups;
	bool validated;		/* the in-group/cross-group check passed */
	double confidence;	/* 0..1: separation margin of the check */
	double max_in_ns;	/* largest in-group latency measured */
	double min_cross_ns;	/* smallest cross-group latency measured */
	uint64_t pairs_measured;/* pair measurements made */
	bool budget_hit;	/* stopped by budget_s: result is partial */
	char why[256];		/* one line: how the result was reached */
};

/*
 * Cluster the ncpus CPUs in cpus into groups that share a socket, using
 * measure (real or synthetic). Fills *out (free with
 * tiermm__cpugroups_free). Returns 0 or -errno.
 */
int tiermm__cpugroups_find(const int *cpus, int ncpus,
			   tiermm__pair_measure_fn measure, void *measure_ctx,
			   const struct tiermm__cpugroups_params *p,
			   struct tiermm__cpugroups *out);
void tiermm__cpugroups_free(struct tiermm__cpugroups *g);

#endif /* TIERMM_PROBES_H */
