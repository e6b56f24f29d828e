#!/bin/sh
# tests/vm/guest/check-pt-migrate.sh [--no-selftests | --selftests-only] [SECONDS]
# - page-table migration (TIERMM_IOC_PT_MIGRATE) in a guest with two nodes or more
# (presets numa2, tiered, numa4). --no-selftests runs part 1 only (CI: vm.pt_migrate.*),
# --selftests-only part 2 only (label stress: vm.pt_migrate.mmselftests.numa2).
#
# 1. pt_migrate_test --seconds SECONDS (default 60): locality, THP deposits, errors and a
#    SECONDS-long stress run (tests/kmod/pt_migrate_test.c). Its TAP lines are shown as
#    diagnostics; one check here stands for its result.
# 2. Linux's own mm selftests (built by tests/kmod/build-mm-selftests.sh into the guest's
#    /usr/bin as mmst-*), each run twice: alone, then while `pt_migrate_test --loop` moves
#    the page tables of every user process to node 0, node 1, AUTO, ... in rounds 20 ms apart.
#    No case may pass alone and not with migration, nor fail only with migration (one that
#    fails alone may pass with it: flakes, the environment), and the exit status must be
#    the same or 0; the loop must have moved tables and seen no error. Without the
#    selftests this part is skipped. About 12 minutes on an idle 2-core host, 25 on a
#    busy one.
# Subset and flags, chosen to keep each pass near five minutes under TCG: migration (its
# six cases run 5 s each instead of 20: build-mm-selftests.sh shortens RUNTIME; 16 huge
# pages are reserved for its hugetlb cases), mremap_test (4 MiB validation threshold, the
# default), mkdirty, cow, khugepaged all:anon (khugepaged and MADV_COLLAPSE contexts),
# transhuge-stress -d 10, split_huge_page_test, uffd-unit-tests, soft-dirty.
# shellcheck source=tap.sh
. /tests/tap.sh

part1=1
part2=1
case $1 in
--no-selftests) part2=0; shift ;;
--selftests-only) part1=0; shift ;;
-*) bail_out "usage: check-pt-migrate.sh [--no-selftests | --selftests-only] [SECONDS]" ;;
esac
secs=${1:-60}

[ -c /dev/tiermm ] || bail_out "/dev/tiermm is missing: tiermm.ko is not loaded"
[ -d /sys/devices/system/node/node1 ] || bail_out "needs two NUMA nodes"
command -v pt_migrate_test >/dev/null || bail_out "pt_migrate_test is not in the guest"

# ---- 1. the module's own test -------------------------------------------------------
if [ "$part1" -eq 1 ]; then
	out=/tmp/pt_migrate_test.out
	start=$(date +%s)
	pt_migrate_test --seconds "$secs" >"$out" 2>&1
	rc=$?
	sed 's/^/  /' "$out" | while IFS= read -r line; do diag "$line"; done
	passed=$(grep -c '^ok ' "$out")
	failed=$(grep -c '^not ok ' "$out")
	if [ "$rc" -eq 0 ] && [ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]; then
		ok "pt_migrate_test: $passed checks passed in $(($(date +%s) - start)) s"
	else
		not_ok "pt_migrate_test: exit $rc, $failed of $((passed + failed)) checks failed"
	fi
fi
[ "$part2" -eq 1 ] || tap_done

# ---- 2. mm selftests with and without migration ---------------------------------------
if ! command -v mmst-migration >/dev/null; then
	ok "mm selftests # SKIP not built (tests/kmod/build-mm-selftests.sh)"
	tap_done
fi
grep -q " /sys/kernel/debug debugfs " /proc/mounts ||
	mount -t debugfs none /sys/kernel/debug
echo 0 >/proc/sys/kernel/numa_balancing 2>/dev/null
# hugetlb pages for migration's hugetlb cases (the module skips hugetlb ranges), and
# overcommit for mremap_test's 2 GiB regions in a 2 GiB guest
echo 16 >/proc/sys/vm/nr_hugepages 2>/dev/null
echo 1 >/proc/sys/vm/overcommit_memory

# results FILE: the normalized result lines of a selftest's log, sorted: "ok NAME",
# "not ok NAME" or "skip NAME", from kselftest TAP lines (numbers and timings dropped),
# khugepaged's coloured verdicts (prefixed with the test they belong to, progress dots
# squeezed) and uffd-unit-tests' "Testing NAME... done|skipped|failed" lines.
results() {
	awk 'BEGIN { esc = sprintf("%c", 27) }
	/^Run test: / { t = substr($0, 11); next }
	/^(not )?ok [0-9]+ / {
		r = $1 == "ok" ? "ok" : "not ok"
		sub(/^(not )?ok [0-9]+ /, "")
		if ($0 ~ /# [Ss][Kk][Ii][Pp]/) {
			sub(/ *# [Ss][Kk][Ii][Pp].*/, "")
			r = "skip"
		}
		sub(/ \([0-9.]+ *[mu]?s\)$/, "")
		print r " " $0
		next
	}
	index($0, esc "[3") {
		r = index($0, esc "[32m") ? "ok" : index($0, esc "[31m") ? "not ok" : "skip"
		s = $0
		gsub(esc "\\[[0-9;]*m", "", s)
		gsub(/\.+/, ".", s)
		print r " " t ": " s
		next
	}
	/^Testing .*\.\.\. / {
		name = substr($0, 9)
		v = name
		sub(/\.\.\. .*/, "", name)
		sub(/.*\.\.\. /, "", v)
		r = v ~ /^done/ ? "ok" : v ~ /^skipped/ ? "skip" : v ~ /^failed/ ? "not ok" : ""
		if (r != "")
			print r " " name
	}' "$1" | sort
}

# run_selftest TAG NAME ARGS...: run /usr/bin/mmst-NAME, log to /tmp/TAG-NAME.log,
# its exit status to /tmp/TAG-NAME.rc
run_selftest() {
	rs_tag=$1
	rs_name=$2
	shift 2
	rs_t=$(date +%s)
	timeout 600 "mmst-$rs_name" "$@" >"/tmp/$rs_tag-$rs_name.log" 2>&1
	echo $? >"/tmp/$rs_tag-$rs_name.rc"
	diag "$rs_tag $rs_name: exit $(cat "/tmp/$rs_tag-$rs_name.rc") in $(($(date +%s) - rs_t)) s"
}

run_all() {
	(cd /tmp && run_selftest "$1" migration)
	run_selftest "$1" mremap_test
	run_selftest "$1" mkdirty
	run_selftest "$1" cow
	run_selftest "$1" khugepaged all:anon
	run_selftest "$1" transhuge-stress -d 10
	run_selftest "$1" split_huge_page_test
	run_selftest "$1" uffd-unit-tests
	run_selftest "$1" soft-dirty
}

run_all plain

pt_migrate_test --loop --interval-ms 20 >/tmp/loop.out 2>&1 &
loop=$!
run_all migrating
kill -TERM "$loop"
wait "$loop"
loop_rc=$?
diag "$(cat /tmp/loop.out)"

# A regression is a case that passes alone but not while migrating, or one that fails
# only while migrating; a case that fails alone (a flake, or the environment: no swap, a
# 2 GiB guest) may pass while migrating.
for t in migration mremap_test mkdirty cow khugepaged transhuge-stress split_huge_page_test \
	uffd-unit-tests soft-dirty; do
	a=$(cat "/tmp/plain-$t.rc")
	b=$(cat "/tmp/migrating-$t.rc")
	results "/tmp/plain-$t.log" >"/tmp/plain-$t.res"
	results "/tmp/migrating-$t.log" >"/tmp/migrating-$t.res"
	npass=$(grep -c '^ok ' "/tmp/plain-$t.res")
	nskip=$(grep -c '^skip ' "/tmp/plain-$t.res")
	nfail=$(grep -c '^not ok ' "/tmp/plain-$t.res")
	: >"/tmp/regressed-$t"
	while IFS= read -r line; do
		case $line in
		"ok "*) grep -qxF -- "$line" "/tmp/migrating-$t.res" ||
			echo "passed alone, not migrating: ${line#ok }" >>"/tmp/regressed-$t" ;;
		esac
	done <"/tmp/plain-$t.res"
	while IFS= read -r line; do
		case $line in
		"not ok "*) grep -qxF -- "$line" "/tmp/plain-$t.res" ||
			echo "failed only migrating: ${line#not ok }" >>"/tmp/regressed-$t" ;;
		esac
	done <"/tmp/migrating-$t.res"
	if [ ! -s "/tmp/regressed-$t" ] && { [ "$a" = "$b" ] || [ "$b" -eq 0 ]; }; then
		if cmp -s "/tmp/plain-$t.res" "/tmp/migrating-$t.res"; then
			ok "$t: same result with page-table migration (exit $a; $npass passed, $nskip skipped, $nfail failed)"
		else
			ok "$t: no regression with page-table migration (exit $a alone, $b migrating; alone $npass passed, $nskip skipped, $nfail failed)"
			diff "/tmp/plain-$t.res" "/tmp/migrating-$t.res" | grep '^[-+][^-+]' |
				while IFS= read -r line; do diag "  $line"; done
		fi
		# the cases that fail alone (environment: no swap, ...)
		grep '^not ok ' "/tmp/plain-$t.res" | head -n 8 |
			while IFS= read -r line; do diag "  $line"; done
	else
		not_ok "$t: regression with page-table migration (exit $a alone, $b migrating)"
		head -n 20 "/tmp/regressed-$t" | while IFS= read -r line; do diag "  $line"; done
		tail -n 15 "/tmp/migrating-$t.log" | while IFS= read -r line; do diag "  | $line"; done
	fi
done

moved=$(sed -n 's/.*moved pte \([0-9]*\) pmd \([0-9]*\) pud \([0-9]*\).*/\1 \2 \3/p' /tmp/loop.out)
calls=$(sed -n 's/.* \([0-9]*\) calls: \([0-9]*\) ok.*/\2/p' /tmp/loop.out)
check_eq "the migration loop saw no error" 0 "$loop_rc"
if [ -n "$moved" ] && [ "${moved%% *}" -gt 0 ] && [ "${calls:-0}" -gt 0 ]; then
	ok "the migration loop moved page tables ($calls calls; pte pmd pud: $moved)"
else
	not_ok "the migration loop moved no page table"
fi
tap_done
