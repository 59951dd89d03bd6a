//! Key definitions, and comparison, hashing and validation over raw MessagePack: Tarantool's
//! `key_def`, `tuple_compare`, `tuple_hash` and the type checks of `tuple_format`.
//!
//! Owned by nobody: plain values and pure functions. The TX thread runs them in every index
//! operation and request check, and the snapshot thread will read frozen tuples with them.
//!
//! Tuples and keys stay encoded: a tuple is the whole encoding of a MessagePack array (header
//! included), a key likewise, and a field is the encoding of one value. Besides errors, only
//! `extract_key` and `merge_with_primary` allocate. Truncated or garbage bytes give `None`,
//! an error or an arbitrary but deterministic order, never a panic.
//!
//! Values order as in Tarantool 2.x. Older Tarantool compared a double with an integer
//! through a lossy conversion, under which NaN equals every number; where the two differ,
//! the old order was not even consistent, so the exact one replaces it:
//!
//! ```text
//!  nil < boolean < number < string < binary < extension < array < map
//!        false     NaN       bytes,    bytes,   └─── encoded bytes ───┘
//!        < true    < -inf    then      then
//!                  < ...     length    length
//!                  < +inf
//! ```
//!
//! Numbers compare exactly across int, uint, float and double encodings: `5`, `5.0` and an
//! `int8` 5 are equal, `u64::MAX` is less than the double `2^64`. Signaling NaNs sort below
//! quiet ones. Hashing follows the same equality, so a HASH index finds `5.0` under `5`.

use std::cmp::Ordering;

use rmp::Marker;

use crate::error::{BoxError, ErrCode};

// {{{ Field types

/// The type of an indexed field, as the parts of an `_index` row name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FieldType {
    /// Any value, nil included (`*`, `any`).
    Any,
    /// A non-negative integer (1.6 `NUM`).
    Unsigned,
    /// A string (1.6 `STR`).
    String,
    /// An integer, float or double (1.6 `NUMBER`).
    Number,
    /// An integer of either sign.
    Integer,
    /// `true` or `false`.
    Boolean,
    /// A boolean, number, string or binary: anything but nil, containers and extensions.
    Scalar,
    /// An array (1.6 `ARRAY`, the RTREE part type).
    Array,
    /// A map.
    Map,
}

/// Every spelling `_index` parts may use, matched case-insensitively: 1.6's four names, the
/// later ones and `*`.
const FIELD_TYPE_NAMES: [(&str, FieldType); 12] = [
    ("num", FieldType::Unsigned),
    ("str", FieldType::String),
    ("number", FieldType::Number),
    ("array", FieldType::Array),
    ("*", FieldType::Any),
    ("any", FieldType::Any),
    ("unsigned", FieldType::Unsigned),
    ("string", FieldType::String),
    ("integer", FieldType::Integer),
    ("boolean", FieldType::Boolean),
    ("scalar", FieldType::Scalar),
    ("map", FieldType::Map),
];

impl FieldType {
    /// The type an `_index` part names, or `None` for an unknown name.
    pub fn parse(name: &str) -> Option<FieldType> {
        FIELD_TYPE_NAMES
            .iter()
            .find(|(known, _)| known.eq_ignore_ascii_case(name))
            .map(|&(_, field_type)| field_type)
    }

    /// The name 1.6 prints in errors (`expected NUM`). Types 1.6 lacks get their later name
    /// in the same upper case, so that every message reads alike and parses back.
    pub fn name_16(self) -> &'static str {
        match self {
            FieldType::Any => "ANY",
            FieldType::Unsigned => "NUM",
            FieldType::String => "STR",
            FieldType::Number => "NUMBER",
            FieldType::Integer => "INTEGER",
            FieldType::Boolean => "BOOLEAN",
            FieldType::Scalar => "SCALAR",
            FieldType::Array => "ARRAY",
            FieldType::Map => "MAP",
        }
    }

    /// The name 1.7 and later use (`unsigned`, `string`, ...).
    pub fn name(self) -> &'static str {
        match self {
            FieldType::Any => "any",
            FieldType::Unsigned => "unsigned",
            FieldType::String => "string",
            FieldType::Number => "number",
            FieldType::Integer => "integer",
            FieldType::Boolean => "boolean",
            FieldType::Scalar => "scalar",
            FieldType::Array => "array",
            FieldType::Map => "map",
        }
    }

    /// Whether the encoded value at the start of `value` fits this type. A truncated value
    /// fits none. Integers are judged by value, not encoding: an `int64` 5 is unsigned
    /// (Tarantool would reject it, but no client is hurt by our accepting it).
    pub fn matches(self, value: &[u8]) -> bool {
        let Some(value) = decode(value) else {
            return false;
        };
        match self {
            FieldType::Any => true,
            FieldType::Unsigned => matches!(value, Value::Uint(_)),
            FieldType::String => matches!(value, Value::Str(_)),
            FieldType::Number => value.number().is_some(),
            FieldType::Integer => matches!(value, Value::Uint(_) | Value::Int(_)),
            FieldType::Boolean => matches!(value, Value::Bool(_)),
            FieldType::Scalar => value.number().is_some() || value.is_scalar_non_number(),
            FieldType::Array => matches!(value, Value::Array(_)),
            FieldType::Map => matches!(value, Value::Map(_)),
        }
    }
}

// }}}

// {{{ Key definitions

/// One part of a key: which tuple field, and of what type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KeyPart {
    /// The field number, counted from 0.
    pub fieldno: u32,
    /// The type the field must have, which also picks the comparison.
    pub field_type: FieldType,
}

/// The parts of an index key, in comparison order. 1.6 has no nullable parts, so a part is
/// only a field and a type.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct KeyDef {
    /// The parts, most significant first.
    pub parts: Vec<KeyPart>,
}

impl KeyDef {
    /// A key definition over `parts`.
    pub fn new(parts: Vec<KeyPart>) -> KeyDef {
        KeyDef { parts }
    }

    /// The number of parts, as the error messages count them.
    pub fn part_count(&self) -> u32 {
        u32::try_from(self.parts.len()).unwrap_or(u32::MAX)
    }

    /// The type of the only part when the key is one part on field 0, the commonest primary
    /// key, which comparisons serve without walking fields.
    fn only_field_0(&self) -> Option<FieldType> {
        match self.parts[..] {
            [part] if part.fieldno == 0 => Some(part.field_type),
            _ => None,
        }
    }

    /// The field count a tuple needs for this key: the highest field number plus one.
    pub fn field_count_min(&self) -> u32 {
        let highest = self.parts.iter().map(|part| part.fieldno).max();
        highest.map_or(0, |fieldno| fieldno.saturating_add(1))
    }
}

// }}}

// {{{ Reading MessagePack

/// The `N` bytes at `at` in `data`, or `None` past its end.
#[inline]
fn bytes_at<const N: usize>(data: &[u8], at: usize) -> Option<[u8; N]> {
    data.get(at..at.checked_add(N)?)?.try_into().ok()
}

/// The big-endian length of `width` (1, 2 or 4) bytes that follows the marker.
#[inline]
fn length_after_marker(data: &[u8], width: usize) -> Option<usize> {
    let length = match width {
        1 => u32::from(*data.get(1)?),
        2 => u32::from(u16::from_be_bytes(bytes_at(data, 1)?)),
        _ => u32::from_be_bytes(bytes_at(data, 1)?),
    };
    usize::try_from(length).ok()
}

/// The `len` bytes at `at` in `data`, or `None` past its end.
#[inline]
fn slice_at(data: &[u8], at: usize, len: usize) -> Option<&[u8]> {
    data.get(at..at.checked_add(len)?)
}

/// The shape of one encoded value: `head` bytes of marker and lengths, then `body` bytes of
/// payload, then `children` nested values (array items, or map keys and values).
struct Header {
    /// Marker, length and extension type bytes.
    head: usize,
    /// Payload bytes right after the head (string bytes, integer bytes, ...).
    body: usize,
    /// Values nested after the payload.
    children: u64,
}

/// How a marker byte shapes its value, for [`header`]: `head` bytes of marker (and length
/// and extension type), then, when `width` is 0, `fixed` payload bytes or (if `nested`)
/// `fixed` nested values; else a big-endian length of `width` bytes after the marker gives
/// that count (doubled for maps, whose values come in pairs). `head` 0: the reserved marker.
#[derive(Clone, Copy)]
struct Shape {
    head: u8,
    width: u8,
    fixed: u8,
    nested: bool,
    map: bool,
}

/// The shape of every marker byte, as the MessagePack spec lays them out.
const SHAPES: [Shape; 256] = {
    const fn shape(head: u8, width: u8, fixed: u8, nested: bool, map: bool) -> Shape {
        Shape {
            head,
            width,
            fixed,
            nested,
            map,
        }
    }
    let mut table = [shape(0, 0, 0, false, false); 256];
    let mut byte = 0;
    while byte < 256 {
        let b = byte as u8;
        table[byte] = match b {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => shape(1, 0, 0, false, false),
            0x80..=0x8f => shape(1, 0, (b & 0x0f) * 2, true, true),
            0x90..=0x9f => shape(1, 0, b & 0x0f, true, false),
            0xa0..=0xbf => shape(1, 0, b & 0x1f, false, false),
            0xc1 => shape(0, 0, 0, false, false),
            // bin 8/16/32, str 8/16/32: length, then the bytes.
            0xc4 | 0xd9 => shape(2, 1, 0, false, false),
            0xc5 | 0xda => shape(3, 2, 0, false, false),
            0xc6 | 0xdb => shape(5, 4, 0, false, false),
            // ext 8/16/32: length, type byte, then the data.
            0xc7 => shape(3, 1, 0, false, false),
            0xc8 => shape(4, 2, 0, false, false),
            0xc9 => shape(6, 4, 0, false, false),
            0xca => shape(1, 0, 4, false, false),
            0xcb => shape(1, 0, 8, false, false),
            0xcc | 0xd0 => shape(1, 0, 1, false, false),
            0xcd | 0xd1 => shape(1, 0, 2, false, false),
            0xce | 0xd2 => shape(1, 0, 4, false, false),
            0xcf | 0xd3 => shape(1, 0, 8, false, false),
            // fixext 1/2/4/8/16: type byte, then the data.
            0xd4 => shape(2, 0, 1, false, false),
            0xd5 => shape(2, 0, 2, false, false),
            0xd6 => shape(2, 0, 4, false, false),
            0xd7 => shape(2, 0, 8, false, false),
            0xd8 => shape(2, 0, 16, false, false),
            0xdc => shape(3, 2, 0, true, false),
            0xdd => shape(5, 4, 0, true, false),
            0xde => shape(3, 2, 0, true, true),
            0xdf => shape(5, 4, 0, true, true),
        };
        byte += 1;
    }
    table
};

/// The header of the value at the start of `data`, or `None` if `data` is empty, starts with
/// the reserved marker or ends inside the lengths. The payload is not checked. A table
/// lookup: this is under every walk over MessagePack (requests, tuples, keys).
#[inline]
fn header(data: &[u8]) -> Option<Header> {
    let shape = SHAPES[usize::from(*data.first()?)];
    if shape.head == 0 {
        return None;
    }
    let count = match shape.width {
        0 => usize::from(shape.fixed),
        width => {
            let length = length_after_marker(data, usize::from(width))?;
            match shape.map {
                true => length.checked_mul(2)?,
                false => length,
            }
        }
    };
    let head = usize::from(shape.head);
    Some(match shape.nested {
        true => Header {
            head,
            body: 0,
            children: u64::try_from(count).ok()?,
        },
        false => Header {
            head,
            body: count,
            children: 0,
        },
    })
}

/// The length of the one encoded value at the start of `data`, nested values included, or
/// `None` if it is malformed or runs past the end.
///
/// Iterative, with no stack at all: it counts the values still owed, so nesting depth costs
/// nothing, and since each owed value needs a byte, a count beyond the remaining bytes is
/// truncation, caught before any work is spent on it. The loop runs at most once per byte.
pub fn skip_value(data: &[u8]) -> Option<usize> {
    let first = header(data)?;
    let mut pos = first.head.checked_add(first.body)?;
    let mut pending = first.children;
    // Scalars, the common case, need no loop.
    if pending == 0 {
        return (pos <= data.len()).then_some(pos);
    }
    while pending > 0 {
        if pending > data.len().saturating_sub(pos) as u64 {
            return None;
        }
        let header = header(data.get(pos..)?)?;
        pos = pos.checked_add(header.head)?.checked_add(header.body)?;
        pending = pending - 1 + header.children;
    }
    (pos <= data.len()).then_some(pos)
}

/// The item count and header length of the array at the start of `data`, or `None` if
/// `data` does not start with a complete array header.
#[inline]
fn array_header(data: &[u8]) -> Option<(u32, usize)> {
    match Marker::from_u8(*data.first()?) {
        Marker::FixArray(len) => Some((u32::from(len), 1)),
        Marker::Array16 => Some((u32::from(u16::from_be_bytes(bytes_at(data, 1)?)), 3)),
        Marker::Array32 => Some((u32::from_be_bytes(bytes_at(data, 1)?), 5)),
        _ => None,
    }
}

/// The number of fields of `tuple` (or parts of a key), from its array header.
pub fn tuple_field_count(tuple: &[u8]) -> Option<u32> {
    array_header(tuple).map(|(count, _)| count)
}

/// The encoding of field `fieldno` (from 0) of `tuple`, or `None` if the tuple has no such
/// field or is malformed up to and including it.
pub fn tuple_field(tuple: &[u8], fieldno: u32) -> Option<&[u8]> {
    FieldCursor::new(tuple).field(fieldno)
}

/// Reads the fields of one tuple or key, moving forward from the last field sought, so that
/// the parts of a key in field order cost one pass over the tuple.
struct FieldCursor<'a> {
    /// The whole tuple.
    tuple: &'a [u8],
    /// Its field count; 0 when it is not an array.
    count: u32,
    /// Where field 0 starts.
    first: usize,
    /// The field `pos` points to.
    next: u32,
    /// Where field `next` starts.
    pos: usize,
}

impl<'a> FieldCursor<'a> {
    /// A cursor at field 0 of `tuple`; one with no fields if `tuple` is not an array.
    #[inline]
    fn new(tuple: &'a [u8]) -> FieldCursor<'a> {
        let (count, first) = array_header(tuple).unwrap_or((0, tuple.len()));
        FieldCursor {
            tuple,
            count,
            first,
            next: 0,
            pos: first,
        }
    }

    /// The bytes from field `fieldno` to the end of the tuple, or `None` if there is no such
    /// field or a field before it is malformed. The field itself is not measured: comparing
    /// or hashing reads only its first value, and the next seek skips it.
    #[inline]
    fn seek(&mut self, fieldno: u32) -> Option<&'a [u8]> {
        if fieldno >= self.count {
            return None;
        }
        if fieldno < self.next {
            self.next = 0;
            self.pos = self.first;
        }
        while self.next < fieldno {
            self.pos += skip_value(self.tuple.get(self.pos..)?)?;
            self.next += 1;
        }
        self.tuple.get(self.pos..)
    }

    /// The encoding of field `fieldno`, measured, or `None` if it is missing or malformed.
    fn field(&mut self, fieldno: u32) -> Option<&'a [u8]> {
        let rest = self.seek(fieldno)?;
        rest.get(..skip_value(rest)?)
    }
}

/// The bytes from field 0 of `tuple` on, or `None` if it has no fields.
#[inline]
fn first_field(tuple: &[u8]) -> Option<&[u8]> {
    match array_header(tuple)? {
        (0, _) => None,
        (_, head) => tuple.get(head..),
    }
}

/// One decoded value. Integers are normalised by value (`Uint` for every non-negative one,
/// whatever its encoding), so that equal numbers decode alike.
#[derive(Clone, Copy, Debug)]
enum Value<'a> {
    /// `nil`.
    Nil,
    /// `true` or `false`.
    Bool(bool),
    /// A non-negative integer, from an unsigned or a signed encoding.
    Uint(u64),
    /// A negative integer.
    Int(i64),
    /// A float or a double, widened to a double.
    Float(f64),
    /// The bytes of a string.
    Str(&'a [u8]),
    /// The bytes of a binary.
    Bin(&'a [u8]),
    /// The whole encoding of an extension.
    Ext(&'a [u8]),
    /// The whole encoding of an array.
    Array(&'a [u8]),
    /// The whole encoding of a map.
    Map(&'a [u8]),
}

/// A number, in the two forms exact comparison needs: every integer fits an `i128`.
#[derive(Clone, Copy, Debug)]
enum Number {
    /// An integer of either sign.
    Int(i128),
    /// A double (floats are widened exactly).
    Float(f64),
}

impl Value<'_> {
    /// The value as a number, if it is one.
    fn number(self) -> Option<Number> {
        match self {
            Value::Uint(value) => Some(Number::Int(i128::from(value))),
            Value::Int(value) => Some(Number::Int(i128::from(value))),
            Value::Float(value) => Some(Number::Float(value)),
            _ => None,
        }
    }

    /// Whether the value is one of the scalars other than numbers (what SCALAR accepts).
    fn is_scalar_non_number(self) -> bool {
        matches!(self, Value::Bool(_) | Value::Str(_) | Value::Bin(_))
    }

    /// The rank of the value's class in the order across types (see the module doc).
    fn class(self) -> u8 {
        match self {
            Value::Nil => 0,
            Value::Bool(_) => 1,
            Value::Uint(_) | Value::Int(_) | Value::Float(_) => 2,
            Value::Str(_) => 3,
            Value::Bin(_) => 4,
            Value::Ext(_) => 5,
            Value::Array(_) => 6,
            Value::Map(_) => 7,
        }
    }
}

/// A signed integer as a `Value`: non-negative ones become `Uint`.
fn signed(value: i64) -> Value<'static> {
    match u64::try_from(value) {
        Ok(unsigned) => Value::Uint(unsigned),
        Err(_) => Value::Int(value),
    }
}

/// A float widened to a double. A NaN keeps only its quiet bit (the one thing the order
/// looks at), so the widening does not depend on how the hardware treats signaling NaNs.
fn widen(value: f32) -> f64 {
    const F32_QUIET: u32 = 1 << 22;
    if !value.is_nan() {
        return f64::from(value);
    }
    if value.to_bits() & F32_QUIET != 0 {
        f64::NAN
    } else {
        f64::from_bits(0x7FF0_0000_0000_0001)
    }
}

/// The value encoded at the start of `data`; bytes after it are ignored. `None` if it is
/// malformed or truncated.
#[inline]
fn decode(data: &[u8]) -> Option<Value<'_>> {
    let value = match Marker::from_u8(*data.first()?) {
        Marker::FixPos(value) => Value::Uint(u64::from(value)),
        Marker::FixNeg(value) => Value::Int(i64::from(value)),
        Marker::Null => Value::Nil,
        Marker::False => Value::Bool(false),
        Marker::True => Value::Bool(true),
        Marker::U8 => Value::Uint(u64::from(*data.get(1)?)),
        Marker::U16 => Value::Uint(u64::from(u16::from_be_bytes(bytes_at(data, 1)?))),
        Marker::U32 => Value::Uint(u64::from(u32::from_be_bytes(bytes_at(data, 1)?))),
        Marker::U64 => Value::Uint(u64::from_be_bytes(bytes_at(data, 1)?)),
        Marker::I8 => signed(i64::from(i8::from_be_bytes(bytes_at(data, 1)?))),
        Marker::I16 => signed(i64::from(i16::from_be_bytes(bytes_at(data, 1)?))),
        Marker::I32 => signed(i64::from(i32::from_be_bytes(bytes_at(data, 1)?))),
        Marker::I64 => signed(i64::from_be_bytes(bytes_at(data, 1)?)),
        Marker::F32 => Value::Float(widen(f32::from_be_bytes(bytes_at(data, 1)?))),
        Marker::F64 => Value::Float(f64::from_be_bytes(bytes_at(data, 1)?)),
        Marker::FixStr(len) => Value::Str(slice_at(data, 1, usize::from(len))?),
        Marker::Str8 => Value::Str(slice_at(data, 2, length_after_marker(data, 1)?)?),
        Marker::Str16 => Value::Str(slice_at(data, 3, length_after_marker(data, 2)?)?),
        Marker::Str32 => Value::Str(slice_at(data, 5, length_after_marker(data, 4)?)?),
        Marker::Bin8 => Value::Bin(slice_at(data, 2, length_after_marker(data, 1)?)?),
        Marker::Bin16 => Value::Bin(slice_at(data, 3, length_after_marker(data, 2)?)?),
        Marker::Bin32 => Value::Bin(slice_at(data, 5, length_after_marker(data, 4)?)?),
        Marker::FixArray(_) | Marker::Array16 | Marker::Array32 => {
            Value::Array(data.get(..skip_value(data)?)?)
        }
        Marker::FixMap(_) | Marker::Map16 | Marker::Map32 => {
            Value::Map(data.get(..skip_value(data)?)?)
        }
        marker if super::mp::is_ext(marker) => Value::Ext(data.get(..skip_value(data)?)?),
        _ => return None,
    };
    Some(value)
}

// }}}

// {{{ Comparison

/// Compares the values encoded at the start of `a` and `b` (bytes after each are ignored)
/// as fields of `field_type`. Every type uses the one order of the module doc, which is
/// what Tarantool's per-type comparators agree on; the type only picks a fast path. A
/// malformed value sorts below every value, as a missing field does.
#[inline]
pub fn compare_fields(a: &[u8], b: &[u8], field_type: FieldType) -> Ordering {
    match field_type {
        FieldType::Unsigned => {
            if let (Some(a), Some(b)) = (read_uint(a), read_uint(b)) {
                return a.cmp(&b);
            }
        }
        FieldType::String => {
            if let (Some(a), Some(b)) = (read_str(a), read_str(b)) {
                return a.cmp(b);
            }
        }
        _ => {}
    }
    compare_encoded(a, b)
}

/// The general path of `compare_fields`, kept out of line so that the fast paths inline.
#[inline(never)]
fn compare_encoded(a: &[u8], b: &[u8]) -> Ordering {
    compare_decoded(decode(a), decode(b))
}

/// The unsigned integer at the start of `data`, if it has an unsigned encoding: the fast
/// path of the commonest key type, short enough to inline where `decode` is not.
#[inline(always)]
fn read_uint(data: &[u8]) -> Option<u64> {
    match Marker::from_u8(*data.first()?) {
        Marker::FixPos(value) => Some(u64::from(value)),
        Marker::U8 => Some(u64::from(*data.get(1)?)),
        Marker::U16 => Some(u64::from(u16::from_be_bytes(bytes_at(data, 1)?))),
        Marker::U32 => Some(u64::from(u32::from_be_bytes(bytes_at(data, 1)?))),
        Marker::U64 => Some(u64::from_be_bytes(bytes_at(data, 1)?)),
        _ => None,
    }
}

/// The bytes of the string at the start of `data`, if it is one (see `read_uint`).
#[inline(always)]
fn read_str(data: &[u8]) -> Option<&[u8]> {
    match Marker::from_u8(*data.first()?) {
        Marker::FixStr(len) => slice_at(data, 1, usize::from(len)),
        Marker::Str8 => slice_at(data, 2, length_after_marker(data, 1)?),
        Marker::Str16 => slice_at(data, 3, length_after_marker(data, 2)?),
        Marker::Str32 => slice_at(data, 5, length_after_marker(data, 4)?),
        _ => None,
    }
}

/// Compares two values that may be missing or malformed; those sort below every value.
fn compare_decoded(a: Option<Value<'_>>, b: Option<Value<'_>>) -> Ordering {
    match (a, b) {
        (Some(a), Some(b)) => compare_values(a, b),
        (a, b) => a.is_some().cmp(&b.is_some()),
    }
}

/// Compares two possibly missing fields.
#[inline]
fn compare_optional(a: Option<&[u8]>, b: Option<&[u8]>, field_type: FieldType) -> Ordering {
    match (a, b) {
        (Some(a), Some(b)) => compare_fields(a, b, field_type),
        (a, b) => a.is_some().cmp(&b.is_some()),
    }
}

/// The order across and within types (see the module doc).
fn compare_values(a: Value<'_>, b: Value<'_>) -> Ordering {
    let order = a.class().cmp(&b.class());
    if order != Ordering::Equal {
        return order;
    }
    match (a, b) {
        (Value::Bool(a), Value::Bool(b)) => a.cmp(&b),
        // Bytewise, then by length: exactly memcmp over the shorter, then the lengths.
        (Value::Str(a), Value::Str(b))
        | (Value::Bin(a), Value::Bin(b))
        | (Value::Ext(a), Value::Ext(b))
        | (Value::Array(a), Value::Array(b))
        | (Value::Map(a), Value::Map(b)) => a.cmp(b),
        _ => match (a.number(), b.number()) {
            (Some(a), Some(b)) => compare_numbers(a, b),
            _ => Ordering::Equal, // Both nil.
        },
    }
}

/// Exact numeric order: no integer is rounded to a double on the way.
fn compare_numbers(a: Number, b: Number) -> Ordering {
    match (a, b) {
        (Number::Int(a), Number::Int(b)) => a.cmp(&b),
        (Number::Float(a), Number::Int(b)) => compare_float_int(a, b),
        (Number::Int(a), Number::Float(b)) => compare_float_int(b, a).reverse(),
        (Number::Float(a), Number::Float(b)) => compare_floats(a, b),
    }
}

/// 2^64 and -2^63 as doubles: every msgpack integer lies in [-2^63, 2^64).
const TWO_POW_64: f64 = 18_446_744_073_709_551_616.0;
/// See `TWO_POW_64`.
const MINUS_TWO_POW_63: f64 = -9_223_372_036_854_775_808.0;

/// A double against an integer, exactly. Inside the integer range truncation and the
/// conversion to `i128` are exact, and the fraction breaks ties; NaN is below every number.
fn compare_float_int(float: f64, int: i128) -> Ordering {
    if float.is_nan() {
        return Ordering::Less;
    }
    if float >= TWO_POW_64 {
        return Ordering::Greater;
    }
    if float < MINUS_TWO_POW_63 {
        return Ordering::Less;
    }
    let whole = float.trunc();
    let fraction = float - whole;
    (whole as i128)
        .cmp(&int)
        .then_with(|| fraction.partial_cmp(&0.0).unwrap_or(Ordering::Equal))
}

/// Whether a NaN is quiet: the top fraction bit.
fn is_quiet_nan(value: f64) -> bool {
    value.to_bits() & (1 << 51) != 0
}

/// Two doubles: NaN below every number, signaling NaN below quiet NaN (as Tarantool 2.x
/// orders them), `-0.0` equal to `0.0`.
fn compare_floats(a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (false, false) => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
        (true, true) => is_quiet_nan(a).cmp(&is_quiet_nan(b)),
        (a_is_nan, b_is_nan) => b_is_nan.cmp(&a_is_nan),
    }
}

/// Compares two tuples by the parts of `def`. A missing field sorts below every value.
pub fn compare_tuples(a: &[u8], b: &[u8], def: &KeyDef) -> Ordering {
    if let Some(field_type) = def.only_field_0() {
        return compare_optional(first_field(a), first_field(b), field_type);
    }
    let mut fields_a = FieldCursor::new(a);
    let mut fields_b = FieldCursor::new(b);
    for part in &def.parts {
        let field_a = fields_a.seek(part.fieldno);
        let field_b = fields_b.seek(part.fieldno);
        let order = compare_optional(field_a, field_b, part.field_type);
        if order != Ordering::Equal {
            return order;
        }
    }
    Ordering::Equal
}

/// Compares a tuple with a key of `def`. The key may have fewer parts than `def` (a partial
/// key): only the parts it has are compared, so equal on that prefix is `Equal`. Key parts
/// beyond `def` are ignored.
pub fn compare_tuple_with_key(tuple: &[u8], key: &[u8], def: &KeyDef) -> Ordering {
    let mut key_parts = FieldCursor::new(key);
    if let Some(field_type) = def.only_field_0() {
        if key_parts.count == 0 {
            return Ordering::Equal;
        }
        return compare_optional(first_field(tuple), first_field(key), field_type);
    }
    let mut fields = FieldCursor::new(tuple);
    let part_count = key_parts.count;
    for (partno, part) in (0..part_count).zip(&def.parts) {
        let field = fields.seek(part.fieldno);
        let key_part = key_parts.seek(partno);
        let order = compare_optional(field, key_part, part.field_type);
        if order != Ordering::Equal {
            return order;
        }
    }
    Ordering::Equal
}

// }}}

// {{{ Hashing

/// A multiply-rotate accumulator over 64-bit words (FxHash's step), finished with
/// MurmurHash3's `fmix64` so that every input bit reaches the 32 bits a HASH index uses.
struct Hasher(u64);

/// What a run of hashed words stands for, mixed in first so that values of different
/// classes (or forms) do not collide by construction.
#[derive(Clone, Copy)]
enum Tag {
    /// A missing or malformed field.
    Missing,
    /// `nil`.
    Nil,
    /// A boolean.
    Bool,
    /// An integer, or a double holding one.
    Int,
    /// A double holding no integer.
    Float,
    /// A NaN.
    Nan,
    /// A string.
    Str,
    /// A binary.
    Bin,
    /// An extension, array or map, hashed by its encoding.
    Encoded,
}

impl Hasher {
    /// FxHash's multiplier (2^64 / golden ratio, odd).
    const MULTIPLIER: u64 = 0x517c_c1b7_2722_0a95;

    /// Mixes one word in.
    fn word(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(Self::MULTIPLIER);
    }

    /// Mixes a tag in.
    fn tag(&mut self, tag: Tag) {
        self.word(tag as u64);
    }

    /// Mixes a byte string in, length included so that a prefix hashes differently.
    fn bytes(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        let mut word = [0u8; 8];
        for chunk in &mut chunks {
            word.copy_from_slice(chunk);
            self.word(u64::from_le_bytes(word));
        }
        let tail = chunks.remainder();
        word = [0u8; 8];
        word[..tail.len()].copy_from_slice(tail);
        self.word(u64::from_le_bytes(word));
        self.word(bytes.len() as u64);
    }

    /// Mixes in an integer, whatever encoding or form it came in.
    fn integer(&mut self, value: i128) {
        self.tag(Tag::Int);
        self.word(value as u64);
        self.word((value >> 64) as u64);
    }

    /// Mixes in a possibly missing value so that values `compare_values` calls equal hash
    /// alike: integers by value, doubles holding an integer as that integer, NaNs by their
    /// quiet bit alone, other doubles by their bits.
    fn value(&mut self, value: Option<Value<'_>>) {
        match value {
            None => self.tag(Tag::Missing),
            Some(Value::Nil) => self.tag(Tag::Nil),
            Some(Value::Bool(flag)) => {
                self.tag(Tag::Bool);
                self.word(u64::from(flag));
            }
            Some(Value::Uint(value)) => self.integer(i128::from(value)),
            Some(Value::Int(value)) => self.integer(i128::from(value)),
            Some(Value::Float(value)) => self.float(value),
            Some(Value::Str(bytes)) => {
                self.tag(Tag::Str);
                self.bytes(bytes);
            }
            Some(Value::Bin(bytes)) => {
                self.tag(Tag::Bin);
                self.bytes(bytes);
            }
            Some(Value::Ext(bytes) | Value::Array(bytes) | Value::Map(bytes)) => {
                self.tag(Tag::Encoded);
                self.bytes(bytes);
            }
        }
    }

    /// Mixes in a double (see `value`).
    fn float(&mut self, value: f64) {
        if value.is_nan() {
            self.tag(Tag::Nan);
            self.word(u64::from(is_quiet_nan(value)));
        } else if value.trunc() == value && (MINUS_TWO_POW_63..TWO_POW_64).contains(&value) {
            // Exact: an integral double in the integer range converts without loss, and
            // -0.0 lands on 0 like +0.0.
            self.integer(value as i128);
        } else {
            self.tag(Tag::Float);
            self.word(value.to_bits());
        }
    }

    /// The 32-bit hash.
    fn finish(self) -> u32 {
        let mut hash = self.0;
        hash ^= hash >> 33;
        hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
        hash ^= hash >> 33;
        hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        hash ^= hash >> 33;
        (hash ^ (hash >> 32)) as u32
    }
}

/// The hash of the key of `tuple` under `def`, for HASH indexes. It equals `hash_key` of
/// any full key that `compare_tuple_with_key` calls `Equal` (so `5`, `5.0` and an `int8` 5
/// hash alike: Tarantool's HASH finds `5.0` under `5` too).
pub fn hash_tuple(tuple: &[u8], def: &KeyDef) -> u32 {
    let mut hasher = Hasher(0);
    let mut fields = FieldCursor::new(tuple);
    for part in &def.parts {
        hasher.value(fields.seek(part.fieldno).and_then(decode));
    }
    hasher.finish()
}

/// The hash of `key`, a key of `def` (see `hash_tuple`). Only the parts the key has are
/// hashed: HASH lookups use full keys, which `validate_key` enforces.
pub fn hash_key(key: &[u8], def: &KeyDef) -> u32 {
    let mut hasher = Hasher(0);
    let mut key_parts = FieldCursor::new(key);
    for partno in (0..key_parts.count).take(def.parts.len()) {
        hasher.value(key_parts.seek(partno).and_then(decode));
    }
    hasher.finish()
}

// }}}

// {{{ Hints

// A hint is a u64 summary of a tuple's first key part that orders like the part itself,
// non-strictly: `compare_fields(a, b) == Less` implies `hint(a) <= hint(b)` (so equal values
// hint alike, and unequal hints decide the order). A TREE index stores one beside each tuple
// and compares hints first, loading the tuple only on a tie: memtx's `memtx_tree_data`.
//
// Each type maps the values of its own class and saturates the rest: whatever sorts below
// the class (missing and malformed fields, nil, ...) hints `HINT_MIN`, whatever sorts above
// it `HINT_MAX`. Ties stay correct, only slower, so a type with no useful map hints one
// constant and every comparison falls through to the full one.
//
//   unsigned   the value; floats truncated (NaN and negatives 0, 2^64 and up saturate)
//   integer    the value + 2^63, saturating; floats truncated (NaN lowest)
//   number     the value as a double (rounding to nearest keeps the order against exact
//              int-double comparison), its bits flipped to order as unsigned; NaNs lowest
//   string     the first 8 bytes, big-endian, zero-padded (memcmp then length)
//   others     HINT_MIN, always

/// The hint of what sorts below a type's values, missing and malformed fields included.
const HINT_MIN: u64 = 0;
/// The hint of what sorts above a type's values (and of the type's own largest ones).
const HINT_MAX: u64 = u64::MAX;

/// The class rank of numbers (see `Value::class`).
const CLASS_NUMBER: u8 = 2;
/// The class rank of strings (see `Value::class`).
const CLASS_STRING: u8 = 3;

/// The hint of `tuple`'s first key part under `def`, for TREE entries (see the section
/// comment). Pair it with `hint_of_key` of a search key; equal hints say nothing.
#[inline]
pub fn hint_of_tuple(tuple: &[u8], def: &KeyDef) -> u64 {
    let Some(part) = def.parts.first() else {
        return HINT_MIN;
    };
    let field = if part.fieldno == 0 {
        first_field(tuple)
    } else {
        FieldCursor::new(tuple).seek(part.fieldno)
    };
    field.map_or(HINT_MIN, |field| hint_of_field(field, part.field_type))
}

/// The hint of a search key's first part under `def`, comparable with `hint_of_tuple`, or
/// `None` for a key with no parts, which matches every tuple (so no hint may rule any out).
#[inline]
pub fn hint_of_key(key: &[u8], def: &KeyDef) -> Option<u64> {
    let part = def.parts.first()?;
    Some(hint_of_field(first_field(key)?, part.field_type))
}

/// Whether, under `def`, equal hints of `probe` (a tuple, or a key) and of a stored tuple
/// mean equal keys: with one `unsigned` part, a stored tuple's field is a non-negative
/// integer (validated on insert) whose hint is its value, so a probe whose field is one
/// too ties only with its equal.
#[inline]
pub fn hint_is_exact(probe: &[u8], def: &KeyDef) -> bool {
    let [part] = def.parts.as_slice() else {
        return false;
    };
    if part.field_type != FieldType::Unsigned {
        return false;
    }
    let field = if part.fieldno == 0 {
        first_field(probe)
    } else {
        FieldCursor::new(probe).seek(part.fieldno)
    };
    field.is_some_and(|field| {
        read_uint(field).is_some() || matches!(decode(field), Some(Value::Uint(_)))
    })
}

/// The hint of the value at the start of `field` as a part of `field_type`.
#[inline]
fn hint_of_field(field: &[u8], field_type: FieldType) -> u64 {
    match field_type {
        FieldType::Unsigned => match read_uint(field) {
            Some(value) => value,
            None => hint_of_other(decode(field), CLASS_NUMBER, hint_unsigned),
        },
        FieldType::String => match read_str(field) {
            Some(bytes) => hint_string(bytes),
            None => hint_of_other(decode(field), CLASS_STRING, |_| HINT_MIN),
        },
        FieldType::Integer => hint_of_other(decode(field), CLASS_NUMBER, hint_integer),
        FieldType::Number => hint_of_other(decode(field), CLASS_NUMBER, hint_number),
        FieldType::Any
        | FieldType::Boolean
        | FieldType::Scalar
        | FieldType::Array
        | FieldType::Map => HINT_MIN,
    }
}

/// The general path of `hint_of_field`: `own` maps the values of class `class`, the rest
/// saturate. Kept out of line like `compare_encoded`.
#[inline(never)]
fn hint_of_other(value: Option<Value<'_>>, class: u8, own: fn(Value<'_>) -> u64) -> u64 {
    let Some(value) = value else {
        return HINT_MIN;
    };
    match value.class().cmp(&class) {
        Ordering::Less => HINT_MIN,
        Ordering::Equal => own(value),
        Ordering::Greater => HINT_MAX,
    }
}

/// An `unsigned` part's hint of a number. A float truncates toward zero, which keeps its
/// order against integers; the cast saturates and maps NaN to 0.
fn hint_unsigned(value: Value<'_>) -> u64 {
    match value {
        Value::Uint(value) => value,
        Value::Float(value) => value as u64,
        _ => HINT_MIN, // A negative integer.
    }
}

/// An `integer` part's hint of a number: the value offset by 2^63, saturating at the top
/// (unsigned values from 2^63 - 1 share `HINT_MAX`). Floats truncate, saturating both ways.
fn hint_integer(value: Value<'_>) -> u64 {
    const OFFSET: u64 = 1 << 63;
    match value {
        Value::Uint(value) => value.saturating_add(OFFSET),
        Value::Int(value) => value as u64 ^ OFFSET,
        Value::Float(value) if value.is_nan() => HINT_MIN,
        Value::Float(value) => value as i64 as u64 ^ OFFSET,
        _ => HINT_MIN,
    }
}

/// A `number` part's hint of a number: the nearest double (rounding is monotonic, and a
/// double is its own nearest, so an integer never crosses a double it compares below), with
/// its bits mapped to order as unsigned. NaNs take the two hints below `-inf`'s.
fn hint_number(value: Value<'_>) -> u64 {
    let value = match value {
        Value::Uint(value) => value as f64,
        Value::Int(value) => value as f64,
        Value::Float(value) => value,
        _ => return HINT_MIN,
    };
    if value.is_nan() {
        return u64::from(is_quiet_nan(value));
    }
    // `-0.0 == 0.0`: both take `0.0`'s bits.
    let bits = if value == 0.0 { 0 } else { value.to_bits() };
    if bits >> 63 == 0 {
        bits | 1 << 63
    } else {
        !bits
    }
}

/// A `string` part's hint: the first 8 bytes as a big-endian number, zero-padded. A shorter
/// string pads with the least byte, so a prefix never hints above what it prefixes.
fn hint_string(bytes: &[u8]) -> u64 {
    let mut word = [0u8; 8];
    let len = bytes.len().min(8);
    word[..len].copy_from_slice(&bytes[..len]);
    u64::from_be_bytes(word)
}

// }}}

// {{{ Validation

/// `Invalid MsgPack - <what>`: bytes that do not even parse.
fn invalid_msgpack(what: &str) -> BoxError {
    BoxError::new(ErrCode::INVALID_MSGPACK, &[&what])
}

/// The field count and header length of `data`, which must be an array: a value of another
/// type gives ER_TUPLE_NOT_ARRAY, a truncated header ER_INVALID_MSGPACK.
fn open_array(data: &[u8], what: &str) -> Result<(u32, usize), BoxError> {
    match data.first().map(|&first| Marker::from_u8(first)) {
        Some(Marker::FixArray(_) | Marker::Array16 | Marker::Array32) => {
            array_header(data).ok_or_else(|| invalid_msgpack(what))
        }
        Some(_) => Err(BoxError::new(ErrCode::TUPLE_NOT_ARRAY, &[])),
        None => Err(invalid_msgpack(what)),
    }
}

/// Checks a search key against `def` the way 1.6's `key_validate` does, and returns its
/// part count. The checks, in order: the key is an array (ER_TUPLE_NOT_ARRAY), it has at
/// most as many parts as `def` (ER_KEY_PART_COUNT), it has all of them unless
/// `allow_partial` (ER_EXACT_MATCH), and each part has its type (ER_KEY_PART_TYPE, part
/// counted from 0). The caller sets `allow_partial` as 1.6 does: for TREE indexes, for
/// iterator ALL, and for an empty key with GT on HASH.
pub fn validate_key(key: &[u8], def: &KeyDef, allow_partial: bool) -> Result<u32, BoxError> {
    let (part_count, head) = open_array(key, "key")?;
    validate_parts(key, head, part_count, def, allow_partial)
}

/// Checks the full key of a unique lookup (get, update, delete) the way 1.6's
/// `primary_key_validate` does: exactly as many parts as `def` (ER_EXACT_MATCH, too many
/// parts included), each of its type.
pub fn validate_exact_key(key: &[u8], def: &KeyDef) -> Result<(), BoxError> {
    let (part_count, head) = open_array(key, "key")?;
    let expected = def.part_count();
    if part_count != expected {
        return Err(BoxError::new(
            ErrCode::EXACT_MATCH,
            &[&expected, &part_count],
        ));
    }
    validate_parts(key, head, part_count, def, false).map(|_| ())
}

/// The part count and part type checks of [`validate_key`] after the array header.
fn validate_parts(
    key: &[u8],
    head: usize,
    part_count: u32,
    def: &KeyDef,
    allow_partial: bool,
) -> Result<u32, BoxError> {
    let expected = def.part_count();
    if part_count > expected {
        return Err(BoxError::new(
            ErrCode::KEY_PART_COUNT,
            &[&expected, &part_count],
        ));
    }
    if !allow_partial && part_count < expected {
        return Err(BoxError::new(
            ErrCode::EXACT_MATCH,
            &[&expected, &part_count],
        ));
    }
    let mut pos = head;
    for (partno, part) in (0..part_count).zip(&def.parts) {
        let rest = key.get(pos..).unwrap_or_default();
        let len = skip_value(rest).ok_or_else(|| invalid_msgpack("key"))?;
        if !part.field_type.matches(rest) {
            let expected_type = part.field_type.name_16();
            return Err(BoxError::new(
                ErrCode::KEY_PART_TYPE,
                &[&partno, &expected_type],
            ));
        }
        pos += len;
    }
    Ok(part_count)
}

/// Checks a tuple about to enter a space with indexes `defs`, in 1.6's order (`tuple_new`,
/// then `space_validate_tuple`): the tuple is an array (ER_TUPLE_NOT_ARRAY) of well-formed
/// MessagePack and nothing after it (ER_INVALID_MSGPACK), it has every field an index needs
/// (ER_INDEX_FIELD_COUNT), each indexed field has its type, checked in field order
/// (ER_FIELD_TYPE, field counted from 1), and its field count is the space's `field_count`
/// unless that is 0 (ER_SPACE_FIELD_COUNT, naming `space_name`).
pub fn validate_tuple(
    tuple: &[u8],
    defs: &[&KeyDef],
    field_count: u32,
    space_name: &str,
) -> Result<(), BoxError> {
    TupleFormat::new(defs).validate(tuple, field_count, space_name)
}

/// What [`validate_tuple`] checks for a set of index definitions, worked out once (as
/// memtx's `tuple_format`): a space keeps its format and rebuilds it when its indexes
/// change, so a write checks its tuple without going through every index's parts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TupleFormat {
    /// The fields an index needs: the tuple has at least this many.
    required: u32,
    /// Every part's (field, type), by field number; the parts of one field in the order of
    /// the definitions, so the first mismatch is the one 1.6 reports.
    checks: Vec<(u32, FieldType)>,
}

impl TupleFormat {
    pub fn new(defs: &[&KeyDef]) -> TupleFormat {
        let required = defs.iter().map(|def| def.field_count_min()).max();
        let mut checks: Vec<(u32, FieldType)> = defs
            .iter()
            .flat_map(|def| def.parts.iter())
            .map(|part| (part.fieldno, part.field_type))
            .collect();
        // Stable: the parts of one field keep their order.
        checks.sort_by_key(|&(fieldno, _)| fieldno);
        checks.dedup();
        TupleFormat {
            required: required.unwrap_or(0),
            checks,
        }
    }

    /// Checks `tuple` as [`validate_tuple`] describes.
    pub fn validate(
        &self,
        tuple: &[u8],
        field_count: u32,
        space_name: &str,
    ) -> Result<(), BoxError> {
        let (count, head) = open_array(tuple, "tuple")?;
        // One pass: each field is type-checked where its check is, then skipped. The
        // errors keep their order: malformed MessagePack, too few fields, then the
        // first mismatch by field number.
        let mut pos = head;
        let mut checks = self.checks.iter().peekable();
        let mut mismatch = None;
        for fieldno in 0..count {
            let rest = tuple.get(pos..).ok_or_else(|| invalid_msgpack("tuple"))?;
            while let Some(&&(checked, field_type)) = checks.peek()
                && checked == fieldno
            {
                if mismatch.is_none() && !field_type.matches(rest) {
                    mismatch = Some((fieldno, field_type));
                }
                checks.next();
            }
            pos += skip_value(rest).ok_or_else(|| invalid_msgpack("tuple"))?;
        }
        if pos != tuple.len() {
            return Err(invalid_msgpack("tuple"));
        }
        if count < self.required {
            return Err(BoxError::new(
                ErrCode::INDEX_FIELD_COUNT,
                &[&count, &self.required],
            ));
        }
        if let Some((fieldno, field_type)) = mismatch {
            let field = u64::from(fieldno) + 1;
            let expected = field_type.name_16();
            return Err(BoxError::new(ErrCode::FIELD_TYPE, &[&field, &expected]));
        }
        if field_count != 0 && count != field_count {
            let args: [&dyn std::fmt::Display; 3] = [&count, &space_name, &field_count];
            return Err(BoxError::new(ErrCode::SPACE_FIELD_COUNT, &args));
        }
        Ok(())
    }
}

// }}}

// {{{ Keys from tuples, and definitions from definitions

/// The key of `tuple` under `def`, as a MessagePack array of its fields' encodings: how a
/// DELETE or UPDATE through a secondary index is rewritten to the primary key, and what
/// error messages print. A field the tuple lacks (it was validated, so only on a bug)
/// becomes nil, keeping the part count.
pub fn extract_key(tuple: &[u8], def: &KeyDef) -> Vec<u8> {
    let mut key = Vec::with_capacity(5 + 9 * def.parts.len());
    let mut fields = FieldCursor::new(tuple);
    // Writing into a Vec cannot fail.
    let _ = rmp::encode::write_array_len(&mut key, def.part_count());
    for part in &def.parts {
        match fields.field(part.fieldno) {
            Some(field) => key.extend_from_slice(field),
            None => {
                let _ = rmp::encode::write_nil(&mut key);
            }
        }
    }
    key
}

/// The order of a non-unique index (Tarantool's `cmp_def`): its own parts, then the parts
/// of the primary key on fields it does not already cover. Every entry is then unique, as
/// the primary key is.
pub fn merge_with_primary(secondary: &KeyDef, primary: &KeyDef) -> KeyDef {
    let mut parts = secondary.parts.clone();
    for part in &primary.parts {
        if !secondary
            .parts
            .iter()
            .any(|own| own.fieldno == part.fieldno)
        {
            parts.push(*part);
        }
    }
    KeyDef { parts }
}

// }}}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_are_exact_for_integers_of_one_unsigned_part() {
        let unsigned = |fieldno| KeyPart {
            fieldno,
            field_type: FieldType::Unsigned,
        };
        let one = KeyDef::new(vec![unsigned(0)]);
        assert!(hint_is_exact(&[0x91, 0x05], &one));
        assert!(hint_is_exact(
            &[0x92, 0xcf, 0, 0, 0, 0, 0, 0, 1, 0, 0xa1, b'x'],
            &one
        ));
        assert!(
            hint_is_exact(&[0x91, 0xd0, 0x05], &one),
            "a non-negative int8"
        );
        assert!(!hint_is_exact(&[0x91, 0xd0, 0xfb], &one), "a negative int8");
        assert!(
            !hint_is_exact(&[0x91, 0xca, 0x40, 0xa0, 0, 0], &one),
            "a float"
        );
        assert!(!hint_is_exact(&[0x91, 0xa1, b'5'], &one));
        assert!(!hint_is_exact(&[0x90], &one), "no field");
        let second = KeyDef::new(vec![unsigned(1)]);
        assert!(hint_is_exact(&[0x92, 0xa1, b'x', 0x07], &second));
        let two = KeyDef::new(vec![unsigned(0), unsigned(1)]);
        assert!(
            !hint_is_exact(&[0x92, 0x01, 0x02], &two),
            "the hint covers one part"
        );
        let string = KeyDef::new(vec![KeyPart {
            fieldno: 0,
            field_type: FieldType::String,
        }]);
        assert!(!hint_is_exact(&[0x91, 0xa1, b'x'], &string));
    }
    use crate::r#box::TestRng;

    // {{{ Helpers

    /// The smallest encoding of an unsigned integer.
    fn uint(value: u64) -> Vec<u8> {
        let mut out = Vec::new();
        rmp::encode::write_uint(&mut out, value).unwrap();
        out
    }

    /// The smallest encoding of a signed integer.
    fn sint(value: i64) -> Vec<u8> {
        let mut out = Vec::new();
        rmp::encode::write_sint(&mut out, value).unwrap();
        out
    }

    fn double(value: f64) -> Vec<u8> {
        let mut out = Vec::new();
        rmp::encode::write_f64(&mut out, value).unwrap();
        out
    }

    fn float(value: f32) -> Vec<u8> {
        let mut out = Vec::new();
        rmp::encode::write_f32(&mut out, value).unwrap();
        out
    }

    fn string(value: &str) -> Vec<u8> {
        let mut out = Vec::new();
        rmp::encode::write_str(&mut out, value).unwrap();
        out
    }

    fn binary(value: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        rmp::encode::write_bin(&mut out, value).unwrap();
        out
    }

    fn boolean(value: bool) -> Vec<u8> {
        vec![if value { 0xc3 } else { 0xc2 }]
    }

    fn nil() -> Vec<u8> {
        vec![0xc0]
    }

    fn ext(typeid: i8, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        rmp::encode::write_ext_meta(&mut out, data.len() as u32, typeid).unwrap();
        out.extend_from_slice(data);
        out
    }

    /// An array of already encoded items.
    fn array(items: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        rmp::encode::write_array_len(&mut out, items.len() as u32).unwrap();
        for item in items {
            out.extend_from_slice(item);
        }
        out
    }

    /// A map of already encoded keys and values.
    fn map(pairs: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
        let mut out = Vec::new();
        rmp::encode::write_map_len(&mut out, pairs.len() as u32).unwrap();
        for (key, value) in pairs {
            out.extend_from_slice(key);
            out.extend_from_slice(value);
        }
        out
    }

    fn def(parts: &[(u32, FieldType)]) -> KeyDef {
        let parts = parts.iter().map(|&(fieldno, field_type)| KeyPart {
            fieldno,
            field_type,
        });
        KeyDef::new(parts.collect())
    }

    /// The integer 5 in every MessagePack width, signed and unsigned.
    fn five_as_integers() -> Vec<Vec<u8>> {
        vec![
            vec![0x05],
            vec![0xcc, 5],
            vec![0xcd, 0, 5],
            vec![0xce, 0, 0, 0, 5],
            vec![0xcf, 0, 0, 0, 0, 0, 0, 0, 5],
            vec![0xd0, 5],
            vec![0xd1, 0, 5],
            vec![0xd2, 0, 0, 0, 5],
            vec![0xd3, 0, 0, 0, 0, 0, 0, 0, 5],
        ]
    }

    /// The number 5 in every encoding, floats included.
    fn five_everywhere() -> Vec<Vec<u8>> {
        let mut all = five_as_integers();
        all.push(float(5.0));
        all.push(double(5.0));
        all
    }

    /// "ab" as fixstr, str8, str16 and str32.
    fn ab_everywhere() -> Vec<Vec<u8>> {
        vec![
            vec![0xa2, b'a', b'b'],
            vec![0xd9, 2, b'a', b'b'],
            vec![0xda, 0, 2, b'a', b'b'],
            vec![0xdb, 0, 0, 0, 2, b'a', b'b'],
        ]
    }

    const ALL_TYPES: [FieldType; 9] = [
        FieldType::Any,
        FieldType::Unsigned,
        FieldType::String,
        FieldType::Number,
        FieldType::Integer,
        FieldType::Boolean,
        FieldType::Scalar,
        FieldType::Array,
        FieldType::Map,
    ];

    /// A signaling NaN (quiet bit clear, some other fraction bit set).
    fn signaling_nan() -> f64 {
        f64::from_bits(0x7FF0_0000_0000_0001)
    }

    // }}}

    // {{{ Field types

    #[test]
    fn field_types_parse_every_spelling() {
        let cases = [
            ("NUM", FieldType::Unsigned),
            ("num", FieldType::Unsigned),
            ("Num", FieldType::Unsigned),
            ("STR", FieldType::String),
            ("str", FieldType::String),
            ("NUMBER", FieldType::Number),
            ("number", FieldType::Number),
            ("ARRAY", FieldType::Array),
            ("*", FieldType::Any),
            ("any", FieldType::Any),
            ("unsigned", FieldType::Unsigned),
            ("UNSIGNED", FieldType::Unsigned),
            ("string", FieldType::String),
            ("integer", FieldType::Integer),
            ("boolean", FieldType::Boolean),
            ("scalar", FieldType::Scalar),
            ("array", FieldType::Array),
            ("map", FieldType::Map),
        ];
        for (name, expected) in cases {
            assert_eq!(FieldType::parse(name), Some(expected), "{name}");
        }
        for unknown in [
            "", "int", "uint", "NUM64", "strin", "num ", "double", "unknown",
        ] {
            assert_eq!(FieldType::parse(unknown), None, "{unknown:?}");
        }
    }

    #[test]
    fn field_type_names_round_trip() {
        for field_type in ALL_TYPES {
            assert_eq!(FieldType::parse(field_type.name()), Some(field_type));
            assert_eq!(FieldType::parse(field_type.name_16()), Some(field_type));
        }
        assert_eq!(FieldType::Unsigned.name_16(), "NUM");
        assert_eq!(FieldType::String.name_16(), "STR");
        assert_eq!(FieldType::Number.name_16(), "NUMBER");
        assert_eq!(FieldType::Array.name_16(), "ARRAY");
        assert_eq!(FieldType::Unsigned.name(), "unsigned");
        assert_eq!(FieldType::String.name(), "string");
    }

    #[test]
    fn field_types_match_their_values() {
        use FieldType::*;
        let cases: Vec<(Vec<u8>, &[FieldType])> = vec![
            (uint(0), &[Any, Unsigned, Number, Integer, Scalar]),
            (uint(u64::MAX), &[Any, Unsigned, Number, Integer, Scalar]),
            (vec![0xd0, 5], &[Any, Unsigned, Number, Integer, Scalar]),
            (sint(-1), &[Any, Number, Integer, Scalar]),
            (sint(i64::MIN), &[Any, Number, Integer, Scalar]),
            (double(1.5), &[Any, Number, Scalar]),
            (double(5.0), &[Any, Number, Scalar]),
            (float(1.5), &[Any, Number, Scalar]),
            (string("x"), &[Any, String, Scalar]),
            (binary(b"x"), &[Any, Scalar]),
            (boolean(true), &[Any, Boolean, Scalar]),
            (nil(), &[Any]),
            (array(&[uint(1)]), &[Any, Array]),
            (map(&[(uint(1), uint(2))]), &[Any, Map]),
            (ext(1, &[1, 2, 3, 4]), &[Any]),
        ];
        for (value, fits) in &cases {
            for field_type in ALL_TYPES {
                let expected = fits.contains(&field_type);
                assert_eq!(
                    field_type.matches(value),
                    expected,
                    "{value:?} {field_type:?}"
                );
            }
        }
        for truncated in [
            vec![],
            vec![0xcd, 0],
            vec![0xa3, b'a'],
            vec![0x92, 0x01],
            vec![0xc1],
        ] {
            for field_type in ALL_TYPES {
                assert!(
                    !field_type.matches(&truncated),
                    "{truncated:?} {field_type:?}"
                );
            }
        }
    }

    // }}}

    // {{{ Reading MessagePack

    /// One encoding of every marker family.
    fn every_kind_of_value() -> Vec<Vec<u8>> {
        let long = "x".repeat(300);
        let longer = "y".repeat(70_000);
        let mut all = five_everywhere();
        all.extend(ab_everywhere());
        all.extend([
            nil(),
            boolean(false),
            boolean(true),
            sint(-1),
            sint(-100),
            sint(-1000),
            sint(-100_000),
            sint(i64::MIN),
            uint(u64::MAX),
            string(""),
            string(&long),
            string(&longer),
            binary(b""),
            binary(&[0xff; 300]),
            binary(&[7; 70_000]),
            ext(1, &[1]),
            ext(2, &[1, 2]),
            ext(3, &[1, 2, 3, 4]),
            ext(4, &[0; 8]),
            ext(5, &[0; 16]),
            ext(6, &[1, 2, 3]),
            ext(7, &[0; 300]),
            ext(-8, &[0; 70_000]),
            array(&[]),
            array(&[uint(1), string("a"), array(&[nil()])]),
            array(&vec![uint(1); 20]),
            array(&vec![uint(2); 70_000]),
            map(&[]),
            map(&[(string("a"), array(&[uint(1)])), (uint(2), map(&[]))]),
            map(&vec![(uint(1), uint(2)); 20]),
        ]);
        all
    }

    /// [`header`] as rmp's marker names describe each value, to hold the table against.
    fn header_by_marker(data: &[u8]) -> Option<(usize, usize, u64)> {
        let length = |width: usize| length_after_marker(data, width);
        let (head, body, children) = match Marker::from_u8(*data.first()?) {
            Marker::FixPos(_) | Marker::FixNeg(_) | Marker::Null | Marker::True | Marker::False => {
                (1, 0, 0)
            }
            Marker::U8 | Marker::I8 => (1, 1, 0),
            Marker::U16 | Marker::I16 => (1, 2, 0),
            Marker::U32 | Marker::I32 | Marker::F32 => (1, 4, 0),
            Marker::U64 | Marker::I64 | Marker::F64 => (1, 8, 0),
            Marker::FixStr(len) => (1, usize::from(len), 0),
            Marker::Str8 | Marker::Bin8 => (2, length(1)?, 0),
            Marker::Str16 | Marker::Bin16 => (3, length(2)?, 0),
            Marker::Str32 | Marker::Bin32 => (5, length(4)?, 0),
            Marker::FixArray(len) => (1, 0, u64::from(len)),
            Marker::Array16 => (3, 0, length(2)? as u64),
            Marker::Array32 => (5, 0, length(4)? as u64),
            Marker::FixMap(len) => (1, 0, 2 * u64::from(len)),
            Marker::Map16 => (3, 0, 2 * length(2)? as u64),
            Marker::Map32 => (5, 0, 2 * length(4)? as u64),
            Marker::FixExt1 => (2, 1, 0),
            Marker::FixExt2 => (2, 2, 0),
            Marker::FixExt4 => (2, 4, 0),
            Marker::FixExt8 => (2, 8, 0),
            Marker::FixExt16 => (2, 16, 0),
            Marker::Ext8 => (3, length(1)?, 0),
            Marker::Ext16 => (4, length(2)?, 0),
            Marker::Ext32 => (6, length(4)?, 0),
            Marker::Reserved => return None,
        };
        Some((head, body, children))
    }

    #[test]
    fn header_table_agrees_with_the_marker_names() {
        for first in 0..=255u8 {
            for tail in [&[][..], &[0x01], &[0x01, 0x02], &[0xff, 0xff, 0xff, 0xff]] {
                let mut data = vec![first];
                data.extend_from_slice(tail);
                let got = header(&data).map(|h| (h.head, h.body, h.children));
                assert_eq!(got, header_by_marker(&data), "{data:02x?}");
            }
        }
    }

    #[test]
    fn skip_value_measures_every_kind_of_value() {
        for value in every_kind_of_value() {
            assert_eq!(skip_value(&value), Some(value.len()), "{:?}", &value[..1]);
            let mut padded = value.clone();
            padded.extend_from_slice(&[0xc1, 0xff, 0x00]);
            assert_eq!(skip_value(&padded), Some(value.len()));
            for cut in 0..value.len().min(400) {
                assert_eq!(
                    skip_value(&value[..cut]),
                    None,
                    "{:?} cut at {cut}",
                    &value[..1]
                );
            }
            assert_eq!(skip_value(&value[..value.len() - 1]), None);
        }
        assert_eq!(skip_value(&[]), None);
        assert_eq!(skip_value(&[0xc1]), None);
        assert_eq!(skip_value(&[0x91, 0xc1]), None);
    }

    #[test]
    fn skip_value_survives_deep_nesting_and_big_claims() {
        let mut deep = vec![0x91; 1_000_000];
        deep.push(0xc0);
        assert_eq!(skip_value(&deep), Some(deep.len()));
        deep.pop();
        assert_eq!(skip_value(&deep), None);
        let mut maps = [0x81, 0xc0].repeat(300_000);
        maps.push(0xc0);
        assert_eq!(skip_value(&maps), Some(maps.len()));
        // Claims of billions of items or bytes behind a few bytes of input.
        assert_eq!(skip_value(&[0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0]), None);
        assert_eq!(
            skip_value(&[0xdf, 0xff, 0xff, 0xff, 0xff, 0xc0, 0xc0]),
            None
        );
        assert_eq!(skip_value(&[0xdb, 0xff, 0xff, 0xff, 0xff, b'a']), None);
        assert_eq!(skip_value(&[0xc9, 0xff, 0xff, 0xff, 0xff, 1, 0]), None);
        let wide = [0xdd, 0xff, 0xff, 0xff, 0xff].repeat(1000);
        assert_eq!(skip_value(&wide), None);
    }

    #[test]
    fn tuple_fields_are_found_by_number() {
        let tuple = array(&[uint(1), string("two"), array(&[uint(3), uint(4)]), nil()]);
        assert_eq!(tuple_field_count(&tuple), Some(4));
        assert_eq!(tuple_field(&tuple, 0), Some(&uint(1)[..]));
        assert_eq!(tuple_field(&tuple, 1), Some(&string("two")[..]));
        assert_eq!(
            tuple_field(&tuple, 2),
            Some(&array(&[uint(3), uint(4)])[..])
        );
        assert_eq!(tuple_field(&tuple, 3), Some(&nil()[..]));
        assert_eq!(tuple_field(&tuple, 4), None);
        assert_eq!(tuple_field(&tuple, u32::MAX), None);
        assert_eq!(tuple_field_count(&array(&[])), Some(0));
        assert_eq!(tuple_field(&array(&[]), 0), None);
        assert_eq!(tuple_field_count(&uint(1)), None);
        assert_eq!(tuple_field(&uint(1), 0), None);
        assert_eq!(tuple_field_count(&[0xdc, 0]), None);
        // A header claiming more fields than there are: the missing ones are not found.
        let short = [0x93, 0x01, 0x02];
        assert_eq!(tuple_field_count(&short), Some(3));
        assert_eq!(tuple_field(&short, 1), Some(&[0x02][..]));
        assert_eq!(tuple_field(&short, 2), None);
    }

    #[test]
    fn field_cursor_goes_back_when_asked() {
        let tuple = array(&[uint(10), uint(11), uint(12), uint(13)]);
        let mut fields = FieldCursor::new(&tuple);
        assert_eq!(fields.field(2), Some(&[12][..]));
        assert_eq!(fields.seek(2), Some(&[12, 13][..]));
        assert_eq!(fields.field(3), Some(&[13][..]));
        assert_eq!(fields.field(0), Some(&[10][..]));
        assert_eq!(fields.field(0), Some(&[10][..]));
        assert_eq!(fields.seek(1), Some(&[11, 12, 13][..]));
        assert_eq!(fields.field(4), None);
        assert_eq!(fields.field(3), Some(&[13][..]));
        let broken = [0x94, 0x01, 0xc1, 0x03, 0x04];
        let mut fields = FieldCursor::new(&broken);
        assert_eq!(fields.field(1), None);
        assert_eq!(fields.seek(1), Some(&[0xc1, 0x03, 0x04][..]));
        assert_eq!(fields.seek(2), None);
        assert_eq!(fields.field(0), Some(&[0x01][..]));
    }

    // }}}

    // {{{ Comparison

    fn assert_order(a: &[u8], b: &[u8], field_type: FieldType, expected: Ordering) {
        assert_eq!(compare_fields(a, b, field_type), expected, "{a:?} vs {b:?}");
        let reverse = expected.reverse();
        assert_eq!(compare_fields(b, a, field_type), reverse, "{b:?} vs {a:?}");
    }

    #[test]
    fn every_encoding_of_five_is_equal() {
        let integers = five_as_integers();
        for a in &integers {
            for b in &integers {
                for field_type in [FieldType::Unsigned, FieldType::Integer] {
                    assert_order(a, b, field_type, Ordering::Equal);
                }
            }
        }
        let numbers = five_everywhere();
        for a in &numbers {
            for b in &numbers {
                for field_type in [FieldType::Number, FieldType::Scalar, FieldType::Any] {
                    assert_order(a, b, field_type, Ordering::Equal);
                }
            }
            assert_order(a, &uint(4), FieldType::Number, Ordering::Greater);
            assert_order(a, &uint(6), FieldType::Number, Ordering::Less);
            assert_order(
                a,
                &double(5.000_000_000_000_001),
                FieldType::Number,
                Ordering::Less,
            );
            assert_order(
                a,
                &double(4.999_999_999_999_999),
                FieldType::Number,
                Ordering::Greater,
            );
        }
    }

    #[test]
    fn big_integers_compare_exactly_with_doubles() {
        use FieldType::Number;
        let two_pow_53 = 1u64 << 53;
        let below_two_pow_64 = 18_446_744_073_709_549_568.0; // 2^64 - 2048
        let cases = [
            (uint(u64::MAX), double(TWO_POW_64), Ordering::Less),
            (uint(u64::MAX), double(below_two_pow_64), Ordering::Greater),
            (
                uint(u64::MAX - 2047),
                double(below_two_pow_64),
                Ordering::Equal,
            ),
            (
                uint(u64::MAX - 2048),
                double(below_two_pow_64),
                Ordering::Less,
            ),
            (uint(two_pow_53), double(two_pow_53 as f64), Ordering::Equal),
            (
                uint(two_pow_53 + 1),
                double(two_pow_53 as f64),
                Ordering::Greater,
            ),
            (
                uint(two_pow_53 - 1),
                double(two_pow_53 as f64),
                Ordering::Less,
            ),
            (uint(u64::MAX), double(1e300), Ordering::Less),
            (uint(u64::MAX), double(f64::INFINITY), Ordering::Less),
            (uint(0), double(f64::NEG_INFINITY), Ordering::Greater),
            (sint(i64::MIN), double(MINUS_TWO_POW_63), Ordering::Equal),
            (
                sint(i64::MIN + 1),
                double(MINUS_TWO_POW_63),
                Ordering::Greater,
            ),
            (
                sint(i64::MIN),
                double(MINUS_TWO_POW_63 - 2048.0),
                Ordering::Greater,
            ),
            (sint(i64::MIN), double(-1e300), Ordering::Greater),
            (sint(i64::MIN), double(f64::NEG_INFINITY), Ordering::Greater),
            (sint(-1), double(-0.5), Ordering::Less),
            (uint(0), double(-0.5), Ordering::Greater),
            (uint(0), double(0.5), Ordering::Less),
            (uint(0), double(-0.0), Ordering::Equal),
            (uint(1), float(0.999_999_9), Ordering::Greater),
            (sint(-3), float(-2.5), Ordering::Less),
            (uint(u64::MAX), float(f32::MAX), Ordering::Less),
        ];
        for (int, float, expected) in &cases {
            assert_order(int, float, Number, *expected);
            assert_order(int, float, FieldType::Scalar, *expected);
        }
        assert_order(
            &uint(u64::MAX),
            &uint(u64::MAX - 1),
            Number,
            Ordering::Greater,
        );
        assert_order(
            &double(TWO_POW_64),
            &float(1.8446744e19),
            Number,
            Ordering::Equal,
        );
    }

    #[test]
    fn negative_integers_order_below_unsigned_ones() {
        let ascending = [
            sint(i64::MIN),
            sint(-2_147_483_649),
            vec![0xd2, 0x80, 0, 0, 0], // int32 min
            sint(-129),
            vec![0xd0, 0x80],       // -128 as int8
            vec![0xd1, 0xff, 0xc0], // -64 as int16
            sint(-32),
            vec![0xd3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], // -1 as int64
            uint(0),
            uint(1),
            uint(255),
            vec![0xd1, 0x01, 0x00], // 256 as int16
            uint(i64::MAX as u64),
            uint(i64::MAX as u64 + 1),
            uint(u64::MAX),
        ];
        for field_type in [FieldType::Integer, FieldType::Number, FieldType::Scalar] {
            for (i, a) in ascending.iter().enumerate() {
                for (j, b) in ascending.iter().enumerate() {
                    assert_order(a, b, field_type, i.cmp(&j));
                }
            }
        }
        assert_order(
            &sint(-1),
            &[0xd0, 0xff],
            FieldType::Integer,
            Ordering::Equal,
        );
    }

    #[test]
    fn nan_orders_below_every_number() {
        use FieldType::Number;
        let quiet = double(f64::NAN);
        let signaling = double(signaling_nan());
        assert_order(&quiet, &double(f64::NEG_INFINITY), Number, Ordering::Less);
        assert_order(&quiet, &sint(i64::MIN), Number, Ordering::Less);
        assert_order(&quiet, &uint(0), Number, Ordering::Less);
        assert_order(
            &signaling,
            &double(f64::NEG_INFINITY),
            Number,
            Ordering::Less,
        );
        assert_order(&quiet, &quiet, Number, Ordering::Equal);
        assert_order(&quiet, &double(-f64::NAN), Number, Ordering::Equal);
        assert_order(&signaling, &quiet, Number, Ordering::Less);
        assert_order(&float(f32::NAN), &quiet, Number, Ordering::Equal);
        let float_signaling = vec![0xca, 0x7f, 0x80, 0x00, 0x01];
        assert_order(&float_signaling, &signaling, Number, Ordering::Equal);
        assert_order(&float_signaling, &quiet, Number, Ordering::Less);
        assert_order(&double(-0.0), &double(0.0), Number, Ordering::Equal);
        assert_order(&float(-0.0), &uint(0), Number, Ordering::Equal);
    }

    #[test]
    fn strings_compare_bytewise_then_by_length() {
        let ascending = [
            "", "A", "B", "a", "ab", "abc", "abd", "abd\0", "b", "\u{e9}", "\u{ff}",
        ];
        for field_type in [FieldType::String, FieldType::Scalar, FieldType::Any] {
            for (i, a) in ascending.iter().enumerate() {
                for (j, b) in ascending.iter().enumerate() {
                    assert_order(&string(a), &string(b), field_type, i.cmp(&j));
                }
            }
        }
        for a in ab_everywhere() {
            for b in ab_everywhere() {
                assert_order(&a, &b, FieldType::String, Ordering::Equal);
            }
            assert_order(&a, &string("abc"), FieldType::String, Ordering::Less);
            assert_order(&a, &string("a"), FieldType::String, Ordering::Greater);
        }
        let long_a = "a".repeat(1000);
        let long_b = format!("{}b", "a".repeat(999));
        assert_order(
            &string(&long_a),
            &string(&long_b),
            FieldType::String,
            Ordering::Less,
        );
    }

    /// Values in ascending scalar order (nil and containers included, as `Any` sees them).
    fn ascending_values() -> Vec<Vec<u8>> {
        vec![
            nil(),
            boolean(false),
            boolean(true),
            double(signaling_nan()),
            double(f64::NAN),
            double(f64::NEG_INFINITY),
            sint(i64::MIN),
            double(-1.5),
            sint(-1),
            uint(0),
            double(0.5),
            uint(1),
            uint(u64::MAX),
            double(f64::INFINITY),
            string(""),
            string("A"),
            string("a"),
            string("ab"),
            binary(b""),
            binary(b"\x00"),
            binary(b"a"),
            ext(1, &[0]),
            ext(1, &[1]),
            array(&[]),
            array(&[uint(1)]),
            array(&[uint(2)]),
            map(&[]),
            map(&[(uint(1), uint(1))]),
        ]
    }

    #[test]
    fn scalars_order_across_types() {
        let values = ascending_values();
        for field_type in [FieldType::Scalar, FieldType::Any] {
            for (i, a) in values.iter().enumerate() {
                for (j, b) in values.iter().enumerate() {
                    assert_order(a, b, field_type, i.cmp(&j));
                }
            }
        }
        assert_order(
            &boolean(false),
            &boolean(true),
            FieldType::Boolean,
            Ordering::Less,
        );
    }

    #[test]
    fn malformed_values_sort_below_everything() {
        for field_type in ALL_TYPES {
            assert_order(&[], &nil(), field_type, Ordering::Less);
            assert_order(&[0xc1], &uint(0), field_type, Ordering::Less);
            assert_order(&[0xcd, 1], &uint(0), field_type, Ordering::Less);
            assert_order(&[], &[0xc1], field_type, Ordering::Equal);
        }
    }

    #[test]
    fn tuples_compare_part_by_part() {
        let by_name_then_id = def(&[(1, FieldType::String), (0, FieldType::Unsigned)]);
        let a = array(&[uint(2), string("ann")]);
        let b = array(&[uint(1), string("bob")]);
        let c = array(&[uint(3), string("ann"), nil()]);
        assert_eq!(compare_tuples(&a, &b, &by_name_then_id), Ordering::Less);
        assert_eq!(compare_tuples(&a, &c, &by_name_then_id), Ordering::Less);
        assert_eq!(compare_tuples(&c, &a, &by_name_then_id), Ordering::Greater);
        assert_eq!(compare_tuples(&a, &a, &by_name_then_id), Ordering::Equal);
        let wide = array(&[uint(2), vec![0xd9, 3, b'a', b'n', b'n'], double(1.0)]);
        assert_eq!(compare_tuples(&a, &wide, &by_name_then_id), Ordering::Equal);
        // A missing field sorts below any value, nil included.
        let third = def(&[(2, FieldType::Any)]);
        assert_eq!(compare_tuples(&a, &c, &third), Ordering::Less);
        assert_eq!(compare_tuples(&a, &b, &third), Ordering::Equal);
        assert_eq!(
            compare_tuples(&a, &array(&[]), &def(&[(0, FieldType::Unsigned)])),
            Ordering::Greater
        );
    }

    #[test]
    fn single_part_fast_path_agrees_with_the_general_path() {
        let fast = def(&[(0, FieldType::Unsigned)]);
        let general = def(&[(0, FieldType::Unsigned), (9, FieldType::Any)]);
        let fast_string = def(&[(0, FieldType::String)]);
        let general_string = def(&[(0, FieldType::String), (9, FieldType::Any)]);
        let values = ascending_values();
        let tuples: Vec<Vec<u8>> = values
            .iter()
            .map(|v| array(std::slice::from_ref(v)))
            .chain([array(&[])])
            .collect();
        for a in &tuples {
            for b in &tuples {
                let expected = compare_tuples(a, b, &general);
                assert_eq!(compare_tuples(a, b, &fast), expected);
                assert_eq!(
                    compare_tuple_with_key(a, b, &fast),
                    compare_tuple_with_key(a, b, &general)
                );
                let expected = compare_tuples(a, b, &general_string);
                assert_eq!(compare_tuples(a, b, &fast_string), expected);
            }
        }
    }

    #[test]
    fn partial_keys_compare_only_their_parts() {
        let by_name_then_id = def(&[(1, FieldType::String), (0, FieldType::Unsigned)]);
        let tuple = array(&[uint(7), string("bob"), string("extra")]);
        let cases = [
            (array(&[]), Ordering::Equal),
            (array(&[string("bob")]), Ordering::Equal),
            (array(&[string("ann")]), Ordering::Greater),
            (array(&[string("bobby")]), Ordering::Less),
            (array(&[string("bob"), uint(7)]), Ordering::Equal),
            (
                array(&[string("bob"), vec![0xd3, 0, 0, 0, 0, 0, 0, 0, 7]]),
                Ordering::Equal,
            ),
            (array(&[string("bob"), uint(6)]), Ordering::Greater),
            (array(&[string("bob"), uint(8)]), Ordering::Less),
            // Parts beyond the definition are ignored.
            (
                array(&[string("bob"), uint(7), string("zzz")]),
                Ordering::Equal,
            ),
        ];
        for (key, expected) in &cases {
            assert_eq!(
                compare_tuple_with_key(&tuple, key, &by_name_then_id),
                *expected,
                "{key:?}"
            );
        }
        let primary = def(&[(0, FieldType::Unsigned)]);
        assert_eq!(
            compare_tuple_with_key(&tuple, &array(&[]), &primary),
            Ordering::Equal
        );
        assert_eq!(
            compare_tuple_with_key(&tuple, &array(&[uint(8)]), &primary),
            Ordering::Less
        );
        assert_eq!(
            compare_tuple_with_key(&tuple, &array(&[double(6.5)]), &primary),
            Ordering::Greater
        );
        assert_eq!(
            compare_tuple_with_key(&array(&[]), &array(&[uint(0)]), &primary),
            Ordering::Less
        );
    }

    #[test]
    fn random_values_sort_into_a_total_order() {
        let mut random = TestRng::new(0x1234_5678_9abc_def1);
        let pool = ascending_values();
        let mut values: Vec<Vec<u8>> = Vec::new();
        for _ in 0..400 {
            let value = match random.below(8) {
                0 => uint(random.next() >> random.below(64)),
                1 => sint(-((random.next() >> (1 + random.below(63))) as i64) - 1),
                2 => double(f64::from_bits(random.next())),
                3 => double((random.below(2001) as f64 - 1000.0) / 4.0),
                4 => float((random.below(2001) as f32 - 1000.0) / 4.0),
                5 => string(&format!("{}", random.below(300))),
                6 => five_everywhere()[random.below(11) as usize].clone(),
                _ => pool[random.below(pool.len() as u64) as usize].clone(),
            };
            values.push(value);
        }
        // The standard sort panics on a comparator that is not a total order.
        values.sort_by(|a, b| compare_fields(a, b, FieldType::Scalar));
        for (i, a) in values.iter().enumerate() {
            for b in &values[i..] {
                assert_ne!(compare_fields(a, b, FieldType::Scalar), Ordering::Greater);
                assert_ne!(compare_fields(b, a, FieldType::Scalar), Ordering::Less);
            }
        }
    }

    // }}}

    // {{{ Hashing

    #[test]
    fn equal_values_hash_alike() {
        let mut values = ascending_values();
        values.extend(five_everywhere());
        values.extend(ab_everywhere());
        values.extend([
            double(-0.0),
            float(0.0),
            double(f64::NAN),
            double(-f64::NAN),
            float(f32::NAN),
            vec![0xca, 0x7f, 0x80, 0x00, 0x01],
            double(TWO_POW_64),
            uint(u64::MAX),
            double(MINUS_TWO_POW_63),
            sint(i64::MIN),
            float(1.5),
            double(1.5),
        ]);
        let one_part = def(&[(0, FieldType::Scalar)]);
        for a in &values {
            let tuple_a = array(std::slice::from_ref(a));
            assert_eq!(
                hash_tuple(&tuple_a, &one_part),
                hash_key(&tuple_a, &one_part)
            );
            for b in &values {
                if compare_fields(a, b, FieldType::Scalar) == Ordering::Equal {
                    let key_b = array(std::slice::from_ref(b));
                    assert_eq!(
                        hash_tuple(&tuple_a, &one_part),
                        hash_key(&key_b, &one_part),
                        "{a:?} {b:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn tuple_and_key_hashes_agree_on_multipart_keys() {
        let by_name_then_id = def(&[(2, FieldType::String), (0, FieldType::Number)]);
        let tuple = array(&[uint(5), nil(), string("ab"), boolean(true)]);
        for five in five_everywhere() {
            for ab in ab_everywhere() {
                let key = array(&[ab.clone(), five.clone()]);
                assert_eq!(
                    compare_tuple_with_key(&tuple, &key, &by_name_then_id),
                    Ordering::Equal
                );
                assert_eq!(
                    hash_tuple(&tuple, &by_name_then_id),
                    hash_key(&key, &by_name_then_id)
                );
            }
        }
        let other = array(&[string("ab"), uint(6)]);
        assert_ne!(
            hash_tuple(&tuple, &by_name_then_id),
            hash_key(&other, &by_name_then_id)
        );
        let swapped = array(&[uint(5), string("ab")]);
        assert_ne!(
            hash_key(&swapped, &by_name_then_id),
            hash_tuple(&tuple, &by_name_then_id)
        );
    }

    #[test]
    fn hashes_spread_over_the_low_bits() {
        let one_part = def(&[(0, FieldType::Unsigned)]);
        let mut buckets = vec![0u32; 1024];
        for value in 0..100_000u64 {
            let hash = hash_key(&array(&[uint(value)]), &one_part);
            buckets[(hash & 1023) as usize] += 1;
        }
        // About 98 per bucket; a poor mix leaves buckets empty or piles them up.
        assert!(
            buckets.iter().all(|&count| (50..=150).contains(&count)),
            "{buckets:?}"
        );
        let mut hashes: Vec<u32> = (0..10_000)
            .map(|n| hash_key(&array(&[string(&format!("key{n}"))]), &one_part))
            .collect();
        hashes.sort_unstable();
        hashes.dedup();
        assert!(hashes.len() > 9_980, "{} distinct", hashes.len());
        let empty = hash_key(&array(&[string("")]), &one_part);
        assert_ne!(empty, hash_key(&array(&[binary(b"")]), &one_part));
        assert_ne!(empty, hash_key(&array(&[string("\0")]), &one_part));
        assert_ne!(
            hash_key(&array(&[nil()]), &one_part),
            hash_key(&array(&[]), &one_part)
        );
    }

    // }}}

    // {{{ Hints

    /// Edge values of every class a hint maps or saturates: integer and double boundaries,
    /// both zeros, NaNs, doubles beside integers they round to, strings sharing 8-byte
    /// prefixes or holding zero bytes, malformed fields.
    fn hint_edge_values() -> Vec<Vec<u8>> {
        let mut all = ascending_values();
        all.extend(five_everywhere());
        all.extend(ab_everywhere());
        for value in [
            0,
            1,
            2,
            (1 << 53) + 1,
            (1 << 63) - 1,
            1 << 63,
            u64::MAX - 1,
            u64::MAX,
        ] {
            all.push(uint(value));
            all.push(double(value as f64));
        }
        for value in [-1, -2, -(1 << 53) - 1, i64::MIN + 1, i64::MIN] {
            all.push(sint(value));
            all.push(double(value as f64));
        }
        for value in [
            -0.0,
            0.0,
            -0.5,
            0.5,
            1.5,
            f64::MIN_POSITIVE,
            -f64::MIN_POSITIVE,
            f64::MAX,
            f64::MIN,
            18_446_744_073_709_549_568.0, // The largest double below 2^64.
            TWO_POW_64,
            MINUS_TWO_POW_63,
            -9_223_372_036_854_777_856.0, // The double below -2^63.
            f64::from_bits(0xFFF8_0000_0000_0000), // A NaN with the sign bit set.
        ] {
            all.push(double(value));
        }
        all.push(float(-0.0));
        all.push(float(f32::NAN));
        all.push(vec![0xca, 0x7f, 0x80, 0x00, 0x01]); // A signaling float NaN.
        for text in [
            "",
            "\0",
            "\0\0",
            "a",
            "a\0",
            "abcdefg",
            "abcdefg\0",
            "abcdefgh",
            "abcdefgh\0",
            "abcdefgha",
            "abcdefghb",
            "abcdefgi",
            "\u{7f}",
            "\u{ff}",
            "zzzzzzzzzzzz",
        ] {
            all.push(string(text));
        }
        all.push(vec![0xa2, 0xff, 0xff]); // Bytes that are not UTF-8.
        all.extend([vec![], vec![0xc1], vec![0xcd, 1], vec![0xa3, b'a']]);
        all
    }

    /// A random value, weighted toward the places a hint could go wrong.
    fn hint_random_value(random: &mut TestRng) -> Vec<u8> {
        const BYTES: [u8; 5] = [0, 1, b'a', b'b', 0xff];
        match random.below(9) {
            0 => uint(random.next() >> random.below(64)),
            1 => sint(-((random.next() >> (1 + random.below(63))) as i64) - 1),
            2 => double(f64::from_bits(random.next())),
            3 => {
                // An integer and a double a step beside it, around where doubles go sparse.
                let value = 1u64 << (50 + random.below(14)) as u32;
                let value = value.wrapping_add(random.below(5)).wrapping_sub(2);
                match random.below(3) {
                    0 => uint(value),
                    1 => sint(-(value as i64 & i64::MAX)),
                    _ => double(value as f64 + (random.below(3) as f64 - 1.0) * 0.5),
                }
            }
            4 => double((random.below(2001) as f64 - 1000.0) / 4.0),
            5 => float((random.below(2001) as f32 - 1000.0) / 4.0),
            6 | 7 => {
                let len = random.below(12) as usize;
                let bytes: Vec<u8> = (0..len).map(|_| BYTES[random.below(5) as usize]).collect();
                let mut out = Vec::new();
                rmp::encode::write_str_len(&mut out, len as u32).unwrap();
                out.extend_from_slice(&bytes);
                out
            }
            _ => {
                let pool = hint_edge_values();
                pool[random.below(pool.len() as u64) as usize].clone()
            }
        }
    }

    /// Checks that hints under `field_type` order `values` as `compare_fields` does,
    /// non-strictly, through every entry point: a one-part tuple, a part on a later field,
    /// and a key.
    fn assert_hints_keep_order(values: &mut [Vec<u8>], field_type: FieldType) {
        values.sort_by(|a, b| compare_fields(a, b, field_type));
        let first = def(&[(0, field_type)]);
        let second = def(&[(1, field_type), (0, FieldType::Unsigned)]);
        let hints: Vec<u64> = values
            .iter()
            .map(|value| {
                let tuple = array(std::slice::from_ref(value));
                let hint = hint_of_tuple(&tuple, &first);
                let later = array(&[uint(7), value.clone()]);
                assert_eq!(hint_of_tuple(&later, &second), hint, "{value:02x?}");
                assert_eq!(hint_of_key(&tuple, &first), Some(hint), "{value:02x?}");
                hint
            })
            .collect();
        for (pair, hint) in values.windows(2).zip(hints.windows(2)) {
            let order = compare_fields(&pair[0], &pair[1], field_type);
            let context = format!("{field_type:?} {:02x?} {:02x?}", pair[0], pair[1]);
            assert_ne!(order, Ordering::Greater, "{context}");
            assert!(
                hint[0] <= hint[1],
                "{context}: {:x} > {:x}",
                hint[0],
                hint[1]
            );
            if order == Ordering::Equal {
                assert_eq!(hint[0], hint[1], "{context}");
            }
        }
    }

    #[test]
    fn hints_keep_the_order_of_edge_values() {
        for field_type in ALL_TYPES {
            assert_hints_keep_order(&mut hint_edge_values(), field_type);
        }
    }

    #[test]
    fn hints_keep_the_order_of_random_values() {
        let mut random = TestRng::new(0x4a17_5eed);
        for round in 0..40 {
            let mut values: Vec<Vec<u8>> =
                (0..500).map(|_| hint_random_value(&mut random)).collect();
            let field_type = ALL_TYPES[round % ALL_TYPES.len()];
            assert_hints_keep_order(&mut values, field_type);
            // Pairwise as well, over a part of them: the chain check relies on transitivity.
            for a in &values[..60] {
                for b in &values[..60] {
                    let (ha, hb) = (
                        hint_of_tuple(&array(std::slice::from_ref(a)), &def(&[(0, field_type)])),
                        hint_of_tuple(&array(std::slice::from_ref(b)), &def(&[(0, field_type)])),
                    );
                    if ha < hb {
                        assert_eq!(compare_fields(a, b, field_type), Ordering::Less);
                    }
                }
            }
        }
    }

    #[test]
    fn hints_tell_apart_what_they_can() {
        let unsigned = def(&[(0, FieldType::Unsigned)]);
        let hint = |value: Vec<u8>, def: &KeyDef| hint_of_tuple(&array(&[value]), def);
        assert_eq!(hint(uint(5), &unsigned), 5);
        assert_eq!(hint(double(5.5), &unsigned), 5);
        assert_eq!(hint(sint(-5), &unsigned), HINT_MIN);
        assert_eq!(hint(string("5"), &unsigned), HINT_MAX);
        let integer = def(&[(0, FieldType::Integer)]);
        assert!(hint(sint(i64::MIN), &integer) < hint(sint(-1), &integer));
        assert!(hint(sint(-1), &integer) < hint(uint(0), &integer));
        assert_eq!(hint(uint(u64::MAX), &integer), HINT_MAX);
        let number = def(&[(0, FieldType::Number)]);
        assert_eq!(hint(double(-0.0), &number), hint(uint(0), &number));
        assert!(hint(double(f64::NAN), &number) < hint(double(f64::NEG_INFINITY), &number));
        assert!(hint(sint(-1), &number) < hint(double(-0.5), &number));
        assert!(hint(double(f64::INFINITY), &number) < hint(string(""), &number));
        let string_def = def(&[(0, FieldType::String)]);
        assert!(hint(string("abc"), &string_def) < hint(string("abd"), &string_def));
        assert_eq!(
            hint(string("abcdefgh1"), &string_def),
            hint(string("abcdefgh2"), &string_def)
        );
        assert_eq!(
            hint(string("a"), &string_def),
            hint(string("a\0"), &string_def)
        );
        assert_eq!(hint(uint(1), &def(&[(0, FieldType::Scalar)])), HINT_MIN);
        // A tuple without the field sorts first, and a key without parts has no hint.
        assert_eq!(hint_of_tuple(&array(&[]), &unsigned), HINT_MIN);
        assert_eq!(hint_of_key(&array(&[]), &unsigned), None);
        assert_eq!(hint_of_key(&uint(1), &unsigned), None);
        assert_eq!(hint_of_key(&array(&[uint(9), uint(1)]), &unsigned), Some(9));
    }

    // }}}

    // {{{ Validation

    fn message(result: Result<impl std::fmt::Debug, BoxError>) -> (u32, String) {
        let error = result.unwrap_err();
        (error.code.0, error.message)
    }

    /// ER_KEY_PART_TYPE's text.
    fn part_type(partno: u32, expected: &str) -> String {
        format!(
            "Supplied key type of part {partno} does not match index part type: expected {expected}"
        )
    }

    /// ER_FIELD_TYPE's text.
    fn field_type(field: u32, expected: &str) -> String {
        format!(
            "Tuple field {field} type does not match one required by operation: expected {expected}"
        )
    }

    /// Checks a key against a two-part (NUM, STR) index.
    fn check_key(key: &[u8], allow_partial: bool) -> (u32, String) {
        let two_parts = def(&[(0, FieldType::Unsigned), (1, FieldType::String)]);
        message(validate_key(key, &two_parts, allow_partial))
    }

    #[test]
    fn keys_are_arrays_of_at_most_the_index_parts() {
        let not_array = (22, "Tuple/Key must be MsgPack array".to_string());
        assert_eq!(check_key(&uint(1), true), not_array);
        assert_eq!(check_key(&map(&[]), true), not_array);
        let invalid = (20, "Invalid MsgPack - key".to_string());
        assert_eq!(check_key(&[], true), invalid);
        assert_eq!(check_key(&[0xdc, 0], true), invalid);
        assert_eq!(check_key(&[0x92, 0x01, 0xd9], false), invalid);
        assert_eq!(check_key(&[0x92, 0x01], false), invalid);
        let three = (
            31,
            "Invalid key part count (expected [0..2], got 3)".to_string(),
        );
        assert_eq!(
            check_key(&array(&[uint(1), string("a"), uint(3)]), true),
            three
        );
        // The part count is checked before the part types.
        assert_eq!(
            check_key(&array(&[string("x"), uint(1), uint(3)]), false),
            three
        );
    }

    #[test]
    fn exact_matches_need_every_part() {
        let got = |count: u32| {
            let text =
                format!("Invalid key part count in an exact match (expected 2, got {count})");
            (19, text)
        };
        assert_eq!(
            check_key(&array(&[uint(1)]), false),
            (
                19,
                "Invalid key part count in an exact match (expected 2, got 1)".to_string()
            )
        );
        assert_eq!(check_key(&array(&[]), false), got(0));
        // The part count is checked before the part types.
        assert_eq!(check_key(&array(&[string("x")]), false), got(1));
    }

    #[test]
    fn key_parts_have_their_types_named_1_6_style() {
        assert_eq!(
            check_key(&array(&[string("x")]), true),
            (
                18,
                "Supplied key type of part 0 does not match index part type: expected NUM".into()
            )
        );
        let cases = [
            (array(&[sint(-1), string("x")]), part_type(0, "NUM")),
            (array(&[double(1.0), string("x")]), part_type(0, "NUM")),
            (array(&[uint(1), uint(2)]), part_type(1, "STR")),
            (array(&[uint(1), nil()]), part_type(1, "STR")),
        ];
        for (key, text) in cases {
            assert_eq!(check_key(&key, false), (18, text), "{key:?}");
        }
        let number = def(&[(3, FieldType::Number)]);
        let result = validate_key(&array(&[string("1")]), &number, false);
        assert_eq!(message(result), (18, part_type(0, "NUMBER")));
        let integer = def(&[(0, FieldType::Integer)]);
        let result = validate_key(&array(&[double(0.5)]), &integer, false);
        assert_eq!(message(result), (18, part_type(0, "INTEGER")));
    }

    #[test]
    fn good_keys_return_their_part_count() {
        let two_parts = def(&[(0, FieldType::Unsigned), (1, FieldType::String)]);
        let check = |key: &[u8], allow_partial| validate_key(key, &two_parts, allow_partial);
        assert_eq!(check(&array(&[]), true), Ok(0));
        assert_eq!(check(&array(&[uint(1)]), true), Ok(1));
        assert_eq!(check(&array(&[vec![0xd0, 1]]), true), Ok(1));
        assert_eq!(check(&array(&[uint(1), string("x")]), false), Ok(2));
        let mut padded = array(&[uint(1), string("x")]);
        padded.push(0xc1);
        assert_eq!(check(&padded, false), Ok(2));
        let number = def(&[(0, FieldType::Number)]);
        for value in [uint(1), sint(-1), float(0.5), double(f64::NAN)] {
            assert_eq!(validate_key(&array(&[value]), &number, false), Ok(1));
        }
        let any = def(&[(0, FieldType::Any)]);
        assert_eq!(validate_key(&array(&[nil()]), &any, false), Ok(1));
    }

    /// Checks a tuple for a space "tester" indexed on [0 NUM] and [2 STR, 1 NUMBER].
    fn check_tuple(tuple: &[u8], field_count: u32) -> Result<(), BoxError> {
        let primary = def(&[(0, FieldType::Unsigned)]);
        let secondary = def(&[(2, FieldType::String), (1, FieldType::Number)]);
        validate_tuple(tuple, &[&primary, &secondary], field_count, "tester")
    }

    #[test]
    fn tuples_are_arrays_of_well_formed_msgpack() {
        let not_array = (22, "Tuple/Key must be MsgPack array".to_string());
        assert_eq!(message(check_tuple(&uint(1), 0)), not_array);
        assert_eq!(message(check_tuple(&string("x"), 0)), not_array);
        let invalid = (20, "Invalid MsgPack - tuple".to_string());
        assert_eq!(message(check_tuple(&[], 0)), invalid);
        assert_eq!(message(check_tuple(&[0x93, 0x01, 0x02], 0)), invalid);
        // Bytes after the tuple.
        assert_eq!(message(check_tuple(&[0x91, 0x01, 0x02], 0)), invalid);
    }

    #[test]
    fn tuple_checks_come_in_1_6_order() {
        let short = message(check_tuple(&array(&[uint(1)]), 0));
        let text = "Tuple field count 1 is less than required by a defined index (expected 3)";
        assert_eq!(short, (39, text.to_string()));
        // The index field count comes before the space field count, and before a bad
        // field type.
        let (code, _) = message(check_tuple(&array(&[uint(1), uint(2)]), 2));
        assert_eq!(code, 39);
        let (code, _) = message(check_tuple(&array(&[string("1")]), 0));
        assert_eq!(code, 39);
        // Malformed MessagePack anywhere comes first of all.
        let mut bad_then_broken = array(&[string("1"), uint(2), string("x")]);
        bad_then_broken.push(0x01);
        assert_eq!(message(check_tuple(&bad_then_broken, 0)).0, 20);
        let short_and_broken = [0x92, 0xa1, b'1', 0xd9];
        assert_eq!(message(check_tuple(&short_and_broken, 0)).0, 20);
        let bad_first = message(check_tuple(&array(&[string("1"), uint(2), string("x")]), 0));
        let text = "Tuple field 1 type does not match one required by operation: expected NUM";
        assert_eq!(bad_first, (23, text.to_string()));
        // The lowest bad field is named, whichever index asks for it.
        let bad_second = check_tuple(&array(&[uint(1), string("2"), uint(3)]), 0);
        assert_eq!(message(bad_second), (23, field_type(2, "NUMBER")));
        let bad_third = check_tuple(&array(&[uint(1), double(2.5), uint(3)]), 0);
        assert_eq!(message(bad_third), (23, field_type(3, "STR")));
        // Field types come before the space field count.
        let bad_and_long = check_tuple(&array(&[uint(1), double(2.5), uint(3), nil()]), 3);
        assert_eq!(message(bad_and_long), (23, field_type(3, "STR")));
        let long = message(check_tuple(
            &array(&[uint(1), double(2.5), string("x"), nil()]),
            3,
        ));
        let text = "Tuple field count 4 does not match space 'tester' field count 3";
        assert_eq!(long, (38, text.to_string()));
        let (code, text) = message(check_tuple(&array(&[uint(1), double(2.5), string("x")]), 5));
        assert_eq!(code, 38);
        assert_eq!(
            text,
            "Tuple field count 3 does not match space 'tester' field count 5"
        );
    }

    #[test]
    fn good_tuples_pass() {
        assert_eq!(
            check_tuple(&array(&[uint(1), double(2.5), string("x")]), 3),
            Ok(())
        );
        assert_eq!(
            check_tuple(&array(&[uint(1), sint(-2), string("x"), map(&[])]), 0),
            Ok(())
        );
        assert_eq!(
            check_tuple(
                &array(&[vec![0xd3, 0, 0, 0, 0, 0, 0, 0, 1], uint(2), string("")]),
                0
            ),
            Ok(())
        );
        assert_eq!(validate_tuple(&array(&[]), &[], 0, "t"), Ok(()));
        assert_eq!(validate_tuple(&array(&[nil()]), &[], 0, "t"), Ok(()));
        let far = def(&[(u32::MAX, FieldType::Any)]);
        let (code, text) = message(validate_tuple(&array(&[nil()]), &[&far], 0, "t"));
        assert_eq!(code, 39);
        assert!(text.ends_with("(expected 4294967295)"), "{text}");
    }

    #[test]
    fn every_index_checks_the_fields_it_shares() {
        let by_number = def(&[(0, FieldType::Number)]);
        let by_integer = def(&[(0, FieldType::Integer)]);
        let (code, text) = message(validate_tuple(
            &array(&[double(0.5)]),
            &[&by_number, &by_integer],
            0,
            "s",
        ));
        assert_eq!(code, 23);
        assert_eq!(
            text,
            "Tuple field 1 type does not match one required by operation: expected INTEGER"
        );
    }

    // }}}

    // {{{ Keys and definitions

    #[test]
    fn keys_are_extracted_in_part_order() {
        let by_name_then_id = def(&[(2, FieldType::String), (0, FieldType::Unsigned)]);
        let tuple = array(&[vec![0xcd, 0, 5], nil(), string("ab"), array(&[uint(1)])]);
        let key = extract_key(&tuple, &by_name_then_id);
        assert_eq!(key, array(&[string("ab"), vec![0xcd, 0, 5]]));
        assert_eq!(
            compare_tuple_with_key(&tuple, &key, &by_name_then_id),
            Ordering::Equal
        );
        assert_eq!(validate_key(&key, &by_name_then_id, false), Ok(2));
        let nested = def(&[(3, FieldType::Array)]);
        assert_eq!(extract_key(&tuple, &nested), array(&[array(&[uint(1)])]));
        let beyond = def(&[(0, FieldType::Unsigned), (9, FieldType::Any)]);
        assert_eq!(
            extract_key(&tuple, &beyond),
            array(&[vec![0xcd, 0, 5], nil()])
        );
        assert_eq!(extract_key(&uint(1), &beyond), array(&[nil(), nil()]));
        assert_eq!(extract_key(&tuple, &KeyDef::default()), array(&[]));
    }

    #[test]
    fn secondary_keys_are_completed_by_the_primary_key() {
        let primary = def(&[(0, FieldType::Unsigned), (1, FieldType::String)]);
        let secondary = def(&[(3, FieldType::Number), (1, FieldType::String)]);
        let merged = merge_with_primary(&secondary, &primary);
        assert_eq!(
            merged,
            def(&[
                (3, FieldType::Number),
                (1, FieldType::String),
                (0, FieldType::Unsigned)
            ])
        );
        assert_eq!(merge_with_primary(&primary, &primary), primary);
        assert_eq!(merge_with_primary(&KeyDef::default(), &primary), primary);
        let a = array(&[uint(1), string("x"), nil(), uint(5)]);
        let b = array(&[uint(2), string("x"), nil(), uint(5)]);
        assert_eq!(compare_tuples(&a, &b, &secondary), Ordering::Equal);
        assert_eq!(compare_tuples(&a, &b, &merged), Ordering::Less);
        assert_eq!(merged.part_count(), 3);
        assert_eq!(merged.field_count_min(), 4);
        assert_eq!(KeyDef::default().field_count_min(), 0);
    }

    // }}}

    // {{{ Garbage

    /// Runs every entry point over `bytes`; none may panic, and the few invariants that hold
    /// for any input must hold.
    fn exercise(bytes: &[u8], defs: &[KeyDef]) {
        if let Some(len) = skip_value(bytes) {
            assert!(len >= 1 && len <= bytes.len());
        }
        let _ = tuple_field_count(bytes);
        for fieldno in 0..4 {
            if let Some(field) = tuple_field(bytes, fieldno) {
                assert_eq!(skip_value(field), Some(field.len()));
            }
        }
        let reference = array(&[uint(1), string("a"), double(0.5)]);
        for field_type in ALL_TYPES {
            let _ = field_type.matches(bytes);
            let order = compare_fields(bytes, &reference, field_type);
            assert_eq!(
                compare_fields(&reference, bytes, field_type),
                order.reverse()
            );
        }
        for def in defs {
            let order = compare_tuples(bytes, &reference, def);
            assert_eq!(compare_tuples(&reference, bytes, def), order.reverse());
            let _ = compare_tuple_with_key(bytes, &reference, def);
            let _ = compare_tuple_with_key(&reference, bytes, def);
            let _ = (hash_tuple(bytes, def), hash_key(bytes, def));
            let _ = (hint_of_tuple(bytes, def), hint_of_key(bytes, def));
            let _ = validate_key(bytes, def, true);
            let _ = validate_key(bytes, def, false);
            let _ = extract_key(bytes, def);
        }
        let refs: Vec<&KeyDef> = defs.iter().collect();
        if validate_tuple(bytes, &refs, 0, "s").is_ok() {
            assert_eq!(skip_value(bytes), Some(bytes.len()));
        }
    }

    fn garbage_defs() -> Vec<KeyDef> {
        vec![
            def(&[(0, FieldType::Unsigned)]),
            def(&[(0, FieldType::String)]),
            def(&[(1, FieldType::Scalar), (0, FieldType::Number)]),
            def(&[
                (2, FieldType::Any),
                (3, FieldType::Map),
                (0, FieldType::Integer),
            ]),
        ]
    }

    #[test]
    fn random_bytes_never_panic() {
        // Markers that open containers or claim lengths are the dangerous ones: weight them.
        const INTERESTING: [u8; 24] = [
            0x90, 0x93, 0x9f, 0xdc, 0xdd, 0x80, 0x8f, 0xde, 0xdf, 0xa0, 0xbf, 0xd9, 0xda, 0xdb,
            0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xd4, 0xd8, 0xc1, 0xff,
        ];
        let defs = garbage_defs();
        let mut random = TestRng::new(0x9e37_79b9_7f4a_7c15);
        for _ in 0..30_000 {
            let len = random.below(40) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| match random.below(3) {
                    0 => INTERESTING[random.below(INTERESTING.len() as u64) as usize],
                    _ => random.next() as u8,
                })
                .collect();
            exercise(&bytes, &defs);
            let mut tuple = vec![0x90 | random.below(16) as u8];
            tuple.extend_from_slice(&bytes);
            exercise(&tuple, &defs);
        }
    }

    #[test]
    fn damaged_tuples_never_panic() {
        let defs = garbage_defs();
        let mut random = TestRng::new(42);
        let tuples = [
            array(&[
                uint(1),
                string("abc"),
                double(2.5),
                map(&[(uint(1), array(&[nil()]))]),
            ]),
            array(&[
                sint(-5),
                binary(b"xyz"),
                ext(3, &[1, 2, 3, 4]),
                array(&[array(&[])]),
            ]),
        ];
        for tuple in &tuples {
            for cut in 0..tuple.len() {
                exercise(&tuple[..cut], &defs);
            }
            for _ in 0..5_000 {
                let mut damaged = tuple.clone();
                for _ in 0..1 + random.below(3) {
                    let at = random.below(damaged.len() as u64) as usize;
                    damaged[at] = random.next() as u8;
                }
                exercise(&damaged, &defs);
            }
        }
    }

    // }}}
}
