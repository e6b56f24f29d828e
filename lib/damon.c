// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Hotness backend "damon": the kernel's DAMON with virtual-address
 * operations on the managed process, through its sysfs interface
 * (/sys/kernel/mm/damon/admin, Documentation/admin-guide/mm/damon/usage.rst
 * of Linux 6.12). Root only: the files are 0600.
 *
 * Setup (open()): one kdamond with one context: operations vaddr, one
 * target (the pid), monitoring intervals sample 5 ms / aggregation 100 ms /
 * update 1 s (DAMON's own defaults: nr_accesses then ranges 0..20 per
 * aggregation, the engine's 500 ms epoch sees 5 aggregations, and kdamond's
 * cost, one accessed-bit check per region per sample, stays at 200k checks
 * per second at most with 10..1000 regions), and one DAMOS scheme with
 * action "stat" (does nothing to memory) whose access pattern takes every
 * region with nr_accesses >= 1 (a region never seen accessed carries no
 * observation, so zero-access regions need not be materialised as sysfs
 * directories). Then "on".
 *
 * Reading: writing update_schemes_tried_regions to the kdamond's state
 * makes DAMON fill schemes/0/tried_regions/<N>/{start,end,nr_accesses,age}
 * during the scheme's next apply interval (= the aggregation interval); the
 * write sleeps until then (mm/damon/sysfs.c damon_sysfs_handle_cmd() polls
 * every 100 ms), 100-200 ms. poll() must not block that long, so a helper
 * thread does update + read in a loop, one snapshot per two aggregation
 * intervals (the kdamond holds DAMON's global sysfs lock while it fills
 * the directories; other tools' state commands fail with EBUSY meanwhile),
 * and queues the observations; poll() only drains the queue.
 * Each region with nr_accesses n > 0 becomes a TIERMM__OBS_RANGE
 * observation of its pages with hits = n (DAMON's moving average of the
 * sampling intervals per aggregation in which the region was accessed).
 *
 * Slots, without disturbing anyone: in 6.12, writing nr_kdamonds removes
 * every kdamond directory and creates fresh ones, and fails with EBUSY while
 * any kdamond runs (damon_sysfs_kdamonds_add_dirs()). So a kdamond can only
 * be added when there is none: with nr_kdamonds 0 we write 1 and, at close,
 * 0 again. With kdamonds present, we take one that is off and has no
 * context (an unconfigured slot) and at close give it back that way
 * (nr_contexts 0); if there is none, open() fails with EBUSY rather than
 * wiping other users' configurations. tiermm instances serialise these
 * steps with a process mutex and an flock on /run/tiermm-damon.lock.
 *
 * CPU: cpu_ns() = the helper thread's CPU time + the kdamond thread's
 * (/proc/<kdamond pid>/schedstat, else stat), both outside the caller.
 *
 * Tested in the VM rig as root (tests/vm/guest/check-backends.sh); unit
 * tests drive the sysfs protocol against a fake tree (cfg->fsroot), where
 * writes only store the text.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "tiering.h"

#define ADMIN "/sys/kernel/mm/damon/admin"
#define KDAMONDS ADMIN "/kdamonds"
#define LOCK_FILE "/run/tiermm-damon.lock"

#define DEF_SAMPLE_US 5000
#define AGGR_PER_SAMPLE 20
#define UPDATE_US 1000000
#define MIN_REGIONS 10
#define MAX_REGIONS 1000
#define QUEUE_MAX 65536		/* observations waiting for poll() */
#define BUSY_TRIES 50		/* EBUSY retries, 10 ms apart */
#define PAGE 4096ull

struct tiermm__backend {
	struct tiermm__fs fs;
	char dir[160];		/* KDAMONDS "/<slot>" */
	int slot;
	bool created;		/* we made nr_kdamonds 0 -> 1 */
	bool on;
	pid_t target;
	uint64_t sample_us, aggr_us;
	pid_t kdamond_pid;
	uint64_t kdamond_ns;	/* last value read (kept after it exits) */

	pthread_t thread;
	bool thread_started;
	pthread_mutex_t lock;	/* everything below */
	bool stop;
	int thread_err;		/* -ESRCH: kdamond stopped (target gone) */
	struct tiermm__obs *q;
	size_t nq, capq;
	uint64_t thread_ns;
	struct tiermm__backend_stats st;
};

static pthread_mutex_t setup_lock = PTHREAD_MUTEX_INITIALIZER;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_ns(uint64_t ns)
{
	struct timespec ts = { .tv_sec = (time_t)(ns / 1000000000ull),
			       .tv_nsec = (long)(ns % 1000000000ull) };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* Write val to a sysfs file below the root. 0 or -errno; errno kept. */
static int fs_write(const struct tiermm__fs *fs, const char *path,
		    const char *val)
{
	char full[PATH_MAX];
	size_t len = strlen(val), done = 0;
	int fd, ret = 0, saved = errno;

	if (tiermm__fs_path(fs, path, full, sizeof(full)))
		return -ENAMETOOLONG;
	fd = open(full, O_WRONLY | O_TRUNC | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		errno = saved;
		return ret;
	}
	while (done < len) {
		ssize_t n = write(fd, val + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			ret = n < 0 ? -errno : -EIO;
			break;
		}
		done += (size_t)n;
	}
	if (close(fd) && !ret)
		ret = -errno;
	errno = saved;
	return ret;
}

/* fs_write below the kdamond's directory, EBUSY retried. */
static int kd_write(struct tiermm__backend *b, const char *rel, const char *val)
{
	char path[PATH_MAX];
	int ret;

	snprintf(path, sizeof(path), "%s/%s", b->dir, rel);
	for (int i = 0;; i++) {
		ret = fs_write(&b->fs, path, val);
		if (ret != -EBUSY || i >= BUSY_TRIES)
			return ret;
		sleep_ns(10000000);
	}
}

static int kd_write_u64(struct tiermm__backend *b, const char *rel, uint64_t v)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%" PRIu64, v);
	return kd_write(b, rel, buf);
}

static ssize_t kd_read(struct tiermm__backend *b, const char *rel, char *buf,
		       size_t len)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", b->dir, rel);
	return tiermm__fs_read(&b->fs, path, buf, len);
}

static bool is_live(const struct tiermm__fs *fs)
{
	return tiermm__fs_is_live(fs);
}

/* CONFIG_DAMON_VADDR from /boot/config-<release>: 1 yes, 0 no, -1 unknown. */
static int config_vaddr(const struct tiermm__fs *fs)
{
	char rel[128], path[256], line[256], full[PATH_MAX];
	int ret = 0, saved = errno;
	FILE *f;

	if (tiermm__fs_read(fs, "/proc/sys/kernel/osrelease", rel, sizeof(rel)) <= 0)
		return -1;
	snprintf(path, sizeof(path), "/boot/config-%s", rel);
	if (tiermm__fs_path(fs, path, full, sizeof(full)))
		return -1;
	f = fopen(full, "re");
	if (!f) {
		errno = saved;
		return -1;
	}
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "CONFIG_DAMON_VADDR=y", 20))
			ret = 1;
	fclose(f);
	errno = saved;
	return ret;
}

static bool numeric(const char *s)
{
	return s[0] >= '0' && s[0] <= '9';
}

/*
 * What the kdamonds directory says: *nr kdamonds, *free the first slot that
 * is off and has no context (-1 if none), ops the avail_operations of the
 * first existing context ("" if none).
 */
static int survey(const struct tiermm__fs *fs, uint64_t *nr, int *free_slot,
		  char *ops, size_t opslen)
{
	char path[256], buf[64];
	int ret;

	*free_slot = -1;
	ops[0] = '\0';
	ret = tiermm__fs_read_u64(fs, KDAMONDS "/nr_kdamonds", nr);
	if (ret)
		return ret;
	for (uint64_t k = 0; k < *nr && k < 1024; k++) {
		uint64_t nctx = 0;

		snprintf(path, sizeof(path), KDAMONDS "/%" PRIu64 "/contexts/nr_contexts", k);
		if (tiermm__fs_read_u64(fs, path, &nctx))
			continue;
		if (nctx && !ops[0]) {
			snprintf(path, sizeof(path),
				 KDAMONDS "/%" PRIu64 "/contexts/0/avail_operations", k);
			if (tiermm__fs_read(fs, path, ops, opslen) < 0)
				ops[0] = '\0';
		}
		snprintf(path, sizeof(path), KDAMONDS "/%" PRIu64 "/state", k);
		if (tiermm__fs_read(fs, path, buf, sizeof(buf)) < 0)
			continue;
		if (!nctx && !strcmp(buf, "off") && *free_slot < 0)
			*free_slot = (int)k;
	}
	return 0;
}

static bool word_in(const char *list, const char *word)
{
	size_t n = strlen(word);

	for (const char *p = list; (p = strstr(p, word)); p += n)
		if ((p == list || p[-1] == ' ' || p[-1] == '\n') &&
		    (!p[n] || p[n] == ' ' || p[n] == '\n'))
			return true;
	return false;
}

static int damon_usable(const struct tiermm__backend_cfg *cfg, char *why,
			size_t whylen)
{
	struct tiermm__fs fs;
	char ops[128], path[PATH_MAX], proc[32];
	uint64_t nr;
	int free_slot, vaddr;
	pid_t pid = cfg->pid ? cfg->pid : getpid();

	if (tiermm__fs_init(&fs, cfg->fsroot))
		return tiermm__backend_why(why, whylen, "damon: bad fsroot");
	if (!tiermm__fs_exists(&fs, KDAMONDS "/nr_kdamonds"))
		return tiermm__backend_why(why, whylen,
					   "damon: no %s (kernel without CONFIG_DAMON_SYSFS)",
					   KDAMONDS);
	if (is_live(&fs) && (tiermm__fs_path(&fs, KDAMONDS "/nr_kdamonds", path,
					     sizeof(path)) ||
			     access(path, W_OK)))
		return tiermm__backend_why(why, whylen,
					   "damon: %s is not writable: DAMON's sysfs interface is for root",
					   KDAMONDS "/nr_kdamonds");
	if (survey(&fs, &nr, &free_slot, ops, sizeof(ops)))
		return tiermm__backend_why(why, whylen,
					   "damon: cannot read %s/nr_kdamonds", KDAMONDS);
	if (ops[0]) {
		if (!word_in(ops, "vaddr"))
			return tiermm__backend_why(why, whylen,
						   "damon: the kernel's DAMON operations are '%s', without vaddr",
						   ops);
		vaddr = 1;
	} else {
		vaddr = config_vaddr(&fs);
		if (vaddr == 0)
			return tiermm__backend_why(why, whylen,
						   "damon: the kernel config lacks CONFIG_DAMON_VADDR");
	}
	if (nr && free_slot < 0)
		return tiermm__backend_why(why, whylen,
					   "damon: all %" PRIu64 " kdamonds are in use, and Linux 6.12 can add one only by rewriting nr_kdamonds, which would remove them",
					   nr);
	snprintf(proc, sizeof(proc), "/proc/%d", (int)pid);
	if (is_live(&fs) && !tiermm__fs_exists(&fs, proc))
		return tiermm__backend_why(why, whylen, "damon: pid %d: no such process",
					   (int)pid);
	tiermm__backend_why(why, whylen,
			    "damon: vaddr %s; %s",
			    vaddr > 0 ? "available" : "support unknown until open() creates a context (no context to read, no kernel config)",
			    nr ? "a free kdamond slot exists" : "a kdamond will be created");
	return 1;
}

/* ---- The helper thread ------------------------------------------------- */

struct region {
	uint64_t start, end, nr_accesses;
};

static int read_regions(struct tiermm__backend *b, struct tiermm__obs **out,
			size_t *nout, uint64_t *nregions)
{
	char dir[256], path[600];
	struct tiermm__obs *o = NULL, *tmp;
	size_t n = 0, cap = 0;
	uint64_t now = now_ns();
	struct dirent *d;
	DIR *dd;

	snprintf(dir, sizeof(dir), "%s/contexts/0/schemes/0/tried_regions", b->dir);
	dd = tiermm__fs_opendir(&b->fs, dir);
	if (!dd)
		return -ENOENT;
	while ((d = readdir(dd))) {
		struct region r;

		if (!numeric(d->d_name))
			continue;
		snprintf(path, sizeof(path), "%s/%s/start", dir, d->d_name);
		if (tiermm__fs_read_u64(&b->fs, path, &r.start))
			continue;
		snprintf(path, sizeof(path), "%s/%s/end", dir, d->d_name);
		if (tiermm__fs_read_u64(&b->fs, path, &r.end))
			continue;
		snprintf(path, sizeof(path), "%s/%s/nr_accesses", dir, d->d_name);
		if (tiermm__fs_read_u64(&b->fs, path, &r.nr_accesses))
			continue;
		(*nregions)++;
		if (r.end <= r.start || !r.nr_accesses)
			continue;
		/* One observation per 2^32 - 1 pages (16 TiB), in practice one. */
		for (uint64_t a = r.start & ~(PAGE - 1); a < r.end;) {
			uint64_t pages = (r.end - a + PAGE - 1) / PAGE;

			if (pages > UINT32_MAX)
				pages = UINT32_MAX;
			if (n == cap) {
				cap = cap ? cap * 2 : 64;
				tmp = realloc(o, cap * sizeof(*o));
				if (!tmp) {
					free(o);
					closedir(dd);
					return -ENOMEM;
				}
				o = tmp;
			}
			o[n++] = (struct tiermm__obs){
				.addr = a,
				.weight = (uint32_t)pages,
				.hits = r.nr_accesses > UINT32_MAX ? UINT32_MAX :
								     (uint32_t)r.nr_accesses,
				.flags = TIERMM__OBS_RANGE,
				.time_ns = now,
			};
			a += pages * PAGE;
		}
	}
	closedir(dd);
	*out = o;
	*nout = n;
	return 0;
}

static bool should_stop(struct tiermm__backend *b)
{
	bool s;

	pthread_mutex_lock(&b->lock);
	s = b->stop;
	pthread_mutex_unlock(&b->lock);
	return s;
}

static void *reader(void *arg)
{
	struct tiermm__backend *b = arg;
	uint64_t aggr_ns = b->aggr_us * 1000;

	while (!should_stop(b)) {
		uint64_t t0 = now_ns(), elapsed;
		struct tiermm__obs *o = NULL;
		struct timespec cpu;
		char state[32];
		uint64_t nregions = 0;
		size_t n = 0;
		int ret;

		ret = kd_write(b, "state", "update_schemes_tried_regions");
		if (ret && ret != -EBUSY &&
		    kd_read(b, "state", state, sizeof(state)) > 0 &&
		    !strcmp(state, "off")) {
			/* kdamond stops when its target exits. */
			pthread_mutex_lock(&b->lock);
			b->thread_err = -ESRCH;
			pthread_mutex_unlock(&b->lock);
			break;
		}
		if (!ret)
			ret = read_regions(b, &o, &n, &nregions);
		clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu);
		pthread_mutex_lock(&b->lock);
		b->thread_ns = (uint64_t)cpu.tv_sec * 1000000000ull + (uint64_t)cpu.tv_nsec;
		if (!ret) {
			b->st.passes++;
			b->st.regions += nregions;
			if (b->nq + n > QUEUE_MAX) {
				b->st.dropped++;
			} else if (n) {
				if (b->nq + n > b->capq) {
					size_t cap = (b->nq + n) * 2;
					struct tiermm__obs *q = realloc(b->q, cap * sizeof(*q));

					if (q) {
						b->q = q;
						b->capq = cap;
					}
				}
				if (b->nq + n <= b->capq) {
					memcpy(b->q + b->nq, o, n * sizeof(*o));
					b->nq += n;
				} else {
					b->st.dropped++;
				}
			}
		}
		pthread_mutex_unlock(&b->lock);
		free(o);
		/*
		 * One snapshot per two aggregation intervals: while DAMON fills
		 * tried_regions, the kdamond holds the global damon_sysfs_lock
		 * (about one apply interval), and every other writer of a
		 * kdamond's state file gets EBUSY meanwhile; the pause leaves
		 * the lock free at least half of the time.
		 */
		elapsed = now_ns() - t0;
		while (elapsed < 2 * aggr_ns && !should_stop(b)) {
			uint64_t step = 2 * aggr_ns - elapsed;

			sleep_ns(step > 10000000 ? 10000000 : step);
			elapsed = now_ns() - t0;
		}
	}
	return NULL;
}

/* ---- Setup and teardown -------------------------------------------------- */

static int lock_file(const struct tiermm__fs *fs)
{
	char path[PATH_MAX];
	int fd, saved = errno;

	if (tiermm__fs_path(fs, LOCK_FILE, path, sizeof(path)))
		return -1;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd >= 0 && flock(fd, LOCK_EX)) {
		close(fd);
		fd = -1;
	}
	errno = saved;
	return fd;
}

static void unlock_file(int fd)
{
	if (fd >= 0)
		close(fd);	/* releases the flock */
}

/* Undo what open() did; the caller holds the setup locks. */
static void teardown(struct tiermm__backend *b)
{
	uint64_t nr = 0;

	if (b->on) {
		kd_write(b, "state", "off");
		b->on = false;
	}
	if (b->created && !tiermm__fs_read_u64(&b->fs, KDAMONDS "/nr_kdamonds", &nr) &&
	    nr == 1) {
		fs_write(&b->fs, KDAMONDS "/nr_kdamonds", "0");
		return;
	}
	/* Leave an unconfigured slot, as we found it. */
	kd_write(b, "contexts/nr_contexts", "0");
}

static int configure(struct tiermm__backend *b)
{
	static const struct {
		const char *rel;
		const char *val;
	} scheme[] = {
		{ "action", "stat" },
		{ "access_pattern/sz/min", "0" },
		{ "access_pattern/sz/max", "18446744073709551615" },
		{ "access_pattern/nr_accesses/max", "4294967295" },
		{ "access_pattern/nr_accesses/min", "1" },
		{ "access_pattern/age/min", "0" },
		{ "access_pattern/age/max", "4294967295" },
	};
	char ops[128], rel[160];
	int ret;

	ret = kd_write(b, "contexts/nr_contexts", "1");
	if (ret)
		return tiermm__fail(-ret, "damon backend: creating a context in %s: %s",
				    b->dir, strerror(-ret));
	if (kd_read(b, "contexts/0/avail_operations", ops, sizeof(ops)) < 0)
		ops[0] = '\0';
	if (!word_in(ops, "vaddr"))
		return tiermm__fail(ENOTSUP,
				    "damon backend: the kernel's DAMON operations are '%s', without vaddr",
				    ops);
	ret = kd_write(b, "contexts/0/operations", "vaddr");
	if (!ret)
		ret = kd_write_u64(b, "contexts/0/monitoring_attrs/intervals/sample_us",
				   b->sample_us);
	if (!ret)
		ret = kd_write_u64(b, "contexts/0/monitoring_attrs/intervals/aggr_us",
				   b->aggr_us);
	if (!ret)
		ret = kd_write_u64(b, "contexts/0/monitoring_attrs/intervals/update_us",
				   UPDATE_US > b->aggr_us ? UPDATE_US : b->aggr_us);
	if (!ret)
		ret = kd_write_u64(b, "contexts/0/monitoring_attrs/nr_regions/max",
				   MAX_REGIONS);
	if (!ret)
		ret = kd_write_u64(b, "contexts/0/monitoring_attrs/nr_regions/min",
				   MIN_REGIONS);
	if (!ret)
		ret = kd_write(b, "contexts/0/targets/nr_targets", "1");
	if (!ret)
		ret = kd_write_u64(b, "contexts/0/targets/0/pid_target",
				   (uint64_t)b->target);
	if (!ret)
		ret = kd_write(b, "contexts/0/schemes/nr_schemes", "1");
	for (size_t i = 0; !ret && i < TIERMM__ARRAY_SIZE(scheme); i++) {
		snprintf(rel, sizeof(rel), "contexts/0/schemes/0/%s", scheme[i].rel);
		ret = kd_write(b, rel, scheme[i].val);
	}
	if (ret)
		return tiermm__fail(-ret, "damon backend: configuring %s: %s",
				    b->dir, strerror(-ret));
	ret = kd_write(b, "state", "on");
	if (ret)
		return tiermm__fail(-ret,
				    "damon backend: starting %s for pid %d failed: %s",
				    b->dir, (int)b->target, strerror(-ret));
	b->on = true;
	{
		char buf[32];
		uint64_t kpid;

		if (kd_read(b, "pid", buf, sizeof(buf)) > 0 &&
		    sscanf(buf, "%" SCNu64, &kpid) == 1)
			b->kdamond_pid = (pid_t)kpid;
	}
	return 0;
}

static void damon_close(struct tiermm__backend *b)
{
	int lfd;

	if (!b)
		return;
	if (b->thread_started) {
		pthread_mutex_lock(&b->lock);
		b->stop = true;
		pthread_mutex_unlock(&b->lock);
		pthread_join(b->thread, NULL);
	}
	pthread_mutex_lock(&setup_lock);
	lfd = lock_file(&b->fs);
	teardown(b);
	unlock_file(lfd);
	pthread_mutex_unlock(&setup_lock);
	pthread_mutex_destroy(&b->lock);
	free(b->q);
	free(b);
}

static int damon_open(const struct tiermm__backend_cfg *cfg,
		      struct tiermm__backend **out)
{
	struct tiermm__backend *b;
	char ops[128], why[512];
	uint64_t nr;
	int ret, free_slot, lfd;

	*out = NULL;
	if (cfg->pid < 0)
		return tiermm__fail(EINVAL, "damon backend: pid %d is negative",
				    (int)cfg->pid);
	if (!damon_usable(cfg, why, sizeof(why)))
		return tiermm__fail(strstr(why, "in use") ? EBUSY :
				    strstr(why, "writable") ? EACCES :
				    strstr(why, "no such") ? ESRCH : ENOTSUP,
				    "damon backend: %s", why + strlen("damon: "));
	b = calloc(1, sizeof(*b));
	if (!b)
		return tiermm__fail(ENOMEM, "damon backend: out of memory");
	pthread_mutex_init(&b->lock, NULL);
	tiermm__fs_init(&b->fs, cfg->fsroot);
	b->target = cfg->pid ? cfg->pid : getpid();
	b->sample_us = cfg->interval_us ? cfg->interval_us : DEF_SAMPLE_US;
	b->aggr_us = b->sample_us * AGGR_PER_SAMPLE;
	b->slot = -1;

	pthread_mutex_lock(&setup_lock);
	lfd = lock_file(&b->fs);
	ret = survey(&b->fs, &nr, &free_slot, ops, sizeof(ops));
	if (ret) {
		ret = tiermm__fail(-ret, "damon backend: cannot read %s/nr_kdamonds",
				   KDAMONDS);
	} else if (!nr) {
		ret = fs_write(&b->fs, KDAMONDS "/nr_kdamonds", "1");
		if (ret)
			ret = tiermm__fail(-ret, "damon backend: creating a kdamond: %s",
					   strerror(-ret));
		b->created = !ret;
		b->slot = 0;
	} else if (free_slot >= 0) {
		b->slot = free_slot;
	} else {
		ret = tiermm__fail(EBUSY,
				   "damon backend: all %" PRIu64 " kdamonds are in use; not rewriting nr_kdamonds, which would remove them",
				   nr);
	}
	if (!ret) {
		snprintf(b->dir, sizeof(b->dir), KDAMONDS "/%d", b->slot);
		ret = configure(b);
		if (ret)
			teardown(b);
	}
	unlock_file(lfd);
	pthread_mutex_unlock(&setup_lock);
	if (ret) {
		b->created = false;
		b->on = false;
		pthread_mutex_destroy(&b->lock);
		free(b);
		return ret;
	}
	ret = pthread_create(&b->thread, NULL, reader, b);
	if (ret) {
		damon_close(b);
		return tiermm__fail(ret, "damon backend: cannot start its thread: %s",
				    strerror(ret));
	}
	b->thread_started = true;
	tiermm__log(TIERMM_LOG_INFO,
		    "damon backend: kdamond %d (pid %d) monitors pid %d, sample %" PRIu64 " us, aggregation %" PRIu64 " us",
		    b->slot, (int)b->kdamond_pid, (int)b->target, b->sample_us,
		    b->aggr_us);
	*out = b;
	return 0;
}

static int damon_poll(struct tiermm__backend *b, tiermm__obs_sink sink, void *ctx)
{
	struct tiermm__obs *q;
	size_t n;
	int err, ret = 0;

	pthread_mutex_lock(&b->lock);
	b->st.polls++;
	q = b->q;
	n = b->nq;
	err = b->thread_err;
	b->q = NULL;
	b->nq = 0;
	b->capq = 0;
	b->st.observations += n;
	pthread_mutex_unlock(&b->lock);
	for (size_t i = 0; i < n && !ret; i += 256)
		ret = sink(q + i, n - i < 256 ? n - i : 256, ctx);
	free(q);
	if (ret < 0)
		return ret;
	if (!n && err == -ESRCH)
		return tiermm__fail(ESRCH,
				    "damon backend: kdamond %d stopped (pid %d exited)",
				    b->slot, (int)b->target);
	return 0;
}

static uint64_t damon_cpu_ns(struct tiermm__backend *b)
{
	char path[64], buf[512];
	uint64_t t, kd = 0;

	if (b->kdamond_pid > 0) {
		snprintf(path, sizeof(path), "/proc/%d/schedstat", (int)b->kdamond_pid);
		if (tiermm__fs_read(&b->fs, path, buf, sizeof(buf)) > 0 &&
		    sscanf(buf, "%" SCNu64, &kd) == 1) {
			/* on-CPU time, ns */
		} else {
			unsigned long long ut = 0, stime = 0;
			char *p;

			snprintf(path, sizeof(path), "/proc/%d/stat", (int)b->kdamond_pid);
			kd = 0;
			if (tiermm__fs_read(&b->fs, path, buf, sizeof(buf)) > 0 &&
			    (p = strrchr(buf, ')')) &&
			    sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
				   &ut, &stime) == 2)
				kd = (ut + stime) * (1000000000ull / (uint64_t)sysconf(_SC_CLK_TCK));
		}
	}
	pthread_mutex_lock(&b->lock);
	if (kd > b->kdamond_ns)
		b->kdamond_ns = kd;
	t = b->kdamond_ns + b->thread_ns;
	pthread_mutex_unlock(&b->lock);
	return t;
}

static void damon_stats(struct tiermm__backend *b, struct tiermm__backend_stats *s)
{
	pthread_mutex_lock(&b->lock);
	*s = b->st;
	pthread_mutex_unlock(&b->lock);
}

const struct tiermm__backend_ops tiermm__damon_backend = {
	.name = "damon",
	.usable = damon_usable,
	.open = damon_open,
	.poll = damon_poll,
	.cpu_ns = damon_cpu_ns,
	.stats = damon_stats,
	.close = damon_close,
};
