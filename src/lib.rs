//! Tarantula: a Tarantool-compatible in-memory database server.
//!
//! # Threads
//!
//! ```text
//!  clients, console ─▶ TX thread (main): mio loop → connections → fibers → Lua / box
//!    owns: Poll, sockets, the Lua state, the fiber scheduler, box.cfg, sessions
//!  wal        owns: the current xlog; batches from TX, LSNs, writes; pokes relays
//!  snapshot   owns: a frozen tuple list and the .snap being written (box.snapshot)
//!  relay × N  owns: one replica's socket and an xlog cursor (replication, master side)
//!  applier × M owns: one master's socket; rows to TX in batches (replication, replica side)
//!  coio × N   owns: nothing shared; runs blocking calls (fio, name resolution) for fibers
//!  stdin      owns: the line editor of the interactive console
//! ```
//!
//! Threads talk over bounded crossbeam channels; whatever wakes TX sends one `TxMsg` into its
//! inbox and pokes the loop's single `mio::Waker`. Nothing mutable is shared across threads:
//! the only shared objects are the waker, the logger's sink and atomics for statistics.
//!
//! # Request flow
//!
//! Readable socket → the connection's bytes are framed into statements (console) → a Lua fiber
//! evaluates each statement; whatever it waits for (a timer, a channel, a coio job, more
//! input) it registers with the scheduler and yields its coroutine back to the loop, which
//! resumes it when the event arrives.

pub mod r#box;
pub mod cfg;
pub mod coio;
pub mod constants;
pub mod error;
pub mod fiber;
pub mod log;
pub mod lua;
pub mod net;
pub mod process;
pub mod proto;
pub mod replication;
pub mod server;
pub mod tx;
pub mod wal;
