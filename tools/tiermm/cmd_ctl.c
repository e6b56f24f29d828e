// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * tiermm ctl: drive tiermmd over its socket (tiermmd-protocol(7)). Each
 * command is one request line and its reply; --json prints the reply as
 * the daemon sent it, otherwise a table or a line for humans.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"
#include "proto.h"

#define REPLY_TIMEOUT_MS 30000

void usage_ctl(FILE *f)
{
	fputs("Usage: tiermm ctl [--socket PATH] [--json] COMMAND [ARGS]\n"
	      "Ask tiermmd, the tiermm daemon (tiermmd(8)), to manage the memory tiering of\n"
	      "other processes, by pid or by cgroup, and read what it does.\n"
	      "\n"
	      "Commands:\n"
	      "  attach PID|--cgroup DIR [--budget SIZE] [--backend NAME] [--interval TIME]\n"
	      "         [--pt POLICY] [--rate-limit MIBS] [--cpu-quota SHARE] [--backoff N]\n"
	      "                     manage a process, or every process of a cgroup (also\n"
	      "                     those that join it later)\n"
	      "  detach PID|--cgroup DIR\n"
	      "                     stop managing (memory stays where it is)\n"
	      "  budget PID|--cgroup DIR SIZE\n"
	      "                     change the fast-tier budget while it runs\n"
	      "  pt PID|--cgroup DIR none|once|follow\n"
	      "                     page tables next to their data (tiermm.ko): never, now,\n"
	      "                     or now and every few seconds\n"
	      "  stats [PID|--cgroup DIR]\n"
	      "                     what the runtime of each managed process does\n"
	      "  list               managed processes and cgroups, a line each\n"
	      "  hello              the daemon's version and protocol\n"
	      "  send JSON          send one raw request line, print the reply\n"
	      "\n"
	      "Options:\n"
	      "  -S, --socket PATH     the daemon's socket (default: $TIERMMD_SOCKET, else\n"
	      "                        /run/tiermm/tiermmd.sock for root, else\n"
	      "                        $XDG_RUNTIME_DIR/tiermm/tiermmd.sock, else the first)\n"
	      "  -j, --json            print the daemon's reply, one JSON object\n"
	      "  -c, --cgroup DIR      the cgroup (below /sys/fs/cgroup, or relative to it)\n"
	      "  -b, --budget SIZE     fast-tier budget: bytes with an optional K, M, G or T\n"
	      "                        suffix, or a share of the resident memory, e.g. 20%\n"
	      "  -B, --backend NAME    hotness backend: auto (default), perf, scan, damon\n"
	      "  -I, --interval TIME   the runtime's epoch, e.g. 500ms (default) or 2s\n"
	      "      --pt POLICY       page-table policy at attach: none (default), once,\n"
	      "                        follow\n"
	      "      --rate-limit MIBS migration rate limit in MiB/s, or none\n"
	      "      --cpu-quota SHARE the runtime's CPU quota, a share of one CPU, or none\n"
	      "      --backoff N       once placement has settled, epochs up to N times longer,\n"
	      "                        sampling 2 rounds each: 1 to 1024 (default 32), 1: never\n"
	      "  -h, --help            show this help\n"
	      "\n"
	      "A user may manage only their own processes (and cgroups delegated to them)\n"
	      "unless root; they see only what they manage.\n"
	      "\n"
	      "Exit status: 0 on success, 1 when the daemon refused (its message on stderr)\n"
	      "or cannot be reached, 2 on a bad command line.\n", f);
}

static int connect_to(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		cli_err("ctl", "socket path %s is too long", path);
		return -1;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		cli_err("ctl", "cannot reach tiermmd at %s: %s (is it running? start it with "
			"'tiermmd' or 'systemctl start tiermmd')", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* Send line, read one reply line into *reply (malloc'd). 0 or -1. */
static int exchange(int fd, const char *line, char **reply)
{
	size_t len = strlen(line), off = 0, cap = 4096, n = 0;
	char *buf;

	while (off < len) {
		ssize_t w = send(fd, line + off, len - off, MSG_NOSIGNAL);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			cli_err("ctl", "sending to tiermmd: %s", strerror(errno));
			return -1;
		}
		off += (size_t)w;
	}
	buf = malloc(cap);
	if (!buf)
		return -1;
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t r;
		char *nl;

		if (poll(&p, 1, REPLY_TIMEOUT_MS) == 0) {
			cli_err("ctl", "tiermmd did not reply within %d s", REPLY_TIMEOUT_MS / 1000);
			break;
		}
		if (n + 1 >= cap) {
			char *nb = cap < (64u << 20) ? realloc(buf, cap * 2) : NULL;

			if (!nb) {
				cli_err("ctl", "reply too long");
				break;
			}
			buf = nb;
			cap *= 2;
		}
		r = recv(fd, buf + n, cap - n - 1, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			cli_err("ctl", "tiermmd closed the connection without a reply%s%s",
				r < 0 ? ": " : "", r < 0 ? strerror(errno) : "");
			break;
		}
		n += (size_t)r;
		buf[n] = '\0';
		nl = memchr(buf, '\n', n);
		if (nl) {
			*nl = '\0';
			*reply = buf;
			return 0;
		}
	}
	free(buf);
	return -1;
}

static double num(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	return json_is_number(v) ? json_number_value(v) : NAN;
}

static const char *str(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	return json_is_string(v) ? json_string_value(v) : "-";
}

static void print_list(json_t *r)
{
	json_t *procs = json_object_get(r, "processes"), *groups = json_object_get(r, "cgroups");
	size_t i;
	json_t *p;

	printf("%8s %-8s %-7s %12s %12s %12s  %s\n", "PID", "STATE", "BACKEND", "BUDGET", "FAST",
	       "RESIDENT", "CGROUP");
	json_array_foreach(procs, i, p) {
		char b[32], f[32], res[32];
		json_t *cg = json_object_get(p, "cgroup");

		cli_fmt_bytes(num(p, "budget_bytes"), b, sizeof(b));
		cli_fmt_bytes(num(p, "fast_bytes"), f, sizeof(f));
		cli_fmt_bytes(num(p, "resident_bytes"), res, sizeof(res));
		printf("%8.0f %-8s %-7s %12s %12s %12s  %s\n", num(p, "pid"), str(p, "state"),
		       str(p, "backend"), b, f, res, json_is_string(cg) ? json_string_value(cg) : "-");
		if (json_object_get(p, "error"))
			printf("%8s error: %s\n", "", str(p, "error"));
	}
	json_array_foreach(groups, i, p)
		printf("cgroup %s: %.0f member%s, %.0f attached, %.0f failed%s%s\n", str(p, "cgroup"),
		       num(p, "members"), num(p, "members") == 1 ? "" : "s", num(p, "attached"),
		       num(p, "failed"),
		       *str(p, "last_error") ? "; last: " : "", str(p, "last_error"));
}

static void print_stats(json_t *r)
{
	json_t *procs = json_object_get(r, "processes"), *p;
	size_t i;

	if (!json_array_size(procs))
		printf("no managed process\n");
	json_array_foreach(procs, i, p) {
		char b[32], f[32], res[32], hot[32], pr[32], de[32], pace[80];
		double share = num(p, "fast_access_share");
		json_t *loc;

		cli_fmt_bytes(num(p, "budget_bytes"), b, sizeof(b));
		cli_fmt_bytes(num(p, "fast_bytes"), f, sizeof(f));
		cli_fmt_bytes(num(p, "resident_bytes"), res, sizeof(res));
		cli_fmt_bytes(num(p, "hot_set_bytes"), hot, sizeof(hot));
		cli_fmt_bytes(num(p, "promoted_bytes"), pr, sizeof(pr));
		cli_fmt_bytes(num(p, "demoted_bytes"), de, sizeof(de));
		printf("process %.0f: %s, backend %s (tiers %.0f -> %.0f), %.0f epochs in %.1f s",
		       num(p, "pid"), str(p, "state"), str(p, "backend"), num(p, "fast_tier"),
		       num(p, "slow_tier"), num(p, "epochs"), num(p, "wall_s"));
		cli_fmt_pace(num(p, "backoff"), num(p, "backoff_epochs"), pace, sizeof(pace));
		printf("%s\n", pace);
		if (json_object_get(p, "error"))
			printf("  error: %s\n", str(p, "error"));
		printf("  budget %s, hot set %s, on the fast tier %s of %s resident\n", b, hot, f,
		       res);
		printf("  promoted %s (%.0f pages), demoted %s (%.0f pages), failed %.0f pages\n",
		       pr, num(p, "promoted_pages"), de, num(p, "demoted_pages"),
		       num(p, "failed_pages"));
		if (isfinite(share))
			printf("  fast-tier share of the accessed pages the backend saw: %.1f%%\n",
			       100 * share);
		printf("  CPU: sampling %.2f s, classifying %.2f s, migrating %.2f s\n",
		       num(p, "cpu_sampling_s"), num(p, "cpu_classify_s"), num(p, "cpu_migrate_s"));
		printf("  page tables: %s, %.0f tables moved%s%s\n", str(p, "pt"), num(p, "pt_moved"),
		       *str(p, "pt_error") ? "; " : "", str(p, "pt_error"));
		loc = json_object_get(p, "pt_locality");
		if (json_is_number(json_object_get(loc, "share")))
			printf("  page-table locality: %.0f%% of %.0f leaf tables on their data's node\n",
			       100 * num(loc, "share"), num(loc, "tables"));
		else if (json_object_get(loc, "error"))
			printf("  page-table locality: unknown (%s)\n", str(loc, "error"));
	}
}

enum { OPT_PT = 256, OPT_RATE, OPT_QUOTA, OPT_BACKOFF };

/* A number or "none" as a JSON value. */
static json_t *num_or_none(const char *s)
{
	char *end;
	double v;

	if (!strcmp(s, "none"))
		return json_string("none");
	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(v))
		return NULL;
	return json_real(v);
}

int cmd_ctl(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 'S' },
		{ "json", no_argument, NULL, 'j' },
		{ "cgroup", required_argument, NULL, 'c' },
		{ "budget", required_argument, NULL, 'b' },
		{ "backend", required_argument, NULL, 'B' },
		{ "interval", required_argument, NULL, 'I' },
		{ "pt", required_argument, NULL, OPT_PT },
		{ "rate-limit", required_argument, NULL, OPT_RATE },
		{ "cpu-quota", required_argument, NULL, OPT_QUOTA },
		{ "backoff", required_argument, NULL, OPT_BACKOFF },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	const char *sock_opt = NULL, *cgroup = NULL, *cmd;
	char sock[PATH_MAX], *line = NULL, *reply = NULL;
	json_t *req = json_object(), *r = NULL;
	bool json = false;
	int c, fd, ret = CLI_USAGE;
	long pid = 0;

	if (!req)
		return CLI_FAIL;
	optind = 1;
	while ((c = getopt_long(argc, argv, "S:jc:b:B:I:h", opts, NULL)) != -1) {
		json_t *v = NULL;

		switch (c) {
		case 'S':
			sock_opt = optarg;
			continue;
		case 'j':
			json = true;
			continue;
		case 'c':
			cgroup = optarg;
			continue;
		case 'h':
			usage_ctl(stdout);
			json_decref(req);
			return CLI_OK;
		case 'b':
			json_object_set_new(req, "budget", json_string(optarg));
			continue;
		case 'B':
			json_object_set_new(req, "backend", json_string(optarg));
			continue;
		case 'I': {
			char *end;
			double ms = strtod(optarg, &end);

			if (end == optarg || !(ms > 0) || !isfinite(ms) || ms > 60000000)
				goto bad_value;
			if (!strcmp(end, "s"))
				ms *= 1000;
			else if (*end && strcmp(end, "ms"))
				goto bad_value;
			json_object_set_new(req, "epoch_ms", json_integer((json_int_t)llround(ms)));
			continue;
		}
		case OPT_PT:
			json_object_set_new(req, "pt", json_string(optarg));
			continue;
		case OPT_RATE:
			v = num_or_none(optarg);
			if (!v)
				goto bad_value;
			json_object_set_new(req, "rate_limit_mib_s", v);
			continue;
		case OPT_QUOTA:
			v = num_or_none(optarg);
			if (!v)
				goto bad_value;
			json_object_set_new(req, "cpu_quota", v);
			continue;
		case OPT_BACKOFF: {
			char *end;
			long n;

			/* An integer; its range is the daemon's to check, as for the others. */
			errno = 0;
			n = strtol(optarg, &end, 10);
			if (errno || end == optarg || *end)
				goto bad_value;
			json_object_set_new(req, "backoff_max", json_integer(n));
			continue;
		}
		default:
			cli_err("ctl", "try 'tiermm ctl --help'");
			json_decref(req);
			return CLI_USAGE;
		}
bad_value:
		cli_err("ctl", "bad value '%s' for an option", optarg);
		json_decref(req);
		return CLI_USAGE;
	}
	if (optind >= argc) {
		cli_err("ctl", "a command is needed: attach, detach, budget, pt, stats, list, hello or send");
		goto out;
	}
	cmd = argv[optind++];
	{
		/* getopt moved the options first: the rest are the command's arguments. */
		char *pos[3];
		int npos = argc - optind;

		if (npos > 2) {
			cli_err("ctl", "too many arguments for '%s'", cmd);
			goto out;
		}
		for (int i = 0; i < npos; i++)
			pos[i] = argv[optind + i];
		if (!strcmp(cmd, "send")) {
			if (npos != 1) {
				cli_err("ctl", "send takes one JSON request");
				goto out;
			}
			line = malloc(strlen(pos[0]) + 2);
			if (!line) {
				ret = CLI_FAIL;
				goto out;
			}
			sprintf(line, "%s\n", pos[0]);
		} else {
			bool target = !strcmp(cmd, "attach") || !strcmp(cmd, "detach") ||
				      !strcmp(cmd, "budget") || !strcmp(cmd, "pt");
			bool optional = !strcmp(cmd, "stats");
			int want = (!strcmp(cmd, "budget") || !strcmp(cmd, "pt")) ? 1 : 0;
			const char *op = cmd;
			int k = 0;

			if (!target && !optional && strcmp(cmd, "list") && strcmp(cmd, "hello")) {
				cli_err("ctl", "unknown command '%s' (attach, detach, budget, pt, stats, list, hello, send)",
					cmd);
				goto out;
			}
			if ((target || optional) && !cgroup && npos > k) {
				char *end;

				errno = 0;
				pid = strtol(pos[k], &end, 10);
				if (errno || end == pos[k] || *end || pid <= 0 || pid > INT_MAX) {
					cli_err("ctl", "'%s' is not a process id", pos[k]);
					goto out;
				}
				k++;
			}
			if (target && !pid && !cgroup) {
				cli_err("ctl", "%s needs a PID or --cgroup DIR", cmd);
				goto out;
			}
			if (pid && cgroup) {
				cli_err("ctl", "give a PID or --cgroup, not both");
				goto out;
			}
			if (npos - k != want) {
				cli_err("ctl", "%s takes %s", cmd,
					!strcmp(cmd, "budget") ? "PID|--cgroup DIR SIZE" :
					!strcmp(cmd, "pt") ? "PID|--cgroup DIR none|once|follow" :
					optional ? "[PID|--cgroup DIR]" : target ? "PID|--cgroup DIR" :
					"no argument");
				goto out;
			}
			if (strcmp(cmd, "attach") &&
			    (json_object_size(req) > (json_object_get(req, "pt") &&
						      !strcmp(cmd, "pt") ? 1u : 0u))) {
				cli_err("ctl", "--budget, --backend, --interval, --pt, --rate-limit, --cpu-quota and --backoff go with attach");
				goto out;
			}
			if (!strcmp(cmd, "budget")) {
				op = "set";
				json_object_set_new(req, "budget", json_string(pos[k]));
			} else if (!strcmp(cmd, "pt")) {
				op = "set";
				json_object_set_new(req, "pt", json_string(pos[k]));
			}
			json_object_set_new(req, "op", json_string(op));
			if (pid)
				json_object_set_new(req, "pid", json_integer(pid));
			if (cgroup)
				json_object_set_new(req, "cgroup", json_string(cgroup));
			line = json_dumps(req, JSON_COMPACT);
			if (line) {
				char *l2 = realloc(line, strlen(line) + 2);

				if (l2) {
					line = l2;
					strcat(line, "\n");
				}
			}
			if (!line) {
				ret = CLI_FAIL;
				goto out;
			}
		}
	}
	if (sock_opt)
		snprintf(sock, sizeof(sock), "%s", sock_opt);
	else if (tiermmd_default_socket(sock, sizeof(sock), getuid(), getenv(TIERMMD_SOCKET_ENV),
					getenv("XDG_RUNTIME_DIR"))) {
		cli_err("ctl", "the socket path is too long");
		goto out;
	}
	ret = CLI_FAIL;
	fd = connect_to(sock);
	if (fd < 0)
		goto out;
	if (exchange(fd, line, &reply)) {
		close(fd);
		goto out;
	}
	close(fd);
	r = json_loads(reply, 0, NULL);
	if (!json_is_object(r)) {
		cli_err("ctl", "tiermmd sent something that is not a JSON object: %.200s", reply);
		goto out;
	}
	if (json) {
		puts(reply);
	} else if (json_is_true(json_object_get(r, "ok"))) {
		if (!strcmp(cmd, "list"))
			print_list(r);
		else if (!strcmp(cmd, "stats"))
			print_stats(r);
		else if (!strcmp(cmd, "hello"))
			printf("tiermmd %s (pid %.0f), protocol %.0f\n", str(r, "version"),
			       num(r, "pid"), num(r, "protocol"));
		else if (!strcmp(cmd, "attach")) {
			json_t *a = json_object_get(r, "attached"), *f = json_object_get(r, "failed"), *x;
			size_t i;

			printf("attached %zu process%s", json_array_size(a),
			       json_array_size(a) == 1 ? "" : "es");
			json_array_foreach(a, i, x)
				printf("%s%" JSON_INTEGER_FORMAT, i ? ", " : ": ", json_integer_value(x));
			putchar('\n');
			json_array_foreach(f, i, x)
				printf("not attached: process %.0f: %s\n", num(x, "pid"), str(x, "message"));
		} else if (!strcmp(cmd, "send")) {
			puts(reply);
		}
	}
	if (!json_is_true(json_object_get(r, "ok"))) {
		cli_err("ctl", "%s: %s", str(r, "error"), str(r, "message"));
		goto out;
	}
	ret = CLI_OK;
out:
	json_decref(r);
	json_decref(req);
	free(reply);
	free(line);
	return ret;
}
