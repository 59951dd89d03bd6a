//! Sockets of the TX loop: listeners and client connections, keyed by their mio token.
//!
//! Owned by the TX thread. `Net` registers sockets with the loop's poll (through a clone of
//! its registry, so Lua callbacks can open listeners while the loop owns the `Poll`), accepts
//! clients and routes readiness to the connection's protocol. It never runs Lua: what a
//! readiness event means for fibers comes back as a list of fibers to wake.

pub mod connection;
pub mod console;
pub mod event_loop;
pub mod iproto;
pub mod listen;
pub mod netbox;
pub mod stdin;

use std::collections::HashMap;
use std::io;

use mio::{Interest, Registry, Token};

use crate::constants::{CONNECTION_COUNT_MAX, GREETING_SIZE, NETBOX_CONNECTION_COUNT_MAX};
use crate::fiber::FiberId;
use connection::{Connection, Stream};
use console::ConsoleConn;
use iproto::{IprotoConn, Limits};
use listen::{ListenSocket, Listener};
use netbox::NetboxConn;

/// 32 fresh random bytes for a greeting salt (from the OS generator, through uuid v4).
fn random_salt() -> [u8; 32] {
    let mut salt = [0u8; 32];
    salt[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    salt[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    salt
}

/// Tokens below this are the loop's own (waker, signals).
pub const FIRST_SOURCE_TOKEN: usize = 16;

/// What a listener serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListenKind {
    /// The text admin console (`console.listen`).
    Console,
    /// The binary protocol (`box.cfg{listen = ...}`).
    Iproto,
}

/// One registered socket.
pub enum Source {
    Listener(Listener),
    Console(ConsoleConn),
    Iproto(IprotoConn),
    /// An outgoing connection of `net.box`.
    Netbox(NetboxConn),
}

impl Source {
    /// The socket and buffers of a connected source.
    fn connection(&mut self) -> Option<&mut Connection> {
        match self {
            Source::Listener(_) => None,
            Source::Console(console) => Some(&mut console.conn),
            Source::Iproto(client) => Some(&mut client.conn),
            Source::Netbox(client) => Some(client.connection()),
        }
    }
}

/// What a readiness event said about a socket.
#[derive(Clone, Copy, Debug)]
pub struct Readiness {
    pub readable: bool,
    pub writable: bool,
    /// The peer hung up or the socket failed.
    pub hangup: bool,
}

/// Where a `net.box` connection goes.
pub enum Target {
    /// A host name or address, and a port.
    Tcp(String, u16),
    /// A unix socket path.
    Unix(String),
}

/// A client accepted by a listener, for the loop to start serving.
pub struct Accepted {
    pub token: Token,
    pub kind: ListenKind,
    pub peer: String,
}

/// Every socket of the loop.
pub struct Net {
    registry: Registry,
    /// By token (sequential numbers: hashed by one multiplication, every request looks its
    /// connection up).
    sources: rustc_hash::FxHashMap<Token, Source>,
    /// Tokens are never reused, so a stale token held by a fiber never names a new socket.
    next_token: usize,
    connection_count: usize,
    netbox_count: usize,
    /// iproto connections to look at again at the end of the loop turn (replies from
    /// fibers to flush, requests left over from a turn's budget, a client unblocked).
    pending: Vec<Token>,
    /// Only one connection has work in this part of the turn (one socket event, or one
    /// pending connection): see net/iproto.rs `process`.
    pub sole_client: bool,
    /// The loop's last poll slept: the server outpaces its clients, so a sole client gets
    /// its replies in smaller parts (net/iproto.rs `process`).
    pub idle: bool,
}

impl Net {
    pub fn new(registry: Registry) -> Net {
        Net {
            registry,
            sources: HashMap::default(),
            next_token: FIRST_SOURCE_TOKEN,
            connection_count: 0,
            netbox_count: 0,
            pending: Vec::new(),
            sole_client: false,
            idle: false,
        }
    }

    fn take_token(&mut self) -> Token {
        let token = Token(self.next_token);
        self.next_token += 1;
        token
    }

    /// Whether a listener or a client is open: that keeps the process serving (an outgoing
    /// `net.box` connection alone does not; its fibers do while they wait).
    pub fn is_serving(&self) -> bool {
        self.sources.len() > self.netbox_count
    }

    /// Bind and register a listener. Returns its token and the bound address as text.
    pub fn listen(&mut self, uri: &str, kind: ListenKind) -> io::Result<(Token, String)> {
        let mut listener = Listener::bind(uri, kind)?;
        let token = self.take_token();
        self.registry
            .register(listener.socket.source(), token, Interest::READABLE)?;
        let name = listener.name.clone();
        self.sources.insert(token, Source::Listener(listener));
        Ok((token, name))
    }

    /// Close any source: deregister it and drop the socket.
    pub fn close(&mut self, token: Token) -> Option<Source> {
        let mut source = self.sources.remove(&token)?;
        match &mut source {
            Source::Listener(listener) => {
                let _ = self.registry.deregister(listener.socket.source());
            }
            Source::Console(console) => {
                let _ = self.registry.deregister(console.conn.stream.source());
                self.connection_count -= 1;
            }
            Source::Iproto(client) => {
                let _ = self.registry.deregister(client.conn.stream.source());
                self.connection_count -= 1;
            }
            Source::Netbox(client) => {
                let _ = self.registry.deregister(client.stream_mut().source());
                self.netbox_count -= 1;
            }
        }
        Some(source)
    }

    /// Start an outgoing `net.box` connection (the connect completes in the loop). A host
    /// name is resolved here, blocking: `net.box` targets are addresses or names the
    /// resolver answers from local files.
    pub fn connect(
        &mut self,
        target: &Target,
        credentials: Option<(String, String)>,
    ) -> io::Result<Token> {
        if self.netbox_count >= NETBOX_CONNECTION_COUNT_MAX {
            return Err(io::Error::other("too many net.box connections"));
        }
        let mut stream = match target {
            Target::Tcp(host, port) => {
                use std::net::ToSocketAddrs as _;
                let addr = (host.as_str(), *port)
                    .to_socket_addrs()?
                    .next()
                    .ok_or_else(|| {
                        io::Error::new(io::ErrorKind::NotFound, "no address for the host")
                    })?;
                let stream = mio::net::TcpStream::connect(addr)?;
                let _ = stream.set_nodelay(true);
                Stream::Tcp(stream)
            }
            Target::Unix(path) => Stream::Unix(mio::net::UnixStream::connect(path)?),
        };
        let token = self.take_token();
        let interest = Interest::READABLE | Interest::WRITABLE;
        self.registry.register(stream.source(), token, interest)?;
        self.netbox_count += 1;
        self.sources
            .insert(token, Source::Netbox(NetboxConn::new(stream, credentials)));
        Ok(token)
    }

    pub fn netbox_mut(&mut self, token: Token) -> Option<&mut NetboxConn> {
        match self.sources.get_mut(&token) {
            Some(Source::Netbox(client)) => Some(client),
            _ => None,
        }
    }

    pub fn iproto_mut(&mut self, token: Token) -> Option<&mut IprotoConn> {
        match self.sources.get_mut(&token) {
            Some(Source::Iproto(client)) => Some(client),
            _ => None,
        }
    }

    /// Look at iproto connection `token` again at the end of this loop turn.
    pub fn mark_pending(&mut self, token: Token) {
        if let Some(client) = self.iproto_mut(token)
            && !client.pending
        {
            client.pending = true;
            self.pending.push(token);
        }
    }

    /// Whether connections wait for another look this turn (the poll must not sleep).
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// The connections marked pending, unmarked.
    pub fn take_pending(&mut self) -> Vec<Token> {
        let tokens = std::mem::take(&mut self.pending);
        self.sole_client = tokens.len() == 1;
        for token in &tokens {
            if let Some(client) = self.iproto_mut(*token) {
                client.pending = false;
            }
        }
        tokens
    }

    pub fn console_mut(&mut self, token: Token) -> Option<&mut ConsoleConn> {
        match self.sources.get_mut(&token) {
            Some(Source::Console(console)) => Some(console),
            _ => None,
        }
    }

    /// Accept every pending client of a listener; `instance_uuid` goes into iproto
    /// greetings.
    pub fn accept(&mut self, token: Token, instance_uuid: &str) -> Vec<Accepted> {
        let mut accepted = Vec::new();
        loop {
            let Some(Source::Listener(listener)) = self.sources.get_mut(&token) else {
                return accepted;
            };
            let kind = listener.kind;
            let stream = match listener.socket.accept() {
                Ok(stream) => stream,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return accepted,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => {
                    crate::syserror!("accept on {} failed: {err}", listener.name);
                    return accepted;
                }
            };
            if let Some(client) = self.add_connection(stream, kind, instance_uuid) {
                accepted.push(client);
            }
        }
    }

    fn add_connection(
        &mut self,
        mut stream: Stream,
        kind: ListenKind,
        instance_uuid: &str,
    ) -> Option<Accepted> {
        let peer = stream.peer_name();
        if self.connection_count >= CONNECTION_COUNT_MAX {
            log::warn!("too many connections, dropping {peer}");
            return None;
        }
        let token = self.take_token();
        let interest = Interest::READABLE | Interest::WRITABLE;
        if let Err(err) = self.registry.register(stream.source(), token, interest) {
            crate::syserror!("can't register a connection from {peer}: {err}");
            return None;
        }
        let mut conn = Connection::new(stream);
        let salt = random_salt();
        let greeting = match kind {
            ListenKind::Console => console::greeting(),
            ListenKind::Iproto => crate::proto::xrow::greeting(instance_uuid, &salt),
        };
        debug_assert_eq!(greeting.len(), GREETING_SIZE);
        conn.queue(&greeting);
        self.connection_count += 1;
        let source = match kind {
            ListenKind::Console => Source::Console(ConsoleConn::new(conn, peer.clone())),
            // The session is opened by the caller, which owns the session table.
            ListenKind::Iproto => Source::Iproto(IprotoConn::new(conn, peer.clone(), 0, salt)),
        };
        self.sources.insert(token, source);
        Some(Accepted { token, kind, peer })
    }

    /// Route a readiness event. Returns the fibers the event unblocks; a listener's token
    /// gives nothing here (the loop calls [`Net::accept`] for it), nor does an iproto
    /// connection (the loop then runs its requests).
    pub fn ready(&mut self, token: Token, readiness: Readiness, limits: Limits) -> Vec<FiberId> {
        let Readiness {
            readable,
            writable,
            hangup,
        } = readiness;
        if let Some(conn) = self.sources.get_mut(&token).and_then(Source::connection) {
            conn.hangup |= hangup;
        }
        match self.sources.get_mut(&token) {
            Some(Source::Console(console)) => console.on_ready(readable, writable),
            Some(Source::Iproto(client)) => {
                client.on_ready(readable, writable, limits);
                Vec::new()
            }
            Some(Source::Netbox(client)) => client.on_ready(readable, writable),
            _ => Vec::new(),
        }
    }

    /// Whether `token` is an iproto connection.
    pub fn is_iproto(&self, token: Token) -> bool {
        matches!(self.sources.get(&token), Some(Source::Iproto(_)))
    }

    /// The bound address of the first listener of `kind`.
    pub fn listener_name(&self, token: Token) -> Option<String> {
        match self.sources.get(&token) {
            Some(Source::Listener(listener)) => Some(listener.name.clone()),
            _ => None,
        }
    }

    /// Whether `token` is a listener (its readiness means clients to accept).
    pub fn is_listener(&self, token: Token) -> bool {
        matches!(self.sources.get(&token), Some(Source::Listener(_)))
    }

    /// Close every socket (shutdown); a unix listener's file is removed.
    pub fn close_all(&mut self) {
        let tokens: Vec<Token> = self.sources.keys().copied().collect();
        for token in tokens {
            self.close(token);
        }
    }

    /// Listeners that keep a unix socket path, for cleanup at exit.
    pub fn unix_paths(&self) -> Vec<String> {
        self.sources
            .values()
            .filter_map(|source| match source {
                Source::Listener(Listener {
                    socket: ListenSocket::Unix { path, .. },
                    ..
                }) => Some(path.clone()),
                _ => None,
            })
            .collect()
    }
}
