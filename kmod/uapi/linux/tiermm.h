/* SPDX-License-Identifier: ((GPL-2.0 WITH Linux-syscall-note) OR LGPL-2.1-or-later) */
/*
 * tiermm.ko user-space interface: /dev/tiermm ioctls.
 *
 * This is the only definition of the interface. The module (kmod/) and
 * libtiermm (lib/) both include this file; it is never copied.
 *
 * Conventions (the same as VFIO and userfaultfd):
 * - every argument struct starts with __u32 argsz (the size the caller
 *   passes, at least the command's *_SIZE_VER0) and __u32 flags (unknown
 *   bits are rejected with -EINVAL);
 * - fields have fixed sizes, padding is explicit and reserved fields must be
 *   zero, or the call fails with -EINVAL;
 * - a caller may pass a larger struct than the module knows, as long as the
 *   bytes the module does not know are zero; the module writes back at most
 *   argsz bytes;
 * - fields marked "out" are ignored on input; on failure (other than
 *   -EFAULT while writing back) the caller's struct is left unchanged;
 * - unknown ioctl commands fail with -ENOTTY.
 *
 * Magic 0xB9 is not listed in Documentation/userspace-api/ioctl/ioctl-number.rst
 * of Linux 6.12.
 */
#ifndef _UAPI_LINUX_TIERMM_H
#define _UAPI_LINUX_TIERMM_H

#include <linux/const.h>
#include <linux/types.h>
#include <linux/ioctl.h>

#define TIERMM_DEVICE_NAME	"tiermm"
#define TIERMM_IOC_MAGIC	0xB9

/*
 * API version: bumped when a command is added or a struct grows. The
 * library refuses modules older than the version it needs; newer modules
 * keep answering the commands of older versions (see commands).
 */
#define TIERMM_API_VERSION	1

/* Command numbers (the nr field of the ioctl); bit n of commands = nr n. */
#define TIERMM_CMD_GET_API	0x00

/**
 * struct tiermm_get_api - handshake: which API the loaded module speaks
 * @argsz:	in: sizeof(struct tiermm_get_api) as the caller knows it, at
 *		least TIERMM_GET_API_SIZE_VER0 and at most the page size;
 *		out: the number of bytes the module wrote back, that is
 *		min(argsz, the module's sizeof(struct tiermm_get_api))
 * @flags:	in: must be 0; out: 0
 * @api_version: out: TIERMM_API_VERSION of the module
 * @pad0:	must be 0
 * @features:	out: TIERMM_FEAT_* bits the module implements
 * @commands:	out: bit n set when command number n is supported
 * @reserved:	must be 0
 */
struct tiermm_get_api {
	__u32 argsz;
	__u32 flags;
	__u32 api_version;
	__u32 pad0;
	__u64 features;
	__u64 commands;
	__u64 reserved[4];
};

#define TIERMM_GET_API_SIZE_VER0	64

/* Feature bits reported in tiermm_get_api.features. */
#define TIERMM_FEAT_GET_API	_BITULL(0)	/* the handshake itself */

#define TIERMM_IOC_GET_API \
	_IOWR(TIERMM_IOC_MAGIC, TIERMM_CMD_GET_API, struct tiermm_get_api)

#endif /* _UAPI_LINUX_TIERMM_H */
