/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The tiering engine (engine.c) and the world it acts on (migrator.c), as
 * the runtime (runtime.c) drives them. Private; never installed.
 *
 * One engine per managed process, driven by one thread (the runtime's
 * engine thread): every call below except where noted comes from that
 * thread only. Each epoch the runtime calls
 *
 *   tiermm__engine_record()    observations dequeued from the sampler
 *   tiermm__engine_classify()  address space, range-tree epoch, the plan
 *                              within the budget, hints applied
 *   tiermm__engine_migrate()   demote to make room, then promote, paced
 *
 * and reads the counters with tiermm__engine_stats().
 */
#ifndef TIERMM_ENGINE_H
#define TIERMM_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "tiering.h"

struct tiermm_topo;
struct tiermm_move_result;
struct tiermm_runtime_stats;

/* A managed mapping and where its resident pages are, in bytes. */
struct tiermm__mapping {
	uint64_t start, end;
	uint64_t fast, slow, other;	/* on the fast tier, the slow tier,
					 * any other tier (or an unknown node) */
};

struct tiermm__engine_cfg {
	pid_t pid;			/* 0: the calling process */
	const struct tiermm_topo *topo;
	int fast_tier, slow_tier, nr_tiers;
	uint32_t nr_cpus;		/* range-tree thresholds; 0: online */
};

/*
 * The world: where the managed process's pages are and how they move. The
 * runtime uses tiermm__real_env (migrator.c: /proc/PID/maps and numa_maps,
 * move_pages(2) through tiermm__mover_run()); unit tests install their own
 * (tiermm__runtime_set_test_env()).
 */
struct tiermm__env_ops {
	/* 0 or -errno with tiermm_errmsg() set. */
	int (*open)(void *arg, const struct tiermm__engine_cfg *cfg, void **env);
	void (*close)(void *env);
	/*
	 * The managed mappings (writable, migratable) sorted by address,
	 * disjoint, with their residency if asked (else fast, slow and other
	 * are 0): *out (free()), *n. 0 or -errno (-ESRCH: the process is
	 * gone).
	 */
	int (*mappings)(void *env, bool residency, struct tiermm__mapping **out,
			size_t *n);
	/* Start of a migration stage: refresh what the moves need. */
	void (*epoch)(void *env);
	/*
	 * Move the present pages of [start, end) to tier (the fast or the
	 * slow one), as tiermm__mover_run().
	 */
	int (*move)(void *env, uint64_t start, uint64_t end, int tier,
		    struct tiermm__move_ctl *ctl, struct tiermm_move_result *r);
	/*
	 * Free bytes the tier can take (its nodes' usable free memory above
	 * the low watermarks), as of the last epoch() or open().
	 */
	uint64_t (*tier_free)(void *env, int tier);
	/*
	 * Optional, for page mode (heat.c): where each page is, cls[i] =
	 * TIERMM__WHERE_*, from a move_pages(2) status query. 0 or -errno.
	 */
	int (*where)(void *env, const uint64_t *addrs, size_t n, uint8_t *cls);
	/*
	 * Optional, for page mode: move the pages (at most 512) to tier; cls[i]
	 * where each is afterwards (the move's status; TIERMM__WHERE_HUGE or-ed
	 * in for pages of a transparent huge page, which moved whole), r the
	 * counts in base pages as tiermm__mover_run()'s (moved, already there,
	 * failures by reason).
	 * 0 or -errno for the whole call (-ESRCH: the process is gone).
	 */
	int (*move_list)(void *env, const uint64_t *addrs, size_t n, int tier,
			 uint8_t *cls, struct tiermm_move_result *r);
};

enum {
	TIERMM__WHERE_FAST = 0,
	TIERMM__WHERE_SLOW = 1,
	TIERMM__WHERE_OTHER = 2,	/* another tier, not present, or an error */
	TIERMM__WHERE_HUGE = 0x80,	/* move_list: or-ed in, the page is in a
					 * transparent huge page (moved whole) */
};

/* ---- page-level heat (heat.c) ---- */

#define TIERMM__HEAT_PAGES 512	/* 4 KiB pages a 2 MiB block */
#define TIERMM__HEAT_STEP 4	/* added for each pass that saw a page accessed */
#define TIERMM__HEAT_DECAY_PASSES 16	/* counts halve every 16 passes */

struct tiermm__heat_block {
	uint64_t base;			/* 2 MiB aligned */
	uint64_t valid[8];		/* pages inside managed mappings */
	uint64_t old_valid[8];		/* (heat.c: the previous sync's) */
	uint64_t known[8];		/* where the page is is known ... */
	uint64_t fast[8];		/* ... and it is on the fast tier */
	uint8_t heat[TIERMM__HEAT_PAGES];
	bool huge;			/* a transparent huge page maps it (as
					 * last seen by a query or a move) */
};

/* A managed mapping as the counts see it (heat.c). */
struct tiermm__heat_span {
	uint64_t start, end;
	bool sparse;			/* blocks only where pages were seen
					 * accessed (heat.c: sparse mappings) */
};

struct tiermm__heat {
	struct tiermm__heat_block *b;	/* sorted by base */
	size_t n;
	struct tiermm__heat_span *lay;	/* the mappings of the last sync */
	size_t nlay;
	bool synced;
	uint64_t dropped;		/* observations dropped: out of memory */
	bool fed;			/* page-level observations came in */
	uint64_t passes;		/* OBS_PASS marks seen */
	/* Pages seen accessed in the current pass, whose tier is known ... */
	uint64_t pass_known;
	uint64_t pass_fast;		/* ... and on the fast tier */
	double fast_share;		/* of the last complete pass; NaN: none */
	/*
	 * Pages seen accessed in the current pass, and those of them counting
	 * plan_t or more (the engine's threshold: its plan) before the pass;
	 * plan_share: the least such share of the passes since the engine
	 * last took it that saw TIERMM__PLAN_SHARE_MIN pages or more, NaN if
	 * none did.
	 */
	unsigned int plan_t;
	uint64_t pass_hits, pass_plan;
	double plan_share;
};
#define TIERMM__PLAN_SHARE_MIN 256

int tiermm__heat_new(struct tiermm__heat **h);
void tiermm__heat_free(struct tiermm__heat *h);
/*
 * Blocks for the mappings (sorted, disjoint, with their residency): every
 * block of a dense mapping, the blocks seen accessed of a sparse one (heat.c).
 * 1 if the blocks were rebuilt, 0 if the layout (and which mappings are
 * sparse) is what it was, -ENOMEM (unchanged).
 */
int tiermm__heat_sync(struct tiermm__heat *h, const struct tiermm__mapping *m,
		      size_t n);
/* The TIERMM__OBS_BITS observations (new blocks for sparse mappings'
 * pages); others are ignored. */
void tiermm__heat_record(struct tiermm__heat *h, const struct tiermm__obs *obs,
			 size_t n);
/* Halve the counts (tiermm__heat_record() does, every few passes). */
void tiermm__heat_decay(struct tiermm__heat *h);
/* Forget where pages are (they will be asked about again). */
void tiermm__heat_forget_where(struct tiermm__heat *h);
/* The block holding addr, or NULL. */
struct tiermm__heat_block *tiermm__heat_block(struct tiermm__heat *h, uint64_t addr);
/* Pages (of the mappings) per count value. */
void tiermm__heat_histogram(const struct tiermm__heat *h, uint64_t hist[256]);
/*
 * The lowest count t >= 1 such that the pages counting t or more number at
 * most pages (*above: how many); 256 if not even the hottest fit.
 */
unsigned int tiermm__heat_threshold(const uint64_t hist[256], uint64_t pages,
				    uint64_t *above);

extern const struct tiermm__env_ops tiermm__real_env;

/* The fast-tier budget asked for: a share (> 0) of the resident memory, or
 * bytes. */
struct tiermm__budget_req {
	uint64_t bytes;
	double share;
};

/*
 * Pacing of the migration (the runtime's rate limit, CPU quota and stop):
 * allow() is asked before each batch (a move_pages(2) window) for the most
 * bytes it may cover (0: stop migrating this epoch); used() is told the
 * bytes each batch moved.
 */
struct tiermm__pace {
	uint64_t (*allow)(void *ctx);
	void (*used)(void *ctx, uint64_t bytes);
	void *ctx;
};

struct tiermm__engine;

/*
 * Open the world, read the address space (the tree starts with it). 0 or
 * -errno with tiermm_errmsg() set.
 */
int tiermm__engine_new(const struct tiermm__engine_cfg *cfg,
		       const struct tiermm__env_ops *ops, void *arg,
		       struct tiermm__engine **e);
void tiermm__engine_free(struct tiermm__engine *e);
/* Resident bytes of the managed mappings on the fast tier and in all, as of
 * the last address-space read. */
void tiermm__engine_usage(const struct tiermm__engine *e, uint64_t *fast,
			  uint64_t *resident);
/* Free bytes of a tier now (the world's tier_free()). */
uint64_t tiermm__engine_tier_free(struct tiermm__engine *e, int tier);
void tiermm__engine_record(struct tiermm__engine *e,
			   const struct tiermm__obs *obs, size_t n);
/*
 * The epoch's classification: re-read the address space (map/unmap into
 * the tree), end the tree's epoch, read the hints (the calling process
 * only), rank with the hints' bias, fit the hot set to the budget (capped
 * at capacity, the fast tier's size) and record it. 0 or -errno (-ESRCH:
 * the process is gone; -ENOMEM).
 */
int tiermm__engine_classify(struct tiermm__engine *e,
			    const struct tiermm__budget_req *req,
			    uint64_t capacity);
/*
 * The epoch's migration, within pace: PIN_* ranges to their tiers (when the
 * hints changed or every few epochs), cold pages off the fast tier to make
 * room, hot pages onto it while the budget has room. Returns 1 if pace
 * stopped it, 0 when it ran out of work, or -errno (-ESRCH).
 */
int tiermm__engine_migrate(struct tiermm__engine *e,
			   const struct tiermm__pace *pace);
/*
 * Bytes that entered or left the plan's hot set at the last classification
 * (range mode: by address; page mode: the change in the hot pages'
 * number), for the runtime's pace.
 */
uint64_t tiermm__engine_plan_changed(const struct tiermm__engine *e);
/*
 * Page mode: per mille of the plan's heat not on the fast tier (0 otherwise).
 * Settled, TIERMM__MISPLACED_SHIFT or more, and twice what it was when the
 * runtime settled, is a shift (runtime.c, tiermm__settle_step()).
 */
#define TIERMM__MISPLACED_SHIFT 50
unsigned int tiermm__engine_misplaced(const struct tiermm__engine *e);
/*
 * Page mode: of the pages a pass saw accessed, the share that the plan
 * holds (counting its threshold or more), the least of the passes since
 * the last call; NaN when unknown (range mode, no such pass, or too few
 * pages seen). A hot set that moves drops it at the first pass after.
 */
double tiermm__engine_plan_share(struct tiermm__engine *e);
/* The same without starting over: the least since the last call of the above. */
double tiermm__engine_plan_share_now(const struct tiermm__engine *e);
/*
 * Page mode: what the last migration did for the plan, the counts of the
 * pages it moved onto the fast tier less those of the pages it moved off
 * (a huge page weighs its 512 pages), as a share of the plan's heat (the
 * counts of the pages at the threshold or more); NaN in range mode or
 * before a plan. Settling weighs moves by it: the long tail of a placement
 * trades pages just over the threshold for pages just under it, many
 * pages for little heat.
 */
double tiermm__engine_gain_share(const struct tiermm__engine *e);

/*
 * Settling (runtime.c): the runtime's pace from one epoch to the next, as
 * a pure step so that its rules are tested without threads or a world.
 */
struct tiermm__settle {
	unsigned int quiet;	/* quiet epochs in a row at the full pace */
	unsigned int mis_ref;	/* misplaced per mille it settled with */
	unsigned int mis_min;	/* ... the least in the quiet run */
	double share_ref;	/* the least plan share in the quiet run */
	double share_max;	/* ... the most */
};

struct tiermm__settle_in {
	unsigned int pace, pace_max;	/* now (1: full), and the slowest */
	bool busy;	/* moved, was cut short or its plan changed: not quiet */
	bool nomem;	/* promotions failed for the fast tier's memory */
	bool warm;	/* enough epochs and counts to settle on */
	unsigned int mis;	/* tiermm__engine_misplaced() (unused if busy) */
	double share;	/* tiermm__engine_plan_share(); NaN: unknown */
};

/*
 * Whether an epoch was busy: the migration was cut short (paced), the plan
 * changed by 1/TIERMM__SETTLE_SHARE of the budget (dhot pages), or it moved
 * much. Much: in page mode (gain not NaN), a gain (tiermm__engine_gain_share(),
 * either sign) of 1/TIERMM__SETTLE_GAIN of the plan's heat per base epoch;
 * in range mode, 1/TIERMM__SETTLE_SHARE of the budget in pages (moved) per
 * base epoch. An epoch at pace N is N base epochs long.
 */
#define TIERMM__SETTLE_SHARE 64
#define TIERMM__SETTLE_GAIN 64
bool tiermm__settle_busy(unsigned int pace, bool paced, uint64_t moved, uint64_t dhot,
			 uint64_t budget_pages, double gain);

#define TIERMM__SETTLE_EPOCHS 4	/* quiet epochs in a row to settle */
#define TIERMM__BACKOFF_FIRST 8	/* the first slow pace */

/* The pace of the next epoch (1: full). */
unsigned int tiermm__settle_step(struct tiermm__settle *s,
				 const struct tiermm__settle_in *in);
/*
 * Settled (pace > 1): whether the plan share of the passes so far in the
 * epoch says the hot set moved (under 2/3 of the reference), so that the
 * epoch should end now rather than at its slow deadline.
 */
bool tiermm__settle_share_fell(const struct tiermm__settle *s, unsigned int pace,
			       double share);
/*
 * Whether the counts are worth settling on: in page mode after two decay
 * periods of passes (32), whatever their pace (a scanner that takes a
 * second a pass would otherwise look settled before it has seen anything:
 * nothing moves while the counts build up, and the hot set's size is the
 * budget's from the start); always in range mode.
 */
bool tiermm__engine_warm(const struct tiermm__engine *e);
/* The runtime's pace (1: full; N: epochs N base epochs long), before classify. */
void tiermm__engine_set_pace(struct tiermm__engine *e, unsigned int backoff);
/* Pages moved so far (promoted + demoted), for the runtime's pace. */
uint64_t tiermm__engine_moved_pages(const struct tiermm__engine *e);
/* The engine's counters into the engine fields of s (not the runtime's). */
void tiermm__engine_stats(struct tiermm__engine *e,
			  struct tiermm_runtime_stats *s);

/* ---- Test hooks (runtime.c). Not thread-safe: set before start(). ---- */

/*
 * A backend the runtime resolves by its name (ops->name) ahead of the real
 * ones; NULL removes it. "auto" never picks it.
 */
void tiermm__runtime_set_test_backend(const struct tiermm__backend_ops *ops);
/* The world the engine acts on; NULL: the real one. */
void tiermm__runtime_set_test_env(const struct tiermm__env_ops *ops, void *arg);

#endif /* TIERMM_ENGINE_H */
