#!/bin/sh
# tests/vm/guest/check-pt-cli.sh [MIB] - TAP checks of `tiermm pt` against tiermm.ko, in a
# guest with two nodes (preset numa2). A thin process (pt_workload, MIB MiB, default 32)
# starts with its data and page tables on node 0; when it moves its thread and data to node
# 1 its page tables stay behind: `tiermm pt stat` must show them remote, `tiermm pt migrate
# --node auto` must make them local again, and `tiermm pt follow` must do so by itself after
# the next move. Also: dumps, an explicit target node, errors, and follow ending with the
# process.
# shellcheck source=tap.sh
. /tests/tap.sh

mib=${1:-32}
ptes=$((mib / 2))	# PTE tables mapping the buffer (2 MiB each)

[ -c /dev/tiermm ] || bail_out "/dev/tiermm is missing: tiermm.ko is not loaded"
[ -d /sys/devices/system/node/node1 ] || bail_out "needs two NUMA nodes (preset numa2)"

# diag_text TEXT: a multi-line text as TAP diagnostics
diag_text() {
	echo "$1" | sed 's/^/# /'
}

# wait_for PATTERN FILE SECONDS: until a line of FILE matches PATTERN
wait_for() {
	wf_i=0
	while [ "$wf_i" -lt "$3" ]; do
		grep -q "$1" "$2" 2>/dev/null && return 0
		sleep 1
		wf_i=$((wf_i + 1))
	done
	return 1
}

# From `tiermm pt stat --json` output: node_val NODE KEY JSON, level_val LEVEL KEY JSON,
# top_val KEY JSON.
node_val() {
	echo "$3" | sed -n "s/.*{\"node\":$1,[^}]*\"$2\":\([0-9.]*\).*/\1/p"
}
level_val() {
	echo "$3" | sed -n "s/.*\"$1\":{\([^}]*\)}.*/\1/p" | sed -n "s/.*\"$2\":\([0-9]*\).*/\1/p"
}
top_val() {
	echo "$2" | sed -n "s/.*\"$1\":\(-\{0,1\}[0-9]*\)}$/\1/p; s/.*\"$1\":\(-\{0,1\}[0-9]*\),.*/\1/p" | tail -n 1
}
# at_least DESCRIPTION MIN VALUE (numbers, decimals allowed)
at_least() {
	if [ -n "$3" ] && awk -v v="$3" -v m="$2" 'BEGIN { exit !(v + 0 >= m + 0) }'; then
		ok "$1 ($3 >= $2)"
	else
		not_ok "$1"
		diag "  expected at least $2, got '$3'"
	fi
}
below() {
	if [ -n "$3" ] && awk -v v="$3" -v m="$2" 'BEGIN { exit !(v + 0 < m + 0) }'; then
		ok "$1 ($3 < $2)"
	else
		not_ok "$1"
		diag "  expected below $2, got '$3'"
	fi
}
check_grep() {
	if echo "$3" | grep -q -- "$2"; then
		ok "$1"
	else
		not_ok "$1"
		diag "  no line matches '$2' in:"
		diag_text "$3"
	fi
}

pt_workload -n 0 "$mib" >/tmp/wl.out 2>/tmp/wl.err &
wl=$!
trap 'kill "$wl" 2>/dev/null' EXIT
wait_for "^ready $wl 0" /tmp/wl.out 60 ||
	bail_out "pt_workload did not start: $(cat /tmp/wl.out /tmp/wl.err)"
ok "pt_workload $wl touched $mib MiB on node 0"

# 1. Everything on node 0.
json=$(tiermm pt stat "$wl" --json)
check_eq "pt stat --json exits 0" 0 $?
diag_text "$json"
check_eq "data on node 0" 0 "$(top_val data_node "$json")"
at_least "leaf entries local from node 0" 0.9 "$(node_val 0 leaf_local "$json")"
at_least "PTE tables counted" "$ptes" "$(level_val pte tables "$json")"
# The process's first tables were made before it moved itself to node 0, and its binary's
# pages are wherever the initramfs put them: a few tables may be remote, not the buffer's.
below "at most 2 remote PTE tables" 3 "$(level_val pte remote "$json")"
text=$(tiermm pt stat "$wl")
check_eq "pt stat exits 0" 0 $?
check_grep "pt stat prints the leaf-local column" "leaf-local" "$text"
diag_text "$text"

# 2. Dumps.
dump=$(tiermm pt dump "$wl")
check_eq "pt dump exits 0" 0 $?
check_grep "pt dump starts with the PGD" "^pgd 0x" "$dump"
at_least "pt dump lists the PTE tables" "$ptes" "$(echo "$dump" | grep -c '^      pte 0x')"
check_grep "pt dump PTE tables are on node 0" "^      pte .* node 0 present" "$dump"
n=$(echo "$dump" | sed -n 's/^# \([0-9]*\) tables$/\1/p')
check_eq "pt dump counts its lines" "$n" "$(echo "$dump" | grep -c '^ *p[tmug][edx] 0x')"
djson=$(tiermm pt dump "$wl" --json --entries)
check_eq "pt dump --json --entries exits 0" 0 $?
check_grep "dump JSON ends with the count" "^],\"count\":$n}$" "$djson"
check_grep "dump JSON has entries" '"entries":\[\[0,"0x' "$djson"

# 3. The process moves to node 1; its page tables stay on node 0.
kill -USR1 "$wl"
wait_for "^moved $wl 1 " /tmp/wl.out 60 || bail_out "pt_workload did not move: $(cat /tmp/wl.out /tmp/wl.err)"
moved=$(sed -n "s/^moved $wl 1 \([0-9-]*\)$/\1/p" /tmp/wl.out)
check_eq "pt_workload moved all its pages to node 1" $((mib * 256)) "$moved"
json=$(tiermm pt stat "$wl" --json)
diag_text "$json"
check_eq "data now on node 1" 1 "$(top_val data_node "$json")"
below "leaf entries local from node 1 before migrating" 0.5 "$(node_val 1 leaf_local "$json")"
at_least "remote PTE tables" "$ptes" "$(level_val pte remote "$json")"

# 4. Migrate to the data's node.
out=$(tiermm pt migrate "$wl" --node auto 2>&1)
check_eq "pt migrate --node auto exits 0" 0 $?
diag_text "$out"
check_grep "pt migrate checked the result" "^check: ok" "$out"
json=$(tiermm pt stat "$wl" --json)
check_eq "no remote PTE table after auto" 0 "$(level_val pte remote "$json")"
at_least "leaf entries local from node 1 after auto" 0.9 "$(node_val 1 leaf_local "$json")"

# 5. An explicit node, one level.
out=$(tiermm pt migrate "$wl" --node 0 --levels pte 2>&1)
check_eq "pt migrate --node 0 --levels pte exits 0" 0 $?
diag_text "$out"
check_grep "pte tables moved to node 0" "^check: ok, every pte table is on node 0" "$out"
json=$(tiermm pt stat "$wl" --json)
check_eq "node 1 holds no PTE table" 0 "$(echo "$json" | sed -n 's/.*{"node":1,[^}]*"tables":{"pte":\([0-9]*\).*/\1/p')"
at_least "remote PTE tables again" "$ptes" "$(level_val pte remote "$json")"
tiermm pt migrate "$wl" --node auto >/dev/null 2>&1
check_eq "and back with auto" 0 $?

# 6. The process moves back to node 0; follow reacts.
kill -USR1 "$wl"
wait_for "^moved $wl 0 " /tmp/wl.out 60 || bail_out "pt_workload did not move back"
out=$(tiermm pt follow "$wl" --interval 1 --count 3 2>&1)
check_eq "pt follow --count 3 exits 0" 0 $?
diag_text "$out"
check_eq "pt follow acted once" 1 "$(echo "$out" | grep -c 'moved .* page tables to')"
check_grep "pt follow moved them to the data's node" "threads on node 0 .* data on node 0 .* to the node of their data" "$out"
json=$(tiermm pt stat "$wl" --json)
at_least "leaf entries local from node 0 after follow" 0.9 "$(node_val 0 leaf_local "$json")"
check_eq "no remote PTE table after follow" 0 "$(level_val pte remote "$json")"

# 7. Errors.
err=$(tiermm pt stat 999999 2>&1)
check_eq "pt stat of no process exits 1" 1 $?
check_grep "and says so" "pid 999999: no such process" "$err"
tiermm pt stat "$wl" --range 0x1001-0x2000 2>/dev/null
check_eq "a misaligned range is a usage error" 2 $?
err=$(tiermm pt migrate "$wl" --node 7 2>&1)
check_eq "pt migrate to a missing node exits 1" 1 $?
check_grep "and says why" "does not exist or has no memory" "$err"

# 8. follow ends with the process.
tiermm pt follow "$wl" --interval 1 >/tmp/follow.out 2>&1 &
fl=$!
sleep 2
kill "$wl"
wait "$wl"
i=0
while kill -0 "$fl" 2>/dev/null && [ $i -lt 30 ]; do
	sleep 1
	i=$((i + 1))
done
wait "$fl"
check_eq "pt follow exits 0 when the process exits" 0 $?
check_grep "and says so" "pid $wl exited" "$(cat /tmp/follow.out)"
trap - EXIT
tap_done
