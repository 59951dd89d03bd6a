-- builtin/snapshot.lua: box.snapshot() and the snapshot daemon (1.6's snapshot_daemon.lua).
--
-- The work is Rust's (internal.snapshot): a snapshot thread writes the file while the
-- calling fiber waits here. The daemon runs while box.cfg.snapshot_period > 0: every period
-- (the first wait is a random part of one, so a fleet started together does not snapshot in
-- step) it takes a snapshot unless one exists for the current vclock, then keeps the newest
-- box.cfg.snapshot_count snapshots and the xlogs they need.

local snap = require('internal.snapshot')
local fiber = require('fiber')
local log = require('log')
local suspend = require('internal.sched').suspend

-- How long box.snapshot() waits between tries while another fiber has a transaction open
-- (its changes are in memory but not committed, so no view can be taken).
local OPEN_TRANSACTION_RETRY = 0.001

local function snapshot()
    local id
    while true do
        local started, err = snap.begin()
        if started == nil then
            error(err, 2)
        end
        if started then
            id = started
            break
        end
        fiber.sleep(OPEN_TRANSACTION_RETRY)
    end
    while snap.wait(id) do
        suspend()
    end
    local err = snap.result(id)
    if err ~= nil then
        error(err, 2)
    end
    return 'ok'
end

require('internal.box_schema').api.snapshot = snapshot

local daemon = { fiber = nil, period = nil, generation = 0 }

local function message_of(err)
    if type(err) == 'table' or type(err) == 'cdata' or type(err) == 'userdata' then
        return tostring(err.message or err)
    end
    return tostring(err)
end

local function daemon_step()
    if not snap.exists() then
        local ok, err = pcall(snapshot)
        if not ok then
            log.error('snapshot daemon: %s', message_of(err))
            return
        end
    end
    local removed, err = snap.remove_old(box.cfg.snapshot_count or 6)
    if removed == nil then
        log.error('snapshot daemon: %s', message_of(err))
    end
end

local function daemon_loop(generation, period)
    fiber.name('snapshot_daemon')
    local delay = period * math.random()
    while daemon.generation == generation do
        fiber.sleep(delay)
        if daemon.generation ~= generation then
            return
        end
        daemon_step()
        delay = period
    end
end

-- Called after every successful box.cfg{}: start, restart or stop the daemon as
-- snapshot_period says.
local function reload()
    local period = tonumber(box.cfg.snapshot_period) or 0
    if period == daemon.period then
        return
    end
    daemon.period = period
    daemon.generation = daemon.generation + 1
    if daemon.fiber ~= nil and daemon.fiber:status() ~= 'dead' then
        pcall(daemon.fiber.cancel, daemon.fiber)
    end
    daemon.fiber = nil
    if period > 0 then
        daemon.fiber = fiber.create(daemon_loop, daemon.generation, period)
    end
end

package.loaded['internal.snapshot_daemon'] = { reload = reload }
