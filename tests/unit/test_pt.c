// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Page-table calls: argument checks, the missing module, and, with a fake
 * device playing tiermm.ko's part, the handshake checks, error messages,
 * statistics, resumable dumps, migration results and the scanner's windows.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <linux/tiermm.h>

#include "internal.h"

_Static_assert(sizeof(struct tiermm_get_api) == TIERMM_GET_API_SIZE_VER0, "get_api");
_Static_assert(sizeof(struct tiermm_pt_stat) == TIERMM_PT_STAT_SIZE_VER0, "pt_stat");
_Static_assert(sizeof(struct tiermm_pt_dump) == TIERMM_PT_DUMP_SIZE_VER0, "pt_dump");
_Static_assert(sizeof(struct tiermm_pt_migrate) == TIERMM_PT_MIGRATE_SIZE_VER0,
	       "pt_migrate");
_Static_assert(sizeof(struct tiermm_ab_scan) == TIERMM_AB_SCAN_SIZE_VER0, "ab_scan");

#define FAKE_FD 777

/* ---- The fake module ---------------------------------------------------- */

static struct {
	uint32_t api_version;
	uint64_t commands;
	int open_err;		/* open fails with this errno */
	int opens, closes;
	int ioctl_err;		/* every command fails with this errno */
	int calls;
	/* PT_STAT */
	unsigned int need_nodes;
	int32_t last_pid;
	uint64_t last_start, last_len;
	/* PT_MIGRATE */
	int32_t last_node;
	uint32_t last_levels;
	/* PT_DUMP: records that fit per call */
	unsigned int dump_per_call;
	/* AB_SCAN */
	uint64_t scan_max_pages;
	/* GET_API features; PT_STAT's flags and replica records as given */
	uint64_t features;
	uint32_t last_stat_flags;
	uint32_t last_repl_nr;
	int repl_group;		/* replicas per CPU group, slot 70 */
} fake;

static int fake_open(struct tiermm_get_api *api)
{
	fake.opens++;
	if (fake.open_err)
		return tiermm__fail(fake.open_err, "fake open failed");
	memset(api, 0, sizeof(*api));
	api->argsz = sizeof(*api);
	api->api_version = fake.api_version;
	api->commands = fake.commands;
	api->features = fake.features;
	return FAKE_FD;
}

static void fake_close(int fd)
{
	assert_int_equal(fd, FAKE_FD);
	fake.closes++;
}

static int fake_stat(struct tiermm_pt_stat *k)
{
	uint64_t *tables = (uint64_t *)(uintptr_t)k->tables_ptr;
	uint64_t *leaf = (uint64_t *)(uintptr_t)k->leaf_ptr;
	uint64_t *data = (uint64_t *)(uintptr_t)k->data_ptr;

	/* node 0: 3 PTE tables with 100 leaves, 100 data pages, the PMD, PUD
	 * and PGD; node 2: 1 PTE table, 300 leaves and 300 data pages. */
	tables[0 * 4 + TIERMM_PT_PTE] = 3;
	tables[0 * 4 + TIERMM_PT_PMD] = 1;
	tables[0 * 4 + TIERMM_PT_PUD] = 1;
	tables[0 * 4 + TIERMM_PT_PGD] = 1;
	tables[2 * 4 + TIERMM_PT_PTE] = 1;
	leaf[0] = 100;
	leaf[2] = 300;
	data[0] = 100;
	data[2] = 300;
	k->tables_local[TIERMM_PT_PTE] = 2;
	k->tables_remote[TIERMM_PT_PTE] = 1;
	k->tables_empty[TIERMM_PT_PTE] = 1;
	k->tables_local[TIERMM_PT_PMD] = 1;
	k->leaf_huge[TIERMM_PT_PMD] = 7;
	/* API 3 with replicas: slots 0 and 2 (or, in group mode, 0 and 70)
	 * hold one each; the second has a PTE table elsewhere (could not be
	 * allocated there). */
	if ((k->flags & TIERMM_PT_STAT_REPLICAS) &&
	    (fake.features & TIERMM_FEAT_PT_REPLICAS)) {
		struct tiermm_pt_stat_repl *r = (void *)(uintptr_t)k->repl_ptr;
		uint32_t slots[2] = { 0, fake.repl_group ? 70 : 2 };
		uint32_t flags = TIERMM_PT_REPLICA_PRESENT |
				 (fake.repl_group ? TIERMM_PT_REPLICA_GROUP : 0);

		fake.last_repl_nr = k->repl_nr;
		for (int i = 0; i < 2; i++) {
			uint32_t n = slots[i];

			if (n >= k->repl_nr) {
				k->repl_nr = slots[1] + 1;
				return -ENOSPC;
			}
		}
		for (int i = 0; i < 2; i++) {
			uint32_t n = slots[i];

			r[n].flags = flags;
			r[n].tables[TIERMM_PT_PTE] = 4;
			r[n].tables[TIERMM_PT_PMD] = 1;
			r[n].tables[TIERMM_PT_PUD] = 1;
			r[n].tables[TIERMM_PT_PGD] = 1;
			memcpy(r[n].local, r[n].tables, sizeof(r[n].local));
		}
		r[slots[1]].local[TIERMM_PT_PTE] = 3;
		k->repl_count = 2;
	}
	return 0;
}

/* A tree: PGD, PUD, PMD at 0 with 8 PTE tables (0-16 MiB), PMD at 1 GiB
 * with 2 PTE tables. In DFS order. */
static const struct {
	uint32_t level;
	uint64_t va;
} tree[] = {
	{ 3, 0 }, { 2, 0 }, { 1, 0 },
	{ 0, 0 << 21 }, { 0, 1 << 21 }, { 0, 2 << 21 }, { 0, 3 << 21 },
	{ 0, 4ULL << 21 }, { 0, 5ULL << 21 }, { 0, 6ULL << 21 }, { 0, 7ULL << 21 },
	{ 1, 1ULL << 30 }, { 0, 1ULL << 30 }, { 0, (1ULL << 30) + (1 << 21) },
};

static uint64_t tree_span(uint32_t level)
{
	static const unsigned int shift[] = { 21, 30, 39, 48 };

	return 1ULL << shift[level];
}

/* Like the module: every table that maps part of [start, start + len), each
 * whole, top-down; a table that does not fit ends the call. */
static void fake_dump(struct tiermm_pt_dump *k)
{
	const size_t recsz = sizeof(struct tiermm_pt_dump_rec) + 512 * 8;
	unsigned char *buf = (unsigned char *)(uintptr_t)k->buf_ptr;
	uint64_t end = k->start + k->len, off = 0;
	unsigned int n = 0;

	k->next = end;
	for (size_t i = 0; i < sizeof(tree) / sizeof(tree[0]); i++) {
		uint64_t tva = tree[i].va, tend = tva + tree_span(tree[i].level);
		struct tiermm_pt_dump_rec *r;

		if (tend <= k->start || tva >= end)
			continue;
		if (off + recsz > k->buf_len || n == fake.dump_per_call) {
			k->next = tva > k->start ? tva : k->start;
			break;
		}
		r = (void *)(buf + off);
		memset(r, 0, recsz);
		r->va = tva;
		r->pfn = 0x1000 + i;
		r->level = tree[i].level;
		r->node = (int)(i % 2);
		r->nr_entries = 512;
		r->entries[0] = 0x8000000000000067ULL | ((0x5000 + i) << 12);
		r->entries[5] = 0x2000;	/* a swap entry: not present */
		off += recsz;
		n++;
	}
	k->written = off;
}

static void fake_scan(struct tiermm_ab_scan *k)
{
	uint64_t end = k->start + k->len, pages, cur = k->cursor;
	uint64_t maxp = k->max_pages ? k->max_pages : 262144;

	assert_true(cur >= k->start && cur < end);
	fake.scan_max_pages = k->max_pages;
	pages = (end - cur) / 4096;
	if (pages > maxp)
		pages = maxp;
	if (k->flags & TIERMM_SCAN_COUNTS) {
		uint16_t *c = (uint16_t *)(uintptr_t)k->out_ptr;
		uint64_t a = cur, stop = cur + pages * 4096;

		/* Every other page of each 2 MiB region. */
		while (a < stop) {
			uint64_t i = (a - k->start) >> 21;
			uint64_t rend = k->start + ((i + 1) << 21);

			if (rend > stop)
				rend = stop;
			assert_true((i + 1) * 2 <= k->out_len);
			c[i] = (uint16_t)(c[i] + (rend - a) / 8192);
			a = rend;
		}
	} else {
		unsigned char *b = (unsigned char *)(uintptr_t)k->out_ptr;

		for (uint64_t p = 0; p < pages; p++) {
			uint64_t addr = cur + p * 4096, i = (addr - k->start) / 4096;

			assert_true(i / 8 < k->out_len);
			if (addr % 8192 == 0)
				b[i / 8] |= (unsigned char)(1u << (i % 8));
		}
	}
	k->scanned = pages;
	k->accessed = (pages + 1) / 2;
	k->cursor = cur + pages * 4096;
}

static int fake_ioctl(int fd, unsigned long req, void *arg)
{
	struct { uint32_t argsz, flags; int32_t pid; } *hdr = arg;

	assert_int_equal(fd, FAKE_FD);
	fake.calls++;
	if (fake.ioctl_err) {
		errno = fake.ioctl_err;
		return -1;
	}
	fake.last_pid = hdr->pid;
	switch (req) {
	case TIERMM_IOC_PT_STAT: {
		struct tiermm_pt_stat *k = arg;

		assert_int_equal(k->argsz, TIERMM_PT_STAT_SIZE_VER0);
		/* The replica flag only to a module of API 3. */
		assert_int_equal(k->flags, fake.api_version >= 3 ?
				 TIERMM_PT_STAT_REPLICAS : 0);
		assert_true(!k->flags == !k->repl_ptr);
		assert_true(!k->flags == !k->repl_nr);
		fake.last_stat_flags = k->flags;
		fake.last_start = k->start;
		fake.last_len = k->len;
		if (k->nr_nodes < fake.need_nodes) {
			k->nr_nodes = fake.need_nodes;
			errno = ENOSPC;
			return -1;
		}
		if (fake_stat(k)) {
			errno = ENOSPC;
			return -1;
		}
		return 0;
	}
	case TIERMM_IOC_PT_DUMP:
		assert_int_equal(((struct tiermm_pt_dump *)arg)->argsz,
				 TIERMM_PT_DUMP_SIZE_VER0);
		fake_dump(arg);
		return 0;
	case TIERMM_IOC_PT_MIGRATE: {
		struct tiermm_pt_migrate *k = arg;

		assert_int_equal(k->argsz, TIERMM_PT_MIGRATE_SIZE_VER0);
		fake.last_node = k->node;
		fake.last_levels = k->levels;
		fake.last_start = k->start;
		fake.last_len = k->len;
		k->moved[TIERMM_PT_PTE] = 3;
		k->moved[TIERMM_PT_PMD] = 1;
		k->skipped[TIERMM_SKIP_ALREADY] = 2;
		k->skipped[TIERMM_SKIP_BUSY] = 1;
		return 0;
	}
	case TIERMM_IOC_AB_SCAN:
		assert_int_equal(((struct tiermm_ab_scan *)arg)->argsz,
				 TIERMM_AB_SCAN_SIZE_VER0);
		fake_scan(arg);
		return 0;
	}
	errno = ENOTTY;
	return -1;
}

static const struct tiermm__pt_dev fake_dev = {
	.open = fake_open,
	.ioctl = fake_ioctl,
	.close = fake_close,
};

static int fake_setup(void **state)
{
	(void)state;
	memset(&fake, 0, sizeof(fake));
	fake.api_version = 2;
	fake.commands = 0x1f;
	fake.dump_per_call = 1000;
	fake.need_nodes = 3;	/* fake_stat() writes nodes 0 and 2 */
	tiermm__pt_set_dev(&fake_dev);
	return 0;
}

static int fake_teardown(void **state)
{
	(void)state;
	tiermm__pt_set_dev(NULL);
	return 0;
}

/* ---- The interface ------------------------------------------------------ */

/* The library speaks the module's version-0 structs (also checked at build
 * time in lib/pt.c), and the public constants are the module's. */
static void test_uapi(void **state)
{
	(void)state;
	assert_int_equal(sizeof(struct tiermm_get_api), TIERMM_GET_API_SIZE_VER0);
	assert_int_equal(sizeof(struct tiermm_pt_stat), TIERMM_PT_STAT_SIZE_VER0);
	assert_int_equal(sizeof(struct tiermm_pt_dump), TIERMM_PT_DUMP_SIZE_VER0);
	assert_int_equal(sizeof(struct tiermm_pt_migrate), TIERMM_PT_MIGRATE_SIZE_VER0);
	assert_int_equal(sizeof(struct tiermm_ab_scan), TIERMM_AB_SCAN_SIZE_VER0);
	assert_int_equal(TIERMM_PT_LEVEL__COUNT, TIERMM_PT_NR_LEVELS);
	assert_int_equal(TIERMM_PT_SKIP__COUNT, TIERMM_SKIP_NR);
	assert_int_equal(TIERMM_PT_LEVELS_ALL, TIERMM_PT_MIGRATE_ALL);
	assert_int_equal(TIERMM_AB_SCAN_COUNTS, TIERMM_SCAN_COUNTS);
}

/* ---- Without the module ------------------------------------------------ */

static void expect_enodev(int ret)
{
	assert_int_equal(ret, -ENODEV);
	assert_int_equal(errno, ENODEV);
	assert_non_null(strstr(tiermm_errmsg(), "tiermm.ko is not loaded"));
	assert_non_null(strstr(tiermm_errmsg(), "modprobe tiermm"));
}

static void test_no_module(void **state)
{
	struct tiermm_pt_stats *st = (void *)1;
	struct tiermm_ab_scanner *sc = (void *)1;
	FILE *devnull;

	(void)state;
	if (access("/dev/" TIERMM_DEVICE_NAME, F_OK) == 0)
		skip();	/* the module is loaded here */
	devnull = fopen("/dev/null", "w");
	assert_non_null(devnull);
	expect_enodev(tiermm_pt_stat(0, 0, 0, 0, &st));
	assert_null(st);
	expect_enodev(tiermm_pt_stat(getpid(), 0x400000, 0x1000, 0, &st));
	expect_enodev(tiermm_pt_dump(0, 0, 0, devnull, TIERMM_PT_DUMP_JSON));
	expect_enodev(tiermm_pt_migrate(0, 0, 0, TIERMM_NODE_AUTO,
					TIERMM_PT_LEVELS_ALL, NULL));
	expect_enodev(tiermm_ab_scan_open(0, 0, 0, NULL, &sc));
	assert_null(sc);
	/* Still not there: every call tries again, and says so again. */
	expect_enodev(tiermm_pt_stat(0, 0, 0, 0, &st));
	fclose(devnull);
}

/* ---- Arguments, checked before the module ------------------------------- */

static void expect_einval(int ret, const char *needle)
{
	assert_int_equal(ret, -EINVAL);
	assert_int_equal(errno, EINVAL);
	if (!strstr(tiermm_errmsg(), needle))
		fail_msg("message '%s' lacks '%s'", tiermm_errmsg(), needle);
}

static void test_bad_arguments(void **state)
{
	struct tiermm_pt_stats *st;
	struct tiermm_ab_scanner *sc;
	struct tiermm_pt_migrate_result res = { .sz = 8 };
	FILE *devnull = fopen("/dev/null", "w");

	(void)state;
	assert_non_null(devnull);
	/* The real device: these must fail whether or not it is there. */
	tiermm__pt_set_dev(NULL);
	expect_einval(tiermm_pt_stat(0, 0, 0, 0, NULL), "stat is NULL");
	expect_einval(tiermm_pt_stat(0, 0, 0, 1, &st), "flags must be 0");
	expect_einval(tiermm_pt_stat(-1, 0, 0, 0, &st), "negative");
	expect_einval(tiermm_pt_stat(0, 0x1001, 0x1000, 0, &st), "multiples of 4096");
	expect_einval(tiermm_pt_stat(0, 0x1000, 0x10, 0, &st), "multiples of 4096");
	expect_einval(tiermm_pt_stat(0, 0x1000, 0, 0, &st), "whole process");
	expect_einval(tiermm_pt_stat(0, 0xfffffffffffff000ULL, 0x2000, 0, &st),
		      "overflows");
	expect_einval(tiermm_pt_stat(0, 1ULL << 56, 0x1000, 0, &st),
		      "beyond any user address space");
	expect_einval(tiermm_pt_dump(0, 0, 0, NULL, 0), "out is NULL");
	expect_einval(tiermm_pt_dump(0, 0, 0, devnull, 4), "unknown format");
	expect_einval(tiermm_pt_dump(0, 0x10, 0x1000, devnull, 0), "multiples");
	expect_einval(tiermm_pt_migrate(0, 0, 0, -2, TIERMM_PT_LEVELS_ALL, NULL),
		      "not a node id");
	expect_einval(tiermm_pt_migrate(0, 0, 0, 1024, TIERMM_PT_LEVELS_ALL, NULL),
		      "not a node id");
	expect_einval(tiermm_pt_migrate(0, 0, 0, 0, 0, NULL), "non-empty set");
	expect_einval(tiermm_pt_migrate(0, 0, 0, 0, 1u << 3, NULL), "never moved");
	expect_einval(tiermm_pt_migrate(0, 0, 0, 0, TIERMM_PT_LEVELS_PTE, &res),
		      "result->sz");
	expect_einval(tiermm_pt_migrate(0, 3, 0x1000, 0, TIERMM_PT_LEVELS_PTE, NULL),
		      "multiples");
	expect_einval(tiermm_ab_scan_open(0, 0, 0, NULL, NULL), "scanner is NULL");
	{
		TIERMM_OPTS(tiermm_ab_scan_opts, o, .flags = 4);

		expect_einval(tiermm_ab_scan_open(0, 0, 0, &o, &sc), "unknown flags");
	}
	{
		TIERMM_OPTS(tiermm_ab_scan_opts, o, .flags = TIERMM_AB_SCAN_COUNTS);

		expect_einval(tiermm_ab_scan_open(0, 0x1000, 0x200000, &o, &sc),
			      "2 MiB aligned");
	}
	{
		struct tiermm_ab_scan_opts o = { .sz = 4 };

		expect_einval(tiermm_ab_scan_open(0, 0, 0, &o, &sc), "sz is 4");
	}
	{
		struct {
			struct tiermm_ab_scan_opts o;
			uint64_t future;
		} big = { .o = { .sz = sizeof(big) }, .future = 1 };

		expect_einval(tiermm_ab_scan_open(0, 0, 0, &big.o, &sc),
			      "does not know");
	}
	assert_null(tiermm_pt_level_name(4));
	assert_string_equal(tiermm_pt_level_name(TIERMM_PT_LEVEL_PMD), "pmd");
	assert_string_equal(tiermm_pt_skip_name(TIERMM_PT_SKIP_NO_DATA), "no-data");
	assert_null(tiermm_pt_skip_name(5));
	assert_null(tiermm_pt_skip_name(-1));
	fclose(devnull);
}

/* ---- The handshake ------------------------------------------------------ */

static void test_handshake(void **state)
{
	struct tiermm_pt_stats *st;
	FILE *devnull = fopen("/dev/null", "w");

	(void)state;
	assert_non_null(devnull);
	fake.api_version = 1;
	assert_int_equal(tiermm_pt_stat(0, 0x1000, 0x1000, 0, &st), -EPROTO);
	assert_int_equal(errno, EPROTO);
	assert_non_null(strstr(tiermm_errmsg(), "API version 1"));
	assert_non_null(strstr(tiermm_errmsg(), "needs version 2"));
	/* The handshake is kept: one open for all calls. */
	assert_int_equal(tiermm_pt_stat(0, 0x1000, 0x1000, 0, &st), -EPROTO);
	assert_int_equal(fake.opens, 1);

	/* A module without PT_DUMP still answers PT_STAT. */
	tiermm__pt_set_dev(&fake_dev);
	fake.api_version = 2;
	fake.commands = 0x1f & ~(1u << TIERMM_CMD_PT_DUMP);
	assert_int_equal(tiermm_pt_dump(0, 0x1000, 0x1000, devnull, 0), -EPROTO);
	assert_non_null(strstr(tiermm_errmsg(), "does not implement PT_DUMP"));
	assert_int_equal(tiermm_pt_stat(0, 0x1000, 0x1000, 0, &st), 0);
	tiermm_pt_stat_free(st);

	/* A failed open is not kept. */
	tiermm__pt_set_dev(&fake_dev);
	fake.opens = 0;
	fake.open_err = EACCES;
	assert_int_equal(tiermm_pt_stat(0, 0x1000, 0x1000, 0, &st), -EACCES);
	assert_non_null(strstr(tiermm_errmsg(), "page-table statistics: fake open failed"));
	fake.open_err = 0;
	assert_int_equal(tiermm_pt_stat(0, 0x1000, 0x1000, 0, &st), 0);
	assert_int_equal(fake.opens, 2);
	tiermm_pt_stat_free(st);
	fclose(devnull);
}

/* A forked child opens the module again; the parent keeps its handshake. */
static void test_fork(void **state)
{
	struct tiermm_pt_stats *st;
	pid_t child;
	int status;

	(void)state;
	assert_int_equal(tiermm_pt_stat(0, 0x1000, 0x1000, 0, &st), 0);
	tiermm_pt_stat_free(st);
	assert_int_equal(fake.opens, 1);
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		int ok = fake.closes == 1;	/* the atfork handler */

		ok = ok && tiermm_pt_stat(0, 0x1000, 0x1000, 0, &st) == 0;
		tiermm_pt_stat_free(st);
		_exit(ok && fake.opens == 2 ? 0 : 1);
	}
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(tiermm_pt_stat(0, 0x1000, 0x1000, 0, &st), 0);
	tiermm_pt_stat_free(st);
	assert_int_equal(fake.opens, 1);
	assert_int_equal(fake.closes, 0);
}

/* ---- Kernel errors -------------------------------------------------------- */

static void test_kernel_errors(void **state)
{
	struct tiermm_pt_stats *st;

	(void)state;
	fake.ioctl_err = ESRCH;
	assert_int_equal(tiermm_pt_stat(4242, 0x1000, 0x1000, 0, &st), -ESRCH);
	assert_int_equal(errno, ESRCH);
	assert_string_equal(tiermm_errmsg(),
			    "page-table statistics: pid 4242: no such process");
	fake.ioctl_err = EPERM;
	assert_int_equal(tiermm_pt_stat(1, 0x1000, 0x1000, 0, &st), -EPERM);
	assert_non_null(strstr(tiermm_errmsg(), "ptrace read access"));
	assert_int_equal(tiermm_pt_migrate(1, 0x1000, 0x1000, 0,
					   TIERMM_PT_LEVELS_PTE, NULL), -EPERM);
	assert_non_null(strstr(tiermm_errmsg(), "CAP_SYS_NICE"));
	fake.ioctl_err = EINVAL;
	assert_int_equal(tiermm_pt_migrate(1, 0x1000, 0x1000, 3,
					   TIERMM_PT_LEVELS_PTE, NULL), -EINVAL);
	assert_non_null(strstr(tiermm_errmsg(), "has no memory"));
	assert_int_equal(tiermm_pt_stat(2, 0x1000, 0x1000, 0, &st), -EINVAL);
	assert_non_null(strstr(tiermm_errmsg(), "kernel thread"));
	fake.ioctl_err = ENOTTY;
	assert_int_equal(tiermm_pt_stat(1, 0x1000, 0x1000, 0, &st), -EPROTO);
	assert_non_null(strstr(tiermm_errmsg(), "ENOTTY"));
	/* The module refuses processes with MMU notifiers. */
	fake.ioctl_err = EOPNOTSUPP;
	assert_int_equal(tiermm_pt_migrate(1, 0x1000, 0x1000, 0,
					   TIERMM_PT_LEVELS_ALL, NULL), -EOPNOTSUPP);
	assert_int_equal(errno, EOPNOTSUPP);
	assert_non_null(strstr(tiermm_errmsg(), "MMU notifiers"));
	/* API 3: and processes with replicated page tables. */
	fake.ioctl_err = EBUSY;
	assert_int_equal(tiermm_pt_migrate(1, 0x1000, 0x1000, 0,
					   TIERMM_PT_LEVELS_ALL, NULL), -EBUSY);
	assert_non_null(strstr(tiermm_errmsg(), "page tables are replicated"));
	fake.ioctl_err = 0;
	/* The whole-process mode reads /proc/PID/maps first. */
	assert_int_equal(tiermm_pt_stat(0x3ffffff0, 0, 0, 0, &st), -ESRCH);
	assert_non_null(strstr(tiermm_errmsg(), "no such process"));
	assert_int_equal(fake.calls, 8);
}

/* ---- Statistics -------------------------------------------------------- */

static void test_stat(void **state)
{
	struct tiermm_pt_stats *st;
	struct tiermm_pt_node n = { .sz = sizeof(n) };
	struct tiermm_pt_summary s = { .sz = sizeof(s) };

	(void)state;
	fake.need_nodes = 5;	/* more than this host's possible nodes */
	assert_int_equal(tiermm_pt_stat(77, 0x400000, 0x200000, 0, &st), 0);
	assert_int_equal(fake.last_pid, 77);
	assert_int_equal(fake.last_start, 0x400000);
	assert_int_equal(fake.last_len, 0x200000);
	assert_int_equal(tiermm_pt_stat_nr_nodes(st), 5);

	assert_int_equal(tiermm_pt_stat_node(st, 0, &n), 0);
	assert_int_equal(n.node, 0);
	assert_true(n.online);
	assert_int_equal(n.tables[TIERMM_PT_LEVEL_PTE], 3);
	assert_int_equal(n.tables[TIERMM_PT_LEVEL_PGD], 1);
	assert_int_equal(n.leaf_entries, 100);
	assert_int_equal(n.data_pages, 100);
	assert_true(n.leaf_local > 0.249 && n.leaf_local < 0.251);
	assert_int_equal(tiermm_pt_stat_node(st, 2, &n), 0);
	assert_true(n.leaf_local > 0.749 && n.leaf_local < 0.751);
	assert_true(n.data_share > 0.749 && n.data_share < 0.751);
	assert_int_equal(tiermm_pt_stat_node(st, 5, &n), -ENOENT);
	assert_int_equal(tiermm_pt_stat_node(st, -1, &n), -ENOENT);
	n.sz = 8;
	assert_int_equal(tiermm_pt_stat_node(st, 0, &n), -EINVAL);

	assert_int_equal(tiermm_pt_stat_summary(st, &s), 0);
	assert_int_equal(s.pid, 77);
	assert_false(s.whole);
	assert_int_equal(s.start, 0x400000);
	assert_int_equal(s.len, 0x200000);
	assert_int_equal(s.tables[TIERMM_PT_LEVEL_PTE], 4);
	assert_int_equal(s.tables[TIERMM_PT_LEVEL_PMD], 1);
	assert_int_equal(s.tables_local[TIERMM_PT_LEVEL_PTE], 2);
	assert_int_equal(s.tables_remote[TIERMM_PT_LEVEL_PTE], 1);
	assert_int_equal(s.tables_empty[TIERMM_PT_LEVEL_PTE], 1);
	assert_int_equal(s.leaf_huge[TIERMM_PT_LEVEL_PMD], 7);
	assert_int_equal(s.leaf_entries, 400);
	assert_int_equal(s.data_pages, 400);
	assert_int_equal(s.data_node, 2);
	assert_int_equal(s.leaf_node, 2);
	s.sz = 0;
	assert_int_equal(tiermm_pt_stat_summary(st, &s), -EINVAL);
	assert_int_equal(tiermm_pt_stat_nr_nodes(NULL), -EINVAL);
	tiermm_pt_stat_free(st);
	tiermm_pt_stat_free(NULL);
}

/* A fake root where the kernel has page-table replication. */
static char repl_root[64];

static void make_repl_root(void)
{
	char path[128];
	FILE *f;

	snprintf(repl_root, sizeof(repl_root), "/tmp/tiermm-test-pt-XXXXXX");
	assert_non_null(mkdtemp(repl_root));
	snprintf(path, sizeof(path), "mkdir -p %s/proc/sys/kernel", repl_root);
	assert_int_equal(system(path), 0);
	snprintf(path, sizeof(path), "%s/proc/sys/kernel/pgtable_replication",
		 repl_root);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("0\n", f);
	fclose(f);
}

static void remove_repl_root(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", repl_root);
	assert_int_equal(system(cmd), 0);
}

/* API 3: the replicas; an older module on a replication kernel: -1. */
static void test_stat_replicas(void **state)
{
	struct tiermm_pt_stats *st;
	struct tiermm_pt_replica r = { .sz = sizeof(r) };
	struct tiermm_pt_summary s = { .sz = sizeof(s) };
	struct tiermm_pt_node n = { .sz = sizeof(n) };

	(void)state;
	fake.api_version = 3;
	fake.features = TIERMM_FEAT_PT_REPLICAS;
	assert_int_equal(tiermm_pt_stat(77, 0x400000, 0x200000, 0, &st), 0);
	assert_int_equal(fake.last_stat_flags, TIERMM_PT_STAT_REPLICAS);
	assert_true(fake.last_repl_nr >= 64);
	assert_int_equal(tiermm_pt_stat_summary(st, &s), 0);
	assert_int_equal(s.replicas, 2);
	assert_int_equal(s.replica_groups, 0);
	assert_int_equal(s.replica_remote, 1);
	assert_int_equal(tiermm_pt_stat_replica(st, 0, &r), 0);
	assert_int_equal(r.slot, 0);
	assert_int_equal(r.group, 0);
	assert_int_equal(r.tables[TIERMM_PT_LEVEL_PTE], 4);
	assert_int_equal(r.local[TIERMM_PT_LEVEL_PTE], 4);
	assert_int_equal(r.tables[TIERMM_PT_LEVEL_PGD], 1);
	assert_int_equal(tiermm_pt_stat_replica(st, 1, &r), 0);
	assert_int_equal(r.slot, 2);
	assert_int_equal(r.local[TIERMM_PT_LEVEL_PTE], 3);
	assert_int_equal(tiermm_pt_stat_replica(st, 2, &r), -ENOENT);
	assert_int_equal(tiermm_pt_stat_replica(st, -1, &r), -ENOENT);
	r.sz = 8;
	assert_int_equal(tiermm_pt_stat_replica(st, 0, &r), -EINVAL);
	assert_int_equal(tiermm_pt_stat_replica(NULL, 0, &r), -EINVAL);
	/* The master's numbers are unchanged. */
	assert_int_equal(tiermm_pt_stat_node(st, 2, &n), 0);
	assert_int_equal(n.tables[TIERMM_PT_LEVEL_PTE], 1);
	/* A caller compiled against 0.2.0: the summary ends before replicas. */
	s.sz = offsetof(struct tiermm_pt_summary, replicas);
	assert_int_equal(tiermm_pt_stat_summary(st, &s), 0);
	s.sz = offsetof(struct tiermm_pt_summary, replicas) - 1;
	assert_int_equal(tiermm_pt_stat_summary(st, &s), -EINVAL);
	tiermm_pt_stat_free(st);

	/* Group mode, a slot beyond the records first asked for: -ENOSPC,
	 * then again with as many as the module says. */
	fake.repl_group = 1;
	assert_int_equal(tiermm_pt_stat(77, 0x400000, 0x200000, 0, &st), 0);
	assert_int_equal(fake.last_repl_nr, 71);
	s.sz = sizeof(s);
	assert_int_equal(tiermm_pt_stat_summary(st, &s), 0);
	assert_int_equal(s.replicas, 2);
	assert_int_equal(s.replica_groups, 1);
	r.sz = sizeof(r);
	assert_int_equal(tiermm_pt_stat_replica(st, 1, &r), 0);
	assert_int_equal(r.slot, 70);
	assert_int_equal(r.group, 1);
	tiermm_pt_stat_free(st);
	fake.repl_group = 0;

	/* Built without replication support, on a kernel without it: 0. */
	fake.features = 0;
	assert_int_equal(tiermm_pt_stat(77, 0x400000, 0x200000, 0, &st), 0);
	assert_int_equal(tiermm_pt_stat_summary(st, &s), 0);
	if (!tiermm__ptrepl_in_kernel())
		assert_int_equal(s.replicas, 0);
	tiermm_pt_stat_free(st);

	/* The same, or an API 2 module, on a kernel with replication: -1. */
	make_repl_root();
	tiermm__ptrepl_set_test(repl_root, NULL);
	for (uint32_t api = 2; api <= 3; api++) {
		tiermm__pt_set_dev(&fake_dev);	/* a new handshake */
		fake.api_version = api;
		assert_int_equal(tiermm_pt_stat(77, 0x400000, 0x200000, 0, &st), 0);
		assert_int_equal(tiermm_pt_stat_summary(st, &s), 0);
		assert_int_equal(s.replicas, -1);
		assert_int_equal(tiermm_pt_stat_replica(st, 0, &r), -ENOENT);
		tiermm_pt_stat_free(st);
	}
	tiermm__ptrepl_set_test(NULL, NULL);
	remove_repl_root();
}

/* The lowest and highest user address of this process. */
static void self_span(uint64_t *lo, uint64_t *hi)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[4096];

	assert_non_null(f);
	*lo = UINT64_MAX;
	*hi = 0;
	while (fgets(line, sizeof(line), f)) {
		uint64_t s, e;

		if (sscanf(line, "%" SCNx64 "-%" SCNx64, &s, &e) != 2 ||
		    s >= (1ULL << 63))
			continue;
		if (s < *lo)
			*lo = s;
		if (e > *hi)
			*hi = e;
	}
	fclose(f);
}

static void test_whole_process(void **state)
{
	struct tiermm_pt_stats *st;
	struct tiermm_pt_summary s = { .sz = sizeof(s) };
	struct tiermm_pt_migrate_result r = { .sz = sizeof(r) };
	uint64_t lo, hi;

	(void)state;
	assert_int_equal(tiermm_pt_stat(0, 0, 0, 0, &st), 0);
	self_span(&lo, &hi);
	/* Mappings may come and go between the two reads; roughly equal. */
	assert_true(fake.last_start <= lo + (1 << 20));
	assert_true(fake.last_start + fake.last_len + (1 << 20) >= hi);
	assert_int_equal(fake.last_pid, 0);
	assert_int_equal(tiermm_pt_stat_summary(st, &s), 0);
	assert_true(s.whole);
	assert_int_equal(s.start, fake.last_start);
	tiermm_pt_stat_free(st);

	assert_int_equal(tiermm_pt_migrate(0, 0, 0, TIERMM_NODE_AUTO,
					   TIERMM_PT_LEVELS_ALL, &r), 4);
	assert_int_equal(r.start, fake.last_start);
	assert_int_equal(r.len, fake.last_len);
}

/* ---- Dumps ----------------------------------------------------------------- */

static int count_lines(const char *s, const char *prefix)
{
	int n = 0;
	size_t len = strlen(prefix);

	for (const char *p = s; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (!strncmp(p, prefix, len))
			n++;
	return n;
}

static char *dump_to_string(unsigned int format, int *ret)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	assert_non_null(f);
	*ret = tiermm_pt_dump(5, 0, 2ULL << 30, f, format);
	fclose(f);
	return text;
}

static void test_dump(void **state)
{
	char *a, *b;
	int ret;

	(void)state;
	/* Everything in one call. */
	a = dump_to_string(TIERMM_PT_DUMP_TEXT, &ret);
	assert_int_equal(ret, 14);
	assert_int_equal(fake.calls, 1);
	assert_non_null(strstr(a, "# page tables of pid 5, 0x0000000000000000-0x0000000080000000\n"));
	assert_non_null(strstr(a, "\npgd 0x0000000000000000-0x0001000000000000 pfn 0x1000 node 0 present 1/512\n"));
	assert_non_null(strstr(a, "\n    pmd 0x0000000040000000-0x0000000080000000 pfn 0x100b node 1 present 1/512 huge 0\n"));
	assert_non_null(strstr(a, "\n      pte 0x0000000000200000-0x0000000000400000 pfn 0x1004 node 0 present 1/512\n"));
	assert_int_equal(count_lines(a, "      pte "), 10);
	assert_int_equal(count_lines(a, "    pmd "), 2);
	assert_non_null(strstr(a, "# 14 tables\n"));
	assert_null(strstr(a, "[  0]"));

	/* Five records per call: ancestors come again and are dropped. */
	fake.calls = 0;
	fake.dump_per_call = 5;
	b = dump_to_string(TIERMM_PT_DUMP_TEXT, &ret);
	assert_int_equal(ret, 14);
	assert_true(fake.calls >= 4);
	assert_string_equal(a, b);
	free(a);
	free(b);

	a = dump_to_string(TIERMM_PT_DUMP_TEXT | TIERMM_PT_DUMP_ENTRIES, &ret);
	assert_int_equal(ret, 14);
	assert_non_null(strstr(a, "\n        [  0] 0x8000000005003067 page 0x5003\n"));
	assert_non_null(strstr(a, "\n  [  0] 0x8000000005000067 table 0x5000\n"));
	assert_non_null(strstr(a, "\n        [  5] 0x0000000000002000 not present\n"));
	free(a);

	a = dump_to_string(TIERMM_PT_DUMP_JSON | TIERMM_PT_DUMP_ENTRIES, &ret);
	assert_int_equal(ret, 14);
	assert_non_null(strstr(a, "{\"pid\":5,\"start\":\"0x0\",\"end\":\"0x80000000\",\"whole\":false,\"tables\":[\n"));
	assert_non_null(strstr(a, "{\"level\":\"pgd\",\"va\":\"0x0\",\"end\":\"0x1000000000000\",\"pfn\":4096,\"node\":0,\"entries_total\":512,\"present\":1,\"huge\":0,\"entries\":[[0,\"0x8000000005000067\"],[5,\"0x0000000000002000\"]]}"));
	assert_non_null(strstr(a, "\n],\"count\":14}\n"));
	assert_int_equal(count_lines(a, ",{") + count_lines(a, "{\"level\""), 14);
	free(a);

	/* A resumed call that cannot place even its ancestors: gives up. */
	fake.dump_per_call = 2;
	a = dump_to_string(TIERMM_PT_DUMP_TEXT, &ret);
	assert_int_equal(ret, -EIO);
	assert_non_null(strstr(tiermm_errmsg(), "no progress"));
	free(a);

	fake.dump_per_call = 1000;
	fake.ioctl_err = ESRCH;
	a = dump_to_string(TIERMM_PT_DUMP_JSON, &ret);
	assert_int_equal(ret, -ESRCH);
	free(a);
}

/* ---- Migration ------------------------------------------------------------- */

static void test_migrate(void **state)
{
	struct tiermm_pt_migrate_result r;

	(void)state;
	memset(&r, 0xaa, sizeof(r));
	r.sz = sizeof(r);
	assert_int_equal(tiermm_pt_migrate(9, 0x200000, 0x400000, 1,
					   TIERMM_PT_LEVELS_PTE | TIERMM_PT_LEVELS_PMD,
					   &r), 4);
	assert_int_equal(fake.last_pid, 9);
	assert_int_equal(fake.last_node, 1);
	assert_int_equal(fake.last_levels, 3);
	assert_int_equal(r.sz, sizeof(r));
	assert_int_equal(r.moved[TIERMM_PT_LEVEL_PTE], 3);
	assert_int_equal(r.moved[TIERMM_PT_LEVEL_PMD], 1);
	assert_int_equal(r.moved[TIERMM_PT_LEVEL_PUD], 0);
	assert_int_equal(r.skipped[TIERMM_PT_SKIP_ALREADY], 2);
	assert_int_equal(r.skipped[TIERMM_PT_SKIP_BUSY], 1);
	assert_int_equal(r.skipped[7], 0);
	assert_int_equal(r.start, 0x200000);
	assert_int_equal(r.len, 0x400000);
	assert_int_equal(tiermm_pt_migrate(9, 0x200000, 0x400000, TIERMM_NODE_AUTO,
					   TIERMM_PT_LEVELS_ALL, NULL), 4);
	assert_int_equal(fake.last_node, -1);
}

/* ---- Scanner --------------------------------------------------------------- */

static void test_scan_bitmap(void **state)
{
	TIERMM_OPTS(tiermm_ab_scan_opts, o, .flags = TIERMM_AB_SCAN_FLUSH,
		    .max_pages = 131072);
	struct tiermm_ab_scanner *sc;
	struct tiermm_ab_batch b = { .sz = sizeof(b) };
	uint64_t start = 0x200000, len = 3ULL << 30, expect = start, pages = 0;
	int batches = 0;

	(void)state;
	assert_int_equal(tiermm_ab_scan_open(3, start, len, &o, &sc), 0);
	while (tiermm_ab_scan_next(sc, &b) == 1) {
		batches++;
		assert_int_equal(b.start, expect);
		assert_true(b.end > b.start);
		assert_null(b.counts);
		assert_non_null(b.bitmap);
		assert_int_equal((b.start - b.base) % (512ULL << 20), 0);
		/* Bits for even pages inside [start, end), nothing else. */
		for (uint64_t a = b.base; a < b.base + b.nr * 4096ULL; a += 4096) {
			uint64_t i = (a - b.base) / 4096;
			int bit = (b.bitmap[i / 64] >> (i % 64)) & 1;

			assert_int_equal(bit, a >= b.start && a < b.end && a % 8192 == 0);
		}
		pages += b.scanned;
		expect = b.end;
	}
	/* Windows end at 1 GiB boundaries: [2M, 1G) [1G, 2G) [2G, 3G) of 2
	 * batches each, [3G, 3G + 2M) of one. */
	assert_int_equal(batches, 7);
	assert_int_equal(expect, start + len);
	assert_int_equal(pages, len / 4096);
	assert_int_equal(fake.scan_max_pages, 131072);
	assert_int_equal(fake.last_pid, 3);
	/* The next call starts a new pass. */
	assert_int_equal(tiermm_ab_scan_next(sc, &b), 1);
	assert_int_equal(b.start, start);
	assert_int_equal(tiermm_ab_scan_next(sc, &b), 1);
	assert_int_equal(tiermm_ab_scan_rewind(sc), 0);
	assert_int_equal(tiermm_ab_scan_next(sc, &b), 1);
	assert_int_equal(b.start, start);
	b.sz = 3;
	assert_int_equal(tiermm_ab_scan_next(sc, &b), -EINVAL);
	b.sz = sizeof(b);
	fake.ioctl_err = ESRCH;
	assert_int_equal(tiermm_ab_scan_next(sc, &b), -ESRCH);
	fake.ioctl_err = 0;
	tiermm_ab_scan_close(sc);
	tiermm_ab_scan_close(NULL);
}

static void test_scan_counts(void **state)
{
	TIERMM_OPTS(tiermm_ab_scan_opts, o, .flags = TIERMM_AB_SCAN_COUNTS);
	struct tiermm_ab_scanner *sc;
	struct tiermm_ab_batch b = { .sz = sizeof(b) };
	uint64_t total = 0;
	int batches = 0;

	(void)state;
	assert_int_equal(tiermm_ab_scan_open(0, 0x40000000, 0x3000000, &o, &sc), 0);
	while (tiermm_ab_scan_next(sc, &b) == 1) {
		batches++;
		assert_null(b.bitmap);
		assert_non_null(b.counts);
		assert_int_equal(b.nr, 24);
		for (size_t i = 0; i < b.nr; i++) {
			assert_int_equal(b.counts[i], 256);
			total += b.counts[i];
		}
	}
	assert_int_equal(batches, 1);
	assert_int_equal(total, 24 * 256);
	tiermm_ab_scan_close(sc);

	/* The whole process: one pass over its mappings, in address order. */
	assert_int_equal(tiermm_ab_scan_open(0, 0, 0, &o, &sc), 0);
	{
		uint64_t last = 0;

		batches = 0;
		while (tiermm_ab_scan_next(sc, &b) == 1) {
			assert_true(b.start >= last);
			assert_int_equal(b.base % (2 << 20), 0);
			last = b.end;
			batches++;
		}
		assert_true(batches >= 2);
	}
	tiermm_ab_scan_close(sc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_uapi),
		cmocka_unit_test(test_no_module),
		cmocka_unit_test(test_bad_arguments),
		cmocka_unit_test_setup_teardown(test_handshake, fake_setup, fake_teardown),
		cmocka_unit_test_setup_teardown(test_fork, fake_setup, fake_teardown),
		cmocka_unit_test_setup_teardown(test_kernel_errors, fake_setup, fake_teardown),
		cmocka_unit_test_setup_teardown(test_stat, fake_setup, fake_teardown),
		cmocka_unit_test_setup_teardown(test_stat_replicas, fake_setup, fake_teardown),
		cmocka_unit_test_setup_teardown(test_whole_process, fake_setup, fake_teardown),
		cmocka_unit_test_setup_teardown(test_dump, fake_setup, fake_teardown),
		cmocka_unit_test_setup_teardown(test_migrate, fake_setup, fake_teardown),
		cmocka_unit_test_setup_teardown(test_scan_bitmap, fake_setup, fake_teardown),
		cmocka_unit_test_setup_teardown(test_scan_counts, fake_setup, fake_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
