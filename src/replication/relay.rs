//! The relay thread: one per replica, on the master (PROTOCOL.md §7.2, §7.3, §7.5).
//!
//! Runs on its own thread, `relay/<peer>`, which owns the replica's socket (blocking, with a
//! write timeout) and an [`XlogCursor`] over `wal_dir`; a small reader thread,
//! `relay/<peer>/ack`, owns a clone of the socket for reading only. TX talks to the relay
//! with [`RelayCmd`]s and hears from it through the `to_tx` callback ([`RelayMsg`]).
//!
//! ```text
//!   JOIN:       view rows (sync, lsn 1..N) ─▶ JoinSent ─▶ wait JoinDone ─▶ OK {vclock}
//!               ─▶ read SUBSCRIBE ─▶ SubscribeRequest ─▶ wait Subscribe(Ok) ─┐
//!   SUBSCRIBE:  ─────────────────────────────────────────────────────────────┴▶ OK {vclock}
//!               ─▶ follow: cursor.read ─▶ write ─▶ caught up? select! { WAL poke,
//!                  replica ack/EOF (reader thread), TX Stop, timeout: heartbeat, rescan }
//!   always:     Exited { error }
//! ```
//!
//! The cursor and the row filter are pure over the files (no sockets) and unit-tested; the
//! thread body only moves bytes between them, the socket and the channels.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam::channel::{Receiver, Sender};

use crate::constants::{
    RELAY_ACK_QUEUE_CAPACITY, RELAY_POLL_INTERVAL, RELAY_PROGRESS_INTERVAL, RELAY_REQUEST_SIZE_MAX,
    RELAY_SUBSCRIBE_WAIT_MAX, RELAY_WRITE_CHUNK_SIZE, RELAY_WRITE_TIMEOUT, VCLOCK_MAX,
};
use crate::error::{BoxError, ErrCode};
use crate::proto::iproto_constants::{key, request_type};
use crate::proto::xrow::{self, Frame};
use crate::wal::snapshot::SpaceView;
use crate::wal::vclock::Vclock;
use crate::wal::xdir;
use crate::wal::xlog::{FileKind, ReadError, XlogReader, read_meta};

use super::codec;
use super::{RelayCmd, RelayConfig, RelayMsg, RelayStart, SubscribeStart};

// {{{ row filter and file choice (pure)

/// What the relay does with one xlog row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// New to the replica: send it.
    Send,
    /// The replica has it (at or below its vclock) or wrote it itself: pass over it.
    Skip,
}

/// Decide on row `(origin, lsn)` for the subscriber `replica_id`, advancing `sent` past
/// every new row, sent or not (PROTOCOL.md §7.3): rows at or below `sent[origin]` are old,
/// and the subscriber's own rows are never sent back (the master-master loop breaker).
/// An origin or LSN no vclock can hold is a damaged row.
pub fn filter_row(
    sent: &mut Vclock,
    replica_id: u32,
    origin: u32,
    lsn: u64,
) -> Result<Verdict, BoxError> {
    let lsn_signed = i64::try_from(lsn).ok();
    let (Some(lsn_signed), true) = (lsn_signed, (origin as usize) < VCLOCK_MAX) else {
        return Err(BoxError::with_message(
            ErrCode::INVALID_XLOG,
            format!("row of server {origin} with LSN {lsn}"),
        ));
    };
    if lsn_signed <= sent.get(origin) {
        return Ok(Verdict::Skip);
    }
    sent.set(origin, lsn_signed);
    debug_assert_eq!(sent.get(origin), lsn_signed, "sent advanced to the row");
    if origin == replica_id {
        return Ok(Verdict::Skip);
    }
    Ok(Verdict::Send)
}

/// Whether a file starting at `start` lacks rows a reader at `from` still needs: some
/// component of `start` is above `from`'s. An absent component of `from` counts as 0 here,
/// not −1: LSNs start at 1, so a file that starts with a server at LSN 0 (registered, no
/// rows yet) misses nothing of it. That is why this is not `Vclock::compare`.
pub fn misses_rows(start: &Vclock, from: &Vclock) -> bool {
    start.iter().any(|(id, lsn)| lsn > from.get(id).max(0))
}

/// The file to start reading at `from` (files by signature ascending, each with its
/// starting vclock where known): the newest that misses no rows of `from`, as 1.6 picks it.
/// None when every known file starts after `from` (the caller reports the gap).
pub fn first_file(vclocks: &[Option<Vclock>], from: &Vclock) -> Option<usize> {
    vclocks.iter().rposition(|vclock| {
        vclock
            .as_ref()
            .is_some_and(|vclock| !misses_rows(vclock, from))
    })
}

/// The error for rows removed between `from` and the oldest file, which starts at `start`.
fn gap_error(from: &Vclock, start: &Vclock) -> BoxError {
    BoxError::with_message(
        ErrCode::INVALID_XLOG,
        format!(
            "Missing .xlog file between LSN {} {} and {} {}",
            from.signature(),
            from.to_text(),
            start.signature(),
            start.to_text()
        ),
    )
}

fn read_error(path: &Path, err: ReadError) -> BoxError {
    BoxError::with_message(ErrCode::INVALID_XLOG, xdir::describe(path, err))
}

fn dir_error(dir: &Path, err: &std::io::Error) -> BoxError {
    BoxError::system(&format!("can't scan {}", dir.display()), err)
}

/// Frame one row of a JOIN's read view for the wire: header `{type: INSERT, sync, lsn}`
/// (server id 0, omitted), body `{SPACE_ID: 0xce u32, TUPLE: tuple}` (PROTOCOL.md §7.2).
pub fn encode_join_row(out: &mut Vec<u8>, sync: u64, lsn: u64, space_id: u32, tuple: &[u8]) {
    let start = out.len();
    out.extend_from_slice(&[0xce, 0, 0, 0, 0]);
    rmp::encode::write_map_len(out, 3).expect("Vec write");
    for (code, value) in [
        (key::REQUEST_TYPE, u64::from(request_type::INSERT)),
        (key::SYNC, sync),
        (key::LSN, lsn),
    ] {
        rmp::encode::write_uint(out, u64::from(code)).expect("Vec write");
        rmp::encode::write_uint(out, value).expect("Vec write");
    }
    out.extend_from_slice(&[0x82, key::SPACE_ID, 0xce]);
    out.extend_from_slice(&space_id.to_be_bytes());
    out.push(key::TUPLE);
    out.extend_from_slice(tuple);
    xrow::end_packet(out, start);
}

/// Consume the whole packets at the front of `buffer`, collecting the vclocks of acks
/// (`OK {VCLOCK}`, 1.7+ replicas). Other packets are dropped, as 1.6 drops every byte a
/// replica sends; a broken length prefix is an error (the stream can't be followed).
pub fn decode_acks(buffer: &mut Vec<u8>, acks: &mut Vec<Vclock>) -> Result<(), String> {
    let mut consumed = 0;
    loop {
        match xrow::next_frame(&buffer[consumed..], RELAY_REQUEST_SIZE_MAX) {
            Frame::Incomplete { .. } => break,
            Frame::Broken(reason) => return Err(reason),
            Frame::Complete { start, end } => {
                let packet = &buffer[consumed + start..consumed + end];
                if let Ok((header, body)) = xrow::decode_header(packet)
                    && header.kind == request_type::OK
                    && let Ok(Some(vclock)) = codec::decode_ok_vclock(body)
                {
                    acks.push(vclock);
                }
                consumed += end;
            }
        }
    }
    buffer.drain(..consumed);
    Ok(())
}

// }}}

// {{{ xlog cursor

/// What [`XlogCursor::read`] stopped at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CursorState {
    /// The output reached its size: there may be more to read at once.
    Full,
    /// Every row written so far was read: wait for the WAL thread.
    CaughtUp,
}

/// A reader of the xlogs of one directory from a vclock on, across rotations, that frames
/// the rows a subscriber lacks for the wire. File I/O only: no sockets, no channels.
///
/// ```text
///   wal_dir:  00..00.xlog (EOF) │ 00..05.xlog (EOF) │ 00..12.xlog (being written)
///                               ▲ first: newest start ≤ from      ▲ end without EOF: wait,
///                                 EOF marker: next by name          or re-read once and move
///                                                                   on if a newer file exists
/// ```
pub struct XlogCursor {
    /// Where the xlogs are.
    dir: PathBuf,
    /// The subscriber: its own rows are not sent back.
    replica_id: u32,
    /// The subscriber's vclock, advanced past every row read (sent or skipped).
    sent: Vclock,
    /// The file being read, if one is open.
    reader: Option<XlogReader>,
    /// The name (signature) of the file open or last read; None before the first.
    signature: Option<i64>,
    /// A newer file exists and this one was re-read once more: its end is final.
    final_pass: bool,
}

impl XlogCursor {
    /// A cursor for subscriber `replica_id` at vclock `from`; no file is opened yet.
    pub fn new(dir: &Path, replica_id: u32, from: Vclock) -> XlogCursor {
        XlogCursor {
            dir: dir.to_path_buf(),
            replica_id,
            sent: from,
            reader: None,
            signature: None,
            final_pass: false,
        }
    }

    /// The subscriber's vclock after the rows read so far.
    pub fn sent(&self) -> &Vclock {
        &self.sent
    }

    /// The file being read, if one is open.
    pub fn current(&self) -> Option<&Path> {
        self.reader.as_ref().map(XlogReader::path)
    }

    /// Open the first file now, if there is one: a gap between the subscriber's vclock and
    /// the oldest file is found here, before anything is sent.
    pub fn open(&mut self) -> Result<(), BoxError> {
        if self.reader.is_none() && self.signature.is_none() {
            self.open_next()?;
        }
        Ok(())
    }

    /// Append the rows to send, framed for the wire, to `out` until it holds `size_max`
    /// bytes or every row written so far is read. An error (a damaged row, a gap before the
    /// first file, an unreadable directory) ends the subscription.
    pub fn read(&mut self, out: &mut Vec<u8>, size_max: usize) -> Result<CursorState, BoxError> {
        while out.len() < size_max {
            debug_assert!(
                !self.final_pass || self.reader.is_some(),
                "a final pass reads"
            );
            if self.reader.is_none() && !self.open_next()? {
                return Ok(CursorState::CaughtUp);
            }
            if !self.step(out)? {
                return Ok(CursorState::CaughtUp);
            }
        }
        Ok(CursorState::Full)
    }

    /// Read one row (sending it or passing over it) or handle the end of the file; false
    /// when there is nothing more to read now.
    fn step(&mut self, out: &mut Vec<u8>) -> Result<bool, BoxError> {
        let reader = self.reader.as_mut().expect("a file is open");
        match reader.next_row_ref() {
            Ok(Some((offset, row))) => {
                let result = pass_row(&mut self.sent, self.replica_id, row, out);
                result.map_err(|err| {
                    let path = reader.path().display();
                    BoxError::with_message(
                        ErrCode::INVALID_XLOG,
                        format!("{path}: bad row at offset {offset}: {}", err.message),
                    )
                })?;
                Ok(true)
            }
            Ok(None) => self.end_of_file(),
            Err(err) => self.damaged(err),
        }
    }

    /// Reading the open file stopped at damage. A row cut short at the end is one being
    /// written (or a torn tail): an end; anything else is a damaged file.
    fn damaged(&mut self, err: ReadError) -> Result<bool, BoxError> {
        let reader = self.reader.as_ref().expect("a file is open");
        if matches!(err, ReadError::Damaged { .. }) && reader.stopped_at_partial_row() {
            return self.end_of_file();
        }
        Err(read_error(reader.path(), err))
    }

    /// At the end of the open file: move on if it is finished, else wait for more rows.
    /// The WAL thread appends only to the newest file, so once a newer one exists the open
    /// file gets no more rows: it is re-read once (rows may have landed since the last
    /// read), then left even without its EOF marker (closing is done in the background).
    fn end_of_file(&mut self) -> Result<bool, BoxError> {
        let reader = self.reader.as_mut().expect("a file is open");
        if reader.is_complete() {
            self.reader = None;
            self.final_pass = false;
            return Ok(true);
        }
        if self.final_pass {
            crate::verbose!("file `{}' wasn't correctly closed", reader.path().display());
            self.reader = None;
            self.final_pass = false;
            return Ok(true);
        }
        reader.resume();
        if self.newer_file_exists()? {
            self.final_pass = true;
            return Ok(true);
        }
        Ok(false)
    }

    /// Whether the WAL thread has moved on to a newer file (a directory read: pokes do not
    /// say whether they follow a write or a rotation).
    fn newer_file_exists(&self) -> Result<bool, BoxError> {
        let files = xdir::scan(&self.dir, FileKind::Xlog).map_err(|e| dir_error(&self.dir, &e))?;
        let current = self.signature.unwrap_or(i64::MIN);
        Ok(files
            .last()
            .is_some_and(|(signature, _)| *signature > current))
    }

    /// Open the next file: the first one chosen by vclock, then the next by name. False
    /// when there is none yet, or the newest file's header is still being written.
    fn open_next(&mut self) -> Result<bool, BoxError> {
        let files = xdir::scan(&self.dir, FileKind::Xlog).map_err(|e| dir_error(&self.dir, &e))?;
        let chosen = match self.signature {
            None => self.choose_first(&files)?,
            Some(current) => files.iter().position(|(signature, _)| *signature > current),
        };
        let Some(index) = chosen else {
            return Ok(false);
        };
        let (signature, path) = &files[index];
        let reader = match XlogReader::open(path) {
            Ok(reader) => reader,
            // The newest file's header may still be on its way to the disk.
            Err(ReadError::Damaged { .. }) if index + 1 == files.len() => return Ok(false),
            Err(err) => return Err(read_error(path, err)),
        };
        // A whole header that contradicts the file's name is damage, newest or not.
        xdir::check_meta(path, reader.meta(), FileKind::Xlog)
            .map_err(|err| read_error(path, err))?;
        if self.signature.is_some() && misses_rows(&reader.meta().vclock, &self.sent) {
            // 1.6 goes on too: the vclock may have been bumped over an empty file.
            let err = gap_error(&self.sent, &reader.meta().vclock);
            log::warn!("{}; ignoring a gap in LSN", err.message);
        }
        log::info!("recover from '{}'", path.display());
        self.reader = Some(reader);
        self.signature = Some(*signature);
        self.final_pass = false;
        Ok(true)
    }

    /// The index of the first file to read, or None to wait (no file yet, or only one
    /// whose header is being written); a gap before the oldest file is an error.
    fn choose_first(&self, files: &[(i64, PathBuf)]) -> Result<Option<usize>, BoxError> {
        let from = &self.sent;
        let mut vclocks = Vec::with_capacity(files.len());
        for (index, (signature, path)) in files.iter().enumerate() {
            // A file named after more rows than `from` has misses some of them.
            if *signature > from.signature() {
                vclocks.push(None);
                continue;
            }
            match read_meta(path) {
                Ok(meta) => vclocks.push(Some(meta.vclock)),
                Err(ReadError::Damaged { .. }) if index + 1 == files.len() => vclocks.push(None),
                Err(err) => return Err(read_error(path, err)),
            }
        }
        if let Some(index) = first_file(&vclocks, from) {
            return Ok(Some(index));
        }
        let Some((_, oldest)) = files.first() else {
            return Ok(None);
        };
        match read_meta(oldest) {
            Ok(meta) => Err(gap_error(from, &meta.vclock)),
            Err(ReadError::Damaged { .. }) if files.len() == 1 => Ok(None),
            Err(err) => Err(read_error(oldest, err)),
        }
    }
}

/// Filter one row and frame it for the wire if it goes out (sync 0: 1.6 never sends one).
fn pass_row(
    sent: &mut Vclock,
    replica_id: u32,
    row: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), BoxError> {
    let (header, _) = xrow::decode_header(row)?;
    if filter_row(sent, replica_id, header.server_id, header.lsn)? == Verdict::Send {
        codec::encode_row(out, row, 0)?;
    }
    Ok(())
}

// }}}

// {{{ the relay thread

/// Start the relay thread for one replica, named `relay/<peer>`. `to_tx` returning false
/// means TX is gone: the thread ends. The thread always ends with [`RelayMsg::Exited`].
pub fn spawn(
    config: RelayConfig,
    to_tx: impl Fn(RelayMsg) -> bool + Send + 'static,
    commands: Receiver<RelayCmd>,
) -> std::io::Result<JoinHandle<()>> {
    let name = format!("relay/{}", config.peer);
    std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            crate::log::set_cord(&name);
            relay_main(config, to_tx, commands);
        })
}

/// Why the relay ended.
enum End {
    /// TX asked (Stop) or is gone: nothing to report.
    Stopped,
    /// An error, for `Exited` and the log.
    Failed(String),
}

/// The relay thread's state: the socket and the links to TX and the WAL thread.
struct Relay<F> {
    /// TX's handle for this relay.
    id: u64,
    peer: String,
    /// Our server id, in the OK replies and heartbeats.
    master_id: u32,
    wal_dir: PathBuf,
    /// `replication_timeout`: heartbeat period, and the directory rescan period.
    timeout: Duration,
    /// WAL pokes; `never()` once the WAL thread is gone (then the timeout rescans).
    wake: Receiver<()>,
    stream: TcpStream,
    to_tx: F,
    commands: Receiver<RelayCmd>,
}

fn relay_main<F: Fn(RelayMsg) -> bool>(
    config: RelayConfig,
    to_tx: F,
    commands: Receiver<RelayCmd>,
) {
    let RelayConfig {
        id,
        stream,
        peer,
        master_id,
        wal_dir,
        timeout,
        wake,
        start,
    } = config;
    let mut relay = Relay {
        id,
        peer,
        master_id,
        wal_dir,
        // A zero timeout would make the idle loop spin.
        timeout: timeout.max(Duration::from_millis(1)),
        wake,
        stream,
        to_tx,
        commands,
    };
    let error = match relay.run(start) {
        End::Stopped => None,
        End::Failed(error) => Some(error),
    };
    if let Some(error) = &error {
        log::error!("{}: {error}", relay.peer);
    }
    log::info!("exiting the relay loop");
    let _ = relay.stream.shutdown(Shutdown::Both);
    (relay.to_tx)(RelayMsg::Exited { relay: id, error });
}

impl<F: Fn(RelayMsg) -> bool> Relay<F> {
    fn run(&mut self, start: RelayStart) -> End {
        if let Err(err) = self.configure_socket() {
            return End::Failed(format!("can't set up the replica's socket: {err}"));
        }
        let result = match start {
            RelayStart::Join { sync, view } => self.join(sync, view),
            RelayStart::Subscribe(start) => self.subscribe(start, Vec::new()),
        };
        match result {
            Ok(never) => match never {},
            Err(end) => end,
        }
    }

    fn configure_socket(&self) -> std::io::Result<()> {
        self.stream.set_nonblocking(false)?;
        self.stream.set_write_timeout(Some(RELAY_WRITE_TIMEOUT))?;
        self.stream.set_nodelay(true)
    }

    fn tell(&self, msg: RelayMsg) -> Result<(), End> {
        if (self.to_tx)(msg) {
            Ok(())
        } else {
            Err(End::Stopped)
        }
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), End> {
        self.stream
            .write_all(bytes)
            .map_err(|err| End::Failed(format!("can't write to the replica: {err}")))
    }

    /// Send `err` as the reply to request `sync` (best effort: the relay ends anyway).
    fn reply_error(&mut self, sync: u64, err: &BoxError) -> End {
        let mut out = Vec::new();
        xrow::write_error_reply(&mut out, sync, 0, err);
        let _ = self.stream.write_all(&out);
        End::Failed(err.message.clone())
    }

    /// The next command from TX; a TX gone ends the relay.
    fn wait_command(&self) -> Result<RelayCmd, End> {
        self.commands.recv().map_err(|_| End::Stopped)
    }

    /// A Stop from TX, if one is queued; other commands are not expected now.
    fn check_stop(&self) -> Result<(), End> {
        match self.commands.try_recv() {
            Ok(command) => self.on_command(command),
            Err(crossbeam::channel::TryRecvError::Empty) => Ok(()),
            Err(crossbeam::channel::TryRecvError::Disconnected) => Err(End::Stopped),
        }
    }

    fn on_command(&self, command: RelayCmd) -> Result<(), End> {
        match command {
            RelayCmd::Stop => Err(End::Stopped),
            _ => {
                log::warn!("relay {}: unexpected command ignored", self.id);
                Ok(())
            }
        }
    }
}

// }}}

// {{{ JOIN

impl<F: Fn(RelayMsg) -> bool> Relay<F> {
    /// Stream the read view, let TX register the replica, send the final OK, then take the
    /// replica's SUBSCRIBE on the same connection.
    fn join(&mut self, sync: u64, view: Vec<SpaceView>) -> Result<std::convert::Infallible, End> {
        self.send_view(sync, view)?;
        self.tell(RelayMsg::JoinSent { relay: self.id })?;
        loop {
            match self.wait_command()? {
                RelayCmd::JoinDone { vclock } => {
                    let mut out = Vec::new();
                    codec::encode_ok_vclock(&mut out, sync, self.master_id, &vclock);
                    self.write(&out)?;
                    break;
                }
                RelayCmd::JoinFailed(err) => return Err(self.reply_error(sync, &err)),
                command => self.on_command(command)?,
            }
        }
        let (packet, leftover) = self.read_request()?;
        let start = self.subscribe_request(&packet)?;
        self.subscribe(start, leftover)
    }

    /// Send every tuple of the view as an INSERT row (LSN 1..N), in chunks, dropping the
    /// tuples as they go; a Stop is noticed between chunks.
    fn send_view(&mut self, sync: u64, view: Vec<SpaceView>) -> Result<(), End> {
        let mut out = Vec::with_capacity(RELAY_WRITE_CHUNK_SIZE + 4096);
        let mut lsn = 0u64;
        for space in view {
            for tuple in space.tuples {
                lsn += 1;
                encode_join_row(&mut out, sync, lsn, space.space_id, tuple.data());
                if out.len() >= RELAY_WRITE_CHUNK_SIZE {
                    self.write(&out)?;
                    out.clear();
                    self.check_stop()?;
                }
            }
        }
        self.write(&out)?;
        log::info!("sent {lsn} rows of the read view");
        Ok(())
    }

    /// Read one whole packet, polling for a Stop between read timeouts; returns it and the
    /// bytes read after it.
    fn read_request(&mut self) -> Result<(Vec<u8>, Vec<u8>), End> {
        let failed = |what: String| End::Failed(what);
        self.stream
            .set_read_timeout(Some(RELAY_POLL_INTERVAL))
            .map_err(|err| failed(format!("can't set a read timeout: {err}")))?;
        let deadline = Instant::now() + RELAY_SUBSCRIBE_WAIT_MAX;
        let mut buffer = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            match xrow::next_frame(&buffer, RELAY_REQUEST_SIZE_MAX) {
                Frame::Complete { start, end } => {
                    let leftover = buffer.split_off(end);
                    buffer.drain(..start);
                    return Ok((buffer, leftover));
                }
                Frame::Broken(reason) => return Err(failed(format!("bad packet: {reason}"))),
                Frame::Incomplete { .. } => {}
            }
            if Instant::now() >= deadline {
                let waited = RELAY_SUBSCRIBE_WAIT_MAX.as_secs();
                return Err(failed(format!("no SUBSCRIBE after JOIN in {waited} s")));
            }
            self.check_stop()?;
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(failed("the replica closed the connection".into())),
                Ok(read) => buffer.extend_from_slice(&chunk[..read]),
                Err(err) if is_timeout(&err) => {}
                Err(err) => return Err(failed(format!("can't read from the replica: {err}"))),
            }
        }
    }

    /// Pass the replica's request to TX if it is a SUBSCRIBE, and wait for TX's answer.
    fn subscribe_request(&mut self, packet: &[u8]) -> Result<SubscribeStart, End> {
        let (header, body) =
            xrow::decode_header(packet).map_err(|err| self.reply_error(0, &err))?;
        let sync = header.sync;
        if header.kind != request_type::SUBSCRIBE {
            let err = BoxError::new(ErrCode::UNKNOWN_REQUEST_TYPE, &[&header.kind]);
            return Err(self.reply_error(sync, &err));
        }
        let request = codec::decode_subscribe(body).map_err(|err| self.reply_error(sync, &err))?;
        let relay = self.id;
        self.tell(RelayMsg::SubscribeRequest {
            relay,
            sync,
            request,
        })?;
        loop {
            match self.wait_command()? {
                RelayCmd::Subscribe(Ok(start)) => return Ok(start),
                RelayCmd::Subscribe(Err(err)) => return Err(self.reply_error(sync, &err)),
                command => self.on_command(command)?,
            }
        }
    }
}

fn is_timeout(err: &std::io::Error) -> bool {
    matches!(
        err.kind(),
        std::io::ErrorKind::WouldBlock
            | std::io::ErrorKind::TimedOut
            | std::io::ErrorKind::Interrupted
    )
}

// }}}

// {{{ SUBSCRIBE: follow the xlogs

/// What the socket reader thread tells the relay loop.
enum ReplicaEvent {
    /// The replica has written rows up to this vclock (1.7+ acks); boxed, as a vclock is
    /// ten times the size of the other variant.
    Ack(Box<Vclock>),
    /// The socket is closed, or its bytes can't be framed.
    Closed(String),
}

/// A following relay's state beside the socket.
struct Follow {
    /// The subscription's sync, for an error reply.
    sync: u64,
    cursor: XlogCursor,
    events: Receiver<ReplicaEvent>,
    /// The subscriber takes heartbeats (1.7+).
    heartbeats: bool,
    /// When bytes last went to the replica: a heartbeat is due `timeout` later.
    last_write: Instant,
    /// When TX last got a Progress.
    last_progress: Instant,
    /// Rows went out since the last Progress.
    progress_due: bool,
    /// The replica's last ack; before the first, the vclock it subscribed with.
    acked: Vclock,
    /// Rows framed for one write.
    buffer: Vec<u8>,
}

impl<F: Fn(RelayMsg) -> bool> Relay<F> {
    /// Send the OK, then stream the xlogs until an error or a Stop. A gap before the oldest
    /// file is answered with an error instead of the OK.
    fn subscribe(
        &mut self,
        start: SubscribeStart,
        leftover: Vec<u8>,
    ) -> Result<std::convert::Infallible, End> {
        let mut cursor = XlogCursor::new(&self.wal_dir, start.replica_id, start.vclock.clone());
        if let Err(err) = cursor.open() {
            return Err(self.reply_error(start.sync, &err));
        }
        let mut out = Vec::new();
        codec::encode_ok_vclock(&mut out, start.sync, self.master_id, &start.master_vclock);
        self.write(&out)?;
        log::info!(
            "subscribed replica {} from {}",
            start.replica_id,
            start.vclock.to_text()
        );
        let (reader, events) = self.spawn_reader(leftover)?;
        let mut state = Follow {
            sync: start.sync,
            cursor,
            events,
            heartbeats: start.heartbeats,
            last_write: Instant::now(),
            last_progress: Instant::now(),
            progress_due: false,
            acked: start.vclock,
            buffer: Vec::with_capacity(RELAY_WRITE_CHUNK_SIZE + 4096),
        };
        let end = self.follow(&mut state);
        // The reader ends at the shutdown; without a receiver it can't block on a send.
        drop(state);
        let _ = self.stream.shutdown(Shutdown::Both);
        let _ = reader.join();
        end
    }

    fn spawn_reader(
        &self,
        leftover: Vec<u8>,
    ) -> Result<(JoinHandle<()>, Receiver<ReplicaEvent>), End> {
        let failed = |err: std::io::Error| End::Failed(format!("can't start the reader: {err}"));
        let stream = self.stream.try_clone().map_err(failed)?;
        stream.set_read_timeout(None).map_err(failed)?;
        let (sender, events) = crossbeam::channel::bounded(RELAY_ACK_QUEUE_CAPACITY);
        let name = format!("relay/{}/ack", self.peer);
        let reader = std::thread::Builder::new()
            .name(name.clone())
            .spawn(move || {
                crate::log::set_cord(&name);
                read_acks(stream, leftover, &sender);
            })
            .map_err(failed)?;
        Ok((reader, events))
    }

    /// The follow loop: send what the files hold, then wait for more.
    fn follow(&mut self, state: &mut Follow) -> Result<std::convert::Infallible, End> {
        loop {
            let caught_up = self.send_rows(state)?;
            self.drain_inbox(state)?;
            if caught_up {
                self.progress_if_due(state)?;
                self.wait(state)?;
            }
            self.send_heartbeat(state)?;
        }
    }

    /// Read rows from the files and write them out, one chunk; true when caught up.
    fn send_rows(&mut self, state: &mut Follow) -> Result<bool, End> {
        state.buffer.clear();
        let cursor_state = match state.cursor.read(&mut state.buffer, RELAY_WRITE_CHUNK_SIZE) {
            Ok(cursor_state) => cursor_state,
            Err(err) => return Err(self.reply_error(state.sync, &err)),
        };
        if !state.buffer.is_empty() {
            self.stream
                .write_all(&state.buffer)
                .map_err(|err| End::Failed(format!("can't write to the replica: {err}")))?;
            state.last_write = Instant::now();
            state.progress_due = true;
            self.progress_if_due(state)?;
        }
        Ok(cursor_state == CursorState::CaughtUp)
    }

    /// Take queued commands and replica events without waiting.
    fn drain_inbox(&mut self, state: &mut Follow) -> Result<(), End> {
        self.check_stop()?;
        for _ in 0..RELAY_ACK_QUEUE_CAPACITY {
            match state.events.try_recv() {
                Ok(event) => self.on_event(state, event)?,
                Err(_) => break,
            }
        }
        Ok(())
    }

    /// Wait for a WAL poke, a replica event, a command, or the timeout (a heartbeat or a
    /// Progress may be due; the directory is read again either way, which also finds files
    /// no poke named).
    fn wait(&mut self, state: &mut Follow) -> Result<(), End> {
        let mut timeout = self.timeout;
        if state.heartbeats {
            timeout = timeout.saturating_sub(state.last_write.elapsed());
        }
        if state.progress_due {
            let progress = RELAY_PROGRESS_INTERVAL.saturating_sub(state.last_progress.elapsed());
            timeout = timeout.min(progress);
        }
        crossbeam::channel::select! {
            recv(self.wake) -> poke => {
                if poke.is_err() {
                    self.wake = crossbeam::channel::never();
                }
            }
            recv(state.events) -> event => {
                let event = event.unwrap_or(ReplicaEvent::Closed("the reader ended".into()));
                self.on_event(state, event)?;
            }
            recv(self.commands) -> command => match command {
                Ok(command) => self.on_command(command)?,
                Err(_) => return Err(End::Stopped),
            },
            default(timeout) => {}
        }
        Ok(())
    }

    fn on_event(&mut self, state: &mut Follow, event: ReplicaEvent) -> Result<(), End> {
        match event {
            ReplicaEvent::Ack(vclock) => {
                state.acked = *vclock;
                state.progress_due = true;
                self.progress_if_due(state)
            }
            ReplicaEvent::Closed(reason) => Err(End::Failed(reason)),
        }
    }

    /// Tell TX how far the replica is, at most once per [`RELAY_PROGRESS_INTERVAL`]: a
    /// message per WAL write and per ack would wake TX twice for each group commit. The
    /// wait ends in time for a Progress still due.
    fn progress_if_due(&mut self, state: &mut Follow) -> Result<(), End> {
        if state.progress_due && state.last_progress.elapsed() >= RELAY_PROGRESS_INTERVAL {
            self.send_progress(state)?;
        }
        Ok(())
    }

    fn send_progress(&mut self, state: &mut Follow) -> Result<(), End> {
        state.last_progress = Instant::now();
        state.progress_due = false;
        // Subscribers that take heartbeats (1.7+) are the ones that ack.
        let position = match state.heartbeats {
            true => state.acked.clone(),
            false => state.cursor.sent().clone(),
        };
        self.tell(RelayMsg::Progress {
            relay: self.id,
            position,
        })
    }

    /// A heartbeat when nothing went out for `timeout` (1.7+ subscribers only).
    fn send_heartbeat(&mut self, state: &mut Follow) -> Result<(), End> {
        if !state.heartbeats || state.last_write.elapsed() < self.timeout {
            return Ok(());
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |since| since.as_secs_f64());
        let mut out = Vec::new();
        codec::encode_heartbeat(&mut out, self.master_id, now);
        self.write(&out)?;
        state.last_write = Instant::now();
        Ok(())
    }
}

/// The socket reader thread: frame what the replica sends and pass its acks on, until the
/// socket closes (the relay shuts it down when it ends) or the relay is gone.
fn read_acks(mut stream: TcpStream, mut buffer: Vec<u8>, events: &Sender<ReplicaEvent>) {
    let mut chunk = vec![0u8; 4096];
    let mut acks = Vec::new();
    let reason = loop {
        if let Err(reason) = decode_acks(&mut buffer, &mut acks) {
            break format!("bad packet from the replica: {reason}");
        }
        for ack in acks.drain(..) {
            if events.send(ReplicaEvent::Ack(Box::new(ack))).is_err() {
                return;
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) => break "the replica closed the connection".to_string(),
            Ok(read) => buffer.extend_from_slice(&chunk[..read]),
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) => break format!("can't read from the replica: {err}"),
        }
    };
    let _ = events.send(ReplicaEvent::Closed(reason));
}

// }}}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use super::*;
    use crate::r#box::tuple::Tuple;
    use crate::replication::SubscribeRequest;
    use crate::wal::TempDir;
    use crate::wal::xlog::{self, Meta, XlogWriter};

    const UUID: &str = "e654a428-c96c-4e57-b3eb-4c954186acdc";
    const CLUSTER_UUID: &str = "9fe120f3-7e84-47ea-ac53-0b21fd1187c0";
    /// Bound of every wait in these tests: far above what any step takes.
    const WAIT_MAX: Duration = Duration::from_secs(10);

    fn vclock(pairs: &[(u32, i64)]) -> Vclock {
        let mut vclock = Vclock::new();
        for &(id, lsn) in pairs {
            vclock.set(id, lsn);
        }
        vclock
    }

    /// An xlog row: INSERT of `[lsn]` into space 512 by `origin`.
    fn encode_rows(out: &mut Vec<u8>, rows: &[(u32, u64)]) {
        for &(origin, lsn) in rows {
            let start = xlog::begin_row(out);
            xlog::write_row_header(out, request_type::INSERT, origin, lsn, 1.5);
            out.extend_from_slice(&[0x82, key::SPACE_ID, 0xcd, 0x02, 0x00, key::TUPLE, 0x91]);
            rmp::encode::write_uint(out, lsn).unwrap();
            xlog::end_row(out, start);
        }
    }

    fn append(writer: &mut XlogWriter, rows: &[(u32, u64)]) {
        let mut out = Vec::new();
        encode_rows(&mut out, rows);
        writer.write_rows(&out, rows.len() as u64).unwrap();
    }

    /// An xlog starting at `start` holding `rows`, left open (no EOF marker).
    fn xlog_file(dir: &TempDir, start: &[(u32, i64)], rows: &[(u32, u64)]) -> XlogWriter {
        let meta = Meta {
            kind: FileKind::Xlog,
            instance_uuid: UUID.to_string(),
            vclock: vclock(start),
        };
        let mut writer = XlogWriter::create(&dir.0, &meta, false).unwrap();
        if !rows.is_empty() {
            append(&mut writer, rows);
        }
        writer
    }

    /// (origin, lsn) of every framed row in `out`.
    fn framed_rows(mut out: &[u8]) -> Vec<(u32, u64)> {
        let mut rows = Vec::new();
        while let Frame::Complete { start, end } = xrow::next_frame(out, usize::MAX) {
            let (header, _) = xrow::decode_header(&out[start..end]).unwrap();
            assert_eq!(header.kind, request_type::INSERT);
            rows.push((header.server_id, header.lsn));
            out = &out[end..];
        }
        assert!(out.is_empty(), "whole packets");
        rows
    }

    fn read_all(cursor: &mut XlogCursor) -> Vec<(u32, u64)> {
        let mut out = Vec::new();
        assert_eq!(cursor.read(&mut out, usize::MAX), Ok(CursorState::CaughtUp));
        framed_rows(&out)
    }

    fn ones(lsns: std::ops::RangeInclusive<u64>) -> Vec<(u32, u64)> {
        lsns.map(|lsn| (1, lsn)).collect()
    }

    // {{{ pure parts

    #[test]
    fn filter_skips_old_rows_and_the_subscribers_own() {
        let mut sent = vclock(&[(1, 5), (2, 3)]);
        assert_eq!(filter_row(&mut sent, 2, 1, 5), Ok(Verdict::Skip));
        assert_eq!(filter_row(&mut sent, 2, 1, 6), Ok(Verdict::Send));
        assert_eq!(sent.get(1), 6);
        // The subscriber's own new row is passed over, but counts as passed.
        assert_eq!(filter_row(&mut sent, 2, 2, 4), Ok(Verdict::Skip));
        assert_eq!(sent.get(2), 4);
        assert_eq!(filter_row(&mut sent, 2, 2, 4), Ok(Verdict::Skip));
        // A third server the subscriber never heard of: everything is new.
        assert_eq!(filter_row(&mut sent, 2, 3, 1), Ok(Verdict::Send));
        assert_eq!(sent.get(3), 1);
        assert_eq!(filter_row(&mut sent, 2, 3, 1), Ok(Verdict::Skip));
        // What no vclock holds is damage, not a panic.
        assert!(filter_row(&mut sent, 2, VCLOCK_MAX as u32, 1).is_err());
        assert!(filter_row(&mut sent, 2, 1, u64::MAX).is_err());
        assert_eq!(sent, vclock(&[(1, 6), (2, 4), (3, 1)]));
    }

    #[test]
    fn first_file_is_the_newest_that_misses_nothing() {
        let from = vclock(&[(1, 7)]);
        let files = [
            Some(vclock(&[])),
            Some(vclock(&[(1, 5)])),
            Some(vclock(&[(1, 7)])),
            None,
        ];
        assert_eq!(first_file(&files, &from), Some(2));
        assert_eq!(first_file(&files[..2], &from), Some(1));
        assert_eq!(first_file(&[None, None], &from), None);
        // A server at LSN 0 (registered, no rows) misses nothing of a reader without it.
        assert!(!misses_rows(&vclock(&[(1, 7), (2, 0)]), &from));
        assert!(misses_rows(&vclock(&[(1, 7), (2, 1)]), &from));
        assert!(misses_rows(&vclock(&[(1, 8)]), &from));
        assert!(!misses_rows(&vclock(&[]), &vclock(&[])));
    }

    #[test]
    fn acks_are_framed_and_other_packets_dropped() {
        let mut buffer = Vec::new();
        codec::encode_ok_vclock(&mut buffer, 0, 0, &vclock(&[(1, 3)]));
        xrow::write_ok_reply(&mut buffer, 1, 0);
        codec::encode_ok_vclock(&mut buffer, 0, 0, &vclock(&[(1, 4)]));
        let whole = buffer.len();
        codec::encode_ok_vclock(&mut buffer, 0, 0, &vclock(&[(1, 5)]));
        buffer.truncate(whole + 3);
        let mut acks = Vec::new();
        decode_acks(&mut buffer, &mut acks).unwrap();
        assert_eq!(acks, [vclock(&[(1, 3)]), vclock(&[(1, 4)])]);
        assert_eq!(buffer.len(), 3, "the partial packet waits for its rest");
        let mut broken = vec![0xc1];
        assert!(decode_acks(&mut broken, &mut acks).is_err());
    }

    #[test]
    fn join_rows_carry_sync_lsn_space_and_tuple() {
        let mut out = Vec::new();
        encode_join_row(&mut out, 77, 3, 512, &[0x92, 0x01, 0xa1, b'a']);
        let Frame::Complete { start, end } = xrow::next_frame(&out, usize::MAX) else {
            panic!("a whole packet");
        };
        assert_eq!(end, out.len());
        let (header, body) = xrow::decode_header(&out[start..end]).unwrap();
        assert_eq!(
            (header.kind, header.sync, header.lsn, header.server_id),
            (request_type::INSERT, 77, 3, 0)
        );
        let body = xrow::decode_body(body).unwrap();
        assert_eq!(body.space_id, Some(512));
        assert_eq!(body.tuple, Some(&[0x92, 0x01, 0xa1, b'a'][..]));
    }

    // }}}

    // {{{ the cursor

    #[test]
    fn cursor_starts_in_the_middle_and_crosses_files() {
        let dir = TempDir::new("relay-middle");
        let mut first = xlog_file(&dir, &[], &ones(1..=5));
        first.seal().unwrap();
        let _second = xlog_file(&dir, &[(1, 5)], &ones(6..=8));
        let mut cursor = XlogCursor::new(&dir.0, 2, vclock(&[(1, 3)]));
        assert_eq!(read_all(&mut cursor), ones(4..=8));
        assert_eq!(cursor.sent(), &vclock(&[(1, 8)]));
        assert!(
            cursor
                .current()
                .unwrap()
                .ends_with("00000000000000000005.xlog")
        );
        // From inside the second file, the first is not opened at all.
        let mut cursor = XlogCursor::new(&dir.0, 2, vclock(&[(1, 6)]));
        cursor.open().unwrap();
        assert!(
            cursor
                .current()
                .unwrap()
                .ends_with("00000000000000000005.xlog")
        );
        assert_eq!(read_all(&mut cursor), ones(7..=8));
    }

    #[test]
    fn cursor_skips_the_subscribers_rows() {
        let dir = TempDir::new("relay-own");
        let _file = xlog_file(&dir, &[], &[(1, 1), (2, 1), (1, 2), (2, 2), (3, 1)]);
        let mut cursor = XlogCursor::new(&dir.0, 2, vclock(&[(1, 0), (2, 0)]));
        assert_eq!(read_all(&mut cursor), [(1, 1), (1, 2), (3, 1)]);
        assert_eq!(cursor.sent(), &vclock(&[(1, 2), (2, 2), (3, 1)]));
    }

    #[test]
    fn cursor_follows_appends_and_rotations() {
        let dir = TempDir::new("relay-follow");
        let mut writer = xlog_file(&dir, &[], &ones(1..=2));
        let mut cursor = XlogCursor::new(&dir.0, 2, vclock(&[]));
        assert_eq!(read_all(&mut cursor), ones(1..=2));
        assert_eq!(read_all(&mut cursor), []);
        append(&mut writer, &ones(3..=4));
        assert_eq!(read_all(&mut cursor), ones(3..=4));
        // Rotation with the EOF marker.
        writer.seal().unwrap();
        let mut writer = xlog_file(&dir, &[(1, 4)], &ones(5..=5));
        assert_eq!(read_all(&mut cursor), ones(5..=5));
        // Rotation before the old file got its EOF marker (closed in the background),
        // with rows appended after the cursor's last read of it.
        append(&mut writer, &ones(6..=6));
        let _next = xlog_file(&dir, &[(1, 6)], &ones(7..=7));
        assert_eq!(read_all(&mut cursor), ones(6..=7));
        assert!(
            cursor
                .current()
                .unwrap()
                .ends_with("00000000000000000006.xlog")
        );
    }

    #[test]
    fn cursor_waits_for_a_file_and_a_header() {
        let dir = TempDir::new("relay-wait");
        let mut cursor = XlogCursor::new(&dir.0, 2, vclock(&[]));
        assert_eq!(read_all(&mut cursor), []);
        let mut writer = xlog_file(&dir, &[], &ones(1..=1));
        assert_eq!(read_all(&mut cursor), ones(1..=1));
        writer.seal().unwrap();
        // The next file exists but its header is not all there yet.
        let next = dir.0.join(xdir::file_name(1, FileKind::Xlog));
        std::fs::write(&next, b"XLOG\n0.12-crc32\n").unwrap();
        assert_eq!(read_all(&mut cursor), []);
        std::fs::remove_file(&next).unwrap();
        let _writer = xlog_file(&dir, &[(1, 1)], &ones(2..=2));
        assert_eq!(read_all(&mut cursor), ones(2..=2));
    }

    #[test]
    fn cursor_reports_a_gap_before_the_oldest_file() {
        let dir = TempDir::new("relay-gap");
        let _file = xlog_file(&dir, &[(1, 10)], &ones(11..=12));
        let mut cursor = XlogCursor::new(&dir.0, 2, vclock(&[(1, 3)]));
        let err = cursor.open().unwrap_err();
        assert_eq!(err.code, ErrCode::INVALID_XLOG);
        assert_eq!(
            err.message,
            "Missing .xlog file between LSN 3 {1: 3} and 10 {1: 10}"
        );
        // A file with a server at LSN 0 misses nothing of a reader that lacks it.
        let dir = TempDir::new("relay-no-gap");
        let _file = xlog_file(&dir, &[(1, 3), (2, 0)], &[(2, 1)]);
        let mut cursor = XlogCursor::new(&dir.0, 3, vclock(&[(1, 3)]));
        assert_eq!(read_all(&mut cursor), [(2, 1)]);
    }

    #[test]
    fn cursor_fails_on_a_damaged_row() {
        let dir = TempDir::new("relay-damage");
        let mut writer = xlog_file(&dir, &[], &ones(1..=3));
        writer.seal().unwrap();
        let path = writer.path().to_path_buf();
        let mut bytes = std::fs::read(&path).unwrap();
        let at = bytes.len() - 6;
        bytes[at] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
        let mut cursor = XlogCursor::new(&dir.0, 2, vclock(&[]));
        let mut out = Vec::new();
        let err = cursor.read(&mut out, usize::MAX).unwrap_err();
        assert_eq!(err.code, ErrCode::INVALID_XLOG);
        assert!(err.message.contains("checksum"), "{}", err.message);
        assert_eq!(framed_rows(&out), ones(1..=2));
    }

    // }}}

    // {{{ the thread, over loopback sockets

    /// A relay thread with its replica's end of the socket and TX's ends of the channels.
    struct Harness {
        client: TcpStream,
        input: Vec<u8>,
        messages: Receiver<RelayMsg>,
        commands: Sender<RelayCmd>,
        wake: Sender<()>,
        thread: Option<JoinHandle<()>>,
    }

    impl Harness {
        fn start(dir: &TempDir, timeout: Duration, start: RelayStart) -> Harness {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            let (stream, peer) = listener.accept().unwrap();
            client.set_read_timeout(Some(WAIT_MAX)).unwrap();
            let (wake, wake_receiver) = crossbeam::channel::bounded(1);
            let (commands, command_receiver) = crossbeam::channel::bounded(16);
            let (message_sender, messages) = crossbeam::channel::bounded(4096);
            let config = RelayConfig {
                id: 9,
                stream,
                peer: peer.to_string(),
                master_id: 1,
                wal_dir: dir.0.clone(),
                timeout,
                wake: wake_receiver,
                start,
            };
            let to_tx = move |msg| message_sender.send(msg).is_ok();
            let thread = spawn(config, to_tx, command_receiver).unwrap();
            Harness {
                client,
                input: Vec::new(),
                messages,
                commands,
                wake,
                thread: Some(thread),
            }
        }

        /// The next packet from the relay: its header and body.
        fn packet(&mut self) -> (xrow::Header, Vec<u8>) {
            let mut chunk = [0u8; 4096];
            loop {
                if let Frame::Complete { start, end } = xrow::next_frame(&self.input, 1 << 30) {
                    let packet: Vec<u8> = self.input.drain(..end).skip(start).collect();
                    let (header, body) = xrow::decode_header(&packet).unwrap();
                    return (header, body.to_vec());
                }
                let read = self.client.read(&mut chunk).expect("a packet in time");
                assert!(read > 0, "the relay closed the connection");
                self.input.extend_from_slice(&chunk[..read]);
            }
        }

        fn ok_vclock(&mut self, sync: u64) -> Vclock {
            let (header, body) = self.packet();
            assert_eq!((header.kind, header.sync, header.server_id), (0, sync, 1));
            codec::decode_ok_vclock(&body).unwrap().unwrap()
        }

        fn rows(&mut self, count: usize) -> Vec<(u32, u64)> {
            (0..count)
                .map(|_| {
                    let (header, _) = self.packet();
                    assert_eq!(header.kind, request_type::INSERT);
                    (header.server_id, header.lsn)
                })
                .collect()
        }

        fn error(&mut self, sync: u64) -> BoxError {
            let (header, body) = self.packet();
            assert_eq!(header.sync, sync);
            codec::decode_error(&header, &body).expect("an error reply")
        }

        /// The position of the first Progress that `wanted` takes; others are skipped.
        fn progress_until(&self, mut wanted: impl FnMut(&Vclock) -> bool) -> Vclock {
            loop {
                match self
                    .messages
                    .recv_timeout(WAIT_MAX)
                    .expect("a Progress in time")
                {
                    RelayMsg::Progress { position, .. } if wanted(&position) => return position,
                    RelayMsg::Progress { .. } => {}
                    other => panic!("unexpected {other:?}"),
                }
            }
        }

        /// The next message to TX other than Progress.
        fn message(&self) -> RelayMsg {
            loop {
                match self
                    .messages
                    .recv_timeout(WAIT_MAX)
                    .expect("a message in time")
                {
                    RelayMsg::Progress { .. } => continue,
                    msg => return msg,
                }
            }
        }

        /// Send the replica's acks of `vclocks`, in one write.
        fn ack(&mut self, vclocks: &[Vclock]) {
            let mut acks = Vec::new();
            for vclock in vclocks {
                codec::encode_ok_vclock(&mut acks, 0, 0, vclock);
            }
            self.client.write_all(&acks).unwrap();
        }

        /// Stop the thread: it ends without an error.
        fn stop(&mut self) {
            self.commands.send(RelayCmd::Stop).unwrap();
            assert_eq!(self.exited(), None);
        }

        /// Wait for the thread's end; returns its Exited error.
        fn exited(&mut self) -> Option<String> {
            let error = match self.message() {
                RelayMsg::Exited { relay: 9, error } => error,
                other => panic!("expected Exited, got {other:?}"),
            };
            self.thread.take().unwrap().join().unwrap();
            error
        }
    }

    fn subscribe_start(from: Vclock, heartbeats: bool) -> SubscribeStart {
        SubscribeStart {
            sync: 5,
            replica_id: 2,
            vclock: from,
            master_vclock: vclock(&[(1, 100)]),
            heartbeats,
        }
    }

    #[test]
    fn subscribe_streams_later_rows_then_follows_until_stop() {
        let dir = TempDir::new("relay-subscribe");
        let mut first = xlog_file(&dir, &[], &[(1, 1), (1, 2), (2, 1), (1, 3), (1, 4)]);
        let start = subscribe_start(vclock(&[(1, 2), (2, 0)]), false);
        let mut harness = Harness::start(&dir, WAIT_MAX, RelayStart::Subscribe(start));
        assert_eq!(harness.ok_vclock(5), vclock(&[(1, 100)]));
        assert_eq!(harness.rows(2), ones(3..=4));
        // Follow: rows appended, then a poke.
        append(&mut first, &[(2, 2), (1, 5)]);
        harness.wake.send(()).unwrap();
        assert_eq!(harness.rows(1), ones(5..=5));
        // Rotation.
        first.seal().unwrap();
        let _second = xlog_file(&dir, &[(1, 5), (2, 2)], &ones(6..=7));
        harness.wake.send(()).unwrap();
        assert_eq!(harness.rows(2), ones(6..=7));
        // A 1.6 replica never acks: it is as far as the rows sent.
        let sent = harness.progress_until(|position| position.get(1) == 7);
        assert_eq!(sent, vclock(&[(1, 7), (2, 2)]));
        harness.stop();
    }

    #[test]
    fn an_acking_replica_is_as_far_as_it_acked_not_as_far_as_it_was_sent() {
        let dir = TempDir::new("relay-acked");
        let _file = xlog_file(&dir, &[], &ones(1..=4));
        let start = subscribe_start(vclock(&[(1, 2)]), true);
        let mut harness = Harness::start(&dir, WAIT_MAX, RelayStart::Subscribe(start));
        harness.ok_vclock(5);
        assert_eq!(harness.rows(2), ones(3..=4));
        // Sent, but maybe never written: the replica is where it subscribed from.
        let position = harness.progress_until(|_| true);
        assert_eq!(position, vclock(&[(1, 2)]));
        harness.ack(&[vclock(&[(1, 3)])]);
        harness.progress_until(|position| *position == vclock(&[(1, 3)]));
        harness.stop();
    }

    #[test]
    fn acks_reach_tx_coalesced_and_the_last_one_always() {
        let dir = TempDir::new("relay-acks");
        let _file = xlog_file(&dir, &[], &ones(1..=1));
        let start = subscribe_start(vclock(&[(1, 1)]), true);
        let mut harness = Harness::start(&dir, WAIT_MAX, RelayStart::Subscribe(start));
        harness.ok_vclock(5);
        let acks: Vec<Vclock> = (1..=50).map(|lsn| vclock(&[(1, 1), (2, lsn)])).collect();
        harness.ack(&acks);
        // Not a message per ack (50 would take 5 s at one per interval), and the last
        // state arrives though nothing follows it.
        let mut messages = 0;
        harness.progress_until(|position| {
            messages += 1;
            *position == vclock(&[(1, 1), (2, 50)])
        });
        assert!(messages < 25, "{messages} Progress messages for 50 acks");
        harness.stop();
    }

    #[test]
    fn idle_subscription_gets_heartbeats_and_reports_acks() {
        let dir = TempDir::new("relay-heartbeat");
        let _file = xlog_file(&dir, &[], &ones(1..=1));
        let start = subscribe_start(vclock(&[(1, 1)]), true);
        let timeout = Duration::from_millis(50);
        let mut harness = Harness::start(&dir, timeout, RelayStart::Subscribe(start));
        harness.ok_vclock(5);
        for _ in 0..2 {
            let (header, body) = harness.packet();
            assert_eq!((header.kind, header.server_id), (request_type::OK, 1));
            assert!(header.timestamp > 0.0);
            assert!(body.is_empty());
        }
        harness.ack(&[vclock(&[(1, 1), (2, 4)])]);
        harness.progress_until(|position| *position == vclock(&[(1, 1), (2, 4)]));
        // The replica goes away: the relay ends with an error.
        harness.client.shutdown(Shutdown::Both).unwrap();
        let error = harness.exited().expect("an error");
        assert!(error.contains("closed"), "{error}");
    }

    #[test]
    fn a_closed_replica_ends_a_waiting_relay() {
        let dir = TempDir::new("relay-closed");
        let _file = xlog_file(&dir, &[], &ones(1..=1));
        let start = subscribe_start(vclock(&[]), false);
        let mut harness = Harness::start(&dir, WAIT_MAX, RelayStart::Subscribe(start));
        harness.ok_vclock(5);
        assert_eq!(harness.rows(1), ones(1..=1));
        harness.client.shutdown(Shutdown::Both).unwrap();
        assert!(harness.exited().is_some());
    }

    #[test]
    fn a_gap_is_the_answer_to_subscribe() {
        let dir = TempDir::new("relay-gap-reply");
        let _file = xlog_file(&dir, &[(1, 10)], &ones(11..=11));
        let start = subscribe_start(vclock(&[(1, 3)]), false);
        let mut harness = Harness::start(&dir, WAIT_MAX, RelayStart::Subscribe(start));
        let err = harness.error(5);
        assert_eq!(err.code, ErrCode::INVALID_XLOG);
        assert!(err.message.starts_with("Missing .xlog file between LSN 3"));
        let error = harness.exited().expect("an error");
        assert!(error.contains("Missing .xlog"), "{error}");
    }

    fn view() -> Vec<SpaceView> {
        let tuple = |n: u8| Tuple::new(&[0x92, n, 0xa1, b'a' + n]);
        vec![
            SpaceView {
                space_id: 280,
                tuples: vec![tuple(1), tuple(2)],
            },
            SpaceView {
                space_id: 512,
                tuples: vec![tuple(3)],
            },
        ]
    }

    #[test]
    fn join_streams_the_view_then_takes_subscribe() {
        let dir = TempDir::new("relay-join");
        let _file = xlog_file(&dir, &[], &ones(1..=3));
        let start = RelayStart::Join {
            sync: 7,
            view: view(),
        };
        let mut harness = Harness::start(&dir, WAIT_MAX, start);
        for (lsn, space_id, n) in [(1, 280, 1u8), (2, 280, 2), (3, 512, 3)] {
            let (header, body) = harness.packet();
            assert_eq!(
                (header.kind, header.sync, header.lsn, header.server_id),
                (request_type::INSERT, 7, lsn, 0)
            );
            let body = xrow::decode_body(&body).unwrap();
            assert_eq!(body.space_id, Some(space_id));
            assert_eq!(body.tuple, Some(&[0x92, n, 0xa1, b'a' + n][..]));
        }
        assert!(matches!(harness.message(), RelayMsg::JoinSent { relay: 9 }));
        let joined = vclock(&[(1, 1)]);
        let vclock_done = joined.clone();
        harness
            .commands
            .send(RelayCmd::JoinDone {
                vclock: vclock_done,
            })
            .unwrap();
        assert_eq!(harness.ok_vclock(7), joined);
        // The replica writes its snapshot, then subscribes on the same connection.
        let request = SubscribeRequest {
            cluster_uuid: CLUSTER_UUID.to_string(),
            instance_uuid: UUID.to_string(),
            vclock: joined.clone(),
            version: None,
        };
        let mut packet = Vec::new();
        codec::encode_subscribe(&mut packet, 8, &request);
        harness.client.write_all(&packet).unwrap();
        match harness.message() {
            RelayMsg::SubscribeRequest {
                relay: 9,
                sync: 8,
                request: received,
            } => assert_eq!(received, request),
            other => panic!("expected SubscribeRequest, got {other:?}"),
        }
        let mut start = subscribe_start(joined, false);
        start.sync = 8;
        harness
            .commands
            .send(RelayCmd::Subscribe(Ok(start)))
            .unwrap();
        assert_eq!(harness.ok_vclock(8), vclock(&[(1, 100)]));
        assert_eq!(harness.rows(2), ones(2..=3));
        harness.stop();
    }

    #[test]
    fn join_failure_and_a_wrong_request_are_error_replies() {
        let dir = TempDir::new("relay-join-fail");
        let start = RelayStart::Join {
            sync: 7,
            view: view(),
        };
        let mut harness = Harness::start(&dir, WAIT_MAX, start);
        assert_eq!(harness.rows(3).len(), 3);
        assert!(matches!(harness.message(), RelayMsg::JoinSent { .. }));
        let refused = BoxError::with_message(ErrCode(3), "duplicate uuid");
        harness
            .commands
            .send(RelayCmd::JoinFailed(refused))
            .unwrap();
        let err = harness.error(7);
        assert_eq!(
            (err.code, err.message.as_str()),
            (ErrCode(3), "duplicate uuid")
        );
        assert_eq!(harness.exited().as_deref(), Some("duplicate uuid"));

        // After the OK, a request other than SUBSCRIBE.
        let start = RelayStart::Join {
            sync: 7,
            view: Vec::new(),
        };
        let mut harness = Harness::start(&dir, WAIT_MAX, start);
        assert!(matches!(harness.message(), RelayMsg::JoinSent { .. }));
        let done = RelayCmd::JoinDone {
            vclock: vclock(&[]),
        };
        harness.commands.send(done).unwrap();
        harness.ok_vclock(7);
        let mut ping = Vec::new();
        codec::encode_join(&mut ping, 11, UUID);
        harness.client.write_all(&ping).unwrap();
        let err = harness.error(11);
        assert_eq!(err.code, ErrCode::UNKNOWN_REQUEST_TYPE);
        assert!(harness.exited().is_some());
    }

    #[test]
    fn stop_ends_a_relay_waiting_for_subscribe() {
        let dir = TempDir::new("relay-stop");
        let start = RelayStart::Join {
            sync: 7,
            view: Vec::new(),
        };
        let mut harness = Harness::start(&dir, WAIT_MAX, start);
        assert!(matches!(harness.message(), RelayMsg::JoinSent { .. }));
        let done = RelayCmd::JoinDone {
            vclock: vclock(&[]),
        };
        harness.commands.send(done).unwrap();
        harness.ok_vclock(7);
        harness.stop();
    }

    // }}}
}
