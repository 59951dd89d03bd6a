//! box: the in-memory storage engine and data model (memtx spaces, TREE and HASH indexes,
//! tuples, schema as data, users and grants). Owned by the TX thread; pure of Lua.

pub mod alter;
pub mod db;
pub mod hash;
pub mod index;
pub mod key_def;
pub mod mp;
pub mod schema;
pub mod session;
pub mod space;
pub mod tree;
pub mod tuple;
pub mod txn;
pub mod update;
pub mod user;

/// A starting modification counter for a new tree or hash table: distinct per container
/// (2^32 apart), so a cursor holding a position and a version can never mistake a new
/// index that replaced the one it walked for the old one unchanged.
pub(crate) fn container_epoch() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static EPOCH: AtomicU64 = AtomicU64::new(0);
    EPOCH.fetch_add(1 << 32, Ordering::Relaxed)
}
