// SPDX-License-Identifier: LGPL-2.1-or-later
/* tiermm topo: nodes, kinds, tiers, distances, measured values, CPU groups. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <tiermm.h>

#include "cli.h"

void usage_topo(FILE *f)
{
	fputs("Usage: tiermm topo [--json] [--xml FILE] [--from FILE] [--fsroot DIR]\n"
	      "                   [--probe[=latency,bandwidth,cpugroups]] [--budget SEC]\n"
	      "                   [--tiers SPEC] [--check-machine]\n"
	      "Show the NUMA nodes (CPUs, capacity, memory kind, tier), the memory tiers\n"
	      "fastest first with where the ranking came from, and matrices of firmware\n"
	      "distances, firmware latency/bandwidth and tiermm's measured latency/bandwidth.\n"
	      "\n"
	      "Options:\n"
	      "  -j, --json            print one JSON object instead of tables\n"
	      "  -x, --xml FILE        also export the topology (with measurements) as hwloc XML\n"
	      "  -f, --from FILE       load a cached XML instead of discovering; runs no probe\n"
	      "  -r, --fsroot DIR      discover a captured machine (DIR holds sys/ and proc/)\n"
	      "  -p, --probe[=LIST]    measure: latency, bandwidth, cpugroups (comma-separated;\n"
	      "                        all three when LIST is omitted)\n"
	      "  -b, --budget SEC      time budget of all probes together (default 60)\n"
	      "  -t, --tiers SPEC      rank tiers by hand, fastest first: \"0-1;2\" (as TIERMM_TIERS)\n"
	      "  -c, --check-machine   with --from: refuse a cache written on another machine\n"
	      "  -h, --help            show this help\n"
	      "\n"
	      "Exit status: 0 on success, 1 when discovery or a probe failed, 2 on a bad\n"
	      "command line.\n", f);
}

static int parse_probes(const char *s, unsigned int *probes)
{
	char *copy, *tok, *save = NULL;

	if (!s) {
		*probes = TIERMM_PROBE_ALL;
		return 0;
	}
	copy = strdup(s);
	if (!copy)
		return -1;
	*probes = 0;
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (!strcmp(tok, "latency"))
			*probes |= TIERMM_PROBE_LATENCY;
		else if (!strcmp(tok, "bandwidth"))
			*probes |= TIERMM_PROBE_BANDWIDTH;
		else if (!strcmp(tok, "cpugroups"))
			*probes |= TIERMM_PROBE_CPUGROUPS;
		else {
			cli_err("topo", "--probe: unknown probe '%s' (latency, bandwidth, cpugroups)",
				tok);
			free(copy);
			return -1;
		}
	}
	free(copy);
	if (!*probes) {
		cli_err("topo", "--probe: empty list");
		return -1;
	}
	return 0;
}

static void progress(const char *what, int done, int total, void *ctx)
{
	(void)ctx;
	if (total > 0)
		fprintf(stderr, "\r\033[Kprobing %d/%d: %s", done, total, what);
	else
		fprintf(stderr, "\r\033[Kprobing: %s", what);
	fflush(stderr);
}

static void fmt_bytes(unsigned long long b, char *buf, size_t len)
{
	if (b >= (1ULL << 30))
		snprintf(buf, len, "%.1f GiB", (double)b / (1ULL << 30));
	else
		snprintf(buf, len, "%llu MiB", b >> 20);
}

static void print_matrix(const struct tiermm_topo *t, enum tiermm_metric m,
			 const char *title)
{
	int n = tiermm_topo_nr_nodes(t), any = 0;
	struct tiermm_node_info ni[n];

	for (int i = 0; i < n; i++) {
		ni[i].sz = sizeof(ni[i]);
		tiermm_topo_node(t, i, &ni[i]);
	}
	for (int i = 0; i < n && !any; i++)
		for (int j = 0; j < n && !any; j++) {
			double v;

			any = !tiermm_topo_distance(t, ni[i].os_index, ni[j].os_index, m, &v);
		}
	if (!any)
		return;
	printf("\n%s (rows: initiator CPUs' node, columns: memory node)\n%-8s", title, "");
	for (int j = 0; j < n; j++)
		printf("%10d", ni[j].os_index);
	putchar('\n');
	for (int i = 0; i < n; i++) {
		if (m != TIERMM_METRIC_SLIT && !ni[i].nr_cpus)
			continue;
		printf("node %-3d", ni[i].os_index);
		for (int j = 0; j < n; j++) {
			double v;

			if (tiermm_topo_distance(t, ni[i].os_index, ni[j].os_index, m, &v))
				printf("%10s", "-");
			else if (v == floor(v))
				printf("%10.0f", v);
			else
				printf("%10.1f", v);
		}
		putchar('\n');
	}
}

static void print_text(const struct tiermm_topo *t)
{
	static const struct {
		enum tiermm_metric m;
		const char *title;
	} mats[] = {
		{ TIERMM_METRIC_SLIT, "Firmware distances (SLIT)" },
		{ TIERMM_METRIC_FW_READ_LATENCY, "Firmware read latency, ns (HMAT)" },
		{ TIERMM_METRIC_FW_WRITE_LATENCY, "Firmware write latency, ns (HMAT)" },
		{ TIERMM_METRIC_FW_READ_BANDWIDTH, "Firmware read bandwidth, MB/s (HMAT)" },
		{ TIERMM_METRIC_FW_WRITE_BANDWIDTH, "Firmware write bandwidth, MB/s (HMAT)" },
		{ TIERMM_METRIC_LATENCY, "Measured latency, ns per dependent load" },
		{ TIERMM_METRIC_READ_BANDWIDTH, "Measured read bandwidth, MB/s" },
		{ TIERMM_METRIC_WRITE_BANDWIDTH, "Measured write bandwidth, MB/s" },
	};
	struct tiermm_cpugroups_info g = { .sz = sizeof(g) };
	int n = tiermm_topo_nr_nodes(t), nt = tiermm_topo_nr_tiers(t);
	const char *conflicts;
	int src = tiermm_topo_tier_source(t, &conflicts);

	printf("Topology: %s\n\n%-5s %-8s %-14s %-10s %s\n", tiermm_topo_origin(t),
	       "node", "kind", "cpus", "capacity", "tier");
	for (int i = 0; i < n; i++) {
		struct tiermm_node_info ni = { .sz = sizeof(ni) };
		char cpus[256], cap[32];

		tiermm_topo_node(t, i, &ni);
		tiermm_topo_node_cpus(t, i, cpus, sizeof(cpus));
		fmt_bytes(ni.capacity, cap, sizeof(cap));
		printf("%-5d %-8s %-14s %-10s %d\n", ni.os_index,
		       tiermm_mem_kind_name(ni.kind), cpus[0] ? cpus : "(none)", cap,
		       ni.tier);
	}
	printf("\nTiers, fastest first (ranked by %s):\n", tiermm_tier_source_name(src));
	for (int k = 0; k < nt; k++) {
		char nodes[256];

		tiermm_topo_tier_nodes(t, k, nodes, sizeof(nodes));
		printf("  tier %d: nodes %s\n", k, nodes);
	}
	if (conflicts[0])
		printf("  sources disagree: %s\n", conflicts);
	for (size_t k = 0; k < sizeof(mats) / sizeof(mats[0]); k++)
		print_matrix(t, mats[k].m, mats[k].title);
	tiermm_topo_cpugroups(t, &g);
	if (g.nr_groups) {
		printf("\nCPU groups (cache-line hand-off probe, %llu pair measurements):\n",
		       (unsigned long long)g.pairs_measured);
		for (int k = 0; k < g.nr_groups; k++) {
			char cpus[256];

			tiermm_topo_cpugroup_cpus(t, k, cpus, sizeof(cpus));
			printf("  group %d: CPUs %s\n", k, cpus);
		}
		if (g.nr_groups > 1)
			printf("  %s: in-group <= %.1f ns, cross-group >= %.1f ns, confidence %.2f\n",
			       g.validated ? "validated" : "NOT validated (groups are a guess)",
			       g.max_in_group_ns, g.min_cross_group_ns, g.confidence);
		else
			printf("  %s: one group, in-group <= %.1f ns, confidence %.2f\n",
			       g.validated ? "validated" : "NOT validated (a guess)",
			       g.max_in_group_ns, g.confidence);
		if (g.partial)
			printf("  PARTIAL: the time budget ran out before every CPU was placed\n");
		printf("  %s the NUMA nodes the OS shows\n",
		       g.agrees_with_nodes ? "agrees with" : "differs from");
	}
}

int cmd_topo(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "xml", required_argument, NULL, 'x' },
		{ "from", required_argument, NULL, 'f' },
		{ "fsroot", required_argument, NULL, 'r' },
		{ "probe", optional_argument, NULL, 'p' },
		{ "budget", required_argument, NULL, 'b' },
		{ "tiers", required_argument, NULL, 't' },
		{ "check-machine", no_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *xml_out = NULL, *from = NULL, *root = NULL, *tiers = NULL;
	char rootbuf[PATH_MAX], *end;
	unsigned int probes = 0, flags = 0;
	double budget = 0;
	struct tiermm_topo *t;
	int json = 0, c, ret;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+jx:f:r:p::b:t:ch", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = 1;
			break;
		case 'x':
			xml_out = optarg;
			break;
		case 'f':
			from = optarg;
			break;
		case 'r':
			root = optarg;
			break;
		case 'p':
			if (parse_probes(optarg, &probes))
				return CLI_USAGE;
			break;
		case 'b':
			errno = 0;
			budget = strtod(optarg, &end);
			if (errno || end == optarg || *end || !(budget > 0)) {
				cli_err("topo", "--budget: '%s' is not a positive number of seconds",
					optarg);
				return CLI_USAGE;
			}
			break;
		case 't':
			tiers = optarg;
			break;
		case 'c':
			flags |= TIERMM_TOPO_CHECK_MACHINE;
			break;
		case 'h':
			usage_topo(stdout);
			return CLI_OK;
		default:
			cli_err("topo", "unknown option or missing argument '%s' (see 'tiermm topo --help')",
				argv[optind - 1]);
			return CLI_USAGE;
		}
	}
	if (optind < argc) {
		cli_err("topo", "unexpected argument '%s'", argv[optind]);
		return CLI_USAGE;
	}
	if ((flags & TIERMM_TOPO_CHECK_MACHINE) && !from) {
		cli_err("topo", "--check-machine needs --from FILE");
		return CLI_USAGE;
	}
	if (root) {
		if (!realpath(root, rootbuf)) {
			cli_err("topo", "--fsroot %s: %s", root, strerror(errno));
			return CLI_FAIL;
		}
		root = rootbuf;
	}
	{
		TIERMM_OPTS(tiermm_topo_opts, o, .fsroot = root, .xml_path = from,
			    .probes = probes, .budget_s = budget, .tiers = tiers,
			    .flags = flags,
			    .progress = probes && isatty(STDERR_FILENO) ? progress : NULL);

		ret = tiermm_topo_load(&o, &t);
	}
	if (probes && isatty(STDERR_FILENO))
		fputs("\r\033[K", stderr);
	if (ret) {
		cli_err("topo", "%s", tiermm_errmsg());
		return CLI_FAIL;
	}
	if (xml_out && tiermm_topo_export_xml(t, xml_out, 0)) {
		cli_err("topo", "%s", tiermm_errmsg());
		tiermm_topo_free(t);
		return CLI_FAIL;
	}
	if (json)
		ret = tiermm_topo_write_json(t, stdout);
	else
		print_text(t);
	tiermm_topo_free(t);
	if (ret) {
		cli_err("topo", "%s", tiermm_errmsg());
		return CLI_FAIL;
	}
	return fflush(stdout) ? CLI_FAIL : CLI_OK;
}
