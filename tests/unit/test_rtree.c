// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The classifier's range tree: synthetic observation streams (static and
 * moving hot sets, uniform access, many hot spots against max_ranges),
 * address-space changes, hot-set fitting with hysteresis and cooling, a
 * property test against a reference page map, and readers taking snapshots
 * while the writer works (run under ASan, and under TSan by hand: see
 * the end of this file).
 *
 * TIERMM_TEST_VERBOSE=1 prints the trees the tests converge to;
 * TIERMM_TEST_SEED=n runs the same tests on other random streams.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "internal.h"
#include "tiering.h"

#define MiB (1ULL << 20)
#define GiB (1ULL << 30)
#define BASE 0x7f0000000000ULL

static bool verbose;
static uint64_t seed;	/* TIERMM_TEST_SEED: other streams */

/* ---- helpers ---- */

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static double rnd01(uint64_t *s)
{
	return (double)(rnd(s) >> 11) / (double)(1ULL << 53);
}

static struct tiermm__rtree *mk(const struct tiermm__rtree_params *p)
{
	struct tiermm__rtree_params d = { .nr_cpus = 1 };
	struct tiermm__rtree *t = NULL;

	assert_int_equal(tiermm__rtree_new(p ? p : &d, &t), 0);
	assert_non_null(t);
	return t;
}

/*
 * n observations: with probability hot_frac uniform in [hs, hs + hl), else
 * uniform in [as, as + al).
 */
static void feed(struct tiermm__rtree *t, uint64_t *rng, size_t n,
		 uint64_t hs, uint64_t hl, double hot_frac, uint64_t as,
		 uint64_t al)
{
	struct tiermm__obs obs[4096];

	while (n) {
		size_t k = n < 4096 ? n : 4096;

		for (size_t i = 0; i < k; i++) {
			bool hot = hl && rnd01(rng) < hot_frac;

			obs[i] = (struct tiermm__obs){
				.addr = hot ? hs + rnd(rng) % hl : as + rnd(rng) % al,
				.weight = 1,
			};
		}
		tiermm__rtree_record(t, obs, k);
		n -= k;
	}
}

static struct tiermm__range *ranked(struct tiermm__rtree *t, size_t *n)
{
	struct tiermm__range *r = NULL;

	assert_int_equal(tiermm__rtree_ranked(t, &r, n), 0);
	assert_non_null(r);
	return r;
}

static int cmp_start(const void *a, const void *b)
{
	const struct tiermm__range *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

static struct tiermm__range *by_addr(struct tiermm__rtree *t, size_t *n)
{
	struct tiermm__range *r = ranked(t, n);

	qsort(r, *n, sizeof(*r), cmp_start);
	return r;
}

static void dump(struct tiermm__rtree *t, const char *what)
{
	size_t n;
	struct tiermm__range *r;

	if (!verbose)
		return;
	r = by_addr(t, &n);
	printf("-- %s: %zu ranges\n", what, n);
	for (size_t i = 0; i < n; i++)
		printf("  [%6llu, %6llu) MiB  count %10.1f  dens/MiB %9.2f  age %u%s%s\n",
		       (unsigned long long)((r[i].start - BASE) / MiB),
		       (unsigned long long)((r[i].end - BASE) / MiB),
		       r[i].count, r[i].density * MiB, r[i].age,
		       r[i].cooling ? " cooling" : "",
		       r[i].hot ? " hot" : "");
	free(r);
}

static void epoch(struct tiermm__rtree *t)
{
	assert_int_equal(tiermm__rtree_epoch(t), 0);
	assert_int_equal(tiermm__rtree_check(t), 0);
}

/* No range straddles the boundaries of [hs, he). */
static bool isolated(struct tiermm__rtree *t, uint64_t hs, uint64_t he)
{
	size_t n;
	struct tiermm__range *r = by_addr(t, &n);
	bool ok = true;

	for (size_t i = 0; i < n; i++)
		if ((r[i].start < hs && r[i].end > hs) ||
		    (r[i].start < he && r[i].end > he))
			ok = false;
	free(r);
	return ok;
}

/*
 * The densest ranges, taken in rank order until a range outside [hs, he)
 * comes: how many bytes of [hs, he) they cover.
 */
static uint64_t top_cover(struct tiermm__rtree *t, uint64_t hs, uint64_t he)
{
	size_t n;
	struct tiermm__range *r = ranked(t, &n);
	uint64_t cov = 0;

	for (size_t i = 0; i < n && r[i].start >= hs && r[i].end <= he; i++)
		cov += r[i].end - r[i].start;
	free(r);
	return cov;
}

/* Ranges overlapping [a, b). */
static size_t ranges_in(struct tiermm__rtree *t, uint64_t a, uint64_t b)
{
	size_t n, c = 0;
	struct tiermm__range *r = by_addr(t, &n);

	for (size_t i = 0; i < n; i++)
		c += r[i].start < b && r[i].end > a;
	free(r);
	return c;
}

static const struct tiermm__range *range_at(const struct tiermm__range *r,
					    size_t n, uint64_t addr)
{
	for (size_t i = 0; i < n; i++)
		if (r[i].start <= addr && addr < r[i].end)
			return &r[i];
	return NULL;
}

/* ---- parameters, address space, recording ---- */

static void test_params(void **state)
{
	struct tiermm__rtree *t = NULL;
	struct tiermm__rtree_params p = { .min_range = 3000 };

	(void)state;
	assert_int_equal(tiermm__rtree_new(&p, &t), -EINVAL);
	assert_null(t);
	p = (struct tiermm__rtree_params){ .min_range = 4 * MiB,
					   .split_min = 6 * MiB };
	assert_int_equal(tiermm__rtree_new(&p, &t), -EINVAL);
	assert_non_null(strstr(tiermm_errmsg(), "split_min"));
	p = (struct tiermm__rtree_params){ .merge_ratio = 0.5 };
	assert_int_equal(tiermm__rtree_new(&p, &t), -EINVAL);
	p = (struct tiermm__rtree_params){ .split_samples = -1 };
	assert_int_equal(tiermm__rtree_new(&p, &t), -EINVAL);
	/* min_range alone: split_min follows it */
	p = (struct tiermm__rtree_params){ .min_range = 8 * MiB };
	assert_int_equal(tiermm__rtree_new(&p, &t), 0);
	tiermm__rtree_free(t);
	tiermm__rtree_free(NULL);
	t = mk(NULL);
	assert_int_equal(tiermm__rtree_size(t), 0);
	assert_int_equal(tiermm__rtree_map(t, 10, 10), -EINVAL);
	assert_int_equal(tiermm__rtree_map(t, UINT64_MAX - 10, UINT64_MAX), -EINVAL);
	assert_int_equal(tiermm__rtree_unmap(t, 5, 1), -EINVAL);
	tiermm__rtree_free(t);
}

static void test_map_unmap(void **state)
{
	struct tiermm__rtree *t = mk(NULL);
	struct tiermm__obs o[64];
	struct tiermm__range *r;
	size_t n;
	uint64_t id0;

	(void)state;
	/* rounded out to pages */
	assert_int_equal(tiermm__rtree_map(t, BASE + 100, BASE + 64 * MiB - 5), 0);
	assert_int_equal(tiermm__rtree_size(t), 1);
	/* overlapping maps add only the gaps */
	assert_int_equal(tiermm__rtree_map(t, BASE + 32 * MiB, BASE + 80 * MiB), 0);
	assert_int_equal(tiermm__rtree_map(t, BASE + 100 * MiB, BASE + 110 * MiB), 0);
	assert_int_equal(tiermm__rtree_map(t, BASE, BASE + 120 * MiB), 0);
	r = by_addr(t, &n);
	assert_int_equal(n, 5);
	assert_true(r[0].start == BASE && r[0].end == BASE + 64 * MiB);
	assert_true(r[1].start == BASE + 64 * MiB && r[1].end == BASE + 80 * MiB);
	assert_true(r[2].start == BASE + 80 * MiB && r[2].end == BASE + 100 * MiB);
	assert_true(r[3].start == BASE + 100 * MiB && r[3].end == BASE + 110 * MiB);
	assert_true(r[4].start == BASE + 110 * MiB && r[4].end == BASE + 120 * MiB);
	id0 = r[0].id;
	free(r);

	/* 64 accesses spread evenly over the first range */
	for (int i = 0; i < 64; i++)
		o[i] = (struct tiermm__obs){ .addr = BASE + (uint64_t)i * MiB + 4096,
					     .weight = 1 };
	tiermm__rtree_record(t, o, 64);
	/* a hole in the middle: two pieces, the left keeps the identity */
	assert_int_equal(tiermm__rtree_unmap(t, BASE + 16 * MiB, BASE + 32 * MiB), 0);
	assert_int_equal(tiermm__rtree_check(t), 0);
	r = by_addr(t, &n);
	assert_int_equal(n, 6);
	assert_true(r[0].start == BASE && r[0].end == BASE + 16 * MiB);
	assert_true(r[1].start == BASE + 32 * MiB && r[1].end == BASE + 64 * MiB);
	assert_int_equal(r[0].id, id0);
	assert_int_not_equal(r[1].id, id0);
	assert_float_equal(r[0].count, 16, 1e-9);
	assert_float_equal(r[1].count, 32, 1e-9);
	free(r);

	/* across several ranges, trimming both ends */
	assert_int_equal(tiermm__rtree_unmap(t, BASE + 40 * MiB, BASE + 90 * MiB), 0);
	assert_int_equal(tiermm__rtree_check(t), 0);
	r = by_addr(t, &n);
	assert_int_equal(n, 5);
	assert_true(r[1].start == BASE + 32 * MiB && r[1].end == BASE + 40 * MiB);
	assert_float_equal(r[1].count, 8, 1e-9);
	assert_true(r[2].start == BASE + 90 * MiB && r[2].end == BASE + 100 * MiB);
	free(r);
	/* nothing there: no change; an exact range: removed */
	assert_int_equal(tiermm__rtree_unmap(t, BASE + 200 * MiB,
					     BASE + 300 * MiB), 0);
	assert_int_equal(tiermm__rtree_size(t), 5);
	assert_int_equal(tiermm__rtree_unmap(t, BASE + 100 * MiB,
					     BASE + 120 * MiB), 0);
	assert_int_equal(tiermm__rtree_size(t), 3);
	assert_int_equal(tiermm__rtree_unmap(t, 0, UINT64_MAX - 8192), 0);
	assert_int_equal(tiermm__rtree_size(t), 0);
	tiermm__rtree_record(t, o, 4);	/* an empty tree misses everything */
	tiermm__rtree_free(t);
}

/* map() at max_ranges: forced merges of adjacent pairs, else -ENOSPC. */
static void test_map_full(void **state)
{
	struct tiermm__rtree_params p = { .nr_cpus = 1, .max_ranges = 3 };
	struct tiermm__rtree *t = mk(&p);
	const struct tiermm__rtree_snap *s;
	struct tiermm__range *r;
	size_t n;

	(void)state;
	/* three separate areas: nothing can merge, so a fourth is refused */
	assert_int_equal(tiermm__rtree_map(t, BASE, BASE + 8 * MiB), 0);
	assert_int_equal(tiermm__rtree_map(t, BASE + 16 * MiB, BASE + 24 * MiB), 0);
	assert_int_equal(tiermm__rtree_map(t, BASE + 32 * MiB, BASE + 40 * MiB), 0);
	assert_int_equal(tiermm__rtree_map(t, BASE + 48 * MiB, BASE + 56 * MiB),
			 -ENOSPC);
	/* a map filling two gaps is all or nothing */
	assert_int_equal(tiermm__rtree_map(t, BASE, BASE + 40 * MiB), -ENOSPC);
	assert_int_equal(tiermm__rtree_size(t), 3);
	assert_int_equal(tiermm__rtree_check(t), 0);
	r = by_addr(t, &n);
	assert_true(r[0].end == BASE + 8 * MiB && r[1].start == BASE + 16 * MiB);
	free(r);
	/* adjacent areas can merge to make room */
	assert_int_equal(tiermm__rtree_unmap(t, BASE + 32 * MiB, BASE + 40 * MiB), 0);
	assert_int_equal(tiermm__rtree_map(t, BASE + 8 * MiB, BASE + 16 * MiB), 0);
	assert_int_equal(tiermm__rtree_size(t), 3);
	assert_int_equal(tiermm__rtree_map(t, BASE + 64 * MiB, BASE + 72 * MiB), 0);
	assert_int_equal(tiermm__rtree_size(t), 3);
	assert_int_equal(tiermm__rtree_check(t), 0);
	r = by_addr(t, &n);
	assert_true(r[0].start == BASE && r[0].end == BASE + 16 * MiB);
	assert_true(r[1].start == BASE + 16 * MiB && r[1].end == BASE + 24 * MiB);
	assert_true(r[2].start == BASE + 64 * MiB);
	free(r);
	assert_int_equal(tiermm__rtree_publish(t), 0);
	s = tiermm__rtree_snapshot_get(t);
	assert_int_equal(s->stats.forced_merges, 1);
	tiermm__rtree_snapshot_put(s);
	/* a hole over the cap with no adjacent pair left: allowed, reported */
	assert_int_equal(tiermm__rtree_unmap(t, BASE + 4 * MiB, BASE + 20 * MiB), 0);
	assert_int_equal(tiermm__rtree_size(t), 3);
	assert_int_equal(tiermm__rtree_unmap(t, BASE + 66 * MiB, BASE + 68 * MiB), 0);
	assert_int_equal(tiermm__rtree_size(t), 4);
	assert_int_equal(tiermm__rtree_check(t), 0);
	tiermm__rtree_free(t);
}

static void test_record(void **state)
{
	struct tiermm__rtree *t = mk(NULL);
	struct tiermm__obs o[6];
	const struct tiermm__rtree_snap *s;
	struct tiermm__range *r;
	size_t n;

	(void)state;
	assert_int_equal(tiermm__rtree_map(t, BASE, BASE + 8 * MiB), 0);
	assert_int_equal(tiermm__rtree_map(t, BASE + 8 * MiB, BASE + 16 * MiB), 0);
	assert_int_equal(tiermm__rtree_map(t, BASE + 32 * MiB, BASE + 40 * MiB), 0);
	/* alternating ranges (the last-hit shortcut must not stick), a miss */
	o[0] = (struct tiermm__obs){ .addr = BASE + 5, .weight = 3 };
	o[1] = (struct tiermm__obs){ .addr = BASE + 9 * MiB, .weight = 2 };
	o[2] = (struct tiermm__obs){ .addr = BASE + 8 * MiB - 1, .weight = 1 };
	o[3] = (struct tiermm__obs){ .addr = BASE + 20 * MiB, .weight = 7 };
	o[4] = (struct tiermm__obs){ .addr = BASE + 40 * MiB - 1, .weight = 4 };
	o[5] = (struct tiermm__obs){ .addr = BASE - 1, .weight = 4 };
	tiermm__rtree_record(t, o, 6);
	r = by_addr(t, &n);
	assert_int_equal(n, 3);
	assert_float_equal(r[0].count, 4, 1e-9);
	assert_float_equal(r[1].count, 2, 1e-9);
	assert_float_equal(r[2].count, 4, 1e-9);
	free(r);

	/*
	 * TIERMM__OBS_RANGE: 4 MiB (1024 pages) from 6 MiB: 512 pages in each
	 * of the first two ranges; 10 MiB from 14 MiB: 512 pages in the
	 * second, the gap is not counted, 0 pages in the third; a span over
	 * nothing is a miss.
	 */
	o[0] = (struct tiermm__obs){ .addr = BASE + 6 * MiB, .weight = 1024,
				     .flags = TIERMM__OBS_RANGE };
	o[1] = (struct tiermm__obs){ .addr = BASE + 14 * MiB, .weight = 2560,
				     .flags = TIERMM__OBS_RANGE };
	o[2] = (struct tiermm__obs){ .addr = BASE + 16 * MiB, .weight = 100,
				     .flags = TIERMM__OBS_RANGE };
	o[3] = (struct tiermm__obs){ .addr = BASE + 30 * MiB, .weight = 0,
				     .flags = TIERMM__OBS_RANGE };
	tiermm__rtree_record(t, o, 4);
	r = by_addr(t, &n);
	assert_float_equal(r[0].count, 4 + 512, 1e-9);
	assert_float_equal(r[1].count, 2 + 512 + 512, 1e-9);
	assert_float_equal(r[2].count, 4, 1e-9);
	free(r);
	assert_int_equal(tiermm__rtree_publish(t), 0);
	s = tiermm__rtree_snapshot_get(t);
	assert_int_equal(s->stats.observations, 10);
	assert_int_equal(s->stats.missed, 3);
	assert_int_equal(s->n, 3);
	assert_int_equal(s->bytes, 24 * MiB);
	assert_float_equal(s->count, 4 + 2 + 4 + 512 * 3, 1e-9);
	/* lookups by address */
	assert_non_null(tiermm__rtree_snap_find(s, BASE + 33 * MiB));
	assert_int_equal(tiermm__rtree_snap_find(s, BASE + 33 * MiB)->start,
			 BASE + 32 * MiB);
	assert_null(tiermm__rtree_snap_find(s, BASE + 16 * MiB));
	assert_null(tiermm__rtree_snap_find(s, BASE + 40 * MiB));
	tiermm__rtree_snapshot_put(s);

	/* halving (the first two ranges split: their counts are lopsided) */
	epoch(t);
	r = by_addr(t, &n);
	assert_float_equal(range_at(r, n, BASE + 32 * MiB)->count, 2, 1e-9);
	free(r);
	tiermm__rtree_free(t);
}

/* ---- classification ---- */

#define REGION (1 * GiB)
#define PER_EPOCH 20000

static void test_static_hot_set(void **state)
{
	struct tiermm__rtree *t = mk(NULL);
	uint64_t rng = 42 + seed, hs = BASE + 256 * MiB, he = hs + 64 * MiB;
	size_t n;
	struct tiermm__range *r;
	int when = -1;

	(void)state;
	assert_int_equal(tiermm__rtree_map(t, BASE, BASE + REGION), 0);
	for (int e = 1; e <= 12; e++) {
		feed(t, &rng, PER_EPOCH, hs, he - hs, 0.9, BASE, REGION);
		epoch(t);
		if (when < 0 && isolated(t, hs, he) &&
		    top_cover(t, hs, he) == he - hs)
			when = e;
	}
	dump(t, "static hot set");
	if (verbose)
		printf("static hot set isolated after %d epoch(s)\n", when);
	/* isolated within three epochs (1 GiB -> 64 MiB: 4 halvings) */
	assert_true(when > 0 && when <= 3);
	assert_true(isolated(t, hs, he));
	assert_int_equal(top_cover(t, hs, he), he - hs);
	/* its edges are resolved to the minimum range */
	r = by_addr(t, &n);
	assert_int_equal(range_at(r, n, hs)->end - hs, 2 * MiB);
	assert_int_equal(he - range_at(r, n, he - 1)->start, 2 * MiB);
	/* the hot set ranks first, clearly denser than everything else */
	free(r);
	r = ranked(t, &n);
	for (size_t i = 0; i < n; i++)
		if (r[i].start >= he || r[i].end <= hs) {
			assert_true(r[i - 1].density > 20 * r[i].density);
			break;
		}
	/* few ranges: hot edges, cold rest, no splits of the interiors */
	assert_true(n <= 24);
	free(r);
	tiermm__rtree_free(t);
}

static void test_moving_hot_set(void **state)
{
	struct tiermm__rtree *t = mk(NULL);
	uint64_t rng = 7 + seed, h1 = BASE + 128 * MiB, h2 = BASE + 640 * MiB;
	uint64_t len = 64 * MiB;
	const struct tiermm__rtree_snap *s;
	size_t before;
	int when = -1;

	(void)state;
	assert_int_equal(tiermm__rtree_map(t, BASE, BASE + REGION), 0);
	for (int e = 0; e < 15; e++) {
		feed(t, &rng, PER_EPOCH, h1, len, 0.9, BASE, REGION);
		epoch(t);
	}
	assert_true(isolated(t, h1, h1 + len));
	before = tiermm__rtree_size(t);
	dump(t, "hot set 1");
	for (int e = 1; e <= 30; e++) {
		feed(t, &rng, PER_EPOCH, h2, len, 0.9, BASE, REGION);
		epoch(t);
		if (when < 0 && isolated(t, h2, h2 + len) &&
		    top_cover(t, h2, h2 + len) == len)
			when = e;
	}
	dump(t, "hot set 2, 30 epochs later");
	if (verbose)
		printf("moved hot set followed after %d epoch(s)\n", when);
	/* followed within a few epochs */
	assert_true(when > 0 && when <= 4);
	assert_int_equal(top_cover(t, h2, h2 + len), len);
	/* the stale splits around the old hot set merged back */
	assert_true(ranges_in(t, h1 - 64 * MiB, h1 + len + 64 * MiB) <= 2);
	assert_true(tiermm__rtree_size(t) <= before + 2);
	s = tiermm__rtree_snapshot_get(t);
	assert_true(s->stats.merges > 0);
	tiermm__rtree_snapshot_put(s);
	tiermm__rtree_free(t);
}

static void test_uniform(void **state)
{
	struct tiermm__rtree *t = mk(NULL);
	uint64_t rng = 99 + seed;

	(void)state;
	/* one area, moderate and very high sample rates */
	assert_int_equal(tiermm__rtree_map(t, BASE, BASE + REGION), 0);
	for (int e = 0; e < 20; e++) {
		feed(t, &rng, e < 10 ? PER_EPOCH : 400000, 0, 0, 0, BASE, REGION);
		epoch(t);
		assert_int_equal(tiermm__rtree_size(t), 1);
	}
	tiermm__rtree_free(t);

	/* adjacent areas of very different sizes at the same density */
	t = mk(NULL);
	assert_int_equal(tiermm__rtree_map(t, BASE, BASE + 8 * MiB), 0);
	assert_int_equal(tiermm__rtree_map(t, BASE + 8 * MiB, BASE + 520 * MiB), 0);
	assert_int_equal(tiermm__rtree_map(t, BASE + 520 * MiB, BASE + 584 * MiB), 0);
	for (int e = 0; e < 20; e++) {
		feed(t, &rng, 100000, 0, 0, 0, BASE, 584 * MiB);
		epoch(t);
		assert_true(tiermm__rtree_size(t) <= 3);
	}
	dump(t, "uniform over three areas");
	tiermm__rtree_free(t);
}

static void test_max_ranges(void **state)
{
	struct tiermm__rtree_params p = { .nr_cpus = 1, .max_ranges = 16 };
	struct tiermm__rtree *t = mk(&p);
	struct tiermm__obs obs[4096];
	uint64_t rng = 5 + seed, spot[40];
	const struct tiermm__rtree_snap *s;
	struct tiermm__range *r;
	size_t n;
	bool full = false;

	(void)state;
	for (int i = 0; i < 40; i++)	/* 2 MiB spots, 24 MiB apart */
		spot[i] = BASE + (uint64_t)i * 24 * MiB + 6 * MiB;
	assert_int_equal(tiermm__rtree_map(t, BASE, BASE + REGION), 0);
	for (int e = 0; e < 30; e++) {
		for (int b = 0; b < 10; b++) {
			for (size_t i = 0; i < 4096; i++) {
				/* spot k gets weight ~ 1/(k+1), plus 10% background */
				uint64_t k = rnd(&rng) % 40;

				if (rnd01(&rng) < 0.1 || rnd01(&rng) > 1.0 / (double)(k + 1))
					obs[i].addr = BASE + rnd(&rng) % REGION;
				else
					obs[i].addr = spot[k] + rnd(&rng) % (2 * MiB);
				obs[i].weight = 1;
				obs[i].flags = 0;
			}
			tiermm__rtree_record(t, obs, 4096);
		}
		epoch(t);
		assert_true(tiermm__rtree_size(t) <= 16);
		full |= tiermm__rtree_size(t) == 16;
	}
	dump(t, "40 spots, 16 ranges");
	assert_true(full);
	/* room came from merges (converged ones, or forced: gain > loss) */
	s = tiermm__rtree_snapshot_get(t);
	assert_true(s->stats.merges + s->stats.forced_merges > 0);
	tiermm__rtree_snapshot_put(s);
	/* the hottest spot is still resolved: the densest range holds it */
	r = ranked(t, &n);
	assert_true(r[0].start <= spot[0] && r[0].end >= spot[0] + 2 * MiB);
	assert_true(r[0].end - r[0].start <= 8 * MiB);
	free(r);

	/* a new, stronger hot set in the full tree is isolated quickly */
	for (int e = 1; e <= 4; e++) {
		for (int b = 0; b < 10; b++) {
			for (size_t i = 0; i < 4096; i++) {
				uint64_t k = rnd(&rng) % 40;

				if (i % 2)
					obs[i].addr = BASE + 1001 * MiB + rnd(&rng) % (8 * MiB);
				else if (rnd01(&rng) < 0.1 ||
					 rnd01(&rng) > 1.0 / (double)(k + 1))
					obs[i].addr = BASE + rnd(&rng) % REGION;
				else
					obs[i].addr = spot[k] + rnd(&rng) % (2 * MiB);
			}
			tiermm__rtree_record(t, obs, 4096);
		}
		epoch(t);
		assert_true(tiermm__rtree_size(t) <= 16);
		if (verbose)
			printf("new hot set in a full tree, epoch %d: top cover %llu MiB\n",
			       e, (unsigned long long)(top_cover(t, BASE + 1000 * MiB,
							     BASE + 1010 * MiB) / MiB));
	}
	dump(t, "a new hot set in the full tree");
	/* 1001..1009 MiB: 2 MiB granularity leaves 1 MiB at each end */
	assert_true(top_cover(t, BASE + 1000 * MiB, BASE + 1010 * MiB) >= 6 * MiB);
	tiermm__rtree_free(t);
}

/* ---- the hot set ---- */

static struct tiermm__range rg(uint64_t start_mib, uint64_t mib, double count,
			       bool cooling, uint64_t hot)
{
	return (struct tiermm__range){
		.start = BASE + start_mib * MiB,
		.end = BASE + (start_mib + mib) * MiB,
		.id = start_mib + 1,
		.count = count,
		.density = count / (double)(mib * MiB),
		.hot = hot,
		.cooling = cooling,
	};
}

static void test_fit_budget(void **state)
{
	/* by density: E 20 (cooling), A 10, B 5, C 1, D 0 (per MiB) */
	struct tiermm__range r[5] = {
		rg(100, 2, 40, true, 0),	/* E */
		rg(0, 4, 40, false, 0),		/* A */
		rg(10, 2, 10, false, 0),	/* B */
		rg(20, 8, 8, false, 0),		/* C */
		rg(40, 2, 0, false, 0),		/* D */
	};
	uint64_t hot[5];

	(void)state;
	/* smaller than the hot set: A whole, then 1 MiB of B */
	assert_int_equal(tiermm__fit_hot_set(r, 5, 5 * MiB, 0, hot), 5 * MiB);
	assert_int_equal(hot[0], 0);		/* cooling: not promoted */
	assert_int_equal(hot[1], 4 * MiB);
	assert_int_equal(hot[2], 1 * MiB);
	assert_int_equal(hot[3], 0);
	/* a range larger than the budget still fills it, page granular */
	assert_int_equal(tiermm__fit_hot_set(r + 3, 1, 5 * MiB + 100, 0, hot),
			 5 * MiB);
	assert_int_equal(hot[0], 5 * MiB);
	/* larger: everything accessed that is not cooling; never D, never E */
	assert_int_equal(tiermm__fit_hot_set(r, 5, 1 * GiB, 0, hot), 14 * MiB);
	assert_int_equal(hot[0], 0);
	assert_int_equal(hot[3], 8 * MiB);
	assert_int_equal(hot[4], 0);
	assert_int_equal(tiermm__fit_hot_set(r, 5, 0, 0, hot), 0);
	/* an incumbent keeps its place even cooling or cold */
	r[0].hot = 2 * MiB;
	r[4].hot = 2 * MiB;
	assert_int_equal(tiermm__fit_hot_set(r, 5, 1 * GiB, 0, hot), 18 * MiB);
	assert_int_equal(hot[0], 2 * MiB);
	assert_int_equal(hot[4], 2 * MiB);
	/* but a cold incumbent goes first when room is short */
	assert_int_equal(tiermm__fit_hot_set(r, 5, 6 * MiB, 0, hot), 6 * MiB);
	assert_int_equal(hot[0], 2 * MiB);
	assert_int_equal(hot[1], 4 * MiB);
	assert_int_equal(hot[4], 0);
}

static void test_hysteresis(void **state)
{
	struct tiermm__range r[2];
	uint64_t hot[2];
	int flips[2] = { 0, 0 };

	(void)state;
	for (int h = 0; h < 2; h++) {
		uint64_t a_hot = 0, b_hot = 0;

		for (int round = 0; round < 20; round++) {
			/* A and B alternate 1.0 / 1.1 */
			double da = round % 2 ? 110 : 100, db = round % 2 ? 100 : 110;
			bool a_first = da >= db;
			bool prev_a = a_hot > 0;

			r[a_first ? 0 : 1] = rg(0, 2, da, false, a_hot);
			r[a_first ? 1 : 0] = rg(10, 2, db, false, b_hot);
			assert_int_equal(tiermm__fit_hot_set(r, 2, 2 * MiB,
							     h ? 1.0 : 0, hot),
					 2 * MiB);
			a_hot = hot[a_first ? 0 : 1];
			b_hot = hot[a_first ? 1 : 0];
			assert_true(!a_hot != !b_hot);
			if (round && prev_a != (a_hot > 0))
				flips[h]++;
		}
	}
	assert_int_equal(flips[0], 0);	/* default 1.2: stays put */
	assert_int_equal(flips[1], 19);	/* no hysteresis: ping-pong */

	/* a clearly denser challenger displaces the incumbent */
	r[0] = rg(10, 2, 150, false, 0);
	r[1] = rg(0, 2, 100, false, 2 * MiB);
	tiermm__fit_hot_set(r, 2, 2 * MiB, 1.2, hot);
	assert_int_equal(hot[0], 2 * MiB);
	assert_int_equal(hot[1], 0);
}

/* The same through the tree: plans recorded and carried across epochs. */
static void test_plan_hysteresis(void **state)
{
	struct tiermm__rtree *t = mk(NULL);
	uint64_t rng = 3 + seed, a = BASE, b = BASE + 100 * MiB;
	const struct tiermm__rtree_snap *s;
	uint64_t hb;
	int flips = 0;
	bool a_was = false;

	(void)state;
	/* two separate 2 MiB areas: too small to split */
	assert_int_equal(tiermm__rtree_map(t, a, a + 2 * MiB), 0);
	assert_int_equal(tiermm__rtree_map(t, b, b + 2 * MiB), 0);
	for (int e = 0; e < 20; e++) {
		const struct tiermm__range *ra;

		feed(t, &rng, e % 2 ? 1000 : 1100, 0, 0, 0, a, 2 * MiB);
		feed(t, &rng, e % 2 ? 1100 : 1000, 0, 0, 0, b, 2 * MiB);
		epoch(t);
		assert_int_equal(tiermm__rtree_plan(t, 2 * MiB, 0, &hb), 0);
		assert_int_equal(hb, 2 * MiB);
		s = tiermm__rtree_snapshot_get(t);
		assert_int_equal(s->hot_bytes, 2 * MiB);
		ra = tiermm__rtree_snap_find(s, a);
		if (e && a_was != (ra->hot > 0))
			flips++;
		a_was = ra->hot > 0;
		tiermm__rtree_snapshot_put(s);
	}
	assert_int_equal(flips, 0);
	tiermm__rtree_free(t);
}

static void test_cooling(void **state)
{
	struct tiermm__rtree *t = mk(NULL);
	uint64_t rng = 11 + seed, hb, hs = BASE + 32 * MiB;
	struct tiermm__range *r;
	size_t n;
	int k = 0;

	(void)state;
	assert_int_equal(tiermm__rtree_map(t, BASE, BASE + 128 * MiB), 0);
	feed(t, &rng, PER_EPOCH, hs, 8 * MiB, 0.9, BASE, 128 * MiB);
	epoch(t);
	/* everything is a fresh half: nothing may be promoted yet */
	r = ranked(t, &n);
	assert_true(n > 1);
	for (size_t i = 0; i < n; i++)
		assert_true(r[i].cooling);
	free(r);
	assert_int_equal(tiermm__rtree_plan(t, 8 * MiB, 0, &hb), 0);
	assert_int_equal(hb, 0);
	/*
	 * Once the hot set's ranges stop splitting (its edges reach the
	 * minimum) and cool down, they are promoted.
	 */
	for (k = 0; k < 6; k++) {
		feed(t, &rng, PER_EPOCH, hs, 8 * MiB, 0.9, BASE, 128 * MiB);
		epoch(t);
	}
	dump(t, "cooled");
	assert_int_equal(tiermm__rtree_plan(t, 8 * MiB, 0, &hb), 0);
	assert_int_equal(hb, 8 * MiB);
	r = by_addr(t, &n);
	assert_int_equal(range_at(r, n, hs)->hot, range_at(r, n, hs)->end - hs);
	assert_int_equal(range_at(r, n, hs + 8 * MiB - 1)->hot,
			 hs + 8 * MiB - range_at(r, n, hs + 8 * MiB - 1)->start);
	free(r);
	tiermm__rtree_free(t);

	/* halves of a hot range inherit the plan and stay hot while cooling */
	t = mk(NULL);
	assert_int_equal(tiermm__rtree_map(t, BASE, BASE + 8 * MiB), 0);
	feed(t, &rng, 100, 0, 0, 0, BASE, 8 * MiB);
	assert_int_equal(tiermm__rtree_plan(t, 8 * MiB, 0, &hb), 0);
	assert_int_equal(hb, 8 * MiB);
	feed(t, &rng, PER_EPOCH, BASE, 2 * MiB, 1.0, 0, 0);
	epoch(t);
	r = by_addr(t, &n);
	assert_true(n >= 2);
	for (size_t i = 0; i < n; i++)
		assert_true(r[i].cooling && r[i].hot == r[i].end - r[i].start);
	free(r);
	assert_int_equal(tiermm__rtree_plan(t, 8 * MiB, 0, &hb), 0);
	assert_int_equal(hb, 8 * MiB);
	tiermm__rtree_free(t);
}

static void test_set_hot(void **state)
{
	struct tiermm__rtree *t = mk(NULL);
	struct tiermm__range *r;
	const struct tiermm__rtree_snap *s;
	uint64_t rng = 1 + seed, hot[3];
	size_t n;

	(void)state;
	assert_int_equal(tiermm__rtree_map(t, BASE, BASE + 2 * MiB), 0);
	assert_int_equal(tiermm__rtree_map(t, BASE + 8 * MiB, BASE + 10 * MiB), 0);
	assert_int_equal(tiermm__rtree_map(t, BASE + 16 * MiB, BASE + 18 * MiB), 0);
	feed(t, &rng, 300, 0, 0, 0, BASE, 2 * MiB);
	feed(t, &rng, 200, 0, 0, 0, BASE + 8 * MiB, 2 * MiB);
	feed(t, &rng, 100, 0, 0, 0, BASE + 16 * MiB, 2 * MiB);
	r = ranked(t, &n);
	assert_int_equal(n, 3);
	assert_int_equal(r[0].start, BASE);
	/* the caller pins the coldest instead of the second */
	assert_int_equal(tiermm__fit_hot_set(r, n, 4 * MiB, 0, hot), 4 * MiB);
	hot[1] = 0;
	hot[2] = 2 * MiB;
	r[0].id += 1000;	/* stale: skipped */
	assert_int_equal(tiermm__rtree_set_hot(t, r, n, hot), 1);
	s = tiermm__rtree_snapshot_get(t);
	assert_int_equal(s->hot_bytes, 2 * MiB);
	assert_int_equal(tiermm__rtree_snap_find(s, BASE + 16 * MiB)->hot, 2 * MiB);
	assert_int_equal(tiermm__rtree_snap_find(s, BASE)->hot, 0);
	tiermm__rtree_snapshot_put(s);
	free(r);
	tiermm__rtree_free(t);
}

/* ---- property test ---- */

#define PT_PAGES 16384		/* a 64 MiB window */
#define PT_PAGE 4096ULL

static void pt_check(struct tiermm__rtree *t, const unsigned char *mapped,
		     uint32_t max_ranges)
{
	size_t n, k = 0;
	struct tiermm__range *r = by_addr(t, &n);
	bool contiguous_pair = false;

	assert_int_equal(tiermm__rtree_check(t), 0);
	for (size_t i = 0; i < n; i++) {
		assert_true(r[i].start < r[i].end);
		assert_true(r[i].start % PT_PAGE == 0 && r[i].end % PT_PAGE == 0);
		assert_true(i == 0 || r[i].start >= r[i - 1].end);
		contiguous_pair |= i && r[i].start == r[i - 1].end;
		assert_true(r[i].count >= 0);
		assert_true(r[i].density >= 0);
		assert_true(r[i].hot <= r[i].end - r[i].start);
	}
	/* covering exactly the mapped pages */
	for (uint64_t p = 0; p < PT_PAGES; p++) {
		uint64_t addr = BASE + p * PT_PAGE;

		while (k < n && r[k].end <= addr)
			k++;
		assert_int_equal(mapped[p],
				 k < n && r[k].start <= addr && addr < r[k].end);
	}
	for (size_t i = 0; i < n; i++)
		assert_true(r[i].start >= BASE &&
			    r[i].end <= BASE + PT_PAGES * PT_PAGE);
	/* over the cap only when no pair could merge */
	assert_true(n <= max_ranges || !contiguous_pair);
	free(r);
}

static void test_property(void **state)
{
	struct tiermm__rtree_params p = { .nr_cpus = 1, .max_ranges = 24,
					  .min_range = 256 * 1024,
					  .split_min = 512 * 1024 };
	static unsigned char mapped[PT_PAGES];
	struct tiermm__obs obs[512];
	struct tiermm__rtree *t = mk(&p);
	uint64_t rng = 2024 + seed, nospc = 0;

	(void)state;
	memset(mapped, 0, sizeof(mapped));
	for (int op = 0; op < 3000; op++) {
		uint64_t a = rnd(&rng) % PT_PAGES;
		uint64_t len = 1 + rnd(&rng) % (rnd(&rng) % 4 ? 512 : 4096);
		uint64_t b = a + len > PT_PAGES ? PT_PAGES : a + len;
		unsigned kind = (unsigned)(rnd(&rng) % 10);
		int err;

		switch (kind) {
		case 0:
		case 1:
			err = tiermm__rtree_map(t, BASE + a * PT_PAGE,
						BASE + b * PT_PAGE);
			assert_true(err == 0 || err == -ENOSPC);
			if (!err)
				memset(mapped + a, 1, b - a);
			nospc += err != 0;
			break;
		case 2:
			assert_int_equal(tiermm__rtree_unmap(t, BASE + a * PT_PAGE,
							     BASE + b * PT_PAGE), 0);
			memset(mapped + a, 0, b - a);
			break;
		case 3:
		case 4:
		case 5:
			/* points, with a hot quarter that moves, and spans */
			for (size_t i = 0; i < 512; i++) {
				uint64_t q = (uint64_t)(op / 300 % 4) * PT_PAGES / 4;
				uint64_t pg = rnd(&rng) % 3 ? q + rnd(&rng) % (PT_PAGES / 4)
							    : rnd(&rng) % PT_PAGES;

				obs[i] = (struct tiermm__obs){
					.addr = BASE + pg * PT_PAGE + rnd(&rng) % PT_PAGE,
					.weight = 1 + (uint32_t)(rnd(&rng) % 3),
				};
				if (i % 64 == 0) {
					obs[i].flags = TIERMM__OBS_RANGE;
					obs[i].weight = (uint32_t)(rnd(&rng) % 2048);
				}
			}
			tiermm__rtree_record(t, obs, 512);
			break;
		case 6:
		case 7:
		case 8:
			assert_int_equal(tiermm__rtree_epoch(t), 0);
			break;
		default:
			assert_int_equal(tiermm__rtree_plan(t, (rnd(&rng) % 32) * MiB,
							    0, NULL), 0);
		}
		pt_check(t, mapped, p.max_ranges);
	}
	if (verbose)
		printf("property: %llu maps refused for room\n",
		       (unsigned long long)nospc);
	tiermm__rtree_free(t);
}

/* ---- readers and the writer ---- */

struct reader_ctx {
	struct tiermm__rtree *t;
	int stop;		/* __atomic */
	uint64_t snaps;
	uint64_t max_epoch;
};

static void check_snapshot(const struct tiermm__rtree_snap *s)
{
	uint64_t bytes = 0, hot = 0;

	for (size_t j = 0; j < s->n; j++) {
		const struct tiermm__range *r = &s->ranges[j];

		if (r->start >= r->end || r->count < 0 || r->hot > r->end - r->start)
			abort();
		if (j && s->ranges[j - 1].density < r->density)
			abort();
		bytes += r->end - r->start;
		hot += r->hot;
	}
	if (bytes != s->bytes || hot != s->hot_bytes)
		abort();
	for (size_t k = 0; k < s->n; k++) {
		const struct tiermm__range *r = &s->ranges[s->by_addr[k]];

		if (k && s->ranges[s->by_addr[k - 1]].end > r->start)
			abort();
		if (tiermm__rtree_snap_find(s, r->start) != r ||
		    tiermm__rtree_snap_find(s, r->end - 1) != r)
			abort();
	}
}

static void *reader(void *arg)
{
	struct reader_ctx *c = arg;
	const struct tiermm__rtree_snap *held = NULL;

	while (!__atomic_load_n(&c->stop, __ATOMIC_ACQUIRE)) {
		const struct tiermm__rtree_snap *s = tiermm__rtree_snapshot_get(c->t);

		check_snapshot(s);
		if (s->epoch < c->max_epoch)
			abort();	/* snapshots never go back in time */
		c->max_epoch = s->epoch;
		c->snaps++;
		/* hold one snapshot across many publications now and then */
		if (c->snaps % 64 == 0) {
			tiermm__rtree_snapshot_put(held);
			held = s;
		} else {
			tiermm__rtree_snapshot_put(s);
		}
	}
	if (held)
		check_snapshot(held);
	tiermm__rtree_snapshot_put(held);
	return NULL;
}

static void test_concurrent_readers(void **state)
{
	struct tiermm__rtree_params p = { .nr_cpus = 1, .max_ranges = 64 };
	struct tiermm__rtree *t = mk(&p);
	struct reader_ctx c[2];
	pthread_t th[2];
	const struct tiermm__rtree_snap *after;
	uint64_t rng = 77 + seed;

	(void)state;
	assert_int_equal(tiermm__rtree_map(t, BASE, BASE + 256 * MiB), 0);
	for (int i = 0; i < 2; i++) {
		c[i] = (struct reader_ctx){ .t = t };
		assert_int_equal(pthread_create(&th[i], NULL, reader, &c[i]), 0);
	}
	for (int e = 0; e < 120; e++) {
		uint64_t hs = BASE + (uint64_t)(e / 20) * 32 * MiB;

		feed(t, &rng, 4000, hs, 16 * MiB, 0.8, BASE, 256 * MiB);
		if (e % 10 == 5) {
			assert_int_equal(tiermm__rtree_unmap(t, BASE + 200 * MiB,
							     BASE + 210 * MiB), 0);
			assert_int_equal(tiermm__rtree_map(t, BASE + 200 * MiB,
							   BASE + 210 * MiB), 0);
		}
		assert_int_equal(tiermm__rtree_epoch(t), 0);
		assert_int_equal(tiermm__rtree_plan(t, 48 * MiB, 0, NULL), 0);
	}
	/* a snapshot outlives the tree */
	after = tiermm__rtree_snapshot_get(t);
	for (int i = 0; i < 2; i++) {
		__atomic_store_n(&c[i].stop, 1, __ATOMIC_RELEASE);
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_true(c[i].snaps > 0);
		if (verbose)
			printf("reader %d: %llu snapshots\n", i,
			       (unsigned long long)c[i].snaps);
	}
	tiermm__rtree_free(t);
	check_snapshot(after);
	assert_int_equal(after->epoch, 120);
	tiermm__rtree_snapshot_put(after);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_params),
		cmocka_unit_test(test_map_unmap),
		cmocka_unit_test(test_map_full),
		cmocka_unit_test(test_record),
		cmocka_unit_test(test_static_hot_set),
		cmocka_unit_test(test_moving_hot_set),
		cmocka_unit_test(test_uniform),
		cmocka_unit_test(test_max_ranges),
		cmocka_unit_test(test_fit_budget),
		cmocka_unit_test(test_hysteresis),
		cmocka_unit_test(test_plan_hysteresis),
		cmocka_unit_test(test_cooling),
		cmocka_unit_test(test_set_hot),
		cmocka_unit_test(test_property),
		cmocka_unit_test(test_concurrent_readers),
	};
	const char *v = getenv("TIERMM_TEST_VERBOSE");

	verbose = v && *v && strcmp(v, "0");
	v = getenv("TIERMM_TEST_SEED");
	seed = v ? strtoull(v, NULL, 0) * 0x9e3779b97f4a7c15ULL : 0;
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * ThreadSanitizer (not part of the CMake build; liburcu itself is not
 * instrumented, rtree.c annotates what TSan cannot see):
 *   gcc -std=gnu11 -D_GNU_SOURCE -fsanitize=thread -O1 -g -Iinclude \
 *       -Ibuild/include -Ilib $(pkg-config --cflags liburcu-bp) \
 *       tests/unit/test_rtree.c lib/rtree.c lib/error.c -o test_rtree_tsan \
 *       $(pkg-config --libs cmocka liburcu-bp) -lm -lpthread
 */
