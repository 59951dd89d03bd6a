-- builtin/fiber.lua: the fiber module (create, sleep, yield, self, kill, info, channel, cond).
--
-- Scheduling is Rust's (internal.fiber); everything that waits is written here: register
-- the wait, suspend the coroutine, and on resumption check whether the fiber was cancelled.

local internal = require('internal.fiber')
local sched = require('internal.sched')
local errors = require('internal.error')
local util = require('internal.util')

local suspend = sched.suspend
local check_yieldable = sched.check_yieldable
local type, tonumber, setmetatable, error, next = type, tonumber, setmetatable, error, next

local fiber = {}

-- {[id] = table}: fiber.self().storage, dropped when the fiber ends.
local storages = {}
-- How many there are: a fiber's end asks Rust for its id only when some exist, and a
-- count is cheaper to test than next(storages), which scans the table's slots.
local storage_count = 0

local function cancelled_error()
    local code = util.errcodes.PROC_LUA
    return errors.new(code, 'fiber is cancelled', 'FiberIsCancelled', 2)
end

local function testcancel()
    if internal.is_cancelled() then
        error(cancelled_error(), 0)
    end
end

-- Wait until woken or until `timeout` seconds pass (nil: forever). True if woken.
local function wait(timeout, what)
    check_yieldable(what or 'fiber wait')
    internal.wait(timeout)
    local woken = suspend()
    return woken
end

-- Drop the running fiber's storage when it ends. Most fibers never touch theirs: no call
-- into Rust to find out which one this is.
local function drop_storage()
    if storage_count > 0 then
        local id = internal.self()
        if id and storages[id] ~= nil then
            storages[id] = nil
            storage_count = storage_count - 1
        end
    end
end

-- Call a fiber's function and report what it raised.
local function run(fn, ...)
    local ok, err = pcall(fn, ...)
    drop_storage()
    if not ok and not (errors.is_error(err) and err.type == 'FiberIsCancelled') then
        local text
        if errors.is_error(err) then
            text = err.type .. ': ' .. err.message
        else
            text = 'LuajitError: ' .. tostring(err)
        end
        util.say(2, nil, nil, text)
    end
end

local DONE = internal.DONE
local raw_yield = coroutine.yield

-- A function that guards itself (the binary protocol's request entry, which answers
-- whatever its request raises) is called without run()'s pcall: a request fiber's one
-- protected call is its own.
local self_guarded = nil

-- The body every fiber coroutine runs. When a fiber's function ends, the coroutine yields
-- DONE and the scheduler keeps it for the next fiber, which resumes it with its function
-- and arguments (a tail call, so the loop does not grow the stack).
local function trampoline(fn, ...)
    if fn == self_guarded then
        fn()
        drop_storage()
    else
        run(fn, ...)
    end
    return trampoline(raw_yield(DONE))
end
internal.set_trampoline(trampoline)

-- builtin/iproto.lua names its request entry here.
function internal.set_self_guarded(fn)
    self_guarded = fn
end

local methods = {}
local fiber_mt = {
    __index = function(self, key)
        if key == 'storage' then
            local storage = storages[self._id]
            if storage == nil and internal.exists(self._id) then
                storage = {}
                storages[self._id] = storage
                storage_count = storage_count + 1
            end
            return storage
        end
        return methods[key]
    end,
    __tostring = function(self) return 'fiber: ' .. self._id end,
    -- Objects are made fresh on demand (caching them costs more than fiber.create itself),
    -- so two objects of one fiber compare equal by id.
    __eq = function(a, b) return a._id == b._id end,
    __serialize = function(self)
        return { id = self._id, name = internal.name(self._id), status = internal.status(self._id) }
    end,
}

local function object(id)
    return setmetatable({ _id = id }, fiber_mt)
end

local function check_object(self, method)
    if type(self) ~= 'table' or getmetatable(self) ~= fiber_mt then
        error('Usage: fiber:' .. method .. '()', 3)
    end
    return self._id
end

function methods.id(self)
    return check_object(self, 'id')
end

function methods.name(self, name)
    local id = check_object(self, 'name')
    if name ~= nil then
        if type(name) ~= 'string' then
            error('Usage: fiber:name(name)', 2)
        end
        if #name > 255 then
            error('Fiber name is too long', 2)
        end
    end
    if not internal.exists(id) then
        error('the fiber is dead', 2)
    end
    if name ~= nil then
        internal.name(id, name)
        return
    end
    return internal.name(id)
end

function methods.status(self)
    return internal.status(check_object(self, 'status'))
end

function methods.cancel(self)
    local id = check_object(self, 'cancel')
    if not internal.cancel(id) then
        error('the fiber is dead', 2)
    end
end
methods.kill = methods.cancel

function methods.wakeup(self)
    internal.wakeup(check_object(self, 'wakeup'))
end

function fiber.create(fn, ...)
    if type(fn) ~= 'function' and not (type(fn) == 'table' and getmetatable(fn)
            and getmetatable(fn).__call) then
        error('fiber.create(function, ...): bad arguments', 2)
    end
    return object(internal.create(fn, ...))
end

-- A fiber started in the next loop turn rather than at once (Tarantool's fiber.new).
function fiber.new(fn, ...)
    if type(fn) ~= 'function' then
        error('fiber.new(function, ...): bad arguments', 2)
    end
    return object(internal.create_queued(fn, ...))
end

function fiber.self()
    local id = internal.self()
    return id and object(id) or nil
end

function fiber.id()
    return internal.self() or 0
end

function fiber.find(id)
    id = tonumber(id)
    if id and internal.exists(id) then
        return object(id)
    end
    return nil
end

function fiber.status(f)
    if f ~= nil then
        return methods.status(f)
    end
    return internal.status(internal.self() or 0)
end

function fiber.name(name)
    return methods.name(fiber.self(), name)
end

function fiber.sleep(delay)
    delay = tonumber(delay)
    if delay == nil then
        error('fiber.sleep(delay): bad arguments', 2)
    end
    wait(delay, 'fiber.sleep')
    testcancel()
end

function fiber.yield()
    check_yieldable('fiber.yield')
    internal.yield()
    suspend()
    testcancel()
end

function fiber.kill(f)
    local id = type(f) == 'table' and f._id or tonumber(f)
    if id == nil then
        error('Usage: fiber.kill(fiber or id)', 2)
    end
    if not internal.cancel(id) then
        error('fiber not found', 2)
    end
end

fiber.testcancel = testcancel
fiber.info = internal.info
fiber.time = internal.time
fiber.clock = internal.clock

local ffi = require('ffi')
function fiber.time64()
    return ffi.cast('int64_t', internal.time() * 1e6)
end

function fiber.clock64()
    return ffi.cast('int64_t', internal.clock() * 1e9)
end

-- {{{ cond

local cond_methods = {}
local cond_mt = { __index = cond_methods, __tostring = function() return 'cond' end }

-- Waiters are kept in arrival order; a woken or timed-out waiter removes itself.
local function remove_waiter(list, id)
    for i = 1, #list do
        if list[i] == id then
            table.remove(list, i)
            return
        end
    end
end

local function wake_first(list)
    local id = table.remove(list, 1)
    while id ~= nil do
        if internal.wakeup(id) then
            return true
        end
        id = table.remove(list, 1)
    end
    return false
end

function fiber.cond()
    return setmetatable({ waiters = {} }, cond_mt)
end

function cond_methods.wait(self, timeout)
    if getmetatable(self) ~= cond_mt then
        error('Usage: cond:wait([timeout])', 2)
    end
    local id = internal.self()
    table.insert(self.waiters, id)
    local woken = wait(timeout and tonumber(timeout), 'cond:wait')
    remove_waiter(self.waiters, id)
    testcancel()
    return woken
end

function cond_methods.signal(self)
    wake_first(self.waiters)
end

function cond_methods.broadcast(self)
    local waiters = self.waiters
    self.waiters = {}
    for i = 1, #waiters do
        internal.wakeup(waiters[i])
    end
end

-- }}}

-- {{{ channel

local channel_methods = {}
local channel_mt = {
    __index = channel_methods,
    __tostring = function(self)
        return string.format('channel: %d', self._count)
    end,
}

function fiber.channel(size)
    size = size == nil and 0 or tonumber(size)
    if size == nil or size ~= math.floor(size) then
        error('fiber.channel(size): bad arguments', 2)
    end
    if size < 0 then
        error('fiber.channel(size): negative size', 2)
    end
    return setmetatable({
        _size = size, _buffer = {}, _head = 1, _count = 0, _closed = false,
        _readers = {}, _writers = {},
    }, channel_mt)
end

local function check_channel(self, usage)
    if getmetatable(self) ~= channel_mt then
        error('usage: channel:' .. usage, 3)
    end
end

local function remaining(deadline)
    if deadline == nil then
        return nil
    end
    return deadline - internal.clock()
end

local function deadline_of(timeout)
    timeout = timeout and tonumber(timeout)
    if timeout == nil then
        return nil
    end
    return internal.clock() + timeout
end

-- A put may proceed while the buffer holds fewer items than its size plus the readers
-- already waiting (so a size-0 channel hands items straight to waiting readers).
local function has_room(self)
    return self._count < self._size + #self._readers
end

function channel_methods.put(self, value, timeout)
    check_channel(self, 'put(var [, timeout])')
    local deadline = deadline_of(timeout)
    local id = internal.self()
    while true do
        if self._closed then
            return false
        end
        if has_room(self) then
            self._buffer[self._head + self._count] = value
            self._count = self._count + 1
            wake_first(self._readers)
            return true
        end
        local left = remaining(deadline)
        if left ~= nil and left <= 0 then
            return false
        end
        table.insert(self._writers, id)
        wait(left, 'channel:put')
        remove_waiter(self._writers, id)
        testcancel()
    end
end

function channel_methods.get(self, timeout)
    check_channel(self, 'get([timeout])')
    local deadline = deadline_of(timeout)
    local id = internal.self()
    while true do
        if self._count > 0 then
            local value = self._buffer[self._head]
            self._buffer[self._head] = nil
            self._head = self._head + 1
            self._count = self._count - 1
            if self._count == 0 then
                self._head = 1
            end
            wake_first(self._writers)
            return value
        end
        if self._closed then
            return nil
        end
        local left = remaining(deadline)
        if left ~= nil and left <= 0 then
            return nil
        end
        table.insert(self._readers, id)
        -- A writer of a size-0 channel waits for a reader: tell one there is one now.
        wake_first(self._writers)
        wait(left, 'channel:get')
        remove_waiter(self._readers, id)
        testcancel()
    end
end

-- Closing drops what the channel holds, as Tarantool does: readers get nil from then on.
function channel_methods.close(self)
    check_channel(self, 'close()')
    self._closed = true
    self._buffer, self._head, self._count = {}, 1, 0
    local waiters = {}
    for _, list in ipairs({ self._readers, self._writers }) do
        for i = 1, #list do
            waiters[#waiters + 1] = list[i]
        end
    end
    self._readers, self._writers = {}, {}
    for i = 1, #waiters do
        internal.wakeup(waiters[i])
    end
end

function channel_methods.is_closed(self)
    return self._closed
end

function channel_methods.is_full(self)
    return self._count >= self._size
end

function channel_methods.is_empty(self)
    return self._count == 0
end

function channel_methods.count(self)
    return self._count
end

function channel_methods.size(self)
    return self._size
end

function channel_methods.has_readers(self)
    return #self._readers > 0
end

function channel_methods.has_writers(self)
    return #self._writers > 0
end

-- }}}

package.loaded.fiber = fiber
