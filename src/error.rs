//! One error type for everything a client or a script can see: `BoxError`, carrying
//! Tarantool's numeric code and its formatted message.
//!
//! Owned by nobody: plain values, created and read on any thread. The catalogue mirrors
//! Tarantool 1.6's `errcode.h`: numbers are stable, they travel on the wire as `0x8000|code`
//! and are visible in Lua as `box.error.NAME`.

use std::fmt;

/// A Tarantool error code (the numbers of `errcode.h`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ErrCode(pub u32);

/// One row of the catalogue: code, name without the `ER_` prefix, printf-style template.
pub struct ErrCodeDef {
    pub code: u32,
    pub name: &'static str,
    pub template: &'static str,
}

macro_rules! errcodes {
    ($( $name:ident = $code:literal, $template:literal; )*) => {
        impl ErrCode {
            $( pub const $name: ErrCode = ErrCode($code); )*
        }
        /// Every known code, in numeric order.
        pub static ERRCODES: &[ErrCodeDef] = &[
            $( ErrCodeDef { code: $code, name: stringify!($name), template: $template }, )*
        ];
    };
}

errcodes! {
    UNKNOWN = 0, "Unknown error";
    ILLEGAL_PARAMS = 1, "Illegal parameters, %s";
    PROC_LUA = 32, "%s";
    UNKNOWN_REQUEST_TYPE = 48, "Unknown request type %u";
    RELOAD_CFG = 58, "Can't set option '%s' dynamically";
    CFG = 59, "Incorrect value for option '%s': %s";
    TIMEOUT = 78, "Timeout exceeded";
}

impl ErrCode {
    /// The catalogue row of this code, if the code is known.
    pub fn def(self) -> Option<&'static ErrCodeDef> {
        ERRCODES
            .binary_search_by_key(&self.0, |def| def.code)
            .ok()
            .map(|i| &ERRCODES[i])
    }

    /// `ER_NAME`, as Tarantool logs it.
    pub fn name(self) -> String {
        match self.def() {
            Some(def) => format!("ER_{}", def.name),
            None => format!("ER_{}", self.0),
        }
    }
}

/// An error with Tarantool's code and message. `kind` is what Lua sees as `e.type`.
#[derive(Clone, Debug, PartialEq)]
pub struct BoxError {
    pub code: ErrCode,
    pub message: String,
    pub kind: ErrorKind,
}

/// The error class, as Tarantool names it in `e.type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// A request or a user mistake: wrong arguments, duplicate key, access denied.
    ClientError,
    /// An operating-system call failed; the message carries `strerror`.
    SystemError,
    /// A Lua error raised by user code, wrapped for the wire.
    LuajitError,
    /// A fiber was cancelled while it waited.
    FiberIsCancelled,
    /// Out of memory or over a configured limit.
    OutOfMemory,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::ClientError => "ClientError",
            ErrorKind::SystemError => "SystemError",
            ErrorKind::LuajitError => "LuajitError",
            ErrorKind::FiberIsCancelled => "FiberIsCancelled",
            ErrorKind::OutOfMemory => "OutOfMemory",
        }
    }
}

impl BoxError {
    /// A client error of `code` with its catalogue template filled from `args`.
    pub fn new(code: ErrCode, args: &[&dyn fmt::Display]) -> BoxError {
        let template = code.def().map(|def| def.template).unwrap_or("Unknown error");
        BoxError {
            code,
            message: format_template(template, args),
            kind: ErrorKind::ClientError,
        }
    }

    /// A client error with a message given verbatim.
    pub fn with_message(code: ErrCode, message: impl Into<String>) -> BoxError {
        BoxError {
            code,
            message: message.into(),
            kind: ErrorKind::ClientError,
        }
    }

    /// `Incorrect value for option '<option>': <reason>`.
    pub fn cfg(option: &str, reason: &str) -> BoxError {
        BoxError::new(ErrCode::CFG, &[&option, &reason])
    }

    /// A failed system call: ER_SYSTEM-like, message `<what>: <strerror>`.
    pub fn system(what: &str, err: &std::io::Error) -> BoxError {
        BoxError {
            code: ErrCode::UNKNOWN,
            message: format!("{what}: {}", strerror(err)),
            kind: ErrorKind::SystemError,
        }
    }
}

/// The C library's text for an I/O error, without Rust's " (os error N)" suffix.
pub fn strerror(err: &std::io::Error) -> String {
    let text = err.to_string();
    match text.find(" (os error ") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

impl fmt::Display for BoxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for BoxError {}

/// Fill a printf-style template: each conversion (`%s`, `%u`, `%d`, `%lld`, `%llu`, `%c`,
/// `%.*s`, ...) takes the next argument's `Display` text; `%%` is a percent sign. Missing
/// arguments print as empty, extra ones are ignored: a template bug must not panic.
pub fn format_template(template: &str, args: &[&dyn fmt::Display]) -> String {
    let mut out = String::with_capacity(template.len() + 16);
    let mut args = args.iter();
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&'%') {
            chars.next();
            out.push('%');
            continue;
        }
        // Skip flags, width, precision and length modifiers up to the conversion letter.
        for spec in chars.by_ref() {
            if spec.is_ascii_alphabetic() && !matches!(spec, 'l' | 'h' | 'z' | 'j' | 't' | 'L') {
                break;
            }
        }
        if let Some(arg) = args.next() {
            out.push_str(&arg.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_conversions() {
        assert_eq!(
            format_template("Incorrect value for option '%s': %s", &[&"x", &"bad"]),
            "Incorrect value for option 'x': bad"
        );
        assert_eq!(format_template("%u%% of %lld", &[&5, &-7i64]), "5% of -7");
        assert_eq!(format_template("Procedure '%.*s'", &[&"f"]), "Procedure 'f'");
        assert_eq!(format_template("missing %s and %s", &[&"one"]), "missing one and ");
    }

    #[test]
    fn catalogue_is_sorted_and_unique() {
        for pair in ERRCODES.windows(2) {
            assert!(pair[0].code < pair[1].code, "{} before {}", pair[0].name, pair[1].name);
        }
        assert_eq!(ErrCode::CFG.name(), "ER_CFG");
        assert_eq!(ErrCode(9999).def().map(|d| d.code), None);
    }
}
