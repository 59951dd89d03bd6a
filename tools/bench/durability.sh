#!/usr/bin/env bash
# Durability benchmarks of tarantula and Tarantool 2.6, run by the same clients in the same
# run (one server at a time): replace throughput with wal_mode 'write' and 'fsync' (1 and
# 64 requests in flight), restart time from 1,000,000 rows of xlog, the time of
# box.snapshot() of those 1,000,000 tuples, and restart time from that snapshot.
#   tools/bench/durability.sh
# Needs .venv (the Python connector: .ci/venv) for the restart timing.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --quiet
ours=$PWD/target/release/tarantula
theirs=$(command -v tarantool)
bench=$PWD/target/release/iproto_bench
python=$PWD/.venv/bin/python
script=$PWD/tools/bench/iproto_server.lua
port=3315
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$tmp"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start BINARY DIR MODE: a server in the background, waiting until it answers
start() {
    (cd "$2" && exec "$1" "$script" $port "$3") >/dev/null 2>&1 &
    for _ in $(seq 1 1000); do
        # Ready when bench_call answers (the port opens before the script made the space).
        "$bench" 127.0.0.1:$port --kind call --requests 1 2>/dev/null | grep -q ' errors=0 ' &&
            return 0
        sleep 0.01
    done
    echo "$1 did not start" >&2; exit 1
}
stop() { kill %% 2>/dev/null || true; wait 2>/dev/null || true; }

# rps KIND CONNS DEPTH REQUESTS: the best of three runs
rps() {
    for _ in 1 2 3; do
        "$bench" 127.0.0.1:$port --kind "$1" -c "$2" -d "$3" -n "$4" --keys 100000 |
            sed -E 's/.* rps=([0-9]+) .*/\1/'
    done | sort -n | tail -1
}

row() { printf '| %s | %s | %s | %.2f |\n' "$1" "$2" "$3" "$(echo "$2 / $3" | bc -l)"; }

declare -A result
for mode in write fsync; do
    for server in ours theirs; do
        dir=$tmp/$server-$mode; mkdir -p "$dir"
        start "${!server}" "$dir" $mode
        for depth in 1 64; do
            n=$([[ $depth == 1 ]] && echo 20000 || echo 300000)
            [[ $mode == fsync && $depth == 1 ]] && n=2000
            result[$server-$mode-$depth]=$(rps replace 1 $depth $n)
        done
        stop
    done
done
# best_time COMMAND...: the least of three timings a command prints
best_time() {
    local best=
    for _ in 1 2 3; do
        t=$("$@")
        if [[ -z $best ]] || (( $(echo "$t < $best" | bc -l) )); then best=$t; fi
    done
    echo "$best"
}

snapshot_time() {
    "$python" -c "
import tarantool
c = tarantool.Connection('127.0.0.1', $port)
print('%.3f' % c.eval(\"local clock = require('clock') local t = clock.monotonic() box.snapshot() return clock.monotonic() - t\")[0])"
}

for server in ours theirs; do
    dir=$tmp/$server-restart; mkdir -p "$dir"
    start "${!server}" "$dir" write
    "$bench" 127.0.0.1:$port --kind replace --sequential --keys 1000000 -c 4 -d 64 \
        -n 1000000 >/dev/null
    stop
    result[$server-restart]=$(best_time "$python" tools/bench/restart.py "${!server}" "$dir" \
        $port 1000000 write)
    # One snapshot (a second one of unchanged data is refused by 1.6, so one run).
    start "${!server}" "$dir" write
    result[$server-snapshot]=$(snapshot_time)
    stop
    rm -f "$dir"/*.xlog
    result[$server-restart-snap]=$(best_time "$python" tools/bench/restart.py "${!server}" \
        "$dir" $port 1000000 write)
done

echo '| what | tarantula | Tarantool 2.6 | ratio |'
echo '| --- | --- | --- | --- |'
for mode in write fsync; do
    for depth in 1 64; do
        row "replace per second, wal_mode '$mode', $depth in flight" \
            "${result[ours-$mode-$depth]}" "${result[theirs-$mode-$depth]}"
    done
done
# Time: less is better, so the ratio is theirs / ours.
time_row() {
    printf '| %s | %s | %s | %.2f |\n' "$1" "${result[ours-$2]}" "${result[theirs-$2]}" \
        "$(echo "${result[theirs-$2]} / ${result[ours-$2]}" | bc -l)"
}
time_row "restart from 1,000,000 xlog rows, seconds" restart
time_row "box.snapshot() of 1,000,000 tuples, seconds" snapshot
time_row "restart from a snapshot of 1,000,000 tuples, seconds" restart-snap
