-- builtin/net_box.lua: require('net.box'), the binary protocol client, as Tarantool 1.6
-- shaped it: connect/new, ping, call (CALL 6: results as tuples), eval, close,
-- is_connected, wait_connected, timeout, and conn.space.NAME / .index.NAME with select,
-- get, min, max, count, insert, replace, update, upsert, delete.
--
-- The socket, framing and handshake are Rust's (internal.netbox). A request parks the
-- calling fiber until its reply, a timeout or the end of the connection, so a remote call
-- never blocks the loop. The schema (spaces and indexes by name) is read from the peer's
-- _vspace and _vindex on first use of conn.space and again when the peer's schema id moves.

local internal = require('internal.netbox')
local sched = require('internal.sched')
local errors = require('internal.error')
local fiber = require('fiber')
local util = require('internal.util')
local codes = util.errcodes

local OK, SELECT, INSERT, REPLACE, UPDATE, DELETE = 0, 1, 2, 3, 4, 5
local CALL_16, EVAL, UPSERT, PING = 6, 8, 9, 64
local VSPACE, VINDEX = 281, 289
local SPACE_ID, INDEX_ID, LIMIT, OFFSET, ITERATOR = 0x10, 0x11, 0x12, 0x13, 0x14
local KEY, TUPLE, FUNCTION_NAME, EXPR, OPS = 0x20, 0x21, 0x22, 0x27, 0x28

local array_mt = require('msgpack').array_mt
local map_mt = require('msgpack').map_mt
local INDEX_BASE = 0x15

local function array(t)
    return setmetatable(t or {}, array_mt)
end

local function raise(code, message)
    error(errors.new(code, message, nil, 3), 3)
end

-- {{{ URIs

-- 'port', 'host:port', 'user:password@host:port', 'unix/:/path', '/path': host (nil for
-- a unix socket), port or path, user, password.
local function parse_uri(uri)
    if type(uri) == 'number' then
        return 'localhost', tostring(uri)
    end
    if type(uri) ~= 'string' then
        error('Usage: net_box.connect(uri[, options])', 3)
    end
    local user, password, rest = string.match(uri, '^([^:@/]+):([^@]*)@(.+)$')
    if user == nil then
        user, rest = string.match(uri, '^([^:@/]+)@(.+)$')
        rest = rest or uri
    end
    local path = string.match(rest, '^unix/:(.+)$')
    if path ~= nil then
        return nil, path, user, password
    end
    if string.sub(rest, 1, 1) == '/' or string.sub(rest, 1, 2) == './' then
        return nil, rest, user, password
    end
    local host, port = string.match(rest, '^%[(.+)%]:(%d+)$')
    if host == nil then
        host, port = string.match(rest, '^(.+):(%d+)$')
    end
    if host == nil and string.match(rest, '^%d+$') then
        host, port = 'localhost', rest
    end
    if host == nil then
        error(string.format("net.box: invalid URI '%s'", uri), 3)
    end
    return host, port, user, password
end

-- }}}

-- {{{ connections

local conn_methods = {}
local conn_mt

-- The connection's state, error, schema id, peer version and uuid, from Rust.
local function state_of(conn)
    if conn._token == nil then
        return 'error', conn._error
    end
    return internal.state(conn._token)
end

local function open_socket(conn)
    local token, code, message = internal.connect(conn.host, conn.port, conn.opts.user,
        conn.opts.password)
    conn._token, conn._error = token, message
    conn._failed_at = token == nil and fiber.clock() or nil
end

-- An errored connection with reconnect_after tries again once that long has passed.
local function maybe_reconnect(conn)
    local after = conn.opts.reconnect_after
    if after == nil or conn._closed then
        return
    end
    local state = state_of(conn)
    if state ~= 'error' then
        return
    end
    conn._failed_at = conn._failed_at or fiber.clock()
    if fiber.clock() - conn._failed_at >= after then
        if conn._token ~= nil then
            internal.close(conn._token)
        end
        open_socket(conn)
        conn._schema_id = nil
    end
end

-- Wait until the connection is active or failed, at most `timeout` seconds.
local function wait_state(conn, timeout)
    local deadline = timeout and fiber.clock() + timeout
    while true do
        maybe_reconnect(conn)
        local state = state_of(conn)
        if state == 'active' then
            return true
        end
        if state == 'error' or state == 'closed' then
            if conn.opts.reconnect_after == nil or conn._closed then
                return false
            end
        end
        local left = deadline and deadline - fiber.clock()
        if left ~= nil and left <= 0 then
            return false
        end
        if conn._token ~= nil and state ~= 'error' and state ~= 'closed' then
            sched.check_yieldable('net.box')
            internal.watch(conn._token, left)
            sched.suspend()
            internal.unwatch(conn._token)
        else
            -- Waiting to reconnect.
            fiber.sleep(math.min(left or conn.opts.reconnect_after, conn.opts.reconnect_after))
        end
        fiber.testcancel()
    end
end

-- Send a request and wait for its reply; returns the DATA, or raises the remote error,
-- a timeout or the connection's failure.
local function request(conn, kind, body, timeout)
    timeout = timeout or conn._timeout
    local deadline = timeout and fiber.clock() + timeout
    if state_of(conn) ~= 'active' and not wait_state(conn, timeout) then
        local state, reason = state_of(conn)
        if state == 'closed' or conn._closed then
            raise(codes.NO_CONNECTION, 'Connection closed')
        end
        if state == 'error' then
            raise(codes.NO_CONNECTION, reason or 'Connection is not established')
        end
        raise(codes.TIMEOUT, 'Timeout exceeded')
    end
    local left = deadline and math.max(deadline - fiber.clock(), 0)
    sched.check_yieldable('net.box')
    local sync, code, message = internal.request(conn._token, kind, setmetatable(body, map_mt),
        left)
    if sync == nil then
        raise(code, message)
    end
    sched.suspend()
    local ok, data, text = internal.result(conn._token, sync)
    fiber.testcancel()
    if ok == nil then
        local state, reason = state_of(conn)
        if state == 'error' or state == 'closed' then
            raise(codes.NO_CONNECTION, reason or 'Connection is not established')
        end
        raise(codes.TIMEOUT, 'Timeout exceeded')
    end
    if not ok then
        raise(data, text)
    end
    return data
end

-- The DATA items as tuples, in a plain table (as box's select returns).
local function tuples(data)
    setmetatable(data, nil)
    for i, value in ipairs(data) do
        if type(value) == 'table' then
            data[i] = box.tuple.new(value)
        end
    end
    return data
end

-- True when the peer answers; false at once when the connection is not up (1.6).
function conn_methods.ping(self)
    maybe_reconnect(self)
    if state_of(self) ~= 'active' then
        return false
    end
    local ok = pcall(request, self, PING, {}, self._timeout)
    return ok
end

function conn_methods.call(self, name, ...)
    if type(name) ~= 'string' then
        error('Usage: conn:call(func_name, ...)', 2)
    end
    local data = request(self, CALL_16, { [FUNCTION_NAME] = name, [TUPLE] = array({ ... }) })
    return unpack(tuples(data))
end

function conn_methods.eval(self, expr, ...)
    if type(expr) ~= 'string' then
        error('Usage: conn:eval(expression, ...)', 2)
    end
    local data = request(self, EVAL, { [EXPR] = expr, [TUPLE] = array({ ... }) })
    return unpack(data, 1, table.maxn(data))
end

function conn_methods.is_connected(self)
    return state_of(self) == 'active'
end

function conn_methods.wait_connected(self, timeout)
    return wait_state(self, timeout)
end

function conn_methods.close(self)
    if self._token ~= nil then
        internal.close(self._token)
    end
    self._closed = true
end

-- conn:timeout(t): the same connection whose requests give up after t seconds.
function conn_methods.timeout(self, timeout)
    local proxy = rawget(self, '_root') or self
    return setmetatable({ _root = proxy, _timeout = timeout }, conn_mt)
end

function conn_methods.reload_schema(self)
    local root = rawget(self, '_root') or self
    root._spaces = nil
end

-- }}}

-- {{{ schema: spaces and indexes

local space_methods, index_methods = {}, {}
local space_mt = { __index = space_methods }
local index_mt = { __index = index_methods }

local function key_of(key)
    if key == nil then
        return array()
    end
    if type(key) ~= 'table' then
        return array({ key })
    end
    return key
end

local function iterator_of(opts, key)
    local iterator = opts and opts.iterator
    if type(iterator) == 'string' then
        iterator = box.index[string.upper(iterator)]
        if iterator == nil then
            raise(codes.ILLEGAL_PARAMS, 'Illegal parameters, Unknown iterator type')
        end
    end
    if iterator == nil then
        iterator = (type(key) == 'table' and #key == 0) and box.index.ALL or box.index.EQ
    end
    return iterator
end

-- An index of a space as 1.6 (array of parts after unique/part_count) or 1.6.8 (opts map
-- and a parts array) lays out _vindex.
local function index_of(space, row)
    local index = setmetatable({ space = space, id = row[2], name = row[3], type = row[4] },
        index_mt)
    local opts, parts = row[5], {}
    if type(opts) == 'table' then
        index.unique = opts.unique ~= false
        for _, part in ipairs(row[6] or {}) do
            table.insert(parts, { fieldno = (part[1] or part.field) + 1,
                type = part[2] or part.type })
        end
    else
        index.unique = opts == 1
        for i = 1, (row[6] or 0) do
            table.insert(parts, { fieldno = row[5 + i * 2] + 1, type = row[6 + i * 2] })
        end
    end
    index.parts = parts
    return index
end

local function load_schema(conn)
    local spaces = {}
    local body = { [SPACE_ID] = VSPACE, [INDEX_ID] = 0, [ITERATOR] = box.index.ALL,
        [OFFSET] = 0, [LIMIT] = 0xFFFFFFFF, [KEY] = array() }
    for _, row in ipairs(request(conn, SELECT, body)) do
        local space = setmetatable({ _conn = conn, id = row[1], name = row[3],
            engine = row[4], field_count = row[5], index = {} }, space_mt)
        spaces[space.id] = space
        spaces[space.name] = space
    end
    body[SPACE_ID] = VINDEX
    for _, row in ipairs(request(conn, SELECT, body)) do
        local space = spaces[row[1]]
        if space ~= nil then
            local index = index_of(space, row)
            space.index[index.id] = index
            space.index[index.name] = index
        end
    end
    return spaces
end

-- conn.space: loaded on first use, again when the peer's schema id moved.
local function spaces_of(conn)
    local root = rawget(conn, '_root') or conn
    local _, _, schema_id = state_of(root)
    if root._spaces == nil or (schema_id ~= nil and schema_id ~= root._schema_id) then
        root._spaces = load_schema(root)
        local _, _, loaded_id = state_of(root)
        root._schema_id = loaded_id
    end
    return root._spaces
end

-- A space's or index's requests go through the connection (or timeout proxy) it came from.
local function conn_of(object)
    return object._conn
end

local function space_request(space, kind, body, opts)
    body[SPACE_ID] = space.id
    return request(conn_of(space), kind, body, opts and opts.timeout or nil)
end

local function index_select(index, key, opts)
    key = key_of(key)
    local body = { [INDEX_ID] = index.id, [KEY] = key,
        [ITERATOR] = iterator_of(opts, key),
        [OFFSET] = opts and opts.offset or 0,
        [LIMIT] = opts and opts.limit or 0xFFFFFFFF }
    return tuples(space_request(index.space, SELECT, body, opts))
end

local function one(data)
    return tuples(data)[1]
end

function index_methods.select(self, key, opts)
    return index_select(self, key, opts)
end

function index_methods.get(self, key, opts)
    local found = index_select(self, key, { iterator = 'EQ', limit = 2,
        timeout = opts and opts.timeout })
    if #found > 1 then
        raise(codes.MORE_THAN_ONE_TUPLE, 'More than one tuple found by get()')
    end
    return found[1]
end

function index_methods.min(self, key, opts)
    return index_select(self, key, { iterator = 'GE', limit = 1,
        timeout = opts and opts.timeout })[1]
end

function index_methods.max(self, key, opts)
    return index_select(self, key, { iterator = 'LE', limit = 1,
        timeout = opts and opts.timeout })[1]
end

function index_methods.count(self, key, opts)
    local code = 'local s, i, k, it = ... return box.space[s].index[i]:count(k, {iterator = it})'
    local conn = conn_of(self.space)
    key = key_of(key)
    return (request(conn, EVAL, { [EXPR] = code,
        [TUPLE] = array({ self.space.id, self.id, key, iterator_of(opts, key) }) },
        opts and opts.timeout or nil))[1]
end

function index_methods.update(self, key, ops, opts)
    return one(space_request(self.space, UPDATE,
        { [INDEX_ID] = self.id, [KEY] = key_of(key), [TUPLE] = array(ops), [INDEX_BASE] = 1 },
        opts))
end

function index_methods.delete(self, key, opts)
    return one(space_request(self.space, DELETE,
        { [INDEX_ID] = self.id, [KEY] = key_of(key) }, opts))
end

-- A space's reads and key changes go to its primary index.
local function primary(space)
    local index = space.index[0]
    if index == nil then
        raise(codes.NO_SUCH_INDEX, string.format("No index #0 is defined in space '%s'",
            space.name))
    end
    return index
end

for _, name in ipairs({ 'select', 'get', 'min', 'max', 'count', 'update', 'delete' }) do
    space_methods[name] = function(self, ...)
        return index_methods[name](primary(self), ...)
    end
end

function space_methods.insert(self, tuple, opts)
    return one(space_request(self, INSERT, { [TUPLE] = array(tuple) }, opts))
end

function space_methods.replace(self, tuple, opts)
    return one(space_request(self, REPLACE, { [TUPLE] = array(tuple) }, opts))
end

function space_methods.upsert(self, tuple, ops, opts)
    space_request(self, UPSERT,
        { [TUPLE] = array(tuple), [OPS] = array(ops), [INDEX_BASE] = 1 }, opts)
end

-- Spaces seen through a timeout proxy carry the proxy, so their requests time out too.
local function space_view(conn, spaces)
    if rawget(conn, '_root') == nil then
        return spaces
    end
    return setmetatable({}, { __index = function(_, name)
        local space = spaces[name]
        if space == nil then
            return nil
        end
        return setmetatable({ _conn = conn }, { __index = function(view, field)
            if field == 'index' then
                local indexes = {}
                for k, index in pairs(space.index) do
                    indexes[k] = setmetatable({ space = view }, { __index = index })
                end
                rawset(view, 'index', indexes)
                return indexes
            end
            return space[field] or space_methods[field]
        end })
    end })
end

conn_mt = {
    __index = function(self, key)
        if key == 'space' then
            return space_view(self, spaces_of(self))
        end
        if key == 'state' or key == 'error' or key == 'peer_uuid' or key == 'schema_id' then
            local root = rawget(self, '_root') or self
            local state, reason, schema_id, _, uuid = state_of(root)
            if root._closed then
                state = 'closed'
            end
            return ({ state = state, error = reason, peer_uuid = uuid,
                schema_id = schema_id })[key]
        end
        local root = rawget(self, '_root')
        if root ~= nil and key ~= '_timeout' then
            local value = root[key]
            if value ~= nil then
                return value
            end
        end
        return conn_methods[key]
    end,
    __tostring = function(self)
        return string.format('net.box connection to %s:%s', tostring(self.host), self.port)
    end,
}

-- }}}

local net_box = {}

-- connect(uri[, {user, password, wait_connected = true, connect_timeout, timeout,
-- reconnect_after}])
function net_box.connect(uri, opts)
    opts = opts or {}
    if type(opts) ~= 'table' then
        error('Usage: net_box.connect(uri[, options])', 2)
    end
    local host, port, user, password = parse_uri(uri)
    local conn_opts = {}
    for k, v in pairs(opts) do
        conn_opts[k] = v
    end
    conn_opts.user = opts.user or user
    conn_opts.password = opts.password or password
    if conn_opts.user == 'guest' and conn_opts.password == nil then
        conn_opts.user = nil
    end
    local conn = setmetatable({ host = host, port = port, opts = conn_opts,
        _timeout = opts.timeout }, conn_mt)
    open_socket(conn)
    if opts.wait_connected ~= false then
        wait_state(conn, opts.connect_timeout)
    end
    return conn
end

net_box.new = net_box.connect

package.loaded['net.box'] = net_box
