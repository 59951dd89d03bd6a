//! Transactions: the statements of a fiber's transaction with what undoes each, the rows
//! they leave through the journal, and commit and rollback.
//!
//! Owned by the TX thread. A statement changes the indexes at once (memtx semantics); the
//! transaction remembers the old and new tuple of each statement, so rollback puts every
//! index back by replacing new with old in reverse order. A statement that changed the
//! schema (a write to `_space`, `_index`, ...) also carries the undo of that change.
//!
//! ```text
//!   begin ─▶ statement* ─▶ commit ─▶ rows to the journal ─▶ done
//!                 │                        └─ write failed ─▶ rollback (reverse order)
//!                 └─▶ rollback (reverse order)
//! ```

use super::alter::AlterUndo;
use super::tuple::Tuple;

/// Request types of rows, numbered as on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowKind {
    Insert = 2,
    Replace = 3,
    Update = 4,
    Delete = 5,
    Upsert = 9,
}

/// A change as it leaves for the WAL (and later a replica): the request type and the body
/// (`{SPACE_ID, INDEX_ID?, KEY | TUPLE, OPS?}` as MessagePack).
#[derive(Clone, Debug, PartialEq)]
pub struct JournalRow {
    pub kind: RowKind,
    pub body: Vec<u8>,
}

/// One statement of a transaction.
pub struct Stmt {
    pub space_id: u32,
    pub old: Option<Tuple>,
    pub new: Option<Tuple>,
    /// Undo of the schema change this statement made, if it wrote a system space.
    pub alter: Option<AlterUndo>,
    /// The row for the journal; None for temporary spaces.
    pub row: Option<JournalRow>,
}

/// A transaction in progress.
#[derive(Default)]
pub struct Txn {
    pub stmts: Vec<Stmt>,
    /// Opened by `box.begin()`: statements accumulate until commit. Otherwise each
    /// statement commits on its own.
    pub multi_statement: bool,
}

impl Txn {
    /// A transaction opened by `box.begin()`.
    pub fn begin() -> Txn {
        Txn {
            stmts: Vec::new(),
            multi_statement: true,
        }
    }

    /// An implicit single-statement transaction.
    pub fn autocommit() -> Txn {
        Txn::default()
    }

    pub fn is_empty(&self) -> bool {
        self.stmts.is_empty()
    }

    /// The journal rows of the committed statements, in order.
    pub fn rows(&self) -> Vec<&JournalRow> {
        self.stmts
            .iter()
            .filter_map(|stmt| stmt.row.as_ref())
            .collect()
    }
}

/// Where committed rows go. Until the WAL exists the journal accepts everything at once;
/// the WAL makes `write` asynchronous (the fiber waits) and able to fail (rollback).
pub trait Journal {
    /// Make the rows durable; an error means the transaction must be rolled back.
    fn write(&mut self, rows: &[&JournalRow]) -> Result<(), crate::error::BoxError>;
}

/// The journal of `wal_mode = 'none'`: rows are accepted and dropped.
#[derive(Default)]
pub struct NullJournal;

impl Journal for NullJournal {
    fn write(&mut self, _rows: &[&JournalRow]) -> Result<(), crate::error::BoxError> {
        Ok(())
    }
}
