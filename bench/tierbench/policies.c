// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * tierbench policies: who moves pages between the tiers while the workload
 * runs. Each one sets up the machine, starts after the workers, says how
 * much CPU it used, and undoes its settings.
 *
 *   first-touch   nothing moves: NUMA balancing off, demotion off.
 *   tpp           Linux's memory-tiering NUMA balancing (TPP upstream):
 *                 kernel.numa_balancing=2 (promotion of hot slow-tier pages
 *                 on NUMA hinting faults, with the kernel's default hot
 *                 threshold and promotion rate limit) and
 *                 /sys/kernel/mm/numa/demotion_enabled=1 (kswapd demotes
 *                 cold fast-tier pages instead of failing to reclaim them;
 *                 it runs because the fast node is kept full).
 *   damon         DAMON-based tiering with the DAMOS actions of 6.11+:
 *                 two kdamonds on physical addresses (the only operations
 *                 set that implements migrate_hot/migrate_cold in 6.12),
 *                 one per node: the fast node's regions that DAMON saw
 *                 unaccessed for a while are migrate_cold'ed to the slow
 *                 node, the slow node's accessed regions are migrate_hot'ed
 *                 to the fast node, hottest first within a quota; kernel
 *                 demotion on as well, NUMA balancing off.
 *   tiermm-scan,  tiermm's runtime in the benchmark process with that
 *   tiermm-damon  hotness backend and a fast-tier budget of the capacity;
 *                 kernel demotion and NUMA balancing off, so only tiermm
 *                 moves pages. Built when include/tiermm/runtime.h exists.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tierbench.h"

#if defined(__has_include)
#if __has_include(<tiermm/runtime.h>) && defined(TIERBENCH_HAVE_RUNTIME)
#define TB_TIERMM 1
#include <tiermm/runtime.h>
#endif
#endif

#define NUMA_BALANCING "/proc/sys/kernel/numa_balancing"
#define DEMOTION "/sys/kernel/mm/numa/demotion_enabled"
#define DAMON_ADMIN "/sys/kernel/mm/damon/admin/kdamonds"

/* ---- shared helpers ---- */

/* The kernel's tiering knobs, as found (for the CSV header). */
static void note_numa_knobs(struct tb_bench *b)
{
	char rate[32] = "?", thr[32] = "?", scan[32] = "?", per[32] = "?";

	tb_read_str("/proc/sys/kernel/numa_balancing_promote_rate_limit_MBps",
		    rate, sizeof(rate));
	tb_read_str("/sys/kernel/debug/sched/numa_balancing/hot_threshold_ms",
		    thr, sizeof(thr));
	tb_read_str("/sys/kernel/debug/sched/numa_balancing/scan_size_mb",
		    scan, sizeof(scan));
	tb_read_str("/sys/kernel/debug/sched/numa_balancing/scan_period_min_ms",
		    per, sizeof(per));
	snprintf(b->pol_note, sizeof(b->pol_note),
		 "numa_balancing=2 demotion_enabled=1 promote_rate_limit_MBps=%s hot_threshold_ms=%s scan_size_mb=%s scan_period_min_ms=%s",
		 rate, thr, scan, per);
}

static int set_numa(struct tb_bench *b, const char *balancing,
		    const char *demotion)
{
	int ret = tb_write_str(NUMA_BALANCING, balancing);

	if (ret) {
		tb_log(b, "cannot write %s: %s", NUMA_BALANCING, strerror(-ret));
		return ret;
	}
	ret = tb_write_str(DEMOTION, demotion);
	if (ret) {
		tb_log(b, "cannot write %s: %s", DEMOTION, strerror(-ret));
		return ret;
	}
	return 0;
}

/* CPU of one thread of the process, or of another process (tid < 0:
 * pid), seconds. */
static double task_s(pid_t pid, pid_t tid)
{
	double u = 0, s = 0;

	if (pid <= 0)
		return 0;
	if (tb_task_cpu(pid, tid, &u, &s))
		return 0;
	return u + s;
}

static double workers_sys_s(struct tb_bench *b)
{
	double sum = 0;

	for (int i = 0; i < b->nthreads; i++) {
		double s = 0;

		if (b->workers[i].tid &&
		    !tb_task_cpu(b->pid, b->workers[i].tid, NULL, &s))
			sum += s;
	}
	return sum;
}

struct kthread_cpu {
	pid_t pid;
	double base;
};

static void kt_begin(struct kthread_cpu *k, pid_t pid)
{
	k->pid = pid;
	k->base = task_s(pid, 0);
}

static double kt_delta(const struct kthread_cpu *k)
{
	double v = task_s(k->pid, 0) - k->base;

	return v > 0 ? v : 0;
}

/* ---- first-touch ---- */

static int ft_setup(struct tb_bench *b)
{
	snprintf(b->pol_note, sizeof(b->pol_note),
		 "numa_balancing=0 demotion_enabled=0");
	return set_numa(b, "0", "false");
}

static int ft_start(struct tb_bench *b)
{
	(void)b;
	return 0;
}

static double ft_cpu(struct tb_bench *b)
{
	(void)b;
	return 0;
}

static void ft_stop(struct tb_bench *b)
{
	(void)b;
}

/* ---- tpp ---- */

struct tpp_state {
	struct kthread_cpu kswapd;
	double workers_sys0;
};

static int tpp_setup(struct tb_bench *b)
{
	struct tpp_state *st = calloc(1, sizeof(*st));
	char path[64];
	int ret;

	if (!st)
		return -ENOMEM;
	b->pstate = st;
	/* off until the workers run, like every other policy */
	ret = set_numa(b, "0", "true");
	if (ret)
		return ret;
	snprintf(path, sizeof(path), "kswapd%d", b->fast_node);
	kt_begin(&st->kswapd, tb_find_kthread(path));
	return 0;
}

static int tpp_start(struct tb_bench *b)
{
	struct tpp_state *st = b->pstate;
	int ret = tb_write_str(NUMA_BALANCING, "2");

	if (ret) {
		tb_log(b, "kernel.numa_balancing=2 refused: %s", strerror(-ret));
		return ret;
	}
	note_numa_knobs(b);
	st->workers_sys0 = workers_sys_s(b);
	st->kswapd.base = task_s(st->kswapd.pid, 0);
	return 0;
}

static double tpp_cpu(struct tb_bench *b)
{
	struct tpp_state *st = b->pstate;

	return workers_sys_s(b) - st->workers_sys0 + kt_delta(&st->kswapd);
}

static void tpp_stop(struct tb_bench *b)
{
	set_numa(b, "0", "false");
	free(b->pstate);
	b->pstate = NULL;
}

/* ---- damon ---- */

/* DAMON parameters (documented in docs/tiering-benchmark.md). */
#define DAMON_SAMPLE_US 5000
#define DAMON_AGGR_US 100000
#define DAMON_UPDATE_US 1000000
#define DAMON_MIN_REGIONS 10
#define DAMON_MAX_REGIONS 1000
#define DAMON_QUOTA_BYTES (128ull << 20)	/* per reset interval */
#define DAMON_QUOTA_RESET_MS 1000
#define DAMON_COLD_MIN_AGE 10			/* aggregations: 1 s */
#define DAMON_HOT_MIN_ACC 1			/* of 20 samples */

struct damon_state {
	struct kthread_cpu kd[2];
	struct kthread_cpu kswapd;
	bool on;
};

static int kd_write(struct tb_bench *b, int kd, const char *rel,
		    const char *val)
{
	char path[512];
	int ret;

	snprintf(path, sizeof(path), DAMON_ADMIN "/%d/%s", kd, rel);
	ret = tb_write_str(path, val);
	if (ret)
		tb_log(b, "damon: writing '%s' to %s: %s", val, path,
		       strerror(-ret));
	return ret;
}

static int kd_writeu(struct tb_bench *b, int kd, const char *rel, uint64_t v)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%" PRIu64, v);
	return kd_write(b, kd, rel, buf);
}

/*
 * One kdamond watching node's physical memory with one scheme: action
 * migrate_hot or migrate_cold to target_nid.
 */
static int damon_config(struct tb_bench *b, int kd, int node, bool hot,
			int target_nid)
{
	const char *c = "contexts/0";
	const char *s = "contexts/0/schemes/0";
	char rel[256];
	uint64_t start, end;
	int ret;

	ret = tb_node_phys_range(node, &start, &end);
	if (ret) {
		tb_log(b, "damon: no physical range for node %d", node);
		return ret;
	}
#define W(rel_, val_) do { if ((ret = kd_write(b, kd, rel_, val_))) return ret; } while (0)
#define WU(rel_, val_) do { if ((ret = kd_writeu(b, kd, rel_, val_))) return ret; } while (0)
#define P(fmt_, ...) (snprintf(rel, sizeof(rel), fmt_, __VA_ARGS__), rel)
	W("contexts/nr_contexts", "1");
	W(P("%s/operations", c), "paddr");
	WU(P("%s/monitoring_attrs/intervals/sample_us", c), DAMON_SAMPLE_US);
	WU(P("%s/monitoring_attrs/intervals/aggr_us", c), DAMON_AGGR_US);
	WU(P("%s/monitoring_attrs/intervals/update_us", c), DAMON_UPDATE_US);
	WU(P("%s/monitoring_attrs/nr_regions/min", c), DAMON_MIN_REGIONS);
	WU(P("%s/monitoring_attrs/nr_regions/max", c), DAMON_MAX_REGIONS);
	W(P("%s/targets/nr_targets", c), "1");
	W(P("%s/targets/0/regions/nr_regions", c), "1");
	WU(P("%s/targets/0/regions/0/start", c), start);
	WU(P("%s/targets/0/regions/0/end", c), end);
	W(P("%s/schemes/nr_schemes", c), "1");
	W(P("%s/action", s), hot ? "migrate_hot" : "migrate_cold");
	WU(P("%s/target_nid", s), (uint64_t)target_nid);
	WU(P("%s/access_pattern/sz/min", s), TB_PAGE);
	WU(P("%s/access_pattern/sz/max", s), end - start);
	if (hot) {
		WU(P("%s/access_pattern/nr_accesses/min", s), DAMON_HOT_MIN_ACC);
		WU(P("%s/access_pattern/nr_accesses/max", s),
		   DAMON_AGGR_US / DAMON_SAMPLE_US);
		WU(P("%s/access_pattern/age/min", s), 0);
		WU(P("%s/access_pattern/age/max", s), UINT32_MAX);
		WU(P("%s/quotas/weights/nr_accesses_permil", s), 1000);
		WU(P("%s/quotas/weights/age_permil", s), 100);
	} else {
		WU(P("%s/access_pattern/nr_accesses/min", s), 0);
		WU(P("%s/access_pattern/nr_accesses/max", s), 0);
		WU(P("%s/access_pattern/age/min", s), DAMON_COLD_MIN_AGE);
		WU(P("%s/access_pattern/age/max", s), UINT32_MAX);
		WU(P("%s/quotas/weights/nr_accesses_permil", s), 1000);
		WU(P("%s/quotas/weights/age_permil", s), 1000);
	}
	WU(P("%s/quotas/weights/sz_permil", s), 0);
	WU(P("%s/quotas/bytes", s), DAMON_QUOTA_BYTES);
	WU(P("%s/quotas/ms", s), 0);
	WU(P("%s/quotas/reset_interval_ms", s), DAMON_QUOTA_RESET_MS);
	W(P("%s/watermarks/metric", s), "none");
#undef W
#undef WU
#undef P
	return 0;
}

static int damon_setup(struct tb_bench *b)
{
	struct damon_state *st = calloc(1, sizeof(*st));
	char avail[128];
	uint64_t nr;
	int ret;

	if (!st)
		return -ENOMEM;
	b->pstate = st;
	if (tb_read_u64(DAMON_ADMIN "/nr_kdamonds", &nr)) {
		tb_log(b, "damon: %s missing (CONFIG_DAMON_SYSFS?)", DAMON_ADMIN);
		return -ENOTSUP;
	}
	if (nr) {
		tb_log(b, "damon: %" PRIu64 " kdamonds exist already; the benchmark wants a fresh guest", nr);
		return -EBUSY;
	}
	ret = set_numa(b, "0", "true");
	if (ret)
		return ret;
	ret = tb_write_str(DAMON_ADMIN "/nr_kdamonds", "2");
	if (ret) {
		tb_log(b, "damon: nr_kdamonds: %s", strerror(-ret));
		return ret;
	}
	if (tb_read_str(DAMON_ADMIN "/0/contexts/0/avail_operations", avail,
			sizeof(avail)) == 0 && !strstr(avail, "paddr")) {
		tb_log(b, "damon: no paddr operations (%s)", avail);
		return -ENOTSUP;
	}
	/* kdamond 0: cold pages of the fast node go down; kdamond 1: hot
	 * pages of the slow node come up */
	ret = damon_config(b, 0, b->fast_node, false, b->slow_node);
	if (!ret)
		ret = damon_config(b, 1, b->slow_node, true, b->fast_node);
	if (ret) {
		if (ret == -EINVAL)
			tb_log(b, "damon: the kernel refused a value: migrate_hot/migrate_cold need Linux 6.11+");
		return ret;
	}
	{
		char path[32];

		snprintf(path, sizeof(path), "kswapd%d", b->fast_node);
		kt_begin(&st->kswapd, tb_find_kthread(path));
	}
	snprintf(b->pol_note, sizeof(b->pol_note),
		 "paddr; node%d migrate_cold->%d nr_accesses=0 age>=%d aggr; node%d migrate_hot->%d nr_accesses>=%d; sample=%dus aggr=%dus regions=%d..%d quota=%lluMiB/%dms; demotion_enabled=1 numa_balancing=0",
		 b->fast_node, b->slow_node, DAMON_COLD_MIN_AGE, b->slow_node,
		 b->fast_node, DAMON_HOT_MIN_ACC, DAMON_SAMPLE_US,
		 DAMON_AGGR_US, DAMON_MIN_REGIONS, DAMON_MAX_REGIONS,
		 DAMON_QUOTA_BYTES >> 20, DAMON_QUOTA_RESET_MS);
	return 0;
}

static int damon_start(struct tb_bench *b)
{
	struct damon_state *st = b->pstate;

	for (int kd = 0; kd < 2; kd++) {
		char path[128];
		uint64_t pid = 0;
		int ret = kd_write(b, kd, "state", "on");

		if (ret)
			return ret;
		snprintf(path, sizeof(path), DAMON_ADMIN "/%d/pid", kd);
		tb_read_u64(path, &pid);
		kt_begin(&st->kd[kd], (pid_t)pid);
	}
	st->kswapd.base = task_s(st->kswapd.pid, 0);
	st->on = true;
	return 0;
}

static double damon_cpu(struct tb_bench *b)
{
	struct damon_state *st = b->pstate;

	return kt_delta(&st->kd[0]) + kt_delta(&st->kd[1]) +
	       kt_delta(&st->kswapd);
}

static void damon_stop(struct tb_bench *b)
{
	struct damon_state *st = b->pstate;

	if (st && st->on) {
		kd_write(b, 0, "state", "off");
		kd_write(b, 1, "state", "off");
	}
	tb_write_str(DAMON_ADMIN "/nr_kdamonds", "0");
	set_numa(b, "0", "false");
	free(st);
	b->pstate = NULL;
}

/* ---- tiermm ---- */

#ifdef TB_TIERMM
#include <dirent.h>
#include <tiermm/place.h>

struct tm_state {
	struct tiermm_runtime *rt;
	const char *backend;
	/* CPU of the process's threads other than main and the workers (the
	 * runtime's), and of kdamonds (its damon backend), at start */
	double threads0, kd0;
};

/* CPU of our threads that are not the benchmark's: the runtime's. */
static double runtime_threads_s(struct tb_bench *b)
{
	char dir[64];
	DIR *d;
	struct dirent *de;
	double sum = 0;

	snprintf(dir, sizeof(dir), "/proc/%d/task", b->pid);
	d = opendir(dir);
	if (!d)
		return 0;
	while ((de = readdir(d))) {
		pid_t tid = (pid_t)atoi(de->d_name);
		bool ours = tid <= 0 || tid == b->main_tid;

		for (int i = 0; i < b->nthreads && !ours; i++)
			ours = b->workers[i].tid == tid;
		if (!ours)
			sum += task_s(b->pid, tid);
	}
	closedir(d);
	return sum;
}

/* CPU of every kdamond thread (tiermm's damon backend starts one). */
static double kdamonds_s(void)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	double sum = 0;

	while (d && (de = readdir(d))) {
		char path[300], comm[64];

		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/comm", de->d_name);
		if (!tb_read_str(path, comm, sizeof(comm)) &&
		    !strncmp(comm, "kdamond", 7))
			sum += task_s((pid_t)atoi(de->d_name), 0);
	}
	if (d)
		closedir(d);
	return sum;
}

static int tm_setup(struct tb_bench *b, const char *backend)
{
	struct tm_state *st = calloc(1, sizeof(*st));

	if (!st)
		return -ENOMEM;
	st->backend = backend;
	b->pstate = st;
	/* only tiermm moves pages */
	return set_numa(b, "0", "false");
}

static int tm_setup_scan(struct tb_bench *b)
{
	return tm_setup(b, "scan");
}

static int tm_setup_damon(struct tb_bench *b)
{
	return tm_setup(b, "damon");
}

static int tm_start(struct tb_bench *b)
{
	struct tm_state *st = b->pstate;
	struct tiermm_runtime_opts opts = {
		.sz = sizeof(opts),
		.backend = st->backend,
		.budget_bytes = (uint64_t)b->fast_pages * TB_PAGE,
		.cpu_quota = b->tm_quota > 0 ? b->tm_quota : 0,
		.flags = b->tm_quota == 0 ? TIERMM_RUNTIME_NO_CPU_QUOTA : 0,
		.backoff_max = b->tm_backoff,
	};
	struct tiermm_runtime_stats rs = { .sz = sizeof(rs) };
	int ret;

	/* the benchmark's own memory is not the workload's: keep the
	 * engine off it, as the kernel's tiering is kept off it by its
	 * binding (main.c) */
	ret = tiermm_hint(b->meta, b->meta_len, TIERMM_HINT_NO_MIGRATE, 0);
	if (ret)
		tb_log(b, "tiermm_hint(NO_MIGRATE) of the metadata: %s",
		       strerror(-ret));
	st->threads0 = runtime_threads_s(b);
	st->kd0 = kdamonds_s();
	ret = tiermm_runtime_start(&opts, &st->rt);
	if (ret) {
		tb_log(b, "tiermm_runtime_start(backend %s): %s: %s",
		       st->backend, strerror(-ret), tiermm_errmsg());
		return ret;
	}
	if (!tiermm_runtime_stats(st->rt, &rs))
		snprintf(b->pol_note, sizeof(b->pol_note),
			 "backend=%s budget=%zu pages (%s) numa_balancing=0 demotion_enabled=0",
			 rs.backend, b->fast_pages, rs.backend_why);
	return 0;
}

static double tm_cpu(struct tb_bench *b)
{
	struct tm_state *st = b->pstate;
	struct tiermm_runtime_stats rs = { .sz = sizeof(rs) };
	double v = runtime_threads_s(b) - st->threads0 +
		   (strcmp(st->backend, "damon") ? 0 : kdamonds_s() - st->kd0);

	/* threads that ended (a failed runtime) are gone from /proc: the
	 * runtime's own accounting then */
	if (st->rt && !tiermm_runtime_stats(st->rt, &rs) &&
	    rs.cpu_sampling_s + rs.cpu_classify_s + rs.cpu_migrate_s > v)
		v = rs.cpu_sampling_s + rs.cpu_classify_s + rs.cpu_migrate_s;

	return v > 0 ? v : 0;
}

static void tm_describe(struct tb_bench *b, char *buf, size_t len)
{
	struct tm_state *st = b->pstate;
	struct tiermm_runtime_stats rs = { .sz = sizeof(rs) };

	if (!st || !st->rt || tiermm_runtime_stats(st->rt, &rs)) {
		snprintf(buf, len, "no runtime stats");
		return;
	}
	snprintf(buf, len,
		 "runtime: epochs %llu promoted %llu demoted %llu failed %llu hot_set %llu KiB fast %llu KiB samples %llu ranges %llu splits %llu merges %llu rate_limited %llu quota_limited %llu",
		 (unsigned long long)rs.epochs,
		 (unsigned long long)rs.promoted_pages,
		 (unsigned long long)rs.demoted_pages,
		 (unsigned long long)rs.failed_pages,
		 (unsigned long long)rs.hot_set_bytes >> 10,
		 (unsigned long long)rs.fast_bytes >> 10,
		 (unsigned long long)rs.samples,
		 (unsigned long long)rs.ranges,
		 (unsigned long long)rs.splits,
		 (unsigned long long)rs.merges,
		 (unsigned long long)rs.rate_limited,
		 (unsigned long long)rs.quota_limited);
}

static void tm_stop(struct tb_bench *b)
{
	struct tm_state *st = b->pstate;

	if (st && st->rt) {
		struct tiermm_runtime_stats rs = { .sz = sizeof(rs) };

		if (!tiermm_runtime_stats(st->rt, &rs))
			snprintf(b->pol_final, sizeof(b->pol_final), "backend %s state %d epochs %llu promoted %llu demoted %llu failed %llu hot_set %llu KiB budget %llu KiB fast %llu KiB samples %llu lost %llu ranges %llu cpu sampling %.2f s classify %.2f s migrate %.2f s pace 1/%u slow_epochs %llu scan_window %.1f ms%s%s",
			       rs.backend, rs.state,
			       (unsigned long long)rs.epochs,
			       (unsigned long long)rs.promoted_pages,
			       (unsigned long long)rs.demoted_pages,
			       (unsigned long long)rs.failed_pages,
			       (unsigned long long)rs.hot_set_bytes >> 10,
			       (unsigned long long)rs.budget_bytes >> 10,
			       (unsigned long long)rs.fast_bytes >> 10,
			       (unsigned long long)rs.samples,
			       (unsigned long long)rs.samples_lost,
			       (unsigned long long)rs.ranges,
			       rs.cpu_sampling_s, rs.cpu_classify_s,
			       rs.cpu_migrate_s, rs.backoff,
			       (unsigned long long)rs.backoff_epochs, rs.scan_window_ms,
			       rs.error ? " error: " : "",
			       rs.error ? rs.error_msg : "");
		if (rs.state == TIERMM_RUNTIME_FAILED)
			b->pol_failed = true;
		tiermm_runtime_stop(st->rt);
	}
	free(st);
	b->pstate = NULL;
}

#define TB_TIERMM_POLICIES \
	{ "tiermm-scan", tm_setup_scan, tm_start, tm_cpu, \
	  "the tiermm runtime's threads (sampler with the scanner's ioctls, engine, migration)", \
	  tm_stop, tm_describe }, \
	{ "tiermm-damon", tm_setup_damon, tm_start, tm_cpu, \
	  "the tiermm runtime's threads + kdamond", tm_stop, tm_describe },
#endif

/* ---- table ---- */

static const struct tb_policy_ops policies[] = {
	{ "first-touch", ft_setup, ft_start, ft_cpu, "nothing runs", ft_stop, NULL },
	{ "tpp", tpp_setup, tpp_start, tpp_cpu,
	  "workers' system time (hinting faults, scanning, promotion) + kswapd (demotion); kernel NUMA balancing cannot be isolated exactly",
	  tpp_stop, NULL },
	{ "damon", damon_setup, damon_start, damon_cpu,
	  "both kdamonds + kswapd (kernel demotion)", damon_stop, NULL },
#ifdef TB_TIERMM
	TB_TIERMM_POLICIES
#endif
};

const struct tb_policy_ops *tb_policy_find(const char *name)
{
	for (size_t i = 0; i < sizeof(policies) / sizeof(policies[0]); i++)
		if (!strcmp(policies[i].name, name))
			return &policies[i];
	return NULL;
}

const char *tb_policy_names(void)
{
	static char buf[256];

	if (!buf[0]) {
		for (size_t i = 0; i < sizeof(policies) / sizeof(policies[0]); i++) {
			if (i)
				strcat(buf, ",");
			strcat(buf, policies[i].name);
		}
	}
	return buf;
}
