// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * memprobe-check: run inside a guest of the QEMU rig. From the CPUs of the
 * first node that has CPUs, measure latency and bandwidth to every node
 * with memory, and check that each probe verified its placement (a probe
 * returns -EIO when pages landed elsewhere) and gave a positive, finite
 * value. Under TCG the numbers say nothing about real hardware; they are
 * printed as TAP diagnostics only.
 *
 *   memprobe-check [BUFFER_MIB [BUDGET_S]]     (default 16 MiB, 0.3 s;
 *                                               0 MiB: the library default)
 *
 * Output is TAP; exit status 0 only if every check passed. Link with the
 * library's sources or libtiermm.a (private symbols are needed).
 */
#include <errno.h>
#include <math.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "probes.h"

static int tap_n, tap_failed;

static void check(int cond, const char *fmt, ...) TIERMM__PRINTF(2, 3);
static void check(int cond, const char *fmt, ...)
{
	va_list ap;

	tap_n++;
	if (!cond)
		tap_failed++;
	printf("%sok %d - ", cond ? "" : "not ", tap_n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

static int read_list(const struct tiermm__fs *fs, const char *path,
		     uint64_t *bits, unsigned int nbits)
{
	char buf[4096];
	ssize_t n = tiermm__fs_read(fs, path, buf, sizeof(buf));

	return n < 0 ? (int)n : tiermm__list_parse(buf, bits, nbits);
}

static int good(double v)
{
	return isfinite(v) && v > 0;
}

int main(int argc, char **argv)
{
	static uint64_t mem[TIERMM__MAX_NODES / 64], online[TIERMM__MAX_NODES / 64];
	static uint64_t ncpu[TIERMM__CPU_BITS / 64];
	struct tiermm__memprobe_params p = { .bytes = 16 << 20, .budget_s = 0.3 };
	struct tiermm__fs fs;
	int cpus[64], ncpus = 0, src = -1, last = -1;
	cpu_set_t allowed;
	char path[128];

	if (argc > 1)
		p.bytes = strtoull(argv[1], NULL, 0) << 20;
	if (argc > 2)
		p.budget_s = atof(argv[2]);
	tiermm__fs_init(&fs, NULL);
	if (read_list(&fs, "/sys/devices/system/node/has_memory", mem,
		      TIERMM__MAX_NODES) <= 0 ||
	    read_list(&fs, "/sys/devices/system/node/online", online,
		      TIERMM__MAX_NODES) <= 0 ||
	    sched_getaffinity(0, sizeof(allowed), &allowed)) {
		printf("1..0 # SKIP no NUMA information in sysfs\n");
		return 0;
	}
	/* The first node with CPUs we may run on. */
	for (int n = 0; n < TIERMM__MAX_NODES && src < 0; n++) {
		if (!tiermm__bit_test(online, (unsigned int)n))
			continue;
		last = n;
		snprintf(path, sizeof(path), "/sys/devices/system/node/node%d/cpulist", n);
		if (read_list(&fs, path, ncpu, TIERMM__CPU_BITS) <= 0)
			continue;
		for (int c = 0; c < CPU_SETSIZE && ncpus < 64; c++)
			if (tiermm__bit_test(ncpu, (unsigned int)c) &&
			    CPU_ISSET(c, &allowed))
				cpus[ncpus++] = c;
		if (ncpus)
			src = n;
	}
	for (int n = last + 1; n < TIERMM__MAX_NODES; n++)
		if (tiermm__bit_test(online, (unsigned int)n))
			last = n;
	check(src >= 0, "found a node with CPUs to measure from (node %d, %d CPUs)",
	      src, ncpus);
	if (src < 0)
		goto done;
	printf("# buffer %zu MiB%s, budget %g s per measurement\n",
	       p.bytes >> 20, p.bytes ? "" : " (library default)", p.budget_s);

	for (int n = 0; n < TIERMM__MAX_NODES; n++) {
		double ns = -1, rd = -1, wr = -1;
		int ret;

		if (!tiermm__bit_test(mem, (unsigned int)n))
			continue;
		ret = tiermm__probe_latency(cpus, 1, n, &p, &ns);
		check(ret == 0, "latency CPU %d -> node %d: placement verified (ret %d%s%s)",
		      cpus[0], n, ret, ret ? ": " : "", ret ? tiermm_errmsg() : "");
		check(ret == 0 && good(ns), "latency CPU %d -> node %d positive and finite: %.2f ns",
		      cpus[0], n, ns);
		ret = tiermm__probe_bandwidth(cpus, ncpus, n, &p, &rd, &wr);
		check(ret == 0, "bandwidth %d CPUs of node %d -> node %d: placement verified (ret %d%s%s)",
		      ncpus, src, n, ret, ret ? ": " : "", ret ? tiermm_errmsg() : "");
		check(ret == 0 && good(rd) && good(wr),
		      "bandwidth node %d -> node %d positive and finite: read %.3f GB/s, write %.3f GB/s",
		      src, n, rd, wr);
	}
	/* A node past the last online one is refused, by name. */
	{
		double ns;
		int ret = tiermm__probe_latency(cpus, 1, last + 1, &p, &ns);
		char want[32];

		snprintf(want, sizeof(want), "node %d", last + 1);
		check(ret == -EINVAL && strstr(tiermm_errmsg(), want),
		      "node %d (not online) refused: %s", last + 1, tiermm_errmsg());
	}
done:
	printf("1..%d\n", tap_n);
	return tap_failed ? 1 : 0;
}
