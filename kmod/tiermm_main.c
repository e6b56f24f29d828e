// SPDX-License-Identifier: GPL-2.0
/*
 * tiermm.ko: page-table services for the tiermm library.
 *
 * The module registers the misc device /dev/tiermm. Its ioctl interface is
 * defined in uapi/linux/tiermm.h, shared with libtiermm:
 * - GET_API, the handshake (here);
 * - PT_STAT and PT_DUMP, page-table statistics and copies (pt_walk.c);
 * - AB_SCAN, test and clear accessed bits (pt_scan.c);
 * - PT_MIGRATE, move page-table pages to another node (pt_migrate.c).
 * common.c holds what they share: argument copy-in, target lookup and
 * permission checks, range checks, the TLB flush.
 *
 * Without opening the device, a probe can read the API version from
 * /sys/module/tiermm/parameters/api_version and the module version from
 * /sys/module/tiermm/version.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/build_bug.h>
#include <linux/errno.h>
#include <linux/fs.h>
#include <linux/init.h>
#include <linux/miscdevice.h>
#include <linux/minmax.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/string.h>
#include <linux/sysfs.h>
#include <linux/types.h>
#include <linux/uaccess.h>

#include <linux/tiermm.h>	/* kmod/uapi/linux/tiermm.h, via Kbuild */

#include "tiermm_internal.h"

#ifndef TIERMM_VERSION
#error "TIERMM_VERSION is not defined: build with kmod/Kbuild"
#endif

/*
 * The struct must have exactly the size the newest *_SIZE_VERn names; the
 * handshake copies back min(argsz, sizeof()) bytes.
 */
static_assert(sizeof(struct tiermm_get_api) == TIERMM_GET_API_SIZE_VER0);

/*
 * Feature bits and commands this build of the module implements. Built
 * against a kernel with page-table replication, PT_STAT can walk replicas.
 */
#ifdef CONFIG_PGTABLE_REPLICATION
#define TIERMM_FEAT_REPL	TIERMM_FEAT_PT_REPLICAS
#else
#define TIERMM_FEAT_REPL	0
#endif
#define TIERMM_FEATURES		(TIERMM_FEAT_GET_API | TIERMM_FEAT_PT_STAT | \
				 TIERMM_FEAT_PT_DUMP | TIERMM_FEAT_PT_MIGRATE | \
				 TIERMM_FEAT_AB_SCAN | TIERMM_FEAT_REPL)
#define TIERMM_COMMANDS		(BIT_ULL(TIERMM_CMD_GET_API) | \
				 BIT_ULL(TIERMM_CMD_PT_STAT) | \
				 BIT_ULL(TIERMM_CMD_PT_DUMP) | \
				 BIT_ULL(TIERMM_CMD_PT_MIGRATE) | \
				 BIT_ULL(TIERMM_CMD_AB_SCAN))

/*
 * /sys/module/tiermm/parameters/api_version: read-only. A plain
 * module_param() could be overwritten at load time and then lie, so the
 * setter refuses every value and the getter prints the constant.
 */
static int tiermm_param_api_version_set(const char *val,
					const struct kernel_param *kp)
{
	return -EPERM;
}

static int tiermm_param_api_version_get(char *buffer,
					const struct kernel_param *kp)
{
	return sysfs_emit(buffer, "%u\n", TIERMM_API_VERSION);
}

static const struct kernel_param_ops tiermm_param_api_version_ops = {
	.set = tiermm_param_api_version_set,
	.get = tiermm_param_api_version_get,
};

module_param_cb(api_version, &tiermm_param_api_version_ops, NULL, 0444);
MODULE_PARM_DESC(api_version,
		 "API version of the /dev/tiermm ioctl interface (read-only)");

/*
 * TIERMM_IOC_GET_API. The caller's struct may be larger than ours as long as
 * the tail we do not know is zero; flags, padding and reserved fields must
 * be zero. Output fields in the input (api_version, features, commands) are
 * ignored, so a caller may reuse the struct of an earlier call.
 */
static long tiermm_ioctl_get_api(void __user *uarg)
{
	struct tiermm_get_api arg = {};
	struct tiermm_get_api out;
	u32 argsz;
	int ret;

	ret = tiermm_copy_arg(&arg, sizeof(arg), TIERMM_GET_API_SIZE_VER0,
			      uarg, &argsz);
	if (ret)
		return ret;

	if (arg.flags || arg.pad0 ||
	    memchr_inv(arg.reserved, 0, sizeof(arg.reserved)))
		return -EINVAL;

	memset(&out, 0, sizeof(out));
	out.argsz = min_t(u32, argsz, sizeof(out));
	out.api_version = TIERMM_API_VERSION;
	out.features = TIERMM_FEATURES;
	out.commands = TIERMM_COMMANDS;

	if (copy_to_user(uarg, &out, out.argsz))
		return -EFAULT;
	return 0;
}

static long tiermm_ioctl(struct file *file, unsigned int cmd,
			 unsigned long arg)
{
	void __user *uarg = (void __user *)arg;

	/*
	 * The whole command word is compared, so the same number with another
	 * size or direction is an unknown command too.
	 */
	switch (cmd) {
	case TIERMM_IOC_GET_API:
		return tiermm_ioctl_get_api(uarg);
	case TIERMM_IOC_PT_STAT:
		return tiermm_ioctl_pt_stat(uarg);
	case TIERMM_IOC_PT_DUMP:
		return tiermm_ioctl_pt_dump(uarg);
	case TIERMM_IOC_PT_MIGRATE:
		return tiermm_ioctl_pt_migrate(uarg);
	case TIERMM_IOC_AB_SCAN:
		return tiermm_ioctl_ab_scan(uarg);
	default:
		return -ENOTTY;
	}
}

static const struct file_operations tiermm_fops = {
	.owner		= THIS_MODULE,
	.unlocked_ioctl	= tiermm_ioctl,
	.compat_ioctl	= compat_ptr_ioctl,
};

/*
 * Everyone may open the device and ask for the API version; each command
 * that acts on a process checks its own permissions.
 */
static struct miscdevice tiermm_miscdev = {
	.minor	= MISC_DYNAMIC_MINOR,
	.name	= TIERMM_DEVICE_NAME,
	.fops	= &tiermm_fops,
	.mode	= 0666,
};

static int __init tiermm_init(void)
{
	int ret;

	ret = misc_register(&tiermm_miscdev);
	if (ret) {
		pr_err("cannot register /dev/%s: %d\n", TIERMM_DEVICE_NAME, ret);
		return ret;
	}
	pr_debug("version %s, API %u\n", TIERMM_VERSION, TIERMM_API_VERSION);
	return 0;
}

static void __exit tiermm_exit(void)
{
	misc_deregister(&tiermm_miscdev);
}

module_init(tiermm_init);
module_exit(tiermm_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("tiermm: page-table services for tiered memory (/dev/tiermm)");
MODULE_VERSION(TIERMM_VERSION);
