// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * TIERMM_CONF, node lists, sizes and durations (conf.h). No allocation
 * but one copy of the configuration string, no output, no global state:
 * the shim calls this from its constructor.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"

const char tmm_conf_keys[] =
	"fast-budget, backend, interval, rate-limit, cpu-quota, backoff, placement, pt, stats, stats-format, stats-interval, follow-fork, follow-exec, topo";

static int fail(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

/* ---- Node masks --------------------------------------------------------- */

int tmm_nodes_count(const struct tmm_nodemask *m)
{
	int n = 0;

	for (size_t i = 0; i < sizeof(m->bits) / sizeof(m->bits[0]); i++)
		n += __builtin_popcountll(m->bits[i]);
	return n;
}

int tmm_nodes_first(const struct tmm_nodemask *m)
{
	for (int i = 0; i < TMM_MAX_NODES; i++)
		if (tmm_node_isset(m, i))
			return i;
	return -1;
}

void tmm_nodes_format(const struct tmm_nodemask *m, char *buf, size_t len)
{
	size_t n = 0;

	if (!len)
		return;
	buf[0] = '\0';
	for (int i = 0; i < TMM_MAX_NODES; i++) {
		int j = i;

		if (!tmm_node_isset(m, i))
			continue;
		while (j + 1 < TMM_MAX_NODES && tmm_node_isset(m, j + 1))
			j++;
		if (n < len)
			n += (size_t)snprintf(buf + n, len - n, "%s%d", n ? "," : "", i);
		if (j > i && n < len)
			n += (size_t)snprintf(buf + n, len - n, "-%d", j);
		i = j;
	}
}

/* Digits only (no sign, no blanks): the value, or -1. */
static long parse_uint(const char **p)
{
	long v = 0;

	if (!isdigit((unsigned char)**p))
		return -1;
	while (isdigit((unsigned char)**p)) {
		v = v * 10 + (**p - '0');
		if (v > 1000000)
			return -1;
		(*p)++;
	}
	return v;
}

int tmm_nodes_parse(const char *s, const struct tmm_nodemask *allowed,
		    struct tmm_nodemask *out, char *err, size_t errlen)
{
	struct tmm_nodemask inc, exc;
	int order[TMM_MAX_NODES], nr_allowed = 0;
	bool any_inc = false, first = true, all_excl = false, all_rel = false;
	char list[256];
	const char *p = s;

	memset(&inc, 0, sizeof(inc));
	memset(&exc, 0, sizeof(exc));
	for (int i = 0; i < TMM_MAX_NODES; i++)
		if (tmm_node_isset(allowed, i))
			order[nr_allowed++] = i;
	tmm_nodes_format(allowed, list, sizeof(list));
	if (!s || !*s)
		return fail(err, errlen, "empty node list");
	for (;;) {
		struct tmm_nodemask item;
		bool excl = false, rel = false;
		const char *start = p;
		long a, b;

		memset(&item, 0, sizeof(item));
		while (*p == '!' || *p == '+') {
			bool *flag = *p == '!' ? &excl : &rel;

			if (*flag)
				return fail(err, errlen, "'%c' twice in one item", *p);
			*flag = true;
			p++;
		}
		if (first) {
			all_excl = excl;
			all_rel = rel;
		} else {
			excl |= all_excl;
			rel |= all_rel;
		}
		if (!strncmp(p, "all", 3) && (p[3] == ',' || !p[3])) {
			item = *allowed;
			p += 3;
		} else {
			a = parse_uint(&p);
			if (a < 0)
				return fail(err, errlen,
					    "'%s' is not a node number, a range N-M or all",
					    start);
			b = a;
			if (*p == '-') {
				p++;
				b = parse_uint(&p);
				if (b < 0)
					return fail(err, errlen,
						    "the range at '%s' has no last node", start);
				if (b < a)
					return fail(err, errlen, "the range %ld-%ld goes backwards",
						    a, b);
			}
			if (rel) {
				if (b >= nr_allowed)
					return fail(err, errlen,
						    "+%ld is beyond the %d allowed node%s (%s)",
						    b, nr_allowed, nr_allowed == 1 ? "" : "s", list);
				for (long i = a; i <= b; i++)
					tmm_node_set(&item, order[i]);
			} else {
				long bad = !tmm_node_isset(allowed, (int)a) ? a :
					   !tmm_node_isset(allowed, (int)b) ? b : -1;

				if (bad >= 0)
					return fail(err, errlen,
						    "node %ld is not one this process may use (allowed: %s)",
						    bad, list[0] ? list : "none");
				for (long i = a; i <= b; i++)
					if (tmm_node_isset(allowed, (int)i))
						tmm_node_set(&item, (int)i);
			}
		}
		for (size_t i = 0; i < sizeof(item.bits) / sizeof(item.bits[0]); i++) {
			if (excl)
				exc.bits[i] |= item.bits[i];
			else
				inc.bits[i] |= item.bits[i];
		}
		any_inc |= !excl;
		first = false;
		if (*p == ',') {
			p++;
			continue;
		}
		if (!*p)
			break;
		return fail(err, errlen,
			    "unexpected '%c' (a list is N, N-M, all, +N or !N, separated by commas)",
			    *p);
	}
	if (!any_inc)
		inc = *allowed;
	for (size_t i = 0; i < sizeof(inc.bits) / sizeof(inc.bits[0]); i++)
		out->bits[i] = inc.bits[i] & ~exc.bits[i];
	if (!tmm_nodes_count(out))
		return fail(err, errlen, "selects no node (allowed: %s)", list[0] ? list : "none");
	return 0;
}

/* A kernel list ("0-2,4", "" is empty). 0 or -EINVAL. */
static int parse_klist(const char *s, struct tmm_nodemask *m)
{
	const char *p = s;

	memset(m, 0, sizeof(*m));
	while (*p && *p != '\n') {
		long a = parse_uint(&p), b;

		if (a < 0)
			return -EINVAL;
		b = a;
		if (*p == '-') {
			p++;
			b = parse_uint(&p);
			if (b < a)
				return -EINVAL;
		}
		for (long i = a; i <= b && i < TMM_MAX_NODES; i++)
			tmm_node_set(m, (int)i);
		if (*p == ',')
			p++;
		else if (*p && *p != '\n')
			return -EINVAL;
	}
	return 0;
}

static ssize_t read_small(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n, got = 0;

	if (fd < 0)
		return -errno;
	while ((size_t)got + 1 < len &&
	       (n = read(fd, buf + got, len - 1 - (size_t)got)) > 0)
		got += n;
	close(fd);
	buf[got] = '\0';
	return got;
}

int tmm_nodes_allowed(struct tmm_nodemask *allowed, char *err, size_t errlen)
{
	struct tmm_nodemask mem;
	char buf[8192], *p;
	ssize_t n;

	memset(allowed, 0, sizeof(*allowed));
	n = read_small("/proc/self/status", buf, sizeof(buf));
	if (n < 0) {
		fail(err, errlen, "cannot read /proc/self/status: %s", strerror((int)-n));
		return (int)n;
	}
	p = strstr(buf, "\nMems_allowed_list:");
	if (!p) {
		/*
		 * A kernel without cpusets (CONFIG_CPUSETS=n, as the test rig's
		 * minimal and debug kernels) does not print the line: every node
		 * with memory is allowed; a kernel without NUMA has node 0.
		 */
		n = read_small("/sys/devices/system/node/has_memory", buf, sizeof(buf));
		if (n < 0 || parse_klist(buf, allowed) || !tmm_nodes_count(allowed)) {
			memset(allowed, 0, sizeof(*allowed));
			tmm_node_set(allowed, 0);
		}
		return 0;
	}
	p += strlen("\nMems_allowed_list:");
	while (*p == ' ' || *p == '\t')
		p++;
	if (parse_klist(p, allowed))
		return fail(err, errlen, "cannot parse Mems_allowed_list in /proc/self/status");
	n = read_small("/sys/devices/system/node/has_memory", buf, sizeof(buf));
	if (n >= 0 && !parse_klist(buf, &mem)) {
		for (size_t i = 0; i < sizeof(mem.bits) / sizeof(mem.bits[0]); i++)
			allowed->bits[i] &= mem.bits[i];
	}
	return 0;
}

/* ---- Numbers ------------------------------------------------------------ */

/* A plain decimal number with an optional fraction: no sign, hex, inf. */
static int parse_num(const char *s, double *v, const char **end)
{
	char *e;

	if (!isdigit((unsigned char)s[0]) &&
	    !(s[0] == '.' && isdigit((unsigned char)s[1])))
		return -EINVAL;
	if (strchr(s, 'x') || strchr(s, 'X'))
		return -EINVAL;
	errno = 0;
	*v = strtod(s, &e);
	if (errno || e == s || !isfinite(*v))
		return -EINVAL;
	*end = e;
	return 0;
}

int tmm_parse_size(const char *s, uint64_t *bytes, double *share)
{
	static const char suffixes[] = "KMGT";
	const char *e;
	double v, mult = 1;

	*bytes = 0;
	if (share)
		*share = 0;
	if (!s || parse_num(s, &v, &e))
		return -EINVAL;
	if (*e == '%') {
		if (!share || e[1] || !(v > 0 && v <= 100))
			return -EINVAL;
		*share = v / 100;
		return 0;
	}
	if (*e) {
		const char *k = strchr(suffixes, toupper((unsigned char)*e));

		if (k) {
			mult = ldexp(1, 10 * (int)(k - suffixes + 1));
			e++;
		}
		/* "512M", "512MB", "512MiB", "4096B" */
		if (*e && strcmp(e, "B") && !(k && !strcmp(e, "iB")))
			return -EINVAL;
	}
	if (mult == 1 && v != floor(v))
		return -EINVAL;	/* a fraction of a byte */
	v = floor(v * mult + 0.5);
	if (!(v >= 1) || v >= 18446744073709551615.0)
		return -EINVAL;
	*bytes = (uint64_t)v;
	return 0;
}

int tmm_parse_ms(const char *s, unsigned int *ms)
{
	const char *e;
	double v;

	if (!s || parse_num(s, &v, &e))
		return -EINVAL;
	if (!strcmp(e, "s"))
		v *= 1000;
	else if (*e && strcmp(e, "ms"))
		return -EINVAL;
	if (v != floor(v) || v < 0 || v > 4294967295.0)
		return -EINVAL;
	*ms = (unsigned int)v;
	return 0;
}

int tmm_parse_backoff(const char *s, unsigned int *n)
{
	const char *p = s;
	long v;

	if (!s)
		return -EINVAL;
	v = parse_uint(&p);
	if (v < 1 || v > TIERMM_RUNTIME_BACKOFF_MAX || *p)
		return -EINVAL;
	*n = (unsigned int)v;
	return 0;
}

/* ---- TIERMM_CONF -------------------------------------------------------- */

void tmm_conf_init(struct tmm_conf *c)
{
	memset(c, 0, sizeof(*c));
	strcpy(c->backend, "auto");
	c->stats_ms = TMM_DEF_STATS_MS;
}

/* Does p start a new item: blanks, a key ([a-z][a-z0-9-]*), a colon? */
static bool item_start(const char *p)
{
	while (*p == ' ')
		p++;
	if (!(*p >= 'a' && *p <= 'z'))
		return false;
	while ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-')
		p++;
	return *p == ':';
}

static char *trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
		*--e = '\0';
	return s;
}

static int parse_bool(const char *v, bool *b)
{
	if (!strcmp(v, "1") || !strcmp(v, "yes") || !strcmp(v, "true")) {
		*b = true;
		return 0;
	}
	if (!strcmp(v, "0") || !strcmp(v, "no") || !strcmp(v, "false")) {
		*b = false;
		return 0;
	}
	return -EINVAL;
}

static int check_pattern(const char *v)
{
	for (const char *p = v; *p; p++) {
		if (*p != '%')
			continue;
		if (p[1] != 'p' && p[1] != '%')
			return -EINVAL;
		p++;
	}
	return 0;
}

static int parse_placement(const char *v, const struct tmm_nodemask *allowed,
			   struct tmm_conf *c, char *err, size_t errlen)
{
	static const struct {
		const char *prefix;
		int placement;
	} lists[] = {
		{ "interleave=", TMM_PLACE_INTERLEAVE },
		{ "membind=", TMM_PLACE_MEMBIND },
		{ "preferred=", TMM_PLACE_PREFERRED },
	};
	char sub[200];

	if (!strcmp(v, "first-touch")) {
		c->placement = TMM_PLACE_FIRST_TOUCH;
		memset(&c->nodes, 0, sizeof(c->nodes));
		return 0;
	}
	for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
		size_t n = strlen(lists[i].prefix);

		if (strncmp(v, lists[i].prefix, n))
			continue;
		if (tmm_nodes_parse(v + n, allowed, &c->nodes, sub, sizeof(sub)))
			return fail(err, errlen, "placement: %s%s: %s", lists[i].prefix, v + n, sub);
		c->placement = lists[i].placement;
		return 0;
	}
	if (!strncmp(v, "tier=", 5)) {
		const char *p = v + 5;
		long t = parse_uint(&p);

		if (t < 0 || *p || t > 64)
			return fail(err, errlen, "placement: tier=%s: not a tier number (0 is the fastest)",
				    v + 5);
		c->placement = TMM_PLACE_TIER;
		c->tier = (int)t;
		return 0;
	}
	return fail(err, errlen,
		    "placement: '%s' is not first-touch, interleave=NODES, membind=NODES, preferred=NODES or tier=N",
		    v);
}

static int parse_item(char *item, const struct tmm_nodemask *allowed,
		      struct tmm_conf *c, char *err, size_t errlen)
{
	char *colon = strchr(item, ':'), *key, *v;
	unsigned int ms;
	double d;
	const char *e;

	if (!colon)
		return fail(err, errlen, "'%s' is not key:value (known keys: %s)", trim(item),
			    tmm_conf_keys);
	*colon = '\0';
	key = trim(item);
	v = trim(colon + 1);
	if (!strcmp(key, "fast-budget")) {
		uint64_t b;
		double share;

		if (tmm_parse_size(v, &b, &share))
			return fail(err, errlen,
				    "fast-budget: '%s' is not a size (bytes with an optional K, M, G or T suffix, e.g. 512M) or a percentage of the resident memory (e.g. 25%%)",
				    v);
		c->budget_bytes = b;
		c->budget_share = share;
	} else if (!strcmp(key, "backend")) {
		if (strcmp(v, "auto") && strcmp(v, "perf") && strcmp(v, "scan") &&
		    strcmp(v, "damon") && strcmp(v, "none"))
			return fail(err, errlen,
				    "backend: '%s' is not auto, perf, scan, damon or none", v);
		snprintf(c->backend, sizeof(c->backend), "%s", v);
	} else if (!strcmp(key, "interval")) {
		if (tmm_parse_ms(v, &ms) || ms < 10 || ms > 60000)
			return fail(err, errlen,
				    "interval: '%s' is not a duration from 10ms to 60s (e.g. 500ms, 2s; a bare number is milliseconds)",
				    v);
		c->epoch_ms = ms;
	} else if (!strcmp(key, "rate-limit")) {
		if (!strcmp(v, "none")) {
			c->rate_limit_mib_s = -1;
		} else if (parse_num(v, &d, &e) || *e || !(d > 0)) {
			return fail(err, errlen,
				    "rate-limit: '%s' is not a positive number of MiB/s or none", v);
		} else {
			c->rate_limit_mib_s = d;
		}
	} else if (!strcmp(key, "cpu-quota")) {
		if (!strcmp(v, "none")) {
			c->cpu_quota = -1;
		} else if (parse_num(v, &d, &e) || (*e && strcmp(e, "%")) ||
			   !(d > 0) || (*e ? d > 100 * 1024 : d > 1024)) {
			return fail(err, errlen,
				    "cpu-quota: '%s' is not a share of one CPU (e.g. 0.05 or 5%%) or none", v);
		} else {
			c->cpu_quota = *e ? d / 100 : d;
		}
	} else if (!strcmp(key, "backoff")) {
		unsigned int n;

		if (tmm_parse_backoff(v, &n))
			return fail(err, errlen,
				    "backoff: '%s' is not a whole number from 1 to %d (how many times slower the runtime may get once placement has settled; 1: never slower)",
				    v, TIERMM_RUNTIME_BACKOFF_MAX);
		c->backoff_max = n;
	} else if (!strcmp(key, "placement")) {
		return parse_placement(v, allowed, c, err, errlen);
	} else if (!strcmp(key, "pt")) {
		if (!strcmp(v, "none"))
			c->pt = TMM_PT_NONE;
		else if (!strcmp(v, "once"))
			c->pt = TMM_PT_ONCE;
		else if (!strcmp(v, "follow"))
			c->pt = TMM_PT_FOLLOW;
		else
			return fail(err, errlen, "pt: '%s' is not follow, once or none", v);
	} else if (!strcmp(key, "stats")) {
		if (!*v || strlen(v) >= sizeof(c->stats))
			return fail(err, errlen, "stats: needs a file name");
		if (check_pattern(v))
			return fail(err, errlen,
				    "stats: '%s': the only %% sequences are %%p (the process id) and %%%%",
				    v);
		snprintf(c->stats, sizeof(c->stats), "%s", v);
	} else if (!strcmp(key, "stats-format")) {
		if (!strcmp(v, "json"))
			c->stats_format = TMM_FMT_JSON;
		else if (!strcmp(v, "csv"))
			c->stats_format = TMM_FMT_CSV;
		else
			return fail(err, errlen, "stats-format: '%s' is not json or csv", v);
	} else if (!strcmp(key, "stats-interval")) {
		if (tmm_parse_ms(v, &ms) || ms < TMM_MIN_STATS_MS || ms > TMM_MAX_STATS_MS)
			return fail(err, errlen,
				    "stats-interval: '%s' is not a duration from 10ms to 1h (e.g. 1s)",
				    v);
		c->stats_ms = ms;
	} else if (!strcmp(key, "follow-fork") || !strcmp(key, "follow-exec")) {
		bool *b = !strcmp(key, "follow-fork") ? &c->follow_fork : &c->follow_exec;

		if (parse_bool(v, b))
			return fail(err, errlen, "%s: '%s' is not 0 or 1", key, v);
	} else if (!strcmp(key, "topo")) {
		if (!*v || strlen(v) >= sizeof(c->topo))
			return fail(err, errlen, "topo: needs a file name (an XML cache from 'tiermm topo --xml FILE')");
		snprintf(c->topo, sizeof(c->topo), "%s", v);
	} else {
		return fail(err, errlen, "unknown key '%s' (known keys: %s)", key, tmm_conf_keys);
	}
	return 0;
}

int tmm_conf_parse(const char *s, const struct tmm_nodemask *allowed,
		   struct tmm_conf *c, char *err, size_t errlen)
{
	char *buf, *p;
	int ret = 0;

	if (!s)
		return 0;
	while (*s == ' ')
		s++;
	if (!*s)
		return 0;
	buf = strdup(s);
	if (!buf)
		return fail(err, errlen, "out of memory");
	p = buf;
	while (p) {
		char *q = p, *next = NULL;

		/* The item ends at the first comma that starts a new item. */
		while ((q = strchr(q, ','))) {
			if (item_start(q + 1)) {
				*q = '\0';
				next = q + 1;
				break;
			}
			q++;
		}
		if (!*trim(p)) {
			ret = fail(err, errlen, "empty item (two commas in a row, or a comma at the end)");
			break;
		}
		ret = parse_item(p, allowed, c, err, errlen);
		if (ret)
			break;
		p = next;
	}
	free(buf);
	return ret;
}

void tmm_conf_placement(const struct tmm_conf *c, char *buf, size_t len)
{
	char nodes[200];

	tmm_nodes_format(&c->nodes, nodes, sizeof(nodes));
	switch (c->placement) {
	case TMM_PLACE_INTERLEAVE:
		snprintf(buf, len, "interleave=%s", nodes);
		break;
	case TMM_PLACE_MEMBIND:
		snprintf(buf, len, "membind=%s", nodes);
		break;
	case TMM_PLACE_PREFERRED:
		snprintf(buf, len, "preferred=%s", nodes);
		break;
	case TMM_PLACE_TIER:
		snprintf(buf, len, "tier=%d", c->tier);
		break;
	default:
		snprintf(buf, len, "first-touch");
	}
}

int tmm_stats_path(const char *pattern, int pid, bool child, char *out, size_t len)
{
	size_t n = 0;
	bool has_pid = false;

	for (const char *p = pattern; *p; p++) {
		char tmp[24];
		const char *add = tmp;

		if (p[0] == '%' && p[1] == 'p') {
			snprintf(tmp, sizeof(tmp), "%d", pid);
			has_pid = true;
			p++;
		} else if (p[0] == '%' && p[1] == '%') {
			strcpy(tmp, "%");
			p++;
		} else {
			tmp[0] = *p;
			tmp[1] = '\0';
		}
		if (n + strlen(add) >= len)
			return -ENAMETOOLONG;
		memcpy(out + n, add, strlen(add) + 1);
		n += strlen(add);
	}
	if (!n && len)
		out[0] = '\0';
	if (child && !has_pid) {
		int k = snprintf(out + n, len - n, ".%d", pid);

		if (k < 0 || (size_t)k >= len - n)
			return -ENAMETOOLONG;
	}
	return 0;
}
