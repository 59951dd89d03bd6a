//! Spaces: a definition, its indexes, and the replace that keeps every index in step.
//!
//! Owned by the TX thread. All data changes go through [`Space::replace`]: it checks every
//! unique index for duplicates first and only then touches the indexes, so a failed
//! statement leaves nothing half done.

use super::index::Index;
use super::key_def;
use super::tuple::Tuple;
use crate::error::{BoxError, ErrCode};

/// What a space is, as `_space` describes it.
#[derive(Clone, Debug)]
pub struct SpaceDef {
    pub id: u32,
    pub owner: u32,
    pub name: String,
    pub engine: String,
    /// Required field count; 0 means any.
    pub field_count: u32,
    /// Temporary spaces are never written to the WAL or snapshots.
    pub temporary: bool,
    /// `_space[6]`, the format, as MessagePack (documentation only in 1.6).
    pub format: Vec<u8>,
}

impl SpaceDef {
    /// Whether the space is a system view (`_vspace` ...): read-only, read through.
    pub fn is_view(&self) -> bool {
        self.engine == "sysview"
    }
}

/// How a replace treats an existing tuple with the same primary key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DupMode {
    /// INSERT: an existing tuple is an error.
    Insert,
    /// REPLACE: an existing tuple is replaced, a missing one inserted.
    ReplaceOrInsert,
    /// UPDATE: the given old tuple is replaced (it exists).
    Replace,
}

/// A space and its indexes (index 0 is the primary key; ids up to 127, with gaps).
pub struct Space {
    pub def: SpaceDef,
    /// Set through [`Space::set_indexes`], which keeps `format` in step.
    indexes: Vec<Option<Index>>,
    /// What a new tuple is checked against, from the indexes' definitions.
    format: key_def::TupleFormat,
    /// Bytes of the tuples stored (for `space:bsize()`).
    pub bsize: usize,
}

impl Space {
    pub fn new(def: SpaceDef) -> Space {
        Space {
            def,
            indexes: Vec::new(),
            format: key_def::TupleFormat::default(),
            bsize: 0,
        }
    }

    /// Install `indexes` (index `i` at `i`, gaps as None); returns the previous ones.
    pub fn set_indexes(&mut self, indexes: Vec<Option<Index>>) -> Vec<Option<Index>> {
        let previous = std::mem::replace(&mut self.indexes, indexes);
        let defs: Vec<&key_def::KeyDef> = self.all_indexes().map(|i| &i.def.key_def).collect();
        self.format = key_def::TupleFormat::new(&defs);
        previous
    }

    /// The index slots, index `i` at `i` (gaps as None).
    pub fn index_slots(&self) -> &[Option<Index>] {
        &self.indexes
    }

    pub fn index(&self, id: u32) -> Option<&Index> {
        self.indexes.get(id as usize).and_then(Option::as_ref)
    }

    pub fn index_mut(&mut self, id: u32) -> Option<&mut Index> {
        self.indexes.get_mut(id as usize).and_then(Option::as_mut)
    }

    /// The index named `name`.
    pub fn index_by_name(&self, name: &str) -> Option<&Index> {
        self.indexes
            .iter()
            .flatten()
            .find(|index| index.def.name == name)
    }

    pub fn primary(&self) -> Option<&Index> {
        self.index(0)
    }

    /// Tuples in the space (the primary key's size).
    pub fn len(&self) -> usize {
        self.primary().map_or(0, Index::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every index, primary first.
    pub fn all_indexes(&self) -> impl Iterator<Item = &Index> {
        self.indexes.iter().flatten()
    }

    /// ER_NO_SUCH_INDEX for index `id` of this space.
    pub fn no_such_index(&self, id: u32) -> BoxError {
        BoxError::new(ErrCode::NO_SUCH_INDEX, &[&id, &self.def.name])
    }

    /// Check a new tuple against the space: an array, the field count, and every index's
    /// fields present and of their types.
    pub fn validate(&self, tuple: &[u8]) -> Result<(), BoxError> {
        self.format
            .validate(tuple, self.def.field_count, &self.def.name)
    }

    /// Replace `old` by `new` in every index (either may be None: an insert or a delete).
    /// Returns the tuple that was replaced. Nothing changes if an error is returned.
    pub fn replace(
        &mut self,
        old: Option<&Tuple>,
        new: Option<&Tuple>,
        mode: DupMode,
    ) -> Result<Option<Tuple>, BoxError> {
        if self.primary().is_none() {
            return Err(self.no_such_index(0));
        }
        // One search of the primary key does the lookup and the change; a duplicate or a
        // secondary conflict found afterwards puts the primary key back.
        let old = self.replace_primary(old, new, mode)?;
        if let Some(new) = new
            && let Err(err) = self.check_unique(new, old.as_ref())
        {
            self.restore_primary(new, old.as_ref());
            return Err(err);
        }
        for index in self.indexes.iter_mut().skip(1).flatten() {
            if let Some(old) = &old {
                index.remove(old);
            }
            if let Some(new) = new {
                index.insert(new.clone());
            }
        }
        if let Some(old) = &old {
            self.bsize -= old.bsize();
        }
        if let Some(new) = new {
            self.bsize += new.bsize();
        }
        Ok(old)
    }

    /// Change the primary key; returns the tuple replaced. INSERT over an existing key
    /// is undone at once and refused.
    fn replace_primary(
        &mut self,
        old: Option<&Tuple>,
        new: Option<&Tuple>,
        mode: DupMode,
    ) -> Result<Option<Tuple>, BoxError> {
        let primary = self.index_mut(0).expect("primary key checked");
        let Some(new) = new else {
            return Ok(old.and_then(|old| primary.remove(old)));
        };
        let displaced = primary.insert(new.clone());
        if mode == DupMode::Insert
            && let Some(displaced) = displaced
        {
            primary.insert(displaced);
            let primary = self.primary().expect("primary key checked");
            return Err(self.duplicate(primary));
        }
        Ok(displaced)
    }

    /// Undo `replace_primary` after a secondary conflict.
    fn restore_primary(&mut self, new: &Tuple, old: Option<&Tuple>) {
        let primary = self.index_mut(0).expect("primary key checked");
        match old {
            Some(old) => {
                primary.insert(old.clone());
            }
            None => {
                primary.remove(new);
            }
        }
    }

    /// Every unique secondary index must have no entry equal to `new` other than `old`.
    fn check_unique(&self, new: &Tuple, old: Option<&Tuple>) -> Result<(), BoxError> {
        for index in self.all_indexes().skip(1).filter(|index| index.def.unique) {
            if let Some(existing) = index.find_like(new) {
                let is_old = old.is_some_and(|old| Tuple::ptr_eq(existing, old));
                if !is_old {
                    return Err(self.duplicate(index));
                }
            }
        }
        Ok(())
    }

    /// ER_TUPLE_FOUND for `index`.
    fn duplicate(&self, index: &Index) -> BoxError {
        BoxError::new(ErrCode::TUPLE_FOUND, &[&index.def.name, &self.def.name])
    }

    /// Drop every tuple (`truncate`, or the primary key being dropped).
    pub fn clear(&mut self) {
        let defs: Vec<(super::index::IndexDef, bool)> = self
            .all_indexes()
            .map(|index| (index.def.clone(), index.def.id == 0))
            .collect();
        let primary = self.primary().map(|index| index.def.key_def.clone());
        for (def, _) in defs {
            let id = def.id as usize;
            self.indexes[id] = Some(Index::new(def, primary.as_ref()));
        }
        self.bsize = 0;
    }
}
