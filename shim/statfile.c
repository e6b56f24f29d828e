// SPDX-License-Identifier: LGPL-2.1-or-later
/* Statistics records (JSON lines, CSV) and numa_maps residency (statfile.h). */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "statfile.h"

void tmm_rec_clear(struct tmm_rec *r)
{
	r->n = 0;
	r->truncated = false;
}

static struct tmm_field *put(struct tmm_rec *r, const char *key)
{
	struct tmm_field *f;

	if (r->n >= TMM_REC_MAX) {
		r->truncated = true;
		return NULL;
	}
	f = &r->f[r->n++];
	snprintf(f->key, sizeof(f->key), "%s", key);
	f->str = false;
	return f;
}

void tmm_rec_put_u64(struct tmm_rec *r, const char *key, uint64_t v)
{
	struct tmm_field *f = put(r, key);

	if (f)
		snprintf(f->val, sizeof(f->val), "%" PRIu64, v);
}

void tmm_rec_put_dbl(struct tmm_rec *r, const char *key, double v)
{
	struct tmm_field *f = put(r, key);

	if (f)
		snprintf(f->val, sizeof(f->val), "%.3f", isfinite(v) ? v : 0.0);
}

void tmm_rec_put_str(struct tmm_rec *r, const char *key, const char *v)
{
	struct tmm_field *f = put(r, key);

	if (!f)
		return;
	snprintf(f->val, sizeof(f->val), "%s", v ? v : "");
	f->str = true;
}

const char *tmm_rec_get(const struct tmm_rec *r, const char *key)
{
	for (int i = 0; i < r->n; i++)
		if (!strcmp(r->f[i].key, key))
			return r->f[i].val;
	return NULL;
}

double tmm_rec_num(const struct tmm_rec *r, const char *key, double def)
{
	const char *v = tmm_rec_get(r, key);
	char *e;
	double d;

	if (!v || !*v)
		return def;
	d = strtod(v, &e);
	return *e || !isfinite(d) ? def : d;
}

/* ---- Writing ---------------------------------------------------------- */

struct out {
	char *buf;
	size_t len, n;
	bool full;
};

static void out_c(struct out *o, char c)
{
	if (o->n + 1 < o->len)
		o->buf[o->n++] = c;
	else
		o->full = true;
}

static void out_s(struct out *o, const char *s)
{
	while (*s)
		out_c(o, *s++);
}

static void out_json_str(struct out *o, const char *s)
{
	out_c(o, '"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\') {
			out_c(o, '\\');
			out_c(o, (char)c);
		} else if (c < 0x20) {
			char esc[8];

			snprintf(esc, sizeof(esc), "\\u%04x", c);
			out_s(o, esc);
		} else {
			out_c(o, (char)c);
		}
	}
	out_c(o, '"');
}

static void out_csv_str(struct out *o, const char *s)
{
	if (!strpbrk(s, ",\"\n\r")) {
		out_s(o, s);
		return;
	}
	out_c(o, '"');
	for (; *s; s++) {
		if (*s == '"')
			out_c(o, '"');
		out_c(o, *s == '\n' || *s == '\r' ? ' ' : *s);
	}
	out_c(o, '"');
}

int tmm_rec_format(const struct tmm_rec *r, int fmt, bool header, char *buf, size_t len)
{
	struct out o = { buf, len, 0, false };

	if (fmt == TMM_FMT_CSV) {
		if (header) {
			for (int i = 0; i < r->n; i++) {
				if (i)
					out_c(&o, ',');
				out_s(&o, r->f[i].key);
			}
			out_c(&o, '\n');
		}
		for (int i = 0; i < r->n; i++) {
			if (i)
				out_c(&o, ',');
			out_csv_str(&o, r->f[i].val);
		}
	} else {
		out_c(&o, '{');
		for (int i = 0; i < r->n; i++) {
			if (i)
				out_c(&o, ',');
			out_json_str(&o, r->f[i].key);
			out_c(&o, ':');
			if (r->f[i].str)
				out_json_str(&o, r->f[i].val);
			else
				out_s(&o, r->f[i].val);
		}
		out_c(&o, '}');
	}
	out_c(&o, '\n');
	if (o.full || !len)
		return -ENOSPC;
	buf[o.n] = '\0';
	return (int)o.n;
}

/* ---- Reading ---------------------------------------------------------- */

static void skip_ws(const char **p)
{
	while (**p == ' ' || **p == '\t')
		(*p)++;
}

/* A JSON string at *p into out (len bytes); escapes decoded, \u as '?'. */
static int json_str(const char **p, char *out, size_t len)
{
	const char *s = *p;
	size_t n = 0;

	if (*s++ != '"')
		return -EINVAL;
	while (*s && *s != '"') {
		char c = *s++;

		if (c == '\\') {
			c = *s++;
			switch (c) {
			case 'n':
				c = '\n';
				break;
			case 't':
				c = '\t';
				break;
			case 'r':
				c = '\r';
				break;
			case 'b':
				c = '\b';
				break;
			case 'f':
				c = '\f';
				break;
			case '"':
			case '\\':
			case '/':
				break;
			case 'u':
				for (int i = 0; i < 4; i++)
					if (!isxdigit((unsigned char)*s++))
						return -EINVAL;
				c = '?';
				break;
			default:
				return -EINVAL;
			}
		}
		if (n + 1 < len)
			out[n++] = c;
	}
	if (*s != '"')
		return -EINVAL;
	out[n] = '\0';
	*p = s + 1;
	return 0;
}

int tmm_rec_parse_json(const char *line, struct tmm_rec *r)
{
	const char *p = line;

	tmm_rec_clear(r);
	skip_ws(&p);
	if (*p++ != '{')
		return -EINVAL;
	skip_ws(&p);
	if (*p == '}')
		return 0;
	for (;;) {
		struct tmm_field f;

		skip_ws(&p);
		if (json_str(&p, f.key, sizeof(f.key)))
			return -EINVAL;
		skip_ws(&p);
		if (*p++ != ':')
			return -EINVAL;
		skip_ws(&p);
		if (*p == '"') {
			if (json_str(&p, f.val, sizeof(f.val)))
				return -EINVAL;
			f.str = true;
		} else {
			size_t n = 0;

			while (*p && *p != ',' && *p != '}' && *p != ' ') {
				if (n + 1 < sizeof(f.val))
					f.val[n++] = *p;
				p++;
			}
			f.val[n] = '\0';
			f.str = false;
			if (!n)
				return -EINVAL;
		}
		if (r->n < TMM_REC_MAX)
			r->f[r->n++] = f;
		else
			r->truncated = true;
		skip_ws(&p);
		if (*p == ',') {
			p++;
			continue;
		}
		if (*p == '}')
			break;
		return -EINVAL;
	}
	p++;
	while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
		p++;
	return *p ? -EINVAL : 0;
}

/* The CSV fields of line, in order, into r (keys left empty). */
static int csv_fields(const char *line, struct tmm_rec *r)
{
	const char *p = line;

	tmm_rec_clear(r);
	for (;;) {
		struct tmm_field *f = r->n < TMM_REC_MAX ? &r->f[r->n] : NULL;
		char tmp[TMM_VAL_LEN];
		size_t n = 0;

		if (*p == '"') {
			p++;
			for (;;) {
				if (!*p || *p == '\n')
					return -EINVAL;
				if (*p == '"' && p[1] != '"')
					break;
				if (*p == '"')
					p++;
				if (n + 1 < sizeof(tmp))
					tmp[n++] = *p;
				p++;
			}
			p++;
		} else {
			while (*p && *p != ',' && *p != '\n' && *p != '\r') {
				if (n + 1 < sizeof(tmp))
					tmp[n++] = *p;
				p++;
			}
		}
		tmp[n] = '\0';
		if (f) {
			f->key[0] = '\0';
			memcpy(f->val, tmp, n + 1);
			f->str = true;
			r->n++;
		} else {
			r->truncated = true;
		}
		if (*p == ',') {
			p++;
			continue;
		}
		if (!*p || *p == '\n' || *p == '\r')
			return 0;
		return -EINVAL;
	}
}

int tmm_rec_parse_csv_header(const char *line, struct tmm_rec *header)
{
	return csv_fields(line, header);
}

int tmm_rec_parse_csv(const char *line, const struct tmm_rec *header, struct tmm_rec *r)
{
	if (csv_fields(line, r) || r->n != header->n)
		return -EINVAL;
	for (int i = 0; i < r->n; i++) {
		memcpy(r->f[i].key, header->f[i].val, sizeof(r->f[i].key));
		r->f[i].key[sizeof(r->f[i].key) - 1] = '\0';
		char *e;

		/* Numbers stay unquoted when written back as JSON. */
		strtod(r->f[i].val, &e);
		r->f[i].str = !r->f[i].val[0] || *e;
	}
	return 0;
}

int tmm_stats_foreach(const char *path, tmm_rec_fn fn, void *ctx, int *bad)
{
	struct tmm_rec *rec, *header;
	FILE *f = fopen(path, "re");
	char *line = NULL;
	size_t cap = 0;
	int ret = 0, nbad = 0;
	bool have_header = false;

	if (!f)
		return -errno;
	rec = malloc(sizeof(*rec));
	header = malloc(sizeof(*header));
	if (!rec || !header) {
		ret = -ENOMEM;
		goto out;
	}
	while (getline(&line, &cap, f) > 0) {
		const char *p = line;
		bool complete = strchr(line, '\n') != NULL;

		skip_ws(&p);
		if (!*p || *p == '\n')
			continue;
		if (*p == '{') {
			if (!complete || tmm_rec_parse_json(p, rec)) {
				nbad++;
				continue;
			}
		} else if (isalpha((unsigned char)*p)) {
			if (!complete || csv_fields(p, header)) {
				have_header = false;
				nbad++;
			} else {
				have_header = true;
			}
			continue;
		} else if (!have_header || !complete ||
			   tmm_rec_parse_csv(p, header, rec)) {
			nbad++;
			continue;
		}
		ret = fn(rec, ctx);
		if (ret)
			break;
	}
out:
	free(line);
	free(rec);
	free(header);
	fclose(f);
	if (bad)
		*bad = nbad;
	return ret;
}

/* ---- /proc ------------------------------------------------------------ */

static FILE *open_proc(int pid, const char *what)
{
	char path[64];

	if (pid)
		snprintf(path, sizeof(path), "/proc/%d/%s", pid, what);
	else
		snprintf(path, sizeof(path), "/proc/self/%s", what);
	return fopen(path, "re");
}

int tmm_numa_maps(int pid, struct tmm_numa_usage *u)
{
	FILE *f = open_proc(pid, "numa_maps");
	char *line = NULL;
	size_t cap = 0;
	int err = 0;

	memset(u, 0, sizeof(*u));
	if (!f)
		return errno == ENOENT ? -ESRCH : -errno;
	errno = 0;
	while (getline(&line, &cap, f) > 0) {
		uint64_t pages[64], kb = 4;
		int nodes[64], nr = 0;
		bool file = false, huge = false;
		char *save = NULL, *tok;

		u->mappings++;
		/* "addr policy [file=...] [anon=N] ... N0=k N1=k kernelpagesize_kB=4" */
		for (tok = strtok_r(line, " \n", &save); tok; tok = strtok_r(NULL, " \n", &save)) {
			if (!strncmp(tok, "file=", 5)) {
				file = true;
			} else if (!strcmp(tok, "huge")) {
				huge = true;
			} else if (!strncmp(tok, "kernelpagesize_kB=", 18)) {
				kb = strtoull(tok + 18, NULL, 10);
			} else if (tok[0] == 'N' && isdigit((unsigned char)tok[1]) && nr < 64) {
				char *eq;
				long n = strtol(tok + 1, &eq, 10);

				if (*eq != '=' || n < 0 || n >= TMM_MAX_NODES)
					continue;
				nodes[nr] = (int)n;
				pages[nr++] = strtoull(eq + 1, NULL, 10);
			}
		}
		for (int i = 0; i < nr; i++) {
			uint64_t b = pages[i] * kb * 1024;
			int n = nodes[i];

			u->node[n] += b;
			u->total += b;
			if (huge)
				u->huge[n] += b;
			else if (file)
				u->file[n] += b;
			else
				u->anon[n] += b;
			if (n + 1 > u->nr_nodes)
				u->nr_nodes = n + 1;
		}
	}
	if (ferror(f))
		err = errno ? -errno : -EIO;
	free(line);
	fclose(f);
	return err;
}

int tmm_proc_stat_field(int pid, int field, uint64_t *v)
{
	FILE *f = open_proc(pid, "stat");
	char buf[2048], *p;
	unsigned long long x;
	size_t n;

	if (field < 3)
		return -EINVAL;
	if (!f)
		return errno == ENOENT ? -ESRCH : -errno;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* The command name may hold anything: fields start after the last ')'. */
	p = strrchr(buf, ')');
	if (!p)
		return -EINVAL;
	p++;
	for (int i = 3; i < field; i++) {
		while (*p == ' ')
			p++;
		while (*p && *p != ' ')
			p++;
	}
	if (sscanf(p, " %llu", &x) != 1)
		return -EINVAL;
	*v = x;
	return 0;
}

int tmm_proc_starttime(int pid, uint64_t *ticks)
{
	return tmm_proc_stat_field(pid, 22, ticks);
}
