//! TEMPORARY stand-in until the real hash table lands: a Vec scanned linearly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot(usize);
pub struct HashTable<T> {
    items: Vec<(u32, T)>,
    version: u64,
}
impl<T: Clone> Default for HashTable<T> {
    fn default() -> Self {
        Self::new()
    }
}
impl<T: Clone> HashTable<T> {
    pub fn new() -> Self {
        HashTable {
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
        self.items.capacity() * 16
    }
    pub fn insert(&mut self, item: T, hash: u32, eq: impl Fn(&T, &T) -> bool) -> Option<T> {
        self.version += 1;
        for (h, e) in self.items.iter_mut() {
            if *h == hash && eq(e, &item) {
                return Some(std::mem::replace(e, item));
            }
        }
        self.items.push((hash, item));
        None
    }
    pub fn find(&self, hash: u32, eq: impl Fn(&T) -> bool) -> Option<&T> {
        self.items
            .iter()
            .find(|(h, e)| *h == hash && eq(e))
            .map(|(_, e)| e)
    }
    pub fn delete(&mut self, hash: u32, eq: impl Fn(&T) -> bool) -> Option<T> {
        let i = self.items.iter().position(|(h, e)| *h == hash && eq(e))?;
        self.version += 1;
        Some(self.items.remove(i).1)
    }
    pub fn position_of(&self, hash: u32, eq: impl Fn(&T) -> bool) -> Option<Slot> {
        self.items
            .iter()
            .position(|(h, e)| *h == hash && eq(e))
            .map(Slot)
    }
    pub fn first(&self) -> Option<Slot> {
        (!self.items.is_empty()).then_some(Slot(0))
    }
    pub fn next(&self, s: Slot) -> Option<Slot> {
        (s.0 + 1 < self.items.len()).then_some(Slot(s.0 + 1))
    }
    pub fn get(&self, s: Slot) -> Option<&T> {
        self.items.get(s.0).map(|(_, e)| e)
    }
    pub fn random(&self, seed: u64) -> Option<&T> {
        if self.items.is_empty() {
            None
        } else {
            self.items
                .get(seed as usize % self.items.len())
                .map(|(_, e)| e)
        }
    }
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.items.iter().map(|(_, e)| e)
    }
}
