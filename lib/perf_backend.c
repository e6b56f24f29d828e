// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Hotness backend "perf": precise memory sampling of one process with
 * perf_event_open(2), Demeter's sampling (SEEDS.md section 2).
 *
 * Events, per PMU that offers them:
 * - Intel PEBS (a "cpu", "cpu_core" or "cpu_atom" PMU with events/mem-loads):
 *   the load-latency event from sysfs with ldlat set to the threshold
 *   (default 64 cycles, period 4093) and the precise store event
 *   (events/mem-stores, else MEM_INST_RETIRED.ALL_STORES, event 0xd0 umask
 *   0x82; period 65535). No PERF_SAMPLE_DATA_SRC: loads and stores are told
 *   apart by event, and on PMUs with PMU_FL_MEM_LOADS_AUX (Sapphire Rapids)
 *   a mem-loads event that asks for DATA_SRC must be grouped behind a
 *   mem-loads-aux leader (arch/x86/events/intel/core.c), which we avoid.
 * - AMD IBS op (the ibs_op PMU): one event sampling all ops, counting
 *   dispatched ops (cnt_ctl) and with L3MissOnly when the format offers it.
 *   Since Linux 6.1 the IBS driver fills PERF_SAMPLE_ADDR from IbsDcLinAd
 *   when it is valid and PERF_SAMPLE_DATA_SRC's mem_op with load/store
 *   (arch/x86/events/amd/ibs.c, perf_ibs_parse_ld_st_data()), so samples
 *   are classified by data_src and ops without a data address dropped;
 *   older kernels would need PERF_SAMPLE_RAW decoding of the IBS MSRs,
 *   which is not implemented (usable() says so). IBS refuses exclude_*
 *   flags (PERF_PMU_CAP_NO_EXCLUDE), so kernel-mode ops are sampled too and
 *   their kernel-half addresses dropped; unprivileged use then needs
 *   perf_event_paranoid <= 1.
 *
 * Targeting: events are per (thread, CPU) with inherit (and inherit_thread
 * where the kernel has it, 5.13+): perf_mmap() refuses a ring on an
 * inherited per-task event (cpu == -1 && attr.inherit, kernel/events/
 * core.c), so like `perf record -p` we open one event per existing thread
 * of the target on every CPU the PMU covers, threads created later inherit
 * them, and every event of a CPU writes into one ring (PERF_EVENT_IOC_
 * SET_OUTPUT allows redirection between events of the same CPU and clock).
 * PERF_SAMPLE_IDENTIFIER tells the events apart; inherited events report
 * their parent's id. Cost: threads x CPUs x events descriptors.
 *
 * Rings: 1 + 32 pages per CPU (128 KiB of records, about 2300 samples of
 * 56 bytes), within the default perf_event_mlock_kb (516 KiB per CPU); a
 * refused mmap is retried with fewer pages. poll() drains every ring once:
 * data_head is read with acquire semantics, the records [data_tail,
 * data_head) are copied out (unwrapped), data_tail is released, and the
 * copy goes through tiermm__perf_parse(). Samples carry CLOCK_MONOTONIC
 * times (use_clockid).
 *
 * CPU accounting: the sampling cost (PEBS assists, IBS/PMI interrupts) is
 * spent in interrupt context on the sampled CPUs and is not observable per
 * event, so cpu_ns() is 0; poll()'s parsing is the caller's thread time.
 *
 * Not run on hardware: our machines and their VMs have no PEBS or IBS. The
 * record parsing, ring draining and policy are tested with synthetic
 * streams, and the whole path (per-CPU inherited events, SET_OUTPUT, rings,
 * ids) with the software page-fault event (TIERMM__BACKEND_TEST_SWEVENT).
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <linux/perf_event.h>

#include "internal.h"
#include "tiering.h"

#define DEF_LOAD_PERIOD 4093
#define DEF_STORE_PERIOD 65535
#define DEF_LDLAT 64
#define RING_PAGES 32		/* data pages per CPU (a power of two) */
#define RING_PAGES_MIN 4
#define MAX_EVENTS 6		/* 3 core PMUs x loads and stores */
#define TASK_RESCANS 3
#define CPU_WORDS (TIERMM__CPU_BITS / 64)

enum kind { KIND_PEBS, KIND_IBS, KIND_SW };

struct ev {
	char pmu[32];
	char what[48];		/* "mem-loads", "mem-stores", ... */
	struct perf_event_attr attr;
	uint32_t flags;		/* TIERMM__PERF_* */
	int max_precise;	/* precise_ip to try first (PEBS) */
	bool optional;		/* stores: dropped if they cannot open */
	uint64_t cpus[CPU_WORDS];
};

struct plan {
	enum kind kind;
	size_t nev;
	struct ev ev[MAX_EVENTS];
	char desc[256];
};

struct ring {
	int cpu;
	int fd;			/* the event the ring is mapped on */
	void *base;
	size_t map_len;
	struct perf_event_mmap_page *meta;
	unsigned char *data;
	uint64_t size;
	uint64_t sample_type;
};

struct tiermm__backend {
	pid_t pid;
	bool self;
	struct plan plan;
	int *fds;
	size_t nfds, capfds;
	struct tiermm__perf_id *ids;
	size_t nids, capids;
	struct ring *rings;
	size_t nrings;
	pid_t *tids;		/* threads with events, sorted */
	size_t ntids, captids;
	void *scratch;
	size_t scratch_len;
	struct tiermm__perf_counts counts;
	uint64_t polls, observations, ring_errors, parse_errors;
};

static long sys_perf_event_open(struct perf_event_attr *attr, pid_t pid,
				int cpu, int group_fd, unsigned long flags)
{
	return syscall(SYS_perf_event_open, attr, pid, cpu, group_fd, flags);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- Planning: which events, from sysfs ------------------------------- */

/*
 * Copy spec ("k=v,k=v") to out with key set to value (replaced, or
 * appended when absent). 0 or -ENAMETOOLONG.
 */
static int spec_set(const char *spec, const char *key, uint64_t value,
		    char *out, size_t len)
{
	char buf[256], *tok, *save = NULL;
	size_t klen = strlen(key), n = 0;
	bool done = false;
	int w;

	if (strlen(spec) >= sizeof(buf))
		return -ENAMETOOLONG;
	strcpy(buf, spec);
	out[0] = '\0';
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (!strncmp(tok, key, klen) && (tok[klen] == '=' || !tok[klen])) {
			w = snprintf(out + n, len - n, "%s%s=%" PRIu64,
				     n ? "," : "", key, value);
			done = true;
		} else {
			w = snprintf(out + n, len - n, "%s%s", n ? "," : "", tok);
		}
		if (w < 0 || (size_t)w >= len - n)
			return -ENAMETOOLONG;
		n += (size_t)w;
	}
	if (!done) {
		w = snprintf(out + n, len - n, "%s%s=%" PRIu64, n ? "," : "",
			     key, value);
		if (w < 0 || (size_t)w >= len - n)
			return -ENAMETOOLONG;
	}
	return 0;
}

static int pmu_cpus(const struct tiermm__fs *fs, const char *pmu, uint64_t *cpus)
{
	char path[160], buf[4096];

	snprintf(path, sizeof(path), "/sys/bus/event_source/devices/%s/cpus", pmu);
	if (tiermm__fs_read(fs, path, buf, sizeof(buf)) <= 0 &&
	    tiermm__fs_read(fs, "/sys/devices/system/cpu/online", buf,
			    sizeof(buf)) <= 0)
		return -ENOENT;
	return tiermm__list_parse(buf, cpus, TIERMM__CPU_BITS) > 0 ? 0 : -EINVAL;
}

static void common_attr(struct perf_event_attr *a, uint64_t sample_type)
{
	a->size = sizeof(*a);
	a->sample_type = sample_type;
	a->disabled = 1;
	a->inherit = 1;
	a->inherit_thread = 1;
	a->sample_id_all = 1;
	a->use_clockid = 1;
	a->clockid = CLOCK_MONOTONIC;
	/* Nobody waits on the rings: wake up as rarely as the ABI allows. */
	a->watermark = 1;
	a->wakeup_watermark = RING_PAGES * 4096u / 2;
}

static bool has_format(const struct tiermm__fs *fs, const char *pmu,
		       const char *field)
{
	char path[192];

	snprintf(path, sizeof(path), "/sys/bus/event_source/devices/%s/format/%s",
		 pmu, field);
	return tiermm__fs_exists(fs, path);
}

/* Intel PEBS events of one core PMU; 0 (added), 1 (PMU has none), -errno. */
static int plan_pebs(const struct tiermm__fs *fs,
		     const struct tiermm__backend_cfg *cfg, const char *pmu,
		     struct plan *p, char *why, size_t whylen)
{
	const uint64_t st = PERF_SAMPLE_IDENTIFIER | PERF_SAMPLE_TID |
			    PERF_SAMPLE_TIME | PERF_SAMPLE_ADDR |
			    PERF_SAMPLE_WEIGHT_STRUCT;
	char path[192], spec[256], spec2[256];
	struct ev *ld, *stv;
	uint64_t maxp = 3;
	int ret;

	snprintf(path, sizeof(path),
		 "/sys/bus/event_source/devices/%s/events/mem-loads", pmu);
	if (tiermm__fs_read(fs, path, spec, sizeof(spec)) <= 0)
		return 1;
	if (p->nev + 2 > MAX_EVENTS)
		return 1;
	if (!has_format(fs, pmu, "ldlat")) {
		tiermm__backend_why(why, whylen,
				    "perf: %s has mem-loads but no ldlat format field",
				    pmu);
		return -ENOTSUP;
	}
	ret = spec_set(spec, "ldlat",
		       cfg->load_latency ? cfg->load_latency : DEF_LDLAT,
		       spec2, sizeof(spec2));
	ld = &p->ev[p->nev];
	memset(ld, 0, sizeof(*ld));
	if (!ret)
		ret = tiermm__pmu_event_attr(fs, pmu, spec2, &ld->attr);
	if (ret) {
		tiermm__backend_why(why, whylen,
				    "perf: cannot decode %s/mem-loads '%s': %s",
				    pmu, spec, strerror(-ret));
		return ret;
	}
	snprintf(path, sizeof(path),
		 "/sys/bus/event_source/devices/%s/caps/max_precise", pmu);
	if (tiermm__fs_read_u64(fs, path, &maxp) || maxp > 3)
		maxp = 3;
	if (!maxp) {
		tiermm__backend_why(why, whylen,
				    "perf: %s reports max_precise 0 (no PEBS)", pmu);
		return -ENOTSUP;
	}
	ret = pmu_cpus(fs, pmu, ld->cpus);
	if (ret) {
		tiermm__backend_why(why, whylen, "perf: no CPU list for %s", pmu);
		return ret;
	}
	snprintf(ld->pmu, sizeof(ld->pmu), "%s", pmu);
	snprintf(ld->what, sizeof(ld->what), "mem-loads");
	common_attr(&ld->attr, st);
	ld->attr.sample_period = cfg->load_period ? cfg->load_period :
						    DEF_LOAD_PERIOD;
	ld->attr.exclude_kernel = 1;
	ld->attr.exclude_hv = 1;
	ld->max_precise = (int)maxp;
	ld->flags = 0;

	stv = &p->ev[p->nev + 1];
	*stv = *ld;
	memset(&stv->attr, 0, sizeof(stv->attr));
	snprintf(path, sizeof(path),
		 "/sys/bus/event_source/devices/%s/events/mem-stores", pmu);
	if (tiermm__fs_read(fs, path, spec, sizeof(spec)) > 0) {
		snprintf(stv->what, sizeof(stv->what), "mem-stores");
	} else {
		/* MEM_INST_RETIRED.ALL_STORES (Skylake and later). */
		snprintf(spec, sizeof(spec), "event=0xd0,umask=0x82");
		snprintf(stv->what, sizeof(stv->what), "raw 0xd0/0x82 stores");
	}
	if (tiermm__pmu_event_attr(fs, pmu, spec, &stv->attr) == 0) {
		common_attr(&stv->attr, st);
		stv->attr.sample_period = cfg->store_period ? cfg->store_period :
							      DEF_STORE_PERIOD;
		stv->attr.exclude_kernel = 1;
		stv->attr.exclude_hv = 1;
		stv->flags = TIERMM__PERF_STORES;
		stv->optional = true;
		p->nev += 2;
	} else {
		p->nev += 1;
	}
	return 0;
}

static bool kernel_at_least(int major, int minor)
{
	struct utsname u;
	int ma = 0, mi = 0;

	if (uname(&u) || sscanf(u.release, "%d.%d", &ma, &mi) != 2)
		return false;
	return ma > major || (ma == major && mi >= minor);
}

static int plan_ibs(const struct tiermm__fs *fs,
		    const struct tiermm__backend_cfg *cfg, struct plan *p,
		    char *why, size_t whylen)
{
	struct ev *e = &p->ev[0];
	char spec[64] = "";
	uint64_t period = cfg->load_period ? cfg->load_period : DEF_LOAD_PERIOD;
	bool l3miss = has_format(fs, "ibs_op", "l3missonly");
	int ret;

	if (!kernel_at_least(6, 1)) {
		tiermm__backend_why(why, whylen,
				    "perf: AMD IBS op present, but kernels before 6.1 report IBS data addresses only in PERF_SAMPLE_RAW, which this backend does not decode");
		return -ENOTSUP;
	}
	memset(e, 0, sizeof(*e));
	if (has_format(fs, "ibs_op", "cnt_ctl"))
		snprintf(spec, sizeof(spec), "cnt_ctl=1");
	if (l3miss)
		snprintf(spec + strlen(spec), sizeof(spec) - strlen(spec),
			 "%sl3missonly=1", spec[0] ? "," : "");
	ret = tiermm__pmu_event_attr(fs, "ibs_op", spec, &e->attr);
	if (!ret)
		ret = pmu_cpus(fs, "ibs_op", e->cpus);
	if (ret) {
		tiermm__backend_why(why, whylen, "perf: cannot set up ibs_op: %s",
				    strerror(-ret));
		return ret;
	}
	common_attr(&e->attr, PERF_SAMPLE_IDENTIFIER | PERF_SAMPLE_TID |
			      PERF_SAMPLE_TIME | PERF_SAMPLE_ADDR |
			      PERF_SAMPLE_WEIGHT_STRUCT | PERF_SAMPLE_DATA_SRC);
	/*
	 * IBS counts ops, not loads over a latency threshold: with L3MissOnly
	 * only missing ops interrupt, so the load period fits; without it
	 * every op is a candidate and the period is 64 times longer to keep
	 * the interrupt rate near PEBS's. Periods are multiples of 16.
	 */
	if (!l3miss)
		period *= 64;
	e->attr.sample_period = (period + 15) & ~15ull;
	e->flags = TIERMM__PERF_MEM_OP;
	snprintf(e->pmu, sizeof(e->pmu), "ibs_op");
	snprintf(e->what, sizeof(e->what), "IBS op%s",
		 l3miss ? " (L3MissOnly)" : "");
	p->nev = 1;
	return 0;
}

static int plan_build(const struct tiermm__fs *fs,
		      const struct tiermm__backend_cfg *cfg, struct plan *p,
		      char *why, size_t whylen)
{
	static const char *const core[] = { "cpu", "cpu_core", "cpu_atom" };
	int ret;

	memset(p, 0, sizeof(*p));
	if (cfg->test_flags & TIERMM__BACKEND_TEST_SWEVENT) {
		struct ev *e = &p->ev[0];

		p->kind = KIND_SW;
		e->attr.type = PERF_TYPE_SOFTWARE;
		e->attr.config = PERF_COUNT_SW_PAGE_FAULTS;
		common_attr(&e->attr, PERF_SAMPLE_IDENTIFIER | PERF_SAMPLE_TID |
				      PERF_SAMPLE_TIME | PERF_SAMPLE_ADDR);
		e->attr.sample_period = 1;
		e->attr.exclude_kernel = 1;
		e->attr.exclude_hv = 1;
		snprintf(e->pmu, sizeof(e->pmu), "software");
		snprintf(e->what, sizeof(e->what), "page-faults (test)");
		ret = pmu_cpus(fs, "software", e->cpus);
		if (ret)
			return tiermm__backend_why(why, whylen,
						   "perf: no online CPU list"), ret;
		p->nev = 1;
		snprintf(p->desc, sizeof(p->desc),
			 "software page-fault events (test mode, not hotness)");
		return 0;
	}
	p->kind = KIND_PEBS;
	for (size_t i = 0; i < TIERMM__ARRAY_SIZE(core); i++) {
		ret = plan_pebs(fs, cfg, core[i], p, why, whylen);
		if (ret < 0)
			return ret;
	}
	if (p->nev) {
		size_t n = 0;

		for (size_t i = 0; i < p->nev; i++)
			n += (size_t)snprintf(p->desc + n, sizeof(p->desc) - n,
					      "%s%s/%s", i ? " + " : "Intel PEBS ",
					      p->ev[i].pmu, p->ev[i].what) ;
		if (n < sizeof(p->desc))
			snprintf(p->desc + n, sizeof(p->desc) - n, " (ldlat %u)",
				 cfg->load_latency ? cfg->load_latency : DEF_LDLAT);
		return 0;
	}
	if (tiermm__fs_exists(fs, "/sys/bus/event_source/devices/ibs_op/type")) {
		p->kind = KIND_IBS;
		ret = plan_ibs(fs, cfg, p, why, whylen);
		if (ret)
			return ret;
		snprintf(p->desc, sizeof(p->desc), "AMD %s", p->ev[0].what);
		return 0;
	}
	tiermm__backend_why(why, whylen,
			    "perf: no mem-loads event on a cpu/cpu_core/cpu_atom PMU and no ibs_op PMU: no PEBS or IBS (typical in VMs)");
	return -ENODEV;
}

/* ---- Opening events ------------------------------------------------------ */

static bool cpu_in(const uint64_t *cpus, int cpu)
{
	return cpu >= 0 && cpu < TIERMM__CPU_BITS && tiermm__bit_test(cpus, (unsigned int)cpu);
}

static int first_cpu(const uint64_t *cpus)
{
	for (int c = 0; c < TIERMM__CPU_BITS; c++)
		if (cpu_in(cpus, c))
			return c;
	return -1;
}

/*
 * Open e for (tid, cpu). The first success fixes the attribute variant in
 * e->attr: precise_ip from max_precise down, inherit_thread (5.13) and
 * PERF_SAMPLE_WEIGHT_STRUCT (5.12) dropped for older kernels. Returns the
 * descriptor or -errno.
 */
static int ev_open(struct ev *e, pid_t tid, int cpu, bool *fixed)
{
	struct perf_event_attr a;
	int fd, err = EINVAL;

	if (*fixed) {
		a = e->attr;
		fd = (int)sys_perf_event_open(&a, tid, cpu, -1, PERF_FLAG_FD_CLOEXEC);
		return fd >= 0 ? fd : -errno;
	}
	for (int prec = e->max_precise; prec >= (e->max_precise ? 1 : 0); prec--) {
		for (int variant = 0; variant < 4; variant++) {
			a = e->attr;
			a.precise_ip = (unsigned int)prec & 3;
			if (variant & 1)
				a.inherit_thread = 0;
			if ((variant & 2) && (a.sample_type & PERF_SAMPLE_WEIGHT_STRUCT)) {
				a.sample_type &= ~(uint64_t)PERF_SAMPLE_WEIGHT_STRUCT;
				a.sample_type |= PERF_SAMPLE_WEIGHT;
			} else if (variant & 2) {
				continue;
			}
			fd = (int)sys_perf_event_open(&a, tid, cpu, -1,
						      PERF_FLAG_FD_CLOEXEC);
			if (fd >= 0) {
				e->attr = a;
				*fixed = true;
				return fd;
			}
			err = errno;
			/* Only attribute rejections are worth another variant. */
			if (err != EINVAL && err != E2BIG && err != EOPNOTSUPP)
				return -err;
		}
	}
	return -err;
}

static const char *open_hint(int err)
{
	switch (err) {
	case EACCES:
	case EPERM:
		return " (perf_event_paranoid too high for this user, or no ptrace access to the process; root or CAP_PERFMON helps)";
	case ENOENT:
	case ENODEV:
		return " (the PMU does not know the event)";
	case EMFILE:
	case ENFILE:
		return " (one descriptor per thread, CPU and event: raise RLIMIT_NOFILE)";
	case ESRCH:
		return " (no such process)";
	default:
		return "";
	}
}

static int paranoid(void)
{
	struct tiermm__fs fs;
	char buf[16];

	tiermm__fs_init(&fs, NULL);
	if (tiermm__fs_read(&fs, "/proc/sys/kernel/perf_event_paranoid", buf,
			    sizeof(buf)) <= 0)
		return 99;
	return atoi(buf);
}

static int push_fd(struct tiermm__backend *b, int fd)
{
	if (b->nfds == b->capfds) {
		size_t cap = b->capfds ? b->capfds * 2 : 64;
		int *n = realloc(b->fds, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		b->fds = n;
		b->capfds = cap;
	}
	b->fds[b->nfds++] = fd;
	return 0;
}

static int push_id(struct tiermm__backend *b, uint64_t id, uint32_t flags)
{
	if (b->nids == b->capids) {
		size_t cap = b->capids ? b->capids * 2 : 64;
		struct tiermm__perf_id *n = realloc(b->ids, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		b->ids = n;
		b->capids = cap;
	}
	b->ids[b->nids++] = (struct tiermm__perf_id){ .id = id, .flags = flags };
	return 0;
}

static int cmp_pid(const void *a, const void *b)
{
	pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;

	return x < y ? -1 : x > y;
}

static int cmp_perf_id(const void *a, const void *b)
{
	const struct tiermm__perf_id *x = a, *y = b;

	return x->id < y->id ? -1 : x->id > y->id;
}

/* Threads of pid (sorted) into *out. 0 or -errno. */
static int list_tids(pid_t pid, pid_t **out, size_t *n)
{
	struct tiermm__fs fs;
	char path[64];
	struct dirent *d;
	pid_t *t = NULL, *tmp;
	size_t cap = 0, k = 0;
	DIR *dir;

	tiermm__fs_init(&fs, NULL);
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	dir = tiermm__fs_opendir(&fs, path);
	if (!dir)
		return -ESRCH;
	while ((d = readdir(dir))) {
		if (d->d_name[0] < '0' || d->d_name[0] > '9')
			continue;
		if (k == cap) {
			cap = cap ? cap * 2 : 16;
			tmp = realloc(t, cap * sizeof(*t));
			if (!tmp) {
				free(t);
				closedir(dir);
				return -ENOMEM;
			}
			t = tmp;
		}
		t[k++] = (pid_t)atoi(d->d_name);
	}
	closedir(dir);
	if (!k) {
		free(t);
		return -ESRCH;
	}
	qsort(t, k, sizeof(*t), cmp_pid);
	*out = t;
	*n = k;
	return 0;
}

static struct ring *ring_of(struct tiermm__backend *b, int cpu)
{
	for (size_t i = 0; i < b->nrings; i++)
		if (b->rings[i].cpu == cpu)
			return &b->rings[i];
	return NULL;
}

static int ring_map(struct tiermm__backend *b, int fd, int cpu,
		    uint64_t sample_type, struct ring **out)
{
	long page = sysconf(_SC_PAGESIZE);
	struct ring *r, *tmp;
	void *base = MAP_FAILED;
	size_t pages;

	for (pages = RING_PAGES; pages >= RING_PAGES_MIN; pages /= 2) {
		base = mmap(NULL, (pages + 1) * (size_t)page,
			    PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (base != MAP_FAILED || (errno != EPERM && errno != ENOMEM))
			break;
	}
	if (base == MAP_FAILED)
		return -errno;
	tmp = realloc(b->rings, (b->nrings + 1) * sizeof(*tmp));
	if (!tmp) {
		munmap(base, (pages + 1) * (size_t)page);
		return -ENOMEM;
	}
	b->rings = tmp;
	r = &b->rings[b->nrings++];
	memset(r, 0, sizeof(*r));
	r->cpu = cpu;
	r->fd = fd;
	r->base = base;
	r->map_len = (pages + 1) * (size_t)page;
	r->meta = base;
	/* data_offset/data_size exist since 4.1; fall back to the layout. */
	r->data = (unsigned char *)base + (r->meta->data_offset ?
					   r->meta->data_offset : (uint64_t)page);
	r->size = r->meta->data_size ? r->meta->data_size : pages * (uint64_t)page;
	r->sample_type = sample_type;
	if (r->size > b->scratch_len) {
		void *s = realloc(b->scratch, r->size);

		if (!s)
			return -ENOMEM;
		b->scratch = s;
		b->scratch_len = r->size;
	}
	*out = r;
	return 0;
}

/* Events of every planned kind on every CPU for one thread. */
static int open_thread(struct tiermm__backend *b, pid_t tid, bool *fixed)
{
	int ret;

	for (int cpu = 0; cpu < TIERMM__CPU_BITS; cpu++) {
		for (size_t i = 0; i < b->plan.nev; i++) {
			struct ev *e = &b->plan.ev[i];
			struct ring *r;
			uint64_t id;
			int fd;

			if (!cpu_in(e->cpus, cpu))
				continue;
			fd = ev_open(e, tid, cpu, &fixed[i]);
			if (fd == -ESRCH)
				return 0;	/* the thread exited meanwhile */
			if (fd < 0)
				return tiermm__fail(-fd,
						    "perf backend: opening %s/%s for thread %d on CPU %d failed: %s%s (perf_event_paranoid=%d)",
						    e->pmu, e->what, (int)tid, cpu,
						    strerror(-fd), open_hint(-fd),
						    paranoid());
			ret = push_fd(b, fd);
			if (ret) {
				close(fd);
				return tiermm__fail(ENOMEM, "perf backend: out of memory");
			}
			r = ring_of(b, cpu);
			if (!r) {
				ret = ring_map(b, fd, cpu, e->attr.sample_type, &r);
				if (ret)
					return tiermm__fail(-ret,
							    "perf backend: mapping the ring of CPU %d failed: %s%s",
							    cpu, strerror(-ret),
							    ret == -EPERM ? " (perf_event_mlock_kb and RLIMIT_MEMLOCK exhausted)" : "");
			} else if (r->sample_type != e->attr.sample_type) {
				return tiermm__fail(EINVAL,
						    "perf backend: %s/%s opened with sample_type 0x%" PRIx64 ", the ring of CPU %d holds 0x%" PRIx64,
						    e->pmu, e->what,
						    (uint64_t)e->attr.sample_type, cpu,
						    r->sample_type);
			} else if (ioctl(fd, PERF_EVENT_IOC_SET_OUTPUT, r->fd)) {
				return tiermm__fail(errno,
						    "perf backend: redirecting %s/%s of thread %d to the ring of CPU %d failed: %s",
						    e->pmu, e->what, (int)tid, cpu,
						    strerror(errno));
			}
			if (ioctl(fd, PERF_EVENT_IOC_ID, &id))
				return tiermm__fail(errno, "perf backend: PERF_EVENT_IOC_ID failed: %s",
						    strerror(errno));
			if (push_id(b, id, e->flags))
				return tiermm__fail(ENOMEM, "perf backend: out of memory");
		}
	}
	return 0;
}

static bool has_tid(const struct tiermm__backend *b, pid_t tid)
{
	return b->ntids &&
	       bsearch(&tid, b->tids, b->ntids, sizeof(pid_t), cmp_pid) != NULL;
}

static int add_tid(struct tiermm__backend *b, pid_t tid)
{
	if (b->ntids == b->captids) {
		size_t cap = b->captids ? b->captids * 2 : 16;
		pid_t *n = realloc(b->tids, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		b->tids = n;
		b->captids = cap;
	}
	b->tids[b->ntids++] = tid;
	qsort(b->tids, b->ntids, sizeof(pid_t), cmp_pid);
	return 0;
}

/*
 * Fix the attribute variant of every event with one trial open on the
 * target, before anything is kept. An optional event (stores) the kernel
 * refuses, or that only opens with another sample_type than the loads of
 * its PMU (they share rings), is dropped: loads are still sampled.
 */
static int plan_probe(struct plan *p, pid_t pid, bool *fixed)
{
	for (size_t i = 0; i < p->nev; i++) {
		struct ev *e = &p->ev[i];
		int fd;

		if (e->optional && i > 0)
			e->attr.sample_type = p->ev[i - 1].attr.sample_type;
		fd = ev_open(e, pid, first_cpu(e->cpus), &fixed[i]);
		if (fd >= 0)
			close(fd);
		if (fd >= 0 && (!e->optional || i == 0 ||
				e->attr.sample_type == p->ev[i - 1].attr.sample_type))
			continue;
		if (!e->optional)
			return tiermm__fail(-fd,
					    "perf backend: opening %s/%s for pid %d failed: %s%s (perf_event_paranoid=%d)",
					    e->pmu, e->what, (int)pid, strerror(-fd),
					    open_hint(-fd), paranoid());
		tiermm__log(TIERMM_LOG_INFO,
			    "perf backend: %s/%s refused (%s): sampling loads only on %s",
			    e->pmu, e->what,
			    fd < 0 ? strerror(-fd) : "needs another sample_type",
			    e->pmu);
		memmove(e, e + 1, (p->nev - i - 1) * sizeof(*e));
		memmove(&fixed[i], &fixed[i + 1], (p->nev - i - 1) * sizeof(*fixed));
		p->nev--;
		i--;
	}
	return 0;
}

static void perf_close(struct tiermm__backend *b)
{
	if (!b)
		return;
	for (size_t i = 0; i < b->nfds; i++)
		ioctl(b->fds[i], PERF_EVENT_IOC_DISABLE, 0);
	for (size_t i = 0; i < b->nrings; i++)
		munmap(b->rings[i].base, b->rings[i].map_len);
	for (size_t i = 0; i < b->nfds; i++)
		close(b->fds[i]);
	free(b->fds);
	free(b->ids);
	free(b->rings);
	free(b->tids);
	free(b->scratch);
	free(b);
}

static int live_only(const struct tiermm__backend_cfg *cfg)
{
	return !cfg->fsroot || !cfg->fsroot[0] || !strcmp(cfg->fsroot, "/");
}

static int perf_open(const struct tiermm__backend_cfg *cfg,
		     struct tiermm__backend **out)
{
	struct tiermm__backend *b;
	struct tiermm__fs fs;
	bool fixed[MAX_EVENTS] = { false };
	char why[512] = "";
	int ret;

	*out = NULL;
	if (!live_only(cfg))
		return tiermm__fail(EINVAL, "perf backend: needs the running kernel, not fsroot %s",
				    cfg->fsroot);
	if (cfg->pid < 0)
		return tiermm__fail(EINVAL, "perf backend: pid %d is negative", (int)cfg->pid);
	b = calloc(1, sizeof(*b));
	if (!b)
		return tiermm__fail(ENOMEM, "perf backend: out of memory");
	b->self = cfg->pid == 0 || cfg->pid == getpid();
	b->pid = b->self ? getpid() : cfg->pid;
	tiermm__fs_init(&fs, NULL);
	ret = plan_build(&fs, cfg, &b->plan, why, sizeof(why));
	if (ret) {
		perf_close(b);
		return tiermm__fail(ret == -ENODEV ? ENODEV : -ret, "%s", why);
	}
	ret = plan_probe(&b->plan, b->pid, fixed);
	if (ret) {
		perf_close(b);
		return ret;
	}

	/* Every thread, then again for threads born while we opened. */
	for (int round = 0; round <= TASK_RESCANS; round++) {
		pid_t *tids;
		size_t n, added = 0;

		ret = list_tids(b->pid, &tids, &n);
		if (ret) {
			perf_close(b);
			return tiermm__fail(ESRCH, "perf backend: pid %d: no such process",
					    (int)b->pid);
		}
		for (size_t i = 0; i < n && !ret; i++) {
			if (has_tid(b, tids[i]))
				continue;
			ret = open_thread(b, tids[i], fixed);
			if (!ret && add_tid(b, tids[i]))
				ret = tiermm__fail(ENOMEM, "perf backend: out of memory");
			added++;
		}
		free(tids);
		if (ret) {
			perf_close(b);
			return ret;
		}
		if (!added)
			break;
	}
	if (!b->nfds) {
		perf_close(b);
		return tiermm__fail(ESRCH, "perf backend: pid %d has no thread left",
				    (int)b->pid);
	}
	qsort(b->ids, b->nids, sizeof(*b->ids), cmp_perf_id);
	for (size_t i = 0; i < b->nfds; i++) {
		if (ioctl(b->fds[i], PERF_EVENT_IOC_ENABLE, 0)) {
			ret = errno;
			perf_close(b);
			return tiermm__fail(ret, "perf backend: enabling events failed: %s",
					    strerror(ret));
		}
	}
	tiermm__log(TIERMM_LOG_INFO,
		    "perf backend: %s on pid %d: %zu threads, %zu rings, %zu events",
		    b->plan.desc, (int)b->pid, b->ntids, b->nrings, b->nfds);
	*out = b;
	return 0;
}

int tiermm__perf_plan_describe(const struct tiermm__backend_cfg *cfg,
				char *out, size_t len)
{
	struct tiermm__fs fs;
	struct plan p;
	size_t n = 0;
	int ret;

	out[0] = '\0';
	ret = tiermm__fs_init(&fs, cfg->fsroot);
	if (ret)
		return ret;
	ret = plan_build(&fs, cfg, &p, out, len);
	if (ret)
		return ret;
	for (size_t i = 0; i < p.nev && n < len; i++) {
		const struct ev *e = &p.ev[i];
		const struct perf_event_attr *a = &e->attr;
		char cpus[256];

		tiermm__list_format(e->cpus, TIERMM__CPU_BITS, cpus, sizeof(cpus));
		n += (size_t)snprintf(out + n, len - n,
				      "%s/%s type=%u config=0x%llx config1=0x%llx period=%llu sample_type=0x%llx precise<=%d flags=%u optional=%d exclude_kernel=%u inherit=%u inherit_thread=%u clock=%d cpus=%s\n",
				      e->pmu, e->what, a->type,
				      (unsigned long long)a->config,
				      (unsigned long long)a->config1,
				      (unsigned long long)a->sample_period,
				      (unsigned long long)a->sample_type,
				      e->max_precise, e->flags, e->optional,
				      a->exclude_kernel, a->inherit,
				      a->inherit_thread,
				      a->use_clockid ? a->clockid : -1, cpus);
	}
	return (int)p.nev;
}

/* ---- The backend ------------------------------------------------------- */

static int perf_usable(const struct tiermm__backend_cfg *cfg, char *why,
		       size_t whylen)
{
	struct tiermm__fs fs;
	struct plan p;
	pid_t pid;
	bool fixed = false;
	int fd, cpu;

	if (!live_only(cfg))
		return tiermm__backend_why(why, whylen,
					   "perf: needs the running kernel (fsroot %s given)",
					   cfg->fsroot);
	tiermm__fs_init(&fs, NULL);
	if (plan_build(&fs, cfg, &p, why, whylen))
		return 0;
	pid = cfg->pid ? cfg->pid : getpid();
	cpu = first_cpu(p.ev[0].cpus);
	fd = ev_open(&p.ev[0], pid, cpu, &fixed);
	if (fd < 0)
		return tiermm__backend_why(why, whylen,
					   "perf: %s present, but opening it for pid %d on CPU %d failed: %s%s (perf_event_paranoid=%d)",
					   p.desc, (int)pid, cpu, strerror(-fd),
					   open_hint(-fd), paranoid());
	close(fd);
	tiermm__backend_why(why, whylen, "perf: %s opens for pid %d", p.desc,
			    (int)pid);
	return 1;
}

struct tee {
	tiermm__obs_sink sink;
	void *ctx;
	uint64_t n;
};

static int tee_sink(const struct tiermm__obs *obs, size_t n, void *ctx)
{
	struct tee *t = ctx;

	t->n += n;
	return t->sink(obs, n, t->ctx);
}

static int perf_poll(struct tiermm__backend *b, tiermm__obs_sink sink, void *ctx)
{
	struct tee t = { .sink = sink, .ctx = ctx };
	uint64_t now = now_ns();
	int ret = 0;

	b->polls++;
	for (size_t i = 0; i < b->nrings; i++) {
		struct ring *r = &b->rings[i];
		struct tiermm__perf_stream s = {
			.sample_type = r->sample_type,
			.pid = b->pid,
			.ids = b->ids,
			.nr_ids = b->nids,
			.now_ns = now,
		};
		ssize_t n = tiermm__perf_ring_drain(r->meta, r->data, r->size,
						    b->scratch, b->scratch_len);

		if (n < 0) {
			b->ring_errors++;
			continue;
		}
		if (!n)
			continue;
		ret = tiermm__perf_parse(b->scratch, (size_t)n, &s, tee_sink, &t,
					 &b->counts);
		if (ret == -EINVAL) {
			/* A corrupt ring loses its records, not the engine. */
			b->parse_errors++;
			ret = 0;
			continue;
		}
		if (ret < 0)
			break;
		ret = 0;
	}
	b->observations += t.n;
	if (!ret && !b->self && kill(b->pid, 0) && errno == ESRCH)
		return tiermm__fail(ESRCH, "perf backend: pid %d exited", (int)b->pid);
	return ret;
}

static uint64_t perf_cpu_ns(struct tiermm__backend *b)
{
	(void)b;
	return 0;
}

static void perf_stats(struct tiermm__backend *b, struct tiermm__backend_stats *s)
{
	memset(s, 0, sizeof(*s));
	s->polls = b->polls;
	s->observations = b->observations;
	s->samples = b->counts.samples;
	s->dropped = b->counts.no_addr + b->counts.other_pid + b->counts.unknown_id;
	s->lost = b->counts.lost + b->counts.lost_samples;
	s->throttled = b->counts.throttle;
}

const struct tiermm__backend_ops tiermm__perf_backend = {
	.name = "perf",
	.usable = perf_usable,
	.open = perf_open,
	.poll = perf_poll,
	.cpu_ns = perf_cpu_ns,
	.stats = perf_stats,
	.close = perf_close,
	.fixed_poll = true,
};
