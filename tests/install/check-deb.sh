#!/bin/sh
# The Debian packages (debian/): build them from a copy of the source tree
# with dpkg-buildpackage -b into a scratch directory, check them with lintian
# (an error fails, warnings are listed), check what each package holds, unpack
# libtiermm0, libtiermm-dev, tiermm-tools and python3-tiermm with dpkg -x and
# run that tiermm caps, tiermmd, tiermm ctl and `import tiermm`, build
# examples/caps.c against the unpacked libtiermm-dev with pkg-config and with
# find_package(tiermm), and build tiermm.ko from tiermm-dkms's sources with
# DKMS when dkms and kernel headers are there.
# With TIERMM_PKG_INSTALL=1 (as root) it also installs those four packages
# with apt-get, runs /usr/bin/tiermm caps, the example and `import tiermm`
# against them, and purges them again.
#
# Usage: check-deb.sh SOURCE_DIR EXAMPLE.c
# Environment: TIERMM_PKG_INSTALL=1 (see above); TIERMM_PKG_KDIR=DIR kernel
# headers for the DKMS build (default: the running kernel's, else the VM
# rig's cached Debian kernel, else none: that step is skipped);
# TIERMM_PKG_KEEP=DIR copy the .deb files there.
# Exit status 77 (skipped) when the packaging tools are missing (debhelper,
# dh-dkms, lintian: scripts/deps.sh installs them), except under CI=true.
set -eu
src=$(cd "$1" && pwd)
example=$(cd "$(dirname "$2")" && pwd)/$(basename "$2")
here=$(cd "$(dirname "$0")" && pwd)
fail() { echo "FAIL: $*"; exit 1; }
t0=$(date +%s)
step() { echo "[$(($(date +%s) - t0))s] $*"; }

missing=""
for tool in dpkg-buildpackage dh dh_dkms lintian dpkg-deb cmake pkg-config cc; do
	command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
done
if [ -n "$missing" ]; then
	[ "${CI:-}" = true ] && fail "missing:$missing (scripts/deps.sh installs them)"
	echo "SKIP: missing:$missing (scripts/deps.sh installs them)"
	exit 77
fi

# Cheap checks first: the versions agree and the symbols file follows the
# version script.
version=$(sed -n 1p "$src/VERSION")
cl=$(cd "$src" && dpkg-parsechangelog -SVersion)
[ "${cl%-*}" = "$version" ] ||
	fail "debian/changelog is at $cl, VERSION at $version: add a debian/changelog entry for $version-1"
dkv=$(sed -n 's/^PACKAGE_VERSION="\(.*\)"$/\1/p' "$src/kmod/dkms.conf")
[ "$dkv" = "$version" ] || fail "kmod/dkms.conf has PACKAGE_VERSION $dkv, VERSION $version"
(cd "$src" && debian/update-symbols --check) || fail "debian/libtiermm0.symbols"

tmp=$(mktemp -d)
installed=""
purge() {
	[ -n "$installed" ] || return 0
	# shellcheck disable=SC2086
	DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq $installed >"$tmp/purge.log" 2>&1 ||
		{ cat "$tmp/purge.log"; echo "FAIL: apt-get purge$installed"; return 1; }
	installed=""
}
cleanup() {
	purge || true
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

# The tree as it is (tracked files and new ones git does not ignore, so no
# build directories or module build products), not the last commit.
tree=$tmp/tiermm-$version
mkdir "$tree"
if git -C "$src" rev-parse --show-toplevel >/dev/null 2>&1 &&
	[ "$(git -C "$src" rev-parse --show-toplevel)" = "$src" ]; then
	# shellcheck disable=SC2016 # expanded by the inner sh
	(cd "$src" && git ls-files -z --cached --others --exclude-standard) |
		(cd "$src" && xargs -0 sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh) |
		(cd "$src" && tar --null --no-recursion -T - -cf -) | tar -C "$tree" -xf -
else
	(cd "$src" && tar --exclude='./build*' --exclude='./obj-*' --exclude='./.git' \
		--exclude='*.o' --exclude='*.ko' --exclude='*.mod' --exclude='*.mod.c' \
		--exclude='*.cmd' --exclude='Module.symvers' --exclude='modules.order' \
		--exclude='./debian/tmp' --exclude='__pycache__' -cf - .) | tar -C "$tree" -xf -
fi
[ -f "$tree/debian/control" ] || fail "no debian/ in the copy of $src"
step "copied the tree to $tree"

# The build: the unit tests already ran in this CTest run (nocheck).
jobs=$(nproc 2>/dev/null || echo 1)
if ! (cd "$tree" && env -u MAKEFLAGS -u MAKELEVEL -u MFLAGS -u DESTDIR \
	DEB_BUILD_OPTIONS="nocheck parallel=$jobs" DEB_BUILD_PROFILES=nocheck \
	dpkg-buildpackage -us -uc -b) >"$tmp/build.log" 2>&1; then
	tail -n 80 "$tmp/build.log"
	fail "dpkg-buildpackage (the last 80 lines of its output above)"
fi
# What dpkg-gensymbols and dpkg-shlibdeps had to say.
grep -E '^dpkg-(gensymbols|shlibdeps): (warning|error)' "$tmp/build.log" && fail "dpkg-gensymbols or dpkg-shlibdeps warned"
changes=$(ls "$tmp/tiermm_${version}"-*_*.changes)
if [ -n "${TIERMM_PKG_KEEP:-}" ]; then
	mkdir -p "$TIERMM_PKG_KEEP"
	cp "$tmp"/*.deb "$tmp"/*.changes "$tmp"/*.buildinfo "$TIERMM_PKG_KEEP"/
fi
step "dpkg-buildpackage: $(cd "$tmp" && ls ./*.deb | sed 's|^\./||' | tr '\n' ' ')"

# lintian: errors fail, the rest is listed.
status=0
lintian --fail-on error --display-info "$changes" >"$tmp/lintian.log" 2>&1 || status=$?
grep -v '^running with root privileges' "$tmp/lintian.log" || true
errors=$(grep -c '^E: ' "$tmp/lintian.log" || true)
warnings=$(grep -c '^W: ' "$tmp/lintian.log" || true)
if [ "$status" -ne 0 ] || [ "$errors" -ne 0 ]; then
	fail "lintian: $errors errors, exit status $status"
fi
step "lintian: 0 errors, $warnings warnings"

deb() { # deb PACKAGE: its .deb file
	f=$(ls "$tmp/${1}_${version}"-*_*.deb 2>/dev/null | head -n 1)
	[ -n "$f" ] || fail "no $1 package was built"
	echo "$f"
}
has() { # has PACKAGE PATH...: the package holds each PATH (a shell pattern)
	p=$1
	shift
	dpkg-deb -c "$(deb "$p")" | awk '{ print $6 }' | sed 's|^\./|/|' >"$tmp/list"
	for f in "$@"; do
		found=0
		while read -r l; do
			# shellcheck disable=SC2254 # $f is a pattern
			case $l in $f) found=1; break ;; esac
		done <"$tmp/list"
		[ $found -eq 1 ] || fail "$p does not hold $f"
	done
}
hasnt() { # hasnt PACKAGE PATTERN: no path of the package matches PATTERN (grep -E)
	if dpkg-deb -c "$(deb "$1")" | awk '{ print $6 }' | grep -E "$2"; then
		fail "$1 holds files it should not ($2)"
	fi
}
triplet=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
ml=/usr/lib/$triplet
has libtiermm0 "$ml/libtiermm.so.0" "$ml/libtiermm.so.$version"
hasnt libtiermm0 'libtiermm\.so$|libtiermm\.a$|/include/|preload'
has libtiermm-dev /usr/include/tiermm.h /usr/include/tiermm/version.h "$ml/libtiermm.so" \
	"$ml/libtiermm.a" "$ml/pkgconfig/tiermm.pc" "$ml/cmake/tiermm/tiermmConfig.cmake" \
	"$ml/cmake/tiermm/tiermmConfigVersion.cmake" "$ml/cmake/tiermm/tiermmTargets.cmake" \
	/usr/share/man/man3/tiermm_caps_get.3.gz
hasnt libtiermm-dev 'internal\.h$'
has tiermm-tools /usr/bin/tiermm /usr/sbin/tiermmd "$ml/libtiermm-preload.so" \
	/lib/systemd/system/tiermmd.service /usr/share/man/man1/tiermm.1.gz \
	/usr/share/man/man7/tiermm-preload.7.gz /usr/share/man/man8/tiermmd.8.gz
ks=/usr/src/tiermm-$version
has tiermm-dkms "$ks/dkms.conf" "$ks/Kbuild" "$ks/Makefile" "$ks/VERSION" "$ks/tiermm_main.c" \
	"$ks/tiermm_internal.h" "$ks/uapi/linux/tiermm.h"
hasnt tiermm-dkms '\.(o|ko|mod|mod\.c|cmd)$|Module\.symvers'
# python3-tiermm, when the tree has the binding (bindings/python).
pydir=/usr/lib/python3/dist-packages/tiermm
if [ -f "$src/bindings/python/CMakeLists.txt" ]; then
	python=python3-tiermm
	has python3-tiermm "$pydir/__init__.py" "$pydir/_lib.py" "$pydir/_config.py"
	hasnt python3-tiermm '\.so|/usr/lib/[^p]'
	dpkg-deb -f "$(deb python3-tiermm)" Depends | grep -q "libtiermm0 (>= $version" ||
		fail "python3-tiermm does not depend on libtiermm0"
else
	python=""
	echo "no bindings/python: python3-tiermm not built"
fi
# Only tiermm-dkms has the module's sources and DKMS maintainer scripts.
for p in libtiermm0 libtiermm-dev tiermm-tools; do
	hasnt "$p" '^\./usr/src/'
	if dpkg-deb --ctrl-tarfile "$(deb "$p")" | tar -xOf - ./postinst 2>/dev/null | grep -q dkms; then
		fail "$p's postinst runs DKMS"
	fi
done
dpkg-deb --ctrl-tarfile "$(deb tiermm-dkms)" | tar -xOf - ./postinst | grep -q '^DKMS_NAME=tiermm$' ||
	fail "tiermm-dkms's postinst does not run DKMS"
# The symbols file made it, and the tools depend on the library by it.
dpkg-deb --ctrl-tarfile "$(deb libtiermm0)" | tar -tf - | grep -q '^\./symbols$' ||
	fail "libtiermm0 has no symbols control file"
dep=$(dpkg-deb -f "$(deb tiermm-tools)" Depends)
echo "$dep" | grep -q "libtiermm0 (>= $version)" ||
	fail "tiermm-tools does not depend on libtiermm0 (>= $version): $dep"
dpkg-deb -f "$(deb tiermm-dkms)" Depends | grep -q dkms || fail "tiermm-dkms does not depend on dkms"
step "package contents checked"

# The unpacked packages, run from where they were unpacked.
root=$tmp/root
for p in libtiermm0 libtiermm-dev tiermm-tools $python; do
	dpkg -x "$(deb "$p")" "$root"
done
lib=$root$ml
LD_LIBRARY_PATH=$lib "$root/usr/bin/tiermm" caps >"$tmp/caps.out" 2>&1 ||
	{ cat "$tmp/caps.out"; fail "the packaged tiermm caps exited with $?"; }
grep -q "^tiermm $version feature probes" "$tmp/caps.out" ||
	{ cat "$tmp/caps.out"; fail "the packaged tiermm caps printed something else"; }
LD_LIBRARY_PATH=$lib ldd "$root/usr/bin/tiermm" | grep -q "$lib/libtiermm.so.0" ||
	fail "the packaged tiermm did not bind to the packaged libtiermm"
if LD_LIBRARY_PATH=$lib ldd "$root/usr/bin/tiermm" | grep -q 'not found'; then
	fail "the packaged tiermm misses a library"
fi
# No RUNPATH in anything installed (the system library directory is searched anyway).
for f in "$root/usr/bin/tiermm" "$root/usr/sbin/tiermmd" "$lib/libtiermm-preload.so" "$lib/libtiermm.so.0"; do
	if readelf -d "$f" | grep -E -q 'RPATH|RUNPATH'; then
		fail "$f has an RPATH or RUNPATH"
	fi
done
# The packaged daemon on a scratch socket, asked by the packaged tiermm ctl.
LD_LIBRARY_PATH=$lib TIERMMD_SOCKET=$tmp/tiermmd.sock "$root/usr/sbin/tiermmd" \
	>"$tmp/tiermmd.log" 2>&1 &
dpid=$!
i=0
while [ ! -S "$tmp/tiermmd.sock" ] && [ $i -lt 50 ]; do
	sleep 0.1
	i=$((i + 1))
done
ctl=0
LD_LIBRARY_PATH=$lib TIERMMD_SOCKET=$tmp/tiermmd.sock timeout 10 "$root/usr/bin/tiermm" ctl hello \
	>"$tmp/hello.out" 2>&1 || ctl=$?
kill "$dpid" 2>/dev/null || true
wait "$dpid" 2>/dev/null || true
if [ $ctl -ne 0 ] || ! grep -q "^tiermmd $version " "$tmp/hello.out"; then
	cat "$tmp/hello.out" "$tmp/tiermmd.log"
	fail "tiermm ctl hello to the packaged tiermmd"
fi
step "the unpacked tiermm caps, tiermmd and tiermm ctl ran"
# The package's file, the libtiermm the process mapped, the version.
pyprobe='import tiermm; print(tiermm.__file__); print(next(l.split()[-1] for l in open("/proc/self/maps") if "/libtiermm.so" in l)); print(tiermm.version())'
if [ -n "$python" ]; then
	env -u PYTHONPATH -u TIERMM_LIBRARY PYTHONPATH="$root${pydir%/tiermm}" LD_LIBRARY_PATH="$lib" \
		PYTHONDONTWRITEBYTECODE=1 /usr/bin/python3 -c "$pyprobe" >"$tmp/py.out" 2>&1 ||
		{ cat "$tmp/py.out"; fail "import tiermm from the unpacked python3-tiermm"; }
	{ read -r pyfile; read -r pylib; read -r pyver; } <"$tmp/py.out"
	case $pyfile in "$root$pydir"/*) ;; *) fail "python3 imported $pyfile, not the unpacked package" ;; esac
	[ "$(realpath "$pylib")" = "$(realpath "$lib/libtiermm.so.0")" ] ||
		fail "the binding loaded $pylib, not the unpacked libtiermm"
	[ "$pyver" = "$version" ] || fail "tiermm.version() is $pyver"
	step "the unpacked python3-tiermm imported and loaded libtiermm ($pylib)"
fi

# examples/caps.c against the unpacked libtiermm-dev: pkg-config, then CMake.
flags=$(PKG_CONFIG_PATH=$lib/pkgconfig pkg-config --define-variable=prefix="$root/usr" \
	--cflags --libs tiermm)
# shellcheck disable=SC2086
cc -std=c11 -Wall -Werror "$example" $flags -o "$tmp/caps-pc"
LD_LIBRARY_PATH=$lib "$tmp/caps-pc" | grep -q "^libtiermm $version" || fail "caps built with pkg-config"
cmake -S "$here/consumer" -B "$tmp/consumer" -DCMAKE_PREFIX_PATH="$root/usr" \
	-DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF -DTIERMM_EXAMPLE="$example" \
	>"$tmp/consumer.log" 2>&1 || { cat "$tmp/consumer.log"; fail "find_package(tiermm) in the unpacked libtiermm-dev"; }
grep -q "tiermm $version in $root$ml/cmake/tiermm\$" "$tmp/consumer.log" ||
	{ cat "$tmp/consumer.log"; fail "find_package(tiermm) found another tiermm"; }
cmake --build "$tmp/consumer" >"$tmp/consumer-build.log" 2>&1 ||
	{ cat "$tmp/consumer-build.log"; fail "building caps with find_package(tiermm)"; }
LD_LIBRARY_PATH=$lib "$tmp/consumer/caps" | grep -q "^libtiermm $version" ||
	fail "caps built with find_package(tiermm)"
LD_LIBRARY_PATH=$lib ldd "$tmp/consumer/caps" | grep -q "$lib/libtiermm.so.0" ||
	fail "caps (CMake) did not bind to the packaged libtiermm"
step "caps built against the unpacked libtiermm-dev with pkg-config and with CMake, and ran"

# tiermm-dkms: DKMS builds the module from the packaged sources (in scratch
# trees; only the signing key in /var/lib/dkms is dkms's own).
kdir=${TIERMM_PKG_KDIR:-}
if [ -z "$kdir" ]; then
	for d in "/lib/modules/$(uname -r)/build" \
		"${TIERMM_VM_CACHE:-$HOME/.cache/tiermm/vm}"/*/root/usr/src/linux-headers-*-amd64; do
		if [ -f "$d/Makefile" ] && [ -f "$d/include/config/kernel.release" ]; then
			kdir=$d
			break
		fi
	done
fi
if ! command -v dkms >/dev/null 2>&1; then
	step "DKMS build skipped: no dkms command"
elif [ -z "$kdir" ]; then
	step "DKMS build skipped: no kernel headers (set TIERMM_PKG_KDIR)"
else
	kver=$(cat "$kdir/include/config/kernel.release")
	dpkg -x "$(deb tiermm-dkms)" "$tmp/dkms-src"
	mkdir "$tmp/dkms-tree"
	dk="--sourcetree $tmp/dkms-src/usr/src --dkmstree $tmp/dkms-tree"
	# shellcheck disable=SC2086
	if ! { dkms add -m tiermm -v "$version" $dk &&
		dkms build -m tiermm -v "$version" -k "$kver" --kernelsourcedir "$kdir" $dk; } \
		>"$tmp/dkms.log" 2>&1; then
		cat "$tmp/dkms.log"
		cat "$tmp/dkms-tree/tiermm/$version/build/make.log" 2>/dev/null || true
		fail "dkms build of tiermm-dkms for $kver"
	fi
	ko=$(find "$tmp/dkms-tree/tiermm/$version/$kver" -name 'tiermm.ko*' | head -n 1)
	[ -n "$ko" ] || { cat "$tmp/dkms.log"; fail "dkms built no tiermm.ko"; }
	[ "$(modinfo -F version "$ko")" = "$version" ] || fail "$ko: version $(modinfo -F version "$ko"), not $version"
	step "DKMS built tiermm.ko $version for $kver from tiermm-dkms"
fi

# The real thing: apt-get install, run, purge.
if [ "${TIERMM_PKG_INSTALL:-0}" = 1 ]; then
	[ "$(id -u)" -eq 0 ] || fail "TIERMM_PKG_INSTALL=1 needs root"
	pkgs="libtiermm0 libtiermm-dev tiermm-tools $python"
	debs=""
	for p in $pkgs; do
		if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed'; then
			fail "$p is installed already; this test installs and purges its own (remove it first)"
		fi
		debs="$debs ./$(basename "$(deb "$p")")"
	done
	installed=" $pkgs"
	# shellcheck disable=SC2086
	(cd "$tmp" && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		$debs) >"$tmp/apt.log" 2>&1 ||
		{ cat "$tmp/apt.log"; fail "apt-get install of the packages"; }
	/usr/bin/tiermm caps >"$tmp/caps.out" 2>&1 ||
		{ cat "$tmp/caps.out"; fail "the installed tiermm caps exited with $?"; }
	grep -q "^tiermm $version feature probes" "$tmp/caps.out" || fail "the installed tiermm caps"
	sys=$(ldd /usr/bin/tiermm | awk '$1 == "libtiermm.so.0" { print $3 }')
	case $sys in
	"$ml"/libtiermm.so.0 | /lib/"$triplet"/libtiermm.so.0) ;;
	*) echo "warning: /usr/bin/tiermm binds to $sys, not the packaged library (another libtiermm in the search path?)" ;;
	esac
	# shellcheck disable=SC2046
	cc -std=c11 -Wall -Werror "$example" $(pkg-config --cflags --libs tiermm) -o "$tmp/caps-sys"
	"$tmp/caps-sys" | grep -q "^libtiermm $version" || fail "caps against the installed packages"
	cmake -S "$here/consumer" -B "$tmp/consumer-sys" -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF \
		-DTIERMM_EXAMPLE="$example" >"$tmp/consumer-sys.log" 2>&1 &&
		cmake --build "$tmp/consumer-sys" >>"$tmp/consumer-sys.log" 2>&1 ||
		{ cat "$tmp/consumer-sys.log"; fail "find_package(tiermm) against the installed packages"; }
	grep -q "tiermm $version in $ml/cmake/tiermm\$" "$tmp/consumer-sys.log" ||
		echo "warning: find_package(tiermm) found $(sed -n 's/^-- tiermm [^ ]* in //p' "$tmp/consumer-sys.log"), not $ml/cmake/tiermm (another tiermm under /usr/local?)"
	"$tmp/consumer-sys/caps" | grep -q "^libtiermm $version" || fail "caps (CMake) against the installed packages"
	[ -f /lib/systemd/system/tiermmd.service ] || fail "tiermmd.service not installed"
	if [ -e /etc/systemd/system/multi-user.target.wants/tiermmd.service ]; then
		fail "tiermmd.service was enabled by the package"
	fi
	if [ -n "$python" ]; then
		(cd / && env -u PYTHONPATH -u TIERMM_LIBRARY PYTHONDONTWRITEBYTECODE=1 \
			/usr/bin/python3 -c "$pyprobe") >"$tmp/py.out" 2>&1 ||
			{ cat "$tmp/py.out"; fail "import tiermm from the installed python3-tiermm"; }
		grep -q "^$pydir/__init__.py\$" "$tmp/py.out" ||
			{ cat "$tmp/py.out"; fail "python3 did not import the installed python3-tiermm"; }
		grep -q "^$version\$" "$tmp/py.out" || { cat "$tmp/py.out"; fail "tiermm.version()"; }
	fi
	purge || exit 1
	for p in $pkgs; do
		if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed'; then
			fail "$p is still installed after apt-get purge"
		fi
	done
	step "apt-get installed $pkgs; tiermm caps, caps (pkg-config, CMake)${python:+, import tiermm} ran; apt-get purged them"
fi
echo "ok: Debian packages of tiermm $version built, lintian-clean of errors ($warnings warnings), unpacked and run"
