// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * topo: what tiermm knows about the memory of this machine.
 *
 * Loads the topology once and prints
 *   - every NUMA node that has memory: its CPUs, kind, capacity and tier;
 *   - the tiers, fastest first, with their nodes, and which source the
 *     ranking came from (and which other sources rank differently);
 *   - the firmware's distances (SLIT) and, where the firmware has an HMAT,
 *     its read latencies.
 *
 * Usage: topo [FSROOT]
 *   FSROOT: a captured machine (the absolute path of a directory with sys/
 *   and proc/ below it) instead of the running one.
 *   TIERMM_TIERS="0-1;2" in the environment ranks the tiers by hand.
 *
 * Any machine has a topology (one node, one tier at least), so this needs
 * nothing special: exit 0 on success, 1 on error.
 *
 * Build against an installed tiermm with
 *   cc topo.c $(pkg-config --cflags --libs tiermm) -o topo
 */
#include <errno.h>
#include <stdio.h>
#include <tiermm.h>

/*
 * Print one metric as a matrix: a row per initiator node (the CPUs making
 * the accesses), a column per target node (the memory accessed). Nodes are
 * named by their kernel number (os_index) in the distance calls, not by
 * their index in the node table.
 */
static int print_matrix(const struct tiermm_topo *topo, enum tiermm_metric m,
			const char *title)
{
	int nr = tiermm_topo_nr_nodes(topo);
	int known = 0;

	printf("\n%s (rows: CPUs of node, columns: memory of node)\n        ",
	       title);
	for (int t = 0; t < nr; t++) {
		struct tiermm_node_info n = { .sz = sizeof(n) };

		if (tiermm_topo_node(topo, t, &n) < 0)
			return -1;
		printf("%6d", n.os_index);
	}
	putchar('\n');
	for (int i = 0; i < nr; i++) {
		struct tiermm_node_info ini = { .sz = sizeof(ini) };

		if (tiermm_topo_node(topo, i, &ini) < 0)
			return -1;
		/* Only CPUs initiate accesses: a memory-only node has no row
		 * except in the SLIT, which is defined for every pair. */
		if (ini.nr_cpus == 0 && m != TIERMM_METRIC_SLIT)
			continue;
		printf("node %-3d", ini.os_index);
		for (int t = 0; t < nr; t++) {
			struct tiermm_node_info tgt = { .sz = sizeof(tgt) };
			double v;
			int ret;

			if (tiermm_topo_node(topo, t, &tgt) < 0)
				return -1;
			ret = tiermm_topo_distance(topo, ini.os_index,
						   tgt.os_index, m, &v);
			if (ret == -ENODATA) {
				/*
				 * Not an error: the firmware tells only some
				 * pairs (HMAT: usually a node's nearest CPUs
				 * only), and a one-node machine has no SLIT.
				 */
				printf("%6s", "-");
				continue;
			}
			if (ret < 0)
				return -1;
			printf("%6.0f", v);
			known++;
		}
		putchar('\n');
	}
	if (!known)
		printf("(no values: %s)\n", m == TIERMM_METRIC_SLIT ?
		       "the firmware gives no distances here" :
		       "no HMAT, or the kernel does not expose it");
	return 0;
}

int main(int argc, char *argv[])
{
	/* Options structs start with their size; TIERMM_OPTS sets it. */
	TIERMM_OPTS(tiermm_topo_opts, opts, .fsroot = argc > 1 ? argv[1] : NULL);
	struct tiermm_topo *topo;
	const char *conflicts;
	int nr_nodes, nr_tiers, src;

	if (argc > 2) {
		fprintf(stderr, "usage: %s [FSROOT]\n", argv[0]);
		return 1;
	}
	/*
	 * Discovery through hwloc and sysfs, no measurement (opts.probes is
	 * 0): a few milliseconds. It fails on a malformed TIERMM_TIERS, an
	 * unreadable FSROOT, or when hwloc cannot load the machine.
	 */
	if (tiermm_topo_load(&opts, &topo) < 0) {
		fprintf(stderr, "topo: loading the topology: %s\n",
			tiermm_errmsg());
		return 1;
	}
	printf("topology: %s\n\n", tiermm_topo_origin(topo));

	/* Nodes: only those with memory are in the table, by node number. */
	nr_nodes = tiermm_topo_nr_nodes(topo);
	printf("node  kind     cpus              capacity  tier\n");
	for (int i = 0; i < nr_nodes; i++) {
		struct tiermm_node_info n = { .sz = sizeof(n) };
		char cpus[256];

		if (tiermm_topo_node(topo, i, &n) < 0 ||
		    tiermm_topo_node_cpus(topo, i, cpus, sizeof(cpus)) < 0)
			goto fail;
		/* A memory-only node (CXL, PMEM, a VM's slow tier) has
		 * an empty CPU list. */
		printf("%-5d %-8s %-13s %8llu MiB  %d\n", n.os_index,
		       tiermm_mem_kind_name(n.kind), cpus[0] ? cpus : "(none)",
		       (unsigned long long)(n.capacity >> 20), n.tier);
	}

	/*
	 * Tiers, 0 the fastest. The ranking comes from the most trusted
	 * source available (user, kernel, hmat, kind, measured); the
	 * conflicts text names every other source that ranks differently.
	 */
	nr_tiers = tiermm_topo_nr_tiers(topo);
	src = tiermm_topo_tier_source(topo, &conflicts);
	if (nr_tiers < 0 || src < 0)
		goto fail;
	printf("\n%d tier%s, fastest first, ranked by %s\n", nr_tiers,
	       nr_tiers == 1 ? "" : "s", tiermm_tier_source_name(src));
	for (int t = 0; t < nr_tiers; t++) {
		char nodes[256];

		if (tiermm_topo_tier_nodes(topo, t, nodes, sizeof(nodes)) < 0)
			goto fail;
		printf("  tier %d: nodes %s\n", t, nodes);
	}
	if (conflicts[0])
		printf("  other sources disagree: %s\n", conflicts);

	if (print_matrix(topo, TIERMM_METRIC_SLIT, "firmware distances (SLIT)") ||
	    print_matrix(topo, TIERMM_METRIC_FW_READ_LATENCY,
			 "firmware read latency, ns (HMAT)"))
		goto fail;

	tiermm_topo_free(topo);
	return 0;
fail:
	/* Every call above says what failed in tiermm_errmsg(). */
	fprintf(stderr, "topo: %s\n", tiermm_errmsg());
	tiermm_topo_free(topo);
	return 1;
}
