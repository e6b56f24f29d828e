// SPDX-License-Identifier: LGPL-2.1-or-later
#include "internal.h"

uint32_t tiermm_version(void)
{
	return TIERMM_VERSION_CODE;
}

const char *tiermm_version_string(void)
{
	return TIERMM_VERSION_STRING;
}
