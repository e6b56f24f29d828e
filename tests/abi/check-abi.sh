#!/bin/sh
# The library's ABI against the stored description of the released one
# (tests/abi/libtiermm.abi, written by abidw from abigail-tools):
#   - no incompatible change (a function or variable removed, a parameter or
#     return type changed, a type changed in a way that breaks callers): abidiff
#     reports those with bit 8 of its exit status;
#   - every symbol added since is in a version node the released library did not
#     have (libtiermm.map: a released node never changes);
#   - the SONAME is the released one.
# A structure that grows at its end (callers announce their size in its sz
# field) is compatible (libtiermm.abignore); any other change of a type or a
# signature fails, added functions are listed.
# Usage: check-abi.sh LIBTIERMM.so STORED.abi HEADER_DIR... 
#        check-abi.sh --update LIBTIERMM.so STORED.abi HEADER_DIR...  (at a release)
set -eu
update=0
[ "${1:-}" = --update ] && { update=1; shift; }
[ $# -ge 3 ] || { echo "usage: $0 [--update] LIBTIERMM.so STORED.abi HEADER_DIR..." >&2; exit 2; }
lib=$1
stored=$2
shift 2
command -v abidw >/dev/null && command -v abidiff >/dev/null ||
	{ echo "FAIL: abidw/abidiff not found (Debian package abigail-tools)"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
hdrs=
for d in "$@"; do
	hdrs="$hdrs --headers-dir $d"
done
# shellcheck disable=SC2086
abidw $hdrs --drop-private-types --no-show-locs --no-corpus-path --out-file "$tmp/cur.abi" "$lib"
if [ $update = 1 ]; then
	cp "$tmp/cur.abi" "$stored"
	echo "wrote $stored"
	exit 0
fi
[ -f "$stored" ] || { echo "FAIL: no stored ABI $stored (--update writes it)"; exit 1; }
status=0
set +e
abidiff --no-show-locs --suppressions "$(dirname "$0")/libtiermm.abignore" \
	"$stored" "$tmp/cur.abi" >"$tmp/report" 2>&1
rc=$?
set -e
if [ $((rc & 3)) -ne 0 ]; then
	echo "FAIL: abidiff could not compare (status $rc):"
	cat "$tmp/report"
	exit 1
fi
if [ $((rc & 8)) -ne 0 ]; then
	echo "FAIL: incompatible ABI change against $stored (a symbol removed):"
	status=1
elif [ $((rc & 4)) -ne 0 ] && grep -qE '[1-9][0-9]* (Removed|Changed)' "$tmp/report"; then
	echo "FAIL: ABI change against $stored (types or signatures):"
	status=1
fi
[ $((rc & 12)) -ne 0 ] && sed 's/^/  /' "$tmp/report"

soname() { sed -n "s/.*<abi-corpus[^>]* soname='\([^']*\)'.*/\1/p" "$1" | head -1; }
if [ "$(soname "$stored")" != "$(soname "$tmp/cur.abi")" ]; then
	echo "FAIL: SONAME $(soname "$tmp/cur.abi"), the released library's is $(soname "$stored")"
	status=1
fi
# name version, one a line, of the exported symbols of an ABI file.
syms() {
	sed -n "s/.*<elf-symbol name='\([^']*\)' version='\([^']*\)'.*is-defined='yes'.*/\1 \2/p" "$1" |
		sort -u
}
syms "$stored" >"$tmp/old"
syms "$tmp/cur.abi" >"$tmp/new"
awk '{ print $2 }' "$tmp/old" | sort -u >"$tmp/released"
cut -d' ' -f1 "$tmp/old" >"$tmp/oldnames"
added=$(grep -vwF -f "$tmp/oldnames" "$tmp/new" || true)
echo "$added" | while read -r name ver; do
	[ -n "$name" ] || continue
	if grep -qxF "$ver" "$tmp/released"; then
		echo "FAIL: $name was added to $ver, a released version node: put it in a new node"
		echo x >>"$tmp/bad"
	else
		echo "new: $name in $ver"
	fi
done
[ -f "$tmp/bad" ] && status=1
# A symbol may not move to another node either.
moved=$(join "$tmp/old" "$tmp/new" | awk '$2 != $3 { print $1 " " $2 " -> " $3 }')
if [ -n "$moved" ]; then
	echo "FAIL: symbols changed version node: $moved"
	status=1
fi
[ $status -eq 0 ] && echo "ok: $(wc -l <"$tmp/new") symbols; ABI compatible with $(basename "$stored")" \
	"($(wc -l <"$tmp/old") released)"
exit $status
