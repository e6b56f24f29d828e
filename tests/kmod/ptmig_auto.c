// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * ptmig_auto: a process whose page tables are on another node than its data,
 * for the in-kernel page-table migration of the kernel patch series
 * (kmod/patches/linux-6.12, CONFIG_NUMA_PGTABLE_MIGRATION; the guest check
 * tests/vm/guest/check-ptmig-auto.sh). Libc only, linked static: it runs in
 * the guest's busybox initramfs.
 *
 *   ptmig_auto [-m MiB] [-t SECONDS] [-w TABLES] [-j THREADS] [-b] [-g] [-k]
 *              [-p SECONDS] [-s NODE] [-d NODE]
 *
 * On the CPUs of node -s (default 0) it maps MiB (default 128) of anonymous
 * memory without THP and writes every page: data and page tables start on
 * that node. The buffer is placed at 32 TiB, alone in its PUD table's
 * 512 GiB (and its PMD tables' 1 GiB), so that the vote of its PMD and PUD
 * tables depends on it only (elsewhere if that address is taken). Then the data moves to node -d (default 1) with move_pages(2)
 * (with -b it stays, for NUMA balancing to move it) and the process moves to
 * node -d's CPUs, where THREADS writer threads (default 2) rewrite their
 * share of the pages and check what they wrote before, until -t SECONDS
 * (default 30) have passed or, with -w, as soon as pgtable_migrate_pte in
 * /proc/vmstat grew by TABLES. Then every page is checked once more.
 *
 * Each page holds its index (a tag) and a counter of the writes to it; a
 * page that lost a write, or was replaced by another page or a zero page,
 * is an integrity error. With -g one more thread takes references to random
 * pages through GUP-fast (vmsplice(2) into a pipe) and checks their tags as
 * the pipe returns them. With -p the data moves back and forth between the
 * two nodes every SECONDS (move_pages(2) while the threads run), and the
 * page tables after it. Prints a progress line per second and a last line
 *
 *   result pte=N pmd=N pud=N fail=N secs=S pt0=A pt1=B pt0_end=C pt1_end=D
 *          data_dst=P pages=Q writes=W errors=E
 *
 * (one line): the vmstat deltas, the seconds from the start of the data's
 * move (after the first touch) until the -w target was reached (or the
 * run's length), the PageTables kB of the two nodes at the start
 * and at the end, the pages on node -d at the end, the buffer's page count,
 * the writes done and the integrity errors. Exit status 0 if there were no
 * errors and the -w target (if any) was reached, 1 otherwise, 2 for usage.
 * With -k the process stays after the result line, reading its pages, until
 * SIGINT or SIGTERM (for `tiermm pt stat` to look at its page tables).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096UL
#define BUF_ADDR (32UL << 40)	/* 512 GiB-aligned */
#define MPOL_MF_MOVE (1 << 1)
#define TAG_MAGIC 0x70746d6967000000ULL /* "ptmig" */

struct page_data {
	uint64_t tag;
	uint64_t count;
};

static char *buf;
static size_t npages;
static unsigned int nthreads = 2;
static uint32_t *counts;		/* writes per page, by its owner thread */
static atomic_int stop;
static atomic_ulong total_writes, total_errors;
static volatile sig_atomic_t want_exit;

static void on_exit_signal(int sig)
{
	(void)sig;
	want_exit = 1;
}

/* -k: stay, reading the pages, until SIGINT or SIGTERM; returns status. */
static int linger(int status)
{
	struct sigaction sa;
	volatile uint64_t sink = 0;
	size_t i;

	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_exit_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	while (!want_exit) {
		struct timespec ts = { 0, 200 * 1000 * 1000 };

		for (i = 0; i < npages; i++)
			sink += ((struct page_data *)(buf + i * PAGE))->count;
		nanosleep(&ts, NULL);
	}
	(void)sink;
	return status;
}

static int read_file(const char *path, char *out, size_t len)
{
	FILE *f = fopen(path, "r");
	size_t n;

	if (!f)
		return -1;
	n = fread(out, 1, len - 1, f);
	fclose(f);
	out[n] = '\0';
	return 0;
}

static int parse_list(const char *s, cpu_set_t *set)
{
	int hi = -1;

	CPU_ZERO(set);
	while (*s && *s != '\n') {
		char *end;
		long a = strtol(s, &end, 10), b;

		if (end == s || a < 0)
			return -1;
		b = a;
		s = end;
		if (*s == '-') {
			b = strtol(s + 1, &end, 10);
			if (end == s + 1 || b < a)
				return -1;
			s = end;
		}
		for (long i = a; i <= b && i < CPU_SETSIZE; i++)
			CPU_SET(i, set);
		if (b > hi)
			hi = (int)b;
		if (*s == ',')
			s++;
	}
	return hi + 1;
}

static int run_on_node(int node)
{
	char path[96], list[1024];
	cpu_set_t set;

	snprintf(path, sizeof(path), "/sys/devices/system/node/node%d/cpulist", node);
	if (read_file(path, list, sizeof(list)) || parse_list(list, &set) <= 0) {
		fprintf(stderr, "ptmig_auto: node %d has no CPUs (%s)\n", node, path);
		return -1;
	}
	if (sched_setaffinity(0, sizeof(set), &set)) {
		fprintf(stderr, "ptmig_auto: sched_setaffinity: %s\n", strerror(errno));
		return -1;
	}
	sched_yield();
	return 0;
}

/* Fold the CPUs' pending counts into /proc/vmstat (root only). */
static void vmstat_refresh(void)
{
	FILE *f = fopen("/proc/sys/vm/stat_refresh", "w");

	if (f) {
		fputs("1\n", f);
		fclose(f);
	}
}

/* A counter of /proc/vmstat, or -1 if absent. */
static long vmstat(const char *name)
{
	static char text[65536];
	size_t len = strlen(name);
	char *p;

	if (read_file("/proc/vmstat", text, sizeof(text)))
		return -1;
	for (p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (!strncmp(p, name, len) && p[len] == ' ')
			return strtol(p + len + 1, NULL, 10);
	return -1;
}

/* "Node N PageTables: X kB" of a node, or -1. */
static long node_pagetables_kb(int node)
{
	char path[96], text[8192], *p;

	snprintf(path, sizeof(path), "/sys/devices/system/node/node%d/meminfo", node);
	if (read_file(path, text, sizeof(text)))
		return -1;
	p = strstr(text, "PageTables:");
	return p ? strtol(p + strlen("PageTables:"), NULL, 10) : -1;
}

/* The number of the buffer's pages on node; -1 on error. */
static long pages_on(int node, int move)
{
	void **pages = calloc(npages, sizeof(*pages));
	int *nodes = calloc(npages, sizeof(*nodes));
	int *status = calloc(npages, sizeof(*status));
	long there = -1;

	if (!pages || !nodes || !status)
		goto out;
	for (size_t i = 0; i < npages; i++) {
		pages[i] = buf + i * PAGE;
		nodes[i] = node;
	}
	if (move && syscall(SYS_move_pages, 0, npages, pages, nodes, status,
			    MPOL_MF_MOVE) < 0) {
		fprintf(stderr, "ptmig_auto: move_pages: %s\n", strerror(errno));
		goto out;
	}
	if (syscall(SYS_move_pages, 0, npages, pages, NULL, status, 0) < 0)
		goto out;
	there = 0;
	for (size_t i = 0; i < npages; i++)
		there += status[i] == node;
out:
	free(pages);
	free(nodes);
	free(status);
	return there;
}

/* Check a page against what its owner wrote; 0 or 1 (an error). */
static int check_page(size_t i)
{
	struct page_data *d = (struct page_data *)(buf + i * PAGE);
	uint64_t tag = d->tag, count = d->count;

	if (tag == (TAG_MAGIC | i) && count == counts[i])
		return 0;
	if (atomic_fetch_add(&total_errors, 1) < 10)
		fprintf(stderr, "ptmig_auto: page %zu: tag %#llx count %llu, "
			"expected %#llx %u\n", i, (unsigned long long)tag,
			(unsigned long long)count,
			(unsigned long long)(TAG_MAGIC | i), counts[i]);
	return 1;
}

/* -g: page references through GUP-fast while the tables move. */
static void *gup_reader(void *arg)
{
	unsigned long seed = 12345, gups = 0;
	struct page_data got;
	struct iovec iov;
	int p[2];
	size_t i;

	(void)arg;
	if (pipe(p)) {
		perror("ptmig_auto: pipe");
		atomic_fetch_add(&total_errors, 1);
		return NULL;
	}
	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		seed = seed * 6364136223846793005UL + 1442695040888963407UL;
		i = (seed >> 33) % npages;
		iov.iov_base = buf + i * PAGE;
		iov.iov_len = sizeof(got);
		if (vmsplice(p[1], &iov, 1, 0) != (ssize_t)sizeof(got) ||
		    read(p[0], &got, sizeof(got)) != (ssize_t)sizeof(got)) {
			perror("ptmig_auto: vmsplice");
			atomic_fetch_add(&total_errors, 1);
			break;
		}
		if (got.tag != (TAG_MAGIC | i) &&
		    atomic_fetch_add(&total_errors, 1) < 10)
			fprintf(stderr, "ptmig_auto: vmsplice of page %zu: tag %#llx\n",
				i, (unsigned long long)got.tag);
		gups++;
	}
	close(p[0]);
	close(p[1]);
	printf("ptmig_auto: %lu pages read through vmsplice\n", gups);
	return NULL;
}

static void *writer(void *arg)
{
	size_t first = (size_t)(uintptr_t)arg, i;
	unsigned long writes = 0;

	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		for (i = first; i < npages; i += nthreads) {
			struct page_data *d = (struct page_data *)(buf + i * PAGE);

			check_page(i);
			d->count = ++counts[i];
			writes++;
		}
	}
	atomic_fetch_add(&total_writes, writes);
	return NULL;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	unsigned long mib = 128, secs = 30, want = 0, pingpong = 0;
	long pte0, pmd0, pud0, fail0, pte, pmd, pud, fail;
	long pt0, pt1, dst_pages;
	int src = 0, dst = 1, balancing = 0, keep = 0, gup = 0, status = 0, opt;
	pthread_t *threads, gup_thread;
	double t0, t, reached = -1, last = 0, last_move = 0;
	int data_node;
	unsigned long errors;
	size_t i;

	while ((opt = getopt(argc, argv, "m:t:w:j:bgkp:s:d:")) != -1) {
		switch (opt) {
		case 'm': mib = strtoul(optarg, NULL, 10); break;
		case 't': secs = strtoul(optarg, NULL, 10); break;
		case 'w': want = strtoul(optarg, NULL, 10); break;
		case 'j': nthreads = (unsigned int)strtoul(optarg, NULL, 10); break;
		case 'b': balancing = 1; break;
		case 'g': gup = 1; break;
		case 'k': keep = 1; break;
		case 'p': pingpong = strtoul(optarg, NULL, 10); break;
		case 's': src = atoi(optarg); break;
		case 'd': dst = atoi(optarg); break;
		default: goto usage;
		}
	}
	if (optind != argc || !mib || mib > 65536 || !secs || !nthreads ||
	    nthreads > 64 || src == dst)
		goto usage;
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (vmstat("pgtable_migrate_pte") < 0) {
		fprintf(stderr, "ptmig_auto: no pgtable_migrate_pte in /proc/vmstat "
			"(kernel without CONFIG_NUMA_PGTABLE_MIGRATION)\n");
		return 1;
	}

	/* First touch on src: data and page tables there. */
	if (run_on_node(src))
		return 1;
	npages = mib * (1024 * 1024 / PAGE);
	counts = calloc(npages, sizeof(*counts));
	threads = calloc(nthreads, sizeof(*threads));
	buf = mmap((void *)BUF_ADDR, npages * PAGE, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (buf == MAP_FAILED)
		buf = mmap(NULL, npages * PAGE, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (!counts || !threads || buf == MAP_FAILED) {
		fprintf(stderr, "ptmig_auto: out of memory (%lu MiB)\n", mib);
		return 1;
	}
	madvise(buf, npages * PAGE, MADV_NOHUGEPAGE);
	for (i = 0; i < npages; i++) {
		struct page_data *d = (struct page_data *)(buf + i * PAGE);

		d->tag = TAG_MAGIC | i;
		d->count = 0;
	}
	/*
	 * The baseline: a scan may move the tables as soon as move_pages()
	 * returns (task_numa_work() runs on the way back to user mode).
	 */
	vmstat_refresh();
	pte0 = vmstat("pgtable_migrate_pte");
	pmd0 = vmstat("pgtable_migrate_pmd");
	pud0 = vmstat("pgtable_migrate_pud");
	fail0 = vmstat("pgtable_migrate_fail");
	pte = pte0;
	pt0 = node_pagetables_kb(src);
	pt1 = node_pagetables_kb(dst);
	t0 = now();

	/* The data goes to dst (or is left to NUMA balancing), and so do we. */
	if (!balancing) {
		dst_pages = pages_on(dst, 1);
		if (dst_pages < 0)
			return 1;
		printf("ptmig_auto: %ld of %zu pages moved to node %d in %.1f s\n",
		       dst_pages, npages, dst, now() - t0);
	}
	data_node = balancing ? src : dst;
	if (run_on_node(dst))
		return 1;
	printf("ptmig_auto: pid %d, %lu MiB at %p, %u writers on node %d, page "
	       "tables node %d %ld kB, node %d %ld kB\n", (int)getpid(), mib,
	       (void *)buf, nthreads, dst, src, pt0, dst, pt1);
	for (i = 0; i < nthreads; i++)
		if (pthread_create(&threads[i], NULL, writer, (void *)(uintptr_t)i)) {
			fprintf(stderr, "ptmig_auto: pthread_create failed\n");
			return 1;
		}
	if (gup && pthread_create(&gup_thread, NULL, gup_reader, NULL)) {
		fprintf(stderr, "ptmig_auto: pthread_create failed\n");
		return 1;
	}

	last_move = now() - t0;
	for (;;) {
		struct timespec ts = { 0, 250 * 1000 * 1000 };

		nanosleep(&ts, NULL);
		t = now() - t0;
		vmstat_refresh();
		pte = vmstat("pgtable_migrate_pte");
		if (want && reached < 0 && pte - pte0 >= (long)want)
			reached = t;
		if (t - last >= 1.0) {
			last = t;
			printf("ptmig_auto: %4.1f s pte=%ld pmd=%ld pud=%ld fail=%ld "
			       "pt%d=%ld pt%d=%ld\n", t, pte - pte0,
			       vmstat("pgtable_migrate_pmd") - pmd0,
			       vmstat("pgtable_migrate_pud") - pud0,
			       vmstat("pgtable_migrate_fail") - fail0,
			       src, node_pagetables_kb(src),
			       dst, node_pagetables_kb(dst));
		}
		if (pingpong && t - last_move >= pingpong) {
			long n;

			data_node = data_node == dst ? src : dst;
			n = pages_on(data_node, 1);
			printf("ptmig_auto: %4.1f s %ld pages moved to node %d\n",
			       now() - t0, n, data_node);
			last_move = now() - t0;
			continue;
		}
		/* A second more after the target, for the upper levels. */
		if (t >= secs || (!pingpong && reached >= 0 && t >= reached + 1.0))
			break;
	}
	atomic_store(&stop, 1);
	for (i = 0; i < nthreads; i++)
		pthread_join(threads[i], NULL);
	if (gup)
		pthread_join(gup_thread, NULL);
	for (i = 0; i < npages; i++)
		check_page(i);

	vmstat_refresh();
	pte = vmstat("pgtable_migrate_pte");
	pmd = vmstat("pgtable_migrate_pmd");
	pud = vmstat("pgtable_migrate_pud");
	fail = vmstat("pgtable_migrate_fail");
	dst_pages = pages_on(dst, 0);
	errors = atomic_load(&total_errors);
	printf("result pte=%ld pmd=%ld pud=%ld fail=%ld secs=%.1f pt0=%ld pt1=%ld "
	       "pt0_end=%ld pt1_end=%ld data_dst=%ld pages=%zu writes=%lu errors=%lu\n",
	       pte - pte0, pmd - pmd0, pud - pud0, fail - fail0,
	       reached >= 0 ? reached : now() - t0, pt0, pt1,
	       node_pagetables_kb(src), node_pagetables_kb(dst), dst_pages,
	       npages, atomic_load(&total_writes), errors);
	if (errors)
		status = 1;
	if (want && reached < 0) {
		fprintf(stderr, "ptmig_auto: pgtable_migrate_pte grew by %ld, not %lu, "
			"in %lu s\n", pte - pte0, want, secs);
		status = 1;
	}
	return keep ? linger(status) : status;
usage:
	fprintf(stderr, "usage: ptmig_auto [-m MiB] [-t SECONDS] [-w TABLES] "
		"[-j THREADS] [-b] [-g] [-k] [-p SECONDS] [-s NODE] [-d NODE]\n");
	return 2;
}
