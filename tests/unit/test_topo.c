// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Topology discovery on captured machines (hwloc's test data) and on hwloc
 * XML exports: kinds, capacities and CPU sets against hwloc's own lstopo
 * output shipped beside each capture, tier ranking and its sources, the
 * XML cache round trip, and bad input.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "internal.h"

static const char *fixtures(void)
{
	const char *d = getenv("TIERMM_FIXTURES");

	assert_non_null(d);
	return d;
}

static const char *srcdir(void)
{
	const char *d = getenv("TIERMM_SRCDIR");

	assert_non_null(d);
	return d;
}

static struct tiermm_topo *load_capture(const char *name, const char *tiers)
{
	char root[PATH_MAX];
	struct tiermm_topo *t = NULL;

	snprintf(root, sizeof(root), "%s/%s", fixtures(), name);
	{
		TIERMM_OPTS(tiermm_topo_opts, o, .fsroot = root, .tiers = tiers);

		if (tiermm_topo_load(&o, &t))
			fail_msg("loading %s: %s", name, tiermm_errmsg());
	}
	return t;
}

static struct tiermm_topo *load_xml(const char *path, unsigned int flags)
{
	struct tiermm_topo *t = NULL;
	TIERMM_OPTS(tiermm_topo_opts, o, .xml_path = path, .flags = flags);

	if (tiermm_topo_load(&o, &t))
		fail_msg("loading %s: %s", path, tiermm_errmsg());
	return t;
}

static struct tiermm_node_info node(const struct tiermm_topo *t, int os)
{
	struct tiermm_node_info ni = { .sz = sizeof(ni) };
	int idx = tiermm_topo_node_index(t, os);

	assert_true(idx >= 0);
	assert_int_equal(tiermm_topo_node(t, idx, &ni), 0);
	return ni;
}

static const char *tier_nodes(const struct tiermm_topo *t, int tier)
{
	static char buf[256];

	assert_true(tiermm_topo_tier_nodes(t, tier, buf, sizeof(buf)) >= 0);
	return buf;
}

/*
 * Every "NUMANode(KIND) L#x (P#y local=zKB" line hwloc printed for the
 * capture must match tiermm's node y: same capacity, same kind (a node
 * without a subtype is DRAM or unknown for tiermm).
 */
static void compare_with_lstopo(const struct tiermm_topo *t, const char *name)
{
	char path[PATH_MAX], line[4096];
	int seen = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/tests/fixtures/hwloc/sysfs/%s.lstopo-2.9.txt",
		 srcdir(), name);
	f = fopen(path, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		char *p = strstr(line, "NUMANode"), kind[32] = "";
		unsigned int l, os;
		unsigned long long kb;
		struct tiermm_node_info ni;

		if (!p || (sscanf(p, "NUMANode(%31[^)]) L#%u (P#%u local=%lluKB",
				  kind, &l, &os, &kb) != 4 &&
			   sscanf(p, "NUMANode L#%u (P#%u local=%lluKB", &l, &os, &kb) != 3))
			continue;
		ni = node(t, (int)os);
		assert_int_equal(ni.capacity, kb * 1024);
		if (!strcmp(kind, "DRAM"))
			assert_int_equal(ni.kind, TIERMM_KIND_DRAM);
		else if (!strcmp(kind, "HBM") || !strcmp(kind, "MCDRAM"))
			assert_int_equal(ni.kind, TIERMM_KIND_HBM);
		else if (!strcmp(kind, "NVM"))
			assert_int_equal(ni.kind, TIERMM_KIND_NVM);
		else if (!kind[0])
			assert_true(ni.kind == TIERMM_KIND_DRAM ||
				    ni.kind == TIERMM_KIND_UNKNOWN);
		else
			fail_msg("unexpected kind %s in %s", kind, path);
		seen++;
	}
	fclose(f);
	assert_int_equal(seen, tiermm_topo_nr_nodes(t));
}

/* DRAM, HBM (SPM dax) and NVM (dax kmem) nodes; HMAT bandwidth only. */
static void test_heteromem_tiers(void **state)
{
	struct tiermm_topo *t = load_capture("fakeheteromemtiers", NULL);
	const char *conflicts;
	char cpus[64];
	double v;

	(void)state;
	assert_int_equal(tiermm_topo_nr_nodes(t), 7);
	compare_with_lstopo(t, "fakeheteromemtiers");
	assert_int_equal(node(t, 0).nr_cpus, 2);
	assert_int_equal(node(t, 4).nr_cpus, 0);
	assert_int_equal(node(t, 4).kind, TIERMM_KIND_HBM);
	assert_int_equal(tiermm_topo_node_cpus(t, tiermm_topo_node_index(t, 1), cpus,
					       sizeof(cpus)), 3);
	assert_string_equal(cpus, "2-3");
	/* HBM above DRAM above NVM, from HMAT bandwidth; kinds agree. */
	assert_int_equal(tiermm_topo_nr_tiers(t), 3);
	assert_int_equal(tiermm_topo_tier_source(t, &conflicts), TIERMM_TIERS_HMAT);
	assert_string_equal(conflicts, "");
	assert_string_equal(tier_nodes(t, 0), "2,4");
	assert_string_equal(tier_nodes(t, 1), "0-1");
	assert_string_equal(tier_nodes(t, 2), "6,8-9");
	assert_int_equal(node(t, 9).tier, 2);
	/* Firmware bandwidth from the local initiator only. */
	assert_int_equal(tiermm_topo_distance(t, 1, 4, TIERMM_METRIC_FW_READ_BANDWIDTH, &v), 0);
	assert_true(v == 10000);
	assert_int_equal(tiermm_topo_distance(t, 0, 4, TIERMM_METRIC_FW_READ_BANDWIDTH, &v),
			 -ENODATA);
	assert_int_equal(tiermm_topo_distance(t, 0, 0, TIERMM_METRIC_LATENCY, &v), -ENODATA);
	/* Memory-only nodes initiate nothing. */
	assert_int_equal(tiermm_topo_distance(t, 4, 4, TIERMM_METRIC_FW_READ_BANDWIDTH, &v),
			 -ENOENT);
	assert_int_equal(tiermm_topo_best_target(t, 1, TIERMM_METRIC_FW_READ_BANDWIDTH), 4);
	assert_int_equal(tiermm_topo_distance(t, 0, 1, TIERMM_METRIC_SLIT, &v), 0);
	assert_true(v > 10);
	assert_int_equal(tiermm_topo_best_target(t, 0, TIERMM_METRIC_SLIT), 0);
	assert_non_null(strstr(tiermm_topo_origin(t), "fsroot"));
	tiermm_topo_free(t);
}

/* KNL SNC-4 hybrid: 4 DRAM + 4 MCDRAM nodes. */
static void test_knl(void **state)
{
	struct tiermm_topo *t = load_capture("64intel64-fakeKNL-SNC4-hybrid", NULL);

	(void)state;
	assert_int_equal(tiermm_topo_nr_nodes(t), 8);
	compare_with_lstopo(t, "64intel64-fakeKNL-SNC4-hybrid");
	assert_int_equal(tiermm_topo_nr_tiers(t), 2);
	assert_string_equal(tier_nodes(t, 0), "4-7");	/* MCDRAM first */
	assert_string_equal(tier_nodes(t, 1), "0-3");
	assert_int_equal(node(t, 0).nr_cpus, 16);
	tiermm_topo_free(t);
}

/* Plain 8-node DRAM machine: nothing to rank, one tier, said so. */
static void test_plain_numa(void **state)
{
	struct tiermm_topo *t = load_capture("16amd64-8n2c", NULL);
	double v;

	(void)state;
	assert_int_equal(tiermm_topo_nr_nodes(t), 8);
	compare_with_lstopo(t, "16amd64-8n2c");
	assert_int_equal(tiermm_topo_nr_tiers(t), 1);
	assert_int_equal(tiermm_topo_tier_source(t, NULL), TIERMM_TIERS_NONE);
	assert_string_equal(tier_nodes(t, 0), "0-7");
	assert_int_equal(tiermm_topo_distance(t, 3, 3, TIERMM_METRIC_SLIT, &v), 0);
	assert_true(v == 10);
	for (int i = 0; i < 8; i++)
		assert_int_equal(tiermm_topo_best_target(t, i, TIERMM_METRIC_SLIT), i);
	tiermm_topo_free(t);
}

/* Memory-only NVM nodes with HMAT latency: DRAM first, NVM last. */
static void test_meminitiators(void **state)
{
	struct tiermm_topo *t = load_capture("fakememinitiators-1np2c+1npp+gi", NULL);

	(void)state;
	compare_with_lstopo(t, "fakememinitiators-1np2c+1npp+gi");
	assert_int_equal(node(t, 7).kind, TIERMM_KIND_NVM);
	assert_int_equal(node(t, 10).kind, TIERMM_KIND_NVM);
	assert_true(node(t, 7).tier > node(t, 5).tier);
	assert_true(node(t, 10).tier > node(t, 8).tier);
	tiermm_topo_free(t);
}

/* KNL all-to-all: MCDRAM is a cache, one DRAM node. */
static void test_knl_cache(void **state)
{
	struct tiermm_topo *t = load_capture("64intel64-fakeKNL-A2A-cache", NULL);

	(void)state;
	assert_int_equal(tiermm_topo_nr_nodes(t), 1);
	compare_with_lstopo(t, "64intel64-fakeKNL-A2A-cache");
	assert_int_equal(node(t, 0).nr_cpus, 64);
	assert_int_equal(tiermm_topo_nr_tiers(t), 1);
	tiermm_topo_free(t);
}

/* 2LM: DRAM as a memory-side cache in front of the nodes: kind not guessed. */
static void test_memory_side_cache(void **state)
{
	struct tiermm_topo *t = load_capture("memorysidecaches", NULL);
	double v;

	(void)state;
	assert_int_equal(tiermm_topo_nr_nodes(t), 4);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(node(t, i).kind, TIERMM_KIND_UNKNOWN);
		assert_int_equal(node(t, i).nr_cpus, 20);
	}
	assert_int_equal(tiermm_topo_distance(t, 0, 2, TIERMM_METRIC_SLIT, &v), 0);
	assert_true(v == 11);
	/* SLIT says node 2 is closest to node 0 after itself. */
	assert_int_equal(tiermm_topo_best_target(t, 0, TIERMM_METRIC_SLIT), 0);
	tiermm_topo_free(t);
}

/* A user override wins and the disagreeing sources are named. */
static void test_user_tiers(void **state)
{
	struct tiermm_topo *t = load_capture("fakeheteromemtiers", "0-2,4;6,8-9");
	const char *conflicts;

	(void)state;
	assert_int_equal(tiermm_topo_tier_source(t, &conflicts), TIERMM_TIERS_USER);
	assert_int_equal(tiermm_topo_nr_tiers(t), 2);
	assert_string_equal(tier_nodes(t, 0), "0-2,4");
	assert_non_null(strstr(conflicts, "hmat ranks 2,4;0-1;6,8-9"));
	assert_non_null(strstr(conflicts, "kind ranks"));
	tiermm_topo_free(t);
}

static void test_bad_tiers(void **state)
{
	static const char *const bad[] = { "0-1;1", "0-2,4;6,8", "0-2,4;6,8-9;99",
					   "abc", ";", "0-2,4;;6,8-9", "3" };
	char root[PATH_MAX];

	(void)state;
	snprintf(root, sizeof(root), "%s/fakeheteromemtiers", fixtures());
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct tiermm_topo *t = (struct tiermm_topo *)0x1;
		TIERMM_OPTS(tiermm_topo_opts, o, .fsroot = root, .tiers = bad[i]);

		assert_int_equal(tiermm_topo_load(&o, &t), -EINVAL);
		assert_null(t);
		assert_non_null(strstr(tiermm_errmsg(), "TIERMM_TIERS"));
	}
}

static void assert_same(const struct tiermm_topo *a, const struct tiermm_topo *b)
{
	int n = tiermm_topo_nr_nodes(a);

	assert_int_equal(n, tiermm_topo_nr_nodes(b));
	assert_int_equal(tiermm_topo_nr_tiers(a), tiermm_topo_nr_tiers(b));
	for (int i = 0; i < n; i++) {
		struct tiermm_node_info x = { .sz = sizeof(x) }, y = { .sz = sizeof(y) };
		char ca[256], cb[256];

		assert_int_equal(tiermm_topo_node(a, i, &x), 0);
		assert_int_equal(tiermm_topo_node(b, i, &y), 0);
		assert_memory_equal(&x, &y, sizeof(x));
		tiermm_topo_node_cpus(a, i, ca, sizeof(ca));
		tiermm_topo_node_cpus(b, i, cb, sizeof(cb));
		assert_string_equal(ca, cb);
		for (int j = 0; j < n; j++)
			for (int m = 0; m < TIERMM_METRIC__COUNT; m++) {
				double va = NAN, vb = NAN;
				int ra = tiermm_topo_distance(a, x.os_index, j, m, &va);
				int rb = tiermm_topo_distance(b, x.os_index, j, m, &vb);

				assert_int_equal(ra, rb);
				if (!ra)
					assert_true(va == vb);
			}
	}
}

/* Export -> import is lossless, and loading a cache runs no discovery. */
static void test_xml_roundtrip(void **state)
{
	static const char *const names[] = { "fakeheteromemtiers", "16amd64-8n2c",
					     "64intel64-fakeKNL-SNC4-hybrid" };
	char xml[] = "/tmp/tiermm-topo-XXXXXX";
	int fd = mkstemp(xml);

	(void)state;
	assert_true(fd >= 0);
	close(fd);
	for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
		struct tiermm_topo *a = load_capture(names[k], NULL), *b, *c;
		char xml2[sizeof(xml) + 4];

		assert_int_equal(tiermm_topo_export_xml(a, xml, 0), 0);
		b = load_xml(xml, 0);
		assert_same(a, b);
		assert_non_null(strstr(tiermm_topo_origin(b), "tiermm cache"));
		/* Export of the import is the same again. */
		snprintf(xml2, sizeof(xml2), "%s.2", xml);
		assert_int_equal(tiermm_topo_export_xml(b, xml2, 0), 0);
		c = load_xml(xml2, 0);
		assert_same(a, c);
		unlink(xml2);
		tiermm_topo_free(a);
		tiermm_topo_free(b);
		tiermm_topo_free(c);
	}
	unlink(xml);
}

/*
 * hwloc's own XML exports load, with kinds and memory attributes from their
 * data; an XML in a format newer than Debian's hwloc 2.9 reads is refused
 * with a clear error.
 */
static void test_hwloc_xml(void **state)
{
	char path[PATH_MAX];
	struct tiermm_topo *t = (struct tiermm_topo *)0x1;

	(void)state;
	snprintf(path, sizeof(path), "%s/tests/fixtures/hwloc/xml/fakeheterodistances.xml",
		 srcdir());
	t = load_xml(path, 0);
	assert_int_equal(tiermm_topo_nr_nodes(t), 8);
	assert_non_null(strstr(tiermm_topo_origin(t), "plain hwloc XML"));
	tiermm_topo_free(t);
	snprintf(path, sizeof(path), "%s/tests/fixtures/hwloc/xml/8intel64-4n2t-memattrs.xml",
		 srcdir());
	t = load_xml(path, 0);
	assert_int_equal(tiermm_topo_nr_nodes(t), 4);
	tiermm_topo_free(t);
	/* A plain hwloc XML cannot be checked against this machine. */
	{
		TIERMM_OPTS(tiermm_topo_opts, o, .xml_path = path,
			    .flags = TIERMM_TOPO_CHECK_MACHINE);

		assert_int_equal(tiermm_topo_load(&o, &t), -ESTALE);
		assert_null(t);
	}
	snprintf(path, sizeof(path), "%s/tests/fixtures/hwloc/xml/16amd64-4distances.xml",
		 srcdir());
	t = load_xml(path, 0);
	assert_int_equal(tiermm_topo_nr_nodes(t), 8);
	assert_int_equal(tiermm_topo_nr_tiers(t), 1);
	{
		char cpus[32];

		assert_int_equal(tiermm_topo_node_cpus(t, 3, cpus, sizeof(cpus)), 5);
		assert_string_equal(cpus, "10-11");
	}
	tiermm_topo_free(t);
	snprintf(path, sizeof(path), "%s/tests/fixtures/hwloc/xml/cxlmem+dax.v2.xml", srcdir());
	t = load_xml(path, 0);
	assert_int_equal(tiermm_topo_nr_nodes(t), 1);	/* CXL memory not onlined */
	tiermm_topo_free(t);
	snprintf(path, sizeof(path), "%s/tests/fixtures/hwloc/xml/64intel64-heteromem.xml",
		 srcdir());
	{
		TIERMM_OPTS(tiermm_topo_opts, o, .xml_path = path);

		assert_int_equal(tiermm_topo_load(&o, &t), -EINVAL);
		assert_null(t);
		assert_non_null(strstr(tiermm_errmsg(), "64intel64-heteromem.xml"));
	}
}

static void test_bad_input(void **state)
{
	struct tiermm_topo *t = (struct tiermm_topo *)0x1;
	char bad[] = "/tmp/tiermm-bad-XXXXXX", path[256], cmd[PATH_MAX * 4];
	int fd = mkstemp(bad);
	(void)state;
	assert_int_equal(tiermm_topo_load(NULL, NULL), -EINVAL);
	{
		TIERMM_OPTS(tiermm_topo_opts, o, .xml_path = "/nonexistent.xml");

		assert_int_equal(tiermm_topo_load(&o, &t), -ENOENT);
		assert_null(t);
	}
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "<topology><object", 17), 17);
	close(fd);
	{
		TIERMM_OPTS(tiermm_topo_opts, o, .xml_path = bad);

		assert_int_equal(tiermm_topo_load(&o, &t), -EINVAL);
	}
	{
		TIERMM_OPTS(tiermm_topo_opts, o, .xml_path = bad, .fsroot = "/tmp");

		assert_int_equal(tiermm_topo_load(&o, &t), -EINVAL);
	}
	{
		TIERMM_OPTS(tiermm_topo_opts, o, .fsroot = "/tmp", .probes = TIERMM_PROBE_LATENCY);

		assert_int_equal(tiermm_topo_load(&o, &t), -EINVAL);
		assert_non_null(strstr(tiermm_errmsg(), "running machine"));
	}
	{
		TIERMM_OPTS(tiermm_topo_opts, o, .probes = 1u << 9);

		assert_int_equal(tiermm_topo_load(&o, &t), -EINVAL);
	}
	{
		TIERMM_OPTS(tiermm_topo_opts, o, .flags = 1u << 7);

		assert_int_equal(tiermm_topo_load(&o, &t), -EINVAL);
	}
	{
		TIERMM_OPTS(tiermm_topo_opts, o, .fsroot = "/nonexistent/capture");

		assert_true(tiermm_topo_load(&o, &t) < 0);
		assert_null(t);
	}
	/* A cache from another machine, and one from a future format. */
	t = load_capture("fakeheteromemtiers", NULL);
	assert_int_equal(tiermm_topo_export_xml(t, bad, 0), 0);
	assert_int_equal(tiermm_topo_export_xml(t, bad, 1), -EINVAL);
	tiermm_topo_free(t);
	{
		TIERMM_OPTS(tiermm_topo_opts, o, .xml_path = bad,
			    .flags = TIERMM_TOPO_CHECK_MACHINE);

		assert_int_equal(tiermm_topo_load(&o, &t), -ESTALE);
		assert_non_null(strstr(tiermm_errmsg(), "host 'efi'"));
	}
	snprintf(path, sizeof(path), "%s.v9", bad);
	snprintf(cmd, sizeof(cmd),
		 "sed 's/name=\"TiermmFormat\" value=\"1\"/name=\"TiermmFormat\" value=\"9\"/' %s > %s",
		 bad, path);
	assert_int_equal(system(cmd), 0);
	{
		TIERMM_OPTS(tiermm_topo_opts, o, .xml_path = path);

		assert_int_equal(tiermm_topo_load(&o, &t), -EPROTO);
		assert_non_null(strstr(tiermm_errmsg(), "format 9"));
	}
	unlink(path);
	unlink(bad);
	/* Malformed sysfs: garbage in a node's cpulist, meminfo and online. */
	snprintf(path, sizeof(path), "/tmp/tiermm-badfs-%d", (int)getpid());
	snprintf(cmd, sizeof(cmd),
		 "rm -rf %s && cp -r %s/fakeheteromemtiers %s && cd %s/sys/devices/system/node && "
		 "printf 'x-\\n' > node0/cpulist && printf 'garbage' > node1/meminfo && "
		 "printf '0-zz' > online",
		 path, fixtures(), path, path);
	assert_int_equal(system(cmd), 0);
	{
		TIERMM_OPTS(tiermm_topo_opts, o, .fsroot = path);
		int ret = tiermm_topo_load(&o, &t);

		/* Either a clear error or a topology; never a crash. */
		if (ret)
			assert_true(strlen(tiermm_errmsg()) > 0);
		else
			tiermm_topo_free(t);
	}
	snprintf(cmd, sizeof(cmd), "rm -rf %s", path);
	assert_int_equal(system(cmd), 0);
}

/* The running machine, through the same code (no probes). */
static void test_live(void **state)
{
	struct tiermm_topo *t = NULL;
	char xml[] = "/tmp/tiermm-live-XXXXXX";
	int fd = mkstemp(xml);

	(void)state;
	assert_int_equal(tiermm_topo_load(NULL, &t), 0);
	assert_true(tiermm_topo_nr_nodes(t) >= 1);
	assert_true(tiermm_topo_nr_tiers(t) >= 1);
	assert_string_equal(tiermm_topo_origin(t), "live");
	close(fd);
	assert_int_equal(tiermm_topo_export_xml(t, xml, 0), 0);
	tiermm_topo_free(t);
	/* The cache written here passes the machine check here. */
	t = load_xml(xml, TIERMM_TOPO_CHECK_MACHINE);
	tiermm_topo_free(t);
	unlink(xml);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_heteromem_tiers),
		cmocka_unit_test(test_knl),
		cmocka_unit_test(test_plain_numa),
		cmocka_unit_test(test_meminitiators),
		cmocka_unit_test(test_knl_cache),
		cmocka_unit_test(test_memory_side_cache),
		cmocka_unit_test(test_user_tiers),
		cmocka_unit_test(test_bad_tiers),
		cmocka_unit_test(test_xml_roundtrip),
		cmocka_unit_test(test_hwloc_xml),
		cmocka_unit_test(test_bad_input),
		cmocka_unit_test(test_live),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
