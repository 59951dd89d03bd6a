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
//!
//! The codec is the server's own: requests are framed by `tarantula::proto::xrow` and their
//! bodies written with `rmp::encode`; replies are framed and their headers read by `xrow`.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rmp::encode::{ValueWriteError, write_array_len, write_map_len, write_str, write_str_len};
use tarantula::r#box::mp;
use tarantula::constants::GREETING_SIZE;
use tarantula::proto::iproto_constants::{key, request_type};
use tarantula::proto::xrow::{self, Frame};

/// A reply longer than this is taken for garbage.
const MAX_PACKET: usize = 1 << 30;

/// The low bits of a request's sync number its slot in the window: at most this many
/// requests in flight per connection.
const SLOT_BITS: u32 = 20;
const MAX_DEPTH: usize = 1 << SLOT_BITS;

/// Requests in flight while `prepare` fills the space.
const PREPARE_DEPTH: usize = 128;

/// A `box.session.push` message: not the reply, which comes later with the same sync.
const RESPONSE_CHUNK: u32 = 0x80;

// {{{ requests

/// What writing a body returns: rmp's errors are I/O errors, which a `Vec` never has.
type Written = Result<(), ValueWriteError>;

/// Appends one request: `xrow`'s framing and header (no schema id: the server checks
/// none), and the body `write_body` writes.
fn request(
    buf: &mut Vec<u8>,
    kind: u32,
    sync: u64,
    write_body: impl FnOnce(&mut Vec<u8>) -> Written,
) {
    let start = xrow::begin_packet(buf, kind, sync, None);
    write_body(buf).expect("writing to a Vec cannot fail");
    xrow::end_packet(buf, start);
}

/// A body key and its uint value.
fn put_uint(buf: &mut Vec<u8>, code: u8, value: u64) -> Written {
    rmp::encode::write_uint(buf, code.into())?;
    rmp::encode::write_uint(buf, value)?;
    Ok(())
}

/// A body key and the array `[value]`.
fn put_key(buf: &mut Vec<u8>, code: u8, value: u64) -> Written {
    rmp::encode::write_uint(buf, code.into())?;
    write_array_len(buf, 1)?;
    rmp::encode::write_uint(buf, value)?;
    Ok(())
}

/// A str of raw bytes (the scramble is not UTF-8; Tarantool takes it as a str).
fn put_str(buf: &mut Vec<u8>, bytes: &[u8]) -> Written {
    write_str_len(buf, bytes.len() as u32)?;
    buf.extend_from_slice(bytes);
    Ok(())
}

/// A body key and the tuple `[key, payload]`.
fn put_tuple(buf: &mut Vec<u8>, code: u8, value: u64, payload: &[u8]) -> Written {
    rmp::encode::write_uint(buf, code.into())?;
    write_array_len(buf, 2)?;
    rmp::encode::write_uint(buf, value)?;
    put_str(buf, payload)
}

/// A body key and the operations `[["=", 1, payload]]` (field 1 numbered from 0).
fn put_assign(buf: &mut Vec<u8>, code: u8, payload: &[u8]) -> Written {
    rmp::encode::write_uint(buf, code.into())?;
    write_array_len(buf, 1)?;
    write_array_len(buf, 3)?;
    write_str(buf, "=")?;
    rmp::encode::write_uint(buf, 1)?;
    put_str(buf, payload)
}

fn encode_ping(buf: &mut Vec<u8>, sync: u64) {
    request(buf, request_type::PING, sync, |buf| {
        write_map_len(buf, 0)?;
        Ok(())
    });
}

/// SELECT of `[value]` from index 0, iterator EQ, limit 1.
fn encode_select(buf: &mut Vec<u8>, sync: u64, space: u32, value: u64) {
    request(buf, request_type::SELECT, sync, |buf| {
        write_map_len(buf, 6)?;
        put_uint(buf, key::SPACE_ID, space.into())?;
        put_uint(buf, key::INDEX_ID, 0)?;
        put_uint(buf, key::LIMIT, 1)?;
        put_uint(buf, key::OFFSET, 0)?;
        put_uint(buf, key::ITERATOR, 0)?;
        put_key(buf, key::KEY, value)
    });
}

/// INSERT or REPLACE of `{value, payload}`.
fn encode_store(buf: &mut Vec<u8>, kind: u32, sync: u64, space: u32, value: u64, payload: &[u8]) {
    request(buf, kind, sync, |buf| {
        write_map_len(buf, 2)?;
        put_uint(buf, key::SPACE_ID, space.into())?;
        put_tuple(buf, key::TUPLE, value, payload)
    });
}

/// UPDATE of `[value]` in index 0: field 1 (from 0) set to `payload`.
fn encode_update(buf: &mut Vec<u8>, sync: u64, space: u32, value: u64, payload: &[u8]) {
    request(buf, request_type::UPDATE, sync, |buf| {
        write_map_len(buf, 4)?;
        put_uint(buf, key::SPACE_ID, space.into())?;
        put_uint(buf, key::INDEX_ID, 0)?;
        put_key(buf, key::KEY, value)?;
        put_assign(buf, key::TUPLE, payload)
    });
}

/// UPSERT of `{value, payload}`, or if the key exists, field 1 (from 0) set to `payload`.
fn encode_upsert(buf: &mut Vec<u8>, sync: u64, space: u32, value: u64, payload: &[u8]) {
    request(buf, request_type::UPSERT, sync, |buf| {
        write_map_len(buf, 3)?;
        put_uint(buf, key::SPACE_ID, space.into())?;
        put_tuple(buf, key::TUPLE, value, payload)?;
        put_assign(buf, key::OPS, payload)
    });
}

/// DELETE of `[value]` in index 0.
fn encode_delete(buf: &mut Vec<u8>, sync: u64, space: u32, value: u64) {
    request(buf, request_type::DELETE, sync, |buf| {
        write_map_len(buf, 3)?;
        put_uint(buf, key::SPACE_ID, space.into())?;
        put_uint(buf, key::INDEX_ID, 0)?;
        put_key(buf, key::KEY, value)
    });
}

/// CALL (type 10) or CALL_16 (type 6) of `function` with the one argument `arg`.
fn encode_call(buf: &mut Vec<u8>, kind: u32, sync: u64, function: &str, arg: u64) {
    request(buf, kind, sync, |buf| {
        write_map_len(buf, 2)?;
        rmp::encode::write_uint(buf, key::FUNCTION_NAME.into())?;
        write_str(buf, function)?;
        put_key(buf, key::TUPLE, arg)
    });
}

/// EVAL of `expr` with no arguments.
fn encode_eval(buf: &mut Vec<u8>, sync: u64, expr: &str) {
    request(buf, request_type::EVAL, sync, |buf| {
        write_map_len(buf, 2)?;
        rmp::encode::write_uint(buf, key::EXPR.into())?;
        write_str(buf, expr)?;
        rmp::encode::write_uint(buf, key::TUPLE.into())?;
        write_array_len(buf, 0)?;
        Ok(())
    });
}

/// AUTH of `user` with a chap-sha1 scramble.
fn encode_auth(buf: &mut Vec<u8>, sync: u64, user: &str, scramble: &[u8; 20]) {
    request(buf, request_type::AUTH, sync, |buf| {
        write_map_len(buf, 2)?;
        rmp::encode::write_uint(buf, key::USER_NAME.into())?;
        write_str(buf, user)?;
        rmp::encode::write_uint(buf, key::TUPLE.into())?;
        write_array_len(buf, 2)?;
        write_str(buf, "chap-sha1")?;
        put_str(buf, scramble)
    });
}

// }}}

// {{{ replies

/// One reply: its status and sync, and where its body lies in the read buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Reply {
    status: u32,
    sync: u64,
    body_start: usize,
    body_end: usize,
}

/// The packet at the start of `input`: `Ok(None)` when `input` does not hold all of it yet,
/// else the reply (offsets relative to `input`) and the bytes it takes.
fn parse_reply(input: &[u8]) -> Result<Option<(Reply, usize)>, String> {
    let (start, end) = match xrow::next_frame(input, MAX_PACKET) {
        Frame::Incomplete { .. } => return Ok(None),
        Frame::Broken(why) => return Err(why),
        Frame::Complete { start, end } => (start, end),
    };
    let (header, body) = xrow::decode_header(&input[start..end])
        .map_err(|err| format!("a reply: {}", err.message))?;
    let reply = Reply {
        status: header.kind,
        sync: header.sync,
        body_start: end - body.len(),
        body_end: end,
    };
    Ok(Some((reply, end)))
}

/// The message of an error reply's body (`{0x31: message}`).
fn error_message(body: &[u8]) -> String {
    mp::map_items(body)
        .unwrap_or_default()
        .into_iter()
        .find(|(code, _)| mp::read_u64(code) == Some(key::ERROR.into()))
        .and_then(|(_, message)| mp::read_string(message))
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
                    let why = "the server closed the connection";
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, why));
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

// }}}
// {{{ latencies

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

// }}}

// {{{ workloads

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

/// Every kind, with its name on the command line and in the output.
const KINDS: [(Kind, &str); 10] = [
    (Kind::Ping, "ping"),
    (Kind::Select, "select"),
    (Kind::Insert, "insert"),
    (Kind::Replace, "replace"),
    (Kind::Update, "update"),
    (Kind::Upsert, "upsert"),
    (Kind::Delete, "delete"),
    (Kind::Call, "call"),
    (Kind::Eval, "eval"),
    (Kind::Prepare, "prepare"),
];

impl Kind {
    fn parse(name: &str) -> Option<Kind> {
        KINDS
            .iter()
            .find(|(_, known)| *known == name)
            .map(|(kind, _)| *kind)
    }

    fn name(self) -> &'static str {
        let (_, name) = KINDS
            .iter()
            .find(|(kind, _)| *kind == self)
            .expect("every kind is listed");
        name
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
            Kind::Select => encode_select(buf, sync, space, self.key(index, rng)),
            Kind::Insert => {
                let key = self.insert_base + index;
                encode_store(buf, request_type::INSERT, sync, space, key, &payload(rng));
            }
            Kind::Replace | Kind::Prepare => {
                let key = self.key(index, rng);
                encode_store(buf, request_type::REPLACE, sync, space, key, &payload(rng));
            }
            Kind::Update => encode_update(buf, sync, space, self.key(index, rng), &payload(rng)),
            Kind::Upsert => encode_upsert(buf, sync, space, self.key(index, rng), &payload(rng)),
            Kind::Delete => encode_delete(buf, sync, space, self.key(index, rng)),
            Kind::Call => {
                let kind = if self.call16 {
                    request_type::CALL_16
                } else {
                    request_type::CALL
                };
                encode_call(buf, kind, sync, &self.function, self.key(index, rng));
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

// }}}

// {{{ connections

struct Settings {
    address: String,
    user: Option<String>,
    password: String,
    timeout: Duration,
}

/// Error replies of the whole run: whether the first one's message was printed.
#[derive(Default)]
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

/// What one connection counted in a phase.
struct Tally {
    histogram: Histogram,
    errors: u64,
    finished: Instant,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            histogram: Histogram::new(),
            errors: 0,
            finished: Instant::now(),
        }
    }
}

impl Connection {
    /// Connects, reads the greeting and logs in if `settings` name a user.
    fn open(settings: &Settings, depth: usize, seed: u64) -> Result<Connection, String> {
        let (address, timeout) = (&settings.address, settings.timeout);
        let failed = |err: io::Error| format!("{address}: {}", io_text(&err, timeout));
        let addresses: Vec<_> = address.to_socket_addrs().map_err(failed)?.collect();
        let stream = TcpStream::connect(&addresses[..]).map_err(failed)?;
        stream.set_nodelay(true).map_err(failed)?;
        stream.set_read_timeout(Some(timeout)).map_err(failed)?;
        stream.set_write_timeout(Some(timeout)).map_err(failed)?;
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
            timeout,
        };
        let mut greeting = [0u8; GREETING_SIZE];
        connection
            .stream
            .read_exact(&mut greeting)
            .map_err(failed)?;
        let greeting =
            xrow::parse_greeting(&greeting).map_err(|err| format!("{address}: {err}"))?;
        if greeting.protocol != "Binary" {
            return Err(format!(
                "{address}: a {} port, not iproto",
                greeting.protocol
            ));
        }
        if let Some(user) = &settings.user {
            connection
                .login(user, &settings.password, &greeting.salt)
                .map_err(|err| format!("{address}: login as {user:?}: {err}"))?;
        }
        Ok(connection)
    }

    /// AUTH with chap-sha1, waiting for the reply.
    fn login(&mut self, user: &str, password: &str, salt: &[u8]) -> Result<(), String> {
        let scramble = tarantula::r#box::user::scramble(password, salt);
        let mut request = Vec::new();
        encode_auth(&mut request, 0, user, &scramble);
        self.stream
            .write_all(&request)
            .map_err(|err| io_text(&err, self.timeout))?;
        let reply = loop {
            if let Some(reply) = self.read.next_reply()? {
                break reply;
            }
            self.read
                .fill(&mut self.stream)
                .map_err(|err| io_text(&err, self.timeout))?;
        };
        if reply.status != request_type::OK {
            return Err(error_message(self.read.body(&reply)));
        }
        Ok(())
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
            in_flight -= self.receive(tally, errors)?;
        }
    }

    /// Takes every complete reply out of the read buffer; returns how many answered a
    /// request.
    fn receive(&mut self, tally: &mut Tally, errors: &ErrorLog) -> Result<usize, String> {
        let now = Instant::now();
        let mut answered = 0;
        while let Some(reply) = self.read.next_reply()? {
            if reply.status == RESPONSE_CHUNK {
                continue;
            }
            let slot = (reply.sync & (MAX_DEPTH as u64 - 1)) as usize;
            let Some(entry) = self
                .slots
                .get_mut(slot)
                .filter(|entry| entry.sync == reply.sync)
            else {
                return Err(format!("a reply with unknown sync {}", reply.sync));
            };
            entry.sync = 0;
            self.free.push(slot as u32);
            answered += 1;
            let latency = now.saturating_duration_since(entry.sent);
            tally.histogram.record(latency.as_nanos() as u64);
            if reply.status != request_type::OK {
                tally.errors += 1;
                if reply.status & request_type::TYPE_ERROR != 0 {
                    errors.report(&error_message(self.read.body(&reply)));
                } else {
                    errors.report(&format!("unexpected response status 0x{:x}", reply.status));
                }
            }
        }
        Ok(answered)
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

// }}}

// {{{ runs

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

/// One connection's part of a run: connect, warm up, meet the others at `barrier`, then
/// the measured phase. A failure sets `stop`, so that the others finish early.
fn connection_main(
    settings: &Settings,
    run: &Run,
    number: usize,
    phases: [&Phase; 2],
    barrier: &Barrier,
    stop: &AtomicBool,
    errors: &ErrorLog,
) -> Result<Tally, String> {
    let seed = run.seed ^ (number as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let [warmup, measured] = phases;
    let ready = Connection::open(settings, run.depth, seed).and_then(|mut connection| {
        connection.drive(&run.workload, warmup, &mut Tally::new(), errors, stop)?;
        Ok(connection)
    });
    if ready.is_err() {
        stop.store(true, Ordering::Relaxed);
    }
    // Everyone meets here, ready or not, so that no one waits forever.
    barrier.wait();
    let mut connection = ready?;
    let mut tally = Tally::new();
    let result = connection.drive(&run.workload, measured, &mut tally, errors, stop);
    tally.finished = Instant::now();
    if result.is_err() {
        stop.store(true, Ordering::Relaxed);
    }
    result.map(|()| tally)
}

fn run(settings: &Settings, run: &Run) -> Result<Outcome, String> {
    let warmup = Phase::new(0, run.warmup);
    let measured = Phase::new(run.warmup, run.requests);
    let barrier = Barrier::new(run.connections + 1);
    let stop = AtomicBool::new(false);
    let errors = ErrorLog::default();
    let (tallies, started) = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..run.connections)
            .map(|number| {
                let phases = [&warmup, &measured];
                let (barrier, stop, errors) = (&barrier, &stop, &errors);
                scope.spawn(move || {
                    connection_main(settings, run, number, phases, barrier, stop, errors)
                })
            })
            .collect();
        barrier.wait();
        let started = Instant::now();
        let tallies: Vec<_> = workers
            .into_iter()
            .map(|worker| worker.join().expect("a connection thread panicked"))
            .collect();
        (tallies, started)
    });
    let mut outcome = Outcome {
        histogram: Histogram::new(),
        errors: 0,
        seconds: 0.0,
    };
    let mut finished = started;
    for tally in tallies {
        let tally = tally?;
        outcome.histogram.merge(&tally.histogram);
        outcome.errors += tally.errors;
        finished = finished.max(tally.finished);
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

// }}}

// {{{ the command line

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

/// The options: short name, long name, value hint (empty: a flag), help.
const OPTIONS: &[(&str, &str, &str, &str)] = &[
    ("k", "kind", "KIND", "request kind (default ping): "),
    (
        "c",
        "connections",
        "N",
        "connections, one thread each (default 1)",
    ),
    (
        "d",
        "depth",
        "N",
        "requests in flight per connection (default 1)",
    ),
    (
        "n",
        "requests",
        "N",
        "requests over all connections (default 100000)",
    ),
    ("", "warmup", "N", "unmeasured requests first (default 0)"),
    ("u", "user", "NAME", "log in as this user (chap-sha1)"),
    (
        "p",
        "password",
        "PASSWORD",
        "the user's password (default empty)",
    ),
    ("s", "space", "ID", "space id (default 512)"),
    (
        "",
        "keys",
        "N",
        "keys 1..=N for select, replace, update, upsert, delete, call, prepare (default 100000)",
    ),
    (
        "",
        "sequential",
        "",
        "cycle through the keys in order instead of at random",
    ),
    (
        "",
        "key-base",
        "N",
        "first insert key (default: the time in nanoseconds)",
    ),
    (
        "",
        "function",
        "NAME",
        "function for call (default bench_call)",
    ),
    (
        "",
        "call16",
        "",
        "call with the 1.6 CALL (type 6) instead of type 10",
    ),
    ("", "expr", "LUA", "Lua for eval (default 'return 1')"),
    (
        "",
        "prepare",
        "",
        "first fill the space with keys 1..=keys (REPLACE)",
    ),
    ("", "seed", "N", "random seed (default from the clock)"),
    (
        "",
        "timeout",
        "SECONDS",
        "seconds to wait for a reply (default 30)",
    ),
    ("h", "help", "", "print this help"),
];

fn options() -> getopts::Options {
    let mut opts = getopts::Options::new();
    for &(short, long, hint, help) in OPTIONS {
        let help = match long {
            "kind" => help.to_string() + &KINDS.map(|(_, name)| name).join(", "),
            _ => help.to_string(),
        };
        if hint.is_empty() {
            opts.optflag(short, long, &help);
        } else {
            opts.optopt(short, long, &help, hint);
        }
    }
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

// }}}

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
    let settings = config.settings;
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
        let outcome = run(&settings, &prepare).unwrap_or_else(|err| fail(err));
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
    let outcome = run(&settings, &bench).unwrap_or_else(|err| fail(err));
    println!(
        "{}",
        report_line(kind, config.connections, config.depth, &outcome)
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use tarantula::r#box::db::RequestKind;
    use tarantula::error::{BoxError, ErrCode};
    use tarantula::proto::xrow::{Body, Header};

    fn hex(text: &str) -> Vec<u8> {
        let digits: String = text.split_whitespace().collect();
        (0..digits.len())
            .step_by(2)
            .map(|n| u8::from_str_radix(&digits[n..n + 2], 16).unwrap())
            .collect()
    }

    /// Reads the one request in `buf` as the server does.
    fn read_request(buf: &[u8]) -> (Header, Body<'_>) {
        let Frame::Complete { start, end } = xrow::next_frame(buf, MAX_PACKET) else {
            panic!("not one whole packet");
        };
        assert_eq!(end, buf.len());
        let (header, body) = xrow::decode_header(&buf[start..end]).unwrap();
        (header, xrow::decode_body(body).unwrap())
    }

    #[test]
    fn data_requests_read_back() {
        let payload = *b"abcdefghijklmnopqrst";
        let mut tuple = hex("92 07 b4");
        tuple.extend_from_slice(&payload);
        let mut assign = hex("91 93 a1 3d 01 b4");
        assign.extend_from_slice(&payload);
        let mut buf = Vec::new();
        let mut check = |encode: &dyn Fn(&mut Vec<u8>), kind: RequestKind, sync: u64| {
            buf.clear();
            encode(&mut buf);
            let (header, body) = read_request(&buf);
            assert_eq!(header.sync, sync);
            let request = xrow::data_request(header.kind, &body, 0).unwrap();
            assert_eq!(
                (request.kind, request.space_id, request.index_id),
                (kind, 512, 0)
            );
            (
                request.key.to_vec(),
                request.tuple.to_vec(),
                request.ops.to_vec(),
                request.limit,
            )
        };
        let select = check(
            &|buf| encode_select(buf, 8, 512, 300),
            RequestKind::Select,
            8,
        );
        assert_eq!(select, (hex("91 cd012c"), vec![], vec![], 1));
        let insert = |buf: &mut Vec<u8>| {
            encode_store(buf, request_type::INSERT, 2, 512, 7, &payload);
        };
        assert_eq!(check(&insert, RequestKind::Insert, 2).1, tuple);
        let replace = |buf: &mut Vec<u8>| {
            encode_store(buf, request_type::REPLACE, 3, 512, 7, &payload);
        };
        assert_eq!(check(&replace, RequestKind::Replace, 3).1, tuple);
        let update = check(
            &|buf| encode_update(buf, 4, 512, 7, &payload),
            RequestKind::Update,
            4,
        );
        assert_eq!((update.0, update.1), (hex("91 07"), assign.clone()));
        let upsert = check(
            &|buf| encode_upsert(buf, 9, 512, 7, &payload),
            RequestKind::Upsert,
            9,
        );
        assert_eq!((upsert.1, upsert.2), (tuple.clone(), assign.clone()));
        let delete = check(&|buf| encode_delete(buf, 5, 512, 7), RequestKind::Delete, 5);
        assert_eq!(delete.0, hex("91 07"));
    }

    #[test]
    fn other_requests_read_back() {
        let mut buf = Vec::new();
        encode_ping(&mut buf, 1);
        let (header, body) = read_request(&buf);
        assert_eq!(
            (header.kind, header.sync, body),
            (request_type::PING, 1, Body::default())
        );

        for kind in [request_type::CALL, request_type::CALL_16] {
            buf.clear();
            encode_call(&mut buf, kind, 6, "bench_call", 300);
            let (header, body) = read_request(&buf);
            assert_eq!((header.kind, header.sync), (kind, 6));
            assert_eq!(body.function_name, Some(&b"bench_call"[..]));
            assert_eq!(body.tuple, Some(&hex("91 cd012c")[..]));
        }

        buf.clear();
        encode_eval(&mut buf, 0x1_0000_0000, "return 1");
        let (header, body) = read_request(&buf);
        assert_eq!(
            (header.kind, header.sync),
            (request_type::EVAL, 0x1_0000_0000)
        );
        assert_eq!(body.expr, Some(&b"return 1"[..]));
        assert_eq!(body.tuple, Some(&[0x90][..]));
    }

    #[test]
    fn requests_append_to_one_buffer() {
        let mut buf = Vec::new();
        encode_ping(&mut buf, 1);
        let one = buf.len();
        encode_ping(&mut buf, 2);
        assert_eq!(read_request(&buf[..one]).0.sync, 1);
        assert_eq!(read_request(&buf[one..]).0.sync, 2);
    }

    #[test]
    fn auth_carries_the_scramble() {
        let salt: Vec<u8> = (1..=32).collect();
        let scramble = tarantula::r#box::user::scramble("secret", &salt);
        // chap-sha1 uses the first 20 bytes of the salt.
        assert_eq!(
            scramble.to_vec(),
            hex("b32bb3a583e1340c0a1108d58b1be49781ad8c2f")
        );
        let mut buf = Vec::new();
        encode_auth(&mut buf, 0, "bob", &scramble);
        let (header, body) = read_request(&buf);
        assert_eq!(header.kind, request_type::AUTH);
        assert_eq!(body.user_name, Some(&b"bob"[..]));
        let mut tuple = hex("92 a9 636861702d73686131 b4");
        tuple.extend_from_slice(&scramble);
        assert_eq!(body.tuple, Some(&tuple[..]));
    }

    #[test]
    fn replies_parse() {
        let mut ok = Vec::new();
        xrow::write_ok_reply(&mut ok, 1, 80);
        let (reply, size) = parse_reply(&ok).unwrap().unwrap();
        assert_eq!((reply.status, reply.sync, size), (0, 1, ok.len()));
        assert_eq!((reply.body_start, reply.body_end), (ok.len() - 1, ok.len()));
        assert_eq!(parse_reply(&ok[..size - 1]), Ok(None));

        let mut error = Vec::new();
        let err = BoxError::new(ErrCode::NO_SUCH_SPACE, &[&999]);
        xrow::write_error_reply(&mut error, 10, 80, &err);
        let (reply, _) = parse_reply(&error).unwrap().unwrap();
        assert_eq!((reply.status, reply.sync), (0x8024, 10));
        let body = &error[reply.body_start..reply.body_end];
        assert_eq!(error_message(body), "Space '999' does not exist");

        // Tarantool 2.x: a short length prefix, and an error stack after the message.
        let error = hex("15 83 00 cd8024 01 05 05 0a 82 31 a4 6e6f7065 52 81 00 91 80");
        let (reply, size) = parse_reply(&error).unwrap().unwrap();
        assert_eq!((reply.status, reply.sync, size), (0x8024, 5, error.len()));
        assert_eq!(
            error_message(&error[reply.body_start..reply.body_end]),
            "nope"
        );
        assert_eq!(error_message(&hex("81 30 90")), "(no message)");
        assert_eq!(error_message(&[]), "(no message)");

        assert!(parse_reply(&hex("c0")).is_err());
        assert!(parse_reply(&hex("03 90 80 80")).is_err());
    }

    #[test]
    fn replies_parse_across_partial_reads() {
        let mut stream = Vec::new();
        let mut expected = Vec::new();
        for sync in 1..=50u64 {
            xrow::write_ok_reply(&mut stream, sync, 1);
            expected.push(sync);
        }
        // A reply with a long body: more than the read buffer holds at first.
        let tuple = vec![0x90u8; 100_000];
        xrow::write_data_reply(&mut stream, 51, 1, [&tuple[..]]);
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
                        assert_eq!(read.body(&reply).len(), 7 + tuple.len());
                    }
                }
            }
            assert_eq!(seen, expected);
            assert!(read.fill(&mut source).is_err(), "end of stream");
        }
    }

    #[test]
    fn kinds_have_names() {
        for (kind, name) in KINDS {
            assert_eq!((Kind::parse(name), kind.name()), (Some(kind), name));
        }
        assert_eq!(Kind::parse("Ping"), None);
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
