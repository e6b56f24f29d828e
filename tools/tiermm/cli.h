/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The tiermm command: shared declarations of its verbs. */
#ifndef TIERMM_CLI_H
#define TIERMM_CLI_H

#include <stdio.h>

/* Exit statuses of every verb. */
enum {
	CLI_OK = 0,
	CLI_FAIL = 1,	/* the operation failed */
	CLI_USAGE = 2,	/* bad command line */
};

struct cli_verb {
	const char *name;
	const char *summary;
	int (*run)(int argc, char **argv);
	void (*usage)(FILE *f);
};

int cmd_caps(int argc, char **argv);
void usage_caps(FILE *f);
int cmd_pt(int argc, char **argv);
void usage_pt(FILE *f);
int cmd_topo(int argc, char **argv);
void usage_topo(FILE *f);
int cmd_run(int argc, char **argv);
void usage_run(FILE *f);
int cmd_stat(int argc, char **argv);
void usage_stat(FILE *f);
int cmd_plot(int argc, char **argv);
void usage_plot(FILE *f);
int cmd_ctl(int argc, char **argv);
void usage_ctl(FILE *f);

/* Bytes for people: "512 B", "1.5 MiB", "2.0 GiB" (binary units, one decimal). */
void cli_fmt_bytes(double b, char *out, size_t len);

/*
 * The runtime's pace for a summary line: ", pace 1/16 (6 slow epochs)", or
 * "" when backoff is below 1 (a shim or daemon older than settling).
 */
void cli_fmt_pace(double backoff, double slow_epochs, char *out, size_t len);

/* Print "tiermm VERB: message" to stderr. */
void cli_err(const char *verb, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
