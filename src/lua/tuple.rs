//! `box.tuple` in Lua: a userdata holding a [`Tuple`] reference.
//!
//! Owned by the TX thread. A tuple pushed to Lua is the same allocation the index holds;
//! fields are decoded from MessagePack only when read (`t[2]`, `t:unpack()`).

use mlua::{
    AnyUserData, Lua, MetaMethod, MultiValue, Table, UserData, UserDataMethods, Value, Variadic,
};

use crate::r#box::key_def;
use crate::r#box::mp;
use crate::r#box::tuple::Tuple;
use crate::r#box::update;

use super::msgpack;

/// Named registry slot of the Lua-side tuple methods (update, upsert, transform).
pub const METHODS_KEY: &str = "tarantula.tuple.methods";

/// The userdata wrapping a tuple.
pub struct LuaTuple(pub Tuple);

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

impl LuaTuple {
    fn field(&self, lua: &Lua, fieldno: i64) -> mlua::Result<Value> {
        if fieldno < 1 {
            return Ok(Value::Nil);
        }
        match key_def::tuple_field(self.0.data(), (fieldno - 1) as u32) {
            Some(bytes) => decode(lua, bytes),
            None => Ok(Value::Nil),
        }
    }

    fn values(&self, lua: &Lua, first: Option<i64>, last: Option<i64>) -> mlua::Result<Vec<Value>> {
        let fields = fields(&self.0);
        let (from, to) = range(fields.len(), first, last);
        fields[from..to]
            .iter()
            .map(|bytes| decode(lua, bytes))
            .collect()
    }

    fn table(&self, lua: &Lua, first: Option<i64>, last: Option<i64>) -> mlua::Result<Table> {
        let values = self.values(lua, first, last)?;
        let table = lua.create_sequence_from(values)?;
        table.set_metatable(Some(super::serializer::array_mt(lua)?))?;
        Ok(table)
    }
}

impl UserData for LuaTuple {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method(
            "unpack",
            |lua, this, (first, last): (Option<i64>, Option<i64>)| {
                Ok(MultiValue::from_iter(this.values(lua, first, last)?))
            },
        );
        methods.add_method(
            "totable",
            |lua, this, (first, last): (Option<i64>, Option<i64>)| this.table(lua, first, last),
        );
        methods.add_method("bsize", |_, this, ()| Ok(this.0.bsize()));
        methods.add_method("find", |lua, this, args: Variadic<Value>| {
            find(lua, this, args, false)
        });
        methods.add_method("findall", |lua, this, args: Variadic<Value>| {
            find(lua, this, args, true)
        });
        methods.add_method("pairs", |lua, this, ()| pairs(lua, this));
        methods.add_method("ipairs", |lua, this, ()| pairs(lua, this));
        methods.add_meta_method(MetaMethod::Len, |_, this, ()| {
            Ok(key_def::tuple_field_count(this.0.data()).unwrap_or(0))
        });
        methods.add_meta_method(MetaMethod::Index, |lua, this, key: Value| match key {
            Value::Integer(n) => this.field(lua, n),
            Value::Number(n) if n.fract() == 0.0 => this.field(lua, n as i64),
            // Methods that can fail are Lua (builtin/box_schema.lua), so they raise
            // Tarantool's error objects.
            Value::String(name) => match lua.named_registry_value::<Table>(METHODS_KEY) {
                Ok(methods) => methods.raw_get(name),
                Err(_) => Ok(Value::Nil),
            },
            _ => Ok(Value::Nil),
        });
        methods.add_meta_method(MetaMethod::ToString, |lua, this, ()| {
            // The flow-style YAML of the console, without the document markers.
            let table = this.table(lua, None, None)?;
            let yaml: Table = lua
                .globals()
                .get::<Table>("package")?
                .get::<Table>("loaded")?
                .get("yaml")?;
            let encode: mlua::Function = yaml.get("encode")?;
            let text = encode.call::<String>(table)?;
            let text = text.strip_prefix("--- ").unwrap_or(&text);
            Ok(text.strip_suffix("\n...\n").unwrap_or(text).to_string())
        });
        methods.add_method("__serialize", |lua, this, ()| this.table(lua, None, None));
    }
}

/// `tuple:update(ops)` / `tuple:upsert(ops)` of a standalone tuple: the new tuple, or
/// `nil, err` for the Lua wrapper to raise.
pub fn update_standalone(
    lua: &Lua,
    tuple: &Value,
    ops: &Value,
    upsert: bool,
) -> mlua::Result<MultiValue> {
    let Some(tuple) = from_value(tuple) else {
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
fn find(lua: &Lua, this: &LuaTuple, args: Variadic<Value>, all: bool) -> mlua::Result<MultiValue> {
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
    let found: Vec<Value> = fields(&this.0)
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
pub fn transform(lua: &Lua, this: &LuaTuple, args: Variadic<Value>) -> mlua::Result<Value> {
    let fields = fields(&this.0);
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
fn pairs(lua: &Lua, this: &LuaTuple) -> mlua::Result<MultiValue> {
    let table = this.table(lua, None, None)?;
    let ipairs: mlua::Function = lua.globals().get("ipairs")?;
    ipairs.call(table)
}

/// Push a tuple to Lua.
pub fn push(lua: &Lua, tuple: Tuple) -> mlua::Result<Value> {
    lua.create_userdata(LuaTuple(tuple)).map(Value::UserData)
}

/// The tuple inside a Lua value, if it holds one.
pub fn from_value(value: &Value) -> Option<Tuple> {
    match value {
        Value::UserData(data) => data.borrow::<LuaTuple>().ok().map(|t| t.0.clone()),
        _ => None,
    }
}

/// Whether a userdata is a tuple.
pub fn is_tuple(data: &AnyUserData) -> bool {
    data.is::<LuaTuple>()
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
