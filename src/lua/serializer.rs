//! Tarantool's rules for turning a Lua value into something a serializer can write (what
//! `luaL_tofield` does in Tarantool), shared by the `yaml`, `json` and `msgpack` modules: the
//! per-module options (`cfg`), the one `NULL` of a Lua state, the `array_mt`/`map_mt` hint
//! metatables, 64-bit integers as LuaJIT cdata, `%.14g` number text and the glue that turns
//! Rust errors into plain Lua error strings.
//!
//! Runs on the TX thread, which owns the Lua state; nothing here is `Send`.
//!
//! The common path (numbers, strings, booleans, tables) never calls into Lua code: mlua shows
//! those types directly. Only rare values (cdata, userdata, `__serialize` functions) go through
//! the small Lua helpers of `HELPERS_LUA`, created once per Lua state.

use std::cell::Cell;
use std::io::Write as _;
use std::rc::Rc;

use mlua::{Function, Lua, MultiValue, Table, Value};

/// Integers with an absolute value up to this decode to plain Lua numbers; larger ones become
/// `int64_t`/`uint64_t` cdata. Tarantool's `DBL_INT_MAX` (`1e14 - 1`): Lua prints numbers with
/// `%.14g`, so a bigger integer kept as a double would print rounded.
pub const NUMBER_INT_MAX: u64 = 100_000_000_000_000 - 1;

/// A hard cap on nesting for every encoder and decoder, whatever `encode_max_depth` or
/// `decode_max_depth` say: each level costs native stack (and a few mlua reference slots, of
/// which LuaJIT allows about 8000), so a user setting a huge depth must get an error, not a
/// crashed server.
pub const NESTING_MAX: usize = 1000;

/// How many times in a row a `__serialize` function may return yet another value with a
/// `__serialize` function before we give up: a function returning a fresh object of its own
/// kind would otherwise loop forever.
const SERIALIZE_CHAIN_MAX: usize = 64;

/// Tarantool's serializer options (`luaL_serializer`), one set per module instance. The Lua
/// side reads and writes them through `<module>.cfg` and `<module>.cfg{...}`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SerializerCfg {
    /// Encode an excessively sparse array as a map (else raise an error).
    pub encode_sparse_convert: bool,
    /// A table with keys 1..max is "excessively sparse" when max > size * ratio ...
    pub encode_sparse_ratio: i64,
    /// ... and max > safe. A ratio of 0 disables the check.
    pub encode_sparse_safe: i64,
    /// Tables nested deeper than this raise "Too high nest level" (json, msgpack, yaml).
    pub encode_max_depth: i64,
    /// Encode tables past `encode_max_depth` as nil instead of raising.
    pub encode_deep_as_nil: bool,
    /// Allow NaN and ±inf in the output.
    pub encode_invalid_numbers: bool,
    /// Significant digits of a double (`%.14g`).
    pub encode_number_precision: i64,
    /// Honour `__serialize` in metatables.
    pub encode_load_metatables: bool,
    /// Encode unsupported values (functions, userdata...) as their `tostring()`.
    pub encode_use_tostring: bool,
    /// Encode unsupported values and rejected numbers as nil.
    pub encode_invalid_as_nil: bool,
    /// Accept NaN and ±inf in the input.
    pub decode_invalid_numbers: bool,
    /// Give decoded arrays and maps the `array_mt`/`map_mt` metatables.
    pub decode_save_metatables: bool,
    /// Containers nested deeper than this in the input raise an error (json, yaml).
    pub decode_max_depth: i64,
    /// YAML only: 'seq' and 'map' hints ask for the compact flow style. Not a Lua option.
    pub has_compact: bool,
}

impl Default for SerializerCfg {
    fn default() -> Self {
        SerializerCfg {
            encode_sparse_convert: true,
            encode_sparse_ratio: 2,
            encode_sparse_safe: 10,
            encode_max_depth: 128,
            encode_deep_as_nil: false,
            encode_invalid_numbers: true,
            encode_number_precision: 14,
            encode_load_metatables: true,
            encode_use_tostring: false,
            encode_invalid_as_nil: false,
            decode_invalid_numbers: true,
            decode_save_metatables: true,
            decode_max_depth: 128,
            has_compact: false,
        }
    }
}

/// The Lua-visible options, in Tarantool's order.
const OPTION_NAMES: [&str; 13] = [
    "encode_sparse_convert",
    "encode_sparse_ratio",
    "encode_sparse_safe",
    "encode_max_depth",
    "encode_deep_as_nil",
    "encode_invalid_numbers",
    "encode_number_precision",
    "encode_load_metatables",
    "encode_use_tostring",
    "encode_invalid_as_nil",
    "decode_invalid_numbers",
    "decode_save_metatables",
    "decode_max_depth",
];

/// Where one option lives in `SerializerCfg`.
enum OptionSlot<'a> {
    /// A boolean option.
    Flag(&'a mut bool),
    /// An integer option.
    Number(&'a mut i64),
}

impl SerializerCfg {
    /// The defaults with the YAML-only compact flag set as `yaml` needs.
    pub fn with_compact(has_compact: bool) -> Self {
        SerializerCfg {
            has_compact,
            ..SerializerCfg::default()
        }
    }

    /// The field behind the option `name`, if there is one.
    fn slot(&mut self, name: &str) -> Option<OptionSlot<'_>> {
        use OptionSlot::{Flag, Number};
        Some(match name {
            "encode_sparse_convert" => Flag(&mut self.encode_sparse_convert),
            "encode_sparse_ratio" => Number(&mut self.encode_sparse_ratio),
            "encode_sparse_safe" => Number(&mut self.encode_sparse_safe),
            "encode_max_depth" => Number(&mut self.encode_max_depth),
            "encode_deep_as_nil" => Flag(&mut self.encode_deep_as_nil),
            "encode_invalid_numbers" => Flag(&mut self.encode_invalid_numbers),
            "encode_number_precision" => Number(&mut self.encode_number_precision),
            "encode_load_metatables" => Flag(&mut self.encode_load_metatables),
            "encode_use_tostring" => Flag(&mut self.encode_use_tostring),
            "encode_invalid_as_nil" => Flag(&mut self.encode_invalid_as_nil),
            "decode_invalid_numbers" => Flag(&mut self.decode_invalid_numbers),
            "decode_save_metatables" => Flag(&mut self.decode_save_metatables),
            "decode_max_depth" => Number(&mut self.decode_max_depth),
            _ => return None,
        })
    }

    /// The option's current value as Lua sees it in `<module>.cfg`.
    fn option_value(&self, name: &str) -> Value {
        let mut copy = *self;
        match copy.slot(name) {
            Some(OptionSlot::Flag(flag)) => Value::Boolean(*flag),
            Some(OptionSlot::Number(number)) => Value::Integer(*number),
            None => Value::Nil,
        }
    }

    /// Sets one option from a Lua value the way Tarantool parses it: flags by truthiness,
    /// numbers as `lua_tointeger` would (0 when not convertible). Unknown names are ignored.
    fn set_option(&mut self, name: &str, value: &Value) {
        match self.slot(name) {
            Some(OptionSlot::Flag(flag)) => {
                *flag = !matches!(value, Value::Nil | Value::Boolean(false))
            }
            Some(OptionSlot::Number(number)) => *number = to_integer(value),
            None => {}
        }
    }

    /// Applies every option present in `options`; also stores the raw values into `mirror`
    /// (the module's `cfg` table) when given, as Tarantool's `cfg{}` does.
    pub fn update_from(&mut self, options: &Table, mirror: Option<&Table>) -> mlua::Result<()> {
        for name in OPTION_NAMES {
            let value: Value = options.get(name)?;
            if value.is_nil() {
                continue;
            }
            self.set_option(name, &value);
            if let Some(mirror) = mirror {
                mirror.raw_set(name, value)?;
            }
        }
        Ok(())
    }

    /// Writes every option into `table`.
    fn store(&self, table: &Table) -> mlua::Result<()> {
        for name in OPTION_NAMES {
            table.raw_set(name, self.option_value(name))?;
        }
        Ok(())
    }

    /// The nesting limit of encoders: `encode_max_depth` within the hard cap.
    pub fn encode_depth_max(&self) -> usize {
        clamp_depth(self.encode_max_depth)
    }

    /// The nesting limit of decoders: `decode_max_depth` within the hard cap.
    pub fn decode_depth_max(&self) -> usize {
        clamp_depth(self.decode_max_depth)
    }

    /// The `%g` precision: Tarantool's `fpconv_g_fmt` uses 14 for anything outside 1..=14.
    pub fn number_precision(&self) -> usize {
        match self.encode_number_precision {
            precision @ 1..=14 => precision as usize,
            _ => 14,
        }
    }
}

/// A configured depth within `0..=NESTING_MAX`.
fn clamp_depth(depth: i64) -> usize {
    depth.clamp(0, NESTING_MAX as i64) as usize
}

/// `lua_tointeger`: numbers truncate, numeric strings convert, anything else is 0.
fn to_integer(value: &Value) -> i64 {
    match value {
        Value::Integer(i) => *i,
        Value::Number(n) if n.is_finite() => *n as i64,
        Value::String(s) => std::str::from_utf8(&s.as_bytes())
            .ok()
            .and_then(|text| text.trim().parse::<f64>().ok())
            .filter(|n| n.is_finite())
            .map_or(0, |n| n as i64),
        _ => 0,
    }
}

/// A module instance's options, shared by its functions and its `cfg` table.
pub type SharedCfg = Rc<Cell<SerializerCfg>>;

/// A Lua error with `message` as its text.
pub fn error(message: impl Into<String>) -> mlua::Error {
    mlua::Error::RuntimeError(message.into())
}

/// The text of an error as a Lua script should see it: our own messages verbatim, errors of
/// callbacks unwrapped down to their cause, anything else through its `Display`.
pub fn error_message(err: &mlua::Error) -> String {
    match err {
        mlua::Error::RuntimeError(message) => message.clone(),
        mlua::Error::CallbackError { cause, .. } => error_message(cause),
        mlua::Error::WithContext { cause, .. } => error_message(cause),
        mlua::Error::MemoryError(_) => "not enough memory".to_string(),
        other => other.to_string(),
    }
}

/// Lua code for what Rust cannot do through mlua: classify cdata, build int64/uint64 cdata,
/// look up `__serialize` on userdata and cdata (indexing them may raise), and raise plain
/// string errors (mlua wraps errors returned by Rust callbacks into userdata objects).
const HELPERS_LUA: &str = r#"
local ffi = require('ffi')
local bit = require('bit')
local typeof, tonumber, pcall, error = ffi.typeof, tonumber, pcall, error
local rshift, band = bit.rshift, bit.band
local int64_t, uint64_t = typeof('int64_t'), typeof('uint64_t')

-- ctype id -> CdataKind (serializer.rs)
local kinds = {}
local function kind_of(decl, kind) kinds[tonumber(typeof(decl))] = kind end
kind_of('void *', 1)
kind_of('const void *', 1)
kind_of('bool', 2)
for _, decl in ipairs({'char', 'int8_t', 'int16_t', 'int32_t',
                       'uint8_t', 'uint16_t', 'uint32_t'}) do
    kind_of(decl, 3)
end
kind_of('float', 4)
kind_of('double', 5)
kind_of('int64_t', 6)
kind_of('uint64_t', 7)

local function classify(v)
    local kind = kinds[tonumber(typeof(v))]
    if kind == nil then
        return 0
    elseif kind == 1 then
        if v == nil then return 1 end
        return 0
    elseif kind == 2 then
        return 2, tonumber(v) ~= 0
    elseif kind <= 5 then
        return kind, tonumber(v)
    end
    return kind, tonumber(rshift(v, 32)), tonumber(band(v, 0xffffffff))
end

local function index(v, k) return v[k] end
local function get_serialize(v)
    local ok, fn = pcall(index, v, '__serialize')
    if ok then return fn end
    return nil
end

local function finish(ok, ...)
    if ok then return ... end
    error((...), 0)
end
local function raising(raw)
    return function(...) return finish(raw(...)) end
end

return {
    null = ffi.cast('void *', 0),
    array_mt = {__serialize = 'seq'},
    map_mt = {__serialize = 'map'},
    classify = classify,
    get_serialize = get_serialize,
    pcall = pcall,
    tostring = tostring,
    make_int64 = function(hi, lo) return int64_t(hi) * 4294967296LL + lo end,
    make_uint64 = function(hi, lo) return uint64_t(hi) * 4294967296ULL + lo end,
    raising = raising,
}
"#;

/// The per-Lua-state objects of `HELPERS_LUA`, kept in the state's app data.
struct Helpers {
    /// `ffi.cast('void *', 0)`: the NULL of every module.
    null: Value,
    /// `{__serialize = 'seq'}`.
    array_mt: Table,
    /// `{__serialize = 'map'}`.
    map_mt: Table,
    /// cdata → (kind, payload...).
    classify: Function,
    /// `v.__serialize`, or nil when indexing `v` fails.
    get_serialize: Function,
    /// Lua's `pcall`.
    pcall: Function,
    /// Lua's `tostring`.
    tostring: Function,
    /// (high, low) → `int64_t` cdata.
    make_int64: Function,
    /// (high, low) → `uint64_t` cdata.
    make_uint64: Function,
    /// Wraps a Rust function so that its failures raise plain strings.
    raising: Function,
}

/// The helpers of this Lua state, created on first use.
fn helpers(lua: &Lua) -> mlua::Result<Rc<Helpers>> {
    if let Some(helpers) = lua.app_data_ref::<Rc<Helpers>>() {
        return Ok(Rc::clone(&helpers));
    }
    let table: Table = lua.load(HELPERS_LUA).set_name("=serializer").eval()?;
    let helpers = Rc::new(Helpers {
        null: table.get("null")?,
        array_mt: table.get("array_mt")?,
        map_mt: table.get("map_mt")?,
        classify: table.get("classify")?,
        get_serialize: table.get("get_serialize")?,
        pcall: table.get("pcall")?,
        tostring: table.get("tostring")?,
        make_int64: table.get("make_int64")?,
        make_uint64: table.get("make_uint64")?,
        raising: table.get("raising")?,
    });
    lua.set_app_data(Rc::clone(&helpers));
    Ok(helpers)
}

/// The NULL of this Lua state: one `void *` NULL cdata (`box.NULL`, `json.NULL`, `yaml.NULL`
/// and `msgpack.NULL` are all this object). It is equal to nil in Lua comparisons.
pub fn null(lua: &Lua) -> mlua::Result<Value> {
    Ok(helpers(lua)?.null.clone())
}

/// `{__serialize = 'seq'}`, shared by all modules as `array_mt`.
pub fn array_mt(lua: &Lua) -> mlua::Result<Table> {
    Ok(helpers(lua)?.array_mt.clone())
}

/// `{__serialize = 'map'}`, shared by all modules as `map_mt`.
pub fn map_mt(lua: &Lua) -> mlua::Result<Table> {
    Ok(helpers(lua)?.map_mt.clone())
}

/// A Lua function around `body` whose errors reach Lua as plain strings (no mlua wrapper, no
/// position prefix), like errors raised by Tarantool's C modules with `luaL_error`.
pub fn lua_function<F>(lua: &Lua, body: F) -> mlua::Result<Function>
where
    F: Fn(&Lua, MultiValue) -> mlua::Result<MultiValue> + 'static,
{
    let raw = lua.create_function(move |lua, args: MultiValue| match body(lua, args) {
        Ok(mut results) => {
            results.push_front(Value::Boolean(true));
            Ok(results)
        }
        Err(err) => {
            let message = lua.create_string(error_message(&err))?;
            Ok(MultiValue::from_iter([
                Value::Boolean(false),
                Value::String(message),
            ]))
        }
    })?;
    helpers(lua)?.raising.call(raw)
}

/// A new module table with `cfg` (a table mirroring `cfg`, callable as `cfg{...}`), `NULL`,
/// `array_mt` and `map_mt`. The caller adds `encode`, `decode` and the rest.
pub fn module_table(lua: &Lua, cfg: &SharedCfg) -> mlua::Result<Table> {
    let module = lua.create_table()?;
    let cfg_table = lua.create_table()?;
    cfg.get().store(&cfg_table)?;
    let metatable = lua.create_table()?;
    let shared = Rc::clone(cfg);
    let call = lua_function(lua, move |_, args| {
        let mut args = args.into_iter();
        let Some(Value::Table(mirror)) = args.next() else {
            return Err(error("bad argument #1 to '?' (table expected)"));
        };
        let options = table_argument(args.next(), 2)?;
        let mut updated = shared.get();
        updated.update_from(&options, Some(&mirror))?;
        shared.set(updated);
        Ok(MultiValue::new())
    })?;
    metatable.raw_set("__call", call)?;
    cfg_table.set_metatable(Some(metatable))?;
    module.raw_set("cfg", cfg_table)?;
    module.raw_set("NULL", null(lua)?)?;
    module.raw_set("array_mt", array_mt(lua)?)?;
    module.raw_set("map_mt", map_mt(lua)?)?;
    Ok(module)
}

/// Argument `position` as a table, or Lua's "bad argument" error.
pub fn table_argument(value: Option<Value>, position: usize) -> mlua::Result<Table> {
    match value {
        Some(Value::Table(table)) => Ok(table),
        other => Err(error(format!(
            "bad argument #{position} to '?' (table expected, got {})",
            lua_type_name_of(other.as_ref())
        ))),
    }
}

/// `cfg` with the per-call options of `options` applied (json's `encode(v, opts)`).
pub fn cfg_with_options(cfg: SerializerCfg, options: Option<Value>) -> mlua::Result<SerializerCfg> {
    match options {
        None | Some(Value::Nil) => Ok(cfg),
        other => {
            let options = table_argument(other, 2)?;
            let mut updated = cfg;
            updated.update_from(&options, None)?;
            Ok(updated)
        }
    }
}

/// Lua's `type()` name of an argument, "no value" when it is absent.
pub fn lua_type_name_of(value: Option<&Value>) -> &'static str {
    match value {
        None => "no value",
        Some(value) => lua_type_name(value),
    }
}

/// Lua's `type()` name of a value (mlua says "integer" and "other" where Lua does not).
pub fn lua_type_name(value: &Value) -> &'static str {
    match value {
        Value::Nil => "nil",
        Value::Boolean(_) => "boolean",
        Value::Integer(_) | Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Table(_) => "table",
        Value::Function(_) => "function",
        Value::Thread(_) => "thread",
        Value::LightUserData(_) | Value::UserData(_) | Value::Error(_) => "userdata",
        Value::Other(_) => "cdata",
    }
}

/// What a Lua value serializes as: Tarantool's `luaL_field`.
#[derive(Debug)]
pub enum Field {
    /// nil, NULL pointers and (with `encode_invalid_as_nil`) what cannot be encoded.
    Nil,
    /// A boolean.
    Bool(bool),
    /// A non-negative integer.
    UInt(u64),
    /// A negative integer.
    Int(i64),
    /// A `float` cdata: msgpack writes it as float32.
    Float(f32),
    /// A double (whole doubles in the 64-bit ranges are integers instead).
    Double(f64),
    /// A string: any bytes.
    Str(mlua::LuaString),
    /// `table[1..=len]` (holes are nil). `compact` asks YAML for the flow style.
    Array {
        /// The table (or the result of its `__serialize`).
        table: Table,
        /// The array length: the largest key, or `#t` for a hint.
        len: usize,
        /// YAML flow style (`__serialize = 'seq'`).
        compact: bool,
    },
    /// Every pair of `table`; `size` is their count.
    Map {
        /// The table (or the result of its `__serialize`).
        table: Table,
        /// The number of pairs.
        size: usize,
        /// YAML flow style (`__serialize = 'map'`).
        compact: bool,
    },
}

/// The kinds `classify` of `HELPERS_LUA` reports for a cdata value.
mod cdata_kind {
    /// A NULL `void *`.
    pub const NULL: i64 = 1;
    /// `bool`.
    pub const BOOL: i64 = 2;
    /// An integer of at most 32 bits, as a number.
    pub const SMALL_INT: i64 = 3;
    /// `float`.
    pub const FLOAT: i64 = 4;
    /// `double`.
    pub const DOUBLE: i64 = 5;
    /// `int64_t`, as high and low 32-bit halves.
    pub const INT64: i64 = 6;
    /// `uint64_t`, as high and low 32-bit halves.
    pub const UINT64: i64 = 7;
}

/// One step of classification: a final field, or a replacement value to classify again
/// (the result of `__serialize` or of `tostring`).
enum Step {
    /// The value classified.
    Done(Field),
    /// Classify this value instead.
    Replace(Value),
}

/// Everything one encode or decode call needs: the Lua state, the options of the call and
/// the per-state helpers.
pub struct Context<'lua> {
    /// The Lua state.
    pub lua: &'lua Lua,
    /// The options of this call.
    pub cfg: SerializerCfg,
    /// The per-state Lua helpers.
    helpers: Rc<Helpers>,
}

impl<'lua> Context<'lua> {
    /// A context for one call with options `cfg`.
    pub fn new(lua: &'lua Lua, cfg: SerializerCfg) -> mlua::Result<Self> {
        Ok(Context {
            lua,
            cfg,
            helpers: helpers(lua)?,
        })
    }

    /// The shared NULL.
    pub fn null(&self) -> Value {
        self.helpers.null.clone()
    }

    /// Marks a decoded array with `array_mt` when `decode_save_metatables` is on.
    pub fn mark_array(&self, table: &Table) -> mlua::Result<()> {
        if self.cfg.decode_save_metatables {
            table.set_metatable(Some(self.helpers.array_mt.clone()))?;
        }
        Ok(())
    }

    /// Marks a decoded map with `map_mt` when `decode_save_metatables` is on.
    pub fn mark_map(&self, table: &Table) -> mlua::Result<()> {
        if self.cfg.decode_save_metatables {
            table.set_metatable(Some(self.helpers.map_mt.clone()))?;
        }
        Ok(())
    }

    /// A decoded signed integer: a number when it is small enough, else `int64_t` cdata.
    pub fn int_value(&self, value: i64) -> mlua::Result<Value> {
        if value.unsigned_abs() <= NUMBER_INT_MAX {
            return Ok(Value::Number(value as f64));
        }
        let high = (value >> 32) as f64;
        let low = (value as u64 & 0xffff_ffff) as f64;
        self.helpers.make_int64.call((high, low))
    }

    /// A decoded unsigned integer: a number when it is small enough, else `uint64_t` cdata.
    pub fn uint_value(&self, value: u64) -> mlua::Result<Value> {
        if value <= NUMBER_INT_MAX {
            return Ok(Value::Number(value as f64));
        }
        let high = (value >> 32) as f64;
        let low = (value & 0xffff_ffff) as f64;
        self.helpers.make_uint64.call((high, low))
    }

    /// A decoded double, refused when it is NaN or infinite and `decode_invalid_numbers` is
    /// off (Tarantool's `luaL_checkfinite`).
    pub fn double_value(&self, value: f64) -> mlua::Result<Value> {
        if !self.cfg.decode_invalid_numbers && !value.is_finite() {
            return Err(error("number must not be NaN or Inf"));
        }
        Ok(Value::Number(value))
    }

    /// Classifies `value` as Tarantool's `luaL_tofield` + `luaL_convertfield` do.
    pub fn field(&self, value: Value) -> mlua::Result<Field> {
        let mut value = value;
        for _ in 0..SERIALIZE_CHAIN_MAX {
            match self.step(value)? {
                Step::Done(field) => return Ok(field),
                Step::Replace(replacement) => value = replacement,
            }
        }
        Err(error(
            "__serialize returned values with __serialize too many times",
        ))
    }

    /// One classification step (`luaL_tofield`).
    fn step(&self, value: Value) -> mlua::Result<Step> {
        Ok(Step::Done(match value {
            Value::Nil => Field::Nil,
            Value::Boolean(flag) => Field::Bool(flag),
            Value::Integer(integer) if integer >= 0 => Field::UInt(integer as u64),
            Value::Integer(integer) => Field::Int(integer),
            Value::Number(number) => self.number_field(number)?,
            Value::String(string) => Field::Str(string),
            Value::Table(table) => return self.table_step(table),
            Value::LightUserData(pointer) if pointer.0.is_null() => Field::Nil,
            other => return self.convert_step(other),
        }))
    }

    /// A Lua number: whole values in the 64-bit ranges are integers, the rest doubles.
    fn number_field(&self, number: f64) -> mlua::Result<Field> {
        const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;
        if number.is_finite() && number.fract() != 0.0 {
            Ok(Field::Double(number))
        } else if (0.0..2.0 * TWO_POW_63).contains(&number) {
            Ok(Field::UInt(number as u64))
        } else if (-TWO_POW_63..TWO_POW_63).contains(&number) {
            Ok(Field::Int(number as i64))
        } else {
            self.checked_double(number)
        }
    }

    /// Tarantool's `CHECK_NUMBER`: NaN and ±inf pass only with `encode_invalid_numbers`.
    fn checked_double(&self, number: f64) -> mlua::Result<Field> {
        if number.is_finite() || self.cfg.encode_invalid_numbers {
            Ok(Field::Double(number))
        } else if self.cfg.encode_invalid_as_nil {
            Ok(Field::Nil)
        } else {
            Err(error("number must not be NaN or Inf"))
        }
    }

    /// A table: its `__serialize` first, then its keys.
    fn table_step(&self, table: Table) -> mlua::Result<Step> {
        if self.cfg.encode_load_metatables
            && let Some(metatable) = table.metatable()
        {
            let hint: Value = metatable.raw_get("__serialize")?;
            match hint {
                Value::Nil => {}
                Value::Function(function) => {
                    return Ok(Step::Replace(
                        self.call_serialize(function, Value::Table(table))?,
                    ));
                }
                Value::String(hint) => {
                    return self.hinted_table(table, &hint.as_bytes()).map(Step::Done);
                }
                _ => return Err(error("invalid __serialize value")),
            }
        }
        self.inspect_table(table).map(Step::Done)
    }

    /// A table with a string `__serialize`: 'seq'/'sequence'/'array' or 'map'/'mapping'.
    fn hinted_table(&self, table: Table, hint: &[u8]) -> mlua::Result<Field> {
        let compact = self.cfg.has_compact && hint.len() == 3;
        match hint {
            b"seq" | b"sequence" | b"array" => {
                let len = table.raw_len();
                Ok(Field::Array {
                    table,
                    len,
                    compact,
                })
            }
            b"map" | b"mapping" => {
                let size = count_pairs(&table)?;
                Ok(Field::Map {
                    table,
                    size,
                    compact,
                })
            }
            _ => Err(error("invalid __serialize value")),
        }
    }

    /// A table without a hint: an array when every key is a positive integer and it is not
    /// excessively sparse, else a map. An empty table is an empty array.
    fn inspect_table(&self, table: Table) -> mlua::Result<Field> {
        let mut size: u64 = 0;
        let mut max: f64 = 0.0;
        let mut is_map = false;
        table.for_each::<Value, Value>(|key, _| {
            size += 1;
            if is_map {
                return Ok(());
            }
            let key = match key {
                Value::Integer(integer) => integer as f64,
                Value::Number(number) => number,
                _ => {
                    is_map = true;
                    return Ok(());
                }
            };
            if key < 1.0 || key.floor() != key {
                is_map = true;
            } else if key > max {
                max = key;
            }
            Ok(())
        })?;
        let size_usize = size as usize;
        if is_map {
            return Ok(Field::Map {
                table,
                size: size_usize,
                compact: false,
            });
        }
        if self.is_excessively_sparse(size, max) {
            if !self.cfg.encode_sparse_convert {
                return Err(error("excessively sparse array"));
            }
            return Ok(Field::Map {
                table,
                size: size_usize,
                compact: false,
            });
        }
        Ok(Field::Array {
            table,
            len: max as usize,
            compact: false,
        })
    }

    /// Tarantool's sparse check. A length past `u32::MAX` is always too sparse: Tarantool
    /// keeps it in 32 bits, and we refuse to walk billions of holes.
    fn is_excessively_sparse(&self, size: u64, max: f64) -> bool {
        if max > u32::MAX as f64 {
            return true;
        }
        let ratio = self.cfg.encode_sparse_ratio;
        ratio > 0
            && max > (size as f64) * (ratio as f64)
            && max > self.cfg.encode_sparse_safe as f64
    }

    /// Calls a `__serialize` function through `pcall`, so its error reaches the caller with
    /// its own text.
    fn call_serialize(&self, function: Function, value: Value) -> mlua::Result<Value> {
        let results: MultiValue = self.helpers.pcall.call((function, value))?;
        let mut results = results.into_iter();
        let ok = matches!(results.next(), Some(Value::Boolean(true)));
        let result = results.next().unwrap_or(Value::Nil);
        if ok {
            return Ok(result);
        }
        Err(error(self.tostring(result)?))
    }

    /// `tostring(value)` as Rust text.
    fn tostring(&self, value: Value) -> mlua::Result<String> {
        let text: mlua::LuaString = self.helpers.tostring.call(value)?;
        Ok(String::from_utf8_lossy(&text.as_bytes()).into_owned())
    }

    /// Values without a native mapping (`luaL_convertfield`): cdata scalars, then
    /// `__serialize` of userdata and cdata, then `tostring` or nil as the options say.
    fn convert_step(&self, value: Value) -> mlua::Result<Step> {
        if let Value::Other(_) = value {
            if value.to_pointer() == self.helpers.null.to_pointer() {
                return Ok(Step::Done(Field::Nil));
            }
            if let Some(field) = self.cdata_field(&value)? {
                return Ok(Step::Done(field));
            }
        }
        if self.cfg.encode_load_metatables && matches!(value, Value::Other(_) | Value::UserData(_))
        {
            let serialize: Value = self.helpers.get_serialize.call(value.clone())?;
            match serialize {
                Value::Nil => {}
                Value::Function(function) => {
                    return Ok(Step::Replace(self.call_serialize(function, value)?));
                }
                _ => return Err(error("invalid __serialize value")),
            }
        }
        if self.cfg.encode_use_tostring {
            let text: mlua::LuaString = self.helpers.tostring.call(value)?;
            return Ok(Step::Done(Field::Str(text)));
        }
        if self.cfg.encode_invalid_as_nil {
            return Ok(Step::Done(Field::Nil));
        }
        Err(error(format!(
            "unsupported Lua type '{}'",
            lua_type_name(&value)
        )))
    }

    /// The primitive cdata types Tarantool understands: NULL pointers, bool, integers of
    /// every width, float and double. `None` for anything else.
    fn cdata_field(&self, value: &Value) -> mlua::Result<Option<Field>> {
        let (kind, first, second): (i64, Value, Value) =
            self.helpers.classify.call(value.clone())?;
        let number = |value: &Value| match value {
            Value::Integer(integer) => *integer as f64,
            Value::Number(number) => *number,
            _ => 0.0,
        };
        Ok(Some(match kind {
            cdata_kind::NULL => Field::Nil,
            cdata_kind::BOOL => Field::Bool(matches!(first, Value::Boolean(true))),
            cdata_kind::SMALL_INT => self.number_field(number(&first))?,
            cdata_kind::FLOAT => match self.checked_double(number(&first))? {
                Field::Double(double) => Field::Float(double as f32),
                other => other,
            },
            cdata_kind::DOUBLE => self.checked_double(number(&first))?,
            cdata_kind::INT64 | cdata_kind::UINT64 => {
                let bits = ((number(&first) as u64) << 32) | (number(&second) as u64 & 0xffff_ffff);
                if kind == cdata_kind::INT64 && (bits as i64) < 0 {
                    Field::Int(bits as i64)
                } else {
                    Field::UInt(bits)
                }
            }
            _ => return Ok(None),
        }))
    }
}

/// `rawset` of a decoded pair. A NaN key gets Lua's own message here, before mlua would
/// report the same error with a traceback appended.
pub fn set_decoded(table: &Table, key: Value, value: Value) -> mlua::Result<()> {
    if matches!(key, Value::Number(number) if number.is_nan()) {
        return Err(error("table index is NaN"));
    }
    table.raw_set(key, value)
}

/// The number of pairs in `table` (`luaL_maplen`).
fn count_pairs(table: &Table) -> mlua::Result<usize> {
    let mut count = 0;
    table.for_each::<Value, Value>(|_, _| {
        count += 1;
        Ok(())
    })?;
    Ok(count)
}

/// Appends `value` as C's `printf("%.{precision}g")` does: the shorter of fixed and
/// exponent notation by C's rule (exponent form when the exponent is below -4 or at least the
/// precision), trailing zeros dropped, at least two exponent digits, `inf`/`-inf`, and NaN as
/// `nan` or `-nan` by its sign bit (glibc prints 0/0 on x86 as `-nan`).
pub fn write_g(out: &mut Vec<u8>, value: f64, precision: usize) {
    if value.is_nan() {
        out.extend_from_slice(if value.is_sign_negative() {
            b"-nan"
        } else {
            b"nan"
        });
        return;
    }
    if value.is_sign_negative() {
        out.push(b'-');
    }
    let magnitude = value.abs();
    if magnitude.is_infinite() {
        out.extend_from_slice(b"inf");
        return;
    }
    let precision = precision.clamp(1, 64);
    // Rust rounds the exact binary value half-to-even, as glibc's printf does.
    let mut buffer = [0u8; 96];
    let mut cursor = std::io::Cursor::new(&mut buffer[..]);
    let _ = write!(cursor, "{:.*e}", precision - 1, magnitude);
    let length = cursor.position() as usize;
    let text = &buffer[..length];
    let e_at = text.iter().position(|&byte| byte == b'e').unwrap_or(length);
    let exponent = parse_exponent(&text[(e_at + 1).min(length)..]);
    let mut digits = [0u8; 80];
    let mut digit_count = 0;
    for &byte in &text[..e_at] {
        if byte.is_ascii_digit() && digit_count < digits.len() {
            digits[digit_count] = byte;
            digit_count += 1;
        }
    }
    let digits = &digits[..digit_count];
    if exponent < -4 || exponent >= precision as i32 {
        write_exponent_form(out, digits, exponent);
    } else {
        write_fixed_form(out, digits, exponent);
    }
}

/// The exponent of Rust's `{:e}` output.
fn parse_exponent(text: &[u8]) -> i32 {
    let (negative, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    let magnitude = digits.iter().fold(0i32, |acc, &digit| {
        acc.saturating_mul(10)
            .saturating_add(i32::from(digit - b'0'))
    });
    if negative { -magnitude } else { magnitude }
}

/// `digits` without its trailing zeros.
fn trim_zeros(digits: &[u8]) -> &[u8] {
    let end = digits
        .iter()
        .rposition(|&digit| digit != b'0')
        .map_or(0, |at| at + 1);
    &digits[..end]
}

/// `d.ddde±XX`.
fn write_exponent_form(out: &mut Vec<u8>, digits: &[u8], exponent: i32) {
    out.push(digits.first().copied().unwrap_or(b'0'));
    let fraction = trim_zeros(digits.get(1..).unwrap_or_default());
    if !fraction.is_empty() {
        out.push(b'.');
        out.extend_from_slice(fraction);
    }
    out.push(b'e');
    out.push(if exponent < 0 { b'-' } else { b'+' });
    let magnitude = exponent.unsigned_abs();
    if magnitude < 10 {
        out.push(b'0');
    }
    let _ = write!(out, "{magnitude}");
}

/// `ddd.ddd` or `0.000ddd`.
fn write_fixed_form(out: &mut Vec<u8>, digits: &[u8], exponent: i32) {
    if exponent >= 0 {
        let integer_len = (exponent as usize + 1).min(digits.len());
        out.extend_from_slice(&digits[..integer_len]);
        let fraction = trim_zeros(&digits[integer_len..]);
        if !fraction.is_empty() {
            out.push(b'.');
            out.extend_from_slice(fraction);
        }
        return;
    }
    let fraction = trim_zeros(digits);
    if fraction.is_empty() {
        out.push(b'0');
        return;
    }
    out.extend_from_slice(b"0.");
    for _ in 0..(-exponent - 1) {
        out.push(b'0');
    }
    out.extend_from_slice(fraction);
}

/// Whether Lua (`lua_isnumber`, LuaJIT's `lj_strscan` in `tonumber` mode) would convert this
/// string to a number: optional surrounding whitespace and sign; decimal digits with an
/// optional point and exponent; `0x` hex with an optional point and binary exponent; `0b`
/// binary; `inf`, `infinity` or `nan` in any case. YAML quotes such strings so that they read
/// back as strings.
pub fn lua_string_is_number(text: &[u8]) -> bool {
    let mut at = 0;
    if !byte_at(text, 0).is_ascii_digit() {
        at = skip_spaces(text, at);
        if matches!(byte_at(text, at), b'+' | b'-') {
            at += 1;
        }
        if byte_at(text, at) >= b'A' {
            return scan_inf_nan(text, at);
        }
    }
    scan_number(text, at)
}

/// The byte at `at`, or NUL past the end (Lua strings end with a NUL, and LuaJIT's scanner
/// relies on it).
fn byte_at(text: &[u8], at: usize) -> u8 {
    text.get(at).copied().unwrap_or(0)
}

/// The position after the spaces at `at`.
fn skip_spaces(text: &[u8], mut at: usize) -> usize {
    while matches!(byte_at(text, at), b'\t'..=b'\r' | b' ') {
        at += 1;
    }
    at
}

/// Whether `text[at..]` is `inf`, `infinity` or `nan` (any case) and trailing spaces.
fn scan_inf_nan(text: &[u8], mut at: usize) -> bool {
    let matches_word = |at: usize, word: &[u8]| {
        word.iter()
            .enumerate()
            .all(|(i, &letter)| byte_at(text, at + i) | 0x20 == letter)
    };
    if matches_word(at, b"inf") {
        at += 3;
        if matches_word(at, b"inity") {
            at += 5;
        }
    } else if matches_word(at, b"nan") {
        at += 3;
    }
    skip_spaces(text, at) == text.len()
}

/// The numeric part: base prefix, digits with at most one point, exponent, trailing spaces.
fn scan_number(text: &[u8], mut at: usize) -> bool {
    let mut base = 10;
    let mut has_digit = false;
    let mut has_point = false;
    if byte_at(text, at) <= b'0' {
        if byte_at(text, at) == b'0' {
            match byte_at(text, at + 1) | 0x20 {
                b'x' => (base, at) = (16, at + 2),
                b'b' => (base, at) = (2, at + 2),
                _ => {}
            }
        }
        loop {
            match byte_at(text, at) {
                b'0' => has_digit = true,
                b'.' if !has_point => has_point = true,
                b'.' => return false,
                _ => break,
            }
            at += 1;
        }
    }
    let mut digits = 0;
    let mut binary_ok = true;
    loop {
        let byte = byte_at(text, at);
        let is_digit = if base == 16 {
            byte.is_ascii_hexdigit()
        } else {
            byte.is_ascii_digit()
        };
        if is_digit {
            digits += 1;
            binary_ok &= byte <= b'1';
        } else if byte == b'.' && !has_point {
            has_point = true;
        } else if byte == b'.' {
            return false;
        } else {
            break;
        }
        at += 1;
    }
    if !has_digit && digits == 0 || base == 2 && (has_point || !binary_ok || digits > 64) {
        return false;
    }
    let exponent_letter = if base == 16 { b'p' } else { b'e' };
    if base != 2 && byte_at(text, at) | 0x20 == exponent_letter {
        match scan_exponent(text, at + 1) {
            Some(next) => at = next,
            None => return false,
        }
    }
    skip_spaces(text, at) == text.len()
}

/// `[sign] digits` of an exponent, below LuaJIT's limit of 2^20; the position after it.
fn scan_exponent(text: &[u8], mut at: usize) -> Option<usize> {
    if matches!(byte_at(text, at), b'+' | b'-') {
        at += 1;
    }
    if !byte_at(text, at).is_ascii_digit() {
        return None;
    }
    let mut value: u32 = 0;
    while byte_at(text, at).is_ascii_digit() {
        value = value * 10 + u32::from(byte_at(text, at) - b'0');
        if value >= 1 << 20 {
            return None;
        }
        at += 1;
    }
    Some(at)
}

/// A Lua number as `tostring` and `lua_tolstring` write it (`%.14g`).
pub fn number_to_string(number: f64) -> Vec<u8> {
    let mut text = Vec::new();
    write_g(&mut text, number, 14);
    text
}

/// C's number parsers as lyaml and lua-cjson use them (`strtoll`, `strtoull`, `strtod`): each returns the
/// value and how many bytes it consumed (0 when nothing converts).
pub mod c_number {
    /// C's `isspace`.
    fn is_space(byte: u8) -> bool {
        matches!(byte, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
    }

    /// Leading spaces, then an optional sign: (negative, position after them).
    fn sign(text: &[u8]) -> (bool, usize) {
        let mut at = 0;
        while at < text.len() && is_space(text[at]) {
            at += 1;
        }
        match text.get(at) {
            Some(b'-') => (true, at + 1),
            Some(b'+') => (false, at + 1),
            _ => (false, at),
        }
    }

    /// Decimal digits from `at`: the magnitude (saturated), the end, whether it overflowed.
    fn digits(text: &[u8], mut at: usize) -> (u64, usize, bool) {
        let mut value: u64 = 0;
        let mut overflow = false;
        while at < text.len() && text[at].is_ascii_digit() {
            let digit = u64::from(text[at] - b'0');
            match value
                .checked_mul(10)
                .and_then(|value| value.checked_add(digit))
            {
                Some(next) => value = next,
                None => overflow = true,
            }
            at += 1;
        }
        (value, at, overflow)
    }

    /// `strtoll(text, &end, 10)`: saturates at the `i64` bounds.
    pub fn strtoll(text: &[u8]) -> (i64, usize) {
        let (negative, start) = sign(text);
        let (magnitude, end, overflow) = digits(text, start);
        if end == start {
            return (0, 0);
        }
        let value = if negative {
            if overflow || magnitude > i64::MIN.unsigned_abs() {
                i64::MIN
            } else {
                0i64.wrapping_sub_unsigned(magnitude)
            }
        } else if overflow || magnitude > i64::MAX as u64 {
            i64::MAX
        } else {
            magnitude as i64
        };
        (value, end)
    }

    /// `strtoull(text, &end, 10)`: saturates at `u64::MAX`; a minus sign negates modulo 2^64.
    pub fn strtoull(text: &[u8]) -> (u64, usize) {
        let (negative, start) = sign(text);
        let (magnitude, end, overflow) = digits(text, start);
        if end == start {
            return (0, 0);
        }
        if overflow {
            return (u64::MAX, end);
        }
        (
            if negative {
                magnitude.wrapping_neg()
            } else {
                magnitude
            },
            end,
        )
    }

    /// `strtod(text, &end)`: decimal and hex forms, `inf`, `infinity`, `nan`, `nan(...)`.
    pub fn strtod(text: &[u8]) -> (f64, usize) {
        let (negative, start) = sign(text);
        let rest = &text[start..];
        let lower = |at: usize| rest.get(at).map_or(0, |byte| byte | 0x20);
        let (magnitude, used) = if rest.len() >= 3 && rest[..3].eq_ignore_ascii_case(b"inf") {
            let long = rest.len() >= 8 && rest[..8].eq_ignore_ascii_case(b"infinity");
            (f64::INFINITY, if long { 8 } else { 3 })
        } else if rest.len() >= 3 && rest[..3].eq_ignore_ascii_case(b"nan") {
            (f64::NAN, 3 + nan_payload(&rest[3..]))
        } else if rest.first() == Some(&b'0') && lower(1) == b'x' {
            match hex_float(&rest[2..]) {
                Some((value, used)) => (value, 2 + used),
                None => (0.0, 1),
            }
        } else {
            match decimal_float(rest) {
                Some((value, used)) => (value, used),
                None => return (0.0, 0),
            }
        };
        (if negative { -magnitude } else { magnitude }, start + used)
    }

    /// The length of a `(chars)` payload after "nan", if well formed.
    fn nan_payload(text: &[u8]) -> usize {
        if text.first() != Some(&b'(') {
            return 0;
        }
        let body = text[1..]
            .iter()
            .take_while(|byte| byte.is_ascii_alphanumeric() || **byte == b'_')
            .count();
        if text.get(1 + body) == Some(&b')') {
            body + 2
        } else {
            0
        }
    }

    /// `digits [. digits] [e [sign] digits]` with at least one mantissa digit.
    fn decimal_float(text: &[u8]) -> Option<(f64, usize)> {
        let mut at = text.iter().take_while(|byte| byte.is_ascii_digit()).count();
        let mut mantissa_digits = at;
        if text.get(at) == Some(&b'.') {
            let fraction = text[at + 1..]
                .iter()
                .take_while(|byte| byte.is_ascii_digit())
                .count();
            mantissa_digits += fraction;
            at += 1 + fraction;
        }
        if mantissa_digits == 0 {
            return None;
        }
        if matches!(text.get(at), Some(b'e' | b'E')) {
            let mut exponent = at + 1;
            if matches!(text.get(exponent), Some(b'+' | b'-')) {
                exponent += 1;
            }
            let exponent_digits = text[exponent.min(text.len())..]
                .iter()
                .take_while(|byte| byte.is_ascii_digit())
                .count();
            if exponent_digits > 0 {
                at = exponent + exponent_digits;
            }
        }
        let literal = std::str::from_utf8(&text[..at]).ok()?;
        literal.parse::<f64>().ok().map(|value| (value, at))
    }

    /// Hex digits with an optional point and `p` exponent, after "0x".
    fn hex_float(text: &[u8]) -> Option<(f64, usize)> {
        let mut value = 0.0f64;
        let mut at = 0;
        let mut mantissa_digits = 0;
        let mut scale = 0i32;
        let mut seen_point = false;
        while at < text.len() {
            let byte = text[at];
            if let Some(digit) = (byte as char).to_digit(16) {
                value = value * 16.0 + f64::from(digit);
                mantissa_digits += 1;
                if seen_point {
                    scale -= 4;
                }
            } else if byte == b'.' && !seen_point {
                seen_point = true;
            } else {
                break;
            }
            at += 1;
        }
        if mantissa_digits == 0 {
            return None;
        }
        if matches!(text.get(at), Some(b'p' | b'P')) {
            let (exponent, used) = strtoll(&text[at + 1..]);
            let signed_start = !matches!(
                text.get(at + 1),
                Some(b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
            );
            if used > 0 && signed_start {
                scale = scale.saturating_add(exponent.clamp(-100_000, 100_000) as i32);
                at += 1 + used;
            }
        }
        Some((value * 2f64.powi(scale), at))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A Lua state as the server creates it (with `ffi` and `jit`).
    pub fn new_lua() -> Lua {
        unsafe { Lua::unsafe_new_with(mlua::StdLib::ALL, mlua::LuaOptions::default()) }
    }

    fn g(value: f64, precision: usize) -> String {
        let mut out = Vec::new();
        write_g(&mut out, value, precision);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn g_format_matches_c() {
        let cases: &[(f64, &str)] = &[
            (1.0 / 3.0, "0.33333333333333"),
            (1e100, "1e+100"),
            (0.1, "0.1"),
            (1.5, "1.5"),
            (-1.5e-7, "-1.5e-07"),
            (1e-5, "1e-05"),
            (1e-4, "0.0001"),
            (0.000123456789012345, "0.00012345678901234"),
            (123.456, "123.456"),
            (1e15, "1e+15"),
            (1e14, "1e+14"),
            (99999999999999.0, "99999999999999"),
            (12345678901234567.0, "1.2345678901235e+16"),
            (18446744073709551616.0, "1.844674407371e+19"),
            (-9223372036854777856.0, "-9.2233720368548e+18"),
            (5e-324, "4.9406564584125e-324"),
            (1.7976931348623157e308, "1.7976931348623e+308"),
            (0.0, "0"),
            (-0.0, "-0"),
            (100.0, "100"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (0.3, "0.3"),
            (0.1 + 0.2, "0.3"),
            (2.5, "2.5"),
            (1e21, "1e+21"),
        ];
        for &(value, expected) in cases {
            assert_eq!(g(value, 14), expected, "{value:e}");
        }
        assert_eq!(g(f64::NAN.copysign(-1.0), 14), "-nan");
        assert_eq!(g(f64::NAN.copysign(1.0), 14), "nan");
        assert_eq!(g(1.0 / 3.0, 3), "0.333");
        assert_eq!(g(2.5, 1), "2");
        assert_eq!(g(3.5, 1), "4");
        assert_eq!(g(0.125, 2), "0.12");
        assert_eq!(g(123456.0, 6), "123456");
        assert_eq!(g(1234567.0, 6), "1.23457e+06");
        assert_eq!(g(1.0 / 3.0, 0), "0.3");
        assert_eq!(g(0.1, 20), "0.10000000000000000555");
    }

    #[test]
    fn number_strings_match_luajit() {
        let lua = new_lua();
        let corpus = [
            "inf",
            "nan",
            "-inf",
            "Infinity",
            "INF",
            "NaN",
            "-nan",
            "+inf",
            "infinit",
            "info",
            "0x10",
            "0X1F",
            "0x",
            "0x.8",
            "0x1.8",
            "0x1p4",
            "0x1P-1",
            "0x1p",
            "0xg",
            " 5 ",
            "5 x",
            "1e",
            "1e+",
            "1e+5",
            "1E5",
            ".5",
            "5.",
            ".",
            "-.5",
            "5.e3",
            ".e3",
            "1e400",
            "",
            " ",
            "1LL",
            "1ULL",
            "1i",
            "+5",
            "- 5",
            "--5",
            "1_0",
            "\t5\n",
            "5\0",
            "0b101",
            "0o17",
            "017",
            "123",
            "1.5",
            "-0",
            "e5",
            "abc",
            "12345678901234567890",
            "1.2.3",
            "0x1.p1",
            "1e-5",
            "\u{b}7\u{c}",
            "∞",
            "0x1e",
            "1e5.5",
            "0b",
            "0b2",
            "0b1.1",
            "1e1048576",
            "1e1048575",
            "0x1p5L",
            "5u",
            "5 \0",
            " inf ",
            "-infinity",
            "nanx",
            ".0",
            "0.",
            "00",
            "0x0",
            "-0b11",
        ];
        let tonumber: Function = lua.globals().get("tonumber").unwrap();
        for text in corpus {
            let lua_text = lua.create_string(text).unwrap();
            let converted: Value = tonumber.call(lua_text).unwrap();
            assert_eq!(
                lua_string_is_number(text.as_bytes()),
                !converted.is_nil(),
                "{text:?}"
            );
        }
    }

    #[test]
    fn null_is_one_cdata_per_state() {
        let lua = new_lua();
        let first = null(&lua).unwrap();
        let second = null(&lua).unwrap();
        assert!(matches!(first, Value::Other(_)));
        assert_eq!(first.to_pointer(), second.to_pointer());
        let globals = lua.globals();
        globals.set("NULL", first).unwrap();
        let checks: (bool, String) = lua.load("return NULL == nil, type(NULL)").eval().unwrap();
        assert_eq!(checks, (true, "cdata".to_string()));
    }

    fn classify(lua: &Lua, code: &str) -> Field {
        classify_with(lua, SerializerCfg::default(), code).unwrap()
    }

    fn classify_with(lua: &Lua, cfg: SerializerCfg, code: &str) -> mlua::Result<Field> {
        let value: Value = lua.load(code).eval()?;
        Context::new(lua, cfg)?.field(value)
    }

    #[test]
    fn numbers_classify_like_tarantool() {
        let lua = new_lua();
        assert!(matches!(classify(&lua, "return 5"), Field::UInt(5)));
        assert!(matches!(classify(&lua, "return -5"), Field::Int(-5)));
        assert!(matches!(classify(&lua, "return -0.0"), Field::UInt(0)));
        assert!(matches!(classify(&lua, "return 1.5"), Field::Double(d) if d == 1.5));
        assert!(matches!(
            classify(&lua, "return 2^63"),
            Field::UInt(9223372036854775808)
        ));
        assert!(matches!(classify(&lua, "return 2^64"), Field::Double(_)));
        assert!(matches!(
            classify(&lua, "return -2^63"),
            Field::Int(i64::MIN)
        ));
        assert!(matches!(classify(&lua, "return 0/0"), Field::Double(d) if d.is_nan()));
        assert!(matches!(classify(&lua, "return 1/0"), Field::Double(d) if d.is_infinite()));
        let strict = SerializerCfg {
            encode_invalid_numbers: false,
            ..SerializerCfg::default()
        };
        let err = classify_with(&lua, strict, "return 1/0").unwrap_err();
        assert_eq!(error_message(&err), "number must not be NaN or Inf");
        let as_nil = SerializerCfg {
            encode_invalid_as_nil: true,
            ..strict
        };
        assert!(matches!(
            classify_with(&lua, as_nil, "return 0/0").unwrap(),
            Field::Nil
        ));
    }

    #[test]
    fn cdata_classifies_with_full_precision() {
        let lua = new_lua();
        type Check = fn(&Field) -> bool;
        let cases: &[(&str, Check)] = &[
            ("return 42ULL", |f| matches!(f, Field::UInt(42))),
            ("return -5LL", |f| matches!(f, Field::Int(-5))),
            ("return 5LL", |f| matches!(f, Field::UInt(5))),
            ("return 18446744073709551615ULL", |f| {
                matches!(f, Field::UInt(u64::MAX))
            }),
            ("return -9223372036854775807LL - 1", |f| {
                matches!(f, Field::Int(i64::MIN))
            }),
            ("return 9223372036854775807LL", |f| {
                matches!(f, Field::UInt(9223372036854775807))
            }),
            ("return require('ffi').cast('void *', 0)", |f| {
                matches!(f, Field::Nil)
            }),
            ("return require('ffi').new('bool', true)", |f| {
                matches!(f, Field::Bool(true))
            }),
            ("return require('ffi').new('int', -7)", |f| {
                matches!(f, Field::Int(-7))
            }),
            ("return require('ffi').new('uint8_t', 200)", |f| {
                matches!(f, Field::UInt(200))
            }),
            (
                "return require('ffi').new('float', 1.5)",
                |f| matches!(f, Field::Float(v) if *v == 1.5),
            ),
            (
                "return require('ffi').new('double', 2.5)",
                |f| matches!(f, Field::Double(v) if *v == 2.5),
            ),
            (
                "return require('ffi').new('double', 3)",
                |f| matches!(f, Field::Double(v) if *v == 3.0),
            ),
        ];
        for (code, check) in cases {
            let field = classify(&lua, code);
            assert!(check(&field), "{code}: {field:?}");
        }
        for code in [
            "return require('ffi').cast('void *', 1)",
            "return require('ffi').new('int[2]')",
        ] {
            let err = classify_with(&lua, SerializerCfg::default(), code).unwrap_err();
            assert_eq!(error_message(&err), "unsupported Lua type 'cdata'");
        }
    }

    #[test]
    fn tables_follow_array_rules() {
        let lua = new_lua();
        assert!(matches!(
            classify(&lua, "return {}"),
            Field::Array { len: 0, .. }
        ));
        assert!(matches!(
            classify(&lua, "return {1, 2, 3}"),
            Field::Array { len: 3, .. }
        ));
        assert!(matches!(
            classify(&lua, "return {[1] = 1, [3] = 3}"),
            Field::Array { len: 3, .. }
        ));
        assert!(matches!(
            classify(&lua, "return {[11] = 1}"),
            Field::Map { size: 1, .. }
        ));
        assert!(matches!(
            classify(&lua, "return {[10] = 1}"),
            Field::Array { len: 10, .. }
        ));
        assert!(matches!(
            classify(&lua, "return {[1] = 1, [30] = 3}"),
            Field::Map { size: 2, .. }
        ));
        assert!(matches!(
            classify(&lua, "return {1, 2, a = 3}"),
            Field::Map { size: 3, .. }
        ));
        assert!(matches!(
            classify(&lua, "return {[0] = 1}"),
            Field::Map { .. }
        ));
        assert!(matches!(
            classify(&lua, "return {[1.5] = 1}"),
            Field::Map { .. }
        ));
        assert!(matches!(
            classify(&lua, "return {[2^40] = 1}"),
            Field::Map { .. }
        ));
        let strict = SerializerCfg {
            encode_sparse_convert: false,
            ..SerializerCfg::default()
        };
        let err = classify_with(&lua, strict, "return {[1] = 1, [30] = 3}").unwrap_err();
        assert_eq!(error_message(&err), "excessively sparse array");
        let no_ratio = SerializerCfg {
            encode_sparse_ratio: 0,
            ..SerializerCfg::default()
        };
        let field = classify_with(&lua, no_ratio, "return {[1] = 1, [30] = 3}").unwrap();
        assert!(matches!(field, Field::Array { len: 30, .. }));
    }

    #[test]
    fn serialize_hints_and_functions() {
        let lua = new_lua();
        let yaml = SerializerCfg::with_compact(true);
        let field = classify_with(
            &lua,
            yaml,
            "return setmetatable({1, 2}, {__serialize = 'seq'})",
        )
        .unwrap();
        assert!(matches!(
            field,
            Field::Array {
                len: 2,
                compact: true,
                ..
            }
        ));
        let field = classify_with(
            &lua,
            yaml,
            "return setmetatable({1}, {__serialize = 'sequence'})",
        )
        .unwrap();
        assert!(matches!(field, Field::Array { compact: false, .. }));
        let field = classify_with(
            &lua,
            yaml,
            "return setmetatable({1, 2}, {__serialize = 'map'})",
        )
        .unwrap();
        assert!(matches!(
            field,
            Field::Map {
                size: 2,
                compact: true,
                ..
            }
        ));
        let field = classify(&lua, "return setmetatable({1, 2}, {__serialize = 'map'})");
        assert!(matches!(field, Field::Map { compact: false, .. }));
        let field = classify(
            &lua,
            "return setmetatable({a = 1}, {__serialize = 'array'})",
        );
        assert!(matches!(field, Field::Array { len: 0, .. }));
        let field = classify(
            &lua,
            "return setmetatable({}, {__serialize = function() return 'x' end})",
        );
        assert!(matches!(field, Field::Str(s) if s == "x"));
        let field = classify(
            &lua,
            "return setmetatable({}, {__serialize = function() return {1, 2} end})",
        );
        assert!(matches!(field, Field::Array { len: 2, .. }));
        for (code, message) in [
            (
                "return setmetatable({}, {__serialize = 'bogus'})",
                "invalid __serialize value",
            ),
            (
                "return setmetatable({}, {__serialize = 5})",
                "invalid __serialize value",
            ),
            (
                "return setmetatable({}, {__serialize = function() error('boom', 0) end})",
                "boom",
            ),
            (
                "local mt = {} mt.__serialize = function() return setmetatable({}, mt) end \
                 return setmetatable({}, mt)",
                "__serialize returned values with __serialize too many times",
            ),
        ] {
            let err = classify_with(&lua, SerializerCfg::default(), code).unwrap_err();
            assert_eq!(error_message(&err), message, "{code}");
        }
        let off = SerializerCfg {
            encode_load_metatables: false,
            ..SerializerCfg::default()
        };
        let field =
            classify_with(&lua, off, "return setmetatable({1}, {__serialize = 'map'})").unwrap();
        assert!(matches!(field, Field::Array { len: 1, .. }));
    }

    #[test]
    fn unsupported_values_follow_cfg() {
        let lua = new_lua();
        for (code, name) in [
            ("return print", "function"),
            ("return coroutine.create(print)", "thread"),
            ("return io.stdout", "userdata"),
        ] {
            let err = classify_with(&lua, SerializerCfg::default(), code).unwrap_err();
            assert_eq!(
                error_message(&err),
                format!("unsupported Lua type '{name}'")
            );
        }
        let tostring = SerializerCfg {
            encode_use_tostring: true,
            ..SerializerCfg::default()
        };
        let field = classify_with(&lua, tostring, "return print").unwrap();
        assert!(matches!(field, Field::Str(s) if s.to_str().unwrap().starts_with("function: ")));
        let as_nil = SerializerCfg {
            encode_invalid_as_nil: true,
            ..SerializerCfg::default()
        };
        assert!(matches!(
            classify_with(&lua, as_nil, "return print").unwrap(),
            Field::Nil
        ));
    }

    /// A userdata with a `__serialize` method, as tuples will be.
    struct Pair;

    impl mlua::UserData for Pair {
        fn add_methods<M: mlua::UserDataMethods<Self>>(methods: &mut M) {
            methods.add_function("__serialize", |lua, _: mlua::AnyUserData| {
                let table = lua.create_sequence_from([1, 2])?;
                table.set_metatable(Some(map_mt(lua)?))?;
                Ok(table)
            });
        }
    }

    /// A userdata without methods.
    struct Opaque;

    impl mlua::UserData for Opaque {}

    #[test]
    fn userdata_uses_its_serialize_method() {
        let lua = new_lua();
        let context = Context::new(&lua, SerializerCfg::default()).unwrap();
        let pair = Value::UserData(lua.create_userdata(Pair).unwrap());
        assert!(matches!(
            context.field(pair).unwrap(),
            Field::Map { size: 2, .. }
        ));
        let opaque = Value::UserData(lua.create_userdata(Opaque).unwrap());
        let err = context.field(opaque).unwrap_err();
        assert_eq!(error_message(&err), "unsupported Lua type 'userdata'");
    }

    #[test]
    fn decoded_integers_become_numbers_or_cdata() {
        let lua = new_lua();
        let context = Context::new(&lua, SerializerCfg::default()).unwrap();
        assert!(matches!(
            context.int_value(-99_999_999_999_999).unwrap(),
            Value::Number(_)
        ));
        assert!(matches!(
            context.uint_value(NUMBER_INT_MAX).unwrap(),
            Value::Number(_)
        ));
        let globals = lua.globals();
        globals
            .set("a", context.uint_value(u64::MAX).unwrap())
            .unwrap();
        globals
            .set("b", context.int_value(i64::MIN).unwrap())
            .unwrap();
        globals
            .set("c", context.uint_value(NUMBER_INT_MAX + 1).unwrap())
            .unwrap();
        globals
            .set(
                "d",
                context.int_value(-(NUMBER_INT_MAX as i64) - 1).unwrap(),
            )
            .unwrap();
        let texts: (String, String, String, String) = lua
            .load("return tostring(a), tostring(b), tostring(c), tostring(d)")
            .eval()
            .unwrap();
        assert_eq!(
            texts,
            (
                "18446744073709551615ULL".to_string(),
                "-9223372036854775808LL".to_string(),
                "100000000000000ULL".to_string(),
                "-100000000000000LL".to_string(),
            )
        );
    }

    #[test]
    fn cfg_table_reads_and_updates() {
        let lua = new_lua();
        let cfg: SharedCfg = Rc::new(Cell::new(SerializerCfg::default()));
        let module = module_table(&lua, &cfg).unwrap();
        lua.globals().set("m", module).unwrap();
        let before: (i64, bool) = lua
            .load("return m.cfg.encode_max_depth, m.cfg.encode_use_tostring")
            .eval()
            .unwrap();
        assert_eq!(before, (128, false));
        lua.load("m.cfg{encode_max_depth = 5, encode_use_tostring = 1, nosuch = 1}")
            .exec()
            .unwrap();
        assert_eq!(cfg.get().encode_max_depth, 5);
        assert!(cfg.get().encode_use_tostring);
        let after: (i64, i64) = lua
            .load("return m.cfg.encode_max_depth, m.cfg.encode_use_tostring")
            .eval()
            .unwrap();
        assert_eq!(after, (5, 1));
        let message: String = lua
            .load("local ok, e = pcall(m.cfg) return e")
            .eval()
            .unwrap();
        assert_eq!(
            message,
            "bad argument #2 to '?' (table expected, got no value)"
        );
        let same: bool = lua
            .load("return rawequal(m.NULL, m.NULL) and m.array_mt.__serialize == 'seq' and m.map_mt.__serialize == 'map'")
            .eval()
            .unwrap();
        assert!(same);
    }

    #[test]
    fn lua_function_raises_plain_strings() {
        let lua = new_lua();
        let function = lua_function(&lua, |_, args| {
            if args.is_empty() {
                Err(error("no arguments"))
            } else {
                Ok(args)
            }
        })
        .unwrap();
        lua.globals().set("f", function).unwrap();
        let result: (bool, String, i64, i64) = lua
            .load("local ok, e = pcall(f) local a, b = f(1, 2) return ok, e, a, b")
            .eval()
            .unwrap();
        assert_eq!(result, (false, "no arguments".to_string(), 1, 2));
    }

    #[test]
    fn c_number_parsers() {
        use super::c_number::*;
        assert_eq!(strtoll(b"123"), (123, 3));
        assert_eq!(strtoll(b" -5x"), (-5, 3));
        assert_eq!(strtoll(b"99999999999999999999"), (i64::MAX, 20));
        assert_eq!(strtoll(b"-99999999999999999999"), (i64::MIN, 21));
        assert_eq!(strtoll(b"-9223372036854775808"), (i64::MIN, 20));
        assert_eq!(strtoll(b"x"), (0, 0));
        assert_eq!(strtoll(b"-"), (0, 0));
        assert_eq!(strtoull(b"18446744073709551615"), (u64::MAX, 20));
        assert_eq!(strtoull(b"18446744073709551616"), (u64::MAX, 20));
        assert_eq!(strtoull(b"-1"), (u64::MAX, 2));
        assert_eq!(strtod(b"1.5e3x"), (1500.0, 5));
        assert_eq!(strtod(b"1e"), (1.0, 1));
        assert_eq!(strtod(b"1.e+"), (1.0, 2));
        assert_eq!(strtod(b".5"), (0.5, 2));
        assert_eq!(strtod(b"."), (0.0, 0));
        assert_eq!(strtod(b"0x10"), (16.0, 4));
        assert_eq!(strtod(b"0x1.8p1"), (3.0, 7));
        assert_eq!(strtod(b"0x"), (0.0, 1));
        assert_eq!(strtod(b"-inf"), (f64::NEG_INFINITY, 4));
        assert_eq!(strtod(b"Infinity"), (f64::INFINITY, 8));
        assert!(strtod(b"nan(123)").0.is_nan());
        assert_eq!(strtod(b"nan(123)").1, 8);
        assert_eq!(strtod(b"1e400"), (f64::INFINITY, 5));
        assert_eq!(strtod(b"abc"), (0.0, 0));
    }
}
