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

/// A change as it leaves for the WAL (and later a replica): the request type and the parts
/// of its body `{SPACE_ID, INDEX_BASE?, KEY?, TUPLE?, OPS?}`.
#[derive(Clone, Debug, PartialEq)]
pub struct JournalRow {
    pub kind: RowKind,
    pub space_id: u32,
    /// Field numbering of UPDATE operations (1 from Lua); written only when not 0.
    pub index_base: u32,
    /// KEY: the primary key (UPDATE, DELETE).
    pub key: Option<Vec<u8>>,
    /// TUPLE: the new tuple (INSERT, REPLACE, UPSERT) or the operations (UPDATE).
    pub tuple: Option<RowData>,
    /// OPS: the operations of an UPSERT.
    pub ops: Option<Vec<u8>>,
}

/// The TUPLE of a row: the stored tuple itself (no copy), or bytes of the request.
#[derive(Clone, Debug, PartialEq)]
pub enum RowData {
    Tuple(Tuple),
    Bytes(Vec<u8>),
}

impl RowData {
    pub fn bytes(&self) -> &[u8] {
        match self {
            RowData::Tuple(tuple) => tuple.data(),
            RowData::Bytes(bytes) => bytes,
        }
    }
}

impl JournalRow {
    /// A row with no parts yet.
    pub fn new(kind: RowKind, space_id: u32) -> JournalRow {
        JournalRow {
            kind,
            space_id,
            index_base: 0,
            key: None,
            tuple: None,
            ops: None,
        }
    }

    /// Append the body map, keys in ascending order, as Tarantool encodes rows.
    pub fn encode_body(&self, out: &mut Vec<u8>) {
        let parts: [(u64, Option<&[u8]>); 3] = [
            (0x20, self.key.as_deref()),
            (0x21, self.tuple.as_ref().map(RowData::bytes)),
            (0x28, self.ops.as_deref()),
        ];
        let base = u32::from(self.index_base != 0);
        let count = 1 + base + parts.iter().filter(|(_, part)| part.is_some()).count() as u32;
        let _ = rmp::encode::write_map_len(out, count);
        let _ = rmp::encode::write_uint(out, 0x10);
        let _ = rmp::encode::write_uint(out, u64::from(self.space_id));
        if base == 1 {
            let _ = rmp::encode::write_uint(out, 0x15);
            let _ = rmp::encode::write_uint(out, u64::from(self.index_base));
        }
        for (key, part) in parts {
            if let Some(part) = part {
                let _ = rmp::encode::write_uint(out, key);
                out.extend_from_slice(part);
            }
        }
    }
}

/// One statement of a transaction.
pub struct Stmt {
    pub space_id: u32,
    pub old: Option<Tuple>,
    pub new: Option<Tuple>,
    /// Undo of the schema change this statement made, if it wrote a system space. Boxed:
    /// inline it made every statement 264 bytes instead of 120, copied on every write.
    pub alter: Option<Box<AlterUndo>>,
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
        // Room for the one statement it will hold (growing an empty vector reserves four).
        Txn {
            stmts: Vec::with_capacity(1),
            multi_statement: false,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.stmts.is_empty()
    }

    /// The journal rows of the committed statements, in order.
    pub fn rows(&self) -> impl Iterator<Item = &JournalRow> {
        self.stmts.iter().filter_map(|stmt| stmt.row.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_bodies_have_tarantools_keys_in_order() {
        let mut update = JournalRow::new(RowKind::Update, 512);
        update.index_base = 1;
        update.key = Some(vec![0x91, 0x01]);
        update.tuple = Some(RowData::Bytes(vec![0x90]));
        let mut body = Vec::new();
        update.encode_body(&mut body);
        let expected = [
            0x84, 0x10, 0xcd, 0x02, 0x00, 0x15, 0x01, 0x20, 0x91, 0x01, 0x21, 0x90,
        ];
        assert_eq!(body, expected);
        let mut insert = JournalRow::new(RowKind::Insert, 1);
        insert.tuple = Some(RowData::Tuple(Tuple::new(&[0x91, 0x05])));
        let mut body = Vec::new();
        insert.encode_body(&mut body);
        assert_eq!(body, [0x82, 0x10, 0x01, 0x21, 0x91, 0x05]);
    }
}
