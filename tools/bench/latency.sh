#!/usr/bin/env bash
# Latency at one request in flight, tarantula beside Tarantool 2.6, over several rounds.
#   tools/bench/latency.sh [-r ROUNDS] [WAL_MODE]
# compare.sh reports the p99 of one run per figure, which this shared VM moves by tens of
# microseconds from run to run; this repeats the depth-1 figures instead. Each round starts
# each server on a fresh directory (tools/bench/iproto_server.lua over 100,000 prepared
# keys; which server goes first alternates by round) and runs every kind (ping, select by
# primary key, replace, call, call16) at 1 and 4 connections, 1 request in flight each:
# 100,000 requests after 10,000 unmeasured. Prints a markdown row per figure: the medians
# over the rounds of each server's p50 and p99 (microseconds), and in how many rounds
# tarantula's p99 was the lower. Defaults: 4 rounds, wal_mode none.
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=4
while getopts r: opt; do
    case $opt in
    r) rounds=$OPTARG ;;
    *) exit 2 ;;
    esac
done
shift $((OPTIND - 1))
mode=${1:-none}
cargo build --release --quiet --bin tarantula --bin iproto_bench
bench=$PWD/target/release/iproto_bench server=$PWD/tools/bench/iproto_server.lua
# shellcheck source=tools/bench/server.sh
source tools/bench/server.sh
ours=$PWD/target/release/tarantula theirs=$(command -v tarantool)
port=3317 out=$(mktemp)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -f "$out"' EXIT

# One round of one server: NAME BINARY.
one_round() {
    local name=$1 binary=$2 kind options conns line
    bench_server_start "$binary" $port "$mode"
    for kind in ping select replace call call16; do
        options=(--kind "$kind")
        [[ $kind == call16 ]] && options=(--kind call --call16)
        for conns in 1 4; do
            line=$("$bench" $port "${options[@]}" -c $conns -d 1 -n 100000 --warmup 10000 \
                --keys 100000)
            echo "$kind $conns $name $(grep -oE 'p50_us=[0-9]+' <<<"$line" | cut -d= -f2)" \
                "$(grep -oE 'p99_us=[0-9]+' <<<"$line" | cut -d= -f2)" >>"$out"
        done
    done
    bench_server_stop
}

for round in $(seq "$rounds"); do
    if (( round % 2 == 1 )); then
        one_round tarantula "$ours"; one_round tarantool "$theirs"
    else
        one_round tarantool "$theirs"; one_round tarantula "$ours"
    fi
done
echo "depth 1, wal_mode = '$mode', $rounds rounds (medians; microseconds)"
echo
python3 - "$out" <<'PY'
import collections, statistics, sys
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    kind, conns, name, p50, p99 = line.split()
    runs[(kind, conns, name)].append((int(p50), int(p99)))
print("| kind | conns | tarantula p50 | tarantool p50 | tarantula p99 | tarantool p99 |"
      " rounds with the lower p99 |")
print("| --- | --- | --- | --- | --- | --- | --- |")
for kind in ["ping", "select", "replace", "call", "call16"]:
    for conns in ["1", "4"]:
        ours, theirs = runs[(kind, conns, "tarantula")], runs[(kind, conns, "tarantool")]
        median = lambda rows, i: statistics.median(row[i] for row in rows)
        lower = sum(a[1] < b[1] for a, b in zip(ours, theirs))
        print(f"| {kind} | {conns} | {median(ours, 0):.0f} | {median(theirs, 0):.0f} |"
              f" {median(ours, 1):.0f} | {median(theirs, 1):.0f} | {lower} of {len(ours)} |")
PY
