//! The coroutine ↔ fiber bridge: Lua fiber bodies and the internals of the `fiber` module.
//!
//! Owned by the TX thread. Every Lua fiber is a coroutine running the prelude's trampoline
//! (`builtin/fiber.lua`), which calls the user function under `pcall` and reports errors, so a
//! fiber body never raises into Rust. A blocking call is a Lua wrapper that registers its wait
//! here (`internal.fiber.wait`) and yields the coroutine; the loop resumes it when the wait
//! ends, passing `true` (woken) or `false` (timed out), or the values of a finished coio job.

use std::ffi::c_int;
use std::rc::Rc;
use std::time::{Duration, Instant};

use mlua::thread::ThreadStatus;
use mlua::{Function, Lua, MultiValue, RegistryKey, Table, Thread, Value, ffi};

use crate::coio::CoioOutput;
use crate::constants::{
    FIBER_POOL_MAX, FIBER_RESUMES_PER_TURN_MAX, FIBER_START_NESTING_MAX, FIBER_THREAD_HANDLES_MAX,
};
use crate::fiber::sched::SchedError;
use crate::fiber::{FiberId, FiberStatus, IdMap, WakeReason};
use crate::tx::Tx;

/// What a fiber is resumed with next.
pub enum Resume {
    /// Its first run, when it was queued rather than started at once: the function and its
    /// arguments, packed in a Lua table.
    Start(RegistryKey),
    /// Its first run, in the request entry ([`set_request_entry`]) with no arguments: an
    /// iproto request fiber, whose request waits in Rust.
    Entry,
    /// A coio job finished: its output becomes the values of the yield.
    Coio(CoioOutput),
}

/// How Rust holds a fiber's coroutine. mlua's handles occupy slots of one auxiliary Lua
/// stack, which holds only 8,000 of them in LuaJIT, far fewer than the fibers a server may
/// have: up to [`FIBER_THREAD_HANDLES_MAX`] coroutines are held as handles (the fast path),
/// the rest as registry references.
enum Coroutine {
    Handle(Thread),
    Registry(RegistryKey),
}

/// A Lua fiber's body.
struct Body {
    thread: Coroutine,
    resume: Option<Resume>,
}

/// Lua bodies of the live fibers.
#[derive(Default)]
pub struct LuaFibers {
    bodies: IdMap<Body>,
    /// The prelude's trampoline: every fiber coroutine runs it.
    trampoline: Option<Function>,
    /// Coroutines whose fiber ended, parked in the trampoline's loop for the next fiber.
    pool: Vec<Coroutine>,
    /// Coroutines held as handles, in bodies and in the pool.
    handles: usize,
    /// The function request fibers start in, in the registry (see [`resume_entry`]).
    request_entry: Option<RegistryKey>,
}

/// Set the function fibers made by [`start_entry`] run.
pub fn set_request_entry(lua: &Lua, tx: &Tx, entry: Function) -> mlua::Result<()> {
    tx.fibers.borrow_mut().request_entry = Some(lua.create_registry_value(entry)?);
    Ok(())
}

/// What the trampoline yields when its fiber's function has finished and the coroutine
/// can serve the next fiber (a pointer no Lua value can equal by accident).
const FIBER_DONE: mlua::LightUserData = mlua::LightUserData(0xD0E as *mut std::ffi::c_void);

impl LuaFibers {
    /// Arrange for `fiber` to receive a coio job's output when it resumes.
    pub fn set_coio_output(&mut self, fiber: FiberId, output: CoioOutput) {
        if let Some(body) = self.bodies.get_mut(&fiber) {
            body.resume = Some(Resume::Coio(output));
        }
    }
}

/// A coroutine for a new fiber: a pooled one, or a new one running the trampoline.
fn take_thread(lua: &Lua, tx: &Tx) -> mlua::Result<Coroutine> {
    let mut fibers = tx.fibers.borrow_mut();
    if let Some(coroutine) = fibers.pool.pop() {
        return Ok(coroutine);
    }
    let trampoline = fibers
        .trampoline
        .clone()
        .ok_or_else(|| mlua::Error::runtime("fiber trampoline is not installed"))?;
    let thread = lua.create_thread(trampoline)?;
    if fibers.handles < FIBER_THREAD_HANDLES_MAX {
        fibers.handles += 1;
        return Ok(Coroutine::Handle(thread));
    }
    Ok(Coroutine::Registry(lua.create_registry_value(thread)?))
}

/// Register a fiber with a coroutine, without starting it.
fn spawn(lua: &Lua, tx: &Tx, name: &str, resume: Option<Resume>) -> mlua::Result<FiberId> {
    let thread = take_thread(lua, tx)?;
    let id = tx.sched.borrow_mut().spawn(name).map_err(|err| match err {
        SchedError::TooManyFibers => mlua::Error::runtime("too many fibers"),
        SchedError::NoCurrentFiber => mlua::Error::runtime("no current fiber"),
    })?;
    tx.fibers
        .borrow_mut()
        .bodies
        .insert(id, Body { thread, resume });
    Ok(id)
}

/// `args` (a function and its arguments) packed as `{n = count, ...}`.
fn pack(lua: &Lua, args: MultiValue) -> mlua::Result<RegistryKey> {
    let table = lua.create_table_with_capacity(args.len(), 1)?;
    let count = args.len();
    for (n, value) in args.into_iter().enumerate() {
        table.raw_set(n + 1, value)?;
    }
    table.raw_set("n", count)?;
    lua.create_registry_value(table)
}

fn unpack(lua: &Lua, key: &RegistryKey) -> mlua::Result<MultiValue> {
    let table: Table = lua.registry_value(key)?;
    let count: usize = table.raw_get("n")?;
    (1..=count).map(|n| table.raw_get::<Value>(n)).collect()
}

/// Create a fiber running `function(args...)` and start it now, nested in the caller's
/// slice (as `fiber.create` does), unless starts are already nested too deep; then it is
/// queued for this loop turn.
pub fn spawn_now(lua: &Lua, tx: &Tx, name: &str, args: MultiValue) -> mlua::Result<FiberId> {
    if tx.sched.borrow().nesting() >= FIBER_START_NESTING_MAX {
        return spawn_queued(lua, tx, name, args);
    }
    let id = spawn(lua, tx, name, None)?;
    run_fiber_with(lua, tx, id, Some(args));
    Ok(id)
}

/// Create a fiber running `function(args...)`, queued to start in this loop turn.
pub fn spawn_queued(lua: &Lua, tx: &Tx, name: &str, args: MultiValue) -> mlua::Result<FiberId> {
    let packed = pack(lua, args)?;
    let id = spawn(lua, tx, name, Some(Resume::Start(packed)))?;
    tx.sched.borrow_mut().schedule(id);
    Ok(id)
}

/// Create a fiber running the request entry, let `setup` give it what it serves, and run
/// it now until it first yields or ends. Nothing is made in Lua for it: the cheap start of
/// a request fiber.
pub fn start_entry(
    lua: &Lua,
    tx: &Tx,
    name: &str,
    setup: impl FnOnce(FiberId),
) -> mlua::Result<FiberId> {
    let id = spawn(lua, tx, name, Some(Resume::Entry))?;
    setup(id);
    run_fiber_with(lua, tx, id, None);
    Ok(id)
}

/// Resume fibers from the ready queue, at most [`FIBER_RESUMES_PER_TURN_MAX`] of them.
/// Returns how many ran.
pub fn run_ready(lua: &Lua, tx: &Tx) -> usize {
    let mut ran = 0;
    while ran < FIBER_RESUMES_PER_TURN_MAX {
        let Some(id) = tx.sched.borrow_mut().pop_ready() else {
            break;
        };
        run_fiber_with(lua, tx, id, None);
        ran += 1;
    }
    ran
}

/// The values a fiber resumes with: its start arguments, a coio job's output, or whether
/// its wait was woken (true) or timed out (false).
fn resume_values(
    lua: &Lua,
    reason: WakeReason,
    start: Option<MultiValue>,
    resume: Option<Resume>,
) -> MultiValue {
    let values = match (start, resume) {
        (Some(args), _) => Ok(args),
        (None, Some(Resume::Start(packed))) => unpack(lua, &packed),
        // run_fiber_with starts these itself while an entry is installed.
        (None, Some(Resume::Entry)) => Err(mlua::Error::runtime("no request entry is installed")),
        (None, Some(Resume::Coio(output))) => output(lua),
        (None, None) => Ok(MultiValue::from_iter([Value::Boolean(
            reason == WakeReason::Woken,
        )])),
    };
    values.unwrap_or_else(|err| {
        let message = lua.create_string(err.to_string()).map(Value::String);
        MultiValue::from_iter([Value::Nil, message.unwrap_or(Value::Nil)])
    })
}

/// How one resume of a fiber's coroutine ended.
enum Resumed {
    /// Its function ended and the trampoline parked: the coroutine can serve the next fiber.
    Done,
    /// It yielded (to wait, or to let others run).
    Yielded,
    /// The coroutine is dead; with a message when that is an error of ours.
    Dead(Option<String>),
}

/// Resume one fiber until it yields or ends; `start` carries the arguments of a fiber
/// started at once.
fn run_fiber_with(lua: &Lua, tx: &Tx, id: FiberId, start: Option<MultiValue>) {
    let Some((thread, resume)) = take_body(lua, tx, id) else {
        return;
    };
    let started = tx.sched.borrow_mut().begin_run(id);
    let Some((name, reason)) = started else {
        tx.sched.borrow_mut().end_run(id, true);
        return;
    };
    crate::log::set_fiber(Some((id, name)));
    let entry = tx
        .fibers
        .borrow()
        .request_entry
        .as_ref()
        .map(RegistryKey::id);
    let resumed = match (&start, &resume, entry) {
        (None, Some(Resume::Entry), Some(entry)) => {
            // SAFETY: a coroutine of this state, not running (fibers run one at a time and
            // this one is not on the run stack), its stack emptied by its last resume.
            unsafe { resume_entry(thread.state(), entry) }
        }
        _ => resume_with(&thread, resume_values(lua, reason, start, resume)),
    };
    let reusable = matches!(resumed, Resumed::Done);
    let finished = !matches!(resumed, Resumed::Yielded);
    tx.sched.borrow_mut().end_run(id, finished);
    restore_log_context(tx);
    if finished {
        // A transaction a fiber leaves open dies with it, as in Tarantool.
        if tx.txns.borrow().contains_key(&id) {
            super::box_data::rollback_fiber(tx, id);
        }
        tx.journal.borrow_mut().forget(id);
        // An iproto request's fiber that raised past its handler still owes a reply.
        if tx.iproto_requests.borrow().contains_key(&id) {
            super::iproto::abandon_request(tx, id);
        }
        let mut fibers = tx.fibers.borrow_mut();
        if let Some(body) = fibers.bodies.remove(&id) {
            if reusable && fibers.pool.len() < FIBER_POOL_MAX {
                fibers.pool.push(body.thread);
            } else if matches!(body.thread, Coroutine::Handle(_)) {
                fibers.handles -= 1;
            }
        }
    }
    if let Resumed::Dead(Some(err)) = resumed {
        // The trampoline catches everything a fiber raises; an error here is ours.
        log::error!("fiber {id} failed: {err}");
    }
}

/// Resume `thread` with `values` through mlua.
fn resume_with(thread: &Thread, values: MultiValue) -> Resumed {
    match thread.resume::<Value>(values) {
        Ok(Value::LightUserData(done)) if done == FIBER_DONE => Resumed::Done,
        Ok(_) if thread.status() == ThreadStatus::Resumable => Resumed::Yielded,
        Ok(_) => Resumed::Dead(None),
        Err(err) => Resumed::Dead(Some(err.to_string())),
    }
}

/// Start a request fiber: resume its coroutine with the request entry (registry reference
/// `entry`) straight through the C API. mlua's resume converts its arguments and results
/// through its own stack, which cost as much as running a small CALL; this pushes one
/// function and pops what the coroutine yields. Leaves the coroutine's stack empty, as
/// mlua's resume does.
///
/// # Safety
/// `state` is a coroutine of this Lua state that is not running, with an empty stack (a
/// parked one) or just its body function (a new one).
unsafe fn resume_entry(state: *mut ffi::lua_State, entry: c_int) -> Resumed {
    // SAFETY: as the caller promises; one slot is checked before the push.
    unsafe {
        if ffi::lua_checkstack(state, 1) == 0 {
            return Resumed::Dead(Some(String::from("stack overflow")));
        }
        ffi::lua_rawgeti(state, ffi::LUA_REGISTRYINDEX, entry.into());
        let mut results = 0;
        let status = ffi::lua_resume(state, std::ptr::null_mut(), 1, &mut results);
        let resumed = match status {
            ffi::LUA_YIELD
                if results == 1
                    && ffi::lua_type(state, -1) == ffi::LUA_TLIGHTUSERDATA
                    && ffi::lua_touserdata(state, -1) == FIBER_DONE.0 =>
            {
                Resumed::Done
            }
            ffi::LUA_YIELD => Resumed::Yielded,
            ffi::LUA_OK => Resumed::Dead(None),
            _ => Resumed::Dead(Some(error_text(state))),
        };
        ffi::lua_settop(state, 0);
        resumed
    }
}

/// The error value on top of `state` as text.
///
/// # Safety
/// `state` is valid with a value on top.
unsafe fn error_text(state: *mut ffi::lua_State) -> String {
    // SAFETY: as the caller promises.
    unsafe {
        let mut len = 0usize;
        let text = ffi::lua_tolstring(state, -1, &mut len);
        if text.is_null() {
            return String::from("(an error object)");
        }
        String::from_utf8_lossy(std::slice::from_raw_parts(text.cast::<u8>(), len)).into_owned()
    }
}

fn take_body(lua: &Lua, tx: &Tx, id: FiberId) -> Option<(Thread, Option<Resume>)> {
    let mut fibers = tx.fibers.borrow_mut();
    let body = fibers.bodies.get_mut(&id)?;
    let thread = match &body.thread {
        Coroutine::Handle(thread) => thread.clone(),
        Coroutine::Registry(key) => lua.registry_value::<Thread>(key).ok()?,
    };
    Some((thread, body.resume.take()))
}

fn restore_log_context(tx: &Tx) {
    let sched = tx.sched.borrow();
    match sched.current().and_then(|id| sched.get(id)) {
        Some(meta) => crate::log::set_fiber(Some((meta.id, meta.name.clone()))),
        None => crate::log::set_fiber(None),
    }
}

/// Register a wait of the running fiber until woken or `timeout` seconds pass (None:
/// forever); the Lua side yields next (`sched.suspend`).
pub fn park(tx: &Tx, timeout: Option<f64>, cancellable: bool) -> mlua::Result<()> {
    tx.sched
        .borrow_mut()
        .suspend_current(deadline(timeout), cancellable)
        .map(|_| ())
        .map_err(|_| mlua::Error::runtime("not in a fiber"))
}

/// The id of the fiber running now, or an error for Lua.
pub fn current(tx: &Tx) -> mlua::Result<FiberId> {
    tx.sched
        .borrow()
        .current()
        .ok_or_else(|| mlua::Error::runtime("not in a fiber"))
}

/// A timeout argument: nil or absent means forever; negative counts as zero.
fn deadline(timeout: Option<f64>) -> Option<Instant> {
    let seconds = timeout?;
    let seconds = if seconds.is_finite() {
        seconds.max(0.0)
    } else {
        1e9
    };
    let wait = Duration::try_from_secs_f64(seconds).unwrap_or(Duration::from_secs(1_000_000_000));
    Some(Instant::now() + wait)
}

/// The `internal.fiber` table used by `builtin/fiber.lua`.
pub fn open(lua: &Lua, tx: &Rc<Tx>) -> mlua::Result<Table> {
    let module = lua.create_table()?;
    module.set("DONE", FIBER_DONE)?;
    let t = tx.clone();
    module.set(
        "set_trampoline",
        lua.create_function(move |_, function: Function| {
            t.fibers.borrow_mut().trampoline = Some(function);
            Ok(())
        })?,
    )?;
    let t = tx.clone();
    module.set(
        "create",
        lua.create_function(move |lua, args: MultiValue| spawn_now(lua, &t, "lua", args))?,
    )?;
    let t = tx.clone();
    module.set(
        "create_queued",
        lua.create_function(move |lua, args: MultiValue| spawn_queued(lua, &t, "lua", args))?,
    )?;
    let t = tx.clone();
    module.set(
        "self",
        lua.create_function(move |_, ()| Ok(t.sched.borrow().current()))?,
    )?;
    let t = tx.clone();
    module.set(
        "wait",
        lua.create_function(move |_, timeout: Option<f64>| {
            let at = deadline(timeout);
            t.sched
                .borrow_mut()
                .suspend_current(at, true)
                .map_err(|_| mlua::Error::runtime("not in a fiber"))?;
            Ok(())
        })?,
    )?;
    let t = tx.clone();
    module.set(
        "yield",
        lua.create_function(move |_, ()| {
            t.sched
                .borrow_mut()
                .yield_current()
                .map_err(|_| mlua::Error::runtime("not in a fiber"))?;
            Ok(())
        })?,
    )?;
    let t = tx.clone();
    module.set(
        "wakeup",
        lua.create_function(move |_, id: FiberId| {
            Ok(t.sched.borrow_mut().wakeup(id, WakeReason::Woken))
        })?,
    )?;
    let t = tx.clone();
    module.set(
        "cancel",
        lua.create_function(move |_, id: FiberId| Ok(t.sched.borrow_mut().cancel(id)))?,
    )?;
    let t = tx.clone();
    module.set(
        "is_cancelled",
        lua.create_function(move |_, ()| {
            let id = current(&t)?;
            Ok(t.sched.borrow().get(id).is_some_and(|meta| meta.cancelled))
        })?,
    )?;
    open_introspection(lua, tx, &module)?;
    Ok(module)
}

/// Status, names, `fiber.info()`, clocks.
fn open_introspection(lua: &Lua, tx: &Rc<Tx>, module: &Table) -> mlua::Result<()> {
    let t = tx.clone();
    module.set(
        "status",
        lua.create_function(move |_, id: FiberId| {
            let status = t.sched.borrow().get(id).map(|meta| meta.status);
            Ok(status.unwrap_or(FiberStatus::Dead).as_str())
        })?,
    )?;
    let t = tx.clone();
    module.set(
        "name",
        lua.create_function(move |_, (id, name): (FiberId, Option<String>)| {
            let mut sched = t.sched.borrow_mut();
            let current = sched.current();
            let Some(meta) = sched.get_mut(id) else {
                return Ok(None);
            };
            if let Some(name) = name {
                meta.name = std::rc::Rc::from(name.as_str());
                if current == Some(id) {
                    crate::log::set_fiber(Some((id, meta.name.clone())));
                }
            }
            Ok(Some(meta.name.to_string()))
        })?,
    )?;
    let t = tx.clone();
    module.set(
        "info",
        lua.create_function(move |lua, ()| fiber_info(lua, &t))?,
    )?;
    let t = tx.clone();
    module.set(
        "exists",
        lua.create_function(move |_, id: FiberId| Ok(t.sched.borrow().get(id).is_some()))?,
    )?;
    let t = tx.clone();
    module.set(
        "time",
        lua.create_function(move |_, ()| Ok(t.clock.get().realtime))?,
    )?;
    let t = tx.clone();
    module.set(
        "clock",
        lua.create_function(move |_, ()| {
            Ok(t.clock
                .get()
                .monotonic
                .duration_since(t.started)
                .as_secs_f64())
        })?,
    )?;
    let t = tx.clone();
    module.set(
        "count",
        lua.create_function(move |_, ()| Ok(t.sched.borrow().live_count()))?,
    )?;
    Ok(())
}

/// `fiber.info()`: `{[id] = {fid, name, csw, memory = {total, used}}}`.
fn fiber_info(lua: &Lua, tx: &Tx) -> mlua::Result<Table> {
    let info = lua.create_table()?;
    let sched = tx.sched.borrow();
    for meta in sched.iter() {
        let entry = lua.create_table()?;
        entry.set("fid", meta.id)?;
        entry.set("name", &*meta.name)?;
        entry.set("csw", meta.csw)?;
        let memory = lua.create_table()?;
        // A coroutine's memory belongs to the Lua heap; it has no separate stack to count.
        memory.set("total", 0)?;
        memory.set("used", 0)?;
        entry.set("memory", memory)?;
        info.set(meta.id, entry)?;
    }
    Ok(info)
}
