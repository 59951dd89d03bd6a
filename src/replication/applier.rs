//! The applier thread: one per replication source, on the replica (see `mod.rs`).
