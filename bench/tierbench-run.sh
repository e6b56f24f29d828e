#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# bench/tierbench-run.sh - the tiering benchmark from one command on the host
# (docs/tiering-benchmark.md).
#
#   bench/tierbench-run.sh [--short] [--build DIR] [--results DIR]
#                          [--workloads LIST] [--policies LIST] [--seconds N]
#                          [--sample-ms MS] [--footprint-mib MIB] [--shift-s S]
#                          [--tiermm-quota Q] [--preset NAME]
#                          [-- EXTRA TIERBENCH ARGS]
#
# Builds tierbench (in DIR, default the repository's build/ if configured, else a new
# build-tierbench/), then boots one tierbench guest (tests/vm/presets/tierbench.conf) per
# workload x policy, so every run starts from a freshly booted kernel, collects the CSVs,
# prints the table and writes the SVG plots into the results directory
# (default build-dir/tierbench-results, or tierbench-short with --short).
#
# Full run: workloads gups, zipf, zipf-shift, btree x policies first-touch, tpp, damon
# and every tiermm-* policy the binary has; 60 s each; exits non-zero if a run fails or
# tiermm-scan misses a target. --short (CI): gups x first-touch, tpp and tiermm-scan if
# built, 20 s each; reports the targets, fails only if a run fails.
# --tiermm-quota Q: the tiermm runtime's CPU quota in the guest (share of a CPU; default
# 0 = none, since TCG inflates its costs; "default" = the library's 5%).
# --preset NAME: the guest's machine (default tierbench; tierbench1: one vCPU, for
# instruction time).
# TIERMM_VM_ICOUNT=shift=0 in the environment runs the guests in instruction time (QEMU
# -icount: 1 ns per instruction, so the workload runs at about hardware speed and CPU
# shares are shares of instructions; docs/tiering-benchmark.md, "Instruction time").
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
short=0
build=""
results=""
workloads=""
policies=""
seconds=""
sample_ms=1000
footprint=512
shift_s=10
# The tiermm runtime's CPU quota in the guest: none by default. The quota works
# (the runtime keeps to it and migrates), but TCG makes the work costlier (a
# scanner pass 30-230 ms of guest CPU), so at the library's 5% gups only starts
# to converge after a minute or more (docs/tiering-benchmark.md, "The CPU quota
# under TCG"); the CPU it used is reported either way. "default" leaves the
# library's (5%).
tm_quota=0
preset=tierbench
extra=()

usage() {
	sed -n '3,28p' "$0" | sed 's/^# \{0,1\}//'
}

while [ $# -gt 0 ]; do
	case "$1" in
	--short) short=1 ;;
	--build) build=$2; shift ;;
	--results) results=$2; shift ;;
	--workloads) workloads=$2; shift ;;
	--policies) policies=$2; shift ;;
	--seconds) seconds=$2; shift ;;
	--sample-ms) sample_ms=$2; shift ;;
	--footprint-mib) footprint=$2; shift ;;
	--shift-s) shift_s=$2; shift ;;
	--tiermm-quota) tm_quota=$2; shift ;;
	--preset) preset=$2; shift ;;
	-h|--help) usage; exit 0 ;;
	--) shift; extra=("$@"); break ;;
	*) echo "tierbench-run: unknown option $1" >&2; usage >&2; exit 2 ;;
	esac
	shift
done

say() { echo "tierbench-run: $*" >&2; }

# ---- build ----
if [ -z "$build" ]; then
	if [ -f "$REPO/build/CMakeCache.txt" ]; then
		build=$REPO/build
	else
		build=$REPO/build-tierbench
	fi
fi
if [ ! -f "$build/CMakeCache.txt" ]; then
	say "configuring $build"
	cmake -S "$REPO" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
say "building tierbench in $build"
cmake --build "$build" -j2 --target tierbench >/dev/null
bin=$build/bin/tierbench
[ -x "$bin" ] || { say "no $bin after the build"; exit 5; }
have=$("$bin" --list-policies)

if [ -z "$results" ]; then
	if [ $short = 1 ]; then results=$build/tierbench-short; else results=$build/tierbench-results; fi
fi
mkdir -p "$results"
rm -f "$results"/*--*.csv "$results"/*--*.log "$results"/*--*.status "$results"/ftas-*.svg

if [ $short = 1 ]; then
	: "${workloads:=gups}"
	: "${seconds:=20}"
	if [ -z "$policies" ]; then
		policies=first-touch,tpp
		case ",$have," in *,tiermm-scan,*) policies=$policies,tiermm-scan ;; esac
	fi
else
	: "${workloads:=gups,zipf,zipf-shift,btree}"
	: "${seconds:=60}"
	: "${policies:=$have}"
fi

# Only tierbench goes into the guest (a small initramfs boots faster and leaves
# less page cache to move off the fast node); the rig adds the module itself.
stage=$results/.stage
rm -rf "$stage"
mkdir -p "$stage/bin"
cp "$bin" "$stage/bin/"

# Guest time: boot, building the data (up to ~20 s for zipf under TCG), the run, the
# output; generous, since other guests on the host slow TCG down (in instruction time
# a 300 s btree run next to another guest needed more than 6 s a guest second).
timeout=$(awk -v s="$seconds" -v k="${TIERMM_VM_ICOUNT:+9}" 'BEGIN { printf "%d", s * (k ? k : 2) + 240 }')

IFS=, read -r -a wl_list <<<"$workloads"
IFS=, read -r -a pol_list <<<"$policies"
say "workloads: ${wl_list[*]}; policies: ${pol_list[*]}; ${seconds} s each; results in $results"
t_all=$(date +%s)
for wl in "${wl_list[@]}"; do
	for pol in "${pol_list[@]}"; do
		name=$wl--$pol
		case ",$have," in
		*,"$pol",*) ;;
		*)	say "$name: policy not in this build (have: $have)"
			echo 77 >"$results/$name.status"
			continue ;;
		esac
		say "$name: booting the tierbench guest"
		t0=$(date +%s)
		args=(--workload "$wl" --policy "$pol" --seconds "$seconds" --sample-ms "$sample_ms"
		      --footprint-mib "$footprint" --shift-s "$shift_s")
		case "$pol" in
		tiermm-*) [ "$tm_quota" = default ] || args+=(--tiermm-quota "$tm_quota") ;;
		esac
		args+=(${extra[@]+"${extra[@]}"})
		quoted=$(printf "'%s' " "${args[@]}")
		cmd="tierbench $quoted --verbose --out /tmp/run.csv >&2; rc=\$?; cat /tmp/run.csv 2>/dev/null; exit \$rc"
		status=0
		for attempt in 1 2; do
			status=0
			"$REPO/tests/vm/run" --preset "$preset" --build "$stage" --timeout "$timeout" \
				-- sh -c "$cmd" >"$results/$name.csv" 2>"$results/$name.log" || status=$?
			# 4: the guest crashed before reporting (rare TCG trouble): once more
			[ $status = 4 ] && [ $attempt = 1 ] && { say "$name: guest crashed, again"; continue; }
			break
		done
		echo $status >"$results/$name.status"
		t1=$(date +%s)
		line=$(grep -h '^tierbench: workload=' "$results/$name.log" | tail -1 || true)
		say "$name: status $status, $((t1 - t0)) s${line:+: ${line#tierbench: }}"
	done
done
say "all runs: $(( $(date +%s) - t_all )) s"

rm -f "$results/timebase"
[ -z "${TIERMM_VM_ICOUNT:-}" ] || echo "QEMU -icount $TIERMM_VM_ICOUNT, preset $preset" >"$results/timebase"
full=()
[ $short = 1 ] || full=(--full)
python3 "$REPO/bench/tierbench/report.py" ${full[@]+"${full[@]}"} "$results"
