// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * tierbench: how well a tiering policy keeps the accessed pages in the fast
 * tier, measured (not timed: TCG does not model memory latency) in the
 * tiered test guest. docs/tiering-benchmark.md has the method.
 *
 *   tierbench --workload gups|zipf|zipf-shift|btree
 *             --policy first-touch|tpp|damon|tiermm-scan|tiermm-damon
 *             [--fast-share 0.2] [--footprint-mib 1024] [--seconds 60]
 *             [--sample-ms 500] [--shift-s 10] [--threads 1]
 *             [--out FILE.csv] [--verbose]
 *   tierbench --list-policies
 *
 * Setup: the data region (footprint) is placed as first touch with a fast
 * tier of fast-share of the footprint would leave it: its first
 * fast-share pages on the fast node, the rest on the slow node (mbind,
 * then the range policy is reset to the default so every policy may move
 * pages). The fast node's remaining free memory is then filled with
 * hugetlb pages (which nothing can reclaim, demote or migrate) down to its
 * high watermark: the fast tier can hold the fast-share of the data and no
 * more, for every policy. The benchmark's own memory (probability tables,
 * status arrays, output) is bound to the slow node.
 *
 * Run: worker threads on the fast node's CPUs run the workload for
 * --seconds; the policy starts with them. Every --sample-ms the main thread
 * asks move_pages(2) where every data page is and computes the fast-tier
 * access share FTAS = sum of the probabilities of the pages on the fast
 * node, the oracle (the largest possible share for the capacity), pages
 * migrated (/proc/vmstat) and CPU (the policy's, the machine's system
 * time). One CSV row per sample, the summary at the end of the CSV and on
 * stdout.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <sys/syscall.h>

#include "tierbench.h"

#define HUGE_2M (2ul << 20)
#define WORKER_STACK (256ul << 10)
#define FILLER_MARGIN (8ul << 20)
#define FILLER_KEEP 16	/* pages left free above the high watermark */
#define FILLER_ROUNDS 5

static bool g_verbose;
static uint64_t g_t0;

void tb_log(struct tb_bench *b, const char *fmt, ...)
{
	va_list ap;
	double t = g_t0 ? (double)(tb_now_ns() - g_t0) / 1e9 : 0;

	(void)b;
	fprintf(stderr, "tierbench [%7.2f] ", t);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

#define VLOG(b, ...) do { if (g_verbose) tb_log(b, __VA_ARGS__); } while (0)

/* ---- options ---- */

struct opts {
	const char *workload, *policy, *out;
	double fast_share;
	double footprint_mib;
	double seconds;
	unsigned int sample_ms;
	double shift_s;
	double steady_from;	/* fraction of the run */
	int threads;
	double theta;
	uint64_t seed;
	int fast_node, slow_node;
	long min_free_kb;
	bool no_filler;
	double tm_quota;	/* tiermm policies' CPU quota; <0: default */
	unsigned int tm_backoff;	/* tiermm policies' backoff_max; 0: default */
};

static void usage(FILE *f)
{
	fprintf(f,
"usage: tierbench --workload W --policy P [options]\n"
"       tierbench --list-policies | --help\n"
"  --workload W        gups | zipf | zipf-shift | btree\n"
"  --policy P          %s\n"
"  --fast-share F      fast-tier capacity / footprint (default 0.2, Demeter's 1:5)\n"
"  --footprint-mib M   data size (default 1024)\n"
"  --seconds S         run time (default 60)\n"
"  --sample-ms MS      residency sampling period (default 500)\n"
"  --shift-s S         zipf-shift: seconds between hot-set moves (default 10)\n"
"  --steady-from F     steady state = run time after this fraction (default 0.5)\n"
"  --threads N         worker threads (default 1)\n"
"  --theta T           zipf exponent (default 0.99)\n"
"  --seed N            (default 1)\n"
"  --fast-node N, --slow-node N   default: from the kernel's memory tiers\n"
"  --min-free-kb N     vm.min_free_kbytes for the run (default 8192; 0 = leave)\n"
"  --no-filler         do not limit the fast node (debugging)\n"
"  --tiermm-quota Q    tiermm-* policies: the runtime's CPU quota, a share of\n"
"                      one CPU (default: the library's, 0.05; 0 = no quota)\n"
"  --tiermm-backoff N  tiermm-* policies: the runtime's backoff_max, how much\n"
"                      slower it may get once placement settled (default:\n"
"                      the library's, 32; 1 = always the full pace)\n"
"  --out FILE          CSV output (default: stdout)\n"
"  --verbose\n",
		tb_policy_names());
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
	enum { O_WL = 256, O_POL, O_SHARE, O_FOOT, O_SEC, O_SAMPLE, O_SHIFT,
	       O_STEADY, O_THREADS, O_THETA, O_SEED, O_FAST, O_SLOW, O_MINFREE,
	       O_NOFILL, O_OUT, O_VERB, O_LIST, O_HELP, O_QUOTA, O_BACKOFF };
	static const struct option lo[] = {
		{ "workload", 1, NULL, O_WL }, { "policy", 1, NULL, O_POL },
		{ "fast-share", 1, NULL, O_SHARE },
		{ "footprint-mib", 1, NULL, O_FOOT },
		{ "seconds", 1, NULL, O_SEC }, { "sample-ms", 1, NULL, O_SAMPLE },
		{ "shift-s", 1, NULL, O_SHIFT },
		{ "steady-from", 1, NULL, O_STEADY },
		{ "threads", 1, NULL, O_THREADS }, { "theta", 1, NULL, O_THETA },
		{ "seed", 1, NULL, O_SEED }, { "fast-node", 1, NULL, O_FAST },
		{ "slow-node", 1, NULL, O_SLOW },
		{ "min-free-kb", 1, NULL, O_MINFREE },
		{ "no-filler", 0, NULL, O_NOFILL }, { "out", 1, NULL, O_OUT },
		{ "verbose", 0, NULL, O_VERB },
		{ "tiermm-quota", 1, NULL, O_QUOTA },
		{ "tiermm-backoff", 1, NULL, O_BACKOFF },
		{ "list-policies", 0, NULL, O_LIST }, { "help", 0, NULL, O_HELP },
		{ NULL, 0, NULL, 0 }
	};
	int c;

	*o = (struct opts){ .fast_share = 0.2, .footprint_mib = 1024,
			    .seconds = 60, .sample_ms = 500, .shift_s = 10,
			    .steady_from = 0.5, .threads = 1, .theta = 0.99,
			    .seed = 1, .fast_node = -1, .slow_node = -1,
			    .min_free_kb = 8192, .tm_quota = -1 };
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case O_WL: o->workload = optarg; break;
		case O_POL: o->policy = optarg; break;
		case O_SHARE: o->fast_share = atof(optarg); break;
		case O_FOOT: o->footprint_mib = atof(optarg); break;
		case O_SEC: o->seconds = atof(optarg); break;
		case O_SAMPLE: o->sample_ms = (unsigned int)atoi(optarg); break;
		case O_SHIFT: o->shift_s = atof(optarg); break;
		case O_STEADY: o->steady_from = atof(optarg); break;
		case O_THREADS: o->threads = atoi(optarg); break;
		case O_THETA: o->theta = atof(optarg); break;
		case O_SEED: o->seed = strtoull(optarg, NULL, 0); break;
		case O_FAST: o->fast_node = atoi(optarg); break;
		case O_SLOW: o->slow_node = atoi(optarg); break;
		case O_MINFREE: o->min_free_kb = atol(optarg); break;
		case O_NOFILL: o->no_filler = true; break;
		case O_OUT: o->out = optarg; break;
		case O_VERB: g_verbose = true; break;
		case O_QUOTA: o->tm_quota = atof(optarg); break;
		case O_BACKOFF: o->tm_backoff = (unsigned int)atoi(optarg); break;
		case O_LIST: printf("%s\n", tb_policy_names()); exit(0);
		case O_HELP: usage(stdout); exit(0);
		default: usage(stderr); return -1;
		}
	}
	if (optind != argc || !o->workload || !o->policy) {
		usage(stderr);
		return -1;
	}
	if (o->fast_share <= 0 || o->fast_share >= 1 || o->footprint_mib < 8 ||
	    o->seconds <= 0 || o->sample_ms < 10 || o->threads < 1 ||
	    o->threads > TB_MAX_THREADS || o->theta <= 0 || o->shift_s <= 0 ||
	    o->steady_from < 0 || o->steady_from >= 1 ||
	    (o->tm_quota < 0 && o->tm_quota != -1) || o->tm_quota > 1 ||
	    o->tm_backoff > 1024) {
		fprintf(stderr, "tierbench: an option is out of range\n");
		return -1;
	}
	return 0;
}

/* ---- machine ---- */

/* The fastest and slowest memory tiers' node lists, from the kernel. */
static int find_tiers(uint64_t *fast, uint64_t *slow)
{
	const char *dir = "/sys/devices/virtual/memory_tiering";
	DIR *d = opendir(dir);
	struct dirent *de;
	long lo = -1, hi = -1;

	*fast = *slow = 0;
	if (!d)
		return -ENOENT;
	while ((de = readdir(d))) {
		char path[512], buf[128];
		long id;

		if (strncmp(de->d_name, "memory_tier", 11) ||
		    sscanf(de->d_name + 11, "%ld", &id) != 1)
			continue;
		snprintf(path, sizeof(path), "%s/%s/nodelist", dir, de->d_name);
		if (tb_read_str(path, buf, sizeof(buf)))
			continue;
		if (lo < 0 || id < lo) {
			lo = id;
			*fast = tb_parse_list(buf);
		}
		if (hi < 0 || id > hi) {
			hi = id;
			*slow = tb_parse_list(buf);
		}
	}
	closedir(d);
	return lo >= 0 && hi > lo ? 0 : -ENOENT;
}

static int lowest_bit(uint64_t m)
{
	return m ? __builtin_ctzll(m) : -1;
}

static int read_latency(int node, int initiator, double *ns)
{
	char path[160];
	uint64_t v;

	snprintf(path, sizeof(path),
		 "/sys/devices/system/node/node%d/access0/initiators/node%d",
		 node, initiator);
	if (access(path, F_OK))
		return -ENOENT;
	snprintf(path, sizeof(path),
		 "/sys/devices/system/node/node%d/access0/initiators/read_latency",
		 node);
	if (tb_read_u64(path, &v) || !v)
		return -ENODATA;
	*ns = (double)v;
	return 0;
}

struct saved_knob {
	const char *path;
	char val[64];
	bool saved;
};

static struct saved_knob knobs[] = {
	{ "/proc/sys/vm/min_free_kbytes", "", false },
	{ "/proc/sys/vm/watermark_boost_factor", "", false },
	{ "/proc/sys/vm/lowmem_reserve_ratio", "", false },
	{ "/proc/sys/vm/percpu_pagelist_high_fraction", "", false },
	{ "/proc/sys/kernel/numa_balancing", "", false },
	{ "/sys/kernel/mm/numa/demotion_enabled", "", false },
};

static int set_knob(unsigned int i, const char *val)
{
	if (!knobs[i].saved &&
	    !tb_read_str(knobs[i].path, knobs[i].val, sizeof(knobs[i].val)))
		knobs[i].saved = true;
	return tb_write_str(knobs[i].path, val);
}

static void restore_knobs(void)
{
	for (size_t i = 0; i < sizeof(knobs) / sizeof(knobs[0]); i++)
		if (knobs[i].saved)
			tb_write_str(knobs[i].path, knobs[i].val);
}

static char hugetlb_path[160];
static bool hugetlb_set;

static void release_filler(void)
{
	if (hugetlb_set)
		tb_write_str(hugetlb_path, "0");
	hugetlb_set = false;
}

/* ---- metadata arena ---- */

static unsigned char *meta_base;
static size_t meta_used, meta_cap;

static int meta_init(struct tb_bench *b, size_t cap)
{
	meta_base = mmap(NULL, cap, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (meta_base == MAP_FAILED)
		return -errno;
	madvise(meta_base, cap, MADV_NOHUGEPAGE);
	/* bound explicitly: the policy of the arena, whoever touches it */
	if (tb_mbind(meta_base, cap, TB_MPOL_BIND, 1ull << b->slow_node, 0))
		return -errno;
	meta_cap = cap;
	b->meta = meta_base;
	b->meta_len = cap;
	return 0;
}

void *tb_meta_alloc(size_t size)
{
	size_t off = (meta_used + 63) & ~(size_t)63;

	if (!meta_base || off + size > meta_cap)
		return NULL;
	meta_used = off + size;
	return meta_base + off;	/* fresh anonymous memory: zero */
}

/*
 * The filler's 4 KiB part lives in a child process, forked before the data
 * exists: memory of the benchmark's process is what a tiermm runtime
 * manages (and counts against its budget), and the child shares none of
 * the data (a fork after it would make every data page shared).
 */
static pid_t filler_pid = -1;
static int filler_cmd = -1, filler_ack = -1;

static void filler_child(int cmd, int ack, int node)
{
	struct rlimit rl = { RLIM_INFINITY, RLIM_INFINITY };
	uint64_t len;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	/* secretmem pages count as locked memory */
	setrlimit(RLIMIT_MEMLOCK, &rl);
	/* preferred, not bound: if the estimate was off, pages land on
	 * another node instead of invoking the OOM killer; counted below */
	if (tb_set_mempolicy(TB_MPOL_PREFERRED, 1ull << node))
		_exit(1);
	/* one mapping per request, kept until the parent kills us */
	while (read(cmd, &len, sizeof(len)) == sizeof(len) && len) {
		int64_t res = 0;
		unsigned char *m = MAP_FAILED;
		int fd = (int)syscall(SYS_memfd_secret, 0);

		if (fd < 0 || ftruncate(fd, (off_t)len))
			res = -errno;
		else
			m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED,
				 fd, 0);
		if (!res && m == MAP_FAILED)
			res = -errno;
		for (uint64_t i = 0; res >= 0 && m != MAP_FAILED && i < len;
		     i += TB_PAGE) {
			void *pg = m + i;
			int st;

			m[i] = 1;
			if (!tb_move_pages(0, 1, &pg, NULL, &st, 0) && st == node)
				res++;
		}
		if (write(ack, &res, sizeof(res)) != sizeof(res))
			_exit(1);
	}
	for (;;)
		pause();
}

static void filler_stop(void)
{
	if (filler_pid > 0) {
		kill(filler_pid, SIGKILL);
		waitpid(filler_pid, NULL, 0);
	}
	filler_pid = -1;
}

static int filler_start(int node)
{
	int cmd[2], ack[2];

	if (pipe(cmd) || pipe(ack))
		return -errno;
	filler_pid = fork();
	if (filler_pid < 0)
		return -errno;
	if (!filler_pid) {
		close(cmd[1]);
		close(ack[0]);
		filler_child(cmd[0], ack[1], node);
		_exit(0);
	}
	close(cmd[0]);
	close(ack[1]);
	filler_cmd = cmd[1];
	filler_ack = ack[0];
	atexit(filler_stop);
	return 0;
}

/* Pages filled, or -errno. */
static int64_t filler_fill(uint64_t len)
{
	int64_t res;

	if (filler_pid <= 0)
		return -ECHILD;
	if (write(filler_cmd, &len, sizeof(len)) != sizeof(len) ||
	    read(filler_ack, &res, sizeof(res)) != sizeof(res))
		return -EPIPE;
	return res;
}

/*
 * Push the fast node's per-CPU free lists back into the buddy allocator,
 * where the watermark checks (and every CPU) see them: on each of the
 * node's CPUs, fault in and free a few pages of the node; a free that finds
 * the list above its (small, set above) high mark returns the excess.
 */
static void pcp_flush(struct tb_bench *b)
{
	const size_t len = 256 * TB_PAGE;
	cpu_set_t old, one;

	if (sched_getaffinity(0, sizeof(old), &old))
		return;
	for (int c = 0; c < 64; c++) {
		unsigned char *m;

		if (!(b->fast_cpus & (1ull << c)))
			continue;
		CPU_ZERO(&one);
		CPU_SET(c, &one);
		if (sched_setaffinity(0, sizeof(one), &one))
			continue;
		m = mmap(NULL, len, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (m == MAP_FAILED)
			continue;
		if (!tb_mbind(m, len, TB_MPOL_PREFERRED, 1ull << b->fast_node, 0))
			for (size_t i = 0; i < len; i += TB_PAGE)
				m[i] = 1;
		munmap(m, len);
	}
	sched_setaffinity(0, sizeof(old), &old);
}

/* ---- workers ---- */

static pthread_barrier_t start_barrier;

static void *worker_main(void *arg)
{
	struct tb_worker *w = arg;
	struct tb_bench *b = w->b;
	cpu_set_t set;

	w->tid = tb_gettid();
	/* the workers fault and access with the default policy: NUMA
	 * balancing migrates only under it (MPOL_F_MOF) */
	tb_set_mempolicy(TB_MPOL_DEFAULT, 0);
	CPU_ZERO(&set);
	for (int c = 0; c < 64; c++)
		if (b->fast_cpus & (1ull << c))
			CPU_SET(c, &set);
	if (sched_setaffinity(0, sizeof(set), &set))
		tb_log(b, "worker %u: sched_setaffinity: %s", w->idx,
		       strerror(errno));
	pthread_barrier_wait(&start_barrier);
	while (!atomic_load_explicit(&b->stop, memory_order_relaxed)) {
		unsigned int e = atomic_load_explicit(&b->epoch,
						      memory_order_relaxed);

		w->sum += b->wl.ops->run(&b->wl, e, &w->rng, 1024);
		atomic_fetch_add_explicit(&w->ops, 1024, memory_order_relaxed);
	}
	return NULL;
}

/* ---- sampling ---- */

struct row {
	double t;
	unsigned int epoch;
	double ftas, oracle, oracle_used;
	uint64_t fast, slow, absent;
	uint64_t ops;
	uint64_t vm[TB_VM__COUNT];
	double policy_cpu, sys_cpu, workers_sys, sampler_cpu, query_ms;
	uint64_t fast_free_kib;
};

struct sampler {
	void **pages;		/* move_pages(2) query */
	int *status;
	uint64_t *pm;		/* /proc/self/pagemap entries */
	int pm_fd;
	struct tb_blockmap map;
	size_t n;
};

#define PM_PRESENT (1ull << 63)
#define PM_PFN_MASK ((1ull << 55) - 1)

/*
 * Node of every data page into s->status: from /proc/self/pagemap (the
 * page frame number, mapped to a node through the memory blocks), or with
 * move_pages(2) (nodes NULL). Both walk the page tables without touching
 * accessed bits; pagemap walks a whole table at a time and is about 2.5x
 * cheaper in the guest, which matters because the query shares the vCPUs
 * with the workload.
 */
static int query_nodes(struct tb_bench *b, struct sampler *s, bool pagemap)
{
	const size_t chunk = 65536;

	for (size_t i = 0; i < s->n; i += chunk) {
		size_t n = s->n - i < chunk ? s->n - i : chunk;

		if (!pagemap) {
			if (tb_move_pages(0, n, s->pages + i, NULL,
					  s->status + i, 0)) {
				tb_log(b, "move_pages (status): %s",
				       strerror(errno));
				return -errno;
			}
			continue;
		}
		{
			off_t off = (off_t)((uintptr_t)b->wl.data / TB_PAGE + i) * 8;
			size_t want = n * 8, got = 0;

			while (got < want) {
				ssize_t r = pread(s->pm_fd, (char *)s->pm + got,
						  want - got, off + (off_t)got);

				if (r <= 0) {
					tb_log(b, "pagemap read: %s",
					       r ? strerror(errno) : "short");
					return -EIO;
				}
				got += (size_t)r;
			}
			for (size_t j = 0; j < n; j++) {
				uint64_t e = s->pm[j];

				s->status[i + j] = (e & PM_PRESENT) ?
					tb_pfn_node(&s->map, e & PM_PFN_MASK) :
					-ENOENT;
			}
		}
	}
	return 0;
}

/* Where every data page is: counts, and FTAS under probabilities p. */
static int sample_residency(struct tb_bench *b, struct sampler *s,
			    const float *p, struct row *r, bool pagemap)
{
	double ftas = 0;
	uint64_t t0 = tb_now_ns();
	int ret = query_nodes(b, s, pagemap);

	if (ret)
		return ret;
	r->fast = r->slow = r->absent = 0;
	for (size_t i = 0; i < s->n; i++) {
		int st = s->status[i];

		if (st == b->fast_node) {
			r->fast++;
			ftas += p[i];
		} else if (st >= 0) {
			r->slow++;
		} else {
			r->absent++;
		}
	}
	r->ftas = ftas;
	r->query_ms = (double)(tb_now_ns() - t0) / 1e6;
	return 0;
}

static int cmp_desc(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;

	return (x < y) - (x > y);
}

/*
 * The oracle: best[j] = the largest share j fast pages can have (the sum of
 * the j largest probabilities), for j = 0..n. best[k] is the oracle of the
 * capacity; best[fast pages] that of the capacity a policy actually used
 * when it squeezed a few more pages into the fast tier than its share.
 */
static int oracle_prefix(const float *p, size_t n, double *best)
{
	static float *c;
	double sum = 0;

	if (!c)
		c = tb_meta_alloc(n * sizeof(float));
	if (!c)
		return -ENOMEM;
	memcpy(c, p, n * sizeof(float));
	qsort(c, n, sizeof(float), cmp_desc);
	best[0] = 0;
	for (size_t i = 0; i < n; i++) {
		sum += c[i];
		best[i + 1] = sum;
	}
	return 0;
}

static uint64_t total_ops(struct tb_bench *b)
{
	uint64_t s = 0;

	for (int i = 0; i < b->nthreads; i++)
		s += atomic_load_explicit(&b->workers[i].ops,
					  memory_order_relaxed);
	return s;
}

static double workers_sys(struct tb_bench *b)
{
	double sum = 0;

	for (int i = 0; i < b->nthreads; i++) {
		double s;

		if (!tb_task_cpu(b->pid, b->workers[i].tid, NULL, &s))
			sum += s;
	}
	return sum;
}

/* ---- summary ---- */

struct summary {
	double mean_ftas, mean_oracle, mean_oracle_k, ratio;
	double t90_start;		/* -1: never */
	int shifts, shifts_reached;
	double t90_shift_mean, t90_shift_max;	/* over reached shifts */
	double model_ns, oracle_model_ns, first_ns;
	double model_s;			/* for this run's accesses */
	uint64_t ops;
	double ops_per_s;
	double policy_cpu, policy_cpu_pct, sys_cpu, sampler_cpu;
	double steady_cpu_pct;		/* the policy's CPU over the steady state */
	uint64_t migrated, promoted, demoted, hint_faults, mig_fail;
	double mean_fast_pages;
	double query_ms_mean;
};

static void summarize(struct tb_bench *b, const struct row *rows, size_t n,
		      double seconds, double steady_from,
		      const double *shift_t, int nshift, struct summary *sm)
{
	double sf = 0, so = 0, sok = 0, sfast = 0, lat_ns = 0, olat_ns = 0, q = 0;
	size_t ns = 0, first_steady = n;
	double tsteady = seconds * steady_from;
	uint64_t acc = 0;

	memset(sm, 0, sizeof(*sm));
	sm->t90_start = -1;
	for (size_t i = 0; i < n; i++) {
		q += rows[i].query_ms;
		if (rows[i].t + 1e-9 >= tsteady) {
			if (first_steady == n)
				first_steady = i;
			sf += rows[i].ftas;
			so += rows[i].oracle_used;
			sok += rows[i].oracle;
			sfast += (double)rows[i].fast;
			ns++;
		}
		if (sm->t90_start < 0 && rows[i].epoch == 0 &&
		    rows[i].ftas >= 0.9 * rows[i].oracle_used)
			sm->t90_start = rows[i].t;
		if (i) {
			uint64_t d = rows[i].ops - rows[i - 1].ops;
			double f = rows[i].epoch == rows[i - 1].epoch ?
				   (rows[i].ftas + rows[i - 1].ftas) / 2 :
				   rows[i - 1].ftas;
			double o = rows[i].epoch == rows[i - 1].epoch ?
				   (rows[i].oracle + rows[i - 1].oracle) / 2 :
				   rows[i - 1].oracle;

			lat_ns += (double)d * (f * b->lat_fast_ns +
					       (1 - f) * b->lat_slow_ns);
			olat_ns += (double)d * (o * b->lat_fast_ns +
						(1 - o) * b->lat_slow_ns);
			acc += d;
		}
	}
	sm->query_ms_mean = n ? q / (double)n : 0;
	if (ns) {
		sm->mean_ftas = sf / (double)ns;
		sm->mean_oracle = so / (double)ns;
		sm->mean_oracle_k = sok / (double)ns;
		sm->ratio = sm->mean_oracle > 0 ? sm->mean_ftas / sm->mean_oracle : 0;
		sm->mean_fast_pages = sfast / (double)ns;
	}
	sm->ops = acc;
	sm->ops_per_s = n ? (double)acc / rows[n - 1].t : 0;
	sm->model_ns = acc ? lat_ns / (double)acc : 0;
	sm->oracle_model_ns = acc ? olat_ns / (double)acc : 0;
	sm->model_s = lat_ns / 1e9;
	sm->first_ns = n ? rows[0].ftas * b->lat_fast_ns +
			   (1 - rows[0].ftas) * b->lat_slow_ns : 0;
	/* time to 90% of the oracle after each shift, before the next */
	sm->shifts = nshift;
	for (int j = 0; j < nshift; j++) {
		double end = j + 1 < nshift ? shift_t[j + 1] : 1e300;

		for (size_t i = 0; i < n; i++) {
			if (rows[i].t + 1e-9 < shift_t[j] || rows[i].t >= end)
				continue;
			if (rows[i].ftas >= 0.9 * rows[i].oracle_used) {
				double d = rows[i].t - shift_t[j];

				sm->shifts_reached++;
				sm->t90_shift_mean += d;
				if (d > sm->t90_shift_max)
					sm->t90_shift_max = d;
				break;
			}
		}
	}
	if (sm->shifts_reached)
		sm->t90_shift_mean /= sm->shifts_reached;
	if (n) {
		const struct row *l = &rows[n - 1], *f = &rows[0];

		sm->policy_cpu = l->policy_cpu;
		sm->policy_cpu_pct = l->t > 0 ? 100.0 * l->policy_cpu / l->t : 0;
		if (first_steady < n && l->t > rows[first_steady].t)
			sm->steady_cpu_pct = 100.0 * (l->policy_cpu - rows[first_steady].policy_cpu) /
					     (l->t - rows[first_steady].t);
		sm->sys_cpu = l->sys_cpu;
		sm->sampler_cpu = l->sampler_cpu;
		sm->migrated = l->vm[TB_VM_PGMIGRATE_SUCCESS] -
			       f->vm[TB_VM_PGMIGRATE_SUCCESS];
		sm->mig_fail = l->vm[TB_VM_PGMIGRATE_FAIL] -
			       f->vm[TB_VM_PGMIGRATE_FAIL];
		sm->promoted = l->vm[TB_VM_PGPROMOTE_SUCCESS] -
			       f->vm[TB_VM_PGPROMOTE_SUCCESS];
		sm->demoted = (l->vm[TB_VM_PGDEMOTE_KSWAPD] -
			       f->vm[TB_VM_PGDEMOTE_KSWAPD]) +
			      (l->vm[TB_VM_PGDEMOTE_DIRECT] -
			       f->vm[TB_VM_PGDEMOTE_DIRECT]) +
			      (l->vm[TB_VM_PGDEMOTE_KHUGEPAGED] -
			       f->vm[TB_VM_PGDEMOTE_KHUGEPAGED]);
		sm->hint_faults = l->vm[TB_VM_NUMA_HINT_FAULTS] -
				  f->vm[TB_VM_NUMA_HINT_FAULTS];
	}
}

/* ---- output ---- */

static void write_csv(FILE *f, struct tb_bench *b, const struct opts *o,
		      const struct row *rows, size_t n, const char *hdr,
		      const struct summary *sm)
{
	fputs(hdr, f);
	fprintf(f, "t_s,epoch,ftas,oracle,oracle_used,fast_pages,slow_pages,absent_pages,ops,"
		   "pgmigrate_success,pgmigrate_fail,numa_pages_migrated,"
		   "numa_hint_faults,pgpromote_success,pgdemote_kswapd,"
		   "pgdemote_direct,policy_cpu_s,sys_cpu_s,workers_sys_s,"
		   "sampler_cpu_s,query_ms,fast_free_kib\n");
	for (size_t i = 0; i < n; i++) {
		const struct row *r = &rows[i];

		fprintf(f, "%.3f,%u,%.5f,%.5f,%.5f,%" PRIu64 ",%" PRIu64 ",%" PRIu64
			   ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64
			   ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64
			   ",%.3f,%.3f,%.3f,%.3f,%.1f,%" PRIu64 "\n",
			r->t, r->epoch, r->ftas, r->oracle, r->oracle_used,
			r->fast, r->slow,
			r->absent, r->ops, r->vm[TB_VM_PGMIGRATE_SUCCESS],
			r->vm[TB_VM_PGMIGRATE_FAIL],
			r->vm[TB_VM_NUMA_PAGES_MIGRATED],
			r->vm[TB_VM_NUMA_HINT_FAULTS],
			r->vm[TB_VM_PGPROMOTE_SUCCESS],
			r->vm[TB_VM_PGDEMOTE_KSWAPD],
			r->vm[TB_VM_PGDEMOTE_DIRECT], r->policy_cpu,
			r->sys_cpu, r->workers_sys, r->sampler_cpu,
			r->query_ms, r->fast_free_kib);
	}
	fprintf(f, "# summary workload=%s policy=%s mean_ftas=%.4f mean_oracle=%.4f mean_oracle_used=%.4f ftas_over_oracle=%.4f"
		   " t90_start_s=%.2f shifts=%d shifts_reached=%d t90_shift_mean_s=%.2f t90_shift_max_s=%.2f"
		   " model_ns_per_access=%.2f oracle_ns_per_access=%.2f initial_ns_per_access=%.2f model_s=%.3f"
		   " ops=%" PRIu64 " ops_per_s=%.0f policy_cpu_s=%.3f policy_cpu_pct=%.3f steady_cpu_pct=%.3f sys_cpu_s=%.3f sampler_cpu_s=%.3f"
		   " pages_migrated=%" PRIu64 " migrate_fail=%" PRIu64 " promoted=%" PRIu64 " demoted=%" PRIu64
		   " hint_faults=%" PRIu64 " mean_fast_pages=%.0f capacity_pages=%zu query_ms_mean=%.1f seconds=%.1f\n",
		o->workload, b->policy_name, sm->mean_ftas, sm->mean_oracle_k,
		sm->mean_oracle, sm->ratio, sm->t90_start, sm->shifts, sm->shifts_reached,
		sm->t90_shift_mean, sm->t90_shift_max, sm->model_ns,
		sm->oracle_model_ns, sm->first_ns, sm->model_s, sm->ops,
		sm->ops_per_s, sm->policy_cpu, sm->policy_cpu_pct, sm->steady_cpu_pct,
		sm->sys_cpu, sm->sampler_cpu, sm->migrated, sm->mig_fail, sm->promoted,
		sm->demoted, sm->hint_faults, sm->mean_fast_pages,
		b->fast_pages, sm->query_ms_mean, o->seconds);
}

/* Append to the CSV header, never past its end. */
static void hdr_add(char *hdr, size_t size, size_t *len, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void hdr_add(char *hdr, size_t size, size_t *len, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (*len >= size - 1)
		return;
	va_start(ap, fmt);
	n = vsnprintf(hdr + *len, size - *len, fmt, ap);
	va_end(ap);
	if (n > 0)
		*len = *len + (size_t)n < size - 1 ? *len + (size_t)n : size - 1;
}

/* ---- main ---- */

static int setup_nodes(struct tb_bench *b, const struct opts *o)
{
	uint64_t fast = 0, slow = 0;
	char path[128], buf[256];

	if (find_tiers(&fast, &slow) && (o->fast_node < 0 || o->slow_node < 0)) {
		tb_log(b, "the kernel shows fewer than two memory tiers (/sys/devices/virtual/memory_tiering); run in the tierbench preset (tests/vm/run --preset tierbench) or give --fast-node and --slow-node");
		return -ENOENT;
	}
	if (o->fast_node >= 0) {
		b->fast_node = o->fast_node;
	} else {
		if (__builtin_popcountll(fast) != 1) {
			tb_log(b, "the fastest memory tier has %d nodes; tierbench controls the capacity of one fast node: use the tierbench preset or --fast-node",
			       __builtin_popcountll(fast));
			return -EINVAL;
		}
		b->fast_node = lowest_bit(fast);
	}
	b->slow_node = o->slow_node >= 0 ? o->slow_node : lowest_bit(slow);
	if (b->slow_node < 0 || b->slow_node == b->fast_node) {
		tb_log(b, "no slow node");
		return -EINVAL;
	}
	snprintf(path, sizeof(path), "/sys/devices/system/node/node%d/cpulist",
		 b->fast_node);
	if (tb_read_str(path, buf, sizeof(buf)) || !(b->fast_cpus = tb_parse_list(buf))) {
		tb_log(b, "fast node %d has no CPUs: the workers must run on it",
		       b->fast_node);
		return -EINVAL;
	}
	if (read_latency(b->fast_node, b->fast_node, &b->lat_fast_ns) ||
	    read_latency(b->slow_node, b->fast_node, &b->lat_slow_ns)) {
		tb_log(b, "no HMAT access0 latencies from node %d to nodes %d and %d (sysfs access0/initiators)",
		       b->fast_node, b->fast_node, b->slow_node);
		return -ENODATA;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o;
	struct tb_bench *b = calloc(1, sizeof(*b));
	struct tb_workload *w;
	struct sampler smp = { 0 };
	struct row *rows;
	size_t nrows = 0, maxrows;
	float *p_cur, *p_next;
	double *best_cur, *best_next, *best_tmp;
	double *shift_t;
	int nshift = 0, ret = 1;
	uint64_t footprint, free0, free1, high, min_wm, usable;
	size_t hpages = 0, secret_pages = 0;
	bool use_pagemap = false;
	pthread_t th[TB_MAX_THREADS];
	struct summary sm;
	char hdr[8192];
	size_t hl = 0;
	double sys0 = 0, sampler0 = 0, wsys0 = 0;
	uint64_t t_end, next;
	FILE *out;

	if (!b || parse_opts(argc, argv, &o))
		return 2;
	b->verbose = g_verbose;
	b->pid = getpid();
	b->main_tid = tb_gettid();
	b->policy_name = o.policy;
	b->fast_share = o.fast_share;
	b->tm_quota = o.tm_quota;
	b->tm_backoff = o.tm_backoff;
	b->nthreads = o.threads;
	w = &b->wl;
	w->ops = tb_workload_find(o.workload);
	if (!w->ops) {
		fprintf(stderr, "tierbench: unknown workload '%s'\n", o.workload);
		return 2;
	}
	b->pol = tb_policy_find(o.policy);
	if (!b->pol) {
		fprintf(stderr, "tierbench: policy '%s' is not available in this build (have: %s)\n",
			o.policy, tb_policy_names());
		return 77;
	}
	g_t0 = tb_now_ns();
	if (setup_nodes(b, &o))
		return 1;
	VLOG(b, "fast node %d (%.0f ns), slow node %d (%.0f ns)", b->fast_node,
	     b->lat_fast_ns, b->slow_node, b->lat_slow_ns);

	/* machine settings common to every policy (restored at exit) */
	atexit(restore_knobs);
	if (o.min_free_kb > 0) {
		char v[32];

		snprintf(v, sizeof(v), "%ld", o.min_free_kb);
		if (set_knob(0, v))
			tb_log(b, "cannot set vm.min_free_kbytes");
	}
	if (set_knob(1, "0"))
		tb_log(b, "cannot set vm.watermark_boost_factor");
	/* small per-CPU free lists (6.12 lets them grow to 1/8 of a zone):
	 * free pages cached there are invisible to the watermark checks and
	 * would be hidden fast-tier capacity */
	if (set_knob(3, "100000"))
		tb_log(b, "cannot set vm.percpu_pagelist_high_fraction");
	/* keep user pages out of the DMA zone (16 MiB below the fast node's
	 * main zone): the kernel's tiering treats a node as having room when
	 * any of its zones does, so a half-used DMA zone would be extra
	 * fast-tier capacity that only some policies use */
	{
		char cur[64], val[64];
		unsigned int r[8], n = 0;
		char *p = cur;

		if (!tb_read_str(knobs[2].path, cur, sizeof(cur))) {
			while (n < 8 && *p) {
				char *e;

				r[n] = (unsigned int)strtoul(p, &e, 10);
				if (e == p)
					break;
				n++;
				p = e;
			}
			if (n >= 2) {
				size_t l = 0;

				r[0] = 1;
				for (unsigned int i = 0; i < n; i++)
					l += (size_t)snprintf(val + l, sizeof(val) - l,
							      "%s%u", i ? " " : "", r[i]);
				if (set_knob(2, val))
					tb_log(b, "cannot set vm.lowmem_reserve_ratio");
			}
		}
	}
	/* no tiering until the policy sets it up */
	if (set_knob(4, "0") || set_knob(5, "false"))
		tb_log(b, "cannot switch NUMA balancing or demotion off");

	/* everything but the data goes to the slow node */
	if (tb_set_mempolicy(TB_MPOL_BIND, 1ull << b->slow_node)) {
		tb_log(b, "set_mempolicy: %s", strerror(errno));
		return 1;
	}

	if (!o.no_filler && filler_start(b->fast_node)) {
		tb_log(b, "filler process: %s", strerror(errno));
		return 1;
	}
	/* the benchmark's own memory: about 40 bytes per data page, the
	 * zipf table, the rows and the stacks; reserved, not populated */
	if (meta_init(b, (size_t)(o.footprint_mib * 1048576.0 / TB_PAGE) * 64 +
			 (64ul << 20))) {
		tb_log(b, "metadata arena: %s", strerror(errno));
		return 1;
	}
	{
		uint64_t moved = tb_evacuate_node(b->fast_node, b->slow_node);

		VLOG(b, "moved %" PRIu64 " pages of files and other processes off the fast node",
		     moved);
	}

	w->prm = (struct tb_wl_params){
		.footprint = (size_t)(o.footprint_mib * 1048576.0),
		.theta = o.theta, .hot_share = 0.9, .hot_frac = 1.0 / 14.0,
		.shift_s = o.shift_s, .seed = o.seed };
	w->npages = w->ops->pages(&w->prm);
	b->fast_pages = (size_t)(o.fast_share * (double)w->npages + 0.5);
	w->prm.fast_pages = b->fast_pages;
	footprint = (uint64_t)w->npages * TB_PAGE;

	/*
	 * The filler, part 1: hugetlb pages on the fast node, taken before
	 * the data so they find contiguous memory, leaving room for the
	 * fast-tier share of the data above the high watermark plus a
	 * margin that part 2 takes back.
	 */
	pcp_flush(b);
	tb_node_wmark(b->fast_node, "min", false, &min_wm, NULL);
	/* without the per-CPU lists: another CPU's are out of reach */
	tb_node_wmark(b->fast_node, "high", false, &high, &usable);
	tb_node_free(b->fast_node, &free0);
	snprintf(hugetlb_path, sizeof(hugetlb_path),
		 "/sys/devices/system/node/node%d/hugepages/hugepages-2048kB/nr_hugepages",
		 b->fast_node);
	{
		uint64_t need = b->fast_pages * TB_PAGE + FILLER_MARGIN;

		usable *= TB_PAGE;
		if (usable < need) {
			tb_log(b, "the fast node has %" PRIu64 " MiB free above its high watermark, the data's fast share needs %" PRIu64 " MiB: use a smaller --footprint-mib or --fast-share",
			       usable >> 20, need >> 20);
			return 1;
		}
		if (!o.no_filler && usable - need >= HUGE_2M) {
			uint64_t want = (usable - need) / HUGE_2M, got = 0;

			atexit(release_filler);
			hugetlb_set = true;
			if (tb_write_u64(hugetlb_path, want))
				tb_log(b, "cannot reserve hugetlb pages on node %d (%s)",
				       b->fast_node, hugetlb_path);
			tb_read_u64(hugetlb_path, &got);
			hpages = got;
			if (got < want)
				tb_log(b, "filler: only %" PRIu64 " of %" PRIu64 " huge pages on node %d",
				       got, want, b->fast_node);
		}
	}

	w->data = mmap(NULL, footprint, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (w->data == MAP_FAILED) {
		tb_log(b, "mmap %" PRIu64 " bytes: %s", footprint, strerror(errno));
		return 1;
	}
	/* 4 KiB pages: the probabilities (and the oracle) are per base page */
	madvise(w->data, footprint, MADV_NOHUGEPAGE);
	/* first touch with a full fast tier: the first pages fast, the rest
	 * slow (preferred, not bound: never reclaim for it, and the check
	 * below catches a fast node that was too small) */
	if (tb_mbind(w->data, b->fast_pages * TB_PAGE, TB_MPOL_PREFERRED,
		     1ull << b->fast_node, 0) ||
	    tb_mbind(w->data + b->fast_pages * TB_PAGE,
		     footprint - b->fast_pages * TB_PAGE, TB_MPOL_BIND,
		     1ull << b->slow_node, 0)) {
		tb_log(b, "mbind: %s", strerror(errno));
		return 1;
	}
	VLOG(b, "building %s: %zu pages (%.0f MiB), fast-tier capacity %zu pages",
	     w->ops->name, w->npages, (double)footprint / 1048576.0,
	     b->fast_pages);
	if (w->ops->init(w)) {
		tb_log(b, "workload init failed");
		return 1;
	}
	/* from now on the pages may move anywhere */
	if (tb_mbind(w->data, footprint, TB_MPOL_DEFAULT, 0, 0)) {
		tb_log(b, "mbind default: %s", strerror(errno));
		return 1;
	}

	/* metadata: probabilities, status query arrays, rows */
	p_cur = tb_meta_alloc(w->npages * sizeof(float));
	p_next = tb_meta_alloc(w->npages * sizeof(float));
	smp.n = w->npages;
	smp.pages = tb_meta_alloc(w->npages * sizeof(void *));
	smp.status = tb_meta_alloc(w->npages * sizeof(int));
	smp.pm = tb_meta_alloc(65536 * sizeof(uint64_t));
	maxrows = (size_t)(o.seconds * 1000.0 / o.sample_ms) + 16;
	rows = tb_meta_alloc(maxrows * sizeof(*rows));
	shift_t = tb_meta_alloc(maxrows * sizeof(double));
	b->workers = tb_meta_alloc(sizeof(struct tb_worker) * TB_MAX_THREADS);
	if (!p_cur || !p_next || !smp.pages || !smp.status || !smp.pm ||
	    !rows || !shift_t || !b->workers) {
		tb_log(b, "out of memory");
		return 1;
	}
	memset(b->workers, 0, sizeof(struct tb_worker) * TB_MAX_THREADS);
	for (size_t i = 0; i < w->npages; i++)
		smp.pages[i] = w->data + i * TB_PAGE;
	w->ops->probs(w, 0, p_cur);
	best_cur = tb_meta_alloc((w->npages + 1) * sizeof(double));
	best_next = tb_meta_alloc((w->npages + 1) * sizeof(double));
	if (!best_cur || !best_next || oracle_prefix(p_cur, w->npages, best_cur)) {
		tb_log(b, "out of memory");
		return 1;
	}
	if (w->ops->shifts) {
		w->ops->probs(w, 1, p_next);
		oracle_prefix(p_next, w->npages, best_next);
	}
	{
		struct row r0, r1;

		if (sample_residency(b, &smp, p_cur, &r0, false))
			return 1;
		if (r0.fast != b->fast_pages || r0.absent) {
			tb_log(b, "initial placement: %" PRIu64 " pages on the fast node, %" PRIu64 " on others, %" PRIu64 " absent; wanted %zu fast: is the fast node big enough?",
			       r0.fast, r0.slow, r0.absent, b->fast_pages);
			return 1;
		}
		/* pagemap, if it gives frame numbers (root) and agrees */
		smp.pm_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
		if (smp.pm_fd >= 0 && !tb_blockmap_load(&smp.map) &&
		    !sample_residency(b, &smp, p_cur, &r1, true) &&
		    r1.fast == r0.fast && r1.slow == r0.slow && !r1.absent) {
			use_pagemap = true;
		} else {
			tb_log(b, "pagemap gives no usable frame numbers: sampling with move_pages(2)");
		}
		VLOG(b, "residency query: %s, %.0f ms", use_pagemap ?
		     "pagemap" : "move_pages", use_pagemap ? r1.query_ms : r0.query_ms);
	}

	/*
	 * The filler, part 2: what is left above the high watermark, in 4 KiB
	 * pages of a memfd_secret(2) mapping bound to the fast node (unmovable
	 * and unevictable: secretmem refuses migration), so the fast tier
	 * holds exactly the data's share when the policy starts.
	 */
	/*
	 * In rounds: free pages cached on per-CPU lists are out of the
	 * watermark checks' sight (and another CPU's out of the filler's
	 * reach) until they go back to the buddy allocator; each round first
	 * pushes them back, then takes what is above the high watermark.
	 */
	for (int round = 0; !o.no_filler && round < FILLER_ROUNDS; round++) {
		uint64_t len;
		int64_t got;

		pcp_flush(b);
		tb_node_wmark(b->fast_node, "high", false, &high, &usable);
		if (usable <= 2 * FILLER_KEEP)
			break;
		len = (usable - FILLER_KEEP) * TB_PAGE;
		got = filler_fill(len);
		if (got < 0) {
			tb_log(b, "memfd_secret filler: %s; the fast tier is %" PRIu64 " KiB larger than asked",
			       strerror((int)-got), len >> 10);
			break;
		}
		secret_pages += (size_t)got;
		VLOG(b, "filler round %d: %" PRIu64 " pages above the high watermark, %" PRId64 " taken",
		     round, usable, got);
	}
	pcp_flush(b);
	tb_node_wmark(b->fast_node, "high", true, &high, &usable);
	tb_node_free(b->fast_node, &free1);
	VLOG(b, "fast node %d: free %" PRIu64 " MiB -> %" PRIu64 " KiB with %zu huge + %zu secret pages (watermarks: min %" PRIu64 " KiB, high %" PRIu64 " KiB)",
	     b->fast_node, free0 >> 20, free1 >> 10, hpages, secret_pages,
	     min_wm * 4, high * 4);

	ret = b->pol->setup(b);
	if (ret) {
		tb_log(b, "policy %s cannot run here (%s)", o.policy,
		       strerror(-ret));
		b->pol->stop(b);
		return ret == -ENOTSUP ? 77 : 1;
	}

	/* header: the run's configuration */
	hdr_add(hdr, sizeof(hdr), &hl,
		       "# tierbench workload=%s policy=%s\n# what=%s\n",
		       w->ops->name, o.policy, w->ops->what);
	hdr_add(hdr, sizeof(hdr), &hl,
		       "# pages=%zu footprint_mib=%.1f fast_share=%.3f capacity_pages=%zu fast_node=%d slow_node=%d lat_fast_ns=%.0f lat_slow_ns=%.0f\n",
		       w->npages, (double)footprint / 1048576.0, o.fast_share,
		       b->fast_pages, b->fast_node, b->slow_node,
		       b->lat_fast_ns, b->lat_slow_ns);
	hdr_add(hdr, sizeof(hdr), &hl,
		       "# threads=%d seconds=%.1f sample_ms=%u shift_s=%.1f steady_from=%.2f theta=%.3f seed=%" PRIu64 "\n",
		       o.threads, o.seconds, o.sample_ms, o.shift_s,
		       o.steady_from, o.theta, o.seed);
	hdr_add(hdr, sizeof(hdr), &hl,
		       "# filler_hugepages=%zu filler_secret_pages=%zu fast_free_kib=%" PRIu64 " usable_above_high_pages=%" PRIu64 " wmark_min_kib=%" PRIu64 " wmark_high_kib=%" PRIu64 " min_free_kbytes=%ld oracle0=%.5f residency=%s\n",
		       hpages, secret_pages, free1 >> 10, usable, min_wm * 4, high * 4, o.min_free_kb,
		       best_cur[b->fast_pages], use_pagemap ? "pagemap" : "move_pages");

	/* workers */
	pthread_barrier_init(&start_barrier, NULL, (unsigned int)o.threads + 1);
	for (int i = 0; i < o.threads; i++) {
		struct tb_worker *wk = &b->workers[i];
		pthread_attr_t attr;
		void *stack;

		wk->idx = (unsigned int)i;
		wk->b = b;
		wk->rng = tb_rng_seed(o.seed, (unsigned int)i);
		/* a stack written here, so it is on the slow node and the
		 * worker takes nothing from the fast tier's capacity */
		stack = tb_meta_alloc(WORKER_STACK);
		if (!stack) {
			tb_log(b, "worker stack: %s", strerror(errno));
			b->pol->stop(b);
			return 1;
		}
		memset(stack, 0, WORKER_STACK);
		pthread_attr_init(&attr);
		pthread_attr_setstack(&attr, stack, WORKER_STACK);
		if (pthread_create(&th[i], &attr, worker_main, wk)) {
			tb_log(b, "pthread_create failed");
			b->pol->stop(b);
			return 1;
		}
	}
	tb_machine_cpu(&sys0, NULL);
	{
		double u, s;

		tb_task_cpu(b->pid, b->main_tid, &u, &s);
		sampler0 = u + s;
	}
	pthread_barrier_wait(&start_barrier);
	g_t0 = tb_now_ns();
	wsys0 = workers_sys(b);
	ret = b->pol->start(b);
	if (ret) {
		tb_log(b, "policy %s failed to start (%s)", o.policy,
		       strerror(-ret));
		atomic_store(&b->stop, true);
		for (int i = 0; i < o.threads; i++)
			pthread_join(th[i], NULL);
		b->pol->stop(b);
		return 1;
	}
	hdr_add(hdr, sizeof(hdr), &hl, "# policy_setup=%s\n# policy_cpu_how=%s\n",
		       b->pol_note, b->pol->cpu_how);

	t_end = g_t0 + (uint64_t)(o.seconds * 1e9);
	next = g_t0;
	for (;;) {
		uint64_t now = tb_now_ns();
		struct row *r = &rows[nrows];
		double t = (double)(now - g_t0) / 1e9, u, s;
		bool last = now >= t_end || nrows + 1 >= maxrows;
		unsigned int e = atomic_load(&b->epoch);

		/* move the hot set, exactly at a sample */
		if (w->ops->shifts && !last && t >= (double)(e + 1) * o.shift_s) {
			float *tmp = p_cur;

			e++;
			atomic_store(&b->epoch, e);
			shift_t[nshift++] = t;
			p_cur = p_next;
			p_next = tmp;
			best_tmp = best_cur;
			best_cur = best_next;
			best_next = best_tmp;
			VLOG(b, "shift to epoch %u (oracle %.3f)", e,
			     best_cur[b->fast_pages]);
		}
		r->t = t;
		r->epoch = e;
		r->oracle = best_cur[b->fast_pages];
		r->ops = total_ops(b);
		if (sample_residency(b, &smp, p_cur, r, use_pagemap))
			break;
		r->oracle_used = best_cur[r->fast > b->fast_pages ?
					  (r->fast < w->npages ? r->fast : w->npages) :
					  b->fast_pages];
		tb_vmstat_read(r->vm);
		{
			uint64_t fb = 0;

			tb_node_free(b->fast_node, &fb);
			r->fast_free_kib = fb >> 10;
		}
		r->policy_cpu = b->pol->cpu_s(b);
		tb_machine_cpu(&s, NULL);
		r->sys_cpu = s - sys0;
		r->workers_sys = workers_sys(b) - wsys0;
		tb_task_cpu(b->pid, b->main_tid, &u, &s);
		r->sampler_cpu = u + s - sampler0;
		VLOG(b, "ftas %.4f oracle %.4f fast %" PRIu64 " ops %" PRIu64 " migrated %" PRIu64 " query %.0f ms policy cpu %.2f s",
		     r->ftas, r->oracle, r->fast, r->ops,
		     r->vm[TB_VM_PGMIGRATE_SUCCESS], r->query_ms, r->policy_cpu);
		if (g_verbose && b->pol->describe) {
			char d[512];

			b->pol->describe(b, d, sizeof(d));
			tb_log(b, "%s", d);
		}
		nrows++;
		if (last)
			break;
		/* the next epoch's probabilities, off the sampling path */
		if (w->ops->shifts && nshift && shift_t[nshift - 1] == t) {
			w->ops->probs(w, e + 1, p_next);
			oracle_prefix(p_next, w->npages, best_next);
		}
		next += (uint64_t)o.sample_ms * 1000000ull;
		now = tb_now_ns();
		if (next > t_end)
			next = t_end;
		if (next > now) {
			struct timespec ts = { (time_t)((next - now) / 1000000000ull),
					       (long)((next - now) % 1000000000ull) };

			nanosleep(&ts, NULL);
		} else {
			next = now;	/* the query took longer than a period */
		}
	}
	atomic_store(&b->stop, true);
	for (int i = 0; i < o.threads; i++)
		pthread_join(th[i], NULL);
	b->pol->stop(b);
	release_filler();
	filler_stop();
	restore_knobs();
	if (b->pol_final[0]) {
		VLOG(b, "%s: %s", o.policy, b->pol_final);
		hdr_add(hdr, sizeof(hdr), &hl, "# policy_final=%s\n",
			       b->pol_final);
	}

	summarize(b, rows, nrows, o.seconds, o.steady_from, shift_t, nshift, &sm);
	out = o.out ? fopen(o.out, "w") : stdout;
	if (!out) {
		tb_log(b, "cannot write %s: %s", o.out, strerror(errno));
		return 1;
	}
	write_csv(out, b, &o, rows, nrows, hdr, &sm);
	if (out != stdout)
		fclose(out);
	printf("tierbench: workload=%s policy=%s mean_ftas=%.4f oracle=%.4f ratio=%.3f t90_start_s=%.1f model_ns_per_access=%.1f policy_cpu_s=%.2f (%.2f%% of a CPU; %.2f%% in the steady state) pages_migrated=%" PRIu64 " ops=%" PRIu64 "\n",
	       o.workload, o.policy, sm.mean_ftas, sm.mean_oracle, sm.ratio,
	       sm.t90_start, sm.model_ns, sm.policy_cpu, sm.policy_cpu_pct, sm.steady_cpu_pct,
	       sm.migrated, sm.ops);
	if (b->pol_failed) {
		tb_log(b, "the policy failed during the run (%s): the run does not count",
		       b->pol_final);
		return 1;
	}
	return 0;
}
