// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * scan_cost: what tiermm.ko's accessed-bit scanner costs the "scan" tiering
 * backend, per page, in the caller's CPU time (the ioctls run in the
 * caller's thread): one read of a region whose pages were all touched since
 * the last read (it clears every bit: the first half of a paired pass,
 * lib/scan_backend.c), one of a region nobody touched (the page-table walk
 * alone), and a paired pass (clear, wait, read) while a GUPS-like thread
 * updates the region at its own speed, 90% of the updates to 1/14 of it;
 * with the share of pages the second read found touched for each window.
 * The baseline, measured in the same run: the process writing one byte in
 * each page (what it costs the process itself to touch its memory once).
 *
 *   scan_cost [--mib N] [--no-gups]
 *
 * Needs tiermm.ko (exit 77 without it). Run in the rig, in instruction time
 * so that CPU times count instructions, not emulation (1 ns each):
 *   TIERMM_VM_ICOUNT=shift=0 tests/vm/run --preset tierbench -- scan_cost
 * Under plain TCG the times are inflated many times over; the ratios less.
 * It prints; it has no target (docs/tiering-benchmark.md, "Instruction time").
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <tiermm/pt.h>

#include "bench_clock.h"

#define CHUNK (32ULL << 20)	/* as the backend's paired passes */

static char *region;
static size_t len;
static volatile int stop;
static volatile uint64_t gups_ops;

/* One scanner read of [lo, lo + n): pages found accessed, or -errno. */
static int64_t scan_read(uintptr_t lo, uint64_t n)
{
	TIERMM_OPTS(tiermm_ab_scan_opts, o, .flags = TIERMM_AB_SCAN_FLUSH, .max_pages = 65536);
	struct tiermm_ab_scanner *sc;
	int64_t acc = 0;
	int ret = tiermm_ab_scan_open(0, lo, n, &o, &sc);

	if (ret)
		return ret;
	for (;;) {
		struct tiermm_ab_batch b = { .sz = sizeof(b) };

		ret = tiermm_ab_scan_next(sc, &b);
		if (ret != 1)
			break;
		acc += (int64_t)b.accessed;
	}
	tiermm_ab_scan_close(sc);
	return ret < 0 ? ret : acc;
}

/* The whole region, chunk by chunk: CPU seconds, pages found accessed. */
static double read_all(int64_t *acc)
{
	double t0 = bench_cpu_s();

	*acc = 0;
	for (size_t off = 0; off < len; off += CHUNK) {
		int64_t a = scan_read((uintptr_t)region + off, len - off < CHUNK ? len - off : CHUNK);

		if (a < 0) {
			fprintf(stderr, "scan_cost: scanner read: %s: %s\n", strerror((int)-a),
				tiermm_errmsg());
			exit(1);
		}
		*acc += a;
	}
	return bench_cpu_s() - t0;
}

static double touch_all(void)
{
	double t0 = bench_cpu_s();

	for (size_t i = 0; i < len; i += 4096)
		region[i]++;
	return bench_cpu_s() - t0;
}

static void *gups(void *arg)
{
	uint64_t x = 88172645463325252ULL, n = len / 8, hot = n / 14;
	uint64_t *t = (uint64_t *)region;

	(void)arg;
	while (!stop) {
		for (int i = 0; i < 1024; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			t[x % 10 < 9 ? (x >> 8) % hot : hot + (x >> 8) % (n - hot)]++;
		}
		gups_ops += 1024;
	}
	return NULL;
}

static void sleep_until(double t)
{
	struct timespec ts;

	ts.tv_sec = (time_t)t;
	ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

int main(int argc, char **argv)
{
	size_t mib = 512, pages;
	bool with_gups = true;
	double base, young, idle, t0;
	int64_t acc;
	pthread_t th;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--mib") && i + 1 < argc) {
			char *end;

			mib = strtoul(argv[++i], &end, 10);
			if (*end || !mib || mib > (1U << 20)) {
				fprintf(stderr, "scan_cost: --mib %s: a size in MiB, 1 to 1048576\n",
					argv[i]);
				return 2;
			}
		} else if (!strcmp(argv[i], "--no-gups")) {
			with_gups = false;
		} else {
			fprintf(stderr, "usage: scan_cost [--mib N] [--no-gups]\n");
			return 2;
		}
	}
	len = mib << 20;
	pages = len / 4096;
	region = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (region == MAP_FAILED) {
		perror("scan_cost: mmap");
		return 1;
	}
	madvise(region, len, MADV_NOHUGEPAGE);	/* 4 KiB entries, as the benchmark's data */
	memset(region, 1, len);
	{
		struct tiermm_ab_scanner *probe;

		if (tiermm_ab_scan_open(0, (uintptr_t)region, 4096, NULL, &probe)) {
			printf("scan_cost: skipped: %s\n", tiermm_errmsg());
			return 77;
		}
		tiermm_ab_scan_close(probe);
	}
	read_all(&acc);
	base = young = idle = 0;
	for (int k = 0; k < 5; k++) {
		base += touch_all();
		young += read_all(&acc);
		if ((size_t)acc < pages * 9 / 10)
			fprintf(stderr, "scan_cost: only %lld of %zu pages accessed after touching all\n",
				(long long)acc, pages);
		idle += read_all(&acc);
	}
	base /= 5;
	young /= 5;
	idle /= 5;
	printf("scan_cost: %zu MiB, %zu pages of 4 KiB; CPU time per page (ns)\n", mib, pages);
	printf("  baseline: the process writes a byte in each page   %8.1f\n", base / pages * 1e9);
	printf("  read, every page touched since the last (clears)   %8.1f  (%.1fx the baseline)\n",
	       young / pages * 1e9, young / base);
	printf("  read, no page touched (the walk alone)              %8.1f  (%.1fx)\n",
	       idle / pages * 1e9, idle / base);
	if (!with_gups)
		return 0;

	if (pthread_create(&th, NULL, gups, NULL)) {
		fprintf(stderr, "scan_cost: pthread_create failed\n");
		return 1;
	}
	t0 = bench_mono_s();
	sleep_until(t0 + 1.0);
	printf("  with GUPS updating the region (%.1f M updates/s), a paired pass, by window:\n",
	       (double)gups_ops / (bench_mono_s() - t0) / 1e6);
	{
		static const double win_ms[] = { 1, 2, 5, 10, 25, 100 };

		for (size_t w = 0; w < sizeof(win_ms) / sizeof(win_ms[0]); w++) {
			double c0 = bench_cpu_s(), late = 0;
			int64_t seen = 0;

			for (size_t off = 0; off < len; off += CHUNK) {
				uint64_t n = len - off < CHUNK ? len - off : CHUNK;
				double armed = bench_mono_s();

				scan_read((uintptr_t)region + off, n);
				if (bench_mono_s() < armed + win_ms[w] / 1e3)
					sleep_until(armed + win_ms[w] / 1e3);
				late += bench_mono_s() - (armed + win_ms[w] / 1e3);
				acc = scan_read((uintptr_t)region + off, n);
				seen += acc > 0 ? acc : 0;
			}
			printf("    window %5.1f ms: %5.1f%% of the pages touched; %6.1f ns a page (%.1fx the baseline); a chunk read %.1f ms after its window\n",
			       win_ms[w], 100.0 * (double)seen / (double)pages,
			       (bench_cpu_s() - c0) / pages * 1e9, (bench_cpu_s() - c0) / base,
			       late / (double)((len + CHUNK - 1) / CHUNK) * 1e3);
		}
	}
	stop = 1;
	pthread_join(th, NULL);
	return 0;
}
