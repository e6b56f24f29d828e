#!/bin/sh
# tests/vm/guest/check-ptrepl-stress.sh [SECONDS] - stress-ng against page-table
# replication (the kernel patch series kmod/patches/linux-6.12), in a guest booted with
# the patched kernel and stress-ng packed (tests/vm/run --with stress-ng), preset numa2 or
# numa4.
#
# stress-ng's vm, mmap (with mprotect), mremap and fork (with --fork-vm) stressors, two
# workers each, --verify, SECONDS each (default 10), first with
# kernel.pgtable_replication=0, then with =1 (stress-ng and every child it forks
# replicated on every node with memory). For each run: stress-ng exits 0 and reports no
# failure, and prints its bogo ops. With =0: no stress-ng process is replicated and the
# replica counter (nr_pgtable_replica in /proc/vmstat) stays where it was. With =1: every
# live stress-ng process seen is replicated on every node with memory, the counter rose
# while stress-ng ran, and it is back at its baseline once stress-ng has exited (the
# replicas freed). The sysctl is set back to 0 at the end.
#
# While the sysctl is 1 every new process is replicated, so the sampling loop forks
# nothing (builtins only: a FIFO read with a timeout stands for sleep) and the counter
# counts stress-ng's replicas alone. The rig fails the run on any BUG/WARNING/Oops report
# in the kernel log.
# shellcheck source=tap.sh
. /tests/tap.sh

secs=${1:-10}

if [ ! -f /proc/sys/kernel/pgtable_replication ]; then
	echo "1..0 # SKIP this kernel has no page-table replication (boot the patched kernel)"
	exit 0
fi
[ -d /sys/devices/system/node/node1 ] || bail_out "needs two NUMA nodes (preset numa2 or numa4)"
command -v stress-ng >/dev/null ||
	bail_out "stress-ng is not in the guest (tests/vm/run --with stress-ng)"
mem_nodes=$(cat /sys/devices/system/node/has_memory)
diag "$(stress-ng --version 2>&1)" "nodes with memory: $mem_nodes; $secs s per stressor"

# the stressors, NAME ARGS a line (two workers each, small sizes: the guest has 1 GiB a node)
cat >/tmp/stressors <<EOF
vm --vm 2 --vm-bytes 64M
mmap --mmap 2 --mmap-bytes 32M --mmap-mprotect
mremap --mremap 2 --mremap-bytes 32M
fork --fork 2 --fork-vm
EOF

# a FIFO nobody writes: reading it with a timeout sleeps without starting a process
mkfifo /tmp/ptrepl-stress.fifo
exec 3<>/tmp/ptrepl-stress.fifo
rm -f /tmp/ptrepl-stress.fifo
# shellcheck disable=SC3045 # busybox's read has -t
nap() { read -r -t "$1" _ <&3; }

# vmstat_read KEY: vm_val = KEY's value in /proc/vmstat (refreshed), with builtins only
vmstat_read() {
	echo 1 >/proc/sys/vm/stat_refresh
	vm_val=
	while read -r vr_k vr_v; do
		if [ "$vr_k" = "$1" ]; then
			vm_val=$vr_v
			break
		fi
	done </proc/vmstat
}

# stress_procs: among the live stress-ng processes, sp_repl are replicated on every node
# with memory, sp_plain not replicated at all, sp_part on some other set (sp_part_set);
# builtins only. A process that had no mm any more (exiting) is not counted: its statm,
# read after its pgtable_replication, is all zeros.
stress_procs() {
	sp_repl=0
	sp_plain=0
	sp_part=0
	for sp_d in /proc/[0-9]*; do
		sp_c=
		read -r sp_c 2>/dev/null <"$sp_d/comm" || continue
		case $sp_c in
		stress-ng*) ;;
		*) continue ;;
		esac
		sp_r=none
		read -r sp_r 2>/dev/null <"$sp_d/pgtable_replication" || continue
		sp_m=0
		read -r sp_m _ 2>/dev/null <"$sp_d/statm" || continue
		[ "$sp_m" = 0 ] && continue
		if [ "$sp_r" = "$mem_nodes" ]; then
			sp_repl=$((sp_repl + 1))
		elif [ -z "$sp_r" ]; then
			sp_plain=$((sp_plain + 1))
		else
			sp_part=$((sp_part + 1))
			sp_part_set=$sp_r
		fi
	done
}

# stress NAME REPL ARGS...: one stress-ng run with kernel.pgtable_replication=REPL
stress() {
	st_name=$1
	st_repl=$2
	shift 2
	st_mode="pgtable_replication=$st_repl"
	vmstat_read nr_pgtable_replica
	st_base=$vm_val
	st_max=$vm_val
	st_repl_seen=0
	st_plain_seen=0
	st_part_seen=0
	st_samples=0
	st_t=$(date +%s)
	echo "$st_repl" >/proc/sys/kernel/pgtable_replication
	# from here to the sysctl going back to 0: no process but stress-ng's
	stress-ng "$@" --verify --timeout "${secs}s" --metrics-brief --temp-path /tmp \
		>/tmp/stress.out 2>&1 &
	st_pid=$!
	nap 2
	while kill -0 "$st_pid" 2>/dev/null; do
		vmstat_read nr_pgtable_replica
		[ "$vm_val" -gt "$st_max" ] && st_max=$vm_val
		stress_procs
		st_samples=$((st_samples + 1))
		[ "$sp_repl" -gt "$st_repl_seen" ] && st_repl_seen=$sp_repl
		[ "$sp_plain" -gt "$st_plain_seen" ] && st_plain_seen=$sp_plain
		[ "$sp_part" -gt "$st_part_seen" ] && st_part_seen=$sp_part
		nap 2
	done
	wait "$st_pid"
	st_rc=$?
	echo 0 >/proc/sys/kernel/pgtable_replication
	st_dt=$(($(date +%s) - st_t))

	sed 's/^/  /' /tmp/stress.out | while IFS= read -r line; do diag "$line"; done
	st_ops=$(awk -v n="$st_name" '$2 == "metrc:" && $4 == n { print $5; exit }' /tmp/stress.out)
	if [ "$st_rc" -eq 0 ] && grep -q '\] successful run completed' /tmp/stress.out &&
		! grep -q -e ' fail: ' -e 'unsuccessful' /tmp/stress.out; then
		ok "$st_name, $st_mode: stress-ng --verify passed, ${st_ops:-?} bogo ops in $st_dt s"
	else
		not_ok "$st_name, $st_mode: stress-ng exit $st_rc or a failure reported"
	fi

	# replica counter: back at the baseline once the replicas are freed (RCU: wait)
	st_i=0
	vmstat_read nr_pgtable_replica
	while [ "$vm_val" -gt "$st_base" ] && [ "$st_i" -lt 30 ]; do
		nap 0.5
		st_i=$((st_i + 1))
		vmstat_read nr_pgtable_replica
	done
	st_after=$vm_val
	diag "nr_pgtable_replica: $st_base before, $st_max at most during ($st_samples samples), $st_after after;" \
		"stress-ng processes seen at once: $st_repl_seen replicated, $st_plain_seen not, $st_part_seen partly"
	if [ "$st_repl" -eq 1 ]; then
		if [ "$st_repl_seen" -gt 0 ] && [ "$st_plain_seen" -eq 0 ] && [ "$st_part_seen" -eq 0 ]; then
			ok "$st_name, $st_mode: every stress-ng process seen is replicated on $mem_nodes"
		else
			not_ok "$st_name, $st_mode: stress-ng processes not all replicated on $mem_nodes (at most $st_repl_seen at once were, $st_plain_seen on no node, $st_part_seen on ${sp_part_set:-another set})"
		fi
		if [ "$st_max" -gt "$st_base" ]; then
			ok "$st_name, $st_mode: nr_pgtable_replica rose while it ran ($st_base -> $st_max)"
		else
			not_ok "$st_name, $st_mode: nr_pgtable_replica did not rise ($st_base -> $st_max)"
		fi
	else
		if [ "$st_repl_seen" -eq 0 ] && [ "$st_part_seen" -eq 0 ] && [ "$st_max" -le "$st_base" ]; then
			ok "$st_name, $st_mode: no stress-ng process replicated, nr_pgtable_replica did not rise"
		else
			not_ok "$st_name, $st_mode: replicas without the sysctl ($st_repl_seen processes, $st_base -> $st_max)"
		fi
	fi
	if [ "$st_after" -le "$st_base" ]; then
		ok "$st_name, $st_mode: nr_pgtable_replica back at its baseline ($st_after <= $st_base)"
	else
		not_ok "$st_name, $st_mode: nr_pgtable_replica $st_after after, $st_base before: replicas not freed"
	fi
}

echo 0 >/proc/sys/kernel/pgtable_replication
for repl in 0 1; do
	while read -r name args; do
		# shellcheck disable=SC2086 # ARGS are words
		stress "$name" "$repl" $args
	done </tmp/stressors
done
echo 0 >/proc/sys/kernel/pgtable_replication
check_eq "kernel.pgtable_replication back at 0" 0 "$(cat /proc/sys/kernel/pgtable_replication)"
if dmesg | grep -q -e 'lost its replicas' -e 'pgtable_replication: refused'; then
	dmesg | grep -e 'lost its replicas' -e 'pgtable_replication: refused' | head -n 10 |
		while IFS= read -r line; do diag "  $line"; done
	not_ok "the kernel dropped or refused replicas during the runs (dmesg above)"
else
	ok "no replica dropped or refused (dmesg)"
fi
tap_done
