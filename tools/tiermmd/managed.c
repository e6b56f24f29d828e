// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * tiermmd: the processes and cgroups it manages, and the protocol's
 * operations on them (tiermmd-protocol(7)).
 *
 * Every managed process has its own tiermm runtime (tiermm_runtime_start()
 * with its pid): the same engine as in-process use and the shim, run from
 * the daemon. A managed cgroup is a set of attach options plus its
 * members: every process in its cgroup.procs, found again every tick, so
 * processes that join later are managed too.
 *
 * Requests are checked whole before anything changes: a request that fails
 * leaves the daemon as it was (a cgroup attach is the one exception that
 * reports, member by member, what could not be attached; the cgroup itself
 * is managed either way, as members may come later).
 *
 * Permissions: root may manage any process. Anybody else only processes
 * whose real, effective, saved and filesystem uids are all theirs, and
 * cgroups whose directory they own (a delegated subtree); they see and
 * change only what they attached or own.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <tiermm.h>

#include "conf.h"
#include "managed.h"
#include "proto.h"

enum pt_policy { PT_NONE, PT_ONCE, PT_FOLLOW };

static const char *const pt_names[] = { "none", "once", "follow" };

/* What attach asked for; also what a cgroup gives the members it finds. */
struct mopts {
	uint64_t budget_bytes;
	double budget_share;
	char backend[16];	/* "" = auto */
	unsigned int epoch_ms;
	double rate_limit;	/* MiB/s; 0 = library default */
	double cpu_quota;	/* share of a CPU; 0 = library default */
	unsigned int backoff_max;	/* 0 = library default */
	unsigned int flags;	/* TIERMM_RUNTIME_NO_* */
	enum pt_policy pt;
};

#define REFUSED_MAX 256

struct group {
	char path[PATH_MAX];	/* canonical */
	uid_t by;		/* who attached it */
	gid_t by_gid;
	struct mopts o;
	/* Members not to attach (refused, failed, or detached one by one). */
	struct {
		pid_t pid;
		unsigned long long start;
	} refused[REFUSED_MAX];
	unsigned int nr_refused;
	uint64_t attached, failed;
	char last_error[1024];
};

struct proc {
	pid_t pid;
	unsigned long long start;	/* /proc/PID/stat starttime: pid reuse */
	uid_t owner;			/* the process's uid */
	uid_t by;			/* who attached it */
	struct group *group;		/* NULL: attached by pid */
	struct tiermm_runtime *rt;
	struct mopts o;
	uint64_t pt_moved;
	char pt_error[256];
	struct timespec next_pt;
	bool failed_logged;
};

static struct daemon_limits lim;
static struct proc **procs;
static unsigned int nr_procs;
static struct group **groups;
static unsigned int nr_groups;

/* ---- replies ---------------------------------------------------------- */

static const char *errno_name(int err)
{
	switch (err) {
	case EINVAL: return "EINVAL";
	case EPERM: return "EPERM";
	case EACCES: return "EACCES";
	case ESRCH: return "ESRCH";
	case EEXIST: return "EEXIST";
	case ENOENT: return "ENOENT";
	case ENOMEM: return "ENOMEM";
	case ENOSPC: return "ENOSPC";
	case E2BIG: return "E2BIG";
	case ENODEV: return "ENODEV";
	case ENOTDIR: return "ENOTDIR";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case EPROTONOSUPPORT: return "EPROTONOSUPPORT";
	case ENAMETOOLONG: return "ENAMETOOLONG";
	case EBUSY: return "EBUSY";
	case EAGAIN: return "EAGAIN";
	case ENXIO: return "ENXIO";
	case EIO: return "EIO";
	default: return "EUNKNOWN";
	}
}

/*
 * A JSON string of s, which may hold bytes that are not UTF-8 (a message
 * cut in the middle of a character, a path): those become '?'. Never NULL
 * unless out of memory.
 */
static json_t *text(const char *s)
{
	json_t *j = json_string(s);
	char *copy;

	if (j)
		return j;
	copy = strdup(s);
	if (!copy)
		return NULL;
	for (unsigned char *c = (unsigned char *)copy; *c; c++)
		if (*c >= 0x80)
			*c = '?';
	j = json_string(copy);
	free(copy);
	return j;
}

json_t *reply_error(int err, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	json_t *r;

	if (err < 0)
		err = -err;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	r = json_pack("{s:b, s:s, s:i, s:o*}", "ok", 0, "error", errno_name(err),
		      "errno", err, "message", text(msg));
	/* Callers take NULL for "no error": never return it for one. */
	if (!r) {
		static json_t *nomem;

		if (!nomem)
			nomem = json_pack("{s:b, s:s, s:i, s:s}", "ok", 0, "error", "ENOMEM",
					  "errno", ENOMEM, "message", "out of memory");
		r = json_incref(nomem);
		if (!r)
			abort();	/* out of memory before the first request */
	}
	return r;
}

static json_t *reply_ok(void)
{
	return json_pack("{s:b}", "ok", 1);
}

/* ---- /proc ------------------------------------------------------------ */

/* The uids and gids of pid (real, effective, saved, fs). 0, -ESRCH or -EIO. */
static int proc_ids(pid_t pid, uid_t uid[4], gid_t gid[4])
{
	char path[64], line[256];
	int found = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -ESRCH;
	while (found < 2 && fgets(line, sizeof(line), f)) {
		unsigned int v[4];
		bool is_uid = !strncmp(line, "Uid:", 4);

		if (!is_uid && strncmp(line, "Gid:", 4))
			continue;
		if (sscanf(line + 4, "%u %u %u %u", &v[0], &v[1], &v[2], &v[3]) != 4)
			break;
		for (int i = 0; i < 4; i++) {
			if (is_uid)
				uid[i] = v[i];
			else
				gid[i] = v[i];
		}
		found++;
	}
	fclose(f);
	return found == 2 ? 0 : -EIO;
}

/* starttime of pid (field 22 of /proc/PID/stat), or 0 when it is gone. */
static unsigned long long proc_starttime(pid_t pid)
{
	char path[64], buf[1024];
	unsigned long long v = 0;
	const char *p;
	ssize_t n;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	n = (ssize_t)fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	p = strrchr(buf, ')');
	if (!p)
		return 0;
	/* p is at the space before field 3 (state): move to the one before 22. */
	p++;
	for (int i = 0; i < 19 && p; i++)
		p = strchr(p + 1, ' ');
	if (p && sscanf(p, " %llu", &v) != 1)
		v = 0;
	return v;
}

/*
 * May a client of uid as_uid and gid as_gid manage pid? What ptrace(2)
 * asks of a tracer without capabilities: all the target's uids are the
 * client's, all its gids the client's gid, and it is dumpable (the kernel
 * makes /proc/PID root's when it is not: set-id programs, file
 * capabilities, PR_SET_DUMPABLE 0). 0, -ESRCH or -EPERM (msg says why).
 */
static int may_manage(uid_t as_uid, gid_t as_gid, pid_t pid, uid_t *owner, char *msg,
		      size_t len)
{
	char path[64];
	struct stat st;
	uid_t u[4];
	gid_t g[4];

	snprintf(path, sizeof(path), "/proc/%d", (int)pid);
	if (proc_ids(pid, u, g) || stat(path, &st)) {
		snprintf(msg, len, "process %d does not exist", (int)pid);
		return -ESRCH;
	}
	*owner = u[0];
	if (as_uid == 0)
		return 0;
	for (int i = 0; i < 4; i++) {
		if (u[i] != as_uid) {
			snprintf(msg, len,
				 "process %d is not yours (uid %u; you are uid %u): only root manages other users' processes",
				 (int)pid, (unsigned int)u[i], (unsigned int)as_uid);
			return -EPERM;
		}
		if (g[i] != as_gid) {
			snprintf(msg, len,
				 "process %d runs with gid %u, not your gid %u (a set-group-id program?): only root manages it",
				 (int)pid, (unsigned int)g[i], (unsigned int)as_gid);
			return -EPERM;
		}
	}
	if (st.st_uid != as_uid) {
		snprintf(msg, len,
			 "process %d is not dumpable (a set-id or privileged program): only root manages it",
			 (int)pid);
		return -EPERM;
	}
	return 0;
}

/* ---- lookup ----------------------------------------------------------- */

static struct proc *find_proc(pid_t pid)
{
	for (unsigned int i = 0; i < nr_procs; i++)
		if (procs[i]->pid == pid)
			return procs[i];
	return NULL;
}

static struct group *find_group(const char *path)
{
	for (unsigned int i = 0; i < nr_groups; i++)
		if (!strcmp(groups[i]->path, path))
			return groups[i];
	return NULL;
}

/* Does peer see (and may change) what uid "by" attached for "owner"? */
static bool visible(const struct peer *peer, uid_t by, uid_t owner)
{
	return peer->uid == 0 || peer->uid == by || peer->uid == owner;
}

/* ---- request fields --------------------------------------------------- */

/* Refuse keys of req not in the NULL-terminated list allowed. */
static json_t *check_keys(json_t *req, const char *op, const char *const *allowed)
{
	const char *key;
	json_t *v;

	json_object_foreach(req, key, v) {
		bool ok = false;

		for (const char *const *a = allowed; *a; a++)
			if (!strcmp(*a, key))
				ok = true;
		if (!ok)
			return reply_error(EINVAL, "op \"%s\": unknown key \"%.64s\"", op, key);
	}
	return NULL;
}

/* The pid of req, 0 when absent; -1 with *err set when malformed. */
static pid_t get_pid(json_t *req, json_t **err)
{
	json_t *v = json_object_get(req, "pid");
	json_int_t p;

	if (!v)
		return 0;
	if (!json_is_integer(v) || (p = json_integer_value(v)) <= 0 || p > INT_MAX) {
		*err = reply_error(EINVAL, "\"pid\" must be a positive integer");
		return -1;
	}
	return (pid_t)p;
}

/*
 * The cgroup of req, canonical, in out; 0 when absent, 1 when present, -1
 * with *err set when malformed, missing or outside lim.cgroup_root.
 */
static int get_cgroup(json_t *req, char *out, json_t **err)
{
	json_t *v = json_object_get(req, "cgroup");
	char path[PATH_MAX], procs_file[PATH_MAX + 16];
	const char *s;
	size_t rl = strlen(lim.cgroup_root);
	int n;

	if (!v)
		return 0;
	if (!json_is_string(v) || !*(s = json_string_value(v))) {
		*err = reply_error(EINVAL, "\"cgroup\" must be a non-empty string");
		return -1;
	}
	if (s[0] == '/' && strncmp(s, lim.cgroup_root, rl))
		n = snprintf(path, sizeof(path), "%s%s", lim.cgroup_root, s);
	else if (s[0] == '/')
		n = snprintf(path, sizeof(path), "%s", s);
	else
		n = snprintf(path, sizeof(path), "%s/%s", lim.cgroup_root, s);
	if (n < 0 || (size_t)n >= sizeof(path)) {
		*err = reply_error(ENAMETOOLONG, "cgroup path too long");
		return -1;
	}
	if (!realpath(path, out)) {
		*err = reply_error(ENOENT, "cgroup %.512s: %s", path, strerror(errno));
		return -1;
	}
	if (strncmp(out, lim.cgroup_root, rl) || (out[rl] != '/' && out[rl] != '\0')) {
		*err = reply_error(EINVAL, "cgroup %.512s is not below %s", out,
				   lim.cgroup_root);
		return -1;
	}
	snprintf(procs_file, sizeof(procs_file), "%s/cgroup.procs", out);
	if (access(procs_file, R_OK)) {
		*err = reply_error(ENOTDIR, "%.512s is not a cgroup (no readable cgroup.procs)",
				   out);
		return -1;
	}
	return 1;
}

/*
 * The one of "pid" and "cgroup" that req names: *pid (0 for a cgroup) and
 * the canonical cgroup path in path. NULL, or the error reply.
 */
static json_t *get_target(json_t *req, const char *op, pid_t *pid, char *path)
{
	json_t *err = NULL;

	if (!json_object_get(req, "pid") == !json_object_get(req, "cgroup"))
		return reply_error(EINVAL, "%s takes one of \"pid\" and \"cgroup\"", op);
	*pid = get_pid(req, &err);
	if (*pid < 0 || get_cgroup(req, path, &err) < 0)
		return err;
	return NULL;
}

/* Attach options of req over *o. NULL, or the error reply. */
static json_t *get_opts(json_t *req, struct mopts *o, bool attach)
{
	json_t *v;

	v = json_object_get(req, "budget");
	if (v) {
		uint64_t bytes = 0;
		double share = 0;

		if (json_is_integer(v) && json_integer_value(v) > 0) {
			bytes = (uint64_t)json_integer_value(v);
		} else if (!json_is_string(v) ||
			   tmm_parse_size(json_string_value(v), &bytes, &share) ||
			   (!bytes && !(share > 0 && share <= 1))) {
			return reply_error(EINVAL,
					   "\"budget\" must be a positive number of bytes, a size such as \"512M\" or \"2G\", or a share such as \"20%%\" (at most 100%%)");
		}
		o->budget_bytes = bytes;
		o->budget_share = share;
	}
	v = json_object_get(req, "pt");
	if (v) {
		const char *s = json_is_string(v) ? json_string_value(v) : "";
		int i;

		for (i = 0; i < 3 && strcmp(s, pt_names[i]); i++)
			;
		if (i == 3)
			return reply_error(EINVAL, "\"pt\" must be \"none\", \"once\" or \"follow\"");
		o->pt = (enum pt_policy)i;
	}
	if (!attach)
		return NULL;
	v = json_object_get(req, "backend");
	if (v) {
		const char *s = json_is_string(v) ? json_string_value(v) : "";

		if (strcmp(s, "auto") && strcmp(s, "perf") && strcmp(s, "scan") &&
		    strcmp(s, "damon"))
			return reply_error(EINVAL,
					   "\"backend\" must be \"auto\", \"perf\", \"scan\" or \"damon\"");
		snprintf(o->backend, sizeof(o->backend), "%s", strcmp(s, "auto") ? s : "");
	}
	v = json_object_get(req, "epoch_ms");
	if (v) {
		if (!json_is_integer(v) || json_integer_value(v) < 10 ||
		    json_integer_value(v) > 60000)
			return reply_error(EINVAL, "\"epoch_ms\" must be an integer from 10 to 60000");
		o->epoch_ms = (unsigned int)json_integer_value(v);
	}
	v = json_object_get(req, "rate_limit_mib_s");
	if (v) {
		if (json_is_string(v) && !strcmp(json_string_value(v), "none")) {
			o->flags |= TIERMM_RUNTIME_NO_RATE_LIMIT;
			o->rate_limit = 0;
		} else if (json_is_number(v) && json_number_value(v) > 0 &&
			   isfinite(json_number_value(v))) {
			o->flags &= ~TIERMM_RUNTIME_NO_RATE_LIMIT;
			o->rate_limit = json_number_value(v);
		} else {
			return reply_error(EINVAL, "\"rate_limit_mib_s\" must be a positive number or \"none\"");
		}
	}
	v = json_object_get(req, "cpu_quota");
	if (v) {
		if (json_is_string(v) && !strcmp(json_string_value(v), "none")) {
			o->flags |= TIERMM_RUNTIME_NO_CPU_QUOTA;
			o->cpu_quota = 0;
		} else if (json_is_number(v) && json_number_value(v) > 0 &&
			   json_number_value(v) <= 1) {
			o->flags &= ~TIERMM_RUNTIME_NO_CPU_QUOTA;
			o->cpu_quota = json_number_value(v);
		} else {
			return reply_error(EINVAL,
					   "\"cpu_quota\" must be a share of one CPU in (0, 1], or \"none\"");
		}
	}
	v = json_object_get(req, "backoff_max");
	if (v) {
		if (!json_is_integer(v) || json_integer_value(v) < 1 ||
		    json_integer_value(v) > TIERMM_RUNTIME_BACKOFF_MAX)
			return reply_error(EINVAL, "\"backoff_max\" must be an integer from 1 to %d",
					   TIERMM_RUNTIME_BACKOFF_MAX);
		o->backoff_max = (unsigned int)json_integer_value(v);
	}
	return NULL;
}

/* ---- managed processes ------------------------------------------------ */

static void timespec_add_ms(struct timespec *t, unsigned int ms)
{
	t->tv_sec += ms / 1000;
	t->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (t->tv_nsec >= 1000000000L) {
		t->tv_sec++;
		t->tv_nsec -= 1000000000L;
	}
}

static void pt_now(struct proc *p)
{
	int ret = tiermm_pt_migrate(p->pid, 0, 0, TIERMM_NODE_AUTO, TIERMM_PT_LEVELS_ALL,
				    NULL);

	if (ret >= 0) {
		p->pt_moved += (uint64_t)ret;
		p->pt_error[0] = '\0';
	} else {
		snprintf(p->pt_error, sizeof(p->pt_error), "%s", tiermm_errmsg());
	}
	clock_gettime(CLOCK_MONOTONIC, &p->next_pt);
	timespec_add_ms(&p->next_pt, lim.pt_interval_ms);
}

/*
 * Start managing pid for peer-uid as. Returns 0 and the new entry, or
 * -errno with msg set (nothing changed).
 */
static int proc_attach(pid_t pid, const struct peer *as, const struct mopts *o,
		      struct group *g, struct proc **out, char *msg, size_t len)
{
	struct tiermm_runtime_opts ro = { .sz = sizeof(ro) };
	struct proc *p, **np;
	uid_t owner;
	int ret;

	if (pid == getpid()) {
		snprintf(msg, len, "process %d is tiermmd itself", (int)pid);
		return -EINVAL;
	}
	ret = may_manage(as->uid, as->gid, pid, &owner, msg, len);
	if (ret)
		return ret;
	if (find_proc(pid)) {
		snprintf(msg, len, "process %d is managed already", (int)pid);
		return -EEXIST;
	}
	if (nr_procs >= lim.max_procs) {
		snprintf(msg, len, "tiermmd manages %u processes, its limit (--max-procs)",
			 nr_procs);
		return -ENOSPC;
	}
	p = calloc(1, sizeof(*p));
	np = realloc(procs, (nr_procs + 1) * sizeof(*procs));
	if (!p || !np) {
		free(p);
		if (np)
			procs = np;
		snprintf(msg, len, "out of memory");
		return -ENOMEM;
	}
	procs = np;
	p->pid = pid;
	p->start = proc_starttime(pid);
	p->owner = owner;
	p->by = as->uid;
	p->group = g;
	p->o = *o;
	ro.pid = pid;
	ro.backend = o->backend[0] ? o->backend : NULL;
	ro.budget_bytes = o->budget_bytes;
	ro.budget_share = o->budget_share;
	ro.epoch_ms = o->epoch_ms;
	ro.rate_limit_mib_s = o->rate_limit;
	ro.cpu_quota = o->cpu_quota;
	ro.backoff_max = o->backoff_max;
	ro.flags = o->flags;
	ret = tiermm_runtime_start(&ro, &p->rt);
	if (ret) {
		snprintf(msg, len, "%s", tiermm_errmsg());
		free(p);
		return ret;
	}
	if (o->pt != PT_NONE)
		pt_now(p);
	procs[nr_procs++] = p;
	fprintf(stderr, "tiermmd: managing process %d (uid %u)%s%s\n", (int)pid,
		(unsigned int)owner, g ? " of cgroup " : "", g ? g->path : "");
	*out = p;
	return 0;
}

static void proc_remove(unsigned int i, const char *why)
{
	struct proc *p = procs[i];
	int ret = tiermm_runtime_stop(p->rt);

	if (ret)
		fprintf(stderr, "tiermmd: process %d: stopping its runtime: %s\n", (int)p->pid,
			tiermm_errmsg());
	fprintf(stderr, "tiermmd: process %d: %s\n", (int)p->pid, why);
	procs[i] = procs[--nr_procs];
	free(p);
}

static unsigned int proc_index(const struct proc *p)
{
	unsigned int i;

	for (i = 0; i < nr_procs && procs[i] != p; i++)
		;
	return i;
}

static const char *state_name(int state)
{
	return state == TIERMM_RUNTIME_RUNNING ? "running" :
	       state == TIERMM_RUNTIME_EXITED ? "exited" : "failed";
}

static json_t *share_or_null(double v)
{
	return isfinite(v) ? json_real(v) : json_null();
}

/*
 * Page-table locality of p (tiermm.ko): {"tables": leaf tables, "local":
 * those on the node holding most of the data they map, "remote", "share":
 * local / (local + remote), or null}, or {"error": why}.
 */
static json_t *pt_json(const struct proc *p)
{
	struct tiermm_pt_summary sum = { .sz = sizeof(sum) };
	struct tiermm_pt_stats *st;
	uint64_t loc, rem;

	if (tiermm_pt_stat(p->pid, 0, 0, 0, &st))
		return json_pack("{s:o}", "error", text(tiermm_errmsg()));
	if (tiermm_pt_stat_summary(st, &sum)) {
		tiermm_pt_stat_free(st);
		return json_pack("{s:o}", "error", text(tiermm_errmsg()));
	}
	tiermm_pt_stat_free(st);
	loc = sum.tables_local[TIERMM_PT_LEVEL_PTE];
	rem = sum.tables_remote[TIERMM_PT_LEVEL_PTE];
	return json_pack("{s:I, s:I, s:I, s:o}", "tables",
			 (json_int_t)sum.tables[TIERMM_PT_LEVEL_PTE], "local", (json_int_t)loc,
			 "remote", (json_int_t)rem,
			 "share", loc + rem ? json_real((double)loc / (double)(loc + rem)) :
			 json_null());
}

static json_t *proc_json(struct proc *p, bool full)
{
	struct tiermm_runtime_stats s = { .sz = sizeof(s) };
	json_t *o;

	if (tiermm_runtime_stats(p->rt, &s))
		return json_pack("{s:i, s:s, s:s}", "pid", (int)p->pid, "state", "unknown",
				 "error", tiermm_errmsg());
	o = json_pack("{s:i, s:i, s:s, s:s, s:o, s:s, s:I, s:I, s:I}",
		      "pid", (int)p->pid, "uid", (int)p->owner, "state", state_name(s.state),
		      "backend", s.backend,
		      "cgroup", p->group ? text(p->group->path) : json_null(),
		      "pt", pt_names[p->o.pt],
		      "budget_bytes", (json_int_t)s.budget_bytes,
		      "fast_bytes", (json_int_t)s.fast_bytes,
		      "resident_bytes", (json_int_t)s.resident_bytes);
	if (!o)
		return NULL;
	if (s.state == TIERMM_RUNTIME_FAILED)
		json_object_set_new(o, "error", text(s.error_msg));
	if (!full)
		return o;
	json_object_update_new(o, json_pack(
		"{s:o, s:i, s:i, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I,"
		" s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:f,"
		" s:f, s:o, s:I, s:o}",
		"backend_why", text(s.backend_why),
		"fast_tier", s.fast_tier, "slow_tier", s.slow_tier,
		"epochs", (json_int_t)s.epochs,
		"promoted_pages", (json_int_t)s.promoted_pages,
		"promoted_bytes", (json_int_t)s.promoted_bytes,
		"demoted_pages", (json_int_t)s.demoted_pages,
		"demoted_bytes", (json_int_t)s.demoted_bytes,
		"moved_bytes", (json_int_t)s.moved_bytes,
		"failed_pages", (json_int_t)s.failed_pages,
		"failed_busy", (json_int_t)s.failed_busy,
		"failed_nomem", (json_int_t)s.failed_nomem,
		"failed_fault", (json_int_t)s.failed_fault,
		"failed_other", (json_int_t)s.failed_other,
		"hot_set_bytes", (json_int_t)s.hot_set_bytes,
		"hinted_bytes", (json_int_t)s.hinted_bytes,
		"samples", (json_int_t)s.samples,
		"samples_lost", (json_int_t)s.samples_lost,
		"samples_missed", (json_int_t)s.samples_missed,
		"ranges", (json_int_t)s.ranges,
		"splits", (json_int_t)s.splits,
		"merges", (json_int_t)s.merges,
		"rate_limited", (json_int_t)s.rate_limited,
		"quota_limited", (json_int_t)s.quota_limited,
		"backoff", (json_int_t)s.backoff,
		"backoff_epochs", (json_int_t)s.backoff_epochs,
		"cpu_sampling_s", s.cpu_sampling_s,
		"cpu_classify_s", s.cpu_classify_s,
		"cpu_migrate_s", s.cpu_migrate_s,
		"wall_s", s.wall_s,
		"fast_access_share", share_or_null(s.fast_access_share),
		"pt_moved", (json_int_t)p->pt_moved,
		"pt_error", text(p->pt_error)));
	if (s.state == TIERMM_RUNTIME_RUNNING)
		json_object_set_new(o, "pt_locality", pt_json(p));
	return o;
}

/* ---- cgroups ---------------------------------------------------------- */

static bool group_refuses(const struct group *g, pid_t pid, unsigned long long start)
{
	for (unsigned int i = 0; i < g->nr_refused; i++)
		if (g->refused[i].pid == pid && g->refused[i].start == start)
			return true;
	return false;
}

static void group_refuse(struct group *g, pid_t pid, unsigned long long start)
{
	if (group_refuses(g, pid, start))
		return;
	if (g->nr_refused == REFUSED_MAX) {
		/* Forget the oldest: at worst it is tried (and logged) again. */
		memmove(&g->refused[0], &g->refused[1],
			(REFUSED_MAX - 1) * sizeof(g->refused[0]));
		g->nr_refused--;
	}
	g->refused[g->nr_refused].pid = pid;
	g->refused[g->nr_refused].start = start;
	g->nr_refused++;
}

/* Attach the processes listed in dir/cgroup.procs (one cgroup of g's subtree). */
static void group_scan_dir(struct group *g, const char *dir, json_t *attached,
			   json_t *failed)
{
	const struct peer as = { .uid = g->by, .gid = g->by_gid };
	char path[PATH_MAX + 16], line[64];
	FILE *f;

	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	f = fopen(path, "re");
	if (!f) {
		snprintf(g->last_error, sizeof(g->last_error), "%.700s: %.200s", path, strerror(errno));
		return;
	}
	while (fgets(line, sizeof(line), f)) {
		long v = strtol(line, NULL, 10);
		pid_t pid = (pid_t)v;
		unsigned long long start;
		struct proc *p;
		char msg[512];
		int ret;

		if (v <= 0 || v > INT_MAX || find_proc(pid))
			continue;
		start = proc_starttime(pid);
		if (!start || group_refuses(g, pid, start))
			continue;
		ret = proc_attach(pid, &as, &g->o, g, &p, msg, sizeof(msg));
		if (ret) {
			/*
			 * Refused for good (permissions, no backend, gone): not tried
			 * again. Out of room (--max-procs, memory): tried every tick,
			 * logged once.
			 */
			bool transient = ret == -ENOSPC || ret == -ENOMEM;
			char line_err[1024];

			snprintf(line_err, sizeof(line_err), "process %d: %.900s", (int)pid, msg);
			if (!transient)
				group_refuse(g, pid, start);
			if (!transient || strcmp(line_err, g->last_error)) {
				g->failed++;
				fprintf(stderr, "tiermmd: cgroup %s: %s\n", g->path, line_err);
			}
			snprintf(g->last_error, sizeof(g->last_error), "%s", line_err);
			if (failed)
				json_array_append_new(failed, json_pack("{s:i, s:s, s:o}", "pid",
						      (int)pid, "error", errno_name(-ret), "message", text(msg)));
			continue;
		}
		g->attached++;
		if (attached)
			json_array_append_new(attached, json_integer(pid));
	}
	fclose(f);
}

#define GROUP_DEPTH_MAX 16

/* g's cgroup dir and, depth first, its descendants (a delegated subtree). */
static void group_walk(struct group *g, const char *dir, int depth, json_t *attached,
		       json_t *failed)
{
	struct dirent *de;
	DIR *d;

	group_scan_dir(g, dir, attached, failed);
	if (depth >= GROUP_DEPTH_MAX)
		return;
	d = opendir(dir);
	if (!d)
		return;
	while ((de = readdir(d))) {
		char sub[PATH_MAX];
		struct stat st;

		if (de->d_name[0] == '.' ||
		    snprintf(sub, sizeof(sub), "%s/%s", dir, de->d_name) >= (int)sizeof(sub) ||
		    lstat(sub, &st) || !S_ISDIR(st.st_mode))
			continue;
		group_walk(g, sub, depth + 1, attached, failed);
	}
	closedir(d);
}

/*
 * Attach the processes of g's cgroup and of the cgroups below it not managed
 * yet; failures go to *failed (when not NULL).
 */
static void group_scan(struct group *g, json_t *attached, json_t *failed)
{
	group_walk(g, g->path, 0, attached, failed);
}

static void group_remove(struct group *g)
{
	for (unsigned int i = 0; i < nr_procs;) {
		if (procs[i]->group == g)
			proc_remove(i, "detached (its cgroup was)");
		else
			i++;
	}
	for (unsigned int i = 0; i < nr_groups; i++) {
		if (groups[i] == g) {
			groups[i] = groups[--nr_groups];
			break;
		}
	}
	fprintf(stderr, "tiermmd: cgroup %s detached\n", g->path);
	free(g);
}

static json_t *group_json(const struct group *g)
{
	unsigned int members = 0;

	for (unsigned int i = 0; i < nr_procs; i++)
		members += procs[i]->group == g;
	return json_pack("{s:o, s:i, s:I, s:I, s:I, s:o}", "cgroup", text(g->path),
			 "uid", (int)g->by, "members", (json_int_t)members,
			 "attached", (json_int_t)g->attached, "failed", (json_int_t)g->failed,
			 "last_error", text(g->last_error));
}

/* ---- operations ------------------------------------------------------- */

static const char *const attach_keys[] = { "op", "id", "pid", "cgroup", "budget", "backend",
					   "epoch_ms", "rate_limit_mib_s", "cpu_quota",
					   "backoff_max", "pt", NULL };

static json_t *op_attach(json_t *req, const struct peer *peer)
{
	char path[PATH_MAX], msg[512];
	struct mopts o = { .pt = PT_NONE };
	json_t *r;
	struct proc *p;
	pid_t pid;
	int ret;

	r = check_keys(req, "attach", attach_keys);
	if (r)
		return r;
	r = get_target(req, "attach", &pid, path);
	if (r)
		return r;
	r = get_opts(req, &o, true);
	if (r)
		return r;
	if (pid) {
		ret = proc_attach(pid, peer, &o, NULL, &p, msg, sizeof(msg));
		if (ret)
			return reply_error(ret, "attach %d: %s", (int)pid, msg);
		r = json_pack("{s:b, s:[i], s:[]}", "ok", 1, "attached", (int)pid, "failed");
		json_object_set_new(r, "process", proc_json(p, false));
		return r;
	} else {
		struct group *g, **ng;
		struct stat st;
		json_t *att, *fail;

		if (stat(path, &st))
			return reply_error(ENOENT, "cgroup %s: %s", path, strerror(errno));
		if (peer->uid != 0 && st.st_uid != peer->uid)
			return reply_error(EPERM,
					   "cgroup %s belongs to uid %u, not to you (uid %u): only root manages cgroups not delegated to them",
					   path, (unsigned int)st.st_uid, (unsigned int)peer->uid);
		if (find_group(path))
			return reply_error(EEXIST, "cgroup %s is managed already", path);
		if (nr_groups >= lim.max_groups)
			return reply_error(ENOSPC, "tiermmd manages %u cgroups, its limit",
					   nr_groups);
		g = calloc(1, sizeof(*g));
		ng = realloc(groups, (nr_groups + 1) * sizeof(*groups));
		if (ng)
			groups = ng;
		if (!g || !ng) {
			free(g);
			return reply_error(ENOMEM, "out of memory");
		}
		snprintf(g->path, sizeof(g->path), "%s", path);
		g->by = peer->uid;
		g->by_gid = peer->gid;
		g->o = o;
		groups[nr_groups++] = g;
		fprintf(stderr, "tiermmd: managing cgroup %s (uid %u)\n", path,
			(unsigned int)peer->uid);
		att = json_array();
		fail = json_array();
		group_scan(g, att, fail);
		r = json_pack("{s:b, s:o, s:o, s:o}", "ok", 1, "cgroup", text(path), "attached", att,
			      "failed", fail);
		return r;
	}
}

/* The managed process or cgroup req names, visible to peer. */
static json_t *target(json_t *req, const struct peer *peer, struct proc **pp,
		      struct group **gp)
{
	char path[PATH_MAX];
	json_t *err;
	pid_t pid;

	*pp = NULL;
	*gp = NULL;
	err = get_target(req, json_string_value(json_object_get(req, "op")), &pid, path);
	if (err)
		return err;
	if (pid) {
		*pp = find_proc(pid);
		if (!*pp || !visible(peer, (*pp)->by, (*pp)->owner))
			return reply_error(ESRCH, "process %d is not managed%s", (int)pid,
					   *pp ? " by you" : "");
	} else {
		*gp = find_group(path);
		if (!*gp || !visible(peer, (*gp)->by, (*gp)->by))
			return reply_error(ESRCH, "cgroup %s is not managed%s", path,
					   *gp ? " by you" : "");
	}
	return NULL;
}

static const char *const target_keys[] = { "op", "id", "pid", "cgroup", NULL };

static json_t *op_detach(json_t *req, const struct peer *peer)
{
	struct proc *p;
	struct group *g;
	json_t *r = check_keys(req, "detach", target_keys);

	if (r)
		return r;
	r = target(req, peer, &p, &g);
	if (r)
		return r;
	if (p) {
		if (p->group)
			group_refuse(p->group, p->pid, p->start);
		proc_remove(proc_index(p), "detached");
	} else {
		group_remove(g);
	}
	return reply_ok();
}

/* Apply budget and page-table policy o (fields set in "has") to p. */
static int proc_set(struct proc *p, const struct mopts *o, bool budget, bool pt, char *msg,
		    size_t len)
{
	struct tiermm_runtime_stats s = { .sz = sizeof(s) };
	int ret = 0;

	if (!tiermm_runtime_stats(p->rt, &s) && s.state != TIERMM_RUNTIME_RUNNING) {
		snprintf(msg, len, "process %d: its runtime %s%s%.400s (detach it)", (int)p->pid,
			 s.state == TIERMM_RUNTIME_EXITED ? "stopped: the process exited" : "failed",
			 s.state == TIERMM_RUNTIME_FAILED ? ": " : "",
			 s.state == TIERMM_RUNTIME_FAILED ? s.error_msg : "");
		return -EIO;
	}
	if (budget) {
		ret = o->budget_bytes ? tiermm_runtime_set_budget(p->rt, o->budget_bytes) :
		      tiermm_runtime_set_budget_share(p->rt, o->budget_share);
		if (ret) {
			snprintf(msg, len, "process %d: %s", (int)p->pid, tiermm_errmsg());
			return ret;
		}
		p->o.budget_bytes = o->budget_bytes;
		p->o.budget_share = o->budget_share;
	}
	if (pt) {
		p->o.pt = o->pt;
		if (o->pt != PT_NONE)
			pt_now(p);
	}
	return 0;
}

static const char *const set_keys[] = { "op", "id", "pid", "cgroup", "budget", "pt", NULL };

static json_t *op_set(json_t *req, const struct peer *peer)
{
	bool budget = json_object_get(req, "budget"), pt = json_object_get(req, "pt");
	struct mopts o = { 0 };
	struct proc *p;
	struct group *g;
	char msg[512];
	json_t *r = check_keys(req, "set", set_keys);
	int ret;

	if (r)
		return r;
	r = target(req, peer, &p, &g);
	if (r)
		return r;
	if (!budget && !pt)
		return reply_error(EINVAL, "set needs \"budget\" or \"pt\"");
	o = p ? p->o : g->o;
	r = get_opts(req, &o, false);
	if (r)
		return r;
	if (p) {
		ret = proc_set(p, &o, budget, pt, msg, sizeof(msg));
		return ret ? reply_error(ret, "set: %s", msg) : reply_ok();
	}
	/*
	 * A cgroup: all members or none. The members share the fast tier, so a
	 * budget it cannot hold fails at the first; should a later one fail,
	 * those changed before get back the budget they had in force.
	 */
	if (budget) {
		uint64_t *prev = calloc(nr_procs ? nr_procs : 1, sizeof(*prev));

		if (!prev)
			return reply_error(ENOMEM, "out of memory");
		for (unsigned int i = 0; i < nr_procs; i++) {
			struct tiermm_runtime_stats s = { .sz = sizeof(s) };

			if (procs[i]->group != g)
				continue;
			if (tiermm_runtime_stats(procs[i]->rt, &s) ||
			    s.state != TIERMM_RUNTIME_RUNNING)
				continue;	/* a failed member: its state says why */
			prev[i] = s.budget_bytes;
			ret = proc_set(procs[i], &o, true, false, msg, sizeof(msg));
			if (!ret)
				continue;
			for (unsigned int k = 0; k < i; k++) {
				if (procs[k]->group != g || !prev[k])
					continue;
				tiermm_runtime_set_budget(procs[k]->rt, prev[k]);
				procs[k]->o.budget_bytes = g->o.budget_bytes;
				procs[k]->o.budget_share = g->o.budget_share;
			}
			free(prev);
			return reply_error(ret, "set: %s (no member changed)", msg);
		}
		free(prev);
	}
	if (pt)
		for (unsigned int i = 0; i < nr_procs; i++)
			if (procs[i]->group == g)
				proc_set(procs[i], &o, false, true, msg, sizeof(msg)); /* failed: skip */
	g->o.budget_bytes = o.budget_bytes;
	g->o.budget_share = o.budget_share;
	g->o.pt = o.pt;
	return reply_ok();
}

static const char *const stats_keys[] = { "op", "id", "pid", "cgroup", NULL };

static json_t *op_stats(json_t *req, const struct peer *peer, bool full)
{
	json_t *r = check_keys(req, full ? "stats" : "list", stats_keys), *arr, *garr;
	struct proc *p = NULL;
	struct group *g = NULL;

	if (r)
		return r;
	if (json_object_get(req, "pid") || json_object_get(req, "cgroup")) {
		r = target(req, peer, &p, &g);
		if (r)
			return r;
	}
	arr = json_array();
	garr = json_array();
	for (unsigned int i = 0; i < nr_procs; i++) {
		struct proc *q = procs[i];

		if (!visible(peer, q->by, q->owner) || (p && q != p) || (g && q->group != g))
			continue;
		json_array_append_new(arr, proc_json(q, full));
	}
	for (unsigned int i = 0; i < nr_groups; i++)
		if (visible(peer, groups[i]->by, groups[i]->by) && !p && (!g || g == groups[i]))
			json_array_append_new(garr, group_json(groups[i]));
	return json_pack("{s:b, s:o, s:o}", "ok", 1, "processes", arr, "cgroups", garr);
}

static json_t *op_hello(json_t *req, const struct peer *peer)
{
	static const char *const keys[] = { "op", "id", "protocol", "client", NULL };
	json_t *r = check_keys(req, "hello", keys), *v;

	if (r)
		return r;
	v = json_object_get(req, "protocol");
	if (v && (!json_is_integer(v) || json_integer_value(v) < 1))
		return reply_error(EINVAL, "\"protocol\" must be a positive integer");
	if (v && json_integer_value(v) > TIERMMD_PROTOCOL)
		return reply_error(EPROTONOSUPPORT,
				   "this tiermmd speaks protocol %d, the client asks for %" JSON_INTEGER_FORMAT,
				   TIERMMD_PROTOCOL, json_integer_value(v));
	return json_pack("{s:b, s:i, s:s, s:i, s:i, s:[sssssss]}", "ok", 1,
			 "protocol", TIERMMD_PROTOCOL, "version", tiermm_version_string(),
			 "pid", (int)getpid(), "uid", (int)peer->uid, "ops",
			 "hello", "attach", "detach", "set", "stats", "list", "ping");
}

json_t *managed_request(json_t *req, const struct peer *peer)
{
	json_t *op = json_object_get(req, "op"), *r;
	const char *s;

	if (!json_is_string(op))
		return reply_error(EINVAL, "a request needs \"op\", a string");
	s = json_string_value(op);
	if (!strcmp(s, "hello"))
		r = op_hello(req, peer);
	else if (!strcmp(s, "ping"))
		r = check_keys(req, "ping", (const char *const[]){ "op", "id", NULL });
	else if (!strcmp(s, "attach"))
		r = op_attach(req, peer);
	else if (!strcmp(s, "detach"))
		r = op_detach(req, peer);
	else if (!strcmp(s, "set"))
		r = op_set(req, peer);
	else if (!strcmp(s, "stats"))
		r = op_stats(req, peer, true);
	else if (!strcmp(s, "list"))
		r = op_stats(req, peer, false);
	else
		return reply_error(EOPNOTSUPP, "unknown op \"%.64s\"", s);
	if (!r && !strcmp(s, "ping"))
		r = reply_ok();
	return r;
}

/* ---- periodic work ---------------------------------------------------- */

static bool due(const struct timespec *t, const struct timespec *now)
{
	return now->tv_sec > t->tv_sec || (now->tv_sec == t->tv_sec && now->tv_nsec >= t->tv_nsec);
}

void managed_tick(void)
{
	struct timespec now;

	for (unsigned int i = 0; i < nr_procs;) {
		struct tiermm_runtime_stats s = { .sz = sizeof(s) };
		struct proc *p = procs[i];

		if (!tiermm_runtime_stats(p->rt, &s) && s.state == TIERMM_RUNTIME_EXITED) {
			proc_remove(i, "exited");
			continue;
		}
		if (proc_starttime(p->pid) != p->start) {
			/* Gone, and maybe the pid taken again: not ours to manage. */
			proc_remove(i, "exited (its pid is gone or reused)");
			continue;
		}
		if (s.state == TIERMM_RUNTIME_FAILED && !p->failed_logged) {
			fprintf(stderr, "tiermmd: process %d: its runtime failed: %s\n",
				(int)p->pid, s.error_msg);
			p->failed_logged = true;
		}
		i++;
	}
	for (unsigned int i = 0; i < nr_groups;) {
		struct group *g = groups[i];
		struct stat st;

		if (stat(g->path, &st)) {
			/* The cgroup was removed: its members are gone or moved. */
			group_remove(g);
			continue;
		}
		group_scan(g, NULL, NULL);
		i++;
	}
	clock_gettime(CLOCK_MONOTONIC, &now);
	for (unsigned int i = 0; i < nr_procs; i++)
		if (procs[i]->o.pt == PT_FOLLOW && due(&procs[i]->next_pt, &now))
			pt_now(procs[i]);
}

int managed_init(const struct daemon_limits *l)
{
	lim = *l;
	return 0;
}

void managed_fini(void)
{
	while (nr_procs)
		proc_remove(nr_procs - 1, "detached (tiermmd stops)");
	while (nr_groups)
		group_remove(groups[nr_groups - 1]);
	free(procs);
	free(groups);
	procs = NULL;
	groups = NULL;
}
