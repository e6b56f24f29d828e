// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * tiermmd: manages the memory tiering of other processes, by pid or cgroup,
 * with libtiermm's runtime, driven over a local socket (tiermmd(8),
 * tiermmd-protocol(7)).
 *
 * One thread runs the event loop: the listening socket, the clients, a
 * one-second timer for periodic work (managed.c), signals through a
 * signalfd. Clients are non-blocking; a request is handled once its whole
 * line is in, so a client that disconnects mid-request leaves nothing
 * behind; a client that does not read its replies is dropped once
 * OUT_MAX bytes wait for it. The runtimes of the managed processes run in
 * their own threads inside libtiermm and never wait for this loop.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>
#include <tiermm.h>

#include "managed.h"
#include "proto.h"

#define OUT_MAX (4u << 20)	/* replies waiting for a slow reader */

struct client {
	int fd;
	struct peer peer;
	char *in;		/* TIERMMD_LINE_MAX bytes */
	size_t in_len;
	bool discarding;	/* skipping the rest of an oversized line */
	char *out;
	size_t out_len, out_cap;
	uint64_t requests;
};

static struct client **clients;
static unsigned int nr_clients, max_clients = 64, max_user_clients = 16;
static bool verbose;

static void usage(FILE *f)
{
	fputs("Usage: tiermmd [OPTIONS]\n"
	      "Manage the memory tiering of other processes, by pid or cgroup, with\n"
	      "libtiermm's runtime (hot memory to the fast tier, cold to the slow one),\n"
	      "as asked over a local socket: `tiermm ctl`, or any client speaking the\n"
	      "line-oriented JSON protocol of tiermmd-protocol(7).\n"
	      "\n"
	      "Options:\n"
	      "  -S, --socket=PATH       listen on PATH (default: $TIERMMD_SOCKET, else\n"
	      "                          /run/tiermm/tiermmd.sock for root, else\n"
	      "                          $XDG_RUNTIME_DIR/tiermm/tiermmd.sock)\n"
	      "  -m, --socket-mode=MODE  permissions of the socket, octal (default 0666:\n"
	      "                          anybody may connect; what they may do depends on\n"
	      "                          who they are)\n"
	      "      --max-clients=N     connections at most (default 64)\n"
	      "      --max-user-clients=N  connections of one user other than root at\n"
	      "                          most (default 16)\n"
	      "      --max-procs=N       managed processes at most (default 256)\n"
	      "      --max-cgroups=N     managed cgroups at most (default 64)\n"
	      "      --pt-interval=MS    period of the \"follow\" page-table policy\n"
	      "                          (default 5000)\n"
	      "      --cgroup-root=DIR   cgroups must be below DIR (default /sys/fs/cgroup)\n"
	      "  -v, --verbose           log every request\n"
	      "  -h, --help              show this help\n"
	      "\n"
	      "It runs in the foreground and logs on stderr; SIGTERM, SIGINT or SIGHUP stop it\n"
	      "(memory stays where it is). Exit status: 0 after a signal, 1 when it could\n"
	      "not start, 2 on a bad command line.\n", f);
}

static void drop_client(unsigned int i, const char *why)
{
	struct client *c = clients[i];

	if (verbose || why)
		fprintf(stderr, "tiermmd: client pid %d uid %u: %s\n", (int)c->peer.pid,
			(unsigned int)c->peer.uid, why ? why : "disconnected");
	close(c->fd);
	free(c->in);
	free(c->out);
	free(c);
	clients[i] = clients[--nr_clients];
}

/* Queue a reply (with its newline); false when the client must go. */
static bool queue(struct client *c, json_t *reply)
{
	char *s = json_dumps(reply, JSON_COMPACT | JSON_ENSURE_ASCII);
	size_t n;

	json_decref(reply);
	if (!s)
		return false;
	n = strlen(s);
	if (c->out_len + n + 1 > OUT_MAX) {
		free(s);
		return false;
	}
	if (c->out_len + n + 1 > c->out_cap) {
		size_t cap = c->out_cap ? c->out_cap : 4096;
		char *o;

		while (cap < c->out_len + n + 1)
			cap *= 2;
		o = realloc(c->out, cap);
		if (!o) {
			free(s);
			return false;
		}
		c->out = o;
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, s, n);
	c->out[c->out_len + n] = '\n';
	c->out_len += n + 1;
	free(s);
	return true;
}

/* Handle one complete line; false when the client must go. */
static bool handle_line(struct client *c, const char *line, size_t len)
{
	json_error_t jerr;
	json_t *req, *reply, *id = NULL;

	while (len && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t'))
		len--;
	if (!len)
		return true;	/* blank lines are allowed, and ignored */
	c->requests++;
	req = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!req) {
		reply = reply_error(EINVAL, "not JSON: %s (column %d)", jerr.text, jerr.column);
	} else if (!json_is_object(req)) {
		reply = reply_error(EINVAL, "a request is a JSON object");
	} else {
		id = json_object_get(req, "id");
		if (id && !json_is_string(id) && !json_is_integer(id) && !json_is_null(id)) {
			reply = reply_error(EINVAL, "\"id\" must be a string or an integer");
			id = NULL;
		} else {
			reply = managed_request(req, &c->peer);
		}
	}
	if (!reply)
		reply = reply_error(ENOMEM, "out of memory");
	if (id)
		json_object_set(reply, "id", id);
	if (verbose) {
		json_t *ok = json_object_get(reply, "ok");

		fprintf(stderr, "tiermmd: client pid %d uid %u: %.*s -> %s\n", (int)c->peer.pid,
			(unsigned int)c->peer.uid, (int)(len > 200 ? 200 : len), line,
			json_is_true(ok) ? "ok" : json_string_value(json_object_get(reply, "error")));
	}
	json_decref(req);
	return queue(c, reply);
}

/* Read what there is; false when the client is gone or must go. */
static bool client_read(struct client *c, const char **why)
{
	/* One read a wakeup: a client that writes without pause cannot starve the others. */
	ssize_t n = recv(c->fd, c->in + c->in_len, TIERMMD_LINE_MAX - c->in_len, 0);
	size_t done = 0;

	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
	if (n == 0)
		return false;	/* an unfinished line goes with it */
	c->in_len += (size_t)n;
	for (size_t i = 0; i < c->in_len; i++) {
		if (c->in[i] != '\n')
			continue;
		if (c->discarding) {
			c->discarding = false;
		} else if (!handle_line(c, c->in + done, i - done)) {
			*why = "does not read its replies";
			return false;
		}
		done = i + 1;
	}
	memmove(c->in, c->in + done, c->in_len - done);
	c->in_len -= done;
	if (c->in_len == TIERMMD_LINE_MAX) {
		/* No newline in a whole buffer: refuse it, skip to the next line. */
		if (!c->discarding &&
		    !queue(c, reply_error(E2BIG, "request longer than %d bytes",
					  TIERMMD_LINE_MAX - 1))) {
			*why = "does not read its replies";
			return false;
		}
		c->discarding = true;
		c->in_len = 0;
	}
	return true;
}

/* Write what is queued; false when the client is gone. */
static bool client_write(struct client *c)
{
	while (c->out_len) {
		ssize_t n = send(c->fd, c->out, c->out_len, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
		memmove(c->out, c->out + n, c->out_len - (size_t)n);
		c->out_len -= (size_t)n;
	}
	return true;
}

static void accept_clients(int lfd)
{
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct ucred cred;
		socklen_t cl = sizeof(cred);
		struct client *c, **nc;
		unsigned int mine;

		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
			    errno != ECONNABORTED)
				fprintf(stderr, "tiermmd: accept: %s\n", strerror(errno));
			return;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl)) {
			fprintf(stderr, "tiermmd: SO_PEERCRED: %s\n", strerror(errno));
			close(fd);
			continue;
		}
		mine = 0;
		for (unsigned int i = 0; i < nr_clients; i++)
			mine += clients[i]->peer.uid == cred.uid;
		if (nr_clients >= max_clients || (cred.uid != 0 && mine >= max_user_clients)) {
			static const char msg[] =
				"{\"ok\":false,\"error\":\"EBUSY\",\"errno\":16,\"message\":\"tiermmd has too many clients\"}\n";

			fprintf(stderr,
				"tiermmd: refusing a connection of pid %d uid %u: %u clients, %u of this user\n",
				(int)cred.pid, (unsigned int)cred.uid, nr_clients, mine);
			(void)!send(fd, msg, sizeof(msg) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
			close(fd);
			continue;
		}
		c = calloc(1, sizeof(*c));
		nc = realloc(clients, (nr_clients + 1) * sizeof(*clients));
		if (nc)
			clients = nc;
		if (!c || !nc || !(c->in = malloc(TIERMMD_LINE_MAX))) {
			free(c);
			close(fd);
			continue;
		}
		c->fd = fd;
		c->peer.pid = cred.pid;
		c->peer.uid = cred.uid;
		c->peer.gid = cred.gid;
		clients[nr_clients++] = c;
		if (verbose)
			fprintf(stderr, "tiermmd: client pid %d uid %u connected\n", (int)cred.pid,
				(unsigned int)cred.uid);
	}
}

/* Create the socket's directory (0755) if missing; only its last component. */
static int make_dir_of(const char *path)
{
	char dir[PATH_MAX];
	char *slash;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = '\0';
	if (mkdir(dir, 0755) && errno != EEXIST)
		return -errno;
	return 0;
}

static int listen_on(const char *path, mode_t mode)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	int fd, ret;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "tiermmd: socket path %s is too long (at most %zu bytes)\n",
			path, sizeof(sa.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	ret = make_dir_of(path);
	if (ret) {
		fprintf(stderr, "tiermmd: cannot create the directory of %s: %s\n", path,
			strerror(-ret));
		return ret;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		/* A daemon that answers owns it; a stale socket file is ours to take. */
		int probe;
		bool alive;

		if (errno != EADDRINUSE)
			goto fail;
		probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		alive = probe >= 0 && !connect(probe, (struct sockaddr *)&sa, sizeof(sa));
		if (probe >= 0)
			close(probe);
		if (alive) {
			fprintf(stderr, "tiermmd: another tiermmd listens on %s\n", path);
			close(fd);
			return -EADDRINUSE;
		}
		if (lstat(path, &st) || !S_ISSOCK(st.st_mode)) {
			fprintf(stderr, "tiermmd: %s exists and is not a socket: not removing it\n",
				path);
			close(fd);
			return -EEXIST;
		}
		unlink(path);
		if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)))
			goto fail;
	}
	if (chmod(path, mode) || listen(fd, 16))
		goto fail;
	return fd;
fail:
	ret = -errno;
	fprintf(stderr, "tiermmd: cannot listen on %s: %s\n", path, strerror(errno));
	close(fd);
	return ret;
}

static int parse_uint(const char *s, unsigned long lo, unsigned long hi, unsigned long *v)
{
	char *end;

	errno = 0;
	*v = strtoul(s, &end, 10);
	return errno || end == s || *end || *v < lo || *v > hi || *s == '-' ? -EINVAL : 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 'S' },
		{ "socket-mode", required_argument, NULL, 'm' },
		{ "max-clients", required_argument, NULL, 'C' },
		{ "max-user-clients", required_argument, NULL, 'U' },
		{ "max-procs", required_argument, NULL, 'P' },
		{ "max-cgroups", required_argument, NULL, 'G' },
		{ "pt-interval", required_argument, NULL, 'T' },
		{ "cgroup-root", required_argument, NULL, 'R' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	struct daemon_limits lim = { .max_procs = 256, .max_groups = 64,
				     .pt_interval_ms = 5000, .cgroup_root = "/sys/fs/cgroup" };
	char sock[PATH_MAX], root[PATH_MAX];
	unsigned long v, mode = 0666;
	const char *sock_opt = NULL;
	struct itimerspec its = { { 1, 0 }, { 1, 0 } };
	struct pollfd *pfd = NULL;
	sigset_t sigs;
	int lfd, sfd, tfd, c, status = 0;
	bool stop = false;

	while ((c = getopt_long(argc, argv, "S:m:vh", opts, NULL)) != -1) {
		switch (c) {
		case 'S':
			sock_opt = optarg;
			break;
		case 'm': {
			char *end;

			errno = 0;
			mode = strtoul(optarg, &end, 8);
			if (errno || end == optarg || *end || mode > 0777) {
				fprintf(stderr, "tiermmd: --socket-mode: '%s' is not an octal mode\n",
					optarg);
				return 2;
			}
			break;
		}
		case 'C':
			if (parse_uint(optarg, 1, 4096, &v)) {
				fprintf(stderr, "tiermmd: --max-clients: 1 to 4096\n");
				return 2;
			}
			max_clients = (unsigned int)v;
			break;
		case 'U':
			if (parse_uint(optarg, 1, 4096, &v)) {
				fprintf(stderr, "tiermmd: --max-user-clients: 1 to 4096\n");
				return 2;
			}
			max_user_clients = (unsigned int)v;
			break;
		case 'P':
			if (parse_uint(optarg, 1, 65536, &v)) {
				fprintf(stderr, "tiermmd: --max-procs: 1 to 65536\n");
				return 2;
			}
			lim.max_procs = (unsigned int)v;
			break;
		case 'G':
			if (parse_uint(optarg, 1, 4096, &v)) {
				fprintf(stderr, "tiermmd: --max-cgroups: 1 to 4096\n");
				return 2;
			}
			lim.max_groups = (unsigned int)v;
			break;
		case 'T':
			if (parse_uint(optarg, 100, 3600000, &v)) {
				fprintf(stderr, "tiermmd: --pt-interval: 100 to 3600000 ms\n");
				return 2;
			}
			lim.pt_interval_ms = (unsigned int)v;
			break;
		case 'R':
			if (!realpath(optarg, root)) {
				fprintf(stderr, "tiermmd: --cgroup-root %s: %s\n", optarg,
					strerror(errno));
				return 2;
			}
			lim.cgroup_root = root;
			break;
		case 'v':
			verbose = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "tiermmd: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	if (sock_opt)
		snprintf(sock, sizeof(sock), "%s", sock_opt);
	else if (tiermmd_default_socket(sock, sizeof(sock), getuid(), getenv(TIERMMD_SOCKET_ENV),
					getenv("XDG_RUNTIME_DIR"))) {
		fprintf(stderr, "tiermmd: the socket path is too long\n");
		return 2;
	}

	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	sigprocmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	sfd = signalfd(-1, &sigs, SFD_NONBLOCK | SFD_CLOEXEC);
	tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (sfd < 0 || tfd < 0 || timerfd_settime(tfd, 0, &its, NULL)) {
		fprintf(stderr, "tiermmd: signalfd/timerfd: %s\n", strerror(errno));
		return 1;
	}
	lfd = listen_on(sock, (mode_t)mode);
	if (lfd < 0)
		return 1;
	managed_init(&lim);
	fprintf(stderr, "tiermmd %s: listening on %s (protocol %d)\n", tiermm_version_string(),
		sock, TIERMMD_PROTOCOL);

	while (!stop) {
		unsigned int n = 3, nc = nr_clients;
		struct pollfd *np = realloc(pfd, (3 + nc) * sizeof(*pfd));

		if (!np) {
			fprintf(stderr, "tiermmd: out of memory\n");
			status = 1;
			break;
		}
		pfd = np;
		pfd[0] = (struct pollfd){ .fd = lfd, .events = POLLIN };
		pfd[1] = (struct pollfd){ .fd = sfd, .events = POLLIN };
		pfd[2] = (struct pollfd){ .fd = tfd, .events = POLLIN };
		for (unsigned int i = 0; i < nc; i++)
			pfd[n++] = (struct pollfd){ .fd = clients[i]->fd,
				.events = POLLIN | (clients[i]->out_len ? POLLOUT : 0) };
		if (poll(pfd, n, -1) < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "tiermmd: poll: %s\n", strerror(errno));
			status = 1;
			break;
		}
		if (pfd[1].revents) {
			struct signalfd_siginfo si;

			while (read(sfd, &si, sizeof(si)) == sizeof(si)) {
				fprintf(stderr, "tiermmd: signal %u: stopping\n", si.ssi_signo);
				stop = true;
			}
		}
		if (pfd[2].revents) {
			uint64_t ticks;

			if (read(tfd, &ticks, sizeof(ticks)) == sizeof(ticks))
				managed_tick();
		}
		/* Clients by fd (the array changes as they go). */
		for (unsigned int k = 3; k < n; k++) {
			const char *why;
			unsigned int i;

			if (!pfd[k].revents)
				continue;
			for (i = 0; i < nr_clients && clients[i]->fd != pfd[k].fd; i++)
				;
			if (i == nr_clients)
				continue;
			why = NULL;
			if ((pfd[k].revents & (POLLIN | POLLHUP | POLLERR)) &&
			    !client_read(clients[i], &why)) {
				client_write(clients[i]);	/* what it may still read */
				drop_client(i, why);
				continue;
			}
			if (!client_write(clients[i]))
				drop_client(i, NULL);	/* gone before its replies */
		}
		if (pfd[0].revents)
			accept_clients(lfd);
	}
	while (nr_clients)
		drop_client(nr_clients - 1, NULL);
	managed_fini();
	close(lfd);
	unlink(sock);
	free(pfd);
	free(clients);
	fprintf(stderr, "tiermmd: stopped\n");
	return status;
}
