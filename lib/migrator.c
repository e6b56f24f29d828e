// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The tiering engine's real world (engine.h, tiermm__real_env): the managed
 * process's mappings from /proc/PID/maps, where their pages are from
 * /proc/PID/numa_maps, and moves through place.c's mover (batched
 * move_pages(2) with status checks, retries with back-off and THP handled
 * by head address, tiering.h).
 *
 * Managed mappings: the writable ones (heap, stacks, anonymous and writable
 * file mappings: where data lives, as the scan backend scans), except
 * device mappings (/dev/..., other than /dev/zero and /dev/shm), whose pages
 * move_pages(2) cannot move, and the kernel's special areas ([vvar], ...).
 * Code and read-only data are left alone.
 *
 * Residency: numa_maps gives, per mapping, the pages on each node (the
 * kernel walks the page tables: cheap for THP-backed memory, about a
 * nanosecond a base page otherwise). Nodes are put in the fast tier, the
 * slow tier or "other" with the topology's tiers. A mapping numa_maps does
 * not list (a race with mmap) counts as empty until the next epoch.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "engine.h"

struct env {
	pid_t pid;
	int fast_tier, slow_tier;
	struct tiermm__mover *fast, *slow;
	int8_t tier_class[TIERMM__MAX_NODES];	/* 0 fast, 1 slow, 2 other */
	/*
	 * The mappings that PMD-mapped pages back (smaps), sorted; thp_all:
	 * unknown (smaps unreadable, or not read yet), treat all as such.
	 */
	struct tiermm__mapping *thp;
	size_t nthp, thp_cap;
	bool thp_all;
};

static void env_close(void *p)
{
	struct env *v = p;

	if (!v)
		return;
	tiermm__mover_free(v->fast);
	tiermm__mover_free(v->slow);
	free(v->thp);
	free(v);
}

static int env_open(void *arg, const struct tiermm__engine_cfg *cfg, void **out)
{
	struct env *v = calloc(1, sizeof(*v));
	int ret, nn;

	(void)arg;
	*out = NULL;
	if (!v)
		return tiermm__fail(ENOMEM, "tiering engine: out of memory");
	v->pid = cfg->pid;
	v->fast_tier = cfg->fast_tier;
	v->slow_tier = cfg->slow_tier;
	v->thp_all = true;
	for (int i = 0; i < TIERMM__MAX_NODES; i++)
		v->tier_class[i] = 2;
	nn = tiermm_topo_nr_nodes(cfg->topo);
	for (int i = 0; i < nn; i++) {
		struct tiermm_node_info info = { .sz = sizeof(info) };

		if (tiermm_topo_node(cfg->topo, i, &info) || info.os_index < 0 ||
		    info.os_index >= TIERMM__MAX_NODES)
			continue;
		if (info.tier == cfg->fast_tier)
			v->tier_class[info.os_index] = 0;
		else if (info.tier == cfg->slow_tier)
			v->tier_class[info.os_index] = 1;
	}
	ret = tiermm__mover_new(cfg->topo, cfg->pid, cfg->fast_tier, &v->fast);
	if (!ret)
		ret = tiermm__mover_new(cfg->topo, cfg->pid, cfg->slow_tier, &v->slow);
	if (ret) {
		env_close(v);
		return ret;
	}
	*out = v;
	return 0;
}

static bool managed(const char *perms, const char *name)
{
	if (perms[1] != 'w')
		return false;
	if (name[0] == '[')
		return !strcmp(name, "[heap]") || !strncmp(name, "[stack", 6) ||
		       !strncmp(name, "[anon:", 6);
	if (!strncmp(name, "/dev/", 5))
		return !strncmp(name, "/dev/zero", 9) || !strncmp(name, "/dev/shm/", 9);
	return true;
}

static FILE *open_proc(pid_t pid, const char *what)
{
	char path[64];

	if (pid)
		snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, what);
	else
		snprintf(path, sizeof(path), "/proc/self/%s", what);
	return fopen(path, "re");
}

static int cmp_start(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = ((const struct tiermm__mapping *)b)->start;

	return x < y ? -1 : x > y;
}

/* Add the per-node counts of numa_maps to the mappings found in maps. */
static void read_numa_maps(struct env *v, struct tiermm__mapping *m, size_t n)
{
	char *line = NULL;
	size_t cap = 0;
	FILE *f = open_proc(v->pid, "numa_maps");

	if (!f)
		return;
	while (getline(&line, &cap, f) > 0) {
		uint64_t start, pages[3] = { 0 }, kb = 4;
		struct tiermm__mapping *mp;
		char *save = NULL, *tok;

		if (sscanf(line, "%" SCNx64, &start) != 1)
			continue;
		mp = bsearch(&start, m, n, sizeof(*m), cmp_start);
		if (!mp)
			continue;
		strtok_r(line, " \n", &save);
		while ((tok = strtok_r(NULL, " \n", &save))) {
			unsigned int node;
			unsigned long long cnt;

			if (sscanf(tok, "N%u=%llu", &node, &cnt) == 2)
				pages[node < TIERMM__MAX_NODES ? v->tier_class[node] : 2] += cnt;
			else if (!strncmp(tok, "kernelpagesize_kB=", 18))
				kb = strtoull(tok + 18, NULL, 10);
		}
		mp->fast = pages[0] * kb * 1024;
		mp->slow = pages[1] * kb * 1024;
		mp->other = pages[2] * kb * 1024;
	}
	free(line);
	fclose(f);
}

/*
 * Which mappings PMD-mapped pages back (smaps: AnonHugePages,
 * ShmemPmdMapped, FilePmdMapped of each). Page mode asks which pages are
 * huge (PAGEMAP_SCAN, a walk of the page tables of the span asked about:
 * 2.6 ms for 512 MiB of 4 KiB pages in instruction time, per 512-page
 * list) only for pages inside those. Before, one huge page anywhere (a
 * 2 MiB page of the runtime's own heap) made every list walk the whole
 * span of the managed data, twice per move: status queries cost 8-16 us a
 * page instead of 0.7 (tierbench, zipf-shift). Read with the residency
 * (smaps walks the page tables once, as smaps_rollup did), so a huge page
 * in a mapping that had none is seen within RESIDENCY_EPOCHS.
 * Unreadable: every mapping counts as having some.
 */
static void read_thp_maps(struct env *v)
{
	char *line = NULL;
	size_t cap = 0;
	uint64_t lo = 0, hi = 0;
	FILE *f = open_proc(v->pid, "smaps");

	v->nthp = 0;
	v->thp_all = true;
	if (!f)
		return;
	while (getline(&line, &cap, f) > 0) {
		unsigned long long kb;
		uint64_t a, b;

		if (sscanf(line, "%" SCNx64 "-%" SCNx64 " ", &a, &b) == 2 && b > a) {
			lo = a;
			hi = b;
			continue;
		}
		if ((sscanf(line, "AnonHugePages: %llu", &kb) == 1 ||
		     sscanf(line, "ShmemPmdMapped: %llu", &kb) == 1 ||
		     sscanf(line, "FilePmdMapped: %llu", &kb) == 1) && kb && hi > lo) {
			if (v->nthp && v->thp[v->nthp - 1].start == lo)
				continue;
			if (v->nthp == v->thp_cap) {
				size_t nc = v->thp_cap ? v->thp_cap * 2 : 16;
				struct tiermm__mapping *t = realloc(v->thp, nc * sizeof(*t));

				if (!t)
					goto out;	/* thp_all stays set */
				v->thp = t;
				v->thp_cap = nc;
			}
			v->thp[v->nthp++] = (struct tiermm__mapping){ .start = lo, .end = hi };
		}
	}
	v->thp_all = false;
out:
	free(line);
	fclose(f);
}

/* Whether addr is in a mapping that huge pages back (or may). */
static bool thp_mapped(const struct env *v, uint64_t addr)
{
	size_t lo = 0, hi = v->nthp;

	if (v->thp_all)
		return true;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (addr < v->thp[mid].start)
			hi = mid;
		else if (addr >= v->thp[mid].end)
			lo = mid + 1;
		else
			return true;
	}
	return false;
}

static int env_mappings(void *p, bool residency, struct tiermm__mapping **out,
			size_t *nout)
{
	struct env *v = p;
	struct tiermm__mapping *m = NULL, *tmp;
	size_t n = 0, cap = 0, linecap = 0;
	char *line = NULL;
	int err;
	FILE *f = open_proc(v->pid, "maps");

	*out = NULL;
	*nout = 0;
	if (!f) {
		err = errno;
		if (err == ENOENT || err == ESRCH)
			return tiermm__fail(ESRCH, "tiering engine: process %d is gone",
					    (int)v->pid);
		return tiermm__fail(err, "tiering engine: /proc/%d/maps: %s", (int)v->pid,
				    strerror(err));
	}
	while (getline(&line, &linecap, f) > 0) {
		uint64_t lo, hi;
		char perms[8];
		int off = 0;
		const char *name;

		if (sscanf(line, "%" SCNx64 "-%" SCNx64 " %7s %*s %*s %*s%n", &lo, &hi, perms,
			   &off) != 3 || hi <= lo || (lo >> 63))
			continue;
		line[strcspn(line, "\n")] = '\0';
		name = line + off;
		name += strspn(name, " \t");
		if (!managed(perms, name))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			tmp = realloc(m, cap * sizeof(*m));
			if (!tmp) {
				free(m);
				free(line);
				fclose(f);
				return tiermm__fail(ENOMEM, "tiering engine: out of memory");
			}
			m = tmp;
		}
		m[n++] = (struct tiermm__mapping){ .start = lo, .end = hi };
	}
	free(line);
	fclose(f);
	if (!n && v->pid) {
		/* A zombie's maps are empty. */
		free(m);
		return tiermm__fail(ESRCH, "tiering engine: process %d has exited",
				    (int)v->pid);
	}
	if (residency) {
		read_numa_maps(v, m, n);
		read_thp_maps(v);
	}
	*out = m;
	*nout = n;
	return 0;
}

static void env_epoch(void *p)
{
	struct env *v = p;

	tiermm__mover_refresh(v->fast);
	tiermm__mover_refresh(v->slow);
}

static int env_move(void *p, uint64_t start, uint64_t end, int tier,
		    struct tiermm__move_ctl *ctl, struct tiermm_move_result *r)
{
	struct env *v = p;

	return tiermm__mover_run(tier == v->fast_tier ? v->fast : v->slow, start, end,
				 ctl, r);
}

/* As of the last epoch() (or open()): the nodes' free memory above the low
 * watermarks. */
static uint64_t env_tier_free(void *p, int tier)
{
	struct env *v = p;

	return tiermm__mover_free_bytes(tier == v->fast_tier ? v->fast : v->slow);
}

/* ---- page mode: lists of pages ---- */

#define LIST_MAX 512
#define HUGE_BYTES (2ULL << 20)
#define MF_MOVE (1 << 1)	/* MPOL_MF_MOVE */
#define BUSY_RETRIES 3

static long sys_move_pages(pid_t pid, unsigned long n, void **pages, const int *nodes,
			   int *status, int flags)
{
	return syscall(SYS_move_pages, pid, n, pages, nodes, status, flags);
}

static uint8_t where_of(const struct env *v, int status)
{
	if (status < 0 || status >= TIERMM__MAX_NODES)
		return TIERMM__WHERE_OTHER;
	return v->tier_class[status] == 0 ? TIERMM__WHERE_FAST :
	       v->tier_class[status] == 1 ? TIERMM__WHERE_SLOW : TIERMM__WHERE_OTHER;
}

/*
 * Whether the process has exited: no /proc entry, or a zombie, whose
 * memory is gone (move_pages(2) then fails with EINVAL, not ESRCH: it
 * finds the task but no mm).
 */
static bool proc_gone(const struct env *v)
{
	char buf[512], *rp;
	size_t len;
	FILE *f = open_proc(v->pid, "stat");

	if (!f)
		return true;
	len = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[len] = 0;
	rp = strrchr(buf, ')');
	if (rp && (rp[1] == ' ') && (rp[2] == 'Z' || rp[2] == 'X'))
		return true;
	/*
	 * Exiting but not a zombie yet: move_pages(2) fails with EINVAL once
	 * the task has let go of its memory (exit_mm()), and its maps read
	 * empty from then on (vm.runtime.scan's exit test hit that window).
	 */
	f = open_proc(v->pid, "maps");
	if (!f)
		return true;
	len = fread(buf, 1, 1, f);
	fclose(f);
	return len == 0;
}

static int list_error(const struct env *v, int err)
{
	if (err == ESRCH || (err == EINVAL && proc_gone(v)))
		return tiermm__fail(ESRCH, "tiering engine: process %d is gone", (int)v->pid);
	return tiermm__fail(err, "tiering engine: move_pages(2) on process %d: %s",
			    (int)v->pid, strerror(err));
}

/* The tier's node with the most usable free memory. */
static int list_target(const struct env *v, int tier)
{
	int n, best = -1;
	const int *nodes = tiermm__mover_nodes(tier == v->fast_tier ? v->fast : v->slow, &n);
	int64_t most = INT64_MIN;

	for (int i = 0; i < n; i++) {
		int64_t f = tiermm__node_usable_free(nodes[i]);

		if (f > most) {
			most = f;
			best = nodes[i];
		}
	}
	return best;
}

/*
 * The pages of addrs[] that transparent huge pages map: huge[i] set, and
 * rep[i] the first entry of the list in the same huge page (i itself for
 * the first). One PAGEMAP_SCAN query covers up to 128 GiB (a bitmap of
 * 64 Ki huge pages); a list spread wider (a heap and a mapping far above
 * it, a reservation of hundreds of GiB) is asked about window by window.
 * Counting a huge page as a base page is not harmless: the engine then
 * thinks it moved 4 KiB where 2 MiB went, and over-fills the fast tier
 * (seen in the guest with a 256 GiB reservation beside the managed data).
 * Without PAGEMAP_SCAN (before 6.7) every entry counts as a base page; so
 * do entries in mappings no huge page backs (read_thp_maps()).
 */
static void list_huge(const struct env *v, const uint64_t *addrs, size_t n,
		      bool *huge, size_t *rep)
{
	uint64_t bits[1024];
	const uint64_t span = sizeof(bits) * 8 * HUGE_BYTES;
	bool done[LIST_MAX];

	if (n > LIST_MAX)
		n = 0;	/* (callers split lists: cannot be) */
	for (size_t i = 0; i < n; i++) {
		huge[i] = false;
		rep[i] = i;
		done[i] = !thp_mapped(v, addrs[i]);
	}
	for (;;) {
		uint64_t lo = UINT64_MAX, hi = 0;
		size_t nbits;
		bool ok;

		for (size_t i = 0; i < n; i++)
			if (!done[i] && addrs[i] < lo)
				lo = addrs[i];
		if (lo == UINT64_MAX)
			break;
		lo &= ~(HUGE_BYTES - 1);
		for (size_t i = 0; i < n; i++)
			if (!done[i] && addrs[i] - lo < span && addrs[i] > hi)
				hi = addrs[i];
		nbits = (size_t)((hi - lo) / HUGE_BYTES + 1);
		ok = !tiermm__huge_blocks(v->pid, lo, lo + nbits * HUGE_BYTES, bits, nbits);
		for (size_t i = 0; i < n; i++) {
			uint64_t k = (addrs[i] - lo) / HUGE_BYTES;

			if (done[i] || addrs[i] < lo || addrs[i] - lo >= span)
				continue;
			done[i] = true;
			huge[i] = ok && (bits[k / 64] & (1ULL << (k % 64)));
		}
	}
	for (size_t i = 0; i < n; i++) {
		if (!huge[i])
			continue;
		for (size_t j = 0; j < i; j++)
			if (huge[j] && addrs[j] / HUGE_BYTES == addrs[i] / HUGE_BYTES) {
				rep[i] = j;
				break;
			}
	}
}

/* Where each of up to LIST_MAX pages is (huge[]: or-ed in). */
static int where_list(const struct env *v, const uint64_t *addrs, size_t n,
		      const bool *huge, uint8_t *cls)
{
	void *pages[LIST_MAX];
	int status[LIST_MAX];

	for (size_t i = 0; i < n; i++)
		pages[i] = (void *)(uintptr_t)addrs[i];
	if (sys_move_pages(v->pid, n, pages, NULL, status, 0))
		return list_error(v, errno);
	for (size_t i = 0; i < n; i++)
		cls[i] = where_of(v, status[i]) | (huge[i] ? TIERMM__WHERE_HUGE : 0);
	return 0;
}

/* Where each page is; TIERMM__WHERE_HUGE or-ed in for THP-mapped ones. */
static int env_where(void *p, const uint64_t *addrs, size_t n, uint8_t *cls)
{
	struct env *v = p;
	size_t rep[LIST_MAX];
	bool huge[LIST_MAX];

	for (size_t off = 0; off < n; off += LIST_MAX) {
		size_t k = n - off < LIST_MAX ? n - off : LIST_MAX;
		int ret;

		list_huge(v, addrs + off, k, huge, rep);
		ret = where_list(v, addrs + off, k, huge, cls + off);
		if (ret)
			return ret;
	}
	return 0;
}

/*
 * Move a list of pages with one move_pages(2) call (and up to BUSY_RETRIES
 * more for pages the kernel could not isolate, 1, 2, 4 ms apart); the
 * status of each page is where it landed, which is what the counts and
 * cls[] report. A page inside a transparent huge page moves it whole: it
 * is handed over once (other entries in the same huge page follow its
 * fate), counted as 512 pages, and cls[] has TIERMM__WHERE_HUGE for it.
 */
static int env_move_list(void *p, const uint64_t *addrs, size_t n, int tier,
			 uint8_t *cls, struct tiermm_move_result *r)
{
	struct env *v = p;
	void *pages[LIST_MAX];
	int nodes[LIST_MAX], status[LIST_MAX];
	size_t idx[LIST_MAX], rep[LIST_MAX], k = 0;
	bool huge[LIST_MAX];
	uint8_t want = tier == v->fast_tier ? TIERMM__WHERE_FAST : TIERMM__WHERE_SLOW;
	int node = list_target(v, tier);
	const uint64_t hp = HUGE_BYTES / 4096;

	memset(r, 0, sizeof(*r));
	r->sz = sizeof(*r);
	if (n > LIST_MAX)
		return tiermm__fail(EINVAL, "tiering engine: %zu pages in one list (at most %d)",
				    n, LIST_MAX);
	if (node < 0)
		return tiermm__fail(ENODEV, "tiering engine: tier %d has no node", tier);
	list_huge(v, addrs, n, huge, rep);
	/* Where they are now: those already there, and those absent, stay. */
	if (where_list(v, addrs, n, huge, cls))
		return -errno;
	for (size_t i = 0; i < n; i++) {
		uint64_t w = huge[i] ? hp : 1;

		if (rep[i] != i)
			continue;
		r->pages += w;
		if (huge[i])
			r->huge++;
		if ((cls[i] & ~TIERMM__WHERE_HUGE) == want) {
			r->already_there += w;
			continue;
		}
		idx[k] = i;
		pages[k] = (void *)(uintptr_t)addrs[i];
		nodes[k] = node;
		k++;
	}
	for (int round = 0; k && round <= BUSY_RETRIES; round++) {
		size_t busy = 0;

		if (round) {
			struct timespec ts = { 0, 1000000L << (round - 1) };

			nanosleep(&ts, NULL);
			r->retries++;
		}
		r->syscalls++;
		if (sys_move_pages(v->pid, k, pages, nodes, status, MF_MOVE) < 0) {
			int err = errno;

			if (err == ENOMEM) {
				/*
				 * The target node is full (the call stops without
				 * statuses): the pages stay, counted as such.
				 */
				for (size_t j = 0; j < k; j++) {
					uint64_t w = huge[idx[j]] ? hp : 1;

					r->failed += w;
					r->failed_nomem += w;
					cls[idx[j]] = TIERMM__WHERE_OTHER;
				}
				if (!r->first_error) {
					r->first_failed = (uint64_t)(uintptr_t)pages[0];
					r->first_error = ENOMEM;
				}
				break;
			}
			if (err != ENOENT && err != EBUSY && err != EAGAIN)
				return list_error(v, err);
		}
		for (size_t j = 0; j < k; j++) {
			size_t i = idx[j];
			int st = status[j];
			uint64_t w = huge[i] ? hp : 1;

			if (st >= 0 && where_of(v, st) == want) {
				cls[i] = want;
				r->moved += w;
				continue;
			}
			if ((st == -EBUSY || st == -EAGAIN) && round < BUSY_RETRIES) {
				idx[busy] = i;
				pages[busy] = pages[j];
				busy++;
				continue;
			}
			if (st == -ENOENT) {
				r->not_present += w;
				cls[i] = TIERMM__WHERE_OTHER;
				continue;
			}
			if (st >= 0)
				r->failed_other += w;	/* landed elsewhere */
			else if (st == -EBUSY || st == -EAGAIN)
				r->failed_busy += w;
			else if (st == -ENOMEM)
				r->failed_nomem += w;
			else if (st == -EFAULT)
				r->failed_fault += w;
			else
				r->failed_other += w;
			cls[i] = st >= 0 ? where_of(v, st) : TIERMM__WHERE_OTHER;
			if (!r->failed) {
				r->first_failed = addrs[i];
				r->first_error = st < 0 ? -st : EIO;
			}
			r->failed += w;
		}
		k = busy;
	}
	for (size_t i = 0; i < n; i++) {
		if (rep[i] != i)
			cls[i] = cls[rep[i]];
		if (huge[i])
			cls[i] |= TIERMM__WHERE_HUGE;
	}
	return 0;
}

const struct tiermm__env_ops tiermm__real_env = {
	.open = env_open,
	.close = env_close,
	.mappings = env_mappings,
	.epoch = env_epoch,
	.move = env_move,
	.tier_free = env_tier_free,
	.where = env_where,
	.move_list = env_move_list,
};
