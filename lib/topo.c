// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Topology: hwloc for nodes, kinds, SLIT and firmware attributes; the
 * kernel (through the rooted sysfs reader) for node CPU lists and memory
 * tiers; tiermm's micro-probes for measured values. Cached as hwloc XML,
 * with measurements as custom memory attributes and tiermm's own facts as
 * info attributes, so hwloc tools can read them too.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hwloc.h>
#include <hwloc/export.h>

#include "internal.h"
#include "probes.h"

#define TIERMM_XML_FORMAT "1"
#define ATTR_LATENCY "TiermmLatency"		/* picoseconds per load */
#define ATTR_READ_BW "TiermmReadBandwidth"	/* MB/s */
#define ATTR_WRITE_BW "TiermmWriteBandwidth"	/* MB/s */
#define INFO_FORMAT "TiermmFormat"
#define INFO_VERSION "TiermmVersion"
#define INFO_HOST "TiermmHost"
#define INFO_MEASURED_AT "TiermmMeasuredAt"
#define INFO_KERNEL_TIERS "TiermmKernelTiers"
#define INFO_CPUGROUPS "TiermmCPUGroups"
#define INFO_CPUGROUPS_STATS "TiermmCPUGroupsStats"
#define INFO_NODE_CPUS "TiermmCPUs"

/* Two values are in one tier when within this factor of the tier's best. */
#define TIER_LATENCY_FACTOR 1.25
#define TIER_BANDWIDTH_FACTOR 1.6

struct tnode {
	int os;
	int kind;
	int tier;
	int kernel_rank;	/* -1: unknown */
	uint64_t capacity;
	hwloc_obj_t obj;
	hwloc_bitmap_t cpus;	/* the kernel's CPUs of the node */
	char cpulist[256];
};

struct tiermm_topo {
	hwloc_topology_t h;
	int n;
	struct tnode *nodes;
	double *metric[TIERMM_METRIC__COUNT];	/* n x n, NAN: unknown */
	int nr_tiers;
	int tier_source;
	char conflicts[768];
	/* CPU groups */
	int ngroups;
	char (*group_cpus)[256];
	struct tiermm_cpugroups_info groups;
	char origin[PATH_MAX + 160];
	bool from_xml;
};

static const char *const kind_names[] = { "unknown", "DRAM", "HBM", "NVM",
					  "CXL", "GPU" };
static const char *const source_names[] = { "user", "kernel", "hmat", "kind",
					    "measured", "none" };
static const char *const metric_names[] = {
	"slit", "fw_read_latency_ns", "fw_write_latency_ns",
	"fw_read_bandwidth_mbps", "fw_write_bandwidth_mbps",
	"latency_ns", "read_bandwidth_mbps", "write_bandwidth_mbps",
};

const char *tiermm_mem_kind_name(enum tiermm_mem_kind kind)
{
	if ((int)kind < 0 || (size_t)kind >= TIERMM__ARRAY_SIZE(kind_names)) {
		tiermm__fail(EINVAL, "unknown memory kind %d", (int)kind);
		return NULL;
	}
	return kind_names[kind];
}

const char *tiermm_tier_source_name(enum tiermm_tier_source s)
{
	if ((int)s < 0 || (size_t)s >= TIERMM__ARRAY_SIZE(source_names)) {
		tiermm__fail(EINVAL, "unknown tier source %d", (int)s);
		return NULL;
	}
	return source_names[s];
}

const char *tiermm_metric_name(enum tiermm_metric m)
{
	if ((int)m < 0 || m >= TIERMM_METRIC__COUNT) {
		tiermm__fail(EINVAL, "unknown metric %d", (int)m);
		return NULL;
	}
	return metric_names[m];
}

static double *cell(const struct tiermm_topo *t, int m, int i, int j)
{
	return &t->metric[m][i * t->n + j];
}

static int kind_of(hwloc_obj_t obj, int nr_cpus)
{
	const char *st = obj->subtype;
	const char *dax = hwloc_obj_get_info_by_name(obj, "DAXType");

	if (st) {
		if (!strcmp(st, "DRAM"))
			return TIERMM_KIND_DRAM;
		if (!strcmp(st, "HBM") || !strcmp(st, "MCDRAM"))
			return TIERMM_KIND_HBM;
		if (!strcmp(st, "NVM"))
			return TIERMM_KIND_NVM;
		if (!strncmp(st, "CXL", 3))
			return TIERMM_KIND_CXL;
		if (!strncmp(st, "GPU", 3))
			return TIERMM_KIND_GPU;
	}
	if (dax && !strcmp(dax, "NVM"))
		return TIERMM_KIND_NVM;
	/*
	 * A plain node holding CPUs is the socket's ordinary RAM, unless a
	 * memory-side cache sits in front of it (2LM: DRAM caching slower
	 * memory whose kind the firmware does not name).
	 */
	for (hwloc_obj_t p = obj->parent; p; p = p->parent)
		if (p->type == HWLOC_OBJ_MEMCACHE)
			return TIERMM_KIND_UNKNOWN;
	if (!st && !dax && nr_cpus > 0)
		return TIERMM_KIND_DRAM;
	return TIERMM_KIND_UNKNOWN;
}

/* ---------------------------------------------------------------- load */

/*
 * hwloc loads its plugins when the first topology of a process is created
 * and unloads them when the last one is destroyed, which costs over 1 ms
 * per tiermm_topo_load(). An empty topology held for the life of the
 * library keeps them loaded, so loading the XML cache stays cheap.
 */
static pthread_once_t anchor_once = PTHREAD_ONCE_INIT;
static hwloc_topology_t anchor;

static void anchor_init(void)
{
	if (hwloc_topology_init(&anchor))
		anchor = NULL;
}

__attribute__((destructor)) static void anchor_fini(void)
{
	if (anchor)
		hwloc_topology_destroy(anchor);
	anchor = NULL;
}

/*
 * hwloc reads a captured root only through the HWLOC_FSROOT environment
 * variable. Changing the environment of a multi-threaded caller is unsafe,
 * so a child process loads the capture and hands back XML.
 */
static int load_fsroot_xml(const char *root, char **xml, int *xmllen)
{
	int pipefd[2], status = 0, ret = 0;
	size_t cap = 1 << 16, len = 0;
	char *buf;
	pid_t pid;

	if (pipe2(pipefd, O_CLOEXEC))
		return tiermm__fail(errno, "pipe: %s", strerror(errno));
	pid = fork();
	if (pid < 0) {
		ret = errno;
		close(pipefd[0]);
		close(pipefd[1]);
		return tiermm__fail(ret, "fork: %s", strerror(ret));
	}
	if (pid == 0) {
		hwloc_topology_t h;
		char *out = NULL;
		int outlen = 0;
		ssize_t w;

		close(pipefd[0]);
		setenv("HWLOC_FSROOT", root, 1);
		setenv("HWLOC_COMPONENTS", "linux,stop", 1);
		setenv("HWLOC_HIDE_ERRORS", "2", 1);
		if (hwloc_topology_init(&h) ||
		    hwloc_topology_set_io_types_filter(h, HWLOC_TYPE_FILTER_KEEP_NONE) ||
		    hwloc_topology_set_type_filter(h, HWLOC_OBJ_MEMCACHE,
						   HWLOC_TYPE_FILTER_KEEP_ALL) ||
		    hwloc_topology_load(h) ||
		    hwloc_topology_export_xmlbuffer(h, &out, &outlen, 0))
			_exit(3);
		for (int off = 0; off < outlen; off += (int)w) {
			w = write(pipefd[1], out + off, (size_t)(outlen - off));
			if (w <= 0)
				_exit(4);
		}
		_exit(0);
	}
	close(pipefd[1]);
	buf = malloc(cap);
	while (buf) {
		ssize_t r;

		if (len + 1 >= cap) {
			char *nb = realloc(buf, cap * 2);

			if (!nb) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = nb;
			cap *= 2;
		}
		r = read(pipefd[0], buf + len, cap - len - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		len += (size_t)r;
	}
	close(pipefd[0]);
	/*
	 * With SIGCHLD ignored the child is reaped automatically and waitpid
	 * fails with ECHILD: then the XML itself (parsed next) is the check.
	 */
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			status = 0;
			break;
		}
	}
	if (!buf)
		return tiermm__fail(ENOMEM, "out of memory reading the topology of %s",
				    root);
	if (!WIFEXITED(status) || WEXITSTATUS(status) || !len) {
		free(buf);
		return tiermm__fail(EIO,
				    "hwloc could not load the captured machine at %s",
				    root);
	}
	buf[len] = '\0';
	*xml = buf;
	*xmllen = (int)len + 1;
	return 0;
}

static int cmp_node(const void *a, const void *b)
{
	return ((const struct tnode *)a)->os - ((const struct tnode *)b)->os;
}

/* Kernel view of node CPUs and tiers (live or captured sysfs). */
static int read_kernel_nodes(struct tiermm_topo *t, const char *fsroot)
{
	struct tiermm_caps *caps;
	int ret, nr;

	{
		/* "/" so TIERMM_FSROOT cannot redirect a live load. */
		TIERMM_OPTS(tiermm_caps_opts, o, .fsroot = fsroot ? fsroot : "/");

		ret = tiermm_caps_load(&o, &caps);
	}
	if (ret)
		return ret;
	nr = tiermm_caps_nr_nodes(caps);
	for (int i = 0; i < nr; i++) {
		struct tiermm_caps_node cn = { .sz = sizeof(cn) };
		char cpus[256];

		if (tiermm_caps_node(caps, i, &cn) ||
		    tiermm_caps_node_cpus(caps, i, cpus, sizeof(cpus)) < 0)
			continue;
		for (int k = 0; k < t->n; k++) {
			if (t->nodes[k].os != cn.os_index)
				continue;
			t->nodes[k].kernel_rank = cn.tier_rank;
			hwloc_bitmap_list_sscanf(t->nodes[k].cpus, cpus);
		}
	}
	tiermm_caps_free(caps);
	return 0;
}

/* The CPUs of each node: kernel lists, else tiermm's XML info, else hwloc. */
static void finish_node_cpus(struct tiermm_topo *t, bool have_kernel)
{
	for (int i = 0; i < t->n; i++) {
		struct tnode *nd = &t->nodes[i];
		const char *info = hwloc_obj_get_info_by_name(nd->obj, INFO_NODE_CPUS);

		if (!have_kernel) {
			if (info && !*info)
				hwloc_bitmap_zero(nd->cpus);
			else if (info)
				hwloc_bitmap_list_sscanf(nd->cpus, info);
			else if (nd->obj->cpuset)
				hwloc_bitmap_copy(nd->cpus, nd->obj->cpuset);
		}
		hwloc_bitmap_list_snprintf(nd->cpulist, sizeof(nd->cpulist),
					   nd->cpus);
		if (hwloc_bitmap_iszero(nd->cpus))
			nd->cpulist[0] = '\0';
		nd->kind = kind_of(nd->obj, hwloc_bitmap_weight(nd->cpus));
	}
}

static int collect_nodes(struct tiermm_topo *t)
{
	int n = hwloc_get_nbobjs_by_type(t->h, HWLOC_OBJ_NUMANODE);

	if (n <= 0)
		return tiermm__fail(ENODATA, "hwloc found no NUMA node");
	t->nodes = calloc((size_t)n, sizeof(*t->nodes));
	if (!t->nodes)
		return tiermm__fail(ENOMEM, "out of memory");
	t->n = n;
	for (int i = 0; i < n; i++) {
		hwloc_obj_t o = hwloc_get_obj_by_type(t->h, HWLOC_OBJ_NUMANODE,
						      (unsigned int)i);

		t->nodes[i].obj = o;
		t->nodes[i].os = (int)o->os_index;
		t->nodes[i].capacity = o->attr ? o->attr->numanode.local_memory : 0;
		t->nodes[i].kernel_rank = -1;
		t->nodes[i].tier = -1;
		t->nodes[i].cpus = hwloc_bitmap_alloc();
		if (!t->nodes[i].cpus)
			return tiermm__fail(ENOMEM, "out of memory");
	}
	qsort(t->nodes, (size_t)n, sizeof(*t->nodes), cmp_node);
	for (int m = 0; m < TIERMM_METRIC__COUNT; m++) {
		t->metric[m] = malloc(sizeof(double) * (size_t)n * (size_t)n);
		if (!t->metric[m])
			return tiermm__fail(ENOMEM, "out of memory");
		for (int k = 0; k < n * n; k++)
			t->metric[m][k] = NAN;
	}
	return 0;
}

static int node_idx_of_obj(const struct tiermm_topo *t, hwloc_obj_t o)
{
	for (int i = 0; i < t->n; i++)
		if (t->nodes[i].obj == o)
			return i;
	return -1;
}

static void read_slit(struct tiermm_topo *t)
{
	struct hwloc_distances_s *d = NULL;
	unsigned int nr = 1;

	if (hwloc_distances_get_by_name(t->h, "NUMALatency", &nr, &d, 0) || !nr)
		return;
	for (unsigned int a = 0; a < d->nbobjs; a++) {
		int i = node_idx_of_obj(t, d->objs[a]);

		for (unsigned int b = 0; b < d->nbobjs && i >= 0; b++) {
			int j = node_idx_of_obj(t, d->objs[b]);

			if (j >= 0)
				*cell(t, TIERMM_METRIC_SLIT, i, j) =
					(double)d->values[a * d->nbobjs + b];
		}
	}
	hwloc_distances_release(t->h, d);
}

/*
 * Value of a memory attribute for accesses from node i's CPUs to node j:
 * the most specific initiator whose CPU set contains node i's CPUs.
 */
static bool attr_value(const struct tiermm_topo *t, hwloc_memattr_id_t id,
		       int i, int j, uint64_t *val)
{
	struct hwloc_location locs[64];
	hwloc_uint64_t vals[64];
	unsigned int nr = 64;
	int best = -1, best_w = 0;

	if (hwloc_bitmap_iszero(t->nodes[i].cpus))
		return false;
	if (hwloc_memattr_get_initiators(t->h, id, t->nodes[j].obj, 0, &nr,
					 locs, vals))
		return false;
	if (nr > 64)
		nr = 64;
	for (unsigned int k = 0; k < nr; k++) {
		int w;

		if (locs[k].type != HWLOC_LOCATION_TYPE_CPUSET ||
		    !hwloc_bitmap_isincluded(t->nodes[i].cpus,
					     locs[k].location.cpuset))
			continue;
		w = hwloc_bitmap_weight(locs[k].location.cpuset);
		if (best < 0 || w < best_w) {
			best = (int)k;
			best_w = w;
		}
	}
	if (best < 0)
		return false;
	*val = vals[best];
	return true;
}

static void read_attrs(struct tiermm_topo *t)
{
	static const struct {
		int metric;
		hwloc_memattr_id_t id, fallback;
	} fw[] = {
		{ TIERMM_METRIC_FW_READ_LATENCY, HWLOC_MEMATTR_ID_READ_LATENCY,
		  HWLOC_MEMATTR_ID_LATENCY },
		{ TIERMM_METRIC_FW_WRITE_LATENCY, HWLOC_MEMATTR_ID_WRITE_LATENCY,
		  HWLOC_MEMATTR_ID_LATENCY },
		{ TIERMM_METRIC_FW_READ_BANDWIDTH, HWLOC_MEMATTR_ID_READ_BANDWIDTH,
		  HWLOC_MEMATTR_ID_BANDWIDTH },
		{ TIERMM_METRIC_FW_WRITE_BANDWIDTH, HWLOC_MEMATTR_ID_WRITE_BANDWIDTH,
		  HWLOC_MEMATTR_ID_BANDWIDTH },
	};
	static const struct {
		int metric;
		const char *name;
		double scale;
	} measured[] = {
		{ TIERMM_METRIC_LATENCY, ATTR_LATENCY, 1e-3 },
		{ TIERMM_METRIC_READ_BANDWIDTH, ATTR_READ_BW, 1.0 },
		{ TIERMM_METRIC_WRITE_BANDWIDTH, ATTR_WRITE_BW, 1.0 },
	};

	for (int i = 0; i < t->n; i++) {
		for (int j = 0; j < t->n; j++) {
			uint64_t v;

			for (size_t k = 0; k < TIERMM__ARRAY_SIZE(fw); k++) {
				if (attr_value(t, fw[k].id, i, j, &v) ||
				    attr_value(t, fw[k].fallback, i, j, &v))
					*cell(t, fw[k].metric, i, j) = (double)v;
			}
			for (size_t k = 0; k < TIERMM__ARRAY_SIZE(measured); k++) {
				hwloc_memattr_id_t id;

				if (!hwloc_memattr_get_by_name(t->h, measured[k].name, &id) &&
				    attr_value(t, id, i, j, &v))
					*cell(t, measured[k].metric, i, j) =
						(double)v * measured[k].scale;
			}
		}
	}
}

/* ---------------------------------------------------------------- tiers */

/* A ranking: rank[i] for node i (-1: node has no memory / not ranked). */
struct ranking {
	bool valid;
	int rank[];
};

static struct ranking *ranking_new(int n)
{
	struct ranking *r = calloc(1, sizeof(*r) + sizeof(int) * (size_t)n);

	if (r)
		for (int i = 0; i < n; i++)
			r->rank[i] = -1;
	return r;
}

static bool ranking_equal(const struct tiermm_topo *t, const struct ranking *a,
			  const struct ranking *b)
{
	for (int i = 0; i < t->n; i++)
		if (a->rank[i] != b->rank[i])
			return false;
	return true;
}

/* Renumber ranks densely from 0 keeping their order. */
static int ranking_compact(const struct tiermm_topo *t, struct ranking *r)
{
	int next = 0, max = -1;

	for (int i = 0; i < t->n; i++)
		if (r->rank[i] > max)
			max = r->rank[i];
	for (int v = 0; v <= max; v++) {
		bool used = false;

		for (int i = 0; i < t->n; i++)
			if (r->rank[i] == v) {
				r->rank[i] = next;
				used = true;
			}
		if (used)
			next++;
	}
	return next;
}

static void ranking_format(const struct tiermm_topo *t, const struct ranking *r,
			   char *buf, size_t len)
{
	size_t pos = 0;
	int max = -1;

	buf[0] = '\0';
	for (int i = 0; i < t->n; i++)
		if (r->rank[i] > max)
			max = r->rank[i];
	for (int v = 0; v <= max; v++) {
		hwloc_bitmap_t b = hwloc_bitmap_alloc();
		char list[256];
		int w;

		for (int i = 0; i < t->n; i++)
			if (r->rank[i] == v)
				hwloc_bitmap_set(b, (unsigned int)t->nodes[i].os);
		hwloc_bitmap_list_snprintf(list, sizeof(list), b);
		hwloc_bitmap_free(b);
		w = snprintf(buf + pos, len - pos, "%s%s", v ? ";" : "", list);
		if (w < 0 || (size_t)w >= len - pos)
			return;
		pos += (size_t)w;
	}
}

/*
 * Parse "0-1;2" (tiers fastest first, each a node list). Every node with
 * memory must be in exactly one tier.
 */
static int ranking_parse(const struct tiermm_topo *t, const char *s,
			 const char *what, struct ranking *r)
{
	char *copy = strdup(s), *rest = copy, *tok;
	int tier = 0, ret = 0;

	if (!copy)
		return tiermm__fail(ENOMEM, "out of memory");
	while (!ret && (tok = strsep(&rest, ";"))) {
		uint64_t bits[TIERMM__MAX_NODES / 64];

		if (tiermm__list_parse(tok, bits, TIERMM__MAX_NODES) <= 0) {
			ret = tiermm__fail(EINVAL,
					   "%s='%s': tier %d ('%s') is not a node list like 0-1,3",
					   what, s, tier, tok);
			break;
		}
		for (unsigned int nd = 0; nd < TIERMM__MAX_NODES && !ret; nd++) {
			int idx = -1;

			if (!tiermm__bit_test(bits, nd))
				continue;
			for (int i = 0; i < t->n; i++)
				if (t->nodes[i].os == (int)nd)
					idx = i;
			if (idx < 0)
				ret = tiermm__fail(EINVAL,
						   "%s='%s': node %u does not exist or has no memory",
						   what, s, nd);
			else if (r->rank[idx] >= 0)
				ret = tiermm__fail(EINVAL,
						   "%s='%s': node %u is in two tiers",
						   what, s, nd);
			else
				r->rank[idx] = tier;
		}
		tier++;
	}
	free(copy);
	if (ret)
		return ret;
	if (!tier)
		return tiermm__fail(EINVAL, "%s is empty", what);
	for (int i = 0; i < t->n; i++)
		if (r->rank[i] < 0)
			return tiermm__fail(EINVAL,
					    "%s='%s': node %d is in no tier",
					    what, s, t->nodes[i].os);
	r->valid = true;
	return 0;
}

/*
 * Cluster nodes by a per-node key (lower is faster): sorted ascending, a
 * node opens a new tier when its key exceeds factor x the current tier's
 * first key.
 */
static void ranking_cluster(const struct tiermm_topo *t, const double *key,
			    double factor, struct ranking *r)
{
	int order[t->n], cnt = 0, tier = -1;
	double first = 0;

	for (int i = 0; i < t->n; i++)
		if (!isnan(key[i]))
			order[cnt++] = i;
	if (cnt < t->n)
		return;		/* a source must rank every node */
	for (int a = 1; a < cnt; a++)
		for (int b = a; b > 0 && key[order[b]] < key[order[b - 1]]; b--) {
			int x = order[b];

			order[b] = order[b - 1];
			order[b - 1] = x;
		}
	for (int k = 0; k < cnt; k++) {
		double v = key[order[k]];

		if (tier < 0 || v > first * factor) {
			tier++;
			first = v;
		}
		r->rank[order[k]] = tier;
	}
	r->valid = true;
}

/* Best (local) value of a metric for target j over all initiators. */
static double best_over_initiators(const struct tiermm_topo *t, int m, int j,
				   bool lower_better)
{
	double best = NAN;

	for (int i = 0; i < t->n; i++) {
		double v = *cell(t, m, i, j);

		if (isnan(v) || v <= 0)
			continue;
		if (isnan(best) || (lower_better ? v < best : v > best))
			best = v;
	}
	return best;
}

static void rank_by_perf(const struct tiermm_topo *t, int lat_metric,
			 int bw_metric, struct ranking *r)
{
	double key[t->n];
	bool lat = true, bw = true;

	for (int j = 0; j < t->n; j++) {
		if (isnan(best_over_initiators(t, lat_metric, j, true)))
			lat = false;
		if (isnan(best_over_initiators(t, bw_metric, j, false)))
			bw = false;
	}
	if (lat) {
		for (int j = 0; j < t->n; j++)
			key[j] = best_over_initiators(t, lat_metric, j, true);
		ranking_cluster(t, key, TIER_LATENCY_FACTOR, r);
	} else if (bw) {
		/* Higher bandwidth is faster: rank by its inverse. */
		for (int j = 0; j < t->n; j++)
			key[j] = 1.0 / best_over_initiators(t, bw_metric, j, false);
		ranking_cluster(t, key, TIER_BANDWIDTH_FACTOR, r);
	}
}

static void rank_by_kind(const struct tiermm_topo *t, struct ranking *r)
{
	/* HBM, then DRAM (and unknown), then CXL, NVM, GPU. */
	static const int order[] = {
		[TIERMM_KIND_HBM] = 0, [TIERMM_KIND_DRAM] = 1,
		[TIERMM_KIND_UNKNOWN] = 1, [TIERMM_KIND_CXL] = 2,
		[TIERMM_KIND_NVM] = 3, [TIERMM_KIND_GPU] = 4,
	};
	bool any = false;

	for (int i = 0; i < t->n; i++) {
		if (t->nodes[i].obj->subtype ||
		    hwloc_obj_get_info_by_name(t->nodes[i].obj, "DAXType"))
			any = true;
		r->rank[i] = order[t->nodes[i].kind];
	}
	r->valid = any;
}

static int rank_tiers(struct tiermm_topo *t, const char *user)
{
	struct ranking *r[6] = { 0 };
	const char *kt = hwloc_obj_get_info_by_name(hwloc_get_root_obj(t->h),
						    INFO_KERNEL_TIERS);
	int chosen = TIERMM_TIERS_NONE, ret = 0;
	size_t pos = 0;

	for (int s = 0; s < 6; s++) {
		r[s] = ranking_new(t->n);
		if (!r[s]) {
			ret = tiermm__fail(ENOMEM, "out of memory");
			goto out;
		}
	}
	if (user) {
		ret = ranking_parse(t, user, "TIERMM_TIERS", r[TIERMM_TIERS_USER]);
		if (ret)
			goto out;
	}
	if (t->from_xml && kt) {
		struct ranking *k = r[TIERMM_TIERS_KERNEL];

		if (ranking_parse(t, kt, "cached " INFO_KERNEL_TIERS, k))
			tiermm__log(TIERMM_LOG_WARN,
				    "ignoring the cache's kernel tiers '%s'", kt);
	} else if (!t->from_xml) {
		struct ranking *k = r[TIERMM_TIERS_KERNEL];

		k->valid = true;
		for (int i = 0; i < t->n; i++) {
			k->rank[i] = t->nodes[i].kernel_rank;
			if (k->rank[i] < 0)
				k->valid = false;
		}
	}
	rank_by_perf(t, TIERMM_METRIC_FW_READ_LATENCY,
		     TIERMM_METRIC_FW_READ_BANDWIDTH, r[TIERMM_TIERS_HMAT]);
	rank_by_kind(t, r[TIERMM_TIERS_KIND]);
	rank_by_perf(t, TIERMM_METRIC_LATENCY, TIERMM_METRIC_READ_BANDWIDTH,
		     r[TIERMM_TIERS_MEASURED]);
	for (int s = 0; s < TIERMM_TIERS_NONE; s++) {
		if (r[s]->valid) {
			ranking_compact(t, r[s]);
			if (chosen == TIERMM_TIERS_NONE)
				chosen = s;
		}
	}
	if (chosen == TIERMM_TIERS_NONE) {
		for (int i = 0; i < t->n; i++)
			r[TIERMM_TIERS_NONE]->rank[i] = 0;
		r[TIERMM_TIERS_NONE]->valid = true;
	}
	t->tier_source = chosen;
	t->nr_tiers = ranking_compact(t, r[chosen]);
	for (int i = 0; i < t->n; i++)
		t->nodes[i].tier = r[chosen]->rank[i];
	t->conflicts[0] = '\0';
	for (int s = 0; s < TIERMM_TIERS_NONE; s++) {
		char a[256], b[256];
		int w;

		if (s == chosen || !r[s]->valid || ranking_equal(t, r[s], r[chosen]))
			continue;
		ranking_format(t, r[s], a, sizeof(a));
		ranking_format(t, r[chosen], b, sizeof(b));
		w = snprintf(t->conflicts + pos, sizeof(t->conflicts) - pos,
			     "%s%s ranks %s, %s ranks %s", pos ? "; " : "",
			     source_names[s], a, source_names[chosen], b);
		if (w > 0 && (size_t)w < sizeof(t->conflicts) - pos)
			pos += (size_t)w;
	}
	if (t->conflicts[0])
		tiermm__log(TIERMM_LOG_INFO, "tier sources disagree: %s",
			    t->conflicts);
out:
	for (int s = 0; s < 6; s++)
		free(r[s]);
	return ret;
}

/* ---------------------------------------------------------------- probes */

struct progress {
	const struct tiermm_topo_opts *o;
	int done, total;
};

/* Report the step about to run: done counts it (1..total). */
static void progress_step(struct progress *p, const char *what)
{
	p->done++;
	if (p->o && p->o->progress)
		p->o->progress(what, p->done, p->total, p->o->progress_ctx);
}

static int cpus_of(const struct tnode *nd, int **out)
{
	int n = hwloc_bitmap_weight(nd->cpus), k = 0;
	int cpu;
	int *arr = calloc((size_t)(n > 0 ? n : 1), sizeof(int));

	if (!arr)
		return -ENOMEM;
	hwloc_bitmap_foreach_begin(cpu, nd->cpus)
		arr[k++] = cpu;
	hwloc_bitmap_foreach_end();
	*out = arr;
	return k;
}

static int set_measured(struct tiermm_topo *t, const char *name, int i, int j,
			uint64_t value)
{
	struct hwloc_location loc = { .type = HWLOC_LOCATION_TYPE_CPUSET };
	hwloc_memattr_id_t id;

	if (hwloc_memattr_get_by_name(t->h, name, &id) &&
	    hwloc_memattr_register(t->h, name,
				   (strcmp(name, ATTR_LATENCY) ?
					    HWLOC_MEMATTR_FLAG_HIGHER_FIRST :
					    HWLOC_MEMATTR_FLAG_LOWER_FIRST) |
				   HWLOC_MEMATTR_FLAG_NEED_INITIATOR, &id))
		return tiermm__fail(errno ? errno : EINVAL,
				    "cannot register hwloc memory attribute %s", name);
	loc.location.cpuset = t->nodes[i].cpus;
	if (hwloc_memattr_set_value(t->h, id, t->nodes[j].obj, &loc, 0, value))
		return tiermm__fail(errno ? errno : EINVAL,
				    "cannot store %s for node %d -> node %d", name,
				    t->nodes[i].os, t->nodes[j].os);
	return 0;
}

static int run_mem_probes(struct tiermm_topo *t, const struct tiermm_topo_opts *o,
			  struct progress *pg, double budget)
{
	int pairs = 0, kinds = 0, ret = 0;
	struct tiermm__memprobe_params p = { 0 };

	if (o->probes & TIERMM_PROBE_LATENCY)
		kinds++;
	if (o->probes & TIERMM_PROBE_BANDWIDTH)
		kinds++;
	for (int i = 0; i < t->n; i++)
		for (int j = 0; j < t->n; j++)
			if (t->nodes[i].cpulist[0] && t->nodes[j].capacity)
				pairs++;
	if (!pairs || !kinds)
		return 0;
	p.budget_s = budget / (pairs * kinds);
	for (int i = 0; i < t->n && !ret; i++) {
		int *cpus, ncpus;

		if (!t->nodes[i].cpulist[0])
			continue;
		ncpus = cpus_of(&t->nodes[i], &cpus);
		if (ncpus < 0)
			return tiermm__fail(ENOMEM, "out of memory");
		for (int j = 0; j < t->n && !ret; j++) {
			char what[96];
			double ns, rd, wr;

			if (!t->nodes[j].capacity)
				continue;
			if (o->probes & TIERMM_PROBE_LATENCY) {
				snprintf(what, sizeof(what), "latency node %d -> node %d",
					 t->nodes[i].os, t->nodes[j].os);
				progress_step(pg, what);
				ret = tiermm__probe_latency(cpus, ncpus, t->nodes[j].os,
							    &p, &ns);
				if (!ret) {
					/* Stored as integer ps: exact through XML. */
					uint64_t ps = (uint64_t)llround(ns * 1000.0);

					*cell(t, TIERMM_METRIC_LATENCY, i, j) = ps / 1000.0;
					ret = set_measured(t, ATTR_LATENCY, i, j, ps);
				}
			}
			if (!ret && (o->probes & TIERMM_PROBE_BANDWIDTH)) {
				snprintf(what, sizeof(what), "bandwidth node %d -> node %d",
					 t->nodes[i].os, t->nodes[j].os);
				progress_step(pg, what);
				ret = tiermm__probe_bandwidth(cpus, ncpus, t->nodes[j].os,
							      &p, &rd, &wr);
				if (!ret) {
					uint64_t r = (uint64_t)llround(rd * 1000.0);
					uint64_t w = (uint64_t)llround(wr * 1000.0);

					*cell(t, TIERMM_METRIC_READ_BANDWIDTH, i, j) = (double)r;
					*cell(t, TIERMM_METRIC_WRITE_BANDWIDTH, i, j) = (double)w;
					ret = set_measured(t, ATTR_READ_BW, i, j, r);
					if (!ret)
						ret = set_measured(t, ATTR_WRITE_BW, i, j, w);
				}
			}
		}
		free(cpus);
	}
	return ret;
}

static void groups_progress(const char *what, int done, int total, void *ctx)
{
	struct progress *pg = ctx;

	if (pg->o && pg->o->progress)
		pg->o->progress(what, done, total, pg->o->progress_ctx);
}

static int store_groups(struct tiermm_topo *t, const char *list)
{
	char *copy = strdup(list), *tok, *save = NULL;
	int n = 1;

	if (!copy)
		return tiermm__fail(ENOMEM, "out of memory");
	for (const char *p = list; *p; p++)
		n += *p == ';';
	t->group_cpus = calloc((size_t)n, sizeof(*t->group_cpus));
	if (!t->group_cpus) {
		free(copy);
		return tiermm__fail(ENOMEM, "out of memory");
	}
	t->ngroups = 0;
	for (tok = strtok_r(copy, ";", &save); tok; tok = strtok_r(NULL, ";", &save))
		snprintf(t->group_cpus[t->ngroups++], sizeof(t->group_cpus[0]),
			 "%s", tok);
	free(copy);
	t->groups.nr_groups = t->ngroups;
	/* Groups agree with nodes when each group is exactly one node's CPUs. */
	t->groups.agrees_with_nodes = 1;
	for (int g = 0; g < t->ngroups; g++) {
		bool found = false;

		for (int i = 0; i < t->n; i++)
			if (t->nodes[i].cpulist[0] &&
			    !strcmp(t->nodes[i].cpulist, t->group_cpus[g]))
				found = true;
		if (!found)
			t->groups.agrees_with_nodes = 0;
	}
	for (int i = 0; i < t->n; i++) {
		bool found = false;

		if (!t->nodes[i].cpulist[0])
			continue;
		for (int g = 0; g < t->ngroups; g++)
			if (!strcmp(t->nodes[i].cpulist, t->group_cpus[g]))
				found = true;
		if (!found)
			t->groups.agrees_with_nodes = 0;
	}
	return 0;
}

static int run_cpugroups(struct tiermm_topo *t, struct progress *pg,
			 double budget)
{
	struct tiermm__cpugroups_params p = {
		.budget_s = budget,
		.progress = groups_progress,
		.progress_ctx = pg,
	};
	struct tiermm__cpugroups g;
	cpu_set_t set;
	int cpus[CPU_SETSIZE], n = 0, ret;
	char list[4096], stats[256];
	size_t pos = 0;
	hwloc_obj_t root = hwloc_get_root_obj(t->h);

	if (sched_getaffinity(0, sizeof(set), &set))
		return tiermm__fail(errno, "sched_getaffinity: %s", strerror(errno));
	for (int c = 0; c < CPU_SETSIZE; c++)
		if (CPU_ISSET(c, &set))
			cpus[n++] = c;
	ret = tiermm__cpugroups_find(cpus, n, tiermm__pingpong_measure, NULL, &p, &g);
	if (ret)
		return ret;
	list[0] = '\0';
	for (int k = 0; k < g.ngroups; k++) {
		hwloc_bitmap_t b = hwloc_bitmap_alloc();
		char one[256];
		int w;

		for (int c = 0; c < g.ncpus; c++)
			if (g.group[c] == k)
				hwloc_bitmap_set(b, (unsigned int)g.cpu[c]);
		hwloc_bitmap_list_snprintf(one, sizeof(one), b);
		hwloc_bitmap_free(b);
		w = snprintf(list + pos, sizeof(list) - pos, "%s%s", k ? ";" : "", one);
		if (w > 0 && (size_t)w < sizeof(list) - pos)
			pos += (size_t)w;
	}
	t->groups.validated = g.validated && !g.budget_hit;
	t->groups.partial = g.budget_hit;
	t->groups.confidence = g.confidence;
	t->groups.max_in_group_ns = g.max_in_ns;
	t->groups.min_cross_group_ns = g.min_cross_ns;
	t->groups.pairs_measured = g.pairs_measured;
	snprintf(stats, sizeof(stats),
		 "validated=%d confidence=%.3f max_in_ns=%.1f min_cross_ns=%.1f pairs=%llu partial=%d",
		 t->groups.validated, g.confidence, g.max_in_ns, g.min_cross_ns,
		 (unsigned long long)g.pairs_measured, g.budget_hit);
	tiermm__log(TIERMM_LOG_INFO, "CPU groups %s (%s): %s", list, stats, g.why);
	tiermm__cpugroups_free(&g);
	ret = store_groups(t, list);
	if (!ret && (hwloc_obj_add_info(root, INFO_CPUGROUPS, list) ||
		     hwloc_obj_add_info(root, INFO_CPUGROUPS_STATS, stats)))
		ret = tiermm__fail(ENOMEM, "cannot store CPU groups in the topology");
	return ret;
}

static void load_groups_from_xml(struct tiermm_topo *t)
{
	hwloc_obj_t root = hwloc_get_root_obj(t->h);
	const char *list = hwloc_obj_get_info_by_name(root, INFO_CPUGROUPS);
	const char *st = hwloc_obj_get_info_by_name(root, INFO_CPUGROUPS_STATS);
	unsigned long long pairs = 0;
	int validated = 0, partial = 0;

	if (!list || store_groups(t, list))
		return;
	/* partial= was added later; older caches end after pairs=. */
	if (st && sscanf(st, "validated=%d confidence=%lf max_in_ns=%lf min_cross_ns=%lf pairs=%llu partial=%d",
			 &validated, &t->groups.confidence,
			 &t->groups.max_in_group_ns,
			 &t->groups.min_cross_group_ns, &pairs, &partial) >= 5) {
		t->groups.validated = validated;
		t->groups.pairs_measured = pairs;
		t->groups.partial = partial;
	}
}

/* Provenance and kernel facts, stored once so an export carries them. */
static int add_info_once(hwloc_obj_t o, const char *name, const char *value)
{
	if (hwloc_obj_get_info_by_name(o, name))
		return 0;
	return hwloc_obj_add_info(o, name, value) ?
		tiermm__fail(ENOMEM, "cannot add info %s", name) : 0;
}

static int record_provenance(struct tiermm_topo *t, bool measured, bool live)
{
	hwloc_obj_t root = hwloc_get_root_obj(t->h);
	struct ranking *k = ranking_new(t->n);
	struct utsname u;
	char buf[256];
	int ret;

	if (!k)
		return tiermm__fail(ENOMEM, "out of memory");
	ret = add_info_once(root, INFO_FORMAT, TIERMM_XML_FORMAT);
	if (!ret)
		ret = add_info_once(root, INFO_VERSION, TIERMM_VERSION_STRING);
	if (!ret && live && !uname(&u))
		ret = add_info_once(root, INFO_HOST, u.nodename);
	else if (!ret && !live) {
		/* A capture: its own host name as hwloc read it, if any. */
		const char *hn = hwloc_obj_get_info_by_name(root, "HostName");

		ret = add_info_once(root, INFO_HOST, hn ? hn : "(captured machine)");
	}
	if (!ret && measured) {
		time_t now = time(NULL);
		struct tm tm;

		strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
		ret = add_info_once(root, INFO_MEASURED_AT, buf);
	}
	k->valid = true;
	for (int i = 0; i < t->n; i++) {
		k->rank[i] = t->nodes[i].kernel_rank;
		if (k->rank[i] < 0)
			k->valid = false;
	}
	if (!ret && k->valid) {
		ranking_format(t, k, buf, sizeof(buf));
		ret = add_info_once(root, INFO_KERNEL_TIERS, buf);
	}
	/* Also for memory-only nodes: an empty list, not hwloc's locality. */
	for (int i = 0; i < t->n && !ret; i++)
		ret = add_info_once(t->nodes[i].obj, INFO_NODE_CPUS,
				    t->nodes[i].cpulist);
	free(k);
	return ret;
}

static int check_xml(struct tiermm_topo *t, const struct tiermm_topo_opts *o,
		     const char *path)
{
	hwloc_obj_t root = hwloc_get_root_obj(t->h);
	const char *fmt = hwloc_obj_get_info_by_name(root, INFO_FORMAT);
	const char *host = hwloc_obj_get_info_by_name(root, INFO_HOST);
	const char *at = hwloc_obj_get_info_by_name(root, INFO_MEASURED_AT);
	struct utsname u;

	if (fmt && strcmp(fmt, TIERMM_XML_FORMAT))
		return tiermm__fail(EPROTO,
				    "%s: written in tiermm cache format %s; this library reads format %s",
				    path, fmt, TIERMM_XML_FORMAT);
	if (fmt)
		snprintf(t->origin, sizeof(t->origin), "xml %s (tiermm cache from %s%s%s)",
			 path, host ? host : "unknown host", at ? ", measured " : "",
			 at ? at : "");
	else
		snprintf(t->origin, sizeof(t->origin),
			 "xml %s (plain hwloc XML: no tiermm measurements or kernel tiers)",
			 path);
	if (!(o->flags & TIERMM_TOPO_CHECK_MACHINE))
		return 0;
	if (!fmt)
		return tiermm__fail(ESTALE,
				    "%s is not a tiermm cache, so it cannot be checked against this machine",
				    path);
	if (uname(&u) || !host || strcmp(host, u.nodename))
		return tiermm__fail(ESTALE,
				    "%s was written on host '%s', this is '%s'",
				    path, host ? host : "?", u.nodename);
	if (hwloc_bitmap_weight(root->complete_cpuset) != (int)sysconf(_SC_NPROCESSORS_CONF))
		return tiermm__fail(ESTALE,
				    "%s describes %d CPUs, this machine has %ld",
				    path, hwloc_bitmap_weight(root->complete_cpuset),
				    sysconf(_SC_NPROCESSORS_CONF));
	{
		/*
		 * hwloc's nodes are the nodes with memory that this process's
		 * cpuset allows (hwloc leaves out the others): a cache written
		 * inside a cpuset is right inside it, and stale outside.
		 */
		struct tiermm__fs fs;
		uint64_t bits[TIERMM__MAX_NODES / 64], allowed[TIERMM__MAX_NODES / 64];
		char buf[4096];
		int live = -1;

		tiermm__fs_init(&fs, NULL);
		if (tiermm__fs_read(&fs, "/sys/devices/system/node/has_memory", buf,
				    sizeof(buf)) >= 0 ||
		    tiermm__fs_read(&fs, "/sys/devices/system/node/online", buf,
				    sizeof(buf)) >= 0)
			live = tiermm__list_parse(buf, bits, TIERMM__MAX_NODES);
		if (live > 0 && !tiermm__mems_allowed(0, allowed)) {
			live = 0;
			for (int w = 0; w < TIERMM__MAX_NODES / 64; w++)
				live += __builtin_popcountll(bits[w] & allowed[w]);
		}
		if (live > 0 && live != t->n)
			return tiermm__fail(ESTALE,
					    "%s describes %d NUMA nodes with memory, this process may use %d (its cpuset's nodes with memory)",
					    path, t->n, live);
	}
	return 0;
}

void tiermm_topo_free(struct tiermm_topo *t)
{
	if (!t)
		return;
	for (int i = 0; i < t->n; i++)
		hwloc_bitmap_free(t->nodes[i].cpus);
	free(t->nodes);
	for (int m = 0; m < TIERMM_METRIC__COUNT; m++)
		free(t->metric[m]);
	free(t->group_cpus);
	if (t->h)
		hwloc_topology_destroy(t->h);
	free(t);
}

int tiermm_topo_load(const struct tiermm_topo_opts *opts,
		     struct tiermm_topo **out)
{
	struct tiermm_topo_opts o = { .sz = sizeof(o) };
	struct progress pg = { 0 };
	struct tiermm_topo *t;
	char *xml = NULL;
	const char *tiers;
	int saved = errno, ret, xmllen = 0;

	if (!out)
		return tiermm__fail(EINVAL, "tiermm_topo_load: topo is NULL");
	*out = NULL;
	ret = tiermm__opts_check(opts, offsetof(struct tiermm_topo_opts, fsroot) +
				 sizeof(char *), sizeof(o), "tiermm_topo_opts");
	if (ret)
		return ret;
	if (opts)
		memcpy(&o, opts, opts->sz < sizeof(o) ? opts->sz : sizeof(o));
	if (o.flags & ~(unsigned int)TIERMM_TOPO_CHECK_MACHINE)
		return tiermm__fail(EINVAL, "tiermm_topo_opts.flags has unknown bits 0x%x",
				    o.flags & ~(unsigned int)TIERMM_TOPO_CHECK_MACHINE);
	if (o.probes & ~(unsigned int)TIERMM_PROBE_ALL)
		return tiermm__fail(EINVAL, "tiermm_topo_opts.probes has unknown bits 0x%x",
				    o.probes & ~(unsigned int)TIERMM_PROBE_ALL);
	if (o.fsroot && o.xml_path)
		return tiermm__fail(EINVAL, "give either fsroot or xml_path, not both");
	if (o.probes && (o.fsroot || o.xml_path))
		return tiermm__fail(EINVAL,
				    "probes measure the running machine; they cannot run on %s",
				    o.fsroot ? "a captured root" : "a loaded cache");
	if (o.budget_s < 0 || isnan(o.budget_s))
		return tiermm__fail(EINVAL, "budget_s must be >= 0");
	if ((o.flags & TIERMM_TOPO_CHECK_MACHINE) && !o.xml_path)
		return tiermm__fail(EINVAL, "TIERMM_TOPO_CHECK_MACHINE needs xml_path");
	tiers = o.tiers ? o.tiers : getenv("TIERMM_TIERS");
	if (tiers && !*tiers)
		tiers = NULL;

	t = calloc(1, sizeof(*t));
	if (!t)
		return tiermm__fail(ENOMEM, "out of memory");
	pthread_once(&anchor_once, anchor_init);
	if (hwloc_topology_init(&t->h)) {
		free(t);
		return tiermm__fail(ENOMEM, "hwloc_topology_init failed");
	}
	/* tiermm places memory; I/O devices are not needed and slow to find. */
	hwloc_topology_set_io_types_filter(t->h, HWLOC_TYPE_FILTER_KEEP_NONE);
	/* Memory-side caches tell 2LM memory from plain DRAM. */
	hwloc_topology_set_type_filter(t->h, HWLOC_OBJ_MEMCACHE,
				       HWLOC_TYPE_FILTER_KEEP_ALL);
	if (o.xml_path) {
		if (access(o.xml_path, R_OK)) {
			ret = tiermm__fail(errno, "%s: %s", o.xml_path, strerror(errno));
			goto fail;
		}
		if (hwloc_topology_set_xml(t->h, o.xml_path)) {
			ret = tiermm__fail(EINVAL, "%s: hwloc refuses it as XML input",
					   o.xml_path);
			goto fail;
		}
		t->from_xml = true;
	} else if (o.fsroot) {
		ret = load_fsroot_xml(o.fsroot, &xml, &xmllen);
		if (ret)
			goto fail;
		if (hwloc_topology_set_xmlbuffer(t->h, xml, xmllen)) {
			ret = tiermm__fail(EINVAL, "hwloc cannot read back the topology of %s",
					   o.fsroot);
			goto fail;
		}
		snprintf(t->origin, sizeof(t->origin), "fsroot %s", o.fsroot);
	} else {
		snprintf(t->origin, sizeof(t->origin), "live");
	}
	if (hwloc_topology_load(t->h)) {
		ret = tiermm__fail(EINVAL, "hwloc could not load %s%s",
				   o.xml_path ? "the XML file " : "the topology",
				   o.xml_path ? o.xml_path : "");
		goto fail;
	}
	ret = collect_nodes(t);
	if (ret)
		goto fail;
	if (!t->from_xml) {
		ret = read_kernel_nodes(t, o.fsroot);
		if (ret)
			goto fail;
	}
	finish_node_cpus(t, !t->from_xml);
	if (t->from_xml) {
		ret = check_xml(t, &o, o.xml_path);
		if (ret)
			goto fail;
		load_groups_from_xml(t);
	}
	read_slit(t);
	if (o.probes) {
		double budget = o.budget_s > 0 ? o.budget_s : 60.0;
		double mem_budget = budget;

		pg.o = &o;
		pg.total = 0;
		for (int i = 0; i < t->n; i++)
			for (int j = 0; j < t->n; j++)
				if (t->nodes[i].cpulist[0] && t->nodes[j].capacity)
					pg.total += !!(o.probes & TIERMM_PROBE_LATENCY) +
						    !!(o.probes & TIERMM_PROBE_BANDWIDTH);
		if (o.probes & TIERMM_PROBE_CPUGROUPS) {
			/* Half each when memory probes run too. */
			if (o.probes & (TIERMM_PROBE_LATENCY | TIERMM_PROBE_BANDWIDTH))
				mem_budget = budget / 2;
			else
				mem_budget = 0;
			ret = run_cpugroups(t, &pg, budget - mem_budget);
			if (ret)
				goto fail;
		}
		ret = run_mem_probes(t, &o, &pg, mem_budget);
		if (ret)
			goto fail;
	}
	if (!t->from_xml) {
		ret = record_provenance(t, o.probes != 0, !o.fsroot);
		if (ret)
			goto fail;
	}
	read_attrs(t);
	ret = rank_tiers(t, tiers);
	if (ret)
		goto fail;
	free(xml);
	*out = t;
	errno = saved;
	return 0;
fail:
	free(xml);
	tiermm_topo_free(t);
	return ret;
}

/* ---------------------------------------------------------------- queries */

int tiermm_topo_nr_nodes(const struct tiermm_topo *t)
{
	if (!t)
		return tiermm__fail(EINVAL, "tiermm_topo_nr_nodes: topo is NULL");
	return t->n;
}

int tiermm_topo_node(const struct tiermm_topo *t, int idx,
		     struct tiermm_node_info *info)
{
	struct tiermm_node_info n;

	if (!t || !info)
		return tiermm__fail(EINVAL, "tiermm_topo_node: NULL argument");
	if (info->sz < offsetof(struct tiermm_node_info, os_index) + sizeof(int))
		return tiermm__fail(EINVAL,
				    "tiermm_topo_node: info->sz (%zu) must be set to sizeof(struct tiermm_node_info)",
				    info->sz);
	if (idx < 0 || idx >= t->n)
		return tiermm__fail(ENOENT, "tiermm_topo_node: index %d is not in 0..%d",
				    idx, t->n - 1);
	memset(&n, 0, sizeof(n));
	n.sz = info->sz < sizeof(n) ? info->sz : sizeof(n);
	n.os_index = t->nodes[idx].os;
	n.kind = t->nodes[idx].kind;
	n.nr_cpus = hwloc_bitmap_iszero(t->nodes[idx].cpus) ? 0 :
		    hwloc_bitmap_weight(t->nodes[idx].cpus);
	n.tier = t->nodes[idx].tier;
	n.capacity = t->nodes[idx].capacity;
	memcpy(info, &n, n.sz);
	return 0;
}

int tiermm_topo_node_index(const struct tiermm_topo *t, int os_index)
{
	if (!t)
		return tiermm__fail(EINVAL, "tiermm_topo_node_index: topo is NULL");
	for (int i = 0; i < t->n; i++)
		if (t->nodes[i].os == os_index)
			return i;
	return tiermm__fail(ENOENT, "node %d does not exist or has no memory",
			    os_index);
}

static int copy_out(const char *s, char *buf, size_t len, const char *what)
{
	size_t n = strlen(s);

	if (!buf)
		return tiermm__fail(EINVAL, "%s: buf is NULL", what);
	if (n >= len)
		return tiermm__fail(ERANGE, "%s: buffer of %zu bytes is too small for %zu",
				    what, len, n + 1);
	memcpy(buf, s, n + 1);
	return (int)n;
}

int tiermm_topo_node_cpus(const struct tiermm_topo *t, int idx, char *buf,
			  size_t len)
{
	if (!t)
		return tiermm__fail(EINVAL, "tiermm_topo_node_cpus: topo is NULL");
	if (idx < 0 || idx >= t->n)
		return tiermm__fail(ENOENT, "tiermm_topo_node_cpus: index %d is not in 0..%d",
				    idx, t->n - 1);
	return copy_out(t->nodes[idx].cpulist, buf, len, "tiermm_topo_node_cpus");
}

int tiermm_topo_nr_tiers(const struct tiermm_topo *t)
{
	if (!t)
		return tiermm__fail(EINVAL, "tiermm_topo_nr_tiers: topo is NULL");
	return t->nr_tiers;
}

int tiermm_topo_tier_nodes(const struct tiermm_topo *t, int tier, char *buf,
			   size_t len)
{
	hwloc_bitmap_t b;
	char list[1024];

	if (!t)
		return tiermm__fail(EINVAL, "tiermm_topo_tier_nodes: topo is NULL");
	if (tier < 0 || tier >= t->nr_tiers)
		return tiermm__fail(ENOENT, "tier %d is not in 0..%d", tier,
				    t->nr_tiers - 1);
	b = hwloc_bitmap_alloc();
	if (!b)
		return tiermm__fail(ENOMEM, "out of memory");
	for (int i = 0; i < t->n; i++)
		if (t->nodes[i].tier == tier)
			hwloc_bitmap_set(b, (unsigned int)t->nodes[i].os);
	hwloc_bitmap_list_snprintf(list, sizeof(list), b);
	hwloc_bitmap_free(b);
	return copy_out(list, buf, len, "tiermm_topo_tier_nodes");
}

int tiermm_topo_tier_source(const struct tiermm_topo *t, const char **conflicts)
{
	if (!t)
		return tiermm__fail(EINVAL, "tiermm_topo_tier_source: topo is NULL");
	if (conflicts)
		*conflicts = t->conflicts;
	return t->tier_source;
}

int tiermm_topo_distance(const struct tiermm_topo *t, int initiator, int target,
			 enum tiermm_metric m, double *value)
{
	int i, j;
	double v;

	if (!t || !value || (int)m < 0 || m >= TIERMM_METRIC__COUNT)
		return tiermm__fail(EINVAL, "tiermm_topo_distance: bad argument");
	for (i = 0; i < t->n && t->nodes[i].os != initiator; i++)
		;
	for (j = 0; j < t->n && t->nodes[j].os != target; j++)
		;
	if (i == t->n || j == t->n)
		return tiermm__fail(ENOENT, "node %d does not exist or has no memory",
				    i == t->n ? initiator : target);
	if (m != TIERMM_METRIC_SLIT && !t->nodes[i].cpulist[0])
		return tiermm__fail(ENOENT, "node %d has no CPUs, so it initiates no access",
				    initiator);
	v = *cell(t, m, i, j);
	if (isnan(v))
		return tiermm__fail(ENODATA, "no %s value from node %d to node %d",
				    metric_names[m], initiator, target);
	*value = v;
	return 0;
}

static bool lower_is_better(int m)
{
	return m == TIERMM_METRIC_SLIT || m == TIERMM_METRIC_FW_READ_LATENCY ||
	       m == TIERMM_METRIC_FW_WRITE_LATENCY || m == TIERMM_METRIC_LATENCY;
}

int tiermm_topo_best_target(const struct tiermm_topo *t, int initiator,
			    enum tiermm_metric m)
{
	int i, best = -1;
	double bv = 0;

	if (!t || (int)m < 0 || m >= TIERMM_METRIC__COUNT)
		return tiermm__fail(EINVAL, "tiermm_topo_best_target: bad argument");
	for (i = 0; i < t->n && t->nodes[i].os != initiator; i++)
		;
	if (i == t->n)
		return tiermm__fail(ENOENT, "node %d does not exist", initiator);
	for (int j = 0; j < t->n; j++) {
		double v = *cell(t, m, i, j);

		if (isnan(v))
			continue;
		if (best < 0 || (lower_is_better(m) ? v < bv : v > bv)) {
			best = j;
			bv = v;
		}
	}
	if (best < 0)
		return tiermm__fail(ENODATA, "no %s values from node %d",
				    metric_names[m], initiator);
	return t->nodes[best].os;
}

int tiermm_topo_cpugroups(const struct tiermm_topo *t,
			  struct tiermm_cpugroups_info *info)
{
	struct tiermm_cpugroups_info g;

	if (!t || !info)
		return tiermm__fail(EINVAL, "tiermm_topo_cpugroups: NULL argument");
	if (info->sz < offsetof(struct tiermm_cpugroups_info, nr_groups) + sizeof(int))
		return tiermm__fail(EINVAL, "tiermm_topo_cpugroups: info->sz must be set");
	g = t->groups;
	g.sz = info->sz < sizeof(g) ? info->sz : sizeof(g);
	memcpy(info, &g, g.sz);
	return 0;
}

int tiermm_topo_cpugroup_cpus(const struct tiermm_topo *t, int g, char *buf,
			      size_t len)
{
	if (!t)
		return tiermm__fail(EINVAL, "tiermm_topo_cpugroup_cpus: topo is NULL");
	if (g < 0 || g >= t->ngroups)
		return tiermm__fail(ENOENT, "CPU group %d is not in 0..%d", g,
				    t->ngroups - 1);
	return copy_out(t->group_cpus[g], buf, len, "tiermm_topo_cpugroup_cpus");
}

const char *tiermm_topo_origin(const struct tiermm_topo *t)
{
	if (!t) {
		tiermm__fail(EINVAL, "tiermm_topo_origin: topo is NULL");
		return NULL;
	}
	return t->origin;
}

int tiermm_topo_export_xml(const struct tiermm_topo *t, const char *path,
			   unsigned int flags)
{
	if (!t || !path)
		return tiermm__fail(EINVAL, "tiermm_topo_export_xml: NULL argument");
	if (flags)
		return tiermm__fail(EINVAL, "tiermm_topo_export_xml: flags must be 0");
	if (hwloc_topology_export_xml(t->h, path, 0))
		return tiermm__fail(errno ? errno : EIO, "cannot write %s: %s", path,
				    strerror(errno ? errno : EIO));
	return 0;
}

int tiermm_topo_write_json(const struct tiermm_topo *t, FILE *f)
{
	if (!t || !f)
		return tiermm__fail(EINVAL, "tiermm_topo_write_json: NULL argument");
	fputs("{\"origin\":", f);
	tiermm__json_str(f, t->origin);
	fputs(",\"nodes\":[", f);
	for (int i = 0; i < t->n; i++) {
		const struct tnode *nd = &t->nodes[i];

		fprintf(f, "%s{\"node\":%d,\"kind\":\"%s\",\"cpus\":", i ? "," : "",
			nd->os, kind_names[nd->kind]);
		tiermm__json_str(f, nd->cpulist);
		fprintf(f, ",\"capacity\":%llu,\"tier\":%d}",
			(unsigned long long)nd->capacity, nd->tier);
	}
	fprintf(f, "],\"tiers\":{\"source\":\"%s\",\"conflicts\":",
		source_names[t->tier_source]);
	tiermm__json_str(f, t->conflicts);
	fputs(",\"nodes\":[", f);
	for (int k = 0; k < t->nr_tiers; k++) {
		char list[1024];

		tiermm_topo_tier_nodes(t, k, list, sizeof(list));
		fprintf(f, "%s", k ? "," : "");
		tiermm__json_str(f, list);
	}
	fputs("]},\"metrics\":{", f);
	for (int m = 0; m < TIERMM_METRIC__COUNT; m++) {
		fprintf(f, "%s\"%s\":[", m ? "," : "", metric_names[m]);
		for (int i = 0; i < t->n; i++) {
			fprintf(f, "%s[", i ? "," : "");
			for (int j = 0; j < t->n; j++) {
				double v = *cell(t, m, i, j);

				if (isnan(v))
					fprintf(f, "%snull", j ? "," : "");
				else
					fprintf(f, "%s%.17g", j ? "," : "", v);
			}
			fputc(']', f);
		}
		fputc(']', f);
	}
	fprintf(f, "},\"cpu_groups\":{\"validated\":%s,\"partial\":%s,\"agrees_with_nodes\":%s,\"confidence\":%.3f,\"pairs_measured\":%llu,\"groups\":[",
		t->groups.validated ? "true" : "false",
		t->groups.partial ? "true" : "false",
		t->groups.agrees_with_nodes ? "true" : "false",
		t->groups.confidence,
		(unsigned long long)t->groups.pairs_measured);
	for (int g = 0; g < t->ngroups; g++) {
		fprintf(f, "%s", g ? "," : "");
		tiermm__json_str(f, t->group_cpus[g]);
	}
	fputs("]}}\n", f);
	if (ferror(f))
		return tiermm__fail(EIO, "tiermm_topo_write_json: write error");
	return 0;
}
