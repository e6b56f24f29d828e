// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * tierbench is linked statically (it runs in the guest's busybox
 * initramfs), libtiermm's hwloc included. Debian ships no static libudev,
 * and hwloc's Linux backend calls udev only to name I/O devices, which
 * tiermm does not discover. These stand-ins report "no udev context", as
 * udev_new() does when it fails, and hwloc then reads sysfs alone.
 */
#include <stddef.h>

struct udev;
struct udev_device;

struct udev *udev_new(void);
struct udev *udev_unref(struct udev *u);
struct udev_device *udev_device_new_from_subsystem_sysname(struct udev *u,
							   const char *subsystem,
							   const char *sysname);
const char *udev_device_get_property_value(struct udev_device *d,
					   const char *key);
struct udev_device *udev_device_unref(struct udev_device *d);

struct udev *udev_new(void)
{
	return NULL;
}

struct udev *udev_unref(struct udev *u)
{
	(void)u;
	return NULL;
}

struct udev_device *udev_device_new_from_subsystem_sysname(struct udev *u,
							   const char *subsystem,
							   const char *sysname)
{
	(void)u;
	(void)subsystem;
	(void)sysname;
	return NULL;
}

const char *udev_device_get_property_value(struct udev_device *d,
					   const char *key)
{
	(void)d;
	(void)key;
	return NULL;
}

struct udev_device *udev_device_unref(struct udev_device *d)
{
	(void)d;
	return NULL;
}
