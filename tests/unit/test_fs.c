// SPDX-License-Identifier: LGPL-2.1-or-later
/* The rooted /sys and /proc reader and the list parser. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "internal.h"

static char root[PATH_MAX];

static void put(const char *rel, const char *content)
{
	char path[PATH_MAX * 2], *slash;
	FILE *f;

	snprintf(path, sizeof(path), "%s%s", root, rel);
	for (slash = path + strlen(root) + 1; (slash = strchr(slash, '/'));
	     slash++) {
		*slash = '\0';
		mkdir(path, 0755);
		*slash = '/';
	}
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(content, f);
	fclose(f);
}

static int setup(void **state)
{
	(void)state;
	strcpy(root, "/tmp/tiermm-test-fs-XXXXXX");
	assert_non_null(mkdtemp(root));
	return 0;
}

static int teardown(void **state)
{
	char cmd[PATH_MAX + 16];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	return system(cmd);
}

static void test_list_parse(void **state)
{
	uint64_t bits[16];

	(void)state;
	assert_int_equal(tiermm__list_parse("0-3,8,10-11\n", bits, 1024), 7);
	assert_true(tiermm__bit_test(bits, 0));
	assert_true(tiermm__bit_test(bits, 3));
	assert_false(tiermm__bit_test(bits, 4));
	assert_true(tiermm__bit_test(bits, 8));
	assert_true(tiermm__bit_test(bits, 11));
	assert_int_equal(tiermm__list_parse("", bits, 1024), 0);
	assert_int_equal(tiermm__list_parse("\n", bits, 1024), 0);
	assert_int_equal(tiermm__list_parse("5", bits, 1024), 1);
	assert_int_equal(tiermm__list_parse("0-1023", bits, 1024), 1024);
	assert_int_equal(tiermm__list_parse("1,1,1", bits, 1024), 1);
	/* Bad input: rejected, never half-parsed into a wrong answer. */
	assert_int_equal(tiermm__list_parse("1024", bits, 1024), -EINVAL);
	assert_int_equal(tiermm__list_parse("3-1", bits, 1024), -EINVAL);
	assert_int_equal(tiermm__list_parse("1,", bits, 1024), -EINVAL);
	assert_int_equal(tiermm__list_parse(",1", bits, 1024), -EINVAL);
	assert_int_equal(tiermm__list_parse("a", bits, 1024), -EINVAL);
	assert_int_equal(tiermm__list_parse("1-", bits, 1024), -EINVAL);
	assert_int_equal(tiermm__list_parse("-1", bits, 1024), -EINVAL);
	assert_int_equal(tiermm__list_parse("99999999999", bits, 1024), -EINVAL);
	assert_int_equal(tiermm__list_parse("1 2", bits, 1024), -EINVAL);
}

static void test_fs_read(void **state)
{
	struct tiermm__fs fs;
	char buf[64];
	uint64_t v = 42;

	(void)state;
	put("/sys/a/value", "123\n");
	put("/sys/a/text", "hello world\n\n");
	put("/sys/a/bad", "12x\n");
	put("/sys/a/empty", "");
	assert_int_equal(tiermm__fs_init(&fs, root), 0);
	assert_false(tiermm__fs_is_live(&fs));
	assert_int_equal(tiermm__fs_read(&fs, "/sys/a/text", buf, sizeof(buf)), 11);
	assert_string_equal(buf, "hello world");
	/* Truncation keeps a terminated string. */
	assert_int_equal(tiermm__fs_read(&fs, "/sys/a/text", buf, 6), 5);
	assert_string_equal(buf, "hello");
	assert_int_equal(tiermm__fs_read(&fs, "/sys/a/empty", buf, sizeof(buf)), 0);
	errno = 1234;
	assert_int_equal(tiermm__fs_read(&fs, "/sys/missing", buf, sizeof(buf)),
			 -ENOENT);
	assert_int_equal(errno, 1234);	/* never leaks errno */
	assert_int_equal(tiermm__fs_read_u64(&fs, "/sys/a/value", &v), 0);
	assert_int_equal(v, 123);
	v = 42;
	assert_int_equal(tiermm__fs_read_u64(&fs, "/sys/a/bad", &v), -EINVAL);
	assert_int_equal(v, 42);
	assert_int_equal(tiermm__fs_read_u64(&fs, "/sys/a/empty", &v), -EINVAL);
	assert_true(tiermm__fs_exists(&fs, "/sys/a"));
	assert_false(tiermm__fs_exists(&fs, "/sys/b"));
	assert_int_equal(errno, 1234);
}

static void test_fs_init(void **state)
{
	struct tiermm__fs fs;
	char longroot[PATH_MAX + 10];

	(void)state;
	assert_int_equal(tiermm__fs_init(&fs, NULL), 0);
	assert_true(tiermm__fs_is_live(&fs));
	assert_int_equal(tiermm__fs_init(&fs, "/"), 0);
	assert_true(tiermm__fs_is_live(&fs));
	assert_int_equal(tiermm__fs_init(&fs, "relative/dir"), -EINVAL);
	assert_int_equal(errno, EINVAL);
	assert_non_null(strstr(tiermm_errmsg(), "absolute"));
	memset(longroot, 'a', sizeof(longroot) - 1);
	longroot[0] = '/';
	longroot[sizeof(longroot) - 1] = '\0';
	assert_int_equal(tiermm__fs_init(&fs, longroot), -ENAMETOOLONG);
	assert_int_equal(tiermm__fs_init(&fs, "/x/y///"), 0);
	assert_string_equal(fs.root, "/x/y");
}

static void test_json_str(void **state)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	(void)state;
	tiermm__json_str(f, "a\"b\\c\nd\x01");
	fclose(f);
	assert_string_equal(buf, "\"a\\\"b\\\\c\\nd\\u0001\"");
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_list_parse),
		cmocka_unit_test(test_fs_read),
		cmocka_unit_test(test_fs_init),
		cmocka_unit_test(test_json_str),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
