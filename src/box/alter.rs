//! DDL as triggers on system spaces: a row written to `_space`, `_index`, `_schema` or
//! `_cluster` changes the schema in the same statement (Tarantool's alter.cc).
//!
//! Owned by the TX thread. Each trigger validates the row, applies the change to the
//! catalogue, and returns how to undo it, so a statement rolled back (a later failure, a
//! failed WAL write) puts the schema back as it was. Whatever writes the row (a Lua DDL
//! helper, a client, recovery, a replica) gets the same behaviour.

use super::db::Db;
use super::index::{Index, IndexDef, IndexKind};
use super::key_def::{self, FieldType, KeyDef, KeyPart};
use super::mp;
use super::schema::{self, CLUSTER_ID, FUNC_ID, INDEX_ID, PRIV_ID, SCHEMA_ID, SPACE_ID, USER_ID};
use super::space::{Space, SpaceDef};
use super::tuple::Tuple;
use super::user::{self, FuncDef, GrantKey, ObjectType, UserDef};
use crate::error::{BoxError, ErrCode};

/// How to undo one schema change.
pub enum AlterUndo {
    /// A space was created: drop it.
    SpaceCreated(u32),
    /// A space's definition changed: restore this one.
    SpaceDefChanged(SpaceDef),
    /// A space was dropped: put it back.
    SpaceDropped(Space),
    /// Index `iid` of a space was created or changed: restore the space's previous indexes.
    IndexesChanged {
        space_id: u32,
        indexes: Vec<Option<Index>>,
    },
    /// The cluster UUID changed: restore the previous value.
    ClusterUuid(Option<String>),
    /// A `_cluster` entry changed: restore the previous one and the server id.
    ClusterEntry {
        id: u32,
        previous: Option<String>,
        server_id: u32,
    },
    /// A user or role changed: restore the previous definition (None: it was new).
    User { id: u32, previous: Option<UserDef> },
    /// A function changed: restore the previous definition.
    Func { id: u32, previous: Option<FuncDef> },
    /// A grant changed: restore the previous bits.
    Grant { key: GrantKey, previous: u8 },
}

/// Run the trigger of system space `space_id` for a replace of `old` by `new`.
pub fn on_replace(
    db: &mut Db,
    space_id: u32,
    old: Option<&Tuple>,
    new: Option<&Tuple>,
) -> Result<Option<AlterUndo>, BoxError> {
    match space_id {
        SPACE_ID => on_replace_space(db, old, new).map(Some),
        INDEX_ID => on_replace_index(db, old, new).map(Some),
        SCHEMA_ID => on_replace_schema(db, old, new),
        CLUSTER_ID => on_replace_cluster(db, old, new),
        USER_ID => on_replace_user(db, old, new).map(Some),
        FUNC_ID => on_replace_func(db, old, new).map(Some),
        PRIV_ID => on_replace_priv(db, old, new).map(Some),
        _ => Ok(None),
    }
}

/// Put the schema back as it was before a change.
pub fn undo(db: &mut Db, undo: AlterUndo) {
    match undo {
        AlterUndo::SpaceCreated(id) => {
            db.remove_space(id);
        }
        AlterUndo::SpaceDefChanged(def) => {
            db.set_space_def(def);
        }
        AlterUndo::SpaceDropped(space) => {
            db.add_space(space);
        }
        AlterUndo::IndexesChanged { space_id, indexes } => {
            if let Some(space) = db.space_mut(space_id) {
                space.set_indexes(indexes);
                rebuild_bsize(space);
            }
            db.schema_changed(space_id);
        }
        AlterUndo::ClusterUuid(previous) => db.cluster_uuid = previous,
        AlterUndo::ClusterEntry {
            id,
            previous,
            server_id,
        } => {
            match previous {
                Some(uuid) => db.cluster.insert(id, uuid),
                None => db.cluster.remove(&id),
            };
            db.server_id = server_id;
        }
        AlterUndo::User { id, previous } => {
            db.access.set_user(id, previous);
        }
        AlterUndo::Func { id, previous } => {
            db.access.set_func(id, previous);
        }
        AlterUndo::Grant { key, previous } => {
            db.access.set_grant(key, previous);
        }
    }
}

// {{{ _space

/// The fields of a `_space` row.
fn space_def_of(tuple: &Tuple) -> Result<SpaceDef, BoxError> {
    let fields = mp::array_items(tuple.data()).ok_or_else(|| bad_msgpack("_space"))?;
    let wrong = |what: &str| {
        let id = fields.first().and_then(|f| mp::read_u64(f)).unwrap_or(0);
        BoxError::new(ErrCode::CREATE_SPACE, &[&id, &what])
    };
    if fields.len() < 5 {
        return Err(BoxError::new(
            ErrCode::INDEX_FIELD_COUNT,
            &[&fields.len(), &5],
        ));
    }
    let id = mp::read_u64(fields[0]).ok_or_else(|| wrong("space id is not a number"))?;
    if id > u64::from(schema::SPACE_ID_MAX) {
        return Err(wrong("space id is too big"));
    }
    let owner = mp::read_u64(fields[1]).ok_or_else(|| wrong("owner is not a number"))?;
    let name = mp::read_string(fields[2]).ok_or_else(|| wrong("name is not a string"))?;
    check_identifier(&name)?;
    let engine = mp::read_string(fields[3]).ok_or_else(|| wrong("engine is not a string"))?;
    if engine != "memtx" && engine != "sysview" {
        return Err(BoxError::new(ErrCode::NO_SUCH_ENGINE, &[&engine]));
    }
    let field_count =
        mp::read_u64(fields[4]).ok_or_else(|| wrong("field count is not a number"))?;
    let temporary = fields.get(5).is_some_and(|opts| is_temporary(opts));
    let format = fields
        .get(6)
        .map(|f| f.to_vec())
        .unwrap_or_else(|| vec![0x90]);
    Ok(SpaceDef {
        id: id as u32,
        owner: owner as u32,
        name,
        engine,
        field_count: field_count.min(u64::from(u32::MAX)) as u32,
        temporary,
        format,
    })
}

/// Space options: a map (`{temporary = true}`) since 1.6.8, a string of flags before.
fn is_temporary(opts: &[u8]) -> bool {
    if let Some(text) = mp::read_str(opts) {
        return text
            .split(|&byte| byte == b',')
            .any(|flag| flag.trim_ascii() == b"temporary");
    }
    mp::map_items(opts).is_some_and(|items| {
        items.iter().any(|(key, value)| {
            mp::read_str(key) == Some(b"temporary") && mp::read_bool(value) == Some(true)
        })
    })
}

/// Names are identifiers of at most 32 bytes (ER_IDENTIFIER).
fn check_identifier(name: &str) -> Result<(), BoxError> {
    let valid = !name.is_empty()
        && name.len() <= schema::NAME_LEN_MAX
        && !name.chars().any(|c| c.is_control());
    if !valid {
        return Err(BoxError::new(ErrCode::IDENTIFIER, &[&name]));
    }
    Ok(())
}

fn on_replace_space(
    db: &mut Db,
    old: Option<&Tuple>,
    new: Option<&Tuple>,
) -> Result<AlterUndo, BoxError> {
    match (old, new) {
        (_, Some(new)) => {
            let def = space_def_of(new)?;
            match db.space(def.id) {
                Some(space) => {
                    check_space_alter(space, &def)?;
                    let previous = db.set_space_def(def).expect("space exists");
                    Ok(AlterUndo::SpaceDefChanged(previous))
                }
                None => {
                    let id = def.id;
                    db.add_space(Space::new(def));
                    Ok(AlterUndo::SpaceCreated(id))
                }
            }
        }
        (Some(old), None) => {
            let def = space_def_of(old)?;
            let space = db
                .space(def.id)
                .ok_or_else(|| BoxError::new(ErrCode::NO_SUCH_SPACE, &[&def.id]))?;
            if space.all_indexes().next().is_some() {
                return Err(BoxError::new(
                    ErrCode::DROP_SPACE,
                    &[&def.name, &"the space has indexes"],
                ));
            }
            let dropped = db.remove_space(def.id).expect("space exists");
            Ok(AlterUndo::SpaceDropped(dropped))
        }
        (None, None) => Err(bad_msgpack("_space")),
    }
}

/// What may change in a space definition while it holds data.
fn check_space_alter(space: &Space, def: &SpaceDef) -> Result<(), BoxError> {
    let refuse = |why: &str| {
        Err(BoxError::new(
            ErrCode::ALTER_SPACE,
            &[&space.def.name, &why],
        ))
    };
    if space.def.engine != def.engine
        && !space.def.engine.is_empty()
        && space.is_empty()
        && space.def.engine != "memtx"
    {
        return refuse("can not change space engine");
    }
    if !space.is_empty() {
        if def.field_count != space.def.field_count && def.field_count != 0 {
            return refuse("can not change field count on a non-empty space");
        }
        if def.temporary != space.def.temporary {
            return refuse("can not switch temporary flag on a non-empty space");
        }
    }
    Ok(())
}

// }}}

// {{{ _index

/// Parse an `_index` row: `[space, iid, name, type, opts, parts]` (1.6.6+), or the older
/// `[space, iid, name, type, unique, part_count, field, type, ...]`.
fn index_def_of(db: &Db, tuple: &Tuple) -> Result<IndexDef, BoxError> {
    let fields = mp::array_items(tuple.data()).ok_or_else(|| bad_msgpack("_index"))?;
    if fields.len() < 6 {
        return Err(BoxError::new(
            ErrCode::INDEX_FIELD_COUNT,
            &[&fields.len(), &6],
        ));
    }
    let space_id = mp::read_u64(fields[0]).ok_or_else(|| bad_msgpack("_index"))? as u32;
    let space = db
        .space(space_id)
        .ok_or_else(|| BoxError::new(ErrCode::NO_SUCH_SPACE, &[&space_id]))?;
    let iid = mp::read_u64(fields[1]).ok_or_else(|| bad_msgpack("_index"))?;
    let name = mp::read_string(fields[2]).ok_or_else(|| bad_msgpack("_index"))?;
    check_identifier(&name)?;
    let modify = |why: &str| BoxError::new(ErrCode::MODIFY_INDEX, &[&name, &space.def.name, &why]);
    if iid >= u64::from(schema::INDEX_ID_MAX) {
        return Err(modify("index id too big"));
    }
    let kind_name = mp::read_string(fields[3]).unwrap_or_default();
    let kind = IndexKind::parse(&kind_name)
        .ok_or_else(|| BoxError::new(ErrCode::INDEX_TYPE, &[&name, &space.def.name]))?;
    let (unique, parts) = if mp::is_map(fields[4]) {
        (
            index_unique(fields[4]),
            parse_parts(fields[5]).ok_or_else(|| modify("wrong index parts"))?,
        )
    } else {
        parse_old_index_row(&fields).ok_or_else(|| modify("wrong index parts"))?
    };
    if parts.is_empty() {
        return Err(modify("part count must be positive"));
    }
    Ok(IndexDef {
        space_id,
        id: iid as u32,
        name,
        kind,
        unique,
        key_def: KeyDef { parts },
    })
}

/// `unique` of the options map (true when absent).
fn index_unique(opts: &[u8]) -> bool {
    mp::map_items(opts)
        .and_then(|items| {
            items
                .iter()
                .find(|(key, _)| mp::read_str(key) == Some(b"unique"))
                .and_then(|(_, value)| {
                    mp::read_bool(value).or_else(|| mp::read_u64(value).map(|n| n != 0))
                })
        })
        .unwrap_or(true)
}

/// Parts: an array of `[field_no, type, ...]` (extra items ignored) or, from later
/// versions, of maps `{field = n, type = t}`.
fn parse_parts(data: &[u8]) -> Option<Vec<KeyPart>> {
    mp::array_items(data)?
        .into_iter()
        .map(|part| {
            if mp::is_map(part) {
                let items = mp::map_items(part)?;
                let get = |name: &[u8]| {
                    items
                        .iter()
                        .find(|(k, _)| mp::read_str(k) == Some(name))
                        .map(|(_, v)| *v)
                };
                let fieldno = mp::read_u64(get(b"field")?)?;
                let field_type = FieldType::parse(&mp::read_string(get(b"type")?)?)?;
                return Some(KeyPart {
                    fieldno: fieldno as u32,
                    field_type,
                });
            }
            let items = mp::array_items(part)?;
            let fieldno = mp::read_u64(items.first()?)?;
            let field_type = FieldType::parse(&mp::read_string(items.get(1)?)?)?;
            Some(KeyPart {
                fieldno: fieldno as u32,
                field_type,
            })
        })
        .collect()
}

/// The pre-1.6.6 row: `unique` as a number, then a part count and flat (field, type) pairs.
fn parse_old_index_row(fields: &[&[u8]]) -> Option<(bool, Vec<KeyPart>)> {
    let unique = mp::read_u64(fields[4])? != 0;
    let count = mp::read_u64(fields[5])? as usize;
    let mut parts = Vec::with_capacity(count.min(64));
    for n in 0..count {
        let fieldno = mp::read_u64(fields.get(6 + 2 * n)?)? as u32;
        let field_type = FieldType::parse(&mp::read_string(fields.get(7 + 2 * n)?)?)?;
        parts.push(KeyPart {
            fieldno,
            field_type,
        });
    }
    Some((unique, parts))
}

/// Checks of a new index definition against its space.
fn check_index_def(space: &Space, def: &IndexDef) -> Result<(), BoxError> {
    let modify =
        |why: &str| BoxError::new(ErrCode::MODIFY_INDEX, &[&def.name, &space.def.name, &why]);
    match def.kind {
        IndexKind::Bitset | IndexKind::Rtree => {
            let what = format!("{} index", def.kind.name());
            return Err(BoxError::new(ErrCode::UNSUPPORTED, &[&"memtx", &what]));
        }
        IndexKind::Hash if !def.unique => return Err(modify("HASH index must be unique")),
        _ => {}
    }
    if def.id == 0 && !def.unique {
        return Err(modify("primary key must be unique"));
    }
    if def.id != 0 && space.primary().is_none() {
        return Err(modify("can not add a secondary key before primary"));
    }
    for part in &def.key_def.parts {
        if matches!(
            part.field_type,
            FieldType::Array | FieldType::Map | FieldType::Any
        ) {
            return Err(modify("field type is not supported by the index"));
        }
    }
    if space
        .index_by_name(&def.name)
        .is_some_and(|index| index.def.id != def.id)
    {
        return Err(BoxError::new(ErrCode::INDEX_EXISTS, &[&def.name]));
    }
    Ok(())
}

fn on_replace_index(
    db: &mut Db,
    old: Option<&Tuple>,
    new: Option<&Tuple>,
) -> Result<AlterUndo, BoxError> {
    let (space_id, iid, def) = match (old, new) {
        (_, Some(new)) => {
            let def = index_def_of(db, new)?;
            (def.space_id, def.id, Some(def))
        }
        (Some(old), None) => {
            let fields = mp::array_items(old.data()).ok_or_else(|| bad_msgpack("_index"))?;
            let space_id = fields.first().and_then(|f| mp::read_u64(f)).unwrap_or(0) as u32;
            let iid = fields.get(1).and_then(|f| mp::read_u64(f)).unwrap_or(0) as u32;
            (space_id, iid, None)
        }
        (None, None) => return Err(bad_msgpack("_index")),
    };
    let space = db
        .space(space_id)
        .ok_or_else(|| BoxError::new(ErrCode::NO_SUCH_SPACE, &[&space_id]))?;
    if let Some(def) = &def {
        check_index_def(space, def)?;
    } else {
        check_index_drop(space, iid)?;
    }
    let indexes = rebuild_indexes(space, iid, def)?;
    let space = db.space_mut(space_id).expect("space exists");
    let previous = space.set_indexes(indexes);
    rebuild_bsize(space);
    db.schema_changed(space_id);
    Ok(AlterUndo::IndexesChanged {
        space_id,
        indexes: previous,
    })
}

/// Dropping the primary key needs the secondary keys gone first (and is refused for the
/// system spaces, whose primary keys the schema itself needs).
fn check_index_drop(space: &Space, iid: u32) -> Result<(), BoxError> {
    if iid != 0 {
        return Ok(());
    }
    if space.all_indexes().any(|index| index.def.id != 0) {
        return Err(BoxError::new(ErrCode::DROP_PRIMARY_KEY, &[&space.def.name]));
    }
    if schema::is_system(space.def.id) && !space.def.is_view() {
        return Err(BoxError::new(ErrCode::LAST_DROP, &[&space.def.name]));
    }
    Ok(())
}

/// The space's indexes with index `iid` set to `def` (or dropped), filled from the data.
/// Changing or dropping the primary key rebuilds every index; a new secondary index is
/// built from the primary key, checking every tuple against it.
fn rebuild_indexes(
    space: &Space,
    iid: u32,
    def: Option<IndexDef>,
) -> Result<Vec<Option<Index>>, BoxError> {
    let tuples = space.primary().map(Index::tuples).unwrap_or_default();
    let mut defs: Vec<Option<IndexDef>> = space
        .index_slots()
        .iter()
        .map(|i| i.as_ref().map(|i| i.def.clone()))
        .collect();
    if defs.len() <= iid as usize {
        defs.resize(iid as usize + 1, None);
    }
    defs[iid as usize] = def;
    if iid == 0 && defs[0].is_none() {
        // The primary key goes, and the data with it.
        return Ok(defs
            .into_iter()
            .map(|def| def.map(|def| Index::new(def, None)))
            .collect());
    }
    let primary = defs.first().cloned().flatten().map(|def| def.key_def);
    let mut indexes: Vec<Option<Index>> = Vec::with_capacity(defs.len());
    for def in defs {
        let Some(def) = def else {
            indexes.push(None);
            continue;
        };
        indexes.push(Some(build_index(space, def, primary.as_ref(), &tuples)?));
    }
    while matches!(indexes.last(), Some(None)) {
        indexes.pop();
    }
    Ok(indexes)
}

fn build_index(
    space: &Space,
    def: IndexDef,
    primary: Option<&KeyDef>,
    tuples: &[Tuple],
) -> Result<Index, BoxError> {
    let name = def.name.clone();
    let key_def = def.key_def.clone();
    let unique = def.unique;
    let mut index = Index::new(def, primary);
    for tuple in tuples {
        key_def::validate_tuple(tuple.data(), &[&key_def], 0, &space.def.name)?;
        if index.insert(tuple.clone()).is_some() && unique {
            return Err(BoxError::new(
                ErrCode::TUPLE_FOUND,
                &[&name, &space.def.name],
            ));
        }
    }
    Ok(index)
}

fn rebuild_bsize(space: &mut Space) {
    space.bsize = space
        .primary()
        .map_or(0, |primary| primary.tuples().iter().map(Tuple::bsize).sum());
}

// }}}

// {{{ _schema and _cluster

fn on_replace_schema(
    db: &mut Db,
    old: Option<&Tuple>,
    new: Option<&Tuple>,
) -> Result<Option<AlterUndo>, BoxError> {
    let key_of = |tuple: &Tuple| {
        mp::array_items(tuple.data())
            .and_then(|fields| fields.first().and_then(|f| mp::read_string(f)))
    };
    match (old, new) {
        (_, Some(new)) if key_of(new).as_deref() == Some("cluster") => {
            let uuid = mp::array_items(new.data())
                .and_then(|fields| fields.get(1).and_then(|f| mp::read_string(f)))
                .filter(|text| uuid::Uuid::parse_str(text).is_ok())
                .ok_or_else(|| BoxError::new(ErrCode::INVALID_UUID, &[&"cluster"]))?;
            let previous = db.cluster_uuid.replace(uuid);
            Ok(Some(AlterUndo::ClusterUuid(previous)))
        }
        (Some(old), None) if key_of(old).as_deref() == Some("cluster") => {
            Err(BoxError::new(ErrCode::CLUSTER_ID_IS_RO, &[]))
        }
        _ => Ok(None),
    }
}

fn on_replace_cluster(
    db: &mut Db,
    old: Option<&Tuple>,
    new: Option<&Tuple>,
) -> Result<Option<AlterUndo>, BoxError> {
    let entry_of = |tuple: &Tuple| -> Result<(u32, String), BoxError> {
        let row = Row::of(tuple, "_cluster")?;
        Ok((row.id(0)?, row.string_or_default(1)))
    };
    let server_id = db.server_id;
    match (old, new) {
        (_, Some(new)) => {
            let (id, uuid) = entry_of(new)?;
            if id == 0 || id >= crate::constants::VCLOCK_MAX as u32 {
                return Err(BoxError::new(ErrCode::SERVER_ID_IS_RESERVED, &[&id]));
            }
            match uuid::Uuid::parse_str(&uuid) {
                Ok(parsed) if !parsed.is_nil() => {}
                _ => return Err(BoxError::new(ErrCode::INVALID_UUID, &[&uuid])),
            }
            if uuid == db.instance_uuid {
                db.server_id = id;
            }
            let previous = db.cluster.insert(id, uuid);
            Ok(Some(AlterUndo::ClusterEntry {
                id,
                previous,
                server_id,
            }))
        }
        (Some(old), None) => {
            let (id, uuid) = entry_of(old)?;
            if uuid == db.instance_uuid {
                db.server_id = 0;
            }
            let previous = db.cluster.remove(&id);
            Ok(Some(AlterUndo::ClusterEntry {
                id,
                previous,
                server_id,
            }))
        }
        (None, None) => Ok(None),
    }
}

// }}}

// {{{ _user, _func, _priv

/// Parse a `_user` row: `[id, owner, name, type, auth]`.
fn user_def_of(tuple: &Tuple) -> Result<UserDef, BoxError> {
    let row = Row::of(tuple, "_user")?;
    let id = row.id(0)?;
    let owner = row.id(1)?;
    let name = row.string(2)?;
    check_identifier(&name)?;
    let kind = row.string_or_default(3);
    let create = |why: &str| BoxError::new(ErrCode::CREATE_USER, &[&name, &why]);
    let is_role = match kind.as_str() {
        "user" => false,
        "role" => true,
        _ => return Err(create("unknown user type")),
    };
    let hash2 = match row.fields.get(4) {
        Some(auth) => auth_hash2(auth).map_err(&create)?,
        None => None,
    };
    if is_role && hash2.is_some() {
        return Err(create("authentication data can not be set for a role"));
    }
    Ok(UserDef {
        id,
        owner,
        name,
        is_role,
        hash2,
    })
}

/// The auth field: `{"chap-sha1": base64(hash2)}`; an empty map or array means none.
fn auth_hash2(auth: &[u8]) -> Result<Option<[u8; 20]>, &'static str> {
    use base64::Engine;
    if mp::is_array(auth) || mp::is_nil(auth) {
        return Ok(None);
    }
    let items = mp::map_items(auth).ok_or("invalid authentication data")?;
    let Some((_, value)) = items
        .iter()
        .find(|(key, _)| mp::read_str(key) == Some(b"chap-sha1"))
    else {
        return Ok(None);
    };
    let text = mp::read_str(value).ok_or("invalid authentication data")?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| "invalid authentication data")?;
    let hash: [u8; 20] = bytes
        .try_into()
        .map_err(|_| "invalid authentication data")?;
    Ok(Some(hash))
}

fn on_replace_user(
    db: &mut Db,
    old: Option<&Tuple>,
    new: Option<&Tuple>,
) -> Result<AlterUndo, BoxError> {
    match (old, new) {
        (_, Some(new)) => {
            let def = user_def_of(new)?;
            let id = def.id;
            if db.access.user(id).is_none() && db.access.user_count() >= user::USER_MAX {
                return Err(BoxError::new(ErrCode::USER_MAX, &[&user::USER_MAX]));
            }
            let previous = db.access.set_user(id, Some(def));
            Ok(AlterUndo::User { id, previous })
        }
        (Some(old), None) => {
            let def = user_def_of(old)?;
            let drop = |why: &str| BoxError::new(ErrCode::DROP_USER, &[&def.name, &why]);
            if def.id <= schema::REPLICATION_ROLE {
                return Err(drop("the user or the role is a system"));
            }
            if db.access.has_grants(def.id) || owns_objects(db, def.id) {
                return Err(drop("the user has objects"));
            }
            let previous = db.access.set_user(def.id, None);
            Ok(AlterUndo::User {
                id: def.id,
                previous,
            })
        }
        (None, None) => Err(bad_msgpack("_user")),
    }
}

/// Whether user `uid` owns a space, a function or another user.
fn owns_objects(db: &Db, uid: u32) -> bool {
    db.spaces().any(|space| space.def.owner == uid)
}

/// Parse a `_func` row: `[id, owner, name, setuid, language]`.
fn func_def_of(tuple: &Tuple) -> Result<FuncDef, BoxError> {
    let row = Row::of(tuple, "_func")?;
    let id = row.id(0)?;
    let owner = row.id(1)?;
    let name = row.string(2)?;
    let setuid = row.number(3).unwrap_or(0) != 0;
    if name.is_empty() || name.len() > 65000 {
        return Err(BoxError::new(
            ErrCode::CREATE_FUNCTION,
            &[&name, &"invalid name"],
        ));
    }
    Ok(FuncDef {
        id,
        owner,
        name,
        setuid,
    })
}

fn on_replace_func(
    db: &mut Db,
    old: Option<&Tuple>,
    new: Option<&Tuple>,
) -> Result<AlterUndo, BoxError> {
    match (old, new) {
        (_, Some(new)) => {
            let def = func_def_of(new)?;
            let id = def.id;
            let previous = db.access.set_func(id, Some(def));
            Ok(AlterUndo::Func { id, previous })
        }
        (Some(old), None) => {
            let def = func_def_of(old)?;
            let previous = db.access.set_func(def.id, None);
            Ok(AlterUndo::Func {
                id: def.id,
                previous,
            })
        }
        (None, None) => Err(bad_msgpack("_func")),
    }
}

/// Parse a `_priv` row: `[grantor, grantee, object_type, object_id, privilege]`.
fn grant_of(tuple: &Tuple) -> Result<(u32, GrantKey, u8), BoxError> {
    let row = Row::of(tuple, "_priv")?;
    let grantor = row.id(0)?;
    let grantee = row.id(1)?;
    let kind_name = row.string_or_default(2);
    let kind = ObjectType::parse(&kind_name)
        .ok_or_else(|| BoxError::new(ErrCode::UNKNOWN_SCHEMA_OBJECT, &[&kind_name]))?;
    let object = row.id(3)?;
    let bits = (row.number(4)? & 0xff) as u8;
    Ok((grantor, (grantee, kind, object), bits))
}

/// A grant must name an existing grantee and object, and a role grant must not loop.
fn check_grant(db: &Db, key: &GrantKey) -> Result<(), BoxError> {
    let (grantee, kind, object) = *key;
    let who = db
        .access
        .user(grantee)
        .ok_or_else(|| BoxError::new(ErrCode::NO_SUCH_USER, &[&grantee]))?;
    match kind {
        ObjectType::Universe | ObjectType::User => Ok(()),
        ObjectType::Space => db
            .space(object)
            .map(|_| ())
            .ok_or_else(|| BoxError::new(ErrCode::NO_SUCH_SPACE, &[&object])),
        ObjectType::Function => db
            .access
            .func(object)
            .map(|_| ())
            .ok_or_else(|| BoxError::new(ErrCode::NO_SUCH_FUNCTION, &[&object])),
        ObjectType::Role => {
            let role = db
                .access
                .user(object)
                .filter(|role| role.is_role)
                .ok_or_else(|| BoxError::new(ErrCode::NO_SUCH_ROLE, &[&object]))?;
            if db.access.would_loop(grantee, object) {
                return Err(BoxError::new(ErrCode::ROLE_LOOP, &[&role.name, &who.name]));
            }
            Ok(())
        }
    }
}

fn on_replace_priv(
    db: &mut Db,
    old: Option<&Tuple>,
    new: Option<&Tuple>,
) -> Result<AlterUndo, BoxError> {
    match (old, new) {
        (_, Some(new)) => {
            let (_grantor, key, bits) = grant_of(new)?;
            check_grant(db, &key)?;
            let previous = db.access.set_grant(key, bits);
            Ok(AlterUndo::Grant { key, previous })
        }
        (Some(old), None) => {
            let (_grantor, key, _bits) = grant_of(old)?;
            let previous = db.access.set_grant(key, 0);
            Ok(AlterUndo::Grant { key, previous })
        }
        (None, None) => Err(bad_msgpack("_priv")),
    }
}

// }}}

/// The fields of a system space row; a missing or mistyped field is ER_INVALID_MSGPACK
/// naming the space.
struct Row<'a> {
    fields: Vec<&'a [u8]>,
    space: &'static str,
}

impl<'a> Row<'a> {
    fn of(tuple: &'a Tuple, space: &'static str) -> Result<Row<'a>, BoxError> {
        let fields = mp::array_items(tuple.data()).ok_or_else(|| bad_msgpack(space))?;
        Ok(Row { fields, space })
    }

    fn number(&self, n: usize) -> Result<u64, BoxError> {
        self.fields
            .get(n)
            .and_then(|f| mp::read_u64(f))
            .ok_or_else(|| bad_msgpack(self.space))
    }

    /// A number field holding a 32-bit id (the low 32 bits of a larger number).
    fn id(&self, n: usize) -> Result<u32, BoxError> {
        self.number(n).map(|id| id as u32)
    }

    fn string(&self, n: usize) -> Result<String, BoxError> {
        self.fields
            .get(n)
            .and_then(|f| mp::read_string(f))
            .ok_or_else(|| bad_msgpack(self.space))
    }

    fn string_or_default(&self, n: usize) -> String {
        self.string(n).unwrap_or_default()
    }
}

fn bad_msgpack(what: &str) -> BoxError {
    BoxError::new(ErrCode::INVALID_MSGPACK, &[&format!("{what} row")])
}
