#!/usr/bin/env bash
# tests/kmod/check-patches.sh [--build-each] [SERIES_DIR] - the kernel patch series
# (default kmod/patches/linux-6.12) against Debian's linux-source-6.12:
#  - every patch passes scripts/checkpatch.pl --strict with no error, warning or check;
#  - the series applies in order with patch -p1 --fuzz=0 to a copy of the source;
#  - with --build-each: every prefix of the series builds on its own (the minimal flavor
#    with the series' config.fragment, one tree built incrementally patch after patch;
#    a full rebuild where a patch touches widely included headers: 5-15 minutes a patch
#    on two cores).
# The source comes from tests/vm/kernel/build.sh's cache (extracted there if needed).
# TAP output; exit 0 when every check passed.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build_each=0
if [[ ${1:-} == --build-each ]]; then
	build_each=1
	shift
fi
series=${1:-$repo/kmod/patches/linux-6.12}
series=$(cd "$series" && pwd)
cache=${TIERMM_KERNEL_CACHE:-${HOME:-/root}/.cache/tiermm/kernel}

n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $*"; }
diag() { sed 's/^/# /'; }

mapfile -t patches < <(find "$series" -maxdepth 1 -name '*.patch' | sort)
((${#patches[@]})) || { echo "Bail out! no *.patch in $series"; exit 1; }

# A pristine source tree: the one tests/vm/kernel/build.sh extracted (CTest runs the
# kernel build first: fixture vm_kernel_ptrepl_minimal).
src=$(find "$cache" -maxdepth 1 -type d -name 'src-6.12.*' ! -name '*-p*' 2>/dev/null | sort | tail -n 1)
[[ -f $src/scripts/checkpatch.pl ]] || {
	echo "Bail out! no extracted linux-source-6.12 in $cache: run tests/vm/kernel/build.sh first"
	exit 1
}

for p in "${patches[@]}"; do
	name=$(basename "$p")
	out=$(cd "$src" && perl scripts/checkpatch.pl --strict --no-tree --show-types "$p" 2>&1) || true
	summary=$(printf '%s\n' "$out" | grep -E '^total: ' | tail -n 1)
	if [[ $summary == "total: 0 errors, 0 warnings, 0 checks,"* ]]; then
		ok "checkpatch --strict $name: clean"
	else
		not_ok "checkpatch --strict $name: ${summary:-no summary}"
		printf '%s\n' "$out" | grep -E -A3 '^(ERROR|WARNING|CHECK)' | head -n 60 | diag
	fi
done

work=$(mktemp -d "${TMPDIR:-/tmp}/tiermm-patches.XXXXXX")
trap 'rm -rf "$work"' EXIT
cp -al "$src" "$work/src" 2>/dev/null || cp -a "$src" "$work/src"
applied=1
for p in "${patches[@]}"; do
	# patch(1) writes new files and replaces changed ones: hard links stay intact
	if ! (cd "$work/src" && patch -p1 --fuzz=0 --quiet \
		--no-backup-if-mismatch <"$p") >"$work/patch.log" 2>&1; then
		not_ok "$(basename "$p") applies in order"
		diag <"$work/patch.log"
		applied=0
		break
	fi
done
((applied)) && ok "the series (${#patches[@]} patches) applies in order with patch -p1 --fuzz=0"

if ((build_each)) && ((applied)); then
	rm -rf "$work/src"
	cp -a "$src" "$work/src"
	obj=$work/obj
	mkdir -p "$obj"
	(cd "$work/src" && make -s O="$obj" tinyconfig >/dev/null)
	"$work/src/scripts/kconfig/merge_config.sh" -m -O "$obj" "$obj/.config" \
		"$repo/tests/vm/kernel/minimal-6.12.fragment" "$repo/tests/vm/kernel/tiermm.fragment" \
		"$series/config.fragment" >/dev/null
	cc=gcc
	command -v ccache >/dev/null && cc="ccache gcc"
	for p in "${patches[@]}"; do
		(cd "$work/src" && patch -p1 --fuzz=0 --quiet <"$p")
		(cd "$work/src" && make -s O="$obj" olddefconfig >/dev/null)
		if (cd "$work/src" && make -s O="$obj" -j"$(nproc)" CC="$cc" bzImage) \
			>"$work/build.log" 2>&1; then
			ok "builds with the series up to $(basename "$p")"
		else
			not_ok "does not build with the series up to $(basename "$p")"
			grep -E 'error|Error' "$work/build.log" | head -n 20 | diag
		fi
	done
fi
echo "1..$n"
((failed == 0))
