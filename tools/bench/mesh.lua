-- Mesh convergence benchmark role, run by tarantula and by Tarantool 2.6 alike:
--   mesh.lua INDEX BASE_PORT RATE SECONDS
-- Server INDEX (1..3) of a full mesh listening on BASE_PORT + INDEX, with all three in
-- `replication`. The bootstrapping server creates the user and the space; each prints
-- STARTED after its box.cfg, READY once it follows both others. When the file `../go`
-- appears, each writes RATE rows per second (a transaction every 10 ms) into its own key
-- range for SECONDS. Server 1 then polls the three vclocks every millisecond (its own, and
-- the others' over net.box) and prints `CONVERGED <seconds> <vclock sum>`: the time from
-- the end of the last load until all three agree.
local fiber = require('fiber')
local clock = require('clock')
local index, base_port = tonumber(arg[1]), tonumber(arg[2])
local rate, seconds = tonumber(arg[3]), tonumber(arg[4])

local function uri(i) return 'replicator:password@127.0.0.1:' .. (base_port + i) end

box.cfg{
    listen = '127.0.0.1:' .. (base_port + index),
    replication = {uri(1), uri(2), uri(3)},
    replication_connect_timeout = 600,
    log = 'server.log',
    wal_mode = 'write',
}
-- Whoever bootstraps the cluster runs it (tarantula: server 1; Tarantool 2.6: the leader it
-- elects); the others have its key by the time their box.cfg returns.
box.once('bench', function()
    box.schema.user.create('replicator', {password = 'password'})
    box.schema.user.grant('replicator', 'read,write,execute', 'universe')
    box.schema.space.create('items'):create_index('pk')
end)
io.stdout:write('STARTED\n')
io.stdout:flush()

-- Follows both others: the per-server table of box.info.replication (2.x and tarantula).
local function following()
    local n = 0
    for id, r in pairs(box.info.replication) do
        if type(id) == 'number' and id ~= (box.info.id or box.info.server.id) and r.upstream ~= nil
            and r.upstream.status == 'follow' then
            n = n + 1
        end
    end
    return n == 2
end
while box.space.items == nil or not following() do fiber.sleep(0.001) end
io.stdout:write('READY\n')
io.stdout:flush()

-- What server 1 polls: when this server's last load transaction committed (realtime,
-- shared by the processes of one machine), and its vclock without component 0 (2.x's local rows).
load_ended = nil
function state()
    local vclock = {}
    for id = 1, 31 do vclock[id] = box.info.vclock[id] or 0 end
    return load_ended, vclock
end

local function exists(path)
    local file = io.open(path, 'r')
    if file == nil then return false end
    file:close()
    return true
end
while not exists('../go') do fiber.sleep(0.001) end

local function load()
    local s = box.space.items
    local per_tick = math.max(1, math.floor(rate / 100))
    local deadline = clock.monotonic() + seconds
    local key = index * 10000000
    while true do
        local tick = clock.monotonic()
        box.begin()
        for _ = 1, per_tick do
            key = key + 1
            s:replace{key, 'a tuple of some thirty bytes'}
        end
        box.commit()
        if clock.monotonic() >= deadline then break end
        fiber.sleep(math.max(0, 0.01 - (clock.monotonic() - tick)))
    end
    load_ended = clock.time()
end

if index ~= 1 then
    load()
    return
end

local peers = {}
for i = 2, 3 do peers[i] = require('net.box').connect(uri(i)) end
load()
local function same(a, b)
    for id = 1, 31 do if a[id] ~= b[id] then return false end end
    return true
end
while true do
    local _, mine = state()
    local last, agree = load_ended, true
    for i = 2, 3 do
        local ended, theirs = peers[i]:eval('return state()')
        if ended == nil then
            agree = false
        else
            last = math.max(last, ended)
            agree = agree and same(mine, theirs)
        end
    end
    if agree then
        local _, now = state()
        if same(mine, now) then
            local rows = 0
            for id = 1, 31 do rows = rows + now[id] end
            io.stdout:write(string.format('CONVERGED %.6f %d\n', clock.time() - last, rows))
            io.stdout:flush()
            break
        end
    end
    fiber.sleep(0.001)
end
