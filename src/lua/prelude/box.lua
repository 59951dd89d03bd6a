-- builtin/box.lua: the box table: box.cfg, box.NULL, and the "call box.cfg{} first" guard.

local errors = require('internal.error')
local internal = require('internal.box')

box = box or {}
box.NULL = require('msgpack').NULL

-- Parts of box that exist only once box.cfg{} has run.
local NEEDS_CFG = {
    space = true, index = true, info = true, schema = true, session = true, slab = true,
    stat = true, snapshot = true, once = true, begin = true, commit = true, rollback = true,
    runtime = true, sequence = true,
}

local configured = false

setmetatable(box, {
    __index = function(_, key)
        if NEEDS_CFG[key] and not configured then
            error('Please call box.cfg{} first', 2)
        end
        return nil
    end,
})

local cfg_mt

-- box.cfg as a table of effective values, callable to change them.
local function effective(values)
    local view = setmetatable({}, cfg_mt)
    for name, value in pairs(values) do
        rawset(view, name, value)
    end
    return view
end

local function configure(options)
    if options == nil then
        options = {}
    end
    if type(options) ~= 'table' then
        error(errors.new(box.error.CFG, "Incorrect value for option 'box.cfg': should be a table",
            'ClientError', 2), 2)
    end
    local values, err = internal.cfg(options)
    if values == nil then
        error(err, 3)
    end
    -- A new replica: wait until it has joined its master and is registered.
    while true do
        local waiting, wait_err = internal.bootstrap_wait()
        if waiting == nil then
            error(wait_err, 3)
        end
        if not waiting then
            break
        end
        require('internal.sched').suspend()
    end
    if not configured then
        configured = true
        require('internal.box_schema').install()
    else
        require('internal.box_schema').refresh_wal()
    end
    rawset(box, 'cfg', effective(values))
    require('internal.snapshot_daemon').reload()
end

cfg_mt = {
    __call = function(_, options) configure(options) end,
    __index = function(_, name) return internal.cfg_get(name) end,
}

box.cfg = function(options) configure(options) end

-- box.info: a table whose fields are read fresh, callable for the whole of it.
local function gc() return internal.gc_info() end
local info = setmetatable({}, {
    __index = function(_, key)
        if key == 'gc' then return gc end
        return internal.info(key)[key]
    end,
    __call = function() return internal.info() end,
    __serialize = function() return internal.info() end,
})

-- Set by the first box.cfg{} with box.space and the rest (see box_schema.lua).
package.loaded['internal.box_info'] = {
    info = info,
    slab = { info = function() return internal.slab_info() end },
}
