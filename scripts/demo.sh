#!/bin/sh
# The main job on the emulated machine: boot the `tiered` guest (two CPU
# nodes plus a CPU-less slow-memory node in a lower memory tier), load
# tiermm.ko, and show what tiermm finds there: `tiermm caps`, then
# `tiermm topo` with every micro-probe (TCG emulates the CPUs, so measured
# latencies and bandwidths there are not hardware numbers), and hwloc's
# own listing.
set -eu
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh build
exec tests/vm/run --preset tiered --build build -- \
	sh -c 'tiermm caps && echo && tiermm topo --probe --budget 20 && echo && lstopo-no-graphics --no-io'
