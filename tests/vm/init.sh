#!/bin/sh
# shellcheck shell=sh
# tests/vm/init.sh - PID 1 (/init) of the tiermm test guest, run by busybox sh.
#
# tests/vm/run packs this file as /init, together with /tiermm-vm/{cmd,nonce,preset}.
# Channels (QEMU serial ports, each written to its own file on the host):
#   ttyS0  kernel console (quiet; the host keeps it for crash reports)
#   ttyS1  the command's stdout
#   ttyS2  the command's stderr
#   ttyS3  control: boot/insmod/exit-status markers and the full dmesg
# Every control line carries the per-run nonce so nothing else can fake it.

PATH=/usr/local/bin:/usr/bin:/usr/sbin:/bin:/sbin:/tests
LD_LIBRARY_PATH=/usr/lib
HOME=/root
export PATH LD_LIBRARY_PATH HOME

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null   # fails harmlessly if already mounted
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts 2>/dev/null
mount -t tmpfs tmpfs /dev/shm 2>/dev/null
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null
ln -sf /proc/self/fd /dev/fd 2>/dev/null
ln -sf /proc/self/fd/0 /dev/stdin 2>/dev/null
ln -sf /proc/self/fd/1 /dev/stdout 2>/dev/null
ln -sf /proc/self/fd/2 /dev/stderr 2>/dev/null
hostname tiermm-vm 2>/dev/null

out=/dev/ttyS1
err=/dev/ttyS2
ctl=/dev/ttyS3
# raw: no \n -> \r\n translation, so the host gets the bytes the command wrote.
for p in "$out" "$err" "$ctl"; do
	stty -F "$p" raw -echo 2>/dev/null
done

nonce=$(cat /tiermm-vm/nonce)
TIERMM_VM_PRESET=$(cat /tiermm-vm/preset)
TIERMM_VM=1
export TIERMM_VM TIERMM_VM_PRESET

say() {
	echo "$*" >"$ctl"
}

say "TIERMM-VM-BOOTED $nonce"

mkdir -p /run/tiermm-vm
if [ -f /lib/tiermm/tiermm.ko ]; then
	if insmod /lib/tiermm/tiermm.ko >/run/tiermm-vm/insmod.log 2>&1; then
		say "TIERMM-VM-INSMOD-OK $nonce"
	else
		# Report, but go on: a test may assert on the failure.
		say "TIERMM-VM-INSMOD-FAILED $nonce $(tr '\n' ' ' </run/tiermm-vm/insmod.log)"
		echo "tiermm-vm: insmod /lib/tiermm/tiermm.ko failed: $(cat /run/tiermm-vm/insmod.log)" >/dev/console
	fi
fi

cd /
# /tiermm-vm/cmd holds the argv given to tests/vm/run, each word single-quoted.
sh -c "$(cat /tiermm-vm/cmd)" </dev/null >"$out" 2>"$err"
rc=$?

say "TIERMM-VM-STATUS $nonce $rc"
say "TIERMM-VM-DMESG-BEGIN $nonce"
dmesg >"$ctl"
say "TIERMM-VM-DMESG-END $nonce"

poweroff -f
# Not reached unless poweroff failed; make QEMU exit (-no-reboot) rather than hang.
echo o >/proc/sysrq-trigger
