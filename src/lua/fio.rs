//! `internal.fio`: file-system calls for the `fio` module, run on coio workers.
//!
//! Owned by the TX thread (the Lua side); each call's blocking part runs on a coio worker.
//! A Lua wrapper (`builtin/fio.lua`) calls `internal.fio.call(op, ...)`, which queues the
//! operation and parks the fiber; the worker performs it and its reply becomes the values
//! the fiber resumes with. Failures come back as `nil, "fio: <strerror>"` as Tarantool's do.

use std::ffi::{CStr, CString};
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::rc::Rc;

use mlua::{Lua, MultiValue, Table, Value};

use crate::coio::{CoioJob, CoioOutput};
use crate::tx::Tx;

/// One file-system operation with its arguments.
#[derive(Debug, Clone, PartialEq)]
pub enum FioOp {
    Open {
        path: Vec<u8>,
        flags: i32,
        mode: u32,
    },
    Close {
        fd: i32,
    },
    Read {
        fd: i32,
        count: usize,
    },
    Pread {
        fd: i32,
        count: usize,
        offset: i64,
    },
    Write {
        fd: i32,
        data: Vec<u8>,
    },
    Pwrite {
        fd: i32,
        data: Vec<u8>,
        offset: i64,
    },
    Seek {
        fd: i32,
        offset: i64,
        whence: i32,
    },
    Fsync {
        fd: i32,
    },
    Fstat {
        fd: i32,
    },
    Ftruncate {
        fd: i32,
        length: i64,
    },
    Stat {
        path: Vec<u8>,
        follow: bool,
    },
    Mkdir {
        path: Vec<u8>,
        mode: u32,
    },
    Rmdir {
        path: Vec<u8>,
    },
    Unlink {
        path: Vec<u8>,
    },
    Rename {
        from: Vec<u8>,
        to: Vec<u8>,
    },
    Listdir {
        path: Vec<u8>,
    },
    Glob {
        pattern: Vec<u8>,
    },
    Symlink {
        target: Vec<u8>,
        link: Vec<u8>,
    },
    Link {
        target: Vec<u8>,
        link: Vec<u8>,
    },
    Readlink {
        path: Vec<u8>,
    },
    Truncate {
        path: Vec<u8>,
        length: i64,
    },
    Chmod {
        path: Vec<u8>,
        mode: u32,
    },
    Copyfile {
        from: Vec<u8>,
        to: Vec<u8>,
    },
    Utime {
        path: Vec<u8>,
        atime: f64,
        mtime: f64,
    },
}

/// File metadata, as `fio.stat` returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct StatInfo {
    pub dev: u64,
    pub inode: u64,
    pub mode: u32,
    pub nlink: u64,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u64,
    pub size: i64,
    pub atime: i64,
    pub mtime: i64,
    pub ctime: i64,
    pub blksize: i64,
    pub blocks: i64,
}

/// What an operation gave.
#[derive(Debug, Clone, PartialEq)]
pub enum FioReply {
    Done,
    Fd(i32),
    Bytes(Vec<u8>),
    Count(i64),
    Stat(StatInfo),
    Names(Vec<Vec<u8>>),
    /// `fio: <strerror>` and the errno.
    Failed(String, i32),
}

fn failed(err: io::Error) -> FioReply {
    let errno = err.raw_os_error().unwrap_or(0);
    FioReply::Failed(format!("fio: {}", crate::error::strerror(&err)), errno)
}

fn c_path(path: &[u8]) -> Result<CString, FioReply> {
    CString::new(path)
        .map_err(|_| FioReply::Failed(String::from("fio: path contains a zero byte"), libc::EINVAL))
}

fn os_path(path: &[u8]) -> &std::path::Path {
    std::path::Path::new(std::ffi::OsStr::from_bytes(path))
}

/// Run one operation (blocking; call it on a coio worker).
pub fn execute(op: FioOp) -> FioReply {
    match op {
        FioOp::Open { path, flags, mode } => open(&path, flags, mode),
        FioOp::Close { fd } => check(unsafe_close(fd)),
        FioOp::Read { fd, count } => read(fd, count, None),
        FioOp::Pread { fd, count, offset } => read(fd, count, Some(offset)),
        FioOp::Write { fd, data } => write(fd, &data, None),
        FioOp::Pwrite { fd, data, offset } => write(fd, &data, Some(offset)),
        FioOp::Seek { fd, offset, whence } => seek(fd, offset, whence),
        FioOp::Fsync { fd } => check(fd_call(|| unsafe { libc::fsync(fd) })),
        FioOp::Ftruncate { fd, length } => check(fd_call(|| unsafe {
            libc::ftruncate(fd, length as libc::off_t)
        })),
        FioOp::Fstat { fd } => fstat(fd),
        FioOp::Stat { path, follow } => stat(&path, follow),
        FioOp::Mkdir { path, mode } => mkdir(&path, mode),
        FioOp::Rmdir { path } => done(fs::remove_dir(os_path(&path))),
        FioOp::Unlink { path } => done(fs::remove_file(os_path(&path))),
        FioOp::Rename { from, to } => done(fs::rename(os_path(&from), os_path(&to))),
        FioOp::Listdir { path } => listdir(&path),
        FioOp::Glob { pattern } => glob(&pattern),
        FioOp::Symlink { target, link } => {
            done(std::os::unix::fs::symlink(os_path(&target), os_path(&link)))
        }
        FioOp::Link { target, link } => done(fs::hard_link(os_path(&target), os_path(&link))),
        FioOp::Readlink { path } => match fs::read_link(os_path(&path)) {
            Ok(target) => FioReply::Bytes(target.as_os_str().as_bytes().to_vec()),
            Err(err) => failed(err),
        },
        FioOp::Truncate { path, length } => truncate(&path, length),
        FioOp::Chmod { path, mode } => done(fs::set_permissions(
            os_path(&path),
            fs::Permissions::from_mode(mode),
        )),
        FioOp::Copyfile { from, to } => match fs::copy(os_path(&from), os_path(&to)) {
            Ok(_) => FioReply::Done,
            Err(err) => failed(err),
        },
        FioOp::Utime { path, atime, mtime } => utime(&path, atime, mtime),
    }
}

fn done(result: io::Result<()>) -> FioReply {
    match result {
        Ok(()) => FioReply::Done,
        Err(err) => failed(err),
    }
}

fn check(result: io::Result<i64>) -> FioReply {
    match result {
        Ok(_) => FioReply::Done,
        Err(err) => failed(err),
    }
}

/// Run a libc call returning -1 on failure with errno set.
fn fd_call(call: impl FnOnce() -> libc::c_int) -> io::Result<i64> {
    let rc = call();
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc as i64)
}

fn unsafe_close(fd: i32) -> io::Result<i64> {
    // SAFETY: close on a descriptor the script opened through fio.open; closing an invalid
    // one returns EBADF, nothing worse.
    fd_call(|| unsafe { libc::close(fd) })
}

fn open(path: &[u8], flags: i32, mode: u32) -> FioReply {
    let path = match c_path(path) {
        Ok(path) => path,
        Err(reply) => return reply,
    };
    // O_CLOEXEC: a logger pipe child must not inherit script files.
    // SAFETY: `path` is a valid NUL-terminated string for the duration of the call.
    let fd = unsafe { libc::open(path.as_ptr(), flags | libc::O_CLOEXEC, mode as libc::c_uint) };
    if fd < 0 {
        return failed(io::Error::last_os_error());
    }
    FioReply::Fd(fd)
}

fn read(fd: i32, count: usize, offset: Option<i64>) -> FioReply {
    let mut buf = vec![0u8; count];
    let mut filled = 0;
    while filled < count {
        let rest = &mut buf[filled..];
        // SAFETY: `rest` is valid writable memory of `rest.len()` bytes.
        let rc = unsafe {
            match offset {
                Some(offset) => libc::pread(
                    fd,
                    rest.as_mut_ptr().cast(),
                    rest.len(),
                    (offset + filled as i64) as libc::off_t,
                ),
                None => libc::read(fd, rest.as_mut_ptr().cast(), rest.len()),
            }
        };
        if rc < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return failed(err);
        }
        if rc == 0 {
            break;
        }
        filled += rc as usize;
    }
    buf.truncate(filled);
    FioReply::Bytes(buf)
}

fn write(fd: i32, data: &[u8], offset: Option<i64>) -> FioReply {
    let mut written = 0;
    while written < data.len() {
        let rest = &data[written..];
        // SAFETY: `rest` is valid readable memory of `rest.len()` bytes.
        let rc = unsafe {
            match offset {
                Some(offset) => libc::pwrite(
                    fd,
                    rest.as_ptr().cast(),
                    rest.len(),
                    (offset + written as i64) as libc::off_t,
                ),
                None => libc::write(fd, rest.as_ptr().cast(), rest.len()),
            }
        };
        if rc < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return failed(err);
        }
        written += rc as usize;
    }
    FioReply::Done
}

fn seek(fd: i32, offset: i64, whence: i32) -> FioReply {
    // SAFETY: lseek only takes integers.
    let rc = unsafe { libc::lseek(fd, offset as libc::off_t, whence) };
    if rc < 0 {
        return failed(io::Error::last_os_error());
    }
    FioReply::Count(rc as i64)
}

fn stat_info(meta: &fs::Metadata) -> StatInfo {
    StatInfo {
        dev: meta.dev(),
        inode: meta.ino(),
        mode: meta.mode(),
        nlink: meta.nlink(),
        uid: meta.uid(),
        gid: meta.gid(),
        rdev: meta.rdev(),
        size: meta.size() as i64,
        atime: meta.atime(),
        mtime: meta.mtime(),
        ctime: meta.ctime(),
        blksize: meta.blksize() as i64,
        blocks: meta.blocks() as i64,
    }
}

fn stat(path: &[u8], follow: bool) -> FioReply {
    let meta = if follow {
        fs::metadata(os_path(path))
    } else {
        fs::symlink_metadata(os_path(path))
    };
    match meta {
        Ok(meta) => FioReply::Stat(stat_info(&meta)),
        Err(err) => failed(err),
    }
}

fn fstat(fd: i32) -> FioReply {
    let path = format!("/proc/self/fd/{fd}");
    match fs::metadata(path) {
        Ok(meta) => FioReply::Stat(stat_info(&meta)),
        Err(err) => failed(err),
    }
}

fn mkdir(path: &[u8], mode: u32) -> FioReply {
    use std::os::unix::fs::DirBuilderExt;
    done(fs::DirBuilder::new().mode(mode).create(os_path(path)))
}

fn listdir(path: &[u8]) -> FioReply {
    let entries = match fs::read_dir(os_path(path)) {
        Ok(entries) => entries,
        Err(err) => return failed(err),
    };
    let mut names: Vec<Vec<u8>> = entries
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().as_bytes().to_vec())
        .collect();
    names.sort();
    FioReply::Names(names)
}

fn glob(pattern: &[u8]) -> FioReply {
    let pattern = match c_path(pattern) {
        Ok(pattern) => pattern,
        Err(reply) => return reply,
    };
    // SAFETY: `found` is zeroed (a valid empty glob_t); glob fills it and globfree releases
    // what it allocated; the paths are copied out before globfree.
    unsafe {
        let mut found: libc::glob_t = std::mem::zeroed();
        let rc = libc::glob(pattern.as_ptr(), 0, None, &mut found);
        let mut names = Vec::new();
        if rc == 0 {
            for n in 0..found.gl_pathc {
                let entry = *found.gl_pathv.add(n);
                if !entry.is_null() {
                    names.push(CStr::from_ptr(entry).to_bytes().to_vec());
                }
            }
        }
        libc::globfree(&mut found);
        FioReply::Names(names)
    }
}

fn truncate(path: &[u8], length: i64) -> FioReply {
    match fs::OpenOptions::new().write(true).open(os_path(path)) {
        Ok(file) => done(file.set_len(length.max(0) as u64)),
        Err(err) => failed(err),
    }
}

fn utime(path: &[u8], atime: f64, mtime: f64) -> FioReply {
    let path = match c_path(path) {
        Ok(path) => path,
        Err(reply) => return reply,
    };
    let spec = |seconds: f64| libc::timespec {
        tv_sec: seconds.trunc() as libc::time_t,
        tv_nsec: (seconds.fract() * 1e9) as libc::c_long,
    };
    let times = [spec(atime), spec(mtime)];
    // SAFETY: `path` is NUL-terminated and `times` holds the two timespecs utimensat reads.
    let rc = unsafe { libc::utimensat(libc::AT_FDCWD, path.as_ptr(), times.as_ptr(), 0) };
    if rc < 0 {
        return failed(io::Error::last_os_error());
    }
    FioReply::Done
}

// {{{ Lua side

/// Convert a reply into the values the fiber resumes with.
fn reply_to_lua(lua: &Lua, reply: FioReply) -> mlua::Result<MultiValue> {
    let value = match reply {
        FioReply::Done => Value::Boolean(true),
        FioReply::Fd(fd) => Value::Integer(fd as i64),
        FioReply::Count(count) => Value::Number(count as f64),
        FioReply::Bytes(bytes) => Value::String(lua.create_string(bytes)?),
        FioReply::Names(names) => {
            let table = lua.create_table()?;
            for (n, name) in names.into_iter().enumerate() {
                table.raw_set(n + 1, lua.create_string(name)?)?;
            }
            Value::Table(table)
        }
        FioReply::Stat(info) => Value::Table(stat_table(lua, &info)?),
        FioReply::Failed(message, errno) => {
            super::misc::set_errno(errno);
            return Ok(MultiValue::from_iter([
                Value::Nil,
                Value::String(lua.create_string(message)?),
                Value::Integer(errno as i64),
            ]));
        }
    };
    Ok(MultiValue::from_iter([value]))
}

fn stat_table(lua: &Lua, info: &StatInfo) -> mlua::Result<Table> {
    let table = lua.create_table()?;
    table.set("dev", info.dev)?;
    table.set("inode", info.inode)?;
    table.set("mode", info.mode)?;
    table.set("nlink", info.nlink)?;
    table.set("uid", info.uid)?;
    table.set("gid", info.gid)?;
    table.set("rdev", info.rdev)?;
    table.set("size", info.size)?;
    table.set("atime", info.atime)?;
    table.set("mtime", info.mtime)?;
    table.set("ctime", info.ctime)?;
    table.set("blksize", info.blksize)?;
    table.set("blocks", info.blocks)?;
    Ok(table)
}

fn bytes(value: &Value) -> Option<Vec<u8>> {
    match value {
        Value::String(text) => Some(text.as_bytes().to_vec()),
        Value::Number(n) => Some(n.to_string().into_bytes()),
        Value::Integer(n) => Some(n.to_string().into_bytes()),
        _ => None,
    }
}

fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Integer(n) => Some(*n as f64),
        Value::Number(n) => Some(*n),
        _ => None,
    }
}

/// Build an operation from its name and Lua arguments; `None` for a bad call.
fn op_from_lua(name: &str, args: &[Value]) -> Option<FioOp> {
    let arg = |n: usize| args.get(n).unwrap_or(&Value::Nil);
    let path = |n: usize| bytes(arg(n));
    let int = |n: usize| number(arg(n)).map(|v| v as i64);
    Some(match name {
        "open" => FioOp::Open {
            path: path(0)?,
            flags: int(1)? as i32,
            mode: int(2)? as u32,
        },
        "close" => FioOp::Close { fd: int(0)? as i32 },
        "read" => FioOp::Read {
            fd: int(0)? as i32,
            count: int(1)?.max(0) as usize,
        },
        "pread" => FioOp::Pread {
            fd: int(0)? as i32,
            count: int(1)?.max(0) as usize,
            offset: int(2)?,
        },
        "write" => FioOp::Write {
            fd: int(0)? as i32,
            data: path(1)?,
        },
        "pwrite" => FioOp::Pwrite {
            fd: int(0)? as i32,
            data: path(1)?,
            offset: int(2)?,
        },
        "seek" => FioOp::Seek {
            fd: int(0)? as i32,
            offset: int(1)?,
            whence: int(2)? as i32,
        },
        "fsync" => FioOp::Fsync { fd: int(0)? as i32 },
        "fstat" => FioOp::Fstat { fd: int(0)? as i32 },
        "ftruncate" => FioOp::Ftruncate {
            fd: int(0)? as i32,
            length: int(1)?,
        },
        "stat" => FioOp::Stat {
            path: path(0)?,
            follow: true,
        },
        "lstat" => FioOp::Stat {
            path: path(0)?,
            follow: false,
        },
        "mkdir" => FioOp::Mkdir {
            path: path(0)?,
            mode: int(1)? as u32,
        },
        "rmdir" => FioOp::Rmdir { path: path(0)? },
        "unlink" => FioOp::Unlink { path: path(0)? },
        "rename" => FioOp::Rename {
            from: path(0)?,
            to: path(1)?,
        },
        "listdir" => FioOp::Listdir { path: path(0)? },
        "glob" => FioOp::Glob { pattern: path(0)? },
        "symlink" => FioOp::Symlink {
            target: path(0)?,
            link: path(1)?,
        },
        "link" => FioOp::Link {
            target: path(0)?,
            link: path(1)?,
        },
        "readlink" => FioOp::Readlink { path: path(0)? },
        "truncate" => FioOp::Truncate {
            path: path(0)?,
            length: int(1)?,
        },
        "chmod" => FioOp::Chmod {
            path: path(0)?,
            mode: int(1)? as u32,
        },
        "copyfile" => FioOp::Copyfile {
            from: path(0)?,
            to: path(1)?,
        },
        "utime" => FioOp::Utime {
            path: path(0)?,
            atime: number(arg(1))?,
            mtime: number(arg(2))?,
        },
        _ => return None,
    })
}

/// `fio.c.flag`: the open flags scripts name.
const FLAGS: &[(&str, i32)] = &[
    ("O_RDONLY", libc::O_RDONLY),
    ("O_WRONLY", libc::O_WRONLY),
    ("O_RDWR", libc::O_RDWR),
    ("O_CREAT", libc::O_CREAT),
    ("O_EXCL", libc::O_EXCL),
    ("O_NOCTTY", libc::O_NOCTTY),
    ("O_TRUNC", libc::O_TRUNC),
    ("O_APPEND", libc::O_APPEND),
    ("O_NONBLOCK", libc::O_NONBLOCK),
    ("O_SYNC", libc::O_SYNC),
    ("O_DSYNC", libc::O_DSYNC),
    ("O_DIRECT", libc::O_DIRECT),
    ("O_DIRECTORY", libc::O_DIRECTORY),
    ("O_NOFOLLOW", libc::O_NOFOLLOW),
    ("O_CLOEXEC", libc::O_CLOEXEC),
];

/// `fio.c.mode`: permission bits.
const MODES: &[(&str, i32)] = &[
    ("S_IRWXU", 0o700),
    ("S_IRUSR", 0o400),
    ("S_IWUSR", 0o200),
    ("S_IXUSR", 0o100),
    ("S_IRWXG", 0o070),
    ("S_IRGRP", 0o040),
    ("S_IWGRP", 0o020),
    ("S_IXGRP", 0o010),
    ("S_IRWXO", 0o007),
    ("S_IROTH", 0o004),
    ("S_IWOTH", 0o002),
    ("S_IXOTH", 0o001),
];

/// `fio.c.seek`: whence values.
const SEEK: &[(&str, i32)] = &[
    ("SEEK_SET", libc::SEEK_SET),
    ("SEEK_CUR", libc::SEEK_CUR),
    ("SEEK_END", libc::SEEK_END),
];

fn constants(lua: &Lua, pairs: &[(&str, i32)]) -> mlua::Result<Table> {
    let table = lua.create_table()?;
    for (name, value) in pairs {
        table.set(*name, *value)?;
    }
    Ok(table)
}

/// The `internal.fio` table: `call(op, ...)` queues an operation for the current fiber.
pub fn open_module(lua: &Lua, tx: &Rc<Tx>) -> mlua::Result<Table> {
    let module = lua.create_table()?;
    module.set("flags", constants(lua, FLAGS)?)?;
    module.set("modes", constants(lua, MODES)?)?;
    module.set("seek", constants(lua, SEEK)?)?;
    module.set(
        "cwd",
        lua.create_function(|lua, ()| match std::env::current_dir() {
            Ok(dir) => Ok(Value::String(
                lua.create_string(dir.as_os_str().as_bytes())?,
            )),
            Err(_) => Ok(Value::Nil),
        })?,
    )?;
    module.set(
        "chdir",
        lua.create_function(|_, path: mlua::LuaString| {
            Ok(std::env::set_current_dir(os_path(&path.as_bytes())).is_ok())
        })?,
    )?;
    let t = tx.clone();
    module.set(
        "call",
        lua.create_function(move |lua, (name, args): (String, mlua::Variadic<Value>)| {
            let Some(op) = op_from_lua(&name, &args) else {
                return Ok(MultiValue::from_iter([
                    Value::Nil,
                    Value::String(lua.create_string(format!("fio.{name}: bad arguments"))?),
                ]));
            };
            submit(lua, &t, op)
        })?,
    )?;
    Ok(module)
}

/// Queue `op` on coio for the current fiber and park it (not cancellable: the worker runs
/// the call to completion anyway). Returns `'wait'`, or `'busy'` when the queue is full.
fn submit(lua: &Lua, tx: &Tx, op: FioOp) -> mlua::Result<MultiValue> {
    let fiber = tx
        .sched
        .borrow()
        .current()
        .ok_or_else(|| mlua::Error::runtime("fio: not in a fiber"))?;
    let job: CoioJob = Box::new(move || {
        let reply = execute(op);
        let output: CoioOutput = Box::new(move |lua: &Lua| reply_to_lua(lua, reply));
        output
    });
    if tx.coio.borrow_mut().submit(fiber, job).is_err() {
        return Ok(MultiValue::from_iter([Value::String(
            lua.create_string("busy")?,
        )]));
    }
    tx.sched
        .borrow_mut()
        .suspend_current(None, false)
        .map_err(|_| mlua::Error::runtime("fio: not in a fiber"))?;
    Ok(MultiValue::from_iter([Value::String(
        lua.create_string("wait")?,
    )]))
}

// }}}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> Vec<u8> {
        let dir = std::env::temp_dir().join(format!("tarantula-fio-{}-{name}", std::process::id()));
        dir.as_os_str().as_bytes().to_vec()
    }

    #[test]
    fn file_round_trip() {
        let path = temp("file");
        let flags = libc::O_CREAT | libc::O_RDWR | libc::O_TRUNC;
        let FioReply::Fd(fd) = execute(FioOp::Open {
            path: path.clone(),
            flags,
            mode: 0o644,
        }) else {
            panic!("open failed");
        };
        assert_eq!(
            execute(FioOp::Write {
                fd,
                data: b"hello world".to_vec()
            }),
            FioReply::Done
        );
        assert_eq!(
            execute(FioOp::Seek {
                fd,
                offset: 0,
                whence: libc::SEEK_SET
            }),
            FioReply::Count(0)
        );
        assert_eq!(
            execute(FioOp::Read { fd, count: 5 }),
            FioReply::Bytes(b"hello".to_vec())
        );
        assert_eq!(
            execute(FioOp::Pread {
                fd,
                count: 3,
                offset: 6
            }),
            FioReply::Bytes(b"wor".to_vec())
        );
        assert_eq!(
            execute(FioOp::Read { fd, count: 100 }),
            FioReply::Bytes(b" world".to_vec())
        );
        let FioReply::Stat(info) = execute(FioOp::Fstat { fd }) else {
            panic!("fstat")
        };
        assert_eq!(info.size, 11);
        assert_eq!(execute(FioOp::Close { fd }), FioReply::Done);
        assert_eq!(
            execute(FioOp::Unlink { path: path.clone() }),
            FioReply::Done
        );
        let FioReply::Failed(message, errno) = execute(FioOp::Unlink { path }) else {
            panic!("second unlink must fail");
        };
        assert_eq!(message, "fio: No such file or directory");
        assert_eq!(errno, libc::ENOENT);
    }

    #[test]
    fn directories_and_glob() {
        let dir = temp("dir");
        assert_eq!(
            execute(FioOp::Mkdir {
                path: dir.clone(),
                mode: 0o755
            }),
            FioReply::Done
        );
        assert!(matches!(
            execute(FioOp::Mkdir {
                path: dir.clone(),
                mode: 0o755
            }),
            FioReply::Failed(..)
        ));
        for name in ["b.lua", "a.lua", "c.txt"] {
            let mut path = dir.clone();
            path.extend_from_slice(format!("/{name}").as_bytes());
            std::fs::write(os_path(&path), "").unwrap();
        }
        let FioReply::Names(names) = execute(FioOp::Listdir { path: dir.clone() }) else {
            panic!("listdir");
        };
        assert_eq!(
            names,
            vec![b"a.lua".to_vec(), b"b.lua".to_vec(), b"c.txt".to_vec()]
        );
        let mut pattern = dir.clone();
        pattern.extend_from_slice(b"/*.lua");
        let FioReply::Names(found) = execute(FioOp::Glob { pattern }) else {
            panic!("glob")
        };
        assert_eq!(found.len(), 2);
        std::fs::remove_dir_all(os_path(&dir)).unwrap();
    }
}
