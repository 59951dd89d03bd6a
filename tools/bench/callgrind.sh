#!/usr/bin/env bash
# The server's instructions per request under callgrind: deterministic to about 1%, where
# this VM has no hardware counters and its timings drift.
#   tools/bench/callgrind.sh BINARY KIND CONNECTIONS [REQUESTS] [OUT]
# Starts BINARY with tools/bench/iproto_server.lua under valgrind (instrumentation off),
# prepares 100,000 keys, warms up with 20,000 requests of KIND (iproto_bench's kinds) at
# CONNECTIONS x 64, then counts REQUESTS more (default 100,000) and prints the total
# instructions per request; the profile goes to OUT (default callgrind.out.KIND, in the
# current directory) for callgrind_annotate. GLIBC_TUNABLES is set so that the binary does
# not run itself again for huge pages (which would leave valgrind behind).
set -euo pipefail
(( $# >= 3 )) || { echo "usage: $0 BINARY KIND CONNECTIONS [REQUESTS] [OUT]" >&2; exit 2; }
binary=$(realpath "$1") kind=$2 conns=$3 n=${4:-100000} out=$(realpath -m "${5:-callgrind.out.$2}")
cd "$(dirname "$0")/../.."
cargo build --release --quiet --bin iproto_bench
bench=$PWD/target/release/iproto_bench server=$PWD/tools/bench/iproto_server.lua port=3316
# shellcheck source=tools/bench/server.sh
source tools/bench/server.sh
dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$dir"' EXIT
(cd "$dir" && GLIBC_TUNABLES=glibc.malloc.hugetlb=0 exec valgrind --tool=callgrind \
    --instr-atstart=no --callgrind-out-file="$out" "$binary" "$server" $port none \
    >"$dir/valgrind.log" 2>&1) &
pid=$!
# Under valgrind the server takes seconds to start.
bench_server_ready $port 600
"$bench" $port --kind "$kind" -c "$conns" -d 64 -n 20000 --keys 100000 >/dev/null
callgrind_control -i on $pid >/dev/null 2>&1
"$bench" $port --kind "$kind" -c "$conns" -d 64 -n "$n" --keys 100000 >/dev/null
callgrind_control -i off $pid >/dev/null 2>&1
callgrind_control -d $pid >/dev/null 2>&1
kill $pid; wait $pid 2>/dev/null || true
total=$(callgrind_annotate "$out".1 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
echo "$kind ${conns}x64: $((total / n)) instructions per request ($out.1)"
