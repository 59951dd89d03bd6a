//! Sockets of the TX loop: listeners and client connections, keyed by their mio token.
//!
//! Owned by the TX thread. `Net` registers sockets with the loop's poll (through a clone of
//! its registry, so Lua callbacks can open listeners while the loop owns the `Poll`), accepts
//! clients and routes readiness to the connection's protocol. It never runs Lua: what a
//! readiness event means for fibers comes back as a list of fibers to wake.

pub mod connection;
pub mod console;
pub mod event_loop;
pub mod listen;
pub mod stdin;

use std::collections::HashMap;
use std::io;

use mio::{Interest, Registry, Token};

use crate::constants::{CONNECTION_COUNT_MAX, GREETING_SIZE};
use crate::fiber::FiberId;
use connection::{Connection, Stream};
use console::ConsoleConn;
use listen::{ListenSocket, Listener};

/// Tokens below this are the loop's own (waker, signals).
pub const FIRST_SOURCE_TOKEN: usize = 16;

/// What a listener serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListenKind {
    /// The text admin console (`console.listen`).
    Console,
}

/// One registered socket.
pub enum Source {
    Listener(Listener),
    Console(ConsoleConn),
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
    sources: HashMap<Token, Source>,
    /// Tokens are never reused, so a stale token held by a fiber never names a new socket.
    next_token: usize,
    connection_count: usize,
}

impl Net {
    pub fn new(registry: Registry) -> Net {
        Net {
            registry,
            sources: HashMap::new(),
            next_token: FIRST_SOURCE_TOKEN,
            connection_count: 0,
        }
    }

    fn take_token(&mut self) -> Token {
        let token = Token(self.next_token);
        self.next_token += 1;
        token
    }

    /// Whether any socket is open: an open socket keeps the process serving.
    pub fn is_serving(&self) -> bool {
        !self.sources.is_empty()
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
        }
        Some(source)
    }

    pub fn console_mut(&mut self, token: Token) -> Option<&mut ConsoleConn> {
        match self.sources.get_mut(&token) {
            Some(Source::Console(console)) => Some(console),
            _ => None,
        }
    }

    /// Accept every pending client of a listener.
    pub fn accept(&mut self, token: Token) -> Vec<Accepted> {
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
            if let Some(client) = self.add_connection(stream, kind) {
                accepted.push(client);
            }
        }
    }

    fn add_connection(&mut self, mut stream: Stream, kind: ListenKind) -> Option<Accepted> {
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
        let greeting = match kind {
            ListenKind::Console => console::greeting(),
        };
        debug_assert_eq!(greeting.len(), GREETING_SIZE);
        conn.queue(&greeting);
        self.connection_count += 1;
        let source = match kind {
            ListenKind::Console => Source::Console(ConsoleConn::new(conn, peer.clone())),
        };
        self.sources.insert(token, source);
        Some(Accepted { token, kind, peer })
    }

    /// Route a readiness event. Returns the fibers the event unblocks; a listener's token
    /// gives nothing here (the loop calls [`Net::accept`] for it).
    pub fn ready(&mut self, token: Token, readable: bool, writable: bool) -> Vec<FiberId> {
        match self.sources.get_mut(&token) {
            Some(Source::Console(console)) => console.on_ready(readable, writable),
            _ => Vec::new(),
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
