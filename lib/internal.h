/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libtiermm private declarations; never installed. */
#ifndef TIERMM_INTERNAL_H
#define TIERMM_INTERNAL_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <dirent.h>
#include <stdio.h>
#include <sys/types.h>
#include <time.h>

#include <tiermm.h>

#define TIERMM__ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define TIERMM__PRINTF(f, a) __attribute__((format(printf, f, a)))

/* Logging and errors (error.c). */
void tiermm__log(enum tiermm_log_level level, const char *fmt, ...)
	TIERMM__PRINTF(2, 3);
/*
 * Record a failure: store the formatted message for tiermm_errmsg(), log it
 * at WARN level, set errno = err and return -err. err is a positive errno.
 */
int tiermm__fail(int err, const char *fmt, ...) TIERMM__PRINTF(2, 3);

/*
 * Check an options struct: NULL is fine; sz must be at least min_sz, and
 * bytes beyond known_sz (up to sz) must be zero. Returns 0 or -EINVAL via
 * tiermm__fail().
 */
int tiermm__opts_check(const void *opts, size_t min_sz, size_t known_sz,
		       const char *what);

/* Read-only access to /sys and /proc below a configurable root (fs.c). */
struct tiermm__fs {
	char root[PATH_MAX];	/* "" for the running machine */
};

/* root NULL, "" or "/" means the running machine. Returns 0 or -errno. */
int tiermm__fs_init(struct tiermm__fs *fs, const char *root);
static inline bool tiermm__fs_is_live(const struct tiermm__fs *fs)
{
	return fs->root[0] == '\0';
}
/* Join root and an absolute path into out. 0 or -ENAMETOOLONG. */
int tiermm__fs_path(const struct tiermm__fs *fs, const char *path, char *out,
		    size_t len);
/*
 * Read a whole small file (NUL-terminated, trailing newline removed) into
 * buf. Returns its length or -errno; errno is left unchanged.
 */
ssize_t tiermm__fs_read(const struct tiermm__fs *fs, const char *path,
			char *buf, size_t len);
/* Parse a file holding one unsigned decimal integer. 0 or -errno. */
int tiermm__fs_read_u64(const struct tiermm__fs *fs, const char *path,
			uint64_t *val);
bool tiermm__fs_exists(const struct tiermm__fs *fs, const char *path);
/* opendir() below the root; NULL if absent (errno unchanged). */
DIR *tiermm__fs_opendir(const struct tiermm__fs *fs, const char *path);

/*
 * Parse a kernel list ("0-3,8,10-11") into a bitmap of nbits bits.
 * Returns the number of bits set or -EINVAL (bad syntax, or a value
 * >= nbits).
 */
int tiermm__list_parse(const char *s, uint64_t *bits, unsigned int nbits);
/*
 * The nodes process pid (0: the caller) may allocate from, its cpuset's
 * Mems_allowed_list, as TIERMM__MAX_NODES bits; all bits when the kernel
 * does not say. 0, or -ESRCH (the process is gone).
 */
int tiermm__mems_allowed(pid_t pid, uint64_t *bits);
/*
 * Parse a kernel hex mask ("000f000f,000f000f", 32-bit words, most
 * significant first). Returns the number of bits set or -EINVAL.
 */
int tiermm__mask_parse(const char *s, uint64_t *bits, unsigned int nbits);
/* Format a bitmap as a kernel list ("0-3,8") into out (truncated safely). */
void tiermm__list_format(const uint64_t *bits, unsigned int nbits, char *out,
			 size_t len);
#define TIERMM__CPU_BITS 8192
/* CPU time of the calling thread, in ns. */
static inline uint64_t tiermm__thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static inline bool tiermm__bit_test(const uint64_t *bits, unsigned int i)
{
	return bits[i / 64] & (1ULL << (i % 64));
}

#define TIERMM__MAX_NODES 1024	/* the kernel's MAX_NUMNODES on x86-64 */

/*
 * Page-table replication in the kernel (tiermm's patch series): 0 when
 * /proc/sys/kernel/pgtable_replication (or /proc/self/pgtable_replication)
 * exists below fs's root, else -ENOTSUP; val (may be NULL) gets what was
 * found, for messages. The probe of `tiermm caps` (caps.c).
 */
int tiermm__ptrepl_probe(const struct tiermm__fs *fs, char *val, size_t len);

/* The probe above on the running machine (or the test root below). */
bool tiermm__ptrepl_in_kernel(void);
/*
 * Tests only (ptrepl.c): read /sys and /proc below root (NULL: the running
 * machine) and call prctl_fn instead of prctl(2) (NULL: the real one). Not
 * thread-safe; set before calling.
 */
void tiermm__ptrepl_set_test(const char *root,
			     int (*prctl_fn)(int, unsigned long, unsigned long,
					     unsigned long, unsigned long));

/* tiermm.ko handshake (module.c). */
struct tiermm_get_api;
/*
 * Open /dev/tiermm and run GET_API into *api. Returns an open descriptor
 * (the caller closes it) or -ENODEV/-EACCES/-EPROTO with tiermm_errmsg()
 * saying why.
 */
int tiermm__module_open(struct tiermm_get_api *api);

/*
 * How pt.c reaches the module. Unit tests install a fake one to play the
 * kernel's part; the library itself always uses /dev/tiermm.
 */
struct tiermm__pt_dev {
	/* tiermm__module_open()'s contract: a descriptor or -errno. */
	int (*open)(struct tiermm_get_api *api);
	/* ioctl(2)'s contract: 0, or -1 with errno set. */
	int (*ioctl)(int fd, unsigned long req, void *arg);
	void (*close)(int fd);
};
/* Install dev (NULL: /dev/tiermm) and forget the cached handshake. */
void tiermm__pt_set_dev(const struct tiermm__pt_dev *dev);

/* perf PMU events described in sysfs (perf.c). */
struct perf_event_attr;
/*
 * Fill attr->type/config/config1/config2 for event spec "k=v,k=v" (as in
 * /sys/bus/event_source/devices/PMU/events/NAME) on PMU pmu, using that
 * PMU's format/ files. Returns 0 or -errno.
 */
int tiermm__pmu_event_attr(const struct tiermm__fs *fs, const char *pmu,
			   const char *spec, struct perf_event_attr *attr);

/* Minimal JSON output helpers (json.c). */
void tiermm__json_str(FILE *f, const char *s);

/* Ranges of an address space (place.c). */
/*
 * addr must be page aligned and len > 0; [*start, *end) is the range with
 * len rounded up to whole pages. 0 or -EINVAL (via tiermm__fail, naming
 * what).
 */
int tiermm__range_check(const void *addr, size_t len, const char *what,
			uint64_t *start, uint64_t *end);
/*
 * Every byte of [start, end) is mapped in process pid (0: self): 0, or
 * -EFAULT naming the first hole, -ESRCH or -EPERM.
 */
int tiermm__range_mapped(pid_t pid, uint64_t start, uint64_t end);
/*
 * Free memory of node (the kernel's number) that allocations can take
 * without going below its low watermarks, bytes (0 if unknown).
 */
int64_t tiermm__node_usable_free(int node);
/*
 * The 2 MiB blocks of [start, end) (start 2 MiB aligned) that a PMD maps
 * (a transparent huge page), from PAGEMAP_SCAN: bit i of huge[] for the
 * block at start + i * 2 MiB (nbits of them, cleared first). 0, or -errno
 * (-ENOTTY: a kernel before 6.7; -ESRCH).
 */
int tiermm__huge_blocks(pid_t pid, uint64_t start, uint64_t end, uint64_t *huge,
			size_t nbits);
/*
 * Tests only: walk ranges without PAGEMAP_SCAN, as on kernels before 6.7
 * (every base page is an entry). Not thread-safe; set before moving.
 */
void tiermm__place_use_pagemap_scan(bool on);

#endif /* TIERMM_INTERNAL_H */
