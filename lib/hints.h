/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Hints of the calling process (hints.c, tiermm_hint(3)), as the tiering
 * engine and statistics read them. Included by tiering.h.
 *
 * tiermm_hint() keeps one process-wide interval map of the calling
 * process's address space: sorted, non-overlapping [start, end) ranges,
 * each with one enum tiermm_hint other than DEFAULT; touching neighbours
 * with the same hint are merged. A later hint replaces earlier ones where
 * they overlap; DEFAULT removes them. Hints name addresses, not mappings:
 * they survive munmap (tiermm_free() clears its range) and a fork() child
 * inherits them. They describe the calling process only: an engine
 * managing another process (tiermmd) must not consult them.
 *
 * The map is an immutable snapshot published with RCU (liburcu-bp: readers
 * need no registration, so any thread may read). Readers never wait for
 * writers; a writer waits only for read sections that began before it
 * published (a grace period), which is why read-side callbacks must be
 * short and must not block.
 */
#ifndef TIERMM_HINTS_H
#define TIERMM_HINTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The values of enum tiermm_hint (tiermm/place.h, checked in hints.c), so
 * this header needs no public header: tiering.h users such as the fuzz
 * targets build with lib/ alone on their include path.
 */
#define TIERMM__HINT_DEFAULT 0
#define TIERMM__HINT_HOT 1
#define TIERMM__HINT_COLD 2
#define TIERMM__HINT_PIN_FAST 3
#define TIERMM__HINT_PIN_SLOW 4
#define TIERMM__HINT_NO_MIGRATE 5

struct tiermm_topo;

struct tiermm__hint_range {
	uint64_t start, end;	/* page aligned, start < end */
	int hint;		/* TIERMM__HINT_*, never DEFAULT */
};

/*
 * Called for each range overlapping the query, in ascending order, inside
 * an RCU read-side section: must not block, sleep, call tiermm_hint() or
 * tiermm_free() (they would wait for this very section; they fail with
 * -EDEADLK instead), or keep r after returning. A non-zero return stops the
 * walk and is returned.
 */
typedef int (*tiermm__hint_fn)(const struct tiermm__hint_range *r, void *ctx);

/* Walk the ranges overlapping [start, end). 0 or fn's non-zero value. */
int tiermm__hints_lookup(uint64_t start, uint64_t end, tiermm__hint_fn fn,
			 void *ctx);
/* The hint at addr (TIERMM__HINT_DEFAULT: none). Never blocks. */
int tiermm__hints_at(uint64_t addr);
/*
 * A private copy of the ranges overlapping [start, end), for work outside
 * the read section: *out (free() it; NULL when *n is 0), *n, and in *gen
 * (may be NULL) the generation the copy belongs to. 0 or -ENOMEM.
 */
int tiermm__hints_snapshot(uint64_t start, uint64_t end,
			   struct tiermm__hint_range **out, size_t *n,
			   uint64_t *gen);
/*
 * Incremented by every change: an engine re-reads its copy only when this
 * differs from the gen it was made at. 0 before the first hint.
 */
uint64_t tiermm__hints_generation(void);
/*
 * What the engine may do with a page under hint h, moving it to tier
 * to_tier of nr_tiers: HOT/COLD/DEFAULT anything (HOT and COLD only bias
 * the ranking), NO_MIGRATE nothing, PIN_FAST only to tier 0 and PIN_SLOW
 * only to the slowest tier (pages faulted in after the pin may be brought
 * there; pinned pages are never moved away).
 */
static inline bool tiermm__hint_allows_move(int h, int to_tier, int nr_tiers)
{
	switch (h) {
	case TIERMM__HINT_NO_MIGRATE:
		return false;
	case TIERMM__HINT_PIN_FAST:
		return to_tier == 0;
	case TIERMM__HINT_PIN_SLOW:
		return to_tier == nr_tiers - 1;
	default:
		return true;
	}
}
/* Drop the hints on [start, end) whether mapped or not (tiermm_free()). */
void tiermm__hints_clear(uint64_t start, uint64_t end);
/* Drop every hint (tests, and a child that wants a fresh map). */
void tiermm__hints_reset(void);

/*
 * The running machine's topology, loaded once per process on first use (no
 * probes; TIERMM_TIERS applies) and never freed (place.c); NULL with errno
 * and tiermm_errmsg() set if it cannot be loaded. PIN_* hints move with it.
 */
const struct tiermm_topo *tiermm__live_topo(void);

#endif /* TIERMM_HINTS_H */
