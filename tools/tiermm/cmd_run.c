// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * tiermm run: a command under libtiermm-preload.so (tiermm-preload(7)).
 * Options become one TIERMM_CONF string; numactl's placement options keep
 * their names and node syntax. Without --quiet the command runs as a child
 * and a summary of the shim's statistics file goes to stderr when it ends;
 * with --quiet tiermm execs it. Either way the exit status is the
 * command's (killed by a signal: tiermm kills itself with the same one).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <tiermm.h>

#include "cli.h"
#include "conf.h"
#include "statfile.h"

#ifndef TIERMM_PRELOAD_INSTALLED
#define TIERMM_PRELOAD_INSTALLED "/usr/local/lib/libtiermm-preload.so"
#endif
#define PRELOAD_NAME "libtiermm-preload.so"

void usage_run(FILE *f)
{
	fputs("Usage: tiermm run [OPTIONS] [--] CMD [ARGS...]\n"
	      "Run CMD with libtiermm-preload.so, which starts tiermm's tiering runtime inside\n"
	      "it (hot memory to the fast tier, cold memory to the slow tier, within a budget)\n"
	      "and applies the placement asked for, then print a summary on stderr when CMD\n"
	      "ends: resident memory per tier over time, pages promoted and demoted, CPU spent.\n"
	      "\n"
	      "Placement (NODES in numactl's syntax: 0-1, +2 relative, !3 excluded, all):\n"
	      "  -i, --interleave=NODES    interleave CMD's memory over NODES\n"
	      "  -m, --membind=NODES       allocate CMD's memory only on NODES\n"
	      "  -p, --preferred=NODES     prefer NODES (several: MPOL_PREFERRED_MANY)\n"
	      "  -t, --tier=N              prefer the nodes of tier N (0 is the fastest)\n"
	      "  -N, --cpunodebind=NODES   run CMD on the CPUs of NODES only\n"
	      "  -r, --pgtablerepl=NODES   replicate CMD's page tables on NODES (and of what it\n"
	      "                            forks and executes): needs a kernel with tiermm's\n"
	      "                            page-table replication patches\n"
	      "\n"
	      "Tiering:\n"
	      "  -b, --fast-budget=SIZE    fast-tier budget: bytes with an optional K, M, G or T\n"
	      "                            suffix, or a percentage of CMD's resident memory\n"
	      "                            (default: what the fast tier has free at start)\n"
	      "  -B, --backend=NAME        hotness backend: auto (default), perf, scan, damon, or\n"
	      "                            none (no tiering: placement and statistics only)\n"
	      "  -I, --interval=TIME       the runtime's epoch, e.g. 500ms (default) or 2s\n"
	      "      --backoff=N           once placement has settled, epochs up to N times\n"
	      "                            longer, sampling 2 rounds each: 1 to 1024 (default\n"
	      "                            32), 1: never\n"
	      "      --pt=POLICY           page tables next to their data through tiermm.ko:\n"
	      "                            none (default), once (at start), follow (every\n"
	      "                            statistics interval)\n"
	      "      --follow-fork         processes CMD forks get a runtime of their own\n"
	      "      --follow-exec         programs CMD executes keep the shim\n"
	      "      --strict              CMD does not run (status 127) when the shim cannot\n"
	      "                            do what is asked; by default it runs without tiermm\n"
	      "\n"
	      "Statistics:\n"
	      "  -s, --stats=FILE          keep the statistics in FILE (JSON lines; CSV if FILE\n"
	      "                            ends in .csv; %p stands for the process id); by\n"
	      "                            default a temporary file, removed after the summary\n"
	      "      --stats-interval=TIME a record every TIME (default 1s)\n"
	      "      --topo=FILE           topology cache for a fast start (default\n"
	      "                            ~/.cache/tiermm/topo.xml, made when missing or from\n"
	      "                            another machine; none: no cache)\n"
	      "  -q, --quiet               no summary: execute CMD in place of tiermm\n"
	      "  -h, --help                show this help\n"
	      "\n"
	      "TIERMM_CONF already in the environment is kept; the options above come after it\n"
	      "and win. TIERMM_PRELOAD=PATH names the shim to use.\n"
	      "\n"
	      "Exit status: CMD's; 125 when tiermm itself failed (--pgtablerepl refused\n"
	      "included), 126 when CMD could not be executed, 127 when it was not found (or,\n"
	      "with --strict, when the shim refused), 2 on a bad command line.\n", f);
}

enum {
	OPT_PT = 256,
	OPT_FOLLOW_FORK,
	OPT_FOLLOW_EXEC,
	OPT_STRICT,
	OPT_STATS_INTERVAL,
	OPT_TOPO,
	OPT_BACKOFF,
};

#define EXIT_TIERMM 125
#define EXIT_CANNOT_EXEC 126
#define EXIT_NOT_FOUND 127

struct run_args {
	char conf[8192];
	size_t n;
	const char *placement_opt;	/* the option that set a placement */
	bool have_cpubind;
	struct tmm_nodemask cpunodes;
	const char *stats;
	const char *topo;
	bool quiet, strict;
};

static void add(struct run_args *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void add(struct run_args *a, const char *fmt, ...)
{
	va_list ap;

	if (a->n && a->n < sizeof(a->conf))
		a->conf[a->n++] = ',';
	va_start(ap, fmt);
	if (a->n < sizeof(a->conf))
		a->n += (size_t)vsnprintf(a->conf + a->n, sizeof(a->conf) - a->n, fmt, ap);
	va_end(ap);
}

static int nodes_opt(const char *opt, const char *val, const struct tmm_nodemask *allowed,
		     struct tmm_nodemask *out)
{
	char err[300];

	if (tmm_nodes_parse(val, allowed, out, err, sizeof(err))) {
		cli_err("run", "--%s=%s: %s", opt, val, err);
		return -1;
	}
	return 0;
}

static int placement(struct run_args *a, const char *opt, const char *kind, const char *val,
		     const struct tmm_nodemask *allowed)
{
	struct tmm_nodemask m;
	char list[256];

	if (a->placement_opt && strcmp(a->placement_opt, opt)) {
		cli_err("run", "--%s and --%s: one placement only", a->placement_opt, opt);
		return -1;
	}
	a->placement_opt = opt;
	if (!strcmp(kind, "tier")) {
		char *end;
		long t = strtol(val, &end, 10);

		if (!*val || *end || t < 0 || t > 64) {
			cli_err("run", "--tier=%s: not a tier number (0 is the fastest)", val);
			return -1;
		}
		add(a, "placement:tier=%ld", t);
		return 0;
	}
	if (nodes_opt(opt, val, allowed, &m))
		return -1;
	tmm_nodes_format(&m, list, sizeof(list));
	add(a, "placement:%s=%s", kind, list);
	return 0;
}

/*
 * --pgtablerepl=NODES (numactl's node syntax) into the mask that
 * tiermm_pt_replicate() takes. CLI_USAGE for a bad list; EXIT_TIERMM when
 * the kernel cannot replicate page tables at all (asked of this process,
 * which changes nothing), so that CMD never starts without what was asked.
 */
#define REPL_LONGS (TMM_MAX_NODES / (8 * sizeof(unsigned long)))

static int pgtablerepl_mask(const char *val, const struct tmm_nodemask *allowed,
			    unsigned long *mask)
{
	unsigned long self[REPL_LONGS];
	struct tmm_nodemask m;

	if (nodes_opt("pgtablerepl", val, allowed, &m))
		return CLI_USAGE;
	memset(mask, 0, REPL_LONGS * sizeof(*mask));
	for (int n = 0; n < TMM_MAX_NODES; n++)
		if (tmm_node_isset(&m, n))
			mask[n / (8 * sizeof(long))] |= 1UL << (n % (8 * sizeof(long)));
	if (tiermm_pt_replication(0, self, TMM_MAX_NODES) < 0) {
		cli_err("run", "--pgtablerepl=%s: %s", val, tiermm_errmsg());
		return EXIT_TIERMM;
	}
	return 0;
}

/*
 * In the process that executes CMD, just before: replicate its page tables
 * on the nodes, a policy the kernel keeps across execve(). 0 or -1 with the
 * message printed.
 */
static int pgtablerepl_apply(const char *val, const unsigned long *mask)
{
	if (tiermm_pt_replicate(0, mask, TMM_MAX_NODES, 0)) {
		cli_err("run", "--pgtablerepl=%s: %s", val, tiermm_errmsg());
		return -1;
	}
	return 0;
}

/* The shim: TIERMM_PRELOAD, next to this binary (../lib), or the installed one. */
static int find_preload(char *out, size_t len)
{
	const char *env = getenv("TIERMM_PRELOAD");
	char exe[PATH_MAX];
	ssize_t n;

	if (env && *env) {
		if (access(env, R_OK)) {
			cli_err("run", "TIERMM_PRELOAD=%s: %s", env, strerror(errno));
			return -1;
		}
		snprintf(out, len, "%s", env);
		return 0;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		char *slash;

		exe[n] = '\0';
		slash = strrchr(exe, '/');
		if (slash) {
			*slash = '\0';
			if ((size_t)snprintf(out, len, "%s/../lib/%s", exe, PRELOAD_NAME) < len &&
			    !access(out, R_OK)) {
				char real[PATH_MAX];

				if (realpath(out, real))
					snprintf(out, len, "%s", real);
				return 0;
			}
		}
	}
	snprintf(out, len, "%s", TIERMM_PRELOAD_INSTALLED);
	if (access(out, R_OK)) {
		cli_err("run", "cannot find %s (looked next to this program and at %s); set TIERMM_PRELOAD=PATH",
			PRELOAD_NAME, TIERMM_PRELOAD_INSTALLED);
		return -1;
	}
	return 0;
}

static int mkdirs(char *path)
{
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0755) && errno != EEXIST) {
			*p = '/';
			return -1;
		}
		*p = '/';
	}
	return 0;
}

/*
 * The topology cache: FILE if it was written on this machine, else a fresh
 * discovery written there. The default cache is best effort (no key when it
 * cannot be made); an explicit one that fails is an error.
 */
static int topo_cache(struct run_args *a)
{
	char path[PATH_MAX], tmp[PATH_MAX + 16];
	const char *base = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
	struct tiermm_topo *topo = NULL;
	bool explicit = a->topo != NULL;

	if (explicit && !strcmp(a->topo, "none"))
		return 0;
	if (explicit)
		snprintf(path, sizeof(path), "%s", a->topo);
	else if (base && *base == '/')
		snprintf(path, sizeof(path), "%s/tiermm/topo.xml", base);
	else if (home && *home == '/')
		snprintf(path, sizeof(path), "%s/.cache/tiermm/topo.xml", home);
	else
		return 0;
	{
		TIERMM_OPTS(tiermm_topo_opts, o, .xml_path = path,
			    .flags = TIERMM_TOPO_CHECK_MACHINE);

		if (!access(path, R_OK) && !tiermm_topo_load(&o, &topo))
			goto use;
	}
	if (explicit && !access(path, F_OK)) {
		cli_err("run", "--topo=%s: %s (remove it to make a new cache)", path,
			tiermm_errmsg());
		return -1;
	}
	if (tiermm_topo_load(NULL, &topo)) {
		if (explicit) {
			cli_err("run", "--topo=%s: %s", path, tiermm_errmsg());
			return -1;
		}
		return 0;
	}
	snprintf(tmp, sizeof(tmp), "%s.%d", path, (int)getpid());
	if (mkdirs(path) || tiermm_topo_export_xml(topo, tmp, 0) || rename(tmp, path)) {
		unlink(tmp);
		tiermm_topo_free(topo);
		if (explicit) {
			cli_err("run", "--topo=%s: cannot write the cache: %s", path,
				errno ? strerror(errno) : tiermm_errmsg());
			return -1;
		}
		return 0;
	}
use:
	tiermm_topo_free(topo);
	if (path[0] != '/') {
		char real[PATH_MAX];

		if (realpath(path, real))
			snprintf(path, sizeof(path), "%s", real);
	}
	add(a, "topo:%s", path);
	return 0;
}

/* --cpunodebind: the CPUs of the nodes, from sysfs. */
static int cpubind(const struct tmm_nodemask *nodes)
{
	cpu_set_t set;
	int nr = 0;

	CPU_ZERO(&set);
	for (int n = 0; n < TMM_MAX_NODES; n++) {
		char path[96], buf[4096], *p;
		FILE *f;

		if (!tmm_node_isset(nodes, n))
			continue;
		snprintf(path, sizeof(path), "/sys/devices/system/node/node%d/cpulist", n);
		f = fopen(path, "re");
		if (!f || !fgets(buf, sizeof(buf), f)) {
			if (f)
				fclose(f);
			continue;
		}
		fclose(f);
		for (p = buf; *p && *p != '\n';) {
			char *e;
			long lo = strtol(p, &e, 10), hi = lo;

			if (e == p)
				break;
			if (*e == '-')
				hi = strtol(e + 1, &e, 10);
			for (long c = lo; c <= hi && c < CPU_SETSIZE; c++, nr++)
				CPU_SET((int)c, &set);
			p = *e == ',' ? e + 1 : e;
		}
	}
	if (!nr) {
		cli_err("run", "--cpunodebind: the nodes have no CPU");
		return -1;
	}
	if (sched_setaffinity(0, sizeof(set), &set)) {
		cli_err("run", "--cpunodebind: sched_setaffinity: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* ---- The summary -------------------------------------------------------- */

#define MAX_TIERS 16

struct sample {
	double t;
	uint64_t tier[MAX_TIERS];
};

struct summary {
	pid_t pid;
	size_t records, other;
	int nr_tiers;
	struct tmm_rec *last;
	struct sample *s;
	size_t ns, cap;
	bool any;
};

static int summary_cb(const struct tmm_rec *r, void *ctx)
{
	struct summary *sum = ctx;
	struct sample smp = { .t = tmm_rec_num(r, "t", 0) };
	char key[32];

	/* A child that followed a fork writes a file of its own; a stray record is not ours. */
	if ((pid_t)tmm_rec_num(r, "pid", -1) != sum->pid) {
		sum->other++;
		return 0;
	}
	sum->records++;
	memcpy(sum->last, r, sizeof(*r));
	sum->any = true;
	for (int t = 0; t < MAX_TIERS; t++) {
		double v;

		snprintf(key, sizeof(key), "tier%d_bytes", t);
		v = tmm_rec_num(r, key, -1);
		if (v < 0)
			break;
		smp.tier[t] = (uint64_t)v;
		if (t + 1 > sum->nr_tiers)
			sum->nr_tiers = t + 1;
	}
	if (sum->ns == sum->cap) {
		size_t cap = sum->cap ? sum->cap * 2 : 256;
		struct sample *s = realloc(sum->s, cap * sizeof(*s));

		if (!s)
			return 0;
		sum->s = s;
		sum->cap = cap;
	}
	sum->s[sum->ns++] = smp;
	return 0;
}

static double mib(double b)
{
	return b / 1048576.0;
}

static void print_summary(const char *cmd, pid_t pid, int status, double wall,
			  const struct rusage *ru, const char *stats, bool keep)
{
	struct summary sum = { .pid = pid };
	const struct tmm_rec *r;
	double prog_cpu = (double)(ru->ru_utime.tv_sec + ru->ru_stime.tv_sec) +
			  (double)(ru->ru_utime.tv_usec + ru->ru_stime.tv_usec) / 1e6;
	double rt_cpu;
	char how[64];

	if (WIFSIGNALED(status))
		snprintf(how, sizeof(how), "was killed by signal %d (%s)", WTERMSIG(status),
			 strsignal(WTERMSIG(status)));
	else
		snprintf(how, sizeof(how), "exited with status %d", WEXITSTATUS(status));
	fprintf(stderr, "tiermm run: %s (pid %d) %s after %.1f s\n", cmd, (int)pid, how, wall);
	sum.last = malloc(sizeof(*sum.last));
	if (!sum.last || tmm_stats_foreach(stats, summary_cb, &sum, NULL) < 0 || !sum.any) {
		fprintf(stderr,
			"  no statistics from the shim: it refused the configuration (see its message above),\n"
			"  or it was not loaded (a statically linked or set-user-ID program ignores LD_PRELOAD)\n");
		goto out;
	}
	r = sum.last;
	rt_cpu = tmm_rec_num(r, "cpu_sampling_s", 0) + tmm_rec_num(r, "cpu_classify_s", 0) +
		 tmm_rec_num(r, "cpu_migrate_s", 0);
	if (strcmp(tmm_rec_get(r, "backend") ?: "none", "none")) {
		char pace[80];

		cli_fmt_pace(tmm_rec_num(r, "backoff", 0), tmm_rec_num(r, "backoff_epochs", 0),
			     pace, sizeof(pace));
		fprintf(stderr, "  runtime    backend %s, %.0f epochs%s, state %s, fast-tier budget %.1f MiB\n",
			tmm_rec_get(r, "backend"), tmm_rec_num(r, "epochs", 0), pace,
			tmm_rec_get(r, "state") ?: "?", mib(tmm_rec_num(r, "budget_bytes", 0)));
		fprintf(stderr, "  moved      promoted %.0f pages (%.1f MiB), demoted %.0f pages (%.1f MiB), %.0f failed\n",
			tmm_rec_num(r, "promoted_pages", 0), mib(tmm_rec_num(r, "promoted_bytes", 0)),
			tmm_rec_num(r, "demoted_pages", 0), mib(tmm_rec_num(r, "demoted_bytes", 0)),
			tmm_rec_num(r, "failed_pages", 0));
		fprintf(stderr, "  hot set    %.1f MiB; fast tier %.1f MiB of %.1f MiB resident (last epoch)\n",
			mib(tmm_rec_num(r, "hot_set_bytes", 0)), mib(tmm_rec_num(r, "fast_bytes", 0)),
			mib(tmm_rec_num(r, "resident_bytes", 0)));
	} else {
		fprintf(stderr, "  runtime    none (backend none): placement %s, statistics only\n",
			tmm_rec_get(r, "placement") ?: "?");
	}
	fprintf(stderr, "  cpu        %s %.2f s (user+sys); tiermm runtime %.2f s = %.1f%% (sampling %.2f, classify %.2f, migrate %.2f)\n",
		cmd, prog_cpu, rt_cpu, prog_cpu > 0 ? 100.0 * rt_cpu / prog_cpu : 0.0,
		tmm_rec_num(r, "cpu_sampling_s", 0), tmm_rec_num(r, "cpu_classify_s", 0),
		tmm_rec_num(r, "cpu_migrate_s", 0));
	if (strcmp(tmm_rec_get(r, "pt") ?: "none", "none"))
		fprintf(stderr, "  pt         %s: %.0f page-table pages moved\n", tmm_rec_get(r, "pt"),
			tmm_rec_num(r, "pt_moved", 0));
	if (!isnan(tmm_rec_num(r, "pt_local_share", NAN)))
		fprintf(stderr, "  pt local   %.0f%% of %.0f leaf page tables on the node of their data (at exit)\n",
			100 * tmm_rec_num(r, "pt_local_share", 0), tmm_rec_num(r, "pt_leaf_tables", 0));
	if (tmm_rec_get(r, "error") && *tmm_rec_get(r, "error"))
		fprintf(stderr, "  error      %s\n", tmm_rec_get(r, "error"));
	if (sum.nr_tiers && sum.ns) {
		size_t rows = sum.ns < 12 ? sum.ns : 12;

		fprintf(stderr, "  resident per tier over time, MiB (%zu records):\n  %9s", sum.records,
			"time");
		for (int t = 0; t < sum.nr_tiers; t++)
			fprintf(stderr, "  %8s%-2d", "tier ", t);
		fputc('\n', stderr);
		size_t k = 0, shown = SIZE_MAX;

		for (size_t i = 0; i < rows; i++) {
			/* Evenly spread in time, the first and the last record included. */
			double when = rows > 1 ? sum.s[0].t + (double)i * (sum.s[sum.ns - 1].t -
								      sum.s[0].t) / (double)(rows - 1) : 0;

			while (k + 1 < sum.ns && sum.s[k].t < when - 1e-9)
				k++;
			if (i == rows - 1)
				k = sum.ns - 1;
			/* A gap in the records (a starved machine): each record once. */
			if (k == shown)
				continue;
			shown = k;

			fprintf(stderr, "  %8.1fs", sum.s[k].t);
			for (int t = 0; t < sum.nr_tiers; t++)
				fprintf(stderr, "  %10.1f", mib((double)sum.s[k].tier[t]));
			fputc('\n', stderr);
		}
	}
	if (keep)
		fprintf(stderr, "  statistics in %s\n", stats);
out:
	free(sum.s);
	free(sum.last);
}

/* ---- Running ------------------------------------------------------------- */

static pid_t child_pid;

static void forward(int sig)
{
	if (child_pid > 0)
		kill(child_pid, sig);
}

static int setup_env(const struct run_args *a, const char *preload)
{
	const char *old = getenv("LD_PRELOAD"), *conf = getenv("TIERMM_CONF");
	char *lp, *tc;

	if (asprintf(&lp, "%s%s%s", preload, old && *old ? " " : "", old ? old : "") < 0 ||
	    asprintf(&tc, "%s%s%s", conf && *conf ? conf : "", conf && *conf && a->n ? "," : "",
		     a->conf) < 0)
		return -1;
	if (setenv("LD_PRELOAD", lp, 1) || setenv("TIERMM_CONF", tc, 1))
		return -1;
	if (a->strict && setenv("TIERMM_STRICT", "1", 1))
		return -1;
	free(lp);
	free(tc);
	return 0;
}

int cmd_run(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "interleave", required_argument, NULL, 'i' },
		{ "membind", required_argument, NULL, 'm' },
		{ "preferred", required_argument, NULL, 'p' },
		{ "tier", required_argument, NULL, 't' },
		{ "cpunodebind", required_argument, NULL, 'N' },
		{ "pgtablerepl", required_argument, NULL, 'r' },
		{ "fast-budget", required_argument, NULL, 'b' },
		{ "backend", required_argument, NULL, 'B' },
		{ "interval", required_argument, NULL, 'I' },
		{ "backoff", required_argument, NULL, OPT_BACKOFF },
		{ "pt", required_argument, NULL, OPT_PT },
		{ "follow-fork", no_argument, NULL, OPT_FOLLOW_FORK },
		{ "follow-exec", no_argument, NULL, OPT_FOLLOW_EXEC },
		{ "strict", no_argument, NULL, OPT_STRICT },
		{ "stats", required_argument, NULL, 's' },
		{ "stats-interval", required_argument, NULL, OPT_STATS_INTERVAL },
		{ "topo", required_argument, NULL, OPT_TOPO },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static struct run_args a;
	struct tmm_nodemask allowed;
	char preload[PATH_MAX], stats[PATH_MAX], err[300], tmpl[PATH_MAX];
	const char *pgtablerepl_val = NULL, *pt_policy = NULL;
	unsigned long repl_mask[REPL_LONGS];
	bool tmp_stats = false;
	struct timespec t0, t1;
	struct rusage ru;
	int c, status, pfd[2], exec_err = 0;
	unsigned int ms, n;
	uint64_t bytes;
	double share;

	memset(&a, 0, sizeof(a));
	if (tmm_nodes_allowed(&allowed, err, sizeof(err))) {
		cli_err("run", "%s", err);
		return EXIT_TIERMM;
	}
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+i:m:p:t:N:r:b:B:I:s:qh", opts, NULL)) != -1) {
		switch (c) {
		case 'i':
			if (placement(&a, "interleave", "interleave", optarg, &allowed))
				return CLI_USAGE;
			break;
		case 'm':
			if (placement(&a, "membind", "membind", optarg, &allowed))
				return CLI_USAGE;
			break;
		case 'p':
			if (placement(&a, "preferred", "preferred", optarg, &allowed))
				return CLI_USAGE;
			break;
		case 't':
			if (placement(&a, "tier", "tier", optarg, &allowed))
				return CLI_USAGE;
			break;
		case 'N':
			if (nodes_opt("cpunodebind", optarg, &allowed, &a.cpunodes))
				return CLI_USAGE;
			a.have_cpubind = true;
			break;
		case 'r':
			pgtablerepl_val = optarg;
			break;
		case 'b':
			if (tmm_parse_size(optarg, &bytes, &share)) {
				cli_err("run", "--fast-budget=%s: not a size (e.g. 512M, 2G) or a percentage (e.g. 25%%)",
					optarg);
				return CLI_USAGE;
			}
			add(&a, "fast-budget:%s", optarg);
			break;
		case 'B':
			if (strcmp(optarg, "auto") && strcmp(optarg, "perf") && strcmp(optarg, "scan") &&
			    strcmp(optarg, "damon") && strcmp(optarg, "none")) {
				cli_err("run", "--backend=%s: not auto, perf, scan, damon or none", optarg);
				return CLI_USAGE;
			}
			add(&a, "backend:%s", optarg);
			break;
		case 'I':
			if (tmm_parse_ms(optarg, &ms) || ms < 10 || ms > 60000) {
				cli_err("run", "--interval=%s: not a duration from 10ms to 60s", optarg);
				return CLI_USAGE;
			}
			add(&a, "interval:%ums", ms);
			break;
		case OPT_BACKOFF:
			if (tmm_parse_backoff(optarg, &n)) {
				cli_err("run", "--backoff=%s: not a whole number from 1 to %d", optarg,
					TIERMM_RUNTIME_BACKOFF_MAX);
				return CLI_USAGE;
			}
			add(&a, "backoff:%u", n);
			break;
		case OPT_PT:
			if (strcmp(optarg, "none") && strcmp(optarg, "once") && strcmp(optarg, "follow")) {
				cli_err("run", "--pt=%s: not none, once or follow", optarg);
				return CLI_USAGE;
			}
			add(&a, "pt:%s", optarg);
			pt_policy = strcmp(optarg, "none") ? optarg : NULL;
			break;
		case OPT_FOLLOW_FORK:
			add(&a, "follow-fork:1");
			break;
		case OPT_FOLLOW_EXEC:
			add(&a, "follow-exec:1");
			break;
		case OPT_STRICT:
			a.strict = true;
			break;
		case 's':
			a.stats = optarg;
			break;
		case OPT_STATS_INTERVAL:
			if (tmm_parse_ms(optarg, &ms) || ms < TMM_MIN_STATS_MS || ms > TMM_MAX_STATS_MS) {
				cli_err("run", "--stats-interval=%s: not a duration from 10ms to 1h",
					optarg);
				return CLI_USAGE;
			}
			add(&a, "stats-interval:%ums", ms);
			break;
		case OPT_TOPO:
			a.topo = optarg;
			break;
		case 'q':
			a.quiet = true;
			break;
		case 'h':
			usage_run(stdout);
			return CLI_OK;
		default:
			cli_err("run", "unknown option or missing argument '%s' (see 'tiermm run --help')",
				argv[optind - 1]);
			return CLI_USAGE;
		}
	}
	if (optind >= argc) {
		cli_err("run", "no command to run (tiermm run [OPTIONS] -- CMD [ARGS...])");
		return CLI_USAGE;
	}
	if (pgtablerepl_val && pt_policy) {
		/* tiermm.ko does not move replicated page tables (EBUSY). */
		cli_err("run", "--pt=%s and --pgtablerepl: replicated page tables are placed by the kernel, not moved; choose one",
			pt_policy);
		return CLI_USAGE;
	}
	if (pgtablerepl_val) {
		int ret = pgtablerepl_mask(pgtablerepl_val, &allowed, repl_mask);

		if (ret)
			return ret;
	}
	if (a.stats) {
		struct tmm_conf chk;

		tmm_conf_init(&chk);
		snprintf(tmpl, sizeof(tmpl), "stats:%s", a.stats);
		if (tmm_conf_parse(tmpl, &allowed, &chk, err, sizeof(err))) {
			cli_err("run", "--stats=%s: %s", a.stats, err);
			return CLI_USAGE;
		}
		if (a.stats[0] == '/') {
			snprintf(stats, sizeof(stats), "%s", a.stats);
		} else {
			char cwd[PATH_MAX];

			if (!getcwd(cwd, sizeof(cwd)) ||
			    (size_t)snprintf(stats, sizeof(stats), "%s/%s", cwd, a.stats) >= sizeof(stats)) {
				cli_err("run", "--stats=%s: the path is too long", a.stats);
				return CLI_USAGE;
			}
		}
	} else if (!a.quiet) {
		const char *dir = getenv("TMPDIR");
		int fd;

		snprintf(stats, sizeof(stats), "%s/tiermm-run-XXXXXX.jsonl",
			 dir && *dir ? dir : "/tmp");
		fd = mkstemps(stats, 6);
		if (fd < 0) {
			cli_err("run", "cannot make a temporary statistics file %s: %s", stats,
				strerror(errno));
			return EXIT_TIERMM;
		}
		close(fd);
		tmp_stats = true;
	} else {
		stats[0] = '\0';
	}
	if (stats[0])
		add(&a, "stats:%s", stats);
	if (find_preload(preload, sizeof(preload)) || topo_cache(&a))
		goto fail;
	if (a.n >= sizeof(a.conf)) {
		cli_err("run", "the options make a TIERMM_CONF longer than %zu bytes", sizeof(a.conf));
		goto fail;
	}
	/* The whole string as the shim will see it: an error now beats one in the child. */
	{
		struct tmm_conf chk;

		tmm_conf_init(&chk);
		if (tmm_conf_parse(a.conf, &allowed, &chk, err, sizeof(err))) {
			cli_err("run", "%s", err);
			goto fail;
		}
	}
	if (a.have_cpubind && cpubind(&a.cpunodes))
		goto fail;
	if (setup_env(&a, preload)) {
		cli_err("run", "cannot set the environment: %s", strerror(errno));
		goto fail;
	}
	if (a.quiet) {
		if (pgtablerepl_val && pgtablerepl_apply(pgtablerepl_val, repl_mask))
			goto fail;
		execvp(argv[optind], argv + optind);
		cli_err("run", "%s: %s", argv[optind], strerror(errno));
		return errno == ENOENT ? EXIT_NOT_FOUND : EXIT_CANNOT_EXEC;
	}

	/* A close-on-exec pipe tells a failed exec from a command that ran. */
	if (pipe2(pfd, O_CLOEXEC)) {
		cli_err("run", "pipe: %s", strerror(errno));
		goto fail;
	}
	fflush(NULL);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	child_pid = fork();
	if (child_pid < 0) {
		cli_err("run", "fork: %s", strerror(errno));
		goto fail;
	}
	if (!child_pid) {
		int e;

		close(pfd[0]);
		/* A refusal is reported here; -1 tells the parent it was tiermm's. */
		if (pgtablerepl_val && pgtablerepl_apply(pgtablerepl_val, repl_mask)) {
			e = -1;
			if (write(pfd[1], &e, sizeof(e)) != sizeof(e)) {
				/* The parent sees status 125 alone. */
			}
			_exit(EXIT_TIERMM);
		}
		execvp(argv[optind], argv + optind);
		e = errno;
		if (write(pfd[1], &e, sizeof(e)) != sizeof(e)) {
			/* The parent sees status 127 alone. */
		}
		_exit(EXIT_NOT_FOUND);
	}
	close(pfd[1]);
	/* The terminal signals the whole process group; other signals go on to CMD. */
	signal(SIGINT, SIG_IGN);
	signal(SIGQUIT, SIG_IGN);
	signal(SIGTERM, forward);
	signal(SIGHUP, forward);
	signal(SIGUSR1, forward);
	signal(SIGUSR2, forward);
	if (read(pfd[0], &exec_err, sizeof(exec_err)) != sizeof(exec_err))
		exec_err = 0;
	close(pfd[0]);
	while (wait4(child_pid, &status, 0, &ru) < 0) {
		if (errno != EINTR) {
			cli_err("run", "wait: %s", strerror(errno));
			goto fail;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (exec_err < 0) {
		/* --pgtablerepl refused in the child, which said why. */
		if (tmp_stats)
			unlink(stats);
		return EXIT_TIERMM;
	}
	if (exec_err) {
		cli_err("run", "%s: %s", argv[optind], strerror(exec_err));
		if (tmp_stats)
			unlink(stats);
		return exec_err == ENOENT ? EXIT_NOT_FOUND : EXIT_CANNOT_EXEC;
	}
	print_summary(argv[optind], child_pid, status,
		      (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9,
		      &ru, stats, !tmp_stats);
	if (tmp_stats)
		unlink(stats);
	if (WIFSIGNALED(status)) {
		struct rlimit none = { 0, 0 };
		int sig = WTERMSIG(status);

		/* The same end as the command, without a core dump of our own. */
		setrlimit(RLIMIT_CORE, &none);
		fflush(NULL);
		signal(sig, SIG_DFL);
		{
			sigset_t set;

			sigemptyset(&set);
			sigaddset(&set, sig);
			sigprocmask(SIG_UNBLOCK, &set, NULL);
		}
		raise(sig);
		return 128 + sig;
	}
	return WEXITSTATUS(status);
fail:
	if (tmp_stats)
		unlink(stats);
	return EXIT_TIERMM;
}
