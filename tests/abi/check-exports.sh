#!/bin/sh
# The shared library's exported symbols and the linker version script must
# agree exactly, and every export must carry a version from the script.
# Usage: check-exports.sh LIBTIERMM.so libtiermm.map
set -eu
lib=$1
map=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Symbols the map lists under global: (comments stripped).
sed -e 's,/\*.*\*/,,g' "$map" | awk '
	/\/\*/ { incomment = 1 }
	incomment { if (/\*\//) incomment = 0; next }
	/global:/ { inglobal = 1; next }
	/local:/ { inglobal = 0; next }
	/}/ { inglobal = 0; next }
	inglobal && /;/ { gsub(/[ \t;]/, ""); if ($0 != "") print }
' | sort >"$tmp/map"
# Version nodes the map defines.
grep -oE '^[A-Z][A-Z0-9_.]+[ \t]*\{' "$map" | sed 's/[ \t{]//g' | sort >"$tmp/nodes"

# Defined dynamic symbols with their versions, without the version nodes themselves.
nm -D --defined-only --with-symbol-versions "$lib" |
	awk '$2 ~ /^[TWDBRV]$/ { print $3 }' >"$tmp/raw"
sed 's/@.*//' "$tmp/raw" | grep -vxF -f "$tmp/nodes" | sort -u >"$tmp/exports"

status=0
missing=$(comm -23 "$tmp/exports" "$tmp/map")
extra=$(comm -13 "$tmp/exports" "$tmp/map")
if [ -n "$missing" ]; then
	echo "FAIL: exported but not in $map:" $missing
	status=1
fi
if [ -n "$extra" ]; then
	echo "FAIL: listed in $map but not exported:" $extra
	status=1
fi
unversioned=$(grep -v '@' "$tmp/raw" | grep -vxF -f "$tmp/nodes" || true)
if [ -n "$unversioned" ]; then
	echo "FAIL: exports without a symbol version:" $unversioned
	status=1
fi
bad=$(grep -v '^tiermm_\|^numa_' "$tmp/exports" || true)
if [ -n "$bad" ]; then
	echo "FAIL: exports outside the tiermm_ (and libnuma-compatible numa_) namespace:" $bad
	status=1
fi
soname=$(readelf -d "$lib" | sed -n 's/.*SONAME.*\[\(.*\)\].*/\1/p')
if [ "$soname" != "libtiermm.so.0" ]; then
	echo "FAIL: SONAME is '$soname', expected libtiermm.so.0"
	status=1
fi
[ $status -eq 0 ] && echo "ok: $(wc -l <"$tmp/exports") exports match $(basename "$map") (nodes: $(tr '\n' ' ' <"$tmp/nodes")), SONAME $soname"
exit $status
