"""Seconds from starting a server on a data directory until a SELECT of the last key
answers (recovery done, the binary protocol serving), with the Python connector.

    .venv/bin/python tools/bench/restart.py BINARY DIR PORT LAST_KEY [WAL_MODE]

BINARY runs tools/bench/iproto_server.lua PORT WAL_MODE in DIR; the server is stopped
(SIGTERM) afterwards. Prints "<seconds>".
"""
import os
import subprocess
import sys
import time

import tarantool

binary, data_dir, port, last_key = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
wal_mode = sys.argv[5] if len(sys.argv) > 5 else 'write'
script = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'iproto_server.lua')
started = time.time()
server = subprocess.Popen([binary, script, str(port), wal_mode], cwd=data_dir,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
try:
    while True:
        if server.poll() is not None:
            sys.exit(f'{binary} exited with {server.returncode}')
        if time.time() - started > 600:
            sys.exit('no answer in 600 s')
        try:
            connection = tarantool.Connection('127.0.0.1', port, connect_now=True)
            if len(connection.select(512, [last_key])) == 1:
                break
        except Exception:
            time.sleep(0.005)
    print(f'{time.time() - started:.3f}')
finally:
    server.terminate()
    server.wait()
