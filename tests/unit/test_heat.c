// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Page-level heat (heat.c), page mode's counts:
 *  - sync: one block per 2 MiB block holding a managed page, sorted, for
 *    mappings that are not 2 MiB aligned (several in one block, one over
 *    several blocks); valid bits exactly the mapped pages; a changed layout
 *    keeps the counts (and where) of pages that stay, drops those of pages
 *    that left (they come back cold), knows nothing of pages that joined;
 *  - record: bits outside valid pages and blocks are ignored, counts
 *    saturate at 255, PASS marks halve them every HEAT_DECAY_PASSES, in
 *    order with the accesses;
 *  - histogram (valid pages only) and the threshold fitted to a budget:
 *    edges (budget 0, everything fits, exact fit, a level that does not
 *    fit, sums that would wrap) and *above;
 *  - forget_where;
 *  - sparse mappings: blocks only where pages were seen accessed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "internal.h"
#include "engine.h"

#define PG 4096ULL
#define BLK (2ULL << 20)
#define B0 0x7f1234400000ULL	/* 2 MiB aligned */

static bool bit(const uint64_t *w, unsigned int k)
{
	return w[k / 64] & (1ULL << (k % 64));
}

static void set_bit(uint64_t *w, unsigned int k)
{
	w[k / 64] |= 1ULL << (k % 64);
}

/* Pages [lo, hi) of a block valid, no other. */
static void assert_valid_exactly(const struct tiermm__heat_block *b,
				 const unsigned int (*ranges)[2], int n)
{
	for (unsigned int k = 0; k < TIERMM__HEAT_PAGES; k++) {
		bool want = false;

		for (int i = 0; i < n; i++)
			want |= k >= ranges[i][0] && k < ranges[i][1];
		if (bit(b->valid, k) != want)
			fail_msg("block %#llx page %u: valid %d, expected %d",
				 (unsigned long long)b->base, k, bit(b->valid, k), want);
	}
}

static struct tiermm__mapping map(uint64_t start, uint64_t end)
{
	return (struct tiermm__mapping){ .start = start, .end = end };
}

/* A BITS observation: pages [lo, hi) of the block at base, addr anywhere in it. */
static struct tiermm__obs bits_obs(uint64_t base, unsigned int lo, unsigned int hi)
{
	struct tiermm__obs o = { .addr = base + 12345, .flags = TIERMM__OBS_BITS };

	for (unsigned int k = lo; k < hi; k++)
		set_bit(o.bits, k);
	return o;
}

static const struct tiermm__obs pass_obs = { .flags = TIERMM__OBS_PASS };

static void record_one(struct tiermm__heat *h, struct tiermm__obs o)
{
	tiermm__heat_record(h, &o, 1);
}

/* ---- sync ---- */

static void test_sync_layout(void **state)
{
	struct tiermm__heat *h;
	/*
	 * m0: pages 3.. of block 0 to page 5 of block 1 (neither end aligned);
	 * m1: the last page of block 2 and the first of block 3;
	 * m2: pages 10, 11 of block 3 (a second mapping in a block);
	 * m3: blocks 8 to 10, aligned, whole.
	 */
	struct tiermm__mapping m[] = {
		map(B0 + 3 * PG, B0 + BLK + 5 * PG),
		map(B0 + 3 * BLK - PG, B0 + 3 * BLK + PG),
		map(B0 + 3 * BLK + 10 * PG, B0 + 3 * BLK + 12 * PG),
		map(B0 + 8 * BLK, B0 + 11 * BLK),
	};
	static const unsigned int r0[][2] = { { 3, 512 } }, r1[][2] = { { 0, 5 } },
		r2[][2] = { { 511, 512 } }, r3[][2] = { { 0, 1 }, { 10, 12 } },
		rall[][2] = { { 0, 512 } };
	static const uint64_t bases[] = { B0, B0 + BLK, B0 + 2 * BLK, B0 + 3 * BLK,
					  B0 + 8 * BLK, B0 + 9 * BLK, B0 + 10 * BLK };

	(void)state;
	assert_int_equal(tiermm__heat_new(&h), 0);
	assert_null(tiermm__heat_block(h, B0));
	assert_int_equal(tiermm__heat_sync(h, m, 4), 1);
	assert_int_equal(h->n, 7);
	for (size_t i = 0; i < h->n; i++) {
		assert_int_equal(h->b[i].base, bases[i]);
		for (unsigned int k = 0; k < TIERMM__HEAT_PAGES; k++)
			assert_int_equal(h->b[i].heat[k], 0);
		for (int w = 0; w < 8; w++)
			assert_int_equal(h->b[i].known[w] | h->b[i].fast[w], 0);
	}
	assert_valid_exactly(&h->b[0], r0, 1);
	assert_valid_exactly(&h->b[1], r1, 1);
	assert_valid_exactly(&h->b[2], r2, 1);
	assert_valid_exactly(&h->b[3], r3, 2);
	for (int i = 4; i < 7; i++)
		assert_valid_exactly(&h->b[i], rall, 1);
	/* Lookup: any address of a block; none in the gaps and outside. */
	assert_ptr_equal(tiermm__heat_block(h, B0), &h->b[0]);
	assert_ptr_equal(tiermm__heat_block(h, B0 + BLK - 1), &h->b[0]);
	assert_ptr_equal(tiermm__heat_block(h, B0 + 3 * BLK + 100 * PG + 7), &h->b[3]);
	assert_ptr_equal(tiermm__heat_block(h, B0 + 10 * BLK + 511 * PG), &h->b[6]);
	assert_null(tiermm__heat_block(h, B0 - 1));
	assert_null(tiermm__heat_block(h, B0 + 4 * BLK));
	assert_null(tiermm__heat_block(h, B0 + 7 * BLK + BLK - 1));
	assert_null(tiermm__heat_block(h, B0 + 11 * BLK));
	/* No mappings: no blocks. */
	assert_int_equal(tiermm__heat_sync(h, NULL, 0), 1);
	assert_int_equal(h->n, 0);
	assert_null(tiermm__heat_block(h, B0));
	tiermm__heat_free(h);
	tiermm__heat_free(NULL);
}

/* Every valid page k: count k % 200 + 1, where known, on the fast tier if k is odd. */
static void fill(struct tiermm__heat *h)
{
	for (size_t i = 0; i < h->n; i++) {
		struct tiermm__heat_block *b = &h->b[i];

		for (unsigned int k = 0; k < TIERMM__HEAT_PAGES; k++) {
			if (!bit(b->valid, k))
				continue;
			b->heat[k] = (uint8_t)(k % 200 + 1);
			set_bit(b->known, k);
			if (k % 2)
				set_bit(b->fast, k);
		}
	}
}

static void assert_kept(const struct tiermm__heat_block *b, unsigned int k)
{
	if (!bit(b->valid, k) || b->heat[k] != k % 200 + 1 || !bit(b->known, k) ||
	    bit(b->fast, k) != (k % 2 == 1))
		fail_msg("block %#llx page %u: valid %d heat %u known %d fast %d, expected kept",
			 (unsigned long long)b->base, k, bit(b->valid, k), b->heat[k],
			 bit(b->known, k), bit(b->fast, k));
}

static void assert_fresh(const struct tiermm__heat_block *b, unsigned int k, bool valid)
{
	if (bit(b->valid, k) != valid || b->heat[k] || bit(b->known, k) || bit(b->fast, k))
		fail_msg("block %#llx page %u: valid %d heat %u known %d fast %d, expected fresh (valid %d)",
			 (unsigned long long)b->base, k, bit(b->valid, k), b->heat[k],
			 bit(b->known, k), bit(b->fast, k), valid);
}

static void test_sync_changed(void **state)
{
	struct tiermm__heat *h;
	struct tiermm__heat_block *b;
	struct tiermm__mapping m1[] = {
		map(B0 + 3 * PG, B0 + BLK + 5 * PG),		/* blocks 0, 1 */
		map(B0 + 2 * BLK, B0 + 2 * BLK + 64 * PG),	/* block 2 */
		map(B0 + 4 * BLK + 100 * PG, B0 + 4 * BLK + 200 * PG),	/* block 4 */
		map(B0 + 6 * BLK, B0 + 7 * BLK),		/* block 6 */
	};
	/*
	 * Block 0 loses pages 3..6 (the mapping's start moved up), block 1
	 * stays as it was, block 2 is gone, block 3 is new, block 4's mapping
	 * moved (pages 150..199 stay, 100..149 left, 200..249 joined), block
	 * 6 unchanged.
	 */
	struct tiermm__mapping m2[] = {
		map(B0 + 7 * PG, B0 + BLK + 5 * PG),
		map(B0 + 3 * BLK + 8 * PG, B0 + 3 * BLK + 16 * PG),
		map(B0 + 4 * BLK + 150 * PG, B0 + 4 * BLK + 250 * PG),
		map(B0 + 6 * BLK, B0 + 7 * BLK),
	};
	/* Then block 0 gets pages 3..6 back, block 2 comes back, block 4 as m1. */
	struct tiermm__mapping m3[] = {
		map(B0 + 3 * PG, B0 + BLK + 5 * PG),
		map(B0 + 2 * BLK, B0 + 2 * BLK + 64 * PG),
		map(B0 + 4 * BLK + 100 * PG, B0 + 4 * BLK + 200 * PG),
	};

	(void)state;
	assert_int_equal(tiermm__heat_new(&h), 0);
	assert_int_equal(tiermm__heat_sync(h, m1, 4), 1);
	assert_int_equal(h->n, 5);
	fill(h);
	/* The same layout again changes nothing. */
	assert_int_equal(tiermm__heat_sync(h, m1, 4), 0);	/* 0: unchanged */
	assert_int_equal(h->n, 5);
	for (size_t i = 0; i < h->n; i++)
		for (unsigned int k = 0; k < TIERMM__HEAT_PAGES; k++)
			if (bit(h->b[i].valid, k))
				assert_kept(&h->b[i], k);

	assert_int_equal(tiermm__heat_sync(h, m2, 4), 1);
	assert_int_equal(h->n, 5);
	b = tiermm__heat_block(h, B0);
	assert_non_null(b);
	for (unsigned int k = 0; k < 7; k++)
		assert_fresh(b, k, false);
	for (unsigned int k = 7; k < 512; k++)
		assert_kept(b, k);
	b = tiermm__heat_block(h, B0 + BLK);
	assert_non_null(b);
	for (unsigned int k = 0; k < 5; k++)
		assert_kept(b, k);
	for (unsigned int k = 5; k < 512; k++)
		assert_fresh(b, k, false);
	assert_null(tiermm__heat_block(h, B0 + 2 * BLK));
	b = tiermm__heat_block(h, B0 + 3 * BLK);
	assert_non_null(b);
	for (unsigned int k = 0; k < 512; k++)
		assert_fresh(b, k, k >= 8 && k < 16);
	b = tiermm__heat_block(h, B0 + 4 * BLK);
	assert_non_null(b);
	for (unsigned int k = 0; k < 512; k++) {
		if (k >= 150 && k < 200)
			assert_kept(b, k);
		else
			assert_fresh(b, k, k >= 200 && k < 250);
	}
	b = tiermm__heat_block(h, B0 + 6 * BLK);
	assert_non_null(b);
	for (unsigned int k = 0; k < 512; k++)
		assert_kept(b, k);
	/* Recording over the joined pages counts them from 0. */
	record_one(h, bits_obs(B0 + 4 * BLK, 190, 210));
	b = tiermm__heat_block(h, B0 + 4 * BLK);
	for (unsigned int k = 190; k < 210; k++)
		assert_int_equal(b->heat[k], k < 200 ? k % 200 + 1 + TIERMM__HEAT_STEP :
					       TIERMM__HEAT_STEP);

	/* Pages and blocks that left come back cold and unknown. */
	assert_int_equal(tiermm__heat_sync(h, m3, 3), 1);
	assert_int_equal(h->n, 4);
	b = tiermm__heat_block(h, B0);
	for (unsigned int k = 0; k < 7; k++)
		assert_fresh(b, k, k >= 3);
	for (unsigned int k = 7; k < 512; k++)
		assert_kept(b, k);
	b = tiermm__heat_block(h, B0 + 2 * BLK);
	assert_non_null(b);
	for (unsigned int k = 0; k < 512; k++)
		assert_fresh(b, k, k < 64);
	b = tiermm__heat_block(h, B0 + 4 * BLK);
	for (unsigned int k = 0; k < 512; k++) {
		if (k >= 150 && k < 190)
			assert_kept(b, k);
		else if (k >= 190 && k < 200)
			assert_int_equal(b->heat[k], k % 200 + 1 + TIERMM__HEAT_STEP);
		else
			assert_fresh(b, k, k >= 100 && k < 200);
	}
	assert_null(tiermm__heat_block(h, B0 + 3 * BLK));
	assert_null(tiermm__heat_block(h, B0 + 6 * BLK));
	tiermm__heat_free(h);
}

/*
 * Sparse mappings (a reservation with little resident: a JVM heap, a
 * sanitizer's shadow): blocks only where pages were seen accessed, added
 * by record in address order, with their valid bits, counts and the PASS
 * marks' decay in order; a block shared with a dense neighbour is whole;
 * a terabyte reserved costs nothing; once a residency read finds the
 * mapping filled it is dense (every block), counts kept.
 */
static void test_sparse(void **state)
{
	struct tiermm__heat *h;
	const uint64_t GIB = 1ULL << 30, S = B0 + 3 * BLK / 2;	/* mid-block 1 */
	/* dense: blocks 0 and 1 (to the middle of 1); sparse: 1 GiB from there,
	 * nothing resident; then a terabyte reserved, 4 KiB resident */
	struct tiermm__mapping m[] = {
		map(B0, S),
		map(S, S + GIB),
		map(B0 + 4 * GIB, B0 + 4 * GIB + (1ULL << 40)),
	};
	struct tiermm__obs o[5];
	struct tiermm__heat_block *b;
	static const unsigned int rall[][2] = { { 0, 512 } };

	(void)state;
	m[2].slow = PG;
	assert_int_equal(tiermm__heat_new(&h), 0);
	assert_int_equal(tiermm__heat_sync(h, m, 3), 1);
	assert_int_equal(h->n, 2);	/* the dense mapping's */
	assert_true(h->lay[1].sparse && h->lay[2].sparse && !h->lay[0].sparse);
	/* block 1 is shared: the sparse mapping's half is valid too */
	assert_valid_exactly(&h->b[1], rall, 1);
	/* seen accessed: a sparse block, then one of the terabyte, a pass,
	 * a block below the first, and the shared block */
	o[0] = bits_obs(B0 + 100 * BLK, 0, 10);
	o[1] = bits_obs(B0 + 4 * GIB + 700 * GIB, 5, 6);
	o[2] = pass_obs;
	o[3] = bits_obs(B0 + 50 * BLK, 511, 512);
	o[4] = bits_obs(B0 + BLK, 256, 258);
	tiermm__heat_record(h, o, 5);
	assert_int_equal(h->n, 5);
	for (size_t i = 1; i < h->n; i++)
		assert_true(h->b[i - 1].base < h->b[i].base);
	b = tiermm__heat_block(h, B0 + 100 * BLK);
	assert_non_null(b);
	assert_valid_exactly(b, rall, 1);
	for (unsigned int k = 0; k < 12; k++)
		assert_int_equal(b->heat[k], k < 10 ? TIERMM__HEAT_STEP : 0);
	assert_int_equal(tiermm__heat_block(h, B0 + 4 * GIB + 700 * GIB)->heat[5],
			 TIERMM__HEAT_STEP);
	assert_int_equal(tiermm__heat_block(h, B0 + 50 * BLK)->heat[511], TIERMM__HEAT_STEP);
	assert_int_equal(tiermm__heat_block(h, B0 + BLK)->heat[257], TIERMM__HEAT_STEP);
	assert_null(tiermm__heat_block(h, B0 + 99 * BLK));
	/* outside every mapping: no block */
	record_one(h, bits_obs(B0 + 3 * GIB, 0, 1));
	assert_int_equal(h->n, 5);
	/* present (a clearing read): a block, no counts, here or elsewhere */
	o[0] = bits_obs(B0 + 300 * BLK, 0, 512);
	o[0].flags |= TIERMM__OBS_PRESENT;
	o[1] = bits_obs(B0 + 100 * BLK, 0, 512);
	o[1].flags |= TIERMM__OBS_PRESENT;
	tiermm__heat_record(h, o, 2);
	assert_int_equal(h->n, 6);
	b = tiermm__heat_block(h, B0 + 300 * BLK);
	assert_non_null(b);
	assert_valid_exactly(b, rall, 1);
	for (unsigned int k = 0; k < TIERMM__HEAT_PAGES; k++)
		assert_int_equal(b->heat[k], 0);
	b = tiermm__heat_block(h, B0 + 100 * BLK);
	for (unsigned int k = 0; k < 12; k++)
		assert_int_equal(b->heat[k], k < 10 ? TIERMM__HEAT_STEP : 0);
	/* the same layout: nothing rebuilt, the blocks seen stay */
	assert_int_equal(tiermm__heat_sync(h, m, 3), 0);
	assert_int_equal(h->n, 6);
	/* decay in order: 16 passes, then an access, in one batch */
	{
		struct tiermm__obs d[TIERMM__HEAT_DECAY_PASSES + 1];

		for (int i = 0; i < TIERMM__HEAT_DECAY_PASSES - 1; i++)
			d[i] = pass_obs;	/* (one pass above) */
		d[TIERMM__HEAT_DECAY_PASSES - 1] = bits_obs(B0 + 200 * BLK, 0, 1);
		tiermm__heat_record(h, d, TIERMM__HEAT_DECAY_PASSES);
	}
	assert_int_equal(tiermm__heat_block(h, B0 + 100 * BLK)->heat[0], TIERMM__HEAT_STEP / 2);
	assert_int_equal(tiermm__heat_block(h, B0 + 200 * BLK)->heat[0], TIERMM__HEAT_STEP);
	assert_int_equal(h->n, 7);
	/* filled: the 1 GiB mapping is dense now, every block, counts kept */
	m[1].fast = GIB / 2;
	assert_int_equal(tiermm__heat_sync(h, m, 3), 1);
	assert_false(h->lay[1].sparse);
	assert_int_equal(h->n, 1 + GIB / BLK + 1 + 1);
	assert_int_equal(tiermm__heat_block(h, B0 + 100 * BLK)->heat[0], TIERMM__HEAT_STEP / 2);
	assert_int_equal(tiermm__heat_block(h, B0 + 4 * GIB + 700 * GIB)->heat[5],
			 TIERMM__HEAT_STEP / 2);
	b = tiermm__heat_block(h, S + GIB);	/* the last, half in the mapping */
	assert_non_null(b);
	{
		static const unsigned int rfirst[][2] = { { 0, 256 } };

		assert_valid_exactly(b, rfirst, 1);
	}
	/* dense stays dense down to 1/8 resident (no rebuilds near 1/4),
	 * then turns sparse: the blocks it has stay */
	m[1].fast = GIB / 6;
	assert_int_equal(tiermm__heat_sync(h, m, 3), 0);
	m[1].fast = GIB / 10;
	assert_int_equal(tiermm__heat_sync(h, m, 3), 1);
	assert_true(h->lay[1].sparse);
	assert_int_equal(h->n, 1 + GIB / BLK + 1 + 1);
	m[1].fast = GIB / 6;
	assert_int_equal(tiermm__heat_sync(h, m, 3), 0);	/* sparse: 1/4 to be dense */
	assert_int_equal(h->dropped, 0);
	tiermm__heat_free(h);
}

/* ---- record ---- */

static void test_record_valid_only(void **state)
{
	struct tiermm__heat *h;
	struct tiermm__heat_block *b0, *b1;
	struct tiermm__mapping m[] = { map(B0 + 3 * PG, B0 + BLK + 5 * PG) };
	struct tiermm__obs o[4];

	(void)state;
	assert_int_equal(tiermm__heat_new(&h), 0);
	assert_int_equal(tiermm__heat_sync(h, m, 1), 1);
	b0 = &h->b[0];
	b1 = &h->b[1];
	/* Not BITS: ignored, and not "fed". */
	o[0] = bits_obs(B0, 0, 512);
	o[0].flags = TIERMM__OBS_RANGE;
	o[0].weight = 512;
	o[1] = o[0];
	o[1].flags = 0;
	o[1].weight = 1;
	tiermm__heat_record(h, o, 2);
	assert_false(h->fed);
	for (unsigned int k = 0; k < 512; k++)
		assert_int_equal(b0->heat[k], 0);
	/* All bits set in both blocks, and one outside every block. */
	o[0] = bits_obs(B0, 0, 512);
	o[1] = bits_obs(B0 + BLK, 0, 512);
	o[1].addr = B0 + BLK;	/* the block's base itself */
	o[2] = bits_obs(B0 + 2 * BLK, 0, 512);
	o[3] = bits_obs(B0 - BLK, 0, 512);
	tiermm__heat_record(h, o, 4);
	assert_true(h->fed);
	assert_int_equal(h->n, 2);
	for (unsigned int k = 0; k < 512; k++) {
		assert_int_equal(b0->heat[k], k >= 3 ? TIERMM__HEAT_STEP : 0);
		assert_int_equal(b1->heat[k], k < 5 ? TIERMM__HEAT_STEP : 0);
	}
	/* Bits at the ends of the words. */
	o[0] = (struct tiermm__obs){ .addr = B0 + BLK - 1, .flags = TIERMM__OBS_BITS };
	o[0].bits[0] = 1ULL << 63 | 1ULL << 4;
	o[0].bits[7] = 1ULL << 63;
	tiermm__heat_record(h, o, 1);
	for (unsigned int k = 0; k < 512; k++) {
		unsigned int want = k < 3 ? 0 : TIERMM__HEAT_STEP;

		if (k == 4 || k == 63 || k == 511)
			want += TIERMM__HEAT_STEP;
		assert_int_equal(b0->heat[k], want);
	}
	/* "Fed" by a BITS observation outside every block too. */
	tiermm__heat_free(h);
	assert_int_equal(tiermm__heat_new(&h), 0);
	assert_int_equal(tiermm__heat_sync(h, m, 1), 1);
	record_one(h, bits_obs(B0 + 40 * BLK, 0, 0));
	assert_true(h->fed);
	tiermm__heat_free(h);
}

static void test_record_saturate_decay(void **state)
{
	struct tiermm__heat *h;
	struct tiermm__heat_block *b;
	struct tiermm__mapping m[] = { map(B0, B0 + BLK) };
	struct tiermm__obs o[TIERMM__HEAT_DECAY_PASSES + 2];
	const int full = 256 / TIERMM__HEAT_STEP, n = full + 8;

	(void)state;
	assert_int_equal(tiermm__heat_new(&h), 0);
	assert_int_equal(tiermm__heat_sync(h, m, 1), 1);
	b = &h->b[0];
	/* Page 0 each time, page 1 every other time (odd ones). */
	for (int i = 1; i <= n; i++) {
		record_one(h, bits_obs(B0, 0, i % 2 ? 2 : 1));
		if (i == full - 1) {
			assert_int_equal(b->heat[0], 256 - TIERMM__HEAT_STEP);
			assert_int_equal(b->heat[1], full / 2 * TIERMM__HEAT_STEP);
		}
		if (i == full)
			assert_int_equal(b->heat[0], 255);
	}
	assert_int_equal(b->heat[0], 255);
	assert_int_equal(b->heat[1], (n + 1) / 2 * TIERMM__HEAT_STEP);
	assert_int_equal(b->heat[2], 0);
	/* No decay before the DECAY_PASSES-th pass mark, then halved. */
	for (int i = 1; i < TIERMM__HEAT_DECAY_PASSES; i++)
		tiermm__heat_record(h, &pass_obs, 1);
	assert_int_equal(h->passes, TIERMM__HEAT_DECAY_PASSES - 1);
	assert_int_equal(b->heat[0], 255);
	tiermm__heat_record(h, &pass_obs, 1);
	assert_int_equal(h->passes, TIERMM__HEAT_DECAY_PASSES);
	assert_int_equal(b->heat[0], 127);
	assert_int_equal(b->heat[1], (n + 1) / 2 * TIERMM__HEAT_STEP / 2);
	/* In order within one call: access, DECAY_PASSES marks, access. */
	o[0] = bits_obs(B0, 2, 3);
	for (int i = 1; i <= TIERMM__HEAT_DECAY_PASSES; i++)
		o[i] = pass_obs;
	o[TIERMM__HEAT_DECAY_PASSES + 1] = bits_obs(B0, 2, 3);
	tiermm__heat_record(h, o, TIERMM__HEAT_DECAY_PASSES + 2);
	assert_int_equal(b->heat[2], TIERMM__HEAT_STEP / 2 + TIERMM__HEAT_STEP);
	assert_int_equal(b->heat[0], 63);
	assert_int_equal(h->passes, 2 * TIERMM__HEAT_DECAY_PASSES);
	/* Marks count across calls; 3 more halvings take 63 to 7. */
	for (int i = 0; i < 3 * TIERMM__HEAT_DECAY_PASSES; i++)
		tiermm__heat_record(h, &pass_obs, 1);
	assert_int_equal(b->heat[0], 7);
	/*
	 * A page accessed in every pass settles at 4 steps less one right
	 * after a decay (and just under 8 right before one).
	 */
	memset(b->heat, 0, sizeof(b->heat));
	for (int i = 0; i < 10 * TIERMM__HEAT_DECAY_PASSES; i++) {
		record_one(h, bits_obs(B0, 5, 6));
		tiermm__heat_record(h, &pass_obs, 1);
	}
	assert_int_equal(b->heat[5], TIERMM__HEAT_DECAY_PASSES * TIERMM__HEAT_STEP - 1);
	tiermm__heat_decay(h);
	assert_int_equal(b->heat[5], (TIERMM__HEAT_DECAY_PASSES * TIERMM__HEAT_STEP - 1) / 2);
	tiermm__heat_free(h);
}

/* ---- histogram and threshold ---- */

static void test_histogram(void **state)
{
	struct tiermm__heat *h;
	struct tiermm__mapping m[] = {
		map(B0 + 10 * PG, B0 + BLK + 20 * PG),	/* 502 + 20 pages */
		map(B0 + 5 * BLK, B0 + 5 * BLK + PG),	/* 1 */
	};
	uint64_t hist[256], sum = 0;

	(void)state;
	assert_int_equal(tiermm__heat_new(&h), 0);
	tiermm__heat_histogram(h, hist);
	for (int v = 0; v < 256; v++)
		assert_int_equal(hist[v], 0);
	assert_int_equal(tiermm__heat_sync(h, m, 2), 1);
	record_one(h, bits_obs(B0, 0, 100));		/* 90 valid */
	record_one(h, bits_obs(B0, 0, 50));		/* 40 valid, twice */
	record_one(h, bits_obs(B0 + BLK, 0, 512));	/* 20 valid */
	record_one(h, bits_obs(B0 + 5 * BLK, 0, 1));	/* 1 */
	/* A count in an invalid page (as a stale byte would be) is not seen. */
	h->b[0].heat[0] = 200;
	h->b[1].heat[511] = 201;
	tiermm__heat_histogram(h, hist);
	assert_int_equal(hist[2 * TIERMM__HEAT_STEP], 40);
	assert_int_equal(hist[TIERMM__HEAT_STEP], 50 + 20 + 1);
	assert_int_equal(hist[0], 502 + 20 + 1 - 40 - 71);
	assert_int_equal(hist[200], 0);
	assert_int_equal(hist[201], 0);
	for (int v = 0; v < 256; v++)
		sum += hist[v];
	assert_int_equal(sum, 523);
	tiermm__heat_free(h);
}

static void test_threshold(void **state)
{
	uint64_t hist[256] = { 0 }, above = 77;

	(void)state;
	/* Nothing counted: everything fits. */
	assert_int_equal(tiermm__heat_threshold(hist, 0, &above), 1);
	assert_int_equal(above, 0);
	/* Budget 0 with the hottest level occupied: nothing fits. */
	hist[255] = 1;
	assert_int_equal(tiermm__heat_threshold(hist, 0, &above), 256);
	assert_int_equal(above, 0);
	/* ... and with the hottest at 200: no page counts 201 or more. */
	hist[255] = 0;
	hist[200] = 3;
	above = 77;
	assert_int_equal(tiermm__heat_threshold(hist, 0, &above), 201);
	assert_int_equal(above, 0);
	/* Cold pages (count 0) never count, whatever their number. */
	memset(hist, 0, sizeof(hist));
	hist[0] = 1000000;
	hist[10] = 5;
	hist[40] = 7;
	assert_int_equal(tiermm__heat_threshold(hist, 12, &above), 1);
	assert_int_equal(above, 12);
	assert_int_equal(tiermm__heat_threshold(hist, 1000, &above), 1);
	assert_int_equal(above, 12);
	/* Level 10 does not fit: the threshold is just above it. */
	assert_int_equal(tiermm__heat_threshold(hist, 11, &above), 11);
	assert_int_equal(above, 7);
	assert_int_equal(tiermm__heat_threshold(hist, 7, &above), 11);
	assert_int_equal(above, 7);
	/* Not even the hottest level fits. */
	assert_int_equal(tiermm__heat_threshold(hist, 6, &above), 41);
	assert_int_equal(above, 0);
	/* Three levels; exact fits and one short. */
	memset(hist, 0, sizeof(hist));
	hist[50] = 10;
	hist[30] = 20;
	hist[10] = 100;
	hist[1] = 1;
	assert_int_equal(tiermm__heat_threshold(hist, 30, &above), 11);
	assert_int_equal(above, 30);
	assert_int_equal(tiermm__heat_threshold(hist, 29, &above), 31);
	assert_int_equal(above, 10);
	assert_int_equal(tiermm__heat_threshold(hist, 130, &above), 2);
	assert_int_equal(above, 130);
	assert_int_equal(tiermm__heat_threshold(hist, 131, &above), 1);
	assert_int_equal(above, 131);
	assert_int_equal(tiermm__heat_threshold(hist, 131, NULL), 1);
	/* A level whose pages would wrap the running sum does not fit. */
	memset(hist, 0, sizeof(hist));
	hist[255] = 1;
	hist[254] = UINT64_MAX;
	hist[100] = 2;
	assert_int_equal(tiermm__heat_threshold(hist, UINT64_MAX - 1, &above), 255);
	assert_int_equal(above, 1);
	hist[255] = 1;
	hist[254] = UINT64_MAX - 1;
	assert_int_equal(tiermm__heat_threshold(hist, UINT64_MAX, &above), 101);
	assert_int_equal(above, UINT64_MAX);
}

/* ---- where ---- */

static void test_forget_where(void **state)
{
	struct tiermm__heat *h;
	struct tiermm__mapping m[] = { map(B0 + PG, B0 + 3 * BLK) };

	(void)state;
	assert_int_equal(tiermm__heat_new(&h), 0);
	tiermm__heat_forget_where(h);	/* no blocks yet */
	assert_int_equal(tiermm__heat_sync(h, m, 1), 1);
	fill(h);
	tiermm__heat_forget_where(h);
	assert_int_equal(h->n, 3);
	for (size_t i = 0; i < h->n; i++) {
		for (int w = 0; w < 8; w++) {
			assert_int_equal(h->b[i].known[w], 0);
			assert_int_equal(h->b[i].fast[w], 0);
			assert_int_equal(h->b[i].valid[w], i == 0 && w == 0 ? ~1ULL : ~0ULL);
		}
		for (unsigned int k = 0; k < 512; k++)
			assert_int_equal(h->b[i].heat[k], i == 0 && k == 0 ? 0 : k % 200 + 1);
	}
	tiermm__heat_free(h);
}

/* The observed fast-tier share: accessed pages of known tier, per pass. */
static void test_fast_share(void **state)
{
	struct tiermm__heat *h;
	struct tiermm__mapping m[] = { map(B0, B0 + 2 * BLK) };

	(void)state;
	assert_int_equal(tiermm__heat_new(&h), 0);
	assert_true(isnan(h->fast_share));
	assert_int_equal(tiermm__heat_sync(h, m, 1), 1);
	/* Nothing known: a pass leaves the share undefined. */
	record_one(h, bits_obs(B0, 0, 512));
	record_one(h, pass_obs);
	assert_true(isnan(h->fast_share));
	/* Block 0: pages 0-99 known, 0-29 fast; block 1: 0-9 known and fast. */
	for (unsigned int k = 0; k < 100; k++) {
		set_bit(h->b[0].known, k);
		if (k < 30)
			set_bit(h->b[0].fast, k);
	}
	for (unsigned int k = 0; k < 10; k++) {
		set_bit(h->b[1].known, k);
		set_bit(h->b[1].fast, k);
	}
	/* Accessed: block 0 pages 20-59 (10 fast of 40 known), block 1 0-511. */
	record_one(h, bits_obs(B0, 20, 60));
	assert_true(isnan(h->fast_share));	/* the pass is not over */
	record_one(h, bits_obs(B0 + BLK, 0, 512));
	record_one(h, pass_obs);
	assert_true(fabs(h->fast_share - 20.0 / 50.0) < 1e-12);
	/* A pass that saw nothing of known tier keeps the last share. */
	record_one(h, bits_obs(B0, 200, 300));
	record_one(h, pass_obs);
	assert_true(fabs(h->fast_share - 0.4) < 1e-12);
	/* Counts restart every pass. */
	record_one(h, bits_obs(B0, 0, 10));
	record_one(h, pass_obs);
	assert_true(fabs(h->fast_share - 1.0) < 1e-12);
	tiermm__heat_free(h);
}

/*
 * The plan's share of the pages a pass sees (plan_share: the least over
 * the passes since it was reset) does not drop after a decay: the
 * threshold halves with the counts. Pages 0-99 count 120, 100-299 count
 * 60, the plan's threshold is 90; every pass sees all 300 pages, and the
 * first one ends a decay period.
 */
static void test_plan_share_decay(void **state)
{
	struct tiermm__heat *h;
	struct tiermm__mapping m[] = { map(B0, B0 + BLK) };

	(void)state;
	assert_int_equal(tiermm__heat_new(&h), 0);
	assert_int_equal(tiermm__heat_sync(h, m, 1), 1);
	memset(h->b[0].heat, 120, 100);
	memset(h->b[0].heat + 100, 60, 200);
	h->plan_t = 90;
	h->passes = TIERMM__HEAT_DECAY_PASSES - 1;
	for (int i = 0; i < 3; i++) {
		h->plan_share = NAN;
		record_one(h, bits_obs(B0, 0, 300));
		record_one(h, pass_obs);
		if (!i)
			assert_int_equal(h->b[0].heat[0], (120 + TIERMM__HEAT_STEP) / 2);
		assert_true(fabs(h->plan_share - 100.0 / 300.0) < 1e-9);
	}
	assert_int_equal(h->plan_t, 45);
	tiermm__heat_free(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sync_layout),
		cmocka_unit_test(test_sync_changed),
		cmocka_unit_test(test_sparse),
		cmocka_unit_test(test_record_valid_only),
		cmocka_unit_test(test_record_saturate_decay),
		cmocka_unit_test(test_histogram),
		cmocka_unit_test(test_threshold),
		cmocka_unit_test(test_forget_where),
		cmocka_unit_test(test_fast_share),
		cmocka_unit_test(test_plan_share_decay),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
