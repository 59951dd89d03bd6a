//! One error type for everything a client or a script can see: `BoxError`, carrying
//! Tarantool's numeric code and its formatted message.
//!
//! Owned by nobody: plain values, created and read on any thread. The catalogue mirrors
//! Tarantool 1.6's `errcode.h`: numbers are stable, they travel on the wire as `0x8000|code`
//! and are visible in Lua as `box.error.NAME`.
//!
//! Only client errors carry their own code. Every other error class reaches the wire the way
//! 1.6's `ClientError::get_errcode` maps it: out of memory as `MEMORY_ISSUE`, everything else
//! (system errors, Lua errors, a cancelled fiber) as `PROC_LUA`. That is why 1.6 needs no code
//! of its own for "fiber is cancelled", and neither do we.

use std::fmt;

/// A Tarantool error code (the numbers of `errcode.h`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ErrCode(pub u32);

/// One row of the catalogue.
pub struct ErrCodeDef {
    /// The stable number, as sent on the wire (without the `0x8000` flag).
    pub code: u32,
    /// The name without the `ER_` prefix, as Lua sees it in `box.error.NAME`.
    pub name: &'static str,
    /// The printf-style message template, exactly as 1.6 words it.
    pub template: &'static str,
}

/// Builds both views of the catalogue from one table: an `ErrCode` constant per row (its doc
/// is the template) and the sorted `ERRCODES` slice used for lookups.
macro_rules! errcodes {
    ($( $name:ident = $code:literal, $template:literal; )*) => {
        impl ErrCode {
            $(
                #[doc = $template]
                pub const $name: ErrCode = ErrCode($code);
            )*
        }
        /// Every known code, in numeric order.
        pub static ERRCODES: &[ErrCodeDef] = &[
            $( ErrCodeDef { code: $code, name: stringify!($name), template: $template }, )*
        ];
    };
}

errcodes! {
    // Tarantool 1.6.9 (`archive/1.6:src/box/errcode.h`): every code 0..=113, in order.
    UNKNOWN = 0, "Unknown error";
    ILLEGAL_PARAMS = 1, "Illegal parameters, %s";
    MEMORY_ISSUE = 2, "Failed to allocate %u bytes in %s for %s";
    TUPLE_FOUND = 3, "Duplicate key exists in unique index '%s' in space '%s'";
    TUPLE_NOT_FOUND = 4, "Tuple doesn't exist in index '%s' in space '%s'";
    UNSUPPORTED = 5, "%s does not support %s";
    NONMASTER = 6, "Can't modify data on a replication slave. My master is: %s";
    READONLY = 7, "Can't modify data because this server is in read-only mode.";
    INJECTION = 8, "Error injection '%s'";
    CREATE_SPACE = 9, "Failed to create space '%s': %s";
    SPACE_EXISTS = 10, "Space '%s' already exists";
    DROP_SPACE = 11, "Can't drop space '%s': %s";
    ALTER_SPACE = 12, "Can't modify space '%s': %s";
    INDEX_TYPE = 13, "Unsupported index type supplied for index '%s' in space '%s'";
    MODIFY_INDEX = 14, "Can't create or modify index '%s' in space '%s': %s";
    LAST_DROP = 15, "Can't drop the primary key in a system space, space '%s'";
    TUPLE_FORMAT_LIMIT = 16, "Tuple format limit reached: %u";
    DROP_PRIMARY_KEY = 17, "Can't drop primary key in space '%s' while secondary keys exist";
    KEY_PART_TYPE = 18, "Supplied key type of part %u does not match index part type: expected %s";
    EXACT_MATCH = 19, "Invalid key part count in an exact match (expected %u, got %u)";
    INVALID_MSGPACK = 20, "Invalid MsgPack - %s";
    PROC_RET = 21, "msgpack.encode: can not encode Lua type '%s'";
    TUPLE_NOT_ARRAY = 22, "Tuple/Key must be MsgPack array";
    FIELD_TYPE = 23, "Tuple field %u type does not match one required by operation: expected %s";
    FIELD_TYPE_MISMATCH = 24, "Ambiguous field type in index '%s', key part %u. Requested type \
        is %s but the field has previously been defined as %s";
    SPLICE = 25, "SPLICE error on field %u: %s";
    ARG_TYPE = 26, "Argument type in operation '%c' on field %u does not match field type: \
        expected a %s";
    TUPLE_IS_TOO_LONG = 27, "Tuple is too long %u";
    UNKNOWN_UPDATE_OP = 28, "Unknown UPDATE operation";
    UPDATE_FIELD = 29, "Field %u UPDATE error: %s";
    FIBER_STACK = 30, "Can not create a new fiber: recursion limit reached";
    KEY_PART_COUNT = 31, "Invalid key part count (expected [0..%u], got %u)";
    PROC_LUA = 32, "%s";
    NO_SUCH_PROC = 33, "Procedure '%.*s' is not defined";
    NO_SUCH_TRIGGER = 34, "Trigger is not found";
    NO_SUCH_INDEX = 35, "No index #%u is defined in space '%s'";
    NO_SUCH_SPACE = 36, "Space '%s' does not exist";
    NO_SUCH_FIELD = 37, "Field %d was not found in the tuple";
    SPACE_FIELD_COUNT = 38, "Tuple field count %u does not match space '%s' field count %u";
    INDEX_FIELD_COUNT = 39, "Tuple field count %u is less than required by a defined index \
        (expected %u)";
    WAL_IO = 40, "Failed to write to disk";
    MORE_THAN_ONE_TUPLE = 41, "More than one tuple found by get()";
    ACCESS_DENIED = 42, "%s access on %s is denied for user '%s'";
    CREATE_USER = 43, "Failed to create user '%s': %s";
    DROP_USER = 44, "Failed to drop user or role '%s': %s";
    NO_SUCH_USER = 45, "User '%s' is not found";
    USER_EXISTS = 46, "User '%s' already exists";
    PASSWORD_MISMATCH = 47, "Incorrect password supplied for user '%s'";
    UNKNOWN_REQUEST_TYPE = 48, "Unknown request type %u";
    UNKNOWN_SCHEMA_OBJECT = 49, "Unknown object type '%s'";
    CREATE_FUNCTION = 50, "Failed to create function '%s': %s";
    NO_SUCH_FUNCTION = 51, "Function '%s' does not exist";
    FUNCTION_EXISTS = 52, "Function '%s' already exists";
    FUNCTION_ACCESS_DENIED = 53, "%s access is denied for user '%s' to function '%s'";
    FUNCTION_MAX = 54, "A limit on the total number of functions has been reached: %u";
    SPACE_ACCESS_DENIED = 55, "%s access is denied for user '%s' to space '%s'";
    USER_MAX = 56, "A limit on the total number of users has been reached: %u";
    NO_SUCH_ENGINE = 57, "Space engine '%s' does not exist";
    RELOAD_CFG = 58, "Can't set option '%s' dynamically";
    CFG = 59, "Incorrect value for option '%s': %s";
    SOPHIA = 60, "%s";
    LOCAL_SERVER_IS_NOT_ACTIVE = 61, "Local server is not active";
    UNKNOWN_SERVER = 62, "Server %s is not registered with the cluster";
    CLUSTER_ID_MISMATCH = 63, "Cluster id of the replica %s doesn't match cluster id of the \
        master %s";
    INVALID_UUID = 64, "Invalid UUID: %s";
    CLUSTER_ID_IS_RO = 65, "Can't reset cluster id: it is already assigned";
    RESERVED66 = 66, "Reserved66";
    SERVER_ID_IS_RESERVED = 67, "Can't initialize server id with a reserved value %u";
    INVALID_ORDER = 68, "Invalid LSN order for server %u: previous LSN = %llu, new lsn = %llu";
    MISSING_REQUEST_FIELD = 69, "Missing mandatory field '%s' in request";
    IDENTIFIER = 70, "Invalid identifier '%s' (expected letters, digits or an underscore)";
    DROP_FUNCTION = 71, "Can't drop function %u: %s";
    ITERATOR_TYPE = 72, "Unknown iterator type '%s'";
    REPLICA_MAX = 73, "Replica count limit reached: %u";
    INVALID_XLOG = 74, "Failed to read xlog: %lld";
    INVALID_XLOG_NAME = 75, "Invalid xlog name: expected %lld got %lld";
    INVALID_XLOG_ORDER = 76, "Invalid xlog order: %lld and %lld";
    NO_CONNECTION = 77, "Connection is not established";
    TIMEOUT = 78, "Timeout exceeded";
    ACTIVE_TRANSACTION = 79, "Operation is not permitted when there is an active transaction ";
    NO_ACTIVE_TRANSACTION = 80, "Operation is not permitted when there is no active transaction ";
    CROSS_ENGINE_TRANSACTION = 81, "A multi-statement transaction can not use multiple storage \
        engines";
    NO_SUCH_ROLE = 82, "Role '%s' is not found";
    ROLE_EXISTS = 83, "Role '%s' already exists";
    CREATE_ROLE = 84, "Failed to create role '%s': %s";
    INDEX_EXISTS = 85, "Index '%s' already exists";
    TUPLE_REF_OVERFLOW = 86, "Tuple reference counter overflow";
    ROLE_LOOP = 87, "Granting role '%s' to role '%s' would create a loop";
    GRANT = 88, "Incorrect grant arguments: %s";
    PRIV_GRANTED = 89, "User '%s' already has %s access on %s '%s'";
    ROLE_GRANTED = 90, "User '%s' already has role '%s'";
    PRIV_NOT_GRANTED = 91, "User '%s' does not have %s access on %s '%s'";
    ROLE_NOT_GRANTED = 92, "User '%s' does not have role '%s'";
    MISSING_SNAPSHOT = 93, "Can't find snapshot";
    CANT_UPDATE_PRIMARY_KEY = 94, "Attempt to modify a tuple field which is part of index '%s' \
        in space '%s'";
    UPDATE_INTEGER_OVERFLOW = 95, "Integer overflow when performing '%c' operation on field %u";
    GUEST_USER_PASSWORD = 96, "Setting password for guest user has no effect";
    TRANSACTION_CONFLICT = 97, "Transaction has been aborted by conflict";
    UNSUPPORTED_ROLE_PRIV = 98, "Unsupported role privilege '%s'";
    LOAD_FUNCTION = 99, "Failed to dynamically load function '%s': %s";
    FUNCTION_LANGUAGE = 100, "Unsupported language '%s' specified for function '%s'";
    RTREE_RECT = 101, "RTree: %s must be an array with %u (point) or %u (rectangle/box) numeric \
        coordinates";
    PROC_C = 102, "%s";
    UNKNOWN_RTREE_INDEX_DISTANCE_TYPE = 103, "Unknown RTREE index distance type %s";
    PROTOCOL = 104, "%s";
    UPSERT_UNIQUE_SECONDARY_KEY = 105, "Space %s has a unique secondary index and does not \
        support UPSERT";
    WRONG_INDEX_RECORD = 106, "Wrong record in _index space: got {%s}, expected {%s}";
    WRONG_INDEX_PARTS = 107, "Wrong index parts (field %u): %s; expected field1 id (number), \
        field1 type (string), ...";
    WRONG_INDEX_OPTIONS = 108, "Wrong index options (field %u): %s";
    WRONG_SCHEMA_VERSION = 109, "Wrong schema version, current: %d, in request: %u";
    SLAB_ALLOC_MAX = 110, "Failed to allocate %u bytes for tuple in the slab allocator: tuple is \
        too large. Check 'slab_alloc_maximal' configuration option.";
    WRONG_SPACE_OPTIONS = 111, "Wrong space options (field %u): %s";
    UNSUPPORTED_INDEX_FEATURE = 112, "Index '%s' (%s) of space '%s' (%s) does not support %s";
    VIEW_IS_RO = 113, "View '%s' is read-only";
    // Later codes (2.x numbering) that a newer peer may send us; 1.6 never raises them.
    LOADING = 116, "Instance bootstrap hasn't finished yet";
    CONNECTION_TO_SELF = 117, "Connection to self";
    LOCAL_INSTANCE_ID_IS_READ_ONLY = 128, "The local instance id %u is read-only";
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

    /// The code called `name` (without the `ER_` prefix, as in `box.error.NAME`).
    pub fn by_name(name: &str) -> Option<ErrCode> {
        ERRCODES
            .iter()
            .find(|def| def.name == name)
            .map(|def| ErrCode(def.code))
    }
}

/// An error with Tarantool's code and message. `kind` is what Lua sees as `e.type`.
#[derive(Clone, Debug, PartialEq)]
pub struct BoxError {
    /// The code sent on the wire and shown as `e.code`.
    pub code: ErrCode,
    /// The formatted message, shown as `e.message` and on the wire.
    pub message: String,
    /// The error class, shown as `e.type`.
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
    /// The class name as Lua prints it in `e.type`.
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
        let template = code
            .def()
            .map(|def| def.template)
            .unwrap_or("Unknown error");
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

    /// A failed system call, message `<what>: <strerror>`. 1.6 has no ER_SYSTEM (2.x's 115):
    /// its `get_errcode` sends a SystemError as `PROC_LUA`, so this does too.
    pub fn system(what: &str, err: &std::io::Error) -> BoxError {
        BoxError {
            code: ErrCode::PROC_LUA,
            message: format!("{what}: {}", strerror(err)),
            kind: ErrorKind::SystemError,
        }
    }

    /// What a cancelled fiber raises when it next waits: `fiber is cancelled`. It is not a
    /// client error, so like in 1.6 (and 2.x) it has no code of its own and goes out as
    /// `PROC_LUA`.
    pub fn fiber_is_cancelled() -> BoxError {
        BoxError {
            code: ErrCode::PROC_LUA,
            message: "fiber is cancelled".to_string(),
            kind: ErrorKind::FiberIsCancelled,
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
        assert_eq!(
            format_template("Procedure '%.*s'", &[&"f"]),
            "Procedure 'f'"
        );
        assert_eq!(
            format_template("missing %s and %s", &[&"one"]),
            "missing one and "
        );
    }

    #[test]
    fn catalogue_is_sorted_and_unique() {
        for pair in ERRCODES.windows(2) {
            assert!(
                pair[0].code < pair[1].code,
                "{} before {}",
                pair[0].name,
                pair[1].name
            );
        }
        for (i, def) in ERRCODES.iter().enumerate() {
            let twin = ERRCODES[i + 1..]
                .iter()
                .find(|other| other.name == def.name);
            assert!(twin.is_none(), "{} appears twice", def.name);
        }
        assert_eq!(ErrCode::CFG.name(), "ER_CFG");
        assert_eq!(ErrCode(9999).def().map(|d| d.code), None);
        assert_eq!(ErrCode(9999).name(), "ER_9999");
    }

    #[test]
    fn catalogue_covers_all_of_1_6() {
        // 1.6.9 defines every number from 0 to 113 without gaps.
        for code in 0..=113 {
            assert!(ErrCode(code).def().is_some(), "code {code} is missing");
        }
        assert_eq!(ErrCode(114).def().map(|d| d.code), None);
        assert_eq!(ErrCode::VIEW_IS_RO, ErrCode(113));
        assert_eq!(ErrCode::LOADING, ErrCode(116));
        assert_eq!(ErrCode::CONNECTION_TO_SELF, ErrCode(117));
        assert_eq!(ErrCode::LOCAL_INSTANCE_ID_IS_READ_ONLY, ErrCode(128));
        assert_eq!(ErrCode::PROTOCOL, ErrCode(104));
    }

    #[test]
    fn names_used_elsewhere_keep_their_numbers() {
        assert_eq!(ErrCode::ILLEGAL_PARAMS.0, 1);
        assert_eq!(ErrCode::PROC_LUA.0, 32);
        assert_eq!(ErrCode::UNKNOWN_REQUEST_TYPE.0, 48);
        assert_eq!(ErrCode::RELOAD_CFG.0, 58);
        assert_eq!(ErrCode::CFG.0, 59);
        assert_eq!(ErrCode::TIMEOUT.0, 78);
    }

    #[test]
    fn lookup_by_name() {
        assert_eq!(ErrCode::by_name("CFG"), Some(ErrCode::CFG));
        assert_eq!(ErrCode::by_name("NO_SUCH_SPACE"), Some(ErrCode(36)));
        assert_eq!(ErrCode::by_name("LOADING"), Some(ErrCode(116)));
        assert_eq!(ErrCode::by_name("ER_CFG"), None);
        assert_eq!(ErrCode::by_name("cfg"), None);
        assert_eq!(ErrCode::by_name(""), None);
        for def in ERRCODES {
            assert_eq!(ErrCode::by_name(def.name), Some(ErrCode(def.code)));
        }
    }

    /// Each `%` conversion of `template`, `%%` excluded, as written (`%s`, `%.*s`, ...).
    fn conversions(template: &str) -> Vec<String> {
        let mut found = Vec::new();
        let mut chars = template.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '%' {
                continue;
            }
            if chars.peek() == Some(&'%') {
                chars.next();
                continue;
            }
            let mut spec = String::from("%");
            for next in chars.by_ref() {
                spec.push(next);
                if next.is_ascii_alphabetic() && !matches!(next, 'l' | 'h') {
                    break;
                }
            }
            found.push(spec);
        }
        found
    }

    #[test]
    fn every_template_uses_known_conversions() {
        let known = ["%s", "%u", "%d", "%c", "%lld", "%llu", "%.*s"];
        for def in ERRCODES {
            for spec in conversions(def.template) {
                assert!(known.contains(&spec.as_str()), "{}: {spec}", def.name);
            }
        }
        assert_eq!(conversions("a %s b %% %.*s %llu"), ["%s", "%.*s", "%llu"]);
    }

    /// Messages seen from a real server (TARANTOOL-2.6-OBSERVED.md §6) whose 1.6 template
    /// is worded the same.
    #[test]
    fn templates_match_observed_messages() {
        let cases: &[(ErrCode, &[&dyn fmt::Display], &str)] = &[
            (
                ErrCode::TUPLE_FOUND,
                &[&"primary", &"tester"],
                "Duplicate key exists in unique index 'primary' in space 'tester'",
            ),
            (
                ErrCode::NO_SUCH_SPACE,
                &[&"999"],
                "Space '999' does not exist",
            ),
            (
                ErrCode::SPACE_EXISTS,
                &[&"tester"],
                "Space 'tester' already exists",
            ),
            (
                ErrCode::INDEX_EXISTS,
                &[&"primary"],
                "Index 'primary' already exists",
            ),
            (ErrCode::USER_EXISTS, &[&"u"], "User 'u' already exists"),
            (
                ErrCode::NO_SUCH_INDEX,
                &[&0, &"X"],
                "No index #0 is defined in space 'X'",
            ),
            (
                ErrCode::PASSWORD_MISMATCH,
                &[&"u"],
                "Incorrect password supplied for user 'u'",
            ),
            (
                ErrCode::NO_SUCH_USER,
                &[&"nosuchuser"],
                "User 'nosuchuser' is not found",
            ),
            (
                ErrCode::NO_SUCH_PROC,
                &[&"nosuchfn"],
                "Procedure 'nosuchfn' is not defined",
            ),
            (
                ErrCode::UNKNOWN_REQUEST_TYPE,
                &[&73],
                "Unknown request type 73",
            ),
            (
                ErrCode::WRONG_SCHEMA_VERSION,
                &[&1, &80],
                "Wrong schema version, current: 1, in request: 80",
            ),
            (
                ErrCode::CFG,
                &[&"nosuch", &"unexpected option"],
                "Incorrect value for option 'nosuch': unexpected option",
            ),
            (
                ErrCode::ILLEGAL_PARAMS,
                &[&"Usage: box.once(key, func, ...)"],
                "Illegal parameters, Usage: box.once(key, func, ...)",
            ),
            (ErrCode::PROC_LUA, &[&"eval:1: boom"], "eval:1: boom"),
        ];
        for (code, args, expected) in cases {
            assert_eq!(
                BoxError::new(*code, args).message,
                *expected,
                "{}",
                code.name()
            );
        }
    }

    #[test]
    fn long_templates_survive_their_line_breaks() {
        let slab = ErrCode::SLAB_ALLOC_MAX.def().unwrap().template;
        let expected = "Failed to allocate %u bytes for tuple in the slab allocator: tuple is too \
large. Check 'slab_alloc_maximal' configuration option.";
        assert_eq!(slab, expected);
        let ambiguous = ErrCode::FIELD_TYPE_MISMATCH.def().unwrap().template;
        assert!(ambiguous.contains("Requested type is %s but"));
        for def in ERRCODES {
            assert!(!def.template.contains("  "), "{}: double space", def.name);
        }
    }

    #[test]
    fn templates_keep_the_1_6_wording_where_2_x_changed_it() {
        let readonly = BoxError::new(ErrCode::READONLY, &[]);
        assert_eq!(
            readonly.message,
            "Can't modify data because this server is in read-only mode."
        );
        let denied = BoxError::new(ErrCode::ACCESS_DENIED, &[&"Execute", &"universe", &"guest"]);
        assert_eq!(
            denied.message,
            "Execute access on universe is denied for user 'guest'"
        );
        let active = BoxError::new(ErrCode::ACTIVE_TRANSACTION, &[]);
        assert!(active.message.ends_with("transaction "));
    }

    #[test]
    fn constructors() {
        let cfg = BoxError::cfg("listen", "expected host:service or /unix.socket");
        assert_eq!(cfg.code, ErrCode::CFG);
        assert_eq!(cfg.kind, ErrorKind::ClientError);
        assert_eq!(
            cfg.to_string(),
            "Incorrect value for option 'listen': expected host:service or /unix.socket"
        );
        let unknown = BoxError::new(ErrCode(5000), &[&"x"]);
        assert_eq!(unknown.message, "Unknown error");
        let cancelled = BoxError::fiber_is_cancelled();
        assert_eq!(cancelled.code, ErrCode::PROC_LUA);
        assert_eq!(cancelled.kind.as_str(), "FiberIsCancelled");
        assert_eq!(cancelled.message, "fiber is cancelled");
        let io = std::io::Error::from_raw_os_error(libc::ENOENT);
        let system = BoxError::system("open", &io);
        assert_eq!(system.code, ErrCode::PROC_LUA);
        assert_eq!(system.kind, ErrorKind::SystemError);
        assert_eq!(system.message, "open: No such file or directory");
    }
}
