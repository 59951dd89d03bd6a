-- builtin/fio.lua: the fio module. Path arithmetic is plain Lua; every call that touches
-- the file system runs on a coio worker while the calling fiber waits (internal.fio).

local internal = require('internal.fio')
local sched = require('internal.sched')

local fio = {}
fio.c = { flag = internal.flags, mode = internal.modes, seek = internal.seek }

-- Run an operation on coio and return what it gave (or nil, 'fio: <error>', errno).
local function call(op, ...)
    sched.check_yieldable('fio.' .. op)
    while true do
        local state, err = internal.call(op, ...)
        if state == 'wait' then
            return sched.suspend()
        elseif state == 'busy' then
            require('fiber').sleep(0.001)
        else
            return nil, err
        end
    end
end

local function check_path(path, usage)
    if type(path) ~= 'string' then
        error('Usage: ' .. usage, 3)
    end
end

-- {{{ paths

function fio.pathjoin(...)
    local parts = {}
    for i = 1, select('#', ...) do
        local part = select(i, ...)
        if type(part) ~= 'string' then
            error('Usage: fio.pathjoin(path[, path ...])', 2)
        end
        if part ~= '' then
            if #parts > 0 then
                part = string.gsub(part, '^/+', '')
            end
            if i < select('#', ...) then
                part = string.gsub(part, '/+$', '')
            end
            if part ~= '' or #parts == 0 then
                parts[#parts + 1] = part
            end
        end
    end
    local path = table.concat(parts, '/')
    if path == '' and select('#', ...) > 0 and select(1, ...) ~= '' then
        return '/'
    end
    return path
end

function fio.basename(path, suffix)
    check_path(path, 'fio.basename(path[, suffix])')
    local base = string.match(path, '([^/]*)$')
    if suffix ~= nil and #suffix > 0 and #base > #suffix
            and string.sub(base, -#suffix) == suffix then
        base = string.sub(base, 1, #base - #suffix)
    end
    return base
end

function fio.dirname(path)
    check_path(path, 'fio.dirname(path)')
    local trimmed = string.gsub(path, '/+$', '')
    if trimmed == '' then
        return path ~= '' and '/' or '.'
    end
    local dir = string.match(trimmed, '^(.*)/[^/]*$')
    if dir == nil then
        return '.'
    end
    if dir == '' then
        return '/'
    end
    return dir
end

function fio.cwd()
    return internal.cwd()
end

function fio.chdir(path)
    check_path(path, 'fio.chdir(path)')
    return internal.chdir(path)
end

function fio.abspath(path)
    check_path(path, 'fio.abspath(path)')
    if string.sub(path, 1, 1) ~= '/' then
        path = fio.pathjoin(internal.cwd(), path)
    end
    -- Fold "." and ".." without touching the file system.
    local parts = {}
    for part in string.gmatch(path, '[^/]+') do
        if part == '..' then
            parts[#parts] = nil
        elseif part ~= '.' then
            parts[#parts + 1] = part
        end
    end
    return '/' .. table.concat(parts, '/')
end

-- }}}

-- {{{ stat

local stat_methods = {}
local stat_mt = { __index = stat_methods }
local S_IFMT = 61440
local kinds = {
    is_reg = 32768, is_dir = 16384, is_link = 40960, is_sock = 49152,
    is_fifo = 4096, is_chr = 8192, is_blk = 24576,
}
for name, bits in pairs(kinds) do
    stat_methods[name] = function(self)
        return bit.band(self.mode, S_IFMT) == bits
    end
end

local function stat_with(op, path)
    local info, err = call(op, path)
    if info == nil then
        return nil, err
    end
    return setmetatable(info, stat_mt)
end

function fio.stat(path)
    check_path(path, 'fio.stat(path)')
    return stat_with('stat', path)
end

function fio.lstat(path)
    check_path(path, 'fio.lstat(path)')
    return stat_with('lstat', path)
end

function fio.exists(path)
    return type(path) == 'string' and fio.stat(path) ~= nil
end

fio.path = {
    exists = fio.exists,
    lexists = function(path) return type(path) == 'string' and fio.lstat(path) ~= nil end,
    is_dir = function(path)
        local st = type(path) == 'string' and fio.stat(path)
        return st and st:is_dir() or false
    end,
    is_file = function(path)
        local st = type(path) == 'string' and fio.stat(path)
        return st and st:is_reg() or false
    end,
    is_link = function(path)
        local st = type(path) == 'string' and fio.lstat(path)
        return st and st:is_link() or false
    end,
}

-- }}}

-- {{{ directories and names

function fio.mkdir(path, mode)
    check_path(path, 'fio.mkdir(path[, mode])')
    local ok, err = call('mkdir', path, mode or tonumber('777', 8))
    if ok == nil then
        return false, err
    end
    return true
end

function fio.mktree(path, mode)
    check_path(path, 'fio.mktree(path[, mode])')
    mode = mode or tonumber('777', 8)
    local current = string.sub(path, 1, 1) == '/' and '' or '.'
    for part in string.gmatch(path, '[^/]+') do
        current = current .. '/' .. part
        local st = fio.stat(current)
        if st == nil then
            local ok, err = fio.mkdir(current, mode)
            if not ok and not fio.path.is_dir(current) then
                return false, err
            end
        elseif not st:is_dir() then
            return false, string.format('Error creating directory %s: File exists', current)
        end
    end
    return true
end

function fio.rmdir(path)
    check_path(path, 'fio.rmdir(path)')
    local ok, err = call('rmdir', path)
    if ok == nil then
        return false, err
    end
    return true
end

function fio.listdir(path)
    check_path(path, 'fio.listdir(path)')
    local names, err = call('listdir', path)
    if names == nil then
        return nil, string.format("can't listdir %s: %s", path, err)
    end
    return names
end

function fio.rmtree(path)
    check_path(path, 'fio.rmtree(path)')
    local names, err = fio.listdir(path)
    if names == nil then
        return false, err
    end
    for _, name in ipairs(names) do
        local child = fio.pathjoin(path, name)
        local st = fio.lstat(child)
        local ok
        if st and st:is_dir() then
            ok, err = fio.rmtree(child)
        else
            ok, err = fio.unlink(child)
        end
        if not ok then
            return false, err
        end
    end
    return fio.rmdir(path)
end

function fio.glob(pattern)
    check_path(pattern, 'fio.glob(pattern)')
    return call('glob', pattern)
end

local function boolean_call(op, usage, ...)
    local ok, err = call(op, ...)
    if ok == nil then
        return false, err
    end
    return true
end

function fio.unlink(path)
    check_path(path, 'fio.unlink(path)')
    return boolean_call('unlink', 'fio.unlink(path)', path)
end

function fio.rename(from, to)
    check_path(from, 'fio.rename(from, to)')
    check_path(to, 'fio.rename(from, to)')
    return boolean_call('rename', nil, from, to)
end

function fio.symlink(target, link)
    return boolean_call('symlink', nil, target, link)
end

function fio.link(target, link)
    return boolean_call('link', nil, target, link)
end

function fio.readlink(path)
    return call('readlink', path)
end

function fio.truncate(path, length)
    return boolean_call('truncate', nil, path, length or 0)
end

function fio.chmod(path, mode)
    return boolean_call('chmod', nil, path, mode)
end

function fio.copyfile(from, to)
    return boolean_call('copyfile', nil, from, to)
end

function fio.utime(path, atime, mtime)
    local now = os.time()
    atime = atime or now
    return boolean_call('utime', nil, path, atime, mtime or atime)
end

function fio.tempdir()
    local base = os.getenv('TMPDIR') or '/tmp'
    for _ = 1, 100 do
        local name = string.format('%s/tarantula-%06x', base, math.random(0, 0xffffff))
        if fio.mkdir(name, tonumber('700', 8)) then
            return name
        end
    end
    return nil, 'fio: can not create a temporary directory'
end

-- }}}

-- {{{ file handles

local handle_methods = {}
local handle_mt = {
    __index = handle_methods,
    __tostring = function(self) return string.format('fh: %d', self.fh) end,
}

local function flags_of(flags)
    if flags == nil then
        return internal.flags.O_RDONLY
    end
    if type(flags) == 'number' then
        return flags
    end
    if type(flags) == 'string' then
        flags = { flags }
    end
    local value = 0
    for _, name in ipairs(flags) do
        local bits = internal.flags[name]
        if bits == nil then
            error(string.format('fio.open: unknown flag %s', tostring(name)), 3)
        end
        value = bit.bor(value, bits)
    end
    return value
end

function fio.open(path, flags, mode)
    check_path(path, 'fio.open(path[, flags[, mode]])')
    local fd, err = call('open', path, flags_of(flags), mode or tonumber('666', 8))
    if fd == nil then
        return nil, err
    end
    return setmetatable({ fh = fd, path = path }, handle_mt)
end

local CHUNK = 65536

function handle_methods.read(self, size)
    if size ~= nil then
        return call('read', self.fh, size)
    end
    local parts = {}
    while true do
        local chunk, err = call('read', self.fh, CHUNK)
        if chunk == nil then
            return nil, err
        end
        if chunk == '' then
            break
        end
        parts[#parts + 1] = chunk
    end
    return table.concat(parts)
end

function handle_methods.pread(self, size, offset)
    return call('pread', self.fh, size, offset)
end

function handle_methods.write(self, data)
    local ok, err = call('write', self.fh, tostring(data))
    if ok == nil then
        return false, err
    end
    return true
end

function handle_methods.pwrite(self, data, offset)
    local ok, err = call('pwrite', self.fh, tostring(data), offset)
    if ok == nil then
        return false, err
    end
    return true
end

function handle_methods.seek(self, offset, whence)
    if type(whence) == 'string' then
        whence = internal.seek[whence]
    end
    return call('seek', self.fh, offset or 0, whence or internal.seek.SEEK_SET)
end

function handle_methods.close(self)
    local ok, err = call('close', self.fh)
    if ok == nil then
        return false, err
    end
    return true
end

function handle_methods.fsync(self)
    return call('fsync', self.fh) == true
end
handle_methods.fdatasync = handle_methods.fsync

function handle_methods.stat(self)
    local info, err = call('fstat', self.fh)
    if info == nil then
        return nil, err
    end
    return setmetatable(info, stat_mt)
end

function handle_methods.truncate(self, length)
    return call('ftruncate', self.fh, length or 0) == true
end

-- }}}

package.loaded.fio = fio
