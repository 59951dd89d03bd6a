//! `internal.netbox`: what `builtin/net_box.lua` needs of net/netbox.rs: open a connection,
//! send a request and park the calling fiber until its reply (or a timeout), take the
//! reply, watch the connection's state, close it.
//!
//! Owned by the TX thread. A wait is registered with the scheduler here and the Lua side
//! then yields the fiber (sched.suspend); the loop wakes it when net/netbox.rs files the
//! reply or the connection changes state, or when the deadline passes.

use std::rc::Rc;

use mio::Token;
use mlua::{Lua, MultiValue, Table, Value};

use crate::error::ErrCode;
use crate::net::Target;
use crate::net::netbox::{NetboxState, error_message, io_reason};
use crate::proto::iproto_constants::{key, request_type};
use crate::tx::Tx;

/// `nil, code, message` for Lua to raise.
fn failure(lua: &Lua, code: ErrCode, message: &str) -> mlua::Result<MultiValue> {
    Ok(MultiValue::from_iter([
        Value::Nil,
        Value::Integer(i64::from(code.0)),
        Value::String(lua.create_string(message)?),
    ]))
}

/// The DATA of a reply body, decoded (an empty table when the body has none).
fn data(lua: &Lua, body: &[u8]) -> mlua::Result<Value> {
    let pairs = crate::r#box::mp::map_items(body)
        .ok_or_else(|| mlua::Error::runtime("net.box: invalid reply body"))?;
    for (k, v) in pairs {
        if crate::r#box::mp::read_u64(k) == Some(u64::from(key::DATA)) {
            return Ok(super::msgpack::decode_value(lua, v)?.0);
        }
    }
    Ok(Value::Table(lua.create_table()?))
}

/// The `internal.netbox` table.
pub fn open(lua: &Lua, tx: &Rc<Tx>) -> mlua::Result<Table> {
    let module = lua.create_table()?;
    let t = tx.clone();
    module.set(
        "connect",
        lua.create_function(
            move |lua,
                  (host, port, user, password): (
                Option<String>,
                String,
                Option<String>,
                Option<String>,
            )| {
                let target = match host {
                    Some(host) => match port.parse::<u16>() {
                        Ok(port) => Target::Tcp(host, port),
                        Err(_) => {
                            return failure(lua, ErrCode::ILLEGAL_PARAMS, "net.box: bad port");
                        }
                    },
                    None => Target::Unix(port),
                };
                let credentials = user.map(|user| (user, password.unwrap_or_default()));
                match t.net.borrow_mut().connect(&target, credentials) {
                    Ok(token) => Ok(MultiValue::from_iter([Value::Integer(token.0 as i64)])),
                    Err(err) => failure(lua, ErrCode::NO_CONNECTION, &io_reason(&err)),
                }
            },
        )?,
    )?;
    let t = tx.clone();
    module.set(
        "state",
        lua.create_function(move |lua, token: usize| {
            let mut net = t.net.borrow_mut();
            let Some(conn) = net.netbox_mut(Token(token)) else {
                return Ok(MultiValue::from_iter([Value::String(
                    lua.create_string("closed")?,
                )]));
            };
            let error = match &conn.state {
                NetboxState::Error(reason) => Value::String(lua.create_string(reason)?),
                _ => Value::Nil,
            };
            Ok(MultiValue::from_iter([
                Value::String(lua.create_string(conn.state.name())?),
                error,
                Value::Integer(i64::from(conn.schema_id)),
                Value::Integer(i64::from(conn.peer_version)),
                match &conn.peer_uuid {
                    Some(uuid) => Value::String(lua.create_string(uuid)?),
                    None => Value::Nil,
                },
            ]))
        })?,
    )?;
    let t = tx.clone();
    module.set(
        "watch",
        lua.create_function(move |_, (token, timeout): (usize, Option<f64>)| {
            let fiber = super::fiber::current(&t)?;
            match t.net.borrow_mut().netbox_mut(Token(token)) {
                Some(conn) => conn.watch(fiber),
                None => return Ok(false),
            }
            super::fiber::park(&t, timeout, true)?;
            Ok(true)
        })?,
    )?;
    let t = tx.clone();
    module.set(
        "unwatch",
        lua.create_function(move |_, token: usize| {
            let fiber = super::fiber::current(&t)?;
            if let Some(conn) = t.net.borrow_mut().netbox_mut(Token(token)) {
                conn.unwatch(fiber);
            }
            Ok(())
        })?,
    )?;
    let t = tx.clone();
    module.set(
        "request",
        lua.create_function(
            move |lua, (token, kind, body, timeout): (usize, u32, Table, Option<f64>)| {
                let fiber = super::fiber::current(&t)?;
                let mut bytes = Vec::new();
                super::msgpack::encode_value(lua, &Value::Table(body), &mut bytes)?;
                let sent = match t.net.borrow_mut().netbox_mut(Token(token)) {
                    Some(conn) => conn.request(kind, &bytes, fiber),
                    None => Err(String::from("Connection closed")),
                };
                match sent {
                    Ok(sync) => {
                        super::fiber::park(&t, timeout, true)?;
                        Ok(MultiValue::from_iter([Value::Number(sync as f64)]))
                    }
                    Err(reason) => failure(lua, ErrCode::NO_CONNECTION, &reason),
                }
            },
        )?,
    )?;
    let t = tx.clone();
    module.set(
        "result",
        lua.create_function(move |lua, (token, sync): (usize, f64)| {
            let reply = t
                .net
                .borrow_mut()
                .netbox_mut(Token(token))
                .and_then(|conn| conn.take_reply(sync as u64));
            let Some(reply) = reply else {
                return Ok(MultiValue::new());
            };
            if reply.status == request_type::OK {
                return Ok(MultiValue::from_iter([
                    Value::Boolean(true),
                    data(lua, &reply.body)?,
                ]));
            }
            let code = reply.status & !request_type::TYPE_ERROR;
            Ok(MultiValue::from_iter([
                Value::Boolean(false),
                Value::Integer(i64::from(code)),
                Value::String(lua.create_string(error_message(&reply.body))?),
            ]))
        })?,
    )?;
    let t = tx.clone();
    module.set(
        "close",
        lua.create_function(move |_, token: usize| {
            let closed = t.net.borrow_mut().close(Token(token));
            if let Some(crate::net::Source::Netbox(mut conn)) = closed {
                let wake = conn.fail(String::from("Connection closed"));
                let mut sched = t.sched.borrow_mut();
                for fiber in wake {
                    sched.wakeup(fiber, crate::fiber::WakeReason::Woken);
                }
            }
            Ok(())
        })?,
    )?;
    Ok(module)
}
