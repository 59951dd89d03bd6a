//! The `json` Lua module (`encode`, `decode`, `NULL`/`null`, `cfg`, `new`) with the semantics of
//! lua-cjson as Tarantool ships it: `/` escaped as `\/`, an empty table is `[]`, doubles as
//! `%.14g`, 64-bit cdata integers exact, big integers decoded into cdata, `null` decoded into
//! the shared NULL, and lua-cjson's error texts.
//!
//! Runs on the TX thread, which owns the Lua state.
//!
//! The codec is hand-written: it is small and must follow the shared serializer rules
//! (`serializer::Context::field`) rather than a generic data model.

use std::io::Write as _;
use std::rc::Rc;

use mlua::{Lua, MultiValue, Table, Value};

use super::serializer::{self, Context, Field, SerializerCfg, SharedCfg, c_number, error};

// {{{ Encoding

/// Encodes one Lua value as JSON text.
pub fn encode_value(context: &Context<'_>, value: Value) -> mlua::Result<Vec<u8>> {
    let mut encoder = Encoder {
        context,
        out: Vec::with_capacity(64),
        depth_max: context.cfg.encode_depth_max(),
        precision: context.cfg.number_precision(),
    };
    encoder.value(value, 0)?;
    Ok(encoder.out)
}

/// Writes one value as JSON text into `out`.
struct Encoder<'c, 'lua> {
    /// The options and helpers of this call.
    context: &'c Context<'lua>,
    /// The text so far.
    out: Vec<u8>,
    /// `encode_max_depth`, capped.
    depth_max: usize,
    /// Significant digits of doubles.
    precision: usize,
}

impl Encoder<'_, '_> {
    /// Appends `value`, which sits `depth` containers deep.
    fn value(&mut self, value: Value, depth: usize) -> mlua::Result<()> {
        match self.context.field(value)? {
            Field::Nil => self.out.extend_from_slice(b"null"),
            Field::Bool(flag) => self
                .out
                .extend_from_slice(if flag { b"true" } else { b"false" }),
            Field::UInt(integer) => write_integer(&mut self.out, integer),
            Field::Int(integer) => write_integer(&mut self.out, integer),
            Field::Float(float) => self.number(f64::from(float)),
            Field::Double(double) => self.number(double),
            Field::Str(string) => self.string(&string.as_bytes()),
            Field::Array { table, len, .. } => return self.array(&table, len, depth),
            Field::Map { table, .. } => return self.object(&table, depth),
        }
        Ok(())
    }

    /// lua-cjson writes NaN as `nan` whatever its sign; everything else is `%.14g`.
    fn number(&mut self, number: f64) {
        if number.is_nan() {
            self.out.extend_from_slice(b"nan");
        } else {
            serializer::write_g(&mut self.out, number, self.precision);
        }
    }

    /// A quoted string with lua-cjson's escapes.
    fn string(&mut self, text: &[u8]) {
        self.out.reserve(text.len() + 2);
        self.out.push(b'"');
        for &byte in text {
            match escape(byte) {
                Some(escaped) => self.out.extend_from_slice(escaped.as_bytes()),
                None => self.out.push(byte),
            }
        }
        self.out.push(b'"');
    }

    /// Containers past `encode_max_depth`: an error, or null with `encode_deep_as_nil`.
    fn too_deep(&mut self) -> mlua::Result<()> {
        if self.context.cfg.encode_deep_as_nil {
            self.out.extend_from_slice(b"null");
            return Ok(());
        }
        Err(error("Too high nest level"))
    }

    /// `[...]`: `table[1..=len]`, holes as `null`.
    fn array(&mut self, table: &Table, len: usize, depth: usize) -> mlua::Result<()> {
        if depth >= self.depth_max {
            return self.too_deep();
        }
        self.out.push(b'[');
        for index in 1..=len {
            if index > 1 {
                self.out.push(b',');
            }
            let item: Value = table.raw_get(index)?;
            self.value(item, depth + 1)?;
        }
        self.out.push(b']');
        Ok(())
    }

    /// `{...}`: every pair; keys must be integers or strings.
    fn object(&mut self, table: &Table, depth: usize) -> mlua::Result<()> {
        if depth >= self.depth_max {
            return self.too_deep();
        }
        self.out.push(b'{');
        let mut first = true;
        for pair in table.pairs::<Value, Value>() {
            let (key, value) = pair?;
            if !first {
                self.out.push(b',');
            }
            first = false;
            match self.context.field(key)? {
                Field::UInt(integer) => self.quoted_key(integer),
                Field::Int(integer) => self.quoted_key(integer),
                Field::Str(string) => {
                    self.string(&string.as_bytes());
                    self.out.push(b':');
                }
                _ => return Err(error("table key must be a number or string")),
            }
            self.value(value, depth + 1)?;
        }
        self.out.push(b'}');
        Ok(())
    }

    /// An integer key, quoted: JSON keys are strings.
    fn quoted_key(&mut self, integer: impl std::fmt::Display) {
        self.out.push(b'"');
        write_integer(&mut self.out, integer);
        self.out.extend_from_slice(b"\":");
    }
}

/// Appends an integer in decimal (writing to a vector cannot fail).
fn write_integer(out: &mut Vec<u8>, integer: impl std::fmt::Display) {
    let _ = write!(out, "{integer}");
}

/// lua-cjson's escape of one byte, if it needs one. Bytes from 0x80 up pass through as they
/// are, valid UTF-8 or not.
fn escape(byte: u8) -> Option<&'static str> {
    const CONTROL: [&str; 32] = [
        "\\u0000", "\\u0001", "\\u0002", "\\u0003", "\\u0004", "\\u0005", "\\u0006", "\\u0007",
        "\\b", "\\t", "\\n", "\\u000b", "\\f", "\\r", "\\u000e", "\\u000f", "\\u0010", "\\u0011",
        "\\u0012", "\\u0013", "\\u0014", "\\u0015", "\\u0016", "\\u0017", "\\u0018", "\\u0019",
        "\\u001a", "\\u001b", "\\u001c", "\\u001d", "\\u001e", "\\u001f",
    ];
    match byte {
        0x00..=0x1f => Some(CONTROL[usize::from(byte)]),
        b'"' => Some("\\\""),
        b'\\' => Some("\\\\"),
        b'/' => Some("\\/"),
        0x7f => Some("\\u007f"),
        _ => None,
    }
}

// }}}

// {{{ Decoding

/// A lexical token of lua-cjson's scanner.
#[derive(Debug, PartialEq)]
enum Token {
    /// `{`
    ObjectBegin,
    /// `}`
    ObjectEnd,
    /// `[`
    ArrayBegin,
    /// `]`
    ArrayEnd,
    /// A string, unescaped.
    Str(Vec<u8>),
    /// An integer `strtoll` could not hold (past `i64::MAX`).
    UInt(u64),
    /// An integer.
    Int(i64),
    /// A number with a point or an exponent, or `inf`/`nan`.
    Number(f64),
    /// `true` or `false`.
    Bool(bool),
    /// `null`
    Null,
    /// `:`
    Colon,
    /// `,`
    Comma,
    /// The end of the text.
    End,
    /// A scanning error with lua-cjson's description.
    Error(&'static str),
}

impl Token {
    /// How lua-cjson 2.6 names a token in "Expected ... but found ...".
    fn name(&self) -> &'static str {
        match self {
            Token::ObjectBegin => "T_OBJ_BEGIN",
            Token::ObjectEnd => "T_OBJ_END",
            Token::ArrayBegin => "T_ARR_BEGIN",
            Token::ArrayEnd => "T_ARR_END",
            Token::Str(_) => "T_STRING",
            Token::UInt(_) => "T_UINT",
            Token::Int(_) => "T_INT",
            Token::Number(_) => "T_NUMBER",
            Token::Bool(_) => "T_BOOLEAN",
            Token::Null => "T_NULL",
            Token::Colon => "T_COLON",
            Token::Comma => "T_COMMA",
            Token::End => "T_END",
            Token::Error(description) => description,
        }
    }
}

/// A token and the zero-based column where it starts (or where scanning failed).
struct Located {
    /// The token.
    token: Token,
    /// Zero-based column, for error messages.
    column: usize,
}

/// Decodes JSON text into a Lua value. The text ends at its first NUL byte, as the C string
/// lua-cjson scans does.
pub fn decode_text(context: &Context<'_>, text: &[u8]) -> mlua::Result<Value> {
    // lua-cjson's encoding sniff: a NUL among the first two bytes means UTF-16 or UTF-32.
    if text.len() >= 2 && (text[0] == 0 || text[1] == 0) {
        return Err(error("JSON parser does not support UTF-16 or UTF-32"));
    }
    let end = text
        .iter()
        .position(|&byte| byte == 0)
        .unwrap_or(text.len());
    let mut parser = Parser {
        context,
        text: &text[..end],
        at: 0,
        line: 1,
        line_start: 0,
        depth: 0,
        depth_max: context.cfg.decode_depth_max(),
    };
    let token = parser.next_token();
    let value = parser.value(token)?;
    let token = parser.next_token();
    if token.token != Token::End {
        return Err(parser.unexpected("the end", &token));
    }
    Ok(value)
}

/// lua-cjson's recursive-descent parser over one text.
struct Parser<'c, 'lua, 'text> {
    /// The options and helpers of this call.
    context: &'c Context<'lua>,
    /// The text, up to its first NUL.
    text: &'text [u8],
    /// The next byte to scan.
    at: usize,
    /// 1-based line of `at`, for error messages.
    line: usize,
    /// Where the current line starts.
    line_start: usize,
    /// Containers open at `at`.
    depth: usize,
    /// `decode_max_depth`, capped.
    depth_max: usize,
}

impl Parser<'_, '_, '_> {
    /// The byte at `at`, or NUL past the end.
    fn byte(&self, at: usize) -> u8 {
        self.text.get(at).copied().unwrap_or(0)
    }

    /// Whether the text at `at` starts with `word`.
    fn starts_with(&self, word: &[u8]) -> bool {
        self.text[self.at..].starts_with(word)
    }

    /// Zero-based column of `at`.
    fn column(&self) -> usize {
        self.at - self.line_start
    }

    /// Skips whitespace (counting lines) and scans one token.
    fn next_token(&mut self) -> Located {
        loop {
            match self.byte(self.at) {
                b' ' | b'\t' | b'\r' => self.at += 1,
                b'\n' => {
                    self.at += 1;
                    self.line += 1;
                    self.line_start = self.at;
                }
                _ => break,
            }
        }
        let column = self.column();
        let single = match self.byte(self.at) {
            0 => {
                return Located {
                    token: Token::End,
                    column,
                };
            }
            b'{' => Token::ObjectBegin,
            b'}' => Token::ObjectEnd,
            b'[' => Token::ArrayBegin,
            b']' => Token::ArrayEnd,
            b',' => Token::Comma,
            b':' => Token::Colon,
            b'"' => return self.string_token(column),
            b'f' | b'i' | b'I' | b'n' | b'N' | b't' | b'+' | b'-' | b'0'..=b'9' => {
                return Located {
                    token: self.word_token(),
                    column,
                };
            }
            _ => Token::Error("invalid token"),
        };
        if !matches!(single, Token::Error(_)) {
            self.at += 1;
        }
        Located {
            token: single,
            column,
        }
    }

    /// lua-cjson's `json_is_invalid_number`: what `strtod` would take but JSON does not
    /// (a plus sign, hex, leading zeros, words).
    fn is_invalid_number(&self) -> bool {
        let mut at = self.at;
        match self.byte(at) {
            b'+' => return true,
            b'-' => at += 1,
            _ => {}
        }
        match self.byte(at) {
            b'0' => {
                let next = self.byte(at + 1);
                next | 0x20 == b'x' || next.is_ascii_digit()
            }
            byte => !byte.is_ascii_digit(),
        }
    }

    /// Numbers, `true`, `false`, `null` and (with `decode_invalid_numbers`) `inf`/`nan`.
    fn word_token(&mut self) -> Token {
        if !self.is_invalid_number() {
            return self.number_token();
        }
        let words: [(&[u8], Token); 3] = [
            (b"true", Token::Bool(true)),
            (b"false", Token::Bool(false)),
            (b"null", Token::Null),
        ];
        for (word, token) in words {
            if self.starts_with(word) {
                self.at += word.len();
                return token;
            }
        }
        if self.context.cfg.decode_invalid_numbers {
            let specials: [(&[u8], usize, f64); 4] = [
                (b"inf", 3, f64::INFINITY),
                (b"-inf", 4, f64::NEG_INFINITY),
                (b"nan", 3, f64::NAN),
                // lua-cjson compares only "-na" but skips four characters.
                (b"-na", 4, f64::NAN),
            ];
            for (prefix, skip, value) in specials {
                if self.starts_with(prefix) {
                    self.at = (self.at + skip).min(self.text.len());
                    return Token::Number(value);
                }
            }
        }
        Token::Error("invalid token")
    }

    /// An integer (`strtoll`, `strtoull` past `i64::MAX`) unless a point or an exponent
    /// follows, then a double (`strtod`).
    fn number_token(&mut self) -> Token {
        let rest = &self.text[self.at..];
        let (signed, mut used) = c_number::strtoll(rest);
        let mut token = Token::Int(signed);
        if signed == i64::MAX {
            let (unsigned, unsigned_used) = c_number::strtoull(rest);
            token = Token::UInt(unsigned);
            used = unsigned_used;
        }
        if matches!(rest.get(used), Some(b'.' | b'e' | b'E')) {
            let (double, double_used) = c_number::strtod(rest);
            token = Token::Number(double);
            used = double_used;
        }
        if used == 0 {
            return Token::Error("invalid number");
        }
        self.at += used;
        token
    }

    /// A string starting at `column`; errors point at where scanning failed.
    fn string_token(&mut self, column: usize) -> Located {
        self.at += 1;
        let mut text = Vec::new();
        loop {
            let byte = self.byte(self.at);
            if byte == b'"' {
                break;
            }
            if self.at >= self.text.len() {
                return self.error_here("unexpected end of string");
            }
            if byte != b'\\' {
                text.push(byte);
                self.at += 1;
                continue;
            }
            let simple = match self.byte(self.at + 1) {
                b'"' => b'"',
                b'\\' => b'\\',
                b'/' => b'/',
                b'b' => 0x08,
                b't' => b'\t',
                b'n' => b'\n',
                b'f' => 0x0c,
                b'r' => b'\r',
                b'u' => match self.unicode_escape(&mut text) {
                    Some(length) => {
                        self.at += length;
                        continue;
                    }
                    None => return self.error_here("invalid unicode escape code"),
                },
                _ => return self.error_here("invalid escape code"),
            };
            text.push(simple);
            self.at += 2;
        }
        self.at += 1;
        Located {
            token: Token::Str(text),
            column,
        }
    }

    /// A scanning error at `at`.
    fn error_here(&self, description: &'static str) -> Located {
        Located {
            token: Token::Error(description),
            column: self.column(),
        }
    }

    /// Four hex digits at `at`.
    fn hex4(&self, at: usize) -> Option<u32> {
        let digits = self.text.get(at..at + 4)?;
        let text = std::str::from_utf8(digits).ok()?;
        if !text.bytes().all(|byte| byte.is_ascii_hexdigit()) {
            return None;
        }
        u32::from_str_radix(text, 16).ok()
    }

    /// `\uXXXX` (or a surrogate pair of them) at `at`, appended as UTF-8; the escape length.
    fn unicode_escape(&self, text: &mut Vec<u8>) -> Option<usize> {
        let mut codepoint = self.hex4(self.at + 2)?;
        let mut length = 6;
        if codepoint & 0xf800 == 0xd800 {
            if codepoint & 0x400 != 0 {
                return None;
            }
            if self.byte(self.at + 6) != b'\\' || self.byte(self.at + 7) != b'u' {
                return None;
            }
            let low = self.hex4(self.at + 8)?;
            if low & 0xfc00 != 0xdc00 {
                return None;
            }
            codepoint = (((codepoint & 0x3ff) << 10) | (low & 0x3ff)) + 0x10000;
            length = 12;
        }
        let character = char::from_u32(codepoint)?;
        let mut buffer = [0u8; 4];
        text.extend_from_slice(character.encode_utf8(&mut buffer).as_bytes());
        Some(length)
    }

    /// "Expected <what> but found <token> on line <n> at character <column>".
    fn unexpected(&self, expected: &str, found: &Located) -> mlua::Error {
        error(format!(
            "Expected {expected} but found {} on line {} at character {}",
            found.token.name(),
            self.line,
            found.column + 1
        ))
    }

    /// The value that `located` starts.
    fn value(&mut self, located: Located) -> mlua::Result<Value> {
        let context = self.context;
        match located.token {
            Token::Str(text) => Ok(Value::String(context.lua.create_string(text)?)),
            Token::UInt(integer) => context.uint_value(integer),
            Token::Int(integer) => context.int_value(integer),
            Token::Number(number) => context.double_value(number),
            Token::Bool(flag) => Ok(Value::Boolean(flag)),
            Token::Null => Ok(context.null()),
            Token::ObjectBegin => self.object(),
            Token::ArrayBegin => self.array(),
            _ => Err(self.unexpected("value", &located)),
        }
    }

    /// One level deeper, or lua-cjson's error past `decode_max_depth`.
    fn descend(&mut self) -> mlua::Result<()> {
        self.depth += 1;
        if self.depth <= self.depth_max {
            return Ok(());
        }
        Err(error(format!(
            "Found too many nested data structures ({}) on line {} at character {}",
            self.depth,
            self.line,
            self.column()
        )))
    }

    /// An object, after its `{`.
    fn object(&mut self) -> mlua::Result<Value> {
        self.descend()?;
        let table = self.context.lua.create_table()?;
        self.context.mark_map(&table)?;
        let mut located = self.next_token();
        if located.token == Token::ObjectEnd {
            self.depth -= 1;
            return Ok(Value::Table(table));
        }
        loop {
            let Token::Str(key) = located.token else {
                return Err(self.unexpected("object key string", &located));
            };
            let key = self.context.lua.create_string(key)?;
            let colon = self.next_token();
            if colon.token != Token::Colon {
                return Err(self.unexpected("colon", &colon));
            }
            let token = self.next_token();
            let value = self.value(token)?;
            table.raw_set(key, value)?;
            let separator = self.next_token();
            match separator.token {
                Token::ObjectEnd => break,
                Token::Comma => located = self.next_token(),
                _ => return Err(self.unexpected("comma or object end", &separator)),
            }
        }
        self.depth -= 1;
        Ok(Value::Table(table))
    }

    /// An array, after its `[`.
    fn array(&mut self) -> mlua::Result<Value> {
        self.descend()?;
        let table = self.context.lua.create_table()?;
        self.context.mark_array(&table)?;
        let mut located = self.next_token();
        if located.token == Token::ArrayEnd {
            self.depth -= 1;
            return Ok(Value::Table(table));
        }
        let mut index = 0;
        loop {
            let value = self.value(located)?;
            index += 1;
            table.raw_set(index, value)?;
            let separator = self.next_token();
            match separator.token {
                Token::ArrayEnd => break,
                Token::Comma => located = self.next_token(),
                _ => return Err(self.unexpected("comma or array end", &separator)),
            }
        }
        self.depth -= 1;
        Ok(Value::Table(table))
    }
}

// }}}

// {{{ The Lua module

/// Opens the `json` module (the caller puts it into `package.loaded`).
pub fn open(lua: &Lua) -> mlua::Result<Table> {
    new_module(lua, SerializerCfg::default())
}

/// A module instance with its own options: `json` itself and each `json.new()`.
fn new_module(lua: &Lua, cfg: SerializerCfg) -> mlua::Result<Table> {
    let shared: SharedCfg = Rc::new(std::cell::Cell::new(cfg));
    let module = serializer::module_table(lua, &shared)?;
    module.raw_set("null", serializer::null(lua)?)?;
    let encode_cfg = Rc::clone(&shared);
    let encode = serializer::lua_function(lua, move |lua, args| {
        let (value, options) = one_or_two_arguments(args)?;
        let cfg = serializer::cfg_with_options(encode_cfg.get(), options)?;
        let context = Context::new(lua, cfg)?;
        let text = encode_value(&context, value)?;
        Ok(MultiValue::from_iter([Value::String(
            lua.create_string(text)?,
        )]))
    })?;
    module.raw_set("encode", encode)?;
    let decode_cfg = Rc::clone(&shared);
    let decode = serializer::lua_function(lua, move |lua, args| {
        let (text, options) = one_or_two_arguments(args)?;
        let text = match text {
            Value::String(text) => text.as_bytes().to_vec(),
            Value::Integer(integer) => integer.to_string().into_bytes(),
            Value::Number(number) => serializer::number_to_string(number),
            other => {
                return Err(error(format!(
                    "bad argument #1 to '?' (string expected, got {})",
                    serializer::lua_type_name(&other)
                )));
            }
        };
        let cfg = serializer::cfg_with_options(decode_cfg.get(), options)?;
        let context = Context::new(lua, cfg)?;
        Ok(MultiValue::from_iter([decode_text(&context, &text)?]))
    })?;
    module.raw_set("decode", decode)?;
    let new = serializer::lua_function(lua, |lua, _| {
        let module = new_module(lua, SerializerCfg::default())?;
        Ok(MultiValue::from_iter([Value::Table(module)]))
    })?;
    module.raw_set("new", new)?;
    Ok(module)
}

/// lua-cjson's argument check: the value and, optionally, per-call options.
fn one_or_two_arguments(args: MultiValue) -> mlua::Result<(Value, Option<Value>)> {
    if args.is_empty() || args.len() > 2 {
        return Err(error("bad argument #1 to '?' (expected 1 or 2 arguments)"));
    }
    let mut args = args.into_iter();
    let first = args.next().unwrap_or(Value::Nil);
    Ok((first, args.next()))
}

// }}}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lua::serializer::tests::new_lua;

    fn lua_with_json() -> Lua {
        let lua = new_lua();
        let module = open(&lua).unwrap();
        lua.globals().set("json", module).unwrap();
        lua
    }

    /// `pcall(f, ...)` results of a Lua expression as strings (`ok`, then values).
    fn call(lua: &Lua, code: &str) -> Vec<String> {
        let results: MultiValue = lua
            .load(format!(
                "local r = {{pcall(function() return {code} end)}} \
                 for i = 1, table.maxn(r) do r[i] = tostring(r[i]) end \
                 return unpack(r, 1, table.maxn(r))"
            ))
            .eval()
            .unwrap_or_else(|err| panic!("{code}: {err}"));
        results
            .into_iter()
            .map(|value| value.to_string().unwrap_or_default())
            .collect()
    }

    fn encoded(lua: &Lua, expression: &str) -> String {
        let results = call(lua, &format!("json.encode({expression})"));
        assert_eq!(results[0], "true", "{expression}: {results:?}");
        results[1].clone()
    }

    fn encode_error(lua: &Lua, expression: &str) -> String {
        let results = call(lua, &format!("json.encode({expression})"));
        assert_eq!(results[0], "false", "{expression}: {results:?}");
        results[1].clone()
    }

    #[test]
    fn encodes_like_cjson() {
        let lua = lua_with_json();
        assert_eq!(
            encoded(
                &lua,
                "{1, 'a/b', \"q\\\"\\\\\\n\\t\\1\\127é\", 1/3, 2^53, 2^64, -2^63, 1e100, 1e-5, 0.1, -0.0, 12345678901234567}"
            ),
            "[1,\"a\\/b\",\"q\\\"\\\\\\n\\t\\u0001\\u007fé\",0.33333333333333,9007199254740992,1.844674407371e+19,-9223372036854775808,1e+100,1e-05,0.1,0,12345678901234568]"
        );
        assert_eq!(
            encoded(&lua, "\"\\b\\f\\n\\r\\t\\\"\\\\/\\31\\127\""),
            "\"\\b\\f\\n\\r\\t\\\"\\\\\\/\\u001f\\u007f\""
        );
        assert_eq!(encoded(&lua, "0/0"), "nan");
        assert_eq!(encoded(&lua, "-(0/0)"), "nan");
        assert_eq!(encoded(&lua, "1/0"), "inf");
        assert_eq!(encoded(&lua, "-1/0"), "-inf");
        assert_eq!(
            encoded(&lua, "18446744073709551615ULL"),
            "18446744073709551615"
        );
        assert_eq!(
            encoded(&lua, "-9223372036854775807LL - 1"),
            "-9223372036854775808"
        );
        assert_eq!(encoded(&lua, "json.NULL"), "null");
        assert_eq!(encoded(&lua, "nil"), "null");
        assert_eq!(encoded(&lua, "true"), "true");
        assert_eq!(encoded(&lua, "{a = 1}"), "{\"a\":1}");
        assert_eq!(encoded(&lua, "{}"), "[]");
        assert_eq!(
            encoded(&lua, "setmetatable({}, {__serialize = 'map'})"),
            "{}"
        );
        assert_eq!(encoded(&lua, "{[1] = 1, [3] = 3}"), "[1,null,3]");
        assert_eq!(encoded(&lua, "{1, nil, 3}"), "[1,null,3]");
        assert_eq!(encoded(&lua, "{nil, nil, 3}"), "[null,null,3]");
        assert_eq!(encoded(&lua, "{[12] = 1}"), "{\"12\":1}");
        assert_eq!(encoded(&lua, "{[-1] = 1}"), "{\"-1\":1}");
        assert_eq!(encoded(&lua, "{[0] = 1}"), "{\"0\":1}");
        assert_eq!(encoded(&lua, "{[5ULL] = 1}"), "{\"5\":1}");
        assert_eq!(
            encoded(&lua, "setmetatable({1, 2}, {__serialize = 'map'})"),
            "{\"1\":1,\"2\":2}"
        );
        assert_eq!(
            encoded(&lua, "setmetatable({a = 1}, {__serialize = 'seq'})"),
            "[]"
        );
        assert_eq!(
            encoded(
                &lua,
                "{a = setmetatable({}, {__serialize = function() return nil end})}"
            ),
            "{\"a\":null}"
        );
        assert_eq!(encoded(&lua, "{'\\0'}"), "[\"\\u0000\"]");
        assert_eq!(encoded(&lua, "{a = {b = 1}}"), "{\"a\":{\"b\":1}}");
        assert_eq!(encoded(&lua, "123456789012"), "123456789012");
        assert_eq!(encoded(&lua, "-1.5e-7"), "-1.5e-07");
        assert_eq!(encoded(&lua, "1e15"), "1000000000000000");
        assert_eq!(encoded(&lua, "0.1 + 0.2"), "0.3");
        assert_eq!(encoded(&lua, "5e-324"), "4.9406564584125e-324");
        assert_eq!(
            encoded(&lua, "1.7976931348623157e308"),
            "1.7976931348623e+308"
        );
        assert_eq!(encoded(&lua, "require('ffi').new('int', 5)"), "5");
        assert_eq!(encoded(&lua, "require('ffi').new('double', 5.5)"), "5.5");
        assert_eq!(encoded(&lua, "require('ffi').new('bool', true)"), "true");
        assert_eq!(encoded(&lua, "require('ffi').new('float', 1.5)"), "1.5");
    }

    #[test]
    fn invalid_utf8_passes_through() {
        let lua = lua_with_json();
        let text: mlua::LuaString = lua.load("return json.encode('\\xff\\xfe')").eval().unwrap();
        assert_eq!(text.as_bytes().to_vec(), b"\"\xff\xfe\"".to_vec());
    }

    #[test]
    fn encode_errors_like_cjson() {
        let lua = lua_with_json();
        assert_eq!(
            encode_error(&lua, "{[1.5] = 1}"),
            "table key must be a number or string"
        );
        assert_eq!(
            encode_error(&lua, "{[true] = 1}"),
            "table key must be a number or string"
        );
        assert_eq!(
            encode_error(&lua, "print"),
            "unsupported Lua type 'function'"
        );
        assert_eq!(
            encode_error(&lua, "io.stdout"),
            "unsupported Lua type 'userdata'"
        );
        assert_eq!(
            encode_error(&lua, "coroutine.create(print)"),
            "unsupported Lua type 'thread'"
        );
        assert_eq!(
            encode_error(&lua, "require('ffi').cast('void *', 1)"),
            "unsupported Lua type 'cdata'"
        );
        assert_eq!(
            encode_error(&lua, ""),
            "bad argument #1 to '?' (expected 1 or 2 arguments)"
        );
        assert_eq!(
            encode_error(&lua, "1, {}, 3"),
            "bad argument #1 to '?' (expected 1 or 2 arguments)"
        );
        assert_eq!(
            encode_error(&lua, "(function() local r = {} r[1] = r return r end)()"),
            "Too high nest level"
        );
        let deep = |levels: usize| {
            format!(
                "(function() local t = {{}} local c = t for i = 1, {levels} do c[1] = {{}} c = c[1] end return t end)()"
            )
        };
        assert_eq!(
            encoded(&lua, &deep(127)),
            format!("{}{}", "[".repeat(128), "]".repeat(128))
        );
        assert_eq!(encode_error(&lua, &deep(128)), "Too high nest level");
        assert_eq!(
            encoded(
                &lua,
                &format!("{}, {{encode_deep_as_nil = true}}", deep(129))
            ),
            format!("{}null{}", "[".repeat(128), "]".repeat(128))
        );
        assert_eq!(
            encode_error(&lua, "0/0, {encode_invalid_numbers = false}"),
            "number must not be NaN or Inf"
        );
        assert_eq!(
            encoded(
                &lua,
                "{0/0}, {encode_invalid_numbers = false, encode_invalid_as_nil = true}"
            ),
            "[null]"
        );
        assert_eq!(
            encode_error(&lua, "{[1] = 1, [30] = 3}, {encode_sparse_convert = false}"),
            "excessively sparse array"
        );
        assert_eq!(
            encoded(&lua, "{[1] = 1, [30] = 3}, {encode_sparse_ratio = 0}"),
            format!("[1,{}3]", "null,".repeat(28))
        );
        assert_eq!(encoded(&lua, "1/3, {encode_number_precision = 3}"), "0.333");
        assert_eq!(
            encoded(&lua, "1/3, {encode_number_precision = 20}"),
            "0.33333333333333"
        );
        assert!(encoded(&lua, "print, {encode_use_tostring = true}").starts_with("\"function: "));
        assert_eq!(
            encode_error(&lua, "1, 5"),
            "bad argument #2 to '?' (table expected, got number)"
        );
    }

    #[test]
    fn map_key_order_and_sparse_maps() {
        let lua = lua_with_json();
        let text = encoded(&lua, "{[1] = 1, [30] = 3}");
        assert!(
            text == "{\"30\":3,\"1\":1}" || text == "{\"1\":1,\"30\":3}",
            "{text}"
        );
        let text = encoded(&lua, "{[1] = 1, [2] = 2, a = 3}");
        assert!(
            text.starts_with("{\"1\":1,\"2\":2") && text.contains("\"a\":3"),
            "{text}"
        );
    }

    fn decoded(lua: &Lua, text: &str) -> Vec<String> {
        let function: mlua::Function = lua
            .load(
                "return function(s) \
                     local r = {pcall(json.decode, s)} \
                     for i = 1, table.maxn(r) do r[i] = tostring(r[i]) end \
                     return r \
                 end",
            )
            .eval()
            .unwrap();
        function.call(lua.create_string(text).unwrap()).unwrap()
    }

    #[test]
    fn decodes_like_cjson() {
        let lua = lua_with_json();
        let cases: &[(&str, &[&str])] = &[
            ("18446744073709551615", &["true", "18446744073709551615ULL"]),
            ("-9223372036854775808", &["true", "-9223372036854775808LL"]),
            ("9007199254740993", &["true", "9007199254740993LL"]),
            ("9223372036854775807", &["true", "9223372036854775807ULL"]),
            (
                "100000000000000000000",
                &["true", "18446744073709551615ULL"],
            ),
            ("100000000000000", &["true", "100000000000000LL"]),
            ("99999999999999", &["true", "99999999999999"]),
            ("-0", &["true", "0"]),
            ("1e2", &["true", "100"]),
            ("1E+2", &["true", "100"]),
            ("1.5", &["true", "1.5"]),
            ("1.", &["true", "1"]),
            ("1.0", &["true", "1"]),
            ("1e400", &["true", "inf"]),
            ("1.5e400", &["true", "inf"]),
            ("nan", &["true", "nan"]),
            ("inf", &["true", "inf"]),
            ("-inf", &["true", "-inf"]),
            ("-nax", &["true", "nan"]),
            ("\"\\u00e9\\/\"", &["true", "é/"]),
            ("\"\\ud83d\\ude00\"", &["true", "😀"]),
            ("\"\\u0000\"", &["true", "\0"]),
            ("\"\u{1}\"", &["true", "\u{1}"]),
            ("true", &["true", "true"]),
            (" null ", &["true", "cdata<void *>: NULL"]),
            ("[1]\0xyz", &["true", "table"]),
        ];
        for (text, expected) in cases {
            let got = decoded(&lua, text);
            let got: Vec<String> = got
                .into_iter()
                .map(|value| {
                    if value.starts_with("table: ") {
                        "table".to_string()
                    } else {
                        value
                    }
                })
                .collect();
            assert_eq!(got, *expected, "{text:?}");
        }
        let checks: (bool, bool, String, String, i64, bool) = lua
            .load(
                "local t = json.decode('[1,2,{\"a\":null}]') \
                 local r = json.decode('[1,null,3]') \
                 return t[3].a == nil, type(t[3].a) == 'cdata', \
                        getmetatable(t).__serialize, getmetatable(t[3]).__serialize, #r, \
                        rawequal(r[2], json.NULL)",
            )
            .eval()
            .unwrap();
        assert_eq!(
            checks,
            (true, true, "seq".to_string(), "map".to_string(), 3, true)
        );
        let types: (String, String, String, String) = lua
            .load(
                "return type(json.decode('5')), type(json.decode('1e20')), \
                        type(json.decode('9007199254740992')), type(json.decode('1.0'))",
            )
            .eval()
            .unwrap();
        assert_eq!(
            types,
            (
                "number".into(),
                "number".into(),
                "cdata".into(),
                "number".into()
            )
        );
        let plain: bool = lua
            .load(
                "return getmetatable(json.decode('[1]', {decode_save_metatables = false})) == nil",
            )
            .eval()
            .unwrap();
        assert!(plain);
        let last: i64 = lua
            .load("return json.decode('{\"a\":1,\"a\":2}').a")
            .eval()
            .unwrap();
        assert_eq!(last, 2);
        let number_argument: i64 = lua.load("return json.decode(5)").eval().unwrap();
        assert_eq!(number_argument, 5);
    }

    #[test]
    fn decode_errors_like_cjson() {
        let lua = lua_with_json();
        let cases: &[(&str, &str)] = &[
            (
                "",
                "Expected value but found T_END on line 1 at character 1",
            ),
            (
                "[1,",
                "Expected value but found T_END on line 1 at character 4",
            ),
            (
                "{\"a\":1",
                "Expected comma or object end but found T_END on line 1 at character 7",
            ),
            (
                "nul",
                "Expected value but found invalid token on line 1 at character 1",
            ),
            (
                "[1 2]",
                "Expected comma or array end but found T_INT on line 1 at character 4",
            ),
            (
                "{1:2}",
                "Expected object key string but found T_INT on line 1 at character 2",
            ),
            (
                "\"abc",
                "Expected value but found unexpected end of string on line 1 at character 5",
            ),
            (
                "01",
                "Expected value but found invalid token on line 1 at character 1",
            ),
            (
                "-",
                "Expected value but found invalid token on line 1 at character 1",
            ),
            (
                "\"\\x\"",
                "Expected value but found invalid escape code on line 1 at character 2",
            ),
            (
                "[1,]",
                "Expected value but found T_ARR_END on line 1 at character 4",
            ),
            (
                "  ",
                "Expected value but found T_END on line 1 at character 3",
            ),
            (
                "true x",
                "Expected the end but found invalid token on line 1 at character 6",
            ),
            (
                "[[[[",
                "Expected value but found T_END on line 1 at character 5",
            ),
            (
                "{\"a\":1,}",
                "Expected object key string but found T_OBJ_END on line 1 at character 8",
            ),
            (
                "NaN",
                "Expected value but found invalid token on line 1 at character 1",
            ),
            (
                "-Infinity",
                "Expected value but found invalid token on line 1 at character 1",
            ),
            (
                "0x10",
                "Expected value but found invalid token on line 1 at character 1",
            ),
            (
                "\"\\ud800\"",
                "Expected value but found invalid unicode escape code on line 1 at character 2",
            ),
            (
                "\"\\u12\"",
                "Expected value but found invalid unicode escape code on line 1 at character 2",
            ),
            (
                "\"\\uD83D\\u0041\"",
                "Expected value but found invalid unicode escape code on line 1 at character 2",
            ),
            (
                "\"\\uDC00\"",
                "Expected value but found invalid unicode escape code on line 1 at character 2",
            ),
            (
                "\u{ff}",
                "Expected value but found invalid token on line 1 at character 1",
            ),
            (
                "{\"a\" 1}",
                "Expected colon but found T_INT on line 1 at character 6",
            ),
            (
                "[-]",
                "Expected value but found invalid token on line 1 at character 2",
            ),
            (
                "1e",
                "Expected the end but found invalid token on line 1 at character 2",
            ),
            (
                "--1",
                "Expected value but found invalid token on line 1 at character 1",
            ),
            (
                "+1",
                "Expected value but found invalid token on line 1 at character 1",
            ),
            (
                ".5",
                "Expected value but found invalid token on line 1 at character 1",
            ),
            (
                "[1 \"a\"]",
                "Expected comma or array end but found T_STRING on line 1 at character 4",
            ),
            (
                "[1 1.5]",
                "Expected comma or array end but found T_NUMBER on line 1 at character 4",
            ),
            (
                "[1 18446744073709551615]",
                "Expected comma or array end but found T_UINT on line 1 at character 4",
            ),
            (
                "[1 true]",
                "Expected comma or array end but found T_BOOLEAN on line 1 at character 4",
            ),
            (
                "[1 null]",
                "Expected comma or array end but found T_NULL on line 1 at character 4",
            ),
            (
                "[1 :]",
                "Expected comma or array end but found T_COLON on line 1 at character 4",
            ),
            (
                "[1 {]",
                "Expected comma or array end but found T_OBJ_BEGIN on line 1 at character 4",
            ),
            (
                "[1 []",
                "Expected comma or array end but found T_ARR_BEGIN on line 1 at character 4",
            ),
            (
                "{\"a\":1 \"b\"}",
                "Expected comma or object end but found T_STRING on line 1 at character 8",
            ),
            (
                "{\"a\":1 ]",
                "Expected comma or object end but found T_ARR_END on line 1 at character 8",
            ),
            (
                "[1,\n2,]",
                "Expected value but found T_ARR_END on line 2 at character 3",
            ),
            (
                "[1,\r\n\t2,]",
                "Expected value but found T_ARR_END on line 2 at character 4",
            ),
            (
                "\"a\0b\"",
                "Expected value but found unexpected end of string on line 1 at character 3",
            ),
            (
                "[1,2]]",
                "Expected the end but found T_ARR_END on line 1 at character 6",
            ),
            (
                "{\"a\"}",
                "Expected colon but found T_OBJ_END on line 1 at character 5",
            ),
            (
                "{\"a\":}",
                "Expected value but found T_OBJ_END on line 1 at character 6",
            ),
            (
                "{,}",
                "Expected object key string but found T_COMMA on line 1 at character 2",
            ),
            (
                "[,]",
                "Expected value but found T_COMMA on line 1 at character 2",
            ),
            (
                "truex",
                "Expected the end but found invalid token on line 1 at character 5",
            ),
            ("\0[1]", "JSON parser does not support UTF-16 or UTF-32"),
            ("1\0", "JSON parser does not support UTF-16 or UTF-32"),
            (
                "123abc",
                "Expected the end but found invalid token on line 1 at character 4",
            ),
            (
                &format!("{}{}", "[".repeat(129), "]".repeat(129)),
                "Found too many nested data structures (129) on line 1 at character 129",
            ),
        ];
        for (text, message) in cases {
            let bytes: Vec<u8> = if *text == "\u{ff}" {
                vec![0xff]
            } else {
                text.as_bytes().to_vec()
            };
            let function: mlua::Function = lua
                .load("return function(s) local ok, e = pcall(json.decode, s) return e end")
                .eval()
                .unwrap();
            let got: String = function.call(lua.create_string(&bytes).unwrap()).unwrap();
            assert_eq!(got, *message, "{text:?}");
        }
        let deep_ok = decoded(&lua, &format!("{}{}", "[".repeat(128), "]".repeat(128)));
        assert_eq!(deep_ok[0], "true");
        let argument_errors: (String, String, String) = lua
            .load(
                "local _, a = pcall(json.decode) local _, b = pcall(json.decode, nil) \
                 local _, c = pcall(json.decode, {}) return a, b, c",
            )
            .eval()
            .unwrap();
        assert_eq!(
            argument_errors,
            (
                "bad argument #1 to '?' (expected 1 or 2 arguments)".into(),
                "bad argument #1 to '?' (string expected, got nil)".into(),
                "bad argument #1 to '?' (string expected, got table)".into(),
            )
        );
        let options: (String, String, String) = lua
            .load(
                "local _, a = pcall(json.decode, '[[1]]', {decode_max_depth = 1}) \
                 local _, b = pcall(json.decode, 'nan', {decode_invalid_numbers = false}) \
                 local _, c = pcall(json.decode, '1e400', {decode_invalid_numbers = false}) \
                 return a, b, c",
            )
            .eval()
            .unwrap();
        assert_eq!(
            options,
            (
                "Found too many nested data structures (2) on line 1 at character 2".into(),
                "Expected value but found invalid token on line 1 at character 1".into(),
                "number must not be NaN or Inf".into(),
            )
        );
    }

    #[test]
    fn round_trips() {
        let lua = lua_with_json();
        let ok: bool = lua
            .load(
                "local v = {1, 'two', {three = 3, list = {1.5, -2, true, false}}, \
                           18446744073709551615ULL, -9223372036854775807LL - 1, 'esc\"\\\\/\\n\\1é', json.NULL} \
                 local d = json.decode(json.encode(v)) \
                 return d[1] == 1 and d[2] == 'two' and d[3].three == 3 and d[3].list[1] == 1.5 \
                    and d[3].list[2] == -2 and d[3].list[3] == true and d[3].list[4] == false \
                    and d[4] == v[4] and d[5] == v[5] and d[6] == v[6] and d[7] == nil and #d == 7 \
                    and json.encode(d) == json.encode(v)",
            )
            .eval()
            .unwrap();
        assert!(ok);
    }

    #[test]
    fn module_instances() {
        let lua = lua_with_json();
        let checks: (i64, bool, bool, String, String) = lua
            .load(
                "local j2 = json.new() j2.cfg{encode_max_depth = 1} \
                 local _, e = pcall(j2.encode, {{1}}) \
                 return j2.cfg.encode_max_depth, rawequal(j2.NULL, json.NULL), \
                        rawequal(json.null, json.NULL), e, json.encode({{1}})",
            )
            .eval()
            .unwrap();
        assert_eq!(
            checks,
            (1, true, true, "Too high nest level".into(), "[[1]]".into())
        );
        let defaults: (i64, bool) = lua
            .load("json.cfg{encode_max_depth = 3} return json.new().cfg.encode_max_depth, json.cfg.encode_max_depth == 3")
            .eval()
            .unwrap();
        assert_eq!(defaults, (128, true));
    }
}
