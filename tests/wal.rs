//! Durability: what is written to the WAL comes back after a restart; a failed write is
//! rolled back and reported while the server goes on; a damaged xlog tail is refused, or
//! skipped with force_recovery; a server killed under write load keeps every acknowledged
//! write and no half of a transaction.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{Instance, TempDir, start_fails, wait_for};

const SCHEMA: &str = "if box.space.items == nil then\n\
    local s = box.schema.space.create('items')\n\
    s:create_index('pk')\n\
    s:create_index('name', {parts = {2, 'str'}})\n\
    box.schema.user.create('alice', {password = 'secret'})\n\
    box.schema.user.grant('alice', 'read', 'space', 'items')\n\
    box.schema.user.grant('guest', 'read,write,execute', 'universe')\n\
    end";

fn xlogs(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".xlog"))
        .collect();
    names.sort();
    names
}

#[test]
fn data_schema_users_and_grants_come_back() {
    let dir = TempDir::new("wal-restart");
    let first = Instance::start(dir.path(), "rows_per_wal = 10", SCHEMA);
    let mut c = first.console();
    c.eval("for i = 1, 95 do box.space.items:insert{i, 'n' .. i} end");
    c.eval("box.space.items:update({5}, {{'=', 2, 'five'}}) box.space.items:delete{6}");
    c.eval("box.space.items:replace{7, 'seven'}");
    first.stop();
    assert!(xlogs(dir.path()).len() > 5, "{:?}", xlogs(dir.path()));
    let second = Instance::start(dir.path(), "rows_per_wal = 10", SCHEMA);
    let mut c = second.console();
    assert_eq!(
        c.eval("return box.space.items:len(), box.space.items:get{5}, box.space.items:get{6}, box.space.items.index.name:get{'seven'}"),
        "---\n- 94\n- [5, 'five']\n- null\n- [7, 'seven']\n...\n"
    );
    assert_eq!(
        c.eval("local read = false for _, g in ipairs(box.schema.user.info('alice')) do read = read or (g[1] == 'read' and g[3] == 'items') end return read, box.space.items.index.name.id"),
        "---\n- true\n- 1\n...\n"
    );
    // The LSN goes on from where it was.
    let lsn = c.value("return box.info.lsn").parse::<i64>().unwrap();
    assert!(lsn > 100, "{lsn}");
    c.eval("box.space.items:insert{1000, 'more'}");
    second.stop();
    let third = Instance::start(dir.path(), "", "");
    assert_eq!(
        third
            .console()
            .eval("return box.space.items:len(), box.info.lsn"),
        format!("---\n- 95\n- {}\n...\n", lsn + 1)
    );
}

#[test]
fn a_stale_xlog_inprogress_of_a_crash_does_not_stop_writes() {
    let dir = TempDir::new("wal-stale");
    let first = Instance::start(dir.path(), "", SCHEMA);
    let mut c = first.console();
    c.eval("box.space.items:insert{1, 'one'}");
    let signature = c.value("return box.info.signature").parse::<i64>().unwrap();
    drop(c);
    first.kill();
    // A crash between the next xlog's creation and its rename leaves it half made, under
    // the name the restarted server's first xlog takes.
    let stale = dir.path().join(format!("{signature:020}.xlog.inprogress"));
    std::fs::write(&stale, b"XLOG\n0.12").unwrap();
    let second = Instance::start(dir.path(), "", SCHEMA);
    let mut c = second.console();
    assert_eq!(
        c.eval("box.space.items:insert{2, 'two'} return box.space.items:len()"),
        "---\n- 2\n...\n"
    );
    assert!(!stale.exists());
    drop(c);
    second.stop();
    let third = Instance::start(dir.path(), "", "");
    assert_eq!(
        third.console().eval("return box.space.items:len()"),
        "---\n- 2\n...\n"
    );
}

#[test]
fn a_failed_write_rolls_back_and_the_server_goes_on() {
    let dir = TempDir::new("wal-errinj");
    let server = Instance::start(dir.path(), "", SCHEMA);
    let mut c = server.console();
    c.eval("box.space.items:insert{1, 'one'}");
    c.eval("box.error.injection.set('ERRINJ_WAL_IO', true)");
    assert_eq!(
        c.eval("local ok, e = pcall(box.space.items.insert, box.space.items, {2, 'two'}) return ok, e.code, e.message"),
        "---\n- false\n- 40\n- Failed to write to disk\n...\n"
    );
    assert_eq!(
        c.eval("return box.space.items:get{2} == nil"),
        "---\n- true\n...\n"
    );
    // The binary protocol gets the error reply, with its sync.
    let mut client = connect(&server.iproto);
    let (status, sync) = replace(&mut client, 9, 3);
    assert_eq!((status, sync), (0x8000 | 40, 9));
    c.eval("box.error.injection.set('ERRINJ_WAL_IO', false)");
    // A write that stops half way is cut back to the last whole batch.
    c.eval("box.error.injection.set('ERRINJ_WAL_WRITE_PARTIAL', 10)");
    assert_eq!(
        c.eval("local ok, e = pcall(box.space.items.insert, box.space.items, {4, 'four'}) return ok, e.code"),
        "---\n- false\n- 40\n...\n"
    );
    assert_eq!(replace(&mut client, 10, 5), (0, 10));
    assert_eq!(
        c.eval("return box.space.items:insert{6, 'six'}"),
        "---\n- [6, 'six']\n...\n"
    );
    server.stop();
    let again = Instance::start(dir.path(), "", "");
    assert_eq!(
        again.console().eval("return box.space.items:select{}"),
        "---\n- - [1, 'one']\n  - [5, 'x']\n  - [6, 'six']\n...\n"
    );
}

#[test]
fn a_damaged_xlog_tail_is_refused_or_skipped() {
    let dir = TempDir::new("wal-damage");
    let server = Instance::start(dir.path(), "", SCHEMA);
    let mut c = server.console();
    c.eval("for i = 1, 20 do box.space.items:insert{i, 'n' .. i} end");
    server.kill();
    let names = xlogs(dir.path());
    let last = dir.path().join(names.last().unwrap());
    let size = std::fs::metadata(&last).unwrap().len();
    // Cut the last row in half.
    let file = std::fs::OpenOptions::new().write(true).open(&last).unwrap();
    file.set_len(size - 7).unwrap();
    let log = start_fails(dir.path(), "");
    assert!(log.contains(names.last().unwrap()), "{log}");
    assert!(log.contains("offset"), "{log}");
    let server = Instance::start(dir.path(), "force_recovery = true", "");
    assert_eq!(
        server
            .console()
            .eval("return box.space.items:len(), box.space.items:get{19}"),
        "---\n- 19\n- [19, 'n19']\n...\n"
    );
}

// {{{ the binary protocol, as little as the tests need

fn connect(address: &str) -> TcpStream {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut greeting = [0u8; 128];
    stream.read_exact(&mut greeting).unwrap();
    stream
}

fn frame(kind: u8, sync: u64, body: rmpv::Value) -> Vec<u8> {
    let header = rmpv::Value::Map(vec![(0.into(), kind.into()), (1.into(), sync.into())]);
    let mut packet = Vec::new();
    rmpv::encode::write_value(&mut packet, &header).unwrap();
    rmpv::encode::write_value(&mut packet, &body).unwrap();
    let mut out = vec![0xce];
    out.extend_from_slice(&(packet.len() as u32).to_be_bytes());
    out.extend_from_slice(&packet);
    out
}

/// Read one reply: (status, sync).
fn read_reply(stream: &mut TcpStream) -> std::io::Result<(u32, u64)> {
    let mut prefix = [0u8; 5];
    stream.read_exact(&mut prefix)?;
    let len = u32::from_be_bytes(prefix[1..].try_into().unwrap()) as usize;
    let mut packet = vec![0u8; len];
    stream.read_exact(&mut packet)?;
    let header = rmpv::decode::read_value(&mut &packet[..]).unwrap();
    let field = |key: u64| {
        header
            .as_map()
            .unwrap()
            .iter()
            .find(|(k, _)| k.as_u64() == Some(key))
            .and_then(|(_, v)| v.as_u64())
            .unwrap()
    };
    Ok((field(0) as u32, field(1)))
}

/// REPLACE {key, 'x'} into `items` (id 512).
fn replace(stream: &mut TcpStream, sync: u64, key: u64) -> (u32, u64) {
    let body = rmpv::Value::Map(vec![
        (0x10.into(), 512.into()),
        (
            0x21.into(),
            rmpv::Value::Array(vec![key.into(), "x".into()]),
        ),
    ]);
    stream.write_all(&frame(3, sync, body)).unwrap();
    read_reply(stream).unwrap()
}

// }}}

/// Clients pipelining CALL pair(k) (a transaction of two inserts) until the server dies;
/// returns the keys acknowledged.
fn load(
    address: &str,
    clients: u64,
    base: u64,
    stop: &Arc<AtomicBool>,
) -> Vec<std::thread::JoinHandle<Vec<u64>>> {
    (0..clients)
        .map(|client| {
            let address = address.to_string();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut acked = Vec::new();
                let Ok(mut stream) = TcpStream::connect(&address) else {
                    return acked;
                };
                stream
                    .set_read_timeout(Some(Duration::from_secs(5)))
                    .unwrap();
                let mut greeting = [0u8; 128];
                if stream.read_exact(&mut greeting).is_err() {
                    return acked;
                }
                let mut next = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    // Eight in flight, each key unique to this client.
                    let mut sent = Vec::new();
                    for _ in 0..8 {
                        next += 1;
                        let key = base + client * 10_000_000 + next;
                        let body = rmpv::Value::Map(vec![
                            (0x22.into(), "pair".into()),
                            (0x21.into(), rmpv::Value::Array(vec![key.into()])),
                        ]);
                        if stream.write_all(&frame(10, key, body)).is_err() {
                            return acked;
                        }
                        sent.push(key);
                    }
                    for _ in &sent {
                        match read_reply(&mut stream) {
                            Ok((0, sync)) => acked.push(sync),
                            Ok(_) => {}
                            Err(_) => return acked,
                        }
                    }
                }
                acked
            })
        })
        .collect()
}

const PAIRS: &str = "if box.space.a == nil then\n\
    box.schema.space.create('a'):create_index('pk')\n\
    box.schema.space.create('b'):create_index('pk')\n\
    box.schema.user.grant('guest', 'read,write,execute', 'universe')\n\
    end\n\
    function pair(k) box.begin() box.space.a:insert{k, 'a'} box.space.b:insert{k, 'b'} box.commit() return k end";

fn crash_rounds(mode: &str, rounds: u32) {
    let dir = TempDir::new(&format!("wal-crash-{mode}"));
    let cfg = format!("wal_mode = '{mode}', rows_per_wal = 2000");
    let mut acked_all: Vec<u64> = Vec::new();
    let mut seed = 0x9e37_79b9_u64 ^ u64::from(std::process::id());
    for round in 0..rounds {
        // Keys of each round differ.
        let base = (u64::from(round) + 1) * 100_000_000;
        let server = Instance::start(dir.path(), &cfg, PAIRS);
        let stop = Arc::new(AtomicBool::new(false));
        let clients = load(&server.iproto, 3, base, &stop);
        // Kill at a random moment 50..350 ms into the load.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(50 + seed % 300));
        let mut child = server;
        let _ = child.child.kill();
        let _ = child.child.wait();
        stop.store(true, Ordering::Relaxed);
        for client in clients {
            acked_all.extend(client.join().unwrap());
        }
        drop(child);
    }
    assert!(!acked_all.is_empty(), "no write was acknowledged");
    eprintln!(
        "{mode}: {} acknowledged writes over {rounds} kills",
        acked_all.len()
    );
    let server = Instance::start(dir.path(), &cfg, PAIRS);
    let mut c = server.console();
    // Every acknowledged pair is there, and every pair is whole.
    let reply = c.eval(
        "local a, b = {}, {} for _, t in box.space.a:pairs() do a[t[1]] = true end \
         for _, t in box.space.b:pairs() do b[t[1]] = true end \
         local half = 0 for k in pairs(a) do if not b[k] then half = half + 1 end end \
         for k in pairs(b) do if not a[k] then half = half + 1 end end \
         return half, box.space.a:len()",
    );
    let mut lines = reply.lines().skip(1);
    let half: u64 = lines
        .next()
        .unwrap()
        .trim_start_matches("- ")
        .parse()
        .unwrap();
    let count: usize = lines
        .next()
        .unwrap()
        .trim_start_matches("- ")
        .parse()
        .unwrap();
    assert_eq!(half, 0, "half-done transactions");
    assert!(
        count >= acked_all.len(),
        "{count} rows for {} acknowledged",
        acked_all.len()
    );
    for chunk in acked_all.chunks(500) {
        let keys: Vec<String> = chunk.iter().map(u64::to_string).collect();
        let reply = c.eval(&format!(
            "local missing = 0 for _, k in ipairs({{{}}}) do if box.space.a:get{{k}} == nil then missing = missing + 1 end end return missing",
            keys.join(",")
        ));
        assert_eq!(reply, "---\n- 0\n...\n", "acknowledged writes lost");
    }
}

#[test]
fn a_kill_under_load_loses_no_acknowledged_write_fsync() {
    crash_rounds("fsync", 3);
}

#[test]
fn a_kill_under_load_loses_no_acknowledged_write_write() {
    crash_rounds("write", 3);
}

#[test]
fn two_servers_never_share_a_data_directory() {
    let dir = TempDir::new("wal-lock");
    let first = Instance::start(dir.path(), "", "");
    let log = start_fails(dir.path(), "");
    assert!(log.contains("another server uses it"), "{log}");
    first.stop();
    // Free again once the first is gone.
    let second = Instance::start(dir.path(), "", "");
    second.stop();
}

#[test]
fn a_slow_wal_write_is_logged_and_others_go_on() {
    let dir = TempDir::new("wal-slow");
    let server = Instance::start(dir.path(), "too_long_threshold = 0.05", SCHEMA);
    let mut c = server.console();
    c.eval("box.error.injection.set('ERRINJ_WAL_DELAY', 0.2)");
    // A reader is not held up by a write waiting for the WAL.
    c.eval(
        "f = require('fiber').create(function() box.space.items:insert{1, 'slow'} done = true end)",
    );
    assert_eq!(
        c.eval("return done, box.space.items:get{1}"),
        "---\n- null\n- [1, 'slow']\n...\n"
    );
    wait_for("the slow write", || {
        (c.eval("return done") == "---\n- true\n...\n").then_some(())
    });
    c.eval("box.error.injection.set('ERRINJ_WAL_DELAY', 0)");
    let log = std::fs::read_to_string(dir.path().join("tarantula.log")).unwrap();
    assert!(log.contains("too long WAL write"), "{log}");
}
