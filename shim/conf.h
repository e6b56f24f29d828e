/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The shim's configuration (TIERMM_CONF=key:value,...) and the numactl
 * node-list syntax, shared by libtiermm-preload.so, `tiermm run` and the
 * unit tests. Private: never installed, not part of libtiermm's ABI.
 *
 * Every parser here is pure: it reads only its arguments (the set of nodes
 * a process may use is passed in), writes a one-line English message into
 * err on failure and returns 0 or -EINVAL. tmm_nodes_allowed() is the one
 * function that reads the machine.
 */
#ifndef TIERMM_SHIM_CONF_H
#define TIERMM_SHIM_CONF_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <tiermm/runtime.h>

#define TMM_MAX_NODES 1024	/* MAX_NUMNODES of distribution kernels */

struct tmm_nodemask {
	uint64_t bits[TMM_MAX_NODES / 64];
};

static inline bool tmm_node_isset(const struct tmm_nodemask *m, int n)
{
	return n >= 0 && n < TMM_MAX_NODES && (m->bits[n / 64] >> (n % 64)) & 1;
}

static inline void tmm_node_set(struct tmm_nodemask *m, int n)
{
	if (n >= 0 && n < TMM_MAX_NODES)
		m->bits[n / 64] |= 1ULL << (n % 64);
}

int tmm_nodes_count(const struct tmm_nodemask *m);
/* Lowest node of m, or -1 if m is empty. */
int tmm_nodes_first(const struct tmm_nodemask *m);
/* Kernel list format ("0-1,3"); "" for an empty mask. */
void tmm_nodes_format(const struct tmm_nodemask *m, char *buf, size_t len);

/*
 * Parse a node list in numactl's syntax against the nodes the process may
 * use (allowed):
 *   N, N-M      node numbers and ranges (N <= M), comma-separated;
 *   all         every allowed node;
 *   +ITEM       node numbers relative to the allowed nodes: +0 is the
 *               first allowed node, +1-2 the second and third;
 *   !ITEM       not these nodes.
 * As in numactl, a '!' or '+' on the first item applies to the whole list
 * ("!0,1" is every allowed node but 0 and 1; "+0,1" the first two allowed
 * nodes); on a later item it applies to that item only. The result is the
 * items without '!' (every allowed node if there is none) minus the items
 * with '!'. A node that is not allowed (or does not exist) is an error, as
 * in numactl, except inside a range, whose nodes that are not allowed are
 * skipped. An empty result is an error.
 */
int tmm_nodes_parse(const char *s, const struct tmm_nodemask *allowed,
		    struct tmm_nodemask *out, char *err, size_t errlen);

/*
 * The nodes this process may allocate from: Mems_allowed_list of
 * /proc/self/status, restricted to the nodes with memory
 * (/sys/devices/system/node/has_memory) when that file exists. 0 or
 * -errno (err says what failed).
 */
int tmm_nodes_allowed(struct tmm_nodemask *allowed, char *err, size_t errlen);

/*
 * Sizes: a number with an optional fraction and an optional binary suffix
 * K, M, G or T (KiB .. TiB; "KiB", "KB" and "k" work too), e.g. "512M",
 * "1.5G", "1048576"; or a percentage "25%" (stored as 0.25 in *share,
 * *bytes 0). share may be NULL to refuse percentages. 0 or -EINVAL.
 */
int tmm_parse_size(const char *s, uint64_t *bytes, double *share);
/* Durations: "500ms", "2s", "1.5s"; a bare number is milliseconds. 0 or -EINVAL. */
int tmm_parse_ms(const char *s, unsigned int *ms);

/*
 * How much slower the runtime may get once placement has settled
 * (tiermm_runtime_opts.backoff_max): digits only, 1 to TIERMM_RUNTIME_BACKOFF_MAX
 * (1: always the full pace). 0 or -EINVAL.
 */
int tmm_parse_backoff(const char *s, unsigned int *n);

enum tmm_placement {
	TMM_PLACE_FIRST_TOUCH = 0,	/* leave the memory policy alone */
	TMM_PLACE_INTERLEAVE = 1,	/* MPOL_INTERLEAVE over nodes */
	TMM_PLACE_MEMBIND = 2,		/* MPOL_BIND to nodes */
	TMM_PLACE_PREFERRED = 3,	/* MPOL_PREFERRED(_MANY) */
	TMM_PLACE_TIER = 4,		/* MPOL_PREFERRED_MANY, a tier's nodes */
};

enum tmm_pt_policy {
	TMM_PT_NONE = 0,
	TMM_PT_ONCE = 1,	/* tiermm_pt_migrate(auto) at start */
	TMM_PT_FOLLOW = 2,	/* ... and every stats interval */
};

enum tmm_stats_format {
	TMM_FMT_AUTO = 0,	/* csv if the file name ends in .csv */
	TMM_FMT_JSON = 1,	/* JSON lines */
	TMM_FMT_CSV = 2,
};

#define TMM_DEF_STATS_MS 1000
#define TMM_MIN_STATS_MS 10
#define TMM_MAX_STATS_MS 3600000

struct tmm_conf {
	/* Runtime: fast-tier budget (bytes or share, 0/0: the default). */
	uint64_t budget_bytes;
	double budget_share;
	char backend[16];	/* "auto", "perf", "scan", "damon", "none" */
	unsigned int epoch_ms;	/* 0: the runtime's default */
	double rate_limit_mib_s;	/* 0: default; < 0: none */
	double cpu_quota;	/* 0: default; < 0: none */
	unsigned int backoff_max;	/* 0: the runtime's default */
	/* Initial placement. */
	int placement;		/* enum tmm_placement */
	struct tmm_nodemask nodes;	/* INTERLEAVE, MEMBIND, PREFERRED */
	int tier;		/* TIER */
	int pt;			/* enum tmm_pt_policy */
	/* Statistics: path as given (%p not expanded yet), "" for none. */
	char stats[PATH_MAX];
	int stats_format;	/* enum tmm_stats_format */
	unsigned int stats_ms;
	bool follow_fork, follow_exec;
	char topo[PATH_MAX];	/* cached topology XML, "" for discovery */
};

/* The keys TIERMM_CONF knows, for messages: "fast-budget, backend, ...". */
extern const char tmm_conf_keys[];

/* Defaults: everything 0/"" but backend "auto" and stats_ms 1000. */
void tmm_conf_init(struct tmm_conf *c);

/*
 * Parse TIERMM_CONF (NULL or "" leaves the defaults) into c, which must
 * have been initialised with tmm_conf_init(). Items are key:value,
 * separated by commas; a comma starts a new item only when what follows it
 * is a key and a colon, so node lists keep their commas
 * ("placement:interleave=0,2,backend:scan"). A key given twice takes the
 * last value. 0 or -EINVAL with the message in err.
 */
int tmm_conf_parse(const char *s, const struct tmm_nodemask *allowed,
		   struct tmm_conf *c, char *err, size_t errlen);

/* "first-touch", "interleave=0-1", "tier=1", ... into buf. */
void tmm_conf_placement(const struct tmm_conf *c, char *buf, size_t len);

/*
 * The stats path for process pid: every "%p" replaced by pid and "%%" by
 * "%"; when child is set and the path has no "%p", ".PID" is appended so a
 * child never writes its parent's file. 0 or -ENAMETOOLONG.
 */
int tmm_stats_path(const char *pattern, int pid, bool child, char *out,
		   size_t len);

#endif /* TIERMM_SHIM_CONF_H */
