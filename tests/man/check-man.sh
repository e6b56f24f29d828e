#!/bin/bash
# Every function the library exports has a man3 page named after it (a page
# or a one-line ".so" link to one) that lists it under NAME, every link
# points to an existing page, and every page renders without a warning.
# Usage: check-man.sh LIBTIERMM.so MAN_DIR
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 LIBTIERMM.so MAN_DIR" >&2; exit 2; }
lib=$1
man=$(cd "$2" && pwd)
version=$(cat "$(dirname "$0")/../../VERSION")
status=0
fail() { echo "FAIL: $*"; status=1; }

command -v nm >/dev/null || { echo "FAIL: nm not found"; exit 1; }
command -v groff >/dev/null || { echo "FAIL: groff not found"; exit 1; }
[ -f "$lib" ] || { echo "FAIL: $lib not found"; exit 1; }

# A link page is a file whose only line is ".so manN/PAGE.N".
link_target() { sed -n '1s/^\.so[ \t]\{1,\}\([^ \t]*\)[ \t]*$/\1/p' "$1"; }
is_link() { [ "$(grep -c . "$1")" -eq 1 ] && [ -n "$(link_target "$1")" ]; }
# The words of a page's NAME section, one per line.
name_words() {
	sed -n '/^\.SH[ \t]\{1,\}"\{0,1\}NAME/,/^\.SH/p' "$1" | sed '1d;/^\.SH/d' |
		sed 's/\\-/-/g; s/\\f[BIRP]//g; s/^\.[A-Z]*[ \t]*//' | tr -s ' ,\t' '\n'
}

# 1. Exported tiermm_* functions and their pages.
syms=$(nm -D --defined-only "$lib" | awk '{ print $NF }' | sed 's/@.*//' |
	grep '^tiermm_' | sort -u || true)
[ -n "$syms" ] || fail "no tiermm_* symbol exported by $lib"
nsyms=0
for s in $syms; do
	nsyms=$((nsyms + 1))
	page=$man/man3/$s.3
	if [ ! -f "$page" ]; then
		fail "exported symbol $s has no page man3/$s.3"
		continue
	fi
	doc=$page
	if is_link "$page"; then
		doc=$man/$(link_target "$page")
		# A broken link is reported below; only check a real target here.
		[ -f "$doc" ] || continue
	fi
	name_words "$doc" | grep -qxF "$s" ||
		fail "man3/$s.3 leads to ${doc#"$man"/}, whose NAME section does not list $s"
done

# 2. Pages and links.
pages=$(cd "$man" && find . -path './man[0-9]*/*' -type f -name '*.[0-9]*' |
	sed 's|^\./||' | sort)
[ -n "$pages" ] || fail "no page under $man"
npages=0
nlinks=0
real=
for p in $pages; do
	if is_link "$man/$p"; then
		nlinks=$((nlinks + 1))
		t=$(link_target "$man/$p")
		if [ ! -f "$man/$t" ]; then
			fail "$p links to $t, which does not exist"
		elif is_link "$man/$t"; then
			fail "$p links to $t, which is itself a link"
		fi
		continue
	fi
	npages=$((npages + 1))
	real="$real $p"
	grep -q '^\.TH ' "$man/$p" || fail "$p has no .TH line"
	# Every page names the release it documents (VERSION).
	grep -q "^\.TH .*\"tiermm $version\"" "$man/$p" ||
		fail "$p: its .TH line does not say \"tiermm $version\" (VERSION)"
done

# 3. Rendering: no warning and no error, in troff and in terminal output.
# Links render their target, checked above. groff and man resolve .so
# requests relative to the current directory, hence the cd.
preconv=
command -v preconv >/dev/null && preconv=-k
for p in $real; do
	for dev in ps utf8; do
		# shellcheck disable=SC2086
		out=$(cd "$man" && groff $preconv -man -ww -z -T$dev "$p" 2>&1) || true
		if [ -n "$out" ]; then
			fail "$p: groff -man -ww -z -T$dev reports:"
			printf '%s\n' "$out" | sed 's/^/    /'
		fi
	done
	if command -v man >/dev/null; then
		out=$(cd "$man" && MANWIDTH=80 man --warnings -l "$p" 2>&1 >/dev/null) || true
		if [ -n "$out" ]; then
			fail "$p: man --warnings reports:"
			printf '%s\n' "$out" | sed 's/^/    /'
		fi
	fi
done

[ $status -eq 0 ] &&
	echo "ok: $nsyms exported functions have man3 pages; $npages pages and $nlinks links render without warnings"
exit $status
