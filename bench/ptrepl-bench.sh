#!/bin/sh
# bench/ptrepl-bench.sh [PAGES] - the cost of page-table replication (docs/ptrepl.md):
# CPU ns per 4 KiB page of mprotect, munmap, mmap+fault and fork with 0, 1, 2 and 4
# replicas, measured by `ptrepl_test cost` in one numa4 guest (4 nodes with memory)
# booted with the patched kernel, which this script builds first if needed
# (tests/vm/kernel/build.sh --flavor minimal --patches kmod/patches/linux-6.12; a few
# minutes cold). TCG does not model memory latency: compare the ratios, not the ns.
# Needs the project built in build/ (ptrepl_test).
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
build=${TIERMM_BUILD:-$repo/build}
env=$build/ptrepl/kernel-minimal.env
pages=${1:-16384}
[ -x "$build/bin/ptrepl_test" ] || {
	echo "ptrepl-bench: $build/bin/ptrepl_test is missing: build the project first" >&2
	exit 1
}
"$repo/tests/vm/kernel/kdebug.sh" build "$env" --flavor minimal \
	--patches "$repo/kmod/patches/linux-6.12" >/dev/null
exec "$repo/tests/vm/kernel/kdebug.sh" run "$env" --preset numa4 --build "$build" \
	--timeout 1500 -- ptrepl_test cost "$pages"
