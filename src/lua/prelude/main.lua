-- builtin/main.lua: the init fiber: libraries (-l), expressions (-e), the script and,
-- when asked for, the interactive console. A failure here ends the process with code 1,
-- as an error in Tarantool's init script does.

local util = require('internal.util')
local errors = require('internal.error')

local main = {}

local function message_of(err)
    if errors.is_error(err) then
        return err.type .. ': ' .. err.message
    end
    return 'LuajitError: ' .. tostring(err)
end

local function fatal(err)
    util.say(2, nil, nil, message_of(err))
    util.say(3, nil, nil, 'fatal error, exiting the event loop')
    util.exit(1)
end

local function load_or_raise(chunk, err)
    if chunk == nil then
        error(err, 0)
    end
    return chunk
end

local function run(plan)
    for _, name in ipairs(plan.libraries) do
        rawset(_G, name, require(name))
    end
    for _, expression in ipairs(plan.expressions) do
        load_or_raise(loadstring(expression, '=(command line)'))()
    end
    local chunk
    if plan.stdin_source ~= nil then
        chunk = load_or_raise(loadstring(plan.stdin_source, '=stdin'))
    elseif plan.script ~= nil then
        chunk = load_or_raise(loadfile(plan.script))
    end
    if chunk ~= nil then
        chunk(unpack(plan.args))
    end
end

function main.run(plan)
    local ok, err = pcall(run, plan)
    if not ok then
        fatal(err)
    end
    if plan.console then
        require('console').start()
    end
end

package.loaded['internal.main'] = main
