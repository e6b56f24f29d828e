// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The classifier of the tiering engine: Demeter's range tree (SOSP'25),
 * see tiering.h for the interface and the parameters.
 *
 * Layout. The ranges live in an array sorted by address, with their start
 * addresses copied into a dense array for a branch-free binary search
 * (2048 starts are 16 KiB: the search stays in L1/L2). Splits, merges and
 * map/unmap rebuild the array in O(n); with n <= 2048 that is cheaper and
 * simpler than a balanced tree, and record() -- the hot path, thousands of
 * observations per epoch -- only searches. A hit in the same range as the
 * previous observation skips the search.
 *
 * Sub-range counts. Each range keeps SUBS = 16 counters, one per sixteenth
 * of its span (the range's count is their sum). With one count a range,
 * each half of a split can only inherit half of it, so a hot half looks no
 * hotter than its cold sibling until decay has replaced the inherited
 * count, and a range without neighbouring ranges (a whole mmap area at the
 * start) can never show a contrast. With sixteenths:
 *  - split halves get their observed share (the counters over their span),
 *    not half each: the hot half ranks as hot at once;
 *  - a range can see contrast inside itself (split_gain(): any run of
 *    sixteenths against the rest), which is how an mmap area with a hot
 *    spot starts splitting, and how a spot centred in a range is found;
 *  - a split is backed by data four levels down: the halves' counters are
 *    interpolated from the parent's, which resolve 1/16 of the parent, so an
 *    epoch may split up to four times (test_rtree isolates a 64 MiB hot set
 *    in a 1 GiB area in one epoch; halving once an epoch takes four).
 *    Deeper than that there is no information.
 * Merges and trims resample the counters the same way (uniform within a
 * counter).
 *
 * "Beats" (the split test). Densities are compared at equal size: range r
 * beats its neighbour b if count(r) - density(b) x size(r) -- the accesses
 * r has beyond what it would have at b's density -- is (1) more than
 * split_contrast x nr_cpus samples (Demeter's test; the same as Demeter's
 * count difference when the sizes are equal, as after halving) and (2) more
 * than SIGMAS standard deviations of that difference (Poisson counts, each
 * scaled to size(r): a small neighbour's density extrapolated over a large
 * range is noisy; decayed counts vary less than Poisson, so this is
 * conservative), so that a uniform pattern sampled at a high rate does not
 * split on noise, however high the rate. Only contiguous ranges are
 * neighbours, and only the denser side of a pair splits (it is the one
 * that "beats"). The same test compares a run of sixteenths with the rest
 * of the range, over the smaller of the two spans.
 * Comparing raw counts of unequal ranges (a 64 MiB range "beats" a 2 MiB one
 * with the same density) would split uniform memory until the sizes are
 * equal, and then the merge rule would undo it: split and merge must use
 * the same notion of contrast. There is deliberately no relative threshold
 * (e.g. "twice as dense"): inside a large range a sixteenth dilutes a small
 * spot (a 2 MiB spot three times as dense as a 1 GiB range's background
 * raises its 64 MiB sixteenth by 6%), so a ratio would hide it for good,
 * while the two tests above already reject noise.
 *
 * Merging (tiermm; Demeter's paper describes it, its code does not). Two
 * adjacent ranges merge when neither is cooling, they are in the same state
 * in the recorded plan (both cold or both wholly hot: merging across the
 * plan's boundary would make a range that no longer fits), their densities
 * have converged -- within merge_ratio, or a difference below half of the
 * split thresholds -- and the merged range would not split right away (the
 * split test on the merged range, with its would-be neighbours, at 3/4 of
 * the thresholds). The last condition keeps the tree from oscillating: a
 * merge never undoes a split the data still supports, a split is never
 * undone while cooling, and a contrast hovering around the threshold does
 * not split and merge the same range over and over (the dead band). Merges
 * run before splits in an epoch, so the room they free is there for the
 * splits.
 *
 * Full tree. When a split would exceed max_ranges, the adjacent pair whose
 * merge loses least (|density difference| x harmonic size: the accesses
 * misattributed) merges first, if the split gains FORCED_MARGIN (8) times
 * what the merge loses; splits are taken in order of gain. The margin
 * matters: gains and losses are noisy estimates and every trade leaves two
 * cooling (unpromotable) halves, so with more hot spots than ranges a
 * margin of 1 keeps trading back and forth. In rtree_bench (4096 spots,
 * 2048 ranges) a 1 GiB hot set fitted on the ranking caught 88% of the
 * best possible share of accesses with a margin of 1, 99.5% with 2, 99.7%
 * with 4 and 99.9% with 8, with 283, 175, 109 and 70 splits an epoch; a new
 * hot set in a full tree was isolated as fast with 8 as with 2.
 *
 * Cost. An epoch is O(n) plus sorting candidates; the split test of a range
 * is its ~120 runs of sixteenths plus two neighbours. Rounds after the
 * first only test the ranges the previous round made and their neighbours.
 * rtree_bench measures about 2 ms of CPU for 2048 ranges.
 *
 * Publication. Readers get immutable snapshots published with
 * rcu_assign_pointer() and read with rcu_dereference() under liburcu-bp
 * (the "bulletproof" flavor). Why bp: the readers are threads the library
 * does not own (the application's threads calling hints and statistics,
 * inside an LD_PRELOAD shim too). urcu-memb and urcu-mb need every reader
 * thread registered before its first read lock and unregistered before it
 * exits; urcu-qsbr needs every reader to announce quiescent states
 * periodically; urcu-signal takes a signal from the application. bp
 * registers threads on first use and is the flavor liburcu provides for
 * libraries (LTTng-UST uses it); hints.c made the same choice. A
 * snapshot carries a reference count: get() takes a reference inside a
 * read-side critical section of two loads and an increment, so a reader
 * (the migrator, for seconds of move_pages()) can hold a snapshot without
 * holding up grace periods (of the whole process: the bp domain is shared
 * with any other bp user in it) and without delaying the writer. The tree
 * holds one reference on the published snapshot; after replacing it, the
 * writer waits for a grace period (synchronize_rcu(): only critical sections
 * already running, each a few instructions long) and drops its reference:
 * no reader can find the old snapshot any more, so the last put frees it.
 * Once an epoch, that wait is a membarrier and a scan of the registered
 * readers (rtree_bench: a whole publication, ranking included, takes
 * 0.2 ms for 2048 ranges). call_rcu() would not
 * wait at all but starts a worker thread behind the application's back that
 * needs its own fork handlers; like hints.c, we do without it.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <urcu/urcu-bp.h>

#include "internal.h"
#include "tiering.h"

/*
 * ThreadSanitizer cannot see the ordering liburcu provides (it is not
 * instrumented and uses its own barriers), so tell it that the publication
 * orders the writer's stores before the readers' loads. Frees need no
 * annotation: the last reference is dropped with an acquire-release atomic
 * after every reader's accesses.
 */
#if defined(__SANITIZE_THREAD__)
#define TIERMM__TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TIERMM__TSAN 1
#endif
#endif
#ifdef TIERMM__TSAN
#include <sanitizer/tsan_interface.h>
#define TSAN_RELEASE(p) __tsan_release(p)
#define TSAN_ACQUIRE(p) __tsan_acquire(p)
#else
#define TSAN_RELEASE(p) ((void)(p))
#define TSAN_ACQUIRE(p) ((void)(p))
#endif

#define SUBS 16			/* sub-range counters a range */
#define SPLIT_ROUNDS 4		/* log2(SUBS): halvings an epoch */
#define SIGMAS 4.0		/* significance of a contrast */
#define FORCED_MARGIN 8.0	/* a forced merge needs gain > 8 x loss */
#define MERGE_GUARD 0.75	/* a merged range must stay below this share
				 * of the split thresholds (a dead band) */
#define PAGE 4096ULL
#define HUGE_PAGE (2ULL << 20)
#define TINY 1e-6		/* counters below this decay to 0 (no denormals) */

#define DEF_MIN_RANGE (2ULL << 20)
#define DEF_SPLIT_MIN (4ULL << 20)
#define DEF_MAX_RANGES 2048
#define DEF_SPLIT_SAMPLES 15.0
#define DEF_SPLIT_CONTRAST 30.0
#define DEF_COOLING 3
#define DEF_MERGE_RATIO 1.25
#define DEF_HYSTERESIS 1.2

struct node {
	uint64_t start, end;
	uint64_t mul;		/* floor(SUBS * 2^64 / size): counter index of
				 * an offset by one multiplication */
	uint64_t id;
	uint64_t hot;		/* plan prefix, bytes */
	uint32_t age;
	bool from_split;
	bool fresh;		/* inserted by the map() under way */
	uint8_t round;		/* made in split round round - 1 of this
				 * epoch (0: before it) */
	double sub[SUBS];
};

struct snap_box {
	long refs;		/* __atomic */
	struct tiermm__rtree_snap s;
	/* ranges[n] and by_addr[n] follow */
};

enum { ACT_NONE, ACT_CAND, ACT_SPLIT, ACT_MERGE_NEXT, ACT_MERGED };

struct cand {
	size_t i;
	double gain;
};

struct tiermm__rtree {
	struct tiermm__rtree_params p;	/* resolved */
	double samples_thr;	/* split_samples x nr_cpus */
	double contrast_thr;	/* split_contrast x nr_cpus */
	struct node *v, *tmp;	/* ranges by address; rebuild buffer */
	uint64_t *starts;	/* v[i].start, for the search */
	size_t n, cap;
	size_t last;		/* index of the last hit */
	struct cand *cand;	/* epoch scratch, cap entries each */
	struct cand *pairs;
	unsigned char *act;
	struct tiermm__range *rs, *rk;	/* ranking scratch */
	uint32_t *perm;
	uint64_t *plan;
	uint64_t next_id;
	struct tiermm__rtree_stats st;
	struct snap_box *pub;	/* RCU-protected */
};

/* ---- ranges ---- */

static inline uint64_t node_size(const struct node *nd)
{
	return nd->end - nd->start;
}

static double node_count(const struct node *nd)
{
	double c = 0;

	for (int i = 0; i < SUBS; i++)
		c += nd->sub[i];
	return c;
}

static inline double node_density(const struct node *nd)
{
	return node_count(nd) / (double)node_size(nd);
}

static bool node_cooling(const struct tiermm__rtree *t, const struct node *nd)
{
	return nd->from_split && nd->age < t->p.cooling_epochs;
}

static bool node_all_hot(const struct node *nd)
{
	return nd->hot == node_size(nd);
}

/* Start of counter i of a range [start, start + size). */
static inline uint64_t sub_bound(uint64_t start, uint64_t size, int i)
{
	return start + (uint64_t)(((unsigned __int128)size * (unsigned)i) / SUBS);
}

/* Geometry of a fresh node; counters zero. */
static void node_init(struct node *nd, uint64_t start, uint64_t end,
		      uint64_t id)
{
	memset(nd, 0, sizeof(*nd));
	nd->start = start;
	nd->end = end;
	nd->id = id;
	/* size >= PAGE, so the quotient is < 2^64 */
	nd->mul = (uint64_t)(((unsigned __int128)SUBS << 64) / (end - start));
}

/* Expected count of nd in [a, b), uniform within each counter. */
static double node_est(const struct node *nd, uint64_t a, uint64_t b)
{
	uint64_t size = node_size(nd);
	double sum = 0;
	int i;

	if (a < nd->start)
		a = nd->start;
	if (b > nd->end)
		b = nd->end;
	if (a >= b)
		return 0;
	i = (int)(((unsigned __int128)(a - nd->start) * SUBS) / size);
	for (; i < SUBS; i++) {
		uint64_t lo = sub_bound(nd->start, size, i);
		uint64_t hi = sub_bound(nd->start, size, i + 1);
		uint64_t ol = lo > a ? lo : a, oh = hi < b ? hi : b;

		if (lo >= b)
			break;
		if (oh > ol)
			sum += nd->sub[i] * (double)(oh - ol) / (double)(hi - lo);
	}
	return sum;
}

/* Fill dst's counters (its geometry set) from up to two source nodes. */
static void node_resample(struct node *dst, const struct node *a,
			  const struct node *b)
{
	uint64_t size = node_size(dst);

	for (int j = 0; j < SUBS; j++) {
		uint64_t lo = sub_bound(dst->start, size, j);
		uint64_t hi = sub_bound(dst->start, size, j + 1);

		dst->sub[j] = node_est(a, lo, hi) + (b ? node_est(b, lo, hi) : 0);
	}
}

/* Spread amount uniformly over [a, b) (within nd) into its counters. */
static void node_add_span(struct node *nd, uint64_t a, uint64_t b,
			  double amount)
{
	uint64_t size = node_size(nd);
	int i = (int)(((unsigned __int128)(a - nd->start) * SUBS) / size);

	for (; i < SUBS; i++) {
		uint64_t lo = sub_bound(nd->start, size, i);
		uint64_t hi = sub_bound(nd->start, size, i + 1);
		uint64_t ol = lo > a ? lo : a, oh = hi < b ? hi : b;

		if (lo >= b)
			break;
		if (oh > ol)
			nd->sub[i] += amount * (double)(oh - ol) / (double)(b - a);
	}
}

/* The merge of adjacent a and b into m (new identity). */
static void node_merge(struct tiermm__rtree *t, const struct node *a,
		       const struct node *b, struct node *m)
{
	node_init(m, a->start, b->end, t->next_id++);
	node_resample(m, a, b);
	/* the plan is a prefix: it goes on into b only if a is all hot */
	m->hot = node_all_hot(a) ? node_size(a) + b->hot : a->hot;
}

/*
 * Where a range splits: in the middle, moved to a 2 MiB boundary when both
 * halves stay >= min_range (so a split never cuts a huge page), else the
 * middle page.
 */
static uint64_t split_point(const struct tiermm__rtree *t,
			    const struct node *nd)
{
	uint64_t s = nd->start, e = nd->end;
	uint64_t mid = (s + (e - s) / 2) & ~(PAGE - 1);
	uint64_t h = mid & ~(HUGE_PAGE - 1);

	if (h > s && h - s >= t->p.min_range && e - h >= t->p.min_range)
		return h;
	h += HUGE_PAGE;
	if (h < e && h - s >= t->p.min_range && e - h >= t->p.min_range)
		return h;
	return mid;
}

static void node_split(struct tiermm__rtree *t, const struct node *nd,
		       struct node *l, struct node *r)
{
	uint64_t mid = split_point(t, nd), lsize = mid - nd->start;

	node_init(l, nd->start, mid, t->next_id++);
	node_init(r, mid, nd->end, t->next_id++);
	node_resample(l, nd, NULL);
	node_resample(r, nd, NULL);
	l->from_split = r->from_split = true;
	l->hot = nd->hot < lsize ? nd->hot : lsize;
	r->hot = nd->hot > lsize ? nd->hot - lsize : 0;
}

/* ---- contrast ---- */

/*
 * The contrast of count ca over size sa against cb over sb, measured over
 * span (sizes in bytes or in counters): how many more accesses span gets at
 * a's density than at b's, if that passes the thresholds (absolute thr,
 * sig2 = sigmas^2), else 0. The variance is Poisson's for each count,
 * scaled to span: a small side extrapolated over a large span is noisy.
 */
static double contrast(double ca, double sa, double cb, double sb,
		       double span, double thr, double sig2)
{
	double x = (ca / sa - cb / sb) * span;
	double ka = span / sa, kb = span / sb;

	if (x <= thr || x * x <= sig2 * (ca * ka * ka + cb * kb * kb))
		return 0;
	return x;
}

/* The split test's contrast, thresholds scaled by level (1: splits). */
static double split_contrast(const struct tiermm__rtree *t, double level,
			     double ca, double sa, double cb, double sb,
			     double span)
{
	return contrast(ca, sa, cb, sb, span, t->contrast_thr * level,
			SIGMAS * SIGMAS * level * level);
}

/*
 * The strongest contrast between a run of counters and the rest (split
 * contrast at level, inlined: this is the epoch's inner loop). A suffix run
 * is the same partition as the prefix before it, so only prefixes and
 * interior runs are tried: 120 partitions.
 */
static double inner_gain(const struct tiermm__rtree *t, double level,
			 const struct node *nd, double count)
{
	static const double inv[SUBS + 1] = {
		0, 1.0 / 1, 1.0 / 2, 1.0 / 3, 1.0 / 4, 1.0 / 5, 1.0 / 6,
		1.0 / 7, 1.0 / 8, 1.0 / 9, 1.0 / 10, 1.0 / 11, 1.0 / 12,
		1.0 / 13, 1.0 / 14, 1.0 / 15, 1.0 / 16,
	};
	double thr = t->contrast_thr * level;
	double sig2 = SIGMAS * SIGMAS * level * level;
	double pre[SUBS + 1], best = 0;

	pre[0] = 0;
	for (int i = 0; i < SUBS; i++)
		pre[i + 1] = pre[i] + nd->sub[i];
	for (int i = 0; i < SUBS; i++) {
		for (int j = i + 1; j < SUBS; j++) {
			int kw = j - i, kr = SUBS - kw;
			double span = kw < kr ? kw : kr;
			double cw = pre[j] - pre[i], cr = count - cw;
			double x = fabs(cw * inv[kw] - cr * inv[kr]) * span;
			double var;

			if (x <= thr || x <= best)
				continue;
			var = (cw * inv[kw] * inv[kw] + cr * inv[kr] * inv[kr]) *
			      span * span;
			if (x * x > sig2 * var)
				best = x;
		}
	}
	return best;
}

/*
 * How much splitting nd would gain (the excess count of its strongest
 * contrast), 0 if it must not split. l and r are its contiguous neighbours
 * (NULL: none). level scales the contrast thresholds: 1 to split,
 * MERGE_GUARD to check that a merged range would be clearly below them.
 */
static double split_gain(const struct tiermm__rtree *t, double level,
			 const struct node *nd, const struct node *l,
			 const struct node *r)
{
	uint64_t size = node_size(nd);
	double c, g = 0;

	if (size < t->p.split_min)
		return 0;
	c = node_count(nd);
	if (c < t->samples_thr)
		return 0;
	for (int k = 0; k < 2; k++) {
		const struct node *b = k ? r : l;
		double x;

		if (!b)
			continue;
		/* only the denser side splits (x <= 0 otherwise) */
		x = split_contrast(t, level, c, (double)size, node_count(b),
				   (double)node_size(b), (double)size);
		if (x > g)
			g = x;
	}
	c = inner_gain(t, level, nd, c);
	return c > g ? c : g;
}

/*
 * Converged: densities within merge_ratio, or a contrast below half the
 * split thresholds.
 */
static bool converged(const struct tiermm__rtree *t, const struct node *a,
		      const struct node *b)
{
	double ca = node_count(a), cb = node_count(b);
	double sa = (double)node_size(a), sb = (double)node_size(b);
	double span = sa < sb ? sa : sb;

	if (ca * sb < cb * sa) {	/* the denser first */
		double c = ca, s = sa;

		ca = cb;
		sa = sb;
		cb = c;
		sb = s;
	}
	return ca / sa <= t->p.merge_ratio * (cb / sb) ||
	       !contrast(ca, sa, cb, sb, span, t->contrast_thr / 2,
			 SIGMAS * SIGMAS / 4);
}

/* Accesses misattributed by merging a and b. */
static double merge_loss(const struct node *a, const struct node *b)
{
	double sa = (double)node_size(a), sb = (double)node_size(b);

	return fabs(node_density(a) - node_density(b)) * sa * sb / (sa + sb);
}

static bool plan_compatible(const struct node *a, const struct node *b)
{
	return (!a->hot && !b->hot) || (node_all_hot(a) && node_all_hot(b));
}

/* ---- storage ---- */

static void rebuild_index(struct tiermm__rtree *t)
{
	for (size_t i = 0; i < t->n; i++)
		t->starts[i] = t->v[i].start;
	t->last = 0;
}

static int grow(struct tiermm__rtree *t, size_t want)
{
	size_t cap = t->cap;
	void *p;

	if (want <= cap)
		return 0;
	cap = cap * 2 > want ? cap * 2 : want;
#define GROW(f) do {							\
		p = realloc(t->f, cap * sizeof(*t->f));			\
		if (!p)							\
			goto fail;					\
		t->f = p;						\
	} while (0)
	GROW(v);
	GROW(tmp);
	GROW(starts);
	GROW(cand);
	GROW(pairs);
	GROW(act);
	GROW(rs);
	GROW(rk);
	GROW(perm);
	GROW(plan);
#undef GROW
	t->cap = cap;
	return 0;
fail:
	/* the arrays grown so far are just larger than needed */
	return tiermm__fail(ENOMEM, "range tree: out of memory for %zu ranges",
			    want);
}

/* Index of the last range starting at or before addr, or -1. */
static inline long find(const struct tiermm__rtree *t, uint64_t addr)
{
	const uint64_t *base = t->starts;
	size_t n = t->n;

	if (!n || addr < base[0])
		return -1;
	while (n > 1) {
		size_t half = n / 2;

		base = base[half] <= addr ? base + half : base;
		n -= half;
	}
	return base - t->starts;
}

/*
 * The cheapest adjacent pair to merge, or -1 (strict: the epoch rules).
 * Ranges being inserted by map() are left alone.
 */
static long cheapest_pair(const struct tiermm__rtree *t, bool strict)
{
	long best = -1;
	double best_loss = INFINITY;

	for (size_t i = 0; i + 1 < t->n; i++) {
		const struct node *a = &t->v[i], *b = &t->v[i + 1];
		double loss;

		if (a->end != b->start || a->fresh || b->fresh)
			continue;
		if (strict && (node_cooling(t, a) || node_cooling(t, b) ||
			       !plan_compatible(a, b)))
			continue;
		loss = merge_loss(a, b);
		if (loss < best_loss) {
			best_loss = loss;
			best = (long)i;
		}
	}
	return best;
}

/* Merge v[i] and v[i + 1] in place. */
static void merge_at(struct tiermm__rtree *t, size_t i)
{
	struct node m;

	node_merge(t, &t->v[i], &t->v[i + 1], &m);
	t->v[i] = m;
	memmove(&t->v[i + 1], &t->v[i + 2], (t->n - i - 2) * sizeof(*t->v));
	t->n--;
	t->st.forced_merges++;
}

/*
 * Make room for one range by a forced merge. *pos, an index into v, is kept
 * pointing at the same place. false if no pair can merge.
 */
static bool make_room(struct tiermm__rtree *t, size_t *pos)
{
	long i = cheapest_pair(t, true);

	if (i < 0)
		i = cheapest_pair(t, false);
	if (i < 0)
		return false;
	merge_at(t, (size_t)i);
	if (pos && *pos > (size_t)i)
		(*pos)--;
	return true;
}

/* ---- life cycle ---- */

int tiermm__rtree_new(const struct tiermm__rtree_params *p,
		      struct tiermm__rtree **out)
{
	struct tiermm__rtree_params r = p ? *p : (struct tiermm__rtree_params){ 0 };
	struct tiermm__rtree *t;
	int err;

	*out = NULL;
	if (!r.min_range)
		r.min_range = DEF_MIN_RANGE;
	if (!r.split_min)
		r.split_min = r.min_range * 2 > DEF_SPLIT_MIN ?
			      r.min_range * 2 : DEF_SPLIT_MIN;
	if (!r.max_ranges)
		r.max_ranges = DEF_MAX_RANGES;
	if (!r.nr_cpus) {
		long c = sysconf(_SC_NPROCESSORS_ONLN);

		r.nr_cpus = c > 0 ? (uint32_t)c : 1;
	}
	if (r.split_samples == 0)
		r.split_samples = DEF_SPLIT_SAMPLES;
	if (r.split_contrast == 0)
		r.split_contrast = DEF_SPLIT_CONTRAST;
	if (!r.cooling_epochs)
		r.cooling_epochs = DEF_COOLING;
	if (r.merge_ratio == 0)
		r.merge_ratio = DEF_MERGE_RATIO;
	if (r.min_range % PAGE)
		return tiermm__fail(EINVAL, "range tree: min_range %llu is not a multiple of the page size",
				    (unsigned long long)r.min_range);
	if (r.split_min < 2 * r.min_range)
		return tiermm__fail(EINVAL, "range tree: split_min %llu is below twice min_range %llu",
				    (unsigned long long)r.split_min,
				    (unsigned long long)r.min_range);
	if (!(r.split_samples > 0) || !(r.split_contrast > 0) ||
	    !(r.merge_ratio >= 1) || !isfinite(r.split_samples) ||
	    !isfinite(r.split_contrast) || !isfinite(r.merge_ratio))
		return tiermm__fail(EINVAL, "range tree: bad thresholds (split_samples %g, split_contrast %g: positive and finite; merge_ratio %g: finite, >= 1)",
				    r.split_samples, r.split_contrast,
				    r.merge_ratio);

	t = calloc(1, sizeof(*t));
	if (!t)
		return tiermm__fail(ENOMEM, "range tree: out of memory");
	t->p = r;
	t->samples_thr = r.split_samples * r.nr_cpus;
	t->contrast_thr = r.split_contrast * r.nr_cpus;
	t->next_id = 1;
	t->cap = 1;
	err = grow(t, (size_t)r.max_ranges + 1);
	if (!err)
		err = tiermm__rtree_publish(t);
	if (err) {
		tiermm__rtree_free(t);
		return err;
	}
	*out = t;
	return 0;
}

static void snap_unref(struct snap_box *b)
{
	if (__atomic_fetch_sub(&b->refs, 1, __ATOMIC_ACQ_REL) == 1)
		free(b);
}

/*
 * old is no longer published: once the readers that may have found it have
 * left their read-side critical sections (and so hold a reference if they
 * use it), drop the tree's reference.
 */
static void unpublish(struct snap_box *old)
{
	urcu_bp_synchronize_rcu();
	snap_unref(old);
}

void tiermm__rtree_free(struct tiermm__rtree *t)
{
	if (!t)
		return;
	if (t->pub) {
		struct snap_box *old = t->pub;

		rcu_assign_pointer(t->pub, NULL);
		unpublish(old);
	}
	free(t->v);
	free(t->tmp);
	free(t->starts);
	free(t->cand);
	free(t->pairs);
	free(t->act);
	free(t->rs);
	free(t->rk);
	free(t->perm);
	free(t->plan);
	free(t);
}

size_t tiermm__rtree_size(const struct tiermm__rtree *t)
{
	return t->n;
}

/* ---- address space ---- */

static int align_interval(uint64_t *start, uint64_t *end)
{
	uint64_t s = *start & ~(PAGE - 1), e = *end;

	if (e > UINT64_MAX - (PAGE - 1) || *start >= e)
		return tiermm__fail(EINVAL, "range tree: empty or wrapping interval [%#llx, %#llx)",
				    (unsigned long long)*start,
				    (unsigned long long)*end);
	e = (e + PAGE - 1) & ~(PAGE - 1);
	*start = s;
	*end = e;
	return 0;
}

/* End of a map(): keep the ranges it inserted, or drop them (rollback). */
static void map_end(struct tiermm__rtree *t, bool keep)
{
	size_t w = 0;

	for (size_t i = 0; i < t->n; i++) {
		if (t->v[i].fresh && !keep)
			continue;
		t->v[i].fresh = false;
		t->v[w++] = t->v[i];
	}
	t->n = w;
	rebuild_index(t);
}

int tiermm__rtree_map(struct tiermm__rtree *t, uint64_t start, uint64_t end)
{
	uint64_t cur;
	long f;
	size_t i;
	int err = align_interval(&start, &end);

	if (err)
		return err;
	f = find(t, start);
	i = f < 0 ? 0 : (t->v[f].end > start ? (size_t)f : (size_t)f + 1);
	cur = start;
	while (cur < end) {
		uint64_t gap_end;

		if (i < t->n && t->v[i].start <= cur) {
			cur = t->v[i].end;
			i++;
			continue;
		}
		gap_end = i < t->n && t->v[i].start < end ? t->v[i].start : end;
		if (t->n >= t->p.max_ranges && !make_room(t, &i)) {
			map_end(t, false);
			return tiermm__fail(ENOSPC, "range tree: %u ranges and no adjacent pair to merge for [%#llx, %#llx)",
					    t->p.max_ranges,
					    (unsigned long long)cur,
					    (unsigned long long)gap_end);
		}
		if (t->n + 1 > t->cap && (err = grow(t, t->n + 1))) {
			map_end(t, false);
			return err;
		}
		memmove(&t->v[i + 1], &t->v[i], (t->n - i) * sizeof(*t->v));
		node_init(&t->v[i], cur, gap_end, t->next_id++);
		t->v[i].fresh = true;
		t->n++;
		i++;
		cur = gap_end;
	}
	map_end(t, true);
	return 0;
}

/* The part [a, b) of nd as a node of its own (same state, same id). */
static void node_piece(const struct node *nd, uint64_t a, uint64_t b,
		       uint64_t id, struct node *out)
{
	uint64_t hot_end = nd->start + nd->hot;

	node_init(out, a, b, id);
	node_resample(out, nd, NULL);
	out->age = nd->age;
	out->from_split = nd->from_split;
	/* the plan is a prefix of nd, so its part in [a, b) starts at a */
	out->hot = hot_end > a ? (hot_end < b ? hot_end : b) - a : 0;
}

int tiermm__rtree_unmap(struct tiermm__rtree *t, uint64_t start, uint64_t end)
{
	struct node piece[2];
	size_t i0, i1, np = 0, keep;
	long f;
	int err = align_interval(&start, &end);

	if (err)
		return err;
	f = find(t, start);
	i0 = f < 0 ? 0 : (t->v[f].end > start ? (size_t)f : (size_t)f + 1);
	for (i1 = i0; i1 < t->n && t->v[i1].start < end; i1++)
		;
	if (i0 == i1)
		return 0;
	if (t->v[i0].start < start)
		node_piece(&t->v[i0], t->v[i0].start, start, t->v[i0].id,
			   &piece[np++]);
	if (t->v[i1 - 1].end > end) {
		const struct node *nd = &t->v[i1 - 1];
		/* a hole: the left piece kept the identity */
		uint64_t id = np && i1 - 1 == i0 ? t->next_id++ : nd->id;

		node_piece(nd, end, nd->end, id, &piece[np]);
		np++;
	}
	keep = t->n - (i1 - i0) + np;
	if (keep > t->cap && (err = grow(t, keep)))
		return err;
	memmove(&t->v[i0 + np], &t->v[i1], (t->n - i1) * sizeof(*t->v));
	for (size_t k = 0; k < np; k++)
		t->v[i0 + k] = piece[k];
	t->n = keep;
	while (t->n > t->p.max_ranges && make_room(t, NULL))
		;
	rebuild_index(t);
	return 0;
}

/* ---- observations ---- */

/*
 * pages pages from a, each accessed hits times (DAMON's nr_accesses), or
 * with spread, hits accesses in all over them.
 */
static void record_span(struct tiermm__rtree *t, uint64_t a, uint64_t pages,
			uint32_t hits, bool spread)
{
	double per_page = spread ? (double)hits / (double)(pages ? pages : 1) :
				   (hits ? (double)hits : 1.0);
	uint64_t b;
	long f;
	size_t i;
	bool hit = false;

	a &= ~(PAGE - 1);
	b = pages > (UINT64_MAX - a) / PAGE ? UINT64_MAX & ~(PAGE - 1) :
					      a + pages * PAGE;
	if (b <= a)
		return;
	f = find(t, a);
	i = f < 0 ? 0 : (t->v[f].end > a ? (size_t)f : (size_t)f + 1);
	for (; i < t->n && t->v[i].start < b; i++) {
		struct node *nd = &t->v[i];
		uint64_t lo = nd->start > a ? nd->start : a;
		uint64_t hi = nd->end < b ? nd->end : b;

		node_add_span(nd, lo, hi, (double)((hi - lo) / PAGE) * per_page);
		hit = true;
	}
	if (!hit)
		t->st.missed++;
}

void tiermm__rtree_record(struct tiermm__rtree *t,
			  const struct tiermm__obs *obs, size_t n)
{
	struct node *v = t->v;
	size_t last = t->last;
	uint64_t missed = 0;

	t->st.observations += n;
	if (!t->n) {
		t->st.missed += n;
		return;
	}
	for (size_t k = 0; k < n; k++) {
		uint64_t addr = obs[k].addr, off;
		struct node *nd = &v[last];

		if (obs[k].flags & (TIERMM__OBS_PASS | TIERMM__OBS_PRESENT))
			continue;
		if (obs[k].flags & TIERMM__OBS_RANGE) {
			record_span(t, addr, obs[k].weight, obs[k].hits,
				    obs[k].flags & TIERMM__OBS_SPREAD);
			continue;
		}
		off = addr - nd->start;
		if (off >= nd->end - nd->start) {
			long i = find(t, addr);

			if (i < 0 || addr >= v[i].end) {
				missed++;
				continue;
			}
			last = (size_t)i;
			nd = &v[last];
			off = addr - nd->start;
		}
		nd->sub[(unsigned)(((unsigned __int128)off * nd->mul) >> 64)] +=
			obs[k].weight;
	}
	t->last = last;
	t->st.missed += missed;
}

/* ---- epochs ---- */

static void decay(struct tiermm__rtree *t)
{
	for (size_t i = 0; i < t->n; i++) {
		struct node *nd = &t->v[i];

		for (int k = 0; k < SUBS; k++) {
			nd->sub[k] *= 0.5;
			if (nd->sub[k] < TINY)
				nd->sub[k] = 0;
		}
		if (nd->age < UINT32_MAX)
			nd->age++;
		nd->round = 0;
	}
}

static const struct node *left_of(const struct node *v, size_t i)
{
	return i > 0 && v[i - 1].end == v[i].start ? &v[i - 1] : NULL;
}

static const struct node *right_of(const struct node *v, size_t n, size_t i)
{
	return i + 1 < n && v[i].end == v[i + 1].start ? &v[i + 1] : NULL;
}

/* Merge converged neighbours, left to right, chains included. */
static void merge_pass(struct tiermm__rtree *t)
{
	struct node *v = t->v;
	size_t w = 0, i = 0, n = t->n;

	while (i < n) {
		struct node cur = v[i++];

		while (i < n) {
			const struct node *nx = &v[i];
			const struct node *l, *r;
			struct node m;

			if (cur.end != nx->start || node_cooling(t, &cur) ||
			    node_cooling(t, nx) || !plan_compatible(&cur, nx) ||
			    !converged(t, &cur, nx))
				break;
			node_merge(t, &cur, nx, &m);
			l = w > 0 && v[w - 1].end == m.start ? &v[w - 1] : NULL;
			r = right_of(v, n, i);
			if (split_gain(t, MERGE_GUARD, &m, l, r) > 0) {
				t->next_id--;	/* m is dropped: reuse its id */
				break;
			}
			cur = m;
			i++;
			t->st.merges++;
		}
		v[w++] = cur;
	}
	t->n = w;
}

static int cmp_cand(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;

	if (x->gain != y->gain)
		return x->gain > y->gain ? -1 : 1;
	return x->i < y->i ? -1 : x->i > y->i;
}

static int cmp_pair(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;

	if (x->gain != y->gain)
		return x->gain < y->gain ? -1 : 1;
	return x->i < y->i ? -1 : x->i > y->i;
}

/*
 * Split round r (0-based) of an epoch; returns how many ranges split. After
 * the first round only ranges made by the previous one and their neighbours
 * can have changed their minds: the others are not tested again (one that
 * lost for want of room waits for the next epoch).
 */
static size_t split_round(struct tiermm__rtree *t, uint8_t r)
{
	struct node *v = t->v, *o = t->tmp;
	size_t n = t->n, nc = 0, np = 0, pi = 0, nsplit = 0, w = 0, room;
	unsigned char *act = t->act;

	for (size_t i = 0; i < n; i++) {
		double g = 0;

		act[i] = ACT_NONE;
		if (!r || v[i].round == r || (i && v[i - 1].round == r) ||
		    (i + 1 < n && v[i + 1].round == r))
			g = split_gain(t, 1, &v[i], left_of(v, i),
				       right_of(v, n, i));
		if (g > 0) {
			t->cand[nc].i = i;
			t->cand[nc++].gain = g;
			act[i] = ACT_CAND;
		}
	}
	if (!nc)
		return 0;
	qsort(t->cand, nc, sizeof(*t->cand), cmp_cand);
	room = t->p.max_ranges > n ? t->p.max_ranges - n : 0;
	if (room < nc) {
		for (size_t i = 0; i + 1 < n; i++) {
			const struct node *a = &v[i], *b = &v[i + 1];

			if (a->end != b->start || act[i] || act[i + 1] ||
			    node_cooling(t, a) || node_cooling(t, b) ||
			    !plan_compatible(a, b))
				continue;
			t->pairs[np].i = i;
			t->pairs[np++].gain = merge_loss(a, b);
		}
		qsort(t->pairs, np, sizeof(*t->pairs), cmp_pair);
	}
	for (size_t k = 0; k < nc; k++) {
		size_t c = t->cand[k].i;

		if (room) {
			act[c] = ACT_SPLIT;
			room--;
			nsplit++;
			continue;
		}
		while (pi < np && (act[t->pairs[pi].i] ||
				   act[t->pairs[pi].i + 1]))
			pi++;
		if (pi == np ||
		    FORCED_MARGIN * t->pairs[pi].gain >= t->cand[k].gain)
			break;
		act[t->pairs[pi].i] = ACT_MERGE_NEXT;
		act[t->pairs[pi].i + 1] = ACT_MERGED;
		act[c] = ACT_SPLIT;
		nsplit++;
		t->st.forced_merges++;
	}
	for (size_t i = 0; i < n; i++) {
		switch (act[i]) {
		case ACT_SPLIT:
			node_split(t, &v[i], &o[w], &o[w + 1]);
			o[w].round = o[w + 1].round = r + 1;
			w += 2;
			break;
		case ACT_MERGE_NEXT:
			node_merge(t, &v[i], &v[i + 1], &o[w]);
			o[w++].round = r + 1;
			i++;
			break;
		default:
			o[w++] = v[i];
		}
	}
	t->tmp = v;
	t->v = o;
	t->n = w;
	t->st.splits += nsplit;
	return nsplit;
}

int tiermm__rtree_epoch(struct tiermm__rtree *t)
{
	uint64_t splits = t->st.splits, merges = t->st.merges;
	uint64_t forced = t->st.forced_merges;

	t->st.epochs++;
	decay(t);
	merge_pass(t);
	for (uint8_t r = 0; r < SPLIT_ROUNDS; r++)
		if (!split_round(t, r))
			break;
	rebuild_index(t);
	tiermm__log(TIERMM_LOG_DEBUG,
		    "range tree: epoch %llu: %zu ranges, %llu splits, %llu merges, %llu forced",
		    (unsigned long long)t->st.epochs, t->n,
		    (unsigned long long)(t->st.splits - splits),
		    (unsigned long long)(t->st.merges - merges),
		    (unsigned long long)(t->st.forced_merges - forced));
	return tiermm__rtree_publish(t);
}

/* ---- ranking and publication ---- */

static void node_to_range(const struct tiermm__rtree *t, const struct node *nd,
			  struct tiermm__range *r)
{
	r->start = nd->start;
	r->end = nd->end;
	r->id = nd->id;
	r->count = node_count(nd);
	r->density = r->count / (double)node_size(nd);
	r->hot = nd->hot;
	r->age = nd->age;
	r->cooling = node_cooling(t, nd);
}

static int cmp_rank(const void *a, const void *b, void *ctx)
{
	const struct tiermm__range *rs = ctx;
	const struct tiermm__range *x = &rs[*(const uint32_t *)a];
	const struct tiermm__range *y = &rs[*(const uint32_t *)b];

	if (x->density != y->density)
		return x->density > y->density ? -1 : 1;
	return x->start < y->start ? -1 : x->start > y->start;
}

/*
 * The ranking of the current state: rs[] (n) in address order, perm[j] the
 * address index of the j-th densest.
 */
static void rank(const struct tiermm__rtree *t, struct tiermm__range *rs,
		 uint32_t *perm)
{
	for (size_t i = 0; i < t->n; i++) {
		node_to_range(t, &t->v[i], &rs[i]);
		perm[i] = (uint32_t)i;
	}
	qsort_r(perm, t->n, sizeof(*perm), cmp_rank, rs);
}

int tiermm__rtree_ranked(const struct tiermm__rtree *t,
			 struct tiermm__range **out, size_t *n)
{
	size_t cnt = t->n ? t->n : 1;
	struct tiermm__range *rs = malloc(cnt * sizeof(*rs));
	struct tiermm__range *res = malloc(cnt * sizeof(*res));
	uint32_t *perm = malloc(cnt * sizeof(*perm));

	*out = NULL;
	*n = 0;
	if (!rs || !res || !perm) {
		free(rs);
		free(res);
		free(perm);
		return tiermm__fail(ENOMEM, "range tree: out of memory for the ranking");
	}
	rank(t, rs, perm);
	for (size_t j = 0; j < t->n; j++)
		res[j] = rs[perm[j]];
	free(rs);
	free(perm);
	*out = res;
	*n = t->n;
	return 0;
}

int tiermm__rtree_publish(struct tiermm__rtree *t)
{
	size_t n = t->n;
	struct snap_box *b, *old;
	struct tiermm__range *ranges;
	uint32_t *by_addr;

	b = malloc(sizeof(*b) + n * sizeof(*ranges) + n * sizeof(*by_addr));
	if (!b)
		return tiermm__fail(ENOMEM, "range tree: out of memory for a snapshot of %zu ranges",
				    n);
	ranges = (struct tiermm__range *)(b + 1);
	by_addr = (uint32_t *)(ranges + n);
	memset(&b->s, 0, sizeof(b->s));
	rank(t, t->rs, t->perm);
	for (size_t j = 0; j < n; j++) {
		ranges[j] = t->rs[t->perm[j]];
		by_addr[t->perm[j]] = (uint32_t)j;
		b->s.bytes += ranges[j].end - ranges[j].start;
		b->s.hot_bytes += ranges[j].hot;
		b->s.count += ranges[j].count;
	}
	t->st.publications++;
	/* the tree's arrays (cap entries each) and this snapshot */
	t->st.mem_bytes = sizeof(*t) + sizeof(*b) +
			  n * (sizeof(*ranges) + sizeof(*by_addr)) +
			  t->cap * (2 * sizeof(*t->v) + sizeof(*t->starts) +
				    2 * sizeof(*t->cand) + sizeof(*t->act) +
				    2 * sizeof(*t->rs) + sizeof(*t->perm) +
				    sizeof(*t->plan));
	b->s.epoch = t->st.epochs;
	b->s.n = n;
	b->s.stats = t->st;
	b->s.ranges = ranges;
	b->s.by_addr = by_addr;
	b->refs = 1;		/* the tree's, while published */
	TSAN_RELEASE(b);
	old = t->pub;
	rcu_assign_pointer(t->pub, b);
	if (old)
		unpublish(old);
	return 0;
}

const struct tiermm__rtree_snap *
tiermm__rtree_snapshot_get(struct tiermm__rtree *t)
{
	struct snap_box *b;

	urcu_bp_read_lock();
	b = rcu_dereference(t->pub);
	TSAN_ACQUIRE(b);
	/*
	 * The tree's reference is dropped only a grace period after b was
	 * replaced, so it is still held here: a plain increment suffices.
	 */
	__atomic_fetch_add(&b->refs, 1, __ATOMIC_RELAXED);
	urcu_bp_read_unlock();
	return &b->s;
}

void tiermm__rtree_snapshot_put(const struct tiermm__rtree_snap *s)
{
	if (s)
		snap_unref(caa_container_of(s, struct snap_box, s));
}

const struct tiermm__range *
tiermm__rtree_snap_find(const struct tiermm__rtree_snap *s, uint64_t addr)
{
	size_t lo = 0, hi = s->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct tiermm__range *r = &s->ranges[s->by_addr[mid]];

		if (addr < r->start)
			hi = mid;
		else if (addr >= r->end)
			lo = mid + 1;
		else
			return r;
	}
	return NULL;
}

/* ---- the hot set ---- */

uint64_t tiermm__fit_hot_set(const struct tiermm__range *ranked, size_t n,
			     uint64_t budget, double hysteresis, uint64_t *hot)
{
	size_t i = 0, j = 0;
	uint64_t used = 0;

	if (!(hysteresis > 0))
		hysteresis = DEF_HYSTERESIS;
	if (hysteresis < 1)
		hysteresis = 1;
	memset(hot, 0, n * sizeof(*hot));
	/*
	 * Incumbents and challengers are each in density order already (both
	 * are subsequences of ranked[]): merge the two by key.
	 */
	for (;;) {
		size_t pick;
		uint64_t size, left;

		while (i < n && !ranked[i].hot)
			i++;
		while (j < n && (ranked[j].hot || ranked[j].cooling ||
				 !(ranked[j].count > 0)))
			j++;
		if (i == n && j == n)
			break;
		if (i < n && (j == n || ranked[i].density * hysteresis >=
					ranked[j].density))
			pick = i++;
		else
			pick = j++;
		size = ranked[pick].end - ranked[pick].start;
		left = budget - used;
		if (size <= left) {
			hot[pick] = size;
			used += size;
			continue;
		}
		hot[pick] = left & ~(PAGE - 1);
		used += hot[pick];
		break;
	}
	return used;
}

/* Record plan[j] for the j-th densest (perm from rank()), then publish. */
static int apply_plan(struct tiermm__rtree *t, const uint32_t *perm,
		      const uint64_t *plan)
{
	for (size_t i = 0; i < t->n; i++)
		t->v[i].hot = 0;
	for (size_t j = 0; j < t->n; j++) {
		struct node *nd = &t->v[perm[j]];

		nd->hot = plan[j] < node_size(nd) ? plan[j] : node_size(nd);
	}
	return tiermm__rtree_publish(t);
}

int tiermm__rtree_set_hot(struct tiermm__rtree *t,
			  const struct tiermm__range *ranked, size_t n,
			  const uint64_t *hot)
{
	int skipped = 0, err;

	for (size_t i = 0; i < t->n; i++)
		t->v[i].hot = 0;
	for (size_t k = 0; k < n; k++) {
		long i = find(t, ranked[k].start);
		struct node *nd = i >= 0 ? &t->v[i] : NULL;

		if (!nd || nd->start != ranked[k].start ||
		    nd->id != ranked[k].id) {
			skipped++;
			continue;
		}
		nd->hot = hot[k] < node_size(nd) ? hot[k] : node_size(nd);
	}
	err = tiermm__rtree_publish(t);
	return err ? err : skipped;
}

int tiermm__rtree_plan(struct tiermm__rtree *t, uint64_t budget,
		       double hysteresis, uint64_t *hot_bytes)
{
	uint64_t used;

	rank(t, t->rs, t->perm);
	for (size_t j = 0; j < t->n; j++)
		t->rk[j] = t->rs[t->perm[j]];
	used = tiermm__fit_hot_set(t->rk, t->n, budget, hysteresis, t->plan);
	if (hot_bytes)
		*hot_bytes = used;
	return apply_plan(t, t->perm, t->plan);
}

/* ---- checks ---- */

int tiermm__rtree_check(const struct tiermm__rtree *t)
{
	if (t->n > t->cap || (t->n && t->last >= t->n))
		return tiermm__fail(EUCLEAN, "range tree: n %zu cap %zu last %zu",
				    t->n, t->cap, t->last);
	for (size_t i = 0; i < t->n; i++) {
		const struct node *nd = &t->v[i];

		if (nd->start >= nd->end || nd->start % PAGE || nd->end % PAGE)
			return tiermm__fail(EUCLEAN, "range tree: range %zu [%#llx, %#llx) is empty or not page aligned",
					    i, (unsigned long long)nd->start,
					    (unsigned long long)nd->end);
		if (i && nd->start < t->v[i - 1].end)
			return tiermm__fail(EUCLEAN, "range tree: range %zu [%#llx, ...) overlaps or precedes the one before",
					    i, (unsigned long long)nd->start);
		if (t->starts[i] != nd->start)
			return tiermm__fail(EUCLEAN, "range tree: stale search index at %zu", i);
		if (nd->mul != (uint64_t)(((unsigned __int128)SUBS << 64) /
					 node_size(nd)))
			return tiermm__fail(EUCLEAN, "range tree: stale multiplier at %zu", i);
		if (nd->hot > node_size(nd))
			return tiermm__fail(EUCLEAN, "range tree: plan of range %zu exceeds it", i);
		for (int k = 0; k < SUBS; k++)
			if (!(nd->sub[k] >= 0) || !isfinite(nd->sub[k]))
				return tiermm__fail(EUCLEAN, "range tree: range %zu counter %d is %g",
						    i, k, nd->sub[k]);
	}
	return 0;
}
