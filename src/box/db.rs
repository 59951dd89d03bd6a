//! The database of the TX thread: the spaces, the schema version, and the one function that
//! executes every data request, from Lua now and from iproto, recovery and replication later.
//!
//! Owned by the TX thread. A request names its space and index by id and carries its key,
//! tuple and update operations as MessagePack, exactly as on the wire, so every path into
//! the data is this one.

use std::collections::HashMap;

use super::alter;
use super::index::IteratorType;
use super::key_def;
use super::schema;
use super::space::{DupMode, Space, SpaceDef};
use super::tuple::Tuple;
use super::txn::{JournalRow, RowData, RowKind, Stmt, Txn};
use super::update;
use super::user::{self, Access};
use crate::error::{BoxError, ErrCode};

/// The kinds of data requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestKind {
    Select,
    Insert,
    Replace,
    Update,
    Delete,
    Upsert,
}

/// A data request, its parts as MessagePack (an empty slice for a part it lacks).
#[derive(Clone, Debug)]
pub struct Request<'a> {
    pub kind: RequestKind,
    pub space_id: u32,
    pub index_id: u32,
    /// KEY: an array (select, update, delete).
    pub key: &'a [u8],
    /// TUPLE: the tuple (insert, replace, upsert) or the update operations (update).
    pub tuple: &'a [u8],
    /// OPS: the upsert operations.
    pub ops: &'a [u8],
    /// The iterator type number (select).
    pub iterator: u64,
    pub offset: u32,
    pub limit: u32,
    /// 1 when field numbers in update operations count from 1 (Lua), 0 on the wire.
    pub index_base: u32,
    /// The user the request runs as (access checks, view filtering).
    pub uid: u32,
}

impl<'a> Request<'a> {
    /// A request of `kind` on a space, every other part empty.
    pub fn new(kind: RequestKind, space_id: u32) -> Request<'a> {
        Request {
            kind,
            space_id,
            index_id: 0,
            key: &[],
            tuple: &[],
            ops: &[],
            iterator: 0,
            offset: 0,
            limit: u32::MAX,
            index_base: 0,
            uid: schema::ADMIN,
        }
    }
}

/// A SELECT between its checks and its walk.
struct Select<'a> {
    /// The space asked for (a view, for `_v*` spaces).
    space: &'a Space,
    /// The index walked (of the view's source space, for a view).
    index: &'a super::index::Index,
    cursor: super::index::Cursor<'a>,
}

/// Limits the configuration sets on tuples.
#[derive(Clone, Copy, Debug)]
pub struct TupleLimits {
    /// Bytes all tuples may hold (`slab_alloc_arena`).
    pub memory: usize,
    /// Bytes one tuple may have (`slab_alloc_maximal`).
    pub tuple_size: usize,
}

impl Default for TupleLimits {
    fn default() -> TupleLimits {
        TupleLimits {
            memory: 1 << 30,
            tuple_size: 1 << 20,
        }
    }
}

/// The spaces and everything the schema rows configure.
pub struct Db {
    /// By id, hashed by one multiplication: every request looks its space up.
    spaces: rustc_hash::FxHashMap<u32, Space>,
    names: HashMap<String, u32>,
    /// Bumped on every change of a space or index definition; sent with every reply.
    pub schema_version: u32,
    /// Spaces whose definition changed since the Lua side last looked.
    pub changed_spaces: Vec<u32>,
    pub cluster_uuid: Option<String>,
    pub instance_uuid: String,
    /// This instance's id in `_cluster`; 0 until registered.
    pub server_id: u32,
    /// `_cluster`: server id → UUID.
    pub cluster: std::collections::BTreeMap<u32, String>,
    pub limits: TupleLimits,
    /// Users, roles, functions and grants, as the system spaces describe them.
    pub access: Access,
    /// `read_only`: every change is refused with ER_READONLY.
    pub read_only: bool,
}

impl Db {
    /// The schema before any row: the stored system spaces with their primary keys only.
    pub fn new(instance_uuid: &str) -> Db {
        let mut db = Db {
            spaces: HashMap::default(),
            names: HashMap::new(),
            schema_version: 0,
            changed_spaces: Vec::new(),
            cluster_uuid: None,
            instance_uuid: instance_uuid.to_string(),
            server_id: 0,
            cluster: Default::default(),
            limits: TupleLimits::default(),
            access: Access::default(),
            read_only: false,
        };
        for (def, index) in schema::stubs() {
            let mut space = Space::new(def);
            space.set_indexes(vec![Some(super::index::Index::new(index, None))]);
            db.add_space(space);
        }
        db
    }

    /// Load the rows of a new instance through the write path (triggers included).
    pub fn bootstrap(&mut self, bootstrap_uuid: &str) -> Result<(), BoxError> {
        for row in schema::bootstrap_rows(bootstrap_uuid) {
            let mut request = Request::new(RequestKind::Insert, row.space_id);
            request.tuple = &row.tuple;
            let mut txn = Txn::autocommit();
            self.execute(&mut txn, &request)?;
        }
        Ok(())
    }

    // {{{ the space catalogue

    pub fn space(&self, id: u32) -> Option<&Space> {
        self.spaces.get(&id)
    }

    pub fn space_mut(&mut self, id: u32) -> Option<&mut Space> {
        self.spaces.get_mut(&id)
    }

    pub fn space_id_by_name(&self, name: &str) -> Option<u32> {
        self.names.get(name).copied()
    }

    /// Every space, in no particular order.
    pub fn spaces(&self) -> impl Iterator<Item = &Space> {
        self.spaces.values()
    }

    /// Add a space (replacing one with the same id).
    pub fn add_space(&mut self, space: Space) -> Option<Space> {
        let id = space.def.id;
        let old = self.remove_space(id);
        self.names.insert(space.def.name.clone(), id);
        self.spaces.insert(id, space);
        self.schema_changed(id);
        old
    }

    /// Remove a space from the catalogue.
    pub fn remove_space(&mut self, id: u32) -> Option<Space> {
        let space = self.spaces.remove(&id)?;
        if self.names.get(&space.def.name) == Some(&id) {
            self.names.remove(&space.def.name);
        }
        self.schema_changed(id);
        Some(space)
    }

    /// Replace a space's definition, keeping its indexes and data.
    pub fn set_space_def(&mut self, def: SpaceDef) -> Option<SpaceDef> {
        let id = def.id;
        let new_name = def.name.clone();
        let space = self.spaces.get_mut(&id)?;
        let old = std::mem::replace(&mut space.def, def);
        if self.names.get(&old.name) == Some(&id) {
            self.names.remove(&old.name);
        }
        self.names.insert(new_name, id);
        self.schema_changed(id);
        Some(old)
    }

    /// Note a definition change of space `id`.
    pub fn schema_changed(&mut self, id: u32) {
        self.schema_version = self.schema_version.wrapping_add(1);
        if !self.changed_spaces.contains(&id) {
            self.changed_spaces.push(id);
        }
    }

    fn space_or_error(&self, id: u32) -> Result<&Space, BoxError> {
        self.spaces
            .get(&id)
            .ok_or_else(|| BoxError::new(ErrCode::NO_SUCH_SPACE, &[&id]))
    }

    // }}}

    // {{{ requests

    /// Execute one request in `txn`. A select returns the tuples found; a change returns
    /// the tuple it produced (insert, replace, update) or removed (delete), if any.
    pub fn execute(&mut self, txn: &mut Txn, request: &Request) -> Result<Vec<Tuple>, BoxError> {
        match request.kind {
            RequestKind::Select => self.select(request),
            _ => self
                .modify(txn, request)
                .map(|tuple| tuple.into_iter().collect()),
        }
    }

    /// [`Self::execute`] for a caller that takes one tuple: the new (or deleted) tuple of
    /// a change, the first found by a SELECT.
    pub fn execute_one(
        &mut self,
        txn: &mut Txn,
        request: &Request,
    ) -> Result<Option<Tuple>, BoxError> {
        match request.kind {
            RequestKind::Select => Ok(self.select(request)?.into_iter().next()),
            _ => self.modify(txn, request),
        }
    }

    /// SELECT: the tuples of an index from a key, with offset and limit.
    pub fn select(&self, request: &Request) -> Result<Vec<Tuple>, BoxError> {
        let mut select = self.start_select(request)?;
        let mut found = Vec::new();
        self.walk_select(&mut select, request, &mut found);
        Ok(found)
    }

    /// SELECTs of several requests, in order: as [`Self::select`] each, but the searches
    /// of those over one TREE index run together ([`super::index::Index::locate_starts`]),
    /// their cache misses overlapping. `each(i, found)` gets the result of `requests[i]`
    /// and says whether to go on; returns how many ran (at least one, if any were given).
    pub fn select_many(
        &self,
        requests: &[Request],
        mut each: impl FnMut(usize, Result<&[Tuple], BoxError>) -> bool,
    ) -> usize {
        let mut selects: Vec<_> = requests.iter().map(|r| self.start_select(r)).collect();
        // Most batches read one index; a request over another searches alone, and so
        // does a lone request (together there is nothing to overlap).
        let first = selects.iter().find_map(|select| select.as_ref().ok());
        if let Some(index) = first.map(|select| select.index) {
            let mut cursors: Vec<_> = selects
                .iter_mut()
                .filter_map(|select| select.as_mut().ok())
                .filter(|select| std::ptr::eq(select.index, index))
                .map(|select| &mut select.cursor)
                .collect();
            if cursors.len() > 1 {
                index.locate_starts(&mut cursors);
            }
        }
        let mut found = Vec::new();
        for (i, (select, request)) in selects.into_iter().zip(requests).enumerate() {
            let go_on = match select {
                Ok(mut select) => {
                    found.clear();
                    self.walk_select(&mut select, request, &mut found);
                    each(i, Ok(&found))
                }
                Err(err) => each(i, Err(err)),
            };
            if !go_on {
                return i + 1;
            }
        }
        requests.len()
    }

    /// Starts loading what the INSERTs and REPLACEs among `requests` will touch in their
    /// space's primary key (the first such request's space; [`Index::warm_for_tuples`]),
    /// before they run one at a time. Changes nothing and checks nothing: each request
    /// still runs, and fails, as it would have.
    ///
    /// [`Index::warm_for_tuples`]: super::index::Index::warm_for_tuples
    pub fn warm_writes(&self, requests: &[Request]) {
        let writes = || {
            requests.iter().filter(|request| {
                matches!(request.kind, RequestKind::Insert | RequestKind::Replace)
            })
        };
        let Some(space_id) = writes().next().map(|request| request.space_id) else {
            return;
        };
        let Some(primary) = self.space(space_id).and_then(|space| space.primary()) else {
            return;
        };
        let mut tuples = [&[] as &[u8]; super::tree::BOUNDS_BATCH_MAX];
        let mut count = 0;
        for request in writes().filter(|request| request.space_id == space_id) {
            if count == tuples.len() {
                break;
            }
            tuples[count] = request.tuple;
            count += 1;
        }
        if count > 1 {
            primary.warm_for_tuples(&tuples[..count]);
        }
    }

    /// A cursor over the index a SELECT `request` names, after the checks of a select
    /// (`index:pairs()` walks it step by step, with [`Self::cursor_next`]).
    pub fn open_cursor<'a>(
        &'a self,
        request: &Request<'a>,
    ) -> Result<super::index::Cursor<'a>, BoxError> {
        self.start_select(request).map(|select| select.cursor)
    }

    /// A SELECT checked and ready to walk: its index and cursor.
    fn start_select<'a>(&'a self, request: &Request<'a>) -> Result<Select<'a>, BoxError> {
        let space = self.space_or_error(request.space_id)?;
        self.access.check_space(
            request.uid,
            space.def.id,
            space.def.owner,
            &space.def.name,
            user::READ,
        )?;
        let source = match schema::view_source(space.def.id) {
            Some(id) if space.def.is_view() => self.space_or_error(id)?,
            _ => space,
        };
        let index = source
            .index(request.index_id)
            .ok_or_else(|| space.no_such_index(request.index_id))?;
        let iterator = IteratorType::from_number(request.iterator)
            .ok_or_else(|| BoxError::new(ErrCode::ILLEGAL_PARAMS, &[&"Invalid iterator type"]))?;
        let allow_partial = index.def.kind == super::index::IndexKind::Tree;
        let parts = key_def::validate_key(request.key, &index.def.key_def, allow_partial).or_else(
            |err| match empty_key(request.key) {
                true => Ok(0),
                false => Err(err),
            },
        )?;
        index.check_iterator(iterator, parts, &space.def.name)?;
        Ok(Select {
            space,
            index,
            cursor: index.cursor(iterator, request.key, parts),
        })
    }

    /// The tuples of a started SELECT, past its offset, up to its limit, into `found`.
    fn walk_select(&self, select: &mut Select<'_>, request: &Request, found: &mut Vec<Tuple>) {
        let id = select.space.def.id;
        let filter =
            select.space.def.is_view() && self.access.universe(request.uid) & user::READ == 0;
        let mut skipped = 0;
        while (found.len() as u64) < u64::from(request.limit) {
            let Some(tuple) = select.cursor.next(select.index) else {
                break;
            };
            if filter && !self.view_shows(id, request.uid, &tuple) {
                continue;
            }
            if skipped < request.offset {
                skipped += 1;
                continue;
            }
            found.push(tuple);
        }
    }

    /// INSERT, REPLACE, UPDATE, DELETE, UPSERT.
    fn modify(&mut self, txn: &mut Txn, request: &Request) -> Result<Option<Tuple>, BoxError> {
        let space = self.space_or_error(request.space_id)?;
        if space.def.is_view() {
            return Err(BoxError::new(ErrCode::VIEW_IS_RO, &[&space.def.name]));
        }
        if self.read_only && !space.def.temporary {
            return Err(BoxError::new(ErrCode::READONLY, &[]));
        }
        self.access.check_space(
            request.uid,
            space.def.id,
            space.def.owner,
            &space.def.name,
            user::WRITE,
        )?;
        if schema::is_system(space.def.id) && txn.multi_statement {
            let what = format!("Space {}", space.def.name);
            return Err(BoxError::new(
                ErrCode::UNSUPPORTED,
                &[&what, &"multi-statement transactions"],
            ));
        }
        let (old, new, mode) = match request.kind {
            RequestKind::Insert => (
                None,
                Some(self.new_tuple(space, request.tuple)?),
                DupMode::Insert,
            ),
            RequestKind::Replace => (
                None,
                Some(self.new_tuple(space, request.tuple)?),
                DupMode::ReplaceOrInsert,
            ),
            RequestKind::Update => match self.prepare_update(space, request)? {
                Some((old, new)) => (Some(old), Some(new), DupMode::Replace),
                None => return self.record_noop(txn, request),
            },
            RequestKind::Delete => match self.find_unique(space, request)? {
                Some(old) => (Some(old), None, DupMode::Replace),
                None => return self.record_noop(txn, request),
            },
            RequestKind::Upsert => match self.prepare_upsert(space, request)? {
                (None, new) => (None, Some(new), DupMode::Insert),
                (Some(old), new) => (Some(old), Some(new), DupMode::Replace),
            },
            RequestKind::Select => unreachable!("select is not a change"),
        };
        let row = journal_row(space, request, old.as_ref(), new.as_ref());
        let space_id = request.space_id;
        let space = self.space_mut(space_id).expect("space checked above");
        let replaced = space.replace(old.as_ref(), new.as_ref(), mode)?;
        let alter = match alter::on_replace(self, space_id, replaced.as_ref(), new.as_ref()) {
            Ok(undo) => undo.map(Box::new),
            Err(err) => {
                self.revert(space_id, replaced.as_ref(), new.as_ref());
                return Err(err);
            }
        };
        let result = match request.kind {
            RequestKind::Delete => replaced.clone(),
            RequestKind::Upsert => None,
            _ => new.clone(),
        };
        txn.stmts.push(Stmt {
            space_id,
            old: replaced,
            new,
            alter,
            row,
        });
        Ok(result)
    }

    /// An UPDATE or DELETE that found nothing still goes to the WAL, as Tarantool's do.
    fn record_noop(&mut self, txn: &mut Txn, request: &Request) -> Result<Option<Tuple>, BoxError> {
        let space = self.space_or_error(request.space_id)?;
        let row = journal_row(space, request, None, None);
        txn.stmts.push(Stmt {
            space_id: request.space_id,
            old: None,
            new: None,
            alter: None,
            row,
        });
        Ok(None)
    }

    /// Put a space back after a failed trigger.
    fn revert(&mut self, space_id: u32, old: Option<&Tuple>, new: Option<&Tuple>) {
        if let Some(space) = self.space_mut(space_id) {
            let _ = space.replace(new, old, DupMode::Replace);
        }
    }

    /// A new tuple for `space`: checked against its limits, format and indexes.
    fn new_tuple(&self, space: &Space, data: &[u8]) -> Result<Tuple, BoxError> {
        let size = data.len() + 8;
        if size > self.limits.tuple_size {
            return Err(BoxError::new(ErrCode::SLAB_ALLOC_MAX, &[&size]));
        }
        if super::tuple::bytes_used() + size > self.limits.memory {
            return Err(BoxError::new(
                ErrCode::MEMORY_ISSUE,
                &[&size, &"slab allocator", &"tuple"],
            ));
        }
        space.validate(data)?;
        Ok(Tuple::new(data))
    }

    /// The tuple a unique index finds by a full key (UPDATE, DELETE).
    fn find_unique(&self, space: &Space, request: &Request) -> Result<Option<Tuple>, BoxError> {
        let index = space
            .index(request.index_id)
            .ok_or_else(|| space.no_such_index(request.index_id))?;
        if !index.def.unique {
            return Err(BoxError::new(ErrCode::MORE_THAN_ONE_TUPLE, &[]));
        }
        key_def::validate_exact_key(request.key, &index.def.key_def)?;
        Ok(index.find_by_key(request.key).cloned())
    }

    /// The next tuple of a cursor over index `index_id` of space `space_id` (a view reads
    /// its source and shows `uid` only its rows); None when exhausted or the index is gone.
    pub fn cursor_next(
        &self,
        space_id: u32,
        index_id: u32,
        uid: u32,
        cursor: &mut super::index::Cursor<'_>,
    ) -> Option<Tuple> {
        let space = self.space(space_id)?;
        let view = space.def.is_view();
        let source = match schema::view_source(space_id) {
            Some(id) if view => self.space(id)?,
            _ => space,
        };
        let index = source.index(index_id)?;
        let filter = view && self.access.universe(uid) & user::READ == 0;
        loop {
            let tuple = cursor.next(index)?;
            if !filter || self.view_shows(space_id, uid, &tuple) {
                return Some(tuple);
            }
        }
    }

    /// Whether a row of a system view is visible to `uid` (who lacks universal read): its
    /// own objects, objects it owns, and objects it may read, write or execute.
    pub fn view_shows(&self, view_id: u32, uid: u32, tuple: &Tuple) -> bool {
        let fields = super::mp::array_items(tuple.data()).unwrap_or_default();
        let number = |n: usize| {
            fields
                .get(n)
                .and_then(|f| super::mp::read_u64(f))
                .unwrap_or(u64::MAX) as u32
        };
        let any = |kind, id| self.access.effective(uid, kind, id) != 0;
        let space_visible = |id: u32| {
            self.space(id).is_some_and(|space| space.def.owner == uid)
                || any(user::ObjectType::Space, id)
        };
        match view_id {
            schema::VSPACE_ID => space_visible(number(0)),
            schema::VINDEX_ID => space_visible(number(0)),
            schema::VUSER_ID => number(0) == uid || number(1) == uid,
            schema::VPRIV_ID => number(0) == uid || number(1) == uid,
            schema::VFUNC_ID => {
                number(1) == uid
                    || self.access.universe(uid) & user::EXECUTE != 0
                    || any(user::ObjectType::Function, number(0))
            }
            _ => true,
        }
    }

    /// `index:get(key)`: the tuple a unique index holds for a full key.
    pub fn get(
        &self,
        space_id: u32,
        index_id: u32,
        key: &[u8],
        uid: u32,
    ) -> Result<Option<Tuple>, BoxError> {
        let space = self.space_or_error(space_id)?;
        self.access.check_space(
            uid,
            space.def.id,
            space.def.owner,
            &space.def.name,
            user::READ,
        )?;
        let source = match schema::view_source(space_id) {
            Some(id) if space.def.is_view() => self.space_or_error(id)?,
            _ => space,
        };
        let mut request = Request::new(RequestKind::Select, space_id);
        request.index_id = index_id;
        request.key = key;
        let found = self.find_unique(source, &request)?;
        let hidden = space.def.is_view()
            && self.access.universe(uid) & user::READ == 0
            && found
                .as_ref()
                .is_some_and(|tuple| !self.view_shows(space_id, uid, tuple));
        Ok(if hidden { None } else { found })
    }

    /// The old and new tuple of an UPDATE, or None when the key finds nothing.
    fn prepare_update(
        &self,
        space: &Space,
        request: &Request,
    ) -> Result<Option<(Tuple, Tuple)>, BoxError> {
        let Some(old) = self.find_unique(space, request)? else {
            // The operations are still checked, as Tarantool checks them before the lookup.
            update::check_ops(request.tuple, request.index_base)?;
            return Ok(None);
        };
        let data = update::update(old.data(), request.tuple, request.index_base)?;
        let new = self.new_tuple(space, &data)?;
        check_primary_unchanged(space, &old, &new)?;
        Ok(Some((old, new)))
    }

    /// UPSERT: insert the tuple, or apply the operations to the existing one (a failing
    /// operation, or a result the space refuses, is logged and skipped).
    fn prepare_upsert(
        &self,
        space: &Space,
        request: &Request,
    ) -> Result<(Option<Tuple>, Tuple), BoxError> {
        if space.all_indexes().skip(1).any(|index| index.def.unique) {
            return Err(BoxError::new(
                ErrCode::UPSERT_UNIQUE_SECONDARY_KEY,
                &[&space.def.name],
            ));
        }
        update::check_ops(request.ops, request.index_base)?;
        let inserted = self.new_tuple(space, request.tuple)?;
        let primary = space.primary().ok_or_else(|| space.no_such_index(0))?;
        let Some(old) = primary.find_like(&inserted).cloned() else {
            return Ok((None, inserted));
        };
        let (data, skipped) = update::upsert(old.data(), request.ops, request.index_base);
        for err in skipped {
            log::error!("{}: {}", err.code.name(), err.message);
        }
        let new = match self.new_tuple(space, &data) {
            Ok(new) => new,
            Err(err) => {
                log::error!("{}: {}", err.code.name(), err.message);
                old.clone()
            }
        };
        if let Err(err) = check_primary_unchanged(space, &old, &new) {
            log::error!("{}: {}", err.code.name(), err.message);
            return Ok((Some(old.clone()), old));
        }
        Ok((Some(old), new))
    }

    /// Put a snapshot's tuple into a user space, past the write path (no access check,
    /// journal row, trigger or transaction): the bulk of loading a snapshot.
    pub fn load_tuple(&mut self, space_id: u32, data: &[u8]) -> Result<(), BoxError> {
        let space = self.space_or_error(space_id)?;
        let tuple = self.new_tuple(space, data)?;
        let space = self.space_mut(space_id).expect("space checked above");
        space.replace(None, Some(&tuple), DupMode::Insert)?;
        Ok(())
    }

    /// Undo every statement of `txn`, newest first.
    pub fn rollback(&mut self, txn: Txn) {
        for stmt in txn.stmts.into_iter().rev() {
            if let Some(undo) = stmt.alter {
                alter::undo(self, *undo);
            }
            if let Some(space) = self.space_mut(stmt.space_id) {
                let _ = space.replace(stmt.new.as_ref(), stmt.old.as_ref(), DupMode::Replace);
            }
        }
    }

    // }}}
}

/// Whether a key is an empty array (matches everything).
fn empty_key(key: &[u8]) -> bool {
    key.is_empty() || key == [0x90]
}

/// UPDATE may not change the primary key (ER_CANT_UPDATE_PRIMARY_KEY).
fn check_primary_unchanged(space: &Space, old: &Tuple, new: &Tuple) -> Result<(), BoxError> {
    let Some(primary) = space.primary() else {
        return Ok(());
    };
    let order = key_def::compare_tuples(old.data(), new.data(), &primary.def.key_def);
    if order != std::cmp::Ordering::Equal {
        return Err(BoxError::new(
            ErrCode::CANT_UPDATE_PRIMARY_KEY,
            &[&primary.def.name, &space.def.name],
        ));
    }
    Ok(())
}

/// The journal row of a change, with the key rebound to the primary key when the request
/// went through a secondary index. None for temporary spaces. An inserted tuple is shared,
/// not copied: the body is encoded only when a journal writes it.
fn journal_row(
    space: &Space,
    request: &Request,
    old: Option<&Tuple>,
    new: Option<&Tuple>,
) -> Option<JournalRow> {
    if space.def.temporary {
        return None;
    }
    let mut row = JournalRow::new(RowKind::Insert, space.def.id);
    match request.kind {
        RequestKind::Insert | RequestKind::Replace => {
            if request.kind == RequestKind::Replace {
                row.kind = RowKind::Replace;
            }
            row.tuple = Some(match new {
                Some(tuple) => RowData::Tuple(tuple.clone()),
                None => RowData::Bytes(request.tuple.to_vec()),
            });
        }
        RequestKind::Update => {
            row.kind = RowKind::Update;
            row.index_base = request.index_base;
            row.key = Some(primary_key(space, request, old));
            row.tuple = Some(RowData::Bytes(request.tuple.to_vec()));
        }
        RequestKind::Delete => {
            row.kind = RowKind::Delete;
            row.key = Some(primary_key(space, request, old));
        }
        RequestKind::Upsert => {
            row.kind = RowKind::Upsert;
            row.tuple = Some(RowData::Bytes(request.tuple.to_vec()));
            row.ops = Some(request.ops.to_vec());
        }
        RequestKind::Select => return None,
    }
    Some(row)
}

/// The primary key of the tuple a request reached (the request's own key when it used the
/// primary index or found nothing).
fn primary_key(space: &Space, request: &Request, old: Option<&Tuple>) -> Vec<u8> {
    match (request.index_id, old, space.primary()) {
        (0, _, _) | (_, None, _) | (_, _, None) => request.key.to_vec(),
        (_, Some(old), Some(primary)) => key_def::extract_key(old.data(), &primary.def.key_def),
    }
}
