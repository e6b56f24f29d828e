// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Data-page placement in user space: move_pages(2) to move and to ask where
 * pages are, mbind(2) to allocate on a tier (ARCHITECTURE.md: "Data-page
 * migration is user space, with status verification").
 *
 * How a move runs. The range is walked in windows of up to WINDOW entries;
 * an entry is one base page, or one PMD-mapped huge page given by a single
 * address (below). For each window:
 *   1. a status query (move_pages with nodes == NULL) says where each entry
 *      is now;
 *   2. every present entry not on a target node gets a target node;
 *   3. one move_pages call per target node moves them;
 *   4. entries the kernel reported busy, or that failed without a status
 *      (below), are tried again after a back-off, a bounded number of times;
 *   5. a second status query verifies where every entry is now, and each
 *      base page of the range is counted exactly once in the result.
 * Memory use is bounded by the window, whatever the length of the range.
 *
 * What the 6.12 kernel does (mm/migrate.c, do_pages_move()):
 *  - Entries are resolved one by one and queued per target node; a queue is
 *    migrated when the node changes, when an entry gets an error status, or
 *    at the end. An entry already on its target gets the node as status.
 *  - Looking up any address inside a huge page finds the whole folio, so the
 *    whole huge page moves (pages outside the range with it). A second
 *    address of a folio already queued fails to isolate (-EBUSY), which
 *    flushes the queue; the addresses after it then find the folio on the
 *    target node. So one address per huge page is both enough and cheapest.
 *    When the target has no free huge page, migrate_pages() splits the folio
 *    and moves the base pages (MR_SYSCALL allows splitting).
 *  - If migrate_pages() fails for some folios (after its own 10 passes, e.g.
 *    pinned pages whose reference count never settles), move_pages() stops
 *    and returns the number of pages not moved: the status of that queue and
 *    of every later entry is not written. If the target runs out of memory,
 *    move_pages() fails with ENOMEM, again without status for that queue.
 *    Both cases are why status words are preset to a sentinel and why a
 *    verifying query is made.
 *  - Per-entry status errors: EFAULT (no VMA, a mapping that cannot migrate,
 *    or the shared zero page), ENOENT (no page), EACCES (mapped by several
 *    processes without MPOL_MF_MOVE_ALL), EBUSY (could not be isolated).
 *
 * Huge pages are found with PAGEMAP_SCAN on /proc/PID/pagemap (Linux 6.7),
 * which also tells the shared zero page apart from unmovable mappings (both
 * give EFAULT). Without it every base page is an entry: still correct (busy
 * statuses of huge-page tails resolve on the retry), only slower, and an
 * EFAULT page in a mapped range is taken for the zero page.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "tiering.h"	/* the engine's mover; includes hints.h */

/* The kernel's mempolicy ABI (linux/mempolicy.h; not included for its enum). */
#define P_MPOL_BIND 2
#define P_MPOL_PREFERRED_MANY 5
#define P_MPOL_MF_MOVE (1 << 1)
#define P_MPOL_MF_MOVE_ALL (1 << 2)
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

/* PAGEMAP_SCAN (linux/fs.h, 6.7); newer than the build host's headers. */
struct p_page_region {
	uint64_t start;
	uint64_t end;
	uint64_t categories;
};

struct p_pm_scan_arg {
	uint64_t size;
	uint64_t flags;
	uint64_t start;
	uint64_t end;
	uint64_t walk_end;
	uint64_t vec;
	uint64_t vec_len;
	uint64_t max_pages;
	uint64_t category_inverted;
	uint64_t category_mask;
	uint64_t category_anyof_mask;
	uint64_t return_mask;
};

#define P_PAGEMAP_SCAN _IOWR('f', 16, struct p_pm_scan_arg)
#define P_PAGE_IS_PRESENT (1u << 3)
#define P_PAGE_IS_PFNZERO (1u << 5)
#define P_PAGE_IS_HUGE (1u << 6)

#define WINDOW 512		/* entries per move_pages call and window */
#define SCAN_REGIONS 64		/* PAGEMAP_SCAN regions per ioctl */
#define MAX_ROUNDS 5		/* retries of busy entries per window */
#define BACKOFF_FIRST_NS 1000000ULL	/* 1 ms, doubled each round */
#define BACKOFF_MAX_NS 32000000ULL	/* one sleep at most 32 ms */
#define BACKOFF_BUDGET_NS 250000000ULL	/* all sleeps of one call */
#define STATUS_UNSET INT_MIN	/* status word the kernel did not write */
/* A private reason: migrate_pages() failed for the entry, no status. */
#define ERR_MIGRATE 100000

#define NODE_WORDS (TIERMM__MAX_NODES / 64)

/* Cached on first use; a race only computes the same value twice. */
static size_t page_size(void)
{
	static size_t cached;
	size_t ps = __atomic_load_n(&cached, __ATOMIC_RELAXED);

	if (!ps) {
		ps = (size_t)sysconf(_SC_PAGESIZE);
		__atomic_store_n(&cached, ps, __ATOMIC_RELAXED);
	}
	return ps;
}

/* The PMD size: what one PMD-mapped huge page covers. */
static size_t huge_size(void)
{
	static size_t cached;
	size_t hs = __atomic_load_n(&cached, __ATOMIC_RELAXED);

	if (!hs) {
		struct tiermm__fs fs = { .root = "" };
		uint64_t v = 0;

		if (tiermm__fs_read_u64(&fs, "/sys/kernel/mm/transparent_hugepage/hpage_pmd_size",
					&v) || !v || (v & (v - 1)) || v < page_size())
			v = 2u << 20;
		hs = (size_t)v;
		__atomic_store_n(&cached, hs, __ATOMIC_RELAXED);
	}
	return hs;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void sleep_ns(uint64_t ns)
{
	struct timespec ts = { .tv_sec = (time_t)(ns / 1000000000ULL),
			       .tv_nsec = (long)(ns % 1000000000ULL) };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static long sys_move_pages(pid_t pid, unsigned long n, void **pages,
			   const int *nodes, int *status, int flags)
{
	return syscall(SYS_move_pages, pid, n, pages, nodes, status, flags);
}

static bool bit_test(const uint64_t *bits, int i)
{
	return i >= 0 && i < TIERMM__MAX_NODES && tiermm__bit_test(bits, (unsigned int)i);
}

/* ------------------------------------------------------------- checks */

/*
 * Page-align: addr must be aligned, len > 0 is rounded up to whole pages;
 * the end must not wrap. [*start, *end) is the page range.
 */
int tiermm__range_check(const void *addr, size_t len, const char *what,
			uint64_t *start, uint64_t *end)
{
	uint64_t a = (uint64_t)(uintptr_t)addr, ps = page_size(), l;

	if (a & (ps - 1))
		return tiermm__fail(EINVAL, "%s: address %#llx is not page aligned (%llu bytes)",
				    what, (unsigned long long)a,
				    (unsigned long long)ps);
	if (!len)
		return tiermm__fail(EINVAL, "%s: length is 0", what);
	l = ((uint64_t)len + ps - 1) & ~(ps - 1);
	if (l < len || a + l < a)
		return tiermm__fail(EINVAL, "%s: range %#llx + %zu wraps around",
				    what, (unsigned long long)a, len);
	*start = a;
	*end = a + l;
	return 0;
}

/*
 * Every byte of [start, end) is inside some VMA of pid: -EFAULT naming the
 * first hole otherwise, -ESRCH/-EPERM when the maps file cannot be read.
 */
int tiermm__range_mapped(pid_t pid, uint64_t start, uint64_t end)
{
	char path[64], *line = NULL;
	size_t cap = 0;
	uint64_t covered = start;
	FILE *f;
	int err;

	if (pid)
		snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	else
		snprintf(path, sizeof(path), "/proc/self/maps");
	f = fopen(path, "re");
	if (!f) {
		err = errno;
		if (err == ENOENT || err == ESRCH)
			return tiermm__fail(ESRCH, "process %d does not exist", (int)pid);
		if (err == EACCES)
			return tiermm__fail(EPERM, "%s: %s", path, strerror(err));
		return tiermm__fail(err, "%s: %s", path, strerror(err));
	}
	while (covered < end && getline(&line, &cap, f) > 0) {
		unsigned long long vs, ve;

		if (sscanf(line, "%llx-%llx", &vs, &ve) != 2)
			continue;
		if (ve <= covered)
			continue;
		if (vs > covered)
			break;
		covered = ve;
	}
	free(line);
	fclose(f);
	if (covered < end && pid)
		return tiermm__fail(EFAULT,
				    "range %#llx-%#llx is not mapped in process %d: nothing at %#llx",
				    (unsigned long long)start, (unsigned long long)end, (int)pid,
				    (unsigned long long)covered);
	if (covered < end)
		return tiermm__fail(EFAULT,
				    "range %#llx-%#llx is not mapped: nothing at %#llx",
				    (unsigned long long)start, (unsigned long long)end,
				    (unsigned long long)covered);
	return 0;
}

/*
 * A query of one page: the kernel's own verdict on whether pid exists, has
 * an address space, and may be moved by us (ESRCH, EPERM).
 */
static int probe_process(pid_t pid, uint64_t addr)
{
	void *p = (void *)(uintptr_t)addr;
	int status = 0, err;

	if (sys_move_pages(pid, 1, &p, NULL, &status, 0) == 0)
		return 0;
	err = errno;
	switch (err) {
	case ESRCH:
		return tiermm__fail(ESRCH, "process %d does not exist", (int)pid);
	case EINVAL:
		/* A valid call: the task has no address space (exiting). */
		if (pid)
			return tiermm__fail(ESRCH, "process %d is exiting (no address space)",
					    (int)pid);
		break;
	case EPERM:
		return tiermm__fail(EPERM,
				    "not allowed to move the pages of process %d (needs the same user or CAP_SYS_NICE)",
				    (int)pid);
	case ENOSYS:
		return tiermm__fail(ENOTSUP,
				    "move_pages(2) is not available (kernel without NUMA or migration)");
	}
	return tiermm__fail(err, "move_pages(2) query for process %d: %s", (int)pid,
			    strerror(err));
}

/* Nodes with memory on the running kernel. */
static int nodes_with_memory(uint64_t *bits)
{
	struct tiermm__fs fs = { .root = "" };
	char buf[4096];
	ssize_t n;

	memset(bits, 0, NODE_WORDS * sizeof(uint64_t));
	n = tiermm__fs_read(&fs, "/sys/devices/system/node/has_memory", buf, sizeof(buf));
	if (n < 0) {
		if (n == -ENOENT)
			return tiermm__fail(ENOTSUP,
					    "no /sys/devices/system/node/has_memory: kernel without NUMA");
		return tiermm__fail((int)-n, "/sys/devices/system/node/has_memory: %s",
				    strerror((int)-n));
	}
	if (tiermm__list_parse(buf, bits, TIERMM__MAX_NODES) < 0)
		return tiermm__fail(EINVAL, "cannot parse has_memory '%s'", buf);
	return 0;
}

/* The nodes pid's cpuset allows (Mems_allowed_list of /proc/PID/status). */
int tiermm__mems_allowed(pid_t pid, uint64_t *bits)
{
	char path[64], *line = NULL;
	size_t cap = 0;
	int ret = -1;
	FILE *f;

	memset(bits, 0, NODE_WORDS * sizeof(uint64_t));
	if (pid)
		snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	else
		snprintf(path, sizeof(path), "/proc/self/status");
	f = fopen(path, "re");
	if (!f)
		return tiermm__fail(ESRCH, "process %d does not exist", (int)pid);
	while (getline(&line, &cap, f) > 0) {
		if (strncmp(line, "Mems_allowed_list:", 18))
			continue;
		line[strcspn(line, "\n")] = '\0';
		ret = tiermm__list_parse(line + 18 + strspn(line + 18, " \t"), bits,
					 TIERMM__MAX_NODES);
		break;
	}
	free(line);
	fclose(f);
	if (ret < 0) {
		/* No cpuset information: every node is allowed. */
		memset(bits, 0xff, NODE_WORDS * sizeof(uint64_t));
	}
	return 0;
}

/* MemFree of a node, bytes (0 if unknown). */
static uint64_t node_mem_free(int node)
{
	struct tiermm__fs fs = { .root = "" };
	char path[96], buf[4096], *p;
	unsigned long long kb = 0;

	snprintf(path, sizeof(path), "/sys/devices/system/node/node%d/meminfo", node);
	if (tiermm__fs_read(&fs, path, buf, sizeof(buf)) < 0)
		return 0;
	p = strstr(buf, "MemFree:");
	if (!p || sscanf(p, "MemFree: %llu", &kb) != 1)
		return 0;
	return (uint64_t)kb * 1024;
}

/* The "low" watermarks of a node's zones in /proc/zoneinfo, bytes. */
static uint64_t node_low_wmark(int node)
{
	char *line = NULL;
	unsigned long long low = 0;
	size_t cap = 0;
	int cur = -1;
	FILE *f = fopen("/proc/zoneinfo", "re");

	if (!f)
		return 0;
	while (getline(&line, &cap, f) > 0) {
		int nd;
		char word[32];
		unsigned long long v;

		if (sscanf(line, "Node %d, zone", &nd) == 1) {
			cur = nd;
			continue;
		}
		if (cur != node)
			continue;
		if (sscanf(line, " %31s %llu", word, &v) == 2 && !strcmp(word, "low"))
			low += v;
	}
	free(line);
	fclose(f);
	return (uint64_t)low * page_size();
}

/*
 * Free memory of a node that allocations can take without going below the
 * kernel's low watermarks: MemFree of nodeN/meminfo minus the "low" pages of
 * the node's zones in /proc/zoneinfo. A snapshot, in bytes (>= 0).
 */
static int64_t node_usable_free(int node)
{
	uint64_t kb = node_mem_free(node), low;

	if (!kb)
		return 0;
	low = node_low_wmark(node);
	return kb <= low ? 0 : (int64_t)(kb - low);
}

int64_t tiermm__node_usable_free(int node)
{
	return node_usable_free(node);
}

int tiermm__huge_blocks(pid_t pid, uint64_t start, uint64_t end, uint64_t *huge,
			size_t nbits)
{
	struct p_page_region reg[SCAN_REGIONS];
	uint64_t hs = huge_size(), a = start;
	char path[64];
	int fd, err = 0, saved = errno;

	memset(huge, 0, (nbits + 63) / 64 * sizeof(*huge));
	if (pid)
		snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)pid);
	else
		snprintf(path, sizeof(path), "/proc/self/pagemap");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		err = errno == ENOENT ? ESRCH : errno;
		errno = saved;
		return -err;
	}
	while (a < end) {
		struct p_pm_scan_arg arg = {
			.size = sizeof(arg),
			.start = a,
			.end = end,
			.vec = (uint64_t)(uintptr_t)reg,
			.vec_len = SCAN_REGIONS,
			.category_anyof_mask = P_PAGE_IS_HUGE,
			.return_mask = P_PAGE_IS_HUGE,
		};
		long n = ioctl(fd, P_PAGEMAP_SCAN, &arg);

		if (n < 0) {
			err = errno;
			break;
		}
		for (long i = 0; i < n; i++)
			for (uint64_t b = reg[i].start & ~(hs - 1); b < reg[i].end; b += hs) {
				uint64_t k = (b - start) / hs;

				if (b >= start && k < nbits)
					huge[k / 64] |= 1ULL << (k % 64);
			}
		if (arg.walk_end <= a)
			break;
		a = arg.walk_end;
	}
	close(fd);
	errno = saved;
	return -err;
}

/* ------------------------------------------------------------- the walk */

struct ent {
	uint64_t addr;		/* the address handed to the kernel */
	uint32_t npages;	/* base pages of the range it stands for */
	bool huge;		/* PMD-mapped huge page */
	bool zero;		/* the shared zero page (PAGEMAP_SCAN) */
	int pre;		/* node or -errno before the move */
	int target;		/* node chosen, -1: none */
	int err;		/* last failure (positive errno / ERR_MIGRATE) */
	int fin;		/* node or -errno after the move */
};

struct cursor {
	pid_t pid;
	uint64_t next, end;
	int fd;			/* pagemap fd for PAGEMAP_SCAN, -1: none */
	bool scan_ok;		/* PAGEMAP_SCAN answered at least once */
	bool present_only;	/* regions are the present pages: skip the rest */
	uint64_t gap;		/* base pages skipped as not present */
	uint64_t walked;	/* regions are known below this address */
	struct p_page_region reg[SCAN_REGIONS];
	int nreg, ri;
};

static bool use_pagemap_scan = true;

void tiermm__place_use_pagemap_scan(bool on)
{
	use_pagemap_scan = on;
}

static void cursor_init(struct cursor *c, pid_t pid, uint64_t start, uint64_t end,
			bool present_only)
{
	char path[64];

	memset(c, 0, sizeof(*c));
	c->present_only = present_only;
	c->pid = pid;
	c->next = start;
	c->end = end;
	if (pid)
		snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)pid);
	else
		snprintf(path, sizeof(path), "/proc/self/pagemap");
	c->fd = use_pagemap_scan ? open(path, O_RDONLY | O_CLOEXEC) : -1;
	c->walked = c->fd < 0 ? end : start;
}

static void cursor_fini(struct cursor *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

static void cursor_rewind(struct cursor *c, uint64_t start)
{
	c->next = start;
	c->gap = 0;
	c->nreg = c->ri = 0;
	c->walked = c->fd < 0 ? c->end : start;
}

/*
 * Learn the huge and zero-page regions from addr on; in present_only mode,
 * the regions of present pages (with their huge and zero-page bits).
 */
static void cursor_scan(struct cursor *c, uint64_t addr)
{
	struct p_pm_scan_arg a = {
		.size = sizeof(a),
		.start = addr,
		.end = c->end,
		.vec = (uint64_t)(uintptr_t)c->reg,
		.vec_len = SCAN_REGIONS,
		.category_anyof_mask = P_PAGE_IS_HUGE | P_PAGE_IS_PFNZERO,
		.return_mask = P_PAGE_IS_HUGE | P_PAGE_IS_PFNZERO,
	};

	if (c->present_only) {
		a.category_anyof_mask = 0;
		a.category_mask = P_PAGE_IS_PRESENT;
		a.return_mask = P_PAGE_IS_PRESENT | P_PAGE_IS_HUGE | P_PAGE_IS_PFNZERO;
	}
	int saved = errno;
	long n = ioctl(c->fd, P_PAGEMAP_SCAN, &a);

	errno = saved;
	c->ri = 0;
	if (n < 0 || a.walk_end <= addr) {
		/* Old kernel (ENOTTY) or the task went away: base pages only. */
		c->nreg = 0;
		c->walked = c->end;
		if (n < 0) {
			close(c->fd);
			c->fd = -1;
		}
		return;
	}
	c->scan_ok = true;
	c->nreg = (int)n;
	c->walked = a.walk_end;
}

/* The next entry at c->next; false at the end of the range. */
static bool cursor_next(struct cursor *c, struct ent *e)
{
	uint64_t a = c->next, ps = page_size();

	for (;;) {
		uint64_t skip_to;

		if (a >= c->end)
			return false;
		if (a >= c->walked && c->fd >= 0)
			cursor_scan(c, a);
		while (c->ri < c->nreg && c->reg[c->ri].end <= a)
			c->ri++;
		if (!c->present_only || c->fd < 0 ||
		    (c->ri < c->nreg && c->reg[c->ri].start <= a))
			break;
		/* Not present: jump to the next present region, or rescan. */
		skip_to = c->ri < c->nreg ? c->reg[c->ri].start : c->walked;
		if (skip_to > c->end)
			skip_to = c->end;
		c->gap += (skip_to - a) / ps;
		a = c->next = skip_to;
	}
	memset(e, 0, sizeof(*e));
	e->addr = a;
	e->npages = 1;
	e->target = -1;
	if (c->ri < c->nreg && c->reg[c->ri].start <= a) {
		const struct p_page_region *r = &c->reg[c->ri];

		e->zero = r->categories & P_PAGE_IS_PFNZERO;
		if (r->categories & P_PAGE_IS_HUGE) {
			uint64_t hs = huge_size();
			uint64_t stop = (a + hs) & ~(hs - 1);

			if (stop > r->end)
				stop = r->end;
			if (stop > c->end)
				stop = c->end;
			e->huge = true;
			e->npages = (uint32_t)((stop - a) / ps);
		}
	}
	c->next = a + (uint64_t)e->npages * ps;
	return true;
}

/* Map a failed move_pages(2) call to the error of the whole operation. */
static int syscall_error(pid_t pid, int err, const char *what)
{
	switch (err) {
	case ESRCH:
		return tiermm__fail(ESRCH, "process %d exited during the %s", (int)pid, what);
	case EINVAL:
		if (pid)
			return tiermm__fail(ESRCH, "process %d is exiting (no address space)",
					    (int)pid);
		break;
	case EPERM:
		return tiermm__fail(EPERM, "not allowed to move the pages of process %d",
				    (int)pid);
	case EACCES:
		return tiermm__fail(EACCES,
				    "a target node is outside the cpuset of process %d",
				    (int)pid);
	case ENODEV:
		return tiermm__fail(ENODEV, "a target node went offline during the %s", what);
	case ENOSYS:
		return tiermm__fail(ENOTSUP, "move_pages(2) is not available");
	}
	return tiermm__fail(err, "move_pages(2) during the %s: %s", what, strerror(err));
}

/* Query the node of every entry: field pre (before) or fin (after). */
static int query(pid_t pid, struct ent *e, int n, bool after, void **pages,
		 int *status, uint64_t *calls)
{
	for (int i = 0; i < n; i++) {
		pages[i] = (void *)(uintptr_t)e[i].addr;
		status[i] = STATUS_UNSET;
	}
	if (n && sys_move_pages(pid, (unsigned long)n, pages, NULL, status, 0))
		return syscall_error(pid, errno, "status query");
	if (calls)
		(*calls)++;
	for (int i = 0; i < n; i++) {
		int s = status[i] == STATUS_UNSET ? -EFAULT : status[i];

		if (after)
			e[i].fin = s;
		else
			e[i].pre = s;
	}
	return 0;
}

/* ------------------------------------------------------------- targets */

struct targets {
	int n;
	int *node;		/* candidate nodes (OS numbers) */
	int64_t *budget;	/* usable free bytes not yet promised */
	bool *full;		/* the kernel said ENOMEM */
	const struct tiermm_topo *topo;	/* distances; NULL: single node */
	uint64_t is_target[NODE_WORDS];
	/* SLIT distance from source node s to candidate i, lazily: */
	int16_t row_of[TIERMM__MAX_NODES];	/* -1: not computed */
	double *dist;		/* rows of n */
	int nrows, caprows;
};

static void targets_free(struct targets *t)
{
	free(t->node);
	free(t->budget);
	free(t->full);
	free(t->dist);
	memset(t, 0, sizeof(*t));
}

static int targets_alloc(struct targets *t, int n)
{
	memset(t, 0, sizeof(*t));
	t->node = calloc((size_t)n, sizeof(*t->node));
	t->budget = calloc((size_t)n, sizeof(*t->budget));
	t->full = calloc((size_t)n, sizeof(*t->full));
	if (!t->node || !t->budget || !t->full) {
		targets_free(t);
		return tiermm__fail(ENOMEM, "out of memory");
	}
	t->n = n;
	for (int i = 0; i < TIERMM__MAX_NODES; i++)
		t->row_of[i] = -1;
	return 0;
}

static const double *dist_row(struct targets *t, int src)
{
	double *row;

	if (!t->topo || src < 0 || src >= TIERMM__MAX_NODES)
		return NULL;
	if (t->row_of[src] >= 0)
		return t->dist + (size_t)t->row_of[src] * (size_t)t->n;
	if (t->nrows == t->caprows) {
		int cap = t->caprows ? t->caprows * 2 : 4;
		double *d = realloc(t->dist, sizeof(double) * (size_t)cap * (size_t)t->n);

		if (!d)
			return NULL;
		t->dist = d;
		t->caprows = cap;
	}
	row = t->dist + (size_t)t->nrows * (size_t)t->n;
	for (int i = 0; i < t->n; i++) {
		double v;
		int saved = errno;

		/* Unknown distances (a node the topology lacks) tie. */
		if (tiermm_topo_distance(t->topo, src, t->node[i], TIERMM_METRIC_SLIT, &v))
			v = 0;
		errno = saved;
		row[i] = v;
	}
	t->row_of[src] = (int16_t)t->nrows++;
	return row;
}

/*
 * The candidate for a page on node src needing bytes: nearest with room,
 * ties to the most room left; with no room anywhere, the nearest node not
 * known to be full (the kernel may still reclaim), or -1 with none left.
 * *roomy says whether the budget covered it.
 */
static int choose(struct targets *t, int src, uint64_t bytes, bool *roomy)
{
	const double *row = dist_row(t, src);
	int best = -1;

	for (int pass = 0; pass < 2 && best < 0; pass++) {
		for (int i = 0; i < t->n; i++) {
			double d = row ? row[i] : 0, bd;

			if (t->full[i] || (pass == 0 && t->budget[i] < (int64_t)bytes))
				continue;
			bd = best < 0 ? 0 : (row ? row[best] : 0);
			if (best < 0 || d < bd || (d == bd && t->budget[i] > t->budget[best]))
				best = i;
		}
		if (best >= 0)
			*roomy = pass == 0;
	}
	if (best >= 0)
		t->budget[best] -= (int64_t)bytes;
	return best;
}

static int target_index(const struct targets *t, int node)
{
	for (int i = 0; i < t->n; i++)
		if (t->node[i] == node)
			return i;
	return -1;
}

/* ------------------------------------------------------------- moving */

struct mover {
	pid_t pid;
	unsigned int flags;
	int mflags;
	bool strict;
	struct targets *t;
	struct cursor cur;
	struct ent *e;
	void **pages;
	int *nodes, *status, *slot;
	uint64_t slept_ns;
	struct tiermm_move_result r;
	/* The engine's mover (tiermm__mover_run()); NULL for tiermm_move(). */
	struct tiermm__move_ctl *ctl;
};

static bool retryable(int err)
{
	return err == EBUSY || err == EAGAIN || err == ERR_MIGRATE;
}

/*
 * One move_pages(2) call per target node for the entries in sel[0..k).
 * Returns 0 or a negative errno for the whole operation.
 */
static int move_selected(struct mover *m, const int *sel, int k)
{
	struct targets *t = m->t;

	for (int ti = 0; ti < t->n; ti++) {
		int node = t->node[ti], cnt = 0;
		long ret;

		for (int j = 0; j < k; j++) {
			struct ent *e = &m->e[sel[j]];

			if (e->target != node)
				continue;
			m->pages[cnt] = (void *)(uintptr_t)e->addr;
			m->nodes[cnt] = node;
			m->status[cnt] = STATUS_UNSET;
			m->slot[cnt++] = sel[j];
		}
		if (!cnt)
			continue;
		ret = sys_move_pages(m->pid, (unsigned long)cnt, m->pages, m->nodes,
				     m->status, m->mflags);
		m->r.syscalls++;
		if (ret < 0) {
			int err = errno;

			if (err != ENOMEM)
				return syscall_error(m->pid, err, "move");
			t->full[ti] = true;
		}
		for (int j = 0; j < cnt; j++) {
			struct ent *e = &m->e[m->slot[j]];
			int s = m->status[j];

			if (s == STATUS_UNSET)
				e->err = ret < 0 ? ENOMEM : ERR_MIGRATE;
			else if (s >= 0)
				e->err = 0;
			else
				e->err = -s == EEXIST ? EFAULT : -s;
		}
	}
	return 0;
}

static void add_failed(struct mover *m, const struct ent *e, int err)
{
	struct tiermm_move_result *r = &m->r;

	r->failed += e->npages;
	switch (err) {
	case EBUSY:
	case EAGAIN:
		r->failed_busy += e->npages;
		break;
	case ENOMEM:
	case ENOSPC:
		r->failed_nomem += e->npages;
		break;
	case EFAULT:
		r->failed_fault += e->npages;
		break;
	default:
		r->failed_other += e->npages;
		break;
	}
	if (!r->first_error) {
		r->first_error = err == ERR_MIGRATE ? EBUSY : err;
		r->first_failed = e->addr;
	}
}

/* Count every entry of the window from its state before and after. */
static void classify(struct mover *m, int n)
{
	struct tiermm_move_result *r = &m->r;
	const struct targets *t = m->t;

	for (int i = 0; i < n; i++) {
		const struct ent *e = &m->e[i];
		bool pre_on = e->pre >= 0, fin_on = e->fin >= 0;

		if (fin_on && bit_test(t->is_target, e->fin)) {
			if (pre_on && !bit_test(t->is_target, e->pre)) {
				r->moved += e->npages;
				r->huge += e->huge;
				if (m->ctl && m->ctl->from_nodes &&
				    bit_test(m->ctl->from_nodes, e->pre))
					m->ctl->moved_from += e->npages;
			} else
				r->already_there += e->npages;
		} else if (fin_on) {
			if (!pre_on)
				r->not_present += e->npages;	/* appeared since */
			else
				add_failed(m, e, e->err ? e->err : EAGAIN);
		} else if (e->fin == -ENOENT) {
			r->not_present += e->npages;
		} else if (e->fin == -EFAULT) {
			if (e->zero || (e->pre == -EFAULT && !m->cur.scan_ok))
				r->not_present += e->npages;
			else
				add_failed(m, e, EFAULT);
		} else {
			add_failed(m, e, -e->fin);
		}
	}
}

/*
 * The next window: up to WINDOW entries covering at most cap bytes (an
 * entry that would go beyond cap is left for the next window).
 */
static int fill_window_cap(struct mover *m, uint64_t cap)
{
	uint64_t bytes = 0, ps = page_size();
	int n = 0;

	while (n < WINDOW && cursor_next(&m->cur, &m->e[n])) {
		uint64_t b = (uint64_t)m->e[n].npages * ps;

		if (b > cap - bytes) {
			m->cur.next = m->e[n].addr;	/* not taken */
			break;
		}
		bytes += b;
		n++;
	}
	return n;
}

static int fill_window(struct mover *m)
{
	return fill_window_cap(m, UINT64_MAX);
}

/* Give each entry of the window that must move a target. */
static void assign(struct mover *m, int n)
{
	uint64_t ps = page_size();

	for (int i = 0; i < n; i++) {
		struct ent *e = &m->e[i];
		bool roomy;
		int ti;

		e->target = -1;
		e->err = 0;
		if (e->pre < 0 || bit_test(m->t->is_target, e->pre))
			continue;
		ti = choose(m->t, e->pre, (uint64_t)e->npages * ps, &roomy);
		if (ti < 0)
			e->err = ENOMEM;
		else
			e->target = m->t->node[ti];
	}
}

static int run_window(struct mover *m, int n)
{
	int sel[WINDOW], k = 0, ret;
	uint64_t backoff = BACKOFF_FIRST_NS;

	ret = query(m->pid, m->e, n, false, m->pages, m->status, &m->r.syscalls);
	if (ret)
		return ret;
	assign(m, n);
	for (int i = 0; i < n; i++)
		if (m->e[i].target >= 0)
			sel[k++] = i;
	if (k) {
		ret = move_selected(m, sel, k);
		if (ret)
			return ret;
	}
	for (int round = 0; k && round < MAX_ROUNDS; round++) {
		k = 0;
		for (int i = 0; i < n; i++) {
			struct ent *e = &m->e[i];

			if (e->err == ENOMEM && e->pre >= 0) {
				/* Another node of the tier may still have room. */
				int ti = target_index(m->t, e->target);
				bool roomy;

				if (ti < 0 || !m->t->full[ti])
					continue;
				ti = choose(m->t, e->pre, (uint64_t)e->npages * page_size(),
					    &roomy);
				if (ti < 0)
					continue;
				e->target = m->t->node[ti];
				sel[k++] = i;
			} else if (e->target >= 0 && retryable(e->err)) {
				sel[k++] = i;
			}
		}
		if (!k)
			break;
		if (m->slept_ns < BACKOFF_BUDGET_NS) {
			uint64_t d = backoff;

			if (d > BACKOFF_BUDGET_NS - m->slept_ns)
				d = BACKOFF_BUDGET_NS - m->slept_ns;
			sleep_ns(d);
			m->slept_ns += d;
			if (backoff < BACKOFF_MAX_NS)
				backoff *= 2;
		}
		m->r.retries++;
		ret = move_selected(m, sel, k);
		if (ret)
			return ret;
	}
	ret = query(m->pid, m->e, n, true, m->pages, m->status, &m->r.syscalls);
	if (ret)
		return ret;
	classify(m, n);
	return 0;
}

/*
 * Strict mode's look before the leap, over the whole range: every present
 * page must be movable and the targets must have room for all that must
 * move. Nothing moves here.
 */
static int strict_precheck(struct mover *m, uint64_t start)
{
	int n, ret;

	while ((n = fill_window(m)) > 0) {
		ret = query(m->pid, m->e, n, false, m->pages, m->status, &m->r.syscalls);
		if (ret)
			return ret;
		for (int i = 0; i < n; i++) {
			struct ent *e = &m->e[i];
			bool roomy = false;

			if (e->pre == -EFAULT && !e->zero && m->cur.scan_ok)
				return tiermm__fail(EFAULT,
						    "the page at %#llx is in a mapping move_pages(2) cannot move; nothing was moved",
						    (unsigned long long)e->addr);
			if (e->pre < 0 || bit_test(m->t->is_target, e->pre))
				continue;
			if (choose(m->t, e->pre, (uint64_t)e->npages * page_size(),
				   &roomy) < 0 || !roomy) {
				char list[128];
				size_t off = 0;

				for (int j = 0; j < m->t->n && off < sizeof(list) - 12; j++)
					off += (size_t)snprintf(list + off, sizeof(list) - off,
								"%s%d", j ? "," : "",
								m->t->node[j]);
				return tiermm__fail(ENOSPC,
						    "not enough free memory on node%s %s for the pages to move (checked before moving; nothing was moved)",
						    m->t->n > 1 ? "s" : "", list);
			}
		}
	}
	cursor_rewind(&m->cur, start);
	return 0;
}

static int copy_result(struct tiermm_move_result *dst,
		       const struct tiermm_move_result *src)
{
	size_t sz = dst->sz < sizeof(*src) ? dst->sz : sizeof(*src);
	struct tiermm_move_result r = *src;

	r.sz = sz;
	memcpy(dst, &r, sz);
	return 0;
}

static int result_check(const struct tiermm_move_result *r, const char *what)
{
	if (r && r->sz < offsetof(struct tiermm_move_result, pages) + sizeof(uint64_t))
		return tiermm__fail(EINVAL,
				    "%s: result->sz (%zu) must be set to sizeof(struct tiermm_move_result)",
				    what, r->sz);
	return 0;
}

/*
 * The common body of tiermm_move() and tiermm_move_tier(): t holds the
 * candidate nodes (validated), flags are checked.
 */
static int do_move(pid_t pid, uint64_t start, uint64_t end, unsigned int flags,
		   struct targets *t, struct tiermm_move_result *result)
{
	struct mover m;
	uint64_t t0 = now_ns(), counted;
	int ret = 0, n, saved = errno;

	memset(&m, 0, sizeof(m));
	m.cur.fd = -1;
	m.pid = pid;
	m.flags = flags;
	m.strict = flags & TIERMM_MOVE_STRICT;
	m.mflags = flags & TIERMM_MOVE_SHARED ? P_MPOL_MF_MOVE_ALL : P_MPOL_MF_MOVE;
	m.t = t;
	m.r.pages = (end - start) / page_size();
	m.e = calloc(WINDOW, sizeof(*m.e));
	m.pages = calloc(WINDOW, sizeof(*m.pages));
	m.nodes = calloc(WINDOW, sizeof(*m.nodes));
	m.status = calloc(WINDOW, sizeof(*m.status));
	m.slot = calloc(WINDOW, sizeof(*m.slot));
	if (!m.e || !m.pages || !m.nodes || !m.status || !m.slot) {
		ret = tiermm__fail(ENOMEM, "out of memory");
		goto out;
	}
	ret = probe_process(pid, start);
	if (ret)
		goto out;
	ret = tiermm__range_mapped(pid, start, end);
	if (ret) {
		/* An exiting process has an empty map: say so. */
		if (ret == -EFAULT && pid && probe_process(pid, start) == -ESRCH)
			ret = -ESRCH;
		goto out;
	}
	/* Free memory matters to strict moves and to choosing among nodes. */
	for (int i = 0; i < t->n; i++)
		t->budget[i] = m.strict || t->n > 1 ? node_usable_free(t->node[i]) : INT64_MAX;
	cursor_init(&m.cur, pid, start, end, false);
	if (m.strict) {
		int64_t *budget = malloc(sizeof(*budget) * (size_t)t->n);

		if (!budget) {
			ret = tiermm__fail(ENOMEM, "out of memory");
			goto out;
		}
		memcpy(budget, t->budget, sizeof(*budget) * (size_t)t->n);
		ret = strict_precheck(&m, start);
		/* The real pass starts from the same budgets: same choices. */
		memcpy(t->budget, budget, sizeof(*budget) * (size_t)t->n);
		free(budget);
		if (ret)
			goto out;
	}
	while ((n = fill_window(&m)) > 0) {
		ret = run_window(&m, n);
		if (ret)
			break;
		if (m.strict && m.r.failed) {
			ret = tiermm__fail(m.r.first_error,
					   "the page at %#llx did not move: %s (the %llu pages moved until then stay moved)",
					   (unsigned long long)m.r.first_failed,
					   strerror(m.r.first_error),
					   (unsigned long long)m.r.moved);
			break;
		}
	}
out:
	cursor_fini(&m.cur);
	counted = m.r.moved + m.r.already_there + m.r.not_present + m.r.failed;
	m.r.skipped = m.r.pages > counted ? m.r.pages - counted : 0;
	m.r.elapsed_ns = now_ns() - t0;
	if (result)
		copy_result(result, &m.r);
	free(m.e);
	free(m.pages);
	free(m.nodes);
	free(m.status);
	free(m.slot);
	errno = ret ? -ret : saved;
	return ret;
}

/* Every candidate node exists with memory and pid's cpuset allows it. */
static int check_nodes(pid_t pid, const struct targets *t)
{
	uint64_t mem[NODE_WORDS], allowed[NODE_WORDS];
	int ret = nodes_with_memory(mem);

	if (ret)
		return ret;
	ret = tiermm__mems_allowed(pid, allowed);
	if (ret)
		return ret;
	for (int i = 0; i < t->n; i++) {
		if (!bit_test(mem, t->node[i]))
			return tiermm__fail(ENODEV, "node %d does not exist or has no memory",
					    t->node[i]);
		if (!bit_test(allowed, t->node[i]))
			return tiermm__fail(EACCES,
					    "node %d is not in the cpuset (Mems_allowed) of %s %d",
					    t->node[i], pid ? "process" : "the calling process",
					    pid ? (int)pid : (int)getpid());
	}
	return 0;
}

/* CAP_SYS_NICE in the caller's effective set (CapEff of /proc/self/status). */
static bool have_sys_nice(void)
{
	char *line = NULL;
	size_t cap = 0;
	unsigned long long eff = 0;
	bool found = false;
	FILE *f = fopen("/proc/self/status", "re");

	if (!f)
		return true;	/* cannot tell: let the kernel decide */
	while (!found && getline(&line, &cap, f) > 0)
		found = sscanf(line, "CapEff: %llx", &eff) == 1;
	free(line);
	fclose(f);
	return !found || (eff & (1ULL << 23 /* CAP_SYS_NICE */));
}

static int move_args(pid_t pid, const void *addr, size_t len, unsigned int flags,
		     const struct tiermm_move_result *result, const char *what,
		     uint64_t *start, uint64_t *end)
{
	const unsigned int known = TIERMM_MOVE_STRICT | TIERMM_MOVE_SHARED;
	int ret = result_check(result, what);

	if (ret)
		return ret;
	if (flags & ~known)
		return tiermm__fail(EINVAL, "%s: unknown flags 0x%x", what, flags & ~known);
	if (pid < 0)
		return tiermm__fail(EINVAL, "%s: pid %d is negative", what, (int)pid);
	ret = tiermm__range_check(addr, len, what, start, end);
	if (ret)
		return ret;
	if ((flags & TIERMM_MOVE_SHARED) && !have_sys_nice())
		return tiermm__fail(EPERM, "%s: TIERMM_MOVE_SHARED needs CAP_SYS_NICE", what);
	return 0;
}

int tiermm_move(pid_t pid, const void *addr, size_t len, int node,
		unsigned int flags, struct tiermm_move_result *result)
{
	struct targets t;
	uint64_t start, end;
	int ret, saved = errno;

	ret = move_args(pid, addr, len, flags, result, "tiermm_move", &start, &end);
	if (ret)
		return ret;
	if (node < 0 || node >= TIERMM__MAX_NODES)
		return tiermm__fail(EINVAL, "tiermm_move: node %d is out of range 0..%d",
				    node, TIERMM__MAX_NODES - 1);
	ret = targets_alloc(&t, 1);
	if (ret)
		return ret;
	t.node[0] = node;
	t.is_target[node / 64] |= 1ULL << (node % 64);
	ret = check_nodes(pid, &t);
	if (!ret)
		ret = do_move(pid, start, end, flags, &t, result);
	targets_free(&t);
	if (!ret)
		errno = saved;
	return ret;
}

/*
 * The nodes of tier tier of topo that can take pages of pid on the running
 * kernel, into t (allocated here). Nodes without memory here and nodes
 * outside pid's cpuset are left out; ENODEV or EACCES when none is left.
 */
static int tier_targets(const struct tiermm_topo *topo, int tier, pid_t pid,
			struct targets *t, const char *what)
{
	uint64_t mem[NODE_WORDS], allowed[NODE_WORDS];
	int nr, n = 0, with_mem = 0, ret;

	if (!topo)
		return tiermm__fail(EINVAL, "%s: topo is NULL", what);
	nr = tiermm_topo_nr_tiers(topo);
	if (tier < 0 || tier >= nr)
		return tiermm__fail(ENOENT, "%s: tier %d is not in 0..%d", what, tier, nr - 1);
	ret = nodes_with_memory(mem);
	if (!ret)
		ret = tiermm__mems_allowed(pid, allowed);
	if (ret)
		return ret;
	nr = tiermm_topo_nr_nodes(topo);
	ret = targets_alloc(t, nr);
	if (ret)
		return ret;
	for (int i = 0; i < nr; i++) {
		struct tiermm_node_info info = { .sz = sizeof(info) };
		int os;

		if (tiermm_topo_node(topo, i, &info) || info.tier != tier)
			continue;
		os = info.os_index;
		if (!bit_test(mem, os))
			continue;
		with_mem++;
		if (!bit_test(allowed, os))
			continue;
		t->node[n++] = os;
		t->is_target[os / 64] |= 1ULL << (os % 64);
	}
	t->n = n;
	t->topo = topo;
	if (!n) {
		targets_free(t);
		if (!with_mem)
			return tiermm__fail(ENODEV,
					    "%s: no node of tier %d has memory on this machine",
					    what, tier);
		return tiermm__fail(EACCES,
				    "%s: no node of tier %d is in the cpuset (Mems_allowed) of %s",
				    what, tier, pid ? "the process" : "the calling process");
	}
	return 0;
}

int tiermm_move_tier(const struct tiermm_topo *topo, pid_t pid,
		     const void *addr, size_t len, int tier, unsigned int flags,
		     struct tiermm_move_result *result)
{
	struct targets t;
	uint64_t start, end;
	int ret, saved = errno;

	ret = move_args(pid, addr, len, flags, result, "tiermm_move_tier", &start, &end);
	if (ret)
		return ret;
	ret = tier_targets(topo, tier, pid, &t, "tiermm_move_tier");
	if (ret)
		return ret;
	ret = do_move(pid, start, end, flags, &t, result);
	targets_free(&t);
	if (!ret)
		errno = saved;
	return ret;
}

/* ------------------------------------------------------------- the engine's mover */

/*
 * The tiering engine's primitive (tiering.h): the same windows, retries and
 * verification as tiermm_move_tier(), with the targets prepared once, only
 * present pages walked, and the caller pacing every window.
 */
struct tiermm__mover {
	struct targets t;
	struct mover m;
	uint64_t *low;		/* the target nodes' low watermarks, bytes */
	int64_t free_sum;	/* their usable free memory at the last refresh */
};

void tiermm__mover_free(struct tiermm__mover *mv)
{
	if (!mv)
		return;
	targets_free(&mv->t);
	free(mv->low);
	free(mv->m.e);
	free(mv->m.pages);
	free(mv->m.nodes);
	free(mv->m.status);
	free(mv->m.slot);
	free(mv);
}

int tiermm__mover_new(const struct tiermm_topo *topo, pid_t pid, int tier,
		      struct tiermm__mover **out)
{
	struct tiermm__mover *mv;
	int ret;

	*out = NULL;
	if (pid < 0)
		return tiermm__fail(EINVAL, "mover: pid %d is negative", (int)pid);
	/* The kernel's verdict on pid: exists, has memory, ours to move. */
	ret = probe_process(pid, 0);
	if (ret)
		return ret;
	mv = calloc(1, sizeof(*mv));
	if (!mv)
		return tiermm__fail(ENOMEM, "out of memory");
	ret = tier_targets(topo, tier, pid, &mv->t, "tiering engine");
	if (ret) {
		free(mv);
		return ret;
	}
	mv->m.pid = pid;
	mv->m.mflags = P_MPOL_MF_MOVE;
	mv->m.t = &mv->t;
	mv->m.cur.fd = -1;
	mv->m.e = calloc(WINDOW, sizeof(*mv->m.e));
	mv->m.pages = calloc(WINDOW, sizeof(*mv->m.pages));
	mv->m.nodes = calloc(WINDOW, sizeof(*mv->m.nodes));
	mv->m.status = calloc(WINDOW, sizeof(*mv->m.status));
	mv->m.slot = calloc(WINDOW, sizeof(*mv->m.slot));
	mv->low = calloc((size_t)mv->t.n, sizeof(*mv->low));
	if (!mv->m.e || !mv->m.pages || !mv->m.nodes || !mv->m.status || !mv->m.slot ||
	    !mv->low) {
		tiermm__mover_free(mv);
		return tiermm__fail(ENOMEM, "out of memory");
	}
	/* Watermarks change only with min_free_kbytes or memory hot-plug. */
	for (int i = 0; i < mv->t.n; i++)
		mv->low[i] = node_low_wmark(mv->t.node[i]);
	tiermm__mover_refresh(mv);
	*out = mv;
	return 0;
}

void tiermm__mover_refresh(struct tiermm__mover *mv)
{
	struct targets *t = &mv->t;

	mv->free_sum = 0;
	for (int i = 0; i < t->n; i++) {
		uint64_t f = node_mem_free(t->node[i]);
		int64_t usable = f > mv->low[i] ? (int64_t)(f - mv->low[i]) : 0;

		mv->free_sum += usable;
		t->budget[i] = t->n > 1 ? usable : INT64_MAX;
		t->full[i] = false;
	}
}

uint64_t tiermm__mover_free_bytes(const struct tiermm__mover *mv)
{
	return (uint64_t)mv->free_sum;
}

const int *tiermm__mover_nodes(const struct tiermm__mover *mv, int *n)
{
	*n = mv->t.n;
	return mv->t.node;
}

int tiermm__mover_run(struct tiermm__mover *mv, uint64_t start, uint64_t end,
		      struct tiermm__move_ctl *ctl, struct tiermm_move_result *result)
{
	struct mover *m = &mv->m;
	uint64_t t0 = now_ns(), counted, ps = page_size();
	int ret = 0, n, saved = errno;

	start &= ~(ps - 1);
	end = (end + ps - 1) & ~(ps - 1);
	memset(&m->r, 0, sizeof(m->r));
	m->r.sz = sizeof(m->r);
	m->slept_ns = 0;
	m->ctl = ctl;
	if (ctl) {
		ctl->moved_from = 0;
		ctl->stopped = false;
		ctl->resume = start;
	}
	m->r.pages = end > start ? (end - start) / ps : 0;
	if (end <= start)
		goto done;
	cursor_init(&m->cur, m->pid, start, end, !ctl || !ctl->all_pages);
	for (;;) {
		uint64_t cap = UINT64_MAX;

		if (ctl && ctl->window) {
			m->r.not_present += m->cur.gap;
			m->cur.gap = 0;
			cap = ctl->window(ctl->ctx, &m->r);
			if (!cap) {
				ctl->stopped = true;
				break;
			}
		}
		n = fill_window_cap(m, cap);
		if (n <= 0) {
			if (m->cur.next < m->cur.end && ctl) {
				/* The next entry is larger than the cap. */
				ctl->stopped = true;
			}
			break;
		}
		ret = run_window(m, n);
		if (ret)
			break;
	}
	m->r.not_present += m->cur.gap;
	m->cur.gap = 0;
	if (ctl)
		ctl->resume = m->cur.next < end ? m->cur.next : end;
	cursor_fini(&m->cur);
done:
	counted = m->r.moved + m->r.already_there + m->r.not_present + m->r.failed;
	m->r.skipped = m->r.pages > counted ? m->r.pages - counted : 0;
	m->r.elapsed_ns = now_ns() - t0;
	m->ctl = NULL;
	if (result)
		copy_result(result, &m->r);
	errno = ret ? -ret : saved;
	return ret;
}

/* ------------------------------------------------------------- residency */

/* Walk the range; count[node] += pages, *absent += pages without a node. */
typedef void (*resid_fn)(int node, uint64_t pages, void *ctx);

static int residency_walk(pid_t pid, const void *addr, size_t len,
			  const char *what, resid_fn fn, void *ctx,
			  uint64_t *absent)
{
	struct cursor c;
	struct ent *e;
	void **pages;
	int *status;
	uint64_t start, end;
	int n, ret;

	ret = tiermm__range_check(addr, len, what, &start, &end);
	if (ret)
		return ret;
	if (pid < 0)
		return tiermm__fail(EINVAL, "%s: pid %d is negative", what, (int)pid);
	ret = probe_process(pid, start);
	if (ret)
		return ret;
	ret = tiermm__range_mapped(pid, start, end);
	if (ret)
		return ret;
	e = calloc(WINDOW, sizeof(*e));
	pages = calloc(WINDOW, sizeof(*pages));
	status = calloc(WINDOW, sizeof(*status));
	if (!e || !pages || !status) {
		ret = tiermm__fail(ENOMEM, "out of memory");
		goto out;
	}
	*absent = 0;
	cursor_init(&c, pid, start, end, false);
	for (;;) {
		for (n = 0; n < WINDOW && cursor_next(&c, &e[n]); n++)
			;
		if (!n)
			break;
		ret = query(pid, e, n, false, pages, status, NULL);
		if (ret)
			break;
		for (int i = 0; i < n; i++) {
			if (e[i].pre >= 0)
				fn(e[i].pre, e[i].npages, ctx);
			else
				*absent += e[i].npages;
		}
	}
	cursor_fini(&c);
out:
	free(e);
	free(pages);
	free(status);
	return ret;
}

struct node_counts {
	uint64_t *counts;
	unsigned int nr;
	int top;		/* highest node seen */
};

static void count_node(int node, uint64_t pages, void *ctx)
{
	struct node_counts *nc = ctx;

	if ((unsigned int)node < nc->nr)
		nc->counts[node] += pages;
	if (node > nc->top)
		nc->top = node;
}

int tiermm_residency(pid_t pid, const void *addr, size_t len, uint64_t *counts,
		     unsigned int nr_counts, uint64_t *not_present)
{
	struct node_counts nc = { .top = -1 };
	uint64_t absent = 0;
	int ret, saved = errno;

	if (!counts && nr_counts)
		return tiermm__fail(EINVAL, "tiermm_residency: counts is NULL but nr_counts is %u",
				    nr_counts);
	/* Counted aside and stored only on success: a failure changes nothing. */
	nc.nr = nr_counts < TIERMM__MAX_NODES ? nr_counts : TIERMM__MAX_NODES;
	nc.counts = calloc(TIERMM__MAX_NODES, sizeof(uint64_t));
	if (!nc.counts)
		return tiermm__fail(ENOMEM, "out of memory");
	ret = residency_walk(pid, addr, len, "tiermm_residency", count_node, &nc, &absent);
	if (!ret) {
		if (nr_counts) {
			memset(counts, 0, sizeof(uint64_t) * nr_counts);
			memcpy(counts, nc.counts, sizeof(uint64_t) * nc.nr);
		}
		if (not_present)
			*not_present = absent;
		ret = nc.top + 1;
		errno = saved;
	}
	free(nc.counts);
	return ret;
}

struct tier_counts {
	int16_t tier_of[TIERMM__MAX_NODES];
	uint64_t *counts;
	int unknown_node;	/* -1, or a node the topology lacks */
};

static void count_tier(int node, uint64_t pages, void *ctx)
{
	struct tier_counts *tc = ctx;
	int t = node < TIERMM__MAX_NODES ? tc->tier_of[node] : -1;

	if (t >= 0)
		tc->counts[t] += pages;
	else if (tc->unknown_node < 0)
		tc->unknown_node = node;
}

int tiermm_residency_tiers(const struct tiermm_topo *topo, pid_t pid,
			   const void *addr, size_t len, uint64_t *counts,
			   unsigned int nr_counts, uint64_t *not_present)
{
	struct tier_counts *tc;
	uint64_t absent = 0;
	int nr_tiers, nr_nodes, ret, saved = errno;

	if (!topo)
		return tiermm__fail(EINVAL, "tiermm_residency_tiers: topo is NULL");
	nr_tiers = tiermm_topo_nr_tiers(topo);
	nr_nodes = tiermm_topo_nr_nodes(topo);
	if (!counts || nr_counts < (unsigned int)nr_tiers)
		return tiermm__fail(ERANGE,
				    "tiermm_residency_tiers: counts must have room for the topology's %d tiers (nr_counts is %u)",
				    nr_tiers, counts ? nr_counts : 0);
	tc = calloc(1, sizeof(*tc));
	if (!tc)
		return tiermm__fail(ENOMEM, "out of memory");
	tc->counts = calloc((size_t)nr_tiers, sizeof(uint64_t));
	if (!tc->counts) {
		free(tc);
		return tiermm__fail(ENOMEM, "out of memory");
	}
	tc->unknown_node = -1;
	for (int i = 0; i < TIERMM__MAX_NODES; i++)
		tc->tier_of[i] = -1;
	for (int i = 0; i < nr_nodes; i++) {
		struct tiermm_node_info info = { .sz = sizeof(info) };

		if (!tiermm_topo_node(topo, i, &info) && info.os_index >= 0 &&
		    info.os_index < TIERMM__MAX_NODES)
			tc->tier_of[info.os_index] = (int16_t)info.tier;
	}
	ret = residency_walk(pid, addr, len, "tiermm_residency_tiers", count_tier, tc,
			     &absent);
	if (!ret && tc->unknown_node >= 0)
		ret = tiermm__fail(ENOENT,
				   "tiermm_residency_tiers: pages are on node %d, which the topology does not know (loaded from another machine?)",
				   tc->unknown_node);
	if (!ret) {
		memset(counts, 0, sizeof(uint64_t) * nr_counts);
		memcpy(counts, tc->counts, sizeof(uint64_t) * (size_t)nr_tiers);
		if (not_present)
			*not_present = absent;
		ret = nr_tiers;
		errno = saved;
	}
	free(tc->counts);
	free(tc);
	return ret;
}

/* ------------------------------------------------------------- allocation */

static pthread_once_t live_caps_once = PTHREAD_ONCE_INIT;
static struct tiermm_caps *live_caps;
static int live_caps_err;

/* The probes of the running kernel, whatever TIERMM_FSROOT says. */
static void live_caps_init(void)
{
	TIERMM_OPTS(tiermm_caps_opts, o, .fsroot = "/");
	int ret = tiermm_caps_load(&o, &live_caps);

	live_caps_err = ret < 0 ? -ret : 0;
}

void *tiermm_alloc_tier(const struct tiermm_topo *topo, size_t len, int tier,
			unsigned int flags)
{
	const unsigned int known = TIERMM_ALLOC_PREFERRED | TIERMM_ALLOC_POPULATE;
	unsigned long mask[TIERMM__MAX_NODES / (8 * sizeof(unsigned long))] = { 0 };
	struct targets t;
	size_t l;
	int mode = P_MPOL_BIND, err;
	void *p;

	if (flags & ~known) {
		tiermm__fail(EINVAL, "tiermm_alloc_tier: unknown flags 0x%x", flags & ~known);
		return NULL;
	}
	if (!len) {
		tiermm__fail(EINVAL, "tiermm_alloc_tier: length is 0");
		return NULL;
	}
	l = (len + page_size() - 1) & ~(page_size() - 1);
	if (l < len) {
		tiermm__fail(EINVAL, "tiermm_alloc_tier: length %zu is too large", len);
		return NULL;
	}
	if (tier_targets(topo, tier, 0, &t, "tiermm_alloc_tier"))
		return NULL;
	for (int i = 0; i < t.n; i++) {
		int nd = t.node[i];

		mask[nd / (8 * sizeof(unsigned long))] |= 1UL << (nd % (8 * sizeof(unsigned long)));
	}
	targets_free(&t);
	if (flags & TIERMM_ALLOC_PREFERRED) {
		int state;

		pthread_once(&live_caps_once, live_caps_init);
		if (!live_caps) {
			tiermm__fail(live_caps_err ? live_caps_err : ENOMEM,
				     "tiermm_alloc_tier: cannot probe the kernel");
			return NULL;
		}
		state = tiermm_caps_state(live_caps, TIERMM_CAP_MPOL_PREFERRED_MANY);
		if (state != TIERMM_CAP_PRESENT) {
			tiermm__fail(ENOTSUP,
				     "tiermm_alloc_tier: TIERMM_ALLOC_PREFERRED needs MPOL_PREFERRED_MANY (Linux 5.15): %s",
				     tiermm_caps_detail(live_caps,
							TIERMM_CAP_MPOL_PREFERRED_MANY));
			return NULL;
		}
		mode = P_MPOL_PREFERRED_MANY;
	}
	p = mmap(NULL, l, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		err = errno;
		tiermm__fail(err, "tiermm_alloc_tier: mmap of %zu bytes: %s", l, strerror(err));
		return NULL;
	}
	if (syscall(SYS_mbind, p, (unsigned long)l, mode, mask,
		    (unsigned long)TIERMM__MAX_NODES + 1, 0UL)) {
		err = errno;
		munmap(p, l);
		tiermm__fail(err, "tiermm_alloc_tier: mbind(%s) to tier %d: %s",
			     mode == P_MPOL_BIND ? "MPOL_BIND" : "MPOL_PREFERRED_MANY", tier,
			     strerror(err));
		return NULL;
	}
	if ((flags & TIERMM_ALLOC_POPULATE) && madvise(p, l, MADV_POPULATE_WRITE)) {
		err = errno;
		munmap(p, l);
		if (err == EINVAL)
			tiermm__fail(ENOTSUP,
				     "tiermm_alloc_tier: TIERMM_ALLOC_POPULATE needs MADV_POPULATE_WRITE (Linux 5.14)");
		else
			tiermm__fail(err, "tiermm_alloc_tier: populating %zu bytes on tier %d: %s",
				     l, tier, strerror(err));
		return NULL;
	}
	return p;
}

int tiermm_free(void *ptr, size_t len)
{
	uint64_t start, end;
	int ret, saved = errno;

	if (!ptr)
		return tiermm__fail(EINVAL, "tiermm_free: ptr is NULL");
	ret = tiermm__range_check(ptr, len, "tiermm_free", &start, &end);
	if (ret)
		return ret;
	if (munmap(ptr, (size_t)(end - start))) {
		ret = errno;
		return tiermm__fail(ret, "tiermm_free: munmap: %s", strerror(ret));
	}
	tiermm__hints_clear(start, end);
	errno = saved;
	return 0;
}

/* ------------------------------------------------------------- topology */

static pthread_once_t live_topo_once = PTHREAD_ONCE_INIT;
static struct tiermm_topo *live_topo;
static int live_topo_err;

static void live_topo_init(void)
{
	int ret = tiermm_topo_load(NULL, &live_topo);

	live_topo_err = ret < 0 ? -ret : 0;
}

const struct tiermm_topo *tiermm__live_topo(void)
{
	pthread_once(&live_topo_once, live_topo_init);
	if (!live_topo)
		tiermm__fail(live_topo_err ? live_topo_err : ENOMEM,
			     "cannot load the topology of this machine: %s",
			     strerror(live_topo_err ? live_topo_err : ENOMEM));
	return live_topo;
}
