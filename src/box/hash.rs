//! HASH index storage: an open-addressing table of opaque elements with caller-given hashes,
//! the counterpart of memtx's `light` hash. Owned by the TX thread (like every index).
//!
//! The table knows nothing of tuples or keys: the caller passes each element's `u32` hash
//! (computed from the index key) and an equality closure. The hash is stored beside the
//! element, so growth rehashes without calling back and a probe compares elements only when
//! the stored hashes match.
//!
//! ```text
//!   slot:    0    1    2    3    4    5    6    7   ...
//!   hashes: [h_a][h_b][ 0 ][h_c][h_d][h_e][ 0 ][h_f]  0 = vacant (hash 0 is stored as 1)
//!   items:  [ a ][ b ][   ][ c ][ d ][ e ][   ][ f ]  Option<T>: 8 bytes for a pointer
//! ```
//!
//! Layout and policy:
//! - hashes and elements in separate arrays: a probe walks a run comparing hashes, 16 to a
//!   cache line (a miss never touches an element), and reads the one element whose hash
//!   matches. Both addresses follow from the hash alone, so the probe prefetches the
//!   element's line at its start (`HashTable::prefetch_item`): the two cache misses overlap
//!   instead of following each other. (Keeping each slot's hash and element in one 12-byte
//!   cell, a line per slot, measured slower: a run then spans three times the bytes and
//!   pages, which costs misses much and hits as much as it saves.)
//! - linear probing with Robin Hood placement: along a run, an element is never further from
//!   its home slot than the element before it is from its own plus one, so a miss stops
//!   early and probe lengths stay short at high load;
//! - deletion shifts the rest of the run back a slot: no tombstones, so a long-lived table
//!   with churn does not degrade;
//! - the home slot is a multiply-shift range reduction of the (mixed) hash, which works for
//!   any capacity, so the table grows by a quarter instead of doubling: load stays between
//!   0.7 and 0.875, about 14-17 bytes per element with 8-byte elements (12 bytes per slot).
//!
//! Slots ([`Slot`]) are plain indices, so iteration in slot order is cheap, and a cursor is
//! valid until the next modification (see [`HashTable::version`]).

/// Smallest non-empty capacity: below it the growth steps would be tiny.
const CAPACITY_MIN: usize = 16;

/// Largest capacity: slot indices are `u32`, and multiply-shift needs at most 2^32 slots.
/// At 12 bytes per slot this is 24 GiB, far beyond what a memtx instance indexes.
const CAPACITY_MAX: usize = 1 << 31;

/// Maximum load as a fraction `LOAD_MAX_NUMERATOR / LOAD_DENOMINATOR` (7/8): Robin Hood keeps
/// successful probes around 4 slots here, and the stored hashes make them cheap.
const LOAD_MAX_NUMERATOR: usize = 7;
/// See [`LOAD_MAX_NUMERATOR`].
const LOAD_DENOMINATOR: usize = 8;

/// Shrink when the load drops under 1/8: after halving it is still under 1/4, far from the
/// growth threshold, so alternating inserts and deletes cannot thrash.
const SHRINK_DIVISOR: usize = 8;

/// Random slots [`HashTable::random`] tries before falling back to a scan; at the lowest
/// load (1/8) all of them miss with probability 0.875^64, about 2e-4.
const RANDOM_TRIES: usize = 64;

/// Odd constant of the hash mix (2^32 / golden ratio): spreads a weak caller hash (say a
/// small integer) over the high bits that the range reduction uses.
const MIX_MULTIPLIER: u32 = 0x9E37_79B9;

/// A cursor on one slot. Valid until the next modification of the table; a stale slot is
/// memory-safe to use (`get` and `next` return some element or `None`, never panic).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Slot(u32);

/// The stored form of a hash: never 0, which marks a vacant slot.
#[inline]
fn stored_hash(hash: u32) -> u32 {
    if hash == 0 { 1 } else { hash }
}

/// An open-addressing hash table; see the module docs.
///
/// Elements that `eq` says are equal are one element: inserting replaces.
pub struct HashTable<T> {
    /// Stored hash per slot (see [`stored_hash`]); 0 marks a vacant slot.
    hashes: Vec<u32>,
    /// Element per slot; `Some` exactly where the stored hash is non-zero.
    items: Vec<Option<T>>,
    /// Occupied slots.
    len: usize,
    /// Bumped by every modification; see [`Slot`].
    version: u64,
}

impl<T> Default for HashTable<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> HashTable<T> {
    /// An empty table; allocates nothing until the first insert.
    pub fn new() -> Self {
        Self {
            hashes: Vec::new(),
            items: Vec::new(),
            len: 0,
            version: super::container_epoch(),
        }
    }

    /// An empty table sized for `count` elements without growing (snapshot loads know it).
    pub fn with_capacity(count: usize) -> Self {
        let mut table = Self::new();
        table.reserve(count);
        table
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the table has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.hashes.len()
    }

    /// The modification counter: changes whenever an element is inserted, replaced or
    /// deleted, or the table is cleared or resized, so a cursor can tell its slot went stale.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Heap bytes of the slot arrays.
    pub fn memory_usage(&self) -> usize {
        self.hashes.capacity() * size_of::<u32>() + self.items.capacity() * size_of::<Option<T>>()
    }

    /// Removes every element and frees the slots.
    pub fn clear(&mut self) {
        self.version = self.version.wrapping_add(1);
        self.hashes = Vec::new();
        self.items = Vec::new();
        self.len = 0;
    }

    /// Makes room for `additional` more elements without growing in between.
    pub fn reserve(&mut self, additional: usize) {
        let needed = self.len.saturating_add(additional);
        if needed * LOAD_DENOMINATOR <= self.capacity() * LOAD_MAX_NUMERATOR {
            return;
        }
        // Geometric growth (by a quarter) keeps inserts amortized O(1).
        let capacity = needed
            .saturating_mul(LOAD_DENOMINATOR)
            .div_ceil(LOAD_MAX_NUMERATOR)
            .max(self.capacity() + self.capacity() / 4)
            .max(CAPACITY_MIN);
        self.resize(capacity);
    }

    // {{{ Lookup

    /// The element with this hash that `eq` accepts.
    pub fn find(&self, hash: u32, eq: impl Fn(&T) -> bool) -> Option<&T> {
        let slot = self.probe(stored_hash(hash), eq)?;
        self.items[slot].as_ref()
    }

    /// The slot of the element with this hash that `eq` accepts: the start of a
    /// "after this key in table order" scan (the legacy HASH iterator GT).
    pub fn position_of(&self, hash: u32, eq: impl Fn(&T) -> bool) -> Option<Slot> {
        self.probe(stored_hash(hash), eq)
            .map(|slot| Slot(slot as u32))
    }

    /// The slot holding the element with stored hash `stored` that `eq` accepts. A run is
    /// ordered by distance from home, so the probe stops at the first resident closer to
    /// its home than the probe is to `stored`'s.
    fn probe(&self, stored: u32, eq: impl Fn(&T) -> bool) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        let capacity = self.capacity();
        let mut slot = self.home(stored);
        self.prefetch_item(slot);
        for distance in 0..capacity {
            let resident = self.hashes[slot];
            if resident == 0 || self.distance(resident, slot) < distance {
                return None;
            }
            if resident == stored && self.items[slot].as_ref().is_some_and(&eq) {
                return Some(slot);
            }
            slot = self.next_slot(slot);
        }
        None
    }

    // }}}

    // {{{ Modification

    /// Inserts `item` with `hash`; an element that `eq(existing, &item)` accepts is replaced
    /// and returned.
    pub fn insert(&mut self, item: T, hash: u32, eq: impl Fn(&T, &T) -> bool) -> Option<T> {
        self.version = self.version.wrapping_add(1);
        self.reserve(1);
        let stored = stored_hash(hash);
        let capacity = self.capacity();
        let mut slot = self.home(stored);
        // A replace compares the element near home, a new element is written near home.
        self.prefetch_item(slot);
        for distance in 0..capacity {
            let resident = self.hashes[slot];
            if resident == 0 {
                self.hashes[slot] = stored;
                self.items[slot] = Some(item);
                self.len += 1;
                return None;
            }
            if resident == stored
                && let Some(existing) = self.items[slot].as_mut()
                && eq(existing, &item)
            {
                return Some(std::mem::replace(existing, item));
            }
            let resident_distance = self.distance(resident, slot);
            if resident_distance < distance {
                // Not further along (the run is ordered): take this slot, push the rest.
                self.displace(slot, stored, item, resident_distance);
                self.len += 1;
                return None;
            }
            slot = self.next_slot(slot);
        }
        unreachable!("hash: the load bound leaves a vacant slot");
    }

    /// Puts (`stored`, `item`) into the occupied `slot` and carries each evicted resident
    /// forward to the next slot whose resident is closer to home, until a vacant slot.
    fn displace(&mut self, slot: usize, stored: u32, item: T, distance: usize) {
        let mut slot = slot;
        let mut carried_hash = std::mem::replace(&mut self.hashes[slot], stored);
        let mut carried_item = self.items[slot].replace(item);
        let mut distance = distance;
        for _ in 0..self.capacity() {
            slot = self.next_slot(slot);
            distance += 1;
            let resident = self.hashes[slot];
            if resident == 0 {
                self.hashes[slot] = carried_hash;
                self.items[slot] = carried_item;
                return;
            }
            let resident_distance = self.distance(resident, slot);
            if resident_distance < distance {
                carried_hash = std::mem::replace(&mut self.hashes[slot], carried_hash);
                carried_item = std::mem::replace(&mut self.items[slot], carried_item);
                distance = resident_distance;
            }
        }
        unreachable!("hash: the load bound leaves a vacant slot");
    }

    /// Removes and returns the element with this hash that `eq` accepts.
    pub fn delete(&mut self, hash: u32, eq: impl Fn(&T) -> bool) -> Option<T> {
        let slot = self.probe(stored_hash(hash), eq)?;
        self.version = self.version.wrapping_add(1);
        let removed = self.items[slot].take();
        self.shift_back(slot);
        self.len -= 1;
        if self.capacity() > CAPACITY_MIN && self.len * SHRINK_DIVISOR < self.capacity() {
            self.resize((self.capacity() / 2).max(CAPACITY_MIN));
        }
        removed
    }

    /// Closes the hole at `slot` by moving the rest of its run back one slot, up to a
    /// vacant slot or an element already at home.
    fn shift_back(&mut self, slot: usize) {
        let mut hole = slot;
        for _ in 0..self.capacity() {
            let next = self.next_slot(hole);
            let resident = self.hashes[next];
            if resident == 0 || self.distance(resident, next) == 0 {
                break;
            }
            self.hashes[hole] = resident;
            self.items[hole] = self.items[next].take();
            hole = next;
        }
        self.hashes[hole] = 0;
        debug_assert!(self.items[hole].is_none());
    }

    /// Rebuilds the table with `capacity` slots (at least the load bound for `len`).
    ///
    /// The home slot is monotonic in the mixed hash, and a Robin Hood run keeps its elements
    /// in home order, so reading the old table from just after a vacant slot yields homes
    /// in order (up to ties). Most elements then go straight to `max(home, cursor)`, the end
    /// of the run being built; the rest (order inversions within ties, the wrap at the end
    /// of the new table) take the general placement.
    fn resize(&mut self, capacity: usize) {
        assert!(capacity <= CAPACITY_MAX, "hash: capacity bound reached");
        debug_assert!(self.len * LOAD_DENOMINATOR <= capacity * LOAD_MAX_NUMERATOR);
        self.version = self.version.wrapping_add(1);
        let old_hashes = std::mem::replace(&mut self.hashes, vec![0; capacity]);
        let mut old_items = std::mem::take(&mut self.items);
        self.items.reserve_exact(capacity);
        self.items.resize_with(capacity, || None);
        let old_capacity = old_hashes.len();
        let start = old_hashes
            .iter()
            .position(|&hash| hash == 0)
            .map_or(0, |vacant| vacant + 1);
        // Every occupied slot is before `cursor`; `last_home` is the greatest home placed,
        // that of the element at `cursor - 1`.
        let mut cursor = 0;
        let mut last_home = 0;
        for index in (start..old_capacity).chain(0..start) {
            let stored = old_hashes[index];
            let Some(item) = old_items[index].take() else {
                continue;
            };
            let home = self.home(stored);
            let slot = home.max(cursor);
            if (home >= cursor || home >= last_home) && slot < capacity {
                self.hashes[slot] = stored;
                self.items[slot] = Some(item);
                cursor = slot + 1;
                last_home = home;
                continue;
            }
            self.place(stored, item);
            // Before the end, the placement stopped at a vacant slot no later than `cursor`.
            if cursor < capacity && self.hashes[cursor] != 0 {
                cursor += 1;
            }
        }
    }

    /// Inserts an element known to be absent (a rehash): no equality calls.
    fn place(&mut self, stored: u32, item: T) {
        let mut slot = self.home(stored);
        for distance in 0..self.capacity() {
            let resident = self.hashes[slot];
            if resident == 0 {
                self.hashes[slot] = stored;
                self.items[slot] = Some(item);
                return;
            }
            let resident_distance = self.distance(resident, slot);
            if resident_distance < distance {
                self.displace(slot, stored, item, resident_distance);
                return;
            }
            slot = self.next_slot(slot);
        }
        unreachable!("hash: the load bound leaves a vacant slot");
    }

    // }}}

    // {{{ Slots and iteration

    /// The first occupied slot in table order.
    pub fn first(&self) -> Option<Slot> {
        self.occupied_from(0)
    }

    /// The occupied slot after `slot` in table order.
    pub fn next(&self, slot: Slot) -> Option<Slot> {
        self.occupied_from(slot.0 as usize + 1)
    }

    /// The element in `slot`.
    pub fn get(&self, slot: Slot) -> Option<&T> {
        self.items.get(slot.0 as usize)?.as_ref()
    }

    /// Some element chosen by `seed`: uniform over elements (random slots until an occupied
    /// one, bounded by `RANDOM_TRIES`, then the next occupied slot).
    pub fn random(&self, seed: u64) -> Option<&T> {
        if self.len == 0 {
            return None;
        }
        let mut state = seed;
        let mut slot = 0;
        for _ in 0..RANDOM_TRIES {
            state = crate::r#box::mix_seed(state);
            slot = (((state >> 32) * self.capacity() as u64) >> 32) as usize;
            if let Some(item) = self.items[slot].as_ref() {
                return Some(item);
            }
        }
        let slot = self.occupied_from(slot).or_else(|| self.first())?;
        self.get(slot)
    }

    /// All elements in table order.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.items.iter().flatten()
    }

    /// The first occupied slot at or after `from`.
    fn occupied_from(&self, from: usize) -> Option<Slot> {
        let offset = self
            .hashes
            .get(from..)?
            .iter()
            .position(|&hash| hash != 0)?;
        Some(Slot((from + offset) as u32))
    }

    // }}}

    // {{{ Slot arithmetic

    /// The home slot of a stored hash: multiply-shift of the mixed hash into `0..capacity`.
    #[inline]
    fn home(&self, stored: u32) -> usize {
        let mixed = stored.wrapping_mul(MIX_MULTIPLIER) as u64;
        ((mixed * self.capacity() as u64) >> 32) as usize
    }

    /// How far `slot` is past the home of `stored`, wrapping around the end.
    #[inline]
    fn distance(&self, stored: u32, slot: usize) -> usize {
        let home = self.home(stored);
        if slot >= home {
            slot - home
        } else {
            slot + self.capacity() - home
        }
    }

    /// Starts loading the cache line of `slot`'s element. A probe reads the element only
    /// once the hash in its slot matches, which makes its cache miss follow the hash's; the
    /// address is known from the start, so fetching early overlaps the two. The match is
    /// usually within a few slots of home, mostly on home's line. A no-op off x86-64.
    #[inline(always)]
    fn prefetch_item(&self, slot: usize) {
        let item = self.items.as_ptr().wrapping_add(slot);
        super::prefetch(item.cast(), 1);
    }

    /// The slot after `slot`, wrapping around the end.
    #[inline]
    fn next_slot(&self, slot: usize) -> usize {
        if slot + 1 == self.capacity() {
            0
        } else {
            slot + 1
        }
    }

    // }}}

    /// Checks every invariant, with `hash_of` recomputing an element's hash; panics on the
    /// first violation. O(n · probe): for tests and debugging.
    pub fn check_invariants(&self, hash_of: impl Fn(&T) -> u32) {
        let capacity = self.capacity();
        assert_eq!(self.items.len(), capacity);
        assert!(capacity == 0 || (CAPACITY_MIN..=CAPACITY_MAX).contains(&capacity));
        assert!(self.len * LOAD_DENOMINATOR <= capacity * LOAD_MAX_NUMERATOR);
        let mut occupied = 0;
        for slot in 0..capacity {
            let stored = self.hashes[slot];
            assert_eq!(
                stored != 0,
                self.items[slot].is_some(),
                "hash: slot {slot} state"
            );
            let Some(item) = self.items[slot].as_ref() else {
                continue;
            };
            occupied += 1;
            assert_eq!(
                stored,
                stored_hash(hash_of(item)),
                "hash: stored hash at {slot}"
            );
            let distance = self.distance(stored, slot);
            if distance > 0 {
                let prev = if slot == 0 { capacity - 1 } else { slot - 1 };
                let before = self.hashes[prev];
                assert_ne!(before, 0, "hash: gap before {slot}");
                assert!(
                    self.distance(before, prev) + 1 >= distance,
                    "hash: run order"
                );
            }
            let found = self.position_of(hash_of(item), |other| std::ptr::eq(other, item));
            assert_eq!(
                found,
                Some(Slot(slot as u32)),
                "hash: unreachable at {slot}"
            );
        }
        assert_eq!(occupied, self.len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::collections::HashMap;
    use std::rc::Rc;
    use std::time::Instant;

    use crate::r#box::TestRng as Rng;

    /// Elements of the model tests: (key, payload), equal by key, so a replace is visible
    /// through the payload.
    type Pair = (u64, u64);

    /// A hash with plenty of collisions and long runs: only 61 distinct values, one of them 0.
    fn weak_hash(key: u64) -> u32 {
        (key % 61) as u32
    }

    /// A decent hash (the low bits of a mix) to reach large tables.
    fn good_hash(key: u64) -> u32 {
        crate::r#box::mix_seed(key) as u32
    }

    /// Random inserts, replaces, deletes and lookups against a HashMap, checking invariants
    /// after every step; growth and shrink phases alternate.
    fn run_model(seed: u64, steps: usize, key_space: u64, hash: fn(u64) -> u32) {
        let mut table = HashTable::new();
        let mut model = HashMap::new();
        let mut rng = Rng::new(seed);
        let mut capacity_max = 0;
        for step in 0..steps {
            let key = rng.below(key_space);
            let version = table.version();
            let grow = (step / 700) % 2 == 0;
            let op = rng.below(10);
            if op < 5 && grow || op < 2 {
                let payload = rng.next();
                let old = table.insert((key, payload), hash(key), |a: &Pair, b: &Pair| a.0 == b.0);
                assert_eq!(old.map(|(_, v)| v), model.insert(key, payload));
                assert_ne!(table.version(), version);
            } else if op < 9 {
                let old = table.delete(hash(key), |a: &Pair| a.0 == key);
                let expected = model.remove(&key);
                assert_eq!(old.map(|(_, v)| v), expected);
                assert_eq!(table.version() != version, expected.is_some());
            } else {
                let found = table
                    .find(hash(key), |a: &Pair| a.0 == key)
                    .map(|&(_, v)| v);
                assert_eq!(found, model.get(&key).copied());
                assert_eq!(table.version(), version);
            }
            table.check_invariants(|item: &Pair| hash(item.0));
            assert_eq!(table.len(), model.len());
            capacity_max = capacity_max.max(table.capacity());
        }
        let mut items: Vec<Pair> = table.iter().copied().collect();
        items.sort_unstable();
        let mut expected: Vec<Pair> = model.into_iter().collect();
        expected.sort_unstable();
        assert_eq!(items, expected);
        assert!(capacity_max > CAPACITY_MIN);
    }

    #[test]
    fn model_weak_hash() {
        for seed in 0..6 {
            run_model(seed, 4000, 300, weak_hash);
        }
    }

    #[test]
    fn model_good_hash() {
        for seed in 0..6 {
            run_model(seed, 6000, 3000, good_hash);
        }
    }

    /// Every element with one hash (including the vacant marker 0 and u32::MAX): one long
    /// run, wrapping around the end of the table.
    #[test]
    fn single_hash_values() {
        for hash in [0, 1, u32::MAX, 0x8000_0000] {
            let mut table = HashTable::new();
            for key in 0..200u64 {
                assert!(
                    table
                        .insert((key, 0), hash, |a: &Pair, b: &Pair| a.0 == b.0)
                        .is_none()
                );
            }
            table.check_invariants(|_| hash);
            for key in (0..200u64).step_by(3) {
                assert_eq!(table.delete(hash, |a: &Pair| a.0 == key), Some((key, 0)));
                table.check_invariants(|_| hash);
            }
            for key in 0..200u64 {
                let found = table.find(hash, |a: &Pair| a.0 == key).is_some();
                assert_eq!(found, key % 3 != 0);
            }
        }
    }

    /// Slot order covers every element once; `position_of` then `next` continues that order
    /// after a given key (the legacy HASH GT iterator).
    #[test]
    fn slots_in_table_order() {
        let mut table = HashTable::new();
        assert_eq!(table.first(), None);
        for key in 0..1000u64 {
            table.insert((key, key), good_hash(key), |a: &Pair, b: &Pair| a.0 == b.0);
        }
        let mut order = Vec::new();
        let mut slot = table.first();
        while let Some(current) = slot {
            order.push(table.get(current).unwrap().0);
            slot = table.next(current);
        }
        assert_eq!(order.len(), 1000);
        let iterated: Vec<u64> = table.iter().map(|p| p.0).collect();
        assert_eq!(order, iterated);
        for (index, &key) in order.iter().enumerate().step_by(37) {
            let start = table
                .position_of(good_hash(key), |a: &Pair| a.0 == key)
                .unwrap();
            let mut after = Vec::new();
            let mut slot = table.next(start);
            while let Some(current) = slot {
                after.push(table.get(current).unwrap().0);
                slot = table.next(current);
            }
            assert_eq!(after, order[index + 1..]);
        }
        assert_eq!(
            table.position_of(good_hash(5000), |a: &Pair| a.0 == 5000),
            None
        );
        // A stale slot never panics.
        let last = Slot(table.capacity() as u32 - 1);
        table.clear();
        assert_eq!(table.get(last), None);
        assert_eq!(table.next(last), None);
        assert_eq!(table.iter().count(), 0);
        table.check_invariants(|p: &Pair| good_hash(p.0));
    }

    /// A scan that deletes what it visits (Lua `pairs()` with `delete`): the run behind a
    /// deleted element shifts back into its slot, so the scan stays on that slot and skips
    /// nothing; an element shifted across the table's end may be seen twice. A resize
    /// (a version change the delete alone doesn't explain) restarts the scan.
    #[test]
    fn scan_while_deleting() {
        let mut table = HashTable::new();
        for key in 0..5000u64 {
            table.insert((key, 0), good_hash(key), |a: &Pair, b: &Pair| a.0 == b.0);
        }
        let mut visited = std::collections::HashSet::new();
        let mut slot = table.first();
        for _ in 0..20_000 {
            let Some(current) = slot else { break };
            let key = table.get(current).unwrap().0;
            visited.insert(key);
            if key % 16 == 0 {
                slot = table.next(current);
                continue;
            }
            let capacity = table.capacity();
            table.delete(good_hash(key), |a: &Pair| a.0 == key);
            slot = if table.capacity() != capacity {
                table.first()
            } else {
                table
                    .get(current)
                    .map(|_| current)
                    .or_else(|| table.next(current))
            };
        }
        assert_eq!(slot, None, "the scan ends");
        assert_eq!(visited.len(), 5000, "nothing skipped");
        assert_eq!(table.len(), 5000 / 16 + 1);
        assert!(table.iter().all(|p| p.0 % 16 == 0));
        table.check_invariants(|p: &Pair| good_hash(p.0));
    }

    #[test]
    fn random_is_roughly_uniform() {
        let mut table = HashTable::new();
        assert_eq!(table.random(3), None);
        for key in 0..20u64 {
            table.insert((key, 0), good_hash(key), |a: &Pair, b: &Pair| a.0 == b.0);
        }
        let mut hits = [0u32; 20];
        for seed in 0..100_000u64 {
            hits[table.random(seed).unwrap().0 as usize] += 1;
        }
        for hit in hits {
            assert!((4000..6000).contains(&hit), "{hits:?}");
        }
    }

    /// Replaces return the old element; deleted and replaced elements are not retained.
    #[test]
    fn replace_and_no_retention() {
        let same = |a: &Rc<Pair>, b: &Rc<Pair>| a.0 == b.0;
        let mut table = HashTable::new();
        let mut removed = Vec::new();
        for key in 0..500u64 {
            assert!(
                table
                    .insert(Rc::new((key, 0)), weak_hash(key), same)
                    .is_none()
            );
        }
        for key in 0..500u64 {
            let old = table
                .insert(Rc::new((key, 1)), weak_hash(key), same)
                .unwrap();
            assert_eq!(*old, (key, 0));
            removed.push(old);
        }
        for key in (0..500u64).filter(|k| k % 2 == 0) {
            removed.push(
                table
                    .delete(weak_hash(key), |a: &Rc<Pair>| a.0 == key)
                    .unwrap(),
            );
        }
        table.check_invariants(|p: &Rc<Pair>| weak_hash(p.0));
        assert!(removed.iter().all(|old| Rc::strong_count(old) == 1));
        assert!(table.iter().all(|p| p.1 == 1 && p.0 % 2 == 1));
    }

    /// Growth, shrink and reserve keep the load within bounds.
    #[test]
    fn load_stays_bounded() {
        let mut table = HashTable::with_capacity(1000);
        let reserved = table.capacity();
        assert!(reserved * 7 >= 1000 * 8);
        for key in 0..1000u64 {
            table.insert(key, good_hash(key), |a: &u64, b: &u64| a == b);
        }
        assert_eq!(table.capacity(), reserved, "reserved capacity was enough");
        for key in 1000..100_000u64 {
            table.insert(key, good_hash(key), |a: &u64, b: &u64| a == b);
            let load = table.len() as f64 / table.capacity() as f64;
            assert!(
                load <= 0.875 && (key < 2000 || load > 0.69),
                "{load} at {key}"
            );
        }
        table.check_invariants(|&k| good_hash(k));
        for key in 0..99_990u64 {
            table.delete(good_hash(key), |a: &u64| *a == key);
        }
        assert!(table.capacity() <= 160, "shrunk to {}", table.capacity());
        table.check_invariants(|&k| good_hash(k));
        for key in 99_990..100_000u64 {
            assert_eq!(table.delete(good_hash(key), |a: &u64| *a == key), Some(key));
        }
        assert!(table.is_empty());
        assert_eq!(table.capacity(), CAPACITY_MIN);
    }

    /// A million pointer-sized elements: every one found, memory per element within the
    /// light-like budget (12-byte slots at load 0.7..0.875).
    #[test]
    fn million_elements() {
        use std::num::NonZeroU64;
        const COUNT: u64 = 1_000_000;
        let element = |key: u64| NonZeroU64::new(key + 1).unwrap();
        let same = |a: &NonZeroU64, b: &NonZeroU64| a == b;
        let mut table = HashTable::new();
        for key in 0..COUNT {
            assert!(table.insert(element(key), good_hash(key), same).is_none());
        }
        table.check_invariants(|e| good_hash(e.get() - 1));
        for key in 0..COUNT {
            let found = table.find(good_hash(key), |e| *e == element(key));
            assert_eq!(found, Some(&element(key)));
        }
        let bytes = table.memory_usage() as f64 / COUNT as f64;
        assert!((13.7..=17.2).contains(&bytes), "{bytes} bytes per element");
        for key in (0..COUNT).step_by(2) {
            let removed = table.delete(good_hash(key), |e| *e == element(key));
            assert_eq!(removed, Some(element(key)));
        }
        table.check_invariants(|e| good_hash(e.get() - 1));
        assert_eq!(table.len(), COUNT as usize / 2);
    }

    /// An element that counts its drops: a leak leaves the count short, a double drop
    /// pushes it past the number made.
    struct Tracked {
        key: u64,
        drops: Rc<Cell<usize>>,
    }

    impl Drop for Tracked {
        fn drop(&mut self) {
            self.drops.set(self.drops.get() + 1);
        }
    }

    /// Every element is dropped exactly once, whether replaced, deleted, moved by growth or
    /// shrink, cleared, or left in the table when it is dropped.
    #[test]
    fn drops_each_element_once() {
        let drops = Rc::new(Cell::new(0));
        let made = Cell::new(0);
        let tracked = |key: u64| {
            made.set(made.get() + 1);
            Tracked {
                key,
                drops: drops.clone(),
            }
        };
        let same = |a: &Tracked, b: &Tracked| a.key == b.key;
        let hash = |key: u64| weak_hash(key) ^ good_hash(key % 7);
        let mut table = HashTable::new();
        for key in 0..3000 {
            assert!(table.insert(tracked(key), hash(key), same).is_none());
        }
        assert_eq!(drops.get(), 0, "growth moves, never drops");
        for key in (0..3000).step_by(3) {
            let old = table.insert(tracked(key), hash(key), same).unwrap();
            assert_eq!(old.key, key);
        }
        assert_eq!(drops.get(), 1000, "each replaced element once");
        for key in (0..3000).filter(|key| key % 10 != 0) {
            assert_eq!(table.delete(hash(key), |e| e.key == key).unwrap().key, key);
            assert!(table.delete(hash(key), |e| e.key == key).is_none());
        }
        assert_eq!(table.len(), 300);
        assert!(table.capacity() < 3000, "shrunk");
        assert_eq!(drops.get(), made.get() - table.len());
        table.check_invariants(|e| hash(e.key));
        table.clear();
        assert_eq!(drops.get(), made.get(), "clear drops the rest");
        for key in 0..100 {
            table.insert(tracked(key), hash(key), same);
        }
        assert_eq!(drops.get(), made.get() - 100);
        drop(table);
        assert_eq!(drops.get(), made.get(), "dropping the table drops the rest");
    }

    /// The slot arrays hold 12 bytes per slot with pointer-sized elements, and
    /// `memory_usage` counts exactly them.
    #[test]
    fn twelve_bytes_per_slot() {
        assert_eq!(size_of::<Option<Box<u64>>>(), 8);
        let mut table = HashTable::new();
        for key in 0..10_000u64 {
            table.insert(Box::new(key), good_hash(key), |a, b| a == b);
            assert_eq!(table.memory_usage(), table.capacity() * 12);
        }
        let reserved = HashTable::<Box<u64>>::with_capacity(10_000);
        assert_eq!(reserved.memory_usage(), reserved.capacity() * 12);
    }

    /// Nanoseconds per operation with a tuple-like element (a pointer to the key on the heap,
    /// so `eq` pays the dereference): a million keys 1..=N inserted into a growing table,
    /// then looked up in order, in a shuffled order, and absent keys; best of a few rounds.
    /// Run with `cargo test --release --lib box::hash::tests::bench_lookup -- --ignored
    /// --nocapture`.
    #[test]
    #[ignore]
    fn bench_lookup() {
        const COUNT: u64 = 1_000_000;
        const ROUNDS: usize = 7;
        let mut shuffled: Vec<u64> = (1..=COUNT).collect();
        let mut rng = Rng::new(7);
        for index in (1..shuffled.len()).rev() {
            shuffled.swap(index, rng.below(index as u64 + 1) as usize);
        }
        let ns = |elapsed: std::time::Duration| elapsed.as_nanos() as f64 / COUNT as f64;
        let (mut insert, mut in_order, mut random, mut miss) =
            (f64::MAX, f64::MAX, f64::MAX, f64::MAX);
        let mut load = 0.0;
        for _ in 0..ROUNDS {
            let elements: Vec<Box<u64>> = (1..=COUNT).map(Box::new).collect();
            let mut table = HashTable::new();
            let start = Instant::now();
            for element in elements {
                let hash = good_hash(*element);
                table.insert(element, hash, |a, b| **a == **b);
            }
            insert = insert.min(ns(start.elapsed()));
            let start = Instant::now();
            let mut found = 0u64;
            for key in 1..=COUNT {
                found += table
                    .find(good_hash(key), |e| **e == key)
                    .map_or(0, |e| **e);
            }
            in_order = in_order.min(ns(start.elapsed()));
            assert_eq!(found, COUNT * (COUNT + 1) / 2);
            let start = Instant::now();
            let mut found = 0u64;
            for &key in &shuffled {
                found += table
                    .find(good_hash(key), |e| **e == key)
                    .map_or(0, |e| **e);
            }
            random = random.min(ns(start.elapsed()));
            assert_eq!(found, COUNT * (COUNT + 1) / 2);
            let start = Instant::now();
            let mut found = 0;
            for key in COUNT + 1..=2 * COUNT {
                found += usize::from(table.find(good_hash(key), |e| **e == key).is_some());
            }
            miss = miss.min(ns(start.elapsed()));
            assert_eq!(found, 0);
            load = table.len() as f64 / table.capacity() as f64;
        }
        println!(
            "hash (load {load:.3}): insert {insert:.1} ns, find in order {in_order:.1} ns, \
             find shuffled {random:.1} ns, miss {miss:.1} ns"
        );
    }

    /// Throughput and memory with 8-byte pointer elements; run with
    /// `cargo test --release --lib box::hash -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn bench_hash() {
        const COUNT: usize = 1_000_000;
        let mut rng = Rng::new(1);
        let keys: Vec<u64> = (0..COUNT).map(|_| rng.next()).collect();
        let elements: Vec<Rc<u64>> = keys.iter().map(|&k| Rc::new(k)).collect();
        let same = |a: &Rc<u64>, b: &Rc<u64>| a == b;
        let mut table = HashTable::new();
        let start = Instant::now();
        for element in &elements {
            table.insert(element.clone(), good_hash(**element), same);
        }
        let insert = start.elapsed().as_secs_f64();
        let start = Instant::now();
        let found = keys
            .iter()
            .filter(|&&key| {
                table
                    .find(good_hash(key), |e: &Rc<u64>| **e == key)
                    .is_some()
            })
            .count();
        let find = start.elapsed().as_secs_f64();
        assert_eq!(found, COUNT);
        let start = Instant::now();
        let misses = keys
            .iter()
            .filter(|&&key| {
                table
                    .find(good_hash(!key), |e: &Rc<u64>| **e == !key)
                    .is_some()
            })
            .count();
        let miss = start.elapsed().as_secs_f64();
        let bytes = table.memory_usage() as f64 / COUNT as f64;
        let start = Instant::now();
        for &key in &keys {
            table.delete(good_hash(key), |e: &Rc<u64>| **e == key);
        }
        let delete = start.elapsed().as_secs_f64();
        println!(
            "hash: insert {:.2} M/s, find {:.2} M/s, miss {:.2} M/s ({misses}), delete {:.2} M/s, \
             {bytes:.2} bytes/element",
            COUNT as f64 / insert / 1e6,
            COUNT as f64 / find / 1e6,
            COUNT as f64 / miss / 1e6,
            COUNT as f64 / delete / 1e6,
        );
        let mut reserved = HashTable::with_capacity(COUNT);
        let start = Instant::now();
        for element in &elements {
            reserved.insert(element.clone(), good_hash(**element), same);
        }
        println!(
            "hash: insert into a reserved table {:.2} M/s",
            COUNT as f64 / start.elapsed().as_secs_f64() / 1e6
        );
        let mut std_map = std::collections::HashSet::new();
        let start = Instant::now();
        for element in &elements {
            std_map.insert(element.clone());
        }
        let insert = start.elapsed().as_secs_f64();
        let start = Instant::now();
        let found = keys.iter().filter(|key| std_map.contains(*key)).count();
        let find = start.elapsed().as_secs_f64();
        assert_eq!(found, COUNT);
        println!(
            "std HashSet<Rc<u64>> (SipHash): insert {:.2} M/s, find {:.2} M/s",
            COUNT as f64 / insert / 1e6,
            COUNT as f64 / find / 1e6,
        );
    }
}
