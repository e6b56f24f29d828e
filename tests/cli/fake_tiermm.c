// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * fake_tiermm.so: an LD_PRELOAD stand-in for tiermm.ko, so that the
 * `tiermm pt` command can be run end to end on a machine without the module
 * (tests/cli/check-pt.sh). It answers open("/dev/tiermm") with a descriptor
 * on /dev/null and plays the module's part in ioctl() on it.
 *
 * The fake process has two nodes and 8 MiB of data on node DATA: one PGD,
 * PUD and PMD table on node 0 and 4 PTE tables (2048 leaf entries) on node
 * LEAF. A migration that includes PTE tables moves them (LEAF = target, or
 * DATA for auto) unless STUCK is 1. State lives in the file named by
 * TIERMM_FAKE_STATE ("LEAF DATA STUCK"), so it outlives one command.
 * TIERMM_FAKE_ERR=N makes every command but GET_API fail with errno N.
 *
 * TIERMM_FAKE_REPL=DIR also plays a kernel with page-table replication
 * (tiermm's patch series): the module reports TIERMM_FEAT_PT_REPLICAS;
 * /proc/sys/kernel/pgtable_replication, /sys/devices/system/node/{online,
 * possible,has_memory} and every /proc/PID/pgtable_replication are the
 * files sysctl, online, possible, has_memory and repl in DIR (a write of
 * "none" reads back as an empty line, as the kernel's does); PT_STAT gives
 * each node of repl a replica with as many tables as the master, all on
 * that node except one PTE table of node TIERMM_FAKE_REPL_FAIL if set.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <linux/tiermm.h>

static int fake_fd = -1;

struct state {
	int leaf, data, stuck;
};

static void load(struct state *s)
{
	const char *path = getenv("TIERMM_FAKE_STATE");
	FILE *f = path ? fopen(path, "r") : NULL;

	s->leaf = 1;
	s->data = 0;
	s->stuck = 0;
	if (f) {
		if (fscanf(f, "%d %d %d", &s->leaf, &s->data, &s->stuck) != 3)
			s->leaf = 1;
		fclose(f);
	}
}

static void save(const struct state *s)
{
	const char *path = getenv("TIERMM_FAKE_STATE");
	FILE *f = path ? fopen(path, "w") : NULL;

	if (f) {
		fprintf(f, "%d %d %d\n", s->leaf, s->data, s->stuck);
		fclose(f);
	}
}

static int is_dev(const char *path)
{
	return path && !strcmp(path, "/dev/" TIERMM_DEVICE_NAME);
}

/*
 * With TIERMM_FAKE_REPL: the file in DIR standing for path, or NULL. A
 * replication file opened for writing is truncated; one opened for reading
 * that holds "none" is emptied first.
 */
static const char *repl_path(const char *path, int *flags)
{
	static __thread char buf[4096];
	const char *dir = getenv("TIERMM_FAKE_REPL"), *name = NULL, *p;

	if (!dir || !path)
		return NULL;
	if (!strcmp(path, "/proc/sys/kernel/pgtable_replication"))
		name = "sysctl";
	else if (!strcmp(path, "/sys/devices/system/node/online"))
		name = "online";
	else if (!strcmp(path, "/sys/devices/system/node/possible"))
		name = "possible";
	else if (!strcmp(path, "/sys/devices/system/node/has_memory"))
		name = "has_memory";
	else if (!strncmp(path, "/proc/", 6) && (p = strchr(path + 6, '/')) &&
		 !strcmp(p, "/pgtable_replication"))
		name = "repl";
	if (!name)
		return NULL;
	snprintf(buf, sizeof(buf), "%s/%s", dir, name);
	if (!strcmp(name, "repl")) {
		if ((*flags & O_ACCMODE) != O_RDONLY) {
			*flags |= O_TRUNC;
		} else {
			FILE *f = fopen(buf, "r");
			char line[64] = "";

			if (f) {
				if (!fgets(line, sizeof(line), f))
					line[0] = '\0';
				fclose(f);
			}
			if (!strcmp(line, "none\n")) {
				f = fopen(buf, "w");
				if (f) {
					fputs("\n", f);
					fclose(f);
				}
			}
		}
	}
	return buf;
}

static int fake_open(void)
{
	int (*real)(const char *, int, ...) =
		(int (*)(const char *, int, ...))dlsym(RTLD_NEXT, "open");

	fake_fd = real("/dev/null", O_RDWR | O_CLOEXEC);
	return fake_fd;
}

int open(const char *path, int flags, ...);
int open(const char *path, int flags, ...)
{
	static int (*real)(const char *, int, ...);
	mode_t mode = 0;
	va_list ap;

	if (is_dev(path))
		return fake_open();
	if (!real)
		real = (int (*)(const char *, int, ...))dlsym(RTLD_NEXT, "open");
	va_start(ap, flags);
	if (flags & (O_CREAT | O_TMPFILE))
		mode = va_arg(ap, mode_t);
	va_end(ap);
	if (repl_path(path, &flags))
		path = repl_path(path, &flags);
	return real(path, flags, mode);
}

int open64(const char *path, int flags, ...);
int open64(const char *path, int flags, ...)
{
	static int (*real)(const char *, int, ...);
	mode_t mode = 0;
	va_list ap;

	if (is_dev(path))
		return fake_open();
	if (!real)
		real = (int (*)(const char *, int, ...))dlsym(RTLD_NEXT, "open64");
	va_start(ap, flags);
	if (flags & (O_CREAT | O_TMPFILE))
		mode = va_arg(ap, mode_t);
	va_end(ap);
	if (repl_path(path, &flags))
		path = repl_path(path, &flags);
	return real(path, flags, mode);
}

static int fail(int err)
{
	errno = err;
	return -1;
}

/* PT_STAT with TIERMM_PT_STAT_REPLICAS: the replicas of DIR/repl. */
static int repl_stat(struct tiermm_pt_stat *k)
{
	struct tiermm_pt_stat_repl *r = (void *)(uintptr_t)k->repl_ptr;
	const char *dir = getenv("TIERMM_FAKE_REPL");
	const char *fail_env = getenv("TIERMM_FAKE_REPL_FAIL");
	int fail_node = fail_env ? atoi(fail_env) : -1;
	char path[4096], line[64] = "", *p;
	FILE *f;

	if (!(k->flags & TIERMM_PT_STAT_REPLICAS))
		return 0;
	if (k->repl_nr < 2) {
		k->repl_nr = 2;
		return fail(ENOSPC);
	}
	memset(r, 0, k->repl_nr * sizeof(*r));
	k->repl_count = 0;
	if (!dir)
		return 0;
	snprintf(path, sizeof(path), "%s/repl", dir);
	f = fopen(path, "r");
	if (f) {
		if (!fgets(line, sizeof(line), f))
			line[0] = '\0';
		fclose(f);
	}
	/* "0", "1", "0-1" or "0,1": the fake has two nodes, each digit one. */
	for (p = line; *p; p++) {
		int n = *p - '0';

		if (n < 0 || n > 1 || r[n].flags)
			continue;
		r[n].flags = TIERMM_PT_REPLICA_PRESENT;
		r[n].tables[TIERMM_PT_PTE] = 4;
		r[n].tables[TIERMM_PT_PMD] = 1;
		r[n].tables[TIERMM_PT_PUD] = 1;
		r[n].tables[TIERMM_PT_PGD] = 1;
		memcpy(r[n].local, r[n].tables, sizeof(r[n].local));
		if (n == fail_node)
			r[n].local[TIERMM_PT_PTE] = 3;
		k->repl_count++;
	}
	return 0;
}

static int do_stat(struct tiermm_pt_stat *k, const struct state *s)
{
	uint64_t *tables = (uint64_t *)(uintptr_t)k->tables_ptr;
	uint64_t *leaf = (uint64_t *)(uintptr_t)k->leaf_ptr;
	uint64_t *data = (uint64_t *)(uintptr_t)k->data_ptr;

	if (k->nr_nodes < 2) {
		k->nr_nodes = 2;
		return fail(ENOSPC);
	}
	memset(tables, 0, k->nr_nodes * TIERMM_PT_NR_LEVELS * sizeof(*tables));
	memset(leaf, 0, k->nr_nodes * sizeof(*leaf));
	memset(data, 0, k->nr_nodes * sizeof(*data));
	tables[s->leaf * 4 + TIERMM_PT_PTE] = 4;
	tables[0 * 4 + TIERMM_PT_PMD] = 1;
	tables[0 * 4 + TIERMM_PT_PUD] = 1;
	tables[0 * 4 + TIERMM_PT_PGD] = 1;
	leaf[s->leaf] = 2048;
	data[s->data] = 2048;
	memset(k->tables_local, 0, sizeof(k->tables_local));
	memset(k->tables_remote, 0, sizeof(k->tables_remote));
	if (s->leaf == s->data)
		k->tables_local[TIERMM_PT_PTE] = 4;
	else
		k->tables_remote[TIERMM_PT_PTE] = 4;
	/* Upper tables vote with their children. */
	if (s->leaf == 0) {
		k->tables_local[TIERMM_PT_PMD] = 1;
	} else {
		k->tables_remote[TIERMM_PT_PMD] = 1;
	}
	k->tables_local[TIERMM_PT_PUD] = 1;
	k->tables_local[TIERMM_PT_PGD] = 1;
	return repl_stat(k);
}

static int do_dump(struct tiermm_pt_dump *k, const struct state *s)
{
	static const struct {
		uint32_t level;
		uint64_t va;
	} t[] = {
		{ 3, 0 }, { 2, 0 }, { 1, 0 },
		{ 0, 0x400000 }, { 0, 0x600000 }, { 0, 0x800000 }, { 0, 0xa00000 },
	};
	const size_t recsz = sizeof(struct tiermm_pt_dump_rec) + 512 * 8;
	unsigned char *buf = (unsigned char *)(uintptr_t)k->buf_ptr;
	uint64_t off = 0;

	if (k->buf_len < 5 * recsz)
		return fail(EINVAL);
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct tiermm_pt_dump_rec *r = (void *)(buf + off);

		if (off + recsz > k->buf_len) {
			k->next = t[i].va;
			k->written = off;
			return 0;
		}
		memset(r, 0, recsz);
		r->va = t[i].va;
		r->pfn = 0x1000 + i;
		r->level = t[i].level;
		r->node = t[i].level ? 0 : s->leaf;
		r->nr_entries = 512;
		for (int e = 0; e < (t[i].level ? 1 : 512); e++)
			r->entries[e] = 0x8000000000000067ULL | ((0x20000ULL + i * 512 + e) << 12);
		off += recsz;
	}
	k->written = off;
	k->next = k->start + k->len;
	return 0;
}

static int do_migrate(struct tiermm_pt_migrate *k, struct state *s)
{
	int target = k->node == TIERMM_NODE_AUTO ? s->data : k->node;

	if (k->node < TIERMM_NODE_AUTO || k->node > 1)
		return fail(EINVAL);
	memset(k->moved, 0, sizeof(k->moved));
	memset(k->skipped, 0, sizeof(k->skipped));
	if (k->levels & TIERMM_PT_MIGRATE_PTE) {
		if (s->leaf == target) {
			k->skipped[TIERMM_SKIP_ALREADY] += 4;
		} else {
			k->moved[TIERMM_PT_PTE] = 4;
			if (!s->stuck)
				s->leaf = target;
		}
	}
	if (k->levels & TIERMM_PT_MIGRATE_PMD)
		k->skipped[TIERMM_SKIP_ALREADY] += 1;
	if (k->levels & TIERMM_PT_MIGRATE_PUD)
		k->skipped[TIERMM_SKIP_ALREADY] += 1;
	save(s);
	return 0;
}

int ioctl(int fd, unsigned long req, ...);
int ioctl(int fd, unsigned long req, ...)
{
	static int (*real)(int, unsigned long, ...);
	const char *err = getenv("TIERMM_FAKE_ERR");
	struct state s;
	va_list ap;
	void *arg;

	va_start(ap, req);
	arg = va_arg(ap, void *);
	va_end(ap);
	if (fd != fake_fd || fake_fd < 0) {
		if (!real)
			real = (int (*)(int, unsigned long, ...))dlsym(RTLD_NEXT, "ioctl");
		return real(fd, req, arg);
	}
	if (req == TIERMM_IOC_GET_API) {
		struct tiermm_get_api *a = arg;

		a->api_version = TIERMM_API_VERSION;
		a->features = 0x1f;
		if (getenv("TIERMM_FAKE_REPL"))
			a->features |= TIERMM_FEAT_PT_REPLICAS;
		a->commands = 0x1f;
		return 0;
	}
	if (err && atoi(err))
		return fail(atoi(err));
	load(&s);
	switch (req) {
	case TIERMM_IOC_PT_STAT:
		return do_stat(arg, &s);
	case TIERMM_IOC_PT_DUMP:
		return do_dump(arg, &s);
	case TIERMM_IOC_PT_MIGRATE:
		return do_migrate(arg, &s);
	}
	return fail(ENOTTY);
}
