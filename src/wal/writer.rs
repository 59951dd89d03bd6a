//! The WAL writer thread: takes TX's batches, gives each row its LSN, writes the batch in one
//! go through its [`Sink`] (the xlog files), and answers with the new vclock.
//!
//! Owned by the WAL thread (everything here but the message types, which cross threads).
//!
//! ```text
//!   TX ──WalMsg::Write(batch)──▶ assign LSNs ─▶ encode ─▶ sink.write (+ sync) ─▶ Written{vclock}
//!                                                              └─ error ─▶ Failed ─▶ failing
//!   failing: every batch fails until TX has rolled back and sends WalMsg::Resume
//! ```
//!
//! A failed write leaves the vclock as it was; the batches queued behind it fail too, since
//! their transactions may have read what the failed one wrote (TX rolls them all back in
//! reverse order, then resumes the writer).

use std::io;
use std::time::{SystemTime, UNIX_EPOCH};

use crossbeam::channel::Receiver;

use super::vclock::Vclock;

/// One row of a batch: its request type and body; `server_id` 0 means a local change, which
/// gets our id and the next LSN here; a replicated row keeps its origin and LSN.
#[derive(Clone, Debug, PartialEq)]
pub struct WalRow {
    pub kind: u32,
    pub server_id: u32,
    pub lsn: i64,
    pub body: Vec<u8>,
}

/// The rows of one TX loop turn (group commit).
#[derive(Debug)]
pub struct Batch {
    pub id: u64,
    pub rows: Vec<WalRow>,
}

/// TX to the WAL thread.
#[derive(Debug)]
pub enum WalMsg {
    Write(Batch),
    /// TX has rolled back after a failure: write again.
    Resume,
    /// Error injection for tests (`box.error.injection`): fail every write while set.
    InjectIoError(bool),
    /// Close the files and end the thread.
    Stop,
}

/// The WAL thread's answer to a batch.
#[derive(Debug, PartialEq)]
pub enum WalReply {
    /// Durable as `wal_mode` asks; the vclock after the batch.
    Written { id: u64, vclock: Box<Vclock> },
    /// Not written (nothing of it is in the files).
    Failed { id: u64, reason: String },
}

/// Where encoded rows go: the xlog files, or a test's memory.
pub trait Sink: Send {
    /// Append the rows of one batch (each a header map and a body map) whose first row
    /// follows `vclock`; all of them or, on error, none.
    fn write(&mut self, rows: &[Vec<u8>], vclock: &Vclock) -> io::Result<()>;
    /// Finish the files (end markers, sync).
    fn close(&mut self) -> io::Result<()>;
}

/// The WAL thread's state.
pub struct WalWriter {
    sink: Box<dyn Sink>,
    vclock: Vclock,
    server_id: u32,
    /// A write failed and TX has not resumed us yet.
    failing: bool,
    inject_io_error: bool,
    rows: Vec<Vec<u8>>,
}

impl WalWriter {
    pub fn new(sink: Box<dyn Sink>, vclock: Vclock, server_id: u32) -> WalWriter {
        WalWriter {
            sink,
            vclock,
            server_id,
            failing: false,
            inject_io_error: false,
            rows: Vec::new(),
        }
    }

    /// The thread's body: serve `inbox` until Stop (or TX is gone), answering with `reply`.
    pub fn run(mut self, inbox: Receiver<WalMsg>, reply: impl Fn(WalReply) -> bool) {
        while let Ok(msg) = inbox.recv() {
            match msg {
                WalMsg::Write(batch) => {
                    let answer = self.write(batch);
                    if !reply(answer) {
                        break;
                    }
                }
                WalMsg::Resume => self.failing = false,
                WalMsg::InjectIoError(on) => self.inject_io_error = on,
                WalMsg::Stop => break,
            }
        }
        if let Err(err) = self.sink.close() {
            crate::syserror!("can't close the WAL: {err}");
        }
    }

    /// Write one batch.
    pub fn write(&mut self, batch: Batch) -> WalReply {
        let id = batch.id;
        if self.failing {
            return WalReply::Failed {
                id,
                reason: String::from("an earlier write failed"),
            };
        }
        let before = self.vclock.clone();
        let timestamp = now();
        self.rows.clear();
        for row in &batch.rows {
            let (server_id, lsn) = if row.server_id == 0 {
                (self.server_id, self.vclock.inc(self.server_id))
            } else {
                self.vclock.set(row.server_id, row.lsn);
                (row.server_id, row.lsn)
            };
            let mut bytes = Vec::with_capacity(row.body.len() + 24);
            encode_header(&mut bytes, row.kind, server_id, lsn, timestamp);
            bytes.extend_from_slice(&row.body);
            self.rows.push(bytes);
        }
        let written = if self.inject_io_error {
            Err(io::Error::other("injected WAL I/O error"))
        } else {
            self.sink.write(&self.rows, &before)
        };
        match written {
            Ok(()) => WalReply::Written {
                id,
                vclock: Box::new(self.vclock.clone()),
            },
            Err(err) => {
                crate::syserror!("can't write to the WAL: {err}");
                self.vclock = before;
                self.failing = true;
                WalReply::Failed {
                    id,
                    reason: err.to_string(),
                }
            }
        }
    }
}

/// Seconds since the epoch, as rows carry it.
fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A row header as 1.6 writes it to disk: `{type, server_id, lsn, timestamp}` (no sync).
pub fn encode_header(out: &mut Vec<u8>, kind: u32, server_id: u32, lsn: i64, timestamp: f64) {
    let _ = rmp::encode::write_map_len(out, 4);
    let _ = rmp::encode::write_uint(out, 0x00);
    let _ = rmp::encode::write_uint(out, u64::from(kind));
    let _ = rmp::encode::write_uint(out, 0x02);
    let _ = rmp::encode::write_uint(out, u64::from(server_id));
    let _ = rmp::encode::write_uint(out, 0x03);
    let _ = rmp::encode::write_uint(out, lsn.max(0) as u64);
    let _ = rmp::encode::write_uint(out, 0x04);
    let _ = rmp::encode::write_f64(out, timestamp);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A sink keeping rows in memory; fails while `fail` is set.
    struct Memory {
        rows: Arc<Mutex<Vec<Vec<u8>>>>,
        fail: Arc<Mutex<bool>>,
    }

    impl Sink for Memory {
        fn write(&mut self, rows: &[Vec<u8>], _vclock: &Vclock) -> io::Result<()> {
            if *self.fail.lock().unwrap() {
                return Err(io::Error::other("disk full"));
            }
            self.rows.lock().unwrap().extend(rows.iter().cloned());
            Ok(())
        }
        fn close(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn row(body: u8) -> WalRow {
        WalRow {
            kind: 2,
            server_id: 0,
            lsn: 0,
            body: vec![0x81, 0x10, body],
        }
    }

    #[test]
    fn lsns_advance_and_a_failure_fails_until_resumed() {
        let rows = Arc::new(Mutex::new(Vec::new()));
        let fail = Arc::new(Mutex::new(false));
        let sink = Memory {
            rows: rows.clone(),
            fail: fail.clone(),
        };
        let mut wal = WalWriter::new(Box::new(sink), Vclock::new(), 1);
        let reply = wal.write(Batch {
            id: 1,
            rows: vec![row(1), row(2)],
        });
        let WalReply::Written { vclock, .. } = reply else {
            panic!("{reply:?}")
        };
        assert_eq!(vclock.get(1), 2);
        *fail.lock().unwrap() = true;
        assert!(matches!(
            wal.write(Batch {
                id: 2,
                rows: vec![row(3)]
            }),
            WalReply::Failed { id: 2, .. }
        ));
        *fail.lock().unwrap() = false;
        // Still failing: batch 3 was queued behind the failed one.
        assert!(matches!(
            wal.write(Batch {
                id: 3,
                rows: vec![row(4)]
            }),
            WalReply::Failed { id: 3, .. }
        ));
        wal.failing = false;
        let reply = wal.write(Batch {
            id: 4,
            rows: vec![row(5)],
        });
        let WalReply::Written { vclock, .. } = reply else {
            panic!("{reply:?}")
        };
        // The failed batches took no LSNs.
        assert_eq!(vclock.get(1), 3);
        let rows = rows.lock().unwrap();
        assert_eq!(rows.len(), 3);
        let (header, body) = crate::proto::xrow::decode_header(&rows[2]).unwrap();
        assert_eq!((header.kind, header.server_id, header.lsn), (2, 1, 3));
        assert_eq!(body, &[0x81, 0x10, 5]);
    }
}
