//! Userdata of our own layout, made and read with the raw Lua C API.
//!
//! Owned by the TX thread. mlua's userdata carry a type registry lookup, a borrow flag and
//! a reference slot per value; a tuple pushed for every `get` cannot afford that. A class
//! here is a metatable kept in the registry under the address of a static (so it is per Lua
//! state, never confused between states), and an object is a userdata block holding an
//! `Option<T>`: `__gc` takes the value out and drops it, and a taken value reads as absent.

use std::ffi::{c_int, c_void};

use mlua::ffi;

/// A userdata class: `key`'s address names its metatable in the registry.
pub struct Class {
    pub key: &'static u8,
}

/// The payload of an object of a class.
type Slot<T> = Option<T>;

// LuaJIT aligns userdata payloads to 8 bytes.
const PAYLOAD_ALIGN: usize = 8;

/// Pushes the registry key of `class`.
///
/// # Safety
/// `state` is a valid Lua state with a free stack slot.
unsafe fn push_key(state: *mut ffi::lua_State, class: &Class) {
    let key = (class.key as *const u8).cast_mut().cast::<c_void>();
    // SAFETY: as the caller promises.
    unsafe { ffi::lua_pushlightuserdata(state, key) };
}

/// Pushes the metatable of `class` (nil before [`register`]).
///
/// # Safety
/// `state` is a valid Lua state with two free stack slots.
pub unsafe fn push_metatable(state: *mut ffi::lua_State, class: &Class) {
    // SAFETY: as the caller promises.
    unsafe {
        push_key(state, class);
        ffi::lua_rawget(state, ffi::LUA_REGISTRYINDEX);
    }
}

/// Creates the metatable of `class` with a `__gc` dropping `T`, lets `fill` add fields to
/// it (it is on top of the stack), and stores it in the registry.
///
/// # Safety
/// `state` is a valid Lua state with four free stack slots; `fill` leaves the stack as it
/// found it.
pub unsafe fn register<T>(
    state: *mut ffi::lua_State,
    class: &Class,
    fill: impl FnOnce(*mut ffi::lua_State),
) {
    const { assert!(std::mem::align_of::<Slot<T>>() <= PAYLOAD_ALIGN) };
    // SAFETY: as the caller promises; pushes and pops balance.
    unsafe {
        push_key(state, class);
        ffi::lua_createtable(state, 0, 8);
        ffi::lua_pushcfunction(state, gc::<T>);
        ffi::lua_setfield(state, -2, c"__gc".as_ptr());
        fill(state);
        ffi::lua_rawset(state, ffi::LUA_REGISTRYINDEX);
    }
}

/// Pushes a new object of `class` holding `value`.
///
/// # Safety
/// `state` is a valid Lua state with three free stack slots, and `class` was registered
/// for `T` in it. Allocation failure raises a Lua error (a longjmp over the caller).
pub unsafe fn push<T>(state: *mut ffi::lua_State, class: &Class, value: T) {
    // SAFETY: the block is fresh, sized and aligned for a `Slot<T>` (register checks the
    // alignment), and written before anything can read it.
    unsafe {
        let block = ffi::lua_newuserdata(state, std::mem::size_of::<Slot<T>>());
        block.cast::<Slot<T>>().write(Some(value));
        push_metatable(state, class);
        ffi::lua_setmetatable(state, -2);
    }
}

/// The value of the object of `class` at `idx`, if it is one and not yet collected.
///
/// # Safety
/// `state` is a valid Lua state with two free stack slots and `idx` a valid index;
/// `class` was registered for `T`. The reference is valid while the object is reachable
/// from the stack, and must not be held across a call back into Lua that could reach the
/// same object.
pub unsafe fn get<'a, T>(
    state: *mut ffi::lua_State,
    idx: c_int,
    class: &Class,
) -> Option<&'a mut T> {
    // SAFETY: as the caller promises; the metatable comparison proves the block is a
    // `Slot<T>` made by `push`.
    unsafe {
        let block = ffi::lua_touserdata(state, idx);
        if block.is_null() || ffi::lua_getmetatable(state, idx) == 0 {
            return None;
        }
        push_metatable(state, class);
        let same = ffi::lua_rawequal(state, -1, -2) != 0;
        ffi::lua_pop(state, 2);
        if !same {
            return None;
        }
        (*block.cast::<Slot<T>>()).as_mut()
    }
}

/// `__gc`: drop the value (once; a resurrected object reads as absent).
unsafe extern "C-unwind" fn gc<T>(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: `__gc` of this class's metatable only ever receives objects of the class.
    unsafe {
        let block = ffi::lua_touserdata(state, 1);
        if !block.is_null() {
            drop((*block.cast::<Slot<T>>()).take());
        }
    }
    0
}

/// A numeric argument that is a whole number in `u32`'s range.
///
/// # Safety
/// `state` is a valid Lua state and `idx` a valid index.
pub unsafe fn arg_u32(state: *mut ffi::lua_State, idx: c_int) -> Option<u32> {
    // SAFETY: as the caller promises.
    unsafe {
        if ffi::lua_type(state, idx) != ffi::LUA_TNUMBER {
            return None;
        }
        let n = ffi::lua_tonumber(state, idx);
        (n >= 0.0 && n <= f64::from(u32::MAX) && n.fract() == 0.0).then_some(n as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlua::{Lua, Value};
    use std::rc::Rc;

    static TEST_KEY: u8 = 0;
    static TEST_CLASS: Class = Class { key: &TEST_KEY };
    static OTHER_KEY: u8 = 0;
    static OTHER_CLASS: Class = Class { key: &OTHER_KEY };

    fn push_object(lua: &Lua, value: Rc<u32>) -> Value {
        lua.exec_raw_lua(|raw| unsafe {
            let state = raw.state();
            assert!(ffi::lua_checkstack(state, 3) != 0);
            push(state, &TEST_CLASS, value);
            raw.pop_value()
        })
    }

    fn read_object(lua: &Lua, value: &Value, class: &Class) -> Option<u32> {
        lua.exec_raw_lua(|raw| unsafe {
            let state = raw.state();
            assert!(ffi::lua_checkstack(state, 3) != 0);
            raw.push_value(value).unwrap();
            let found = get::<Rc<u32>>(state, -1, class).map(|rc| **rc);
            ffi::lua_pop(state, 1);
            found
        })
    }

    /// Objects read back only through their own class, and `__gc` drops each value once.
    #[test]
    fn objects_are_typed_and_dropped() {
        let lua = Lua::new();
        lua.exec_raw_lua(|raw| unsafe {
            let state = raw.state();
            assert!(ffi::lua_checkstack(state, 4) != 0);
            register::<Rc<u32>>(state, &TEST_CLASS, |_| {});
            register::<Rc<u32>>(state, &OTHER_CLASS, |_| {});
        });
        let shared = Rc::new(7);
        let object = push_object(&lua, shared.clone());
        assert_eq!(Rc::strong_count(&shared), 2);
        assert_eq!(read_object(&lua, &object, &TEST_CLASS), Some(7));
        assert_eq!(read_object(&lua, &object, &OTHER_CLASS), None);
        let plain: Value = lua.load("return newproxy(true)").eval().unwrap();
        assert_eq!(read_object(&lua, &plain, &TEST_CLASS), None);
        assert_eq!(read_object(&lua, &Value::Integer(1), &TEST_CLASS), None);
        for _ in 0..100 {
            push_object(&lua, shared.clone());
        }
        drop(object);
        lua.gc_collect().unwrap();
        lua.gc_collect().unwrap();
        assert_eq!(Rc::strong_count(&shared), 1);
    }

    #[test]
    fn whole_u32_arguments_only() {
        let lua = Lua::new();
        for (source, expected) in [
            ("return 5", Some(5)),
            ("return 0", Some(0)),
            ("return 4294967295", Some(u32::MAX)),
            ("return 4294967296", None),
            ("return -1", None),
            ("return 1.5", None),
            ("return '5'", None),
            ("return 0/0", None),
        ] {
            let value: Value = lua.load(source).eval().unwrap();
            let got = lua.exec_raw_lua(|raw| unsafe {
                raw.push_value(&value).unwrap();
                let got = arg_u32(raw.state(), -1);
                ffi::lua_pop(raw.state(), 1);
                got
            });
            assert_eq!(got, expected, "{source}");
        }
    }
}
