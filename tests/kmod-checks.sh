#!/bin/sh
# kmod/ must be checkpatch --strict clean and dkms.conf's version must equal
# VERSION. checkpatch.pl comes from Debian's linux-source-6.12 tarball,
# extracted once (only scripts/) into the cache.
# Usage: kmod-checks.sh REPO
set -eu
repo=$1
cache=${TIERMM_KERNEL_CACHE:-$HOME/.cache/tiermm}/checkpatch
tarball=$(ls /usr/src/linux-source-6.12.tar.* 2>/dev/null | head -n 1)
if [ ! -x "$cache/linux-source-6.12/scripts/checkpatch.pl" ]; then
	[ -n "$tarball" ] || { echo "FAIL: /usr/src/linux-source-6.12.tar.* missing (apt-get install linux-source-6.12)"; exit 1; }
	mkdir -p "$cache"
	tar -C "$cache" -xf "$tarball" linux-source-6.12/scripts/checkpatch.pl \
		linux-source-6.12/scripts/spelling.txt \
		linux-source-6.12/scripts/const_structs.checkpatch
fi
make -s -C "$repo/kmod" versioncheck
out=$(make -s -C "$repo/kmod" checkpatch CHECKPATCH="$cache/linux-source-6.12/scripts/checkpatch.pl" 2>&1) || {
	echo "$out"
	echo "FAIL: checkpatch"
	exit 1
}
echo "$out" | grep -E "total:" || true
if echo "$out" | grep -E "total: [0-9]+ errors, [0-9]+ warnings, [0-9]+ checks" | grep -vq "total: 0 errors, 0 warnings, 0 checks"; then
	echo "$out"
	echo "FAIL: checkpatch --strict is not clean"
	exit 1
fi
echo "ok: kmod/ is checkpatch --strict clean and its version matches VERSION"
