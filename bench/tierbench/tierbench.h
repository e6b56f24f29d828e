/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * tierbench: placement quality of tiering policies in the tiered test guest
 * (docs/tiering-benchmark.md). Shared declarations of main.c (setup,
 * sampling, metrics), workloads.c (the access patterns and their per-page
 * probabilities), policies.c (first touch, Linux's tiering, DAMON, tiermm)
 * and sys.c (system calls, sysfs and procfs).
 */
#ifndef TIERBENCH_H
#define TIERBENCH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define TB_PAGE 4096ul
#define TB_MAX_THREADS 16

/* ---- sys.c ---- */

/* CLOCK_MONOTONIC in ns. */
uint64_t tb_now_ns(void);
/* Read a small file into buf (NUL-terminated, trailing newline removed). */
int tb_read_str(const char *path, char *buf, size_t len);
/* Read a number (decimal or 0x hex) from a file. 0 or -errno. */
int tb_read_u64(const char *path, uint64_t *v);
/* Write a string to a file (sysfs, procfs). 0 or -errno. */
int tb_write_str(const char *path, const char *val);
int tb_write_u64(const char *path, uint64_t v);
/* The same with a printf-formatted path. */
int tb_writef(const char *val, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Parse a node list ("0-1,3") into a bit mask of up to 64 nodes. */
uint64_t tb_parse_list(const char *s);

/* Raw system calls (the guest has no libnuma). */
long tb_move_pages(int pid, unsigned long count, void **pages,
		   const int *nodes, int *status, int flags);
long tb_mbind(void *addr, unsigned long len, int mode, uint64_t nodemask,
	      unsigned int flags);
long tb_set_mempolicy(int mode, uint64_t nodemask);

#define TB_MPOL_DEFAULT 0
#define TB_MPOL_PREFERRED 1
#define TB_MPOL_BIND 2
#define TB_MPOL_MF_MOVE (1u << 1)

/* Counters of /proc/vmstat the benchmark follows. */
enum tb_vmstat {
	TB_VM_PGMIGRATE_SUCCESS,
	TB_VM_PGMIGRATE_FAIL,
	TB_VM_NUMA_PAGES_MIGRATED,
	TB_VM_NUMA_HINT_FAULTS,
	TB_VM_PGPROMOTE_SUCCESS,
	TB_VM_PGDEMOTE_KSWAPD,
	TB_VM_PGDEMOTE_DIRECT,
	TB_VM_PGDEMOTE_KHUGEPAGED,
	TB_VM__COUNT
};
extern const char *const tb_vmstat_names[TB_VM__COUNT];
int tb_vmstat_read(uint64_t v[TB_VM__COUNT]);

/* Clock ticks per second (for /proc stat fields). */
double tb_clk_tck(void);
/* utime + stime of /proc/PID/task/TID/stat (tid 0: the process), seconds. */
int tb_task_cpu(pid_t pid, pid_t tid, double *user_s, double *sys_s);
/* Whole-machine CPU from /proc/stat: system + irq + softirq, and all busy
 * time (everything but idle and iowait), seconds. */
int tb_machine_cpu(double *sys_s, double *busy_s);
/* pid of the kernel thread called comm (first found), or -1. */
pid_t tb_find_kthread(const char *comm);
pid_t tb_gettid(void);

/* Free memory of a node (MemFree in its meminfo), bytes. */
int tb_node_free(int node, uint64_t *bytes);
/* Sum over the node's zones of the watermark ("min", "low", "high",
 * "promo") from /proc/zoneinfo, in pages, and the pages user allocations
 * can take before the node is down to it (usable may be NULL), counting
 * the free pages cached on per-CPU lists if pcp. */
int tb_node_wmark(int node, const char *which, bool pcp, uint64_t *wmark,
		  uint64_t *usable);
/* Physical address range [start, end) of a node's memory blocks. */
int tb_node_phys_range(int node, uint64_t *start, uint64_t *end);

/* Which node each memory block (of block_bytes) belongs to, for turning
 * the page frame numbers of /proc/self/pagemap into nodes. */
struct tb_blockmap {
	uint64_t block_bytes;
	int *node;		/* per block, -1: none */
	size_t nblocks;
};
int tb_blockmap_load(struct tb_blockmap *m);
static inline int tb_pfn_node(const struct tb_blockmap *m, uint64_t pfn)
{
	uint64_t blk = pfn * TB_PAGE / m->block_bytes;

	return blk < m->nblocks ? m->node[blk] : -1;
}

/*
 * Move everything movable that is not the benchmark's off the fast node:
 * other processes' pages (migrate_pages(2)) and the page cache of the
 * tmpfs file systems (the initramfs root, /tmp, /run), which the kernel's
 * own tiering could otherwise demote to make room and so give the fast
 * tier more capacity than the benchmark's share. Returns the pages moved.
 */
uint64_t tb_evacuate_node(int from, int to);

/* Metadata arena (main.c): the benchmark's own memory, bound to the slow
 * node and kept out of the tiering (a NO_MIGRATE hint for tiermm). Zeroed,
 * 64-byte aligned, never freed. */
void *tb_meta_alloc(size_t size);

/* ---- workloads.c ---- */

struct tb_workload;

struct tb_wl_params {
	size_t footprint;	/* bytes wanted (rounded to the layout) */
	size_t fast_pages;	/* fast-tier capacity, pages (k) */
	double theta;		/* zipf exponent */
	double hot_share;	/* gups: share of updates to the hot set */
	double hot_frac;	/* gups: hot set size / table size */
	double shift_s;		/* zipf-shift: seconds between shifts */
	uint64_t seed;
};

/* The probabilities of one epoch (static workloads have one). */
struct tb_epoch_probs {
	float *p;		/* per data page, sums to 1 */
	double oracle;		/* sum of the largest fast_pages of p */
};

struct tb_wl_ops {
	const char *name;
	const char *what;	/* one line for the report */
	/* Pages of the data region for the requested footprint. */
	size_t (*pages)(const struct tb_wl_params *prm);
	/* Build the workload in data (npages, already mapped and placed):
	 * every page is written. */
	int (*init)(struct tb_workload *w);
	/* Per-page probabilities of epoch e into p[npages]. */
	void (*probs)(struct tb_workload *w, unsigned int epoch, float *p);
	/* Run ops operations of epoch e with the thread's RNG state; returns
	 * a checksum (keeps the compiler from dropping loads). */
	uint64_t (*run)(struct tb_workload *w, unsigned int epoch,
			uint64_t *rng, uint64_t ops);
	bool shifts;		/* the hot set moves every shift_s */
};

struct tb_workload {
	const struct tb_wl_ops *ops;
	struct tb_wl_params prm;
	unsigned char *data;
	size_t npages;
	void *priv;		/* workload state (metadata on the slow node) */
};

const struct tb_wl_ops *tb_workload_find(const char *name);
uint64_t tb_rng_next(uint64_t *s);
/* Fill a worker's RNG seed. */
uint64_t tb_rng_seed(uint64_t seed, unsigned int thread);

/* ---- policies.c ---- */

struct tb_bench;

struct tb_policy_ops {
	const char *name;
	/* Machine settings and helpers before the workers start; may refuse
	 * (-ENOTSUP with a message) if the policy cannot run here. */
	int (*setup)(struct tb_bench *b);
	/* Right after the workers start. */
	int (*start)(struct tb_bench *b);
	/* CPU seconds spent on the policy's behalf so far, and how it was
	 * measured (a static string). */
	double (*cpu_s)(struct tb_bench *b);
	const char *cpu_how;
	/* Stop and undo the machine settings. */
	void (*stop)(struct tb_bench *b);
	/* Optional: one line on what it is doing, logged at every sample
	 * with --verbose. */
	void (*describe)(struct tb_bench *b, char *buf, size_t len);
};

const struct tb_policy_ops *tb_policy_find(const char *name);
/* The names the binary supports, comma-separated. */
const char *tb_policy_names(void);

/* ---- main.c: the run ---- */

struct tb_worker {
	_Alignas(64) _Atomic uint64_t ops;
	pid_t tid;
	unsigned int idx;
	uint64_t rng;
	uint64_t sum;
	struct tb_bench *b;
};

struct tb_bench {
	struct tb_workload wl;
	const struct tb_policy_ops *pol;
	const char *policy_name;
	int fast_node, slow_node;
	uint64_t fast_cpus;	/* CPU mask of the fast node (first 64) */
	double lat_fast_ns, lat_slow_ns;
	size_t fast_pages;	/* capacity k in pages */
	double fast_share;
	int nthreads;
	struct tb_worker *workers;
	_Atomic unsigned int epoch;
	_Atomic bool stop;
	pid_t pid, main_tid;
	bool verbose;
	double tm_quota;	/* --tiermm-quota; <0: the library's default */
	unsigned int tm_backoff;	/* --tiermm-backoff; 0: the library's */
	/* the metadata arena */
	void *meta;
	size_t meta_len;
	/* policy state */
	void *pstate;
	char pol_note[768];	/* what the policy set up, for the CSV */
	char pol_final[1024];	/* what it says it did, at stop */
	bool pol_failed;	/* it stopped working during the run */
};

void tb_log(struct tb_bench *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif /* TIERBENCH_H */
