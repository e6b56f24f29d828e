// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * pt: where the page tables of this process live, and moving them.
 *
 * Every TLB miss walks the page tables; when they are on another node than
 * the thread, every walk pays the remote latency (vMitosis). This program
 *   1. maps 32 MiB with base pages (no THP) and writes it, so that 16 leaf
 *      (PTE) tables map it;
 *   2. counts the page-table pages of the whole process per node and level
 *      (tiermm_pt_stat), with the leaf locality of each node: the share of
 *      the leaf entries that a thread running there finds local;
 *   3. moves them to another node (tiermm_pt_migrate) and counts again;
 *   4. moves each back next to the data it maps (TIERMM_NODE_AUTO).
 *
 * Usage: pt [NODE]
 *   NODE: where step 3 moves the tables (default: a node with memory other
 *   than the one holding most of them, one with CPUs if there is one)
 *
 * Needs tiermm.ko (the kernel keeps page tables to itself) and two nodes
 * with memory; without them: exit 77 with the reason. Exit 0 on success,
 * 1 on error.
 *
 * Build against an installed tiermm with
 *   cc pt.c $(pkg-config --cflags --libs tiermm) -o pt
 */
/* mmap(2), madvise(2) and the like are not ISO C: cc -std=c11 hides them. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <tiermm.h>

#define BUF_LEN (32u << 20)

/*
 * Count the page tables of the whole calling process (pid 0; start and
 * len 0: from its lowest to its highest mapping), print them per node and
 * the totals, and return the totals in *sum. 0 or a negative errno.
 */
static int show(const char *what, struct tiermm_pt_summary *sum)
{
	struct tiermm_pt_stats *st;
	int ret, nr;

	ret = tiermm_pt_stat(0, 0, 0, 0, &st);
	if (ret < 0)
		return ret;
	printf("%s:\n", what);
	nr = tiermm_pt_stat_nr_nodes(st);
	for (int n = 0; n < nr; n++) {
		struct tiermm_pt_node info = { .sz = sizeof(info) };

		ret = tiermm_pt_stat_node(st, n, &info);
		if (ret < 0)
			goto out;
		/* Slots go up to the highest possible node: skip empty ones. */
		if (!info.online || (!info.leaf_entries && !info.data_pages &&
				     !info.tables[TIERMM_PT_LEVEL_PTE]))
			continue;
		printf("  node %d: %4llu pte %3llu pmd %2llu pud %llu pgd tables, "
		       "leaf-local %5.1f%%, data %5.1f%%\n", n,
		       (unsigned long long)info.tables[TIERMM_PT_LEVEL_PTE],
		       (unsigned long long)info.tables[TIERMM_PT_LEVEL_PMD],
		       (unsigned long long)info.tables[TIERMM_PT_LEVEL_PUD],
		       (unsigned long long)info.tables[TIERMM_PT_LEVEL_PGD],
		       100 * info.leaf_local, 100 * info.data_share);
	}
	memset(sum, 0, sizeof(*sum));
	sum->sz = sizeof(*sum);
	ret = tiermm_pt_stat_summary(st, sum);
	if (ret < 0)
		goto out;
	/*
	 * "local": on the node that holds most of what the table maps (the
	 * bottom-up vote of Mitosis, which TIERMM_NODE_AUTO follows).
	 */
	for (int l = TIERMM_PT_LEVEL_PTE; l <= TIERMM_PT_LEVEL_PUD; l++)
		printf("  %s tables: %llu local, %llu remote, %llu map no data\n",
		       tiermm_pt_level_name(l),
		       (unsigned long long)sum->tables_local[l],
		       (unsigned long long)sum->tables_remote[l],
		       (unsigned long long)sum->tables_empty[l]);
	printf("  most leaf entries on node %d, most data on node %d\n",
	       sum->leaf_node, sum->data_node);
out:
	tiermm_pt_stat_free(st);
	return ret;
}

/* Move every table but the PGD (which the module never moves) to node. */
static int migrate(int node)
{
	struct tiermm_pt_migrate_result r = { .sz = sizeof(r) };
	int moved;

	moved = tiermm_pt_migrate(0, 0, 0, node, TIERMM_PT_LEVELS_ALL, &r);
	if (moved < 0)
		return moved;
	if (node == TIERMM_NODE_AUTO)
		printf("\ntiermm_pt_migrate, auto (each next to its data):");
	else
		printf("\ntiermm_pt_migrate to node %d:", node);
	printf(" moved %d tables (%llu pte, %llu pmd, %llu pud)\n", moved, (unsigned long long)r.moved[TIERMM_PT_LEVEL_PTE],
	       (unsigned long long)r.moved[TIERMM_PT_LEVEL_PMD],
	       (unsigned long long)r.moved[TIERMM_PT_LEVEL_PUD]);
	/*
	 * Tables not moved are no error: already there, nothing to follow
	 * (auto), no free page on the node, a huge leaf rather than a table,
	 * or busy (changed under the move: trying again usually works).
	 */
	for (int i = 0; i < TIERMM_PT_SKIP__COUNT; i++)
		if (r.skipped[i])
			printf("  not moved, %s: %llu\n", tiermm_pt_skip_name(i),
			       (unsigned long long)r.skipped[i]);
	return 0;
}

/* A node with memory other than avoid, with CPUs if possible; -1: none. */
static int pick_node(int avoid)
{
	struct tiermm_topo *topo;
	int best = -1;

	if (tiermm_topo_load(NULL, &topo) < 0)
		return -2;
	for (int i = 0; i < tiermm_topo_nr_nodes(topo); i++) {
		struct tiermm_node_info n = { .sz = sizeof(n) };

		if (tiermm_topo_node(topo, i, &n) < 0) {
			best = -2;
			break;
		}
		if (n.os_index == avoid)
			continue;
		if (best < 0 || n.nr_cpus > 0)
			best = n.os_index;
		if (n.nr_cpus > 0)
			break;
	}
	tiermm_topo_free(topo);
	return best;
}

int main(int argc, char *argv[])
{
	struct tiermm_pt_summary sum;
	int ret, node;
	char *buf;

	/*
	 * Base pages: with a transparent huge page a PMD entry maps 2 MiB
	 * directly and there is no leaf table to count or move.
	 */
	buf = mmap(NULL, BUF_LEN, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED) {
		perror("pt: mmap");
		return 1;
	}
	if (madvise(buf, BUF_LEN, MADV_NOHUGEPAGE))
		perror("pt: madvise(MADV_NOHUGEPAGE)");	/* not fatal */
	memset(buf, 1, BUF_LEN);

	ret = show("page tables of this process", &sum);
	if (ret == -ENODEV) {
		/* The message says how to load it (modprobe tiermm). */
		printf("pt: skipped: %s\n", tiermm_errmsg());
		munmap(buf, BUF_LEN);
		return 77;
	}
	if (ret < 0)
		goto fail;

	if (argc > 1) {
		node = atoi(argv[1]);
	} else {
		node = pick_node(sum.leaf_node);
		if (node == -2)
			goto fail;
		if (node < 0) {
			printf("pt: skipped: one NUMA node with memory, nowhere to move page tables to\n");
			munmap(buf, BUF_LEN);
			return 77;
		}
	}

	/*
	 * Away from where they are: a thread running next to its data now
	 * walks remote page tables, the situation vMitosis measures.
	 */
	ret = migrate(node);
	if (ret < 0)
		goto fail;
	ret = show("after the move", &sum);
	if (ret < 0)
		goto fail;
	printf("=> most leaf entries now on node %d (asked: node %d)\n",
	       sum.leaf_node, node);

	/* And back: each table to the node holding most of what it maps. */
	ret = migrate(TIERMM_NODE_AUTO);
	if (ret < 0)
		goto fail;
	ret = show("after the move back", &sum);
	if (ret < 0)
		goto fail;
	printf("=> most leaf entries now on node %d, most data on node %d\n",
	       sum.leaf_node, sum.data_node);
	munmap(buf, BUF_LEN);
	return 0;
fail:
	/* EPERM, EINVAL (node without memory), EOPNOTSUPP, ... say what. */
	fprintf(stderr, "pt: %s\n", tiermm_errmsg());
	munmap(buf, BUF_LEN);
	return 1;
}
