//! The relay thread: one per replica, on the master (see `mod.rs`).
