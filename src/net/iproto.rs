//! The iproto server side of one client: greeting, framing, and the requests TX runs at
//! once (PING, AUTH, SELECT and changes to plain spaces); CALL, EVAL and the rest go to Lua
//! fibers (lua/iproto.rs) and come back as replies.
//!
//! Owned by the TX thread. Each connection moves through:
//!
//! ```text
//!   accept ─▶ Connecting (on_connect triggers run in a fiber) ─▶ Active ─▶ Closed
//!               └─ no triggers: Active at once        a trigger error: error reply, Closed
//! ```
//!
//! While Active, `process` takes whole packets off the input (SELECTs in a row together,
//! see `select_run`, and INSERTs and REPLACEs, see `write_run`), at most
//! `IPROTO_REQUESTS_PER_TURN_MAX` per loop turn, and stops early when the client is not
//! reading (more than [`IPROTO_OUTPUT_SIZE_MAX`] bytes of replies queued) or has too many
//! requests running in fibers (`net_msg_max`). Input is
//! read only while less than the read-ahead limit is unprocessed, so a client that does not
//! read its replies is throttled down to holding a bounded amount of server memory, and the
//! others are served meanwhile.

use mio::Token;

use crate::r#box::db::{Request, RequestKind};
use crate::r#box::schema;
use crate::r#box::tuple::Tuple;
#[cfg(doc)]
use crate::constants::IPROTO_REQUESTS_PER_TURN_MAX;
use crate::constants::{
    IPROTO_OUTPUT_SIZE_MAX, IPROTO_PACKET_SIZE_MAX, IPROTO_REPLY_BATCH, IPROTO_REPLY_BATCH_IDLE,
    IPROTO_SELECT_BATCH, IPROTO_WAL_BATCH, IPROTO_WRITE_BATCH,
};
use crate::error::{BoxError, ErrCode};
use crate::process::{self, with_db};
use crate::proto::iproto_constants::request_type;
use crate::proto::xrow::{self, Body, Frame, Header};
use crate::tx::Tx;
use crate::wal::journal::Waiter;

use super::connection::{Connection, IoOutcome};

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnState {
    /// The greeting is out; on_connect triggers are running, requests wait.
    Connecting,
    /// Serving requests.
    Active,
}

/// One iproto client.
pub struct IprotoConn {
    pub conn: Connection,
    pub peer: String,
    /// The session requests run in (its user changes with AUTH).
    pub session: u32,
    /// This connection's greeting salt (chap-sha1 uses its first 20 bytes).
    pub salt: [u8; 32],
    pub state: ConnState,
    /// Requests handed to fibers whose replies are still owed.
    pub in_flight: usize,
    /// Queued for another look at the end of the loop turn.
    pub pending: bool,
    /// The peer sent VOTE: a replica of Tarantool 1.10 or later, which cannot load the 1.6
    /// system spaces a JOIN here sends.
    pub voted: bool,
}

/// A request that needs Lua, for lua/iproto.rs to run in a fiber of the session.
#[derive(Debug)]
pub struct LuaRequest {
    pub token: Token,
    pub session: u32,
    pub sync: u64,
    pub kind: u32,
    /// The packet body, copied out of the input buffer.
    pub body: Vec<u8>,
}

/// What `process` leaves behind.
#[derive(Debug, PartialEq, Eq)]
pub enum Processed {
    /// Nothing more to do until the socket or a fiber says so.
    Idle,
    /// The per-turn budget ran out with requests left: look again next turn.
    MoreWork,
    /// The connection must be closed (broken framing, or the peer is gone).
    Close,
    /// A JOIN or SUBSCRIBE: the caller decides whether a relay takes the connection.
    Replication(crate::replication::tx_replication::ReplicationRequest),
}

/// The per-turn input limits of a connection.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Unprocessed input bytes above which the socket is not read (`readahead`).
    pub readahead: usize,
    /// Requests in fibers above which no more are taken (`net_msg_max`).
    pub in_flight_max: usize,
}

impl IprotoConn {
    pub fn new(conn: Connection, peer: String, session: u32, salt: [u8; 32]) -> IprotoConn {
        IprotoConn {
            conn,
            peer,
            session,
            salt,
            state: ConnState::Connecting,
            in_flight: 0,
            pending: false,
            voted: false,
        }
    }

    /// The client cannot be given more work now.
    fn blocked(&self, limits: Limits) -> bool {
        self.state != ConnState::Active
            || self.conn.output_len() > IPROTO_OUTPUT_SIZE_MAX
            || self.in_flight >= limits.in_flight_max
    }

    /// Handle readiness: write what is queued, read what fits.
    pub fn on_ready(&mut self, readable: bool, writable: bool, limits: Limits) {
        if writable && !self.conn.failed {
            self.conn.flush();
        }
        if readable && !self.conn.read_pending {
            self.read(limits, None);
        }
    }

    /// Read up to the read-ahead limit, or up to the end of a packet `need` bytes long.
    fn read(&mut self, limits: Limits, need: Option<usize>) {
        let limit = need.unwrap_or(0).max(limits.readahead);
        self.conn.fill(limit);
    }

    /// The peer is gone (or broke the connection) and nothing it sent is left to run: after
    /// EOF, a partial packet will never be completed, so it does not keep the connection.
    fn finished(&self) -> bool {
        self.conn.failed
            || (self.conn.eof
                && !matches!(
                    xrow::next_frame(self.conn.input(), IPROTO_PACKET_SIZE_MAX),
                    Frame::Complete { .. }
                ))
    }
}

/// Run the requests waiting on connection `token`, at most `budget` of them (what is left
/// of the connection's [`IPROTO_REQUESTS_PER_TURN_MAX`] this turn, counted down); requests
/// that need Lua are appended to `lua_requests` for the caller to start (no Lua runs here).
pub fn process(
    tx: &Tx,
    token: Token,
    limits: Limits,
    budget: &mut usize,
    lua_requests: &mut Vec<LuaRequest>,
) -> Processed {
    let mut net = tx.net.borrow_mut();
    // The only client with work: its replies go out in parts, so that it reads them and
    // sends more while the rest of its batch runs (with others waiting, the server has
    // work enough, and one send per batch costs less).
    let sole = net.sole_client;
    let reply_batch = match net.idle {
        true => IPROTO_REPLY_BATCH_IDLE,
        false => IPROTO_REPLY_BATCH,
    };
    let Some(client) = net.iproto_mut(token) else {
        return Processed::Idle;
    };
    let mut outcome = Processed::Idle;
    // Fixed for the turn: only the inbox (not this loop) ends a bootstrap.
    let loading = tx.replication.borrow().is_bootstrapping();
    let mut handled = 0;
    // `handled` when the journal and the replies were last flushed (the sole client's).
    let (mut journal_flushed, mut replies_flushed) = (0, 0);
    while *budget > 0 {
        if client.blocked(limits) || (sole && lua_requests.len() >= IPROTO_REPLY_BATCH) {
            break;
        }
        if sole && handled - journal_flushed >= IPROTO_WAL_BATCH {
            // Changes waiting for the WAL go there now: it writes them meanwhile.
            tx.journal.borrow_mut().flush();
            journal_flushed = handled;
        }
        if sole && handled - replies_flushed >= reply_batch {
            if matches!(client.conn.flush(), IoOutcome::Failed) {
                return Processed::Close;
            }
            replies_flushed = handled;
        }
        let mut taken = 1;
        match xrow::next_frame(client.conn.input(), IPROTO_PACKET_SIZE_MAX) {
            Frame::Incomplete { need } => {
                if client.conn.read_pending || need.is_some_and(|n| n > limits.readahead) {
                    let before = client.conn.input().len();
                    client.read(limits, need);
                    if client.conn.input().len() > before {
                        continue;
                    }
                }
                break;
            }
            Frame::Broken(why) => {
                log::error!("{}: {why}", client.peer);
                return Processed::Close;
            }
            Frame::Complete { start, end } => {
                let session = client.session;
                let salt = client.salt;
                let (input, output) = client.conn.buffers();
                let packet = &input[start..end];
                let context = Context {
                    tx,
                    token,
                    session,
                    salt: &salt,
                    loading,
                    deferred: std::cell::Cell::new(0),
                    replication: std::cell::Cell::new(None),
                    voted: std::cell::Cell::new(client.voted),
                };
                let mut consumed = end;
                let head = xrow::decode_header(packet);
                let kind = head.as_ref().map_or(0, |(header, _)| header.kind);
                let room = limits.in_flight_max.saturating_sub(client.in_flight);
                let run = match kind {
                    request_type::SELECT => select_run(&context, input, *budget, output),
                    // A sole client's writes go one at a time, between its replies and WAL
                    // batches in parts: in runs, replace at 1 x 64 with wal_mode 'write'
                    // was 12% slower (and 6-12% faster with 'none').
                    request_type::INSERT | request_type::REPLACE if !sole => {
                        write_run(&context, input, *budget, room, output)
                    }
                    _ => None,
                };
                if let Some((count, length)) = run {
                    (taken, consumed) = (count, length);
                } else if let Some(request) = handle_packet(&context, head, output) {
                    client.in_flight += 1;
                    lua_requests.push(request);
                }
                client.voted = context.voted.get();
                if let Some(request) = context.replication.take() {
                    client.conn.consume(end);
                    return Processed::Replication(request);
                }
                client.in_flight += context.deferred.get();
                client.conn.consume(consumed);
            }
        }
        outcome = Processed::MoreWork;
        handled += taken;
        *budget -= taken;
    }
    if client.conn.output_len() > 0 && matches!(client.conn.flush(), IoOutcome::Failed) {
        return Processed::Close;
    }
    if client.finished() && client.in_flight == 0 {
        return Processed::Close;
    }
    let more = matches!(
        xrow::next_frame(client.conn.input(), IPROTO_PACKET_SIZE_MAX),
        Frame::Complete { .. }
    );
    match outcome {
        Processed::MoreWork if more && !client.blocked(limits) => Processed::MoreWork,
        _ => Processed::Idle,
    }
}

/// Runs the SELECTs at the front of `input` together (at most `max`): their tree searches
/// then overlap their cache misses (`Db::select_many`), which is most of a select's time
/// in a big space. Returns how many ran and the bytes they took; `None` leaves the first
/// packet to [`handle_packet`]. The run takes the packets `handle_packet` would run as a
/// select (a SELECT with no stale schema id, a well-formed body) and stops before any
/// other, so that one is answered there, errors and all.
fn select_run(
    context: &Context<'_>,
    input: &[u8],
    max: usize,
    out: &mut Vec<u8>,
) -> Option<(usize, usize)> {
    let tx = context.tx;
    let schema_id = schema_version(tx);
    let is_select = |kind| kind == request_type::SELECT;
    let Run {
        requests,
        syncs,
        ends,
    } = decode_run::<IPROTO_SELECT_BATCH>(context, input, max, is_select, |_| true);
    if requests.is_empty() {
        return None;
    }
    // The run stops once the replies pass the output limit, as a request at a time would
    // (the rest stay in the input until the client reads).
    let reply = |i: usize, found: Result<&[Tuple], BoxError>| {
        match found {
            Ok(tuples) => {
                xrow::write_data_reply(out, syncs[i], schema_id, tuples.iter().map(|t| t.data()))
            }
            Err(err) => xrow::write_error_reply(out, syncs[i], schema_id, &err),
        }
        out.len() <= IPROTO_OUTPUT_SIZE_MAX
    };
    let ran = match with_db(tx, |db| Ok(db.select_many(&requests, reply))) {
        Ok(ran) => ran,
        Err(err) => {
            for sync in &syncs[..requests.len()] {
                xrow::write_error_reply(out, *sync, schema_id, &err);
            }
            requests.len()
        }
    };
    Some((ran, ends[ran - 1]))
}

/// The requests of a run, decoded, with their syncs and where each packet ends in the
/// input.
struct Run<'a, const N: usize> {
    requests: Vec<Request<'a>>,
    syncs: [u64; N],
    ends: [usize; N],
}

/// The packets at the front of `input` that a run takes (at most `max` and `N`), decoded:
/// each of a kind `takes`, with no stale schema id and a well-formed body, and a request
/// that `keeps`. The first packet that is not stops the run, left to [`handle_packet`]
/// (which answers it, errors and all), as a loading server leaves them all.
fn decode_run<'a, const N: usize>(
    context: &Context<'_>,
    input: &'a [u8],
    max: usize,
    takes: impl Fn(u32) -> bool,
    keeps: impl Fn(&Request<'a>) -> bool,
) -> Run<'a, N> {
    let max = max.min(N);
    let mut run = Run {
        requests: Vec::with_capacity(max),
        syncs: [0; N],
        ends: [0; N],
    };
    if context.loading {
        return run;
    }
    let schema_id = schema_version(context.tx);
    let uid = session_uid(context.tx, context.session);
    let mut length = 0;
    while run.requests.len() < max {
        let Frame::Complete { start, end } =
            xrow::next_frame(&input[length..], IPROTO_PACKET_SIZE_MAX)
        else {
            break;
        };
        let packet = &input[length + start..length + end];
        let Ok((header, body)) = xrow::decode_header(packet) else {
            break;
        };
        if !takes(header.kind) || (header.schema_id != 0 && header.schema_id != schema_id) {
            break;
        }
        let decoded =
            xrow::decode_body(body).and_then(|body| xrow::data_request(header.kind, &body, uid));
        let Ok(request) = decoded else {
            break;
        };
        if !keeps(&request) {
            break;
        }
        run.syncs[run.requests.len()] = header.sync;
        length += end;
        run.ends[run.requests.len()] = length;
        run.requests.push(request);
    }
    run
}

/// Runs the INSERTs and REPLACEs at the front of `input` (at most `max`, and while fewer
/// than `room` of them wait for the WAL) after starting to load what they will touch
/// (`Db::warm_writes`): one at a time, each misses the cache in its primary key search and
/// on the tuple it replaces, and the loads of the run overlap instead. Returns how many ran
/// and the bytes they took; `None` leaves the first packet to [`handle_packet`]. The run
/// takes what `handle_packet` would run as such a change here, not in a fiber (no stale
/// schema id, a well-formed body, a space without Lua), and stops before anything else.
fn write_run(
    context: &Context<'_>,
    input: &[u8],
    max: usize,
    room: usize,
    out: &mut Vec<u8>,
) -> Option<(usize, usize)> {
    let tx = context.tx;
    let is_write = |kind| matches!(kind, request_type::INSERT | request_type::REPLACE);
    let in_tx = |request: &Request<'_>| !needs_lua(tx, request.space_id);
    let Run {
        requests,
        syncs,
        ends,
    } = decode_run::<IPROTO_WRITE_BATCH>(context, input, max, is_write, in_tx);
    // A lone write has nothing to overlap with.
    if requests.len() < 2 {
        return None;
    }
    let _ = with_db(tx, |db| {
        db.warm_writes(&requests);
        Ok(())
    });
    let mut ran = 0;
    for (request, sync) in requests.iter().zip(syncs) {
        // What `IprotoConn::blocked` asks before each request.
        if ran > 0 && (out.len() > IPROTO_OUTPUT_SIZE_MAX || context.deferred.get() >= room) {
            break;
        }
        if let Err(err) = apply_write(context, sync, request, out) {
            xrow::write_error_reply(out, sync, schema_version(tx), &err);
        }
        ran += 1;
    }
    Some((ran, ends[ran - 1]))
}

/// What a request runs with.
struct Context<'a> {
    tx: &'a Tx,
    token: Token,
    session: u32,
    salt: &'a [u8; 32],
    /// This server is still joining its master: it serves PING only.
    loading: bool,
    /// Requests whose replies wait for the WAL (each then holds an in-flight slot).
    deferred: std::cell::Cell<usize>,
    /// A JOIN or SUBSCRIBE, for the caller.
    replication: std::cell::Cell<Option<crate::replication::tx_replication::ReplicationRequest>>,
    /// The connection's peer has sent VOTE (see [`IprotoConn::voted`]).
    voted: std::cell::Cell<bool>,
}

/// Run one packet (its header decoded, or why not), writing its reply to `out`, or hand it
/// to Lua.
fn handle_packet(
    context: &Context<'_>,
    head: Result<(Header, &[u8]), BoxError>,
    out: &mut Vec<u8>,
) -> Option<LuaRequest> {
    let tx = context.tx;
    let schema_id = schema_version(tx);
    let (header, body_bytes) = match head {
        Ok(decoded) => decoded,
        Err(err) => {
            xrow::write_error_reply(out, 0, schema_id, &err);
            return None;
        }
    };
    let sync = header.sync;
    if header.schema_id != 0 && header.schema_id != schema_id {
        let err = BoxError::new(
            ErrCode::WRONG_SCHEMA_VERSION,
            &[&schema_id, &header.schema_id],
        );
        xrow::write_error_reply(out, sync, schema_id, &err);
        return None;
    }
    // A CALL's body is decoded where it runs (lua/iproto_call.rs), which answers its errors.
    let is_call = matches!(
        header.kind,
        request_type::CALL_16 | request_type::CALL | request_type::EVAL
    );
    if is_call && !context.loading {
        return Some(to_lua(context, &header, body_bytes));
    }
    // A PING's body is not read, as Tarantool does not read it.
    if header.kind == request_type::PING {
        xrow::write_ok_reply(out, sync, schema_id);
        return None;
    }
    let body = match xrow::decode_body(body_bytes) {
        Ok(body) => body,
        Err(err) => {
            xrow::write_error_reply(out, sync, schema_id, &err);
            return None;
        }
    };
    let result = match header.kind {
        // A new replica serves nothing but its greeting and PING until it has joined (it
        // has no users yet to log in, nothing complete to give a replica of its own: that
        // one retries).
        request_type::SELECT..=request_type::CALL
        | request_type::JOIN
        | request_type::SUBSCRIBE
            if context.loading =>
        {
            Err(BoxError::new(ErrCode::LOADING, &[]))
        }
        request_type::SELECT
        | request_type::INSERT
        | request_type::REPLACE
        | request_type::UPDATE
        | request_type::DELETE
        | request_type::UPSERT => data_request(context, &header, &body, body_bytes, out),
        request_type::AUTH => authenticate(context, &header, &body, out),
        request_type::JOIN | request_type::SUBSCRIBE => {
            context.replication.set(Some(
                crate::replication::tx_replication::ReplicationRequest {
                    kind: header.kind,
                    sync,
                    body: body_bytes.to_vec(),
                    voted: context.voted.get(),
                },
            ));
            Ok(None)
        }
        other => {
            // Unknown to 1.6, answered as any unknown type; remembered for a JOIN to come.
            if other == request_type::VOTE {
                context.voted.set(true);
            }
            Err(BoxError::new(ErrCode::UNKNOWN_REQUEST_TYPE, &[&other]))
        }
    };
    match result {
        Ok(request) => request,
        Err(err) => {
            if err.code == ErrCode::UNKNOWN_REQUEST_TYPE {
                log::error!("ER_UNKNOWN_REQUEST_TYPE: {}", err.message);
            }
            xrow::write_error_reply(out, sync, schema_version(tx), &err);
            None
        }
    }
}

/// The schema version replies carry.
fn schema_version(tx: &Tx) -> u32 {
    tx.db.borrow().as_ref().map_or(0, |db| db.schema_version)
}

/// The user of a session.
fn session_uid(tx: &Tx, session: u32) -> u32 {
    tx.sessions.borrow().uid(session)
}

/// A copy of the request for a fiber.
fn to_lua(context: &Context<'_>, header: &Header, body: &[u8]) -> LuaRequest {
    // A body given back by an answered request, if there is one: no allocation.
    let mut copy = context
        .tx
        .request_bodies
        .borrow_mut()
        .pop()
        .unwrap_or_default();
    copy.extend_from_slice(body);
    LuaRequest {
        token: context.token,
        session: context.session,
        sync: header.sync,
        kind: header.kind,
        body: copy,
    }
}

/// SELECT and the changes. Changes of spaces whose `on_replace` triggers are Lua, and of
/// system spaces (the schema hook is Lua), run in a fiber.
fn data_request(
    context: &Context<'_>,
    header: &Header,
    body: &Body<'_>,
    body_bytes: &[u8],
    out: &mut Vec<u8>,
) -> Result<Option<LuaRequest>, BoxError> {
    let tx = context.tx;
    let uid = session_uid(tx, context.session);
    let request = xrow::data_request(header.kind, body, uid)?;
    if request.kind == RequestKind::Select {
        let tuples = with_db(tx, |db| db.select(&request))?;
        let schema_id = schema_version(tx);
        xrow::write_data_reply(out, header.sync, schema_id, tuples.iter().map(|t| t.data()));
        return Ok(None);
    }
    if needs_lua(tx, request.space_id) {
        return Ok(Some(to_lua(context, header, body_bytes)));
    }
    apply_write(context, header.sync, &request, out)?;
    Ok(None)
}

/// Whether changes of space `space_id` run in a fiber: its `on_replace` triggers are Lua,
/// or it is a system space (the schema hook is Lua).
fn needs_lua(tx: &Tx, space_id: u32) -> bool {
    (schema::SYSTEM_ID_MIN..=schema::SYSTEM_ID_MAX).contains(&space_id)
        || tx.trigger_spaces.borrow().contains(&space_id)
}

/// Run a change that needs no Lua and write its reply to `out`, or leave the reply to the
/// WAL's answer (counted in `context.deferred`).
fn apply_write(
    context: &Context<'_>,
    sync: u64,
    request: &Request<'_>,
    out: &mut Vec<u8>,
) -> Result<(), BoxError> {
    let tx = context.tx;
    tx.journal.borrow_mut().unmark();
    let tuple = process::apply(tx, request, None, |_, _| Ok(()))?;
    let schema_id = schema_version(tx);
    // UPSERT answers nothing, whatever it did (as 1.6).
    let tuple = tuple.filter(|_| request.kind != RequestKind::Upsert);
    let mut journal = tx.journal.borrow_mut();
    if journal.is_async() {
        // The reply goes out when the WAL has written the change.
        let token = context.token;
        let tuple = tuple.clone();
        if journal.claim(Waiter::Iproto { token, sync, tuple }) {
            context.deferred.set(context.deferred.get() + 1);
            return Ok(());
        }
    }
    xrow::write_data_reply(out, sync, schema_id, tuple.iter().map(|t| t.data()));
    Ok(())
}

/// AUTH: check the scramble against the user's password and switch the session's user.
/// With on_auth triggers, the triggers run in a fiber that then answers.
fn authenticate(
    context: &Context<'_>,
    header: &Header,
    body: &Body<'_>,
    out: &mut Vec<u8>,
) -> Result<Option<LuaRequest>, BoxError> {
    let tx = context.tx;
    let user = xrow::required(body.user_name, "user name")?;
    let tuple = xrow::required(body.tuple, "tuple")?;
    let user = String::from_utf8_lossy(user).into_owned();
    let scramble = auth_scramble(tuple)?;
    let uid = with_db(tx, |db| {
        db.access.authenticate(&user, context.salt, scramble)
    })?;
    if let Some(session) = tx.sessions.borrow_mut().get_mut(context.session) {
        session.uid = uid;
    }
    if tx.session_triggers.get().on_auth {
        // The fiber runs the triggers with the user's name, then answers.
        return Ok(Some(to_lua(context, header, user.as_bytes())));
    }
    xrow::write_ok_reply(out, header.sync, schema_version(tx));
    Ok(None)
}

/// The scramble of an AUTH tuple `[mechanism, scramble]` (empty for a bare `[]`, the
/// guest's way back); 20 bytes, as str or bin.
fn auth_scramble(tuple: &[u8]) -> Result<&[u8], BoxError> {
    let items = crate::r#box::mp::array_items(tuple).ok_or_else(|| {
        BoxError::new(ErrCode::INVALID_MSGPACK, &[&"authentication request body"])
    })?;
    let Some(scramble) = items.get(1) else {
        return Ok(&[]);
    };
    let mut cursor = *scramble;
    let len = match rmp::decode::read_marker(&mut cursor) {
        Ok(rmp::Marker::Bin8 | rmp::Marker::Bin16 | rmp::Marker::Bin32) => {
            rmp::decode::read_bin_len(&mut &scramble[..]).ok()
        }
        _ => rmp::decode::read_str_len(&mut &scramble[..]).ok(),
    };
    let data = len
        .and_then(|len| scramble.len().checked_sub(len as usize))
        .and_then(|start| scramble.get(start..));
    match data {
        Some(data) if data.len() == 20 => Ok(data),
        _ => Err(BoxError::new(
            ErrCode::INVALID_MSGPACK,
            &[&"invalid scramble size"],
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrambles_of_auth_tuples() {
        let mut tuple = vec![0x92, 0xa9];
        tuple.extend_from_slice(b"chap-sha1");
        tuple.extend_from_slice(&[0xc4, 20]);
        tuple.extend_from_slice(&[7; 20]);
        assert_eq!(auth_scramble(&tuple).unwrap(), &[7; 20]);
        let mut as_str = vec![0x92, 0xa9];
        as_str.extend_from_slice(b"chap-sha1");
        as_str.push(0xb4);
        as_str.extend_from_slice(&[8; 20]);
        assert_eq!(auth_scramble(&as_str).unwrap(), &[8; 20]);
        assert_eq!(auth_scramble(&[0x90]).unwrap(), &[] as &[u8]);
        let short = [0x92, 0xa1, b'x', 0xc4, 1, 0];
        assert_eq!(
            auth_scramble(&short).unwrap_err().code,
            ErrCode::INVALID_MSGPACK
        );
    }
}
