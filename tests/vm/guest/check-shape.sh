#!/bin/sh
# tests/vm/guest/check-shape.sh PRESET - TAP checks that the guest sees exactly the
# NUMA / memory-tier shape that tests/vm/presets/PRESET.conf describes: CPUs, nodes, CPUs
# and memory per node, SLIT distances, HMAT access0 attributes, memory tiers, and hwloc's
# node count. Exit 0 only if everything matches.
# shellcheck source=tap.sh
. /tests/tap.sh

preset=${1:-${TIERMM_VM_PRESET:-}}
[ -n "$preset" ] || bail_out "usage: check-shape.sh PRESET"
conf=/tests/presets/$preset.conf
[ -f "$conf" ] || bail_out "no preset file $conf"
# shellcheck disable=SC1090
. "$conf"
diag "preset $preset: $DESCRIPTION"

SYS_NODE=/sys/devices/system/node
SYS_TIERS=/sys/devices/virtual/memory_tiering

# words STRING: one word per line
words() {
	echo "$1" | awk '{ for (i = 1; i <= NF; i++) print $i }'
}

# to_list "N ...": numbers -> Linux list format ("0-2,5")
to_list() {
	words "$1" | sort -n | awk '
		NR == 1 { s = $1; p = $1; next }
		$1 == p + 1 { p = $1; next }
		{ out = out sep (s == p ? s : s "-" p); sep = ","; s = $1; p = $1 }
		END { if (NR) print out sep (s == p ? s : s "-" p) }'
}

# getv NAME: value of the variable NAME (NODE0_CPUS ...)
getv() {
	eval "printf '%s' \"\${$1:-}\""
}

# squeeze STRING: collapse white space
squeeze() {
	echo "$1" | tr -s ' \t\n' '   ' | sed 's/^ //; s/ $//'
}

# names GLOB...: the base names of the existing files, space-separated
names() {
	for n in "$@"; do
		[ -e "$n" ] && printf '%s ' "${n##*/}"
	done | sed 's/ $//'
}

# sorted "WORD ...": the words sorted numerically, space-separated
sorted() {
	words "$1" | sort -n | tr '\n' ' ' | sed 's/ $//'
}

ncpu=$((SOCKETS * CORES * THREADS))
check_eq "online CPUs" "$(to_list "$(seq 0 $((ncpu - 1)))")" "$(cat /sys/devices/system/cpu/online)"

all_nodes=$(to_list "$(seq 0 $((NODES - 1)))")
check_eq "online nodes" "$all_nodes" "$(cat $SYS_NODE/online)"
check_eq "number of node directories" "$NODES" "$(names $SYS_NODE/node[0-9]* | wc -w)"

cpu_nodes=
i=0
while [ "$i" -lt "$NODES" ]; do
	[ -n "$(getv NODE${i}_CPUS)" ] && cpu_nodes="$cpu_nodes $i"
	i=$((i + 1))
done
check_eq "nodes with CPUs (has_cpu)" "$(to_list "$cpu_nodes")" "$(cat $SYS_NODE/has_cpu)"
check_eq "nodes with memory (has_memory)" "$all_nodes" "$(cat $SYS_NODE/has_memory)"

tol=${MEM_TOLERANCE_MIB:-128}
i=0
while [ "$i" -lt "$NODES" ]; do
	d=$SYS_NODE/node$i
	check_eq "node $i CPUs" "$(getv NODE${i}_CPUS)" "$(cat $d/cpulist)"

	want_mib=$(getv NODE${i}_MEM_MIB)
	kb=$(awk '/MemTotal/ { print $4 }' $d/meminfo)
	got_mib=$((kb / 1024))
	if [ "$got_mib" -le "$want_mib" ] && [ "$got_mib" -ge $((want_mib - tol)) ]; then
		ok "node $i memory: MemTotal $got_mib MiB of $want_mib MiB (tolerance $tol MiB)"
	else
		not_ok "node $i memory: MemTotal $got_mib MiB, want $((want_mib - tol))..$want_mib MiB"
	fi

	check_eq "node $i distances" "$(squeeze "$(getv DIST$i)")" "$(squeeze "$(cat $d/distance)")"

	a=$d/access0/initiators
	if [ "$HMAT" = 1 ]; then
		# access0 values are those from the node's attached initiator: itself if it has
		# CPUs, NODEn_INITIATOR otherwise.
		if [ -n "$(getv NODE${i}_CPUS)" ]; then
			ini=$i
		else
			ini=$(getv NODE${i}_INITIATOR)
		fi
		entry=
		for e in $HMAT_LB; do
			case $e in "$ini:$i:"*) entry=$e ;; esac
		done
		if [ -z "$entry" ]; then
			not_ok "node $i HMAT: preset has no HMAT_LB entry $ini:$i"
		else
			lat=$(echo "$entry" | cut -d: -f3)
			bw=$(echo "$entry" | cut -d: -f4)
			check_eq "node $i HMAT access0 initiators" "node$ini" \
				"$(names "$a"/node[0-9]*)"
			check_eq "node $i HMAT read_latency (ns)" "$lat" "$(cat $a/read_latency 2>&1)"
			check_eq "node $i HMAT write_latency (ns)" "$lat" "$(cat $a/write_latency 2>&1)"
			check_eq "node $i HMAT read_bandwidth (MB/s)" "$bw" "$(cat $a/read_bandwidth 2>&1)"
			check_eq "node $i HMAT write_bandwidth (MB/s)" "$bw" "$(cat $a/write_bandwidth 2>&1)"
		fi
	else
		if [ -e "$d/access0" ]; then
			not_ok "node $i has no HMAT attributes (no HMAT in this preset)"
		else
			ok "node $i has no HMAT attributes (no HMAT in this preset)"
		fi
	fi
	i=$((i + 1))
done

got_tiers=
for t in "$SYS_TIERS"/memory_tier*; do
	[ -d "$t" ] || continue
	got_tiers="$got_tiers ${t##*memory_tier}:$(cat "$t/nodelist")"
done
check_eq "memory tiers (memory_tierID:nodes)" "$(sorted "$EXPECT_TIERS")" "$(sorted "$got_tiers")"

# hwloc (lstopo from the host, packed by the rig) must agree on the node count.
hw=$(lstopo-no-graphics --only numanode 2>/dev/null | grep -c '^NUMANode')
check_eq "hwloc sees $NODES NUMA nodes" "$NODES" "$hw"

tap_done
