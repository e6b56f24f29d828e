#!/bin/sh
# tests/vm/guest/check-place.sh [--quick] [tiered|numa4] - TAP checks of the placement API
# in the tiered
# guest (DRAM nodes 0-1, CPU-less slow node 2 in a lower tier), run by place_test
# (tests/tiering/place_test.c): moves between the three nodes with exact residency (with
# and without PAGEMAP_SCAN, i.e. huge pages by head address or page by page), tier
# moves and allocation, hints, a strict move that cannot fit and one blocked by pinned
# pages, data integrity while pages move under writer threads (60 s; 10 s with --quick),
# and moves of processes that exit meanwhile (20 processes; 5 with --quick). In the numa4
# guest (two slow nodes, one per socket): tier moves pick the nearest node with room.
# shellcheck source=tap.sh
. /tests/tap.sh

seconds=60
rounds=20
if [ "${1:-}" = --quick ]; then
	seconds=10
	rounds=5
	shift
fi
preset=${1:-tiered}

command -v place_test >/dev/null || bail_out "place_test is not in the guest (build the project)"
nodes=$(cat /sys/devices/system/node/has_memory 2>/dev/null)
case $preset in
tiered) [ "$nodes" = "0-2" ] || bail_out "needs memory nodes 0-2 (the tiered preset), found '$nodes'" ;;
numa4) [ "$nodes" = "0-3" ] || bail_out "needs memory nodes 0-3 (the numa4 preset), found '$nodes'" ;;
*) bail_out "usage: check-place.sh [--quick] [tiered|numa4]" ;;
esac
# The kernel's NUMA balancing would move pages between the moves and the residency checks.
if [ -w /proc/sys/kernel/numa_balancing ]; then
	diag "kernel.numa_balancing was $(cat /proc/sys/kernel/numa_balancing); set to 0 for exact checks"
	echo 0 >/proc/sys/kernel/numa_balancing
fi
diag "THP: $(cat /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null)"

# run TEST [ARGS...]: place_test's PASS/FAIL lines as TAP, its notes as diagnostics
run() {
	start=$(date +%s)
	out=$(place_test "$@" 2>&1)
	status=$?
	printf '%s\n' "$out" | {
		while IFS= read -r line; do
			case $line in
			"PASS "*) ok "$1: ${line#PASS }" ;;
			"FAIL "*) not_ok "$1: ${line#FAIL }" ;;
			"# "*) diag "$1: ${line#\# }" ;;
			*) diag "$1: $line" ;;
			esac
		done
		echo "$tap_n $tap_failed" >/tmp/tap.count
	}
	read -r tap_n tap_failed </tmp/tap.count
	check_eq "place_test $* exits 0 ($(($(date +%s) - start)) s)" 0 "$status"
}

if [ "$preset" = numa4 ]; then
	run tiers4
	tap_done
fi
run nodes
run nodes --no-scan
run tiers
run strict
run integrity "$seconds"
run exit "$rounds"
tap_done
