//! The fast path of CALL and EVAL requests: two Lua C functions on the raw stack that the
//! request fiber's entry (`builtin/iproto.lua`) calls around the user's function.
//!
//! Owned by the TX thread. `prepare` reads the fiber's request where net/iproto.rs left it
//! (in [`Tx::iproto_requests`]), checks access, finds the function (or compiles the
//! expression) and pushes it with its arguments; `reply` encodes the function's results
//! straight from the stack into the connection's output. Neither makes a Lua table or an
//! mlua handle, which is what a request cost through the general handlers (a tenth of the
//! time of a PING per CALL). Arguments other than scalars are decoded by msgpack.rs and
//! handed back to `prepare` as a table; results the raw encoder refuses (`__serialize`
//! functions, cdata...) and a transaction left open go to `internal.iproto.reply`.

use std::cell::RefCell;
use std::ffi::{c_int, c_void};
use std::rc::Rc;

use mlua::{Function, Lua, ffi};

use crate::r#box::mp;
use crate::r#box::user::EXECUTE;
use crate::error::{BoxError, ErrCode};
use crate::process::{fiber_id, with_db};
use crate::proto::iproto_constants::request_type;
use crate::proto::xrow;
use crate::tx::Tx;

use super::serializer::SerializerCfg;

thread_local! {
    /// Where the results of one reply are encoded before they are framed.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
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

/// What `prepare` made of a request.
enum Prepared {
    /// The function and its arguments are on the stack.
    Pushed,
    /// The arguments need the general decoder: call again with them in a table.
    NeedArgs,
}

/// `prepare([args])`: for the running fiber's CALL or EVAL, `true` and the function (a
/// method's object after it) and the arguments; or `false, code, message` (the request
/// fails with that error); or a lone `nil` when the arguments are not all scalars: the
/// caller decodes them (`internal.iproto.call_args`) and calls again with that table.
unsafe extern "C-unwind" fn prepare(state: *mut ffi::lua_State) -> c_int {
    // SAFETY (whole body): `state` is the calling coroutine; every push is within the
    // stack space checked in push_request.
    unsafe {
        let tx = tx(state);
        let fiber = fiber_id(tx);
        let taken = tx
            .iproto_requests
            .borrow_mut()
            .get_mut(&fiber)
            .map(|request| (request.kind, std::mem::take(&mut request.body)));
        let Some((kind, body)) = taken else {
            let err = BoxError::with_message(ErrCode::PROC_LUA, "no iproto request in this fiber");
            return failed(state, &err);
        };
        let args = (ffi::lua_type(state, 1) == ffi::LUA_TTABLE).then_some(1);
        let base = ffi::lua_gettop(state);
        ffi::lua_pushboolean(state, 1);
        let outcome = push_request(state, tx, kind, &body, args);
        // call_args reads the body when the arguments need decoding.
        if let Some(request) = tx.iproto_requests.borrow_mut().get_mut(&fiber) {
            request.body = body;
        }
        match outcome {
            Ok(Prepared::Pushed) => ffi::lua_gettop(state) - base,
            Ok(Prepared::NeedArgs) => {
                ffi::lua_settop(state, base);
                ffi::lua_pushnil(state);
                1
            }
            Err(err) => {
                ffi::lua_settop(state, base);
                failed(state, &err)
            }
        }
    }
}

/// `false, code, message`.
///
/// # Safety
/// `state` is valid with three free slots.
unsafe fn failed(state: *mut ffi::lua_State, err: &BoxError) -> c_int {
    // SAFETY: as the caller promises.
    unsafe {
        ffi::lua_pushboolean(state, 0);
        ffi::lua_pushnumber(state, f64::from(err.code.0));
        ffi::lua_pushlstring(state, err.message.as_ptr().cast(), err.message.len());
    }
    3
}

/// Push what request `kind` with `body` runs, as [`prepare`] describes; the arguments come
/// from the table at stack index `args` when given, else from the body.
///
/// # Safety
/// `state` is a valid Lua state of the TX thread.
unsafe fn push_request(
    state: *mut ffi::lua_State,
    tx: &Tx,
    kind: u32,
    body: &[u8],
    args: Option<c_int>,
) -> Result<Prepared, BoxError> {
    let decoded = xrow::decode_body(body)?;
    let (text, what) = match kind {
        request_type::EVAL => (decoded.expr, "expression"),
        _ => (decoded.function_name, "function name"),
    };
    let text = xrow::required(text, what)?;
    let tuple = xrow::required(decoded.tuple, "tuple")?;
    // SAFETY (whole block): as the caller promises; the function, an object and the
    // arguments fit in the stack space checked first.
    unsafe {
        let invalid = || BoxError::new(ErrCode::INVALID_MSGPACK, &[&"packet body"]);
        // The arguments' count and where the first starts (read in place: no vector).
        let scalars = match args {
            Some(_) => None,
            None => Some(mp::array_header(tuple).ok_or_else(invalid)?),
        };
        let count = match (scalars, args) {
            (Some((items, _)), _) => items as usize,
            (None, Some(table)) => ffi::lua_objlen(state, table),
            (None, None) => 0,
        };
        if ffi::lua_checkstack(
            state,
            c_int::try_from(count)
                .unwrap_or(c_int::MAX)
                .saturating_add(4),
        ) == 0
        {
            return Err(BoxError::with_message(ErrCode::PROC_LUA, "stack overflow"));
        }
        let uid = tx.current_uid();
        let mut owner = None;
        if kind == request_type::EVAL {
            with_db(tx, |db| db.access.check_universe(uid, EXECUTE))?;
            push_chunk(state, text)?;
        } else {
            let name = function_name(text);
            owner = with_db(tx, |db| db.access.check_function(uid, &name))?;
            push_function(state, text, &name)?;
        }
        match (scalars, args) {
            (Some((items, mut offset)), _) => {
                for _ in 0..items {
                    let rest = &tuple[offset..];
                    let size = crate::r#box::key_def::skip_value(rest).ok_or_else(invalid)?;
                    if !super::tuple::push_scalar(state, &rest[..size]) {
                        return Ok(Prepared::NeedArgs);
                    }
                    offset += size;
                }
            }
            (None, Some(table)) => {
                for n in 1..=count {
                    ffi::lua_rawgeti(state, table, n as i64);
                }
            }
            (None, None) => {}
        }
        if owner.is_some() {
            set_euid(tx, owner);
        }
    }
    Ok(Prepared::Pushed)
}

/// A function name as text. Names are nearly always ASCII, checked a word at a time;
/// str::from_utf8 costs five times as much on a short name, and from_utf8_lossy, for
/// names that are not UTF-8, more again.
fn function_name(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    if bytes.is_ascii() {
        // SAFETY: ASCII is UTF-8.
        return std::borrow::Cow::Borrowed(unsafe { std::str::from_utf8_unchecked(bytes) });
    }
    String::from_utf8_lossy(bytes)
}

/// A setuid function runs as its owner until the request is answered.
pub fn set_euid(tx: &Tx, uid: Option<u32>) {
    let mut sched = tx.sched.borrow_mut();
    if let Some(id) = sched.current()
        && let Some(meta) = sched.get_mut(id)
    {
        meta.euid = uid;
    }
}

/// Compile an EVAL expression as the chunk `=eval`; a syntax error is the request's.
///
/// # Safety
/// `state` is valid with a free slot.
unsafe fn push_chunk(state: *mut ffi::lua_State, text: &[u8]) -> Result<(), BoxError> {
    // SAFETY: as the caller promises.
    unsafe {
        if ffi::luaL_loadbuffer(state, text.as_ptr().cast(), text.len(), c"=eval".as_ptr()) == 0 {
            return Ok(());
        }
        let mut len = 0usize;
        let message = ffi::lua_tolstring(state, -1, &mut len);
        let message = if message.is_null() {
            String::new()
        } else {
            String::from_utf8_lossy(std::slice::from_raw_parts(message.cast::<u8>(), len))
                .into_owned()
        };
        Err(BoxError::with_message(ErrCode::PROC_LUA, message))
    }
}

/// The function a CALL names (`bytes`; `name` for messages), as 1.6 finds it: a global path
/// `a.b.c`, each step indexing a table or userdata, or `a.b:c`, called with `a.b` as its
/// first argument (pushed after the function).
///
/// # Safety
/// `state` is valid with three free slots.
unsafe fn push_function(
    state: *mut ffi::lua_State,
    bytes: &[u8],
    name: &str,
) -> Result<(), BoxError> {
    let no_such = || BoxError::new(ErrCode::NO_SUCH_PROC, &[&name]);
    let (path, method) = match bytes.iter().rposition(|b| *b == b':') {
        Some(at) if at > 0 && at + 1 < bytes.len() && !bytes[at + 1..].contains(&b'.') => {
            (&bytes[..at], Some(&bytes[at + 1..]))
        }
        _ => (bytes, None),
    };
    let mut parts = path
        .split(|b| *b == b'.')
        .filter(|part| !part.is_empty())
        .peekable();
    if parts.peek().is_none() {
        return Err(no_such());
    }
    // SAFETY: as the caller promises; each step replaces the top value.
    unsafe {
        ffi::lua_pushvalue(state, ffi::LUA_GLOBALSINDEX);
        for part in parts {
            if !index_top(state, part) {
                return Err(no_such());
            }
            ffi::lua_remove(state, -2);
        }
        if let Some(method) = method {
            if !index_top(state, method) {
                return Err(no_such());
            }
            // The object stays, after its method.
            ffi::lua_insert(state, -2);
        }
    }
    Ok(())
}

/// Push `top[key]` if the top value is a table or userdata and that is not nil; otherwise
/// pop the top value and return false.
///
/// # Safety
/// `state` is valid with two free slots.
unsafe fn index_top(state: *mut ffi::lua_State, key: &[u8]) -> bool {
    // SAFETY: as the caller promises.
    unsafe {
        if !matches!(
            ffi::lua_type(state, -1),
            ffi::LUA_TTABLE | ffi::LUA_TUSERDATA
        ) {
            ffi::lua_pop(state, 1);
            return false;
        }
        ffi::lua_pushlstring(state, key.as_ptr().cast(), key.len());
        ffi::lua_gettable(state, -2);
        if ffi::lua_type(state, -1) == ffi::LUA_TNIL {
            ffi::lua_pop(state, 2);
            return false;
        }
        true
    }
}

/// `reply(...)`: answer the running fiber's request with the values on the stack; true if
/// answered, a lone `false` if the general `internal.iproto.reply` must.
unsafe extern "C-unwind" fn reply(state: *mut ffi::lua_State) -> c_int {
    // SAFETY (whole body): `state` is the calling coroutine; values 1..top are its arguments.
    unsafe {
        let tx = tx(state);
        let fiber = fiber_id(tx);
        let kind = tx.iproto_requests.borrow().get(&fiber).map(|r| r.kind);
        let answered = match kind {
            Some(kind) if !tx.txns.borrow().contains_key(&fiber) => {
                SCRATCH.with_borrow_mut(|out| {
                    out.clear();
                    let count = encode_results(state, kind, out)?;
                    let request = tx.iproto_requests.borrow_mut().remove(&fiber)?;
                    set_euid(tx, None);
                    super::iproto::write_reply(tx, request.token, |reply, schema_id| {
                        let sync = request.sync;
                        xrow::write_encoded_data_reply(reply, sync, schema_id, out, count);
                    });
                    super::iproto::recycle_body(tx, request.body);
                    Some(())
                })
            }
            _ => None,
        };
        ffi::lua_pushboolean(state, c_int::from(answered.is_some()));
        1
    }
}

/// Encode the values 1..top as the DATA items of a reply to `kind`; returns their count,
/// or None where the raw encoder gives up.
///
/// # Safety
/// `state` is valid.
unsafe fn encode_results(state: *mut ffi::lua_State, kind: u32, out: &mut Vec<u8>) -> Option<u32> {
    let cfg = SerializerCfg::default();
    // SAFETY: as the caller promises; indexes are within 1..top.
    unsafe {
        let top = ffi::lua_gettop(state);
        if kind != request_type::CALL_16 {
            for idx in 1..=top {
                super::mp_fast::encode_at(state, idx, 0, &cfg, out).then_some(())?;
            }
            return u32::try_from(top).ok();
        }
        if top == 1 && table_of_tuples(state, 1) {
            // 1.6: a table whose first value is a table or a tuple is a list of tuples.
            let mut count = 0u32;
            ffi::lua_pushnil(state);
            while ffi::lua_next(state, 1) != 0 {
                let ok = encode_tuple(state, ffi::lua_gettop(state), &cfg, out);
                ffi::lua_pop(state, 1);
                if !ok {
                    ffi::lua_pop(state, 1);
                    return None;
                }
                count += 1;
            }
            return Some(count);
        }
        for idx in 1..=top {
            encode_tuple(state, idx, &cfg, out).then_some(())?;
        }
        u32::try_from(top).ok()
    }
}

/// Whether the table at `idx` has a table or a tuple as its first value (in `next` order).
///
/// # Safety
/// `state` is valid with two free slots.
unsafe fn table_of_tuples(state: *mut ffi::lua_State, idx: c_int) -> bool {
    // SAFETY: as the caller promises.
    unsafe {
        if ffi::lua_type(state, idx) != ffi::LUA_TTABLE {
            return false;
        }
        ffi::lua_pushnil(state);
        if ffi::lua_next(state, idx) == 0 {
            return false;
        }
        let first = ffi::lua_type(state, -1) == ffi::LUA_TTABLE
            || super::tuple::get_raw(state, -1).is_some();
        ffi::lua_pop(state, 2);
        first
    }
}

/// The value at `idx` as a 1.6 CALL tuple: a tuple's bytes, an array as it is, anything
/// else wrapped in a one-field array.
///
/// # Safety
/// `state` is valid and `idx` an absolute index.
unsafe fn encode_tuple(
    state: *mut ffi::lua_State,
    idx: c_int,
    cfg: &SerializerCfg,
    out: &mut Vec<u8>,
) -> bool {
    let start = out.len();
    // SAFETY: as the caller promises.
    if !unsafe { super::mp_fast::encode_at(state, idx, 0, cfg, out) } {
        return false;
    }
    if !mp::is_array(&out[start..]) {
        out.insert(start, 0x91);
    }
    true
}

/// Add `prepare` and `reply` to the `internal.iproto` table. They hold a pointer to `tx`,
/// which the Lua state's app data keeps alive as long as they can be called.
pub fn open(lua: &Lua, tx: &Rc<Tx>, module: &mlua::Table) -> mlua::Result<()> {
    let pointer = Rc::as_ptr(tx).cast_mut().cast::<c_void>();
    type Raw = unsafe extern "C-unwind" fn(*mut ffi::lua_State) -> c_int;
    let closure = |function: Raw| -> mlua::Result<Function> {
        lua.exec_raw_lua(|raw| {
            // SAFETY: two slots are checked; the closure consumes its upvalue and is popped
            // into a Function.
            unsafe {
                let state = raw.state();
                if ffi::lua_checkstack(state, 2) == 0 {
                    return Err(mlua::Error::runtime("out of Lua stack"));
                }
                ffi::lua_pushlightuserdata(state, pointer);
                ffi::lua_pushcclosure(state, function, 1);
                match raw.pop_value() {
                    mlua::Value::Function(function) => Ok(function),
                    _ => Err(mlua::Error::runtime("not a function")),
                }
            }
        })
    };
    module.set("prepare", closure(prepare)?)?;
    module.set("reply_fast", closure(reply)?)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::function_name;

    #[test]
    fn function_names_as_text() {
        assert_eq!(function_name(b"box.space.s:get"), "box.space.s:get");
        assert_eq!(function_name("fünf".as_bytes()), "fünf");
        assert_eq!(function_name(b"bad\xffname"), "bad\u{fffd}name");
        assert_eq!(function_name(b""), "");
    }
}
