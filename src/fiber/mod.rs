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

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A fiber id: 101 and up, never reused while the process lives.
pub type FiberId = u64;

/// Hashes fiber ids (sequential integers) with one multiplication: the default SipHash
/// costs more than everything else a context switch does.
#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(byte)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u32(&mut self, id: u32) {
        self.write_u64(u64::from(id));
    }

    fn write_u64(&mut self, id: u64) {
        // Fibonacci hashing: spreads consecutive ids over the high bits hashbrown uses.
        self.0 = id.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn write_usize(&mut self, id: usize) {
        self.write_u64(id as u64);
    }
}

/// A map keyed by fiber id.
pub type IdMap<V> = HashMap<FiberId, V, BuildHasherDefault<IdHasher>>;

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
