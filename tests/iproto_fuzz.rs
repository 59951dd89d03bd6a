//! The binary protocol under hostile clients: thousands of random and mutated frames over
//! many connections, then checks that the server lives, serves, kept its data and logged no
//! panic; the promises per kind of bad input (a malformed request gets an error reply and
//! the connection stays, broken framing closes only that connection); and a client that
//! never reads its replies, which must not make the server hold unbounded memory or stall
//! the others.
//!
//! The random tests print their seed; `TARANTULA_FUZZ_SEED=<seed>` replays one.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{DEADLINE, TempDir, binary, lines_of, wait_for};

/// Rows of the space the guest may only read; the fuzz frames cannot legally change them.
const PROTECTED_ROWS: u64 = 10;

const SETUP: &str = "box.cfg{listen = '127.0.0.1:0', log = 'tarantula.log'}\n\
    local p = box.schema.space.create('protected')\n\
    p:create_index('primary')\n\
    for i = 1, 10 do p:insert{i, 'row ' .. i, {i, i * 2}} end\n\
    local s = box.schema.space.create('scratch')\n\
    s:create_index('primary')\n\
    local big = box.schema.space.create('big')\n\
    big:create_index('primary')\n\
    for i = 1, 4 do big:insert{i, string.rep('b', 512 * 1024)} end\n\
    box.schema.user.grant('guest', 'read', 'space', 'protected')\n\
    box.schema.user.grant('guest', 'read', 'space', 'big')\n\
    box.schema.user.grant('guest', 'read,write', 'space', 'scratch')\n\
    box.schema.user.grant('guest', 'execute', 'universe')\n\
    function echo(...) return ... end\n\
    function blob(n) return string.rep('x', n) end\n\
    io.stdout:write('SPACES ', p.id, ' ', s.id, ' ', big.id, '\\n')\n\
    io.stdout:write('IPROTO ', box.info.listen, '\\n') io.stdout:flush()\n";

// {{{ server

/// The server under test, with its stderr kept in a file (a Rust panic prints there).
struct Server {
    child: Child,
    dir: TempDir,
    address: String,
    protected: u64,
    scratch: u64,
    big: u64,
}

impl Server {
    fn start() -> Server {
        let dir = TempDir::new("fuzz");
        let script = dir.write("init.lua", SETUP);
        let stderr = std::fs::File::create(dir.path().join("stderr.txt")).unwrap();
        let mut child = Command::new(binary())
            .arg(&script)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .expect("spawn tarantula");
        let stdout = lines_of(child.stdout.take().unwrap());
        let line = |prefix: &str| {
            wait_for(prefix, || {
                let line = stdout.recv_timeout(DEADLINE).expect("server output");
                line.strip_prefix(prefix)
                    .map(|rest| rest.trim().to_string())
            })
        };
        let ids: Vec<u64> = line("SPACES ")
            .split(' ')
            .map(|id| id.parse().unwrap())
            .collect();
        let address = line("IPROTO ");
        Server {
            child,
            dir,
            address,
            protected: ids[0],
            scratch: ids[1],
            big: ids[2],
        }
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Resident memory in KiB.
    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// The server's log and stderr, for the panic check.
    fn logs(&self) -> String {
        let read = |name: &str| -> String {
            let path: PathBuf = self.dir.path().join(name);
            std::fs::read_to_string(path).unwrap_or_default()
        };
        read("tarantula.log") + &read("stderr.txt")
    }

    fn assert_healthy(&mut self) {
        assert!(self.alive(), "the server died:\n{}", self.logs());
        let logs = self.logs();
        assert!(
            !logs.contains("panicked") && !logs.contains("RUST_BACKTRACE"),
            "the server panicked:\n{logs}"
        );
        let mut client = Client::connect(&self.address);
        let reply = client.exchange(&ping(7));
        assert_eq!((reply.status, reply.sync), (0, 7));
        let reply = client.exchange(&select(8, self.protected, &[], 1000));
        assert_eq!(reply.status, 0, "{}", reply.error_message());
        assert_eq!(reply.body, protected_rows(), "the protected space changed");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The body `{0x30: [...]}` a select of every protected row answers.
fn protected_rows() -> Vec<u8> {
    let mut body = vec![0x81, 0x30, 0xdd];
    body.extend_from_slice(&(PROTECTED_ROWS as u32).to_be_bytes());
    for i in 1..=PROTECTED_ROWS {
        rmp::encode::write_array_len(&mut body, 3).unwrap();
        rmp::encode::write_uint(&mut body, i).unwrap();
        rmp::encode::write_str(&mut body, &format!("row {i}")).unwrap();
        rmp::encode::write_array_len(&mut body, 2).unwrap();
        rmp::encode::write_uint(&mut body, i).unwrap();
        rmp::encode::write_uint(&mut body, i * 2).unwrap();
    }
    body
}

// }}}

// {{{ client

/// A reply: status, sync, body bytes.
#[derive(Debug)]
struct Reply {
    status: u32,
    sync: u64,
    body: Vec<u8>,
}

impl Reply {
    /// Parse a reply packet (without its length prefix) as the server writes it:
    /// `{0: ce status, 1: cf sync, 5: ce schema}` then the body.
    fn parse(packet: &[u8]) -> Reply {
        assert!(packet.len() >= 23, "short reply {packet:02x?}");
        assert_eq!(&packet[..3], &[0x83, 0x00, 0xce]);
        assert_eq!(&packet[7..9], &[0x01, 0xcf]);
        assert_eq!(&packet[17..19], &[0x05, 0xce]);
        Reply {
            status: u32::from_be_bytes(packet[3..7].try_into().unwrap()),
            sync: u64::from_be_bytes(packet[9..17].try_into().unwrap()),
            body: packet[23..].to_vec(),
        }
    }

    /// An error reply's message; checks the shape `0x8000|code, {0x31: str}`.
    fn error_message(&self) -> String {
        if self.status & 0x8000 == 0 {
            return String::new();
        }
        assert_eq!(&self.body[..3], &[0x81, 0x31, 0xdb], "{self:?}");
        let len = u32::from_be_bytes(self.body[3..7].try_into().unwrap()) as usize;
        assert_eq!(self.body.len(), 7 + len);
        String::from_utf8(self.body[7..].to_vec()).unwrap()
    }

    /// Check a reply is one the protocol allows: OK with a map body, or a well-formed error.
    fn assert_well_formed(&self) {
        if self.status == 0 {
            assert!(
                self.body.first().is_some_and(|&b| b & 0xf0 == 0x80),
                "{self:?}"
            );
        } else {
            assert_eq!(self.status & 0xffff_8000, 0x8000, "{self:?}");
            assert_ne!(self.status, 0x8000, "error code 0: {self:?}");
            assert!(!self.error_message().is_empty());
        }
    }
}

/// How a read ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// The wanted replies came.
    Replied,
    /// The server closed the connection.
    Closed,
    /// Neither, before the deadline.
    TimedOut,
}

struct Client {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl Client {
    fn connect(address: &str) -> Client {
        let stream = TcpStream::connect(address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        stream
            .set_write_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut client = Client {
            stream,
            buffer: Vec::new(),
        };
        let deadline = Instant::now() + DEADLINE;
        while client.buffer.len() < 128 {
            assert!(client.fill(deadline), "no greeting");
        }
        assert!(client.buffer.starts_with(b"Tarantool 1.6.9 (Binary) "));
        client.buffer.drain(..128);
        client
    }

    /// Read some more bytes; false when the server closed the connection.
    fn fill(&mut self, deadline: Instant) -> bool {
        let mut chunk = [0u8; 64 * 1024];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return false,
                Ok(count) => {
                    self.buffer.extend_from_slice(&chunk[..count]);
                    return true;
                }
                Err(err)
                    if matches!(
                        err.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    if Instant::now() >= deadline {
                        return true;
                    }
                }
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
    }

    /// A whole reply off the front of the buffer, if there is one.
    fn take_reply(&mut self) -> Option<Reply> {
        if self.buffer.len() < 5 {
            return None;
        }
        assert_eq!(self.buffer[0], 0xce, "a reply prefix");
        let len = u32::from_be_bytes(self.buffer[1..5].try_into().unwrap()) as usize;
        if self.buffer.len() < 5 + len {
            return None;
        }
        let reply = Reply::parse(&self.buffer[5..5 + len]);
        self.buffer.drain(..5 + len);
        Some(reply)
    }

    /// Read until `count` replies came, the server closed, or `wait` passed.
    fn read_replies(&mut self, count: usize, wait: Duration) -> (Vec<Reply>, End) {
        let deadline = Instant::now() + wait;
        let mut replies = Vec::new();
        loop {
            while let Some(reply) = self.take_reply() {
                replies.push(reply);
            }
            if replies.len() >= count {
                return (replies, End::Replied);
            }
            if Instant::now() >= deadline {
                return (replies, End::TimedOut);
            }
            if !self.fill(deadline) {
                while let Some(reply) = self.take_reply() {
                    replies.push(reply);
                }
                return (replies, End::Closed);
            }
        }
    }

    fn send(&mut self, bytes: &[u8]) -> bool {
        self.stream.write_all(bytes).is_ok()
    }

    fn exchange(&mut self, request: &[u8]) -> Reply {
        assert!(self.send(request));
        let (mut replies, end) = self.read_replies(1, DEADLINE);
        assert_eq!(end, End::Replied);
        replies.remove(0)
    }

    /// Whether the server closes the connection within `wait`.
    fn closes_within(&mut self, wait: Duration) -> bool {
        let (_, end) = self.read_replies(usize::MAX, wait);
        end == End::Closed
    }
}

// }}}

// {{{ requests

/// A frame: `0xce len` then the bytes.
fn frame(packet: &[u8]) -> Vec<u8> {
    let mut out = vec![0xce];
    out.extend_from_slice(&(packet.len() as u32).to_be_bytes());
    out.extend_from_slice(packet);
    out
}

/// Header `{0: kind, 1: sync}`.
fn header(kind: u32, sync: u64) -> Vec<u8> {
    let mut out = vec![0x82, 0x00];
    rmp::encode::write_uint(&mut out, u64::from(kind)).unwrap();
    out.push(0x01);
    rmp::encode::write_uint(&mut out, sync).unwrap();
    out
}

fn request(kind: u32, sync: u64, body: &[u8]) -> Vec<u8> {
    let mut packet = header(kind, sync);
    packet.extend_from_slice(body);
    frame(&packet)
}

fn ping(sync: u64) -> Vec<u8> {
    request(64, sync, &[0x80])
}

/// An array of uints.
fn uints(values: &[u64]) -> Vec<u8> {
    let mut out = Vec::new();
    rmp::encode::write_array_len(&mut out, values.len() as u32).unwrap();
    for value in values {
        rmp::encode::write_uint(&mut out, *value).unwrap();
    }
    out
}

fn select(sync: u64, space: u64, key: &[u64], limit: u64) -> Vec<u8> {
    let mut body = vec![0x84, 0x10];
    rmp::encode::write_uint(&mut body, space).unwrap();
    body.extend_from_slice(&[0x12]);
    rmp::encode::write_uint(&mut body, limit).unwrap();
    body.extend_from_slice(&[0x14, 0x00, 0x20]);
    body.extend_from_slice(&uints(key));
    request(1, sync, &body)
}

/// INSERT (2) or REPLACE (3) of `tuple`.
fn store(kind: u32, sync: u64, space: u64, tuple: &[u8]) -> Vec<u8> {
    let mut body = vec![0x82, 0x10];
    rmp::encode::write_uint(&mut body, space).unwrap();
    body.push(0x21);
    body.extend_from_slice(tuple);
    request(kind, sync, &body)
}

/// CALL (6 or 10) of `name`, or EVAL (8) of `name` as an expression.
fn call(kind: u32, sync: u64, name: &str, args: &[u8]) -> Vec<u8> {
    let mut body = vec![0x82, if kind == 8 { 0x27 } else { 0x22 }];
    rmp::encode::write_str(&mut body, name).unwrap();
    body.push(0x21);
    body.extend_from_slice(args);
    request(kind, sync, &body)
}

// }}}

// {{{ random frames

/// splitmix64: small, deterministic, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn index(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// Up to `max - 1` random bytes.
    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let n = self.index(max);
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// The seed: `TARANTULA_FUZZ_SEED`, or the clock.
fn seed() -> u64 {
    let seed = std::env::var("TARANTULA_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    println!("TARANTULA_FUZZ_SEED={seed}");
    seed
}

/// A random msgpack value, nested at most `depth` deep.
fn random_value(rng: &mut Rng, depth: u32, out: &mut Vec<u8>) {
    use rmp::encode::*;
    let kinds = if depth == 0 { 9 } else { 11 };
    match rng.below(kinds) {
        0 => write_nil(out).unwrap(),
        1 => write_bool(out, rng.chance(50)).unwrap(),
        2 => {
            write_uint(out, rng.next() >> rng.below(64)).unwrap();
        }
        3 => {
            write_sint(out, -((rng.next() >> (rng.below(63) + 1)) as i64)).unwrap();
        }
        4 => write_f64(out, f64::from_bits(rng.next())).unwrap(),
        5 => write_f32(out, rng.next() as f32).unwrap(),
        6 => {
            let text: String = (0..rng.below(40))
                .map(|_| (b' ' + rng.below(95) as u8) as char)
                .collect();
            write_str(out, &text).unwrap()
        }
        7 => {
            let bytes = rng.bytes(40);
            write_bin(out, &bytes).unwrap()
        }
        8 => {
            let data = rng.bytes(20);
            write_ext_meta(out, data.len() as u32, rng.next() as i8).unwrap();
            out.extend_from_slice(&data);
        }
        9 => {
            let n = rng.below(5) as u32;
            write_array_len(out, n).unwrap();
            for _ in 0..n {
                random_value(rng, depth - 1, out);
            }
        }
        _ => {
            let n = rng.below(5) as u32;
            write_map_len(out, n).unwrap();
            for _ in 0..n {
                random_key(rng, out);
                random_value(rng, depth - 1, out);
            }
        }
    }
}

/// A map key: mostly protocol keys, sometimes anything.
fn random_key(rng: &mut Rng, out: &mut Vec<u8>) {
    if rng.chance(70) {
        let known = [
            0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x10, 0x11, 0x12, 0x13, 0x14,
        ];
        let more = [
            0x15, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29,
        ];
        let key = if rng.chance(50) {
            known[rng.index(known.len())]
        } else {
            more[rng.index(more.len())]
        };
        out.push(key);
    } else {
        random_value(rng, 1, out);
    }
}

/// A valid request of a random kind.
fn valid_request(rng: &mut Rng, server: &Server, sync: u64) -> Vec<u8> {
    let key = rng.below(20);
    match rng.below(10) {
        0 => ping(sync),
        1 => select(sync, server.protected, &[key], rng.below(5)),
        2 => select(sync, server.scratch, &[], 10),
        3 => store(2, sync, server.scratch, &uints(&[key, rng.next()])),
        4 => store(3, sync, server.scratch, &uints(&[key])),
        5 => store(2, sync, server.protected, &uints(&[100 + key])),
        6 => call(10, sync, "echo", &uints(&[key, key])),
        7 => call(6, sync, "echo", &uints(&[key])),
        8 => call(8, sync, "return ...", &uints(&[key])),
        _ => {
            let mut args = Vec::new();
            random_value(rng, 3, &mut args);
            let mut array = vec![0x91];
            array.extend_from_slice(&args);
            call(10, sync, "echo", &array)
        }
    }
}

/// A frame whose length prefix is right, but whose insides are mangled. The server must
/// answer it (with data or an error) and keep the connection.
fn framed_junk(rng: &mut Rng, server: &Server, sync: u64) -> Vec<u8> {
    let valid = valid_request(rng, server, sync);
    let mut packet = valid[5..].to_vec();
    match rng.below(7) {
        0 => {
            for _ in 0..=rng.below(4) {
                let at = rng.index(packet.len());
                packet[at] ^= 1 << rng.below(8);
            }
        }
        1 => packet.truncate(rng.index(packet.len())),
        2 => {
            // A header key with a wrong type.
            packet = vec![0x82, 0x00, 0xa4, b'p', b'i', b'n', b'g', 0x01, 0x01, 0x80];
            if rng.chance(50) {
                packet = vec![0x82, 0x00, 0x40, 0x01, 0x91, 0x01, 0x80];
            }
        }
        3 => {
            // A body key with a wrong type.
            let mut body = vec![0x82, [0x10, 0x12, 0x20, 0x21, 0x22, 0x27][rng.index(6)]];
            random_value(rng, 2, &mut body);
            body.push(0x21);
            random_value(rng, 2, &mut body);
            packet = header([1, 2, 3, 4, 5, 6, 8, 9, 10][rng.index(9)], sync);
            packet.extend_from_slice(&body);
        }
        4 => {
            // Random header and body maps.
            packet.clear();
            for _ in 0..2 {
                let n = rng.below(4) as u32;
                rmp::encode::write_map_len(&mut packet, n).unwrap();
                for _ in 0..n {
                    random_key(rng, &mut packet);
                    random_value(rng, 2, &mut packet);
                }
            }
        }
        5 => {
            packet.clear();
            for _ in 0..=rng.below(3) {
                random_value(rng, 3, &mut packet);
            }
        }
        _ => packet = rng.bytes(64),
    }
    frame(&packet)
}

/// Bytes that break the framing, and whether they surely do (random bytes may instead hold
/// frames, or the start of one).
fn broken_framing(rng: &mut Rng) -> (Vec<u8>, bool) {
    match rng.below(4) {
        0 => {
            // Not a msgpack uint.
            let mut out = vec![[0xa1, 0x90, 0xc0, 0xd0, 0xff, 0x80][rng.index(6)]];
            out.extend(rng.bytes(16));
            (out, true)
        }
        1 => {
            // Over the packet limit.
            let mut out = vec![0xcf];
            out.extend_from_slice(&(rng.next() | 1 << 40).to_be_bytes());
            (out, true)
        }
        2 => (vec![0xce, 0xff, 0xff, 0xff, 0xff], true),
        _ => (rng.bytes(200), false),
    }
}

/// Bytes that leave a frame unfinished: a declared length the client never fills.
fn unfinished(rng: &mut Rng, server: &Server, sync: u64) -> Vec<u8> {
    let valid = valid_request(rng, server, sync);
    if rng.chance(50) {
        return valid[..rng.index(valid.len())].to_vec();
    }
    let mut out = vec![0xce];
    out.extend_from_slice(&(1u32 << 20 | rng.next() as u32 & 0xff_ffff).to_be_bytes());
    out.extend(rng.bytes(100));
    out
}

// }}}

/// Thousands of random frames in many connections; the server must answer every framed
/// one, close only connections with broken framing, and stay whole.
#[test]
fn random_frames_do_not_hurt_the_server() {
    let mut server = Server::start();
    let mut rng = Rng(seed());
    let started = Instant::now();
    let mut frames = 0usize;
    let mut connections = 0usize;
    while started.elapsed() < Duration::from_secs(10) && connections < 2000 {
        connections += 1;
        let mut client = Client::connect(&server.address);
        // Framed requests, valid and mangled: each must get exactly one reply.
        let count = 1 + rng.index(40);
        let mut bytes = Vec::new();
        for i in 0..count {
            let sync = (connections * 1000 + i) as u64;
            if rng.chance(30) {
                bytes.extend(valid_request(&mut rng, &server, sync));
            } else {
                bytes.extend(framed_junk(&mut rng, &server, sync));
            }
        }
        frames += count;
        // Sent in random pieces, so packets straddle reads.
        let mut sent = 0;
        while sent < bytes.len() {
            let piece = 1 + rng.index(bytes.len() - sent);
            assert!(client.send(&bytes[sent..sent + piece]), "send failed");
            sent += piece;
        }
        let (replies, end) = client.read_replies(count, DEADLINE);
        assert_eq!(
            end,
            End::Replied,
            "connection {connections}: {} of {count} replies",
            replies.len()
        );
        for reply in &replies {
            reply.assert_well_formed();
        }
        // Then, sometimes, the end of the stream goes bad.
        match rng.below(4) {
            0 => {
                let (bytes, surely) = broken_framing(&mut rng);
                client.send(&bytes);
                if !surely {
                    let _ = client.stream.shutdown(Shutdown::Write);
                }
                assert!(
                    client.closes_within(DEADLINE),
                    "broken framing must close the connection"
                );
            }
            1 => {
                client.send(&unfinished(&mut rng, &server, 1));
                let _ = client.stream.shutdown(Shutdown::Write);
                assert!(
                    client.closes_within(DEADLINE),
                    "a client that stopped sending mid-frame must be closed"
                );
            }
            2 => {
                let reply = client.exchange(&ping(1));
                assert_eq!(reply.status, 0);
            }
            _ => {}
        }
    }
    println!("{frames} frames over {connections} connections");
    server.assert_healthy();
}

/// Each kind of bad input gets what the protocol promises.
#[test]
fn bad_input_kinds() {
    let mut server = Server::start();
    let mut client = Client::connect(&server.address);
    // A body that is not a map, a body key of the wrong type, a header that is not a map,
    // a header key of the wrong type, a header key past the last known one, trailing junk,
    // an unknown request type: an error reply each, and the connection stays.
    let cases: [(Vec<u8>, u32, &str); 7] = [
        (
            request(1, 1, &[0x91, 0x01]),
            20,
            "Invalid MsgPack - packet body",
        ),
        (
            request(2, 2, &[0x82, 0x10, 0xa1, b'x', 0x21, 0x90]),
            20,
            "Invalid MsgPack - packet body",
        ),
        (
            frame(&[0x91, 0x00, 0x80]),
            20,
            "Invalid MsgPack - packet header",
        ),
        (
            frame(&[0x82, 0x00, 0x40, 0x01, 0xa1, b'x', 0x80]),
            20,
            "Invalid MsgPack - packet header",
        ),
        (
            frame(&[0x82, 0x00, 0x40, 0x7f, 0x01, 0x80]),
            20,
            "Invalid MsgPack - packet header",
        ),
        (
            request(1, 6, &[0x82, 0x10, 0xcd]),
            20,
            "Invalid MsgPack - packet body",
        ),
        (request(99, 7, &[0x80]), 48, "Unknown request type 99"),
    ];
    for (bytes, code, message) in cases {
        let reply = client.exchange(&bytes);
        assert_eq!(reply.status, 0x8000 | code, "{bytes:02x?}");
        assert_eq!(reply.error_message(), message);
        assert_eq!(client.exchange(&ping(100)).status, 0);
    }
    // Broken framing closes that connection only.
    for bad in [
        vec![0xa1, 0x00],
        vec![0xc0],
        vec![0xce, 0x08, 0x00, 0x00, 0x01],
        vec![0xcf, 0, 0, 0, 1, 0, 0, 0, 0],
    ] {
        let mut other = Client::connect(&server.address);
        assert!(other.send(&bad));
        assert!(
            other.closes_within(DEADLINE),
            "{bad:02x?} kept the connection"
        );
        assert_eq!(client.exchange(&ping(101)).status, 0);
    }
    // A length at the limit is legal: the server waits for the rest, then drops the
    // connection when the client gives up. (Regression: a partial packet at EOF used to
    // keep the connection, and its socket, open for good.)
    let mut waiting = Client::connect(&server.address);
    assert!(waiting.send(&[0xce, 0x08, 0x00, 0x00, 0x00, 0x82]));
    assert!(!waiting.closes_within(Duration::from_millis(200)));
    waiting.stream.shutdown(Shutdown::Write).unwrap();
    assert!(waiting.closes_within(DEADLINE));
    assert_eq!(client.exchange(&ping(102)).status, 0);
    // A reply over the packet limit (128 MiB) is an error, and the connection stays.
    let reply = client.exchange(&call(10, 103, "blob", &uints(&[129 << 20])));
    assert_eq!((reply.status, reply.sync), (0x8000 | 2, 103));
    assert!(
        reply
            .error_message()
            .starts_with("Failed to allocate 1352663"),
        "{}",
        reply.error_message()
    );
    assert_eq!(client.exchange(&ping(104)).status, 0);
    server.assert_healthy();
}

/// A client that pipelines `requests` requests made by `request(sync)`, each answered
/// with `reply_body_len` bytes of body, and never reads them, must not make the server hold
/// much more than IPROTO_OUTPUT_SIZE_MAX for it (its memory grows by under
/// `growth_max_mib`): the server stops serving it (and reading from it) while others are
/// served as usual. When it reads at last, its replies are all there, in order.
fn slow_reader_is_held_back(
    server: &mut Server,
    requests: usize,
    request: fn(u64, &Server) -> Vec<u8>,
    reply_body_len: usize,
    growth_max_mib: u64,
) {
    let mut probe = Client::connect(&server.address);
    assert_eq!(probe.exchange(&ping(1)).status, 0);
    let rss_before = server.rss_kib();

    let mut slow = Client::connect(&server.address);
    let mut writer = slow.stream.try_clone().unwrap();
    let bytes: Vec<u8> = (0..requests as u64)
        .flat_map(|sync| request(sync, server))
        .collect();
    let sender = std::thread::spawn(move || writer.write_all(&bytes).is_ok());

    // Meanwhile another client is served promptly.
    let mut rss_peak = rss_before;
    let busy_until = Instant::now() + Duration::from_secs(2);
    let mut probes = 0;
    while Instant::now() < busy_until {
        let asked = Instant::now();
        let reply = probe.exchange(&select(2, server.protected, &[3], 1));
        assert_eq!(reply.status, 0);
        assert!(
            asked.elapsed() < Duration::from_secs(1),
            "a select took {:?} beside a client that does not read",
            asked.elapsed()
        );
        probes += 1;
        rss_peak = rss_peak.max(server.rss_kib());
    }
    assert!(probes > 10);
    let growth_mib = rss_peak.saturating_sub(rss_before) / 1024;
    let total_mib = (requests * reply_body_len) >> 20;
    println!(
        "RSS {rss_before} KiB before, peak {rss_peak} KiB: {growth_mib} MiB more for \
         {total_mib} MiB of replies"
    );
    assert!(
        growth_mib < growth_max_mib,
        "the server grew {growth_mib} MiB for a client that does not read"
    );

    // Backpressure, not loss.
    slow.stream
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut next = 0u64;
    while next < requests as u64 {
        assert!(Instant::now() < deadline, "{next} replies of {requests}");
        if let Some(reply) = slow.take_reply() {
            assert_eq!((reply.status, reply.sync), (0, next));
            assert_eq!(reply.body.len(), reply_body_len);
            next += 1;
            continue;
        }
        assert!(slow.fill(deadline), "the server closed the slow client");
    }
    assert!(sender.join().unwrap());
    server.assert_healthy();
}

/// SELECTs run in TX: 300 of 4 tuples of 512 KiB, 600 MiB if the server kept them all.
/// SELECTs in a row run together, but a run stops at the output limit too (the server grew
/// by 8 MiB here; 32 when a run of 16 went on past the limit).
#[test]
fn a_client_that_does_not_read_selects_is_held_back() {
    let mut server = Server::start();
    let request = |sync, server: &Server| select(sync, server.big, &[], 4);
    let reply_body_len = 7 + 4 * (1 + 1 + 5 + 512 * 1024);
    slow_reader_is_held_back(&mut server, 300, request, reply_body_len, 20);
}

/// CALLs run in fibers: 2000 answering 128 KiB each, 250 MiB in all. The replies of calls
/// already running when the output passes the limit still join it (at most
/// IPROTO_REQUESTS_PER_TURN_MAX calls start per loop turn, and net_msg_max run at once),
/// so the bound here is that many replies, not the 4 MiB of the select case.
#[test]
fn a_client_that_does_not_read_calls_is_held_back() {
    let mut server = Server::start();
    let request = |sync, _: &Server| call(10, sync, "blob", &uints(&[128 << 10]));
    slow_reader_is_held_back(&mut server, 2000, request, 7 + 5 + (128 << 10), 200);
}
