// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libtiermm-preload.so: tiermm inside an unmodified program, loaded with
 * LD_PRELOAD (usually by `tiermm run`). See tiermm-preload(7).
 *
 * Constructor: parse TIERMM_CONF, apply the initial placement
 * (set_mempolicy(2) on the main thread, inherited by the threads it
 * creates), start the tiering runtime (tiermm_runtime_start(3)) for the
 * whole process, migrate the page tables once if asked, and start a
 * housekeeping thread that writes the statistics file and keeps page
 * tables next to their data (pt:follow). Any failure undoes what was done
 * and prints one line on stderr; the program then runs as if the shim
 * were not there, or with TIERMM_STRICT=1 exits with status 127 before
 * main() runs.
 *
 * Interposers:
 *  - mmap, mmap64, munmap, mremap: the program's regions (regions.h), for
 *    the statistics. The real functions are found with dlsym(RTLD_NEXT)
 *    on first use, from whichever thread and however early (another
 *    library's constructor may map memory before ours runs); while dlsym
 *    runs in a thread (it may allocate, and an allocator may map memory)
 *    that thread's calls go straight to the system call. A thread-local
 *    guard makes a call that arrives while the same thread is inside an
 *    interposer (a signal handler) pass through untracked. The region
 *    lock is held across the real call, so the set changes in the order
 *    the kernel saw the calls; glibc's own allocator maps memory through
 *    internal aliases that no interposer sees, and the housekeeping thread
 *    drops from the set what /proc/self/maps no longer has.
 *  - fork: the child has none of the runtime's threads (pthread_atfork
 *    resets the shim's state there); with follow-fork:1 the child starts
 *    a runtime of its own once fork() has returned in it (not inside a
 *    fork handler, where other libraries' handlers, liburcu's among them,
 *    may not have run yet). fork() and _Fork() first wait until the
 *    housekeeping thread is parked: a lock it held at the fork (an
 *    allocator's, the sanitizer runtime's) would stay held in the child.
 *  - daemon: the old process's runtime and thread are stopped before the
 *    call (it leaves with _exit() inside it), and the daemon starts its
 *    own, follow-fork or not.
 *  - the exec family: the runtime is stopped and the final record written
 *    before the program image is replaced, and started again if exec
 *    fails. Unless follow-exec:1, the constructor removed the shim from
 *    LD_PRELOAD in the environment, so the new image runs without it.
 *    A vfork() child (its pid differs from the one the shim recorded, and
 *    no fork handler ran) is never touched: it shares the parent's memory.
 *
 * Nothing here writes to stdout, and the only stderr output is the one
 * line of a refused configuration (and the library's messages when
 * TIERMM_LOG asks for them). The program's exit status is its own: the
 * shim exits only in strict mode, from the constructor.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <link.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <tiermm.h>

#include "conf.h"
#include "regions.h"
#include "statfile.h"

#define EXPORT __attribute__((visibility("default")))
#define TLS __thread __attribute__((tls_model("initial-exec")))
#define STRICT_STATUS 127
#define PFX "tiermm-preload: "

#ifndef MPOL_PREFERRED_MANY
#define MPOL_PREFERRED_MANY 5
#endif
#define MPOL_DEFAULT_ 0
#define MPOL_PREFERRED_ 1
#define MPOL_BIND_ 2
#define MPOL_INTERLEAVE_ 3

/* ---- The real functions -------------------------------------------------- */

typedef void *(*mmap_fn)(void *, size_t, int, int, int, off_t);
typedef int (*munmap_fn)(void *, size_t);
typedef void *(*mremap_fn)(void *, size_t, size_t, int, ...);
typedef pid_t (*fork_fn)(void);
typedef int (*daemon_fn)(int, int);
typedef int (*execve_fn)(const char *, char *const[], char *const[]);
typedef int (*execv_fn)(const char *, char *const[]);
typedef int (*fexecve_fn)(int, char *const[], char *const[]);
typedef int (*execveat_fn)(int, const char *, char *const[], char *const[], int);

static struct {
	mmap_fn mmap, mmap64;
	munmap_fn munmap;
	mremap_fn mremap;
	fork_fn fork, fork_raw;
	daemon_fn daemon;
	execve_fn execve, execvpe;
	execv_fn execv, execvp;
	fexecve_fn fexecve;
	execveat_fn execveat;
} real;
static int resolved;		/* __atomic */
static TLS int tls_resolving;	/* this thread is inside dlsym() */
static TLS int tls_guard;	/* this thread is inside an interposer */

static void resolve(void)
{
	if (__atomic_load_n(&resolved, __ATOMIC_ACQUIRE))
		return;
	tls_resolving = 1;
#define R(field, name) __atomic_store_n((void **)&real.field, dlsym(RTLD_NEXT, name), \
					__ATOMIC_RELAXED)
	R(mmap, "mmap");
	R(mmap64, "mmap64");
	R(munmap, "munmap");
	R(mremap, "mremap");
	R(fork, "fork");
	R(fork_raw, "_Fork");
	R(daemon, "daemon");
	R(execve, "execve");
	R(execvpe, "execvpe");
	R(execv, "execv");
	R(execvp, "execvp");
	R(fexecve, "fexecve");
	R(execveat, "execveat");
#undef R
	tls_resolving = 0;
	__atomic_store_n(&resolved, 1, __ATOMIC_RELEASE);
}

static void *sys_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	return (void *)syscall(SYS_mmap, addr, len, prot, flags, fd, off);
}

/* ---- State --------------------------------------------------------------- */

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;	/* start/stop */
static pthread_mutex_t g_rlock = PTHREAD_MUTEX_INITIALIZER;	/* regions */

/* Under g_rlock. */
static struct tmm_regions g_anon, g_file;
static uint64_t g_gen;		/* changes of the sets (also __atomic reads) */
/* __atomic: what the statistics read without the lock. */
static uint64_t g_anon_bytes, g_file_bytes, g_nr_regions, g_lossy;
static uint64_t g_mmaps, g_munmaps, g_mremaps;
static int g_track = 1;		/* interposers record regions */

/* Under g_lock (and written by the constructor, fork and exec paths). */
static struct tmm_conf g_conf;
static pid_t g_pid;		/* the process these globals belong to */
static bool g_strict, g_child, g_active, g_placed;
static uint64_t g_starttime, g_start_brk;
static struct tiermm_topo *g_topo;
static struct tiermm_runtime *g_rt;
static char g_stats_path[PATH_MAX];
static bool g_stats_opened;	/* the file was created/truncated by this image */
static uint64_t g_pt_moved;	/* __atomic */
static char g_pt_error[200];
static struct timespec g_t0;

/* The housekeeping thread. */
static pthread_t g_hk;
static bool g_hk_running;
static pthread_mutex_t g_hk_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_hk_cond;
static bool g_hk_stop;		/* under g_hk_lock (set __atomic too) */

/*
 * The fork gate. A fork copies every lock as it is at that moment, and
 * only the forking thread goes on in the child: a lock that the
 * housekeeping thread held (the allocator's, stdio's, the sanitizer
 * runtime's, which glibc's fork does not take for the child the way it
 * takes its own malloc's) would stay locked in the child for ever, and
 * the first malloc() or pthread_create() there would wait for it. The
 * housekeeping thread is "busy" while it starts (from pthread_create()
 * until hk_main() runs: the sanitizer's thread set-up allocates), while
 * it writes a record, and while it exits (until pthread_join() returns);
 * parked in its timed wait it holds nothing. The shim's fork, _Fork and
 * daemon wait until it is not busy, and it starts no record until the
 * fork has returned in the parent. Its start and exit do not wait for a
 * fork (their callers may hold locks that a fork handler wants), so only
 * a fork in another thread at that very moment can still overlap them.
 * The gate is taken in the interposers, before the C library runs any
 * fork handler: a handler registered after ours (libtiermm's, for page
 * tables and hints) runs before it and takes locks a record may need
 * (pt:follow).
 */
static pthread_mutex_t g_gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_gate_cond = PTHREAD_COND_INITIALIZER;
static int g_gate_busy, g_gate_forks;	/* under g_gate_lock */
static TLS int tls_gate;	/* this thread holds forks off or waits for them */

static pid_t raw_getpid(void)
{
	return (pid_t)syscall(SYS_getpid);
}

/* What stderr was when the constructor ran (st_dev, st_ino; 0/0: closed). */
static dev_t g_err_dev;
static ino_t g_err_ino;

static void note_stderr(void)
{
	struct stat st;

	if (!fstat(STDERR_FILENO, &st)) {
		g_err_dev = st.st_dev;
		g_err_ino = st.st_ino;
	}
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * One line on stderr, with one write(2): no stdio state of the program
 * touched. Only while descriptor 2 is still the file it was when the
 * program started: a daemon that closed it may have opened one of its own
 * files there since.
 */
static void say(const char *fmt, ...)
{
	char buf[1536];
	struct stat st;
	va_list ap;
	int n;

	if (fstat(STDERR_FILENO, &st) || st.st_dev != g_err_dev || st.st_ino != g_err_ino)
		return;
	memcpy(buf, PFX, sizeof(PFX) - 1);
	va_start(ap, fmt);
	n = vsnprintf(buf + sizeof(PFX) - 1, sizeof(buf) - sizeof(PFX) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	n += (int)sizeof(PFX) - 1;
	if (n > (int)sizeof(buf) - 2)
		n = (int)sizeof(buf) - 2;
	buf[n++] = '\n';
	if (write(STDERR_FILENO, buf, (size_t)n) < 0) {
		/* Nothing more to do: stderr is gone. */
	}
}

/* ---- Regions ------------------------------------------------------------- */

#define PAGE_UP(x) (((uint64_t)(x) + 4095) & ~4095ULL)

static void publish_regions(void)
{
	__atomic_add_fetch(&g_gen, 1, __ATOMIC_RELAXED);
	__atomic_store_n(&g_anon_bytes, g_anon.bytes, __ATOMIC_RELAXED);
	__atomic_store_n(&g_file_bytes, g_file.bytes, __ATOMIC_RELAXED);
	__atomic_store_n(&g_nr_regions, (uint64_t)(g_anon.n + g_file.n), __ATOMIC_RELAXED);
	__atomic_store_n(&g_lossy, (uint64_t)(g_anon.lossy || g_file.lossy), __ATOMIC_RELAXED);
}

/* A new mapping [addr, addr + len) replaced whatever was there. */
static void note_map(void *addr, size_t len, int flags)
{
	uint64_t s = (uint64_t)addr, e = s + PAGE_UP(len);

	tmm_regions_remove(&g_anon, s, e);
	tmm_regions_remove(&g_file, s, e);
	tmm_regions_add(flags & MAP_ANONYMOUS ? &g_anon : &g_file, s, e);
	publish_regions();
}

static void note_unmap(void *addr, size_t len)
{
	uint64_t s = (uint64_t)addr, e = s + PAGE_UP(len);

	tmm_regions_remove(&g_anon, s, e);
	tmm_regions_remove(&g_file, s, e);
	publish_regions();
}

static bool tracking(void)
{
	return __atomic_load_n(&g_track, __ATOMIC_RELAXED);
}

static void *do_mmap(mmap_fn fn, void *addr, size_t len, int prot, int flags, int fd,
		     off_t off)
{
	void *ret;
	int saved;

	if (tls_guard || !tracking())
		return fn(addr, len, prot, flags, fd, off);
	tls_guard = 1;
	pthread_mutex_lock(&g_rlock);
	ret = fn(addr, len, prot, flags, fd, off);
	saved = errno;
	if (ret != MAP_FAILED)
		note_map(ret, len, flags);
	pthread_mutex_unlock(&g_rlock);
	__atomic_add_fetch(&g_mmaps, 1, __ATOMIC_RELAXED);
	tls_guard = 0;
	errno = saved;
	return ret;
}

EXPORT void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	mmap_fn fn;

	if (tls_resolving)
		return sys_mmap(addr, len, prot, flags, fd, off);
	resolve();
	fn = __atomic_load_n(&real.mmap, __ATOMIC_RELAXED);
	if (!fn)
		fn = sys_mmap;
	return do_mmap(fn, addr, len, prot, flags, fd, off);
}

EXPORT void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	mmap_fn fn;

	if (tls_resolving)
		return sys_mmap(addr, len, prot, flags, fd, off);
	resolve();
	fn = __atomic_load_n(&real.mmap64, __ATOMIC_RELAXED);
	if (!fn)
		fn = sys_mmap;
	return do_mmap(fn, addr, len, prot, flags, fd, off);
}

EXPORT int munmap(void *addr, size_t len)
{
	munmap_fn fn;
	int ret, saved;

	if (tls_resolving)
		return (int)syscall(SYS_munmap, addr, len);
	resolve();
	fn = __atomic_load_n(&real.munmap, __ATOMIC_RELAXED);
	if (!fn || tls_guard || !tracking())
		return fn ? fn(addr, len) : (int)syscall(SYS_munmap, addr, len);
	tls_guard = 1;
	pthread_mutex_lock(&g_rlock);
	ret = fn(addr, len);
	saved = errno;
	if (!ret)
		note_unmap(addr, len);
	pthread_mutex_unlock(&g_rlock);
	__atomic_add_fetch(&g_munmaps, 1, __ATOMIC_RELAXED);
	tls_guard = 0;
	errno = saved;
	return ret;
}

EXPORT void *mremap(void *old, size_t old_len, size_t new_len, int flags, ...)
{
	void *new_addr = NULL, *ret;
	mremap_fn fn;
	int saved;

	/* As glibc: the fifth argument exists only with MREMAP_FIXED. */
	if (flags & MREMAP_FIXED) {
		va_list ap;

		va_start(ap, flags);
		new_addr = va_arg(ap, void *);
		va_end(ap);
	}
	if (tls_resolving)
		return (void *)syscall(SYS_mremap, old, old_len, new_len, flags, new_addr);
	resolve();
	fn = __atomic_load_n(&real.mremap, __ATOMIC_RELAXED);
	if (!fn)
		return (void *)syscall(SYS_mremap, old, old_len, new_len, flags, new_addr);
	if (tls_guard || !tracking())
		return fn(old, old_len, new_len, flags, new_addr);
	tls_guard = 1;
	pthread_mutex_lock(&g_rlock);
	ret = fn(old, old_len, new_len, flags, new_addr);
	saved = errno;
	if (ret != MAP_FAILED) {
		uint64_t s = (uint64_t)old, e = s + PAGE_UP(old_len ? old_len : 1);
		struct tmm_regions *kind = tmm_regions_overlap(&g_anon, s, e) ? &g_anon :
					   tmm_regions_overlap(&g_file, s, e) ? &g_file : NULL;

		if (old_len && !(flags & MREMAP_DONTUNMAP)) {
			tmm_regions_remove(&g_anon, s, s + PAGE_UP(old_len));
			tmm_regions_remove(&g_file, s, s + PAGE_UP(old_len));
		}
		s = (uint64_t)ret;
		tmm_regions_remove(&g_anon, s, s + PAGE_UP(new_len));
		tmm_regions_remove(&g_file, s, s + PAGE_UP(new_len));
		/* A mapping the shim never saw made stays unknown. */
		if (kind)
			tmm_regions_add(kind, s, s + PAGE_UP(new_len));
		publish_regions();
	}
	pthread_mutex_unlock(&g_rlock);
	__atomic_add_fetch(&g_mremaps, 1, __ATOMIC_RELAXED);
	tls_guard = 0;
	errno = saved;
	return ret;
}

/* Drop what /proc/self/maps no longer has (unmapped behind our back). */
static void reconcile_regions(void)
{
	struct tmm_range *keep = NULL;
	size_t n = 0, cap = 0;
	uint64_t gen = __atomic_load_n(&g_gen, __ATOMIC_RELAXED);
	FILE *f = fopen("/proc/self/maps", "re");
	char line[512];

	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long s, e;

		if (!strchr(line, '\n')) {
			int c;

			/* A long path: skip the rest of the line. */
			while ((c = fgetc(f)) != EOF && c != '\n')
				;
		}
		if (sscanf(line, "%llx-%llx", &s, &e) != 2)
			continue;
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 512;
			struct tmm_range *k = realloc(keep, ncap * sizeof(*k));

			if (!k)
				goto out;
			keep = k;
			cap = ncap;
		}
		/* Adjacent lines join: the set merges neighbours too. */
		if (n && keep[n - 1].end == s)
			keep[n - 1].end = e;
		else
			keep[n++] = (struct tmm_range){ s, e };
	}
	pthread_mutex_lock(&g_rlock);
	/* A change since we started reading: the snapshot may miss it. */
	if (gen == __atomic_load_n(&g_gen, __ATOMIC_RELAXED) && n) {
		tmm_regions_intersect(&g_anon, keep, n);
		tmm_regions_intersect(&g_file, keep, n);
		publish_regions();
	}
	pthread_mutex_unlock(&g_rlock);
out:
	free(keep);
	fclose(f);
}

/* ---- Statistics ---------------------------------------------------------- */

static double since_start(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)(ts.tv_sec - g_t0.tv_sec) + (double)(ts.tv_nsec - g_t0.tv_nsec) / 1e9;
}

static const char *state_name(int s)
{
	return s == TIERMM_RUNTIME_RUNNING ? "running" :
	       s == TIERMM_RUNTIME_EXITED ? "exited" : "failed";
}

static int stats_format(void)
{
	size_t n = strlen(g_stats_path);

	if (g_conf.stats_format)
		return g_conf.stats_format;
	return n > 4 && !strcmp(g_stats_path + n - 4, ".csv") ? TMM_FMT_CSV : TMM_FMT_JSON;
}

/*
 * The record of this moment. rs: the runtime's counters (NULL: none).
 * Node columns are the topology's nodes (else those numa_maps shows),
 * tier columns its tiers: the same in every record of the process.
 */
/*
 * Page-table locality (tiermm.ko): the share of the leaf page tables that are
 * on the node holding most of the data they map, and their number. A walk
 * of the process's page tables in the module, so taken at most every
 * PT_LOCALITY_MS and for the final record; false without the module.
 */
#define PT_LOCALITY_MS 10000

static bool pt_locality(bool now, double *share, uint64_t *tables)
{
	static bool have;
	static double last_share;
	static uint64_t last_tables;
	static struct timespec last;
	struct tiermm_pt_summary sum = { .sz = sizeof(sum) };
	struct tiermm_pt_stats *st;
	struct timespec t;
	uint64_t loc, rem;

	if (access("/sys/module/tiermm", F_OK))
		return false;
	clock_gettime(CLOCK_MONOTONIC, &t);
	if (now || !have || (t.tv_sec - last.tv_sec) * 1000 +
	    (t.tv_nsec - last.tv_nsec) / 1000000 >= PT_LOCALITY_MS) {
		if (tiermm_pt_stat(0, 0, 0, 0, &st))
			return false;
		if (tiermm_pt_stat_summary(st, &sum)) {
			tiermm_pt_stat_free(st);
			return false;
		}
		tiermm_pt_stat_free(st);
		loc = sum.tables_local[TIERMM_PT_LEVEL_PTE];
		rem = sum.tables_remote[TIERMM_PT_LEVEL_PTE];
		last_share = loc + rem ? (double)loc / (double)(loc + rem) : NAN;
		last_tables = sum.tables[TIERMM_PT_LEVEL_PTE];
		last = t;
		have = true;
	}
	*share = last_share;
	*tables = last_tables;
	return true;
}

static void build_record(struct tmm_rec *r, const char *event,
			 const struct tiermm_runtime_stats *rs, struct tmm_numa_usage *u)
{
	struct timespec now;
	struct rusage ru;
	uint64_t tier_bytes[64] = { 0 };
	int nr_tiers = g_topo ? tiermm_topo_nr_tiers(g_topo) : 0;
	char buf[64];
	void *brk_now = sbrk(0);

	clock_gettime(CLOCK_REALTIME, &now);
	tmm_rec_clear(r);
	tmm_rec_put_dbl(r, "time", (double)now.tv_sec + (double)now.tv_nsec / 1e9);
	tmm_rec_put_dbl(r, "t", since_start());
	tmm_rec_put_str(r, "event", event);
	tmm_rec_put_u64(r, "pid", (uint64_t)raw_getpid());
	tmm_rec_put_u64(r, "start", g_starttime);
	tmm_rec_put_str(r, "state", rs ? state_name(rs->state) : "none");
	tmm_rec_put_str(r, "backend", rs ? rs->backend : "none");
	tmm_rec_put_u64(r, "epochs", rs ? rs->epochs : 0);
	tmm_rec_put_u64(r, "promoted_pages", rs ? rs->promoted_pages : 0);
	tmm_rec_put_u64(r, "promoted_bytes", rs ? rs->promoted_bytes : 0);
	tmm_rec_put_u64(r, "demoted_pages", rs ? rs->demoted_pages : 0);
	tmm_rec_put_u64(r, "demoted_bytes", rs ? rs->demoted_bytes : 0);
	tmm_rec_put_u64(r, "failed_pages", rs ? rs->failed_pages : 0);
	tmm_rec_put_u64(r, "hot_set_bytes", rs ? rs->hot_set_bytes : 0);
	/* Empty (not a number) when the backend saw no page of known tier. */
	if (rs && isfinite(rs->fast_access_share))
		tmm_rec_put_dbl(r, "fast_access_share", rs->fast_access_share);
	else
		tmm_rec_put_str(r, "fast_access_share", "");
	tmm_rec_put_u64(r, "budget_bytes", rs ? rs->budget_bytes : 0);
	tmm_rec_put_u64(r, "fast_bytes", rs ? rs->fast_bytes : 0);
	tmm_rec_put_u64(r, "resident_bytes", rs ? rs->resident_bytes : 0);
	tmm_rec_put_u64(r, "samples", rs ? rs->samples : 0);
	tmm_rec_put_u64(r, "samples_lost", rs ? rs->samples_lost : 0);
	tmm_rec_put_dbl(r, "cpu_sampling_s", rs ? rs->cpu_sampling_s : 0);
	tmm_rec_put_dbl(r, "cpu_classify_s", rs ? rs->cpu_classify_s : 0);
	tmm_rec_put_dbl(r, "cpu_migrate_s", rs ? rs->cpu_migrate_s : 0);
	tmm_rec_put_u64(r, "backoff", rs ? rs->backoff : 0);
	tmm_rec_put_u64(r, "backoff_epochs", rs ? rs->backoff_epochs : 0);
	getrusage(RUSAGE_SELF, &ru);
	tmm_rec_put_dbl(r, "cpu_process_s",
			(double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
			(double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6);
	tmm_rec_put_u64(r, "regions", __atomic_load_n(&g_nr_regions, __ATOMIC_RELAXED));
	tmm_rec_put_u64(r, "regions_lossy", __atomic_load_n(&g_lossy, __ATOMIC_RELAXED));
	tmm_rec_put_u64(r, "mmap_anon_bytes", __atomic_load_n(&g_anon_bytes, __ATOMIC_RELAXED));
	tmm_rec_put_u64(r, "mmap_file_bytes", __atomic_load_n(&g_file_bytes, __ATOMIC_RELAXED));
	tmm_rec_put_u64(r, "heap_bytes", g_start_brk && brk_now != (void *)-1 &&
			(uint64_t)brk_now > g_start_brk ? (uint64_t)brk_now - g_start_brk : 0);
	tmm_rec_put_u64(r, "mmap_calls", __atomic_load_n(&g_mmaps, __ATOMIC_RELAXED));
	tmm_rec_put_u64(r, "munmap_calls", __atomic_load_n(&g_munmaps, __ATOMIC_RELAXED));
	tmm_rec_put_u64(r, "mremap_calls", __atomic_load_n(&g_mremaps, __ATOMIC_RELAXED));
	tmm_conf_placement(&g_conf, buf, sizeof(buf));
	tmm_rec_put_str(r, "placement", buf);
	tmm_rec_put_str(r, "pt", g_conf.pt == TMM_PT_FOLLOW ? "follow" :
			g_conf.pt == TMM_PT_ONCE ? "once" : "none");
	tmm_rec_put_u64(r, "pt_moved", __atomic_load_n(&g_pt_moved, __ATOMIC_RELAXED));
	{
		double share;
		uint64_t tables;

		/* Empty without tiermm.ko, or when no leaf table maps data. */
		if (pt_locality(strcmp(event, "tick") != 0, &share, &tables)) {
			tmm_rec_put_u64(r, "pt_leaf_tables", tables);
			if (isfinite(share))
				tmm_rec_put_dbl(r, "pt_local_share", share);
			else
				tmm_rec_put_str(r, "pt_local_share", "");
		} else {
			tmm_rec_put_str(r, "pt_leaf_tables", "");
			tmm_rec_put_str(r, "pt_local_share", "");
		}
	}
	tmm_rec_put_u64(r, "rss_bytes", u->total);
	if (g_topo) {
		int nn = tiermm_topo_nr_nodes(g_topo);

		if (nr_tiers > 64)
			nr_tiers = 64;
		for (int i = 0; i < nn; i++) {
			struct tiermm_node_info info = { .sz = sizeof(info) };

			if (tiermm_topo_node(g_topo, i, &info) || info.os_index < 0 ||
			    info.os_index >= TMM_MAX_NODES)
				continue;
			snprintf(buf, sizeof(buf), "node%d_bytes", info.os_index);
			tmm_rec_put_u64(r, buf, u->node[info.os_index]);
			if (info.tier >= 0 && info.tier < nr_tiers)
				tier_bytes[info.tier] += u->node[info.os_index];
		}
		for (int t = 0; t < nr_tiers; t++) {
			snprintf(buf, sizeof(buf), "tier%d_bytes", t);
			tmm_rec_put_u64(r, buf, tier_bytes[t]);
		}
	} else {
		for (int n = 0; n < u->nr_nodes; n++) {
			snprintf(buf, sizeof(buf), "node%d_bytes", n);
			tmm_rec_put_u64(r, buf, u->node[n]);
		}
	}
	tmm_rec_put_str(r, "error", rs && rs->state == TIERMM_RUNTIME_FAILED ? rs->error_msg :
			g_pt_error);
}

struct first_rec {
	uint64_t pid, start;
	bool found;
};

static int first_cb(const struct tmm_rec *r, void *ctx)
{
	struct first_rec *fr = ctx;

	fr->pid = (uint64_t)tmm_rec_num(r, "pid", 0);
	fr->start = (uint64_t)tmm_rec_num(r, "start", 0);
	fr->found = true;
	return 1;
}

/* Append one record; the first write of this image truncates a file left by another process. */
static void write_record(const char *event, const struct tiermm_runtime_stats *rs)
{
	struct tmm_rec *r = malloc(sizeof(*r));
	struct tmm_numa_usage *u = malloc(sizeof(*u));
	size_t len = 64 * 1024;
	char *line = malloc(len);
	bool header = false;
	int flags = O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, fd, n, fmt = stats_format();

	if (!r || !u || !line)
		goto out;
	tmm_numa_maps(0, u);
	build_record(r, event, rs, u);
	if (!g_stats_opened) {
		struct first_rec fr = { 0 };

		/* The same process (pid and start time) after an exec appends. */
		tmm_stats_foreach(g_stats_path, first_cb, &fr, NULL);
		if (!fr.found || fr.pid != (uint64_t)raw_getpid() || fr.start != g_starttime)
			flags |= O_TRUNC;
		header = true;
	}
	n = tmm_rec_format(r, fmt, header && fmt == TMM_FMT_CSV, line, len);
	if (n < 0)
		goto out;
	fd = open(g_stats_path, flags, 0644);
	if (fd < 0) {
		if (!g_stats_opened)
			say("cannot write the statistics to %s: %s", g_stats_path,
			    strerror(errno));
		g_stats_opened = true;
		goto out;
	}
	g_stats_opened = true;
	if (write(fd, line, (size_t)n) != n) {
		/* A full disk: the next record tries again. */
	}
	close(fd);
out:
	free(line);
	free(u);
	free(r);
}

static bool runtime_stats(struct tiermm_runtime_stats *rs)
{
	memset(rs, 0, sizeof(*rs));
	rs->sz = sizeof(*rs);
	return g_rt && !tiermm_runtime_stats(g_rt, rs);
}

static void pt_migrate_now(void)
{
	int ret = tiermm_pt_migrate(0, 0, 0, TIERMM_NODE_AUTO, TIERMM_PT_LEVELS_ALL, NULL);

	if (ret >= 0)
		__atomic_add_fetch(&g_pt_moved, (uint64_t)ret, __ATOMIC_RELAXED);
	else
		snprintf(g_pt_error, sizeof(g_pt_error), "pt: %s", tiermm_errmsg());
}

/*
 * The housekeeping thread is about to write a record: wait for the forks in
 * progress. False, and not busy, if asked to stop meanwhile: whoever stops
 * it (and joins it) may hold a lock that one of the forking thread's fork
 * handlers waits for, so it must not wait for a fork.
 */
static bool gate_busy(void)
{
	bool go;

	pthread_mutex_lock(&g_gate_lock);
	while (g_gate_forks && !__atomic_load_n(&g_hk_stop, __ATOMIC_RELAXED))
		pthread_cond_wait(&g_gate_cond, &g_gate_lock);
	go = !__atomic_load_n(&g_hk_stop, __ATOMIC_RELAXED);
	if (go)
		g_gate_busy++;
	pthread_mutex_unlock(&g_gate_lock);
	return go;
}

/*
 * Busy without waiting: the thread's start and exit, whose callers may hold
 * the program's locks (a failed exec, the destructor). A fork already past
 * its wait runs on; the next ones wait.
 */
static void gate_hold(void)
{
	tls_gate++;
	pthread_mutex_lock(&g_gate_lock);
	g_gate_busy++;
	pthread_mutex_unlock(&g_gate_lock);
	tls_gate--;
}

static void gate_idle(void)
{
	tls_gate++;
	pthread_mutex_lock(&g_gate_lock);
	if (!--g_gate_busy)
		pthread_cond_broadcast(&g_gate_cond);
	pthread_mutex_unlock(&g_gate_lock);
	tls_gate--;
}

/*
 * Before a fork: wait until the housekeeping thread is parked, and keep it
 * there. False (nothing to undo) when this thread is already inside the
 * gate: a fork from a signal handler that interrupted it, which must not
 * wait for itself. The thread's work is bounded (one record) and takes no
 * lock a forking thread may hold here: no fork handler has run yet.
 */
static bool gate_fork_enter(void)
{
	/* Or one that interrupted an interposer holding the region lock. */
	if (tls_gate || tls_guard)
		return false;
	tls_gate++;
	pthread_mutex_lock(&g_gate_lock);
	g_gate_forks++;
	while (g_gate_busy)
		pthread_cond_wait(&g_gate_cond, &g_gate_lock);
	pthread_mutex_unlock(&g_gate_lock);
	return true;
}

/* After the fork, in the parent (the child calls gate_child()). */
static void gate_fork_leave(bool entered)
{
	if (!entered)
		return;
	pthread_mutex_lock(&g_gate_lock);
	if (!--g_gate_forks)
		pthread_cond_broadcast(&g_gate_cond);
	pthread_mutex_unlock(&g_gate_lock);
	tls_gate--;
}

/* The child of a fork: no housekeeping thread, no other fork, nobody waiting. */
static void gate_child(void)
{
	pthread_mutex_init(&g_gate_lock, NULL);
	pthread_cond_init(&g_gate_cond, NULL);
	g_gate_busy = 0;
	g_gate_forks = 0;
	tls_gate = 0;
}

static void *hk_main(void *arg)
{
	struct tiermm_runtime_stats rs;
	struct timespec next;

	(void)arg;
	/* Running: the thread's start-up (the sanitizer's set-up too) is over. */
	gate_idle();
	clock_gettime(CLOCK_MONOTONIC, &next);
	for (;;) {
		struct timespec now;
		bool stop;

		next.tv_nsec += (long)(g_conf.stats_ms % 1000) * 1000000L;
		next.tv_sec += g_conf.stats_ms / 1000 + next.tv_nsec / 1000000000L;
		next.tv_nsec %= 1000000000L;
		/* Late (a loaded machine): the next record one interval from now, no burst. */
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec > next.tv_sec || (now.tv_sec == next.tv_sec && now.tv_nsec > next.tv_nsec)) {
			next = now;
			next.tv_nsec += (long)(g_conf.stats_ms % 1000) * 1000000L;
			next.tv_sec += g_conf.stats_ms / 1000 + next.tv_nsec / 1000000000L;
			next.tv_nsec %= 1000000000L;
		}
		pthread_mutex_lock(&g_hk_lock);
		while (!g_hk_stop &&
		       pthread_cond_timedwait(&g_hk_cond, &g_hk_lock, &next) != ETIMEDOUT)
			;
		stop = g_hk_stop;
		pthread_mutex_unlock(&g_hk_lock);
		if (stop || !gate_busy())
			break;
		if (g_conf.pt == TMM_PT_FOLLOW)
			pt_migrate_now();
		reconcile_regions();
		if (g_stats_path[0])
			write_record("tick", runtime_stats(&rs) ? &rs : NULL);
		gate_idle();
	}
	/* Busy until hk_stop()'s pthread_join() returns: the thread's exit frees memory. */
	gate_hold();
	return NULL;
}

static int hk_start(char *msg, size_t len)
{
	sigset_t all, old;
	pthread_condattr_t ca;
	int ret;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&g_hk_cond, &ca);
	pthread_condattr_destroy(&ca);
	g_hk_stop = false;
	/* The program's signals are not ours to receive. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	/* Busy from here until the thread runs hk_main() (which says so). */
	gate_hold();
	ret = pthread_create(&g_hk, NULL, hk_main, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret) {
		gate_idle();
		snprintf(msg, len, "cannot start the statistics thread: %s", strerror(ret));
		return -ret;
	}
	pthread_setname_np(g_hk, "tiermm-stats");
	g_hk_running = true;
	return 0;
}

static void hk_stop(void)
{
	if (!g_hk_running)
		return;
	pthread_mutex_lock(&g_hk_lock);
	__atomic_store_n(&g_hk_stop, true, __ATOMIC_RELAXED);
	pthread_cond_broadcast(&g_hk_cond);
	pthread_mutex_unlock(&g_hk_lock);
	/* It may be waiting for a fork to end (gate_busy()): not any more. */
	tls_gate++;
	pthread_mutex_lock(&g_gate_lock);
	pthread_cond_broadcast(&g_gate_cond);
	pthread_mutex_unlock(&g_gate_lock);
	pthread_join(g_hk, NULL);
	tls_gate--;
	/* The thread is gone: what it held busy (see hk_main()) is ours to release. */
	gate_idle();
	g_hk_running = false;
}

/* ---- Start and stop ------------------------------------------------------ */

static int apply_placement(char *msg, size_t len)
{
	struct tmm_nodemask m = g_conf.nodes;
	int mode;

	switch (g_conf.placement) {
	case TMM_PLACE_INTERLEAVE:
		mode = MPOL_INTERLEAVE_;
		break;
	case TMM_PLACE_MEMBIND:
		mode = MPOL_BIND_;
		break;
	case TMM_PLACE_PREFERRED:
		mode = tmm_nodes_count(&m) > 1 ? MPOL_PREFERRED_MANY : MPOL_PREFERRED_;
		break;
	case TMM_PLACE_TIER: {
		char list[256];
		int nt = tiermm_topo_nr_tiers(g_topo);

		if (g_conf.tier >= nt) {
			snprintf(msg, len, "placement: tier=%d: the machine has %d tier%s (0..%d)",
				 g_conf.tier, nt, nt == 1 ? "" : "s", nt - 1);
			return -ENOENT;
		}
		memset(&m, 0, sizeof(m));
		if (tiermm_topo_tier_nodes(g_topo, g_conf.tier, list, sizeof(list)) < 0) {
			snprintf(msg, len, "placement: tier=%d: %s", g_conf.tier, tiermm_errmsg());
			return -EINVAL;
		}
		{
			struct tmm_nodemask all;
			char err[200];

			memset(&all, 0xff, sizeof(all));
			if (tmm_nodes_parse(list, &all, &m, err, sizeof(err))) {
				snprintf(msg, len, "placement: tier=%d: %s", g_conf.tier, err);
				return -EINVAL;
			}
		}
		mode = MPOL_PREFERRED_MANY;
		break;
	}
	default:
		return 0;
	}
	if (syscall(SYS_set_mempolicy, mode, m.bits, (unsigned long)TMM_MAX_NODES + 1)) {
		int e = errno;
		char p[64];

		tmm_conf_placement(&g_conf, p, sizeof(p));
		snprintf(msg, len, "placement: %s: set_mempolicy: %s%s", p, strerror(e),
			 mode == MPOL_PREFERRED_MANY && e == EINVAL ?
			 " (MPOL_PREFERRED_MANY needs Linux 5.15 or later)" : "");
		return -e;
	}
	g_placed = true;
	return 0;
}

/*
 * hwloc loads every plugin in its directory when a process creates its first
 * topology: on Debian the libxml2 XML reader (with ICU and libstdc++), OpenCL,
 * GL (X11) and PCI, 20-35 ms before main() for nothing, since tiermm filters
 * I/O objects out and reads its cache with hwloc's own XML parser just as
 * well. The plugins stay loaded for the life of the process, so a program
 * that uses hwloc itself would see it without them: the constructor
 * blacklists them for that first load (then restores the environment) only
 * when no loaded object but libtiermm needs libhwloc, and the user chose no
 * blacklist of their own.
 */
#define HWLOC_BLACKLIST "hwloc_xml_libxml,hwloc_opencl,hwloc_gl,hwloc_pci"
static bool g_in_ctor;

static bool has_prefix(const char *path, const char *prefix)
{
	const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;

	return !strncmp(base, prefix, strlen(prefix));
}

static int needs_hwloc_cb(struct dl_phdr_info *info, size_t size, void *ctx)
{
	const char *name = info->dlpi_name && *info->dlpi_name ? info->dlpi_name : "";
	const ElfW(Dyn) *dyn = NULL;
	const char *strtab = NULL;

	(void)size;
	if (has_prefix(name, "libtiermm") || has_prefix(name, "libhwloc"))
		return 0;
	for (int i = 0; i < info->dlpi_phnum; i++)
		if (info->dlpi_phdr[i].p_type == PT_DYNAMIC)
			dyn = (const ElfW(Dyn) *)(info->dlpi_addr + info->dlpi_phdr[i].p_vaddr);
	if (!dyn)
		return 0;
	/* ld.so has relocated the d_ptr entries of loaded objects on x86-64. */
	for (const ElfW(Dyn) *d = dyn; d->d_tag != DT_NULL; d++)
		if (d->d_tag == DT_STRTAB)
			strtab = (const char *)d->d_un.d_ptr;
	if (!strtab)
		return 0;
	for (const ElfW(Dyn) *d = dyn; d->d_tag != DT_NULL; d++)
		if (d->d_tag == DT_NEEDED && has_prefix(strtab + d->d_un.d_val, "libhwloc.so")) {
			*(bool *)ctx = true;
			return 1;
		}
	return 0;
}

/* Does the program (any loaded object but libtiermm) use hwloc itself? */
static bool program_uses_hwloc(void)
{
	bool uses = false;

	dl_iterate_phdr(needs_hwloc_cb, &uses);
	return uses;
}

static int load_topo(char *msg, size_t len)
{
	TIERMM_OPTS(tiermm_topo_opts, o, .xml_path = g_conf.topo[0] ? g_conf.topo : NULL,
		    .flags = g_conf.topo[0] ? TIERMM_TOPO_CHECK_MACHINE : 0);
	bool blacklist = g_in_ctor && !getenv("HWLOC_PLUGINS_BLACKLIST") && !program_uses_hwloc();
	int ret;

	if (g_topo)
		return 0;
	if (blacklist)
		setenv("HWLOC_PLUGINS_BLACKLIST", HWLOC_BLACKLIST, 1);
	ret = tiermm_topo_load(&o, &g_topo);
	if (blacklist)
		unsetenv("HWLOC_PLUGINS_BLACKLIST");

	if (ret) {
		snprintf(msg, len, "%s%.256s: %.512s", g_conf.topo[0] ? "topo:" : "topology",
			 g_conf.topo, tiermm_errmsg());
		g_topo = NULL;
		return ret;
	}
	return 0;
}

static int start_runtime(char *msg, size_t len)
{
	TIERMM_OPTS(tiermm_runtime_opts, o,
		    .backend = g_conf.backend,
		    .budget_bytes = g_conf.budget_bytes,
		    .budget_share = g_conf.budget_share,
		    .epoch_ms = g_conf.epoch_ms,
		    .backoff_max = g_conf.backoff_max,
		    .topo = g_topo);

	if (g_conf.rate_limit_mib_s < 0)
		o.flags |= TIERMM_RUNTIME_NO_RATE_LIMIT;
	else
		o.rate_limit_mib_s = g_conf.rate_limit_mib_s;
	if (g_conf.cpu_quota < 0)
		o.flags |= TIERMM_RUNTIME_NO_CPU_QUOTA;
	else
		o.cpu_quota = g_conf.cpu_quota;
	int ret = tiermm_runtime_start(&o, &g_rt);

	if (ret) {
		snprintf(msg, len, "cannot start the tiering runtime: %s", tiermm_errmsg());
		g_rt = NULL;
		return ret;
	}
	return 0;
}

/* Stop everything; event names the final record ("exit", "exec"). Under g_lock. */
static void stop_all(const char *event)
{
	struct tiermm_runtime_stats rs;
	bool have;

	if (!g_active)
		return;
	hk_stop();
	have = runtime_stats(&rs);
	tiermm_runtime_stop(g_rt);
	g_rt = NULL;
	if (g_stats_path[0] && event)
		write_record(event, have ? &rs : NULL);
	g_active = false;
}

/* Start what the configuration asks for. Under g_lock. 0 or -errno with msg. */
static int start_all(char *msg, size_t len)
{
	bool runtime = strcmp(g_conf.backend, "none") != 0;
	int ret;

	g_pt_error[0] = '\0';
	if (!g_t0.tv_sec && !g_t0.tv_nsec)
		clock_gettime(CLOCK_MONOTONIC, &g_t0);
	/* This process's start time (a forked child's is its own). */
	tmm_proc_starttime(0, &g_starttime);
	if (g_conf.stats[0] &&
	    tmm_stats_path(g_conf.stats, raw_getpid(), g_child, g_stats_path,
			   sizeof(g_stats_path))) {
		snprintf(msg, len, "stats: the file name is too long");
		return -ENAMETOOLONG;
	}
	if (g_stats_path[0] && g_stats_path[0] != '/') {
		char cwd[PATH_MAX], abs[PATH_MAX];

		/* The program may change directory: fix the path now. */
		if (getcwd(cwd, sizeof(cwd)) &&
		    (size_t)snprintf(abs, sizeof(abs), "%s/%s", cwd, g_stats_path) < sizeof(abs))
			memcpy(g_stats_path, abs, sizeof(abs));
	}
	if (g_stats_path[0]) {
		/* Fail now, not in the background: can the file be written? */
		int fd = open(g_stats_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);

		if (fd < 0) {
			int e = errno;

			snprintf(msg, len, "stats: cannot write %s: %s", g_stats_path,
				 strerror(e));
			return -e;
		}
		close(fd);
	}
	/* The tiers: for the runtime, a tier placement, the statistics' tier columns. */
	if (runtime || g_conf.placement == TMM_PLACE_TIER || g_stats_path[0]) {
		ret = load_topo(msg, len);
		if (ret)
			return ret;
	}
	if (!g_placed) {
		ret = apply_placement(msg, len);
		if (ret)
			return ret;
	}
	if (runtime) {
		ret = start_runtime(msg, len);
		if (ret)
			goto undo;
	}
	if (g_conf.pt != TMM_PT_NONE) {
		ret = tiermm_pt_migrate(0, 0, 0, TIERMM_NODE_AUTO, TIERMM_PT_LEVELS_ALL, NULL);
		if (ret < 0) {
			snprintf(msg, len, "pt:%s: %s", g_conf.pt == TMM_PT_ONCE ? "once" : "follow",
				 tiermm_errmsg());
			goto undo;
		}
		__atomic_add_fetch(&g_pt_moved, (uint64_t)ret, __ATOMIC_RELAXED);
	}
	/*
	 * The first record now, not from the thread: a program that ends with
	 * _exit(2) (dash does) runs no destructor, and may be gone before the
	 * thread's first tick.
	 */
	if (g_stats_path[0]) {
		struct tiermm_runtime_stats rs;

		write_record("start", runtime_stats(&rs) ? &rs : NULL);
	}
	if (g_stats_path[0] || g_conf.pt == TMM_PT_FOLLOW) {
		ret = hk_start(msg, len);
		if (ret)
			goto undo;
	}
	g_active = true;
	return 0;
undo:
	tiermm_runtime_stop(g_rt);
	g_rt = NULL;
	if (g_placed) {
		syscall(SYS_set_mempolicy, MPOL_DEFAULT_, NULL, 0UL);
		g_placed = false;
	}
	return ret < 0 ? ret : -EINVAL;
}

/* A configuration that cannot be honoured: say so once, then step aside (or exit). */
static void refuse(const char *what)
{
	__atomic_store_n(&g_track, 0, __ATOMIC_RELAXED);
	if (g_strict) {
		say("%s; exiting with status %d (TIERMM_STRICT=1)", what, STRICT_STATUS);
		_exit(STRICT_STATUS);
	}
	say("%s; the program runs without tiermm (TIERMM_STRICT=1 makes this fatal)", what);
}

/* Remove this library from LD_PRELOAD, so that programs exec'd from here run without it. */
static void strip_preload(void)
{
	const char *lp = getenv("LD_PRELOAD"), *self, *base;
	char *out, *copy, *tok, *save = NULL;
	size_t n = 0;
	Dl_info info;

	if (!lp || !dladdr((void *)strip_preload, &info) || !info.dli_fname)
		return;
	self = info.dli_fname;
	base = strrchr(self, '/') ? strrchr(self, '/') + 1 : self;
	out = calloc(1, strlen(lp) + 1);
	copy = strdup(lp);
	if (!out || !copy)
		goto done;
	for (tok = strtok_r(copy, " :", &save); tok; tok = strtok_r(NULL, " :", &save)) {
		const char *tb = strrchr(tok, '/') ? strrchr(tok, '/') + 1 : tok;

		if (!strcmp(tok, self) || !strcmp(tb, base))
			continue;
		n += (size_t)sprintf(out + n, "%s%s", n ? " " : "", tok);
	}
	if (!n)
		unsetenv("LD_PRELOAD");
	else if (strcmp(out, lp))
		setenv("LD_PRELOAD", out, 1);
done:
	free(copy);
	free(out);
}

/* ---- fork and exec ------------------------------------------------------- */

/*
 * Fork handlers. Only the region lock is held across fork(): the interposers
 * keep tracking in the child, which has the same mappings. The start/stop
 * lock is not: its holder may be joining the runtime's threads, which may
 * wait for liburcu's registry lock, which liburcu's own prepare handler
 * holds in the forking thread. The child resets the state it cannot trust
 * instead: a runtime handle that may be half stopped is dropped, never
 * touched (its memory is the parent's, copy-on-write). The housekeeping
 * thread is kept parked by the fork gate, taken in the interposers before
 * the C library runs these handlers (see g_gate_lock).
 */
static TLS bool tls_fork_locked;

static void atfork_prepare(void)
{
	/* fork() from a signal handler that interrupted our interposer: no lock. */
	tls_fork_locked = !tls_guard;
	if (tls_fork_locked)
		pthread_mutex_lock(&g_rlock);
}

static void atfork_parent(void)
{
	if (tls_fork_locked)
		pthread_mutex_unlock(&g_rlock);
}

static void atfork_child(void)
{
	gate_child();
	pthread_mutex_init(&g_rlock, NULL);
	pthread_mutex_init(&g_lock, NULL);
	pthread_mutex_init(&g_hk_lock, NULL);
	g_pid = raw_getpid();
	/* None of the runtime's or our threads exist here. */
	g_rt = NULL;
	g_hk_running = false;
	g_active = false;
	g_child = true;
	g_stats_path[0] = '\0';
	g_stats_opened = false;
	memset(&g_t0, 0, sizeof(g_t0));
	__atomic_store_n(&g_pt_moved, 0, __ATOMIC_RELAXED);
}

/*
 * fork(): with the housekeeping thread parked (the gate), so that the child
 * inherits no lock of its making. With follow-fork:1 the child starts a
 * runtime of its own here, after every fork handler has run (liburcu's
 * included), not inside ours.
 */
EXPORT pid_t fork(void)
{
	bool gated;
	fork_fn fn;
	pid_t pid;
	int saved;

	resolve();
	fn = __atomic_load_n(&real.fork, __ATOMIC_RELAXED);
	if (!fn) {
		errno = ENOSYS;
		return -1;
	}
	gated = gate_fork_enter();
	pid = fn();
	if (pid) {
		saved = errno;
		gate_fork_leave(gated);
		errno = saved;
		return pid;
	}
	if (!g_conf.follow_fork || !tracking())
		return 0;
	saved = errno;
	pthread_mutex_lock(&g_lock);
	{
		char msg[1024];

		if (start_all(msg, sizeof(msg))) {
			pthread_mutex_unlock(&g_lock);
			refuse(msg);
			errno = saved;
			return 0;
		}
	}
	pthread_mutex_unlock(&g_lock);
	errno = saved;
	return 0;
}

/*
 * _Fork() (glibc 2.34): a fork that runs no fork handler. Another thread may
 * have held the region lock, in the middle of a change: the child stops
 * tracking and has no runtime (it is meant to exec or _exit soon).
 */
EXPORT pid_t _Fork(void)
{
	bool gated;
	fork_fn fn;
	pid_t pid;
	int saved;

	resolve();
	fn = __atomic_load_n(&real.fork_raw, __ATOMIC_RELAXED);
	if (!fn) {
		errno = ENOSYS;
		return -1;
	}
	gated = gate_fork_enter();
	pid = fn();
	if (pid) {
		saved = errno;
		gate_fork_leave(gated);
		errno = saved;
	} else {
		gate_child();
		__atomic_store_n(&g_track, 0, __ATOMIC_RELAXED);
		pthread_mutex_init(&g_rlock, NULL);
		pthread_mutex_init(&g_lock, NULL);
		pthread_mutex_init(&g_hk_lock, NULL);
		g_pid = raw_getpid();
		g_rt = NULL;
		g_hk_running = false;
		g_active = false;
	}
	return pid;
}

/*
 * daemon(3): the program goes on in a new process and the old one exits,
 * so the runtime follows, follow-fork or not. glibc's daemon() forks
 * internally (the fork handlers run, no fork interposer does) and the old
 * process leaves with _exit() from inside it, so everything is stopped
 * before the call, with the old process's exit record: the fork then
 * copies a process with none of the shim's or the runtime's threads, as
 * without the shim, and whichever process daemon() returns in starts
 * afresh: the daemon (a child: FILE.PID), or the old process if the fork
 * failed (appending to its own file, as after a failed exec).
 */
EXPORT int daemon(int nochdir, int noclose)
{
	pid_t self = raw_getpid();
	bool was_active, gated;
	daemon_fn fn;
	int ret, saved;

	resolve();
	fn = __atomic_load_n(&real.daemon, __ATOMIC_RELAXED);
	if (!fn) {
		errno = ENOSYS;
		return -1;
	}
	if (self != g_pid)
		return fn(nochdir, noclose);	/* a vfork() child: the parent's state */
	pthread_mutex_lock(&g_lock);
	was_active = g_active;
	stop_all("exit");
	pthread_mutex_unlock(&g_lock);
	gated = gate_fork_enter();
	ret = fn(nochdir, noclose);
	saved = errno;
	if (raw_getpid() == self)
		gate_fork_leave(gated);
	if (!was_active || !tracking()) {
		errno = saved;
		return ret;
	}
	pthread_mutex_lock(&g_lock);
	if (!g_active) {
		char msg[1024];

		if (start_all(msg, sizeof(msg))) {
			pthread_mutex_unlock(&g_lock);
			refuse(msg);
			errno = saved;
			return ret;
		}
	}
	pthread_mutex_unlock(&g_lock);
	errno = saved;
	return ret;
}

/* Before an exec: stop and write the final record. True if something was stopped. */
static bool exec_prepare(void)
{
	bool stopped = false;

	resolve();
	if (raw_getpid() != g_pid)
		return false;	/* a vfork() child: the parent's state, not ours */
	pthread_mutex_lock(&g_lock);
	if (g_active) {
		stop_all("exec");
		stopped = true;
	}
	pthread_mutex_unlock(&g_lock);
	return stopped;
}

/* exec failed: carry on as before. */
static void exec_failed(bool stopped)
{
	int saved = errno;
	char msg[1024];

	if (!stopped)
		return;
	pthread_mutex_lock(&g_lock);
	g_stats_opened = true;	/* append to our own file */
	if (start_all(msg, sizeof(msg))) {
		pthread_mutex_unlock(&g_lock);
		refuse(msg);
		errno = saved;
		return;
	}
	pthread_mutex_unlock(&g_lock);
	errno = saved;
}

EXPORT int execve(const char *path, char *const argv[], char *const envp[])
{
	bool stopped = exec_prepare();
	int ret = real.execve ? real.execve(path, argv, envp) : (errno = ENOSYS, -1);

	exec_failed(stopped);
	return ret;
}

EXPORT int execv(const char *path, char *const argv[])
{
	bool stopped = exec_prepare();
	int ret = real.execv ? real.execv(path, argv) : (errno = ENOSYS, -1);

	exec_failed(stopped);
	return ret;
}

EXPORT int execvp(const char *file, char *const argv[])
{
	bool stopped = exec_prepare();
	int ret = real.execvp ? real.execvp(file, argv) : (errno = ENOSYS, -1);

	exec_failed(stopped);
	return ret;
}

EXPORT int execvpe(const char *file, char *const argv[], char *const envp[])
{
	bool stopped = exec_prepare();
	int ret = real.execvpe ? real.execvpe(file, argv, envp) : (errno = ENOSYS, -1);

	exec_failed(stopped);
	return ret;
}

EXPORT int fexecve(int fd, char *const argv[], char *const envp[])
{
	bool stopped = exec_prepare();
	int ret = real.fexecve ? real.fexecve(fd, argv, envp) : (errno = ENOSYS, -1);

	exec_failed(stopped);
	return ret;
}

EXPORT int execveat(int dirfd, const char *path, char *const argv[], char *const envp[],
		    int flags)
{
	bool stopped = exec_prepare();
	int ret = real.execveat ? real.execveat(dirfd, path, argv, envp, flags) :
				  (errno = ENOSYS, -1);

	exec_failed(stopped);
	return ret;
}

/*
 * execl, execlp, execle: glibc builds the argument vector and calls its
 * internal execve, which no interposer sees; do the same through ours.
 */
static int execl_common(const char *path, const char *arg, va_list ap, int kind)
{
	va_list count;
	size_t n = 1;
	char *const *envp = NULL;

	va_copy(count, ap);
	while (va_arg(count, const char *))
		n++;
	va_end(count);
	{
		const char *argv[n + 1];

		argv[0] = arg;
		for (size_t i = 1; i <= n; i++)
			argv[i] = va_arg(ap, const char *);
		if (kind == 'e')
			envp = va_arg(ap, char *const *);
		if (kind == 'e')
			return execve(path, (char *const *)argv, envp);
		if (kind == 'p')
			return execvp(path, (char *const *)argv);
		return execv(path, (char *const *)argv);
	}
}

/*
 * glibc declares arg nonnull, yet a NULL arg (an empty argument vector) works
 * with glibc's own execl; hide the value from the optimiser to test it.
 */
static const char *launder(const char *p)
{
	__asm__("" : "+r"(p));
	return p;
}

EXPORT int execl(const char *path, const char *arg, ...)
{
	va_list ap;
	int ret;

	va_start(ap, arg);
	ret = launder(arg) ? execl_common(path, arg, ap, 0) : execv(path, (char *const[]){ NULL });
	va_end(ap);
	return ret;
}

EXPORT int execlp(const char *file, const char *arg, ...)
{
	va_list ap;
	int ret;

	va_start(ap, arg);
	ret = launder(arg) ? execl_common(file, arg, ap, 'p') :
			     execvp(file, (char *const[]){ NULL });
	va_end(ap);
	return ret;
}

EXPORT int execle(const char *path, const char *arg, ...)
{
	va_list ap;
	int ret;

	va_start(ap, arg);
	if (launder(arg)) {
		ret = execl_common(path, arg, ap, 'e');
	} else {
		char *const *envp = va_arg(ap, char *const *);

		ret = execve(path, (char *const[]){ NULL }, envp);
	}
	va_end(ap);
	return ret;
}

/* ---- Constructor and destructor ------------------------------------------ */

__attribute__((constructor)) static void shim_init(void)
{
	const char *conf = getenv("TIERMM_CONF"), *strict = getenv("TIERMM_STRICT");
	struct tmm_nodemask allowed;
	char err[1024], msg[1200];
	int ret;

	resolve();
	pthread_mutex_lock(&g_lock);
	g_pid = raw_getpid();
	note_stderr();
	g_strict = strict && *strict && strcmp(strict, "0") && strcmp(strict, "no") &&
		   strcmp(strict, "false");
	tmm_proc_stat_field(0, 47, &g_start_brk);
	tmm_conf_init(&g_conf);
	ret = tmm_nodes_allowed(&allowed, err, sizeof(err));
	if (!ret)
		ret = tmm_conf_parse(conf, &allowed, &g_conf, err, sizeof(err));
	if (ret) {
		/* Children would only repeat the same complaint. */
		strip_preload();
		pthread_mutex_unlock(&g_lock);
		snprintf(msg, sizeof(msg), "TIERMM_CONF: %s", err);
		refuse(msg);
		return;
	}
	if (!g_conf.follow_exec)
		strip_preload();
	pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
	g_in_ctor = true;
	ret = start_all(err, sizeof(err));
	g_in_ctor = false;
	pthread_mutex_unlock(&g_lock);
	if (ret)
		refuse(err);
}

__attribute__((destructor)) static void shim_fini(void)
{
	if (raw_getpid() != g_pid)
		return;
	pthread_mutex_lock(&g_lock);
	stop_all("exit");
	pthread_mutex_unlock(&g_lock);
}
