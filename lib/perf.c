// SPDX-License-Identifier: LGPL-2.1-or-later
/* perf PMU events as sysfs describes them. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <linux/perf_event.h>

#include "internal.h"

/* Place value v into the bit ranges a format file gives ("config1:0-15,32"). */
static int apply_format(const char *fmt, uint64_t v, struct perf_event_attr *a)
{
	char buf[128], *ranges, *tok, *save = NULL;
	__u64 *field;
	unsigned int vbit = 0;

	if (strlen(fmt) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, fmt);
	ranges = strchr(buf, ':');
	if (!ranges)
		return -EINVAL;
	*ranges++ = '\0';
	if (!strcmp(buf, "config"))
		field = &a->config;
	else if (!strcmp(buf, "config1"))
		field = &a->config1;
	else if (!strcmp(buf, "config2"))
		field = &a->config2;
	else
		return -EINVAL;
	for (tok = strtok_r(ranges, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		char *end;
		unsigned long lo = strtoul(tok, &end, 10), hi = lo;

		if (end == tok)
			return -EINVAL;
		if (*end == '-')
			hi = strtoul(end + 1, &end, 10);
		if (*end || hi < lo || hi > 63)
			return -EINVAL;
		for (unsigned long b = lo; b <= hi; b++, vbit++)
			if (vbit < 64 && (v >> vbit) & 1)
				*field |= 1ULL << b;
	}
	if (vbit < 64 && (v >> vbit))
		return -ERANGE;	/* value wider than the field */
	return 0;
}

int tiermm__pmu_event_attr(const struct tiermm__fs *fs, const char *pmu,
			   const char *spec, struct perf_event_attr *attr)
{
	char path[PATH_MAX], buf[256], fmt[128], *tok, *save = NULL;
	uint64_t type;
	int ret;

	snprintf(path, sizeof(path), "/sys/bus/event_source/devices/%s/type",
		 pmu);
	ret = tiermm__fs_read_u64(fs, path, &type);
	if (ret)
		return ret;
	attr->type = (uint32_t)type;
	if (strlen(spec) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, spec);
	for (tok = strtok_r(buf, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '='), *end;
		uint64_t v = 1;

		if (eq) {
			*eq = '\0';
			v = strtoull(eq + 1, &end, 0);
			if (end == eq + 1 || *end)
				return -EINVAL;
		}
		snprintf(path, sizeof(path),
			 "/sys/bus/event_source/devices/%s/format/%s", pmu, tok);
		if (tiermm__fs_read(fs, path, fmt, sizeof(fmt)) < 0)
			return -EINVAL;
		ret = apply_format(fmt, v, attr);
		if (ret)
			return ret;
	}
	return 0;
}
