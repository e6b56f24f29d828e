/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * tiermm topology: NUMA nodes, their kinds and tiers, distances from
 * firmware and from tiermm's own measurements, and CPU groups inferred for
 * VMs that hide NUMA. Built on hwloc; cached as hwloc XML.
 */
#ifndef TIERMM_TOPO_H
#define TIERMM_TOPO_H

#include <stdio.h>
#include <tiermm/common.h>

#ifdef __cplusplus
extern "C" {
#endif

struct tiermm_topo;

/* Which measured micro-probes tiermm_topo_load() runs (none by default). */
enum tiermm_probe {
	TIERMM_PROBE_LATENCY = 1u << 0,	  /* pointer chase, ns per load */
	TIERMM_PROBE_BANDWIDTH = 1u << 1, /* streaming read/write, GB/s */
	TIERMM_PROBE_CPUGROUPS = 1u << 2, /* cache-line hand-off between CPUs */
	TIERMM_PROBE_ALL = 7u,
};

/* Progress of the probes: what is measured now, done of total steps. */
typedef void (*tiermm_progress_fn)(const char *what, int done, int total,
				   void *ctx);

/* Flags of struct tiermm_topo_opts. */
enum tiermm_topo_flag {
	/*
	 * With xml_path: fail with -ESTALE unless the cache was written on
	 * this machine (same host name, CPUs and nodes) by a compatible
	 * tiermm.
	 */
	TIERMM_TOPO_CHECK_MACHINE = 1u << 0,
};

struct tiermm_topo_opts {
	size_t sz;
	/* A captured machine's root (sys/ and proc/ below it); NULL: live. */
	const char *fsroot;
	/* Load this tiermm or hwloc XML instead of discovering; no probe runs. */
	const char *xml_path;
	/* TIERMM_PROBE_* bits to measure (not with xml_path or fsroot). */
	unsigned int probes;
	/* Wall-time budget of all probes together, seconds; 0: 60. */
	double budget_s;
	/* Called as probes progress; may be NULL. */
	tiermm_progress_fn progress;
	void *progress_ctx;
	/* Ranking override, same syntax as TIERMM_TIERS ("0-1;2"); NULL: env. */
	const char *tiers;
	/* TIERMM_TOPO_* flags. */
	unsigned int flags;
};

/* Load a topology. opts may be NULL (the running machine, no probes). */
TIERMM_API int tiermm_topo_load(const struct tiermm_topo_opts *opts,
				struct tiermm_topo **topo);
TIERMM_API void tiermm_topo_free(struct tiermm_topo *topo);

/* Memory kinds, from hwloc's node subtypes and the kernel's DAX types. */
enum tiermm_mem_kind {
	TIERMM_KIND_UNKNOWN = 0,
	TIERMM_KIND_DRAM = 1,
	TIERMM_KIND_HBM = 2,
	TIERMM_KIND_NVM = 3,	/* persistent memory used as RAM */
	TIERMM_KIND_CXL = 4,
	TIERMM_KIND_GPU = 5,
};
TIERMM_API const char *tiermm_mem_kind_name(enum tiermm_mem_kind kind);

struct tiermm_node_info {
	size_t sz;		/* in: sizeof(struct tiermm_node_info) */
	int os_index;		/* the kernel's node number */
	int kind;		/* enum tiermm_mem_kind */
	int nr_cpus;		/* CPUs local to the node (0: memory only) */
	int tier;		/* tiermm tier index, 0 = fastest */
	uint64_t capacity;	/* bytes */
};

/* Number of NUMA nodes (>= 1 on any loaded topology). */
TIERMM_API int tiermm_topo_nr_nodes(const struct tiermm_topo *topo);
/* The idx-th node, ascending OS index. 0, -EINVAL or -ENOENT. */
TIERMM_API int tiermm_topo_node(const struct tiermm_topo *topo, int idx,
				struct tiermm_node_info *info);
/* Index of the node with OS index os_index, or -ENOENT. */
TIERMM_API int tiermm_topo_node_index(const struct tiermm_topo *topo,
				      int os_index);
/* CPU list of the idx-th node ("0-3,8"). Length or -errno (-ERANGE). */
TIERMM_API int tiermm_topo_node_cpus(const struct tiermm_topo *topo, int idx,
				     char *buf, size_t len);

/* Where a tier ranking came from. */
enum tiermm_tier_source {
	TIERMM_TIERS_USER = 0,	  /* TIERMM_TIERS or opts.tiers */
	TIERMM_TIERS_KERNEL = 1,  /* /sys/devices/virtual/memory_tiering */
	TIERMM_TIERS_HMAT = 2,	  /* firmware latency/bandwidth */
	TIERMM_TIERS_KIND = 3,	  /* node kinds: HBM > DRAM > CXL > NVM */
	TIERMM_TIERS_MEASURED = 4, /* tiermm's latency probe */
	TIERMM_TIERS_NONE = 5,	  /* nothing to rank by: one tier */
};
TIERMM_API const char *tiermm_tier_source_name(enum tiermm_tier_source s);

/* Number of tiers, fastest first. */
TIERMM_API int tiermm_topo_nr_tiers(const struct tiermm_topo *topo);
/* Node list of a tier ("0-1"). Length or -errno. */
TIERMM_API int tiermm_topo_tier_nodes(const struct tiermm_topo *topo,
				      int tier, char *buf, size_t len);
/*
 * The source the ranking was taken from, and in *conflicts (may be NULL) a
 * text naming every other available source that ranks differently ("" when
 * all agree). The pointer stays valid while topo lives.
 */
TIERMM_API int tiermm_topo_tier_source(const struct tiermm_topo *topo,
				       const char **conflicts);

/* Per (initiator, target) metrics. */
enum tiermm_metric {
	TIERMM_METRIC_SLIT = 0,			/* firmware relative distance */
	TIERMM_METRIC_FW_READ_LATENCY = 1,	/* ns, HMAT via hwloc */
	TIERMM_METRIC_FW_WRITE_LATENCY = 2,
	TIERMM_METRIC_FW_READ_BANDWIDTH = 3,	/* MB/s */
	TIERMM_METRIC_FW_WRITE_BANDWIDTH = 4,
	TIERMM_METRIC_LATENCY = 5,		/* measured, ns per load */
	TIERMM_METRIC_READ_BANDWIDTH = 6,	/* measured, MB/s */
	TIERMM_METRIC_WRITE_BANDWIDTH = 7,	/* measured, MB/s */
	TIERMM_METRIC__COUNT
};
TIERMM_API const char *tiermm_metric_name(enum tiermm_metric m);

/*
 * Value of metric m from the CPUs of node initiator (OS index) to the memory
 * of node target. 0, -ENODATA (not known), -ENOENT (no such node; or an
 * initiator without CPUs for non-SLIT metrics), -EINVAL.
 */
TIERMM_API int tiermm_topo_distance(const struct tiermm_topo *topo,
				    int initiator, int target,
				    enum tiermm_metric m, double *value);
/*
 * The target node best for initiator by metric m (lowest latency or
 * distance, highest bandwidth). OS index, or -ENODATA/-ENOENT/-EINVAL.
 */
TIERMM_API int tiermm_topo_best_target(const struct tiermm_topo *topo,
				       int initiator, enum tiermm_metric m);

/* CPU groups (sockets) inferred by TIERMM_PROBE_CPUGROUPS. */
struct tiermm_cpugroups_info {
	size_t sz;
	int nr_groups;		/* 0: not probed */
	int validated;		/* in-group latency clearly below cross-group */
	int agrees_with_nodes;	/* groups equal the NUMA nodes' CPU sets */
	int partial;		/* the time budget ran out: some CPUs are in
				 * no group, and validated is 0 */
	double confidence;	/* 0..1 */
	double max_in_group_ns;
	double min_cross_group_ns;
	uint64_t pairs_measured;
};
TIERMM_API int tiermm_topo_cpugroups(const struct tiermm_topo *topo,
				     struct tiermm_cpugroups_info *info);
/* CPU list of group g. Length or -errno. */
TIERMM_API int tiermm_topo_cpugroup_cpus(const struct tiermm_topo *topo,
					 int g, char *buf, size_t len);

/*
 * Where the data came from: "live", "fsroot DIR" or "xml FILE (measured on
 * HOST at TIME)". Valid while topo lives.
 */
TIERMM_API const char *tiermm_topo_origin(const struct tiermm_topo *topo);

/*
 * Export as hwloc XML, with measurements as custom hwloc memory attributes
 * (TiermmLatency, TiermmReadBandwidth, TiermmWriteBandwidth) and tiermm's
 * tiers, CPU groups and provenance as info attributes of the root object.
 * flags must be 0. 0 or -errno.
 */
TIERMM_API int tiermm_topo_export_xml(const struct tiermm_topo *topo,
				      const char *path, unsigned int flags);
/* Everything as one JSON object. 0 or -errno. */
TIERMM_API int tiermm_topo_write_json(const struct tiermm_topo *topo, FILE *f);

#ifdef __cplusplus
}
#endif

#endif /* TIERMM_TOPO_H */
