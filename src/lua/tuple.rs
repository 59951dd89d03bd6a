//! `box.tuple` in Lua: userdata of our own class (see raw.rs) holding a [`Tuple`].
//!
//! Owned by the TX thread. A tuple pushed to Lua is the same allocation the index holds;
//! fields are decoded from MessagePack only when read (`t[2]`, `t:unpack()`). Field reads,
//! `#t` and pushing a tuple use the raw Lua API: they run for every tuple a request
//! returns. The methods are plain functions in a table the metatable's `__index` serves.

use std::ffi::c_int;

use mlua::{Function, Lua, MultiValue, Table, Value, Variadic, ffi};

use crate::r#box::key_def;
use crate::r#box::mp;
use crate::r#box::tuple::Tuple;
use crate::r#box::update;
use crate::lua::serializer::NUMBER_INT_MAX;

use super::msgpack;
use super::raw::{self, Class};

static TUPLE_KEY: u8 = 0;
/// The tuple class.
static CLASS: Class = Class { key: &TUPLE_KEY };

/// Named registry slot of the method table (Rust and Lua methods: update, upsert...).
const METHODS_KEY: &str = "tarantula.tuple.methods";

/// Decode the encoded field `bytes` into a Lua value.
fn decode(lua: &Lua, bytes: &[u8]) -> mlua::Result<Value> {
    msgpack::decode_value(lua, bytes).map(|(value, _)| value)
}

/// Every field's encoded bytes.
fn fields(tuple: &Tuple) -> Vec<&[u8]> {
    mp::array_items(tuple.data()).unwrap_or_default()
}

/// Lua's 1-based, negative-from-the-end field range [first, last] into 0-based bounds.
fn range(count: usize, first: Option<i64>, last: Option<i64>) -> (usize, usize) {
    let resolve = |n: i64| -> i64 { if n < 0 { count as i64 + n + 1 } else { n } };
    let from = (resolve(first.unwrap_or(1)).max(1) as usize - 1).min(count);
    let last = resolve(last.unwrap_or(count as i64)).clamp(0, count as i64) as usize;
    (from, last.max(from))
}

/// Field `fieldno` (1-based) decoded, or nil past the end.
fn field(lua: &Lua, tuple: &Tuple, fieldno: i64) -> mlua::Result<Value> {
    if fieldno < 1 {
        return Ok(Value::Nil);
    }
    match key_def::tuple_field(tuple.data(), (fieldno - 1) as u32) {
        Some(bytes) => decode(lua, bytes),
        None => Ok(Value::Nil),
    }
}

fn values(
    lua: &Lua,
    tuple: &Tuple,
    first: Option<i64>,
    last: Option<i64>,
) -> mlua::Result<Vec<Value>> {
    let fields = fields(tuple);
    let (from, to) = range(fields.len(), first, last);
    fields[from..to]
        .iter()
        .map(|bytes| decode(lua, bytes))
        .collect()
}

fn table(lua: &Lua, tuple: &Tuple, first: Option<i64>, last: Option<i64>) -> mlua::Result<Table> {
    let values = values(lua, tuple, first, last)?;
    let table = lua.create_sequence_from(values)?;
    table.set_metatable(Some(super::serializer::array_mt(lua)?))?;
    Ok(table)
}

/// The tuple a method was called on.
fn this(lua: &Lua, value: &Value, method: &str) -> mlua::Result<Tuple> {
    from_value(lua, value).ok_or_else(|| mlua::Error::runtime(format!("Usage: tuple:{method}()")))
}

/// The methods written in Rust, by name.
fn rust_methods(lua: &Lua, methods: &Table) -> mlua::Result<()> {
    methods.set(
        "unpack",
        lua.create_function(
            |lua, (tuple, first, last): (Value, Option<i64>, Option<i64>)| {
                let tuple = this(lua, &tuple, "unpack")?;
                Ok(MultiValue::from_iter(values(lua, &tuple, first, last)?))
            },
        )?,
    )?;
    methods.set(
        "totable",
        lua.create_function(
            |lua, (tuple, first, last): (Value, Option<i64>, Option<i64>)| {
                table(lua, &this(lua, &tuple, "totable")?, first, last)
            },
        )?,
    )?;
    methods.set(
        "bsize",
        lua.create_function(|lua, tuple: Value| Ok(this(lua, &tuple, "bsize")?.bsize()))?,
    )?;
    methods.set(
        "find",
        lua.create_function(|lua, (tuple, args): (Value, Variadic<Value>)| {
            find(lua, &this(lua, &tuple, "find")?, args, false)
        })?,
    )?;
    methods.set(
        "findall",
        lua.create_function(|lua, (tuple, args): (Value, Variadic<Value>)| {
            find(lua, &this(lua, &tuple, "findall")?, args, true)
        })?,
    )?;
    let pairs =
        lua.create_function(|lua, tuple: Value| pairs(lua, &this(lua, &tuple, "pairs")?))?;
    methods.set("pairs", pairs.clone())?;
    methods.set("ipairs", pairs)?;
    methods.set(
        "__serialize",
        lua.create_function(|lua, tuple: Value| {
            table(lua, &this(lua, &tuple, "totable")?, None, None)
        })?,
    )?;
    Ok(())
}

/// `tostring(t)`: the flow-style YAML of the console, without the document markers.
fn to_string(lua: &Lua, tuple: &Value) -> mlua::Result<String> {
    let table = table(lua, &this(lua, tuple, "totable")?, None, None)?;
    let yaml: Table = lua
        .globals()
        .get::<Table>("package")?
        .get::<Table>("loaded")?
        .get("yaml")?;
    let encode: Function = yaml.get("encode")?;
    let text = encode.call::<String>(table)?;
    let text = text.strip_prefix("--- ").unwrap_or(&text);
    Ok(text.strip_suffix("\n...\n").unwrap_or(text).to_string())
}

/// Register the tuple class in `lua`: its metatable and method table.
pub fn open(lua: &Lua) -> mlua::Result<()> {
    let methods = lua.create_table()?;
    rust_methods(lua, &methods)?;
    lua.set_named_registry_value(METHODS_KEY, &methods)?;
    let slow_field =
        Value::Function(lua.create_function(|lua, (tuple, fieldno): (Value, i64)| {
            field(lua, &this(lua, &tuple, "field")?, fieldno)
        })?);
    let tostring =
        Value::Function(lua.create_function(|lua, tuple: Value| to_string(lua, &tuple))?);
    let methods = Value::Table(methods);
    lua.exec_raw_lua(|raw| {
        // SAFETY: six slots are checked; every push is consumed by a set or the register.
        unsafe {
            let state = raw.state();
            if ffi::lua_checkstack(state, 6) == 0 {
                return Err(mlua::Error::runtime("out of Lua stack"));
            }
            raw::register::<Tuple>(state, &CLASS, |state| {
                let _ = raw.push_value(&methods);
                let _ = raw.push_value(&slow_field);
                ffi::lua_pushcclosure(state, index, 2);
                ffi::lua_setfield(state, -2, c"__index".as_ptr());
                ffi::lua_pushcfunction(state, len);
                ffi::lua_setfield(state, -2, c"__len".as_ptr());
                let _ = raw.push_value(&tostring);
                ffi::lua_setfield(state, -2, c"__tostring".as_ptr());
            });
        }
        Ok(())
    })
}

/// Add the Lua-written methods (update, upsert, transform) to the method table.
pub fn add_methods(lua: &Lua, extra: &Table) -> mlua::Result<()> {
    let methods: Table = lua.named_registry_value(METHODS_KEY)?;
    for pair in extra.pairs::<Value, Value>() {
        let (name, method) = pair?;
        methods.raw_set(name, method)?;
    }
    Ok(())
}

/// `__index(t, key)`: a field by number (scalars decoded right here, the rest by the
/// slow-path function of upvalue 2), a method by name from the table of upvalue 1.
unsafe extern "C-unwind" fn index(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: a metamethod gets (t, key); the stack has LUA_MINSTACK free slots, and no
    // Rust value that needs dropping is alive across lua_call (which may raise).
    unsafe {
        match ffi::lua_type(state, 2) {
            ffi::LUA_TNUMBER => {
                // A fractional field number is truncated, as Tarantool's FFI conversion does.
                let n = ffi::lua_tonumber(state, 2).trunc();
                if !(1.0..=f64::from(u32::MAX)).contains(&n) {
                    ffi::lua_pushnil(state);
                    return 1;
                }
                let pushed = match get_raw(state, 1) {
                    Some(tuple) => match key_def::tuple_field(tuple.data(), n as u32 - 1) {
                        Some(bytes) => push_scalar(state, bytes),
                        None => {
                            ffi::lua_pushnil(state);
                            true
                        }
                    },
                    None => false,
                };
                if !pushed {
                    ffi::lua_pushvalue(state, ffi::lua_upvalueindex(2));
                    ffi::lua_pushvalue(state, 1);
                    ffi::lua_pushnumber(state, n);
                    ffi::lua_call(state, 2, 1);
                }
            }
            ffi::LUA_TSTRING => {
                ffi::lua_pushvalue(state, 2);
                ffi::lua_rawget(state, ffi::lua_upvalueindex(1));
            }
            _ => ffi::lua_pushnil(state),
        }
    }
    1
}

/// `__len(t)`: the number of fields.
unsafe extern "C-unwind" fn len(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: a metamethod gets its operand at 1 and may push one result.
    unsafe {
        let count = get_raw(state, 1).map_or(0, |tuple| {
            key_def::tuple_field_count(tuple.data()).unwrap_or(0)
        });
        ffi::lua_pushnumber(state, count as f64);
    }
    1
}

/// Push a scalar field as the full decoder would; false (nothing pushed) for nil,
/// containers, extensions, big integers and invalid numbers, which it leaves to that decoder.
///
/// # Safety
/// `state` is a valid Lua state with a free slot.
pub unsafe fn push_scalar(state: *mut ffi::lua_State, bytes: &[u8]) -> bool {
    use rmp::Marker;
    use rmp::decode::RmpRead as _;
    let mut rest = bytes;
    let Ok(marker) = rmp::decode::read_marker(&mut rest) else {
        return false;
    };
    let number = match marker {
        Marker::FixPos(n) => Some(f64::from(n)),
        Marker::FixNeg(n) => Some(f64::from(n)),
        Marker::U8 => rest.read_data_u8().ok().map(f64::from),
        Marker::U16 => rest.read_data_u16().ok().map(f64::from),
        Marker::U32 => rest.read_data_u32().ok().map(f64::from),
        Marker::I8 => rest.read_data_i8().ok().map(f64::from),
        Marker::I16 => rest.read_data_i16().ok().map(f64::from),
        Marker::I32 => rest.read_data_i32().ok().map(f64::from),
        Marker::U64 => rest
            .read_data_u64()
            .ok()
            .filter(|n| *n <= NUMBER_INT_MAX)
            .map(|n| n as f64),
        Marker::I64 => rest
            .read_data_i64()
            .ok()
            .filter(|n| n.unsigned_abs() <= NUMBER_INT_MAX)
            .map(|n| n as f64),
        Marker::F32 => rest
            .read_data_f32()
            .ok()
            .map(f64::from)
            .filter(|n| n.is_finite()),
        Marker::F64 => rest.read_data_f64().ok().filter(|n| n.is_finite()),
        _ => None,
    };
    // SAFETY: as the caller promises.
    unsafe {
        if let Some(number) = number {
            ffi::lua_pushnumber(state, number);
            return true;
        }
        match marker {
            Marker::True | Marker::False => {
                ffi::lua_pushboolean(state, c_int::from(marker == Marker::True));
                true
            }
            Marker::FixStr(_) | Marker::Str8 | Marker::Str16 | Marker::Str32 => {
                let Ok(len) = rmp::decode::read_str_len(&mut &bytes[..]) else {
                    return false;
                };
                push_string(state, bytes, len)
            }
            Marker::Bin8 | Marker::Bin16 | Marker::Bin32 => {
                let Ok(len) = rmp::decode::read_bin_len(&mut &bytes[..]) else {
                    return false;
                };
                push_string(state, bytes, len)
            }
            _ => false,
        }
    }
}

/// Push the last `len` bytes of the string field `bytes` (its header comes first).
///
/// # Safety
/// As [`push_scalar`].
unsafe fn push_string(state: *mut ffi::lua_State, bytes: &[u8], len: u32) -> bool {
    let Some(start) = bytes.len().checked_sub(len as usize) else {
        return false;
    };
    // SAFETY: as the caller promises; the slice is in bounds.
    unsafe { ffi::lua_pushlstring(state, bytes[start..].as_ptr().cast(), len as usize) };
    true
}

/// Push a tuple onto the raw stack.
///
/// # Safety
/// `state` is the Lua state of [`open`] (or one of its coroutines) with three free slots.
pub unsafe fn push_raw(state: *mut ffi::lua_State, tuple: Tuple) {
    // SAFETY: as the caller promises.
    unsafe { raw::push(state, &CLASS, tuple) }
}

/// The tuple at `idx`, if the value there is one.
///
/// # Safety
/// As [`raw::get`].
pub unsafe fn get_raw<'a>(state: *mut ffi::lua_State, idx: c_int) -> Option<&'a Tuple> {
    // SAFETY: as the caller promises.
    unsafe { raw::get::<Tuple>(state, idx, &CLASS).map(|tuple| &*tuple) }
}

/// `tuple:update(ops)` / `tuple:upsert(ops)` of a standalone tuple: the new tuple, or
/// `nil, err` for the Lua wrapper to raise.
pub fn update_standalone(
    lua: &Lua,
    tuple: &Value,
    ops: &Value,
    upsert: bool,
) -> mlua::Result<MultiValue> {
    let Some(tuple) = from_value(lua, tuple) else {
        return Err(mlua::Error::runtime(
            "Usage: tuple:update({ { op, field, arg}+ })",
        ));
    };
    let ops = super::box_data::encode(lua, ops)?;
    let result = if upsert {
        Ok(update::upsert(tuple.data(), &ops, 1).0)
    } else {
        update::update(tuple.data(), &ops, 1)
    };
    match result {
        Ok(data) => Ok(MultiValue::from_iter([push(lua, Tuple::new(&data))?])),
        Err(err) => super::util::failure(lua, &err),
    }
}

/// `t:find([offset,] value)` / `t:findall(...)`: field numbers (1-based) holding a value.
fn find(lua: &Lua, tuple: &Tuple, args: Variadic<Value>, all: bool) -> mlua::Result<MultiValue> {
    let (offset, needle) = match args.len() {
        1 => (0, &args[0]),
        _ => (
            match &args[0] {
                Value::Integer(n) => (*n).max(0) as usize,
                Value::Number(n) => n.max(0.0) as usize,
                _ => 0,
            },
            args.get(1).unwrap_or(&Value::Nil),
        ),
    };
    let needle = super::box_data::encode(lua, needle)?;
    let found: Vec<Value> = fields(tuple)
        .iter()
        .enumerate()
        .skip(offset)
        .filter(|(_, field)| {
            key_def::compare_fields(field, &needle, key_def::FieldType::Scalar).is_eq()
        })
        .map(|(n, _)| Value::Integer(n as i64 + 1))
        .collect();
    if all {
        return Ok(MultiValue::from_iter([Value::Table(
            lua.create_sequence_from(found)?,
        )]));
    }
    Ok(MultiValue::from_iter([found
        .into_iter()
        .next()
        .unwrap_or(Value::Nil)]))
}

/// `t:transform(offset, count [, values...])`: remove `count` fields at `offset` (1-based,
/// negative from the end) and insert the values there.
pub fn transform(lua: &Lua, tuple: &Value, args: Variadic<Value>) -> mlua::Result<Value> {
    let tuple = this(lua, tuple, "transform")?;
    let fields = fields(&tuple);
    let number = |value: Option<&Value>| -> Option<i64> {
        match value? {
            Value::Integer(n) => Some(*n),
            Value::Number(n) => Some(*n as i64),
            _ => None,
        }
    };
    let usage = || mlua::Error::runtime("tuple.transform(): bad arguments");
    let offset = number(args.first()).ok_or_else(usage)?;
    let count = number(args.get(1)).ok_or_else(usage)?.max(0) as usize;
    let len = fields.len() as i64;
    let start = if offset < 0 { len + offset } else { offset - 1 };
    if start < 0 || start > len {
        return Err(mlua::Error::runtime(
            "tuple.transform(): offset is out of bound",
        ));
    }
    let start = start as usize;
    let end = (start + count).min(fields.len());
    let mut inserted = Vec::new();
    for value in args.iter().skip(2) {
        inserted.push(super::box_data::encode(lua, value)?);
    }
    let mut parts: Vec<&[u8]> = fields[..start].to_vec();
    parts.extend(inserted.iter().map(Vec::as_slice));
    parts.extend_from_slice(&fields[end..]);
    push(lua, Tuple::new(&mp::array_of(&parts)))
}

/// `t:pairs()`: an iterator over (field number, value).
fn pairs(lua: &Lua, tuple: &Tuple) -> mlua::Result<MultiValue> {
    let table = table(lua, tuple, None, None)?;
    let ipairs: mlua::Function = lua.globals().get("ipairs")?;
    ipairs.call(table)
}

/// Push a tuple to Lua.
pub fn push(lua: &Lua, tuple: Tuple) -> mlua::Result<Value> {
    lua.exec_raw_lua(|raw| {
        // SAFETY: three slots are checked; the new object is popped into a Value.
        unsafe {
            let state = raw.state();
            if ffi::lua_checkstack(state, 3) == 0 {
                return Err(mlua::Error::runtime("out of Lua stack"));
            }
            push_raw(state, tuple);
            Ok(raw.pop_value())
        }
    })
}

/// The tuple inside a Lua value, if it holds one.
pub fn from_value(lua: &Lua, value: &Value) -> Option<Tuple> {
    if !matches!(value, Value::UserData(_)) {
        return None;
    }
    lua.exec_raw_lua(|raw| {
        // SAFETY: three slots are checked; the pushed value is popped again.
        unsafe {
            let state = raw.state();
            if ffi::lua_checkstack(state, 3) == 0 || raw.push_value(value).is_err() {
                return None;
            }
            let tuple = get_raw(state, -1).cloned();
            ffi::lua_pop(state, 1);
            tuple
        }
    })
}

#[cfg(test)]
mod tests {
    use super::range;

    #[test]
    fn ranges_follow_luas_rules() {
        assert_eq!(range(3, None, None), (0, 3));
        assert_eq!(range(3, Some(2), None), (1, 3));
        assert_eq!(range(3, Some(-1), None), (2, 3));
        assert_eq!(range(3, Some(1), Some(-2)), (0, 2));
        assert_eq!(range(3, Some(5), None), (3, 3));
        assert_eq!(range(0, None, None), (0, 0));
    }
}
