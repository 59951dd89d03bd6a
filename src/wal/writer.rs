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

/// One row of a batch: its request type and where its body ends in the batch's bodies;
/// `server_id` 0 means a local change, which gets our id and the next LSN here; a
/// replicated row keeps its origin and LSN.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WalRow {
    pub kind: u32,
    pub server_id: u32,
    pub lsn: i64,
    pub body_end: usize,
}

/// The rows of one TX loop turn (group commit), their bodies in one buffer.
#[derive(Debug, Default)]
pub struct Batch {
    pub id: u64,
    pub rows: Vec<WalRow>,
    pub bodies: Vec<u8>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Add a local row whose body `encode` appends.
    pub fn push_local(&mut self, kind: u32, encode: impl FnOnce(&mut Vec<u8>)) {
        encode(&mut self.bodies);
        self.rows.push(WalRow {
            kind,
            server_id: 0,
            lsn: 0,
            body_end: self.bodies.len(),
        });
    }

    /// Add a row replicated from `server_id`, which keeps its origin and LSN.
    pub fn push_replicated(&mut self, kind: u32, server_id: u32, lsn: i64, body: &[u8]) {
        assert!(server_id != 0 && lsn > 0, "a replicated row has its origin");
        self.bodies.extend_from_slice(body);
        self.rows.push(WalRow {
            kind,
            server_id,
            lsn,
            body_end: self.bodies.len(),
        });
    }
}

/// TX to the WAL thread.
#[derive(Debug)]
pub enum WalMsg {
    Write(Batch),
    /// TX has rolled back after a failure: write again.
    Resume,
    /// Error injection for tests (`box.error.injection`): fail every write while set.
    InjectIoError(bool),
    /// Error injection: the next write stores this many bytes of its batch, then fails.
    InjectPartialWrite(usize),
    /// Error injection: every write waits this long first.
    InjectDelay(std::time::Duration),
    /// Poke this channel after every write from now on (a relay following the xlogs); a
    /// full channel already holds a poke, a closed one is dropped.
    Watch(crossbeam::channel::Sender<()>),
    /// Our server id is now this (a new replica learns it after joining).
    ServerId(u32),
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
    /// Append the `rows` rows of one batch, encoded as they go to disk (fixheader, header
    /// map, body map), whose first row follows `vclock`; all of them or, on error, none.
    fn write(&mut self, encoded: &[u8], rows: u64, vclock: &Vclock) -> io::Result<()>;
    /// Finish the files (end markers, sync).
    fn close(&mut self) -> io::Result<()>;
    /// Error injection: the next write stores `bytes` bytes, then fails.
    fn inject_partial_write(&mut self, _bytes: usize) {}
}

/// The WAL thread's state.
pub struct WalWriter {
    sink: Box<dyn Sink>,
    vclock: Vclock,
    server_id: u32,
    /// A write failed and TX has not resumed us yet.
    failing: bool,
    inject_io_error: bool,
    inject_delay: std::time::Duration,
    /// The batch being written, encoded (reused).
    buffer: Vec<u8>,
    /// Relays to wake after each write.
    watchers: Vec<crossbeam::channel::Sender<()>>,
}

impl WalWriter {
    pub fn new(sink: Box<dyn Sink>, vclock: Vclock, server_id: u32) -> WalWriter {
        WalWriter {
            sink,
            vclock,
            server_id,
            failing: false,
            inject_io_error: false,
            inject_delay: std::time::Duration::ZERO,
            buffer: Vec::new(),
            watchers: Vec::new(),
        }
    }

    /// The thread's body: serve `inbox` until Stop (or TX is gone), answering with `reply`.
    pub fn run(mut self, inbox: Receiver<WalMsg>, reply: impl Fn(WalReply) -> bool) {
        let mut next = inbox.recv().ok();
        while let Some(msg) = next.take() {
            match msg {
                WalMsg::Write(batch) => {
                    // Every batch already queued goes in the same write (and sync): group
                    // commit across loop turns while the disk was busy.
                    let mut batches = vec![batch];
                    while let Ok(msg) = inbox.try_recv() {
                        match msg {
                            WalMsg::Write(batch) => batches.push(batch),
                            other => {
                                next = Some(other);
                                break;
                            }
                        }
                    }
                    let answer = self.write_all(&batches);
                    if matches!(answer, WalReply::Written { .. }) {
                        self.wake_watchers();
                    }
                    if !reply(answer) {
                        break;
                    }
                    if next.is_some() {
                        continue;
                    }
                }
                WalMsg::Resume => self.failing = false,
                WalMsg::InjectIoError(on) => self.inject_io_error = on,
                WalMsg::InjectPartialWrite(bytes) => self.sink.inject_partial_write(bytes),
                WalMsg::InjectDelay(delay) => self.inject_delay = delay,
                WalMsg::Watch(watcher) => self.watchers.push(watcher),
                WalMsg::ServerId(id) => self.server_id = id,
                WalMsg::Stop => break,
            }
            next = inbox.recv().ok();
        }
        if let Err(err) = self.sink.close() {
            crate::syserror!("can't close the WAL: {err}");
        }
    }

    /// Poke every relay; forget those that are gone.
    fn wake_watchers(&mut self) {
        self.watchers.retain(|watcher| {
            !matches!(
                watcher.try_send(()),
                Err(crossbeam::channel::TrySendError::Disconnected(()))
            )
        });
    }

    /// Write one batch.
    pub fn write(&mut self, batch: Batch) -> WalReply {
        self.write_all(std::slice::from_ref(&batch))
    }

    /// Write batches in one go; the answer names the last (written: TX releases every
    /// batch up to it) or the first (failed: TX rolls back everything queued).
    pub fn write_all(&mut self, batches: &[Batch]) -> WalReply {
        let first = batches.first().map_or(0, |batch| batch.id);
        let last = batches.last().map_or(0, |batch| batch.id);
        if self.failing {
            return WalReply::Failed {
                id: first,
                reason: String::from("an earlier write failed"),
            };
        }
        let before = self.vclock.clone();
        let timestamp = now();
        self.buffer.clear();
        let mut rows = 0u64;
        for batch in batches {
            self.encode(batch, timestamp);
            rows += batch.rows.len() as u64;
        }
        if !self.inject_delay.is_zero() {
            std::thread::sleep(self.inject_delay);
        }
        let written = if self.inject_io_error {
            Err(io::Error::other("injected WAL I/O error"))
        } else {
            self.sink.write(&self.buffer, rows, &before)
        };
        match written {
            Ok(()) => WalReply::Written {
                id: last,
                vclock: Box::new(self.vclock.clone()),
            },
            Err(err) => {
                crate::syserror!("can't write to the WAL: {err}");
                self.vclock = before;
                self.failing = true;
                WalReply::Failed {
                    id: first,
                    reason: err.to_string(),
                }
            }
        }
    }

    /// Give the rows of `batch` their LSNs and append them to the buffer as on disk.
    fn encode(&mut self, batch: &Batch, timestamp: f64) {
        let mut body_start = 0;
        for row in &batch.rows {
            let (server_id, lsn) = if row.server_id == 0 {
                (self.server_id, self.vclock.inc(self.server_id))
            } else {
                self.vclock.set(row.server_id, row.lsn);
                (row.server_id, row.lsn)
            };
            let start = super::xlog::begin_row(&mut self.buffer);
            let lsn = lsn.max(0) as u64;
            super::xlog::write_row_header(&mut self.buffer, row.kind, server_id, lsn, timestamp);
            self.buffer
                .extend_from_slice(&batch.bodies[body_start..row.body_end]);
            body_start = row.body_end;
            super::xlog::end_row(&mut self.buffer, start);
        }
    }
}

/// Seconds since the epoch, as rows carry it.
fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
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
        fn write(&mut self, encoded: &[u8], rows: u64, _vclock: &Vclock) -> io::Result<()> {
            if *self.fail.lock().unwrap() {
                return Err(io::Error::other("disk full"));
            }
            let mut rest = encoded;
            for _ in 0..rows {
                let fixheader = rest
                    .first_chunk::<{ crate::wal::xlog::FIXHEADER_SIZE }>()
                    .unwrap();
                let (len, _) = crate::wal::xlog::decode_fixheader(fixheader).unwrap();
                let end = crate::wal::xlog::FIXHEADER_SIZE + len as usize;
                self.rows
                    .lock()
                    .unwrap()
                    .push(rest[crate::wal::xlog::FIXHEADER_SIZE..end].to_vec());
                rest = &rest[end..];
            }
            assert!(rest.is_empty());
            Ok(())
        }
        fn close(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn batch(id: u64, bodies: &[u8]) -> Batch {
        let mut batch = Batch {
            id,
            ..Batch::default()
        };
        for body in bodies {
            batch.push_local(2, |out| out.extend_from_slice(&[0x81, 0x10, *body]));
        }
        batch
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
        let reply = wal.write(batch(1, &[1, 2]));
        let WalReply::Written { vclock, .. } = reply else {
            panic!("{reply:?}")
        };
        assert_eq!(vclock.get(1), 2);
        *fail.lock().unwrap() = true;
        assert!(matches!(
            wal.write(batch(2, &[3])),
            WalReply::Failed { id: 2, .. }
        ));
        *fail.lock().unwrap() = false;
        // Still failing: batch 3 was queued behind the failed one.
        assert!(matches!(
            wal.write(batch(3, &[4])),
            WalReply::Failed { id: 3, .. }
        ));
        wal.failing = false;
        let reply = wal.write(batch(4, &[5]));
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

    #[test]
    fn watchers_are_poked_after_writes_and_the_server_id_can_change() {
        let rows = Arc::new(Mutex::new(Vec::new()));
        let sink = Memory {
            rows: rows.clone(),
            fail: Arc::new(Mutex::new(false)),
        };
        let wal = WalWriter::new(Box::new(sink), Vclock::new(), 0);
        let (to_wal, inbox) = crossbeam::channel::bounded(8);
        let (watch, poked) = crossbeam::channel::bounded(1);
        let (replies, answers) = crossbeam::channel::unbounded();
        let thread = std::thread::spawn(move || {
            wal.run(inbox, move |reply| replies.send(reply).is_ok());
        });
        to_wal.send(WalMsg::Watch(watch)).unwrap();
        // A replica learns its id after joining: its own rows get it from then on.
        to_wal.send(WalMsg::ServerId(2)).unwrap();
        let mut replicated = Batch {
            id: 1,
            ..Batch::default()
        };
        replicated.push_replicated(2, 1, 40, &[0x80]);
        replicated.push_local(2, |out| out.push(0x80));
        to_wal.send(WalMsg::Write(replicated)).unwrap();
        let answer = answers.recv().unwrap();
        let WalReply::Written { vclock, .. } = answer else {
            panic!("{answer:?}")
        };
        assert_eq!((vclock.get(1), vclock.get(2)), (40, 1));
        poked
            .recv_timeout(std::time::Duration::from_secs(5))
            .unwrap();
        // Pokes coalesce: two writes, at most one waiting poke.
        to_wal.send(WalMsg::Write(batch(2, &[1]))).unwrap();
        to_wal.send(WalMsg::Write(batch(3, &[2]))).unwrap();
        let _ = answers.recv().unwrap();
        to_wal.send(WalMsg::Stop).unwrap();
        thread.join().unwrap();
        assert!(poked.try_recv().is_ok());
        assert!(poked.try_recv().is_err());
        let rows = rows.lock().unwrap();
        let origins: Vec<(u32, u64)> = rows
            .iter()
            .map(|row| {
                let (header, _) = crate::proto::xrow::decode_header(row).unwrap();
                (header.server_id, header.lsn)
            })
            .collect();
        assert_eq!(origins[..2], [(1, 40), (2, 1)]);
    }
}
