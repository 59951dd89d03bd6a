//! The real Python connector (`tarantool` from PyPI, pinned in
//! `tests/connector/requirements.txt`) against the binary's iproto server. Each test starts a
//! server with the setup below and runs one script of `tests/connector/` with the Python of
//! `.venv` (made by `.ci/venv`, which `.ci/run` calls) or of `TARANTULA_PYTHON`. A script
//! gets the server's host and port as its arguments, asserts, exits non-zero on failure and
//! prints `OK` last on success; its output is shown when the test fails. A missing Python or
//! connector fails the test: it never passes without having run.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Server, wait_for};

/// How long one script may run; the concurrency script is the slowest, at a few seconds.
const SCRIPT_DEADLINE: Duration = Duration::from_secs(120);

/// Users, spaces and functions the scripts rely on. `alice` may do anything, `bob` has only
/// the public role, and guest may read `open`. The tuple size limit is raised so a 1 MiB
/// tuple fits while a 5 MiB one does not.
const SETUP: &str = "box.cfg{listen = '127.0.0.1:0', log = 'tarantula.log',\n\
        slab_alloc_maximal = 4 * 1024 * 1024}\n\
    box.schema.user.create('alice', {password = 'secret'})\n\
    box.schema.user.grant('alice', 'read,write,execute', 'universe')\n\
    box.schema.user.create('bob', {password = 'bobpw'})\n\
    local s = box.schema.space.create('tester')\n\
    s:create_index('primary', {type = 'tree', parts = {1, 'NUM'}})\n\
    s:create_index('name', {type = 'tree', unique = false, parts = {2, 'STR'}})\n\
    local b = box.schema.space.create('blobs')\n\
    b:create_index('primary', {type = 'hash', parts = {1, 'STR'}})\n\
    local o = box.schema.space.create('open')\n\
    o:create_index('primary')\n\
    o:insert{1, 'visible to guest'}\n\
    box.schema.user.grant('guest', 'read', 'space', 'open')\n\
    function hello(x) return 'hi ' .. x, 2 end\n\
    function multi() return 1, 'two', {3} end\n\
    function echo(...) return ... end\n\
    function fail() error('raised on purpose') end\n\
    io.stdout:write('IPROTO ', box.info.listen, '\\n') io.stdout:flush()\n";

/// The Python to run the scripts with, checked to import the connector.
fn python() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = match std::env::var_os("TARANTULA_PYTHON") {
        Some(path) => PathBuf::from(path),
        None => manifest.join(".venv/bin/python"),
    };
    let hint = "run `.ci/run` (or just `.ci/venv`) to create .venv with the pinned connector, \
        or point TARANTULA_PYTHON at a Python that has it";
    assert!(python.exists(), "no Python at {}: {hint}", python.display());
    let output = Command::new(&python)
        .args(["-c", "import tarantool; print(tarantool.__version__)"])
        .output()
        .unwrap_or_else(|err| panic!("cannot run {}: {err}; {hint}", python.display()));
    assert!(
        output.status.success(),
        "{} cannot import the `tarantool` module ({}): {hint}",
        python.display(),
        String::from_utf8_lossy(&output.stderr).trim()
    );
    python
}

/// Start a server and return it with its iproto port.
fn start() -> (Server, u16) {
    let server = Server::start(SETUP);
    let address = wait_for("the iproto address", || {
        let line = server.stdout.recv_timeout(Duration::from_secs(10)).ok()?;
        line.strip_prefix("IPROTO ").map(|a| a.trim().to_string())
    });
    let port = address
        .rsplit(':')
        .next()
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("bad listen address {address:?}"));
    (server, port)
}

/// Read a child's stream to its end on a thread.
fn collect(mut stream: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stream.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Kills the script if the test panics before it exits.
struct Script(Child);

impl Drop for Script {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Run `tests/connector/<name>` against a fresh server; fail with its output unless it
/// exits 0 within the deadline.
fn run(name: &str) {
    let python = python();
    let (_server, port) = start();
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/connector")
        .join(name);
    let mut script = Script(
        Command::new(&python)
            .arg(&path)
            .args(["127.0.0.1", &port.to_string()])
            .env("PYTHONUNBUFFERED", "1")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {}: {err}", python.display())),
    );
    let stdout = collect(script.0.stdout.take().expect("stdout"));
    let stderr = collect(script.0.stderr.take().expect("stderr"));
    let deadline = Instant::now() + SCRIPT_DEADLINE;
    let status = loop {
        if let Some(status) = script.0.try_wait().expect("wait for the script") {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = script.0.kill();
            let _ = script.0.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let stdout = stdout.join().unwrap_or_default();
    let output = format!(
        "--- stdout of {name}\n{stdout}--- stderr of {name}\n{}",
        stderr.join().unwrap_or_default()
    );
    println!("{output}");
    match status {
        None => panic!("{name} ran past {SCRIPT_DEADLINE:?}\n{output}"),
        Some(status) => assert!(status.success(), "{name} failed: {status}\n{output}"),
    }
    assert!(
        stdout.lines().last() == Some("OK"),
        "{name} exited 0 without reaching its end (its last line is not OK)\n{output}"
    );
}

#[test]
fn connect_with_and_without_a_user() {
    run("connect.py");
}

#[test]
fn every_request_kind() {
    run("requests.py");
}

#[test]
fn server_errors_carry_tarantool_codes() {
    run("errors.py");
}

#[test]
fn unicode_and_binary_round_trip() {
    run("encoding.py");
}

#[test]
fn one_mebibyte_tuple() {
    run("big_tuple.py");
}

#[test]
fn fifty_connections_at_once() {
    run("concurrency.py");
}

#[test]
fn connection_pool_and_mesh() {
    run("pool.py");
}
