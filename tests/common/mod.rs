//! Test support: a temporary directory, the `tarantula` binary started on a free loopback
//! port, and a client of its text console. Every wait has a deadline; nothing sleeps blind.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long any single wait in a test may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// The binary under test.
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_tarantula"))
}

/// A directory removed when dropped (unless it is only borrowed: `TempDir::borrow`).
pub struct TempDir {
    path: PathBuf,
    owned: bool,
}

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let path =
            std::env::temp_dir().join(format!("tarantula-test-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir { path, owned: true }
    }

    /// A directory someone else owns: left in place when dropped.
    pub fn borrow(path: &Path) -> TempDir {
        TempDir {
            path: path.to_path_buf(),
            owned: false,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path.join(name);
        std::fs::write(&path, text).expect("write file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !self.owned {
            return;
        }
        // A failing test leaves its files (logs, xlogs) for a look at what went wrong.
        if std::thread::panicking() {
            eprintln!("kept for the failed test: {}", self.path.display());
            return;
        }
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Poll `check` until it returns Some, or panic with `what` after the deadline.
pub fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A running server with a console listener on a free loopback port.
pub struct Server {
    pub child: Child,
    pub dir: TempDir,
    pub console_port: u16,
    /// Lines the server printed on stdout after the port line.
    pub stdout: mpsc::Receiver<String>,
}

/// The script prelude that opens the console and reports its port on stdout.
const CONSOLE_SCRIPT: &str = "local c = require('console').listen('127.0.0.1:0')\n\
     io.stdout:write('CONSOLE_PORT ', c:name().port, '\\n')\nio.stdout:flush()\n";

impl Server {
    /// Start `tarantula init.lua` where init.lua opens the console then runs `extra`.
    pub fn start(extra: &str) -> Server {
        Server::start_with(TempDir::new("server"), extra)
    }

    /// `start` in a directory the caller keeps (a data directory to restart in): init.lua
    /// is written there, and the directory outlives the server.
    pub fn start_in(dir: &Path, extra: &str) -> Server {
        Server::start_with(TempDir::borrow(dir), extra)
    }

    fn start_with(dir: TempDir, extra: &str) -> Server {
        let script = dir.write("init.lua", &format!("{CONSOLE_SCRIPT}{extra}\n"));
        let mut child = Command::new(binary())
            .arg(&script)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tarantula");
        let stdout = lines_of(child.stdout.take().expect("stdout"));
        let stderr = child.stderr.take().expect("stderr");
        std::thread::spawn(move || forward_stderr(stderr));
        let port = wait_for("the console port", || match stdout.recv_timeout(DEADLINE) {
            Ok(line) => line
                .strip_prefix("CONSOLE_PORT ")
                .map(|p| p.trim().parse().unwrap()),
            Err(_) => panic!("server exited before opening its console"),
        });
        Server {
            child,
            dir,
            console_port: port,
            stdout,
        }
    }

    /// A new console client.
    pub fn console(&self) -> Console {
        Console::connect(self.console_port)
    }

    /// Wait for the process to exit and return its status code.
    pub fn wait_exit(&mut self) -> Option<i32> {
        wait_for("the server to exit", || {
            self.child.try_wait().ok().flatten()
        })
        .code()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Read lines of a child's stream on a thread, handing them over a channel.
pub fn lines_of(stream: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    receiver
}

fn forward_stderr(stderr: impl Read) {
    for line in BufReader::new(stderr).lines().map_while(Result::ok) {
        if std::env::var_os("TARANTULA_TEST_VERBOSE").is_some() {
            eprintln!("server: {line}");
        }
    }
}

/// A client of the text console.
pub struct Console {
    pub stream: TcpStream,
    pub greeting: Vec<u8>,
    buffer: Vec<u8>,
}

impl Console {
    pub fn connect(port: u16) -> Console {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to console");
        stream.set_read_timeout(Some(DEADLINE)).unwrap();
        let mut console = Console {
            stream,
            greeting: Vec::new(),
            buffer: Vec::new(),
        };
        let mut greeting = vec![0u8; 128];
        console
            .stream
            .read_exact(&mut greeting)
            .expect("read greeting");
        console.greeting = greeting;
        console
    }

    /// Send raw bytes.
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send to console");
    }

    /// Read one reply: bytes up to and including `\n...\n`.
    pub fn reply(&mut self) -> String {
        loop {
            if let Some(end) = find(&self.buffer, b"\n...\n") {
                let reply: Vec<u8> = self.buffer.drain(..end + 5).collect();
                return String::from_utf8_lossy(&reply).into_owned();
            }
            let mut chunk = [0u8; 65536];
            let count = self.stream.read(&mut chunk).expect("read console reply");
            assert!(
                count > 0,
                "console closed; unread: {:?}",
                String::from_utf8_lossy(&self.buffer)
            );
            self.buffer.extend_from_slice(&chunk[..count]);
        }
    }

    /// Evaluate one statement and return its YAML reply.
    pub fn eval(&mut self, statement: &str) -> String {
        self.send(format!("{statement}\n").as_bytes());
        self.reply()
    }

    /// The one value a statement returns, as its YAML line without the "- " (panics on
    /// any other reply).
    pub fn value(&mut self, statement: &str) -> String {
        let reply = self.eval(statement);
        let body = reply
            .strip_prefix("---\n")
            .and_then(|rest| rest.strip_suffix("...\n"))
            .unwrap_or_else(|| panic!("unexpected reply {reply:?}"));
        body.trim_end()
            .strip_prefix("- ")
            .unwrap_or_else(|| panic!("not one value: {reply:?}"))
            .to_string()
    }

    /// Whether the server closed the connection (EOF, or a reset when it closed with our
    /// bytes unread, within the deadline).
    pub fn closed(&mut self) -> bool {
        let mut byte = [0u8; 1];
        match self.stream.read(&mut byte) {
            Ok(0) => true,
            Ok(_) => false,
            Err(err) => matches!(
                err.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
            ),
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// A server running `init.lua` in a directory the caller keeps (to restart in), with a
/// console and the binary protocol on free ports, started once its `box.cfg{}` returned
/// (`log = 'tarantula.log'`).
pub struct Instance {
    pub child: Child,
    pub console: u16,
    /// `host:port` of the binary protocol.
    pub iproto: String,
}

impl Instance {
    pub fn script(listen: &str, cfg: &str, setup: &str) -> String {
        format!(
            "local c = require('console').listen('127.0.0.1:0')\n\
             box.cfg{{listen = '{listen}', log = 'tarantula.log', {cfg}}}\n\
             {setup}\n\
             io.stdout:write('PORTS ', c:name().port, ' ', box.info.listen, '\\n')\n\
             io.stdout:flush()\n"
        )
    }

    pub fn start(dir: &Path, cfg: &str, setup: &str) -> Instance {
        Instance::start_at(dir, "127.0.0.1:0", cfg, setup)
    }

    /// `start` listening on `listen` (a restart on the same port).
    pub fn start_at(dir: &Path, listen: &str, cfg: &str, setup: &str) -> Instance {
        std::fs::write(dir.join("init.lua"), Instance::script(listen, cfg, setup)).unwrap();
        let mut child = Command::new(binary())
            .arg("init.lua")
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = lines_of(child.stdout.take().unwrap());
        let _stderr = lines_of(child.stderr.take().unwrap());
        let line = wait_for("the server's ports", || {
            match stdout.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => line.strip_prefix("PORTS ").map(str::to_string),
                Err(_) => {
                    if let Ok(Some(status)) = child.try_wait() {
                        panic!("server exited ({status}): {}", log_of(dir));
                    }
                    None
                }
            }
        });
        let mut parts = line.split_whitespace();
        let console = parts.next().unwrap().parse().unwrap();
        let iproto = parts.next().unwrap().to_string();
        Instance {
            child,
            console,
            iproto,
        }
    }

    pub fn console(&self) -> Console {
        Console::connect(self.console)
    }

    pub fn stop(mut self) {
        let mut console = self.console();
        console.send(b"os.exit(0)\n");
        wait_for("the server to exit", || {
            self.child.try_wait().ok().flatten()
        });
    }

    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn log_of(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("tarantula.log")).unwrap_or_default()
}

/// Run a server in `dir` that must fail to start; returns its log.
pub fn start_fails(dir: &Path, cfg: &str) -> String {
    let script = format!("box.cfg{{log = 'tarantula.log', {cfg}}}\nprint('STARTED')\n");
    std::fs::write(dir.join("fail.lua"), script).unwrap();
    let output = Command::new(binary())
        .arg("fail.lua")
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!output.status.success(), "the server started");
    assert!(!String::from_utf8_lossy(&output.stdout).contains("STARTED"));
    format!("{}{}", String::from_utf8_lossy(&output.stderr), log_of(dir))
}

/// xorshift64*: small and seeded, so a randomised test replays from the seed it prints.
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (0, which xorshift cannot leave, counts as 1).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..bound`.
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}
