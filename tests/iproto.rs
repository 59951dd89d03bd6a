//! The binary protocol against captured exchanges of real Tarantool (TARANTOOL-2.6-OBSERVED.md
//! §5.2): the same request bytes get replies equal field by field (2.x's extra error map
//! 0x52 aside), and bad input gets an error reply or, for broken framing, a closed
//! connection, while the server goes on serving.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{Server, wait_for};

const SETUP: &str = "box.cfg{listen = '127.0.0.1:0', log = 'tarantula.log'}\n\
    box.schema.user.grant('guest', 'read,write,execute', 'universe')\n\
    local s = box.schema.space.create('tester')\n\
    s:create_index('primary', {type = 'hash'})\n\
    s:insert{1, 'Hello', {2, 'x', {3}}, {k = 'v'}}\n\
    function hello(x) return 'hi ' .. x, 2 end\n\
    io.stdout:write('IPROTO ', box.info.listen, '\\n') io.stdout:flush()\n";

fn hex(text: &str) -> Vec<u8> {
    let clean: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    (0..clean.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&clean[i..i + 2], 16).unwrap())
        .collect()
}

fn start() -> (Server, String) {
    let server = Server::start(SETUP);
    let address = wait_for("the iproto address", || {
        let line = server.stdout.recv_timeout(Duration::from_secs(10)).ok()?;
        line.strip_prefix("IPROTO ").map(|a| a.trim().to_string())
    });
    (server, address)
}

/// A connected client that has read the greeting.
fn connect(address: &str) -> TcpStream {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut greeting = [0u8; 128];
    stream.read_exact(&mut greeting).unwrap();
    assert!(greeting.starts_with(b"Tarantool 1.6.9 (Binary) "));
    assert_eq!((greeting[63], greeting[127]), (b'\n', b'\n'));
    stream
}

/// Read one reply: (status, sync, body bytes).
fn reply(stream: &mut TcpStream) -> (u32, u64, Vec<u8>) {
    let mut prefix = [0u8; 5];
    stream.read_exact(&mut prefix).unwrap();
    assert_eq!(prefix[0], 0xce);
    let len = u32::from_be_bytes(prefix[1..].try_into().unwrap()) as usize;
    let mut packet = vec![0u8; len];
    stream.read_exact(&mut packet).unwrap();
    // {0: ce status, 1: cf sync, 5: ce schema}
    assert_eq!(&packet[..3], &[0x83, 0x00, 0xce]);
    let status = u32::from_be_bytes(packet[3..7].try_into().unwrap());
    assert_eq!(&packet[7..9], &[0x01, 0xcf]);
    let sync = u64::from_be_bytes(packet[9..17].try_into().unwrap());
    assert_eq!(&packet[17..19], &[0x05, 0xce]);
    (status, sync, packet[23..].to_vec())
}

fn exchange(stream: &mut TcpStream, request: &str) -> (u32, u64, Vec<u8>) {
    stream.write_all(&hex(request)).unwrap();
    reply(stream)
}

/// An error body `{0x31: str32 message}`.
fn error_message(body: &[u8]) -> String {
    assert_eq!(&body[..3], &[0x81, 0x31, 0xdb]);
    String::from_utf8(body[7..].to_vec()).unwrap()
}

#[test]
fn captured_exchanges() {
    let (_server, address) = start();
    let mut client = connect(&address);
    // PING
    let (status, sync, body) = exchange(&mut client, "ce00000006820040010180");
    assert_eq!((status, sync, body), (0, 1, vec![0x80]));
    // SELECT key 1
    let (status, sync, body) = exchange(
        &mut client,
        "ce0000001582000101088610cd02001100126413001400209101",
    );
    assert_eq!((status, sync), (0, 8));
    assert_eq!(
        body,
        hex("8130dd000000019401a548656c6c6f9302a178910381a16ba176")
    );
    // INSERT dup
    let (status, _, body) = exchange(&mut client, "ce0000001182000201098210cd0200219201a3647570");
    assert_eq!(status, 0x8003);
    assert_eq!(
        error_message(&body),
        "Duplicate key exists in unique index 'primary' in space 'tester'"
    );
    // INSERT no such space
    let (status, _, body) = exchange(&mut client, "ce0000000d820002010a8210cd03e7219101");
    assert_eq!(status, 0x8024);
    assert_eq!(error_message(&body), "Space '999' does not exist");
    // INSERT, REPLACE, UPDATE, UPSERT, DELETE, DELETE missing
    let steps = [
        (
            "ce00000011820002010c8210cd020021920aa374656e",
            "8130dd00000001920aa374656e",
        ),
        (
            "ce00000011820003010d8210cd020021920aa354454e",
            "8130dd00000001920aa354454e",
        ),
        (
            "ce00000019820004010e8410cd0200110020910a219193a13d01a3757064",
            "8130dd00000001920aa3757064",
        ),
        (
            "ce00000017820009010f8310cd020021920ba175289193a13d01a178",
            "8130dd00000000",
        ),
        (
            "ce0000000f82000501108310cd0200110020910a",
            "8130dd00000001920aa3757064",
        ),
        ("ce0000000f82000501118310cd0200110020910a", "8130dd00000000"),
    ];
    for (request, expected) in steps {
        let (status, _, body) = exchange(&mut client, request);
        assert_eq!((status, body), (0, hex(expected)), "{request}");
    }
    // CALL (10), CALL_16 (6), EVAL, EVAL error, missing function, unknown type
    let (_, _, body) = exchange(&mut client, "ce0000001182000a01128222a568656c6c6f2191a178");
    assert_eq!(body, hex("8130dd00000002a46869207802"));
    let (_, _, body) = exchange(&mut client, "ce0000001182000601138222a568656c6c6f2191a178");
    assert_eq!(body, hex("8130dd0000000291a4686920789102"));
    let (_, _, body) = exchange(
        &mut client,
        "ce0000001f82000801148227b572657475726e20312c207b322c20337d2c206e696c2190",
    );
    assert_eq!(body, hex("8130dd0000000301920203c0"));
    let (status, _, body) = exchange(
        &mut client,
        "ce0000001782000801158227ad6572726f722822626f6f6d22292190",
    );
    assert_eq!(
        (status, error_message(&body).as_str()),
        (0x8020, "eval:1: boom")
    );
    let (status, _, body) = exchange(
        &mut client,
        "ce0000001282000a01168222a86e6f73756368666e2190",
    );
    assert_eq!(status, 0x8021);
    assert_eq!(error_message(&body), "Procedure 'nosuchfn' is not defined");
    let (status, sync, body) = exchange(&mut client, "ce00000006820063011780");
    assert_eq!((status, sync), (0x8030, 0x17));
    assert_eq!(error_message(&body), "Unknown request type 99");
}

#[test]
fn bad_input_keeps_the_server_serving() {
    let (_server, address) = start();
    let mut client = connect(&address);
    // A body whose space id is a string: an error reply, and the connection lives.
    let (status, _, body) = exchange(&mut client, "ce0000000c82000201018210a178219101");
    assert_eq!(status, 0x8000 | 20);
    assert_eq!(error_message(&body), "Invalid MsgPack - packet body");
    // A missing mandatory key.
    let (status, _, body) = exchange(&mut client, "ce0000000a82000201028110cd0200");
    assert_eq!(status, 0x8000 | 69);
    assert_eq!(
        error_message(&body),
        "Missing mandatory field 'tuple' in request"
    );
    let (status, _, _) = exchange(&mut client, "ce00000006820040010380");
    assert_eq!(status, 0);
    // A PING's body is not read (Tarantool's is not either): one that is not a map, or a
    // map of wrongly typed values, gets its OK.
    let (status, sync, body) = exchange(&mut client, "ce0000000782004001049101");
    assert_eq!((status, sync, body), (0, 4, vec![0x80]));
    let (status, sync, _) = exchange(&mut client, "ce0000000982004001058110a178");
    assert_eq!((status, sync), (0, 5));
    // Broken framing: the length prefix is not a uint. The connection closes.
    client.write_all(&[0xa1, 0x00]).unwrap();
    let mut rest = Vec::new();
    assert_eq!(client.read_to_end(&mut rest).unwrap_or(0), 0);
    // Others are still served.
    let mut other = connect(&address);
    let (status, _, _) = exchange(&mut other, "ce00000006820040010180");
    assert_eq!(status, 0);
}

const CALLS_SETUP: &str = "box.cfg{listen = '127.0.0.1:0', log = 'tarantula.log'}\n\
    box.schema.user.grant('guest', 'read,write,execute', 'universe')\n\
    local s = box.schema.space.create('tester')\n\
    s:create_index('primary')\n\
    obj = {k = 5}\n\
    function obj:get(x) return self.k + x end\n\
    lib = {inner = {f = function(a, b) return a, b end}}\n\
    function many() return {{1, 2}, {3}} end\n\
    function mixed() return box.tuple.new{1}, {2}, 3, {a = 1} end\n\
    function echo(...) return ... end\n\
    function sleepy(x) require('fiber').sleep(0.01) return x end\n\
    function boom() error('boom', 0) end\n\
    function custom() box.error{code = 42, reason = 'custom'} end\n\
    function opentxn() box.begin() box.space.tester:replace{77} return 1 end\n\
    function serialized() return setmetatable({}, {__serialize = function() return {7} end}) end\n\
    function who() return box.session.uid() end\n\
    kept = setmetatable({}, {__mode = 'k'})\n\
    function stash(x) local s = require('fiber').self().storage s.x = x kept[s] = true return s.x end\n\
    function stashes() collectgarbage() collectgarbage() local n = 0 for _ in pairs(kept) do n = n + 1 end return n end\n\
    flag = false\n\
    box.schema.func.create('who_setuid', {setuid = true})\n\
    who_setuid = who\n\
    io.stdout:write('IPROTO ', box.info.listen, '\\n') io.stdout:flush()\n";

/// A framed request with `header` fields `{0: kind, 1: sync}` and `body`.
fn framed(kind: u8, sync: u64, body: rmpv::Value) -> Vec<u8> {
    let header = rmpv::Value::Map(vec![(0.into(), kind.into()), (1.into(), sync.into())]);
    let mut packet = Vec::new();
    rmpv::encode::write_value(&mut packet, &header).unwrap();
    rmpv::encode::write_value(&mut packet, &body).unwrap();
    let mut frame = vec![0xce];
    frame.extend_from_slice(&(packet.len() as u32).to_be_bytes());
    frame.extend_from_slice(&packet);
    frame
}

/// The replies to `requests` sent one at a time, each reply read before the next goes.
fn one_at_a_time(stream: &mut TcpStream, requests: &[Vec<u8>]) -> Vec<(u32, u64, Vec<u8>)> {
    requests
        .iter()
        .map(|request| {
            stream.write_all(request).unwrap();
            reply(stream)
        })
        .collect()
}

/// A request made by [`framed`] with schema id 1 added to its header: `{0: kind, 1: sync,
/// 5: 1}`, stale on a server whose schema has changed since it started.
fn with_stale_schema(mut request: Vec<u8>) -> Vec<u8> {
    assert_eq!(request[5], 0x82);
    request[5] = 0x83;
    request.splice(6..6, [0x05, 0x01]);
    let length = (request.len() - 5) as u32;
    request[1..5].copy_from_slice(&length.to_be_bytes());
    request
}

/// A CALL (code 6 or 10) or EVAL of `what` with `args`; returns the status and the body.
fn call(stream: &mut TcpStream, kind: u8, what: &str, args: rmpv::Value) -> (u32, rmpv::Value) {
    let key = if kind == 8 { 0x27 } else { 0x22 };
    let body = rmpv::Value::Map(vec![(key.into(), what.into()), (0x21.into(), args)]);
    stream.write_all(&framed(kind, 7, body)).unwrap();
    let (status, sync, body) = reply(stream);
    assert_eq!(sync, 7);
    (status, rmpv::decode::read_value(&mut &body[..]).unwrap())
}

/// The DATA of an OK body.
fn data(body: rmpv::Value) -> rmpv::Value {
    match body {
        rmpv::Value::Map(mut pairs) if pairs.len() == 1 && pairs[0].0 == 0x30.into() => {
            pairs.remove(0).1
        }
        other => panic!("not a data body: {other}"),
    }
}

/// The message of an error body.
fn message(body: rmpv::Value) -> String {
    match body {
        rmpv::Value::Map(pairs) if pairs[0].0 == 0x31.into() => {
            pairs[0].1.as_str().unwrap().to_string()
        }
        other => panic!("not an error body: {other}"),
    }
}

#[test]
fn a_replica_of_a_later_tarantool_is_told_it_cannot_join() {
    let (_server, address) = start();
    let mut client = connect(&address);
    // VOTE as a 2.6 replica sends it first (TARANTOOL-2.6-OBSERVED.md §5.3): unknown to 1.6.
    let (status, _, body) = exchange(&mut client, "ce00000003 81 00 44");
    assert_eq!(status, 0x8000 | 48);
    assert_eq!(error_message(&body), "Unknown request type 68");
    // Its JOIN, on that connection, is refused before any 1.6 system row goes out.
    let uuid = "d75bc368-0448-4c5e-ac86-02848c9d2f52";
    let join = framed(65, 7, rmpv::Value::Map(vec![(36.into(), uuid.into())]));
    client.write_all(&join).unwrap();
    let (status, sync, body) = reply(&mut client);
    assert_eq!((status, sync), (0x8000 | 5, 7));
    assert_eq!(
        error_message(&body),
        "Tarantula does not support replicas of Tarantool 1.10 or later"
    );
    let (status, sync, _) = exchange(&mut client, "ce00000006820040010980");
    assert_eq!((status, sync), (0, 9));
}

#[test]
fn calls_and_evals_as_tarantool_answers_them() {
    use rmpv::Value as V;
    let arr = |items: Vec<V>| V::Array(items);
    let server = Server::start(CALLS_SETUP);
    let address = wait_for("the iproto address", || {
        let line = server.stdout.recv_timeout(Duration::from_secs(10)).ok()?;
        line.strip_prefix("IPROTO ").map(|a| a.trim().to_string())
    });
    let mut c = connect(&address);
    let ok = |c: &mut TcpStream, kind, what: &str, args: Vec<V>| {
        let (status, body) = call(c, kind, what, V::Array(args));
        assert_eq!(status, 0, "{what}: {body}");
        data(body)
    };
    let fails = |c: &mut TcpStream, kind, what: &str, args: Vec<V>| {
        let (status, body) = call(c, kind, what, V::Array(args));
        (status & 0x7fff, message(body))
    };
    // Methods and paths; 1.6 wraps scalars in tuples, CALL 10 does not.
    assert_eq!(
        ok(&mut c, 6, "obj:get", vec![1.into()]),
        arr(vec![arr(vec![6.into()])])
    );
    assert_eq!(
        ok(&mut c, 10, "obj:get", vec![1.into()]),
        arr(vec![6.into()])
    );
    assert_eq!(
        ok(&mut c, 10, "lib.inner.f", vec![1.into(), "x".into()]),
        arr(vec![1.into(), "x".into()])
    );
    // A table of tables is a list of tuples for CALL 6, one value for CALL 10.
    let pairs = arr(vec![arr(vec![1.into(), 2.into()]), arr(vec![3.into()])]);
    assert_eq!(ok(&mut c, 6, "many", vec![]), pairs);
    assert_eq!(ok(&mut c, 10, "many", vec![]), arr(vec![pairs.clone()]));
    let map = V::Map(vec![("a".into(), 1.into())]);
    assert_eq!(
        ok(&mut c, 6, "mixed", vec![]),
        arr(vec![
            arr(vec![1.into()]),
            arr(vec![2.into()]),
            arr(vec![3.into()]),
            arr(vec![map.clone()])
        ])
    );
    // Arguments the fast path declines (tables, nil) go through the general handler.
    let nested = arr(vec![1.into(), map.clone()]);
    assert_eq!(
        ok(&mut c, 10, "echo", vec![nested.clone()]),
        arr(vec![nested])
    );
    assert_eq!(
        ok(&mut c, 10, "echo", vec![V::Nil, 2.into()]),
        arr(vec![V::Nil, 2.into()])
    );
    // A function that yields; results the raw encoder declines.
    assert_eq!(
        ok(&mut c, 10, "sleepy", vec!["z".into()]),
        arr(vec!["z".into()])
    );
    assert_eq!(
        ok(&mut c, 10, "serialized", vec![]),
        arr(vec![arr(vec![7.into()])])
    );
    // Errors: raised strings, box errors, missing functions and methods, non-functions.
    assert_eq!(fails(&mut c, 10, "boom", vec![]), (32, "boom".to_string()));
    assert_eq!(
        fails(&mut c, 6, "custom", vec![]),
        (42, "custom".to_string())
    );
    for name in ["nope.x", "obj:missing", "obj.k.z", "..."] {
        let expected = format!("Procedure '{name}' is not defined");
        assert_eq!(fails(&mut c, 10, name, vec![]), (33, expected));
    }
    let (code, text) = fails(&mut c, 10, "flag", vec![]);
    assert_eq!((code, text.contains("boolean")), (32, true), "{text}");
    // A transaction left open is rolled back; the call still answers.
    assert_eq!(ok(&mut c, 10, "opentxn", vec![]), arr(vec![1.into()]));
    assert_eq!(
        ok(&mut c, 8, "return box.space.tester:get{77}", vec![]),
        arr(vec![])
    );
    // A setuid function runs as its owner (admin), and only while it runs.
    assert_eq!(ok(&mut c, 10, "who_setuid", vec![]), arr(vec![1.into()]));
    assert_eq!(ok(&mut c, 10, "who", vec![]), arr(vec![0.into()]));
    // A request fiber's storage lives while it runs and goes when it ends.
    assert_eq!(ok(&mut c, 10, "stash", vec![3.into()]), arr(vec![3.into()]));
    assert_eq!(ok(&mut c, 10, "stash", vec![4.into()]), arr(vec![4.into()]));
    assert_eq!(ok(&mut c, 10, "stashes", vec![]), arr(vec![0.into()]));
    // EVAL: arguments, syntax errors.
    assert_eq!(
        ok(&mut c, 8, "return ...", vec![1.into(), "a".into()]),
        arr(vec![1.into(), "a".into()])
    );
    let (code, text) = fails(&mut c, 8, "return (", vec![]);
    assert_eq!(code, 32);
    assert!(text.starts_with("eval:1:"), "{text}");
    // Still one connection, still serving.
    let (status, _, _) = exchange(&mut c, "ce00000006820040010180");
    assert_eq!(status, 0);
}

#[test]
fn a_long_pipeline_of_calls_is_answered_whole_while_others_are_served() {
    use rmpv::Value as V;
    let (_server, address) = start();
    let mut busy = connect(&address);
    // CALLs (both codes) mixed with SELECTs and PINGs: runs of CALLs longer than a reply
    // batch, a pipeline longer than a turn's budget.
    const COUNT: u64 = 3000;
    let mut batch = Vec::new();
    for sync in 0..COUNT {
        let request = match sync % 7 {
            0 => framed(
                1,
                sync,
                V::Map(vec![
                    (0x10.into(), 512.into()),
                    (0x11.into(), 0.into()),
                    (0x12.into(), 1.into()),
                    (0x20.into(), V::Array(vec![1.into()])),
                ]),
            ),
            1 => framed(64, sync, V::Map(vec![])),
            2 => framed(
                6,
                sync,
                V::Map(vec![
                    (0x22.into(), "hello".into()),
                    (0x21.into(), V::Array(vec![sync.into()])),
                ]),
            ),
            _ => framed(
                10,
                sync,
                V::Map(vec![
                    (0x22.into(), "hello".into()),
                    (0x21.into(), V::Array(vec![sync.into()])),
                ]),
            ),
        };
        batch.extend(request);
    }
    busy.write_all(&batch).unwrap();
    // Another client is answered meanwhile.
    let mut other = connect(&address);
    other.write_all(&framed(64, 0x63, V::Map(vec![]))).unwrap();
    let (status, sync, _) = reply(&mut other);
    assert_eq!((status, sync), (0, 0x63));
    let mut seen = vec![false; COUNT as usize];
    for _ in 0..COUNT {
        let (status, sync, body) = reply(&mut busy);
        assert_eq!(status, 0, "request {sync}");
        assert!(
            !std::mem::replace(&mut seen[sync as usize], true),
            "two replies to {sync}"
        );
        let body = rmpv::decode::read_value(&mut &body[..]).unwrap();
        let want = match sync % 7 {
            0 => Some(V::Array(vec![V::Array(vec![
                1.into(),
                "Hello".into(),
                V::Array(vec![2.into(), "x".into(), V::Array(vec![3.into()])]),
                V::Map(vec![("k".into(), "v".into())]),
            ])])),
            1 => None,
            2 => Some(V::Array(vec![
                V::Array(vec![format!("hi {sync}").into()]),
                V::Array(vec![2.into()]),
            ])),
            _ => Some(V::Array(vec![format!("hi {sync}").into(), 2.into()])),
        };
        match want {
            Some(want) => assert_eq!(data(body), want, "request {sync}"),
            None => assert_eq!(body, V::Map(vec![]), "request {sync}"),
        }
    }
}

/// A pipeline of SELECTs, which the server runs in batches with their tree searches
/// together, is answered in order exactly as the same requests sent one at a time:
/// every iterator, offsets and limits, keys present and absent, other indexes and spaces
/// in the middle of a run, and requests that break a run (a malformed body, a stale schema
/// id, a missing space, a PING).
#[test]
fn pipelined_selects_are_answered_as_lone_ones() {
    use rmpv::Value as V;
    let server = Server::start(
        "box.cfg{listen = '127.0.0.1:0', log = 'tarantula.log'}\n\
         box.schema.user.grant('guest', 'read,write,execute', 'universe')\n\
         local t = box.schema.space.create('tree')\n\
         t:create_index('pk')\n\
         t:create_index('by_group', {unique = false, parts = {2, 'unsigned'}})\n\
         local h = box.schema.space.create('hash')\n\
         h:create_index('pk', {type = 'hash'})\n\
         for i = 1, 3000, 3 do t:insert{i, i % 7, 'x'} h:insert{i} end\n\
         io.stdout:write('IPROTO ', box.info.listen, '\\n') io.stdout:flush()\n",
    );
    let address = wait_for("the iproto address", || {
        let line = server.stdout.recv_timeout(Duration::from_secs(10)).ok()?;
        line.strip_prefix("IPROTO ").map(|a| a.trim().to_string())
    });
    let select = |sync: u64, space: u64, index: u64, iterator: u64, key: Vec<V>, offset: u64| {
        let body = V::Map(vec![
            (0x10.into(), space.into()),
            (0x11.into(), index.into()),
            (0x12.into(), 3.into()),
            (0x13.into(), offset.into()),
            (0x14.into(), iterator.into()),
            (0x20.into(), V::Array(key)),
        ]);
        framed(1, sync, body)
    };
    let mut rng = common::Rng::new(17);
    let mut requests = Vec::new();
    for sync in 0..2000u64 {
        let key = rng.below(3100);
        let request = match rng.below(40) {
            0 => framed(64, sync, V::Map(vec![])),
            // No key: a malformed body.
            1 => framed(1, sync, V::Map(vec![(0x10.into(), 512.into())])),
            2 => with_stale_schema(select(sync, 512, 0, 0, vec![key.into()], 0)),
            3 => select(sync, 9999, 0, 0, vec![key.into()], 0),
            4 => select(sync, 513, 0, 0, vec![key.into()], 0),
            5..=7 => select(
                sync,
                512,
                1,
                rng.below(7),
                vec![(key % 8).into()],
                rng.below(3),
            ),
            8 => select(sync, 512, 0, 2, vec![], 0),
            _ => select(sync, 512, 0, rng.below(7), vec![key.into()], rng.below(2)),
        };
        requests.push(request);
    }
    let mut lone = connect(&address);
    let expected = one_at_a_time(&mut lone, &requests);
    // All at once.
    let mut pipelined = connect(&address);
    pipelined.write_all(&requests.concat()).unwrap();
    for (sync, want) in expected.iter().enumerate() {
        let got = reply(&mut pipelined);
        assert_eq!(got, *want, "request {sync}");
        assert_eq!(got.1, sync as u64);
    }
    // The oracle answers what the data says.
    let statuses: Vec<u32> = expected.iter().map(|(status, _, _)| *status).collect();
    assert!(statuses.iter().filter(|&&s| s == 0).count() > 1500);
    assert!(statuses.contains(&0x8024), "no such space"); // ER_NO_SUCH_SPACE
    assert!(statuses.contains(&0x806d), "wrong schema version"); // ER_WRONG_SCHEMA_VERSION
    let tuple = |i: u64| V::Array(vec![i.into(), (i % 7).into(), "x".into()]);
    for (request, want) in [
        (select(1, 512, 0, 0, vec![4.into()], 0), vec![tuple(4)]),
        (select(2, 512, 0, 0, vec![5.into()], 0), vec![]),
        (select(3, 512, 0, 3, vec![5.into()], 1), vec![tuple(1)]),
        (
            select(4, 512, 0, 4, vec![5.into()], 0),
            vec![tuple(4), tuple(1)],
        ),
        (
            select(5, 512, 0, 5, vec![5.into()], 1),
            vec![tuple(10), tuple(13), tuple(16)],
        ),
    ] {
        lone.write_all(&request).unwrap();
        let (status, _, body) = reply(&mut lone);
        assert_eq!(status, 0);
        let body = rmpv::decode::read_value(&mut &body[..]).unwrap();
        assert_eq!(data(body), V::Array(want));
    }
}

/// A pipeline of INSERTs and REPLACEs, which the server runs in batches after starting to
/// load what their primary key searches will touch, gets the replies and leaves the data
/// that the same requests sent one at a time do: keys new and present, duplicate INSERTs,
/// tuples the format refuses, HASH and TREE spaces and spaces changing in a run, and
/// requests that break a run (a space with a Lua trigger, a stale schema id, a malformed
/// body, a missing space, a SELECT, a DELETE). Runs are taken only while other clients have
/// work too, so another connection keeps sending PINGs meanwhile.
#[test]
fn pipelined_writes_are_answered_as_lone_ones() {
    use rmpv::Value as V;
    let setup = "box.cfg{listen = '127.0.0.1:0', log = 'tarantula.log'}\n\
         box.schema.user.grant('guest', 'read,write,execute', 'universe')\n\
         local t = box.schema.space.create('tree', {format = {{'id', 'unsigned'}, {'name', 'string'}}})\n\
         t:create_index('pk')\n\
         t:create_index('by_name', {unique = false, parts = {2, 'string'}})\n\
         local s = box.schema.space.create('strings')\n\
         s:create_index('pk', {parts = {1, 'string'}})\n\
         local h = box.schema.space.create('hash')\n\
         h:create_index('pk', {type = 'hash'})\n\
         local g = box.schema.space.create('triggered')\n\
         g:create_index('pk')\n\
         g:on_replace(function() end)\n\
         for i = 1, 3000, 3 do t:insert{i, 'n' .. i % 7} s:insert{'k' .. i} end\n\
         io.stdout:write('IPROTO ', box.info.listen, '\\n') io.stdout:flush()\n";
    let start = || {
        let server = Server::start(setup);
        let address = wait_for("the iproto address", || {
            let line = server.stdout.recv_timeout(Duration::from_secs(10)).ok()?;
            line.strip_prefix("IPROTO ").map(|a| a.trim().to_string())
        });
        (server, address)
    };
    let write = |kind: u8, sync: u64, space: u64, tuple: Vec<V>| {
        let body = V::Map(vec![
            (0x10.into(), space.into()),
            (0x21.into(), V::Array(tuple)),
        ]);
        framed(kind, sync, body)
    };
    let (insert, replace) = (2, 3);
    let mut rng = common::Rng::new(23);
    let mut requests = Vec::new();
    for sync in 0..3000u64 {
        let key = rng.below(3100);
        let name = V::from(format!("n{}", rng.below(9)));
        let request = match rng.below(60) {
            0 => write(replace, sync, 515, vec![key.into()]),
            1 => write(insert, sync, 512, vec![(-1).into(), name]),
            2 => write(replace, sync, 512, vec![key.into(), 5.into()]),
            3 => write(insert, sync, 9999, vec![key.into()]),
            // No tuple: a malformed body.
            4 => framed(replace, sync, V::Map(vec![(0x10.into(), 512.into())])),
            5 => with_stale_schema(write(replace, sync, 512, vec![key.into(), name])),
            6 => {
                let body = V::Map(vec![
                    (0x10.into(), 512.into()),
                    (0x20.into(), V::Array(vec![key.into()])),
                ]);
                framed(if rng.below(2) == 0 { 1 } else { 5 }, sync, body)
            }
            7..=10 => write(
                rng.below(2) as u8 + 2,
                sync,
                513,
                vec![format!("k{key}").into()],
            ),
            11..=13 => write(replace, sync, 514, vec![key.into(), name]),
            14..=30 => write(insert, sync, 512, vec![key.into(), name]),
            _ => write(replace, sync, 512, vec![key.into(), name]),
        };
        requests.push(request);
    }
    let dump = |stream: &mut TcpStream| -> Vec<(u32, u64, Vec<u8>)> {
        (512..=515u64)
            .map(|space| {
                let body = V::Map(vec![
                    (0x10.into(), space.into()),
                    (0x12.into(), u32::MAX.into()),
                    (0x20.into(), V::Array(vec![])),
                ]);
                stream.write_all(&framed(1, space, body)).unwrap();
                reply(stream)
            })
            .collect()
    };
    let (lone_server, address) = start();
    let mut lone = connect(&address);
    let expected = one_at_a_time(&mut lone, &requests);
    let expected_data = dump(&mut lone);
    drop(lone_server);
    // All at once, with pings from another client meanwhile.
    let (_server, address) = start();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let pinger = {
        let (stop, mut stream) = (stop.clone(), connect(&address));
        std::thread::spawn(move || {
            let pings: Vec<u8> = (0..64)
                .flat_map(|sync| framed(64, sync, V::Map(vec![])))
                .collect();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                stream.write_all(&pings).unwrap();
                for _ in 0..64 {
                    assert_eq!(reply(&mut stream).0, 0);
                }
            }
        })
    };
    let mut pipelined = connect(&address);
    let writer = {
        let (mut stream, bytes) = (pipelined.try_clone().unwrap(), requests.concat());
        std::thread::spawn(move || stream.write_all(&bytes).unwrap())
    };
    // Replies come in order but for the triggered space's, which run in fibers.
    let mut got = std::collections::HashMap::new();
    for _ in 0..requests.len() {
        let answer = reply(&mut pipelined);
        assert!(
            got.insert(answer.1, answer).is_none(),
            "a sync answered twice"
        );
    }
    writer.join().unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    pinger.join().unwrap();
    for (sync, want) in expected.iter().enumerate() {
        assert_eq!(got[&(sync as u64)], *want, "request {sync}");
    }
    assert_eq!(dump(&mut pipelined), expected_data);
    // The oracle answers what the data says.
    let statuses: Vec<u32> = expected.iter().map(|(status, _, _)| *status).collect();
    assert!(statuses.iter().filter(|&&s| s == 0).count() > 1500);
    assert!(statuses.contains(&0x8003), "duplicate key"); // ER_TUPLE_FOUND
    assert!(statuses.contains(&0x8017), "field type"); // ER_FIELD_TYPE
    assert!(statuses.contains(&0x806d), "wrong schema version"); // ER_WRONG_SCHEMA_VERSION
    assert!(statuses.contains(&0x8024), "no such space"); // ER_NO_SUCH_SPACE
}
