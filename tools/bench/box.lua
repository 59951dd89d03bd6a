-- Storage benchmark, the same script in tarantula and tarantool (wal_mode = 'none'):
--   tarantula tools/bench/box.lua [N [tree|hash]]   tarantool tools/bench/box.lua [N [tree|hash]]
-- For a TREE and a HASH primary key: N inserts of {i, 20-byte string}, N gets, a full
-- scan; and the resident memory each tuple costs. One line per figure.
local clock = require('clock')
local N = tonumber(arg[1]) or 1000000
box.cfg{wal_mode = 'none', log = 'bench.log', slab_alloc_arena = 4}

local function rss_kb()
    for line in io.lines('/proc/self/status') do
        local kb = line:match('^VmRSS:%s+(%d+)')
        if kb then return tonumber(kb) end
    end
end

local payload = string.rep('x', 20)

local function bench(kind)
    local space = box.schema.space.create('bench_' .. kind)
    space:create_index('pk', {type = kind, parts = {1, 'unsigned'}})
    collectgarbage('collect')
    local before = rss_kb()
    local started = clock.monotonic()
    for i = 1, N do
        space:insert{i, payload}
    end
    local elapsed = clock.monotonic() - started
    collectgarbage('collect')
    local after = rss_kb()
    print(string.format('%s insert: %d in %.3f s: %.0f per second', kind, N, elapsed, N / elapsed))
    started = clock.monotonic()
    local index = space.index.pk
    for i = 1, N do
        index:get{i}
    end
    elapsed = clock.monotonic() - started
    print(string.format('%s get: %d in %.3f s: %.0f per second', kind, N, elapsed, N / elapsed))
    started = clock.monotonic()
    local count = 0
    for _, t in index:pairs() do
        count = count + 1
    end
    elapsed = clock.monotonic() - started
    print(string.format('%s scan: %d in %.3f s: %.0f per second', kind, count, elapsed, count / elapsed))
    print(string.format('%s memory per tuple: %.0f bytes', kind, (after - before) * 1024 / N))
    space:drop()
end

-- One kind per process when asked, so the memory figure is not muddied by the other's.
if arg[2] ~= 'hash' then
    bench('tree')
end
if arg[2] ~= 'tree' then
    bench('hash')
end
os.exit(0)
