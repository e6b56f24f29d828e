#!/bin/sh
# tests/vm/guest/check-examples.sh - TAP checks of the example programs (examples/*.c, in
# the guest as example-NAME) in the tiered guest (DRAM nodes 0-1 = tier 0, CPU-less slow
# node 2 = tier 1, tiermm.ko loaded): each exits 0 (not 77: everything it needs is here)
# and prints what shows it worked: topo the two tiers ranked by the kernel and the HMAT
# latencies, place 100% of the buffer on the slow tier after the move and back on tier 0
# after the move back, runtime pages promoted by the scan backend, pt page tables moved to
# the node asked for and back next to their data. About 40 s under TCG.
# shellcheck source=tap.sh
. /tests/tap.sh

nodes=$(cat /sys/devices/system/node/has_memory 2>/dev/null)
[ "$nodes" = "0-2" ] || bail_out "needs memory nodes 0-2 (the tiered preset), found '$nodes'"
for ex in caps topo place runtime pt; do
	command -v "example-$ex" >/dev/null || bail_out "example-$ex is not in the guest (build the project)"
done
# The kernel's NUMA balancing would move pages between place's moves and its residency
# counts, and compete with the runtime: off, as in check-place.sh and check-runtime.sh.
if [ -w /proc/sys/kernel/numa_balancing ]; then
	diag "kernel.numa_balancing was $(cat /proc/sys/kernel/numa_balancing); set to 0"
	echo 0 >/proc/sys/kernel/numa_balancing
fi

# run NAME [ARGS...]: run example-NAME, show its output as diagnostics, check it exits 0;
# the output stays in $out for check_line
run() {
	name=$1
	shift
	start=$(date +%s)
	out=$(timeout 90 "example-$name" "$@" 2>&1)
	status=$?
	diag "\$ example-$name $*"
	printf '%s\n' "$out" | sed 's/^/#   /'
	check_eq "example-$name exits 0 ($(($(date +%s) - start)) s)" 0 "$status"
}

# check_line DESCRIPTION ERE: ok if a line of $out matches ERE
check_line() {
	if printf '%s\n' "$out" | grep -Eq "$2"; then
		ok "$1"
	else
		not_ok "$1"
		diag "  no line matches: $2"
	fi
}

# check_after DESCRIPTION HEADER_ERE KEY_ERE ERE: ok if the first line matching KEY_ERE
# after the first line matching HEADER_ERE also matches ERE (for the blocks of output)
check_after() {
	line=$(printf '%s\n' "$out" | awk -v h="$2" -v k="$3" '$0 ~ h { f = 1; next } f && $0 ~ k { print; exit }')
	if printf '%s\n' "$line" | grep -Eq "$4"; then
		ok "$1"
	else
		not_ok "$1"
		diag "  after '$2': '$line' does not match: $4"
	fi
}

run caps
check_line "caps: tiermm.ko present" '^module +present$'

run topo
check_line "topo: two tiers ranked by the kernel's memory tiers" '^2 tiers, fastest first, ranked by kernel$'
check_line "topo: tier 0 is the DRAM nodes 0-1" '^  tier 0: nodes 0-1$'
check_line "topo: tier 1 is the slow node 2" '^  tier 1: nodes 2$'
check_line "topo: node 2 has no CPUs and is in tier 1" '^2 +[A-Za-z]+ +\(none\) +[0-9]+ MiB +1$'
check_line "topo: SLIT row of node 0 is 10 20 30" '^node 0 +10 +20 +30$'
check_line "topo: HMAT read latency 80 ns local, 240 ns to the slow node" '^node 0 +80 +[-0-9]+ +240$'

run place
check_line "place: the unwritten tail is counted as not present" 'not present: 256 pages'
check_line "place: 100% of the present pages on the slow tier after the move" \
	'^=> 100\.0% of the present pages on tier 1 \(the slowest\)$'
check_line "place: 100% back on tier 0 after the move back" \
	'^=> 100\.0% of the present pages on tier 0 \(the fastest\)$'
check_line "place: tiermm_alloc_tier memory is all on the slow tier" \
	'^=> 100\.0% of the pages on tier 1 \(the slowest\)$'

# No CPU quota: under TCG the runtime's work costs tens of times what it does on hardware.
run runtime -t 10 -q none
check_line "runtime: the scan backend (tiermm.ko) was chosen" '^runtime started, budget 32 MiB, backend scan:'
check_line "runtime: the pinned part went to the fast tier at once" '^  on the fast tier: pin 100%'
check_line "runtime: hot pages were promoted" '^  [0-9]+ epochs in [0-9.]+ s: promoted [1-9][0-9]* pages'
check_after "runtime: most of the hot part is on the fast tier after the hot phase" \
	'^after [0-9]+ s:$' 'on the fast tier: pin' '^  on the fast tier: pin 100%, hot ([5-9][0-9]|100)%, cold'
check_after "runtime: the new budget is in force" \
	'^([1-9]|10) s after the budget' '^  budget' '^  budget 16 MiB,'
check_after "runtime: pages demoted to fit it (at most 17 MiB on the fast tier)" \
	'^([1-9]|10) s after the budget' '^  budget' ' on the fast tier ([0-9]|1[0-7]) of '

run pt
asked=$(printf '%s\n' "$out" | sed -n 's/^=> most leaf entries now on node \([0-9]*\) (asked: node \([0-9]*\))$/\1 \2/p')
# shellcheck disable=SC2086 # split into the two node numbers (none if the line is missing)
set -- $asked
check_line "pt: page tables were moved" '^tiermm_pt_migrate to node [0-9]+: moved [1-9][0-9]* tables'
check_eq "pt: most leaf entries on the node asked for after the move" "${2:-?}" "${1:-none}"
back=$(printf '%s\n' "$out" | sed -n 's/^=> most leaf entries now on node \([0-9]*\), most data on node \([0-9]*\)$/\1 \2/p')
# shellcheck disable=SC2086
set -- $back
check_eq "pt: after the auto move, most leaf entries where most data is" "${2:-?}" "${1:-none}"

tap_done
