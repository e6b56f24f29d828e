// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The interval set of regions.h: a sorted array, binary search, memmove.
 * A process has at most vm.max_map_count (65530) mappings and the set
 * merges neighbours, so the array stays small; one change costs a
 * memmove of at most about 1 MiB, usually a few hundred bytes.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "regions.h"

#define MIN_CAP 256		/* 4 KiB */

static void *raw_alloc(size_t bytes)
{
	long p = syscall(SYS_mmap, NULL, bytes, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == -1 ? NULL : (void *)p;
}

static void raw_free(void *p, size_t bytes)
{
	if (p)
		syscall(SYS_munmap, p, bytes);
}

/* Make room for at least want intervals. 0 or -ENOMEM. */
static int reserve(struct tmm_regions *r, size_t want)
{
	struct tmm_range *v;
	size_t cap = r->cap ? r->cap : MIN_CAP;

	if (want <= r->cap)
		return 0;
	while (cap < want)
		cap *= 2;
	v = raw_alloc(cap * sizeof(*v));
	if (!v)
		return -ENOMEM;
	if (r->n)
		memcpy(v, r->v, r->n * sizeof(*v));
	raw_free(r->v, r->cap * sizeof(*v));
	r->v = v;
	r->cap = cap;
	return 0;
}

/* First index whose end is > addr (touching == false) or >= addr. */
static size_t first_end_after(const struct tmm_regions *r, uint64_t addr, bool touching)
{
	size_t lo = 0, hi = r->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		bool after = touching ? r->v[mid].end >= addr : r->v[mid].end > addr;

		if (after)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

/* First index whose start is > addr (touching) or >= addr. */
static size_t first_start_after(const struct tmm_regions *r, uint64_t addr, bool touching)
{
	size_t lo = 0, hi = r->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		bool after = touching ? r->v[mid].start > addr : r->v[mid].start >= addr;

		if (after)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

/* Replace v[lo, hi) by the nr intervals of repl (nr <= hi - lo + 1). */
static void splice(struct tmm_regions *r, size_t lo, size_t hi,
		   const struct tmm_range *repl, size_t nr)
{
	for (size_t i = lo; i < hi; i++)
		r->bytes -= r->v[i].end - r->v[i].start;
	memmove(r->v + lo + nr, r->v + hi, (r->n - hi) * sizeof(*r->v));
	for (size_t i = 0; i < nr; i++) {
		r->v[lo + i] = repl[i];
		r->bytes += repl[i].end - repl[i].start;
	}
	r->n = r->n - (hi - lo) + nr;
}

int tmm_regions_add(struct tmm_regions *r, uint64_t start, uint64_t end)
{
	struct tmm_range m = { start, end };
	size_t lo, hi;

	if (start >= end)
		return 0;
	/* Every interval that overlaps or touches [start, end) merges. */
	lo = first_end_after(r, start, true);
	hi = first_start_after(r, end, true);
	if (lo == hi && reserve(r, r->n + 1)) {
		r->lossy = true;
		return -ENOMEM;
	}
	if (lo < hi) {
		if (r->v[lo].start < m.start)
			m.start = r->v[lo].start;
		if (r->v[hi - 1].end > m.end)
			m.end = r->v[hi - 1].end;
	}
	splice(r, lo, hi, &m, 1);
	return 0;
}

void tmm_regions_remove(struct tmm_regions *r, uint64_t start, uint64_t end)
{
	struct tmm_range keep[2];
	size_t lo, hi, nr = 0;

	if (start >= end)
		return;
	lo = first_end_after(r, start, false);
	hi = first_start_after(r, end, false);
	if (lo >= hi)
		return;
	if (r->v[lo].start < start)
		keep[nr++] = (struct tmm_range){ r->v[lo].start, start };
	if (r->v[hi - 1].end > end)
		keep[nr++] = (struct tmm_range){ end, r->v[hi - 1].end };
	if (nr > hi - lo && reserve(r, r->n + 1)) {
		/* A hole in one interval and no room: keep the left part. */
		r->lossy = true;
		nr = 1;
	}
	splice(r, lo, hi, keep, nr);
}

uint64_t tmm_regions_overlap(const struct tmm_regions *r, uint64_t start, uint64_t end)
{
	uint64_t sum = 0;

	for (size_t i = first_end_after(r, start, false); i < r->n && r->v[i].start < end; i++) {
		uint64_t s = r->v[i].start > start ? r->v[i].start : start;
		uint64_t e = r->v[i].end < end ? r->v[i].end : end;

		sum += e - s;
	}
	return sum;
}

int tmm_regions_intersect(struct tmm_regions *r, const struct tmm_range *keep, size_t nkeep)
{
	size_t cap = r->n + nkeep, i = 0, j = 0, n = 0;
	struct tmm_range *v;
	uint64_t bytes = 0;

	if (!r->n)
		return 0;
	if (cap < MIN_CAP)
		cap = MIN_CAP;
	v = raw_alloc(cap * sizeof(*v));
	if (!v)
		return -ENOMEM;
	while (i < r->n && j < nkeep) {
		uint64_t s = r->v[i].start > keep[j].start ? r->v[i].start : keep[j].start;
		uint64_t e = r->v[i].end < keep[j].end ? r->v[i].end : keep[j].end;

		if (s < e) {
			/* Pieces of one interval cut by adjacent keeps rejoin. */
			if (n && v[n - 1].end == s)
				v[n - 1].end = e;
			else
				v[n++] = (struct tmm_range){ s, e };
			bytes += e - s;
		}
		if (r->v[i].end < keep[j].end)
			i++;
		else
			j++;
	}
	raw_free(r->v, r->cap * sizeof(*r->v));
	r->v = v;
	r->cap = cap;
	r->n = n;
	r->bytes = bytes;
	return 0;
}

void tmm_regions_free(struct tmm_regions *r)
{
	raw_free(r->v, r->cap * sizeof(*r->v));
	memset(r, 0, sizeof(*r));
}
