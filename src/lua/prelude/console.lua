-- builtin/console.lua: the console: the interactive REPL on standard input and the admin
-- console over sockets (console.listen), both evaluating Lua and answering in YAML.
--
-- Each statement is compiled as "return <statement>" first, then as itself, and its results
-- become one YAML document, exactly as Tarantool's console prints them.

local internal = require('internal.console')
local sched = require('internal.sched')
local util = require('internal.util')
local log = require('log')

local console = {}

local PROMPT = 'tarantool> '
local CONTINUATION = '         > '

local HELP = [[
To get help, see the Tarantula manual page: man tarantula
Tarantula speaks Tarantool 1.6.9; Tarantool's 1.6 manual applies to it.

Available backslash commands:

  \set delimiter <delimiter> -- set expression delimiter
  \help                      -- show this screen
  \quit                      -- quit interactive console
]]

-- The console session of each console fiber: {[fiber id] = session}.
local sessions = {}

local function fiber_id()
    return require('internal.fiber').self()
end

-- {{{ evaluation and formatting

-- One YAML document for a statement's outcome, as Tarantool formats it.
local format = internal.format

-- A failed statement rolls back the transaction it left open (box.begin() without commit).
local function finish(ok, ...)
    if not ok then
        local data = package.loaded['internal.data']
        if data ~= nil and data.in_transaction() then
            data.rollback()
        end
    end
    return format(ok, ...)
end

local function eval(statement)
    local fn, err = loadstring('return ' .. statement)
    if fn == nil then
        fn, err = loadstring(statement)
    end
    if fn == nil then
        return format(false, err)
    end
    return finish(pcall(fn))
end

-- An interactive statement is incomplete when it fails to compile only because its text
-- ended early (the error ends in '<eof>'), and "return" before it does not help either.
local function is_incomplete(text)
    local fn, err = loadstring(text)
    if fn ~= nil then
        return false
    end
    if not string.find(err, "'<eof>'$") then
        return false
    end
    return loadstring('return ' .. text) == nil
end

-- }}}

-- {{{ sessions: statement assembly and backslash commands

local session_methods = {}
local session_mt = { __index = session_methods }

local function new_session(interactive)
    return setmetatable({ delimiter = '', buffer = '', interactive = interactive }, session_mt)
end

-- A backslash command; returns the reply (or nil) and whether to quit.
local function command(session, line)
    local words = {}
    for word in string.gmatch(line, '%S+') do
        words[#words + 1] = word
    end
    local name = words[1]
    if name == '\\quit' or name == '\\q' then
        return nil, true
    end
    if name == '\\help' or name == '\\h' or name == '?' then
        return format(true, console.help_text()), false
    end
    if name == '\\set' and words[2] == 'delimiter' then
        session.delimiter = words[3] or ''
        return '---\n...\n', false
    end
    return format(false, 'Invalid command ' .. line .. '. Type \\help for help.'), false
end

-- Feed one input line. Returns a statement to evaluate, or a ready reply, or nothing yet;
-- the last value says the session should end.
function session_methods.feed(self, line)
    if self.buffer == '' then
        if line == '~.' then
            return nil, nil, true
        end
        if string.sub(line, 1, 1) == '\\' then
            local reply, quit = command(self, line)
            return nil, reply, quit
        end
    end
    if self.delimiter ~= '' then
        local text = self.buffer .. line
        local delimiter = self.delimiter
        if string.sub(text, -#delimiter) == delimiter then
            self.buffer = ''
            return string.sub(text, 1, #text - #delimiter)
        end
        self.buffer = text .. '\n'
        return nil
    end
    if self.interactive then
        local text = self.buffer .. line
        if is_incomplete(text) then
            self.buffer = text .. '\n'
            return nil
        end
        self.buffer = ''
        return text
    end
    return line
end

-- Handle one input line: returns the reply to send (or nil), and whether to end.
function session_methods.handle(self, line)
    local statement, reply, quit = self:feed(line)
    if statement ~= nil then
        reply = eval(statement)
    end
    return reply, quit
end

-- }}}

-- {{{ the admin console over a socket

-- Repeat an internal call while it says 'wait' (the fiber was parked and woken since).
local function blocking(fn, ...)
    while true do
        local value, state = fn(...)
        if state ~= 'wait' then
            return value, state
        end
        sched.suspend()
    end
end

local function serve_client(token, peer)
    local id = fiber_id()
    local session = new_session(false)
    sessions[id] = session
    while true do
        local line = blocking(internal.read, token)
        if line == nil then
            break
        end
        local reply, quit = session:handle(line)
        if quit then
            break
        end
        if reply ~= nil and not blocking(internal.write, token, reply) then
            break
        end
    end
    sessions[id] = nil
    internal.close(token)
    require('internal.session').close(require('internal.session').id())
    log.verbose('console client %s disconnected', peer)
end
internal.set_handler(serve_client)

function console.listen(uri)
    if type(uri) == 'number' then
        uri = tostring(uri)
    end
    if type(uri) ~= 'string' then
        error('Usage: console.listen(uri)', 2)
    end
    local token, name = internal.listen(uri)
    if token == nil then
        error(string.format('console.listen(%s): %s', uri, name), 2)
    end
    log.info('console: listening on %s', name)
    local host, port = string.match(name, '^(.*):(%d+)$')
    local family = 'AF_INET'
    if host == nil then
        family = 'AF_UNIX'
        host = string.gsub(name, '^unix/:', '')
    elseif string.find(host, ':', 1, true) then
        family = 'AF_INET6'
    end
    local address = { host = host, port = tonumber(port), family = family,
        type = 'SOCK_STREAM', protocol = family == 'AF_UNIX' and 0 or 'tcp' }
    -- Shaped like Tarantool's socket object: s:name(), s:close(), printed as {fd, name}.
    return setmetatable({}, {
        __index = {
            name = function() return address end,
            close = function() internal.close(token) return true end,
            fd = function() return token end,
        },
        __serialize = function() return { fd = token, name = address } end,
    })
end

-- }}}

-- {{{ the interactive console

function console.start()
    io.write(string.format('Tarantula %s (Tarantool %s)\ntype \'help\' for interactive help\n',
        util.tarantula_version, util.tarantool_version))
    io.flush()
    local id = fiber_id()
    local session = new_session(true)
    sessions[id] = session
    while true do
        local prompt = session.buffer == '' and PROMPT or CONTINUATION
        local line, state = blocking(internal.stdin_read, prompt)
        if line == nil then
            if state ~= 'interrupted' then
                break
            end
            session.buffer = ''
        else
            local reply, quit = session:handle(line)
            if quit then
                break
            end
            if reply ~= nil then
                io.write(reply, '\n')
                io.flush()
            end
        end
    end
    sessions[id] = nil
    io.write('\n')
    io.flush()
    util.exit(0)
end

-- }}}

function console.delimiter(delimiter)
    local session = sessions[fiber_id()]
    if session == nil then
        error('console.delimiter(): no console session in this fiber', 2)
    end
    if delimiter == nil then
        return session.delimiter
    end
    if type(delimiter) ~= 'string' then
        error('Usage: console.delimiter(string)', 2)
    end
    session.delimiter = delimiter
end

function console.help_text()
    return setmetatable({ HELP }, { __serialize = 'sequence' })
end

console.eval = eval
console.format = format

help = setmetatable({}, {
    __serialize = function() return { HELP } end,
    __call = function() return console.help_text() end,
    __tostring = function() return HELP end,
})

package.loaded.console = console
