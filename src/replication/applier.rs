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
//! prompt in every state. The password of the URI never leaves [`Applier::credentials`].

use std::convert::Infallible;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use crossbeam::channel::{Receiver, RecvTimeoutError, TryRecvError};

use crate::cfg::{Uri, UriAddress};
use crate::constants::{
    APPLIER_BATCH_ROWS_MAX, APPLIER_BATCH_SIZE_MAX, APPLIER_DEAD_LINK_TIMEOUTS, APPLIER_READ_SIZE,
    APPLIER_READ_TICK, APPLIER_RECONNECT_DELAY, GREETING_SIZE, IPROTO_PACKET_SIZE_MAX,
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
#[derive(Debug, PartialEq)]
pub enum Control {
    /// OK with a body: an AUTH reply, the end of a JOIN or the answer to SUBSCRIBE.
    /// `vclock` is the body's VCLOCK, if it has a valid one.
    Ok {
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
    pub rows: Rows,
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
    Tcp(TcpStream),
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
}

fn network(message: String) -> End {
    End::Network {
        message,
        reading: false,
    }
}

/// The applier thread's state.
struct Applier<F> {
    config: ApplierConfig,
    /// The URI without the password.
    name: String,
    /// Login and password of the URI, for AUTH only.
    credentials: Option<(String, String)>,
    to_tx: F,
    commands: Receiver<ApplierCmd>,
    state: ApplierState,
    /// The JOIN completed (Joined was sent): reconnects only subscribe.
    joined: bool,
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
        match end {
            End::Asked => break,
            End::Client(message) => {
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
            version,
            peer: conn.peer.clone(),
        })?;
        Ok(greeting.salt)
    }
}

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
#[derive(Clone, Copy)]
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
            if !batch.rows.is_empty() {
                self.forward_rows(batch.rows, rows_are)?;
            }
            if let Some(control) = batch.control {
                conn.heartbeat_seen |= matches!(control, Control::Heartbeat { .. });
                return Ok(control);
            }
            if self.read_some(conn)? {
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

    fn forward_rows(&self, rows: Rows, rows_are: RowsAre) -> Result<(), End> {
        let applier = self.config.id;
        match rows_are {
            RowsAre::Join => self.send(ApplierMsg::JoinRows { applier, rows }),
            RowsAre::Subscription => self.send(ApplierMsg::Rows { applier, rows }),
            RowsAre::Unexpected => Err(End::Client("unexpected row from the master".into())),
        }
    }
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
