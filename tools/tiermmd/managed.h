/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * tiermmd's managed processes and cgroups, and the requests that act on
 * them. Single-threaded: only the daemon's event loop calls these (each
 * managed process's runtime has its own threads, inside libtiermm).
 */
#ifndef TIERMMD_MANAGED_H
#define TIERMMD_MANAGED_H

#include <stdbool.h>
#include <sys/types.h>

#include <jansson.h>

/* Who sent a request (SO_PEERCRED of its connection). */
struct peer {
	pid_t pid;
	uid_t uid;
	gid_t gid;
};

struct daemon_limits {
	unsigned int max_procs;		/* managed processes at most */
	unsigned int max_groups;	/* managed cgroups at most */
	unsigned int pt_interval_ms;	/* "pt": "follow" period */
	const char *cgroup_root;	/* cgroups must be below it */
};

int managed_init(const struct daemon_limits *lim);
/* Stop every runtime (memory stays where it is) and free everything. */
void managed_fini(void);

/*
 * Handle one request (a JSON object, already parsed) from peer. Returns the
 * reply object (ok true or false), never NULL unless out of memory.
 */
json_t *managed_request(json_t *req, const struct peer *peer);

/*
 * Periodic work (about once a second): drop processes that exited, attach
 * new members of managed cgroups, move page tables under "follow".
 */
void managed_tick(void);

/* A reply {"ok": false, "error": NAME, "errno": N, "message": msg}. */
json_t *reply_error(int err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
