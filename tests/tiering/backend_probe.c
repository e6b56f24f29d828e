// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * backend_probe: run a workload with a known hot region and check that a
 * hotness backend finds it. Meant for the QEMU guests (as root), where DAMON
 * and tiermm.ko work; see tests/vm/guest/check-backends.sh.
 *
 *   backend_probe report               every backend's usable() and "auto"
 *   backend_probe damon|scan [SECONDS] hot-region check (default 8 s)
 *   backend_probe perf-sw [SECONDS]    the perf path with software
 *                                      page-fault events: every first touch
 *                                      of the region must be observed
 *
 * The workload is a child process: it maps 64 MiB (2 MiB aligned), touches
 * it all once, then writes one byte per page of the hot 8 MiB at offset
 * 24 MiB, over and over. The probe polls the backend every 100 ms, spreads
 * each observation's weight over the 2 MiB buckets of the region it
 * overlaps, and after a settling second checks that the densest bucket is
 * hot and that hot buckets are on average at least 3 times as dense as the
 * cold ones. Then it kills the child and expects poll() to report -ESRCH
 * within 5 s.
 *
 * Exit status: 0 pass, 1 fail, 77 backend not usable here (reason printed).
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "tiering.h"

#define MIB (1ull << 20)
#define REGION (64 * MIB)
#define HOT_OFF (24 * MIB)
#define HOT_LEN (8 * MIB)
#define BUCKET (2 * MIB)
#define NBUCKETS (REGION / BUCKET)

static uintptr_t region;
static double bucket_w[NBUCKETS];
static uint64_t nobs, inside;
static bool counting;
/* perf-sw: pages of the region seen */
static unsigned char seen[REGION / 4096];

static uint64_t poll_cpu, poll_wall_max, npolls;

static uint64_t thread_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int sink(const struct tiermm__obs *obs, size_t n, void *ctx)
{
	(void)ctx;
	for (size_t i = 0; i < n; i++) {
		const struct tiermm__obs *o = &obs[i];
		bool range = o->flags & TIERMM__OBS_RANGE;
		uint64_t lo = o->addr, hi = lo + (range ? (uint64_t)o->weight * 4096 : 1);
		double per_page = range ? (o->hits ? o->hits : 1) : o->weight;

		nobs++;
		if (hi <= region || lo >= region + REGION)
			continue;
		inside++;
		if (!range) {
			seen[(lo - region) / 4096] = 1;
			if (counting)
				bucket_w[(lo - region) / BUCKET] += per_page;
			continue;
		}
		if (!counting)
			continue;
		/* Accesses per page times the pages the range has in each bucket. */
		for (uint64_t b = (lo > region ? lo - region : 0) / BUCKET;
		     b < NBUCKETS && region + b * BUCKET < hi; b++) {
			uint64_t blo = region + b * BUCKET, bhi = blo + BUCKET;
			uint64_t olo = lo > blo ? lo : blo, ohi = hi < bhi ? hi : bhi;

			if (ohi > olo)
				bucket_w[b] += per_page * (double)((ohi - olo) / 4096);
		}
	}
	return 0;
}

static void workload(int go, int ready)
{
	volatile char *p = (volatile char *)region;
	char c;

	if (read(go, &c, 1) != 1)
		_exit(1);
	for (uint64_t off = 0; off < REGION; off += 4096)
		p[off] = 1;
	if (write(ready, "r", 1) != 1)
		_exit(1);
	for (;;)
		for (uint64_t off = HOT_OFF; off < HOT_OFF + HOT_LEN; off += 4096)
			p[off]++;
}

static int report(void)
{
	struct tiermm__backend_cfg cfg = { .pid = 0 };
	const struct tiermm__backend_ops *ops;
	char why[2048];

	for (size_t i = 0; tiermm__backends[i]; i++) {
		int ok = tiermm__backends[i]->usable(&cfg, why, sizeof(why));

		printf("%s usable=%d %s\n", tiermm__backends[i]->name, ok, why);
	}
	printf("auto=%d %s\n", tiermm__backend_auto(&cfg, &ops, why, sizeof(why)), why);
	return 0;
}

int main(int argc, char **argv)
{
	struct tiermm__backend_cfg cfg = { 0 };
	const struct tiermm__backend_ops *ops;
	struct tiermm__backend_stats st;
	struct tiermm__backend *b;
	const char *name;
	char why[1024], c;
	int go[2], ready[2], ret, fails = 0, status;
	uint64_t secs = 8, t_end, t_count = 0;
	bool sw;
	void *raw;
	pid_t child;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 2) {
		fprintf(stderr, "usage: backend_probe report | damon|scan|perf-sw [SECONDS]\n");
		return 2;
	}
	if (!strcmp(argv[1], "report"))
		return report();
	if (argc > 2)
		secs = strtoull(argv[2], NULL, 10);
	sw = !strcmp(argv[1], "perf-sw");
	name = sw ? "perf" : argv[1];
	ops = tiermm__backend_find(name);
	if (!ops) {
		fprintf(stderr, "backend_probe: %s\n", tiermm_errmsg());
		return 2;
	}
	if (sw)
		cfg.test_flags = TIERMM__BACKEND_TEST_SWEVENT;

	raw = mmap(NULL, REGION + BUCKET, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (raw == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	region = ((uintptr_t)raw + BUCKET - 1) & ~(uintptr_t)(BUCKET - 1);
	if (pipe(go) || pipe(ready)) {
		perror("pipe");
		return 1;
	}
	child = fork();
	if (child < 0) {
		perror("fork");
		return 1;
	}
	if (!child)
		workload(go[0], ready[1]);

	cfg.pid = child;
	if (!ops->usable(&cfg, why, sizeof(why))) {
		printf("backend_probe: %s not usable: %s\n", name, why);
		kill(child, SIGKILL);
		waitpid(child, NULL, 0);
		return 77;
	}
	printf("backend_probe: %s\n", why);
	ret = ops->open(&cfg, &b);
	if (ret) {
		printf("backend_probe: %s open failed: %s\n", name, tiermm_errmsg());
		kill(child, SIGKILL);
		waitpid(child, NULL, 0);
		return 1;
	}
	if (write(go[1], "g", 1) != 1 || read(ready[0], &c, 1) != 1) {
		perror("workload");
		return 1;
	}
	printf("backend_probe: workload pid %d populated 64 MiB at 0x%" PRIxPTR
	       ", hot 0x%" PRIxPTR "-0x%" PRIxPTR "\n", (int)child, region,
	       (uintptr_t)(region + HOT_OFF), (uintptr_t)(region + HOT_OFF + HOT_LEN));
	t_end = now_ms() + secs * 1000;
	/* Settle for a second (the populating pass), then count. */
	t_count = now_ms() + 1000;
	while (now_ms() < t_end) {
		if (!counting && now_ms() >= t_count)
			counting = true;
		{
			uint64_t c0 = thread_ns(), w0 = mono_ns(), w;

			ret = ops->poll(b, sink, NULL);
			poll_cpu += thread_ns() - c0;
			w = mono_ns() - w0;
			if (w > poll_wall_max)
				poll_wall_max = w;
			npolls++;
		}
		/* 1: the scanner is in mid-pass (or armed), not a failure */
		if (ret < 0) {
			printf("backend_probe: poll failed: %d %s\n", ret, tiermm_errmsg());
			fails++;
			break;
		}
		usleep(100000);
	}
	ops->stats(b, &st);
	printf("backend_probe: %s: %" PRIu64 " polls, %" PRIu64 " observations (%" PRIu64
	       " in the region), samples %" PRIu64 ", lost %" PRIu64 ", passes %" PRIu64
	       ", pages scanned %" PRIu64 " accessed %" PRIu64 ", regions %" PRIu64
	       ", dropped %" PRIu64 ", cpu_ns %" PRIu64 "\n",
	       name, st.polls, nobs, inside, st.samples, st.lost, st.passes,
	       st.pages_scanned, st.pages_accessed, st.regions, st.dropped,
	       ops->cpu_ns(b));

	printf("backend_probe: %s: poll() in the caller's thread: %.2f ms CPU in %" PRIu64
	       " polls (%.3f ms each), longest %.2f ms wall\n", name, poll_cpu / 1e6, npolls,
	       npolls ? poll_cpu / 1e6 / (double)npolls : 0.0, poll_wall_max / 1e6);
	if (sw) {
		size_t n = 0;

		for (size_t i = 0; i < REGION / 4096; i++)
			n += seen[i];
		printf("backend_probe: perf-sw saw %zu of %llu first touches\n", n,
		       (unsigned long long)(REGION / 4096));
		/* THP faults report one address per 2 MiB. */
		if (n < NBUCKETS * 9 / 10) {
			printf("FAIL: too few first touches observed\n");
			fails++;
		}
	} else {
		double hot = 0, cold = 0, best = -1;
		size_t nh = 0, nc = 0, besti = 0;

		for (size_t i = 0; i < NBUCKETS; i++) {
			bool is_hot = i * BUCKET >= HOT_OFF && i * BUCKET < HOT_OFF + HOT_LEN;

			printf("  bucket %2zu %s %12.1f\n", i, is_hot ? "HOT " : "cold", bucket_w[i]);
			if (is_hot) {
				hot += bucket_w[i];
				nh++;
			} else {
				cold += bucket_w[i];
				nc++;
			}
			if (bucket_w[i] > best) {
				best = bucket_w[i];
				besti = i;
			}
		}
		hot /= (double)nh;
		cold /= (double)nc;
		printf("backend_probe: %s: hot mean %.1f, cold mean %.1f, ratio %.1f, densest bucket %zu (%s)\n",
		       name, hot, cold, cold > 0 ? hot / cold : 1e9, besti,
		       besti * BUCKET >= HOT_OFF && besti * BUCKET < HOT_OFF + HOT_LEN ? "hot" : "cold");
		if (hot <= 0) {
			printf("FAIL: nothing observed in the hot region\n");
			fails++;
		} else if (!(besti * BUCKET >= HOT_OFF && besti * BUCKET < HOT_OFF + HOT_LEN)) {
			printf("FAIL: the densest bucket is not hot\n");
			fails++;
		} else if (hot < 3 * cold) {
			printf("FAIL: hot buckets are not 3 times as dense as cold ones\n");
			fails++;
		}
	}

	/* The target goes away: poll() must say so. */
	kill(child, SIGKILL);
	waitpid(child, &status, 0);
	ret = 0;
	for (uint64_t t = now_ms() + 5000; now_ms() < t && ret != -ESRCH;) {
		ret = ops->poll(b, sink, NULL);
		usleep(100000);
	}
	printf("backend_probe: after the workload exited poll() returned %d (%s)\n", ret,
	       ret ? tiermm_errmsg() : "");
	if (ret != -ESRCH) {
		printf("FAIL: poll() did not report the exit\n");
		fails++;
	}
	ops->close(b);
	printf("backend_probe: %s %s\n", name, fails ? "FAILED" : "passed");
	return fails ? 1 : 0;
}
