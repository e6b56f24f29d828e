/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * tiermm: conventions shared by every part of the API.
 *
 * Names:   public functions and types start with tiermm_, macros with TIERMM_.
 * Handles: opaque pointers (struct tiermm_caps *, ...) created by a *_load()
 *          or *_new() call and released by the matching *_free().
 * Options: a struct whose first member is `size_t sz`, declared and zeroed
 *          with TIERMM_OPTS(type, name, .field = value, ...). The library reads
 *          only the first sz bytes, so old binaries keep working when a
 *          struct grows; unknown non-zero trailing bytes are rejected.
 * Flags:   a call that has no options yet takes `unsigned int flags`, which
 *          must be 0 (-EINVAL otherwise).
 * Errors:  calls return 0 (or a non-negative count) on success and a
 *          negative errno on failure, and set errno to the same positive
 *          value. Calls returning a pointer return NULL and set errno.
 *          tiermm_strerror() gives the generic text of an error code and
 *          tiermm_errmsg() the detailed message of the last failure in the
 *          calling thread.
 * Output:  the library prints nothing unless asked: install a print
 *          callback with tiermm_set_print(), or set TIERMM_LOG to one of
 *          error, warn, info, debug to print to stderr.
 * Threads: every call is thread-safe unless its man page says otherwise;
 *          handles may be shared read-only between threads.
 */
#ifndef TIERMM_COMMON_H
#define TIERMM_COMMON_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(TIERMM_BUILDING_LIB)
#define TIERMM_API __attribute__((visibility("default")))
#else
#define TIERMM_API
#endif

/*
 * Declare an options struct named NAME of type struct TYPE, zero it and set
 * its size, then the given designated initialisers:
 *   TIERMM_OPTS(tiermm_caps_opts, o, .fsroot = "/tmp/capture");
 */
#define TIERMM_OPTS(TYPE, NAME, ...)					\
	struct TYPE NAME = ({						\
		struct TYPE __tiermm_o;					\
		memset(&__tiermm_o, 0, sizeof(__tiermm_o));		\
		__tiermm_o = (struct TYPE){ .sz = sizeof(struct TYPE),	\
					    __VA_ARGS__ };		\
		__tiermm_o;						\
	})

/* Run-time version of the library: (major << 16) | (minor << 8) | patch. */
TIERMM_API uint32_t tiermm_version(void);
/* The same as a string, e.g. "0.1.0". */
TIERMM_API const char *tiermm_version_string(void);

/* Generic description of a tiermm error code (negative or positive errno). */
TIERMM_API const char *tiermm_strerror(int err);
/*
 * Detailed, human-readable message of the last call that failed in the
 * calling thread ("" if none failed yet). Valid until the next failing call
 * in the same thread.
 */
TIERMM_API const char *tiermm_errmsg(void);

enum tiermm_log_level {
	TIERMM_LOG_ERROR = 0,
	TIERMM_LOG_WARN = 1,
	TIERMM_LOG_INFO = 2,
	TIERMM_LOG_DEBUG = 3,
};

/* A print callback receives every message at or below the configured level. */
typedef void (*tiermm_print_fn)(enum tiermm_log_level level, const char *msg,
				void *ctx);

/*
 * Install fn (NULL restores the default: stderr when TIERMM_LOG is set,
 * nothing otherwise) and the highest level it receives. Returns 0 or -EINVAL.
 */
TIERMM_API int tiermm_set_print(tiermm_print_fn fn, enum tiermm_log_level max,
				void *ctx);

#ifdef __cplusplus
}
#endif

#endif /* TIERMM_COMMON_H */
