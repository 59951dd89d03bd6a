//! `internal.util`: process exit, the log, and Tarantool error objects for the prelude.
//!
//! Owned by the TX thread. Errors cross from Rust to Lua as values: a Rust function returns
//! `nil, err` where `err` is a `box.error` object made by [`error_value`], and the Lua
//! wrapper raises it. (An error raised from inside a Rust callback would reach Lua as an
//! opaque userdata with a Rust backtrace, which is not what Tarantool users expect.)

use std::rc::Rc;

use mlua::{Function, Lua, MultiValue, Table, Value, Variadic};

use crate::error::{BoxError, ERRCODES, ErrCode, format_template};
use crate::log::Level;
use crate::tx::Tx;

/// Named registry slot of the prelude's error constructor `(code, message, type) -> err`.
const ERROR_NEW_KEY: &str = "tarantula.error.new";

/// nil for success, the error object of a failure (for functions that report an outcome).
pub fn nil_or_error(lua: &Lua, outcome: Result<(), BoxError>) -> mlua::Result<Value> {
    match outcome {
        Ok(()) => Ok(Value::Nil),
        Err(err) => error_value(lua, &err),
    }
}

/// A `box.error` object for `err`; a plain string if the prelude is not loaded yet.
pub fn error_value(lua: &Lua, err: &BoxError) -> mlua::Result<Value> {
    match lua.named_registry_value::<Function>(ERROR_NEW_KEY) {
        Ok(new) => new.call((err.code.0, err.message.as_str(), err.kind.as_str())),
        Err(_) => Ok(Value::String(lua.create_string(&err.message)?)),
    }
}

/// `nil, err`: the failure shape of every internal function.
pub fn failure(lua: &Lua, err: &BoxError) -> mlua::Result<MultiValue> {
    Ok(MultiValue::from_iter([Value::Nil, error_value(lua, err)?]))
}

/// The `internal.util` table.
pub fn open(lua: &Lua, tx: &Rc<Tx>) -> mlua::Result<Table> {
    let module = lua.create_table()?;
    module.set(
        "set_error_constructor",
        lua.create_function(|lua, new: Function| lua.set_named_registry_value(ERROR_NEW_KEY, new))?,
    )?;
    let codes = lua.create_table()?;
    for def in ERRCODES {
        codes.set(def.name, def.code)?;
    }
    module.set("errcodes", codes)?;
    module.set(
        "error_format",
        lua.create_function(|_, (code, args): (u32, Variadic<Value>)| {
            let texts: Vec<String> = args.iter().map(display_value).collect();
            let refs: Vec<&dyn std::fmt::Display> = texts
                .iter()
                .map(|text| text as &dyn std::fmt::Display)
                .collect();
            let template = ErrCode(code)
                .def()
                .map_or("Unknown error", |def| def.template);
            Ok(format_template(template, &refs))
        })?,
    )?;
    let t = tx.clone();
    module.set(
        "exit",
        lua.create_function(move |_, code: Option<i32>| -> mlua::Result<()> {
            t.journal.borrow_mut().shutdown();
            crate::server::exit_process(code.unwrap_or(0))
        })?,
    )?;
    module.set("pid", lua.create_function(|_, ()| Ok(std::process::id()))?)?;
    module.set("tarantula_version", crate::constants::TARANTULA_VERSION)?;
    module.set("tarantool_version", crate::constants::TARANTOOL_VERSION)?;
    module.set(
        "parse_int64",
        lua.create_function(|lua, (text, base): (String, u32)| parse_int64(lua, &text, base))?,
    )?;
    open_log(lua, &module)?;
    Ok(module)
}

/// `tonumber64`'s parser: `'number', n` when the value is exact as a double, else
/// `'int'|'uint', high, low` (32-bit halves of the two's-complement value), or nothing.
fn parse_int64(lua: &Lua, text: &str, base: u32) -> mlua::Result<MultiValue> {
    let Some(parsed) = parse_integer(text, base) else {
        return Ok(MultiValue::new());
    };
    let kind = match parsed {
        Integer64::Signed(n) if n.unsigned_abs() <= 1 << 53 => {
            return Ok(MultiValue::from_iter([
                Value::String(lua.create_string("number")?),
                Value::Number(n as f64),
            ]));
        }
        Integer64::Unsigned(n) if n <= 1 << 53 => {
            return Ok(MultiValue::from_iter([
                Value::String(lua.create_string("number")?),
                Value::Number(n as f64),
            ]));
        }
        Integer64::Signed(n) => ("int", n as u64),
        Integer64::Unsigned(n) => ("uint", n),
    };
    Ok(MultiValue::from_iter([
        Value::String(lua.create_string(kind.0)?),
        Value::Number((kind.1 >> 32) as f64),
        Value::Number((kind.1 & 0xffff_ffff) as f64),
    ]))
}

/// A parsed 64-bit integer: negative values are signed, the rest unsigned.
#[derive(Debug, PartialEq, Eq)]
enum Integer64 {
    Signed(i64),
    Unsigned(u64),
}

/// Parse an integer in `base` (2..=36) with an optional sign, `0x` for base 16, and an
/// optional `LL`/`ULL` suffix; spaces around are allowed.
fn parse_integer(text: &str, base: u32) -> Option<Integer64> {
    if !(2..=36).contains(&base) {
        return None;
    }
    let text = text.trim();
    let text = text
        .strip_suffix("ULL")
        .or_else(|| text.strip_suffix("ull"))
        .or_else(|| text.strip_suffix("LL"))
        .or_else(|| text.strip_suffix("ll"))
        .unwrap_or(text);
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let digits = if base == 16 {
        digits
            .strip_prefix("0x")
            .or_else(|| digits.strip_prefix("0X"))
            .unwrap_or(digits)
    } else {
        digits
    };
    let magnitude = u64::from_str_radix(digits, base).ok()?;
    if !negative {
        return Some(Integer64::Unsigned(magnitude));
    }
    if magnitude > 1 << 63 {
        return None;
    }
    Some(Integer64::Signed((magnitude as i64).wrapping_neg()))
}

/// Text of a Lua value for an error template argument.
fn display_value(value: &Value) -> String {
    match value {
        Value::String(text) => text.to_string_lossy(),
        Value::Integer(n) => n.to_string(),
        Value::Number(n) if n.fract() == 0.0 && n.abs() < 1e15 => format!("{}", *n as i64),
        Value::Number(n) => n.to_string(),
        Value::Boolean(b) => b.to_string(),
        Value::Nil => String::from("nil"),
        other => other.to_string().unwrap_or_default(),
    }
}

/// `say(level, file, line, message)`, `level()`, `rotate()` for `builtin/log.lua`.
fn open_log(lua: &Lua, module: &Table) -> mlua::Result<()> {
    module.set(
        "say",
        lua.create_function(
            |_, (level, file, line, message): (u8, Option<String>, Option<u32>, mlua::LuaString)| {
                let level = match level {
                    1 => Level::SysError,
                    2 => Level::Error,
                    3 => Level::Crit,
                    4 => Level::Warn,
                    5 => Level::Info,
                    6 => Level::Verbose,
                    _ => Level::Debug,
                };
                crate::log::say(level, file.as_deref(), line, &message.to_string_lossy());
                Ok(())
            },
        )?,
    )?;
    module.set(
        "log_level",
        lua.create_function(|_, ()| Ok(crate::log::level()))?,
    )?;
    module.set(
        "log_rotate",
        lua.create_function(|_, ()| Ok(crate::log::reopen().is_ok()))?,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_for_tonumber64() {
        assert_eq!(parse_integer("123", 10), Some(Integer64::Unsigned(123)));
        assert_eq!(parse_integer(" ff ", 16), Some(Integer64::Unsigned(255)));
        assert_eq!(parse_integer("0x10", 16), Some(Integer64::Unsigned(16)));
        assert_eq!(
            parse_integer("18446744073709551615", 10),
            Some(Integer64::Unsigned(u64::MAX))
        );
        assert_eq!(
            parse_integer("-9223372036854775808", 10),
            Some(Integer64::Signed(i64::MIN))
        );
        assert_eq!(parse_integer("-9223372036854775809", 10), None);
        assert_eq!(parse_integer("42ULL", 10), Some(Integer64::Unsigned(42)));
        assert_eq!(parse_integer("x", 10), None);
        assert_eq!(parse_integer("1", 1), None);
    }
}
