#!/bin/sh
# The main job on the emulated machine: boot the `tiered` guest (two CPU
# nodes plus a CPU-less slow-memory node in a lower memory tier), load
# tiermm.ko, and show what tiermm finds there: `tiermm caps` and hwloc's
# topology listing.
set -eu
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh build
exec tests/vm/run --preset tiered --build build -- \
	sh -c 'tiermm caps && echo && lstopo-no-graphics --no-io'
