#!/bin/sh
# Install the build tree into a scratch prefix and build an example against
# it using nothing but `pkg-config --cflags --libs tiermm`, then run it.
# Usage: check-pkgconfig.sh BUILD_DIR EXAMPLE.c
set -eu
build=$1
example=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cmake --install "$build" --prefix "$tmp/prefix" >"$tmp/install.log" 2>&1 ||
	{ cat "$tmp/install.log"; exit 1; }
pcdir=$(dirname "$(find "$tmp/prefix" -name tiermm.pc | head -n 1)")
[ -f "$pcdir/tiermm.pc" ] || { echo "FAIL: tiermm.pc not installed"; exit 1; }
# The installed .pc names the install prefix given at configure time; point
# pkg-config at the scratch prefix instead.
flags=$(PKG_CONFIG_PATH=$pcdir pkg-config --define-variable=prefix="$tmp/prefix" \
	--cflags --libs tiermm)
# shellcheck disable=SC2086
cc -std=c11 -Wall -Werror ${EXTRA_CFLAGS:-} "$example" $flags -o "$tmp/example"
libdir=$(PKG_CONFIG_PATH=$pcdir pkg-config --define-variable=prefix="$tmp/prefix" \
	--variable=libdir tiermm)
for h in tiermm.h tiermm/common.h tiermm/caps.h tiermm/version.h; do
	[ -f "$tmp/prefix/include/$h" ] || { echo "FAIL: $h not installed"; exit 1; }
done
if find "$tmp/prefix" -name internal.h | grep -q .; then
	echo "FAIL: a private header was installed"; exit 1
fi
LD_LIBRARY_PATH=$libdir "$tmp/example" >"$tmp/out"
grep -q '^libtiermm ' "$tmp/out" || { echo "FAIL: example output:"; cat "$tmp/out"; exit 1; }
# The example must run against the installed library, not the build tree.
LD_LIBRARY_PATH=$libdir ldd "$tmp/example" | grep -q "$libdir/libtiermm.so.0" ||
	{ echo "FAIL: example did not bind to the installed libtiermm"; exit 1; }
echo "ok: example built with pkg-config flags '$flags' and ran"
