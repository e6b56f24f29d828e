// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The tiering engine: one managed process's address space, its range tree
 * (rtree.c), the plan within the fast-tier budget with the hints applied,
 * and the migration that carries the plan out (ARCHITECTURE.md, "The
 * runtime"; Demeter, SOSP'25). Driven by the runtime's engine thread, one
 * epoch at a time (engine.h).
 *
 * Address space. Every epoch the world's mappings() (/proc/PID/maps with the
 * residency from /proc/PID/numa_maps) are compared with the previous
 * epoch's: new intervals are mapped into the tree, vanished ones unmapped.
 * Adjacent mappings are one interval for the tree (a range may cross a
 * mapping boundary; move_pages(2) works per page). If the tree is full
 * (2048 ranges and nothing left to merge), an interval stays unmanaged and
 * is tried again the next epoch.
 *
 * Plan. The tree's ranking (density = decayed accesses per byte) is biased
 * by the hints of the calling process (never of another process: hints
 * describe the caller's address space, hints.h): a range's density is
 * multiplied by (1 + 3 h) / (1 + 3 c), h and c the shares of it hinted HOT
 * and COLD, so a wholly HOT range ranks as if four times as dense, a wholly
 * COLD one a quarter (HINT_BIAS: a bias that a clearly hotter range still
 * beats, not an order). A range wholly under PIN_FAST, PIN_SLOW or
 * NO_MIGRATE is left out of the plan: the engine cannot place it. PIN_FAST
 * bytes are on the fast tier by the user's decision, so they are taken out
 * of the budget before the hot set is fitted (tiermm__fit_hot_set(), with
 * the tree's hysteresis: an incumbent stays unless a range 1.2 times
 * denser needs its room). A range not in the hot set whose decayed count is
 * below NOISE_FLOOR (about one observation an epoch) is not promoted: with
 * the budget larger than the hot set, the fit would otherwise fill it with
 * memory touched once, long ago.
 *
 * Migration, in this order, each step paced by the runtime (rate limit,
 * CPU quota, stop) batch by batch:
 *  1. pins: PIN_FAST ranges to the fast tier, PIN_SLOW ranges to the slow
 *     tier (pages faulted in after the pin), when the hints changed or
 *     every REVERIFY epochs, and only where the residency shows pages on
 *     the wrong tier;
 *  2. demotion, to make room: the bytes by which the fast tier's resident
 *     memory plus the promotions still expected exceed the budget (or the
 *     tier's free memory), taken from the cold parts of ranges, coldest
 *     first. Ranges whose cold part was verified off the fast tier in the
 *     last REVERIFY epochs are taken only if that is not enough;
 *  3. promotion: the hot prefixes of the plan, densest first, while the
 *     fast tier's resident memory is below the budget (each batch is capped
 *     at the room left, so the budget is never exceeded by promotions).
 *     A range verified on the fast tier is not walked again for REVERIFY
 *     epochs unless its hot prefix grew; pages that stayed busy are tried
 *     again the next epochs, PROMOTE_TRIES times.
 * Hints cut the ranges given to the mover: nothing under NO_MIGRATE moves,
 * nothing under PIN_FAST leaves the fast tier, nothing under PIN_SLOW
 * leaves the slow tier (tiermm__hint_allows_move()). A range whose mappings
 * hold no page that the step would move (numa_maps residency) is not
 * walked. The mover walks only present pages, THP by head address, with
 * status checks, retries and verification (place.c).
 *
 * Why demote first: promotions need room on the fast tier, and Demeter
 * exchanges pairs for the same reason. Why not demote every cold page:
 * a budget larger than the hot set leaves cold pages where they are
 * (moving them costs bandwidth and gains nothing).
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "engine.h"

#define REVERIFY_EPOCHS 16	/* 8 s at 500 ms: placements re-checked */
#define PROMOTE_TRIES 3		/* epochs a range with busy pages is retried */
#define WINDOW_MAX (64ULL << 20)	/* bytes one batch covers at most: keeps a
					 * batch (and stop()) short with THPs */
#define HINT_BIAS 4.0
#define NOISE_FLOOR 1.0		/* decayed count below which a range is not
				 * newly promoted */
#define HUGE_BYTES (2ULL << 20)	/* one PMD-mapped huge page */
#define MAKE_ROOM_ROUNDS 32	/* demotions for room, an epoch ... */
#define MAKE_ROOM_CHUNK (8ULL << 20)	/* ... of this much at most each */
#define NODE_WORDS (TIERMM__MAX_NODES / 64)
#define HEAT_BLOCK (2ULL << 20)
#define HEAT_MIN (2 * TIERMM__HEAT_STEP)	/* page mode: seen in two of the
						 * last 16 passes at least */
#define QUERY_MAX 262144
#define SWAP_GAP (8 * TIERMM__HEAT_STEP)	/* page mode: a promotion displaces
						 * pages counting this much less */
#define RESIDENCY_EPOCHS 8	/* page mode: numa_maps read every 8 epochs */	/* page mode: pages asked about an epoch */

struct span {
	uint64_t start, end;
};

/* The fast tier as the migration sees it, kept current batch by batch. */
struct tier_state {
	uint64_t fast;		/* the process's resident bytes on it */
	uint64_t free;		/* its usable free memory */
};

/* What the migration knows of a range (by the tree's id), parallel to rk. */
struct rstate {
	uint64_t id;
	uint64_t hot_done;	/* hot prefix verified on the fast tier */
	uint64_t hot_epoch;	/* ... at this epoch (0: never) */
	uint64_t cold_from;	/* cold part from here verified off it */
	uint64_t cold_epoch;	/* ... at this epoch (0: never) */
	uint32_t tries;		/* promotions that left busy pages */
};

struct tiermm__engine {
	struct tiermm__engine_cfg cfg;
	bool self;
	uint64_t ps;
	const struct tiermm__env_ops *ops;
	void *env;
	struct tiermm__rtree *tree;
	struct tiermm__mapping *maps;
	size_t nmaps;
	struct span *spans;	/* what the tree covers */
	size_t nspans;
	uint64_t fast_nodes[NODE_WORDS];
	uint64_t unmanaged;	/* bytes the full tree could not take */
	bool full_logged;

	uint64_t hints_gen;
	bool hints_read;
	struct tiermm__hint_range *hints;
	size_t nhints;
	uint64_t nm_fast;	/* NO_MIGRATE bytes on the fast tier (sampled) */
	uint64_t nm_epoch, nm_gen;	/* ... at this epoch, for these hints */

	struct tiermm__range *rk;	/* the plan's ranking, biased */
	uint64_t *hot;		/* planned bytes of rk[i] */
	struct rstate *rs;	/* rs[i] for rk[i] */
	size_t nrk;
	struct span *plan;	/* the plan's hot bytes, by address */
	size_t nplan;
	uint64_t plan_changed;	/* bytes in or out of the plan this epoch */

	uint64_t epoch;
	unsigned int pace;	/* the runtime's: epochs this many base epochs long */
	uint64_t budget, hot_bytes, fast_bytes, resident, hinted;
	uint64_t pin_gen, pin_epoch;
	bool pins_done;

	/* Page mode (heat.c): the backend reports every page. */
	struct tiermm__heat *heat;
	bool page_mode;
	unsigned int heat_t;		/* promote pages counting this or more */
	uint8_t swap_lim[256];		/* swap_limit() of each count */
	uint64_t heat_passes;		/* scanner passes at the last migration */
	bool reverify;			/* forget where pages are at the next one */
	uint64_t classified_passes, classified_budget;	/* ... classification */
	uint64_t classified_hints;
	uint64_t heat_hot_bytes;	/* the pages counting heat_t or more */
	uint64_t heat_hot_prev;		/* the hot set's bytes at the last epoch */
	unsigned int heat_max;		/* the highest count of a page */
	uint64_t plan_heat;		/* the counts of the pages at heat_t or more */
	uint64_t gain_up, gain_down;	/* the last migration: counts x pages it
					 * moved onto the fast tier, off it */

	struct {
		uint64_t promoted, demoted;	/* pages */
		uint64_t failed, busy, nomem, fault, other;
		uint64_t queried;		/* pages asked about */
		uint64_t query_ns, move_ns;	/* CPU in those, and in moves */
		uint64_t maps_ns, heat_ns;	/* classification: maps, counts */
	} c;
};

/* ---- intervals ---- */


static uint64_t min64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static uint64_t max64(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

typedef int (*span_fn)(struct tiermm__engine *e, uint64_t a, uint64_t b,
		       void *ctx);

/* Call fn for each part of a[] not covered by b[] (both sorted, disjoint). */
static int subtract(struct tiermm__engine *e, const struct span *a, size_t na,
		    const struct span *b, size_t nb, span_fn fn, void *ctx)
{
	size_t j = 0;
	int ret;

	for (size_t i = 0; i < na; i++) {
		uint64_t cur = a[i].start;

		while (j < nb && b[j].end <= cur)
			j++;
		for (size_t k = j; k < nb && b[k].start < a[i].end; k++) {
			if (b[k].start > cur) {
				ret = fn(e, cur, b[k].start, ctx);
				if (ret)
					return ret;
			}
			cur = max64(cur, b[k].end);
			if (cur >= a[i].end)
				break;
		}
		if (cur < a[i].end) {
			ret = fn(e, cur, a[i].end, ctx);
			if (ret)
				return ret;
		}
	}
	return 0;
}

static int span_bytes(struct tiermm__engine *e, uint64_t a, uint64_t b, void *ctx)
{
	(void)e;
	*(uint64_t *)ctx += b - a;
	return 0;
}

static int cmp_span(const void *pa, const void *pb)
{
	const struct span *a = pa, *b = pb;

	return a->start < b->start ? -1 : a->start > b->start;
}

/*
 * The range plan's hot bytes by address, and how many bytes entered or
 * left it since the last epoch (the runtime's settling looks at that: a
 * split can move the hot part of a range without changing its size).
 */
static int plan_diff(struct tiermm__engine *e, const struct tiermm__range *rk,
		     const uint64_t *hot, size_t n)
{
	struct span *p = malloc((n ? n : 1) * sizeof(*p));
	uint64_t changed = 0;
	size_t m = 0;

	if (!p)
		return tiermm__fail(ENOMEM, "tiering engine: out of memory for the plan");
	for (size_t i = 0; i < n; i++)
		if (hot[i])
			p[m++] = (struct span){ rk[i].start, rk[i].start + hot[i] };
	qsort(p, m, sizeof(*p), cmp_span);
	subtract(e, p, m, e->plan, e->nplan, span_bytes, &changed);
	subtract(e, e->plan, e->nplan, p, m, span_bytes, &changed);
	free(e->plan);
	e->plan = p;
	e->nplan = m;
	e->plan_changed = changed;
	return 0;
}

/* Index of the first mapping ending above addr. */
static size_t map_first(const struct tiermm__engine *e, uint64_t addr)
{
	size_t lo = 0, hi = e->nmaps;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (e->maps[mid].end <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/*
 * Residency of [a, b) estimated from its mappings (each mapping's bytes
 * spread evenly over it): est[0] fast, est[1] not fast. any[] says whether
 * some overlapping mapping has any such page at all.
 */
static void resid(const struct tiermm__engine *e, uint64_t a, uint64_t b,
		  double est[2], bool any[2])
{
	est[0] = est[1] = 0;
	any[0] = any[1] = false;
	for (size_t i = map_first(e, a); i < e->nmaps && e->maps[i].start < b; i++) {
		const struct tiermm__mapping *m = &e->maps[i];
		double f = (double)(min64(b, m->end) - max64(a, m->start)) /
			   (double)(m->end - m->start);
		uint64_t nf = m->slow + m->other;

		est[0] += (double)m->fast * f;
		est[1] += (double)nf * f;
		any[0] |= m->fast > 0;
		any[1] |= nf > 0;
	}
}

/* ---- address space ---- */

struct sync_ctx {
	bool map;		/* map (else unmap) */
	struct span *failed;	/* map: intervals the tree could not take */
	size_t nfailed, capfailed;
	int err;
};

static int sync_one(struct tiermm__engine *e, uint64_t a, uint64_t b, void *ctx)
{
	struct sync_ctx *s = ctx;
	int ret;

	if (!s->map) {
		ret = tiermm__rtree_unmap(e->tree, a, b);
		return ret == -ENOMEM ? ret : 0;
	}
	ret = tiermm__rtree_map(e->tree, a, b);
	if (ret == -ENOSPC) {
		if (!e->full_logged)
			tiermm__log(TIERMM_LOG_WARN,
				    "tiering engine: the range tree is full; [%#llx, %#llx) and later mappings stay unmanaged until ranges merge",
				    (unsigned long long)a, (unsigned long long)b);
		e->full_logged = true;
		if (s->nfailed == s->capfailed) {
			size_t cap = s->capfailed ? s->capfailed * 2 : 8;
			struct span *f = realloc(s->failed, cap * sizeof(*f));

			if (!f)
				return -ENOMEM;
			s->failed = f;
			s->capfailed = cap;
		}
		s->failed[s->nfailed++] = (struct span){ a, b };
		return 0;
	}
	return ret;
}

struct collect {
	struct span *v;
	size_t n;
};

static int collect_one(struct tiermm__engine *e, uint64_t a, uint64_t b, void *ctx)
{
	struct collect *c = ctx;

	(void)e;
	if (c->n && c->v[c->n - 1].end == a)
		c->v[c->n - 1].end = b;
	else
		c->v[c->n++] = (struct span){ a, b };
	return 0;
}

/*
 * Read the address space and bring the tree in line with it. Without
 * residency (page mode, between RESIDENCY_EPOCHS), the mappings keep the
 * residency last read for the same mapping (or the part of it they
 * overlap), and the totals stay as the migration left them.
 */
static int maps_sync(struct tiermm__engine *e, bool residency)
{
	struct tiermm__mapping *m = NULL;
	struct span *merged = NULL;
	struct sync_ctx sc = { 0 };
	struct collect kept = { 0 };
	size_t n = 0, nm = 0;
	int ret;

	ret = e->ops->mappings(e->env, residency, &m, &n);
	if (ret)
		return ret;
	if (!residency) {
		bool same = n == e->nmaps;

		for (size_t i = 0, j = 0; i < n; i++) {
			while (j < e->nmaps && e->maps[j].end <= m[i].start)
				j++;
			if (j < e->nmaps && e->maps[j].start == m[i].start &&
			    e->maps[j].end == m[i].end) {
				m[i].fast = e->maps[j].fast;
				m[i].slow = e->maps[j].slow;
				m[i].other = e->maps[j].other;
			} else {
				same = false;
			}
		}
		/*
		 * The layout changed (a mapping came, went, grew or was
		 * split: malloc() does that every few epochs, ours too): what
		 * did not keep its bounds gets the residency of what it
		 * overlaps, by bytes, until the next read. Reading it all
		 * again walked every page table (numa_maps, smaps: 38 ms for
		 * 512 MiB in instruction time), most epochs of a busy process.
		 */
		for (size_t i = 0, j = 0; !same && i < n; i++) {
			if (m[i].fast + m[i].slow + m[i].other)
				continue;	/* kept its bounds */
			while (j < e->nmaps && e->maps[j].end <= m[i].start)
				j++;
			for (size_t k = j; k < e->nmaps && e->maps[k].start < m[i].end; k++) {
				const struct tiermm__mapping *o = &e->maps[k];
				unsigned __int128 ov = min64(o->end, m[i].end) -
						       max64(o->start, m[i].start);
				uint64_t sz = o->end - o->start;

				m[i].fast += (uint64_t)(o->fast * ov / sz);
				m[i].slow += (uint64_t)(o->slow * ov / sz);
				m[i].other += (uint64_t)(o->other * ov / sz);
			}
		}
	}
	merged = malloc((n ? n : 1) * sizeof(*merged));
	kept.v = malloc((n ? n : 1) * sizeof(*kept.v));
	if (!merged || !kept.v) {
		ret = tiermm__fail(ENOMEM, "tiering engine: out of memory");
		goto out;
	}
	if (residency)
		e->fast_bytes = e->resident = 0;
	for (size_t i = 0; i < n; i++) {
		if (residency) {
			e->fast_bytes += m[i].fast;
			e->resident += m[i].fast + m[i].slow + m[i].other;
		}
		if (nm && merged[nm - 1].end == m[i].start)
			merged[nm - 1].end = m[i].end;
		else
			merged[nm++] = (struct span){ m[i].start, m[i].end };
	}
	/* Vanished first: the room they free may be what a new one needs. */
	sc.map = false;
	ret = subtract(e, e->spans, e->nspans, merged, nm, sync_one, &sc);
	if (!ret) {
		sc.map = true;
		ret = subtract(e, merged, nm, e->spans, e->nspans, sync_one, &sc);
	}
	if (ret) {
		ret = tiermm__fail(-ret, "tiering engine: updating the range tree: %s",
				   strerror(-ret));
		goto out;
	}
	/* The tree covers the mappings minus what it could not take. */
	e->unmanaged = 0;
	for (size_t i = 0; i < sc.nfailed; i++)
		e->unmanaged += sc.failed[i].end - sc.failed[i].start;
	subtract(e, merged, nm, sc.failed, sc.nfailed, collect_one, &kept);
	free(e->spans);
	e->spans = kept.v;
	e->nspans = kept.n;
	kept.v = NULL;
	free(e->maps);
	e->maps = m;
	e->nmaps = n;
	m = NULL;
out:
	free(m);
	free(merged);
	free(kept.v);
	free(sc.failed);
	return ret;
}

/* ---- hints (the calling process only) ---- */

static int hints_refresh(struct tiermm__engine *e)
{
	uint64_t gen;
	int ret;

	if (!e->self)
		return 0;
	gen = tiermm__hints_generation();
	if (e->hints_read && gen == e->hints_gen)
		return 0;
	free(e->hints);
	e->hints = NULL;
	e->nhints = 0;
	ret = tiermm__hints_snapshot(0, UINT64_MAX, &e->hints, &e->nhints, &gen);
	if (ret)
		return ret;
	e->hints_gen = gen;
	e->hints_read = true;
	return 0;
}

static size_t hint_first(const struct tiermm__engine *e, uint64_t addr)
{
	size_t lo = 0, hi = e->nhints;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (e->hints[mid].end <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Bytes of [a, b) under each hint. */
static void hint_overlap(const struct tiermm__engine *e, uint64_t a, uint64_t b,
			 uint64_t ov[TIERMM_HINT__COUNT])
{
	memset(ov, 0, sizeof(uint64_t) * TIERMM_HINT__COUNT);
	for (size_t i = hint_first(e, a); i < e->nhints && e->hints[i].start < b; i++) {
		const struct tiermm__hint_range *h = &e->hints[i];

		ov[h->hint] += min64(b, h->end) - max64(a, h->start);
	}
}

/*
 * Call fn for the parts of [a, b) that the hints let move to tier (all of
 * it without hints). Stops at fn's first non-zero return.
 */
static int for_allowed(struct tiermm__engine *e, uint64_t a, uint64_t b, int tier,
		       span_fn fn, void *ctx)
{
	uint64_t cur = a;
	int ret;

	for (size_t i = hint_first(e, a); i < e->nhints && e->hints[i].start < b; i++) {
		const struct tiermm__hint_range *h = &e->hints[i];

		if (tiermm__hint_allows_move(h->hint, tier, e->cfg.nr_tiers))
			continue;
		if (h->start > cur) {
			ret = fn(e, cur, h->start, ctx);
			if (ret)
				return ret;
		}
		cur = max64(cur, h->end);
		if (cur >= b)
			return 0;
	}
	return cur < b ? fn(e, cur, b, ctx) : 0;
}

/* ---- classification ---- */

static int cmp_key(const void *pa, const void *pb)
{
	const struct tiermm__range *x = pa, *y = pb;

	if (x->density != y->density)
		return x->density > y->density ? -1 : 1;
	return x->start < y->start ? -1 : x->start > y->start;
}

static int cmp_rs_id(const void *pa, const void *pb)
{
	const struct rstate *x = pa, *y = pb;

	return x->id < y->id ? -1 : x->id > y->id;
}

/* rs[] for the new ranking, carrying each surviving range's state. */
static int rstate_update(struct tiermm__engine *e, const struct tiermm__range *rk,
			 size_t n, struct rstate **out)
{
	struct rstate *old = e->rs, *rs = calloc(n ? n : 1, sizeof(*rs));

	if (!rs)
		return -ENOMEM;
	if (old && e->nrk)
		qsort(old, e->nrk, sizeof(*old), cmp_rs_id);
	for (size_t i = 0; i < n; i++) {
		struct rstate key = { .id = rk[i].id }, *f = NULL;

		if (old && e->nrk)
			f = bsearch(&key, old, e->nrk, sizeof(*old), cmp_rs_id);
		if (f)
			rs[i] = *f;
		else
			rs[i].id = rk[i].id;
	}
	*out = rs;
	return 0;
}

/* ---- page mode ---- */

/* Keep the heat blocks in line with the mappings when their layout changed. */
static int heat_sync(struct tiermm__engine *e)
{
	int ret = tiermm__heat_sync(e->heat, e->maps, e->nmaps);

	if (ret < 0)
		return tiermm__fail(ENOMEM, "tiering engine: out of memory for page counts");
	if (ret)
		e->classified_passes = UINT64_MAX;	/* the counts changed: classify */
	return 0;
}

/* Whether a hint the engine must not override covers addr (cursor *hi). */
static bool page_frozen(const struct tiermm__engine *e, uint64_t addr, size_t *hi)
{
	const struct tiermm__hint_range *h;

	if (!e->self || !e->nhints)
		return false;
	while (*hi < e->nhints && e->hints[*hi].end <= addr)
		(*hi)++;
	if (*hi >= e->nhints || e->hints[*hi].start > addr)
		return false;
	h = &e->hints[*hi];
	return h->hint == TIERMM_HINT_PIN_FAST || h->hint == TIERMM_HINT_PIN_SLOW ||
	       h->hint == TIERMM_HINT_NO_MIGRATE;
}

/*
 * Pages per count value, without those under PIN_*, NO_MIGRATE: the engine
 * cannot place them, so they take no part in the fit (PIN_FAST ones are
 * out of the budget already).
 */
static void heat_hist(const struct tiermm__engine *e, uint64_t hist[256])
{
	size_t hc = 0;

	if (!e->self || !e->nhints) {
		tiermm__heat_histogram(e->heat, hist);
		return;
	}
	memset(hist, 0, 256 * sizeof(*hist));
	for (size_t i = 0; i < e->heat->n; i++) {
		const struct tiermm__heat_block *b = &e->heat->b[i];

		for (unsigned int k = 0; k < TIERMM__HEAT_PAGES; k++)
			if ((b->valid[k / 64] & (1ULL << (k % 64))) &&
			    !page_frozen(e, b->base + k * e->ps, &hc))
				hist[b->heat[k]]++;
	}
}

/*
 * Page mode's plan: the count threshold that fits the pages above it to the
 * budget (Memtis's capacity-fitted threshold), never below HEAT_MIN.
 */
static int heat_classify(struct tiermm__engine *e, uint64_t budget)
{
	uint64_t hist[256], above = 0;
	unsigned int t;
	int ret;

	e->page_mode = e->heat->fed && e->ops->where && e->ops->move_list;
	if (!e->page_mode)
		return 0;
	ret = heat_sync(e);
	if (ret)
		return ret;
	/* Counts change only with a pass: the threshold stands until then. */
	if (e->heat_t && e->heat->passes == e->classified_passes &&
	    budget == e->classified_budget && e->hints_gen == e->classified_hints) {
		e->hot_bytes = e->heat_hot_bytes;	/* (the range plan's, until here) */
		return 0;
	}
	e->classified_passes = e->heat->passes;
	e->classified_budget = budget;
	e->classified_hints = e->hints_gen;
	heat_hist(e, hist);
	for (e->heat_max = 255; e->heat_max && !hist[e->heat_max]; e->heat_max--)
		;
	t = tiermm__heat_threshold(hist, budget / e->ps, &above);
	/*
	 * The level that did not fit whole still gets what is left of the
	 * budget (hottest first, then by address): pages that count alike
	 * (a hot set larger than the budget) are not all left out.
	 */
	if (t > 1 && t < 256 + 1 && t - 1 >= HEAT_MIN && above < budget / e->ps) {
		t--;
		above = budget / e->ps;
	}
	if (t < HEAT_MIN) {
		t = HEAT_MIN;
		above = 0;
		for (unsigned int v = t; v < 256; v++)
			above += hist[v];
	}
	e->heat_t = t;
	e->heat->plan_t = t;
	e->hot_bytes = e->heat_hot_bytes = above * e->ps;
	e->plan_heat = 0;
	for (unsigned int v = t; v < 256; v++)
		e->plan_heat += hist[v] * v;
	return 0;
}

struct page {
	uint64_t addr;
	uint8_t heat;
};

struct pages {
	struct page *v;
	size_t n, cap;
};

static int pages_add(struct pages *p, uint64_t addr, uint8_t heat)
{
	if (p->n == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 1024;
		struct page *v = realloc(p->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		p->v = v;
		p->cap = cap;
	}
	p->v[p->n++] = (struct page){ addr, heat };
	return 0;
}

/* Whether the hints let the page at addr move to tier (cursor *hi). */
static bool page_allowed(const struct tiermm__engine *e, uint64_t addr, int tier,
			 size_t *hi)
{
	if (!e->self || !e->nhints)
		return true;
	while (*hi < e->nhints && e->hints[*hi].end <= addr)
		(*hi)++;
	if (*hi < e->nhints && e->hints[*hi].start <= addr)
		return tiermm__hint_allows_move(e->hints[*hi].hint, tier, e->cfg.nr_tiers);
	return true;
}

static void where_set(struct tiermm__engine *e, uint64_t addr, uint8_t cls)
{
	struct tiermm__heat_block *b = tiermm__heat_block(e->heat, addr);
	unsigned int k = (unsigned int)((addr & (HEAT_BLOCK - 1)) / e->ps);
	bool fast = (cls & ~TIERMM__WHERE_HUGE) == TIERMM__WHERE_FAST;

	if (!b)
		return;
	b->huge = cls & TIERMM__WHERE_HUGE;
	if (b->huge) {
		/* the whole huge page went (or stayed) with it */
		for (int w = 0; w < 8; w++) {
			b->known[w] |= b->valid[w];
			b->fast[w] = fast ? b->fast[w] | b->valid[w] : b->fast[w] & ~b->valid[w];
		}
		return;
	}
	b->known[k / 64] |= 1ULL << (k % 64);
	if (fast)
		b->fast[k / 64] |= 1ULL << (k % 64);
	else
		b->fast[k / 64] &= ~(1ULL << (k % 64));
}

/* The first page of a block inside the mappings. */
static unsigned int first_valid(const struct tiermm__heat_block *b)
{
	for (int w = 0; w < 8; w++)
		if (b->valid[w])
			return (unsigned int)(w * 64 + __builtin_ctzll(b->valid[w]));
	return TIERMM__HEAT_PAGES;
}

/* Base pages an entry at addr moves: a whole huge page, or one. */
static uint64_t entry_pages(struct tiermm__engine *e, uint64_t addr)
{
	const struct tiermm__heat_block *b = tiermm__heat_block(e->heat, addr);

	return b && b->huge ? HEAT_BLOCK / e->ps : 1;
}

/*
 * Candidates for a move to tier: the pages of the managed mappings with
 * lo <= count < hi whose place is unknown or (known) on the fast tier
 * (fast true: demotions) or not (fast false: promotions), that the hints
 * let move to tier, in the order they are taken: by count, coldest first
 * for demotions and hottest first for promotions, then by address.
 * cands_take() resolves them in that order into the list of pages that
 * are where they must be to move, asking move_pages(2) about the unknown
 * ones a batch at a time, as many as the caller takes and only while the
 * pace allows: status queries are migration work (under TCG asking about
 * the 26000 pages of a hot set took 1-2 s of CPU, more than a CPU quota
 * allows in many epochs, and nothing moved until all were asked about;
 * demoting the few pages by which the fast tier was over its budget asked
 * about every page of the process, 0.35-0.6 s).
 */
struct cands {
	struct pages c;		/* the candidates, in order */
	size_t at;		/* the next one to resolve */
	bool fast;
	uint64_t last_huge;	/* the huge page of the last one taken */
};

static int cands_collect(struct tiermm__engine *e, unsigned int lo, unsigned int hi,
			 bool fast, int tier, struct cands *cd)
{
	struct pages all = { 0 };
	size_t hc = 0, at[257] = { 0 };
	int ret = 0;

	free(cd->c.v);
	*cd = (struct cands){ .fast = fast, .last_huge = UINT64_MAX };
	for (size_t i = 0; i < e->heat->n; i++) {
		const struct tiermm__heat_block *b = &e->heat->b[i];

		for (unsigned int k = 0; k < TIERMM__HEAT_PAGES; k++) {
			uint64_t bit = 1ULL << (k % 64), addr = b->base + k * e->ps;

			if (!(b->valid[k / 64] & bit))
				continue;
			/* a huge page is one entry: its first page (all count alike) */
			if (b->huge && k != first_valid(b))
				break;
			if (b->heat[k] < lo || b->heat[k] >= hi)
				continue;
			if ((b->known[k / 64] & bit) && !!(b->fast[k / 64] & bit) != fast)
				continue;
			if (!page_allowed(e, addr, tier, &hc))
				continue;
			ret = pages_add(&all, addr, b->heat[k]);
			if (ret)
				goto out;
		}
	}
	if (!all.n)
		goto out;
	/* by count (a counting sort of what came in address order) */
	cd->c.v = malloc(all.n * sizeof(*cd->c.v));
	if (!cd->c.v) {
		ret = -ENOMEM;
		goto out;
	}
	cd->c.n = cd->c.cap = all.n;
	for (size_t i = 0; i < all.n; i++)
		at[(fast ? all.v[i].heat : 255 - all.v[i].heat) + 1]++;
	for (int r = 0; r < 256; r++)
		at[r + 1] += at[r];
	for (size_t i = 0; i < all.n; i++)
		cd->c.v[at[fast ? all.v[i].heat : 255 - all.v[i].heat]++] = all.v[i];
out:
	free(all.v);
	return ret == -ENOMEM ? tiermm__fail(ENOMEM, "tiering engine: out of memory") : ret;
}

static bool page_known(const struct tiermm__engine *e, uint64_t addr, bool *fast)
{
	const struct tiermm__heat_block *b = tiermm__heat_block(e->heat, addr);
	unsigned int k = (unsigned int)((addr & (HEAT_BLOCK - 1)) / e->ps);

	if (!b || !(b->known[k / 64] & (1ULL << (k % 64))))
		return false;
	*fast = b->fast[k / 64] & (1ULL << (k % 64));
	return true;
}

/*
 * Up to want more pages of cd onto out, in order: those known to be where
 * they must be, and unknown ones that a status query finds there (at most
 * QUERY_MAX queries an epoch); stopped by the pace, *paced is set.
 */
static int cands_take(struct tiermm__engine *e, struct cands *cd, size_t want,
		      const struct tiermm__pace *pace, bool *paced, uint64_t *queried,
		      struct pages *out)
{
	size_t goal = out->n + want;
	int ret = 0;

	while (out->n < goal && cd->at < cd->c.n && !*paced) {
		uint64_t addrs[512];
		uint8_t cls[512];
		size_t idx[512], m = 0, end = cd->at;

		/*
		 * The next candidates, as many as are still wanted (each is
		 * one page at most), up to 512 unknown ones among them.
		 */
		for (; end < cd->c.n && m < 512 && end - cd->at < goal - out->n; end++) {
			bool fast;

			if (!page_known(e, cd->c.v[end].addr, &fast)) {
				idx[m] = end;
				addrs[m++] = cd->c.v[end].addr;
			}
		}
		if (m) {
			if (*queried + m > QUERY_MAX) {
				cd->at = cd->c.n;	/* enough asked this epoch */
				break;
			}
			if (pace->allow(pace->ctx) < e->ps) {
				*paced = true;
				break;
			}
			uint64_t t0 = tiermm__thread_cpu_ns();

			ret = e->ops->where(e->env, addrs, m, cls);
			e->c.query_ns += tiermm__thread_cpu_ns() - t0;
			if (ret)
				return ret;
			*queried += m;
			e->c.queried += m;
			for (size_t j = 0; j < m; j++)
				where_set(e, addrs[j], cls[j]);
		}
		for (size_t j = 0; cd->at < end; cd->at++) {
			const struct page *p = &cd->c.v[cd->at];
			uint64_t blk = p->addr & ~(HEAT_BLOCK - 1);
			bool fast, huge = false;

			if (j < m && idx[j] == cd->at) {
				uint8_t c = cls[j] & ~TIERMM__WHERE_HUGE;

				huge = cls[j++] & TIERMM__WHERE_HUGE;
				if (c == TIERMM__WHERE_OTHER)
					continue;
				fast = c == TIERMM__WHERE_FAST;
			} else if (!page_known(e, p->addr, &fast)) {
				continue;	/* (cannot be: asked about above) */
			}
			if (fast != cd->fast)
				continue;
			/* one entry per huge page */
			if (huge && blk == cd->last_huge)
				continue;
			if (huge)
				cd->last_huge = blk;
			ret = pages_add(out, p->addr, p->heat);
			if (ret)
				return tiermm__fail(ENOMEM, "tiering engine: out of memory");
		}
	}
	return 0;
}

/* Move up to want pages of p (from *next on) to tier; the bytes moved. */
static int heat_move(struct tiermm__engine *e, const struct tiermm__pace *pace,
		     struct pages *p, size_t *next, uint64_t want, int tier,
		     uint64_t *moved_bytes, bool *paced)
{
	uint64_t addrs[512];
	uint8_t cls[512];

	*moved_bytes = 0;
	while (want && *next < p->n) {
		uint64_t allow = pace->allow(pace->ctx), k = p->n - *next, lim, j, pages;
		struct tiermm_move_result r;
		uint64_t t0;
		int ret;

		if (allow < e->ps) {
			*paced = true;
			return 0;
		}
		/* entries while their pages fit: a huge page counts 512 */
		lim = min64(want, allow / e->ps);
		k = min64(k, 512);
		for (j = 0, pages = 0; j < k; j++) {
			uint64_t w = entry_pages(e, p->v[*next + j].addr);

			if (pages + w > lim)
				break;
			pages += w;
			addrs[j] = p->v[*next + j].addr;
		}
		if (!j) {
			uint64_t w = entry_pages(e, p->v[*next].addr);

			/*
			 * A huge page larger than what is left. Demoting, it
			 * goes whole if the pace allows: more room than asked
			 * for, where stopping left a promotion waiting for room
			 * that pages smaller than a huge page never make.
			 */
			if (tier == e->cfg.fast_tier || w > allow / e->ps) {
				if (allow / e->ps < want)
					*paced = true;
				return 0;
			}
			addrs[0] = p->v[*next].addr;
			j = 1;
			pages = w;
		}
		k = j;
		t0 = tiermm__thread_cpu_ns();
		ret = e->ops->move_list(e->env, addrs, k, tier, cls, &r);
		e->c.move_ns += tiermm__thread_cpu_ns() - t0;
		if (ret)
			return ret;
		for (j = 0; j < k; j++) {
			uint64_t h = (uint64_t)p->v[*next + j].heat *
				     entry_pages(e, addrs[j]);

			where_set(e, addrs[j], cls[j]);
			/* the heat that moved: what the status says is there now */
			if (tier == e->cfg.fast_tier &&
			    (cls[j] & ~TIERMM__WHERE_HUGE) == TIERMM__WHERE_FAST)
				e->gain_up += h;
			else if (tier != e->cfg.fast_tier &&
				 (cls[j] & ~TIERMM__WHERE_HUGE) == TIERMM__WHERE_SLOW)
				e->gain_down += h;
		}
		*next += k;
		/*
		 * What moved may be more than the entries' weight: a page the
		 * engine did not know to be inside a transparent huge page
		 * takes the whole huge page along (move_list() counts 512).
		 */
		want -= min64(want, max64(pages, r.moved));
		if (pace->used)
			pace->used(pace->ctx, r.moved * e->ps);
		*moved_bytes += r.moved * e->ps;
		if (tier == e->cfg.fast_tier)
			e->c.promoted += r.moved;
		else
			e->c.demoted += r.moved;
		e->c.failed += r.failed;
		e->c.busy += r.failed_busy;
		e->c.nomem += r.failed_nomem;
		e->c.fault += r.failed_fault;
		e->c.other += r.failed_other;
		if (r.failed_nomem)
			break;	/* the tier is full: no use going on */
	}
	return 0;
}

/*
 * What a page counting heat may displace from the fast tier: pages counting
 * less than half as much, SWAP_GAP less, and less by SWAP_Z standard
 * deviations of the difference, were both as popular as they look.
 * Why the last: a count is STEP times a decayed sum of reports that each
 * saw the page with a probability p; with 16 reports a decay period its
 * mean is HEAT_FULL x p and its variance about STEP x 2/3 x count x (1 - p)
 * (the weights' sum of squares over their sum: 21.3 / 32). Pages of equal
 * popularity (GUPS's cold ones: all of them, on both tiers) spread by that
 * noise, and each epoch the top of 100,000 slow-tier pages met the bottom of
 * 17,000 fast-tier ones, 8 to 9 standard deviations of one count apart:
 * with the fixed gaps alone they traded places at every settled epoch, a
 * thousand pages each time and most of a settled runtime's CPU
 * (tierbench1, instruction time). A page seen in every report (p = 1) has
 * no noise, so a hot page still displaces a cold one at once.
 * The rule also stops trades after a shift until the old hot pages have
 * cooled: settled, the passes that cool them come slowly, so settling
 * needs its own shift detector (tiermm__engine_misplaced()).
 */
#define HEAT_FULL (2 * TIERMM__HEAT_DECAY_PASSES * TIERMM__HEAT_STEP)
#define SWAP_Z 5.0

static double heat_var(unsigned int c)
{
	double p = c >= HEAT_FULL ? 1.0 : (double)c / HEAT_FULL;

	return TIERMM__HEAT_STEP * 2.0 / 3.0 * c * (1.0 - p);
}

static unsigned int swap_limit_of(unsigned int heat)
{
	unsigned int v;

	if (heat <= SWAP_GAP)
		return 0;
	v = heat - SWAP_GAP < heat / 2 ? heat - SWAP_GAP : heat / 2;
	while (v && (double)(heat - (v - 1)) <
		    SWAP_Z * sqrt(heat_var(heat) + heat_var(v - 1)))
		v--;
	return v;
}

static unsigned int swap_limit(const struct tiermm__engine *e, unsigned int heat)
{
	return e->swap_lim[heat > 255 ? 255 : heat];
}

/*
 * Page mode's migration: over the budget (it shrank, or pages were faulted
 * in on the fast tier), fast-tier pages counting less than heat_t leave it,
 * coldest first, down to the budget; then the slow-tier pages counting
 * heat_t or more onto the fast tier, hottest first, within the budget and
 * the tier's free memory; to make room, fast-tier pages leave it, coldest
 * first, each for a page that may displace it (swap_limit(): the
 * hysteresis), as many as the promotions need. A migration the pace cut
 * short goes on at the next epoch even without a new pass; one the tier's
 * memory cut short (ENOMEM) stops promoting.
 */
static int heat_migrate(struct tiermm__engine *e, const struct tiermm__pace *pace,
			struct tier_state *ts)
{
	struct pages up = { 0 }, down = { 0 };
	struct cands upc = { 0 }, downc = { 0 };
	uint64_t queried = 0, room, got, nomem;
	size_t ui = 0, di = 0;
	bool paced = false, down_collected = false;
	int ret;

	/* Nothing new since the last epoch (a slow scanner): nothing to do. */
	if (e->heat->passes == e->heat_passes && ts->fast <= e->budget)
		return 0;
	if (ts->fast > e->budget) {
		uint64_t over = (ts->fast - e->budget + e->ps - 1) / e->ps;

		/*
		 * heat_t's own level too: when it overflowed the budget, what
		 * is over is among its pages (coldest first takes them last).
		 */
		ret = cands_collect(e, 0, e->heat_t + 1, true, e->cfg.slow_tier, &downc);
		if (!ret)
			ret = cands_take(e, &downc, over, pace, &paced, &queried, &down);
		if (ret)
			goto out;
		ret = heat_move(e, pace, &down, &di, over, e->cfg.slow_tier, &got, &paced);
		if (ret)
			goto out;
		ts->fast -= min64(got, ts->fast);
		ts->free += got;
		if (paced) {
			ret = 1;
			goto out;
		}
		down.n = di = 0;
	}
	room = e->budget > ts->fast ? e->budget - ts->fast : 0;
	room = min64(room, ts->free);
	/*
	 * No room, and no page hot enough to make some (the hysteresis):
	 * nothing can move, so nothing is asked about (under a CPU quota, few
	 * passes a second: for the first seconds the counts are too low).
	 */
	if (room < e->ps && !swap_limit(e, e->heat_max))
		goto out;
	ret = cands_collect(e, e->heat_t, 256, false, e->cfg.fast_tier, &upc);
	if (ret)
		goto out;
	while (!paced) {
		size_t nb, fits, k;
		uint64_t fp = 0, kp = 0;

		/* The next batch of pages to promote, hottest first. */
		if (up.n - ui < 512) {
			ret = cands_take(e, &upc, 512 - (up.n - ui), pace, &paced, &queried, &up);
			if (ret)
				goto out;
		}
		nb = min64(up.n - ui, 512);
		if (!nb)
			break;
		/* Entries whose pages fit in the room (a huge page weighs 512). */
		for (fits = 0; fits < nb; fits++) {
			uint64_t w = entry_pages(e, up.v[ui + fits].addr);

			if (fp + w > room / e->ps)
				break;
			fp += w;
		}
		if (fits < nb) {
			/*
			 * Room to make: pages to demote, coldest first, below
			 * the most the hottest candidate may displace.
			 */
			if (!down_collected) {
				ret = cands_collect(e, 0, swap_limit(e, upc.c.v[0].heat), true,
						    e->cfg.slow_tier, &downc);
				if (ret)
					goto out;
				down_collected = true;
			}
			if (down.n - di < nb - fits) {
				ret = cands_take(e, &downc, nb - fits - (down.n - di), pace,
						 &paced, &queried, &down);
				if (ret)
					goto out;
			}
		}

		/*
		 * Past the room, page by page, the next one comes in only if
		 * the coldest page left may leave for it (both sorted: the
		 * first pair that may not ends the batch).
		 */
		for (k = fits; k < nb; k++)
			if (di + k - fits >= down.n ||
			    down.v[di + k - fits].heat >= swap_limit(e, up.v[ui + k].heat))
				break;
		if (!k)
			break;	/* no room, and none to make for pages this cool */
		if (k > fits) {
			ret = heat_move(e, pace, &down, &di, k - fits,
					e->cfg.slow_tier, &got, &paced);
			if (ret)
				goto out;
			ts->fast -= min64(got, ts->fast);
			ts->free += got;
			room += got;
			if (paced)
				break;
		}
		if (room < e->ps)
			break;
		nomem = e->c.nomem;
		/* heat_move() takes pages, not entries */
		for (size_t j = 0; j < k; j++)
			kp += entry_pages(e, up.v[ui + j].addr);
		ret = heat_move(e, pace, &up, &ui, min64(kp, room / e->ps),
				e->cfg.fast_tier, &got, &paced);
		if (ret)
			goto out;
		ts->fast += got;
		ts->free -= min64(got, ts->free);
		room -= min64(got, room);
		if (e->c.nomem != nomem)
			break;	/* the tier is full, whatever its free memory said */
		if (!got)
			break;	/* no room, and none to make for pages this cool */
	}
	ret = paced ? 1 : 0;
out:
	/* Done with these passes, unless cut short by the pace or an error. */
	if (!ret)
		e->heat_passes = e->heat->passes;
	free(up.v);
	free(down.v);
	free(upc.c.v);
	free(downc.c.v);
	return ret;
}

/*
 * Page mode's shift detector: how much of the heat the plan puts on the fast
 * tier is elsewhere, in per mille. Each page counting heat_t or more that
 * the hints let onto the fast tier weighs its count in the whole; if it is
 * not known to be on the fast tier (known elsewhere, or not asked about
 * since the last re-check), what it counts above the threshold weighs in
 * the part misplaced: at most what the placement loses on it, since the
 * fast-tier page it would displace counts less than heat_t. Noise at the
 * threshold (pages of one popularity, trading places or kept from it by
 * swap_limit()) weighs little there, a hot set that moved weighs its
 * counts. Asked after the epoch's migration (which asked where the plan's
 * pages are, also after the re-check forgot it): pages it could not move
 * stay misplaced (in a shift, the old hot pages' counts block them until
 * they have cooled).
 */
double tiermm__engine_plan_share(struct tiermm__engine *e)
{
	double v = tiermm__engine_plan_share_now(e);

	e->heat->plan_share = NAN;
	return v;
}

double tiermm__engine_plan_share_now(const struct tiermm__engine *e)
{
	return e->page_mode && e->heat_t ? e->heat->plan_share : NAN;
}

double tiermm__engine_gain_share(const struct tiermm__engine *e)
{
	if (!e->page_mode || !e->heat_t || !e->plan_heat)
		return NAN;
	return ((double)e->gain_up - (double)e->gain_down) / (double)e->plan_heat;
}

unsigned int tiermm__engine_misplaced(const struct tiermm__engine *e)
{
	uint64_t total = 0, excess = 0;
	unsigned int t = e->heat_t;
	size_t hc = 0;

	if (!e->page_mode || !t)
		return 0;
	for (size_t i = 0; i < e->heat->n; i++) {
		const struct tiermm__heat_block *b = &e->heat->b[i];

		for (int w = 0; w < 8; w++) {
			uint64_t v = b->valid[w];

			while (v) {
				unsigned int k = (unsigned int)(w * 64 + __builtin_ctzll(v));
				unsigned int h = b->heat[k];

				v &= v - 1;
				if (h < t || !page_allowed(e, b->base + k * e->ps,
							   e->cfg.fast_tier, &hc))
					continue;
				total += h;
				if (!(b->known[w] & b->fast[w] & (1ULL << (k % 64))))
					excess += h - t + 1;
			}
		}
	}
	return total ? (unsigned int)(excess * 1000 / total) : 0;
}

/*
 * NO_MIGRATE memory on the fast tier stays there, so it takes budget that
 * the plan cannot give to hot ranges, like PIN_FAST memory. How much: a
 * status query of up to NM_SAMPLE pages spread over each NO_MIGRATE range,
 * again when the hints change or every REVERIFY_EPOCHS epochs. Without
 * status queries (a test environment), none is counted.
 */
#define NM_SAMPLE 256

static uint64_t nomigrate_fast(struct tiermm__engine *e)
{
	uint64_t addrs[NM_SAMPLE], total = 0;
	uint8_t cls[NM_SAMPLE];

	if (!e->ops->where)
		return 0;
	if (e->nm_epoch && e->nm_gen == e->hints_gen &&
	    e->epoch - e->nm_epoch < REVERIFY_EPOCHS)
		return e->nm_fast;
	for (size_t i = 0; i < e->nhints; i++) {
		const struct tiermm__hint_range *h = &e->hints[i];
		uint64_t pages = (h->end - h->start) / e->ps, step, fast = 0;
		size_t m;

		if (h->hint != TIERMM_HINT_NO_MIGRATE || !pages)
			continue;
		m = pages < NM_SAMPLE ? pages : NM_SAMPLE;
		step = pages / m;
		for (size_t j = 0; j < m; j++)
			addrs[j] = h->start + j * step * e->ps;
		if (e->ops->where(e->env, addrs, m, cls))
			return 0;	/* (the process is gone: the epoch ends anyway) */
		for (size_t j = 0; j < m; j++)
			fast += (cls[j] & ~TIERMM__WHERE_HUGE) == TIERMM__WHERE_FAST;
		total += (h->end - h->start) / m * fast;
	}
	e->nm_fast = total;
	e->nm_epoch = e->epoch;
	e->nm_gen = e->hints_gen;
	return total;
}

int tiermm__engine_classify(struct tiermm__engine *e,
			    const struct tiermm__budget_req *req, uint64_t capacity)
{
	struct tiermm__range *rk = NULL;
	struct rstate *rs = NULL;
	uint64_t *hot = NULL, pinned_fast = 0, plan_budget, t0;
	unsigned int every;
	size_t n = 0;
	int ret;

	e->epoch++;
	/*
	 * Page mode reads the residency every RESIDENCY_EPOCHS base epochs
	 * (4 s at 500 ms), also when the epochs are longer: pages the
	 * process faults in on the fast tier count in its budget.
	 */
	every = e->pace < RESIDENCY_EPOCHS ? RESIDENCY_EPOCHS / e->pace : 1;
	t0 = tiermm__thread_cpu_ns();
	ret = maps_sync(e, !e->page_mode || e->epoch % every == 0);
	e->c.maps_ns = tiermm__thread_cpu_ns() - t0;
	if (ret)
		return ret;
	ret = tiermm__rtree_epoch(e->tree);
	if (ret)
		tiermm__log(TIERMM_LOG_WARN, "tiering engine: %s", tiermm_errmsg());
	ret = hints_refresh(e);
	if (ret)
		return ret;
	ret = tiermm__rtree_ranked(e->tree, &rk, &n);
	if (ret)
		return ret;
	hot = calloc(n ? n : 1, sizeof(*hot));
	if (!hot) {
		free(rk);
		return tiermm__fail(ENOMEM, "tiering engine: out of memory for the plan");
	}

	/* The budget in force. */
	if (req->share > 0)
		e->budget = (uint64_t)(req->share * (double)e->resident);
	else
		e->budget = req->bytes;
	if (capacity && e->budget > capacity)
		e->budget = capacity;

	/* The hints' part. */
	e->hinted = 0;
	for (size_t i = 0; i < n && e->nhints; i++) {
		struct tiermm__range *r = &rk[i];
		uint64_t ov[TIERMM_HINT__COUNT], size = r->end - r->start, frozen;
		double bias;

		hint_overlap(e, r->start, r->end, ov);
		frozen = ov[TIERMM_HINT_PIN_FAST] + ov[TIERMM_HINT_PIN_SLOW] +
			 ov[TIERMM_HINT_NO_MIGRATE];
		e->hinted += frozen;
		if (e->cfg.fast_tier == 0)
			pinned_fast += ov[TIERMM_HINT_PIN_FAST];
		if (frozen >= size) {
			r->count = r->density = 0;
			r->hot = 0;
			continue;
		}
		bias = (1 + (HINT_BIAS - 1) * (double)ov[TIERMM_HINT_HOT] / (double)size) /
		       (1 + (HINT_BIAS - 1) * (double)ov[TIERMM_HINT_COLD] / (double)size);
		r->density *= bias;
		r->count *= bias;
	}
	/*
	 * Less than one observation an epoch is noise (the first touch of
	 * memory that is never used again decays for tens of epochs): not
	 * worth a promotion. Incumbents keep their place by the hysteresis.
	 */
	for (size_t i = 0; i < n; i++)
		if (!rk[i].hot && rk[i].count < NOISE_FLOOR)
			rk[i].count = 0;
	if (e->nhints)
		qsort(rk, n, sizeof(*rk), cmp_key);
	if (rstate_update(e, rk, n, &rs)) {
		free(rk);
		free(hot);
		return tiermm__fail(ENOMEM, "tiering engine: out of memory for the plan");
	}
	if (e->nhints)
		pinned_fast += nomigrate_fast(e);
	plan_budget = e->budget > pinned_fast ? e->budget - pinned_fast : 0;
	e->hot_bytes = tiermm__fit_hot_set(rk, n, plan_budget, 0, hot);
	ret = tiermm__rtree_set_hot(e->tree, rk, n, hot);
	if (ret < 0)
		tiermm__log(TIERMM_LOG_WARN, "tiering engine: %s", tiermm_errmsg());
	for (size_t i = 0; i < n; i++)
		rk[i].hot = hot[i];
	t0 = tiermm__thread_cpu_ns();
	ret = heat_classify(e, plan_budget);
	e->c.heat_ns = tiermm__thread_cpu_ns() - t0;
	/* page mode: the hot pages are the plan; how many of them changes */
	if (!ret && e->page_mode) {
		e->plan_changed = e->hot_bytes > e->heat_hot_prev ?
				  e->hot_bytes - e->heat_hot_prev :
				  e->heat_hot_prev - e->hot_bytes;
		e->heat_hot_prev = e->hot_bytes;
	} else if (!ret) {
		ret = plan_diff(e, rk, hot, n);
	}
	if (ret) {
		free(rk);
		free(hot);
		free(rs);
		return ret;
	}
	free(e->rk);
	free(e->hot);
	free(e->rs);
	e->rk = rk;
	e->hot = hot;
	e->rs = rs;
	e->nrk = n;
	return 0;
}

/* ---- migration ---- */

enum move_kind { TO_FAST, TO_SLOW };


struct mctx {
	const struct tiermm__pace *pace;
	enum move_kind kind;
	bool budgeted;		/* promotions stop at the budget */
	struct tier_state *ts;
	int64_t goal;		/* demotions: bytes still to free */
	bool paced_out, room_out;
	bool room_cap;		/* the last window was capped by the room left */
	/* per move call */
	struct tiermm__move_ctl *ctl;
	uint64_t seen, from_seen;
	/* the last span moved */
	uint64_t resume, end;
	uint64_t moved, failed_busy;
};

static void account(struct tiermm__engine *e, struct mctx *m,
		    const struct tiermm_move_result *r)
{
	uint64_t d = (r->moved - m->seen) * e->ps;
	uint64_t df = (m->ctl->moved_from - m->from_seen) * e->ps;

	m->seen = r->moved;
	m->from_seen = m->ctl->moved_from;
	if (d && m->pace->used)
		m->pace->used(m->pace->ctx, d);
	if (m->kind == TO_FAST) {
		m->ts->fast += d;
		m->ts->free -= min64(d, m->ts->free);
	} else {
		m->ts->fast -= min64(df, m->ts->fast);
		m->ts->free += df;
		m->goal -= (int64_t)df;
	}
}

struct wctx {
	struct tiermm__engine *e;
	struct mctx *m;
};

static uint64_t window_cb(void *ctx, const struct tiermm_move_result *sofar)
{
	struct wctx *w = ctx;
	struct mctx *m = w->m;
	uint64_t cap;

	account(w->e, m, sofar);
	if (m->kind == TO_SLOW && m->goal <= 0)
		return 0;
	cap = m->pace->allow(m->pace->ctx);
	if (!cap) {
		m->paced_out = true;
		return 0;
	}
	if (m->kind == TO_FAST && m->budgeted) {
		uint64_t room = w->e->budget > m->ts->fast ? w->e->budget - m->ts->fast : 0;

		if (room > m->ts->free)
			room = m->ts->free;
		if (room < w->e->ps) {
			m->room_out = true;
			return 0;
		}
		m->room_cap = room < cap;
		cap = min64(cap, room);
	}
	if (m->kind == TO_SLOW && m->goal != INT64_MAX)
		cap = min64(cap, max64((uint64_t)m->goal, HUGE_BYTES));
	return min64(cap, WINDOW_MAX);
}

static int move_one(struct tiermm__engine *e, uint64_t a, uint64_t b, void *ctx)
{
	struct mctx *m = ctx;
	struct wctx w = { e, m };
	struct tiermm__move_ctl ctl = {
		.window = window_cb,
		.ctx = &w,
		.from_nodes = m->kind == TO_SLOW ? e->fast_nodes : NULL,
	};
	struct tiermm_move_result r;
	int tier = m->kind == TO_FAST ? e->cfg.fast_tier : e->cfg.slow_tier;
	int ret;

	memset(&r, 0, sizeof(r));
	r.sz = sizeof(r);
	m->ctl = &ctl;
	m->seen = m->from_seen = 0;
	m->room_cap = false;
	ret = e->ops->move(e->env, a, b, tier, &ctl, &r);
	account(e, m, &r);
	/*
	 * Stopped by an entry (a huge page) larger than the window allowed:
	 * out of room if the room capped it, else out of tokens.
	 */
	if (!ret && ctl.stopped && !m->paced_out && !m->room_out &&
	    !(m->kind == TO_SLOW && m->goal <= 0)) {
		if (m->room_cap)
			m->room_out = true;
		else
			m->paced_out = true;
	}
	m->ctl = NULL;
	m->resume = ret ? a : ctl.resume;
	m->end = b;
	if (m->kind == TO_FAST)
		e->c.promoted += r.moved;
	else
		e->c.demoted += r.moved;
	e->c.failed += r.failed;
	e->c.busy += r.failed_busy;
	e->c.nomem += r.failed_nomem;
	e->c.fault += r.failed_fault;
	e->c.other += r.failed_other;
	m->moved += r.moved;
	m->failed_busy += r.failed_busy;
	if (ret)
		return ret;
	if (ctl.stopped || m->paced_out || m->room_out ||
	    (m->kind == TO_SLOW && m->goal <= 0))
		return 1;	/* stop the walk */
	return 0;
}

/* Move the allowed parts of [a, b); 1 if stopped early, 0 done, -errno. */
static int move_span(struct tiermm__engine *e, struct mctx *m, uint64_t a,
		     uint64_t b)
{
	int tier = m->kind == TO_FAST ? e->cfg.fast_tier : e->cfg.slow_tier;

	m->moved = m->failed_busy = 0;
	if (e->self && e->nhints)
		return for_allowed(e, a, b, tier, move_one, m);
	return move_one(e, a, b, m);
}

/* 1. Pinned ranges to their tiers, where pages are elsewhere. */
static int pin_pass(struct tiermm__engine *e, struct mctx *fast, struct mctx *slow)
{
	if (!e->self || !e->nhints)
		return 0;
	if (e->pins_done && e->pin_gen == e->hints_gen &&
	    e->epoch - e->pin_epoch < REVERIFY_EPOCHS)
		return 0;
	for (size_t i = 0; i < e->nhints; i++) {
		const struct tiermm__hint_range *h = &e->hints[i];
		struct mctx *m;
		int tier;

		if (h->hint == TIERMM_HINT_PIN_FAST)
			m = fast;
		else if (h->hint == TIERMM_HINT_PIN_SLOW)
			m = slow;
		else
			continue;
		tier = m->kind == TO_FAST ? e->cfg.fast_tier : e->cfg.slow_tier;
		if (!tiermm__hint_allows_move(h->hint, tier, e->cfg.nr_tiers))
			continue;
		/* The managed parts of the pin whose mappings hold misplaced pages. */
		for (size_t s = 0; s < e->nspans; s++) {
			uint64_t a = max64(h->start, e->spans[s].start);
			uint64_t b = min64(h->end, e->spans[s].end);
			double est[2];
			bool any[2];
			int ret;

			if (a >= b)
				continue;
			resid(e, a, b, est, any);
			if (m->kind == TO_FAST ? !any[1] : !any[0])
				continue;
			ret = move_one(e, a, b, m);
			if (ret < 0)
				return ret;
			if (m->paced_out)
				return 1;
		}
	}
	e->pins_done = true;
	e->pin_gen = e->hints_gen;
	e->pin_epoch = e->epoch;
	return 0;
}

/*
 * 2. Cold pages off the fast tier, coldest ranges first, until m->goal
 * bytes left it. Returns 1 if paced out, 0, or -errno.
 */
static int demote_pass(struct tiermm__engine *e, struct mctx *m)
{
	for (int pass = 0; pass < 2 && m->goal > 0; pass++) {
		for (size_t k = e->nrk; k-- > 0 && m->goal > 0;) {
			const struct tiermm__range *r = &e->rk[k];
			struct rstate *st = &e->rs[k];
			uint64_t a = r->start + e->hot[k];
			bool settled = st->cold_epoch && st->cold_from <= a &&
				       e->epoch - st->cold_epoch < REVERIFY_EPOCHS;
			double est[2];
			bool any[2];
			int ret;

			if (a >= r->end || settled != (pass == 1))
				continue;
			resid(e, a, r->end, est, any);
			if (any[0]) {
				ret = move_span(e, m, a, r->end);
				if (ret < 0)
					return ret;
				if (m->paced_out)
					return 1;
				if (ret)
					continue;	/* goal met, or a huge page too many */
			}
			st->cold_from = a;
			st->cold_epoch = e->epoch;
		}
	}
	return 0;
}

/*
 * 3. Hot pages onto the fast tier, densest ranges first, within the budget
 * and the tier's free memory; when they run out, cold pages are demoted to
 * make room for the rest of the span, MAKE_ROOM_CHUNK at a time (at most
 * MAKE_ROOM_ROUNDS times an epoch), and the span goes on where it stopped.
 * Returns 1 if paced out or out of rounds (more next epoch), 0, or -errno.
 */
static int promote_pass(struct tiermm__engine *e, struct mctx *m, struct mctx *slow)
{
	int rounds = 0;

	for (size_t k = 0; k < e->nrk; k++) {
		const struct tiermm__range *r = &e->rk[k];
		struct rstate *st = &e->rs[k];
		uint64_t b = r->start + e->hot[k], from = r->start;
		double est[2];
		bool any[2];
		int ret;

		if (!e->hot[k])
			continue;
		if (st->hot_epoch && st->hot_done >= e->hot[k] &&
		    e->epoch - st->hot_epoch < REVERIFY_EPOCHS)
			continue;
		resid(e, r->start, b, est, any);
		if (any[1]) {
again:
			ret = move_span(e, m, from, b);
			if (ret < 0)
				return ret;
			if (m->paced_out)
				return 1;
			if (m->room_out) {
				int64_t before;

				if (rounds++ >= MAKE_ROOM_ROUNDS)
					return 1;	/* more next epoch */
				/*
				 * Room for the rest of this span, from the coldest,
				 * a chunk at a time (the rest may be partly on the
				 * fast tier already).
				 */
				if (m->resume > from && m->resume < b)
					from = m->resume;
				slow->goal = (int64_t)min64(max64(b - from, HUGE_BYTES),
							    MAKE_ROOM_CHUNK);
				before = slow->goal;
				ret = demote_pass(e, slow);
				if (ret)
					return ret;
				if (slow->goal == before)
					return 0;	/* nothing left to demote */
				m->room_out = false;
				goto again;
			}
			if (ret)
				continue;
			if (m->failed_busy && ++st->tries < PROMOTE_TRIES)
				continue;	/* busy pages: again next epoch */
		}
		st->tries = 0;
		st->hot_done = e->hot[k];
		st->hot_epoch = e->epoch;
	}
	return 0;
}

int tiermm__engine_migrate(struct tiermm__engine *e, const struct tiermm__pace *pace)
{
	struct tier_state ts;
	struct mctx fast = { .pace = pace, .kind = TO_FAST, .budgeted = true, .ts = &ts };
	struct mctx slow = { .pace = pace, .kind = TO_SLOW, .ts = &ts };
	struct mctx pin_fast = { .pace = pace, .kind = TO_FAST, .ts = &ts };
	struct mctx pin_slow = { .pace = pace, .kind = TO_SLOW, .ts = &ts,
				 .goal = INT64_MAX };
	uint64_t fast0 = e->fast_bytes, p0 = e->c.promoted, d0 = e->c.demoted;
	uint64_t q0 = e->c.queried, qn0 = e->c.query_ns, mn0 = e->c.move_ns;
	uint64_t t0 = tiermm__thread_cpu_ns();
	int ret;

	e->ops->epoch(e->env);
	e->gain_up = e->gain_down = 0;
	ts.fast = e->fast_bytes;
	ts.free = e->ops->tier_free(e->env, e->cfg.fast_tier);
	/*
	 * Where pages are is re-checked (forgotten, asked again) at the start
	 * of a migration that has new passes to act on, so that
	 * tiermm__engine_misplaced() after it sees what it asked about.
	 */
	if (e->page_mode && e->epoch % REVERIFY_EPOCHS == 0)
		e->reverify = true;
	if (e->reverify && e->heat->passes != e->heat_passes) {
		tiermm__heat_forget_where(e->heat);
		e->reverify = false;
	}
	ret = pin_pass(e, &pin_fast, &pin_slow);
	if (ret)
		goto out;
	if (e->page_mode) {
		ret = heat_migrate(e, pace, &ts);
		goto out;
	}
	/* Over the budget (it shrank, or pages were faulted in): demote. */
	if (ts.fast > e->budget) {
		slow.goal = (int64_t)(ts.fast - e->budget);
		ret = demote_pass(e, &slow);
		if (ret)
			goto out;
	}
	ret = promote_pass(e, &fast, &slow);
out:
	e->fast_bytes = ts.fast;
	tiermm__log(TIERMM_LOG_DEBUG,
		    "tiering engine: epoch %" PRIu64 ": hot set %.1f MiB of %.1f MiB budget; fast tier %.1f -> %.1f MiB; %" PRIu64 " pages promoted, %" PRIu64 " demoted%s; %s mode (threshold %u, %" PRIu64 " passes); %" PRIu64 " pages asked about; CPU %.1f ms (queries %.1f, moves %.1f); classification: maps %.1f ms, counts %.1f ms",
		    e->epoch, (double)e->hot_bytes / 1048576, (double)e->budget / 1048576,
		    (double)fast0 / 1048576, (double)ts.fast / 1048576, e->c.promoted - p0,
		    e->c.demoted - d0, ret == 1 ? " (paced)" : "",
		    e->page_mode ? "page" : "range", e->heat_t, e->heat->passes,
		    e->c.queried - q0, (double)(tiermm__thread_cpu_ns() - t0) / 1e6,
		    (double)(e->c.query_ns - qn0) / 1e6, (double)(e->c.move_ns - mn0) / 1e6,
		    (double)e->c.maps_ns / 1e6, (double)e->c.heat_ns / 1e6);
	return ret;
}

/* ---- life cycle and counters ---- */

int tiermm__engine_new(const struct tiermm__engine_cfg *cfg,
		       const struct tiermm__env_ops *ops, void *arg,
		       struct tiermm__engine **out)
{
	struct tiermm__rtree_params p = { .nr_cpus = cfg->nr_cpus };
	struct tiermm__engine *e;
	int ret, nn;

	*out = NULL;
	e = calloc(1, sizeof(*e));
	if (!e)
		return tiermm__fail(ENOMEM, "tiering engine: out of memory");
	e->cfg = *cfg;
	e->pace = 1;
	e->self = cfg->pid == 0;
	e->ps = (uint64_t)sysconf(_SC_PAGESIZE);
	e->ops = ops;
	for (unsigned int h = 0; h < 256; h++)
		e->swap_lim[h] = (uint8_t)swap_limit_of(h);
	nn = tiermm_topo_nr_nodes(cfg->topo);
	for (int i = 0; i < nn; i++) {
		struct tiermm_node_info info = { .sz = sizeof(info) };

		if (!tiermm_topo_node(cfg->topo, i, &info) && info.tier == cfg->fast_tier &&
		    info.os_index >= 0 && info.os_index < TIERMM__MAX_NODES)
			e->fast_nodes[info.os_index / 64] |= 1ULL << (info.os_index % 64);
	}
	ret = ops->open(arg, cfg, &e->env);
	if (ret) {
		free(e);
		return ret;
	}
	ret = tiermm__rtree_new(&p, &e->tree);
	if (!ret && tiermm__heat_new(&e->heat))
		ret = tiermm__fail(ENOMEM, "tiering engine: out of memory");
	if (!ret)
		ret = maps_sync(e, true);
	if (ret) {
		tiermm__engine_free(e);
		return ret;
	}
	*out = e;
	return 0;
}

void tiermm__engine_free(struct tiermm__engine *e)
{
	if (!e)
		return;
	if (e->env)
		e->ops->close(e->env);
	tiermm__rtree_free(e->tree);
	tiermm__heat_free(e->heat);
	free(e->maps);
	free(e->spans);
	free(e->hints);
	free(e->rk);
	free(e->hot);
	free(e->rs);
	free(e->plan);
	free(e);
}

void tiermm__engine_usage(const struct tiermm__engine *e, uint64_t *fast,
			  uint64_t *resident)
{
	*fast = e->fast_bytes;
	*resident = e->resident;
}

uint64_t tiermm__engine_tier_free(struct tiermm__engine *e, int tier)
{
	return e->ops->tier_free(e->env, tier);
}

void tiermm__engine_record(struct tiermm__engine *e, const struct tiermm__obs *obs,
			   size_t n)
{
	tiermm__rtree_record(e->tree, obs, n);
	/*
	 * The first page bits: the page counts' blocks now, from the
	 * mappings read at the start, not at the first classification, or
	 * the passes before it count for nothing (under a CPU quota the
	 * first epoch may come seconds late, after the scanner's first
	 * burst).
	 */
	if (!e->heat->synced && e->ops->where && e->ops->move_list && e->nmaps)
		for (size_t k = 0; k < n; k++)
			if (obs[k].flags & TIERMM__OBS_BITS) {
				if (heat_sync(e))
					tiermm__log(TIERMM_LOG_WARN, "tiering engine: %s",
						    tiermm_errmsg());
				break;
			}
	tiermm__heat_record(e->heat, obs, n);
}

void tiermm__engine_set_pace(struct tiermm__engine *e, unsigned int backoff)
{
	e->pace = backoff ? backoff : 1;
}

uint64_t tiermm__engine_plan_changed(const struct tiermm__engine *e)
{
	return e->plan_changed;
}

bool tiermm__engine_warm(const struct tiermm__engine *e)
{
	return !e->page_mode || e->heat->passes >= 2 * TIERMM__HEAT_DECAY_PASSES;
}

uint64_t tiermm__engine_moved_pages(const struct tiermm__engine *e)
{
	return e->c.promoted + e->c.demoted;
}

void tiermm__engine_stats(struct tiermm__engine *e, struct tiermm_runtime_stats *s)
{
	const struct tiermm__rtree_snap *snap = tiermm__rtree_snapshot_get(e->tree);

	s->epochs = e->epoch;
	s->promoted_pages = e->c.promoted;
	s->promoted_bytes = e->c.promoted * e->ps;
	s->demoted_pages = e->c.demoted;
	s->demoted_bytes = e->c.demoted * e->ps;
	s->moved_bytes = s->promoted_bytes + s->demoted_bytes;
	s->failed_pages = e->c.failed;
	s->failed_busy = e->c.busy;
	s->failed_nomem = e->c.nomem;
	s->failed_fault = e->c.fault;
	s->failed_other = e->c.other;
	s->hot_set_bytes = e->hot_bytes;
	s->budget_bytes = e->budget;
	s->fast_bytes = e->fast_bytes;
	s->resident_bytes = e->resident;
	s->hinted_bytes = e->hinted;
	s->fast_access_share = e->heat->fast_share;
	s->samples_missed = snap->stats.missed;
	s->ranges = tiermm__rtree_size(e->tree);
	s->splits = snap->stats.splits;
	s->merges = snap->stats.merges + snap->stats.forced_merges;
	tiermm__rtree_snapshot_put(snap);
}
