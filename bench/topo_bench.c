// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * topo_bench: loading the topology from tiermm's XML cache against full
 * discovery (hwloc + sysfs + kernel probes), both measured in this run.
 * Prints the medians and their ratio. Exit status 1 when the cache is not
 * at least 10x faster or takes 5 ms or more (the targets), 2 on errors.
 *
 * Usage: topo_bench [--tcg] [RUNS]   (default 21)
 *
 * --tcg: inside a QEMU TCG guest, CPU-bound work (hwloc's XML parser) is
 * emulated about 15x slower than native while system calls and sysfs reads
 * slow down far less, so the ratio there says little about hardware. The
 * numbers are printed with that caveat and the targets are not enforced.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <tiermm.h>

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv)
{
	int tcg = argc > 1 && !strcmp(argv[1], "--tcg");
	int runs = argc > 1 + tcg ? atoi(argv[1 + tcg]) : 21;
	char xml[] = "/tmp/tiermm-bench-XXXXXX";
	double *full, *cache, mf, mc;
	struct tiermm_topo *t;
	int fd;

	if (runs < 1 || runs > 10000) {
		fprintf(stderr, "topo_bench: RUNS must be 1..10000\n");
		return 2;
	}
	full = calloc((size_t)runs, sizeof(double));
	cache = calloc((size_t)runs, sizeof(double));
	fd = mkstemp(xml);
	if (!full || !cache || fd < 0) {
		perror("topo_bench");
		return 2;
	}
	close(fd);
	if (tiermm_topo_load(NULL, &t) || tiermm_topo_export_xml(t, xml, 0)) {
		fprintf(stderr, "topo_bench: %s\n", tiermm_errmsg());
		return 2;
	}
	tiermm_topo_free(t);
	for (int i = 0; i < runs; i++) {
		TIERMM_OPTS(tiermm_topo_opts, o, .xml_path = xml,
			    .flags = TIERMM_TOPO_CHECK_MACHINE);
		double t0 = now_ms();

		if (tiermm_topo_load(NULL, &t)) {
			fprintf(stderr, "topo_bench: discovery: %s\n", tiermm_errmsg());
			return 2;
		}
		full[i] = now_ms() - t0;
		tiermm_topo_free(t);
		t0 = now_ms();
		if (tiermm_topo_load(&o, &t)) {
			fprintf(stderr, "topo_bench: cache: %s\n", tiermm_errmsg());
			return 2;
		}
		cache[i] = now_ms() - t0;
		tiermm_topo_free(t);
	}
	unlink(xml);
	mf = median(full, runs);
	mc = median(cache, runs);
	printf("topo_bench: %d runs, median full discovery %.3f ms, median cache load %.3f ms, ratio %.1fx\n",
	       runs, mf, mc, mf / mc);
	printf("topo_bench: targets: ratio >= 10x: %s; cache < 5 ms: %s%s\n",
	       mf / mc >= 10 ? "met" : "NOT met", mc < 5 ? "met" : "NOT met",
	       tcg ? " (TCG guest: emulated time, not enforced)" : "");
	free(full);
	free(cache);
	return tcg || (mf / mc >= 10 && mc < 5) ? 0 : 1;
}
