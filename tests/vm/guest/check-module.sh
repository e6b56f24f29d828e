#!/bin/sh
# tests/vm/guest/check-module.sh - TAP checks that /init loaded tiermm.ko.
# shellcheck source=tap.sh
. /tests/tap.sh

if [ -f /lib/tiermm/tiermm.ko ]; then
	ok "tiermm.ko is packed at /lib/tiermm/tiermm.ko"
else
	not_ok "tiermm.ko is packed at /lib/tiermm/tiermm.ko"
fi

if [ -d /sys/module/tiermm ]; then
	ok "/sys/module/tiermm exists (module loaded)"
else
	not_ok "/sys/module/tiermm exists (module loaded)"
	if [ -s /run/tiermm-vm/insmod.log ]; then
		diag "insmod said:"
		sed 's/^/#   /' /run/tiermm-vm/insmod.log
	fi
fi

if [ -c /dev/tiermm ]; then
	ok "/dev/tiermm is a character device"
else
	not_ok "/dev/tiermm is a character device"
	diag "$(ls -l /dev/tiermm 2>&1)"
fi

tap_done
