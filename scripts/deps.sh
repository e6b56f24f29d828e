#!/bin/sh
# Install everything tiermm needs to build and test, from Debian's archive.
# Idempotent; needs root (or sudo) when something is missing.
set -eu
pkgs="build-essential cmake pkg-config libhwloc-dev hwloc libnuma-dev numactl
liburcu-dev libcmocka-dev libjansson-dev python3 qemu-system-x86 busybox-static cpio kmod
groff-base file linux-source-6.12 xz-utils stress-ng rsync
debhelper dh-dkms dh-python lintian abigail-tools"
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "deps: installing$missing" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
