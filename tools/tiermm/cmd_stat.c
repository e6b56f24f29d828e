// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * tiermm stat PID: where a process's memory resides, per node and per
 * tier (from /proc/PID/numa_maps, like numastat -p), and what the tiering
 * runtime does in it when it runs under libtiermm-preload.so with a
 * statistics file. The file is found through the process's TIERMM_CONF
 * (/proc/PID/environ: the environment it was started with), as the shim
 * names it (%p expanded, ".PID" appended in a child that followed a fork,
 * relative paths against /proc/PID/cwd), and accepted only when its
 * records carry the process's pid and start time.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <tiermm.h>

#include "cli.h"
#include "conf.h"
#include "statfile.h"

void usage_stat(FILE *f)
{
	fputs("Usage: tiermm stat PID [--json] [--watch SECS] [--stats FILE]\n"
	      "Show where the memory of process PID resides, per NUMA node and per memory\n"
	      "tier (anonymous, file-backed and hugetlb memory, like numastat -p), and, when\n"
	      "PID runs under libtiermm-preload.so (tiermm run) with a statistics file, what\n"
	      "the tiering runtime does: backend, epochs and pace, hot set, budget, pages\n"
	      "promoted and demoted, CPU spent.\n"
	      "\n"
	      "Options:\n"
	      "  -j, --json         print one JSON object (one per refresh with --watch)\n"
	      "  -w, --watch SECS   print again every SECS seconds until PID exits\n"
	      "  -s, --stats FILE   read the runtime's statistics from FILE instead of the\n"
	      "                     file named in the process's TIERMM_CONF\n"
	      "  -h, --help         show this help\n"
	      "\n"
	      "Reading another user's process needs ptrace read access (CAP_SYS_PTRACE).\n"
	      "\n"
	      "Exit status: 0 on success (with --watch: when PID has exited), 1 when the\n"
	      "process cannot be read, 2 on a bad command line.\n", f);
}

struct topo_view {
	struct tiermm_topo *topo;
	int nr_tiers;
	int node_tier[TMM_MAX_NODES];	/* -1: unknown */
	char tier_nodes[16][128];
};

static void topo_view_load(struct topo_view *v)
{
	memset(v, 0, sizeof(*v));
	for (int i = 0; i < TMM_MAX_NODES; i++)
		v->node_tier[i] = -1;
	if (tiermm_topo_load(NULL, &v->topo)) {
		v->topo = NULL;
		return;
	}
	v->nr_tiers = tiermm_topo_nr_tiers(v->topo);
	if (v->nr_tiers > 16)
		v->nr_tiers = 16;
	for (int i = 0; i < tiermm_topo_nr_nodes(v->topo); i++) {
		struct tiermm_node_info info = { .sz = sizeof(info) };

		if (!tiermm_topo_node(v->topo, i, &info) && info.os_index >= 0 &&
		    info.os_index < TMM_MAX_NODES)
			v->node_tier[info.os_index] = info.tier;
	}
	for (int t = 0; t < v->nr_tiers; t++)
		if (tiermm_topo_tier_nodes(v->topo, t, v->tier_nodes[t],
					   sizeof(v->tier_nodes[t])) < 0)
			strcpy(v->tier_nodes[t], "?");
}

/* ---- Finding the shim's statistics -------------------------------------- */

static bool under_shim(pid_t pid)
{
	char path[64], line[4096];
	bool found = false;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f))
		found = strstr(line, "/libtiermm-preload.so") != NULL;
	fclose(f);
	return found;
}

/* TIERMM_CONF from the environment the process started with; "" if none. */
static void proc_conf(pid_t pid, char *out, size_t len)
{
	char path[64];
	static char env[1 << 16];
	ssize_t n, got = 0;
	int fd;

	out[0] = '\0';
	snprintf(path, sizeof(path), "/proc/%d/environ", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	while ((size_t)got < sizeof(env) - 1 &&
	       (n = read(fd, env + got, sizeof(env) - 1 - (size_t)got)) > 0)
		got += n;
	close(fd);
	env[got] = '\0';
	for (char *p = env; p < env + got; p += strlen(p) + 1)
		if (!strncmp(p, "TIERMM_CONF=", 12)) {
			snprintf(out, len, "%s", p + 12);
			/* The last one wins, as in getenv() of most libcs. */
		}
}

struct match {
	uint64_t pid, start;
	bool ok;
	struct tmm_rec *last;
};

static int match_cb(const struct tmm_rec *r, void *ctx)
{
	struct match *m = ctx;

	if ((uint64_t)tmm_rec_num(r, "pid", 0) == m->pid &&
	    (uint64_t)tmm_rec_num(r, "start", 0) == m->start) {
		m->ok = true;
		memcpy(m->last, r, sizeof(*r));
	}
	return 0;
}

/* The process's last record in path; 1 if found, 0 if not, -errno. */
static int last_record(const char *path, pid_t pid, struct tmm_rec *out)
{
	struct match m = { .pid = (uint64_t)pid, .last = out };
	int ret;

	if (tmm_proc_starttime(pid, &m.start))
		return -ESRCH;
	ret = tmm_stats_foreach(path, match_cb, &m, NULL);
	if (ret < 0)
		return ret;
	return m.ok;
}

/*
 * Find the statistics file of pid: path (>= PATH_MAX) gets the file, why a
 * reason when there is none. 1 found, 0 not.
 */
static int find_stats(pid_t pid, const char *given, char *path, char *why, size_t whylen,
		      struct tmm_rec *rec)
{
	char conf[8192], err[300], cand[PATH_MAX];
	struct tmm_nodemask all;
	struct tmm_conf c;
	int ret;

	if (given) {
		snprintf(path, PATH_MAX, "%s", given);
		ret = last_record(given, pid, rec);
		if (ret < 0)
			snprintf(why, whylen, "%s: %s", given, strerror(-ret));
		else if (!ret)
			snprintf(why, whylen, "%s has no record of pid %d", given, (int)pid);
		return ret > 0;
	}
	proc_conf(pid, conf, sizeof(conf));
	memset(&all, 0xff, sizeof(all));
	tmm_conf_init(&c);
	if (tmm_conf_parse(conf, &all, &c, err, sizeof(err))) {
		snprintf(why, whylen, "its TIERMM_CONF does not parse: %s", err);
		return 0;
	}
	if (!c.stats[0]) {
		snprintf(why, whylen, "its TIERMM_CONF names no statistics file (stats:FILE)");
		return 0;
	}
	for (int child = 0; child <= 1; child++) {
		if (tmm_stats_path(c.stats, (int)pid, child, cand, sizeof(cand)))
			continue;
		if (cand[0] != '/') {
			char link[64], cwd[PATH_MAX];
			ssize_t n;

			snprintf(link, sizeof(link), "/proc/%d/cwd", (int)pid);
			n = readlink(link, cwd, sizeof(cwd) - 1);
			if (n <= 0)
				continue;
			cwd[n] = '\0';
			if ((size_t)snprintf(path, PATH_MAX, "%s/%s", cwd, cand) >= PATH_MAX)
				continue;
		} else {
			snprintf(path, PATH_MAX, "%s", cand);
		}
		if (last_record(path, pid, rec) > 0)
			return 1;
	}
	snprintf(why, whylen, "no record of it in %s%s", c.stats,
		 strstr(c.stats, "%p") ? "" : " (nor in that name with .PID appended)");
	return 0;
}

/* ---- Output -------------------------------------------------------------- */

static double mib(double b)
{
	return b / 1048576.0;
}

static void comm_of(pid_t pid, char *out, size_t len)
{
	char path[64];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	out[0] = '\0';
	f = fopen(path, "re");
	if (!f)
		return;
	if (fgets(out, (int)len, f))
		out[strcspn(out, "\n")] = '\0';
	fclose(f);
}

/* The node columns: the topology's nodes, and any other numa_maps shows. */
static int columns(const struct topo_view *v, const struct tmm_numa_usage *u, int *cols)
{
	int n = 0;

	for (int i = 0; i < TMM_MAX_NODES && n < 64; i++)
		if (v->node_tier[i] >= 0 || (i < u->nr_nodes && u->node[i]))
			cols[n++] = i;
	return n;
}

static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			printf("\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			printf("\\u%04x", *s);
		else
			putchar(*s);
	}
	putchar('"');
}

static void print_json(pid_t pid, const char *comm, bool shim, const struct topo_view *v,
		       const struct tmm_numa_usage *u, const char *stats, const char *why,
		       const struct tmm_rec *rec)
{
	uint64_t tier[16] = { 0 };
	struct timespec now;
	int cols[64], nc = columns(v, u, cols);

	clock_gettime(CLOCK_REALTIME, &now);
	printf("{\"pid\":%d,\"comm\":", (int)pid);
	json_str(comm);
	printf(",\"time\":%.3f,\"shim\":%s,\"total_bytes\":%llu,\"nodes\":[",
	       (double)now.tv_sec + (double)now.tv_nsec / 1e9, shim ? "true" : "false",
	       (unsigned long long)u->total);
	for (int i = 0; i < nc; i++) {
		int n = cols[i];

		printf("%s{\"node\":%d,\"tier\":%d,\"anon_bytes\":%llu,\"file_bytes\":%llu,\"huge_bytes\":%llu,\"bytes\":%llu}",
		       i ? "," : "", n, v->node_tier[n], (unsigned long long)u->anon[n],
		       (unsigned long long)u->file[n], (unsigned long long)u->huge[n],
		       (unsigned long long)u->node[n]);
		if (v->node_tier[n] >= 0 && v->node_tier[n] < 16)
			tier[v->node_tier[n]] += u->node[n];
	}
	printf("],\"tiers\":[");
	for (int t = 0; t < v->nr_tiers; t++) {
		printf("%s{\"tier\":%d,\"nodes\":", t ? "," : "", t);
		json_str(v->tier_nodes[t]);
		printf(",\"bytes\":%llu}", (unsigned long long)tier[t]);
	}
	printf("],\"runtime\":");
	if (!rec) {
		printf("null,\"runtime_missing\":");
		json_str(why);
	} else {
		printf("{\"stats_file\":");
		json_str(stats);
		printf(",\"age_s\":%.3f", (double)now.tv_sec + (double)now.tv_nsec / 1e9 -
		       tmm_rec_num(rec, "time", 0));
		for (int i = 0; i < rec->n; i++) {
			printf(",");
			json_str(rec->f[i].key);
			printf(":");
			if (rec->f[i].str)
				json_str(rec->f[i].val);
			else
				printf("%s", rec->f[i].val);
		}
		printf("}");
	}
	printf("}\n");
}

static void print_text(pid_t pid, const char *comm, bool shim, const struct topo_view *v,
		       const struct tmm_numa_usage *u, const char *stats, const char *why,
		       const struct tmm_rec *r)
{
	static const char *const rows[] = { "anonymous", "file", "hugetlb", "total" };
	uint64_t tier[16] = { 0 };
	int cols[64], nc = columns(v, u, cols);
	struct timespec now;
	char head[32], pace[80];

	clock_gettime(CLOCK_REALTIME, &now);
	printf("pid %d (%s)%s\n", (int)pid, comm,
	       shim ? ", under libtiermm-preload.so" : "");
	printf("%-14s", "per node, MiB");
	for (int i = 0; i < nc; i++) {
		snprintf(head, sizeof(head), "node %d", cols[i]);
		printf(" %10s", head);
	}
	printf(" %10s\n", "total");
	for (size_t k = 0; k < sizeof(rows) / sizeof(rows[0]); k++) {
		uint64_t sum = 0;

		printf("  %-12s", rows[k]);
		for (int i = 0; i < nc; i++) {
			int n = cols[i];
			uint64_t b = k == 0 ? u->anon[n] : k == 1 ? u->file[n] :
				     k == 2 ? u->huge[n] : u->node[n];

			sum += b;
			printf(" %10.1f", mib((double)b));
		}
		printf(" %10.1f\n", mib((double)sum));
	}
	if (v->nr_tiers) {
		printf("  %-12s", "tier");
		for (int i = 0; i < nc; i++) {
			if (v->node_tier[cols[i]] >= 0)
				printf(" %10d", v->node_tier[cols[i]]);
			else
				printf(" %10s", "-");
		}
		printf("\n%-14s", "per tier, MiB");
		for (int i = 0; i < nc; i++)
			if (v->node_tier[cols[i]] >= 0 && v->node_tier[cols[i]] < 16)
				tier[v->node_tier[cols[i]]] += u->node[cols[i]];
		for (int t = 0; t < v->nr_tiers; t++) {
			snprintf(head, sizeof(head), "tier %d", t);
			printf(" %10s", head);
		}
		printf("\n  %-12s", "nodes");
		for (int t = 0; t < v->nr_tiers; t++)
			printf(" %10s", v->tier_nodes[t]);
		printf("\n  %-12s", "total");
		for (int t = 0; t < v->nr_tiers; t++)
			printf(" %10.1f", mib((double)tier[t]));
		if (u->total)
			printf("   (%.0f%% on tier 0)", 100.0 * (double)tier[0] / (double)u->total);
		printf("\n");
	}
	if (!r) {
		printf("runtime: %s\n", shim ? why : "not under libtiermm-preload.so");
		return;
	}
	printf("runtime (%s, last record %.1f s old, %s):\n", stats,
	       (double)now.tv_sec + (double)now.tv_nsec / 1e9 - tmm_rec_num(r, "time", 0),
	       tmm_rec_get(r, "event") ?: "?");
	cli_fmt_pace(tmm_rec_num(r, "backoff", 0), tmm_rec_num(r, "backoff_epochs", 0), pace,
		     sizeof(pace));
	printf("  backend %s, state %s, %.0f epochs%s, placement %s, pt %s\n",
	       tmm_rec_get(r, "backend") ?: "?", tmm_rec_get(r, "state") ?: "?",
	       tmm_rec_num(r, "epochs", 0), pace, tmm_rec_get(r, "placement") ?: "?",
	       tmm_rec_get(r, "pt") ?: "?");
	printf("  budget %.1f MiB, hot set %.1f MiB, fast tier %.1f of %.1f MiB resident\n",
	       mib(tmm_rec_num(r, "budget_bytes", 0)), mib(tmm_rec_num(r, "hot_set_bytes", 0)),
	       mib(tmm_rec_num(r, "fast_bytes", 0)), mib(tmm_rec_num(r, "resident_bytes", 0)));
	printf("  promoted %.0f pages (%.1f MiB), demoted %.0f pages (%.1f MiB), failed %.0f\n",
	       tmm_rec_num(r, "promoted_pages", 0), mib(tmm_rec_num(r, "promoted_bytes", 0)),
	       tmm_rec_num(r, "demoted_pages", 0), mib(tmm_rec_num(r, "demoted_bytes", 0)),
	       tmm_rec_num(r, "failed_pages", 0));
	printf("  cpu: sampling %.2f s, classify %.2f s, migrate %.2f s (the process: %.2f s)\n",
	       tmm_rec_num(r, "cpu_sampling_s", 0), tmm_rec_num(r, "cpu_classify_s", 0),
	       tmm_rec_num(r, "cpu_migrate_s", 0), tmm_rec_num(r, "cpu_process_s", 0));
	printf("  regions seen: %.1f MiB anonymous and %.1f MiB file mappings, heap %.1f MiB\n",
	       mib(tmm_rec_num(r, "mmap_anon_bytes", 0)), mib(tmm_rec_num(r, "mmap_file_bytes", 0)),
	       mib(tmm_rec_num(r, "heap_bytes", 0)));
	if (tmm_rec_get(r, "error") && *tmm_rec_get(r, "error"))
		printf("  error: %s\n", tmm_rec_get(r, "error"));
}

/* One report. 0, or -errno when the process cannot be read. */
static int report(pid_t pid, bool json, const char *given, const struct topo_view *v)
{
	static struct tmm_numa_usage u;
	static struct tmm_rec rec;
	char comm[64], stats[PATH_MAX], why[PATH_MAX + 128];
	bool shim, have;
	int ret;

	ret = tmm_numa_maps(pid, &u);
	if (ret)
		return ret;
	comm_of(pid, comm, sizeof(comm));
	shim = under_shim(pid);
	stats[0] = '\0';
	strcpy(why, "not under libtiermm-preload.so");
	have = (shim || given) && find_stats(pid, given, stats, why, sizeof(why), &rec);
	if (json)
		print_json(pid, comm, shim, v, &u, stats, why, have ? &rec : NULL);
	else
		print_text(pid, comm, shim, v, &u, stats, why, have ? &rec : NULL);
	return fflush(stdout) ? -EIO : 0;
}

int cmd_stat(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "watch", required_argument, NULL, 'w' },
		{ "stats", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static struct topo_view v;
	const char *given = NULL;
	bool json = false;
	double watch = 0;
	char *end;
	long pid;
	int c, ret;

	optind = 1;
	opterr = 0;
	/* Options may follow PID (no '+': getopt permutes). */
	while ((c = getopt_long(argc, argv, "jw:s:h", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'w':
			watch = strtod(optarg, &end);
			if (*end || !(watch > 0) || watch > 86400 || !isfinite(watch)) {
				cli_err("stat", "--watch %s: not a number of seconds (e.g. 1 or 0.5)",
					optarg);
				return CLI_USAGE;
			}
			break;
		case 's':
			given = optarg;
			break;
		case 'h':
			usage_stat(stdout);
			return CLI_OK;
		default:
			cli_err("stat", "unknown option or missing argument '%s' (see 'tiermm stat --help')",
				argv[optind - 1]);
			return CLI_USAGE;
		}
	}
	if (optind >= argc) {
		cli_err("stat", "no PID given");
		return CLI_USAGE;
	}
	if (optind + 1 < argc) {
		cli_err("stat", "unexpected argument '%s'", argv[optind + 1]);
		return CLI_USAGE;
	}
	pid = strtol(argv[optind], &end, 10);
	if (*end || pid <= 0 || pid > INT_MAX) {
		cli_err("stat", "'%s' is not a process id", argv[optind]);
		return CLI_USAGE;
	}
	topo_view_load(&v);
	for (int round = 0;; round++) {
		struct timespec ts;

		ret = report((pid_t)pid, json, given, &v);
		if (ret == -ESRCH && round) {
			if (!json)
				printf("pid %ld has exited\n", pid);
			break;
		}
		if (ret) {
			if (ret == -ESRCH)
				cli_err("stat", "no process %ld", pid);
			else
				cli_err("stat", "cannot read /proc/%ld/numa_maps: %s%s", pid,
					strerror(-ret), ret == -EACCES ?
					" (needs ptrace read access: the same user, or CAP_SYS_PTRACE)" :
					"");
			tiermm_topo_free(v.topo);
			return CLI_FAIL;
		}
		if (!watch)
			break;
		ts.tv_sec = (time_t)watch;
		ts.tv_nsec = (long)((watch - (double)ts.tv_sec) * 1e9);
		while (nanosleep(&ts, &ts) && errno == EINTR)
			;
		if (!json)
			printf("\n");
	}
	tiermm_topo_free(v.topo);
	return CLI_OK;
}
