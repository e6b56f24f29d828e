// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * repl_workload: the process whose page tables tests/vm/guest/check-pt-replication.sh
 * replicates. Plain C plus Linux system calls, libc only, linked static: it runs in the
 * guest's busybox initramfs.
 *
 *   repl_workload [-o FILE] MiB
 *   repl_workload -x UID CMD [ARGS...]
 *
 * Maps MiB of anonymous memory without transparent huge pages (so PTE tables map it:
 * one per 2 MiB), writes a pattern into every page and computes a checksum of the whole
 * buffer. Writes "ready PID SUM" to FILE (default: stdout), then runs one thread per
 * online node, each on that node's CPUs, reading a word of every page in turn (page
 * walks through that node's replica when the tables are replicated), while the main
 * thread maps, fills, checks and unmaps a 4 MiB scratch area every 100 ms: page-table
 * changes (new PTE tables, zapped entries, freed tables) while replicas are being built
 * and torn down. A scratch area read back wrong is reported ("scratch BAD ...") and
 * counted.
 *
 * SIGUSR1: compute the checksum again and write "sum SUM BAD" (BAD: scratch errors so
 * far). SIGTERM or SIGINT: exit, status 0 when no scratch area was ever wrong, 1
 * otherwise.
 *
 * -x UID: run CMD as user and group UID, without supplementary groups or capabilities
 * (the guest has no su with users of its own), for the permission checks.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096UL
#define SCRATCH (4UL << 20)

static volatile sig_atomic_t want_sum, want_exit;
static unsigned char *buf;
static size_t len;
static FILE *out;
static volatile unsigned long sink;

static void on_usr1(int sig)
{
	(void)sig;
	want_sum = 1;
}

static void on_exit_signal(int sig)
{
	(void)sig;
	want_exit = 1;
}

/* FNV-1a over the buffer, 8 bytes at a time. */
static uint64_t checksum(void)
{
	const uint64_t *p = (const uint64_t *)buf;
	uint64_t h = 1469598103934665603ULL;

	for (size_t i = 0; i < len / sizeof(*p); i++) {
		h ^= p[i];
		h *= 1099511628211ULL;
	}
	return h;
}

/* The CPUs of node n into set; 0, or -1 without a CPU list (memory-only node). */
static int node_cpus(int n, cpu_set_t *set)
{
	char path[96], line[1024], *s;
	FILE *f;

	snprintf(path, sizeof(path), "/sys/devices/system/node/node%d/cpulist", n);
	f = fopen(path, "r");
	if (!f)
		return -1;
	s = fgets(line, sizeof(line), f);
	fclose(f);
	if (!s)
		return -1;
	CPU_ZERO(set);
	while (*s >= '0' && *s <= '9') {
		long lo = strtol(s, &s, 10), hi = lo;

		if (*s == '-')
			hi = strtol(s + 1, &s, 10);
		for (long c = lo; c <= hi && c < CPU_SETSIZE; c++)
			CPU_SET((int)c, set);
		if (*s == ',')
			s++;
	}
	return CPU_COUNT(set) ? 0 : -1;
}

static void *reader(void *arg)
{
	cpu_set_t *set = arg;
	unsigned long acc = 0;

	if (set)
		sched_setaffinity(0, sizeof(*set), set);
	while (!want_exit) {
		for (size_t off = 0; off < len && !want_exit; off += PAGE)
			acc += buf[off];
		sink = acc;
		usleep(10000);
	}
	return NULL;
}

/* Map, fill, check and unmap the scratch area; the number of wrong pages. */
static unsigned long scratch_round(unsigned long round)
{
	unsigned char *s = mmap(NULL, SCRATCH, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	unsigned long bad = 0;

	if (s == MAP_FAILED)
		return 0;
	madvise(s, SCRATCH, MADV_NOHUGEPAGE);
	for (size_t off = 0; off < SCRATCH; off += PAGE)
		memset(s + off, (int)((round + off / PAGE) & 0xff), 64);
	if (round % 4 == 0)	/* zap and fault in again: entries cleared */
		madvise(s, SCRATCH / 2, MADV_DONTNEED);
	for (size_t off = 0; off < SCRATCH; off += PAGE) {
		unsigned char want = off < SCRATCH / 2 && round % 4 == 0 ? 0 :
				     (unsigned char)((round + off / PAGE) & 0xff);

		if (s[off] != want || s[off + 63] != want)
			bad++;
	}
	munmap(s, SCRATCH);
	return bad;
}

int main(int argc, char **argv)
{
	static cpu_set_t sets[64];
	pthread_t threads[64];
	struct sigaction sa;
	unsigned long mib, round = 0, bad = 0;
	const char *path = NULL;
	int opt, nthreads = 0;
	struct timespec nap = { 0, 100 * 1000 * 1000 };

	while ((opt = getopt(argc, argv, "+o:x:")) != -1) {
		if (opt == 'x') {
			uid_t uid = (uid_t)strtoul(optarg, NULL, 10);

			if (optind >= argc)
				goto usage;
			if (setgroups(0, NULL) || setresgid(uid, uid, uid) ||
			    setresuid(uid, uid, uid)) {
				perror("repl_workload -x");
				return 2;
			}
			execvp(argv[optind], argv + optind);
			perror(argv[optind]);
			return 127;
		}
		if (opt != 'o')
			goto usage;
		path = optarg;
	}
	if (optind + 1 != argc)
		goto usage;
	mib = strtoul(argv[optind], NULL, 10);
	if (!mib || mib > (1UL << 20))
		goto usage;
	out = path ? fopen(path, "w") : stdout;
	if (!out) {
		perror(path);
		return 2;
	}
	setvbuf(out, NULL, _IOLBF, 0);

	len = mib << 20;
	buf = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	madvise(buf, len, MADV_NOHUGEPAGE);
	for (size_t off = 0; off < len; off += sizeof(uint64_t))
		*(uint64_t *)(buf + off) = (uint64_t)off * 0x9e3779b97f4a7c15ULL;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = on_exit_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	for (int n = 0; n < 64; n++)
		if (node_cpus(n, &sets[nthreads]) == 0 &&
		    pthread_create(&threads[nthreads], NULL, reader, &sets[nthreads]) == 0)
			nthreads++;
	if (!nthreads && pthread_create(&threads[nthreads], NULL, reader, NULL) == 0)
		nthreads++;

	fprintf(out, "ready %d %016llx\n", (int)getpid(), (unsigned long long)checksum());
	while (!want_exit) {
		unsigned long b = scratch_round(round++);

		if (b) {
			fprintf(out, "scratch BAD round %lu: %lu pages wrong\n", round - 1, b);
			bad += b;
		}
		if (want_sum) {
			want_sum = 0;
			fprintf(out, "sum %016llx %lu\n", (unsigned long long)checksum(), bad);
		}
		nanosleep(&nap, NULL);
	}
	for (int i = 0; i < nthreads; i++)
		pthread_join(threads[i], NULL);
	return bad ? 1 : 0;
usage:
	fprintf(stderr, "usage: repl_workload [-o FILE] MiB | -x UID CMD [ARGS...]\n");
	return 2;
}
