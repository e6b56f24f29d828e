/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A set of address ranges, kept as sorted, disjoint, non-adjacent
 * [start, end) intervals: what the shim has seen the program map through
 * mmap(2)/mremap(2) and not unmap since. Adjacent and overlapping ranges
 * merge, so the set describes coverage, not the individual mappings.
 *
 * Storage comes straight from the mmap system call (never malloc, never
 * the interposed mmap): the set is updated from inside the interposers,
 * which may run inside the allocator. Not thread-safe: the caller locks.
 * An allocation that fails leaves the set usable but marks it lossy.
 */
#ifndef TIERMM_SHIM_REGIONS_H
#define TIERMM_SHIM_REGIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tmm_range {
	uint64_t start, end;
};

struct tmm_regions {
	struct tmm_range *v;
	size_t n, cap;
	uint64_t bytes;		/* sum of the intervals' lengths */
	bool lossy;		/* a change could not be recorded (no memory) */
};

/* Add [start, end) (union). 0, or -ENOMEM (then lossy is set). */
int tmm_regions_add(struct tmm_regions *r, uint64_t start, uint64_t end);
/* Remove [start, end). Never fails; may set lossy (keeps too little). */
void tmm_regions_remove(struct tmm_regions *r, uint64_t start, uint64_t end);
/* Bytes of [start, end) that are in the set. */
uint64_t tmm_regions_overlap(const struct tmm_regions *r, uint64_t start,
			     uint64_t end);
/*
 * Keep only what is also in keep[0..nkeep) (sorted, disjoint): drop what
 * the program unmapped behind the interposers' back. 0 or -ENOMEM (the
 * set is then unchanged).
 */
int tmm_regions_intersect(struct tmm_regions *r, const struct tmm_range *keep,
			  size_t nkeep);
/* Empty the set and return its memory. */
void tmm_regions_free(struct tmm_regions *r);

#endif /* TIERMM_SHIM_REGIONS_H */
