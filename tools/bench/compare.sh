#!/usr/bin/env bash
# Side-by-side benchmarks of tarantula and Tarantool 2.6 (apt-get install tarantool), run by
# the same clients in the same run. Usage: tools/bench/compare.sh [fiber|box|console|all]
# Prints one markdown table row per figure: what, tarantula, tarantool, ratio (>1: we win).
set -euo pipefail
cd "$(dirname "$0")/../.."
what=${1:-all}
cargo build --release --quiet
ours=$PWD/target/release/tarantula
theirs=$(command -v tarantool)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"; kill $(jobs -p) 2>/dev/null || true' EXIT

# best of three runs of a line that ends in "N per second"
best() {
    local binary=$1 pattern=$2; shift 2
    for _ in 1 2 3; do
        (cd "$tmp" && "$binary" "$@") | grep "$pattern" | sed -E 's/.*: ([0-9]+) per second/\1/'
    done | sort -n | tail -1
}

# resident bytes per tuple of one index kind (one run: the figure barely varies)
bytes() {
    (cd "$tmp" && "$1" "$3" 1000000 "$2") | grep "$2 memory" | sed -E 's/.*: ([0-9]+) bytes/\1/'
}

row() {
    printf '| %s | %s | %s | %.2f |\n' "$1" "$2" "$3" "$(echo "$2 / $3" | bc -l)"
}

if [[ $what == fiber || $what == all ]]; then
    script=$PWD/tools/bench/fiber.lua
    for kind in 'create+finish' 'yield+resume'; do
        row "fiber $kind per second" "$(best "$ours" "$kind" "$script" 1000000)" \
            "$(best "$theirs" "$kind" "$script" 1000000)"
    done
fi

if [[ $what == box || $what == all ]]; then
    script=$PWD/tools/bench/box.lua
    for kind in tree hash; do
        for figure in insert get scan; do
            row "$kind $figure per second (1M tuples)" \
                "$(best "$ours" "$kind $figure" "$script" 1000000 "$kind")" \
                "$(best "$theirs" "$kind $figure" "$script" 1000000 "$kind")"
        done
        # Memory: fewer bytes is better, so the ratio is theirs / ours.
        mine=$(bytes "$ours" "$kind" "$script")
        other=$(bytes "$theirs" "$kind" "$script")
        printf '| %s resident bytes per tuple (1M tuples) | %s | %s | %.2f |\n' \
            "$kind" "$mine" "$other" "$(echo "$other / $mine" | bc -l)"
    done
fi

if [[ $what == console || $what == all ]]; then
    cargo build --release --quiet --bin console_bench
    server=$PWD/tools/bench/console_server.lua
    for connections in 1 4; do
        results=()
        for binary in "$ours" "$theirs"; do
            (cd "$tmp" && exec "$binary" "$server" 127.0.0.1:3313 >/dev/null 2>&1) &
            pid=$!
            for _ in $(seq 100); do
                (exec 3<>/dev/tcp/127.0.0.1/3313) 2>/dev/null && break
                sleep 0.05
            done
            best_rate=0
            for _ in 1 2 3; do
                rate=$(target/release/console_bench 127.0.0.1:3313 50000 "$connections" |
                    sed -E 's/.*: ([0-9]+) per second/\1/')
                (( rate > best_rate )) && best_rate=$rate
            done
            results+=("$best_rate")
            kill "$pid"; wait "$pid" 2>/dev/null || true
        done
        row "console round trips per second, $connections connection(s)" "${results[0]}" "${results[1]}"
    done
fi
