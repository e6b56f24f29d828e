/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * tiermmd's control protocol (tiermmd-protocol(7)), shared by the daemon and
 * `tiermm ctl`: one JSON object per line each way over a local stream
 * socket, a reply for every request, in order.
 */
#ifndef TIERMMD_PROTO_H
#define TIERMMD_PROTO_H

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

/* The protocol's version; a client's "hello" may ask for at most this. */
#define TIERMMD_PROTOCOL 1
/* Longest request line, its newline included. */
#define TIERMMD_LINE_MAX 65536
/* Socket of a daemon run by root, and below $XDG_RUNTIME_DIR otherwise. */
#define TIERMMD_SOCKET_SYSTEM "/run/tiermm/tiermmd.sock"
#define TIERMMD_SOCKET_USER "tiermm/tiermmd.sock"
/* The environment variable that names the socket for clients and the daemon. */
#define TIERMMD_SOCKET_ENV "TIERMMD_SOCKET"

/*
 * The default socket path for a process of this uid: $TIERMMD_SOCKET if set,
 * TIERMMD_SOCKET_SYSTEM for root or when there is no $XDG_RUNTIME_DIR,
 * $XDG_RUNTIME_DIR/TIERMMD_SOCKET_USER otherwise. 0, or -ENAMETOOLONG.
 */
static inline int tiermmd_default_socket(char *buf, size_t len, uid_t uid,
					 const char *env, const char *xdg)
{
	int n;

	if (env && *env)
		n = snprintf(buf, len, "%s", env);
	else if (uid == 0 || !xdg || !*xdg)
		n = snprintf(buf, len, "%s", TIERMMD_SOCKET_SYSTEM);
	else
		n = snprintf(buf, len, "%s/%s", xdg, TIERMMD_SOCKET_USER);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

#endif
