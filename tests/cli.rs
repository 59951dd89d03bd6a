//! The command line: options, scripts from a file or stdin, `arg`, exit codes, signals, the
//! process lifetime (it stays while something is served and leaves when nothing is).

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use common::{TempDir, binary, wait_for};

fn run(args: &[&str], stdin: &str, dir: &TempDir) -> Output {
    let mut child = Command::new(binary())
        .args(args)
        .current_dir(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().expect("wait")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn help_and_version() {
    let dir = TempDir::new("cli");
    let help = run(&["-h"], "", &dir);
    assert!(help.status.success());
    let help = text(&help.stdout);
    for option in [
        "-h, --help",
        "-V, --version",
        "-e EXPR",
        "-l NAME",
        "-i",
        "--",
        "SCRIPT",
    ] {
        assert!(
            help.contains(option),
            "{option} missing from --help:\n{help}"
        );
    }
    let version = run(&["--version"], "", &dir);
    let version = text(&version.stdout);
    assert!(version.starts_with("Tarantula "), "{version}");
    assert!(version.contains("Tarantool protocol 1.6.9"), "{version}");
    let bad = run(&["-Z"], "", &dir);
    assert_eq!(bad.status.code(), Some(1));
    assert!(text(&bad.stderr).contains("Usage"));
}

#[test]
fn script_gets_arg_and_varargs() {
    let dir = TempDir::new("cli");
    dir.write(
        "s.lua",
        "print(arg[0], arg[1], arg[2], select('#', ...), ...)\nprint(type(arg[-1]))\n",
    );
    let out = run(&["s.lua", "a", "-i"], "", &dir);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "s.lua\ta\t-i\t2\ta\t-i\nstring\n");
}

/// glibc's heap on huge pages: the binary runs itself again with `glibc.malloc.hugetlb=1`
/// added to GLIBC_TUNABLES (after what is there), leaves a setting that names it alone, and
/// the script and its arguments come through the second start unchanged.
#[test]
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn huge_pages_through_glibc_tunables() {
    let dir = TempDir::new("cli");
    dir.write(
        "env.lua",
        "print(os.getenv('GLIBC_TUNABLES'))\nprint(arg[0], select('#', ...), ...)\n",
    );
    let cases = [
        (None, "glibc.malloc.hugetlb=1"),
        (
            Some("glibc.malloc.arena_max=2"),
            "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1",
        ),
        (Some("glibc.malloc.hugetlb=0"), "glibc.malloc.hugetlb=0"),
    ];
    for (given, seen) in cases {
        let mut command = Command::new(binary());
        command
            .args(["env.lua", "a b", "-x"])
            .current_dir(dir.path())
            .stdin(Stdio::null());
        match given {
            Some(value) => command.env("GLIBC_TUNABLES", value),
            None => command.env_remove("GLIBC_TUNABLES"),
        };
        let out = command.output().expect("run");
        assert!(out.status.success(), "{}", text(&out.stderr));
        let expected = format!("{seen}\nenv.lua\t2\ta b\t-x\n");
        assert_eq!(text(&out.stdout), expected, "given {given:?}");
    }
}

#[test]
fn piped_script_and_dash() {
    let dir = TempDir::new("cli");
    let piped = run(&[], "print('piped', 1 + 1)", &dir);
    assert_eq!(text(&piped.stdout), "piped\t2\n");
    let dash = run(&["-", "x", "y"], "print(arg[1], ...)", &dir);
    assert_eq!(text(&dash.stdout), "x\tx\ty\n");
}

#[test]
fn expressions_and_libraries_run_before_the_script() {
    let dir = TempDir::new("cli");
    dir.write("s.lua", "print(X, type(json))\n");
    let out = run(&["-l", "json", "-e", "X = 40 + 2", "s.lua"], "", &dir);
    assert_eq!(text(&out.stdout), "42\ttable\n", "{}", text(&out.stderr));
}

#[test]
fn errors_exit_with_code_1_and_a_message() {
    let dir = TempDir::new("cli");
    dir.write("bad.lua", "error('boom')\n");
    let out = run(&["bad.lua"], "", &dir);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("LuajitError: bad.lua:1: boom"), "{stderr}");
    let missing = run(&["missing.lua"], "", &dir);
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing.stderr).contains("missing.lua"));
    let syntax = run(&[], "x = = 1", &dir);
    assert_eq!(syntax.status.code(), Some(1));
}

#[test]
fn os_exit_codes() {
    let dir = TempDir::new("cli");
    assert_eq!(run(&["-e", "os.exit(7)"], "", &dir).status.code(), Some(7));
    assert_eq!(
        run(&["-e", "os.exit(false)"], "", &dir).status.code(),
        Some(1)
    );
    let out = run(&["-e", "io.write('x') os.exit()"], "", &dir);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout), "x", "buffered output is flushed");
}

#[test]
fn lives_while_fibers_live_then_exits() {
    let dir = TempDir::new("cli");
    let script = "local fiber = require('fiber')\n\
                  fiber.create(function() fiber.sleep(0.2) print('late') end)\n\
                  print('script done')\n";
    let out = run(&[], script, &dir);
    assert!(out.status.success());
    assert_eq!(text(&out.stdout), "script done\nlate\n");
}

#[test]
fn the_console_works_on_a_pipe_with_dash_i() {
    let dir = TempDir::new("cli");
    let out = run(
        &["-i"],
        "1 + 1\nfor\nx = = 1\nerror('boom')\nos.exit(3)\n",
        &dir,
    );
    assert_eq!(out.status.code(), Some(3));
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("Tarantula "), "{stdout}");
    assert!(stdout.contains("tarantool> ---\n- 2\n...\n\n"), "{stdout}");
    assert!(
        stdout.contains("         > ---\n- error: '[string \"for...\"]:2:"),
        "{stdout}"
    );
    assert!(stdout.contains("- error: boom\n"), "{stdout}");
}

#[test]
fn sigterm_and_sigint_shut_down_cleanly_and_remove_the_pid_file() {
    for signal in [libc::SIGTERM, libc::SIGINT] {
        shut_down_by(signal);
    }
}

fn shut_down_by(signal: i32) {
    let dir = TempDir::new("cli");
    dir.write(
        "s.lua",
        "box.cfg{pid_file = 'x.pid'}\nprint('ready')\nio.stdout:flush()\n",
    );
    let mut child = Command::new(binary())
        .arg("s.lua")
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = common::lines_of(child.stdout.take().unwrap());
    assert_eq!(lines.recv_timeout(common::DEADLINE).unwrap(), "ready");
    let pid_file = dir.path().join("x.pid");
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    assert_eq!(pid.trim(), child.id().to_string());
    // SAFETY: kill sends a signal to our own child process.
    unsafe { libc::kill(child.id() as i32, signal) };
    let status = wait_for("exit after the signal", || child.try_wait().unwrap());
    assert_eq!(status.code(), Some(0));
    assert!(!pid_file.exists(), "pid file left behind");
}

#[test]
fn background_detaches_and_the_daemon_serves_until_sigterm() {
    let dir = TempDir::new("cli");
    dir.write(
        "d.lua",
        "box.cfg{background = true, logger = 'd.log', pid_file = 'd.pid'}\n\
         require('log').info('daemon running')\n",
    );
    let out = run(&["d.lua"], "", &dir);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let pid_file = dir.path().join("d.pid");
    let pid: i32 = wait_for("the daemon's pid file", || {
        std::fs::read_to_string(&pid_file).ok()?.trim().parse().ok()
    });
    wait_for("the daemon's log line", || {
        std::fs::read_to_string(dir.path().join("d.log"))
            .ok()
            .filter(|log| log.contains("daemon running"))
    });
    // SAFETY: signal 0 only checks that the daemon process exists; SIGTERM stops it.
    assert_eq!(unsafe { libc::kill(pid, 0) }, 0, "daemon not alive");
    unsafe { libc::kill(pid, libc::SIGTERM) };
    wait_for("the daemon to remove its pid file", || {
        (!pid_file.exists()).then_some(())
    });
}

#[test]
fn background_needs_a_logger_and_username_a_real_user() {
    let dir = TempDir::new("cli");
    let out = run(&["-e", "box.cfg{background = true}"], "", &dir);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("Incorrect value for option 'background'"),
        "{}",
        text(&out.stderr)
    );
    let out = run(&["-e", "box.cfg{username = 'no-such-user-here'}"], "", &dir);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("user 'no-such-user-here' not found"));
}
