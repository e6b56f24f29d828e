// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Page-table replication (issue 7): the user-space side of tiermm's kernel
 * patch series. The calling process is set and read with prctl(2)
 * (PR_SET/GET_PGTABLE_REPLICATION), another one through
 * /proc/PID/pgtable_replication (a node list, "none" to disable).
 *
 * Every call checks what it can before it asks the kernel: that the kernel
 * has the series at all (the probe of `tiermm caps`), that the node set is
 * well formed and names online nodes with memory, so that the common
 * mistakes get a precise message; the kernel then checks again and either
 * does everything or nothing.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "internal.h"

/* The series' prctl(2) options ("TRM1", "TRM2"). */
#ifndef PR_SET_PGTABLE_REPLICATION
#define PR_SET_PGTABLE_REPLICATION 0x54524d31
#endif
#ifndef PR_GET_PGTABLE_REPLICATION
#define PR_GET_PGTABLE_REPLICATION 0x54524d32
#endif

/*
 * libnuma's struct bitmask (<numa.h>), whose layout is part of libnuma's
 * ABI: the number of bits, then the words. The public header only names it.
 */
struct bitmask {
	unsigned long size;
	unsigned long *maskp;
};

#define LONG_BITS (8 * sizeof(unsigned long))
#define NODE_WORDS (TIERMM__MAX_NODES / 64)
/* Largest maxnode looked at: a page of bits, as set_mempolicy(2) allows. */
#define REPL_MAXNODE_MAX (4096u * 8)
#define NODE_SYSFS "/sys/devices/system/node"
#define PTREPL_GROUPS "/proc/sys/kernel/pgtable_replication_groups"

/* Tests: another root for every /sys and /proc file, another prctl(2). */
static const char *test_root;
static int (*test_prctl)(int option, unsigned long arg2, unsigned long arg3,
			 unsigned long arg4, unsigned long arg5);

void tiermm__ptrepl_set_test(const char *root,
			     int (*prctl_fn)(int, unsigned long, unsigned long,
					     unsigned long, unsigned long))
{
	test_root = root;
	test_prctl = prctl_fn;
}

static void fs_init(struct tiermm__fs *fs)
{
	if (tiermm__fs_init(fs, test_root))
		tiermm__fs_init(fs, NULL);
}

static int do_prctl(int option, unsigned long arg2, unsigned long arg3)
{
	if (test_prctl)
		return test_prctl(option, arg2, arg3, 0, 0);
	return prctl(option, arg2, arg3, 0UL, 0UL);
}

static bool ulong_bit(const unsigned long *mask, unsigned int i)
{
	return (mask[i / LONG_BITS] >> (i % LONG_BITS)) & 1;
}

bool tiermm__ptrepl_in_kernel(void)
{
	struct tiermm__fs fs;

	fs_init(&fs);
	return !tiermm__ptrepl_probe(&fs, NULL, 0);
}

static int supported(const char *what)
{
	struct tiermm__fs fs;
	char found[160];

	fs_init(&fs);
	if (!tiermm__ptrepl_probe(&fs, found, sizeof(found)))
		return 0;
	return tiermm__fail(ENOTSUP,
			    "%s: the running kernel lacks tiermm's page-table replication patches (%s; see 'tiermm caps')",
			    what, found);
}

static int check_pid(const char *what, pid_t pid)
{
	if (pid < 0)
		return tiermm__fail(EINVAL,
				    "%s: pid %d is negative (0 is the calling process)",
				    what, (int)pid);
	return 0;
}

/* A sysfs node list into bits; false when the file cannot be read. */
static bool read_nodes(const char *path, uint64_t *bits)
{
	struct tiermm__fs fs;
	char buf[4096];

	fs_init(&fs);
	if (tiermm__fs_read(&fs, path, buf, sizeof(buf)) < 0 ||
	    tiermm__list_parse(buf, bits, TIERMM__MAX_NODES) < 0) {
		memset(bits, 0, NODE_WORDS * sizeof(uint64_t));
		return false;
	}
	return true;
}

/*
 * The kernel's CPU groups (kernel.pgtable_replication_groups: "CPULIST;
 * CPULIST;..."), whose numbers replace node numbers in masks when set: how
 * many there are, 0 in node mode (or on a kernel without groups).
 */
static int repl_groups(void)
{
	struct tiermm__fs fs;
	char buf[1024];
	int n = 1;

	fs_init(&fs);
	if (tiermm__fs_read(&fs, PTREPL_GROUPS, buf, sizeof(buf)) <= 0 || !buf[0])
		return 0;
	for (const char *p = buf; *p; p++)
		n += *p == ';';
	return n;
}

/*
 * The caller's mask as a node set in bits, checked: every node exists, is
 * online and has memory (in group mode: every group exists). Returns the
 * number of nodes, or -EINVAL.
 */
static int take_mask(const char *what, const unsigned long *mask,
		     unsigned int maxnode, uint64_t *bits)
{
	uint64_t online[NODE_WORDS], memory[NODE_WORDS];
	bool have_online, have_memory;
	int count = 0, groups;

	memset(bits, 0, NODE_WORDS * sizeof(uint64_t));
	if (!mask && maxnode)
		return tiermm__fail(EINVAL,
				    "%s: nodes is NULL but maxnode is %u (NULL needs maxnode 0: no replication)",
				    what, maxnode);
	if (maxnode > REPL_MAXNODE_MAX)
		return tiermm__fail(EINVAL,
				    "%s: maxnode %u is larger than any kernel's node count (at most %u bits are looked at)",
				    what, maxnode, REPL_MAXNODE_MAX);
	groups = repl_groups();
	if (groups) {
		for (unsigned int n = 0; n < maxnode; n++) {
			if (!ulong_bit(mask, n))
				continue;
			if (n >= (unsigned int)groups)
				return tiermm__fail(EINVAL,
						    "%s: group %u does not exist (the kernel replicates per CPU group, and %s has %d)",
						    what, n, PTREPL_GROUPS, groups);
			bits[n / 64] |= 1ULL << (n % 64);
			count++;
		}
		return count;
	}
	have_online = read_nodes(NODE_SYSFS "/online", online);
	have_memory = read_nodes(NODE_SYSFS "/has_memory", memory);
	if (!have_online) {
		/* A kernel without NUMA in sysfs: node 0 alone. */
		online[0] = memory[0] = 1;
		have_memory = true;
	}
	for (unsigned int n = 0; n < maxnode; n++) {
		if (!ulong_bit(mask, n))
			continue;
		if (n >= TIERMM__MAX_NODES || !tiermm__bit_test(online, n))
			return tiermm__fail(EINVAL,
					    "%s: node %u does not exist or is offline",
					    what, n);
		if (have_memory && !tiermm__bit_test(memory, n))
			return tiermm__fail(EINVAL,
					    "%s: node %u has no memory (a CPU-only node cannot hold page tables)",
					    what, n);
		bits[n / 64] |= 1ULL << (n % 64);
		count++;
	}
	return count;
}

/* The sentence of a refusal by the kernel (EOPNOTSUPP): which reason. */
static void refusal_reason(char *out, size_t len)
{
	struct tiermm__fs fs;
	char buf[128];

	fs_init(&fs);
	if (tiermm__fs_read(&fs, "/sys/devices/system/cpu/vulnerabilities/meltdown",
			    buf, sizeof(buf)) >= 0 && strstr(buf, "PTI"))
		snprintf(out, len,
			 "kernel page-table isolation is on (meltdown: %s); boot with pti=off to replicate page tables",
			 buf);
	else
		snprintf(out, len,
			 "it replicates no page tables under kernel page-table isolation or in a Xen PV guest");
}

/*
 * The kernel's error err for what on pid (0: the caller) with node list
 * list, as a message; returns -err (EOPNOTSUPP as -ENOTSUP, the same value
 * on Linux).
 */
static int kernel_fail(int err, const char *what, pid_t pid, const char *list)
{
	char self[32], reason[384];

	if (pid)
		snprintf(self, sizeof(self), "pid %d", (int)pid);
	else
		snprintf(self, sizeof(self), "this process");
	switch (err) {
	case ESRCH:
	case ENOENT:
		return tiermm__fail(ESRCH, "%s: pid %d: no such process", what,
				    (int)pid);
	case EPERM:
	case EACCES:
		return tiermm__fail(err,
				    "%s: %s: permission denied: another process's page-table replication needs the right to ptrace-attach to it (the same user and a dumpable process, or CAP_SYS_PTRACE)",
				    what, self);
	case EINVAL:
		return tiermm__fail(EINVAL,
				    "%s: %s: the kernel rejected nodes '%s' (a node offline or without memory, or more nodes than it supports)",
				    what, self, list);
	case EOPNOTSUPP:
		refusal_reason(reason, sizeof(reason));
		return tiermm__fail(ENOTSUP,
				    "%s: %s: the kernel refuses page-table replication on this machine: %s",
				    what, self, reason);
	case ENOMEM:
		return tiermm__fail(ENOMEM,
				    "%s: %s: the kernel could not allocate the replicas on nodes '%s'; nothing changed",
				    what, self, list);
	default:
		return tiermm__fail(err, "%s: %s: %s", what, self, strerror(err));
	}
}

/* /proc/PID/pgtable_replication of pid > 0. */
static void proc_path(pid_t pid, char *out, size_t len)
{
	snprintf(out, len, "/proc/%d/pgtable_replication", (int)pid);
}

/* After open() of /proc/PID/... failed with ENOENT: is pid there at all? */
static int missing_fail(const char *what, pid_t pid, const char *path)
{
	struct tiermm__fs fs;
	char dir[32];

	fs_init(&fs);
	snprintf(dir, sizeof(dir), "/proc/%d", (int)pid);
	if (!tiermm__fs_exists(&fs, dir))
		return tiermm__fail(ESRCH, "%s: pid %d: no such process", what,
				    (int)pid);
	return tiermm__fail(ENOTSUP,
			    "%s: %s is missing: the running kernel lacks tiermm's page-table replication patches",
			    what, path);
}

int tiermm_pt_replicate(pid_t pid, const unsigned long *nodes,
			unsigned int maxnode, unsigned int flags)
{
	static const char what[] = "page-table replication";
	unsigned long kmask[TIERMM__MAX_NODES / LONG_BITS];
	uint64_t bits[NODE_WORDS];
	char list[4096], path[64], line[4100], full[PATH_MAX];
	int saved = errno, count, ret, fd, err;
	struct tiermm__fs fs;
	unsigned int hi = 0;
	ssize_t n;

	if (flags)
		return tiermm__fail(EINVAL, "%s: flags must be 0 (got 0x%x)",
				    what, flags);
	ret = check_pid(what, pid);
	if (ret)
		return ret;
	count = take_mask(what, nodes, maxnode, bits);
	if (count < 0)
		return count;
	ret = supported(what);
	if (ret)
		return ret;
	tiermm__list_format(bits, TIERMM__MAX_NODES, list, sizeof(list));

	if (!pid) {
		memset(kmask, 0, sizeof(kmask));
		for (unsigned int i = 0; i < TIERMM__MAX_NODES; i++) {
			if (!tiermm__bit_test(bits, i))
				continue;
			kmask[i / LONG_BITS] |= 1UL << (i % LONG_BITS);
			hi = i + 1;
		}
		do {
			ret = do_prctl(PR_SET_PGTABLE_REPLICATION,
				       (unsigned long)(uintptr_t)(count ? kmask : NULL),
				       (unsigned long)hi);
		} while (ret && errno == EINTR);
		err = ret ? errno : 0;
		errno = saved;
		if (err)
			return kernel_fail(err, what, 0, count ? list : "none");
		tiermm__log(TIERMM_LOG_INFO, "%s: this process: %s", what,
			    count ? list : "none");
		return 0;
	}

	proc_path(pid, path, sizeof(path));
	fs_init(&fs);
	if (tiermm__fs_path(&fs, path, full, sizeof(full)))
		return tiermm__fail(ENAMETOOLONG, "%s: path too long", what);
	fd = open(full, O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		err = errno;
		errno = saved;
		if (err == ENOENT)
			return missing_fail(what, pid, path);
		return kernel_fail(err, what, pid, count ? list : "none");
	}
	snprintf(line, sizeof(line), "%s\n", count ? list : "none");
	do {
		n = write(fd, line, strlen(line));
	} while (n < 0 && errno == EINTR);
	err = n < 0 ? errno : (size_t)n != strlen(line) ? EIO : 0;
	close(fd);
	errno = saved;
	if (err)
		return kernel_fail(err, what, pid, count ? list : "none");
	tiermm__log(TIERMM_LOG_INFO, "%s: pid %d: %s", what, (int)pid,
		    count ? list : "none");
	return 0;
}

int tiermm_pt_replication(pid_t pid, unsigned long *nodes, unsigned int maxnode)
{
	static const char what[] = "page-table replication";
	unsigned long kmask[TIERMM__MAX_NODES / LONG_BITS];
	uint64_t bits[NODE_WORDS];
	char path[64], buf[4096];
	int saved = errno, ret, count = 0;
	unsigned int hi = 0;

	if (!nodes && maxnode)
		return tiermm__fail(EINVAL,
				    "%s: nodes is NULL but maxnode is %u", what,
				    maxnode);
	ret = check_pid(what, pid);
	if (!ret)
		ret = supported(what);
	if (ret)
		return ret;

	memset(bits, 0, sizeof(bits));
	if (!pid) {
		memset(kmask, 0, sizeof(kmask));
		ret = do_prctl(PR_GET_PGTABLE_REPLICATION,
			       (unsigned long)(uintptr_t)kmask,
			       (unsigned long)TIERMM__MAX_NODES);
		if (ret) {
			int err = errno;

			errno = saved;
			if (err == EINVAL)
				return tiermm__fail(EINVAL,
						    "%s: the kernel rejected a mask of %u nodes (it has more possible nodes than this library knows)",
						    what, TIERMM__MAX_NODES);
			return kernel_fail(err, what, 0, "");
		}
		for (unsigned int i = 0; i < TIERMM__MAX_NODES; i++)
			if (ulong_bit(kmask, i))
				bits[i / 64] |= 1ULL << (i % 64);
	} else {
		struct tiermm__fs fs;
		ssize_t n;

		fs_init(&fs);
		proc_path(pid, path, sizeof(path));
		n = tiermm__fs_read(&fs, path, buf, sizeof(buf));
		if (n < 0) {
			if (n == -ENOENT)
				return missing_fail(what, pid, path);
			return kernel_fail((int)-n, what, pid, "");
		}
		if (tiermm__list_parse(buf, bits, TIERMM__MAX_NODES) < 0)
			return tiermm__fail(EPROTO,
					    "%s: pid %d: %s holds '%s', not a node list",
					    what, (int)pid, path, buf);
	}
	errno = saved;
	for (unsigned int i = 0; i < TIERMM__MAX_NODES; i++) {
		if (!tiermm__bit_test(bits, i))
			continue;
		count++;
		hi = i;
	}
	if (count && hi >= maxnode)
		return tiermm__fail(ERANGE,
				    "%s: a replica is on node %u, beyond the %u nodes the mask holds",
				    what, hi, maxnode);
	if (maxnode)
		memset(nodes, 0,
		       (maxnode + LONG_BITS - 1) / LONG_BITS * sizeof(unsigned long));
	for (unsigned int i = 0; i < TIERMM__MAX_NODES && i < maxnode; i++)
		if (tiermm__bit_test(bits, i))
			nodes[i / LONG_BITS] |= 1UL << (i % LONG_BITS);
	return count;
}

/* ---- libnuma's names ------------------------------------------------------ */

int numa_set_pgtable_replication_mask(struct bitmask *nodes)
{
	unsigned long size = nodes ? nodes->size : 0;

	if (nodes && size && !nodes->maskp) {
		tiermm__fail(EINVAL,
			     "numa_set_pgtable_replication_mask: the bitmask has no words");
		return -1;
	}
	if (size > REPL_MAXNODE_MAX) {
		/* Bits beyond any kernel's nodes must be clear. */
		for (unsigned long i = REPL_MAXNODE_MAX; i < size; i++) {
			if ((nodes->maskp[i / LONG_BITS] >> (i % LONG_BITS)) & 1) {
				tiermm__fail(EINVAL,
					     "numa_set_pgtable_replication_mask: node %lu does not exist",
					     i);
				return -1;
			}
		}
		size = REPL_MAXNODE_MAX;
	}
	if (tiermm_pt_replicate(0, size ? nodes->maskp : NULL,
				(unsigned int)size, 0))
		return -1;
	return 0;
}

struct bitmask *numa_get_pgtable_replication_mask(void)
{
	struct bitmask *bmp = calloc(1, sizeof(*bmp));
	int ret;

	if (bmp)
		bmp->maskp = calloc(TIERMM__MAX_NODES / LONG_BITS,
				    sizeof(unsigned long));
	if (!bmp || !bmp->maskp) {
		free(bmp);
		tiermm__fail(ENOMEM, "numa_get_pgtable_replication_mask: out of memory");
		return NULL;
	}
	bmp->size = TIERMM__MAX_NODES;
	ret = tiermm_pt_replication(0, bmp->maskp, TIERMM__MAX_NODES);
	if (ret < 0) {
		free(bmp->maskp);
		free(bmp);
		errno = -ret;
		return NULL;
	}
	return bmp;
}
