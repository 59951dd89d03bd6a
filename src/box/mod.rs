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

/// Starts loading the cache lines of `bytes` bytes from `start` into the cache, so a load
/// that comes later overlaps its miss with other work. A prefetch never faults and is no
/// access in the memory model, so any address is fine. A no-op off x86-64.
#[inline(always)]
pub(crate) fn prefetch(start: *const u8, bytes: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        const LINE: usize = 64;
        let mut offset = 0;
        while offset < bytes {
            // SAFETY: `_mm_prefetch` needs only SSE, part of every x86-64 CPU, and reads
            // nothing (see above); `wrapping_add` computes an address without using it.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(start.wrapping_add(offset).cast()) }
            offset += LINE;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (start, bytes);
}

/// SplitMix64's finalizer: a well-spread 64-bit value from any seed (`index:random`
/// positions, test generators).
pub(crate) fn mix_seed(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A deterministic xorshift generator for tests, so failures reproduce from the seed.
#[cfg(test)]
pub(crate) struct TestRng(u64);

#[cfg(test)]
impl TestRng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(mix_seed(seed) | 1)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub(crate) fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}
