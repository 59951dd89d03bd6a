-- A console-only server for tools/console_bench: listens on arg[1] (default 127.0.0.1:3313).
require('console').listen(arg[1] or '127.0.0.1:3313')
