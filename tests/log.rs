//! The log: Tarantool's line format in a file, log levels, the Lua `log` module, a pipe
//! logger, and SIGHUP reopening the file for rotation.

mod common;

use std::process::{Command, Stdio};

use common::{TempDir, binary, wait_for};

/// Check one line against `YYYY-MM-DD HH:MM:SS.mmm [pid] <context> <L>> <message>`.
fn assert_line_format(line: &str, pid: u32) {
    let bytes = line.as_bytes();
    assert!(line.len() > 30, "short line {line:?}");
    for (at, want) in [
        (4, b'-'),
        (7, b'-'),
        (10, b' '),
        (13, b':'),
        (16, b':'),
        (19, b'.'),
    ] {
        assert_eq!(bytes[at], want, "char {at} of {line:?}");
    }
    for at in [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 22] {
        assert!(bytes[at].is_ascii_digit(), "char {at} of {line:?}");
    }
    assert!(line[23..].starts_with(&format!(" [{pid}] ")), "{line:?}");
    assert!(line.contains("> "), "{line:?}");
}

#[test]
fn lines_in_a_file_have_tarantools_format() {
    let dir = TempDir::new("log");
    let script = "box.cfg{logger = 'file:server.log', log_level = 6}\n\
                  local log = require('log')\n\
                  log.info('hello %d', 42)\n\
                  log.warn('careful')\n\
                  log.error({key = 'value'})\n\
                  log.verbose('verbose line')\n\
                  log.debug('hidden at level 6')\n\
                  require('fiber').create(function() error('from a fiber') end)\n\
                  os.exit(0)\n";
    dir.write("s.lua", script);
    let child = Command::new(binary())
        .arg("s.lua")
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        child.status.success(),
        "{}",
        String::from_utf8_lossy(&child.stderr)
    );
    let text = std::fs::read_to_string(dir.path().join("server.log")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let find = |needle: &str| {
        *lines
            .iter()
            .find(|line| line.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{text}"))
    };
    let pid = child_pid_of(&lines);
    for line in &lines {
        assert_line_format(line, pid);
    }
    assert!(find("C> Tarantula").contains(" main/101/s.lua C> "));
    assert!(find("hello 42").ends_with(" main/101/s.lua I> hello 42"));
    assert!(find("careful").ends_with(" main/101/s.lua s.lua:4 W> careful"));
    assert!(find("{\"key\":\"value\"}").contains(" E> "));
    assert!(find("verbose line").contains(" V> verbose line"));
    assert!(find("LuajitError: s.lua:8: from a fiber").contains("/lua "));
    assert!(find("set 'log_level' configuration option to 6").contains(" I> "));
    assert!(!text.contains("hidden at level 6"));
}

fn child_pid_of(lines: &[&str]) -> u32 {
    let first = lines.first().expect("empty log");
    let open = first.find('[').unwrap();
    let close = first.find(']').unwrap();
    first[open + 1..close].parse().unwrap()
}

#[test]
fn a_pipe_logger_gets_every_line() {
    let dir = TempDir::new("log");
    dir.write(
        "s.lua",
        "box.cfg{logger = '| cat > piped.log'}\nrequire('log').info('through the pipe')\nos.exit(0)\n",
    );
    let status = Command::new(binary())
        .arg("s.lua")
        .current_dir(dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    let text = wait_for("the pipe's output", || {
        std::fs::read_to_string(dir.path().join("piped.log"))
            .ok()
            .filter(|text| text.contains("through the pipe"))
    });
    assert!(text.contains(" I> through the pipe"));
}

#[test]
fn sighup_reopens_the_log_file() {
    let dir = TempDir::new("log");
    dir.write(
        "s.lua",
        "box.cfg{logger = 'server.log'}\n\
         local fiber = require('fiber')\n\
         local log = require('log')\n\
         fiber.create(function() while true do log.info('tick') fiber.sleep(0.01) end end)\n",
    );
    let mut child = Command::new(binary())
        .arg("s.lua")
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let log = dir.path().join("server.log");
    wait_for("the first ticks", || {
        std::fs::metadata(&log).ok().filter(|m| m.len() > 0)
    });
    std::fs::rename(&log, dir.path().join("server.log.1")).unwrap();
    // SAFETY: kill sends a signal to our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGHUP) };
    wait_for("ticks in the new file", || {
        std::fs::read_to_string(&log)
            .ok()
            .filter(|text| text.contains("tick"))
    });
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = wait_for("exit", || child.try_wait().unwrap());
    assert_eq!(status.code(), Some(0));
}
