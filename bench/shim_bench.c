// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * shim_bench: what libtiermm-preload.so costs a program.
 *
 *  - start-up: a program that exits at once, run without and with the
 *    shim (loading libtiermm and hwloc, parsing TIERMM_CONF, loading the
 *    topology from a cache, starting the runtime and its backend, the
 *    first statistics record); the difference of the medians, in ms.
 *    Target: under 10 ms.
 *  - alloc: an allocation-heavy program (malloc/realloc/free of mixed
 *    sizes with random lifetimes, glibc's allocator, about 0.1% of the
 *    allocations large enough for glibc to map them), the whole process
 *    timed, start-up included. Target: under 5% slower.
 *  - mmap: a program that maps, remaps and unmaps memory directly, every
 *    call through the shim's interposers: their worst case, reported.
 *
 * The configuration is the shim's default (the runtime with the automatic
 * backend) plus a topology cache and a statistics file. Where the runtime
 * cannot start (one memory tier, no hotness backend: the shim would step
 * aside), the bench says so and measures backend:none instead: placement,
 * interposers and the statistics thread, no runtime.
 *
 * The programs measured are shim_bench_work (this file built with
 * SHIM_BENCH_WORKER): like the programs the shim is for, it does not link
 * libtiermm, so loading libtiermm and hwloc counts against the shim.
 * Runs alternate (without, with, without, ...) and the medians are
 * compared, in one invocation. Exit status 0 when both targets are met,
 * 1 when one is missed (with --tcg: 0, the figures being emulated time), 2
 * on a usage error or when a run fails.
 *
 * Usage: shim_bench [--shim PATH] [--reps N] [--conf TIERMM_CONF] [--tcg]
 *        (--tcg: fewer, smaller runs for an emulated guest)
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef SHIM_BENCH_WORKER
#include <tiermm.h>

#include "bench_clock.h"
#endif

#ifdef SHIM_BENCH_WORKER
static uint64_t rng = 88172645463325252ULL;

static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static size_t alloc_size(void)
{
	uint64_t r = next() % 1000;

	if (r < 700)
		return 16 + next() % 240;
	if (r < 950)
		return 256 + next() % 8000;
	if (r < 999)
		return 8192 + next() % (120 * 1024);
	return (256 << 10) + next() % (4 << 20);
}

/* malloc/realloc/free with random lifetimes; every block is written. */
static int work_alloc(long iters)
{
	enum { SLOTS = 4096 };
	static char *slot[SLOTS];
	static size_t len[SLOTS];
	unsigned long sum = 0;

	for (long i = 0; i < iters; i++) {
		int k = (int)(next() % SLOTS);

		if (slot[k] && (i & 63)) {
			sum += (unsigned char)slot[k][len[k] - 1];
			free(slot[k]);
			slot[k] = NULL;
		} else if (slot[k]) {
			size_t n = alloc_size();
			char *p = realloc(slot[k], n);

			if (!p)
				return 1;
			slot[k] = p;
			len[k] = n;
			p[n - 1] = (char)i;
		} else {
			size_t n = alloc_size();

			slot[k] = malloc(n);
			if (!slot[k])
				return 1;
			len[k] = n;
			slot[k][0] = (char)i;
			slot[k][n - 1] = (char)i;
		}
	}
	for (int k = 0; k < SLOTS; k++)
		free(slot[k]);
	return sum == 42;	/* never: keeps the loop from being optimised away */
}

/* Direct mmap/mremap/munmap, one byte written per page (at most 16). */
static int work_mmap(long iters)
{
	enum { SLOTS = 256 };
	static char *slot[SLOTS];
	static size_t len[SLOTS];

	for (long i = 0; i < iters; i++) {
		int k = (int)(next() % SLOTS);

		if (slot[k] && (next() & 1)) {
			munmap(slot[k], len[k]);
			slot[k] = NULL;
		} else if (slot[k]) {
			size_t n = len[k] + 4096 * (1 + next() % 16);
			char *p = mremap(slot[k], len[k], n, MREMAP_MAYMOVE);

			if (p == MAP_FAILED)
				return 1;
			slot[k] = p;
			len[k] = n;
			p[n - 1] = 1;
		} else {
			size_t n = 4096 * (1 + next() % 256);
			char *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
				       -1, 0);

			if (p == MAP_FAILED)
				return 1;
			for (size_t off = 0; off < n && off < 16 * 4096; off += 4096)
				p[off] = 1;
			slot[k] = p;
			len[k] = n;
		}
	}
	for (int k = 0; k < SLOTS; k++)
		if (slot[k])
			munmap(slot[k], len[k]);
	return 0;
}

/* shim_bench_work noop|alloc|mmap ITERATIONS */
int main(int argc, char **argv)
{
	if (argc != 3)
		return 2;
	if (!strcmp(argv[1], "noop"))
		return 0;
	if (!strcmp(argv[1], "alloc"))
		return work_alloc(atol(argv[2]));
	if (!strcmp(argv[1], "mmap"))
		return work_mmap(atol(argv[2]));
	return 2;
}
#else
static char self[PATH_MAX], worker[PATH_MAX];

/* Run ourselves in work mode, with or without the shim; wall seconds, or -1. */
static double run(const char *work, long iters, const char *shim, const char *conf,
		  bool strict, int *status)
{
	char it[32];
	double t0 = bench_mono_s();
	pid_t pid;
	int st;

	snprintf(it, sizeof(it), "%ld", iters);
	pid = fork();
	if (pid < 0)
		return -1;
	if (!pid) {
		int null = open("/dev/null", O_WRONLY);

		if (null >= 0 && !strict)
			dup2(null, 2);
		if (shim) {
			setenv("LD_PRELOAD", shim, 1);
			setenv("TIERMM_CONF", conf, 1);
			if (strict)
				setenv("TIERMM_STRICT", "1", 1);
		} else {
			unsetenv("LD_PRELOAD");
		}
		execl(worker, worker, work, it, (char *)NULL);
		_exit(126);
	}
	if (waitpid(pid, &st, 0) < 0)
		return -1;
	if (status)
		*status = st;
	if (!WIFEXITED(st) || (WEXITSTATUS(st) && !strict))
		return -1;
	return bench_mono_s() - t0;
}

static int cmp_dbl(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_dbl);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Alternating runs; medians without and with the shim. 0 or -1. */
static int measure(const char *work, long iters, int reps, const char *shim, const char *conf,
		   double *plain, double *with)
{
	double a[reps], b[reps];

	/* One of each first, to warm the page cache. */
	if (run(work, iters, NULL, NULL, false, NULL) < 0 ||
	    run(work, iters, shim, conf, false, NULL) < 0)
		return -1;
	for (int i = 0; i < reps; i++) {
		a[i] = run(work, iters, NULL, NULL, false, NULL);
		b[i] = run(work, iters, shim, conf, false, NULL);
		if (a[i] < 0 || b[i] < 0)
			return -1;
	}
	*plain = median(a, reps);
	*with = median(b, reps);
	return 0;
}

static int find_shim(char *out, size_t len)
{
	char *slash;

	snprintf(out, len, "%s", self);
	slash = strrchr(out, '/');
	if (!slash)
		return -1;
	*slash = '\0';
	if ((size_t)snprintf(out + strlen(out), len - strlen(out), "/../lib/libtiermm-preload.so") >=
	    len - strlen(out))
		return -1;
	return access(out, R_OK);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "shim", required_argument, NULL, 's' },
		{ "reps", required_argument, NULL, 'r' },
		{ "conf", required_argument, NULL, 'c' },
		{ "tcg", no_argument, NULL, 't' },
		{ NULL, 0, NULL, 0 },
	};
	char shim[PATH_MAX] = "", dir[] = "/tmp/shim_bench-XXXXXX", cache[PATH_MAX + 32],
	     stats[PATH_MAX + 32], conf[4 * PATH_MAX] = "", base[2 * PATH_MAX + 256];
	const char *user_conf = NULL, *why = "";
	/*
	 * mmap: 10,000 calls, about 2 s a run here (50,000 made the bench
	 * take 3.5 minutes of CI for a figure that is only reported).
	 */
	long alloc_iters = 3000000, mmap_iters = 10000;
	int reps = 9, c, st = 0, ret = 0;
	double p0, p1, a0, a1, m0, m1;
	bool tcg = false;
	struct tiermm_topo *topo;
	ssize_t n;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			snprintf(shim, sizeof(shim), "%s", optarg);
			break;
		case 'r':
			reps = atoi(optarg);
			break;
		case 'c':
			user_conf = optarg;
			break;
		case 't':
			tcg = true;
			break;
		default:
			fprintf(stderr, "usage: shim_bench [--shim PATH] [--reps N] [--conf TIERMM_CONF] [--tcg]\n");
			return 2;
		}
	}
	if (reps < 1 || reps > 101) {
		fprintf(stderr, "shim_bench: --reps from 1 to 101\n");
		return 2;
	}
	if (tcg) {
		alloc_iters /= 10;
		mmap_iters /= 10;
		if (reps > 5)
			reps = 5;
	}
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		return 2;
	self[n] = '\0';
	snprintf(worker, sizeof(worker), "%s", self);
	if (!strrchr(worker, '/') ||
	    (size_t)snprintf(strrchr(worker, '/') + 1, sizeof(worker) - (size_t)(strrchr(worker, '/') + 1 - worker),
			     "shim_bench_work") >= sizeof(worker) - (size_t)(strrchr(worker, '/') + 1 - worker) ||
	    access(worker, X_OK)) {
		fprintf(stderr, "shim_bench: shim_bench_work is not next to %s\n", self);
		return 2;
	}
	if (!shim[0] && find_shim(shim, sizeof(shim))) {
		fprintf(stderr, "shim_bench: libtiermm-preload.so is not in ../lib next to %s; use --shim\n",
			self);
		return 2;
	}
	if (!mkdtemp(dir))
		return 2;
	snprintf(cache, sizeof(cache), "%s/topo.xml", dir);
	snprintf(stats, sizeof(stats), "%s/stats.json", dir);
	if (tiermm_topo_load(NULL, &topo) || tiermm_topo_export_xml(topo, cache, 0)) {
		fprintf(stderr, "shim_bench: topology cache: %s\n", tiermm_errmsg());
		return 2;
	}
	tiermm_topo_free(topo);
	snprintf(base, sizeof(base), "topo:%s,stats:%s", cache, stats);
	if (user_conf) {
		snprintf(conf, sizeof(conf), "%s,%s", base, user_conf);
	} else {
		/* The runtime if it can start here, else everything but it. */
		snprintf(conf, sizeof(conf), "%s", base);
		if (run("noop", 0, shim, conf, true, &st) < 0 || !WIFEXITED(st) || WEXITSTATUS(st)) {
			why = " (the tiering runtime cannot start here: measuring placement, interposers and statistics)";
			snprintf(conf, sizeof(conf), "%s,backend:none", base);
		}
	}
	printf("shim_bench: %s, TIERMM_CONF=%s%s\n", shim, conf, why);
	if (measure("noop", 0, tcg ? 11 : 31, shim, conf, &p0, &p1) ||
	    measure("alloc", alloc_iters, reps, shim, conf, &a0, &a1) ||
	    measure("mmap", mmap_iters, reps, shim, conf, &m0, &m1)) {
		fprintf(stderr, "shim_bench: a run failed (try TIERMM_STRICT=1 LD_PRELOAD=%s TIERMM_CONF=%s %s noop 0)\n",
			shim, conf, worker);
		ret = 2;
		goto out;
	}
	printf("shim_bench: start-up: %.2f ms without, %.2f ms with the shim: %+.2f ms%s\n",
	       p0 * 1e3, p1 * 1e3, (p1 - p0) * 1e3, tcg ? " (emulated time)" : "");
	printf("shim_bench: alloc (%ld operations): %.3f s without, %.3f s with: ratio %.3f (%+.1f%%)\n",
	       alloc_iters, a0, a1, a1 / a0, (a1 / a0 - 1) * 100);
	printf("shim_bench: mmap (%ld calls, every one interposed): %.3f s without, %.3f s with: ratio %.3f (%+.1f%%)\n",
	       mmap_iters, m0, m1, m1 / m0, (m1 / m0 - 1) * 100);
	printf("shim_bench: targets: start-up < 10 ms: %s; alloc < 5%%: %s%s\n",
	       (p1 - p0) * 1e3 < 10 ? "met" : "missed", a1 / a0 < 1.05 ? "met" : "missed",
	       tcg ? " (emulated time under TCG: reported, not judged)" : "");
	/* Under TCG the figures are emulated time: a missed target is no failure. */
	if (!tcg && ((p1 - p0) * 1e3 >= 10 || a1 / a0 >= 1.05))
		ret = 1;
out:
	unlink(cache);
	unlink(stats);
	rmdir(dir);
	return ret;
}
#endif /* SHIM_BENCH_WORKER */
