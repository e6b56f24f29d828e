// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * place_test: the placement API against real nodes, in the tiered guest
 * (tests/vm/presets/tiered.conf: DRAM nodes 0 and 1 with CPUs, CPU-less
 * slow node 2 in a lower tier). Run by tests/vm/guest/check-place.sh.
 *
 *   place_test nodes [--no-scan]
 *                          moves between nodes 0, 1, 2, exact residency,
 *                          also of another process; --no-scan: without
 *                          PAGEMAP_SCAN, as on kernels before 6.7
 *   place_test tiers       tier moves (nearest node), tier allocation,
 *                          PIN/NO_MIGRATE hints
 *   place_test tiers4      (numa4 preset) tier moves pick the nearest slow
 *                          node, and the next one when it is full
 *   place_test strict      a strict move that cannot fit (nothing moves),
 *                          the best-effort one that fills the node, pinned
 *                          pages (io_uring fixed buffers)
 *   place_test integrity [SECONDS]
 *                          writer threads verify their data while a mover
 *                          moves it around (default 60 s)
 *   place_test exit [ROUNDS]
 *                          move the memory of processes that exit meanwhile
 *
 * Output: "PASS what", "FAIL what" and "# note" lines; exit status 0 when
 * nothing failed. Linked with the static library for the internal hint
 * queries.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/io_uring.h>

#include <tiermm.h>

#include "hints.h"
#include "internal.h"

#define MIB (1024UL * 1024UL)
#define HUGE (2 * MIB)
#define MAXN 8

static size_t ps;
static int failures;

static void check(bool ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void check(bool ok, const char *fmt, ...)
{
	va_list ap;

	printf("%s ", ok ? "PASS" : "FAIL");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
	if (!ok)
		failures++;
}

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...)
{
	va_list ap;

	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
	printf("FAIL %s: %s (%s)\n", what, strerror(errno), tiermm_errmsg());
	exit(1);
}

/*
 * len bytes, 2 MiB aligned: the first half THP-backed (MADV_HUGEPAGE), the
 * second half base pages, all written once; the last untouched pages
 * stay absent.
 */
static char *region(size_t len, size_t untouched)
{
	char *raw = mmap(NULL, len + HUGE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *p;

	if (raw == MAP_FAILED)
		die("mmap");
	p = (char *)(((uintptr_t)raw + HUGE - 1) & ~(uintptr_t)(HUGE - 1));
	madvise(p, len / 2, MADV_HUGEPAGE);
	madvise(p + len / 2, len - len / 2, MADV_NOHUGEPAGE);
	for (size_t off = 0; off + untouched < len; off += ps)
		p[off] = (char)(off / ps);
	return p;
}

/* Exact residency check: want[n] pages on node n, absent pages absent. */
static void expect_residency(pid_t pid, const void *p, size_t len,
			     const uint64_t *want, uint64_t absent, const char *what)
{
	uint64_t got[MAXN] = { 0 }, na = 0;
	int top = tiermm_residency(pid, p, len, got, MAXN, &na);
	bool ok = top >= 0 && na == absent;
	char buf[160];
	size_t off = 0;

	for (int n = 0; n < MAXN; n++) {
		ok = ok && got[n] == want[n];
		if (got[n] || want[n])
			off += (size_t)snprintf(buf + off, sizeof(buf) - off,
						" node%d=%" PRIu64 "/%" PRIu64, n, got[n],
						want[n]);
	}
	check(ok, "%s: residency (got/want)%s absent=%" PRIu64 "/%" PRIu64 "%s%s", what,
	      off ? buf : " none", na, absent, top < 0 ? ": " : "",
	      top < 0 ? tiermm_errmsg() : "");
}

static void print_result(const char *what, int ret, const struct tiermm_move_result *r)
{
	note("%s: ret %d, %" PRIu64 " pages: moved %" PRIu64 ", there %" PRIu64
	     ", absent %" PRIu64 ", failed %" PRIu64 " (busy %" PRIu64 ", nomem %" PRIu64
	     ", fault %" PRIu64 ", other %" PRIu64 "), skipped %" PRIu64
	     ", huge %" PRIu64 ", %u retries, %" PRIu64 " syscalls, %.1f ms", what, ret,
	     r->pages, r->moved, r->already_there, r->not_present, r->failed,
	     r->failed_busy, r->failed_nomem, r->failed_fault, r->failed_other, r->skipped,
	     r->huge, r->retries, r->syscalls, (double)r->elapsed_ns / 1e6);
}

static bool sums_ok(const struct tiermm_move_result *r)
{
	return r->pages == r->moved + r->already_there + r->not_present + r->failed +
				   r->skipped &&
	       r->failed == r->failed_busy + r->failed_nomem + r->failed_fault +
				    r->failed_other;
}

/* ---------------------------------------------------------------- nodes */

static void move_and_check(pid_t pid, char *p, size_t len, uint64_t present,
			   uint64_t absent, int from, int to, unsigned int flags)
{
	struct tiermm_move_result r = { .sz = sizeof(r) };
	uint64_t want[MAXN] = { 0 };
	char what[96];
	int ret;

	snprintf(what, sizeof(what), "%s%s %d -> %d", pid ? "other process " : "",
		 flags & TIERMM_MOVE_STRICT ? "strict move" : "move", from, to);
	ret = tiermm_move(pid, p, len, to, flags, &r);
	print_result(what, ret, &r);
	check(ret == 0 && sums_ok(&r) && r.moved == (from == to ? 0 : present) &&
		      r.already_there == (from == to ? present : 0) && r.not_present == absent &&
		      r.failed == 0,
	      "%s: %" PRIu64 " moved, %" PRIu64 " there, %" PRIu64 " absent", what, r.moved,
	      r.already_there, r.not_present);
	want[to] = present;
	expect_residency(pid, p, len, want, absent, what);
}

static int cmd_nodes(bool no_scan)
{
	size_t len = 16 * MIB, untouched = 64 * 1024;
	uint64_t absent = untouched / ps, present = len / ps - absent;
	static const int path[] = { 0, 1, 2, 1, 0, 2, 0 };
	char *p = region(len, untouched);
	int fds[2], back[2], status;
	pid_t child;

	if (no_scan) {
		tiermm__place_use_pagemap_scan(false);
		note("PAGEMAP_SCAN off: every base page is handed to move_pages(2)");
	}

	/* First touch put it on node 0 (this CPU's) or node 1. */
	{
		uint64_t got[MAXN] = { 0 };

		tiermm_residency(0, p, len, got, MAXN, NULL);
		note("first touch: node0 %" PRIu64 ", node1 %" PRIu64, got[0], got[1]);
	}
	tiermm_move(0, p, len, 0, 0, NULL);
	for (size_t i = 0; i + 1 < sizeof(path) / sizeof(path[0]); i++)
		move_and_check(0, p, len, present, absent, path[i], path[i + 1],
			       i % 2 ? TIERMM_MOVE_STRICT : 0);
	move_and_check(0, p, len, present, absent, 0, 0, TIERMM_MOVE_STRICT);

	/* Another process's memory: it sends its address on one pipe and waits on the other. */
	if (pipe(fds) || pipe(back))
		die("pipe");
	child = fork();
	if (child < 0)
		die("fork");
	if (!child) {
		char *q = region(len, untouched), c;

		tiermm_move(0, q, len, 1, 0, NULL);
		if (write(fds[1], &q, sizeof(q)) != sizeof(q))
			_exit(1);
		if (read(back[0], &c, 1) != 1)	/* until the parent is done */
			_exit(1);
		for (size_t off = 0; off + untouched < len; off += ps)
			if (q[off] != (char)(off / ps))
				_exit(2);
		_exit(0);
	}
	{
		char *q;

		if (read(fds[0], &q, sizeof(q)) != sizeof(q))
			die("read");
		move_and_check(child, q, len, present, absent, 1, 2, TIERMM_MOVE_STRICT);
		move_and_check(child, q, len, present, absent, 2, 0, 0);
		if (write(back[1], "x", 1) != 1)
			die("write");
		waitpid(child, &status, 0);
		check(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "the other process's data survived its moves (exit status %d)",
		      WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	}
	close(fds[0]);
	close(fds[1]);
	close(back[0]);
	close(back[1]);
	for (size_t off = 0; off + untouched < len; off += ps)
		if (p[off] != (char)(off / ps)) {
			check(false, "data intact after the moves (page %zu)", off / ps);
			return 1;
		}
	check(true, "data intact after the moves");
	return 0;
}

/* ---------------------------------------------------------------- tiers */

static int cmd_tiers(void)
{
	struct tiermm_topo *topo;
	struct tiermm_move_result r = { .sz = sizeof(r) };
	size_t len = 8 * MIB;
	uint64_t pages = len / ps, want[MAXN] = { 0 }, tc[4] = { 0 }, na;
	char t0[32] = "", t1[32] = "";
	char *p;
	int ret;

	if (tiermm_topo_load(NULL, &topo))
		die("tiermm_topo_load");
	tiermm_topo_tier_nodes(topo, 0, t0, sizeof(t0));
	tiermm_topo_tier_nodes(topo, 1, t1, sizeof(t1));
	check(tiermm_topo_nr_tiers(topo) == 2 && !strcmp(t0, "0-1") && !strcmp(t1, "2"),
	      "topology: %d tiers, tier 0 = %s, tier 1 = %s", tiermm_topo_nr_tiers(topo), t0,
	      t1);

	p = region(len, 0);
	/* On node 1 (tier 0): a move to tier 0 leaves it there. */
	tiermm_move(0, p, len, 1, 0, NULL);
	ret = tiermm_move_tier(topo, 0, p, len, 0, TIERMM_MOVE_STRICT, &r);
	print_result("tier 0 from node 1", ret, &r);
	check(ret == 0 && r.already_there == pages && r.moved == 0,
	      "tier move to the tier a page is in moves nothing");
	want[1] = pages;
	expect_residency(0, p, len, want, 0, "tier 0 from node 1");
	/* To tier 1: node 2. */
	ret = tiermm_move_tier(topo, 0, p, len, 1, TIERMM_MOVE_STRICT, &r);
	print_result("tier 1 from node 1", ret, &r);
	check(ret == 0 && r.moved == pages, "demoted to tier 1");
	want[1] = 0;
	want[2] = pages;
	expect_residency(0, p, len, want, 0, "tier 1 from node 1");
	ret = tiermm_residency_tiers(topo, 0, p, len, tc, 4, &na);
	check(ret == 2 && tc[0] == 0 && tc[1] == pages && na == 0,
	      "residency per tier: %" PRIu64 " / %" PRIu64, tc[0], tc[1]);
	/* Back to tier 0 from node 2: nearest is node 0 (SLIT 30 < 35). */
	ret = tiermm_move_tier(topo, 0, p, len, 0, 0, &r);
	print_result("tier 0 from node 2", ret, &r);
	check(ret == 0 && r.moved == pages, "promoted to tier 0");
	want[2] = 0;
	want[0] = pages;
	expect_residency(0, p, len, want, 0, "tier 0 from node 2 lands on the nearest node 0");

	/* Allocation bound to a tier. */
	{
		char *a = tiermm_alloc_tier(topo, 4 * MIB, 1, TIERMM_ALLOC_POPULATE);
		uint64_t w[MAXN] = { 0 };

		check(a != NULL, "tiermm_alloc_tier on tier 1%s%s", a ? "" : ": ",
		      a ? "" : tiermm_errmsg());
		if (a) {
			w[2] = 4 * MIB / ps;
			expect_residency(0, a, 4 * MIB, w, 0, "tier-1 allocation");
			tiermm_free(a, 4 * MIB);
		}
		a = tiermm_alloc_tier(topo, 4 * MIB, 1,
				      TIERMM_ALLOC_POPULATE | TIERMM_ALLOC_PREFERRED);
		check(a != NULL, "tiermm_alloc_tier preferred on tier 1");
		if (a) {
			expect_residency(0, a, 4 * MIB, w, 0, "preferred tier-1 allocation");
			tiermm_free(a, 4 * MIB);
		}
	}

	/* Hints: PIN moves and is recorded, NO_MIGRATE and RECORD_ONLY do not move. */
	ret = tiermm_hint(p, len, TIERMM_HINT_PIN_SLOW, 0);
	check(ret == 0 && tiermm__hints_at((uintptr_t)p) == TIERMM_HINT_PIN_SLOW &&
		      tiermm__hints_at((uintptr_t)p + len - 1) == TIERMM_HINT_PIN_SLOW,
	      "PIN_SLOW recorded");
	want[0] = 0;
	want[2] = pages;
	expect_residency(0, p, len, want, 0, "PIN_SLOW moved the range to node 2");
	ret = tiermm_hint(p, len / 2, TIERMM_HINT_PIN_FAST, 0);
	check(ret == 0 && tiermm__hints_at((uintptr_t)p) == TIERMM_HINT_PIN_FAST &&
		      tiermm__hints_at((uintptr_t)p + len / 2) == TIERMM_HINT_PIN_SLOW,
	      "PIN_FAST recorded on the first half, PIN_SLOW kept on the second");
	want[0] = pages / 2;
	want[2] = pages - pages / 2;
	expect_residency(0, p, len, want, 0, "PIN_FAST moved the first half to node 0");
	ret = tiermm_hint(p + len / 2, len / 2, TIERMM_HINT_NO_MIGRATE, 0);
	check(ret == 0 && tiermm__hints_at((uintptr_t)p + len / 2) == TIERMM_HINT_NO_MIGRATE,
	      "NO_MIGRATE recorded");
	expect_residency(0, p, len, want, 0, "NO_MIGRATE moved nothing");
	ret = tiermm_hint(p + len / 2, len / 2, TIERMM_HINT_PIN_FAST, TIERMM_HINT_RECORD_ONLY);
	check(ret == 0 && tiermm__hints_at((uintptr_t)p + len - 1) == TIERMM_HINT_PIN_FAST,
	      "PIN_FAST with RECORD_ONLY recorded");
	expect_residency(0, p, len, want, 0, "RECORD_ONLY moved nothing");
	ret = tiermm_hint(p, len, TIERMM_HINT_DEFAULT, 0);
	check(ret == 0 && tiermm__hints_at((uintptr_t)p) == TIERMM_HINT_DEFAULT &&
		      tiermm__hints_generation() > 0,
	      "DEFAULT cleared the range");
	tiermm_topo_free(topo);
	return 0;
}

/* ---------------------------------------------------------------- tiers4 */

static uint64_t node_free(int node);

/* len bytes bound to node (MPOL_BIND) and populated: fills a node. */
static char *fill_node(int node, size_t len)
{
	unsigned long mask = 1UL << node;
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		die("mmap");
	if (syscall(SYS_mbind, p, len, 2 /* MPOL_BIND */, &mask, 64UL, 0UL))
		die("mbind");
	if (madvise(p, len, 23 /* MADV_POPULATE_WRITE */))
		die("populate");
	return p;
}

/*
 * The numa4 preset: DRAM nodes 0 and 1, slow node 2 near socket 0 and slow
 * node 3 near socket 1 (SLIT 0-2 30, 0-3 35, 1-2 35, 1-3 30).
 */
static int cmd_tiers4(void)
{
	struct tiermm_topo *topo;
	struct tiermm_move_result r = { .sz = sizeof(r) };
	size_t len = 8 * MIB;
	uint64_t pages = len / ps, want[MAXN] = { 0 };
	char t0[32] = "", t1[32] = "", *a, *filler;
	uint64_t free3, fill;
	int ret;

	if (tiermm_topo_load(NULL, &topo))
		die("tiermm_topo_load");
	tiermm_topo_tier_nodes(topo, 0, t0, sizeof(t0));
	tiermm_topo_tier_nodes(topo, 1, t1, sizeof(t1));
	check(tiermm_topo_nr_tiers(topo) == 2 && !strcmp(t0, "0-1") && !strcmp(t1, "2-3"),
	      "topology: %d tiers, tier 0 = %s, tier 1 = %s", tiermm_topo_nr_tiers(topo), t0,
	      t1);
	/* Half on node 0, half on node 1: each half to its own socket's slow node. */
	a = region(len, 0);
	tiermm_move(0, a, len / 2, 0, 0, NULL);
	tiermm_move(0, a + len / 2, len / 2, 1, 0, NULL);
	ret = tiermm_move_tier(topo, 0, a, len, 1, TIERMM_MOVE_STRICT, &r);
	print_result("demote halves on nodes 0 and 1", ret, &r);
	check(ret == 0 && r.moved == pages, "demoted %" PRIu64 " pages", r.moved);
	want[2] = pages / 2;
	want[3] = pages / 2;
	expect_residency(0, a, len, want, 0, "each half went to the slow node nearest to it");
	ret = tiermm_move_tier(topo, 0, a, len, 0, 0, &r);
	print_result("promote them again", ret, &r);
	want[2] = want[3] = 0;
	want[0] = pages / 2;
	want[1] = pages / 2;
	expect_residency(0, a, len, want, 0, "and back to the DRAM node nearest to each");

	/*
	 * Node 3 with about 40 MiB free (well above its watermarks: a bound
	 * allocation below them would call the OOM killer): 64 MiB from node 1
	 * overflow to node 2.
	 */
	munmap(a, len);
	len = 64 * MIB;
	pages = len / ps;
	a = region(len, 0);
	tiermm_move(0, a, len, 1, 0, NULL);
	free3 = node_free(3);
	fill = free3 > 80 * MIB ? (free3 - 40 * MIB) & ~(uint64_t)(HUGE - 1) : 0;
	filler = fill ? fill_node(3, fill) : NULL;
	note("node 3: %" PRIu64 " MiB free, filled %" PRIu64 " MiB, %" PRIu64 " MiB free now",
	     free3 / MIB, fill / MIB, node_free(3) / MIB);
	ret = tiermm_move_tier(topo, 0, a, len, 1, TIERMM_MOVE_STRICT, &r);
	print_result("demote 64 MiB from node 1 with node 3 nearly full", ret, &r);
	{
		uint64_t got[MAXN] = { 0 };

		tiermm_residency(0, a, len, got, MAXN, NULL);
		check(ret == 0 && r.moved == pages && got[2] + got[3] == pages && got[2] > 0 &&
			      got[3] > 0 && got[0] == 0 && got[1] == 0,
		      "node 3 took what fits (%" PRIu64 " pages), node 2 the rest (%" PRIu64 ")",
		      got[3], got[2]);
	}
	if (filler)
		munmap(filler, fill);
	munmap(a, len);
	tiermm_topo_free(topo);
	return 0;
}

/* ---------------------------------------------------------------- strict */

static uint64_t node_free(int node)
{
	char path[96], buf[4096], *s;
	unsigned long long kb = 0;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/sys/devices/system/node/node%d/meminfo", node);
	f = fopen(path, "r");
	if (!f)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	s = strstr(buf, "MemFree:");
	if (s)
		sscanf(s, "MemFree: %llu", &kb);
	return kb * 1024;
}

static int io_uring_pin(void *addr, size_t len)
{
	struct io_uring_params prm;
	struct iovec iov = { .iov_base = addr, .iov_len = len };
	int fd;

	memset(&prm, 0, sizeof(prm));
	fd = (int)syscall(__NR_io_uring_setup, 4, &prm);
	if (fd < 0)
		return -errno;
	if (syscall(__NR_io_uring_register, fd, IORING_REGISTER_BUFFERS, &iov, 1)) {
		int err = errno;

		close(fd);
		return -err;
	}
	return fd;
}

static void pinned_pages(void)
{
	size_t len = 64 * ps;
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct tiermm_move_result r = { .sz = sizeof(r) };
	uint64_t want[MAXN] = { 0 };
	int fd, ret;

	madvise(p, len, MADV_NOHUGEPAGE);
	memset(p, 7, len);
	tiermm_move(0, p, len, 0, 0, NULL);
	fd = io_uring_pin(p + 16 * ps, 16 * ps);
	if (fd < 0) {
		note("io_uring fixed buffers unavailable (%s): pinned-page checks skipped",
		     strerror(-fd));
		munmap(p, len);
		return;
	}
	ret = tiermm_move(0, p, len, 1, TIERMM_MOVE_STRICT, &r);
	print_result("strict move with 16 pinned pages", ret, &r);
	check(ret == -EBUSY && r.first_error == EBUSY &&
		      r.first_failed == (uintptr_t)p + 16 * ps && r.failed_other == 16 &&
		      r.moved == 48 && sums_ok(&r) && r.retries > 0,
	      "strict move fails with EBUSY at the first pinned page (%#" PRIx64
	      "), the other 48 pages of its batch moved",
	      r.first_failed);
	want[1] = 48;
	want[0] = 16;
	expect_residency(0, p, len, want, 0, "pinned pages stayed, the rest moved");
	ret = tiermm_move(0, p, len, 2, 0, &r);
	print_result("best-effort move with 16 pinned pages", ret, &r);
	check(ret == 0 && r.moved == 48 && r.failed_other == 16 && r.failed == 16,
	      "best-effort move reports the 16 pinned pages as failed");
	close(fd);	/* unpins */
	ret = tiermm_move(0, p, len, 2, TIERMM_MOVE_STRICT, &r);
	check(ret == 0 && r.moved == 16 && r.already_there == 48,
	      "after unpinning the rest moves");
	munmap(p, len);
}

static int cmd_strict(void)
{
	struct tiermm_topo *topo;
	struct tiermm_move_result r = { .sz = sizeof(r) };
	uint64_t free2, fill, want[MAXN] = { 0 }, pages;
	size_t len = 64 * MIB;
	char *filler = NULL, *p;
	double t;
	int ret;

	if (tiermm_topo_load(NULL, &topo))
		die("tiermm_topo_load");
	pinned_pages();

	/* Leave node 2 about 56 MiB free, then try to move 64 MiB there. */
	free2 = node_free(2);
	fill = free2 > 24 * MIB + 64 * MIB ? free2 - 24 * MIB - 32 * MIB : 0;
	note("node 2: %" PRIu64 " MiB free, filling %" PRIu64 " MiB", free2 / MIB, fill / MIB);
	if (fill) {
		t = now_s();
		filler = tiermm_alloc_tier(topo, fill, 1, TIERMM_ALLOC_POPULATE);
		if (!filler)
			die("filling node 2");
		note("filled in %.1f s; node 2 has %" PRIu64 " MiB free", now_s() - t,
		     node_free(2) / MIB);
	}
	p = region(len, 0);
	pages = len / ps;
	tiermm_move(0, p, len, 0, 0, NULL);
	ret = tiermm_move(0, p, len, 2, TIERMM_MOVE_STRICT, &r);
	print_result("strict move of 64 MiB to a full node 2", ret, &r);
	check(ret == -ENOSPC && r.moved == 0 && r.skipped == pages,
	      "strict move that cannot fit fails with ENOSPC before moving: %s",
	      tiermm_errmsg());
	want[0] = pages;
	expect_residency(0, p, len, want, 0, "nothing moved");

	t = now_s();
	ret = tiermm_move(0, p, len, 2, 0, &r);
	print_result("best-effort move of 64 MiB to a full node 2", ret, &r);
	check(ret == 0 && r.moved > 0 && r.failed_nomem > 0 &&
		      r.moved + r.failed == pages && r.failed == r.failed_nomem && sums_ok(&r),
	      "best-effort move fills node 2: %" PRIu64 " moved, %" PRIu64
	      " failed for lack of memory, in %.1f s",
	      r.moved, r.failed_nomem, now_s() - t);
	want[0] = r.failed;
	want[2] = r.moved;
	expect_residency(0, p, len, want, 0, "what the result says is where the pages are");
	ret = tiermm_move(0, p, len, 0, TIERMM_MOVE_STRICT, &r);
	check(ret == 0, "and back to node 0");
	munmap((void *)p, len);
	if (filler)
		tiermm_free(filler, fill);
	tiermm_topo_free(topo);
	return 0;
}

/* ---------------------------------------------------------------- integrity */

#define NWRITERS 2
#define WLEN (8 * MIB)

struct wctx {
	int id;
	char *p;
	uint64_t gens, errors, first_bad;
};

static volatile int stop;

static uint64_t word(uint64_t gen, int id, size_t i)
{
	return (gen << 40) ^ ((uint64_t)id << 32) ^ (i * 0x9e3779b97f4a7c15ULL);
}

static void *writer(void *arg)
{
	struct wctx *w = arg;
	uint64_t *q = (uint64_t *)(void *)w->p;
	size_t n = WLEN / sizeof(uint64_t);

	for (size_t i = 0; i < n; i++)
		q[i] = word(0, w->id, i);
	for (uint64_t gen = 1; !__atomic_load_n(&stop, __ATOMIC_RELAXED); gen++) {
		uint64_t sum = 0, expect = 0;

		for (size_t i = 0; i < n; i++) {
			sum += q[i];
			expect += word(gen - 1, w->id, i);
			if (q[i] != word(gen - 1, w->id, i) && !w->errors++)
				w->first_bad = i;
			q[i] = word(gen, w->id, i);
		}
		if (sum != expect && !w->errors)
			w->errors++;
		w->gens = gen;
	}
	return NULL;
}

static int cmd_integrity(int seconds)
{
	struct tiermm_topo *topo;
	struct wctx w[NWRITERS];
	pthread_t th[NWRITERS];
	uint64_t moves = 0, moved = 0, failed = 0, busy = 0, retries = 0, verified = 0;
	double t0, tmax = 0;
	int ret, bad_residency = 0, step = 0;

	if (tiermm_topo_load(NULL, &topo))
		die("tiermm_topo_load");
	for (int i = 0; i < NWRITERS; i++) {
		w[i] = (struct wctx){ .id = i, .p = region(WLEN, 0) };
		if (pthread_create(&th[i], NULL, writer, &w[i]))
			die("pthread_create");
	}
	t0 = now_s();
	while (now_s() - t0 < seconds) {
		for (int i = 0; i < NWRITERS; i++) {
			struct tiermm_move_result r = { .sz = sizeof(r) };
			uint64_t got[MAXN] = { 0 }, pages = WLEN / ps;
			int node = (step + i) % 3;
			double t = now_s();

			if (step % 4 == 3)	/* every fourth round by tier */
				ret = tiermm_move_tier(topo, 0, w[i].p, WLEN, node == 2 ? 1 : 0,
						       0, &r);
			else
				ret = tiermm_move(0, w[i].p, WLEN, node, 0, &r);
			if (now_s() - t > tmax)
				tmax = now_s() - t;
			if (ret || !sums_ok(&r) || r.not_present) {
				print_result("unexpected move", ret, &r);
				bad_residency++;
				continue;
			}
			moves++;
			moved += r.moved;
			failed += r.failed;
			busy += r.failed_busy;
			retries += r.retries;
			/* The result is exact: check it against a fresh query. */
			if (tiermm_residency(0, w[i].p, WLEN, got, MAXN, NULL) < 0) {
				bad_residency++;
				continue;
			}
			if (step % 4 != 3 && got[node] != pages - r.failed)
				bad_residency++;
			verified++;
		}
		step++;
	}
	__atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
	for (int i = 0; i < NWRITERS; i++)
		pthread_join(th[i], NULL);
	note("%.0f s: %" PRIu64 " moves of 8 MiB (%" PRIu64 " pages moved, %.1f MiB/s), %" PRIu64
	     " pages failed (%" PRIu64 " busy), %" PRIu64 " retry rounds, slowest move %.0f ms",
	     now_s() - t0, moves, moved, (double)moved * (double)ps / MIB / (now_s() - t0),
	     failed, busy, retries, tmax * 1e3);
	for (int i = 0; i < NWRITERS; i++) {
		note("writer %d: %" PRIu64 " full passes over its 8 MiB", i, w[i].gens);
		check(w[i].errors == 0 && w[i].gens > 1,
		      "writer %d saw no corrupted word in %" PRIu64 " verified passes%s", i,
		      w[i].gens, w[i].errors ? " (corruption!)" : "");
	}
	check(bad_residency == 0 && verified > 0 && moved > 0,
	      "%" PRIu64 " moves, every result matched a fresh residency query", verified);
	check(failed == 0 || failed < moved / 100,
	      "moves under writers fail rarely: %" PRIu64 " of %" PRIu64 " pages", failed,
	      moved + failed);
	tiermm_topo_free(topo);
	return 0;
}

/* ---------------------------------------------------------------- exit */

static uint64_t vmstat(const char *key)
{
	char line[256];
	unsigned long long v = 0;
	size_t kl = strlen(key);
	FILE *f = fopen("/proc/vmstat", "r");

	if (!f)
		return UINT64_MAX;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, kl) && line[kl] == ' ')
			sscanf(line + kl, "%llu", &v);
	fclose(f);
	return v;
}

/* A /proc/meminfo value in bytes. */
static uint64_t meminfo(const char *key)
{
	char line[256];
	unsigned long long v = 0;
	size_t kl = strlen(key);
	FILE *f = fopen("/proc/meminfo", "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, kl) && line[kl] == ':')
			sscanf(line + kl + 1, "%llu", &v);
	fclose(f);
	return v * 1024;
}

static int count_fds(void)
{
	int n = 0;

	for (int fd = 0; fd < 1024; fd++)
		n += fcntl(fd, F_GETFD) != -1;
	return n;
}

static int cmd_exit(int rounds)
{
	size_t len = 32 * MIB;
	uint64_t free_before = 0, free_after = 0, ok_moves = 0, esrch = 0, other = 0;
	uint64_t anon_before = meminfo("AnonPages"), anon_after;
	int fds_before = count_fds();

	for (int n = 0; n < 3; n++)
		free_before += node_free(n);
	srand(12345);
	for (int round = 0; round < rounds; round++) {
		int pfd[2], status, node = round % 3;
		unsigned int delay_ms = (unsigned int)(rand() % 200);
		pid_t child;
		char *q;

		if (pipe(pfd))
			die("pipe");
		child = fork();
		if (child < 0)
			die("fork");
		if (!child) {
			char *m = region(len, 0);

			close(pfd[0]);
			if (write(pfd[1], &m, sizeof(m)) != sizeof(m))
				_exit(1);
			usleep(delay_ms * 1000);
			_exit(0);	/* in the middle of the parent's moves */
		}
		close(pfd[1]);
		if (read(pfd[0], &q, sizeof(q)) != sizeof(q))
			die("read");
		close(pfd[0]);
		for (int k = 0; k < 1000; k++) {
			struct tiermm_move_result r = { .sz = sizeof(r) };
			int ret = tiermm_move(child, q, len, (node + k) % 3, k % 2 ? TIERMM_MOVE_STRICT : 0,
					      &r);

			if (ret == 0) {
				ok_moves++;
				continue;
			}
			if (ret == -ESRCH) {
				esrch++;
				break;
			}
			other++;
			print_result("move of an exiting process", ret, &r);
			note("error: %s", tiermm_errmsg());
			break;
		}
		waitpid(child, &status, 0);
	}
	sleep(1);	/* let per-CPU page lists drain */
	for (int n = 0; n < 3; n++)
		free_after += node_free(n);
	anon_after = meminfo("AnonPages");
	note("%d processes: %" PRIu64 " moves completed, %" PRIu64 " ended with ESRCH, %" PRIu64
	     " other errors; free memory %" PRIu64 " -> %" PRIu64 " MiB",
	     rounds, ok_moves, esrch, other, free_before / MIB, free_after / MIB);
	check(other == 0, "moves of exiting processes end with 0 or ESRCH only");
	check(esrch == (uint64_t)rounds, "every process was seen gone (%" PRIu64 " of %d)", esrch,
	      rounds);
	check(vmstat("nr_isolated_anon") == 0 && vmstat("nr_isolated_file") == 0,
	      "no page left isolated (nr_isolated_anon %" PRIu64 ", nr_isolated_file %" PRIu64 ")",
	      vmstat("nr_isolated_anon"), vmstat("nr_isolated_file"));
	/* Each process had 32 MiB: what is left of them would show in AnonPages. */
	check(anon_after <= anon_before + 4 * MIB,
	      "the exited processes' memory was freed (AnonPages %" PRIu64 " -> %" PRIu64
	      " KiB; free memory %" PRIu64 " -> %" PRIu64 " MiB)",
	      anon_before / 1024, anon_after / 1024, free_before / MIB, free_after / MIB);
	check(count_fds() == fds_before, "no descriptor leaked (%d before, %d after)",
	      fds_before, count_fds());
	return 0;
}

int main(int argc, char **argv)
{
	ps = (size_t)sysconf(_SC_PAGESIZE);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 2) {
		fprintf(stderr,
			"usage: %s nodes [--no-scan]|tiers|tiers4|strict|integrity [SECONDS]|exit [ROUNDS]\n",
			argv[0]);
		return 2;
	}
	if (!strcmp(argv[1], "nodes"))
		cmd_nodes(argc > 2 && !strcmp(argv[2], "--no-scan"));
	else if (!strcmp(argv[1], "tiers"))
		cmd_tiers();
	else if (!strcmp(argv[1], "tiers4"))
		cmd_tiers4();
	else if (!strcmp(argv[1], "strict"))
		cmd_strict();
	else if (!strcmp(argv[1], "integrity"))
		cmd_integrity(argc > 2 ? atoi(argv[2]) : 60);
	else if (!strcmp(argv[1], "exit"))
		cmd_exit(argc > 2 ? atoi(argv[2]) : 20);
	else {
		fprintf(stderr, "%s: unknown test %s\n", argv[0], argv[1]);
		return 2;
	}
	return failures ? 1 : 0;
}
