// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * tiermm pt: a process's page tables through tiermm.ko: where they are
 * (stat), what they hold (dump), moving them (migrate), and keeping them
 * next to the process's threads as those move between nodes (follow, the
 * vMitosis treatment of "thin" workloads); and replicating them on several
 * nodes (replicate, replication: the Mitosis treatment of "wide" ones),
 * which needs a kernel with tiermm's replication patches, not the module.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <tiermm.h>

#include "cli.h"

#define NR_LEVELS TIERMM_PT_LEVEL__COUNT

static const char usage_stat_text[] =
	"Usage: tiermm pt stat PID [--range START-END | --all] [--json]\n"
	"Count the page-table pages that map the process's memory, per node and level,\n"
	"the leaf entries they hold and the data pages they map; show, for each node,\n"
	"the share of leaf entries a thread running there finds local, and per level\n"
	"how many tables are local to their data, remote, or empty. When the page\n"
	"tables are replicated, also each replica: per replica node, its tables per\n"
	"level and how many of them are on that node.\n";
static const char usage_replicate_text[] =
	"Usage: tiermm pt replicate PID NODES\n"
	"Replicate the process's page tables on NODES (a node list such as 0-1 or 0,2;\n"
	"all: every node with memory; none: end replication), then read back where the\n"
	"replicas are. Its children and the programs it executes inherit the setting.\n"
	"Needs a kernel with tiermm's page-table replication patches (tiermm caps:\n"
	"pt_replication), not tiermm.ko.\n";
static const char usage_replication_text[] =
	"Usage: tiermm pt replication PID [--json]\n"
	"Print the nodes holding a replica of the process's page tables (none when they\n"
	"are not replicated). Needs a kernel with tiermm's replication patches.\n";
static const char usage_dump_text[] =
	"Usage: tiermm pt dump PID [--range START-END | --all] [--json] [--entries]\n"
	"Print every page-table page that maps the process's memory, top-down: level,\n"
	"the addresses it maps, frame number, node and present entries.\n";
static const char usage_migrate_text[] =
	"Usage: tiermm pt migrate PID --node N|auto [--levels LIST] [--range START-END | --all]\n"
	"Move the process's page-table pages to node N, or with auto each to the node\n"
	"holding most of the data it maps; print how many moved and why others did not,\n"
	"then check with a fresh count that they are where asked.\n";
static const char usage_follow_text[] =
	"Usage: tiermm pt follow PID [--interval SEC] [--count N] [--threshold PCT]\n"
	"Keep the process's page tables next to its threads: every interval, find the\n"
	"node most of its threads run on and the node holding most of its data; when\n"
	"fewer than PCT percent of its leaf entries are local to the threads' node,\n"
	"move the page tables there (to the data's node when both agree). One line per\n"
	"move. Stops after N rounds, when the process exits, or on SIGINT.\n";

#define OPT_RANGE \
	"  -r, --range START-END  only [START, END): addresses in hex (0x...) or decimal,\n" \
	"                         multiples of 4096\n" \
	"  -a, --all              the whole address space of the process (the default)\n"
#define OPT_JSON \
	"  -j, --json             print one JSON object instead of text\n"
#define OPT_ENTRIES \
	"  -e, --entries          also print each table's non-zero entries\n"
#define OPT_NODE \
	"  -n, --node N|auto      the target node, or auto: each table to its data's node\n"
#define OPT_LEVELS \
	"  -l, --levels LIST      levels to move: pte, pmd, pud, comma-separated, or all\n" \
	"                         (default all; the PGD is never moved)\n"
#define OPT_FOLLOW \
	"  -i, --interval SEC     seconds between rounds (default 2)\n" \
	"  -c, --count N          stop after N rounds (default 0: until the process exits)\n" \
	"  -t, --threshold PCT    move when the local share is below PCT percent (default 90)\n"
#define OPT_HELP \
	"  -h, --help             show this help\n"
#define EXIT_TEXT \
	"\nExit status: 0 on success, 1 when tiermm.ko, the kernel or the process refused\n" \
	"or the check failed, 2 on a bad command line.\n"

void usage_pt(FILE *f)
{
	fputs("Usage: tiermm pt stat PID [--range START-END | --all] [--json]\n"
	      "       tiermm pt dump PID [--range START-END | --all] [--json] [--entries]\n"
	      "       tiermm pt migrate PID --node N|auto [--levels LIST] [--range START-END | --all]\n"
	      "       tiermm pt follow PID [--interval SEC] [--count N] [--threshold PCT]\n"
	      "       tiermm pt replicate PID NODES\n"
	      "       tiermm pt replication PID [--json]\n"
	      "       tiermm pt SUBCOMMAND --help\n"
	      "Inspect, move and replicate the page tables of process PID.\n"
	      "\n"
	      "Subcommands:\n"
	      "  stat         page-table pages per node and level, how local they are, replicas\n"
	      "  dump         every page-table page, as text or JSON\n"
	      "  migrate      move page-table pages to a node, or next to their data\n"
	      "  follow       keep page tables local while the process's threads move\n"
	      "  replicate    replicate the page tables on nodes (none: stop)\n"
	      "  replication  the nodes holding replicas now\n"
	      "\n"
	      "Options (each subcommand takes the ones its usage shows):\n"
	      OPT_RANGE OPT_JSON OPT_ENTRIES OPT_NODE OPT_LEVELS OPT_FOLLOW OPT_HELP
	      "\nstat, dump, migrate and follow go through tiermm.ko; replicate and replication\n"
	      "need a kernel with tiermm's page-table replication patches instead.\n"
	      "Reading page tables needs ptrace read access to the process; moving them also\n"
	      "the same user or CAP_SYS_NICE; replicating them the right to ptrace-attach.\n"
	      EXIT_TEXT, f);
}

static void usage_sub(FILE *f, const char *sub)
{
	if (!strcmp(sub, "stat"))
		fputs(usage_stat_text, f);
	else if (!strcmp(sub, "dump"))
		fputs(usage_dump_text, f);
	else if (!strcmp(sub, "migrate"))
		fputs(usage_migrate_text, f);
	else if (!strcmp(sub, "replicate"))
		fputs(usage_replicate_text, f);
	else if (!strcmp(sub, "replication"))
		fputs(usage_replication_text, f);
	else
		fputs(usage_follow_text, f);
	fputs("\nOptions:\n", f);
	if (!strcmp(sub, "stat"))
		fputs(OPT_RANGE OPT_JSON, f);
	else if (!strcmp(sub, "dump"))
		fputs(OPT_RANGE OPT_JSON OPT_ENTRIES, f);
	else if (!strcmp(sub, "migrate"))
		fputs(OPT_NODE OPT_LEVELS OPT_RANGE, f);
	else if (!strcmp(sub, "replication"))
		fputs(OPT_JSON, f);
	else if (strcmp(sub, "replicate"))
		fputs(OPT_FOLLOW, f);
	fputs(OPT_HELP EXIT_TEXT, f);
}

/* ---- Arguments ---------------------------------------------------------- */

struct pt_args {
	const char *sub;
	pid_t pid;
	const char *nodes;	/* replicate: NODES */
	uint64_t start, len;	/* len 0: whole process */
	bool json, entries;
	bool have_node;
	int node;
	unsigned int levels;
	double interval, threshold;
	long count;
};

static void err(const struct pt_args *a, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void err(const struct pt_args *a, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "tiermm pt%s%s: ", a->sub ? " " : "", a->sub ? a->sub : "");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static int parse_u64(const char *s, uint64_t *v)
{
	char *end;
	unsigned long long x;

	if (!*s || *s == '-' || *s == '+')
		return -1;
	errno = 0;
	x = strtoull(s, &end, 0);
	if (errno || *end)
		return -1;
	*v = x;
	return 0;
}

static int parse_range(struct pt_args *a, const char *s)
{
	char buf[128], *dash;
	uint64_t lo, hi;

	if (strlen(s) >= sizeof(buf))
		goto bad;
	strcpy(buf, s);
	dash = strchr(buf, '-');
	if (!dash)
		goto bad;
	*dash = '\0';
	if (parse_u64(buf, &lo) || parse_u64(dash + 1, &hi) || hi <= lo)
		goto bad;
	if ((lo | hi) % 4096) {
		err(a, "--range %s: START and END must be multiples of 4096", s);
		return -1;
	}
	a->start = lo;
	a->len = hi - lo;
	return 0;
bad:
	err(a, "--range: '%s' is not START-END with START < END (e.g. 0x400000-0x800000)", s);
	return -1;
}

static int parse_levels(struct pt_args *a, const char *s)
{
	char buf[64], *tok, *save = NULL;
	unsigned int levels = 0;

	if (strlen(s) >= sizeof(buf))
		goto bad;
	strcpy(buf, s);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (!strcmp(tok, "pte"))
			levels |= TIERMM_PT_LEVELS_PTE;
		else if (!strcmp(tok, "pmd"))
			levels |= TIERMM_PT_LEVELS_PMD;
		else if (!strcmp(tok, "pud"))
			levels |= TIERMM_PT_LEVELS_PUD;
		else if (!strcmp(tok, "all"))
			levels |= TIERMM_PT_LEVELS_ALL;
		else
			goto bad;
	}
	if (!levels)
		goto bad;
	a->levels = levels;
	return 0;
bad:
	err(a, "--levels: '%s' is not a list of pte, pmd, pud (or all)", s);
	return -1;
}

static int parse_double(struct pt_args *a, const char *opt, const char *s,
			double lo, double hi, double *v)
{
	char *end;
	double x;

	errno = 0;
	x = strtod(s, &end);
	if (errno || end == s || *end || !(x >= lo) || !(x <= hi)) {
		err(a, "%s: '%s' is not a number in %g-%g", opt, s, lo, hi);
		return -1;
	}
	*v = x;
	return 0;
}

/*
 * Parse the subcommand's options and PID. optstring and opts list what it
 * accepts. Returns -1 for --help (printed), CLI_USAGE or 0.
 */
static int parse_args(struct pt_args *a, int argc, char **argv,
		      const char *optstring, const struct option *opts)
{
	uint64_t v;
	int c;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, optstring, opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			if (parse_range(a, optarg))
				return CLI_USAGE;
			break;
		case 'a':
			a->start = a->len = 0;
			break;
		case 'j':
			a->json = true;
			break;
		case 'e':
			a->entries = true;
			break;
		case 'n':
			a->have_node = true;
			if (!strcmp(optarg, "auto")) {
				a->node = TIERMM_NODE_AUTO;
			} else if (parse_u64(optarg, &v) || v > 1023) {
				err(a, "--node: '%s' is not a node number or auto", optarg);
				return CLI_USAGE;
			} else {
				a->node = (int)v;
			}
			break;
		case 'l':
			if (parse_levels(a, optarg))
				return CLI_USAGE;
			break;
		case 'i':
			if (parse_double(a, "--interval", optarg, 0.01, 86400, &a->interval))
				return CLI_USAGE;
			break;
		case 'c':
			if (parse_u64(optarg, &v) || v > LONG_MAX) {
				err(a, "--count: '%s' is not a number of rounds", optarg);
				return CLI_USAGE;
			}
			a->count = (long)v;
			break;
		case 't':
			if (parse_double(a, "--threshold", optarg, 0, 100, &a->threshold))
				return CLI_USAGE;
			break;
		case 'h':
			usage_sub(stdout, a->sub);
			return -1;
		default:
			err(a, "unknown option or missing argument '%s' (see 'tiermm pt %s --help')",
			    argv[optind - 1], a->sub);
			return CLI_USAGE;
		}
	}
	if (optind >= argc) {
		err(a, "missing PID (see 'tiermm pt %s --help')", a->sub);
		return CLI_USAGE;
	}
	if (parse_u64(argv[optind], &v) || v == 0 || v > INT_MAX) {
		err(a, "'%s' is not a process id", argv[optind]);
		return CLI_USAGE;
	}
	a->pid = (pid_t)v;
	if (!strcmp(a->sub, "replicate")) {
		if (optind + 1 >= argc) {
			err(a, "missing NODES (a node list, all or none; see 'tiermm pt replicate --help')");
			return CLI_USAGE;
		}
		a->nodes = argv[++optind];
	}
	if (optind + 1 < argc) {
		err(a, "unexpected argument '%s'", argv[optind + 1]);
		return CLI_USAGE;
	}
	return 0;
}

/* ---- stat ------------------------------------------------------------------- */

static void fmt_pages(uint64_t pages, char *buf, size_t len)
{
	uint64_t b = pages * 4096;

	if (b >= (1ULL << 30))
		snprintf(buf, len, "%.1f GiB", (double)b / (1ULL << 30));
	else
		snprintf(buf, len, "%.1f MiB", (double)b / (1ULL << 20));
}

static bool node_shown(const struct tiermm_pt_node *n)
{
	uint64_t any = n->leaf_entries | n->data_pages;

	for (int l = 0; l < NR_LEVELS; l++)
		any |= n->tables[l];
	return n->online || any;
}

/* A small file into buf (NUL-terminated, newline cut); 0 or -1. */
static int read_small(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	return 0;
}

/* The kernel has tiermm's page-table replication (the caps probe's file). */
static bool kernel_replicates(void)
{
	char buf[32];

	return !read_small("/proc/sys/kernel/pgtable_replication", buf, sizeof(buf));
}

static uint64_t sum_levels(const uint64_t *v)
{
	uint64_t n = 0;

	for (int l = 0; l < NR_LEVELS; l++)
		n += v[l];
	return n;
}

static void print_stat_json(const struct tiermm_pt_stats *st)
{
	struct tiermm_pt_summary s = { .sz = sizeof(s) };
	int nr = tiermm_pt_stat_nr_nodes(st);
	bool first = true;

	tiermm_pt_stat_summary(st, &s);
	printf("{\"pid\":%d,\"start\":\"0x%" PRIx64 "\",\"end\":\"0x%" PRIx64 "\",\"whole\":%s,\"nodes\":[",
	       s.pid, s.start, s.start + s.len, s.whole ? "true" : "false");
	for (int i = 0; i < nr; i++) {
		struct tiermm_pt_node n = { .sz = sizeof(n) };

		if (tiermm_pt_stat_node(st, i, &n) || !node_shown(&n))
			continue;
		printf("%s{\"node\":%d,\"online\":%s,\"leaf_entries\":%" PRIu64 ",\"data_pages\":%" PRIu64 ",\"leaf_local\":%.4f,\"data_share\":%.4f,\"tables\":{",
		       first ? "" : ",", n.node, n.online ? "true" : "false",
		       n.leaf_entries, n.data_pages, n.leaf_local, n.data_share);
		for (int l = 0; l < NR_LEVELS; l++)
			printf("%s\"%s\":%" PRIu64, l ? "," : "",
			       tiermm_pt_level_name(l), n.tables[l]);
		printf("}}");
		first = false;
	}
	printf("],\"levels\":{");
	for (int l = 0; l < NR_LEVELS; l++)
		printf("%s\"%s\":{\"tables\":%" PRIu64 ",\"local\":%" PRIu64 ",\"remote\":%" PRIu64 ",\"empty\":%" PRIu64 ",\"huge_leaves\":%" PRIu64 "}",
		       l ? "," : "", tiermm_pt_level_name(l), s.tables[l],
		       s.tables_local[l], s.tables_remote[l], s.tables_empty[l],
		       s.leaf_huge[l]);
	printf("},\"leaf_entries\":%" PRIu64 ",\"data_pages\":%" PRIu64 ",\"data_node\":%d,\"leaf_node\":%d,\"replica_count\":%d,\"replica_groups\":%s,\"replica_remote\":%" PRIu64 ",\"replicas\":[",
	       s.leaf_entries, s.data_pages, s.data_node, s.leaf_node,
	       s.replicas, s.replica_groups ? "true" : "false", s.replica_remote);
	for (int i = 0; i < s.replicas; i++) {
		struct tiermm_pt_replica r = { .sz = sizeof(r) };

		if (tiermm_pt_stat_replica(st, i, &r))
			break;
		printf("%s{\"slot\":%d,\"group\":%s,\"tables\":{", i ? "," : "",
		       r.slot, r.group ? "true" : "false");
		for (int l = 0; l < NR_LEVELS; l++)
			printf("%s\"%s\":%" PRIu64, l ? "," : "",
			       tiermm_pt_level_name(l), r.tables[l]);
		printf("},\"local\":{");
		for (int l = 0; l < NR_LEVELS; l++)
			printf("%s\"%s\":%" PRIu64, l ? "," : "",
			       tiermm_pt_level_name(l), r.local[l]);
		printf("}}");
	}
	printf("]}\n");
}

/* The replicas of stat: per replica, "local/all" tables per level. */
static void print_replicas_text(const struct tiermm_pt_stats *st,
				const struct tiermm_pt_summary *s)
{
	const char *slot = s->replica_groups ? "group" : "node";

	if (s->replicas < 0) {
		printf("\nreplicas: not counted: the loaded tiermm.ko cannot see page-table replicas\n"
		       "(load the tiermm.ko built for this kernel, API version 3)\n");
		return;
	}
	if (!s->replicas) {
		if (kernel_replicates())
			printf("\nreplicas: none (the page tables are not replicated)\n");
		return;
	}
	printf("\nreplicas on %d %s%s (each copy: tables local to its %s/all, per level):\n",
	       s->replicas, slot, s->replicas == 1 ? "" : "s",
	       s->replica_groups ? "group's nodes" : "node");
	printf("%-5s %9s %9s %9s %9s %7s\n", slot, "pte", "pmd", "pud", "pgd", "local");
	for (int i = 0; i < s->replicas; i++) {
		struct tiermm_pt_replica r = { .sz = sizeof(r) };
		uint64_t all, here;
		char cell[NR_LEVELS][24];

		if (tiermm_pt_stat_replica(st, i, &r))
			break;
		for (int l = 0; l < NR_LEVELS; l++)
			snprintf(cell[l], sizeof(cell[l]), "%" PRIu64 "/%" PRIu64,
				 r.local[l], r.tables[l]);
		all = sum_levels(r.tables);
		here = sum_levels(r.local);
		printf("%-5d %9s %9s %9s %9s %6.1f%%\n", r.slot, cell[0], cell[1],
		       cell[2], cell[3], all ? 100.0 * (double)here / (double)all : 100.0);
	}
	if (s->replica_remote)
		printf("%" PRIu64 " replica table%s not local (the kernel could not allocate %s\n"
		       "there: that copy uses the master's table)\n",
		       s->replica_remote, s->replica_remote == 1 ? " is" : "s are",
		       s->replica_remote == 1 ? "it" : "them");
	else
		printf("every replica table is local\n");
}

static void print_stat_text(const struct tiermm_pt_stats *st)
{
	struct tiermm_pt_summary s = { .sz = sizeof(s) };
	int nr = tiermm_pt_stat_nr_nodes(st);
	char size[32];

	tiermm_pt_stat_summary(st, &s);
	printf("pid %d: page tables mapping 0x%016" PRIx64 "-0x%016" PRIx64 "%s\n\n",
	       s.pid, s.start, s.start + s.len, s.whole ? " (whole process)" : "");
	printf("%-5s %7s %7s %7s %7s %13s %12s %11s\n", "node", "pte", "pmd",
	       "pud", "pgd", "leaf-entries", "data-pages", "leaf-local");
	for (int i = 0; i < nr; i++) {
		struct tiermm_pt_node n = { .sz = sizeof(n) };

		if (tiermm_pt_stat_node(st, i, &n) || !node_shown(&n))
			continue;
		printf("%-5d %7" PRIu64 " %7" PRIu64 " %7" PRIu64 " %7" PRIu64 " %13" PRIu64 " %12" PRIu64 " %10.1f%%\n",
		       n.node, n.tables[0], n.tables[1], n.tables[2], n.tables[3],
		       n.leaf_entries, n.data_pages, 100.0 * n.leaf_local);
	}
	printf("(leaf-local: the share of all leaf entries held on the node, i.e. local to\n"
	       "a thread running there)\n\n");
	printf("%-5s %7s %7s %7s %7s %12s\n", "level", "tables", "local",
	       "remote", "empty", "huge-leaves");
	for (int l = 0; l < NR_LEVELS; l++) {
		printf("%-5s %7" PRIu64 " %7" PRIu64 " %7" PRIu64 " %7" PRIu64,
		       tiermm_pt_level_name(l), s.tables[l], s.tables_local[l],
		       s.tables_remote[l], s.tables_empty[l]);
		if (l == TIERMM_PT_LEVEL_PMD || l == TIERMM_PT_LEVEL_PUD)
			printf(" %12" PRIu64 "\n", s.leaf_huge[l]);
		else
			printf(" %12s\n", "-");
	}
	fmt_pages(s.data_pages, size, sizeof(size));
	printf("\ndata: %s", size);
	if (s.data_node >= 0)
		printf(", most on node %d", s.data_node);
	printf("; leaf entries: %" PRIu64, s.leaf_entries);
	if (s.leaf_node >= 0)
		printf(", most on node %d", s.leaf_node);
	putchar('\n');
	print_replicas_text(st, &s);
}

static int run_stat(struct pt_args *a)
{
	struct tiermm_pt_stats *st;

	if (tiermm_pt_stat(a->pid, a->start, a->len, 0, &st)) {
		err(a, "%s", tiermm_errmsg());
		return CLI_FAIL;
	}
	if (a->json)
		print_stat_json(st);
	else
		print_stat_text(st);
	tiermm_pt_stat_free(st);
	return fflush(stdout) ? CLI_FAIL : CLI_OK;
}

/* ---- dump ------------------------------------------------------------------- */

static int run_dump(struct pt_args *a)
{
	unsigned int format = (a->json ? TIERMM_PT_DUMP_JSON : TIERMM_PT_DUMP_TEXT) |
			      (a->entries ? TIERMM_PT_DUMP_ENTRIES : 0);

	if (tiermm_pt_dump(a->pid, a->start, a->len, stdout, format) < 0) {
		fflush(stdout);
		err(a, "%s", tiermm_errmsg());
		return CLI_FAIL;
	}
	return CLI_OK;
}

/* ---- migrate ------------------------------------------------------------ */

static void levels_text(unsigned int levels, char *buf, size_t len)
{
	buf[0] = '\0';
	for (int l = 0; l < NR_LEVELS; l++)
		if (levels & (1u << l))
			snprintf(buf + strlen(buf), len - strlen(buf), "%s%s",
				 buf[0] ? "," : "", tiermm_pt_level_name(l));
}

static void target_text(int node, char *buf, size_t len)
{
	if (node == TIERMM_NODE_AUTO)
		snprintf(buf, len, "the node of their data (auto)");
	else
		snprintf(buf, len, "node %d", node);
}

static uint64_t moved_total(const struct tiermm_pt_migrate_result *r)
{
	uint64_t n = 0;

	for (int l = 0; l < NR_LEVELS; l++)
		n += r->moved[l];
	return n;
}

static void print_counts(const char *title, const uint64_t *v, int nr,
			 const char *(*name)(int))
{
	printf("%s", title);
	for (int i = 0; i < nr; i++)
		if (name(i))
			printf("%s %s %" PRIu64, i ? "," : "", name(i), v[i]);
	putchar('\n');
}

static const char *level_name_int(int l)
{
	return l == TIERMM_PT_LEVEL_PGD ? NULL : tiermm_pt_level_name(l);
}

static const char *skip_name_int(int i)
{
	return tiermm_pt_skip_name(i);
}

/*
 * After a migration: count again and report the tables of the moved levels
 * that are not where asked. Returns that number, or -1 if counting failed.
 */
static long verify(const struct pt_args *a, const struct tiermm_pt_migrate_result *r,
		   char *detail, size_t len)
{
	struct tiermm_pt_summary s = { .sz = sizeof(s) };
	struct tiermm_pt_stats *st;
	uint64_t bad[NR_LEVELS] = { 0 };
	long total = 0;

	if (tiermm_pt_stat(a->pid, r->start, r->len, 0, &st)) {
		err(a, "checking: %s", tiermm_errmsg());
		return -1;
	}
	tiermm_pt_stat_summary(st, &s);
	for (int l = 0; l < NR_LEVELS; l++) {
		if (!(a->levels & (1u << l)))
			continue;
		if (a->node == TIERMM_NODE_AUTO) {
			bad[l] = s.tables_remote[l];
		} else {
			for (int i = 0; i < tiermm_pt_stat_nr_nodes(st); i++) {
				struct tiermm_pt_node n = { .sz = sizeof(n) };

				if (i != a->node && !tiermm_pt_stat_node(st, i, &n))
					bad[l] += n.tables[l];
			}
		}
	}
	tiermm_pt_stat_free(st);
	detail[0] = '\0';
	for (int l = 0; l < NR_LEVELS; l++) {
		if (!bad[l])
			continue;
		snprintf(detail + strlen(detail), len - strlen(detail), "%s%" PRIu64 " %s",
			 detail[0] ? ", " : "", bad[l], tiermm_pt_level_name(l));
		total += (long)bad[l];
	}
	return total;
}

static int run_migrate(struct pt_args *a)
{
	struct tiermm_pt_migrate_result r = { .sz = sizeof(r) };
	char lv[32], tgt[64], detail[128];
	long bad;

	if (!a->have_node) {
		err(a, "--node N|auto is required");
		return CLI_USAGE;
	}
	if (tiermm_pt_migrate(a->pid, a->start, a->len, a->node, a->levels, &r) < 0) {
		err(a, "%s", tiermm_errmsg());
		return CLI_FAIL;
	}
	levels_text(a->levels, lv, sizeof(lv));
	target_text(a->node, tgt, sizeof(tgt));
	printf("pid %d: page tables (%s) mapping 0x%016" PRIx64 "-0x%016" PRIx64 "%s to %s\n",
	       (int)a->pid, lv, r.start, r.start + r.len, a->len ? "" : " (whole process)",
	       tgt);
	print_counts("moved:  ", r.moved, NR_LEVELS, level_name_int);
	printf("        %" PRIu64 " tables\n", moved_total(&r));
	print_counts("skipped:", r.skipped, TIERMM_PT_SKIP__COUNT, skip_name_int);
	bad = verify(a, &r, detail, sizeof(detail));
	if (bad < 0)
		return CLI_FAIL;
	if (bad) {
		printf("check: FAILED\n");
		err(a, "after the move, %s table(s) are still %s", detail,
		    a->node == TIERMM_NODE_AUTO ? "remote from their data" : "on other nodes");
		return CLI_FAIL;
	}
	if (a->node == TIERMM_NODE_AUTO)
		printf("check: ok, no %s table is remote from its data\n", lv);
	else
		printf("check: ok, every %s table is on node %d\n", lv, a->node);
	return fflush(stdout) ? CLI_FAIL : CLI_OK;
}

/* ---- replicate, replication ---------------------------------------------- */

#define MASK_LONGS (1024 / (8 * sizeof(unsigned long)))

static void mask_set(unsigned long *m, unsigned int n)
{
	m[n / (8 * sizeof(long))] |= 1UL << (n % (8 * sizeof(long)));
}

static bool mask_test(const unsigned long *m, unsigned int n)
{
	return (m[n / (8 * sizeof(long))] >> (n % (8 * sizeof(long)))) & 1;
}

/* "0-1,3" of m (1024 bits); "none" when empty. */
static void mask_format(const unsigned long *m, char *out, size_t len)
{
	size_t pos = 0;

	out[0] = '\0';
	for (unsigned int i = 0; i < 1024; i++) {
		unsigned int j = i;

		if (!mask_test(m, i))
			continue;
		while (j + 1 < 1024 && mask_test(m, j + 1))
			j++;
		pos += (size_t)snprintf(out + pos, pos < len ? len - pos : 0,
					j > i ? "%s%u-%u" : "%s%u", pos ? "," : "", i, j);
		i = j;
	}
	if (!out[0])
		snprintf(out, len, "none");
}

/*
 * NODES of replicate: none, all (the nodes with memory), or a list of node
 * numbers and ranges. Whether the nodes exist and have memory is the
 * library's to say. Returns the number of nodes, or -1 (message printed).
 */
static int parse_nodes(const struct pt_args *a, const char *s, unsigned long *m)
{
	const char *p = s;
	int count = 0;

	memset(m, 0, MASK_LONGS * sizeof(*m));
	if (!strcmp(s, "none"))
		return 0;
	if (!strcmp(s, "all")) {
		char buf[4096];
		int groups = 0;

		/* In the kernel's CPU-group mode, masks name groups. */
		if (!read_small("/proc/sys/kernel/pgtable_replication_groups", buf,
				sizeof(buf)) && buf[0]) {
			groups = 1;
			for (const char *q = buf; *q; q++)
				groups += *q == ';';
			snprintf(buf, sizeof(buf), "0-%d", groups - 1);
			return parse_nodes(a, buf, m);
		}
		if (read_small("/sys/devices/system/node/has_memory", buf, sizeof(buf))) {
			err(a, "all: cannot read /sys/devices/system/node/has_memory");
			return -1;
		}
		return parse_nodes(a, buf, m);
	}
	while (*p) {
		char *end;
		unsigned long lo, hi;

		if (*p < '0' || *p > '9')
			goto bad;
		lo = strtoul(p, &end, 10);
		hi = lo;
		p = end;
		if (*p == '-') {
			if (p[1] < '0' || p[1] > '9')
				goto bad;
			hi = strtoul(p + 1, &end, 10);
			p = end;
		}
		if (hi < lo || hi >= 1024)
			goto bad;
		for (unsigned long n = lo; n <= hi; n++) {
			if (!mask_test(m, (unsigned int)n))
				count++;
			mask_set(m, (unsigned int)n);
		}
		if (*p == ',' && p[1])
			p++;
		else if (*p)
			goto bad;
	}
	if (count)
		return count;
bad:
	err(a, "'%s' is not a node list (such as 0-1 or 0,2, nodes below 1024), all or none", s);
	return -1;
}

/* "groups" when the kernel replicates per CPU group (masks name groups), else "nodes". */
static const char *slot_word(void)
{
	char buf[1024];

	if (!read_small("/proc/sys/kernel/pgtable_replication_groups", buf, sizeof(buf)) &&
	    buf[0])
		return "groups";
	return "nodes";
}

static int run_replicate(struct pt_args *a)
{
	unsigned long want[MASK_LONGS], got[MASK_LONGS];
	char wlist[4096], glist[4096];
	int n;

	n = parse_nodes(a, a->nodes, want);
	if (n < 0)
		return CLI_USAGE;
	mask_format(want, wlist, sizeof(wlist));
	if (tiermm_pt_replicate(a->pid, n ? want : NULL, n ? 1024 : 0, 0)) {
		err(a, "%s", tiermm_errmsg());
		return CLI_FAIL;
	}
	if (n)
		printf("pid %d: page tables replicated on %s %s\n", (int)a->pid, slot_word(),
		       wlist);
	else
		printf("pid %d: page-table replication ended\n", (int)a->pid);
	/* What the kernel says now. */
	if (tiermm_pt_replication(a->pid, got, 1024) < 0) {
		err(a, "checking: %s", tiermm_errmsg());
		return CLI_FAIL;
	}
	mask_format(got, glist, sizeof(glist));
	if (strcmp(wlist, glist)) {
		printf("check: FAILED\n");
		err(a, "asked for %s, the kernel reports replicas on %s", wlist, glist);
		return CLI_FAIL;
	}
	if (n)
		printf("check: ok, the kernel reports replicas on exactly these %s\n",
		       slot_word());
	else
		printf("check: ok, the kernel reports no replica\n");
	return fflush(stdout) ? CLI_FAIL : CLI_OK;
}

static int run_replication(struct pt_args *a)
{
	unsigned long m[MASK_LONGS];
	char list[4096];
	int n = tiermm_pt_replication(a->pid, m, 1024);

	if (n < 0) {
		err(a, "%s", tiermm_errmsg());
		return CLI_FAIL;
	}
	mask_format(m, list, sizeof(list));
	if (a->json)
		printf("{\"pid\":%d,\"replicated\":%s,\"nodes\":\"%s\",\"replicas\":%d}\n",
		       (int)a->pid, n ? "true" : "false", n ? list : "", n);
	else if (n)
		printf("pid %d: page tables replicated on %s %s (%d replica%s)\n",
		       (int)a->pid, slot_word(), list, n, n == 1 ? "" : "s");
	else
		printf("pid %d: page tables not replicated\n", (int)a->pid);
	return fflush(stdout) ? CLI_FAIL : CLI_OK;
}

/* ---- follow --------------------------------------------------------------- */

static volatile sig_atomic_t stop_requested;

static void on_stop(int sig)
{
	(void)sig;
	stop_requested = 1;
}

struct cpumap {
	int *node;	/* CPU -> node, -1 unknown */
	int nr_cpus;
	int nr_nodes;	/* highest node id + 1 */
};

/* Add the CPUs of list ("0-3,8") to node. */
static int cpumap_add(struct cpumap *m, const char *list, int node)
{
	const char *s = list;

	while (*s) {
		char *end;
		long lo = strtol(s, &end, 10), hi;

		if (end == s || lo < 0)
			return -1;
		hi = lo;
		s = end;
		if (*s == '-') {
			hi = strtol(s + 1, &end, 10);
			if (end == s + 1 || hi < lo)
				return -1;
			s = end;
		}
		if (hi >= m->nr_cpus) {
			int *n = realloc(m->node, (size_t)(hi + 1) * sizeof(int));

			if (!n)
				return -1;
			for (long i = m->nr_cpus; i <= hi; i++)
				n[i] = -1;
			m->node = n;
			m->nr_cpus = (int)hi + 1;
		}
		for (long i = lo; i <= hi; i++)
			m->node[i] = node;
		if (*s == ',')
			s++;
		else if (*s)
			return -1;
	}
	return 0;
}

static int cpumap_load(const struct pt_args *a, struct cpumap *m)
{
	struct tiermm_topo *t;
	int nr, ret = 0;

	memset(m, 0, sizeof(*m));
	if (tiermm_topo_load(NULL, &t)) {
		err(a, "topology: %s", tiermm_errmsg());
		return -1;
	}
	nr = tiermm_topo_nr_nodes(t);
	for (int i = 0; i < nr && !ret; i++) {
		struct tiermm_node_info ni = { .sz = sizeof(ni) };
		char cpus[4096];

		if (tiermm_topo_node(t, i, &ni) ||
		    tiermm_topo_node_cpus(t, i, cpus, sizeof(cpus)) < 0 ||
		    cpumap_add(m, cpus, ni.os_index)) {
			err(a, "topology: cannot read the CPUs of node index %d", i);
			ret = -1;
		}
		if (ni.os_index + 1 > m->nr_nodes)
			m->nr_nodes = ni.os_index + 1;
	}
	tiermm_topo_free(t);
	return ret;
}

/*
 * The node most threads of pid last ran on (lowest on ties): >= 0, -1 when
 * no thread could be placed, -ESRCH when the process is gone.
 */
static int thread_node(pid_t pid, const struct cpumap *m, int *on_node, int *total)
{
	char path[64];
	int *count, best = -1;
	struct dirent *de;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	d = opendir(path);
	if (!d)
		return -ESRCH;
	count = calloc((size_t)m->nr_nodes + 1, sizeof(int));
	if (!count) {
		closedir(d);
		return -1;
	}
	*total = 0;
	while ((de = readdir(d))) {
		char sp[300], buf[1024], *p, *save = NULL, *tok;
		FILE *f;
		int field = 2, cpu = -1;

		if (de->d_name[0] == '.')
			continue;
		snprintf(sp, sizeof(sp), "/proc/%d/task/%s/stat", (int)pid, de->d_name);
		f = fopen(sp, "re");
		if (!f)
			continue;
		p = fgets(buf, sizeof(buf), f);
		fclose(f);
		/* The command name may hold spaces: fields restart after ')'. */
		p = p ? strrchr(buf, ')') : NULL;
		if (!p)
			continue;
		for (tok = strtok_r(p + 1, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
			if (++field == 39) {
				cpu = atoi(tok);
				break;
			}
		}
		if (cpu < 0 || cpu >= m->nr_cpus || m->node[cpu] < 0)
			continue;
		count[m->node[cpu]]++;
		(*total)++;
	}
	closedir(d);
	for (int n = 0; n < m->nr_nodes; n++)
		if (count[n] && (best < 0 || count[n] > count[best]))
			best = n;
	*on_node = best >= 0 ? count[best] : 0;
	free(count);
	return best;
}

/* Leaf-local share from node, the data node and its share; -errno. */
static int locality(pid_t pid, int node, double *local, int *data_node,
		    double *data_share, uint64_t *leaves)
{
	struct tiermm_pt_summary s = { .sz = sizeof(s) };
	struct tiermm_pt_node n = { .sz = sizeof(n) };
	struct tiermm_pt_stats *st;
	int ret = tiermm_pt_stat(pid, 0, 0, 0, &st);

	if (ret)
		return ret;
	tiermm_pt_stat_summary(st, &s);
	*leaves = s.leaf_entries;
	*data_node = s.data_node;
	*local = 0;
	*data_share = 0;
	if (node >= 0 && !tiermm_pt_stat_node(st, node, &n))
		*local = n.leaf_local;
	if (s.data_node >= 0 && !tiermm_pt_stat_node(st, s.data_node, &n))
		*data_share = n.data_share;
	tiermm_pt_stat_free(st);
	return 0;
}

static bool process_gone(pid_t pid, int ret)
{
	char path[64];

	if (ret == -ESRCH)
		return true;
	snprintf(path, sizeof(path), "/proc/%d", (int)pid);
	return access(path, F_OK) != 0;
}

/* Sleep sec seconds unless asked to stop. */
static void nap(double sec)
{
	struct timespec ts = { .tv_sec = (time_t)sec };

	ts.tv_nsec = (long)((sec - (double)ts.tv_sec) * 1e9);
	while (!stop_requested && nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static int run_follow(struct pt_args *a)
{
	struct sigaction sa;
	struct cpumap m;
	int rc = CLI_OK;

	if (process_gone(a->pid, 0)) {
		err(a, "pid %d: no such process", (int)a->pid);
		return CLI_FAIL;
	}
	if (cpumap_load(a, &m))
		return CLI_FAIL;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;	/* no SA_RESTART: sleeps end at once */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	for (long round = 1; !stop_requested && (!a->count || round <= a->count); round++) {
		struct tiermm_pt_migrate_result r = { .sz = sizeof(r) };
		int tnode, on, total, dnode, target, ret;
		double local, dshare, after;
		uint64_t leaves;
		char tgt[64];

		if (round > 1)
			nap(a->interval);
		if (stop_requested)
			break;
		tnode = thread_node(a->pid, &m, &on, &total);
		if (tnode == -ESRCH) {
			printf("round %ld: pid %d exited\n", round, (int)a->pid);
			break;
		}
		if (tnode < 0)
			continue;	/* no thread on a known CPU right now */
		ret = locality(a->pid, tnode, &local, &dnode, &dshare, &leaves);
		if (ret) {
			if (process_gone(a->pid, ret)) {
				printf("round %ld: pid %d exited\n", round, (int)a->pid);
				break;
			}
			err(a, "%s", tiermm_errmsg());
			rc = CLI_FAIL;
			break;
		}
		if (!leaves || 100.0 * local >= a->threshold)
			continue;
		target = dnode == tnode ? TIERMM_NODE_AUTO : tnode;
		ret = tiermm_pt_migrate(a->pid, 0, 0, target, TIERMM_PT_LEVELS_ALL, &r);
		if (ret < 0) {
			if (process_gone(a->pid, ret)) {
				printf("round %ld: pid %d exited\n", round, (int)a->pid);
				break;
			}
			err(a, "%s", tiermm_errmsg());
			rc = CLI_FAIL;
			break;
		}
		if (locality(a->pid, tnode, &after, &dnode, &dshare, &leaves))
			after = -1;
		target_text(target, tgt, sizeof(tgt));
		printf("round %ld: pid %d: threads on node %d (%d of %d), data on node %d (%.1f%%), leaf entries local from node %d: %.1f%% < %g%%: moved %" PRIu64 " page tables to %s (pte %" PRIu64 ", pmd %" PRIu64 ", pud %" PRIu64 ")",
		       round, (int)a->pid, tnode, on, total, dnode, 100.0 * dshare,
		       tnode, 100.0 * local, a->threshold, moved_total(&r), tgt,
		       r.moved[0], r.moved[1], r.moved[2]);
		for (int i = 0; i < TIERMM_PT_SKIP__COUNT; i++)
			if (i != TIERMM_PT_SKIP_ALREADY && r.skipped[i] && tiermm_pt_skip_name(i))
				printf(", skipped %s %" PRIu64, tiermm_pt_skip_name(i), r.skipped[i]);
		if (after >= 0)
			printf("; now %.1f%% local\n", 100.0 * after);
		else
			putchar('\n');
		fflush(stdout);
	}
	free(m.node);
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	return rc;
}

/* ---- The verb ------------------------------------------------------------- */

int cmd_pt(int argc, char **argv)
{
	static const struct option stat_opts[] = {
		{ "range", required_argument, NULL, 'r' },
		{ "all", no_argument, NULL, 'a' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static const struct option dump_opts[] = {
		{ "range", required_argument, NULL, 'r' },
		{ "all", no_argument, NULL, 'a' },
		{ "json", no_argument, NULL, 'j' },
		{ "entries", no_argument, NULL, 'e' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static const struct option migrate_opts[] = {
		{ "node", required_argument, NULL, 'n' },
		{ "levels", required_argument, NULL, 'l' },
		{ "range", required_argument, NULL, 'r' },
		{ "all", no_argument, NULL, 'a' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static const struct option replicate_opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static const struct option replication_opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static const struct option follow_opts[] = {
		{ "interval", required_argument, NULL, 'i' },
		{ "count", required_argument, NULL, 'c' },
		{ "threshold", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static const struct {
		const char *name, *optstring;
		const struct option *opts;
		int (*run)(struct pt_args *a);
	} subs[] = {
		{ "stat", "r:ajh", stat_opts, run_stat },
		{ "dump", "r:ajeh", dump_opts, run_dump },
		{ "migrate", "n:l:r:ah", migrate_opts, run_migrate },
		{ "follow", "i:c:t:h", follow_opts, run_follow },
		{ "replicate", "h", replicate_opts, run_replicate },
		{ "replication", "jh", replication_opts, run_replication },
	};
	struct pt_args a = {
		.levels = TIERMM_PT_LEVELS_ALL,
		.interval = 2,
		.threshold = 90,
	};

	if (argc < 2) {
		usage_pt(stderr);
		return CLI_USAGE;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		usage_pt(stdout);
		return CLI_OK;
	}
	for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
		int ret;

		if (strcmp(argv[1], subs[i].name))
			continue;
		a.sub = subs[i].name;
		ret = parse_args(&a, argc - 1, argv + 1, subs[i].optstring, subs[i].opts);
		if (ret < 0)
			return CLI_OK;
		if (ret)
			return ret;
		return subs[i].run(&a);
	}
	if (argv[1][0] == '-')
		err(&a, "unknown option '%s' (a subcommand comes first: see 'tiermm pt --help')",
		    argv[1]);
	else
		err(&a, "unknown subcommand '%s' (stat, dump, migrate, follow, replicate, replication)",
		    argv[1]);
	return CLI_USAGE;
}
