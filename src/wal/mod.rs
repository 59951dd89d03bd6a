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
