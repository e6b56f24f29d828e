// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Feature probes. Each probe records a state and a one-line detail; none
 * changes the caller's memory policy or errno.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/perf_event.h>
#include <linux/tiermm.h>

#include "internal.h"

#ifndef MPOL_PREFERRED_MANY
#define MPOL_PREFERRED_MANY 5
#endif
#ifndef MPOL_WEIGHTED_INTERLEAVE
#define MPOL_WEIGHTED_INTERLEAVE 6
#endif

#define NODE_SYSFS "/sys/devices/system/node"
#define TIER_SYSFS "/sys/devices/virtual/memory_tiering"
#define DAMON_SYSFS "/sys/kernel/mm/damon/admin"
#define PTREPL_SYSCTL "/proc/sys/kernel/pgtable_replication"

struct cap_result {
	int state;
	char detail[320];
};

struct node_info {
	int os_index;
	int nr_cpus;
	int has_memory;
	int memory_tier;
	int tier_rank;
	uint64_t mem_total;
	uint32_t hmat[4];	/* read lat, write lat, read bw, write bw */
	int hmat_class;		/* 0: access0, 1: access1 */
	char cpus[256];
};

struct tiermm_caps {
	struct tiermm__fs fs;
	struct cap_result cap[TIERMM_CAP__COUNT];
	int nr_nodes;
	struct node_info *nodes;
	uint32_t module_api;
	uint64_t module_features;
	uint64_t module_commands;
};

static const struct {
	const char *name;
	const char *help;
} cap_text[TIERMM_CAP__COUNT] = {
	[TIERMM_CAP_NUMA] = { "numa",
		"without NUMA nodes in sysfs there is nothing to place: every tiermm placement call fails with ENOTSUP" },
	[TIERMM_CAP_MOVE_PAGES] = { "move_pages",
		"pages cannot be moved or their node queried: placement, residency and the tiering engine are unavailable" },
	[TIERMM_CAP_MEMORY_TIERS] = { "memory_tiers",
		"the kernel does not rank memory tiers; tiermm ranks them from HMAT, node kinds or its own measurements instead, and says so" },
	[TIERMM_CAP_HMAT] = { "hmat",
		"no firmware latency/bandwidth per node: tier ranking relies on the kernel, node kinds or tiermm's measurements" },
	[TIERMM_CAP_MPOL_PREFERRED_MANY] = { "mpol_preferred_many",
		"allocations cannot prefer a set of nodes (a whole tier); tier-bound allocation must name one node or bind strictly" },
	[TIERMM_CAP_WEIGHTED_INTERLEAVE] = { "weighted_interleave",
		"interleaving across tiers in proportion to bandwidth is unavailable; only plain interleave can be used" },
	[TIERMM_CAP_DAMON_VADDR] = { "damon_vaddr",
		"the DAMON hotness backend is unavailable (it also needs root when present); use the perf or tiermm.ko access-bit backend" },
	[TIERMM_CAP_PERF_MEM_SAMPLING] = { "perf_mem_sampling",
		"no precise memory sampling (PEBS/IBS): the perf hotness backend is unavailable; use tiermm.ko's access-bit scanner or DAMON" },
	[TIERMM_CAP_MODULE] = { "module",
		"page-table statistics, dumps, page-table migration and the access-bit scanner need tiermm.ko" },
	[TIERMM_CAP_PT_REPLICATION] = { "pt_replication",
		"page-table replication needs a kernel built with tiermm's patch series" },
};

static void setcap(struct tiermm_caps *c, enum tiermm_cap cap, int state,
		   const char *fmt, ...) TIERMM__PRINTF(4, 5);

static void setcap(struct tiermm_caps *c, enum tiermm_cap cap, int state,
		   const char *fmt, ...)
{
	va_list ap;

	c->cap[cap].state = state;
	va_start(ap, fmt);
	vsnprintf(c->cap[cap].detail, sizeof(c->cap[cap].detail), fmt, ap);
	va_end(ap);
	tiermm__log(TIERMM_LOG_DEBUG, "probe %s: %s: %s", cap_text[cap].name,
		    state == TIERMM_CAP_PRESENT ? "present" :
		    state == TIERMM_CAP_ABSENT ? "absent" : "unknown",
		    c->cap[cap].detail);
}

static int read_list(const struct tiermm__fs *fs, const char *path,
		     uint64_t *bits)
{
	char buf[4096];
	ssize_t n = tiermm__fs_read(fs, path, buf, sizeof(buf));

	if (n < 0)
		return (int)n;
	return tiermm__list_parse(buf, bits, TIERMM__MAX_NODES);
}

static uint64_t node_meminfo_total(const struct tiermm__fs *fs, int node)
{
	char path[128], buf[4096], *p;
	unsigned long long kb;

	snprintf(path, sizeof(path), NODE_SYSFS "/node%d/meminfo", node);
	if (tiermm__fs_read(fs, path, buf, sizeof(buf)) < 0)
		return 0;
	p = strstr(buf, "MemTotal:");
	if (!p || sscanf(p, "MemTotal: %llu kB", &kb) != 1)
		return 0;
	return (uint64_t)kb * 1024;
}

/* Nodes from nodeN directories, for captures without an online file. */
static int list_node_dirs(const struct tiermm__fs *fs, uint64_t *bits)
{
	struct dirent *de;
	int count = 0;
	DIR *d;

	memset(bits, 0, TIERMM__MAX_NODES / 8);
	d = tiermm__fs_opendir(fs, NODE_SYSFS);
	if (!d)
		return -ENOENT;
	while ((de = readdir(d))) {
		unsigned int id;
		char end;

		if (sscanf(de->d_name, "node%u%c", &id, &end) == 1 &&
		    id < TIERMM__MAX_NODES && !tiermm__bit_test(bits, id)) {
			bits[id / 64] |= 1ULL << (id % 64);
			count++;
		}
	}
	closedir(d);
	return count;
}

/* The CPUs of a node as a list string, from cpulist or else cpumap. */
static int node_cpus(const struct tiermm__fs *fs, int id, char *out,
		     size_t len)
{
	uint64_t bits[TIERMM__CPU_BITS / 64];
	char path[128];
	int n;

	snprintf(path, sizeof(path), NODE_SYSFS "/node%d/cpulist", id);
	if (tiermm__fs_read(fs, path, out, len) >= 0)
		return tiermm__list_parse(out, bits, TIERMM__CPU_BITS);
	snprintf(path, sizeof(path), NODE_SYSFS "/node%d/cpumap", id);
	if (tiermm__fs_read(fs, path, out, len) < 0) {
		out[0] = '\0';
		return 0;
	}
	n = tiermm__mask_parse(out, bits, TIERMM__CPU_BITS);
	if (n < 0) {
		out[0] = '\0';
		return n;
	}
	tiermm__list_format(bits, TIERMM__CPU_BITS, out, len);
	return n;
}

static void probe_nodes(struct tiermm_caps *c)
{
	uint64_t online[TIERMM__MAX_NODES / 64], mem[TIERMM__MAX_NODES / 64];
	char buf[512];
	int n, ncpu_nodes = 0, nmem_nodes = 0, have_mem;
	const char *src = "online";

	n = read_list(&c->fs, NODE_SYSFS "/online", online);
	if (n < 0) {
		n = list_node_dirs(&c->fs, online);
		src = "nodeN directories";
	}
	if (n <= 0) {
		setcap(c, TIERMM_CAP_NUMA, TIERMM_CAP_ABSENT,
		       "%s lists no node (kernel without CONFIG_NUMA?)",
		       NODE_SYSFS);
		return;
	}
	c->nodes = calloc((size_t)n, sizeof(*c->nodes));
	if (!c->nodes) {
		setcap(c, TIERMM_CAP_NUMA, TIERMM_CAP_UNKNOWN, "out of memory");
		return;
	}
	have_mem = read_list(&c->fs, NODE_SYSFS "/has_memory", mem) >= 0;
	for (int id = 0; id < TIERMM__MAX_NODES; id++) {
		struct node_info *ni;
		int nc;

		if (!tiermm__bit_test(online, (unsigned int)id))
			continue;
		ni = &c->nodes[c->nr_nodes++];
		ni->os_index = id;
		ni->memory_tier = -1;
		ni->tier_rank = -1;
		nc = node_cpus(&c->fs, id, ni->cpus, sizeof(ni->cpus));
		ni->nr_cpus = nc > 0 ? nc : 0;
		if (ni->nr_cpus)
			ncpu_nodes++;
		ni->mem_total = node_meminfo_total(&c->fs, id);
		ni->has_memory = have_mem ? tiermm__bit_test(mem, (unsigned int)id) :
					    ni->mem_total > 0;
		if (ni->has_memory)
			nmem_nodes++;
	}
	snprintf(buf, sizeof(buf),
		 "%d node%s (from %s), %d with CPUs, %d with memory",
		 c->nr_nodes, c->nr_nodes == 1 ? "" : "s", src, ncpu_nodes,
		 nmem_nodes);
	setcap(c, TIERMM_CAP_NUMA, TIERMM_CAP_PRESENT, "%s%s", buf,
	       c->nr_nodes == 1 ? " (a single node: nothing to place between)" : "");
}

static void probe_move_pages(struct tiermm_caps *c)
{
	long page = sysconf(_SC_PAGESIZE);
	void *p, *pages[1];
	int status[1] = { -1 };
	long ret;
	int err;

	if (!tiermm__fs_is_live(&c->fs)) {
		setcap(c, TIERMM_CAP_MOVE_PAGES, TIERMM_CAP_UNKNOWN,
		       "not probed: a system call cannot be replayed from a captured root");
		return;
	}
	p = mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		setcap(c, TIERMM_CAP_MOVE_PAGES, TIERMM_CAP_UNKNOWN,
		       "mmap for the probe failed: %s", strerror(errno));
		return;
	}
	*(volatile char *)p = 1;
	pages[0] = p;
	/* nodes == NULL: query only, nothing moves. */
	ret = syscall(SYS_move_pages, 0, 1UL, pages, NULL, status, 0);
	err = errno;
	munmap(p, (size_t)page);
	if (ret == 0 && status[0] >= 0)
		setcap(c, TIERMM_CAP_MOVE_PAGES, TIERMM_CAP_PRESENT,
		       "status query works (probe page on node %d)", status[0]);
	else if (ret == 0)
		setcap(c, TIERMM_CAP_MOVE_PAGES, TIERMM_CAP_ABSENT,
		       "status query returned %s", strerror(-status[0]));
	else if (err == ENOSYS)
		setcap(c, TIERMM_CAP_MOVE_PAGES, TIERMM_CAP_ABSENT,
		       "move_pages(2) returns ENOSYS (kernel without CONFIG_MIGRATION or NUMA)");
	else
		setcap(c, TIERMM_CAP_MOVE_PAGES, TIERMM_CAP_ABSENT,
		       "move_pages(2) query failed: %s", strerror(err));
}

struct tier {
	int id;
	char nodes[256];
};

static int tier_cmp(const void *a, const void *b)
{
	return ((const struct tier *)a)->id - ((const struct tier *)b)->id;
}

static void probe_tiers(struct tiermm_caps *c)
{
	struct tier tiers[64];
	int ntiers = 0, len = 0;
	struct dirent *de;
	char path[PATH_MAX], buf[1024] = "", flag[16];
	DIR *d;

	d = tiermm__fs_opendir(&c->fs, TIER_SYSFS);
	if (!d) {
		setcap(c, TIERMM_CAP_MEMORY_TIERS, TIERMM_CAP_ABSENT,
		       "%s is missing (kernel older than 6.1 or without NUMA)",
		       TIER_SYSFS);
		return;
	}
	while ((de = readdir(d)) && ntiers < (int)TIERMM__ARRAY_SIZE(tiers)) {
		int id;
		char end;

		if (sscanf(de->d_name, "memory_tier%d%c", &id, &end) != 1)
			continue;
		snprintf(path, sizeof(path), TIER_SYSFS "/%s/nodelist",
			 de->d_name);
		if (tiermm__fs_read(&c->fs, path, tiers[ntiers].nodes,
				    sizeof(tiers[ntiers].nodes)) < 0)
			continue;
		tiers[ntiers++].id = id;
	}
	closedir(d);
	qsort(tiers, (size_t)ntiers, sizeof(tiers[0]), tier_cmp);
	for (int t = 0; t < ntiers; t++) {
		uint64_t bits[TIERMM__MAX_NODES / 64];

		if (tiermm__list_parse(tiers[t].nodes, bits,
				       TIERMM__MAX_NODES) < 0)
			continue;
		for (int i = 0; i < c->nr_nodes; i++) {
			if (tiermm__bit_test(bits, (unsigned int)c->nodes[i].os_index)) {
				c->nodes[i].memory_tier = tiers[t].id;
				c->nodes[i].tier_rank = t;
			}
		}
		len += snprintf(buf + len, sizeof(buf) - (size_t)len,
				"%smemory_tier%d: nodes %s", t ? "; " : "",
				tiers[t].id, tiers[t].nodes);
		if (len >= (int)sizeof(buf))
			len = (int)sizeof(buf) - 1;
	}
	if (!ntiers) {
		setcap(c, TIERMM_CAP_MEMORY_TIERS, TIERMM_CAP_ABSENT,
		       "%s exists but holds no memory tier", TIER_SYSFS);
		return;
	}
	if (tiermm__fs_read(&c->fs, "/sys/kernel/mm/numa/demotion_enabled",
			    flag, sizeof(flag)) < 0)
		strcpy(flag, "missing");
	setcap(c, TIERMM_CAP_MEMORY_TIERS, TIERMM_CAP_PRESENT,
	       "%d tier%s (%s); demotion_enabled=%s", ntiers,
	       ntiers == 1 ? "" : "s", buf, flag);
}

/*
 * HMAT attributes of the best initiators: access0 (any initiator) when the
 * kernel exposes it, else access1 (CPU initiators only).
 */
static void probe_hmat(struct tiermm_caps *c)
{
	static const char *const attr[4] = { "read_latency", "write_latency",
					     "read_bandwidth", "write_bandwidth" };
	int with = 0;

	for (int i = 0; i < c->nr_nodes; i++) {
		struct node_info *ni = &c->nodes[i];
		bool any = false;

		for (int cls = 0; cls < 2 && !any; cls++) {
			for (int a = 0; a < 4; a++) {
				char path[160];
				uint64_t v;

				snprintf(path, sizeof(path),
					 NODE_SYSFS "/node%d/access%d/initiators/%s",
					 ni->os_index, cls, attr[a]);
				if (!tiermm__fs_read_u64(&c->fs, path, &v)) {
					ni->hmat[a] = v > UINT32_MAX ?
						UINT32_MAX : (uint32_t)v;
					any = true;
				}
			}
			if (any)
				ni->hmat_class = cls;
		}
		if (any)
			with++;
	}
	if (with)
		setcap(c, TIERMM_CAP_HMAT, TIERMM_CAP_PRESENT,
		       "initiator latency/bandwidth for %d of %d nodes (per-node values in the node table)",
		       with, c->nr_nodes);
	else
		setcap(c, TIERMM_CAP_HMAT, TIERMM_CAP_ABSENT,
		       "no %s/nodeN/access0 or access1 initiator attributes (firmware has no HMAT, or kernel without CONFIG_HMEM_REPORTING)",
		       NODE_SYSFS);
}

/* First node with memory, for a valid nodemask in mbind probes. */
static int first_mem_node(const struct tiermm_caps *c)
{
	for (int i = 0; i < c->nr_nodes; i++)
		if (c->nodes[i].has_memory)
			return c->nodes[i].os_index;
	return 0;
}

/*
 * Try a memory policy mode on a private, untouched mapping of our own, so
 * the caller's task policy and memory are never affected.
 */
static int try_mbind_mode(const struct tiermm_caps *c, int mode)
{
	long page = sysconf(_SC_PAGESIZE);
	unsigned long mask[TIERMM__MAX_NODES / (8 * sizeof(unsigned long))] = { 0 };
	int node = first_mem_node(c), err = 0;
	void *p;

	p = mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return -errno;
	mask[node / (8 * sizeof(unsigned long))] |=
		1UL << (node % (8 * sizeof(unsigned long)));
	if (syscall(SYS_mbind, p, (unsigned long)page, mode, mask,
		    (unsigned long)TIERMM__MAX_NODES + 1, 0UL))
		err = -errno;
	munmap(p, (size_t)page);
	return err;
}

static void probe_mpol(struct tiermm_caps *c, enum tiermm_cap cap, int mode,
		       const char *name, const char *since)
{
	int ret;

	if (!tiermm__fs_is_live(&c->fs)) {
		setcap(c, cap, TIERMM_CAP_UNKNOWN,
		       "not probed: a system call cannot be replayed from a captured root");
		return;
	}
	ret = try_mbind_mode(c, mode);
	if (!ret)
		setcap(c, cap, TIERMM_CAP_PRESENT, "mbind(%s) accepted", name);
	else if (ret == -EINVAL)
		setcap(c, cap, TIERMM_CAP_ABSENT,
		       "mbind(%s) rejected with EINVAL (kernel older than %s)",
		       name, since);
	else
		setcap(c, cap, TIERMM_CAP_ABSENT, "mbind(%s) failed: %s", name,
		       strerror(-ret));
}

static bool config_has(const struct tiermm__fs *fs, const char *opt,
		       bool *known)
{
	char rel[128], path[256], line[256], full[PATH_MAX];
	FILE *f;
	bool yes = false;
	size_t n = strlen(opt);
	int saved = errno;

	*known = false;
	if (tiermm__fs_read(fs, "/proc/sys/kernel/osrelease", rel, sizeof(rel)) <= 0)
		return false;
	snprintf(path, sizeof(path), "/boot/config-%s", rel);
	if (tiermm__fs_path(fs, path, full, sizeof(full)))
		return false;
	f = fopen(full, "re");
	if (!f) {
		errno = saved;
		return false;
	}
	*known = true;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, opt, n) && line[n] == '=' &&
		    (line[n + 1] == 'y' || line[n + 1] == 'm'))
			yes = true;
	fclose(f);
	errno = saved;
	return yes;
}

static void probe_damon(struct tiermm_caps *c)
{
	char path[512], ops[128];
	struct dirent *k, *x;
	bool known, found_ops = false, vaddr = false;
	DIR *kd, *xd;

	if (!tiermm__fs_exists(&c->fs, DAMON_SYSFS "/kdamonds")) {
		setcap(c, TIERMM_CAP_DAMON_VADDR, TIERMM_CAP_ABSENT,
		       "%s/kdamonds is missing (kernel without CONFIG_DAMON_SYSFS)",
		       DAMON_SYSFS);
		return;
	}
	/* An existing context lists the operation sets the kernel has. */
	kd = tiermm__fs_opendir(&c->fs, DAMON_SYSFS "/kdamonds");
	while (kd && !found_ops && (k = readdir(kd))) {
		if (k->d_name[0] < '0' || k->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), DAMON_SYSFS "/kdamonds/%s/contexts",
			 k->d_name);
		xd = tiermm__fs_opendir(&c->fs, path);
		while (xd && !found_ops && (x = readdir(xd))) {
			char p2[1024];

			if (x->d_name[0] < '0' || x->d_name[0] > '9')
				continue;
			snprintf(p2, sizeof(p2), "%s/%s/avail_operations", path,
				 x->d_name);
			if (tiermm__fs_read(&c->fs, p2, ops, sizeof(ops)) >= 0) {
				found_ops = true;
				vaddr = strstr(ops, "vaddr") != NULL;
			}
		}
		if (xd)
			closedir(xd);
	}
	if (kd)
		closedir(kd);
	if (found_ops) {
		setcap(c, TIERMM_CAP_DAMON_VADDR,
		       vaddr ? TIERMM_CAP_PRESENT : TIERMM_CAP_ABSENT,
		       "DAMON sysfs present; avail_operations: %s", ops);
		return;
	}
	vaddr = config_has(&c->fs, "CONFIG_DAMON_VADDR", &known);
	if (known)
		setcap(c, TIERMM_CAP_DAMON_VADDR,
		       vaddr ? TIERMM_CAP_PRESENT : TIERMM_CAP_ABSENT,
		       "DAMON sysfs present; kernel config %s CONFIG_DAMON_VADDR",
		       vaddr ? "has" : "lacks");
	else
		setcap(c, TIERMM_CAP_DAMON_VADDR, TIERMM_CAP_UNKNOWN,
		       "DAMON sysfs present, but no DAMON context exists and /boot/config-<release> is missing, so vaddr support cannot be read without creating a kdamond");
}

static void probe_perf(struct tiermm_caps *c)
{
	static const char *const pmus[] = { "cpu", "cpu_core" };
	struct perf_event_attr attr;
	char path[160], spec[256], paranoid[16] = "?";
	const char *pmu = NULL, *kind = NULL;
	int fd, err;

	tiermm__fs_read(&c->fs, "/proc/sys/kernel/perf_event_paranoid",
			paranoid, sizeof(paranoid));
	memset(&attr, 0, sizeof(attr));
	for (size_t i = 0; i < TIERMM__ARRAY_SIZE(pmus) && !pmu; i++) {
		snprintf(path, sizeof(path),
			 "/sys/bus/event_source/devices/%s/events/mem-loads",
			 pmus[i]);
		if (tiermm__fs_read(&c->fs, path, spec, sizeof(spec)) > 0) {
			pmu = pmus[i];
			kind = "Intel PEBS load latency (mem-loads)";
		}
	}
	if (!pmu && tiermm__fs_exists(&c->fs,
				      "/sys/bus/event_source/devices/ibs_op/type")) {
		pmu = "ibs_op";
		kind = "AMD IBS op";
		spec[0] = '\0';
	}
	if (!pmu) {
		setcap(c, TIERMM_CAP_PERF_MEM_SAMPLING, TIERMM_CAP_ABSENT,
		       "no mem-loads event on the cpu PMU and no ibs_op PMU (no PEBS/IBS, typical in VMs)");
		return;
	}
	if (!tiermm__fs_is_live(&c->fs)) {
		setcap(c, TIERMM_CAP_PERF_MEM_SAMPLING, TIERMM_CAP_UNKNOWN,
		       "%s described in sysfs; not opened: a system call cannot be replayed from a captured root",
		       kind);
		return;
	}
	attr.size = sizeof(attr);
	if (tiermm__pmu_event_attr(&c->fs, pmu, spec, &attr)) {
		setcap(c, TIERMM_CAP_PERF_MEM_SAMPLING, TIERMM_CAP_ABSENT,
		       "%s: cannot decode the event description '%s'", kind,
		       spec);
		return;
	}
	attr.sample_period = 4093;
	attr.sample_type = PERF_SAMPLE_TID | PERF_SAMPLE_ADDR |
			   PERF_SAMPLE_WEIGHT | PERF_SAMPLE_DATA_SRC;
	attr.precise_ip = strcmp(pmu, "ibs_op") ? 2 : 0;
	attr.disabled = 1;
	/* The IBS driver rejects every exclude_* flag. */
	if (strcmp(pmu, "ibs_op")) {
		attr.exclude_kernel = 1;
		attr.exclude_hv = 1;
	}
	fd = (int)syscall(SYS_perf_event_open, &attr, 0, -1, -1,
			  PERF_FLAG_FD_CLOEXEC);
	err = errno;
	if (fd >= 0) {
		close(fd);
		setcap(c, TIERMM_CAP_PERF_MEM_SAMPLING, TIERMM_CAP_PRESENT,
		       "%s opens with data addresses (perf_event_paranoid=%s)",
		       kind, paranoid);
	} else {
		setcap(c, TIERMM_CAP_PERF_MEM_SAMPLING, TIERMM_CAP_ABSENT,
		       "%s present but perf_event_open failed: %s (perf_event_paranoid=%s)",
		       kind, strerror(err), paranoid);
	}
}

static void probe_module(struct tiermm_caps *c)
{
	struct tiermm_get_api api;
	char ver[64] = "?";
	uint64_t sysapi = 0;
	int fd;

	if (!tiermm__fs_exists(&c->fs, "/sys/module/tiermm")) {
		setcap(c, TIERMM_CAP_MODULE, TIERMM_CAP_ABSENT,
		       "tiermm.ko is not loaded (/sys/module/tiermm is missing); load it with 'modprobe tiermm'");
		return;
	}
	tiermm__fs_read(&c->fs, "/sys/module/tiermm/version", ver, sizeof(ver));
	tiermm__fs_read_u64(&c->fs, "/sys/module/tiermm/parameters/api_version",
			    &sysapi);
	if (!tiermm__fs_is_live(&c->fs)) {
		c->module_api = (uint32_t)sysapi;
		setcap(c, TIERMM_CAP_MODULE, TIERMM_CAP_UNKNOWN,
		       "tiermm.ko %s loaded with API version %u per the captured sysfs; the device cannot be opened in a replay",
		       ver, (unsigned int)sysapi);
		return;
	}
	fd = tiermm__module_open(&api);
	if (fd < 0) {
		setcap(c, TIERMM_CAP_MODULE, TIERMM_CAP_ABSENT,
		       "tiermm.ko %s is loaded but unusable: %s", ver,
		       tiermm_errmsg());
		return;
	}
	close(fd);
	c->module_api = api.api_version;
	c->module_features = api.features;
	c->module_commands = api.commands;
	setcap(c, TIERMM_CAP_MODULE, TIERMM_CAP_PRESENT,
	       "tiermm.ko %s, API version %u (library speaks %u), features 0x%llx, commands 0x%llx",
	       ver, api.api_version, TIERMM_API_VERSION,
	       (unsigned long long)api.features,
	       (unsigned long long)api.commands);
}

int tiermm__ptrepl_probe(const struct tiermm__fs *fs, char *val, size_t len)
{
	char buf[32];

	if (tiermm__fs_read(fs, PTREPL_SYSCTL, buf, sizeof(buf)) >= 0) {
		if (val)
			snprintf(val, len, "%s = %s", PTREPL_SYSCTL, buf);
		return 0;
	}
	/* /proc/sys hidden (some containers): the per-process file tells. */
	if (tiermm__fs_exists(fs, "/proc/self/pgtable_replication")) {
		if (val)
			snprintf(val, len, "/proc/self/pgtable_replication exists");
		return 0;
	}
	if (val)
		snprintf(val, len, "%s is missing", PTREPL_SYSCTL);
	return -ENOTSUP;
}

static void probe_ptrepl(struct tiermm_caps *c)
{
	char val[128];

	if (!tiermm__ptrepl_probe(&c->fs, val, sizeof(val)))
		setcap(c, TIERMM_CAP_PT_REPLICATION, TIERMM_CAP_PRESENT,
		       "kernel has page-table replication (%s)", val);
	else
		setcap(c, TIERMM_CAP_PT_REPLICATION, TIERMM_CAP_ABSENT,
		       "the running kernel lacks tiermm's page-table replication patches (%s)",
		       val);
}

int tiermm_caps_load(const struct tiermm_caps_opts *opts,
		     struct tiermm_caps **out)
{
	const char *root;
	struct tiermm_caps *c;
	int saved = errno, ret;

	if (!out)
		return tiermm__fail(EINVAL, "tiermm_caps_load: caps is NULL");
	*out = NULL;
	ret = tiermm__opts_check(opts, offsetof(struct tiermm_caps_opts, fsroot) +
				 sizeof(const char *),
				 sizeof(struct tiermm_caps_opts), "tiermm_caps_opts");
	if (ret)
		return ret;
	if (opts && opts->sz >= offsetof(struct tiermm_caps_opts, flags) +
				sizeof(unsigned int) && opts->flags)
		return tiermm__fail(EINVAL,
				    "tiermm_caps_opts.flags must be 0 (got 0x%x)",
				    opts->flags);
	root = opts && opts->fsroot ? opts->fsroot : getenv("TIERMM_FSROOT");
	c = calloc(1, sizeof(*c));
	if (!c)
		return tiermm__fail(ENOMEM, "out of memory");
	ret = tiermm__fs_init(&c->fs, root);
	if (ret) {
		free(c);
		return ret;
	}
	if (!tiermm__fs_is_live(&c->fs) &&
	    !tiermm__fs_exists(&c->fs, "/sys")) {
		ret = tiermm__fail(ENOENT,
				   "fsroot '%s' holds no sys/ directory: not a captured machine",
				   c->fs.root);
		free(c);
		return ret;
	}
	probe_nodes(c);
	probe_move_pages(c);
	probe_tiers(c);
	probe_hmat(c);
	probe_mpol(c, TIERMM_CAP_MPOL_PREFERRED_MANY, MPOL_PREFERRED_MANY,
		   "MPOL_PREFERRED_MANY", "5.15");
	probe_mpol(c, TIERMM_CAP_WEIGHTED_INTERLEAVE, MPOL_WEIGHTED_INTERLEAVE,
		   "MPOL_WEIGHTED_INTERLEAVE", "6.9");
	if (c->cap[TIERMM_CAP_WEIGHTED_INTERLEAVE].state == TIERMM_CAP_PRESENT &&
	    !tiermm__fs_exists(&c->fs, "/sys/kernel/mm/mempolicy/weighted_interleave"))
		setcap(c, TIERMM_CAP_WEIGHTED_INTERLEAVE, TIERMM_CAP_PRESENT,
		       "mbind(MPOL_WEIGHTED_INTERLEAVE) accepted, but /sys/kernel/mm/mempolicy/weighted_interleave is missing: all weights are 1");
	probe_damon(c);
	probe_perf(c);
	probe_module(c);
	probe_ptrepl(c);
	*out = c;
	errno = saved;
	return 0;
}

void tiermm_caps_free(struct tiermm_caps *caps)
{
	if (!caps)
		return;
	free(caps->nodes);
	free(caps);
}

static pthread_once_t default_once = PTHREAD_ONCE_INIT;
static struct tiermm_caps *default_caps;
static int default_err;

static void default_init(void)
{
	int ret = tiermm_caps_load(NULL, &default_caps);

	default_err = ret < 0 ? -ret : 0;
}

const struct tiermm_caps *tiermm_caps_get(void)
{
	int saved = errno;

	pthread_once(&default_once, default_init);
	if (!default_caps) {
		errno = default_err ? default_err : ENOMEM;
		return NULL;
	}
	errno = saved;
	return default_caps;
}

static bool cap_valid(const struct tiermm_caps *caps, enum tiermm_cap cap)
{
	return caps && (int)cap >= 0 && cap < TIERMM_CAP__COUNT;
}

int tiermm_caps_state(const struct tiermm_caps *caps, enum tiermm_cap cap)
{
	if (!cap_valid(caps, cap))
		return tiermm__fail(EINVAL, "tiermm_caps_state: %s",
				    caps ? "unknown feature" : "caps is NULL");
	return caps->cap[cap].state;
}

const char *tiermm_caps_detail(const struct tiermm_caps *caps,
			       enum tiermm_cap cap)
{
	if (!cap_valid(caps, cap)) {
		tiermm__fail(EINVAL, "tiermm_caps_detail: %s",
			     caps ? "unknown feature" : "caps is NULL");
		return NULL;
	}
	return caps->cap[cap].detail;
}

const char *tiermm_cap_name(enum tiermm_cap cap)
{
	if ((int)cap < 0 || cap >= TIERMM_CAP__COUNT) {
		tiermm__fail(EINVAL, "unknown feature %d", (int)cap);
		return NULL;
	}
	return cap_text[cap].name;
}

const char *tiermm_cap_help(enum tiermm_cap cap)
{
	if ((int)cap < 0 || cap >= TIERMM_CAP__COUNT) {
		tiermm__fail(EINVAL, "unknown feature %d", (int)cap);
		return NULL;
	}
	return cap_text[cap].help;
}

int tiermm_caps_nr_nodes(const struct tiermm_caps *caps)
{
	if (!caps)
		return tiermm__fail(EINVAL, "tiermm_caps_nr_nodes: caps is NULL");
	return caps->nr_nodes;
}

int tiermm_caps_node(const struct tiermm_caps *caps, int idx,
		     struct tiermm_caps_node *node)
{
	struct tiermm_caps_node n;
	const struct node_info *ni;
	size_t sz;

	if (!caps || !node)
		return tiermm__fail(EINVAL, "tiermm_caps_node: NULL argument");
	sz = node->sz;
	if (sz < offsetof(struct tiermm_caps_node, os_index) + sizeof(int))
		return tiermm__fail(EINVAL,
				    "tiermm_caps_node: node->sz (%zu) must be set to sizeof(struct tiermm_caps_node)",
				    sz);
	if (idx < 0 || idx >= caps->nr_nodes)
		return tiermm__fail(ENOENT,
				    "tiermm_caps_node: index %d is not in 0..%d",
				    idx, caps->nr_nodes - 1);
	ni = &caps->nodes[idx];
	memset(&n, 0, sizeof(n));
	n.sz = sz < sizeof(n) ? sz : sizeof(n);
	n.os_index = ni->os_index;
	n.nr_cpus = ni->nr_cpus;
	n.has_memory = ni->has_memory;
	n.memory_tier = ni->memory_tier;
	n.tier_rank = ni->tier_rank;
	n.mem_total = ni->mem_total;
	n.read_latency_ns = ni->hmat[0];
	n.write_latency_ns = ni->hmat[1];
	n.read_bandwidth_mbps = ni->hmat[2];
	n.write_bandwidth_mbps = ni->hmat[3];
	memcpy(node, &n, n.sz);
	return 0;
}

int tiermm_caps_node_cpus(const struct tiermm_caps *caps, int idx, char *buf,
			  size_t len)
{
	size_t n;

	if (!caps || !buf)
		return tiermm__fail(EINVAL, "tiermm_caps_node_cpus: NULL argument");
	if (idx < 0 || idx >= caps->nr_nodes)
		return tiermm__fail(ENOENT,
				    "tiermm_caps_node_cpus: index %d is not in 0..%d",
				    idx, caps->nr_nodes - 1);
	n = strlen(caps->nodes[idx].cpus);
	if (n >= len)
		return tiermm__fail(ERANGE,
				    "tiermm_caps_node_cpus: buffer of %zu bytes is too small for %zu",
				    len, n + 1);
	memcpy(buf, caps->nodes[idx].cpus, n + 1);
	return (int)n;
}

int tiermm_caps_module(const struct tiermm_caps *caps, uint32_t *api_version,
		       uint64_t *features)
{
	if (!caps)
		return tiermm__fail(EINVAL, "tiermm_caps_module: caps is NULL");
	if (caps->cap[TIERMM_CAP_MODULE].state != TIERMM_CAP_PRESENT)
		return tiermm__fail(ENODEV, "%s",
				    caps->cap[TIERMM_CAP_MODULE].detail);
	if (api_version)
		*api_version = caps->module_api;
	if (features)
		*features = caps->module_features;
	return 0;
}

static const char *state_name(int s)
{
	return s == TIERMM_CAP_PRESENT ? "present" :
	       s == TIERMM_CAP_ABSENT ? "absent" : "unknown";
}

int tiermm_caps_write_json(const struct tiermm_caps *caps, FILE *f)
{
	if (!caps || !f)
		return tiermm__fail(EINVAL, "tiermm_caps_write_json: NULL argument");
	fprintf(f, "{\"tiermm_version\":\"%s\",\"fsroot\":", TIERMM_VERSION_STRING);
	tiermm__json_str(f, caps->fs.root[0] ? caps->fs.root : "/");
	fputs(",\"features\":{", f);
	for (int i = 0; i < TIERMM_CAP__COUNT; i++) {
		fprintf(f, "%s\"%s\":{\"state\":\"%s\",\"detail\":", i ? "," : "",
			cap_text[i].name, state_name(caps->cap[i].state));
		tiermm__json_str(f, caps->cap[i].detail);
		fputs(",\"if_missing\":", f);
		tiermm__json_str(f, cap_text[i].help);
		fputc('}', f);
	}
	fputs("},\"module\":", f);
	if (caps->cap[TIERMM_CAP_MODULE].state == TIERMM_CAP_PRESENT ||
	    caps->module_api)
		fprintf(f, "{\"api_version\":%u,\"features\":%llu,\"commands\":%llu}",
			caps->module_api,
			(unsigned long long)caps->module_features,
			(unsigned long long)caps->module_commands);
	else
		fputs("null", f);
	fputs(",\"nodes\":[", f);
	for (int i = 0; i < caps->nr_nodes; i++) {
		const struct node_info *ni = &caps->nodes[i];

		fprintf(f, "%s{\"node\":%d,\"cpus\":", i ? "," : "", ni->os_index);
		tiermm__json_str(f, ni->cpus);
		fprintf(f,
			",\"nr_cpus\":%d,\"has_memory\":%s,\"mem_total\":%llu,\"memory_tier\":%d,\"tier_rank\":%d,\"hmat\":",
			ni->nr_cpus, ni->has_memory ? "true" : "false",
			(unsigned long long)ni->mem_total, ni->memory_tier,
			ni->tier_rank);
		if (ni->hmat[0] || ni->hmat[1] || ni->hmat[2] || ni->hmat[3])
			fprintf(f,
				"{\"read_latency_ns\":%u,\"write_latency_ns\":%u,\"read_bandwidth_mbps\":%u,\"write_bandwidth_mbps\":%u}",
				ni->hmat[0], ni->hmat[1], ni->hmat[2], ni->hmat[3]);
		else
			fputs("null", f);
		fputc('}', f);
	}
	fputs("]}\n", f);
	if (ferror(f))
		return tiermm__fail(EIO, "tiermm_caps_write_json: write error");
	return 0;
}
