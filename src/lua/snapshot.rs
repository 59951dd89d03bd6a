//! `internal.snapshot`: the Rust half of `box.snapshot()` and the snapshot daemon (their Lua
//! half is `prelude/snapshot.lua`).
//!
//! Owned by the TX thread. `begin()` starts a snapshot (its id; false when it must wait for
//! open transactions; or nil, err), `wait(id)` parks the running fiber while it runs (true:
//! yield now), `result(id)` gives its error or nil; `exists()` and `remove_old(count)` serve
//! the daemon.

use std::path::PathBuf;
use std::rc::Rc;

use mlua::{Lua, MultiValue, Table, Value};

use crate::process::{NO_FIBER, fiber_id};
use crate::tx::Tx;
use crate::wal::snapshot;

use super::util::failure;

/// The `internal.snapshot` table.
pub fn open(lua: &Lua, tx: &Rc<Tx>) -> mlua::Result<Table> {
    let module = lua.create_table()?;
    let t = tx.clone();
    module.set(
        "begin",
        lua.create_function(move |lua, ()| match snapshot::begin(&t, fiber_id(&t)) {
            Ok(Some(id)) => Ok(MultiValue::from_iter([Value::Number(id as f64)])),
            Ok(None) => Ok(MultiValue::from_iter([Value::Boolean(false)])),
            Err(err) => failure(lua, &err),
        })?,
    )?;
    let t = tx.clone();
    module.set(
        "wait",
        lua.create_function(move |_, id: u64| {
            let fiber = fiber_id(&t);
            if fiber == NO_FIBER || !snapshot::wait(&t, id, fiber) {
                return Ok(false);
            }
            super::fiber::park(&t, None, false)?;
            Ok(true)
        })?,
    )?;
    let t = tx.clone();
    module.set(
        "result",
        lua.create_function(move |lua, id: u64| {
            super::util::nil_or_error(lua, snapshot::take_result(&t, id))
        })?,
    )?;
    let t = tx.clone();
    module.set(
        "exists",
        lua.create_function(move |_, ()| Ok(snapshot::exists_for_current(&t)))?,
    )?;
    let t = tx.clone();
    module.set(
        "remove_old",
        lua.create_function(move |lua, count: f64| {
            let (snap_dir, wal_dir) = {
                let cfg = t.cfg.borrow();
                (PathBuf::from(cfg.snap_dir()), PathBuf::from(cfg.wal_dir()))
            };
            let keep = snapshot::replicas_keep(&t);
            let count = count.max(0.0) as usize;
            match snapshot::remove_old_files(&snap_dir, &wal_dir, count, keep.as_ref()) {
                Ok(removed) => Ok(MultiValue::from_iter([
                    Value::Integer(removed.len() as i64),
                ])),
                Err(err) => failure(
                    lua,
                    &crate::error::BoxError::system("can't remove old snapshots", &err),
                ),
            }
        })?,
    )?;
    Ok(module)
}
