#!/bin/sh
# tests/vm/guest/check-backends.sh [SECONDS] - TAP checks of the tiering engine's hotness
# backends in a guest (as root): what each backend's probe says here, then, with
# backend_probe's workload (a child whose hot 8 MiB of 64 MiB it keeps writing), that the
# damon and scan backends rank the hot region densest and report the workload's exit,
# and that the perf path (rings, inherited per-CPU events, parsing) sees first touches
# through software page-fault events. The guests have no PEBS/IBS: the perf backend must
# say so.
# shellcheck source=tap.sh
. /tests/tap.sh

secs=${1:-8}

rep=$(backend_probe report 2>&1) || bail_out "backend_probe report failed: $rep"
diag "$rep"
case $rep in
*"perf usable=0 perf: no mem-loads event"*) ok "perf backend: unusable without PEBS/IBS, and says why" ;;
*"perf usable=1"*) ok "perf backend: usable (a PMU with precise sampling)" ;;
*) not_ok "perf backend: unusable without PEBS/IBS, and says why" ;;
esac
case $rep in
*"damon usable=1"*) ok "damon backend: usable as root" ;;
*) not_ok "damon backend: usable as root" ;;
esac
case $rep in
*"scan usable=1"*) ok "scan backend: usable with tiermm.ko" ;;
*"scan usable=0 scan: tiermm.ko is not loaded"*)
	ok "scan backend: unusable without tiermm.ko # SKIP module not loaded" ;;
*) not_ok "scan backend: usable with tiermm.ko" ;;
esac
case $rep in
*"auto=0 "*) ok "auto picks a backend" ;;
*) not_ok "auto picks a backend" ;;
esac

for b in damon scan perf-sw; do
	out=$(backend_probe "$b" "$secs" 2>&1)
	rc=$?
	diag "$out"
	case $rc in
	0) ok "$b: finds the hot region / observes the workload, reports its exit" ;;
	77) ok "$b: finds the hot region # SKIP backend not usable here" ;;
	*) not_ok "$b: finds the hot region / observes the workload, reports its exit (exit $rc)" ;;
	esac
done

# Nothing left behind: our kdamond is gone.
A=/sys/kernel/mm/damon/admin/kdamonds
n=$(cat $A/nr_kdamonds 2>/dev/null)
check_eq "damon: nr_kdamonds back to 0 after close" 0 "$n"

# Somebody else's kdamond runs (monitoring a sleep), with a free slot beside it: the
# backend takes the free slot, leaves theirs alone and gives the slot back as found.
sleep 600 &
spid=$!
echo 2 >$A/nr_kdamonds
echo 1 >$A/0/contexts/nr_contexts
echo vaddr >$A/0/contexts/0/operations
echo 1 >$A/0/contexts/0/targets/nr_targets
echo $spid >$A/0/contexts/0/targets/0/pid_target
echo on >$A/0/state || bail_out "cannot start the other kdamond"
out=$(backend_probe damon 6 2>&1)
rc=$?
diag "$out"
check_eq "damon beside a running kdamond: finds the hot region" 0 "$rc"
check_eq "damon beside a running kdamond: theirs still runs" on "$(cat $A/0/state)"
check_eq "damon beside a running kdamond: theirs still targets its pid" "$spid" \
	"$(cat $A/0/contexts/0/targets/0/pid_target)"
check_eq "damon beside a running kdamond: nr_kdamonds not rewritten" 2 "$(cat $A/nr_kdamonds)"
check_eq "damon beside a running kdamond: our slot is off again" off "$(cat $A/1/state)"
check_eq "damon beside a running kdamond: our slot has no context again" 0 \
	"$(cat $A/1/contexts/nr_contexts)"

# No free slot: the backend refuses instead of rewriting nr_kdamonds.
echo 1 >$A/1/contexts/nr_contexts
out=$(backend_probe damon 2 2>&1)
rc=$?
diag "$out"
check_eq "damon without a free slot: not usable (exit 77)" 77 "$rc"
case $out in
*"kdamonds are in use"*) ok "damon without a free slot: says why" ;;
*) not_ok "damon without a free slot: says why" ;;
esac
check_eq "damon without a free slot: theirs still runs" on "$(cat $A/0/state)"
echo off >$A/0/state
kill $spid
echo 0 >$A/nr_kdamonds

tap_done
