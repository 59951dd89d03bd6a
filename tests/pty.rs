//! The interactive console on a pseudo-terminal: prompt, continuation prompt, a YAML reply,
//! an error, and `os.exit()` ending the process with its code.

mod common;

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Instant;

use common::{DEADLINE, TempDir, binary, wait_for};

/// The master side of a pty, with everything the child wrote so far.
struct Terminal {
    writer: File,
    chunks: mpsc::Receiver<Vec<u8>>,
    screen: String,
    /// Where the last `expect` matched; the next one searches after it.
    seen: usize,
}

impl Terminal {
    /// Wait until `text` appears after what was already matched.
    fn expect(&mut self, text: &str) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(at) = self.screen[self.seen..].find(text) {
                self.seen += at + text.len();
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.chunks.recv_timeout(left) {
                Ok(chunk) => self.take(&chunk),
                Err(_) => panic!("{text:?} never appeared; screen:\n{}", self.screen),
            }
        }
    }

    fn take(&mut self, chunk: &[u8]) {
        let text = String::from_utf8_lossy(chunk);
        // The line editor asks where the cursor is; answer "column 1" as a terminal would.
        if text.contains("\x1b[6n") {
            let _ = self.writer.write_all(b"\x1b[1;1R");
        }
        self.screen.push_str(&text);
    }

    fn type_line(&mut self, line: &str) {
        self.writer.write_all(line.as_bytes()).unwrap();
        self.writer.write_all(b"\r").unwrap();
    }
}

fn open_pty() -> (OwnedFd, OwnedFd) {
    let mut master = -1;
    let mut slave = -1;
    let size = libc::winsize {
        ws_row: 40,
        ws_col: 200,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: openpty writes two new descriptors into `master` and `slave`; the name and
    // termios pointers may be null; `size` is a valid winsize for the duration of the call.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            &size,
        )
    };
    assert_eq!(rc, 0, "openpty failed");
    // SAFETY: both descriptors were just created by openpty and are owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) }
}

#[test]
fn interactive_session_on_a_terminal() {
    let dir = TempDir::new("pty");
    let (master, slave) = open_pty();
    let mut child = Command::new(binary())
        .current_dir(dir.path())
        .env("TERM", "xterm")
        .env("HOME", dir.path())
        .stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave))
        .spawn()
        .expect("spawn tarantula on a pty");
    let reader = File::from(master.try_clone().unwrap());
    let (sender, chunks) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = reader;
        let mut buf = [0u8; 4096];
        while let Ok(count) = reader.read(&mut buf) {
            if count == 0 || sender.send(buf[..count].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut term = Terminal {
        writer: File::from(master),
        chunks,
        screen: String::new(),
        seen: 0,
    };
    term.expect("type 'help' for interactive help");
    term.expect("tarantool> ");
    term.type_line("1 + 2");
    term.expect("---\r\n- 3\r\n...\r\n");
    term.expect("tarantool> ");
    term.type_line("for");
    term.expect("         > ");
    term.type_line("x = = 1");
    term.expect("[string \"for...\"]:2: unexpected symbol near ''='''");
    term.expect("tarantool> ");
    term.type_line("error('boom')");
    term.expect("- error: boom");
    term.expect("tarantool> ");
    term.type_line("os.exit(7)");
    let status = wait_for("the console to exit", || child.try_wait().unwrap());
    assert_eq!(status.code(), Some(7));
}
