# Sourced by the benchmark scripts (bash): one server of the iproto benchmarks.
#   bench_server_start BINARY PORT WAL_MODE   sets server_pid and server_dir
#   bench_server_stop
#   bench_server_ready PORT [TRIES]           for a server started otherwise
# Needs $bench (target/release/iproto_bench) and $server (tools/bench/iproto_server.lua).
# The server runs the script in a fresh directory over 100,000 prepared keys.

bench_server_start() {
    server_dir=$(mktemp -d)
    (cd "$server_dir" && exec "$1" "$server" "$2" "$3" >/dev/null 2>&1) &
    server_pid=$!
    bench_server_ready "$2"
}

# Wait for the server on PORT (TRIES tenths of a second at most), then prepare its keys.
bench_server_ready() {
    # Ready when bench_call answers: the port opens at box.cfg, before the grants.
    for _ in $(seq "${2:-100}"); do
        "$bench" "$1" --kind call -n 1 2>/dev/null | grep -q ' errors=0 ' && break
        sleep 0.1
    done
    "$bench" "$1" --prepare --keys 100000 >/dev/null
}

bench_server_stop() {
    kill "$server_pid"; wait "$server_pid" 2>/dev/null || true
    rm -rf "$server_dir"
}
