//! Fibers: the unit of request work on the TX thread.
//!
//! Owned by the TX thread. A fiber here is bookkeeping (id, name, status, what it waits for);
//! its body is a Lua coroutine kept by [`crate::lua::fiber`], resumed by the loop. A fiber
//! that must wait (a timer, a channel, a coio job, input) registers the wait with the
//! [`sched::Sched`] and yields its coroutine; whoever completes the wait wakes it.
//!
//! ```text
//!            spawn           resume            yield (wait registered)
//!   (new) ─────────▶ Ready ─────────▶ Running ─────────▶ Suspended
//!                      ▲                 │  │                 │
//!                      └── yield ────────┘  └─ return/error ─▶ Dead
//!                      └──────────── wakeup / timeout ────────┘
//! ```

pub mod sched;
pub mod timer;

/// A fiber id: 101 and up, never reused while the process lives.
pub type FiberId = u64;

/// A map keyed by fiber id (or any other small integer): FxHash, one multiplication per
/// key; the default SipHash cost more than everything else a context switch does.
pub type IdMap<V> = rustc_hash::FxHashMap<FiberId, V>;

/// Where a fiber is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FiberStatus {
    /// Queued to run in this or the next loop turn.
    Ready,
    /// Running now (or, when nested starts are involved, suspended below the running one).
    Running,
    /// Waiting for a wakeup or a timeout.
    Suspended,
    /// Finished; kept only until the last reference forgets it.
    Dead,
}

impl FiberStatus {
    /// The name `fiber.status()` returns (Tarantool 1.6 names: a ready fiber is "suspended").
    pub fn as_str(self) -> &'static str {
        match self {
            FiberStatus::Running => "running",
            FiberStatus::Ready | FiberStatus::Suspended => "suspended",
            FiberStatus::Dead => "dead",
        }
    }
}

/// Why a suspended fiber was made ready again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WakeReason {
    /// Someone woke it (`fiber:wakeup()`, a channel, a cond, I/O, a coio result).
    Woken,
    /// Its deadline passed first.
    Timeout,
}
