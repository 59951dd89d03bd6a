//! UPDATE and UPSERT operations over MessagePack tuples (`= + - & | ^ : ! #`), as Tarantool
//! 1.6's `tuple_update.cc` defines them (PROTOCOL.md §2.8).
//!
//! Pure code, run on the TX thread: bytes in, bytes or a `BoxError` out, no I/O and no state.
//! A tuple is a msgpack array; an op list is an array of arrays `[[op, field, args...], ...]`.
//!
//! How an update runs (the shape of 1.6's rope, with a vector in its place):
//!
//! ```text
//!   ops bytes ──decode_ops──▶ Vec<Op>          every op is read and checked first, so a
//!                                               malformed op fails the request before any
//!                                               op runs
//!   tuple ──fields──▶ Vec<Slot> ──apply(op)…──▶ Vec<Slot> ──encode──▶ new tuple bytes
//!                      │ old: bytes of the field (from the tuple, or an inserted value)
//!                      └ change: None, or what one op made of it
//! ```
//!
//! Ops run in order on the current field list, so after a `!` or `#` the later field numbers
//! refer to the shifted fields. A field holds at most one change: `+ - & | ^ :` on a field
//! that already has one (from any op, `=` included) is "double update of the same field",
//! while `=` replaces whatever change the field had. A field created by `!` (or by `=` one
//! past the end) starts clean, so one more op may change it.
//! Untouched fields are copied byte for byte; only changed fields are re-encoded.
//!
//! Field numbers in errors follow 1.6: they are printed in the client's numbering
//! (`INDEX_BASE + zero-based number`), so a Lua caller (base 1) sees 1-based numbers and a
//! binary-protocol caller (base 0) sees the numbers it sent.

use crate::error::{BoxError, ErrCode};
use rmp::Marker;
use rmp::decode::RmpRead as _;

/// The most ops one request may carry (1.6's `BOX_UPDATE_OP_CNT_MAX`): it bounds the work of
/// one request, whose ops are all decoded before any runs.
pub const UPDATE_OPS_MAX: u32 = 4000;

/// What `ER_INVALID_MSGPACK` names when a tuple's bytes are broken (1.6's `mp_tuple_assert`).
const TUPLE_WHAT: &str = "tuple";

/// What `ER_INVALID_MSGPACK` names when the op list's bytes are broken.
const OPS_WHAT: &str = "update operations";

/// 1.6's text for an op list, or an op in it, that is not an array.
const OPS_NOT_ARRAY: &str = "update operations must be an array {{op,..}, {op,..}}";

// {{{ Public API

/// Applies the UPDATE `ops` to `tuple` and returns the new tuple. `index_base` is 0 for the
/// binary protocol and 1 for Lua: it is subtracted from positive field numbers and splice
/// offsets. Checking the result against the space (primary key, field types, field count)
/// is the caller's job.
pub fn update(tuple: &[u8], ops: &[u8], index_base: u32) -> Result<Vec<u8>, BoxError> {
    let mut state = TupleUpdate::new(fields(tuple)?, index_base);
    for op in decode_ops(ops, index_base)? {
        state.apply(&op)?;
    }
    state.encode()
}

/// Checks the shape of an op list without a tuple: everything `update` would reject before
/// running the first op. UPSERT calls this at request time, since its ops may never run.
pub fn check_ops(ops: &[u8], index_base: u32) -> Result<(), BoxError> {
    decode_ops(ops, index_base).map(|_| ())
}

/// Applies UPSERT `ops` to the `tuple` already stored: an op that fails is skipped and its
/// error is returned for the caller to log, so the result is always a tuple. If the op list
/// itself is malformed (`check_ops` fails) or `tuple` is not a valid tuple, nothing runs and
/// `tuple` comes back unchanged with that one error.
pub fn upsert(tuple: &[u8], ops: &[u8], index_base: u32) -> (Vec<u8>, Vec<BoxError>) {
    let (list, decoded) = match (fields(tuple), decode_ops(ops, index_base)) {
        (Ok(list), Ok(decoded)) => (list, decoded),
        (Err(error), _) | (_, Err(error)) => return (tuple.to_vec(), vec![error]),
    };
    let mut state = TupleUpdate::new(list, index_base);
    let skipped: Vec<BoxError> = decoded
        .iter()
        .filter_map(|op| state.apply(op).err())
        .collect();
    match state.encode() {
        Ok(new_tuple) => (new_tuple, skipped),
        Err(error) => (tuple.to_vec(), vec![error]),
    }
}

/// The number of fields of `tuple`. The whole tuple is checked: broken bytes give
/// `ER_INVALID_MSGPACK`, a value that is not an array `ER_TUPLE_NOT_ARRAY`.
pub fn field_count(tuple: &[u8]) -> Result<u32, BoxError> {
    let mut rest = tuple;
    let count = read_tuple_header(&mut rest)?;
    for _ in 0..count {
        skip_value(&mut rest).map_err(|_| invalid_msgpack(TUPLE_WHAT))?;
    }
    expect_end(rest)?;
    Ok(count)
}

/// The encoded bytes of each field of `tuple`, in order. Errors as for `field_count`.
pub fn fields(tuple: &[u8]) -> Result<Vec<&[u8]>, BoxError> {
    let mut rest = tuple;
    let count = read_tuple_header(&mut rest)?;
    // A header may claim more fields than there are bytes; each field takes at least one.
    let mut list = Vec::with_capacity((count as usize).min(rest.len()));
    for _ in 0..count {
        list.push(split_value(&mut rest).map_err(|_| invalid_msgpack(TUPLE_WHAT))?);
    }
    expect_end(rest)?;
    Ok(list)
}

// }}}

// {{{ MessagePack reading

/// Broken MessagePack: truncated, a reserved marker, or bytes where none may be. The caller
/// knows what was being read and turns this into `ER_INVALID_MSGPACK`.
#[derive(Debug)]
struct Malformed;

/// The next `len` bytes of `rest`.
fn take<'a>(rest: &mut &'a [u8], len: usize) -> Result<&'a [u8], Malformed> {
    if rest.len() < len {
        return Err(Malformed);
    }
    let (taken, tail) = rest.split_at(len);
    *rest = tail;
    Ok(taken)
}

/// Skips one whole value. Nesting is counted, not recursed into, so no input can exhaust the
/// stack; every step eats at least one byte, so the loop ends with the input.
fn skip_value(rest: &mut &[u8]) -> Result<(), Malformed> {
    let mut pending: u64 = 1;
    while pending > 0 {
        pending -= 1;
        pending = pending.saturating_add(skip_item(rest)?);
    }
    Ok(())
}

/// Skips one marker with its own payload and returns how many nested values follow it.
fn skip_item(rest: &mut &[u8]) -> Result<u64, Malformed> {
    let mut after_marker = *rest;
    let marker = rmp::decode::read_marker(&mut after_marker).map_err(|_| Malformed)?;
    let payload_len = match marker {
        Marker::FixPos(_) | Marker::FixNeg(_) | Marker::Null | Marker::True | Marker::False => 0,
        Marker::U8 | Marker::I8 => 1,
        Marker::U16 | Marker::I16 => 2,
        Marker::U32 | Marker::I32 | Marker::F32 => 4,
        Marker::U64 | Marker::I64 | Marker::F64 => 8,
        Marker::FixStr(_) | Marker::Str8 | Marker::Str16 | Marker::Str32 => {
            let len = rmp::decode::read_str_len(rest).map_err(|_| Malformed)?;
            return take(rest, len as usize).map(|_| 0);
        }
        Marker::Bin8 | Marker::Bin16 | Marker::Bin32 => {
            let len = rmp::decode::read_bin_len(rest).map_err(|_| Malformed)?;
            return take(rest, len as usize).map(|_| 0);
        }
        Marker::FixArray(_) | Marker::Array16 | Marker::Array32 => {
            return rmp::decode::read_array_len(rest)
                .map(u64::from)
                .map_err(|_| Malformed);
        }
        Marker::FixMap(_) | Marker::Map16 | Marker::Map32 => {
            let pairs = rmp::decode::read_map_len(rest).map_err(|_| Malformed)?;
            return Ok(2 * u64::from(pairs));
        }
        marker if super::mp::is_ext(marker) => {
            let meta = rmp::decode::read_ext_meta(rest).map_err(|_| Malformed)?;
            return take(rest, meta.size as usize).map(|_| 0);
        }
        _ => return Err(Malformed),
    };
    *rest = after_marker;
    take(rest, payload_len).map(|_| 0)
}

/// Splits one whole encoded value off the front of `rest`.
fn split_value<'a>(rest: &mut &'a [u8]) -> Result<&'a [u8], Malformed> {
    let start = *rest;
    skip_value(rest)?;
    let len = start.len() - rest.len();
    Ok(&start[..len])
}

/// Reads a tuple's array header. As in 1.6, broken bytes are reported before a wrong type:
/// a valid value that is not an array gives `ER_TUPLE_NOT_ARRAY`.
fn read_tuple_header(rest: &mut &[u8]) -> Result<u32, BoxError> {
    let mut probe = *rest;
    skip_value(&mut probe).map_err(|_| invalid_msgpack(TUPLE_WHAT))?;
    rmp::decode::read_array_len(rest).map_err(|_| BoxError::new(ErrCode::TUPLE_NOT_ARRAY, &[]))
}

/// A tuple is exactly one value: bytes after it mean the caller's framing is broken.
fn expect_end(rest: &[u8]) -> Result<(), BoxError> {
    if rest.is_empty() {
        Ok(())
    } else {
        Err(invalid_msgpack(TUPLE_WHAT))
    }
}

/// The scalar kinds ops care about, in msgpuck's terms: `Unsigned` is MP_UINT (fixint and
/// uint markers), `Signed` is MP_INT (negative fixint and int markers, whatever the value).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Scalar<'a> {
    /// MP_UINT.
    Unsigned(u64),
    /// MP_INT.
    Signed(i64),
    /// MP_FLOAT (float32).
    Float(f32),
    /// MP_DOUBLE.
    Double(f64),
    /// MP_STR: the payload bytes.
    Str(&'a [u8]),
    /// Anything else: nil, bool, bin, array, map, ext.
    Other,
}

/// Classifies one complete encoded value. Values reach here already validated, so a read
/// error can only mean "not one of these" and is reported as `Other`.
fn scalar(value: &[u8]) -> Scalar<'_> {
    let mut rest = value;
    let Ok(marker) = rmp::decode::read_marker(&mut rest) else {
        return Scalar::Other;
    };
    let read = match marker {
        Marker::FixPos(small) => Ok(Scalar::Unsigned(u64::from(small))),
        Marker::FixNeg(small) => Ok(Scalar::Signed(i64::from(small))),
        Marker::U8 => rest.read_data_u8().map(|v| Scalar::Unsigned(v.into())),
        Marker::U16 => rest.read_data_u16().map(|v| Scalar::Unsigned(v.into())),
        Marker::U32 => rest.read_data_u32().map(|v| Scalar::Unsigned(v.into())),
        Marker::U64 => rest.read_data_u64().map(Scalar::Unsigned),
        Marker::I8 => rest.read_data_i8().map(|v| Scalar::Signed(v.into())),
        Marker::I16 => rest.read_data_i16().map(|v| Scalar::Signed(v.into())),
        Marker::I32 => rest.read_data_i32().map(|v| Scalar::Signed(v.into())),
        Marker::I64 => rest.read_data_i64().map(Scalar::Signed),
        Marker::F32 => rest.read_data_f32().map(Scalar::Float),
        Marker::F64 => rest.read_data_f64().map(Scalar::Double),
        Marker::FixStr(_) | Marker::Str8 | Marker::Str16 | Marker::Str32 => {
            return read_str(value).map_or(Scalar::Other, Scalar::Str);
        }
        _ => return Scalar::Other,
    };
    read.unwrap_or(Scalar::Other)
}

/// The payload of an encoded string value.
fn read_str(value: &[u8]) -> Result<&[u8], Malformed> {
    let mut rest = value;
    let len = rmp::decode::read_str_len(&mut rest).map_err(|_| Malformed)?;
    take(&mut rest, len as usize)
}

// }}}

// {{{ Errors, in 1.6's words

/// `ER_INVALID_MSGPACK` naming what was being read.
fn invalid_msgpack(what: &str) -> BoxError {
    BoxError::new(ErrCode::INVALID_MSGPACK, &[&what])
}

/// `ER_ILLEGAL_PARAMS` with 1.6's reason text.
fn illegal_params(reason: &str) -> BoxError {
    BoxError::new(ErrCode::ILLEGAL_PARAMS, &[&reason])
}

/// `ER_NO_SUCH_FIELD`; `shown` is the number as the client wrote it.
fn no_such_field(shown: i128) -> BoxError {
    BoxError::new(ErrCode::NO_SUCH_FIELD, &[&shown])
}

/// `ER_ARG_TYPE`: an operand of op `opcode` is not of the `expected` type.
fn arg_type(opcode: u8, shown: i128, expected: &str) -> BoxError {
    BoxError::new(ErrCode::ARG_TYPE, &[&char::from(opcode), &shown, &expected])
}

/// `ER_UPDATE_FIELD` with its reason.
fn update_field(shown: i128, reason: &str) -> BoxError {
    BoxError::new(ErrCode::UPDATE_FIELD, &[&shown, &reason])
}

/// `ER_SPLICE` with its reason.
fn splice_error(shown: i128, reason: &str) -> BoxError {
    BoxError::new(ErrCode::SPLICE, &[&shown, &reason])
}

/// `ER_UPDATE_INTEGER_OVERFLOW` for op `opcode`.
fn integer_overflow(opcode: u8, shown: i128) -> BoxError {
    BoxError::new(
        ErrCode::UPDATE_INTEGER_OVERFLOW,
        &[&char::from(opcode), &shown],
    )
}

/// Writing into a `Vec` cannot fail; this only keeps that impossibility from panicking.
fn write_failed<E>(_: E) -> BoxError {
    invalid_msgpack("cannot encode the new tuple")
}

// }}}

// {{{ Decoding the op list

/// A number as an arithmetic operand or result. `Integer` holds anything in
/// `i64::MIN..=u64::MAX`, wide enough that `+` and `-` of two of them are exact (1.6 uses
/// 96-bit integers for the same reason).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Number {
    /// Any msgpack integer, or an exact sum or difference of two.
    Integer(i128),
    /// A float32.
    Float(f32),
    /// A float64.
    Double(f64),
}

impl Number {
    /// The number an encoded operand holds, if it is one.
    fn from_scalar(value: Scalar<'_>) -> Option<Number> {
        match value {
            Scalar::Unsigned(integer) => Some(Number::Integer(integer.into())),
            Scalar::Signed(integer) => Some(Number::Integer(integer.into())),
            Scalar::Float(float) => Some(Number::Float(float)),
            Scalar::Double(double) => Some(Number::Double(double)),
            Scalar::Str(_) | Scalar::Other => None,
        }
    }

    /// The value as a double, as C converts it.
    fn to_f64(self) -> f64 {
        match self {
            Number::Integer(integer) => integer as f64,
            Number::Float(float) => f64::from(float),
            Number::Double(double) => double,
        }
    }
}

/// A splice's arguments as sent; they are resolved against the string when the op runs.
#[derive(Clone, Copy, Debug)]
struct SpliceArgs<'a> {
    /// Where to cut: INDEX_BASE-based if positive, from the end if negative.
    offset: i64,
    /// How many bytes to cut; negative keeps that many bytes at the tail.
    cut_len: i64,
    /// The bytes pasted at the offset.
    paste: &'a [u8],
}

/// What one op does, with its decoded argument.
#[derive(Clone, Copy, Debug)]
enum Action<'a> {
    /// `=`: the encoded value.
    Set(&'a [u8]),
    /// `!`: the encoded value.
    Insert(&'a [u8]),
    /// `#`: the field count as 1.6 reads it, the low 32 bits of the integer sent.
    Delete(u32),
    /// `+` or `-`: the right operand.
    Arith(Number),
    /// `&`, `|` or `^`: the right operand.
    Bitwise(u64),
    /// `:`.
    Splice(SpliceArgs<'a>),
}

/// One decoded op.
#[derive(Clone, Copy, Debug)]
struct Op<'a> {
    /// The op's letter, the first byte of its name; error messages print it.
    opcode: u8,
    /// Zero-based if the client sent a number at or above INDEX_BASE, else the negative
    /// number as sent (counting from the end). Wide so that any msgpack integer fits.
    field_no: i128,
    /// What to do, with the argument.
    action: Action<'a>,
}

/// Decodes and checks the whole op list, in 1.6's order of checks.
fn decode_ops(ops: &[u8], index_base: u32) -> Result<Vec<Op<'_>>, BoxError> {
    let mut probe = ops;
    skip_value(&mut probe).map_err(|_| invalid_msgpack(OPS_WHAT))?;
    let mut rest = ops;
    let count =
        rmp::decode::read_array_len(&mut rest).map_err(|_| illegal_params(OPS_NOT_ARRAY))?;
    if count > UPDATE_OPS_MAX {
        return Err(illegal_params("too many operations for update"));
    }
    if count == 0 {
        return Err(illegal_params("no operations for update"));
    }
    let mut decoded = Vec::with_capacity(count as usize);
    for _ in 0..count {
        decoded.push(decode_op(&mut rest, index_base)?);
    }
    if !rest.is_empty() {
        return Err(illegal_params("can't unpack update operations"));
    }
    Ok(decoded)
}

/// Decodes one `[op, field, args...]` array from the front of `rest`.
fn decode_op<'a>(rest: &mut &'a [u8], index_base: u32) -> Result<Op<'a>, BoxError> {
    let len = rmp::decode::read_array_len(rest).map_err(|_| illegal_params(OPS_NOT_ARRAY))?;
    if len == 0 {
        return Err(illegal_params(
            "update operation must be an array {op,..}, got empty array",
        ));
    }
    let Scalar::Str(name) = scalar(next_element(rest)?) else {
        return Err(illegal_params("update operation name must be a string"));
    };
    // Only the first byte of the name counts; an empty name names no op.
    let opcode = name.first().copied().unwrap_or(0);
    let arity = op_arity(opcode).ok_or_else(unknown_op)?;
    if len != arity {
        return Err(unknown_op());
    }
    let field_no = decode_field_no(next_element(rest)?, index_base)?;
    let shown = i128::from(index_base) + field_no;
    let action = decode_action(rest, opcode, shown)?;
    Ok(Op {
        opcode,
        field_no,
        action,
    })
}

/// `ER_UNKNOWN_UPDATE_OP`: an unknown op letter, or the wrong element count for the op.
fn unknown_op() -> BoxError {
    BoxError::new(ErrCode::UNKNOWN_UPDATE_OP, &[])
}

/// The element count of an op's array (name and field included), or `None` if the letter
/// names no op.
fn op_arity(opcode: u8) -> Option<u32> {
    match opcode {
        b'=' | b'!' | b'#' | b'+' | b'-' | b'&' | b'|' | b'^' => Some(3),
        b':' => Some(5),
        _ => None,
    }
}

/// The next element of an op array, whole.
fn next_element<'a>(rest: &mut &'a [u8]) -> Result<&'a [u8], BoxError> {
    split_value(rest).map_err(|_| invalid_msgpack(OPS_WHAT))
}

/// The field number of an op: INDEX_BASE is subtracted from a number at or above it, and a
/// negative number is kept to count from the end once the op runs. A non-negative number
/// below INDEX_BASE (0 from Lua) names no field.
fn decode_field_no(element: &[u8], index_base: u32) -> Result<i128, BoxError> {
    let sent = match scalar(element) {
        Scalar::Unsigned(number) => i128::from(number),
        Scalar::Signed(number) => i128::from(number),
        _ => return Err(illegal_params("field id must be a number")),
    };
    let zero_based = sent - i128::from(index_base);
    if zero_based >= 0 {
        Ok(zero_based)
    } else if sent < 0 {
        Ok(sent)
    } else {
        Err(no_such_field(sent))
    }
}

/// Decodes the arguments after the field number. `shown` is the field number for messages,
/// computed as 1.6 does before the op runs (INDEX_BASE plus the number as decoded).
fn decode_action<'a>(rest: &mut &'a [u8], opcode: u8, shown: i128) -> Result<Action<'a>, BoxError> {
    let first = next_element(rest)?;
    let action = match opcode {
        b'=' => Action::Set(first),
        b'!' => Action::Insert(first),
        // 1.6 casts the count to uint32: a negative count wraps and so reaches the end.
        b'#' => Action::Delete(read_integer(first, opcode, shown)? as u32),
        b'+' | b'-' => Action::Arith(
            Number::from_scalar(scalar(first)).ok_or_else(|| arg_type(opcode, shown, "NUMBER"))?,
        ),
        b'&' | b'|' | b'^' => match scalar(first) {
            Scalar::Unsigned(bits) => Action::Bitwise(bits),
            _ => return Err(arg_type(opcode, shown, "UINT")),
        },
        b':' => Action::Splice(decode_splice(rest, first, opcode, shown)?),
        _ => return Err(unknown_op()),
    };
    Ok(action)
}

/// Decodes a splice's offset (`first`), cut length and paste string.
fn decode_splice<'a>(
    rest: &mut &'a [u8],
    first: &'a [u8],
    opcode: u8,
    shown: i128,
) -> Result<SpliceArgs<'a>, BoxError> {
    let offset = saturate_i64(read_integer(first, opcode, shown)?);
    let cut_len = saturate_i64(read_integer(next_element(rest)?, opcode, shown)?);
    let Scalar::Str(paste) = scalar(next_element(rest)?) else {
        return Err(arg_type(opcode, shown, "STR"));
    };
    Ok(SpliceArgs {
        offset,
        cut_len,
        paste,
    })
}

/// An integer argument of either sign (1.6's `mp_read_int`, whose error says "UINT").
fn read_integer(element: &[u8], opcode: u8, shown: i128) -> Result<i128, BoxError> {
    match scalar(element) {
        Scalar::Unsigned(number) => Ok(number.into()),
        Scalar::Signed(number) => Ok(number.into()),
        _ => Err(arg_type(opcode, shown, "UINT")),
    }
}

/// Clamps into `i64`: splice offsets and lengths beyond it act the same as `i64::MAX`.
fn saturate_i64(number: i128) -> i64 {
    i64::try_from(number).unwrap_or(if number < 0 { i64::MIN } else { i64::MAX })
}

// }}}

// {{{ Running ops

/// What an op made of a field; encoded only when the new tuple is written.
#[derive(Clone, Copy, Debug)]
enum Change<'a> {
    /// `=`: these encoded bytes replace the field.
    Set(&'a [u8]),
    /// `+` or `-`: the result.
    Number(Number),
    /// `&`, `|` or `^`: the result.
    Bits(u64),
    /// `:`: the new string is `head ++ paste ++ tail`, its length checked to fit in u32.
    Splice {
        /// The old bytes before the offset.
        head: &'a [u8],
        /// The pasted bytes.
        paste: &'a [u8],
        /// The old bytes after the cut.
        tail: &'a [u8],
    },
}

/// One field of the tuple being updated.
#[derive(Clone, Copy, Debug)]
struct Slot<'a> {
    /// The field's encoded bytes: from the old tuple, or the value an insert brought.
    old: &'a [u8],
    /// The op that changed the field, if one did.
    change: Option<Change<'a>>,
}

/// The fields of the tuple as the ops so far have left them.
struct TupleUpdate<'a> {
    /// The current fields, in order.
    slots: Vec<Slot<'a>>,
    /// 0 or 1: added back to zero-based numbers in error messages.
    index_base: i128,
}

impl<'a> TupleUpdate<'a> {
    /// Starts from the fields of the old tuple, none changed yet.
    fn new(fields: Vec<&'a [u8]>, index_base: u32) -> TupleUpdate<'a> {
        let slots = fields
            .into_iter()
            .map(|old| Slot { old, change: None })
            .collect();
        TupleUpdate {
            slots,
            index_base: index_base.into(),
        }
    }

    /// Runs one op. On error nothing has changed, which is what lets UPSERT skip the op.
    fn apply(&mut self, op: &Op<'a>) -> Result<(), BoxError> {
        match op.action {
            Action::Set(value) => self.set(op.field_no, value),
            Action::Insert(value) => self.insert(op.field_no, value),
            Action::Delete(count) => self.delete(op.field_no, count),
            Action::Arith(right) => self.arith(op, right),
            Action::Bitwise(right) => self.bitwise(op, right),
            Action::Splice(args) => self.splice(op, args),
        }
    }

    /// The number printed for the field at zero-based `position`.
    fn shown(&self, position: usize) -> i128 {
        self.index_base + position as i128
    }

    /// Resolves `field_no` to a position below `field_max` (1.6's `op_adjust_field_no`).
    fn position(&self, field_no: i128, field_max: usize) -> Result<usize, BoxError> {
        let field_max = field_max as i128;
        let resolved = if field_no >= 0 {
            field_no
        } else {
            field_no + field_max
        };
        match usize::try_from(resolved) {
            Ok(position) if resolved < field_max => Ok(position),
            _ if field_no >= 0 => Err(no_such_field(self.index_base + field_no)),
            _ => Err(no_such_field(field_no)),
        }
    }

    /// `=`: one past the last field appends; any earlier change of the field is dropped.
    fn set(&mut self, field_no: i128, value: &'a [u8]) -> Result<(), BoxError> {
        if field_no == self.slots.len() as i128 {
            return self.insert(field_no, value);
        }
        let position = self.position(field_no, self.slots.len())?;
        self.slots[position].change = Some(Change::Set(value));
        Ok(())
    }

    /// `!`: the new field goes before `field_no`; the end itself (or -1) appends.
    fn insert(&mut self, field_no: i128, value: &'a [u8]) -> Result<(), BoxError> {
        let position = self.position(field_no, self.slots.len() + 1)?;
        let slot = Slot {
            old: value,
            change: None,
        };
        self.slots.insert(position, slot);
        Ok(())
    }

    /// `#`: removes `count` fields, fewer if the tuple ends first.
    fn delete(&mut self, field_no: i128, count: u32) -> Result<(), BoxError> {
        let position = self.position(field_no, self.slots.len())?;
        let available = self.slots.len() - position;
        let count = available.min(count as usize);
        if count == 0 {
            return Err(update_field(self.shown(position), "cannot delete 0 fields"));
        }
        self.slots.drain(position..position + count);
        Ok(())
    }

    /// Resolves the field of a `+ - & | ^ :` op, which must not have been changed already.
    fn unchanged_field(&self, field_no: i128) -> Result<(usize, &'a [u8]), BoxError> {
        let position = self.position(field_no, self.slots.len())?;
        let slot = self.slots[position];
        if slot.change.is_some() {
            let reason = "double update of the same field";
            return Err(update_field(self.shown(position), reason));
        }
        Ok((position, slot.old))
    }

    /// `+` or `-`.
    fn arith(&mut self, op: &Op<'a>, right: Number) -> Result<(), BoxError> {
        let (position, old) = self.unchanged_field(op.field_no)?;
        let shown = self.shown(position);
        let left =
            Number::from_scalar(scalar(old)).ok_or_else(|| arg_type(op.opcode, shown, "NUMBER"))?;
        let result =
            arithmetic(left, right, op.opcode).ok_or_else(|| integer_overflow(op.opcode, shown))?;
        self.slots[position].change = Some(Change::Number(result));
        Ok(())
    }

    /// `&`, `|` or `^`: both operands must be unsigned.
    fn bitwise(&mut self, op: &Op<'a>, right: u64) -> Result<(), BoxError> {
        let (position, old) = self.unchanged_field(op.field_no)?;
        let Scalar::Unsigned(left) = scalar(old) else {
            return Err(arg_type(op.opcode, self.shown(position), "UINT"));
        };
        let result = match op.opcode {
            b'&' => left & right,
            b'|' => left | right,
            _ => left ^ right,
        };
        self.slots[position].change = Some(Change::Bits(result));
        Ok(())
    }

    /// `:` on a string field.
    fn splice(&mut self, op: &Op<'a>, args: SpliceArgs<'a>) -> Result<(), BoxError> {
        let (position, old) = self.unchanged_field(op.field_no)?;
        let shown = self.shown(position);
        let Scalar::Str(string) = scalar(old) else {
            return Err(arg_type(op.opcode, shown, "STR"));
        };
        let (start, end) = splice_range(args, string.len(), self.index_base)
            .ok_or_else(|| splice_error(shown, "offset is out of bound"))?;
        let (head, tail) = (&string[..start], &string[end..]);
        let new_len = head.len() + args.paste.len() + tail.len();
        if u32::try_from(new_len).is_err() {
            return Err(splice_error(shown, "the new string is too long"));
        }
        let paste = args.paste;
        self.slots[position].change = Some(Change::Splice { head, paste, tail });
        Ok(())
    }

    /// Writes the new tuple: untouched fields as they were, changed ones re-encoded.
    fn encode(&self) -> Result<Vec<u8>, BoxError> {
        let field_count = u32::try_from(self.slots.len()).map_err(write_failed)?;
        let size: usize = self.slots.iter().map(|slot| slot.old.len()).sum();
        let mut out = Vec::with_capacity(size + 16);
        rmp::encode::write_array_len(&mut out, field_count).map_err(write_failed)?;
        for slot in &self.slots {
            match slot.change {
                None => out.extend_from_slice(slot.old),
                Some(change) => encode_change(&mut out, change)?,
            }
        }
        Ok(out)
    }
}

/// `+` or `-` under 1.6's type rules: two integers give an exact integer that must fit in
/// `i64` or `u64` (`None` if not); otherwise a double operand gives a double, and a float
/// operand (with no double) gives a float, computed in double and then narrowed.
fn arithmetic(left: Number, right: Number, opcode: u8) -> Option<Number> {
    if let (Number::Integer(a), Number::Integer(b)) = (left, right) {
        let result = if opcode == b'-' { a - b } else { a + b };
        let fits = (i128::from(i64::MIN)..=i128::from(u64::MAX)).contains(&result);
        return fits.then_some(Number::Integer(result));
    }
    let (a, b) = (left.to_f64(), right.to_f64());
    let result = if opcode == b'-' { a - b } else { a + b };
    let is_double = matches!(left, Number::Double(_)) || matches!(right, Number::Double(_));
    Some(if is_double {
        Number::Double(result)
    } else {
        Number::Float(result as f32)
    })
}

/// The byte range a splice cuts from a string of `len` bytes, or `None` if the offset lies
/// before the start. A negative offset counts from the end (-1 is after the last byte); a
/// positive one is INDEX_BASE-based and clamped to the end. A negative cut length keeps that
/// many bytes at the tail (at most all of them); a long one stops at the end.
fn splice_range(args: SpliceArgs<'_>, len: usize, index_base: i128) -> Option<(usize, usize)> {
    let len = len as i128;
    let offset = i128::from(args.offset);
    let start = if offset < 0 {
        if offset < -(len + 1) {
            return None;
        }
        offset + len + 1
    } else if offset - index_base >= 0 {
        (offset - index_base).min(len)
    } else {
        return None;
    };
    let remaining = len - start;
    let cut_len = i128::from(args.cut_len);
    let cut_len = if cut_len < 0 {
        (remaining + cut_len).max(0)
    } else {
        cut_len.min(remaining)
    };
    let start_index = usize::try_from(start).ok()?;
    let end_index = usize::try_from(start + cut_len).ok()?;
    Some((start_index, end_index))
}

/// Encodes one changed field, in the shortest form (as msgpuck does).
fn encode_change(out: &mut Vec<u8>, change: Change<'_>) -> Result<(), BoxError> {
    match change {
        Change::Set(value) => out.extend_from_slice(value),
        Change::Number(number) => encode_number(out, number)?,
        Change::Bits(bits) => {
            rmp::encode::write_uint(out, bits).map_err(write_failed)?;
        }
        Change::Splice { head, paste, tail } => {
            let len = head.len() + paste.len() + tail.len();
            let len = u32::try_from(len).map_err(write_failed)?;
            rmp::encode::write_str_len(out, len).map_err(write_failed)?;
            out.extend_from_slice(head);
            out.extend_from_slice(paste);
            out.extend_from_slice(tail);
        }
    }
    Ok(())
}

/// Encodes an arithmetic result: a non-negative integer as uint, a negative one as int.
fn encode_number(out: &mut Vec<u8>, number: Number) -> Result<(), BoxError> {
    match number {
        Number::Integer(integer) if integer >= 0 => {
            let integer = u64::try_from(integer).map_err(write_failed)?;
            rmp::encode::write_uint(out, integer).map_err(write_failed)?;
        }
        Number::Integer(integer) => {
            let integer = i64::try_from(integer).map_err(write_failed)?;
            rmp::encode::write_sint(out, integer).map_err(write_failed)?;
        }
        Number::Float(float) => rmp::encode::write_f32(out, float).map_err(write_failed)?,
        Number::Double(double) => rmp::encode::write_f64(out, double).map_err(write_failed)?,
    }
    Ok(())
}

// }}}

#[cfg(test)]
mod tests {
    use super::*;
    use rmpv::Value;

    // {{{ Helpers

    /// A msgpack array of the given items: `mp![1, "abc", mp![2, 3]]`.
    macro_rules! mp {
        ($($item:expr),* $(,)?) => { Value::Array(vec![$(Value::from($item)),*]) };
    }

    fn enc(value: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        rmpv::encode::write_value(&mut out, value).unwrap();
        out
    }

    fn dec(bytes: &[u8]) -> Value {
        let mut rest = bytes;
        let value = rmpv::decode::read_value(&mut rest).unwrap();
        assert!(rest.is_empty(), "trailing bytes after {value}");
        value
    }

    /// The tuple most tests start from: `{1, 'abc', 5}`.
    fn abc() -> Value {
        mp![1, "abc", 5]
    }

    /// `{1, 'abc', third}`: what most results look like.
    fn abc_with(third: impl Into<Value>) -> Value {
        mp![1, "abc", third.into()]
    }

    fn op(name: &str, field: i64, arg: impl Into<Value>) -> Value {
        mp![name, field, arg.into()]
    }

    fn splice(field: i64, offset: i64, cut: i64, paste: &str) -> Value {
        mp![":", field, offset, cut, paste]
    }

    fn run(tuple: &Value, ops: &Value, index_base: u32) -> Result<Value, BoxError> {
        update(&enc(tuple), &enc(ops), index_base).map(|bytes| dec(&bytes))
    }

    /// Runs with INDEX_BASE 1 (Lua numbering).
    fn lua(tuple: &Value, ops: Value) -> Result<Value, BoxError> {
        run(tuple, &ops, 1)
    }

    fn error(code: ErrCode, message: &str) -> Result<Value, BoxError> {
        Err(BoxError::with_message(code, message))
    }

    fn no_such_field(field: i128) -> Result<Value, BoxError> {
        let message = format!("Field {field} was not found in the tuple");
        error(ErrCode::NO_SUCH_FIELD, &message)
    }

    fn arg_type(opcode: char, field: i64, expected: &str) -> Result<Value, BoxError> {
        let message = format!(
            "Argument type in operation '{opcode}' on field {field} does not match field type: \
            expected a {expected}"
        );
        error(ErrCode::ARG_TYPE, &message)
    }

    fn double_update(field: i64) -> Result<Value, BoxError> {
        let message = format!("Field {field} UPDATE error: double update of the same field");
        error(ErrCode::UPDATE_FIELD, &message)
    }

    fn overflow(opcode: char, field: i64) -> Result<Value, BoxError> {
        let message =
            format!("Integer overflow when performing '{opcode}' operation on field {field}");
        error(ErrCode::UPDATE_INTEGER_OVERFLOW, &message)
    }

    fn illegal(reason: &str) -> Result<Value, BoxError> {
        error(
            ErrCode::ILLEGAL_PARAMS,
            &format!("Illegal parameters, {reason}"),
        )
    }

    fn unknown_op() -> Result<Value, BoxError> {
        error(ErrCode::UNKNOWN_UPDATE_OP, "Unknown UPDATE operation")
    }

    // }}}

    // {{{ = ! #

    #[test]
    fn set_replaces_appends_and_counts_from_the_end() {
        let t = abc();
        assert_eq!(lua(&t, mp![op("=", 2, "x")]), Ok(mp![1, "x", 5]));
        assert_eq!(lua(&t, mp![op("=", 4, 7)]), Ok(mp![1, "abc", 5, 7]));
        assert_eq!(lua(&t, mp![op("=", -1, 9)]), Ok(mp![1, "abc", 9]));
        assert_eq!(lua(&t, mp![op("=", -3, 9)]), Ok(mp![9, "abc", 5]));
        let nested = mp![Value::Nil, Value::Map(vec![("k".into(), 1.into())])];
        assert_eq!(
            lua(&t, mp![op("=", 1, nested.clone())]),
            Ok(mp![nested, "abc", 5])
        );
        assert_eq!(lua(&t, mp![op("=", 5, 7)]), no_such_field(5));
        assert_eq!(lua(&t, mp![op("=", -4, 7)]), no_such_field(-4));
    }

    #[test]
    fn insert_before_a_field_or_at_the_end() {
        let t = abc();
        assert_eq!(lua(&t, mp![op("!", 1, 0)]), Ok(mp![0, 1, "abc", 5]));
        assert_eq!(lua(&t, mp![op("!", 3, 4)]), Ok(mp![1, "abc", 4, 5]));
        assert_eq!(lua(&t, mp![op("!", 4, 9)]), Ok(mp![1, "abc", 5, 9]));
        // -1 appends after the last field, -(count + 1) inserts in front.
        assert_eq!(lua(&t, mp![op("!", -1, 9)]), Ok(mp![1, "abc", 5, 9]));
        assert_eq!(lua(&t, mp![op("!", -2, 9)]), Ok(mp![1, "abc", 9, 5]));
        assert_eq!(lua(&t, mp![op("!", -4, 9)]), Ok(mp![9, 1, "abc", 5]));
        assert_eq!(lua(&t, mp![op("!", 5, 9)]), no_such_field(5));
        assert_eq!(lua(&t, mp![op("!", -5, 9)]), no_such_field(-5));
    }

    #[test]
    fn ops_on_an_empty_tuple() {
        let empty = mp![];
        assert_eq!(lua(&empty, mp![op("!", 1, "x")]), Ok(mp!["x"]));
        assert_eq!(lua(&empty, mp![op("=", 1, "x")]), Ok(mp!["x"]));
        assert_eq!(lua(&empty, mp![op("!", -1, "x")]), Ok(mp!["x"]));
        assert_eq!(lua(&empty, mp![op("#", 1, 1)]), no_such_field(1));
        assert_eq!(lua(&empty, mp![op("=", -1, 1)]), no_such_field(-1));
    }

    #[test]
    fn delete_clamps_to_the_end_and_refuses_zero() {
        let t = mp![1, 2, 3, 4];
        assert_eq!(lua(&t, mp![op("#", 2, 1)]), Ok(mp![1, 3, 4]));
        assert_eq!(lua(&t, mp![op("#", 2, 2)]), Ok(mp![1, 4]));
        assert_eq!(lua(&t, mp![op("#", 2, 100)]), Ok(mp![1]));
        assert_eq!(lua(&t, mp![op("#", -1, 1)]), Ok(mp![1, 2, 3]));
        assert_eq!(lua(&t, mp![op("#", -2, 5)]), Ok(mp![1, 2]));
        assert_eq!(lua(&t, mp![op("#", 1, 4)]), Ok(mp![]));
        let zero = error(
            ErrCode::UPDATE_FIELD,
            "Field 2 UPDATE error: cannot delete 0 fields",
        );
        assert_eq!(lua(&t, mp![op("#", 2, 0)]), zero);
        // 1.6 reads the count as a uint32: 2^32 is 0 (2.6 agrees), and a negative count wraps
        // to a huge one that reaches the end (2.6 rejects it: "expected a positive integer").
        assert_eq!(lua(&t, mp![op("#", 2, 1i64 << 32)]), zero);
        assert_eq!(lua(&t, mp![op("#", 2, (1i64 << 32) + 1)]), Ok(mp![1, 3, 4]));
        assert_eq!(lua(&t, mp![op("#", 2, -1)]), Ok(mp![1]));
        assert_eq!(lua(&t, mp![op("#", 5, 1)]), no_such_field(5));
        assert_eq!(lua(&t, mp![op("#", 2, "x")]), arg_type('#', 2, "UINT"));
    }

    #[test]
    fn later_ops_see_the_shifted_fields() {
        let t = mp![1, 2, 3, 4];
        let ops = mp![
            op("#", 1, 1),
            op("=", 1, 20),
            op("!", 1, 10),
            op("+", -1, 1)
        ];
        assert_eq!(lua(&t, ops), Ok(mp![10, 20, 3, 5]));
        assert_eq!(lua(&t, mp![op("#", 1, 3), op("#", 1, 1)]), Ok(mp![]));
    }

    // }}}

    // {{{ Arithmetic

    #[test]
    fn integer_arithmetic_is_exact() {
        let t = abc();
        assert_eq!(lua(&t, mp![op("+", 3, 1)]), Ok(abc_with(6)));
        assert_eq!(lua(&t, mp![op("-", 3, 6)]), Ok(abc_with(-1)));
        let beyond_i64 = 9223372036854775813u64;
        assert_eq!(lua(&t, mp![op("-", 3, i64::MIN)]), Ok(abc_with(beyond_i64)));
        let near_min = -9223372036854775803i64;
        assert_eq!(lua(&t, mp![op("+", 3, i64::MIN)]), Ok(abc_with(near_min)));
        let top = abc_with(u64::MAX);
        assert_eq!(
            lua(&abc_with(u64::MAX - 1), mp![op("+", 3, 1)]),
            Ok(top.clone())
        );
        assert_eq!(lua(&top, mp![op("-", 3, u64::MAX)]), Ok(abc_with(0)));
        assert_eq!(lua(&top, mp![op("+", 3, i64::MIN)]), Ok(abc_with(i64::MAX)));
        let bottom = abc_with(i64::MIN + 1);
        assert_eq!(lua(&bottom, mp![op("-", 3, 1)]), Ok(abc_with(i64::MIN)));
    }

    #[test]
    fn integer_overflow_both_ways() {
        let top = abc_with(u64::MAX);
        assert_eq!(lua(&top, mp![op("+", 3, 1)]), overflow('+', 3));
        assert_eq!(lua(&top, mp![op("-", 3, -1)]), overflow('-', 3));
        let bottom = abc_with(i64::MIN);
        assert_eq!(lua(&bottom, mp![op("-", 3, 1)]), overflow('-', 3));
        assert_eq!(lua(&bottom, mp![op("+", 3, -1)]), overflow('+', 3));
        assert_eq!(lua(&abc(), mp![op("-", 3, u64::MAX)]), overflow('-', 3));
        // Base 0 prints the number as sent.
        assert_eq!(run(&top, &mp![op("+", 2, 1)], 0), overflow('+', 2));
    }

    #[test]
    fn double_and_float_win_over_integers() {
        let t = abc();
        assert_eq!(
            lua(&t, mp![op("+", 3, 1.5f64)]),
            Ok(abc_with(Value::F64(6.5)))
        );
        assert_eq!(
            lua(&t, mp![op("+", 3, 1.5f32)]),
            Ok(abc_with(Value::F32(6.5)))
        );
        assert_eq!(
            lua(&t, mp![op("-", 3, 0.5f32)]),
            Ok(abc_with(Value::F32(4.5)))
        );
        let float = abc_with(Value::F32(1.25));
        assert_eq!(
            lua(&float, mp![op("+", 3, 1)]),
            Ok(abc_with(Value::F32(2.25)))
        );
        assert_eq!(
            lua(&float, mp![op("+", 3, 1.0f64)]),
            Ok(abc_with(Value::F64(2.25)))
        );
        assert_eq!(
            lua(&float, mp![op("+", 3, 0.25f32)]),
            Ok(abc_with(Value::F32(1.5)))
        );
        let double = abc_with(Value::F64(1.25));
        assert_eq!(
            lua(&double, mp![op("-", 3, 0.25f32)]),
            Ok(abc_with(Value::F64(1.0)))
        );
        assert_eq!(
            lua(&double, mp![op("-", 3, 2)]),
            Ok(abc_with(Value::F64(-0.75)))
        );
        // A double result stays a double even when it is whole.
        assert_eq!(
            lua(&t, mp![op("+", 3, 1.0f64)]),
            Ok(abc_with(Value::F64(6.0)))
        );
        let huge = abc_with(u64::MAX);
        let sum = Value::F64(u64::MAX as f64 + 1.0);
        assert_eq!(lua(&huge, mp![op("+", 3, 1.0f64)]), Ok(abc_with(sum)));
    }

    #[test]
    fn arithmetic_needs_numbers() {
        let t = abc();
        assert_eq!(lua(&t, mp![op("+", 2, 1)]), arg_type('+', 2, "NUMBER"));
        assert_eq!(
            lua(&mp![1, Value::Nil], mp![op("+", 2, 1)]),
            arg_type('+', 2, "NUMBER")
        );
        assert_eq!(lua(&t, mp![op("-", 3, "1")]), arg_type('-', 3, "NUMBER"));
        assert_eq!(
            lua(&t, mp![op("-", 3, Value::Nil)]),
            arg_type('-', 3, "NUMBER")
        );
    }

    /// The bytes of the third field after `ops` ran on `{1, 'abc', 5}`.
    fn third_field_bytes(ops: Value) -> Vec<u8> {
        let new_tuple = update(&enc(&abc()), &enc(&ops), 1).unwrap();
        new_tuple[6..].to_vec()
    }

    #[test]
    fn results_use_the_shortest_encoding() {
        assert_eq!(third_field_bytes(mp![op("+", 3, 1)]), [0x06]);
        assert_eq!(third_field_bytes(mp![op("+", 3, 195)]), [0xcc, 200]);
        assert_eq!(third_field_bytes(mp![op("-", 3, 6)]), [0xff]);
        assert_eq!(third_field_bytes(mp![op("-", 3, 105)]), [0xd0, 0x9c]);
        assert_eq!(third_field_bytes(mp![op("|", 3, 256)]), [0xcd, 1, 5]);
        assert_eq!(third_field_bytes(mp![op("+", 3, 0.5f32)])[0], 0xca);
        assert_eq!(third_field_bytes(mp![op("+", 3, 0.5f64)])[0], 0xcb);
    }

    #[test]
    fn signed_markers_count_as_integers() {
        // 5 sent as int64 (MP_INT in msgpuck's terms) is still a number for '+'...
        let tuple = [0x93, 0x01, 0xa1, b'a', 0xd3, 0, 0, 0, 0, 0, 0, 0, 5];
        let plus = enc(&mp![op("+", 3, 1)]);
        assert_eq!(dec(&update(&tuple, &plus, 1).unwrap()), mp![1, "a", 6]);
        // ...but not an unsigned one for the bitwise ops, as in 1.6.
        let and = enc(&mp![op("&", 3, 1)]);
        let result = update(&tuple, &and, 1).map(|bytes| dec(&bytes));
        assert_eq!(result, arg_type('&', 3, "UINT"));
    }

    // }}}

    // {{{ Bitwise

    #[test]
    fn bitwise_ops_on_unsigned_values() {
        let t = abc_with(0b1100);
        assert_eq!(lua(&t, mp![op("&", 3, 0b1010)]), Ok(abc_with(0b1000)));
        assert_eq!(lua(&t, mp![op("|", 3, 0b1010)]), Ok(abc_with(0b1110)));
        assert_eq!(lua(&t, mp![op("^", 3, 0b1010)]), Ok(abc_with(0b0110)));
        assert_eq!(lua(&t, mp![op("|", 3, u64::MAX)]), Ok(abc_with(u64::MAX)));
        assert_eq!(lua(&t, mp![op("&", 3, -1)]), arg_type('&', 3, "UINT"));
        assert_eq!(lua(&t, mp![op("|", 3, 1.0f64)]), arg_type('|', 3, "UINT"));
        assert_eq!(
            lua(&abc_with(-4), mp![op("^", 3, 1)]),
            arg_type('^', 3, "UINT")
        );
        assert_eq!(
            lua(&abc_with(4.0f64), mp![op("&", 3, 1)]),
            arg_type('&', 3, "UINT")
        );
        assert_eq!(lua(&t, mp![op("&", 2, 1)]), arg_type('&', 2, "UINT"));
    }

    // }}}

    // {{{ Splice

    /// The second field after `ops` ran on `{1, 'abc', 5}`.
    fn spliced(ops: Value, index_base: u32) -> Value {
        let new_tuple = run(&abc(), &ops, index_base).unwrap();
        new_tuple.as_array().unwrap()[1].clone()
    }

    #[test]
    fn splice_offsets_and_cuts() {
        assert_eq!(spliced(mp![splice(2, 1, 1, "x")], 1), "xbc".into());
        assert_eq!(spliced(mp![splice(2, 2, 1, "xyz")], 1), "axyzc".into());
        assert_eq!(spliced(mp![splice(2, 4, 0, "!")], 1), "abc!".into());
        assert_eq!(spliced(mp![splice(2, 100, 5, "!")], 1), "abc!".into());
        assert_eq!(spliced(mp![splice(2, 2, 100, "")], 1), "a".into());
        // Negative offsets: -1 is after the last byte, -(len + 1) the start.
        assert_eq!(spliced(mp![splice(2, -1, 0, "!")], 1), "abc!".into());
        assert_eq!(spliced(mp![splice(2, -2, 1, "x")], 1), "abx".into());
        assert_eq!(spliced(mp![splice(2, -4, 1, "x")], 1), "xbc".into());
        // A negative cut keeps that many bytes at the tail.
        assert_eq!(spliced(mp![splice(2, 1, -1, "x")], 1), "xc".into());
        assert_eq!(spliced(mp![splice(2, 1, -3, "x")], 1), "xabc".into());
        assert_eq!(spliced(mp![splice(2, 1, -100, "x")], 1), "xabc".into());
        assert_eq!(spliced(mp![splice(2, 100, -100, "x")], 1), "abcx".into());
        assert_eq!(spliced(mp![splice(2, 1, i64::MAX, "x")], 1), "x".into());
        // INDEX_BASE 0: offset 0 is the start, and the field is numbered from 0.
        assert_eq!(spliced(mp![splice(1, 0, 1, "x")], 0), "xbc".into());
        assert_eq!(spliced(mp![splice(1, 1, 1, "x")], 0), "axc".into());
        let empty = mp![""];
        assert_eq!(lua(&empty, mp![splice(1, 1, 1, "new")]), Ok(mp!["new"]));
        assert_eq!(lua(&empty, mp![splice(1, -1, -1, "new")]), Ok(mp!["new"]));
    }

    #[test]
    fn splice_errors() {
        let t = abc();
        let message = "SPLICE error on field 2: offset is out of bound";
        let bound = error(ErrCode::SPLICE, message);
        assert_eq!(lua(&t, mp![splice(2, 0, 1, "x")]), bound);
        assert_eq!(lua(&t, mp![splice(2, -5, 1, "x")]), bound);
        assert_eq!(lua(&t, mp![splice(2, i64::MIN, 1, "x")]), bound);
        let message = "SPLICE error on field 1: offset is out of bound";
        assert_eq!(
            run(&t, &mp![splice(1, -5, 1, "x")], 0),
            error(ErrCode::SPLICE, message)
        );
        assert_eq!(lua(&t, mp![splice(3, 1, 1, "x")]), arg_type(':', 3, "STR"));
        assert_eq!(lua(&t, mp![mp![":", 2, 1, 1, 7]]), arg_type(':', 2, "STR"));
        let bin = mp![":", 2, 1, 1, Value::Binary(b"x".to_vec())];
        assert_eq!(lua(&t, mp![bin]), arg_type(':', 2, "STR"));
        assert_eq!(
            lua(&t, mp![mp![":", 2, "1", 1, "x"]]),
            arg_type(':', 2, "UINT")
        );
        assert_eq!(
            lua(&t, mp![mp![":", 2, 1, 1.5, "x"]]),
            arg_type(':', 2, "UINT")
        );
    }

    #[test]
    fn splice_result_header_grows_with_the_string() {
        let t = mp!["a".repeat(30)];
        let bytes = update(&enc(&t), &enc(&mp![splice(1, -1, 0, "bb")]), 1).unwrap();
        assert_eq!(&bytes[..3], &[0x91, 0xd9, 32]);
        assert_eq!(dec(&bytes), mp![format!("{}bb", "a".repeat(30))]);
    }

    // }}}

    // {{{ The op list

    /// `ops` fail the same way in `update` and in `check_ops`.
    fn assert_ops_fail(ops: Value, expected: Result<Value, BoxError>) {
        let checked = check_ops(&enc(&ops), 1).map(|()| Value::Nil);
        assert_eq!(checked, expected);
        assert_eq!(lua(&abc(), ops), expected);
    }

    #[test]
    fn op_list_shape_errors() {
        assert_ops_fail(mp![], illegal("no operations for update"));
        let many = Value::Array(vec![op("=", 1, 1); 4001]);
        assert_ops_fail(many, illegal("too many operations for update"));
        let not_array = illegal("update operations must be an array {{op,..}, {op,..}}");
        assert_ops_fail(Value::from(5), not_array.clone());
        assert_ops_fail(Value::Map(vec![]), not_array.clone());
        assert_ops_fail(mp![5], not_array.clone());
        assert_ops_fail(mp![op("=", 1, 1), "="], not_array);
        let empty = illegal("update operation must be an array {op,..}, got empty array");
        assert_ops_fail(mp![mp![]], empty);
        let name = illegal("update operation name must be a string");
        assert_ops_fail(mp![mp![1, 2, 3]], name.clone());
        assert_ops_fail(mp![mp![Value::Binary(b"=".to_vec()), 1, 1]], name);
        let field = illegal("field id must be a number");
        assert_ops_fail(mp![mp!["=", "a", 3]], field.clone());
        assert_ops_fail(mp![mp!["=", 1.0, 3]], field.clone());
        assert_ops_fail(mp![mp!["=", Value::Nil, 3]], field);
    }

    #[test]
    fn unknown_ops_and_wrong_arity() {
        assert_ops_fail(mp![op("", 2, 1)], unknown_op());
        assert_ops_fail(mp![op("x", 2, 1)], unknown_op());
        assert_ops_fail(mp![op("bad_op", 2, 1)], unknown_op());
        assert_ops_fail(mp![mp!["=", 2]], unknown_op());
        assert_ops_fail(mp![mp!["="]], unknown_op());
        assert_ops_fail(mp![mp!["+", 2, 1, 1]], unknown_op());
        assert_ops_fail(mp![mp![":", 2, 2, 2, "", "extra"]], unknown_op());
        assert_ops_fail(mp![op(":", 2, "x")], unknown_op());
        // Only the first byte counts.
        assert_eq!(lua(&abc(), mp![op("+plus", 3, 1)]), Ok(abc_with(6)));
        assert_eq!(lua(&abc(), mp![op("=set", 3, 1)]), Ok(abc_with(1)));
    }

    #[test]
    fn op_list_bytes_errors() {
        let t = enc(&abc());
        let mut ops = enc(&mp![op("=", 1, 1)]);
        ops.push(0x90);
        let unpack = illegal("can't unpack update operations");
        assert_eq!(update(&t, &ops, 1).map(|bytes| dec(&bytes)), unpack);
        let invalid = error(
            ErrCode::INVALID_MSGPACK,
            "Invalid MsgPack - update operations",
        );
        let full = enc(&mp![op("=", 1, "abcdef")]);
        for len in 0..full.len() {
            assert_eq!(
                update(&t, &full[..len], 1).map(|bytes| dec(&bytes)),
                invalid
            );
        }
        assert_eq!(check_ops(&[0xc1], 1).map(|()| Value::Nil), invalid);
    }

    #[test]
    fn four_thousand_ops_are_allowed() {
        let ops = Value::Array(vec![op("=", 1, 7); 4000]);
        assert_eq!(lua(&abc(), ops), Ok(mp![7, "abc", 5]));
    }

    #[test]
    fn every_op_is_checked_before_any_runs() {
        // The first op would fail when run, but a later one is malformed: that is reported.
        assert_eq!(
            lua(&abc(), mp![op("+", 9, 1), op("bad", 1, 1)]),
            unknown_op()
        );
        let ops = mp![op("=", 1, 1), op("+", 3, "x")];
        assert_eq!(lua(&abc(), ops), arg_type('+', 3, "NUMBER"));
    }

    #[test]
    fn check_ops_ignores_the_tuple() {
        let ops = enc(&mp![op("+", 100, 1), op("#", -50, 1), splice(7, 0, 0, "")]);
        assert_eq!(check_ops(&ops, 0), Ok(()));
        // Offset 0 is only wrong against a string, when the op runs.
        assert_eq!(check_ops(&ops, 1), Ok(()));
        let zero = enc(&mp![op("=", 0, 1)]);
        assert_eq!(check_ops(&zero, 0), Ok(()));
        assert_eq!(check_ops(&zero, 1).map(|()| Value::Nil), no_such_field(0));
    }

    // }}}

    // {{{ Field numbers

    #[test]
    fn index_base_zero_and_one_address_the_same_fields() {
        let t = mp![10, 20, 30];
        for (lua_field, expected) in [(1, mp![11, 20, 30]), (2, mp![10, 21, 30])] {
            assert_eq!(lua(&t, mp![op("+", lua_field, 1)]), Ok(expected.clone()));
            assert_eq!(run(&t, &mp![op("+", lua_field - 1, 1)], 0), Ok(expected));
        }
        assert_eq!(run(&t, &mp![op("+", -1, 1)], 0), Ok(mp![10, 20, 31]));
        assert_eq!(run(&t, &mp![op("=", 3, 40)], 0), Ok(mp![10, 20, 30, 40]));
        assert_eq!(run(&t, &mp![op("!", 0, 0)], 0), Ok(mp![0, 10, 20, 30]));
        assert_eq!(run(&t, &mp![op("#", 0, 2)], 0), Ok(mp![30]));
    }

    #[test]
    fn error_field_numbers_are_in_the_clients_numbering() {
        // 1.6 prints INDEX_BASE + the zero-based number: 1-based from Lua, and the number the
        // binary protocol sent otherwise (2.x prints 1-based numbers for both).
        let t = abc();
        assert_eq!(run(&t, &mp![op("+", 2, 1)], 1), arg_type('+', 2, "NUMBER"));
        assert_eq!(run(&t, &mp![op("+", 1, 1)], 0), arg_type('+', 1, "NUMBER"));
        // A negative number is resolved first, then printed the same way.
        assert_eq!(run(&t, &mp![op("+", -2, 1)], 1), arg_type('+', 2, "NUMBER"));
        assert_eq!(run(&t, &mp![op("+", -2, 1)], 0), arg_type('+', 1, "NUMBER"));
        // An argument checked while decoding sees the unresolved number: 1.6 prints
        // INDEX_BASE + (-1), that is "field 0" from Lua (2.6 prints -1).
        assert_eq!(
            run(&t, &mp![op("+", -1, "x")], 1),
            arg_type('+', 0, "NUMBER")
        );
        assert_eq!(
            run(&t, &mp![op("+", -1, "x")], 0),
            arg_type('+', -1, "NUMBER")
        );
        // ER_NO_SUCH_FIELD shows the number exactly as sent.
        assert_eq!(run(&t, &mp![op("+", 0, 1)], 1), no_such_field(0));
        assert_eq!(run(&t, &mp![op("+", 4, 1)], 1), no_such_field(4));
        assert_eq!(run(&t, &mp![op("+", 3, 1)], 0), no_such_field(3));
        assert_eq!(run(&t, &mp![op("+", -4, 1)], 0), no_such_field(-4));
        assert_eq!(
            run(&t, &mp![op("=", i64::MIN, 1)], 1),
            no_such_field(i64::MIN.into())
        );
        let huge = mp![mp!["=", u64::MAX, 1]];
        assert_eq!(run(&t, &huge, 1), no_such_field(u64::MAX.into()));
        assert_eq!(run(&t, &huge, 0), no_such_field(u64::MAX.into()));
    }

    // }}}

    // {{{ One change per field

    #[test]
    fn a_second_change_of_a_field_is_refused() {
        let t = abc();
        assert_eq!(lua(&t, mp![op("+", 3, 1), op("+", 3, 1)]), double_update(3));
        assert_eq!(
            lua(&t, mp![op("+", 3, 1), op("-", -1, 1)]),
            double_update(3)
        );
        assert_eq!(lua(&t, mp![op("=", 3, 7), op("+", 3, 1)]), double_update(3));
        assert_eq!(lua(&t, mp![op("&", 3, 1), op("+", 3, 1)]), double_update(3));
        let ops = mp![splice(2, 1, 1, "x"), splice(2, 1, 1, "y")];
        assert_eq!(lua(&t, ops), double_update(2));
        assert_eq!(
            lua(&t, mp![op("=", 2, "s"), splice(2, 1, 1, "y")]),
            double_update(2)
        );
        // Base 0 prints the number as sent.
        assert_eq!(
            run(&t, &mp![op("+", 2, 1), op("+", 2, 1)], 0),
            double_update(2)
        );
    }

    #[test]
    fn set_overrides_and_new_fields_start_clean() {
        let t = abc();
        assert_eq!(lua(&t, mp![op("+", 3, 1), op("=", 3, 7)]), Ok(abc_with(7)));
        assert_eq!(
            lua(&t, mp![op("=", 3, "x"), op("=", 3, "y")]),
            Ok(abc_with("y"))
        );
        let ops = mp![splice(2, 2, 1, "xyz"), op("=", 2, "q")];
        assert_eq!(lua(&t, ops), Ok(mp![1, "q", 5]));
        // A field made by '!' or by '=' past the end may take one more op.
        assert_eq!(
            lua(&t, mp![op("!", 3, 7), op("+", 3, 1)]),
            Ok(mp![1, "abc", 8, 5])
        );
        assert_eq!(
            lua(&t, mp![op("=", 4, 7), op("+", 4, 1)]),
            Ok(mp![1, "abc", 5, 8])
        );
    }

    #[test]
    fn a_change_moves_with_its_field() {
        let t = abc();
        let ops = mp![op("+", 3, 1), op("#", 2, 1), op("+", 2, 1)];
        assert_eq!(lua(&t, ops), double_update(2));
        let ops = mp![op("+", 3, 1), op("!", 1, 0), op("+", 4, 1)];
        assert_eq!(lua(&t, ops), double_update(4));
        let ops = mp![op("+", 3, 1), op("#", 3, 1), op("=", 3, 0), op("+", 3, 1)];
        assert_eq!(lua(&t, ops), Ok(mp![1, "abc", 1]));
    }

    // }}}

    // {{{ Bytes in, bytes out

    #[test]
    fn untouched_fields_are_copied_verbatim() {
        // An array16 header, a uint64-encoded 5, a str8-encoded "a", then 1.
        let tuple = [
            0xdc, 0, 3, 0xcf, 0, 0, 0, 0, 0, 0, 0, 5, 0xd9, 1, b'a', 0x01,
        ];
        let ops = enc(&mp![op("=", 3, 2)]);
        let new_tuple = update(&tuple, &ops, 1).unwrap();
        // The header is re-encoded, the untouched fields are not.
        assert_eq!(
            new_tuple,
            [0x93, 0xcf, 0, 0, 0, 0, 0, 0, 0, 5, 0xd9, 1, b'a', 0x02]
        );
        // '=' and '!' store their value's bytes as sent: here 7 as a uint16.
        let value = [0xcd, 0, 7];
        let ops = [
            0x92, 0x93, 0xa1, b'=', 0x01, 0xcd, 0, 7, 0x93, 0xa1, b'!', 0xff, 0xcd, 0, 7,
        ];
        let new_tuple = update(&tuple, &ops, 1).unwrap();
        let expected = [&[0x94][..], &value, &tuple[12..], &value].concat();
        assert_eq!(new_tuple, expected);
    }

    #[test]
    fn tuple_errors() {
        let ops = enc(&mp![op("=", 1, 1)]);
        let result = update(&enc(&Value::from(5)), &ops, 1).map(|bytes| dec(&bytes));
        assert_eq!(
            result,
            error(ErrCode::TUPLE_NOT_ARRAY, "Tuple/Key must be MsgPack array")
        );
        let invalid = error(ErrCode::INVALID_MSGPACK, "Invalid MsgPack - tuple");
        for broken in [
            &[][..],
            &[0x93, 0x01],
            &[0x91, 0xc1],
            &[0x91, 0x01, 0x02],
            &[0xa3, b'a'],
        ] {
            assert_eq!(update(broken, &ops, 1).map(|bytes| dec(&bytes)), invalid);
        }
    }

    // }}}

    // {{{ UPSERT

    /// Runs `upsert` with INDEX_BASE 1 and decodes the result.
    fn lua_upsert(tuple: &Value, ops: Value) -> (Value, Vec<String>) {
        let (new_tuple, skipped) = upsert(&enc(tuple), &enc(&ops), 1);
        let messages = skipped.into_iter().map(|error| error.message).collect();
        (dec(&new_tuple), messages)
    }

    #[test]
    fn upsert_skips_failing_ops() {
        let ops = mp![op("+", 3, 1), op("+", 2, 1), op("=", 4, "x"), op("#", 9, 1)];
        let (new_tuple, skipped) = lua_upsert(&abc(), ops);
        assert_eq!(new_tuple, mp![1, "abc", 6, "x"]);
        let expected_skipped = [
            "Argument type in operation '+' on field 2 does not match field type: \
                expected a NUMBER",
            "Field 9 was not found in the tuple",
        ];
        assert_eq!(skipped, expected_skipped);
        // A skipped op leaves nothing behind: the third op is a double update only because
        // the second succeeded.
        let ops = mp![op("#", 2, 0), op("+", 3, 1), op("+", 3, 1), op("-", 3, 1)];
        let (new_tuple, skipped) = lua_upsert(&abc(), ops);
        assert_eq!(new_tuple, abc_with(6));
        assert_eq!(skipped.len(), 3);
        assert_eq!(skipped[0], "Field 2 UPDATE error: cannot delete 0 fields");
        assert_eq!(
            skipped[1],
            "Field 3 UPDATE error: double update of the same field"
        );
        let ops = mp![op("+", 3, u64::MAX), op("+", 1, 1)];
        let (new_tuple, skipped) = lua_upsert(&abc_with(1), ops);
        assert_eq!(new_tuple, mp![2, "abc", 1]);
        assert_eq!(
            skipped,
            ["Integer overflow when performing '+' operation on field 3"]
        );
    }

    #[test]
    fn upsert_with_nothing_failing_equals_update() {
        let t = enc(&abc());
        let ops = enc(&mp![op("!", 1, 0), splice(3, 1, 1, "A"), op("#", -1, 1)]);
        let (new_tuple, skipped) = upsert(&t, &ops, 1);
        assert!(skipped.is_empty());
        assert_eq!(Ok(new_tuple), update(&t, &ops, 1));
    }

    #[test]
    fn upsert_with_a_malformed_op_list_keeps_the_tuple() {
        let t = enc(&abc());
        let (new_tuple, errors) = upsert(&t, &enc(&mp![op("+", 3, 1), op("?", 3, 1)]), 1);
        assert_eq!(new_tuple, t);
        assert_eq!(errors, [BoxError::new(ErrCode::UNKNOWN_UPDATE_OP, &[])]);
        let (new_tuple, errors) = upsert(&[0x93, 0x01], &enc(&mp![op("+", 1, 1)]), 1);
        assert_eq!(new_tuple, [0x93, 0x01]);
        assert_eq!(
            errors,
            [BoxError::new(ErrCode::INVALID_MSGPACK, &[&"tuple"])]
        );
    }

    // }}}

    // {{{ fields and field_count

    #[test]
    fn fields_slices_each_field() {
        let items = vec![
            Value::from(1),
            "abc".into(),
            mp![1, 2],
            Value::Map(vec![("a".into(), Value::Nil)]),
            Value::Binary(vec![1, 2, 3]),
            Value::Ext(5, vec![9; 16]),
            Value::Ext(-1, vec![9; 3]),
            true.into(),
            Value::F32(1.0),
            (-100).into(),
        ];
        let bytes = enc(&Value::Array(items.clone()));
        let expected: Vec<Vec<u8>> = items.iter().map(enc).collect();
        assert_eq!(
            fields(&bytes),
            Ok(expected.iter().map(Vec::as_slice).collect())
        );
        assert_eq!(field_count(&bytes), Ok(10));
        assert_eq!(fields(&[0x90]), Ok(vec![]));
        assert_eq!(field_count(&[0x90]), Ok(0));
    }

    #[test]
    fn fields_rejects_broken_tuples() {
        let invalid = BoxError::new(ErrCode::INVALID_MSGPACK, &[&"tuple"]);
        let broken: [&[u8]; 8] = [
            &[],
            &[0x93, 0x01, 0x02],
            &[0x91, 0xc1],
            &[0x91, 0x01, 0x01],
            &[0xdd, 0xff, 0xff, 0xff, 0xff],
            &[0x91, 0xdb, 0xff, 0xff, 0xff, 0xff, b'a'],
            &[0x91, 0xd8, 0x01],
            &[0xc1],
        ];
        for bytes in broken {
            assert_eq!(fields(bytes), Err(invalid.clone()), "{bytes:?}");
            assert_eq!(field_count(bytes), Err(invalid.clone()), "{bytes:?}");
        }
        let not_array = BoxError::new(ErrCode::TUPLE_NOT_ARRAY, &[]);
        for bytes in [&[0x05][..], &[0xa1, b'a'], &[0x80], &[0xc0]] {
            assert_eq!(fields(bytes), Err(not_array.clone()));
            assert_eq!(field_count(bytes), Err(not_array.clone()));
        }
    }

    #[test]
    fn deep_nesting_does_not_recurse() {
        let mut deep = vec![0x91; 200_000];
        deep.push(0x01);
        assert_eq!(field_count(&deep), Ok(1));
        deep.pop();
        assert_eq!(
            field_count(&deep).map_err(|error| error.code),
            Err(ErrCode::INVALID_MSGPACK)
        );
    }

    // }}}

    // {{{ Random input

    /// xorshift64*: a fixed seed keeps failures reproducible.
    struct Random(u64);

    impl Random {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, bound: u64) -> u64 {
            self.next() % bound.max(1)
        }

        fn value(&mut self) -> Value {
            match self.below(12) {
                0 => Value::from(self.below(10)),
                1 => Value::from(-(self.below(10) as i64)),
                2 => Value::from(u64::MAX - self.below(3)),
                3 => Value::from(i64::MIN + self.below(3) as i64),
                4 => Value::F32(self.below(100) as f32 / 4.0),
                5 => Value::F64(self.below(100) as f64 / 4.0),
                6 => Value::from(&"abcdefgh"[..self.below(9) as usize]),
                7 => Value::Nil,
                8 => mp![self.below(3)],
                9 => Value::from(self.next() as i64),
                10 => Value::from(self.next()),
                _ => Value::Binary(vec![1, 2]),
            }
        }

        fn op(&mut self) -> Value {
            let names = ["=", "+", "-", "&", "|", "^", ":", "!", "#", "?", ""];
            let name = names[self.below(names.len() as u64) as usize];
            let field = self.below(13) as i64 - 6;
            let mut items = vec![name.into(), field.into()];
            let extra = if name == ":" {
                3
            } else {
                1 + self.below(10) / 9
            };
            for _ in 0..extra {
                items.push(self.value());
            }
            Value::Array(items)
        }

        fn ops(&mut self) -> Value {
            Value::Array((0..1 + self.below(4)).map(|_| self.op()).collect())
        }

        fn tuple(&mut self) -> Value {
            Value::Array((0..self.below(6)).map(|_| self.value()).collect())
        }

        /// Overwrites a few bytes and sometimes cuts the tail.
        fn mutate(&mut self, mut bytes: Vec<u8>) -> Vec<u8> {
            for _ in 0..self.below(4) {
                if bytes.is_empty() {
                    break;
                }
                let at = self.below(bytes.len() as u64) as usize;
                bytes[at] = self.next() as u8;
            }
            if self.below(4) == 0 {
                bytes.truncate(self.below(bytes.len() as u64 + 1) as usize);
            }
            bytes
        }

        fn noise(&mut self) -> Vec<u8> {
            (0..self.below(24)).map(|_| self.next() as u8).collect()
        }
    }

    /// Runs every entry point; whatever comes out must be a valid tuple.
    fn exercise(tuple: &[u8], ops: &[u8], index_base: u32) {
        let _ = check_ops(ops, index_base);
        let _ = field_count(tuple);
        if let Ok(new_tuple) = update(tuple, ops, index_base) {
            assert!(fields(&new_tuple).is_ok());
        }
        let (new_tuple, _) = upsert(tuple, ops, index_base);
        if fields(tuple).is_ok() {
            assert!(fields(&new_tuple).is_ok());
        }
    }

    #[test]
    fn random_input_never_panics() {
        let mut random = Random(0x9e37_79b9_7f4a_7c15);
        for round in 0..20_000 {
            let index_base = round % 2;
            let tuple = enc(&random.tuple());
            let ops = enc(&random.ops());
            exercise(&tuple, &ops, index_base);
            exercise(&random.mutate(tuple.clone()), &ops, index_base);
            exercise(&tuple, &random.mutate(ops.clone()), index_base);
            exercise(&random.noise(), &ops, index_base);
            exercise(&tuple, &random.noise(), index_base);
            exercise(&random.noise(), &random.noise(), index_base);
        }
    }

    // }}}
}
