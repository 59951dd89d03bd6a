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
