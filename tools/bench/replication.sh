#!/usr/bin/env bash
# Replication benchmarks of tarantula and Tarantool 2.6, two instances of one kind at a time
# on this machine, driven the same way (tools/bench/replication.lua):
#   - join: a new replica of a master holding 1,000,000 tuples, seconds until it holds them;
#   - catch-up: the replica stopped, 1,000,000 replaces on the master, the replica restarted:
#     rows per second until its vclock reaches the master's;
#   - lag: a steady load of 20,000 rows per second on the master for 10 s, the replica's
#     box.info.replication lag sampled every 20 ms for 8 s (mean, p99, max).
# Each server runs three times, alternating; each measure is the best of its three.
#   tools/bench/replication.sh
# Needs .venv (the Python connector: .ci/venv) to call the master's load functions.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --quiet
ours=$PWD/target/release/tarantula
theirs=$(command -v tarantool)
python=$PWD/.venv/bin/python
script=$PWD/tools/bench/replication.lua
port=3316
rows=${ROWS:-1000000}
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$tmp"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# call FUNCTION ARGS...: call a function of the master, print its first result
call() {
    "$python" - "$port" "$@" <<'PY'
import sys, tarantool
port, name, args = int(sys.argv[1]), sys.argv[2], [int(a) for a in sys.argv[3:]]
c = tarantool.connect('127.0.0.1', port, user='replicator', password='password')
print(c.call(name, args)[0])
PY
}

# run SERVER: the three measures for one kind of server, printed as "join rate lag..."
run() {
    local binary=${!1} dir=$tmp/$1
    mkdir -p "$dir/master" "$dir/replica"
    (cd "$dir/master" && exec "$binary" "$script" master $port "$rows") >"$dir/master.out" 2>&1 &
    local master=$!
    for _ in $(seq 1 6000); do grep -q READY "$dir/master.out" && break; sleep 0.01; done
    grep -q READY "$dir/master.out" || { echo "$1: the master did not start" >&2; exit 1; }
    local join lsn rate lag
    join=$(cd "$dir/replica" && "$binary" "$script" join $port "$rows" 2>/dev/null | tail -1)
    lsn=$(call write "$rows")
    local seconds
    seconds=$(cd "$dir/replica" && "$binary" "$script" catchup $port "$lsn" 2>/dev/null | tail -1)
    rate=$(echo "$rows / $seconds" | bc -l)
    (cd "$dir/replica" && exec "$binary" "$script" lag $port 8) >"$dir/lag.out" 2>/dev/null &
    local replica=$!
    sleep 1
    call load 20000 10 >/dev/null
    wait $replica
    lag=$(tail -1 "$dir/lag.out")
    kill $master 2>/dev/null || true; wait $master 2>/dev/null || true
    echo "$join $rate $lag"
}

# best SERVER: three runs (alternating with the other server), the best of each measure:
# the least join time and lag, the highest catch-up rate
declare -A best
for round in 1 2 3; do
    for server in ours theirs; do
        read -r join rate mean p99 max <<<"$(run $server)"
        rm -rf "${tmp:?}/$server"
        if [[ $round == 1 ]]; then
            best[$server-join]=$join best[$server-rate]=$rate best[$server-mean]=$mean
            best[$server-p99]=$p99 best[$server-max]=$max
            continue
        fi
        min() { echo "if ($1 < $2) $1 else $2" | bc -l; }
        best[$server-join]=$(min "$join" "${best[$server-join]}")
        best[$server-rate]=$(echo "if ($rate > ${best[$server-rate]}) $rate else ${best[$server-rate]}" | bc -l)
        best[$server-mean]=$(min "$mean" "${best[$server-mean]}")
        best[$server-p99]=$(min "$p99" "${best[$server-p99]}")
        best[$server-max]=$(min "$max" "${best[$server-max]}")
    done
done
for measure in join rate mean p99 max; do
    declare "ours_$measure=${best[ours-$measure]}" "theirs_$measure=${best[theirs-$measure]}"
done
ratio() { printf '%.2f' "$(echo "$1 / $2" | bc -l)"; }
echo "| measure | tarantula | Tarantool 2.6 | ratio (higher: tarantula better) |"
echo "| --- | --- | --- | --- |"
printf '| join of %d tuples, s | %.2f | %.2f | %s |\n' "$rows" "$ours_join" "$theirs_join" \
    "$(ratio "$theirs_join" "$ours_join")"
printf '| catch-up after %d writes, rows/s | %.0f | %.0f | %s |\n' "$rows" "$ours_rate" \
    "$theirs_rate" "$(ratio "$ours_rate" "$theirs_rate")"
for what in mean p99 max; do
    o=ours_$what t=theirs_$what
    printf '| lag at 20,000 rows/s, %s, ms | %.2f | %.2f | %s |\n' "$what" \
        "$(echo "${!o} * 1000" | bc -l)" "$(echo "${!t} * 1000" | bc -l)" \
        "$(ratio "${!t}" "${!o}")"
done
