-- builtin/errors.lua: Tarantool error objects (box.error) shared by Rust and Lua.
--
-- An error object is a table {code, message, type} whose tostring and YAML form are its
-- message, as Tarantool's console prints them. Rust creates them through the constructor
-- registered here; Lua wrappers raise them with error().

local util = require('internal.util')

local methods = {}
local error_mt = {
    __index = methods,
    __tostring = function(err) return err.message end,
    __serialize = function(err) return err.message end,
}

local last_error = nil

local function new_error(code, message, type, level)
    local err = setmetatable({
        code = code,
        message = message,
        type = type or 'ClientError',
        base_type = type or 'ClientError',
    }, error_mt)
    local info = debug.getinfo((level or 1) + 1, 'Sl')
    if info and info.currentline and info.currentline > 0 then
        err.trace = { { file = info.short_src, line = info.currentline } }
    end
    last_error = err
    return err
end

function methods.unpack(err)
    return {
        code = err.code,
        message = err.message,
        type = err.type,
        base_type = err.base_type,
        trace = err.trace,
    }
end

function methods.raise(err)
    error(err, 2)
end

function methods.match(err, pattern)
    return string.match(err.message, pattern)
end

util.set_error_constructor(function(code, message, type)
    return new_error(code, message, type, 2)
end)

local function is_error(value)
    return getmetatable(value) == error_mt
end

-- box.error(code, args...), box.error{code = n, reason = text}, box.error(err)
local function make(level, first, ...)
    if is_error(first) then
        return first
    end
    if type(first) == 'table' then
        return new_error(tonumber(first.code) or 0, tostring(first.reason or ''),
            first.type, level + 1)
    end
    local code = tonumber(first)
    if code == nil then
        error('Usage: box.error(code, ...)', level + 1)
    end
    return new_error(code, util.error_format(code, ...), 'ClientError', level + 1)
end

local box_error = setmetatable({}, {
    __index = util.errcodes,
    __call = function(_, ...)
        error(make(2, ...), 2)
    end,
})

function box_error.new(...)
    return make(2, ...)
end

function box_error.raise(...)
    if select('#', ...) == 0 then
        if last_error then error(last_error, 2) end
        return
    end
    error(make(2, ...), 2)
end

function box_error.last()
    return last_error
end

function box_error.clear()
    last_error = nil
end

box = box or {}
box.error = box_error

package.loaded['internal.error'] = {
    new = new_error,
    make = make,
    is_error = is_error,
    mt = error_mt,
    -- Raise err (an error object or a message) at the caller's caller.
    raise = function(err) error(err, 3) end,
}
