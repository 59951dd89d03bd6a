//! `internal.iproto`: the Lua half of the binary protocol server. Starts fibers for the
//! requests net/iproto.rs hands over (CALL, EVAL, changes that run triggers, AUTH with
//! on_auth triggers), runs the session triggers, and writes the replies those fibers make.
//!
//! Owned by the TX thread. The fibers run `builtin/iproto.lua`'s handlers in the client's
//! session; every handler ends with exactly one reply call, which gives the connection's
//! in-flight slot back. A reply for a connection that is gone is dropped.

use std::rc::Rc;

use mio::Token;
use mlua::{Function, Lua, MultiValue, Table, Value, Variadic};

use crate::r#box::schema;
use crate::r#box::session::SessionKind;
use crate::constants::{
    IPROTO_BODY_POOL_MAX, IPROTO_BODY_POOLED_SIZE_MAX, IPROTO_REQUESTS_PER_TURN_MAX,
};
use crate::error::{BoxError, ErrCode};
use crate::fiber::FiberId;
use crate::net::Accepted;
use crate::net::iproto::{self, ConnState, Limits, LuaRequest, Processed};
use crate::proto::iproto_constants::request_type;
use crate::proto::xrow;
use crate::replication::tx_replication::ReplicationRequest;
use crate::tx::{SessionTriggers, Tx};

/// Named registry slot of the prelude's handler table.
const HANDLERS_KEY: &str = "tarantula.iproto.handlers";

/// The per-connection limits from box.cfg.
pub fn limits(tx: &Tx) -> Limits {
    let cfg = tx.cfg.borrow();
    Limits {
        readahead: cfg.readahead(),
        in_flight_max: cfg.net_msg_max().max(1),
    }
}

/// A client was accepted: give it a session, then run on_connect triggers (in a fiber) or
/// start serving it.
pub fn on_accept(lua: &Lua, tx: &Tx, client: &Accepted) {
    let session = tx.sessions.borrow_mut().open(
        SessionKind::Binary,
        schema::GUEST,
        Some(client.peer.clone()),
    );
    if let Some(conn) = tx.net.borrow_mut().iproto_mut(client.token) {
        conn.session = session;
    }
    if tx.session_triggers.get().on_connect {
        let args = [Value::Integer(client.token.0 as i64)];
        if spawn_handler(lua, tx, "connect", session, &args).is_ok() {
            return;
        }
        close(lua, tx, client.token);
        return;
    }
    set_active(tx, client.token);
}

fn set_active(tx: &Tx, token: Token) {
    let mut net = tx.net.borrow_mut();
    if let Some(conn) = net.iproto_mut(token) {
        conn.state = ConnState::Active;
    }
    net.mark_pending(token);
}

/// Serve connection `token` after a readiness event or a reply: run what it sent, at most
/// [`IPROTO_REQUESTS_PER_TURN_MAX`] requests. The CALLs of a batch run at once, and the
/// connection is processed again, which sends their replies and takes what came meanwhile.
pub fn serve(lua: &Lua, tx: &Tx, token: Token) {
    let mut requests = Vec::new();
    let mut budget = IPROTO_REQUESTS_PER_TURN_MAX;
    loop {
        let processed = iproto::process(tx, token, limits(tx), &mut budget, &mut requests);
        let started = !requests.is_empty();
        for request in requests.drain(..) {
            start_request(lua, tx, request);
        }
        match processed {
            Processed::Close => return close(lua, tx, token),
            Processed::Replication(request) => return hand_over(tx, token, request),
            Processed::Idle | Processed::MoreWork if started && budget > 0 => {}
            Processed::Idle if !started => return,
            // The turn's budget is spent with requests left or replies to send.
            Processed::Idle | Processed::MoreWork => {
                tx.net.borrow_mut().mark_pending(token);
                return;
            }
        }
    }
}

/// A JOIN or SUBSCRIBE: replication decides whether a relay takes the connection.
fn hand_over(tx: &Tx, token: Token, request: ReplicationRequest) {
    let session = tx.net.borrow_mut().iproto_mut(token).map(|c| c.session);
    if let Some(session) = session {
        let uid = tx.sessions.borrow().uid(session);
        crate::replication::tx_replication::on_request(tx, token, uid, request);
    }
}

/// Serve every connection marked pending during this loop turn.
pub fn serve_pending(lua: &Lua, tx: &Tx) {
    let tokens = tx.net.borrow_mut().take_pending();
    for token in tokens {
        serve(lua, tx, token);
    }
}

/// Close connection `token`: its session ends (after on_disconnect triggers, if any).
pub fn close(lua: &Lua, tx: &Tx, token: Token) {
    let source = tx.net.borrow_mut().close(token);
    let Some(crate::net::Source::Iproto(client)) = source else {
        return;
    };
    if tx.session_triggers.get().on_disconnect
        && spawn_handler(lua, tx, "disconnect", client.session, &[]).is_ok()
    {
        // The handler closes the session when the triggers are done.
        return;
    }
    super::session::close_session(tx, client.session);
}

/// Start a fiber in `session` running handler `name` of the prelude with `args`.
fn spawn_handler(
    lua: &Lua,
    tx: &Tx,
    name: &str,
    session: u32,
    args: &[Value],
) -> mlua::Result<FiberId> {
    let handlers: Table = lua.named_registry_value(HANDLERS_KEY)?;
    let handler: Function = handlers.get(name)?;
    let mut values = MultiValue::new();
    values.push_back(Value::Function(handler));
    for arg in args {
        values.push_back(arg.clone());
    }
    let id = super::fiber::spawn_queued(lua, tx, "iproto", values)?;
    set_session(tx, id, session);
    Ok(id)
}

/// Start the fiber of a request; if that fails, answer the error at once. CALL and EVAL
/// run at once in the request entry, which reads the request from Rust (iproto_call.rs),
/// so their replies join the batch being answered; the others get their handler and
/// arguments now and start later in the turn.
fn start_request(lua: &Lua, tx: &Tx, request: LuaRequest) {
    let pending = PendingRequest {
        token: request.token,
        sync: request.sync,
        kind: request.kind,
        body: request.body,
    };
    let session = request.session;
    if matches!(
        request.kind,
        request_type::CALL_16 | request_type::CALL | request_type::EVAL
    ) {
        let mut slot = Some(pending);
        let started = super::fiber::start_entry(lua, tx, "iproto", |fiber| {
            set_session(tx, fiber, session);
            if let Some(pending) = slot.take() {
                tx.iproto_requests.borrow_mut().insert(fiber, pending);
            }
        });
        if let (Err(err), Some(pending)) = (started, slot) {
            reply_to(tx, &pending, Err(err.into()));
        }
        return;
    }
    let started = request_args(lua, request.kind, &pending.body).and_then(|(name, args)| {
        spawn_handler(lua, tx, name, session, &args).map_err(BoxError::from)
    });
    match started {
        Ok(fiber) => {
            tx.iproto_requests.borrow_mut().insert(fiber, pending);
        }
        Err(err) => reply_to(tx, &pending, Err(err)),
    }
}

/// Run `fiber` in the client's `session`.
fn set_session(tx: &Tx, fiber: FiberId, session: u32) {
    if let Some(meta) = tx.sched.borrow_mut().get_mut(fiber) {
        meta.session = session;
    }
}

/// What a request fiber answers to, kept under its fiber id until it replies.
pub struct PendingRequest {
    pub token: Token,
    pub sync: u64,
    pub kind: u32,
    /// The body of a change it runs (empty for the others).
    pub body: Vec<u8>,
}

/// The request of the running fiber, taken: it is answered once.
fn take_request(tx: &Tx) -> mlua::Result<PendingRequest> {
    let fiber = crate::process::fiber_id(tx);
    let request = tx.iproto_requests.borrow_mut().remove(&fiber);
    // A setuid function's user ends with its request.
    super::iproto_call::set_euid(tx, None);
    request.ok_or_else(|| mlua::Error::runtime("no iproto request in this fiber"))
}

/// A request fiber ended without answering (it raised past its handler): answer for it.
pub fn abandon_request(tx: &Tx, fiber: FiberId) {
    let pending = tx.iproto_requests.borrow_mut().remove(&fiber);
    if let Some(pending) = pending {
        let err = BoxError::with_message(ErrCode::PROC_LUA, "the request's fiber ended");
        reply_to(tx, &pending, Err(err));
    }
}

impl From<mlua::Error> for BoxError {
    fn from(err: mlua::Error) -> BoxError {
        BoxError::with_message(ErrCode::PROC_LUA, super::serializer::error_message(&err))
    }
}

/// The handler and its arguments for an AUTH or a change run in a fiber (its token and sync
/// stay in Rust, in [`Tx::iproto_requests`] under the fiber's id). CALL and EVAL start in
/// the request entry instead.
fn request_args(lua: &Lua, kind: u32, body: &[u8]) -> Result<(&'static str, Vec<Value>), BoxError> {
    let mut args = vec![Value::Integer(i64::from(kind))];
    let name = match kind {
        request_type::AUTH => {
            args.push(Value::String(lua.create_string(body)?));
            "auth"
        }
        _ => "dml",
    };
    Ok((name, args))
}

/// The arguments of the running fiber's CALL or EVAL, decoded as a table (for arguments
/// `prepare` does not push by itself).
fn call_args(lua: &Lua, tx: &Tx) -> Result<Value, BoxError> {
    let fiber = crate::process::fiber_id(tx);
    // A copy: decoding runs Lua, which must not find the requests borrowed.
    let body = tx
        .iproto_requests
        .borrow()
        .get(&fiber)
        .map(|request| request.body.clone())
        .ok_or_else(|| {
            BoxError::with_message(ErrCode::PROC_LUA, "no iproto request in this fiber")
        })?;
    let decoded = xrow::decode_body(&body)?;
    let tuple = xrow::required(decoded.tuple, "tuple")?;
    Ok(super::msgpack::decode_value(lua, tuple)?.0)
}

/// Answer `request` with data items or an error.
fn reply_to(tx: &Tx, request: &PendingRequest, outcome: Result<Vec<Vec<u8>>, BoxError>) {
    let sync = request.sync;
    write_reply(tx, request.token, |out, schema_id| match &outcome {
        Ok(items) => xrow::write_data_reply(out, sync, schema_id, items.iter().map(Vec::as_slice)),
        Err(err) => xrow::write_error_reply(out, sync, schema_id, err),
    });
}

/// Append a reply built by `build(out, schema_id)` to connection `token`, give its
/// in-flight slot back and have the loop flush it; dropped if the connection is gone.
pub fn write_reply(tx: &Tx, token: Token, build: impl FnOnce(&mut Vec<u8>, u32)) {
    let schema_id = tx.db.borrow().as_ref().map_or(0, |db| db.schema_version);
    let mut net = tx.net.borrow_mut();
    let Some(client) = net.iproto_mut(token) else {
        return;
    };
    client.in_flight = client.in_flight.saturating_sub(1);
    if !client.conn.failed {
        build(client.conn.buffers().1, schema_id);
    }
    net.mark_pending(token);
}

/// Keep an answered request's body for the next request to copy its own into (see
/// [`IPROTO_BODY_POOL_MAX`]).
pub fn recycle_body(tx: &Tx, mut body: Vec<u8>) {
    if body.capacity() > IPROTO_BODY_POOLED_SIZE_MAX {
        return;
    }
    let mut pool = tx.request_bodies.borrow_mut();
    if pool.len() < IPROTO_BODY_POOL_MAX {
        body.clear();
        pool.push(body);
    }
}

/// Answer at once a request that took no in-flight slot (a refused JOIN or SUBSCRIBE).
pub fn reply_now(tx: &Tx, token: Token, build: impl FnOnce(&mut Vec<u8>, u32)) {
    let schema_id = tx.db.borrow().as_ref().map_or(0, |db| db.schema_version);
    let mut net = tx.net.borrow_mut();
    let Some(client) = net.iproto_mut(token) else {
        return;
    };
    if !client.conn.failed {
        build(client.conn.buffers().1, schema_id);
    }
    net.mark_pending(token);
}

/// Take connection `token` out of the loop for a relay thread, as a blocking socket with
/// its queued replies written; its session ends here. None for a unix socket (relays
/// serve TCP) or a connection that is gone.
pub fn detach(tx: &Tx, token: Token) -> Option<(std::net::TcpStream, String)> {
    use std::io::Write as _;
    let source = tx.net.borrow_mut().close(token)?;
    let crate::net::Source::Iproto(client) = source else {
        return None;
    };
    super::session::close_session(tx, client.session);
    let peer = client.peer.clone();
    let (stream, pending, unread) = client.conn.into_parts();
    if unread > 0 {
        log::warn!("{peer}: {unread} bytes sent after JOIN/SUBSCRIBE were dropped");
    }
    let crate::net::connection::Stream::Tcp(stream) = stream else {
        log::error!("{peer}: replication over a unix socket is not supported");
        return None;
    };
    let mut stream = std::net::TcpStream::from(stream);
    let handed = stream
        .set_nonblocking(false)
        .and_then(|()| stream.write_all(&pending));
    match handed {
        Ok(()) => Some((stream, peer)),
        Err(err) => {
            log::error!("{peer}: {err}");
            None
        }
    }
}

/// The error a Lua value raised: a box.error keeps its code, anything else is
/// ER_PROC_LUA with its text.
fn error_of(value: &Value) -> BoxError {
    if let Value::Table(table) = value
        && let Ok(code) = table.get::<u32>("code")
    {
        let message: String = table.get("message").unwrap_or_default();
        return BoxError::with_message(ErrCode(code), message);
    }
    let message = match value {
        Value::String(text) => text.to_string_lossy(),
        Value::Error(err) => super::serializer::error_message(err),
        other => other.to_string().unwrap_or_default(),
    };
    BoxError::with_message(ErrCode::PROC_LUA, message)
}

/// The DATA of a CALL (6): 1.6's conversion of return values into tuples (PROTOCOL.md
/// §2.5). Returns the items, each encoded.
fn call16_items(lua: &Lua, values: &[Value]) -> mlua::Result<Vec<Vec<u8>>> {
    if let [Value::Table(table)] = values {
        let first = table.clone().pairs::<Value, Value>().next();
        if let Some(first) = first {
            let (_, first) = first?;
            if matches!(first, Value::Table(_)) || super::tuple::from_value(lua, &first).is_some() {
                let mut items = Vec::new();
                for pair in table.pairs::<Value, Value>() {
                    let (_, value) = pair?;
                    items.push(as_tuple(lua, &value)?);
                }
                return Ok(items);
            }
        }
    }
    values.iter().map(|value| as_tuple(lua, value)).collect()
}

/// A value as a tuple: a tuple's bytes, an array as it is, anything else wrapped in a
/// one-field array.
fn as_tuple(lua: &Lua, value: &Value) -> mlua::Result<Vec<u8>> {
    let encoded = super::box_data::encode(lua, value)?;
    if crate::r#box::mp::is_array(&encoded) {
        return Ok(encoded);
    }
    let mut wrapped = Vec::with_capacity(encoded.len() + 1);
    wrapped.push(0x91);
    wrapped.extend_from_slice(&encoded);
    Ok(wrapped)
}

/// The DATA items of a request's return values.
fn data_items(lua: &Lua, kind: u32, values: &[Value]) -> mlua::Result<Vec<Vec<u8>>> {
    if kind == request_type::CALL_16 {
        return call16_items(lua, values);
    }
    values
        .iter()
        .map(|value| super::box_data::encode(lua, value))
        .collect()
}

/// Run the change a fiber was handed (its space has triggers, or is a system space) and
/// answer it.
fn run_dml(lua: &Lua, tx: &Tx, request: &PendingRequest) {
    let outcome = (|| -> Result<Option<crate::r#box::tuple::Tuple>, BoxError> {
        let body = xrow::decode_body(&request.body)?;
        let data = xrow::data_request(request.kind, &body, tx.current_uid())?;
        tx.journal.borrow_mut().unmark();
        let tuple = super::box_data::change_in_fiber(lua, tx, &data)?;
        Ok(tuple.filter(|_| request.kind != request_type::UPSERT))
    })();
    if let Ok(tuple) = &outcome {
        // With a WAL thread, the reply goes out when the change is written.
        let waiter = crate::wal::journal::Waiter::Iproto {
            token: request.token,
            sync: request.sync,
            tuple: tuple.clone(),
        };
        let mut journal = tx.journal.borrow_mut();
        if journal.is_async() && journal.claim(waiter) {
            return;
        }
    }
    let outcome = outcome.map(|tuple| tuple.map(|t| t.data().to_vec()).into_iter().collect());
    reply_to(tx, request, outcome);
}

/// The `internal.iproto` table.
pub fn open(lua: &Lua, tx: &Rc<Tx>) -> mlua::Result<Table> {
    let module = lua.create_table()?;
    let t = tx.clone();
    module.set(
        "set_handlers",
        lua.create_function(move |lua, handlers: Table| {
            super::fiber::set_request_entry(lua, &t, handlers.get("request")?)?;
            lua.set_named_registry_value(HANDLERS_KEY, handlers)
        })?,
    )?;
    let t = tx.clone();
    module.set(
        "call_args",
        lua.create_function(move |lua, ()| match call_args(lua, &t) {
            Ok(args) => Ok((args, Value::Nil)),
            Err(err) => Ok((Value::Nil, super::util::error_value(lua, &err)?)),
        })?,
    )?;
    let t = tx.clone();
    module.set(
        "set_session_triggers",
        lua.create_function(move |_, (connect, disconnect, auth): (bool, bool, bool)| {
            t.session_triggers.set(SessionTriggers {
                on_connect: connect,
                on_disconnect: disconnect,
                on_auth: auth,
            });
            Ok(())
        })?,
    )?;
    let t = tx.clone();
    module.set(
        "reply",
        lua.create_function(move |lua, values: Variadic<Value>| {
            let request = take_request(&t)?;
            let outcome = data_items(lua, request.kind, &values).map_err(BoxError::from);
            reply_to(&t, &request, outcome);
            Ok(())
        })?,
    )?;
    let t = tx.clone();
    module.set(
        "reply_error",
        lua.create_function(move |_, err: Value| {
            let request = take_request(&t)?;
            reply_to(&t, &request, Err(error_of(&err)));
            Ok(())
        })?,
    )?;
    let t = tx.clone();
    module.set(
        "reply_ok",
        lua.create_function(move |_, ()| {
            let request = take_request(&t)?;
            write_reply(&t, request.token, |out, schema_id| {
                xrow::write_ok_reply(out, request.sync, schema_id);
            });
            Ok(())
        })?,
    )?;
    let t = tx.clone();
    module.set(
        "dml",
        lua.create_function(move |lua, ()| {
            let request = take_request(&t)?;
            run_dml(lua, &t, &request);
            Ok(())
        })?,
    )?;
    super::iproto_call::open(lua, tx, &module)?;
    open_connection(lua, tx, &module)?;
    Ok(module)
}

/// The connection's side of session triggers, for the handlers.
fn open_connection(lua: &Lua, tx: &Rc<Tx>, module: &Table) -> mlua::Result<()> {
    let t = tx.clone();
    module.set(
        "connected",
        lua.create_function(move |lua, (token, err): (usize, Value)| {
            let token = Token(token);
            if err.is_nil() {
                set_active(&t, token);
                return Ok(());
            }
            // A failed on_connect: the error with sync 0, then the connection closes.
            let err = error_of(&err);
            let schema_id = t.db.borrow().as_ref().map_or(0, |db| db.schema_version);
            if let Some(client) = t.net.borrow_mut().iproto_mut(token) {
                let mut reply = Vec::new();
                xrow::write_error_reply(&mut reply, 0, schema_id, &err);
                client.conn.append(&reply);
                client.conn.flush();
            }
            close(lua, &t, token);
            Ok(())
        })?,
    )?;
    let t = tx.clone();
    module.set(
        "disconnected",
        lua.create_function(move |_, ()| {
            let session = t.sched.borrow().current_session();
            super::session::close_session(&t, session);
            Ok(())
        })?,
    )?;
    Ok(())
}
