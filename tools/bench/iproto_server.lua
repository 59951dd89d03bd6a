-- An iproto server for tools/iproto_bench, the same script in tarantula and tarantool:
--   tarantula tools/bench/iproto_server.lua PORT [wal_mode]
--   tarantool tools/bench/iproto_server.lua PORT [wal_mode]
-- Listens on PORT (a port number or host:port) with wal_mode arg[2] (default 'none'), logs
-- to bench.log and keeps its WAL and snapshots in the current directory. Makes space
-- 'bench' (id 512) with a TREE primary key on field 1 unsigned, lets guest read, write and
-- execute everything, and defines the function bench_call(x) (returns x). Safe to run again
-- over the files of an earlier run.
local port = arg[1] or 3301
box.cfg{
    listen = port,
    wal_mode = arg[2] or 'none',
    log = 'bench.log',
    wal_dir = '.',
    memtx_dir = '.',
    -- 4 GiB: room for millions of tuples from repeated insert runs.
    memtx_memory = 4 * 1024 * 1024 * 1024,
}

local space = box.schema.space.create('bench', {id = 512, if_not_exists = true})
space:create_index('pk', {type = 'tree', parts = {1, 'unsigned'}, if_not_exists = true})

-- A second run finds the grant made: both servers raise then, so the error is ignored.
pcall(box.schema.user.grant, 'guest', 'read,write,execute', 'universe')

function bench_call(x) -- luacheck: ignore (a global: CALL looks functions up by name)
    return x
end
box.schema.func.create('bench_call', {if_not_exists = true})
