//! A fast path for MessagePack encoding of plain Lua values, walking tables with the raw
//! Lua API instead of mlua handles.
//!
//! Owned by the TX thread. Every data request encodes its key or tuple, and mlua's handle
//! per table entry made that cost about a microsecond for a two-field tuple. This walks
//! nil, booleans, numbers, strings, tuples (their own bytes) and tables (with or without a
//! `__serialize` string hint) directly on the Lua stack, and gives up on anything else
//! (other userdata, cdata, functions, `__serialize` functions, invalid numbers, too deep or
//! too sparse tables); the caller then uses the full encoder (msgpack.rs), which produces
//! the same bytes or the proper error.

use std::ffi::c_int;

use mlua::{Lua, Value, ffi};

use super::serializer::SerializerCfg;

/// Encode `value` into `out` if it is plain; on `false`, `out` is as it was.
pub fn try_encode(lua: &Lua, value: &Value, cfg: &SerializerCfg, out: &mut Vec<u8>) -> bool {
    let before = out.len();
    let ok = lua.exec_raw_lua(|raw| {
        // SAFETY: the value is pushed on a checked slot, encoded in place and popped.
        unsafe {
            let state = raw.state();
            if ffi::lua_checkstack(state, 2) == 0 || raw.push_value(value).is_err() {
                return false;
            }
            let ok = encode_at(state, ffi::lua_gettop(state), 0, cfg, out);
            ffi::lua_pop(state, 1);
            ok
        }
    });
    if !ok {
        out.truncate(before);
    }
    ok
}

/// Encode the value at absolute stack index `idx`; on `false`, `out` may hold a part of
/// it (the caller truncates).
///
/// # Safety
/// `state` is a valid Lua state and `idx` a valid absolute index on it.
pub unsafe fn encode_at(
    state: *mut ffi::lua_State,
    idx: c_int,
    depth: usize,
    cfg: &SerializerCfg,
    out: &mut Vec<u8>,
) -> bool {
    // SAFETY (whole body): raw API calls on a valid state and index, as the caller promises.
    unsafe {
        match ffi::lua_type(state, idx) {
            ffi::LUA_TNIL => out.push(0xc0),
            ffi::LUA_TBOOLEAN => out.push(if ffi::lua_toboolean(state, idx) != 0 {
                0xc3
            } else {
                0xc2
            }),
            ffi::LUA_TNUMBER => return number(ffi::lua_tonumber(state, idx), cfg, out),
            ffi::LUA_TSTRING => {
                let mut len = 0usize;
                let data = ffi::lua_tolstring(state, idx, &mut len);
                if data.is_null() || len > u32::MAX as usize {
                    return false;
                }
                let _ = rmp::encode::write_str_len(out, len as u32);
                out.extend_from_slice(std::slice::from_raw_parts(data.cast::<u8>(), len));
            }
            ffi::LUA_TTABLE => return table(state, idx, depth, cfg, out),
            // A tuple is its own bytes; other userdata are the full encoder's business.
            ffi::LUA_TUSERDATA => match super::tuple::get_raw(state, idx) {
                Some(tuple) => out.extend_from_slice(tuple.data()),
                None => return false,
            },
            _ => return false,
        }
        true
    }
}

/// A number as Tarantool encodes it: a whole value in the 64-bit ranges as an integer,
/// anything else as a double; NaN and infinities are left to the full encoder.
fn number(value: f64, cfg: &SerializerCfg, out: &mut Vec<u8>) -> bool {
    const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;
    if !value.is_finite() {
        return false;
    }
    if value.fract() != 0.0 {
        let _ = rmp::encode::write_f64(out, value);
    } else if (0.0..2.0 * TWO_POW_63).contains(&value) {
        let _ = rmp::encode::write_uint(out, value as u64);
    } else if (-TWO_POW_63..TWO_POW_63).contains(&value) {
        let _ = rmp::encode::write_sint(out, value as i64);
    } else {
        let _ = cfg;
        let _ = rmp::encode::write_f64(out, value);
    }
    true
}

/// How a table is to be encoded.
enum Shape {
    Array(usize),
    Map(usize),
}

/// A table: its `__serialize` string hint if any, else its keys decide.
///
/// # Safety
/// As [`encode_at`].
unsafe fn table(
    state: *mut ffi::lua_State,
    idx: c_int,
    depth: usize,
    cfg: &SerializerCfg,
    out: &mut Vec<u8>,
) -> bool {
    // SAFETY (whole body): as the caller promises; every push is matched by a pop on each
    // path, and checkstack guards the slots used.
    unsafe {
        if depth >= cfg.encode_depth_max() || ffi::lua_checkstack(state, 4) == 0 {
            return false;
        }
        let shape = match hinted_shape(state, idx, cfg) {
            Hint::Shape(shape) => shape,
            Hint::Plain => match inspect(state, idx, cfg) {
                Some(shape) => shape,
                None => return false,
            },
            Hint::Unsupported => return false,
        };
        match shape {
            Shape::Array(len) => {
                let _ = rmp::encode::write_array_len(out, len as u32);
                for n in 1..=len {
                    ffi::lua_rawgeti(state, idx, n as ffi::lua_Integer);
                    let ok = encode_at(state, ffi::lua_gettop(state), depth + 1, cfg, out);
                    ffi::lua_pop(state, 1);
                    if !ok {
                        return false;
                    }
                }
                true
            }
            Shape::Map(size) => {
                let _ = rmp::encode::write_map_len(out, size as u32);
                ffi::lua_pushnil(state);
                while ffi::lua_next(state, idx) != 0 {
                    let top = ffi::lua_gettop(state);
                    // Keys are encoded without converting them in place (lua_next needs
                    // them intact): numbers go through lua_tonumber, strings stay strings.
                    let ok = encode_at(state, top - 1, depth + 1, cfg, out)
                        && encode_at(state, top, depth + 1, cfg, out);
                    ffi::lua_pop(state, 1);
                    if !ok {
                        ffi::lua_pop(state, 1);
                        return false;
                    }
                }
                true
            }
        }
    }
}

/// What a table's metatable says.
enum Hint {
    /// No metatable or no `__serialize`: the keys decide.
    Plain,
    /// A string hint: 'seq', 'sequence', 'array' or 'map', 'mapping'.
    Shape(Shape),
    /// A `__serialize` function or anything else: the full encoder's business.
    Unsupported,
}

/// # Safety
/// As [`encode_at`].
unsafe fn hinted_shape(state: *mut ffi::lua_State, idx: c_int, cfg: &SerializerCfg) -> Hint {
    // SAFETY (whole body): as the caller promises; pushes are popped before returning.
    unsafe {
        if !cfg.encode_load_metatables || ffi::lua_getmetatable(state, idx) == 0 {
            return Hint::Plain;
        }
        ffi::lua_getfield(state, -1, c"__serialize".as_ptr());
        let hint = match ffi::lua_type(state, -1) {
            ffi::LUA_TNIL => Hint::Plain,
            ffi::LUA_TSTRING => {
                let mut len = 0usize;
                let data = ffi::lua_tolstring(state, -1, &mut len);
                match std::slice::from_raw_parts(data.cast::<u8>(), len) {
                    b"seq" | b"sequence" | b"array" => {
                        Hint::Shape(Shape::Array(ffi::lua_objlen(state, idx)))
                    }
                    b"map" | b"mapping" => Hint::Shape(Shape::Map(count_pairs(state, idx))),
                    _ => Hint::Unsupported,
                }
            }
            _ => Hint::Unsupported,
        };
        ffi::lua_pop(state, 2);
        hint
    }
}

/// # Safety
/// As [`encode_at`].
unsafe fn count_pairs(state: *mut ffi::lua_State, idx: c_int) -> usize {
    let mut count = 0;
    // SAFETY: lua_next leaves key and value; the value is popped, the last key too.
    unsafe {
        ffi::lua_pushnil(state);
        while ffi::lua_next(state, idx) != 0 {
            count += 1;
            ffi::lua_pop(state, 1);
        }
    }
    count
}

/// Tarantool's shape rule for a table without a hint: an array when every key is a
/// positive whole number and the table is not excessively sparse, else a map.
///
/// # Safety
/// As [`encode_at`].
unsafe fn inspect(state: *mut ffi::lua_State, idx: c_int, cfg: &SerializerCfg) -> Option<Shape> {
    let mut size: u64 = 0;
    let mut max: f64 = 0.0;
    let mut is_map = false;
    // SAFETY: as the caller promises; lua_next leaves key and value, the value is popped.
    unsafe {
        ffi::lua_pushnil(state);
        while ffi::lua_next(state, idx) != 0 {
            size += 1;
            if !is_map {
                if ffi::lua_type(state, -2) == ffi::LUA_TNUMBER {
                    let key = ffi::lua_tonumber(state, -2);
                    if key < 1.0 || key.floor() != key {
                        is_map = true;
                    } else if key > max {
                        max = key;
                    }
                } else {
                    is_map = true;
                }
            }
            ffi::lua_pop(state, 1);
        }
    }
    if is_map {
        return Some(Shape::Map(size as usize));
    }
    let ratio = cfg.encode_sparse_ratio;
    let sparse = max > u32::MAX as f64
        || (ratio > 0 && max > size as f64 * ratio as f64 && max > cfg.encode_sparse_safe as f64);
    if sparse {
        // Converted to a map, or refused: the full encoder does both with the right words.
        return None;
    }
    Some(Shape::Array(max as usize))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlua::{LuaOptions, StdLib};

    fn new_lua() -> Lua {
        // SAFETY: a test state with the FFI, as the server's.
        unsafe { Lua::unsafe_new_with(StdLib::ALL, LuaOptions::default()) }
    }

    /// The fast path gives the full encoder's bytes, or steps aside.
    #[test]
    fn agrees_with_the_full_encoder() {
        let lua = new_lua();
        let cases = [
            "nil",
            "true",
            "false",
            "0",
            "-1",
            "127",
            "128",
            "-33",
            "65536",
            "2^32",
            "-2^31",
            "2^53",
            "2^63",
            "2^64",
            "-2^63",
            "1.5",
            "-0.25",
            "1e300",
            "''",
            "'abc'",
            "string.rep('x', 40)",
            "string.rep('y', 70000)",
            "{}",
            "{1, 2, 3}",
            "{1, nil, 3}",
            "{[1] = 1, [3] = 3}",
            "{a = 1}",
            "{1, 'a', {b = {c = {}}}}",
            "{[1.5] = 1}",
            "{[-1] = 2}",
            "{[0] = 0}",
            "{[10] = 1}",
            "setmetatable({1, 2}, {__serialize = 'map'})",
            "setmetatable({a = 1}, {__serialize = 'seq'})",
            "setmetatable({}, {__serialize = 'mapping'})",
            "{true, false, {x = 'y'}, 12345678901}",
        ];
        for case in cases {
            let value: Value = lua.load(format!("return {case}")).eval().unwrap();
            let mut fast = Vec::new();
            let handled = try_encode(&lua, &value, &SerializerCfg::default(), &mut fast);
            let context =
                super::super::serializer::Context::new(&lua, SerializerCfg::default()).unwrap();
            let mut full = Vec::new();
            super::super::msgpack::encode_with(&context, value, &mut full).unwrap();
            assert!(handled, "{case} not handled");
            assert_eq!(fast, full, "{case}");
        }
    }

    #[test]
    fn steps_aside_for_what_it_does_not_know() {
        let lua = new_lua();
        for case in [
            "print",
            "0/0",
            "1/0",
            "{print}",
            "setmetatable({}, {__serialize = function() return 1 end})",
            "{[100] = 1}",
            "require('ffi').new('int64_t', 5)",
            "{{{{}}}}",
        ] {
            let value: Value = lua.load(format!("return {case}")).eval().unwrap();
            let mut out = vec![7];
            let cfg = SerializerCfg {
                encode_max_depth: 3,
                ..Default::default()
            };
            assert!(!try_encode(&lua, &value, &cfg, &mut out), "{case}");
            assert_eq!(out, vec![7], "{case} left bytes behind");
        }
    }
}
