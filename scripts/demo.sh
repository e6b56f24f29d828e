#!/bin/sh
# The main job on the emulated machine (issue 6), from one command:
#
#   scripts/demo.sh [--short] [--build DIR] [--out DIR] [--no-build]
#                   [--seconds N] [--footprint-mib M] [--shift-s S]
#
# Installs what is missing (scripts/deps.sh), builds tiermm (scripts/build.sh DIR, default
# build), boots the `tiered` guest once (two CPU nodes and a CPU-less slow node that the
# kernel puts in a lower memory tier from HMAT data; QEMU TCG) and runs
# tests/vm/guest/demo-guest.sh there: the topology (`tiermm topo`, short), then tierbench's
# zipf-shift workload (256 MiB, the popular records move every 10 s, the fast tier holding
# 20% of the data) for 40 s as first touch leaves it, and again for 40 s under
# `tiermm run --backend scan`, with a progress line every few seconds. On the host: the
# comparison table (fast-tier access share, the oracle, modeled time from the HMAT
# latencies, what tiermm moved and the CPU it took) and the SVG plots, in the results
# directory (default DIR/demo).
#
#   --short            CI: 128 MiB, 16 s per run, the hot set moving every 8 s
#   --build DIR        the build directory (default: build)
#   --no-build         use DIR as it is: no scripts/deps.sh, no scripts/build.sh
#   --out DIR          results directory (default: BUILD/demo, BUILD/demo-short with --short)
#   --seconds N, --footprint-mib M, --shift-s S   the workload's run time, size, shift period
#
# Exit status: 0; the rig's (tests/vm/run) status when the guest failed (3: its kernel log
# has BUG/WARNING/Oops/... reports); 1 when a run failed, tiermm's runtime did not run or
# failed, the table or the FTAS plot is missing, or `tiermm plot` failed.
set -eu
here=$(pwd)
cd "$(dirname "$0")/.."
# abs PATH: PATH as given on the command line (relative to where the demo was started)
abs() { case $1 in /*) printf '%s\n' "$1" ;; *) printf '%s/%s\n' "$here" "$1" ;; esac; }

short=0
build=build
out=
do_build=1
secs=
mib=
shift_s=
usage() { sed -n '4,26p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
	case $1 in
	--short) short=1 ;;
	--build) build=$(abs "${2:?--build needs a directory}"); shift ;;
	--no-build) do_build=0 ;;
	--out) out=$(abs "${2:?--out needs a directory}"); shift ;;
	--seconds) secs=${2:?}; shift ;;
	--footprint-mib) mib=${2:?}; shift ;;
	--shift-s) shift_s=${2:?}; shift ;;
	-h | --help) usage; exit 0 ;;
	*) echo "demo: unknown option $1" >&2; usage >&2; exit 2 ;;
	esac
	shift
done
if [ $short = 1 ]; then
	: "${secs:=16}" "${mib:=128}" "${shift_s:=8}"
	every=2
	: "${out:=$build/demo-short}"
else
	: "${secs:=40}" "${mib:=256}" "${shift_s:=10}"
	every=4
	: "${out:=$build/demo}"
fi
for v in "$secs" "$mib" "$shift_s"; do
	case $v in
	'' | *[!0-9]* | 0) echo "demo: --seconds, --footprint-mib and --shift-s take whole numbers > 0" >&2; exit 2 ;;
	esac
done
wl=zipf-shift
say() { printf 'demo: %s\n' "$*" >&2; }
t_start=$(date +%s)

mkdir -p "$out"
out=$(cd "$out" && pwd)
if [ $do_build = 1 ]; then
	scripts/deps.sh
	say "building tiermm in $build (log: $out/build.log)"
	if ! scripts/build.sh "$build" >"$out/build.log" 2>&1; then
		tail -n 30 "$out/build.log" >&2
		say "the build failed (the whole log: $out/build.log)"
		exit 1
	fi
fi
[ -x "$build/bin/tiermm" ] || { say "no $build/bin/tiermm: build first (or drop --no-build)"; exit 2; }

# What goes into the guest: the tiermm command, the library and the shim, and tierbench
# linked dynamically (the build's target tierbench-dynamic, in demo-bin/): a static
# program ignores LD_PRELOAD, so `tiermm run` could not start the runtime in the
# benchmark's static tierbench. Without the tiermm policies: here tierbench itself only
# places and measures, the runtime the shim starts does the tiering.
[ -x "$build/demo-bin/tierbench" ] ||
	{ say "no $build/demo-bin/tierbench (cmake --build $build --target tierbench-dynamic)"; exit 2; }
stage=$build/demo-stage
rm -rf "$stage"
mkdir -p "$stage/bin" "$stage/lib"
cp "$build/bin/tiermm" "$build/demo-bin/tierbench" "$stage/bin/"
cp -P "$build"/lib/libtiermm.so* "$build/lib/libtiermm-preload.so" "$stage/lib/"

# Results of an earlier run go.
for f in "$wl--first-touch" "$wl--under-tiermm-run"; do
	rm -f "$out/$f.csv" "$out/$f.status"
done
rm -f "$out/tiermm-run.jsonl" "$out/tiermm-run.svg" "$out/ftas-$wl.svg" "$out/table.txt" \
	"$out/summary.csv" "$out/results.md" "$out/report.txt" "$out/guest.log" "$out/vm.log" \
	"$out/guest-kernel.log"

# Boot, and follow the guest's output as it arrives: the rig prints it only when the guest
# has powered off, but QEMU writes the serial port's file in its work directory at once.
vmtmp=$out/.vm
rm -rf "$vmtmp"
mkdir -p "$vmtmp"
timeout=$((secs * 6 + 180))
say "booting the tiered guest (QEMU TCG); the guest's output follows"
TMPDIR=$(cd "$vmtmp" && pwd) tests/vm/run --preset tiered --build "$stage" --keep \
	--timeout "$timeout" -- /tests/demo-guest.sh "$secs" "$mib" "$shift_s" "$every" \
	>"$out/guest.log" 2>"$out/vm.log" &
rig=$!
trap 'kill -TERM $rig 2>/dev/null; wait $rig 2>/dev/null; exit 130' INT TERM
serial=
while kill -0 $rig 2>/dev/null; do
	for d in "$vmtmp"/tiermm-vm.*; do
		[ -e "$d/stdout" ] && serial=$d/stdout
	done
	[ -n "$serial" ] && break
	sleep 0.3
done
if [ -n "$serial" ]; then
	# (a read loop, not awk: mawk reads a pipe in blocks, which would hold the lines back)
	tail --pid=$rig -s 0.3 -n +1 -F "$serial" 2>/dev/null | {
		skip=0
		while IFS= read -r l; do
			case $l in
			@@demo-file\ *) skip=1 ;;
			@@demo-end\ *) skip=0 ;;
			@@demo-done\ *) ;;
			*) [ $skip = 1 ] || printf '%s\n' "$l" ;;
			esac
		done
	}
fi
rc=0
wait $rig || rc=$?
trap - INT TERM
for d in "$vmtmp"/tiermm-vm.*; do
	[ -f "$d/kernel.log" ] && cp "$d/kernel.log" "$out/guest-kernel.log"
done
rm -rf "$vmtmp"
# The rig's own messages (the guest's were on its stdout): all of them when it failed
# (why it could not boot, the kernel log's reports), else its warnings.
if [ $rc != 0 ]; then
	grep -v '^tiermm-vm: work directory kept' "$out/vm.log" >&2 || true
else
	grep '^tiermm-vm:' "$out/vm.log" | grep -v '^tiermm-vm: work directory kept' >&2 || true
fi

# The files the guest printed between @@demo-file and @@demo-end lines.
awk -v dir="$out" '
	/^@@demo-file / { f = dir "/" $2; printf "" > f; next }
	/^@@demo-end / { close(f); f = ""; next }
	f != "" { print > f }' "$out/guest.log"
guest_done=$(sed -n 's/^@@demo-done //p' "$out/guest.log")
if [ $rc != 0 ] && [ -z "$guest_done" ]; then
	say "the guest failed (tests/vm/run status $rc): see $out/vm.log"
	exit $rc
fi

# The table and the FTAS plot: tierbench's report over the two runs.
python3 bench/tierbench/report.py "$out" >"$out/report.txt" 2>&1 || true

# tiermm's own plot of the runtime's statistics: residency per tier, and the fast-tier
# access share the scanner observed, over time.
plot=skipped
if [ -s "$out/tiermm-run.jsonl" ]; then
	if "$build/bin/tiermm" plot --help >/dev/null 2>&1; then
		if "$build/bin/tiermm" plot -o "$out/tiermm-run.svg" --title \
			"tierbench $wl under tiermm run (time from the process's start, setup included)" \
			"$out/tiermm-run.jsonl"; then
			plot=ok
		else
			plot=failed
			say "tiermm plot failed on $out/tiermm-run.jsonl"
		fi
	else
		say "skipping the runtime's plot: this build's tiermm has no 'plot' verb yet"
	fi
fi

# The comparison, from tierbench's summaries (the CSVs' last lines), the CSV rows (FTAS
# over the whole run) and the runtime's last statistics record.
table() {
	awk -F, -v wl="$wl" -v mib="$mib" -v secs="$secs" -v shift_s="$shift_s" '
	function kv(line, key,   s) {
		if (!match(line, "(^| )" key "=[^ ]*")) return ""
		s = substr(line, RSTART, RLENGTH); sub(/^ /, "", s); sub(/^[^=]*=/, "", s); return s
	}
	function js(line, key,   s) {
		if (!match(line, "\"" key "\":[-0-9.e+]+")) return ""
		s = substr(line, RSTART, RLENGTH); sub(/^[^:]*:/, "", s); return s
	}
	FNR == 1 { run = (FILENAME ~ /first-touch/) ? 1 : (FILENAME ~ /jsonl$/) ? 3 : 2; col = 0 }
	run == 3 { if ($0 ~ /^\{/) rec = $0; next }
	/^# pages=/ { lf = kv($0, "lat_fast_ns"); ls = kv($0, "lat_slow_ns"); next }
	/^# summary / { sm[run] = $0; next }
	/^#/ { next }
	!col { for (i = 1; i <= NF; i++) if ($i == "ftas") col = i; next }
	{ sum[run] += $col; n[run]++ }
	function t90(s,   t) { t = kv(s, "t90_start_s") + 0; return t < 0 ? "never" : sprintf("after %d s", t) }
	function moves(s,   k, r) {
		k = kv(s, "shifts") + 0; r = kv(s, "shifts_reached") + 0
		if (!r) return sprintf("%d of %d", r, k)
		return sprintf("%d of %d, after %.0f s", r, k, kv(s, "t90_shift_mean_s"))
	}
	function row(label, a, b) { printf "%-38s %-18s %s\n", label, a, b }
	END {
		if (!(1 in sm) || !(2 in sm)) { print "no summary from one of the runs"; exit 1 }
		printf "%s, %d MiB, fast tier = 20%% of it, %d s per run, hot set moving every %d s\n",
			wl, mib, secs, shift_s
		printf "modeled with the HMAT latencies: %s ns fast tier, %s ns slow tier (TCG does not\n", lf, ls
		printf "model memory latency: these are not wall-clock times)\n\n"
		row("", "first touch", "under tiermm run")
		row("", "-----------", "----------------")
		row("FTAS, whole run", sprintf("%.3f", sum[1] / n[1]), sprintf("%.3f", sum[2] / n[2]))
		row("FTAS, steady state (second half)", sprintf("%.3f", kv(sm[1], "mean_ftas")),
			sprintf("%.3f", kv(sm[2], "mean_ftas")))
		row("oracle (best FTAS for the capacity)", sprintf("%.3f", kv(sm[1], "mean_oracle")),
			sprintf("%.3f", kv(sm[2], "mean_oracle")))
		row("FTAS / oracle, steady state", sprintf("%.2f", kv(sm[1], "ftas_over_oracle")),
			sprintf("%.2f", kv(sm[2], "ftas_over_oracle")))
		row("FTAS at 90% of the oracle: at start", t90(sm[1]), t90(sm[2]))
		if (kv(sm[1], "shifts") + 0)
			row("  ... again after the hot set moved", moves(sm[1]), moves(sm[2]))
		a = kv(sm[1], "model_ns_per_access"); b = kv(sm[2], "model_ns_per_access")
		row("modeled time per access", sprintf("%.0f ns", a), sprintf("%.0f ns", b))
		row("modeled time for 10^9 accesses", sprintf("%.0f s", a),
			sprintf("%.0f s (%.2fx faster)", b, b > 0 ? a / b : 0))
		row("pages migrated (vmstat)", kv(sm[1], "pages_migrated"), kv(sm[2], "pages_migrated"))
		if (rec != "") {
			row("tiermm: promoted / demoted", "-", sprintf("%.1f / %.1f MiB",
				js(rec, "promoted_bytes") / 1048576, js(rec, "demoted_bytes") / 1048576))
			c = js(rec, "cpu_sampling_s") + js(rec, "cpu_classify_s") + js(rec, "cpu_migrate_s")
			row("tiermm: runtime CPU (TCG-inflated)", "-",
				sprintf("%.1f s = %.0f%% of a CPU", c, js(rec, "t") > 0 ? 100 * c / js(rec, "t") : 0))
		} else {
			row("tiermm: statistics", "-", "none")
		}
	}' "$out/$wl--first-touch.csv" "$out/$wl--under-tiermm-run.csv" "$out/tiermm-run.jsonl"
}

status=0
if [ -s "$out/$wl--first-touch.csv" ] && [ -s "$out/$wl--under-tiermm-run.csv" ] &&
	table >"$out/table.txt"; then
	echo
	echo "=============================================================================="
	cat "$out/table.txt"
	echo "=============================================================================="
else
	say "no comparison table: a run produced no results (see $out/guest.log)"
	status=1
fi

# Checks (vm.demo runs this with --short): both runs, the runtime ran and never failed,
# the FTAS plot, the runtime's plot when tiermm has the verb.
if [ "$guest_done" != 0 ]; then
	say "the guest reported a failure (see above and $out/guest.log)"
	status=1
fi
if [ ! -s "$out/tiermm-run.jsonl" ] || ! grep -q '"event":"exit"' "$out/tiermm-run.jsonl"; then
	say "tiermm's runtime left no statistics or no exit record ($out/tiermm-run.jsonl)"
	status=1
elif grep -q '"state":"failed"' "$out/tiermm-run.jsonl"; then
	say "tiermm's runtime failed: $(grep -o '"error":"[^"]*"' "$out/tiermm-run.jsonl" | tail -n 1)"
	status=1
fi
if ! grep -q '<svg' "$out/ftas-$wl.svg" 2>/dev/null; then
	say "report.py wrote no plot ($out/report.txt)"
	status=1
fi
if [ $plot = failed ] || { [ $plot = ok ] && ! grep -q '<svg' "$out/tiermm-run.svg"; }; then
	status=1
fi
[ $rc != 0 ] && status=$rc

# item FILE TEXT: one line of the listing, for the files there are
item() { [ ! -s "$out/$1" ] || printf '  %-32s %s\n' "$1" "$2"; }
echo
echo "results in $out/:"
item table.txt "the table above"
item "ftas-$wl.svg" "FTAS over time, both runs and the oracle (tierbench's report.py)"
item tiermm-run.svg "tiermm plot: residency per tier, the scanner's view, bytes moved"
[ $plot = ok ] || printf '  %-32s %s\n' tiermm-run.svg "not made: tiermm plot $plot"
item tiermm-run.jsonl "the runtime's statistics, one record a second (tiermm-preload(7))"
item "$wl--first-touch.csv" "tierbench's samples and summary, first touch"
item "$wl--under-tiermm-run.csv" "... and under tiermm run; both in summary.csv, results.md"
item guest.log "everything the guest printed"
echo "demo: $(($(date +%s) - t_start)) s in all; status $status" >&2
exit $status
