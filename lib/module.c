// SPDX-License-Identifier: LGPL-2.1-or-later
/* Talking to tiermm.ko through /dev/tiermm. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <linux/tiermm.h>

#include "internal.h"

int tiermm__module_open(struct tiermm_get_api *api)
{
	int fd, err;

	fd = open("/dev/" TIERMM_DEVICE_NAME, O_RDWR | O_CLOEXEC);
	if (fd < 0 && errno == EACCES)
		fd = open("/dev/" TIERMM_DEVICE_NAME, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		err = errno;
		if (err == ENOENT || err == ENXIO || err == ENODEV)
			return tiermm__fail(ENODEV,
					    "tiermm.ko is not loaded (/dev/tiermm: %s); load it with 'modprobe tiermm'",
					    strerror(err));
		return tiermm__fail(err, "cannot open /dev/tiermm: %s",
				    strerror(err));
	}
	memset(api, 0, sizeof(*api));
	api->argsz = sizeof(*api);
	if (ioctl(fd, TIERMM_IOC_GET_API, api)) {
		err = errno;
		close(fd);
		return tiermm__fail(err == ENOTTY ? EPROTO : err,
				    "tiermm.ko handshake (GET_API) failed: %s",
				    strerror(err));
	}
	if (api->api_version < 1) {
		close(fd);
		return tiermm__fail(EPROTO,
				    "tiermm.ko reports API version %u; this library needs at least 1",
				    api->api_version);
	}
	return fd;
}
