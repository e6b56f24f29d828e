#!/bin/sh
# tests/vm/guest/check-ptrepl.sh [--selftests | --groups-only] [SECONDS] - page-table
# replication (the kernel patch series kmod/patches/linux-6.12) in a guest booted with the
# patched kernel: presets numa2 and numa4 (two nodes or more), or with --groups-only the
# oblivious preset (NUMA hidden: one node; CPU-group mode only, part 4, the four CPUs
# split in two groups as a topology probe would on a two-socket host).
#
# 1. ptrepl_test basic, dirty, deposit, ksm, memcg and integrity SECONDS (default 60): the
#    prctl and /proc interfaces and their errors, dirty bits set through a replica seen by
#    reclaim and migration, no stale copies of a deposited THP table, KSM merging and
#    unsharing replicated pages, copies charged to the memory cgroup (in a cgroup of its
#    own), checksummed pages under writers while replication is turned on and off and the
#    address space changes (tests/kmod/ptrepl_test.c).
# 2. The reserve: kernel.pgtable_replication_cache fills and drains every node.
# 3. kernel.pgtable_replication=1: every new process is replicated on every node with
#    memory; the integrity run again that way.
# 4. CPU-group mode (vMitosis's NUMA-oblivious VMs): kernel.pgtable_replication_groups
#    names groups of CPUs (one group per socket; here the two sockets' CPUs) and the tests
#    of part 1 run again with masks of groups; setting groups while a process is
#    replicated is refused (EBUSY).
# 5. With tiermm.ko loaded: the walk of every replica (tiermm pt stat): each replica's
#    tables all on its node.
# 6. --selftests: Linux's mm selftests (mmselftests.sh) without replication, then with
#    kernel.pgtable_replication=1 (every selftest process replicated): same results.
# The rig fails the run on any BUG/WARNING/KASAN/lockdep report in the kernel log.
# shellcheck source=tap.sh
. /tests/tap.sh

selftests=0
groups_only=0
case $1 in
--selftests) selftests=1; shift ;;
--groups-only) groups_only=1; shift ;;
esac
secs=${1:-60}

[ -f /proc/sys/kernel/pgtable_replication ] ||
	bail_out "this kernel has no page-table replication (boot the patched kernel)"
[ -d /sys/devices/system/node/node1 ] || [ "$groups_only" -eq 1 ] ||
	bail_out "needs two NUMA nodes (or --groups-only)"
command -v ptrepl_test >/dev/null || bail_out "ptrepl_test is not in the guest"
mem_nodes=$(cat /sys/devices/system/node/has_memory)
nnodes=$(ls -d /sys/devices/system/node/node[0-9]* | wc -l)

# run_ptrepl NAME ARGS...: one check standing for a ptrepl_test run, its TAP as diagnostics
run_ptrepl() {
	rp_name=$1
	shift
	rp_t=$(date +%s)
	ptrepl_test "$@" >/tmp/ptrepl.out 2>&1
	rp_rc=$?
	sed 's/^/  /' /tmp/ptrepl.out | while IFS= read -r line; do diag "$line"; done
	rp_pass=$(grep -c '^ok ' /tmp/ptrepl.out)
	rp_fail=$(grep -c '^not ok ' /tmp/ptrepl.out)
	if [ "$rp_rc" -eq 0 ] && [ "$rp_fail" -eq 0 ] && [ "$rp_pass" -gt 0 ]; then
		ok "ptrepl_test $rp_name: $rp_pass checks passed in $(($(date +%s) - rp_t)) s"
	else
		not_ok "ptrepl_test $rp_name: exit $rp_rc, $rp_fail of $((rp_pass + rp_fail)) checks failed"
	fi
}

# wait_ready FILE: until ptrepl_test hold has printed "ready" into FILE (60 s at most)
wait_ready() {
	wr_i=0
	while ! grep -q ready "$1" 2>/dev/null && [ "$wr_i" -lt 120 ]; do
		sleep 0.5
		wr_i=$((wr_i + 1))
	done
}

vmstat() {
	echo 1 >/proc/sys/vm/stat_refresh
	awk -v k="$1" '$1 == k { print $2 }' /proc/vmstat
}

if [ "$groups_only" -eq 0 ]; then
# ---- 1. ptrepl_test ------------------------------------------------------------------
run_ptrepl basic basic
run_ptrepl dirty dirty
run_ptrepl deposit deposit
run_ptrepl ksm ksm
# replica tables charged to the memory cgroup: the test runs in a cgroup of its own
echo +memory >/sys/fs/cgroup/cgroup.subtree_control
mkdir -p /sys/fs/cgroup/ptrepl
echo $$ >/sys/fs/cgroup/ptrepl/cgroup.procs
run_ptrepl memcg memcg
echo $$ >/sys/fs/cgroup/cgroup.procs
rmdir /sys/fs/cgroup/ptrepl
run_ptrepl "integrity ${secs} s" integrity "$secs"

# ---- 2. the reserve -------------------------------------------------------------------
echo 32 >/proc/sys/kernel/pgtable_replication_cache
check_eq "pgtable_replication_cache reads back 32" 32 "$(cat /proc/sys/kernel/pgtable_replication_cache)"
check_eq "32 pages reserved on each of the $nnodes nodes" $((32 * nnodes)) "$(vmstat nr_pgtable_repl_cache)"
before=$(vmstat pgtable_repl_alloc_cache)
ptrepl_test basic >/dev/null 2>&1
after=$(vmstat pgtable_repl_alloc_cache)
if [ "$after" -gt "$before" ]; then
	ok "replicas were taken from the reserve ($((after - before)) tables)"
else
	not_ok "no replica came from the reserve ($before -> $after)"
fi
sleep 1
refilled=$(vmstat nr_pgtable_repl_cache)
if [ "$refilled" -ge $((16 * nnodes)) ]; then
	ok "the reserve was refilled ($refilled pages)"
else
	not_ok "the reserve was not refilled ($refilled pages)"
fi
echo -1 >/proc/sys/kernel/pgtable_replication_cache
check_eq "a negative value drains the reserve" 0 "$(vmstat nr_pgtable_repl_cache)"

# ---- 3. every new process --------------------------------------------------------------
echo 1 >/proc/sys/kernel/pgtable_replication
check_eq "a new process is replicated on every node with memory ($mem_nodes)" \
	"$mem_nodes" "$(cat /proc/self/pgtable_replication)"
run_ptrepl "integrity 20 s, every process replicated" integrity 20
echo 0 >/proc/sys/kernel/pgtable_replication
check_eq "with the sysctl back at 0, a new process is not" "" "$(cat /proc/self/pgtable_replication)"
fi

# ---- 4. CPU groups ------------------------------------------------------------------------
groups=""
for n in /sys/devices/system/node/node[0-9]*; do
	c=$(cat "$n/cpulist")
	[ -n "$c" ] && groups="$groups${groups:+;}$c"
done
if [ "$groups_only" -eq 1 ]; then
	# one node: split its CPUs in two halves
	ncpu=$(grep -c ^processor /proc/cpuinfo)
	[ "$ncpu" -ge 2 ] || bail_out "CPU-group mode needs two CPUs"
	groups="0-$((ncpu / 2 - 1));$((ncpu / 2))-$((ncpu - 1))"
fi
if echo "$groups" >/proc/sys/kernel/pgtable_replication_groups; then
	ok "pgtable_replication_groups accepts one group per socket ($groups)"
else
	not_ok "pgtable_replication_groups refused $groups"
fi
check_eq "pgtable_replication_groups reads back" "$groups" \
	"$(cat /proc/sys/kernel/pgtable_replication_groups)"
if echo "0-1;1-2" >/proc/sys/kernel/pgtable_replication_groups 2>/dev/null; then
	not_ok "overlapping groups accepted"
else
	ok "overlapping groups refused"
fi
rm -f /tmp/hold.out # (the background child truncates it later: no stale "ready")
ptrepl_test hold 8 >/tmp/hold.out &
holder=$!
wait_ready /tmp/hold.out
if echo "" >/proc/sys/kernel/pgtable_replication_groups 2>/dev/null; then
	not_ok "groups changed while a process is replicated"
else
	ok "groups cannot change while a process is replicated (EBUSY)"
fi
kill "$holder"
wait "$holder" 2>/dev/null
sleep 1
run_ptrepl "basic, CPU groups" basic
run_ptrepl "dirty, CPU groups" dirty
run_ptrepl "integrity 15 s, CPU groups" integrity 15
echo "" >/proc/sys/kernel/pgtable_replication_groups
check_eq "back to node mode" "" "$(cat /proc/sys/kernel/pgtable_replication_groups)"

[ "$groups_only" -eq 1 ] && tap_done

# ---- 5. every replica walked by tiermm.ko ----------------------------------------------
if [ -c /dev/tiermm ] && command -v tiermm >/dev/null; then
	rm -f /tmp/hold.out
	ptrepl_test hold 64 >/tmp/hold.out &
	holder=$!
	wait_ready /tmp/hold.out
	if tiermm pt stat "$holder" >/tmp/ptstat.out 2>&1 &&
		grep -q "every replica table is local" /tmp/ptstat.out; then
		ok "tiermm pt stat $holder: every replica table on its node"
	else
		not_ok "tiermm pt stat $holder: a replica table is not on its node (or no replicas seen)"
	fi
	while IFS= read -r line; do diag "  $line"; done </tmp/ptstat.out
	kill "$holder"
	wait "$holder" 2>/dev/null
else
	ok "replica walk # SKIP tiermm.ko or tiermm not in this guest"
fi

# ---- 6. Linux's mm selftests with every process replicated ------------------------------
if [ "$selftests" -eq 1 ]; then
	# shellcheck source=mmselftests.sh
	. /tests/mmselftests.sh
	if mmst_available; then
		mmst_setup
		mmst_run_all plain
		echo 1 >/proc/sys/kernel/pgtable_replication
		mmst_run_all replicated
		echo 0 >/proc/sys/kernel/pgtable_replication
		mmst_compare plain replicated "page-table replication"
	else
		ok "mm selftests # SKIP not built (tests/kmod/build-mm-selftests.sh)"
	fi
fi
tap_done
