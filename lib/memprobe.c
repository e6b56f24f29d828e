// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Memory micro-probes: load-to-use latency (dependent pointer chase) and
 * streaming read/write bandwidth from given CPUs to one NUMA node.
 *
 * The buffer is an anonymous mapping bound to the target node with
 * mbind(MPOL_BIND, MPOL_MF_STRICT | MPOL_MF_MOVE), first touched by the
 * measuring thread(s), then checked page by page with move_pages(2): a
 * number is only reported for memory that really is on the target node.
 *
 * The NUMA system calls are made directly (as in caps.c), so libtiermm
 * does not depend on libnuma.
 *
 * Every measurement runs on worker threads created pinned to the requested
 * CPUs (pthread_attr_setaffinity_np), so the caller's affinity and memory
 * policy are never touched. Worker threads cannot use tiermm__fail() (its
 * message is thread-local), so they hand an errno and a message back to the
 * calling thread, which records the failure.
 *
 * Defaults: the buffer is 4x the largest cache of the measuring CPU (at
 * least 64 MiB, at most 1 GiB) and at most half of the target node's free
 * memory; the time budget is 2 s per measurement (for bandwidth, half for
 * reads and half for writes). Set-up (allocation, first touch, building
 * the chase, placement check) is proportional to the buffer size and not
 * counted in the budget.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <linux/mempolicy.h>

#include "internal.h"
#include "probes.h"

#define MP_LINE		64			/* bytes of one chase slot */
#define MP_MIB		((uint64_t)1 << 20)
#define MP_DEF_MIN	(64 * MP_MIB)		/* default buffer, lower bound */
#define MP_DEF_MAX	(1024 * MP_MIB)		/* default buffer, upper bound */
#define MP_CACHE_MULT	4			/* default = this x largest cache */
#define MP_BUDGET_DEF	2.0			/* seconds per measurement */
#define MP_BUDGET_MAX	3600.0
#define MP_LAT_REPS	5			/* latency: best of this many */
#define MP_BW_CHUNK	(1024 * 1024)		/* bandwidth: clock check period */
#define MP_BW_MAXPASS	100000
#define MP_VERIFY_MAX	(256 * 1024)		/* pages queried, at most */
#define MP_VERIFY_BATCH	1024
#define MP_HUGE		(2 * MP_MIB)		/* THP alignment */
#define MP_NODE_WORDS	(TIERMM__MAX_NODES / 64)
#define MP_MSG		256

#define NODE_SYSFS "/sys/devices/system/node"

/* ---- small helpers ---- */

static long sys_mbind(void *addr, size_t len, int mode,
		      const unsigned long *mask, unsigned long maxnode,
		      unsigned int flags)
{
	return syscall(SYS_mbind, addr, (unsigned long)len, (unsigned long)mode,
		       mask, maxnode, (unsigned long)flags);
}

static long sys_get_mempolicy(int *mode, unsigned long *mask,
			      unsigned long maxnode, void *addr,
			      unsigned long flags)
{
	return syscall(SYS_get_mempolicy, mode, mask, maxnode, addr, flags);
}

static long sys_move_pages(unsigned long count, void **pages, int *status)
{
	return syscall(SYS_move_pages, 0, count, pages, NULL, status, 0);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* xorshift64* (Vigna): fast, good enough to defeat prefetchers. */
static uint64_t rng_next(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1DULL;
}

/* Uniform-enough value in [0, n) (multiply-high reduction). */
static size_t rng_below(uint64_t *s, size_t n)
{
	return (size_t)(((unsigned __int128)rng_next(s) * n) >> 64);
}

static void msg_set(char *msg, const char *fmt, ...) TIERMM__PRINTF(2, 3);
static void msg_set(char *msg, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, MP_MSG, fmt, ap);
	va_end(ap);
}

/* "32768K", "1M", "512" -> bytes; 0 if unparsable. */
static uint64_t parse_size(const char *s)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return 0;
	switch (*end) {
	case 'K': case 'k': return v << 10;
	case 'M': case 'm': return v << 20;
	case 'G': case 'g': return v << 30;
	case '\0': return v;
	default: return 0;
	}
}

/* Largest cache of CPU cpu (0 if sysfs says nothing). */
static uint64_t largest_cache(const struct tiermm__fs *fs, int cpu)
{
	uint64_t best = 0;

	for (int i = 0; i < 32; i++) {
		char path[128], buf[64];
		uint64_t v;

		snprintf(path, sizeof(path),
			 "/sys/devices/system/cpu/cpu%d/cache/index%d/size", cpu, i);
		if (tiermm__fs_read(fs, path, buf, sizeof(buf)) < 0) {
			if (i >= 4)	/* indexes are dense; allow a gap early */
				break;
			continue;
		}
		v = parse_size(buf);
		if (v > best)
			best = v;
	}
	return best;
}

/* "Node 0 MemFree:  5437188 kB" from nodeN/meminfo; 0 or -errno. */
static int node_meminfo(const struct tiermm__fs *fs, int node, const char *key,
			uint64_t *bytes)
{
	char path[128], buf[8192];
	const char *p;
	ssize_t n;

	snprintf(path, sizeof(path), NODE_SYSFS "/node%d/meminfo", node);
	n = tiermm__fs_read(fs, path, buf, sizeof(buf));
	if (n < 0)
		return (int)n;
	p = strstr(buf, key);
	if (!p)
		return -ENOENT;
	p += strlen(key);
	while (*p == ' ' || *p == ':')
		p++;
	*bytes = strtoull(p, NULL, 10) * 1024;
	return 0;
}

/* Read a node list file into bits; -errno if absent or malformed. */
static int node_list(const struct tiermm__fs *fs, const char *file,
		     uint64_t *bits)
{
	char buf[4096];
	ssize_t n = tiermm__fs_read(fs, file, buf, sizeof(buf));

	if (n < 0)
		return (int)n;
	return tiermm__list_parse(buf, bits, TIERMM__MAX_NODES);
}

/* ---- argument checks ---- */

static int check_cpus(const int *cpus, int ncpus)
{
	size_t setsz = CPU_ALLOC_SIZE(TIERMM__CPU_BITS);
	cpu_set_t *set;
	char list[128];
	int ret = 0;

	if (!cpus || ncpus <= 0)
		return tiermm__fail(EINVAL,
				    "memory probe: %d CPUs given; give at least one CPU to measure from",
				    cpus ? ncpus : 0);
	if (ncpus > TIERMM__CPU_BITS)
		return tiermm__fail(EINVAL,
				    "memory probe: %d CPUs given, more than the %d supported",
				    ncpus, TIERMM__CPU_BITS);
	set = CPU_ALLOC(TIERMM__CPU_BITS);
	if (!set)
		return tiermm__fail(ENOMEM, "memory probe: out of memory");
	if (sched_getaffinity(0, setsz, set)) {
		ret = tiermm__fail(errno,
				   "memory probe: cannot read the calling thread's CPU affinity: %s",
				   strerror(errno));
		goto out;
	}
	for (int i = 0; i < ncpus; i++) {
		int c = cpus[i];

		if (c < 0 || c >= TIERMM__CPU_BITS) {
			ret = tiermm__fail(EINVAL,
					   "memory probe: CPU %d is not a valid CPU number (0-%d)",
					   c, TIERMM__CPU_BITS - 1);
			goto out;
		}
		if (!CPU_ISSET_S((size_t)c, setsz, set)) {
			uint64_t bits[TIERMM__CPU_BITS / 64] = { 0 };

			for (int j = 0; j < TIERMM__CPU_BITS; j++)
				if (CPU_ISSET_S((size_t)j, setsz, set))
					bits[j / 64] |= 1ULL << (j % 64);
			tiermm__list_format(bits, TIERMM__CPU_BITS, list,
					    sizeof(list));
			ret = tiermm__fail(EINVAL,
					   "memory probe: CPU %d is not in the calling thread's allowed CPUs (%s)",
					   c, list);
			goto out;
		}
	}
out:
	CPU_FREE(set);
	return ret;
}

/* The node must be online, have memory, and be allowed by the cpuset. */
static int check_node(const struct tiermm__fs *fs, int node)
{
	uint64_t online[MP_NODE_WORDS], mem[MP_NODE_WORDS];
	unsigned long allowed[TIERMM__MAX_NODES / (8 * sizeof(long))];
	char list[128];
	uint64_t total = 0;
	int n;

	if (node < 0 || node >= TIERMM__MAX_NODES)
		return tiermm__fail(EINVAL,
				    "memory probe: node %d has no memory: not a valid node number (0-%d)",
				    node, TIERMM__MAX_NODES - 1);
	n = node_list(fs, NODE_SYSFS "/online", online);
	if (n == -ENOENT) {	/* kernel without NUMA: only node 0 */
		memset(online, 0, sizeof(online));
		online[0] = 1;
	} else if (n < 0) {
		return tiermm__fail(-n, "memory probe: cannot read %s/online: %s",
				    NODE_SYSFS, strerror(-n));
	}
	if (!tiermm__bit_test(online, (unsigned int)node)) {
		tiermm__list_format(online, TIERMM__MAX_NODES, list, sizeof(list));
		return tiermm__fail(EINVAL,
				    "memory probe: node %d has no memory: it is not online (online nodes: %s)",
				    node, list);
	}
	n = node_list(fs, NODE_SYSFS "/has_memory", mem);
	if (n >= 0 ? !tiermm__bit_test(mem, (unsigned int)node) :
	    (node_meminfo(fs, node, "MemTotal", &total) == 0 && total == 0))
		return tiermm__fail(EINVAL,
				    "memory probe: node %d has no memory (it is online but memory-less)",
				    node);
	memset(allowed, 0, sizeof(allowed));
	if (sys_get_mempolicy(NULL, allowed, TIERMM__MAX_NODES, NULL,
			      MPOL_F_MEMS_ALLOWED) == 0 &&
	    !(allowed[node / (8 * sizeof(long))] &
	      (1UL << (node % (8 * sizeof(long)))))) {
		uint64_t bits[MP_NODE_WORDS] = { 0 };

		for (int i = 0; i < TIERMM__MAX_NODES; i++)
			if (allowed[i / (8 * sizeof(long))] &
			    (1UL << (i % (8 * sizeof(long)))))
				bits[i / 64] |= 1ULL << (i % 64);
		tiermm__list_format(bits, TIERMM__MAX_NODES, list, sizeof(list));
		return tiermm__fail(EINVAL,
				    "memory probe: node %d is not in the calling process's allowed memory nodes (cpuset mems: %s)",
				    node, list);
	}
	return 0;
}

static int check_params(const struct tiermm__memprobe_params *p,
			double *budget)
{
	double b = p ? p->budget_s : 0;

	if (isnan(b) || b < 0 || b > MP_BUDGET_MAX)
		return tiermm__fail(EINVAL,
				    "memory probe: time budget %g s is out of range (0 for the default, or up to %g s)",
				    b, MP_BUDGET_MAX);
	*budget = b > 0 ? b : MP_BUDGET_DEF;
	return 0;
}

/*
 * Buffer size: explicit (rounded up to pages, at least minimum bytes) or
 * the default described at the top, clipped to half the node's free memory.
 */
static int buffer_size(const struct tiermm__fs *fs, int cpu, int node,
		       const struct tiermm__memprobe_params *p, size_t minimum,
		       size_t pagesz, size_t *out)
{
	uint64_t freeb = 0, want;
	bool have_free = node_meminfo(fs, node, "MemFree", &freeb) == 0;

	if (p && p->bytes) {
		if (p->bytes < minimum)
			return tiermm__fail(EINVAL,
					    "memory probe: buffer of %zu bytes is too small (at least %zu)",
					    p->bytes, minimum);
		if (p->bytes > SIZE_MAX / 4 ||
		    (have_free && p->bytes > freeb))
			return tiermm__fail(ENOMEM,
					    "memory probe: buffer of %zu MiB does not fit in node %d's %" PRIu64 " MiB of free memory",
					    p->bytes / (size_t)MP_MIB, node,
					    freeb / MP_MIB);
		want = p->bytes;
	} else {
		uint64_t cache = largest_cache(fs, cpu);

		if (!cache)
			cache = largest_cache(fs, 0);
		want = cache * MP_CACHE_MULT;
		if (want < MP_DEF_MIN)
			want = MP_DEF_MIN;
		if (want > MP_DEF_MAX)
			want = MP_DEF_MAX;
		if (have_free && want > freeb / 2)
			want = freeb / 2;
		want -= want % pagesz;
		if (want < minimum || want < 1 * MP_MIB)
			return tiermm__fail(ENOMEM,
					    "memory probe: node %d has only %" PRIu64 " KiB of free memory, too little to measure",
					    node, freeb / 1024);
		tiermm__log(TIERMM_LOG_DEBUG,
			    "memprobe: default buffer %" PRIu64 " MiB (largest cache %" PRIu64 " KiB, node %d free %" PRIu64 " MiB)",
			    want / MP_MIB, cache / 1024, node, freeb / MP_MIB);
	}
	want = (want + pagesz - 1) / pagesz * pagesz;
	*out = (size_t)want;
	return 0;
}

/* ---- the bound buffer ---- */

struct mp_buf {
	void *map;		/* the whole mapping */
	size_t maplen;
	char *p;		/* the bound, 2 MiB-aligned part */
	size_t len;
};

static void buf_free(struct mp_buf *b)
{
	if (b->map && b->map != MAP_FAILED)
		munmap(b->map, b->maplen);
	b->map = NULL;
}

static int buf_alloc(struct mp_buf *b, size_t len, int node)
{
	unsigned long mask[TIERMM__MAX_NODES / (8 * sizeof(long))];
	int err;

	memset(b, 0, sizeof(*b));
	b->maplen = len + MP_HUGE;
	b->map = mmap(NULL, b->maplen, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (b->map == MAP_FAILED) {
		err = errno;
		b->map = NULL;
		return tiermm__fail(err,
				    "memory probe: cannot map a %zu MiB buffer: %s",
				    len / (size_t)MP_MIB, strerror(err));
	}
	b->p = (char *)(((uintptr_t)b->map + MP_HUGE - 1) & ~(uintptr_t)(MP_HUGE - 1));
	b->len = len;
	/* Fewer TLB misses: measure the memory, not the page walk. */
	(void)madvise(b->p, len, MADV_HUGEPAGE);
	memset(mask, 0, sizeof(mask));
	mask[node / (8 * sizeof(long))] = 1UL << (node % (8 * sizeof(long)));
	/* maxnode is one more than the bits passed (the kernel drops one). */
	if (sys_mbind(b->p, len, MPOL_BIND, mask, TIERMM__MAX_NODES + 1,
		      MPOL_MF_STRICT | MPOL_MF_MOVE)) {
		err = errno;
		buf_free(b);
		return tiermm__fail(err,
				    "memory probe: mbind(MPOL_BIND) of a %zu MiB buffer to node %d failed: %s%s",
				    len / (size_t)MP_MIB, node, strerror(err),
				    err == ENOSYS ? " (kernel without NUMA support)" : "");
	}
	return 0;
}

/*
 * Check with move_pages (query only) that the pages of [p, p+len) are on
 * node: all of them, or an even sample of MP_VERIFY_MAX for huge buffers.
 * 0, or an errno with msg filled.
 */
static int buf_verify(const char *p, size_t len, size_t pagesz, int node,
		      char *msg)
{
	size_t npages = len / pagesz, stride, checked = 0, elsewhere = 0;
	size_t missing = 0, first_off = 0;
	int first_node = -1;
	void *pages[MP_VERIFY_BATCH];
	int status[MP_VERIFY_BATCH];

	stride = (npages + MP_VERIFY_MAX - 1) / MP_VERIFY_MAX;
	if (!stride)
		stride = 1;
	for (size_t i = 0; i < npages;) {
		unsigned long n = 0;

		for (; i < npages && n < MP_VERIFY_BATCH; i += stride)
			pages[n++] = (void *)(p + i * pagesz);
		if (sys_move_pages(n, pages, status) < 0) {
			int err = errno;

			msg_set(msg, "memory probe: move_pages query of the buffer's placement failed: %s",
				strerror(err));
			return err;
		}
		for (unsigned long k = 0; k < n; k++) {
			if (status[k] == node)
				continue;
			if (status[k] < 0) {
				missing++;
			} else if (elsewhere++ == 0) {
				first_off = (size_t)((const char *)pages[k] - p);
				first_node = status[k];
			}
		}
		checked += n;
	}
	if (elsewhere || missing) {
		if (elsewhere)
			msg_set(msg, "memory probe: %zu of %zu pages checked landed off node %d (first at offset %zu on node %d)%s",
				elsewhere + missing, checked, node, first_off,
				first_node, missing ? ", some not even present" : "");
		else
			msg_set(msg, "memory probe: %zu of %zu pages checked are not present after being touched (bound to node %d)",
				missing, checked, node);
		return EIO;
	}
	tiermm__log(TIERMM_LOG_DEBUG,
		    "memprobe: placement verified: %zu of %zu pages checked, all on node %d",
		    checked, npages, node);
	return 0;
}

static int start_pinned(pthread_t *t, int cpu, void *(*fn)(void *), void *arg)
{
	size_t setsz = CPU_ALLOC_SIZE(TIERMM__CPU_BITS);
	cpu_set_t *set = CPU_ALLOC(TIERMM__CPU_BITS);
	pthread_attr_t attr;
	int err;

	if (!set)
		return ENOMEM;
	CPU_ZERO_S(setsz, set);
	CPU_SET_S((size_t)cpu, setsz, set);
	err = pthread_attr_init(&attr);
	if (!err) {
		err = pthread_attr_setaffinity_np(&attr, setsz, set);
		if (!err)
			err = pthread_create(t, &attr, fn, arg);
		pthread_attr_destroy(&attr);
	}
	CPU_FREE(set);
	return err;
}

/* ---- latency ---- */

struct mp_slot {
	struct mp_slot *next;
	char pad[MP_LINE - sizeof(struct mp_slot *)];
};

struct lat_ctx {
	char *p;
	size_t len, pagesz;
	int node, cpu;
	double budget;
	double ns;		/* out */
	int err;		/* out: errno or 0 */
	char msg[MP_MSG];	/* out */
	volatile uintptr_t sink;
};

/*
 * n dependent loads (n a multiple of 8). The kernels below declare their
 * loop variables register so that a -O0 (Debug) build of the library
 * keeps them out of the stack and still measures the memory.
 */
static __attribute__((noinline)) struct mp_slot *
chase(struct mp_slot *start, uint64_t n)
{
	register struct mp_slot *s = start;

	for (register uint64_t i = 0; i < n; i += 8) {
		s = s->next; s = s->next; s = s->next; s = s->next;
		s = s->next; s = s->next; s = s->next; s = s->next;
	}
	return s;
}

static void *lat_worker(void *arg)
{
	struct lat_ctx *c = arg;
	struct mp_slot *slot = (struct mp_slot *)c->p, *s;
	size_t n = c->len / MP_LINE;
	uint64_t seed = 0x9E3779B97F4A7C15ULL ^ ((uint64_t)c->node << 32) ^
			(uint64_t)c->cpu, chunk, loads;
	double t0, t, share, best = INFINITY, setup = now_s();

	/* First touch, in address order, from the measuring CPU. */
	for (size_t i = 0; i < n; i++)
		slot[i].next = &slot[i];
	/* Sattolo's shuffle: slot i -> slot[i].next is one cycle over all. */
	for (size_t i = n - 1; i > 0; i--) {
		size_t j = rng_below(&seed, i);
		struct mp_slot *tmp = slot[i].next;

		slot[i].next = slot[j].next;
		slot[j].next = tmp;
	}
	c->err = buf_verify(c->p, c->len, c->pagesz, c->node, c->msg);
	if (c->err)
		return NULL;
	tiermm__log(TIERMM_LOG_DEBUG, "memprobe: latency set-up took %.3f s",
		    now_s() - setup);

	/* Calibrate: size a chunk of loads to about 1 ms between clock reads. */
	s = slot;
	chunk = 4096;
	t0 = now_s();
	s = chase(s, chunk);
	t = now_s() - t0;
	if (t > 0)
		chunk = (uint64_t)(chunk * 1e-3 / t);
	chunk = chunk < 64 ? 64 : chunk > (1 << 22) ? (1 << 22) : chunk;
	chunk &= ~(uint64_t)7;
	share = c->budget / MP_LAT_REPS;
	for (int r = 0; r < MP_LAT_REPS; r++) {
		loads = 0;
		t0 = now_s();
		do {
			s = chase(s, chunk);
			loads += chunk;
			t = now_s() - t0;
		} while (t < share);
		if (t > 0 && t * 1e9 / (double)loads < best)
			best = t * 1e9 / (double)loads;
		tiermm__log(TIERMM_LOG_DEBUG,
			    "memprobe: latency cpu %d -> node %d, rep %d: %" PRIu64 " loads in %.3f s = %.2f ns",
			    c->cpu, c->node, r, loads, t, t * 1e9 / (double)loads);
	}
	c->sink = (uintptr_t)s;
	if (!isfinite(best) || best <= 0) {
		msg_set(c->msg, "memory probe: the clock did not advance during the measurement");
		c->err = EIO;
		return NULL;
	}
	c->ns = best;
	return NULL;
}

int tiermm__probe_latency(const int *cpus, int ncpus, int target_node,
			  const struct tiermm__memprobe_params *p, double *ns)
{
	struct tiermm__fs fs;
	struct lat_ctx *c;
	struct mp_buf b;
	size_t pagesz = (size_t)sysconf(_SC_PAGESIZE), len;
	double budget = 0;
	pthread_t t;
	int ret, saved = errno;

	if (!ns)
		return tiermm__fail(EINVAL, "memory probe: no place for the result (ns is NULL)");
	ret = check_cpus(cpus, ncpus);
	if (ret)
		return ret;
	ret = tiermm__fs_init(&fs, NULL);
	if (ret)
		return ret;
	ret = check_node(&fs, target_node);
	if (!ret)
		ret = check_params(p, &budget);
	if (!ret)
		ret = buffer_size(&fs, cpus[0], target_node, p, pagesz, pagesz,
				  &len);
	if (ret)
		return ret;
	c = calloc(1, sizeof(*c));
	if (!c)
		return tiermm__fail(ENOMEM, "memory probe: out of memory");
	ret = buf_alloc(&b, len, target_node);
	if (ret) {
		free(c);
		return ret;
	}
	c->p = b.p;
	c->len = len;
	c->pagesz = pagesz;
	c->node = target_node;
	c->cpu = cpus[0];
	c->budget = budget;
	ret = start_pinned(&t, cpus[0], lat_worker, c);
	if (ret) {
		ret = tiermm__fail(ret,
				   "memory probe: cannot start a thread on CPU %d: %s",
				   cpus[0], strerror(ret));
	} else {
		pthread_join(t, NULL);
		if (c->err) {
			ret = tiermm__fail(c->err, "%s", c->msg);
		} else {
			*ns = c->ns;
			errno = saved;	/* success leaves errno alone */
			tiermm__log(TIERMM_LOG_DEBUG,
				    "memprobe: latency cpu %d -> node %d: %.2f ns (%zu MiB buffer)",
				    cpus[0], target_node, c->ns,
				    len / (size_t)MP_MIB);
		}
	}
	buf_free(&b);
	free(c);
	return ret;
}

/* ---- bandwidth ---- */

/* A reusable barrier (pthread_barrier_t cannot be told to give up). */
struct mp_barrier {
	pthread_mutex_t m;
	pthread_cond_t cv;
	int count, waiting;
	unsigned int gen;
};

static void barrier_wait(struct mp_barrier *b)
{
	unsigned int gen;

	pthread_mutex_lock(&b->m);
	gen = b->gen;
	if (++b->waiting == b->count) {
		b->waiting = 0;
		b->gen++;
		pthread_cond_broadcast(&b->cv);
	} else {
		while (gen == b->gen)
			pthread_cond_wait(&b->cv, &b->m);
	}
	pthread_mutex_unlock(&b->m);
}

enum bw_cmd { BW_STOP, BW_READ, BW_WRITE };

struct bw_shared {
	struct mp_barrier bar;
	/* Start gate: opened once every thread exists (or on failure). */
	pthread_mutex_t gm;
	pthread_cond_t gcv;
	bool open, abort;
	enum bw_cmd cmd;	/* written by the leader between barriers */
	double deadline;	/* monotonic seconds: stop a pass here */
	uint64_t pattern;
};

struct bw_thread {
	struct bw_shared *sh;
	uint64_t *p;		/* this thread's slice */
	size_t words;
	double t;		/* out: duration of the last pass */
	uint64_t bytes;		/* out: bytes moved in the last pass */
	volatile uint64_t sink;
} __attribute__((aligned(64)));

/* Two 64-bit words per operation (GCC/Clang vector extension). */
typedef uint64_t mp_v2 __attribute__((vector_size(16), may_alias));

/* Sum of the n 64-bit words at p (n a multiple of 16, p 16-aligned). */
static __attribute__((noinline)) uint64_t read_words(const uint64_t *p,
						     size_t n)
{
	register const mp_v2 *v = (const mp_v2 *)p, *end = v + n / 2;
	register mp_v2 a = { 0, 0 }, b = { 0, 0 }, c = { 0, 0 }, d = { 0, 0 };

	for (; v < end; v += 8) {
		a += v[0] + v[4];
		b += v[1] + v[5];
		c += v[2] + v[6];
		d += v[3] + v[7];
	}
	mp_v2 sum = a + b + c + d;	/* not register: subscripted */

	return sum[0] + sum[1];
}

/* Store x to the n 64-bit words at p (n a multiple of 16, p 16-aligned). */
static __attribute__((noinline)) void write_words(uint64_t *p, size_t n,
						  uint64_t x)
{
	register mp_v2 *v = (mp_v2 *)p, *end = v + n / 2;
	register mp_v2 val = { x, x };

	for (; v < end; v += 8) {
		v[0] = val; v[1] = val; v[2] = val; v[3] = val;
		v[4] = val; v[5] = val; v[6] = val; v[7] = val;
	}
}

static void bw_pass(struct bw_thread *w, enum bw_cmd cmd, double deadline,
		    uint64_t pattern)
{
	const size_t step = MP_BW_CHUNK / sizeof(uint64_t);
	uint64_t sum = 0, bytes = 0;
	double t0 = now_s(), t1 = t0;

	for (size_t i = 0; i < w->words; i += step) {
		size_t n = w->words - i < step ? w->words - i : step;

		if (cmd == BW_READ)
			sum += read_words(w->p + i, n);
		else
			write_words(w->p + i, n, pattern);
		bytes += n * sizeof(uint64_t);
		t1 = now_s();
		if (t1 >= deadline)
			break;
	}
	w->sink = sum;
	w->t = t1 - t0;
	w->bytes = bytes;
}

static void *bw_worker(void *arg)
{
	struct bw_thread *w = arg;
	struct bw_shared *sh = w->sh;
	bool give_up;

	pthread_mutex_lock(&sh->gm);
	while (!sh->open)
		pthread_cond_wait(&sh->gcv, &sh->gm);
	give_up = sh->abort;
	pthread_mutex_unlock(&sh->gm);
	if (give_up)
		return NULL;
	/* First touch of the slice, from its CPU. */
	write_words(w->p, w->words, 0x5555555555555555ULL);
	barrier_wait(&sh->bar);		/* touched */
	barrier_wait(&sh->bar);		/* placement checked */
	if (sh->abort)
		return NULL;
	for (;;) {
		barrier_wait(&sh->bar);	/* pass starts */
		if (sh->cmd == BW_STOP)
			return NULL;
		bw_pass(w, sh->cmd, sh->deadline, sh->pattern);
		barrier_wait(&sh->bar);	/* pass done */
	}
}

static void gate_open(struct bw_shared *sh, bool abort)
{
	pthread_mutex_lock(&sh->gm);
	sh->open = true;
	sh->abort = abort;
	pthread_cond_broadcast(&sh->gcv);
	pthread_mutex_unlock(&sh->gm);
}

/*
 * Run passes of cmd for share seconds; best GB/s over passes. A pass cut
 * short by the deadline counts only if no full pass was made.
 */
static double bw_phase(struct bw_shared *sh, struct bw_thread *w, int nw,
		       enum bw_cmd cmd, double share)
{
	double start = now_s(), best = 0, best_cut = 0;
	uint64_t full = 0;
	int pass = 0;

	for (int i = 0; i < nw; i++)
		full += w[i].words * sizeof(uint64_t);
	do {
		double tmax = 0, gbps;
		uint64_t total = 0;

		sh->cmd = cmd;
		sh->deadline = start + share;
		sh->pattern = 0x0101010101010101ULL * (uint64_t)(pass & 0xff) ^
			      0xA5A5A5A5A5A5A5A5ULL;
		barrier_wait(&sh->bar);	/* start */
		barrier_wait(&sh->bar);	/* done */
		for (int i = 0; i < nw; i++) {
			total += w[i].bytes;
			if (w[i].t > tmax)
				tmax = w[i].t;
		}
		gbps = tmax > 0 ? (double)total / tmax / 1e9 : 0;
		if (total == full && gbps > best)
			best = gbps;
		else if (total != full && gbps > best_cut)
			best_cut = gbps;
		tiermm__log(TIERMM_LOG_DEBUG,
			    "memprobe: %s pass %d: %" PRIu64 " of %" PRIu64 " bytes, slowest thread %.4f s, %.2f GB/s",
			    cmd == BW_READ ? "read" : "write", pass, total, full,
			    tmax, gbps);
	} while (++pass < MP_BW_MAXPASS && now_s() - start < share);
	return best > 0 ? best : best_cut;
}

int tiermm__probe_bandwidth(const int *cpus, int ncpus, int target_node,
			    const struct tiermm__memprobe_params *p,
			    double *read_gbps, double *write_gbps)
{
	struct tiermm__fs fs;
	struct bw_shared *sh;
	struct bw_thread *w;
	pthread_t *tid;
	struct mp_buf b;
	size_t pagesz = (size_t)sysconf(_SC_PAGESIZE), len, slice;
	char msg[MP_MSG];
	double budget = 0, rd = 0, wr = 0;
	int ret, started = 0, verr, saved = errno;

	if (!read_gbps || !write_gbps)
		return tiermm__fail(EINVAL,
				    "memory probe: no place for the results (read_gbps or write_gbps is NULL)");
	ret = check_cpus(cpus, ncpus);
	if (ret)
		return ret;
	ret = tiermm__fs_init(&fs, NULL);
	if (ret)
		return ret;
	ret = check_node(&fs, target_node);
	if (!ret)
		ret = check_params(p, &budget);
	if (!ret)
		ret = buffer_size(&fs, cpus[0], target_node, p,
				  pagesz * (size_t)ncpus, pagesz, &len);
	if (ret)
		return ret;
	slice = len / (size_t)ncpus / pagesz * pagesz;

	sh = calloc(1, sizeof(*sh));
	w = aligned_alloc(64, sizeof(*w) * (size_t)ncpus);
	tid = calloc((size_t)ncpus, sizeof(*tid));
	if (!sh || !w || !tid) {
		ret = tiermm__fail(ENOMEM, "memory probe: out of memory");
		goto out_free;
	}
	memset(w, 0, sizeof(*w) * (size_t)ncpus);
	ret = buf_alloc(&b, len, target_node);
	if (ret)
		goto out_free;
	pthread_mutex_init(&sh->bar.m, NULL);
	pthread_cond_init(&sh->bar.cv, NULL);
	sh->bar.count = ncpus + 1;
	pthread_mutex_init(&sh->gm, NULL);
	pthread_cond_init(&sh->gcv, NULL);

	for (int i = 0; i < ncpus; i++) {
		w[i].sh = sh;
		w[i].p = (uint64_t *)(b.p + (size_t)i * slice);
		w[i].words = slice / sizeof(uint64_t);
		ret = start_pinned(&tid[i], cpus[i], bw_worker, &w[i]);
		if (ret) {
			gate_open(sh, true);
			for (int j = 0; j < started; j++)
				pthread_join(tid[j], NULL);
			ret = tiermm__fail(ret,
					   "memory probe: cannot start a thread on CPU %d: %s",
					   cpus[i], strerror(ret));
			goto out_sync;
		}
		started++;
	}
	gate_open(sh, false);
	barrier_wait(&sh->bar);		/* all slices touched */
	verr = buf_verify(b.p, slice * (size_t)ncpus, pagesz, target_node, msg);
	sh->abort = verr != 0;
	barrier_wait(&sh->bar);		/* tell the workers */
	if (!verr) {
		rd = bw_phase(sh, w, ncpus, BW_READ, budget / 2);
		wr = bw_phase(sh, w, ncpus, BW_WRITE, budget / 2);
		sh->cmd = BW_STOP;
		barrier_wait(&sh->bar);
	}
	for (int j = 0; j < started; j++)
		pthread_join(tid[j], NULL);
	if (verr) {
		ret = tiermm__fail(verr, "%s", msg);
	} else if (!(rd > 0) || !(wr > 0) || !isfinite(rd) || !isfinite(wr)) {
		ret = tiermm__fail(EIO,
				   "memory probe: bandwidth measurement gave no usable time (read %g, write %g GB/s)",
				   rd, wr);
	} else {
		*read_gbps = rd;
		*write_gbps = wr;
		errno = saved;	/* success leaves errno alone */
		tiermm__log(TIERMM_LOG_DEBUG,
			    "memprobe: bandwidth %d CPUs -> node %d: read %.2f GB/s, write %.2f GB/s (%zu MiB buffer)",
			    ncpus, target_node, rd, wr, len / (size_t)MP_MIB);
	}
out_sync:
	pthread_cond_destroy(&sh->gcv);
	pthread_mutex_destroy(&sh->gm);
	pthread_cond_destroy(&sh->bar.cv);
	pthread_mutex_destroy(&sh->bar.m);
	buf_free(&b);
out_free:
	free(tid);
	free(w);
	free(sh);
	return ret;
}
