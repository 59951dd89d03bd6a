#!/usr/bin/env bash
# Mesh convergence benchmark of tarantula and Tarantool 2.6 (issue 7): three servers of one
# kind in a full mesh on this machine (tools/bench/mesh.lua), each writing RATE rows per
# second (a transaction every 10 ms) into its own key range for SECONDS; then the time
# from the end of the last load until all three vclocks agree, polled every millisecond
# from server 1. Each kind runs three times, alternating; the table shows the best of each.
#   tools/bench/mesh.sh            (RATE=10000 SECONDS=5 RUNS=3 by default)
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --quiet
ours=$PWD/target/release/tarantula
theirs=$(command -v tarantool)
script=$PWD/tools/bench/mesh.lua
port=3340
rate=${RATE:-10000}
seconds=${SECONDS_OF_LOAD:-5}
runs=${RUNS:-3}
tmp=$(mktemp -d)
echo "work directory $tmp" >&2
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$tmp"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# wait_for FILE PATTERN COUNT: until FILE has COUNT lines matching PATTERN (60 s at most)
wait_for() {
    for _ in $(seq 1 6000); do
        [[ $(grep -c "$2" "$1" 2>/dev/null || true) -ge $3 ]] && return 0
        sleep 0.01
    done
    echo "timed out waiting for $2 in $1" >&2
    return 1
}

# run KIND: one mesh of that kind; prints the seconds to converge
run() {
    local binary=${!1} dir=$tmp/$1 pids=()
    for i in 1 2 3; do mkdir -p "$dir/$i"; done
    : >"$dir/ready"
    for i in 1 2 3; do
        (cd "$dir/$i" && exec "$binary" "$script" $i $port "$rate" "$seconds") \
            > >(tee -a "$dir/ready" >"$dir/$i.out") 2>&1 &
        pids+=($!)
        # tarantula: the first bootstraps and creates the user, then the others join one
        # at a time (a replica that answers a peer's AUTH while its own JOIN is still
        # loading makes that peer's applier stop for good); Tarantool 2.6: a mesh started
        # at once bootstraps by itself.
        if [[ $1 == ours ]]; then wait_for "$dir/$i.out" STARTED 1 || exit 1; fi
    done
    wait_for "$dir/ready" READY 3 || exit 1
    touch "$dir/go"
    wait_for "$dir/1.out" CONVERGED 1 || exit 1
    kill "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
    # the seconds, and the rows all three hold
    sed -n 's/^CONVERGED //p' "$dir/1.out"
}

declare -A best
for round in $(seq 1 "$runs"); do
    for kind in ours theirs; do
        read -r result rows <<<"$(run $kind)" || true
        [[ -n $result ]] || { echo "run $round $kind failed" >&2; exit 1; }
        rm -rf "${tmp:?}/$kind"
        echo "run $round $kind: $result s, vclock sum $rows" >&2
        if [[ -z ${best[$kind]:-} ]] || (($(echo "$result < ${best[$kind]}" | bc -l))); then
            best[$kind]=$result
        fi
    done
done
ms() { printf '%.1f' "$(echo "$1 * 1000" | bc -l)"; }
echo "| measure | tarantula | Tarantool 2.6 | ratio (higher: tarantula better) |"
echo "| --- | --- | --- | --- |"
printf '| mesh of 3, %d rows/s on each for %d s: vclocks agree after the load, ms | %s | %s | %.2f |\n' \
    "$rate" "$seconds" "$(ms "${best[ours]}")" "$(ms "${best[theirs]}")" \
    "$(echo "${best[theirs]} / ${best[ours]}" | bc -l)"
