// SPDX-License-Identifier: LGPL-2.1-or-later
/* Error conventions, messages, the print callback and option structs. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "internal.h"

static char last[512];
static int calls;
static enum tiermm_log_level last_level;

static void capture(enum tiermm_log_level level, const char *msg, void *ctx)
{
	assert_ptr_equal(ctx, &calls);
	snprintf(last, sizeof(last), "%s", msg);
	last_level = level;
	calls++;
}

static void test_version(void **state)
{
	(void)state;
	assert_int_equal(tiermm_version(), TIERMM_VERSION_CODE);
	assert_string_equal(tiermm_version_string(), TIERMM_VERSION_STRING);
}

static void test_strerror(void **state)
{
	(void)state;
	assert_string_equal(tiermm_strerror(0), "Success");
	assert_non_null(strstr(tiermm_strerror(-ENODEV), "tiermm.ko"));
	assert_string_equal(tiermm_strerror(-ENODEV), tiermm_strerror(ENODEV));
	assert_string_equal(tiermm_strerror(-ENOENT), strerror(ENOENT));
}

static void test_fail_and_print(void **state)
{
	(void)state;
	/* No output by default (TIERMM_LOG unset in the test environment). */
	assert_int_equal(tiermm_set_print(capture, TIERMM_LOG_WARN, &calls), 0);
	errno = 0;
	assert_int_equal(tiermm__fail(EPERM, "no %s", "way"), -EPERM);
	assert_int_equal(errno, EPERM);
	assert_string_equal(tiermm_errmsg(), "no way");
	assert_int_equal(calls, 1);
	assert_string_equal(last, "no way");
	assert_int_equal(last_level, TIERMM_LOG_WARN);
	/* Debug messages are filtered at level WARN. */
	tiermm__log(TIERMM_LOG_DEBUG, "hidden");
	assert_int_equal(calls, 1);
	tiermm__log(TIERMM_LOG_ERROR, "shown %d", 5);
	assert_int_equal(calls, 2);
	assert_string_equal(last, "shown 5");
	/* Bad level: -EINVAL and the callback stays. */
	assert_int_equal(tiermm_set_print(NULL, (enum tiermm_log_level)7, NULL),
			 -EINVAL);
	assert_int_equal(calls, 3);	/* the failure itself was reported */
	assert_int_equal(tiermm_set_print(NULL, TIERMM_LOG_ERROR, NULL), 0);
	tiermm__log(TIERMM_LOG_ERROR, "gone");
	assert_int_equal(calls, 3);
}

struct test_opts {
	size_t sz;
	int a;
	int b;
};

static void test_opts(void **state)
{
	unsigned char big[64];
	struct test_opts *o = (struct test_opts *)big;

	(void)state;
	assert_int_equal(tiermm__opts_check(NULL, 8, 16, "x"), 0);
	{
		TIERMM_OPTS(test_opts, t, .b = 3);

		assert_int_equal(t.sz, sizeof(struct test_opts));
		assert_int_equal(t.a, 0);
		assert_int_equal(t.b, 3);
		assert_int_equal(tiermm__opts_check(&t, sizeof(size_t),
						    sizeof(t), "t"), 0);
	}
	memset(big, 0, sizeof(big));
	o->sz = sizeof(big);	/* newer caller, unknown fields zero: fine */
	assert_int_equal(tiermm__opts_check(o, sizeof(size_t),
					    sizeof(struct test_opts), "o"), 0);
	big[40] = 1;		/* an unknown field set: refused */
	assert_int_equal(tiermm__opts_check(o, sizeof(size_t),
					    sizeof(struct test_opts), "o"),
			 -EINVAL);
	assert_non_null(strstr(tiermm_errmsg(), "does not know"));
	o->sz = 4;		/* older than the oldest layout */
	assert_int_equal(tiermm__opts_check(o, sizeof(size_t),
					    sizeof(struct test_opts), "o"),
			 -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_version),
		cmocka_unit_test(test_strerror),
		cmocka_unit_test(test_fail_and_print),
		cmocka_unit_test(test_opts),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
