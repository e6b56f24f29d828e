// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Placement on this host (one node is enough for everything but real
 * moves, which the tiered guest covers: tests/tiering/place_test.c): moves
 * that find every page already there, residency counts, tier allocation,
 * argument errors that change nothing, and the hint map's semantics and
 * concurrency (run this under ASan and TSan too).
 */
#include <errno.h>
#include <numaif.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "internal.h"
#include "hints.h"

static size_t ps;

static char *map_pages(size_t n)
{
	char *p = mmap(NULL, n * ps, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	assert_true(p != MAP_FAILED);
	return p;
}

static struct tiermm_move_result new_result(void)
{
	struct tiermm_move_result r;

	memset(&r, 0xa5, sizeof(r));	/* the call must overwrite all of it */
	r.sz = sizeof(r);
	return r;
}

static void assert_sum(const struct tiermm_move_result *r)
{
	assert_int_equal(r->sz, sizeof(*r));
	assert_int_equal(r->pages, r->moved + r->already_there + r->not_present +
					   r->failed + r->skipped);
	assert_int_equal(r->failed, r->failed_busy + r->failed_nomem +
					    r->failed_fault + r->failed_other);
}

static int first_mem_node(void)
{
	uint64_t bits[TIERMM__MAX_NODES / 64] = { 0 };
	struct tiermm__fs fs = { .root = "" };
	char buf[256];

	assert_true(tiermm__fs_read(&fs, "/sys/devices/system/node/has_memory", buf,
				    sizeof(buf)) > 0);
	assert_true(tiermm__list_parse(buf, bits, TIERMM__MAX_NODES) > 0);
	for (int i = 0; i < TIERMM__MAX_NODES; i++)
		if (tiermm__bit_test(bits, (unsigned int)i))
			return i;
	fail();
	return -1;
}

/*
 * Pages present after prepare_64(): 48, or 56 where reading a page gives
 * it a page of its own rather than the shared zero page (seen on a 6.18
 * host kernel: distinct page frames for read faults). The kernel's own
 * status query of a read page tells which.
 */
static uint64_t n_present;

/* Written pages 0..47, read-only pages 48..55 (zero page), 56..63 untouched. */
static char *prepare_64(void)
{
	char *p = map_pages(64);
	volatile char sink = 0;
	void *read_page;
	int st = -1;

	madvise(p, 64 * ps, MADV_NOHUGEPAGE);
	for (size_t i = 0; i < 48; i++)
		p[i * ps] = (char)i;
	for (size_t i = 48; i < 56; i++)
		sink += p[i * ps];
	(void)sink;
	read_page = p + 48 * ps;
	assert_int_equal(syscall(SYS_move_pages, 0, 1UL, &read_page, NULL, &st, 0), 0);
	n_present = st >= 0 ? 56 : 48;
	return p;
}

static void test_move_already_there(void **state)
{
	int node = first_mem_node();
	char *p = prepare_64();
	struct tiermm_move_result r = new_result();

	(void)state;
	errno = 1234;
	assert_int_equal(tiermm_move(0, p, 64 * ps, node, 0, &r), 0);
	assert_int_equal(errno, 1234);	/* left alone on success */
	assert_sum(&r);
	assert_int_equal(r.pages, 64);
	assert_int_equal(r.already_there, n_present);
	assert_int_equal(r.not_present, 64 - n_present);
	assert_int_equal(r.moved, 0);
	assert_int_equal(r.failed, 0);
	assert_int_equal(r.skipped, 0);
	assert_int_equal(r.first_error, 0);
	assert_int_equal(r.first_failed, 0);
	assert_true(r.syscalls >= 2);	/* a query before, one after */

	/* Strict, by pid, and without a result. */
	r = new_result();
	assert_int_equal(tiermm_move(getpid(), p, 64 * ps, node, TIERMM_MOVE_STRICT, &r), 0);
	assert_sum(&r);
	assert_int_equal(r.already_there, n_present);
	assert_int_equal(tiermm_move(0, p, 64 * ps, node, TIERMM_MOVE_SHARED, NULL), 0);

	/* A shorter result struct (an older caller) gets only its part. */
	{
		struct tiermm_move_result small;

		memset(&small, 0x5a, sizeof(small));
		small.sz = offsetof(struct tiermm_move_result, moved) + sizeof(uint64_t);
		assert_int_equal(tiermm_move(0, p, 64 * ps, node, 0, &small), 0);
		assert_int_equal(small.pages, 64);
		assert_int_equal(small.moved, 0);
		assert_int_equal(small.sz, offsetof(struct tiermm_move_result, moved) +
					   sizeof(uint64_t));
		assert_int_equal(small.already_there, 0x5a5a5a5a5a5a5a5aULL);
	}
	/* The length is rounded up to whole pages. */
	r = new_result();
	assert_int_equal(tiermm_move(0, p, 1, node, 0, &r), 0);
	assert_int_equal(r.pages, 1);
	assert_int_equal(r.already_there, 1);
	munmap(p, 64 * ps);
}

/* A 2 MiB-aligned THP-backed range: handed over by head address. */
static void test_move_huge(void **state)
{
	size_t hs = 2u << 20, len = 4 * hs;
	char *raw = map_pages((len + hs) / ps);
	char *p = (char *)(((uintptr_t)raw + hs - 1) & ~(uintptr_t)(hs - 1));
	struct tiermm_move_result r = new_result();
	uint64_t counts[TIERMM__MAX_NODES], absent = 99;
	int node = first_mem_node(), top;

	(void)state;
	madvise(p, len, MADV_HUGEPAGE);
	memset(p, 1, len);
	assert_int_equal(tiermm_move(0, p, len, node, TIERMM_MOVE_STRICT, &r), 0);
	assert_sum(&r);
	assert_int_equal(r.pages, len / ps);
	assert_int_equal(r.already_there, len / ps);
	/* Whether THP was used depends on the host; the counts may not. */
	print_message("huge range: %llu pages in %llu move_pages calls\n",
		      (unsigned long long)r.pages, (unsigned long long)r.syscalls);
	top = tiermm_residency(0, p, len, counts, TIERMM__MAX_NODES, &absent);
	assert_int_equal(top, node + 1);
	assert_int_equal(counts[node], len / ps);
	assert_int_equal(absent, 0);
	/* A range starting inside a huge page counts only its own pages. */
	r = new_result();
	assert_int_equal(tiermm_move(0, p + hs / 2, hs, node, 0, &r), 0);
	assert_int_equal(r.pages, hs / ps);
	assert_int_equal(r.already_there, hs / ps);
	munmap(raw, len + hs);
}

static void test_residency(void **state)
{
	int node = first_mem_node();
	char *p = prepare_64();
	uint64_t counts[TIERMM__MAX_NODES], absent = 99, small[1];

	(void)state;
	memset(counts, 0x11, sizeof(counts));
	assert_int_equal(tiermm_residency(0, p, 64 * ps, counts, TIERMM__MAX_NODES, &absent),
			 node + 1);
	assert_int_equal(counts[node], n_present);
	for (int i = 0; i < TIERMM__MAX_NODES; i++)
		if (i != node)
			assert_int_equal(counts[i], 0);
	assert_int_equal(absent, 64 - n_present);
	/* Size only; and a too-small array still says how large it must be. */
	assert_int_equal(tiermm_residency(0, p, 64 * ps, NULL, 0, NULL), node + 1);
	small[0] = 7;
	assert_int_equal(tiermm_residency(getpid(), p, 64 * ps, small, 1, NULL), node + 1);
	assert_int_equal(small[0], node == 0 ? n_present : 0);
	/* Nothing present: 0. */
	assert_int_equal(tiermm_residency(0, p + 56 * ps, 8 * ps, counts, 4, &absent), 0);
	assert_int_equal(absent, 8);

	/* Errors leave the outputs alone. */
	memset(counts, 0x22, sizeof(counts));
	absent = 5;
	munmap(p + 60 * ps, ps);
	assert_int_equal(tiermm_residency(0, p, 64 * ps, counts, 4, &absent), -EFAULT);
	assert_int_equal(errno, EFAULT);
	assert_non_null(strstr(tiermm_errmsg(), "not mapped"));
	assert_int_equal(counts[0], 0x2222222222222222ULL);
	assert_int_equal(absent, 5);
	assert_int_equal(tiermm_residency(0, p + 1, ps, counts, 4, &absent), -EINVAL);
	assert_int_equal(tiermm_residency(0, p, 0, counts, 4, &absent), -EINVAL);
	assert_int_equal(tiermm_residency(0, p, ps, NULL, 4, &absent), -EINVAL);
	assert_int_equal(tiermm_residency(-3, p, ps, counts, 4, &absent), -EINVAL);
	assert_int_equal(counts[0], 0x2222222222222222ULL);
	assert_int_equal(absent, 5);
	munmap(p, 60 * ps);
	munmap(p + 61 * ps, 3 * ps);
}

static pid_t gone_pid(void)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (!pid)
		_exit(0);
	waitpid(pid, NULL, 0);
	return pid;	/* reaped: no such process (barring reuse) */
}

static void test_move_bad_input(void **state)
{
	int node = first_mem_node();
	char *p = prepare_64();
	struct tiermm_move_result r = new_result(), before;
	uint64_t c0[TIERMM__MAX_NODES], c1[TIERMM__MAX_NODES], a0, a1;
	void *wrap = (void *)(~(uintptr_t)0 & ~(uintptr_t)(ps - 1));

	(void)state;
	assert_int_equal(tiermm_residency(0, p, 64 * ps, c0, TIERMM__MAX_NODES, &a0), node + 1);
#define BAD(call, err)                                                   \
	do {                                                             \
		errno = 0;                                               \
		assert_int_equal((call), -(err));                        \
		assert_int_equal(errno, (err));                          \
		assert_true(tiermm_errmsg()[0] != '\0');                 \
	} while (0)
	BAD(tiermm_move(0, p + 1, ps, node, 0, &r), EINVAL);
	BAD(tiermm_move(0, p, 0, node, 0, &r), EINVAL);
	BAD(tiermm_move(0, wrap, 2 * ps, node, 0, &r), EINVAL);
	BAD(tiermm_move(0, p, ps, -1, 0, &r), EINVAL);
	BAD(tiermm_move(0, p, ps, TIERMM__MAX_NODES, 0, &r), EINVAL);
	BAD(tiermm_move(0, p, ps, TIERMM__MAX_NODES - 1, 0, &r), ENODEV);
	BAD(tiermm_move(0, p, ps, node, 0x100, &r), EINVAL);
	BAD(tiermm_move(-1, p, ps, node, 0, &r), EINVAL);
	BAD(tiermm_move(gone_pid(), p, ps, node, 0, &r), ESRCH);
	before = r;
	r.sz = 3;
	BAD(tiermm_move(0, p, ps, node, 0, &r), EINVAL);
	r = before;
	/* An unmapped page in the middle: -EFAULT before anything moves. */
	munmap(p + 30 * ps, ps);
	BAD(tiermm_move(0, p, 64 * ps, node, 0, &r), EFAULT);
	assert_non_null(strstr(tiermm_errmsg(), "not mapped"));
	BAD(tiermm_move(0, p, 64 * ps, node, TIERMM_MOVE_STRICT, &r), EFAULT);
	assert_sum(&r);
	assert_int_equal(r.skipped, 64);	/* examined nothing */
	assert_int_equal(r.moved, 0);
	BAD(tiermm_move_tier(NULL, 0, p, ps, 0, 0, &r), EINVAL);
	{
		struct tiermm_topo *topo;
		int nt;

		assert_int_equal(tiermm_topo_load(NULL, &topo), 0);
		nt = tiermm_topo_nr_tiers(topo);
		BAD(tiermm_move_tier(topo, 0, p, ps, nt, 0, &r), ENOENT);
		BAD(tiermm_move_tier(topo, 0, p, ps, -1, 0, &r), ENOENT);
		BAD(tiermm_move_tier(topo, 0, p + 8, ps, 0, 0, &r), EINVAL);
		BAD(tiermm_move_tier(topo, 0, p, ps, 0, 8, &r), EINVAL);
		BAD(tiermm_residency_tiers(topo, 0, p, ps, c1, 0, NULL), ERANGE);
		BAD(tiermm_residency_tiers(NULL, 0, p, ps, c1, 8, NULL), EINVAL);
		tiermm_topo_free(topo);
	}
#undef BAD
	/* Nothing changed. */
	assert_int_equal(tiermm_residency(0, p, 30 * ps, c1, TIERMM__MAX_NODES, &a1), node + 1);
	assert_int_equal(c1[node], 30);
	assert_int_equal(a1, 0);
	assert_int_equal(c0[node], n_present);
	munmap(p, 30 * ps);
	munmap(p + 31 * ps, 33 * ps);
}

/* Another user's process: the kernel says EPERM (ptrace access mode). */
static void test_move_permission(void **state)
{
	char *p = prepare_64();
	int node = first_mem_node(), status;
	pid_t parent = getpid(), pid;

	(void)state;
	if (geteuid() != 0) {
		munmap(p, 64 * ps);
		skip();
	}
	pid = fork();
	assert_true(pid >= 0);
	if (!pid) {
		int ret;

		if (setgid(65534) || setuid(65534))
			_exit(2);
		ret = tiermm_move(parent, p, 8 * ps, node, 0, NULL);
		if (ret != -EPERM || errno != EPERM)
			fprintf(stderr, "child: tiermm_move returned %d: %s\n", ret,
				tiermm_errmsg());
		_exit(ret == -EPERM && errno == EPERM ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	munmap(p, 64 * ps);
}

static void test_move_tier(void **state)
{
	struct tiermm_topo *topo;
	char *p = prepare_64();
	struct tiermm_move_result r = new_result();
	uint64_t counts[16], absent;
	int nt;

	(void)state;
	assert_int_equal(tiermm_topo_load(NULL, &topo), 0);
	nt = tiermm_topo_nr_tiers(topo);
	assert_true(nt >= 1);
	/* This host: every page is on a node of some tier; move to the tier of node 0's pages. */
	assert_int_equal(tiermm_residency_tiers(topo, 0, p, 64 * ps, counts, 16, &absent), nt);
	assert_int_equal(absent, 64 - n_present);
	if (nt == 1) {
		assert_int_equal(counts[0], n_present);
		assert_int_equal(tiermm_move_tier(topo, 0, p, 64 * ps, 0, TIERMM_MOVE_STRICT,
						  &r), 0);
		assert_sum(&r);
		assert_int_equal(r.already_there, n_present);
		assert_int_equal(r.not_present, 64 - n_present);
	}
	tiermm_topo_free(topo);
	munmap(p, 64 * ps);
}

static void test_alloc_tier(void **state)
{
	struct tiermm_topo *topo;
	const struct tiermm_caps *caps = tiermm_caps_get();
	uint64_t counts[TIERMM__MAX_NODES], absent;
	unsigned long mask[TIERMM__MAX_NODES / (8 * sizeof(unsigned long))];
	size_t len = 10 * ps + 1;
	char list[64];
	int mode = -1, node = first_mem_node();
	char *p;

	(void)state;
	assert_non_null(caps);
	assert_int_equal(tiermm_topo_load(NULL, &topo), 0);
	assert_true(tiermm_topo_tier_nodes(topo, 0, list, sizeof(list)) > 0);
	p = tiermm_alloc_tier(topo, len, 0, TIERMM_ALLOC_POPULATE);
	assert_non_null(p);
	assert_int_equal((uintptr_t)p % ps, 0);
	assert_int_equal(tiermm_residency(0, p, len, counts, TIERMM__MAX_NODES, &absent),
			 node + 1);
	assert_int_equal(counts[node], 11);
	assert_int_equal(absent, 0);
	assert_int_equal(get_mempolicy(&mode, mask, TIERMM__MAX_NODES, p, MPOL_F_ADDR), 0);
	assert_int_equal(mode, MPOL_BIND);
	assert_true(mask[node / (8 * sizeof(unsigned long))] &
		    (1UL << (node % (8 * sizeof(unsigned long)))));
	assert_int_equal(p[len - 1], 0);
	/* Hints on it are cleared by tiermm_free(). */
	assert_int_equal(tiermm_hint(p, len, TIERMM_HINT_HOT, 0), 0);
	assert_int_equal(tiermm__hints_at((uintptr_t)p + 10 * ps), TIERMM_HINT_HOT);
	assert_int_equal(tiermm_free(p, len), 0);
	assert_int_equal(tiermm__hints_at((uintptr_t)p + 10 * ps), TIERMM_HINT_DEFAULT);

	/* Unpopulated: nothing until touched. */
	p = tiermm_alloc_tier(topo, 3 * ps, 0, 0);
	assert_non_null(p);
	assert_int_equal(tiermm_residency(0, p, 3 * ps, NULL, 0, &absent), 0);
	assert_int_equal(absent, 3);
	assert_int_equal(tiermm_free(p, 3 * ps), 0);

	/* Preferred: MPOL_PREFERRED_MANY where the kernel has it, else ENOTSUP. */
	errno = 0;
	p = tiermm_alloc_tier(topo, ps, 0, TIERMM_ALLOC_PREFERRED);
	if (tiermm_caps_state(caps, TIERMM_CAP_MPOL_PREFERRED_MANY) == TIERMM_CAP_PRESENT) {
		assert_non_null(p);
		assert_int_equal(get_mempolicy(&mode, mask, TIERMM__MAX_NODES, p, MPOL_F_ADDR),
				 0);
		assert_int_equal(mode, 5 /* MPOL_PREFERRED_MANY */);
		assert_int_equal(tiermm_free(p, ps), 0);
	} else {
		assert_null(p);
		assert_int_equal(errno, ENOTSUP);
	}

	/* Bad input. */
	assert_null(tiermm_alloc_tier(NULL, ps, 0, 0));
	assert_int_equal(errno, EINVAL);
	assert_null(tiermm_alloc_tier(topo, 0, 0, 0));
	assert_int_equal(errno, EINVAL);
	assert_null(tiermm_alloc_tier(topo, ps, tiermm_topo_nr_tiers(topo), 0));
	assert_int_equal(errno, ENOENT);
	assert_null(tiermm_alloc_tier(topo, ps, 0, 0x40));
	assert_int_equal(errno, EINVAL);
	assert_null(tiermm_alloc_tier(topo, SIZE_MAX, 0, 0));
	assert_int_equal(errno, EINVAL);
	assert_int_equal(tiermm_free(NULL, ps), -EINVAL);
	assert_int_equal(tiermm_free((char *)&mode, ps), -EINVAL);
	assert_int_equal(tiermm_free(topo, 0), -EINVAL);
	tiermm_topo_free(topo);
}

/* ---- hints ---- */

struct expect {
	size_t first, last;	/* pages of the test mapping */
	int hint;
};

static char *hbase;

static void check_map(const struct expect *ex, size_t n)
{
	struct tiermm__hint_range *r;
	size_t got;
	uint64_t gen;

	assert_int_equal(tiermm__hints_snapshot(0, UINT64_MAX, &r, &got, &gen), 0);
	if (got != n) {
		for (size_t i = 0; i < got; i++)
			print_message("  [%zu, %zu) %s\n",
				      (size_t)((r[i].start - (uintptr_t)hbase) / ps),
				      (size_t)((r[i].end - (uintptr_t)hbase) / ps),
				      tiermm_hint_name(r[i].hint));
	}
	assert_int_equal(got, n);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(r[i].start, (uintptr_t)hbase + ex[i].first * ps);
		assert_int_equal(r[i].end, (uintptr_t)hbase + ex[i].last * ps);
		assert_int_equal(r[i].hint, ex[i].hint);
	}
	free(r);
}

static int stop_at_second(const struct tiermm__hint_range *r, void *ctx)
{
	int *count = ctx;

	(void)r;
	return ++*count == 2 ? 42 : 0;
}

static int try_write(const struct tiermm__hint_range *r, void *ctx)
{
	int *ret = ctx;

	*ret = tiermm_hint((void *)(uintptr_t)r->start, ps, TIERMM_HINT_COLD, 0);
	return 0;
}

static void test_hints_semantics(void **state)
{
	uint64_t g0, g1;
	int count = 0, inner = 0;

	(void)state;
	tiermm__hints_reset();
	hbase = map_pages(40);
	memset(hbase, 1, 40 * ps);
	check_map(NULL, 0);
	g0 = tiermm__hints_generation();
	tiermm__hints_reset();	/* nothing to remove: no new generation */
	assert_int_equal(tiermm__hints_generation(), g0);

#define H(first, n, h) tiermm_hint(hbase + (first) * ps, (n) * ps, (h), 0)
	assert_int_equal(H(0, 10, TIERMM_HINT_HOT), 0);
	assert_true(tiermm__hints_generation() > g0);
	check_map((struct expect[]){ { 0, 10, TIERMM_HINT_HOT } }, 1);
	/* A later hint wins where they overlap. */
	assert_int_equal(H(5, 10, TIERMM_HINT_COLD), 0);
	check_map((struct expect[]){ { 0, 5, TIERMM_HINT_HOT }, { 5, 15, TIERMM_HINT_COLD } }, 2);
	/* DEFAULT removes. */
	assert_int_equal(H(2, 5, TIERMM_HINT_DEFAULT), 0);
	check_map((struct expect[]){ { 0, 2, TIERMM_HINT_HOT }, { 7, 15, TIERMM_HINT_COLD } }, 2);
	/* Touching ranges with one hint merge. */
	assert_int_equal(H(2, 5, TIERMM_HINT_HOT), 0);
	check_map((struct expect[]){ { 0, 7, TIERMM_HINT_HOT }, { 7, 15, TIERMM_HINT_COLD } }, 2);
	/* A hole punched inside one range splits it. */
	assert_int_equal(H(3, 1, TIERMM_HINT_NO_MIGRATE), 0);
	check_map((struct expect[]){ { 0, 3, TIERMM_HINT_HOT }, { 3, 4, TIERMM_HINT_NO_MIGRATE },
				     { 4, 7, TIERMM_HINT_HOT }, { 7, 15, TIERMM_HINT_COLD } }, 4);
	assert_int_equal(tiermm__hints_at((uintptr_t)hbase + 3 * ps + 5), TIERMM_HINT_NO_MIGRATE);
	assert_int_equal(tiermm__hints_at((uintptr_t)hbase + 15 * ps), TIERMM_HINT_DEFAULT);
	assert_int_equal(tiermm__hints_at((uintptr_t)hbase + 15 * ps - 1), TIERMM_HINT_COLD);
	/* One range covering several, and a length rounded up to a page. */
	assert_int_equal(H(20, 2, TIERMM_HINT_PIN_SLOW), 0);
	assert_int_equal(tiermm_hint(hbase + 22 * ps, 1, TIERMM_HINT_PIN_SLOW, 0), 0);
	check_map((struct expect[]){ { 0, 3, TIERMM_HINT_HOT }, { 3, 4, TIERMM_HINT_NO_MIGRATE },
				     { 4, 7, TIERMM_HINT_HOT }, { 7, 15, TIERMM_HINT_COLD },
				     { 20, 23, TIERMM_HINT_PIN_SLOW } }, 5);
	assert_int_equal(H(1, 21, TIERMM_HINT_PIN_FAST), 0);	/* moves to tier 0: here already */
	check_map((struct expect[]){ { 0, 1, TIERMM_HINT_HOT }, { 1, 22, TIERMM_HINT_PIN_FAST },
				     { 22, 23, TIERMM_HINT_PIN_SLOW } }, 3);
	assert_int_equal(tiermm_hint(hbase, 40 * ps, TIERMM_HINT_PIN_FAST,
				     TIERMM_HINT_RECORD_ONLY), 0);
	check_map((struct expect[]){ { 0, 40, TIERMM_HINT_PIN_FAST } }, 1);
	assert_int_equal(H(10, 10, TIERMM_HINT_COLD), 0);
	assert_int_equal(H(30, 5, TIERMM_HINT_HOT), 0);

	/* Lookups: clipped to the query, stopped by the callback. */
	assert_int_equal(tiermm__hints_lookup((uintptr_t)hbase + 12 * ps,
					      (uintptr_t)hbase + 31 * ps, stop_at_second,
					      &count), 42);
	assert_int_equal(count, 2);
	/* Changing hints inside a lookup would wait for itself. */
	assert_int_equal(tiermm__hints_lookup((uintptr_t)hbase, (uintptr_t)hbase + ps,
					      try_write, &inner), 0);
	assert_int_equal(inner, -EDEADLK);

	/* Errors change nothing, not even the generation. */
	g1 = tiermm__hints_generation();
#define BADH(call, err)                                          \
	do {                                                     \
		errno = 0;                                       \
		assert_int_equal((call), -(err));                \
		assert_int_equal(errno, (err));                  \
	} while (0)
	BADH(tiermm_hint(hbase + 1, ps, TIERMM_HINT_HOT, 0), EINVAL);
	BADH(tiermm_hint(hbase, 0, TIERMM_HINT_HOT, 0), EINVAL);
	BADH(tiermm_hint(hbase, ps, (enum tiermm_hint)99, 0), EINVAL);
	BADH(tiermm_hint(hbase, ps, (enum tiermm_hint)-1, 0), EINVAL);
	BADH(tiermm_hint(hbase, ps, TIERMM_HINT_HOT, 0x10), EINVAL);
	munmap(hbase + 38 * ps, 2 * ps);
	BADH(tiermm_hint(hbase + 30 * ps, 8 * ps + 1, TIERMM_HINT_HOT, 0), EFAULT);
	BADH(tiermm_hint(hbase + 30 * ps, 10 * ps, TIERMM_HINT_DEFAULT, 0), EFAULT);
	assert_int_equal(tiermm__hints_generation(), g1);
	check_map((struct expect[]){ { 0, 10, TIERMM_HINT_PIN_FAST }, { 10, 20, TIERMM_HINT_COLD },
				     { 20, 30, TIERMM_HINT_PIN_FAST }, { 30, 35, TIERMM_HINT_HOT },
				     { 35, 40, TIERMM_HINT_PIN_FAST } }, 5);
#undef BADH
#undef H
	assert_string_equal(tiermm_hint_name(TIERMM_HINT_NO_MIGRATE), "no_migrate");
	assert_string_equal(tiermm_hint_name(TIERMM_HINT_DEFAULT), "default");
	assert_null(tiermm_hint_name(TIERMM_HINT__COUNT));
	assert_int_equal(errno, EINVAL);
	/* Hints outlive the mapping (they name addresses) until cleared. */
	munmap(hbase, 38 * ps);
	assert_int_equal(tiermm__hints_at((uintptr_t)hbase), TIERMM_HINT_PIN_FAST);
	tiermm__hints_reset();
	check_map(NULL, 0);
}

/* ---- hints under concurrency ---- */

#define CW 3			/* writer threads, each with its own region */
#define CPAGES 64		/* pages per region */
#define CITER 600		/* updates per writer */

static char *cbase;
static volatile int cstop;
static volatile unsigned long reads_done, bad_reads;
static int model[CW][CPAGES];

struct reader_ctx {
	uint64_t prev_end;
	int prev_hint;
	unsigned long n;
	bool bad;
};

static int check_range(const struct tiermm__hint_range *r, void *ctx)
{
	struct reader_ctx *c = ctx;

	if (r->start >= r->end || r->start < c->prev_end ||
	    (r->start == c->prev_end && r->hint == c->prev_hint) ||
	    r->hint <= TIERMM_HINT_DEFAULT || r->hint >= TIERMM_HINT__COUNT ||
	    (r->start - (uintptr_t)cbase) % ps || (r->end - (uintptr_t)cbase) % ps)
		c->bad = true;
	c->prev_end = r->end;
	c->prev_hint = r->hint;
	c->n++;
	return 0;
}

static void *reader(void *arg)
{
	unsigned long reads = 0, bad = 0;

	(void)arg;
	while (!__atomic_load_n(&cstop, __ATOMIC_ACQUIRE)) {
		struct reader_ctx c = { .prev_hint = -1 };
		struct tiermm__hint_range *copy;
		size_t n;

		tiermm__hints_lookup(0, UINT64_MAX, check_range, &c);
		if (c.bad)
			bad++;
		if (tiermm__hints_snapshot(0, UINT64_MAX, &copy, &n, NULL) == 0)
			free(copy);
		(void)tiermm__hints_at((uintptr_t)cbase + (reads % (CW * CPAGES)) * ps);
		reads++;
	}
	__atomic_add_fetch(&reads_done, reads, __ATOMIC_RELAXED);
	__atomic_add_fetch(&bad_reads, bad, __ATOMIC_RELAXED);
	return NULL;
}

static void *writer(void *arg)
{
	int w = (int)(intptr_t)arg;
	unsigned int seed = 17u * (unsigned int)w + 1;
	char *base = cbase + (size_t)w * CPAGES * ps;

	for (int i = 0; i < CITER; i++) {
		int first = rand_r(&seed) % CPAGES;
		int n = 1 + rand_r(&seed) % (CPAGES - first);
		int h = rand_r(&seed) % TIERMM_HINT__COUNT;

		/* PIN_* with RECORD_ONLY: this test is about the map. */
		if (tiermm_hint(base + (size_t)first * ps, (size_t)n * ps, (enum tiermm_hint)h,
				TIERMM_HINT_RECORD_ONLY))
			abort();
		for (int k = first; k < first + n; k++)
			model[w][k] = h;
	}
	return NULL;
}

static void test_hints_concurrent(void **state)
{
	pthread_t rt[2], wt[CW];
	uint64_t gen0;
	struct timespec t0, t1;

	(void)state;
	tiermm__hints_reset();
	cbase = map_pages(CW * CPAGES);
	memset(model, 0, sizeof(model));
	cstop = 0;
	reads_done = bad_reads = 0;
	gen0 = tiermm__hints_generation();
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&rt[i], NULL, reader, NULL), 0);
	for (int i = 0; i < CW; i++)
		assert_int_equal(pthread_create(&wt[i], NULL, writer, (void *)(intptr_t)i), 0);

	/* A fork while writers run: the child can still use hints. */
	{
		pid_t pid = fork();
		int status;

		assert_true(pid >= 0);
		if (!pid) {
			alarm(20);
			if (tiermm_hint(cbase, ps, TIERMM_HINT_COLD, TIERMM_HINT_RECORD_ONLY) ||
			    tiermm__hints_at((uintptr_t)cbase) != TIERMM_HINT_COLD)
				_exit(1);
			tiermm__hints_reset();
			_exit(tiermm__hints_at((uintptr_t)cbase) == TIERMM_HINT_DEFAULT ? 0 : 1);
		}
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}

	for (int i = 0; i < CW; i++)
		assert_int_equal(pthread_join(wt[i], NULL), 0);
	__atomic_store_n(&cstop, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_join(rt[i], NULL), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	print_message("%d writers x %d updates, %lu consistent reads in %.2f s\n", CW, CITER,
		      reads_done,
		      (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	assert_int_equal(bad_reads, 0);
	assert_true(reads_done > 0);
	assert_true(tiermm__hints_generation() > gen0);
	/* The map equals the per-page model of every writer. */
	for (int w = 0; w < CW; w++)
		for (int k = 0; k < CPAGES; k++)
			assert_int_equal(tiermm__hints_at((uintptr_t)cbase +
							  ((size_t)w * CPAGES + (size_t)k) * ps),
					 model[w][k]);
	tiermm__hints_reset();
	munmap(cbase, CW * CPAGES * ps);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_move_already_there),
		cmocka_unit_test(test_move_huge),
		cmocka_unit_test(test_residency),
		cmocka_unit_test(test_move_bad_input),
		cmocka_unit_test(test_move_permission),
		cmocka_unit_test(test_move_tier),
		cmocka_unit_test(test_alloc_tier),
		cmocka_unit_test(test_hints_semantics),
		cmocka_unit_test(test_hints_concurrent),
	};

	ps = (size_t)sysconf(_SC_PAGESIZE);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
