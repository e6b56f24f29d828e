// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * tiermm plot STATS: one self-contained SVG picture of a statistics file
 * written by libtiermm-preload.so (tiermm run --stats FILE): resident
 * memory per tier with the fast-tier budget and the hot set, the share of
 * the accesses the hotness backend observed that were to the fast tier,
 * and the bytes the runtime promoted and demoted, on one time axis.
 *
 * One process is drawn (a file may hold several). Its time axis is the
 * shim's t, kept increasing across an exec (the new image's shim starts
 * again from 0: the wall-clock gap is added instead), and the promoted and
 * demoted counters, which restart with it, are added up.
 *
 * The picture is made in memory, then written to a temporary file in the
 * output's directory that is renamed over the output: a failed run leaves
 * no file, and never a partial one. Text from the file or the command line
 * is escaped (bytes that are not UTF-8 become U+FFFD); numbers are written
 * in the "C" locale whatever the environment says.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <tiermm.h>

#include "cli.h"
#include "statfile.h"

#define DEF_WIDTH 960
#define DEF_HEIGHT 720
#define MIN_WIDTH 560
#define MIN_HEIGHT 400
#define MAX_SIZE 8000
#define MAX_SERIES 128		/* columns kept per point */
#define MAX_PIDS 64		/* distinct pids remembered for messages */

void usage_plot(FILE *f)
{
	fputs("Usage: tiermm plot [OPTIONS] STATS\n"
	      "Draw the statistics file STATS that libtiermm-preload.so writes (tiermm run\n"
	      "--stats FILE: JSON lines, or CSV) as one SVG picture over time: resident memory\n"
	      "per tier with the fast-tier budget and the hot set, the share of the accessed\n"
	      "pages the hotness backend observed that were on the fast tier (when the file\n"
	      "has it), and the bytes the runtime promoted and demoted. One process is drawn.\n"
	      "\n"
	      "Options:\n"
	      "  -o, --output FILE   write the SVG to FILE (default: STATS with its extension\n"
	      "                      replaced by .svg; - for standard output)\n"
	      "      --pid PID       draw process PID (default: the first one in STATS)\n"
	      "      --title TEXT    the picture's title (default: command, pid and backend)\n"
	      "      --width PX      width in pixels, 560 to 8000 (default 960)\n"
	      "      --height PX     height in pixels, 400 to 8000 (default 720)\n"
	      "  -h, --help          show this help\n"
	      "\n"
	      "Exit status: 0 on success, 1 when STATS cannot be read or has no usable record\n"
	      "of the process, or the picture cannot be written, 2 on a bad command line.\n", f);
}

enum {
	OPT_PID = 256,
	OPT_TITLE,
	OPT_WIDTH,
	OPT_HEIGHT,
};

/* ---- Reading ------------------------------------------------------------- */

struct series {
	char key[TMM_KEY_LEN];
	double *v;		/* one per point; NAN: no value in that record */
};

struct plot_data {
	long want;		/* --pid, or -1: the first process */
	long pid;		/* the process drawn */
	bool chosen;
	size_t records;		/* of every process */
	size_t of_pid;		/* of the process drawn */
	size_t no_time;		/* of those, without t or time */
	long pids[MAX_PIDS];	/* distinct, in order of appearance */
	int nr_pids;
	bool more_pids;
	double *x;		/* time of each point, seconds */
	size_t n, cap;
	struct series s[MAX_SERIES];
	int ns;
	double last_x, last_t, last_time;
	char backend[64], state[32], placement[64], comm[128];
	int err;
};

static const char *const plain_keys[] = {
	"rss_bytes", "budget_bytes", "hot_set_bytes", "promoted_bytes", "demoted_bytes",
	"fast_access_share",
};

/* key is PREFIX<N>_bytes: N in *idx. */
static bool indexed_key(const char *key, const char *prefix, int *idx)
{
	size_t len = strlen(prefix);
	char *end;
	long v;

	if (strncmp(key, prefix, len) || !isdigit((unsigned char)key[len]))
		return false;
	v = strtol(key + len, &end, 10);
	if (strcmp(end, "_bytes") || v < 0 || v > 4095)
		return false;
	if (idx)
		*idx = (int)v;
	return true;
}

static bool kept_key(const char *key)
{
	for (size_t i = 0; i < sizeof(plain_keys) / sizeof(plain_keys[0]); i++)
		if (!strcmp(key, plain_keys[i]))
			return true;
	return indexed_key(key, "tier", NULL) || indexed_key(key, "node", NULL);
}

/* A field's value as a number; NAN when empty, "nan", null or not a number. */
static double value_of(const char *v)
{
	char *end;
	double d;

	if (!v || !*v)
		return NAN;
	d = strtod(v, &end);
	return *end || !isfinite(d) ? NAN : d;
}

static long pid_of(const struct tmm_rec *r)
{
	double p = value_of(tmm_rec_get(r, "pid"));

	return p >= 0 && p <= INT_MAX ? (long)p : -1;
}

static void note_pid(struct plot_data *d, long pid)
{
	for (int i = 0; i < d->nr_pids; i++)
		if (d->pids[i] == pid)
			return;
	if (d->nr_pids < MAX_PIDS)
		d->pids[d->nr_pids++] = pid;
	else
		d->more_pids = true;
}

/* "4242, 4243" (with ", ..." when there were more); except: left out. */
static void pid_list(const struct plot_data *d, long except, char *out, size_t len)
{
	size_t n = 0;

	out[0] = '\0';
	for (int i = 0; i < d->nr_pids && n < len; i++) {
		if (d->pids[i] == except)
			continue;
		if (d->pids[i] < 0)
			n += (size_t)snprintf(out + n, len - n, "%s(none)", n ? ", " : "");
		else
			n += (size_t)snprintf(out + n, len - n, "%s%ld", n ? ", " : "", d->pids[i]);
	}
	if (d->more_pids && n < len)
		snprintf(out + n, len - n, ", ...");
}

static int grow(struct plot_data *d)
{
	size_t cap = d->cap ? d->cap * 2 : 256;
	double *x = realloc(d->x, cap * sizeof(*x));

	if (!x)
		return -ENOMEM;
	d->x = x;
	for (int i = 0; i < d->ns; i++) {
		double *v = realloc(d->s[i].v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		d->s[i].v = v;
	}
	d->cap = cap;
	return 0;
}

/* The series of key, made (no value in earlier points) when new. */
static struct series *series_get(struct plot_data *d, const char *key)
{
	struct series *s;

	for (int i = 0; i < d->ns; i++)
		if (!strcmp(d->s[i].key, key))
			return &d->s[i];
	if (d->ns == MAX_SERIES)
		return NULL;
	s = &d->s[d->ns];
	s->v = malloc(d->cap * sizeof(*s->v));
	if (!s->v) {
		d->err = -ENOMEM;
		return NULL;
	}
	for (size_t i = 0; i <= d->n; i++)
		s->v[i] = NAN;
	snprintf(s->key, sizeof(s->key), "%s", key);
	d->ns++;
	return s;
}

static const struct series *series_find(const struct plot_data *d, const char *key)
{
	for (int i = 0; i < d->ns; i++)
		if (!strcmp(d->s[i].key, key))
			return &d->s[i];
	return NULL;
}

static void copy_field(const struct tmm_rec *r, const char *key, char *out, size_t len)
{
	const char *v = tmm_rec_get(r, key);

	if (v)
		snprintf(out, len, "%s", v);
}

static int collect(const struct tmm_rec *r, void *ctx)
{
	struct plot_data *d = ctx;
	long pid = pid_of(r);
	double t, tm, x;

	d->records++;
	note_pid(d, pid);
	if (!d->chosen) {
		if (d->want >= 0 && pid != d->want)
			return 0;
		d->pid = pid;
		d->chosen = true;
	}
	if (pid != d->pid)
		return 0;
	d->of_pid++;
	copy_field(r, "backend", d->backend, sizeof(d->backend));
	copy_field(r, "state", d->state, sizeof(d->state));
	copy_field(r, "placement", d->placement, sizeof(d->placement));
	copy_field(r, "comm", d->comm, sizeof(d->comm));
	copy_field(r, "command", d->comm, sizeof(d->comm));

	t = value_of(tmm_rec_get(r, "t"));
	tm = value_of(tmm_rec_get(r, "time"));
	if (isnan(t) && isnan(tm)) {
		d->no_time++;
		return 0;
	}
	if (!d->n) {
		x = isfinite(t) ? t : 0;
	} else if (isfinite(t) && isfinite(d->last_t) && t >= d->last_t) {
		x = d->last_x + (t - d->last_t);
	} else {
		/* t restarted (another program image) or is missing: the wall clock. */
		x = d->last_x;
		if (isfinite(tm) && isfinite(d->last_time) && tm > d->last_time)
			x += tm - d->last_time;
	}
	if (d->n == d->cap) {
		d->err = grow(d);
		if (d->err)
			return 1;
	}
	d->x[d->n] = x;
	for (int i = 0; i < d->ns; i++)
		d->s[i].v[d->n] = NAN;
	for (int i = 0; i < r->n; i++) {
		struct series *s;

		if (!kept_key(r->f[i].key))
			continue;
		s = series_get(d, r->f[i].key);
		if (!s) {
			if (d->err)
				return 1;
			continue;
		}
		s->v[d->n] = value_of(r->f[i].val);
	}
	d->n++;
	d->last_x = x;
	d->last_t = t;
	d->last_time = tm;
	return 0;
}

static void data_free(struct plot_data *d)
{
	free(d->x);
	for (int i = 0; i < d->ns; i++)
		free(d->s[i].v);
}

/* A counter that restarts (a new program image) goes on from where it was. */
static void accumulate(double *v, size_t n)
{
	double base = 0, prev = 0;

	for (size_t i = 0; i < n; i++) {
		if (isnan(v[i]))
			continue;
		if (v[i] < prev)
			base += prev;
		prev = v[i];
		v[i] += base;
	}
}

/* ---- Drawing ------------------------------------------------------------- */

static const char *const palette[] = {
	"#0072b2", "#d55e00", "#009e73", "#56b4e9", "#e69f00", "#000000", "#999999",
	"#f0e442",
};
#define COLOR_BUDGET "#444444"
#define COLOR_HOT "#cc79a7"
#define COLOR_PROMOTED "#0072b2"
#define COLOR_DEMOTED "#d55e00"
#define COLOR_NOTE "#555555"

/* Text as XML character data or attribute value: escaped, valid UTF-8. */
static void xml_text(FILE *f, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	while (*p) {
		unsigned char c = *p;
		int len = 0;

		if (c < 0x80) {
			if (c == '&')
				fputs("&amp;", f);
			else if (c == '<')
				fputs("&lt;", f);
			else if (c == '>')
				fputs("&gt;", f);
			else if (c == '"')
				fputs("&quot;", f);
			else if (c == '\'')
				fputs("&apos;", f);
			else if (c < 0x20)
				fputc(' ', f);	/* no control characters in XML 1.0 */
			else
				fputc(c, f);
			p++;
			continue;
		}
		/* The length of a well-formed UTF-8 sequence (RFC 3629), else 0. */
		if (c >= 0xc2 && c <= 0xdf)
			len = 2;
		else if (c >= 0xe0 && c <= 0xef)
			len = 3;
		else if (c >= 0xf0 && c <= 0xf4)
			len = 4;
		for (int i = 1; i < len; i++)
			if ((p[i] & 0xc0) != 0x80)
				len = 0;
		if ((c == 0xe0 && len && p[1] < 0xa0) || (c == 0xed && len && p[1] > 0x9f) ||
		    (c == 0xf0 && len && p[1] < 0x90) || (c == 0xf4 && len && p[1] > 0x8f))
			len = 0;	/* overlong, a surrogate, or above U+10FFFF */
		if (c == 0xef && len && p[1] == 0xbf && (p[2] == 0xbe || p[2] == 0xbf))
			len = 0;	/* U+FFFE and U+FFFF are not XML characters */
		if (!len) {
			fputs("\xef\xbf\xbd", f);
			p++;
			continue;
		}
		fwrite(p, 1, (size_t)len, f);
		p += len;
	}
}

/* Rough width of text in a sans-serif font of size px (characters, not bytes). */
static double text_width(const char *s, double px)
{
	size_t chars = 0;

	for (; *s; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			chars++;
	return (double)chars * px * 0.55;
}

/*
 * One line of text at x, y (attrs: more attributes, from a literal), in a
 * smaller font when it would be wider than maxw pixels, rather than cut or
 * running off the picture (textLength would do it, but not every renderer
 * has it).
 */
static void text_line(FILE *f, double x, double y, double px, const char *attrs, const char *s,
		      double maxw)
{
	double w = text_width(s, px);

	if (w > maxw)
		px = fmax(6, px * maxw / w);
	fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"%.1f\"%s>", x, y, px, attrs);
	xml_text(f, s);
	fputs("</text>\n", f);
}

/* v with at most dec decimals, without trailing zeros. */
static void fmt_num(double v, int dec, char *out, size_t len)
{
	char *p;

	if (fabs(v) < 1e-12)
		v = 0;		/* no "-0" */
	snprintf(out, len, "%.*f", dec, v);
	if (!strchr(out, '.'))
		return;
	p = out + strlen(out) - 1;
	while (*p == '0')
		*p-- = '\0';
	if (*p == '.')
		*p = '\0';
}

static const char *const byte_units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };

struct axis {
	double lo, hi;		/* in display units */
	double step;
	double unit;		/* values per display unit (bytes per MiB, say) */
	const char *uname;	/* NULL: no unit */
	int dec;
};

static double nice_step(double span, int ticks)
{
	double raw = span / (ticks > 0 ? ticks : 1), mag, r;

	if (!(raw > 0) || !isfinite(raw))
		return 1;
	mag = pow(10, floor(log10(raw)));
	r = raw / mag;
	return (r <= 1 ? 1 : r <= 2 ? 2 : r <= 2.5 ? 2.5 : r <= 5 ? 5 : 10) * mag;
}

static int decimals_for(double step)
{
	int dec = 0;

	while (dec < 9) {
		double scaled = step * pow(10, dec);

		if (fabs(scaled - nearbyint(scaled)) < 1e-6 * fmax(1, scaled))
			break;
		dec++;
	}
	return dec;
}

/* 0 to at least max bytes, in the unit that keeps the numbers below 1024. */
static void axis_bytes(struct axis *a, double max, int ticks)
{
	double top;
	int u = 0;

	a->unit = 1;
	while (u < 6 && max >= a->unit * 1024) {
		a->unit *= 1024;
		u++;
	}
	if (!(max > 0)) {
		u = 2;
		a->unit = 1048576;
	}
	a->uname = byte_units[u];
	a->lo = 0;
	top = max / a->unit;
	if (!(top > 0))
		top = 1;
	a->step = nice_step(top, ticks);
	if (!u && a->step < 1)
		a->step = 1;
	a->hi = ceil(top / a->step - 1e-9) * a->step;
	if (a->hi <= 0)
		a->hi = a->step;
	a->dec = decimals_for(a->step);
}

static void axis_linear(struct axis *a, double lo, double hi, int ticks)
{
	a->lo = lo;
	a->hi = hi;
	a->unit = 1;
	a->uname = NULL;
	a->step = nice_step(hi - lo, ticks);
	a->dec = decimals_for(a->step);
}

/* The plot area of a panel and its axes. */
struct frame {
	double x0, x1, yt, yb;
	struct axis xa, ya;
};

static double xpix(const struct frame *fr, double x)
{
	return fr->x0 + (x - fr->xa.lo) / (fr->xa.hi - fr->xa.lo) * (fr->x1 - fr->x0);
}

static double ypix(const struct frame *fr, double v)
{
	return fr->yb - (v / fr->ya.unit - fr->ya.lo) / (fr->ya.hi - fr->ya.lo) *
	       (fr->yb - fr->yt);
}

static void draw_frame(FILE *f, const struct frame *fr, bool xlabels)
{
	char num[64];

	fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#fafafa\" stroke=\"#999999\"/>\n",
		fr->x0, fr->yt, fr->x1 - fr->x0, fr->yb - fr->yt);
	for (int k = 0;; k++) {
		double v = fr->ya.lo + k * fr->ya.step, y;

		if (v > fr->ya.hi + 1e-9 * fr->ya.step || k > 100)
			break;
		y = ypix(fr, v * fr->ya.unit);
		if (k && v < fr->ya.hi - 1e-9 * fr->ya.step)
			fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e0e0e0\"/>\n",
				fr->x0, y, fr->x1, y);
		fmt_num(v, fr->ya.dec, num, sizeof(num));
		fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" text-anchor=\"end\">%s%s%s</text>\n",
			fr->x0 - 6, y + 4, num, fr->ya.uname ? " " : "",
			fr->ya.uname ? fr->ya.uname : "");
	}
	for (int k = (int)ceil(fr->xa.lo / fr->xa.step - 1e-9);; k++) {
		double v = k * fr->xa.step, x;

		if (v > fr->xa.hi + 1e-9 * fr->xa.step || k > 100000)
			break;
		x = xpix(fr, v);
		if (x > fr->x0 + 0.5 && x < fr->x1 - 0.5)
			fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e0e0e0\"/>\n",
				x, fr->yt, x, fr->yb);
		if (xlabels) {
			fmt_num(v, fr->xa.dec, num, sizeof(num));
			fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" text-anchor=\"middle\">%s</text>\n",
				x, fr->yb + 16, num);
		}
	}
}

/* Drawing a line with gaps: one subpath per run of values. */
struct pen {
	FILE *f;
	int in_sub;		/* points in the current subpath */
	bool any;
};

static void pen_point(struct pen *p, double x, double y)
{
	fprintf(p->f, "%s%.1f %.1f", p->in_sub ? " L" : p->any ? " M" : "M", x, y);
	p->in_sub++;
	p->any = true;
}

static void pen_up(struct pen *p)
{
	/* A lone point, which no segment shows: a small ring around it. */
	if (p->in_sub == 1)
		fputs(" m-2.5 0 a2.5 2.5 0 1 0 5 0 a2.5 2.5 0 1 0 -5 0", p->f);
	p->in_sub = 0;
}

/* The points of one pixel column: first, lowest, highest and last, in order. */
struct column {
	long col;
	size_t first, lo, hi, last;
	bool used;
};

static void column_flush(struct pen *p, const struct frame *fr, struct column *c,
			 const double *x, const double *v)
{
	size_t idx[4] = { c->first, c->lo, c->hi, c->last };

	if (!c->used)
		return;
	for (int i = 1; i < 4; i++)
		for (int j = i; j > 0 && idx[j - 1] > idx[j]; j--) {
			size_t tmp = idx[j];

			idx[j] = idx[j - 1];
			idx[j - 1] = tmp;
		}
	for (int i = 0; i < 4; i++)
		if (!i || idx[i] != idx[i - 1])
			pen_point(p, xpix(fr, x[idx[i]]), ypix(fr, v[idx[i]]));
	c->used = false;
}

/*
 * One series as a <path>: gaps where it has no value; many points in one
 * pixel column become the four that matter to the eye.
 */
static void draw_series(FILE *f, const struct frame *fr, const char *id, const char *name,
			const double *x, const double *v, size_t n, const char *color,
			const char *dash)
{
	struct pen p = { .f = f };
	struct column c = { .used = false };

	fprintf(f, "<path id=\"%s\" fill=\"none\" stroke=\"%s\" stroke-width=\"%s\" stroke-linejoin=\"round\" stroke-linecap=\"round\"",
		id, color, dash ? "1.3" : "1.8");
	if (dash)
		fprintf(f, " stroke-dasharray=\"%s\"", dash);
	fputs(" d=\"", f);
	for (size_t i = 0; i < n; i++) {
		long col;

		if (!isfinite(v[i])) {
			column_flush(&p, fr, &c, x, v);
			pen_up(&p);
			continue;
		}
		col = (long)floor(xpix(fr, x[i]));
		if (c.used && col == c.col) {
			if (v[i] < v[c.lo])
				c.lo = i;
			if (v[i] > v[c.hi])
				c.hi = i;
			c.last = i;
			continue;
		}
		column_flush(&p, fr, &c, x, v);
		c = (struct column){ .col = col, .first = i, .lo = i, .hi = i, .last = i,
				     .used = true };
	}
	column_flush(&p, fr, &c, x, v);
	pen_up(&p);
	fputs("\"><title>", f);
	xml_text(f, name);
	fputs("</title></path>\n", f);
}

struct item {
	char label[160];
	const char *color;	/* NULL: a note, without a line */
	const char *dash;
};

#define LEGEND_ROW 15

/* Lay the items out in rows from baseline y; draw them when f. The number of rows. */
static int legend(FILE *f, const struct item *it, int n, double x0, double x1, double y)
{
	double cx = x0;
	int rows = n ? 1 : 0;

	for (int i = 0; i < n; i++) {
		double sample = it[i].color ? 28 : 0;
		double w = sample + text_width(it[i].label, 11) + 18;

		if (cx > x0 && cx + w > x1) {
			rows++;
			cx = x0;
			y += LEGEND_ROW;
		}
		if (f) {
			if (it[i].color) {
				fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"%s\"",
					cx, y - 4, cx + 22, y - 4, it[i].color,
					it[i].dash ? "1.3" : "1.8");
				if (it[i].dash)
					fprintf(f, " stroke-dasharray=\"%s\"", it[i].dash);
				fputs("/>\n", f);
			}
			fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\"%s>", cx + sample, y,
				it[i].color ? "" : " fill=\"" COLOR_NOTE "\" font-style=\"italic\"");
			xml_text(f, it[i].label);
			fputs("</text>\n", f);
		}
		cx += w;
	}
	return rows;
}

/* Text in the middle of an empty plot area: what is missing, and why. */
static void draw_empty(FILE *f, const struct frame *fr, const char *what, const char *why)
{
	double cx = (fr->x0 + fr->x1) / 2, cy = (fr->yt + fr->yb) / 2, w = fr->x1 - fr->x0 - 16;

	text_line(f, cx, cy, 14, " text-anchor=\"middle\" fill=\"" COLOR_NOTE "\"", what, w);
	if (why)
		text_line(f, cx, cy + 16, 11, " text-anchor=\"middle\" fill=\"" COLOR_NOTE "\"", why, w);
}

/* What one panel shows. */
struct panel {
	const char *id;
	char title[160];
	struct item items[MAX_SERIES + 4];
	int nitems;
	double weight;		/* of the height left for the plots */
	double top, header;	/* px */
	struct frame fr;
};

static void add_item(struct panel *p, const char *color, const char *dash, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void add_item(struct panel *p, const char *color, const char *dash, const char *fmt, ...)
{
	struct item *it = &p->items[p->nitems++];
	va_list ap;

	it->color = color;
	it->dash = dash;
	va_start(ap, fmt);
	vsnprintf(it->label, sizeof(it->label), fmt, ap);
	va_end(ap);
}

struct plot_req {
	const char *stats;
	const char *title;	/* NULL: made from the records */
	int width, height;
};

static double series_max(const struct series *s, size_t n)
{
	double m = 0;

	for (size_t i = 0; s && i < n; i++)
		if (isfinite(s->v[i]) && s->v[i] > m)
			m = s->v[i];
	return m;
}

static bool series_any(const struct series *s, size_t n)
{
	for (size_t i = 0; s && i < n; i++)
		if (isfinite(s->v[i]))
			return true;
	return false;
}

static double series_last(const struct series *s, size_t n)
{
	for (size_t i = n; s && i > 0; i--)
		if (isfinite(s->v[i - 1]))
			return s->v[i - 1];
	return 0;
}

static int by_index(const void *a, const void *b)
{
	const struct series *const *sa = a, *const *sb = b;
	int ia = 0, ib = 0;

	indexed_key((*sa)->key, (*sa)->key[0] == 't' ? "tier" : "node", &ia);
	indexed_key((*sb)->key, (*sb)->key[0] == 't' ? "tier" : "node", &ib);
	return (ia > ib) - (ia < ib);
}

/* Write the picture of d to f. */
static void render(FILE *f, const struct plot_req *q, struct plot_data *d)
{
	const struct series *res[MAX_SERIES], *budget, *hot, *share, *prom, *dem;
	double w = q->width, h = q->height, x0 = 84, x1 = w - 24, top = 58, bottom = 44, gap = 14;
	double xmin = d->x[0], xmax = d->x[0], first, resmax = 0, avail;
	bool have_budget, have_hot, share_gaps = false;
	size_t share_bad = 0;
	static struct panel pn[3];
	const char *res_kind = "tier";
	char title[512], sub[768], others[256], b1[32];
	int nres = 0, xticks;

	/* What there is to draw. */
	for (int i = 0; i < d->ns; i++)
		if (indexed_key(d->s[i].key, "tier", NULL))
			res[nres++] = &d->s[i];
	if (!nres) {
		res_kind = "node";
		for (int i = 0; i < d->ns; i++)
			if (indexed_key(d->s[i].key, "node", NULL))
				res[nres++] = &d->s[i];
	}
	if (!nres && series_find(d, "rss_bytes")) {
		res_kind = "rss";
		res[nres++] = series_find(d, "rss_bytes");
	}
	qsort(res, (size_t)(res_kind[0] == 'r' ? 0 : nres), sizeof(res[0]), by_index);
	budget = series_find(d, "budget_bytes");
	hot = series_find(d, "hot_set_bytes");
	/* A runtime that never ran has a budget and a hot set of 0: nothing to show. */
	have_budget = series_max(budget, d->n) > 0;
	have_hot = series_max(hot, d->n) > 0;
	share = series_find(d, "fast_access_share");
	if (share) {
		for (size_t i = 0; i < d->n; i++) {
			if (!isfinite(share->v[i])) {
				share_gaps = true;
			} else if (share->v[i] < -1e-9 || share->v[i] > 1 + 1e-9) {
				share->v[i] = NAN;	/* not a share: not drawn */
				share_bad++;
				share_gaps = true;
			}
		}
	}
	prom = series_find(d, "promoted_bytes");
	dem = series_find(d, "demoted_bytes");
	if (prom)
		accumulate(prom->v, d->n);
	if (dem)
		accumulate(dem->v, d->n);

	for (size_t i = 0; i < d->n; i++) {
		xmin = fmin(xmin, d->x[i]);
		xmax = fmax(xmax, d->x[i]);
	}
	first = xmin;
	if (xmin > 0)
		xmin = 0;	/* t counts from the start of the process */
	if (xmax <= xmin)
		xmax = xmin + 1;
	for (int i = 0; i < nres; i++)
		resmax = fmax(resmax, series_max(res[i], d->n));
	if (have_budget)
		resmax = fmax(resmax, series_max(budget, d->n));
	if (have_hot)
		resmax = fmax(resmax, series_max(hot, d->n));

	/* The panels' titles and legends. */
	memset(pn, 0, sizeof(pn));
	pn[0].id = "resident";
	pn[0].weight = 0.5;
	if (res_kind[0] == 't')
		snprintf(pn[0].title, sizeof(pn[0].title), "Resident memory per tier");
	else if (res_kind[0] == 'n')
		snprintf(pn[0].title, sizeof(pn[0].title),
			 "Resident memory per node (the file has no tier fields)");
	else
		snprintf(pn[0].title, sizeof(pn[0].title),
			 "Resident memory (rss_bytes: the file has no node or tier fields)");
	for (int i = 0; i < nres; i++) {
		int idx = 0;

		if (res_kind[0] == 'r') {
			add_item(&pn[0], palette[0], NULL, "resident (rss)");
			continue;
		}
		indexed_key(res[i]->key, res_kind, &idx);
		add_item(&pn[0], palette[i % 8], NULL, "%s %d%s", res_kind, idx,
			 res_kind[0] == 't' && !idx && nres > 1 ? " (fastest)" : "");
	}
	if (have_budget)
		add_item(&pn[0], COLOR_BUDGET, "7 4", "fast-tier budget");
	if (have_hot)
		add_item(&pn[0], COLOR_HOT, "3 3", "hot set");

	pn[1].id = "share";
	pn[1].weight = 0.27;
	snprintf(pn[1].title, sizeof(pn[1].title),
		 "Fast-tier share of the accessed pages the backend observed (its last pass)");
	if (series_any(share, d->n)) {
		add_item(&pn[1], palette[0], NULL,
			 "fast_access_share, observed by the backend (not ground truth)");
		if (share_gaps)
			add_item(&pn[1], NULL, NULL, "%s", share_bad ?
				 "gaps: no observations, or a value outside 0..1" :
				 "gaps: epochs without observations");
	}

	pn[2].id = "moved";
	pn[2].weight = 0.23;
	snprintf(pn[2].title, sizeof(pn[2].title), "Bytes moved by the runtime, cumulative");
	if (prom) {
		cli_fmt_bytes(series_last(prom, d->n), b1, sizeof(b1));
		add_item(&pn[2], COLOR_PROMOTED, NULL, "promoted to the fast tier: %s", b1);
	}
	if (dem) {
		cli_fmt_bytes(series_last(dem, d->n), b1, sizeof(b1));
		add_item(&pn[2], COLOR_DEMOTED, NULL, "demoted: %s", b1);
	}

	/* Heights: the headers first, then the plots share what is left. */
	avail = h - top - bottom - 2 * gap;
	for (int i = 0; i < 3; i++) {
		pn[i].header = 18 + 4 + LEGEND_ROW * legend(NULL, pn[i].items, pn[i].nitems, x0, x1, 0);
		avail -= pn[i].header;
	}
	for (int i = 0; i < 3; i++) {
		double ph = fmax(24, avail * pn[i].weight);

		pn[i].top = i ? pn[i - 1].fr.yb + gap : top;
		pn[i].fr.x0 = x0;
		pn[i].fr.x1 = x1;
		pn[i].fr.yt = pn[i].top + pn[i].header;
		pn[i].fr.yb = pn[i].fr.yt + ph;
	}
	xticks = (int)fmax(2, fmin(10, (x1 - x0) / 90));
	for (int i = 0; i < 3; i++) {
		int yticks = (int)fmax(2, fmin(6, (pn[i].fr.yb - pn[i].fr.yt) / 30));

		axis_linear(&pn[i].fr.xa, xmin, xmax, xticks);
		if (i == 1) {
			axis_linear(&pn[i].fr.ya, 0, 1, 4);
			pn[i].fr.ya.step = pn[i].fr.yb - pn[i].fr.yt >= 80 ? 0.25 : 0.5;
			pn[i].fr.ya.dec = 2;
		} else if (i == 0) {
			axis_bytes(&pn[i].fr.ya, resmax, yticks);
		} else {
			axis_bytes(&pn[i].fr.ya, fmax(series_max(prom, d->n), series_max(dem, d->n)),
				   yticks);
		}
	}

	/* Title and what the picture is of. */
	if (q->title) {
		snprintf(title, sizeof(title), "%s", q->title);
	} else {
		const char *base = strrchr(q->stats, '/');

		snprintf(title, sizeof(title), "%s (pid %ld, backend %s)",
			 d->comm[0] ? d->comm : base ? base + 1 : q->stats, d->pid,
			 d->backend[0] ? d->backend : "unknown");
	}
	pid_list(d, d->pid, others, sizeof(others));
	snprintf(sub, sizeof(sub), "%s: %zu record%s of pid %ld, t from %.1f to %.1f s; state %s, placement %s%s%s%s",
		 q->stats, d->of_pid, d->of_pid == 1 ? "" : "s", d->pid, first, d->x[d->n - 1],
		 d->state[0] ? d->state : "unknown",
		 d->placement[0] ? d->placement : "unknown",
		 others[0] ? "; the file also has pid " : "", others,
		 others[0] ? " (--pid)" : "");

	fputs("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n", f);
	fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"12\">\n",
		q->width, q->height, q->width, q->height);
	fputs("<title>", f);
	xml_text(f, title);
	fputs("</title>\n<desc>", f);
	fprintf(f, "Made by tiermm plot %s from ", TIERMM_VERSION_STRING);
	xml_text(f, q->stats);
	fputs(". fast_access_share: the share of the accessed pages the hotness backend observed that were on the fast tier, as the backend observed it, not ground truth.</desc>\n", f);
	fprintf(f, "<rect width=\"%d\" height=\"%d\" fill=\"#ffffff\"/>\n", q->width, q->height);
	/* Bold text is about a tenth wider: the limits allow for it. */
	text_line(f, x0, 26, 16, " id=\"title\" font-weight=\"bold\"", title, (x1 - x0) / 1.1);
	text_line(f, x0, 44, 11, " id=\"subtitle\" fill=\"" COLOR_NOTE "\"", sub, x1 - x0);

	for (int i = 0; i < 3; i++) {
		struct panel *p = &pn[i];
		const struct frame *fr = &p->fr;

		fprintf(f, "<g id=\"%s\">\n", p->id);
		text_line(f, x0, p->top + 12, 12, " font-weight=\"bold\"", p->title, (x1 - x0) / 1.1);
		legend(f, p->items, p->nitems, x0, x1, p->top + 28);
		draw_frame(f, fr, i == 2);
		if (i == 0) {
			if (!nres)
				draw_empty(f, fr, "no residency in the file",
					   "(no tierN_bytes, nodeN_bytes or rss_bytes fields)");
			if (have_budget)
				draw_series(f, fr, "budget", "fast-tier budget", d->x, budget->v,
					    d->n, COLOR_BUDGET, "7 4");
			if (have_hot)
				draw_series(f, fr, "hot_set", "hot set", d->x, hot->v, d->n,
					    COLOR_HOT, "3 3");
			for (int k = 0; k < nres; k++) {
				char id[TMM_KEY_LEN];

				snprintf(id, sizeof(id), "%.*s", (int)(strlen(res[k]->key) - 6),
					 res[k]->key);
				draw_series(f, fr, id, p->items[k].label, d->x, res[k]->v, d->n,
					    palette[k % 8], NULL);
			}
		} else if (i == 1) {
			if (series_any(share, d->n))
				draw_series(f, fr, "fast_access_share",
					    "fast_access_share (observed by the backend)", d->x,
					    share->v, d->n, palette[0], NULL);
			else
				draw_empty(f, fr, "no observations",
					   share ? "(fast_access_share is empty in every record: no pass saw a page yet, or the backend reports ranges)" :
					   "(no fast_access_share in the file: written by an older shim)");
		} else {
			if (!prom && !dem)
				draw_empty(f, fr, "no promoted or demoted bytes in the file", NULL);
			if (prom)
				draw_series(f, fr, "promoted", "promoted (cumulative)", d->x, prom->v,
					    d->n, COLOR_PROMOTED, NULL);
			if (dem)
				draw_series(f, fr, "demoted", "demoted (cumulative)", d->x, dem->v,
					    d->n, COLOR_DEMOTED, NULL);
		}
		fputs("</g>\n", f);
	}
	fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" text-anchor=\"middle\">t (s since the process started)</text>\n",
		(x0 + x1) / 2, pn[2].fr.yb + 34);
	fputs("</svg>\n", f);
}

/* ---- Writing ------------------------------------------------------------- */

/* STATS with its extension (if its name has one) replaced by .svg. */
static char *default_output(const char *stats)
{
	const char *base = strrchr(stats, '/'), *dot;
	size_t keep;
	char *out;

	base = base ? base + 1 : stats;
	dot = strrchr(base, '.');
	keep = dot && dot != base ? (size_t)(dot - stats) : strlen(stats);
	if (keep > INT_MAX || asprintf(&out, "%.*s.svg", (int)keep, stats) < 0)
		return NULL;
	return out;
}

static int write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * Write buf to path through a temporary file in the same directory renamed
 * over it: path is the old file or the whole new one, never a partial one.
 */
static int write_atomic(const char *path, const char *buf, size_t len)
{
	const char *slash = strrchr(path, '/'), *base = slash ? slash + 1 : path;
	int fd, ret = 0, dirlen = (int)(base - path);
	char *tmp;
	mode_t mask;

	if (!*base)
		return -EISDIR;
	if (asprintf(&tmp, "%.*s.%s.XXXXXX", dirlen, path, base) < 0)
		return -ENOMEM;
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		free(tmp);
		return ret;
	}
	/* The mode a new file gets (mkostemp makes it 0600). */
	mask = umask(0);
	umask(mask);
	if (fchmod(fd, 0666 & ~mask))
		ret = -errno;
	if (!ret)
		ret = write_all(fd, buf, len);
	if (!ret && fsync(fd))
		ret = -errno;
	if (close(fd) && !ret)
		ret = -errno;
	if (!ret && rename(tmp, path))
		ret = -errno;
	if (ret)
		unlink(tmp);
	free(tmp);
	return ret;
}

/* ---- The verb ------------------------------------------------------------ */

static int parse_int(const char *s, long lo, long hi, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (!*s || *end || errno || v < lo || v > hi)
		return -EINVAL;
	*out = v;
	return 0;
}

static int plot(const struct plot_req *q, long want, const char *out)
{
	static struct plot_data d;
	struct stat st_in, st_out;
	char *svg = NULL, *outpath = NULL, list[256];
	size_t svglen = 0;
	int ret, bad = 0, status = CLI_FAIL;
	FILE *m;

	memset(&d, 0, sizeof(d));
	d.want = want;
	d.pid = -1;
	if (stat(q->stats, &st_in)) {
		cli_err("plot", "%s: %s", q->stats, strerror(errno));
		return CLI_FAIL;
	}
	if (S_ISDIR(st_in.st_mode)) {
		cli_err("plot", "%s: %s", q->stats, strerror(EISDIR));
		return CLI_FAIL;
	}
	if (!out) {
		outpath = default_output(q->stats);
		if (!outpath) {
			cli_err("plot", "%s", strerror(ENOMEM));
			return CLI_FAIL;
		}
		out = outpath;
	}
	if (strcmp(out, "-") && !stat(out, &st_out) && st_out.st_dev == st_in.st_dev &&
	    st_out.st_ino == st_in.st_ino) {
		cli_err("plot", "the output %s is the statistics file itself; name another with --output",
			out);
		status = CLI_USAGE;
		goto out;
	}

	ret = tmm_stats_foreach(q->stats, collect, &d, &bad);
	if (ret < 0 || d.err) {
		cli_err("plot", "cannot read %s: %s", q->stats, strerror(ret < 0 ? -ret : -d.err));
		goto out;
	}
	if (!d.records) {
		if (bad)
			cli_err("plot", "%s: no statistics record (%d line%s that %s not parse)",
				q->stats, bad, bad == 1 ? "" : "s", bad == 1 ? "does" : "do");
		else
			cli_err("plot", "%s: no statistics record (the file is empty)", q->stats);
		goto out;
	}
	if (!d.of_pid) {
		pid_list(&d, -2, list, sizeof(list));
		cli_err("plot", "%s has no record of pid %ld; its records are of pid %s", q->stats,
			want, list);
		goto out;
	}
	if (!d.n) {
		cli_err("plot", "%s: no record of pid %ld has a time (field t or time): nothing to draw",
			q->stats, d.pid);
		goto out;
	}
	if (bad)
		cli_err("plot", "note: %d line%s of %s did not parse and %s left out", bad,
			bad == 1 ? "" : "s", q->stats, bad == 1 ? "is" : "are");
	if (d.no_time)
		cli_err("plot", "note: %zu record%s of pid %ld without a time left out", d.no_time,
			d.no_time == 1 ? "" : "s", d.pid);

	m = open_memstream(&svg, &svglen);
	if (!m) {
		cli_err("plot", "%s", strerror(errno));
		goto out;
	}
	render(m, q, &d);
	ret = ferror(m);
	if (fclose(m) || ret) {
		cli_err("plot", "cannot make the picture: %s", strerror(ENOMEM));
		goto out;
	}

	if (!strcmp(out, "-")) {
		if (fwrite(svg, 1, svglen, stdout) != svglen || fflush(stdout)) {
			cli_err("plot", "cannot write to standard output: %s", strerror(errno));
			goto out;
		}
	} else {
		ret = write_atomic(out, svg, svglen);
		if (ret) {
			cli_err("plot", "cannot write %s: %s", out, strerror(-ret));
			goto out;
		}
	}
	status = CLI_OK;
out:
	free(svg);
	free(outpath);
	data_free(&d);
	return status;
}

int cmd_plot(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "pid", required_argument, NULL, OPT_PID },
		{ "title", required_argument, NULL, OPT_TITLE },
		{ "width", required_argument, NULL, OPT_WIDTH },
		{ "height", required_argument, NULL, OPT_HEIGHT },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct plot_req q = { .width = DEF_WIDTH, .height = DEF_HEIGHT };
	const char *out = NULL;
	locale_t c_locale, old = (locale_t)0;
	long want = -1, v;
	int c, status;

	optind = 1;
	opterr = 0;
	/* Options may follow STATS (no '+': getopt permutes). */
	while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
		switch (c) {
		case 'o':
			if (!*optarg) {
				cli_err("plot", "--output: an empty file name (- is standard output)");
				return CLI_USAGE;
			}
			out = optarg;
			break;
		case OPT_PID:
			if (parse_int(optarg, 1, INT_MAX, &want)) {
				cli_err("plot", "--pid %s: not a process id", optarg);
				return CLI_USAGE;
			}
			break;
		case OPT_TITLE:
			q.title = optarg;
			break;
		case OPT_WIDTH:
			if (parse_int(optarg, MIN_WIDTH, MAX_SIZE, &v)) {
				cli_err("plot", "--width %s: not a number of pixels from %d to %d",
					optarg, MIN_WIDTH, MAX_SIZE);
				return CLI_USAGE;
			}
			q.width = (int)v;
			break;
		case OPT_HEIGHT:
			if (parse_int(optarg, MIN_HEIGHT, MAX_SIZE, &v)) {
				cli_err("plot", "--height %s: not a number of pixels from %d to %d",
					optarg, MIN_HEIGHT, MAX_SIZE);
				return CLI_USAGE;
			}
			q.height = (int)v;
			break;
		case 'h':
			usage_plot(stdout);
			return CLI_OK;
		default:
			cli_err("plot", "unknown option or missing argument '%s' (see 'tiermm plot --help')",
				argv[optind - 1]);
			return CLI_USAGE;
		}
	}
	if (optind >= argc) {
		cli_err("plot", "no statistics file given (tiermm plot [OPTIONS] STATS)");
		return CLI_USAGE;
	}
	if (optind + 1 < argc) {
		cli_err("plot", "unexpected argument '%s'", argv[optind + 1]);
		return CLI_USAGE;
	}
	if (!*argv[optind]) {
		cli_err("plot", "an empty statistics file name");
		return CLI_USAGE;
	}
	q.stats = argv[optind];

	/* Numbers read and written as in the "C" locale, whatever LC_NUMERIC says. */
	c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
	if (c_locale)
		old = uselocale(c_locale);
	status = plot(&q, want, out);
	if (c_locale) {
		uselocale(old);
		freelocale(c_locale);
	}
	return status;
}
