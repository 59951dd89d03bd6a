//! Snapshots end to end: `box.snapshot()` while writes go on, restarts from a snapshot plus
//! the xlogs after it, the snapshot daemon's clean-up, and damaged snapshots refused.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Console, Server, TempDir, wait_for};

/// Files of `dir` with extension `ext` (complete ones), by signature.
fn files(dir: &Path, ext: &str) -> Vec<(i64, PathBuf)> {
    let mut found: Vec<(i64, PathBuf)> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            let name = path.file_name()?.to_str()?.to_string();
            let digits = name.strip_suffix(&format!(".{ext}"))?;
            Some((digits.parse().ok()?, path))
        })
        .collect();
    found.sort();
    found
}

/// Start in `dir` with `box.cfg{<cfg>}` and a console.
fn start(dir: &Path, cfg: &str) -> (Server, Console) {
    let server = Server::start_in(dir, &format!("box.cfg{{{cfg}}}"));
    let console = server.console();
    (server, console)
}

/// Start in `dir` expecting box.cfg to fail; returns its error message.
fn start_fails(dir: &Path, cfg: &str) -> String {
    let mut server = Server::start_in(
        dir,
        &format!(
            "local ok, err = pcall(box.cfg, {{{cfg}}})\n\
             io.stdout:write('CFG ', tostring(ok), ' ', tostring(err), '\\n')\n\
             io.stdout:flush()\nos.exit(ok and 0 or 1)"
        ),
    );
    let line = wait_for("the box.cfg outcome", || {
        server.stdout.recv_timeout(Duration::from_secs(10)).ok()
    });
    assert_eq!(server.wait_exit(), Some(1), "{line}");
    line.strip_prefix("CFG false ")
        .unwrap_or_else(|| panic!("box.cfg did not fail: {line}"))
        .to_string()
}

const SCHEMA: &str = "s = box.schema.space.create('items') \
    s:create_index('pk') \
    s:create_index('by_name', {parts = {2, 'str'}, unique = false}) \
    for i = 1, 500 do s:insert{i, 'name' .. (i % 10)} end \
    box.schema.user.create('alice', {password = 'secret'}) \
    box.schema.user.grant('alice', 'read,write', 'space', 'items') \
    t = box.schema.space.create('scratch', {temporary = true}) \
    t:create_index('pk') t:insert{1} return true";

#[test]
fn data_schema_and_users_come_back_from_a_snapshot_and_later_xlogs() {
    let dir = TempDir::new("snap-restart");
    let grants = "return require('json').encode(box.space._priv:select{})";
    let grants_before = {
        let (_server, mut c) = start(dir.path(), "");
        assert_eq!(c.value(SCHEMA), "true");
        assert_eq!(c.value("return box.snapshot()"), "ok");
        // Nothing changed: the file exists, which 1.6 reports as an error.
        assert_eq!(
            c.value("return select(2, pcall(box.snapshot)).message"),
            "can't save snapshot, errno 17 (File exists)"
        );
        // Rows after the snapshot live only in the xlog.
        c.value("for i = 501, 600 do s:replace{i, 'late'} end s:delete{1} return true");
        c.value("return s:update({2}, {{'=', 2, 'changed'}})");
        c.value(grants)
    };
    assert_eq!(files(dir.path(), "snap").len(), 1);
    let (_server, mut c) = start(dir.path(), "");
    let checks = [
        ("return box.space.items:count()", "599"),
        ("return box.space.items:get{2}[2]", "changed"),
        ("return box.space.items:get{1} == nil", "true"),
        ("return box.space.items.index.by_name:count{'late'}", "100"),
        ("return box.space.items.index.by_name:count{'name3'}", "50"),
        ("return box.space.scratch:count()", "0"),
        ("return box.space._user.index.name:get{'alice'}[3]", "alice"),
    ];
    for (statement, expected) in checks {
        assert_eq!(c.value(statement), expected, "{statement}");
    }
    assert_eq!(c.value(grants), grants_before);
    // The instance keeps its identity and goes on writing.
    assert_eq!(c.value("return box.info.server.id"), "1");
    assert_eq!(
        c.value("return box.space.items:insert{1000, 'x'}[1]"),
        "1000"
    );
}

/// A fiber inserts 1, 2, 3, ... and counts what was acknowledged; `box.snapshot()` runs
/// meanwhile, over many small xlogs. After a kill, every acknowledged row is there and the
/// keys are contiguous (nothing half done).
#[test]
fn snapshot_while_writes_continue_then_restart() {
    let dir = TempDir::new("snap-writes");
    let cfg = "rows_per_wal = 50, wal_mode = 'write'";
    let acked: u64 = {
        let (_server, mut c) = start(dir.path(), cfg);
        c.value(
            "box.schema.space.create('w'):create_index('pk') \
             acked = 0 stop = false \
             require('fiber').create(function() local i = 0 \
                 while not stop do i = i + 1 box.space.w:insert{i, string.rep('x', 100)} \
                 acked = i end end) return true",
        );
        wait_for("writes before the snapshot", || {
            (c.value("return acked").parse::<u64>().unwrap() > 500).then_some(())
        });
        for _ in 0..3 {
            assert_eq!(c.value("return box.snapshot()"), "ok");
        }
        let at_snapshot: u64 = c.value("return acked").parse().unwrap();
        wait_for("writes after the snapshot", || {
            (c.value("return acked").parse::<u64>().unwrap() > at_snapshot + 300).then_some(())
        });
        c.value("return acked").parse().unwrap()
    };
    assert_eq!(files(dir.path(), "snap").len(), 3);
    assert!(files(dir.path(), "xlog").len() > 10);
    let (_server, mut c) = start(dir.path(), cfg);
    let count: u64 = c.value("return box.space.w:count()").parse().unwrap();
    let max: u64 = c
        .value("return box.space.w.index.pk:max()[1]")
        .parse()
        .unwrap();
    assert!(count >= acked, "{count} rows, {acked} acknowledged");
    assert_eq!(count, max, "keys 1..{max} contiguous");
}

/// The daemon takes snapshots on its own, keeps `snapshot_count` of them, and removes the
/// xlogs no kept snapshot needs; the directory still recovers.
#[test]
fn daemon_keeps_snapshot_count_and_the_xlogs_they_need() {
    let dir = TempDir::new("snap-daemon");
    let cfg = "rows_per_wal = 20, snapshot_period = 0.05, snapshot_count = 2";
    let written: u64 = {
        let (_server, mut c) = start(dir.path(), cfg);
        c.value(
            "box.schema.space.create('d'):create_index('pk') n = 0 \
             require('fiber').create(function() while true do n = n + 1 \
                 box.space.d:insert{n} require('fiber').sleep(0.002) end end) return true",
        );
        let mut seen = std::collections::BTreeSet::new();
        wait_for("the daemon's snapshots", || {
            seen.extend(files(dir.path(), "snap").into_iter().map(|(s, _)| s));
            (seen.len() >= 5).then_some(())
        });
        wait_for("the clean-up", || {
            let snaps = files(dir.path(), "snap");
            let xlogs = files(dir.path(), "xlog");
            let oldest = snaps.first()?.0;
            let covering = xlogs.iter().filter(|(s, _)| *s <= oldest).count();
            (snaps.len() == 2 && covering == 1).then_some(())
        });
        let written = c.value("box.cfg{snapshot_period = 0} return n");
        // box.info.gc() tells the same: the two snapshots, the oldest one's rows kept on,
        // no replica to keep xlogs for (a snapshot under way may still finish).
        let gc = "local gc = box.info.gc() return string.format('%d %d %d %d %s', \
                  #gc.checkpoints, gc.checkpoints[1].signature, gc.signature, \
                  #gc.consumers, gc.is_paused)";
        wait_for("box.info.gc() to show the files", || {
            let oldest = files(dir.path(), "snap").first()?.0;
            (c.value(gc) == format!("2 {oldest} {oldest} 0 false")).then_some(())
        });
        written.parse().unwrap()
    };
    let (_server, mut c) = start(dir.path(), "");
    let count: u64 = c.value("return box.space.d:count()").parse().unwrap();
    let max: u64 = c
        .value("return box.space.d.index.pk:max()[1]")
        .parse()
        .unwrap();
    assert!(count >= written - 1, "{count} rows, {written} written");
    assert_eq!(count, max);
}

#[test]
fn a_damaged_snapshot_refuses_to_start() {
    let dir = TempDir::new("snap-damaged");
    {
        let (_server, mut c) = start(dir.path(), "");
        c.value(
            "s = box.schema.space.create('x') s:create_index('pk') \
             for i = 1, 2000 do s:insert{i, string.rep('y', 50)} end return true",
        );
        assert_eq!(c.value("return box.snapshot()"), "ok");
    }
    let (_, snap) = files(dir.path(), "snap").pop().unwrap();
    let name = snap.file_name().unwrap().to_str().unwrap().to_string();
    let good = std::fs::read(&snap).unwrap();

    // A flipped byte in the middle: a checksum mismatch, with either panic setting.
    let mut bytes = good.clone();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(&snap, &bytes).unwrap();
    for cfg in ["", "panic_on_snap_error = false"] {
        let error = start_fails(dir.path(), cfg);
        assert!(error.contains(&name), "{error}");
        assert!(error.contains("offset"), "{error}");
    }

    // Cut short before the EOF marker at a row boundary: incomplete, refused.
    std::fs::write(&snap, &good[..good.len() - 4]).unwrap();
    let error = start_fails(dir.path(), "");
    assert!(error.contains("no EOF marker"), "{error}");
    assert!(error.contains(&name), "{error}");

    // Put back whole, it loads.
    std::fs::write(&snap, &good).unwrap();
    let (_server, mut c) = start(dir.path(), "");
    assert_eq!(c.value("return box.space.x:count()"), "2000");
}

#[test]
fn a_second_snapshot_while_one_runs_fails_as_in_1_6() {
    let dir = TempDir::new("snap-busy");
    let (_server, mut c) = start(dir.path(), "");
    c.value(
        "s = box.schema.space.create('b') s:create_index('pk') \
         for i = 1, 1000 do s:insert{i} end return true",
    );
    let reply = c.value(
        "local fiber = require('fiber') local first \
         fiber.create(function() first = box.snapshot() end) \
         local ok, err = pcall(box.snapshot) \
         while first == nil do fiber.sleep(0.001) end \
         return first .. ' / ' .. tostring(ok) .. ' ' .. err.message",
    );
    assert_eq!(
        reply,
        "ok / false can't save snapshot, errno 115 (Operation now in progress)"
    );
}
