//! `internal.data.fast`: the hot data requests as Lua C functions on the raw stack.
//!
//! Owned by the TX thread. `space:insert`, `space:replace`, `space:delete`,
//! `space:update`, `index:get` and `index:pairs` steps run here without mlua's per-call
//! argument conversion and reference bookkeeping: arguments are read from the stack, tuples
//! and keys encoded straight from it (mp_fast), and the request goes to the same
//! `Db` functions the mlua versions in box_data use.
//!
//! Each returns, besides its result, a way out: `false, code, message, type` for a failed
//! request (the Lua wrapper raises it as a box.error), or a lone `false` when the fast
//! path does not apply (arguments it cannot encode, spaces with `on_replace` triggers or
//! system spaces whose changes run Lua) and the wrapper must call the mlua version.

use std::cell::RefCell;
use std::ffi::{c_int, c_void};
use std::rc::Rc;

use mlua::{Function, Lua, Table, ffi};

use crate::r#box::db::{Request, RequestKind};
use crate::r#box::index::Cursor;
use crate::r#box::schema;
use crate::error::BoxError;
use crate::tx::Tx;

use super::raw::{self, Class, arg_u32};
use super::serializer::SerializerCfg;
use super::tuple;

thread_local! {
    /// Where keys, tuples and operations are encoded (one request at a time: nothing here
    /// calls back into Lua while it is borrowed).
    static SCRATCH: RefCell<[Vec<u8>; 2]> = const { RefCell::new([Vec::new(), Vec::new()]) };
}

static CURSOR_KEY: u8 = 0;
/// The class of `index:pairs()` cursors.
static CURSOR_CLASS: Class = Class { key: &CURSOR_KEY };

/// A cursor over an index, for `index:pairs()`.
pub struct LuaCursor {
    pub space_id: u32,
    pub index_id: u32,
    /// The user who opened it: a view shows that user's rows only.
    pub uid: u32,
    pub cursor: Cursor<'static>,
}

/// The `Tx` of upvalue 1.
///
/// # Safety
/// Called from the functions [`open`] made, whose upvalue 1 is a pointer to the `Tx` the
/// Lua state's app data keeps alive.
unsafe fn tx<'a>(state: *mut ffi::lua_State) -> &'a Tx {
    // SAFETY: as the caller promises.
    unsafe { &*ffi::lua_touserdata(state, ffi::lua_upvalueindex(1)).cast::<Tx>() }
}

/// The lone `false`: take the slow path.
///
/// # Safety
/// `state` is valid with a free slot.
unsafe fn slow(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: as the caller promises.
    unsafe { ffi::lua_pushboolean(state, 0) };
    1
}

/// `false, code, message, type`: a failed request.
///
/// # Safety
/// `state` is valid with four free slots (LUA_MINSTACK guarantees 20).
unsafe fn failed(state: *mut ffi::lua_State, err: &BoxError) -> c_int {
    // SAFETY: as the caller promises.
    unsafe {
        ffi::lua_pushboolean(state, 0);
        ffi::lua_pushnumber(state, f64::from(err.code.0));
        ffi::lua_pushlstring(state, err.message.as_ptr().cast(), err.message.len());
        let kind = err.kind.as_str();
        ffi::lua_pushlstring(state, kind.as_ptr().cast(), kind.len());
    }
    4
}

/// Push a found tuple, or nil.
///
/// # Safety
/// `state` is valid with three free slots.
unsafe fn found(state: *mut ffi::lua_State, tuple: Option<crate::r#box::tuple::Tuple>) -> c_int {
    // SAFETY: as the caller promises.
    unsafe {
        match tuple {
            Some(tuple) => tuple::push_raw(state, tuple),
            None => ffi::lua_pushnil(state),
        }
    }
    1
}

/// Encode argument `idx` as a tuple (a table or a tuple) into `out`.
///
/// # Safety
/// `state` is valid and `idx` an argument index.
unsafe fn encode_tuple(state: *mut ffi::lua_State, idx: c_int, out: &mut Vec<u8>) -> bool {
    out.clear();
    // SAFETY: as the caller promises.
    unsafe {
        matches!(
            ffi::lua_type(state, idx),
            ffi::LUA_TTABLE | ffi::LUA_TUSERDATA
        ) && super::mp_fast::encode_at(state, idx, 0, &SerializerCfg::default(), out)
    }
}

/// Encode argument `idx` as a key: nil is the empty key, a scalar a one-part key.
///
/// # Safety
/// As [`encode_tuple`].
unsafe fn encode_key(state: *mut ffi::lua_State, idx: c_int, out: &mut Vec<u8>) -> bool {
    out.clear();
    // SAFETY: as the caller promises.
    unsafe {
        match ffi::lua_type(state, idx) {
            ffi::LUA_TNIL | ffi::LUA_TNONE => {
                out.push(0x90);
                true
            }
            ffi::LUA_TTABLE | ffi::LUA_TUSERDATA => encode_tuple(state, idx, out),
            ffi::LUA_TNUMBER | ffi::LUA_TSTRING | ffi::LUA_TBOOLEAN => {
                out.push(0x91);
                super::mp_fast::encode_at(state, idx, 0, &SerializerCfg::default(), out)
            }
            _ => false,
        }
    }
}

/// Whether a change to `space_id` may skip Lua: no `on_replace` triggers, and not a system
/// space (whose changes alter the schema and call the schema hook).
fn plain_space(tx: &Tx, space_id: u32) -> bool {
    !(schema::SYSTEM_ID_MIN..=schema::SYSTEM_ID_MAX).contains(&space_id)
        && !tx.trigger_spaces.borrow().contains(&space_id)
}

/// Run a change and push its outcome.
///
/// # Safety
/// `state` is valid with four free slots.
unsafe fn change(state: *mut ffi::lua_State, tx: &Tx, request: &Request) -> c_int {
    let mut request = request.clone();
    request.uid = tx.current_uid();
    let owner = Some(crate::process::fiber_id(tx));
    let applied = crate::process::apply(tx, &request, owner, |_, _| Ok(()));
    // SAFETY: as the caller promises.
    unsafe {
        match applied {
            Ok(tuple) => found(state, tuple),
            Err(err) => failed(state, &err),
        }
    }
}

/// What a request needs from its first arguments: the space id (argument 1) and, for
/// keyed requests, the index id (argument 2).
enum Ids {
    Space,
    SpaceAndIndex,
}

/// The common start of every request: the ids, the slow path for a change to a space that
/// is not plain ([`plain_space`]), the scratch buffers; then `body(tx, space, index,
/// scratch)`. A lone `false` when an id is not a whole number or the scratch is busy.
///
/// # Safety
/// `state` is a call of a function [`open`] made, with four free slots.
unsafe fn request(
    state: *mut ffi::lua_State,
    ids: Ids,
    change: bool,
    body: impl FnOnce(&Tx, u32, u32, &mut [Vec<u8>; 2]) -> c_int,
) -> c_int {
    // SAFETY: as the caller promises.
    unsafe {
        let tx = tx(state);
        let Some(space_id) = arg_u32(state, 1) else {
            return slow(state);
        };
        let index_id = match ids {
            Ids::Space => 0,
            Ids::SpaceAndIndex => match arg_u32(state, 2) {
                Some(id) => id,
                None => return slow(state),
            },
        };
        if change && !plain_space(tx, space_id) {
            return slow(state);
        }
        SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
            Ok(mut scratch) => body(tx, space_id, index_id, &mut scratch),
            Err(_) => slow(state),
        })
    }
}

/// `fast.insert(space_id, tuple)` and `fast.replace(...)`: the kind is upvalue 2.
unsafe extern "C-unwind" fn store(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: made by `open` with upvalues (tx, kind); arguments read by index.
    unsafe {
        let kind = if ffi::lua_toboolean(state, ffi::lua_upvalueindex(2)) != 0 {
            RequestKind::Replace
        } else {
            RequestKind::Insert
        };
        request(state, Ids::Space, true, |tx, space_id, _, [data, _]| {
            if !encode_tuple(state, 2, data) {
                return slow(state);
            }
            let mut request = Request::new(kind, space_id);
            request.tuple = data;
            change(state, tx, &request)
        })
    }
}

/// `fast.delete(space_id, index_id, key)`.
unsafe extern "C-unwind" fn delete(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: made by `open` with upvalue 1 the tx; arguments read by index.
    unsafe {
        request(
            state,
            Ids::SpaceAndIndex,
            true,
            |tx, space_id, index_id, [key, _]| {
                if !encode_key(state, 3, key) {
                    return slow(state);
                }
                let mut request = Request::new(RequestKind::Delete, space_id);
                request.index_id = index_id;
                request.key = key;
                change(state, tx, &request)
            },
        )
    }
}

/// `fast.update(space_id, index_id, key, ops)`.
unsafe extern "C-unwind" fn update(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: made by `open` with upvalue 1 the tx; arguments read by index.
    unsafe {
        request(
            state,
            Ids::SpaceAndIndex,
            true,
            |tx, space_id, index_id, [key, ops]| {
                if !encode_key(state, 3, key) || !encode_tuple(state, 4, ops) {
                    return slow(state);
                }
                let mut request = Request::new(RequestKind::Update, space_id);
                request.index_id = index_id;
                request.key = key;
                request.tuple = ops;
                request.index_base = 1;
                change(state, tx, &request)
            },
        )
    }
}

/// `fast.get(space_id, index_id, key)`.
unsafe extern "C-unwind" fn get(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: made by `open` with upvalue 1 the tx; arguments read by index.
    unsafe {
        request(
            state,
            Ids::SpaceAndIndex,
            false,
            |tx, space_id, index_id, [key, _]| {
                if !encode_key(state, 3, key) {
                    return slow(state);
                }
                let uid = tx.current_uid();
                let outcome = match tx.db.try_borrow() {
                    Ok(db) => match db.as_ref() {
                        Some(db) => db.get(space_id, index_id, key, uid),
                        None => return slow(state),
                    },
                    Err(_) => return slow(state),
                };
                match outcome {
                    Ok(tuple) => found(state, tuple),
                    Err(err) => failed(state, &err),
                }
            },
        )
    }
}

/// `fast.next(cursor)`: the cursor's next tuple, or nil at the end. It is the generator of
/// `index:pairs()` too: called as `next(cursor, state)` it returns `true, tuple`.
unsafe extern "C-unwind" fn next(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: made by `open` with upvalue 1 the tx; the cursor reference is dropped before
    // anything could call back into Lua.
    unsafe {
        let tx = tx(state);
        let generator = ffi::lua_gettop(state) >= 2;
        let Some(cursor) = raw::get::<LuaCursor>(state, 1, &CURSOR_CLASS) else {
            ffi::lua_pushnil(state);
            return 1;
        };
        let tuple = match tx.db.try_borrow() {
            Ok(db) => db.as_ref().and_then(|db| {
                db.cursor_next(
                    cursor.space_id,
                    cursor.index_id,
                    cursor.uid,
                    &mut cursor.cursor,
                )
            }),
            Err(_) => None,
        };
        match tuple {
            Some(tuple) if generator => {
                ffi::lua_pushboolean(state, 1);
                tuple::push_raw(state, tuple);
                2
            }
            Some(tuple) => found(state, Some(tuple)),
            None => {
                ffi::lua_pushnil(state);
                1
            }
        }
    }
}

/// Push a cursor object to Lua.
pub fn push_cursor(lua: &Lua, cursor: LuaCursor) -> mlua::Result<mlua::Value> {
    lua.exec_raw_lua(|raw| {
        // SAFETY: three slots are checked; the new object is popped into a Value.
        unsafe {
            let state = raw.state();
            if ffi::lua_checkstack(state, 3) == 0 {
                return Err(mlua::Error::runtime("out of Lua stack"));
            }
            raw::push(state, &CURSOR_CLASS, cursor);
            Ok(raw.pop_value())
        }
    })
}

/// The `fast` table of `internal.data`. The functions hold a pointer to `tx`, which the
/// Lua state's app data keeps alive as long as they can be called.
pub fn open(lua: &Lua, tx: &Rc<Tx>) -> mlua::Result<Table> {
    let pointer = Rc::as_ptr(tx).cast_mut().cast::<c_void>();
    type Raw = unsafe extern "C-unwind" fn(*mut ffi::lua_State) -> c_int;
    let closure = |function: Raw, replace: Option<bool>| -> mlua::Result<Function> {
        lua.exec_raw_lua(|raw| {
            // SAFETY: three slots are checked; the closure consumes its upvalues and is
            // popped into a Function.
            unsafe {
                let state = raw.state();
                if ffi::lua_checkstack(state, 3) == 0 {
                    return Err(mlua::Error::runtime("out of Lua stack"));
                }
                ffi::lua_pushlightuserdata(state, pointer);
                let upvalues = match replace {
                    Some(replace) => {
                        ffi::lua_pushboolean(state, c_int::from(replace));
                        2
                    }
                    None => 1,
                };
                ffi::lua_pushcclosure(state, function, upvalues);
                match raw.pop_value() {
                    mlua::Value::Function(function) => Ok(function),
                    _ => Err(mlua::Error::runtime("not a function")),
                }
            }
        })
    };
    lua.exec_raw_lua(|raw| {
        // SAFETY: four slots are checked; register leaves the stack as it was.
        unsafe {
            let state = raw.state();
            if ffi::lua_checkstack(state, 4) == 0 {
                return Err(mlua::Error::runtime("out of Lua stack"));
            }
            raw::register::<LuaCursor>(state, &CURSOR_CLASS, |_| {});
            Ok(())
        }
    })?;
    let fast = lua.create_table()?;
    fast.set("insert", closure(store, Some(false))?)?;
    fast.set("replace", closure(store, Some(true))?)?;
    fast.set("delete", closure(delete, None)?)?;
    fast.set("update", closure(update, None)?)?;
    fast.set("get", closure(get, None)?)?;
    fast.set("next", closure(next, None)?)?;
    Ok(fast)
}
