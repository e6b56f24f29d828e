#!/bin/sh
# tests/vm/guest/check-caps.sh PRESET - TAP checks that `tiermm caps` reports exactly the
# preset's shape (tests/vm/presets/PRESET.conf): every node with its CPUs, the kernel
# memory tier of each node and its rank, the probes that must work in the guest, and
# tiermm.ko with its API version.
# shellcheck source=tap.sh
. /tests/tap.sh

preset=${1:-${TIERMM_VM_PRESET:-}}
[ -n "$preset" ] || bail_out "usage: check-caps.sh PRESET"
conf=/tests/presets/$preset.conf
[ -f "$conf" ] || bail_out "no preset file $conf"
# shellcheck disable=SC1090
. "$conf"

# check_match DESCRIPTION NEEDLE HAYSTACK: ok if HAYSTACK contains NEEDLE
check_match() {
	case $3 in
	*"$2"*) ok "$1" ;;
	*) not_ok "$1"; diag "  expected to contain: '$2'" "  got: '$3'" ;;
	esac
}

json=$(tiermm caps --json) || bail_out "tiermm caps --json failed"
text=$(tiermm caps) || bail_out "tiermm caps failed"
diag "$text"

# node_field NODE KEY: the raw JSON value of KEY in the node object NODE
node_field() {
	echo "$json" | sed 's/"nodes":\[/\n/; s/},{/}\n{/g' | grep "^{\"node\":$1," |
		sed -n "s/.*\"$2\":\(\"[^\"]*\"\|[^,}]*\).*/\1/p"
}
feature_state() {
	echo "$json" | sed -n "s/.*\"$1\":{\"state\":\"\([a-z]*\)\".*/\1/p"
}

nodes=$(echo "$json" | grep -o '{"node":[0-9]*,' | wc -l)
check_eq "tiermm caps sees $NODES nodes" "$NODES" "$nodes"
i=0
while [ "$i" -lt "$NODES" ]; do
	cpus=$(eval "printf '%s' \"\${NODE${i}_CPUS:-}\"")
	check_eq "node $i CPUs" "\"$cpus\"" "$(node_field $i cpus)"
	i=$((i + 1))
done

# EXPECT_TIERS="4:0-1 67:2": kernel tier id and its nodes, fastest first.
rank=0
for t in ${EXPECT_TIERS:-}; do
	id=${t%%:*}
	list=${t#*:}
	for n in $(echo "$list" | tr ',' ' '); do
		case $n in
		*-*) seq_nodes=$(seq "${n%-*}" "${n#*-}") ;;
		*) seq_nodes=$n ;;
		esac
		for node in $seq_nodes; do
			check_eq "node $node in kernel memory_tier$id" "$id" "$(node_field "$node" memory_tier)"
			check_eq "node $node tier rank $rank" "$rank" "$(node_field "$node" tier_rank)"
		done
	done
	rank=$((rank + 1))
done
if [ -n "${EXPECT_TIERS:-}" ]; then
	ntiers=$(echo "$EXPECT_TIERS" | wc -w)
	check_match "memory_tiers reports $ntiers tiers" "$ntiers tier" "$(feature_state memory_tiers) $(echo "$text" | grep '^memory_tiers')"
fi

check_eq "numa probe" present "$(feature_state numa)"
check_eq "move_pages probe" present "$(feature_state move_pages)"
check_eq "MPOL_PREFERRED_MANY probe" present "$(feature_state mpol_preferred_many)"
check_eq "weighted interleave probe" present "$(feature_state weighted_interleave)"
check_eq "pt_replication absent on a stock kernel" absent "$(feature_state pt_replication)"
if [ "${HMAT:-0}" = 1 ]; then
	check_eq "hmat probe" present "$(feature_state hmat)"
fi
check_eq "tiermm.ko reported present" present "$(feature_state module)"
api=$(cat /sys/module/tiermm/parameters/api_version 2>/dev/null)
check_match "tiermm.ko API version $api as the module says" "\"module\":{\"api_version\":$api," "$json"
check_match "human output names the module's API version" "API version $api" "$(echo "$text" | grep '^module')"
tap_done
