//! The server log: Tarantool's line format written through fern to stderr, a file or a pipe.
//!
//! Shared by every thread (the one mutable object that is: a log line may come from anywhere).
//! Each thread names itself with [`set_cord`]; the TX thread also tells which fiber runs with
//! [`set_fiber`], so a line reads
//! `2026-11-27 00:58:10.581 [6274] main/103/interactive I> message`.
//!
//! Until `box.cfg{}` configures the log, lines are written bare (just the message) to stderr,
//! as Tarantool does before its logger is set up.

use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Mutex, MutexGuard};

/// Tarantool's log levels (`log_level` numbers).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Level {
    SysError = 1,
    Error = 2,
    Crit = 3,
    Warn = 4,
    Info = 5,
    Verbose = 6,
    Debug = 7,
}

impl Level {
    /// The letter before `>` in a log line.
    pub fn letter(self) -> char {
        match self {
            Level::SysError => '!',
            Level::Error => 'E',
            Level::Crit => 'C',
            Level::Warn => 'W',
            Level::Info => 'I',
            Level::Verbose => 'V',
            Level::Debug => 'D',
        }
    }

    /// Lines of these levels carry `file:line` before the letter, as Tarantool's do.
    fn shows_location(self) -> bool {
        matches!(self, Level::SysError | Level::Error | Level::Warn)
    }

    /// The `log` crate's level and target that carry this Tarantool level through fern.
    pub fn to_log(self) -> (log::Level, &'static str) {
        match self {
            Level::SysError => (log::Level::Error, "syserror"),
            Level::Error => (log::Level::Error, "tarantula"),
            Level::Crit => (log::Level::Error, "crit"),
            Level::Warn => (log::Level::Warn, "tarantula"),
            Level::Info => (log::Level::Info, "tarantula"),
            Level::Verbose => (log::Level::Debug, "verbose"),
            Level::Debug => (log::Level::Debug, "tarantula"),
        }
    }

    /// The Tarantool level of a `log` crate record (see [`Level::to_log`]).
    pub fn from_log(level: log::Level, target: &str) -> Level {
        match (level, target) {
            (log::Level::Error, "syserror") => Level::SysError,
            (log::Level::Error, "crit") => Level::Crit,
            (log::Level::Error, _) => Level::Error,
            (log::Level::Warn, _) => Level::Warn,
            (log::Level::Info, _) => Level::Info,
            (log::Level::Debug, "verbose") => Level::Verbose,
            _ => Level::Debug,
        }
    }
}

/// `log_level` in force; lines above it are dropped before formatting.
static LOG_LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);

/// Set once `box.cfg{}` configured the log: from then on lines carry the full prefix.
static FORMATTED: AtomicBool = AtomicBool::new(false);

/// Set while the interactive console waits for input on a terminal: lines then go through
/// the line editor's printer so they never garble what the user is typing.
static PROMPT_ACTIVE: AtomicBool = AtomicBool::new(false);

/// Set by `log_format = 'json'`: one JSON object per line instead of the plain prefix.
static JSON: AtomicBool = AtomicBool::new(false);

/// Where log lines go.
enum Sink {
    Stderr,
    File {
        path: String,
        file: File,
    },
    Pipe {
        child: Child,
        stdin: ChildStdin,
    },
    /// The system log, opened with `openlog`; lines go out through `syslog(3)`.
    Syslog,
}

/// The sink and the optional console printer, behind one lock so lines never interleave.
struct Output {
    sink: Sink,
    printer: Option<Box<dyn FnMut(String) + Send>>,
}

static OUTPUT: Mutex<Option<Output>> = Mutex::new(None);

thread_local! {
    /// The thread's cord name (`main`, `wal`, `relay/<peer>`, ...).
    static CORD: RefCell<String> = RefCell::new(String::from("main"));
    /// The running fiber's id and name, on the TX thread.
    static FIBER: RefCell<Option<(u64, Rc<str>)>> = const { RefCell::new(None) };
}

/// Name the calling thread in its log lines.
pub fn set_cord(name: &str) {
    CORD.with(|cord| *cord.borrow_mut() = name.to_string());
}

/// Tell the log which fiber runs now on this thread (`None` for the loop itself).
pub fn set_fiber(fiber: Option<(u64, Rc<str>)>) {
    FIBER.with(|slot| *slot.borrow_mut() = fiber);
}

/// The current `log_level`.
pub fn level() -> u8 {
    LOG_LEVEL.load(Ordering::Relaxed)
}

/// Change `log_level`; values outside 1..7 are clamped.
pub fn set_level(level: i64) {
    LOG_LEVEL.store(level.clamp(1, 7) as u8, Ordering::Relaxed);
}

/// Whether a line of `level` would be written.
pub fn enabled(level: Level) -> bool {
    level as u8 <= LOG_LEVEL.load(Ordering::Relaxed)
}

fn output() -> MutexGuard<'static, Option<Output>> {
    // A panic while holding the lock leaves a usable sink: recover it.
    OUTPUT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Install the logger (stderr, bare lines). Called once at start.
pub fn init() {
    *output() = Some(Output {
        sink: Sink::Stderr,
        printer: None,
    });
    let dispatch = fern::Dispatch::new()
        .level(log::LevelFilter::Trace)
        .filter(|meta| enabled(Level::from_log(meta.level(), meta.target())))
        .chain(fern::Output::call(write_record));
    // A second init (tests in one process) keeps the first logger, which is equivalent.
    let _ = dispatch.apply();
}

/// Configure the sink from the `logger` option: `None` or empty for stderr, `file:PATH` or a
/// plain path for a file (appended), `|CMD` or `pipe:CMD` for a command's stdin. From now on
/// lines carry the full prefix.
pub fn configure(logger: Option<&str>) -> io::Result<()> {
    let sink = open_sink(logger)?;
    let mut guard = output();
    if let Some(out) = guard.as_mut() {
        out.sink = sink;
    }
    FORMATTED.store(true, Ordering::Relaxed);
    Ok(())
}

fn open_sink(logger: Option<&str>) -> io::Result<Sink> {
    let spec = logger.unwrap_or("").trim();
    if spec.is_empty() {
        return Ok(Sink::Stderr);
    }
    if let Some(command) = spec
        .strip_prefix('|')
        .or_else(|| spec.strip_prefix("pipe:"))
    {
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(command.trim())
            .stdin(Stdio::piped())
            .spawn()?;
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| io::Error::other("no stdin"))?;
        return Ok(Sink::Pipe { child, stdin });
    }
    if let Some(options) = spec.strip_prefix("syslog:") {
        open_syslog(options)?;
        return Ok(Sink::Syslog);
    }
    let path = spec.strip_prefix("file:").unwrap_or(spec).to_string();
    let file = open_log_file(&path)?;
    Ok(Sink::File { path, file })
}

/// `syslog:identity=NAME,facility=NAME`: open the system log (identity defaults to
/// "tarantula", facility to local7, as Tarantool's).
fn open_syslog(options: &str) -> io::Result<()> {
    let mut identity = String::from("tarantula");
    let mut facility = libc::LOG_LOCAL7;
    for item in options.split(',').filter(|item| !item.is_empty()) {
        match item.split_once('=') {
            Some(("identity", name)) => identity = name.to_string(),
            Some(("facility", name)) => {
                facility = syslog_facility(name).ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("bad facility '{name}'"),
                    )
                })?
            }
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("bad option '{item}'"),
                ));
            }
        }
    }
    let identity = std::ffi::CString::new(identity)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "bad identity"))?;
    // openlog keeps the pointer for the life of the process: leak the string on purpose.
    let identity: &'static std::ffi::CStr = Box::leak(identity.into_boxed_c_str());
    // SAFETY: `identity` is a NUL-terminated string that lives forever.
    unsafe {
        libc::openlog(
            identity.as_ptr(),
            libc::LOG_PID | libc::LOG_NDELAY,
            facility,
        )
    };
    Ok(())
}

fn syslog_facility(name: &str) -> Option<libc::c_int> {
    Some(match name {
        "kern" => libc::LOG_KERN,
        "user" => libc::LOG_USER,
        "mail" => libc::LOG_MAIL,
        "daemon" => libc::LOG_DAEMON,
        "auth" => libc::LOG_AUTH,
        "syslog" => libc::LOG_SYSLOG,
        "lpr" => libc::LOG_LPR,
        "news" => libc::LOG_NEWS,
        "uucp" => libc::LOG_UUCP,
        "cron" => libc::LOG_CRON,
        "authpriv" => libc::LOG_AUTHPRIV,
        "ftp" => libc::LOG_FTP,
        "local0" => libc::LOG_LOCAL0,
        "local1" => libc::LOG_LOCAL1,
        "local2" => libc::LOG_LOCAL2,
        "local3" => libc::LOG_LOCAL3,
        "local4" => libc::LOG_LOCAL4,
        "local5" => libc::LOG_LOCAL5,
        "local6" => libc::LOG_LOCAL6,
        "local7" => libc::LOG_LOCAL7,
        _ => return None,
    })
}

fn syslog_write(level: Level, text: &str) {
    let priority = match level {
        Level::SysError | Level::Error => libc::LOG_ERR,
        Level::Crit => libc::LOG_CRIT,
        Level::Warn => libc::LOG_WARNING,
        Level::Info => libc::LOG_INFO,
        Level::Verbose | Level::Debug => libc::LOG_DEBUG,
    };
    let Ok(message) = std::ffi::CString::new(text.trim_end().replace('\0', " ")) else {
        return;
    };
    // SAFETY: the format is a literal "%s" and its one argument a NUL-terminated string.
    unsafe { libc::syslog(priority, c"%s".as_ptr(), message.as_ptr()) };
}

/// Switch between plain lines and JSON lines (`log_format`).
pub fn set_json(json: bool) {
    JSON.store(json, Ordering::Relaxed);
}

fn open_log_file(path: &str) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// Reopen the log file (SIGHUP), so a rotated file is left alone and a new one started.
pub fn reopen() -> io::Result<()> {
    let mut guard = output();
    if let Some(Output {
        sink: Sink::File { path, file },
        ..
    }) = guard.as_mut()
    {
        *file = open_log_file(path)?;
    }
    Ok(())
}

/// Route lines through the console's line editor while its prompt waits for input.
pub fn set_printer(printer: Option<Box<dyn FnMut(String) + Send>>) {
    if let Some(out) = output().as_mut() {
        out.printer = printer;
    }
}

/// Mark the interactive prompt as active or not (see `PROMPT_ACTIVE`).
pub fn set_prompt_active(active: bool) {
    PROMPT_ACTIVE.store(active, Ordering::Release);
}

/// Stop a pipe logger's child cleanly and flush a file: called at shutdown.
pub fn shutdown() {
    let mut guard = output();
    if let Some(out) = guard.as_mut() {
        match std::mem::replace(&mut out.sink, Sink::Stderr) {
            Sink::Pipe { mut child, stdin } => {
                drop(stdin);
                let _ = child.wait();
            }
            Sink::File { file, .. } => {
                let _ = file.sync_data();
            }
            Sink::Stderr | Sink::Syslog => {}
        }
    }
}

/// Log a line at a Tarantool level with an explicit source location (the Lua `log` module
/// passes the Lua caller's file and line).
pub fn say(level: Level, file: Option<&str>, line: Option<u32>, message: &str) {
    if !enabled(level) {
        return;
    }
    let (log_level, target) = level.to_log();
    log::logger().log(
        &log::Record::builder()
            .level(log_level)
            .target(target)
            .file(file)
            .line(line)
            .args(format_args!("{message}"))
            .build(),
    );
}

fn write_record(record: &log::Record) {
    let level = Level::from_log(record.level(), record.target());
    let text = if FORMATTED.load(Ordering::Relaxed) {
        format_line(
            level,
            record.file(),
            record.line(),
            &record.args().to_string(),
        )
    } else {
        format!("{}\n", record.args())
    };
    let mut guard = output();
    let Some(out) = guard.as_mut() else {
        let _ = io::stderr().write_all(text.as_bytes());
        return;
    };
    if matches!(out.sink, Sink::Stderr)
        && PROMPT_ACTIVE.load(Ordering::Acquire)
        && let Some(printer) = out.printer.as_mut()
    {
        printer(text);
        return;
    }
    let result = match &mut out.sink {
        Sink::Syslog => {
            syslog_write(level, &text);
            Ok(())
        }
        Sink::Stderr => io::stderr().write_all(text.as_bytes()),
        Sink::File { file, .. } => file.write_all(text.as_bytes()),
        Sink::Pipe { stdin, .. } => stdin.write_all(text.as_bytes()),
    };
    // A log that cannot be written has nowhere to report to; stderr is the last resort.
    if let Err(err) = result {
        let _ = writeln!(io::stderr(), "log write failed: {err}: {text}");
    }
}

/// One formatted line: `date time.ms [pid] cord/fid/name file:line L> message\n`.
pub fn format_line(level: Level, file: Option<&str>, line: Option<u32>, message: &str) -> String {
    let mut text = String::with_capacity(64 + message.len());
    text.push_str(&timestamp());
    text.push_str(&format!(" [{}] ", std::process::id()));
    CORD.with(|cord| text.push_str(&cord.borrow()));
    FIBER.with(|fiber| {
        if let Some((id, name)) = fiber.borrow().as_ref() {
            text.push_str(&format!("/{id}/{name}"));
        }
    });
    text.push(' ');
    if level.shows_location()
        && let (Some(file), Some(line)) = (file, line)
    {
        let base = file.rsplit('/').next().unwrap_or(file);
        text.push_str(&format!("{base}:{line} "));
    }
    text.push(level.letter());
    text.push_str("> ");
    text.push_str(message);
    text.push('\n');
    text
}

/// One JSON line, with the fields Tarantool's `log_format = 'json'` writes.
pub fn format_json(level: Level, file: Option<&str>, line: Option<u32>, message: &str) -> String {
    let level_name = match level {
        Level::SysError => "SYSERROR",
        Level::Error => "ERROR",
        Level::Crit => "CRIT",
        Level::Warn => "WARN",
        Level::Info => "INFO",
        Level::Verbose => "VERBOSE",
        Level::Debug => "DEBUG",
    };
    let mut text = format!(
        "{{\"time\": \"{}\", \"level\": \"{level_name}\", \"message\": {}, \"pid\": {}",
        timestamp().replacen(' ', "T", 1),
        crate::cfg::json_quote(message),
        std::process::id()
    );
    CORD.with(|cord| {
        text.push_str(&format!(
            ", \"cord_name\": {}",
            crate::cfg::json_quote(&cord.borrow())
        ))
    });
    FIBER.with(|fiber| {
        if let Some((id, name)) = fiber.borrow().as_ref() {
            text.push_str(&format!(
                ", \"fiber_id\": {id}, \"fiber_name\": {}",
                crate::cfg::json_quote(name)
            ));
        }
    });
    if let (Some(file), Some(line)) = (file, line) {
        text.push_str(&format!(
            ", \"file\": {}, \"line\": {line}",
            crate::cfg::json_quote(file)
        ));
    }
    text.push_str("}\n");
    text
}

/// Local time as `YYYY-MM-DD HH:MM:SS.mmm`.
fn timestamp() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let seconds = now.as_secs() as libc::time_t;
    // SAFETY: localtime_r writes only into `tm`, which lives on this stack frame; an
    // all-zero `tm` is a valid initial value of the plain C struct.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let converted = unsafe { libc::localtime_r(&seconds, &mut tm) };
    if converted.is_null() {
        return format!("{}.{:03}", now.as_secs(), now.subsec_millis());
    }
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:03}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        now.subsec_millis()
    )
}

/// `crit!("...")`: a critical line (`C>`), such as the version banner.
#[macro_export]
macro_rules! crit {
    ($($arg:tt)*) => { ::log::error!(target: "crit", $($arg)*) };
}

/// `syserror!("...")`: a failed system call (`!>`).
#[macro_export]
macro_rules! syserror {
    ($($arg:tt)*) => { ::log::error!(target: "syserror", $($arg)*) };
}

/// `verbose!("...")`: a `V>` line, between info and debug.
#[macro_export]
macro_rules! verbose {
    ($($arg:tt)*) => { ::log::debug!(target: "verbose", $($arg)*) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_round_trip_through_the_log_crate() {
        for level in [
            Level::SysError,
            Level::Error,
            Level::Crit,
            Level::Warn,
            Level::Info,
            Level::Verbose,
            Level::Debug,
        ] {
            let (log_level, target) = level.to_log();
            assert_eq!(Level::from_log(log_level, target), level);
        }
    }

    #[test]
    fn json_lines_escape_their_message() {
        let line = format_json(Level::Warn, Some("a.lua"), Some(3), "say \"hi\"\n");
        assert!(line.contains("\"level\": \"WARN\""), "{line}");
        assert!(
            line.contains("\"message\": \"say \\\"hi\\\"\\n\""),
            "{line}"
        );
        assert!(line.contains("\"file\": \"a.lua\", \"line\": 3}"), "{line}");
        assert!(line.starts_with("{\"time\": \"2"), "{line}");
    }

    #[test]
    fn line_format_matches_tarantool() {
        set_cord("main");
        set_fiber(Some((103, Rc::from("interactive"))));
        let line = format_line(Level::Info, Some("src/x.rs"), Some(5), "hello");
        // 2026-11-27 00:58:10.581 [6274] main/103/interactive I> hello
        let rest = &line[24..];
        assert_eq!(&line[4..5], "-");
        assert_eq!(&line[19..20], ".");
        assert!(
            rest.starts_with(&format!("[{}] ", std::process::id())),
            "{line}"
        );
        assert!(line.ends_with(" main/103/interactive I> hello\n"), "{line}");
        let warn = format_line(Level::Warn, Some("src/lua/x.lua"), Some(7), "w");
        assert!(
            warn.ends_with(" main/103/interactive x.lua:7 W> w\n"),
            "{warn}"
        );
        set_fiber(None);
        let bare = format_line(Level::Crit, None, None, "c");
        assert!(bare.ends_with("] main C> c\n"), "{bare}");
    }
}
