//! Small built-in modules: `clock`, `digest`, `uuid`, `errno` (their Rust halves; the
//! 64-bit variants and `tonumber64` are finished in `builtin/misc.lua` with the FFI).
//!
//! Owned by the TX thread.

use base64::Engine;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{
    GeneralPurpose, GeneralPurposeConfig, STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD,
};
use mlua::{Lua, MetaMethod, Table, UserData, UserDataMethods, Value};
use sha1::{Digest, Sha1};

/// Register `clock`, `digest`, `uuid` and `errno` into `package.loaded`.
pub fn open_all(lua: &Lua, loaded: &Table) -> mlua::Result<()> {
    loaded.set("clock", open_clock(lua)?)?;
    loaded.set("digest", open_digest(lua)?)?;
    loaded.set("uuid", open_uuid(lua)?)?;
    loaded.set("errno", open_errno(lua)?)?;
    Ok(())
}

// {{{ clock

fn clock_seconds(clock: libc::clockid_t) -> f64 {
    let (seconds, nanos) = clock_read(clock);
    seconds as f64 + nanos as f64 * 1e-9
}

fn clock_read(clock: libc::clockid_t) -> (i64, i64) {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes only into `ts`, a valid timespec on this stack frame.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    if rc != 0 {
        return (0, 0);
    }
    (ts.tv_sec, ts.tv_nsec)
}

fn open_clock(lua: &Lua) -> mlua::Result<Table> {
    let clock = lua.create_table()?;
    for (name, id) in [
        ("realtime", libc::CLOCK_REALTIME),
        ("time", libc::CLOCK_REALTIME),
        ("monotonic", libc::CLOCK_MONOTONIC),
        ("proc", libc::CLOCK_PROCESS_CPUTIME_ID),
        ("thread", libc::CLOCK_THREAD_CPUTIME_ID),
    ] {
        clock.set(
            name,
            lua.create_function(move |_, ()| Ok(clock_seconds(id)))?,
        )?;
        // Nanoseconds as (high, low) 32-bit halves: a double cannot hold them exactly;
        // builtin/misc.lua joins them into an int64 cdata.
        clock.set(
            format!("{name}_parts"),
            lua.create_function(move |_, ()| {
                let (seconds, nanos) = clock_read(id);
                let total = seconds as u64 * 1_000_000_000 + nanos as u64;
                Ok(((total >> 32) as u32, total as u32))
            })?,
        )?;
    }
    Ok(clock)
}

// }}}

// {{{ digest

/// Tarantool's base64: 72-character lines unless `nowrap`; `urlsafe` implies no padding.
fn base64_encode(data: &[u8], nopad: bool, nowrap: bool, urlsafe: bool) -> String {
    let text = if urlsafe {
        URL_SAFE_NO_PAD.encode(data)
    } else if nopad {
        STANDARD_NO_PAD.encode(data)
    } else {
        STANDARD.encode(data)
    };
    if nowrap || urlsafe || text.len() <= 72 {
        return text;
    }
    let mut wrapped = String::with_capacity(text.len() + text.len() / 72);
    for (n, chunk) in text.as_bytes().chunks(72).enumerate() {
        if n > 0 {
            wrapped.push('\n');
        }
        wrapped.push_str(std::str::from_utf8(chunk).unwrap_or_default());
    }
    wrapped
}

/// A forgiving decoder: Tarantool's base64 ignores stray bits in the last character.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Decode base64 leniently, as Tarantool does: characters outside either alphabet are
/// skipped, both alphabets are accepted, padding is optional.
fn base64_decode(text: &[u8]) -> Vec<u8> {
    let mut clean: Vec<u8> = text
        .iter()
        .filter_map(|&byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'+' | b'/' => Some(byte),
            b'-' => Some(b'+'),
            b'_' => Some(b'/'),
            _ => None,
        })
        .collect();
    // A lone trailing sextet carries no whole byte.
    if clean.len() % 4 == 1 {
        clean.pop();
    }
    LENIENT.decode(&clean).unwrap_or_default()
}

fn sha1(data: &[u8]) -> Vec<u8> {
    Sha1::digest(data).to_vec()
}

fn open_digest(lua: &Lua) -> mlua::Result<Table> {
    let digest = lua.create_table()?;
    digest.set(
        "sha1",
        lua.create_function(|lua, data: mlua::LuaString| {
            lua.create_string(sha1(&data.as_bytes()))
        })?,
    )?;
    digest.set(
        "sha1_hex",
        lua.create_function(|_, data: mlua::LuaString| {
            Ok(sha1(&data.as_bytes())
                .iter()
                .map(|byte| format!("{byte:02x}"))
                .collect::<String>())
        })?,
    )?;
    digest.set(
        "base64_encode",
        lua.create_function(|_, (data, options): (mlua::LuaString, Option<Table>)| {
            let flag = |name: &str| -> bool {
                options
                    .as_ref()
                    .and_then(|o| o.get::<Option<bool>>(name).ok().flatten())
                    .unwrap_or(false)
            };
            Ok(base64_encode(
                &data.as_bytes(),
                flag("nopad"),
                flag("nowrap"),
                flag("urlsafe"),
            ))
        })?,
    )?;
    digest.set(
        "base64_decode",
        lua.create_function(|lua, text: mlua::LuaString| {
            lua.create_string(base64_decode(&text.as_bytes()))
        })?,
    )?;
    Ok(digest)
}

// }}}

// {{{ uuid

/// A UUID object: `str()`, `bin()`, `isnil()`, `tostring`, `==`.
#[derive(Clone, Copy)]
pub struct LuaUuid(pub uuid::Uuid);

impl UserData for LuaUuid {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method("str", |_, this, ()| Ok(this.0.hyphenated().to_string()));
        methods.add_method("bin", |lua, this, order: Option<String>| {
            lua.create_string(uuid_bin(&this.0, order.as_deref()))
        });
        methods.add_method("isnil", |_, this, ()| Ok(this.0.is_nil()));
        methods.add_meta_method(MetaMethod::ToString, |_, this, ()| {
            Ok(this.0.hyphenated().to_string())
        });
        methods.add_meta_method(MetaMethod::Eq, |_, this, other: Value| {
            Ok(match other {
                Value::UserData(other) => other
                    .borrow::<LuaUuid>()
                    .map(|other| other.0 == this.0)
                    .unwrap_or(false),
                _ => false,
            })
        });
    }
}

/// The 16 bytes of a UUID: RFC 4122 order ('b', the default), or with the first three
/// fields little-endian ('l', 'h' on x86), as Tarantool's `uuid:bin(byteorder)`.
fn uuid_bin(id: &uuid::Uuid, order: Option<&str>) -> Vec<u8> {
    match order {
        Some("l") | Some("h") | Some("host") => id.to_bytes_le().to_vec(),
        _ => id.as_bytes().to_vec(),
    }
}

fn open_uuid(lua: &Lua) -> mlua::Result<Table> {
    let module = lua.create_table()?;
    let new = lua.create_function(|_, ()| Ok(LuaUuid(uuid::Uuid::new_v4())))?;
    module.set("new", new.clone())?;
    module.set(
        "str",
        lua.create_function(|_, ()| Ok(uuid::Uuid::new_v4().hyphenated().to_string()))?,
    )?;
    module.set(
        "bin",
        lua.create_function(|lua, order: Option<String>| {
            lua.create_string(uuid_bin(&uuid::Uuid::new_v4(), order.as_deref()))
        })?,
    )?;
    module.set(
        "fromstr",
        lua.create_function(|_, text: mlua::LuaString| {
            Ok(uuid::Uuid::parse_str(&text.to_string_lossy())
                .ok()
                .map(LuaUuid))
        })?,
    )?;
    module.set(
        "frombin",
        lua.create_function(|_, (bytes, order): (mlua::LuaString, Option<String>)| {
            let bytes = bytes.as_bytes();
            let Ok(array) = <[u8; 16]>::try_from(&bytes[..]) else {
                return Ok(None);
            };
            Ok(Some(LuaUuid(match order.as_deref() {
                Some("l") | Some("h") | Some("host") => uuid::Uuid::from_bytes_le(array),
                _ => uuid::Uuid::from_bytes(array),
            })))
        })?,
    )?;
    module.set("NULL", LuaUuid(uuid::Uuid::nil()))?;
    let meta = lua.create_table()?;
    meta.set(
        "__call",
        lua.create_function(|_, _: mlua::MultiValue| Ok(LuaUuid(uuid::Uuid::new_v4())))?,
    )?;
    module.set_metatable(Some(meta))?;
    Ok(module)
}

// }}}

// {{{ errno

/// The errno names scripts test for, with Linux's numbers.
const ERRNO_NAMES: &[(&str, i32)] = &[
    ("EPERM", libc::EPERM),
    ("ENOENT", libc::ENOENT),
    ("ESRCH", libc::ESRCH),
    ("EINTR", libc::EINTR),
    ("EIO", libc::EIO),
    ("ENXIO", libc::ENXIO),
    ("E2BIG", libc::E2BIG),
    ("EBADF", libc::EBADF),
    ("ECHILD", libc::ECHILD),
    ("EAGAIN", libc::EAGAIN),
    ("EWOULDBLOCK", libc::EWOULDBLOCK),
    ("ENOMEM", libc::ENOMEM),
    ("EACCES", libc::EACCES),
    ("EFAULT", libc::EFAULT),
    ("EBUSY", libc::EBUSY),
    ("EEXIST", libc::EEXIST),
    ("EXDEV", libc::EXDEV),
    ("ENODEV", libc::ENODEV),
    ("ENOTDIR", libc::ENOTDIR),
    ("EISDIR", libc::EISDIR),
    ("EINVAL", libc::EINVAL),
    ("ENFILE", libc::ENFILE),
    ("EMFILE", libc::EMFILE),
    ("ENOTTY", libc::ENOTTY),
    ("EFBIG", libc::EFBIG),
    ("ENOSPC", libc::ENOSPC),
    ("ESPIPE", libc::ESPIPE),
    ("EROFS", libc::EROFS),
    ("EMLINK", libc::EMLINK),
    ("EPIPE", libc::EPIPE),
    ("EDOM", libc::EDOM),
    ("ERANGE", libc::ERANGE),
    ("ENAMETOOLONG", libc::ENAMETOOLONG),
    ("ENOTEMPTY", libc::ENOTEMPTY),
    ("ELOOP", libc::ELOOP),
    ("ENOTSUP", libc::ENOTSUP),
    ("EADDRINUSE", libc::EADDRINUSE),
    ("EADDRNOTAVAIL", libc::EADDRNOTAVAIL),
    ("ENETUNREACH", libc::ENETUNREACH),
    ("ECONNABORTED", libc::ECONNABORTED),
    ("ECONNRESET", libc::ECONNRESET),
    ("ENOTCONN", libc::ENOTCONN),
    ("ETIMEDOUT", libc::ETIMEDOUT),
    ("ECONNREFUSED", libc::ECONNREFUSED),
    ("EHOSTUNREACH", libc::EHOSTUNREACH),
    ("EALREADY", libc::EALREADY),
    ("EINPROGRESS", libc::EINPROGRESS),
];

thread_local! {
    /// The errno of the last failed call a script made (through fio), for `errno()`.
    static LAST_ERRNO: std::cell::Cell<i32> = const { std::cell::Cell::new(0) };
}

/// Record the errno of a failed call for `errno()`.
pub fn set_errno(code: i32) {
    LAST_ERRNO.with(|last| last.set(code));
}

/// The C library's message for an errno value.
pub fn strerror(code: i32) -> String {
    crate::error::strerror(&std::io::Error::from_raw_os_error(code))
}

fn open_errno(lua: &Lua) -> mlua::Result<Table> {
    let module = lua.create_table()?;
    for (name, code) in ERRNO_NAMES {
        module.set(*name, *code)?;
    }
    module.set(
        "strerror",
        lua.create_function(|_, code: Option<i32>| {
            let code = code.unwrap_or_else(|| LAST_ERRNO.with(|last| last.get()));
            Ok(strerror(code))
        })?,
    )?;
    // errno() is the last failed call's errno, errno(n) sets it, as in Tarantool.
    let meta = lua.create_table()?;
    meta.set(
        "__call",
        lua.create_function(|_, (_, code): (Value, Option<i32>)| {
            let last = LAST_ERRNO.with(|last| last.get());
            if let Some(code) = code {
                set_errno(code);
            }
            Ok(last)
        })?,
    )?;
    module.set_metatable(Some(meta))?;
    Ok(module)
}

// }}}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_tarantool() {
        let long = base64_encode(&[b'x'; 100], false, false, false);
        assert_eq!(
            long.split('\n').map(str::len).collect::<Vec<_>>(),
            vec![72, 64]
        );
        assert!(!base64_encode(&[b'x'; 100], false, true, false).contains('\n'));
        assert_eq!(base64_encode(b"ab", true, false, false), "YWI");
        assert_eq!(base64_encode(&[255, 254], false, false, true), "__4");
        assert_eq!(base64_decode(b"eHh4\neHh4"), b"xxxxxx");
        assert_eq!(base64_decode(b"!!eHh4"), b"xxx");
        assert_eq!(base64_decode(b"eHh"), b"xx");
        assert_eq!(base64_decode(b"__4"), vec![255, 254]);
    }

    #[test]
    fn sha1_hex_of_abc() {
        let hex: String = sha1(b"abc").iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "a9993e364706816aba3e25717850c26c9cd0d89d");
    }

    #[test]
    fn uuid_byte_orders() {
        let id = uuid::Uuid::parse_str("00112233-4455-6677-8899-aabbccddeeff").unwrap();
        assert_eq!(uuid_bin(&id, None)[0], 0x00);
        assert_eq!(uuid_bin(&id, Some("l"))[0], 0x33);
    }
}
