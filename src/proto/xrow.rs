//! iproto packets: framing, header and body decoding, request and reply encoding, greetings.
//!
//! Pure; owned by nobody. The server (net/iproto.rs), the net.box client and later the
//! relay and applier threads all read and write packets through this file.
//!
//! ```text
//!   packet := len header [body]
//!   len    := msgpack uint: bytes of header + body (we always write 0xce + u32 BE)
//!   header := map {0x00 type/status: uint, 0x01 sync: uint, 0x05 schema id: uint, ...}
//!   body   := map {key: value, ...}
//! ```
//!
//! A bad length prefix breaks the framing: the connection cannot go on. Anything inside a
//! frame that is wrong (header or body) is a request error: the frame boundaries are known,
//! so the peer gets an error reply and the connection lives.

use crate::r#box::db::{Request, RequestKind};
use crate::r#box::key_def::skip_value;
use crate::constants::{GREETING_SIZE, IPROTO_REPLY_SIZE_MAX, TARANTOOL_VERSION};
use crate::error::{BoxError, ErrCode, ErrorKind};

use super::iproto_constants::{key, request_type};

/// Bytes of the length prefix we write: 0xce and a big-endian u32.
pub const LEN_PREFIX_SIZE: usize = 5;

/// Bytes of an error message sent in a reply; the rest is cut off. Far above any message
/// the server words, and far below [`IPROTO_REPLY_SIZE_MAX`].
const ERROR_MESSAGE_SIZE_MAX: usize = 1024 * 1024;

// {{{ framing

/// What the front of an input buffer holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// Not a whole packet yet; `need` is the total the packet will take, when known.
    Incomplete { need: Option<usize> },
    /// A packet: header and body are `input[start..end]`.
    Complete { start: usize, end: usize },
    /// The length prefix is not a msgpack uint, or is over `size_max`.
    Broken(String),
}

/// Find the first packet of `input`.
pub fn next_frame(input: &[u8], size_max: usize) -> Frame {
    let Some(&first) = input.first() else {
        return Frame::Incomplete { need: None };
    };
    let width = match first {
        0x00..=0x7f => 0,
        0xcc => 1,
        0xcd => 2,
        0xce => 4,
        0xcf => 8,
        other => return Frame::Broken(format!("invalid packet length marker 0x{other:02x}")),
    };
    let Some(bytes) = input.get(1..1 + width) else {
        return Frame::Incomplete { need: None };
    };
    let len = if width == 0 {
        u64::from(first)
    } else {
        bytes
            .iter()
            .fold(0u64, |acc, byte| (acc << 8) | u64::from(*byte))
    };
    if len > size_max as u64 {
        return Frame::Broken(format!("packet length {len} is over the limit {size_max}"));
    }
    let start = 1 + width;
    let end = start + len as usize;
    if input.len() < end {
        return Frame::Incomplete { need: Some(end) };
    }
    Frame::Complete { start, end }
}

// }}}

// {{{ header

/// A packet header.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Header {
    /// The request type, or the response status.
    pub kind: u32,
    pub sync: u64,
    /// 0: not given (the request is not checked against the schema).
    pub schema_id: u32,
    /// Replication rows: the origin server and its LSN, and the time.
    pub server_id: u32,
    pub lsn: u64,
    pub timestamp: f64,
}

fn header_error() -> BoxError {
    BoxError::new(ErrCode::INVALID_MSGPACK, &[&"packet header"])
}

fn body_error() -> BoxError {
    BoxError::new(ErrCode::INVALID_MSGPACK, &[&"packet body"])
}

/// Read a msgpack uint from the front of `data`, advancing it.
fn take_uint(data: &mut &[u8]) -> Option<u64> {
    let marker = *data.first()?;
    let width = match marker {
        0x00..=0x7f => {
            *data = &data[1..];
            return Some(u64::from(marker));
        }
        0xcc => 1,
        0xcd => 2,
        0xce => 4,
        0xcf => 8,
        _ => return None,
    };
    let bytes = data.get(1..1 + width)?;
    let value = bytes
        .iter()
        .fold(0u64, |acc, byte| (acc << 8) | u64::from(*byte));
    *data = &data[1 + width..];
    Some(value)
}

/// Skip one value at the front of `data`, returning it.
fn take_value<'a>(data: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = skip_value(data)?;
    let (value, rest) = data.split_at(len);
    *data = rest;
    Some(value)
}

/// Read a map header at the front of `data`, advancing it.
fn take_map_len(data: &mut &[u8]) -> Option<u32> {
    rmp::decode::read_map_len(data).ok()
}

/// Decode the header at the front of a packet; returns it and the rest (the body).
pub fn decode_header(packet: &[u8]) -> Result<(Header, &[u8]), BoxError> {
    let mut data = packet;
    let count = take_map_len(&mut data).ok_or_else(header_error)?;
    let mut header = Header::default();
    for _ in 0..count {
        let code = take_uint(&mut data).ok_or_else(header_error)?;
        if code >= u64::from(key::KEY_MAX) {
            return Err(header_error());
        }
        if code == u64::from(key::TIMESTAMP) {
            header.timestamp = rmp::decode::read_f64(&mut data).map_err(|_| header_error())?;
            continue;
        }
        let value = take_uint(&mut data).ok_or_else(header_error)?;
        match code as u8 {
            key::REQUEST_TYPE => header.kind = u32::try_from(value).unwrap_or(u32::MAX),
            key::SYNC => header.sync = value,
            key::SERVER_ID => header.server_id = value as u32,
            key::LSN => header.lsn = value,
            key::SCHEMA_ID => header.schema_id = value as u32,
            // Other keys below KEY_MAX are uints 1.6 ignores (2.x's TSN, FLAGS, ...).
            _ => {}
        }
    }
    Ok((header, data))
}

// }}}

// {{{ body

/// The keys of a request body (each as given; absent keys are `None`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Body<'a> {
    pub space_id: Option<u64>,
    pub index_id: Option<u64>,
    pub limit: Option<u64>,
    pub offset: Option<u64>,
    pub iterator: Option<u64>,
    pub index_base: Option<u64>,
    /// Arrays, as their encoding.
    pub key: Option<&'a [u8]>,
    pub tuple: Option<&'a [u8]>,
    pub ops: Option<&'a [u8]>,
    /// Strings, as their bytes.
    pub function_name: Option<&'a [u8]>,
    pub user_name: Option<&'a [u8]>,
    pub expr: Option<&'a [u8]>,
    pub server_uuid: Option<&'a [u8]>,
    pub cluster_uuid: Option<&'a [u8]>,
    /// A map, as its encoding.
    pub vclock: Option<&'a [u8]>,
}

/// Decode a request body (empty input: an empty body). Known keys must have their type
/// (else ER_INVALID_MSGPACK "packet body"); unknown keys are skipped.
pub fn decode_body(data: &[u8]) -> Result<Body<'_>, BoxError> {
    let mut body = Body::default();
    if data.is_empty() {
        return Ok(body);
    }
    let mut rest = data;
    let count = take_map_len(&mut rest).ok_or_else(body_error)?;
    for _ in 0..count {
        let code = take_uint(&mut rest).ok_or_else(body_error)?;
        let value = take_value(&mut rest).ok_or_else(body_error)?;
        let Ok(code) = u8::try_from(code) else {
            continue;
        };
        let uint = || crate::r#box::mp::read_u64(value).ok_or_else(body_error);
        let array = || {
            crate::r#box::mp::is_array(value)
                .then_some(value)
                .ok_or_else(body_error)
        };
        let string = || crate::r#box::mp::read_str(value).ok_or_else(body_error);
        match code {
            key::SPACE_ID => body.space_id = Some(uint()?),
            key::INDEX_ID => body.index_id = Some(uint()?),
            key::LIMIT => body.limit = Some(uint()?),
            key::OFFSET => body.offset = Some(uint()?),
            key::ITERATOR => body.iterator = Some(uint()?),
            key::INDEX_BASE => body.index_base = Some(uint()?),
            key::KEY => body.key = Some(array()?),
            key::TUPLE => body.tuple = Some(array()?),
            key::OPS => body.ops = Some(array()?),
            key::FUNCTION_NAME => body.function_name = Some(string()?),
            key::USER_NAME => body.user_name = Some(string()?),
            key::EXPR => body.expr = Some(string()?),
            key::SERVER_UUID => body.server_uuid = Some(string()?),
            key::CLUSTER_UUID => body.cluster_uuid = Some(string()?),
            key::VCLOCK if crate::r#box::mp::is_map(value) => body.vclock = Some(value),
            key::VCLOCK => return Err(body_error()),
            _ => {}
        }
    }
    Ok(body)
}

/// ER_MISSING_REQUEST_FIELD naming the key as 1.6 does.
fn missing(name: &str) -> BoxError {
    BoxError::new(ErrCode::MISSING_REQUEST_FIELD, &[&name])
}

/// A present key, or ER_MISSING_REQUEST_FIELD.
pub fn required<T>(value: Option<T>, name: &str) -> Result<T, BoxError> {
    value.ok_or_else(|| missing(name))
}

/// A 32-bit id from a body uint (larger values keep their low 32 bits, as 1.6 stores them).
fn id(value: u64) -> u32 {
    value as u32
}

/// The data request (SELECT, INSERT, REPLACE, UPDATE, DELETE, UPSERT) of a body, with
/// 1.6's mandatory keys checked. `uid` is the session's user.
pub fn data_request<'a>(kind: u32, body: &Body<'a>, uid: u32) -> Result<Request<'a>, BoxError> {
    let space_id = id(required(body.space_id, "space_id")?);
    let request_kind = match kind {
        request_type::SELECT => RequestKind::Select,
        request_type::INSERT => RequestKind::Insert,
        request_type::REPLACE => RequestKind::Replace,
        request_type::UPDATE => RequestKind::Update,
        request_type::DELETE => RequestKind::Delete,
        request_type::UPSERT => RequestKind::Upsert,
        other => return Err(BoxError::new(ErrCode::UNKNOWN_REQUEST_TYPE, &[&other])),
    };
    let mut request = Request::new(request_kind, space_id);
    request.uid = uid;
    request.index_id = id(body.index_id.unwrap_or(0));
    request.index_base = id(body.index_base.unwrap_or(0));
    match request_kind {
        RequestKind::Select => {
            request.limit = id(required(body.limit, "limit")?.min(u64::from(u32::MAX)));
            request.key = required(body.key, "key")?;
            request.offset = id(body.offset.unwrap_or(0).min(u64::from(u32::MAX)));
            request.iterator = body.iterator.unwrap_or(0);
        }
        RequestKind::Insert | RequestKind::Replace => {
            request.tuple = required(body.tuple, "tuple")?;
        }
        RequestKind::Update => {
            request.key = required(body.key, "key")?;
            request.tuple = required(body.tuple, "tuple")?;
        }
        RequestKind::Delete => request.key = required(body.key, "key")?,
        RequestKind::Upsert => {
            request.ops = required(body.ops, "operations")?;
            request.tuple = required(body.tuple, "tuple")?;
        }
    }
    Ok(request)
}

// }}}

// {{{ encoding

/// Start a packet: a length placeholder and the header map `{type, sync[, schema]}`.
/// Returns where the packet starts, for [`end_packet`].
pub fn begin_packet(out: &mut Vec<u8>, kind: u32, sync: u64, schema_id: Option<u32>) -> usize {
    // Assembled on the stack and appended at once: a push at a time checked the capacity
    // a dozen times per reply (2% of TX's time for PINGs).
    let mut head = [0u8; 28];
    head[0] = 0xce;
    head[5] = if schema_id.is_some() { 0x83 } else { 0x82 };
    head[6] = key::REQUEST_TYPE;
    head[7] = 0xce;
    head[8..12].copy_from_slice(&kind.to_be_bytes());
    head[12] = key::SYNC;
    head[13] = 0xcf;
    head[14..22].copy_from_slice(&sync.to_be_bytes());
    let len = match schema_id {
        Some(schema_id) => {
            head[22] = key::SCHEMA_ID;
            head[23] = 0xce;
            head[24..28].copy_from_slice(&schema_id.to_be_bytes());
            28
        }
        None => 22,
    };
    let start = out.len();
    out.extend_from_slice(&head[..len]);
    start
}

/// Finish the packet begun at `start`: patch its length prefix. The caller bounds what it
/// writes: a packet must fit the prefix (replies are held to [`IPROTO_REPLY_SIZE_MAX`]).
pub fn end_packet(out: &mut [u8], start: usize) {
    let len = out.len() - start - LEN_PREFIX_SIZE;
    let len = u32::try_from(len).expect("a packet over 4 GiB");
    out[start + 1..start + LEN_PREFIX_SIZE].copy_from_slice(&len.to_be_bytes());
}

/// Bytes a reply packet takes besides its data items: the length prefix, the header
/// written by [`begin_packet`] (with a schema id), and `{0x30: array32}`.
const DATA_REPLY_OVERHEAD: usize = LEN_PREFIX_SIZE + 1 + 6 + 10 + 6 + 2 + 5;

/// ER_MEMORY_ISSUE for a reply of `size` bytes over the limit, as Tarantool reports a reply
/// it cannot allocate.
fn reply_too_large(size: usize) -> BoxError {
    let mut err = BoxError::new(ErrCode::MEMORY_ISSUE, &[&size, &"iproto", &"reply"]);
    err.kind = ErrorKind::OutOfMemory;
    err
}

/// Start the body `{0x30: [` of a reply with data; returns where the array header is, for
/// [`end_data`] (the count is patched in when known).
pub fn begin_data(out: &mut Vec<u8>) -> usize {
    out.push(0x81);
    out.push(key::DATA);
    let at = out.len();
    out.extend_from_slice(&[0xdd, 0, 0, 0, 0]);
    at
}

/// Patch the item count of the data array begun at `at`.
pub fn end_data(out: &mut [u8], at: usize, count: u32) {
    out[at + 1..at + 5].copy_from_slice(&count.to_be_bytes());
}

/// A whole reply `{0x30: [tuples...]}`, or, when it would be over
/// [`IPROTO_REPLY_SIZE_MAX`], an ER_MEMORY_ISSUE error reply instead.
pub fn write_data_reply<'t>(
    out: &mut Vec<u8>,
    sync: u64,
    schema_id: u32,
    tuples: impl IntoIterator<Item = &'t [u8]>,
) {
    write_data_reply_within(out, sync, schema_id, tuples, IPROTO_REPLY_SIZE_MAX);
}

/// [`write_data_reply`] with the size limit `size_max` (at most what a length prefix holds).
/// Past the limit, the items are only measured, not copied.
fn write_data_reply_within<'t>(
    out: &mut Vec<u8>,
    sync: u64,
    schema_id: u32,
    tuples: impl IntoIterator<Item = &'t [u8]>,
    size_max: usize,
) {
    debug_assert!(size_max <= u32::MAX as usize);
    let start = begin_packet(out, request_type::OK, sync, Some(schema_id));
    let at = begin_data(out);
    debug_assert_eq!(out.len() - start, DATA_REPLY_OVERHEAD);
    let mut tuples = tuples.into_iter();
    let mut count = 0u32;
    let mut size = DATA_REPLY_OVERHEAD;
    let mut over = false;
    for tuple in tuples.by_ref() {
        size = size.saturating_add(tuple.len());
        over = size - LEN_PREFIX_SIZE > size_max || count == u32::MAX;
        if over {
            break;
        }
        out.extend_from_slice(tuple);
        count += 1;
    }
    if !over {
        debug_assert_eq!(out.len() - start, size);
        end_data(out, at, count);
        end_packet(out, start);
        return;
    }
    // Over the limit: measure the rest for the message, and answer with an error.
    let size = tuples.fold(size, |size, tuple| size.saturating_add(tuple.len()));
    out.truncate(start);
    write_error_reply(out, sync, schema_id, &reply_too_large(size));
}

/// A whole reply `{0x30: [...]}` whose `count` items are already encoded one after another
/// in `items`; over [`IPROTO_REPLY_SIZE_MAX`], the ER_MEMORY_ISSUE error reply instead.
pub fn write_encoded_data_reply(
    out: &mut Vec<u8>,
    sync: u64,
    schema_id: u32,
    items: &[u8],
    count: u32,
) {
    let size = DATA_REPLY_OVERHEAD.saturating_add(items.len());
    if size - LEN_PREFIX_SIZE > IPROTO_REPLY_SIZE_MAX {
        write_error_reply(out, sync, schema_id, &reply_too_large(size));
        return;
    }
    let start = begin_packet(out, request_type::OK, sync, Some(schema_id));
    let at = begin_data(out);
    out.extend_from_slice(items);
    end_data(out, at, count);
    end_packet(out, start);
}

/// A whole OK reply with an empty body (PING, AUTH).
pub fn write_ok_reply(out: &mut Vec<u8>, sync: u64, schema_id: u32) {
    let start = begin_packet(out, request_type::OK, sync, Some(schema_id));
    out.push(0x80);
    end_packet(out, start);
}

/// A whole error reply: status `0x8000 | code`, body `{0x31: message}`.
pub fn write_error_reply(out: &mut Vec<u8>, sync: u64, schema_id: u32, err: &BoxError) {
    let status = request_type::TYPE_ERROR | err.code.0;
    let start = begin_packet(out, status, sync, Some(schema_id));
    out.push(0x81);
    out.push(key::ERROR);
    // A message is text of a bounded size in practice; this only keeps a huge one (a Lua
    // error with a giant string) from overflowing the packet.
    let message = err.message.as_bytes();
    let message = &message[..message.len().min(ERROR_MESSAGE_SIZE_MAX)];
    out.push(0xdb);
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    end_packet(out, start);
}

// }}}

// {{{ greeting

/// The iproto greeting: `Tarantool <version> (Binary) <uuid>` and the base64 salt, each
/// space-padded to 63 columns plus `\n`.
pub fn greeting(instance_uuid: &str, salt: &[u8; 32]) -> Vec<u8> {
    use base64::Engine as _;
    let salt = base64::engine::general_purpose::STANDARD.encode(salt);
    let mut bytes = Vec::with_capacity(GREETING_SIZE);
    for line in [
        format!("Tarantool {TARANTOOL_VERSION} (Binary) {instance_uuid}"),
        salt,
    ] {
        bytes.extend_from_slice(format!("{line:<63}\n").as_bytes());
    }
    bytes
}

/// A peer's greeting, read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Greeting {
    /// `major.minor.patch` as one number: `major << 16 | minor << 8 | patch`.
    pub version_id: u32,
    /// "Binary", "Lua console", or "Binary" implied by an old greeting without one.
    pub protocol: String,
    pub uuid: Option<String>,
    /// The decoded salt (20 to 63 bytes; empty for a console).
    pub salt: Vec<u8>,
}

/// Read a peer's 128-byte greeting by the rules of PROTOCOL.md §1.
pub fn parse_greeting(bytes: &[u8]) -> Result<Greeting, String> {
    use base64::Engine as _;
    let bad = |why: &str| format!("invalid greeting: {why}");
    if bytes.len() != GREETING_SIZE || bytes[63] != b'\n' || bytes[127] != b'\n' {
        return Err(bad("not two 64-byte lines"));
    }
    let line = std::str::from_utf8(&bytes[..63]).map_err(|_| bad("not text"))?;
    let rest = line
        .strip_prefix("Tarantool ")
        .ok_or_else(|| bad("no 'Tarantool'"))?;
    let mut words = rest.split_whitespace();
    let version = words.next().ok_or_else(|| bad("no version"))?;
    let version_id = version_id(version).ok_or_else(|| bad("bad version"))?;
    let (protocol, uuid) = match words.next() {
        Some(word) if word.starts_with('(') => {
            let mut protocol = word.trim_start_matches('(').to_string();
            let mut last = word.to_string();
            while !last.ends_with(')') {
                last = words
                    .next()
                    .ok_or_else(|| bad("unterminated protocol"))?
                    .to_string();
                protocol.push(' ');
                protocol.push_str(&last);
            }
            let protocol = protocol.trim_end_matches(')').to_string();
            (protocol, words.next().map(str::to_string))
        }
        _ => (String::from("Binary"), None),
    };
    // Only the binary protocol has a salt; a console's second line is text.
    let salt = if protocol == "Binary" {
        let text = std::str::from_utf8(&bytes[64..127]).map_err(|_| bad("salt not text"))?;
        let salt = base64::engine::general_purpose::STANDARD
            .decode(text.trim_end())
            .map_err(|_| bad("salt not base64"))?;
        if !(20..64).contains(&salt.len()) {
            return Err(bad("salt size"));
        }
        salt
    } else {
        Vec::new()
    };
    Ok(Greeting {
        version_id,
        protocol,
        uuid,
        salt,
    })
}

/// `major.minor.patch[-suffix]` as `major << 16 | minor << 8 | patch`.
fn version_id(text: &str) -> Option<u32> {
    let mut parts = text.split(['.', '-']);
    let major: u32 = parts.next()?.parse().ok()?;
    let minor: u32 = parts.next()?.parse().ok()?;
    let patch: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    Some(major << 16 | minor << 8 | patch)
}

// }}}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(text: &str) -> Vec<u8> {
        let clean: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        (0..clean.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&clean[i..i + 2], 16).unwrap())
            .collect()
    }

    fn packet(bytes: &[u8]) -> &[u8] {
        match next_frame(bytes, 1 << 20) {
            Frame::Complete { start, end } => &bytes[start..end],
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn frames() {
        assert_eq!(next_frame(&[], 100), Frame::Incomplete { need: None });
        assert_eq!(
            next_frame(&[0xce, 0, 0], 100),
            Frame::Incomplete { need: None }
        );
        assert_eq!(
            next_frame(&[0xce, 0, 0, 0, 3, 0x80], 100),
            Frame::Incomplete { need: Some(8) }
        );
        assert_eq!(
            next_frame(&[0x02, 0x80, 0x80, 0x01], 100),
            Frame::Complete { start: 1, end: 3 }
        );
        assert!(matches!(next_frame(&[0xa1], 100), Frame::Broken(_)));
        assert!(matches!(
            next_frame(&[0xcd, 0x10, 0x00], 100),
            Frame::Broken(_)
        ));
    }

    /// Requests captured from real clients (TARANTOOL-2.6-OBSERVED.md §5.2).
    #[test]
    fn decodes_captured_requests() {
        let ping = hex("ce00000006820040010180");
        let (header, body) = decode_header(packet(&ping)).unwrap();
        assert_eq!((header.kind, header.sync), (64, 1));
        assert_eq!(decode_body(body).unwrap(), Body::default());

        let select = hex("ce0000001582000101088610cd02001100126413001400209101");
        let (header, body) = decode_header(packet(&select)).unwrap();
        assert_eq!((header.kind, header.sync), (1, 8));
        let body = decode_body(body).unwrap();
        let request = data_request(header.kind, &body, 0).unwrap();
        assert_eq!(request.space_id, 512);
        assert_eq!(request.limit, 100);
        assert_eq!(request.key, &[0x91, 0x01]);

        let auth = hex(
            "ce0000002b82000701068223a1752192a9636861702d73686131c4144ec41359e55cd19877f2\
             1550bdb7862d5532c6ca",
        );
        let (header, body) = decode_header(packet(&auth)).unwrap();
        assert_eq!(header.kind, request_type::AUTH);
        let body = decode_body(body).unwrap();
        assert_eq!(body.user_name, Some(&b"u"[..]));
        assert!(body.tuple.is_some());

        let upsert = hex("ce00000017820009010f8310cd020021920ba175289193a13d01a178");
        let (header, body) = decode_header(packet(&upsert)).unwrap();
        let body = decode_body(body).unwrap();
        let request = data_request(header.kind, &body, 0).unwrap();
        assert_eq!(request.kind, RequestKind::Upsert);
        assert_eq!(request.ops, &hex("9193a13d01a178")[..]);

        let stale = hex("ce000000088300400118050180");
        let (header, _) = decode_header(packet(&stale)).unwrap();
        assert_eq!((header.kind, header.sync, header.schema_id), (64, 24, 1));
    }

    #[test]
    fn body_type_and_presence_errors() {
        // INSERT {space_id: "x"}: a string where a uint belongs.
        let body = [0x81, 0x10, 0xa1, b'x'];
        assert_eq!(
            decode_body(&body).unwrap_err().code,
            ErrCode::INVALID_MSGPACK
        );
        // INSERT {space_id: 512}: no tuple.
        let body = decode_body(&[0x81, 0x10, 0xcd, 0x02, 0x00]).unwrap();
        let err = data_request(request_type::INSERT, &body, 0).unwrap_err();
        assert_eq!(err.code, ErrCode::MISSING_REQUEST_FIELD);
        assert_eq!(err.message, "Missing mandatory field 'tuple' in request");
        let err = data_request(request_type::SELECT, &body, 0).unwrap_err();
        assert_eq!(err.message, "Missing mandatory field 'limit' in request");
        // Unknown keys are skipped, whatever they hold.
        let body = decode_body(&[0x82, 0x50, 0x91, 0x01, 0x10, 0x05]).unwrap();
        assert_eq!(body.space_id, Some(5));
        // Truncated.
        assert!(decode_body(&[0x82, 0x10, 0x05]).is_err());
        assert!(decode_body(&[0x91]).is_err());
        // Header: not a map, a key past KEY_MAX, a wrong type.
        assert!(decode_header(&[0x90]).is_err());
        assert!(decode_header(&[0x81, 0x29, 0x00]).is_err());
        assert!(decode_header(&[0x81, 0x01, 0xa1, b'x']).is_err());
        assert!(decode_header(&[0x81, 0x04, 0x00]).is_err());
    }

    /// Replies byte for byte as Tarantool writes them (§5.2).
    #[test]
    fn encodes_replies_as_tarantool() {
        let mut out = Vec::new();
        write_ok_reply(&mut out, 1, 80);
        assert_eq!(
            out,
            hex("ce000000188300ce0000000001cf000000000000000105ce0000005080")
        );

        let mut out = Vec::new();
        let tuple = hex("920aa374656e");
        write_data_reply(&mut out, 12, 80, [&tuple[..]]);
        assert_eq!(
            out,
            hex(
                "ce000000248300ce0000000001cf000000000000000c05ce000000508130dd00000001920aa374656e"
            )
        );

        let mut out = Vec::new();
        let err = BoxError::new(ErrCode::NO_SUCH_SPACE, &[&999]);
        write_error_reply(&mut out, 10, 80, &err);
        let expected = hex(
            "ce000000388300ce0000802401cf000000000000000a05ce000000508131db0000001a\
             537061636520273939392720646f6573206e6f74206578697374",
        );
        assert_eq!(out, expected);
    }

    /// A reply over the limit is an ER_MEMORY_ISSUE error reply, not a panic or a packet
    /// with a wrapped length; the limit is a parameter, so no 4 GiB is needed.
    #[test]
    fn a_reply_over_the_limit_is_an_error() {
        let tuple = hex("920aa374656e");
        let fits = DATA_REPLY_OVERHEAD - LEN_PREFIX_SIZE + 2 * tuple.len();
        let mut out = vec![0xaa];
        write_data_reply_within(&mut out, 12, 80, [&tuple[..], &tuple[..]], fits);
        let mut expected = vec![0xaa];
        write_data_reply(&mut expected, 12, 80, [&tuple[..], &tuple[..]]);
        assert_eq!(out, expected);
        assert_eq!(out.len(), 1 + DATA_REPLY_OVERHEAD + 2 * tuple.len());

        let mut out = vec![0xaa];
        let items = [&tuple[..]; 3];
        write_data_reply_within(&mut out, 12, 80, items, fits);
        let mut expected = vec![0xaa];
        let size = DATA_REPLY_OVERHEAD + 3 * tuple.len();
        let err = BoxError::new(ErrCode::MEMORY_ISSUE, &[&size, &"iproto", &"reply"]);
        assert_eq!(
            err.message,
            format!("Failed to allocate {size} bytes in iproto for reply")
        );
        write_error_reply(&mut expected, 12, 80, &err);
        assert_eq!(out, expected);
        let (header, body) = decode_header(packet(&out[1..])).unwrap();
        assert_eq!(header.kind, request_type::TYPE_ERROR | 2);
        assert_eq!(header.sync, 12);
        assert!(body.starts_with(&[0x81, key::ERROR]));

        // A huge error message is cut, not wrapped around.
        let mut out = Vec::new();
        let long = BoxError::with_message(ErrCode::PROC_LUA, "x".repeat(3 << 20));
        write_error_reply(&mut out, 1, 80, &long);
        let len = u32::from_be_bytes(out[1..5].try_into().unwrap()) as usize;
        assert_eq!(len, out.len() - LEN_PREFIX_SIZE);
        assert!(out.len() < ERROR_MESSAGE_SIZE_MAX + 64);
    }

    #[test]
    fn greetings() {
        let salt = [7u8; 32];
        let bytes = greeting("cb8af90d-4699-4636-8594-368691a0120c", &salt);
        assert_eq!(bytes.len(), 128);
        assert!(bytes.starts_with(b"Tarantool 1.6.9 (Binary) cb8af90d-"));
        let parsed = parse_greeting(&bytes).unwrap();
        assert_eq!(parsed.version_id, 0x010609);
        assert_eq!(parsed.protocol, "Binary");
        assert_eq!(
            parsed.uuid.as_deref(),
            Some("cb8af90d-4699-4636-8594-368691a0120c")
        );
        assert_eq!(parsed.salt, salt.to_vec());

        let observed = b"Tarantool 2.6.0 (Binary) cb8af90d-4699-4636-8594-368691a0120c  \n\
0nMKKYqp+CZES36uNccxbVdXyjhaY/oYlA6l6HQ8K7k=                   \n";
        let parsed = parse_greeting(observed).unwrap();
        assert_eq!(parsed.version_id, 0x020600);
        assert_eq!(parsed.salt.len(), 32);

        let console = crate::net::console::greeting();
        assert_eq!(parse_greeting(&console).unwrap().protocol, "Lua console");

        let mut old = format!("{:<63}\n", "Tarantool 1.6.6-83-gc6b2129").into_bytes();
        old.extend_from_slice(format!("{:<63}\n", "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIz").as_bytes());
        let parsed = parse_greeting(&old).unwrap();
        assert_eq!(
            (parsed.version_id, parsed.protocol.as_str()),
            (0x010606, "Binary")
        );
        assert!(parse_greeting(&old[..100]).is_err());
    }
}
