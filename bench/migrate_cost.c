// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * migrate_cost: what moving a page between NUMA nodes costs the thread that
 * asks, per 4 KiB page, in its CPU time: move_pages(2) in batches as the
 * tiering engine makes them (512 pages), move_pages(2) asking only where
 * pages are (nodes NULL: the engine's status queries), and tiermm_move()
 * (the library's call: the same moves, then where every page landed). The
 * baseline, measured in the same run: copying the same bytes with memcpy()
 * (the copy a migration cannot avoid).
 *
 * These figures bound what following a moving hot set costs any policy: a
 * page promoted into a full fast tier is two moves (it, and a page demoted
 * to make room). docs/tiering-benchmark.md uses them for zipf-shift.
 *
 *   migrate_cost [--mib N] [--from NODE] [--to NODE]
 *
 * Needs two nodes with memory (exit 77 otherwise). Run in the rig, in
 * instruction time so that CPU times count instructions (1 ns each):
 *   TIERMM_VM_ICOUNT=shift=0 tests/vm/run --preset tierbench1 -- migrate_cost
 * It prints; it has no target.
 */
#include <errno.h>
#include <numaif.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <tiermm/place.h>

#include "bench_clock.h"

#define PAGE 4096UL
#define BATCH 512
#define ROUNDS 5

static char *region;
static size_t pages;

static unsigned long parse_num(const char *opt, const char *s, unsigned long max)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || end == s || v > max) {
		fprintf(stderr, "migrate_cost: %s %s: a number from 0 to %lu\n", opt, s, max);
		exit(2);
	}
	return v;
}

/*
 * move_pages(2) over the region in batches of BATCH: to node (or, with
 * node < 0, only where the pages are). Returns CPU seconds; exits if a page
 * did not end where it was sent.
 */
static double raw_pass(int node)
{
	void *addr[BATCH];
	int nodes[BATCH], status[BATCH];
	double t0 = bench_cpu_s();

	for (size_t i = 0; i < pages; i += BATCH) {
		size_t n = pages - i < BATCH ? pages - i : BATCH;

		for (size_t j = 0; j < n; j++) {
			addr[j] = region + (i + j) * PAGE;
			nodes[j] = node;
		}
		if (move_pages(0, n, addr, node < 0 ? NULL : nodes, status, MPOL_MF_MOVE)) {
			fprintf(stderr, "migrate_cost: move_pages: %s\n", strerror(errno));
			exit(1);
		}
		for (size_t j = 0; j < n; j++) {
			if (node >= 0 && status[j] != node) {
				fprintf(stderr, "migrate_cost: page %zu: status %d, not node %d\n",
					i + j, status[j], node);
				exit(1);
			}
		}
	}
	return bench_cpu_s() - t0;
}

/* tiermm_move() of the region to node: CPU seconds; exits unless all moved. */
static double lib_pass(int node)
{
	struct tiermm_move_result r = { .sz = sizeof(r) };
	double t0 = bench_cpu_s();
	int ret = tiermm_move(0, region, pages * PAGE, node, TIERMM_MOVE_STRICT, &r);

	if (ret) {
		fprintf(stderr, "migrate_cost: tiermm_move to node %d: %s: %s\n", node,
			strerror(-ret), tiermm_errmsg());
		exit(1);
	}
	if (r.moved + r.already_there != pages) {
		fprintf(stderr, "migrate_cost: tiermm_move: %llu moved + %llu already of %zu pages\n",
			(unsigned long long)r.moved, (unsigned long long)r.already_there, pages);
		exit(1);
	}
	return bench_cpu_s() - t0;
}

int main(int argc, char **argv)
{
	unsigned long mib = 64, from = 0, to = 1;
	double copy = 0, move = 0, query = 0, lib = 0;
	char *buf;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--mib") && i + 1 < argc)
			mib = parse_num("--mib", argv[++i], 1UL << 16);
		else if (!strcmp(argv[i], "--from") && i + 1 < argc)
			from = parse_num("--from", argv[++i], 1023);
		else if (!strcmp(argv[i], "--to") && i + 1 < argc)
			to = parse_num("--to", argv[++i], 1023);
		else {
			fprintf(stderr, "usage: migrate_cost [--mib N] [--from NODE] [--to NODE]\n");
			return 2;
		}
	}
	if (!mib || from == to) {
		fprintf(stderr, "migrate_cost: --mib must be > 0 and --from differ from --to\n");
		return 2;
	}
	pages = mib * (1UL << 20) / PAGE;
	region = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		      -1, 0);
	buf = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (region == MAP_FAILED || buf == MAP_FAILED) {
		perror("migrate_cost: mmap");
		return 1;
	}
	/* 4 KiB pages, as the benchmark's data and the engine's page mode */
	madvise(region, pages * PAGE, MADV_NOHUGEPAGE);
	madvise(buf, pages * PAGE, MADV_NOHUGEPAGE);
	memset(region, 1, pages * PAGE);
	memset(buf, 2, pages * PAGE);
	{
		void *a = region;
		int n = (int)to, st;

		if (move_pages(0, 1, &a, &n, &st, MPOL_MF_MOVE) || st != (int)to) {
			printf("migrate_cost: skipped: cannot move a page to node %lu (%s)\n", to,
			       st < 0 ? strerror(-st) : strerror(errno));
			return 77;
		}
	}
	raw_pass((int)from);
	for (int k = 0; k < ROUNDS; k++) {
		double t0 = bench_cpu_s();

		memcpy(buf, region, pages * PAGE);
		copy += bench_cpu_s() - t0;
		move += raw_pass((int)to) + raw_pass((int)from);
		query += raw_pass(-1);
		lib += lib_pass((int)to) + lib_pass((int)from);
	}
	copy /= ROUNDS;
	move /= 2 * ROUNDS;
	query /= ROUNDS;
	lib /= 2 * ROUNDS;
	printf("migrate_cost: %lu MiB, %zu pages of 4 KiB, node %lu <-> %lu; CPU time per page (ns)\n",
	       mib, pages, from, to);
	printf("  baseline: memcpy of the page's 4 KiB              %8.1f\n", copy / pages * 1e9);
	printf("  move_pages(2), batches of %d, one way             %8.1f  (%.1fx the baseline)\n",
	       BATCH, move / pages * 1e9, move / copy);
	printf("  move_pages(2), where the pages are (nodes NULL)   %8.1f  (%.1fx)\n",
	       query / pages * 1e9, query / copy);
	printf("  tiermm_move() (moves, then where each landed)     %8.1f  (%.1fx)\n",
	       lib / pages * 1e9, lib / copy);
	return 0;
}
