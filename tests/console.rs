//! The admin console over TCP: the greeting's exact bytes, replies, many clients at once,
//! clients that leave mid-statement, and bad input that must never take the server down.

mod common;

use std::io::Write;

use common::Server;

#[test]
fn greeting_is_128_bytes_of_two_padded_lines() {
    let server = Server::start("");
    let console = server.console();
    let greeting = &console.greeting;
    assert_eq!(greeting.len(), 128);
    let first = String::from_utf8_lossy(&greeting[..64]);
    let second = String::from_utf8_lossy(&greeting[64..]);
    assert_eq!(first, format!("{:<63}\n", "Tarantool 1.6.9 (Lua console)"));
    assert_eq!(
        second,
        format!("{:<63}\n", "type 'help' for interactive help")
    );
}

#[test]
fn replies_are_exact_yaml_documents() {
    let server = Server::start("");
    let mut console = server.console();
    let cases = [
        ("1 + 2", "---\n- 3\n...\n"),
        ("nil", "---\n- null\n...\n"),
        ("", "---\n...\n"),
        ("error('x')", "---\n- error: x\n...\n"),
        ("1, 'a'", "---\n- 1\n- a\n...\n"),
        ("''", "---\n-\n...\n"),
        ("'multi\\nline'", "---\n- 'multi\n\n  line'\n...\n"),
        ("{}", "---\n- []\n...\n"),
        ("{1, {a=1}}", "---\n- - 1\n  - a: 1\n...\n"),
        ("'x: y', 'a #b'", "---\n- 'x: y'\n- 'a #b'\n...\n"),
        (
            "1/3, 2^53, 0/0",
            "---\n- 0.33333333333333\n- 9007199254740992\n- -nan\n...\n",
        ),
        (
            "box.cfg{",
            "---\n- error: '[string \"box.cfg{\"]:1: unexpected symbol near ''<eof>'''\n...\n",
        ),
        ("local a = 1", "---\n...\n"),
        ("1+1\r", "---\n- 2\n...\n"),
    ];
    for (statement, reply) in cases {
        assert_eq!(console.eval(statement), reply, "statement {statement:?}");
    }
    console.send(b"\\set delimiter ;\n");
    assert_eq!(console.reply(), "---\n...\n");
    console.send(b"2\n");
    console.send(b";\n");
    assert_eq!(console.reply(), "---\n- 2\n...\n");
}

#[test]
fn tilde_dot_and_quit_end_the_session() {
    let server = Server::start("");
    let mut first = server.console();
    first.send(b"~.\n");
    assert!(first.closed());
    let mut second = server.console();
    second.send(b"\\quit\n");
    assert!(second.closed());
    assert_eq!(server.console().eval("'alive'"), "---\n- alive\n...\n");
}

#[test]
fn many_clients_are_served_at_once() {
    let server = Server::start("fiber = require('fiber')");
    let mut slow = server.console();
    let mut fast = server.console();
    // The slow client's statement waits in its own fiber; the fast one is not held up.
    slow.send(b"fiber.sleep(0.3) return 'slow'\n");
    let started = std::time::Instant::now();
    assert_eq!(fast.eval("'fast'"), "---\n- fast\n...\n");
    assert!(started.elapsed() < std::time::Duration::from_millis(250));
    assert_eq!(slow.reply(), "---\n- slow\n...\n");
    // Globals are shared between sessions, as in Tarantool.
    fast.eval("shared = 42");
    assert_eq!(slow.eval("shared"), "---\n- 42\n...\n");
    let mut many: Vec<_> = (0..20).map(|_| server.console()).collect();
    for (n, client) in many.iter_mut().enumerate() {
        client.send(format!("fiber.sleep(0.05) return {n}\n").as_bytes());
    }
    for (n, client) in many.iter_mut().enumerate() {
        assert_eq!(client.reply(), format!("---\n- {n}\n...\n"));
    }
}

#[test]
fn a_client_that_leaves_mid_statement_harms_nobody() {
    let server = Server::start("fiber = require('fiber')");
    let mut leaving = server.console();
    leaving.send(b"fiber.sleep(0.1) done_after_leaving = true\n");
    drop(leaving);
    let mut other = server.console();
    common::wait_for("the orphaned statement to finish", || {
        (other.eval("done_after_leaving") == "---\n- true\n...\n").then_some(())
    });
    assert_eq!(other.eval("1"), "---\n- 1\n...\n");
}

#[test]
fn bad_input_gets_errors_and_the_server_keeps_serving() {
    let server = Server::start("");
    let mut console = server.console();
    assert!(console.eval("error('boom')").contains("- error: boom"));
    let recursion = console.eval("function f() return 1 + f() end f()");
    assert!(recursion.contains("stack overflow"), "{recursion}");
    let garbage = console.eval("\u{1}\u{2}\u{7f}\u{3}");
    assert!(garbage.starts_with("---\n- error:"), "{garbage}");
    console.send(&[0xff, 0xfe, 0x00, 0x80, b'\n']);
    assert!(console.reply().starts_with("---\n- error:"));
    let cfg = console.eval("box.cfg{listen = {}}");
    assert!(
        cfg.contains("Incorrect value for option ''listen''"),
        "{cfg}"
    );
    // A line past the statement limit closes that one connection.
    let mut flood = server.console();
    let chunk = vec![b'x'; 1 << 20];
    for _ in 0..17 {
        if flood.stream.write_all(&chunk).is_err() {
            break;
        }
    }
    assert!(flood.closed());
    assert_eq!(
        console.eval("'still serving'"),
        "---\n- still serving\n...\n"
    );
}
