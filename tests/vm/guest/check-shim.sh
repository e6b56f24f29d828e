#!/bin/sh
# tests/vm/guest/check-shim.sh [MIB [PASSES]] - TAP checks of libtiermm-preload.so and
# `tiermm run` / `tiermm stat` in the tiered guest (DRAM nodes 0-1 = tier 0, CPU-less slow
# node 2 = tier 1), where the tiering runtime can run (tiermm.ko's accessed-bit scanner, or
# DAMON): a workload with a hot set (shim_workload, MIB MiB, default 64) started on the slow
# tier with a small fast-tier budget runs with the same output and exit status as without
# the shim, and its statistics show the runtime ran (epochs, a named backend, the exit
# record); `tiermm stat` reads a live one; unmodified dynamic programs (the stress and
# fork/exec test programs, lstopo, tiermm itself) keep their output with the runtime
# running in them, with follow-fork too; strict mode; the page-table policy through the
# module; stress-ng's vm and mmap stressors with --verify when stress-ng was packed.
# shellcheck source=tap.sh
. /tests/tap.sh

mib=${1:-64}
passes=${2:-80}
budget=$((mib / 4))M
work=/tmp/shim
mkdir -p $work
cd $work || bail_out "no $work"

for p in tiermm shim_workload shim_stress shim_forkexec; do
	command -v $p >/dev/null || bail_out "$p is not in the guest (build the project)"
done
[ -e /usr/lib/libtiermm-preload.so ] || bail_out "/usr/lib/libtiermm-preload.so is missing"
nodes=$(cat /sys/devices/system/node/has_memory 2>/dev/null)
[ "$nodes" = "0-2" ] || bail_out "needs memory nodes 0-2 (the tiered preset), found '$nodes'"
if [ -d /sys/module/tiermm ]; then
	backend=scan
elif [ -d /sys/kernel/mm/damon/admin ]; then
	backend=damon
else
	bail_out "no hotness backend: neither tiermm.ko nor DAMON"
fi
# The kernel's own NUMA balancing and demotion would move pages behind the runtime's back.
[ -w /proc/sys/kernel/numa_balancing ] && echo 0 >/proc/sys/kernel/numa_balancing
[ -w /sys/kernel/mm/numa/demotion_enabled ] && echo false >/sys/kernel/mm/numa/demotion_enabled
diag "backend $backend; CPUs $(nproc); $(tiermm version)"

# num KEY FILE: KEY's number in the last JSON record of FILE
num() {
	tail -1 "$2" | sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p"
}
str() {
	tail -1 "$2" | sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p"
}

# same NAME: plain.out/plain.st against shim.out/shim.st
same() {
	if [ "$(cat plain.st)" = "$(cat shim.st)" ] && cmp -s plain.out shim.out; then
		ok "$1: same output ($(wc -c <plain.out) bytes) and status ($(cat plain.st))"
	else
		not_ok "$1: status $(cat plain.st) without, $(cat shim.st) with the shim"
		diff plain.out shim.out | head -10 | sed 's/^/#   /'
		head -5 shim.err | sed 's/^/#   /'
	fi
}

# 1. The workload: started on the slow tier, a quarter of it allowed on the fast tier.
t0=$(date +%s)
shim_workload "$mib" "$passes" >plain.out 2>plain.err
echo $? >plain.st
t1=$(date +%s)
diag "shim_workload $mib $passes alone: $((t1 - t0)) s"
# With half a CPU as the runtime's quota, not 5% (under TCG every instruction costs 10-50
# times what it does on hardware; check-runtime.sh runs without a quota): through
# TIERMM_CONF, which tiermm run keeps.
TIERMM_CONF=cpu-quota:50% tiermm run --fast-budget=$budget --tier=1 --backend=$backend \
	--interval=500ms --stats=$work/w.json --stats-interval=500ms -- \
	shim_workload "$mib" "$passes" >shim.out 2>shim.err
echo $? >shim.st
t2=$(date +%s)
diag "under tiermm run: $((t2 - t1)) s"
same "shim_workload under tiermm run --fast-budget=$budget --tier=1"
sed 's/^/#   /' shim.err
epochs=$(num epochs w.json)
if [ "$(str event w.json)" = exit ] && [ "$(str backend w.json)" = $backend ] &&
	[ "${epochs%.*}" -gt 0 ] 2>/dev/null; then
	ok "statistics: the runtime ran ($epochs epochs, backend $backend, state $(str state w.json), exit record)"
else
	not_ok "statistics: last record $(tail -1 w.json)"
fi
if grep -q "pt local   [0-9]*% of [0-9]* leaf page tables" shim.err; then
	ok "summary: page-table locality at exit ($(grep "pt local" shim.err | sed 's/^ *//'))"
else
	not_ok "summary: page-table locality at exit"
fi
if grep -q "runtime    backend $backend" shim.err && grep -q "resident per tier over time" shim.err; then
	ok "summary: backend, moves, CPU and residency per tier on stderr"
else
	not_ok "summary on stderr"
fi
diag "promoted $(num promoted_pages w.json) pages, demoted $(num demoted_pages w.json); fast tier $(num fast_bytes w.json) of $(num resident_bytes w.json) bytes; budget $(num budget_bytes w.json)"
# The workload's mapping was seen, and started on the slow tier (it unmaps it before exit:
# the largest values over the records).
max() {
	sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p" "$2" | sort -n | tail -1
}
if [ "$(max rss_bytes w.json)" -gt $((mib << 20)) ] 2>/dev/null &&
	[ "$(max tier1_bytes w.json)" -gt $(((mib / 2) << 20)) ] 2>/dev/null &&
	[ "$(max mmap_anon_bytes w.json)" -ge $((mib << 20)) ] 2>/dev/null; then
	ok "statistics: up to $(max rss_bytes w.json) bytes resident, $(max tier1_bytes w.json) on tier 1 (--tier=1), $(max mmap_anon_bytes w.json) bytes of mappings seen"
else
	not_ok "statistics: residency: rss $(max rss_bytes w.json), tier 1 $(max tier1_bytes w.json), mappings $(max mmap_anon_bytes w.json)"
fi

# 2. tiermm stat on a live process under the shim: one that runs far longer than the
# check (it is killed after it), stat'ed once its statistics file has two records.
tiermm run --fast-budget=$budget --backend=$backend --stats=$work/live-%p.json \
	--stats-interval=300ms --quiet -- shim_workload "$mib" $((passes * 100)) >/dev/null 2>&1 &
pid=$!
i=0
while [ $i -lt 60 ] && [ "$(wc -l <"$work/live-$pid.json" 2>/dev/null || echo 0)" -lt 2 ]; do
	sleep 0.5
	i=$((i + 1))
done
tiermm stat $pid >stat.txt 2>&1
tiermm stat $pid --json >stat.json 2>&1
if grep -q "^runtime ($work/live-$pid.json" stat.txt && grep -q "backend $backend, state running" stat.txt &&
	grep -q '"shim":true' stat.json && grep -q "\"tier\":1,\"nodes\":\"2\"" stat.json; then
	ok "tiermm stat: pid $pid under the shim, runtime running"
else
	not_ok "tiermm stat"
	sed 's/^/#   /' stat.txt stat.json
fi
sed 's/^/#   /' stat.txt
kill $pid 2>/dev/null
wait $pid 2>/dev/null

# 3. Unmodified programs with the runtime running inside them.
conf_run="--fast-budget=$budget --backend=$backend --stats-interval=200ms"
for cmd in "shim_stress 4 1000" "shim_forkexec" "lstopo-no-graphics --of console" \
	"tiermm topo --json"; do
	# shellcheck disable=SC2086
	$cmd >plain.out 2>plain.err
	echo $? >plain.st
	# shellcheck disable=SC2086
	tiermm run $conf_run --stats=$work/p.json -- $cmd >shim.out 2>shim.err
	echo $? >shim.st
	same "$cmd"
	if [ "$(str backend p.json)" = $backend ]; then
		ok "$cmd: the runtime ran ($(num epochs p.json) epochs)"
	else
		not_ok "$cmd: no runtime: $(head -2 shim.err)"
	fi
done
# follow-fork: every forked child starts a runtime of its own.
rm -f ff.json*
shim_forkexec >plain.out 2>&1
echo $? >plain.st
# shellcheck disable=SC2086
tiermm run $conf_run --follow-fork --stats=$work/ff.json -- shim_forkexec >shim.out 2>shim.err
echo $? >shim.st
same "shim_forkexec with --follow-fork"
children=$(ls ff.json.* 2>/dev/null | wc -l)
running=$(grep -l "\"backend\":\"$backend\"" ff.json.* 2>/dev/null | wc -l)
if [ "$children" -ge 20 ] && [ "$running" = "$children" ]; then
	ok "follow-fork: $children children ran a runtime of their own"
else
	not_ok "follow-fork: $children children, $running with a runtime"
	head -5 shim.err | sed 's/^/#   /'
fi

# 4. Strict mode: a budget larger than the fast tier is refused, before main().
tiermm run --fast-budget=1T --strict -- shim_workload 1 1 >shim.out 2>shim.err
st=$?
if [ $st = 127 ] && [ ! -s shim.out ] && grep -q "exiting with status 127" shim.err; then
	ok "strict: a 1 TiB budget: status 127, $(head -c 120 shim.err)"
else
	not_ok "strict: status $st"
	sed 's/^/#   /' shim.err
fi
tiermm run --fast-budget=1T -- shim_workload 1 1 >shim.out 2>shim.err
st=$?
if [ $st = 0 ] && grep -q checksum shim.out && [ "$(grep -c '^tiermm-preload:' shim.err)" = 1 ]; then
	ok "not strict: the same budget: one message, the program runs"
else
	not_ok "not strict: status $st"
fi

# 5. Page tables next to their data, through the module.
if [ -c /dev/tiermm ]; then
	shim_workload 16 4 >plain.out 2>&1
	echo $? >plain.st
	tiermm run --backend=$backend --pt=follow --stats=$work/pt.json --stats-interval=200ms \
		-- shim_workload 16 4 >shim.out 2>shim.err
	echo $? >shim.st
	same "shim_workload with --pt=follow"
	if [ "$(str pt pt.json)" = follow ] && [ -z "$(str error pt.json)" ]; then
		ok "pt:follow: $(num pt_moved pt.json) page-table pages moved, no error"
	else
		not_ok "pt:follow: $(tail -1 pt.json)"
	fi
else
	ok "pt:follow # SKIP /dev/tiermm is missing"
fi

# 6. stress-ng's memory stressors, verifying their data, under the runtime.
if command -v stress-ng >/dev/null; then
	for s in "--vm 2 --vm-bytes 32M" "--mmap 2 --mmap-bytes 32M"; do
		# shellcheck disable=SC2086
		tiermm run $conf_run --stats=$work/sng.json -- stress-ng $s --verify --timeout 10s \
			--metrics-brief >shim.out 2>shim.err
		st=$?
		if [ $st = 0 ] && ! grep -q "failed: [1-9]" shim.out shim.err &&
			[ "$(str backend sng.json)" = $backend ]; then
			ok "stress-ng $s --verify under the runtime: passed ($(num epochs sng.json) epochs, $(num promoted_pages sng.json) pages promoted)"
		else
			not_ok "stress-ng $s --verify: status $st"
			tail -5 shim.err | sed 's/^/#   /'
		fi
	done
else
	ok "stress-ng # SKIP not packed (install it on the host: apt-get install stress-ng)"
fi

tap_done
