# shellcheck shell=sh
# tests/vm/guest/tap.sh - tiny TAP helpers for the in-guest checks (busybox sh).
# Source it, call ok/not_ok/check_eq..., end with tap_done (prints the plan, exits 0 only
# if every check passed).

tap_n=0
tap_failed=0

ok() {
	tap_n=$((tap_n + 1))
	echo "ok $tap_n - $*"
}

not_ok() {
	tap_n=$((tap_n + 1))
	tap_failed=$((tap_failed + 1))
	echo "not ok $tap_n - $*"
}

# diag LINE...: TAP diagnostic lines
diag() {
	for tap_line in "$@"; do
		echo "# $tap_line"
	done
}

# check_eq DESCRIPTION EXPECTED ACTUAL
check_eq() {
	if [ "$2" = "$3" ]; then
		ok "$1"
	else
		not_ok "$1"
		diag "  expected: '$2'" "  got:      '$3'"
	fi
}

# check_cmd DESCRIPTION CMD...: ok if CMD succeeds
check_cmd() {
	tap_desc=$1
	shift
	if "$@"; then
		ok "$tap_desc"
	else
		not_ok "$tap_desc"
	fi
}

# bail_out REASON: abort the whole test
bail_out() {
	echo "Bail out! $*"
	exit 1
}

tap_done() {
	echo "1..$tap_n"
	if [ "$tap_failed" -ne 0 ]; then
		diag "$tap_failed of $tap_n checks failed"
		exit 1
	fi
	exit 0
}
