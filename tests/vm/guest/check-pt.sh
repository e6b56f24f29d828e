#!/bin/sh
# tests/vm/guest/check-pt.sh - the tiermm.ko ioctl programs, in the guest: the GET_API
# handshake (ioctl_test), PT_STAT / PT_DUMP / AB_SCAN for real (pt_test), then a bounded
# random-ioctl run (pt_test --fuzz SECONDS, default 20). Each program prints its own TAP;
# this script adds one summary line per program and fails if any of them failed.
# shellcheck source=tap.sh
. /tests/tap.sh

fuzz_seconds=${1:-20}

run_prog() {
	desc=$1
	shift
	echo "# --- $*"
	if "$@"; then
		ok "$desc"
	else
		not_ok "$desc (exit status $?)"
	fi
}

if [ ! -c /dev/tiermm ]; then
	bail_out "/dev/tiermm missing: tiermm.ko not loaded"
fi
run_prog "ioctl_test: GET_API handshake and argument checks" ioctl_test
run_prog "pt_test: PT_STAT, PT_DUMP, AB_SCAN" pt_test
run_prog "pt_test --fuzz $fuzz_seconds: random ioctls" pt_test --fuzz "$fuzz_seconds"
tap_done
