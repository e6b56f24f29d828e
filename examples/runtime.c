// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * runtime: hints and the in-process tiering runtime.
 *
 * A 64 MiB buffer in three parts, all starting on the slowest tier:
 *   pin   8 MiB  PIN_FAST: moved to the fastest tier now, never moved off it
 *   hot  16 MiB  HOT: a bias towards the fast tier; this part is written
 *                for a few seconds, so the runtime sees it hot and promotes it
 *   cold 40 MiB  COLD: a bias towards the slow tier; never touched again
 * The runtime (a sampler and an engine thread inside this process) starts
 * with a fast-tier budget of 32 MiB. Its statistics are printed every
 * second, then the budget is cut to 16 MiB: the pinned part still counts
 * against it, so part of the hot part has to go back to the slow tier
 * (shown when the fast tier holds at most 1 MiB over the budget, or 10 s
 * later).
 *
 * Usage: runtime [-t SECONDS] [-q QUOTA|none]
 *   -t  how long to write the hot part (default 8)
 *   -q  CPU quota of the runtime, a share of one CPU (default: the
 *       library's 0.05); "none" for emulators such as QEMU's TCG, where
 *       the runtime's work costs 10-50 times what it does on hardware
 *
 * Needs two memory tiers and a hotness backend: perf with PEBS/IBS, or
 * tiermm.ko's accessed-bit scanner, or DAMON (root). Without them: exit
 * 77 with the reason. Exit 0 on success, 1 on error.
 *
 * Build against an installed tiermm with
 *   cc runtime.c $(pkg-config --cflags --libs tiermm) -o runtime
 */
/* mmap(2), madvise(2) and the like are not ISO C: cc -std=c11 hides them. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <tiermm.h>

#define MIB (1024 * 1024)
#define PIN_LEN (8 * MIB)
#define HOT_LEN (16 * MIB)
#define COLD_LEN (40 * MIB)
#define BUF_LEN (PIN_LEN + HOT_LEN + COLD_LEN)
#define MAX_TIERS 16

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Write one word in every page of [p, p + len) until until_s has passed. */
static void touch_until(char *p, size_t len, double until_s)
{
	long ps = sysconf(_SC_PAGESIZE);

	while (now_s() < until_s)
		for (size_t off = 0; off < len; off += (size_t)ps)
			(*(volatile char *)(p + off))++;
}

/* Share (%) of the present pages of a part on tier 0, or -1 on error. */
static double pct_fast(const struct tiermm_topo *topo, const void *p,
		       size_t len)
{
	uint64_t counts[MAX_TIERS], present = 0;
	int nr = tiermm_residency_tiers(topo, 0, p, len, counts, MAX_TIERS,
					NULL);

	if (nr < 0) {
		fprintf(stderr, "runtime: residency: %s\n", tiermm_errmsg());
		return -1;
	}
	for (int t = 0; t < nr; t++)
		present += counts[t];
	return present ? 100.0 * (double)counts[0] / (double)present : 0;
}

static void show_parts(const struct tiermm_topo *topo, const char *buf)
{
	printf("  on the fast tier: pin %.0f%%, hot %.0f%%, cold %.0f%%\n",
	       pct_fast(topo, buf, PIN_LEN),
	       pct_fast(topo, buf + PIN_LEN, HOT_LEN),
	       pct_fast(topo, buf + PIN_LEN + HOT_LEN, COLD_LEN));
}

/* A consistent copy of the counters, as of the last epoch. */
static int get_stats(struct tiermm_runtime *rt, struct tiermm_runtime_stats *s)
{
	memset(s, 0, sizeof(*s));
	s->sz = sizeof(*s);
	if (tiermm_runtime_stats(rt, s) < 0) {
		fprintf(stderr, "runtime: stats: %s\n", tiermm_errmsg());
		return -1;
	}
	if (s->state == TIERMM_RUNTIME_FAILED) {
		/* The engine stopped itself; error_msg says why. */
		fprintf(stderr, "runtime: the runtime failed: %s\n", s->error_msg);
		return -1;
	}
	return 0;
}

static void print_stats(const struct tiermm_runtime_stats *s)
{
	printf("  %llu epochs in %.1f s: promoted %llu pages, demoted %llu, failed %llu\n"
	       "  budget %llu MiB, hot set %llu MiB, on the fast tier %llu of %llu MiB resident,"
	       " %llu MiB under pins\n"
	       "  %llu observations from the backend (%llu lost); CPU %.2f s (sampling %.2f, classify %.2f, migrate %.2f)\n",
	       (unsigned long long)s->epochs, s->wall_s,
	       (unsigned long long)s->promoted_pages,
	       (unsigned long long)s->demoted_pages,
	       (unsigned long long)s->failed_pages,
	       (unsigned long long)(s->budget_bytes >> 20),
	       (unsigned long long)(s->hot_set_bytes >> 20),
	       (unsigned long long)(s->fast_bytes >> 20),
	       (unsigned long long)(s->resident_bytes >> 20),
	       (unsigned long long)(s->hinted_bytes >> 20),
	       (unsigned long long)s->samples,
	       (unsigned long long)s->samples_lost,
	       s->cpu_sampling_s + s->cpu_classify_s + s->cpu_migrate_s,
	       s->cpu_sampling_s, s->cpu_classify_s, s->cpu_migrate_s);
}

int main(int argc, char *argv[])
{
	/*
	 * The budget is this process's share of the fast tier: everything
	 * of it there counts (heap, stacks, libraries' data, pinned ranges),
	 * not only what the runtime moved. Other fields 0: defaults.
	 */
	TIERMM_OPTS(tiermm_runtime_opts, opts, .budget_bytes = 32ull * MIB);
	struct tiermm_runtime_stats s;
	struct tiermm_runtime *rt = NULL;
	struct tiermm_topo *topo;
	char *buf, *pin, *hot, *cold;
	int seconds = 8, opt, ret = 1;
	double t0;

	while ((opt = getopt(argc, argv, "t:q:")) != -1) {
		if (opt == 't' && atoi(optarg) > 0) {
			seconds = atoi(optarg);
		} else if (opt == 'q' && !strcmp(optarg, "none")) {
			opts.flags |= TIERMM_RUNTIME_NO_CPU_QUOTA;
		} else if (opt == 'q' && atof(optarg) > 0) {
			opts.cpu_quota = atof(optarg);
		} else {
			fprintf(stderr, "usage: %s [-t SECONDS] [-q QUOTA|none]\n",
				argv[0]);
			return 1;
		}
	}

	if (tiermm_topo_load(NULL, &topo) < 0) {
		fprintf(stderr, "runtime: loading the topology: %s\n",
			tiermm_errmsg());
		return 1;
	}
	if (tiermm_topo_nr_tiers(topo) < 2) {
		printf("runtime: skipped: this machine has one memory tier, nothing to tier\n");
		tiermm_topo_free(topo);
		return 77;
	}
	/* The runtime uses this topology's tiers: keep it until the stop. */
	opts.topo = topo;

	buf = mmap(NULL, BUF_LEN, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED) {
		perror("runtime: mmap");
		goto out_topo;
	}
	pin = buf;
	hot = pin + PIN_LEN;
	cold = hot + HOT_LEN;
	memset(buf, 1, BUF_LEN);

	/*
	 * The worst start: everything on the slowest tier, so that the
	 * runtime has something to promote.
	 */
	if (tiermm_move_tier(topo, 0, buf, BUF_LEN, tiermm_topo_nr_tiers(topo) - 1,
			     0, NULL) < 0) {
		fprintf(stderr, "runtime: demoting the buffer: %s\n",
			tiermm_errmsg());
		goto out_buf;
	}

	/*
	 * Hints are per process and name addresses; a later hint replaces
	 * an earlier one where they overlap. PIN_FAST moves its range to
	 * tier 0 right away (best effort: check with the residency calls).
	 * HOT and COLD only bias the engine's ranking; what it observes
	 * decides.
	 */
	if (tiermm_hint(pin, PIN_LEN, TIERMM_HINT_PIN_FAST, 0) < 0 ||
	    tiermm_hint(hot, HOT_LEN, TIERMM_HINT_HOT, 0) < 0 ||
	    tiermm_hint(cold, COLD_LEN, TIERMM_HINT_COLD, 0) < 0) {
		fprintf(stderr, "runtime: hint: %s\n", tiermm_errmsg());
		goto out_buf;
	}
	printf("hints: pin %d MiB %s, hot %d MiB %s, cold %d MiB %s\n",
	       PIN_LEN / MIB, tiermm_hint_name(TIERMM_HINT_PIN_FAST),
	       HOT_LEN / MIB, tiermm_hint_name(TIERMM_HINT_HOT),
	       COLD_LEN / MIB, tiermm_hint_name(TIERMM_HINT_COLD));
	show_parts(topo, buf);

	/*
	 * Start managing this process (opts.pid 0) with the first usable
	 * backend (opts.backend NULL: auto). ENOTSUP says that none is
	 * usable here, and why for each: that is this machine's limit, not
	 * an error of ours.
	 */
	ret = tiermm_runtime_start(&opts, &rt);
	if (ret == -ENOTSUP) {
		printf("runtime: skipped: %s\n", tiermm_errmsg());
		ret = 77;
		goto out_buf;
	} else if (ret < 0) {
		/* EPERM/EBUSY: the backend could not be opened; EINVAL: opts. */
		fprintf(stderr, "runtime: start: %s\n", tiermm_errmsg());
		ret = 1;
		goto out_buf;
	}
	ret = 1;
	if (get_stats(rt, &s) < 0)
		goto out_rt;
	printf("runtime started, budget 32 MiB, backend %s: %s\n", s.backend,
	       s.backend_why);

	/* The application's work: keep the hot part hot, report each second. */
	t0 = now_s();
	for (int i = 1; i <= seconds; i++) {
		touch_until(hot, HOT_LEN, t0 + i);
		if (get_stats(rt, &s) < 0)
			goto out_rt;
		printf("t=%2d s: epoch %llu, promoted %llu, demoted %llu, hot part %.0f%% on the fast tier\n",
		       i, (unsigned long long)s.epochs,
		       (unsigned long long)s.promoted_pages,
		       (unsigned long long)s.demoted_pages,
		       pct_fast(topo, hot, HOT_LEN));
	}
	printf("after %d s:\n", seconds);
	print_stats(&s);
	show_parts(topo, buf);

	/*
	 * Elastic fast memory: the new budget applies from the next epoch.
	 * Everything of this process on the fast tier counts, pinned pages
	 * included, so 16 MiB leaves about 8 for the hot part.
	 */
	if (tiermm_runtime_set_budget(rt, 16ull * MIB) < 0) {
		fprintf(stderr, "runtime: set_budget: %s\n", tiermm_errmsg());
		goto out_rt;
	}
	/*
	 * The budget is in force from the next epoch; demotions take an epoch
	 * or a few (only pages that the counts rank below the new hot set
	 * leave): watch for up to 10 s.
	 */
	t0 = now_s();
	for (int i = 1; i <= 10; i++) {
		touch_until(hot, HOT_LEN, t0 + i);
		if (get_stats(rt, &s) < 0)
			goto out_rt;
		if ((s.budget_bytes == 16ull * MIB && s.fast_bytes <= 17ull * MIB) || i == 10) {
			printf("%d s after the budget went down to 16 MiB:\n", i);
			break;
		}
	}
	print_stats(&s);
	show_parts(topo, buf);
	ret = 0;
out_rt:
	/* Stops both threads; memory stays where it is. */
	tiermm_runtime_stop(rt);
out_buf:
	/*
	 * Hints name addresses and outlive munmap(2): a later mapping here
	 * would inherit them. Clear them first (tiermm_free() does this for
	 * memory from tiermm_alloc_tier()).
	 */
	if (tiermm_hint(buf, BUF_LEN, TIERMM_HINT_DEFAULT, 0) < 0)
		fprintf(stderr, "runtime: clearing hints: %s\n", tiermm_errmsg());
	munmap(buf, BUF_LEN);
out_topo:
	tiermm_topo_free(topo);
	return ret;
}
