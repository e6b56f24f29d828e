// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Page tables through tiermm.ko: statistics, dumps, migration and the
 * accessed-bit scanner (TIERMM_CMD_PT_STAT, _PT_DUMP, _PT_MIGRATE, _AB_SCAN
 * of <linux/tiermm.h>, API version 2; with API 3 PT_STAT also counts
 * page-table replicas).
 *
 * Every call validates its arguments first, then gets the module (the
 * handshake is made once per process and kept), then, for the whole-process
 * mode, reads the target's mappings, and only then asks the kernel.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <linux/tiermm.h>

#include "internal.h"

/* The uapi as this library was written against it. */
_Static_assert(sizeof(struct tiermm_get_api) == TIERMM_GET_API_SIZE_VER0,
	       "struct tiermm_get_api size");
_Static_assert(sizeof(struct tiermm_pt_stat) == TIERMM_PT_STAT_SIZE_VER0,
	       "struct tiermm_pt_stat size");
_Static_assert(sizeof(struct tiermm_pt_dump) == TIERMM_PT_DUMP_SIZE_VER0,
	       "struct tiermm_pt_dump size");
_Static_assert(sizeof(struct tiermm_pt_dump_rec) == 32,
	       "struct tiermm_pt_dump_rec header size");
_Static_assert(sizeof(struct tiermm_pt_migrate) == TIERMM_PT_MIGRATE_SIZE_VER0,
	       "struct tiermm_pt_migrate size");
_Static_assert(sizeof(struct tiermm_ab_scan) == TIERMM_AB_SCAN_SIZE_VER0,
	       "struct tiermm_ab_scan size");
_Static_assert(sizeof(struct tiermm_pt_stat_repl) == 72,
	       "struct tiermm_pt_stat_repl size");
/* The public names are the module's numbers. */
_Static_assert(TIERMM_PT_LEVEL_PTE == TIERMM_PT_PTE &&
	       TIERMM_PT_LEVEL_PMD == TIERMM_PT_PMD &&
	       TIERMM_PT_LEVEL_PUD == TIERMM_PT_PUD &&
	       TIERMM_PT_LEVEL_PGD == TIERMM_PT_PGD &&
	       TIERMM_PT_LEVEL__COUNT == TIERMM_PT_NR_LEVELS, "levels");
_Static_assert(TIERMM_PT_LEVELS_PTE == TIERMM_PT_MIGRATE_PTE &&
	       TIERMM_PT_LEVELS_PMD == TIERMM_PT_MIGRATE_PMD &&
	       TIERMM_PT_LEVELS_PUD == TIERMM_PT_MIGRATE_PUD &&
	       TIERMM_PT_LEVELS_ALL == TIERMM_PT_MIGRATE_ALL, "level bits");
_Static_assert(TIERMM_PT_SKIP_ALREADY == TIERMM_SKIP_ALREADY &&
	       TIERMM_PT_SKIP_NO_DATA == TIERMM_SKIP_NO_DATA &&
	       TIERMM_PT_SKIP_NOMEM == TIERMM_SKIP_NOMEM &&
	       TIERMM_PT_SKIP_HUGE == TIERMM_SKIP_HUGE &&
	       TIERMM_PT_SKIP_BUSY == TIERMM_SKIP_BUSY &&
	       TIERMM_PT_SKIP__COUNT == TIERMM_SKIP_NR, "skip reasons");
_Static_assert(TIERMM_AB_SCAN_FLUSH == TIERMM_SCAN_FLUSH &&
	       TIERMM_AB_SCAN_COUNTS == TIERMM_SCAN_COUNTS, "scan flags");

#define PT_PAGE 4096ULL
#define PT_HUGE (2ULL << 20)
/* Highest end of a user range: TASK_SIZE_MAX with 5-level paging. */
#define PT_USER_END ((1ULL << 56) - PT_PAGE)
/* x86-64 entry bits. */
#define PTE_PRESENT (1ULL << 0)
#define PTE_PSE (1ULL << 7)
#define PTE_PFN_MASK UINT64_C(0x000ffffffffff000)

/*
 * Minimum sizes of the caller's result structs: their first release (0.2.0;
 * the replica fields came later).
 */
#define PT_NODE_MIN_SZ sizeof(struct tiermm_pt_node)
#define PT_SUMMARY_MIN_SZ offsetof(struct tiermm_pt_summary, replicas)
#define PT_REPLICA_MIN_SZ sizeof(struct tiermm_pt_replica)
/* Replica records asked for first: the kernel's slots are nodes or groups (64). */
#define PT_REPL_NR_FIRST 64u
#define PT_REPL_NR_MAX 4096u
#define PT_MIGRATE_RES_MIN_SZ sizeof(struct tiermm_pt_migrate_result)
#define AB_BATCH_MIN_SZ sizeof(struct tiermm_ab_batch)

const char *tiermm_pt_level_name(enum tiermm_pt_level level)
{
	static const char *const names[] = { "pte", "pmd", "pud", "pgd" };

	if ((unsigned int)level >= TIERMM__ARRAY_SIZE(names))
		return NULL;
	return names[level];
}

const char *tiermm_pt_skip_name(enum tiermm_pt_skip reason)
{
	static const char *const names[] = { "already", "no-data", "nomem",
					     "huge", "busy" };

	if ((unsigned int)reason >= TIERMM__ARRAY_SIZE(names))
		return NULL;
	return names[reason];
}

/* ---- The module, once per process ------------------------------------ */

static int real_ioctl(int fd, unsigned long req, void *arg)
{
	return ioctl(fd, req, arg);
}

static void real_close(int fd)
{
	close(fd);
}

static const struct tiermm__pt_dev real_dev = {
	.open = tiermm__module_open,
	.ioctl = real_ioctl,
	.close = real_close,
};

/*
 * The handshake is kept for the life of the process: the descriptor, who
 * opened it and what GET_API answered. A failed open is not kept, so a
 * module loaded later is found by the next call. A forked child drops the
 * parent's descriptor (atfork handler) and opens its own; the pid check
 * catches children made without fork(3).
 */
static pthread_once_t dev_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t dev_lock = PTHREAD_MUTEX_INITIALIZER;
static const struct tiermm__pt_dev *dev_ops = &real_dev;
static int dev_fd = -1;
static pid_t dev_pid;
static struct tiermm_get_api dev_api;

static void dev_prepare(void)
{
	pthread_mutex_lock(&dev_lock);
}

static void dev_parent(void)
{
	pthread_mutex_unlock(&dev_lock);
}

static void dev_child(void)
{
	if (dev_fd >= 0)
		dev_ops->close(dev_fd);
	dev_fd = -1;
	pthread_mutex_unlock(&dev_lock);
}

static void dev_init(void)
{
	pthread_atfork(dev_prepare, dev_parent, dev_child);
}

void tiermm__pt_set_dev(const struct tiermm__pt_dev *dev)
{
	pthread_once(&dev_once, dev_init);
	pthread_mutex_lock(&dev_lock);
	if (dev_fd >= 0)
		dev_ops->close(dev_fd);
	dev_fd = -1;
	dev_ops = dev ? dev : &real_dev;
	pthread_mutex_unlock(&dev_lock);
}

struct devh {
	const struct tiermm__pt_dev *ops;
	int fd;
};

static const char *cmd_name(unsigned int cmd)
{
	switch (cmd) {
	case TIERMM_CMD_PT_STAT:
		return "PT_STAT";
	case TIERMM_CMD_PT_DUMP:
		return "PT_DUMP";
	case TIERMM_CMD_PT_MIGRATE:
		return "PT_MIGRATE";
	case TIERMM_CMD_AB_SCAN:
		return "AB_SCAN";
	}
	return "?";
}

/*
 * Get the module for command cmd: 0 with *h filled, or -ENODEV (not
 * loaded), -EPROTO (too old, or without cmd), -EACCES, ... with a message
 * that starts with what.
 */
static int dev_get_api(unsigned int cmd, const char *what, struct devh *h,
		       struct tiermm_get_api *answer)
{
	struct tiermm_get_api api;
	pid_t self = getpid();
	int fd;

	pthread_once(&dev_once, dev_init);
	pthread_mutex_lock(&dev_lock);
	if (dev_fd >= 0 && dev_pid != self) {
		dev_ops->close(dev_fd);
		dev_fd = -1;
	}
	if (dev_fd < 0) {
		fd = dev_ops->open(&api);
		if (fd < 0) {
			char msg[400];

			pthread_mutex_unlock(&dev_lock);
			snprintf(msg, sizeof(msg), "%s", tiermm_errmsg());
			return tiermm__fail(-fd, "%s: %s", what, msg);
		}
		dev_fd = fd;
		dev_pid = self;
		dev_api = api;
	}
	h->ops = dev_ops;
	h->fd = dev_fd;
	api = dev_api;
	pthread_mutex_unlock(&dev_lock);
	if (answer)
		*answer = api;

	if (api.api_version < 2)
		return tiermm__fail(EPROTO,
				    "%s: tiermm.ko speaks API version %u, this library needs version 2 (%s); load a newer tiermm.ko",
				    what, api.api_version, cmd_name(cmd));
	if (!(api.commands & (1ULL << cmd)))
		return tiermm__fail(EPROTO,
				    "%s: tiermm.ko (API version %u) does not implement %s (commands 0x%" PRIx64 "); load a complete tiermm.ko",
				    what, api.api_version, cmd_name(cmd),
				    (uint64_t)api.commands);
	return 0;
}

static int dev_get(unsigned int cmd, const char *what, struct devh *h)
{
	return dev_get_api(cmd, what, h, NULL);
}

/* ioctl through h: 0 or -errno (errno not touched), EINTR retried. */
static int dev_ioctl(const struct devh *h, unsigned long req, void *arg)
{
	int saved = errno, ret;

	do {
		ret = h->ops->ioctl(h->fd, req, arg);
	} while (ret < 0 && errno == EINTR);
	ret = ret < 0 ? -errno : 0;
	errno = saved;
	return ret;
}

static pid_t real_pid(pid_t pid)
{
	return pid ? pid : getpid();
}

/*
 * Turn the module's error for a request on pid into a message. modify: the
 * request changes the target (migration, clearing accessed bits).
 */
static int kernel_fail(int err, const char *what, pid_t pid, uint64_t start,
		       uint64_t len, bool modify, const char *einval_hint)
{
	pid = real_pid(pid);
	switch (err) {
	case ESRCH:
		return tiermm__fail(ESRCH, "%s: pid %d: no such process",
				    what, (int)pid);
	case EPERM:
	case EACCES:
		if (modify)
			return tiermm__fail(err,
					    "%s: pid %d: permission denied: it needs ptrace read access to the process and, unless it runs as the same user, CAP_SYS_NICE (the rules of move_pages(2))",
					    what, (int)pid);
		return tiermm__fail(err,
				    "%s: pid %d: permission denied: reading its page tables needs ptrace read access to the process (the rule of move_pages(2))",
				    what, (int)pid);
	case EINVAL:
		return tiermm__fail(EINVAL,
				    "%s: pid %d, range 0x%" PRIx64 "-0x%" PRIx64 ": tiermm.ko rejected the request as invalid (a kernel thread, or a range beyond the process's address space%s)",
				    what, (int)pid, start, start + len,
				    einval_hint ? einval_hint : "");
	case ENOTTY:
		return tiermm__fail(EPROTO,
				    "%s: tiermm.ko does not know the command (ENOTTY) although its handshake lists it",
				    what);
	case ENOMEM:
		return tiermm__fail(ENOMEM, "%s: pid %d: out of memory in the kernel",
				    what, (int)pid);
	case EBUSY:
		return tiermm__fail(EBUSY,
				    "%s: pid %d: its page tables are replicated (tiermm_pt_replicate), and tiermm.ko does not move replicated page tables: the kernel keeps every copy on its own node; end replication first to move the master tables",
				    what, (int)pid);
	case EOPNOTSUPP:
		return tiermm__fail(EOPNOTSUPP,
				    "%s: pid %d: tiermm.ko does not move the page tables of a process with MMU notifiers (KVM, an IOMMU sharing its page tables, HMM/ODP drivers: they may cache the old tables; refused until the process exits or execs), nor in a Xen PV guest",
				    what, (int)pid);
	default:
		return tiermm__fail(err, "%s: pid %d: %s", what, (int)pid,
				    strerror(err));
	}
}

/* ---- Arguments --------------------------------------------------------- */

static int check_pid(const char *what, pid_t pid)
{
	if (pid < 0)
		return tiermm__fail(EINVAL, "%s: pid %d is negative (0 is the calling process)",
				    what, (int)pid);
	return 0;
}

static int check_range(const char *what, uint64_t start, uint64_t len)
{
	if ((start | len) % PT_PAGE)
		return tiermm__fail(EINVAL,
				    "%s: start 0x%" PRIx64 " and len 0x%" PRIx64 " must be multiples of 4096",
				    what, start, len);
	if (!len && start)
		return tiermm__fail(EINVAL,
				    "%s: len 0 means the whole process and needs start 0 (got start 0x%" PRIx64 ")",
				    what, start);
	if (start + len < start)
		return tiermm__fail(EINVAL,
				    "%s: start 0x%" PRIx64 " + len 0x%" PRIx64 " overflows",
				    what, start, len);
	if (start + len > PT_USER_END)
		return tiermm__fail(EINVAL,
				    "%s: range end 0x%" PRIx64 " is beyond any user address space (0x%llx)",
				    what, start + len, (unsigned long long)PT_USER_END);
	return 0;
}

/* ---- Whole-process mode: the target's mappings ----------------------- */

struct pt_range {
	uint64_t start, end;
};

static int cmp_range(const void *a, const void *b)
{
	const struct pt_range *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

/* 'Z' or 'X' when pid is a zombie or dead, '?' if unknown. */
static char proc_state(pid_t pid)
{
	struct tiermm__fs fs;
	char path[64], buf[1024], *p;

	tiermm__fs_init(&fs, NULL);
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (tiermm__fs_read(&fs, path, buf, sizeof(buf)) < 0)
		return '?';
	p = strrchr(buf, ')');
	return p && p[1] == ' ' && p[2] ? p[2] : '?';
}

/*
 * Read the user mappings of pid (0: the caller) from /proc/PID/maps into a
 * sorted array of disjoint ranges, adjacent ones merged. With align, range
 * starts are rounded down to that boundary first. 0 or -errno (message).
 */
static int read_ranges(const char *what, pid_t pid, uint64_t align,
		       struct pt_range **out, size_t *nr)
{
	struct tiermm__fs fs;
	char rel[64], path[PATH_MAX];
	struct pt_range *r = NULL, *tmp;
	size_t n = 0, cap = 0, k;
	char *line = NULL;
	size_t linecap = 0;
	FILE *f;
	int err, saved = errno;

	*out = NULL;
	*nr = 0;
	tiermm__fs_init(&fs, NULL);
	if (pid)
		snprintf(rel, sizeof(rel), "/proc/%d/maps", (int)pid);
	else
		snprintf(rel, sizeof(rel), "/proc/self/maps");
	if (tiermm__fs_path(&fs, rel, path, sizeof(path)))
		return tiermm__fail(ENAMETOOLONG, "%s: path too long", what);
	f = fopen(path, "re");
	if (!f) {
		err = errno;
		errno = saved;
		if (err == ENOENT || err == ESRCH)
			return tiermm__fail(ESRCH, "%s: pid %d: no such process",
					    what, (int)pid);
		if (err == EACCES || err == EPERM)
			return tiermm__fail(EPERM,
					    "%s: pid %d: permission denied reading %s: the whole-process mode needs ptrace read access to the process",
					    what, (int)pid, path);
		return tiermm__fail(err, "%s: cannot read %s: %s", what, path,
				    strerror(err));
	}
	while (getline(&line, &linecap, f) > 0) {
		uint64_t s, e;

		if (sscanf(line, "%" SCNx64 "-%" SCNx64, &s, &e) != 2 || e <= s)
			continue;
		/* The kernel half ([vsyscall]) is no user memory. */
		if (s >= (1ULL << 63) || e > PT_USER_END)
			continue;
		if (align)
			s &= ~(align - 1);
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			tmp = realloc(r, cap * sizeof(*r));
			if (!tmp) {
				free(r);
				free(line);
				fclose(f);
				errno = saved;
				return tiermm__fail(ENOMEM, "%s: out of memory", what);
			}
			r = tmp;
		}
		r[n].start = s;
		r[n].end = e;
		n++;
	}
	err = ferror(f) ? errno : 0;
	free(line);
	fclose(f);
	errno = saved;
	if (err == ESRCH) {
		free(r);
		return tiermm__fail(ESRCH, "%s: pid %d: no such process", what,
				    (int)pid);
	}
	if (!n) {
		char st = pid ? proc_state(pid) : '?';

		free(r);
		if (st == 'Z' || st == 'X')
			return tiermm__fail(ESRCH, "%s: pid %d has exited (a zombie)",
					    what, (int)pid);
		return tiermm__fail(EINVAL,
				    "%s: pid %d has no user memory mappings (a kernel thread?)",
				    what, (int)pid);
	}
	qsort(r, n, sizeof(*r), cmp_range);
	k = 0;
	for (size_t i = 1; i < n; i++) {
		if (r[i].start <= r[k].end) {
			if (r[i].end > r[k].end)
				r[k].end = r[i].end;
		} else {
			r[++k] = r[i];
		}
	}
	*out = r;
	*nr = k + 1;
	return 0;
}

/* The whole process as one range: lowest to highest mapped address. */
static int whole_range(const char *what, pid_t pid, uint64_t *start,
		       uint64_t *len)
{
	struct pt_range *r;
	size_t n;
	int ret = read_ranges(what, pid, 0, &r, &n);

	if (ret)
		return ret;
	*start = r[0].start;
	*len = r[n - 1].end - r[0].start;
	free(r);
	return 0;
}

/* ---- Statistics ---------------------------------------------------------- */

struct tiermm_pt_stats {
	int pid;
	int whole;
	uint64_t start, len;
	unsigned int nr_nodes;
	uint64_t *tables;	/* [nr_nodes][TIERMM_PT_LEVEL__COUNT] */
	uint64_t *leaf;		/* [nr_nodes] */
	uint64_t *data;		/* [nr_nodes] */
	unsigned char *online;	/* [nr_nodes] */
	uint64_t leaf_total, data_total;
	uint64_t tables_local[TIERMM_PT_LEVEL__COUNT];
	uint64_t tables_remote[TIERMM_PT_LEVEL__COUNT];
	uint64_t tables_empty[TIERMM_PT_LEVEL__COUNT];
	uint64_t leaf_huge[TIERMM_PT_LEVEL__COUNT];
	/* Replicas by slot, [repl_nr] when the module counted them, else NULL. */
	struct tiermm_pt_stat_repl *repl;
	unsigned int repl_nr;
	int repl_count;		/* -1: the module cannot see replicas */
	int repl_groups;	/* the slots are CPU groups */
	uint64_t repl_remote;
};

/* Highest node of a sysfs node list + 1 (0 if unreadable), bits filled. */
static unsigned int node_list(const char *path, uint64_t *bits)
{
	struct tiermm__fs fs;
	char buf[4096];
	unsigned int hi = 0;

	memset(bits, 0, TIERMM__MAX_NODES / 8);
	tiermm__fs_init(&fs, NULL);
	if (tiermm__fs_read(&fs, path, buf, sizeof(buf)) < 0 ||
	    tiermm__list_parse(buf, bits, TIERMM__MAX_NODES) <= 0)
		return 0;
	for (unsigned int i = 0; i < TIERMM__MAX_NODES; i++)
		if (tiermm__bit_test(bits, i))
			hi = i + 1;
	return hi;
}

static void stats_free_arrays(struct tiermm_pt_stats *st)
{
	free(st->tables);
	free(st->leaf);
	free(st->data);
	free(st->online);
	free(st->repl);
	st->tables = st->leaf = st->data = NULL;
	st->online = NULL;
	st->repl = NULL;
}

/* nr node slots; with rnr > 0, rnr replica records. */
static int stats_alloc(struct tiermm_pt_stats *st, unsigned int nr,
		       unsigned int rnr)
{
	stats_free_arrays(st);
	st->nr_nodes = nr;
	st->repl_nr = rnr;
	st->tables = calloc((size_t)nr * TIERMM_PT_LEVEL__COUNT, sizeof(uint64_t));
	st->leaf = calloc(nr, sizeof(uint64_t));
	st->data = calloc(nr, sizeof(uint64_t));
	st->online = calloc(nr, 1);
	if (rnr)
		st->repl = calloc(rnr, sizeof(*st->repl));
	if (!st->tables || !st->leaf || !st->data || !st->online ||
	    (rnr && !st->repl))
		return -ENOMEM;
	return 0;
}

void tiermm_pt_stat_free(struct tiermm_pt_stats *stat)
{
	if (!stat)
		return;
	stats_free_arrays(stat);
	free(stat);
}

int tiermm_pt_stat(pid_t pid, uint64_t start, uint64_t len, unsigned int flags,
		   struct tiermm_pt_stats **stat)
{
	static const char what[] = "page-table statistics";
	uint64_t bits[TIERMM__MAX_NODES / 64];
	struct tiermm_get_api api;
	struct tiermm_pt_stats *st;
	struct devh h;
	unsigned int nr, rnr;
	int ret;

	if (stat)
		*stat = NULL;
	if (!stat)
		return tiermm__fail(EINVAL, "%s: stat is NULL", what);
	if (flags)
		return tiermm__fail(EINVAL, "%s: flags must be 0 (got 0x%x)",
				    what, flags);
	ret = check_pid(what, pid);
	if (!ret)
		ret = check_range(what, start, len);
	if (!ret)
		ret = dev_get_api(TIERMM_CMD_PT_STAT, what, &h, &api);
	if (ret)
		return ret;
	/* Replicas: a module of API 3 counts them if it was built to. */
	rnr = api.api_version >= 3 ? PT_REPL_NR_FIRST : 0;

	st = calloc(1, sizeof(*st));
	if (!st)
		return tiermm__fail(ENOMEM, "%s: out of memory", what);
	st->pid = pid;
	st->whole = !len;
	if (!len) {
		ret = whole_range(what, pid, &start, &len);
		if (ret) {
			free(st);
			return ret;
		}
	}
	st->start = start;
	st->len = len;

	nr = node_list("/sys/devices/system/node/possible", bits);
	if (!nr)
		nr = 1;
	if (rnr && rnr < nr)
		rnr = nr;
	for (int tries = 0;; tries++) {
		struct tiermm_pt_stat k;

		if (stats_alloc(st, nr, rnr)) {
			tiermm_pt_stat_free(st);
			return tiermm__fail(ENOMEM, "%s: out of memory", what);
		}
		memset(&k, 0, sizeof(k));
		k.argsz = sizeof(k);
		k.pid = pid;
		k.nr_nodes = nr;
		k.start = start;
		k.len = len;
		k.tables_ptr = (uintptr_t)st->tables;
		k.leaf_ptr = (uintptr_t)st->leaf;
		k.data_ptr = (uintptr_t)st->data;
		if (rnr) {
			k.flags = TIERMM_PT_STAT_REPLICAS;
			k.repl_ptr = (uintptr_t)st->repl;
			k.repl_nr = rnr;
		}
		ret = dev_ioctl(&h, TIERMM_IOC_PT_STAT, &k);
		if (ret == -ENOSPC && tries < 4) {
			/* The module writes the numbers it needs. */
			unsigned int onr = nr, ornr = rnr;

			if (k.nr_nodes > nr)
				nr = k.nr_nodes < TIERMM__MAX_NODES ?
				     k.nr_nodes : TIERMM__MAX_NODES;
			if (rnr && k.repl_nr > rnr)
				rnr = k.repl_nr < PT_REPL_NR_MAX ? k.repl_nr :
				      PT_REPL_NR_MAX;
			if (nr == onr && rnr == ornr && nr < TIERMM__MAX_NODES)
				nr = nr * 2 < TIERMM__MAX_NODES ? nr * 2 :
				     TIERMM__MAX_NODES;
			if (nr != onr || rnr != ornr)
				continue;
		}
		if (ret) {
			tiermm_pt_stat_free(st);
			return kernel_fail(-ret, what, pid, start, len, false, NULL);
		}
		memcpy(st->tables_local, k.tables_local, sizeof(st->tables_local));
		memcpy(st->tables_remote, k.tables_remote, sizeof(st->tables_remote));
		memcpy(st->tables_empty, k.tables_empty, sizeof(st->tables_empty));
		memcpy(st->leaf_huge, k.leaf_huge, sizeof(st->leaf_huge));
		st->repl_count = (int)k.repl_count;
		break;
	}
	/*
	 * A module that cannot see replicas counts none; that is the truth
	 * only on a kernel without replication.
	 */
	if ((!rnr || !(api.features & TIERMM_FEAT_PT_REPLICAS)) &&
	    tiermm__ptrepl_in_kernel()) {
		st->repl_count = -1;
		free(st->repl);
		st->repl = NULL;
		st->repl_nr = 0;
	}
	for (unsigned int n = 0; n < st->repl_nr; n++) {
		if (!(st->repl[n].flags & TIERMM_PT_REPLICA_PRESENT))
			continue;
		if (st->repl[n].flags & TIERMM_PT_REPLICA_GROUP)
			st->repl_groups = 1;
		for (int l = 0; l < TIERMM_PT_LEVEL__COUNT; l++)
			st->repl_remote += st->repl[n].tables[l] -
					   st->repl[n].local[l];
	}
	for (unsigned int n = 0; n < st->nr_nodes; n++) {
		st->leaf_total += st->leaf[n];
		st->data_total += st->data[n];
	}
	if (node_list("/sys/devices/system/node/online", bits)) {
		for (unsigned int n = 0; n < st->nr_nodes; n++)
			st->online[n] = tiermm__bit_test(bits, n);
	} else {
		st->online[0] = 1;	/* no NUMA in sysfs: node 0 only */
	}
	*stat = st;
	return 0;
}

int tiermm_pt_stat_nr_nodes(const struct tiermm_pt_stats *stat)
{
	if (!stat)
		return tiermm__fail(EINVAL, "tiermm_pt_stat_nr_nodes: stat is NULL");
	return (int)stat->nr_nodes;
}

int tiermm_pt_stat_node(const struct tiermm_pt_stats *stat, int node,
			struct tiermm_pt_node *info)
{
	struct tiermm_pt_node n;
	size_t sz;

	if (!stat || !info)
		return tiermm__fail(EINVAL, "tiermm_pt_stat_node: NULL argument");
	sz = info->sz;
	if (sz < PT_NODE_MIN_SZ)
		return tiermm__fail(EINVAL,
				    "tiermm_pt_stat_node: info->sz (%zu) must be set to sizeof(struct tiermm_pt_node)",
				    sz);
	if (node < 0 || (unsigned int)node >= stat->nr_nodes)
		return tiermm__fail(ENOENT,
				    "tiermm_pt_stat_node: node %d is not in 0..%u",
				    node, stat->nr_nodes - 1);
	memset(&n, 0, sizeof(n));
	n.sz = sz < sizeof(n) ? sz : sizeof(n);
	n.node = node;
	n.online = stat->online[node];
	memcpy(n.tables, &stat->tables[(size_t)node * TIERMM_PT_LEVEL__COUNT],
	       sizeof(n.tables));
	n.leaf_entries = stat->leaf[node];
	n.data_pages = stat->data[node];
	n.leaf_local = stat->leaf_total ?
		(double)stat->leaf[node] / (double)stat->leaf_total : 0.0;
	n.data_share = stat->data_total ?
		(double)stat->data[node] / (double)stat->data_total : 0.0;
	memcpy(info, &n, n.sz);
	return 0;
}

/* The node with the largest v[], lowest id on ties; -1 if all are 0. */
static int argmax(const uint64_t *v, unsigned int nr)
{
	int best = -1;

	for (unsigned int i = 0; i < nr; i++)
		if (v[i] && (best < 0 || v[i] > v[best]))
			best = (int)i;
	return best;
}

int tiermm_pt_stat_summary(const struct tiermm_pt_stats *stat,
			   struct tiermm_pt_summary *sum)
{
	struct tiermm_pt_summary s;
	size_t sz;

	if (!stat || !sum)
		return tiermm__fail(EINVAL, "tiermm_pt_stat_summary: NULL argument");
	sz = sum->sz;
	if (sz < PT_SUMMARY_MIN_SZ)
		return tiermm__fail(EINVAL,
				    "tiermm_pt_stat_summary: sum->sz (%zu) must be set to sizeof(struct tiermm_pt_summary)",
				    sz);
	memset(&s, 0, sizeof(s));
	s.sz = sz < sizeof(s) ? sz : sizeof(s);
	s.pid = stat->pid;
	s.whole = stat->whole;
	s.start = stat->start;
	s.len = stat->len;
	for (unsigned int n = 0; n < stat->nr_nodes; n++)
		for (int l = 0; l < TIERMM_PT_LEVEL__COUNT; l++)
			s.tables[l] += stat->tables[(size_t)n * TIERMM_PT_LEVEL__COUNT + l];
	memcpy(s.tables_local, stat->tables_local, sizeof(s.tables_local));
	memcpy(s.tables_remote, stat->tables_remote, sizeof(s.tables_remote));
	memcpy(s.tables_empty, stat->tables_empty, sizeof(s.tables_empty));
	memcpy(s.leaf_huge, stat->leaf_huge, sizeof(s.leaf_huge));
	s.leaf_entries = stat->leaf_total;
	s.data_pages = stat->data_total;
	s.data_node = argmax(stat->data, stat->nr_nodes);
	s.leaf_node = argmax(stat->leaf, stat->nr_nodes);
	s.replicas = stat->repl_count;
	s.replica_groups = stat->repl_groups;
	s.replica_remote = stat->repl_remote;
	memcpy(sum, &s, s.sz);
	return 0;
}

int tiermm_pt_stat_replica(const struct tiermm_pt_stats *stat, int idx,
			   struct tiermm_pt_replica *info)
{
	struct tiermm_pt_replica r;
	int seen = 0;
	size_t sz;

	if (!stat || !info)
		return tiermm__fail(EINVAL, "tiermm_pt_stat_replica: NULL argument");
	sz = info->sz;
	if (sz < PT_REPLICA_MIN_SZ)
		return tiermm__fail(EINVAL,
				    "tiermm_pt_stat_replica: info->sz (%zu) must be set to sizeof(struct tiermm_pt_replica)",
				    sz);
	for (unsigned int n = 0; idx >= 0 && n < stat->repl_nr; n++) {
		if (!(stat->repl[n].flags & TIERMM_PT_REPLICA_PRESENT) ||
		    seen++ != idx)
			continue;
		memset(&r, 0, sizeof(r));
		r.sz = sz < sizeof(r) ? sz : sizeof(r);
		r.slot = (int)n;
		r.group = !!(stat->repl[n].flags & TIERMM_PT_REPLICA_GROUP);
		memcpy(r.tables, stat->repl[n].tables, sizeof(r.tables));
		memcpy(r.local, stat->repl[n].local, sizeof(r.local));
		memcpy(info, &r, r.sz);
		return 0;
	}
	return tiermm__fail(ENOENT,
			    "tiermm_pt_stat_replica: replica %d does not exist (the process has %d)",
			    idx, stat->repl_count > 0 ? stat->repl_count : 0);
}

/* ---- Dumps ---------------------------------------------------------------- */

#define DUMP_BUF_MIN (256u << 10)
#define DUMP_BUF_MAX (16u << 20)

/* Bytes of address space one entry of a table at level maps (4-level). */
static uint64_t entry_span(unsigned int level)
{
	static const unsigned int shift[] = { 12, 21, 30, 39 };

	return 1ULL << shift[level];
}

struct dump_ctx {
	FILE *out;
	unsigned int format;
	int count;
	/* The last table written per level: a resumed call repeats the path. */
	uint64_t last_va[TIERMM_PT_LEVEL__COUNT];
	uint64_t last_pfn[TIERMM_PT_LEVEL__COUNT];
};

static void dump_record(struct dump_ctx *c, const struct tiermm_pt_dump_rec *rec)
{
	unsigned int level = rec->level, present = 0, huge = 0;
	uint64_t end = rec->va + entry_span(level) * rec->nr_entries;
	const char *name = tiermm_pt_level_name(level);
	bool upper = level == TIERMM_PT_LEVEL_PMD || level == TIERMM_PT_LEVEL_PUD;
	bool entries = c->format & TIERMM_PT_DUMP_ENTRIES;
	int indent = 2 * (TIERMM_PT_LEVEL_PGD - (int)level);

	if (end < rec->va)
		end = UINT64_MAX;
	for (uint32_t i = 0; i < rec->nr_entries; i++) {
		uint64_t e = rec->entries[i];

		if (e & PTE_PRESENT) {
			present++;
			if (upper && (e & PTE_PSE))
				huge++;
		}
	}
	if (c->format & TIERMM_PT_DUMP_JSON) {
		bool first = true;

		fprintf(c->out,
			"%s{\"level\":\"%s\",\"va\":\"0x%" PRIx64 "\",\"end\":\"0x%" PRIx64 "\",\"pfn\":%" PRIu64 ",\"node\":%d,\"entries_total\":%u,\"present\":%u,\"huge\":%u",
			c->count ? ",\n" : "", name, (uint64_t)rec->va, end,
			(uint64_t)rec->pfn, rec->node, rec->nr_entries, present,
			huge);
		if (entries) {
			fputs(",\"entries\":[", c->out);
			for (uint32_t i = 0; i < rec->nr_entries; i++) {
				if (!rec->entries[i])
					continue;
				fprintf(c->out, "%s[%u,\"0x%016" PRIx64 "\"]",
					first ? "" : ",", i,
					(uint64_t)rec->entries[i]);
				first = false;
			}
			fputc(']', c->out);
		}
		fputc('}', c->out);
	} else {
		fprintf(c->out,
			"%*s%s 0x%016" PRIx64 "-0x%016" PRIx64 " pfn 0x%" PRIx64 " node %d present %u/%u",
			indent, "", name, (uint64_t)rec->va, end,
			(uint64_t)rec->pfn, rec->node, present, rec->nr_entries);
		if (upper)
			fprintf(c->out, " huge %u", huge);
		fputc('\n', c->out);
		for (uint32_t i = 0; entries && i < rec->nr_entries; i++) {
			uint64_t e = rec->entries[i];

			if (!e)
				continue;
			fprintf(c->out, "%*s  [%3u] 0x%016" PRIx64, indent, "", i, e);
			if (!(e & PTE_PRESENT))
				fputs(" not present", c->out);
			else if (level == TIERMM_PT_LEVEL_PTE || (upper && (e & PTE_PSE)))
				fprintf(c->out, " page 0x%" PRIx64 "%s",
					(e & PTE_PFN_MASK) >> 12,
					level != TIERMM_PT_LEVEL_PTE ? " huge" : "");
			else
				fprintf(c->out, " table 0x%" PRIx64,
					(e & PTE_PFN_MASK) >> 12);
			fputc('\n', c->out);
		}
	}
	c->count++;
}

/* Walk the records of one call: 0 or -EIO (malformed). */
static int dump_records(struct dump_ctx *c, const unsigned char *buf,
			uint64_t written)
{
	uint64_t off = 0;

	while (off < written) {
		const struct tiermm_pt_dump_rec *rec;
		uint64_t recsz;

		if (written - off < sizeof(*rec))
			return -EIO;
		rec = (const void *)(buf + off);
		recsz = sizeof(*rec) + (uint64_t)rec->nr_entries * sizeof(rec->entries[0]);
		if (written - off < recsz || rec->level >= TIERMM_PT_LEVEL__COUNT ||
		    rec->nr_entries > 4096)
			return -EIO;
		if (rec->va != c->last_va[rec->level] ||
		    rec->pfn != c->last_pfn[rec->level]) {
			c->last_va[rec->level] = rec->va;
			c->last_pfn[rec->level] = rec->pfn;
			dump_record(c, rec);
		}
		off += recsz;
	}
	return 0;
}

int tiermm_pt_dump(pid_t pid, uint64_t start, uint64_t len, FILE *out,
		   unsigned int format)
{
	static const char what[] = "page-table dump";
	struct dump_ctx c;
	unsigned char *buf;
	size_t bufsz = DUMP_BUF_MIN;
	uint64_t cur, end;
	struct devh h;
	int ret, whole = !len;

	if (!out)
		return tiermm__fail(EINVAL, "%s: out is NULL", what);
	if (format & ~(unsigned int)(TIERMM_PT_DUMP_JSON | TIERMM_PT_DUMP_ENTRIES))
		return tiermm__fail(EINVAL,
				    "%s: unknown format bits 0x%x (TIERMM_PT_DUMP_TEXT or _JSON, optionally | _ENTRIES)",
				    what, format);
	ret = check_pid(what, pid);
	if (!ret)
		ret = check_range(what, start, len);
	if (!ret)
		ret = dev_get(TIERMM_CMD_PT_DUMP, what, &h);
	if (!ret && whole)
		ret = whole_range(what, pid, &start, &len);
	if (ret)
		return ret;
	buf = malloc(bufsz);
	if (!buf)
		return tiermm__fail(ENOMEM, "%s: out of memory", what);

	memset(&c, 0, sizeof(c));
	c.out = out;
	c.format = format;
	memset(c.last_va, 0xff, sizeof(c.last_va));
	memset(c.last_pfn, 0xff, sizeof(c.last_pfn));
	end = start + len;
	if (format & TIERMM_PT_DUMP_JSON)
		fprintf(out,
			"{\"pid\":%d,\"start\":\"0x%" PRIx64 "\",\"end\":\"0x%" PRIx64 "\",\"whole\":%s,\"tables\":[\n",
			(int)real_pid(pid), start, end, whole ? "true" : "false");
	else
		fprintf(out, "# page tables of pid %d, 0x%016" PRIx64 "-0x%016" PRIx64 "%s\n",
			(int)real_pid(pid), start, end,
			whole ? " (whole process)" : "");

	for (cur = start; cur < end;) {
		struct tiermm_pt_dump k;

		memset(&k, 0, sizeof(k));
		k.argsz = sizeof(k);
		k.pid = pid;
		k.start = cur;
		k.len = end - cur;
		k.buf_ptr = (uintptr_t)buf;
		k.buf_len = bufsz;
		ret = dev_ioctl(&h, TIERMM_IOC_PT_DUMP, &k);
		if (ret) {
			ret = kernel_fail(-ret, what, pid, cur, end - cur, false, NULL);
			goto out;
		}
		if (k.written > bufsz || dump_records(&c, buf, k.written)) {
			ret = tiermm__fail(EIO,
					   "%s: tiermm.ko returned malformed records (%" PRIu64 " bytes at 0x%" PRIx64 ")",
					   what, (uint64_t)k.written, cur);
			goto out;
		}
		if (k.next <= cur) {
			/* Not even one table fitted: a bigger buffer. */
			unsigned char *nbuf;

			if (bufsz >= DUMP_BUF_MAX) {
				ret = tiermm__fail(EIO,
						   "%s: tiermm.ko makes no progress at 0x%" PRIx64 " with a %zu-byte buffer",
						   what, cur, bufsz);
				goto out;
			}
			bufsz *= 2;
			nbuf = realloc(buf, bufsz);
			if (!nbuf) {
				ret = tiermm__fail(ENOMEM, "%s: out of memory", what);
				goto out;
			}
			buf = nbuf;
			continue;
		}
		cur = k.next < end ? k.next : end;
	}
	if (format & TIERMM_PT_DUMP_JSON)
		fprintf(out, "%s],\"count\":%d}\n", c.count ? "\n" : "", c.count);
	else
		fprintf(out, "# %d tables\n", c.count);
	if (fflush(out) || ferror(out)) {
		ret = tiermm__fail(EIO, "%s: writing the dump failed", what);
		goto out;
	}
	ret = c.count;
out:
	free(buf);
	return ret;
}

/* ---- Migration ----------------------------------------------------------- */

int tiermm_pt_migrate(pid_t pid, uint64_t start, uint64_t len, int node,
		      unsigned int levels, struct tiermm_pt_migrate_result *result)
{
	static const char what[] = "page-table migration";
	struct tiermm_pt_migrate_result r;
	struct tiermm_pt_migrate k;
	uint64_t moved = 0;
	struct devh h;
	int ret;

	if (result && result->sz < PT_MIGRATE_RES_MIN_SZ)
		return tiermm__fail(EINVAL,
				    "%s: result->sz (%zu) must be set to sizeof(struct tiermm_pt_migrate_result)",
				    what, result->sz);
	if (node != TIERMM_NODE_AUTO && (node < 0 || node >= TIERMM__MAX_NODES))
		return tiermm__fail(EINVAL,
				    "%s: node %d is not a node id (0-%d) nor TIERMM_NODE_AUTO",
				    what, node, TIERMM__MAX_NODES - 1);
	if (!levels || (levels & ~(unsigned int)TIERMM_PT_LEVELS_ALL))
		return tiermm__fail(EINVAL,
				    "%s: levels 0x%x must be a non-empty set of TIERMM_PT_LEVELS_PTE, _PMD and _PUD (the PGD is never moved)",
				    what, levels);
	ret = check_pid(what, pid);
	if (!ret)
		ret = check_range(what, start, len);
	if (!ret)
		ret = dev_get(TIERMM_CMD_PT_MIGRATE, what, &h);
	if (!ret && !len)
		ret = whole_range(what, pid, &start, &len);
	if (ret)
		return ret;

	memset(&k, 0, sizeof(k));
	k.argsz = sizeof(k);
	k.pid = pid;
	k.node = node;
	k.start = start;
	k.len = len;
	k.levels = levels;
	ret = dev_ioctl(&h, TIERMM_IOC_PT_MIGRATE, &k);
	if (ret)
		return kernel_fail(-ret, what, pid, start, len, true,
				   node == TIERMM_NODE_AUTO ? NULL :
				   ", or a target node that does not exist or has no memory");
	memset(&r, 0, sizeof(r));
	for (int l = 0; l < TIERMM_PT_LEVEL__COUNT; l++) {
		r.moved[l] = k.moved[l];
		moved += k.moved[l];
	}
	for (int i = 0; i < TIERMM_PT_SKIP__COUNT; i++)
		r.skipped[i] = k.skipped[i];
	r.start = start;
	r.len = len;
	if (result) {
		r.sz = result->sz < sizeof(r) ? result->sz : sizeof(r);
		memcpy(result, &r, r.sz);
	}
	return moved > INT_MAX ? INT_MAX : (int)moved;
}

/* ---- Accessed-bit scanner ------------------------------------------------ */

/* Address space per ioctl: bounds the output buffer (32 KiB of bitmap). */
#define AB_WINDOW (1ULL << 30)

struct tiermm_ab_scanner {
	pid_t pid;
	int whole;
	unsigned int flags;
	uint64_t max_pages;
	uint64_t start, len;	/* as opened (0, 0: whole process) */
	struct pt_range *ranges;
	size_t nr_ranges;
	size_t ri;		/* current range */
	bool in_pass;
	uint64_t win_start, win_end, cursor;
	void *buf;
	size_t buf_len;
};

static const char ab_what[] = "accessed-bit scan";

/*
 * The window from address from: up to the next AB_WINDOW boundary, so that
 * windows after the first are aligned and a THP never straddles two.
 */
static void ab_window(struct tiermm_ab_scanner *sc, uint64_t from)
{
	uint64_t end = sc->ranges[sc->ri].end;
	uint64_t wend = (from & ~(AB_WINDOW - 1)) + AB_WINDOW;

	sc->win_start = from;
	sc->win_end = wend < end ? wend : end;
	sc->cursor = from;
}

/* Begin a pass: (re)read the mappings in whole-process mode. */
static int ab_begin(struct tiermm_ab_scanner *sc)
{
	if (sc->whole) {
		struct pt_range *r;
		size_t n;
		int ret = read_ranges(ab_what, sc->pid,
				      sc->flags & TIERMM_AB_SCAN_COUNTS ? PT_HUGE : 0,
				      &r, &n);

		if (ret)
			return ret;
		free(sc->ranges);
		sc->ranges = r;
		sc->nr_ranges = n;
	}
	sc->ri = 0;
	sc->in_pass = true;
	ab_window(sc, sc->ranges[0].start);
	return 0;
}

int tiermm_ab_scan_open(pid_t pid, uint64_t start, uint64_t len,
			const struct tiermm_ab_scan_opts *opts,
			struct tiermm_ab_scanner **scanner)
{
	struct tiermm_ab_scanner *sc;
	unsigned int flags = 0;
	uint64_t max_pages = 0;
	struct devh h;
	int ret;

	if (scanner)
		*scanner = NULL;
	if (!scanner)
		return tiermm__fail(EINVAL, "%s: scanner is NULL", ab_what);
	ret = tiermm__opts_check(opts, offsetof(struct tiermm_ab_scan_opts, flags) +
				 sizeof(unsigned int),
				 sizeof(struct tiermm_ab_scan_opts),
				 "tiermm_ab_scan_opts");
	if (ret)
		return ret;
	if (opts) {
		flags = opts->flags;
		if (opts->sz >= offsetof(struct tiermm_ab_scan_opts, max_pages) +
				sizeof(uint64_t))
			max_pages = opts->max_pages;
	}
	if (flags & ~(unsigned int)(TIERMM_AB_SCAN_FLUSH | TIERMM_AB_SCAN_COUNTS))
		return tiermm__fail(EINVAL, "%s: unknown flags 0x%x", ab_what,
				    flags);
	ret = check_pid(ab_what, pid);
	if (!ret)
		ret = check_range(ab_what, start, len);
	if (ret)
		return ret;
	if ((flags & TIERMM_AB_SCAN_COUNTS) && start % PT_HUGE)
		return tiermm__fail(EINVAL,
				    "%s: with TIERMM_AB_SCAN_COUNTS, start 0x%" PRIx64 " must be 2 MiB aligned",
				    ab_what, start);
	ret = dev_get(TIERMM_CMD_AB_SCAN, ab_what, &h);
	if (ret)
		return ret;

	sc = calloc(1, sizeof(*sc));
	if (!sc)
		return tiermm__fail(ENOMEM, "%s: out of memory", ab_what);
	sc->pid = pid;
	sc->whole = !len;
	sc->flags = flags;
	sc->max_pages = max_pages;
	sc->start = start;
	sc->len = len;
	if (flags & TIERMM_AB_SCAN_COUNTS)
		sc->buf_len = AB_WINDOW / PT_HUGE * sizeof(uint16_t);
	else
		sc->buf_len = AB_WINDOW / PT_PAGE / 8;
	sc->buf = malloc(sc->buf_len);
	if (!sc->whole) {
		sc->ranges = malloc(sizeof(*sc->ranges));
		if (sc->ranges) {
			sc->ranges[0].start = start;
			sc->ranges[0].end = start + len;
			sc->nr_ranges = 1;
		}
	}
	if (!sc->buf || (!sc->whole && !sc->ranges)) {
		tiermm_ab_scan_close(sc);
		return tiermm__fail(ENOMEM, "%s: out of memory", ab_what);
	}
	/* Fail now, not at the first batch, for a pid that cannot be read. */
	ret = ab_begin(sc);
	if (ret) {
		tiermm_ab_scan_close(sc);
		return ret;
	}
	*scanner = sc;
	return 0;
}

int tiermm_ab_scan_rewind(struct tiermm_ab_scanner *scanner)
{
	if (!scanner)
		return tiermm__fail(EINVAL, "%s: scanner is NULL", ab_what);
	scanner->in_pass = false;
	return 0;
}

int tiermm_ab_scan_next(struct tiermm_ab_scanner *sc,
			struct tiermm_ab_batch *batch)
{
	struct tiermm_ab_batch b;
	struct tiermm_ab_scan k;
	struct devh h;
	uint64_t from;
	int ret;

	if (!sc || !batch)
		return tiermm__fail(EINVAL, "%s: NULL argument", ab_what);
	if (batch->sz < AB_BATCH_MIN_SZ)
		return tiermm__fail(EINVAL,
				    "%s: batch->sz (%zu) must be set to sizeof(struct tiermm_ab_batch)",
				    ab_what, batch->sz);
	ret = dev_get(TIERMM_CMD_AB_SCAN, ab_what, &h);
	if (ret)
		return ret;
	if (!sc->in_pass) {
		ret = ab_begin(sc);
		if (ret)
			return ret;
	}
	if (sc->ri >= sc->nr_ranges) {
		sc->in_pass = false;	/* the next call starts a new pass */
		return 0;
	}

	memset(sc->buf, 0, sc->buf_len);
	memset(&k, 0, sizeof(k));
	k.argsz = sizeof(k);
	k.flags = sc->flags;
	k.pid = sc->pid;
	k.start = sc->win_start;
	k.len = sc->win_end - sc->win_start;
	k.max_pages = sc->max_pages;
	k.cursor = sc->cursor;
	k.out_ptr = (uintptr_t)sc->buf;
	k.out_len = sc->buf_len;
	ret = dev_ioctl(&h, TIERMM_IOC_AB_SCAN, &k);
	if (ret)
		return kernel_fail(-ret, ab_what, sc->pid, sc->win_start,
				   sc->win_end - sc->win_start, true, NULL);
	if (k.cursor <= sc->cursor)
		return tiermm__fail(EIO,
				    "%s: tiermm.ko made no progress (cursor 0x%" PRIx64 " after 0x%" PRIx64 ")",
				    ab_what, (uint64_t)k.cursor, sc->cursor);
	if (k.cursor > sc->win_end)	/* a THP reaching past the range */
		k.cursor = sc->win_end;

	memset(&b, 0, sizeof(b));
	b.base = sc->win_start;
	b.start = sc->cursor;
	b.end = k.cursor;
	b.scanned = k.scanned;
	b.accessed = k.accessed;
	if (sc->flags & TIERMM_AB_SCAN_COUNTS) {
		b.counts = sc->buf;
		b.nr = (size_t)((sc->win_end - sc->win_start + PT_HUGE - 1) / PT_HUGE);
	} else {
		b.bitmap = sc->buf;
		b.nr = (size_t)((sc->win_end - sc->win_start) / PT_PAGE);
	}
	b.sz = batch->sz < sizeof(b) ? batch->sz : sizeof(b);
	memcpy(batch, &b, b.sz);

	/* Advance: within the window, to the next window, the next range. */
	sc->cursor = k.cursor;
	if (sc->cursor >= sc->win_end) {
		from = sc->win_end;
		if (from >= sc->ranges[sc->ri].end) {
			sc->ri++;
			if (sc->ri < sc->nr_ranges)
				from = sc->ranges[sc->ri].start;
		}
		if (sc->ri < sc->nr_ranges)
			ab_window(sc, from);
	}
	return 1;
}

void tiermm_ab_scan_close(struct tiermm_ab_scanner *scanner)
{
	if (!scanner)
		return;
	free(scanner->ranges);
	free(scanner->buf);
	free(scanner);
}
