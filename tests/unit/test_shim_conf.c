// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The shim's pure parts (shim/): TIERMM_CONF, numactl node lists, sizes and
 * durations, the region set against a page-by-page model, statistics
 * records through JSON and CSV and back, numa_maps of this process.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "conf.h"
#include "regions.h"
#include "statfile.h"

static struct tmm_nodemask mask_of(const char *klist)
{
	struct tmm_nodemask all, m;
	char err[200];

	memset(&all, 0xff, sizeof(all));
	memset(&m, 0, sizeof(m));
	if (*klist)
		assert_int_equal(tmm_nodes_parse(klist, &all, &m, err, sizeof(err)), 0);
	return m;
}

/* Parse s against allowed (a kernel list) and return the result as a list. */
static const char *nodes(const char *s, const char *allowed)
{
	static char out[256];
	struct tmm_nodemask a = mask_of(allowed), m;
	char err[200];

	if (tmm_nodes_parse(s, &a, &m, err, sizeof(err))) {
		snprintf(out, sizeof(out), "ERR %s", err);
		return out;
	}
	tmm_nodes_format(&m, out, sizeof(out));
	return out;
}

static void test_nodes_plain(void **state)
{
	(void)state;
	assert_string_equal(nodes("0", "0-3"), "0");
	assert_string_equal(nodes("0-1", "0-3"), "0-1");
	assert_string_equal(nodes("0,2", "0-3"), "0,2");
	assert_string_equal(nodes("3,1,0", "0-3"), "0-1,3");
	assert_string_equal(nodes("all", "0-3"), "0-3");
	assert_string_equal(nodes("all", "0,2,5"), "0,2,5");
	/* A range skips nodes that are not allowed; its ends must be allowed. */
	assert_string_equal(nodes("0-5", "0,2,5"), "0,2,5");
	assert_string_equal(nodes("1", "0,2,5"), "ERR node 1 is not one this process may use (allowed: 0,2,5)");
	assert_string_equal(nodes("0-3", "0,2,5"), "ERR node 3 is not one this process may use (allowed: 0,2,5)");
	assert_string_equal(nodes("7", "0-3"), "ERR node 7 is not one this process may use (allowed: 0-3)");
}

static void test_nodes_relative(void **state)
{
	(void)state;
	/* +N counts the allowed nodes: with 2,4,6 allowed, +0 is 2 and +2 is 6. */
	assert_string_equal(nodes("+0", "2,4,6"), "2");
	assert_string_equal(nodes("+1-2", "2,4,6"), "4,6");
	/* numactl: a leading '+' makes the whole list relative. */
	assert_string_equal(nodes("+0,2", "2,4,6"), "2,6");
	/* ... a later '+' only its item. */
	assert_string_equal(nodes("4,+0", "2,4,6"), "2,4");
	assert_string_equal(nodes("+3", "2,4,6"), "ERR +3 is beyond the 3 allowed nodes (2,4,6)");
}

static void test_nodes_not(void **state)
{
	(void)state;
	assert_string_equal(nodes("!3", "0-3"), "0-2");
	/* numactl: a leading '!' inverts the whole list. */
	assert_string_equal(nodes("!0,1", "0-3"), "2-3");
	assert_string_equal(nodes("!0-1", "0-3"), "2-3");
	/* A later '!' excludes its item from the others. */
	assert_string_equal(nodes("all,!3", "0-3"), "0-2");
	assert_string_equal(nodes("0-3,!1-2", "0-3"), "0,3");
	/* The example: 0-1, the third allowed node, not 3, all. */
	assert_string_equal(nodes("0-1,+2,!3,all", "0-3"), "0-2");
	assert_string_equal(nodes("!+0", "2,4,6"), "4,6");
	assert_string_equal(nodes("+!0", "2,4,6"), "4,6");
	assert_string_equal(nodes("!all", "0-3"), "ERR selects no node (allowed: 0-3)");
	assert_string_equal(nodes("0,!0", "0-3"), "ERR selects no node (allowed: 0-3)");
}

static void test_nodes_errors(void **state)
{
	(void)state;
	assert_string_equal(nodes("", "0-3"), "ERR empty node list");
	assert_string_equal(nodes("x", "0-3"), "ERR 'x' is not a node number, a range N-M or all");
	assert_string_equal(nodes("0,", "0-3"), "ERR '' is not a node number, a range N-M or all");
	assert_string_equal(nodes(",0", "0-3"), "ERR ',0' is not a node number, a range N-M or all");
	assert_string_equal(nodes("1-", "0-3"), "ERR the range at '1-' has no last node");
	assert_string_equal(nodes("2-1", "0-3"), "ERR the range 2-1 goes backwards");
	assert_string_equal(nodes("!!1", "0-3"), "ERR '!' twice in one item");
	assert_string_equal(nodes("1;2", "0-3"),
			    "ERR unexpected ';' (a list is N, N-M, all, +N or !N, separated by commas)");
	assert_string_equal(nodes("-1", "0-3"), "ERR '-1' is not a node number, a range N-M or all");
	assert_string_equal(nodes("all0", "0-3"), "ERR 'all0' is not a node number, a range N-M or all");
	assert_string_equal(nodes("99999999", "0-3"),
			    "ERR '99999999' is not a node number, a range N-M or all");
	assert_string_equal(nodes("0", ""), "ERR node 0 is not one this process may use (allowed: none)");
}

static void test_nodes_allowed_here(void **state)
{
	struct tmm_nodemask a;
	char err[200];

	(void)state;
	assert_int_equal(tmm_nodes_allowed(&a, err, sizeof(err)), 0);
	/* Every machine has a node with memory. */
	assert_true(tmm_nodes_count(&a) >= 1);
	assert_true(tmm_nodes_first(&a) >= 0);
}

static void test_sizes(void **state)
{
	uint64_t b;
	double s;

	(void)state;
	assert_int_equal(tmm_parse_size("4096", &b, &s), 0);
	assert_int_equal(b, 4096);
	assert_true(s == 0);
	assert_int_equal(tmm_parse_size("512M", &b, &s), 0);
	assert_int_equal(b, 512ULL << 20);
	assert_int_equal(tmm_parse_size("512MiB", &b, NULL), 0);
	assert_int_equal(b, 512ULL << 20);
	assert_int_equal(tmm_parse_size("2G", &b, NULL), 0);
	assert_int_equal(b, 2ULL << 30);
	assert_int_equal(tmm_parse_size("1.5g", &b, NULL), 0);
	assert_int_equal(b, 3ULL << 29);
	assert_int_equal(tmm_parse_size("64k", &b, NULL), 0);
	assert_int_equal(b, 65536);
	assert_int_equal(tmm_parse_size("1T", &b, NULL), 0);
	assert_int_equal(b, 1ULL << 40);
	assert_int_equal(tmm_parse_size("100B", &b, NULL), 0);
	assert_int_equal(b, 100);
	assert_int_equal(tmm_parse_size("25%", &b, &s), 0);
	assert_int_equal(b, 0);
	assert_true(s > 0.2499 && s < 0.2501);
	assert_int_equal(tmm_parse_size("100%", &b, &s), 0);
	assert_true(s == 1.0);
	/* Refused. */
	assert_int_equal(tmm_parse_size("25%", &b, NULL), -EINVAL);
	assert_int_equal(tmm_parse_size("0", &b, &s), -EINVAL);
	assert_int_equal(tmm_parse_size("0%", &b, &s), -EINVAL);
	assert_int_equal(tmm_parse_size("101%", &b, &s), -EINVAL);
	assert_int_equal(tmm_parse_size("1.5", &b, &s), -EINVAL);
	assert_int_equal(tmm_parse_size("-1G", &b, &s), -EINVAL);
	assert_int_equal(tmm_parse_size("0x100", &b, &s), -EINVAL);
	assert_int_equal(tmm_parse_size("1Q", &b, &s), -EINVAL);
	assert_int_equal(tmm_parse_size("1GB2", &b, &s), -EINVAL);
	assert_int_equal(tmm_parse_size("1iB", &b, &s), -EINVAL);
	assert_int_equal(tmm_parse_size("", &b, &s), -EINVAL);
	assert_int_equal(tmm_parse_size(" 1G", &b, &s), -EINVAL);
	assert_int_equal(tmm_parse_size("inf", &b, &s), -EINVAL);
	assert_int_equal(tmm_parse_size("99999999999T", &b, &s), -EINVAL);
}

static void test_durations(void **state)
{
	unsigned int ms;

	(void)state;
	assert_int_equal(tmm_parse_ms("500", &ms), 0);
	assert_int_equal(ms, 500);
	assert_int_equal(tmm_parse_ms("500ms", &ms), 0);
	assert_int_equal(ms, 500);
	assert_int_equal(tmm_parse_ms("2s", &ms), 0);
	assert_int_equal(ms, 2000);
	assert_int_equal(tmm_parse_ms("1.5s", &ms), 0);
	assert_int_equal(ms, 1500);
	assert_int_equal(tmm_parse_ms("0.5ms", &ms), -EINVAL);
	assert_int_equal(tmm_parse_ms("2m", &ms), -EINVAL);
	assert_int_equal(tmm_parse_ms("s", &ms), -EINVAL);
	assert_int_equal(tmm_parse_ms("-1", &ms), -EINVAL);
	assert_int_equal(tmm_parse_ms("9999999999", &ms), -EINVAL);
}

/* Parse a TIERMM_CONF with nodes 0-2 allowed; "" on success, else the message. */
static const char *conf(const char *s, struct tmm_conf *c)
{
	static char err[400];
	struct tmm_nodemask a = mask_of("0-2");

	tmm_conf_init(c);
	err[0] = '\0';
	if (tmm_conf_parse(s, &a, c, err, sizeof(err)) && !err[0])
		strcpy(err, "(no message)");
	return err;
}

static void test_conf_defaults(void **state)
{
	struct tmm_conf c;

	(void)state;
	assert_string_equal(conf(NULL, &c), "");
	assert_string_equal(c.backend, "auto");
	assert_int_equal(c.stats_ms, 1000);
	assert_int_equal(c.placement, TMM_PLACE_FIRST_TOUCH);
	assert_int_equal(c.pt, TMM_PT_NONE);
	assert_int_equal(c.backoff_max, 0);
	assert_false(c.follow_fork);
	assert_false(c.follow_exec);
	assert_string_equal(c.stats, "");
	assert_string_equal(conf("", &c), "");
	assert_string_equal(conf("   ", &c), "");
}

static void test_conf_all_keys(void **state)
{
	struct tmm_conf c;
	char p[64];

	(void)state;
	assert_string_equal(conf("fast-budget:256M,backend:scan,interval:250ms,rate-limit:64,"
				 "cpu-quota:10%,backoff:16,placement:interleave=0-1,pt:follow,"
				 "stats:/tmp/s.%p.csv,stats-format:json,stats-interval:2s,"
				 "follow-fork:1,follow-exec:yes,topo:/tmp/t.xml", &c), "");
	assert_int_equal(c.budget_bytes, 256ULL << 20);
	assert_true(c.budget_share == 0);
	assert_string_equal(c.backend, "scan");
	assert_int_equal(c.epoch_ms, 250);
	assert_true(c.rate_limit_mib_s == 64);
	assert_true(c.cpu_quota > 0.0999 && c.cpu_quota < 0.1001);
	assert_int_equal(c.backoff_max, 16);
	assert_int_equal(c.placement, TMM_PLACE_INTERLEAVE);
	tmm_conf_placement(&c, p, sizeof(p));
	assert_string_equal(p, "interleave=0-1");
	assert_int_equal(c.pt, TMM_PT_FOLLOW);
	assert_string_equal(c.stats, "/tmp/s.%p.csv");
	assert_int_equal(c.stats_format, TMM_FMT_JSON);
	assert_int_equal(c.stats_ms, 2000);
	assert_true(c.follow_fork);
	assert_true(c.follow_exec);
	assert_string_equal(c.topo, "/tmp/t.xml");
}

static void test_conf_values(void **state)
{
	struct tmm_conf c;
	char p[64];

	(void)state;
	assert_string_equal(conf("fast-budget:30%", &c), "");
	assert_int_equal(c.budget_bytes, 0);
	assert_true(c.budget_share > 0.2999 && c.budget_share < 0.3001);
	/* The last of a key wins, a budget in bytes replaces a share. */
	assert_string_equal(conf("fast-budget:30%,fast-budget:1G", &c), "");
	assert_int_equal(c.budget_bytes, 1ULL << 30);
	assert_true(c.budget_share == 0);
	assert_string_equal(conf("backend:damon,backend:none", &c), "");
	assert_string_equal(c.backend, "none");
	assert_string_equal(conf("rate-limit:none,cpu-quota:none", &c), "");
	assert_true(c.rate_limit_mib_s < 0);
	assert_true(c.cpu_quota < 0);
	assert_string_equal(conf("cpu-quota:0.2", &c), "");
	assert_true(c.cpu_quota > 0.1999 && c.cpu_quota < 0.2001);
	assert_string_equal(conf("placement:tier=1", &c), "");
	assert_int_equal(c.placement, TMM_PLACE_TIER);
	assert_int_equal(c.tier, 1);
	assert_string_equal(conf("placement:membind=!0", &c), "");
	tmm_conf_placement(&c, p, sizeof(p));
	assert_string_equal(p, "membind=1-2");
	assert_string_equal(conf("placement:preferred=2", &c), "");
	tmm_conf_placement(&c, p, sizeof(p));
	assert_string_equal(p, "preferred=2");
	assert_string_equal(conf("placement:interleave=0,placement:first-touch", &c), "");
	assert_int_equal(c.placement, TMM_PLACE_FIRST_TOUCH);
	assert_string_equal(conf("pt:once", &c), "");
	assert_int_equal(c.pt, TMM_PT_ONCE);
	assert_string_equal(conf("stats-format:csv", &c), "");
	assert_int_equal(c.stats_format, TMM_FMT_CSV);
	assert_string_equal(conf("follow-fork:0,follow-exec:false", &c), "");
	assert_false(c.follow_fork);
	/* Blanks around keys and values. */
	assert_string_equal(conf(" backend : scan , interval: 1s ", &c), "");
	assert_string_equal(c.backend, "scan");
	assert_int_equal(c.epoch_ms, 1000);
}

/* backoff: the runtime's backoff_max, 1 to 1024; a bad value changes nothing. */
static void test_conf_backoff(void **state)
{
	static const char *const bad[] = {
		"0", "1025", "4096", "-1", "+8", "1.5", "16x", "0x10", "", "none", "default",
		"99999999999",
	};
	struct tmm_nodemask a = mask_of("0-2");
	struct tmm_conf c, before;
	char err[400], item[64];
	unsigned int n;

	(void)state;
	assert_string_equal(conf("backoff:1", &c), "");
	assert_int_equal(c.backoff_max, 1);
	assert_string_equal(conf("backoff:1024", &c), "");
	assert_int_equal(c.backoff_max, 1024);
	assert_string_equal(conf(" backoff : 8 ", &c), "");
	assert_int_equal(c.backoff_max, 8);
	/* The last of a key wins. */
	assert_string_equal(conf("backoff:4,interval:1s,backoff:64", &c), "");
	assert_int_equal(c.backoff_max, 64);
	assert_int_equal(c.epoch_ms, 1000);
	assert_int_equal(tmm_parse_backoff("32", &n), 0);
	assert_int_equal(n, 32);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char want[300];

		n = 7;
		assert_int_equal(tmm_parse_backoff(bad[i], &n), -EINVAL);
		assert_int_equal(n, 7);
		/* Over a configuration that has a backoff already: the error, nothing changed. */
		tmm_conf_init(&c);
		assert_int_equal(tmm_conf_parse("backoff:16,backend:scan", &a, &c, err, sizeof(err)),
				 0);
		memcpy(&before, &c, sizeof(c));
		snprintf(item, sizeof(item), "backoff:%s", bad[i]);
		err[0] = '\0';
		assert_int_equal(tmm_conf_parse(item, &a, &c, err, sizeof(err)), -EINVAL);
		snprintf(want, sizeof(want),
			 "backoff: '%s' is not a whole number from 1 to 1024 (how many times slower the runtime may get once placement has settled; 1: never slower)",
			 bad[i]);
		assert_string_equal(err, want);
		assert_memory_equal(&c, &before, sizeof(c));
	}
	assert_int_equal(tmm_parse_backoff(NULL, &n), -EINVAL);
}

static void test_conf_node_list_commas(void **state)
{
	struct tmm_conf c;
	char p[64];

	(void)state;
	/* A comma belongs to the value unless a key and a colon follow it. */
	assert_string_equal(conf("placement:interleave=0,2,backend:scan", &c), "");
	tmm_conf_placement(&c, p, sizeof(p));
	assert_string_equal(p, "interleave=0,2");
	assert_string_equal(c.backend, "scan");
	assert_string_equal(conf("backend:scan,placement:interleave=0-1,+2,!1", &c), "");
	tmm_conf_placement(&c, p, sizeof(p));
	assert_string_equal(p, "interleave=0,2");
	assert_string_equal(conf("placement:membind=!0,1", &c), "");
	tmm_conf_placement(&c, p, sizeof(p));
	assert_string_equal(p, "membind=2");
	/* A stats file name may hold commas too. */
	assert_string_equal(conf("stats:/tmp/a,b.json,pt:once", &c), "");
	assert_string_equal(c.stats, "/tmp/a,b.json");
	assert_int_equal(c.pt, TMM_PT_ONCE);
}

static void test_conf_errors(void **state)
{
	struct tmm_conf c;

	(void)state;
	assert_string_equal(conf("bogus:1", &c),
			    "unknown key 'bogus' (known keys: fast-budget, backend, interval, rate-limit, cpu-quota, backoff, placement, pt, stats, stats-format, stats-interval, follow-fork, follow-exec, topo)");
	assert_string_equal(conf("backend", &c),
			    "'backend' is not key:value (known keys: fast-budget, backend, interval, rate-limit, cpu-quota, backoff, placement, pt, stats, stats-format, stats-interval, follow-fork, follow-exec, topo)");
	/* Two commas: the first is not followed by a key, so it stays in the value. */
	assert_non_null(strstr(conf("backend:scan,,pt:once", &c), "backend: 'scan,' is not"));
	assert_string_equal(conf(",backend:scan", &c),
			    "empty item (two commas in a row, or a comma at the end)");
	assert_non_null(strstr(conf("backend:scan,", &c), "backend: 'scan,' is not auto"));
	assert_string_equal(conf("backend:magic", &c),
			    "backend: 'magic' is not auto, perf, scan, damon or none");
	assert_non_null(strstr(conf("fast-budget:lots", &c), "fast-budget: 'lots' is not a size"));
	assert_non_null(strstr(conf("fast-budget:", &c), "fast-budget: '' is not a size"));
	assert_non_null(strstr(conf("fast-budget:0", &c), "fast-budget: '0' is not a size"));
	assert_non_null(strstr(conf("interval:5ms", &c), "interval: '5ms' is not a duration"));
	assert_non_null(strstr(conf("interval:2m", &c), "interval: '2m' is not a duration"));
	assert_non_null(strstr(conf("rate-limit:-3", &c), "rate-limit: '-3' is not"));
	assert_non_null(strstr(conf("cpu-quota:0", &c), "cpu-quota: '0' is not"));
	assert_string_equal(conf("backoff:0", &c),
			    "backoff: '0' is not a whole number from 1 to 1024 (how many times slower the runtime may get once placement has settled; 1: never slower)");
	assert_string_equal(conf("placement:interleave=3", &c),
			    "placement: interleave=3: node 3 is not one this process may use (allowed: 0-2)");
	assert_string_equal(conf("placement:spread", &c),
			    "placement: 'spread' is not first-touch, interleave=NODES, membind=NODES, preferred=NODES or tier=N");
	assert_non_null(strstr(conf("placement:tier=x", &c), "tier=x: not a tier number"));
	assert_string_equal(conf("pt:sometimes", &c), "pt: 'sometimes' is not follow, once or none");
	assert_string_equal(conf("stats:", &c), "stats: needs a file name");
	assert_non_null(strstr(conf("stats:/tmp/%d.json", &c), "the only % sequences"));
	assert_string_equal(conf("stats-format:xml", &c), "stats-format: 'xml' is not json or csv");
	assert_non_null(strstr(conf("stats-interval:1ms", &c), "stats-interval: '1ms'"));
	assert_string_equal(conf("follow-fork:2", &c), "follow-fork: '2' is not 0 or 1");
	assert_non_null(strstr(conf("topo:", &c), "topo: needs a file name"));
	/* Upper case is not a key. */
	assert_non_null(strstr(conf("Backend:scan", &c), "unknown key 'Backend'"));
}

static void test_stats_path(void **state)
{
	char out[64];

	(void)state;
	assert_int_equal(tmm_stats_path("/tmp/s.json", 42, false, out, sizeof(out)), 0);
	assert_string_equal(out, "/tmp/s.json");
	assert_int_equal(tmm_stats_path("/tmp/s.json", 42, true, out, sizeof(out)), 0);
	assert_string_equal(out, "/tmp/s.json.42");
	assert_int_equal(tmm_stats_path("/tmp/s.%p.json", 42, true, out, sizeof(out)), 0);
	assert_string_equal(out, "/tmp/s.42.json");
	assert_int_equal(tmm_stats_path("/tmp/100%%-%p", 7, false, out, sizeof(out)), 0);
	assert_string_equal(out, "/tmp/100%-7");
	assert_int_equal(tmm_stats_path("/tmp/xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
					7, false, out, sizeof(out)), -ENAMETOOLONG);
	assert_int_equal(tmm_stats_path("/tmp/xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
					1234567, true, out, sizeof(out)), -ENAMETOOLONG);
}

/* ---- Regions against a model ------------------------------------------- */

#define MODEL_PAGES 512

static void check_model(const struct tmm_regions *r, const unsigned char *model)
{
	uint64_t bytes = 0;
	size_t k = 0;

	for (size_t i = 1; i < r->n; i++) {
		/* Sorted, disjoint, not adjacent. */
		assert_true(r->v[i - 1].end < r->v[i].start);
	}
	for (int p = 0; p < MODEL_PAGES; p++) {
		uint64_t a = (uint64_t)p * 4096;
		bool in = false;

		while (k < r->n && r->v[k].end <= a)
			k++;
		in = k < r->n && r->v[k].start <= a;
		assert_int_equal(in, model[p]);
		bytes += model[p] ? 4096 : 0;
	}
	assert_int_equal(r->bytes, bytes);
}

static void test_regions_model(void **state)
{
	struct tmm_regions r = { 0 };
	unsigned char model[MODEL_PAGES] = { 0 };

	(void)state;
	srand(1);
	for (int i = 0; i < 20000; i++) {
		int a = rand() % MODEL_PAGES, n = 1 + rand() % 40, op = rand() % 3;
		int b = a + n > MODEL_PAGES ? MODEL_PAGES : a + n;

		if (op == 0) {
			assert_int_equal(tmm_regions_add(&r, (uint64_t)a * 4096, (uint64_t)b * 4096), 0);
			memset(model + a, 1, (size_t)(b - a));
		} else if (op == 1) {
			tmm_regions_remove(&r, (uint64_t)a * 4096, (uint64_t)b * 4096);
			memset(model + a, 0, (size_t)(b - a));
		} else {
			uint64_t want = 0;

			for (int p = a; p < b; p++)
				want += model[p] ? 4096 : 0;
			assert_int_equal(tmm_regions_overlap(&r, (uint64_t)a * 4096,
							     (uint64_t)b * 4096), want);
		}
		if (i % 97 == 0) {
			/* Keep what a random "maps" snapshot has. */
			struct tmm_range keep[8];
			size_t nk = 0;
			int pos = 0;

			while (pos < MODEL_PAGES && nk < 8) {
				int s = pos + rand() % 64, e = s + 1 + rand() % 128;

				if (s >= MODEL_PAGES)
					break;
				if (e > MODEL_PAGES)
					e = MODEL_PAGES;
				keep[nk++] = (struct tmm_range){ (uint64_t)s * 4096, (uint64_t)e * 4096 };
				pos = e + 1;
			}
			assert_int_equal(tmm_regions_intersect(&r, keep, nk), 0);
			for (int p = 0; p < MODEL_PAGES; p++) {
				bool kept = false;

				for (size_t j = 0; j < nk; j++)
					kept |= (uint64_t)p * 4096 >= keep[j].start &&
						(uint64_t)p * 4096 < keep[j].end;
				if (!kept)
					model[p] = 0;
			}
		}
		check_model(&r, model);
	}
	assert_false(r.lossy);
	tmm_regions_free(&r);
	assert_int_equal(r.n, 0);
}

static void test_regions_growth(void **state)
{
	struct tmm_regions r = { 0 };

	(void)state;
	/* Many separate intervals: the storage grows past its first page. */
	for (uint64_t i = 0; i < 10000; i++)
		assert_int_equal(tmm_regions_add(&r, i * 8192, i * 8192 + 4096), 0);
	assert_int_equal(r.n, 10000);
	assert_int_equal(r.bytes, 10000 * 4096ULL);
	/* Filling the holes merges everything into one. */
	for (uint64_t i = 0; i < 10000; i++)
		assert_int_equal(tmm_regions_add(&r, i * 8192 + 4096, i * 8192 + 8192), 0);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.bytes, 10000 * 8192ULL);
	/* A hole splits it. */
	tmm_regions_remove(&r, 4096, 8192);
	assert_int_equal(r.n, 2);
	tmm_regions_remove(&r, 0, UINT64_MAX);
	assert_int_equal(r.n, 0);
	assert_int_equal(r.bytes, 0);
	tmm_regions_free(&r);
}

/* ---- Records ------------------------------------------------------------ */

static void fill(struct tmm_rec *r)
{
	tmm_rec_clear(r);
	tmm_rec_put_dbl(r, "time", 1700000000.25);
	tmm_rec_put_u64(r, "pid", 1234);
	tmm_rec_put_str(r, "backend", "scan");
	tmm_rec_put_u64(r, "tier0_bytes", 18446744073709551615ULL);
	tmm_rec_put_str(r, "error", "a \"quoted\", comma\\slash\nnewline");
	tmm_rec_put_str(r, "empty", "");
}

static void test_rec_json(void **state)
{
	struct tmm_rec r, back;
	char line[4096];
	int n;

	(void)state;
	fill(&r);
	n = tmm_rec_format(&r, TMM_FMT_JSON, false, line, sizeof(line));
	assert_true(n > 0);
	assert_string_equal(line,
			    "{\"time\":1700000000.250,\"pid\":1234,\"backend\":\"scan\",\"tier0_bytes\":18446744073709551615,\"error\":\"a \\\"quoted\\\", comma\\\\slash\\u000anewline\",\"empty\":\"\"}\n");
	assert_int_equal(tmm_rec_parse_json(line, &back), 0);
	assert_int_equal(back.n, r.n);
	assert_string_equal(tmm_rec_get(&back, "backend"), "scan");
	assert_string_equal(tmm_rec_get(&back, "error"), "a \"quoted\", comma\\slash?newline");
	assert_true(tmm_rec_num(&back, "pid", 0) == 1234);
	assert_true(tmm_rec_num(&back, "time", 0) == 1700000000.25);
	assert_null(tmm_rec_get(&back, "nope"));
	assert_true(tmm_rec_num(&back, "backend", -1) == -1);
	/* Too small a buffer. */
	assert_int_equal(tmm_rec_format(&r, TMM_FMT_JSON, false, line, 20), -ENOSPC);
	/* Broken lines. */
	assert_int_equal(tmm_rec_parse_json("{\"a\":1", &back), -EINVAL);
	assert_int_equal(tmm_rec_parse_json("{\"a\":}", &back), -EINVAL);
	assert_int_equal(tmm_rec_parse_json("{\"a\" 1}", &back), -EINVAL);
	assert_int_equal(tmm_rec_parse_json("{\"a\":\"x}", &back), -EINVAL);
	assert_int_equal(tmm_rec_parse_json("{\"a\":1} x", &back), -EINVAL);
	assert_int_equal(tmm_rec_parse_json("{}", &back), 0);
	assert_int_equal(back.n, 0);
}

static void test_rec_csv(void **state)
{
	struct tmm_rec r, header, back;
	char line[4096], *row;

	(void)state;
	fill(&r);
	assert_true(tmm_rec_format(&r, TMM_FMT_CSV, true, line, sizeof(line)) > 0);
	assert_string_equal(line,
			    "time,pid,backend,tier0_bytes,error,empty\n"
			    "1700000000.250,1234,scan,18446744073709551615,\"a \"\"quoted\"\", comma\\slash newline\",\n");
	row = strchr(line, '\n') + 1;
	row[-1] = '\0';
	/* tmm_stats_foreach() does this: the header's names, then rows against them. */
	assert_int_equal(tmm_rec_parse_csv_header(line, &header), 0);
	assert_int_equal(header.n, 6);
	assert_string_equal(header.f[4].val, "error");
	assert_int_equal(tmm_rec_parse_csv(row, &header, &back), 0);
	assert_string_equal(tmm_rec_get(&back, "error"), "a \"quoted\", comma\\slash newline");
	assert_string_equal(tmm_rec_get(&back, "backend"), "scan");
	assert_true(back.f[0].str == false);
	assert_true(back.f[2].str == true);
	assert_string_equal(tmm_rec_get(&back, "empty"), "");
	/* A row of another width does not parse. */
	assert_int_equal(tmm_rec_parse_csv("1,2", &header, &back), -EINVAL);
}

struct collect {
	int n;
	double pids[8];
};

static int collect_cb(const struct tmm_rec *r, void *ctx)
{
	struct collect *c = ctx;

	if (c->n < 8)
		c->pids[c->n] = tmm_rec_num(r, "pid", -1);
	c->n++;
	return 0;
}

static void test_stats_file(void **state)
{
	char path[] = "/tmp/test_shim_conf-XXXXXX";
	int fd = mkstemp(path), bad = -1;
	struct collect c = { 0 };
	FILE *f;

	(void)state;
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	/* JSON, a CSV header and rows, a re-header, and a torn last line. */
	fputs("{\"pid\":1,\"t\":0}\n"
	      "\n"
	      "pid,t\n"
	      "2,0.5\n"
	      "3,1\n"
	      "not,a,header,of,the,same,width\n"
	      "t,pid\n"
	      "1.5,4\n"
	      "{\"pid\":5", f);
	fclose(f);
	assert_int_equal(tmm_stats_foreach(path, collect_cb, &c, &bad), 0);
	assert_int_equal(c.n, 4);
	assert_true(c.pids[0] == 1 && c.pids[1] == 2 && c.pids[2] == 3 && c.pids[3] == 4);
	assert_int_equal(bad, 1);
	unlink(path);
	assert_int_equal(tmm_stats_foreach(path, collect_cb, &c, NULL), -ENOENT);
}

static void test_numa_maps_self(void **state)
{
	static struct tmm_numa_usage u;
	size_t len = 8 << 20;
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t anon_before, anon = 0, start;

	(void)state;
	assert_true(p != MAP_FAILED);
	assert_int_equal(tmm_numa_maps(0, &u), 0);
	for (int n = 0; n < u.nr_nodes; n++)
		anon += u.anon[n];
	anon_before = anon;
	memset(p, 1, len);
	assert_int_equal(tmm_numa_maps(0, &u), 0);
	anon = 0;
	for (int n = 0; n < u.nr_nodes; n++) {
		anon += u.anon[n];
		assert_int_equal(u.node[n], u.anon[n] + u.file[n] + u.huge[n]);
	}
	/* The 8 MiB just touched show up as anonymous memory. */
	assert_true(anon >= anon_before + len - (1 << 20));
	assert_true(u.total >= anon);
	assert_true(u.mappings > 5);
	munmap(p, len);
	assert_int_equal(tmm_numa_maps(999999999, &u), -ESRCH);
	assert_int_equal(tmm_proc_starttime(0, &start), 0);
	assert_true(start > 0);
	assert_int_equal(tmm_proc_starttime(999999999, &start), -ESRCH);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_nodes_plain),
		cmocka_unit_test(test_nodes_relative),
		cmocka_unit_test(test_nodes_not),
		cmocka_unit_test(test_nodes_errors),
		cmocka_unit_test(test_nodes_allowed_here),
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_durations),
		cmocka_unit_test(test_conf_defaults),
		cmocka_unit_test(test_conf_all_keys),
		cmocka_unit_test(test_conf_values),
		cmocka_unit_test(test_conf_backoff),
		cmocka_unit_test(test_conf_node_list_commas),
		cmocka_unit_test(test_conf_errors),
		cmocka_unit_test(test_stats_path),
		cmocka_unit_test(test_regions_model),
		cmocka_unit_test(test_regions_growth),
		cmocka_unit_test(test_rec_json),
		cmocka_unit_test(test_rec_csv),
		cmocka_unit_test(test_stats_file),
		cmocka_unit_test(test_numa_maps_self),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
