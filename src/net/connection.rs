//! A non-blocking socket with bounded input and output buffers.
//!
//! Owned by the TX thread. Protocol code (console now, iproto later) reads framed input from
//! `input()` and queues replies with `queue()`; the loop calls `fill()` on readable and
//! `flush()` on writable events. Sockets are registered for both readiness kinds once, with
//! mio's edge-triggered semantics, so:
//!
//! ```text
//!   readable edge ─▶ fill() until drained ─────▶ (input full? stop; `read_pending` remembers
//!                                                 to read again once input is consumed)
//!   queue(bytes) ──▶ flush() at once ──▶ (WouldBlock? the next writable edge flushes the rest)
//! ```

use std::io::{self, Read, Write};

use mio::net::{TcpStream, UnixStream};

use crate::constants::SOCKET_READ_CHUNK;

/// A connected stream socket of either family.
pub enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    /// The peer's address as text: `host:port`, or `unix/:path` for a unix socket.
    pub fn peer_name(&self) -> String {
        match self {
            Stream::Tcp(stream) => match stream.peer_addr() {
                Ok(addr) => addr.to_string(),
                Err(_) => String::from("unknown"),
            },
            Stream::Unix(_) => String::from("unix/:"),
        }
    }

    /// The local address as text.
    pub fn local_name(&self) -> String {
        match self {
            Stream::Tcp(stream) => match stream.local_addr() {
                Ok(addr) => addr.to_string(),
                Err(_) => String::from("unknown"),
            },
            Stream::Unix(_) => String::from("unix/:"),
        }
    }

    pub fn source(&mut self) -> &mut dyn mio::event::Source {
        match self {
            Stream::Tcp(stream) => stream,
            Stream::Unix(stream) => stream,
        }
    }

    fn read_some(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(stream) => stream.read(buf),
            Stream::Unix(stream) => stream.read(buf),
        }
    }

    fn write_some(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(stream) => stream.write(buf),
            Stream::Unix(stream) => stream.write(buf),
        }
    }
}

/// The result of one `fill` or `flush`.
#[derive(Debug, PartialEq, Eq)]
pub enum IoOutcome {
    /// Bytes moved and the socket may have more (stopped at a buffer limit).
    Progress(usize),
    /// The kernel has nothing more for now (possibly after moving some bytes); wait for the
    /// next readiness edge.
    WouldBlock,
    /// The peer closed its end (read returned 0).
    Closed,
    /// The socket failed; the connection is unusable.
    Failed,
}

/// A socket with its buffers.
pub struct Connection {
    pub stream: Stream,
    /// Received bytes not yet consumed are `input[input_start..input_end]`; the rest of the
    /// buffer is room for reads (zeroed once when it grows, not before every read).
    input: Vec<u8>,
    input_start: usize,
    input_end: usize,
    /// Queued bytes not yet written start at `output_start`.
    output: Vec<u8>,
    output_start: usize,
    /// `fill` stopped at the input limit without seeing WouldBlock: read again when consumed.
    pub read_pending: bool,
    /// The peer closed its writing side; what is buffered is all there will be.
    pub eof: bool,
    /// A readiness event said the peer hung up (or the socket failed): read to the end
    /// even after a short read.
    pub hangup: bool,
    /// An I/O error happened: no more reading or writing.
    pub failed: bool,
}

impl Connection {
    pub fn new(stream: Stream) -> Connection {
        Connection {
            stream,
            input: Vec::new(),
            input_start: 0,
            input_end: 0,
            output: Vec::new(),
            output_start: 0,
            read_pending: false,
            eof: false,
            hangup: false,
            failed: false,
        }
    }

    /// The socket, the output not yet written, and how many input bytes were not consumed
    /// (a connection handed over to another thread).
    pub fn into_parts(self) -> (Stream, Vec<u8>, usize) {
        let unread = self.input_end - self.input_start;
        let pending = self.output[self.output_start..].to_vec();
        (self.stream, pending, unread)
    }

    /// Unconsumed input.
    pub fn input(&self) -> &[u8] {
        &self.input[self.input_start..self.input_end]
    }

    /// Drop `count` bytes from the front of the input.
    pub fn consume(&mut self, count: usize) {
        debug_assert!(count <= self.input_end - self.input_start);
        self.input_start += count;
        if self.input_start == self.input_end {
            self.input_start = 0;
            self.input_end = 0;
        }
    }

    /// Unconsumed input and the output queue at once, to write replies while reading
    /// requests in place. What is appended to the queue goes out with the next `flush`.
    pub fn buffers(&mut self) -> (&[u8], &mut Vec<u8>) {
        (
            &self.input[self.input_start..self.input_end],
            &mut self.output,
        )
    }

    /// Queue bytes for the peer without writing them yet (the next `flush` does).
    pub fn append(&mut self, bytes: &[u8]) {
        if !self.failed {
            self.output.extend_from_slice(bytes);
        }
    }

    /// Bytes queued and not yet written.
    pub fn output_len(&self) -> usize {
        self.output.len() - self.output_start
    }

    /// Read until the kernel has nothing more, the peer closed, or `input_max` bytes wait.
    /// A read that fills less than it asked for drained the socket: the next edge reports
    /// more (a FIN included), so there is no read just to see WouldBlock, unless the peer
    /// already hung up and its FIN may wait behind the data.
    pub fn fill(&mut self, input_max: usize) -> IoOutcome {
        if self.failed || self.eof {
            return IoOutcome::Closed;
        }
        self.compact_input();
        self.read_pending = false;
        let mut total = 0;
        loop {
            let unread = self.input_end - self.input_start;
            if unread >= input_max {
                self.read_pending = true;
                return IoOutcome::Progress(total);
            }
            let chunk = SOCKET_READ_CHUNK.min(input_max - unread);
            let end = self.input_end;
            if self.input.len() < end + chunk {
                self.input.resize(end + chunk, 0);
            }
            match self.stream.read_some(&mut self.input[end..end + chunk]) {
                Ok(0) => {
                    self.eof = true;
                    return IoOutcome::Closed;
                }
                Ok(count) => {
                    self.input_end += count;
                    total += count;
                    if count < chunk && !self.hangup {
                        return IoOutcome::WouldBlock;
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return self.io_error(err),
            }
        }
    }

    /// Queue bytes for the peer and try to write them at once.
    pub fn queue(&mut self, bytes: &[u8]) -> IoOutcome {
        if self.failed {
            return IoOutcome::Failed;
        }
        self.output.extend_from_slice(bytes);
        self.flush()
    }

    /// Write queued bytes until done or the kernel buffer is full.
    pub fn flush(&mut self) -> IoOutcome {
        if self.failed {
            return IoOutcome::Failed;
        }
        let mut total = 0;
        while self.output_start < self.output.len() {
            match self.stream.write_some(&self.output[self.output_start..]) {
                Ok(0) => {
                    self.failed = true;
                    return IoOutcome::Failed;
                }
                Ok(count) => {
                    self.output_start += count;
                    total += count;
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return self.io_error(err),
            }
        }
        self.output.clear();
        self.output_start = 0;
        IoOutcome::Progress(total)
    }

    fn io_error(&mut self, err: io::Error) -> IoOutcome {
        match err.kind() {
            io::ErrorKind::WouldBlock => IoOutcome::WouldBlock,
            _ => {
                self.failed = true;
                IoOutcome::Failed
            }
        }
    }

    /// Move unconsumed input to the front so the buffer does not creep.
    fn compact_input(&mut self) {
        if self.input_start > 0 {
            self.input.copy_within(self.input_start..self.input_end, 0);
            self.input_end -= self.input_start;
            self.input_start = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn pair() -> (Connection, std::net::TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        (
            Connection::new(Stream::Tcp(TcpStream::from_std(server))),
            client,
        )
    }

    fn fill_until(conn: &mut Connection, limit: usize, want: usize) -> IoOutcome {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let outcome = conn.fill(limit);
            if conn.input().len() >= want || outcome == IoOutcome::Closed {
                return outcome;
            }
            assert!(Instant::now() < deadline, "no data");
            std::thread::yield_now();
        }
    }

    #[test]
    fn fill_stops_at_the_limit_and_remembers() {
        let (mut conn, mut client) = pair();
        client.write_all(b"0123456789").unwrap();
        fill_until(&mut conn, 4, 4);
        assert_eq!(conn.input(), b"0123");
        assert!(conn.read_pending);
        conn.consume(4);
        fill_until(&mut conn, 100, 6);
        assert_eq!(conn.input(), b"456789");
        drop(client);
        assert_eq!(fill_until(&mut conn, 100, 100), IoOutcome::Closed);
        assert!(conn.eof);
    }

    #[test]
    fn a_short_read_ends_the_fill_unless_the_peer_hung_up() {
        let (mut conn, mut client) = pair();
        client.write_all(b"abc").unwrap();
        drop(client);
        let deadline = Instant::now() + Duration::from_secs(5);
        while conn.input().is_empty() {
            assert!(Instant::now() < deadline, "no data");
            assert_eq!(conn.fill(100), IoOutcome::WouldBlock);
        }
        // The FIN is queued behind the data, but the short read stopped before it.
        assert_eq!(conn.input(), b"abc");
        assert!(!conn.eof);
        conn.hangup = true;
        assert_eq!(conn.fill(100), IoOutcome::Closed);
        assert!(conn.eof);
        assert_eq!(conn.input(), b"abc");
    }

    #[test]
    fn queue_writes_through() {
        let (mut conn, mut client) = pair();
        assert_eq!(conn.queue(b"hello"), IoOutcome::Progress(5));
        assert_eq!(conn.output_len(), 0);
        let mut buf = [0u8; 5];
        client.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hello");
    }
}
