/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * tiermm feature probes: what the running kernel (or a captured machine)
 * offers. Every probe is side-effect free: it never changes the caller's
 * memory policy, leaves errno as it found it and touches no memory but its
 * own temporary mappings.
 */
#ifndef TIERMM_CAPS_H
#define TIERMM_CAPS_H

#include <stdio.h>
#include <tiermm/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The features tiermm probes for. Values are stable (ABI). */
enum tiermm_cap {
	TIERMM_CAP_NUMA = 0,		/* NUMA nodes in sysfs */
	TIERMM_CAP_MOVE_PAGES = 1,	/* move_pages(2) usable */
	TIERMM_CAP_MEMORY_TIERS = 2,	/* /sys/devices/virtual/memory_tiering */
	TIERMM_CAP_HMAT = 3,		/* HMAT access attributes in sysfs */
	TIERMM_CAP_MPOL_PREFERRED_MANY = 4,
	TIERMM_CAP_WEIGHTED_INTERLEAVE = 5,
	TIERMM_CAP_DAMON_VADDR = 6,	/* DAMON sysfs with vaddr operations */
	TIERMM_CAP_PERF_MEM_SAMPLING = 7, /* precise memory sampling (PEBS/IBS) */
	TIERMM_CAP_MODULE = 8,		/* tiermm.ko loaded and compatible */
	TIERMM_CAP_PT_REPLICATION = 9,	/* page-table replication kernel */
	TIERMM_CAP__COUNT
};

enum tiermm_cap_state {
	TIERMM_CAP_ABSENT = 0,	/* probed: not available */
	TIERMM_CAP_PRESENT = 1,	/* probed: available */
	TIERMM_CAP_UNKNOWN = 2,	/* could not be probed (see the detail text) */
};

struct tiermm_caps;

struct tiermm_caps_opts {
	size_t sz;
	/*
	 * Directory that stands for "/" in every /sys and /proc read (a
	 * captured machine). NULL or "/" means the running machine. With a
	 * captured root, probes that need system calls on the running kernel
	 * (move_pages, mempolicies, perf, the module) report UNKNOWN.
	 */
	const char *fsroot;
	/* Must be 0. */
	unsigned int flags;
};

/*
 * Probe every feature and return a new handle in *caps. opts may be NULL.
 * TIERMM_FSROOT in the environment sets the root when opts gives none.
 */
TIERMM_API int tiermm_caps_load(const struct tiermm_caps_opts *opts,
				struct tiermm_caps **caps);
TIERMM_API void tiermm_caps_free(struct tiermm_caps *caps);

/*
 * The probes of the running machine (or TIERMM_FSROOT), made once per
 * process on first use and cached; never free the result. NULL with errno
 * set if probing failed entirely (e.g. ENOMEM).
 */
TIERMM_API const struct tiermm_caps *tiermm_caps_get(void);

/* State of one feature: a tiermm_cap_state value, or -EINVAL. */
TIERMM_API int tiermm_caps_state(const struct tiermm_caps *caps,
				 enum tiermm_cap cap);
/* What the probe found, in one line (never NULL for a valid cap). */
TIERMM_API const char *tiermm_caps_detail(const struct tiermm_caps *caps,
					  enum tiermm_cap cap);
/* Short stable name of a feature ("move_pages", ...); NULL if invalid. */
TIERMM_API const char *tiermm_cap_name(enum tiermm_cap cap);
/* What the user loses when the feature is missing; NULL if invalid. */
TIERMM_API const char *tiermm_cap_help(enum tiermm_cap cap);

/* Per-node facts gathered by the probes. */
struct tiermm_caps_node {
	size_t sz;		/* in: sizeof(struct tiermm_caps_node) */
	int os_index;		/* node number */
	int nr_cpus;		/* online CPUs on the node */
	int has_memory;		/* node has memory (N_MEMORY) */
	int memory_tier;	/* kernel memory tier id, -1 if unknown */
	int tier_rank;		/* 0 = fastest kernel tier, -1 if unknown */
	int pad0;
	uint64_t mem_total;	/* bytes, from nodeN/meminfo */
	/* HMAT access0 (best initiator) attributes, 0 if not reported. */
	uint32_t read_latency_ns;
	uint32_t write_latency_ns;
	uint32_t read_bandwidth_mbps;
	uint32_t write_bandwidth_mbps;
};

/* Number of NUMA nodes found (0 if none), or -EINVAL. */
TIERMM_API int tiermm_caps_nr_nodes(const struct tiermm_caps *caps);
/*
 * Fill *node for the idx-th node (0 <= idx < nr_nodes, ascending node
 * number). node->sz must be set by the caller; at most node->sz bytes are
 * written. Returns 0, -EINVAL or -ENOENT.
 */
TIERMM_API int tiermm_caps_node(const struct tiermm_caps *caps, int idx,
				struct tiermm_caps_node *node);
/*
 * CPU list of the idx-th node in the kernel's list format ("0-3,8"), copied
 * to buf. Returns the string length or -EINVAL/-ENOENT/-ERANGE.
 */
TIERMM_API int tiermm_caps_node_cpus(const struct tiermm_caps *caps, int idx,
				     char *buf, size_t len);

/*
 * tiermm.ko's API version and feature bits when TIERMM_CAP_MODULE is
 * present. Returns 0, or -ENODEV when the module is not loaded or not
 * usable (tiermm_errmsg() says why).
 */
TIERMM_API int tiermm_caps_module(const struct tiermm_caps *caps,
				  uint32_t *api_version, uint64_t *features);

/* Write every probe as one JSON object to f. Returns 0 or -errno. */
TIERMM_API int tiermm_caps_write_json(const struct tiermm_caps *caps, FILE *f);

#ifdef __cplusplus
}
#endif

#endif /* TIERMM_CAPS_H */
