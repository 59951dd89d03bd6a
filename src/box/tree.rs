//! TREE index storage: a B+* tree of opaque elements, the counterpart of memtx's `bps_tree`.
//! Owned by the TX thread (like every index); nothing here is shared across threads.
//!
//! The tree knows nothing of tuples or keys. Elements are a generic `T: Clone` (in practice a
//! tuple pointer and the hint of its key, 16 bytes: see `index::Hinted`), and every operation
//! takes the ordering as a closure, because the order is defined by an index key definition
//! held elsewhere.
//!
//! ```text
//!                 inner (root)   maxes:    [ m0      m1      m2 ]   m_i = max of subtree i
//!                                children: [ c0      c1      c2 ]
//!                                counts:   [ n0      n1      n2 ]   n_i = elements in subtree i
//!                               /            |              \
//!   leaves:   [e e e e e .. ] <-> [e e e e .. ] <-> [e e e e e .. ]   sorted, doubly linked
//! ```
//!
//! Nodes live in two arenas (`Vec<Leaf>`, `Vec<Inner>`) addressed by `u32` ids, so there is no
//! `unsafe`, no per-node `Box`, and a [`Position`] is two plain integers. Every inner entry keeps
//! the max element of its child (a clone of a leaf element, so a search needs nothing but the
//! element comparator) and the number of elements below it (for ranks, `count` and `random`).
//!
//! Density (memory per element is about `size_of::<T>() / fill` plus ~1 byte of arenas and
//! inner nodes):
//! - an insert into a full node first shifts elements into a sibling with room, or through a
//!   full sibling into the next one; when none has room it splits three full siblings into
//!   four (3/4 full each), else two into three (B*). Random inserts leave leaves ~92% full;
//! - appending past the global max into the full last leaf starts a new leaf instead, so
//!   ascending keys (the usual primary key) fill leaves to 100%;
//! - a delete that leaves a node under 2/3 full merges three siblings into two, or two into
//!   one, when they fit; a node under 1/2 borrows from a sibling.
//!
//! Unlike memtx's bps_tree, neighbours are siblings under one parent only, which keeps every
//! count and separator update local to that parent.
//!
//! Invariant: every node that is neither the root nor on the right spine is at least half
//! full; right-spine nodes (the growing end of ascending inserts) are merely non-empty.
//!
//! Searches inside a node bisect without branches, on a coarse order (a hint) when the
//! order has one, after starting to load the node (see `bound_index` and [`Order`]);
//! several searches at once descend in step, prefetching each other's next nodes
//! ([`BpsTree::bounds_many`]).

use std::cmp::Ordering;
use std::mem;

/// The "no node" link: the root of an empty tree and the ends of the leaf list.
const NIL: u32 = u32::MAX;

/// Bytes of elements per leaf: 512 like memtx's `BPS_TREE_BLOCK_SIZE`, so 32 hinted tuples.
/// Fill, not node size, decides memory per element; 512 bytes keeps the per-insert shift
/// within a leaf to a few cache lines.
const LEAF_BYTES: usize = 512;

/// Bounds of the leaf capacity whatever `size_of::<T>()` is: below 16 the tree grows tall,
/// above 256 inserts spend their time shifting elements.
const LEAF_CAPACITY_MIN: usize = 16;
/// See [`LEAF_CAPACITY_MIN`].
const LEAF_CAPACITY_MAX: usize = 256;

/// Children per inner node. A wide fanout keeps the tree 3-4 levels deep at 10^7 elements;
/// the per-level costs that are linear in it (summing counts) are a few dozen adds.
const INNER_CAPACITY: usize = 64;

/// The smallest capacity the fill rules work with (half of it must be at least 2).
const NODE_CAPACITY_MIN: usize = 4;
/// The largest capacity accepted by [`BpsTree::with_node_capacities`]: offsets fit a `u32`,
/// and shifting more than this per insert would be slow.
const NODE_CAPACITY_MAX: usize = 4096;

/// Most siblings an overflow spreads over: three full ones and a new one (3 into 4).
const GROUP_MAX: usize = 4;

/// Inner levels above the leaves. Non-spine inner nodes have at least 2 children, and node
/// ids are `u32`, so a well-formed tree never gets near this even at the smallest capacity.
const HEIGHT_MAX: usize = 48;

/// Most searches [`BpsTree::bounds_many`] runs in step: a round then issues up to 16 nodes'
/// worth of prefetches, about what a core keeps in flight (8 measured slower).
pub const BOUNDS_BATCH_MAX: usize = 16;

/// Which end of an equal range a search finds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bound {
    /// The first element not less than the key.
    Lower,
    /// The first element greater than the key.
    Upper,
}

/// How a search orders elements against a key. Any `Fn(&T, &K) -> Ordering` is one (its
/// result is the exact order); an order that can also tell most elements apart from
/// something the element holds, such as a hint of its key, says so with `COARSE` and
/// [`Order::coarse`], and searches bisect on that first, without branches.
pub trait Order<T, K: ?Sized> {
    /// Whether [`Order::coarse`] is worth asking.
    const COARSE: bool = false;

    /// The order of `item` against `key`.
    fn exact(&self, item: &T, key: &K) -> Ordering;

    /// A cheaper order that `exact` refines: when it is not `Equal`, `exact` agrees with
    /// it; `Equal` leaves the question to `exact`.
    #[inline]
    fn coarse(&self, _item: &T, _key: &K) -> Ordering {
        Ordering::Equal
    }
}

impl<T, K: ?Sized, F: Fn(&T, &K) -> Ordering> Order<T, K> for F {
    #[inline]
    fn exact(&self, item: &T, key: &K) -> Ordering {
        self(item, key)
    }
}

/// Index of the first element of a sorted slice at or past `key`, per `bound`.
///
/// Bisections whose steps pick the next half with a conditional move, not a branch, where
/// the comparison allows it: the comparisons of a search for a random key are
/// unpredictable. An exact order that may call out (to compare tuples on a tie of hints)
/// compiles to branches whatever the source says, so an order with a coarse part bisects
/// on that alone and leaves the exact order the run of coarse ties, mostly one element or
/// none. Such a search first starts loading the whole node: without branches a bisection
/// cannot run ahead into its next cache line, and waits for each in turn (measured,
/// replace at 4 connections x 64, server user CPU per request: 470 ns with the branches
/// the hinted order compiled to, 530 ns without branches, 430 ns without branches after
/// the prefetch). [`BpsTree::bounds_many`] prefetches the nodes of several searches at
/// once instead.
#[inline]
fn bound_index<T, K: ?Sized, O: Order<T, K>>(
    items: &[T],
    key: &K,
    order: &O,
    bound: Bound,
) -> usize {
    if !O::COARSE {
        return bisect(items, |item| before(order.exact(item, key), bound));
    }
    // A node's elements are a few cache lines (a leaf's 512 bytes, an inner node's maxes).
    super::prefetch(items.as_ptr().cast(), size_of_val(items));
    let coarse_less = |item: &T| order.coarse(item, key) == Ordering::Less;
    let start = bisect(items, coarse_less);
    let tied = |at: usize| {
        items
            .get(at)
            .is_some_and(|item| order.coarse(item, key) == Ordering::Equal)
    };
    if !tied(start) {
        return start;
    }
    if !tied(start + 1) {
        return start + usize::from(before(order.exact(&items[start], key), bound));
    }
    let ties = &items[start..];
    let end = start + bisect(ties, |item| order.coarse(item, key) != Ordering::Greater);
    start
        + bisect(&items[start..end], |item| {
            before(order.exact(item, key), bound)
        })
}

/// Whether an element ordered `order` against the key comes before the `bound`.
#[inline]
fn before(order: Ordering, bound: Bound) -> bool {
    match bound {
        Bound::Lower => order == Ordering::Less,
        Bound::Upper => order != Ordering::Greater,
    }
}

/// The number of leading elements of `items` for which `before` holds (it holds for a
/// prefix), by a bisection without branches.
#[inline]
fn bisect<T>(items: &[T], before: impl Fn(&T) -> bool) -> usize {
    if items.is_empty() {
        return 0;
    }
    // Invariant: the elements before `base` are before the key, and the answer is at most
    // `base + size`.
    let (mut base, mut size) = (0, items.len());
    while size > 1 {
        let half = size / 2;
        let middle = base + half;
        base = std::hint::select_unpredictable(before(&items[middle]), middle, base);
        size -= half;
    }
    base + usize::from(before(&items[base]))
}

/// Starts loading node `id`'s slot of an arena (see `BpsTree::bounds_many`).
#[inline(always)]
fn prefetch_slot<N>(arena: &[N], id: u32) {
    let slot = arena.as_ptr().wrapping_add(id as usize);
    super::prefetch(slot.cast(), size_of::<N>());
}

/// Splits `total` into `parts` sizes differing by at most one, larger ones first.
fn even_sizes(total: usize, parts: usize) -> [usize; GROUP_MAX] {
    debug_assert!((1..=GROUP_MAX).contains(&parts));
    let mut sizes = [0; GROUP_MAX];
    for (index, size) in sizes.iter_mut().enumerate().take(parts) {
        *size = total / parts + usize::from(index < total % parts);
    }
    sizes
}

/// Grows a full arena by a quarter rather than doubling it: the arena is about a tenth of the
/// tree's memory, and doubling would leave up to half of it unused. Growth stays geometric,
/// so pushes stay amortized O(1) (large reallocations are mostly remaps, not copies).
fn reserve_gently<N>(nodes: &mut Vec<N>) {
    if nodes.len() == nodes.capacity() {
        nodes.reserve_exact((nodes.len() / 4).max(16));
    }
}

/// Mutable references to two distinct nodes of one arena.
fn pair_mut<N>(nodes: &mut [N], left: u32, right: u32) -> (&mut N, &mut N) {
    let [left, right] = nodes
        .get_disjoint_mut([left as usize, right as usize])
        .expect("tree: sibling ids are distinct and in the arena");
    (left, right)
}

/// A leaf: elements in order, linked to its neighbours for iteration both ways.
struct Leaf<T> {
    /// Sorted elements; allocated once at the leaf capacity and never grown past it.
    items: Vec<T>,
    /// The previous leaf in order, or `NIL` for the first.
    prev: u32,
    /// The next leaf in order, or `NIL` for the last.
    next: u32,
}

/// An inner node: one entry (max, child, count) per child, as parallel arrays so that the
/// search over `maxes` touches only elements.
struct Inner<T> {
    /// `maxes[i]` is a clone of the greatest element under `children[i]`.
    maxes: Vec<T>,
    /// Child ids: leaves on the level above the leaves, inner nodes elsewhere.
    children: Vec<u32>,
    /// `counts[i]` is the number of elements under `children[i]`.
    counts: Vec<usize>,
}

/// What a node kind offers to the shared split/merge code: an ordered sequence of entries
/// that can move between siblings.
trait NodeEntries<T> {
    /// What one slot holds: an element in a leaf, (max, child, count) in an inner node.
    type Entry;
    /// Number of entries.
    fn len(&self) -> usize;
    /// Number of elements in the subtree.
    fn weight(&self) -> usize;
    /// The greatest element of the subtree; the node must not be empty.
    fn max(&self) -> &T;
    /// Inserts `entry` at `index`; the node must have room.
    fn insert_entry(&mut self, index: usize, entry: Self::Entry);
    /// Moves `count` entries from the front of `right` to the back of `left`.
    fn move_to_left(left: &mut Self, right: &mut Self, count: usize);
    /// Moves `count` entries from the back of `left` to the front of `right`.
    fn move_to_right(left: &mut Self, right: &mut Self, count: usize);
}

impl<T> NodeEntries<T> for Leaf<T> {
    type Entry = T;

    fn len(&self) -> usize {
        self.items.len()
    }

    fn weight(&self) -> usize {
        self.items.len()
    }

    fn max(&self) -> &T {
        self.items.last().expect("tree: a linked leaf is not empty")
    }

    fn insert_entry(&mut self, index: usize, entry: T) {
        debug_assert!(self.items.len() < self.items.capacity());
        self.items.insert(index, entry);
    }

    fn move_to_left(left: &mut Self, right: &mut Self, count: usize) {
        left.items.extend(right.items.drain(..count));
    }

    fn move_to_right(left: &mut Self, right: &mut Self, count: usize) {
        let from = left.items.len() - count;
        // The drain is exact-sized, so splice shifts `right` once and never reallocates.
        right.items.splice(0..0, left.items.drain(from..));
    }
}

impl<T> NodeEntries<T> for Inner<T> {
    type Entry = (T, u32, usize);

    fn len(&self) -> usize {
        self.children.len()
    }

    fn weight(&self) -> usize {
        self.counts.iter().sum()
    }

    fn max(&self) -> &T {
        self.maxes
            .last()
            .expect("tree: a linked inner node is not empty")
    }

    fn insert_entry(&mut self, index: usize, (max, child, count): (T, u32, usize)) {
        debug_assert!(self.children.len() < self.children.capacity());
        self.maxes.insert(index, max);
        self.children.insert(index, child);
        self.counts.insert(index, count);
    }

    fn move_to_left(left: &mut Self, right: &mut Self, count: usize) {
        left.maxes.extend(right.maxes.drain(..count));
        left.children.extend(right.children.drain(..count));
        left.counts.extend(right.counts.drain(..count));
    }

    fn move_to_right(left: &mut Self, right: &mut Self, count: usize) {
        let from = left.children.len() - count;
        right.maxes.splice(0..0, left.maxes.drain(from..));
        right.children.splice(0..0, left.children.drain(from..));
        right.counts.splice(0..0, left.counts.drain(from..));
    }
}

/// Moves entries between adjacent siblings `left` and `right` until `left` has `left_len`.
fn rebalance_pair<T, N: NodeEntries<T>>(nodes: &mut [N], left: u32, right: u32, left_len: usize) {
    let (left, right) = pair_mut(nodes, left, right);
    let have = left.len();
    if have > left_len {
        N::move_to_right(left, right, have - left_len);
    } else if have < left_len {
        debug_assert!(right.len() >= left_len - have);
        N::move_to_left(left, right, left_len - have);
    }
    debug_assert_eq!(left.len(), left_len);
}

/// Spreads consecutive siblings `ids` (one possibly new and empty) to the sizes `targets`,
/// which count `entry` too, and inserts `entry` at index `global` of their concatenation.
///
/// Entries cross each boundary once, in one direction. Rightward moves run right to left and
/// leftward moves left to right, so a node passing entries along sends before it receives;
/// with the plans of [`BpsTree::plan_overflow`] (full nodes plus one with room or one new)
/// no node ever holds more than its capacity in between, and no Vec reallocates.
fn spread_insert<T, N: NodeEntries<T>>(
    nodes: &mut [N],
    ids: &[u32],
    targets: &[usize],
    global: usize,
    entry: N::Entry,
) {
    debug_assert_eq!(ids.len(), targets.len());
    debug_assert!(ids.len() <= GROUP_MAX);
    let mut receiver = ids.len() - 1;
    let mut before = 0;
    for (index, target) in targets.iter().enumerate() {
        if global < before + target {
            receiver = index;
            break;
        }
        before += target;
    }
    // flows[b] > 0: entries crossing boundary b (between ids[b] and ids[b + 1]) rightward.
    let mut flows = [0isize; GROUP_MAX];
    let (mut have, mut want) = (0isize, 0isize);
    for index in 0..ids.len() - 1 {
        have += nodes[ids[index] as usize].len() as isize;
        want += (targets[index] - usize::from(index == receiver)) as isize;
        flows[index] = have - want;
    }
    for boundary in (0..ids.len() - 1).rev().filter(|&b| flows[b] > 0) {
        let (left, right) = pair_mut(nodes, ids[boundary], ids[boundary + 1]);
        N::move_to_right(left, right, flows[boundary] as usize);
    }
    for boundary in (0..ids.len() - 1).filter(|&b| flows[b] < 0) {
        let (left, right) = pair_mut(nodes, ids[boundary], ids[boundary + 1]);
        N::move_to_left(left, right, flows[boundary].unsigned_abs());
    }
    let node = &mut nodes[ids[receiver] as usize];
    node.insert_entry(global - before, entry);
    debug_assert_eq!(node.len(), targets[receiver]);
}

/// One step of a root-to-leaf path: a node and the index chosen in it (the child index in an
/// inner node, the element offset in the leaf).
#[derive(Clone, Copy, Debug, Default)]
struct Step {
    /// Node id in its level's arena.
    node: u32,
    /// Child index (inner) or element offset (leaf).
    index: u32,
}

/// The path of a search; level 0 is the root, level `height` the leaf.
struct Path {
    /// Bounded by [`HEIGHT_MAX`], checked whenever the tree grows.
    steps: [Step; HEIGHT_MAX + 1],
}

impl Path {
    /// An empty path, filled by [`BpsTree::descend`].
    fn new() -> Self {
        Self {
            steps: [Step::default(); HEIGHT_MAX + 1],
        }
    }

    /// The step at `level` as (node, index) in `usize`.
    fn at(&self, level: usize) -> (usize, usize) {
        let step = self.steps[level];
        (step.node as usize, step.index as usize)
    }
}

/// How to make room for one more entry in a full node: the siblings to spread over, their
/// sizes after the insert, and where the entry lands.
struct Plan {
    /// Consecutive siblings left to right; the new node, if any, right after the full one.
    ids: [u32; GROUP_MAX],
    /// How many of `ids` are used (2 to 4).
    parts: usize,
    /// Index in the parent of `ids[0]`.
    first: usize,
    /// Sizes after the insert; their sum is the old total plus one.
    targets: [usize; GROUP_MAX],
    /// Index of the pending entry in the concatenation of the group.
    global: usize,
    /// Where in `ids` the new node goes, when the group splits rather than shifts.
    new_slot: Option<usize>,
}

/// A cursor on one element: a leaf and an offset in it.
///
/// A position is valid until the next modification of the tree (compare
/// [`BpsTree::version`]). A stale position is memory-safe to use: `get`, `next` and `prev`
/// then return some element or `None`, never panic. To continue a scan across
/// modifications, remember the last element and re-seek with
/// [`BpsTree::upper_bound`]/[`BpsTree::lower_bound`] when the version changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Position {
    /// Leaf id.
    leaf: u32,
    /// Offset in the leaf.
    offset: u32,
}

/// A B+* tree of elements ordered by a caller-given comparator; see the module docs.
///
/// Elements comparing `Equal` under the insert comparator are one element: inserting
/// replaces. Search comparators `Fn(&T, &K) -> Ordering` may treat a partial key as equal to
/// a whole range of elements; the bounds then find the ends of that range.
pub struct BpsTree<T> {
    /// Leaf arena; ids in `leaves_free` are vacant (empty, unlinked).
    leaves: Vec<Leaf<T>>,
    /// Inner node arena; ids in `inners_free` are vacant.
    inners: Vec<Inner<T>>,
    /// Vacant leaf ids, reused before the arena grows.
    leaves_free: Vec<u32>,
    /// Vacant inner ids, reused before the arena grows.
    inners_free: Vec<u32>,
    /// The root: a leaf when `height == 0`, else an inner node; `NIL` when empty.
    root: u32,
    /// Inner levels above the leaves; at most [`HEIGHT_MAX`].
    height: usize,
    /// The leftmost leaf, `NIL` when empty.
    leaf_first: u32,
    /// The rightmost leaf, `NIL` when empty.
    leaf_last: u32,
    /// Number of elements.
    len: usize,
    /// Bumped by every modification; see [`Position`].
    version: u64,
    /// Elements per leaf.
    leaf_capacity: usize,
    /// Children per inner node.
    inner_capacity: usize,
}

impl<T: Clone> Default for BpsTree<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Clone> BpsTree<T> {
    /// Leaf capacity for this element size: [`LEAF_BYTES`] worth, within bounds.
    const LEAF_CAPACITY: usize = {
        let size = if size_of::<T>() == 0 {
            1
        } else {
            size_of::<T>()
        };
        let capacity = LEAF_BYTES / size;
        if capacity < LEAF_CAPACITY_MIN {
            LEAF_CAPACITY_MIN
        } else if capacity > LEAF_CAPACITY_MAX {
            LEAF_CAPACITY_MAX
        } else {
            capacity
        }
    };

    /// An empty tree with the default node sizes; allocates nothing until the first insert.
    pub fn new() -> Self {
        Self::with_node_capacities(Self::LEAF_CAPACITY, INNER_CAPACITY)
    }

    /// An empty tree with explicit node sizes, for tests (tiny nodes make deep trees from a
    /// few elements) and tuning. Panics unless both are within 4..=4096.
    pub fn with_node_capacities(leaf_capacity: usize, inner_capacity: usize) -> Self {
        assert!((NODE_CAPACITY_MIN..=NODE_CAPACITY_MAX).contains(&leaf_capacity));
        assert!((NODE_CAPACITY_MIN..=NODE_CAPACITY_MAX).contains(&inner_capacity));
        Self {
            leaves: Vec::new(),
            inners: Vec::new(),
            leaves_free: Vec::new(),
            inners_free: Vec::new(),
            root: NIL,
            height: 0,
            leaf_first: NIL,
            leaf_last: NIL,
            len: 0,
            version: super::container_epoch(),
            leaf_capacity,
            inner_capacity,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the tree has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The modification counter: changes whenever an element is inserted, replaced or
    /// deleted, or the tree is cleared, so a cursor can tell that its position went stale.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The node capacities in use: (elements per leaf, children per inner node).
    pub fn node_capacities(&self) -> (usize, usize) {
        (self.leaf_capacity, self.inner_capacity)
    }

    /// Inner levels above the leaves (0 while everything fits one leaf).
    pub fn height(&self) -> usize {
        self.height
    }

    /// Removes every element and frees all nodes.
    pub fn clear(&mut self) {
        self.version = self.version.wrapping_add(1);
        self.release_all();
    }

    /// Estimated heap bytes: element and entry arrays at their capacity plus the arenas
    /// (allocator headers, one per node array, not counted). Walks the arenas: O(nodes).
    pub fn memory_usage(&self) -> usize {
        let leaf_arrays: usize = self
            .leaves
            .iter()
            .map(|leaf| leaf.items.capacity() * size_of::<T>())
            .sum();
        let inner_arrays: usize = self
            .inners
            .iter()
            .map(|inner| {
                inner.maxes.capacity() * size_of::<T>()
                    + inner.children.capacity() * size_of::<u32>()
                    + inner.counts.capacity() * size_of::<usize>()
            })
            .sum();
        let arenas = self.leaves.capacity() * size_of::<Leaf<T>>()
            + self.inners.capacity() * size_of::<Inner<T>>()
            + (self.leaves_free.capacity() + self.inners_free.capacity()) * size_of::<u32>();
        leaf_arrays + inner_arrays + arenas
    }

    // {{{ Search

    /// The element comparing `Equal` to `key` (the first such if the key is partial).
    pub fn find<K: ?Sized>(&self, key: &K, cmp: impl Order<T, K>) -> Option<&T> {
        let (leaf, offset) = self.locate(key, &cmp, Bound::Lower)?;
        let item = self.leaves[leaf as usize].items.get(offset)?;
        (cmp.exact(item, key) == Ordering::Equal).then_some(item)
    }

    /// The first element not less than `key`, or `None` past the end.
    pub fn lower_bound<K: ?Sized>(&self, key: &K, cmp: impl Order<T, K>) -> Option<Position> {
        let (leaf, offset) = self.locate(key, &cmp, Bound::Lower)?;
        self.normalize(leaf, offset)
    }

    /// The first element greater than `key`, or `None` past the end.
    pub fn upper_bound<K: ?Sized>(&self, key: &K, cmp: impl Order<T, K>) -> Option<Position> {
        let (leaf, offset) = self.locate(key, &cmp, Bound::Upper)?;
        self.normalize(leaf, offset)
    }

    /// Number of elements less than `key`: the rank of [`Self::lower_bound`]. O(log n).
    pub fn lower_bound_rank<K: ?Sized>(&self, key: &K, cmp: impl Order<T, K>) -> usize {
        self.bound_rank(key, &cmp, Bound::Lower)
    }

    /// Number of elements not greater than `key`: the rank of [`Self::upper_bound`].
    pub fn upper_bound_rank<K: ?Sized>(&self, key: &K, cmp: impl Order<T, K>) -> usize {
        self.bound_rank(key, &cmp, Bound::Upper)
    }

    /// Number of elements comparing `Equal` to a (partial) key, in O(log n): the size of the
    /// range between [`Self::lower_bound`] and [`Self::upper_bound`].
    pub fn count_range<K: ?Sized>(&self, key: &K, cmp: impl Order<T, K>) -> usize {
        let upper = self.bound_rank(key, &cmp, Bound::Upper);
        let lower = self.bound_rank(key, &cmp, Bound::Lower);
        upper.saturating_sub(lower)
    }

    /// The position of the element of rank `rank` (0-based), `None` if `rank >= len`.
    pub fn position_at(&self, rank: usize) -> Option<Position> {
        if rank >= self.len {
            return None;
        }
        let mut node = self.root;
        let mut rest = rank;
        for _ in 0..self.height {
            let inner = &self.inners[node as usize];
            let mut index = 0;
            while index + 1 < inner.counts.len() && rest >= inner.counts[index] {
                rest -= inner.counts[index];
                index += 1;
            }
            node = inner.children[index];
        }
        self.normalize(node, rest)
    }

    /// Some element chosen by `seed`: uniform over elements, by rank.
    pub fn random(&self, seed: u64) -> Option<&T> {
        if self.len == 0 {
            return None;
        }
        let rank = (crate::r#box::mix_seed(seed) % self.len as u64) as usize;
        self.get(&self.position_at(rank)?)
    }

    /// The leaf and offset where `key` would be, per `bound`; `None` when empty.
    fn locate<K: ?Sized>(
        &self,
        key: &K,
        cmp: &impl Order<T, K>,
        bound: Bound,
    ) -> Option<(u32, usize)> {
        if self.root == NIL {
            return None;
        }
        let mut node = self.root;
        for _ in 0..self.height {
            let inner = &self.inners[node as usize];
            let index = bound_index(&inner.maxes, key, cmp, bound);
            // Past every max: the answer is the end, which the last child's end stands for.
            node = inner.children[index.min(inner.children.len() - 1)];
        }
        let leaf = &self.leaves[node as usize];
        Some((node, bound_index(&leaf.items, key, cmp, bound)))
    }

    /// [`Self::locate`] as a rank.
    fn bound_rank<K: ?Sized>(&self, key: &K, cmp: &impl Order<T, K>, bound: Bound) -> usize {
        if self.root == NIL {
            return 0;
        }
        let mut node = self.root;
        let mut rank = 0;
        for _ in 0..self.height {
            let inner = &self.inners[node as usize];
            let index = bound_index(&inner.maxes, key, cmp, bound);
            if index == inner.children.len() {
                return rank + inner.counts.iter().sum::<usize>();
            }
            rank += inner.counts[..index].iter().sum::<usize>();
            node = inner.children[index];
        }
        rank + bound_index(&self.leaves[node as usize].items, key, cmp, bound)
    }

    /// Fills `path` with the route to where `key` would be, per `bound`. The tree must not
    /// be empty.
    fn descend<K: ?Sized>(&self, path: &mut Path, key: &K, cmp: &impl Order<T, K>, bound: Bound) {
        debug_assert_ne!(self.root, NIL);
        let mut node = self.root;
        for level in 0..self.height {
            let inner = &self.inners[node as usize];
            let index = bound_index(&inner.maxes, key, cmp, bound).min(inner.children.len() - 1);
            path.steps[level] = Step {
                node,
                index: index as u32,
            };
            node = inner.children[index];
        }
        let offset = bound_index(&self.leaves[node as usize].items, key, cmp, bound);
        path.steps[self.height] = Step {
            node,
            index: offset as u32,
        };
    }

    /// [`Self::lower_bound`] or [`Self::upper_bound`] (per `searches[i].1`) of several keys
    /// at once, at most [`BOUNDS_BATCH_MAX`], into `found[i]`.
    ///
    /// A lone search waits for a cache miss or two per level, mostly in the leaves, which a
    /// big tree keeps out of the cache. These searches descend in step, a level per round,
    /// and each starts loading its next node as soon as it knows it, so a round's misses
    /// overlap. In the leaf, the coarse part of `order` (ties allowed) finds the element
    /// the exact order would look into (a tuple, on a tie of hints), and `touch` starts
    /// loading that before the exact searches run. The nodes are searched by the exact
    /// order alone, since they are already on their way into the cache.
    pub fn bounds_many<K>(
        &self,
        searches: &[(K, Bound)],
        order: impl Order<T, K>,
        touch: impl Fn(&T),
        found: &mut [Option<Position>],
    ) {
        assert!(searches.len() <= BOUNDS_BATCH_MAX && found.len() == searches.len());
        let cmp = |item: &T, key: &K| order.exact(item, key);
        let coarse = |item: &T, key: &K| order.coarse(item, key);
        if self.root == NIL {
            found.fill(None);
            return;
        }
        let mut nodes = [self.root; BOUNDS_BATCH_MAX];
        let nodes = &mut nodes[..searches.len()];
        // A node is two loads apart from its parent: its arena slot, then its elements.
        // Each level takes two rounds, one for each, so that both overlap across searches.
        for level in 0..self.height {
            let children_are_leaves = level + 1 == self.height;
            for (node, (key, bound)) in nodes.iter_mut().zip(searches) {
                let inner = &self.inners[*node as usize];
                let index = bound_index(&inner.maxes, key, &cmp, *bound);
                *node = inner.children[index.min(inner.children.len() - 1)];
                if children_are_leaves {
                    prefetch_slot(&self.leaves, *node);
                } else {
                    prefetch_slot(&self.inners, *node);
                }
            }
            for node in nodes.iter() {
                if children_are_leaves {
                    let items = self.leaves[*node as usize].items.as_slice();
                    super::prefetch(items.as_ptr().cast(), size_of_val(items));
                } else {
                    let inner = &self.inners[*node as usize];
                    let maxes = inner.maxes.as_slice();
                    super::prefetch(maxes.as_ptr().cast(), size_of_val(maxes));
                    let children = inner.children.as_slice();
                    super::prefetch(children.as_ptr().cast(), size_of_val(children));
                }
            }
        }
        for (node, (key, _)) in nodes.iter().zip(searches) {
            let items = &self.leaves[*node as usize].items;
            if let Some(item) = items.get(bound_index(items, key, &coarse, Bound::Lower)) {
                touch(item);
            }
        }
        for ((node, (key, bound)), found) in nodes.iter().zip(searches).zip(found) {
            let items = &self.leaves[*node as usize].items;
            let offset = bound_index(items, key, &cmp, *bound);
            *found = self.normalize(*node, offset);
        }
    }

    // }}}

    // {{{ Positions and iteration

    /// The first element's position.
    pub fn first(&self) -> Option<Position> {
        self.normalize(self.leaf_first, 0)
    }

    /// The last element's position.
    pub fn last(&self) -> Option<Position> {
        let leaf = self.leaves.get(self.leaf_last as usize)?;
        let offset = leaf.items.len().checked_sub(1)?;
        Some(Position {
            leaf: self.leaf_last,
            offset: offset as u32,
        })
    }

    /// The element at a position (see [`Position`] on staleness).
    pub fn get(&self, position: &Position) -> Option<&T> {
        let leaf = self.leaves.get(position.leaf as usize)?;
        leaf.items.get(position.offset as usize)
    }

    /// The position after `position`, `None` at the end.
    pub fn next(&self, position: &Position) -> Option<Position> {
        let leaf = self.leaves.get(position.leaf as usize)?;
        if (position.offset as usize) + 1 < leaf.items.len() {
            return Some(Position {
                leaf: position.leaf,
                offset: position.offset + 1,
            });
        }
        self.normalize(leaf.next, 0)
    }

    /// The position before `position`, `None` at the start.
    pub fn prev(&self, position: &Position) -> Option<Position> {
        let leaf = self.leaves.get(position.leaf as usize)?;
        let offset = (position.offset as usize).min(leaf.items.len());
        if offset > 0 {
            return Some(Position {
                leaf: position.leaf,
                offset: offset as u32 - 1,
            });
        }
        let prev = self.leaves.get(leaf.prev as usize)?;
        let offset = prev.items.len().checked_sub(1)?;
        Some(Position {
            leaf: leaf.prev,
            offset: offset as u32,
        })
    }

    /// All elements in order; double-ended for reverse scans.
    pub fn iter(&self) -> Iter<'_, T> {
        Iter {
            tree: self,
            front: self.first(),
            back: self.last(),
            remaining: self.len,
        }
    }

    /// `(leaf, offset)` as a position, moving past the leaf's end to the next leaf.
    fn normalize(&self, leaf: u32, offset: usize) -> Option<Position> {
        let node = self.leaves.get(leaf as usize)?;
        if offset < node.items.len() {
            return Some(Position {
                leaf,
                offset: offset as u32,
            });
        }
        let next = self.leaves.get(node.next as usize)?;
        (!next.items.is_empty()).then_some(Position {
            leaf: node.next,
            offset: 0,
        })
    }

    // }}}

    // {{{ Insert

    /// Inserts `item`; an element comparing `Equal` is replaced and returned.
    pub fn insert(&mut self, item: T, cmp: impl Order<T, T>) -> Option<T> {
        self.version = self.version.wrapping_add(1);
        if self.root == NIL {
            self.plant(item);
            return None;
        }
        let mut path = Path::new();
        self.descend(&mut path, &item, &cmp, Bound::Lower);
        let (leaf_id, offset) = path.at(self.height);
        let leaf = &mut self.leaves[leaf_id];
        if offset < leaf.items.len() && cmp.exact(&leaf.items[offset], &item) == Ordering::Equal {
            let old = mem::replace(&mut leaf.items[offset], item);
            if offset + 1 == leaf.items.len() {
                // The separators above hold a clone of `old`; don't let them keep it alive.
                self.propagate_max(&path, self.height);
            }
            return Some(old);
        }
        let past_leaf = offset == leaf.items.len();
        if leaf.items.len() < self.leaf_capacity {
            leaf.items.insert(offset, item);
            self.count_path(&path, true);
            if past_leaf {
                self.propagate_max(&path, self.height);
            }
        } else if past_leaf && leaf.next == NIL {
            self.append_branch(&mut path, item);
        } else {
            self.count_path(&path, true);
            self.insert_overflow_leaf(&mut path, item);
        }
        self.len += 1;
        None
    }

    /// The first element of an empty tree: a root leaf.
    fn plant(&mut self, item: T) {
        debug_assert_eq!(self.len, 0);
        let leaf = self.leaf_alloc();
        self.leaves[leaf as usize].items.push(item);
        self.root = leaf;
        self.height = 0;
        self.leaf_first = leaf;
        self.leaf_last = leaf;
        self.len = 1;
    }

    /// Adds (or, for deletes, subtracts) one element to every count on the path.
    fn count_path(&mut self, path: &Path, add: bool) {
        for level in 0..self.height {
            let (node, index) = path.at(level);
            let count = &mut self.inners[node].counts[index];
            if add {
                *count += 1;
            } else {
                debug_assert!(*count > 0);
                *count -= 1;
            }
        }
    }

    /// Copies the max of the node at `level` on `path` into the separators above it, as far
    /// up as it is the max of the enclosing subtree.
    fn propagate_max(&mut self, path: &Path, level: usize) {
        let (node, _) = path.at(level);
        let max = self.node_max(level, node as u32).clone();
        for level in (0..level).rev() {
            let (parent, index) = path.at(level);
            let inner = &mut self.inners[parent];
            inner.maxes[index] = max.clone();
            if index + 1 != inner.maxes.len() {
                break;
            }
        }
    }

    /// Appends `item`, greater than every element, when the last leaf is full: a new leaf,
    /// under new single-child inner nodes up to the lowest right-spine node with room. The
    /// full nodes stay full, which is what makes ascending inserts dense.
    fn append_branch(&mut self, path: &mut Path, item: T) {
        let with_room = (0..self.height)
            .rev()
            .find(|&level| self.inners[path.at(level).0].children.len() < self.inner_capacity);
        let attach = match with_room {
            Some(level) => level,
            None => {
                self.grow_root(path);
                0
            }
        };
        let leaf = self.leaf_alloc();
        self.leaf_link_after(self.leaf_last, leaf);
        let mut child = leaf;
        for _ in attach + 1..self.height {
            let inner = self.inner_alloc();
            self.inners[inner as usize].insert_entry(0, (item.clone(), child, 1));
            child = inner;
        }
        let (node, _) = path.at(attach);
        let inner = &mut self.inners[node];
        let index = inner.children.len();
        inner.insert_entry(index, (item.clone(), child, 1));
        for level in 0..attach {
            let (node, index) = path.at(level);
            let inner = &mut self.inners[node];
            debug_assert_eq!(index + 1, inner.children.len());
            inner.counts[index] += 1;
            inner.maxes[index] = item.clone();
        }
        self.leaves[leaf as usize].items.push(item);
    }

    /// Puts a new root above the current one, shifting `path` down a level.
    fn grow_root(&mut self, path: &mut Path) {
        assert!(self.height < HEIGHT_MAX, "tree: height bound broken");
        let old = self.root;
        let entry = (self.node_max(0, old).clone(), old, self.node_weight(0, old));
        let root = self.inner_alloc();
        self.inners[root as usize].insert_entry(0, entry);
        self.root = root;
        self.height += 1;
        path.steps.copy_within(0..self.height, 1);
        path.steps[0] = Step {
            node: root,
            index: 0,
        };
    }

    /// Inserts `item` into the full leaf at the end of `path` (counts already include it) by
    /// shifting into a sibling or splitting.
    fn insert_overflow_leaf(&mut self, path: &mut Path, item: T) {
        if self.height == 0 {
            self.grow_root(path);
        }
        let level = self.height;
        let (parent, index) = path.at(level - 1);
        let (_, offset) = path.at(level);
        let mut plan = self.plan_overflow(level, parent, index, offset);
        if let Some(slot) = plan.new_slot {
            let leaf = self.leaf_alloc();
            self.leaf_link_after(plan.ids[slot - 1], leaf);
            plan.ids[slot] = leaf;
        }
        let parts = plan.parts;
        spread_insert(
            &mut self.leaves,
            &plan.ids[..parts],
            &plan.targets[..parts],
            plan.global,
            item,
        );
        self.finish_overflow(path, level, &plan);
    }

    /// Inserts `entry` at `index` of the inner node at `level` on `path`, spreading or
    /// splitting it when full; recurses up at most the height of the tree.
    fn insert_entry(
        &mut self,
        path: &mut Path,
        level: usize,
        index: usize,
        entry: (T, u32, usize),
    ) {
        let (node, _) = path.at(level);
        if self.inners[node].children.len() < self.inner_capacity {
            self.inners[node].insert_entry(index, entry);
            return;
        }
        let level = if level == 0 {
            self.grow_root(path);
            1
        } else {
            level
        };
        let (parent, parent_index) = path.at(level - 1);
        let mut plan = self.plan_overflow(level, parent, parent_index, index);
        if let Some(slot) = plan.new_slot {
            plan.ids[slot] = self.inner_alloc();
        }
        let parts = plan.parts;
        spread_insert(
            &mut self.inners,
            &plan.ids[..parts],
            &plan.targets[..parts],
            plan.global,
            entry,
        );
        self.finish_overflow(path, level, &plan);
    }

    /// Chooses how the full node at `index` of `parent` takes one more entry at `offset`,
    /// like memtx's bps_tree but among siblings only: shift into a sibling with room, or
    /// through a full sibling into the next one; else split three full siblings into four
    /// (3/4 full), else two into three, else (an only child) one into two.
    fn plan_overflow(&self, level: usize, parent: usize, index: usize, offset: usize) -> Plan {
        let capacity = self.capacity(level);
        let children = &self.inners[parent].children;
        debug_assert_eq!(self.node_len(level, children[index]), capacity);
        let last = children.len() - 1;
        let has_room = |at: usize| self.node_len(level, children[at]) < capacity;
        let (first, end, splits) = if index > 0 && has_room(index - 1) {
            (index - 1, index, false)
        } else if index < last && has_room(index + 1) {
            (index, index + 1, false)
        } else if index > 1 && has_room(index - 2) {
            (index - 2, index, false)
        } else if index + 1 < last && has_room(index + 2) {
            (index, index + 2, false)
        } else if index > 0 && index < last {
            (index - 1, index + 1, true)
        } else if index > 1 {
            (index - 2, index, true)
        } else if index + 1 < last {
            (index, index + 2, true)
        } else {
            (index.saturating_sub(1), (index + 1).min(last), true)
        };
        let mut plan = Plan {
            ids: [NIL; GROUP_MAX],
            parts: 0,
            first,
            targets: [0; GROUP_MAX],
            global: offset,
            new_slot: None,
        };
        let mut total = 1;
        for (at, &child) in children.iter().enumerate().take(end + 1).skip(first) {
            let len = self.node_len(level, child);
            if at < index {
                plan.global += len;
            }
            total += len;
            plan.ids[plan.parts] = child;
            plan.parts += 1;
            if at == index && splits {
                plan.new_slot = Some(plan.parts);
                plan.parts += 1;
            }
        }
        plan.targets = even_sizes(total, plan.parts);
        debug_assert!(plan.targets.iter().all(|&size| size <= capacity));
        plan
    }

    /// After a spread at `level`: refreshes the parent's entries for the group and inserts
    /// the new node's entry, if any, into the parent.
    fn finish_overflow(&mut self, path: &mut Path, level: usize, plan: &Plan) {
        let (parent, _) = path.at(level - 1);
        let mut parent_index = plan.first;
        for (slot, &id) in plan.ids[..plan.parts].iter().enumerate() {
            if plan.new_slot == Some(slot) {
                continue;
            }
            self.refresh_entry(level, parent, parent_index, id);
            parent_index += 1;
        }
        if let Some(slot) = plan.new_slot {
            let id = plan.ids[slot];
            let entry = (
                self.node_max(level, id).clone(),
                id,
                self.node_weight(level, id),
            );
            self.insert_entry(path, level - 1, plan.first + slot, entry);
        }
    }

    // }}}

    // {{{ Delete

    /// Removes and returns the element comparing `Equal` to `key` (the first such if the key
    /// is partial).
    pub fn delete<K: ?Sized>(&mut self, key: &K, cmp: impl Order<T, K>) -> Option<T> {
        if self.root == NIL {
            return None;
        }
        let mut path = Path::new();
        self.descend(&mut path, key, &cmp, Bound::Lower);
        let (leaf_id, offset) = path.at(self.height);
        let leaf = &mut self.leaves[leaf_id];
        if offset >= leaf.items.len() || cmp.exact(&leaf.items[offset], key) != Ordering::Equal {
            return None;
        }
        let removed = leaf.items.remove(offset);
        let remaining = leaf.items.len();
        self.version = self.version.wrapping_add(1);
        self.len -= 1;
        if self.len == 0 {
            self.release_all();
            return Some(removed);
        }
        self.count_path(&path, false);
        if remaining > 0 && offset == remaining {
            self.propagate_max(&path, self.height);
        }
        self.rebalance_after_delete(&path);
        self.collapse_root();
        Some(removed)
    }

    /// Walks up from the leaf on `path`, fixing underfull nodes while fixes remove entries
    /// from their parents.
    fn rebalance_after_delete(&mut self, path: &Path) {
        let mut level = self.height;
        while level > 0 {
            let (node, _) = path.at(level);
            let len = self.node_len(level, node as u32);
            if len >= self.capacity(level) * 2 / 3 {
                return;
            }
            if !self.fix_underflow(path, level) {
                return;
            }
            level -= 1;
        }
    }

    /// Merges (3 into 2, 2 into 1) or refills the underfull node at `level` on `path`.
    /// Returns whether the parent lost an entry.
    fn fix_underflow(&mut self, path: &Path, level: usize) -> bool {
        let capacity = self.capacity(level);
        let (parent, index) = path.at(level - 1);
        let children = &self.inners[parent].children;
        let count = children.len();
        let node = children[index];
        let left = index.checked_sub(1).map(|left| children[left]);
        let right = children.get(index + 1).copied();
        let len = self.node_len(level, node);
        let left_len = left.map_or(0, |left| self.node_len(level, left));
        let right_len = right.map_or(0, |right| self.node_len(level, right));
        match (left, right) {
            (None, None) if len == 0 => {
                // An emptied only child (right spine): the parent shrinks next.
                self.remove_entry(level, parent, index);
                true
            }
            (None, None) => false,
            (Some(left), Some(right)) if len + left_len + right_len <= 2 * capacity => {
                let total = len + left_len + right_len;
                let keep = (total / 2).clamp(left_len, left_len + len);
                rebalance_pair_in(self.arena_of(level), left, node, keep);
                self.node_drain_right(level, node, right);
                self.remove_entry(level, parent, index);
                self.refresh_entry(level, parent, index - 1, left);
                self.refresh_entry(level, parent, index, right);
                true
            }
            (Some(left), _) if len + left_len <= capacity => {
                rebalance_pair_in(self.arena_of(level), left, node, left_len + len);
                self.remove_entry(level, parent, index);
                self.refresh_entry(level, parent, index - 1, left);
                if index + 1 == count {
                    self.propagate_max(path, level - 1);
                }
                true
            }
            (_, Some(right)) if len + right_len <= capacity => {
                self.node_drain_right(level, node, right);
                self.remove_entry(level, parent, index);
                self.refresh_entry(level, parent, index, right);
                true
            }
            _ if len >= capacity / 2 => false,
            _ => {
                self.refill(level, parent, index, (left, left_len), (right, right_len));
                false
            }
        }
    }

    /// Evens the underfull node at `index` of `parent` with its fuller sibling. Merges did
    /// not fit, so the pair holds more than a node's capacity and both end at least half
    /// full.
    fn refill(
        &mut self,
        level: usize,
        parent: usize,
        index: usize,
        (left, left_len): (Option<u32>, usize),
        (right, right_len): (Option<u32>, usize),
    ) {
        let node = self.inners[parent].children[index];
        let len = self.node_len(level, node);
        match (left, right) {
            (Some(left), right) if right.is_none() || left_len >= right_len => {
                let keep = (left_len + len).div_ceil(2);
                rebalance_pair_in(self.arena_of(level), left, node, keep);
                self.refresh_entry(level, parent, index - 1, left);
                self.refresh_entry(level, parent, index, node);
            }
            (_, Some(right)) => {
                let keep = (len + right_len).div_ceil(2);
                rebalance_pair_in(self.arena_of(level), node, right, keep);
                self.refresh_entry(level, parent, index, node);
                self.refresh_entry(level, parent, index + 1, right);
            }
            // An only child has nothing to take from; fix_underflow never gets here with one.
            _ => {}
        }
    }

    /// Moves every entry of `node` to the front of its right sibling.
    fn node_drain_right(&mut self, level: usize, node: u32, right: u32) {
        rebalance_pair_in(self.arena_of(level), node, right, 0);
    }

    /// Removes entry `index` (an emptied node) from `parent` and frees the node.
    fn remove_entry(&mut self, level: usize, parent: usize, index: usize) {
        let inner = &mut self.inners[parent];
        inner.maxes.remove(index);
        let child = inner.children.remove(index);
        inner.counts.remove(index);
        debug_assert_eq!(self.node_len(level, child), 0);
        if level == self.height {
            self.leaf_free(child);
        } else {
            self.inner_free(child);
        }
    }

    /// Replaces inner roots that have a single child by that child.
    fn collapse_root(&mut self) {
        while self.height > 0 && self.inners[self.root as usize].children.len() == 1 {
            let root = self.root;
            self.root = self.inners[root as usize].children[0];
            self.inners[root as usize].children.clear();
            self.inner_free(root);
            self.height -= 1;
        }
    }

    // }}}

    // {{{ Nodes by level

    /// The arena of nodes at `level`, seen through the shared entry operations.
    fn arena_of(&mut self, level: usize) -> ArenaMut<'_, T> {
        if level == self.height {
            ArenaMut::Leaves(&mut self.leaves)
        } else {
            ArenaMut::Inners(&mut self.inners)
        }
    }

    /// Entries per node at `level`.
    fn capacity(&self, level: usize) -> usize {
        if level == self.height {
            self.leaf_capacity
        } else {
            self.inner_capacity
        }
    }

    /// Entries in node `id` at `level`.
    fn node_len(&self, level: usize, id: u32) -> usize {
        if level == self.height {
            self.leaves[id as usize].len()
        } else {
            self.inners[id as usize].len()
        }
    }

    /// Elements under node `id` at `level`.
    fn node_weight(&self, level: usize, id: u32) -> usize {
        if level == self.height {
            self.leaves[id as usize].weight()
        } else {
            self.inners[id as usize].weight()
        }
    }

    /// The greatest element under the non-empty node `id` at `level`.
    fn node_max(&self, level: usize, id: u32) -> &T {
        if level == self.height {
            self.leaves[id as usize].max()
        } else {
            self.inners[id as usize].max()
        }
    }

    /// Rewrites entry `index` of `parent` from its child `id` at `level`.
    fn refresh_entry(&mut self, level: usize, parent: usize, index: usize, id: u32) {
        let max = self.node_max(level, id).clone();
        let weight = self.node_weight(level, id);
        let inner = &mut self.inners[parent];
        debug_assert_eq!(inner.children[index], id);
        inner.maxes[index] = max;
        inner.counts[index] = weight;
    }

    /// A vacant leaf, allocated at full capacity so it never reallocates.
    fn leaf_alloc(&mut self) -> u32 {
        let leaf = Leaf {
            items: Vec::with_capacity(self.leaf_capacity),
            prev: NIL,
            next: NIL,
        };
        match self.leaves_free.pop() {
            Some(id) => {
                self.leaves[id as usize] = leaf;
                id
            }
            None => {
                let id = u32::try_from(self.leaves.len()).expect("tree: leaf ids fit u32");
                assert_ne!(id, NIL, "tree: leaf ids fit u32");
                reserve_gently(&mut self.leaves);
                self.leaves.push(leaf);
                id
            }
        }
    }

    /// A vacant inner node, allocated at full capacity.
    fn inner_alloc(&mut self) -> u32 {
        let inner = Inner {
            maxes: Vec::with_capacity(self.inner_capacity),
            children: Vec::with_capacity(self.inner_capacity),
            counts: Vec::with_capacity(self.inner_capacity),
        };
        match self.inners_free.pop() {
            Some(id) => {
                self.inners[id as usize] = inner;
                id
            }
            None => {
                let id = u32::try_from(self.inners.len()).expect("tree: inner ids fit u32");
                assert_ne!(id, NIL, "tree: inner ids fit u32");
                reserve_gently(&mut self.inners);
                self.inners.push(inner);
                id
            }
        }
    }

    /// Unlinks an empty leaf and makes it vacant, releasing its array.
    fn leaf_free(&mut self, id: u32) {
        let leaf = &mut self.leaves[id as usize];
        debug_assert!(leaf.items.is_empty());
        let (prev, next) = (leaf.prev, leaf.next);
        *leaf = Leaf {
            items: Vec::new(),
            prev: NIL,
            next: NIL,
        };
        match self.leaves.get_mut(prev as usize) {
            Some(prev) => prev.next = next,
            None => self.leaf_first = next,
        }
        match self.leaves.get_mut(next as usize) {
            Some(next) => next.prev = prev,
            None => self.leaf_last = prev,
        }
        self.leaves_free.push(id);
    }

    /// Makes an empty inner node vacant, releasing its arrays.
    fn inner_free(&mut self, id: u32) {
        let inner = &mut self.inners[id as usize];
        debug_assert!(inner.children.is_empty());
        *inner = Inner {
            maxes: Vec::new(),
            children: Vec::new(),
            counts: Vec::new(),
        };
        self.inners_free.push(id);
    }

    /// Links the vacant leaf `id` into the list right after `after`.
    fn leaf_link_after(&mut self, after: u32, id: u32) {
        let next = self.leaves[after as usize].next;
        self.leaves[after as usize].next = id;
        self.leaves[id as usize].prev = after;
        self.leaves[id as usize].next = next;
        match self.leaves.get_mut(next as usize) {
            Some(next) => next.prev = id,
            None => self.leaf_last = id,
        }
    }

    /// Drops every node: the state of [`Self::new`] (capacities and version kept).
    fn release_all(&mut self) {
        self.leaves = Vec::new();
        self.inners = Vec::new();
        self.leaves_free = Vec::new();
        self.inners_free = Vec::new();
        self.root = NIL;
        self.height = 0;
        self.leaf_first = NIL;
        self.leaf_last = NIL;
        self.len = 0;
    }

    // }}}

    // {{{ Invariants

    /// Checks every structural invariant and that `cmp` orders the elements strictly;
    /// panics on the first violation. O(n): for tests and debugging.
    pub fn check_invariants(&self, cmp: impl Fn(&T, &T) -> Ordering) {
        assert!(self.height <= HEIGHT_MAX);
        assert_eq!(
            self.leaves_free.len() + self.live_leaves(),
            self.leaves.len()
        );
        assert_eq!(
            self.inners_free.len() + self.live_inners(),
            self.inners.len()
        );
        for &id in &self.leaves_free {
            let leaf = &self.leaves[id as usize];
            assert!(leaf.items.is_empty() && leaf.prev == NIL && leaf.next == NIL);
        }
        for &id in &self.inners_free {
            assert!(self.inners[id as usize].children.is_empty());
        }
        if self.root == NIL {
            assert_eq!(self.len, 0);
            assert_eq!(self.height, 0);
            assert_eq!((self.leaf_first, self.leaf_last), (NIL, NIL));
            return;
        }
        if self.height > 0 {
            assert!(self.inners[self.root as usize].children.len() >= 2);
        }
        let mut order = Vec::new();
        let weight = self.check_node(0, self.root, true, true, &cmp, &mut order);
        assert_eq!(weight, self.len);
        self.check_leaf_list(&order, &cmp);
    }

    /// Leaves reachable from the root (by walking the list, checked against the tree).
    fn live_leaves(&self) -> usize {
        let mut seen = 0;
        let mut leaf = self.leaf_first;
        while let Some(node) = self.leaves.get(leaf as usize) {
            seen += 1;
            assert!(seen <= self.leaves.len(), "tree: leaf list has a cycle");
            leaf = node.next;
        }
        seen
    }

    /// Inner nodes reachable from the root.
    fn live_inners(&self) -> usize {
        let mut level_nodes = if self.height > 0 {
            vec![self.root]
        } else {
            Vec::new()
        };
        let mut seen = 0;
        for _ in 0..self.height {
            seen += level_nodes.len();
            let mut below = Vec::new();
            for &node in &level_nodes {
                below.extend_from_slice(&self.inners[node as usize].children);
            }
            level_nodes = below;
        }
        seen
    }

    /// Checks the subtree of node `id` at `level`; appends its leaves to `order` and returns
    /// its element count. Recursion depth is the height.
    fn check_node(
        &self,
        level: usize,
        id: u32,
        is_root: bool,
        on_spine: bool,
        cmp: &impl Fn(&T, &T) -> Ordering,
        order: &mut Vec<u32>,
    ) -> usize {
        let capacity = self.capacity(level);
        let len = self.node_len(level, id);
        assert!(
            len >= 1 && len <= capacity,
            "tree: node size {len} of {capacity}"
        );
        if !is_root && !on_spine {
            assert!(
                len >= capacity / 2,
                "tree: node under half full: {len}/{capacity}"
            );
        }
        if level == self.height {
            let leaf = &self.leaves[id as usize];
            let exact = leaf.items.capacity() == capacity || size_of::<T>() == 0;
            assert!(exact, "tree: leaf reallocated");
            for pair in leaf.items.windows(2) {
                assert_eq!(cmp(&pair[0], &pair[1]), Ordering::Less, "tree: leaf order");
            }
            order.push(id);
            return len;
        }
        let inner = &self.inners[id as usize];
        assert_eq!(inner.maxes.len(), len);
        assert_eq!(inner.counts.len(), len);
        assert_eq!(
            inner.children.capacity(),
            capacity,
            "tree: inner reallocated"
        );
        assert!(inner.maxes.capacity() == capacity || size_of::<T>() == 0);
        for pair in inner.maxes.windows(2) {
            assert_eq!(
                cmp(&pair[0], &pair[1]),
                Ordering::Less,
                "tree: separator order"
            );
        }
        let mut weight = 0;
        for index in 0..len {
            let child = inner.children[index];
            let last = index + 1 == len;
            let below = self.check_node(level + 1, child, false, on_spine && last, cmp, order);
            assert_eq!(inner.counts[index], below, "tree: subtree count");
            let child_max = self.node_max(level + 1, child);
            assert_eq!(
                cmp(&inner.maxes[index], child_max),
                Ordering::Equal,
                "tree: max"
            );
            weight += below;
        }
        weight
    }

    /// Checks that the leaf list matches the tree order and that order is strict across
    /// leaves.
    fn check_leaf_list(&self, order: &[u32], cmp: &impl Fn(&T, &T) -> Ordering) {
        assert_eq!(self.leaf_first, order[0]);
        assert_eq!(self.leaf_last, order[order.len() - 1]);
        for (index, &id) in order.iter().enumerate() {
            let leaf = &self.leaves[id as usize];
            let prev = index.checked_sub(1).map_or(NIL, |prev| order[prev]);
            let next = order.get(index + 1).copied().unwrap_or(NIL);
            assert_eq!((leaf.prev, leaf.next), (prev, next), "tree: leaf links");
            if let Some(next) = self.leaves.get(next as usize) {
                assert_eq!(
                    cmp(leaf.max(), &next.items[0]),
                    Ordering::Less,
                    "tree: order"
                );
            }
        }
    }

    // }}}
}

/// A level's arena, so the shared entry moves can run on either kind of node.
enum ArenaMut<'a, T> {
    /// The leaf level.
    Leaves(&'a mut Vec<Leaf<T>>),
    /// Any inner level.
    Inners(&'a mut Vec<Inner<T>>),
}

/// [`rebalance_pair`] on whichever arena a level uses.
fn rebalance_pair_in<T>(arena: ArenaMut<'_, T>, left: u32, right: u32, left_len: usize) {
    match arena {
        ArenaMut::Leaves(leaves) => rebalance_pair(leaves, left, right, left_len),
        ArenaMut::Inners(inners) => rebalance_pair(inners, left, right, left_len),
    }
}

/// In-order iterator over a tree's elements; see [`BpsTree::iter`].
pub struct Iter<'a, T> {
    /// The tree, borrowed: positions stay valid for the iterator's life.
    tree: &'a BpsTree<T>,
    /// The next element from the front.
    front: Option<Position>,
    /// The next element from the back.
    back: Option<Position>,
    /// Elements not yet yielded from either end.
    remaining: usize,
}

impl<'a, T: Clone> Iterator for Iter<'a, T> {
    type Item = &'a T;

    fn next(&mut self) -> Option<&'a T> {
        if self.remaining == 0 {
            return None;
        }
        let position = self.front?;
        self.remaining -= 1;
        self.front = self.tree.next(&position);
        self.tree.get(&position)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl<T: Clone> DoubleEndedIterator for Iter<'_, T> {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        let position = self.back?;
        self.remaining -= 1;
        self.back = self.tree.prev(&position);
        self.tree.get(&position)
    }
}

impl<T: Clone> ExactSizeIterator for Iter<'_, T> {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::rc::Rc;
    use std::time::Instant;

    use crate::r#box::TestRng as Rng;

    /// Elements of the model tests: (key, payload), ordered by key only, so a replace is
    /// visible through the payload.
    type Pair = (u64, u64);

    fn by_key(a: &Pair, b: &Pair) -> Ordering {
        a.0.cmp(&b.0)
    }

    fn key_cmp(a: &Pair, key: &u64) -> Ordering {
        a.0.cmp(key)
    }

    fn assert_same(tree: &BpsTree<Pair>, model: &BTreeMap<u64, u64>) {
        assert_eq!(tree.len(), model.len());
        let items: Vec<Pair> = tree.iter().copied().collect();
        let expected: Vec<Pair> = model.iter().map(|(&k, &v)| (k, v)).collect();
        assert_eq!(items, expected);
        let reversed: Vec<Pair> = tree.iter().rev().copied().collect();
        assert!(reversed.iter().eq(expected.iter().rev()));
    }

    /// Random inserts, replaces, deletes and searches against a BTreeMap, checking the
    /// invariants after every step.
    /// Returns the greatest height reached.
    fn run_model(leaf: usize, inner: usize, seed: u64, steps: usize, key_space: u64) -> usize {
        let mut tree = BpsTree::with_node_capacities(leaf, inner);
        let mut model = BTreeMap::new();
        let mut rng = Rng::new(seed);
        let mut height_max = 0;
        for step in 0..steps {
            height_max = height_max.max(tree.height());
            let key = rng.below(key_space);
            let version = tree.version();
            // Phases bias toward growth, then toward shrinking, to reach both extremes.
            let grow = (step / 500) % 2 == 0;
            let op = rng.below(10);
            if op < 5 && grow || op < 2 {
                let payload = rng.next();
                let old = tree.insert((key, payload), by_key);
                assert_eq!(old.map(|(_, v)| v), model.insert(key, payload));
                assert_ne!(tree.version(), version);
            } else if op < 9 {
                let old = tree.delete(&key, key_cmp);
                let expected = model.remove(&key);
                assert_eq!(old.map(|(_, v)| v), expected);
                assert_eq!(tree.version() != version, expected.is_some());
            } else {
                let found = tree.find(&key, key_cmp).map(|&(_, v)| v);
                assert_eq!(found, model.get(&key).copied());
            }
            tree.check_invariants(by_key);
            assert_eq!(tree.len(), model.len());
            check_bounds(&tree, &model, rng.below(key_space + 2));
        }
        assert_same(&tree, &model);
        height_max
    }

    /// lower/upper bound, ranks and counts at `key` agree with the model.
    fn check_bounds(tree: &BpsTree<Pair>, model: &BTreeMap<u64, u64>, key: u64) {
        let lower = tree
            .lower_bound(&key, key_cmp)
            .and_then(|p| tree.get(&p))
            .map(|p| p.0);
        assert_eq!(lower, model.range(key..).next().map(|(&k, _)| k));
        let upper = tree
            .upper_bound(&key, key_cmp)
            .and_then(|p| tree.get(&p))
            .map(|p| p.0);
        assert_eq!(upper, model.range(key + 1..).next().map(|(&k, _)| k));
        assert_eq!(
            tree.lower_bound_rank(&key, key_cmp),
            model.range(..key).count()
        );
        assert_eq!(
            tree.upper_bound_rank(&key, key_cmp),
            model.range(..=key).count()
        );
        assert_eq!(
            tree.count_range(&key, key_cmp),
            usize::from(model.contains_key(&key))
        );
    }

    #[test]
    fn model_tiny_nodes() {
        for seed in 0..12 {
            assert!(run_model(4, 4, seed, 3000, 400) >= 3);
            assert!(run_model(5, 5, seed, 3000, 2000) >= 4);
        }
    }

    #[test]
    fn model_small_nodes() {
        for seed in 0..6 {
            assert!(run_model(7, 6, seed, 4000, 3000) >= 3);
            assert!(run_model(16, 8, seed, 4000, 1000) >= 2);
        }
    }

    #[test]
    fn model_default_nodes() {
        let mut tree: BpsTree<Pair> = BpsTree::new();
        assert_eq!(tree.node_capacities(), (32, INNER_CAPACITY));
        tree.insert((1, 1), by_key);
        assert_eq!(tree.len(), 1);
        assert!(run_model(32, 64, 7, 6000, 5000) >= 1);
    }

    /// Large explicit capacities: long bisections inside nodes.
    #[test]
    fn model_large_nodes() {
        assert!(run_model(300, 200, 3, 3000, 100_000) >= 1);
        let mut tree = BpsTree::with_node_capacities(4096, 4);
        for key in (0..5000u64).rev() {
            tree.insert(key, u64_cmp);
        }
        tree.check_invariants(u64_cmp);
        assert!((0..5000u64).all(|key| tree.find(&key, u64_cmp) == Some(&key)));
    }

    /// Grows a deep tree, then deletes everything in random order, checking as it shrinks.
    #[test]
    fn shrink_to_empty() {
        for (leaf, inner) in [(4, 4), (6, 5), (64, 64)] {
            let mut tree = BpsTree::with_node_capacities(leaf, inner);
            let mut rng = Rng::new(leaf as u64);
            let mut keys: Vec<u64> = (0..3000).map(|_| rng.below(1_000_000)).collect();
            for &key in &keys {
                tree.insert((key, 0), by_key);
            }
            tree.check_invariants(by_key);
            keys.sort_unstable();
            keys.dedup();
            assert_eq!(tree.len(), keys.len());
            for index in (1..keys.len()).rev() {
                let pick = rng.below(index as u64 + 1) as usize;
                keys.swap(index, pick);
            }
            for (done, key) in keys.iter().enumerate() {
                assert_eq!(tree.delete(key, key_cmp), Some((*key, 0)));
                if done % 7 == 0 || tree.len() < 50 {
                    tree.check_invariants(by_key);
                }
            }
            assert!(tree.is_empty());
            tree.check_invariants(by_key);
            assert_eq!(tree.memory_usage(), 0);
            assert_eq!(tree.first(), None);
            assert_eq!(tree.iter().next(), None);
        }
    }

    /// Ascending and descending runs, the shapes of auto-increment keys and their deletion.
    #[test]
    fn sequential_runs() {
        for (leaf, inner) in [(4, 4), (8, 4), (64, 64)] {
            let mut tree = BpsTree::with_node_capacities(leaf, inner);
            for key in 0..2000u64 {
                tree.insert((key, key), by_key);
                tree.check_invariants(by_key);
            }
            for key in (2000..4000u64).rev() {
                tree.insert((key, key), by_key);
            }
            for key in (10_000..12_000u64).rev() {
                tree.insert((key, key), by_key);
            }
            tree.check_invariants(by_key);
            for key in 0..1000u64 {
                assert!(tree.delete(&key, key_cmp).is_some());
                tree.check_invariants(by_key);
            }
            for key in (3000..4000u64).rev() {
                assert!(tree.delete(&key, key_cmp).is_some());
            }
            tree.check_invariants(by_key);
            let keys: Vec<u64> = tree.iter().map(|p| p.0).collect();
            let expected: Vec<u64> = (1000..3000).chain(10_000..12_000).collect();
            assert_eq!(keys, expected);
        }
    }

    /// Elements (a, b) searched by `a` alone: the bounds are the ends of the equal range,
    /// found in O(log n), and the count is the range's size.
    #[test]
    fn partial_key_ranges() {
        let by_both = |x: &Pair, y: &Pair| x.cmp(y);
        let by_first = |x: &Pair, a: &u64| x.0.cmp(a);
        let mut tree = BpsTree::with_node_capacities(4, 4);
        let mut model = BTreeMap::new();
        let mut rng = Rng::new(11);
        for _ in 0..3000 {
            let element = (rng.below(60), rng.below(40));
            tree.insert(element, by_both);
            model.insert(element, ());
        }
        tree.check_invariants(by_both);
        for a in 0..62u64 {
            let expected: Vec<Pair> = model.range((a, 0)..(a + 1, 0)).map(|(&e, _)| e).collect();
            assert_eq!(tree.count_range(&a, by_first), expected.len());
            let mut got = Vec::new();
            let end = tree.upper_bound(&a, by_first);
            let mut position = tree.lower_bound(&a, by_first);
            while let Some(current) = position.filter(|&p| Some(p) != end) {
                got.push(*tree.get(&current).unwrap());
                position = tree.next(&current);
            }
            assert_eq!(got, expected);
            // Backward: from the last element <= a down to the first >= a.
            let mut back = Vec::new();
            let mut position = match end {
                Some(end) => tree.prev(&end),
                None => tree.last(),
            };
            while let Some(current) = position {
                let element = *tree.get(&current).unwrap();
                if element.0 != a {
                    break;
                }
                back.push(element);
                position = tree.prev(&current);
            }
            back.reverse();
            assert_eq!(back, expected);
            let below = model.range(..(a, 0)).count();
            assert_eq!(tree.lower_bound_rank(&a, by_first), below);
            assert_eq!(tree.upper_bound_rank(&a, by_first), below + expected.len());
            assert_eq!(tree.find(&a, by_first), expected.first());
        }
        // Delete by partial key removes the first of the range.
        let first = *model.keys().next().unwrap();
        assert_eq!(tree.delete(&first.0, by_first), Some(first));
        tree.check_invariants(by_both);
    }

    /// Pair keys in groups of `span` (a coarse order with ties, as hints tie); `span` 0:
    /// everything ties, so the exact order decides alone.
    struct Grouped {
        span: u64,
    }

    impl Order<Pair, u64> for Grouped {
        const COARSE: bool = true;

        fn exact(&self, item: &Pair, key: &u64) -> Ordering {
            item.0.cmp(key)
        }

        fn coarse(&self, item: &Pair, key: &u64) -> Ordering {
            match self.span {
                0 => Ordering::Equal,
                span => (item.0 / span).cmp(&(key / span)),
            }
        }
    }

    /// A coarse order finds what the exact one alone finds: in a slice (runs of ties of
    /// every length, none at all, every key between and around the elements) and through
    /// the tree's searches, inserts and deletes.
    #[test]
    fn coarse_orders_find_what_exact_ones_do() {
        let items: Vec<Pair> = (0..40).map(|n| (n * 2, n)).collect();
        for span in [0, 1, 2, 3, 8, 100] {
            let grouped = Grouped { span };
            for len in [0, 1, 2, 3, 17, 40] {
                for key in 0..84 {
                    for bound in [Bound::Lower, Bound::Upper] {
                        let slice = &items[..len];
                        assert_eq!(
                            bound_index(slice, &key, &grouped, bound),
                            bound_index(slice, &key, &key_cmp, bound),
                            "span {span} len {len} key {key} {bound:?}"
                        );
                    }
                }
            }
            let mut tree = BpsTree::with_node_capacities(4, 4);
            let mut model = BTreeMap::new();
            let mut rng = Rng::new(span + 1);
            for step in 0..3000u64 {
                let key = rng.below(200);
                let entry_order = |a: &Pair, b: &Pair| grouped.exact(a, &b.0);
                if rng.below(3) == 0 {
                    let removed = tree.delete(&key, Grouped { span });
                    assert_eq!(removed.map(|p| p.1), model.remove(&key), "delete {key}");
                } else {
                    let replaced = tree.insert((key, step), entry_order);
                    assert_eq!(
                        replaced.map(|p| p.1),
                        model.insert(key, step),
                        "insert {key}"
                    );
                }
                let probe = rng.below(210);
                let found = tree.find(&probe, Grouped { span }).copied();
                assert_eq!(found, model.get(&probe).map(|&v| (probe, v)));
                let lower = tree.lower_bound(&probe, Grouped { span });
                let expected = model.range(probe..).next().map(|(&k, &v)| (k, v));
                assert_eq!(lower.and_then(|at| tree.get(&at).copied()), expected);
                let upper = tree.upper_bound(&probe, Grouped { span });
                let expected = model.range(probe + 1..).next().map(|(&k, &v)| (k, v));
                assert_eq!(upper.and_then(|at| tree.get(&at).copied()), expected);
            }
            tree.check_invariants(by_key);
        }
    }

    /// `bounds_many` finds what `lower_bound`/`upper_bound` find one at a time, whatever the
    /// batch, the bounds, the tree's height and a coarse order with ties; `touch` sees an
    /// element of each search's leaf.
    #[test]
    fn bounds_many_agree_with_single_searches() {
        let by_first = |x: &Pair, a: &u64| x.0.cmp(a);
        let mut rng = Rng::new(5);
        for (leaf, inner, count) in [(4, 4, 0), (4, 4, 1), (4, 4, 3000), (32, 64, 20_000)] {
            let mut tree = BpsTree::with_node_capacities(leaf, inner);
            for _ in 0..count {
                tree.insert((rng.below(count as u64 * 2), 0), by_key);
            }
            for round in 0..300 {
                let size = round % (BOUNDS_BATCH_MAX + 1);
                let searches: Vec<(u64, Bound)> = (0..size)
                    .map(|_| {
                        let bound = [Bound::Lower, Bound::Upper][rng.below(2) as usize];
                        (rng.below(count as u64 * 2 + 2), bound)
                    })
                    .collect();
                let touched = std::cell::Cell::new(0);
                let mut found = vec![None; size];
                let touch = |_: &Pair| touched.set(touched.get() + 1);
                // Ties for every four keys, as hints of a longer key tie.
                tree.bounds_many(&searches, Grouped { span: 4 }, touch, &mut found);
                for ((key, bound), found) in searches.iter().zip(&found) {
                    let expected = match bound {
                        Bound::Lower => tree.lower_bound(key, by_first),
                        Bound::Upper => tree.upper_bound(key, by_first),
                    };
                    assert_eq!(*found, expected, "{key} {bound:?} in {count}");
                }
                assert!(touched.get() <= size);
            }
        }
    }

    #[test]
    fn positions_walk_both_ways() {
        let mut tree = BpsTree::with_node_capacities(4, 4);
        for key in 0..500u64 {
            tree.insert((key * 2, 0), by_key);
        }
        let mut position = tree.first();
        let mut forward = Vec::new();
        while let Some(current) = position {
            forward.push(tree.get(&current).unwrap().0);
            position = tree.next(&current);
        }
        assert_eq!(forward, (0..500).map(|k| k * 2).collect::<Vec<_>>());
        let mut position = tree.last();
        let mut backward = Vec::new();
        while let Some(current) = position {
            backward.push(tree.get(&current).unwrap().0);
            position = tree.prev(&current);
        }
        forward.reverse();
        assert_eq!(backward, forward);
        for rank in 0..500 {
            let position = tree.position_at(rank).unwrap();
            assert_eq!(tree.get(&position).unwrap().0, rank as u64 * 2);
        }
        assert_eq!(tree.position_at(500), None);
        assert_eq!(tree.upper_bound(&998, key_cmp), None);
        assert_eq!(tree.lower_bound(&999, key_cmp), None);
        // A stale position never panics, whatever it now points at.
        let stale = tree.last().unwrap();
        for key in 0..500u64 {
            tree.delete(&(key * 2), key_cmp);
        }
        assert_eq!(tree.get(&stale), None);
        assert_eq!(tree.next(&stale), None);
        assert_eq!(tree.prev(&stale), None);
    }

    /// A scan that deletes what it visits (Lua `pairs()` with `delete`): positions go stale,
    /// so the cursor keeps its last element and re-seeks past it when the version moved.
    #[test]
    fn reseek_after_modification() {
        let mut tree = BpsTree::with_node_capacities(4, 4);
        for key in 0..1000u64 {
            tree.insert((key, 0), by_key);
        }
        let mut visited = Vec::new();
        let mut position = tree.first();
        let mut version = tree.version();
        let mut last: Option<u64> = None;
        for _ in 0..2000 {
            if tree.version() != version {
                position = last.and_then(|key| tree.upper_bound(&key, key_cmp));
            }
            let Some(current) = position else { break };
            let key = tree.get(&current).unwrap().0;
            visited.push(key);
            last = Some(key);
            position = tree.next(&current);
            version = tree.version();
            if key % 3 != 0 {
                tree.delete(&key, key_cmp);
            }
            if key % 10 == 0 && key < 1000 {
                tree.insert((key + 1000, 0), by_key);
            }
        }
        let expected: Vec<u64> = (0..1000).chain((1000..2000).step_by(10)).collect();
        assert_eq!(visited, expected);
        tree.check_invariants(by_key);
        assert!(tree.iter().all(|p| p.0 % 3 == 0));
    }

    #[test]
    fn random_is_roughly_uniform() {
        let mut tree = BpsTree::with_node_capacities(4, 4);
        assert_eq!(tree.random(1), None);
        for key in 0..20u64 {
            tree.insert((key, 0), by_key);
        }
        let mut hits = [0u32; 20];
        for seed in 0..100_000u64 {
            hits[tree.random(seed).unwrap().0 as usize] += 1;
        }
        for hit in hits {
            assert!((4000..6000).contains(&hit), "{hits:?}");
        }
    }

    /// A replace returns the old element, and no separator keeps a removed element alive.
    #[test]
    fn replace_and_no_retention() {
        let rc_cmp = |a: &Rc<Pair>, b: &Rc<Pair>| a.0.cmp(&b.0);
        let rc_key = |a: &Rc<Pair>, k: &u64| a.0.cmp(k);
        let mut tree = BpsTree::with_node_capacities(4, 4);
        for key in 0..300u64 {
            assert!(tree.insert(Rc::new((key, 0)), rc_cmp).is_none());
        }
        let mut removed = Vec::new();
        for key in 0..300u64 {
            let old = tree.insert(Rc::new((key, 1)), rc_cmp).unwrap();
            assert_eq!(*old, (key, 0));
            removed.push(old);
        }
        tree.check_invariants(rc_cmp);
        for key in (0..300u64).filter(|k| k % 2 == 0) {
            removed.push(tree.delete(&key, rc_key).unwrap());
        }
        tree.check_invariants(rc_cmp);
        for old in &removed {
            assert_eq!(Rc::strong_count(old), 1, "{old:?} retained");
        }
        assert!(tree.iter().all(|e| e.1 == 1 && e.0 % 2 == 1));
        tree.clear();
        assert!(tree.is_empty());
        tree.check_invariants(rc_cmp);
    }

    fn u64_cmp(a: &u64, b: &u64) -> Ordering {
        a.cmp(b)
    }

    /// A million elements, ascending and shuffled: invariants, order, and memory per
    /// element at the default node sizes.
    #[test]
    fn million_elements() {
        const COUNT: u64 = 1_000_000;
        let mut ascending = BpsTree::new();
        for key in 0..COUNT {
            ascending.insert(key, u64_cmp);
        }
        ascending.check_invariants(u64_cmp);
        let bytes = ascending.memory_usage() as f64 / COUNT as f64;
        assert!(bytes < 9.0, "ascending: {bytes} bytes per element");
        assert!(ascending.iter().copied().eq(0..COUNT));
        let mut shuffled = BpsTree::new();
        let mut rng = Rng::new(5);
        for _ in 0..COUNT {
            shuffled.insert(rng.next() >> 1, u64_cmp);
        }
        shuffled.check_invariants(u64_cmp);
        let bytes = shuffled.memory_usage() as f64 / shuffled.len() as f64;
        assert!(bytes < 12.0, "shuffled: {bytes} bytes per element");
        let mut rng = Rng::new(5);
        for _ in 0..COUNT / 2 {
            let key = rng.next() >> 1;
            assert_eq!(shuffled.find(&key, u64_cmp), Some(&key));
            shuffled.delete(&key, u64_cmp);
        }
        shuffled.check_invariants(u64_cmp);
        let bytes = shuffled.memory_usage() as f64 / shuffled.len() as f64;
        assert!(bytes < 16.0, "after deletes: {bytes} bytes per element");
    }

    /// An 8-byte element with a pointer, like a tuple reference.
    type Element = Rc<u64>;

    fn element_cmp(a: &Element, b: &Element) -> Ordering {
        a.cmp(b)
    }

    fn element_key(element: &Element, key: &u64) -> Ordering {
        (**element).cmp(key)
    }

    /// Millions of operations per second for `count` operations taking `seconds`.
    fn rate(count: usize, seconds: f64) -> f64 {
        count as f64 / seconds / 1e6
    }

    /// Throughput and memory at the default node sizes, with pointer elements (every
    /// comparison dereferences, as with tuples) and inline `u64`s, against std's BTreeSet;
    /// run with `cargo test --release --lib box::tree -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn bench_tree() {
        const COUNT: usize = 1_000_000;
        let mut rng = Rng::new(1);
        let keys: Vec<u64> = (0..COUNT).map(|_| rng.next()).collect();
        let elements: Vec<Element> = keys.iter().map(|&k| Rc::new(k)).collect();
        let mut sorted = elements.clone();
        sorted.sort();
        for (name, input) in [("random", &elements), ("ascending", &sorted)] {
            let mut tree = BpsTree::new();
            let start = Instant::now();
            for element in input {
                tree.insert(element.clone(), element_cmp);
            }
            let insert = start.elapsed().as_secs_f64();
            let start = Instant::now();
            let found = keys
                .iter()
                .filter(|k| tree.find(*k, element_key).is_some())
                .count();
            let find = start.elapsed().as_secs_f64();
            assert_eq!(found, COUNT);
            let start = Instant::now();
            let sum = tree.iter().fold(0u64, |sum, e| sum.wrapping_add(**e));
            let scan = start.elapsed().as_secs_f64();
            let bytes = tree.memory_usage() as f64 / COUNT as f64;
            let live = tree.leaves.len() - tree.leaves_free.len();
            let fill = COUNT as f64 / (live * tree.leaf_capacity) as f64;
            let height = tree.height();
            let start = Instant::now();
            for key in &keys[..COUNT / 2] {
                tree.delete(key, element_key);
            }
            let delete = start.elapsed().as_secs_f64();
            let bytes_after = tree.memory_usage() as f64 / tree.len() as f64;
            println!(
                "tree<Rc<u64>> {name}: insert {:.2} M/s, find {:.2} M/s, scan {:.0} M/s, \
                 delete {:.2} M/s; {bytes:.2} bytes/element, leaves {:.0}% full, height \
                 {height}; {bytes_after:.2} bytes/element after deleting half (sum {sum})",
                rate(COUNT, insert),
                rate(COUNT, find),
                rate(COUNT, scan),
                rate(COUNT / 2, delete),
                fill * 100.0,
            );
        }
        let start = Instant::now();
        let mut tree = BpsTree::new();
        for &key in &keys {
            tree.insert(key, u64_cmp);
        }
        let insert = start.elapsed().as_secs_f64();
        let start = Instant::now();
        let found = keys
            .iter()
            .filter(|k| tree.find(*k, u64_cmp).is_some())
            .count();
        let find = start.elapsed().as_secs_f64();
        assert_eq!(found, COUNT);
        println!(
            "tree<u64> random: insert {:.2} M/s, find {:.2} M/s",
            rate(COUNT, insert),
            rate(COUNT, find)
        );
        let start = Instant::now();
        let mut set = std::collections::BTreeSet::new();
        for element in &elements {
            set.insert(element.clone());
        }
        let insert = start.elapsed().as_secs_f64();
        let start = Instant::now();
        let found = keys.iter().filter(|k| set.contains(*k)).count();
        let find = start.elapsed().as_secs_f64();
        assert_eq!(found, COUNT);
        println!(
            "std BTreeSet<Rc<u64>> random: insert {:.2} M/s, find {:.2} M/s",
            rate(COUNT, insert),
            rate(COUNT, find)
        );
    }
}
