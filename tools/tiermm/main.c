// SPDX-License-Identifier: LGPL-2.1-or-later
/* tiermm: one command, several verbs. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <tiermm.h>

#include "cli.h"

static int cmd_version(int argc, char **argv);
static void usage_version(FILE *f);

static const struct cli_verb verbs[] = {
	{ "caps", "report which kernel features tiermm can use", cmd_caps,
	  usage_caps },
	{ "ctl", "ask tiermmd to manage other processes or cgroups; read what it does",
	  cmd_ctl, usage_ctl },
	{ "plot", "draw a statistics file of tiermm run as an SVG picture over time",
	  cmd_plot, usage_plot },
	{ "pt", "page tables of a process: where they are, dump, move, follow its threads",
	  cmd_pt, usage_pt },
	{ "run", "run a command with the tiering runtime and a placement, then summarise",
	  cmd_run, usage_run },
	{ "stat", "memory of a process per node and tier, and its runtime's statistics",
	  cmd_stat, usage_stat },
	{ "topo", "show nodes, memory kinds, tiers, distances and measured values",
	  cmd_topo, usage_topo },
	{ "version", "print the tiermm version", cmd_version, usage_version },
};

void cli_err(const char *verb, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "tiermm %s: ", verb);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void cli_fmt_bytes(double b, char *out, size_t len)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	double unit = 1;
	int u = 0;

	while (u < 6 && fabs(b) >= unit * 1024) {
		unit *= 1024;
		u++;
	}
	if (!u)
		snprintf(out, len, "%.0f B", b);
	else
		snprintf(out, len, "%.1f %s", b / unit, units[u]);
}

void cli_fmt_pace(double backoff, double slow_epochs, char *out, size_t len)
{
	if (backoff >= 1)
		snprintf(out, len, ", pace 1/%.0f (%.0f slow epoch%s)", backoff, slow_epochs,
			 slow_epochs == 1 ? "" : "s");
	else if (len)
		*out = '\0';
}

static void usage_version(FILE *f)
{
	fputs("Usage: tiermm version\n"
	      "Print the version of the tiermm command and of the libtiermm it runs with.\n"
	      "\n"
	      "Options:\n"
	      "  -h, --help    show this help\n", f);
}

static int cmd_version(int argc, char **argv)
{
	if (argc > 1) {
		if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
			usage_version(stdout);
			return CLI_OK;
		}
		cli_err("version", "unexpected argument '%s'", argv[1]);
		return CLI_USAGE;
	}
	printf("tiermm %s (libtiermm %s)\n", TIERMM_VERSION_STRING,
	       tiermm_version_string());
	return CLI_OK;
}

static void usage(FILE *f)
{
	fputs("Usage: tiermm VERB [OPTIONS] [ARGS]\n"
	      "       tiermm help VERB | tiermm VERB --help\n"
	      "\n"
	      "Verbs:\n", f);
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		fprintf(f, "  %-10s %s\n", verbs[i].name, verbs[i].summary);
	fputs("\nEnvironment: TIERMM_LOG=error|warn|info|debug prints the library's messages;\n"
	      "TIERMM_FSROOT=DIR reads /sys and /proc below DIR (a captured machine).\n", f);
}

static const struct cli_verb *find_verb(const char *name)
{
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		if (!strcmp(verbs[i].name, name))
			return &verbs[i];
	return NULL;
}

int main(int argc, char **argv)
{
	const struct cli_verb *v;

	if (argc < 2) {
		usage(stderr);
		return CLI_USAGE;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		usage(stdout);
		return CLI_OK;
	}
	if (!strcmp(argv[1], "--version"))
		return cmd_version(1, argv);
	if (!strcmp(argv[1], "help")) {
		if (argc < 3) {
			usage(stdout);
			return CLI_OK;
		}
		v = find_verb(argv[2]);
		if (!v) {
			fprintf(stderr, "tiermm: unknown verb '%s' (try 'tiermm --help')\n",
				argv[2]);
			return CLI_USAGE;
		}
		v->usage(stdout);
		return CLI_OK;
	}
	v = find_verb(argv[1]);
	if (!v) {
		fprintf(stderr, "tiermm: unknown verb '%s' (try 'tiermm --help')\n",
			argv[1]);
		return CLI_USAGE;
	}
	return v->run(argc - 1, argv + 1);
}
