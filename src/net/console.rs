//! The admin console over TCP or a unix socket: greeting, line framing, reply queueing.
//!
//! Owned by the TX thread. Each client is served by one Lua fiber (see the console prelude)
//! that reads a line, evaluates it and writes the YAML reply; this file only moves bytes
//! between the socket and that fiber, and parks the fiber while there is nothing to read or
//! too much unread output (a client that stops reading stops its own fiber, not the server).

use crate::constants::{CONSOLE_OUTPUT_SIZE_MAX, CONSOLE_STATEMENT_SIZE_MAX, TARANTOOL_VERSION};
use crate::fiber::FiberId;

use super::connection::{Connection, IoOutcome};

/// The 128-byte console greeting: `Tarantool <version> (Lua console)` and
/// `type 'help' for interactive help`, each space-padded to 63 columns plus `\n`.
pub fn greeting() -> Vec<u8> {
    let mut bytes = Vec::with_capacity(128);
    for line in [
        format!("Tarantool {TARANTOOL_VERSION} (Lua console)"),
        String::from("type 'help' for interactive help"),
    ] {
        bytes.extend_from_slice(format!("{line:<63}\n").as_bytes());
    }
    bytes
}

/// What reading a line gave.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadLine {
    /// One line without its `\n` (a trailing `\r` is dropped too, for telnet).
    Line(Vec<u8>),
    /// The client is gone and everything it sent was read.
    Eof,
    /// Nothing complete yet: the caller fiber is registered to be woken.
    Wait,
    /// A line longer than the statement limit: the connection must be closed.
    TooLong,
}

/// What writing a reply gave.
#[derive(Debug, PartialEq, Eq)]
pub enum WriteReply {
    /// Queued (and possibly already sent).
    Done,
    /// Queued, but the client is not reading: the caller fiber waits until it drains.
    Wait,
    /// The client is gone; the reply is dropped.
    Closed,
}

/// A console client.
pub struct ConsoleConn {
    pub conn: Connection,
    pub peer: String,
    /// The fiber waiting for a line.
    reader: Option<FiberId>,
    /// The fiber waiting for output to drain.
    writer: Option<FiberId>,
}

impl ConsoleConn {
    pub fn new(conn: Connection, peer: String) -> ConsoleConn {
        ConsoleConn {
            conn,
            peer,
            reader: None,
            writer: None,
        }
    }

    /// Take the next line; if none is complete, remember `fiber` as the one to wake.
    pub fn read_line(&mut self, fiber: FiberId) -> ReadLine {
        if let Some(line) = self.take_line() {
            return line;
        }
        if self.conn.read_pending {
            self.conn.fill(CONSOLE_STATEMENT_SIZE_MAX);
            if let Some(line) = self.take_line() {
                return line;
            }
        }
        if self.conn.input().len() >= CONSOLE_STATEMENT_SIZE_MAX {
            return ReadLine::TooLong;
        }
        if self.conn.eof || self.conn.failed {
            // A last line without `\n` is still a statement.
            let rest = self.conn.input().to_vec();
            self.conn.consume(rest.len());
            return if rest.is_empty() {
                ReadLine::Eof
            } else {
                ReadLine::Line(rest)
            };
        }
        self.reader = Some(fiber);
        ReadLine::Wait
    }

    fn take_line(&mut self) -> Option<ReadLine> {
        let input = self.conn.input();
        let end = input.iter().position(|&byte| byte == b'\n')?;
        let mut line = input[..end].to_vec();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        self.conn.consume(end + 1);
        Some(ReadLine::Line(line))
    }

    /// Queue a reply; if too much is unread by the client, remember `fiber` to wake later.
    pub fn write(&mut self, fiber: FiberId, bytes: &[u8]) -> WriteReply {
        if matches!(self.conn.queue(bytes), IoOutcome::Failed) {
            return WriteReply::Closed;
        }
        if self.conn.output_len() > CONSOLE_OUTPUT_SIZE_MAX {
            self.writer = Some(fiber);
            return WriteReply::Wait;
        }
        WriteReply::Done
    }

    /// Handle readiness; returns the fibers to wake.
    pub fn on_ready(&mut self, readable: bool, writable: bool) -> Vec<FiberId> {
        let mut wake = Vec::new();
        if writable && !self.conn.failed {
            self.conn.flush();
        }
        if readable && !self.conn.read_pending {
            self.conn.fill(CONSOLE_STATEMENT_SIZE_MAX);
        }
        let drained = self.conn.output_len() <= CONSOLE_OUTPUT_SIZE_MAX;
        if (drained || self.conn.failed)
            && let Some(fiber) = self.writer.take()
        {
            wake.push(fiber);
        }
        let has_line = self.conn.input().contains(&b'\n');
        let full = self.conn.input().len() >= CONSOLE_STATEMENT_SIZE_MAX;
        if (has_line || full || self.conn.eof || self.conn.failed)
            && let Some(fiber) = self.reader.take()
        {
            wake.push(fiber);
        }
        wake
    }

    /// The fibers parked on this connection (to wake when it is closed under them).
    pub fn waiters(&mut self) -> Vec<FiberId> {
        self.reader
            .take()
            .into_iter()
            .chain(self.writer.take())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greeting_is_two_padded_lines() {
        let bytes = greeting();
        assert_eq!(bytes.len(), 128);
        assert_eq!(bytes[63], b'\n');
        assert_eq!(bytes[127], b'\n');
        assert!(bytes.starts_with(b"Tarantool 1.6.9 (Lua console)  "));
        assert!(bytes[64..].starts_with(b"type 'help' for interactive help "));
    }
}
