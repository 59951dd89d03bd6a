//! The `msgpack` Lua module (`encode`, `decode`, `decode_unchecked`, `NULL`, `cfg`, `new`,
//! `array_mt`, `map_mt`) and the Rust entry points the iproto layer uses to turn Lua values
//! into MessagePack and back (`encode_value`, `encode_multi`, `decode_value`).
//!
//! Runs on the TX thread, which owns the Lua state.
//!
//! Markers and lengths are written and read with `rmp`. Decoding is iterative with an explicit
//! stack of open containers, so bytes from the network can neither overflow the native stack
//! nor make us preallocate what they merely claim: every malformed input is an error.

use std::rc::Rc;

use mlua::{Lua, MultiValue, Table, Value};
use rmp::Marker;

use super::serializer::{self, Context, Field, NESTING_MAX, SerializerCfg, SharedCfg, error};

/// The options of the `msgpack` module of a Lua state, kept in its app data so that the Rust
/// entry points encode as `msgpack.cfg` says (Tarantool encodes CALL replies with the
/// module's options too).
struct ModuleCfg(SharedCfg);

/// The options the Rust entry points use: the module's when it is open, else the defaults.
fn module_cfg(lua: &Lua) -> SerializerCfg {
    match lua.app_data_ref::<ModuleCfg>() {
        Some(module) => module.0.get(),
        None => SerializerCfg::default(),
    }
}

// {{{ Encoding

/// Appends `value` as MessagePack, with the options of the `msgpack` module.
pub fn encode_value(lua: &Lua, value: &Value, out: &mut Vec<u8>) -> mlua::Result<()> {
    let cfg = module_cfg(lua);
    if super::mp_fast::try_encode(lua, value, &cfg, out) {
        return Ok(());
    }
    encode_with(&Context::new(lua, cfg)?, value.clone(), out)
}

/// Appends `values` as one MessagePack array (how CALL and EVAL replies carry results).
pub fn encode_multi(lua: &Lua, values: &[Value], out: &mut Vec<u8>) -> mlua::Result<()> {
    let context = Context::new(lua, module_cfg(lua))?;
    let len = u32::try_from(values.len()).map_err(|_| error("msgpack.encode: too many values"))?;
    rmp::encode::write_array_len(out, len).map_err(write_error)?;
    for value in values {
        encode_with(&context, value.clone(), out)?;
    }
    Ok(())
}

/// Appends `value` as MessagePack with the options of `context`.
pub fn encode_with(context: &Context<'_>, value: Value, out: &mut Vec<u8>) -> mlua::Result<()> {
    let mut encoder = Encoder {
        context,
        out,
        depth_max: context.cfg.encode_depth_max(),
    };
    encoder.value(value, 0)
}

/// An `rmp` write error as a Lua error (writing to a vector does not fail in practice).
fn write_error(err: impl std::fmt::Display) -> mlua::Error {
    error(format!("msgpack.encode: {err}"))
}

/// Writes Lua values as MessagePack into `out`.
struct Encoder<'c, 'lua, 'out> {
    /// The options and helpers of this call.
    context: &'c Context<'lua>,
    /// The bytes so far.
    out: &'out mut Vec<u8>,
    /// `encode_max_depth`, capped.
    depth_max: usize,
}

impl Encoder<'_, '_, '_> {
    /// Appends `value`, which sits `depth` containers deep.
    fn value(&mut self, value: Value, depth: usize) -> mlua::Result<()> {
        let out = &mut *self.out;
        match self.context.field(value)? {
            Field::Nil => rmp::encode::write_nil(out).map_err(write_error)?,
            Field::Bool(flag) => rmp::encode::write_bool(out, flag).map_err(write_error)?,
            Field::UInt(integer) => {
                rmp::encode::write_uint(out, integer).map_err(write_error)?;
            }
            Field::Int(integer) => {
                rmp::encode::write_sint(out, integer).map_err(write_error)?;
            }
            Field::Float(float) => rmp::encode::write_f32(out, float).map_err(write_error)?,
            Field::Double(double) => rmp::encode::write_f64(out, double).map_err(write_error)?,
            Field::Str(string) => {
                let bytes = string.as_bytes();
                let len = u32::try_from(bytes.len())
                    .map_err(|_| error("msgpack.encode: string is too long"))?;
                rmp::encode::write_str_len(out, len).map_err(write_error)?;
                out.extend_from_slice(&bytes);
            }
            Field::Array { table, len, .. } => return self.array(&table, len, depth),
            Field::Map { table, size, .. } => return self.map(&table, size, depth),
        }
        Ok(())
    }

    /// Containers past `encode_max_depth`: an error naming the level, or nil with
    /// `encode_deep_as_nil`.
    fn too_deep(&mut self, depth: usize) -> mlua::Result<()> {
        if self.context.cfg.encode_deep_as_nil {
            return rmp::encode::write_nil(self.out).map_err(write_error);
        }
        Err(error(format!("Too high nest level - {}", depth + 1)))
    }

    /// An array header and `table[1..=len]`, holes as nil.
    fn array(&mut self, table: &Table, len: usize, depth: usize) -> mlua::Result<()> {
        if depth >= self.depth_max {
            return self.too_deep(depth);
        }
        let header = u32::try_from(len).map_err(|_| error("msgpack.encode: array is too long"))?;
        rmp::encode::write_array_len(self.out, header).map_err(write_error)?;
        for index in 1..=len {
            let item: Value = table.raw_get(index)?;
            self.value(item, depth + 1)?;
        }
        Ok(())
    }

    /// A map header for `size` pairs, then the pairs.
    fn map(&mut self, table: &Table, size: usize, depth: usize) -> mlua::Result<()> {
        if depth >= self.depth_max {
            return self.too_deep(depth);
        }
        let header = u32::try_from(size).map_err(|_| error("msgpack.encode: map is too big"))?;
        rmp::encode::write_map_len(self.out, header).map_err(write_error)?;
        let mut written = 0;
        for pair in table.pairs::<Value, Value>() {
            let (key, value) = pair?;
            written += 1;
            if written > size {
                break;
            }
            self.value(key, depth + 1)?;
            self.value(value, depth + 1)?;
        }
        // A __serialize function run for a key or value may have changed the table; the
        // header is already out, so a different count would make the output unreadable.
        if written != size {
            return Err(error("msgpack.encode: table changed during encoding"));
        }
        Ok(())
    }
}

// }}}

// {{{ Decoding

/// Why decoding failed; the Lua functions put their own name in front.
#[derive(Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Truncated or malformed data.
    Invalid,
    /// A MessagePack extension (Tarantool 1.6 knows none).
    Extension(i8),
    /// Containers nested deeper than `NESTING_MAX`.
    TooDeep,
}

impl DecodeError {
    /// The text after "msgpack.decode: ".
    fn message(&self) -> String {
        match self {
            DecodeError::Invalid => "invalid MsgPack".to_string(),
            DecodeError::Extension(kind) => format!("unsupported MsgPack extension type: {kind}"),
            DecodeError::TooDeep => format!("MsgPack nested deeper than {NESTING_MAX} levels"),
        }
    }
}

/// Decodes the first MessagePack value of `bytes`; returns it and the number of bytes it
/// took. Malformed data, extensions and nesting deeper than `NESTING_MAX` are errors.
pub fn decode_value(lua: &Lua, bytes: &[u8]) -> mlua::Result<(Value, usize)> {
    let context = Context::new(lua, module_cfg(lua))?;
    decode_with(&context, bytes).map_err(|failure| match failure {
        Failure::Data(data) => error(format!("msgpack.decode: {}", data.message())),
        Failure::Lua(lua) => lua,
    })
}

/// A decoding failure: bad data, or an error of the Lua state (out of memory...).
#[derive(Debug)]
pub enum Failure {
    /// Bad bytes.
    Data(DecodeError),
    /// The Lua state failed (memory, a metamethod...).
    Lua(mlua::Error),
}

impl From<mlua::Error> for Failure {
    fn from(err: mlua::Error) -> Self {
        Failure::Lua(err)
    }
}

impl From<DecodeError> for Failure {
    fn from(err: DecodeError) -> Self {
        Failure::Data(err)
    }
}

/// One decoded item: a complete value, or the header of a non-empty container.
enum Item {
    /// A scalar, a string or an empty container.
    Value(Value),
    /// A non-empty array of this many items.
    Array(u32),
    /// A non-empty map of this many pairs.
    Map(u32),
}

/// A container being filled.
enum Frame {
    /// An array waiting for items.
    Array {
        /// The table being filled.
        table: Table,
        /// Items stored so far.
        filled: u32,
        /// Items announced by the header.
        len: u32,
    },
    /// A map waiting for pairs.
    Map {
        /// The table being filled.
        table: Table,
        /// Pairs still to come.
        left: u32,
        /// The key of the pair in progress.
        key: Option<Value>,
    },
}

/// Decodes with the options of `context` (`decode_save_metatables`).
pub fn decode_with(context: &Context<'_>, bytes: &[u8]) -> Result<(Value, usize), Failure> {
    let mut rest = bytes;
    let mut stack: Vec<Frame> = Vec::new();
    loop {
        let mut value = match read_item(context, &mut rest)? {
            Item::Value(value) => value,
            Item::Array(len) => {
                push_frame(&mut stack, new_array(context, len, rest.len())?)?;
                continue;
            }
            Item::Map(size) => {
                push_frame(&mut stack, new_map(context, size, rest.len())?)?;
                continue;
            }
        };
        // Hand the value to the open containers, closing each one it completes.
        loop {
            let Some(frame) = stack.last_mut() else {
                return Ok((value, bytes.len() - rest.len()));
            };
            if !fill(frame, value)? {
                break;
            }
            value = match stack.pop() {
                Some(Frame::Array { table, .. } | Frame::Map { table, .. }) => Value::Table(table),
                None => return Err(DecodeError::Invalid.into()),
            };
        }
    }
}

/// Opens a container, refusing to go past `NESTING_MAX` levels.
fn push_frame(stack: &mut Vec<Frame>, frame: Frame) -> Result<(), Failure> {
    if stack.len() >= NESTING_MAX {
        return Err(DecodeError::TooDeep.into());
    }
    stack.push(frame);
    Ok(())
}

/// Puts `value` into `frame`; true when that completes the container.
fn fill(frame: &mut Frame, value: Value) -> mlua::Result<bool> {
    match frame {
        Frame::Array { table, filled, len } => {
            *filled += 1;
            table.raw_set(*filled, value)?;
            Ok(*filled == *len)
        }
        Frame::Map { table, left, key } => match key.take() {
            None => {
                *key = Some(value);
                Ok(false)
            }
            Some(key) => {
                serializer::set_decoded(table, key, value)?;
                *left -= 1;
                Ok(*left == 0)
            }
        },
    }
}

/// A table for `len` items; no more slots than the remaining bytes could fill are reserved.
fn new_array(context: &Context<'_>, len: u32, remaining: usize) -> mlua::Result<Frame> {
    let table = context
        .lua
        .create_table_with_capacity((len as usize).min(remaining), 0)?;
    context.mark_array(&table)?;
    Ok(Frame::Array {
        table,
        filled: 0,
        len,
    })
}

/// A table for `size` pairs, reserving no more than the remaining bytes could fill.
fn new_map(context: &Context<'_>, size: u32, remaining: usize) -> mlua::Result<Frame> {
    let table = context
        .lua
        .create_table_with_capacity(0, (size as usize).min(remaining / 2))?;
    context.mark_map(&table)?;
    Ok(Frame::Map {
        table,
        left: size,
        key: None,
    })
}

/// The value of an empty array or map, with its hint metatable.
fn empty_table(context: &Context<'_>, is_map: bool) -> mlua::Result<Value> {
    let table = context.lua.create_table()?;
    if is_map {
        context.mark_map(&table)?;
    } else {
        context.mark_array(&table)?;
    }
    Ok(Value::Table(table))
}

/// Reads one marker and what directly follows it.
fn read_item(context: &Context<'_>, rest: &mut &[u8]) -> Result<Item, Failure> {
    let invalid = |_| DecodeError::Invalid;
    let mut peek = *rest;
    let marker = rmp::decode::read_marker(&mut peek).map_err(|_| DecodeError::Invalid)?;
    match marker {
        Marker::FixStr(_) | Marker::Str8 | Marker::Str16 | Marker::Str32 => {
            let len = rmp::decode::read_str_len(rest).map_err(invalid)?;
            return Ok(Item::Value(Value::String(
                context.lua.create_string(take(rest, len)?)?,
            )));
        }
        Marker::Bin8 | Marker::Bin16 | Marker::Bin32 => {
            let len = rmp::decode::read_bin_len(rest).map_err(invalid)?;
            return Ok(Item::Value(Value::String(
                context.lua.create_string(take(rest, len)?)?,
            )));
        }
        Marker::FixArray(_) | Marker::Array16 | Marker::Array32 => {
            let len = rmp::decode::read_array_len(rest).map_err(invalid)?;
            return Ok(if len == 0 {
                Item::Value(empty_table(context, false)?)
            } else {
                Item::Array(len)
            });
        }
        Marker::FixMap(_) | Marker::Map16 | Marker::Map32 => {
            let size = rmp::decode::read_map_len(rest).map_err(invalid)?;
            return Ok(if size == 0 {
                Item::Value(empty_table(context, true)?)
            } else {
                Item::Map(size)
            });
        }
        marker if crate::r#box::mp::is_ext(marker) => return Err(extension(rest)),
        _ => *rest = peek,
    }
    use rmp::decode::RmpRead as _;
    let value = match marker {
        Marker::FixPos(integer) => Value::Number(f64::from(integer)),
        Marker::FixNeg(integer) => Value::Number(f64::from(integer)),
        Marker::Null => context.null(),
        Marker::True => Value::Boolean(true),
        Marker::False => Value::Boolean(false),
        Marker::U8 => Value::Number(f64::from(rest.read_data_u8().map_err(invalid)?)),
        Marker::U16 => Value::Number(f64::from(rest.read_data_u16().map_err(invalid)?)),
        Marker::U32 => Value::Number(f64::from(rest.read_data_u32().map_err(invalid)?)),
        Marker::U64 => context.uint_value(rest.read_data_u64().map_err(invalid)?)?,
        Marker::I8 => Value::Number(f64::from(rest.read_data_i8().map_err(invalid)?)),
        Marker::I16 => Value::Number(f64::from(rest.read_data_i16().map_err(invalid)?)),
        Marker::I32 => Value::Number(f64::from(rest.read_data_i32().map_err(invalid)?)),
        Marker::I64 => context.int_value(rest.read_data_i64().map_err(invalid)?)?,
        Marker::F32 => Value::Number(f64::from(rest.read_data_f32().map_err(invalid)?)),
        Marker::F64 => Value::Number(rest.read_data_f64().map_err(invalid)?),
        _ => return Err(DecodeError::Invalid.into()),
    };
    Ok(Item::Value(value))
}

/// The next `len` bytes.
fn take<'a>(rest: &mut &'a [u8], len: u32) -> Result<&'a [u8], DecodeError> {
    let len = len as usize;
    if rest.len() < len {
        return Err(DecodeError::Invalid);
    }
    let (taken, tail) = rest.split_at(len);
    *rest = tail;
    Ok(taken)
}

/// The error for an extension: its type when it is complete, else invalid data.
fn extension(rest: &mut &[u8]) -> Failure {
    match rmp::decode::read_ext_meta(rest) {
        Ok(meta) if rest.len() >= meta.size as usize => DecodeError::Extension(meta.typeid).into(),
        _ => DecodeError::Invalid.into(),
    }
}

// }}}

// {{{ The Lua module

/// Opens the `msgpack` module (the caller puts it into `package.loaded`); its options also
/// become those of `encode_value`, `encode_multi` and `decode_value`.
pub fn open(lua: &Lua) -> mlua::Result<Table> {
    let shared: SharedCfg = Rc::new(std::cell::Cell::new(SerializerCfg::default()));
    lua.set_app_data(ModuleCfg(Rc::clone(&shared)));
    new_module(lua, shared)
}

/// A module instance with its own options: `msgpack` itself and each `msgpack.new()`.
fn new_module(lua: &Lua, shared: SharedCfg) -> mlua::Result<Table> {
    let module = serializer::module_table(lua, &shared)?;
    let encode_cfg = Rc::clone(&shared);
    let encode = serializer::lua_function(lua, move |lua, args| {
        let mut args = args.into_iter();
        let Some(value) = args.next() else {
            return Err(error("msgpack.encode: a Lua object expected"));
        };
        if args.next().is_some_and(|buffer| !buffer.is_nil()) {
            return Err(error(
                "msgpack.encode: argument 2 must be of type 'struct ibuf'",
            ));
        }
        let cfg = encode_cfg.get();
        let mut out = Vec::new();
        if !super::mp_fast::try_encode(lua, &value, &cfg, &mut out) {
            encode_with(&Context::new(lua, cfg)?, value, &mut out)?;
        }
        Ok(MultiValue::from_iter([Value::String(
            lua.create_string(out)?,
        )]))
    })?;
    module.raw_set("encode", encode)?;
    for name in ["decode", "decode_unchecked"] {
        let decode_cfg = Rc::clone(&shared);
        let decode = serializer::lua_function(lua, move |lua, args| {
            lua_decode(lua, decode_cfg.get(), name, args)
        })?;
        module.raw_set(name, decode)?;
    }
    let new = serializer::lua_function(lua, |lua, _| {
        let fresh: SharedCfg = Rc::new(std::cell::Cell::new(SerializerCfg::default()));
        Ok(MultiValue::from_iter([Value::Table(new_module(
            lua, fresh,
        )?)]))
    })?;
    module.raw_set("new", new)?;
    Ok(module)
}

/// `msgpack.decode(data[, position])` → value, position after it (both 1-based).
fn lua_decode(
    lua: &Lua,
    cfg: SerializerCfg,
    name: &str,
    args: MultiValue,
) -> mlua::Result<MultiValue> {
    let mut args = args.into_iter();
    let Some(Value::String(data)) = args.next() else {
        return Err(error(format!(
            "msgpack.{name}: a Lua string or 'char *' expected"
        )));
    };
    let data = data.as_bytes();
    let start = match args.next() {
        None | Some(Value::Nil) => 0,
        Some(Value::Integer(position)) => checked_offset(name, position, data.len())?,
        Some(Value::Number(position)) => checked_offset(name, position as i64, data.len())?,
        Some(other) => {
            return Err(error(format!(
                "bad argument #2 to '{name}' (number expected, got {})",
                serializer::lua_type_name(&other)
            )));
        }
    };
    let context = Context::new(lua, cfg)?;
    match decode_with(&context, &data[start..]) {
        Ok((value, used)) => {
            let next = (start + used + 1) as f64;
            Ok(MultiValue::from_iter([value, Value::Number(next)]))
        }
        Err(Failure::Data(failure)) => Err(error(format!("msgpack.{name}: {}", failure.message()))),
        Err(Failure::Lua(err)) => Err(err),
    }
}

/// A 1-based position inside the data, as a 0-based offset.
fn checked_offset(name: &str, position: i64, len: usize) -> mlua::Result<usize> {
    if position < 1 || position as u64 > len as u64 {
        return Err(error(format!("msgpack.{name}: offset is out of bounds")));
    }
    Ok(position as usize - 1)
}

// }}}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lua::serializer::tests::new_lua;

    fn lua_with_msgpack() -> Lua {
        let lua = new_lua();
        let module = open(&lua).unwrap();
        lua.globals().set("msgpack", module).unwrap();
        lua
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    fn unhex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|at| u8::from_str_radix(&text[at..at + 2], 16).unwrap())
            .collect()
    }

    fn encoded(lua: &Lua, expression: &str) -> String {
        let bytes: mlua::LuaString = lua
            .load(format!("return msgpack.encode({expression})"))
            .eval()
            .unwrap_or_else(|err| panic!("{expression}: {err}"));
        hex(&bytes.as_bytes())
    }

    #[test]
    fn encodes_like_tarantool() {
        let lua = lua_with_msgpack();
        let cases: &[(&str, &str)] = &[
            ("0", "00"),
            ("1", "01"),
            ("-1", "ff"),
            ("127", "7f"),
            ("128", "cc80"),
            ("255", "ccff"),
            ("256", "cd0100"),
            ("65535", "cdffff"),
            ("65536", "ce00010000"),
            ("2^32", "cf0000000100000000"),
            ("-32", "e0"),
            ("-33", "d0df"),
            ("-128", "d080"),
            ("-129", "d1ff7f"),
            ("-2^31", "d280000000"),
            ("-2^31-1", "d3ffffffff7fffffff"),
            ("2^53", "cf0020000000000000"),
            ("2^64", "cb43f0000000000000"),
            ("-2^63", "d38000000000000000"),
            ("1.5", "cb3ff8000000000000"),
            ("1/3", "cb3fd5555555555555"),
            ("0/0", "cbfff8000000000000"),
            ("1/0", "cb7ff0000000000000"),
            ("-0.0", "00"),
            ("1e100", "cb54b249ad2594c37d"),
            ("'abc'", "a3616263"),
            ("string.rep('x', 32)", &format!("d920{}", "78".repeat(32))),
            ("true", "c3"),
            ("false", "c2"),
            ("msgpack.NULL", "c0"),
            ("nil", "c0"),
            ("{}", "90"),
            ("{1, 2}", "920102"),
            ("{a = 1}", "81a16101"),
            ("42ULL", "2a"),
            ("-5LL", "fb"),
            ("18446744073709551615ULL", "cfffffffffffffffff"),
            ("99999999999999", "cf00005af3107a3fff"),
            ("1e14", "cf00005af3107a4000"),
            ("2^53-1", "cf001fffffffffffff"),
            ("require('ffi').new('float', 1.5)", "ca3fc00000"),
            ("setmetatable({}, {__serialize = 'map'})", "80"),
            ("setmetatable({1}, {__serialize = 'map'})", "810101"),
            ("{[1] = 1, [3] = 3}", "9301c003"),
            ("{1, msgpack.NULL, 3}", "9301c003"),
        ];
        for (expression, expected) in cases {
            assert_eq!(encoded(&lua, expression), *expected, "{expression}");
        }
    }

    fn lua_error(lua: &Lua, code: &str) -> String {
        lua.load(format!(
            "local ok, e = pcall(function() return {code} end) assert(not ok) return e"
        ))
        .eval::<String>()
        .unwrap_or_else(|err| panic!("{code}: {err}"))
    }

    #[test]
    fn encode_errors_like_tarantool() {
        let lua = lua_with_msgpack();
        assert_eq!(
            lua_error(&lua, "msgpack.encode()"),
            "msgpack.encode: a Lua object expected"
        );
        assert_eq!(
            lua_error(&lua, "msgpack.encode(1, 2)"),
            "msgpack.encode: argument 2 must be of type 'struct ibuf'"
        );
        assert_eq!(
            lua_error(&lua, "msgpack.encode(print)"),
            "unsupported Lua type 'function'"
        );
        assert_eq!(
            lua_error(
                &lua,
                "msgpack.encode((function() local r = {} r[1] = r return r end)())"
            ),
            "Too high nest level - 129"
        );
        let deep = |levels: usize| {
            format!(
                "(function() local t = {{}} local c = t for i = 1, {levels} do c[1] = {{}} c = c[1] end return t end)()"
            )
        };
        assert_eq!(encoded(&lua, &deep(127)), format!("{}90", "91".repeat(127)));
        assert_eq!(
            lua_error(&lua, &format!("msgpack.encode({})", deep(128))),
            "Too high nest level - 129"
        );
        let as_nil: mlua::LuaString = lua
            .load(format!(
                "local m = msgpack.new() m.cfg{{encode_deep_as_nil = true}} return m.encode({})",
                deep(130)
            ))
            .eval()
            .unwrap();
        assert_eq!(hex(&as_nil.as_bytes()), format!("{}c0", "91".repeat(128)));
    }

    fn decoded(lua: &Lua, bytes: &[u8]) -> (String, String, String) {
        let function: mlua::Function = lua
            .load(
                "return function(s) \
                     local ok, v, pos = pcall(msgpack.decode, s) \
                     local mt = ok and type(v) == 'table' and getmetatable(v) \
                     return tostring(ok) .. ' ' .. (type(v) == 'table' and 'table' or tostring(v)), \
                            tostring(pos), mt and mt.__serialize or '' \
                 end",
            )
            .eval()
            .unwrap();
        function.call(lua.create_string(bytes).unwrap()).unwrap()
    }

    #[test]
    fn decodes_like_tarantool() {
        let lua = lua_with_msgpack();
        let cases: &[(&str, &str, &str, &str)] = &[
            ("cf000000174876e7ff", "true 99999999999", "10", ""),
            ("d3ffffffe8b7891801", "true -99999999999", "10", ""),
            ("cf001fffffffffffff", "true 9007199254740991ULL", "10", ""),
            ("cf0020000000000000", "true 9007199254740992ULL", "10", ""),
            ("cf00005af3107a4000", "true 100000000000000ULL", "10", ""),
            ("cf00005af3107a3fff", "true 99999999999999", "10", ""),
            (
                "d38000000000000000",
                "true -9223372036854775808LL",
                "10",
                "",
            ),
            (
                "cfffffffffffffffff",
                "true 18446744073709551615ULL",
                "10",
                "",
            ),
            ("ca3fc00000", "true 1.5", "6", ""),
            ("c0", "true cdata<void *>: NULL", "2", ""),
            ("c2", "true false", "2", ""),
            ("c3", "true true", "2", ""),
            ("91c0", "true table", "3", "seq"),
            ("80", "true table", "2", "map"),
            ("90", "true table", "2", "seq"),
            ("a3616263", "true abc", "5", ""),
            ("c403616263", "true abc", "6", ""),
            ("d9036162630102", "true abc", "6", ""),
            ("e0", "true -32", "2", ""),
            ("d0df", "true -33", "3", ""),
            (
                "d40100",
                "false msgpack.decode: unsupported MsgPack extension type: 1",
                "nil",
                "",
            ),
            (
                "c7010100",
                "false msgpack.decode: unsupported MsgPack extension type: 1",
                "nil",
                "",
            ),
            ("c1", "false msgpack.decode: invalid MsgPack", "nil", ""),
            ("dc0001", "false msgpack.decode: invalid MsgPack", "nil", ""),
            ("92", "false msgpack.decode: invalid MsgPack", "nil", ""),
            ("", "false msgpack.decode: invalid MsgPack", "nil", ""),
            ("a5ab", "false msgpack.decode: invalid MsgPack", "nil", ""),
            ("d501", "false msgpack.decode: invalid MsgPack", "nil", ""),
            (
                "ddffffffff",
                "false msgpack.decode: invalid MsgPack",
                "nil",
                "",
            ),
            (
                "dbffffffff",
                "false msgpack.decode: invalid MsgPack",
                "nil",
                "",
            ),
            ("81a161", "false msgpack.decode: invalid MsgPack", "nil", ""),
            (
                "81cb7ff8000000000000c0",
                "false table index is NaN",
                "nil",
                "",
            ),
        ];
        for (bytes, value, position, hint) in cases {
            let (got_value, got_position, got_hint) = decoded(&lua, &unhex(bytes));
            assert_eq!(got_value, *value, "{bytes}");
            if !value.starts_with("false") {
                assert_eq!(
                    (got_position.as_str(), got_hint.as_str()),
                    (*position, *hint),
                    "{bytes}"
                );
            }
        }
    }

    #[test]
    fn decode_positions_and_arguments() {
        let lua = lua_with_msgpack();
        let positions: (i64, i64, i64, i64) = lua
            .load("local a, b = msgpack.decode('\\1\\2', 2) local c, d = msgpack.decode_unchecked('\\1\\2', 2) return a, b, c, d")
            .eval()
            .unwrap();
        assert_eq!(positions, (2, 3, 2, 3));
        for (code, message) in [
            (
                "msgpack.decode('\\1\\2', 3)",
                "msgpack.decode: offset is out of bounds",
            ),
            (
                "msgpack.decode('\\1\\2', 0)",
                "msgpack.decode: offset is out of bounds",
            ),
            (
                "msgpack.decode('\\1\\2', -1)",
                "msgpack.decode: offset is out of bounds",
            ),
            (
                "msgpack.decode()",
                "msgpack.decode: a Lua string or 'char *' expected",
            ),
            (
                "msgpack.decode(5)",
                "msgpack.decode: a Lua string or 'char *' expected",
            ),
            (
                "msgpack.decode({})",
                "msgpack.decode: a Lua string or 'char *' expected",
            ),
            (
                "msgpack.decode('\\1', 'x')",
                "bad argument #2 to 'decode' (number expected, got string)",
            ),
            (
                "msgpack.decode_unchecked('\\146')",
                "msgpack.decode_unchecked: invalid MsgPack",
            ),
        ] {
            assert_eq!(lua_error(&lua, code), message, "{code}");
        }
        let walked: i64 = lua
            .load(
                "local data = msgpack.encode(1) .. msgpack.encode('two') .. msgpack.encode({3}) \
                 local pos, count = 1, 0 \
                 while pos <= #data do local _ _, pos = msgpack.decode(data, pos) count = count + 1 end \
                 return count",
            )
            .eval()
            .unwrap();
        assert_eq!(walked, 3);
    }

    #[test]
    fn deep_input_is_an_error_not_a_crash() {
        let lua = lua_with_msgpack();
        let mut deep = vec![0x91; 200];
        deep.push(0xc0);
        let (value, used) = decode_value(&lua, &deep).unwrap();
        assert!(matches!(value, Value::Table(_)));
        assert_eq!(used, 201);
        let mut too_deep = vec![0x91; NESTING_MAX + 1];
        too_deep.push(0xc0);
        let err = decode_value(&lua, &too_deep).unwrap_err();
        assert_eq!(
            serializer::error_message(&err),
            format!("msgpack.decode: MsgPack nested deeper than {NESTING_MAX} levels")
        );
        let endless = vec![0x91; 1_000_000];
        assert!(decode_value(&lua, &endless).is_err());
        let claims = [0xdd, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(
            serializer::error_message(&decode_value(&lua, &claims).unwrap_err()),
            "msgpack.decode: invalid MsgPack"
        );
    }

    #[test]
    fn decode_rejects_every_truncation() {
        let lua = lua_with_msgpack();
        let bytes: mlua::LuaString = lua
            .load(
                "return msgpack.encode({1, -200, 70000, 2^40, -2^40, 1.5, 'str', {a = {true, false}}, \
                                        msgpack.NULL, 18446744073709551615ULL, string.rep('y', 300)})",
            )
            .eval()
            .unwrap();
        let bytes = bytes.as_bytes().to_vec();
        let (_, used) = decode_value(&lua, &bytes).unwrap();
        assert_eq!(used, bytes.len());
        for cut in 0..bytes.len() {
            assert!(decode_value(&lua, &bytes[..cut]).is_err(), "cut at {cut}");
        }
        // Arbitrary bytes never panic.
        let mut seed: u32 = 7;
        for _ in 0..2000 {
            let len = (seed % 24) as usize;
            let mut sample = Vec::with_capacity(len);
            for _ in 0..len {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                sample.push((seed >> 16) as u8);
            }
            let _ = decode_value(&lua, &sample);
        }
    }

    #[test]
    fn rust_entry_points_round_trip() {
        let lua = lua_with_msgpack();
        let values: MultiValue = lua
            .load("return 1, 'two', {3, {four = 4}}, nil, 18446744073709551615ULL, -9223372036854775807LL - 1, 0.5")
            .eval()
            .unwrap();
        let values: Vec<Value> = values.into_iter().collect();
        let mut out = Vec::new();
        encode_multi(&lua, &values, &mut out).unwrap();
        let (decoded, used) = decode_value(&lua, &out).unwrap();
        assert_eq!(used, out.len());
        lua.globals().set("decoded", decoded).unwrap();
        let ok: bool = lua
            .load(
                "local d = decoded \
                 return #d == 7 and d[1] == 1 and d[2] == 'two' and d[3][1] == 3 and d[3][2].four == 4 \
                    and d[4] == nil and type(d[4]) == 'cdata' \
                    and d[5] == 18446744073709551615ULL and d[6] == -9223372036854775807LL - 1 and d[7] == 0.5 \
                    and getmetatable(d).__serialize == 'seq' and getmetatable(d[3][2]).__serialize == 'map'",
            )
            .eval()
            .unwrap();
        assert!(ok);
        let mut single = Vec::new();
        encode_value(&lua, &Value::Integer(300), &mut single).unwrap();
        assert_eq!(single, vec![0xcd, 0x01, 0x2c]);
        let err = encode_value(
            &lua,
            &Value::Function(lua.create_function(|_, ()| Ok(())).unwrap()),
            &mut single,
        )
        .unwrap_err();
        assert_eq!(
            serializer::error_message(&err),
            "unsupported Lua type 'function'"
        );
    }

    #[test]
    fn rust_entry_points_follow_module_cfg() {
        let lua = lua_with_msgpack();
        lua.load("msgpack.cfg{encode_invalid_as_nil = true, decode_save_metatables = false}")
            .exec()
            .unwrap();
        let mut out = Vec::new();
        let function = Value::Function(lua.create_function(|_, ()| Ok(())).unwrap());
        encode_value(&lua, &function, &mut out).unwrap();
        assert_eq!(out, vec![0xc0]);
        let (value, _) = decode_value(&lua, &[0x91, 0x01]).unwrap();
        let Value::Table(table) = value else {
            panic!("not a table")
        };
        assert!(table.metatable().is_none());
        let fresh = new_lua();
        let mut out = Vec::new();
        assert!(encode_value(&fresh, &function_in(&fresh), &mut out).is_err());
    }

    fn function_in(lua: &Lua) -> Value {
        Value::Function(lua.create_function(|_, ()| Ok(())).unwrap())
    }

    #[test]
    fn round_trips_edge_values() {
        let lua = lua_with_msgpack();
        let ok: bool = lua
            .load(
                "local values = {0, 1, -1, 127, 128, -32, -33, 255, 256, 65535, 65536, 2^31, -2^31, \
                                 2^32, 2^53, -2^53, 99999999999999, 100000000000000, 2^63, -2^63, \
                                 18446744073709551615ULL, 9223372036854775807LL, -9223372036854775807LL - 1, \
                                 1.5, -0.25, 1e308, 1/0, -1/0, '', 'x', string.rep('z', 70000), true, false} \
                 for i, v in ipairs(values) do \
                     local d = msgpack.decode(msgpack.encode(v)) \
                     if d ~= v then error('mismatch at ' .. i .. ': ' .. tostring(v) .. ' vs ' .. tostring(d)) end \
                 end \
                 local nan = msgpack.decode(msgpack.encode(0/0)) \
                 local m = msgpack.decode(msgpack.encode({a = 1, [5] = 'five', [-1] = true})) \
                 return nan ~= nan and m.a == 1 and m[5] == 'five' and m[-1] == true",
            )
            .eval()
            .unwrap_or_else(|err| panic!("{err}"));
        assert!(ok);
    }

    #[test]
    fn module_shares_null_and_hint_metatables() {
        let lua = lua_with_msgpack();
        let ok: bool = lua
            .load(
                "local m = msgpack.new() \
                 return rawequal(m.NULL, msgpack.NULL) and m.array_mt == msgpack.array_mt \
                    and msgpack.array_mt.__serialize == 'seq' and msgpack.map_mt.__serialize == 'map' \
                    and msgpack.cfg.decode_save_metatables == true",
            )
            .eval()
            .unwrap();
        assert!(ok);
    }
}
