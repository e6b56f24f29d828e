// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Feature probes: replayed against captured machines (hwloc's test data,
 * extracted by CMake into $TIERMM_FIXTURES) and run live on this host.
 */
#include <errno.h>
#include <numaif.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "internal.h"

static struct tiermm_caps *load_fixture(const char *name)
{
	char root[PATH_MAX];
	struct tiermm_caps *caps = NULL;
	const char *dir = getenv("TIERMM_FIXTURES");

	assert_non_null(dir);
	snprintf(root, sizeof(root), "%s/%s", dir, name);
	{
		TIERMM_OPTS(tiermm_caps_opts, o, .fsroot = root);

		assert_int_equal(tiermm_caps_load(&o, &caps), 0);
	}
	assert_non_null(caps);
	return caps;
}

static struct tiermm_caps_node node_at(const struct tiermm_caps *caps, int i)
{
	struct tiermm_caps_node n = { .sz = sizeof(n) };

	assert_int_equal(tiermm_caps_node(caps, i, &n), 0);
	return n;
}

/* QEMU guest with DRAM, HBM and NVM nodes and HMAT (access1 only). */
static void test_heteromem(void **state)
{
	struct tiermm_caps *caps = load_fixture("fakeheteromemtiers");
	static const int ids[] = { 0, 1, 2, 4, 6, 8, 9 };
	struct tiermm_caps_node n;
	char cpus[64];

	(void)state;
	assert_int_equal(tiermm_caps_nr_nodes(caps), 7);
	for (int i = 0; i < 7; i++)
		assert_int_equal(node_at(caps, i).os_index, ids[i]);
	n = node_at(caps, 0);
	assert_int_equal(n.nr_cpus, 2);
	assert_true(n.has_memory);
	assert_int_equal(n.mem_total, 3005392ULL * 1024);
	assert_int_equal(n.read_bandwidth_mbps, 1000);
	assert_int_equal(n.read_latency_ns, 0);
	assert_int_equal(n.memory_tier, -1);
	assert_int_equal(tiermm_caps_node_cpus(caps, 1, cpus, sizeof(cpus)), 3);
	assert_string_equal(cpus, "2-3");
	n = node_at(caps, 3);	/* node4: memory only, HBM */
	assert_int_equal(n.os_index, 4);
	assert_int_equal(n.nr_cpus, 0);
	assert_true(n.has_memory);
	assert_int_equal(n.read_bandwidth_mbps, 10000);
	assert_int_equal(tiermm_caps_node_cpus(caps, 3, cpus, sizeof(cpus)), 0);
	assert_string_equal(cpus, "");
	assert_int_equal(node_at(caps, 6).write_bandwidth_mbps, 100);

	assert_int_equal(tiermm_caps_state(caps, TIERMM_CAP_NUMA), TIERMM_CAP_PRESENT);
	assert_non_null(strstr(tiermm_caps_detail(caps, TIERMM_CAP_NUMA),
			       "7 nodes (from online), 3 with CPUs, 7 with memory"));
	assert_int_equal(tiermm_caps_state(caps, TIERMM_CAP_HMAT), TIERMM_CAP_PRESENT);
	assert_non_null(strstr(tiermm_caps_detail(caps, TIERMM_CAP_HMAT),
			       "for 7 of 7 nodes"));
	assert_int_equal(tiermm_caps_state(caps, TIERMM_CAP_MEMORY_TIERS),
			 TIERMM_CAP_ABSENT);
	/* System calls cannot be replayed: unknown, never guessed. */
	assert_int_equal(tiermm_caps_state(caps, TIERMM_CAP_MOVE_PAGES),
			 TIERMM_CAP_UNKNOWN);
	assert_int_equal(tiermm_caps_state(caps, TIERMM_CAP_MPOL_PREFERRED_MANY),
			 TIERMM_CAP_UNKNOWN);
	assert_int_equal(tiermm_caps_state(caps, TIERMM_CAP_MODULE), TIERMM_CAP_ABSENT);
	assert_int_equal(tiermm_caps_module(caps, NULL, NULL), -ENODEV);
	assert_int_equal(tiermm_caps_state(caps, TIERMM_CAP_PT_REPLICATION),
			 TIERMM_CAP_ABSENT);
	assert_int_equal(tiermm_caps_state(caps, TIERMM_CAP_PERF_MEM_SAMPLING),
			 TIERMM_CAP_ABSENT);
	tiermm_caps_free(caps);
}

/* KNL capture: no online file, cpumap instead of cpulist. */
static void test_knl_cpumap(void **state)
{
	struct tiermm_caps *caps = load_fixture("64intel64-fakeKNL-SNC4-hybrid");
	char cpus[128];

	(void)state;
	assert_int_equal(tiermm_caps_nr_nodes(caps), 8);
	assert_int_equal(node_at(caps, 0).nr_cpus, 16);
	assert_int_equal(tiermm_caps_node_cpus(caps, 0, cpus, sizeof(cpus)),
			 (int)strlen("0-3,16-19,32-35,48-51"));
	assert_string_equal(cpus, "0-3,16-19,32-35,48-51");
	assert_int_equal(node_at(caps, 4).nr_cpus, 0);
	assert_int_equal(node_at(caps, 4).mem_total, 2097152ULL * 1024);
	assert_true(node_at(caps, 4).has_memory);	/* from meminfo */
	assert_non_null(strstr(tiermm_caps_detail(caps, TIERMM_CAP_NUMA),
			       "from nodeN directories"));
	assert_int_equal(tiermm_caps_state(caps, TIERMM_CAP_HMAT), TIERMM_CAP_ABSENT);
	tiermm_caps_free(caps);
}

static void test_eight_nodes(void **state)
{
	struct tiermm_caps *caps = load_fixture("16amd64-8n2c");

	(void)state;
	assert_int_equal(tiermm_caps_nr_nodes(caps), 8);
	for (int i = 0; i < 8; i++) {
		assert_int_equal(node_at(caps, i).nr_cpus, 2);
		assert_true(node_at(caps, i).has_memory);
	}
	tiermm_caps_free(caps);
}

static void test_bad_arguments(void **state)
{
	struct tiermm_caps *caps = (struct tiermm_caps *)0x1;
	struct tiermm_caps *fx;
	struct tiermm_caps_node n;
	char small[2];

	(void)state;
	assert_int_equal(tiermm_caps_load(NULL, NULL), -EINVAL);
	{
		TIERMM_OPTS(tiermm_caps_opts, o, .flags = 1);

		assert_int_equal(tiermm_caps_load(&o, &caps), -EINVAL);
		assert_int_equal(errno, EINVAL);
		assert_null(caps);
		assert_non_null(strstr(tiermm_errmsg(), "flags must be 0"));
	}
	{
		TIERMM_OPTS(tiermm_caps_opts, o, .fsroot = "/nonexistent/machine");

		assert_int_equal(tiermm_caps_load(&o, &caps), -ENOENT);
		assert_non_null(strstr(tiermm_errmsg(), "not a captured machine"));
	}
	{
		TIERMM_OPTS(tiermm_caps_opts, o, .fsroot = "relative");

		assert_int_equal(tiermm_caps_load(&o, &caps), -EINVAL);
	}
	{
		struct tiermm_caps_opts o = { .sz = 1 };

		assert_int_equal(tiermm_caps_load(&o, &caps), -EINVAL);
	}
	fx = load_fixture("16amd64-8n2c");
	assert_int_equal(tiermm_caps_state(fx, TIERMM_CAP__COUNT), -EINVAL);
	assert_int_equal(tiermm_caps_state(fx, (enum tiermm_cap)-1), -EINVAL);
	assert_int_equal(tiermm_caps_state(NULL, TIERMM_CAP_NUMA), -EINVAL);
	assert_null(tiermm_caps_detail(fx, TIERMM_CAP__COUNT));
	assert_null(tiermm_cap_name(TIERMM_CAP__COUNT));
	assert_null(tiermm_cap_help((enum tiermm_cap)-3));
	assert_int_equal(tiermm_caps_nr_nodes(NULL), -EINVAL);
	n.sz = sizeof(n);
	assert_int_equal(tiermm_caps_node(fx, 8, &n), -ENOENT);
	assert_int_equal(tiermm_caps_node(fx, -1, &n), -ENOENT);
	n.sz = 0;
	assert_int_equal(tiermm_caps_node(fx, 0, &n), -EINVAL);
	assert_int_equal(tiermm_caps_node_cpus(fx, 0, small, sizeof(small)), -ERANGE);
	/* An older, shorter struct: nothing written past its size. */
	{
		unsigned char buf[sizeof(struct tiermm_caps_node) + 8];
		struct tiermm_caps_node *p = (struct tiermm_caps_node *)buf;
		size_t old = offsetof(struct tiermm_caps_node, nr_cpus) + sizeof(int);

		memset(buf, 0xAB, sizeof(buf));
		p->sz = old;
		assert_int_equal(tiermm_caps_node(fx, 1, p), 0);
		assert_int_equal(p->os_index, 1);
		assert_int_equal(p->nr_cpus, 2);
		for (size_t i = old; i < sizeof(buf); i++)
			assert_int_equal(buf[i], 0xAB);
	}
	for (int i = 0; i < TIERMM_CAP__COUNT; i++) {
		assert_non_null(tiermm_cap_name((enum tiermm_cap)i));
		assert_true(strlen(tiermm_cap_help((enum tiermm_cap)i)) > 20);
	}
	tiermm_caps_free(fx);
	tiermm_caps_free(NULL);
}

/* On this host: side-effect free, cached, errno untouched. */
static void test_live(void **state)
{
	const struct tiermm_caps *a, *b;
	int mode_before = -1, mode_after = -2;
	unsigned long mask_before[16] = { 0 }, mask_after[16] = { 0 };

	(void)state;
	assert_int_equal(get_mempolicy(&mode_before, mask_before, 1024, NULL, 0), 0);
	errno = 4242;
	a = tiermm_caps_get();
	assert_non_null(a);
	assert_int_equal(errno, 4242);
	b = tiermm_caps_get();
	assert_ptr_equal(a, b);
	assert_int_equal(get_mempolicy(&mode_after, mask_after, 1024, NULL, 0), 0);
	assert_int_equal(mode_before, mode_after);
	assert_memory_equal(mask_before, mask_after, sizeof(mask_before));
	/* Every probe answers something definite or says why not. */
	for (int i = 0; i < TIERMM_CAP__COUNT; i++) {
		int s = tiermm_caps_state(a, (enum tiermm_cap)i);

		assert_true(s == TIERMM_CAP_PRESENT || s == TIERMM_CAP_ABSENT ||
			    s == TIERMM_CAP_UNKNOWN);
		assert_true(strlen(tiermm_caps_detail(a, (enum tiermm_cap)i)) > 5);
	}
	/* A kernel with NUMA support answers move_pages queries. */
	if (tiermm_caps_state(a, TIERMM_CAP_NUMA) == TIERMM_CAP_PRESENT)
		assert_int_equal(tiermm_caps_state(a, TIERMM_CAP_MOVE_PAGES),
				 TIERMM_CAP_PRESENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_heteromem),
		cmocka_unit_test(test_knl_cpumap),
		cmocka_unit_test(test_eight_nodes),
		cmocka_unit_test(test_bad_arguments),
		cmocka_unit_test(test_live),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
