#!/bin/bash
# `tiermm caps` replayed on captured machines must print exactly the stored
# output. TIERMM_REGEN=1 rewrites the stored files instead (on purpose only;
# review the diff).
# Usage: run.sh TIERMM_BINARY FIXTURES_DIR GOLDEN_DIR
set -euo pipefail
tiermm=$1
fixtures=$(cd "$2" && pwd)
golden=$3
status=0
count=0
for expect in "$golden"/*.caps.txt; do
	name=$(basename "$expect" .caps.txt)
	root=$fixtures/$name
	[ -d "$root" ] || { echo "FAIL: fixture $root missing"; status=1; continue; }
	for fmt in txt json; do
		file=$golden/$name.caps.$fmt
		args="--root $root"
		[ $fmt = json ] && args="$args --json"
		# shellcheck disable=SC2086
		if ! out=$("$tiermm" caps $args | sed "s|$fixtures|@FIXTURES@|g"); then
			echo "FAIL: tiermm caps $args failed"
			status=1
			continue
		fi
		if [ "${TIERMM_REGEN:-0}" = 1 ]; then
			printf '%s\n' "$out" >"$file"
			echo "regenerated $file"
		elif ! printf '%s\n' "$out" | diff -u "$file" -; then
			echo "FAIL: $name ($fmt) differs from $file"
			status=1
		fi
		count=$((count + 1))
	done
	# The JSON must parse.
	"$tiermm" caps --root "$root" --json | python3 -c 'import json,sys; json.load(sys.stdin)' ||
		{ echo "FAIL: $name: invalid JSON"; status=1; }
done
[ $count -gt 0 ] || { echo "FAIL: no golden files in $golden"; exit 1; }
[ $status -eq 0 ] && echo "ok: $count outputs match"
exit $status
