//! Tuples: immutable MessagePack arrays shared by reference.
//!
//! Plain values: created and dropped on the TX thread, read by the snapshot thread through
//! a frozen list (hence the atomic count). One allocation holds the reference count, the
//! size and the bytes, and a `Tuple` is one pointer, so a HASH entry holds 8 bytes of it (a
//! TREE entry 16: the pointer and the hint of the key, see `index::Hinted`):
//!
//! ```text
//!   ptr ─▶ ┌──────────────┬──────────────┬───────────────────────────┐
//!          │ refs: u32    │ bsize: u32   │ data: bsize bytes (array) │
//!          └──────────────┴──────────────┴───────────────────────────┘
//!          0              4              8 = DATA_OFFSET
//! ```
//!
//! A tuple in an index, in a reply and in a snapshot read view is the same allocation.

use std::alloc::{Layout, alloc, dealloc};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering, fence};

/// The header before the data.
#[repr(C)]
struct Header {
    refs: AtomicU32,
    bsize: u32,
}

/// Offset of the data: right after the header.
const DATA_OFFSET: usize = std::mem::size_of::<Header>();

/// Bytes held by all live tuples (header and data), for `box.slab.info()` and the memory
/// limit of `slab_alloc_arena`.
static TUPLE_BYTES: AtomicUsize = AtomicUsize::new(0);

/// Live tuples.
static TUPLE_COUNT: AtomicUsize = AtomicUsize::new(0);

/// Bytes all live tuples hold.
pub fn bytes_used() -> usize {
    TUPLE_BYTES.load(Ordering::Relaxed)
}

/// How many tuples are alive.
pub fn count() -> usize {
    TUPLE_COUNT.load(Ordering::Relaxed)
}

/// A reference to an immutable tuple.
pub struct Tuple {
    ptr: NonNull<Header>,
}

// SAFETY: the bytes never change after creation and the count is atomic, so a tuple may be
// shared with and dropped on another thread (the snapshot writer's read view).
unsafe impl Send for Tuple {}
// SAFETY: as above; `&Tuple` only gives read access to immutable bytes.
unsafe impl Sync for Tuple {}

fn layout_for(bsize: usize) -> Layout {
    // The size fits: callers cap bsize far below isize::MAX (the tuple size limit).
    Layout::from_size_align(DATA_OFFSET + bsize, std::mem::align_of::<Header>())
        .expect("tuple layout")
}

impl Tuple {
    /// A tuple holding a copy of `data`, which must be a MessagePack array (the caller
    /// validates it; a tuple is never checked again).
    pub fn new(data: &[u8]) -> Tuple {
        assert!(data.len() <= u32::MAX as usize, "tuple larger than 4 GiB");
        let layout = layout_for(data.len());
        // SAFETY: the layout has a non-zero size (the header); the header is initialised
        // before anything reads it and the data copied into the bytes right after it.
        unsafe {
            let raw = alloc(layout);
            let Some(ptr) = NonNull::new(raw.cast::<Header>()) else {
                std::alloc::handle_alloc_error(layout);
            };
            ptr.as_ptr().write(Header {
                refs: AtomicU32::new(1),
                bsize: data.len() as u32,
            });
            std::ptr::copy_nonoverlapping(data.as_ptr(), raw.add(DATA_OFFSET), data.len());
            TUPLE_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
            TUPLE_COUNT.fetch_add(1, Ordering::Relaxed);
            Tuple { ptr }
        }
    }

    fn header(&self) -> &Header {
        // SAFETY: `ptr` points to a live header while this reference exists.
        unsafe { self.ptr.as_ref() }
    }

    /// The MessagePack bytes of the tuple.
    pub fn data(&self) -> &[u8] {
        let bsize = self.header().bsize as usize;
        // SAFETY: `bsize` bytes were copied right after the header at creation and never
        // change while the allocation lives.
        unsafe {
            std::slice::from_raw_parts(self.ptr.as_ptr().cast::<u8>().add(DATA_OFFSET), bsize)
        }
    }

    /// Starts loading the header and the first bytes of the data into the cache, for a
    /// read that comes a little later (see `r#box::prefetch`).
    #[inline]
    pub fn prefetch(&self) {
        super::prefetch(self.ptr.as_ptr().cast(), DATA_OFFSET + 64);
    }

    /// Size of the MessagePack data in bytes (`tuple:bsize()`).
    pub fn bsize(&self) -> usize {
        self.header().bsize as usize
    }

    /// Whether two references point to the same tuple.
    pub fn ptr_eq(a: &Tuple, b: &Tuple) -> bool {
        a.ptr == b.ptr
    }

    /// How many references exist (tests and debugging).
    pub fn ref_count(&self) -> u32 {
        self.header().refs.load(Ordering::Relaxed)
    }
}

impl Clone for Tuple {
    fn clone(&self) -> Tuple {
        let previous = self.header().refs.fetch_add(1, Ordering::Relaxed);
        // A count near the top means a leak of billions of references: stop before wrapping.
        assert!(previous < u32::MAX / 2, "tuple reference count overflow");
        Tuple { ptr: self.ptr }
    }
}

impl Drop for Tuple {
    fn drop(&mut self) {
        if self.header().refs.fetch_sub(1, Ordering::Release) != 1 {
            return;
        }
        // Make every other thread's last use happen before the free.
        fence(Ordering::Acquire);
        let layout = layout_for(self.bsize());
        TUPLE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        TUPLE_COUNT.fetch_sub(1, Ordering::Relaxed);
        // SAFETY: this was the last reference; the allocation was made with this layout.
        unsafe { dealloc(self.ptr.as_ptr().cast::<u8>(), layout) };
    }
}

impl std::fmt::Debug for Tuple {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tuple({:02x?})", self.data())
    }
}

impl PartialEq for Tuple {
    /// Tuples are equal when their bytes are.
    fn eq(&self, other: &Tuple) -> bool {
        Tuple::ptr_eq(self, other) || self.data() == other.data()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tuple_is_one_pointer_and_shares_its_bytes() {
        assert_eq!(std::mem::size_of::<Tuple>(), 8);
        assert_eq!(std::mem::size_of::<Option<Tuple>>(), 8);
        let data = [0x92, 0x01, 0xa1, b'x'];
        let tuple = Tuple::new(&data);
        assert_eq!(tuple.data(), &data);
        assert_eq!(tuple.bsize(), 4);
        let copy = tuple.clone();
        assert!(Tuple::ptr_eq(&tuple, &copy));
        assert_eq!(tuple.ref_count(), 2);
        drop(copy);
        assert_eq!(tuple.ref_count(), 1);
        assert_eq!(Tuple::new(&data), tuple);
    }

    #[test]
    fn shared_across_threads_and_freed_once() {
        let tuple = Tuple::new(&[0x91, 0x05]);
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let tuple = tuple.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        let copy = tuple.clone();
                        assert_eq!(copy.data(), &[0x91, 0x05]);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(tuple.ref_count(), 1);
        let empty = Tuple::new(&[0x90]);
        assert_eq!(empty.data(), &[0x90]);
    }
}
