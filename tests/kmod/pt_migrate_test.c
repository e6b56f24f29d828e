// SPDX-License-Identifier: GPL-2.0
/*
 * pt_migrate_test: exercises TIERMM_IOC_PT_MIGRATE of a loaded tiermm.ko in a
 * NUMA test guest (tests/vm/run), as root.
 *
 *   pt_migrate_test [--device DEV] [--seconds N | --quick] [--only LIST]
 *	the checks, TAP on stdout. LIST is a comma-separated subset of
 *	locality, stress, thp, errors (default: all). --seconds is the length
 *	of the stress test (default 60; --quick: 10).
 *
 *   pt_migrate_test --loop [--seconds N] [--interval-ms MS] [--comm NAME]...
 *	until killed (or for N seconds): migrate the page tables of every
 *	user process (or those whose comm is one of the NAMEs) to node 0,
 *	node 1, AUTO, ... in turn, MS milliseconds apart (default 20). For
 *	running other programs (Linux's mm selftests) under migration. Prints
 *	a summary when it ends (SIGTERM/SIGINT too); exit status 1 if a call
 *	failed with an error other than ESRCH (gone) and EINVAL (kernel
 *	thread or exiting), else 0.
 *
 * The checks:
 *  locality - a child maps 64 MiB on node A (its CPUs and memory), its data
 *	and its CPU affinity then move to node B: PT_STAT sees its leaf tables
 *	remote; PT_MIGRATE AUTO makes every table of the process local; each
 *	memory node can be a target; repeated calls move nothing; the data and
 *	the process are unharmed.
 *  stress - a child with writer threads (anonymous, THP and shared-memory
 *	slices, each verifying its pattern), and threads that mmap, mprotect,
 *	mremap, munmap, split THPs, fork (the child verifies data), vmsplice
 *	(GUP-fast), and re-dirty MADV_FREE pages (a lost dirty bit lets reclaim
 *	discard written data) in a loop, while this process migrates its page
 *	tables between nodes A and B and AUTO, and another thread moves its
 *	data pages between the nodes (migration entries) and reclaims its
 *	memory cgroup; PT_STAT is read too. khugepaged is sped up and NUMA
 *	balancing is on. Afterwards the child's data must be intact and
 *	nr_page_table_pages (/proc/vmstat, folded with vm.stat_refresh)
 *	exactly back at its value before the child was started.
 *  thp - THPs migrated with their deposited page tables, then split
 *	(MADV_DONTNEED, mprotect): the PTE tables that appear come from the
 *	deposits and are on the target node; data intact.
 *  errors - invalid arguments, nodes, levels, ranges, permissions, gone
 *	processes: each fails as documented and changes nothing.
 *
 * Nodes: A is node 0, B the next node with memory and CPUs. Without two
 * such nodes (or without PT_STAT) the checks that need them are skipped.
 *
 * Plain C plus Linux syscalls, libc and pthreads only (static, for the
 * busybox guest). Exit status 0 only when every check passed, 1 otherwise,
 * 2 on bad usage.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "linux/tiermm.h"

#define PAGE		4096UL
#define PMD_SZ		(2UL << 20)
#define MAX_NODES	64
#define NR_LEVELS	TIERMM_PT_NR_LEVELS
#define WHOLE_LEN	0x7ffffffff000ULL	/* all of a 47-bit user space */
#define NOBODY		65534
#define MPOL_MF_MOVE_	(1 << 1)

#define LOC_LEN		(64UL << 20)		/* locality: 32 PTE tables */
#define LOC_TABLES	(LOC_LEN / PMD_SZ)

#define ST_WRITERS	4
#define ST_SLICE	(8UL << 20)
#define ST_FORKLEN	(4UL << 20)

#define THP_LEN		(16UL << 20)		/* 8 THPs */

static const char *const skip_name[TIERMM_SKIP_NR] = {
	"already", "no_data", "nomem", "huge", "busy", "5", "6", "7",
};

/* ---------------------------------------------------------------- TAP -- */

static int n_checks;
static int n_failed;

static void vline(bool ok, const char *skipped, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));
static bool check(bool ok, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void skip(const char *why, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void vline(bool ok, const char *skipped, const char *fmt, va_list ap)
{
	n_checks++;
	if (!ok)
		n_failed++;
	printf("%sok %d - ", ok ? "" : "not ", n_checks);
	vprintf(fmt, ap);
	if (skipped)
		printf(" # SKIP %s", skipped);
	putchar('\n');
	fflush(stdout);
}

/* One TAP line; returns ok so that callers can add diagnostics. */
static bool check(bool ok, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vline(ok, NULL, fmt, ap);
	va_end(ap);
	return ok;
}

static void skip(const char *why, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vline(true, why, fmt, ap);
	va_end(ap);
}

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
	static char buf[32];

	switch (err) {
	case 0:		return "success";
	case EINVAL:	return "EINVAL";
	case EPERM:	return "EPERM";
	case EACCES:	return "EACCES";
	case ESRCH:	return "ESRCH";
	case ENOTTY:	return "ENOTTY";
	case EFAULT:	return "EFAULT";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case EINTR:	return "EINTR";
	case ENOMEM:	return "ENOMEM";
	}
	snprintf(buf, sizeof(buf), "errno %d", err);
	return buf;
}

/* ------------------------------------------------------------ helpers -- */

static const char *dev_path = "/dev/" TIERMM_DEVICE_NAME;
static int dev_fd = -1;
static int nr_node_ids;			/* /sys/devices/system/node/possible */
static bool mem_node[MAX_NODES];	/* has_memory */
static bool cpu_node[MAX_NODES];	/* has_cpu */
static int node_a = -1, node_b = -1;	/* memory + CPUs */
static bool have_stat;			/* PT_STAT answers */

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
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

/* A sysctl or sysfs value saved by set_knob() and put back by restore. */
struct knob {
	const char *path;
	char old[64];
	bool saved;
};

static bool set_knob(struct knob *k, const char *path, const char *val)
{
	k->path = path;
	k->saved = read_file(path, k->old, sizeof(k->old)) == 0;
	if (!k->saved)
		return false;
	k->old[strcspn(k->old, "\n")] = '\0';
	return write_file(path, val) == 0;
}

static void restore_knob(struct knob *k)
{
	if (k->saved)
		write_file(k->path, k->old);
	k->saved = false;
}

/* Calls fn(n, arg) for every number in a sysfs list such as "0-1,3". */
static void list_each(const char *s, void (*fn)(int, void *), void *arg)
{
	while (*s) {
		char *end;
		long a = strtol(s, &end, 10), b, i;

		if (end == s)
			return;
		b = a;
		s = end;
		if (*s == '-') {
			b = strtol(s + 1, &end, 10);
			s = end;
		}
		for (i = a; i <= b; i++)
			fn((int)i, arg);
		while (*s == ',' || *s == '\n')
			s++;
	}
}

static void set_flag(int n, void *arg)
{
	if (n >= 0 && n < MAX_NODES)
		((bool *)arg)[n] = true;
}

static void max_of(int n, void *arg)
{
	if (n > *(int *)arg)
		*(int *)arg = n;
}

static void cpu_add(int n, void *arg)
{
	if (n >= 0 && n < CPU_SETSIZE)
		CPU_SET(n, (cpu_set_t *)arg);
}

static bool node_cpus(int node, cpu_set_t *set)
{
	char path[96], buf[512];

	CPU_ZERO(set);
	snprintf(path, sizeof(path), "/sys/devices/system/node/node%d/cpulist",
		 node);
	if (read_file(path, buf, sizeof(buf)))
		return false;
	list_each(buf, cpu_add, set);
	return CPU_COUNT(set) > 0;
}

static void read_topology(void)
{
	char buf[512];
	int n, max = -1;

	if (!read_file("/sys/devices/system/node/possible", buf, sizeof(buf)))
		list_each(buf, max_of, &max);
	nr_node_ids = max + 1;
	if (nr_node_ids < 1)
		nr_node_ids = 1;
	if (nr_node_ids > MAX_NODES)
		nr_node_ids = MAX_NODES;
	if (!read_file("/sys/devices/system/node/has_memory", buf, sizeof(buf)))
		list_each(buf, set_flag, mem_node);
	else
		mem_node[0] = true;
	if (!read_file("/sys/devices/system/node/has_cpu", buf, sizeof(buf)))
		list_each(buf, set_flag, cpu_node);
	else
		cpu_node[0] = true;
	for (n = 0; n < nr_node_ids; n++) {
		if (!mem_node[n] || !cpu_node[n])
			continue;
		if (node_a < 0)
			node_a = n;
		else if (node_b < 0)
			node_b = n;
	}
}

/* nr_page_table_pages after folding the per-CPU counters. */
static long nr_page_table_pages(void)
{
	char buf[8192], *p;

	write_file("/proc/sys/vm/stat_refresh", "1");
	if (read_file("/proc/vmstat", buf, sizeof(buf)))
		return -1;
	p = strstr(buf, "nr_page_table_pages ");
	return p ? strtol(p + strlen("nr_page_table_pages "), NULL, 10) : -1;
}

/* PageTables of a node's meminfo, in KiB, or -1. */
static long node_pagetables_kb(int node)
{
	char path[96], buf[4096], *p;

	write_file("/proc/sys/vm/stat_refresh", "1");
	snprintf(path, sizeof(path), "/sys/devices/system/node/node%d/meminfo",
		 node);
	if (read_file(path, buf, sizeof(buf)))
		return -1;
	p = strstr(buf, "PageTables:");
	return p ? strtol(p + strlen("PageTables:"), NULL, 10) : -1;
}

/* move_pages(2) without libnuma: pages moved to node (status == node). */
static unsigned long move_range(pid_t pid, char *addr, unsigned long len,
				int node)
{
	enum { BATCH = 512 };
	void *pages[BATCH];
	int nodes[BATCH], status[BATCH];
	unsigned long done = 0, off, n, i;

	for (off = 0; off < len; off += n * PAGE) {
		n = (len - off) / PAGE;
		if (n > BATCH)
			n = BATCH;
		for (i = 0; i < n; i++) {
			pages[i] = addr + off + i * PAGE;
			nodes[i] = node;
			status[i] = -1;
		}
		if (syscall(SYS_move_pages, pid, n, pages, nodes, status,
			    MPOL_MF_MOVE_) < 0)
			continue;
		for (i = 0; i < n; i++)
			done += status[i] == node;
	}
	return done;
}

static char *map_anon(size_t len, size_t align)
{
	size_t total = len + align;
	char *p = mmap(NULL, total, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uintptr_t a;

	if (p == MAP_FAILED)
		return NULL;
	a = ((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1);
	if (a > (uintptr_t)p)
		munmap(p, a - (uintptr_t)p);
	if ((uintptr_t)p + total > a + len)
		munmap((char *)(a + len), (uintptr_t)p + total - (a + len));
	return (char *)a;
}

static uint64_t pattern(uint64_t seed, uint64_t i)
{
	uint64_t x = (seed + i) * 0x9e3779b97f4a7c15ULL;

	return x ^ (x >> 29);
}

static void fill(char *p, size_t len, uint64_t seed)
{
	uint64_t *w = (uint64_t *)p;
	size_t i;

	for (i = 0; i < len / 8; i++)
		w[i] = pattern(seed, i);
}

/* Index of the first word that differs from the pattern, or -1. */
static long verify(const char *p, size_t len, uint64_t seed)
{
	const volatile uint64_t *w = (const volatile uint64_t *)p;
	size_t i;

	for (i = 0; i < len / 8; i++)
		if (w[i] != pattern(seed, i))
			return (long)i;
	return -1;
}

/* ------------------------------------------------------- the commands -- */

static int do_migrate(struct tiermm_pt_migrate *m, pid_t pid, uint64_t start,
		      uint64_t len, int node, uint32_t levels)
{
	memset(m, 0, sizeof(*m));
	m->argsz = sizeof(*m);
	m->pid = pid;
	m->start = start;
	m->len = len;
	m->node = node;
	m->levels = levels;
	return ioctl(dev_fd, TIERMM_IOC_PT_MIGRATE, m) ? errno : 0;
}

static void migrate_diag(const char *what, const struct tiermm_pt_migrate *m)
{
	diag("%s: moved pte %" PRIu64 " pmd %" PRIu64 " pud %" PRIu64
	     "; skipped already %" PRIu64 " no_data %" PRIu64 " nomem %" PRIu64
	     " huge %" PRIu64 " busy %" PRIu64, what,
	     (uint64_t)m->moved[0], (uint64_t)m->moved[1],
	     (uint64_t)m->moved[2],
	     (uint64_t)m->skipped[0], (uint64_t)m->skipped[1],
	     (uint64_t)m->skipped[2], (uint64_t)m->skipped[3],
	     (uint64_t)m->skipped[4]);
}

struct stat_res {
	struct tiermm_pt_stat a;
	uint64_t tables[MAX_NODES][NR_LEVELS];
	uint64_t leaf[MAX_NODES];
	uint64_t data[MAX_NODES];
};

static int do_stat(struct stat_res *r, pid_t pid, uint64_t start, uint64_t len)
{
	memset(r, 0, sizeof(*r));
	r->a.argsz = sizeof(r->a);
	r->a.pid = pid;
	r->a.nr_nodes = MAX_NODES;
	r->a.start = start;
	r->a.len = len;
	r->a.tables_ptr = (uintptr_t)r->tables;
	r->a.leaf_ptr = (uintptr_t)r->leaf;
	r->a.data_ptr = (uintptr_t)r->data;
	return ioctl(dev_fd, TIERMM_IOC_PT_STAT, &r->a) ? errno : 0;
}

static uint64_t tables_on(const struct stat_res *r, int node, int level)
{
	return r->tables[node][level];
}

static uint64_t tables_all(const struct stat_res *r, int level)
{
	uint64_t s = 0;
	int n;

	for (n = 0; n < nr_node_ids; n++)
		s += r->tables[n][level];
	return s;
}

static void stat_diag(const char *what, const struct stat_res *r)
{
	char line[512];
	int n, l, off;

	for (l = 0; l < 3; l++) {
		off = snprintf(line, sizeof(line), "%s: level %d local %" PRIu64
			       " remote %" PRIu64 " empty %" PRIu64 "; per node",
			       what, l, (uint64_t)r->a.tables_local[l],
			       (uint64_t)r->a.tables_remote[l],
			       (uint64_t)r->a.tables_empty[l]);
		for (n = 0; n < nr_node_ids && off < (int)sizeof(line) - 24; n++)
			off += snprintf(line + off, sizeof(line) - off,
					" %" PRIu64, r->tables[n][l]);
		diag("%s", line);
	}
}

/* -------------------------------------------------- a commanded child -- */

/*
 * A child process driven over two pipes: it runs fn, which reads one-byte
 * commands and answers each with one byte.
 */
struct child {
	pid_t pid;
	int cmd;	/* write end */
	int ans;	/* read end */
};

static bool child_start(struct child *c, void (*fn)(int cmd, int ans))
{
	int to[2], from[2];

	if (pipe2(to, O_CLOEXEC) || pipe2(from, O_CLOEXEC))
		return false;
	fflush(stdout);
	c->pid = fork();
	if (c->pid < 0)
		return false;
	if (c->pid == 0) {
		close(to[1]);
		close(from[0]);
		fn(to[0], from[1]);
		_exit(0);
	}
	close(to[0]);
	close(from[1]);
	c->cmd = to[1];
	c->ans = from[0];
	return true;
}

/* Send cmd, return the answer byte (0 if the child is gone). */
static char child_ask(struct child *c, char cmd)
{
	char a = 0;

	if (write(c->cmd, &cmd, 1) != 1 || read(c->ans, &a, 1) != 1)
		return 0;
	return a;
}

static bool child_read(struct child *c, void *buf, size_t len)
{
	return read(c->ans, buf, len) == (ssize_t)len;
}

/* Close its command pipe and reap it; its exit status or -1. */
static int child_end(struct child *c)
{
	int st;

	close(c->cmd);
	close(c->ans);
	if (waitpid(c->pid, &st, 0) != c->pid)
		return -1;
	if (WIFSIGNALED(st)) {
		diag("child %d killed by signal %d", (int)c->pid, WTERMSIG(st));
		return -1;
	}
	return WEXITSTATUS(st);
}

static void pin_to_node(pid_t pid, int node)
{
	cpu_set_t set;

	if (node_cpus(node, &set))
		sched_setaffinity(pid, sizeof(set), &set);
}

/* ------------------------------------------------------------ locality -- */

#define LOC_SEED	0x10c

/* The locality child's reader thread: checks the region over and over. */
static char *loc_region;
static atomic_ulong loc_passes;
static atomic_bool loc_bad;
static atomic_int loc_reader_tid;

static void *loc_reader(void *arg)
{
	(void)arg;
	atomic_store(&loc_reader_tid, (int)syscall(SYS_gettid));
	for (;;) {
		if (verify(loc_region, LOC_LEN, LOC_SEED) >= 0)
			atomic_store(&loc_bad, true);
		atomic_fetch_add(&loc_passes, 1);
	}
	return NULL;
}

/*
 * Commands: 'm' move the data to node_b and run there; 'v' verify: the
 * region holds its pattern and the reader thread, which keeps reading it
 * meanwhile, has made progress since the last 'v' and never saw it
 * differ; 'q' (or EOF) exit. The region's address is sent first.
 */
static void locality_child(int cmd, int ans)
{
	unsigned long seen = 0, passes;
	pthread_t reader;
	char c, r, *p;

	pin_to_node(0, node_a);
	p = map_anon(LOC_LEN, PMD_SZ);
	if (!p)
		_exit(3);
	madvise(p, LOC_LEN, MADV_NOHUGEPAGE);	/* 4 KiB pages: PTE tables */
	fill(p, LOC_LEN, LOC_SEED);
	loc_region = p;
	if (pthread_create(&reader, NULL, loc_reader, NULL))
		_exit(3);
	if (write(ans, &p, sizeof(p)) != sizeof(p))
		_exit(3);
	while (read(cmd, &c, 1) == 1 && c != 'q') {
		r = 'y';
		if (c == 'm') {
			if (move_range(0, p, LOC_LEN, node_b) != LOC_LEN / PAGE)
				r = 'n';
			pin_to_node(0, node_b);
			while (!atomic_load(&loc_reader_tid))
				sched_yield();
			pin_to_node(atomic_load(&loc_reader_tid), node_b);
		} else if (c == 'v') {
			while ((passes = atomic_load(&loc_passes)) == seen)
				sched_yield();
			seen = passes;
			if (verify(p, LOC_LEN, LOC_SEED) >= 0 ||
			    atomic_load(&loc_bad))
				r = 'n';
		}
		if (write(ans, &r, 1) != 1)
			_exit(3);
	}
	_exit(verify(p, LOC_LEN, LOC_SEED) < 0 && !atomic_load(&loc_bad) ? 0 : 1);
}

static void test_locality(void)
{
	struct tiermm_pt_migrate m;
	struct stat_res before, st;
	struct child c;
	char *region;
	uint64_t start;
	long pa, pb;
	int err, n, l;
	double t;

	if (node_b < 0) {
		skip("needs two nodes with memory and CPUs", "locality");
		return;
	}
	if (!check(child_start(&c, locality_child), "locality: child started"))
		return;
	if (!check(child_read(&c, &region, sizeof(region)),
		   "locality: child mapped and filled %lu MiB on node %d",
		   LOC_LEN >> 20, node_a))
		goto out;
	start = (uintptr_t)region;

	if (have_stat) {
		err = do_stat(&before, c.pid, start, LOC_LEN);
		check(!err && tables_on(&before, node_a, TIERMM_PT_PTE) ==
			      LOC_TABLES,
		      "locality: its %lu PTE tables are on node %d (%s)",
		      LOC_TABLES, node_a, errname(err));
	}

	check(child_ask(&c, 'm') == 'y',
	      "locality: its data and CPUs moved to node %d", node_b);
	if (have_stat) {
		err = do_stat(&st, c.pid, start, LOC_LEN);
		if (!check(!err && st.a.tables_remote[TIERMM_PT_PTE] == LOC_TABLES,
			   "locality: PT_STAT: all %lu leaf tables remote",
			   LOC_TABLES))
			stat_diag("region", &st);
	}

	pa = node_pagetables_kb(node_a);
	pb = node_pagetables_kb(node_b);
	t = now();
	err = do_migrate(&m, c.pid, 0, WHOLE_LEN, TIERMM_NODE_AUTO,
			 TIERMM_PT_MIGRATE_ALL);
	t = now() - t;
	if (check(!err, "locality: PT_MIGRATE AUTO of the whole process (%s)",
		  errname(err)))
		migrate_diag("AUTO", &m);
	diag("AUTO took %.3f s; PageTables node %d %ld -> %ld kB, node %d %ld -> %ld kB",
	     t, node_a, pa, node_pagetables_kb(node_a), node_b, pb,
	     node_pagetables_kb(node_b));
	check(m.moved[TIERMM_PT_PTE] >= LOC_TABLES,
	      "locality: moved at least the region's %lu PTE tables (%" PRIu64 ")",
	      LOC_TABLES, (uint64_t)m.moved[TIERMM_PT_PTE]);

	if (have_stat) {
		err = do_stat(&st, c.pid, 0, WHOLE_LEN);
		if (!check(!err && !st.a.tables_remote[TIERMM_PT_PTE] &&
			   !st.a.tables_remote[TIERMM_PT_PMD] &&
			   !st.a.tables_remote[TIERMM_PT_PUD],
			   "locality: PT_STAT: every table of the process local"))
			stat_diag("whole", &st);
		err = do_stat(&st, c.pid, start, LOC_LEN);
		check(!err && tables_on(&st, node_b, TIERMM_PT_PTE) == LOC_TABLES,
		      "locality: the region's PTE tables are on node %d",
		      node_b);
		check(!err && tables_all(&st, TIERMM_PT_PMD) &&
		      tables_on(&st, node_b, TIERMM_PT_PMD) ==
		      tables_all(&st, TIERMM_PT_PMD),
		      "locality: and so are its PMD tables (%" PRIu64 ")",
		      tables_all(&st, TIERMM_PT_PMD));
	}

	/* Again: nothing to do. */
	err = do_migrate(&m, c.pid, 0, WHOLE_LEN, TIERMM_NODE_AUTO,
			 TIERMM_PT_MIGRATE_ALL);
	if (!check(!err && !m.moved[0] && !m.moved[1] && !m.moved[2] &&
		   m.skipped[TIERMM_SKIP_ALREADY] >= LOC_TABLES,
		   "locality: a second AUTO moves nothing"))
		migrate_diag("second AUTO", &m);

	/* Every memory node as an explicit target, one level at a time. */
	for (n = 0; n < nr_node_ids; n++) {
		if (!mem_node[n])
			continue;
		for (l = TIERMM_PT_PTE; l <= TIERMM_PT_PUD; l++) {
			err = do_migrate(&m, c.pid, start, LOC_LEN, n, 1U << l);
			if (!check(!err && (m.moved[l] || m.skipped[TIERMM_SKIP_ALREADY]),
				   "locality: level %d to node %d (%s)", l, n,
				   errname(err)))
				migrate_diag("explicit", &m);
		}
		if (have_stat) {
			err = do_stat(&st, c.pid, start, LOC_LEN);
			/* (a region may cross a 1 GiB boundary) */
			if (!check(!err &&
				   tables_on(&st, n, TIERMM_PT_PTE) == LOC_TABLES &&
				   tables_on(&st, n, TIERMM_PT_PMD) ==
				   tables_all(&st, TIERMM_PT_PMD) &&
				   tables_on(&st, n, TIERMM_PT_PUD) ==
				   tables_all(&st, TIERMM_PT_PUD) &&
				   tables_all(&st, TIERMM_PT_PUD) >= 1,
				   "locality: PT_STAT: the region's tables are on node %d",
				   n))
				stat_diag("region", &st);
		}
		check(child_ask(&c, 'v') == 'y',
		      "locality: data intact after the move to node %d", n);
	}

	err = do_migrate(&m, c.pid, 0, WHOLE_LEN, TIERMM_NODE_AUTO,
			 TIERMM_PT_MIGRATE_ALL);
	check(!err, "locality: back with AUTO (%s)", errname(err));
	if (have_stat) {
		err = do_stat(&st, c.pid, 0, WHOLE_LEN);
		if (!check(!err && !st.a.tables_remote[0] &&
			   !st.a.tables_remote[1] && !st.a.tables_remote[2],
			   "locality: PT_STAT: local again"))
			stat_diag("whole", &st);
	}
	check(child_ask(&c, 'v') == 'y', "locality: data intact");
out:
	check(child_end(&c) == 0, "locality: child verified its data and exited");
}

/* -------------------------------------------------------------- stress -- */

/* Shared by the stress child's threads. */
static atomic_bool st_stop;
static atomic_int st_errors;
static atomic_ulong st_rounds[8];	/* per thread kind */
static char *st_slice[ST_WRITERS];
static char *st_fork;		/* fixed pattern, never written after setup */
static int st_memfd = -1;

#define ST_FORK_SEED	0xf0f0

static void st_fail(const char *what, long i)
{
	atomic_fetch_add(&st_errors, 1);
	fprintf(stderr, "# stress child: %s (%ld)\n", what, i);
}

/* Each page: three words holding (writer, generation, page). */
static uint64_t st_word(int w, uint64_t gen, size_t page, int k)
{
	return ((uint64_t)w << 60) ^ (gen << 24) ^ ((uint64_t)page << 2) ^
	       (uint64_t)k;
}

static void *st_writer(void *arg)
{
	int w = (int)(intptr_t)arg;
	char *p = st_slice[w];
	size_t npages = ST_SLICE / PAGE, i;
	const size_t off[3] = { 0, PAGE / 2, PAGE - 8 };
	uint64_t gen = 0;
	int k;

	while (!atomic_load(&st_stop)) {
		gen++;
		for (i = 0; i < npages; i++)
			for (k = 0; k < 3; k++) {
				volatile uint64_t *x =
					(volatile uint64_t *)(p + i * PAGE + off[k]);

				if (gen > 1 && *x != st_word(w, gen - 1, i, k)) {
					st_fail("writer: lost update", (long)i);
					return NULL;
				}
				*x = st_word(w, gen, i, k);
			}
		atomic_fetch_add(&st_rounds[0], 1);
	}
	return NULL;
}

/* mmap, touch, mprotect, mremap, munmap. */
static void *st_churn(void *arg)
{
	const size_t len = 4UL << 20;
	char *p, *q;

	(void)arg;
	while (!atomic_load(&st_stop)) {
		p = mmap(NULL, len, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			continue;
		fill(p, len, 7);
		mprotect(p + (1UL << 20), 1UL << 20, PROT_READ);
		if (verify(p, len, 7) >= 0)
			st_fail("churn: after mprotect", 0);
		mprotect(p + (1UL << 20), 1UL << 20, PROT_READ | PROT_WRITE);
		q = mremap(p, len, 2 * len, MREMAP_MAYMOVE);
		if (q == MAP_FAILED) {
			munmap(p, len);
			continue;
		}
		memset(q + len, 0x5a, len);
		if (verify(q, len, 7) >= 0)
			st_fail("churn: after mremap", 0);
		munmap(q + len / 2, len / 4);	/* a hole */
		if (verify(q, len / 2, 7) >= 0)
			st_fail("churn: after munmap", 0);
		munmap(q, 2 * len);
		atomic_fetch_add(&st_rounds[1], 1);
	}
	return NULL;
}

/* Whether words [first, first + n) of p hold pattern(seed, first + i). */
static bool words_ok(const char *p, size_t first, size_t n, uint64_t seed)
{
	const volatile uint64_t *w = (const volatile uint64_t *)p;
	size_t i;

	for (i = first; i < first + n; i++)
		if (w[i] != pattern(seed, i))
			return false;
	return true;
}

/* THPs made, split by MADV_DONTNEED and mprotect, unmapped. */
static void *st_thp(void *arg)
{
	const size_t len = 8UL << 20, wpp = PAGE / 8;
	size_t off;
	char *p;

	(void)arg;
	while (!atomic_load(&st_stop)) {
		p = map_anon(len, PMD_SZ);
		if (!p)
			continue;
		madvise(p, len, MADV_HUGEPAGE);
		fill(p, len, 11);
		for (off = 0; off < len; off += PMD_SZ)
			madvise(p + off + 8 * PAGE, PAGE, MADV_DONTNEED);
		mprotect(p + PMD_SZ + PMD_SZ / 2, PMD_SZ, PROT_READ);
		for (off = 0; off < len; off += PMD_SZ) {
			if (!words_ok(p, off / 8, 8 * wpp, 11) ||
			    !words_ok(p, off / 8 + 9 * wpp, 4 * wpp, 11))
				st_fail("thp: data after split", (long)off);
			if (*(volatile uint64_t *)(p + off + 8 * PAGE) != 0)
				st_fail("thp: MADV_DONTNEED page not zero",
					(long)off);
		}
		munmap(p, len);
		atomic_fetch_add(&st_rounds[2], 1);
	}
	return NULL;
}

/*
 * Dirty bits: pages freed lazily (MADV_FREE) are discarded by reclaim
 * unless written again, which the kernel learns from the PTE's dirty bit
 * alone. Each round frees the region, writes one word per page (the MMU
 * sets the dirty bit) and checks that word until the next round, while
 * the parent keeps reclaiming the child's memory cgroup. A dirty bit lost
 * by a table migration lets reclaim throw a written page away: the word
 * then reads 0. (A page discarded before the write is legitimate: the
 * write faults in a new page.)
 */
static void *st_lazyfree(void *arg)
{
	const size_t len = 4UL << 20, npages = len / PAGE;
	uint64_t gen = 0;
	size_t i;
	char *p;
	int k;

	(void)arg;
	p = map_anon(len, PMD_SZ);
	if (!p)
		return NULL;
	madvise(p, len, MADV_NOHUGEPAGE);
	while (!atomic_load(&st_stop)) {
		gen++;
		memset(p, 0x33, len);
		if (madvise(p, len, MADV_FREE))
			break;
		for (i = 0; i < npages; i++)
			*(volatile uint64_t *)(p + i * PAGE) = st_word(7, gen, i, 0);
		/* Pages discarded before the write: reclaim did run. */
		for (i = 0; i < npages; i++)
			if (*(volatile uint64_t *)(p + i * PAGE + 8) == 0)
				atomic_fetch_add(&st_rounds[6], 1);
		for (k = 0; k < 20 && !atomic_load(&st_stop); k++)
			for (i = 0; i < npages; i++)
				if (*(volatile uint64_t *)(p + i * PAGE) !=
				    st_word(7, gen, i, 0)) {
					st_fail("lazyfree: written page discarded",
						(long)i);
					return NULL;
				}
		atomic_fetch_add(&st_rounds[5], 1);
	}
	munmap(p, len);
	return NULL;
}

/* fork: the child checks the fixed region and exits. */
static void *st_fork_thread(void *arg)
{
	pid_t pid;
	int status;

	(void)arg;
	while (!atomic_load(&st_stop)) {
		pid = fork();
		if (pid == 0)
			_exit(verify(st_fork, ST_FORKLEN, ST_FORK_SEED) < 0 ? 0 : 1);
		if (pid < 0)
			continue;
		if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
		    WEXITSTATUS(status) != 0)
			st_fail("fork: child saw wrong data", status);
		atomic_fetch_add(&st_rounds[3], 1);
	}
	return NULL;
}

/* vmsplice (GUP-fast on the fixed region) and read it back. */
static void *st_gup(void *arg)
{
	static char buf[64 * 1024];
	size_t off = 0;
	struct iovec iov;
	int fds[2];
	ssize_t n, got;

	(void)arg;
	if (pipe(fds))
		return NULL;
	fcntl(fds[1], F_SETPIPE_SZ, (int)sizeof(buf));
	while (!atomic_load(&st_stop)) {
		iov.iov_base = st_fork + off;
		iov.iov_len = sizeof(buf);
		n = vmsplice(fds[1], &iov, 1, 0);
		if (n <= 0)
			continue;
		for (got = 0; got < n;) {
			ssize_t r = read(fds[0], buf + got, (size_t)(n - got));

			if (r <= 0)
				break;
			got += r;
		}
		if (got != n || memcmp(buf, st_fork + off, (size_t)n))
			st_fail("vmsplice: data differs", (long)off);
		off = (off + sizeof(buf)) % ST_FORKLEN;
		atomic_fetch_add(&st_rounds[4], 1);
	}
	close(fds[0]);
	close(fds[1]);
	return NULL;
}

/*
 * The stress child. Sends its slice addresses, runs until its command
 * pipe closes, then checks everything and exits 0 if all was right.
 */
static void stress_child(int cmd, int ans)
{
	void *(*fns[])(void *) = { st_churn, st_thp, st_fork_thread, st_gup,
				   st_lazyfree };
	pthread_t wt[ST_WRITERS], ot[5];
	char c;
	int i;

	st_fork = map_anon(ST_FORKLEN, PMD_SZ);
	if (!st_fork)
		_exit(3);
	fill(st_fork, ST_FORKLEN, ST_FORK_SEED);
	for (i = 0; i < ST_WRITERS; i++) {
		if (i == 2) {	/* shared memory: file rmap, shmem */
			st_memfd = memfd_create("pt_migrate_test", MFD_CLOEXEC);
			if (st_memfd < 0 || ftruncate(st_memfd, ST_SLICE))
				_exit(3);
			st_slice[i] = mmap(NULL, ST_SLICE, PROT_READ | PROT_WRITE,
					   MAP_SHARED, st_memfd, 0);
			if (st_slice[i] == MAP_FAILED)
				_exit(3);
		} else {
			st_slice[i] = map_anon(ST_SLICE, PMD_SZ);
			if (!st_slice[i])
				_exit(3);
			madvise(st_slice[i], ST_SLICE,
				i == 1 ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
		}
		memset(st_slice[i], 0, ST_SLICE);
	}
	if (write(ans, st_slice, sizeof(st_slice)) != sizeof(st_slice))
		_exit(3);
	for (i = 0; i < ST_WRITERS; i++)
		pthread_create(&wt[i], NULL, st_writer, (void *)(intptr_t)i);
	for (i = 0; i < 5; i++)
		pthread_create(&ot[i], NULL, fns[i], NULL);

	while (read(cmd, &c, 1) == 1)
		;
	atomic_store(&st_stop, true);
	for (i = 0; i < ST_WRITERS; i++)
		pthread_join(wt[i], NULL);
	for (i = 0; i < 5; i++)
		pthread_join(ot[i], NULL);
	if (verify(st_fork, ST_FORKLEN, ST_FORK_SEED) >= 0)
		st_fail("final: fixed region", 0);
	fprintf(stderr,
		"# stress child: rounds writer %lu churn %lu thp %lu fork %lu vmsplice %lu lazyfree %lu (%lu pages reclaimed); errors %d\n",
		atomic_load(&st_rounds[0]), atomic_load(&st_rounds[1]),
		atomic_load(&st_rounds[2]), atomic_load(&st_rounds[3]),
		atomic_load(&st_rounds[4]), atomic_load(&st_rounds[5]),
		atomic_load(&st_rounds[6]), atomic_load(&st_errors));
	_exit(atomic_load(&st_errors) ? 1 : 0);
}

/* Grow our stack now, so that it needs no new page table later. */
static __attribute__((noinline)) void warm_stack(void)
{
	volatile char buf[256 << 10];

	memset((char *)buf, 1, sizeof(buf));
}

/* The child's memory cgroup, reclaimed by the mover (MADV_FREE check). */
#define CG_ROOT		"/sys/fs/cgroup"
#define CG_DIR		CG_ROOT "/pt_migrate_test"
static bool cg_ok;
static atomic_ulong cg_reclaims;

static bool cg_setup(pid_t pid)
{
	char buf[64];

	if (access(CG_ROOT "/cgroup.controllers", F_OK) &&
	    mount("none", CG_ROOT, "cgroup2", 0, NULL))
		return false;
	write_file(CG_ROOT "/cgroup.subtree_control", "+memory");
	if (mkdir(CG_DIR, 0755) && errno != EEXIST)
		return false;
	snprintf(buf, sizeof(buf), "%d", (int)pid);
	return write_file(CG_DIR "/cgroup.procs", buf) == 0 &&
	       access(CG_DIR "/memory.reclaim", W_OK) == 0;
}

static void cg_reclaim(void)
{
	if (cg_ok) {
		write_file(CG_DIR "/memory.reclaim", "4M");
		atomic_fetch_add(&cg_reclaims, 1);
	}
}

/*
 * The parent's data mover: moves 2 MiB of one of the child's slices to the
 * other node at a time, concurrently with the page-table migrations (page
 * migration installs and removes migration entries through rmap walks).
 */
static pid_t mv_pid;
static char *mv_slice[ST_WRITERS];
static atomic_int mv_state;		/* 0 wait, 1 run, 2 stop */
static atomic_ulong mv_pages, mv_rounds;

static void *mover(void *arg)
{
	struct timespec ts = { 0, 1000000 };
	unsigned long i = 0;

	(void)arg;
	warm_stack();
	move_range(getpid(), (char *)&ts, PAGE, node_a);
	atomic_store(&mv_state, 0);
	while (atomic_load(&mv_state) == 0)
		nanosleep(&ts, NULL);
	while (atomic_load(&mv_state) == 1) {
		char *p = mv_slice[i % ST_WRITERS] +
			  (i / ST_WRITERS % (ST_SLICE / PMD_SZ)) * PMD_SZ;

		atomic_fetch_add(&mv_pages,
				 move_range(mv_pid, p, PMD_SZ,
					    i / 7 % 2 ? node_a : node_b));
		atomic_fetch_add(&mv_rounds, 1);
		cg_reclaim();
		i++;
	}
	return NULL;
}

static void test_stress(int seconds)
{
	struct knob kh[3], nb;
	struct tiermm_pt_migrate m;
	struct stat_res st;
	uint64_t moved[NR_LEVELS] = { 0 }, skipped[TIERMM_SKIP_NR] = { 0 };
	unsigned long calls = 0, fails = 0, stats = 0, stat_fails = 0;
	double t_mig = 0, t_max = 0, t1;
	long base, after;
	struct child c;
	pthread_t mt;
	double t0, t = 0;
	int err, i, rc, node;

	if (node_b < 0) {
		skip("needs two nodes with memory and CPUs", "stress");
		return;
	}
	set_knob(&kh[0],
		 "/sys/kernel/mm/transparent_hugepage/khugepaged/scan_sleep_millisecs",
		 "10");
	set_knob(&kh[1],
		 "/sys/kernel/mm/transparent_hugepage/khugepaged/alloc_sleep_millisecs",
		 "10");
	set_knob(&kh[2],
		 "/sys/kernel/mm/transparent_hugepage/khugepaged/pages_to_scan",
		 "4096");
	set_knob(&nb, "/proc/sys/kernel/numa_balancing", "1");

	/* Our own threads and stacks exist before the baseline is taken. */
	atomic_store(&mv_state, -1);
	if (pthread_create(&mt, NULL, mover, NULL)) {
		check(false, "stress: mover thread");
		goto out;
	}
	while (atomic_load(&mv_state) != 0)
		sched_yield();
	warm_stack();
	base = nr_page_table_pages();

	if (!check(child_start(&c, stress_child), "stress: child started"))
		goto stop;
	if (!check(child_read(&c, mv_slice, sizeof(mv_slice)),
		   "stress: child runs %d writers, churn, THP, fork and vmsplice threads",
		   ST_WRITERS))
		goto end;
	mv_pid = c.pid;
	cg_ok = cg_setup(c.pid);
	if (!cg_ok)
		diag("stress: no memory cgroup to reclaim: MADV_FREE pages are not reclaimed");
	atomic_store(&mv_state, 1);

	t0 = now();
	for (i = 0; (t = now() - t0) < seconds; i++) {
		static const int cycle[] = { 0, 1, TIERMM_NODE_AUTO };
		uint32_t levels = TIERMM_PT_MIGRATE_ALL;

		node = cycle[i % 3];
		if (node >= 0)
			node = node ? node_b : node_a;
		if (i % 7 == 5)
			levels = 1U << (i % 3);
		t1 = now();
		err = do_migrate(&m, c.pid, 0, WHOLE_LEN, node, levels);
		t1 = now() - t1;
		t_mig += t1;
		if (t1 > t_max)
			t_max = t1;
		calls++;
		if (err) {
			if (fails++ < 5)
				diag("PT_MIGRATE node %d levels %#x: %s", node,
				     levels, errname(err));
		} else {
			int k;

			for (k = 0; k < NR_LEVELS; k++)
				moved[k] += m.moved[k];
			for (k = 0; k < TIERMM_SKIP_NR; k++)
				skipped[k] += m.skipped[k];
		}
		if (have_stat) {
			stats++;
			if (do_stat(&st, c.pid, 0, WHOLE_LEN))
				stat_fails++;
		}
		if (i % 10 == 0)
			pin_to_node(c.pid, i % 20 ? node_b : node_a);
	}
	diag("stress: %.1f s, %lu PT_MIGRATE calls (%.1f/s, %.3f s on average, %.3f s at most)",
	     t, calls, calls / t, calls ? t_mig / calls : 0, t_max);
	diag("stress: meanwhile %lu move_pages calls moved %lu pages; %lu cgroup reclaims",
	     atomic_load(&mv_rounds), atomic_load(&mv_pages),
	     atomic_load(&cg_reclaims));
	diag("stress: moved pte %" PRIu64 " pmd %" PRIu64 " pud %" PRIu64,
	     moved[0], moved[1], moved[2]);
	for (i = 0; i < 5; i++)
		diag("stress: skipped %s %" PRIu64, skip_name[i], skipped[i]);
	check(!fails, "stress: every PT_MIGRATE succeeded (%lu failed)", fails);
	check(moved[0] > 0 && moved[1] > 0 && moved[2] > 0,
	      "stress: tables of every level were moved");
	if (have_stat)
		check(!stat_fails, "stress: every PT_STAT succeeded (%lu of %lu failed)",
		      stat_fails, stats);
end:
	atomic_store(&mv_state, 2);
	rc = child_end(&c);
	check(rc == 0, "stress: the child's data stayed intact (exit %d)", rc);
stop:
	atomic_store(&mv_state, 2);
	pthread_join(mt, NULL);
	if (cg_ok)
		rmdir(CG_DIR);
	after = nr_page_table_pages();
	diag("stress: nr_page_table_pages %ld before the child, %ld after it", base,
	     after);
	check(base >= 0 && after == base,
	      "stress: no page-table page leaked (nr_page_table_pages back to %ld)",
	      base);
out:
	for (i = 0; i < 3; i++)
		restore_knob(&kh[i]);
	restore_knob(&nb);
}

/* ----------------------------------------------------------------- thp -- */

static bool thp_enabled(void)
{
	char buf[128];

	return !read_file("/sys/kernel/mm/transparent_hugepage/enabled", buf,
			  sizeof(buf)) && !strstr(buf, "[never]");
}

static void test_thp(void)
{
	struct tiermm_pt_migrate m;
	struct stat_res st;
	long pa, pb, bad = -1;
	size_t off;
	char *p;
	int err, i;

	if (node_b < 0 || !have_stat) {
		skip("needs two nodes with memory and CPUs, and PT_STAT", "thp");
		return;
	}
	if (!thp_enabled()) {
		skip("THP is disabled", "thp");
		return;
	}
	pin_to_node(0, node_a);
	p = map_anon(THP_LEN, PMD_SZ);
	if (!check(p != NULL, "thp: mapped %lu MiB", THP_LEN >> 20))
		return;
	madvise(p, THP_LEN, MADV_HUGEPAGE);
	fill(p, THP_LEN, 0x7e);
	err = do_stat(&st, 0, (uintptr_t)p, THP_LEN);
	if (!check(!err && st.a.leaf_huge[TIERMM_PT_PMD] == THP_LEN / PMD_SZ,
		   "thp: %lu THPs (%" PRIu64 ")", THP_LEN / PMD_SZ,
		   (uint64_t)st.a.leaf_huge[TIERMM_PT_PMD])) {
		munmap(p, THP_LEN);
		return;
	}

	/* The deposited tables of the THPs are on node A; move them to B. */
	pa = node_pagetables_kb(node_a);
	pb = node_pagetables_kb(node_b);
	err = do_migrate(&m, 0, (uintptr_t)p, THP_LEN, node_b,
			 TIERMM_PT_MIGRATE_PTE);
	if (!check(!err && m.moved[TIERMM_PT_PTE] >= THP_LEN / PMD_SZ &&
		   m.skipped[TIERMM_SKIP_HUGE] == THP_LEN / PMD_SZ,
		   "thp: PTE level to node %d: the deposited tables moved, the huge leaves skipped (%s)",
		   node_b, errname(err)))
		migrate_diag("thp", &m);
	diag("thp: PageTables node %d %ld -> %ld kB, node %d %ld -> %ld kB",
	     node_a, pa, node_pagetables_kb(node_a), node_b, pb,
	     node_pagetables_kb(node_b));
	err = do_migrate(&m, 0, (uintptr_t)p, THP_LEN, node_b,
			 TIERMM_PT_MIGRATE_PTE);
	if (!check(!err && !m.moved[TIERMM_PT_PTE],
		   "thp: a second call finds them all on node %d", node_b))
		migrate_diag("thp again", &m);

	/* Split every THP: the page tables used are the deposited ones. */
	for (off = 0; off < THP_LEN; off += PMD_SZ)
		madvise(p + off + 3 * PAGE, PAGE, MADV_DONTNEED);
	err = do_stat(&st, 0, (uintptr_t)p, THP_LEN);
	if (!check(!err && st.a.leaf_huge[TIERMM_PT_PMD] == 0 &&
		   tables_on(&st, node_b, TIERMM_PT_PTE) == THP_LEN / PMD_SZ &&
		   tables_all(&st, TIERMM_PT_PTE) == THP_LEN / PMD_SZ,
		   "thp: after MADV_DONTNEED splits, all %lu PTE tables are on node %d",
		   THP_LEN / PMD_SZ, node_b))
		stat_diag("thp split", &st);
	for (off = 0; off < THP_LEN && bad < 0; off += PMD_SZ) {
		const uint64_t *w = (const uint64_t *)(p + off);

		for (i = 0; i < (int)(PMD_SZ / 8); i++) {
			uint64_t want = i / (PAGE / 8) == 3 ? 0 :
					pattern(0x7e, off / 8 + i);

			if (w[i] != want) {
				bad = (long)(off / 8 + i);
				break;
			}
		}
	}
	check(bad < 0, "thp: data intact after the split (first bad word %ld)",
	      bad);

	/* Now AUTO, then an mprotect split of a fresh set of THPs. */
	munmap(p, THP_LEN);
	p = map_anon(THP_LEN, PMD_SZ);
	if (!p)
		return;
	madvise(p, THP_LEN, MADV_HUGEPAGE);
	fill(p, THP_LEN, 0x7f);
	move_range(0, p, THP_LEN, node_b);
	err = do_migrate(&m, 0, 0, WHOLE_LEN, TIERMM_NODE_AUTO,
			 TIERMM_PT_MIGRATE_ALL);
	check(!err, "thp: AUTO with THPs on node %d (%s)", node_b, errname(err));
	migrate_diag("thp auto", &m);
	for (off = 0; off < THP_LEN; off += PMD_SZ)
		mprotect(p + off + PMD_SZ / 2, PAGE, PROT_READ);
	err = do_stat(&st, 0, (uintptr_t)p, THP_LEN);
	if (!check(!err && st.a.leaf_huge[TIERMM_PT_PMD] == 0 &&
		   tables_on(&st, node_b, TIERMM_PT_PTE) ==
		   tables_all(&st, TIERMM_PT_PTE),
		   "thp: after mprotect splits, the PTE tables are where the data is (node %d)",
		   node_b))
		stat_diag("thp mprotect", &st);
	check(verify(p, THP_LEN, 0x7f) < 0, "thp: data intact after mprotect");
	munmap(p, THP_LEN);
	pin_to_node(0, node_a);
}

/* -------------------------------------------------------------- errors -- */

/* Same tables on the same nodes, equally local (leaves may differ). */
/* A migration expected to fail with want; the struct must stay as it was. */
static void expect_fail(const char *what, struct tiermm_pt_migrate *m,
			int want, int want2)
{
	struct tiermm_pt_migrate copy = *m;
	int err = ioctl(dev_fd, TIERMM_IOC_PT_MIGRATE, m) ? errno : 0;

	if (!check(err == want || (want2 && err == want2),
		   "errors: %s: %s", what, errname(want)))
		diag("  got %s", errname(err));
	check(!memcmp(&copy, m, sizeof(copy)),
	      "errors: %s: argument left unchanged", what);
}

static void base_arg(struct tiermm_pt_migrate *m, uint64_t start, uint64_t len)
{
	memset(m, 0, sizeof(*m));
	m->argsz = sizeof(*m);
	m->start = start;
	m->len = len;
	m->node = node_b >= 0 ? node_b : 0;
	m->levels = TIERMM_PT_MIGRATE_ALL;
}

/* In a child that became nobody: migrating root's processes is refused. */
static int nobody_child(pid_t victim)
{
	struct tiermm_pt_migrate m;
	int err;

	if (setgid(NOBODY) || setuid(NOBODY))
		return 10;
	base_arg(&m, 0, WHOLE_LEN);
	m.pid = victim;
	err = ioctl(dev_fd, TIERMM_IOC_PT_MIGRATE, &m) ? errno : 0;
	if (err != EPERM && err != EACCES)
		return 11;
	m.pid = 1;
	err = ioctl(dev_fd, TIERMM_IOC_PT_MIGRATE, &m) ? errno : 0;
	if (err != EPERM && err != EACCES)
		return 12;
	/* Its own page tables it may move. */
	m.pid = 0;
	err = ioctl(dev_fd, TIERMM_IOC_PT_MIGRATE, &m) ? errno : 0;
	return err ? 13 : 0;
}

static void test_errors(void)
{
	struct {
		struct tiermm_pt_migrate m;
		uint64_t tail[4];
	} big;
	struct tiermm_pt_migrate m;
	struct stat_res before, after, rbefore, rafter;
	int memless = -1, n, st, err;
	char *p;
	pid_t pid;

	p = map_anon(8UL << 20, PMD_SZ);
	if (!p)
		return;
	madvise(p, 8UL << 20, MADV_NOHUGEPAGE);
	fill(p, 8UL << 20, 0xe);
	if (have_stat) {
		do_stat(&before, 0, 0, WHOLE_LEN);
		do_stat(&rbefore, 0, (uintptr_t)p, 8UL << 20);
	}

	base_arg(&m, (uintptr_t)p, 8UL << 20);
	m.node = 99;
	expect_fail("node 99", &m, EINVAL, 0);
	m.node = -5;
	expect_fail("node -5", &m, EINVAL, 0);
	m.node = nr_node_ids;
	expect_fail("node nr_node_ids", &m, EINVAL, 0);
	for (n = 0; n < nr_node_ids; n++) {
		char path[64];

		snprintf(path, sizeof(path), "/sys/devices/system/node/node%d", n);
		if (!mem_node[n] && access(path, F_OK) == 0) {
			memless = n;
			break;
		}
	}
	if (memless >= 0) {
		m.node = memless;
		expect_fail("a node without memory", &m, EINVAL, 0);
	} else {
		skip("no online node without memory", "errors: memory-less node");
	}
	base_arg(&m, (uintptr_t)p, 8UL << 20);
	m.levels = 0;
	expect_fail("levels 0", &m, EINVAL, 0);
	m.levels = 1U << TIERMM_PT_PGD;
	expect_fail("levels PGD", &m, EINVAL, 0);
	m.levels = TIERMM_PT_MIGRATE_PTE | (1U << 9);
	expect_fail("unknown level bit", &m, EINVAL, 0);
	m.levels = 0xffffffffU;
	expect_fail("levels ~0", &m, EINVAL, 0);

	base_arg(&m, (uintptr_t)p + 1, 8UL << 20);
	expect_fail("unaligned start", &m, EINVAL, 0);
	base_arg(&m, (uintptr_t)p, (8UL << 20) - 1);
	expect_fail("unaligned length", &m, EINVAL, 0);
	base_arg(&m, (uintptr_t)p, 0);
	expect_fail("length 0", &m, EINVAL, 0);
	base_arg(&m, 0xfffffffffffff000ULL, 0x2000);
	expect_fail("wrapping range", &m, EINVAL, 0);
	base_arg(&m, 0, 1ULL << 57);
	expect_fail("range beyond user space", &m, EINVAL, 0);

	base_arg(&m, (uintptr_t)p, 8UL << 20);
	m.flags = 1;
	expect_fail("flags 1", &m, EINVAL, 0);
	base_arg(&m, (uintptr_t)p, 8UL << 20);
	m.pad0 = 1;
	expect_fail("pad0", &m, EINVAL, 0);
	base_arg(&m, (uintptr_t)p, 8UL << 20);
	m.reserved[3] = 1;
	expect_fail("reserved", &m, EINVAL, 0);
	base_arg(&m, (uintptr_t)p, 8UL << 20);
	m.argsz = TIERMM_PT_MIGRATE_SIZE_VER0 - 8;
	expect_fail("argsz too small", &m, EINVAL, 0);

	memset(&big, 0, sizeof(big));
	base_arg(&big.m, (uintptr_t)p, 8UL << 20);
	big.m.argsz = sizeof(big);
	big.tail[1] = 1;
	err = ioctl(dev_fd, TIERMM_IOC_PT_MIGRATE, &big) ? errno : 0;
	check(err == EINVAL, "errors: a larger struct with a non-zero tail: EINVAL (%s)",
	      errname(err));

	/* A process that is gone. */
	fflush(stdout);
	pid = fork();
	if (pid == 0)
		_exit(0);
	waitpid(pid, &st, 0);
	base_arg(&m, 0, WHOLE_LEN);
	m.pid = pid;
	expect_fail("an exited pid", &m, ESRCH, 0);
	m.pid = -7;
	expect_fail("pid -7", &m, ESRCH, 0);
	m.pid = 2;	/* kthreadd */
	expect_fail("a kernel thread", &m, EINVAL, 0);

	/* Another user's process, as nobody; the output fields are ignored. */
	pid = fork();
	if (pid == 0)
		_exit(nobody_child(getppid()));
	waitpid(pid, &st, 0);
	check(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	      "errors: nobody may not migrate root's processes (EPERM/EACCES), may its own (status %d)",
	      WIFEXITED(st) ? WEXITSTATUS(st) : -1);

	if (have_stat) {
		do_stat(&after, 0, 0, WHOLE_LEN);
		do_stat(&rafter, 0, (uintptr_t)p, 8UL << 20);
		/*
		 * The range they named: the same tables where they were. The
		 * whole process: no table gone from a node (the process's
		 * own printf/fork/waitpid may add tables meanwhile, and the
		 * kernel may move data pages, which changes locality).
		 */
		bool kept = true;

		for (int nd = 0; nd < MAX_NODES; nd++)
			for (int l = 0; l < NR_LEVELS; l++)
				kept &= after.tables[nd][l] >= before.tables[nd][l];
		if (!check(kept && !memcmp(rbefore.tables, rafter.tables, sizeof(rafter.tables)) &&
			   !memcmp(rbefore.leaf, rafter.leaf, sizeof(rafter.leaf)),
			   "errors: no page table of this process moved by them")) {
			stat_diag("before", &before);
			stat_diag("after", &after);
			stat_diag("range before", &rbefore);
			stat_diag("range after", &rafter);
		}
	}
	check(verify(p, 8UL << 20, 0xe) < 0, "errors: data intact");

	/* The valid calls still work, with garbage in the output fields. */
	base_arg(&m, (uintptr_t)p, 8UL << 20);
	memset(m.moved, 0xff, sizeof(m.moved));
	memset(m.skipped, 0xff, sizeof(m.skipped));
	err = ioctl(dev_fd, TIERMM_IOC_PT_MIGRATE, &m) ? errno : 0;
	check(!err && m.moved[TIERMM_PT_PTE] + m.skipped[TIERMM_SKIP_ALREADY] >= 4 &&
	      m.moved[TIERMM_PT_PTE] < 1000,
	      "errors: a valid call with garbage output fields works (%s)",
	      errname(err));
	m.pid = 0;
	memset(&big, 0, sizeof(big));
	big.m = m;
	big.m.argsz = sizeof(big);
	memset(big.m.moved, 0, sizeof(big.m.moved));
	err = ioctl(dev_fd, TIERMM_IOC_PT_MIGRATE, &big) ? errno : 0;
	check(!err && big.tail[0] == 0,
	      "errors: a larger struct with a zero tail works, the tail untouched (%s)",
	      errname(err));
	check(verify(p, 8UL << 20, 0xe) < 0, "errors: data intact after moves");
	munmap(p, 8UL << 20);
}

/* ---------------------------------------------------------------- loop -- */

static volatile sig_atomic_t loop_stop;

static void on_signal(int sig)
{
	(void)sig;
	loop_stop = 1;
}

static bool comm_wanted(pid_t pid, char **comms, int ncomms)
{
	char path[64], buf[64];
	int i;

	if (!ncomms)
		return true;
	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	if (read_file(path, buf, sizeof(buf)))
		return false;
	buf[strcspn(buf, "\n")] = '\0';
	for (i = 0; i < ncomms; i++)
		if (!strcmp(buf, comms[i]))
			return true;
	return false;
}

/* Kernel threads and zombies have an empty command line. */
static bool user_process(pid_t pid)
{
	char path[64], c;
	bool ok;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ok = read(fd, &c, 1) == 1;
	close(fd);
	return ok;
}

static int run_loop(int seconds, int interval_ms, char **comms, int ncomms)
{
	static const int cycle[] = { 0, 1, TIERMM_NODE_AUTO };
	unsigned long calls = 0, ok = 0, gone = 0, fails = 0, rounds = 0;
	uint64_t moved[NR_LEVELS] = { 0 };
	struct tiermm_pt_migrate m;
	struct timespec ts;
	double t0 = now();
	pid_t self = getpid();
	struct dirent *de;
	int node, err, k;
	DIR *d;

	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	ts.tv_sec = interval_ms / 1000;
	ts.tv_nsec = (interval_ms % 1000) * 1000000L;
	while (!loop_stop && (!seconds || now() - t0 < seconds)) {
		node = cycle[rounds++ % 3];
		if (node == 1 && node_b >= 0)
			node = node_b;
		else if (node == 1 || node == 0)
			node = node_a >= 0 ? node_a : 0;
		d = opendir("/proc");
		if (!d)
			return 1;
		while (!loop_stop && (de = readdir(d))) {
			pid_t pid = (pid_t)strtol(de->d_name, NULL, 10);

			if (pid <= 0 || pid == self || !user_process(pid) ||
			    !comm_wanted(pid, comms, ncomms))
				continue;
			err = do_migrate(&m, pid, 0, WHOLE_LEN, node,
					 TIERMM_PT_MIGRATE_ALL);
			calls++;
			if (!err) {
				ok++;
				for (k = 0; k < NR_LEVELS; k++)
					moved[k] += m.moved[k];
			} else if (err == ESRCH || err == EINVAL) {
				gone++;		/* exited or exiting meanwhile */
			} else {
				if (fails++ < 10)
					fprintf(stderr, "pt_migrate_test --loop: pid %d: %s\n",
						(int)pid, errname(err));
			}
		}
		closedir(d);
		nanosleep(&ts, NULL);
	}
	printf("pt_migrate_test --loop: %.1f s, %lu rounds, %lu calls: %lu ok, %lu gone, %lu failed; moved pte %" PRIu64 " pmd %" PRIu64 " pud %" PRIu64 "\n",
	       now() - t0, rounds, calls, ok, gone, fails, moved[0], moved[1],
	       moved[2]);
	return fails ? 1 : 0;
}

/* ---------------------------------------------------------------- main -- */

static void usage(void)
{
	fprintf(stderr,
		"usage: pt_migrate_test [--device DEV] [--seconds N | --quick] [--only LIST]\n"
		"       pt_migrate_test --loop [--seconds N] [--interval-ms MS] [--comm NAME]...\n");
	exit(2);
}

static bool wanted(const char *only, const char *name)
{
	size_t n = strlen(name);
	const char *s = only;

	if (!only)
		return true;
	while ((s = strstr(s, name))) {
		if ((s == only || s[-1] == ',') && (s[n] == '\0' || s[n] == ','))
			return true;
		s += n;
	}
	return false;
}

int main(int argc, char **argv)
{
	char *comms[32];
	int ncomms = 0, seconds = -1, interval = 20, i, err;
	const char *only = NULL;
	struct stat_res st;
	struct knob nb;
	bool loop = false;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--device") && i + 1 < argc)
			dev_path = argv[++i];
		else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
			seconds = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--quick"))
			seconds = 10;
		else if (!strcmp(argv[i], "--only") && i + 1 < argc)
			only = argv[++i];
		else if (!strcmp(argv[i], "--loop"))
			loop = true;
		else if (!strcmp(argv[i], "--interval-ms") && i + 1 < argc)
			interval = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--comm") && i + 1 < argc &&
			 ncomms < (int)(sizeof(comms) / sizeof(comms[0])))
			comms[ncomms++] = argv[++i];
		else
			usage();
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	read_topology();
	dev_fd = open(dev_path, O_RDWR | O_CLOEXEC);
	if (dev_fd < 0) {
		fprintf(stderr, "pt_migrate_test: %s: %s\n", dev_path,
			strerror(errno));
		if (loop)
			return 1;
		printf("1..0 # SKIP no %s\n", dev_path);
		return 1;
	}
	if (loop)
		return run_loop(seconds < 0 ? 0 : seconds, interval, comms, ncomms);

	err = do_stat(&st, 0, 0, WHOLE_LEN);
	have_stat = err != ENOTTY;
	diag("nodes: %d possible, A = %d, B = %d; PT_STAT %s", nr_node_ids,
	     node_a, node_b, have_stat ? "available" : "missing");
	set_knob(&nb, "/proc/sys/kernel/numa_balancing", "0");

	if (wanted(only, "errors"))
		test_errors();
	if (wanted(only, "locality"))
		test_locality();
	if (wanted(only, "thp"))
		test_thp();
	if (wanted(only, "stress")) {
		restore_knob(&nb);
		test_stress(seconds < 0 ? 60 : seconds);
		set_knob(&nb, "/proc/sys/kernel/numa_balancing", "0");
	}
	restore_knob(&nb);

	printf("1..%d\n", n_checks);
	if (n_failed)
		diag("%d of %d checks failed", n_failed, n_checks);
	return n_failed ? 1 : 0;
}
