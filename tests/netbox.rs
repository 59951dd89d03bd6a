//! `net.box`: one instance calling another through the binary protocol. The caller is
//! driven through its console; its requests yield the calling fiber, so the console keeps
//! answering while a remote call waits.

mod common;

use std::time::{Duration, Instant};

use common::{Console, Server, wait_for};

/// The instance that is called: a space, a user, functions quick and slow.
const PEER: &str = "box.cfg{listen = '127.0.0.1:0', log = 'tarantula.log'}\n\
    box.schema.user.grant('guest', 'read,write,execute', 'universe')\n\
    box.schema.user.create('alice', {password = 'secret'})\n\
    box.schema.user.grant('alice', 'read,write,execute', 'universe')\n\
    local s = box.schema.space.create('items')\n\
    s:create_index('pk')\n\
    s:create_index('by_name', {parts = {2, 'str'}, unique = false})\n\
    s:insert{1, 'one'}\n\
    function greet(x) return 'hi ' .. x, {1, 2} end\n\
    function slow(t) require('fiber').sleep(t) return 'done' end\n\
    io.stdout:write('IPROTO ', box.info.listen, '\\n') io.stdout:flush()\n";

fn peer() -> (Server, String) {
    let server = Server::start(PEER);
    let address = wait_for("the peer's iproto address", || {
        let line = server.stdout.recv_timeout(Duration::from_secs(10)).ok()?;
        line.strip_prefix("IPROTO ").map(|a| a.trim().to_string())
    });
    (server, address)
}

/// A second instance whose console talks to the peer as `c`.
fn caller(address: &str) -> (Server, Console) {
    let server = Server::start("");
    let mut console = server.console();
    let reply = console.eval(&format!(
        "c = require('net.box').connect('{address}') return c:is_connected(), c.state"
    ));
    assert_eq!(reply, "---\n- true\n- active\n...\n");
    (server, console)
}

#[test]
fn one_instance_calls_another() {
    let (_peer, address) = peer();
    let (_caller, mut c) = caller(&address);
    let cases = [
        ("return c:ping()", "- true"),
        ("return c:call('greet', 'you')", "- ['hi you']\n- [1, 2]"),
        ("return c:eval('return 1 + ...', 2)", "- 3"),
        ("return c.space.items:select{}", "- - [1, 'one']"),
        ("return c.space.items:insert{2, 'two'}", "- [2, 'two']"),
        ("return c.space.items:replace{3, 'three'}", "- [3, 'three']"),
        ("return c.space.items:get{2}", "- [2, 'two']"),
        ("return c.space.items:get{9}", "- null"),
        (
            "return c.space.items.index.by_name:select{'two'}",
            "- - [2, 'two']",
        ),
        (
            "return c.space.items:update({2}, {{'=', 2, 'TWO'}})",
            "- [2, 'TWO']",
        ),
        (
            "return c.space.items:upsert({4, 'four'}, {{'=', 2, 'x'}})",
            "",
        ),
        (
            "return c.space.items:upsert({4, 'four'}, {{'=', 2, 'x'}})",
            "",
        ),
        ("return c.space.items:get{4}", "- [4, 'x']"),
        ("return c.space.items:delete{3}", "- [3, 'three']"),
        (
            "return c.space.items:select({2}, {iterator = 'GE', limit = 2})",
            "- - [2, 'TWO']\n  - [4, 'x']",
        ),
        ("return c.space.items:count()", "- 3"),
        ("return c.space.items.index.pk:max()", "- [4, 'x']"),
        // Remote errors keep their codes.
        (
            "local ok, e = pcall(c.space.items.insert, c.space.items, {1, 'dup'}) return e.code",
            "- 3",
        ),
        (
            "local ok, e = pcall(c.call, c, 'nosuch') return e.code, e.message",
            "- 33\n- Procedure 'nosuch' is not defined",
        ),
        // A user with a password, and a wrong one.
        (
            &format!(
                "local u = require('net.box').connect('alice:secret@{address}') return u:eval('return box.session.user()')"
            ),
            "- alice",
        ),
        (
            &format!(
                "local u = require('net.box').connect('{address}', {{user = 'alice', password = 'no'}}) return u.state, u.error, u:is_connected()"
            ),
            "- error\n- Incorrect password supplied for user 'alice'\n- false",
        ),
        // DDL on the peer shows in conn.space (the schema id moved).
        (
            "c:eval(\"box.schema.space.create('later'):create_index('pk')\") return c.space.later.id ~= nil",
            "- true",
        ),
        (
            "c:close() return c.state, select(2, pcall(c.ping, c))",
            "- closed\n- false",
        ),
    ];
    for (statement, expected) in cases {
        let want = if expected.is_empty() {
            "---\n...\n".to_string()
        } else {
            format!("---\n{expected}\n...\n")
        };
        assert_eq!(c.eval(statement), want, "{statement}");
    }
}

#[test]
fn a_call_that_times_out_does_not_block_the_loop() {
    let (_peer, address) = peer();
    let (_caller, mut c) = caller(&address);
    // A remote call waiting in another fiber does not hold up this one.
    c.eval("f = require('fiber').create(function() r = c:call('slow', 1) end)");
    let started = Instant::now();
    assert_eq!(c.eval("return c:ping(), r"), "---\n- true\n- null\n...\n");
    assert!(started.elapsed() < Duration::from_millis(900));
    // A timeout ends the wait with ER_TIMEOUT; the connection stays usable.
    let reply = c.eval("local ok, e = pcall(function() return c:timeout(0.1):call('slow', 5) end) return ok, e.code, e.message");
    assert_eq!(reply, "---\n- false\n- 78\n- Timeout exceeded\n...\n");
    let reply =
        c.eval("return c.space.items:select({}, {timeout = 5}), c:timeout(5).space.items:get{1}");
    assert_eq!(reply, "---\n- - [1, 'one']\n- [1, 'one']\n...\n");
    assert_eq!(
        c.eval("return c:call('greet', 'x')"),
        "---\n- ['hi x']\n- [1, 2]\n...\n"
    );
    wait_for("the slow call in the other fiber", || {
        (c.eval("return r") == "---\n- ['done']\n...\n").then_some(())
    });
    // A connect that cannot finish in time.
    let reply = c.eval("local n = require('net.box').connect('127.0.0.1:1', {connect_timeout = 1}) return n.state, n.error");
    assert_eq!(reply, "---\n- error\n- Connection refused\n...\n");
}

#[test]
fn a_peer_that_goes_away() {
    let (mut peer, address) = peer();
    let (_caller, mut c) = caller(&address);
    c.eval("f = require('fiber').create(function() local ok, e = pcall(c.call, c, 'slow', 30) r = {ok, e.code, e.message} end)");
    let _ = peer.child.kill();
    let _ = peer.child.wait();
    wait_for("the waiting call to fail", || {
        (c.eval("return unpack(r or {})") == "---\n- false\n- 77\n- Peer closed\n...\n")
            .then_some(())
    });
    let reply = c.eval("local ok, e = pcall(c.call, c, 'greet', 1) return c:is_connected(), c.state, e.code, e.message");
    assert_eq!(reply, "---\n- false\n- error\n- 77\n- Peer closed\n...\n");
    assert_eq!(c.eval("return c:ping()"), "---\n- false\n...\n");
}

#[test]
fn reconnect_after_brings_the_connection_back() {
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let fixed = PEER.replace("'127.0.0.1:0'", &format!("'127.0.0.1:{port}'"));
    let first = Server::start(&fixed);
    let server = Server::start("");
    let mut c = server.console();
    let connect = format!(
        "c = require('net.box').connect('127.0.0.1:{port}', {{reconnect_after = 0.05}}) return c:ping()"
    );
    assert_eq!(c.eval(&connect), "---\n- true\n...\n");
    drop(first);
    wait_for("the connection to notice", || {
        (c.eval("return c:ping(), c.state") == "---\n- false\n- error\n...\n").then_some(())
    });
    let _second = Server::start(&fixed);
    let reply = c.eval("return c:wait_connected(10), c:call('greet', 'again')");
    assert_eq!(reply, "---\n- true\n- ['hi again']\n- [1, 2]\n...\n");
}
