#!/bin/sh
# tests/vm/guest/check-pt-replication.sh [MIB] - TAP checks of tiermm's user-space side of
# page-table replication (issue 7): the library through `tiermm pt replicate`, `tiermm pt
# replication`, `tiermm pt stat` (tiermm.ko) and `tiermm run --pgtablerepl`, in a guest
# with two nodes or more (presets numa2, numa4) booted with the patched kernel
# (kmod/patches/linux-6.12; tests/vm/kernel/build.sh --patches kmod/patches/linux-6.12):
#
#   tests/vm/run --kernel BZIMAGE --kdir KDIR --preset numa2 -- /tests/check-pt-replication.sh
#
# A workload (repl_workload, MIB MiB, default 256, without THP: PTE tables map it) keeps
# reading its memory on every node and churning a scratch area. Replicated on every node
# with memory: /proc/PID/pgtable_replication and `tiermm pt replication` read back the
# nodes; `tiermm pt stat` walks every replica and finds all its tables on its node (at
# least one PTE table per 2 MiB of the buffer); nr_pgtable_replica grows on every node;
# the workload's checksum is unchanged and its scratch areas never read back wrong;
# `tiermm pt migrate` refuses (EBUSY). Then one node only, then none: nr_pgtable_replica
# back to where it was. `tiermm run --pgtablerepl` (with and without --quiet): the command,
# what it forks and what it executes are replicated. Bad input: a node without memory
# (when the machine has one), a node that does not exist (through the library and
# straight to the kernel), another user's process (EACCES/EPERM), and nothing changed.
#
# On a kernel without the series it checks instead that every call refuses with the
# message that the kernel lacks the patches (ENOTSUP), and that nothing ran.
# shellcheck source=tap.sh
. /tests/tap.sh

mib=${1:-256}
ptes=$((mib / 2))	# PTE tables mapping the buffer (2 MiB each)
out=/tmp/repl-workload.out
wl=

cleanup() {
	[ -n "$wl" ] && kill "$wl" 2>/dev/null
}
trap cleanup EXIT

# expect STATUS PATTERN CMD...: CMD exits with STATUS and its output (both streams)
# matches the extended regexp PATTERN; the output is kept in $got.
expect() {
	ex_want=$1
	ex_pat=$2
	shift 2
	got=$("$@" 2>&1)
	ex_rc=$?
	if [ "$ex_rc" = "$ex_want" ] && echo "$got" | grep -qE -- "$ex_pat"; then
		ok "$* -> $ex_rc"
	else
		not_ok "$* -> $ex_rc, expected $ex_want and /$ex_pat/"
		echo "$got" | sed 's/^/#   /'
	fi
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

# vmstat KEY [NODE]: a counter of /proc/vmstat, or of node NODE's vmstat
vmstat() {
	# fold the per-CPU counter differences in first
	echo 1 >/proc/sys/vm/stat_refresh 2>/dev/null
	if [ -n "$2" ]; then
		awk -v k="$1" '$1 == k { print $2 }' "/sys/devices/system/node/node$2/vmstat"
	else
		awk -v k="$1" '$1 == k { print $2 }' /proc/vmstat
	fi
}

# list_nodes LIST: the node numbers of a kernel list ("0-1,3"), one per line
list_nodes() {
	echo "$1" | tr ',' '\n' | while IFS=- read -r lo hi; do
		[ -n "$lo" ] || continue
		i=$lo
		while [ "$i" -le "${hi:-$lo}" ]; do
			echo "$i"
			i=$((i + 1))
		done
	done
}

# checksum: ask the workload for its checksum; prints "SUM BAD"
checksum() {
	n_before=$(grep -c '^sum ' "$out")
	kill -USR1 "$wl"
	i=0
	while [ "$i" -lt 30 ] && [ "$(grep -c '^sum ' "$out")" -le "$n_before" ]; do
		sleep 1
		i=$((i + 1))
	done
	grep '^sum ' "$out" | tail -n 1 | cut -d' ' -f2-
}

# replica_lines: the replica table of the last `tiermm pt stat` output ($got), one line
# per replica: "SLOT pte pmd pud pgd local" with a/b cells
replica_lines() {
	echo "$got" | awk '/^replicas on / { on = 1; getline; next } on && /^[0-9]/ { print } on && !/^[0-9]/ { on = 0 }'
}

[ -d /sys/devices/system/node/node1 ] || bail_out "needs two NUMA nodes (presets numa2, numa4)"
command -v tiermm >/dev/null || bail_out "tiermm is not in the guest (--build)"
command -v repl_workload >/dev/null || bail_out "repl_workload is not in the guest (--build)"
mem_nodes=$(cat /sys/devices/system/node/has_memory)
online=$(cat /sys/devices/system/node/online)
nr_mem=$(list_nodes "$mem_nodes" | wc -l)

# ---- a kernel without the series ------------------------------------------------------
if [ ! -e /proc/sys/kernel/pgtable_replication ]; then
	diag "this kernel has no page-table replication: checking the refusals"
	repl_workload -o "$out" 16 &
	wl=$!
	wait_for '^ready ' "$out" 60 || bail_out "repl_workload did not start"
	lacks="lacks tiermm's page-table replication patches"
	expect 1 "$lacks" tiermm pt replicate "$wl" all
	expect 1 "$lacks" tiermm pt replicate "$wl" none
	expect 1 "$lacks" tiermm pt replication "$wl"
	expect 125 "pgtablerepl=all: .*$lacks" tiermm run --backend none --pgtablerepl=all -- echo RAN
	if echo "$got" | grep -q RAN; then not_ok "the command did not run"; else ok "the command did not run"; fi
	expect 125 "$lacks" tiermm run --quiet --backend none --pgtablerepl=0 -- echo RAN
	check_eq "no /proc/PID/pgtable_replication" no "$([ -e "/proc/$wl/pgtable_replication" ] && echo yes || echo no)"
	if [ -c /dev/tiermm ]; then
		expect 0 "leaf-local" tiermm pt stat "$wl"
		if echo "$got" | grep -q '^replicas'; then
			not_ok "pt stat prints no replica section on this kernel"
		else
			ok "pt stat prints no replica section on this kernel"
		fi
	fi
	tap_done
fi

# ---- the patched kernel -----------------------------------------------------------------
[ -c /dev/tiermm ] || bail_out "/dev/tiermm is missing: tiermm.ko (built with --kdir) is not loaded"
tiermm caps | grep '^module' | sed 's/^/# /'
echo 0 >/proc/sys/kernel/pgtable_replication
groups=$(cat /proc/sys/kernel/pgtable_replication_groups 2>/dev/null)
[ -z "$groups" ] || echo "" >/proc/sys/kernel/pgtable_replication_groups
diag "nodes online $online, with memory $mem_nodes"

repl_workload -o "$out" "$mib" &
wl=$!
wait_for '^ready ' "$out" 120 || bail_out "repl_workload did not start"
sum0=$(awk '/^ready / { print $3 }' "$out")
diag "workload pid $wl, ${mib} MiB, checksum $sum0"

base=$(vmstat nr_pgtable_replica)
fail0=$(vmstat pgtable_repl_alloc_fail)
for n in $(list_nodes "$mem_nodes"); do
	eval "base_$n=\$(vmstat nr_pgtable_replica $n)"
done

# 1. every node with memory
expect 0 "^check: ok" tiermm pt replicate "$wl" all
check_eq "/proc/PID/pgtable_replication reads back the nodes" "$mem_nodes" \
	"$(cat "/proc/$wl/pgtable_replication")"
expect 0 "^pid $wl: page tables replicated on nodes $mem_nodes \\($nr_mem replicas\\)$" \
	tiermm pt replication "$wl"
expect 0 "^replicas on $nr_mem nodes" tiermm pt stat "$wl"
stat_out=$got
lines=$(replica_lines)
check_eq "one replica line per node with memory" "$nr_mem" "$(echo "$lines" | grep -c .)"
check_eq "replica nodes" "$(list_nodes "$mem_nodes" | tr '\n' ' ')" \
	"$(echo "$lines" | awk '{ printf "%s ", $1 }')"
nonlocal=$(echo "$lines" | awk '{ for (i = 2; i <= 5; i++) { split($i, c, "/"); if (c[1] != c[2]) n++ } } END { print n + 0 }')
check_eq "every table of every replica is on its node" 0 "$nonlocal"
if echo "$got" | grep -q "^every replica table is local$"; then
	ok "pt stat: every replica table is local"
else
	not_ok "pt stat: every replica table is local"
fi
min_pte=$(echo "$lines" | awk '{ split($2, c, "/"); print c[2] }' | sort -n | head -n 1)
if [ "${min_pte:-0}" -ge "$ptes" ]; then
	ok "each replica has at least $ptes PTE tables ($min_pte)"
else
	not_ok "each replica has at least $ptes PTE tables ($min_pte)"
fi
[ "$nonlocal" = 0 ] || echo "$stat_out" | sed 's/^/#   /'
check_eq "no replica table failed to be allocated" "$fail0" "$(vmstat pgtable_repl_alloc_fail)"
grown=$(($(vmstat nr_pgtable_replica) - base))
if [ "$grown" -ge $((nr_mem * (ptes + 3))) ]; then
	ok "nr_pgtable_replica grew by $grown pages (>= $nr_mem x $((ptes + 3)))"
else
	not_ok "nr_pgtable_replica grew by $grown pages (>= $nr_mem x $((ptes + 3)))"
fi
for n in $(list_nodes "$mem_nodes"); do
	eval "b=\$base_$n"
	g=$(($(vmstat nr_pgtable_replica "$n") - b))
	if [ "$g" -ge $((ptes + 3)) ]; then
		ok "node $n: nr_pgtable_replica grew by $g"
	else
		not_ok "node $n: nr_pgtable_replica grew by $g (>= $((ptes + 3)))"
	fi
done
"$(command -v tiermm)" pt stat "$wl" --json >/tmp/stat.json 2>&1
check_eq "pt stat --json: replica_count" "$nr_mem" \
	"$(sed -n 's/.*"replica_count":\([-0-9]*\).*/\1/p' /tmp/stat.json)"
check_eq "pt stat --json: replica_remote" 0 \
	"$(sed -n 's/.*"replica_remote":\([0-9]*\).*/\1/p' /tmp/stat.json)"
sleep 2
check_eq "checksum unchanged while replicated, scratch areas right" "$sum0 0" "$(checksum)"
expect 1 "page tables are replicated" tiermm pt migrate "$wl" --node 0
check_eq "the refused migration changed nothing" "$mem_nodes" "$(cat "/proc/$wl/pgtable_replication")"

# 2. one node (the last with memory), replacing the set
last=$(list_nodes "$mem_nodes" | tail -n 1)
expect 0 "^check: ok" tiermm pt replicate "$wl" "$last"
check_eq "/proc/PID/pgtable_replication: node $last" "$last" "$(cat "/proc/$wl/pgtable_replication")"
expect 0 "^replicas on 1 node" tiermm pt stat "$wl"
lines=$(replica_lines)
check_eq "the replica is node $last's" "$last" "$(echo "$lines" | awk '{ print $1 }')"
check_eq "all its tables on node $last" 0 \
	"$(echo "$lines" | awk '{ for (i = 2; i <= 5; i++) { split($i, c, "/"); if (c[1] != c[2]) n++ } } END { print n + 0 }')"
grown=$(($(vmstat nr_pgtable_replica) - base))
if [ "$grown" -ge $((ptes + 3)) ] && [ "$grown" -lt $((2 * (ptes + 3) + 64)) ]; then
	ok "nr_pgtable_replica holds one replica now ($grown pages)"
else
	not_ok "nr_pgtable_replica holds one replica now ($grown pages)"
fi

# 3. none: the replicas are freed
expect 0 "^check: ok, the kernel reports no replica$" tiermm pt replicate "$wl" none
check_eq "/proc/PID/pgtable_replication: empty" "" "$(cat "/proc/$wl/pgtable_replication")"
expect 0 "not replicated" tiermm pt replication "$wl"
check_eq "nr_pgtable_replica back to its value before" "$base" "$(vmstat nr_pgtable_replica)"
for n in $(list_nodes "$mem_nodes"); do
	eval "b=\$base_$n"
	check_eq "node $n: nr_pgtable_replica back" "$b" "$(vmstat nr_pgtable_replica "$n")"
done
check_eq "checksum unchanged after replication, scratch areas right" "$sum0 0" "$(checksum)"
expect 0 "^replicas: none" tiermm pt stat "$wl"

# 4. bad input: nothing changes
tiermm pt replicate "$wl" "$last" >/dev/null 2>&1
memless=
for n in $(list_nodes "$online"); do
	list_nodes "$mem_nodes" | grep -qx "$n" || memless=$n
done
if [ -n "$memless" ]; then
	expect 1 "node $memless has no memory" tiermm pt replicate "$wl" "$memless"
	if echo "$memless" >"/proc/$wl/pgtable_replication" 2>/dev/null; then
		not_ok "the kernel refuses node $memless (no memory) through /proc"
	else
		ok "the kernel refuses node $memless (no memory) through /proc"
	fi
else
	ok "node without memory # SKIP every node of this preset has memory"
fi
nx=$(($(ls -d /sys/devices/system/node/node[0-9]* | wc -l) + 5))
expect 1 "node $nx does not exist or is offline" tiermm pt replicate "$wl" "$nx"
if echo "$nx" >"/proc/$wl/pgtable_replication" 2>/dev/null; then
	not_ok "the kernel refuses node $nx (does not exist) through /proc"
else
	ok "the kernel refuses node $nx (does not exist) through /proc"
fi
expect 1 "no such process" tiermm pt replicate 2147483646 0
# Another user's process: the library's message and the kernel's error.
expect 1 "permission denied" repl_workload -x 65534 "$(command -v tiermm)" pt replicate "$wl" all
expect 1 "permission denied" repl_workload -x 65534 "$(command -v tiermm)" pt replication "$wl"
check_eq "nothing changed: node $last still" "$last" "$(cat "/proc/$wl/pgtable_replication")"
tiermm pt replicate "$wl" none >/dev/null 2>&1

# 5. inheritance through tiermm run: exec (--quiet), then the shim's child, its forks
# and execs (sh runs cat in a child, and cat /proc/$$ reads the shell itself)
expect 0 "^$mem_nodes$" tiermm run --quiet --backend none --pgtablerepl=all -- cat /proc/self/pgtable_replication
expect 0 "^$last$" tiermm run --quiet --backend none --pgtablerepl="$last" -- cat /proc/self/pgtable_replication
tiermm run --backend none --pgtablerepl=all -- \
	sh -c 'cat /proc/self/pgtable_replication; cat /proc/$$/pgtable_replication; sh -c "cat /proc/self/pgtable_replication"' \
	>/tmp/inherit.out 2>/tmp/inherit.err
rc=$?
check_eq "tiermm run --pgtablerepl=all: status" 0 "$rc"
check_eq "fork, exec and a grandchild inherit the nodes" "$mem_nodes $mem_nodes $mem_nodes" \
	"$(tr '\n' ' ' </tmp/inherit.out | sed 's/ $//')"
[ "$rc" = 0 ] || sed 's/^/#   /' /tmp/inherit.err
expect 0 "" tiermm run --quiet --backend none -- cat /proc/self/pgtable_replication
check_eq "without --pgtablerepl: not replicated" "" "$got"
# A replicated workload started by tiermm run: its tables are replicated from the start.
tiermm run --quiet --backend none --pgtablerepl=all -- repl_workload -o /tmp/rw2.out 32 &
wl2=$!
if wait_for '^ready ' /tmp/rw2.out 60; then
	wl2=$(awk '/^ready / { print $2 }' /tmp/rw2.out)
	expect 0 "^replicas on $nr_mem nodes" tiermm pt stat "$wl2"
	check_eq "a process replicated from exec on: every replica table local" 0 \
		"$(replica_lines | awk '{ for (i = 2; i <= 5; i++) { split($i, c, "/"); if (c[1] != c[2]) n++ } } END { print n + 0 }')"
	kill "$wl2"
else
	not_ok "repl_workload under tiermm run --pgtablerepl started"
fi

# 6. the workload ends well: no scratch area was ever wrong
kill "$wl"
wait "$wl"
rc=$?
wl=
check_eq "the workload exits 0 (no scratch area read back wrong)" 0 "$rc"
grep 'BAD' "$out" | sed 's/^/#   /'
tap_done
