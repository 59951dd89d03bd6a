-- builtin/misc.lua: the 64-bit parts of clock and tonumber64 (built with the FFI, since a
-- Lua number cannot hold every 64-bit integer), and os.exit.

local ffi = require('ffi')
local util = require('internal.util')
local clock = require('clock')

local int64_t = ffi.typeof('int64_t')
local uint64_t = ffi.typeof('uint64_t')

local function join(high, low)
    return ffi.new(uint64_t, high) * 4294967296ULL + low
end

for _, name in ipairs({ 'realtime', 'time', 'monotonic', 'proc', 'thread' }) do
    local parts = clock[name .. '_parts']
    clock[name .. '_parts'] = nil
    clock[name .. '64'] = function()
        return ffi.cast(int64_t, join(parts()))
    end
end

function clock.bench(fn, ...)
    local start = clock.proc()
    local result = { fn(...) }
    table.insert(result, 1, clock.proc() - start)
    return result
end

-- tonumber64(value [, base]): a Lua number when it is exact as one, else an int64_t
-- (negative) or uint64_t cdata.
function tonumber64(value, base)
    if type(value) == 'number' and base == nil then
        return value
    end
    if type(value) == 'cdata' then
        return value
    end
    if type(value) ~= 'string' and type(value) ~= 'number' then
        return nil
    end
    local kind, high, low = util.parse_int64(tostring(value), base or 10)
    if kind == 'number' then
        return high
    elseif kind == 'uint' then
        return join(high, low)
    elseif kind == 'int' then
        return ffi.cast(int64_t, join(high, low))
    end
    return nil
end

-- Scripts test _TARANTOOL to learn which Tarantool they run on: we are 1.6.9 to them.
_TARANTOOL = util.tarantool_version .. '-0-tarantula-' .. util.tarantula_version

os.exit = function(code)
    if code == true or code == nil then
        code = 0
    elseif code == false then
        code = 1
    end
    util.exit(tonumber(code) or 0)
end
