// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * tierbench: system calls, sysfs and procfs helpers. libc only (the binary
 * is static and runs in the guest's busybox initramfs).
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "tierbench.h"

uint64_t tb_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

pid_t tb_gettid(void)
{
	return (pid_t)syscall(SYS_gettid);
}

int tb_read_str(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	if (n < 0) {
		int e = errno;

		close(fd);
		return -e;
	}
	close(fd);
	buf[n] = '\0';
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	return 0;
}

int tb_read_u64(const char *path, uint64_t *v)
{
	char buf[64], *end;
	int ret = tb_read_str(path, buf, sizeof(buf));

	if (ret)
		return ret;
	errno = 0;
	*v = strtoull(buf, &end, 0);
	if (errno || end == buf)
		return -EINVAL;
	return 0;
}

int tb_write_str(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	size_t len = strlen(val);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, val, len);
	if (n < 0) {
		int e = errno;

		close(fd);
		return -e;
	}
	close(fd);
	return (size_t)n == len ? 0 : -EIO;
}

int tb_write_u64(const char *path, uint64_t v)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%llu", (unsigned long long)v);
	return tb_write_str(path, buf);
}

int tb_writef(const char *val, const char *fmt, ...)
{
	char path[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(path, sizeof(path), fmt, ap);
	va_end(ap);
	return tb_write_str(path, val);
}

uint64_t tb_parse_list(const char *s)
{
	uint64_t mask = 0;

	while (*s) {
		char *end;
		unsigned long a = strtoul(s, &end, 10), b = a;

		if (end == s)
			break;
		s = end;
		if (*s == '-') {
			b = strtoul(s + 1, &end, 10);
			s = end;
		}
		for (unsigned long i = a; i <= b && i < 64; i++)
			mask |= 1ull << i;
		if (*s == ',')
			s++;
		else
			break;
	}
	return mask;
}

long tb_move_pages(int pid, unsigned long count, void **pages,
		   const int *nodes, int *status, int flags)
{
	return syscall(SYS_move_pages, pid, count, pages, nodes, status, flags);
}

long tb_mbind(void *addr, unsigned long len, int mode, uint64_t nodemask,
	      unsigned int flags)
{
	unsigned long mask[1] = { (unsigned long)nodemask };

	return syscall(SYS_mbind, addr, len, mode, nodemask ? mask : NULL,
		       nodemask ? 64 + 1 : 0, flags);
}

long tb_set_mempolicy(int mode, uint64_t nodemask)
{
	unsigned long mask[1] = { (unsigned long)nodemask };

	return syscall(SYS_set_mempolicy, mode, nodemask ? mask : NULL,
		       nodemask ? 64 + 1 : 0);
}

const char *const tb_vmstat_names[TB_VM__COUNT] = {
	[TB_VM_PGMIGRATE_SUCCESS] = "pgmigrate_success",
	[TB_VM_PGMIGRATE_FAIL] = "pgmigrate_fail",
	[TB_VM_NUMA_PAGES_MIGRATED] = "numa_pages_migrated",
	[TB_VM_NUMA_HINT_FAULTS] = "numa_hint_faults",
	[TB_VM_PGPROMOTE_SUCCESS] = "pgpromote_success",
	[TB_VM_PGDEMOTE_KSWAPD] = "pgdemote_kswapd",
	[TB_VM_PGDEMOTE_DIRECT] = "pgdemote_direct",
	[TB_VM_PGDEMOTE_KHUGEPAGED] = "pgdemote_khugepaged",
};

int tb_vmstat_read(uint64_t v[TB_VM__COUNT])
{
	FILE *f = fopen("/proc/vmstat", "re");
	char name[128];
	unsigned long long val;

	memset(v, 0, sizeof(uint64_t) * TB_VM__COUNT);
	if (!f)
		return -errno;
	while (fscanf(f, "%127s %llu", name, &val) == 2) {
		for (int i = 0; i < TB_VM__COUNT; i++)
			if (!strcmp(name, tb_vmstat_names[i]))
				v[i] = val;
	}
	fclose(f);
	return 0;
}

double tb_clk_tck(void)
{
	static long hz;

	if (!hz)
		hz = sysconf(_SC_CLK_TCK);
	return hz > 0 ? (double)hz : 100.0;
}

int tb_task_cpu(pid_t pid, pid_t tid, double *user_s, double *sys_s)
{
	char path[96], buf[1024], *p;
	unsigned long long ut, st;
	int ret;

	if (tid)
		snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", pid, tid);
	else
		snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	ret = tb_read_str(path, buf, sizeof(buf));
	if (ret)
		return ret;
	/* comm may hold spaces and parentheses: fields follow the last ')' */
	p = strrchr(buf, ')');
	if (!p)
		return -EINVAL;
	/* state ppid pgrp session tty tpgid flags minflt cminflt majflt
	 * cmajflt utime stime */
	if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
		   &ut, &st) != 2)
		return -EINVAL;
	if (user_s)
		*user_s = (double)ut / tb_clk_tck();
	if (sys_s)
		*sys_s = (double)st / tb_clk_tck();
	return 0;
}

int tb_machine_cpu(double *sys_s, double *busy_s)
{
	char buf[512];
	unsigned long long v[8] = { 0 };
	FILE *f = fopen("/proc/stat", "re");

	if (!f)
		return -errno;
	if (!fgets(buf, sizeof(buf), f)) {
		fclose(f);
		return -EIO;
	}
	fclose(f);
	/* cpu user nice system idle iowait irq softirq steal */
	if (sscanf(buf, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0],
		   &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) < 7)
		return -EINVAL;
	if (sys_s)
		*sys_s = (double)(v[2] + v[5] + v[6]) / tb_clk_tck();
	if (busy_s)
		*busy_s = (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) /
			  tb_clk_tck();
	return 0;
}

pid_t tb_find_kthread(const char *comm)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	pid_t found = -1;

	if (!d)
		return -1;
	while ((de = readdir(d))) {
		char path[300], name[64];

		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		snprintf(path, sizeof(path), "/proc/%s/comm", de->d_name);
		if (tb_read_str(path, name, sizeof(name)))
			continue;
		if (!strcmp(name, comm)) {
			found = (pid_t)atoi(de->d_name);
			break;
		}
	}
	closedir(d);
	return found;
}

int tb_node_free(int node, uint64_t *bytes)
{
	char path[96], line[256];
	FILE *f;
	int ret = -ENOENT;

	snprintf(path, sizeof(path), "/sys/devices/system/node/node%d/meminfo",
		 node);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long kb;
		char *p = strstr(line, "MemFree:");

		if (p && sscanf(p + 8, "%llu", &kb) == 1) {
			*bytes = kb * 1024ull;
			ret = 0;
			break;
		}
	}
	fclose(f);
	return ret;
}

/*
 * Per zone of the node (zones with managed pages only): free pages (in the
 * buddy allocator, and with pcp those on the per-CPU lists), the
 * watermark, and the lowmem reserve that allocations of higher zones (user
 * pages: the movable zone) must leave in it ("protection", largest value).
 * *wmark gets the sum of the watermark; *usable, if not NULL, the pages a
 * user allocation can take before the node is at that watermark.
 */
int tb_node_wmark(int node, const char *which, bool pcp, uint64_t *wmark,
		  uint64_t *usable)
{
	FILE *f = fopen("/proc/zoneinfo", "re");
	char line[512], key[64];
	int cur = -1;
	unsigned long long v;
	uint64_t sum = 0, use = 0;
	uint64_t z_free = 0, z_mark = 0, z_prot = 0, z_managed = 0;
	bool in_zone = false;

#define ZONE_DONE() do { \
		if (in_zone && z_managed) { \
			sum += z_mark; \
			if (z_free > z_mark + z_prot) \
				use += z_free - z_mark - z_prot; \
		} \
	} while (0)
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		int n;
		char *p;

		if (sscanf(line, "Node %d, zone", &n) == 1) {
			ZONE_DONE();
			cur = n;
			in_zone = cur == node;
			z_free = z_mark = z_prot = z_managed = 0;
			continue;
		}
		if (!in_zone)
			continue;
		if (sscanf(line, " pages free %llu", &v) == 1) {
			z_free += v;
		} else if (sscanf(line, " count: %llu", &v) == 1) {
			/* free pages cached on a CPU's list: not in "pages
			 * free", allocatable by that CPU */
			if (pcp)
				z_free += v;
		} else if ((p = strstr(line, "protection: ("))) {
			p += 13;
			while (*p && *p != ')') {
				unsigned long long x = strtoull(p, &p, 10);

				if (x > z_prot)
					z_prot = x;
				while (*p == ',' || *p == ' ')
					p++;
			}
		} else if (sscanf(line, " %63s %llu", key, &v) == 2) {
			if (!strcmp(key, which))
				z_mark = v;
			else if (!strcmp(key, "managed"))
				z_managed = v;
		}
	}
	ZONE_DONE();
#undef ZONE_DONE
	fclose(f);
	*wmark = sum;
	if (usable)
		*usable = use;
	return 0;
}

int tb_node_phys_range(int node, uint64_t *start, uint64_t *end)
{
	char path[96];
	uint64_t bs, lo = UINT64_MAX, hi = 0;
	DIR *d;
	struct dirent *de;

	/* block_size_bytes is hex without a prefix */
	{
		char buf[64];

		if (tb_read_str("/sys/devices/system/memory/block_size_bytes",
				buf, sizeof(buf)))
			return -ENOENT;
		bs = strtoull(buf, NULL, 16);
		if (!bs)
			return -EINVAL;
	}
	snprintf(path, sizeof(path), "/sys/devices/system/node/node%d", node);
	d = opendir(path);
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		char *e;
		unsigned long long id;

		if (strncmp(de->d_name, "memory", 6) ||
		    !isdigit((unsigned char)de->d_name[6]))
			continue;
		id = strtoull(de->d_name + 6, &e, 10);
		if (*e)
			continue;
		if (id * bs < lo)
			lo = id * bs;
		if ((id + 1) * bs > hi)
			hi = (id + 1) * bs;
	}
	closedir(d);
	if (hi <= lo)
		return -ENOENT;
	*start = lo;
	*end = hi;
	return 0;
}

int tb_blockmap_load(struct tb_blockmap *m)
{
	char buf[64];
	DIR *d;
	struct dirent *de;
	size_t cap = 0;

	memset(m, 0, sizeof(*m));
	if (tb_read_str("/sys/devices/system/memory/block_size_bytes", buf,
			sizeof(buf)))
		return -ENOENT;
	m->block_bytes = strtoull(buf, NULL, 16);
	if (!m->block_bytes)
		return -EINVAL;
	d = opendir("/sys/devices/system/node");
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		char path[300];
		DIR *nd;
		struct dirent *me;
		int node;

		if (strncmp(de->d_name, "node", 4) ||
		    !isdigit((unsigned char)de->d_name[4]))
			continue;
		node = atoi(de->d_name + 4);
		snprintf(path, sizeof(path), "/sys/devices/system/node/%s",
			 de->d_name);
		nd = opendir(path);
		if (!nd)
			continue;
		while ((me = readdir(nd))) {
			char *e;
			unsigned long long id;

			if (strncmp(me->d_name, "memory", 6) ||
			    !isdigit((unsigned char)me->d_name[6]))
				continue;
			id = strtoull(me->d_name + 6, &e, 10);
			if (*e || id > (1ull << 24))
				continue;
			if (id >= cap) {
				size_t ncap = (size_t)id + 64;
				int *n = realloc(m->node, ncap * sizeof(int));

				if (!n) {
					closedir(nd);
					closedir(d);
					return -ENOMEM;
				}
				for (size_t i = cap; i < ncap; i++)
					n[i] = -1;
				m->node = n;
				cap = ncap;
			}
			m->node[id] = node;
			if (id + 1 > m->nblocks)
				m->nblocks = (size_t)id + 1;
		}
		closedir(nd);
	}
	closedir(d);
	return m->nblocks ? 0 : -ENOENT;
}

#define TMPFS_MAGIC_ 0x01021994
#define RAMFS_MAGIC_ 0x858458f6

/* Move the pages of one file that are on node from to node to. */
static uint64_t evacuate_file(const char *path, int to)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	uint64_t moved = 0;
	size_t n, len;
	unsigned char *m;
	void **pages;
	int *nodes, *status;

	if (fd < 0)
		return 0;
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) || st.st_size <= 0) {
		close(fd);
		return 0;
	}
	len = (size_t)st.st_size;
	n = (len + TB_PAGE - 1) / TB_PAGE;
	m = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (m == MAP_FAILED)
		return 0;
	pages = malloc(n * sizeof(void *));
	nodes = malloc(n * sizeof(int));
	status = malloc(n * sizeof(int));
	if (pages && nodes && status) {
		for (size_t i = 0; i < n; i++) {
			/* map the page (tmpfs: it is in memory already) */
			(void)*(volatile unsigned char *)(m + i * TB_PAGE);
			pages[i] = m + i * TB_PAGE;
			nodes[i] = to;
		}
		/* MPOL_MF_MOVE_ALL: also pages other processes map */
		if (tb_move_pages(0, n, pages, nodes, status, 1 << 2) >= 0)
			for (size_t i = 0; i < n; i++)
				moved += status[i] == to;
	}
	free(pages);
	free(nodes);
	free(status);
	munmap(m, len);
	return moved;
}

static uint64_t evacuate_dir(const char *dir, int to, unsigned int depth)
{
	DIR *d;
	struct dirent *de;
	uint64_t moved = 0;

	if (depth > 32)
		return 0;
	d = opendir(dir);
	if (!d)
		return 0;
	while ((de = readdir(d))) {
		char path[4096];
		struct stat st;
		struct statfs sf;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(path, sizeof(path), "%s/%s", strcmp(dir, "/") ? dir : "",
			 de->d_name);
		if (lstat(path, &st))
			continue;
		if (S_ISDIR(st.st_mode)) {
			/* memory-backed file systems only (not proc, sysfs, ...) */
			if (statfs(path, &sf) ||
			    ((unsigned long)sf.f_type != TMPFS_MAGIC_ &&
			     (unsigned long)sf.f_type != RAMFS_MAGIC_))
				continue;
			moved += evacuate_dir(path, to, depth + 1);
		} else if (S_ISREG(st.st_mode)) {
			moved += evacuate_file(path, to);
		}
	}
	closedir(d);
	return moved;
}

uint64_t tb_evacuate_node(int from, int to)
{
	unsigned long old_mask = 1ul << from, new_mask = 1ul << to;
	uint64_t moved = 0;
	pid_t self = getpid();
	DIR *d = opendir("/proc");
	struct dirent *de;

	/* other processes: everything they have on the node */
	while (d && (de = readdir(d))) {
		pid_t pid;
		long r;

		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		pid = (pid_t)atoi(de->d_name);
		if (pid == self)
			continue;
		r = syscall(SYS_migrate_pages, pid, 64 + 1, &old_mask, &new_mask);
		(void)r;	/* kernel threads have no mm: EINVAL */
	}
	if (d)
		closedir(d);
	moved += evacuate_dir("/", to, 0);
	return moved;
}
