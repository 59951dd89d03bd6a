//! The Lua state of the TX thread: LuaJIT with the built-in modules and the coroutine ↔ fiber
//! bridge. Owned by the TX thread; nothing here is `Send`.
//!
//! Rust registers `internal.*` tables (small functions that never raise for expected
//! failures: they return `nil, err` and let Lua raise) and the data modules (yaml, json,
//! msgpack, digest, uuid, clock, errno); the embedded prelude (`prelude/*.lua`, loaded in
//! order) builds the public modules on top: fiber, log, console, fio, box.

pub mod box_api;
pub mod box_data;
pub mod box_fast;
pub mod console;
pub mod fiber;
pub mod fio;
pub mod iproto;
pub mod iproto_call;
pub mod json;
pub mod misc;
pub mod mp_fast;
pub mod msgpack;
pub mod netbox;
pub mod raw;
pub mod serializer;
pub mod session;
pub mod snapshot;
pub mod tuple;
pub mod util;
pub mod yaml;

use std::rc::Rc;

use mlua::{Lua, Table};

use crate::tx::Tx;

/// The prelude, in load order: each file may use what the earlier ones set up.
const PRELUDE: &[(&str, &str)] = &[
    ("init.lua", include_str!("prelude/init.lua")),
    ("errors.lua", include_str!("prelude/errors.lua")),
    ("fiber.lua", include_str!("prelude/fiber.lua")),
    ("log.lua", include_str!("prelude/log.lua")),
    ("misc.lua", include_str!("prelude/misc.lua")),
    ("fio.lua", include_str!("prelude/fio.lua")),
    ("console.lua", include_str!("prelude/console.lua")),
    ("box.lua", include_str!("prelude/box.lua")),
    ("box_schema.lua", include_str!("prelude/box_schema.lua")),
    ("snapshot.lua", include_str!("prelude/snapshot.lua")),
    ("iproto.lua", include_str!("prelude/iproto.lua")),
    ("net_box.lua", include_str!("prelude/net_box.lua")),
    ("main.lua", include_str!("prelude/main.lua")),
];

/// A LuaJIT state with its own allocator and every standard library (ffi and jit
/// included: Tarantool gives scripts both, and the serializers rely on the FFI for 64-bit
/// integers and `box.NULL`).
///
/// mlua would install its accounting allocator, which sends every Lua object through the
/// global allocator: a third of the time of a Lua `index:get` loop went to malloc and free.
/// LuaJIT's built-in allocator is much faster for its small objects, so the state is made
/// here and handed to mlua. It lives as long as the process (mlua does not own it, and
/// the TX thread's state is never closed before exit).
fn new_luajit() -> Lua {
    // SAFETY: luaL_newstate either fails (null, checked) or returns a fresh state that
    // nothing else references; luaL_openlibs runs on it before mlua sees it, and the
    // `Lua` handle is cloned out of mlua's registry cache, which keeps it valid.
    unsafe {
        let state = mlua::ffi::luaL_newstate();
        assert!(
            !state.is_null(),
            "cannot create the Lua state: out of memory"
        );
        mlua::ffi::luaL_openlibs(state);
        Lua::get_or_init_from_ptr(state).clone()
    }
}

/// Create the TX Lua state with every built-in module loaded.
pub fn new_state(tx: &Rc<Tx>) -> mlua::Result<Lua> {
    let lua = new_luajit();
    let loaded: Table = lua.globals().get::<Table>("package")?.get("loaded")?;
    loaded.set("internal.fiber", fiber::open(&lua, tx)?)?;
    loaded.set("internal.console", console::open(&lua, tx)?)?;
    loaded.set("internal.util", util::open(&lua, tx)?)?;
    loaded.set("internal.box", box_api::open(&lua, tx)?)?;
    loaded.set("internal.fio", fio::open_module(&lua, tx)?)?;
    loaded.set("internal.data", box_data::open(&lua, tx)?)?;
    loaded.set("internal.session", session::open(&lua, tx)?)?;
    loaded.set("internal.snapshot", snapshot::open(&lua, tx)?)?;
    loaded.set("internal.iproto", iproto::open(&lua, tx)?)?;
    loaded.set("internal.netbox", netbox::open(&lua, tx)?)?;
    loaded.set("yaml", yaml::open(&lua)?)?;
    loaded.set("json", json::open(&lua)?)?;
    loaded.set("msgpack", msgpack::open(&lua)?)?;
    misc::open_all(&lua, &loaded)?;
    for (name, source) in PRELUDE {
        lua.load(*source)
            .set_name(format!("@builtin/{name}"))
            .exec()?;
    }
    Ok(lua)
}
