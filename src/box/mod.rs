//! box: the in-memory storage engine and data model (memtx spaces, TREE and HASH indexes,
//! tuples, schema as data, users and grants). Owned by the TX thread; pure of Lua.

pub mod key_def;
pub mod tree;
pub mod hash;
pub mod update;
