#!/bin/bash
# Unmodified programs under libtiermm-preload.so on the host: their output and exit status
# must be what they are without it. ls, sort (with temporary files and threads), sh, a
# multi-threaded malloc/mmap/munmap/mremap stress program, and a program that forks and
# executes in every way (shim_forkexec), each with the shim active (statistics thread, no
# runtime: the host has one memory tier and no hotness backend), with the default
# configuration (the runtime cannot start here: the shim steps aside), under an allocator that
# maps every allocation (its constructor runs before the shim's, and it maps memory while the
# shim resolves the C library), and through `tiermm run`. Then: configuration errors (one
# message; TIERMM_STRICT=1 exits 127), LD_PRELOAD taken out for children unless follow-exec:1,
# follow-fork:1 children with their own statistics files (and children that exit() at once,
# forked while the shim's thread starts), daemon(3), the statistics records (events, regions
# seen), `tiermm stat` finding them, and `tiermm run`'s exit statuses.
# lstopo uses hwloc itself: the shim must not change what hwloc shows it.
# Usage: check-shim-host.sh TIERMM LIBTIERMM-PRELOAD.so BINDIR MMAP_MALLOC.so [EXTRA_PRELOAD]
# (EXTRA_PRELOAD comes first in LD_PRELOAD: the sanitizer runtime of a sanitized build.)
set -uo pipefail
tiermm=$1
shim=$(realpath "$2")
bindir=$3
mmap_malloc=$(realpath "$4")
extra=${5:-}
pre() { echo "${extra:+$extra }$*"; }

n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $*"; }
diag() { sed 's/^/# /'; }

work=$(mktemp -d /tmp/check-shim-host.XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1
export LC_ALL=C
unset TIERMM_CONF TIERMM_STRICT TIERMM_LOG LD_PRELOAD

# Inputs: 60k lines for sort (big enough for temporary files with -S 1M).
awk 'BEGIN { s = 1; for (i = 0; i < 60000; i++) { s = (s * 1103515245 + 12345) % 2147483648; print s % 1000003, i } }' >in.txt
mkdir -p dir/sub && touch dir/a dir/b dir/sub/c

# compare NAME PRELOAD CONF CMD...: CMD's stdout and status with PRELOAD (and TIERMM_CONF=CONF)
# against a run without anything preloaded.
compare() {
	local name=$1 preload=$2 conf=$3
	shift 3
	"$@" >out0 2>err0 </dev/null
	local st0=$?
	LD_PRELOAD=$(pre "$preload") TIERMM_CONF=$conf "$@" >out1 2>err1 </dev/null
	local st1=$?
	if [ "$st0" = "$st1" ] && cmp -s out0 out1; then
		ok "$name: same output ($(wc -c <out0) bytes) and status ($st0)"
	else
		not_ok "$name: output or status differ (status $st0 without, $st1 with)"
		diff out0 out1 | head -20 | diag
		head -5 err1 | diag
	fi
}

progs=(
	"ls|ls -la /usr/bin dir"
	"lstopo|lstopo-no-graphics --of console"
	"sort|sort in.txt"
	"sort-tmpfiles|sort -n -S 1M --parallel=2 -T $work in.txt"
	"sh|sh -c 'echo a; ls dir >/dev/null; exit 7'"
	"shim_stress|$bindir/shim_stress 4 1500"
	"shim_forkexec|$bindir/shim_forkexec"
)
confs=(
	"stats|backend:none,stats:$work/s-%p.json,stats-interval:20ms,placement:interleave=all"
	"default|"
	"csv|backend:none,stats:$work/c-%p.csv,stats-interval:50ms,follow-fork:1"
)
for p in "${progs[@]}"; do
	pname=${p%%|*}
	cmd=${p#*|}
	for c in "${confs[@]}"; do
		eval "compare \"$pname, \${c%%|*}\" \"\$shim\" \"\${c#*|}\" $cmd"
	done
	# The shim behind an allocator that maps every allocation through it.
	eval "$cmd" >out0 2>/dev/null </dev/null
	st0=$?
	eval "LD_PRELOAD=\$(pre \"\$mmap_malloc\") $cmd" >outm 2>/dev/null </dev/null
	stm=$?
	eval "LD_PRELOAD=\$(pre \"\$shim \$mmap_malloc\") TIERMM_CONF=backend:none,stats:\$work/m-%p.json $cmd" >out1 2>err1 </dev/null
	st1=$?
	if [ "$stm" = "$st1" ] && cmp -s outm out1 && cmp -s out0 out1; then
		ok "$pname, mmap-based malloc preloaded after the shim: same output and status ($st1)"
	else
		not_ok "$pname, mmap-based malloc: statuses $st0 plain, $stm malloc only, $st1 with the shim"
		diff outm out1 | head -10 | diag
		head -5 err1 | diag
	fi
	# tiermm run: the summary goes to stderr, stdout and status are the command's.
	eval "$cmd" >out0 2>/dev/null </dev/null
	st0=$?
	eval "\"\$tiermm\" run --backend=none --stats-interval=50ms -- $cmd" >out1 2>err1 </dev/null
	st1=$?
	if [ "$st0" = "$st1" ] && cmp -s out0 out1 && grep -q "^tiermm run: .* after" err1; then
		ok "$pname, tiermm run: same output and status ($st0), summary on stderr"
	else
		not_ok "$pname, tiermm run: status $st0 without, $st1 with"
		diff out0 out1 | head -10 | diag
		diag <err1
	fi
done

# The shim stepped aside by default here (no usable backend, or one tier): one message.
LD_PRELOAD=$(pre "$shim") /bin/true 2>err1
lines=$(grep -c '^tiermm-preload: ' err1)
if [ "$(wc -l <err1)" = 1 ] && [ "$lines" = 1 ] || [ ! -s err1 ]; then
	ok "default configuration: at most one line on stderr ($(head -c 100 err1))"
else
	not_ok "default configuration: stderr has $(wc -l <err1) lines"
	diag <err1
fi

# Configuration errors: one message, the program runs; strict: status 127, no output.
LD_PRELOAD=$(pre "$shim") TIERMM_CONF=backend:none,nope:1 sh -c 'echo ran; exit 4' >out1 2>err1
st=$?
if [ $st = 4 ] && [ "$(cat out1)" = ran ] && [ "$(wc -l <err1)" = 1 ] &&
	grep -q "^tiermm-preload: TIERMM_CONF: unknown key 'nope' (known keys: .*); the program runs without tiermm" err1; then
	ok "unknown key: one message, the program runs"
else
	not_ok "unknown key: status $st, output '$(cat out1)'"
	diag <err1
fi
for bad in "fast-budget:lots" "placement:interleave=9999" "backend:magic" "interval:1ms" \
	"backoff:0" "stats:/nonexistent/dir/x.json"; do
	LD_PRELOAD=$(pre "$shim") TIERMM_STRICT=1 TIERMM_CONF=$bad sh -c 'echo ran; exit 4' >out1 2>err1
	st=$?
	if [ $st = 127 ] && [ ! -s out1 ] && [ "$(wc -l <err1)" = 1 ] &&
		grep -q "exiting with status 127 (TIERMM_STRICT=1)" err1; then
		ok "TIERMM_STRICT=1 with $bad: status 127, no output: $(cut -c1-110 err1)"
	else
		not_ok "TIERMM_STRICT=1 with $bad: status $st, output '$(cat out1)'"
		diag <err1
	fi
done

# LD_PRELOAD: the shim takes itself out (other entries stay) unless follow-exec:1.
other=$mmap_malloc
script='echo "[$LD_PRELOAD]"; if grep -q libtiermm-preload /proc/self/maps; then echo 1; else echo 0; fi'
got=$(LD_PRELOAD=$(pre "$shim $other") TIERMM_CONF=backend:none sh -c "$script" 2>&1)
want=$(printf '[%s]\n0' "$(pre "$other")")
if [ "$got" = "$want" ]; then
	ok "follow-exec:0: children have no shim, other preloads stay"
else
	not_ok "follow-exec:0: got '$got', want '$want'"
fi
got=$(LD_PRELOAD=$(pre "$shim") TIERMM_CONF=backend:none,follow-exec:1 sh -c "$script" 2>&1)
want=$(printf '[%s]\n1' "$(pre "$shim")")
if [ "$got" = "$want" ]; then
	ok "follow-exec:1: children keep the shim"
else
	not_ok "follow-exec:1: got '$got', want '$want'"
fi
got=$(LD_PRELOAD=$(pre "$shim") TIERMM_CONF=backend:none,follow-exec:1 "$bindir/shim_forkexec" 2>&1 | grep -c 'shim mapped yes, in LD_PRELOAD yes')
if [ "$got" = 5 ]; then
	ok "follow-exec:1: the 5 exec'd children of shim_forkexec run with the shim"
else
	not_ok "follow-exec:1: $got of 5 exec'd children have the shim"
fi

# Statistics: the stress program's file has start, ticks and exit, and counts its mappings.
rm -f st.json
LD_PRELOAD=$(pre "$shim") TIERMM_CONF=backend:none,stats:st.json,stats-interval:20ms \
	"$bindir/shim_stress" 4 3000 >/dev/null 2>err1
events=$(grep -o '"event":"[a-z]*"' st.json | sort | uniq -c | awk '{ printf "%s ", $2 }')
last=$(tail -1 st.json)
num() { echo "$last" | sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p"; }
if echo "$events" | grep -q '"event":"exit"' && echo "$events" | grep -q '"event":"start"' &&
	echo "$events" | grep -q '"event":"tick"'; then
	ok "stats: start, tick and exit records ($(wc -l <st.json) records)"
else
	not_ok "stats: events $events"
	diag <err1
fi
if [ "$(num mmap_anon_bytes)" -ge 8388608 ] && [ "$(num mmap_calls)" -gt 1000 ] &&
	[ "$(num mremap_calls)" -gt 100 ] && [ "$(num munmap_calls)" -gt 1000 ] &&
	[ "$(num regions_lossy)" = 0 ] && [ "$(num rss_bytes)" -gt 8388608 ]; then
	ok "stats: the exit record counts the 8 MiB kept mapped ($(num mmap_anon_bytes) bytes in $(num regions) regions; $(num mmap_calls) mmap, $(num mremap_calls) mremap, $(num munmap_calls) munmap calls)"
else
	not_ok "stats: exit record $last"
fi
if echo "$last" | grep -q '"event":"exit"' && echo "$last" | grep -q '"state":"none","backend":"none"' &&
	echo "$last" | grep -q '"backoff":0,"backoff_epochs":0,' &&
	echo "$last" | grep -q '"node0_bytes":' && echo "$last" | grep -q '"tier0_bytes":'; then
	ok "stats: the last record is the exit record, with backoff (0: no runtime), node and tier columns"
else
	not_ok "stats: last record $last"
fi
# CSV: one header, rows of the same width.
rm -f st.csv
LD_PRELOAD=$(pre "$shim") TIERMM_CONF=backend:none,stats:st.csv,stats-interval:20ms \
	"$bindir/shim_stress" 2 2000 >/dev/null 2>&1
widths=$(awk -F, '{ print NF }' st.csv | sort -u | wc -l)
if [ "$(grep -c '^time,' st.csv)" = 1 ] && [ "$widths" = 1 ] && [ "$(wc -l <st.csv)" -ge 3 ]; then
	ok "stats: CSV with one header and $(($(wc -l <st.csv) - 1)) rows of one width"
else
	not_ok "stats: CSV"
	head -3 st.csv | diag
fi
# A failed exec (shim_forkexec's last step) stops, records "exec", and starts again.
rm -f fe.json
LD_PRELOAD=$(pre "$shim") TIERMM_CONF=backend:none,stats:fe.json "$bindir/shim_forkexec" >/dev/null 2>&1
if [ "$(grep -o '"event":"[a-z]*"' fe.json | tr '\n' ' ')" = '"event":"start" "event":"exec" "event":"start" "event":"exit" ' ]; then
	ok "failed exec: start, exec, start again, exit"
else
	not_ok "failed exec: events $(grep -o '"event":"[a-z]*"' fe.json | tr '\n' ' ')"
fi

# follow-fork:1: forked children write FILE.PID of their own.
rm -f ff.json*
LD_PRELOAD=$(pre "$shim") TIERMM_CONF=backend:none,stats:ff.json,follow-fork:1 "$bindir/shim_forkexec" >/dev/null 2>err1
children=0
good=0
for f in ff.json.*; do
	[ -e "$f" ] || continue
	children=$((children + 1))
	pid=${f##*.}
	head -1 "$f" | grep -q "\"event\":\"start\",\"pid\":$pid," && good=$((good + 1))
done
if [ "$children" -ge 20 ] && [ "$good" = "$children" ] && [ ! -s err1 ]; then
	ok "follow-fork:1: $children forked children started their own statistics"
else
	not_ok "follow-fork:1: $children children, $good with a start record of their pid"
	diag <err1
fi
rm -f nf.json*
LD_PRELOAD=$(pre "$shim") TIERMM_CONF=backend:none,stats:nf.json "$bindir/shim_forkexec" >/dev/null 2>&1
if [ -z "$(ls nf.json.* 2>/dev/null)" ]; then
	ok "follow-fork:0: children write nothing"
else
	not_ok "follow-fork:0: children wrote $(ls nf.json.*)"
fi

# follow-fork:1 children that exit() at once: each starts a statistics thread of its own and
# stops it in the shim's destructor. The first fork comes while the parent's thread may still be
# starting (its allocations hold locks of the sanitizer's allocator, which a fork copies held);
# the shim forks only while that thread is parked. Several runs: that start is the window.
good=0
for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
	rm -f fk.json*
	LD_PRELOAD=$(pre "$shim") TIERMM_CONF=backend:none,stats:fk.json,stats-interval:10ms,follow-fork:1 \
		"$bindir/shim_forkexec" forks 3 >out1 2>err1 </dev/null
	st=$?
	exits=0
	for f in fk.json.*; do
		[ -e "$f" ] && tail -1 "$f" | grep -q '"event":"exit"' && exits=$((exits + 1))
	done
	[ $st = 0 ] && [ $exits = 3 ] || break
	good=$((good + 1))
done
if [ $good = 20 ]; then
	ok "follow-fork:1: 20 runs of 3 forked children that exit(), each with its own exit record"
else
	not_ok "follow-fork:1: run $((good + 1)): status $st, $exits of 3 children wrote an exit record"
	diag <out1
	diag <err1
fi

# daemon(3): the runtime (here: the statistics) follows into the daemon, follow-fork or not; the
# old process stops its own first and writes its exit record. Several runs: the daemon once
# inherited a lock from the shim's starting thread and never exited. The daemon's output goes to
# files (it keeps its descriptors), so that one that hangs cannot hold ctest's pipe; it is
# killed after 20 s.
good=0
dm_fail=""
for i in 1 2 3 4 5 6 7 8 9 10; do
	rm -f dm.json* dm.pid
	LD_PRELOAD=$(pre "$shim") TIERMM_CONF=backend:none,stats:dm.json,stats-interval:50ms \
		"$bindir/shim_forkexec" daemon "$work/dm.pid" >out1 2>err1 </dev/null
	for t in $(seq 100); do
		[ -s dm.pid ] && break
		sleep 0.1
	done
	dpid=$(cat dm.pid 2>/dev/null)
	if [ -z "$dpid" ]; then
		dpid=$(pgrep -f "^$bindir/shim_forkexec daemon $work/dm.pid\$")
		kill -9 $dpid 2>/dev/null
		dm_fail="run $i: no pid file after 10 s (daemon '$dpid' killed)"
		break
	fi
	for t in $(seq 200); do
		kill -0 "$dpid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$dpid" 2>/dev/null; then
		kill -9 "$dpid"
		dm_fail="run $i: the daemon (pid $dpid) still ran after 20 s; killed"
		break
	fi
	if ! head -1 "dm.json.$dpid" 2>/dev/null | grep -q "\"event\":\"start\",\"pid\":$dpid," ||
		! tail -1 "dm.json.$dpid" | grep -q '"event":"exit"' ||
		! tail -1 dm.json | grep -q '"event":"exit"'; then
		dm_fail="run $i: pid $dpid, files $(ls dm.json* 2>/dev/null | tr '\n' ' ')"
		break
	fi
	good=$((good + 1))
done
if [ $good = 10 ]; then
	ok "daemon(): 10 daemons started their own statistics and wrote their exit records; so did the old processes"
else
	not_ok "daemon(): $dm_fail"
	diag <err1
fi

# tiermm stat finds the file of a process under the shim (TIERMM_CONF in its environment).
"$tiermm" run --backend=none --stats="$work/live-%p.json" --stats-interval=50ms --quiet -- sleep 3 &
pid=$!
sleep 0.5
json=$("$tiermm" stat "$pid" --json 2>&1)
text=$("$tiermm" stat "$pid" 2>&1)
if echo "$json" | grep -q "\"shim\":true" && echo "$json" | grep -q "\"stats_file\":\"$work/live-$pid.json\"" &&
	echo "$text" | grep -q "^runtime ($work/live-$pid.json, last record"; then
	ok "tiermm stat: finds live-%p.json of pid $pid"
else
	not_ok "tiermm stat: $json"
	echo "$text" | diag
fi
kill "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
json=$("$tiermm" stat $$ --json)
if echo "$json" | grep -q '"shim":false' && echo "$json" | grep -q '"runtime":null'; then
	ok "tiermm stat: a process without the shim"
else
	not_ok "tiermm stat: $json"
fi
# tiermm stat shows the runtime's pace (no runtime runs here: a record of a live process).
sleep 30 &
pid=$!
start=$(awk '{ print $22 }' "/proc/$pid/stat")
printf '{"time":%s,"t":60.0,"event":"tick","pid":%d,"start":%s,"state":"running","backend":"scan","epochs":120,"backoff":16,"backoff_epochs":6,"placement":"first-touch","pt":"none"}\n' \
	"$(date +%s)" "$pid" "$start" >pace.json
text=$("$tiermm" stat "$pid" --stats pace.json 2>&1)
json=$("$tiermm" stat "$pid" --stats pace.json --json 2>&1)
if echo "$text" | grep -q "^  backend scan, state running, 120 epochs, pace 1/16 (6 slow epochs), placement first-touch, pt none$" &&
	echo "$json" | grep -q '"backoff":16,"backoff_epochs":6,'; then
	ok "tiermm stat: the pace of the runtime (backoff, backoff_epochs)"
else
	not_ok "tiermm stat: pace: $json"
	echo "$text" | diag
fi
kill "$pid" 2>/dev/null
wait "$pid" 2>/dev/null

# tiermm run: exit statuses.
"$tiermm" run --backend=none -q -- sh -c 'kill -SEGV $$' 2>/dev/null
st=$?
sh -c 'kill -SEGV $$' 2>/dev/null
st0=$?
"$tiermm" run --backend=none -- sh -c 'kill -SEGV $$' 2>err1
st1=$?
if [ "$st" = "$st0" ] && [ "$st1" = "$st0" ] && grep -q "killed by signal 11" err1; then
	ok "tiermm run: a command killed by SIGSEGV gives the same status ($st0), with and without --quiet"
else
	not_ok "tiermm run: SIGSEGV statuses $st0 plain, $st quiet, $st1 with summary"
fi
"$tiermm" run -- /nonexistent/cmd 2>err1
st=$?
"$tiermm" run -- /etc/passwd 2>err2
st2=$?
"$tiermm" run --bogus -- true 2>/dev/null
st3=$?
# --backoff: 1 to 1024 into TIERMM_CONF; anything else is a usage error.
got=$("$tiermm" run --backend=none --backoff=16 -q -- sh -c 'echo "$TIERMM_CONF"' 2>&1)
bad_ok=1
for bad in 0 1025 x 1.5 -1 ""; do
	err=$("$tiermm" run --backoff="$bad" -- true 2>&1)
	[ $? = 2 ] && [ "$err" = "tiermm run: --backoff=$bad: not a whole number from 1 to 1024" ] ||
		{ bad_ok=0; echo "$err" | diag; }
done
if echo "$got" | grep -q '^backend:none,backoff:16' && [ $bad_ok = 1 ]; then
	ok "tiermm run --backoff: 16 becomes backoff:16; 0, 1025, x, 1.5, -1 and '' are refused (status 2)"
else
	not_ok "tiermm run --backoff: TIERMM_CONF '$got'"
fi
"$tiermm" run --pgtablerepl=all -- true 2>err3
st4=$?
# --pgtablerepl on a kernel without tiermm's replication patches: 125 (tiermm
# refused), saying so, and the command did not run.
if [ -e /proc/sys/kernel/pgtable_replication ]; then
	st4=125
	echo "pgtablerepl=all: lacks tiermm's page-table replication patches (skipped)" >err3
fi
if [ $st = 127 ] && [ $st2 = 126 ] && [ $st3 = 2 ] && [ $st4 = 125 ] &&
	grep -q "pgtablerepl=all: .*lacks tiermm's page-table replication patches" err3; then
	ok "tiermm run: not found 127, not executable 126, bad option 2, --pgtablerepl 125 ($(cut -c1-80 err3)...)"
else
	not_ok "tiermm run: statuses $st $st2 $st3 $st4"
	cat err1 err2 err3 | diag
fi

echo "1..$n"
[ $failed = 0 ] || { echo "# $failed of $n failed"; exit 1; }
