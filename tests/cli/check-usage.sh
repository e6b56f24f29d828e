#!/bin/bash
# Every CLI verb has a man1 page, and the options its --help lists and the
# options its page documents are the same set; so have tiermmd --help and
# man8/tiermmd.8.
# Usage: check-usage.sh TIERMM_BINARY MAN1_DIR [TIERMMD_BINARY]
# (TIERMMD_BINARY defaults to tiermmd next to TIERMM_BINARY; the daemon's
# page is in the man8 directory next to MAN1_DIR.)
set -euo pipefail
tiermm=$1
man1=$2
tiermmd=${3:-$(dirname "$tiermm")/tiermmd}
man8=$(dirname "$man1")/man8
status=0

opts_of() { grep -oE -- '(^|[ ,])--[a-z][a-z0-9-]*' | sed 's/^[ ,]*//' | sort -u; }

verbs=$("$tiermm" --help | awk '/^Verbs:/ { on = 1; next } on && /^  [a-z]/ { print $1 } on && /^$/ { exit }')
[ -n "$verbs" ] || { echo "FAIL: no verbs in tiermm --help"; exit 1; }
[ -f "$man1/tiermm.1" ] || { echo "FAIL: $man1/tiermm.1 missing"; status=1; }
for v in $verbs; do
	page=$man1/tiermm-$v.1
	if [ ! -f "$page" ]; then
		echo "FAIL: verb '$v' has no man page $page"
		status=1
		continue
	fi
	grep -q "tiermm-$v" "$man1/tiermm.1" || { echo "FAIL: tiermm.1 does not mention tiermm-$v"; status=1; }
	help_opts=$("$tiermm" "$v" --help | opts_of)
	# Man page options: \-\-name in .TP/.B lines.
	man_opts=$(sed 's/\\-/-/g; s/\\f[BIRP]//g' "$page" | opts_of)
	if [ "$help_opts" != "$man_opts" ]; then
		echo "FAIL: tiermm $v: --help and $page disagree"
		diff <(echo "$help_opts") <(echo "$man_opts") || true
		status=1
	fi
	# help VERB prints the same text as VERB --help.
	if [ "$("$tiermm" help "$v")" != "$("$tiermm" "$v" --help)" ]; then
		echo "FAIL: 'tiermm help $v' differs from 'tiermm $v --help'"
		status=1
	fi
done
# Unknown verbs and options are usage errors (status 2) with a message.
set +e
"$tiermm" no-such-verb 2>/dev/null; rc=$?
set -e
[ $rc -eq 2 ] || { echo "FAIL: unknown verb exited $rc, expected 2"; status=1; }
for v in $verbs; do
	set +e
	err=$("$tiermm" "$v" --no-such-option 2>&1 >/dev/null); rc=$?
	set -e
	if [ $rc -ne 2 ] || [ -z "$err" ]; then
		echo "FAIL: tiermm $v --no-such-option: status $rc, message '$err'"
		status=1
	fi
done
# The daemon: tiermmd --help and man8/tiermmd.8.
if [ ! -x "$tiermmd" ]; then
	echo "FAIL: $tiermmd not found"
	status=1
elif [ ! -f "$man8/tiermmd.8" ]; then
	echo "FAIL: tiermmd has no man page $man8/tiermmd.8"
	status=1
else
	help_opts=$("$tiermmd" --help | opts_of)
	man_opts=$(sed 's/\\-/-/g; s/\\f[BIRP]//g' "$man8/tiermmd.8" | opts_of)
	if [ -z "$help_opts" ] || [ "$help_opts" != "$man_opts" ]; then
		echo "FAIL: tiermmd: --help and $man8/tiermmd.8 disagree"
		diff <(echo "$help_opts") <(echo "$man_opts") || true
		status=1
	fi
	set +e
	err=$("$tiermmd" --no-such-option 2>&1 >/dev/null); rc=$?
	set -e
	if [ $rc -ne 2 ] || [ -z "$err" ]; then
		echo "FAIL: tiermmd --no-such-option: status $rc, message '$err'"
		status=1
	fi
fi
[ $status -eq 0 ] && echo "ok: verbs $(echo $verbs) and tiermmd match their man pages"
exit $status
