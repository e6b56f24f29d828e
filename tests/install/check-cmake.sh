#!/bin/sh
# Install the build tree into a scratch prefix and build an example against
# it with a small CMake project (consumer/) that uses nothing but
# find_package(tiermm) and tiermm::tiermm, then run it. Also: the static
# component (tiermm::tiermm_static), the version file's compatibility rule
# (same major version = same SONAME, not older than asked for), and no path
# of the build or source tree in the installed CMake files.
# Usage: check-cmake.sh BUILD_DIR EXAMPLE.c
set -eu
build=$(cd "$1" && pwd)
example=$(cd "$(dirname "$2")" && pwd)/$(basename "$2")
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
fail() { echo "FAIL: $*"; exit 1; }

cmake --install "$build" --prefix "$prefix" >"$tmp/install.log" 2>&1 ||
	{ cat "$tmp/install.log"; exit 1; }
cfg=$(find "$prefix" -name tiermmConfig.cmake | head -n 1)
[ -n "$cfg" ] || fail "tiermmConfig.cmake not installed"
cmakedir=$(dirname "$cfg")
for f in tiermmConfigVersion.cmake tiermmTargets.cmake tiermmStaticTargets.cmake; do
	[ -f "$cmakedir/$f" ] || fail "$f not installed next to tiermmConfig.cmake"
done
# Relocatable: nothing in them names the trees tiermm was built from.
if grep -l -e "$build" -e "$src/" "$cmakedir"/*.cmake; then
	fail "the installed CMake files name the build or source tree"
fi

# The version file, as find_package() reads it.
cat >"$tmp/version.cmake" <<'CM'
if(DEFINED WANT)
  set(PACKAGE_FIND_VERSION ${WANT})
  string(REPLACE "." ";" _p ${WANT})
  list(GET _p 0 PACKAGE_FIND_VERSION_MAJOR)
  list(GET _p 1 PACKAGE_FIND_VERSION_MINOR)
endif()
include(${F})
if(NOT DEFINED WANT)
  message("${PACKAGE_VERSION}")
elseif(PACKAGE_VERSION_COMPATIBLE)
  message("yes")
else()
  message("no")
endif()
CM
version=$(cmake -DF="$cmakedir/tiermmConfigVersion.cmake" -P "$tmp/version.cmake" 2>&1)
major=${version%%.*}
rest=${version#*.}
minor=${rest%%.*}
compat() {
	cmake -DF="$cmakedir/tiermmConfigVersion.cmake" -DWANT="$1" -P "$tmp/version.cmake" 2>&1
}
for c in "$major.$minor yes" "$major.0 yes" "$major.$((minor + 1)) no" "$((major + 1)).0 no"; do
	want=${c% *}
	expect=${c#* }
	got=$(compat "$want")
	[ "$got" = "$expect" ] ||
		fail "find_package(tiermm $want) against $version: compatible=$got, expected $expect"
done

# The consumer project: shared (always) and static (component).
# shellcheck disable=SC2086
cmake -S "$here/consumer" -B "$tmp/b" -DCMAKE_PREFIX_PATH="$prefix" \
	-DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF -DCMAKE_BUILD_TYPE=Release \
	-DTIERMM_EXAMPLE="$example" -DTIERMM_STATIC=ON \
	-DCMAKE_C_FLAGS="${EXTRA_CFLAGS:-}" -DCMAKE_EXE_LINKER_FLAGS="${EXTRA_CFLAGS:-}" \
	>"$tmp/configure.log" 2>&1 || { cat "$tmp/configure.log"; fail "configure"; }
grep -q "tiermm $version in $cmakedir\$" "$tmp/configure.log" ||
	{ cat "$tmp/configure.log"; fail "find_package(tiermm) did not find $cmakedir"; }
grep -q "tiermm include directories: $prefix/include\$" "$tmp/configure.log" ||
	{ cat "$tmp/configure.log"; fail "tiermm::tiermm's include directory is not $prefix/include"; }
cmake --build "$tmp/b" >"$tmp/build.log" 2>&1 || { cat "$tmp/build.log"; fail "build"; }

libdir=$(dirname "$(find "$prefix" -name 'libtiermm.so.0' | head -n 1)")
for exe in caps caps-static; do
	LD_LIBRARY_PATH=$libdir "$tmp/b/$exe" >"$tmp/out" ||
		{ cat "$tmp/out"; fail "$exe exited with $?"; }
	grep -q '^libtiermm ' "$tmp/out" || { echo "FAIL: $exe output:"; cat "$tmp/out"; exit 1; }
done
# caps must run against the installed library, caps-static against none.
LD_LIBRARY_PATH=$libdir ldd "$tmp/b/caps" | grep -q "$libdir/libtiermm.so.0" ||
	fail "caps did not bind to the installed libtiermm"
if ldd "$tmp/b/caps-static" | grep -q libtiermm; then
	fail "caps-static links libtiermm.so"
fi
echo "ok: find_package(tiermm) found $version in $cmakedir; caps (tiermm::tiermm) and caps-static (tiermm::tiermm_static) built and ran"
