//! The Lua state of the TX thread: LuaJIT with the built-in modules and the coroutine ↔ fiber
//! bridge. Owned by the TX thread; nothing here is `Send`.

pub mod json;
pub mod msgpack;
pub mod serializer;
pub mod yaml;
