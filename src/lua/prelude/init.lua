-- builtin/init.lua: the ground every other prelude file stands on.
--
-- A fiber is a coroutine resumed by the TX loop. Blocking calls register what they wait for
-- with the scheduler (Rust) and then yield the fiber's coroutine with SENTINEL. A user
-- coroutine running inside a fiber must not swallow such a yield, so coroutine.resume and
-- coroutine.wrap are wrapped: when the inner coroutine yields SENTINEL, the wrapper yields
-- it further up (eventually to the loop) and resumes the inner one with what came back.

local raw_create = coroutine.create
local raw_resume = coroutine.resume
local raw_yield = coroutine.yield
local raw_status = coroutine.status
local isyieldable = coroutine.isyieldable
local select, error, unpack = select, error, unpack

local SENTINEL = setmetatable({}, { __tostring = function() return 'fiber suspension' end })

local function pack(...)
    return { n = select('#', ...), ... }
end

local function resume(co, ...)
    local result = pack(raw_resume(co, ...))
    while result[1] and result[2] == SENTINEL and raw_status(co) == 'suspended' do
        result = pack(raw_resume(co, raw_yield(SENTINEL)))
    end
    return unpack(result, 1, result.n)
end

local function wrap(fn)
    local co = raw_create(fn)
    return function(...)
        local result = pack(resume(co, ...))
        if not result[1] then
            error(result[2], 0)
        end
        return unpack(result, 2, result.n)
    end
end

coroutine.resume = resume
coroutine.wrap = wrap

-- Yield the running fiber to the loop. The wait must be registered first; returns what the
-- loop resumes the fiber with (true when woken, false on timeout, or a coio job's values).
local function suspend()
    return raw_yield(SENTINEL)
end

-- Raise a clear error where a fiber cannot yield (a callback called from Rust, such as a
-- __serialize function), before anything is registered with the scheduler.
local function check_yieldable(what)
    if not isyieldable() then
        error(what .. ': can not yield here (called from a non-yielding context)', 3)
    end
end

package.loaded['internal.sched'] = {
    SENTINEL = SENTINEL,
    suspend = suspend,
    check_yieldable = check_yieldable,
    pack = pack,
}
