//! The client side of the binary protocol, for `net.box`: one outgoing connection, its
//! handshake, and the replies it receives, sorted by SYNC for the fibers that wait.
//!
//! Owned by the TX thread. A connection moves through:
//!
//! ```text
//!   connect() ─▶ Connecting ─(writable)─▶ Greeting ─(128 bytes)─▶ [Auth ─(reply)─▶] Active
//!        └────────── any failure, the peer closing, close() ──────────────▶ Error(reason)
//! ```
//!
//! Requests are framed here with a fresh SYNC and written at once; each registers the fiber
//! that waits for it. Every readiness event reads what arrived, files complete replies under
//! their SYNC and returns the fibers to wake (those whose reply came, and on a state change
//! all that wait on the connection). A reply nobody waits for any more (its fiber timed out)
//! is dropped, so what is kept is bounded by the requests in flight.

use std::collections::HashMap;
use std::io;

use crate::constants::{IPROTO_PACKET_SIZE_MAX, NETBOX_READAHEAD};
use crate::fiber::FiberId;
use crate::proto::iproto_constants::{key, request_type};
use crate::proto::xrow::{self, Frame};

use super::connection::{Connection, IoOutcome, Stream};

/// Where the connection is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetboxState {
    /// The TCP (or unix) connect is in progress.
    Connecting,
    /// Connected; the greeting has not fully arrived.
    Greeting,
    /// AUTH is sent; its reply decides.
    Auth,
    /// Requests may go.
    Active,
    /// Unusable, for this reason.
    Error(String),
}

impl NetboxState {
    /// The name `conn.state` shows.
    pub fn name(&self) -> &'static str {
        match self {
            NetboxState::Connecting | NetboxState::Greeting => "connecting",
            NetboxState::Auth => "auth",
            NetboxState::Active => "active",
            NetboxState::Error(_) => "error",
        }
    }
}

/// A reply as it came: the status (0 or 0x8000|code), the schema id and the body bytes.
#[derive(Debug, PartialEq, Eq)]
pub struct Reply {
    pub status: u32,
    pub schema_id: u32,
    pub body: Vec<u8>,
}

/// One outgoing connection.
pub struct NetboxConn {
    conn: Connection,
    pub state: NetboxState,
    /// Peer's version (`major << 16 | minor << 8 | patch`) and UUID, from its greeting.
    pub peer_version: u32,
    pub peer_uuid: Option<String>,
    /// The newest schema id the peer reported.
    pub schema_id: u32,
    credentials: Option<(String, String)>,
    auth_sync: u64,
    next_sync: u64,
    /// Requests in flight: SYNC → the fiber waiting for the reply.
    waiting: HashMap<u64, FiberId>,
    /// Replies arrived and not yet taken.
    replies: HashMap<u64, Reply>,
    /// Fibers waiting for the state to change (wait_connected).
    watchers: Vec<FiberId>,
}

impl NetboxConn {
    /// A connection whose socket connect is under way; with `credentials` (user, password)
    /// it authenticates after the greeting.
    pub fn new(stream: Stream, credentials: Option<(String, String)>) -> NetboxConn {
        NetboxConn {
            conn: Connection::new(stream),
            state: NetboxState::Connecting,
            peer_version: 0,
            peer_uuid: None,
            schema_id: 0,
            credentials,
            auth_sync: 0,
            next_sync: 1,
            waiting: HashMap::new(),
            replies: HashMap::new(),
            watchers: Vec::new(),
        }
    }

    pub fn stream_mut(&mut self) -> &mut Stream {
        &mut self.conn.stream
    }

    /// The failure reason, if the connection is unusable.
    pub fn error(&self) -> Option<&str> {
        match &self.state {
            NetboxState::Error(reason) => Some(reason),
            _ => None,
        }
    }

    /// Frame and send a request of `kind` with `body` (a msgpack map); `fiber` waits for
    /// the reply. Returns its SYNC.
    pub fn request(&mut self, kind: u32, body: &[u8], fiber: FiberId) -> Result<u64, String> {
        if let Some(reason) = self.error() {
            return Err(reason.to_string());
        }
        if self.state != NetboxState::Active {
            return Err(String::from("Connection is not established"));
        }
        let sync = self.send(kind, body);
        self.waiting.insert(sync, fiber);
        if let NetboxState::Error(reason) = &self.state {
            self.waiting.remove(&sync);
            return Err(reason.clone());
        }
        Ok(sync)
    }

    fn send(&mut self, kind: u32, body: &[u8]) -> u64 {
        let sync = self.next_sync;
        self.next_sync += 1;
        let mut packet = Vec::with_capacity(body.len() + 32);
        let start = xrow::begin_packet(&mut packet, kind, sync, None);
        packet.extend_from_slice(body);
        xrow::end_packet(&mut packet, start);
        if self.conn.queue(&packet) == IoOutcome::Failed {
            self.fail("Connection reset by peer".to_string());
        }
        sync
    }

    /// The reply to `sync`, if it came; either way nobody waits for it any more.
    pub fn take_reply(&mut self, sync: u64) -> Option<Reply> {
        self.waiting.remove(&sync);
        self.replies.remove(&sync)
    }

    /// `fiber` waits for the next change of state.
    pub fn watch(&mut self, fiber: FiberId) {
        if !self.watchers.contains(&fiber) {
            self.watchers.push(fiber);
        }
    }

    /// `fiber` no longer waits for a change of state (its wait timed out).
    pub fn unwatch(&mut self, fiber: FiberId) {
        self.watchers.retain(|f| *f != fiber);
    }

    /// Make the connection unusable (close, a failure); returns the fibers to wake.
    pub fn fail(&mut self, reason: String) -> Vec<FiberId> {
        if self.error().is_none() {
            self.state = NetboxState::Error(reason);
        }
        self.wake_all()
    }

    fn wake_all(&mut self) -> Vec<FiberId> {
        let mut wake: Vec<FiberId> = self.waiting.values().copied().collect();
        wake.append(&mut self.watchers);
        wake
    }

    /// A readiness event: finish the connect, write, read and file replies. Returns the
    /// fibers to wake.
    /// Its socket and buffers.
    pub fn connection(&mut self) -> &mut Connection {
        &mut self.conn
    }

    pub fn on_ready(&mut self, readable: bool, writable: bool) -> Vec<FiberId> {
        if self.error().is_some() {
            return Vec::new();
        }
        if self.state == NetboxState::Connecting {
            match connect_result(&self.conn.stream) {
                None => return Vec::new(),
                Some(Err(err)) => return self.fail(io_reason(&err)),
                Some(Ok(())) => self.state = NetboxState::Greeting,
            }
        }
        if writable && self.conn.flush() == IoOutcome::Failed {
            return self.fail("Connection reset by peer".to_string());
        }
        if !readable && self.conn.input().is_empty() {
            return Vec::new();
        }
        let mut wake = Vec::new();
        loop {
            let outcome = self.conn.fill(NETBOX_READAHEAD);
            if let Err(reason) = self.parse(&mut wake) {
                wake.extend(self.fail(reason));
                return wake;
            }
            match outcome {
                IoOutcome::Progress(_) => continue,
                IoOutcome::WouldBlock => return wake,
                IoOutcome::Closed | IoOutcome::Failed => {
                    wake.extend(self.fail("Peer closed".to_string()));
                    return wake;
                }
            }
        }
    }

    /// Take the greeting and whole replies off the input.
    fn parse(&mut self, wake: &mut Vec<FiberId>) -> Result<(), String> {
        if self.state == NetboxState::Greeting {
            let input = self.conn.input();
            if input.len() < crate::constants::GREETING_SIZE {
                return Ok(());
            }
            let greeting = xrow::parse_greeting(&input[..crate::constants::GREETING_SIZE])?;
            self.conn.consume(crate::constants::GREETING_SIZE);
            if greeting.protocol != "Binary" {
                return Err(format!("Unsupported protocol: {}", greeting.protocol));
            }
            self.peer_version = greeting.version_id;
            self.peer_uuid = greeting.uuid;
            self.start_session(&greeting.salt);
            if self.state == NetboxState::Active {
                wake.append(&mut self.watchers);
            }
        }
        loop {
            let (packet, size) = match xrow::next_frame(self.conn.input(), IPROTO_PACKET_SIZE_MAX) {
                Frame::Incomplete { .. } => return Ok(()),
                Frame::Broken(reason) => return Err(reason),
                Frame::Complete { start, end } => (self.conn.input()[start..end].to_vec(), end),
            };
            self.conn.consume(size);
            let (header, body) = xrow::decode_header(&packet).map_err(|err| err.message)?;
            self.schema_id = self.schema_id.max(header.schema_id);
            let reply = Reply {
                status: header.kind,
                schema_id: header.schema_id,
                body: body.to_vec(),
            };
            self.on_reply(header.sync, reply, wake)?;
        }
    }

    /// After the greeting: authenticate, or be active at once.
    fn start_session(&mut self, salt: &[u8]) {
        let Some((user, password)) = self.credentials.take() else {
            self.state = NetboxState::Active;
            return;
        };
        let scramble = crate::r#box::user::scramble(&password, salt);
        let mut body = Vec::new();
        let _ = rmp::encode::write_map_len(&mut body, 2);
        let _ = rmp::encode::write_uint(&mut body, u64::from(key::USER_NAME));
        let _ = rmp::encode::write_str(&mut body, &user);
        let _ = rmp::encode::write_uint(&mut body, u64::from(key::TUPLE));
        let _ = rmp::encode::write_array_len(&mut body, 2);
        let _ = rmp::encode::write_str(&mut body, "chap-sha1");
        let _ = rmp::encode::write_bin(&mut body, &scramble);
        self.state = NetboxState::Auth;
        self.auth_sync = self.send(request_type::AUTH, &body);
    }

    fn on_reply(&mut self, sync: u64, reply: Reply, wake: &mut Vec<FiberId>) -> Result<(), String> {
        if self.state == NetboxState::Auth && sync == self.auth_sync {
            if reply.status != request_type::OK {
                return Err(error_message(&reply.body));
            }
            self.state = NetboxState::Active;
            wake.append(&mut self.watchers);
            return Ok(());
        }
        if let Some(fiber) = self.waiting.remove(&sync) {
            self.replies.insert(sync, reply);
            wake.push(fiber);
        }
        Ok(())
    }
}

/// The message of an error reply body `{0x31: message}`.
pub fn error_message(body: &[u8]) -> String {
    crate::r#box::mp::map_items(body)
        .and_then(|pairs| {
            pairs
                .into_iter()
                .find(|(k, _)| crate::r#box::mp::read_u64(k) == Some(u64::from(key::ERROR)))
                .and_then(|(_, v)| crate::r#box::mp::read_string(v))
        })
        .unwrap_or_else(|| String::from("Unknown error"))
}

/// An I/O error as Tarantool words it: the system's text without Rust's "(os error N)".
pub fn io_reason(err: &io::Error) -> String {
    let text = err.to_string();
    match text.find(" (os error ") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

/// Whether a non-blocking connect finished: None while it is in progress.
fn connect_result(stream: &Stream) -> Option<io::Result<()>> {
    let (error, peer) = match stream {
        Stream::Tcp(stream) => (stream.take_error(), stream.peer_addr().map(|_| ())),
        Stream::Unix(stream) => (stream.take_error(), stream.peer_addr().map(|_| ())),
    };
    match (error, peer) {
        (Err(err), _) | (Ok(Some(err)), _) => Some(Err(err)),
        (Ok(None), Ok(())) => Some(Ok(())),
        (Ok(None), Err(err)) if err.kind() == io::ErrorKind::NotConnected => None,
        (Ok(None), Err(err)) => Some(Err(err)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};

    /// A connection to a plain listener the test plays the server on.
    fn pair(credentials: Option<(String, String)>) -> (NetboxConn, std::net::TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = mio::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        server
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        (NetboxConn::new(Stream::Tcp(stream), credentials), server)
    }

    fn pump(conn: &mut NetboxConn, until: impl Fn(&NetboxConn) -> bool) -> Vec<FiberId> {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut woken = Vec::new();
        while !until(conn) {
            assert!(Instant::now() < deadline, "stuck in {:?}", conn.state);
            woken.extend(conn.on_ready(true, true));
            std::thread::yield_now();
        }
        woken
    }

    fn reply_packet(sync: u64, status: u32, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let start = xrow::begin_packet(&mut out, status, sync, Some(3));
        out.extend_from_slice(body);
        xrow::end_packet(&mut out, start);
        out
    }

    #[test]
    fn handshake_request_and_reply() {
        let (mut conn, mut server) = pair(None);
        conn.watch(7);
        server
            .write_all(&xrow::greeting("uuid-1", &[1; 32]))
            .unwrap();
        let woken = pump(&mut conn, |c| c.state == NetboxState::Active);
        assert_eq!(woken, vec![7]);
        assert_eq!(conn.peer_uuid.as_deref(), Some("uuid-1"));
        let sync = conn.request(request_type::PING, &[0x80], 9).unwrap();
        let mut sent = [0u8; 5];
        server.read_exact(&mut sent).unwrap();
        let mut rest = vec![0u8; u32::from_be_bytes(sent[1..].try_into().unwrap()) as usize];
        server.read_exact(&mut rest).unwrap();
        // A reply in two pieces, and one for a sync nobody waits for.
        let packet = reply_packet(sync, 0, &[0x80]);
        server.write_all(&reply_packet(99, 0, &[0x80])).unwrap();
        server.write_all(&packet[..4]).unwrap();
        server.flush().unwrap();
        std::thread::sleep(Duration::from_millis(20));
        server.write_all(&packet[4..]).unwrap();
        let woken = pump(&mut conn, |c| c.replies.contains_key(&sync));
        assert_eq!(woken, vec![9]);
        let reply = conn.take_reply(sync).unwrap();
        assert_eq!(
            (reply.status, reply.schema_id, reply.body),
            (0, 3, vec![0x80])
        );
        assert!(conn.replies.is_empty());
        assert_eq!(conn.schema_id, 3);
    }

    #[test]
    fn auth_failure_and_peer_gone_wake_everyone() {
        let (mut conn, mut server) = pair(Some(("u".into(), "p".into())));
        conn.watch(1);
        server
            .write_all(&xrow::greeting("uuid-2", &[2; 32]))
            .unwrap();
        pump(&mut conn, |c| c.state == NetboxState::Auth);
        let mut prefix = [0u8; 5];
        server.read_exact(&mut prefix).unwrap();
        let mut packet = vec![0u8; u32::from_be_bytes(prefix[1..].try_into().unwrap()) as usize];
        server.read_exact(&mut packet).unwrap();
        let (header, _) = xrow::decode_header(&packet).unwrap();
        assert_eq!(header.kind, request_type::AUTH);
        let mut body = vec![0x81, key::ERROR, 0xa4];
        body.extend_from_slice(b"nope");
        server
            .write_all(&reply_packet(header.sync, 0x8000 | 47, &body))
            .unwrap();
        let woken = pump(&mut conn, |c| c.error().is_some());
        assert_eq!(woken, vec![1]);
        assert_eq!(conn.error(), Some("nope"));
        assert!(conn.request(request_type::PING, &[0x80], 2).is_err());

        let (mut conn, server) = pair(None);
        drop(server);
        pump(&mut conn, |c| c.error().is_some());
    }
}
