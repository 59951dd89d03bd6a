-- builtin/iproto.lua: what binary-protocol requests run in fibers (CALL, EVAL, changes of
-- spaces with triggers or of system spaces, AUTH with on_auth triggers) and the session
-- triggers box.session.on_connect, on_disconnect and on_auth.
--
-- Each handler runs in a fiber of the client's session and ends with exactly one call of
-- internal.iproto.reply*, which answers the request (Rust remembers where to).

local internal = require('internal.iproto')
local errors = require('internal.error')
local util = require('internal.util')
local sched = require('internal.sched')
local log = require('log')

local codes = util.errcodes

-- {{{ session triggers

local trigger_lists = { connect = {}, disconnect = {}, auth = {} }

local function publish_triggers()
    internal.set_session_triggers(#trigger_lists.connect > 0, #trigger_lists.disconnect > 0,
        #trigger_lists.auth > 0)
end

-- box.session.on_<kind>(new, old): add `new`, replace or remove `old`, as space:on_replace.
local function trigger_setter(kind)
    return function(new_trigger, old_trigger)
        local list = trigger_lists[kind]
        local listing = new_trigger == nil and old_trigger == nil
        if new_trigger ~= nil and type(new_trigger) ~= 'function' then
            error('trigger reset: incorrect arguments', 2)
        end
        if old_trigger ~= nil then
            for i, trigger in ipairs(list) do
                if trigger == old_trigger then
                    table.remove(list, i)
                    old_trigger = nil
                    break
                end
            end
            if old_trigger ~= nil then
                error(errors.make(2, codes.NO_SUCH_TRIGGER), 2)
            end
        end
        if new_trigger ~= nil then
            table.insert(list, new_trigger)
        end
        publish_triggers()
        if listing then
            return list
        end
        return new_trigger
    end
end

-- Run the triggers of `kind`; the first error stops them and is returned.
local function run_triggers(kind, ...)
    for _, trigger in ipairs(trigger_lists[kind]) do
        local ok, err = pcall(trigger, ...)
        if not ok then
            return err
        end
    end
end

local session_api = require('internal.box_schema').api.session
session_api.on_connect = trigger_setter('connect')
session_api.on_disconnect = trigger_setter('disconnect')
session_api.on_auth = trigger_setter('auth')

-- }}}

-- {{{ requests

-- The function a CALL names: a global path `a.b.c`, or `a.b:c` (called with `a.b` as self).
local function find_function(name)
    local path, method = string.match(name, '^(.+):([^:.]+)$')
    local value = _G
    for part in string.gmatch(path or name, '[^.]+') do
        local ok, found = pcall(function() return value[part] end)
        if not ok or found == nil then
            return nil
        end
        value = found
    end
    if method ~= nil then
        local ok, fn = pcall(function() return value[method] end)
        if not ok or fn == nil then
            return nil
        end
        return fn, value, true
    end
    return value
end

-- A transaction left open by a request is rolled back.
local function finish_transaction()
    local data = package.loaded['internal.data']
    if data.in_transaction() then
        log.warn('transaction is active at return from a request, rolling back')
        data.rollback()
    end
end

local function answer(result)
    finish_transaction()
    if result[1] then
        return internal.reply(unpack(result, 2, result.n))
    end
    return internal.reply_error(result[2])
end

local handlers = {}

function handlers.call(kind, name, args)
    local ok, owner = internal.check_call(name)
    if not ok then
        return internal.reply_error(owner)
    end
    local fn, self, is_method = find_function(name)
    if fn == nil then
        return internal.reply_error(errors.make(1, codes.NO_SUCH_PROC, name))
    end
    if owner ~= nil then
        internal.set_euid(owner)
    end
    local result
    if is_method then
        result = sched.pack(pcall(fn, self, unpack(args, 1, #args)))
    else
        result = sched.pack(pcall(fn, unpack(args, 1, #args)))
    end
    if owner ~= nil then
        internal.set_euid(nil)
    end
    return answer(result)
end

function handlers.eval(kind, expr, args)
    local ok, err = internal.check_eval()
    if not ok then
        return internal.reply_error(err)
    end
    local fn, syntax_error = loadstring(expr, '=eval')
    if fn == nil then
        return internal.reply_error(syntax_error)
    end
    return answer(sched.pack(pcall(fn, unpack(args, 1, #args))))
end

function handlers.dml()
    return internal.dml()
end

function handlers.auth(kind, user)
    local err = run_triggers('auth', user)
    if err ~= nil then
        return internal.reply_error(err)
    end
    return internal.reply_ok()
end

function handlers.connect(token)
    internal.connected(token, run_triggers('connect'))
end

function handlers.disconnect()
    local err = run_triggers('disconnect')
    if err ~= nil then
        log.error('on_disconnect trigger failed: %s', tostring(err))
    end
    internal.disconnected()
end

-- CALL and EVAL fibers start here. internal.iproto.prepare pushes the function and its
-- arguments straight from the request, and reply_fast encodes the results straight into
-- the reply; what they decline (false) goes through the handlers above.

local prepare, reply_fast = internal.prepare, internal.reply_fast
-- What run_request returns when prepare declined: no Lua code can return this table.
local SLOW = {}

local function invoke(fn, ...)
    if fn == false then
        local code, message = ...
        if code == nil then
            return SLOW
        end
        error(errors.new(code, message), 0)
    end
    return fn(...)
end

local function run_request()
    return invoke(prepare())
end

local function finish(ok, ...)
    if not ok then
        finish_transaction()
        return internal.reply_error((...))
    end
    if (...) == SLOW and select('#', ...) == 1 then
        local name, kind, text, args = internal.request_args()
        if name == nil then
            return internal.reply_error(kind)
        end
        return handlers[name](kind, text, args)
    end
    if not reply_fast(...) then
        finish_transaction()
        return internal.reply(...)
    end
end

function handlers.request()
    return finish(pcall(run_request))
end

internal.set_handlers(handlers)

-- }}}
