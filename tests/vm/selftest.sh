#!/usr/bin/env bash
# tests/vm/selftest.sh - self-tests of the VM rig (tests/vm/run), on the host.
#
# Usage: tests/vm/selftest.sh [RUN]   (RUN defaults to tests/vm/run beside this file)
#
# Argument errors (and a --with tool missing on the host) must fail fast with a clear
# message and without booting; then four short boots check status passing, output/quoting,
# the timeout, the kernel-log scan and a guest crash. Uses a throwaway build directory, so
# it needs no project build. TAP output.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
run=${1:-$here/run}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tiermm-vm-selftest.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# A fake CMake build directory: bin/ with a script, lib/ empty.
build=$tmp/build
mkdir -p "$build/bin" "$build/lib"
printf '#!/bin/sh\necho "hello from the build dir: $*"\n' >"$build/bin/tiermm-vm-hello"
chmod +x "$build/bin/tiermm-vm-hello"
mkdir -p "$tmp/nobin"

n=0
failed=0
ok() {
	n=$((n + 1))
	echo "ok $n - $*"
}
not_ok() {
	n=$((n + 1))
	failed=$((failed + 1))
	echo "not ok $n - $*"
}

# expect NAME STATUS STDERR_ERE MAX_SECONDS -- RUN-ARGS...
# Runs the rig, checks its exit status, that stderr matches STDERR_ERE (if not empty) and
# that it took at most MAX_SECONDS.
expect() {
	local name=$1 want=$2 ere=$3 max=$4
	shift 5
	local rc=0 t0=$SECONDS dt
	"$run" "$@" >"$tmp/out" 2>"$tmp/err" || rc=$?
	dt=$((SECONDS - t0))
	local why=()
	((rc == want)) || why+=("status $rc, want $want")
	if [[ -n $ere ]] && ! grep -qE -- "$ere" "$tmp/err"; then
		why+=("stderr does not match /$ere/")
	fi
	((dt <= max)) || why+=("took $dt s, want <= $max s")
	if ((${#why[@]} == 0)); then
		ok "$name (status $rc, $dt s)"
	else
		not_ok "$name"
		local w
		for w in "${why[@]}"; do echo "#   $w"; done
		echo "#   stdout:"
		sed 's/^/#     /' "$tmp/out" | tail -n 20
		echo "#   stderr:"
		sed 's/^/#     /' "$tmp/err" | tail -n 40
	fi
}

b=(--build "$build" --no-module)

# --- no boot: argument errors -------------------------------------------------------------
expect "unknown preset is refused and the valid ones listed" 2 \
	"unknown preset 'no-such-preset'.*numa2.*tiered" 5 -- \
	--preset no-such-preset "${b[@]}" -- true
expect "missing --kernel file is refused" 2 "--kernel .*/no-such-bzImage: no such file" 5 -- \
	--kernel "$tmp/no-such-bzImage" "${b[@]}" -- true
expect "missing command (no --) is refused" 2 "no command given" 5 -- "${b[@]}"
expect "missing command (nothing after --) is refused" 2 "no command given" 5 -- "${b[@]}" --
expect "missing build directory is refused" 2 "build directory .*/no-such-build not found" 5 -- \
	--build "$tmp/no-such-build" -- true
expect "build directory without executables is refused" 2 "no executables in .*/nobin/bin" 5 -- \
	--build "$tmp/nobin" -- true
expect "bad --timeout is refused" 2 "--timeout needs a positive number" 5 -- \
	--timeout soon "${b[@]}" -- true
expect "unknown option is refused" 2 "unknown option: --frobnicate" 5 -- --frobnicate -- true
TIERMM_VM_QEMU=$tmp/no-such-qemu expect "missing qemu is reported" 5 "qemu not found" 5 -- \
	"${b[@]}" -- true
expect "--with an unknown tool is refused" 2 "--with no-such-tool: not a tool.*stress-ng" 5 -- \
	--with no-such-tool "${b[@]}" -- true
# A host PATH with everything but stress-ng, and no installing: --with stress-ng fails.
mkdir -p "$tmp/path"
for f in /usr/bin/* /usr/sbin/*; do
	[[ ${f##*/} == stress-ng ]] || ln -sf "$f" "$tmp/path/${f##*/}"
done
TIERMM_VM_NO_INSTALL=1 PATH=$tmp/path expect "a --with tool missing on the host is reported" 5 \
	"missing host packages: stress-ng" 5 -- --with stress-ng "${b[@]}" -- true
expect "--list names every preset" 0 "" 5 -- --list
for p in "$here"/presets/*.conf; do
	p=${p##*/}
	p=${p%.conf}
	if grep -q "^$p " "$tmp/out"; then ok "--list shows $p"; else not_ok "--list shows $p"; fi
done

# --- boots ----------------------------------------------------------------------------------
# Exit status, stdout/stderr separation, argv quoting, packed build dir, /tests, lstopo.
# (The single quotes keep $1, $@ and $HOME for the guest's shell.)
# shellcheck disable=SC2016
expect "command status 7 is returned" 7 "^to stderr$" 120 -- \
	--preset oblivious "${b[@]}" -- sh -c '
		tiermm-vm-hello "$1"
		printf "[%s]\n" "$@"
		test -x /tests/check-shape.sh && echo tests-present
		lstopo-no-graphics --only numanode | grep -c NUMANode
		echo "to stderr" >&2
		exit 7' sh "two words" "it's" '$HOME'
# shellcheck disable=SC2016
printf 'hello from the build dir: two words\n[two words]\n[it'"'"'s]\n[$HOME]\ntests-present\n1\n' >"$tmp/want"
if cmp -s "$tmp/want" "$tmp/out"; then
	ok "command stdout arrives intact (quoting, build dir, /tests, lstopo)"
else
	not_ok "command stdout arrives intact (quoting, build dir, /tests, lstopo)"
	diff "$tmp/want" "$tmp/out" | sed 's/^/#   /'
fi

expect "a guest that runs past --timeout is killed with status 124" 124 \
	"did not finish within --timeout 4 s" 60 -- \
	--timeout 4 --preset oblivious "${b[@]}" -- sleep 1000

expect "a BUG: line in the kernel log fails the run with status 3" 3 \
	"BUG: tiermm-vm selftest fake report" 120 -- \
	--preset oblivious "${b[@]}" -- sh -c 'echo "BUG: tiermm-vm selftest fake report" >/dev/kmsg'

expect "a guest kernel panic (no exit status) fails with status 4" 4 \
	"never reported the command's exit status" 120 -- \
	--preset oblivious "${b[@]}" -- sh -c 'echo c >/proc/sysrq-trigger; sleep 60'

echo "1..$n"
if ((failed)); then
	echo "# $failed of $n failed"
	exit 1
fi
