//! The applier thread: one per replication source, on the replica (see `mod.rs`).
//!
//! Owned by the `applier/<uri>` thread, which owns one upstream socket (blocking, with a
//! short read timeout) and a [`RowReader`]. It decodes nothing beyond packet headers: rows go
//! to TX whole, in batches, and TX applies them.
//!
//! ```text
//!            ┌──────────── network error: Disconnected, wait 1 s ◀──────────┐
//!            ▼                                                              │
//!  Connect ─▶ [Auth] ─▶ Connected ─▶ [Bootstrap: JOIN, once] ─▶ WantSubscribe ─▶ Follow
//!                                                                   (TX answers Subscribe)
//!  error reply from the master, or ApplierCmd::Fail ─▶ Stopped (thread ends, no retry)
//! ```
//!
//! The pure parts (the row reader that cuts bytes into batches, the URI shown in names, the
//! AUTH packet) are at the top and unit-tested; the thread below is a thin driver that reads
//! with a [`APPLIER_READ_TICK`] timeout and looks at TX's commands between reads, so Stop is
//! prompt in every state. The password of the URI never leaves `Applier::credentials`.

use std::convert::Infallible;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use crossbeam::channel::{Receiver, RecvTimeoutError, TryRecvError};

use crate::cfg::{Uri, UriAddress};
use crate::constants::{
    APPLIER_BATCH_ROWS_MAX, APPLIER_BATCH_SIZE_MAX, APPLIER_BATCHES_IN_FLIGHT_MAX,
    APPLIER_DEAD_LINK_TIMEOUTS, APPLIER_READ_SIZE, APPLIER_READ_TICK, APPLIER_RECONNECT_DELAY,
    GREETING_SIZE, IPROTO_PACKET_SIZE_MAX,
};
use crate::error::BoxError;
use crate::net::netbox::io_reason;
use crate::proto::iproto_constants::{key, request_type};
use crate::proto::xrow::{self, Frame};
use crate::wal::vclock::Vclock;

use super::codec;
use super::{ApplierCmd, ApplierConfig, ApplierMsg, ApplierState, Rows, SubscribeRequest};

// {{{ the row reader (pure)

/// A packet that is not a row: it ends a batch, and the driver acts on it.
// The vclock makes `Ok` large, but a Control is rare (one per reply or heartbeat) and lives
// on the stack for a moment: boxing it would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, PartialEq)]
pub enum Control {
    /// OK with a body: an AUTH reply, the end of a JOIN or the answer to SUBSCRIBE.
    /// `vclock` is the body's VCLOCK, if it has a valid one.
    Ok {
        /// The header's SERVER_ID: the master's id in a SUBSCRIBE answer.
        server_id: u32,
        vclock: Option<Vclock>,
    },
    /// OK without a body: a 1.7+ master's heartbeat.
    Heartbeat { timestamp: f64 },
    /// An error reply, or a packet whose header does not decode: the master refused us or
    /// speaks something we cannot follow, and retrying would not change it.
    Error(BoxError),
    /// The length prefix is broken: the stream cannot be followed, reconnecting may help.
    Broken(String),
}

/// What one [`RowReader::take`] yields: rows in wire order, then at most one control packet
/// (which came after them).
#[derive(Debug, Default, PartialEq)]
pub struct Batch {
    /// Rows (header map + body map, as received), for TX.
    pub rows: Rows,
    /// The packet that ended the batch, if one did (else the input or the cap ended it).
    pub control: Option<Control>,
}

impl Batch {
    /// Whether there was nothing whole to take.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty() && self.control.is_none()
    }

    fn is_full(&self) -> bool {
        self.rows.len() >= APPLIER_BATCH_ROWS_MAX || self.rows.data.len() >= APPLIER_BATCH_SIZE_MAX
    }
}

/// The applier's input: bytes off the socket, cut into the greeting and packets.
#[derive(Debug, Default)]
pub struct RowReader {
    /// Bytes read and not taken yet: at most one read plus one partial packet.
    input: Vec<u8>,
}

impl RowReader {
    pub fn new() -> RowReader {
        RowReader::default()
    }

    /// Append bytes as if read (tests, and anything that is not a socket).
    pub fn feed(&mut self, bytes: &[u8]) {
        self.input.extend_from_slice(bytes);
    }

    /// One read from `source`, of at most [`APPLIER_READ_SIZE`] bytes; Ok(0) is EOF.
    pub fn fill(&mut self, source: &mut impl Read) -> io::Result<usize> {
        let old = self.input.len();
        self.input.resize(old + APPLIER_READ_SIZE, 0);
        let result = source.read(&mut self.input[old..]);
        self.input.truncate(old + *result.as_ref().unwrap_or(&0));
        result
    }

    /// The 128-byte greeting, once it is all here.
    pub fn take_greeting(&mut self) -> Option<Vec<u8>> {
        if self.input.len() < GREETING_SIZE {
            return None;
        }
        Some(self.input.drain(..GREETING_SIZE).collect())
    }

    /// Take the whole packets at the front: rows until a control packet, the end of the
    /// input or a full batch. A control packet is taken with the rows before it.
    pub fn take(&mut self) -> Batch {
        let mut batch = Batch::default();
        let mut consumed = 0;
        while batch.control.is_none() && !batch.is_full() {
            match xrow::next_frame(&self.input[consumed..], IPROTO_PACKET_SIZE_MAX) {
                Frame::Incomplete { .. } => break,
                Frame::Broken(reason) => batch.control = Some(Control::Broken(reason)),
                Frame::Complete { start, end } => {
                    let packet = &self.input[consumed + start..consumed + end];
                    batch.control = classify(packet, &mut batch.rows);
                    consumed += end;
                }
            }
        }
        self.input.drain(..consumed);
        batch
    }
}

/// Put a row in `rows`, or return the control packet it is.
fn classify(packet: &[u8], rows: &mut Rows) -> Option<Control> {
    let (header, body) = match xrow::decode_header(packet) {
        Ok(decoded) => decoded,
        Err(err) => return Some(Control::Error(err)),
    };
    if let Some(err) = codec::decode_error(&header, body) {
        return Some(Control::Error(err));
    }
    if header.kind != request_type::OK {
        rows.push(packet);
        return None;
    }
    if body.is_empty() {
        return Some(Control::Heartbeat {
            timestamp: header.timestamp,
        });
    }
    Some(Control::Ok {
        server_id: header.server_id,
        vclock: codec::decode_ok_vclock(body).ok().flatten(),
    })
}

// }}}

// {{{ names and packets (pure)

/// The URI as names and log lines show it: `user@host:port`, without the password.
pub fn display_uri(uri: &str) -> String {
    if uri.starts_with('/') || uri.starts_with("unix/:") {
        return uri.to_string();
    }
    match uri.split_once('@') {
        Some((userinfo, rest)) => {
            let login = userinfo
                .split_once(':')
                .map_or(userinfo, |(login, _)| login);
            format!("{login}@{rest}")
        }
        None => uri.to_string(),
    }
}

/// `AUTH {USER_NAME: user, TUPLE: ["chap-sha1", scramble]}`, as net.box sends it.
pub fn encode_auth(out: &mut Vec<u8>, sync: u64, user: &str, scramble: &[u8; 20]) {
    let start = xrow::begin_packet(out, request_type::AUTH, sync, None);
    rmp::encode::write_map_len(out, 2).expect("Vec write");
    rmp::encode::write_uint(out, u64::from(key::USER_NAME)).expect("Vec write");
    rmp::encode::write_str(out, user).expect("Vec write");
    rmp::encode::write_uint(out, u64::from(key::TUPLE)).expect("Vec write");
    rmp::encode::write_array_len(out, 2).expect("Vec write");
    rmp::encode::write_str(out, "chap-sha1").expect("Vec write");
    rmp::encode::write_bin(out, scramble).expect("Vec write");
    xrow::end_packet(out, start);
}

// }}}

// {{{ the socket

/// The upstream socket, TCP or unix.
enum Stream {
    /// A `host:port` source.
    Tcp(TcpStream),
    /// A `/path` or `unix/:path` source.
    Unix(UnixStream),
}

impl Stream {
    /// Blocking reads that give up after a tick (so commands are looked at), and writes that
    /// give up when the master takes nothing for `write_timeout`.
    fn set_timeouts(&self, write_timeout: Duration) -> io::Result<()> {
        let write_timeout = Some(write_timeout.max(APPLIER_READ_TICK));
        match self {
            Stream::Tcp(stream) => {
                stream.set_read_timeout(Some(APPLIER_READ_TICK))?;
                stream.set_write_timeout(write_timeout)
            }
            Stream::Unix(stream) => {
                stream.set_read_timeout(Some(APPLIER_READ_TICK))?;
                stream.set_write_timeout(write_timeout)
            }
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(stream) => stream.read(buf),
            Stream::Unix(stream) => stream.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(stream) => stream.write(buf),
            Stream::Unix(stream) => stream.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Tcp(stream) => stream.flush(),
            Stream::Unix(stream) => stream.flush(),
        }
    }
}

/// One connection to the master.
struct Conn {
    stream: Stream,
    /// What was read and not yet handed on.
    reader: RowReader,
    /// The master's address, for messages.
    peer: String,
    /// A heartbeat came on this connection: the master is 1.7+, silence now means death.
    heartbeat_seen: bool,
    /// When the last bytes arrived.
    last_input: Instant,
}

// }}}

// {{{ the thread

/// Why a session (one connection) ended.
#[derive(Debug)]
enum End {
    /// Stop was asked, or TX is gone: end the thread quietly.
    Asked,
    /// The master refused us, or TX failed a row: state Stopped, no retry.
    Client(String),
    /// The link failed: state Disconnected, then reconnect. `reading`: it failed while
    /// reading rows (logged as "can't read row", as Tarantool does).
    Network { message: String, reading: bool },
    /// The master does not know our user or its rights (yet): a new replica retries, as
    /// the master of a new mesh may be creating its users right now; a replica with data
    /// stops, as on any client error.
    NotYet(String),
}

fn network(message: String) -> End {
    End::Network {
        message,
        reading: false,
    }
}

/// The applier thread's state.
struct Applier<F> {
    /// As TX gave it; `config.uri` holds the password, so it is never printed.
    config: ApplierConfig,
    /// The URI without the password.
    name: String,
    /// Login and password of the URI, for AUTH only.
    credentials: Option<(String, String)>,
    /// Hands a message to TX; false when TX is gone.
    to_tx: F,
    /// TX's commands: checked between reads, waited on for Subscribe and the retry delay.
    commands: Receiver<ApplierCmd>,
    /// The last state reported to TX (acks are written only in Follow).
    state: ApplierState,
    /// The JOIN completed (Joined was sent): reconnects only subscribe.
    joined: bool,
    /// Batches handed to TX and not yet reported applied.
    in_flight: usize,
    /// The sync of our last request.
    sync: u64,
    /// The last network error logged: the same error again is not logged again.
    last_error: Option<String>,
    /// "will retry" was logged since the last Follow.
    retry_logged: bool,
}

/// Start the applier thread for `config.uri`. `to_tx` hands a message to TX and returns
/// false when TX is gone (the thread then ends); `commands` is TX's side. The thread always
/// ends with [`ApplierMsg::Exited`].
pub fn spawn(
    config: ApplierConfig,
    to_tx: impl Fn(ApplierMsg) -> bool + Send + 'static,
    commands: Receiver<ApplierCmd>,
) -> io::Result<std::thread::JoinHandle<()>> {
    let name = display_uri(&config.uri);
    let thread_name = format!("applier/{name}");
    let applier = Applier {
        config,
        name,
        credentials: None,
        to_tx,
        commands,
        state: ApplierState::Off,
        joined: false,
        in_flight: 0,
        sync: 0,
        last_error: None,
        retry_logged: false,
    };
    std::thread::Builder::new()
        .name(thread_name.clone())
        .spawn(move || {
            crate::log::set_cord(&thread_name);
            applier_f(applier);
        })
}

/// The thread body: sessions until Stop or a client error.
fn applier_f<F: Fn(ApplierMsg) -> bool>(mut applier: Applier<F>) {
    let id = applier.config.id;
    let uri = match crate::cfg::parse_uri(&applier.config.uri) {
        Ok(uri) => uri,
        Err(err) => {
            let message = format!("invalid replication source {}: {err}", applier.name);
            applier.stop_with(message);
            (applier.to_tx)(ApplierMsg::Exited { applier: id });
            return;
        }
    };
    if let Some(login) = uri.login.clone() {
        applier.credentials = Some((login, uri.password.clone().unwrap_or_default()));
    }
    loop {
        let end = match applier.session(&uri) {
            Err(end) => end,
            Ok(never) => match never {},
        };
        let end = match end {
            End::NotYet(message) if applier.config.join_as.is_some() && !applier.joined => {
                network(message)
            }
            End::NotYet(message) => End::Client(message),
            other => other,
        };
        match end {
            End::Asked => break,
            End::NotYet(message) | End::Client(message) => {
                applier.stop_with(message);
                break;
            }
            End::Network { message, reading } => {
                if applier.disconnected(message, reading).is_err() {
                    break;
                }
                if applier.wait_reconnect().is_err() {
                    break;
                }
            }
        }
    }
    (applier.to_tx)(ApplierMsg::Exited { applier: id });
}

impl<F: Fn(ApplierMsg) -> bool> Applier<F> {
    fn send(&self, msg: ApplierMsg) -> Result<(), End> {
        if (self.to_tx)(msg) {
            Ok(())
        } else {
            Err(End::Asked)
        }
    }

    fn set_state(&mut self, state: ApplierState, message: Option<String>) -> Result<(), End> {
        self.state = state;
        self.send(ApplierMsg::State {
            applier: self.config.id,
            state,
            message,
        })
    }

    fn next_sync(&mut self) -> u64 {
        self.sync += 1;
        self.sync
    }

    /// A client error: logged at error level, state Stopped.
    fn stop_with(&mut self, message: String) {
        log::error!("{message}");
        let _ = self.set_state(ApplierState::Stopped, Some(message));
    }

    /// A network error: logged once per distinct error, "will retry" once per outage.
    fn disconnected(&mut self, message: String, reading: bool) -> Result<(), End> {
        if self.last_error.as_deref() != Some(message.as_str()) {
            if reading {
                log::info!("can't read row");
            }
            crate::syserror!("{message}");
            self.last_error = Some(message.clone());
        }
        if !self.retry_logged {
            let delay = APPLIER_RECONNECT_DELAY.as_secs_f64();
            log::info!("will retry every {delay:.2} second");
            self.retry_logged = true;
        }
        self.set_state(ApplierState::Disconnected, Some(message))
    }

    /// Sleep [`APPLIER_RECONNECT_DELAY`], awake to Stop and Fail.
    fn wait_reconnect(&mut self) -> Result<(), End> {
        let deadline = Instant::now() + APPLIER_RECONNECT_DELAY;
        loop {
            match self.commands.recv_deadline(deadline) {
                Ok(command) => {
                    if let Err(end) = self.on_command(command, None) {
                        if let End::Client(message) = end {
                            self.stop_with(message);
                        }
                        return Err(End::Asked);
                    }
                }
                Err(RecvTimeoutError::Timeout) => return Ok(()),
                Err(RecvTimeoutError::Disconnected) => return Err(End::Asked),
            }
        }
    }

    /// Act on a command from TX. Returns the subscription asked for, if that is what it is.
    fn on_command(
        &mut self,
        command: ApplierCmd,
        conn: Option<&mut Conn>,
    ) -> Result<Option<SubscribeRequest>, End> {
        match command {
            ApplierCmd::Stop => Err(End::Asked),
            ApplierCmd::Applied => {
                self.in_flight = self.in_flight.saturating_sub(1);
                Ok(None)
            }
            ApplierCmd::Fail(err) => Err(End::Client(err.message)),
            ApplierCmd::Ack(vclock) => {
                if let (Some(conn), ApplierState::Follow) = (conn, self.state) {
                    let mut out = Vec::new();
                    codec::encode_ok_vclock(&mut out, 0, 0, &vclock);
                    write_packet(conn, &out)?;
                }
                Ok(None)
            }
            ApplierCmd::Subscribe {
                cluster_uuid,
                instance_uuid,
                vclock,
            } => Ok(Some(SubscribeRequest {
                cluster_uuid,
                instance_uuid,
                vclock,
                version: Some(codec::APPLIER_VERSION),
            })),
        }
    }

    /// Every command queued now (a Subscribe nobody waits for is dropped).
    fn poll_commands(&mut self, mut conn: Option<&mut Conn>) -> Result<(), End> {
        loop {
            match self.commands.try_recv() {
                Ok(command) => {
                    self.on_command(command, conn.as_deref_mut())?;
                }
                Err(TryRecvError::Empty) => return Ok(()),
                Err(TryRecvError::Disconnected) => return Err(End::Asked),
            }
        }
    }

    /// One connection, from connect to its failure.
    fn session(&mut self, uri: &Uri) -> Result<Infallible, End> {
        self.set_state(ApplierState::Connect, None)?;
        let mut conn = self.connect(&uri.address)?;
        let salt = self.greet(&mut conn)?;
        if let Some((login, password)) = self.credentials.clone() {
            self.set_state(ApplierState::Auth, None)?;
            self.auth(&mut conn, &login, &password, &salt)?;
        }
        self.set_state(ApplierState::Connected, None)?;
        if let (Some(uuid), false) = (self.config.join_as.clone(), self.joined) {
            self.set_state(ApplierState::Bootstrap, None)?;
            self.join(&mut conn, &uuid)?;
        }
        self.subscribe(&mut conn)?;
        self.set_state(ApplierState::Follow, None)?;
        self.last_error = None;
        self.retry_logged = false;
        self.follow(&mut conn)
    }
}

// }}}

// {{{ connect and greeting

impl<F: Fn(ApplierMsg) -> bool> Applier<F> {
    fn connect(&mut self, address: &UriAddress) -> Result<Conn, End> {
        let (stream, peer) = match address {
            UriAddress::Unix { path } => {
                let stream = UnixStream::connect(path)
                    .map_err(|err| network(format!("connect to {path}: {}", io_reason(&err))))?;
                (Stream::Unix(stream), path.clone())
            }
            UriAddress::Tcp { host, service } => {
                let (stream, addr) = self.connect_tcp(host.as_deref(), service)?;
                (Stream::Tcp(stream), addr.to_string())
            }
        };
        let write_timeout = self.config.connect_timeout;
        stream
            .set_timeouts(write_timeout)
            .map_err(|err| network(format!("setsockopt on {peer}: {}", io_reason(&err))))?;
        Ok(Conn {
            stream,
            reader: RowReader::new(),
            peer,
            heartbeat_seen: false,
            last_input: Instant::now(),
        })
    }

    /// Try each address of `host:service` in turn, each within `connect_timeout`.
    fn connect_tcp(
        &mut self,
        host: Option<&str>,
        service: &str,
    ) -> Result<(TcpStream, SocketAddr), End> {
        let host = host.unwrap_or("localhost");
        let port: u16 = service
            .parse()
            .map_err(|_| End::Client(format!("unknown service {service} of {}", self.name)))?;
        let addrs = (host, port)
            .to_socket_addrs()
            .map_err(|err| network(format!("getaddrinfo {host}: {}", io_reason(&err))))?;
        let mut last = network(format!("getaddrinfo {host}: no address"));
        for addr in addrs {
            match self.connect_addr(addr) {
                Ok(stream) => return Ok((stream, addr)),
                Err(End::Network { message, reading }) => last = End::Network { message, reading },
                Err(end) => return Err(end),
            }
        }
        Err(last)
    }

    /// A non-blocking connect polled a tick at a time, so Stop need not wait for it.
    fn connect_addr(&mut self, addr: SocketAddr) -> Result<TcpStream, End> {
        let failed = |err: io::Error| network(format!("connect to {addr}: {}", io_reason(&err)));
        let deadline = Instant::now() + self.config.connect_timeout;
        let mut stream = mio::net::TcpStream::connect(addr).map_err(failed)?;
        let mut poll = mio::Poll::new().map_err(failed)?;
        poll.registry()
            .register(&mut stream, mio::Token(0), mio::Interest::WRITABLE)
            .map_err(failed)?;
        let mut events = mio::Events::with_capacity(4);
        loop {
            self.poll_commands(None)?;
            let now = Instant::now();
            if now >= deadline {
                return Err(failed(io::ErrorKind::TimedOut.into()));
            }
            match poll.poll(&mut events, Some((deadline - now).min(APPLIER_READ_TICK))) {
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(failed(err)),
                Ok(()) if events.is_empty() => continue,
                Ok(()) => {}
            }
            if let Some(err) = stream.take_error().map_err(failed)? {
                return Err(failed(err));
            }
            match stream.peer_addr() {
                Ok(_) => break,
                Err(err) if err.kind() == io::ErrorKind::NotConnected => continue,
                Err(err) => return Err(failed(err)),
            }
        }
        let _ = poll.registry().deregister(&mut stream);
        let stream = TcpStream::from(stream);
        stream.set_nonblocking(false).map_err(failed)?;
        Ok(stream)
    }

    /// Read the greeting within `connect_timeout`; tell TX who the master is. Returns the salt.
    fn greet(&mut self, conn: &mut Conn) -> Result<Vec<u8>, End> {
        let deadline = Instant::now() + self.config.connect_timeout;
        let bytes = loop {
            if let Some(bytes) = conn.reader.take_greeting() {
                break bytes;
            }
            if Instant::now() >= deadline {
                return Err(network(format!(
                    "timed out reading the greeting of {}",
                    conn.peer
                )));
            }
            self.read_some(conn)?;
        };
        let greeting = xrow::parse_greeting(&bytes)
            .map_err(|reason| End::Client(format!("{reason} from {}", conn.peer)))?;
        if greeting.protocol != "Binary" {
            return Err(End::Client(format!(
                "Unsupported protocol: {} at {}",
                greeting.protocol, conn.peer
            )));
        }
        let master_uuid = greeting.uuid.clone().unwrap_or_default();
        let version = version_text(greeting.version_id);
        log::info!(
            "remote master {master_uuid} at {} running Tarantool {version}",
            conn.peer
        );
        self.send(ApplierMsg::Greeted {
            applier: self.config.id,
            master_uuid,
            version: version.clone(),
            peer: conn.peer.clone(),
        })?;
        if greeting.version_id >= MASTER_VERSION_LATER {
            // Its JOIN starts with a vclock 1.6 does not send, and its system spaces and
            // rows are of a later format: stop here, saying so, not at a puzzling row.
            return Err(End::Client(format!(
                "can't replicate from Tarantool {version} at {}: the master must be \
                 Tarantool 1.6 or Tarantula",
                conn.peer
            )));
        }
        Ok(greeting.salt)
    }
}

/// The first version (1.7.0) whose replication this applier does not speak.
const MASTER_VERSION_LATER: u32 = 1 << 16 | 7 << 8;

/// `major.minor.patch` of a packed version id.
fn version_text(version_id: u32) -> String {
    let (major, minor, patch) = (
        version_id >> 16,
        (version_id >> 8) & 0xff,
        version_id & 0xff,
    );
    format!("{major}.{minor}.{patch}")
}

fn write_packet(conn: &mut Conn, packet: &[u8]) -> Result<(), End> {
    conn.stream
        .write_all(packet)
        .map_err(|err| network(format!("write to {}: {}", conn.peer, io_reason(&err))))
}

// }}}

// {{{ reading packets

/// What the rows before a control packet are, to the reading step.
#[derive(Clone, Copy, PartialEq, Eq)]
enum RowsAre {
    /// A JOIN's read view.
    Join,
    /// The subscription's stream.
    Subscription,
    /// Not expected here (waiting for a reply): a protocol error.
    Unexpected,
}

impl<F: Fn(ApplierMsg) -> bool> Applier<F> {
    /// One read of the socket, of at most one tick, after TX's pending commands. Returns
    /// whether bytes came.
    fn read_some(&mut self, conn: &mut Conn) -> Result<bool, End> {
        self.poll_commands(Some(conn))?;
        match conn.reader.fill(&mut conn.stream) {
            Ok(0) => Err(End::Network {
                message: format!(
                    "unexpected EOF when reading from socket, peer {}",
                    conn.peer
                ),
                reading: true,
            }),
            Ok(_) => {
                conn.last_input = Instant::now();
                Ok(true)
            }
            Err(err) if is_tick(&err) => Ok(false),
            Err(err) => Err(End::Network {
                message: format!("read from {}: {}", conn.peer, io_reason(&err)),
                reading: true,
            }),
        }
    }

    /// Read until a control packet comes, handing the rows before it to TX. Gives up at
    /// `deadline`, or when a master that sends heartbeats goes silent.
    fn next_control(
        &mut self,
        conn: &mut Conn,
        rows_are: RowsAre,
        deadline: Option<Instant>,
    ) -> Result<Control, End> {
        let dead_after = self.config.timeout * APPLIER_DEAD_LINK_TIMEOUTS;
        loop {
            let batch = conn.reader.take();
            let full = batch.is_full();
            if !batch.rows.is_empty() {
                self.wait_credit(conn)?;
                self.forward_rows(batch.rows, rows_are)?;
            }
            if let Some(control) = batch.control {
                conn.heartbeat_seen |= matches!(control, Control::Heartbeat { .. });
                return Ok(control);
            }
            // A full batch may have whole packets behind it: take them before reading.
            if full || self.read_some(conn)? {
                continue;
            }
            if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                return Err(network(format!("timed out waiting for {}", conn.peer)));
            }
            if conn.heartbeat_seen && conn.last_input.elapsed() > dead_after {
                return Err(End::Network {
                    message: format!("timed out: no heartbeat from {}", conn.peer),
                    reading: true,
                });
            }
        }
    }

    /// Wait while TX has too many of our batches (the socket is not read meanwhile).
    fn wait_credit(&mut self, conn: &mut Conn) -> Result<(), End> {
        while self.in_flight >= APPLIER_BATCHES_IN_FLIGHT_MAX {
            match self.commands.recv_timeout(APPLIER_READ_TICK) {
                Ok(command) => {
                    self.on_command(command, Some(conn))?;
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Err(End::Asked),
            }
        }
        Ok(())
    }

    fn forward_rows(&mut self, rows: Rows, rows_are: RowsAre) -> Result<(), End> {
        if rows_are != RowsAre::Unexpected {
            self.in_flight += 1;
        }
        let applier = self.config.id;
        match rows_are {
            RowsAre::Join => self.send(ApplierMsg::JoinRows { applier, rows }),
            RowsAre::Subscription => self.send(ApplierMsg::Rows {
                applier,
                rows,
                received: wall_clock(),
            }),
            RowsAre::Unexpected => Err(End::Client("unexpected row from the master".into())),
        }
    }
}

/// Seconds since the epoch.
fn wall_clock() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A read timeout (the tick elapsed) or an interrupted read: neither is a failure.
fn is_tick(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// A control packet where only replies are expected: an error ends the session.
fn reply_error(control: Control) -> End {
    match control {
        // A master still joining its own master, or one that has not yet received the row
        // registering us (a mesh whose servers join at once): ask again later, as after a
        // network error (2.x's "too early subscribe").
        Control::Error(err)
            if err.code == crate::error::ErrCode::LOADING
                || err.code == crate::error::ErrCode::UNKNOWN_SERVER =>
        {
            End::Network {
                message: err.message,
                reading: false,
            }
        }
        Control::Error(err)
            if err.code == crate::error::ErrCode::NO_SUCH_USER
                || err.code == crate::error::ErrCode::ACCESS_DENIED =>
        {
            End::NotYet(err.message)
        }
        Control::Error(err) => End::Client(err.message),
        Control::Broken(reason) => End::Network {
            message: reason,
            reading: true,
        },
        other => End::Client(format!("unexpected reply from the master: {other:?}")),
    }
}

// }}}

// {{{ auth, join, subscribe, follow

impl<F: Fn(ApplierMsg) -> bool> Applier<F> {
    fn auth(
        &mut self,
        conn: &mut Conn,
        login: &str,
        password: &str,
        salt: &[u8],
    ) -> Result<(), End> {
        let scramble = crate::r#box::user::scramble(password, salt);
        let mut out = Vec::new();
        let sync = self.next_sync();
        encode_auth(&mut out, sync, login, &scramble);
        write_packet(conn, &out)?;
        let deadline = Instant::now() + self.config.connect_timeout;
        match self.next_control(conn, RowsAre::Unexpected, Some(deadline))? {
            Control::Ok { .. } | Control::Heartbeat { .. } => {
                log::info!("authenticated");
                Ok(())
            }
            other => Err(reply_error(other)),
        }
    }

    /// JOIN: the master's read view to TX, then its vclock.
    fn join(&mut self, conn: &mut Conn, instance_uuid: &str) -> Result<(), End> {
        let mut out = Vec::new();
        let sync = self.next_sync();
        codec::encode_join(&mut out, sync, instance_uuid);
        write_packet(conn, &out)?;
        let vclock = loop {
            match self.next_control(conn, RowsAre::Join, None)? {
                Control::Ok {
                    vclock: Some(vclock),
                    ..
                } => break vclock,
                Control::Heartbeat { .. } => continue,
                Control::Ok { vclock: None, .. } => {
                    return Err(End::Client("JOIN reply without a vclock".into()));
                }
                other => return Err(reply_error(other)),
            }
        };
        log::info!("initial data received");
        self.joined = true;
        self.send(ApplierMsg::Joined {
            applier: self.config.id,
            vclock,
        })
    }

    /// Ask TX for the vclock, send SUBSCRIBE, read the master's OK.
    fn subscribe(&mut self, conn: &mut Conn) -> Result<(), End> {
        self.send(ApplierMsg::WantSubscribe {
            applier: self.config.id,
        })?;
        let request = self.wait_subscribe(conn)?;
        let mut out = Vec::new();
        let sync = self.next_sync();
        codec::encode_subscribe(&mut out, sync, &request);
        write_packet(conn, &out)?;
        let (master_id, vclock) = loop {
            match self.next_control(conn, RowsAre::Unexpected, None)? {
                Control::Ok {
                    server_id,
                    vclock: Some(vclock),
                } => break (server_id, vclock),
                Control::Heartbeat { .. } => continue,
                other => return Err(reply_error(other)),
            }
        };
        log::info!("subscribed");
        let (remote, local) = (vclock.to_text(), request.vclock.to_text());
        log::info!("remote vclock {remote} local vclock {local}");
        self.send(ApplierMsg::Subscribed {
            applier: self.config.id,
            master_id,
            vclock,
        })
    }

    /// Wait for TX's [`ApplierCmd::Subscribe`] (the socket is idle meanwhile).
    fn wait_subscribe(&mut self, conn: &mut Conn) -> Result<SubscribeRequest, End> {
        loop {
            let command = self.commands.recv().map_err(|_| End::Asked)?;
            if let Some(request) = self.on_command(command, Some(conn))? {
                return Ok(request);
            }
        }
    }

    /// Rows and heartbeats to TX until the link fails or TX stops us.
    fn follow(&mut self, conn: &mut Conn) -> Result<Infallible, End> {
        loop {
            match self.next_control(conn, RowsAre::Subscription, None)? {
                Control::Heartbeat { timestamp } => self.send(ApplierMsg::Heartbeat {
                    applier: self.config.id,
                    timestamp,
                })?,
                // Nothing asked for it: a newer master's extra reply, harmless.
                Control::Ok { .. } => {}
                other => return Err(reply_error(other)),
            }
        }
    }
}

// }}}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrCode;
    use crate::proto::xrow::Header;
    use crossbeam::channel::{self, Sender};
    use std::net::TcpListener;

    const MASTER_UUID: &str = "e654a428-c96c-4e57-b3eb-4c954186acdc";
    const REPLICA_UUID: &str = "9fe120f3-7e84-47ea-ac53-0b21fd1187c0";
    const CLUSTER_UUID: &str = "292c3e94-f425-4634-afe5-8a5cd2c76f62";
    const PASSWORD: &str = "pw-never-shown";
    /// The bound on every wait of these tests: far above what a loaded machine needs.
    const WAIT: Duration = Duration::from_secs(10);

    fn vclock(pairs: &[(u32, i64)]) -> Vclock {
        let mut vclock = Vclock::new();
        for &(id, lsn) in pairs {
            vclock.set(id, lsn);
        }
        vclock
    }

    /// A row as a master sends it: the packet, and the row bytes the applier must pass on.
    fn row_packet(server_id: u32, lsn: u64, sync: u64) -> (Vec<u8>, Vec<u8>) {
        let mut row = Vec::new();
        crate::wal::xlog::write_row_header(&mut row, request_type::INSERT, server_id, lsn, 5.5);
        row.extend_from_slice(&[0x82, 0x10, 0xcd, 0x02, 0x00, 0x21, 0x91]);
        row.push((lsn % 100) as u8);
        let mut packet = Vec::new();
        codec::encode_row(&mut packet, &row, sync).unwrap();
        let bytes = packet[xrow::LEN_PREFIX_SIZE..].to_vec();
        (packet, bytes)
    }

    fn error_packet(sync: u64, code: ErrCode, message: &str) -> Vec<u8> {
        let mut out = Vec::new();
        xrow::write_error_reply(&mut out, sync, 1, &BoxError::with_message(code, message));
        out
    }

    // {{{ pure parts

    #[test]
    fn reader_cuts_rows_and_keeps_their_bytes() {
        let mut reader = RowReader::new();
        let mut wire = Vec::new();
        let mut expected = Vec::new();
        for lsn in 1..=3 {
            let (packet, row) = row_packet(1, lsn, 0);
            wire.extend_from_slice(&packet);
            expected.push(row);
        }
        codec::encode_heartbeat(&mut wire, 1, 77.0);
        // Byte by byte: a partial packet is never taken.
        for byte in &wire[..wire.len() - 1] {
            reader.feed(std::slice::from_ref(byte));
        }
        let batch = reader.take();
        assert_eq!(batch.rows.iter().collect::<Vec<_>>(), expected);
        assert_eq!(batch.control, None);
        assert!(reader.take().is_empty());
        reader.feed(&wire[wire.len() - 1..]);
        let batch = reader.take();
        assert!(batch.rows.is_empty());
        assert_eq!(batch.control, Some(Control::Heartbeat { timestamp: 77.0 }));
        assert!(reader.take().is_empty());
    }

    #[test]
    fn reader_ends_a_batch_at_each_control_packet() {
        let mut reader = RowReader::new();
        let (row1, bytes1) = row_packet(0, 1, 9);
        reader.feed(&row1);
        let mut ok = Vec::new();
        codec::encode_ok_vclock(&mut ok, 9, 1, &vclock(&[(1, 6)]));
        reader.feed(&ok);
        let (row2, bytes2) = row_packet(1, 7, 0);
        reader.feed(&row2);
        reader.feed(&error_packet(3, ErrCode(63), "cluster id mismatch"));
        reader.feed(&[0xc1, 0, 0]);

        let batch = reader.take();
        assert_eq!(batch.rows.iter().collect::<Vec<_>>(), vec![&bytes1[..]]);
        let expected = Control::Ok {
            server_id: 1,
            vclock: Some(vclock(&[(1, 6)])),
        };
        assert_eq!(batch.control, Some(expected));
        let batch = reader.take();
        assert_eq!(batch.rows.iter().collect::<Vec<_>>(), vec![&bytes2[..]]);
        match batch.control {
            Some(Control::Error(err)) => {
                assert_eq!(
                    (err.code, err.message.as_str()),
                    (ErrCode(63), "cluster id mismatch")
                );
            }
            other => panic!("not an error: {other:?}"),
        }
        let batch = reader.take();
        assert!(matches!(batch.control, Some(Control::Broken(_))));
        assert!(batch.rows.is_empty());
    }

    #[test]
    fn reader_caps_a_batch_and_flags_bad_headers() {
        let mut reader = RowReader::new();
        for lsn in 1..=(APPLIER_BATCH_ROWS_MAX as u64 + 5) {
            reader.feed(&row_packet(1, lsn, 0).0);
        }
        assert_eq!(reader.take().rows.len(), APPLIER_BATCH_ROWS_MAX);
        assert_eq!(reader.take().rows.len(), 5);
        assert!(reader.take().is_empty());
        // A header that is not a map: a protocol error, not a panic.
        reader.feed(&[0x02, 0x91, 0x00]);
        assert!(matches!(reader.take().control, Some(Control::Error(_))));
        // An OK with a body but no vclock (an AUTH reply).
        let mut ok = Vec::new();
        xrow::write_ok_reply(&mut ok, 1, 1);
        reader.feed(&ok);
        let expected = Control::Ok {
            server_id: 0,
            vclock: None,
        };
        assert_eq!(reader.take().control, Some(expected));
    }

    #[test]
    fn names_hide_the_password() {
        assert_eq!(
            display_uri("replicator:password@localhost:3301"),
            "replicator@localhost:3301"
        );
        assert_eq!(
            display_uri("replicator@localhost:3301"),
            "replicator@localhost:3301"
        );
        assert_eq!(display_uri("localhost:3301"), "localhost:3301");
        assert_eq!(display_uri("3301"), "3301");
        assert_eq!(display_uri("/tmp/a@b.sock"), "/tmp/a@b.sock");
        assert_eq!(version_text(codec::APPLIER_VERSION), "1.6.9");
    }

    #[test]
    fn auth_packet_carries_the_scramble() {
        let salt = [7u8; 32];
        let scramble = crate::r#box::user::scramble("secret", &salt);
        let mut out = Vec::new();
        encode_auth(&mut out, 4, "replicator", &scramble);
        let (header, body) = unframe(&out);
        assert_eq!((header.kind, header.sync), (request_type::AUTH, 4));
        let (user, sent) = auth_fields(body);
        assert_eq!(user, "replicator");
        assert_eq!(sent, scramble.to_vec());
    }

    // }}}

    // {{{ a fake master

    fn unframe(packet: &[u8]) -> (Header, &[u8]) {
        let Frame::Complete { start, end } = xrow::next_frame(packet, usize::MAX) else {
            panic!("not one packet");
        };
        assert_eq!(end, packet.len());
        xrow::decode_header(&packet[start..end]).unwrap()
    }

    /// The user name and the scramble of an AUTH body.
    fn auth_fields(body: &[u8]) -> (String, Vec<u8>) {
        let decoded = xrow::decode_body(body).unwrap();
        let user = String::from_utf8(decoded.user_name.unwrap().to_vec()).unwrap();
        let mut tuple = decoded.tuple.unwrap();
        assert_eq!(rmp::decode::read_array_len(&mut tuple).unwrap(), 2);
        let mut mechanism = [0u8; 16];
        assert_eq!(
            rmp::decode::read_str(&mut tuple, &mut mechanism).unwrap(),
            "chap-sha1"
        );
        let len = rmp::decode::read_bin_len(&mut tuple).unwrap() as usize;
        (user, tuple[..len].to_vec())
    }

    /// One accepted replica connection, seen from the master.
    struct Upstream {
        stream: TcpStream,
        salt: [u8; 32],
    }

    impl Upstream {
        fn accept(listener: &TcpListener, salt_byte: u8) -> Upstream {
            listener.set_nonblocking(true).unwrap();
            let deadline = Instant::now() + WAIT;
            let stream = loop {
                match listener.accept() {
                    Ok((stream, _)) => break stream,
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                        assert!(Instant::now() < deadline, "no connection");
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(err) => panic!("accept: {err}"),
                }
            };
            stream.set_nonblocking(false).unwrap();
            stream.set_read_timeout(Some(WAIT)).unwrap();
            let salt = [salt_byte; 32];
            let mut upstream = Upstream { stream, salt };
            upstream.write(&xrow::greeting(MASTER_UUID, &salt));
            upstream
        }

        fn write(&mut self, bytes: &[u8]) {
            self.stream.write_all(bytes).unwrap();
        }

        fn read_packet(&mut self) -> (Header, Vec<u8>) {
            let mut prefix = [0u8; 5];
            self.stream.read_exact(&mut prefix).unwrap();
            assert_eq!(prefix[0], 0xce);
            let len = u32::from_be_bytes(prefix[1..].try_into().unwrap()) as usize;
            let mut packet = vec![0u8; len];
            self.stream.read_exact(&mut packet).unwrap();
            let (header, body) = xrow::decode_header(&packet).unwrap();
            (header, body.to_vec())
        }

        /// Read AUTH, check the scramble against PASSWORD, answer OK.
        fn expect_auth(&mut self) {
            let (header, body) = self.read_packet();
            assert_eq!(header.kind, request_type::AUTH);
            let (user, scramble) = auth_fields(&body);
            assert_eq!(user, "replicator");
            let hash2 = crate::r#box::user::password_hash2(PASSWORD);
            assert!(scramble_ok(&hash2, &self.salt[..20], &scramble));
            let mut ok = Vec::new();
            xrow::write_ok_reply(&mut ok, header.sync, 1);
            self.write(&ok);
        }

        /// Read JOIN, send `count` rows and OK {vclock}; returns the rows TX must get.
        fn serve_join(&mut self, count: u64, vclock: &Vclock) -> Vec<Vec<u8>> {
            let (header, body) = self.read_packet();
            assert_eq!(header.kind, request_type::JOIN);
            assert_eq!(codec::decode_join(&body).unwrap(), REPLICA_UUID);
            let mut rows = Vec::new();
            for lsn in 1..=count {
                let (packet, row) = row_packet(0, lsn, header.sync);
                self.write(&packet);
                rows.push(row);
            }
            let mut ok = Vec::new();
            codec::encode_ok_vclock(&mut ok, header.sync, 1, vclock);
            self.write(&ok);
            rows
        }

        /// Read SUBSCRIBE, check it, answer OK {vclock} from server id 1.
        fn expect_subscribe(&mut self, local: &Vclock, remote: &Vclock) {
            let (header, body) = self.read_packet();
            assert_eq!(header.kind, request_type::SUBSCRIBE);
            let request = codec::decode_subscribe(&body).unwrap();
            let expected = SubscribeRequest {
                cluster_uuid: CLUSTER_UUID.to_string(),
                instance_uuid: REPLICA_UUID.to_string(),
                vclock: local.clone(),
                version: Some(codec::APPLIER_VERSION),
            };
            assert_eq!(request, expected);
            let mut ok = Vec::new();
            codec::encode_ok_vclock(&mut ok, header.sync, 1, remote);
            self.write(&ok);
        }
    }

    /// The server side of chap-sha1 (PROTOCOL.md §3), written out to check the client's.
    fn scramble_ok(hash2: &[u8; 20], salt: &[u8], scramble: &[u8]) -> bool {
        use sha1::{Digest, Sha1};
        let mut hasher = Sha1::new();
        hasher.update(salt);
        hasher.update(hash2);
        let mask: [u8; 20] = hasher.finalize().into();
        let hash1: Vec<u8> = mask.iter().zip(scramble).map(|(m, s)| m ^ s).collect();
        scramble.len() == 20 && Sha1::digest(&hash1)[..] == hash2[..]
    }

    // }}}

    // {{{ the TX side

    /// TX as the applier sees it: the message channel and the command sender.
    struct Tx {
        messages: Receiver<ApplierMsg>,
        commands: Sender<ApplierCmd>,
        handle: Option<std::thread::JoinHandle<()>>,
    }

    fn start(uri: String, join_as: Option<&str>, timeout: Duration) -> Tx {
        let (to_tx, messages) = channel::bounded(64);
        let (commands, from_tx) = channel::bounded(16);
        let config = ApplierConfig {
            id: 7,
            uri,
            join_as: join_as.map(str::to_string),
            timeout,
            connect_timeout: Duration::from_secs(5),
        };
        let handle = spawn(config, move |msg| to_tx.send(msg).is_ok(), from_tx).unwrap();
        Tx {
            messages,
            commands,
            handle: Some(handle),
        }
    }

    impl Tx {
        /// The next message; State messages must never show the password.
        fn next(&self) -> ApplierMsg {
            let msg = self.messages.recv_timeout(WAIT).expect("a message in time");
            if let ApplierMsg::State {
                message: Some(message),
                ..
            } = &msg
            {
                assert!(!message.contains(PASSWORD), "{message}");
            }
            msg
        }

        fn expect_state(&self, expected: ApplierState) -> Option<String> {
            match self.next() {
                ApplierMsg::State {
                    applier: 7,
                    state,
                    message,
                } if state == expected => message,
                other => panic!("expected state {expected:?}, got {other:?}"),
            }
        }

        fn expect_greeted(&self) {
            match self.next() {
                ApplierMsg::Greeted {
                    master_uuid,
                    version,
                    peer,
                    ..
                } => {
                    assert_eq!(master_uuid, MASTER_UUID);
                    assert_eq!(version, crate::constants::TARANTOOL_VERSION);
                    assert!(peer.starts_with("127.0.0.1:"), "{peer}");
                }
                other => panic!("expected Greeted, got {other:?}"),
            }
        }

        /// Connect, Greeted, Auth, Connected (the URI has a user).
        fn expect_login(&self) {
            self.expect_state(ApplierState::Connect);
            self.expect_greeted();
            self.expect_state(ApplierState::Auth);
            self.expect_state(ApplierState::Connected);
        }

        fn expect_want_subscribe(&self) {
            let msg = self.next();
            assert!(
                matches!(msg, ApplierMsg::WantSubscribe { applier: 7 }),
                "{msg:?}"
            );
        }

        fn subscribe(&self, vclock: &Vclock) {
            let command = ApplierCmd::Subscribe {
                cluster_uuid: CLUSTER_UUID.to_string(),
                instance_uuid: REPLICA_UUID.to_string(),
                vclock: vclock.clone(),
            };
            self.commands.send(command).unwrap();
        }

        fn expect_subscribed(&self, remote: &Vclock) {
            match self.next() {
                ApplierMsg::Subscribed {
                    master_id, vclock, ..
                } => assert_eq!((master_id, &vclock), (1, remote)),
                other => panic!("expected Subscribed, got {other:?}"),
            }
            self.expect_state(ApplierState::Follow);
        }

        /// Collect `count` rows of the given kind of message.
        fn expect_rows(&self, count: usize, join: bool) -> Vec<Vec<u8>> {
            let mut rows = Vec::new();
            while rows.len() < count {
                match (self.next(), join) {
                    (ApplierMsg::JoinRows { rows: batch, .. }, true)
                    | (ApplierMsg::Rows { rows: batch, .. }, false) => {
                        rows.extend(batch.iter().map(<[u8]>::to_vec));
                    }
                    (other, _) => panic!("expected rows, got {other:?}"),
                }
            }
            assert_eq!(rows.len(), count);
            rows
        }

        /// The thread ends with Exited, within `within`.
        fn expect_exit(&mut self, within: Duration) {
            let started = Instant::now();
            loop {
                match self.messages.recv_timeout(WAIT) {
                    Ok(ApplierMsg::Exited { applier: 7 }) => break,
                    Ok(ApplierMsg::State { .. }) => continue,
                    other => panic!("expected Exited, got {other:?}"),
                }
            }
            assert!(started.elapsed() < within, "took {:?}", started.elapsed());
            self.handle.take().unwrap().join().unwrap();
        }
    }

    fn listen() -> (TcpListener, u16) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        (listener, port)
    }

    fn uri_with_password(port: u16) -> String {
        format!("replicator:{PASSWORD}@127.0.0.1:{port}")
    }

    // }}}

    #[test]
    fn join_subscribe_follow_ack_and_reconnect() {
        let (listener, port) = listen();
        let mut tx = start(
            uri_with_password(port),
            Some(REPLICA_UUID),
            Duration::from_secs(1),
        );
        let mut master = Upstream::accept(&listener, 1);
        master.expect_auth();
        tx.expect_login();
        tx.expect_state(ApplierState::Bootstrap);

        // JOIN: the read view's rows, then OK {vclock}.
        let join_vclock = vclock(&[(1, 6)]);
        let expected = master.serve_join(50, &join_vclock);
        assert_eq!(tx.expect_rows(50, true), expected);
        match tx.next() {
            ApplierMsg::Joined { vclock, .. } => assert_eq!(vclock, join_vclock),
            other => panic!("expected Joined, got {other:?}"),
        }

        // SUBSCRIBE on the same socket, from TX's vclock.
        tx.expect_want_subscribe();
        tx.subscribe(&join_vclock);
        let remote = vclock(&[(1, 8)]);
        master.expect_subscribe(&join_vclock, &remote);
        tx.expect_subscribed(&remote);

        // Follow: rows, a heartbeat, an ack back.
        let mut expected = Vec::new();
        for lsn in 7..=8 {
            let (packet, row) = row_packet(1, lsn, 0);
            master.write(&packet);
            expected.push(row);
        }
        let mut heartbeat = Vec::new();
        codec::encode_heartbeat(&mut heartbeat, 1, 1234.5);
        master.write(&heartbeat);
        assert_eq!(tx.expect_rows(2, false), expected);
        match tx.next() {
            ApplierMsg::Heartbeat { timestamp, .. } => assert_eq!(timestamp, 1234.5),
            other => panic!("expected Heartbeat, got {other:?}"),
        }
        tx.commands.send(ApplierCmd::Ack(remote.clone())).unwrap();
        let (header, body) = master.read_packet();
        assert_eq!((header.kind, header.sync, header.server_id), (0, 0, 0));
        assert_eq!(
            codec::decode_ok_vclock(&body).unwrap(),
            Some(remote.clone())
        );

        // The master goes away: Disconnected, a reconnect, and no second JOIN.
        drop(master);
        let message = tx.expect_state(ApplierState::Disconnected).unwrap();
        assert!(message.contains("EOF"), "{message}");
        let mut master = Upstream::accept(&listener, 2);
        master.expect_auth();
        tx.expect_login();
        tx.expect_want_subscribe();
        tx.subscribe(&remote);
        master.expect_subscribe(&remote, &remote);
        tx.expect_subscribed(&remote);

        tx.commands.send(ApplierCmd::Stop).unwrap();
        tx.expect_exit(WAIT);
    }

    #[test]
    fn at_most_a_few_batches_are_in_transit_to_tx() {
        let (listener, port) = listen();
        let tx = start(format!("127.0.0.1:{port}"), None, Duration::from_secs(1));
        let mut master = Upstream::accept(&listener, 4);
        tx.expect_state(ApplierState::Connect);
        tx.expect_greeted();
        tx.expect_state(ApplierState::Connected);
        tx.expect_want_subscribe();
        let remote = vclock(&[(1, 1)]);
        tx.subscribe(&remote);
        master.expect_subscribe(&remote, &remote);
        tx.expect_subscribed(&remote);
        // Many batches' worth of rows at once: TX has not applied any yet.
        let batches = APPLIER_BATCHES_IN_FLIGHT_MAX + 4;
        let mut stream = Vec::new();
        for lsn in 0..(batches * APPLIER_BATCH_ROWS_MAX) as u64 {
            stream.extend_from_slice(&row_packet(1, 2 + lsn, 0).0);
        }
        master.write(&stream);
        let mut received = 0;
        while received < APPLIER_BATCHES_IN_FLIGHT_MAX {
            // (A batch is what one read yields, up to the cap: at least `batches` of them.)
            if let ApplierMsg::Rows { .. } = tx.next() {
                received += 1;
            }
        }
        assert!(
            tx.messages
                .recv_timeout(Duration::from_millis(300))
                .is_err(),
            "a batch over the limit was handed over"
        );
        // Each batch TX reports applied lets one more through.
        for _ in 0..4 {
            tx.commands.send(ApplierCmd::Applied).unwrap();
            assert!(matches!(tx.next(), ApplierMsg::Rows { .. }));
        }
        tx.commands.send(ApplierCmd::Stop).unwrap();
    }

    #[test]
    fn an_auth_error_stops_the_applier() {
        let (listener, port) = listen();
        let mut tx = start(uri_with_password(port), None, Duration::from_secs(1));
        let mut master = Upstream::accept(&listener, 3);
        let (header, _) = master.read_packet();
        assert_eq!(header.kind, request_type::AUTH);
        let text = "Incorrect password supplied for user 'replicator'";
        master.write(&error_packet(header.sync, ErrCode::PASSWORD_MISMATCH, text));
        tx.expect_state(ApplierState::Connect);
        tx.expect_greeted();
        tx.expect_state(ApplierState::Auth);
        assert_eq!(
            tx.expect_state(ApplierState::Stopped).as_deref(),
            Some(text)
        );
        tx.expect_exit(WAIT);
    }

    #[test]
    fn a_later_tarantool_master_is_refused_with_its_version() {
        let (listener, port) = listen();
        let mut tx = start(uri_with_password(port), None, Duration::from_secs(1));
        let (mut stream, _) = listener.accept().unwrap();
        let mut greeting = xrow::greeting(MASTER_UUID, &[1; 32]);
        let version = crate::constants::TARANTOOL_VERSION;
        greeting.splice(10..10 + version.len(), "2.6.0".bytes());
        stream.write_all(&greeting).unwrap();
        tx.expect_state(ApplierState::Connect);
        assert!(matches!(tx.next(), ApplierMsg::Greeted { version, .. } if version == "2.6.0"));
        let message = tx.expect_state(ApplierState::Stopped).unwrap();
        assert!(
            message.starts_with("can't replicate from Tarantool 2.6.0 at 127.0.0.1:"),
            "{message}"
        );
        tx.expect_exit(WAIT);
    }

    #[test]
    fn a_join_error_stops_and_a_broken_join_starts_over() {
        let (listener, port) = listen();
        let mut tx = start(
            format!("127.0.0.1:{port}"),
            Some(REPLICA_UUID),
            Duration::from_secs(1),
        );
        // The first JOIN breaks after a row: it is done again from the start.
        let mut master = Upstream::accept(&listener, 4);
        let (header, _) = master.read_packet();
        assert_eq!(header.kind, request_type::JOIN);
        master.write(&row_packet(0, 1, header.sync).0);
        drop(master);
        tx.expect_state(ApplierState::Connect);
        tx.expect_greeted();
        tx.expect_state(ApplierState::Connected);
        tx.expect_state(ApplierState::Bootstrap);
        tx.expect_rows(1, true);
        tx.expect_state(ApplierState::Disconnected);

        let mut master = Upstream::accept(&listener, 5);
        let (header, _) = master.read_packet();
        assert_eq!(header.kind, request_type::JOIN);
        // (Access errors are retried while joining: a new master may be granting them.)
        let text = "Duplicate key exists in unique index 'uuid' in space '_cluster'";
        master.write(&error_packet(header.sync, ErrCode::TUPLE_FOUND, text));
        tx.expect_state(ApplierState::Connect);
        tx.expect_greeted();
        tx.expect_state(ApplierState::Connected);
        tx.expect_state(ApplierState::Bootstrap);
        assert_eq!(
            tx.expect_state(ApplierState::Stopped).as_deref(),
            Some(text)
        );
        tx.expect_exit(WAIT);
    }

    #[test]
    fn stop_is_prompt_while_waiting() {
        let prompt = Duration::from_millis(900);
        // Waiting for a greeting that never comes.
        let (listener, port) = listen();
        let mut tx = start(uri_with_password(port), None, Duration::from_secs(1));
        tx.expect_state(ApplierState::Connect);
        tx.commands.send(ApplierCmd::Stop).unwrap();
        tx.expect_exit(prompt);
        drop(listener);

        // Waiting to reconnect: nobody listens.
        let (listener, port) = listen();
        drop(listener);
        let mut tx = start(uri_with_password(port), None, Duration::from_secs(1));
        tx.expect_state(ApplierState::Connect);
        let message = tx.expect_state(ApplierState::Disconnected).unwrap();
        assert!(message.contains("refused"), "{message}");
        tx.commands.send(ApplierCmd::Stop).unwrap();
        tx.expect_exit(prompt);

        // Waiting for TX's Subscribe, then following a silent 1.6 master.
        for follow in [false, true] {
            let (listener, port) = listen();
            let mut tx = start(format!("127.0.0.1:{port}"), None, Duration::from_millis(50));
            let mut master = Upstream::accept(&listener, 6);
            tx.expect_state(ApplierState::Connect);
            tx.expect_greeted();
            tx.expect_state(ApplierState::Connected);
            tx.expect_want_subscribe();
            if follow {
                tx.subscribe(&Vclock::new());
                master.expect_subscribe(&Vclock::new(), &vclock(&[(1, 1)]));
                tx.expect_subscribed(&vclock(&[(1, 1)]));
            }
            tx.commands.send(ApplierCmd::Stop).unwrap();
            tx.expect_exit(prompt);
        }
    }

    #[test]
    fn silence_after_a_heartbeat_is_a_dead_link_and_fail_stops() {
        let (listener, port) = listen();
        let mut tx = start(format!("127.0.0.1:{port}"), None, Duration::from_millis(50));
        let mut master = Upstream::accept(&listener, 7);
        tx.expect_state(ApplierState::Connect);
        tx.expect_greeted();
        tx.expect_state(ApplierState::Connected);
        tx.expect_want_subscribe();
        tx.subscribe(&Vclock::new());
        master.expect_subscribe(&Vclock::new(), &Vclock::new());
        tx.expect_subscribed(&Vclock::new());
        let mut heartbeat = Vec::new();
        codec::encode_heartbeat(&mut heartbeat, 1, 1.0);
        master.write(&heartbeat);
        assert!(matches!(tx.next(), ApplierMsg::Heartbeat { .. }));
        // The socket stays open, but nothing comes for 4 × 50 ms.
        let message = tx.expect_state(ApplierState::Disconnected).unwrap();
        assert!(message.contains("timed out"), "{message}");

        let mut master = Upstream::accept(&listener, 8);
        tx.expect_state(ApplierState::Connect);
        tx.expect_greeted();
        tx.expect_state(ApplierState::Connected);
        tx.expect_want_subscribe();
        tx.subscribe(&Vclock::new());
        master.expect_subscribe(&Vclock::new(), &Vclock::new());
        tx.expect_subscribed(&Vclock::new());
        let conflict = BoxError::with_message(ErrCode::TUPLE_FOUND, "Duplicate key exists");
        tx.commands.send(ApplierCmd::Fail(conflict)).unwrap();
        let message = tx.expect_state(ApplierState::Stopped);
        assert_eq!(message.as_deref(), Some("Duplicate key exists"));
        tx.expect_exit(WAIT);
    }

    #[test]
    fn tx_gone_ends_the_thread() {
        let (listener, port) = listen();
        let tx = start(format!("127.0.0.1:{port}"), None, Duration::from_secs(1));
        tx.expect_state(ApplierState::Connect);
        // TX drops its inbox but not the command sender: `to_tx` returning false ends it.
        // The master greets only then: had the thread got as far as waiting for TX's
        // SUBSCRIBE command first, nothing would tell it (a real TX drops both at once).
        let Tx {
            messages,
            commands: _commands,
            handle,
        } = tx;
        let handle = handle.unwrap();
        drop(messages);
        let _master = Upstream::accept(&listener, 9);
        let deadline = Instant::now() + WAIT;
        while !handle.is_finished() {
            assert!(Instant::now() < deadline, "the thread outlived TX");
            std::thread::sleep(Duration::from_millis(5));
        }
        handle.join().unwrap();
    }
}
