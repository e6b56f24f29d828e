// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The hotness backends and the choice among them (ARCHITECTURE.md: one
 * ingestion path, chosen by probe, forceable).
 *
 * "auto" tries them in the order of the quality of what they observe:
 * perf (precise samples with data addresses, Demeter's source), scan
 * (tiermm.ko's accessed bits: every page, any VM, needs the module), damon
 * (the kernel's region sampling: root, coarse but always there on 6.12).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "tiering.h"

const struct tiermm__backend_ops *const tiermm__backends[] = {
	&tiermm__perf_backend,
	&tiermm__scan_backend,
	&tiermm__damon_backend,
	NULL,
};

int tiermm__backend_why(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	if (!why || !whylen)
		return 0;
	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
	return 0;
}

const struct tiermm__backend_ops *tiermm__backend_find(const char *name)
{
	char names[64] = "";

	for (size_t i = 0; tiermm__backends[i]; i++)
		if (name && !strcmp(name, tiermm__backends[i]->name))
			return tiermm__backends[i];
	for (size_t i = 0; tiermm__backends[i]; i++)
		snprintf(names + strlen(names), sizeof(names) - strlen(names),
			 "%s%s", i ? ", " : "", tiermm__backends[i]->name);
	tiermm__fail(EINVAL, "unknown hotness backend '%s' (known: %s, or auto)",
		     name ? name : "(null)", names);
	return NULL;
}

int tiermm__backend_auto(const struct tiermm__backend_cfg *cfg,
			 const struct tiermm__backend_ops **ops, char *why,
			 size_t whylen)
{
	char passed[1536] = "", one[512];
	size_t n = 0;

	*ops = NULL;
	for (size_t i = 0; tiermm__backends[i]; i++) {
		const struct tiermm__backend_ops *b = tiermm__backends[i];

		one[0] = '\0';
		if (b->usable(cfg, one, sizeof(one)) == 1) {
			*ops = b;
			if (n)
				tiermm__backend_why(why, whylen, "%s (%s)", b->name,
						    passed);
			else
				tiermm__backend_why(why, whylen, "%s (%s)", b->name,
						    one[0] ? one : "usable");
			return 0;
		}
		if (n < sizeof(passed))
			n += (size_t)snprintf(passed + n, sizeof(passed) - n,
					      "%s%s", n ? "; " : "",
					      one[0] ? one : b->name);
	}
	tiermm__backend_why(why, whylen, "none (%s)", passed);
	return tiermm__fail(ENODEV, "no hotness backend is usable: %s", passed);
}
