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
# shellcheck source=mmselftests.sh
. /tests/mmselftests.sh
if ! mmst_available; then
	ok "mm selftests # SKIP not built (tests/kmod/build-mm-selftests.sh)"
	tap_done
fi
mmst_setup

mmst_run_all plain

pt_migrate_test --loop --interval-ms 20 >/tmp/loop.out 2>&1 &
loop=$!
mmst_run_all migrating
kill -TERM "$loop"
wait "$loop"
loop_rc=$?
diag "$(cat /tmp/loop.out)"

mmst_compare plain migrating "page-table migration"

moved=$(sed -n 's/.*moved pte \([0-9]*\) pmd \([0-9]*\) pud \([0-9]*\).*/\1 \2 \3/p' /tmp/loop.out)
calls=$(sed -n 's/.* \([0-9]*\) calls: \([0-9]*\) ok.*/\2/p' /tmp/loop.out)
check_eq "the migration loop saw no error" 0 "$loop_rc"
if [ -n "$moved" ] && [ "${moved%% *}" -gt 0 ] && [ "${calls:-0}" -gt 0 ]; then
	ok "the migration loop moved page tables ($calls calls; pte pmd pud: $moved)"
else
	not_ok "the migration loop moved no page table"
fi
tap_done
