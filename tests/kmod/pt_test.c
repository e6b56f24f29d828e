// SPDX-License-Identifier: GPL-2.0
/*
 * pt_test: exercises TIERMM_IOC_PT_STAT, TIERMM_IOC_PT_DUMP and
 * TIERMM_IOC_AB_SCAN of a loaded tiermm.ko for real, in a NUMA test guest.
 *
 *   pt_test [--device DEV]                  the checks (run as root)
 *   pt_test [--device DEV] --fuzz SECONDS [--seed N]
 *                                           random ioctls against itself and
 *                                           a child that keeps remapping
 *
 * Plain C plus Linux syscalls, libc only (built static for the busybox
 * guest). Output is TAP; the exit status is 0 only when every check passed,
 * 1 otherwise, 2 on bad usage. Checks that need two memory nodes or THP are
 * reported as skipped when the machine has neither.
 *
 * What it relies on: root (pagemap PFNs, setuid for the permission checks),
 * NUMA balancing switched off while it runs (it saves and restores
 * /proc/sys/kernel/numa_balancing), and that a TCG or hardware MMU sets
 * accessed bits and forgets them on a TLB flush.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/capability.h>
#include <linux/mempolicy.h>

#include "linux/tiermm.h"

#define PAGE		4096UL
#define PMD_SZ		(2UL << 20)
#define PUD_SZ		(1UL << 30)
#define NPAGES		2048UL			/* the main region: 8 MiB */
#define REGION_LEN	(NPAGES * PAGE)
#define NR_PTE_TABLES	(REGION_LEN / PMD_SZ)
#define MAX_NODES	64
#define NR_LEVELS	TIERMM_PT_NR_LEVELS
#define REC_SIZE	(sizeof(struct tiermm_pt_dump_rec) + 512 * sizeof(uint64_t))
#define MIN_DUMP_RECS	(TIERMM_PT_NR_LEVELS + 1)
#define PTE_PFN_BITS	0x000ffffffffff000ULL	/* physical address bits */
#define PMD_PFN_BITS	0x000fffffffe00000ULL
#define ENTRY_PRESENT	0x1ULL
#define ENTRY_PSE	0x80ULL
#define KERNEL_ADDR	0xffff888000000000ULL
#define NONCANON_ADDR	(1ULL << 60)
#define NOBODY		65534

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE	25
#endif

/* ---------------------------------------------------------------- TAP -- */

static int n_checks;
static int n_failed;

static void vline(bool ok, const char *skip, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

static void vline(bool ok, const char *skip, const char *fmt, va_list ap)
{
	n_checks++;
	if (!ok)
		n_failed++;
	printf("%sok %d - ", ok ? "" : "not ", n_checks);
	vprintf(fmt, ap);
	if (skip)
		printf(" # SKIP %s", skip);
	putchar('\n');
	fflush(stdout);
}

static bool check(bool ok, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* One TAP line; returns ok so callers can add diagnostics on failure. */
static bool check(bool ok, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vline(ok, NULL, fmt, ap);
	va_end(ap);
	return ok;
}

static void skip(const char *why, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void skip(const char *why, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vline(true, why, fmt, ap);
	va_end(ap);
}

static void diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void diag(const char *fmt, ...)
{
	va_list ap;

	fputs("# ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

static const char *errname(int err)
{
	switch (err) {
	case 0:		return "success";
	case EINVAL:	return "EINVAL";
	case ENOTTY:	return "ENOTTY";
	case EFAULT:	return "EFAULT";
	case EPERM:	return "EPERM";
	case EACCES:	return "EACCES";
	case ESRCH:	return "ESRCH";
	case ENOSPC:	return "ENOSPC";
	case ENOMEM:	return "ENOMEM";
	case EINTR:	return "EINTR";
	case EBUSY:	return "EBUSY";
	case EAGAIN:	return "EAGAIN";
	default:	return strerror(err);
	}
}

/* ------------------------------------------------------------ helpers -- */

static int dev_fd = -1;
static int nr_node_ids;		/* from /sys/devices/system/node/possible */
static int other_node = -1;	/* a memory node other than 0, if any */

/* ioctl() returning 0 or the errno it failed with. */
static int xioctl(unsigned long cmd, void *arg)
{
	return ioctl(dev_fd, cmd, arg) == 0 ? 0 : errno;
}

static long mbind_(void *addr, unsigned long len, int mode, unsigned long mask)
{
	return syscall(SYS_mbind, addr, len, mode, &mask, 64UL, 0UL);
}

static long set_mempolicy_(int mode, unsigned long mask)
{
	return syscall(SYS_set_mempolicy, mode, mode ? &mask : NULL,
		       mode ? 64UL : 0UL);
}

/* Moves npages pages from addr to node; returns how many are there. */
static unsigned long move_to_node(char *addr, unsigned long npages, int node)
{
	void **pages = calloc(npages, sizeof(*pages));
	int *nodes = calloc(npages, sizeof(*nodes));
	int *status = calloc(npages, sizeof(*status));
	unsigned long i, there = 0;
	long r;

	if (!pages || !nodes || !status)
		goto out;
	for (i = 0; i < npages; i++) {
		pages[i] = addr + i * PAGE;
		nodes[i] = node;
	}
	r = syscall(SYS_move_pages, 0, npages, pages, nodes, status,
		    MPOL_MF_MOVE);
	if (r < 0)
		diag("move_pages: %s", strerror(errno));
	for (i = 0; i < npages; i++)
		there += status[i] == node;
out:
	free(pages);
	free(nodes);
	free(status);
	return there;
}

/* Node of the page at addr (move_pages query), or -errno. */
static int page_node(void *addr)
{
	int status = -1;

	if (syscall(SYS_move_pages, 0, 1UL, &addr, NULL, &status, 0) < 0)
		return -errno;
	return status;
}

static int read_file(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	return 0;
}

static int write_file(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = write(fd, s, strlen(s));
	close(fd);
	return n == (ssize_t)strlen(s) ? 0 : -1;
}

/* Highest number in a sysfs list such as "0-1,3", or -1. */
static int list_max(const char *s)
{
	int max = -1;

	while (*s) {
		char *end;
		long v = strtol(s, &end, 10);

		if (end == s)
			break;
		if (v > max)
			max = (int)v;
		s = end;
		while (*s == ',' || *s == '-' || *s == '\n')
			s++;
	}
	return max;
}

/* Whether node is in a sysfs list. */
static bool list_has(const char *s, int node)
{
	while (*s) {
		char *end;
		long a = strtol(s, &end, 10), b;

		if (end == s)
			return false;
		b = a;
		s = end;
		if (*s == '-') {
			b = strtol(s + 1, &end, 10);
			s = end;
		}
		if (node >= a && node <= b)
			return true;
		while (*s == ',' || *s == '\n')
			s++;
	}
	return false;
}

/* PFN of the page mapped at addr from /proc/self/pagemap, 0 if none. */
static uint64_t pagemap_pfn(const void *addr)
{
	static int fd = -1;
	uint64_t e;

	if (fd < 0)
		fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd < 0 || pread(fd, &e, sizeof(e),
			    (off_t)((uintptr_t)addr / PAGE * sizeof(e))) !=
		      (ssize_t)sizeof(e))
		return 0;
	if (!(e >> 63))
		return 0;
	return e & ((1ULL << 55) - 1);
}

/* An anonymous mapping of len bytes aligned to align, or NULL. */
static char *map_aligned(size_t len, size_t align)
{
	size_t total = len + align;
	char *p = mmap(NULL, total, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	uintptr_t a;
	size_t tail;

	if (p == MAP_FAILED)
		return NULL;
	a = ((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1);
	if (a > (uintptr_t)p)
		munmap(p, a - (uintptr_t)p);
	tail = (uintptr_t)p + total - (a + len);
	if (tail)
		munmap((char *)(a + len), tail);
	/* Forked children must not share (and COW) the test's pages. */
	madvise((char *)a, len, MADV_DONTFORK);
	return (char *)a;
}

static void touch_read(const char *p)
{
	(void)*(const volatile char *)p;
}

/* ------------------------------------------------------- the commands -- */

struct stat_res {
	struct tiermm_pt_stat a;
	uint64_t tables[MAX_NODES][NR_LEVELS];
	uint64_t leaf[MAX_NODES];
	uint64_t data[MAX_NODES];
};

static void stat_init(struct stat_res *r, pid_t pid, uint64_t start,
		      uint64_t len)
{
	memset(r, 0, sizeof(*r));
	r->a.argsz = sizeof(r->a);
	r->a.pid = pid;
	r->a.nr_nodes = nr_node_ids;
	r->a.start = start;
	r->a.len = len;
	r->a.tables_ptr = (uintptr_t)r->tables;
	r->a.leaf_ptr = (uintptr_t)r->leaf;
	r->a.data_ptr = (uintptr_t)r->data;
}

static int do_stat(struct stat_res *r, pid_t pid, uint64_t start, uint64_t len)
{
	stat_init(r, pid, start, len);
	return xioctl(TIERMM_IOC_PT_STAT, &r->a);
}

static uint64_t sum_level(const struct stat_res *r, int level)
{
	uint64_t s = 0;
	int n;

	for (n = 0; n < nr_node_ids; n++)
		s += r->tables[n][level];
	return s;
}

static uint64_t sum_nodes(const uint64_t *v)
{
	uint64_t s = 0;
	int n;

	for (n = 0; n < nr_node_ids; n++)
		s += v[n];
	return s;
}

static void stat_diag(const struct stat_res *r)
{
	int n, l;

	for (n = 0; n < nr_node_ids; n++)
		diag("node %d: tables pte %" PRIu64 " pmd %" PRIu64 " pud %"
		     PRIu64 " pgd %" PRIu64 ", leaf %" PRIu64 ", data %" PRIu64,
		     n, r->tables[n][0], r->tables[n][1], r->tables[n][2],
		     r->tables[n][3], r->leaf[n], r->data[n]);
	for (l = 0; l < NR_LEVELS; l++)
		diag("level %d: local %llu remote %llu empty %llu huge %llu", l,
		     (unsigned long long)r->a.tables_local[l],
		     (unsigned long long)r->a.tables_remote[l],
		     (unsigned long long)r->a.tables_empty[l],
		     (unsigned long long)r->a.leaf_huge[l]);
}

/* local + remote + empty equals the tables counted, at every level. */
static bool stat_consistent(const struct stat_res *r)
{
	int l;

	for (l = 0; l < NR_LEVELS; l++)
		if (r->a.tables_local[l] + r->a.tables_remote[l] +
		    r->a.tables_empty[l] != sum_level(r, l))
			return false;
	return true;
}

struct dump_rec_id {
	uint32_t level;
	int32_t node;
	uint64_t pfn;
	uint64_t va;
};

static const struct tiermm_pt_dump_rec *rec_at(const void *buf, size_t i)
{
	return (const void *)((const char *)buf + i * REC_SIZE);
}

static int do_dump(pid_t pid, uint64_t start, uint64_t len, void *buf,
		   size_t buf_len, struct tiermm_pt_dump *out)
{
	memset(out, 0, sizeof(*out));
	out->argsz = sizeof(*out);
	out->pid = pid;
	out->start = start;
	out->len = len;
	out->buf_ptr = (uintptr_t)buf;
	out->buf_len = buf_len;
	return xioctl(TIERMM_IOC_PT_DUMP, out);
}

static int do_scan(pid_t pid, uint64_t start, uint64_t len, uint32_t flags,
		   uint64_t max_pages, uint64_t cursor, void *out,
		   size_t out_len, struct tiermm_ab_scan *a)
{
	memset(a, 0, sizeof(*a));
	a->argsz = sizeof(*a);
	a->flags = flags;
	a->pid = pid;
	a->start = start;
	a->len = len;
	a->max_pages = max_pages;
	a->cursor = cursor;
	a->out_ptr = (uintptr_t)out;
	a->out_len = out_len;
	return xioctl(TIERMM_IOC_AB_SCAN, a);
}

static bool bit_test(const uint8_t *bits, size_t i)
{
	return bits[i / 8] >> (i % 8) & 1;
}

/* ---------------------------------------------------------- the tests -- */

static char *region;		/* NPAGES pages, 2 MiB aligned, 4 KiB pages */
static bool region_ok;

static void test_api(void)
{
	struct tiermm_get_api a;
	uint64_t want = (1ULL << TIERMM_CMD_PT_STAT) |
			(1ULL << TIERMM_CMD_PT_DUMP) |
			(1ULL << TIERMM_CMD_AB_SCAN);
	int err;

	memset(&a, 0, sizeof(a));
	a.argsz = sizeof(a);
	err = xioctl(TIERMM_IOC_GET_API, &a);
	if (!check(err == 0 && a.api_version >= 2 &&
		   (a.commands & want) == want &&
		   (a.features & (TIERMM_FEAT_PT_STAT | TIERMM_FEAT_PT_DUMP |
				  TIERMM_FEAT_AB_SCAN)) ==
		   (TIERMM_FEAT_PT_STAT | TIERMM_FEAT_PT_DUMP |
		    TIERMM_FEAT_AB_SCAN),
		   "GET_API: API >= 2 with PT_STAT, PT_DUMP and AB_SCAN")) {
		diag("err %s api %u features %#llx commands %#llx",
		     errname(err), a.api_version,
		     (unsigned long long)a.features,
		     (unsigned long long)a.commands);
		printf("Bail out! the module lacks the commands under test\n");
		exit(1);
	}
}

/* The main region: NPAGES pages on node 0, page tables on node 0 too. */
static void setup_region(void)
{
	unsigned long i, on0 = 0;

	region = map_aligned(REGION_LEN, PMD_SZ);
	if (!check(region != NULL, "map an 8 MiB region, 2 MiB aligned"))
		return;
	madvise(region, REGION_LEN, MADV_NOHUGEPAGE);
	check(mbind_(region, REGION_LEN, MPOL_BIND, 1UL) == 0,
	      "mbind(MPOL_BIND, node 0)");
	/*
	 * Page tables follow the task's policy (pte_alloc_one() allocates with
	 * it), the data the VMA's: both on node 0.
	 */
	if (set_mempolicy_(MPOL_BIND, 1UL) != 0)
		diag("set_mempolicy: %s", strerror(errno));
	for (i = 0; i < NPAGES; i++)
		region[i * PAGE] = (char)i;
	set_mempolicy_(MPOL_DEFAULT, 0);
	for (i = 0; i < NPAGES; i += 97)
		on0 += page_node(region + i * PAGE) == 0;
	region_ok = check(on0 == (NPAGES + 96) / 97,
			  "touched pages are on node 0 (move_pages query)");
	diag("region %p", (void *)region);
}

static void test_stat_local(void)
{
	struct stat_res r, r2;
	int err;

	err = do_stat(&r, 0, (uintptr_t)region, REGION_LEN);
	if (!check(err == 0, "PT_STAT of the region succeeds")) {
		diag("got %s", errname(err));
		return;
	}
	stat_diag(&r);
	check(r.a.argsz == sizeof(r.a), "PT_STAT: reply argsz %zu",
	      sizeof(r.a));
	check(sum_nodes(r.data) == NPAGES && r.data[0] == NPAGES,
	      "data pages: %lu, all on node 0", NPAGES);
	check(sum_nodes(r.leaf) == NPAGES,
	      "leaf entries sum to the present pages (%lu)", NPAGES);
	check(sum_level(&r, TIERMM_PT_PTE) == NR_PTE_TABLES &&
	      r.tables[0][TIERMM_PT_PTE] == NR_PTE_TABLES,
	      "%lu PTE tables, on node 0", NR_PTE_TABLES);
	check(r.leaf[0] == NPAGES, "all leaf entries in node 0's tables");
	check(sum_level(&r, TIERMM_PT_PMD) >= 1 &&
	      sum_level(&r, TIERMM_PT_PMD) <= 2 &&
	      sum_level(&r, TIERMM_PT_PUD) >= 1 &&
	      sum_level(&r, TIERMM_PT_PGD) >= 1 &&
	      sum_level(&r, TIERMM_PT_PGD) <= 2,
	      "upper tables: 1-2 PMD, >= 1 PUD, 1-2 PGD (+P4D)");
	check(r.a.tables_local[TIERMM_PT_PTE] == NR_PTE_TABLES &&
	      r.a.tables_remote[TIERMM_PT_PTE] == 0 &&
	      r.a.tables_empty[TIERMM_PT_PTE] == 0,
	      "PTE tables: all local");
	check(stat_consistent(&r), "local + remote + empty == tables, per level");
	check(r.a.leaf_huge[0] == 0 && r.a.leaf_huge[1] == 0 &&
	      r.a.leaf_huge[2] == 0 && r.a.leaf_huge[3] == 0,
	      "no huge leaves");

	err = do_stat(&r2, getpid(), (uintptr_t)region, REGION_LEN);
	check(err == 0 && memcmp(r.tables, r2.tables, sizeof(r.tables)) == 0 &&
	      memcmp(r.data, r2.data, sizeof(r.data)) == 0 &&
	      memcmp(r.a.tables_local, r2.a.tables_local,
		     sizeof(r.a.tables_local)) == 0,
	      "pid = getpid() gives the same answer as pid 0");

	/* nr_nodes larger than needed: the extra entries are zeroed. */
	stat_init(&r2, 0, (uintptr_t)region, REGION_LEN);
	memset(r2.tables, 0xa5, sizeof(r2.tables));
	memset(r2.leaf, 0xa5, sizeof(r2.leaf));
	memset(r2.data, 0xa5, sizeof(r2.data));
	r2.a.nr_nodes = MAX_NODES;
	err = xioctl(TIERMM_IOC_PT_STAT, &r2.a);
	check(err == 0 && r2.tables[MAX_NODES - 1][3] == 0 &&
	      r2.data[MAX_NODES - 1] == 0 && r2.leaf[nr_node_ids] == 0 &&
	      r2.data[0] == NPAGES,
	      "nr_nodes %d > nr_node_ids: extra entries zeroed", MAX_NODES);
	check(r2.a.nr_nodes == MAX_NODES, "nr_nodes left as given");

	/*
	 * Replicas (API 3): this process has none, so with the flag every
	 * record is zeroed and repl_count is 0, whether or not the module
	 * can see replicas (TIERMM_FEAT_PT_REPLICAS).
	 */
	{
		static struct tiermm_pt_stat_repl repl[MAX_NODES];

		stat_init(&r2, 0, (uintptr_t)region, REGION_LEN);
		memset(repl, 0xa5, sizeof(repl));
		r2.a.flags = TIERMM_PT_STAT_REPLICAS;
		r2.a.repl_ptr = (uintptr_t)repl;
		r2.a.repl_nr = MAX_NODES;
		r2.a.repl_count = 77;	/* out: ignored on input */
		r2.a.nr_nodes = MAX_NODES;
		err = xioctl(TIERMM_IOC_PT_STAT, &r2.a);
		check(err == 0 && r2.a.repl_count == 0 && !repl[0].flags &&
		      repl[0].tables[TIERMM_PT_PGD] == 0 &&
		      repl[MAX_NODES - 1].local[TIERMM_PT_PTE] == 0 &&
		      r2.a.repl_nr == MAX_NODES && r2.data[0] == NPAGES,
		      "PT_STAT with TIERMM_PT_STAT_REPLICAS, no replica: records zeroed, repl_count 0");
	}

	/* Part of the range: one PTE table, 100 pages. */
	err = do_stat(&r2, 0, (uintptr_t)region + PMD_SZ, 100 * PAGE);
	check(err == 0 && sum_nodes(r2.data) == 100 &&
	      sum_nodes(r2.leaf) == 100 &&
	      sum_level(&r2, TIERMM_PT_PTE) == 1,
	      "a 100-page subrange: 100 pages, 1 PTE table");

	/* The whole user address space (4-level size works with 5 levels). */
	err = do_stat(&r2, 0, 0, (1ULL << 47) - PAGE);
	check(err == 0 && r2.data[0] >= NPAGES && stat_consistent(&r2),
	      "PT_STAT of [0, 2^47 - 4096) succeeds and counts the region");
}

static void test_stat_moved(void)
{
	struct stat_res r;
	unsigned long moved;
	int err;

	if (other_node < 0) {
		skip("one memory node", "PT_STAT follows data moved to another node");
		return;
	}
	moved = move_to_node(region, NPAGES, other_node);
	if (!check(moved == NPAGES, "move_pages: %lu pages to node %d", NPAGES,
		   other_node))
		diag("only %lu moved", moved);
	err = do_stat(&r, 0, (uintptr_t)region, REGION_LEN);
	if (!check(err == 0, "PT_STAT after the move succeeds"))
		return;
	stat_diag(&r);
	check(r.data[other_node] == NPAGES && r.data[0] == 0,
	      "data pages: all %lu on node %d now", NPAGES, other_node);
	check(r.tables[0][TIERMM_PT_PTE] == NR_PTE_TABLES,
	      "the PTE tables stayed on node 0");
	check(r.leaf[0] == NPAGES, "leaf entries still in node 0's tables");
	check(r.a.tables_remote[TIERMM_PT_PTE] == NR_PTE_TABLES &&
	      r.a.tables_local[TIERMM_PT_PTE] == 0,
	      "PTE tables are remote now");
	check(stat_consistent(&r), "local + remote + empty == tables, per level");
}

/* Records (level, node, pfn, va) of a dump buffer. */
static size_t rec_ids(const void *buf, size_t n, struct dump_rec_id *ids)
{
	size_t i;

	for (i = 0; i < n; i++) {
		const struct tiermm_pt_dump_rec *rec = rec_at(buf, i);

		ids[i].level = rec->level;
		ids[i].node = rec->node;
		ids[i].pfn = rec->pfn;
		ids[i].va = rec->va;
	}
	return n;
}

static bool same_id(const struct dump_rec_id *a, const struct dump_rec_id *b)
{
	return a->level == b->level && a->pfn == b->pfn && a->va == b->va &&
	       a->node == b->node;
}

static void test_dump(void)
{
	const size_t cap = 64;
	const uintptr_t start = (uintptr_t)region;
	const uintptr_t end = start + REGION_LEN;
	struct dump_rec_id ids[64], rids[512];
	struct tiermm_pt_dump d;
	const struct tiermm_pt_dump_rec *rec;
	size_t n, i, nr_pte = 0, nr_top = 0, nrid = 0, calls = 0;
	bool fields_ok = true, pmd_ok = true, pfn_ok = true, order_ok = true;
	bool progress = true, same = true, ptes_same = true;
	const struct tiermm_pt_dump_rec *pte_rec[NR_PTE_TABLES] = { NULL };
	const struct tiermm_pt_dump_rec *last_pmd = NULL;
	static const unsigned long sample[] = { 0, 1, 255, 511, 512, 1000,
						1535, 1536, 2047 };
	void *buf = calloc(cap, REC_SIZE);
	void *small = calloc(MIN_DUMP_RECS, REC_SIZE);
	int err;

	if (!buf || !small) {
		check(false, "PT_DUMP: out of memory");
		goto out;
	}
	err = do_dump(0, start, REGION_LEN, buf, cap * REC_SIZE, &d);
	if (!check(err == 0, "PT_DUMP of the region succeeds")) {
		diag("got %s", errname(err));
		goto out;
	}
	n = d.written / REC_SIZE;
	check(d.written % REC_SIZE == 0 && n >= 4 && n < cap,
	      "written is a whole number of records (%zu)", n);
	check(d.next == end, "next == start + len");
	rec_ids(buf, n, ids);

	for (i = 0; i < n; i++) {
		rec = rec_at(buf, i);
		if (rec->nr_entries != 512 || rec->pad0 || rec->level > 3 ||
		    rec->node < 0 || rec->node >= nr_node_ids)
			fields_ok = false;
		/* Depth-first in address order: first addresses never decrease. */
		if (i > 0 && (rec->va > start ? rec->va : start) <
		    (rec_at(buf, i - 1)->va > start ? rec_at(buf, i - 1)->va :
		     start))
			order_ok = false;
		if (rec->level == 3)
			nr_top++;
		if (rec->level == TIERMM_PT_PMD)
			last_pmd = rec;
		if (rec->level == TIERMM_PT_PTE) {
			size_t k = (rec->va - start) / PMD_SZ;
			uint64_t e;

			if (rec->va < start || rec->va >= end ||
			    rec->va % PMD_SZ || k != nr_pte || !last_pmd) {
				fields_ok = false;
				continue;
			}
			pte_rec[k] = rec;
			nr_pte++;
			/* The PMD entry above points at this table. */
			e = last_pmd->entries[(rec->va >> 21) & 511];
			if (!(e & ENTRY_PRESENT) || (e & ENTRY_PSE) ||
			    ((e & PTE_PFN_BITS) >> 12) != rec->pfn ||
			    last_pmd->va != (rec->va & ~(PUD_SZ - 1)))
				pmd_ok = false;
		}
	}
	check(fields_ok, "records: nr_entries 512, pad0 0, level <= 3, node valid");
	check(rec_at(buf, 0)->level == TIERMM_PT_PGD && rec_at(buf, 0)->va == 0,
	      "the first record is the PGD, va 0");
	check(nr_top >= 1 && nr_top <= 2, "one PGD (and a P4D with 5 levels)");
	check(order_ok, "records in depth-first order");
	check(nr_pte == NR_PTE_TABLES, "%lu PTE table records, in address order",
	      NR_PTE_TABLES);
	check(pmd_ok, "the PMD record's entries point at the PTE records' pfns");
	if (nr_pte == NR_PTE_TABLES) {
		for (i = 0; i < sizeof(sample) / sizeof(sample[0]); i++) {
			unsigned long k = sample[i];
			uint64_t e = pte_rec[k / 512]->entries[k % 512];
			uint64_t pm = pagemap_pfn(region + k * PAGE);

			if (!(e & ENTRY_PRESENT) || pm == 0 ||
			    ((e & PTE_PFN_BITS) >> 12) != pm) {
				pfn_ok = false;
				diag("page %lu: entry %#llx pagemap pfn %#llx", k,
				     (unsigned long long)e,
				     (unsigned long long)pm);
			}
		}
		check(pfn_ok, "PTE entries' PFNs match /proc/self/pagemap");
		check(pte_rec[0]->node == 0 && pte_rec[3]->node == 0,
		      "PTE tables are on node 0");
	}

	/* The same with a buffer of MIN_DUMP_RECS records, resumed. */
	{
		uint64_t s = start;

		while (s < end && calls < 200) {
			err = do_dump(0, s, end - s, small,
				      MIN_DUMP_RECS * REC_SIZE, &d);
			calls++;
			if (err || d.next <= s || d.next > end) {
				progress = false;
				diag("call %zu: %s next %#llx", calls,
				     errname(err), (unsigned long long)d.next);
				break;
			}
			for (i = 0; i < d.written / REC_SIZE && nrid < 512; i++) {
				struct dump_rec_id id;
				size_t j;
				bool seen = false;

				rec_ids(rec_at(small, i), 1, &id);
				for (j = 0; j < nrid; j++)
					seen |= same_id(&rids[j], &id);
				rec = rec_at(small, i);
				if (rec->level == TIERMM_PT_PTE &&
				    rec->va >= start && rec->va < end &&
				    pte_rec[(rec->va - start) / PMD_SZ] &&
				    memcmp(rec->entries,
					   pte_rec[(rec->va - start) /
						   PMD_SZ]->entries,
					   512 * sizeof(uint64_t)))
					ptes_same = false;
				if (!seen)
					rids[nrid++] = id;
			}
			s = d.next;
		}
	}
	check(progress, "resumed dump: every call progresses (%zu calls)", calls);
	if (nrid != n) {
		same = false;
	} else {
		for (i = 0; i < n; i++)
			same &= same_id(&rids[i], &ids[i]);
	}
	if (!check(same, "resumed dump: the same records, in the same order"))
		diag("%zu distinct records resumed, %zu at once", nrid, n);
	check(ptes_same, "resumed dump: the same PTE table contents");

	err = do_dump(0, start, REGION_LEN, small,
		      (MIN_DUMP_RECS - 1) * REC_SIZE + REC_SIZE - 1, &d);
	check(err == EINVAL, "buf_len below %d records -> EINVAL (got %s)",
	      MIN_DUMP_RECS, errname(err));
out:
	free(buf);
	free(small);
}

/* The touched set of the scan tests: page i of the region. */
static bool in_set(unsigned long i)
{
	return i % 37 == 5 || i == 0 || i == 1 || i == 511 || i == 512 ||
	       i == 1023 || i == NPAGES - 1;
}

static unsigned long touch_set(void)
{
	unsigned long i, n = 0;

	for (i = 0; i < NPAGES; i++)
		if (in_set(i)) {
			touch_read(region + i * PAGE);
			n++;
		}
	return n;
}

/* Scan the whole region (FLUSH) and compare the bitmap with the set. */
static bool scan_matches_set(const char *what, unsigned long nset)
{
	uint8_t bits[NPAGES / 8];
	struct tiermm_ab_scan a;
	unsigned long i, wrong = 0;
	int err;

	memset(bits, 0xff, sizeof(bits));
	err = do_scan(0, (uintptr_t)region, REGION_LEN, TIERMM_SCAN_FLUSH, 0,
		      (uintptr_t)region, bits, sizeof(bits), &a);
	for (i = 0; i < NPAGES; i++)
		wrong += bit_test(bits, i) != in_set(i);
	if (!check(err == 0 && wrong == 0 && a.accessed == nset &&
		   a.scanned == NPAGES &&
		   a.cursor == (uintptr_t)region + REGION_LEN,
		   "%s: exactly the %lu touched pages", what, nset))
		diag("%s, %lu bits wrong, accessed %llu scanned %llu",
		     errname(err), wrong, (unsigned long long)a.accessed,
		     (unsigned long long)a.scanned);
	return err == 0 && wrong == 0;
}

/* Clear every accessed bit of the region (and flush), checking nothing. */
static void scan_clear(void)
{
	uint8_t bits[NPAGES / 8];
	struct tiermm_ab_scan a;

	do_scan(0, (uintptr_t)region, REGION_LEN, TIERMM_SCAN_FLUSH, 0,
		(uintptr_t)region, bits, sizeof(bits), &a);
}

static void test_scan(void)
{
	const uintptr_t start = (uintptr_t)region;
	uint8_t bits[NPAGES / 8];
	uint16_t counts[NR_PTE_TABLES];
	struct tiermm_ab_scan a;
	unsigned long nset, i, calls, wrong;
	uint64_t cursor;
	bool ok;
	int err;

	err = do_scan(0, start, REGION_LEN, TIERMM_SCAN_FLUSH, 0, start, bits,
		      sizeof(bits), &a);
	check(err == 0 && a.scanned == NPAGES &&
	      a.cursor == start + REGION_LEN,
	      "AB_SCAN of the region: %lu pages scanned, cursor at the end",
	      NPAGES);
	diag("first scan: %llu accessed", (unsigned long long)a.accessed);
	memset(bits, 0xff, sizeof(bits));
	err = do_scan(0, start, REGION_LEN, TIERMM_SCAN_FLUSH, 0, start, bits,
		      sizeof(bits), &a);
	wrong = 0;
	for (i = 0; i < sizeof(bits); i++)
		wrong += bits[i] != 0;
	check(err == 0 && a.accessed == 0 && wrong == 0,
	      "a second scan finds nothing accessed (bitmap all 0)");

	nset = touch_set();
	scan_matches_set("touch a subset, scan with FLUSH", nset);

	/* Counts per 2 MiB. */
	touch_set();
	memset(counts, 0xff, sizeof(counts));
	err = do_scan(0, start, REGION_LEN,
		      TIERMM_SCAN_FLUSH | TIERMM_SCAN_COUNTS, 0, start, counts,
		      sizeof(counts), &a);
	ok = err == 0 && a.accessed == nset;
	for (i = 0; i < NR_PTE_TABLES; i++) {
		unsigned long want = 0, k;

		for (k = i * 512; k < (i + 1) * 512; k++)
			want += in_set(k);
		if (counts[i] != want) {
			ok = false;
			diag("region %lu: count %u, want %lu", i, counts[i],
			     want);
		}
	}
	check(ok, "TIERMM_SCAN_COUNTS: per-2 MiB counts of the touched pages");

	/* Resumed with max_pages 100: each call writes only its bits. */
	touch_set();
	memset(bits, 0xa5, sizeof(bits));
	cursor = start;
	calls = 0;
	ok = true;
	while (cursor < start + REGION_LEN && calls < 100) {
		uint64_t before = cursor;
		uint64_t want = (start + REGION_LEN - cursor) / PAGE;

		if (want > 100)
			want = 100;
		err = do_scan(0, start, REGION_LEN, TIERMM_SCAN_FLUSH, 100,
			      cursor, bits, sizeof(bits), &a);
		calls++;
		if (err || a.scanned != want ||
		    a.cursor != before + want * PAGE) {
			ok = false;
			diag("call %lu: %s scanned %llu cursor %#llx", calls,
			     errname(err), (unsigned long long)a.scanned,
			     (unsigned long long)a.cursor);
			break;
		}
		if (calls == 1) {
			/* bits 100.. untouched: 0xa5 = 10100101 */
			for (i = 100; i < NPAGES; i++)
				if (bit_test(bits, i) != ((0xa5 >> (i % 8)) & 1))
					ok = false;
			check(ok, "max_pages 100: the first call wrote bits 0-99 only");
		}
		cursor = a.cursor;
	}
	check(ok && calls == (NPAGES + 99) / 100,
	      "max_pages 100: %lu calls, 100 pages each, cursor advancing",
	      (NPAGES + 99) / 100);
	wrong = 0;
	for (i = 0; i < NPAGES; i++)
		wrong += bit_test(bits, i) != in_set(i);
	check(wrong == 0, "max_pages 100: the bitmap is the touched set");

	/* Counts, resumed: whole regions per call. */
	touch_set();
	cursor = start;
	calls = 0;
	ok = true;
	memset(counts, 0xff, sizeof(counts));
	while (cursor < start + REGION_LEN && calls < 10) {
		err = do_scan(0, start, REGION_LEN,
			      TIERMM_SCAN_COUNTS | TIERMM_SCAN_FLUSH, 100,
			      cursor, counts, sizeof(counts), &a);
		calls++;
		if (err || a.scanned != 512 || a.cursor != cursor + PMD_SZ) {
			ok = false;
			break;
		}
		cursor = a.cursor;
	}
	check(ok && calls == NR_PTE_TABLES &&
	      (unsigned long)counts[0] + counts[1] + counts[2] + counts[3] ==
	      nset,
	      "counts with max_pages 100: one whole region per call");

	/* A subrange not aligned to bytes of the bitmap. */
	scan_clear();
	touch_read(region + 3 * PAGE);
	touch_read(region + 8 * PAGE);
	touch_read(region + 22 * PAGE);
	memset(bits, 0, sizeof(bits));
	err = do_scan(0, start + 3 * PAGE, 20 * PAGE, TIERMM_SCAN_FLUSH, 0,
		      start + 3 * PAGE, bits, 3, &a);
	check(err == 0 && a.accessed == 3 && bits[0] == 0x21 &&
	      bits[1] == 0x00 && bits[2] == 0x08,
	      "subrange of 20 pages at page 3: bits 0, 5 and 19 (got %02x %02x %02x)",
	      bits[0], bits[1], bits[2]);
}

static void test_thp(void)
{
	char thp_mode[256] = "";
	char *t = map_aligned(PMD_SZ, PMD_SZ);
	uintptr_t start = (uintptr_t)t;
	struct stat_res r;
	struct tiermm_ab_scan a;
	struct tiermm_pt_dump d;
	uint8_t bits[512 / 8];
	uint16_t count;
	void *buf = calloc(64, REC_SIZE);
	size_t i, n;
	bool found = false;
	int err;

	read_file("/sys/kernel/mm/transparent_hugepage/enabled", thp_mode,
		  sizeof(thp_mode));
	if (!t || !buf || madvise(t, PMD_SZ, MADV_HUGEPAGE) != 0) {
		skip("no THP (madvise)", "THP: PT_STAT, PT_DUMP and AB_SCAN");
		goto out;
	}
	t[0] = 1;
	err = do_stat(&r, 0, start, PMD_SZ);
	if (err || r.a.leaf_huge[TIERMM_PT_PMD] != 1) {
		diag("THP mode: %s", thp_mode);
		skip("no THP was mapped", "THP: PT_STAT, PT_DUMP and AB_SCAN");
		goto out;
	}
	check(sum_nodes(r.data) == 512 && sum_nodes(r.leaf) == 1 &&
	      sum_level(&r, TIERMM_PT_PTE) == 0,
	      "THP: PT_STAT counts 1 huge leaf, 512 data pages, no PTE table");
	check(r.a.tables_empty[TIERMM_PT_PMD] + r.a.tables_local[TIERMM_PT_PMD] +
	      r.a.tables_remote[TIERMM_PT_PMD] >= 1 &&
	      r.a.tables_empty[TIERMM_PT_PMD] == 0,
	      "THP: its PMD table votes (not empty)");

	err = do_dump(0, start, PMD_SZ, buf, 64 * REC_SIZE, &d);
	n = err ? 0 : d.written / REC_SIZE;
	for (i = 0; i < n; i++) {
		const struct tiermm_pt_dump_rec *rec = rec_at(buf, i);
		uint64_t e;

		if (rec->level != TIERMM_PT_PMD)
			continue;
		e = rec->entries[(start >> 21) & 511];
		found = (e & ENTRY_PSE) && (e & ENTRY_PRESENT) &&
			((e & PMD_PFN_BITS) >> 12) == pagemap_pfn(t);
	}
	check(found, "THP: PT_DUMP's PMD entry is a huge leaf with pagemap's pfn");

	do_scan(0, start, PMD_SZ, TIERMM_SCAN_FLUSH, 0, start, bits,
		sizeof(bits), &a);
	err = do_scan(0, start, PMD_SZ, TIERMM_SCAN_FLUSH, 0, start, bits,
		      sizeof(bits), &a);
	check(err == 0 && a.accessed == 0 && a.scanned == 512,
	      "THP: cleared, a second scan finds nothing (512 scanned)");
	touch_read(t + 12345);
	err = do_scan(0, start, PMD_SZ, TIERMM_SCAN_FLUSH | TIERMM_SCAN_COUNTS,
		      0, start, &count, sizeof(count), &a);
	check(err == 0 && count == 512 && a.accessed == 512,
	      "THP: one read, count 512 (got %u)", count);
	touch_read(t + 99999);
	memset(bits, 0, sizeof(bits));
	err = do_scan(0, start, PMD_SZ, TIERMM_SCAN_FLUSH, 100, start, bits,
		      sizeof(bits), &a);
	n = 0;
	for (i = 0; i < sizeof(bits); i++)
		n += bits[i] == 0xff;
	check(err == 0 && n == sizeof(bits) && a.scanned == 512 &&
	      a.cursor == start + PMD_SZ,
	      "THP: bitmap all 512 set, not split by max_pages 100");
out:
	free(buf);
	if (t)
		munmap(t, PMD_SZ);
}

/* --------------------------------------------- other processes, errors -- */

/* A child that maps and touches 2 MiB, says where, and waits. */
static pid_t spawn_toucher(char **addrp)
{
	int p[2];
	pid_t pid;
	char *addr = NULL;

	if (pipe(p))
		return -1;
	pid = fork();
	if (pid == 0) {
		char *m = map_aligned(PMD_SZ, PMD_SZ);
		unsigned long i;

		close(p[0]);
		if (m) {
			madvise(m, PMD_SZ, MADV_NOHUGEPAGE);
			for (i = 0; i < 512; i++)
				m[i * PAGE] = 1;
		}
		if (write(p[1], &m, sizeof(m)) != sizeof(m))
			_exit(1);
		for (;;)
			pause();
	}
	close(p[1]);
	if (pid > 0 && read(p[0], &addr, sizeof(addr)) != sizeof(addr))
		addr = NULL;
	close(p[0]);
	*addrp = addr;
	return pid;
}

static void reap(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

static void test_other_process(void)
{
	struct stat_res r;
	struct tiermm_ab_scan a;
	struct tiermm_pt_dump d;
	uint8_t bits[64];
	void *buf = calloc(16, REC_SIZE);
	char *addr = NULL;
	pid_t pid = spawn_toucher(&addr);
	int err;

	if (!check(pid > 0 && addr && buf, "a child maps and touches 2 MiB")) {
		if (pid > 0)
			reap(pid);
		free(buf);
		return;
	}
	err = do_stat(&r, pid, (uintptr_t)addr, PMD_SZ);
	check(err == 0 && sum_nodes(r.data) == 512 &&
	      sum_level(&r, TIERMM_PT_PTE) == 1,
	      "PT_STAT of the child: 512 pages, 1 PTE table");
	err = do_dump(pid, (uintptr_t)addr, PMD_SZ, buf, 16 * REC_SIZE, &d);
	check(err == 0 && d.written >= 4 * REC_SIZE &&
	      d.next == (uintptr_t)addr + PMD_SZ,
	      "PT_DUMP of the child succeeds");
	err = do_scan(pid, (uintptr_t)addr, PMD_SZ, TIERMM_SCAN_FLUSH, 0,
		      (uintptr_t)addr, bits, sizeof(bits), &a);
	check(err == 0 && a.accessed == 512 && a.scanned == 512,
	      "AB_SCAN of the child: all 512 accessed (got %llu)",
	      (unsigned long long)a.accessed);
	err = do_scan(pid, (uintptr_t)addr, PMD_SZ, TIERMM_SCAN_FLUSH, 0,
		      (uintptr_t)addr, bits, sizeof(bits), &a);
	check(err == 0 && a.accessed == 0,
	      "AB_SCAN of the child again: none accessed");
	reap(pid);
	free(buf);
}

/* Waits until pid is a zombie (state Z in /proc/PID/stat). */
static bool wait_zombie(pid_t pid)
{
	char path[64], buf[512];
	int i;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	for (i = 0; i < 500; i++) {
		char *p;

		if (read_file(path, buf, sizeof(buf)) == 0) {
			p = strrchr(buf, ')');
			if (p && p[1] == ' ' && p[2] == 'Z')
				return true;
		}
		usleep(10000);
	}
	return false;
}

static void test_pids(void)
{
	struct stat_res r;
	struct tiermm_ab_scan a;
	uint8_t bits[NPAGES / 8];
	char comm[64] = "";
	pid_t pid;
	int err;

	pid = fork();
	if (pid == 0)
		_exit(0);
	if (check(pid > 0 && wait_zombie(pid), "a child exited (zombie)")) {
		err = do_stat(&r, pid, (uintptr_t)region, REGION_LEN);
		check(err == ESRCH, "PT_STAT of a zombie -> ESRCH (got %s)",
		      errname(err));
		err = do_scan(pid, (uintptr_t)region, REGION_LEN, 0, 0,
			      (uintptr_t)region, bits, sizeof(bits), &a);
		check(err == ESRCH, "AB_SCAN of a zombie -> ESRCH (got %s)",
		      errname(err));
	}
	if (pid > 0)
		waitpid(pid, NULL, 0);
	err = do_stat(&r, pid, (uintptr_t)region, REGION_LEN);
	check(err == ESRCH, "PT_STAT of a reaped pid -> ESRCH (got %s)",
	      errname(err));
	err = do_stat(&r, -5, (uintptr_t)region, REGION_LEN);
	check(err == ESRCH, "PT_STAT of pid -5 -> ESRCH (got %s)", errname(err));
	err = do_stat(&r, 0x3fffffff, (uintptr_t)region, REGION_LEN);
	check(err == ESRCH, "PT_STAT of pid 0x3fffffff -> ESRCH (got %s)",
	      errname(err));

	read_file("/proc/2/comm", comm, sizeof(comm));
	if (strncmp(comm, "kthreadd", 8) == 0) {
		err = do_stat(&r, 2, 0, 1ULL << 30);
		check(err == EINVAL, "PT_STAT of kthreadd (pid 2) -> EINVAL (got %s)",
		      errname(err));
	} else {
		skip("pid 2 is not kthreadd", "PT_STAT of a kernel thread");
	}
}

/* Results a forked, unprivileged child reports back through shared memory. */
struct perm_res {
	int stat_parent, dump_parent, scan_parent, stat_init;
	int stat_self, scan_self, dump_self;
	uint64_t dump_self_pfn, dump_self_entry;
	int read_other, modify_other;
	int done;
};

static int drop_to_nobody(void)
{
	if (setgroups(0, NULL) || setgid(NOBODY) || setuid(NOBODY))
		return -1;
	return 0;
}

static void test_permissions(void)
{
	struct perm_res *pr = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
				   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	const pid_t parent = getpid();
	uint8_t bits[NPAGES / 8];
	pid_t pid, nobody;
	unsigned long nset;

	if (!check(pr != MAP_FAILED, "shared page for the children's results"))
		return;
	memset(pr, 0, sizeof(*pr));
	scan_clear();
	nset = touch_set();

	pid = fork();
	if (pid == 0) {
		struct stat_res cr;
		struct tiermm_ab_scan a;
		struct tiermm_pt_dump d;
		void *buf = calloc(16, REC_SIZE);
		char *m;

		if (drop_to_nobody() || !buf)
			_exit(1);
		pr->stat_parent = do_stat(&cr, parent, (uintptr_t)region,
					  REGION_LEN);
		pr->dump_parent = do_dump(parent, (uintptr_t)region,
					  REGION_LEN, buf, 16 * REC_SIZE, &d);
		pr->scan_parent = do_scan(parent, (uintptr_t)region, REGION_LEN,
					  TIERMM_SCAN_FLUSH, 0,
					  (uintptr_t)region, bits,
					  sizeof(bits), &a);
		pr->stat_init = do_stat(&cr, 1, 0, 1ULL << 30);
		m = map_aligned(PMD_SZ, PMD_SZ);
		if (!m)
			_exit(1);
		madvise(m, PMD_SZ, MADV_NOHUGEPAGE);
		m[0] = 1;
		pr->stat_self = do_stat(&cr, 0, (uintptr_t)m, PMD_SZ);
		pr->scan_self = do_scan(0, (uintptr_t)m, PMD_SZ, 0, 0,
					(uintptr_t)m, bits, sizeof(bits), &a);
		pr->dump_self = do_dump(getpid(), (uintptr_t)m, PMD_SZ, buf,
					16 * REC_SIZE, &d);
		if (!pr->dump_self) {
			size_t i;

			for (i = 0; i < d.written / REC_SIZE; i++) {
				const struct tiermm_pt_dump_rec *rec =
					rec_at(buf, i);

				if (rec->level != TIERMM_PT_PTE)
					continue;
				pr->dump_self_pfn = rec->pfn;
				pr->dump_self_entry = rec->entries[0];
			}
		}
		pr->done = 1;
		_exit(0);
	}
	if (pid > 0)
		waitpid(pid, NULL, 0);
	if (!check(pid > 0 && pr->done, "an unprivileged child ran its checks"))
		goto out;
	check(pr->stat_parent == EPERM,
	      "uid 65534: PT_STAT of a root process -> EPERM (got %s)",
	      errname(pr->stat_parent));
	check(pr->dump_parent == EPERM,
	      "uid 65534: PT_DUMP of a root process -> EPERM (got %s)",
	      errname(pr->dump_parent));
	check(pr->scan_parent == EPERM,
	      "uid 65534: AB_SCAN of a root process -> EPERM (got %s)",
	      errname(pr->scan_parent));
	check(pr->stat_init == EPERM,
	      "uid 65534: PT_STAT of init -> EPERM (got %s)",
	      errname(pr->stat_init));
	check(pr->stat_self == 0 && pr->scan_self == 0 && pr->dump_self == 0,
	      "uid 65534: PT_STAT, AB_SCAN, PT_DUMP of itself succeed");
	check(pr->dump_self_pfn == 0 && (pr->dump_self_entry & ENTRY_PRESENT) &&
	      !(pr->dump_self_entry & PTE_PFN_BITS),
	      "uid 65534: PT_DUMP hides physical addresses (entry %#llx)",
	      (unsigned long long)pr->dump_self_entry);
	scan_matches_set("the refused scan cleared nothing", nset);

	/*
	 * MODIFY needs the same user or CAP_SYS_NICE on top of what READ
	 * needs: a root child without CAP_SYS_NICE may read a nobody process
	 * but not clear its bits.
	 */
	memset(pr, 0, sizeof(*pr));
	nobody = fork();
	if (nobody == 0) {
		if (drop_to_nobody())
			_exit(1);
		for (;;)
			pause();
	}
	usleep(100000);
	pid = fork();
	if (pid == 0) {
		struct __user_cap_header_struct h = {
			.version = _LINUX_CAPABILITY_VERSION_3,
		};
		struct __user_cap_data_struct c[2];
		struct tiermm_ab_scan a;
		struct stat_res cr;

		if (syscall(SYS_capget, &h, c))
			_exit(1);
		c[0].effective &= ~(1U << CAP_SYS_NICE);
		c[0].permitted &= ~(1U << CAP_SYS_NICE);
		c[0].inheritable &= ~(1U << CAP_SYS_NICE);
		if (syscall(SYS_capset, &h, c))
			_exit(1);
		pr->read_other = do_stat(&cr, nobody, 0, 1ULL << 30);
		pr->modify_other = do_scan(nobody, 0, 64 * PMD_SZ,
					   TIERMM_SCAN_COUNTS, 0, 0, bits,
					   sizeof(bits), &a);
		pr->done = 1;
		_exit(0);
	}
	if (pid > 0)
		waitpid(pid, NULL, 0);
	if (nobody > 0)
		reap(nobody);
	if (check(pid > 0 && nobody > 0 && pr->done,
		  "a root child without CAP_SYS_NICE ran its checks")) {
		check(pr->read_other == 0,
		      "no CAP_SYS_NICE: PT_STAT of another user's process works (got %s)",
		      errname(pr->read_other));
		check(pr->modify_other == EPERM,
		      "no CAP_SYS_NICE: AB_SCAN of another user's process -> EPERM (got %s)",
		      errname(pr->modify_other));
	}
out:
	munmap(pr, PAGE);
}

/*
 * Every failed call must leave the struct as it was (PT_STAT's -ENOSPC
 * writes nr_nodes, nothing else); checked for all of them.
 */
static int n_unchanged_checked;
static int n_unchanged_failed;

static void expect_err(unsigned long cmd, void *arg, size_t len, int want,
		       const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void expect_err(unsigned long cmd, void *arg, size_t len, int want,
		       const char *fmt, ...)
{
	unsigned char before[8192];
	char what[256];
	va_list ap;
	int err;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (len > sizeof(before))
		len = sizeof(before);
	if (arg)
		memcpy(before, arg, len);
	err = xioctl(cmd, arg);
	if (!check(err == want, "%s -> %s", what, errname(want)))
		diag("got %s (%d)", errname(err), err);
	if (err && arg && want != ENOSPC) {
		n_unchanged_checked++;
		if (memcmp(before, arg, len)) {
			n_unchanged_failed++;
			diag("%s: the caller's struct was modified", what);
		}
	}
}

/* Range cases shared by the three commands: (start, len) -> EINVAL. */
struct bad_range {
	uint64_t start, len;
	const char *what;
};

static void test_bad_input(void)
{
	const uintptr_t start = (uintptr_t)region;
	const struct bad_range ranges[] = {
		{ KERNEL_ADDR, PAGE, "kernel address" },
		{ NONCANON_ADDR, PAGE, "non-canonical address" },
		{ 1ULL << 57, PAGE, "above TASK_SIZE_MAX (5-level too)" },
		{ start + 1, PAGE, "unaligned start" },
		{ start, PAGE + 1, "unaligned len" },
		{ start, 0, "len 0" },
		{ start, -(uint64_t)PAGE, "start + len overflows" },
		{ (1ULL << 47) - PAGE, 1ULL << 57, "end beyond TASK_SIZE_MAX" },
	};
	union {
		struct tiermm_pt_stat s;
		struct tiermm_pt_dump d;
		struct tiermm_ab_scan a;
		unsigned char b[PAGE + 64];
	} u;
	static struct stat_res sr;
	struct stat_res pattern;
	uint8_t bits[NPAGES / 8], bits_before[NPAGES / 8];
	void *dbuf = calloc(MIN_DUMP_RECS + 1, REC_SIZE);
	unsigned long nset;
	size_t i;

	if (!dbuf) {
		check(false, "bad input: out of memory");
		return;
	}
	scan_clear();
	nset = touch_set();
	memset(bits, 0x5a, sizeof(bits));
	memcpy(bits_before, bits, sizeof(bits));

	stat_init(&sr, 0, start, REGION_LEN);
	memset(sr.tables, 0x5a, sizeof(sr.tables));
	memset(sr.leaf, 0x5a, sizeof(sr.leaf));
	memset(sr.data, 0x5a, sizeof(sr.data));
	pattern = sr;

#define STAT_BASE()	do { memset(&u, 0, sizeof(u)); u.s = sr.a; } while (0)
#define DUMP_BASE()	do { \
		memset(&u, 0, sizeof(u)); \
		u.d.argsz = sizeof(u.d); u.d.start = start; \
		u.d.len = REGION_LEN; u.d.buf_ptr = (uintptr_t)dbuf; \
		u.d.buf_len = (MIN_DUMP_RECS + 1) * REC_SIZE; \
	} while (0)
#define SCAN_BASE()	do { \
		memset(&u, 0, sizeof(u)); \
		u.a.argsz = sizeof(u.a); u.a.start = start; \
		u.a.len = REGION_LEN; u.a.cursor = start; \
		u.a.out_ptr = (uintptr_t)bits; u.a.out_len = sizeof(bits); \
	} while (0)

	for (i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++) {
		STAT_BASE();
		u.s.start = ranges[i].start;
		u.s.len = ranges[i].len;
		expect_err(TIERMM_IOC_PT_STAT, &u, sizeof(u.s), EINVAL,
			   "PT_STAT %s", ranges[i].what);
		DUMP_BASE();
		u.d.start = ranges[i].start;
		u.d.len = ranges[i].len;
		expect_err(TIERMM_IOC_PT_DUMP, &u, sizeof(u.d), EINVAL,
			   "PT_DUMP %s", ranges[i].what);
		SCAN_BASE();
		u.a.start = ranges[i].start;
		u.a.len = ranges[i].len;
		u.a.cursor = ranges[i].start;
		expect_err(TIERMM_IOC_AB_SCAN, &u, sizeof(u.a), EINVAL,
			   "AB_SCAN %s", ranges[i].what);
	}

	/* argsz, flags, reserved, pad */
	STAT_BASE();
	u.s.argsz = TIERMM_PT_STAT_SIZE_VER0 - 1;
	expect_err(TIERMM_IOC_PT_STAT, &u, sizeof(u.s), EINVAL,
		   "PT_STAT argsz VER0 - 1");
	STAT_BASE();
	u.s.argsz = 0;
	expect_err(TIERMM_IOC_PT_STAT, &u, sizeof(u.s), EINVAL,
		   "PT_STAT argsz 0");
	STAT_BASE();
	u.s.argsz = PAGE + 1;
	expect_err(TIERMM_IOC_PT_STAT, &u, PAGE + 8, EINVAL,
		   "PT_STAT argsz PAGE_SIZE + 1");
	STAT_BASE();
	u.s.argsz = sizeof(u.s) + 16;
	u.b[sizeof(u.s) + 9] = 1;
	expect_err(TIERMM_IOC_PT_STAT, &u, sizeof(u.s) + 16, EINVAL,
		   "PT_STAT argsz + 16 with a non-zero tail");
	STAT_BASE();
	u.s.flags = 2;
	expect_err(TIERMM_IOC_PT_STAT, &u, sizeof(u.s), EINVAL,
		   "PT_STAT flags 2");
	STAT_BASE();
	u.s.flags = 0x80000000u;
	expect_err(TIERMM_IOC_PT_STAT, &u, sizeof(u.s), EINVAL,
		   "PT_STAT flags bit 31");
	STAT_BASE();
	u.s.repl_ptr = (uintptr_t)sr.tables;
	expect_err(TIERMM_IOC_PT_STAT, &u, sizeof(u.s), EINVAL,
		   "PT_STAT repl_ptr without TIERMM_PT_STAT_REPLICAS");
	STAT_BASE();
	u.s.repl_nr = 1;
	expect_err(TIERMM_IOC_PT_STAT, &u, sizeof(u.s), EINVAL,
		   "PT_STAT repl_nr without TIERMM_PT_STAT_REPLICAS");
	STAT_BASE();
	u.s.flags = TIERMM_PT_STAT_REPLICAS;
	u.s.repl_ptr = (uintptr_t)sr.tables;
	expect_err(TIERMM_IOC_PT_STAT, &u, sizeof(u.s), EINVAL,
		   "PT_STAT TIERMM_PT_STAT_REPLICAS with repl_nr 0");
	STAT_BASE();
	u.s.flags = TIERMM_PT_STAT_REPLICAS;
	u.s.repl_ptr = (uintptr_t)sr.tables;
	u.s.repl_nr = 4097;
	expect_err(TIERMM_IOC_PT_STAT, &u, sizeof(u.s), EINVAL,
		   "PT_STAT repl_nr 4097");
	for (i = 0; i < 2; i++) {
		STAT_BASE();
		u.s.reserved[i] = 1ULL << (i * 20);
		expect_err(TIERMM_IOC_PT_STAT, &u, sizeof(u.s), EINVAL,
			   "PT_STAT reserved[%zu] non-zero", i);
	}
	STAT_BASE();
	u.s.nr_nodes = nr_node_ids - 1;
	expect_err(TIERMM_IOC_PT_STAT, &u, sizeof(u.s), ENOSPC,
		   "PT_STAT nr_nodes = nr_node_ids - 1");
	{
		struct tiermm_pt_stat want = sr.a;

		want.nr_nodes = nr_node_ids;
		check(memcmp(&u.s, &want, sizeof(want)) == 0,
		      "ENOSPC wrote nr_nodes = %d and nothing else (got %u)",
		      nr_node_ids, u.s.nr_nodes);
	}
	STAT_BASE();
	u.s.nr_nodes = 0;
	expect_err(TIERMM_IOC_PT_STAT, &u, sizeof(u.s), ENOSPC,
		   "PT_STAT nr_nodes = 0");
	check(memcmp(sr.leaf, pattern.leaf, sizeof(sr.leaf)) == 0 &&
	      memcmp(sr.tables, pattern.tables, sizeof(sr.tables)) == 0 &&
	      memcmp(sr.data, pattern.data, sizeof(sr.data)) == 0,
	      "PT_STAT: the failed calls wrote nothing to the arrays");
	STAT_BASE();
	u.s.tables_ptr = KERNEL_ADDR;
	expect_err(TIERMM_IOC_PT_STAT, &u, sizeof(u.s), EFAULT,
		   "PT_STAT tables_ptr a kernel address");
	STAT_BASE();
	u.s.data_ptr = 0;
	expect_err(TIERMM_IOC_PT_STAT, &u, sizeof(u.s), EFAULT,
		   "PT_STAT data_ptr NULL");
	STAT_BASE();
	u.s.argsz = sizeof(u.s) + 64;
	expect_err(TIERMM_IOC_PT_STAT, &u, 0, 0,
		   "PT_STAT argsz + 64 with a zero tail works");
	check(u.s.argsz == sizeof(u.s), "... and writes back argsz %zu",
	      sizeof(u.s));

	DUMP_BASE();
	u.d.argsz = TIERMM_PT_DUMP_SIZE_VER0 - 8;
	expect_err(TIERMM_IOC_PT_DUMP, &u, sizeof(u.d), EINVAL,
		   "PT_DUMP argsz VER0 - 8");
	DUMP_BASE();
	u.d.argsz = sizeof(u.d) + 8;
	u.b[sizeof(u.d) + 7] = 0x80;
	expect_err(TIERMM_IOC_PT_DUMP, &u, sizeof(u.d) + 8, EINVAL,
		   "PT_DUMP argsz + 8 with a non-zero tail");
	DUMP_BASE();
	u.d.flags = 2;
	expect_err(TIERMM_IOC_PT_DUMP, &u, sizeof(u.d), EINVAL,
		   "PT_DUMP flags 2");
	DUMP_BASE();
	u.d.pad0 = 1;
	expect_err(TIERMM_IOC_PT_DUMP, &u, sizeof(u.d), EINVAL,
		   "PT_DUMP pad0 non-zero");
	DUMP_BASE();
	u.d.reserved[3] = 1;
	expect_err(TIERMM_IOC_PT_DUMP, &u, sizeof(u.d), EINVAL,
		   "PT_DUMP reserved[3] non-zero");
	DUMP_BASE();
	u.d.buf_len = 0;
	expect_err(TIERMM_IOC_PT_DUMP, &u, sizeof(u.d), EINVAL,
		   "PT_DUMP buf_len 0");
	DUMP_BASE();
	u.d.buf_ptr = 0;
	expect_err(TIERMM_IOC_PT_DUMP, &u, sizeof(u.d), EFAULT,
		   "PT_DUMP buf_ptr NULL");

	SCAN_BASE();
	u.a.argsz = TIERMM_AB_SCAN_SIZE_VER0 - 4;
	expect_err(TIERMM_IOC_AB_SCAN, &u, sizeof(u.a), EINVAL,
		   "AB_SCAN argsz VER0 - 4");
	SCAN_BASE();
	u.a.argsz = sizeof(u.a) + 32;
	u.b[sizeof(u.a) + 31] = 1;
	expect_err(TIERMM_IOC_AB_SCAN, &u, sizeof(u.a) + 32, EINVAL,
		   "AB_SCAN argsz + 32 with a non-zero tail");
	SCAN_BASE();
	u.a.flags = 1U << 2;
	expect_err(TIERMM_IOC_AB_SCAN, &u, sizeof(u.a), EINVAL,
		   "AB_SCAN unknown flag bit 2");
	SCAN_BASE();
	u.a.pad0 = 7;
	expect_err(TIERMM_IOC_AB_SCAN, &u, sizeof(u.a), EINVAL,
		   "AB_SCAN pad0 non-zero");
	SCAN_BASE();
	u.a.reserved[1] = 1;
	expect_err(TIERMM_IOC_AB_SCAN, &u, sizeof(u.a), EINVAL,
		   "AB_SCAN reserved[1] non-zero");
	SCAN_BASE();
	u.a.out_len = sizeof(bits) - 1;
	expect_err(TIERMM_IOC_AB_SCAN, &u, sizeof(u.a), EINVAL,
		   "AB_SCAN bitmap one byte too small");
	SCAN_BASE();
	u.a.flags = TIERMM_SCAN_COUNTS;
	u.a.out_len = 2 * NR_PTE_TABLES - 1;
	expect_err(TIERMM_IOC_AB_SCAN, &u, sizeof(u.a), EINVAL,
		   "AB_SCAN counts one byte too small");
	SCAN_BASE();
	u.a.cursor = start - PAGE;
	expect_err(TIERMM_IOC_AB_SCAN, &u, sizeof(u.a), EINVAL,
		   "AB_SCAN cursor below start");
	SCAN_BASE();
	u.a.cursor = start + REGION_LEN;
	expect_err(TIERMM_IOC_AB_SCAN, &u, sizeof(u.a), EINVAL,
		   "AB_SCAN cursor at the end");
	SCAN_BASE();
	u.a.cursor = start + 5;
	expect_err(TIERMM_IOC_AB_SCAN, &u, sizeof(u.a), EINVAL,
		   "AB_SCAN cursor unaligned");
	SCAN_BASE();
	u.a.cursor = 0;
	expect_err(TIERMM_IOC_AB_SCAN, &u, sizeof(u.a), EINVAL,
		   "AB_SCAN cursor 0 (not set)");
	SCAN_BASE();
	u.a.flags = TIERMM_SCAN_COUNTS;
	u.a.start = start + PAGE;
	u.a.len = REGION_LEN - PAGE;
	u.a.cursor = start + PAGE;
	expect_err(TIERMM_IOC_AB_SCAN, &u, sizeof(u.a), EINVAL,
		   "AB_SCAN counts with start not 2 MiB aligned");
	SCAN_BASE();
	u.a.flags = TIERMM_SCAN_COUNTS;
	u.a.cursor = start + PAGE;
	expect_err(TIERMM_IOC_AB_SCAN, &u, sizeof(u.a), EINVAL,
		   "AB_SCAN counts with cursor not 2 MiB aligned");
	check(memcmp(bits, bits_before, sizeof(bits)) == 0,
	      "AB_SCAN: the failed calls wrote nothing to the bitmap");
	scan_matches_set("the failed scans cleared nothing", nset);

	expect_err(TIERMM_IOC_PT_STAT, NULL, 0, EFAULT, "PT_STAT NULL argument");
	expect_err(TIERMM_IOC_PT_DUMP, NULL, 0, EFAULT, "PT_DUMP NULL argument");
	expect_err(TIERMM_IOC_AB_SCAN, NULL, 0, EFAULT, "AB_SCAN NULL argument");

	/* Unknown commands and sizes. */
	STAT_BASE();
	expect_err(_IOWR(TIERMM_IOC_MAGIC, 5, struct tiermm_pt_stat), &u,
		   sizeof(u.s), ENOTTY, "command nr 5");
	expect_err(_IOWR(TIERMM_IOC_MAGIC, TIERMM_CMD_PT_STAT,
			 struct tiermm_pt_dump), &u, sizeof(u.s), ENOTTY,
		   "PT_STAT's nr with PT_DUMP's size");
	expect_err(_IOR(TIERMM_IOC_MAGIC, TIERMM_CMD_AB_SCAN,
			struct tiermm_ab_scan), &u, sizeof(u.s), ENOTTY,
		   "AB_SCAN as _IOR");

	check(n_unchanged_checked > 0 && n_unchanged_failed == 0,
	      "the caller's struct unchanged after each of %d failed calls",
	      n_unchanged_checked);
#undef STAT_BASE
#undef DUMP_BASE
#undef SCAN_BASE
	free(dbuf);
}

/* --------------------------------------------------------------- fuzz -- */

static uint64_t rng_state;

static uint64_t rnd(void)
{
	uint64_t x = rng_state;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	rng_state = x;
	return x;
}

static uint64_t rnd_below(uint64_t n)
{
	return n ? rnd() % n : 0;
}

static int fuzz_stop;

/*
 * A shmem file the churners map shared: MADV_COLLAPSE of its THP in one
 * process retracts the PTE tables of the others (retract_page_tables(), under
 * the file's i_mmap lock only, the tables freed after an RCU grace period),
 * which is the race the module's walkers must survive.
 */
#define SHM_LEN		(4UL << 20)
static int churn_memfd = -1;

/* The whole shmem file, mapped shared at a 2 MiB aligned address. */
static char *map_shm(void)
{
	char *p = map_aligned(SHM_LEN, PMD_SZ);

	if (!p || churn_memfd < 0)
		return NULL;
	if (mmap(p, SHM_LEN, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
		 churn_memfd, 0) == MAP_FAILED) {
		munmap(p, SHM_LEN);
		return NULL;
	}
	return p;
}

/* Remaps, touches, collapses and drops memory until told to stop. */
static void churn(uint64_t seed)
{
	char *maps[8] = { NULL };
	size_t lens[8] = { 0 };
	uint64_t s = seed | 1;

	while (!__atomic_load_n(&fuzz_stop, __ATOMIC_RELAXED)) {
		unsigned int i;
		size_t k, len;

		s ^= s << 13;
		s ^= s >> 7;
		s ^= s << 17;
		i = s % 8;
		if (maps[i]) {
			switch ((s >> 8) % 6) {
			case 0:
				munmap(maps[i], lens[i]);
				maps[i] = NULL;
				continue;
			case 1:
				madvise(maps[i], lens[i], MADV_DONTNEED);
				break;
			case 2:
				madvise(maps[i], lens[i], MADV_COLLAPSE);
				break;
			case 3:
				mprotect(maps[i], lens[i], PROT_READ);
				mprotect(maps[i], lens[i],
					 PROT_READ | PROT_WRITE);
				break;
			case 4:
				madvise(maps[i], lens[i] / 2, MADV_PAGEOUT);
				break;
			default:
				for (k = 0; k < lens[i]; k += PAGE * ((s >> 16) % 7 + 1))
					maps[i][k]++;
				break;
			}
			continue;
		}
		/* slots 6 and 7: the shared shmem file */
		len = i >= 6 ? SHM_LEN : ((s >> 20) % 8 + 1) * PMD_SZ;
		maps[i] = i >= 6 ? map_shm() : map_aligned(len, PMD_SZ);
		if (!maps[i])
			continue;
		lens[i] = len;
		madvise(maps[i], len, (s >> 30) & 1 ? MADV_HUGEPAGE :
						      MADV_NOHUGEPAGE);
		for (k = 0; k < len; k += PAGE)
			maps[i][k] = 1;
	}
}

static void *churn_thread(void *arg)
{
	churn((uintptr_t)arg);
	return NULL;
}

/*
 * Values for the fields of a fuzzed struct. In a "sane" call every field is
 * one the module accepts (so the walkers run, over memory that the churn
 * thread and the child keep changing: their mappings land around the test
 * region); otherwise anything goes.
 */
static bool sane;

static uint64_t fuzz_addr(char *arena, size_t arena_len)
{
	uint64_t near = (uintptr_t)region - (4ULL << 30) +
			rnd_below(8ULL << 30);

	switch (rnd_below(sane ? 4 : 12)) {
	case 0:
		return (uintptr_t)region + rnd_below(NPAGES) * PAGE;
	case 1:
		return near & ~(PAGE - 1);
	case 2:
		return near & ~(PMD_SZ - 1);
	case 3:
		return rnd_below(4) ? (uintptr_t)arena +
				      rnd_below(arena_len / PAGE) * PAGE : 0;
	case 4:
		return KERNEL_ADDR;
	case 5:
		return NONCANON_ADDR;
	case 6:
		return rnd() & ~(PAGE - 1) & ((1ULL << 47) - 1);
	case 7:
		return (uintptr_t)region + rnd_below(REGION_LEN);
	case 8:
		return (1ULL << 47) - PAGE * (1 + rnd_below(4));
	default:
		return rnd();
	}
}

static uint64_t fuzz_len(uint64_t start)
{
	uint64_t len;

	switch (rnd_below(sane ? 5 : 10)) {
	case 0:
		len = PAGE * (1 + rnd_below(1024));
		break;
	case 1:
		len = REGION_LEN;
		break;
	case 2:
		len = PUD_SZ * (1 + rnd_below(8));
		break;
	case 3:
		len = (1ULL << 47) - PAGE - start;
		break;
	case 4:
		len = PMD_SZ * (1 + rnd_below(2048));
		break;
	case 5:
		return 0;
	case 6:
		return -(uint64_t)PAGE;
	case 7:
		return rnd() & ~(PAGE - 1);
	default:
		return rnd_below(1ULL << 20) + 1;
	}
	if (sane && start + len > (1ULL << 47) - PAGE)
		len = ((1ULL << 47) - PAGE - start) & ~(PAGE - 1);
	return len ? len : PAGE;
}

static pid_t fuzz_pid(pid_t child)
{
	switch (rnd_below(sane ? 4 : 8)) {
	case 0:
		return 0;
	case 1:
		return getpid();
	case 2:
	case 3:
		return child;
	case 4:
		return 1;
	case 5:
		return 2;
	default:
		return (pid_t)rnd();
	}
}

/* A pointer the module may write through without hurting us. */
static uint64_t fuzz_out_ptr(char *arena, size_t arena_len, char *guard)
{
	switch (rnd_below(sane ? 1 : 8)) {
	case 0:
		return (uintptr_t)arena + rnd_below(arena_len / 2);
	case 1:
		return 0;
	case 2:
		return (uintptr_t)guard;
	case 3:
		return KERNEL_ADDR;
	case 4:
		return (uintptr_t)arena + arena_len - rnd_below(4096);
	default:
		return (uintptr_t)arena + rnd_below(arena_len / 2);
	}
}

/* A buffer size: the one needed (want) when it fits, or anything. */
static uint64_t fuzz_out_len(size_t arena_len, uint64_t want)
{
	switch (rnd_below(sane ? 1 : 5)) {
	case 0:
		return want <= arena_len / 2 ? want : rnd_below(arena_len / 2);
	case 1:
		return 0;
	case 2:
		return rnd_below(64);
	case 3:
		return rnd();
	default:
		return rnd_below(arena_len / 2);
	}
}

static bool errno_expected(int err)
{
	switch (err) {
	case 0: case EINVAL: case EFAULT: case ENOTTY: case ESRCH: case EPERM:
	case EACCES: case ENOSPC: case ENOMEM: case EINTR: case EAGAIN:
	case EBUSY:
		return true;
	default:
		return false;
	}
}

static const unsigned long fuzz_cmds[] = {
	TIERMM_IOC_GET_API, TIERMM_IOC_PT_STAT, TIERMM_IOC_PT_DUMP,
	TIERMM_IOC_PT_MIGRATE, TIERMM_IOC_AB_SCAN,
};

/* Fills the argument struct of command nr at argp (256 bytes of room). */
static void fuzz_fill(unsigned int nr, unsigned char *argp, pid_t child,
		      char *arena, size_t arena_len, char *guard)
{
	static const uint32_t sizes[] = {
		sizeof(struct tiermm_get_api), sizeof(struct tiermm_pt_stat),
		sizeof(struct tiermm_pt_dump), sizeof(struct tiermm_pt_migrate),
		sizeof(struct tiermm_ab_scan),
	};
	uint32_t argsz = sizes[nr];
	uint32_t flags = 0;

	if (!sane) {
		if (!rnd_below(4))
			argsz = rnd_below(4) ? (uint32_t)rnd_below(300) :
				(uint32_t)PAGE + (uint32_t)rnd_below(2);
		if (!rnd_below(4))
			flags = (uint32_t)rnd_below(8);
	}
	if (nr == TIERMM_CMD_PT_STAT) {
		struct tiermm_pt_stat *st = (void *)argp;

		/* API 3: half of the sane calls also ask for the replicas. */
		if (sane && rnd_below(2))
			flags = TIERMM_PT_STAT_REPLICAS;
		st->nr_nodes = sane || rnd_below(4) ? (uint32_t)nr_node_ids :
			       (uint32_t)rnd_below(70);
		st->pid = fuzz_pid(child);
		st->start = fuzz_addr(arena, arena_len);
		st->len = fuzz_len(st->start);
		st->tables_ptr = fuzz_out_ptr(arena, arena_len, guard);
		st->leaf_ptr = fuzz_out_ptr(arena, arena_len, guard);
		st->data_ptr = fuzz_out_ptr(arena, arena_len, guard);
		if (flags & TIERMM_PT_STAT_REPLICAS) {
			st->repl_ptr = fuzz_out_ptr(arena, arena_len, guard);
			st->repl_nr = sane || rnd_below(4) ? 64 :
				      (uint32_t)rnd_below(5000);
		}
		if (!sane && !rnd_below(8))
			st->reserved[rnd_below(2)] = rnd();
		if (!sane && !rnd_below(16))
			st->repl_nr = (uint32_t)rnd();
	} else if (nr == TIERMM_CMD_PT_DUMP) {
		struct tiermm_pt_dump *d = (void *)argp;

		d->pid = fuzz_pid(child);
		d->start = fuzz_addr(arena, arena_len);
		d->len = fuzz_len(d->start);
		d->buf_ptr = fuzz_out_ptr(arena, arena_len, guard);
		d->buf_len = fuzz_out_len(arena_len,
					  REC_SIZE * (5 + rnd_below(60)));
		if (!sane && !rnd_below(8))
			d->pad0 = 1;
	} else if (nr == TIERMM_CMD_PT_MIGRATE) {
		struct tiermm_pt_migrate *m = (void *)argp;

		m->pid = fuzz_pid(child);
		m->node = (int32_t)rnd_below(nr_node_ids + (sane ? 1 : 3)) - 1;
		m->start = fuzz_addr(arena, arena_len);
		m->len = fuzz_len(m->start);
		m->levels = sane ? 1 + (uint32_t)rnd_below(7) :
			    (uint32_t)rnd_below(16);
	} else if (nr == TIERMM_CMD_AB_SCAN) {
		struct tiermm_ab_scan *a = (void *)argp;

		flags = sane ? (uint32_t)rnd_below(4) : flags;
		a->pid = fuzz_pid(child);
		a->start = fuzz_addr(arena, arena_len);
		a->len = fuzz_len(a->start);
		a->cursor = rnd_below(3) ? a->start :
			    a->start + rnd_below(a->len);
		if (sane && (flags & TIERMM_SCAN_COUNTS)) {
			a->start &= ~(PMD_SZ - 1);
			a->cursor &= ~(PMD_SZ - 1);
			if (a->cursor < a->start)
				a->cursor = a->start;
		}
		if (sane)
			a->cursor &= ~(PAGE - 1);
		a->max_pages = rnd_below(3) ? rnd_below(3000) : rnd();
		a->out_ptr = fuzz_out_ptr(arena, arena_len, guard);
		a->out_len = fuzz_out_len(arena_len,
					  flags & TIERMM_SCAN_COUNTS ?
					  (a->len + PMD_SZ - 1) / PMD_SZ * 2 :
					  (a->len / PAGE + 7) / 8);
	}
	memcpy(argp, &argsz, sizeof(argsz));
	memcpy(argp + 4, &flags, sizeof(flags));
}

#define SHMEM_THP	"/sys/kernel/mm/transparent_hugepage/shmem_enabled"
static char saved_shmem_thp[256];

static void restore_shmem_thp(void)
{
	if (saved_shmem_thp[0])
		write_file(SHMEM_THP, saved_shmem_thp);
}

static int run_fuzz(int seconds)
{
	const size_t arena_len = 8UL << 20;
	char *arena = mmap(NULL, arena_len + PAGE, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *guard = arena + arena_len;
	unsigned char *argpage;
	unsigned long calls = 0, by_err[160] = { 0 }, unexpected = 0;
	unsigned long by_cmd[6] = { 0 }, ok_cmd[6] = { 0 };
	struct timespec t0, t;
	pthread_t thr;
	pid_t child;
	int i, err;

	if (!check(arena != MAP_FAILED, "fuzz: map an 8 MiB output arena"))
		return 1;
	mprotect(guard, PAGE, PROT_NONE);
	argpage = (unsigned char *)guard - 2 * PAGE;
	diag("fuzz: seed %#llx, %d s", (unsigned long long)rng_state, seconds);

	/* shmem THP on request, for the collapse race (restored at exit) */
	if (read_file(SHMEM_THP, saved_shmem_thp, sizeof(saved_shmem_thp)) == 0) {
		char *sel = strchr(saved_shmem_thp, '[');
		char *end = sel ? strchr(sel, ']') : NULL;

		if (sel && end) {
			memmove(saved_shmem_thp, sel + 1, end - sel - 1);
			saved_shmem_thp[end - sel - 1] = '\0';
			atexit(restore_shmem_thp);
			write_file(SHMEM_THP, "advise");
		} else {
			saved_shmem_thp[0] = '\0';
		}
	}
	churn_memfd = (int)syscall(SYS_memfd_create, "tiermm-fuzz", 0U);
	if (churn_memfd < 0 || ftruncate(churn_memfd, SHM_LEN))
		diag("fuzz: no shmem file: %s", strerror(errno));

	child = fork();
	if (child == 0) {
		churn(rng_state * 3);
		_exit(0);
	}
	if (pthread_create(&thr, NULL, churn_thread,
			   (void *)(uintptr_t)(rng_state * 5)))
		thr = 0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		unsigned int nr = (unsigned int)rnd_below(5);
		unsigned long cmd = fuzz_cmds[nr];
		unsigned char *argp;
		size_t size;

		clock_gettime(CLOCK_MONOTONIC, &t);
		if (t.tv_sec - t0.tv_sec >= seconds)
			break;
		sane = rnd_below(10) < 6;

		/*
		 * The struct ends at the guard page, so a larger argsz runs
		 * into it. Sometimes less room than a struct: random bytes.
		 */
		memset(argpage, 0, 2 * PAGE);
		size = sane || rnd_below(4) ? 256 : 8 * (1 + rnd_below(31));
		argp = (unsigned char *)guard - size;
		if (size < 256 || (!sane && !rnd_below(8))) {
			uint64_t *w = (uint64_t *)argp;

			for (i = 0; (size_t)i < size / 8; i++)
				w[i] = rnd_below(3) ? 0 : rnd();
			if (rnd_below(2))
				w[0] = (w[0] & ~0xffffffffULL) | rnd_below(300);
		} else {
			fuzz_fill(nr, argp, child, arena, arena_len, guard);
		}

		if (!sane) {
			switch (rnd_below(4)) {
			case 0:	/* any command word */
				cmd = _IOC(rnd_below(4), rnd_below(4) ?
					   TIERMM_IOC_MAGIC :
					   (unsigned int)rnd_below(256),
					   (unsigned int)rnd_below(64),
					   (unsigned int)rnd_below(400));
				nr = 5;
				break;
			case 1:	/* a known number, any size */
				cmd = _IOC(_IOC_READ | _IOC_WRITE,
					   TIERMM_IOC_MAGIC, nr,
					   (unsigned int)rnd_below(300));
				break;
			default:
				break;
			}
		}
		err = ioctl(dev_fd, cmd, sane || rnd_below(50) ? (void *)argp :
			    rnd_below(2) ? NULL : (void *)guard) ? errno : 0;
		calls++;
		by_cmd[nr]++;
		ok_cmd[nr] += !err;
		if (err >= 0 && err < 160)
			by_err[err]++;
		if (!errno_expected(err) && unexpected++ < 10)
			diag("unexpected %s from cmd %#lx", errname(err), cmd);
	}
	__atomic_store_n(&fuzz_stop, 1, __ATOMIC_RELAXED);
	if (thr)
		pthread_join(thr, NULL);
	reap(child);

	diag("fuzz: %lu calls (get_api %lu stat %lu dump %lu migrate %lu scan %lu other %lu)",
	     calls, by_cmd[0], by_cmd[1], by_cmd[2], by_cmd[3], by_cmd[4],
	     by_cmd[5]);
	diag("fuzz: succeeded: get_api %lu stat %lu dump %lu migrate %lu scan %lu",
	     ok_cmd[0], ok_cmd[1], ok_cmd[2], ok_cmd[3], ok_cmd[4]);
	for (i = 0; i < 160; i++)
		if (by_err[i])
			diag("  %-8s %lu", errname(i), by_err[i]);
	check(calls > 0, "fuzz: %lu random ioctls in %d s", calls, seconds);
	check(unexpected == 0, "fuzz: only documented errnos (%lu others)",
	      unexpected);
	munmap(arena, arena_len + PAGE);
	return 0;
}

/* ---------------------------------------------------------------- main -- */

static char saved_numa_balancing[32];

static void restore_numa_balancing(void)
{
	if (saved_numa_balancing[0])
		write_file("/proc/sys/kernel/numa_balancing",
			   saved_numa_balancing);
}

static void usage(const char *prog)
{
	fprintf(stderr, "usage: %s [--device DEV] [--fuzz SECONDS [--seed N]]\n",
		prog);
}

int main(int argc, char **argv)
{
	const char *dev = "/dev/" TIERMM_DEVICE_NAME;
	char buf[256];
	int fuzz = -1, i, n;

	rng_state = (uint64_t)time(NULL) * 0x9e3779b97f4a7c15ULL ^ getpid();
	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--device") && i + 1 < argc) {
			dev = argv[++i];
		} else if (!strcmp(argv[i], "--fuzz") && i + 1 < argc) {
			fuzz = atoi(argv[++i]);
		} else if (!strcmp(argv[i], "--seed") && i + 1 < argc) {
			rng_state = strtoull(argv[++i], NULL, 0);
		} else {
			usage(argv[0]);
			return 2;
		}
	}
	if (!rng_state)
		rng_state = 1;

	dev_fd = open(dev, O_RDWR | O_CLOEXEC);
	if (!check(dev_fd >= 0, "open %s", dev)) {
		diag("open: %s", strerror(errno));
		printf("Bail out! cannot open %s\n", dev);
		return 1;
	}
	if (read_file("/sys/devices/system/node/possible", buf, sizeof(buf)))
		strcpy(buf, "0");
	nr_node_ids = list_max(buf) + 1;
	if (nr_node_ids < 1 || nr_node_ids > MAX_NODES) {
		printf("Bail out! %d possible nodes\n", nr_node_ids);
		return 1;
	}
	if (read_file("/sys/devices/system/node/has_memory", buf, sizeof(buf)))
		strcpy(buf, "0");
	for (n = 1; n < nr_node_ids && other_node < 0; n++)
		if (list_has(buf, n))
			other_node = n;
	buf[strcspn(buf, "\n")] = '\0';
	diag("nr_node_ids %d, memory nodes %s, other node %d", nr_node_ids,
	     buf, other_node);

	/* NUMA balancing would move pages and make PTEs PROT_NONE under us. */
	if (read_file("/proc/sys/kernel/numa_balancing", saved_numa_balancing,
		      sizeof(saved_numa_balancing)) == 0) {
		atexit(restore_numa_balancing);
		write_file("/proc/sys/kernel/numa_balancing", "0");
	}

	test_api();
	setup_region();
	if (!region_ok) {
		printf("Bail out! no test region\n");
		return 1;
	}
	if (fuzz >= 0) {
		run_fuzz(fuzz);
	} else {
		test_stat_local();
		test_dump();
		test_stat_moved();
		test_scan();
		test_thp();
		test_other_process();
		test_pids();
		test_bad_input();
		test_permissions();
	}
	close(dev_fd);
	printf("1..%d\n", n_checks);
	printf("# %d passed, %d failed\n", n_checks - n_failed, n_failed);
	return n_failed ? 1 : 0;
}
