// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Page-level heat (engine.h, "page mode"): one byte of decayed access count
 * per 4 KiB page of the managed mappings, and what the engine knows of where
 * each page is, for backends that report every page (the accessed-bit
 * scanner's TIERMM__OBS_BITS observations).
 *
 * Why, next to the range tree: ranges rank areas by access density, which
 * is what sparse samples (perf) and DAMON's regions can support, and what
 * finds hot areas in programs with spatial locality. When popularity is
 * scattered over the pages (hash tables, key-value stores with scrambled
 * keys) every 2 MiB range has the same density and no range is hotter than
 * another, while a scanner pass says exactly which pages were touched. With
 * per-page counts the hot set is fitted to the budget page by page, as
 * Memtis fits its hotness threshold to the fast tier's capacity.
 *
 * Counts: each pass that found a page accessed adds HEAT_STEP (saturating
 * at 255); every HEAT_DECAY_PASSES passes (the scanner's OBS_PASS marks)
 * halve them. Decay follows passes, not time: the scanner's pace depends on
 * its CPU share and the process's size, and a count must mean "accessed in
 * so many of the last passes" whatever the pace. A page accessed in every
 * pass counts 64 to 128 (step 4, halved every 16 passes: 1.6 s at the
 * scanner's fastest); one accessed in two of the last 16 passes, 8 (the
 * engine's minimum for a promotion). The slow decay is the hysteresis's
 * other half: counts of pages with the same popularity stay close, so the
 * ranking does not churn.
 * Memory: 576 bytes a 2 MiB block (a byte a page plus four bitmaps), 0.03%
 * of the managed memory.
 *
 * Where a page is: two bitmaps a block, known and fast. The engine sets
 * them from move_pages(2) status queries and from the status of its own
 * moves; they are forgotten (tiermm__heat_forget_where(), every REVERIFY
 * epochs) and for pages whose mappings changed, so pages faulted in later or moved by
 * someone else are asked about again.
 *
 * Blocks: sorted by address, one per 2 MiB block that holds a managed page
 * (valid bits: the pages inside managed mappings). tiermm__heat_sync()
 * keeps them in line with the mappings at every epoch (a changed layout
 * rebuilds the array, keeping the counts of blocks that stay).
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "engine.h"

#define HEAT_PAGE 4096ULL
#define HEAT_BLOCK (2ULL << 20)

static uint64_t blk_of(uint64_t a)
{
	return a & ~(HEAT_BLOCK - 1);
}

static void set_bits(uint64_t *w, uint64_t lo, uint64_t hi)
{
	for (uint64_t i = lo; i < hi; i++)
		w[i / 64] |= 1ULL << (i % 64);
}

int tiermm__heat_new(struct tiermm__heat **out)
{
	*out = calloc(1, sizeof(**out));
	if (!*out)
		return -ENOMEM;
	(*out)->fast_share = NAN;
	return 0;
}

void tiermm__heat_free(struct tiermm__heat *h)
{
	if (!h)
		return;
	free(h->b);
	free(h);
}

/* Index of the block at base, or -1. */
static long find_block(const struct tiermm__heat *h, uint64_t base)
{
	size_t lo = 0, hi = h->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (h->b[mid].base < base)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < h->n && h->b[lo].base == base ? (long)lo : -1;
}

struct tiermm__heat_block *tiermm__heat_block(struct tiermm__heat *h, uint64_t addr)
{
	long i = find_block(h, blk_of(addr));

	return i < 0 ? NULL : &h->b[i];
}

int tiermm__heat_sync(struct tiermm__heat *h, const struct tiermm__mapping *m,
		      size_t n)
{
	struct tiermm__heat_block *nb = NULL;
	size_t nn = 0, cap = 0, old = 0;

	for (size_t i = 0; i < n; i++) {
		for (uint64_t a = blk_of(m[i].start); a < m[i].end; a += HEAT_BLOCK) {
			uint64_t lo = a > m[i].start ? a : m[i].start;
			uint64_t hi = a + HEAT_BLOCK < m[i].end ? a + HEAT_BLOCK : m[i].end;
			struct tiermm__heat_block *b;

			if (!nn || nb[nn - 1].base != a) {
				if (nn == cap) {
					size_t c = cap ? cap * 2 : 64;
					struct tiermm__heat_block *t =
						realloc(nb, c * sizeof(*nb));

					if (!t) {
						free(nb);
						return -ENOMEM;
					}
					nb = t;
					cap = c;
				}
				b = &nb[nn++];
				memset(b, 0, sizeof(*b));
				b->base = a;
				/* the counts (and the where) of a block that stays */
				while (old < h->n && h->b[old].base < a)
					old++;
				if (old < h->n && h->b[old].base == a) {
					memcpy(b->heat, h->b[old].heat, sizeof(b->heat));
					memcpy(b->known, h->b[old].known, sizeof(b->known));
					memcpy(b->fast, h->b[old].fast, sizeof(b->fast));
					memcpy(b->old_valid, h->b[old].valid, sizeof(b->valid));
				}
			}
			b = &nb[nn - 1];
			set_bits(b->valid, (lo - a) / HEAT_PAGE, (hi - a) / HEAT_PAGE);
		}
	}
	/* Pages that left the mappings lose their counts and their where. */
	for (size_t i = 0; i < nn; i++) {
		struct tiermm__heat_block *b = &nb[i];
		bool changed = false;

		for (int w = 0; w < 8; w++) {
			if (b->valid[w] != b->old_valid[w])
				changed = true;
			b->known[w] &= b->valid[w] & b->old_valid[w];
			b->fast[w] &= b->known[w];
		}
		if (changed)
			for (int k = 0; k < TIERMM__HEAT_PAGES; k++)
				if (!(b->valid[k / 64] & (1ULL << (k % 64))))
					b->heat[k] = 0;
		memcpy(b->old_valid, b->valid, sizeof(b->valid));
	}
	free(h->b);
	h->b = nb;
	h->n = nn;
	return 0;
}

void tiermm__heat_record(struct tiermm__heat *h, const struct tiermm__obs *obs,
			 size_t n)
{
	for (size_t k = 0; k < n; k++) {
		struct tiermm__heat_block *b;

		if (obs[k].flags & TIERMM__OBS_PASS) {
			if (h->pass_known)
				h->fast_share = (double)h->pass_fast / (double)h->pass_known;
			h->pass_known = h->pass_fast = 0;
			if (++h->passes % TIERMM__HEAT_DECAY_PASSES == 0)
				tiermm__heat_decay(h);
			continue;
		}
		if (!(obs[k].flags & TIERMM__OBS_BITS))
			continue;
		h->fed = true;
		b = tiermm__heat_block(h, obs[k].addr);
		if (!b)
			continue;
		for (int w = 0; w < 8; w++) {
			uint64_t bits = obs[k].bits[w] & b->valid[w];

			h->pass_known += (uint64_t)__builtin_popcountll(bits & b->known[w]);
			h->pass_fast += (uint64_t)__builtin_popcountll(bits & b->known[w] &
								      b->fast[w]);
			while (bits) {
				int i = w * 64 + __builtin_ctzll(bits);
				unsigned int v = b->heat[i] + TIERMM__HEAT_STEP;

				b->heat[i] = v > 255 ? 255 : (uint8_t)v;
				bits &= bits - 1;
			}
		}
	}
}

void tiermm__heat_decay(struct tiermm__heat *h)
{
	for (size_t i = 0; i < h->n; i++)
		for (int k = 0; k < TIERMM__HEAT_PAGES; k++)
			h->b[i].heat[k] >>= 1;
}

void tiermm__heat_forget_where(struct tiermm__heat *h)
{
	for (size_t i = 0; i < h->n; i++) {
		memset(h->b[i].known, 0, sizeof(h->b[i].known));
		memset(h->b[i].fast, 0, sizeof(h->b[i].fast));
	}
}

void tiermm__heat_histogram(const struct tiermm__heat *h, uint64_t hist[256])
{
	memset(hist, 0, 256 * sizeof(*hist));
	for (size_t i = 0; i < h->n; i++) {
		const struct tiermm__heat_block *b = &h->b[i];

		for (int k = 0; k < TIERMM__HEAT_PAGES; k++)
			if (b->valid[k / 64] & (1ULL << (k % 64)))
				hist[b->heat[k]]++;
	}
}

unsigned int tiermm__heat_threshold(const uint64_t hist[256], uint64_t pages,
				    uint64_t *above)
{
	uint64_t cum = 0;
	unsigned int t = 256;

	/* The lowest level whose pages, with all hotter ones, fit (cum <= pages). */
	while (t > 1 && hist[t - 1] <= pages - cum) {
		cum += hist[t - 1];
		t--;
	}
	if (above)
		*above = cum;
	return t;
}
