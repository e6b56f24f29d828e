// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * pt_bench: the costs of tiermm.ko's page-table commands on a big process,
 * each against a baseline measured in the same run on the same range, as
 * the project's benchmarks do. Inside a NUMA guest (tests/vm/run --preset
 * numa2), as root, with tiermm.ko loaded; docs/pt-benchmark.md.
 *
 *   pt_bench [--mib N] [--rounds R] [--chunk-mib C] [--no-thp | --thp-only]
 *
 * This process maps N MiB (default 1024) of anonymous memory, aligned to
 * 1 GiB, the first half bound to node A (0) and the second to node B (the
 * next node with memory and CPUs; a 1 GiB guest node cannot hold all of
 * it), runs on node A's CPUs and writes every 4 KiB page, so that its page
 * tables are made on node A. Twice: with 4 KiB pages (MADV_NOHUGEPAGE) and
 * with THPs (MADV_HUGEPAGE). Each measurement is repeated R times (default
 * 5) and the median is shown:
 *
 *  - pt_stat: one tiermm_pt_stat() of the range, against reading the
 *    range's entries of /proc/self/pagemap (which walks the same tables);
 *  - ab_scan: one pass of tiermm_ab_scan_next() over the range, without
 *    and with TIERMM_AB_SCAN_FLUSH, every page touched before each pass,
 *    in GiB of mappings per second, against the same pagemap read;
 *  - pt_migrate: tiermm_pt_migrate() of every level of the range's tables
 *    to node B, then back to node A, in tables per second and ms per GiB
 *    mapped, against move_pages(2) moving all the range's data pages
 *    across the nodes (the halves swapped C MiB at a time, default 32, so
 *    that neither node ever holds more than half the range plus C): data
 *    pages per second and ms per GiB mapped. After every migration
 *    tiermm_pt_stat() must find every table of the range on the target
 *    node, or pt_bench fails.
 *
 * Times are wall time and CPU time of this process (CLOCK_PROCESS_CPUTIME_ID:
 * user + system; the module's work runs in the ioctl, in this process's
 * context, but the TLB-flush IPIs it sends run on the other CPUs and the
 * RCU grace periods it waits for are sleeps: they count in wall time
 * only). IPIs are the function-call interrupts (CAL) and TLB shootdowns
 * (TLB) of /proc/interrupts, all CPUs together; the module itself reports
 * no flush count (it flushes every CPU's TLB once per table it replaces,
 * and once per scan call with the flush option).
 *
 * In a TCG guest every time is emulated: CPU-bound work runs many times
 * slower than on hardware and IPIs are vCPU switches. The absolute numbers
 * are not hardware numbers and are printed with that caveat; the ratios
 * compare two ways of doing the same work in the same guest.
 *
 * Exit status: 0 when every call succeeded, the tables landed where asked
 * and the data is intact; 1 otherwise; 2 on bad usage or missing
 * prerequisites (no module, fewer than two nodes). No speed target is
 * enforced.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <tiermm.h>

#define PAGE		UINT64_C(4096)
#define HPAGE		(UINT64_C(2) << 20)
#define MiB		(UINT64_C(1) << 20)
#define GiB		(UINT64_C(1) << 30)
#define MAX_NODES	64
#define MAX_ROUNDS	15
#define MPOL_BIND_	2
#define MPOL_MF_MOVE_	(1 << 1)
#define SEED		0x5eed5eedULL

static int node_a = -1, node_b = -1;
static int failures;

/* ------------------------------------------------------------ helpers -- */

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void fail(const char *fmt, ...)
{
	va_list ap;

	failures++;
	fputs("pt_bench: FAIL: ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
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

static bool in_list(const char *s, int want)
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
		if (want >= a && want <= b)
			return true;
		while (*s == ',' || *s == '\n')
			s++;
	}
	return false;
}

/* Nodes A and B: the first two with memory and CPUs. */
static void find_nodes(void)
{
	char mem[256], cpu[256];
	int n;

	if (read_file("/sys/devices/system/node/has_memory", mem, sizeof(mem)) ||
	    read_file("/sys/devices/system/node/has_cpu", cpu, sizeof(cpu)))
		return;
	for (n = 0; n < MAX_NODES; n++) {
		if (!in_list(mem, n) || !in_list(cpu, n))
			continue;
		if (node_a < 0)
			node_a = n;
		else if (node_b < 0)
			node_b = n;
	}
}

static void pin_to_node(int node)
{
	char path[96], buf[256];
	cpu_set_t set;
	int c;

	snprintf(path, sizeof(path), "/sys/devices/system/node/node%d/cpulist",
		 node);
	if (read_file(path, buf, sizeof(buf)))
		return;
	CPU_ZERO(&set);
	for (c = 0; c < CPU_SETSIZE; c++)
		if (in_list(buf, c))
			CPU_SET(c, &set);
	sched_setaffinity(0, sizeof(set), &set);
}

static int bind_to(void *p, size_t len, int node)
{
	unsigned long mask = 1UL << node;

	return (int)syscall(SYS_mbind, p, len, MPOL_BIND_, &mask,
			    sizeof(mask) * 8, 0);
}

/* Sum of a /proc/interrupts line (all CPUs), e.g. "CAL:"; -1 if none. */
static long long irq_count(const char *name)
{
	char line[4096];
	long long sum = -1;
	FILE *f = fopen("/proc/interrupts", "re");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		char *p = line, *end;

		while (*p == ' ')
			p++;
		if (strncmp(p, name, strlen(name)))
			continue;
		p += strlen(name);
		sum = 0;
		for (;;) {
			long long v = strtoll(p, &end, 10);

			if (end == p)
				break;
			sum += v;
			p = end;
		}
		break;
	}
	fclose(f);
	return sum;
}

/* One measurement: wall and CPU time, IPIs. */
struct sample {
	double wall, cpu;		/* seconds */
	long long cal, tlb;		/* interrupts */
};

struct meter {
	struct timespec w, c;
	long long cal, tlb;
};

static double ts_s(const struct timespec *t)
{
	return (double)t->tv_sec + (double)t->tv_nsec / 1e9;
}

static void meter_start(struct meter *m)
{
	m->cal = irq_count("CAL:");
	m->tlb = irq_count("TLB:");
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &m->c);
	clock_gettime(CLOCK_MONOTONIC, &m->w);
}

static void meter_stop(const struct meter *m, struct sample *s)
{
	struct timespec w, c;

	clock_gettime(CLOCK_MONOTONIC, &w);
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c);
	s->wall = ts_s(&w) - ts_s(&m->w);
	s->cpu = ts_s(&c) - ts_s(&m->c);
	s->cal = m->cal < 0 ? -1 : irq_count("CAL:") - m->cal;
	s->tlb = m->tlb < 0 ? -1 : irq_count("TLB:") - m->tlb;
}

static int cmp_sample(const void *x, const void *y)
{
	const struct sample *a = x, *b = y;

	return a->wall < b->wall ? -1 : a->wall > b->wall;
}

/* The sample with the median wall time (of n, sorted in place). */
static struct sample median(struct sample *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_sample);
	return v[n / 2];
}

/* ------------------------------------------------------- the process -- */

struct area {
	char *p;
	uint64_t len;
	bool thp;
};

static uint64_t word_of(uint64_t page)
{
	return (SEED + page) * 0x9e3779b97f4a7c15ULL;
}

static char *map_aligned(uint64_t len, uint64_t align)
{
	char *p = mmap(NULL, len + align, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	uintptr_t a;

	if (p == MAP_FAILED)
		return NULL;
	a = ((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1);
	if (a > (uintptr_t)p)
		munmap(p, a - (uintptr_t)p);
	if ((uintptr_t)p + len + align > a + len)
		munmap((char *)(a + len), (uintptr_t)p + len + align - (a + len));
	return (char *)a;
}

static void touch_read(const struct area *a)
{
	volatile uint64_t sink = 0;
	uint64_t off;

	for (off = 0; off < a->len; off += PAGE)
		sink += *(volatile uint64_t *)(a->p + off);
	(void)sink;
}

static uint64_t verify(const struct area *a)
{
	uint64_t off, bad = 0;

	for (off = 0; off < a->len; off += PAGE)
		if (*(volatile uint64_t *)(a->p + off) != word_of(off / PAGE))
			bad++;
	return bad;
}

/* ------------------------------------------------------------ pt_stat -- */

struct layout {
	uint64_t tables[MAX_NODES][TIERMM_PT_LEVEL__COUNT];
	uint64_t total[TIERMM_PT_LEVEL__COUNT];
	uint64_t data[MAX_NODES];
	uint64_t huge;
};

static int get_layout(const struct area *a, struct layout *l)
{
	struct tiermm_pt_summary sum = { .sz = sizeof(sum) };
	struct tiermm_pt_stats *st;
	int n, k, nr;

	memset(l, 0, sizeof(*l));
	if (tiermm_pt_stat(0, (uintptr_t)a->p, a->len, 0, &st))
		return -1;
	nr = tiermm_pt_stat_nr_nodes(st);
	for (n = 0; n < nr && n < MAX_NODES; n++) {
		struct tiermm_pt_node ni = { .sz = sizeof(ni) };

		if (tiermm_pt_stat_node(st, n, &ni))
			continue;
		for (k = 0; k < TIERMM_PT_LEVEL__COUNT; k++)
			l->tables[n][k] = ni.tables[k];
		l->data[n] = ni.data_pages;
	}
	tiermm_pt_stat_summary(st, &sum);
	for (k = 0; k < TIERMM_PT_LEVEL__COUNT; k++)
		l->total[k] = sum.tables[k];
	l->huge = sum.leaf_huge[TIERMM_PT_LEVEL_PMD];
	tiermm_pt_stat_free(st);
	return 0;
}

/* Every PTE, PMD and PUD table of the range on node? */
static bool tables_on(const struct layout *l, int node)
{
	int k;

	for (k = TIERMM_PT_LEVEL_PTE; k <= TIERMM_PT_LEVEL_PUD; k++)
		if (l->tables[node][k] != l->total[k])
			return false;
	return true;
}

static void print_tables(const char *what, const struct layout *l)
{
	printf("  %s: PTE/PMD/PUD tables on node %d: %" PRIu64 "/%" PRIu64
	       "/%" PRIu64 ", on node %d: %" PRIu64 "/%" PRIu64 "/%" PRIu64
	       "\n", what, node_a, l->tables[node_a][0], l->tables[node_a][1],
	       l->tables[node_a][2], node_b, l->tables[node_b][0],
	       l->tables[node_b][1], l->tables[node_b][2]);
}

/* ----------------------------------------------------------- pagemap -- */

static uint64_t *pm_buf;

/* Read the range's entries of /proc/self/pagemap; the present count. */
static long pagemap_read(const struct area *a)
{
	uint64_t n = a->len / PAGE, off = (uintptr_t)a->p / PAGE * 8, i;
	size_t want = n * 8, got = 0;
	long present = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	while (got < want) {
		ssize_t r = pread(fd, (char *)pm_buf + got, want - got,
				  (off_t)(off + got));

		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	if (got != want)
		return -1;
	for (i = 0; i < n; i++)
		present += (long)(pm_buf[i] >> 63);
	return present;
}

/* ------------------------------------------------------------- output -- */

static void print_row(const char *what, const struct sample *s,
		      const char *rate)
{
	printf("  %-38s %9.1f %9.1f", what, s->wall * 1e3, s->cpu * 1e3);
	if (s->cal >= 0)
		printf(" %7lld %6lld", s->cal, s->tlb);
	else
		printf(" %7s %6s", "-", "-");
	printf("  %s\n", rate);
}

static void print_head(void)
{
	printf("  %-38s %9s %9s %7s %6s  %s\n", "(median of the rounds)",
	       "wall ms", "cpu ms", "IPI CAL", "TLB", "rate");
}

/* ------------------------------------------------------- measurements -- */

static double gib(const struct area *a)
{
	return (double)a->len / (double)GiB;
}

static void bench_stat(const struct area *a, int rounds)
{
	struct sample s[MAX_ROUNDS], b[MAX_ROUNDS], ms, mb;
	struct tiermm_pt_stats *st;
	struct meter m;
	char rate[160];
	long present = 0;
	int r;

	for (r = 0; r < rounds; r++) {
		meter_start(&m);
		if (tiermm_pt_stat(0, (uintptr_t)a->p, a->len, 0, &st)) {
			fail("tiermm_pt_stat: %s", tiermm_errmsg());
			return;
		}
		meter_stop(&m, &s[r]);
		tiermm_pt_stat_free(st);
		meter_start(&m);
		present = pagemap_read(a);
		meter_stop(&m, &b[r]);
		if (present < 0) {
			fail("reading /proc/self/pagemap: %s", strerror(errno));
			return;
		}
	}
	ms = median(s, rounds);
	mb = median(b, rounds);
	snprintf(rate, sizeof(rate), "%.2f GiB/s", gib(a) / ms.wall);
	print_row("tiermm_pt_stat, whole range", &ms, rate);
	snprintf(rate, sizeof(rate), "%.2f GiB/s (%ld present entries)",
		 gib(a) / mb.wall, present);
	print_row("baseline: pagemap read, same range", &mb, rate);
	printf("  => pt_stat takes %.2fx the time of the pagemap read (wall; cpu %.2fx)\n",
	       ms.wall / mb.wall, mb.cpu > 0 ? ms.cpu / mb.cpu : 0);
}

static int scan_pass(const struct area *a, unsigned int flags,
		     uint64_t *scanned, uint64_t *accessed)
{
	struct tiermm_ab_scan_opts o = { .sz = sizeof(o), .flags = flags };
	struct tiermm_ab_batch bt = { .sz = sizeof(bt) };
	struct tiermm_ab_scanner *sc;
	int ret;

	*scanned = 0;
	*accessed = 0;
	if (tiermm_ab_scan_open(0, (uintptr_t)a->p, a->len, &o, &sc))
		return -1;
	while ((ret = tiermm_ab_scan_next(sc, &bt)) == 1) {
		*scanned += bt.scanned;
		*accessed += bt.accessed;
	}
	tiermm_ab_scan_close(sc);
	return ret;
}

static void bench_scan(const struct area *a, int rounds)
{
	static const unsigned int flags[2] = { 0, TIERMM_AB_SCAN_FLUSH };
	struct sample s[MAX_ROUNDS], b[MAX_ROUNDS], ms, mb;
	uint64_t scanned = 0, accessed = 0, acc_min = UINT64_MAX;
	struct meter m;
	char rate[200];
	double scan_wall[2] = { 0, 0 };
	int r, f;

	for (f = 0; f < 2; f++) {
		/* A pass to start from a known state: every bit clear. */
		scan_pass(a, TIERMM_AB_SCAN_FLUSH, &scanned, &accessed);
		acc_min = UINT64_MAX;
		for (r = 0; r < rounds; r++) {
			touch_read(a);
			meter_start(&m);
			if (scan_pass(a, flags[f], &scanned, &accessed)) {
				fail("accessed-bit scan: %s", tiermm_errmsg());
				return;
			}
			meter_stop(&m, &s[r]);
			if (accessed < acc_min)
				acc_min = accessed;
			if (scanned != a->len / PAGE)
				fail("a scan pass examined %" PRIu64 " pages, not %" PRIu64,
				     scanned, a->len / PAGE);
		}
		ms = median(s, rounds);
		scan_wall[f] = ms.wall;
		snprintf(rate, sizeof(rate),
			 "%.2f GiB/s (%" PRIu64 " pages examined, >= %" PRIu64 " accessed)",
			 gib(a) / ms.wall, scanned, acc_min);
		print_row(f ? "tiermm_ab_scan pass, FLUSH" :
			      "tiermm_ab_scan pass, no flush", &ms, rate);
	}
	for (r = 0; r < rounds; r++) {
		meter_start(&m);
		if (pagemap_read(a) < 0) {
			fail("reading /proc/self/pagemap: %s", strerror(errno));
			return;
		}
		meter_stop(&m, &b[r]);
	}
	mb = median(b, rounds);
	snprintf(rate, sizeof(rate), "%.2f GiB/s", gib(a) / mb.wall);
	print_row("baseline: pagemap read, same range", &mb, rate);
	printf("  => scan throughput / pagemap throughput: %.2fx without flush, %.2fx with flush\n",
	       mb.wall / scan_wall[0], mb.wall / scan_wall[1]);
}

/* Migrate the range's tables to node; checks where they landed. */
static int migrate_to(const struct area *a, int node, struct sample *s,
		      uint64_t *moved, uint64_t *skipped /* [SKIP__COUNT] */)
{
	struct tiermm_pt_migrate_result res = { .sz = sizeof(res) };
	struct layout l;
	struct meter m;
	int ret, k;

	meter_start(&m);
	ret = tiermm_pt_migrate(0, (uintptr_t)a->p, a->len, node,
				TIERMM_PT_LEVELS_ALL, &res);
	meter_stop(&m, s);
	if (ret < 0) {
		fail("tiermm_pt_migrate to node %d: %s", node, tiermm_errmsg());
		return -1;
	}
	*moved = 0;
	for (k = 0; k < TIERMM_PT_LEVEL__COUNT; k++)
		*moved += res.moved[k];
	for (k = 0; k < TIERMM_PT_SKIP__COUNT; k++)
		skipped[k] += res.skipped[k];
	if (get_layout(a, &l)) {
		fail("tiermm_pt_stat after migration: %s", tiermm_errmsg());
		return -1;
	}
	if (!tables_on(&l, node)) {
		fail("after tiermm_pt_migrate to node %d, not every table of the range is there (moved pte %"
		     PRIu64 " pmd %" PRIu64 " pud %" PRIu64 "; skipped busy %" PRIu64
		     " nomem %" PRIu64 ")", node, res.moved[0], res.moved[1],
		     res.moved[2], res.skipped[TIERMM_PT_SKIP_BUSY],
		     res.skipped[TIERMM_PT_SKIP_NOMEM]);
		print_tables("stat", &l);
		return -1;
	}
	return 0;
}

/*
 * move_pages(2) of the pages in [p, p + len) to node, one address per
 * step bytes; the 4 KiB pages now on node.
 */
static uint64_t move_span(char *p, uint64_t len, uint64_t step, int node)
{
	enum { BATCH = 8192 };
	static void *pages[BATCH];
	static int nodes[BATCH], status[BATCH];
	uint64_t off, done = 0, n, i;

	for (off = 0; off < len; off += n * step) {
		n = (len - off) / step;
		if (n > BATCH)
			n = BATCH;
		for (i = 0; i < n; i++) {
			pages[i] = p + off + i * step;
			nodes[i] = node;
			status[i] = -1;
		}
		if (syscall(SYS_move_pages, 0, n, pages, nodes, status,
			    MPOL_MF_MOVE_) < 0)
			continue;
		for (i = 0; i < n; i++)
			done += status[i] == node ? step / PAGE : 0;
	}
	return done;
}

/*
 * Swap the halves' data between the nodes, chunk by chunk: first half to
 * to_first, second half to to_second. The 4 KiB pages moved.
 */
static uint64_t swap_data(const struct area *a, uint64_t chunk, int to_first,
			  int to_second)
{
	uint64_t half = a->len / 2, step = a->thp ? HPAGE : PAGE, off, done = 0;

	for (off = 0; off < half; off += chunk) {
		uint64_t n = half - off < chunk ? half - off : chunk;

		done += move_span(a->p + off, n, step, to_first);
		done += move_span(a->p + half + off, n, step, to_second);
	}
	return done;
}

static void bench_migrate(const struct area *a, int rounds, uint64_t chunk)
{
	struct sample to_b[MAX_ROUNDS], to_a[MAX_ROUNDS], mv[2], mb, ma, md;
	uint64_t moved_b = 0, moved_a = 0, skipped[TIERMM_PT_SKIP__COUNT] = { 0 };
	uint64_t pages[2];
	double tps_b, tps_a, ms_gib, md_gib, pps;
	struct layout l;
	struct meter m;
	char rate[200];
	int r, i, k;

	for (r = 0; r < rounds; r++) {
		if (migrate_to(a, node_b, &to_b[r], &moved_b, skipped))
			return;
		if (migrate_to(a, node_a, &to_a[r], &moved_a, skipped))
			return;
	}
	mb = median(to_b, rounds);
	ma = median(to_a, rounds);
	tps_b = (double)moved_b / mb.wall;
	tps_a = (double)moved_a / ma.wall;
	snprintf(rate, sizeof(rate),
		 "%.0f tables/s, %.1f ms per GiB mapped (%" PRIu64 " tables moved)",
		 tps_b, mb.wall * 1e3 / gib(a), moved_b);
	printf("  %-34s\n", "tiermm_pt_migrate, all levels:");
	print_row("  node A -> node B", &mb, rate);
	snprintf(rate, sizeof(rate),
		 "%.0f tables/s, %.1f ms per GiB mapped (%" PRIu64 " tables moved)",
		 tps_a, ma.wall * 1e3 / gib(a), moved_a);
	print_row("  node B -> node A", &ma, rate);
	printf("    skipped over all %d calls:", 2 * rounds);
	for (k = 0; k < TIERMM_PT_SKIP__COUNT; k++)
		if (tiermm_pt_skip_name(k))
			printf(" %s %" PRIu64, tiermm_pt_skip_name(k), skipped[k]);
	printf(" (huge: 2 MiB leaves, no table under them)\n");

	/* Baseline: every data page of the range across the nodes and back. */
	for (i = 0; i < 2; i++) {
		meter_start(&m);
		pages[i] = i ? swap_data(a, chunk, node_a, node_b) :
			       swap_data(a, chunk, node_b, node_a);
		meter_stop(&m, &mv[i]);
	}
	/* The mean of the two directions. */
	md.wall = (mv[0].wall + mv[1].wall) / 2;
	md.cpu = (mv[0].cpu + mv[1].cpu) / 2;
	md.cal = mv[0].cal < 0 ? -1 : (mv[0].cal + mv[1].cal) / 2;
	md.tlb = mv[0].tlb < 0 ? -1 : (mv[0].tlb + mv[1].tlb) / 2;
	pps = (double)(pages[0] + pages[1]) / (mv[0].wall + mv[1].wall);
	md_gib = md.wall * 1e3 / gib(a);
	snprintf(rate, sizeof(rate),
		 "%.0f pages/s, %.1f ms per GiB mapped (%" PRIu64 " + %" PRIu64 " pages moved)",
		 pps, md_gib, pages[0], pages[1]);
	print_row("baseline: move_pages, all data (mean)", &md, rate);
	if (pages[0] != a->len / PAGE || pages[1] != a->len / PAGE)
		printf("  (move_pages moved %" PRIu64 " and %" PRIu64 " of the %" PRIu64
		       " pages: the rates count the pages moved)\n",
		       pages[0], pages[1], a->len / PAGE);
	ms_gib = (mb.wall + ma.wall) / 2 * 1e3 / gib(a);
	printf("  => per GiB mapped, moving the page tables takes %.4fx the time of moving the data (%.3f%%; cpu %.4fx)\n",
	       ms_gib / md_gib, 100 * ms_gib / md_gib,
	       ((mb.cpu + ma.cpu) / 2) / md.cpu);
	printf("  => per 4 KiB page moved, a page table moves at %.2fx the rate of a data page (tables/s over pages/s)\n",
	       (tps_a + tps_b) / 2 / pps);
	if (a->thp)
		printf("  (the PTE tables moved in a THP run are the ones deposited for the THPs: no TLB flush is needed for them)\n");
	if (get_layout(a, &l) == 0)
		print_tables("after move_pages (the tables stay)", &l);
}

/* -------------------------------------------------------------- a run -- */

static int run(uint64_t len, bool thp, int rounds, uint64_t chunk)
{
	struct area a = { .len = len, .thp = thp };
	struct sample ts;
	struct layout l;
	struct meter m;
	uint64_t off, bad;

	a.p = map_aligned(len, GiB);
	if (!a.p) {
		fail("mmap of %" PRIu64 " MiB: %s", len / MiB, strerror(errno));
		return -1;
	}
	madvise(a.p, len, thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
	if (bind_to(a.p, len / 2, node_a) ||
	    bind_to(a.p + len / 2, len / 2, node_b)) {
		fail("mbind: %s", strerror(errno));
		munmap(a.p, len);
		return -1;
	}
	pin_to_node(node_a);
	meter_start(&m);
	for (off = 0; off < len; off += PAGE)
		*(uint64_t *)(a.p + off) = word_of(off / PAGE);
	meter_stop(&m, &ts);

	printf("\n== %s pages: %" PRIu64 " MiB anonymous at %p, first half bound to node %d, second to node %d; running on node %d's CPUs\n",
	       thp ? "THP (2 MiB)" : "4 KiB", len / MiB, (void *)a.p, node_a,
	       node_b, node_a);
	if (get_layout(&a, &l)) {
		fail("tiermm_pt_stat: %s", tiermm_errmsg());
		munmap(a.p, len);
		return -1;
	}
	printf("  written in %.1f s; data pages on node %d: %" PRIu64 ", on node %d: %" PRIu64
	       "; %" PRIu64 " THPs; tables PTE %" PRIu64 " PMD %" PRIu64 " PUD %" PRIu64 "\n",
	       ts.wall, node_a, l.data[node_a], node_b, l.data[node_b], l.huge,
	       l.total[0], l.total[1], l.total[2]);
	print_tables("made", &l);
	if (!thp && l.huge)
		fail("%" PRIu64 " THPs in the 4 KiB run", l.huge);
	if (thp && !l.huge)
		fail("no THP in the THP run");
	print_head();
	bench_stat(&a, rounds);
	bench_scan(&a, rounds);
	bench_migrate(&a, rounds, chunk);
	bad = verify(&a);
	if (bad)
		fail("%" PRIu64 " pages lost their contents", bad);
	else
		printf("  data intact (%" PRIu64 " pages checked)\n", len / PAGE);
	munmap(a.p, len);
	return 0;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: pt_bench [--mib N] [--rounds R] [--chunk-mib C] [--no-thp | --thp-only]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	uint64_t mib = 1024, chunk = 32;
	bool small = true, thp = true;
	int rounds = 5, i;
	char buf[128];

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--mib") && i + 1 < argc)
			mib = strtoull(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
			rounds = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--chunk-mib") && i + 1 < argc)
			chunk = strtoull(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--no-thp"))
			thp = false;
		else if (!strcmp(argv[i], "--thp-only"))
			small = false;
		else
			usage();
	}
	if (mib < 8 || mib % 4 || mib > 1024 * 1024 || rounds < 1 ||
	    rounds > MAX_ROUNDS || !chunk || chunk > mib / 2 || (!small && !thp))
		usage();
	setvbuf(stdout, NULL, _IOLBF, 0);
	find_nodes();
	if (node_b < 0) {
		fprintf(stderr, "pt_bench: needs two nodes with memory and CPUs\n");
		return 2;
	}
	/* Before anything is allocated: the tables it needs are made on A. */
	pin_to_node(node_a);
	pm_buf = malloc(mib * MiB / PAGE * 8);
	if (!pm_buf)
		return 2;
	/* Fail early with the library's message when the module is missing. */
	{
		struct tiermm_pt_stats *st;

		if (tiermm_pt_stat(0, 0, 0, 0, &st)) {
			fprintf(stderr, "pt_bench: %s\n", tiermm_errmsg());
			return 2;
		}
		tiermm_pt_stat_free(st);
	}
	buf[0] = '\0';
	read_file("/sys/kernel/mm/transparent_hugepage/enabled", buf, sizeof(buf));
	buf[strcspn(buf, "\n")] = '\0';
	printf("pt_bench: %" PRIu64 " MiB, %d rounds, nodes A = %d, B = %d, THP setting \"%s\"\n",
	       mib, rounds, node_a, node_b, buf);
	if (getenv("TIERMM_VM"))
		printf("pt_bench: TCG guest: every time below is emulated, not a hardware number; the ratios compare two ways of doing the same work in the same guest\n");

	if (small)
		run(mib * MiB, false, rounds, chunk * MiB);
	if (thp)
		run(mib * MiB, true, rounds, chunk * MiB);
	if (failures)
		printf("pt_bench: %d failure(s)\n", failures);
	return failures ? 1 : 0;
}
