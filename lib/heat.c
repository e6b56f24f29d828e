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
 * of the managed memory; of a sparse mapping, only its blocks in use (see
 * "Sparse mappings" below).
 *
 * Where a page is: two bitmaps a block, known and fast. The engine sets
 * them from move_pages(2) status queries and from the status of its own
 * moves; they are forgotten (tiermm__heat_forget_where(), every REVERIFY
 * epochs) and for pages whose mappings changed, so pages faulted in later or moved by
 * someone else are asked about again.
 *
 * Blocks: sorted by address, one per 2 MiB block that holds a managed page
 * (valid bits: the pages inside managed mappings), of sparse mappings only
 * those in use. tiermm__heat_sync()
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
	(*out)->plan_share = NAN;
	return 0;
}

void tiermm__heat_free(struct tiermm__heat *h)
{
	if (!h)
		return;
	free(h->b);
	free(h->lay);
	free(h);
}

/* Index of the first block at or above base (n if none). */
static size_t lower_block(const struct tiermm__heat *h, uint64_t base)
{
	size_t lo = 0, hi = h->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (h->b[mid].base < base)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Index of the block at base, or -1. */
static long find_block(const struct tiermm__heat *h, uint64_t base)
{
	size_t i = lower_block(h, base);

	return i < h->n && h->b[i].base == base ? (long)i : -1;
}

struct tiermm__heat_block *tiermm__heat_block(struct tiermm__heat *h, uint64_t addr)
{
	long i = find_block(h, blk_of(addr));

	return i < 0 ? NULL : &h->b[i];
}

/*
 * Sparse mappings: a reservation far larger than what is resident in it (a
 * JVM heap, Go's arenas, a sanitizer's shadow of terabytes) would cost a
 * block a 2 MiB of address space, 576 bytes each, and every classification
 * a look at each of its pages. Such a mapping, larger than HEAT_SPARSE_MIN
 * with less than 1/HEAT_SPARSE_SHARE of it resident, gets blocks only where
 * the scanner saw pages: accessed, or present (its clearing reads, which
 * find every page touched since the read before, and at the start every
 * page touched since it was faulted in: TIERMM__OBS_PRESENT), added by
 * tiermm__heat_record(). So the counts follow the memory the process uses,
 * not what it reserved. What they miss: pages whose accessed bit someone
 * else cleared (reclaim, DAMON) before the first pass and that were never
 * touched again. A dense mapping turns sparse below 1/HEAT_DENSE_SHARE (a
 * margin against rebuilds) and keeps its blocks; a sparse one becomes
 * dense, every block, when a residency read finds it filled.
 */
#define HEAT_SPARSE_MIN (256ULL << 20)
#define HEAT_SPARSE_SHARE 4
#define HEAT_DENSE_SHARE 8	/* a dense mapping turns sparse below this:
				 * no rebuilds for one near the line */

static size_t span_first(const struct tiermm__heat_span *l, size_t nl, uint64_t addr);

static bool is_sparse(const struct tiermm__heat *h, const struct tiermm__mapping *m)
{
	uint64_t len = m->end - m->start, share = HEAT_SPARSE_SHARE;
	size_t i = span_first(h->lay, h->nlay, m->start);

	if (i < h->nlay && h->lay[i].start == m->start && h->lay[i].end == m->end &&
	    !h->lay[i].sparse)
		share = HEAT_DENSE_SHARE;
	return len > HEAT_SPARSE_MIN && (m->fast + m->slow + m->other) * share < len;
}

/* Index of the first span ending above addr (nl if none). */
static size_t span_first(const struct tiermm__heat_span *l, size_t nl, uint64_t addr)
{
	size_t lo = 0, hi = nl;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (l[mid].end <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* The valid bits of the block at base: its pages inside the mappings. */
static void block_valid(const struct tiermm__heat *h, struct tiermm__heat_block *b)
{
	memset(b->valid, 0, sizeof(b->valid));
	for (size_t i = span_first(h->lay, h->nlay, b->base);
	     i < h->nlay && h->lay[i].start < b->base + HEAT_BLOCK; i++) {
		uint64_t lo = h->lay[i].start > b->base ? h->lay[i].start : b->base;
		uint64_t hi = h->lay[i].end < b->base + HEAT_BLOCK ?
			      h->lay[i].end : b->base + HEAT_BLOCK;

		set_bits(b->valid, (lo - b->base) / HEAT_PAGE, (hi - b->base) / HEAT_PAGE);
	}
}

/* Append the block at base to nb (unless it is the last), with old's data. */
static int add_block(struct tiermm__heat_block **nb, size_t *nn, size_t *cap,
		     const struct tiermm__heat *old, uint64_t base)
{
	struct tiermm__heat_block *b;
	long o;

	if (*nn && (*nb)[*nn - 1].base == base)
		return 0;
	if (*nn == *cap) {
		size_t c = *cap ? *cap * 2 : 64;
		struct tiermm__heat_block *t = realloc(*nb, c * sizeof(**nb));

		if (!t)
			return -ENOMEM;
		*nb = t;
		*cap = c;
	}
	b = &(*nb)[(*nn)++];
	memset(b, 0, sizeof(*b));
	b->base = base;
	/* the counts (and the where) of a block that stays */
	o = find_block(old, base);
	if (o >= 0) {
		memcpy(b->heat, old->b[o].heat, sizeof(b->heat));
		memcpy(b->known, old->b[o].known, sizeof(b->known));
		memcpy(b->fast, old->b[o].fast, sizeof(b->fast));
		memcpy(b->old_valid, old->b[o].valid, sizeof(b->valid));
		b->huge = old->b[o].huge;
	}
	return 0;
}

/* A block's pages that left the mappings lose their counts and where. */
static void block_revalid(const struct tiermm__heat *h, struct tiermm__heat_block *b)
{
	bool changed = false;

	block_valid(h, b);
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

int tiermm__heat_sync(struct tiermm__heat *h, const struct tiermm__mapping *m,
		      size_t n)
{
	struct tiermm__heat_block *nb = NULL;
	struct tiermm__heat_span *nl, *ol;
	size_t nn = 0, cap = 0;
	bool same = n == h->nlay;

	for (size_t i = 0; same && i < n; i++)
		same = h->lay[i].start == m[i].start && h->lay[i].end == m[i].end &&
		       h->lay[i].sparse == is_sparse(h, &m[i]);
	if (same && h->synced)
		return 0;
	nl = malloc((n ? n : 1) * sizeof(*nl));
	if (!nl)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		nl[i] = (struct tiermm__heat_span){ m[i].start, m[i].end, is_sparse(h, &m[i]) };
	for (size_t i = 0; i < n; i++) {
		if (!nl[i].sparse) {
			for (uint64_t a = blk_of(m[i].start); a < m[i].end; a += HEAT_BLOCK)
				if (add_block(&nb, &nn, &cap, h, a))
					goto nomem;
			continue;
		}
		/* sparse: the blocks it had (seen accessed), and its edges'
		 * blocks that a neighbour has */
		for (size_t j = lower_block(h, blk_of(m[i].start));
		     j < h->n && h->b[j].base < m[i].end; j++)
			if (add_block(&nb, &nn, &cap, h, h->b[j].base))
				goto nomem;
	}
	ol = h->lay;
	h->lay = nl;
	h->nlay = n;
	free(ol);
	for (size_t i = 0; i < nn; i++)
		block_revalid(h, &nb[i]);
	free(h->b);
	h->b = nb;
	h->n = nn;
	h->synced = true;
	return 1;
nomem:
	free(nb);
	free(nl);
	return -ENOMEM;
}

/* Record one TIERMM__OBS_BITS observation into block b. */
static void record_bits(struct tiermm__heat *h, struct tiermm__heat_block *b,
			const struct tiermm__obs *o)
{
	for (int w = 0; w < 8; w++) {
		uint64_t bits = o->bits[w] & b->valid[w];

		h->pass_known += (uint64_t)__builtin_popcountll(bits & b->known[w]);
		h->pass_fast += (uint64_t)__builtin_popcountll(bits & b->known[w] &
							      b->fast[w]);
		h->pass_hits += (uint64_t)__builtin_popcountll(bits);
		while (bits) {
			int i = w * 64 + __builtin_ctzll(bits);
			unsigned int v = b->heat[i] + TIERMM__HEAT_STEP;

			h->pass_plan += b->heat[i] >= h->plan_t;

			b->heat[i] = v > 255 ? 255 : (uint8_t)v;
			bits &= bits - 1;
		}
	}
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * Blocks for observations of sparse mappings that had none (pend: their
 * indexes in obs), merged into the sorted array in one pass, then the
 * observations recorded. Out of memory: they are dropped (h->dropped).
 */
static void add_pending(struct tiermm__heat *h, const struct tiermm__obs *obs,
			const size_t *pend, size_t np)
{
	uint64_t *bases = malloc(np * sizeof(*bases));
	struct tiermm__heat_block *nb;
	size_t nk = 0, i = 0, j = 0, k = 0;

	if (!bases)
		goto drop;
	for (size_t p = 0; p < np; p++)
		bases[p] = blk_of(obs[pend[p]].addr);
	qsort(bases, np, sizeof(*bases), cmp_u64);
	for (size_t p = 0; p < np; p++)
		if (!nk || bases[nk - 1] != bases[p])
			bases[nk++] = bases[p];
	nb = malloc((h->n + nk) * sizeof(*nb));
	if (!nb) {
		free(bases);
		goto drop;
	}
	while (i < h->n || j < nk) {
		if (j >= nk || (i < h->n && h->b[i].base < bases[j])) {
			nb[k++] = h->b[i++];
			continue;
		}
		memset(&nb[k], 0, sizeof(nb[k]));
		nb[k].base = bases[j++];
		block_valid(h, &nb[k]);
		memcpy(nb[k].old_valid, nb[k].valid, sizeof(nb[k].valid));
		k++;
	}
	free(bases);
	free(h->b);
	h->b = nb;
	h->n = k;
	for (size_t p = 0; p < np; p++)
		if (!(obs[pend[p]].flags & TIERMM__OBS_PRESENT))
			record_bits(h, tiermm__heat_block(h, obs[pend[p]].addr),
				    &obs[pend[p]]);
	return;
drop:
	h->dropped += np;
	tiermm__log(TIERMM_LOG_WARN,
		    "page counts: out of memory for new blocks: %zu observations dropped", np);
}

/* Whether addr is in a sparse mapping (blocks only where seen accessed). */
static bool in_sparse(const struct tiermm__heat *h, uint64_t addr)
{
	size_t i = span_first(h->lay, h->nlay, addr);

	return i < h->nlay && h->lay[i].start <= addr && h->lay[i].sparse;
}

void tiermm__heat_record(struct tiermm__heat *h, const struct tiermm__obs *obs,
			 size_t n)
{
	size_t *pend = NULL, np = 0;

	for (size_t k = 0; k <= n; k++) {
		struct tiermm__heat_block *b;

		/* new blocks before a pass ends (its counts, its decay) */
		if (np && (k == n || (obs[k].flags & TIERMM__OBS_PASS))) {
			add_pending(h, obs, pend, np);
			np = 0;
		}
		if (k == n)
			break;
		if (obs[k].flags & TIERMM__OBS_PASS) {
			if (h->pass_known)
				h->fast_share = (double)h->pass_fast / (double)h->pass_known;
			h->pass_known = h->pass_fast = 0;
			if (h->pass_hits >= TIERMM__PLAN_SHARE_MIN)
				h->plan_share = fmin(h->plan_share, (double)h->pass_plan /
								     (double)h->pass_hits);
			h->pass_hits = h->pass_plan = 0;
			if (++h->passes % TIERMM__HEAT_DECAY_PASSES == 0)
				tiermm__heat_decay(h);
			continue;
		}
		if (!(obs[k].flags & TIERMM__OBS_BITS))
			continue;
		h->fed = true;
		b = tiermm__heat_block(h, obs[k].addr);
		if (b) {
			if (!(obs[k].flags & TIERMM__OBS_PRESENT))
				record_bits(h, b, &obs[k]);
			continue;
		}
		if (!in_sparse(h, obs[k].addr))
			continue;
		if (!pend) {
			pend = malloc(n * sizeof(*pend));
			if (!pend) {
				h->dropped++;
				tiermm__log(TIERMM_LOG_WARN,
					    "page counts: out of memory for new blocks: an observation dropped");
				continue;
			}
		}
		pend[np++] = k;
	}
	free(pend);
}

/*
 * Halves every count, and the plan's threshold with them: the passes
 * between a decay and the engine's next classification would otherwise
 * weigh halved counts against the old threshold, and the plan's share of
 * the pages they see would drop for nothing (in the guest, zipf: every
 * third epoch at the full pace, 0.15-0.25 against 0.44-0.50, and a slow
 * epoch with a decay in it looked like a shift).
 */
void tiermm__heat_decay(struct tiermm__heat *h)
{
	for (size_t i = 0; i < h->n; i++)
		for (int k = 0; k < TIERMM__HEAT_PAGES; k++)
			h->b[i].heat[k] >>= 1;
	h->plan_t >>= 1;
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
