// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * caps: list what tiermm found on this machine.
 *
 * Build against an installed tiermm with
 *   cc caps.c $(pkg-config --cflags --libs tiermm) -o caps
 */
#include <stdio.h>
#include <tiermm.h>

int main(void)
{
	/* Probed once per process and cached; never freed by the caller. */
	const struct tiermm_caps *caps = tiermm_caps_get();
	int nr;

	if (!caps) {
		fprintf(stderr, "probing failed: %s\n", tiermm_errmsg());
		return 1;
	}
	printf("libtiermm %s\n", tiermm_version_string());
	for (int i = 0; i < TIERMM_CAP__COUNT; i++) {
		enum tiermm_cap cap = (enum tiermm_cap)i;

		printf("%-20s %s\n", tiermm_cap_name(cap),
		       tiermm_caps_state(caps, cap) == TIERMM_CAP_PRESENT ?
		       "present" : "missing or unknown");
	}
	nr = tiermm_caps_nr_nodes(caps);
	for (int i = 0; i < nr; i++) {
		/* Public structs carry their size so they can grow. */
		struct tiermm_caps_node node = { .sz = sizeof(node) };

		if (tiermm_caps_node(caps, i, &node) == 0)
			printf("node %d: %d CPUs, %llu MiB, kernel tier rank %d\n",
			       node.os_index, node.nr_cpus,
			       (unsigned long long)(node.mem_total >> 20),
			       node.tier_rank);
	}
	return 0;
}
