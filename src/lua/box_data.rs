//! `internal.data`: box's data requests from Lua: select, insert, replace, update, delete,
//! upsert, index cursors, transactions, and the space definitions `box.space` is built from.
//!
//! Owned by the TX thread. Lua values become MessagePack here and every request goes to
//! [`Db::execute`]; a change then passes the space's `on_replace` triggers and, outside a
//! `box.begin()`, commits through the journal. Failures return `nil, err` for the Lua
//! wrapper to raise.

use std::rc::Rc;

use mlua::{Function, Lua, Table, Value};

use crate::r#box::db::{Db, Request, RequestKind};
use crate::r#box::index::{Cursor, IteratorType};
use crate::r#box::tuple::Tuple;
use crate::r#box::txn::Txn;
use crate::error::{BoxError, ErrCode};
use crate::process::{apply, commit, fiber_id, not_configured, with_db};
use crate::tx::Tx;

use super::tuple::push;

/// What a data function returns to Lua: a value and an error, one of them nil (two plain
/// values cost nothing to build, where a MultiValue allocates).
type Outcome = (Value, Value);

/// The failure shape: `nil, err`.
fn fail(lua: &Lua, err: &BoxError) -> mlua::Result<Outcome> {
    Ok((Value::Nil, super::util::error_value(lua, err)?))
}

/// Named registry slot of the prelude's trigger runner `(space_id, old, new)`.
const TRIGGERS_KEY: &str = "tarantula.box.triggers";
/// Named registry slot of the prelude's schema refresher `(space ids)`.
const SCHEMA_HOOK_KEY: &str = "tarantula.box.on_schema";

/// A Lua value as MessagePack: a tuple's own bytes, or the value encoded.
pub fn encode(lua: &Lua, value: &Value) -> mlua::Result<Vec<u8>> {
    if let Some(tuple) = super::tuple::from_value(lua, value) {
        return Ok(tuple.data().to_vec());
    }
    let mut out = Vec::new();
    super::msgpack::encode_value(lua, value, &mut out)?;
    Ok(out)
}

/// A key argument: a table, a tuple, nil (empty key) or a scalar (a one-part key).
fn encode_key(lua: &Lua, value: &Value) -> mlua::Result<Vec<u8>> {
    match value {
        Value::Nil => Ok(vec![0x90]),
        Value::Table(_) | Value::UserData(_) => encode(lua, value),
        Value::Other(_) if value.to_pointer().is_null() => Ok(vec![0x90]),
        scalar => {
            let mut out = vec![0x91];
            super::msgpack::encode_value(lua, scalar, &mut out)?;
            Ok(out)
        }
    }
}

/// Execute a change: in the fiber's open transaction, or as its own committed one. Runs
/// the space's triggers, and the schema hook when definitions changed.
fn change(lua: &Lua, tx: &Tx, request: &Request) -> mlua::Result<Outcome> {
    let mut request = request.clone();
    request.uid = tx.current_uid();
    let owner = Some(fiber_id(tx));
    let applied = apply(tx, &request, owner, |txn, before| {
        run_triggers(lua, tx, txn, before)
    });
    notify_schema(lua, tx)?;
    match applied {
        Ok(Some(tuple)) => Ok((push(lua, tuple)?, Value::Nil)),
        Ok(None) => Ok((Value::Nil, Value::Nil)),
        Err(err) => fail(lua, &err),
    }
}

/// A change an iproto request's fiber runs (`request.uid` set by the caller): committed
/// on its own, with the space's triggers and the schema hook, as `change` does.
pub fn change_in_fiber(lua: &Lua, tx: &Tx, request: &Request) -> Result<Option<Tuple>, BoxError> {
    let applied = apply(tx, request, None, |txn, before| {
        run_triggers(lua, tx, txn, before)
    });
    notify_schema(lua, tx).map_err(BoxError::from)?;
    applied
}

/// Call the `on_replace` triggers of the spaces a replicated row's statements touched.
pub fn run_replicated_triggers(lua: &Lua, tx: &Tx, txn: &Txn) -> Result<(), BoxError> {
    run_triggers(lua, tx, txn, 0)
}

/// Call the `on_replace` triggers of the spaces the new statements touched.
fn run_triggers(lua: &Lua, tx: &Tx, txn: &Txn, before: usize) -> Result<(), BoxError> {
    let spaces = tx.trigger_spaces.borrow();
    let stmts = &txn.stmts[before..];
    if spaces.is_empty() || !stmts.iter().any(|stmt| spaces.contains(&stmt.space_id)) {
        return Ok(());
    }
    drop(spaces);
    let runner: Function = lua
        .named_registry_value(TRIGGERS_KEY)
        .map_err(|err| BoxError::with_message(ErrCode::PROC_LUA, err.to_string()))?;
    for stmt in stmts {
        let old = stmt.old.clone().map(|t| push(lua, t)).transpose();
        let new = stmt.new.clone().map(|t| push(lua, t)).transpose();
        let (old, new) = match (old, new) {
            (Ok(old), Ok(new)) => (old, new),
            _ => {
                return Err(BoxError::with_message(
                    ErrCode::PROC_LUA,
                    "can't push tuples",
                ));
            }
        };
        let outcome: mlua::Result<Value> = runner.call((stmt.space_id, old, new));
        match outcome {
            Ok(Value::Nil) => {}
            Ok(err) => return Err(lua_error_of(&err)),
            Err(err) => {
                return Err(BoxError::with_message(
                    ErrCode::PROC_LUA,
                    super::serializer::error_message(&err),
                ));
            }
        }
    }
    Ok(())
}

/// A box.error object (or any value) returned by the trigger runner as a BoxError.
fn lua_error_of(value: &Value) -> BoxError {
    if let Value::Table(table) = value {
        let code: u32 = table.get("code").unwrap_or(ErrCode::PROC_LUA.0);
        let message: String = table.get("message").unwrap_or_default();
        return BoxError::with_message(ErrCode(code), message);
    }
    BoxError::with_message(ErrCode::PROC_LUA, value.to_string().unwrap_or_default())
}

/// Replicated DDL changed spaces: box.space follows (errors are logged, not raised: the
/// rows are applied).
pub fn refresh_schema(lua: &Lua, tx: &Tx) {
    if let Err(err) = notify_schema(lua, tx) {
        log::error!("can't refresh box.space: {err}");
    }
}

/// Tell the Lua side which spaces changed definition, so box.space follows.
fn notify_schema(lua: &Lua, tx: &Tx) -> mlua::Result<()> {
    let changed = match tx.db.borrow_mut().as_mut() {
        Some(db) => std::mem::take(&mut db.changed_spaces),
        None => return Ok(()),
    };
    if changed.is_empty() {
        return Ok(());
    }
    let hook: Option<Function> = lua.named_registry_value(SCHEMA_HOOK_KEY).ok();
    if let Some(hook) = hook {
        hook.call::<()>(lua.create_sequence_from(changed)?)?;
    }
    Ok(())
}

/// A number argument (Lua numbers arrive as floats or integers).
fn number(value: &Value) -> Option<u64> {
    match value {
        Value::Integer(n) if *n >= 0 => Some(*n as u64),
        Value::Number(n) if *n >= 0.0 && n.fract() == 0.0 => Some(*n as u64),
        _ => None,
    }
}

/// The `internal.data` table.
pub fn open(lua: &Lua, tx: &Rc<Tx>) -> mlua::Result<Table> {
    lua.set_app_data(tx.clone());
    super::tuple::open(lua)?;
    let module = lua.create_table()?;
    open_commit_waits(lua, tx, &module)?;
    module.set(
        "set_hooks",
        lua.create_function(|lua, (triggers, schema): (Function, Function)| {
            lua.set_named_registry_value(TRIGGERS_KEY, triggers)?;
            lua.set_named_registry_value(SCHEMA_HOOK_KEY, schema)
        })?,
    )?;
    open_requests(lua, tx, &module)?;
    open_reads(lua, tx, &module)?;
    open_txn(lua, tx, &module)?;
    module.set("fast", super::box_fast::open(lua, tx)?)?;
    Ok(module)
}

/// `commit_wait()` parks the running fiber while its commit waits for the WAL (true: yield
/// now); `commit_result()` then gives its error, or nil; `wal_async()` whether commits wait.
fn open_commit_waits(lua: &Lua, tx: &Rc<Tx>, module: &Table) -> mlua::Result<()> {
    let t = tx.clone();
    module.set(
        "commit_wait",
        lua.create_function(move |_, ()| {
            let fiber = fiber_id(&t);
            if fiber == crate::process::NO_FIBER || !t.journal.borrow().fiber_waits(fiber) {
                return Ok(false);
            }
            t.journal.borrow_mut().park(fiber);
            super::fiber::park(&t, None, false)?;
            Ok(true)
        })?,
    )?;
    let t = tx.clone();
    module.set(
        "commit_result",
        lua.create_function(move |lua, ()| {
            let fiber = fiber_id(&t);
            let result = t.journal.borrow_mut().take_result(fiber);
            super::util::nil_or_error(lua, result)
        })?,
    )?;
    let t = tx.clone();
    module.set(
        "inject",
        lua.create_function(move |_, (name, value): (String, Value)| {
            use crate::wal::writer::WalMsg;
            let msg = match (name.as_str(), value) {
                ("ERRINJ_WAL_IO", Value::Boolean(on)) => WalMsg::InjectIoError(on),
                ("ERRINJ_WAL_WRITE_PARTIAL", Value::Integer(bytes)) if bytes >= 0 => {
                    WalMsg::InjectPartialWrite(bytes as usize)
                }
                ("ERRINJ_WAL_WRITE_PARTIAL", Value::Number(bytes)) if bytes >= 0.0 => {
                    WalMsg::InjectPartialWrite(bytes as usize)
                }
                ("ERRINJ_WAL_DELAY", Value::Number(seconds)) if seconds >= 0.0 => {
                    WalMsg::InjectDelay(std::time::Duration::from_secs_f64(seconds.min(60.0)))
                }
                ("ERRINJ_WAL_DELAY", Value::Integer(seconds)) if seconds >= 0 => {
                    WalMsg::InjectDelay(std::time::Duration::from_secs(seconds.min(60) as u64))
                }
                ("ERRINJ_WAL_IO" | "ERRINJ_WAL_WRITE_PARTIAL" | "ERRINJ_WAL_DELAY", _) => {
                    return Ok((false, Some("bad value for the error injection")));
                }
                _ => return Ok((false, Some("no such error injection"))),
            };
            if !t.journal.borrow().inject(msg) {
                return Ok((false, Some("the WAL is off (wal_mode = 'none')")));
            }
            Ok((true, None))
        })?,
    )?;
    let t = tx.clone();
    module.set(
        "wal_async",
        lua.create_function(move |_, ()| Ok(t.journal.borrow().is_async()))?,
    )?;
    Ok(())
}

fn open_requests(lua: &Lua, tx: &Rc<Tx>, module: &Table) -> mlua::Result<()> {
    for (name, kind) in [
        ("insert", RequestKind::Insert),
        ("replace", RequestKind::Replace),
    ] {
        let t = tx.clone();
        module.set(
            name,
            lua.create_function(move |lua, (space_id, tuple): (u32, Value)| {
                let data = encode(lua, &tuple)?;
                let mut request = Request::new(kind, space_id);
                request.tuple = &data;
                change(lua, &t, &request)
            })?,
        )?;
    }
    let t = tx.clone();
    module.set(
        "update",
        lua.create_function(
            move |lua, (space_id, index_id, key, ops): (u32, u32, Value, Value)| {
                let key = encode_key(lua, &key)?;
                let ops = encode(lua, &ops)?;
                let mut request = Request::new(RequestKind::Update, space_id);
                request.index_id = index_id;
                request.key = &key;
                request.tuple = &ops;
                request.index_base = 1;
                change(lua, &t, &request)
            },
        )?,
    )?;
    let t = tx.clone();
    module.set(
        "delete",
        lua.create_function(move |lua, (space_id, index_id, key): (u32, u32, Value)| {
            let key = encode_key(lua, &key)?;
            let mut request = Request::new(RequestKind::Delete, space_id);
            request.index_id = index_id;
            request.key = &key;
            change(lua, &t, &request)
        })?,
    )?;
    let t = tx.clone();
    module.set(
        "upsert",
        lua.create_function(move |lua, (space_id, tuple, ops): (u32, Value, Value)| {
            let tuple = encode(lua, &tuple)?;
            let ops = encode(lua, &ops)?;
            let mut request = Request::new(RequestKind::Upsert, space_id);
            request.tuple = &tuple;
            request.ops = &ops;
            request.index_base = 1;
            change(lua, &t, &request)
        })?,
    )?;
    Ok(())
}

/// An iterator argument: a number, or a name (`'GE'`); ER_ITERATOR_TYPE for a bad name.
fn iterator_of(value: &Value) -> Result<u64, BoxError> {
    match value {
        Value::Nil => Ok(0),
        Value::String(name) => {
            let name = name.to_string_lossy();
            IteratorType::parse(&name)
                .map(|it| it as u64)
                .ok_or_else(|| BoxError::new(ErrCode::ITERATOR_TYPE, &[&name]))
        }
        other => number(other).ok_or_else(|| BoxError::new(ErrCode::ITERATOR_TYPE, &[&"?"])),
    }
}

fn open_reads(lua: &Lua, tx: &Rc<Tx>, module: &Table) -> mlua::Result<()> {
    let t = tx.clone();
    module.set(
        "select",
        lua.create_function(
            move |lua,
                  (space_id, index_id, iterator, offset, limit, key): (
                u32,
                u32,
                Value,
                Option<u32>,
                Option<u32>,
                Value,
            )| {
                let iterator = match iterator_of(&iterator) {
                    Ok(iterator) => iterator,
                    Err(err) => return fail(lua, &err),
                };
                let key = encode_key(lua, &key)?;
                let mut request = Request::new(RequestKind::Select, space_id);
                request.index_id = index_id;
                request.key = &key;
                request.iterator = iterator;
                request.offset = offset.unwrap_or(0);
                request.limit = limit.unwrap_or(u32::MAX);
                request.uid = t.current_uid();
                let found = with_db(&t, |db| db.select(&request));
                match found {
                    Ok(tuples) => {
                        let values = tuples
                            .into_iter()
                            .map(|tuple| push(lua, tuple))
                            .collect::<mlua::Result<Vec<_>>>()?;
                        Ok((Value::Table(lua.create_sequence_from(values)?), Value::Nil))
                    }
                    Err(err) => fail(lua, &err),
                }
            },
        )?,
    )?;
    let t = tx.clone();
    module.set(
        "cursor",
        lua.create_function(
            move |lua, (space_id, index_id, iterator, key): (u32, u32, Value, Value)| {
                let iterator = match iterator_of(&iterator) {
                    Ok(iterator) => iterator,
                    Err(err) => return fail(lua, &err),
                };
                let key = encode_key(lua, &key)?;
                let uid = t.current_uid();
                match with_db(&t, |db| {
                    open_cursor(db, space_id, index_id, iterator, &key, uid)
                }) {
                    Ok(cursor) => Ok((
                        super::box_fast::push_cursor(
                            lua,
                            super::box_fast::LuaCursor {
                                space_id,
                                index_id,
                                uid,
                                cursor,
                            },
                        )?,
                        Value::Nil,
                    )),
                    Err(err) => fail(lua, &err),
                }
            },
        )?,
    )?;
    let t = tx.clone();
    module.set(
        "len",
        lua.create_function(move |lua, (space_id, index_id): (u32, u32)| {
            let len = with_db(&t, |db| {
                let space = db
                    .space(space_id)
                    .ok_or_else(|| BoxError::new(ErrCode::NO_SUCH_SPACE, &[&space_id]))?;
                let index = space
                    .index(index_id)
                    .ok_or_else(|| space.no_such_index(index_id))?;
                Ok(index.len())
            });
            match len {
                Ok(len) => Ok((Value::Integer(len as i64), Value::Nil)),
                Err(err) => fail(lua, &err),
            }
        })?,
    )?;
    let t = tx.clone();
    module.set(
        "get",
        lua.create_function(move |lua, (space_id, index_id, key): (u32, u32, Value)| {
            let key = encode_key(lua, &key)?;
            let uid = t.current_uid();
            match with_db(&t, |db| db.get(space_id, index_id, &key, uid)) {
                Ok(Some(tuple)) => Ok((push(lua, tuple)?, Value::Nil)),
                Ok(None) => Ok((Value::Nil, Value::Nil)),
                Err(err) => fail(lua, &err),
            }
        })?,
    )?;
    module.set(
        "tuple_update",
        lua.create_function(|lua, (tuple, ops): (Value, Value)| {
            super::tuple::update_standalone(lua, &tuple, &ops, false)
        })?,
    )?;
    module.set(
        "tuple_upsert",
        lua.create_function(|lua, (tuple, ops): (Value, Value)| {
            super::tuple::update_standalone(lua, &tuple, &ops, true)
        })?,
    )?;
    module.set(
        "tuple_transform",
        lua.create_function(|lua, (tuple, args): (Value, mlua::Variadic<Value>)| {
            super::tuple::transform(lua, &tuple, args)
        })?,
    )?;
    module.set(
        "set_tuple_methods",
        lua.create_function(|lua, methods: Table| super::tuple::add_methods(lua, &methods))?,
    )?;
    module.set(
        "new_tuple",
        lua.create_function(|lua, value: Value| new_tuple(lua, &value))?,
    )?;
    let t = tx.clone();
    module.set(
        "index_bsize",
        lua.create_function(move |_, (space_id, index_id): (u32, u32)| {
            Ok(with_db(&t, |db| {
                Ok(db
                    .space(space_id)
                    .and_then(|space| space.index(index_id))
                    .map_or(0, |index| index.memory_usage()))
            })
            .unwrap_or(0))
        })?,
    )?;
    let t = tx.clone();
    module.set(
        "bsize",
        lua.create_function(move |_, space_id: u32| {
            Ok(with_db(&t, |db| {
                Ok(db.space(space_id).map_or(0, |space| space.bsize))
            })
            .unwrap_or(0))
        })?,
    )?;
    let t = tx.clone();
    module.set(
        "random",
        lua.create_function(move |lua, (space_id, index_id, seed): (u32, u32, u64)| {
            let found = with_db(&t, |db| {
                let space = db
                    .space(space_id)
                    .ok_or_else(|| BoxError::new(ErrCode::NO_SUCH_SPACE, &[&space_id]))?;
                let index = space
                    .index(index_id)
                    .ok_or_else(|| space.no_such_index(index_id))?;
                Ok(index.random(seed))
            });
            match found {
                Ok(Some(tuple)) => Ok((push(lua, tuple)?, Value::Nil)),
                Ok(None) => Ok((Value::Nil, Value::Nil)),
                Err(err) => fail(lua, &err),
            }
        })?,
    )?;
    let t = tx.clone();
    module.set(
        "space_info",
        lua.create_function(move |lua, space_id: u32| space_info(lua, &t, space_id))?,
    )?;
    let t = tx.clone();
    module.set(
        "space_ids",
        lua.create_function(move |lua, ()| {
            let ids: Vec<u32> = match t.db.borrow().as_ref() {
                Some(db) => db.spaces().map(|space| space.def.id).collect(),
                None => Vec::new(),
            };
            lua.create_sequence_from(ids)
        })?,
    )?;
    let t = tx.clone();
    module.set(
        "set_trigger_space",
        lua.create_function(move |_, (space_id, on): (u32, bool)| {
            let mut spaces = t.trigger_spaces.borrow_mut();
            if on {
                spaces.insert(space_id);
            } else {
                spaces.remove(&space_id);
            }
            Ok(())
        })?,
    )?;
    Ok(())
}

/// A cursor for `index:pairs(key, {iterator = ...})`, with the checks of a select.
fn open_cursor(
    db: &Db,
    space_id: u32,
    index_id: u32,
    iterator: u64,
    key: &[u8],
    uid: u32,
) -> Result<Cursor<'static>, BoxError> {
    let mut request = Request::new(RequestKind::Select, space_id);
    request.index_id = index_id;
    request.iterator = iterator;
    request.key = key;
    request.uid = uid;
    db.open_cursor(&request).map(Cursor::into_owned)
}

/// What `box.space[id]` is built from: `{id, name, engine, field_count, temporary, owner,
/// index = {[iid] = {id, name, type, unique, parts = {{fieldno, type}}}}}`, or nil.
fn space_info(lua: &Lua, tx: &Tx, space_id: u32) -> mlua::Result<Value> {
    let db = tx.db.borrow();
    let Some(space) = db.as_ref().and_then(|db| db.space(space_id)) else {
        return Ok(Value::Nil);
    };
    let info = lua.create_table()?;
    info.set("id", space.def.id)?;
    info.set("name", space.def.name.as_str())?;
    info.set("engine", space.def.engine.as_str())?;
    info.set("field_count", space.def.field_count)?;
    info.set("temporary", space.def.temporary)?;
    info.set("owner", space.def.owner)?;
    let view_source = crate::r#box::schema::view_source(space_id).filter(|_| space.def.is_view());
    let source = view_source
        .and_then(|id| db.as_ref().and_then(|db| db.space(id)))
        .unwrap_or(space);
    let indexes = lua.create_table()?;
    for index in source.all_indexes() {
        let def = &index.def;
        let entry = lua.create_table()?;
        entry.set("id", def.id)?;
        entry.set("name", def.name.as_str())?;
        entry.set("type", def.kind.name())?;
        entry.set("unique", def.unique)?;
        entry.set("space_id", space_id)?;
        let parts = lua.create_table()?;
        for (n, part) in def.key_def.parts.iter().enumerate() {
            let item = lua.create_table()?;
            item.set("fieldno", part.fieldno + 1)?;
            item.set("type", part.field_type.name_16())?;
            parts.raw_set(n + 1, item)?;
        }
        entry.set("parts", parts)?;
        indexes.raw_set(def.id, entry)?;
    }
    info.set("index", indexes)?;
    Ok(Value::Table(info))
}

fn open_txn(lua: &Lua, tx: &Rc<Tx>, module: &Table) -> mlua::Result<()> {
    let t = tx.clone();
    module.set(
        "begin",
        lua.create_function(move |lua, ()| {
            let fiber = fiber_id(&t);
            if t.txns.borrow().contains_key(&fiber) {
                return fail(lua, &BoxError::new(ErrCode::ACTIVE_TRANSACTION, &[]));
            }
            if t.db.borrow().is_none() {
                return fail(lua, &not_configured());
            }
            t.txns.borrow_mut().insert(fiber, Txn::begin());
            Ok((Value::Boolean(true), Value::Nil))
        })?,
    )?;
    let t = tx.clone();
    module.set(
        "commit",
        lua.create_function(move |lua, ()| {
            let txn = t.txns.borrow_mut().remove(&fiber_id(&t));
            let Some(txn) = txn else {
                return Ok((Value::Boolean(true), Value::Nil));
            };
            match commit(&t, txn) {
                Ok(()) => Ok((Value::Boolean(true), Value::Nil)),
                Err(err) => fail(lua, &err),
            }
        })?,
    )?;
    let t = tx.clone();
    module.set(
        "rollback",
        lua.create_function(move |lua, ()| {
            rollback_fiber(&t, fiber_id(&t));
            notify_schema(lua, &t)?;
            Ok(())
        })?,
    )?;
    let t = tx.clone();
    module.set(
        "in_transaction",
        lua.create_function(move |_, ()| Ok(t.txns.borrow().contains_key(&fiber_id(&t))))?,
    )?;
    Ok(())
}

/// Roll back the open transaction of `fiber`, if any (box.rollback, a fiber that ends or
/// a console statement that fails with one open).
pub fn rollback_fiber(tx: &Tx, fiber: u64) {
    let txn = tx.txns.borrow_mut().remove(&fiber);
    if let Some(txn) = txn {
        let _ = with_db(tx, |db| {
            db.rollback(txn);
            Ok(())
        });
    }
}

/// A tuple for `box.tuple.new`: from a table or the arguments.
pub fn new_tuple(lua: &Lua, value: &Value) -> mlua::Result<Value> {
    let data = match value {
        Value::Table(_) => encode(lua, value)?,
        other => {
            let mut out = vec![0x91];
            super::msgpack::encode_value(lua, other, &mut out)?;
            out
        }
    };
    if !crate::r#box::mp::is_array(&data) {
        return Err(mlua::Error::runtime("Tuple/Key must be MsgPack array"));
    }
    push(lua, Tuple::new(&data))
}
