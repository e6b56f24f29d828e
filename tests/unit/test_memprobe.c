// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Memory micro-probes, live on this host: latency and bandwidth to node 0
 * give plausible numbers within their budget, bad arguments are refused
 * with a message, and the caller's affinity and memory policy survive.
 */
#include <errno.h>
#include <math.h>
#include <numaif.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "internal.h"
#include "probes.h"

static const struct tiermm__memprobe_params small = {
	.bytes = 16 << 20, .budget_s = 0.2,
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The first n CPUs the calling thread may run on; how many there are. */
static int allowed_cpus(int *cpus, int n)
{
	cpu_set_t set;
	int k = 0;

	assert_int_equal(sched_getaffinity(0, sizeof(set), &set), 0);
	for (int c = 0; c < CPU_SETSIZE && k < n; c++)
		if (CPU_ISSET(c, &set))
			cpus[k++] = c;
	return k;
}

static void test_latency(void **state)
{
	int cpus[2], n = allowed_cpus(cpus, 2);
	double ns = -1, t0;

	(void)state;
	for (int i = 0; i < n; i++) {
		errno = 4242;
		t0 = now_s();
		assert_int_equal(tiermm__probe_latency(&cpus[i], 1, 0, &small, &ns), 0);
		assert_int_equal(errno, 4242);
		print_message("latency cpu %d -> node 0 (16 MiB, 0.2 s): %.2f ns in %.2f s\n",
			      cpus[i], ns, now_s() - t0);
		assert_true(isfinite(ns));
		assert_true(ns > 0.3 && ns < 10000);
		/* Budget plus set-up of a 16 MiB buffer: far below 5 s. */
		assert_true(now_s() - t0 < 5);
	}
}

/* Default buffer size (4x the largest cache, >= 64 MiB), short budget. */
static void test_latency_default_size(void **state)
{
	struct tiermm__memprobe_params p = { .bytes = 0, .budget_s = 0.2 };
	int cpu;
	double ns = -1, t0 = now_s();

	(void)state;
	assert_int_equal(allowed_cpus(&cpu, 1), 1);
	assert_int_equal(tiermm__probe_latency(&cpu, 1, 0, &p, &ns), 0);
	print_message("latency cpu %d -> node 0 (default size, 0.2 s): %.2f ns in %.2f s\n",
		      cpu, ns, now_s() - t0);
	assert_true(isfinite(ns) && ns > 0.3 && ns < 10000);
}

static void test_bandwidth(void **state)
{
	int cpus[2], n = allowed_cpus(cpus, 2);
	double rd = -1, wr = -1, t0;

	(void)state;
	for (int k = 1; k <= n; k++) {
		errno = 4242;
		t0 = now_s();
		assert_int_equal(tiermm__probe_bandwidth(cpus, k, 0, &small, &rd, &wr), 0);
		assert_int_equal(errno, 4242);
		print_message("bandwidth %d thread(s) -> node 0 (16 MiB, 0.2 s): read %.2f GB/s, write %.2f GB/s in %.2f s\n",
			      k, rd, wr, now_s() - t0);
		assert_true(isfinite(rd) && isfinite(wr));
		assert_true(rd > 0.01 && rd < 10000);
		assert_true(wr > 0.01 && wr < 10000);
		assert_true(now_s() - t0 < 5);
	}
	/* The same CPU twice is allowed (two threads share it). */
	cpus[1] = cpus[0];
	assert_int_equal(tiermm__probe_bandwidth(cpus, 2, 0, &small, &rd, &wr), 0);
	assert_true(rd > 0 && wr > 0);
}

static void expect_einval(int ret, const char *needle)
{
	assert_int_equal(ret, -EINVAL);
	assert_int_equal(errno, EINVAL);
	if (!strstr(tiermm_errmsg(), needle))
		fail_msg("message '%s' does not mention '%s'", tiermm_errmsg(),
			 needle);
}

static void test_bad_arguments(void **state)
{
	int cpu0, bad = 9999, neg = -3;
	double ns = 0, rd = 0, wr = 0;
	struct tiermm__memprobe_params p = small;

	(void)state;
	assert_int_equal(allowed_cpus(&cpu0, 1), 1);

	errno = 0;
	expect_einval(tiermm__probe_latency(&cpu0, 0, 0, &small, &ns), "0 CPUs");
	errno = 0;
	expect_einval(tiermm__probe_bandwidth(&cpu0, 0, 0, &small, &rd, &wr), "0 CPUs");
	errno = 0;
	expect_einval(tiermm__probe_latency(NULL, 1, 0, &small, &ns), "CPU");
	errno = 0;
	expect_einval(tiermm__probe_latency(&bad, 1, 0, &small, &ns), "CPU 9999");
	errno = 0;
	expect_einval(tiermm__probe_bandwidth(&bad, 1, 0, &small, &rd, &wr), "CPU 9999");
	errno = 0;
	expect_einval(tiermm__probe_latency(&neg, 1, 0, &small, &ns), "CPU -3");
	{
		int two[2] = { cpu0, 9999 };

		errno = 0;
		expect_einval(tiermm__probe_bandwidth(two, 2, 0, &small, &rd, &wr),
			      "CPU 9999");
	}
	errno = 0;
	expect_einval(tiermm__probe_latency(&cpu0, 1, 5, &small, &ns), "node 5");
	errno = 0;
	expect_einval(tiermm__probe_bandwidth(&cpu0, 1, 5, &small, &rd, &wr), "node 5");
	errno = 0;
	expect_einval(tiermm__probe_latency(&cpu0, 1, -1, &small, &ns), "node -1");
	errno = 0;
	expect_einval(tiermm__probe_bandwidth(&cpu0, 1, -1, &small, &rd, &wr), "node -1");
	errno = 0;
	expect_einval(tiermm__probe_latency(&cpu0, 1, 100000, &small, &ns), "node 100000");
	errno = 0;
	expect_einval(tiermm__probe_latency(&cpu0, 1, 0, &small, NULL), "NULL");
	errno = 0;
	expect_einval(tiermm__probe_bandwidth(&cpu0, 1, 0, &small, NULL, &wr), "NULL");
	p.budget_s = -1;
	errno = 0;
	expect_einval(tiermm__probe_latency(&cpu0, 1, 0, &p, &ns), "budget");
	p.budget_s = NAN;
	errno = 0;
	expect_einval(tiermm__probe_bandwidth(&cpu0, 1, 0, &p, &rd, &wr), "budget");
	p.budget_s = 0.1;
	p.bytes = 100;
	errno = 0;
	expect_einval(tiermm__probe_latency(&cpu0, 1, 0, &p, &ns), "too small");
	/* More than the node has: refused before anything is allocated. */
	p.bytes = (size_t)1 << 50;
	errno = 0;
	assert_int_equal(tiermm__probe_latency(&cpu0, 1, 0, &p, &ns), -ENOMEM);
	assert_int_equal(errno, ENOMEM);
	assert_non_null(strstr(tiermm_errmsg(), "free memory"));
	/* Outputs are untouched on failure. */
	assert_true(ns == 0 && rd == 0 && wr == 0);
}

/* A thread pinned by its application cannot measure from elsewhere. */
static void test_outside_affinity(void **state)
{
	int cpus[2];
	cpu_set_t before, one;
	double ns;

	(void)state;
	if (allowed_cpus(cpus, 2) < 2)
		skip();
	assert_int_equal(sched_getaffinity(0, sizeof(before), &before), 0);
	CPU_ZERO(&one);
	CPU_SET(cpus[0], &one);
	assert_int_equal(sched_setaffinity(0, sizeof(one), &one), 0);
	errno = 0;
	expect_einval(tiermm__probe_latency(&cpus[1], 1, 0, &small, &ns),
		      "allowed CPUs");
	assert_int_equal(sched_setaffinity(0, sizeof(before), &before), 0);
}

/* Probes run on their own pinned threads: the caller keeps its settings. */
static void test_caller_unchanged(void **state)
{
	int cpus[2], n = allowed_cpus(cpus, 2);
	cpu_set_t aff_before, aff_after;
	int mode_before = -1, mode_after = -2;
	unsigned long mask_before[16] = { 0 }, mask_after[16] = { 0 };
	unsigned long pref[16] = { 1 };	/* node 0 */
	double ns, rd, wr;

	(void)state;
	/* A distinctive policy and affinity to compare against. */
	assert_int_equal(set_mempolicy(MPOL_PREFERRED, pref, 1025), 0);
	assert_int_equal(sched_getaffinity(0, sizeof(aff_before), &aff_before), 0);
	assert_int_equal(get_mempolicy(&mode_before, mask_before, 1024, NULL, 0), 0);
	assert_int_equal(mode_before, MPOL_PREFERRED);

	assert_int_equal(tiermm__probe_latency(&cpus[n - 1], 1, 0, &small, &ns), 0);
	assert_int_equal(tiermm__probe_bandwidth(cpus, n, 0, &small, &rd, &wr), 0);
	assert_int_equal(tiermm__probe_latency(&cpus[0], 1, 5, &small, &ns), -EINVAL);

	assert_int_equal(sched_getaffinity(0, sizeof(aff_after), &aff_after), 0);
	assert_true(CPU_EQUAL(&aff_before, &aff_after));
	assert_int_equal(get_mempolicy(&mode_after, mask_after, 1024, NULL, 0), 0);
	assert_int_equal(mode_before, mode_after);
	assert_memory_equal(mask_before, mask_after, sizeof(mask_before));
	assert_int_equal(set_mempolicy(MPOL_DEFAULT, NULL, 0), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_latency),
		cmocka_unit_test(test_latency_default_size),
		cmocka_unit_test(test_bandwidth),
		cmocka_unit_test(test_bad_arguments),
		cmocka_unit_test(test_outside_affinity),
		cmocka_unit_test(test_caller_unchanged),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
