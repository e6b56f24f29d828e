/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * tiermm page tables: where the page-table pages of a process live, what
 * they hold, moving them to another NUMA node (vMitosis-style migration),
 * and an accessed-bit scanner. Every call here needs tiermm.ko with API
 * version 2; without it they fail with -ENODEV and tiermm_errmsg() says how
 * to load it.
 *
 * Ranges: [start, start + len) of the target's user address space, with
 * start and len multiples of 4096 and no overflow. len == 0 with start == 0
 * means the whole process: from the lowest to the highest address of its
 * memory mappings (read from /proc/PID/maps when the call starts).
 *
 * Targets: pid 0 is the calling process. Reading page tables needs ptrace
 * read access to the target; migrating them and clearing accessed bits also
 * need the same user or CAP_SYS_NICE (the rules of move_pages(2)).
 *
 * Page-table levels are numbered as the module numbers them: 0 holds leaf
 * PTEs (4 KiB pages), 1 PMDs (2 MiB), 2 PUDs (1 GiB), 3 the PGD (and a P4D
 * with 5-level paging).
 *
 * Replication (the end of this header) is the exception: it needs no
 * module but a kernel built with tiermm's page-table replication patches.
 */
#ifndef TIERMM_PT_H
#define TIERMM_PT_H

#include <stdio.h>
#include <sys/types.h>
#include <tiermm/common.h>

/* libnuma's node mask (<numa.h>), for the libnuma-compatible calls below. */
struct bitmask;

#ifdef __cplusplus
extern "C" {
#endif

enum tiermm_pt_level {
	TIERMM_PT_LEVEL_PTE = 0,	/* leaf tables: 512 entries of 4 KiB */
	TIERMM_PT_LEVEL_PMD = 1,	/* 512 entries of 2 MiB */
	TIERMM_PT_LEVEL_PUD = 2,	/* 512 entries of 1 GiB */
	TIERMM_PT_LEVEL_PGD = 3,	/* the root (and P4D when not folded) */
	TIERMM_PT_LEVEL__COUNT
};
/* "pte", "pmd", "pud", "pgd"; NULL for another value. */
TIERMM_API const char *tiermm_pt_level_name(enum tiermm_pt_level level);

/* Target node of tiermm_pt_migrate(): each table to its data's node. */
#ifndef TIERMM_NODE_AUTO
#define TIERMM_NODE_AUTO (-1)
#endif

/* ---- Statistics ------------------------------------------------------ */

/*
 * The handle is struct tiermm_pt_stats: struct tiermm_pt_stat (singular) is
 * the module's ioctl argument in <linux/tiermm.h>.
 */
struct tiermm_pt_stats;

/*
 * Count the page-table pages that map [start, start + len) of pid, per node
 * and level, the leaf entries they hold and the data pages they map, into a
 * new handle in *stat. flags must be 0. 0 or -errno.
 */
TIERMM_API int tiermm_pt_stat(pid_t pid, uint64_t start, uint64_t len,
			      unsigned int flags, struct tiermm_pt_stats **stat);
TIERMM_API void tiermm_pt_stat_free(struct tiermm_pt_stats *stat);

/* Node slots in the handle (the kernel's highest possible node + 1). */
TIERMM_API int tiermm_pt_stat_nr_nodes(const struct tiermm_pt_stats *stat);

/* One node's share of the range. */
struct tiermm_pt_node {
	size_t sz;		/* in: sizeof(struct tiermm_pt_node) */
	int node;		/* node id */
	int online;		/* the node is online */
	/* Page-table pages on this node, per TIERMM_PT_LEVEL_*. */
	uint64_t tables[TIERMM_PT_LEVEL__COUNT];
	/* Leaf entries (present PTEs and huge PMD/PUD mappings) in them. */
	uint64_t leaf_entries;
	/* 4 KiB data pages on this node (a 2 MiB page counts 512). */
	uint64_t data_pages;
	/*
	 * The vMitosis metric: the share (0..1) of all leaf entries of the
	 * range that are held on this node, i.e. how many of its leaf-level
	 * page walks a thread running here finds local. 0 when the range has
	 * no leaf entry.
	 */
	double leaf_local;
	/* Share (0..1) of the range's data pages on this node; 0 if none. */
	double data_share;
};

/*
 * Fill *info for node id node (0 <= node < tiermm_pt_stat_nr_nodes()).
 * info->sz must be set; at most info->sz bytes are written. 0, -EINVAL or
 * -ENOENT.
 */
TIERMM_API int tiermm_pt_stat_node(const struct tiermm_pt_stats *stat,
				   int node, struct tiermm_pt_node *info);

/* Totals of the range, over all nodes. */
struct tiermm_pt_summary {
	size_t sz;		/* in: sizeof(struct tiermm_pt_summary) */
	int pid;		/* as given */
	int whole;		/* 1: the whole process was asked for */
	uint64_t start;		/* the range counted */
	uint64_t len;
	uint64_t tables[TIERMM_PT_LEVEL__COUNT];	/* all nodes */
	/*
	 * Per level: tables on the node holding the majority of the data they
	 * map (for upper levels: of their child tables, the bottom-up vote),
	 * tables elsewhere, and tables that map no present data.
	 */
	uint64_t tables_local[TIERMM_PT_LEVEL__COUNT];
	uint64_t tables_remote[TIERMM_PT_LEVEL__COUNT];
	uint64_t tables_empty[TIERMM_PT_LEVEL__COUNT];
	/* Huge leaves: [TIERMM_PT_LEVEL_PMD] 2 MiB, [..._PUD] 1 GiB. */
	uint64_t leaf_huge[TIERMM_PT_LEVEL__COUNT];
	uint64_t leaf_entries;	/* all nodes */
	uint64_t data_pages;	/* all nodes, 4 KiB units */
	int data_node;		/* node with the most data pages, -1: none */
	int leaf_node;		/* node with the most leaf entries, -1: none */
	/*
	 * Added after 0.2.0 (replicated page tables, tiermm_pt_replicate()):
	 * the number of replicas (0: not replicated; see
	 * tiermm_pt_stat_replica()), or -1 when the kernel has replication
	 * but the loaded tiermm.ko cannot see replicas (API before 3, or
	 * built without replication support); 1 in replica_groups when the
	 * kernel's replicas are per CPU group rather than per node; and the
	 * replica tables that are not local, over all replicas. Everything
	 * else in these structs describes the master tree only.
	 */
	int replicas;
	int replica_groups;
	uint64_t replica_remote;
};

/* Fill *sum (sum->sz set by the caller). 0 or -EINVAL. */
TIERMM_API int tiermm_pt_stat_summary(const struct tiermm_pt_stats *stat,
				      struct tiermm_pt_summary *sum);

/* One replica of a process's page tables (see Replication below). */
struct tiermm_pt_replica {
	size_t sz;		/* in: sizeof(struct tiermm_pt_replica) */
	/*
	 * Whose replica: a node, or with group 1 a CPU group (the kernel's
	 * kernel.pgtable_replication_groups, for VMs that hide their NUMA
	 * topology): the number a replication mask names it by.
	 */
	int slot;
	int group;
	/* Page-table pages of its tree that map the range (root included). */
	uint64_t tables[TIERMM_PT_LEVEL__COUNT];
	/*
	 * Of those, the local ones: on the slot's node (a group: on a node of
	 * its CPUs). A table the kernel could not allocate there is the
	 * master's, counted where it is.
	 */
	uint64_t local[TIERMM_PT_LEVEL__COUNT];
};

/*
 * Fill *info (info->sz set) for the idx-th replica of the statistics, in
 * slot order (0 <= idx < the summary's replicas). 0, -EINVAL or -ENOENT.
 */
TIERMM_API int tiermm_pt_stat_replica(const struct tiermm_pt_stats *stat,
				      int idx, struct tiermm_pt_replica *info);

/* ---- Dumps ------------------------------------------------------------ */

/* format argument of tiermm_pt_dump(). */
enum tiermm_pt_dump_format {
	TIERMM_PT_DUMP_TEXT = 0,	/* one line per table */
	TIERMM_PT_DUMP_JSON = 1u << 0,	/* one JSON object */
	TIERMM_PT_DUMP_ENTRIES = 1u << 1, /* or-ed in: the non-zero entries too */
};

/*
 * Write every page-table page that maps part of the range to out, top-down
 * and depth-first: level, the addresses its entries map, frame number, node
 * and present entries, and with TIERMM_PT_DUMP_ENTRIES the raw non-zero
 * entries. Returns the number of tables written, or -errno (out may then
 * hold a partial dump).
 */
TIERMM_API int tiermm_pt_dump(pid_t pid, uint64_t start, uint64_t len,
			      FILE *out, unsigned int format);

/* ---- Migration -------------------------------------------------------- */

/* levels argument of tiermm_pt_migrate(). The PGD is never moved. */
#define TIERMM_PT_LEVELS_PTE (1u << TIERMM_PT_LEVEL_PTE)
#define TIERMM_PT_LEVELS_PMD (1u << TIERMM_PT_LEVEL_PMD)
#define TIERMM_PT_LEVELS_PUD (1u << TIERMM_PT_LEVEL_PUD)
#define TIERMM_PT_LEVELS_ALL \
	(TIERMM_PT_LEVELS_PTE | TIERMM_PT_LEVELS_PMD | TIERMM_PT_LEVELS_PUD)

/* Why a table was not moved: indexes of tiermm_pt_migrate_result.skipped. */
enum tiermm_pt_skip {
	TIERMM_PT_SKIP_ALREADY = 0,	/* already on the target node */
	TIERMM_PT_SKIP_NO_DATA = 1,	/* auto: maps no present data */
	TIERMM_PT_SKIP_NOMEM = 2,	/* no free page on the target node */
	TIERMM_PT_SKIP_HUGE = 3,	/* a huge leaf, not a table */
	TIERMM_PT_SKIP_BUSY = 4,	/* changed during the move; try again */
	TIERMM_PT_SKIP__COUNT = 8	/* slots, some reserved */
};
/* "already", "no-data", "nomem", "huge", "busy"; NULL otherwise. */
TIERMM_API const char *tiermm_pt_skip_name(enum tiermm_pt_skip reason);

struct tiermm_pt_migrate_result {
	size_t sz;		/* in: sizeof(struct tiermm_pt_migrate_result) */
	uint64_t moved[TIERMM_PT_LEVEL__COUNT];	/* tables moved, per level */
	uint64_t skipped[TIERMM_PT_SKIP__COUNT];	/* not moved, by reason */
	uint64_t start;		/* the range worked on */
	uint64_t len;
};

/*
 * Move the page-table pages of the given levels (TIERMM_PT_LEVELS_* bits)
 * that map the range to node, or with TIERMM_NODE_AUTO each to the node
 * holding the majority of what it maps (bottom-up). result may be NULL.
 * Returns the number of tables moved (0 or more), or -errno.
 */
TIERMM_API int tiermm_pt_migrate(pid_t pid, uint64_t start, uint64_t len,
				 int node, unsigned int levels,
				 struct tiermm_pt_migrate_result *result);

/* ---- Replication -------------------------------------------------------- */

/*
 * Page-table replication (Mitosis): a full copy of the process's user page
 * tables on each of a set of nodes, kept coherent by the kernel, so that a
 * thread's page walks stay on its own node. It needs a kernel built with
 * tiermm's patch series (tiermm caps: pt_replication); any other kernel
 * makes these calls fail with -ENOTSUP, and the message says so.
 *
 * Node sets are bit masks of unsigned long words as set_mempolicy(2) takes
 * them: node n is bit n % (8 * sizeof(long)) of word n / (8 * sizeof(long)),
 * maxnode is the number of bits given. When the kernel replicates per CPU
 * group (/proc/sys/kernel/pgtable_replication_groups set, for VMs that
 * hide their NUMA topology), bit g names group g instead of a node.
 *
 * pid 0 is the calling process (prctl(2) PR_SET/GET_PGTABLE_REPLICATION);
 * another pid goes through /proc/PID/pgtable_replication, which needs the
 * permission to ptrace-attach to it. The nodes become the process's policy:
 * inherited by fork(2) and kept across execve(2).
 */

/*
 * Replicate the page tables of pid on the nodes of the mask (bits
 * maxnode and up ignored), replacing a different set; an empty mask (or
 * NULL with maxnode 0) ends replication and frees the replicas. Every node
 * must be online and have memory (every group must exist). flags must be
 * 0. 0 or -errno: -ENOTSUP
 * (the kernel lacks the patches, or refuses replication on this machine:
 * page-table isolation, 5-level paging, Xen PV), -EINVAL, -ESRCH, -EPERM /
 * -EACCES, -ENOMEM (replicas could not be allocated), -EINTR; nothing has
 * changed after an error.
 */
TIERMM_API int tiermm_pt_replicate(pid_t pid, const unsigned long *nodes,
				   unsigned int maxnode, unsigned int flags);

/*
 * The nodes holding replicas of pid's page tables now, into nodes (zeroed
 * first; maxnode bits). Returns how many there are (0: not replicated), or
 * -errno: -ERANGE when a replica is on a node >= maxnode (nodes unchanged),
 * -ENOTSUP, -EINVAL, -ESRCH, -EPERM / -EACCES.
 */
TIERMM_API int tiermm_pt_replication(pid_t pid, unsigned long *nodes,
				     unsigned int maxnode);

/*
 * libnuma-compatible names (as Mitosis's libnuma has them), for the calling
 * process, with libnuma's conventions: -1 or NULL and errno on failure
 * (tiermm_errmsg() holds the detailed message). The set call takes
 * libnuma's struct bitmask (NULL or an empty mask disables replication);
 * the get call returns a new one, free it with numa_bitmask_free() or
 * free(bmp->maskp) and free(bmp).
 */
TIERMM_API int numa_set_pgtable_replication_mask(struct bitmask *nodes);
TIERMM_API struct bitmask *numa_get_pgtable_replication_mask(void);

/* ---- Accessed-bit scanner -------------------------------------------- */

/* flags of struct tiermm_ab_scan_opts. */
enum tiermm_ab_scan_flag {
	/* Flush TLBs after clearing, so the next pass sees new accesses. */
	TIERMM_AB_SCAN_FLUSH = 1u << 0,
	/* Per 2 MiB region counts instead of a bitmap (start 2 MiB aligned). */
	TIERMM_AB_SCAN_COUNTS = 1u << 1,
};

struct tiermm_ab_scan_opts {
	size_t sz;
	unsigned int flags;	/* TIERMM_AB_SCAN_* */
	/* Pages examined per batch at most; 0: the module's 262144 (1 GiB). */
	uint64_t max_pages;
};

struct tiermm_ab_scanner;

/* One batch: what one tiermm_ab_scan_next() call examined. */
struct tiermm_ab_batch {
	size_t sz;		/* in: sizeof(struct tiermm_ab_batch) */
	uint64_t base;		/* address of bit 0, or of counts[0] */
	uint64_t start;		/* first address examined by this batch */
	uint64_t end;		/* first address not examined (the cursor) */
	uint64_t scanned;	/* pages examined */
	uint64_t accessed;	/* pages found accessed (and cleared) */
	/*
	 * Without TIERMM_AB_SCAN_COUNTS: bit i = (addr - base) / 4096 of this
	 * bitmap (bit i % 64 of word i / 64; on x86-64 also bit i % 8 of byte
	 * i / 8) is set when that page was accessed;
	 * with it, counts[(addr - base) / 2 MiB] accessed 4 KiB pages. Only
	 * [start, end) is meaningful, everything else reads 0; nr is the
	 * number of bits or counts. Valid until the next call on the scanner.
	 */
	const uint64_t *bitmap;
	const uint16_t *counts;
	size_t nr;
};

/*
 * Open a scanner on the range (len 0 and start 0: the whole process, pass
 * by pass over its mappings). opts may be NULL. 0 or -errno.
 */
TIERMM_API int tiermm_ab_scan_open(pid_t pid, uint64_t start, uint64_t len,
				   const struct tiermm_ab_scan_opts *opts,
				   struct tiermm_ab_scanner **scanner);
/*
 * Test and clear the accessed bits of the next part of the range. Returns
 * 1 with *batch filled, 0 when the pass is complete (nothing scanned; the
 * next call starts a new pass), or -errno.
 */
TIERMM_API int tiermm_ab_scan_next(struct tiermm_ab_scanner *scanner,
				   struct tiermm_ab_batch *batch);
/* Start a new pass at the beginning of the range. 0 or -errno. */
TIERMM_API int tiermm_ab_scan_rewind(struct tiermm_ab_scanner *scanner);
TIERMM_API void tiermm_ab_scan_close(struct tiermm_ab_scanner *scanner);

#ifdef __cplusplus
}
#endif

#endif /* TIERMM_PT_H */
