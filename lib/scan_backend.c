// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Hotness backend "scan": tiermm.ko's accessed-bit scanner
 * (tiermm_ab_scan_*), for machines and VMs without precise sampling.
 *
 * A pass visits the process's writable mappings (heap, stacks, anonymous
 * and writable file mappings, read from /proc/PID/maps when the pass
 * starts, so new mappings are seen from the next pass on), tests and clears
 * their accessed bits, and reports what was found accessed since the
 * previous pass. Code and read-only data are not scanned: the classifier
 * tracks the data areas, and clearing bits costs the kernel's reclaim
 * information (the module marks the folio young when it clears a bit, as
 * DAMON does, but only for the pages we scan).
 *
 * Granularity: the bitmap mode, one bit per 4 KiB page (a THP sets its 512
 * bits), summarised per 2 MiB block of the address space: one
 * TIERMM__OBS_RANGE | TIERMM__OBS_SPREAD observation from the block's first
 * to its last accessed page, hits = its accessed pages (emit()). The
 * classifier's ranges are 2 MiB at least, so it loses nothing that it
 * would use, and a pass over 1 GiB gives at most 512 observations (one per
 * run of accessed pages gave one per page under random access, and
 * ingesting them cost more than scanning). The bitmap rather than the
 * module's counts mode: it needs no 2 MiB alignment of the scanned range,
 * so only writable mappings are scanned. It costs 32 KiB per 1 GiB window.
 *
 * Bounded work: poll() examines at most max_pages pages (default 262144,
 * 1 GiB of 4 KiB pages; ranges without page tables cost nothing), in
 * scanner calls of a quarter of that (and at most 4096 calls or about
 * 20 ms, for sparse address spaces), and continues the pass at the next
 * poll. A new pass starts no sooner than interval_us (default 100 ms)
 * after the previous one started, so a small process is not rescanned at
 * every poll.
 *
 * Arming: a page's bit says whether it was touched since the pass that
 * cleared it. Under a CPU quota the sampler may pause for seconds, and bits
 * cleared that long ago are set for every page a busy process touches at
 * all. A pass that starts more than 2 x interval_ns + 200 ms after the
 * previous one ended (or the first one) only clears (st.arm_passes) and
 * reports nothing; the SCAN_BURST (4) passes after it, interval_ns apart,
 * report, each what was touched since the one before. So the window stays
 * interval_ns (100 ms: what separates a page touched 10 times a second
 * from one touched twice) whatever the pace, and a quota lowers how often
 * pages are sampled, not what a sample means. poll() returns 1 while a
 * pass is unfinished or passes of the burst are due, and the runtime's
 * sampler then polls on time even when over its CPU quota (it pays the
 * burst back after: runtime.c); a late pass inside a burst arms again.
 * Without a quota no pass is late and only the first one arms.
 * Why bursts rather than one reporting pass per arming one: an arming pass
 * clears every bit and costs more than a reporting one (in the TCG guest,
 * 512 MiB: 100-240 ms against 30-160 ms), so with pairs two thirds of a
 * quota-paced sampler's CPU went to arming (measured at 5%: one report in
 * 10 s); with bursts of four, about a third. The engine's page mode needs
 * passes, not seconds (counts decay per 16 passes, a promotion displaces
 * a page only when hotter by 8 passes' worth), so reports per CPU second
 * is what a quota buys. That all passes reached the engine under a quota
 * was checked in the guest (it was the engine's pacing that moved
 * nothing: runtime.c).
 *
 * The window, adaptive: a bit says "touched at least once", so a window
 * in which every page is touched says nothing. At hardware speed that is
 * the rule, not the exception: GUPS's cold pages (10% of 40 M updates/s
 * over 120 K pages) are each touched 3 times in 100 ms, its hot ones 400
 * times; every pass finds every page accessed and nothing is ever
 * promoted (seen in the guest with guest time following instructions,
 * QEMU -icount: docs/tiering-benchmark.md). So after each reporting pass
 * that found more than half of the pages it scanned accessed
 * (WINDOW_FULL), the window halves, down to WINDOW_MIN_NS; after one that
 * found fewer than an eighth (WINDOW_EMPTY), it doubles, up to interval_ns.
 * A window shorter than the interval cannot be the time between two passes
 * (a pass over 100 GiB takes longer): such a pass is "paired": it clears
 * chunks of PAIR_PAGES mapped pages (32 MiB) one after the other, and
 * reads each again once the window has passed since its clearing began,
 * between clearings (a chunk read late by at most one chunk's clearing);
 * what the clearing found is only reported as present
 * (TIERMM__OBS_PRESENT). A paired pass reads each chunk PAIR_READS (4)
 * times, each read a window after the one before (a read clears what it
 * reports, so it starts the next window), and counts as that many
 * reporting passes: the burst in one pass, which needs no arming (a stale
 * pass is just paired), and paired passes start PAIR_READS intervals
 * apart, so reports come as often as unpaired passes would.
 * Why four reads to a clearing: the clearing read finds every page a busy
 * process touched since the last pass and pays the kernel's work for each
 * (146 ns a page against 21 for an untouched one, in instruction time:
 * bench/scan_cost.c), while a read after a short window finds few: with a
 * clearing per read, most of the scanning was clearing. Reads of one chunk
 * are a few windows apart rather than an interval: for a page's access
 * rate, which is what the counts estimate, disjoint windows are as good as
 * spread ones. A page of a busy process is thus judged by a few
 * milliseconds of its life: what is sampled is short, how often is
 * unchanged.
 *
 * Freshness: TIERMM_AB_SCAN_FLUSH, so every call that cleared bits ends
 * with a TLB flush on all CPUs (the module cannot flush one mm); without it
 * a page whose translation stays cached would not be marked accessed again
 * and the hottest pages would look cold. Cost: one global flush per scanner
 * call that found something, about 4 per poll at most.
 *
 * CPU: the ioctls run in the caller's thread (system time of the thread
 * that calls poll()), so cpu_ns() is 0.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <tiermm/pt.h>

#include "internal.h"
#include "tiering.h"

#define SCAN_PAGE 4096ull
#define SCAN_BLOCK (2ull << 20)
#define DEF_INTERVAL_US 100000
#define DEF_MAX_PAGES 262144
/*
 * Backstops per poll: scanner calls and wall time. Calls over ranges
 * without page tables examine nothing and cost only the system call, but a
 * sparse reservation (sanitizer shadow, JVM or Go arenas) is thousands of
 * 1 GiB windows.
 */
#define CALLS_PER_POLL 4096
#define POLL_NS_MAX 20000000ull
#define OBS_BATCH 128
/* A pass starting later than 2 x interval + this after the last one ended
 * only arms (the sampler's own poll period is up to 100 ms). */
#define STALE_SLACK_NS 200000000ull
/* Reporting passes that follow an arming one, due on time. */
#define SCAN_BURST 4
/* The adaptive window: shares of the pages a reporting pass scanned that
 * it found accessed, above which it halves, below which it doubles. */
#define WINDOW_FULL 2		/* 1/2 */
#define WINDOW_EMPTY 8		/* 1/8 */
#define WINDOW_MIN_NS 1000000ull
#define WINDOW_MIN_PAGES 1024	/* smaller passes do not adapt it */
#define PAIR_PAGES 8192	/* paired passes: chunks of this many pages */
#define PAIR_CALLS 1024		/* ... or scanner calls (sparse spans) */
#define PAIR_READS SCAN_BURST	/* paired: reads of a chunk after its clearing */

struct span {
	uint64_t start, end;	/* writable mappings, adjacent ones merged */
};

struct chunk {
	uint64_t lo, hi;	/* part of a span */
	uint64_t armed;		/* when its clearing or its last read began */
	unsigned int reads;	/* reads still due */
};

struct tiermm__backend {
	pid_t pid;		/* as given (0: self) */
	pid_t real_pid;
	uint64_t interval_ns;
	uint64_t max_pages;
	struct span *spans;
	size_t nspans, si;
	struct tiermm_ab_scanner *sc;
	bool in_pass;
	bool arming;		/* this pass only clears: the bits were stale */
	unsigned int due;	/* reporting passes of the burst still due */
	bool paired;		/* this pass clears each chunk before reading */
	uint64_t window_ns;	/* < interval_ns: passes are paired */
	struct chunk *chunks;	/* paired: the chunks cleared so far, */
	size_t nchunks, cchunks, ri;	/* ... the next to read */
	size_t asi;		/* the span clearing is in ... */
	uint64_t apos;		/* ... and where */
	uint64_t pass_scanned, pass_accessed;	/* this reporting pass */
	uint64_t pass_start, pass_end;
	struct tiermm__obs batch[OBS_BATCH];
	size_t nbatch;
	struct tiermm__backend_stats st;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static bool live(const struct tiermm__backend_cfg *cfg)
{
	return !cfg->fsroot || !cfg->fsroot[0] || !strcmp(cfg->fsroot, "/");
}

/* Writable user mappings of pid, sorted, adjacent ones merged. */
static int read_spans(pid_t pid, struct span **out, size_t *nout)
{
	struct tiermm__fs fs;
	char rel[64], path[PATH_MAX], *line = NULL;
	size_t cap = 0, n = 0, linecap = 0;
	struct span *s = NULL, *tmp;
	FILE *f;
	int err, saved = errno;

	*out = NULL;
	*nout = 0;
	tiermm__fs_init(&fs, NULL);
	snprintf(rel, sizeof(rel), "/proc/%d/maps", (int)pid);
	if (tiermm__fs_path(&fs, rel, path, sizeof(path)))
		return -ENAMETOOLONG;
	f = fopen(path, "re");
	if (!f) {
		err = errno;
		errno = saved;
		return err == ENOENT ? -ESRCH : -err;
	}
	while (getline(&line, &linecap, f) > 0) {
		uint64_t lo, hi;
		char perms[8];

		if (sscanf(line, "%" SCNx64 "-%" SCNx64 " %7s", &lo, &hi, perms) != 3 ||
		    hi <= lo || perms[1] != 'w' || (lo >> 63) || (lo | hi) % SCAN_PAGE)
			continue;
		if (n && lo <= s[n - 1].end) {
			if (hi > s[n - 1].end)
				s[n - 1].end = hi;
			continue;
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 32;
			tmp = realloc(s, cap * sizeof(*s));
			if (!tmp) {
				free(s);
				free(line);
				fclose(f);
				errno = saved;
				return -ENOMEM;
			}
			s = tmp;
		}
		s[n++] = (struct span){ .start = lo, .end = hi };
	}
	free(line);
	fclose(f);
	errno = saved;
	*out = s;
	*nout = n;
	return 0;
}

static int flush_obs(struct tiermm__backend *b, tiermm__obs_sink sink, void *ctx)
{
	int ret;

	if (!b->nbatch)
		return 0;
	ret = sink(b->batch, b->nbatch, ctx);
	b->st.observations += b->nbatch;
	b->nbatch = 0;
	return ret < 0 ? ret : 0;
}

/*
 * One observation per 2 MiB block (of the address space) with accessed
 * pages: the span from its first to its last accessed page, with the number
 * of accessed pages spread over it.
 */
static int emit_block(struct tiermm__backend *b, const struct tiermm_ab_batch *bt,
		      uint64_t lo, uint64_t hi, uint64_t first, uint64_t last,
		      uint64_t accessed, bool report, uint64_t now,
		      tiermm__obs_sink sink, void *ctx)
{
	struct tiermm__obs *o = &b->batch[b->nbatch++];
	uint64_t addr = bt->base + first * SCAN_PAGE;
	uint64_t blk = addr & ~(SCAN_BLOCK - 1);

	*o = (struct tiermm__obs){
		.addr = addr,
		.weight = (uint32_t)(last - first + 1),	/* <= 512 */
		.hits = (uint32_t)accessed,
		.flags = TIERMM__OBS_RANGE | TIERMM__OBS_SPREAD | TIERMM__OBS_BITS |
			 (report ? 0 : TIERMM__OBS_PRESENT),
		.time_ns = now,
	};
	/* The block's bits, as bit (page - blk) / 4 KiB. */
	for (uint64_t i = lo; i < hi; i++)
		if (bt->bitmap[i / 64] & (1ull << (i % 64))) {
			uint64_t k = (bt->base + i * SCAN_PAGE - blk) / SCAN_PAGE;

			o->bits[k / 64] |= 1ull << (k % 64);
		}
	return b->nbatch == OBS_BATCH ? flush_obs(b, sink, ctx) : 0;
}

/* Bits [lo, hi) of a bitmap: how many are set, the first and the last. */
static uint64_t bits_in(const uint64_t *map, uint64_t lo, uint64_t hi,
			uint64_t *first, uint64_t *last)
{
	uint64_t n = 0;

	*first = UINT64_MAX;
	*last = 0;
	for (uint64_t i = lo; i < hi;) {
		uint64_t left = 64 - i % 64, word = map[i / 64] >> (i % 64);

		if (hi - i < left)
			left = hi - i;
		if (left < 64)
			word &= (1ull << left) - 1;
		if (word) {
			if (*first == UINT64_MAX)
				*first = i + (uint64_t)__builtin_ctzll(word);
			*last = i + 63 - (uint64_t)__builtin_clzll(word);
			n += (uint64_t)__builtin_popcountll(word);
		}
		i += left;
	}
	return n;
}

/*
 * What [bt->start, bt->end) found accessed, as one observation per 2 MiB
 * block with accessed pages (emit_block()): at most 512 pages a block,
 * so a pass over 1 GiB gives at most 512 observations, whatever the access
 * pattern (one per run of accessed pages gave one per page for random
 * accesses: hundreds of thousands a pass, and their ingestion cost more
 * than the scan). The classifier's ranges are 2 MiB or larger, and a
 * block's accesses stay within the first and last accessed page.
 */
static int emit(struct tiermm__backend *b, const struct tiermm_ab_batch *bt,
		bool report, uint64_t now, tiermm__obs_sink sink, void *ctx)
{
	uint64_t a;
	int ret;

	if (bt->end <= bt->start || !bt->bitmap)
		return 0;
	for (a = bt->start; a < bt->end;) {
		uint64_t blk_end = (a | (SCAN_BLOCK - 1)) + 1, lo, hi, first, last, n;

		if (blk_end > bt->end || blk_end < a)
			blk_end = bt->end;
		lo = (a - bt->base) / SCAN_PAGE;
		hi = (blk_end - bt->base) / SCAN_PAGE;
		if (hi > bt->nr)
			hi = bt->nr;
		if (lo >= hi)
			break;
		n = bits_in(bt->bitmap, lo, hi, &first, &last);
		if (n) {
			ret = emit_block(b, bt, lo, hi, first, last, n, report,
					 now, sink, ctx);
			if (ret)
				return ret;
		}
		a = blk_end;
	}
	return 0;
}

/* After a reporting pass: the window from what it found (see the top). */
static void adapt_window(struct tiermm__backend *b)
{
	uint64_t w = b->window_ns;

	if (b->pass_scanned < WINDOW_MIN_PAGES)
		return;
	if (b->pass_accessed * WINDOW_FULL > b->pass_scanned && w / 2 >= WINDOW_MIN_NS)
		w /= 2;
	else if (b->pass_accessed * WINDOW_EMPTY < b->pass_scanned && w < b->interval_ns)
		w = w * 2 < b->interval_ns ? w * 2 : b->interval_ns;
	if (w == b->window_ns)
		return;
	tiermm__log(TIERMM_LOG_DEBUG,
		    "scan backend: pid %d: %" PRIu64 " of %" PRIu64 " pages accessed in a pass: window %.1f ms",
		    (int)b->real_pid, b->pass_accessed, b->pass_scanned, (double)w / 1e6);
	b->window_ns = w;
}

/* Done with the current span; at the end of a pass, say so (OBS_PASS). */
static int end_span(struct tiermm__backend *b, tiermm__obs_sink sink, void *ctx)
{
	tiermm_ab_scan_close(b->sc);
	b->sc = NULL;
	if (++b->si >= b->nspans) {
		unsigned int reports = b->paired ? PAIR_READS : 1;
		int ret;

		b->in_pass = false;
		b->pass_end = now_ns();
		if (b->arming) {
			b->due = SCAN_BURST;
			return 0;
		}
		b->due = b->due > reports ? b->due - reports : 0;
		adapt_window(b);
		if (b->paired)
			b->st.paired_passes++;
		/* a paired pass is PAIR_READS reporting passes (see the top) */
		for (unsigned int i = 0; i < reports; i++) {
			b->st.passes++;
			b->batch[b->nbatch++] = (struct tiermm__obs){
				.flags = TIERMM__OBS_PASS,
				.time_ns = b->pass_end,
			};
			if (b->nbatch == OBS_BATCH) {
				ret = flush_obs(b, sink, ctx);
				if (ret)
					return ret;
			}
		}
	}
	return 0;
}

/* Pages one scanner call examines at most (a quarter of a poll's). */
static uint64_t call_pages(const struct tiermm__backend *b)
{
	return b->max_pages / 4 > 512 ? b->max_pages / 4 : 512;
}

/*
 * A scanner batch read: counted, taken from the poll's budget, and emitted:
 * a reporting read's accesses, counted in the pass, or what a clearing read
 * found, as TIERMM__OBS_PRESENT (pages that exist: the page counts of
 * sparse mappings, heat.c, need them for pages never accessed again). 0 or
 * a negative errno.
 */
static int take_batch(struct tiermm__backend *b, const struct tiermm_ab_batch *bt,
		      bool report, uint64_t *budget, uint64_t now,
		      tiermm__obs_sink sink, void *ctx)
{
	b->st.pages_scanned += bt->scanned;
	b->st.pages_accessed += bt->accessed;
	*budget -= bt->scanned < *budget ? bt->scanned : *budget;
	if (report) {
		b->pass_scanned += bt->scanned;
		b->pass_accessed += bt->accessed;
	}
	return emit(b, bt, report, now, sink, ctx);
}

static int add_chunk(struct tiermm__backend *b, const struct chunk *c);

/*
 * One read of [lo, hi) in the scanner's calls: reporting (emit()) or only
 * clearing; a clearing read stops once it has examined PAIR_PAGES pages
 * or made PAIR_CALLS calls, and says where in *end (hi if it got there).
 * Ranges without page tables cost a call per 1 GiB and examine nothing,
 * so a chunk is PAIR_PAGES of mapped memory, not of address space; and a
 * clearing read queues, as the chunks its reads will visit, only the runs
 * of its calls that examined pages: the reads of a sparse reservation
 * (a sanitizer's terabytes of shadow) skip its empty gigabytes. 0, or a
 * negative errno (the mapping went away: -EINVAL).
 */
static int read_chunk(struct tiermm__backend *b, uint64_t lo, uint64_t hi, bool report,
		      uint64_t *end, uint64_t *budget, int *calls, uint64_t now,
		      tiermm__obs_sink sink, void *ctx)
{
	uint64_t per_call = call_pages(b), scanned = 0;
	struct chunk run = { .armed = now_ns(), .reads = PAIR_READS };
	bool open = false;
	int ret, n = 0;

	if (!report && per_call > PAIR_PAGES)
		per_call = PAIR_PAGES;
	{
		TIERMM_OPTS(tiermm_ab_scan_opts, o, .flags = TIERMM_AB_SCAN_FLUSH,
			    .max_pages = per_call);

		ret = tiermm_ab_scan_open(b->pid, lo, hi - lo, &o, &b->sc);
	}
	*end = lo;
	while (!ret) {
		struct tiermm_ab_batch bt = { .sz = sizeof(bt) };

		if (!report && (scanned >= PAIR_PAGES || n >= PAIR_CALLS))
			break;
		ret = tiermm_ab_scan_next(b->sc, &bt);
		(*calls)++;
		n++;
		if (ret == 0)
			*end = hi;	/* all of it */
		if (ret != 1)
			break;
		*end = bt.end < hi ? bt.end : hi;
		scanned += bt.scanned;
		ret = take_batch(b, &bt, report, budget, now, sink, ctx);
		if (ret || report)
			continue;
		if (bt.scanned) {
			if (!open)
				run.lo = bt.start > lo ? bt.start : lo;
			open = true;
			run.hi = *end;
		} else if (open) {
			open = false;
			ret = add_chunk(b, &run);
		}
	}
	if (!ret && open)
		ret = add_chunk(b, &run);
	tiermm_ab_scan_close(b->sc);
	b->sc = NULL;
	return ret;
}

/* A paired pass starts: no chunk cleared yet. */
static void paired_plan(struct tiermm__backend *b)
{
	b->nchunks = b->ri = 0;
	b->asi = 0;
	b->apos = b->nspans ? b->spans[0].start : 0;
}

/* Queue a chunk for its next read (the queue is in order of due time). */
static int add_chunk(struct tiermm__backend *b, const struct chunk *c)
{
	if (b->nchunks == b->cchunks) {
		size_t cap = b->cchunks ? b->cchunks * 2 : 64;
		struct chunk *n = realloc(b->chunks, cap * sizeof(*n));

		if (!n)
			return tiermm__fail(ENOMEM, "scan backend: out of memory");
		b->chunks = n;
		b->cchunks = cap;
	}
	b->chunks[b->nchunks++] = *c;
	return 0;
}

/*
 * A paired pass's next step: read the oldest cleared chunk once its window
 * has passed, else clear the next one, else (or draining: the poll is
 * done clearing) wait for the oldest (see the top). 0, or a negative
 * errno; the pass ends after its last read.
 */
static int paired_step(struct tiermm__backend *b, uint64_t *budget, int *calls,
		       uint64_t now, bool drain, tiermm__obs_sink sink, void *ctx)
{
	bool cleared_all = b->asi >= b->nspans;
	uint64_t end;
	int ret;

	if (b->ri < b->nchunks) {
		uint64_t due = b->chunks[b->ri].armed + b->window_ns;

		if (drain || cleared_all || now_ns() >= due) {
			struct timespec ts = {
				.tv_sec = (time_t)(due / 1000000000ull),
				.tv_nsec = (long)(due % 1000000000ull),
			};
			struct chunk rc;

			while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
				;
			rc = b->chunks[b->ri++];
			rc.armed = now_ns();	/* the next window starts */
			ret = read_chunk(b, rc.lo, rc.hi, true, &end, budget, calls, now, sink, ctx);
			if (ret && ret != -EINVAL)	/* -EINVAL: the mapping went away */
				return ret;
			/* read again a window later: due after every chunk queued */
			if (!ret && --rc.reads) {
				ret = add_chunk(b, &rc);
				if (ret)
					return ret;
			}
			if (cleared_all && b->ri == b->nchunks) {
				b->si = b->nspans - 1;
				return end_span(b, sink, ctx);
			}
			return 0;
		}
	}
	if (cleared_all) {
		/* nothing was cleared (the spans went away): the pass is over */
		b->si = b->nspans - 1;
		return end_span(b, sink, ctx);
	}
	/* the clearing queues what its reads will visit (read_chunk()) */
	ret = read_chunk(b, b->apos, b->spans[b->asi].end, false, &end, budget, calls, now,
			 sink, ctx);
	if (ret == -EINVAL)
		end = b->spans[b->asi].end;	/* the mapping went away: skip it */
	else if (ret)
		return ret;
	b->apos = end;
	if (b->apos >= b->spans[b->asi].end && ++b->asi < b->nspans)
		b->apos = b->spans[b->asi].start;
	return 0;
}

static int scan_poll(struct tiermm__backend *b, tiermm__obs_sink sink, void *ctx)
{
	uint64_t now = now_ns(), budget = b->max_pages;
	int calls = 0, ret = 0;

	b->st.polls++;
	if (!b->in_pass) {
		struct span *s;
		size_t n;

		/* a paired pass is PAIR_READS passes: as many intervals */
		if (b->pass_start &&
		    now - b->pass_start < b->interval_ns * (b->paired ? PAIR_READS : 1))
			return b->due > 0;
		/*
		 * Bits cleared long ago say "touched in the last seconds",
		 * which every page of a busy process is: such a pass only
		 * clears them (arms), and the SCAN_BURST ones after it,
		 * interval_ns apart, report.
		 */
		b->arming = !b->pass_end ||
			    now - b->pass_end > 2 * b->interval_ns + STALE_SLACK_NS;
		b->paired = b->window_ns < b->interval_ns;
		if (b->paired && b->arming) {
			/* A paired pass arms itself: it starts the burst. */
			b->arming = false;
			b->due = SCAN_BURST;
		}
		if (b->arming)
			b->st.arm_passes++;
		b->pass_scanned = b->pass_accessed = 0;
		ret = read_spans(b->real_pid, &s, &n);
		if (ret == -ESRCH)
			return tiermm__fail(ESRCH, "scan backend: pid %d exited",
					    (int)b->real_pid);
		if (ret)
			return tiermm__fail(-ret, "scan backend: reading /proc/%d/maps: %s",
					    (int)b->real_pid, strerror(-ret));
		free(b->spans);
		b->spans = s;
		b->nspans = n;
		b->si = 0;
		b->pass_start = now;
		if (!n)
			return 0;
		if (b->paired)
			paired_plan(b);
		b->in_pass = true;
	}
	/*
	 * Paired: clearing within the poll's bounds, then reading what it
	 * cleared; the window does not wait for the next poll.
	 */
	while (b->paired && b->in_pass) {
		bool more = budget && calls < CALLS_PER_POLL &&
			    now_ns() - now < POLL_NS_MAX;

		if (!more && b->ri == b->nchunks)
			break;
		ret = paired_step(b, &budget, &calls, now, !more, sink, ctx);
		if (ret)
			break;
	}
	while (!b->paired && b->in_pass && budget && calls < CALLS_PER_POLL &&
	       (calls % 64 || now_ns() - now < POLL_NS_MAX)) {
		const struct span *sp = &b->spans[b->si];
		struct tiermm_ab_batch bt;

		if (!b->sc) {
			TIERMM_OPTS(tiermm_ab_scan_opts, o,
				    .flags = TIERMM_AB_SCAN_FLUSH,
				    .max_pages = call_pages(b));

			ret = tiermm_ab_scan_open(b->pid, sp->start,
						  sp->end - sp->start, &o, &b->sc);
			if (ret == -ESRCH)
				break;
			if (ret == -EINVAL) {
				/* The mapping went away (or never was scannable). */
				b->sc = NULL;
				ret = end_span(b, sink, ctx);
				if (ret)
					break;
				continue;
			}
			if (ret)
				break;
		}
		memset(&bt, 0, sizeof(bt));
		bt.sz = sizeof(bt);
		ret = tiermm_ab_scan_next(b->sc, &bt);
		calls++;
		if (ret == 1) {
			ret = take_batch(b, &bt, !b->arming, &budget, now, sink, ctx);
			if (ret)
				break;
			continue;
		}
		if (ret == 0 || ret == -EINVAL) {
			ret = end_span(b, sink, ctx);
			if (ret)
				break;
			continue;
		}
		break;
	}
	if (ret >= 0)
		ret = flush_obs(b, sink, ctx);
	else
		flush_obs(b, sink, ctx);
	/*
	 * Mid-pass, or passes of the burst due: a pass must come on time,
	 * or the pages scanned last wait longer than the window.
	 */
	return ret < 0 ? ret : (b->in_pass || b->due > 0);
}

static void scan_close(struct tiermm__backend *b)
{
	if (!b)
		return;
	tiermm_ab_scan_close(b->sc);
	free(b->spans);
	free(b->chunks);
	free(b);
}

static int scan_open(const struct tiermm__backend_cfg *cfg,
		     struct tiermm__backend **out)
{
	struct tiermm__backend *b;
	struct tiermm_ab_scanner *probe;
	int ret;

	*out = NULL;
	if (!live(cfg))
		return tiermm__fail(EINVAL, "scan backend: needs the running kernel, not fsroot %s",
				    cfg->fsroot);
	if (cfg->pid < 0)
		return tiermm__fail(EINVAL, "scan backend: pid %d is negative",
				    (int)cfg->pid);
	/* Module, command and permission, as the first pass will need them. */
	ret = tiermm_ab_scan_open(cfg->pid, 0, 0, NULL, &probe);
	if (ret)
		return ret;
	tiermm_ab_scan_close(probe);
	b = calloc(1, sizeof(*b));
	if (!b)
		return tiermm__fail(ENOMEM, "scan backend: out of memory");
	b->pid = cfg->pid;
	b->real_pid = cfg->pid ? cfg->pid : getpid();
	b->interval_ns = (cfg->interval_us ? cfg->interval_us : DEF_INTERVAL_US) * 1000;
	b->max_pages = cfg->max_pages ? cfg->max_pages : DEF_MAX_PAGES;
	b->window_ns = b->interval_ns;
	*out = b;
	return 0;
}

static int scan_usable(const struct tiermm__backend_cfg *cfg, char *why,
		       size_t whylen)
{
	struct tiermm__fs fs;
	struct tiermm_ab_scanner *probe;
	pid_t pid = cfg->pid ? cfg->pid : getpid();

	if (!live(cfg))
		return tiermm__backend_why(why, whylen,
					   "scan: needs the running kernel (fsroot %s given)",
					   cfg->fsroot);
	tiermm__fs_init(&fs, NULL);
	if (!tiermm__fs_exists(&fs, "/sys/module/tiermm"))
		return tiermm__backend_why(why, whylen,
					   "scan: tiermm.ko is not loaded (no /sys/module/tiermm); load it with 'modprobe tiermm'");
	if (tiermm_ab_scan_open(cfg->pid, 0, 0, NULL, &probe))
		return tiermm__backend_why(why, whylen, "scan: %s", tiermm_errmsg());
	tiermm_ab_scan_close(probe);
	tiermm__backend_why(why, whylen,
			    "scan: tiermm.ko accessed-bit scanner works on pid %d",
			    (int)pid);
	return 1;
}

static uint64_t scan_cpu_ns(struct tiermm__backend *b)
{
	(void)b;
	return 0;
}

static void scan_stats(struct tiermm__backend *b, struct tiermm__backend_stats *s)
{
	*s = b->st;
	s->window_ns = b->window_ns;
}

const struct tiermm__backend_ops tiermm__scan_backend = {
	.name = "scan",
	.usable = scan_usable,
	.open = scan_open,
	.poll = scan_poll,
	.cpu_ns = scan_cpu_ns,
	.stats = scan_stats,
	.close = scan_close,
};
