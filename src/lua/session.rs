//! `internal.session`: the session of the running fiber, for `box.session`.
//!
//! Owned by the TX thread. A fiber runs in the session of the fiber that created it; a
//! console client's fiber gets a session of its own (admin, as Tarantool's console is).

use std::rc::Rc;

use mlua::{Lua, MultiValue, Table, Value};

use crate::r#box::session::SessionKind;
use crate::error::{BoxError, ErrCode};
use crate::fiber::FiberId;
use crate::tx::Tx;

use super::util::failure;

/// Give fiber `fiber` a new session of `kind` for `peer` (a console client).
pub fn open_for_fiber(tx: &Tx, fiber: FiberId, kind: SessionKind, peer: &str) -> u32 {
    let uid = crate::r#box::schema::ADMIN;
    let session = tx
        .sessions
        .borrow_mut()
        .open(kind, uid, Some(peer.to_string()));
    if let Some(meta) = tx.sched.borrow_mut().get_mut(fiber) {
        meta.session = session;
    }
    session
}

/// Close session `id`; fibers still running in it keep its user.
pub fn close_session(tx: &Tx, id: u32) -> bool {
    let closed = tx.sessions.borrow_mut().close(id);
    match closed {
        Some(session) => {
            tx.sched.borrow_mut().orphan_session(id, session.uid);
            true
        }
        None => false,
    }
}

fn current(tx: &Tx) -> u32 {
    tx.sched.borrow().current_session()
}

/// A user id from a name or a number.
fn resolve_user(tx: &Tx, user: &Value) -> Result<u32, BoxError> {
    let db = tx.db.borrow();
    let access = db.as_ref().map(|db| &db.access);
    let found = match user {
        Value::String(name) => {
            let name = name.to_string_lossy();
            access
                .and_then(|a| a.user_by_name(&name))
                .map(|u| u.id)
                .ok_or_else(|| name.clone())
        }
        Value::Integer(id) => access
            .and_then(|a| a.user(*id as u32))
            .map(|u| u.id)
            .ok_or_else(|| id.to_string()),
        Value::Number(id) => access
            .and_then(|a| a.user(*id as u32))
            .map(|u| u.id)
            .ok_or_else(|| id.to_string()),
        other => Err(other.to_string().unwrap_or_default()),
    };
    found.map_err(|name| BoxError::new(ErrCode::NO_SUCH_USER, &[&name]))
}

/// The `internal.session` table.
pub fn open(lua: &Lua, tx: &Rc<Tx>) -> mlua::Result<Table> {
    let module = lua.create_table()?;
    let t = tx.clone();
    module.set("id", lua.create_function(move |_, ()| Ok(current(&t)))?)?;
    let t = tx.clone();
    module.set(
        "uid",
        lua.create_function(move |_, ()| Ok(t.current_uid()))?,
    )?;
    let t = tx.clone();
    module.set(
        "user",
        lua.create_function(move |_, ()| {
            let uid = t.current_uid();
            let db = t.db.borrow();
            Ok(match db.as_ref() {
                Some(db) => db.access.user_name(uid),
                None => String::from("admin"),
            })
        })?,
    )?;
    let t = tx.clone();
    module.set(
        "su",
        lua.create_function(move |lua, user: Value| {
            let uid = match resolve_user(&t, &user) {
                Ok(uid) => uid,
                Err(err) => return failure(lua, &err),
            };
            let session = current(&t);
            let previous = t.sessions.borrow().uid(session);
            if let Some(session) = t.sessions.borrow_mut().get_mut(session) {
                session.uid = uid;
            }
            Ok(MultiValue::from_iter([Value::Integer(previous as i64)]))
        })?,
    )?;
    let t = tx.clone();
    module.set(
        "peer",
        lua.create_function(move |_, id: Option<u32>| {
            let id = id.unwrap_or_else(|| current(&t));
            Ok(t.sessions.borrow().get(id).and_then(|s| s.peer.clone()))
        })?,
    )?;
    let t = tx.clone();
    module.set(
        "type",
        lua.create_function(move |_, ()| {
            let id = current(&t);
            Ok(t.sessions.borrow().get(id).map(|s| s.kind.name()))
        })?,
    )?;
    let t = tx.clone();
    module.set(
        "exists",
        lua.create_function(move |_, id: u32| Ok(t.sessions.borrow().get(id).is_some()))?,
    )?;
    let t = tx.clone();
    module.set(
        "close",
        lua.create_function(move |_, id: u32| Ok(close_session(&t, id)))?,
    )?;
    Ok(module)
}
