// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * place: put a buffer on a memory tier, check where its pages are, bring
 * it back, and allocate memory that is born on a tier.
 *
 *   1. map 32 MiB and write all of it but the last MiB: pages that were
 *      never written do not exist yet, and the counts below show them;
 *   2. count its pages per tier (tiermm_residency_tiers);
 *   3. move it to the slowest tier (tiermm_move_tier) and count again;
 *   4. move it back to the fastest tier; print what did not move and why;
 *   5. allocate 8 MiB on the slowest tier (tiermm_alloc_tier), check it.
 *
 * Data pages move with move_pages(2): no kernel module needed. A machine
 * with one memory tier has nowhere to move to: exit 77 with the reason.
 * Exit 0 on success, 1 on error.
 *
 * Build against an installed tiermm with
 *   cc place.c $(pkg-config --cflags --libs tiermm) -o place
 */
/* mmap(2), madvise(2) and the like are not ISO C: cc -std=c11 hides them. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <tiermm.h>

#define MIB (1024 * 1024)
#define BUF_LEN (32 * MIB)
#define UNWRITTEN (1 * MIB)	/* the tail that is never written */
#define MAX_TIERS 16

/*
 * Print where the pages of [buf, buf + len) are, per tier, and return the
 * share (in %) of the present pages that is on tier want, or -1 on error.
 * Counts are in base pages; a transparent huge page counts as 512.
 */
static double show(const struct tiermm_topo *topo, const char *what,
		   const void *buf, size_t len, int want)
{
	uint64_t counts[MAX_TIERS], absent, present = 0;
	int nr;

	nr = tiermm_residency_tiers(topo, 0, buf, len, counts, MAX_TIERS,
				    &absent);
	if (nr < 0) {
		/* -ERANGE would mean more tiers than MAX_TIERS. */
		fprintf(stderr, "place: residency: %s\n", tiermm_errmsg());
		return -1;
	}
	for (int t = 0; t < nr; t++)
		present += counts[t];
	printf("%s:\n", what);
	for (int t = 0; t < nr; t++)
		printf("  tier %d: %6llu pages %5.1f%%\n", t,
		       (unsigned long long)counts[t],
		       present ? 100.0 * (double)counts[t] / (double)present : 0);
	if (absent)
		printf("  not present: %llu pages (never written)\n",
		       (unsigned long long)absent);
	return present ? 100.0 * (double)counts[want] / (double)present : 0;
}

/*
 * What a move did. Every base page of the range is counted once:
 * pages = moved + already_there + not_present + failed + skipped.
 */
static void report(const char *what, const struct tiermm_move_result *r)
{
	printf("%s: %llu of %llu pages moved in %.1f ms (%llu move_pages calls)\n",
	       what, (unsigned long long)r->moved, (unsigned long long)r->pages,
	       (double)r->elapsed_ns / 1e6, (unsigned long long)r->syscalls);
	if (r->moved == r->pages)
		return;
	printf("  did not move:\n");
	if (r->already_there)
		printf("  %8llu already on the tier\n",
		       (unsigned long long)r->already_there);
	if (r->not_present)
		printf("  %8llu not present: never written, nothing to move (when written,\n"
		       "           the kernel places them by the range's memory policy)\n",
		       (unsigned long long)r->not_present);
	/* Best effort (no TIERMM_MOVE_STRICT): failures are counts, by reason. */
	if (r->failed_busy)
		printf("  %8llu busy: the kernel could not isolate them, every retry\n",
		       (unsigned long long)r->failed_busy);
	if (r->failed_nomem)
		printf("  %8llu no memory left on the tier\n",
		       (unsigned long long)r->failed_nomem);
	if (r->failed_fault)
		printf("  %8llu unmapped meanwhile, or in a mapping that cannot move\n",
		       (unsigned long long)r->failed_fault);
	if (r->failed_other)
		printf("  %8llu pinned (DMA, io_uring), shared with another process, or moved away again\n",
		       (unsigned long long)r->failed_other);
	if (r->skipped)
		printf("  %8llu not examined: the call stopped early\n",
		       (unsigned long long)r->skipped);
	if (r->failed)
		printf("  first failure at %#llx: %s\n",
		       (unsigned long long)r->first_failed,
		       tiermm_strerror(r->first_error));
}

int main(void)
{
	struct tiermm_move_result r = { .sz = sizeof(r) };
	struct tiermm_topo *topo;
	int nr_tiers, slow, ret = 1;
	char *buf, *born_slow;
	double pct;

	/* The running machine, no measurements: TIERMM_TIERS applies. */
	if (tiermm_topo_load(NULL, &topo) < 0) {
		fprintf(stderr, "place: loading the topology: %s\n",
			tiermm_errmsg());
		return 1;
	}
	nr_tiers = tiermm_topo_nr_tiers(topo);
	if (nr_tiers < 2) {
		printf("place: skipped: this machine has one memory tier (%d NUMA node%s), nowhere to move to\n",
		       tiermm_topo_nr_nodes(topo),
		       tiermm_topo_nr_nodes(topo) == 1 ? "" : "s");
		tiermm_topo_free(topo);
		return 77;
	}
	slow = nr_tiers - 1;

	/*
	 * Ranges must be page aligned and wholly mapped: use mmap(2) rather
	 * than malloc(3). Write every page but the tail so they exist: the
	 * first write of a page allocates it, on the node of the CPU that
	 * writes it (first touch), usually on the fastest tier.
	 */
	buf = mmap(NULL, BUF_LEN, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED) {
		perror("place: mmap");
		goto out_topo;
	}
	/*
	 * With transparent huge pages one write faults in a whole 2 MiB
	 * page: keep them out of the tail, or a huge page reaching into it
	 * would make its pages present after all.
	 */
	if (madvise(buf + BUF_LEN - UNWRITTEN, UNWRITTEN, MADV_NOHUGEPAGE))
		perror("place: madvise(MADV_NOHUGEPAGE)");	/* not fatal */
	memset(buf, 0x5a, BUF_LEN - UNWRITTEN);
	if (show(topo, "after first touch", buf, BUF_LEN, 0) < 0)
		goto out_buf;

	/*
	 * Demote: each page goes to the node of the slowest tier nearest to
	 * the node it is on. The call returns 0 even when some pages did not
	 * move (best effort); *r says which and why. The buffer stays usable
	 * all along: move_pages(2) copies pages under the program's feet.
	 */
	if (tiermm_move_tier(topo, 0, buf, BUF_LEN, slow, 0, &r) < 0) {
		fprintf(stderr, "place: moving to tier %d: %s\n", slow,
			tiermm_errmsg());
		goto out_buf;
	}
	report("tiermm_move_tier to the slowest tier", &r);
	pct = show(topo, "after the move", buf, BUF_LEN, slow);
	if (pct < 0)
		goto out_buf;
	printf("=> %.1f%% of the present pages on tier %d (the slowest)\n\n",
	       pct, slow);

	/* And back to tier 0. Nothing here pins pages, so all should move. */
	if (tiermm_move_tier(topo, 0, buf, BUF_LEN, 0, 0, &r) < 0) {
		fprintf(stderr, "place: moving to tier 0: %s\n", tiermm_errmsg());
		goto out_buf;
	}
	report("tiermm_move_tier back to tier 0", &r);
	pct = show(topo, "after the move back", buf, BUF_LEN, 0);
	if (pct < 0)
		goto out_buf;
	printf("=> %.1f%% of the present pages on tier 0 (the fastest)\n\n", pct);

	/*
	 * Memory born on a tier: bound to its nodes (MPOL_BIND) before any
	 * page exists, and faulted in now (TIERMM_ALLOC_POPULATE) so that a
	 * full tier shows up here as ENOMEM and not later as the OOM killer.
	 * Kernels before 5.14 lack MADV_POPULATE_WRITE (ENOTSUP): then the
	 * pages are allocated, by the same policy, when first written.
	 */
	born_slow = tiermm_alloc_tier(topo, 8 * MIB, slow, TIERMM_ALLOC_POPULATE);
	if (!born_slow && errno == ENOTSUP) {
		born_slow = tiermm_alloc_tier(topo, 8 * MIB, slow, 0);
		if (born_slow)
			memset(born_slow, 0, 8 * MIB);
	}
	if (!born_slow) {
		fprintf(stderr, "place: allocating on tier %d: %s\n", slow,
			tiermm_errmsg());
		goto out_buf;
	}
	pct = show(topo, "tiermm_alloc_tier(8 MiB, slowest tier)", born_slow,
		   8 * MIB, slow);
	/* tiermm_free() unmaps it and clears any hints on the range. */
	if (tiermm_free(born_slow, 8 * MIB) < 0)
		fprintf(stderr, "place: tiermm_free: %s\n", tiermm_errmsg());
	else if (pct >= 0) {
		printf("=> %.1f%% of the pages on tier %d (the slowest)\n", pct,
		       slow);
		ret = 0;
	}
out_buf:
	munmap(buf, BUF_LEN);
out_topo:
	tiermm_topo_free(topo);
	return ret;
}
