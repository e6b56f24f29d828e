/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The shim's statistics records and what reads them (`tiermm run`'s
 * summary, `tiermm stat`), and the per-node residency of a process from
 * /proc/PID/numa_maps. Private, shared by the shim and the CLI.
 *
 * A record is an ordered list of flat key/value fields. In a JSON-lines
 * file each record is one object on one line ({"time":...,"pid":...}); in
 * a CSV file a header line names the fields and each record is a row. The
 * shim writes the same fields in every record of a process (the node and
 * tier columns come from the topology, which does not change), so a CSV
 * file has one header; a new header line (a line that starts with a
 * letter) may follow when another program image (exec) appends.
 */
#ifndef TIERMM_SHIM_STATFILE_H
#define TIERMM_SHIM_STATFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf.h"

#define TMM_REC_MAX 192		/* fields per record */
#define TMM_KEY_LEN 32
#define TMM_VAL_LEN 256

struct tmm_field {
	char key[TMM_KEY_LEN];
	char val[TMM_VAL_LEN];
	bool str;		/* a string (quoted in JSON) */
};

struct tmm_rec {
	int n;
	bool truncated;		/* fields beyond TMM_REC_MAX were dropped */
	struct tmm_field f[TMM_REC_MAX];
};

void tmm_rec_clear(struct tmm_rec *r);
void tmm_rec_put_u64(struct tmm_rec *r, const char *key, uint64_t v);
void tmm_rec_put_dbl(struct tmm_rec *r, const char *key, double v);
void tmm_rec_put_str(struct tmm_rec *r, const char *key, const char *v);

/* The value of key as text, or NULL. */
const char *tmm_rec_get(const struct tmm_rec *r, const char *key);
/* The value of key as a number, or def when absent or not a number. */
double tmm_rec_num(const struct tmm_rec *r, const char *key, double def);

/*
 * Format r as one line (with its newline) in fmt (TMM_FMT_JSON or
 * TMM_FMT_CSV; with header, a CSV header line comes first). Returns the
 * length, or -ENOSPC when buf is too small.
 */
int tmm_rec_format(const struct tmm_rec *r, int fmt, bool header, char *buf,
		   size_t len);

/*
 * Read a stats file, calling fn for every record in order (fn returns 0 to
 * go on, anything else to stop and have that returned). The format is
 * recognised per line: '{' starts a JSON record, a letter a CSV header,
 * anything else a CSV row. A line that does not parse (a record being
 * written right now, at the end) is skipped and counted in *bad (may be
 * NULL). Returns 0, fn's value, or -errno when the file cannot be read.
 */
typedef int (*tmm_rec_fn)(const struct tmm_rec *r, void *ctx);
int tmm_stats_foreach(const char *path, tmm_rec_fn fn, void *ctx, int *bad);

/* Parse one line (no newline needed). 0 or -EINVAL. */
int tmm_rec_parse_json(const char *line, struct tmm_rec *r);
/* A CSV header line: the names, in order, as the values of header's fields. */
int tmm_rec_parse_csv_header(const char *line, struct tmm_rec *header);
/* One CSV row against a parsed header. 0 or -EINVAL (another width too). */
int tmm_rec_parse_csv(const char *line, const struct tmm_rec *header,
		      struct tmm_rec *r);

/* ---- Residency from /proc/PID/numa_maps --------------------------------- */

struct tmm_numa_usage {
	int nr_nodes;		/* 1 + highest node holding a page */
	uint64_t total;		/* bytes, all nodes */
	uint64_t node[TMM_MAX_NODES];	/* bytes per node */
	uint64_t anon[TMM_MAX_NODES];	/* of which in anonymous mappings */
	uint64_t file[TMM_MAX_NODES];	/* in file-backed mappings */
	uint64_t huge[TMM_MAX_NODES];	/* in hugetlbfs mappings */
	uint64_t mappings;	/* lines of numa_maps */
};

/*
 * Sum /proc/PID/numa_maps (pid 0: self) per node. 0 or -errno (-ESRCH:
 * no such process; -EACCES: not ours to read).
 */
int tmm_numa_maps(int pid, struct tmm_numa_usage *u);

/* Field 22 of /proc/PID/stat: start time in clock ticks after boot. */
int tmm_proc_starttime(int pid, uint64_t *ticks);
/* Numeric field number field (3..52, as proc(5) counts) of /proc/PID/stat. */
int tmm_proc_stat_field(int pid, int field, uint64_t *v);

#endif /* TIERMM_SHIM_STATFILE_H */
