/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * tiermm placement: move memory to a node or a tier and check where every
 * page landed, count where a range resides, allocate memory bound to a
 * tier, and give the tiering engine hints about ranges of the calling
 * process.
 *
 * Data pages move with move_pages(2) and are placed with mbind(2); nothing
 * here needs tiermm.ko. Ranges are given as an address and a length: the
 * address must be page aligned and the length is rounded up to whole pages,
 * as mbind(2) and madvise(2) do. A range (or any part of it) that is not
 * mapped is -EFAULT everywhere in this header.
 */
#ifndef TIERMM_PLACE_H
#define TIERMM_PLACE_H

#include <sys/types.h>
#include <tiermm/common.h>
#include <tiermm/topo.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Flags of tiermm_move() and tiermm_move_tier(). */
enum tiermm_move_flag {
	/*
	 * Validate everything that can be checked before the first page
	 * moves (range mapped, every page movable, target nodes present and
	 * allowed, enough free memory on them), then fail with the first
	 * error as soon as a page does not move. Pages moved before that
	 * stay moved: move_pages(2) is not transactional.
	 */
	TIERMM_MOVE_STRICT = 1u << 0,
	/*
	 * Also move pages mapped by other processes (MPOL_MF_MOVE_ALL;
	 * needs CAP_SYS_NICE). Without it such pages fail with EACCES.
	 */
	TIERMM_MOVE_SHARED = 1u << 1,
};

/*
 * What a move did, counted in base pages of the range, from a status query
 * made after the move. Every page is counted exactly once:
 *   pages = moved + already_there + not_present + failed + skipped
 * and failed = failed_busy + failed_nomem + failed_fault + failed_other.
 */
struct tiermm_move_result {
	size_t sz;		/* in: sizeof(struct tiermm_move_result) */
	uint64_t pages;		/* base pages in the range */
	uint64_t moved;		/* were elsewhere, now on a target node */
	uint64_t already_there;	/* were on a target node already */
	uint64_t not_present;	/* no page to move: never written, swapped
				 * out, or the shared zero page */
	uint64_t failed;	/* present and not on a target node */
	uint64_t failed_busy;	/* the kernel could not isolate them, every
				 * retry (EBUSY/EAGAIN) */
	uint64_t failed_nomem;	/* the target node ran out of memory */
	uint64_t failed_fault;	/* unmapped during the call, or in a mapping
				 * move_pages(2) cannot move (EFAULT) */
	uint64_t failed_other;	/* migration failed every retry (pinned, e.g.
				 * DMA or io_uring buffers), mapped shared
				 * (EACCES), or moved away again */
	uint64_t skipped;	/* not examined: the call stopped early */
	uint64_t first_failed;	/* address of the first page that failed */
	int first_error;	/* its errno, 0 if no page failed */
	unsigned int retries;	/* move_pages(2) rounds for busy pages */
	uint64_t huge;		/* huge pages handed over by head address */
	uint64_t syscalls;	/* move_pages(2) calls made */
	uint64_t elapsed_ns;	/* wall time of the call */
};

/*
 * Move [addr, addr + len) of process pid (0: the caller) to NUMA node node
 * (the kernel's number). result may be NULL; otherwise result->sz must be
 * set and at most that many bytes are written. Returns 0 when the call ran
 * to completion (without TIERMM_MOVE_STRICT that includes pages that did
 * not move: see *result), or a negative errno.
 */
TIERMM_API int tiermm_move(pid_t pid, const void *addr, size_t len, int node,
			   unsigned int flags,
			   struct tiermm_move_result *result);

/*
 * Move the range to tier tier of topo. A page already on a node of the tier
 * stays where it is; any other page goes to the node of the tier nearest
 * (SLIT distance) to the node it is on now, and among equally near nodes to
 * the one with the most free memory left. Same flags and result.
 */
TIERMM_API int tiermm_move_tier(const struct tiermm_topo *topo, pid_t pid,
				const void *addr, size_t len, int tier,
				unsigned int flags,
				struct tiermm_move_result *result);

/*
 * Count the pages of [addr, addr + len) of process pid per node: counts[n]
 * gets the number of base pages on node n for n < nr_counts (the array is
 * zeroed first; counts may be NULL when nr_counts is 0), *not_present (may
 * be NULL) the pages that have no page of their own. Returns 1 + the
 * highest node holding a page of the range (0 if none), which may exceed
 * nr_counts: then pages on nodes >= nr_counts were not stored, call again
 * with a larger array. Or a negative errno.
 */
TIERMM_API int tiermm_residency(pid_t pid, const void *addr, size_t len,
				uint64_t *counts, unsigned int nr_counts,
				uint64_t *not_present);

/*
 * The same per tier of topo: counts[t] for t < nr_counts, which must be at
 * least tiermm_topo_nr_tiers(topo) (-ERANGE otherwise). Returns the number
 * of tiers, or a negative errno (-ENOENT if a page is on a node that topo
 * does not know).
 */
TIERMM_API int tiermm_residency_tiers(const struct tiermm_topo *topo,
				      pid_t pid, const void *addr, size_t len,
				      uint64_t *counts, unsigned int nr_counts,
				      uint64_t *not_present);

/* Flags of tiermm_alloc_tier(). */
enum tiermm_alloc_flag {
	/*
	 * MPOL_PREFERRED_MANY instead of MPOL_BIND: prefer the tier's nodes,
	 * use others when they are full. Fails with ENOTSUP on kernels
	 * without it (before 5.15); never falls back to another policy.
	 */
	TIERMM_ALLOC_PREFERRED = 1u << 0,
	/* Fault every page in now (MADV_POPULATE_WRITE). */
	TIERMM_ALLOC_POPULATE = 1u << 1,
};

/*
 * len bytes (rounded up to whole pages) of new anonymous, zeroed, private
 * memory whose pages are allocated on the nodes of tier tier of topo only
 * (MPOL_BIND), or preferably there (TIERMM_ALLOC_PREFERRED). Returns the
 * page-aligned address, or NULL with errno set.
 */
TIERMM_API void *tiermm_alloc_tier(const struct tiermm_topo *topo, size_t len,
				   int tier, unsigned int flags);
/*
 * Release memory from tiermm_alloc_tier() (ptr and len as given to and
 * returned by it) and clear the hints on that range. 0 or -errno.
 */
TIERMM_API int tiermm_free(void *ptr, size_t len);

/* What a range of the calling process is, for the tiering engine. */
enum tiermm_hint {
	TIERMM_HINT_DEFAULT = 0,	/* no hint: removes earlier ones */
	TIERMM_HINT_HOT = 1,		/* bias towards the fast tier */
	TIERMM_HINT_COLD = 2,		/* bias towards slower tiers */
	TIERMM_HINT_PIN_FAST = 3,	/* move to the fastest tier now and
					 * never move it away from there */
	TIERMM_HINT_PIN_SLOW = 4,	/* the same with the slowest tier */
	TIERMM_HINT_NO_MIGRATE = 5,	/* the engine never moves it */
	TIERMM_HINT__COUNT
};

/* Flags of tiermm_hint(). */
enum tiermm_hint_flag {
	/* With PIN_FAST/PIN_SLOW: record the hint, do not move anything. */
	TIERMM_HINT_RECORD_ONLY = 1u << 0,
};

/*
 * Record hint for [addr, addr + len) of the calling process. The range
 * must be mapped. A later hint replaces earlier ones where they overlap;
 * TIERMM_HINT_DEFAULT removes them. PIN_FAST and PIN_SLOW also move the
 * range to that tier now (best effort) unless TIERMM_HINT_RECORD_ONLY.
 * Returns 0 or a negative errno; on error no hint changed.
 */
TIERMM_API int tiermm_hint(const void *addr, size_t len, enum tiermm_hint hint,
			   unsigned int flags);
/* Short stable name of a hint ("hot", "pin_fast", ...); NULL if invalid. */
TIERMM_API const char *tiermm_hint_name(enum tiermm_hint hint);

#ifdef __cplusplus
}
#endif

#endif /* TIERMM_PLACE_H */
