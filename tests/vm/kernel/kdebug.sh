#!/bin/sh
# tests/vm/kernel/kdebug.sh - the guest tests against the debug kernel (CTest label kdebug;
# docs/kernel-builds.md).
#
#   kdebug.sh build ENVFILE [BUILD-OPTIONS...]
#	build (or bring up to date) the debug kernel with tests/vm/kernel/build.sh --flavor
#	debug (or with BUILD-OPTIONS instead, e.g. --flavor minimal --patches DIR for a
#	patched kernel) and write its BZIMAGE=... and KDIR=... lines to ENVFILE. A cold build takes
#	10-30 minutes on 2 cores, an up-to-date tree 15-45 s.
#   kdebug.sh run ENVFILE [RUN-OPTIONS] -- COMMAND...
#	tests/vm/run --kernel BZIMAGE --kdir KDIR [RUN-OPTIONS] -- COMMAND..., with the paths
#	from ENVFILE (tiermm.ko is built against KDIR). Status 2 without ENVFILE.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
usage() {
	echo "usage: kdebug.sh build ENVFILE [BUILD-OPTIONS...] | kdebug.sh run ENVFILE [RUN-OPTIONS] -- COMMAND..." >&2
	exit 2
}
[ $# -ge 2 ] || usage
mode=$1
env=$2
shift 2

case $mode in
build)
	mkdir -p "$(dirname "$env")"
	# default: the debug flavor; BUILD-OPTIONS (build.sh's) replace that
	[ $# -gt 0 ] || set -- --flavor debug
	out=$("$here/build.sh" "$@")
	printf '%s\n' "$out" | tail -n 2 >"$env.tmp"
	if ! grep -q '^BZIMAGE=/' "$env.tmp" || ! grep -q '^KDIR=/' "$env.tmp"; then
		echo "kdebug.sh: build.sh printed no BZIMAGE/KDIR lines" >&2
		exit 1
	fi
	mv "$env.tmp" "$env"
	cat "$env"
	;;
run)
	[ -f "$env" ] || {
		echo "kdebug.sh: $env is missing: run 'kdebug.sh build $env' (ctest -L kdebug does)" >&2
		exit 2
	}
	BZIMAGE=$(sed -n 's/^BZIMAGE=//p' "$env")
	KDIR=$(sed -n 's/^KDIR=//p' "$env")
	exec "$here/../run" --kernel "$BZIMAGE" --kdir "$KDIR" "$@"
	;;
*)
	usage
	;;
esac
