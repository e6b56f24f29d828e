// SPDX-License-Identifier: GPL-2.0
/*
 * ioctl_test: checks the /dev/tiermm GET_API handshake of a loaded tiermm.ko
 * (API 3: the handshake, PT_STAT, PT_DUMP, PT_MIGRATE and AB_SCAN). The
 * commands themselves are exercised by pt_test.
 *
 * Plain C11 plus POSIX, libc only: it runs in the test VM's busybox initramfs.
 * Output is TAP ("ok N - ...", "not ok N - ...", plan at the end); the exit
 * status is 0 only when every check passed, 1 otherwise, 2 on bad usage.
 *
 *   ioctl_test [DEVICE]        DEVICE defaults to /dev/tiermm
 *
 * Build: cc -std=c11 -Wall -Wextra -Werror -I kmod/uapi tests/kmod/ioctl_test.c
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "linux/tiermm.h"

#define SYSFS_MODULE		"/sys/module/tiermm"
#define SYSFS_API_VERSION	SYSFS_MODULE "/parameters/api_version"
#define SYSFS_VERSION		SYSFS_MODULE "/version"
#define SYSFS_MISC_DEV		"/sys/class/misc/" TIERMM_DEVICE_NAME "/dev"

/*
 * What a module of API 3 reports; TIERMM_FEAT_PT_REPLICAS too when it was
 * built against a kernel with page-table replication (which has this
 * sysctl).
 */
#define WANT_FEATURES	(TIERMM_FEAT_GET_API | TIERMM_FEAT_PT_STAT | \
			 TIERMM_FEAT_PT_DUMP | TIERMM_FEAT_PT_MIGRATE | \
			 TIERMM_FEAT_AB_SCAN)
#define PTREPL_SYSCTL	"/proc/sys/kernel/pgtable_replication"
#define WANT_COMMANDS	((1ULL << TIERMM_CMD_GET_API) | \
			 (1ULL << TIERMM_CMD_PT_STAT) | \
			 (1ULL << TIERMM_CMD_PT_DUMP) | \
			 (1ULL << TIERMM_CMD_PT_MIGRATE) | \
			 (1ULL << TIERMM_CMD_AB_SCAN))

static int n_checks;
static int n_failed;

/* One TAP line; returns ok so callers can add diagnostics on failure. */
static bool check(bool ok, const char *fmt, ...)
{
	va_list ap;

	n_checks++;
	if (!ok)
		n_failed++;
	printf("%sok %d - ", ok ? "" : "not ", n_checks);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
	return ok;
}

static void diag(const char *fmt, ...)
{
	va_list ap;

	fputs("# ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

/* ioctl() returning 0 or the errno it failed with. */
static int do_ioctl(int fd, unsigned long cmd, void *arg)
{
	if (ioctl(fd, cmd, arg) == 0)
		return 0;
	return errno;
}

static const char *errname(int err)
{
	switch (err) {
	case 0:		return "success";
	case EINVAL:	return "EINVAL";
	case ENOTTY:	return "ENOTTY";
	case EFAULT:	return "EFAULT";
	case E2BIG:	return "E2BIG";
	case EPERM:	return "EPERM";
	case EACCES:	return "EACCES";
	case ENOENT:	return "ENOENT";
	default:	return strerror(err);
	}
}

/* Every failed call must leave the caller's buffer as it was. */
static int n_unchanged_failed;
static int n_unchanged_checked;

/*
 * Calls cmd on buf (len bytes that the module may look at), expects errno
 * want, and records whether buf was left unchanged.
 */
static void expect_error(int fd, unsigned long cmd, void *buf, size_t len,
			 int want, const char *what)
{
	unsigned char *before = malloc(len ? len : 1);
	int err;

	if (!before) {
		check(false, "%s: out of memory", what);
		return;
	}
	if (len)
		memcpy(before, buf, len);
	err = do_ioctl(fd, cmd, buf);
	if (!check(err == want, "%s -> %s", what, errname(want)))
		diag("got %s (%d)", errname(err), err);
	if (err != 0) {
		n_unchanged_checked++;
		if (len && memcmp(before, buf, len) != 0) {
			n_unchanged_failed++;
			diag("%s: caller's buffer was modified", what);
		}
	}
	free(before);
}

static void init_arg(struct tiermm_get_api *a)
{
	memset(a, 0, sizeof(*a));
	a->argsz = sizeof(*a);
}

/* Reads the first line of a sysfs file into buf; returns 0 or errno. */
static int read_line(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");
	int err = 0;

	if (!f)
		return errno;
	if (!fgets(buf, (int)len, f))
		err = EIO;
	fclose(f);
	if (!err)
		buf[strcspn(buf, "\n")] = '\0';
	return err;
}

static void test_handshake(int fd)
{
	struct tiermm_get_api a;
	uint64_t want_features;
	int err;

	init_arg(&a);
	/* Output fields hold garbage on input: the module must ignore it. */
	a.api_version = 0xdeadbeef;
	a.features = ~0ULL;
	a.commands = ~0ULL;
	err = do_ioctl(fd, TIERMM_IOC_GET_API, &a);
	if (!check(err == 0, "GET_API handshake succeeds"))
		diag("got %s (%d)", errname(err), err);
	if (!check(a.api_version == TIERMM_API_VERSION,
		   "api_version == TIERMM_API_VERSION (%u)", TIERMM_API_VERSION))
		diag("got %u", a.api_version);
	want_features = WANT_FEATURES;
	if (access(PTREPL_SYSCTL, F_OK) == 0)
		want_features |= TIERMM_FEAT_PT_REPLICAS;
	if (!check(a.features == want_features,
		   "features == GET_API | PT_STAT | PT_DUMP | PT_MIGRATE | AB_SCAN (+ PT_REPLICAS on a replication kernel)"))
		diag("got %#llx, want %#llx", (unsigned long long)a.features,
		     (unsigned long long)want_features);
	if (!check(a.commands == WANT_COMMANDS,
		   "commands == bits of GET_API, PT_STAT, PT_DUMP, PT_MIGRATE, AB_SCAN"))
		diag("got %#llx, want %#llx", (unsigned long long)a.commands,
		     (unsigned long long)WANT_COMMANDS);
	if (!check(a.argsz == TIERMM_GET_API_SIZE_VER0 && a.flags == 0 &&
		   a.pad0 == 0 && a.reserved[0] == 0 && a.reserved[1] == 0 &&
		   a.reserved[2] == 0 && a.reserved[3] == 0,
		   "reply: argsz == %d, flags, pad0 and reserved zero",
		   TIERMM_GET_API_SIZE_VER0))
		diag("argsz %u flags %#x pad0 %#x", a.argsz, a.flags, a.pad0);
	diag("api_version %u features %#llx commands %#llx", a.api_version,
	     (unsigned long long)a.features, (unsigned long long)a.commands);
}

static void test_bad_args(int fd, size_t page_size)
{
	struct tiermm_get_api a;
	unsigned char *big;

	init_arg(&a);
	a.argsz = 0;
	expect_error(fd, TIERMM_IOC_GET_API, &a, sizeof(a), EINVAL, "argsz=0");

	init_arg(&a);
	a.argsz = TIERMM_GET_API_SIZE_VER0 - 1;
	expect_error(fd, TIERMM_IOC_GET_API, &a, sizeof(a), EINVAL, "argsz=63");

	/* A real zeroed buffer, so only the size limit can fail the call. */
	big = calloc(1, page_size + 1);
	if (big) {
		uint32_t sz = (uint32_t)page_size + 1;

		memcpy(big, &sz, sizeof(sz));
		expect_error(fd, TIERMM_IOC_GET_API, big, page_size + 1,
			     EINVAL, "argsz=PAGE_SIZE+1");
		free(big);
	} else {
		check(false, "argsz=PAGE_SIZE+1: out of memory");
	}

	init_arg(&a);
	a.flags = 1;
	expect_error(fd, TIERMM_IOC_GET_API, &a, sizeof(a), EINVAL, "flags=1");

	init_arg(&a);
	a.flags = 0x80000000u;
	expect_error(fd, TIERMM_IOC_GET_API, &a, sizeof(a), EINVAL,
		     "flags=bit 31");

	init_arg(&a);
	a.pad0 = 1;
	expect_error(fd, TIERMM_IOC_GET_API, &a, sizeof(a), EINVAL, "pad0=1");

	init_arg(&a);
	a.reserved[2] = 1;
	expect_error(fd, TIERMM_IOC_GET_API, &a, sizeof(a), EINVAL,
		     "reserved[2]=1");

	init_arg(&a);
	a.reserved[3] = 1ULL << 63;
	expect_error(fd, TIERMM_IOC_GET_API, &a, sizeof(a), EINVAL,
		     "reserved[3]=bit 63");

	expect_error(fd, TIERMM_IOC_GET_API, NULL, 0, EFAULT, "NULL argument");
}

/* A caller with a newer, larger struct: 128 bytes. */
static void test_larger_struct(int fd, size_t page_size)
{
	union {
		struct tiermm_get_api a;
		unsigned char b[128];
	} u;
	unsigned char *page;
	int err;
	size_t i;
	bool tail_zero = true;

	memset(&u, 0, sizeof(u));
	u.a.argsz = sizeof(u);
	err = do_ioctl(fd, TIERMM_IOC_GET_API, &u);
	if (!check(err == 0, "argsz=128 with zero tail succeeds"))
		diag("got %s (%d)", errname(err), err);
	for (i = sizeof(u.a); i < sizeof(u); i++)
		tail_zero &= u.b[i] == 0;
	if (!check(err == 0 && u.a.argsz == TIERMM_GET_API_SIZE_VER0 &&
		   u.a.api_version == TIERMM_API_VERSION && tail_zero,
		   "argsz=128: reply argsz == 64, api_version set, tail untouched"))
		diag("argsz %u api_version %u tail_zero %d", u.a.argsz,
		     u.a.api_version, tail_zero);

	memset(&u, 0, sizeof(u));
	u.a.argsz = sizeof(u);
	u.b[100] = 1;
	expect_error(fd, TIERMM_IOC_GET_API, &u, sizeof(u), EINVAL,
		     "argsz=128 with non-zero tail byte");

	/* The largest size allowed: a whole page, zero beyond 64 bytes. */
	page = calloc(1, page_size);
	if (page) {
		uint32_t sz = (uint32_t)page_size;
		struct tiermm_get_api r;

		memcpy(page, &sz, sizeof(sz));
		err = do_ioctl(fd, TIERMM_IOC_GET_API, page);
		memcpy(&r, page, sizeof(r));
		if (!check(err == 0 && r.api_version == TIERMM_API_VERSION,
			   "argsz=PAGE_SIZE with zero tail succeeds"))
			diag("got %s (%d)", errname(err), err);
		free(page);
	} else {
		check(false, "argsz=PAGE_SIZE: out of memory");
	}
}

/*
 * A struct whose claimed tail runs into an inaccessible page: the module
 * must fail with EFAULT, not read it as zero.
 */
static void test_unmapped_tail(int fd, size_t page_size)
{
	unsigned char *mem = NULL;
	struct tiermm_get_api *a;

	/* POSIX has no MAP_ANONYMOUS before 2024: protect a heap page. */
	if (posix_memalign((void **)&mem, page_size, 2 * page_size) != 0) {
		check(false, "tail in inaccessible page: out of memory");
		return;
	}
	memset(mem, 0, 2 * page_size);
	if (mprotect(mem + page_size, page_size, PROT_NONE) != 0) {
		check(false, "tail in inaccessible page: mprotect: %s",
		      strerror(errno));
		free(mem);
		return;
	}
	a = (struct tiermm_get_api *)(mem + page_size - sizeof(*a));
	init_arg(a);
	a->argsz = sizeof(*a) + 64;
	expect_error(fd, TIERMM_IOC_GET_API, a, sizeof(*a), EFAULT,
		     "argsz=128 with the tail in an inaccessible page");
	if (mprotect(mem + page_size, page_size, PROT_READ | PROT_WRITE) != 0)
		return;	/* leak rather than hand a protected page to free() */
	free(mem);
}

static void test_bad_commands(int fd)
{
	struct tiermm_get_api a;
	unsigned char buf[128];

	init_arg(&a);
	expect_error(fd, _IOWR(TIERMM_IOC_MAGIC, 0x3f, struct tiermm_get_api),
		     &a, sizeof(a), ENOTTY, "unknown nr 0x3f");

	init_arg(&a);
	expect_error(fd, _IOWR(TIERMM_IOC_MAGIC, 0x05, struct tiermm_get_api),
		     &a, sizeof(a), ENOTTY, "unknown nr 0x05");

	init_arg(&a);
	expect_error(fd, _IOWR(TIERMM_IOC_MAGIC, TIERMM_CMD_PT_STAT,
			       struct tiermm_get_api),
		     &a, sizeof(a), ENOTTY, "nr 0x01 (PT_STAT) with GET_API's size");

	init_arg(&a);
	expect_error(fd, _IOWR(TIERMM_IOC_MAGIC + 1, TIERMM_CMD_GET_API,
			       struct tiermm_get_api),
		     &a, sizeof(a), ENOTTY, "other magic, same nr and size");

	init_arg(&a);
	expect_error(fd, _IOR(TIERMM_IOC_MAGIC, TIERMM_CMD_GET_API,
			      struct tiermm_get_api),
		     &a, sizeof(a), ENOTTY, "_IOR instead of _IOWR");

	init_arg(&a);
	expect_error(fd, _IOW(TIERMM_IOC_MAGIC, TIERMM_CMD_GET_API,
			      struct tiermm_get_api),
		     &a, sizeof(a), ENOTTY, "_IOW instead of _IOWR");

	init_arg(&a);
	expect_error(fd, _IO(TIERMM_IOC_MAGIC, TIERMM_CMD_GET_API),
		     &a, sizeof(a), ENOTTY, "_IO instead of _IOWR");

	memset(buf, 0, sizeof(buf));
	buf[0] = sizeof(buf);
	expect_error(fd, _IOC(_IOC_READ | _IOC_WRITE, TIERMM_IOC_MAGIC,
			      TIERMM_CMD_GET_API, sizeof(buf)),
		     buf, sizeof(buf), ENOTTY, "_IOWR with size 128");
}

static void test_sysfs(void)
{
	char line[64];
	int err;
	int fd;

	err = read_line(SYSFS_API_VERSION, line, sizeof(line));
	if (!check(err == 0 && strtoul(line, NULL, 10) == TIERMM_API_VERSION &&
		   line[0] != '\0',
		   "%s == %u", SYSFS_API_VERSION, TIERMM_API_VERSION))
		diag("read: %s, value '%s'", errname(err), err ? "" : line);

	/* Read-only: either the open or the write must fail. */
	fd = open(SYSFS_API_VERSION, O_WRONLY);
	if (fd >= 0) {
		ssize_t n = write(fd, "7\n", 2);

		close(fd);
		check(n < 0, "%s is not writable", SYSFS_API_VERSION);
	} else {
		check(true, "%s is not writable", SYSFS_API_VERSION);
	}

	err = read_line(SYSFS_VERSION, line, sizeof(line));
	if (check(err == 0 && line[0] != '\0', "%s is set", SYSFS_VERSION))
		diag("module version %s", line);
}

int main(int argc, char **argv)
{
	const char *dev = "/dev/" TIERMM_DEVICE_NAME;
	long page_size = sysconf(_SC_PAGESIZE);
	struct stat st;
	char line[64];
	int fd;

	if (argc > 2 || (argc == 2 && argv[1][0] == '-')) {
		fprintf(stderr, "usage: %s [DEVICE]\n", argv[0]);
		return 2;
	}
	if (argc == 2)
		dev = argv[1];
	if (page_size <= 0)
		page_size = 4096;

	fd = open(dev, O_RDWR | O_CLOEXEC);
	if (!check(fd >= 0, "open %s", dev)) {
		diag("open: %s", strerror(errno));
		if (read_line(SYSFS_MISC_DEV, line, sizeof(line)) == 0)
			diag("%s says %s: is devtmpfs mounted?",
			     SYSFS_MISC_DEV, line);
		else
			diag("%s missing: is tiermm.ko loaded?", SYSFS_MISC_DEV);
		printf("Bail out! cannot open %s\n", dev);
		return 1;
	}
	if (fstat(fd, &st) == 0)
		diag("%s: mode %04o", dev, (unsigned int)(st.st_mode & 07777));
	check(fstat(fd, &st) == 0 && S_ISCHR(st.st_mode),
	      "%s is a character device", dev);

	test_handshake(fd);
	test_bad_args(fd, (size_t)page_size);
	test_larger_struct(fd, (size_t)page_size);
	test_unmapped_tail(fd, (size_t)page_size);
	test_bad_commands(fd);
	if (!check(n_unchanged_checked > 0 && n_unchanged_failed == 0,
		   "caller's buffer unchanged after each of %d failed calls",
		   n_unchanged_checked))
		diag("%d of them modified the buffer", n_unchanged_failed);
	close(fd);

	test_sysfs();

	printf("1..%d\n", n_checks);
	printf("# %d passed, %d failed\n", n_checks - n_failed, n_failed);
	return n_failed ? 1 : 0;
}
