//! Replication, master and replica (`../shared/seed/replication.rst`, PROTOCOL.md §7): the
//! manual's quick startup and tutorial with two processes, a join under write load, DDL and
//! users, a master that restarts, a link cut under load, re-seeding, refused replicas and
//! `read_only`.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use common::{Console, Instance, TempDir, log_of, start_fails, wait_for};

/// The master of the tutorial: a user for replication with read and write on the universe.
const MASTER_SETUP: &str = "box.once('users', function()\n\
    box.schema.user.create('replicator', {password = 'password'})\n\
    box.schema.user.grant('replicator', 'read,write', 'universe')\n\
    end)";

fn source(master: &Instance) -> String {
    format!(
        "replication_source = 'replicator:password@{}'",
        master.iproto
    )
}

/// Evaluate until the reply contains `expected`.
fn wait_eval(console: &mut Console, statement: &str, expected: &str) -> String {
    let mut last = String::new();
    let what = format!("`{statement}` to show `{expected}`");
    let found = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_for(&what, || {
            last = console.eval(statement);
            last.contains(expected).then(|| last.clone())
        })
    }));
    match found {
        Ok(reply) => reply,
        Err(_) => panic!("timed out waiting for {what}; last reply:\n{last}"),
    }
}

#[test]
fn quick_startup_and_the_tutorial_up_to_the_masters_restart() {
    let master_dir = TempDir::new("repl-master");
    let replica_dir = TempDir::new("repl-replica");
    let master = Instance::start(master_dir.path(), "", MASTER_SETUP);
    let mut m = master.console();
    let replica = Instance::start(replica_dir.path(), &source(&master), "");
    let mut r = replica.console();

    // Both know both servers, and agree on the cluster.
    let cluster = "box.space._cluster:select({0}, {iterator = 'GE'})";
    let on_master = wait_eval(&mut m, cluster, "- [2, ");
    assert_eq!(r.eval(cluster), on_master);
    assert_eq!(
        r.eval("box.info.cluster.uuid"),
        m.eval("box.info.cluster.uuid")
    );
    assert_eq!(r.eval("box.info.server.id"), "---\n- 2\n...\n");
    assert!(r.eval("box.info.server.ro").contains("false"));

    // The tutorial: a space and a tuple on the master reach the replica.
    m.eval("s = box.schema.space.create('tester')");
    m.eval("i = s:create_index('primary', {})");
    m.eval("s:insert{1, 'Tuple inserted on Terminal #1'}");
    wait_eval(
        &mut r,
        "box.space.tester ~= nil and box.space.tester:select({0}, {iterator = 'GE'})",
        "- - [1, 'Tuple inserted on Terminal #1']",
    );
    // A write on the replica gets the replica's own id.
    r.eval("box.space.tester:insert{2, 'Tuple inserted on Terminal #2'}");
    let vclock = r.eval("box.info.vclock");
    assert!(vclock.contains("2: 1"), "{vclock}");

    // Monitoring: 1.6's fields and the per-server table.
    let status = wait_eval(&mut r, "box.info.replication.status", "follow");
    assert!(status.contains("follow"));
    let upstream = r.eval("box.info.replication[1].upstream");
    assert!(upstream.contains("status: follow"), "{upstream}");
    assert!(
        upstream.contains("peer: replicator@127.0.0.1:"),
        "{upstream}"
    );
    assert!(!upstream.contains("password"), "{upstream}");
    let idle = r.eval("box.info.replication.idle < 5 and box.info.replication.lag < 5");
    assert!(idle.contains("true"), "{idle}");
    wait_eval(
        &mut m,
        "box.info.replication[2].downstream.status",
        "follow",
    );
    assert!(log_of(master_dir.path()).contains("relay"));
    assert!(log_of(replica_dir.path()).contains("subscribed"));

    // The master stops: the replica says so, and serves and writes meanwhile.
    let address = master.iproto.clone();
    master.stop();
    wait_eval(&mut r, "box.info.replication.status", "disconnected");
    r.eval("box.space.tester:insert{3, 'Another'}");
    assert!(r.eval("box.info.status").contains("running"));

    // The master comes back (same port): the replica follows it again.
    let master = Instance::start_at(master_dir.path(), &address, "", MASTER_SETUP);
    let mut m = master.console();
    wait_eval(&mut r, "box.info.replication.status", "follow");
    m.eval("box.space.tester:insert{4, 'after the restart'}");
    wait_eval(
        &mut r,
        "box.space.tester:get{4}",
        "[4, 'after the restart']",
    );
    assert!(
        log_of(replica_dir.path()).contains("will retry every 1.00 second"),
        "{}",
        log_of(replica_dir.path())
    );
}

/// A digest of a space the console can print: count and the sum of first fields.
const DIGEST: &str = "(function() local n, sum = 0, 0 \
    for _, t in box.space.items:pairs() do n = n + 1 sum = sum + t[1] end \
    return n .. ':' .. sum end)()";

/// 100,000 rows in `items`, written in transactions of 1,000.
const ITEMS_SETUP: &str = "box.once('items', function()\n\
    local s = box.schema.space.create('items')\n\
    s:create_index('pk')\n\
    for batch = 0, 99 do\n\
        box.begin()\n\
        for i = 1, 1000 do s:insert{batch * 1000 + i, 'row'} end\n\
        box.commit()\n\
    end\n\
    end)";

/// An empty space `t` with a primary key.
const SPACE_T: &str =
    "box.once('space', function() box.schema.space.create('t'):create_index('pk') end)";

/// A master holding `items` (and the replicator user) and a new replica of it, each in a
/// directory of its own (named after `tag`).
fn pair(tag: &str) -> (TempDir, TempDir, Instance, Instance) {
    pair_with(tag, "", ITEMS_SETUP)
}

/// A master (options `cfg`, the replicator user, then `setup`) and a new replica of it.
fn pair_with(tag: &str, cfg: &str, setup: &str) -> (TempDir, TempDir, Instance, Instance) {
    let master_dir = TempDir::new(&format!("{tag}-master"));
    let replica_dir = TempDir::new(&format!("{tag}-replica"));
    let setup = format!("{MASTER_SETUP}\n{setup}");
    let master = Instance::start(master_dir.path(), cfg, &setup);
    let replica = Instance::start(replica_dir.path(), &source(&master), "");
    (master_dir, replica_dir, master, replica)
}

/// A fiber on the master inserting ids from `start` until `writer_stop` is set.
fn start_writer(console: &mut Console, start: u64) {
    console.eval(&format!(
        "writer_stop = false writer_done = false writer_next = {start} \
         require('fiber').create(function() \
         while not writer_stop do box.space.items:insert{{writer_next, 'live'}} \
         writer_next = writer_next + 1 end writer_done = true end)"
    ));
}

/// Stop the writer fiber and wait until it has made its last insert.
fn stop_writer(console: &mut Console) {
    console.eval("writer_stop = true");
    wait_eval(console, "writer_done", "true");
}

/// Wait until the replica has every row of the master (a cheap poll of the vclock), then
/// check that their items are the same.
fn wait_same_items(master: &mut Console, replica: &mut Console) {
    let lsn = master.eval("box.info.vclock[1]");
    wait_eval(replica, "box.info.vclock[1]", &lsn);
    assert_eq!(replica.eval(DIGEST), master.eval(DIGEST));
}

/// A master with `cfg` holding `items`, a writer fiber on it, and a new replica joining
/// meanwhile; once `writes` more rows are in, the writer stops and the replica has every
/// row. Returns the two consoles (and what keeps the servers and their files).
fn join_while_writing(
    tag: &str,
    cfg: &str,
    writes: u64,
) -> (Console, Console, (Instance, Instance, TempDir, TempDir)) {
    let master_dir = TempDir::new(&format!("{tag}-master"));
    let replica_dir = TempDir::new(&format!("{tag}-replica"));
    let setup = format!("{MASTER_SETUP}\n{ITEMS_SETUP}");
    let master = Instance::start(master_dir.path(), cfg, &setup);
    let mut m = master.console();
    start_writer(&mut m, 1_000_000);
    let replica = Instance::start(replica_dir.path(), &source(&master), "");
    let mut r = replica.console();
    // Writes go on after the join too, then stop.
    wait_eval(
        &mut m,
        &format!("writer_next > {}", 1_000_000 + writes),
        "true",
    );
    stop_writer(&mut m);
    wait_same_items(&mut m, &mut r);
    // Fields drop in order: the servers stop before their directories go.
    (m, r, (master, replica, master_dir, replica_dir))
}

#[test]
fn a_replica_joins_a_master_with_100000_rows_while_writes_go_on() {
    let (mut m, mut r, _servers) = join_while_writing("repl-join", "", 200);
    let replica_vclock = r.eval("box.info.vclock[1]");
    assert_eq!(replica_vclock, m.eval("box.info.vclock[1]"));
}

#[test]
fn ddl_users_and_grants_are_replicated() {
    let master_dir = TempDir::new("repl-ddl-master");
    let replica_dir = TempDir::new("repl-ddl-replica");
    let master = Instance::start(master_dir.path(), "", MASTER_SETUP);
    let mut m = master.console();
    let replica = Instance::start(replica_dir.path(), &source(&master), "");
    let mut r = replica.console();
    m.eval("s = box.schema.space.create('ddl')");
    m.eval("s:create_index('pk')");
    m.eval("s:create_index('name', {parts = {2, 'str'}})");
    m.eval("s:insert{1, 'one'} s:insert{2, 'two'}");
    m.eval("box.schema.user.create('bob', {password = 'secret'})");
    m.eval("box.schema.user.grant('bob', 'read', 'space', 'ddl')");
    m.eval("box.schema.func.create('f')");
    wait_eval(
        &mut r,
        "box.space.ddl ~= nil and box.space.ddl.index.name:select{'two'}",
        "- - [2, 'two']",
    );
    // The same rows, byte for byte (YAML would show maps in each process's hash order).
    for system in ["_space", "_index", "_user", "_priv", "_func"] {
        let select = format!(
            "require('digest').sha1_hex(require('msgpack').encode(box.space.{system}:select{{}}))"
        );
        wait_eval(&mut r, &select, &m.eval(&select));
    }
    // A dropped index and space follow too.
    m.eval("box.space.ddl.index.name:drop()");
    wait_eval(&mut r, "box.space.ddl.index.name == nil", "true");
    m.eval("box.space.ddl:drop()");
    wait_eval(&mut r, "box.space.ddl == nil", "true");
}

#[test]
fn snapshots_taken_while_a_replica_joins_keep_what_it_subscribes_from() {
    // Writes go on while the replica loads the read view and writes its first snapshot,
    // and the master snapshots and removes old xlogs every 10 ms.
    let cfg = "rows_per_wal = 50, snapshot_count = 1, snapshot_period = 0.01";
    let (_m, mut r, _servers) = join_while_writing("repl-join-gc", cfg, 500);
    assert!(r.eval("box.info.replication.status").contains("follow"));
}

#[test]
fn guest_and_wrong_password_replicas_are_refused() {
    let master_dir = TempDir::new("repl-refuse-master");
    let master = Instance::start(master_dir.path(), "", MASTER_SETUP);
    // A new replica of `source` that must fail to start: its log.
    let refused = |tag: &str, source: &str| {
        let dir = TempDir::new(tag);
        start_fails(
            dir.path(),
            &format!("replication_source = '{source}', replication_connect_timeout = 1"),
        )
    };
    let log = refused("repl-refuse-guest", &master.iproto);
    assert!(log.contains("denied for user 'guest'"), "{log}");
    let log = refused(
        "repl-refuse-wrong",
        &format!("replicator:wrong@{}", master.iproto),
    );
    assert!(
        log.contains("Incorrect password supplied for user 'replicator'"),
        "{log}"
    );
    assert!(!log.contains(":wrong@"), "{log}");
    // A user with only the default privileges may not join.
    let mut m = master.console();
    m.eval("box.schema.user.create('weak', {password = 'weak'})");
    let log = refused("repl-refuse-weak", &format!("weak:weak@{}", master.iproto));
    assert!(log.contains("denied for user 'weak'"), "{log}");
    // A master nobody answers at: box.cfg gives up after replication_connect_timeout.
    let log = refused("repl-refuse-absent", &format!("127.0.0.1:{}", free_port()));
    assert!(log.contains("can't join the master"), "{log}");
    // Nobody was registered.
    let cluster = m.eval("box.space._cluster:count()");
    assert_eq!(cluster, "---\n- 1\n...\n");
    // The replication role is enough.
    m.eval("box.schema.user.create('roled', {password = 'roled'})");
    m.eval("box.schema.user.grant('roled', 'replication')");
    let roled_dir = TempDir::new("repl-refuse-roled");
    let replica = Instance::start(
        roled_dir.path(),
        &format!("replication_source = 'roled:roled@{}'", master.iproto),
        "",
    );
    let mut r = replica.console();
    wait_eval(&mut r, "box.info.replication.status", "follow");
    assert_eq!(m.eval("box.space._cluster:count()"), "---\n- 2\n...\n");
}

#[test]
fn a_read_only_replica_refuses_writes_and_applies_its_masters() {
    let master_dir = TempDir::new("repl-ro-master");
    let replica_dir = TempDir::new("repl-ro-replica");
    let master = Instance::start(
        master_dir.path(),
        "",
        &format!("{MASTER_SETUP}\n{ITEMS_SETUP}"),
    );
    let mut m = master.console();
    let replica = Instance::start(
        replica_dir.path(),
        &format!("{}, read_only = true", source(&master)),
        "",
    );
    let mut r = replica.console();
    let refused = r.eval("box.space.items:insert{0, 'local'}");
    assert!(
        refused.contains("Can't modify data because this server is in read-only mode."),
        "{refused}"
    );
    m.eval("box.space.items:insert{0, 'from the master'}");
    wait_eval(&mut r, "box.space.items:get{0}", "[0, 'from the master']");
    assert!(r.eval("box.info.server.ro").contains("true"));
}

#[test]
fn a_replicas_on_replace_triggers_see_replicated_rows_and_may_refuse_them() {
    let (_master_dir, _replica_dir, master, replica) = pair_with("repl-trigger", "", SPACE_T);
    let (mut m, mut r) = (master.console(), replica.console());
    wait_eval(&mut r, "box.space.t ~= nil", "true");
    r.eval(
        "seen = {} allow = false \
         box.space.t:on_replace(function(old, new) \
         if new ~= nil and new[2] == 'refused' and not allow then error('not on this replica') end \
         table.insert(seen, new ~= nil and new[1] or -old[1]) end)",
    );
    for change in ["insert{1, 'a'}", "replace{1, 'b'}", "delete{1}"] {
        m.eval(&format!("box.space.t:{change}"));
    }
    m.eval("box.space.t:insert{2, 'refused'}");
    m.eval("box.space.t:insert{3, 'after'}");
    // The refused row stops replication, named in the message, and is not applied.
    wait_eval(&mut r, "box.info.replication.status", "stopped");
    let message = r.eval("box.info.replication.message");
    for part in ["not on this replica", "row of server 1", "INSERT [2"] {
        let found = r.eval(&format!(
            "box.info.replication.message:find({part:?}, 1, true) ~= nil"
        ));
        assert!(found.contains("true"), "{part} not in {message}");
    }
    assert_eq!(r.eval("seen"), "---\n- - 1\n  - 1\n  - -1\n...\n");
    assert_eq!(r.eval("box.space.t:get{2} == nil"), "---\n- true\n...\n");
    // Allowed and restarted, the rest is applied and seen.
    r.eval("allow = true");
    r.eval(&format!("box.cfg{{{}}}", source(&master)));
    wait_eval(&mut r, "box.space.t:get{3}", "[3, 'after']");
    assert_eq!(
        r.eval("seen"),
        "---\n- - 1\n  - 1\n  - -1\n  - 2\n  - 3\n...\n"
    );
    wait_eval(&mut r, "box.info.replication.status", "follow");
}

#[test]
fn a_master_killed_and_restarted_is_followed_again() {
    let (master_dir, _replica_dir, master, replica) = pair("repl-kill");
    let address = master.iproto.clone();
    let (mut m, mut r) = (master.console(), replica.console());
    start_writer(&mut m, 1_000_000);
    wait_eval(&mut m, "writer_next > 1000100", "true");
    drop(m);
    master.kill();
    wait_eval(&mut r, "box.info.replication.status", "disconnected");
    let setup = format!("{MASTER_SETUP}\n{ITEMS_SETUP}");
    let master = Instance::start_at(master_dir.path(), &address, "", &setup);
    let mut m = master.console();
    wait_eval(&mut r, "box.info.replication.status", "follow");
    start_writer(&mut m, 2_000_000);
    wait_eval(&mut m, "writer_next > 2000100", "true");
    stop_writer(&mut m);
    wait_same_items(&mut m, &mut r);
}

/// A TCP proxy whose connections the test can cut.
struct Proxy {
    address: String,
    connections: Arc<Mutex<Vec<TcpStream>>>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    fn start(target: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let connections = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (list, stopped) = (connections.clone(), stop.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stopped.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(&target) else {
                    continue;
                };
                list.lock().unwrap().push(client.try_clone().unwrap());
                list.lock().unwrap().push(server.try_clone().unwrap());
                pump(client.try_clone().unwrap(), server.try_clone().unwrap());
                pump(server, client);
            }
        });
        Proxy {
            address,
            connections,
            stop,
        }
    }

    /// Close every connection through the proxy (new ones are accepted).
    fn cut(&self) {
        for stream in self.connections.lock().unwrap().drain(..) {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.cut();
        let _ = TcpStream::connect(&self.address);
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let mut buffer = [0u8; 65536];
        loop {
            match from.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(count) => {
                    if to.write_all(&buffer[..count]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(std::net::Shutdown::Both);
    });
}

#[test]
fn a_link_cut_under_load_is_restored_without_loss_or_doubling() {
    let master_dir = TempDir::new("repl-cut-master");
    let replica_dir = TempDir::new("repl-cut-replica");
    let setup = format!("{MASTER_SETUP}\n{ITEMS_SETUP}");
    let master = Instance::start(master_dir.path(), "", &setup);
    let mut m = master.console();
    let proxy = Proxy::start(master.iproto.clone());
    let replica = Instance::start(
        replica_dir.path(),
        &format!(
            "replication_source = 'replicator:password@{}'",
            proxy.address
        ),
        "",
    );
    let mut r = replica.console();
    start_writer(&mut m, 1_000_000);
    for round in 1..=3u64 {
        wait_eval(&mut r, "box.info.replication.status", "follow");
        wait_eval(
            &mut r,
            &format!("box.space.items:get{{{}}} ~= nil", 1_000_000 + round * 100),
            "true",
        );
        proxy.cut();
        wait_eval(&mut r, "box.info.replication.status", "disconnected");
    }
    wait_eval(&mut r, "box.info.replication.status", "follow");
    stop_writer(&mut m);
    wait_same_items(&mut m, &mut r);
    assert_eq!(r.eval("box.info.vclock[1]"), m.eval("box.info.vclock[1]"));
}

#[test]
fn a_replica_reseeded_from_scratch_catches_up() {
    let (_master_dir, replica_dir, master, replica) = pair("repl-reseed");
    let mut m = master.console();
    let mut r = replica.console();
    wait_same_items(&mut m, &mut r);
    drop(r);
    replica.stop();
    // The master shows the replica gone, and why.
    wait_eval(
        &mut m,
        "box.info.replication[2].downstream.status",
        "stopped",
    );
    let downstream = m.eval("box.info.replication[2].downstream.message");
    assert!(downstream.contains("closed"), "{downstream}");
    m.eval("for i = 200001, 200100 do box.space.items:insert{i, 'meanwhile'} end");
    for entry in std::fs::read_dir(replica_dir.path()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name.ends_with(".snap") || name.ends_with(".xlog") {
            std::fs::remove_file(path).unwrap();
        }
    }
    let replica = Instance::start(replica_dir.path(), &source(&master), "");
    let mut r = replica.console();
    wait_same_items(&mut m, &mut r);
    // A new instance: a new UUID and the next id.
    assert_eq!(r.eval("box.info.server.id"), "---\n- 3\n...\n");
    assert_eq!(m.eval("box.space._cluster:count()"), "---\n- 3\n...\n");
}

#[test]
fn replication_source_set_at_run_time_stops_and_restarts_the_applier() {
    let (_master_dir, _replica_dir, master, replica) = pair("repl-runtime");
    let mut m = master.console();
    let mut r = replica.console();
    wait_eval(&mut r, "box.info.replication.status", "follow");
    // Taken out: nothing more arrives.
    r.eval("box.cfg{replication_source = ''}");
    wait_eval(&mut r, "box.info.replication.status", "off");
    m.eval("box.space.items:insert{0, 'while out'}");
    assert_eq!(r.eval("box.space.items:get{0}"), "---\n...\n");
    // Back in (a table of one source, under the later name): it catches up.
    r.eval(&format!(
        "box.cfg{{replication = {{'replicator:password@{}'}}}}",
        master.iproto
    ));
    wait_eval(&mut r, "box.space.items:get{0}", "[0, 'while out']");
    assert!(r.eval("box.info.replication.status").contains("follow"));
}

#[test]
fn heartbeats_keep_idle_small_on_a_quiet_link() {
    let master_dir = TempDir::new("repl-idle-master");
    let replica_dir = TempDir::new("repl-idle-replica");
    let master = Instance::start(master_dir.path(), "replication_timeout = 0.2", MASTER_SETUP);
    let replica = Instance::start(
        replica_dir.path(),
        &format!("{}, replication_timeout = 0.2", source(&master)),
        "",
    );
    let mut r = replica.console();
    wait_eval(&mut r, "box.info.replication.status", "follow");
    // Nothing is written for a second: heartbeats still come every 0.2 s.
    let idle = r.eval("require('fiber').sleep(1) return box.info.replication.idle < 0.6");
    assert!(idle.contains("true"), "{idle}");
    assert!(r.eval("box.info.replication.status").contains("follow"));
}

#[test]
fn a_replica_of_another_cluster_is_refused() {
    let first_dir = TempDir::new("repl-uuid-first");
    let other_dir = TempDir::new("repl-uuid-other");
    let replica_dir = TempDir::new("repl-uuid-replica");
    let first = Instance::start(first_dir.path(), "", MASTER_SETUP);
    let other = Instance::start(other_dir.path(), "", MASTER_SETUP);
    let replica = Instance::start(replica_dir.path(), &source(&first), "");
    let mut r = replica.console();
    wait_eval(&mut r, "box.info.replication.status", "follow");
    r.eval(&format!(
        "box.cfg{{replication_source = 'replicator:password@{}'}}",
        other.iproto
    ));
    wait_eval(&mut r, "box.info.replication.status", "stopped");
    let message = r.eval("box.info.replication.message");
    assert!(message.contains("Cluster id of the replica"), "{message}");
}

/// Wait until the snapshot daemon has made a snapshot of everything written.
fn wait_snapshot_of_now(console: &mut Console) {
    wait_eval(
        console,
        "require('fio').path.exists(string.format('%020d.snap', box.info.signature))",
        "true",
    );
}

/// Replace items `first..=last` on the master (a write of 20 rows spans 4 xlogs of 5).
fn change_items(master: &mut Console, first: u64, last: u64) {
    master.eval(&format!(
        "for i = {first}, {last} do box.space.items:replace{{i, 'changed'}} end"
    ));
}

/// Start the replica in `dir` again: it must get up to item `last` and follow.
fn replica_catches_up(dir: &Path, master: &Instance, last: u64) {
    let replica = Instance::start(dir, &source(master), "");
    let mut r = replica.console();
    wait_eval(
        &mut r,
        &format!("box.space.items:get{{{last}}}"),
        "'changed'",
    );
    assert!(r.eval("box.info.replication.status").contains("follow"));
    drop(r);
    replica.stop();
}

#[test]
fn the_master_keeps_what_a_replica_needs_and_a_forgotten_replica_is_told_what_is_missing() {
    let master_dir = TempDir::new("repl-gap-master");
    let replica_dir = TempDir::new("repl-gap-replica");
    let cfg = "rows_per_wal = 5, snapshot_count = 1, snapshot_period = 0.2";
    let setup = format!("{MASTER_SETUP}\n{ITEMS_SETUP}");
    let master = Instance::start(master_dir.path(), cfg, &setup);
    let address = master.iproto.clone();
    let replica = Instance::start(replica_dir.path(), &source(&master), "");
    let mut r = replica.console();
    wait_eval(&mut r, "box.info.replication.status", "follow");
    drop(r);
    replica.stop();
    // The replica is away; the daemon snapshots and removes old files, but keeps the
    // xlogs the replica needs.
    let mut m = master.console();
    change_items(&mut m, 1, 20);
    wait_snapshot_of_now(&mut m);
    replica_catches_up(replica_dir.path(), &master, 20);
    // A restarted master has forgotten where the replica was, so it keeps every xlog
    // until the replica subscribes again (wal_cleanup_delay, 4 hours by default).
    change_items(&mut m, 21, 40);
    drop(m);
    master.stop();
    let master = Instance::start_at(master_dir.path(), &address, cfg, &setup);
    let mut m = master.console();
    change_items(&mut m, 41, 60);
    wait_snapshot_of_now(&mut m);
    let gc = "(function() local gc = box.info.gc() local first = gc.consumers[1] \
              return string.format('%s %d %s', gc.is_paused, #gc.consumers, \
              first and first.name or '-') end)()";
    assert_eq!(m.eval(gc), "---\n- true 0 -\n...\n");
    replica_catches_up(replica_dir.path(), &master, 60);
    let uuid = m.value("box.space._cluster:get{2}[2]");
    assert_eq!(m.eval(gc), format!("---\n- false 1 replica {uuid}\n...\n"));
    // Without the delay, the restarted master removes them, and the replica is told
    // what is missing.
    change_items(&mut m, 61, 80);
    drop(m);
    master.stop();
    let cfg = format!("{cfg}, wal_cleanup_delay = 0");
    let master = Instance::start_at(master_dir.path(), &address, &cfg, &setup);
    let mut m = master.console();
    change_items(&mut m, 81, 100);
    wait_snapshot_of_now(&mut m);
    wait_for("the master to resume removing old xlogs", || {
        log_of(master_dir.path())
            .contains("wal_cleanup_delay passed with 1 replicas")
            .then_some(())
    });
    let replica = Instance::start(replica_dir.path(), &source(&master), "");
    let mut r = replica.console();
    wait_eval(&mut r, "box.info.replication.status", "stopped");
    let message = r.eval("box.info.replication.message");
    assert!(
        message.contains("Missing .xlog file between LSN"),
        "{message}"
    );
}

#[test]
fn a_replicas_own_writes_do_not_make_the_master_forget_what_it_needs() {
    let cfg = "rows_per_wal = 5, snapshot_count = 1, snapshot_period = 0.2";
    let (_master_dir, replica_dir, master, replica) = pair_with("repl-own", cfg, SPACE_T);
    let (mut m, mut r) = (master.console(), replica.console());
    wait_eval(&mut r, "box.space.t ~= nil", "true");
    // The replica's own rows (its id in its vclock) are more than the master will write
    // while it is away: they must not count as master rows it has.
    r.eval("for i = 1, 100 do box.space.t:insert{1000 + i} end");
    m.eval("box.space.t:insert{1}");
    wait_eval(&mut r, "box.space.t:get{1} ~= nil", "true");
    // Its ack of all that reaches the master (acks follow its WAL writes).
    let lsn = r.value("box.info.vclock[1]");
    wait_eval(
        &mut m,
        &format!("box.info.replication[2].downstream.vclock[1] == {lsn}"),
        "true",
    );
    drop(r);
    replica.stop();
    m.eval("for i = 2, 21 do box.space.t:insert{i} end");
    wait_snapshot_of_now(&mut m);
    let replica = Instance::start(replica_dir.path(), &source(&master), "");
    let mut r = replica.console();
    wait_eval(&mut r, "box.space.t:get{21} ~= nil", "true");
    assert!(r.eval("box.info.replication.status").contains("follow"));
}

#[test]
fn a_failed_wal_write_on_the_replica_loses_no_replicated_row() {
    let (_master_dir, replica_dir, master, replica) = pair("repl-walfail");
    let mut m = master.console();
    let mut r = replica.console();
    wait_eval(&mut r, "box.info.replication.status", "follow");
    start_writer(&mut m, 1_000_000);
    wait_eval(&mut r, "box.space.items:get{1000050} ~= nil", "true");
    r.eval("box.error.injection.set('ERRINJ_WAL_IO', true)");
    wait_for("the replica to notice the failed write", || {
        log_of(replica_dir.path())
            .contains("starts over")
            .then_some(())
    });
    r.eval("box.error.injection.set('ERRINJ_WAL_IO', false)");
    wait_eval(&mut r, "box.info.replication.status", "follow");
    stop_writer(&mut m);
    wait_same_items(&mut m, &mut r);
    assert_eq!(r.eval("box.info.vclock[1]"), m.eval("box.info.vclock[1]"));
}

/// Two servers that replicate from each other (the tutorial's end state): A bootstraps,
/// B joins A, then A follows B.
fn master_master(a_dir: &Path, b_dir: &Path, setup: &str) -> (Instance, Instance) {
    let a = Instance::start(a_dir, "", &format!("{MASTER_SETUP}\n{setup}"));
    let b = Instance::start(b_dir, &source(&a), "");
    let mut console = a.console();
    console.eval(&format!("box.cfg{{{}}}", source(&b)));
    wait_eval(&mut console, "box.info.replication.status", "follow");
    (a, b)
}

#[test]
fn the_whole_hands_on_tutorial_ends_master_master_with_the_same_tuples() {
    let one_dir = TempDir::new("tutorial-1");
    let two_dir = TempDir::new("tutorial-2");
    // Terminal #1: the master; terminal #2: the replica.
    let one = Instance::start(one_dir.path(), "", MASTER_SETUP);
    let address = one.iproto.clone();
    let mut t1 = one.console();
    let two = Instance::start(two_dir.path(), &source(&one), "");
    let mut t2 = two.console();
    t1.eval("s = box.schema.space.create('tester')");
    t1.eval("i = s:create_index('primary', {})");
    t1.eval("s:insert{1, 'Tuple inserted on Terminal #1'}");
    wait_eval(
        &mut t2,
        "box.space.tester ~= nil and box.space.tester:get{1}",
        "Terminal #1",
    );
    t2.eval("box.space.tester:insert{2, 'Tuple inserted on Terminal #2'}");
    // #1 stops; #2 writes on its own.
    drop(t1);
    one.stop();
    wait_eval(&mut t2, "box.info.replication.status", "disconnected");
    t2.eval("box.space.tester:insert{3, 'Another'}");
    // #1 comes back and replicates from #2: master-master.
    let one = Instance::start_at(one_dir.path(), &address, "", MASTER_SETUP);
    let mut t1 = one.console();
    t1.eval(&format!("box.cfg{{{}}}", source(&two)));
    wait_eval(&mut t1, "box.space.tester:get{3}", "[3, 'Another']");
    wait_eval(&mut t2, "box.info.replication.status", "follow");
    t1.eval("box.space.tester:insert{4, 'from #1 again'}");
    wait_eval(&mut t2, "box.space.tester:get{4}", "[4, 'from #1 again']");
    let select = "box.space.tester:select({0}, {iterator = 'GE'})";
    let both = wait_eval(&mut t2, select, "[4, ");
    wait_eval(&mut t1, select, &both);
    for key in 1..=4 {
        assert!(both.contains(&format!("[{key}, ")), "{both}");
    }
    // No row loops: each server holds every row once, and the vclocks agree.
    wait_eval(&mut t2, "box.info.vclock", &t1.eval("box.info.vclock"));
}

#[test]
fn what_if_three_servers_are_each_others_masters() {
    let dirs: Vec<TempDir> = (0..3)
        .map(|n| TempDir::new(&format!("mesh3-{n}")))
        .collect();
    let ports: Vec<u16> = (0..3)
        .map(|_| {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        })
        .collect();
    let list = ports
        .iter()
        .map(|port| format!("'replicator:password@127.0.0.1:{port}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let cfg = format!("replication_source = {{{list}}}");
    let servers: Vec<Instance> = (0..3)
        .map(|n| {
            let listen = format!("127.0.0.1:{}", ports[n]);
            let setup = if n == 0 {
                format!("{MASTER_SETUP}\n{SPACE_T}")
            } else {
                String::new()
            };
            Instance::start_at(dirs[n].path(), &listen, &cfg, &setup)
        })
        .collect();
    let mut consoles: Vec<Console> = servers.iter().map(Instance::console).collect();
    for (n, console) in consoles.iter_mut().enumerate() {
        wait_eval(console, "box.space.t ~= nil", "true");
        console.eval(&format!("box.space.t:insert{{{n}, 'from server {n}'}}"));
    }
    for console in consoles.iter_mut() {
        for n in 0..3 {
            wait_eval(
                console,
                &format!("box.space.t:get{{{n}}}"),
                &format!("'from server {n}'"),
            );
        }
    }
    let vclock = consoles[0].eval("box.info.vclock");
    for console in consoles.iter_mut() {
        wait_eval(console, "box.info.vclock", &vclock);
        assert_eq!(console.eval("box.space.t:count()"), "---\n- 3\n...\n");
        assert_eq!(
            console.eval("box.space._cluster:count()"),
            "---\n- 3\n...\n"
        );
    }
}

#[test]
fn what_if_two_servers_change_the_same_tuple_the_last_changer_wins() {
    let a_dir = TempDir::new("lww-a");
    let b_dir = TempDir::new("lww-b");
    let setup = SPACE_T;
    let (a, b) = master_master(a_dir.path(), b_dir.path(), setup);
    let (mut ca, mut cb) = (a.console(), b.console());
    ca.eval("box.space.t:replace{1, 'changed on #1'}");
    wait_eval(&mut cb, "box.space.t:get{1}", "changed on #1");
    cb.eval("box.space.t:replace{1, 'changed on #2'}");
    wait_eval(&mut ca, "box.space.t:get{1}", "changed on #2");
    assert!(cb.eval("box.space.t:get{1}").contains("changed on #2"));
}

#[test]
fn what_if_two_servers_insert_the_same_tuple_replication_stops_until_restarted() {
    let a_dir = TempDir::new("conflict-a");
    let b_dir = TempDir::new("conflict-b");
    let setup = "box.once('space', function() box.schema.space.create('tester'):create_index('primary') end)";
    let (a, b) = master_master(a_dir.path(), b_dir.path(), setup);
    let (mut ca, mut cb) = (a.console(), b.console());
    wait_eval(&mut cb, "box.space.tester ~= nil", "true");
    // Both detach, both insert key 7, then #1 follows #2 again.
    ca.eval("box.cfg{replication_source = ''}");
    cb.eval("box.cfg{replication_source = ''}");
    ca.eval("box.space.tester:insert{7, 'conflict from #1'}");
    cb.eval("box.space.tester:insert{7, 'conflict from #2'}");
    ca.eval(&format!("box.cfg{{{}}}", source(&b)));
    wait_eval(&mut ca, "box.info.replication.status", "stopped");
    let message = ca.eval("box.info.replication.message");
    for part in [
        "Duplicate key exists in unique index 'primary' in space 'tester'",
        "row of server 2, LSN 1",
        "INSERT [7, \"conflict from #2\"]",
    ] {
        // Looked for in Lua: the YAML reply folds long lines and doubles quotes.
        let found = ca.eval(&format!(
            "box.info.replication.message:find({part:?}, 1, true) ~= nil"
        ));
        assert!(found.contains("true"), "{part} not in {message}");
    }
    let upstream = ca.eval("box.info.replication[2].upstream.status");
    assert!(upstream.contains("stopped"), "{upstream}");
    assert!(log_of(a_dir.path()).contains("Duplicate key"));
    // The operator resolves it and sets the source again: replication restarts.
    ca.eval("box.space.tester:delete{7}");
    ca.eval(&format!("box.cfg{{{}}}", source(&b)));
    wait_eval(&mut ca, "box.space.tester:get{7}", "conflict from #2");
    wait_eval(&mut ca, "box.info.replication.status", "follow");
}

#[test]
fn replication_skip_conflict_skips_durably() {
    let a_dir = TempDir::new("skip-a");
    let b_dir = TempDir::new("skip-b");
    let setup = "box.once('space', function() box.schema.space.create('tester'):create_index('primary') end)";
    let (a, b) = master_master(a_dir.path(), b_dir.path(), setup);
    let address = a.iproto.clone();
    let (mut ca, mut cb) = (a.console(), b.console());
    wait_eval(&mut cb, "box.space.tester ~= nil", "true");
    ca.eval("box.cfg{replication_source = ''}");
    cb.eval("box.cfg{replication_source = ''}");
    ca.eval("box.space.tester:insert{7, 'conflict from #1'}");
    cb.eval("box.space.tester:insert{7, 'conflict from #2'}");
    cb.eval("box.space.tester:insert{8, 'after the conflict'}");
    ca.eval(&format!(
        "box.cfg{{{}, replication_skip_conflict = true}}",
        source(&b)
    ));
    wait_eval(&mut ca, "box.space.tester:get{8}", "after the conflict");
    assert!(ca.eval("box.info.replication.status").contains("follow"));
    assert!(
        ca.eval("box.space.tester:get{7}")
            .contains("conflict from #1")
    );
    assert!(log_of(a_dir.path()).contains("skipping a conflicting row"));
    // The row is seen before its WAL write ends; the vclock moves when it has.
    let vclock = cb.eval("box.info.vclock[2]");
    wait_eval(&mut ca, "box.info.vclock[2]", &vclock);
    // The skip was written: after a restart, without skipping, nothing conflicts.
    drop(ca);
    a.stop();
    let a = Instance::start_at(a_dir.path(), &address, &source(&b), "");
    let mut ca = a.console();
    assert_eq!(ca.eval("box.info.vclock[2]"), vclock);
    cb.eval("box.space.tester:insert{9, 'later'}");
    wait_eval(&mut ca, "box.space.tester:get{9}", "later");
    assert!(ca.eval("box.info.replication.status").contains("follow"));
}

#[test]
fn what_if_a_replica_takes_over_and_what_cluster_a_server_is_in() {
    let (_master_dir, _replica_dir, master, replica) = pair_with("takeover", "", SPACE_T);
    let (mut m, mut r) = (master.console(), replica.console());
    // The cluster's UUID, as the manual says to look it up, is the same on both.
    let cluster = m.eval("box.space._schema:select{'cluster'}");
    assert!(cluster.contains("- - ['cluster', '"), "{cluster}");
    assert_eq!(r.eval("box.space._schema:select{'cluster'}"), cluster);
    m.eval("box.space.t:insert{1, 'before'}");
    wait_eval(&mut r, "box.space.t:get{1}", "before");
    drop(m);
    master.kill();
    wait_eval(&mut r, "box.info.replication.status", "disconnected");
    // The replica becomes independent and serves writes.
    r.eval("box.cfg{replication_source = ''}");
    assert!(r.eval("box.info.replication.status").contains("off"));
    r.eval("box.space.t:insert{2, 'after the take-over'}");
    assert!(r.eval("box.space.t:get{2}").contains("after the take-over"));
}

#[test]
fn box_once_runs_once_across_the_cluster() {
    let master_dir = TempDir::new("once-master");
    let replica_dir = TempDir::new("once-replica");
    let master = Instance::start(master_dir.path(), "", MASTER_SETUP);
    let mut m = master.console();
    m.eval(
        "box.once('init', function() box.schema.space.create('once_made'):create_index('pk') end)",
    );
    let replica = Instance::start(replica_dir.path(), &source(&master), "");
    let mut r = replica.console();
    wait_eval(&mut r, "box.space.once_made ~= nil", "true");
    // The replica finds the key done: its function does not run.
    let ran = r.eval("ran = false box.once('init', function() ran = true end) return ran");
    assert!(ran.contains("false"), "{ran}");
    assert!(
        r.eval("box.space._schema:get{'onceinit'}")
            .contains("onceinit")
    );
}

/// A free loopback port (bound and released).
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[test]
fn a_replica_of_a_replica_still_joining_waits_for_it() {
    let master_dir = TempDir::new("chain-master");
    let middle_dir = TempDir::new("chain-middle");
    let last_dir = TempDir::new("chain-last");
    let (master_port, middle_port) = (free_port(), free_port());
    let master_uri = format!("replicator:password@127.0.0.1:{master_port}");
    let middle_uri = format!("replicator:password@127.0.0.1:{middle_port}");
    // The middle server waits for a master that is not there yet.
    let middle_path = middle_dir.path().to_path_buf();
    let middle = std::thread::spawn(move || {
        let listen = format!("127.0.0.1:{middle_port}");
        let cfg = format!("replication_source = '{master_uri}'");
        Instance::start_at(&middle_path, &listen, &cfg, "")
    });
    // The last one joins the middle one, which answers "bootstrap hasn't finished".
    let last_path = last_dir.path().to_path_buf();
    let last = std::thread::spawn(move || {
        let cfg = format!("replication_source = '{middle_uri}'");
        Instance::start(&last_path, &cfg, "")
    });
    wait_for("the last server to be told to wait", || {
        log_of(last_dir.path())
            .contains("Instance bootstrap hasn't finished yet")
            .then_some(())
    });
    let setup = format!("{MASTER_SETUP}\n{SPACE_T}");
    let master = Instance::start_at(
        master_dir.path(),
        &format!("127.0.0.1:{master_port}"),
        "",
        &setup,
    );
    let mut m = master.console();
    m.eval("box.space.t:insert{1, 'through the middle'}");
    let middle = middle.join().unwrap();
    let last = last.join().unwrap();
    let mut l = last.console();
    wait_eval(&mut l, "box.space.t:get{1}", "through the middle");
    wait_eval(&mut l, "box.space._cluster:count()", "- 3");
    drop(middle);
}

#[test]
fn a_mesh_where_each_lists_all_others_starts_at_once() {
    let dirs: Vec<TempDir> = (0..3)
        .map(|n| TempDir::new(&format!("allothers-{n}")))
        .collect();
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let uri = |port: u16| format!("'replicator:password@127.0.0.1:{port}'");
    // The user exists on whichever server starts the cluster.
    let setup = SPACE_T;
    let starting: Vec<_> = (0..3)
        .map(|n| {
            let others: Vec<String> = (0..3).filter(|m| *m != n).map(|m| uri(ports[m])).collect();
            let cfg = format!(
                "replication_source = {{{}}}, replication_connect_timeout = 15",
                others.join(", ")
            );
            let listen = format!("127.0.0.1:{}", ports[n]);
            let dir = dirs[n].path().to_path_buf();
            let setup = format!(
                "box.once('users', function() pcall(box.schema.user.create, 'replicator', {{password = 'password'}}) \
                 pcall(box.schema.user.grant, 'replicator', 'read,write', 'universe') end)\n{setup}"
            );
            std::thread::spawn(move || Instance::start_at(&dir, &listen, &cfg, &setup))
        })
        .collect();
    let servers: Vec<Instance> = starting.into_iter().map(|t| t.join().unwrap()).collect();
    let mut consoles: Vec<Console> = servers.iter().map(Instance::console).collect();
    for (n, console) in consoles.iter_mut().enumerate() {
        wait_eval(console, "box.space.t ~= nil", "true");
        console.eval(&format!("box.space.t:replace{{{n}, 'from server {n}'}}"));
    }
    for console in consoles.iter_mut() {
        wait_eval(console, "box.space.t:count()", "- 3");
        wait_eval(console, "box.space._cluster:count()", "- 3");
    }
    let vclock = consoles[0].eval("box.info.vclock");
    for console in consoles.iter_mut() {
        wait_eval(console, "box.info.vclock", &vclock);
    }
    // One server started the cluster; the others joined it.
    let leaders = dirs
        .iter()
        .filter(|dir| log_of(dir.path()).contains("this server is the bootstrap leader"))
        .count();
    assert_eq!(leaders, 1);
}
