//! Start-up of the data: a new instance bootstraps, an existing one loads its newest snapshot
//! and replays the xlogs after it; then the WAL thread starts writing the xlog that follows.
//!
//! Runs on the TX thread inside the first `box.cfg{}` (the WAL thread it spawns owns the
//! sink from then on).
//!
//! ```text
//!   snap_dir has a .snap? ─ yes ─▶ the newest: UUID and vclock from its header, its rows;
//!        │                          then the xlogs from the one covering that vclock on
//!        └─ no: wal_dir has xlogs? ─ no ─▶ bootstrap rows, a new UUID; the cluster rows go
//!                   │                     to the WAL
//!                   └─ yes ─▶ bootstrap rows (the 1.6 bootstrap snapshot), UUID from the
//!                             xlog header, every xlog
//!   xlog rows after the vclock are applied in file order ─▶ vclock
//!   then: WAL thread with an XlogSink starting at that vclock (mode 'none': no thread)
//! ```
//!
//! A damaged xlog (bad checksum, torn tail) stops reading that file at the last good row:
//! with `panic_on_wal_error` (the default) start-up fails naming the file and offset, else
//! the rest is skipped with a log line. A row that fails to apply is likewise fatal or
//! skipped.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::r#box::db::Db;
use crate::r#box::schema;
use crate::r#box::txn::Txn;
use crate::cfg::WalMode;
use crate::constants::{RECOVERY_PROGRESS_ROWS, WAL_QUEUE_CAPACITY};
use crate::error::{BoxError, ErrCode};
use crate::proto::xrow;

use super::snapshot;
use super::vclock::Vclock;
use super::writer::{Sink, WalReply, WalWriter};
use super::xdir;
use super::xlog::{FileKind, Meta, ReadError, XlogReader, XlogWriter, read_meta};

/// What box.cfg asks of the data directory.
pub struct Options {
    pub wal_dir: PathBuf,
    pub wal_mode: WalMode,
    pub rows_per_wal: u64,
    pub panic_on_wal_error: bool,
    pub snap_dir: PathBuf,
    pub panic_on_snap_error: bool,
}

impl Options {
    /// What `box.cfg` says.
    pub fn from_cfg(cfg: &crate::cfg::Cfg) -> Options {
        Options {
            wal_dir: cfg.wal_dir().into(),
            wal_mode: cfg.wal_mode(),
            rows_per_wal: cfg.rows_per_wal(),
            panic_on_wal_error: cfg.get_bool("panic_on_wal_error"),
            snap_dir: cfg.snap_dir().into(),
            panic_on_snap_error: cfg.get_bool("panic_on_snap_error"),
        }
    }

    /// Whether there is anything to recover: a snapshot, or (with a WAL) an xlog.
    pub fn has_data(&self) -> Result<bool, BoxError> {
        if newest_snapshot(&self.snap_dir)?.is_some() {
            return Ok(true);
        }
        if self.wal_mode == WalMode::None {
            return Ok(false);
        }
        let files = xdir::scan(&self.wal_dir, FileKind::Xlog)
            .map_err(|err| BoxError::system("can't read wal_dir", &err))?;
        Ok(!files.is_empty())
    }
}

/// The recovered (or new) database, its vclock, and transactions still to be written (a new
/// instance's cluster rows).
pub struct Recovered {
    pub db: Db,
    pub vclock: Vclock,
    pub unwritten: Vec<Txn>,
}

/// Bootstrap or recover, per what `snap_dir` and `wal_dir` hold.
pub fn recover(
    options: &Options,
    new_instance: impl FnOnce() -> Result<(Db, Vec<Txn>), BoxError>,
) -> Result<Recovered, BoxError> {
    let snap = newest_snapshot(&options.snap_dir)?;
    let files = if options.wal_mode == WalMode::None {
        Vec::new()
    } else {
        let unreadable = |err: std::io::Error| BoxError::system("can't read wal_dir", &err);
        // An xlog whose header never got its final name (a crash in between) holds no
        // rows; left there, it would stop the next xlog of that name from being made.
        xdir::remove_inprogress(&options.wal_dir, FileKind::Xlog).map_err(unreadable)?;
        xdir::scan(&options.wal_dir, FileKind::Xlog).map_err(unreadable)?
    };
    let (mut db, mut vclock, files) = match snap {
        Some(path) => {
            let uuid = read_meta(&path)
                .map_err(|err| read_error(&path, err))?
                .instance_uuid;
            log::info!("instance uuid {uuid}");
            log::info!("recovery start");
            log::info!("recovering from `{}'", path.display());
            let mut db = Db::new(&uuid);
            let loaded = snapshot::load(&mut db, &path, options.panic_on_snap_error)?;
            let vclock = loaded.meta.vclock;
            let files = xlogs_after(options, &files, &vclock)?;
            (db, vclock, files)
        }
        None => {
            let Some((_, first)) = files.first() else {
                let (db, unwritten) = new_instance()?;
                return Ok(Recovered {
                    db,
                    vclock: Vclock::new(),
                    unwritten,
                });
            };
            let uuid = read_meta(first)
                .map_err(|err| read_error(first, err))?
                .instance_uuid;
            log::info!("instance uuid {uuid}");
            log::info!("recovery start");
            let mut db = Db::new(&uuid);
            db.bootstrap(&schema::bootstrap_uuid())?;
            let files = files.into_iter().map(|(_, path)| path).collect();
            (db, Vclock::new(), files)
        }
    };
    let started = Instant::now();
    let mut rows = 0u64;
    for path in &files {
        log::info!("recover from `{}'", path.display());
        rows = replay(&mut db, path, &mut vclock, options.panic_on_wal_error, rows)?;
    }
    let seconds = started.elapsed().as_secs_f64().max(1e-9);
    log::info!(
        "recovered {rows} rows in {seconds:.3} s ({:.0} rows per second)",
        rows as f64 / seconds
    );
    db.changed_spaces.clear();
    Ok(Recovered {
        db,
        vclock,
        unwritten: Vec::new(),
    })
}

/// The newest complete snapshot of `dir`, after removing unfinished ones.
fn newest_snapshot(dir: &Path) -> Result<Option<PathBuf>, BoxError> {
    let unreadable = |err: std::io::Error| BoxError::system("can't read snap_dir", &err);
    xdir::remove_inprogress(dir, FileKind::Snap).map_err(unreadable)?;
    Ok(xdir::newest(dir, FileKind::Snap)
        .map_err(unreadable)?
        .map(|(_, path)| path))
}

/// The xlogs to replay after a snapshot at `vclock`: from the one that covers it on. If
/// even the first starts after it, the rows between are lost ("Missing .xlog file"): fatal
/// with `panic_on_wal_error`, else a warning.
fn xlogs_after(
    options: &Options,
    files: &[(i64, PathBuf)],
    vclock: &Vclock,
) -> Result<Vec<PathBuf>, BoxError> {
    if files.is_empty() {
        return Ok(Vec::new());
    }
    let chosen = xdir::files_for_recovery(&options.wal_dir, FileKind::Xlog, vclock)
        .map_err(|err| BoxError::with_message(ErrCode::INVALID_XLOG, err.to_string()))?;
    if let Some(first) = chosen.first() {
        let start = read_meta(first)
            .map_err(|err| read_error(first, err))?
            .vclock;
        if !start.compare(vclock).is_some_and(|order| order.is_le()) {
            let message = format!(
                "Missing .xlog file between LSN {} {} and {} {}",
                vclock.signature(),
                vclock.to_text(),
                start.signature(),
                start.to_text()
            );
            if options.panic_on_wal_error {
                return Err(BoxError::with_message(ErrCode::INVALID_XLOG, message));
            }
            log::warn!("{message}");
        }
    }
    Ok(chosen)
}

fn read_error(path: &Path, err: ReadError) -> BoxError {
    match err {
        ReadError::Damaged { offset, reason } => BoxError::with_message(
            ErrCode::INVALID_XLOG,
            format!("{}: {reason} at offset {offset}", path.display()),
        ),
        ReadError::Io(err) => BoxError::system(&format!("can't read {}", path.display()), &err),
    }
}

/// Apply the rows of one xlog that follow `vclock`; `applied` counts the rows applied so far
/// (a progress line goes to the log every [`RECOVERY_PROGRESS_ROWS`]); returns the new count.
fn replay(
    db: &mut Db,
    path: &Path,
    vclock: &mut Vclock,
    panic: bool,
    mut applied: u64,
) -> Result<u64, BoxError> {
    let mut reader = XlogReader::open(path).map_err(|err| read_error(path, err))?;
    loop {
        let (offset, row) = match reader.next_row_ref() {
            Ok(Some(row)) => row,
            Ok(None) => break,
            Err(err) => {
                let err = read_error(path, err);
                if panic {
                    return Err(err);
                }
                log::warn!("{}; skipping the rest of the file", err.message);
                break;
            }
        };
        match apply_row(db, row, vclock) {
            Ok(true) => {
                applied += 1;
                if applied.is_multiple_of(RECOVERY_PROGRESS_ROWS) {
                    log::info!("{:.1}M rows processed", applied as f64 / 1e6);
                }
            }
            Ok(false) => {}
            Err(err) if panic => return Err(apply_error(path, offset, &err)),
            Err(err) => log::warn!("can't apply the row at offset {offset}: {}", err.message),
        }
    }
    if !reader.is_complete() {
        log::warn!("file `{}' wasn't correctly closed", path.display());
    }
    Ok(applied)
}

/// A row of `path` at `offset` failed to apply (fatal under the panic flags).
pub fn apply_error(path: &Path, offset: u64, err: &BoxError) -> BoxError {
    BoxError::with_message(
        err.code,
        format!(
            "{}: can't apply the row at offset {offset}: {}",
            path.display(),
            err.message
        ),
    )
}

/// Apply one row unless the vclock has it already. Returns whether it was applied.
fn apply_row(db: &mut Db, row: &[u8], vclock: &mut Vclock) -> Result<bool, BoxError> {
    let (header, body) = xrow::decode_header(row)?;
    // A file's row names any id and LSN: only those a vclock can hold are rows.
    let lsn = i64::try_from(header.lsn).ok();
    let (Some(lsn), true) = (lsn, (header.server_id as usize) < super::vclock::VCLOCK_MAX) else {
        return Err(BoxError::with_message(
            ErrCode::INVALID_XLOG,
            format!("row of server {} with LSN {}", header.server_id, header.lsn),
        ));
    };
    if lsn <= vclock.get(header.server_id) {
        return Ok(false);
    }
    if header.kind == crate::proto::iproto_constants::request_type::NOP {
        // A skipped replicated row: only its LSN counts.
        vclock.set(header.server_id, lsn);
        return Ok(true);
    }
    let decoded = xrow::decode_body(body)?;
    let request = xrow::data_request(header.kind, &decoded, schema::ADMIN)?;
    let mut txn = Txn::autocommit();
    db.execute(&mut txn, &request)?;
    vclock.set(header.server_id, lsn);
    Ok(true)
}

/// The xlog files behind the WAL thread.
pub struct XlogSink {
    dir: PathBuf,
    instance_uuid: String,
    sync_each_write: bool,
    rows_per_wal: u64,
    current: Option<XlogWriter>,
}

impl XlogSink {
    pub fn new(options: &Options, instance_uuid: &str) -> XlogSink {
        XlogSink {
            dir: options.wal_dir.clone(),
            instance_uuid: instance_uuid.to_string(),
            sync_each_write: options.wal_mode == WalMode::Fsync,
            rows_per_wal: options.rows_per_wal.max(1),
            current: None,
        }
    }
}

impl Sink for XlogSink {
    fn write(&mut self, encoded: &[u8], rows: u64, vclock: &Vclock) -> std::io::Result<()> {
        if self
            .current
            .as_ref()
            .is_some_and(|file| file.rows() >= self.rows_per_wal)
            && let Some(full) = self.current.take()
        {
            close_in_background(full, self.sync_each_write)?;
        }
        if self.current.is_none() {
            let meta = Meta {
                kind: FileKind::Xlog,
                instance_uuid: self.instance_uuid.clone(),
                vclock: vclock.clone(),
            };
            self.current = Some(XlogWriter::create(&self.dir, &meta, self.sync_each_write)?);
        }
        let file = self.current.as_mut().expect("opened above");
        file.write_rows(encoded, rows)
    }

    fn inject_partial_write(&mut self, bytes: usize) {
        if let Some(file) = self.current.as_mut() {
            file.inject_write_failure(bytes);
        }
    }

    fn close(&mut self) -> std::io::Result<()> {
        match self.current.take() {
            Some(file) => file.close(),
            None => Ok(()),
        }
    }
}

/// Close a full xlog. With `wal_mode = 'write'` its end marker and fsync happen on a
/// thread of their own (1.6 syncs a closed file asynchronously too), so the writer does
/// not stall on flushing a whole file; with 'fsync' every write was synced already.
fn close_in_background(file: XlogWriter, synced: bool) -> std::io::Result<()> {
    if synced {
        return file.close();
    }
    let path = file.path().to_path_buf();
    std::thread::Builder::new()
        .name("wal_close".to_string())
        .spawn(move || {
            if let Err(err) = file.close() {
                crate::syserror!("can't close {}: {err}", path.display());
            }
        })?;
    Ok(())
}

/// Start the WAL thread for `tx`'s journal (nothing with wal_mode 'none').
pub fn start_wal(
    tx: &crate::tx::Tx,
    options: &Options,
    instance_uuid: &str,
    mut vclock: Vclock,
    server_id: u32,
) -> Result<(), BoxError> {
    if options.wal_mode == WalMode::None {
        return Ok(());
    }
    // The next file is named by the vclock sum; an xlog of that name (one that got no rows)
    // would collide, so the local LSN moves on by one, as in 1.6.
    let name = options
        .wal_dir
        .join(xdir::file_name(vclock.signature(), FileKind::Xlog));
    if name.exists() {
        vclock.inc(server_id);
        // TX's written vclock follows, so a snapshot's vclock counts rows as the WAL will.
        tx.journal.borrow_mut().start_at(vclock.clone());
    }
    let sink = XlogSink::new(options, instance_uuid);
    let writer = WalWriter::new(Box::new(sink), vclock, server_id);
    let (sender, inbox) = crossbeam::channel::bounded(WAL_QUEUE_CAPACITY);
    let to_tx = tx.sender.clone();
    let thread = std::thread::Builder::new()
        .name("wal".to_string())
        .spawn(move || {
            writer.run(inbox, move |reply: WalReply| {
                to_tx.send(crate::tx::TxMsg::Wal(reply)).is_ok()
            })
        })
        .map_err(|err| BoxError::system("can't start the WAL thread", &err))?;
    tx.journal.borrow_mut().attach(sender, thread);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A row header of `server_id` and `lsn` over an empty INSERT body.
    fn row(server_id: u32, lsn: u64) -> Vec<u8> {
        let mut out = Vec::new();
        crate::wal::xlog::write_row_header(&mut out, 2, server_id, lsn, 0.0);
        out.push(0x80);
        out
    }

    #[test]
    fn rows_a_vclock_cannot_hold_are_errors_not_panics() {
        let mut db = Db::new("e654a428-c96c-4e57-b3eb-4c954186acdc");
        let mut vclock = Vclock::new();
        for bad in [row(40, 1), row(1, u64::MAX)] {
            let err = apply_row(&mut db, &bad, &mut vclock).unwrap_err();
            assert_eq!(err.code, ErrCode::INVALID_XLOG, "{}", err.message);
        }
        assert!(vclock.is_empty());
        // A row already applied is skipped before its body is looked at.
        vclock.set(1, 5);
        assert!(!apply_row(&mut db, &row(1, 5), &mut vclock).unwrap());
    }
}
