-- builtin/iproto.lua: what binary-protocol requests run in fibers (CALL, EVAL, changes of
-- spaces with triggers or of system spaces, AUTH with on_auth triggers) and the session
-- triggers box.session.on_connect, on_disconnect and on_auth.
--
-- Each handler runs in a fiber of the client's session and ends with exactly one call of
-- internal.iproto.reply*, which answers the request (Rust remembers where to).

local internal = require('internal.iproto')
local errors = require('internal.error')
local util = require('internal.util')
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

-- A transaction left open by a request is rolled back.
local function finish_transaction()
    local data = package.loaded['internal.data']
    if data.in_transaction() then
        log.warn('transaction is active at return from a request, rolling back')
        data.rollback()
    end
end

local handlers = {}

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

-- CALL and EVAL fibers start here. internal.iproto.prepare checks access, finds the
-- function (or compiles the expression) and pushes it with its arguments straight from the
-- request; reply_fast encodes the results straight into the reply, and what it declines
-- goes through internal.iproto.reply.

local prepare, reply_fast, call_args = internal.prepare, internal.reply_fast, internal.call_args

-- prepare() answers true and the call, false and an error, or nil: arguments that need the
-- general decoder, which it then takes as a table.
local function invoke(ok, fn, ...)
    if ok then
        return fn(...)
    end
    if ok == nil then
        local args, err = call_args()
        if args == nil then
            error(err, 0)
        end
        return invoke(prepare(args))
    end
    error(errors.new(fn, (...)), 0)
end

local function run_request()
    return invoke(prepare())
end

-- The slower ways to answer: an error, or results reply_fast declined.
local function answer(ok, ...)
    finish_transaction()
    if not ok then
        return internal.reply_error((...))
    end
    return internal.reply(...)
end

local function finish(ok, ...)
    if ok and reply_fast(...) then
        return
    end
    -- The entry runs unprotected (see fiber.lua's trampoline), so what these raise stops
    -- here; Rust answers a request its fiber left unanswered.
    local done, err = pcall(answer, ok, ...)
    if not done then
        log.error('a request was not answered: %s', tostring(err))
    end
end

function handlers.request()
    return finish(pcall(run_request))
end

internal.set_handlers(handlers)
require('internal.fiber').set_self_guarded(handlers.request)

-- }}}
