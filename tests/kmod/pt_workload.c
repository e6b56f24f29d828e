// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * pt_workload: a "thin" process for the page-table checks in the test VM
 * (tests/vm/guest/check-pt-cli.sh). Plain C plus Linux system calls, libc
 * only, linked static: it runs in the guest's busybox initramfs.
 *
 *   pt_workload [-n NODE] MiB
 *
 * Runs on the CPUs of NODE (default 0), maps MiB of anonymous memory (no
 * THP, so the memory is mapped by PTE tables) and writes every page: data and
 * page tables start on NODE. Prints "ready PID NODE" and then reads one byte
 * per page every 200 ms, which needs no new page table.
 *
 * SIGUSR1 moves it to the next node (NODE + 1, modulo the online nodes): its
 * thread to that node's CPUs and its buffer's pages with move_pages(2). The
 * page tables stay where they were, remote now. Prints "moved PID NODE N"
 * with N the number of pages that are on the new node afterwards.
 * SIGINT or SIGTERM ends it with status 0.
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096UL
#define MPOL_MF_MOVE (1 << 1)

static volatile sig_atomic_t want_move, want_exit;

static void on_usr1(int sig)
{
	(void)sig;
	want_move = 1;
}

static void on_exit_signal(int sig)
{
	(void)sig;
	want_exit = 1;
}

/* Read a small sysfs file into buf; 0 or -1. */
static int read_file(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");
	size_t n;

	if (!f)
		return -1;
	n = fread(buf, 1, len - 1, f);
	fclose(f);
	buf[n] = '\0';
	return 0;
}

/* Parse a kernel list ("0-1,4") into set; the highest value + 1, or -1. */
static int parse_list(const char *s, cpu_set_t *set)
{
	int hi = -1;

	CPU_ZERO(set);
	while (*s && *s != '\n') {
		char *end;
		long a = strtol(s, &end, 10), b;

		if (end == s || a < 0)
			return -1;
		b = a;
		s = end;
		if (*s == '-') {
			b = strtol(s + 1, &end, 10);
			if (end == s + 1 || b < a)
				return -1;
			s = end;
		}
		for (long i = a; i <= b && i < CPU_SETSIZE; i++)
			CPU_SET(i, set);
		if (b > hi)
			hi = (int)b;
		if (*s == ',')
			s++;
	}
	return hi + 1;
}

static int nr_nodes(void)
{
	char buf[256];
	cpu_set_t set;

	if (read_file("/sys/devices/system/node/online", buf, sizeof(buf)))
		return 1;
	return parse_list(buf, &set);
}

static int run_on_node(int node)
{
	char path[96], buf[1024];
	cpu_set_t set;

	snprintf(path, sizeof(path), "/sys/devices/system/node/node%d/cpulist", node);
	if (read_file(path, buf, sizeof(buf)) || parse_list(buf, &set) <= 0) {
		fprintf(stderr, "pt_workload: node %d has no CPUs (%s)\n", node, path);
		return -1;
	}
	if (sched_setaffinity(0, sizeof(set), &set)) {
		fprintf(stderr, "pt_workload: sched_setaffinity: %s\n", strerror(errno));
		return -1;
	}
	sched_yield();
	return 0;
}

/* Move the buffer's pages to node; the number of pages there afterwards. */
static long move_to(char *buf, size_t npages, int node)
{
	void **pages = calloc(npages, sizeof(*pages));
	int *nodes = calloc(npages, sizeof(*nodes));
	int *status = calloc(npages, sizeof(*status));
	long there = -1;

	if (!pages || !nodes || !status)
		goto out;
	for (size_t i = 0; i < npages; i++) {
		pages[i] = buf + i * PAGE;
		nodes[i] = node;
	}
	if (syscall(SYS_move_pages, 0, npages, pages, nodes, status, MPOL_MF_MOVE) < 0) {
		fprintf(stderr, "pt_workload: move_pages: %s\n", strerror(errno));
		goto out;
	}
	/* Query where they are now. */
	if (syscall(SYS_move_pages, 0, npages, pages, NULL, status, 0) < 0)
		goto out;
	there = 0;
	for (size_t i = 0; i < npages; i++)
		there += status[i] == node;
out:
	free(pages);
	free(nodes);
	free(status);
	return there;
}

int main(int argc, char **argv)
{
	struct sigaction sa;
	int node = 0, opt, nodes;
	unsigned long mib;
	size_t npages;
	char *buf, *end;
	volatile char sink = 0;

	while ((opt = getopt(argc, argv, "n:")) != -1) {
		if (opt != 'n')
			goto usage;
		node = atoi(optarg);
	}
	if (optind + 1 != argc)
		goto usage;
	mib = strtoul(argv[optind], &end, 10);
	if (*end || !mib || mib > 65536)
		goto usage;
	nodes = nr_nodes();
	if (node < 0 || node >= nodes) {
		fprintf(stderr, "pt_workload: node %d is not online (%d nodes)\n", node, nodes);
		return 1;
	}

	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = on_exit_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	setvbuf(stdout, NULL, _IOLBF, 0);

	if (run_on_node(node))
		return 1;
	npages = mib * (1024 * 1024 / PAGE);
	buf = mmap(NULL, npages * PAGE, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED) {
		fprintf(stderr, "pt_workload: mmap %lu MiB: %s\n", mib, strerror(errno));
		return 1;
	}
	madvise(buf, npages * PAGE, MADV_NOHUGEPAGE);
	for (size_t i = 0; i < npages; i++)
		buf[i * PAGE] = (char)i;
	printf("ready %d %d\n", (int)getpid(), node);

	while (!want_exit) {
		struct timespec ts = { 0, 200 * 1000 * 1000 };

		if (want_move) {
			long there;

			want_move = 0;
			node = (node + 1) % nodes;
			if (run_on_node(node))
				return 1;
			there = move_to(buf, npages, node);
			printf("moved %d %d %ld\n", (int)getpid(), node, there);
		}
		for (size_t i = 0; i < npages; i++)
			sink = (char)(sink + buf[i * PAGE]);
		nanosleep(&ts, NULL);
	}
	(void)sink;
	return 0;
usage:
	fprintf(stderr, "usage: pt_workload [-n NODE] MiB\n");
	return 2;
}
