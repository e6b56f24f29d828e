#!/usr/bin/env bash
# tests/kmod/build-mm-selftests.sh OUTDIR - build a subset of Linux 6.12's own mm selftests
# (tools/testing/selftests/mm of Debian's linux-source-6.12) as static executables for the
# QEMU rig, named OUTDIR/mmst-NAME so that `tests/vm/run --build DIR` (which packs DIR/bin/*
# into the guest's /usr/bin) ships them when OUTDIR is DIR/bin. Used by
# tests/vm/guest/check-pt-migrate.sh, which runs them with and without page-table migration.
#
# The subset: migration mremap_test mkdirty cow khugepaged transhuge-stress
# split_huge_page_test uffd-unit-tests soft-dirty. Nothing is rebuilt when OUTDIR already
# holds all of them, newer than this script.
#
# Source: $TIERMM_LINUX_SRC, else ~/.cache/tiermm/linux-source-6.12, else the one extracted
# by tests/vm/kernel/build.sh (~/.cache/tiermm/kernel/src-*), else
# /usr/src/linux-source-6.12.tar.xz (package linux-source-6.12) unpacked into the cache.
# The uapi headers come from that source (make headers_install, into a scratch directory):
# the host's linux-libc-dev is older than 6.12 (userfaultfd, pagemap ioctls).
#
# Notes: khugepaged.c needs `-include kselftest.h` on 6.12.117; cow is built without
# liburing (its io_uring cases are skipped); migration links libnuma statically
# (libnuma-dev) and runs each case 5 s instead of 20 (RUNTIME, changed in the copy).
set -euo pipefail

readonly TESTS=(migration mremap_test mkdirty cow khugepaged transhuge-stress
	split_huge_page_test uffd-unit-tests soft-dirty)

die() {
	echo "build-mm-selftests: $*" >&2
	exit 1
}

[[ $# -eq 1 ]] || die "usage: $0 OUTDIR"
out=$1
mkdir -p "$out"
out=$(cd "$out" && pwd)

uptodate=1
for t in "${TESTS[@]}"; do
	[[ -x $out/mmst-$t && $out/mmst-$t -nt ${BASH_SOURCE[0]} ]] || uptodate=0
done
((uptodate)) && exit 0

cache=${HOME:-/root}/.cache/tiermm
src=${TIERMM_LINUX_SRC:-}
if [[ -z $src ]]; then
	for d in "$cache/linux-source-6.12" "$cache"/kernel/src-*/linux-source-6.12 \
		"$cache"/kernel/src-*; do
		if [[ -f $d/tools/testing/selftests/mm/migration.c ]]; then
			src=$d
			break
		fi
	done
fi
if [[ -z $src ]]; then
	tarball=/usr/src/linux-source-6.12.tar.xz
	[[ -f $tarball ]] || die "no Linux 6.12 source: install linux-source-6.12 or set TIERMM_LINUX_SRC"
	mkdir -p "$cache"
	tar -C "$cache" -xf "$tarball"
	src=$cache/linux-source-6.12
fi
[[ -f $src/tools/testing/selftests/mm/migration.c ]] || die "$src: not a Linux source tree"
[[ -f /usr/include/numa.h ]] || die "numa.h missing: install libnuma-dev"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# uapi headers of this very kernel, without touching the source tree
echo "build-mm-selftests: headers from $src" >&2
make -s -C "$src" O="$work/obj" ARCH=x86 INSTALL_HDR_PATH="$work/hdr" \
	headers_install >"$work/headers.log" 2>&1 ||
	die "make headers_install failed: $(tail -n 5 "$work/headers.log")"

# The source tree stays untouched: the files the tests include, in the same layout
# (cow.c and uffd-unit-tests.c include ../../../../mm/gup_test.h).
st=$work/tree/tools/testing/selftests
mkdir -p "$st" "$work/tree/mm"
cp "$src"/tools/testing/selftests/*.h "$st/"
cp -R "$src/tools/testing/selftests/mm" "$st/mm"
cp "$src/mm/gup_test.h" "$work/tree/mm/"
mm=$st/mm
echo '// No liburing support found' >"$mm/local_config.h"
# migration's six cases loop for RUNTIME seconds each: 5 instead of 20 under TCG
sed -i 's/^#define RUNTIME\t\t(20)$/#define RUNTIME\t\t(5)/' "$mm/migration.c"
grep -q '^#define RUNTIME.*(5)$' "$mm/migration.c" || die "migration.c: RUNTIME not found"

cc=${CC:-gcc}
cflags=(-O2 -Wall -U_FORTIFY_SOURCE -static -I "$src" -I "$mm"
	-isystem "$work/hdr/include" -isystem "$src/tools/include/uapi")
for t in "${TESTS[@]}"; do
	extra=()
	libs=(-lrt -lpthread -lm)
	case $t in
	migration) libs+=(-lnuma) ;;
	khugepaged) extra+=(-include "$st/kselftest.h") ;;
	uffd-unit-tests) extra+=("$mm/uffd-common.c") ;;
	esac
	echo "build-mm-selftests: $t" >&2
	(cd "$mm" && "$cc" "${cflags[@]}" "${extra[@]}" "$t.c" vm_util.c thp_settings.c \
		"${libs[@]}" -o "$work/mmst-$t") >"$work/$t.log" 2>&1 ||
		die "$t failed to build: $(grep -m 5 -i error "$work/$t.log")"
done
for t in "${TESTS[@]}"; do
	mv "$work/mmst-$t" "$out/mmst-$t"
done
echo "build-mm-selftests: ${#TESTS[@]} programs in $out" >&2
