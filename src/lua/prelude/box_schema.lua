-- builtin/box_schema.lua: box.space, index objects, box.schema, box.tuple, transactions,
-- box.once. DDL helpers only write rows into the system spaces, as Tarantool's schema.lua
-- does; the triggers behind those spaces change the schema, and box.space follows through
-- the schema hook.

local data = require('internal.data')
local errors = require('internal.error')
local util = require('internal.util')

local codes = util.errcodes
local SPACE, INDEX, SCHEMA = 280, 288, 272

-- Raise a box.error made by Rust (the `value, err` pair its data functions return), else
-- return the value, or nothing at all for "not found", as Tarantool does.
local function check(value, err)
    if err ~= nil then
        error(err, 3)
    end
    if value == nil then
        return
    end
    return value
end

-- The hot requests first try internal.data.fast (raw Lua C functions): they answer a
-- result, `false, code, message, type` for a failure, or a lone false where only the
-- general function applies.
local fast = data.fast

-- true and the result of a fast answer (raising its failure), or false when the general
-- function must answer. The error's trace points at the caller of the box method.
local function settle(result, code, message, kind)
    if result ~= false then
        return true, result
    end
    if code ~= nil then
        error(errors.new(code, message, kind, 3), 3)
    end
    return false
end

local function raise(code, ...)
    error(errors.make(2, code, ...), 3)
end

-- With a WAL thread (wal_mode 'write' or 'fsync'), a change is acknowledged only once it
-- is written: the fiber waits for its commit, and a failed write raises ER_WAL_IO (the
-- change is rolled back by then). `wal_async` is refreshed by box.cfg.
local commit_wait, commit_result = data.commit_wait, data.commit_result
local suspend = require('internal.sched').suspend
local wal_async = false

local isyieldable = coroutine.isyieldable

-- Where the fiber cannot yield (a trigger, a callback of a C function), the change commits
-- without waiting: the WAL writes in order, so the statement around it, which waits, is
-- acknowledged only after it.
local function durable(...)
    if wal_async and isyieldable() then
        while commit_wait() do
            suspend()
        end
        local err = commit_result()
        if err ~= nil then
            error(err, 3)
        end
    end
    return ...
end

box.index = {
    EQ = 0, REQ = 1, ALL = 2, LT = 3, LE = 4, GE = 5, GT = 6,
    BITS_ALL_SET = 7, BITS_ANY_SET = 8, BITS_ALL_NOT_SET = 9, OVERLAPS = 10, NEIGHBOR = 11,
}

-- {{{ box.tuple

box.tuple = {
    new = function(...)
        local count, value = select('#', ...), ...
        if count ~= 1 or type(value) ~= 'table' then
            value = { ... }
            for i = 1, count do
                if value[i] == nil then
                    value[i] = box.NULL
                end
            end
        end
        return data.new_tuple(value)
    end,
}

-- The tuple methods that can fail, as Lua so that they raise box.error objects.
data.set_tuple_methods({
    update = function(tuple, ops) return check(data.tuple_update(tuple, ops)) end,
    upsert = function(tuple, ops) return check(data.tuple_upsert(tuple, ops)) end,
    transform = function(tuple, ...) return data.tuple_transform(tuple, ...) end,
})

-- }}}

-- {{{ space and index objects

local space_methods, index_methods = {}, {}
local space_mt = { __index = space_methods }
local index_mt = { __index = index_methods }

-- The tables box.space hands out stay the same across schema changes, so a script that
-- keeps `s = box.space.tester` sees the indexes it creates later.
local spaces = {}

local function set_index_objects(space, info)
    local index = {}
    for iid, entry in pairs(info.index) do
        local object = space._indexes[iid] or setmetatable({}, index_mt)
        for key in pairs(object) do
            object[key] = nil
        end
        for key, value in pairs(entry) do
            object[key] = value
        end
        index[iid] = object
        index[entry.name] = object
    end
    space._indexes = {}
    for iid, object in pairs(index) do
        if type(iid) == 'number' then
            space._indexes[iid] = object
        end
    end
    space.index = index
end

local function refresh(id)
    local info = data.space_info(id)
    local space = spaces[id]
    if space ~= nil then
        if rawget(box.space, space.name) == space then
            rawset(box.space, space.name, nil)
        end
        if info == nil then
            spaces[id] = nil
            rawset(box.space, id, nil)
            space.enabled = false
            return
        end
    elseif info == nil then
        return
    else
        space = setmetatable({ _indexes = {} }, space_mt)
        spaces[id] = space
    end
    for _, key in ipairs({ 'id', 'name', 'engine', 'field_count', 'temporary' }) do
        space[key] = info[key]
    end
    space.enabled = info.index[0] ~= nil
    set_index_objects(space, info)
    rawset(box.space, id, space)
    rawset(box.space, space.name, space)
end

local function on_schema(ids)
    for _, id in ipairs(ids) do
        refresh(id)
    end
end

-- {[space id] = {functions}}: on_replace triggers, and spaces whose triggers are off.
local triggers, triggers_off = {}, {}

local function run_triggers(space_id, old, new)
    local list = triggers[space_id]
    if list == nil or triggers_off[space_id] then
        return nil
    end
    local space = spaces[space_id]
    for _, trigger in ipairs(list) do
        local ok, err = pcall(trigger, old, new, space and space.name)
        if not ok then
            if errors.is_error(err) then
                return err
            end
            return errors.new(codes.PROC_LUA, tostring(err), 'ClientError')
        end
    end
    return nil
end

data.set_hooks(run_triggers, on_schema)

local function check_space(space, method)
    if type(space) ~= 'table' or getmetatable(space) ~= space_mt then
        error(string.format('Use space:%s(...) instead of space.%s(...)', method, method), 3)
    end
    if spaces[space.id] ~= space then
        raise(codes.NO_SUCH_SPACE, space.id)
    end
end

local function check_index(index, method)
    if type(index) ~= 'table' or getmetatable(index) ~= index_mt then
        error(string.format('Use index:%s(...) instead of index.%s(...)', method, method), 3)
    end
end

local function primary(space)
    local index = space.index[0]
    if index == nil then
        raise(codes.NO_SUCH_INDEX, 0, space.name)
    end
    return index
end

-- select/pairs options: an iterator (name or number), limit, offset.
local function options(opts)
    if opts == nil then
        return nil, nil, nil
    end
    if type(opts) ~= 'table' then
        return opts, nil, nil
    end
    return opts.iterator, opts.limit, opts.offset
end

function index_methods.select(index, key, opts)
    check_index(index, 'select')
    local iterator, limit, offset = options(opts)
    if iterator == nil and (key == nil or (type(key) == 'table' and #key == 0)) then
        iterator = box.index.ALL
    end
    return check(data.select(index.space_id, index.id, iterator, offset, limit, key))
end

local fast_get = fast.get

function index_methods.get(index, key)
    check_index(index, 'get')
    -- settle() inlined: this is the hottest read.
    local tuple, code, message, kind = fast_get(index.space_id, index.id, key)
    if tuple then
        return tuple
    elseif tuple == nil then
        return
    elseif code ~= nil then
        error(errors.new(code, message, kind, 2), 2)
    end
    return check(data.get(index.space_id, index.id, key))
end

function index_methods.pairs(index, key, opts)
    check_index(index, 'pairs')
    local iterator = options(opts)
    if iterator == nil and (key == nil or (type(key) == 'table' and #key == 0)) then
        iterator = box.index.ALL
    end
    local cursor = check(data.cursor(index.space_id, index.id, iterator, key))
    -- fast.next(cursor, _) answers `true, tuple`, then nil at the end.
    return fast.next, cursor, nil
end
index_methods.ipairs = index_methods.pairs

function index_methods.count(index, key, opts)
    check_index(index, 'count')
    local iterator = options(opts)
    if iterator == nil and (key == nil or (type(key) == 'table' and #key == 0)) then
        return check(data.len(index.space_id, index.id))
    end
    local count = 0
    for _ in index:pairs(key, { iterator = iterator or box.index.EQ }) do
        count = count + 1
    end
    return count
end

function index_methods.len(index)
    check_index(index, 'len')
    return check(data.len(index.space_id, index.id))
end

function index_methods.min(index, key)
    check_index(index, 'min')
    return index:select(key, { iterator = box.index.GE, limit = 1 })[1]
end

function index_methods.max(index, key)
    check_index(index, 'max')
    return index:select(key, { iterator = box.index.LE, limit = 1 })[1]
end

function index_methods.random(index, seed)
    check_index(index, 'random')
    seed = tonumber(seed) or math.random(0, 2 ^ 31)
    return check(data.random(index.space_id, index.id, math.floor(math.abs(seed))))
end

function index_methods.bsize(index)
    check_index(index, 'bsize')
    return data.index_bsize(index.space_id, index.id)
end

function index_methods.update(index, key, ops)
    check_index(index, 'update')
    local done, tuple = settle(fast.update(index.space_id, index.id, key, ops))
    if done then
        return durable(check(tuple))
    end
    return durable(check(data.update(index.space_id, index.id, key, ops)))
end

function index_methods.delete(index, key)
    check_index(index, 'delete')
    local done, tuple = settle(fast.delete(index.space_id, index.id, key))
    if done then
        return durable(check(tuple))
    end
    return durable(check(data.delete(index.space_id, index.id, key)))
end

function index_methods.drop(index)
    check_index(index, 'drop')
    box.space._index:delete({ index.space_id, index.id })
end

function index_methods.rename(index, name)
    check_index(index, 'rename')
    box.space._index:update({ index.space_id, index.id }, { { '=', 3, name } })
end

-- }}}

-- {{{ DDL: box.schema.space, create_index, alter

-- Index parts in any of the forms scripts use: {1, 'NUM', 2, 'STR'}, {{1, 'unsigned'}},
-- {{field = 1, type = 'unsigned'}}; stored 0-based as {{0, 'num'}}.
local function parts_of(parts)
    if parts == nil then
        return { { 0, 'num' } }
    end
    if type(parts) ~= 'table' then
        raise(codes.ILLEGAL_PARAMS, "options.parts must be a table")
    end
    local result = {}
    if type(parts[1]) == 'table' then
        for _, part in ipairs(parts) do
            local field = part.field or part[1]
            local kind = part.type or part[2] or 'num'
            if type(field) ~= 'number' then
                raise(codes.ILLEGAL_PARAMS, "options.parts: expected field_no (number), type (string) pairs")
            end
            table.insert(result, { field - 1, kind })
        end
        return result
    end
    for i = 1, #parts, 2 do
        local field, kind = parts[i], parts[i + 1] or 'num'
        if type(field) ~= 'number' or type(kind) ~= 'string' then
            raise(codes.ILLEGAL_PARAMS, "options.parts: expected field_no (number), type (string) pairs")
        end
        table.insert(result, { field - 1, kind })
    end
    return result
end

local INDEX_OPTIONS = { type = 'string', id = 'number', unique = 'boolean', parts = 'table',
    if_not_exists = 'boolean', dimension = 'number', distance = 'string' }
local SPACE_OPTIONS = { id = 'number', field_count = 'number', format = 'table', temporary = 'boolean',
    if_not_exists = 'boolean', user = 'string', engine = 'string' }

local function check_options(options, template, what)
    if options == nil then
        return {}
    end
    if type(options) ~= 'table' then
        raise(codes.ILLEGAL_PARAMS, "options should be a table")
    end
    for key, value in pairs(options) do
        local expected = template[key]
        if expected == nil then
            raise(codes.ILLEGAL_PARAMS, string.format("unexpected option '%s'", key))
        end
        if type(value) ~= expected then
            raise(codes.ILLEGAL_PARAMS, string.format("options parameter '%s' should be of type %s", key, expected))
        end
    end
    return options
end

-- The name and options of a create call, checked.
local function check_create(name, options, known)
    if type(name) ~= 'string' then
        raise(codes.ILLEGAL_PARAMS, "name should be a string")
    end
    return check_options(options, known)
end

-- create() of something that exists: the object itself with if_not_exists, else `code`.
local function exists(existing, options, code, name)
    if options.if_not_exists then
        return existing
    end
    error(errors.make(2, code, name), 3)
end

function space_methods.create_index(space, name, options)
    check_space(space, 'create_index')
    options = check_create(name, options, INDEX_OPTIONS)
    local existing = space.index[name]
    if existing ~= nil then
        return exists(existing, options, codes.INDEX_EXISTS, name)
    end
    local iid = options.id
    if iid == nil then
        iid = 0
        for id in pairs(space._indexes) do
            iid = math.max(iid, id + 1)
        end
    end
    local unique = options.unique
    if unique == nil then
        unique = true
    end
    box.space._index:insert({ space.id, iid, name, options.type or 'tree', { unique = unique },
        parts_of(options.parts) })
    return space.index[name]
end

function index_methods.alter(index, options)
    check_index(index, 'alter')
    options = check_options(options, INDEX_OPTIONS)
    local row = box.space._index:get({ index.space_id, index.id })
    if row == nil then
        raise(codes.NO_SUCH_INDEX, index.id, index.space_id)
    end
    local unique = options.unique
    if unique == nil then
        unique = index.unique
    end
    local parts = options.parts and parts_of(options.parts) or row[6]
    box.space._index:replace({ index.space_id, index.id, options.name or index.name,
        options.type or row[4], { unique = unique }, parts })
end

-- What box gets once box.cfg{} has run (before that, box.schema and friends raise
-- "Please call box.cfg{} first").
local configured_api = {
    schema = { space = {} },
    info = require('internal.box_info').info,
    slab = require('internal.box_info').slab,
}

function configured_api.schema.space.create(name, options)
    options = check_create(name, options, SPACE_OPTIONS)
    local existing = box.space[name]
    if existing ~= nil then
        return exists(existing, options, codes.SPACE_EXISTS, name)
    end
    local id = options.id
    if id == nil then
        local max_id = box.space._schema:update({ 'max_id' }, { { '+', 2, 1 } })
        id = max_id[2]
    end
    local owner = 1
    if options.user ~= nil then
        local user = box.space._user.index.name:get({ options.user })
        if user == nil then
            raise(codes.NO_SUCH_USER, options.user)
        end
        owner = user[1]
    end
    local flags = setmetatable({}, { __serialize = 'map' })
    if options.temporary then
        flags.temporary = true
    end
    local format = options.format or setmetatable({}, { __serialize = 'seq' })
    box.space._space:insert({ id, owner, name, options.engine or 'memtx', options.field_count or 0,
        flags, format })
    return box.space[id]
end
configured_api.schema.create_space = configured_api.schema.space.create

function configured_api.schema.space.drop(space_id)
    local space = box.space[space_id]
    if space == nil then
        raise(codes.NO_SUCH_SPACE, space_id)
    end
    space:drop()
end

function space_methods.drop(space)
    check_space(space, 'drop')
    local ids = {}
    for id in pairs(space._indexes) do
        table.insert(ids, id)
    end
    table.sort(ids, function(a, b) return a > b end)
    for _, id in ipairs(ids) do
        box.space._index:delete({ space.id, id })
    end
    box.space._space:delete({ space.id })
    triggers[space.id] = nil
    data.set_trigger_space(space.id, false)
end

function space_methods.rename(space, name)
    check_space(space, 'rename')
    box.space._space:update({ space.id }, { { '=', 3, name } })
end

function space_methods.format(space, format)
    check_space(space, 'format')
    local row = box.space._space:get({ space.id })
    if format == nil then
        return row[7]
    end
    box.space._space:update({ space.id }, { { '=', 7, format } })
end

-- }}}

-- {{{ DML on spaces

-- space:insert and space:replace, with settle() inlined: the hot writes.
local function store_method(name)
    local fast_store, store = fast[name], data[name]
    return function(space, tuple)
        check_space(space, name)
        local result, code, message, kind = fast_store(space.id, tuple)
        if result then
            return durable(result)
        elseif code ~= nil then
            error(errors.new(code, message, kind, 2), 2)
        end
        return durable(check(store(space.id, tuple)))
    end
end
space_methods.insert = store_method('insert')
space_methods.replace = store_method('replace')
space_methods.put = space_methods.replace

function space_methods.update(space, key, ops)
    check_space(space, 'update')
    local done, tuple = settle(fast.update(space.id, 0, key, ops))
    if done then
        return durable(check(tuple))
    end
    return durable(check(data.update(space.id, 0, key, ops)))
end

function space_methods.upsert(space, tuple, ops)
    check_space(space, 'upsert')
    return durable(check(data.upsert(space.id, tuple, ops)))
end

function space_methods.delete(space, key)
    check_space(space, 'delete')
    local done, tuple = settle(fast.delete(space.id, 0, key))
    if done then
        return durable(check(tuple))
    end
    return durable(check(data.delete(space.id, 0, key)))
end

function space_methods.select(space, key, opts)
    check_space(space, 'select')
    return primary(space):select(key, opts)
end

function space_methods.get(space, key)
    check_space(space, 'get')
    return primary(space):get(key)
end

function space_methods.pairs(space, key, opts)
    check_space(space, 'pairs')
    return primary(space):pairs(key, opts)
end
space_methods.ipairs = space_methods.pairs

function space_methods.count(space, key, opts)
    check_space(space, 'count')
    return primary(space):count(key, opts)
end

function space_methods.len(space)
    check_space(space, 'len')
    if space.index[0] == nil then
        return 0
    end
    return check(data.len(space.id, 0))
end

function space_methods.bsize(space)
    check_space(space, 'bsize')
    return data.bsize(space.id)
end

function space_methods.truncate(space)
    check_space(space, 'truncate')
    local index = primary(space)
    while index:len() > 0 do
        local keys = {}
        for _, tuple in index:pairs() do
            local key = {}
            for i, part in ipairs(index.parts) do
                key[i] = tuple[part.fieldno]
            end
            table.insert(keys, key)
            if #keys >= 1000 then
                break
            end
        end
        for _, key in ipairs(keys) do
            space:delete(key)
        end
    end
end

function space_methods.auto_increment(space, tuple)
    check_space(space, 'auto_increment')
    local max = primary(space):max()
    local id = max == nil and 1 or max[1] + 1
    local row = { id }
    for _, value in ipairs(tuple or {}) do
        table.insert(row, value)
    end
    return space:insert(row)
end

function space_methods.on_replace(space, new_trigger, old_trigger)
    check_space(space, 'on_replace')
    local list = triggers[space.id] or {}
    if old_trigger ~= nil then
        local found = false
        for i, trigger in ipairs(list) do
            if trigger == old_trigger then
                table.remove(list, i)
                found = true
                break
            end
        end
        if not found then
            raise(codes.NO_SUCH_TRIGGER)
        end
    end
    if new_trigger ~= nil then
        if type(new_trigger) ~= 'function' then
            error('trigger reset: incorrect arguments', 2)
        end
        table.insert(list, new_trigger)
    end
    triggers[space.id] = list
    data.set_trigger_space(space.id, #list > 0)
    if new_trigger == nil and old_trigger == nil then
        return list
    end
    if new_trigger ~= nil then
        return new_trigger
    end
end

function space_methods.run_triggers(space, enabled)
    check_space(space, 'run_triggers')
    triggers_off[space.id] = not enabled or nil
end

-- }}}

-- {{{ box.error.injection: fault injection in the WAL, for tests

local injections = { ERRINJ_WAL_IO = false, ERRINJ_WAL_WRITE_PARTIAL = -1, ERRINJ_WAL_DELAY = 0 }

box.error.injection = {
    set = function(name, value)
        if injections[name] == nil then
            raise(codes.ILLEGAL_PARAMS, string.format("error injection '%s' is not found",
                tostring(name)))
        end
        local ok, why = data.inject(name, value)
        if not ok then
            raise(codes.ILLEGAL_PARAMS, string.format("error injection '%s': %s", name, why))
        end
        injections[name] = value
        return true
    end,
    get = function(name)
        return injections[name]
    end,
    info = function()
        local info = {}
        for name, value in pairs(injections) do
            info[name] = { state = value }
        end
        return info
    end,
}

-- }}}

-- {{{ transactions, box.once

function configured_api.begin()
    check(data.begin())
end

function configured_api.commit()
    check(data.commit())
    durable()
end

function configured_api.rollback()
    data.rollback()
end

function configured_api.once(key, fn, ...)
    if type(key) ~= 'string' or type(fn) ~= 'function' then
        raise(codes.ILLEGAL_PARAMS, "Usage: box.once(key, func, ...)")
    end
    key = 'once' .. key
    if box.space._schema:get({ key }) ~= nil then
        return
    end
    box.space._schema:put({ key })
    return fn(...)
end

-- }}}

-- {{{ users, roles, functions, grants (rows of _user, _priv, _func)

local session = require('internal.session')
local digest = require('digest')

local MAP = { __serialize = 'map' }
local PRIVILEGES = { read = 1, write = 2, execute = 4 }

local function user_row(name)
    if type(name) == 'number' then
        return box.space._user:get({ name })
    end
    return box.space._user.index.name:get({ name })
end

local function privilege_bits(privileges)
    if type(privileges) ~= 'string' then
        raise(codes.ILLEGAL_PARAMS, "privilege should be a string")
    end
    local bits = 0
    for word in string.gmatch(privileges, '[^,%s]+') do
        local bit = PRIVILEGES[word]
        if bit == nil then
            raise(codes.ILLEGAL_PARAMS, string.format("unknown privilege '%s'", word))
        end
        bits = _G.bit.bor(bits, bit)
    end
    return bits
end

local function privilege_string(bits)
    local names = {}
    for _, name in ipairs({ 'read', 'write', 'execute' }) do
        if bit.band(bits, PRIVILEGES[name]) ~= 0 then
            table.insert(names, name)
        end
    end
    return table.concat(names, ',')
end

-- The id of an object a grant names, with Tarantool's errors for a missing one.
local function object_id(object_type, object_name)
    if object_type == 'universe' then
        return 0
    elseif object_type == 'space' then
        local space = box.space[object_name]
        if space == nil then
            raise(codes.NO_SUCH_SPACE, tostring(object_name))
        end
        return space.id
    elseif object_type == 'function' then
        local func = type(object_name) == 'number' and box.space._func:get({ object_name })
            or box.space._func.index.name:get({ object_name })
        if func == nil then
            raise(codes.NO_SUCH_FUNCTION, tostring(object_name))
        end
        return func[1]
    elseif object_type == 'role' then
        local role = user_row(object_name)
        if role == nil or role[4] ~= 'role' then
            raise(codes.NO_SUCH_ROLE, tostring(object_name))
        end
        return role[1]
    end
    raise(codes.UNKNOWN_SCHEMA_OBJECT, tostring(object_type))
end

local function object_name_of(object_type, id)
    if object_type == 'universe' then
        return ''
    elseif object_type == 'space' then
        local space = box.space[id]
        return space and space.name or tostring(id)
    elseif object_type == 'function' then
        local func = box.space._func:get({ id })
        return func and func[3] or tostring(id)
    end
    local user = box.space._user:get({ id })
    return user and user[3] or tostring(id)
end

local function grantee_row(name, want_role)
    local row = user_row(name)
    if row == nil or (want_role and row[4] ~= 'role') then
        raise(want_role and codes.NO_SUCH_ROLE or codes.NO_SUCH_USER, tostring(name))
    end
    return row
end

-- The arguments of grant and revoke resolved: a table with the grantee's row, the
-- privileges (names and bits), the object type and id, the options and the bits held now.
local function grant_request(want_role, name, privileges, object_type, object_name, options)
    local grantee = grantee_row(name, want_role)
    if object_type == nil then
        -- grant(user, 'role name'): the role, with execute
        privileges, object_type, object_name = 'execute', 'role', privileges
    end
    if type(object_name) == 'table' and options == nil then
        options, object_name = object_name, nil
    end
    local id = object_id(object_type, object_name)
    local row = box.space._priv:get({ grantee[1], object_type, id })
    return {
        grantee = grantee, privileges = privileges, bits = privilege_bits(privileges),
        object_type = object_type, id = id, options = options or {}, old = row and row[5] or 0,
    }
end

local function grant(...)
    local r = grant_request(...)
    if bit.band(r.old, r.bits) == r.bits then
        if r.options.if_not_exists then
            return
        end
        if r.object_type == 'role' then
            raise(codes.ROLE_GRANTED, r.grantee[3], object_name_of('role', r.id))
        end
        raise(codes.PRIV_GRANTED, r.grantee[3], r.privileges, r.object_type,
            object_name_of(r.object_type, r.id))
    end
    local grantor = r.options.grantor and grantee_row(r.options.grantor)[1] or session.uid()
    box.space._priv:replace({ grantor, r.grantee[1], r.object_type, r.id, bit.bor(r.old, r.bits) })
end

local function revoke(...)
    local r = grant_request(...)
    if bit.band(r.old, r.bits) ~= r.bits then
        if r.options.if_exists then
            return
        end
        if r.object_type == 'role' then
            raise(codes.ROLE_NOT_GRANTED, r.grantee[3], object_name_of('role', r.id))
        end
        raise(codes.PRIV_NOT_GRANTED, r.grantee[3], r.privileges, r.object_type,
            object_name_of(r.object_type, r.id))
    end
    local key = { r.grantee[1], r.object_type, r.id }
    local new = bit.band(r.old, bit.bnot(r.bits))
    if new == 0 then
        box.space._priv:delete(key)
    else
        box.space._priv:update(key, { { '=', 5, new } })
    end
end

local function info(name)
    local row = user_row(name or session.uid())
    if row == nil then
        raise(codes.NO_SUCH_USER, tostring(name))
    end
    local result = {}
    for _, grant_row in box.space._priv:pairs({ row[1] }) do
        table.insert(result, { privilege_string(grant_row[5]), grant_row[3],
            object_name_of(grant_row[3], grant_row[4]) })
    end
    return result
end

local function drop_grantee(want_role, name, options)
    local row = user_row(name)
    if row == nil or (want_role and row[4] ~= 'role') then
        if options and options.if_exists then
            return
        end
        raise(want_role and codes.NO_SUCH_ROLE or codes.NO_SUCH_USER, tostring(name))
    end
    local uid = row[1]
    if uid <= 3 then
        raise(codes.DROP_USER, row[3], 'the user or the role is a system')
    end
    local keys = {}
    for _, grant_row in box.space._priv:pairs({ uid }) do
        table.insert(keys, { grant_row[2], grant_row[3], grant_row[4] })
    end
    for _, grant_row in box.space._priv:pairs() do
        if grant_row[3] == 'role' and grant_row[4] == uid then
            table.insert(keys, { grant_row[2], grant_row[3], grant_row[4] })
        end
    end
    for _, key in ipairs(keys) do
        box.space._priv:delete(key)
    end
    box.space._user:delete({ uid })
end

local function password_auth(password)
    return setmetatable({ ['chap-sha1'] = digest.base64_encode(digest.sha1(digest.sha1(password))) }, MAP)
end

local user_api, role_api, func_api = {}, {}, {}

-- The checks before creating a user or role: the name, and no user or role with it (quietly
-- with if_not_exists). Returns the options, or nil when there is nothing to do.
local function grantee_to_create(name, options)
    if type(name) ~= 'string' then
        raise(codes.ILLEGAL_PARAMS, "name should be a string")
    end
    options = options or {}
    local existing = user_row(name)
    if existing ~= nil then
        if options.if_not_exists then
            return nil
        end
        raise(existing[4] == 'role' and codes.ROLE_EXISTS or codes.USER_EXISTS, name)
    end
    return options
end

function user_api.create(name, options)
    options = grantee_to_create(name, options)
    if options == nil then
        return
    end
    local auth = options.password and password_auth(options.password) or setmetatable({}, MAP)
    local row = box.space._user:auto_increment({ session.uid(), name, 'user', auth })
    grant(false, row[1], 'execute', 'role', 'public')
end

function user_api.drop(name, options)
    drop_grantee(false, name, options)
end

function user_api.exists(name)
    local row = user_row(name)
    return row ~= nil and row[4] == 'user'
end

function user_api.passwd(name, password)
    if password == nil then
        name, password = session.user(), name
    end
    local row = grantee_row(name)
    if row[1] == 0 then
        raise(codes.GUEST_USER_PASSWORD)
    end
    box.space._user:update({ row[1] }, { { '=', 5, password_auth(password) } })
end

function user_api.password(password)
    return digest.base64_encode(digest.sha1(digest.sha1(password)))
end

function user_api.grant(name, ...) grant(false, name, ...) end
function user_api.revoke(name, ...) revoke(false, name, ...) end
user_api.info = info

function role_api.create(name, options)
    if grantee_to_create(name, options) == nil then
        return
    end
    box.space._user:auto_increment({ session.uid(), name, 'role' })
end

function role_api.drop(name, options)
    drop_grantee(true, name, options)
end

function role_api.exists(name)
    local row = user_row(name)
    return row ~= nil and row[4] == 'role'
end

function role_api.grant(name, ...) grant(true, name, ...) end
function role_api.revoke(name, ...) revoke(true, name, ...) end
role_api.info = info

function func_api.create(name, options)
    if type(name) ~= 'string' then
        raise(codes.ILLEGAL_PARAMS, "name should be a string")
    end
    options = options or {}
    if box.space._func.index.name:get({ name }) ~= nil then
        if options.if_not_exists then
            return
        end
        raise(codes.FUNCTION_EXISTS, name)
    end
    box.space._func:auto_increment({ session.uid(), name, options.setuid and 1 or 0, 'LUA' })
end

function func_api.drop(name, options)
    local row = box.space._func.index.name:get({ name })
    if row == nil then
        if options and options.if_exists then
            return
        end
        raise(codes.NO_SUCH_FUNCTION, name)
    end
    local keys = {}
    for _, grant_row in box.space._priv.index.object:pairs({ 'function', row[1] }) do
        table.insert(keys, { grant_row[2], grant_row[3], grant_row[4] })
    end
    for _, key in ipairs(keys) do
        box.space._priv:delete(key)
    end
    box.space._func:delete({ row[1] })
end

function func_api.exists(name)
    return box.space._func.index.name:get({ name }) ~= nil
end

configured_api.schema.user = user_api
configured_api.schema.role = role_api
configured_api.schema.func = func_api

-- box.session: the running fiber's session. `storage` is a table of its own per session.
local storages = {}
configured_api.session = setmetatable({
    id = session.id,
    uid = session.uid,
    user = session.user,
    peer = session.peer,
    type = session.type,
    exists = session.exists,
    su = function(user, fn, ...)
        local previous = check(session.su(user))
        if fn == nil then
            return
        end
        local result = require('internal.sched').pack(pcall(fn, ...))
        session.su(previous)
        if not result[1] then
            error(result[2], 0)
        end
        return unpack(result, 2, result.n)
    end,
}, {
    __index = function(_, key)
        if key == 'storage' then
            local id = session.id()
            storages[id] = storages[id] or {}
            return storages[id]
        end
    end,
})

-- }}}

package.loaded['internal.box_schema'] = {
    -- Called by the first successful box.cfg{}.
    install = function()
        wal_async = data.wal_async()
        for key, value in pairs(configured_api) do
            rawset(box, key, value)
        end
        rawset(box, 'space', {})
        for _, id in ipairs(data.space_ids()) do
            refresh(id)
        end
    end,
    api = configured_api,
    -- box.cfg may start or stop the WAL thread.
    refresh_wal = function() wal_async = data.wal_async() end,
}
