-- builtin/log.lua: the log module: error, warn, info, verbose, debug, with string.format
-- arguments, writing Tarantool's log lines through the server log.

local util = require('internal.util')

local SYSERROR, ERROR, CRIT, WARN, INFO, VERBOSE, DEBUG = 1, 2, 3, 4, 5, 6, 7

local log = {}

local function say(level, fmt, ...)
    if level > util.log_level() then
        return
    end
    local message
    if select('#', ...) == 0 then
        if type(fmt) == 'table' then
            local ok, text = pcall(require('json').encode, fmt)
            message = ok and text or tostring(fmt)
        else
            message = tostring(fmt)
        end
    else
        message = string.format(tostring(fmt), ...)
    end
    local info = debug.getinfo(3, 'Sl')
    local file, line
    if info then
        file, line = info.short_src, info.currentline
    end
    util.say(level, file, line, message)
end

function log.error(fmt, ...) say(ERROR, fmt, ...) end
function log.warn(fmt, ...) say(WARN, fmt, ...) end
function log.info(fmt, ...) say(INFO, fmt, ...) end
function log.verbose(fmt, ...) say(VERBOSE, fmt, ...) end
function log.debug(fmt, ...) say(DEBUG, fmt, ...) end
function log.crit(fmt, ...) say(CRIT, fmt, ...) end
function log.syserror(fmt, ...) say(SYSERROR, fmt, ...) end

function log.rotate()
    return util.log_rotate()
end

function log.pid()
    return util.pid()
end

function log.level()
    return util.log_level()
end

package.loaded.log = log
