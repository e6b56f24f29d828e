// SPDX-License-Identifier: LGPL-2.1-or-later
/* Errors, messages and the print callback. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"

static __thread char tiermm__msg[512];

static pthread_mutex_t print_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t print_once = PTHREAD_ONCE_INIT;
static tiermm_print_fn print_fn;
static void *print_ctx;
static int print_max = -1;	/* -1: print nothing */

static void print_stderr(enum tiermm_log_level level, const char *msg,
			 void *ctx)
{
	static const char *const names[] = { "error", "warn", "info", "debug" };

	(void)ctx;
	fprintf(stderr, "tiermm: %s: %s\n", names[level], msg);
}

/* TIERMM_LOG=error|warn|info|debug (or 0-3) turns on stderr output. */
static void print_init_from_env(void)
{
	static const char *const names[] = { "error", "warn", "info", "debug" };
	const char *v = getenv("TIERMM_LOG");

	if (!v || !*v)
		return;
	for (int i = 0; i < 4; i++) {
		if (!strcasecmp(v, names[i]) || (v[0] == '0' + i && !v[1])) {
			print_fn = print_stderr;
			print_max = i;
			return;
		}
	}
	fprintf(stderr,
		"tiermm: TIERMM_LOG=%s is not one of error, warn, info, debug; logging stays off\n",
		v);
}

int tiermm_set_print(tiermm_print_fn fn, enum tiermm_log_level max, void *ctx)
{
	if ((int)max < TIERMM_LOG_ERROR || max > TIERMM_LOG_DEBUG)
		return tiermm__fail(EINVAL, "log level %d is out of range 0-3",
				    (int)max);
	pthread_once(&print_once, print_init_from_env);
	pthread_mutex_lock(&print_lock);
	if (fn) {
		print_fn = fn;
		print_ctx = ctx;
		print_max = max;
	} else {
		print_fn = NULL;
		print_ctx = NULL;
		print_max = -1;
		print_init_from_env();
	}
	pthread_mutex_unlock(&print_lock);
	return 0;
}

static void vlog(enum tiermm_log_level level, const char *fmt, va_list ap)
{
	char buf[1024];
	tiermm_print_fn fn;
	void *ctx;
	int saved = errno;

	pthread_once(&print_once, print_init_from_env);
	pthread_mutex_lock(&print_lock);
	fn = (int)level <= print_max ? print_fn : NULL;
	ctx = print_ctx;
	pthread_mutex_unlock(&print_lock);
	if (fn) {
		vsnprintf(buf, sizeof(buf), fmt, ap);
		fn(level, buf, ctx);
	}
	errno = saved;
}

void tiermm__log(enum tiermm_log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(level, fmt, ap);
	va_end(ap);
}

int tiermm__fail(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(tiermm__msg, sizeof(tiermm__msg), fmt, ap);
	va_end(ap);
	tiermm__log(TIERMM_LOG_WARN, "%s", tiermm__msg);
	errno = err;
	return -err;
}

const char *tiermm_errmsg(void)
{
	return tiermm__msg;
}

const char *tiermm_strerror(int err)
{
	static __thread char buf[128];

	if (err < 0)
		err = -err;
	switch (err) {
	case 0:
		return "Success";
	case ENODEV:
		return "tiermm.ko is not loaded or does not offer this operation";
	case ENOTSUP:
		return "Not supported by the running kernel";
	case EPROTO:
		return "Version mismatch: tiermm.ko's API or a cache's format is not one this library speaks";
	default:
		return strerror_r(err, buf, sizeof(buf)); /* GNU variant */
	}
}

int tiermm__opts_check(const void *opts, size_t min_sz, size_t known_sz,
		       const char *what)
{
	const unsigned char *p = opts;
	size_t sz;

	if (!opts)
		return 0;
	sz = *(const size_t *)opts;
	if (sz < min_sz)
		return tiermm__fail(EINVAL,
				    "%s: sz is %zu, less than the smallest known size %zu (declare it with TIERMM_OPTS)",
				    what, sz, min_sz);
	for (size_t i = known_sz; i < sz; i++)
		if (p[i])
			return tiermm__fail(EINVAL,
					    "%s: sz %zu covers fields this library (%zu bytes) does not know, and they are not zero",
					    what, sz, known_sz);
	return 0;
}
