//! TEMPORARY stand-in until the real B+ tree lands: a sorted Vec.
use std::cmp::Ordering;
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position(usize);
pub struct BpsTree<T> {
    items: Vec<T>,
    version: u64,
}
impl<T: Clone> Default for BpsTree<T> {
    fn default() -> Self {
        Self::new()
    }
}
impl<T: Clone> BpsTree<T> {
    pub fn new() -> Self {
        BpsTree {
            items: Vec::new(),
            version: 0,
        }
    }
    pub fn len(&self) -> usize {
        self.items.len()
    }
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
    pub fn version(&self) -> u64 {
        self.version
    }
    pub fn memory_usage(&self) -> usize {
        self.items.capacity() * std::mem::size_of::<T>()
    }
    pub fn insert(&mut self, item: T, cmp: impl Fn(&T, &T) -> Ordering) -> Option<T> {
        self.version += 1;
        match self.items.binary_search_by(|e| cmp(e, &item)) {
            Ok(i) => Some(std::mem::replace(&mut self.items[i], item)),
            Err(i) => {
                self.items.insert(i, item);
                None
            }
        }
    }
    pub fn delete<K: ?Sized>(&mut self, key: &K, cmp: impl Fn(&T, &K) -> Ordering) -> Option<T> {
        match self.items.binary_search_by(|e| cmp(e, key)) {
            Ok(i) => {
                self.version += 1;
                Some(self.items.remove(i))
            }
            Err(_) => None,
        }
    }
    pub fn find<K: ?Sized>(&self, key: &K, cmp: impl Fn(&T, &K) -> Ordering) -> Option<&T> {
        self.items
            .binary_search_by(|e| cmp(e, key))
            .ok()
            .map(|i| &self.items[i])
    }
    pub fn lower_bound<K: ?Sized>(
        &self,
        key: &K,
        cmp: impl Fn(&T, &K) -> Ordering,
    ) -> Option<Position> {
        let i = self
            .items
            .partition_point(|e| cmp(e, key) == Ordering::Less);
        (i < self.items.len()).then_some(Position(i))
    }
    pub fn upper_bound<K: ?Sized>(
        &self,
        key: &K,
        cmp: impl Fn(&T, &K) -> Ordering,
    ) -> Option<Position> {
        let i = self
            .items
            .partition_point(|e| cmp(e, key) != Ordering::Greater);
        (i < self.items.len()).then_some(Position(i))
    }
    pub fn first(&self) -> Option<Position> {
        (!self.items.is_empty()).then_some(Position(0))
    }
    pub fn last(&self) -> Option<Position> {
        self.items.len().checked_sub(1).map(Position)
    }
    pub fn get(&self, p: &Position) -> Option<&T> {
        self.items.get(p.0)
    }
    pub fn next(&self, p: &Position) -> Option<Position> {
        (p.0 + 1 < self.items.len()).then_some(Position(p.0 + 1))
    }
    pub fn prev(&self, p: &Position) -> Option<Position> {
        p.0.checked_sub(1).map(Position)
    }
    pub fn random(&self, seed: u64) -> Option<&T> {
        if self.items.is_empty() {
            None
        } else {
            self.items.get(seed as usize % self.items.len())
        }
    }
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.items.iter()
    }
}
