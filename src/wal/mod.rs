//! Durability: the write-ahead log and snapshots on disk.
//!
//! - `vclock`: the vector clock that names files and orders rows (pure).
//! - `xlog`: the `.xlog`/`.snap` file format: text header, rows with their fixheader and
//!   CRC-32, EOF marker; a writer for one open file and a reader that reports damage.
//! - `xdir`: a directory of such files: names by vclock signature, scans, `.inprogress`
//!   clean-up, and the choice of files to replay.
//! - `writer`: the WAL thread: batches, LSNs, the sink (files), failures.
//! - `journal`: TX's side: group commit per loop turn, waiters, rollback on failure.
//! - `snapshot`: the checkpoint thread over a frozen tuple list, its TX side, the snap
//!   loader, and the removal of old files.
//! - `recovery`: start-up: bootstrap or replay the xlogs, then start the WAL thread.

pub mod journal;
pub mod lock;
pub mod recovery;
pub mod snapshot;
pub mod vclock;
pub mod writer;
pub mod xdir;
pub mod xlog;

/// A fresh directory under the system temp dir for the unit tests, removed on drop.
#[cfg(test)]
pub(crate) struct TempDir(pub std::path::PathBuf);

#[cfg(test)]
impl TempDir {
    pub(crate) fn new(what: &str) -> TempDir {
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let unique = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "tarantula-wal-{what}-{}-{unique}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

#[cfg(test)]
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
