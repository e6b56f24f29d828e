// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * tierbench workloads: access patterns whose probability per 4 KiB data
 * page is known by construction, so the share of accesses that a placement
 * serves from the fast tier can be computed from where the pages are.
 *
 *   gups        Demeter's GUPS with a hot set: read-modify-write of random
 *               8-byte words; hot_share (0.9) of the updates go to a
 *               contiguous hot set of hot_frac (1/14) of the table, the
 *               rest uniformly to the other pages. The hot set starts in
 *               the middle of the table, away from the pages first touch
 *               put in the fast tier.
 *   zipf        key-value lookups: 1 KiB records (4 per page, YCSB's record
 *               size), record popularity Zipf(theta) over the records, the
 *               popularity rank scrambled over the record slots as YCSB's
 *               scrambled Zipfian does (hot records are spread over the
 *               table, a few per page at most).
 *   zipf-shift  the same, and every shift_s seconds the popularity moves to
 *               other records (the rank-to-record mapping is rotated), so
 *               the hot set changes completely.
 *   btree       lookups of uniformly random keys in a bulk-loaded B+-tree
 *               of 4 KiB nodes (leaves of 255 keys and values, inner nodes
 *               of 340 keys), built leaves first so the inner levels are
 *               at the end; a lookup reads one page per level, so a page's
 *               probability is the share of lookups that pass through it
 *               divided by the depth: the root levels are hot.
 *
 * All state besides the data region (probability tables, constants) is
 * metadata allocated by the main thread, which binds its allocations to
 * the slow node while it sets up (main.c).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tierbench.h"

/* ---- RNG: xorshift64* ---- */

uint64_t tb_rng_next(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dull;
}

uint64_t tb_rng_seed(uint64_t seed, unsigned int thread)
{
	/* splitmix64 of (seed, thread): never 0 */
	uint64_t z = seed + 0x9e3779b97f4a7c15ull * (thread + 1);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	z ^= z >> 31;
	return z ? z : 1;
}

/* Uniform integer in [0, n) from 32 random bits (n < 2^32). */
static inline uint64_t below(uint64_t r, uint64_t n)
{
	return ((r >> 32) * n) >> 32;
}

/* ---- gups ---- */

struct gups {
	uint64_t nwords;
	uint64_t hot_first, hot_words;	/* in words */
	uint64_t cold_words;
	uint32_t hot_thresh;		/* of 2^32 */
	size_t hot_page0, hot_pages;
};

static size_t gups_pages(const struct tb_wl_params *prm)
{
	return prm->footprint / TB_PAGE;
}

static int gups_init(struct tb_workload *w)
{
	struct gups *g = tb_meta_alloc(sizeof(*g));
	uint64_t *t = (uint64_t *)w->data;
	size_t words_per_page = TB_PAGE / 8;

	if (!g)
		return -ENOMEM;
	g->nwords = w->npages * words_per_page;
	g->hot_pages = (size_t)((double)w->npages * w->prm.hot_frac + 0.5);
	if (g->hot_pages < 1)
		g->hot_pages = 1;
	if (g->hot_pages >= w->npages)
		g->hot_pages = w->npages - 1;
	g->hot_page0 = w->npages / 2;
	if (g->hot_page0 + g->hot_pages > w->npages)
		g->hot_page0 = w->npages - g->hot_pages;
	g->hot_first = g->hot_page0 * words_per_page;
	g->hot_words = g->hot_pages * words_per_page;
	g->cold_words = g->nwords - g->hot_words;
	g->hot_thresh = (uint32_t)(w->prm.hot_share * 4294967296.0);
	for (uint64_t i = 0; i < g->nwords; i++)
		t[i] = i;
	w->priv = g;
	return 0;
}

static void gups_probs(struct tb_workload *w, unsigned int epoch, float *p)
{
	struct gups *g = w->priv;
	double ph = w->prm.hot_share / (double)g->hot_pages;
	double pc = (1.0 - w->prm.hot_share) /
		    (double)(w->npages - g->hot_pages);

	(void)epoch;
	for (size_t i = 0; i < w->npages; i++)
		p[i] = (float)((i >= g->hot_page0 &&
				i < g->hot_page0 + g->hot_pages) ? ph : pc);
}

static uint64_t gups_run(struct tb_workload *w, unsigned int epoch,
			 uint64_t *rng, uint64_t ops)
{
	struct gups *g = w->priv;
	uint64_t *t = (uint64_t *)w->data;
	uint64_t s = *rng;

	(void)epoch;
	for (uint64_t i = 0; i < ops; i++) {
		uint64_t r = tb_rng_next(&s), idx;

		if ((uint32_t)r < g->hot_thresh) {
			idx = g->hot_first + below(r, g->hot_words);
		} else {
			idx = below(r, g->cold_words);
			if (idx >= g->hot_first)
				idx += g->hot_words;
		}
		t[idx] ^= r;
	}
	*rng = s;
	return t[0];
}

/* ---- zipf, zipf-shift ---- */

#define REC_SIZE 1024u
#define REC_PER_PAGE (TB_PAGE / REC_SIZE)

struct zipf {
	uint64_t n;		/* records */
	/* scrambling permutation: bijection on [0, 2^bits), cycle-walked
	 * into [0, n) */
	unsigned int bits;
	uint64_t mask, mul1, mul2, add;
	uint64_t shift_step;	/* rank rotation per epoch */
	/* rejection-inversion sampling of Zipf(theta) over 1..n */
	double s, hx1, hn, sconst;
	float *prank;		/* probability of rank r (0 = hottest) */
};

static size_t zipf_pages(const struct tb_wl_params *prm)
{
	return prm->footprint / TB_PAGE;
}

static inline uint64_t perm_round(const struct zipf *z, uint64_t x)
{
	x = (x * z->mul1) & z->mask;
	x ^= x >> (z->bits / 2 + 1);
	x = (x * z->mul2 + z->add) & z->mask;
	x ^= x >> (z->bits / 3 + 1);
	return x;
}

/* Record slot of popularity rank r (0-based). */
static inline uint64_t zipf_slot(const struct zipf *z, uint64_t r)
{
	uint64_t x = r;

	do
		x = perm_round(z, x);
	while (x >= z->n);
	return x;
}

/* H(x) = integral of t^-s from 1 to x, and its inverse, in forms that stay
 * accurate when s is close to 1 (Hoermann and Derflinger, "Rejection-
 * inversion to generate variates from monotone discrete distributions",
 * 1996). */
static double expm1_over(double y)
{
	return fabs(y) > 1e-8 ? expm1(y) / y : 1.0 + y / 2.0;
}

static double log1p_over(double y)
{
	return fabs(y) > 1e-8 ? log1p(y) / y : 1.0 - y / 2.0;
}

static double zh(const struct zipf *z, double x)
{
	return exp(-z->s * log(x));
}

static double zH(const struct zipf *z, double x)
{
	double lx = log(x);

	return expm1_over((1.0 - z->s) * lx) * lx;
}

static double zHinv(const struct zipf *z, double u)
{
	double t = u * (1.0 - z->s);

	if (t < -1.0)
		t = -1.0;
	return exp(log1p_over(t) * u);
}

static uint64_t zipf_sample(const struct zipf *z, uint64_t *rng)
{
	for (;;) {
		double U = (double)((tb_rng_next(rng) >> 11) + 1) *
			   (1.0 / 9007199254740993.0);
		double u = z->hn + U * (z->hx1 - z->hn);
		double x = zHinv(z, u);
		double k = floor(x + 0.5);

		if (k < 1.0)
			k = 1.0;
		else if (k > (double)z->n)
			k = (double)z->n;
		if (k - x <= z->sconst || u >= zH(z, k + 0.5) - zh(z, k))
			return (uint64_t)k;
	}
}

static int zipf_init(struct tb_workload *w)
{
	struct zipf *z = tb_meta_alloc(sizeof(*z));
	uint64_t seed = w->prm.seed ? w->prm.seed : 1;
	double norm = 0.0;

	if (!z)
		return -ENOMEM;
	z->n = (uint64_t)w->npages * REC_PER_PAGE;
	z->bits = 1;
	while ((1ull << z->bits) < z->n)
		z->bits++;
	z->mask = (1ull << z->bits) - 1;
	z->mul1 = (tb_rng_seed(seed, 101) | 1) & z->mask;
	z->mul2 = (tb_rng_seed(seed, 102) | 1) & z->mask;
	z->add = tb_rng_seed(seed, 103) & z->mask;
	if (!z->mul1)
		z->mul1 = 1;
	if (!z->mul2)
		z->mul2 = 1;
	/* 0.382 of the records: a rotation that shares no hot records with
	 * the previous few epochs */
	z->shift_step = (uint64_t)((double)z->n * 0.381966) | 1;
	z->s = w->prm.theta;
	z->hx1 = zH(z, 1.5) - 1.0;
	z->hn = zH(z, (double)z->n + 0.5);
	z->sconst = 2.0 - zHinv(z, zH(z, 2.5) - zh(z, 2.0));
	z->prank = tb_meta_alloc(z->n * sizeof(float));
	if (!z->prank)
		return -ENOMEM;
	for (uint64_t r = 0; r < z->n; r++)
		norm += zh(z, (double)(r + 1));
	for (uint64_t r = 0; r < z->n; r++)
		z->prank[r] = (float)(zh(z, (double)(r + 1)) / norm);
	/* records: the key in the first word, values after it */
	for (uint64_t i = 0; i < z->n; i++) {
		uint64_t *rec = (uint64_t *)(w->data + i * REC_SIZE);

		for (unsigned int j = 0; j < REC_SIZE / 8; j++)
			rec[j] = i * 131 + j;
		rec[0] = i;
	}
	w->priv = z;
	return 0;
}

static uint64_t zipf_offset(const struct zipf *z, unsigned int epoch)
{
	return (uint64_t)((unsigned __int128)z->shift_step * epoch % z->n);
}

static void zipf_probs(struct tb_workload *w, unsigned int epoch, float *p)
{
	struct zipf *z = w->priv;
	uint64_t off = w->ops->shifts ? zipf_offset(z, epoch) : 0;

	memset(p, 0, w->npages * sizeof(float));
	/* rank r is served by record slot(r + off) */
	for (uint64_t r = 0; r < z->n; r++) {
		uint64_t rr = r + off;

		if (rr >= z->n)
			rr -= z->n;
		p[zipf_slot(z, rr) / REC_PER_PAGE] += z->prank[r];
	}
}

static uint64_t zipf_run(struct tb_workload *w, unsigned int epoch,
			 uint64_t *rng, uint64_t ops)
{
	struct zipf *z = w->priv;
	uint64_t off = w->ops->shifts ? zipf_offset(z, epoch) : 0, sum = 0;

	for (uint64_t i = 0; i < ops; i++) {
		uint64_t r = zipf_sample(z, rng) - 1 + off;
		const uint64_t *rec;

		if (r >= z->n)
			r -= z->n;
		rec = (const uint64_t *)(w->data + zipf_slot(z, r) * REC_SIZE);
		/* a lookup: the key, then the first 64 bytes of the value */
		sum += rec[0];
		for (unsigned int j = 1; j < 9; j++)
			sum ^= rec[j];
	}
	return sum;
}

/* ---- btree ---- */

#define LEAF_KEYS ((TB_PAGE - 8) / 16)		/* 255 */
#define INNER_KEYS ((TB_PAGE - 8 - 4) / 12)	/* 340 */

struct bt_leaf {
	uint32_t n, level;
	uint64_t keys[LEAF_KEYS];
	uint64_t vals[LEAF_KEYS];
};

struct bt_inner {
	uint32_t n, level;	/* n separators, n + 1 children */
	uint64_t keys[INNER_KEYS];
	uint32_t child[INNER_KEYS + 1];	/* page numbers */
};

_Static_assert(sizeof(struct bt_leaf) <= TB_PAGE, "leaf fits a page");
_Static_assert(sizeof(struct bt_inner) <= TB_PAGE, "inner node fits a page");

#define BT_MAX_LEVELS 8

struct btree {
	uint64_t nkeys;
	size_t nleaves;
	unsigned int levels;	/* including the leaf level */
	size_t level_first[BT_MAX_LEVELS], level_count[BT_MAX_LEVELS];
	size_t root;
};

/* Pages of a tree with nleaves leaves; fills the level layout if bt. */
static size_t bt_layout(size_t nleaves, struct btree *bt)
{
	size_t total = nleaves, count = nleaves, first = 0;
	unsigned int lv = 0;

	if (bt) {
		bt->level_first[0] = 0;
		bt->level_count[0] = nleaves;
	}
	while (count > 1 && lv + 1 < BT_MAX_LEVELS) {
		first += count;
		count = (count + INNER_KEYS) / (INNER_KEYS + 1);
		total += count;
		lv++;
		if (bt) {
			bt->level_first[lv] = first;
			bt->level_count[lv] = count;
		}
	}
	if (bt) {
		bt->levels = lv + 1;
		bt->root = first;
	}
	return total;
}

static size_t btree_pages(const struct tb_wl_params *prm)
{
	size_t want = prm->footprint / TB_PAGE, lo = 1, hi = want;

	/* the largest leaf count whose tree fits the footprint */
	while (lo < hi) {
		size_t mid = lo + (hi - lo + 1) / 2;

		if (bt_layout(mid, NULL) <= want)
			lo = mid;
		else
			hi = mid - 1;
	}
	return bt_layout(lo, NULL);
}

static int btree_init(struct tb_workload *w)
{
	struct btree *bt = tb_meta_alloc(sizeof(*bt));
	size_t lo = 1, hi = w->npages;

	if (!bt)
		return -ENOMEM;
	while (lo < hi) {
		size_t mid = lo + (hi - lo + 1) / 2;

		if (bt_layout(mid, NULL) <= w->npages)
			lo = mid;
		else
			hi = mid - 1;
	}
	bt->nleaves = lo;
	if (bt_layout(lo, bt) != w->npages || bt->levels >= BT_MAX_LEVELS)
		return -EINVAL;
	bt->nkeys = (uint64_t)bt->nleaves * LEAF_KEYS;
	/* leaves: keys 1, 3, 5, ... (odd, so absent keys exist between) */
	for (size_t i = 0; i < bt->nleaves; i++) {
		struct bt_leaf *l = (struct bt_leaf *)(w->data + i * TB_PAGE);

		memset(l, 0, TB_PAGE);
		l->n = LEAF_KEYS;
		l->level = 0;
		for (unsigned int j = 0; j < LEAF_KEYS; j++) {
			uint64_t k = (uint64_t)i * LEAF_KEYS + j;

			l->keys[j] = 2 * k + 1;
			l->vals[j] = k * 7 + 3;
		}
	}
	/* inner levels: node c of level lv has children c*(K+1) .. of lv-1;
	 * separator j = the smallest key of child j + 1 */
	for (unsigned int lv = 1; lv < bt->levels; lv++) {
		size_t below_first = bt->level_first[lv - 1];
		size_t below_count = bt->level_count[lv - 1];

		for (size_t c = 0; c < bt->level_count[lv]; c++) {
			struct bt_inner *in = (struct bt_inner *)(w->data +
				(bt->level_first[lv] + c) * TB_PAGE);
			size_t c0 = c * (INNER_KEYS + 1), nch;

			memset(in, 0, TB_PAGE);
			nch = below_count - c0;
			if (nch > INNER_KEYS + 1)
				nch = INNER_KEYS + 1;
			in->level = lv;
			in->n = (uint32_t)(nch - 1);
			for (size_t j = 0; j < nch; j++) {
				size_t pg = below_first + c0 + j;

				in->child[j] = (uint32_t)pg;
				if (j) {
					/* smallest key below page pg */
					size_t q = pg;

					while (q >= bt->nleaves) {
						struct bt_inner *d =
							(struct bt_inner *)(w->data + q * TB_PAGE);
						q = d->child[0];
					}
					in->keys[j - 1] =
						((struct bt_leaf *)(w->data + q * TB_PAGE))->keys[0];
				}
			}
		}
	}
	w->priv = bt;
	return 0;
}

static void btree_probs(struct tb_workload *w, unsigned int epoch, float *p)
{
	struct btree *bt = w->priv;
	double per_key = 1.0 / ((double)bt->nkeys * bt->levels);

	(void)epoch;
	/* keys below each page, bottom-up, scaled: share of lookups through
	 * the page / depth */
	for (size_t i = 0; i < bt->nleaves; i++)
		p[i] = (float)(LEAF_KEYS * per_key);
	for (unsigned int lv = 1; lv < bt->levels; lv++) {
		for (size_t c = 0; c < bt->level_count[lv]; c++) {
			size_t pg = bt->level_first[lv] + c;
			const struct bt_inner *in =
				(const struct bt_inner *)(w->data + pg * TB_PAGE);
			double s = 0.0;

			for (uint32_t j = 0; j <= in->n; j++)
				s += p[in->child[j]];
			p[pg] = (float)s;
		}
	}
}

static uint64_t btree_run(struct tb_workload *w, unsigned int epoch,
			  uint64_t *rng, uint64_t ops)
{
	struct btree *bt = w->priv;
	uint64_t sum = 0;

	(void)epoch;
	for (uint64_t i = 0; i < ops; i++) {
		uint64_t r = tb_rng_next(rng);
		uint64_t key = 2 * (((r >> 20) % bt->nkeys)) + 1;
		size_t pg = bt->root;

		while (pg >= bt->nleaves) {
			const struct bt_inner *in =
				(const struct bt_inner *)(w->data + pg * TB_PAGE);
			uint32_t lo = 0, hi = in->n;

			/* children left of the first separator > key */
			while (lo < hi) {
				uint32_t mid = (lo + hi) / 2;

				if (in->keys[mid] <= key)
					lo = mid + 1;
				else
					hi = mid;
			}
			pg = in->child[lo];
		}
		{
			const struct bt_leaf *l =
				(const struct bt_leaf *)(w->data + pg * TB_PAGE);
			uint32_t lo = 0, hi = l->n;

			while (lo < hi) {
				uint32_t mid = (lo + hi) / 2;

				if (l->keys[mid] < key)
					lo = mid + 1;
				else
					hi = mid;
			}
			if (lo < l->n && l->keys[lo] == key)
				sum += l->vals[lo];
		}
	}
	return sum;
}

/* ---- table ---- */

static const struct tb_wl_ops workloads[] = {
	{ "gups", "GUPS, 90% of updates to a hot set of 1/14 of the table",
	  gups_pages, gups_init, gups_probs, gups_run, false },
	{ "zipf", "Zipf(theta) lookups of 1 KiB records, popularity scrambled over the table",
	  zipf_pages, zipf_init, zipf_probs, zipf_run, false },
	{ "zipf-shift", "zipf with the popular records replaced every shift_s seconds",
	  zipf_pages, zipf_init, zipf_probs, zipf_run, true },
	{ "btree", "uniform lookups in a B+-tree of 4 KiB nodes, inner levels built last",
	  btree_pages, btree_init, btree_probs, btree_run, false },
};

const struct tb_wl_ops *tb_workload_find(const char *name)
{
	for (size_t i = 0; i < sizeof(workloads) / sizeof(workloads[0]); i++)
		if (!strcmp(workloads[i].name, name))
			return &workloads[i];
	return NULL;
}
