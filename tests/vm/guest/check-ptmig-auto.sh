#!/bin/sh
# tests/vm/guest/check-ptmig-auto.sh [SECONDS] - page-table migration during NUMA balancing
# (the kernel patch series kmod/patches/linux-6.12, patch 0005,
# CONFIG_NUMA_PGTABLE_MIGRATION) in a guest with two nodes (preset numa2), booted with the
# patched kernel.
#
# Every run is tests/kmod/ptmig_auto: 128 MiB written on node 0's CPUs (data and page
# tables on node 0), the data moved to node 1 with move_pages(2) and the process to node
# 1's CPUs, where writer threads rewrite and check every page (runs 4 and 5: and a thread
# takes page references through GUP-fast with vmsplice); vmstat's pgtable_migrate_*
# counters, the nodes' PageTables and the pages' integrity are reported.
#
# 1. The sysctls: kernel.numa_pgtable_migration (default 0, 0..1) and
#    kernel.numa_pgtable_migration_min_rss_mb (default 1024).
# 2. numa_pgtable_migration=0: no table moves in 10 s of NUMA balancing.
# 3. numa_pgtable_migration=1 with the default threshold: the 128 MiB process is too
#    small, no table moves.
# 4. numa_pgtable_migration=1, min_rss_mb=0: the buffer's 64 PTE tables move to node 1
#    within SECONDS (default 60), then its PMD and PUD tables; node 1's PageTables grow
#    and node 0's shrink by as much; no integrity error.
# 5. The same with the data moved by NUMA balancing itself (no move_pages): 64 MiB.
# 6. Ping-pong, SECONDS/2: the data (64 MiB) moves between the two nodes every 5 s with
#    move_pages(2) while NUMA balancing moves it back and the tables follow both, under
#    the writers and the GUP-fast thread; no integrity error. (NUMA balancing scans a
#    process every 1-60 s, adapting, so only a few scans, and table moves, happen.)
# With tiermm.ko loaded (tests/vm/run --kdir), `tiermm pt stat` also looks at the
# process's page tables at the end of runs 2 and 4: the share of its leaf entries held on
# node 1 (vMitosis's leaf-locality metric) is below 0.1 after 2 and at least 0.9 after 4.
# The rig fails the run on any BUG/WARNING/KASAN/lockdep report in the kernel log.
# shellcheck source=tap.sh
. /tests/tap.sh

secs=${1:-60}
sys=/proc/sys/kernel

[ -f $sys/numa_pgtable_migration ] ||
	bail_out "this kernel has no page-table migration (boot the patched kernel)"
[ -d /sys/devices/system/node/node1 ] || bail_out "needs two NUMA nodes"
command -v ptmig_auto >/dev/null || bail_out "ptmig_auto is not in the guest"

module=0
if [ -c /dev/tiermm ] && command -v tiermm >/dev/null; then
	module=1
else
	diag "no /dev/tiermm: the page tables' nodes are not looked at (boot with --kdir)"
fi

# run_auto NAME ARGS...: one ptmig_auto run, its output as diagnostics; sets rc and r_KEY
# for each KEY=VALUE of its result line, and with the module leaf1 (the share of the
# process's leaf entries held on node 1 at the end, from `tiermm pt stat`)
run_auto() {
	ra_name=$1
	shift
	leaf1=
	# The shell opens (truncates) the output file in the background child: without
	# the rm, the loop below could read the previous run's result line before that
	# and kill this run at once.
	rm -f /tmp/ptmig.out
	if [ $module = 1 ]; then
		ptmig_auto -k "$@" >/tmp/ptmig.out 2>&1 &
		ra_pid=$!
		ra_n=0
		while ! grep -qs '^result ' /tmp/ptmig.out && kill -0 $ra_pid 2>/dev/null &&
			[ $ra_n -lt $((secs + 60)) ]; do
			sleep 1
			ra_n=$((ra_n + 1))
		done
		if grep -qs '^result ' /tmp/ptmig.out; then
			ra_json=$(tiermm pt stat $ra_pid --json)
			leaf1=$(echo "$ra_json" |
				sed -n 's/.*{"node":1,[^}]*"leaf_local":\([0-9.]*\).*/\1/p')
			diag "tiermm pt stat: $ra_json"
		fi
		kill $ra_pid 2>/dev/null
		wait $ra_pid
		rc=$?
	else
		ptmig_auto "$@" >/tmp/ptmig.out 2>&1
		rc=$?
	fi
	sed 's/^/  /' /tmp/ptmig.out | while IFS= read -r line; do diag "$line"; done
	r_pte=-1 r_pmd=-1 r_pud=-1 r_fail=-1 r_errors=-1 r_secs=-1 r_pt0=0 r_pt1=0
	r_pt0_end=0 r_pt1_end=0 r_data_dst=-1 r_pages=0 r_writes=0
	# shellcheck disable=SC2013 # words of one line
	for kv in $(sed -n 's/^result //p' /tmp/ptmig.out); do
		case $kv in
		*=*[!0-9.-]*) ;;
		[a-z]*=*) eval "r_${kv%%=*}=${kv#*=}" ;;
		esac
	done
	check_eq "$ra_name: ptmig_auto exits 0" 0 "$rc"
	check_eq "$ra_name: no integrity error ($r_writes writes)" 0 "$r_errors"
}

# 1. the sysctls
check_eq "numa_pgtable_migration defaults to 0" 0 "$(cat $sys/numa_pgtable_migration)"
check_eq "numa_pgtable_migration_min_rss_mb defaults to 1024" 1024 \
	"$(cat $sys/numa_pgtable_migration_min_rss_mb)"
if echo 2 >$sys/numa_pgtable_migration 2>/dev/null; then
	not_ok "numa_pgtable_migration refuses 2"
else
	ok "numa_pgtable_migration refuses 2"
fi
if echo -1 >$sys/numa_pgtable_migration_min_rss_mb 2>/dev/null; then
	not_ok "numa_pgtable_migration_min_rss_mb refuses -1"
else
	ok "numa_pgtable_migration_min_rss_mb refuses -1"
fi
echo 1 >$sys/numa_balancing
check_eq "numa_balancing is 1" 1 "$(cat $sys/numa_balancing)"

# 2. off
echo 0 >$sys/numa_pgtable_migration
echo 0 >$sys/numa_pgtable_migration_min_rss_mb
run_auto "off" -m 128 -t 10
check_eq "off: no table moved (pte pmd pud)" "0 0 0" "$r_pte $r_pmd $r_pud"
if [ $module = 1 ]; then
	check_cmd "off: < 10% of the leaf entries on node 1 ($leaf1)" \
		awk -v v="$leaf1" 'BEGIN { exit !(v != "" && v + 0 < 0.1) }'
fi

# 3. on, the process below the RSS threshold
echo 1024 >$sys/numa_pgtable_migration_min_rss_mb
echo 1 >$sys/numa_pgtable_migration
run_auto "below min_rss" -m 128 -t 10
check_eq "below min_rss: no table moved (pte pmd pud)" "0 0 0" "$r_pte $r_pmd $r_pud"

# 4. on
echo 0 >$sys/numa_pgtable_migration_min_rss_mb
t=$(date +%s)
run_auto "on" -m 128 -t "$secs" -w 64 -g
diag "on: $r_pte PTE, $r_pmd PMD, $r_pud PUD tables moved, $r_fail failed, the 64th PTE table after $r_secs s ($(($(date +%s) - t)) s in all)"
check_cmd "on: the buffer's 64 PTE tables moved ($r_pte)" [ "$r_pte" -ge 64 ]
check_cmd "on: a PMD table moved ($r_pmd)" [ "$r_pmd" -ge 1 ]
check_cmd "on: a PUD table moved ($r_pud)" [ "$r_pud" -ge 1 ]
check_eq "on: no table failed to move" 0 "$r_fail"
# 64 tables of 4 kB, less what other processes may have freed or allocated meanwhile
check_cmd "on: node 1 PageTables grew by >= 192 kB ($r_pt1 -> $r_pt1_end kB)" \
	[ $((r_pt1_end - r_pt1)) -ge 192 ]
check_cmd "on: node 0 PageTables shrank by >= 192 kB ($r_pt0 -> $r_pt0_end kB)" \
	[ $((r_pt0 - r_pt0_end)) -ge 192 ]
check_eq "on: the data stayed on node 1" "$r_pages" "$r_data_dst"
if [ $module = 1 ]; then
	check_cmd "on: >= 90% of the leaf entries on node 1 ($leaf1)" \
		awk -v v="$leaf1" 'BEGIN { exit !(v != "" && v + 0 >= 0.9) }'
fi

# 5. on, data moved by NUMA balancing
run_auto "balancing" -b -m 64 -t "$secs" -w 24 -g
diag "balancing: $r_data_dst of $r_pages pages on node 1 at the end; $r_pte PTE, $r_pmd PMD, $r_pud PUD tables moved, $r_fail failed, after $r_secs s"
check_cmd "balancing: >= 24 of the buffer's 32 PTE tables moved ($r_pte)" [ "$r_pte" -ge 24 ]

# 6. ping-pong
run_auto "ping-pong" -m 64 -t $((secs / 2)) -p 5 -g
diag "ping-pong: $r_pte PTE, $r_pmd PMD, $r_pud PUD tables moved, $r_fail failed in $r_secs s"
check_cmd "ping-pong: tables moved ($r_pte)" [ "$r_pte" -ge 1 ]

echo 0 >$sys/numa_pgtable_migration
echo 1024 >$sys/numa_pgtable_migration_min_rss_mb
tap_done
