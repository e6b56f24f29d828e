// SPDX-License-Identifier: LGPL-2.1-or-later
/* tiermm caps: what the kernel offers, for people and for programs. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include <tiermm.h>

#include "cli.h"

void usage_caps(FILE *f)
{
	fputs("Usage: tiermm caps [--json] [--root DIR]\n"
	      "Probe the kernel features tiermm uses and report each one as present,\n"
	      "absent or unknown, with what was found and what is lost when it is missing,\n"
	      "followed by the NUMA nodes with their CPUs, memory, memory tier and HMAT values.\n"
	      "\n"
	      "Options:\n"
	      "  -j, --json      print one JSON object instead of text\n"
	      "  -r, --root DIR  read /sys and /proc below DIR (a captured machine);\n"
	      "                  probes that need system calls then report unknown\n"
	      "  -h, --help      show this help\n"
	      "\n"
	      "Exit status: 0 when probing worked (whatever it found), 1 when it failed,\n"
	      "2 on a bad command line.\n", f);
}

static const char *state_word(int s)
{
	return s == TIERMM_CAP_PRESENT ? "yes" :
	       s == TIERMM_CAP_ABSENT ? "no" : "unknown";
}

static void fmt_bytes(unsigned long long b, char *buf, size_t len)
{
	if (b >= (1ULL << 30))
		snprintf(buf, len, "%.1f GiB", (double)b / (1ULL << 30));
	else
		snprintf(buf, len, "%llu MiB", b >> 20);
}

static void print_text(const struct tiermm_caps *caps)
{
	int nr = tiermm_caps_nr_nodes(caps);

	printf("tiermm %s feature probes\n\n", tiermm_version_string());
	for (int i = 0; i < TIERMM_CAP__COUNT; i++) {
		int s = tiermm_caps_state(caps, (enum tiermm_cap)i);

		printf("%-20s %-7s %s\n", tiermm_cap_name((enum tiermm_cap)i),
		       state_word(s), tiermm_caps_detail(caps, (enum tiermm_cap)i));
		if (s != TIERMM_CAP_PRESENT)
			printf("%-20s         -> %s\n", "",
			       tiermm_cap_help((enum tiermm_cap)i));
	}
	if (nr <= 0)
		return;
	printf("\n%-5s %-12s %-10s %-5s %-13s %s\n", "node", "cpus", "memory",
	       "tier", "kernel-tier", "hmat read/write latency ns, bandwidth MB/s");
	for (int i = 0; i < nr; i++) {
		struct tiermm_caps_node n = { .sz = sizeof(n) };
		char cpus[256], mem[32], tier[16], ktier[24], hmat[96];

		if (tiermm_caps_node(caps, i, &n) ||
		    tiermm_caps_node_cpus(caps, i, cpus, sizeof(cpus)) < 0)
			continue;
		fmt_bytes(n.mem_total, mem, sizeof(mem));
		if (n.tier_rank >= 0) {
			snprintf(tier, sizeof(tier), "%d", n.tier_rank);
			snprintf(ktier, sizeof(ktier), "memory_tier%d",
				 n.memory_tier);
		} else {
			strcpy(tier, "-");
			strcpy(ktier, "-");
		}
		if (n.read_latency_ns || n.read_bandwidth_mbps)
			snprintf(hmat, sizeof(hmat), "%u/%u ns, %u/%u MB/s",
				 n.read_latency_ns, n.write_latency_ns,
				 n.read_bandwidth_mbps, n.write_bandwidth_mbps);
		else
			strcpy(hmat, "-");
		printf("%-5d %-12s %-10s %-5s %-13s %s\n", n.os_index,
		       cpus[0] ? cpus : "(none)", mem, tier, ktier, hmat);
	}
}

int cmd_caps(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "root", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char rootbuf[PATH_MAX];
	const char *root = NULL;
	struct tiermm_caps *caps;
	int json = 0, c, ret;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+jr:h", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = 1;
			break;
		case 'r':
			root = optarg;
			break;
		case 'h':
			usage_caps(stdout);
			return CLI_OK;
		default:
			cli_err("caps", "unknown option or missing argument '%s' (see 'tiermm caps --help')",
				argv[optind - 1]);
			return CLI_USAGE;
		}
	}
	if (optind < argc) {
		cli_err("caps", "unexpected argument '%s'", argv[optind]);
		return CLI_USAGE;
	}
	if (root) {
		/* The library wants an absolute root; accept relative ones here. */
		if (!realpath(root, rootbuf)) {
			cli_err("caps", "--root %s: %s", root, strerror(errno));
			return CLI_FAIL;
		}
		root = rootbuf;
	}
	{
		TIERMM_OPTS(tiermm_caps_opts, o, .fsroot = root);

		ret = tiermm_caps_load(&o, &caps);
	}
	if (ret) {
		cli_err("caps", "%s", tiermm_errmsg());
		return CLI_FAIL;
	}
	if (json)
		ret = tiermm_caps_write_json(caps, stdout);
	else
		print_text(caps);
	tiermm_caps_free(caps);
	if (ret) {
		cli_err("caps", "%s", tiermm_errmsg());
		return CLI_FAIL;
	}
	return fflush(stdout) ? CLI_FAIL : CLI_OK;
}
