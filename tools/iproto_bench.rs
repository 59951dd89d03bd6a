//! iproto load generator: throughput and latency of one request kind against any
//! Tarantool-compatible server (Tarantool 1.6/2.x, tarantula), over the binary protocol only.
//!
//! ```text
//! iproto_bench HOST:PORT [--kind KIND] [--connections C] [--depth D] [--requests R]
//!              [--warmup W] [--user U --password P] [--space ID] [--keys K]
//!              [--function NAME] [--call16] [--expr LUA] [--sequential] [--prepare]
//!              [--key-base N] [--seed N] [--timeout SECONDS]
//! ```
//!
//! What it measures: C connections, each on its own OS thread with a blocking socket
//! (TCP_NODELAY), share R requests of one KIND. Each connection keeps up to D requests in
//! flight: it encodes as many requests as the window has room for into one buffer, writes them
//! with one `write`, reads whatever replies have arrived, and refills the window. Replies are
//! matched to requests by sync, so they may arrive in any order. A request's latency runs from
//! the write that carries it to the read that completes its reply. Connections claim requests
//! from one shared counter, so all of them stay busy until the last few requests. The clock
//! starts once every connection has connected, authenticated and finished its share of the W
//! warmup requests (which are not measured), and stops when the last reply arrives.
//!
//! Kinds (KIND, default `ping`); K is `--keys`, the space is `--space` (default 512), index 0:
//! - `ping`: PING.
//! - `select`: SELECT by primary key, iterator EQ, limit 1, of a key in 1..=K.
//! - `insert`: INSERT {key, 20-byte string} of keys never used before: key = base + n where n
//!   counts the run's requests (warmup included) and base is `--key-base`, by default the
//!   start time in nanoseconds since the Unix epoch. A run cannot send more than one request
//!   a nanosecond, so the next run's base lies past every key of this one (unless the system
//!   clock steps back): repeated runs never collide, and never touch keys 1..=K.
//! - `replace`: REPLACE {key, 20-byte string}, key in 1..=K.
//! - `update`: UPDATE of key in 1..=K with `{'=', 1, 20-byte string}` (field 1 numbered from 0
//!   on the wire: the second field).
//! - `upsert`: UPSERT {key, 20-byte string} with the same `=` operation, key in 1..=K.
//! - `delete`: DELETE of key in 1..=K (after the first pass most of them miss: not an error).
//! - `call`: CALL (type 10) of `--function` (default `bench_call`) with one argument, a key
//!   in 1..=K; with `--call16`, the 1.6 CALL (type 6).
//! - `eval`: EVAL of `--expr` (default `return 1`) with no arguments.
//! - `prepare`: fills the space: REPLACE {key, 20-byte string} of every key 1..=K, over one
//!   connection with 128 requests in flight (C, D, R, W and `--sequential` do not apply).
//!   Any error reply makes it fail (exit status 1).
//!
//! Keys in 1..=K are random (xorshift) unless `--sequential`, which cycles through them in
//! order. `--prepare` fills the space (as `--kind prepare` does, reporting on stderr) before
//! the run of KIND; `--prepare` with no `--kind` only fills it. `tools/bench/iproto_server.lua`
//! starts a server with everything the kinds need (space 512, guest grants, `bench_call`).
//!
//! HOST:PORT may be a bare port (on 127.0.0.1). Other options: `--connections` (default 1),
//! `--depth` (requests in flight per connection, default 1, at most 1048576), `--requests`
//! (total over all connections, default 100000), `--warmup` (default 0), `--user` and
//! `--password` (chap-sha1 login; none: guest), `--seed` (the random keys; default from the
//! clock), `--timeout` (seconds to wait for a reply before giving up, default 30).
//!
//! Output: one line on stdout, latencies in microseconds (percentiles within 1%):
//!
//! ```text
//! kind=select connections=4 depth=64 requests=1000000 errors=0 seconds=1.234 rps=810372 p50_us=210 p90_us=300 p99_us=520 p999_us=900 max_us=2100
//! ```
//!
//! `errors` counts error replies; they are not fatal, and the first one's message goes to
//! stderr. Exit status: 0 when the run completed (error replies included), 1 when connecting,
//! logging in or the protocol failed (message on stderr), 2 on bad arguments.
//!
//! Mind the server's limits when choosing D: Tarantool stops reading a connection's requests
//! while `net_msg_max` (768) of its requests are in progress, and a connection's unread replies
//! must fit in the socket buffers (D requests of small replies always do).

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use sha1::{Digest, Sha1};

// ---------------------------------------------------------------------------------------------
// The protocol.

const IPROTO_CODE: u64 = 0x00;
const IPROTO_SYNC: u64 = 0x01;
const IPROTO_SPACE_ID: u8 = 0x10;
const IPROTO_INDEX_ID: u8 = 0x11;
const IPROTO_LIMIT: u8 = 0x12;
const IPROTO_OFFSET: u8 = 0x13;
const IPROTO_ITERATOR: u8 = 0x14;
const IPROTO_KEY: u8 = 0x20;
const IPROTO_TUPLE: u8 = 0x21;
const IPROTO_FUNCTION_NAME: u8 = 0x22;
const IPROTO_USER_NAME: u8 = 0x23;
const IPROTO_EXPR: u8 = 0x27;
const IPROTO_OPS: u8 = 0x28;
const IPROTO_ERROR: u64 = 0x31;

const TYPE_SELECT: u8 = 1;
const TYPE_INSERT: u8 = 2;
const TYPE_REPLACE: u8 = 3;
const TYPE_UPDATE: u8 = 4;
const TYPE_DELETE: u8 = 5;
const TYPE_CALL_16: u8 = 6;
const TYPE_AUTH: u8 = 7;
const TYPE_EVAL: u8 = 8;
const TYPE_UPSERT: u8 = 9;
const TYPE_CALL: u8 = 10;
const TYPE_PING: u8 = 64;

/// The response code bit of an error reply (the rest is the error code).
const RESPONSE_ERROR: u64 = 0x8000;
/// A `box.session.push` message: not the reply, which comes later with the same sync.
const RESPONSE_CHUNK: u64 = 0x80;

/// Bytes of the greeting the server sends on connect.
const GREETING_SIZE: usize = 128;
/// Bytes of salt chap-sha1 uses.
const SALT_SIZE: usize = 20;
/// A reply longer than this is taken for garbage.
const MAX_PACKET: u64 = 1 << 30;

/// The low bits of a request's sync number its slot in the window: at most this many
/// requests in flight per connection.
const SLOT_BITS: u32 = 20;
const MAX_DEPTH: usize = 1 << SLOT_BITS;

/// Requests in flight while `prepare` fills the space.
const PREPARE_DEPTH: usize = 128;

fn put_uint(buf: &mut Vec<u8>, value: u64) {
    rmp::encode::write_uint(buf, value).expect("writing to a Vec cannot fail");
}

/// A small non-negative integer (a map key or a request type): one byte.
fn put_fix(buf: &mut Vec<u8>, value: u8) {
    rmp::encode::write_pfix(buf, value).expect("writing to a Vec cannot fail");
}

fn put_map(buf: &mut Vec<u8>, len: u32) {
    rmp::encode::write_map_len(buf, len).expect("writing to a Vec cannot fail");
}

fn put_array(buf: &mut Vec<u8>, len: u32) {
    rmp::encode::write_array_len(buf, len).expect("writing to a Vec cannot fail");
}

/// A MessagePack str of raw bytes (the scramble is not UTF-8; Tarantool takes it as a str).
fn put_str(buf: &mut Vec<u8>, bytes: &[u8]) {
    rmp::encode::write_str_len(buf, bytes.len() as u32).expect("writing to a Vec cannot fail");
    buf.extend_from_slice(bytes);
}

/// Starts a packet: the length (a u32 patched by `finish`) and the header {code, sync}.
/// The header has no schema id: the server then checks none, as with 0.
fn begin(buf: &mut Vec<u8>, request_type: u8, sync: u64) -> usize {
    let start = buf.len();
    buf.extend_from_slice(&[0xce, 0, 0, 0, 0]);
    put_map(buf, 2);
    put_fix(buf, IPROTO_CODE as u8);
    put_fix(buf, request_type);
    put_fix(buf, IPROTO_SYNC as u8);
    put_uint(buf, sync);
    start
}

fn finish(buf: &mut [u8], start: usize) {
    let len = (buf.len() - start - 5) as u32;
    buf[start + 1..start + 5].copy_from_slice(&len.to_be_bytes());
}

fn encode_ping(buf: &mut Vec<u8>, sync: u64) {
    let start = begin(buf, TYPE_PING, sync);
    put_map(buf, 0);
    finish(buf, start);
}

/// SELECT of `[key]` with iterator EQ (0).
fn encode_select(
    buf: &mut Vec<u8>,
    sync: u64,
    space: u32,
    index: u32,
    limit: u32,
    offset: u32,
    key: u64,
) {
    let start = begin(buf, TYPE_SELECT, sync);
    put_map(buf, 6);
    put_fix(buf, IPROTO_SPACE_ID);
    put_uint(buf, space.into());
    put_fix(buf, IPROTO_INDEX_ID);
    put_uint(buf, index.into());
    put_fix(buf, IPROTO_LIMIT);
    put_uint(buf, limit.into());
    put_fix(buf, IPROTO_OFFSET);
    put_uint(buf, offset.into());
    put_fix(buf, IPROTO_ITERATOR);
    put_fix(buf, 0);
    put_fix(buf, IPROTO_KEY);
    put_array(buf, 1);
    put_uint(buf, key);
    finish(buf, start);
}

/// INSERT or REPLACE of `{key, payload}`.
fn encode_store(
    buf: &mut Vec<u8>,
    request_type: u8,
    sync: u64,
    space: u32,
    key: u64,
    payload: &[u8],
) {
    let start = begin(buf, request_type, sync);
    put_map(buf, 2);
    put_fix(buf, IPROTO_SPACE_ID);
    put_uint(buf, space.into());
    put_fix(buf, IPROTO_TUPLE);
    put_array(buf, 2);
    put_uint(buf, key);
    put_str(buf, payload);
    finish(buf, start);
}

/// The operations `[["=", 1, payload]]`.
fn put_assign_ops(buf: &mut Vec<u8>, payload: &[u8]) {
    put_array(buf, 1);
    put_array(buf, 3);
    put_str(buf, b"=");
    put_fix(buf, 1);
    put_str(buf, payload);
}

/// UPDATE of `[key]` in index 0: field 1 (from 0) set to `payload`.
fn encode_update(buf: &mut Vec<u8>, sync: u64, space: u32, key: u64, payload: &[u8]) {
    let start = begin(buf, TYPE_UPDATE, sync);
    put_map(buf, 4);
    put_fix(buf, IPROTO_SPACE_ID);
    put_uint(buf, space.into());
    put_fix(buf, IPROTO_INDEX_ID);
    put_fix(buf, 0);
    put_fix(buf, IPROTO_KEY);
    put_array(buf, 1);
    put_uint(buf, key);
    put_fix(buf, IPROTO_TUPLE);
    put_assign_ops(buf, payload);
    finish(buf, start);
}

/// UPSERT of `{key, payload}`, or if the key exists, field 1 (from 0) set to `payload`.
fn encode_upsert(buf: &mut Vec<u8>, sync: u64, space: u32, key: u64, payload: &[u8]) {
    let start = begin(buf, TYPE_UPSERT, sync);
    put_map(buf, 3);
    put_fix(buf, IPROTO_SPACE_ID);
    put_uint(buf, space.into());
    put_fix(buf, IPROTO_TUPLE);
    put_array(buf, 2);
    put_uint(buf, key);
    put_str(buf, payload);
    put_fix(buf, IPROTO_OPS);
    put_assign_ops(buf, payload);
    finish(buf, start);
}

/// DELETE of `[key]` in index 0.
fn encode_delete(buf: &mut Vec<u8>, sync: u64, space: u32, key: u64) {
    let start = begin(buf, TYPE_DELETE, sync);
    put_map(buf, 3);
    put_fix(buf, IPROTO_SPACE_ID);
    put_uint(buf, space.into());
    put_fix(buf, IPROTO_INDEX_ID);
    put_fix(buf, 0);
    put_fix(buf, IPROTO_KEY);
    put_array(buf, 1);
    put_uint(buf, key);
    finish(buf, start);
}

/// CALL (type 10) or CALL_16 (type 6) of `function` with the one argument `arg`.
fn encode_call(buf: &mut Vec<u8>, request_type: u8, sync: u64, function: &str, arg: u64) {
    let start = begin(buf, request_type, sync);
    put_map(buf, 2);
    put_fix(buf, IPROTO_FUNCTION_NAME);
    put_str(buf, function.as_bytes());
    put_fix(buf, IPROTO_TUPLE);
    put_array(buf, 1);
    put_uint(buf, arg);
    finish(buf, start);
}

/// EVAL of `expr` with no arguments.
fn encode_eval(buf: &mut Vec<u8>, sync: u64, expr: &str) {
    let start = begin(buf, TYPE_EVAL, sync);
    put_map(buf, 2);
    put_fix(buf, IPROTO_EXPR);
    put_str(buf, expr.as_bytes());
    put_fix(buf, IPROTO_TUPLE);
    put_array(buf, 0);
    finish(buf, start);
}

/// AUTH of `user` with a chap-sha1 scramble.
fn encode_auth(buf: &mut Vec<u8>, sync: u64, user: &str, scramble: &[u8; 20]) {
    let start = begin(buf, TYPE_AUTH, sync);
    put_map(buf, 2);
    put_fix(buf, IPROTO_USER_NAME);
    put_str(buf, user.as_bytes());
    put_fix(buf, IPROTO_TUPLE);
    put_array(buf, 2);
    put_str(buf, b"chap-sha1");
    put_str(buf, scramble);
    finish(buf, start);
}

/// chap-sha1: `sha1(password) ^ sha1(salt ++ sha1(sha1(password)))`.
fn scramble(salt: &[u8; SALT_SIZE], password: &str) -> [u8; 20] {
    let hash1: [u8; 20] = Sha1::digest(password.as_bytes()).into();
    let hash2: [u8; 20] = Sha1::digest(hash1).into();
    let mut hasher = Sha1::new();
    hasher.update(salt);
    hasher.update(hash2);
    let hash3: [u8; 20] = hasher.finalize().into();
    std::array::from_fn(|n| hash1[n] ^ hash3[n])
}

/// The salt of a greeting: the first 20 bytes of the base64 on its second line.
fn greeting_salt(greeting: &[u8; GREETING_SIZE]) -> Result<[u8; SALT_SIZE], String> {
    let (banner, line2) = greeting.split_at(GREETING_SIZE / 2);
    if !banner.starts_with(b"Tarantool ") {
        return Err(format!(
            "not a Tarantool greeting: {:?}",
            String::from_utf8_lossy(banner).trim_end()
        ));
    }
    let encoded = line2
        .split(|&b| b == b' ' || b == b'\n' || b == b'\r' || b == 0)
        .next()
        .unwrap_or_default();
    let salt = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|err| format!("bad salt in the greeting: {err}"))?;
    salt.get(..SALT_SIZE)
        .and_then(|salt| salt.try_into().ok())
        .ok_or_else(|| String::from("short salt in the greeting"))
}

/// A cursor over one complete packet.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

const TRUNCATED: &str = "truncated packet";

impl Cursor<'_> {
    fn byte(&mut self) -> Result<u8, String> {
        let byte = *self.buf.get(self.pos).ok_or(TRUNCATED)?;
        self.pos += 1;
        Ok(byte)
    }

    fn advance(&mut self, count: u64) -> Result<(), String> {
        if count > (self.buf.len() - self.pos) as u64 {
            return Err(TRUNCATED.into());
        }
        self.pos += count as usize;
        Ok(())
    }

    /// `size` bytes big-endian.
    fn be(&mut self, size: usize) -> Result<u64, String> {
        let bytes = self.buf.get(self.pos..self.pos + size).ok_or(TRUNCATED)?;
        self.pos += size;
        Ok(bytes.iter().fold(0, |value, &b| value << 8 | u64::from(b)))
    }

    /// Is the next value an unsigned integer? Then its value.
    fn uint(&mut self) -> Result<Option<u64>, String> {
        let marker = *self.buf.get(self.pos).ok_or(TRUNCATED)?;
        let size = match marker {
            0x00..=0x7f => {
                self.pos += 1;
                return Ok(Some(marker.into()));
            }
            0xcc => 1,
            0xcd => 2,
            0xce => 4,
            0xcf => 8,
            _ => return Ok(None),
        };
        self.pos += 1;
        self.be(size).map(Some)
    }

    /// A map key: its value if an unsigned integer, else stepped over.
    fn key(&mut self) -> Result<Option<u64>, String> {
        let key = self.uint()?;
        if key.is_none() {
            self.skip()?;
        }
        Ok(key)
    }

    fn map_len(&mut self) -> Result<u64, String> {
        match self.byte()? {
            marker @ 0x80..=0x8f => Ok((marker & 0x0f).into()),
            0xde => self.be(2),
            0xdf => self.be(4),
            _ => Err("a header or body is not a map".into()),
        }
    }

    /// A str or bin: its bytes.
    fn bytes(&mut self) -> Result<Option<&[u8]>, String> {
        let marker = *self.buf.get(self.pos).ok_or(TRUNCATED)?;
        let len = match marker {
            0xa0..=0xbf => {
                self.pos += 1;
                (marker & 0x1f).into()
            }
            0xc4 | 0xd9 => {
                self.pos += 1;
                self.be(1)?
            }
            0xc5 | 0xda => {
                self.pos += 1;
                self.be(2)?
            }
            0xc6 | 0xdb => {
                self.pos += 1;
                self.be(4)?
            }
            _ => return Ok(None),
        };
        let start = self.pos;
        self.advance(len)?;
        Ok(Some(&self.buf[start..self.pos]))
    }

    /// Steps over one value, however nested.
    fn skip(&mut self) -> Result<(), String> {
        let mut pending: u64 = 1;
        while pending > 0 {
            pending -= 1;
            let marker = self.byte()?;
            match marker {
                0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => {}
                0x80..=0x8f => pending += 2 * u64::from(marker & 0x0f),
                0x90..=0x9f => pending += u64::from(marker & 0x0f),
                0xa0..=0xbf => self.advance((marker & 0x1f).into())?,
                0xc4 | 0xd9 => {
                    let len = self.be(1)?;
                    self.advance(len)?;
                }
                0xc5 | 0xda => {
                    let len = self.be(2)?;
                    self.advance(len)?;
                }
                0xc6 | 0xdb => {
                    let len = self.be(4)?;
                    self.advance(len)?;
                }
                0xc7 => {
                    let len = self.be(1)?;
                    self.advance(len + 1)?;
                }
                0xc8 => {
                    let len = self.be(2)?;
                    self.advance(len + 1)?;
                }
                0xc9 => {
                    let len = self.be(4)?;
                    self.advance(len + 1)?;
                }
                0xcc | 0xd0 => self.advance(1)?,
                0xcd | 0xd1 | 0xd4 => self.advance(2)?,
                0xd5 => self.advance(3)?,
                0xca | 0xce | 0xd2 => self.advance(4)?,
                0xd6 => self.advance(5)?,
                0xcb | 0xcf | 0xd3 => self.advance(8)?,
                0xd7 => self.advance(9)?,
                0xd8 => self.advance(17)?,
                0xdc => pending += self.be(2)?,
                0xdd => pending += self.be(4)?,
                0xde => pending += 2 * self.be(2)?,
                0xdf => pending += 2 * self.be(4)?,
                0xc1 => return Err("invalid MessagePack (0xc1)".into()),
            }
        }
        Ok(())
    }
}

/// One reply: its response code and sync, and where its body lies in the read buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Reply {
    code: u64,
    sync: u64,
    body_start: usize,
    body_end: usize,
}

/// The packet at the start of `buf`: `Ok(None)` when `buf` does not hold all of it yet, else
/// the reply (offsets relative to `buf`) and the bytes it takes.
fn parse_reply(buf: &[u8]) -> Result<Option<(Reply, usize)>, String> {
    let Some(&marker) = buf.first() else {
        return Ok(None);
    };
    let prefix = match marker {
        0x00..=0x7f => 1,
        0xcc => 2,
        0xcd => 3,
        0xce => 5,
        0xcf => 9,
        _ => return Err(format!("bad packet length marker 0x{marker:02x}")),
    };
    if buf.len() < prefix {
        return Ok(None);
    }
    let mut cursor = Cursor { buf, pos: 0 };
    let len = cursor.uint()?.expect("the marker was checked");
    if len > MAX_PACKET {
        return Err(format!("packet of {len} bytes"));
    }
    let total = prefix + len as usize;
    if buf.len() < total {
        return Ok(None);
    }
    let mut cursor = Cursor {
        buf: &buf[..total],
        pos: prefix,
    };
    let mut code = None;
    let mut sync = None;
    for _ in 0..cursor.map_len()? {
        let key = cursor.key()?;
        let value = cursor.uint()?;
        match (key, value) {
            (Some(IPROTO_CODE), Some(value)) => code = Some(value),
            (Some(IPROTO_SYNC), Some(value)) => sync = Some(value),
            (_, Some(_)) => {}
            (_, None) => cursor.skip()?,
        }
    }
    let (Some(code), Some(sync)) = (code, sync) else {
        return Err("a reply header without a code or a sync".into());
    };
    let reply = Reply {
        code,
        sync,
        body_start: cursor.pos,
        body_end: total,
    };
    Ok(Some((reply, total)))
}

/// The message of an error reply's body (`{0x31: message}`).
fn error_message(body: &[u8]) -> String {
    let find = || -> Result<Option<String>, String> {
        if body.is_empty() {
            return Ok(None);
        }
        let mut cursor = Cursor { buf: body, pos: 0 };
        for _ in 0..cursor.map_len()? {
            let key = cursor.key()?;
            if key == Some(IPROTO_ERROR)
                && let Some(message) = cursor.bytes()?
            {
                return Ok(Some(String::from_utf8_lossy(message).into_owned()));
            }
            cursor.skip()?;
        }
        Ok(None)
    };
    find()
        .ok()
        .flatten()
        .unwrap_or_else(|| "(no message)".into())
}

/// A read buffer replies are parsed from in place: bytes `start..end` are unparsed.
struct ReadBuf {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

/// `fill` makes room for at least this many bytes before each read.
const READ_ROOM: usize = 16 * 1024;

impl ReadBuf {
    fn new(capacity: usize) -> ReadBuf {
        ReadBuf {
            buf: vec![0; capacity.max(READ_ROOM)],
            start: 0,
            end: 0,
        }
    }

    /// One `read` into the buffer; an error on end of stream.
    fn fill(&mut self, source: &mut impl Read) -> io::Result<()> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.buf.len() - self.end < READ_ROOM {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            if self.buf.len() - self.end < READ_ROOM {
                // A long packet: grow.
                let len = (self.buf.len() * 2).max(self.end + READ_ROOM);
                self.buf.resize(len, 0);
            }
        }
        loop {
            match source.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the server closed the connection",
                    ));
                }
                Ok(count) => {
                    self.end += count;
                    return Ok(());
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
    }

    /// The next complete reply, if the buffer holds one. Its body stays readable through
    /// `body` until the next `fill`.
    fn next_reply(&mut self) -> Result<Option<Reply>, String> {
        let Some((mut reply, size)) = parse_reply(&self.buf[self.start..self.end])? else {
            return Ok(None);
        };
        reply.body_start += self.start;
        reply.body_end += self.start;
        self.start += size;
        Ok(Some(reply))
    }

    fn body(&self, reply: &Reply) -> &[u8] {
        &self.buf[reply.body_start..reply.body_end]
    }
}

// ---------------------------------------------------------------------------------------------
// Latencies.

/// Log-linear histogram of nanoseconds: exact below 256, then 128 buckets per power of two
/// (each at most 1/128 wide; reported at its middle, so within 0.4%).
#[derive(Clone)]
struct Histogram {
    counts: Vec<u64>,
    count: u64,
    min: u64,
    max: u64,
}

const SUB_BITS: u32 = 7;
const SUB_COUNT: u64 = 1 << SUB_BITS;
const BUCKETS: usize = (2 * SUB_COUNT + (64 - SUB_BITS as u64 - 1) * SUB_COUNT) as usize;

impl Histogram {
    fn new() -> Histogram {
        Histogram {
            counts: vec![0; BUCKETS],
            count: 0,
            min: u64::MAX,
            max: 0,
        }
    }

    fn bucket(value: u64) -> usize {
        if value < 2 * SUB_COUNT {
            return value as usize;
        }
        let exponent = 63 - value.leading_zeros(); // at least SUB_BITS + 1
        let shift = exponent - SUB_BITS;
        let mantissa = value >> shift; // SUB_COUNT..2 * SUB_COUNT
        (2 * SUB_COUNT + u64::from(exponent - SUB_BITS - 1) * SUB_COUNT + mantissa - SUB_COUNT)
            as usize
    }

    /// The middle of a bucket's values.
    fn value(bucket: usize) -> u64 {
        let bucket = bucket as u64;
        if bucket < 2 * SUB_COUNT {
            return bucket;
        }
        let shift = (bucket - 2 * SUB_COUNT) / SUB_COUNT + 1;
        let mantissa = (bucket - 2 * SUB_COUNT) % SUB_COUNT + SUB_COUNT;
        let low = mantissa << shift;
        low + ((1u64 << shift) - 1) / 2
    }

    fn record(&mut self, value: u64) {
        self.counts[Self::bucket(value)] += 1;
        self.count += 1;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
    }

    fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.count += other.count;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// The value at quantile `q` (0..=1): the smallest one at least `q` of the values are at
    /// most (to bucket precision, and never outside the values recorded).
    fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (bucket, &count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Self::value(bucket).clamp(self.min, self.max);
            }
        }
        self.max
    }
}

// ---------------------------------------------------------------------------------------------
// Workloads.

/// xorshift64*.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        // splitmix64 of the seed: nearby seeds give unrelated streams, and never 0.
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Rng((z ^ (z >> 31)) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in 0..bound (multiply-high).
    fn below(&mut self, bound: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(bound)) >> 64) as u64
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Ping,
    Select,
    Insert,
    Replace,
    Update,
    Upsert,
    Delete,
    Call,
    Eval,
    Prepare,
}

impl Kind {
    fn parse(name: &str) -> Option<Kind> {
        Some(match name {
            "ping" => Kind::Ping,
            "select" => Kind::Select,
            "insert" => Kind::Insert,
            "replace" => Kind::Replace,
            "update" => Kind::Update,
            "upsert" => Kind::Upsert,
            "delete" => Kind::Delete,
            "call" => Kind::Call,
            "eval" => Kind::Eval,
            "prepare" => Kind::Prepare,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Ping => "ping",
            Kind::Select => "select",
            Kind::Insert => "insert",
            Kind::Replace => "replace",
            Kind::Update => "update",
            Kind::Upsert => "upsert",
            Kind::Delete => "delete",
            Kind::Call => "call",
            Kind::Eval => "eval",
            Kind::Prepare => "prepare",
        }
    }
}

/// What each request of a run is.
struct Workload {
    kind: Kind,
    space: u32,
    keys: u64,
    sequential: bool,
    insert_base: u64,
    function: String,
    call16: bool,
    expr: String,
}

impl Workload {
    /// A key in 1..=keys for the `index`th request of the run.
    fn key(&self, index: u64, rng: &mut Rng) -> u64 {
        if self.sequential {
            1 + index % self.keys
        } else {
            1 + rng.below(self.keys)
        }
    }

    /// Appends the `index`th request of the run (warmup included) to `buf`.
    fn encode(&self, buf: &mut Vec<u8>, sync: u64, index: u64, rng: &mut Rng) {
        let space = self.space;
        match self.kind {
            Kind::Ping => encode_ping(buf, sync),
            Kind::Select => encode_select(buf, sync, space, 0, 1, 0, self.key(index, rng)),
            Kind::Insert => {
                let key = self.insert_base + index;
                encode_store(buf, TYPE_INSERT, sync, space, key, &payload(rng));
            }
            Kind::Replace | Kind::Prepare => {
                let key = self.key(index, rng);
                encode_store(buf, TYPE_REPLACE, sync, space, key, &payload(rng));
            }
            Kind::Update => encode_update(buf, sync, space, self.key(index, rng), &payload(rng)),
            Kind::Upsert => encode_upsert(buf, sync, space, self.key(index, rng), &payload(rng)),
            Kind::Delete => encode_delete(buf, sync, space, self.key(index, rng)),
            Kind::Call => {
                let request_type = if self.call16 { TYPE_CALL_16 } else { TYPE_CALL };
                let arg = self.key(index, rng);
                encode_call(buf, request_type, sync, &self.function, arg);
            }
            Kind::Eval => encode_eval(buf, sync, &self.expr),
        }
    }
}

/// 20 letters a..p from one random number.
fn payload(rng: &mut Rng) -> [u8; 20] {
    let bits = rng.next();
    std::array::from_fn(|n| b'a' + ((bits >> (3 * n)) & 15) as u8)
}

/// Requests of one phase (warmup or measured), claimed by the connections as they go.
struct Phase {
    next: AtomicU64,
    limit: u64,
    /// The run's index of this phase's first request.
    offset: u64,
}

impl Phase {
    fn new(offset: u64, limit: u64) -> Phase {
        Phase {
            next: AtomicU64::new(0),
            limit,
            offset,
        }
    }

    /// Up to `want` requests: the run index of the first and how many (0: none left).
    fn claim(&self, want: u64) -> (u64, u64) {
        if self.next.load(Ordering::Relaxed) >= self.limit {
            return (0, 0);
        }
        let first = self.next.fetch_add(want, Ordering::Relaxed);
        if first >= self.limit {
            return (0, 0);
        }
        (self.offset + first, want.min(self.limit - first))
    }
}

// ---------------------------------------------------------------------------------------------
// Connections.

struct Settings {
    address: String,
    user: Option<String>,
    password: String,
    timeout: Duration,
}

/// Error replies of the whole run, and whether the first one's message was printed.
struct ErrorLog {
    printed: AtomicBool,
}

impl ErrorLog {
    fn report(&self, message: &str) {
        if !self.printed.swap(true, Ordering::Relaxed) {
            eprintln!("iproto_bench: first error reply: {message}");
        }
    }
}

/// An I/O error's text; a socket timeout says so.
fn io_text(err: &io::Error, timeout: Duration) -> String {
    match err.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
            format!("nothing for {} s (--timeout)", timeout.as_secs_f64())
        }
        _ => err.to_string(),
    }
}

#[derive(Clone, Copy)]
struct Slot {
    sync: u64,
    sent: Instant,
}

struct Connection {
    stream: TcpStream,
    depth: usize,
    rng: Rng,
    read: ReadBuf,
    write: Vec<u8>,
    /// The requests in flight, by the low bits of their sync.
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// The slots of the batch being written.
    batch: Vec<u32>,
    /// The high bits of the next sync.
    sequence: u64,
    timeout: Duration,
}

/// What one connection counted in the measured phase.
struct Tally {
    histogram: Histogram,
    errors: u64,
    finished: Instant,
}

impl Connection {
    /// Connects, reads the greeting and logs in if `settings` name a user.
    fn open(settings: &Settings, depth: usize, seed: u64) -> Result<Connection, String> {
        let (address, timeout) = (&settings.address, settings.timeout);
        let addresses: Vec<_> = address
            .to_socket_addrs()
            .map_err(|err| format!("{address}: {err}"))?
            .collect();
        let stream =
            TcpStream::connect(&addresses[..]).map_err(|err| format!("{address}: {err}"))?;
        let setup = |stream: &TcpStream| {
            stream.set_nodelay(true)?;
            stream.set_read_timeout(Some(settings.timeout))?;
            stream.set_write_timeout(Some(settings.timeout))
        };
        setup(&stream).map_err(|err| format!("{address}: {err}"))?;
        let now = Instant::now();
        let mut connection = Connection {
            stream,
            depth,
            rng: Rng::new(seed),
            read: ReadBuf::new(64 * 1024),
            write: Vec::with_capacity(depth.min(4096) * 64),
            slots: vec![Slot { sync: 0, sent: now }; depth],
            free: (0..depth as u32).rev().collect(),
            batch: Vec::with_capacity(depth),
            sequence: 1,
            timeout: settings.timeout,
        };
        let mut greeting = [0u8; GREETING_SIZE];
        connection.stream.read_exact(&mut greeting).map_err(|err| {
            format!(
                "{address}: reading the greeting: {}",
                io_text(&err, timeout)
            )
        })?;
        let salt = greeting_salt(&greeting)?;
        if let Some(user) = &settings.user {
            let mut request = Vec::new();
            encode_auth(&mut request, 0, user, &scramble(&salt, &settings.password));
            connection
                .stream
                .write_all(&request)
                .map_err(|err| format!("{address}: {err}"))?;
            let reply = loop {
                if let Some(reply) = connection.read.next_reply()? {
                    break reply;
                }
                connection
                    .read
                    .fill(&mut connection.stream)
                    .map_err(|err| {
                        format!(
                            "{address}: waiting for the login reply: {}",
                            io_text(&err, timeout)
                        )
                    })?;
            };
            if reply.code != 0 {
                let message = error_message(connection.read.body(&reply));
                return Err(format!("{address}: login as {user:?} failed: {message}"));
            }
        }
        Ok(connection)
    }

    /// Runs requests claimed from `phase` until none are left and every reply is in,
    /// recording latencies in `tally`. Stops claiming when `stop` is set.
    fn drive(
        &mut self,
        workload: &Workload,
        phase: &Phase,
        tally: &mut Tally,
        errors: &ErrorLog,
        stop: &AtomicBool,
    ) -> Result<(), String> {
        let mut in_flight = 0usize;
        let mut claiming = true;
        loop {
            if claiming && in_flight < self.depth {
                let (first, count) = if stop.load(Ordering::Relaxed) {
                    (0, 0)
                } else {
                    phase.claim((self.depth - in_flight) as u64)
                };
                if count == 0 {
                    claiming = false;
                } else {
                    self.send(workload, first, count)?;
                    in_flight += count as usize;
                }
            }
            if in_flight == 0 {
                if claiming {
                    continue;
                }
                return Ok(());
            }
            self.read
                .fill(&mut self.stream)
                .map_err(|err| format!("reading replies: {}", io_text(&err, self.timeout)))?;
            let now = Instant::now();
            while let Some(reply) = self.read.next_reply()? {
                if reply.code == RESPONSE_CHUNK {
                    continue;
                }
                let slot = (reply.sync & (MAX_DEPTH as u64 - 1)) as usize;
                match self.slots.get(slot) {
                    Some(entry) if entry.sync == reply.sync => {}
                    _ => return Err(format!("a reply with unknown sync {}", reply.sync)),
                }
                let sent = self.slots[slot].sent;
                self.slots[slot].sync = 0;
                self.free.push(slot as u32);
                in_flight -= 1;
                tally
                    .histogram
                    .record(now.saturating_duration_since(sent).as_nanos() as u64);
                if reply.code != 0 {
                    tally.errors += 1;
                    if reply.code & RESPONSE_ERROR != 0 {
                        errors.report(&error_message(self.read.body(&reply)));
                    } else {
                        errors.report(&format!("unexpected response code 0x{:x}", reply.code));
                    }
                }
            }
        }
    }

    /// Writes requests `first..first + count` of the run in one batch.
    fn send(&mut self, workload: &Workload, first: u64, count: u64) -> Result<(), String> {
        self.write.clear();
        self.batch.clear();
        for index in first..first + count {
            let slot = self.free.pop().expect("the window has room");
            let sync = self.sequence << SLOT_BITS | u64::from(slot);
            self.sequence += 1;
            self.slots[slot as usize].sync = sync;
            self.batch.push(slot);
            workload.encode(&mut self.write, sync, index, &mut self.rng);
        }
        let now = Instant::now();
        for &slot in &self.batch {
            self.slots[slot as usize].sent = now;
        }
        self.stream
            .write_all(&self.write)
            .map_err(|err| format!("sending requests: {}", io_text(&err, self.timeout)))
    }
}

// ---------------------------------------------------------------------------------------------
// Runs.

struct Run {
    workload: Workload,
    connections: usize,
    depth: usize,
    requests: u64,
    warmup: u64,
    seed: u64,
}

struct Outcome {
    histogram: Histogram,
    errors: u64,
    seconds: f64,
}

fn run(settings: &Arc<Settings>, run: Arc<Run>) -> Result<Outcome, String> {
    let warmup = Arc::new(Phase::new(0, run.warmup));
    let measured = Arc::new(Phase::new(run.warmup, run.requests));
    let barrier = Arc::new(Barrier::new(run.connections + 1));
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(ErrorLog {
        printed: AtomicBool::new(false),
    });
    let workers: Vec<_> = (0..run.connections)
        .map(|number| {
            let (settings, run, warmup, measured) = (
                settings.clone(),
                run.clone(),
                warmup.clone(),
                measured.clone(),
            );
            let (barrier, stop, errors) = (barrier.clone(), stop.clone(), errors.clone());
            std::thread::spawn(move || -> Result<Tally, String> {
                let seed = run.seed ^ (number as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                let mut tally = Tally {
                    histogram: Histogram::new(),
                    errors: 0,
                    finished: Instant::now(),
                };
                let ready = Connection::open(&settings, run.depth, seed).and_then(|mut conn| {
                    let mut unmeasured = Tally {
                        histogram: Histogram::new(),
                        errors: 0,
                        finished: Instant::now(),
                    };
                    conn.drive(&run.workload, &warmup, &mut unmeasured, &errors, &stop)?;
                    Ok(conn)
                });
                if ready.is_err() {
                    stop.store(true, Ordering::Relaxed);
                }
                // Everyone meets here, ready or not, so that no one waits forever.
                barrier.wait();
                let mut conn = ready?;
                let result = conn.drive(&run.workload, &measured, &mut tally, &errors, &stop);
                tally.finished = Instant::now();
                if result.is_err() {
                    stop.store(true, Ordering::Relaxed);
                }
                result.map(|()| tally)
            })
        })
        .collect();
    barrier.wait();
    let started = Instant::now();
    let mut outcome = Outcome {
        histogram: Histogram::new(),
        errors: 0,
        seconds: 0.0,
    };
    let mut failure = None;
    let mut finished = started;
    for worker in workers {
        match worker.join().expect("a connection thread panicked") {
            Ok(tally) => {
                outcome.histogram.merge(&tally.histogram);
                outcome.errors += tally.errors;
                finished = finished.max(tally.finished);
            }
            Err(err) => {
                failure.get_or_insert(err);
            }
        }
    }
    if let Some(err) = failure {
        return Err(err);
    }
    outcome.seconds = finished.duration_since(started).as_secs_f64();
    Ok(outcome)
}

fn report_line(kind: Kind, connections: usize, depth: usize, outcome: &Outcome) -> String {
    let histogram = &outcome.histogram;
    let micros = |nanos: u64| (nanos + 500) / 1000;
    let rps = if outcome.seconds > 0.0 {
        histogram.count as f64 / outcome.seconds
    } else {
        0.0
    };
    format!(
        "kind={} connections={connections} depth={depth} requests={} errors={} seconds={:.3} \
         rps={rps:.0} p50_us={} p90_us={} p99_us={} p999_us={} max_us={}",
        kind.name(),
        histogram.count,
        outcome.errors,
        outcome.seconds,
        micros(histogram.quantile(0.5)),
        micros(histogram.quantile(0.9)),
        micros(histogram.quantile(0.99)),
        micros(histogram.quantile(0.999)),
        micros(histogram.max),
    )
}

// ---------------------------------------------------------------------------------------------
// The command line.

struct Config {
    settings: Settings,
    kind: Option<Kind>,
    prepare: bool,
    connections: usize,
    depth: usize,
    requests: u64,
    warmup: u64,
    space: u32,
    keys: u64,
    sequential: bool,
    key_base: Option<u64>,
    function: String,
    call16: bool,
    expr: String,
    seed: Option<u64>,
}

fn options() -> getopts::Options {
    let mut opts = getopts::Options::new();
    let kinds = "ping, select, insert, replace, update, upsert, delete, call, eval, prepare";
    opts.optopt(
        "k",
        "kind",
        &format!("request kind (default ping): {kinds}"),
        "KIND",
    );
    opts.optopt(
        "c",
        "connections",
        "connections, one thread each (default 1)",
        "N",
    );
    opts.optopt(
        "d",
        "depth",
        "requests in flight per connection (default 1)",
        "N",
    );
    opts.optopt(
        "n",
        "requests",
        "requests over all connections (default 100000)",
        "N",
    );
    opts.optopt("", "warmup", "unmeasured requests first (default 0)", "N");
    opts.optopt("u", "user", "log in as this user (chap-sha1)", "NAME");
    opts.optopt(
        "p",
        "password",
        "the user's password (default empty)",
        "PASSWORD",
    );
    opts.optopt("s", "space", "space id (default 512)", "ID");
    opts.optopt(
        "",
        "keys",
        "keys 1..=N for select, replace, update, upsert, delete, call, prepare (default 100000)",
        "N",
    );
    opts.optflag(
        "",
        "sequential",
        "cycle through the keys in order instead of at random",
    );
    opts.optopt(
        "",
        "key-base",
        "first insert key (default: the time in nanoseconds)",
        "N",
    );
    opts.optopt(
        "",
        "function",
        "function for call (default bench_call)",
        "NAME",
    );
    opts.optflag(
        "",
        "call16",
        "call with the 1.6 CALL (type 6) instead of type 10",
    );
    opts.optopt("", "expr", "Lua for eval (default 'return 1')", "LUA");
    opts.optflag(
        "",
        "prepare",
        "first fill the space with keys 1..=keys (REPLACE)",
    );
    opts.optopt("", "seed", "random seed (default from the clock)", "N");
    opts.optopt(
        "",
        "timeout",
        "seconds to wait for a reply (default 30)",
        "SECONDS",
    );
    opts.optflag("h", "help", "print this help");
    opts
}

fn usage(opts: &getopts::Options) -> String {
    opts.usage(
        "Usage: iproto_bench HOST:PORT [options]\n\n\
         Load over the Tarantool binary protocol; prints one line of throughput and latency.",
    )
}

fn number<T: std::str::FromStr>(
    matches: &getopts::Matches,
    name: &str,
    default: T,
) -> Result<T, String> {
    match matches.opt_str(name) {
        None => Ok(default),
        Some(text) => text
            .parse()
            .map_err(|_| format!("--{name}: not a valid number: {text:?}")),
    }
}

fn parse_args(args: &[String]) -> Result<Option<Config>, String> {
    let opts = options();
    let matches = opts.parse(args).map_err(|err| err.to_string())?;
    if matches.opt_present("help") {
        println!("{}", usage(&opts));
        return Ok(None);
    }
    let address = match matches.free.as_slice() {
        [address] if address.parse::<u16>().is_ok() => format!("127.0.0.1:{address}"),
        [address] => address.clone(),
        [] => return Err("no server address (HOST:PORT)".into()),
        _ => return Err(format!("unexpected arguments: {:?}", &matches.free[1..])),
    };
    let kind = match matches.opt_str("kind") {
        None => None,
        Some(name) => Some(Kind::parse(&name).ok_or_else(|| format!("unknown kind {name:?}"))?),
    };
    let timeout: f64 = number(&matches, "timeout", 30.0)?;
    if !(timeout > 0.0 && timeout < 1e9) {
        return Err("--timeout: must be positive".into());
    }
    let config = Config {
        settings: Settings {
            address,
            user: matches.opt_str("user"),
            password: matches.opt_str("password").unwrap_or_default(),
            timeout: Duration::from_secs_f64(timeout),
        },
        kind,
        prepare: matches.opt_present("prepare"),
        connections: number(&matches, "connections", 1)?,
        depth: number(&matches, "depth", 1)?,
        requests: number(&matches, "requests", 100_000)?,
        warmup: number(&matches, "warmup", 0)?,
        space: number(&matches, "space", 512)?,
        keys: number(&matches, "keys", 100_000)?,
        sequential: matches.opt_present("sequential"),
        key_base: matches
            .opt_present("key-base")
            .then(|| number(&matches, "key-base", 0))
            .transpose()?,
        function: matches
            .opt_str("function")
            .unwrap_or_else(|| "bench_call".into()),
        call16: matches.opt_present("call16"),
        expr: matches.opt_str("expr").unwrap_or_else(|| "return 1".into()),
        seed: matches
            .opt_present("seed")
            .then(|| number(&matches, "seed", 0))
            .transpose()?,
    };
    if config.connections == 0 || config.connections > 10_000 {
        return Err("--connections: must be 1..=10000".into());
    }
    if config.depth == 0 || config.depth > MAX_DEPTH {
        return Err(format!("--depth: must be 1..={MAX_DEPTH}"));
    }
    if config.requests == 0 {
        return Err("--requests: must be at least 1".into());
    }
    if config.keys == 0 {
        return Err("--keys: must be at least 1".into());
    }
    Ok(Some(config))
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos() as u64)
        .unwrap_or(0)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let config = match parse_args(&args) {
        Ok(Some(config)) => config,
        Ok(None) => return,
        Err(err) => {
            eprintln!("iproto_bench: {err}\n{}", usage(&options()));
            std::process::exit(2);
        }
    };
    let started = now_nanos();
    let seed = config.seed.unwrap_or(started);
    let workload = |kind: Kind, sequential: bool| Workload {
        kind,
        space: config.space,
        keys: config.keys,
        sequential,
        insert_base: config
            .key_base
            .unwrap_or_else(|| started.max(config.keys.saturating_add(1))),
        function: config.function.clone(),
        call16: config.call16,
        expr: config.expr.clone(),
    };
    let settings = Arc::new(config.settings);
    let fail = |err: String| -> ! {
        eprintln!("iproto_bench: {err}");
        std::process::exit(1);
    };
    let prepare_only =
        config.kind == Some(Kind::Prepare) || config.kind.is_none() && config.prepare;
    if config.prepare || prepare_only {
        let prepare = Run {
            workload: workload(Kind::Prepare, true),
            connections: 1,
            depth: PREPARE_DEPTH,
            requests: config.keys,
            warmup: 0,
            seed,
        };
        let outcome = run(&settings, Arc::new(prepare)).unwrap_or_else(|err| fail(err));
        let line = report_line(Kind::Prepare, 1, PREPARE_DEPTH, &outcome);
        if outcome.errors > 0 {
            fail(format!(
                "prepare: {} of the replaces failed",
                outcome.errors
            ));
        }
        if prepare_only {
            println!("{line}");
            return;
        }
        eprintln!("{line}");
    }
    let kind = config.kind.unwrap_or(Kind::Ping);
    let bench = Run {
        workload: workload(kind, config.sequential),
        connections: config.connections,
        depth: config.depth,
        requests: config.requests,
        warmup: config.warmup,
        seed,
    };
    let outcome = run(&settings, Arc::new(bench)).unwrap_or_else(|err| fail(err));
    println!(
        "{}",
        report_line(kind, config.connections, config.depth, &outcome)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(text: &str) -> Vec<u8> {
        let digits: String = text.split_whitespace().collect();
        (0..digits.len())
            .step_by(2)
            .map(|n| u8::from_str_radix(&digits[n..n + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn ping_is_encoded_like_tarantool() {
        let mut buf = Vec::new();
        encode_ping(&mut buf, 1);
        assert_eq!(buf, hex("ce00000006 82 00 40 01 01 80"));
    }

    #[test]
    fn select_is_encoded_like_tarantool() {
        let mut buf = Vec::new();
        encode_select(&mut buf, 8, 512, 0, 100, 0, 1);
        assert_eq!(
            buf,
            hex("ce00000015 82 00 01 01 08 86 10 cd0200 11 00 12 64 13 00 14 00 20 91 01")
        );
    }

    #[test]
    fn requests_append_to_one_buffer() {
        let mut buf = Vec::new();
        encode_ping(&mut buf, 1);
        encode_ping(&mut buf, 2);
        assert_eq!(
            buf,
            hex("ce00000006 82 00 40 01 01 80 ce00000006 82 00 40 01 02 80")
        );
    }

    #[test]
    fn other_requests_are_encoded() {
        let payload = *b"abcdefghijklmnopqrst";
        let mut buf = Vec::new();
        encode_store(&mut buf, TYPE_REPLACE, 3, 512, 7, &payload);
        let mut expected = hex("ce00000022 82 00 03 01 03 82 10 cd0200 21 92 07 b4");
        expected.extend_from_slice(&payload);
        assert_eq!(buf, expected);

        buf.clear();
        encode_update(&mut buf, 4, 512, 7, &payload);
        let mut expected =
            hex("ce0000002a 82 00 04 01 04 84 10 cd0200 11 00 20 91 07 21 91 93 a1 3d 01 b4");
        expected.extend_from_slice(&payload);
        assert_eq!(buf, expected);

        buf.clear();
        encode_delete(&mut buf, 5, 512, 300);
        assert_eq!(
            buf,
            hex("ce00000011 82 00 05 01 05 83 10 cd0200 11 00 20 91 cd012c")
        );

        buf.clear();
        encode_call(&mut buf, TYPE_CALL, 6, "f", 1);
        assert_eq!(buf, hex("ce0000000c 82 00 0a 01 06 82 22 a1 66 21 91 01"));

        buf.clear();
        encode_eval(&mut buf, 0x1_0000_0000, "return 1");
        assert_eq!(
            buf,
            hex("ce0000001a 82 00 08 01 cf0000000100000000 82 27 a8 72657475726e2031 21 90")
        );

        buf.clear();
        encode_upsert(&mut buf, 9, 512, 7, &payload);
        let (reply, size) = parse_reply(&buf).unwrap().unwrap();
        assert_eq!((reply.code, reply.sync, size), (9, 9, buf.len()));
    }

    #[test]
    fn auth_carries_the_scramble() {
        let salt: [u8; 20] = std::array::from_fn(|n| n as u8 + 1);
        let scramble = scramble(&salt, "secret");
        assert_eq!(
            scramble.to_vec(),
            hex("b32bb3a583e1340c0a1108d58b1be49781ad8c2f")
        );
        let mut buf = Vec::new();
        encode_auth(&mut buf, 0, "bob", &scramble);
        let mut expected =
            hex("ce0000002c 82 00 07 01 00 82 23 a3 626f62 21 92 a9 636861702d73686131 b4");
        expected.extend_from_slice(&scramble);
        assert_eq!(buf, expected);
    }

    #[test]
    fn greeting_gives_the_salt() {
        let mut greeting = [b' '; GREETING_SIZE];
        let banner = b"Tarantool 2.6.0 (Binary) 0b2a2d6e-5c0f-4c5d-9a48-2b9a1a7f6b7c";
        greeting[..banner.len()].copy_from_slice(banner);
        greeting[63] = b'\n';
        let salt: Vec<u8> = (0..32).collect();
        let encoded = base64::engine::general_purpose::STANDARD.encode(&salt);
        greeting[64..64 + encoded.len()].copy_from_slice(encoded.as_bytes());
        greeting[127] = b'\n';
        assert_eq!(greeting_salt(&greeting).unwrap().to_vec(), salt[..20]);
        greeting[..9].copy_from_slice(b"Something");
        assert!(greeting_salt(&greeting).is_err());
    }

    #[test]
    fn replies_parse() {
        let ok = hex("ce00000018 83 00 ce00000000 01 cf0000000000000001 05 ce00000050 80");
        let (reply, size) = parse_reply(&ok).unwrap().unwrap();
        assert_eq!((reply.code, reply.sync, size), (0, 1, ok.len()));
        assert_eq!((reply.body_start, reply.body_end), (ok.len() - 1, ok.len()));

        // An error reply, with a 2.x error stack after the message.
        let mut error = hex("ce00000000 83 00 cd8024 01 05 05 0a 82 31 a4 6e6f7065 52 81 00 91 80");
        let len = (error.len() - 5) as u32;
        error[1..5].copy_from_slice(&len.to_be_bytes());
        let (reply, _) = parse_reply(&error).unwrap().unwrap();
        assert_eq!((reply.code, reply.sync), (0x8024, 5));
        assert_eq!(
            error_message(&error[reply.body_start..reply.body_end]),
            "nope"
        );

        // Any uint length prefix, and headers with keys in any order.
        let short = hex("06 82 01 02 00 00 80");
        let (reply, size) = parse_reply(&short).unwrap().unwrap();
        assert_eq!((reply.code, reply.sync, size), (0, 2, 7));

        // Keys that are not numbers are stepped over.
        let odd = hex("0d 83 a1 78 91 01 00 00 01 03 81 a1 78 31");
        let (reply, _) = parse_reply(&odd).unwrap().unwrap();
        assert_eq!((reply.code, reply.sync, reply.body_end), (0, 3, odd.len()));
        assert_eq!(
            error_message(&odd[reply.body_start..reply.body_end]),
            "(no message)"
        );

        assert!(parse_reply(&hex("c0")).is_err());
        assert!(parse_reply(&hex("03 80 80 80")).is_err());
    }

    #[test]
    fn replies_parse_across_partial_reads() {
        let one = hex("ce00000018 83 00 ce00000000 01 cf0000000000000001 05 ce00000050 80");
        let mut stream = Vec::new();
        let mut expected = Vec::new();
        for sync in 1..=50u64 {
            let mut packet = one.clone();
            packet[14..22].copy_from_slice(&sync.to_be_bytes());
            stream.extend_from_slice(&packet);
            expected.push(sync);
        }
        // A reply with a long body: more than the read buffer holds at first.
        let mut long = hex("ce00000000 83 00 00 01 cf0000000000000033 05 00 81 30 c6");
        let data = vec![0x90u8; 100_000];
        long.extend_from_slice(&(data.len() as u32).to_be_bytes());
        long.extend_from_slice(&data);
        let len = (long.len() - 5) as u32;
        long[1..5].copy_from_slice(&len.to_be_bytes());
        stream.extend_from_slice(&long);
        expected.push(51);

        /// Hands out the stream in pieces of cycling sizes.
        struct Pieces<'a> {
            data: &'a [u8],
            step: usize,
        }
        impl Read for Pieces<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                self.step = self.step % 37 + 1;
                let count = self.step.min(buf.len()).min(self.data.len());
                buf[..count].copy_from_slice(&self.data[..count]);
                self.data = &self.data[count..];
                Ok(count)
            }
        }
        for first_step in [0, 5, 20] {
            let mut source = Pieces {
                data: &stream,
                step: first_step,
            };
            let mut read = ReadBuf::new(0);
            let mut seen = Vec::new();
            while seen.len() < expected.len() {
                read.fill(&mut source).unwrap();
                while let Some(reply) = read.next_reply().unwrap() {
                    seen.push(reply.sync);
                    if reply.sync == 51 {
                        assert_eq!(read.body(&reply).len(), 7 + data.len());
                    }
                }
            }
            assert_eq!(seen, expected);
            assert!(read.fill(&mut source).is_err(), "end of stream");
        }
    }

    #[test]
    fn skip_steps_over_every_type() {
        let value = hex(
            "93 c0 c2 c3 cc01 cd0102 ce01020304 cf0102030405060708 d001 d10102 d201020304 \
             d30102030405060708 ca00000000 cb0000000000000000 a161 d90161 da000161 db0000000161 \
             c40161 c5000161 c600000001 61 d40100 d5010000 d60100000000 d701 0000000000000000 \
             d801 00000000000000000000000000000000 c70101 61 c8000101 61 c90000000101 61 \
             dc0001 01 dd00000001 01 de0001 01 02 df00000001 01 02 81 01 92 01 02 ff e0",
        );
        // The outer array claims 3 items; wrap the rest to make them one value.
        let mut cursor = Cursor {
            buf: &value,
            pos: 0,
        };
        cursor.skip().unwrap();
        let mut wrapped = hex("dc0023");
        wrapped.extend_from_slice(&value[1..]);
        let mut cursor = Cursor {
            buf: &wrapped,
            pos: 0,
        };
        cursor.skip().unwrap();
        assert_eq!(cursor.pos, wrapped.len());
        let mut truncated = Cursor {
            buf: &wrapped[..wrapped.len() - 3],
            pos: 0,
        };
        assert!(truncated.skip().is_err());
    }

    #[test]
    fn histogram_buckets_are_tight() {
        for value in (0..2_000_000u64)
            .step_by(7)
            .chain([u64::MAX, 1 << 40, 255, 256, 257])
        {
            let bucket = Histogram::bucket(value);
            assert!(bucket < BUCKETS);
            let middle = Histogram::value(bucket);
            let error = middle.abs_diff(value) as f64 / value.max(1) as f64;
            assert!(error <= 0.004, "{value}: bucket {bucket} reads {middle}");
            assert_eq!(Histogram::bucket(middle), bucket);
        }
        assert!(Histogram::bucket(255) < Histogram::bucket(256));
        assert!(Histogram::bucket(256) <= Histogram::bucket(257));
    }

    #[test]
    fn quantiles() {
        let mut histogram = Histogram::new();
        assert_eq!(histogram.quantile(0.5), 0);
        // 1..=1000 microseconds, in two halves merged.
        let mut other = Histogram::new();
        for micros in 1..=1000u64 {
            let target = if micros % 2 == 0 {
                &mut histogram
            } else {
                &mut other
            };
            target.record(micros * 1000);
        }
        histogram.merge(&other);
        assert_eq!(histogram.count, 1000);
        assert_eq!(histogram.max, 1_000_000);
        for (q, exact) in [
            (0.5, 500_000),
            (0.9, 900_000),
            (0.99, 990_000),
            (0.999, 999_000),
        ] {
            let got = histogram.quantile(q);
            assert!(
                got.abs_diff(exact) * 100 <= exact,
                "q {q}: {got} vs {exact}"
            );
        }
        assert_eq!(histogram.quantile(1.0), 1_000_000);
        assert!((1_000..=1_004).contains(&histogram.quantile(0.0)));

        let mut single = Histogram::new();
        single.record(12_345);
        assert_eq!(single.quantile(0.5), 12_345);
        assert_eq!(single.quantile(0.999), 12_345);
    }

    #[test]
    fn phases_hand_out_every_request_once() {
        let phase = Phase::new(10, 100);
        let mut seen = Vec::new();
        loop {
            let (first, count) = phase.claim(7);
            if count == 0 {
                break;
            }
            seen.extend(first..first + count);
        }
        assert_eq!(seen, (10..110).collect::<Vec<_>>());
        assert_eq!(phase.claim(1), (0, 0));
    }

    #[test]
    fn keys_stay_in_range() {
        let mut rng = Rng::new(1);
        let workload = Workload {
            kind: Kind::Select,
            space: 512,
            keys: 10,
            sequential: false,
            insert_base: 11,
            function: String::new(),
            call16: false,
            expr: String::new(),
        };
        let mut seen = [false; 11];
        for index in 0..1000 {
            let key = workload.key(index, &mut rng);
            assert!((1..=10).contains(&key));
            seen[key as usize] = true;
        }
        assert!(seen[1..].iter().all(|&hit| hit));
        let sequential = Workload {
            sequential: true,
            ..workload
        };
        let keys: Vec<u64> = (0..12).map(|n| sequential.key(n, &mut rng)).collect();
        assert_eq!(keys, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 1, 2]);
    }

    #[test]
    fn arguments_parse() {
        let args = |line: &str| -> Vec<String> { line.split(' ').map(String::from).collect() };
        let config = parse_args(&args("127.0.0.1:3301 --kind select -c 4 -d 64 -n 1000000"))
            .unwrap()
            .unwrap();
        assert_eq!(config.kind, Some(Kind::Select));
        assert_eq!(
            (config.connections, config.depth, config.requests),
            (4, 64, 1_000_000)
        );
        assert_eq!((config.space, config.keys), (512, 100_000));
        let config = parse_args(&args("3301 --prepare")).unwrap().unwrap();
        assert_eq!(config.settings.address, "127.0.0.1:3301");
        assert!(config.prepare && config.kind.is_none());
        assert!(parse_args(&args("3301 --kind nothing")).is_err());
        assert!(parse_args(&args("3301 --depth 0")).is_err());
        assert!(parse_args(&args("3301 --requests x")).is_err());
        assert!(parse_args(&args("--kind ping")).is_err());
    }
}
