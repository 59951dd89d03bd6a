//! Internals of the `console` module: standard input and console sockets for Lua fibers.
//!
//! Owned by the TX thread. The console's logic (statement assembly, evaluation, YAML replies,
//! the delimiter) is Lua in `builtin/console.lua`; these functions only move lines in and
//! replies out, and park the calling fiber when it must wait. Each returns a value, or `nil`
//! and a state name (`'wait'`: yield and call again; `'eof'`; `'closed'`), never raising.

use std::rc::Rc;

use mio::Token;
use mlua::{Function, Lua, MultiValue, Table, Value};

use crate::net::console::{ReadLine, WriteReply};
use crate::net::stdin::StdinRead;
use crate::net::{Accepted, ListenKind};
use crate::tx::{StdinEvent, Tx};

/// The Lua function that serves one console client; kept in the named registry slot.
const HANDLER_KEY: &str = "tarantula.console.handler";

fn state(lua: &Lua, name: &str) -> mlua::Result<MultiValue> {
    Ok(MultiValue::from_iter([
        Value::Nil,
        Value::String(lua.create_string(name)?),
    ]))
}

fn current(tx: &Tx) -> mlua::Result<crate::fiber::FiberId> {
    tx.sched
        .borrow()
        .current()
        .ok_or_else(|| mlua::Error::runtime("not in a fiber"))
}

/// Park the current fiber until woken (no deadline, cancellable).
fn park(tx: &Tx) -> mlua::Result<()> {
    tx.sched
        .borrow_mut()
        .suspend_current(None, true)
        .map(|_| ())
        .map_err(|_| mlua::Error::runtime("not in a fiber"))
}

/// Start a fiber serving an accepted console client.
pub fn spawn_client(lua: &Lua, tx: &Tx, client: &Accepted) {
    let handler: Function = match lua.named_registry_value(HANDLER_KEY) {
        Ok(handler) => handler,
        Err(_) => {
            tx.net.borrow_mut().close(client.token);
            return;
        }
    };
    let args = MultiValue::from_iter([
        Value::Function(handler),
        Value::Integer(client.token.0 as i64),
        lua.create_string(&client.peer)
            .map(Value::String)
            .unwrap_or(Value::Nil),
    ]);
    let name = format!("console/{}", client.peer);
    match super::fiber::spawn_queued(lua, tx, &name, args) {
        Ok(id) => {
            let kind = crate::r#box::session::SessionKind::Console;
            super::session::open_for_fiber(tx, id, kind, &client.peer);
        }
        Err(err) => {
            log::error!("can't serve console client {}: {err}", client.peer);
            tx.net.borrow_mut().close(client.token);
        }
    }
}

/// The `internal.console` table.
pub fn open(lua: &Lua, tx: &Rc<Tx>) -> mlua::Result<Table> {
    let module = lua.create_table()?;
    module.set(
        "set_handler",
        lua.create_function(|lua, handler: Function| {
            lua.set_named_registry_value(HANDLER_KEY, handler)
        })?,
    )?;
    module.set(
        "format",
        lua.create_function(|lua, args: MultiValue| Ok(format_reply(lua, args)))?,
    )?;
    let t = tx.clone();
    module.set(
        "stdin_read",
        lua.create_function(move |lua, prompt: String| stdin_read(lua, &t, &prompt))?,
    )?;
    let t = tx.clone();
    module.set(
        "listen",
        lua.create_function(move |lua, uri: String| {
            let result = t.net.borrow_mut().listen(&uri, ListenKind::Console);
            match result {
                Ok((token, name)) => Ok(MultiValue::from_iter([
                    Value::Integer(token.0 as i64),
                    Value::String(lua.create_string(&name)?),
                ])),
                Err(err) => state(lua, &crate::error::strerror(&err)),
            }
        })?,
    )?;
    let t = tx.clone();
    module.set(
        "read",
        lua.create_function(move |lua, token: usize| socket_read(lua, &t, Token(token)))?,
    )?;
    let t = tx.clone();
    module.set(
        "write",
        lua.create_function(move |lua, (token, data): (usize, mlua::LuaString)| {
            socket_write(lua, &t, Token(token), &data.as_bytes())
        })?,
    )?;
    let t = tx.clone();
    module.set(
        "close",
        lua.create_function(move |_, token: usize| {
            close_socket(&t, Token(token));
            Ok(())
        })?,
    )?;
    Ok(module)
}

/// The YAML document for a statement's outcome: `format(true, values...)` or
/// `format(false, err)`, as Tarantool's console formatter writes it.
fn format_reply(lua: &Lua, args: MultiValue) -> String {
    let mut args = args.into_iter();
    let ok = matches!(args.next(), Some(Value::Boolean(true)));
    let reply = if ok {
        let values: Vec<Value> = args.collect();
        super::yaml::console_reply(lua, &values)
    } else {
        super::yaml::console_error_reply(lua, args.next().unwrap_or(Value::Nil))
    };
    reply.unwrap_or_else(|err| {
        let message = super::serializer::error_message(&err).replace('\'', "''");
        format!("---\n- error: 'console: {message}'\n...\n")
    })
}

fn stdin_read(lua: &Lua, tx: &Tx, prompt: &str) -> mlua::Result<MultiValue> {
    let fiber = current(tx)?;
    let read = tx.stdin.borrow_mut().read(fiber, prompt, &tx.sender);
    match read {
        Ok(StdinRead::Event(StdinEvent::Line(line))) => Ok(MultiValue::from_iter([Value::String(
            lua.create_string(&line)?,
        )])),
        Ok(StdinRead::Event(StdinEvent::Interrupted)) => state(lua, "interrupted"),
        Ok(StdinRead::Event(StdinEvent::Eof)) => state(lua, "eof"),
        Ok(StdinRead::Wait) => {
            park(tx)?;
            state(lua, "wait")
        }
        Err(err) => state(lua, &err.to_string()),
    }
}

fn socket_read(lua: &Lua, tx: &Tx, token: Token) -> mlua::Result<MultiValue> {
    let fiber = current(tx)?;
    let read = match tx.net.borrow_mut().console_mut(token) {
        Some(console) => console.read_line(fiber),
        None => ReadLine::Eof,
    };
    match read {
        ReadLine::Line(line) => Ok(MultiValue::from_iter([Value::String(
            lua.create_string(&line)?,
        )])),
        ReadLine::Eof => state(lua, "eof"),
        ReadLine::TooLong => state(lua, "statement is too long"),
        ReadLine::Wait => {
            park(tx)?;
            state(lua, "wait")
        }
    }
}

fn socket_write(lua: &Lua, tx: &Tx, token: Token, data: &[u8]) -> mlua::Result<MultiValue> {
    let fiber = current(tx)?;
    let written = match tx.net.borrow_mut().console_mut(token) {
        Some(console) => console.write(fiber, data),
        None => WriteReply::Closed,
    };
    match written {
        WriteReply::Done => Ok(MultiValue::from_iter([Value::Boolean(true)])),
        WriteReply::Closed => state(lua, "closed"),
        WriteReply::Wait => {
            park(tx)?;
            state(lua, "wait")
        }
    }
}

/// Close a console socket and wake whoever was parked on it.
fn close_socket(tx: &Tx, token: Token) {
    let source = tx.net.borrow_mut().close(token);
    if let Some(crate::net::Source::Console(mut console)) = source {
        let waiters = console.waiters();
        let mut sched = tx.sched.borrow_mut();
        for fiber in waiters {
            sched.wakeup(fiber, crate::fiber::WakeReason::Woken);
        }
    }
}
