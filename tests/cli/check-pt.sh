#!/bin/bash
# `tiermm pt` on this machine: usage errors (status 2 with a message), the
# missing module (status 1 with how to load it), the kernel without page-table
# replication (status 1 saying so), and, with fake_tiermm.so preloaded in
# place of tiermm.ko (and, for replication, of the patched kernel's files),
# stat, dump, migrate with its check, follow, replicate and replication, end
# to end.
# Usage: check-pt.sh TIERMM_BINARY FAKE_TIERMM_SO
set -uo pipefail
tiermm=$1
fake=$2
status=0
tmp=$(mktemp -d)
sleeper=
cleanup() {
	[ -n "$sleeper" ] && kill "$sleeper" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; status=1; }

# expect STATUS PATTERN ARGS...: tiermm ARGS exits STATUS and its output
# (stdout and stderr) matches the extended regexp PATTERN.
expect() {
	local want=$1 pat=$2 rc
	shift 2
	"$tiermm" "$@" >"$tmp/out" 2>&1
	rc=$?
	if [ "$rc" != "$want" ]; then
		fail "tiermm $*: status $rc, expected $want"
		sed 's/^/    /' "$tmp/out"
	elif ! grep -qE -- "$pat" "$tmp/out"; then
		fail "tiermm $*: output does not match '$pat'"
		sed 's/^/    /' "$tmp/out"
	fi
}

# 1. Usage errors.
expect 2 "Usage: tiermm pt stat" pt
expect 2 "unknown subcommand 'bogus'" pt bogus
expect 2 "unknown option '--bogus'" pt --bogus
expect 2 "missing PID" pt stat
expect 2 "'x1' is not a process id" pt stat x1
expect 2 "'0' is not a process id" pt dump 0
expect 2 "is not START-END" pt stat 1 --range 0x1000
expect 2 "is not START-END" pt stat 1 --range 0x2000-0x1000
expect 2 "multiples of 4096" pt dump 1 --range 0x1001-0x2000
expect 2 "unknown option or missing argument '--node'" pt stat 1 --node 0
expect 2 "unknown option or missing argument '--range'" pt stat 1 --range
expect 2 "unexpected argument '2'" pt dump 1 2
expect 2 "--node N\\|auto is required" pt migrate 1
expect 2 "'7x' is not a node number" pt migrate 1 --node 7x
expect 2 "'pte,pgd' is not a list" pt migrate 1 --node 0 --levels pte,pgd
expect 2 "'0' is not a number in 0.01-86400" pt follow 1 --interval 0
expect 2 "'-1' is not a number of rounds" pt follow 1 --count -1
expect 2 "'101' is not a number in 0-100" pt follow 1 --threshold 101
expect 2 "unknown option or missing argument '--json'" pt follow 1 --json
expect 2 "missing NODES" pt replicate 1
expect 2 "'0-x' is not a node list" pt replicate 1 0-x
expect 2 "'3-1' is not a node list" pt replicate 1 3-1
expect 2 "'1,' is not a node list" pt replicate 1 1,
expect 2 "'2000' is not a node list" pt replicate 1 2000
expect 2 "unexpected argument '1'" pt replicate 1 0 1
expect 2 "unknown option or missing argument '--node'" pt replicate 1 0 --node 0
expect 2 "unknown option or missing argument '--range'" pt replication 1 --range 0x0-0x1000
expect 2 "missing PID" pt replication

# 2. Help.
expect 0 "tiermm pt follow PID" pt --help
expect 0 "--threshold PCT" help pt
expect 0 "^  -e, --entries" pt dump --help
"$tiermm" pt stat --help | grep -q -- --entries && fail "pt stat --help lists --entries"

expect 0 "^Usage: tiermm pt replicate PID NODES" pt replicate --help
expect 0 "^  -j, --json" pt replication --help

# 3. Without the module (only where it is not loaded).
if [ ! -e /dev/tiermm ]; then
	expect 1 "tiermm.ko is not loaded.*modprobe tiermm" pt stat $$
	expect 1 "tiermm.ko is not loaded.*modprobe tiermm" pt migrate $$ --node auto
	expect 1 "tiermm.ko is not loaded.*modprobe tiermm" pt follow $$ --count 1
fi
# Without the replication patches (only on such a kernel): nothing is done.
if [ ! -e /proc/sys/kernel/pgtable_replication ]; then
	expect 1 "lacks tiermm's page-table replication patches" pt replicate $$ 0
	expect 1 "lacks tiermm's page-table replication patches" pt replicate $$ none
	expect 1 "lacks tiermm's page-table replication patches" pt replication $$
	expect 1 "node 1000 does not exist" pt replicate $$ 0,1000
fi

# 4. With the fake module.
export LD_PRELOAD=$fake TIERMM_FAKE_STATE=$tmp/state
# A sanitized tiermm wants its runtime first in the library list.
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0
sleep 60 &
sleeper=$!
echo "1 0 0" >"$tmp/state"	# leaf tables on node 1, data on node 0

expect 0 "^1 +4 +0 +0 +0 +2048 +0 +100.0%$" pt stat $sleeper
expect 0 "^pte +4 +0 +4 +0 +-$" pt stat $sleeper
expect 0 "most on node 0; leaf entries: 2048, most on node 1" pt stat $sleeper --all
"$tiermm" pt stat $sleeper --json >"$tmp/json" || fail "pt stat --json failed"
python3 - "$tmp/json" <<'EOF' || fail "pt stat --json: unexpected JSON: $(cat "$tmp/json")"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["whole"] is True and d["data_node"] == 0 and d["leaf_node"] == 1, d
n = {x["node"]: x for x in d["nodes"]}
assert n[1]["leaf_local"] == 1.0 and n[0]["leaf_local"] == 0.0, n
assert n[0]["data_share"] == 1.0 and n[1]["tables"]["pte"] == 4, n
assert d["levels"]["pte"] == {"tables": 4, "local": 0, "remote": 4, "empty": 0, "huge_leaves": 0}, d
EOF
expect 0 "^# 7 tables$" pt dump $sleeper
expect 0 "^      pte 0x0000000000600000-0x0000000000800000 pfn 0x1004 node 1 present 512/512$" \
	pt dump $sleeper --range 0x400000-0x800000
expect 0 "^        \[511\] 0x800000002" pt dump $sleeper --entries
"$tiermm" pt dump $sleeper --json --entries >"$tmp/json" || fail "pt dump --json failed"
python3 - "$tmp/json" <<'EOF' || fail "pt dump --json: unexpected JSON"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["count"] == 7 and len(d["tables"]) == 7, d["count"]
assert [t["level"] for t in d["tables"]] == ["pgd", "pud", "pmd"] + ["pte"] * 4
assert len(d["tables"][3]["entries"]) == 512
EOF

# migrate: auto moves the PTE tables to the data's node and the check passes.
expect 0 "^check: ok, no pte,pmd,pud table is remote from its data$" pt migrate $sleeper --node auto
grep -q "^moved:   pte 4, pmd 0, pud 0$" "$tmp/out" || fail "migrate auto: moved line: $(cat "$tmp/out")"
grep -q "^skipped: already 2, no-data 0" "$tmp/out" || fail "migrate auto: skipped line"
expect 0 "^0 +4 +1 +1 +1 +2048 +2048 +100.0%$" pt stat $sleeper
expect 0 "^check: ok, every pte table is on node 1$" pt migrate $sleeper --node 1 --levels pte
# A module that reports moves but moves nothing fails the check.
echo "1 0 1" >"$tmp/state"
expect 1 "after the move, 4 pte table\(s\) are still on other nodes" pt migrate $sleeper --node 0 --levels pte
grep -q "^check: FAILED$" "$tmp/out" || fail "migrate: no 'check: FAILED' line"
expect 1 "4 pte, 1 pmd table\(s\) are still remote from their data" pt migrate $sleeper --node auto

# follow: threads on node 0 (this machine's only node or not, the sleeper is
# pinned there), tables on node 1, data on node 0: one move, to auto.
echo "1 0 0" >"$tmp/state"
if command -v taskset >/dev/null && [ -d /sys/devices/system/node/node0 ]; then
	taskset -pc "$(cat /sys/devices/system/node/node0/cpulist)" $sleeper >/dev/null
	expect 0 "^round 1: pid $sleeper: threads on node 0 \(1 of 1\), data on node 0 \(100.0%\), leaf entries local from node 0: 0.0% < 90%: moved 4 page tables to the node of their data \(auto\) \(pte 4, pmd 0, pud 0\); now 100.0% local$" \
		pt follow $sleeper --interval 0.1 --count 3
	[ "$(grep -c '^round' "$tmp/out")" = 1 ] || fail "follow: expected one action: $(cat "$tmp/out")"
	[ "$(cat "$tmp/state")" = "0 0 0" ] || fail "follow: tables not moved: $(cat "$tmp/state")"
	# Threads and data apart: to the threads' node.
	echo "1 1 0" >"$tmp/state"
	expect 0 "data on node 1 \(100.0%\), leaf entries local from node 0: 0.0% < 50%: moved 4 page tables to node 0 " \
		pt follow $sleeper --interval 0.1 --count 1 --threshold 50
fi
sleep 0.5 &
expect 0 "^round [0-9]+: pid $! exited$" pt follow $! --interval 0.2
expect 1 "pid 2147483647: no such process" pt follow 2147483647

# Replication, with the fake playing a two-node kernel with the patches.
mkdir "$tmp/repl"
echo 0 >"$tmp/repl/sysctl"
echo 0-1 >"$tmp/repl/online"
echo 0-1 >"$tmp/repl/possible"
echo 0-1 >"$tmp/repl/has_memory"
printf '\n' >"$tmp/repl/repl"
export TIERMM_FAKE_REPL=$tmp/repl
expect 0 "^pid $sleeper: page tables not replicated$" pt replication $sleeper
expect 0 "^replicas: none \(the page tables are not replicated\)$" pt stat $sleeper
expect 0 "^check: ok, the kernel reports replicas on exactly these nodes$" pt replicate $sleeper 0-1
grep -q "^pid $sleeper: page tables replicated on nodes 0-1$" "$tmp/out" || fail "replicate: first line: $(cat "$tmp/out")"
[ "$(cat "$tmp/repl/repl")" = 0-1 ] || fail "replicate wrote '$(cat "$tmp/repl/repl")', expected 0-1"
expect 0 "^pid $sleeper: page tables replicated on nodes 0-1 \(2 replicas\)$" pt replication $sleeper
expect 0 '^\{"pid":[0-9]+,"replicated":true,"nodes":"0-1","replicas":2\}$' pt replication $sleeper --json
expect 0 "^replicas on 2 nodes" pt stat $sleeper
grep -qE "^1 +4/4 +1/1 +1/1 +1/1 +100.0%$" "$tmp/out" || fail "stat: replica line of node 1: $(cat "$tmp/out")"
grep -q "^every replica table is local$" "$tmp/out" || fail "stat: replica summary"
export TIERMM_FAKE_REPL_FAIL=1
expect 0 "^1 replica table is not local" pt stat $sleeper
grep -qE "^1 +3/4 +1/1 +1/1 +1/1 +85.7%$" "$tmp/out" || fail "stat: replica line with a failed table: $(cat "$tmp/out")"
"$tiermm" pt stat $sleeper --json >"$tmp/json" || fail "pt stat --json failed (replicas)"
python3 - "$tmp/json" <<'EOF' || fail "pt stat --json: unexpected replicas: $(cat "$tmp/json")"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["replica_count"] == 2 and d["replica_remote"] == 1, d
assert d["replica_groups"] is False, d
r = d["replicas"]
assert r[0] == {"slot": 0, "group": False, "tables": {"pte": 4, "pmd": 1, "pud": 1, "pgd": 1},
                "local": {"pte": 4, "pmd": 1, "pud": 1, "pgd": 1}}, r
assert r[1]["slot"] == 1 and r[1]["local"]["pte"] == 3, r
EOF
unset TIERMM_FAKE_REPL_FAIL
expect 0 "^pid $sleeper: page tables replicated on nodes 1$" pt replicate $sleeper 1
expect 0 "^1 +4/4 " pt stat $sleeper
grep -qE "^0 +[0-9]+/" "$tmp/out" && fail "stat: node 0 still shows a replica: $(cat "$tmp/out")"
expect 0 "^check: ok, the kernel reports no replica$" pt replicate $sleeper none
grep -q "^pid $sleeper: page-table replication ended$" "$tmp/out" || fail "replicate none: $(cat "$tmp/out")"
expect 0 "^pid $sleeper: page tables not replicated$" pt replication $sleeper
expect 0 "^pid $sleeper: page tables replicated on nodes 0-1$" pt replicate $sleeper all
echo 0 >"$tmp/repl/has_memory"
expect 1 "node 1 has no memory" pt replicate $sleeper 1
expect 1 "node 2 does not exist or is offline" pt replicate $sleeper 0,2
unset TIERMM_FAKE_REPL

# Kernel errors.
export TIERMM_FAKE_ERR=1	# EPERM
expect 1 "pid $sleeper: permission denied: reading its page tables needs ptrace read access" pt stat $sleeper
expect 1 "CAP_SYS_NICE" pt migrate $sleeper --node 0
export TIERMM_FAKE_ERR=3	# ESRCH
expect 1 "pid $sleeper: no such process" pt dump $sleeper
unset TIERMM_FAKE_ERR
expect 1 "page-table migration: pid $sleeper, range .*: tiermm.ko rejected the request as invalid .*has no memory" \
	pt migrate $sleeper --node 5

[ $status -eq 0 ] && echo "ok: tiermm pt usage, errors and fake-module runs"
exit $status
