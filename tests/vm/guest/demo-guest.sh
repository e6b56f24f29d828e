#!/bin/sh
# tests/vm/guest/demo-guest.sh SECONDS FOOTPRINT_MIB SHIFT_S [PROGRESS_S] - the guest half
# of scripts/demo.sh, in the tiered guest (busybox sh): the topology, then tierbench's
# zipf-shift workload (key-value lookups whose popular records move every SHIFT_S seconds)
# twice, each for SECONDS, on FOOTPRINT_MIB of data of which the fast tier holds 20%: once
# as first touch leaves it (nothing moves), once under `tiermm run`, where the runtime the
# shim starts in the process does the tiering. Progress every PROGRESS_S seconds (default
# 4). At the end the CSVs and the runtime's statistics are printed between
#   @@demo-file NAME            and            @@demo-end NAME
# lines for the host to collect, then `@@demo-done STATUS`. Exit status: 0, or 1 when a run
# failed or tiermm's runtime did not run (its statistics missing, or state failed).
#
# The job's machine: socket 0 (CPUs 0-1) with its DRAM, node 0, as the fast tier, and the
# CPU-less CXL node 2 as the slow tier. Node 1, the other socket's DRAM, is in the same
# memory tier as node 0; a cpuset (cgroup v2) keeps the job off it, so that "the fast
# tier" is one node whose capacity tierbench can set to exactly 20% of the data.

secs=${1:-40}
mib=${2:-256}
shift_s=${3:-10}
every=${4:-4}
dir=/tmp/demo
mkdir -p $dir
status=0

say() { printf '%s\n' "$*"; }
line() { say "------------------------------------------------------------------------------"; }

for p in tiermm tierbench; do
	command -v $p >/dev/null || { say "demo: $p is not in the guest"; say "@@demo-done 1"; exit 1; }
done

# 1. The machine --------------------------------------------------------------------------
line
say "The machine: QEMU guest '${TIERMM_VM_PRESET:-?}', $(nproc) vCPUs, Linux $(uname -r)"
line
# tiermm topo, short: the nodes, the tiers, and the firmware's (HMAT) read latencies.
tiermm topo 2>&1 | awk '
	/^Topology:/ { next }
	/^Firmware read latency/ { lat = 1; print; next }
	/^(Firmware|Measured)/ { skip = 1; lat = 0; next }
	lat && NF == 0 { lat = 0; next }
	lat { print; next }
	!skip { print }
	skip && NF == 0 { skip = 0 }'
say ""
tiermm caps 2>&1 | grep -E '^(memory_tiers|hmat|module|perf_mem_sampling) '

# The job's cpuset: socket 0 and the CXL node.
cg=/sys/fs/cgroup
if [ -f $cg/cgroup.controllers ] && grep -qw cpuset $cg/cgroup.controllers; then
	echo +cpuset >$cg/cgroup.subtree_control 2>/dev/null
	mkdir -p $cg/demo
	if ! { echo 0-1 >$cg/demo/cpuset.cpus && echo 0,2 >$cg/demo/cpuset.mems &&
		echo $$ >$cg/demo/cgroup.procs; }; then
		say "demo: cannot set up the cpuset (CPUs 0-1, nodes 0,2)"
		say "@@demo-done 1"
		exit 1
	fi
else
	say "demo: no cpuset controller in the guest's cgroup v2"
	say "@@demo-done 1"
	exit 1
fi
# The kernel's own tiering stays off (tierbench sets this too, for both runs).
echo 0 >/proc/sys/kernel/numa_balancing 2>/dev/null
echo false >/sys/kernel/mm/numa/demotion_enabled 2>/dev/null

# 2. The workload -------------------------------------------------------------------------
pages=$((mib * 256))
cap=$(((pages * 2 + 5) / 10))
args="--workload zipf-shift --policy first-touch --fast-node 0 --slow-node 2
      --footprint-mib $mib --seconds $secs --shift-s $shift_s --sample-ms 1000 --verbose"

# progress [STATS]: tierbench's --verbose lines on stdin -> a line every $every seconds and
# one per shift of the hot set; with STATS, the runtime's counters from its last record.
progress() {
	awk -v every="$every" -v stats="${1:-}" -v cap="$cap" '
	function num(rec, key,   s) {
		if (!match(rec, "\"" key "\":[-0-9.e+]+")) return ""
		s = substr(rec, RSTART, RLENGTH); sub(/^[^:]*:/, "", s); return s
	}
	function tsec(l,   s) {
		s = l; sub(/^[^[]*\[ */, "", s); sub(/\].*/, "", s); return s + 0
	}
	/^tierbench \[.*\] ftas / {
		t = tsec($0); n = split($0, f, " ")
		for (i = 1; i <= n; i++) {
			if (f[i] == "ftas") ftas = f[i + 1]
			if (f[i] == "oracle") orc = f[i + 1]
		}
		s = int(t + 0.5)
		if (s > 0 && s % every != 0 && !shifted) next
		shifted = 0
		out = sprintf("  %4d s   FTAS %.3f   (best possible %.3f)", s, ftas, orc)
		if (stats != "") {
			cmd = "tail -n 1 " stats " 2>/dev/null"; rec = ""
			cmd | getline rec; close(cmd)
			p = num(rec, "promoted_bytes"); d = num(rec, "demoted_bytes")
			if (p != "")
				out = out sprintf("   tiermm: promoted %4.0f MiB, demoted %4.0f MiB", p / 1048576, d / 1048576)
		}
		print out; fflush(); next
	}
	/^tierbench \[.*\] shift to epoch/ {
		printf "  %4d s   -- the hot set moves --\n", int(tsec($0) + 0.5); fflush()
		shifted = 1; next
	}
	/^tierbench \[.*\] building / {
		s = $0; sub(/^tierbench \[[^]]*\] /, "", s)
		print "  setup: " s; fflush(); next
	}
	/^tierbench \[.*\] fast node [0-9]+: free/ {
		print "  setup: fast node filled up, leaving room for exactly " cap " data pages (20%)"; fflush(); next
	}
	# the other setup details (they are in the CSV header); anything else is a problem
	/^tierbench \[.*\] (fast node [0-9]+ \(|moved [0-9]+ pages of files|residency query:|filler round )/ { next }
	/^tierbench \[/ { s = $0; sub(/^tierbench \[[^]]*\] /, "", s); print "  tierbench: " s; fflush(); next }
	/^tierbench: workload=/ { next }    # the summary line: the table on the host has it
	{ print "  " $0; fflush() }'
}

run() { # run NAME [PREFIX...]: tierbench with $args under PREFIX
	name=$1
	shift
	t0=$(date +%s)
	# shellcheck disable=SC2086
	{ "$@" tierbench $args --out $dir/$name.csv; echo $? >$dir/$name.status; } 2>&1 |
		progress "$stats"
	st=$(cat "$dir/$name.status")
	say "  ($(($(date +%s) - t0)) s in the guest, setup included; tierbench status $st)"
	[ "$st" = 0 ] || status=1
}

say ""
line
say "The workload: tierbench zipf-shift, ${mib} MiB of 1 KiB records read with Zipf(0.99)"
say "popularity; every ${shift_s} s the popular records change completely. The fast tier"
say "(node 0) holds 20% of the data ($cap pages); the first 20% of the pages start there,"
say "as first touch leaves them. FTAS = the share of accesses the fast tier serves."
say "The job runs in a cpuset on socket 0: CPUs 0-1, memory nodes 0 and 2 (node 1, the"
say "other socket's DRAM, is in the fast tier too; the cpuset keeps the job off it)."
say ""
say "TCG (QEMU's emulator) does not model memory latency: a page on node 2 is exactly as"
say "fast as one on node 0 here. What is measured is where every page is, every second;"
say "times are modeled from the firmware's (HMAT) latencies above, never wall time."
line
say ""
say "[1/2] first touch, no tiering: ${secs} s"
stats=
run zipf-shift--first-touch

say ""
say "[2/2] the same under tiermm run (backend scan: tiermm.ko's accessed-bit scanner): ${secs} s"
# The budget: the fast tier's 20% plus 4 MiB for what the process has there besides the
# data (its stack, the C library's data, the runtime's own memory); the fast node itself
# has room for the 20% and no more. No CPU quota: under TCG the runtime's work costs tens
# of times what it costs on hardware, and the library's default 5% of a CPU buys a scanner
# pass every few seconds (docs/tiering-benchmark.md); tiermm run has no option for the
# quota, TIERMM_CONF's cpu-quota key does it (tiermm run adds its options to it).
# --topo none: the shim discovers the topology itself. The cache tiermm run would make
# is written from inside the cpuset, so it lists nodes 0 and 2 only, and the shim then
# refuses it ("describes 2 NUMA nodes with memory, this machine has 3").
budget=$(((cap + 1024) * 4096))
stats=$dir/tiermm-run.jsonl
say "  \$ TIERMM_CONF=cpu-quota:none tiermm run --backend scan --fast-budget $budget \\"
say "      --stats $stats --topo none --strict -- tierbench ..."
TIERMM_CONF=cpu-quota:none
export TIERMM_CONF
run zipf-shift--under-tiermm-run tiermm run --backend scan --fast-budget $budget --stats $stats --topo none --strict --
unset TIERMM_CONF
if [ ! -s $stats ]; then
	say "demo: no statistics from tiermm's runtime ($stats)"
	status=1
elif grep -q '"state":"failed"' $stats; then
	say "demo: tiermm's runtime failed:"
	grep '"state":"failed"' $stats | head -1 | sed -n 's/.*"error":"\([^"]*\)".*/  \1/p'
	status=1
fi

# 3. The files, for the host ----------------------------------------------------------------
for f in zipf-shift--first-touch.csv zipf-shift--first-touch.status \
	zipf-shift--under-tiermm-run.csv zipf-shift--under-tiermm-run.status tiermm-run.jsonl; do
	[ -f $dir/$f ] || continue
	say "@@demo-file $f"
	cat $dir/$f
	say "@@demo-end $f"
done
say "@@demo-done $status"
exit $status
