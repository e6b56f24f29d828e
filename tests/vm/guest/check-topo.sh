#!/bin/sh
# tests/vm/guest/check-topo.sh PRESET - TAP checks of `tiermm topo` in the guest against
# the preset (tests/vm/presets/PRESET.conf): nodes and their CPUs, the tier of every node
# (slow CPU-less nodes last), the preset's HMAT values, all probes run and give a full
# matrix of positive values, CPU groups cover every CPU once, and the XML export loads
# back to exactly the same topology without probing again.
# shellcheck source=tap.sh
. /tests/tap.sh

preset=${1:-${TIERMM_VM_PRESET:-}}
budget=${2:-30}
[ -n "$preset" ] || bail_out "usage: check-topo.sh PRESET [BUDGET]"
conf=/tests/presets/$preset.conf
[ -f "$conf" ] || bail_out "no preset file $conf"
# shellcheck disable=SC1090
. "$conf"

check_match() {
	case $3 in
	*"$2"*) ok "$1" ;;
	*) not_ok "$1"; diag "  expected to contain: '$2'" "  got: '$3'" ;;
	esac
}

start=$(date +%s)
tiermm topo --json --probe --budget "$budget" --xml /tmp/topo.xml >/tmp/live.json ||
	bail_out "tiermm topo --probe failed"
diag "probes took $(($(date +%s) - start)) s (budget $budget s; TCG wall time, not hardware)"
tiermm topo --from /tmp/topo.xml --check-machine --json >/tmp/cache.json ||
	bail_out "tiermm topo --from failed"
tiermm topo --from /tmp/topo.xml | while IFS= read -r l; do diag "$l"; done
live=$(cat /tmp/live.json)

# Round trip: identical apart from where it came from.
a=$(sed 's/"origin":"[^"]*",//' /tmp/live.json)
b=$(sed 's/"origin":"[^"]*",//' /tmp/cache.json)
check_eq "XML export -> import is lossless" "$a" "$b"
check_match "the cache says where it came from" '"origin":"xml /tmp/topo.xml (tiermm cache' "$(cat /tmp/cache.json)"

# hwloc's own tools read the measurements from the exported XML.
attrs=$(lstopo-no-graphics -i /tmp/topo.xml --memattrs 2>&1)
for a in TiermmLatency TiermmReadBandwidth TiermmWriteBandwidth; do
	check_match "lstopo --memattrs shows $a" "name \`$a'" "$attrs"
done

# Nodes: hwloc lists nodes with memory; the preset gives every node memory.
nodes=$(echo "$live" | grep -o '{"node":[0-9]*,' | wc -l)
check_eq "$NODES nodes" "$NODES" "$nodes"
node_obj() { echo "$live" | sed 's/},{/}\n{/g' | grep "{\"node\":$1,\"kind\""; }
i=0
while [ "$i" -lt "$NODES" ]; do
	cpus=$(eval "printf '%s' \"\${NODE${i}_CPUS:-}\"")
	check_match "node $i CPUs '$cpus'" "\"cpus\":\"$cpus\"" "$(node_obj $i)"
	# Capacity: the preset's size less what the kernel keeps (tolerance
	# from the preset, as check-shape.sh uses).
	mib=$(eval "printf '%s' \"\${NODE${i}_MEM_MIB:-0}\"")
	cap=$(node_obj $i | sed -n 's/.*"capacity":\([0-9]*\).*/\1/p')
	cap_mib=$((cap / 1048576))
	if [ "$cap_mib" -le "$mib" ] && [ "$cap_mib" -ge $((mib - ${MEM_TOLERANCE_MIB:-128})) ]; then
		ok "node $i capacity $cap_mib MiB of $mib MiB"
	else
		not_ok "node $i capacity $cap_mib MiB, expected $mib MiB less at most ${MEM_TOLERANCE_MIB:-128}"
	fi
	i=$((i + 1))
done

# Tiers: EXPECT_TIERS lists kernel tiers fastest first; tiermm ranks by the kernel.
rank=0
for t in ${EXPECT_TIERS:-}; do
	for n in $(echo "${t#*:}" | tr ',' ' '); do
		case $n in *-*) list=$(seq "${n%-*}" "${n#*-}") ;; *) list=$n ;; esac
		for node in $list; do
			check_match "node $node in tier $rank" "\"tier\":$rank}" "$(node_obj "$node")"
		done
	done
	rank=$((rank + 1))
done
[ -n "${EXPECT_TIERS:-}" ] && check_match "tiers ranked by the kernel" '"source":"kernel"' "$live"

# matrix NAME: the rows of metric NAME, one per line
matrix() {
	echo "$live" | sed -n "s/.*\"$1\":\[\(\[[^]]*\]\(,\[[^]]*\]\)*\)\].*/\1/p" |
		sed 's/\],\[/\n/g; s/\[//g; s/\]//g'
}
# Every initiator node (with CPUs) has a positive value for every node.
for m in latency_ns read_bandwidth_mbps write_bandwidth_mbps; do
	rows=$(matrix $m)
	i=0
	bad=""
	while [ "$i" -lt "$NODES" ]; do
		cpus=$(eval "printf '%s' \"\${NODE${i}_CPUS:-}\"")
		row=$(echo "$rows" | sed -n "$((i + 1))p")
		if [ -n "$cpus" ]; then
			for v in $(echo "$row" | tr ',' ' '); do
				case $v in null | 0 | -*) bad="$bad node$i:$v" ;; esac
			done
			[ "$(echo "$row" | tr ',' ' ' | wc -w)" -eq "$NODES" ] || bad="$bad node$i:short"
		fi
		i=$((i + 1))
	done
	check_eq "measured $m: full matrix of positive values" "" "$bad"
done

# The preset's HMAT values, as firmware metrics from the initiator's node.
for e in ${HMAT_LB:-}; do
	ini=$(echo "$e" | cut -d: -f1)
	tgt=$(echo "$e" | cut -d: -f2)
	lat=$(echo "$e" | cut -d: -f3)
	bw=$(echo "$e" | cut -d: -f4)
	rowl=$(matrix fw_read_latency_ns | sed -n "$((ini + 1))p" | cut -d, -f$((tgt + 1)))
	rowb=$(matrix fw_read_bandwidth_mbps | sed -n "$((ini + 1))p" | cut -d, -f$((tgt + 1)))
	# Linux exports HMAT only for the best (local) initiator of each node.
	if [ "$rowl" != null ]; then
		check_eq "HMAT read latency node $ini -> node $tgt" "$lat" "$rowl"
		check_eq "HMAT read bandwidth node $ini -> node $tgt" "$bw" "$rowb"
	fi
done

# CPU groups: every online CPU in exactly one group.
online=$(cat /sys/devices/system/cpu/online)
expand() { for r in $(echo "$1" | tr ',' ' '); do case $r in *-*) seq "${r%-*}" "${r#*-}" ;; *) echo "$r" ;; esac; done; }
all=$(expand "$(echo "$live" | sed -n 's/.*"groups":\[\([^]]*\)\].*/\1/p' | tr -d '"')" | sort -n | tr '\n' ' ')
check_eq "CPU groups cover every online CPU once" "$(expand "$online" | sort -n | tr '\n' ' ')" "$all"
check_match "CPU-group result says whether it was validated" '"validated":' "$live"
tap_done
