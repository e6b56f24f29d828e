// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Every /sys and /proc read of the library goes through here, below a root
 * directory that tests point at captured machines (hwloc's fsroot idea).
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

int tiermm__fs_init(struct tiermm__fs *fs, const char *root)
{
	size_t n;

	fs->root[0] = '\0';
	if (!root || !root[0] || !strcmp(root, "/"))
		return 0;
	if (root[0] != '/')
		return tiermm__fail(EINVAL,
				    "fsroot '%s' must be an absolute path", root);
	n = strlen(root);
	while (n > 1 && root[n - 1] == '/')
		n--;
	if (n >= sizeof(fs->root))
		return tiermm__fail(ENAMETOOLONG, "fsroot '%s' is too long",
				    root);
	memcpy(fs->root, root, n);
	fs->root[n] = '\0';
	return 0;
}

int tiermm__fs_path(const struct tiermm__fs *fs, const char *path, char *out,
		    size_t len)
{
	int n = snprintf(out, len, "%s%s", fs->root, path);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

ssize_t tiermm__fs_read(const struct tiermm__fs *fs, const char *path,
			char *buf, size_t len)
{
	char full[PATH_MAX];
	int saved = errno;
	ssize_t n, total = 0;
	int fd, ret;

	if (!len)
		return -EINVAL;
	ret = tiermm__fs_path(fs, path, full, sizeof(full));
	if (ret)
		return ret;
	fd = open(full, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		errno = saved;
		return ret;
	}
	while ((size_t)total < len - 1) {
		n = read(fd, buf + total, len - 1 - total);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			close(fd);
			errno = saved;
			return ret;
		}
		if (n == 0)
			break;
		total += n;
	}
	close(fd);
	buf[total] = '\0';
	while (total > 0 && (buf[total - 1] == '\n' || buf[total - 1] == ' '))
		buf[--total] = '\0';
	errno = saved;
	return total;
}

int tiermm__fs_read_u64(const struct tiermm__fs *fs, const char *path,
			uint64_t *val)
{
	char buf[64], *end;
	ssize_t n = tiermm__fs_read(fs, path, buf, sizeof(buf));
	int saved = errno;
	unsigned long long v;

	if (n < 0)
		return (int)n;
	if (!isdigit((unsigned char)buf[0]))
		return -EINVAL;
	errno = 0;
	v = strtoull(buf, &end, 10);
	if (errno || *end) {
		errno = saved;
		return -EINVAL;
	}
	errno = saved;
	*val = v;
	return 0;
}

bool tiermm__fs_exists(const struct tiermm__fs *fs, const char *path)
{
	char full[PATH_MAX];
	int saved = errno;
	bool ok;

	if (tiermm__fs_path(fs, path, full, sizeof(full)))
		return false;
	ok = access(full, F_OK) == 0;
	errno = saved;
	return ok;
}

static int parse_uint(const char **sp, unsigned int *v)
{
	const char *s = *sp;
	unsigned long x = 0;

	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	while (isdigit((unsigned char)*s)) {
		x = x * 10 + (unsigned long)(*s - '0');
		if (x > UINT32_MAX)
			return -EINVAL;
		s++;
	}
	*v = (unsigned int)x;
	*sp = s;
	return 0;
}

int tiermm__list_parse(const char *s, uint64_t *bits, unsigned int nbits)
{
	unsigned int lo, hi;
	int count = 0;

	memset(bits, 0, (nbits + 63) / 64 * sizeof(uint64_t));
	while (*s == ' ' || *s == '\n')
		s++;
	if (!*s)
		return 0;
	for (;;) {
		if (parse_uint(&s, &lo))
			return -EINVAL;
		hi = lo;
		if (*s == '-') {
			s++;
			if (parse_uint(&s, &hi) || hi < lo)
				return -EINVAL;
		}
		if (hi >= nbits)
			return -EINVAL;
		for (unsigned int i = lo; i <= hi; i++) {
			if (!tiermm__bit_test(bits, i))
				count++;
			bits[i / 64] |= 1ULL << (i % 64);
		}
		if (*s == ',') {
			s++;
			continue;
		}
		while (*s == ' ' || *s == '\n')
			s++;
		return *s ? -EINVAL : count;
	}
}

void tiermm__json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c == '\n')
			fputs("\\n", f);
		else if (c == '\t')
			fputs("\\t", f);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

DIR *tiermm__fs_opendir(const struct tiermm__fs *fs, const char *path)
{
	char full[PATH_MAX];
	int saved = errno;
	DIR *d;

	if (tiermm__fs_path(fs, path, full, sizeof(full)))
		return NULL;
	d = opendir(full);
	errno = saved;
	return d;
}

int tiermm__mask_parse(const char *s, uint64_t *bits, unsigned int nbits)
{
	size_t n = strlen(s);
	unsigned int bit = 0;
	int count = 0;

	memset(bits, 0, (nbits + 63) / 64 * sizeof(uint64_t));
	while (n && (s[n - 1] == '\n' || s[n - 1] == ' '))
		n--;
	if (!n)
		return -EINVAL;
	/* Walk hex digits from the least significant end. */
	for (size_t i = n; i-- > 0;) {
		int v;

		if (s[i] == ',')
			continue;
		if (!isxdigit((unsigned char)s[i]))
			return -EINVAL;
		v = isdigit((unsigned char)s[i]) ? s[i] - '0' :
			(tolower((unsigned char)s[i]) - 'a' + 10);
		for (int b = 0; b < 4; b++, bit++) {
			if (!(v & (1 << b)))
				continue;
			if (bit >= nbits)
				return -EINVAL;
			bits[bit / 64] |= 1ULL << (bit % 64);
			count++;
		}
	}
	return count;
}

void tiermm__list_format(const uint64_t *bits, unsigned int nbits, char *out,
			 size_t len)
{
	size_t pos = 0;

	if (!len)
		return;
	out[0] = '\0';
	for (unsigned int i = 0; i < nbits; i++) {
		unsigned int j = i;
		int w;

		if (!tiermm__bit_test(bits, i))
			continue;
		while (j + 1 < nbits && tiermm__bit_test(bits, j + 1))
			j++;
		if (j == i)
			w = snprintf(out + pos, len - pos, "%s%u", pos ? "," : "", i);
		else
			w = snprintf(out + pos, len - pos, "%s%u-%u",
				     pos ? "," : "", i, j);
		if (w < 0 || (size_t)w >= len - pos) {
			out[pos] = '\0';
			return;
		}
		pos += (size_t)w;
		i = j;
	}
}
