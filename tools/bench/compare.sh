#!/usr/bin/env bash
# Side-by-side benchmarks of tarantula and Tarantool 2.6 (apt-get install tarantool), run by
# the same clients in the same run.
#   tools/bench/compare.sh [fiber|box|console|iproto|all] [WAL_MODE]
# Prints one markdown table row per figure: what, tarantula, tarantool, ratio (>1: we win);
# `iproto` prints a table of its own (see iproto_section). WAL_MODE (none, the default,
# write or fsync) is the servers' box.cfg.wal_mode for the iproto section.
set -euo pipefail
cd "$(dirname "$0")/../.."
what=${1:-all}
wal_mode=${2:-none}
case $what in fiber | box | console | iproto | all) ;; *)
    echo "usage: $0 [fiber|box|console|iproto|all] [none|write|fsync]" >&2; exit 2 ;;
esac
case $wal_mode in none | write | fsync) ;; *)
    echo "usage: $0 [fiber|box|console|iproto|all] [none|write|fsync]" >&2; exit 2 ;;
esac
cargo build --release --quiet
ours=$PWD/target/release/tarantula
theirs=$(command -v tarantool)
tmp=$(mktemp -d)
# Servers run as background jobs: whatever ends the script (an error, ^C, a kill) stops them.
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$tmp"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A directory of each server's own: neither may find the other's files (Tarantool writes a
# snapshot even with wal_mode 'none', and Tarantula refuses Tarantool's files).
dir_of() {
    mkdir -p "$tmp/$(basename "$1")"
    echo "$tmp/$(basename "$1")"
}

# best of three runs of a line that ends in "N per second"
best() {
    local binary=$1 pattern=$2 dir; shift 2
    dir=$(dir_of "$binary")
    for _ in 1 2 3; do
        (cd "$dir" && "$binary" "$@") | grep "$pattern" | sed -E 's/.*: ([0-9]+) per second/\1/'
    done | sort -n | tail -1
}

# resident bytes per tuple of one index kind (one run: the figure barely varies)
bytes() {
    local dir
    dir=$(dir_of "$1")
    (cd "$dir" && "$1" "$3" 1000000 "$2") | grep "$2 memory" | sed -E 's/.*: ([0-9]+) bytes/\1/'
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

# Is something listening on 127.0.0.1:$1?
listening() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# A number from an iproto_bench line: field NAME LINE.
field() {
    grep -oE "(^| )$1=[0-9]+" <<<"$2" | cut -d= -f2
}

# Requests of one iproto_bench run (a few seconds on 2 cores): requests KIND DEPTH.
requests() {
    case $1/$2 in
        */1) echo 100000 ;;
        call*/*) echo 500000 ;;
        ping/*) echo 4000000 ;;
        *) echo 2000000 ;;
    esac
}

# The iproto load of tools/iproto_bench over tools/bench/iproto_server.lua: every kind
# (select by primary key, over 100000 prepared keys; call: CALL 10 of bench_call; call16:
# CALL 6), 1 and 4 connections, 1 and 64 requests in flight per connection. One server runs
# at a time: for each figure, each server is started on a fresh directory, prepared, measured
# three times (the best rps, with that run's p99; a tenth of the requests again as unmeasured
# warmup first) and stopped; which server goes first alternates from figure to figure, so a
# machine that drifts (a shared VM) does not favour one.
iproto_section() {
    cargo build --release --quiet --bin iproto_bench
    local bench=$PWD/target/release/iproto_bench server=$PWD/tools/bench/iproto_server.lua
    local port=3314 kinds=(ping select replace call call16) name kind conns depth figure=0
    declare -A rps p99
    if listening $port; then
        echo "compare.sh: port $port is taken" >&2; return 1
    fi
    for kind in "${kinds[@]}"; do
        local options=(--kind "$kind")
        [[ $kind == call16 ]] && options=(--kind call --call16)
        for conns in 1 4; do
            for depth in 1 64; do
                local order=(tarantula tarantool)
                (( figure % 2 == 1 )) && order=(tarantool tarantula)
                figure=$((figure + 1))
                for name in "${order[@]}"; do
                    iproto_start "$name" || return 1
                    local n best=0 best_p99=0 line errors
                    n=$(requests "$kind" $depth)
                    for _ in 1 2 3; do
                        line=$("$bench" $port "${options[@]}" -c $conns -d $depth -n "$n" \
                            --warmup $((n / 10)))
                        errors=$(field errors "$line")
                        if (( errors > 0 )); then
                            echo "compare.sh: $name: $errors error replies: $line" >&2
                        fi
                        if (( $(field rps "$line") > best )); then
                            best=$(field rps "$line")
                            best_p99=$(field p99_us "$line")
                        fi
                    done
                    rps[$name/$kind/$conns/$depth]=$best
                    p99[$name/$kind/$conns/$depth]=$best_p99
                    iproto_stop
                done
            done
        done
    done

    echo "iproto, wal_mode = '$wal_mode' (requests per second; p99 latency in microseconds)"
    echo
    echo '| kind | conns | depth | tarantula rps | tarantool rps | ratio | tarantula p99 | tarantool p99 |'
    echo '| --- | --- | --- | --- | --- | --- | --- | --- |'
    for kind in "${kinds[@]}"; do
        for conns in 1 4; do
            for depth in 1 64; do
                local ours_rps=${rps[tarantula/$kind/$conns/$depth]}
                local theirs_rps=${rps[tarantool/$kind/$conns/$depth]}
                printf '| %s | %s | %s | %s | %s | %.2f | %s | %s |\n' "$kind" $conns $depth \
                    "$ours_rps" "$theirs_rps" "$(echo "$ours_rps / $theirs_rps" | bc -l)" \
                    "${p99[tarantula/$kind/$conns/$depth]}" "${p99[tarantool/$kind/$conns/$depth]}"
            done
        done
    done
}

# Start server NAME (tarantula or tarantool) on a fresh directory and prepare its keys.
iproto_start() {
    local binary=$ours
    [[ $1 == tarantool ]] && binary=$theirs
    rm -rf "$tmp/$1"; mkdir "$tmp/$1"
    (cd "$tmp/$1" && exec "$binary" "$server" $port "$wal_mode" >server.out 2>&1) &
    server_pid=$!
    # The port opens at box.cfg, before the script has made the space and the function:
    # the server is ready when bench_call answers.
    for _ in $(seq 200); do
        if "$bench" $port --kind call -n 1 2>/dev/null | grep -q ' errors=0 '; then
            "$bench" $port --prepare --keys 100000 >/dev/null
            return 0
        fi
        sleep 0.05
    done
    echo "compare.sh: $1 is not ready on port $port:" >&2
    cat "$tmp/$1/server.out" "$tmp/$1/bench.log" >&2 2>/dev/null || true
    return 1
}

iproto_stop() {
    kill "$server_pid"; wait "$server_pid" 2>/dev/null || true
}

if [[ $what == iproto || $what == all ]]; then
    iproto_section
fi
