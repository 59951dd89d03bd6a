-- Replication benchmark roles, run by tarantula and by Tarantool 2.6 alike:
--   replication.lua master PORT ROWS      a master holding ROWS tuples (prints READY)
--   replication.lua join PORT ROWS        a new replica: prints the seconds to hold them all
--   replication.lua catchup PORT LSN      a replica restarting: seconds until vclock[1] >= LSN
--   replication.lua lag PORT SECONDS      a replica sampling its lag while the master writes
-- The master's console commands (`write(n)`, `load(rate, seconds)`) come over stdin-free
-- iproto: the driver calls them with tarantool's net.box-compatible console (see
-- replication.sh).
local fiber = require('fiber')
local clock = require('clock')
local role, port, arg3 = arg[1], tonumber(arg[2]), tonumber(arg[3])

local function cfg(options)
    options.log = 'server.log'
    options.wal_mode = 'write'
    box.cfg(options)
end

local function source() return 'replicator:password@127.0.0.1:' .. port end

if role == 'master' then
    cfg{listen = '127.0.0.1:' .. port}
    box.once('bench', function()
        box.schema.user.create('replicator', {password = 'password'})
        box.schema.user.grant('replicator', 'read,write,execute', 'universe')
        local s = box.schema.space.create('items')
        s:create_index('pk')
        for batch = 0, arg3 / 1000 - 1 do
            box.begin()
            for i = 1, 1000 do s:insert{batch * 1000 + i, 'a tuple of some thirty bytes'} end
            box.commit()
        end
    end)
    -- replace n rows (the load a returning replica catches up with)
    function write(n)
        local s = box.space.items
        for batch = 0, n / 1000 - 1 do
            box.begin()
            for i = 1, 1000 do s:replace{batch * 1000 + i, 'changed while away'} end
            box.commit()
        end
        return box.info.vclock[1]
    end
    -- a steady load: `rate` rows per second for `seconds`, in batches every 10 ms
    function load(rate, seconds)
        local s = box.space.items
        local per_tick = math.max(1, math.floor(rate / 100))
        local deadline = clock.monotonic() + seconds
        local key = 0
        while clock.monotonic() < deadline do
            local tick = clock.monotonic()
            box.begin()
            for _ = 1, per_tick do
                key = key % 1000000 + 1
                s:replace{key, 'steady load'}
            end
            box.commit()
            fiber.sleep(math.max(0, 0.01 - (clock.monotonic() - tick)))
        end
        return true
    end
    io.stdout:write('READY\n')
    io.stdout:flush()
    return
end

local started = clock.monotonic()
cfg{replication = source(), replication_connect_timeout = 600}
local function lsn() return box.info.vclock[1] or 0 end

if role == 'join' then
    while box.space.items == nil or box.space.items:len() < arg3 do fiber.sleep(0.001) end
    print(string.format('%.3f', clock.monotonic() - started))
elseif role == 'catchup' then
    while lsn() < arg3 do fiber.sleep(0.001) end
    print(string.format('%.3f', clock.monotonic() - started))
elseif role == 'lag' then
    -- wait for the load to start, then sample the lag every 20 ms while it goes on
    local first = lsn()
    while lsn() == first do fiber.sleep(0.001) end
    local samples = {}
    local deadline = clock.monotonic() + arg3
    while clock.monotonic() < deadline do
        local r = box.info.replication
        local lag = r.lag or (r[1] and r[1].upstream and r[1].upstream.lag) or 0
        table.insert(samples, lag)
        fiber.sleep(0.02)
    end
    table.sort(samples)
    local sum = 0
    for _, v in ipairs(samples) do sum = sum + v end
    print(string.format('%.6f %.6f %.6f', sum / #samples,
        samples[math.ceil(#samples * 0.99)], samples[#samples]))
end
os.exit(0)
