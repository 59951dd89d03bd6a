#!/usr/bin/env bash
# Server CPU per request of two or more builds, measured alternately (this VM's timings
# drift by tens of percent over minutes, so builds are compared round by round).
#   tools/bench/cpu_ab.sh [-r ROUNDS] [-s "KIND:CONNS ..."] [-m WAL_MODE] BINARY BINARY...
# For each round and binary: a fresh server (tools/bench/iproto_server.lua) over 100,000
# prepared keys, then for each scenario three runs of 1,000,000 requests at 64 in flight
# per connection. Prints, per scenario and binary, the medians over all runs of the
# server's user and system CPU time per request (ns, from /proc/PID/stat) and of the
# requests per second. Defaults: 5 rounds, "call:4 replace:4", wal_mode none.
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=5 scenarios="call:4 replace:4" mode=none
while getopts r:s:m: opt; do
    case $opt in
    r) rounds=$OPTARG ;;
    s) scenarios=$OPTARG ;;
    m) mode=$OPTARG ;;
    *) exit 2 ;;
    esac
done
shift $((OPTIND - 1))
(( $# >= 1 )) || { echo "usage: $0 [-r N] [-s SCENARIOS] [-m MODE] BINARY..." >&2; exit 2; }
cargo build --release --quiet --bin iproto_bench
bench=$PWD/target/release/iproto_bench server=$PWD/tools/bench/iproto_server.lua
# shellcheck source=tools/bench/server.sh
source tools/bench/server.sh
tick=$(getconf CLK_TCK) n=1000000 port=3315 out=$(mktemp)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -f "$out"' EXIT

one_round() {
    local binary=$1 u1 s1 u2 s2 rps
    bench_server_start "$binary" $port "$mode"
    for scenario in $scenarios; do
        for _ in 1 2 3; do
            read -r u1 s1 < <(awk '{print $14, $15}' /proc/$server_pid/stat)
            rps=$("$bench" $port --kind "${scenario%:*}" -c "${scenario#*:}" -d 64 -n $n \
                --keys 100000 | sed -E 's/.*rps=([0-9]+).*/\1/')
            read -r u2 s2 < <(awk '{print $14, $15}' /proc/$server_pid/stat)
            echo "$scenario $(basename "$binary") $(((u2 - u1) * 1000000000 / tick / n))" \
                "$(((s2 - s1) * 1000000000 / tick / n)) $rps" >>"$out"
        done
    done
    bench_server_stop
}

for _ in $(seq "$rounds"); do
    for binary in "$@"; do one_round "$(realpath "$binary")"; done
done
python3 - "$out" <<'PY'
import collections, statistics, sys
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    scenario, binary, user, system, rps = line.split()
    runs[(scenario, binary)].append((int(user), int(system), int(rps)))
for (scenario, binary), rows in sorted(runs.items()):
    median = lambda i: statistics.median(row[i] for row in rows)
    print(f"{scenario:10} {binary:16} user_ns={median(0):5.0f} sys_ns={median(1):5.0f}"
          f" rps={median(2):9.0f} runs={len(rows)}")
PY
