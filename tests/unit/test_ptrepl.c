// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Page-table replication calls (tiermm_pt_replicate/_replication and the
 * libnuma names): argument checks; the kernel without the patch series
 * (this host's, and a captured root without the sysctl): -ENOTSUP with the
 * message; node checks against a fake sysfs; and, with a fake prctl(2) and
 * a fake /proc/PID/pgtable_replication below a test root, what reaches the
 * kernel and how its errors are reported.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "internal.h"

/* libnuma's layout (<numa.h>), which the library takes. */
struct bitmask {
	unsigned long size;
	unsigned long *maskp;
};

#define PR_SET 0x54524d31
#define PR_GET 0x54524d32

static char root[64];

static void put(const char *rel, const char *text)
{
	char path[PATH_MAX], cmd[PATH_MAX + 16], *slash;
	FILE *f;

	snprintf(path, sizeof(path), "%s%s", root, rel);
	slash = strrchr(path, '/');
	*slash = '\0';
	snprintf(cmd, sizeof(cmd), "mkdir -p %s", path);
	assert_int_equal(system(cmd), 0);
	*slash = '/';
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void get(const char *rel, char *buf, size_t len)
{
	char path[PATH_MAX];
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "%s%s", root, rel);
	f = fopen(path, "r");
	assert_non_null(f);
	n = fread(buf, 1, len - 1, f);
	buf[n] = '\0';
	fclose(f);
}

/*
 * A machine with nodes 0-3 online, 0, 1 and 3 with memory (2 is CPU-only),
 * and, with kernel, the series' sysctl.
 */
static void make_root(int kernel)
{
	snprintf(root, sizeof(root), "/tmp/tiermm-test-ptrepl-XXXXXX");
	assert_non_null(mkdtemp(root));
	put("/sys/devices/system/node/online", "0-3\n");
	put("/sys/devices/system/node/possible", "0-3\n");
	put("/sys/devices/system/node/has_memory", "0-1,3\n");
	if (kernel)
		put("/proc/sys/kernel/pgtable_replication", "0\n");
}

static int teardown_root(void **state)
{
	char cmd[128];

	(void)state;
	tiermm__ptrepl_set_test(NULL, NULL);
	if (root[0]) {
		snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
		assert_int_equal(system(cmd), 0);
		root[0] = '\0';
	}
	return 0;
}

/* ---- The fake prctl ---------------------------------------------------- */

static struct {
	int calls;
	int option;
	unsigned long mask[16];	/* copied from/to the caller */
	int mask_null;
	unsigned long maxnode;
	int err;		/* fail with this errno */
	int eintr;		/* fail with EINTR this many times first */
} kp;

static int fake_prctl(int option, unsigned long a2, unsigned long a3,
		      unsigned long a4, unsigned long a5)
{
	unsigned long *mask = (unsigned long *)(uintptr_t)a2;

	kp.calls++;
	assert_int_equal(a4, 0);
	assert_int_equal(a5, 0);
	if (kp.eintr) {
		kp.eintr--;
		errno = EINTR;
		return -1;
	}
	if (kp.err) {
		errno = kp.err;
		return -1;
	}
	kp.option = option;
	kp.maxnode = a3;
	kp.mask_null = !mask;
	if (option == PR_SET) {
		memset(kp.mask, 0, sizeof(kp.mask));
		if (mask)
			memcpy(kp.mask, mask, (a3 + 63) / 64 * sizeof(long));
	} else {
		assert_int_equal(option, PR_GET);
		assert_true(a3 >= 1024);	/* at least nr_node_ids */
		memset(mask, 0, a3 / 8);
		memcpy(mask, kp.mask, sizeof(kp.mask));
	}
	return 0;
}

static int setup_fake(void **state)
{
	(void)state;
	memset(&kp, 0, sizeof(kp));
	make_root(1);
	tiermm__ptrepl_set_test(root, fake_prctl);
	return 0;
}

static void expect_fail(int ret, int err, const char *text)
{
	assert_int_equal(ret, -err);
	assert_int_equal(errno, err);
	if (!strstr(tiermm_errmsg(), text))
		fail_msg("message '%s' lacks '%s'", tiermm_errmsg(), text);
}

/* ---- Arguments ------------------------------------------------------------- */

static void test_bad_arguments(void **state)
{
	unsigned long m = 1;

	(void)state;
	expect_fail(tiermm_pt_replicate(0, &m, 1, 1), EINVAL, "flags must be 0");
	expect_fail(tiermm_pt_replicate(-2, &m, 1, 0), EINVAL, "pid -2 is negative");
	expect_fail(tiermm_pt_replicate(0, NULL, 3, 0), EINVAL, "nodes is NULL");
	expect_fail(tiermm_pt_replicate(0, &m, 1u << 20, 0), EINVAL,
		    "larger than any kernel's node count");
	expect_fail(tiermm_pt_replication(-1, &m, 64), EINVAL, "negative");
	expect_fail(tiermm_pt_replication(0, NULL, 64), EINVAL, "nodes is NULL");
}

/* ---- A kernel without the series -------------------------------------------- */

static void expect_enotsup(int ret)
{
	expect_fail(ret, ENOTSUP,
		    "the running kernel lacks tiermm's page-table replication patches");
}

static void check_enotsup(void)
{
	unsigned long m = 1;
	struct bitmask bm = { .size = 64, .maskp = &m };

	expect_enotsup(tiermm_pt_replicate(0, &m, 1, 0));
	expect_enotsup(tiermm_pt_replicate(0, NULL, 0, 0));
	expect_enotsup(tiermm_pt_replicate(1, &m, 64, 0));
	expect_enotsup(tiermm_pt_replication(0, &m, 64));
	expect_enotsup(tiermm_pt_replication(getpid(), &m, 64));
	assert_int_equal(m, 1);		/* untouched */
	errno = 0;
	assert_int_equal(numa_set_pgtable_replication_mask(&bm), -1);
	assert_int_equal(errno, ENOTSUP);
	errno = 0;
	assert_null(numa_get_pgtable_replication_mask());
	assert_int_equal(errno, ENOTSUP);
	assert_non_null(strstr(tiermm_errmsg(), "lacks tiermm's page-table replication"));
}

/* This host's kernel (the test skips if it has the series). */
static void test_host_kernel(void **state)
{
	(void)state;
	if (tiermm__ptrepl_in_kernel())
		skip();
	check_enotsup();
}

/* A captured root without the sysctl, a fake prctl that must not be called. */
static void test_root_without_series(void **state)
{
	(void)state;
	memset(&kp, 0, sizeof(kp));
	make_root(0);
	tiermm__ptrepl_set_test(root, fake_prctl);
	check_enotsup();
	assert_int_equal(kp.calls, 0);
}

/* ---- Nodes ------------------------------------------------------------------- */

static void test_nodes(void **state)
{
	unsigned long m[32] = { 0 };

	(void)state;
	m[0] = 1UL << 2;	/* CPU-only */
	expect_fail(tiermm_pt_replicate(0, m, 4, 0), EINVAL, "node 2 has no memory");
	m[0] = 1UL << 5;	/* beyond online 0-3 */
	expect_fail(tiermm_pt_replicate(0, m, 64, 0), EINVAL,
		    "node 5 does not exist or is offline");
	m[0] = 0;
	m[2000 / 64] = 1UL << (2000 % 64);
	expect_fail(tiermm_pt_replicate(0, m, 2048, 0), EINVAL,
		    "node 2000 does not exist");
	/* Bits at maxnode and above are ignored. */
	m[0] = 1UL << 0 | 1UL << 2;
	m[2000 / 64] = 0;
	assert_int_equal(tiermm_pt_replicate(0, m, 2, 0), 0);
	assert_int_equal(kp.mask[0], 1UL);
	assert_int_equal(kp.calls, 1);	/* only the accepted call */
}

/* Group mode: masks name CPU groups, not nodes. */
static void test_groups(void **state)
{
	unsigned long m = 1UL << 2;	/* CPU-only as a node, a group here */

	(void)state;
	put("/proc/sys/kernel/pgtable_replication_groups", "0-1;2-3;4-5\n");
	assert_int_equal(tiermm_pt_replicate(0, &m, 64, 0), 0);
	assert_int_equal(kp.mask[0], m);
	m = 1UL << 3;
	expect_fail(tiermm_pt_replicate(0, &m, 64, 0), EINVAL,
		    "group 3 does not exist (the kernel replicates per CPU group");
	/* Empty: node mode again. */
	put("/proc/sys/kernel/pgtable_replication_groups", "\n");
	m = 1UL << 2;
	expect_fail(tiermm_pt_replicate(0, &m, 64, 0), EINVAL, "node 2 has no memory");
}

/* ---- prctl(2): the calling process --------------------------------------- */

static void test_prctl_set(void **state)
{
	unsigned long m = 1UL << 0 | 1UL << 1 | 1UL << 3;

	(void)state;
	assert_int_equal(tiermm_pt_replicate(0, &m, 64, 0), 0);
	assert_int_equal(kp.option, PR_SET);
	assert_false(kp.mask_null);
	assert_int_equal(kp.mask[0], m);
	assert_int_equal(kp.maxnode, 4);	/* the highest node + 1 */

	/* Disable: empty mask, or NULL with maxnode 0: NULL, 0. */
	m = 0;
	assert_int_equal(tiermm_pt_replicate(0, &m, 64, 0), 0);
	assert_true(kp.mask_null);
	assert_int_equal(kp.maxnode, 0);
	kp.mask_null = 0;
	assert_int_equal(tiermm_pt_replicate(0, NULL, 0, 0), 0);
	assert_true(kp.mask_null);

	/* EINTR is retried. */
	m = 1;
	kp.eintr = 2;
	kp.calls = 0;
	assert_int_equal(tiermm_pt_replicate(0, &m, 1, 0), 0);
	assert_int_equal(kp.calls, 3);
}

static void test_prctl_errors(void **state)
{
	unsigned long m = 3;

	(void)state;
	kp.err = ENOMEM;
	expect_fail(tiermm_pt_replicate(0, &m, 2, 0), ENOMEM,
		    "could not allocate the replicas on nodes '0-1'; nothing changed");
	kp.err = EINVAL;
	expect_fail(tiermm_pt_replicate(0, &m, 2, 0), EINVAL,
		    "the kernel rejected nodes '0-1'");
	kp.err = EOPNOTSUPP;
	expect_fail(tiermm_pt_replicate(0, &m, 2, 0), ENOTSUP,
		    "refuses page-table replication on this machine");
	assert_non_null(strstr(tiermm_errmsg(), "Xen PV"));
	/* the series supports 5-level paging: not named as a reason */
	assert_null(strstr(tiermm_errmsg(), "5-level"));
	put("/sys/devices/system/cpu/vulnerabilities/meltdown", "Mitigation: PTI\n");
	expect_fail(tiermm_pt_replicate(0, &m, 2, 0), ENOTSUP, "pti=off");
	kp.err = EFAULT;
	expect_fail(tiermm_pt_replicate(0, &m, 2, 0), EFAULT, "Bad address");
	kp.err = EPERM;
	expect_fail(tiermm_pt_replication(0, &m, 64), EPERM, "permission denied");
}

static void test_prctl_get(void **state)
{
	unsigned long m[2] = { ~0UL, ~0UL };

	(void)state;
	kp.mask[0] = 1UL << 0 | 1UL << 3;
	assert_int_equal(tiermm_pt_replication(0, m, 128), 2);
	assert_int_equal(kp.option, PR_GET);
	assert_int_equal(m[0], kp.mask[0]);
	assert_int_equal(m[1], 0);	/* zeroed */

	/* A replica beyond the caller's mask: -ERANGE, mask untouched. */
	m[0] = 77;
	expect_fail(tiermm_pt_replication(0, m, 3), ERANGE, "on node 3");
	assert_int_equal(m[0], 77);

	/* Not replicated: 0 and an empty mask; maxnode 0 with NULL works. */
	kp.mask[0] = 0;
	assert_int_equal(tiermm_pt_replication(0, m, 64), 0);
	assert_int_equal(m[0], 0);
	assert_int_equal(tiermm_pt_replication(0, NULL, 0), 0);
}

/* ---- /proc/PID/pgtable_replication: another process ---------------------- */

static void test_proc(void **state)
{
	unsigned long m = 0;
	char buf[64];

	(void)state;
	put("/proc/4242/pgtable_replication", "0-1\n");
	assert_int_equal(tiermm_pt_replication(4242, &m, 64), 2);
	assert_int_equal(m, 3);
	put("/proc/4242/pgtable_replication", "\n");
	assert_int_equal(tiermm_pt_replication(4242, &m, 64), 0);
	assert_int_equal(m, 0);
	put("/proc/4242/pgtable_replication", "0,x\n");
	expect_fail(tiermm_pt_replication(4242, &m, 64), EPROTO, "not a node list");

	m = 1UL << 0 | 1UL << 3;
	assert_int_equal(tiermm_pt_replicate(4242, &m, 64, 0), 0);
	get("/proc/4242/pgtable_replication", buf, sizeof(buf));
	assert_string_equal(buf, "0,3\n");
	assert_int_equal(tiermm_pt_replicate(4242, NULL, 0, 0), 0);
	get("/proc/4242/pgtable_replication", buf, sizeof(buf));
	assert_string_equal(buf, "none\n");
	assert_int_equal(kp.calls, 0);	/* no prctl for another process */

	/* No such process; a process without the file: the kernel lacks it. */
	expect_fail(tiermm_pt_replicate(4243, &m, 64, 0), ESRCH, "no such process");
	expect_fail(tiermm_pt_replication(4243, &m, 64), ESRCH, "no such process");
	put("/proc/4244/status", "Name: x\n");
	expect_fail(tiermm_pt_replication(4244, &m, 64), ENOTSUP, "is missing");
	expect_fail(tiermm_pt_replicate(4244, &m, 64, 0), ENOTSUP, "is missing");
}

/* ---- The libnuma names ----------------------------------------------------- */

static void test_numa_names(void **state)
{
	unsigned long words[2] = { 1UL << 1 | 1UL << 3, 0 };
	struct bitmask bm = { .size = 128, .maskp = words };
	struct bitmask *got;

	(void)state;
	assert_int_equal(numa_set_pgtable_replication_mask(&bm), 0);
	assert_int_equal(kp.mask[0], words[0]);
	assert_int_equal(numa_set_pgtable_replication_mask(NULL), 0);
	assert_true(kp.mask_null);

	kp.mask[0] = 1UL << 1;
	got = numa_get_pgtable_replication_mask();
	assert_non_null(got);
	assert_int_equal(got->size, 1024);
	assert_int_equal(got->maskp[0], 1UL << 1);
	assert_int_equal(got->maskp[15], 0);
	free(got->maskp);
	free(got);

	/* Errors: -1 / NULL with errno, the message in tiermm_errmsg(). */
	words[0] = 1UL << 2;	/* CPU-only node */
	errno = 0;
	assert_int_equal(numa_set_pgtable_replication_mask(&bm), -1);
	assert_int_equal(errno, EINVAL);
	assert_non_null(strstr(tiermm_errmsg(), "node 2 has no memory"));
	kp.err = EPERM;
	errno = 0;
	assert_null(numa_get_pgtable_replication_mask());
	assert_int_equal(errno, EPERM);
	bm.maskp = NULL;
	assert_int_equal(numa_set_pgtable_replication_mask(&bm), -1);
	assert_int_equal(errno, EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bad_arguments),
		cmocka_unit_test(test_host_kernel),
		cmocka_unit_test_teardown(test_root_without_series, teardown_root),
		cmocka_unit_test_setup_teardown(test_nodes, setup_fake, teardown_root),
		cmocka_unit_test_setup_teardown(test_groups, setup_fake, teardown_root),
		cmocka_unit_test_setup_teardown(test_prctl_set, setup_fake, teardown_root),
		cmocka_unit_test_setup_teardown(test_prctl_errors, setup_fake, teardown_root),
		cmocka_unit_test_setup_teardown(test_prctl_get, setup_fake, teardown_root),
		cmocka_unit_test_setup_teardown(test_proc, setup_fake, teardown_root),
		cmocka_unit_test_setup_teardown(test_numa_names, setup_fake, teardown_root),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
