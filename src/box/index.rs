//! Indexes of a memtx space: TREE (a B+ tree) and HASH over tuples, ordered or hashed by a
//! key definition, with cursors that survive changes made between their steps.
//!
//! Owned by the TX thread.

use std::cmp::Ordering;

use super::hash::HashTable;
use super::key_def::{self, KeyDef};
use super::tree::{BOUNDS_BATCH_MAX, Bound, BpsTree, Order};
use super::tuple::Tuple;
use crate::error::{BoxError, ErrCode};

/// Index types of `_index[3]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IndexKind {
    Tree,
    Hash,
    Bitset,
    Rtree,
}

impl IndexKind {
    /// Parse `_index[3]`, case-insensitively.
    pub fn parse(name: &str) -> Option<IndexKind> {
        match name.to_ascii_uppercase().as_str() {
            "TREE" => Some(IndexKind::Tree),
            "HASH" => Some(IndexKind::Hash),
            "BITSET" => Some(IndexKind::Bitset),
            "RTREE" => Some(IndexKind::Rtree),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            IndexKind::Tree => "TREE",
            IndexKind::Hash => "HASH",
            IndexKind::Bitset => "BITSET",
            IndexKind::Rtree => "RTREE",
        }
    }
}

/// Iterator types (`box.index.EQ` ...), numbered as on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IteratorType {
    Eq = 0,
    Req = 1,
    All = 2,
    Lt = 3,
    Le = 4,
    Ge = 5,
    Gt = 6,
    BitsAllSet = 7,
    BitsAnySet = 8,
    BitsAllNotSet = 9,
    Overlaps = 10,
    Neighbor = 11,
}

impl IteratorType {
    pub fn from_number(n: u64) -> Option<IteratorType> {
        use IteratorType::*;
        Some(match n {
            0 => Eq,
            1 => Req,
            2 => All,
            3 => Lt,
            4 => Le,
            5 => Ge,
            6 => Gt,
            7 => BitsAllSet,
            8 => BitsAnySet,
            9 => BitsAllNotSet,
            10 => Overlaps,
            11 => Neighbor,
            _ => return None,
        })
    }

    /// Parse a name as Lua passes it (`'EQ'`, `'ge'`, also `'='` style aliases are not 1.6).
    pub fn parse(name: &str) -> Option<IteratorType> {
        use IteratorType::*;
        Some(match name.to_ascii_uppercase().as_str() {
            "EQ" => Eq,
            "REQ" => Req,
            "ALL" => All,
            "LT" => Lt,
            "LE" => Le,
            "GE" => Ge,
            "GT" => Gt,
            "BITS_ALL_SET" => BitsAllSet,
            "BITS_ANY_SET" => BitsAnySet,
            "BITS_ALL_NOT_SET" => BitsAllNotSet,
            "OVERLAPS" => Overlaps,
            "NEIGHBOR" => Neighbor,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        use IteratorType::*;
        match self {
            Eq => "EQ",
            Req => "REQ",
            All => "ALL",
            Lt => "LT",
            Le => "LE",
            Ge => "GE",
            Gt => "GT",
            BitsAllSet => "BITS_ALL_SET",
            BitsAnySet => "BITS_ANY_SET",
            BitsAllNotSet => "BITS_ALL_NOT_SET",
            Overlaps => "OVERLAPS",
            Neighbor => "NEIGHBOR",
        }
    }

    /// Whether the iterator walks backwards.
    fn is_reverse(self) -> bool {
        matches!(
            self,
            IteratorType::Req | IteratorType::Lt | IteratorType::Le
        )
    }
}

/// What an index is, as `_index` describes it.
#[derive(Clone, Debug)]
pub struct IndexDef {
    pub space_id: u32,
    pub id: u32,
    pub name: String,
    pub kind: IndexKind,
    pub unique: bool,
    pub key_def: KeyDef,
}

/// The storage of an index.
enum IndexData {
    Tree(BpsTree<Hinted>),
    Hash(HashTable<Tuple>),
}

/// A TREE entry: a tuple and the hint of its first key part (`key_def::hint_of_tuple`).
/// Searches compare hints first and load the tuple only when they tie, so most steps of a
/// descent stay inside the node (memtx's `memtx_tree_data`). 16 bytes instead of 8.
#[derive(Clone, Debug)]
struct Hinted {
    /// `hint_of_tuple(tuple, cmp_def)`, fixed at insertion (tuples never change).
    hint: u64,
    tuple: Tuple,
}

/// A tuple to find in a TREE, with its hint: the probe of inserts, deletes and re-seeks.
struct TupleProbe<'a> {
    hint: u64,
    /// Equal hints mean equal keys (`key_def::hint_is_exact`): the entry's tuple is not
    /// loaded. (Key searches load it anyway: a select reads the tuple it finds, and loading
    /// it within the search overlaps that miss with the node's; an insert or delete only
    /// unlinks the old tuple.)
    exact: bool,
    data: &'a [u8],
}

/// A search key for a TREE, with its hint; `None` for a key with no parts (it matches
/// every entry, so only the full comparison may judge).
struct KeyProbe<'a> {
    hint: Option<u64>,
    key: &'a [u8],
}

/// An entry against a tuple: hints, then the tuples on a tie.
#[inline]
fn compare_with_tuple(entry: &Hinted, probe: &TupleProbe<'_>, cmp_def: &KeyDef) -> Ordering {
    match entry.hint.cmp(&probe.hint) {
        Ordering::Equal if probe.exact => Ordering::Equal,
        Ordering::Equal => key_def::compare_tuples(entry.tuple.data(), probe.data, cmp_def),
        order => order,
    }
}

/// An entry against a key: hints if the key has one, then the tuple and the key on a tie.
#[inline]
fn compare_with_key(entry: &Hinted, probe: &KeyProbe<'_>, cmp_def: &KeyDef) -> Ordering {
    if let Some(hint) = probe.hint
        && entry.hint != hint
    {
        return entry.hint.cmp(&hint);
    }
    key_def::compare_tuple_with_key(entry.tuple.data(), probe.key, cmp_def)
}

/// Entries against a tuple ([`compare_with_tuple`]); the hints alone are the coarse order
/// the tree bisects on without branches.
#[derive(Clone, Copy)]
struct TupleOrder<'d>(&'d KeyDef);

impl<'p> Order<Hinted, TupleProbe<'p>> for TupleOrder<'_> {
    const COARSE: bool = true;

    #[inline]
    fn exact(&self, entry: &Hinted, probe: &TupleProbe<'p>) -> Ordering {
        compare_with_tuple(entry, probe, self.0)
    }

    #[inline]
    fn coarse(&self, entry: &Hinted, probe: &TupleProbe<'p>) -> Ordering {
        entry.hint.cmp(&probe.hint)
    }
}

/// Entries against a key ([`compare_with_key`]), hints first when the key has one.
#[derive(Clone, Copy)]
struct KeyOrder<'d>(&'d KeyDef);

impl<'p> Order<Hinted, KeyProbe<'p>> for KeyOrder<'_> {
    const COARSE: bool = true;

    #[inline]
    fn exact(&self, entry: &Hinted, probe: &KeyProbe<'p>) -> Ordering {
        compare_with_key(entry, probe, self.0)
    }

    #[inline]
    fn coarse(&self, entry: &Hinted, probe: &KeyProbe<'p>) -> Ordering {
        match probe.hint {
            Some(hint) => entry.hint.cmp(&hint),
            None => Ordering::Equal,
        }
    }
}

/// Entries against a new entry, whose hint is `exact` or not (an insert's order).
struct EntryOrder<'d> {
    cmp_def: &'d KeyDef,
    exact: bool,
}

impl Order<Hinted, Hinted> for EntryOrder<'_> {
    const COARSE: bool = true;

    #[inline]
    fn exact(&self, entry: &Hinted, new: &Hinted) -> Ordering {
        let probe = TupleProbe {
            hint: new.hint,
            exact: self.exact,
            data: new.tuple.data(),
        };
        compare_with_tuple(entry, &probe, self.cmp_def)
    }

    #[inline]
    fn coarse(&self, entry: &Hinted, new: &Hinted) -> Ordering {
        entry.hint.cmp(&new.hint)
    }
}

/// Entries against a bare hint: a search by hints alone, which reads no tuple (the warm-up
/// of [`Index::warm_for_tuples`], whose tuples are not validated yet).
#[derive(Clone, Copy)]
struct HintOrder;

impl Order<Hinted, u64> for HintOrder {
    const COARSE: bool = true;

    #[inline]
    fn exact(&self, entry: &Hinted, hint: &u64) -> Ordering {
        entry.hint.cmp(hint)
    }

    #[inline]
    fn coarse(&self, entry: &Hinted, hint: &u64) -> Ordering {
        entry.hint.cmp(hint)
    }
}

/// An index: its definition, the ordering it keeps (the key parts, and for a non-unique
/// index the primary key's parts after them, so every entry is distinct) and the entries.
pub struct Index {
    pub def: IndexDef,
    cmp_def: KeyDef,
    data: IndexData,
}

impl Index {
    /// An empty index. `primary` is the primary key's definition (for a non-unique index).
    pub fn new(def: IndexDef, primary: Option<&KeyDef>) -> Index {
        let cmp_def = match (def.unique, primary) {
            (false, Some(primary)) => key_def::merge_with_primary(&def.key_def, primary),
            _ => def.key_def.clone(),
        };
        let data = match def.kind {
            IndexKind::Hash => IndexData::Hash(HashTable::new()),
            _ => IndexData::Tree(BpsTree::new()),
        };
        Index { def, cmp_def, data }
    }

    pub fn len(&self) -> usize {
        match &self.data {
            IndexData::Tree(tree) => tree.len(),
            IndexData::Hash(hash) => hash.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes the index structure itself uses (not the tuples).
    pub fn memory_usage(&self) -> usize {
        match &self.data {
            IndexData::Tree(tree) => tree.memory_usage(),
            IndexData::Hash(hash) => hash.memory_usage(),
        }
    }

    /// Changes of the index so far; a cursor re-seeks when it differs from what it saw.
    pub fn version(&self) -> u64 {
        match &self.data {
            IndexData::Tree(tree) => tree.version(),
            IndexData::Hash(hash) => hash.version(),
        }
    }

    /// The entry whose key equals `tuple`'s (in this index's ordering).
    pub fn find_like(&self, tuple: &Tuple) -> Option<&Tuple> {
        let cmp_def = &self.cmp_def;
        match &self.data {
            IndexData::Tree(tree) => {
                let probe = self.tuple_probe(tuple);
                tree.find(&probe, TupleOrder(cmp_def))
                    .map(|entry| &entry.tuple)
            }
            IndexData::Hash(hash) => {
                let code = key_def::hash_tuple(tuple.data(), cmp_def);
                hash.find(code, |entry: &Tuple| {
                    key_def::compare_tuples(entry.data(), tuple.data(), cmp_def) == Ordering::Equal
                })
            }
        }
    }

    /// The entry matching a full key (unique indexes).
    pub fn find_by_key(&self, key: &[u8]) -> Option<&Tuple> {
        let cmp_def = &self.cmp_def;
        match &self.data {
            IndexData::Tree(tree) => {
                let probe = self.key_probe(key);
                tree.find(&probe, KeyOrder(cmp_def))
                    .map(|entry| &entry.tuple)
            }
            IndexData::Hash(hash) => {
                let code = key_def::hash_key(key, cmp_def);
                hash.find(code, |entry: &Tuple| {
                    key_def::compare_tuple_with_key(entry.data(), key, cmp_def) == Ordering::Equal
                })
            }
        }
    }

    /// Add `tuple`; an entry with an equal key is replaced and returned.
    pub fn insert(&mut self, tuple: Tuple) -> Option<Tuple> {
        let cmp_def = &self.cmp_def;
        match &mut self.data {
            IndexData::Tree(tree) => {
                let hint = key_def::hint_of_tuple(tuple.data(), cmp_def);
                let exact = key_def::hint_is_exact(tuple.data(), cmp_def);
                let entry = Hinted { hint, tuple };
                let replaced = tree.insert(entry, EntryOrder { cmp_def, exact });
                replaced.map(|entry| entry.tuple)
            }
            IndexData::Hash(hash) => {
                let code = key_def::hash_tuple(tuple.data(), cmp_def);
                hash.insert(tuple, code, |a: &Tuple, b: &Tuple| {
                    key_def::compare_tuples(a.data(), b.data(), cmp_def) == Ordering::Equal
                })
            }
        }
    }

    /// Remove the entry whose key equals `tuple`'s.
    pub fn remove(&mut self, tuple: &Tuple) -> Option<Tuple> {
        let cmp_def = &self.cmp_def;
        match &mut self.data {
            IndexData::Tree(tree) => {
                let probe = TupleProbe {
                    hint: key_def::hint_of_tuple(tuple.data(), cmp_def),
                    exact: key_def::hint_is_exact(tuple.data(), cmp_def),
                    data: tuple.data(),
                };
                let removed = tree.delete(&probe, TupleOrder(cmp_def));
                removed.map(|entry| entry.tuple)
            }
            IndexData::Hash(hash) => {
                let code = key_def::hash_tuple(tuple.data(), cmp_def);
                hash.delete(code, |entry: &Tuple| {
                    key_def::compare_tuples(entry.data(), tuple.data(), cmp_def) == Ordering::Equal
                })
            }
        }
    }

    /// Every entry in index order (a snapshot of references; for building and dropping).
    pub fn tuples(&self) -> Vec<Tuple> {
        match &self.data {
            IndexData::Tree(tree) => tree.iter().map(|entry| entry.tuple.clone()).collect(),
            IndexData::Hash(hash) => hash.iter().cloned().collect(),
        }
    }

    /// Some entry picked by `seed` (`index:random`).
    pub fn random(&self, seed: u64) -> Option<Tuple> {
        match &self.data {
            IndexData::Tree(tree) => tree.random(seed).map(|entry| entry.tuple.clone()),
            IndexData::Hash(hash) => hash.random(seed).cloned(),
        }
    }

    /// Check that `iterator` with a key of `part_count` parts is allowed on this index.
    pub fn check_iterator(
        &self,
        iterator: IteratorType,
        part_count: u32,
        space_name: &str,
    ) -> Result<(), BoxError> {
        let supported = match self.def.kind {
            IndexKind::Tree => !matches!(
                iterator,
                IteratorType::BitsAllSet
                    | IteratorType::BitsAnySet
                    | IteratorType::BitsAllNotSet
                    | IteratorType::Overlaps
                    | IteratorType::Neighbor
            ),
            IndexKind::Hash => matches!(
                iterator,
                IteratorType::Eq | IteratorType::All | IteratorType::Gt
            ),
            _ => false,
        };
        if !supported {
            return Err(BoxError::new(
                ErrCode::UNSUPPORTED_INDEX_FEATURE,
                &[
                    &self.def.name,
                    &self.def.kind.name(),
                    &space_name,
                    &"memtx",
                    &"requested iterator type",
                ],
            ));
        }
        let parts = self.def.key_def.parts.len() as u32;
        let partial = part_count < parts;
        if self.def.kind == IndexKind::Hash
            && partial
            && !(part_count == 0 && matches!(iterator, IteratorType::All | IteratorType::Gt))
        {
            return Err(BoxError::new(ErrCode::EXACT_MATCH, &[&parts, &part_count]));
        }
        Ok(())
    }

    /// A cursor for `iterator` over `key` (already validated), borrowing the key (see
    /// [`Cursor::into_owned`]).
    pub fn cursor<'k>(&self, iterator: IteratorType, key: &'k [u8], part_count: u32) -> Cursor<'k> {
        let iterator = if part_count == 0 {
            // An empty key matches everything: EQ/GE/... become a full walk in their direction.
            match iterator {
                IteratorType::Req | IteratorType::Lt | IteratorType::Le => IteratorType::Le,
                _ => IteratorType::All,
            }
        } else {
            iterator
        };
        Cursor {
            iterator,
            key: std::borrow::Cow::Borrowed(key),
            part_count,
            last: None,
            at: None,
            located: None,
            started: false,
            finished: false,
        }
    }

    /// Finds where each of `cursors` (not started, all over this index) starts, by one
    /// `BpsTree::bounds_many` for the TREE searches among them, so that their cache misses
    /// overlap; each cursor then starts from there while the tree is unchanged. A HASH
    /// index, or a cursor that starts at an end, needs no search.
    pub fn locate_starts(&self, cursors: &mut [&mut Cursor<'_>]) {
        let IndexData::Tree(tree) = &self.data else {
            return;
        };
        for chunk in cursors.chunks_mut(BOUNDS_BATCH_MAX) {
            let mut searches = Vec::with_capacity(chunk.len());
            for cursor in chunk.iter() {
                if let Some(bound) = cursor.start_bound() {
                    searches.push((self.key_probe(&cursor.key), bound));
                }
            }
            let mut found = [None; BOUNDS_BATCH_MAX];
            let found = &mut found[..searches.len()];
            let touch = |entry: &Hinted| entry.tuple.prefetch();
            tree.bounds_many(&searches, self.key_cmp(), touch, found);
            let searching = chunk
                .iter_mut()
                .filter(|cursor| cursor.start_bound().is_some());
            for (cursor, position) in searching.zip(found.iter()) {
                cursor.located = Some((tree.version(), *position));
            }
        }
    }

    /// Starts loading what writing each of `tuples` will touch: the TREE leaf it lands in
    /// and the entry with its hint there, the tuple a REPLACE would displace. One
    /// `BpsTree::bounds_many` over their hints, so that the cache misses of several writes
    /// overlap before they run one by one, each waiting for its own otherwise. Reads only,
    /// by hints alone: the tuples need not be valid, and a hint shared across leaves only
    /// warms a neighbour. A HASH index is left alone.
    pub fn warm_for_tuples(&self, tuples: &[&[u8]]) {
        let IndexData::Tree(tree) = &self.data else {
            return;
        };
        for chunk in tuples.chunks(BOUNDS_BATCH_MAX) {
            let mut searches = [(0, Bound::Lower); BOUNDS_BATCH_MAX];
            for (search, tuple) in searches.iter_mut().zip(chunk) {
                search.0 = key_def::hint_of_tuple(tuple, &self.cmp_def);
            }
            let mut found = [None; BOUNDS_BATCH_MAX];
            let touch = |entry: &Hinted| entry.tuple.prefetch();
            let count = chunk.len();
            tree.bounds_many(&searches[..count], HintOrder, touch, &mut found[..count]);
        }
    }

    /// `tuple` with its hint, to search a TREE with `tuple_cmp`.
    fn tuple_probe<'a>(&self, tuple: &'a Tuple) -> TupleProbe<'a> {
        TupleProbe {
            hint: key_def::hint_of_tuple(tuple.data(), &self.cmp_def),
            exact: key_def::hint_is_exact(tuple.data(), &self.cmp_def),
            data: tuple.data(),
        }
    }

    /// `key` with its hint, to search a TREE with `key_cmp`.
    fn key_probe<'a>(&self, key: &'a [u8]) -> KeyProbe<'a> {
        KeyProbe {
            hint: key_def::hint_of_key(key, &self.cmp_def),
            key,
        }
    }

    fn key_cmp(&self) -> KeyOrder<'_> {
        KeyOrder(&self.cmp_def)
    }

    fn tuple_cmp(&self) -> TupleOrder<'_> {
        TupleOrder(&self.cmp_def)
    }
}

/// A position in an index for one iterator: it remembers the last tuple it returned and
/// finds its place again from it, so entries added or removed between steps (a `pairs()`
/// loop deleting what it visits) never invalidate it. While the index is unchanged it
/// keeps the container's own position too and steps from it without a search.
#[derive(Debug)]
pub struct Cursor<'k> {
    iterator: IteratorType,
    /// Borrowed from the request for a select, owned for a Lua iterator.
    key: std::borrow::Cow<'k, [u8]>,
    part_count: u32,
    last: Option<Tuple>,
    /// Where `last` is, as of the container version beside it.
    at: Option<(u64, At)>,
    /// The result of the search the walk starts from ([`Cursor::start_bound`]), found
    /// ahead by [`Index::locate_starts`], as of the tree version beside it.
    located: Option<(u64, Option<super::tree::Position>)>,
    started: bool,
    finished: bool,
}

/// A container position of [`Cursor::at`].
#[derive(Clone, Copy, Debug)]
enum At {
    Tree(super::tree::Position),
    /// A slot and the table's capacity then (a resize moves everything).
    Hash(super::hash::Slot, usize),
}

impl Cursor<'_> {
    /// The cursor with a copy of its key, to outlive the request (a Lua iterator).
    pub fn into_owned(self) -> Cursor<'static> {
        Cursor {
            key: std::borrow::Cow::Owned(self.key.into_owned()),
            ..self
        }
    }

    /// The next tuple, or None when the iterator is exhausted.
    pub fn next(&mut self, index: &Index) -> Option<Tuple> {
        if self.finished {
            return None;
        }
        let found = match &index.data {
            IndexData::Tree(tree) => self.next_in_tree(index, tree),
            IndexData::Hash(hash) => self.next_in_hash(index, hash),
        };
        match &found {
            Some(tuple) => self.last = Some(tuple.clone()),
            None => self.finished = true,
        }
        self.started = true;
        found
    }

    fn next_in_tree(&mut self, index: &Index, tree: &BpsTree<Hinted>) -> Option<Tuple> {
        let reverse = self.iterator.is_reverse();
        let position = match (&self.last, self.started, self.at) {
            (Some(_), true, Some((version, At::Tree(at)))) if version == tree.version() => {
                if reverse {
                    tree.prev(&at)
                } else {
                    tree.next(&at)
                }
            }
            (Some(last), true, _) => {
                let cmp = index.tuple_cmp();
                let probe = index.tuple_probe(last);
                if reverse {
                    // Before the first entry not below `last`; past the end: the last one.
                    match tree.lower_bound(&probe, cmp) {
                        Some(position) => tree.prev(&position),
                        None => tree.last(),
                    }
                } else {
                    tree.upper_bound(&probe, cmp)
                }
            }
            _ => self.first_position(index, tree),
        }?;
        self.at = Some((tree.version(), At::Tree(position)));
        let tuple = tree.get(&position)?.tuple.clone();
        self.matches(index, &tuple).then_some(tuple)
    }

    /// Where the walk starts.
    fn first_position(
        &self,
        index: &Index,
        tree: &BpsTree<Hinted>,
    ) -> Option<super::tree::Position> {
        let bound = match self.located {
            Some((version, position)) if version == tree.version() => position,
            _ => {
                let key = &index.key_probe(&self.key);
                match self.start_bound() {
                    Some(Bound::Lower) => tree.lower_bound(key, index.key_cmp()),
                    Some(Bound::Upper) => tree.upper_bound(key, index.key_cmp()),
                    None => None,
                }
            }
        };
        match self.iterator {
            IteratorType::All => tree.first(),
            IteratorType::Eq | IteratorType::Ge | IteratorType::Gt => bound,
            // A bound past the end means every entry is on the near side: start at the last.
            IteratorType::Req | IteratorType::Le | IteratorType::Lt => match bound {
                Some(position) => tree.prev(&position),
                None => tree.last(),
            },
            _ => None,
        }
    }

    /// The search a TREE walk starts from: the first entry not below the key (EQ, GE, and
    /// LT steps back from it) or above it (GT, and REQ and LE step back); none for ALL.
    fn start_bound(&self) -> Option<Bound> {
        match self.iterator {
            IteratorType::Eq | IteratorType::Ge | IteratorType::Lt => Some(Bound::Lower),
            IteratorType::Gt | IteratorType::Req | IteratorType::Le => Some(Bound::Upper),
            _ => None,
        }
    }

    /// Whether `tuple` is still inside the iterator's range (EQ and REQ stop at the key's
    /// end; the others run to the end of the index).
    fn matches(&self, index: &Index, tuple: &Tuple) -> bool {
        if self.part_count == 0 {
            return true;
        }
        let order = key_def::compare_tuple_with_key(tuple.data(), &self.key, &index.cmp_def);
        match self.iterator {
            IteratorType::Eq | IteratorType::Req => order == Ordering::Equal,
            IteratorType::Ge => order != Ordering::Less,
            IteratorType::Gt => order == Ordering::Greater,
            IteratorType::Le => order != Ordering::Greater,
            IteratorType::Lt => order == Ordering::Less,
            _ => true,
        }
    }

    fn next_in_hash(&mut self, index: &Index, hash: &HashTable<Tuple>) -> Option<Tuple> {
        let cmp_def = &index.cmp_def;
        let key: &[u8] = &self.key;
        match self.iterator {
            IteratorType::Eq => {
                if self.started {
                    return None;
                }
                index.find_by_key(key).cloned()
            }
            _ => {
                let slot = match (&self.last, self.started, self.at) {
                    (Some(_), true, Some((version, At::Hash(at, _))))
                        if version == hash.version() =>
                    {
                        hash.next(at)
                    }
                    (Some(last), true, at) => {
                        let code = key_def::hash_tuple(last.data(), cmp_def);
                        let here = hash.position_of(code, |entry: &Tuple| {
                            key_def::compare_tuples(entry.data(), last.data(), cmp_def)
                                == Ordering::Equal
                        });
                        match (here, at) {
                            (Some(slot), _) => hash.next(slot),
                            // `last` was deleted: the rest of its run shifted back into its
                            // slot, so the walk goes on from that slot itself.
                            (None, Some((_, At::Hash(at, capacity))))
                                if capacity == hash.capacity() =>
                            {
                                hash.get(at).map(|_| at).or_else(|| hash.next(at))
                            }
                            // Resized: every slot moved; start again.
                            (None, Some(_)) => hash.first(),
                            (None, None) => None,
                        }
                    }
                    _ if self.iterator == IteratorType::Gt => {
                        let code = key_def::hash_key(key, cmp_def);
                        let here = hash.position_of(code, |entry: &Tuple| {
                            key_def::compare_tuple_with_key(entry.data(), key, cmp_def)
                                == Ordering::Equal
                        });
                        match here {
                            Some(slot) => hash.next(slot),
                            None => hash.first(),
                        }
                    }
                    _ => hash.first(),
                }?;
                self.at = Some((hash.version(), At::Hash(slot, hash.capacity())));
                hash.get(slot).cloned()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::r#box::key_def::{FieldType, KeyPart};

    fn index(kind: IndexKind) -> Index {
        let key_def = KeyDef::new(vec![KeyPart {
            fieldno: 0,
            field_type: FieldType::Unsigned,
        }]);
        let def = IndexDef {
            space_id: 512,
            id: 0,
            name: "pk".into(),
            kind,
            unique: true,
            key_def,
        };
        Index::new(def, None)
    }

    fn tuple(n: u8) -> Tuple {
        Tuple::new(&[0x91, n])
    }

    fn first_field(tuple: &Tuple) -> u8 {
        tuple.data()[1]
    }

    /// Walk with `cursor`, calling `between` after every step; the visited keys.
    fn walk(index: &mut Index, mut cursor: Cursor, between: impl Fn(&mut Index, u8)) -> Vec<u8> {
        let mut seen = Vec::new();
        while let Some(found) = cursor.next(index) {
            seen.push(first_field(&found));
            between(index, first_field(&found));
        }
        seen
    }

    /// The warm-up reads by hints alone and changes nothing, whatever bytes it is given.
    #[test]
    fn warming_for_tuples_changes_nothing_and_takes_any_bytes() {
        for kind in [IndexKind::Tree, IndexKind::Hash] {
            let mut index = index(kind);
            for n in (0..120).step_by(3) {
                index.insert(tuple(n));
            }
            let before: Vec<_> = index.tuples().iter().map(first_field).collect();
            let version = index.version();
            let present = [0x91, 6];
            let absent = [0x91, 7];
            let beyond = [0x91, 0xcc, 250];
            let garbage: [&[u8]; 6] =
                [&[], &[0xc1], &[0x91], &[0x92, 0xa1], &[0xdd, 0xff], &[0x90]];
            let mut tuples: Vec<&[u8]> = vec![&present, &absent, &beyond];
            tuples.extend(garbage);
            // More than one batch of searches.
            for _ in 0..3 {
                tuples.extend_from_within(..9);
            }
            index.warm_for_tuples(&tuples);
            index.warm_for_tuples(&tuples[..1]);
            index.warm_for_tuples(&[]);
            let after: Vec<_> = index.tuples().iter().map(first_field).collect();
            assert_eq!((after, index.version()), (before, version));
        }
        let empty = index(IndexKind::Tree);
        empty.warm_for_tuples(&[&[0x91, 1], &[0x91, 2]]);
        assert!(empty.is_empty());
    }

    #[test]
    fn tree_cursor_steps_and_survives_changes() {
        let mut tree = index(IndexKind::Tree);
        for n in (0..40).step_by(2) {
            tree.insert(tuple(n));
        }
        let all = tree.cursor(IteratorType::All, &[0x90], 0);
        assert_eq!(
            walk(&mut tree, all, |_, _| {}),
            (0..40).step_by(2).collect::<Vec<_>>()
        );
        // Deleting what was just visited and inserting just ahead of it are both seen.
        let all = tree.cursor(IteratorType::All, &[0x90], 0);
        let seen = walk(&mut tree, all, |index, n| {
            index.remove(&tuple(n));
            if n % 4 == 0 && n < 40 {
                index.insert(tuple(n + 1));
            }
        });
        let expected: Vec<u8> = (0..40).filter(|n| n % 2 == 0 || (n - 1) % 4 == 0).collect();
        assert_eq!(seen, expected);
        let reverse = tree.cursor(IteratorType::Le, &[0x90], 0);
        assert!(walk(&mut tree, reverse, |_, _| {}).is_empty());
    }

    #[test]
    fn tree_cursor_reverse_from_a_key() {
        let mut tree = index(IndexKind::Tree);
        for n in 0..10 {
            tree.insert(tuple(n));
        }
        let le = tree.cursor(IteratorType::Le, &[0x91, 5], 1);
        assert_eq!(walk(&mut tree, le, |_, _| {}), vec![5, 4, 3, 2, 1, 0]);
        let lt = tree.cursor(IteratorType::Lt, &[0x91, 5], 1);
        let seen = walk(&mut tree, lt, |index, n| {
            if n > 0 {
                index.remove(&tuple(n - 1));
            }
        });
        assert_eq!(seen, vec![4, 2, 0]);
    }

    /// What a cursor over `key` must return: the model's tuples in index order, filtered
    /// and directed as `iterator` says, by full comparisons only.
    fn expected(index: &Index, model: &[Tuple], iterator: IteratorType, key: &[u8]) -> Vec<Tuple> {
        let cmp_def = &index.cmp_def;
        let mut sorted = model.to_vec();
        sorted.sort_by(|a, b| key_def::compare_tuples(a.data(), b.data(), cmp_def));
        let wanted = |tuple: &Tuple| {
            let order = key_def::compare_tuple_with_key(tuple.data(), key, cmp_def);
            match iterator {
                IteratorType::Eq | IteratorType::Req => order == Ordering::Equal,
                IteratorType::Ge => order != Ordering::Less,
                IteratorType::Gt => order == Ordering::Greater,
                IteratorType::Le => order != Ordering::Greater,
                IteratorType::Lt => order == Ordering::Less,
                _ => true,
            }
        };
        sorted.retain(wanted);
        if iterator.is_reverse() {
            sorted.reverse();
        }
        sorted
    }

    /// A random encoded value for a hinted part: numbers of every encoding with their
    /// edges, and strings sharing 8-byte prefixes or holding zero bytes.
    fn hinted_value(random: &mut crate::r#box::TestRng) -> Vec<u8> {
        let mut out = Vec::new();
        let _ = match random.below(6) {
            0 => rmp::encode::write_uint(&mut out, random.below(20)).map(drop),
            1 => rmp::encode::write_sint(&mut out, -(random.below(20) as i64)).map(drop),
            2 => rmp::encode::write_f64(&mut out, (random.below(40) as f64 - 20.0) / 2.0),
            3 => match random.below(4) {
                0 => rmp::encode::write_uint(&mut out, u64::MAX).map(drop),
                1 => rmp::encode::write_sint(&mut out, i64::MIN).map(drop),
                2 => rmp::encode::write_f64(&mut out, -0.0),
                _ => rmp::encode::write_f64(&mut out, f64::NAN),
            },
            _ => {
                let prefix = format!("prefix{}", random.below(3));
                let tail: String = (0..random.below(3))
                    .map(|_| ["a", "b", "\0"][random.below(3) as usize])
                    .collect();
                let text = prefix + &tail;
                rmp::encode::write_str(&mut out, &text)
            }
        };
        out
    }

    /// A one-field array of an encoded value after `head` (if any).
    fn array_of(head: Option<u64>, value: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let _ = rmp::encode::write_array_len(&mut out, 1 + u32::from(head.is_some()));
        if let Some(head) = head {
            let _ = rmp::encode::write_uint(&mut out, head);
        }
        out.extend_from_slice(value);
        out
    }

    /// `value` as MessagePack: the smallest uint encoding, or when `signed`, as an int64.
    fn encoded_uint(value: u64, signed: bool) -> Vec<u8> {
        let mut out = Vec::new();
        match i64::try_from(value) {
            Ok(value) if signed => {
                let _ = rmp::encode::write_i64(&mut out, value);
            }
            _ => {
                let _ = rmp::encode::write_uint(&mut out, value);
            }
        }
        out
    }

    #[test]
    fn exact_hints_find_equal_keys_in_any_encoding() {
        let primary = IndexDef {
            space_id: 512,
            id: 0,
            name: "pk".into(),
            kind: IndexKind::Tree,
            unique: true,
            key_def: KeyDef::new(vec![KeyPart {
                fieldno: 0,
                field_type: FieldType::Unsigned,
            }]),
        };
        let mut index = Index::new(primary, None);
        let mut random = crate::r#box::TestRng::new(0xe8ac);
        let mut model = std::collections::BTreeMap::new();
        let edges = [
            0,
            1,
            127,
            128,
            255,
            256,
            65535,
            65536,
            u64::from(u32::MAX),
            u64::MAX,
        ];
        for step in 0..2000u64 {
            let value = match random.below(3) {
                0 => edges[random.below(edges.len() as u64) as usize],
                _ => random.below(500),
            };
            let mut data = vec![0x92];
            data.extend(encoded_uint(value, random.below(2) == 0));
            data.extend(encoded_uint(step, false));
            let tuple = Tuple::new(&data);
            if random.below(3) == 0 {
                let removed = index.remove(&tuple).map(|t| t.data().to_vec());
                assert_eq!(removed, model.remove(&value), "remove {value}");
            } else {
                let replaced = index.insert(tuple).map(|t| t.data().to_vec());
                assert_eq!(replaced, model.insert(value, data), "replace {value}");
            }
        }
        assert_eq!(index.len(), model.len());
        let mut cursor = index.cursor(IteratorType::All, &[0x90], 0);
        let mut seen = Vec::new();
        while let Some(tuple) = cursor.next(&index) {
            seen.push(tuple.data().to_vec());
        }
        assert_eq!(seen, model.into_values().collect::<Vec<_>>());
    }

    #[test]
    fn hinted_trees_agree_with_full_comparisons() {
        let mut random = crate::r#box::TestRng::new(0x7ee5);
        for field_type in [FieldType::Number, FieldType::Scalar, FieldType::String] {
            let primary = KeyDef::new(vec![KeyPart {
                fieldno: 0,
                field_type: FieldType::Unsigned,
            }]);
            let secondary = IndexDef {
                space_id: 512,
                id: 1,
                name: "sk".into(),
                kind: IndexKind::Tree,
                unique: false,
                key_def: KeyDef::new(vec![KeyPart {
                    fieldno: 1,
                    field_type,
                }]),
            };
            let mut index = Index::new(secondary, Some(&primary));
            let mut model: Vec<Tuple> = Vec::new();
            for id in 0..300u64 {
                let value = hinted_value(&mut random);
                let tuple = Tuple::new(&array_of(Some(id), &value));
                if random.below(4) == 0 && !model.is_empty() {
                    let victim = model.swap_remove(random.below(model.len() as u64) as usize);
                    assert!(index.remove(&victim).is_some());
                }
                assert!(index.insert(tuple.clone()).is_none());
                model.push(tuple);
            }
            assert_eq!(index.len(), model.len());
            for _ in 0..200 {
                let key = array_of(None, &hinted_value(&mut random));
                for iterator in [
                    IteratorType::Eq,
                    IteratorType::Req,
                    IteratorType::Ge,
                    IteratorType::Gt,
                    IteratorType::Le,
                    IteratorType::Lt,
                ] {
                    let mut cursor = index.cursor(iterator, &key, 1);
                    let mut seen = Vec::new();
                    while let Some(tuple) = cursor.next(&index) {
                        seen.push(tuple);
                    }
                    let want = expected(&index, &model, iterator, &key);
                    assert_eq!(seen, want, "{field_type:?} {iterator:?} {key:02x?}");
                }
            }
            for tuple in &model {
                assert!(Tuple::ptr_eq(index.find_like(tuple).unwrap(), tuple));
            }
        }
    }

    #[test]
    fn hash_cursor_visits_every_entry_once() {
        let mut hash = index(IndexKind::Hash);
        for n in 0..100 {
            hash.insert(tuple(n));
        }
        let all = hash.cursor(IteratorType::All, &[0x90], 0);
        let mut seen = walk(&mut hash, all, |_, _| {});
        seen.sort_unstable();
        assert_eq!(seen, (0..100).collect::<Vec<_>>());
        // Deleting each visited entry (no resize on delete) still visits all of them.
        let all = hash.cursor(IteratorType::All, &[0x90], 0);
        let mut seen = walk(&mut hash, all, |index, n| {
            index.remove(&tuple(n));
        });
        seen.sort_unstable();
        assert_eq!(seen, (0..100).collect::<Vec<_>>());
        assert!(hash.is_empty());
    }

    /// Cursors started together by `locate_starts` walk as they do alone, for every
    /// iterator, keys in and out of the index, an empty key, and a batch over the chunk
    /// size; a change between locating and walking makes them search again.
    #[test]
    fn located_cursors_walk_as_lone_ones() {
        let mut tree = index(IndexKind::Tree);
        for n in (0..60).step_by(3) {
            tree.insert(tuple(n));
        }
        let iterators = [
            IteratorType::Eq,
            IteratorType::Req,
            IteratorType::All,
            IteratorType::Lt,
            IteratorType::Le,
            IteratorType::Ge,
            IteratorType::Gt,
        ];
        let keys: Vec<(IteratorType, Vec<u8>, u32)> = (0..40u8)
            .map(|n| {
                let iterator = iterators[n as usize % iterators.len()];
                match n % 11 {
                    0 => (iterator, vec![0x90], 0),
                    _ => (iterator, vec![0x91, n * 2 % 64], 1),
                }
            })
            .collect();
        let lone = |index: &mut Index| -> Vec<Vec<u8>> {
            keys.iter()
                .map(|(iterator, key, parts)| {
                    walk(index, index.cursor(*iterator, key, *parts), |_, _| {})
                })
                .collect()
        };
        let expected = lone(&mut tree);
        let mut cursors: Vec<Cursor> = keys
            .iter()
            .map(|(iterator, key, parts)| tree.cursor(*iterator, key, *parts))
            .collect();
        tree.locate_starts(&mut cursors.iter_mut().collect::<Vec<_>>());
        assert!(cursors.iter().any(|cursor| cursor.located.is_some()));
        let walked: Vec<Vec<u8>> = cursors
            .into_iter()
            .map(|cursor| walk(&mut tree, cursor, |_, _| {}))
            .collect();
        assert_eq!(walked, expected);
        // Located, then the index changes: the cursors find their start again.
        let mut cursors: Vec<Cursor> = keys
            .iter()
            .map(|(iterator, key, parts)| tree.cursor(*iterator, key, *parts))
            .collect();
        tree.locate_starts(&mut cursors.iter_mut().collect::<Vec<_>>());
        tree.insert(tuple(31));
        tree.remove(&tuple(30));
        let expected = lone(&mut tree);
        let walked: Vec<Vec<u8>> = cursors
            .into_iter()
            .map(|cursor| walk(&mut tree, cursor, |_, _| {}))
            .collect();
        assert_eq!(walked, expected);
    }
}
