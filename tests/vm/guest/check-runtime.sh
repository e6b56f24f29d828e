#!/bin/sh
# tests/vm/guest/check-runtime.sh [--quick] [scan|damon] - TAP checks of the tiering runtime
# (tiermm_runtime_start(3)) in the tiered guest (DRAM nodes 0-1 = tier 0, CPU-less slow node 2
# = tier 1), run by runtime_test (tests/tiering/runtime_test.c) with one hotness backend:
# a hot set on the slow node promoted and cold pages demoted within the budget; budget changes
# (bytes and share) taking effect at the next epoch; PIN_FAST, PIN_SLOW and NO_MIGRATE ranges
# untouched with the fast tier nearly full; writer threads verifying their data while pages
# move under them (60 s; 15 s with --quick); managed processes killed while being migrated
# (5; 2 with --quick) leaving nothing behind; bad input. The runtime runs without its CPU
# quota: under TCG every instruction costs 10-50 times what it does on hardware (the quota is
# tested on the host by test_runtime); the CPU seconds per stage are reported.
# shellcheck source=tap.sh
. /tests/tap.sh

seconds=60
rounds=5
if [ "${1:-}" = --quick ]; then
	seconds=15
	rounds=2
	shift
fi
backend=${1:-scan}

command -v runtime_test >/dev/null || bail_out "runtime_test is not in the guest (build the project)"
nodes=$(cat /sys/devices/system/node/has_memory 2>/dev/null)
[ "$nodes" = "0-2" ] || bail_out "needs memory nodes 0-2 (the tiered preset), found '$nodes'"
case $backend in
scan)
	[ -d /sys/module/tiermm ] || bail_out "scan backend: tiermm.ko is not loaded" ;;
damon)
	[ -d /sys/kernel/mm/damon/admin ] || bail_out "damon backend: no DAMON sysfs interface" ;;
*) bail_out "usage: check-runtime.sh [--quick] [scan|damon]" ;;
esac
# The kernel's own NUMA balancing and demotion would move pages behind the runtime's back
# (and move pinned pages under memory pressure): off, so what moves is the runtime's doing.
if [ -w /proc/sys/kernel/numa_balancing ]; then
	diag "kernel.numa_balancing was $(cat /proc/sys/kernel/numa_balancing); set to 0"
	echo 0 >/proc/sys/kernel/numa_balancing
fi
if [ -w /sys/kernel/mm/numa/demotion_enabled ]; then
	diag "demotion_enabled was $(cat /sys/kernel/mm/numa/demotion_enabled); set to false"
	echo false >/sys/kernel/mm/numa/demotion_enabled
fi
diag "THP: $(cat /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null); CPUs: $(nproc)"

# run TEST [ARGS...]: runtime_test's PASS/FAIL lines as TAP, its notes as diagnostics
run() {
	start=$(date +%s)
	out=$(runtime_test "$@" 2>&1)
	status=$?
	printf '%s\n' "$out" | {
		while IFS= read -r line; do
			case $line in
			"PASS "*) ok "$1 $backend: ${line#PASS }" ;;
			"FAIL "*) not_ok "$1 $backend: ${line#FAIL }" ;;
			"# "*) diag "$1: ${line#\# }" ;;
			*) diag "$1: $line" ;;
			esac
		done
		echo "$tap_n $tap_failed" >/tmp/tap.count
	}
	read -r tap_n tap_failed </tmp/tap.count
	if [ "$status" = 77 ]; then
		ok "runtime_test $* # SKIP backend not usable here"
	else
		check_eq "runtime_test $* exits 0 ($(($(date +%s) - start)) s)" 0 "$status"
	fi
}

run promote "$backend"
run budget "$backend"
run pins "$backend"
run integrity "$backend" "$seconds"
run exit "$backend" "$rounds"
run errors
tap_done
