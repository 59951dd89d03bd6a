//! Snapshots: the checkpoint thread over a frozen tuple list, its TX side, the snap loader,
//! and the removal of files no longer needed (PROTOCOL.md §6.2, §6.3).
//!
//! `box.snapshot()` in TX takes a read view: the tuples of every stored space, in id order,
//! each space's in primary-key order, as references (no tuple data is copied), and the
//! vclock those tuples reflect: what is written plus the local commits still queued for the
//! WAL. A thread of its own (one per snapshot: they are rare, and an idle thread would hold
//! nothing useful) writes the file while TX goes on serving writes:
//!
//! ```text
//!   TX: view + vclock ──spawn──▶ snapshot thread: <sig>.snap.inprogress: header, rows, EOF,
//!                                fsync ──Written──▶ TX
//!   TX: the commits queued at the view are written? ── yes ──▶ thread: rename to <sig>.snap,
//!                                                              fsync dir ──Done──▶ TX
//!                         └─ a WAL write failed (they were rolled back) ─▶ thread: remove the
//!                                                              file ──Done(error)──▶ TX
//!   TX on Done: wake the fiber in box.snapshot(), which returns 'ok' or raises.
//! ```
//!
//! One snapshot runs at a time; a second `box.snapshot()` meanwhile fails as in 1.6 (errno
//! EINPROGRESS), and so does one whose file exists already (EEXIST: nothing changed since).
//! A transaction left open across a yield (`box.begin()`) has changed memory but is not
//! committed, so the view waits until no fiber has one open.
//!
//! Loading (`load`) runs in TX at start-up: system-space rows go through the write path (the
//! schema triggers build spaces, users, grants), user-space rows straight into the indexes.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crossbeam::channel::{Receiver, Sender};

use crate::r#box::db::Db;
use crate::r#box::schema;
use crate::r#box::tuple::Tuple;
use crate::error::{BoxError, ErrCode};
use crate::fiber::FiberId;
use crate::proto::iproto_constants::{key, request_type};
use crate::tx::{Tx, TxMsg};

use super::vclock::Vclock;
use super::xdir;
use super::xlog::{self, FileKind, Meta, ReadError, XlogWriter};

/// Bytes of encoded rows the snapshot thread collects before one write.
const WRITE_CHUNK_SIZE: usize = 1 << 20;

// {{{ the snapshot thread

/// The tuples of one space, frozen: the space keeps changing, this list does not.
pub struct SpaceView {
    pub space_id: u32,
    pub tuples: Vec<Tuple>,
}

/// What the snapshot thread tells TX.
#[derive(Debug)]
pub enum SnapshotMsg {
    /// The file is complete and synced under its `.inprogress` name; waiting for the word.
    Written,
    /// Finished: published, or the error (the file is gone then).
    Done(Result<(), String>),
}

/// Append one snapshot row: `{type: INSERT, lsn: row number}` and the body
/// `{0x10: 0xce u32 space_id, 0x21: tuple}` (PROTOCOL.md §6.2), with its fixheader.
pub fn encode_row(out: &mut Vec<u8>, lsn: u64, space_id: u32, tuple: &[u8]) {
    let start = xlog::begin_row(out);
    xlog::write_row_header(out, request_type::INSERT, 0, lsn, 0.0);
    out.extend_from_slice(&[0x82, key::SPACE_ID, 0xce]);
    out.extend_from_slice(&space_id.to_be_bytes());
    out.push(key::TUPLE);
    out.extend_from_slice(tuple);
    xlog::end_row(out, start);
}

/// Write the rows of `view` to `file` in chunks, dropping each tuple reference once encoded.
fn write_rows(file: &mut XlogWriter, view: Vec<SpaceView>) -> std::io::Result<u64> {
    let mut buffer = Vec::with_capacity(WRITE_CHUNK_SIZE + 4096);
    let mut rows = 0u64;
    let mut rows_in_buffer = 0u64;
    for space in view {
        for tuple in space.tuples {
            rows += 1;
            encode_row(&mut buffer, rows, space.space_id, tuple.data());
            rows_in_buffer += 1;
            if buffer.len() >= WRITE_CHUNK_SIZE {
                file.write_rows(&buffer, rows_in_buffer)?;
                buffer.clear();
                rows_in_buffer = 0;
            }
        }
    }
    if rows_in_buffer > 0 {
        file.write_rows(&buffer, rows_in_buffer)?;
    }
    Ok(rows)
}

/// The snapshot thread's body: write, seal, report `Written`, then publish or discard as
/// `verdict` says (a closed channel means discard), and report `Done`.
fn snapshot_thread(
    dir: PathBuf,
    meta: Meta,
    view: Vec<SpaceView>,
    verdict: Receiver<bool>,
    report: impl Fn(SnapshotMsg) -> bool,
) {
    let mut file = match XlogWriter::create(&dir, &meta, false) {
        Ok(file) => file,
        Err(err) => {
            let name = xdir::file_name(meta.vclock.signature(), FileKind::Snap);
            let message = format!("{}: {}", describe_io(&err), dir.join(name).display());
            report(SnapshotMsg::Done(Err(message)));
            return;
        }
    };
    let written = write_rows(&mut file, view).and_then(|rows| file.seal().map(|()| rows));
    if let Err(err) = written {
        let message = format!("{}: {}", describe_io(&err), file.path().display());
        let _ = file.discard();
        report(SnapshotMsg::Done(Err(message)));
        return;
    }
    if !report(SnapshotMsg::Written) {
        let _ = file.discard();
        return;
    }
    let path = file.path().to_path_buf();
    let outcome = match verdict.recv() {
        Ok(true) => file
            .publish()
            .map_err(|err| format!("{}: {}", describe_io(&err), path.display())),
        _ => {
            let _ = file.discard();
            Err(
                "a WAL write failed while the snapshot was written (its changes were \
                 rolled back)"
                    .to_string(),
            )
        }
    };
    report(SnapshotMsg::Done(outcome));
}

/// Write a snapshot of `view` at `vclock` into `dir` on the calling thread, synced and
/// published: a new replica's first snapshot, made before its WAL starts.
pub fn write_now(
    dir: &Path,
    instance_uuid: &str,
    vclock: &Vclock,
    view: Vec<SpaceView>,
) -> Result<(), BoxError> {
    let meta = Meta {
        kind: FileKind::Snap,
        instance_uuid: instance_uuid.to_string(),
        vclock: vclock.clone(),
    };
    let name = dir.join(xdir::file_name(vclock.signature(), FileKind::Snap));
    log::info!("saving snapshot `{}.inprogress'", name.display());
    let fail = |err: std::io::Error| failure(format!("{}: {}", describe_io(&err), name.display()));
    let mut file = XlogWriter::create(dir, &meta, false).map_err(fail)?;
    write_rows(&mut file, view)
        .and_then(|_| file.seal())
        .map_err(fail)?;
    file.publish().map_err(fail)?;
    log::info!("done");
    Ok(())
}

/// 1.6's text for a failed snapshot: "can't save snapshot, errno N (strerror)".
fn describe_io(err: &std::io::Error) -> String {
    let errno = err
        .raw_os_error()
        .or_else(|| (err.kind() == std::io::ErrorKind::AlreadyExists).then_some(libc::EEXIST))
        .unwrap_or(libc::EIO);
    let text = std::io::Error::from_raw_os_error(errno);
    format!(
        "can't save snapshot, errno {errno} ({})",
        crate::error::strerror(&text)
    )
}

// }}}

// {{{ TX's side

/// The snapshot being written.
struct Running {
    id: u64,
    /// The final name, for the log.
    path: PathBuf,
    /// The vclock of the view: the written one plus the rows queued then.
    vclock: Vclock,
    /// The fiber in `box.snapshot()`.
    waiter: Option<FiberId>,
    /// The thread sealed the file and waits for the word.
    sealed: bool,
    /// Every commit in the view is written.
    commits_written: bool,
    /// A WAL write failed after the view: its commits were rolled back.
    wal_failed: bool,
    verdict: Option<Sender<bool>>,
}

/// TX's snapshot state (in `Tx`).
#[derive(Default)]
pub struct Checkpoint {
    running: Option<Running>,
    /// The outcome of the last finished snapshot, by id, for its fiber to take.
    last: Option<(u64, Result<(), BoxError>)>,
    next_id: u64,
}

impl Checkpoint {
    /// Whether a snapshot is being written.
    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }
}

fn failure(message: impl Into<String>) -> BoxError {
    BoxError::with_message(ErrCode::PROC_LUA, message)
}

/// The frozen view of every stored space: not temporary, not a view, in id order.
pub fn read_view(db: &Db) -> Vec<SpaceView> {
    let mut view: Vec<SpaceView> = db
        .spaces()
        .filter(|space| !space.def.temporary && !space.def.is_view())
        .filter_map(|space| {
            let primary = space.primary()?;
            Some(SpaceView {
                space_id: space.def.id,
                tuples: primary.tuples(),
            })
        })
        .collect();
    view.sort_by_key(|space| space.space_id);
    view
}

/// Start a snapshot for `fiber`: Some(id) when started, None when it must wait (another
/// fiber has a transaction open), or the error.
pub fn begin(tx: &Tx, fiber: FiberId) -> Result<Option<u64>, BoxError> {
    if tx.checkpoint.borrow().running.is_some() {
        let busy = std::io::Error::from_raw_os_error(libc::EINPROGRESS);
        return Err(failure(describe_io(&busy)));
    }
    if tx.txns.borrow().contains_key(&fiber) {
        return Err(BoxError::new(ErrCode::ACTIVE_TRANSACTION, &[]));
    }
    if !tx.txns.borrow().is_empty() {
        return Ok(None);
    }
    let dir = PathBuf::from(tx.cfg.borrow().snap_dir());
    let (view, vclock, pending, uuid) = {
        let db = tx.db.borrow();
        let db = db.as_ref().ok_or_else(crate::process::not_configured)?;
        let journal = tx.journal.borrow();
        // Rows committed and not yet written count: the view has them.
        let vclock = journal.committed();
        let pending = journal.pending_rows();
        let uuid = db.instance_uuid.clone();
        (read_view(db), vclock, pending, uuid)
    };
    let path = dir.join(xdir::file_name(vclock.signature(), FileKind::Snap));
    if path.exists() {
        let exists = std::io::Error::from_raw_os_error(libc::EEXIST);
        return Err(failure(describe_io(&exists)));
    }
    log::info!("saving snapshot `{}.inprogress'", path.display());
    let meta = Meta {
        kind: FileKind::Snap,
        instance_uuid: uuid,
        vclock: vclock.clone(),
    };
    let (verdict, verdict_inbox) = crossbeam::channel::bounded(1);
    let to_tx = tx.sender.clone();
    std::thread::Builder::new()
        .name("snapshot".to_string())
        .spawn(move || {
            snapshot_thread(dir, meta, view, verdict_inbox, move |msg| {
                to_tx.send(TxMsg::Snapshot(msg)).is_ok()
            })
        })
        .map_err(|err| BoxError::system("can't start the snapshot thread", &err))?;
    let mut state = tx.checkpoint.borrow_mut();
    state.next_id += 1;
    let id = state.next_id;
    state.running = Some(Running {
        id,
        path,
        vclock,
        waiter: Some(fiber),
        sealed: false,
        commits_written: pending == 0,
        wal_failed: false,
        verdict: Some(verdict),
    });
    Ok(Some(id))
}

/// Whether snapshot `id` is still running; if so `fiber` becomes its waiter (to be woken).
pub fn wait(tx: &Tx, id: u64, fiber: FiberId) -> bool {
    let mut state = tx.checkpoint.borrow_mut();
    match state.running.as_mut() {
        Some(running) if running.id == id => {
            running.waiter = Some(fiber);
            true
        }
        _ => false,
    }
}

/// The outcome of finished snapshot `id` (taken once).
pub fn take_result(tx: &Tx, id: u64) -> Result<(), BoxError> {
    let mut state = tx.checkpoint.borrow_mut();
    match state.last.take() {
        Some((last, result)) if last == id => result,
        other => {
            state.last = other;
            Ok(())
        }
    }
}

/// A message of the snapshot thread.
pub fn on_thread_msg(tx: &Tx, msg: SnapshotMsg) {
    match msg {
        SnapshotMsg::Written => {
            if let Some(running) = tx.checkpoint.borrow_mut().running.as_mut() {
                running.sealed = true;
            }
            decide(tx);
        }
        SnapshotMsg::Done(result) => finish(tx, result),
    }
}

/// The WAL answered a batch (after the journal took the answer): the view's commits may
/// now be written, or rolled back.
pub fn on_wal_reply(tx: &Tx, failed: bool) {
    {
        let mut state = tx.checkpoint.borrow_mut();
        let Some(running) = state.running.as_mut() else {
            return;
        };
        if running.commits_written {
            return;
        }
        if failed {
            running.wal_failed = true;
        } else {
            let journal = tx.journal.borrow();
            running.commits_written = running
                .vclock
                .iter()
                .all(|(id, lsn)| journal.vclock.get(id) >= lsn);
        }
    }
    decide(tx);
}

/// Give the sealed file its word once the view's commits are settled.
fn decide(tx: &Tx) {
    let mut state = tx.checkpoint.borrow_mut();
    let Some(running) = state.running.as_mut() else {
        return;
    };
    if !running.sealed || !(running.commits_written || running.wal_failed) {
        return;
    }
    if let Some(verdict) = running.verdict.take() {
        let _ = verdict.send(!running.wal_failed);
    }
}

fn finish(tx: &Tx, result: Result<(), String>) {
    let mut state = tx.checkpoint.borrow_mut();
    let Some(running) = state.running.take() else {
        return;
    };
    let result = match result {
        Ok(()) => {
            log::info!("done");
            Ok(())
        }
        Err(message) => {
            log::error!("snapshot `{}': {message}", running.path.display());
            Err(failure(message))
        }
    };
    state.last = Some((running.id, result));
    drop(state);
    if let Some(fiber) = running.waiter {
        tx.sched
            .borrow_mut()
            .wakeup(fiber, crate::fiber::WakeReason::Woken);
    }
}

/// Whether a `.snap` for the written vclock exists (the snapshot daemon skips a snapshot
/// that would change nothing).
pub fn exists_for_current(tx: &Tx) -> bool {
    let signature = tx.journal.borrow().vclock.signature();
    let dir = PathBuf::from(tx.cfg.borrow().snap_dir());
    dir.join(xdir::file_name(signature, FileKind::Snap))
        .exists()
}

// }}}

// {{{ removal of old files

/// The oldest vclock a following replica still needs, whose xlogs must stay.
pub fn replicas_keep(tx: &Tx) -> Option<Vclock> {
    crate::replication::tx_replication::replicas_keep(tx)
}

/// Which files to remove, by signature (each list ascending): every snapshot but the
/// newest `count`; then the oldest xlogs while the next one's signature is still ≤ the oldest
/// kept snapshot's, so the xlog that covers the oldest kept snapshot stays, and while
/// `replicas_have(i)`: the replicas have every row before xlog `i` starts. `count` 0
/// removes nothing.
pub fn plan_removal(
    snaps: &[i64],
    xlogs: &[i64],
    count: usize,
    replicas_have: impl Fn(usize) -> bool,
) -> (Vec<i64>, Vec<i64>) {
    if count == 0 || snaps.is_empty() {
        return (Vec::new(), Vec::new());
    }
    let removed_snaps = snaps[..snaps.len().saturating_sub(count)].to_vec();
    let oldest_kept = snaps[removed_snaps.len()];
    let removed_xlogs = xlogs
        .windows(2)
        .enumerate()
        .take_while(|(i, pair)| pair[1] <= oldest_kept && replicas_have(i + 1))
        .map(|(_, pair)| pair[0])
        .collect();
    (removed_snaps, removed_xlogs)
}

/// Remove the snapshots beyond the newest `count` and the xlogs no longer needed (the
/// snapshot daemon's step after a snapshot): `keep` is what every replica has, compared
/// with the vclock in each xlog's header component by component (in a cluster of several
/// masters, signatures do not say which rows a replica lacks). Returns the files removed.
pub fn remove_old_files(
    snap_dir: &Path,
    wal_dir: &Path,
    count: usize,
    keep: Option<&Vclock>,
) -> std::io::Result<Vec<PathBuf>> {
    let snaps = xdir::scan(snap_dir, FileKind::Snap)?;
    let xlogs = xdir::scan(wal_dir, FileKind::Xlog)?;
    let signatures = |files: &[(i64, PathBuf)]| files.iter().map(|(s, _)| *s).collect::<Vec<_>>();
    let replicas_have = |i: usize| {
        keep.is_none_or(|keep| {
            // An unreadable header keeps the file and those after it.
            xlog::read_meta(&xlogs[i].1).is_ok_and(|meta| meta.vclock.is_within(keep))
        })
    };
    let (old_snaps, old_xlogs) = plan_removal(
        &signatures(&snaps),
        &signatures(&xlogs),
        count,
        replicas_have,
    );
    let mut removed = Vec::new();
    for (files, old) in [(&snaps, old_snaps), (&xlogs, old_xlogs)] {
        for (signature, path) in files.iter() {
            if old.contains(signature) {
                std::fs::remove_file(path)?;
                log::info!("removed {}", path.display());
                removed.push(path.clone());
            }
        }
    }
    Ok(removed)
}

// }}}

// {{{ loading

/// What a loaded snapshot gives recovery.
pub struct Loaded {
    pub meta: Meta,
    pub rows: u64,
}

fn read_error(path: &Path, err: ReadError) -> BoxError {
    BoxError::with_message(ErrCode::INVALID_XLOG, xdir::describe(path, err))
}

/// Load the snapshot at `path` into `db` (the stubs of the system spaces, nothing else).
/// Damage (a bad checksum, a torn row, no EOF marker) is always fatal: a snapshot is
/// trusted whole or not at all (PROTOCOL.md §6.2). A row that does not apply is fatal with
/// `panic` (`panic_on_snap_error`), else logged and skipped.
pub fn load(db: &mut Db, path: &Path, panic: bool) -> Result<Loaded, BoxError> {
    let mut reader = xdir::open_checked(path, FileKind::Snap).map_err(|e| read_error(path, e))?;
    let meta = reader.meta().clone();
    let started = Instant::now();
    let mut rows = 0u64;
    loop {
        let (offset, row) = match reader.next_row_ref() {
            Ok(Some(row)) => row,
            Ok(None) => break,
            Err(err) => return Err(read_error(path, err)),
        };
        match load_row(db, row) {
            Ok(()) => rows += 1,
            Err(err) if panic => {
                return Err(super::recovery::apply_error(path, offset, &err));
            }
            Err(err) => log::warn!(
                "{}: can't apply the row at offset {offset}: {}; skipped",
                path.display(),
                err.message
            ),
        }
        if rows.is_multiple_of(1_000_000) && rows > 0 {
            log::info!("{:.1}M rows processed", rows as f64 / 1e6);
        }
    }
    if !reader.is_complete() {
        let offset = reader.position();
        return Err(BoxError::with_message(
            ErrCode::INVALID_XLOG,
            format!(
                "{}: snapshot has no EOF marker (at offset {offset})",
                path.display()
            ),
        ));
    }
    let seconds = started.elapsed().as_secs_f64().max(1e-9);
    log::info!(
        "loaded {rows} rows of `{}' in {seconds:.3} s ({:.0} rows per second)",
        path.display(),
        rows as f64 / seconds
    );
    Ok(Loaded { meta, rows })
}

/// Apply one snapshot row: INSERT of a tuple into a space.
pub fn load_row(db: &mut Db, row: &[u8]) -> Result<(), BoxError> {
    let (header, body) = crate::proto::xrow::decode_header(row)?;
    if header.kind != request_type::INSERT {
        return Err(BoxError::with_message(
            ErrCode::UNKNOWN_REQUEST_TYPE,
            format!("Unknown request type {} in a snapshot", header.kind),
        ));
    }
    if let Some((space_id, tuple)) = parse_body(body)
        && !schema::is_system(space_id)
    {
        return db.load_tuple(space_id, tuple);
    }
    let body = crate::proto::xrow::decode_body(body)?;
    let request = crate::proto::xrow::data_request(header.kind, &body, schema::ADMIN)?;
    if schema::is_system(request.space_id) {
        let mut txn = crate::r#box::txn::Txn::autocommit();
        db.execute(&mut txn, &request)?;
        return Ok(());
    }
    db.load_tuple(request.space_id, request.tuple)
}

/// The body as this writer (and 1.6) encodes it, `{0x10: 0xce u32, 0x21: tuple}`, without
/// the general decoder; None for any other encoding (which the general decoder then reads).
/// The tuple is checked later, as every new tuple is.
fn parse_body(body: &[u8]) -> Option<(u32, &[u8])> {
    let (head, tuple) = body.split_first_chunk::<8>()?;
    if head[..3] != [0x82, key::SPACE_ID, 0xce] || head[7] != key::TUPLE {
        return None;
    }
    let space_id = u32::from_be_bytes(head[3..7].try_into().expect("4 bytes"));
    Some((space_id, tuple))
}

// }}}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_is_what_1_6_writes() {
        let mut out = Vec::new();
        encode_row(&mut out, 1, 272, &[0x91, 0x01]);
        let payload = &out[xlog::FIXHEADER_SIZE..];
        assert_eq!(
            payload,
            [
                0x82, 0x00, 0x02, 0x03, 0x01, // {type: INSERT, lsn: 1}
                0x82, 0x10, 0xce, 0x00, 0x00, 0x01, 0x10, 0x21, 0x91, 0x01
            ]
        );
        assert_eq!(xlog::count_encoded_rows(&out), Ok(1));
        let (_, body) = crate::proto::xrow::decode_header(payload).unwrap();
        assert_eq!(parse_body(body), Some((272, &[0x91, 0x01][..])));
        assert_eq!(parse_body(&[0x82, 0x10, 0x01, 0x21, 0x90]), None);
    }

    #[test]
    fn removal_keeps_count_snapshots_and_the_xlogs_they_need() {
        // Snapshots at 10, 20, 30; xlogs starting at 0, 5, 15, 25, 30.
        let snaps = [10, 20, 30];
        let xlogs = [0, 5, 15, 25, 30];
        // Keep 2: snapshot 10 goes; the oldest kept is 20, covered by xlog 15 (next is 25).
        assert_eq!(
            plan_removal(&snaps, &xlogs, 2, |_| true),
            (vec![10], vec![0, 5])
        );
        assert_eq!(
            plan_removal(&snaps, &xlogs, 1, |_| true),
            (vec![10, 20], vec![0, 5, 15, 25])
        );
        assert_eq!(plan_removal(&snaps, &xlogs, 3, |_| true), (vec![], vec![0]));
        assert_eq!(plan_removal(&snaps, &xlogs, 6, |_| true), (vec![], vec![0]));
        // Replicas lacking rows of xlog 0 (they have all before xlog 0 only) keep it and
        // the later ones; having all before xlog 2, they let 0 and 5 go.
        assert_eq!(
            plan_removal(&snaps, &xlogs, 1, |i| i == 0),
            (vec![10, 20], vec![])
        );
        assert_eq!(
            plan_removal(&snaps, &xlogs, 1, |i| i <= 2),
            (vec![10, 20], vec![0, 5])
        );
        // An xlog starting exactly at the snapshot: the one before it goes.
        assert_eq!(
            plan_removal(&[30], &[20, 30], 1, |_| true),
            (vec![], vec![20])
        );
        assert_eq!(plan_removal(&[], &xlogs, 1, |_| true), (vec![], vec![]));
        assert_eq!(plan_removal(&snaps, &xlogs, 0, |_| true), (vec![], vec![]));
    }

    #[test]
    fn replicas_keep_xlogs_by_vclock_component_not_by_signature() {
        let dir = crate::wal::TempDir::new("removal");
        let starts = ["{1: 0}", "{1: 10}", "{1: 10, 2: 10}", "{1: 20, 2: 10}"];
        for vclock in starts {
            let meta = Meta {
                kind: FileKind::Xlog,
                instance_uuid: "e654a428-c96c-4e57-b3eb-4c954186acdc".into(),
                vclock: Vclock::parse(vclock).unwrap(),
            };
            XlogWriter::create(&dir.0, &meta, false)
                .unwrap()
                .close()
                .unwrap();
        }
        std::fs::write(dir.0.join(xdir::file_name(30, FileKind::Snap)), b"").unwrap();
        let remove = |keep: &str| {
            let keep = Vclock::parse(keep).unwrap();
            let removed = remove_old_files(&dir.0, &dir.0, 1, Some(&keep)).unwrap();
            removed.len()
        };
        // Signature 15 is past xlog 10's start, but server 1's rows 6-10 are in xlog 0.
        assert_eq!(remove("{1: 5, 2: 10}"), 0);
        // All of server 1's rows before xlog 10, not all of server 2's before xlog 20.
        assert_eq!(remove("{1: 10, 2: 3}"), 1);
        assert!(!dir.0.join(xdir::file_name(0, FileKind::Xlog)).exists());
        // A replica's own rows (server 3) change nothing.
        assert_eq!(remove("{1: 10, 2: 3, 3: 500}"), 0);
        assert_eq!(remove("{1: 20, 2: 10, 3: 500}"), 2);
        assert!(dir.0.join(xdir::file_name(30, FileKind::Xlog)).exists());
    }

    #[test]
    fn errors_read_as_in_1_6() {
        let exists = std::io::Error::from_raw_os_error(libc::EEXIST);
        assert_eq!(
            describe_io(&exists),
            "can't save snapshot, errno 17 (File exists)"
        );
    }
}
