//! The `box.cfg` schema: every option with its default, accepted Lua types and whether it may
//! change after the first call, the later (1.7+) names as aliases, and the validation that
//! turns one `box.cfg{...}` call into a list of changes or one `BoxError` with Tarantool's
//! message.
//!
//! Pure data and logic: no Lua, no I/O, no threads. The TX thread owns the one `Cfg` and is the
//! only caller; the Lua binding converts the argument table to `(name, CfgValue)` pairs, calls
//! `prepare`, applies the returned changes to the subsystems, then `commit`s them.
//!
//! ```text
//!  box.cfg{...} ──▶ pairs ──▶ Cfg::prepare ──▶ CfgChanges ──▶ subsystems ──▶ Cfg::commit
//!                              (validate all,   (canonical names,
//!                               apply nothing)   schema order)
//! ```
//!
//! The rules are 1.6's `src/box/lua/load_cfg.lua` and the `box_check_*` functions of its
//! `box.cc`; the messages are theirs word for word. Options and aliases from later releases
//! use the wording of the release that introduced them.

use std::fmt;

use crate::error::{BoxError, ErrCode};

/// A value of a `box.cfg` option, as it comes from Lua. A Lua table of strings (the
/// `replication_source` list) is an `Array`; an option absent from the table is not passed.
#[derive(Clone, Debug, PartialEq)]
pub enum CfgValue {
    /// A Lua boolean.
    Bool(bool),
    /// A Lua number (LuaJIT numbers are doubles).
    Number(f64),
    /// A Lua string. The empty string means "reset to the default" (1.6 rule).
    Str(String),
    /// A Lua table, as its array part.
    Array(Vec<CfgValue>),
}

impl CfgValue {
    /// What Lua's `type()` says about this value; the type messages are worded with it.
    pub fn lua_type(&self) -> LuaType {
        match self {
            CfgValue::Bool(_) => LuaType::Boolean,
            CfgValue::Number(_) => LuaType::Number,
            CfgValue::Str(_) => LuaType::String,
            CfgValue::Array(_) => LuaType::Table,
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            CfgValue::Str(text) => Some(text),
            _ => None,
        }
    }

    /// The number, if this is one.
    pub fn as_number(&self) -> Option<f64> {
        match self {
            CfgValue::Number(number) => Some(*number),
            _ => None,
        }
    }

    /// The boolean, if this is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            CfgValue::Bool(flag) => Some(*flag),
            _ => None,
        }
    }

    /// The value as Tarantool's `json.encode` prints it, for the log line
    /// `set '<name>' configuration option to <json>`.
    pub fn to_json(&self) -> String {
        match self {
            CfgValue::Bool(flag) => flag.to_string(),
            CfgValue::Number(number) => lua_number_to_string(*number),
            CfgValue::Str(text) => json_quote(text),
            CfgValue::Array(items) => {
                let items: Vec<String> = items.iter().map(CfgValue::to_json).collect();
                format!("[{}]", items.join(","))
            }
        }
    }
}

impl From<&str> for CfgValue {
    fn from(text: &str) -> CfgValue {
        CfgValue::Str(text.to_string())
    }
}

impl From<f64> for CfgValue {
    fn from(number: f64) -> CfgValue {
        CfgValue::Number(number)
    }
}

impl From<bool> for CfgValue {
    fn from(flag: bool) -> CfgValue {
        CfgValue::Bool(flag)
    }
}

/// The Lua types an option may accept, named as `type()` names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LuaType {
    /// `boolean`
    Boolean,
    /// `number`
    Number,
    /// `string`
    String,
    /// `table`
    Table,
}

impl LuaType {
    /// The name `type()` returns.
    pub fn as_str(self) -> &'static str {
        match self {
            LuaType::Boolean => "boolean",
            LuaType::Number => "number",
            LuaType::String => "string",
            LuaType::Table => "table",
        }
    }
}

/// The WAL write mode of `box.cfg.wal_mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WalMode {
    /// No WAL at all: changes live in memory until the next snapshot.
    None,
    /// Write each batch, let the OS flush it.
    Write,
    /// Write and fsync each batch.
    Fsync,
}

impl WalMode {
    /// The mode called `name`, as spelled in `box.cfg`.
    pub fn parse(name: &str) -> Option<WalMode> {
        match name {
            "none" => Some(WalMode::None),
            "write" => Some(WalMode::Write),
            "fsync" => Some(WalMode::Fsync),
            _ => None,
        }
    }

    /// The spelling in `box.cfg`.
    pub fn as_str(self) -> &'static str {
        match self {
            WalMode::None => "none",
            WalMode::Write => "write",
            WalMode::Fsync => "fsync",
        }
    }
}

// {{{ The schema

/// A compile-time default value.
#[derive(Clone, Copy, Debug)]
enum DefaultValue {
    /// No value: the option is absent from `box.cfg` until set.
    Nil,
    /// A boolean default.
    Bool(bool),
    /// A number default.
    Number(f64),
    /// A string default.
    Str(&'static str),
}

impl DefaultValue {
    /// The default as an effective value (`None` for nil).
    fn to_value(self) -> Option<CfgValue> {
        match self {
            DefaultValue::Nil => None,
            DefaultValue::Bool(flag) => Some(CfgValue::Bool(flag)),
            DefaultValue::Number(number) => Some(CfgValue::Number(number)),
            DefaultValue::Str(text) => Some(CfgValue::Str(text.to_string())),
        }
    }
}

/// The value check that runs after the type check. Each names a rule of 1.6's `box.cc` (or,
/// for the later options, of the release that added them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Check {
    /// Anything of the right type.
    None,
    /// One URI: `box_check_uri`.
    Uri,
    /// A URI or a list of URIs: `box_check_replication_source`.
    UriList,
    /// A logger init string: `say_check_init_str`.
    Logger,
    /// `none`, `write` or `fsync`: `box_check_wal_mode`.
    WalMode,
    /// 128 ..= 2^31 - 1: `box_check_readahead`.
    Readahead,
    /// More than one: `box_check_rows_per_wal`.
    RowsPerWal,
    /// 8 ..= 1048280: `box_check_slab_alloc_minimal`.
    SlabAllocMinimal,
    /// Zero or more (snapshot_period, too_long_threshold).
    NotNegative,
    /// A whole number, zero or more (snapshot_daemon.lua).
    SnapshotCount,
    /// More than zero (2.x replication timeouts).
    Positive,
    /// At least 2 (2.x `iproto_set_msg_max`).
    NetMsgMax,
    /// `plain` or `json` (2.x `box_check_log_format`).
    LogFormat,
    /// A non-nil UUID in its 36-character form (2.x `box_check_uuid`).
    Uuid,
}

/// One option of the schema, under its 1.6 name.
#[derive(Debug)]
pub struct OptionDef {
    /// The canonical (1.6) name.
    pub name: &'static str,
    /// Whether a call after the first may change it.
    pub dynamic: bool,
    /// The Lua types accepted, in the order the type message lists them.
    types: &'static [LuaType],
    /// The value before any call sets it, and after a reset with `""`.
    default: DefaultValue,
    /// The value check after the type check.
    check: Check,
}

impl OptionDef {
    /// The default value (`None` when the option is nil by default).
    pub fn default_value(&self) -> Option<CfgValue> {
        self.default.to_value()
    }

    /// The accepted Lua types.
    pub fn types(&self) -> &'static [LuaType] {
        self.types
    }
}

/// Builds one schema row; keeps the table below to one line per option.
const fn option(
    name: &'static str,
    types: &'static [LuaType],
    default: DefaultValue,
    dynamic: bool,
    check: Check,
) -> OptionDef {
    OptionDef {
        name,
        dynamic,
        types,
        default,
        check,
    }
}

/// A boolean option.
const BOOLEAN: &[LuaType] = &[LuaType::Boolean];
/// A number option.
const NUMBER: &[LuaType] = &[LuaType::Number];
/// A string option.
const STRING: &[LuaType] = &[LuaType::String];
/// A URI given as a string or a bare port number (`listen`).
const STRING_NUMBER: &[LuaType] = &[LuaType::String, LuaType::Number];
/// One URI or a table of them (`replication_source`).
const STRING_NUMBER_TABLE: &[LuaType] = &[LuaType::String, LuaType::Number, LuaType::Table];

/// Replication sources at most: one vclock slot is the instance's own (1.6 `VCLOCK_MAX` = 32,
/// `cfg_get_replication_source` refuses a list of 32 or more).
const REPLICATION_SOURCE_COUNT_MAX: usize = 31;

use Check as C;
use DefaultValue as D;

/// Every option, in the order changes are reported and applied. 1.6 applies a reload in Lua
/// table order, which is arbitrary; this order is fixed instead, and puts `listen` first and
/// the replication timeouts before `replication_source` (the order 2.x settled on).
#[rustfmt::skip] // One row per option reads as a table; rustfmt would break half of them.
static SCHEMA: &[OptionDef] = &[
    option("listen", STRING_NUMBER, D::Nil, true, C::Uri),
    option("slab_alloc_arena", NUMBER, D::Number(1.0), false, C::None),
    option("slab_alloc_minimal", NUMBER, D::Number(16.0), false, C::SlabAllocMinimal),
    option("slab_alloc_maximal", NUMBER, D::Number(1048576.0), false, C::None),
    option("slab_alloc_factor", NUMBER, D::Number(1.1), false, C::None),
    option("work_dir", STRING, D::Nil, false, C::None),
    option("snap_dir", STRING, D::Str("."), false, C::None),
    option("wal_dir", STRING, D::Str("."), false, C::None),
    option("logger", STRING, D::Nil, false, C::Logger),
    option("logger_nonblock", BOOLEAN, D::Bool(true), false, C::None),
    option("log_level", NUMBER, D::Number(5.0), true, C::None),
    option("log_format", STRING, D::Str("plain"), false, C::LogFormat),
    option("io_collect_interval", NUMBER, D::Nil, true, C::None),
    option("readahead", NUMBER, D::Number(16320.0), true, C::Readahead),
    option("snap_io_rate_limit", NUMBER, D::Nil, true, C::None),
    option("too_long_threshold", NUMBER, D::Number(0.5), true, C::NotNegative),
    option("wal_mode", STRING, D::Str("write"), true, C::WalMode),
    option("rows_per_wal", NUMBER, D::Number(500000.0), false, C::RowsPerWal),
    option("wal_dir_rescan_delay", NUMBER, D::Number(2.0), true, C::None),
    option("panic_on_snap_error", BOOLEAN, D::Bool(true), false, C::None),
    option("panic_on_wal_error", BOOLEAN, D::Bool(true), true, C::None),
    option("hot_standby", BOOLEAN, D::Bool(false), false, C::None),
    option("instance_uuid", STRING, D::Nil, false, C::Uuid),
    option("replicaset_uuid", STRING, D::Nil, false, C::Uuid),
    option("replication_timeout", NUMBER, D::Number(1.0), true, C::Positive),
    option("replication_connect_timeout", NUMBER, D::Number(30.0), true, C::Positive),
    option("replication_skip_conflict", BOOLEAN, D::Bool(false), true, C::None),
    option("replication_source", STRING_NUMBER_TABLE, D::Nil, true, C::UriList),
    option("custom_proc_title", STRING, D::Nil, true, C::None),
    option("pid_file", STRING, D::Nil, false, C::None),
    option("background", BOOLEAN, D::Bool(false), false, C::None),
    option("username", STRING, D::Nil, false, C::None),
    option("coredump", BOOLEAN, D::Bool(false), false, C::None),
    option("read_only", BOOLEAN, D::Bool(false), true, C::None),
    option("snapshot_period", NUMBER, D::Number(0.0), true, C::NotNegative),
    option("snapshot_count", NUMBER, D::Number(6.0), true, C::SnapshotCount),
    option("wal_cleanup_delay", NUMBER, D::Number(14400.0), true, C::NotNegative),
    option("net_msg_max", NUMBER, D::Number(768.0), true, C::NetMsgMax),
];

/// How an alias's value becomes the canonical option's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AliasMap {
    /// The same value, checked like the canonical option.
    Same,
    /// `memtx_memory` (bytes, a number) → `slab_alloc_arena` (GiB, a float).
    BytesToGib,
    /// `force_recovery` (a boolean) → each `panic_on_*_error` set to its negation.
    Inverted,
}

/// A later name of one or more canonical options.
struct Alias {
    /// The later name.
    name: &'static str,
    /// The canonical options it sets.
    targets: &'static [&'static str],
    /// The conversion of the value.
    map: AliasMap,
}

/// The 1.7+ names, mapped onto the 1.6 ones (1.7 renamed them; see PROTOCOL.md §8.2).
#[rustfmt::skip] // A table, like SCHEMA.
static ALIASES: &[Alias] = &[
    alias("replication", &["replication_source"], AliasMap::Same),
    alias("memtx_dir", &["snap_dir"], AliasMap::Same),
    alias("memtx_memory", &["slab_alloc_arena"], AliasMap::BytesToGib),
    alias("memtx_min_tuple_size", &["slab_alloc_minimal"], AliasMap::Same),
    alias("memtx_max_tuple_size", &["slab_alloc_maximal"], AliasMap::Same),
    alias("log", &["logger"], AliasMap::Same),
    alias("log_nonblock", &["logger_nonblock"], AliasMap::Same),
    alias("checkpoint_interval", &["snapshot_period"], AliasMap::Same),
    alias("checkpoint_count", &["snapshot_count"], AliasMap::Same),
    alias("force_recovery", &["panic_on_snap_error", "panic_on_wal_error"], AliasMap::Inverted),
];

/// Builds one alias row.
const fn alias(name: &'static str, targets: &'static [&'static str], map: AliasMap) -> Alias {
    Alias { name, targets, map }
}

/// Bytes in the unit of `slab_alloc_arena` (a GiB).
const BYTES_PER_GIB: f64 = (1u64 << 30) as f64;

/// Every option of the schema, in schema order.
pub fn schema() -> &'static [OptionDef] {
    SCHEMA
}

/// The position of the canonical option `name` in `SCHEMA`.
fn schema_index(name: &str) -> Option<usize> {
    SCHEMA.iter().position(|def| def.name == name)
}

/// The alias called `name`.
fn find_alias(name: &str) -> Option<&'static Alias> {
    ALIASES.iter().find(|alias| alias.name == name)
}

/// The canonical option(s) behind `name`: itself for a 1.6 name, its targets for an alias
/// (two for `force_recovery`), `None` for an unknown name.
pub fn resolve_alias(name: &str) -> Option<&'static [&'static str]> {
    if let Some(index) = schema_index(name) {
        return Some(std::slice::from_ref(&SCHEMA[index].name));
    }
    find_alias(name).map(|alias| alias.targets)
}

/// Whether `name` (a 1.6 name or an alias) may change after the first call; an alias is
/// dynamic only if every option it sets is. `None` for an unknown name.
pub fn is_dynamic(name: &str) -> Option<bool> {
    let targets = resolve_alias(name)?;
    let dynamic = |target: &&str| schema_index(target).is_some_and(|index| SCHEMA[index].dynamic);
    Some(targets.iter().all(dynamic))
}

// }}}

// {{{ Checking one (name, value) pair

/// Where a pair of the request goes: the key as the caller spelled it (error messages use
/// it), the schema rows it sets and how the value converts.
struct Target {
    /// The key as passed.
    shown: String,
    /// Schema indexes set by the key.
    indexes: Vec<usize>,
    /// The conversion for an alias (`Same` for a 1.6 name).
    map: AliasMap,
}

/// The schema rows `key` sets, or ER_CFG `unexpected option`.
fn resolve_key(key: &str) -> Result<Target, BoxError> {
    let (targets, map): (&[&str], AliasMap) = match (schema_index(key), find_alias(key)) {
        (Some(index), _) => (std::slice::from_ref(&SCHEMA[index].name), AliasMap::Same),
        (None, Some(alias)) => (alias.targets, alias.map),
        (None, None) => return Err(BoxError::cfg(key, "unexpected option")),
    };
    let indexes = targets
        .iter()
        .filter_map(|target| schema_index(target))
        .collect();
    Ok(Target {
        shown: key.to_string(),
        indexes,
        map,
    })
}

/// The types `target` accepts: an alias that converts its value has a type of its own.
fn accepted_types(target: &Target) -> &'static [LuaType] {
    match target.map {
        AliasMap::Same => SCHEMA[target.indexes[0]].types,
        AliasMap::BytesToGib => NUMBER,
        AliasMap::Inverted => BOOLEAN,
    }
}

/// `should be of type <t>` or `should be one of types <t1>, <t2>` (load_cfg.lua).
fn check_type(shown: &str, types: &[LuaType], value: &CfgValue) -> Result<(), BoxError> {
    if types.contains(&value.lua_type()) {
        return Ok(());
    }
    Err(type_mismatch(shown, types))
}

fn type_mismatch(shown: &str, types: &[LuaType]) -> BoxError {
    let names: Vec<&str> = types.iter().map(|lua_type| lua_type.as_str()).collect();
    let reason = match names.as_slice() {
        [single] => format!("should be of type {single}"),
        _ => format!("should be one of types {}", names.join(", ")),
    };
    BoxError::cfg(shown, &reason)
}

/// The error for a value no `CfgValue` can hold (a function, a userdata) given for `key`:
/// `unexpected option` for an unknown key, else the option's type message.
pub fn type_error(key: &str) -> BoxError {
    match resolve_key(key) {
        Ok(target) => type_mismatch(&target.shown, accepted_types(&target)),
        Err(err) => err,
    }
}

/// 1.6's `normalize_uri`: a number given where a URI string is expected becomes its Lua
/// `tostring`, in a list too (where 1.6 converts when it reads the entry).
fn normalize_uri(value: CfgValue) -> CfgValue {
    match value {
        CfgValue::Number(number) => CfgValue::Str(lua_number_to_string(number)),
        CfgValue::Array(items) => CfgValue::Array(items.into_iter().map(normalize_uri).collect()),
        other => other,
    }
}

/// The (schema index, new value) pairs one request pair sets; `None` resets to nil.
type Assignments = Vec<(usize, Option<CfgValue>)>;

/// Validate one request pair and convert it to assignments of canonical options.
fn check_pair(key: &str, value: &CfgValue) -> Result<(Target, Assignments), BoxError> {
    let target = resolve_key(key)?;
    if value.as_str() == Some("") {
        let default = |&index: &usize| (index, SCHEMA[index].default_value());
        let resets = target.indexes.iter().map(default).collect();
        return Ok((target, resets));
    }
    check_type(&target.shown, accepted_types(&target), value)?;
    let assignments = convert(&target, value.clone());
    for (index, value) in &assignments {
        if let Some(value) = value {
            check_value(&target.shown, SCHEMA[*index].check, value)?;
        }
    }
    Ok((target, assignments))
}

/// Apply the alias conversion (and 1.6's number-to-URI conversion) to a type-checked value.
fn convert(target: &Target, value: CfgValue) -> Assignments {
    match (target.map, value) {
        (AliasMap::BytesToGib, CfgValue::Number(bytes)) => {
            vec![(
                target.indexes[0],
                Some(CfgValue::Number(bytes / BYTES_PER_GIB)),
            )]
        }
        (AliasMap::Inverted, CfgValue::Bool(force)) => {
            let panic = CfgValue::Bool(!force);
            target
                .indexes
                .iter()
                .map(|&index| (index, Some(panic.clone())))
                .collect()
        }
        (_, value) => {
            let index = target.indexes[0];
            let value = match SCHEMA[index].check {
                Check::Uri | Check::UriList => normalize_uri(value),
                _ => value,
            };
            vec![(index, Some(value))]
        }
    }
}

/// The value check of `check`; `shown` is the key as the caller spelled it.
fn check_value(shown: &str, check: Check, value: &CfgValue) -> Result<(), BoxError> {
    let reason = match (check, value) {
        (Check::Uri, CfgValue::Str(uri)) => uri_reason(uri),
        (Check::UriList, value) => uri_list_reason(value),
        (Check::Logger, CfgValue::Str(logger)) => logger_reason(logger),
        (Check::WalMode, CfgValue::Str(mode)) => {
            WalMode::parse(mode).is_none().then(|| mode.clone())
        }
        (Check::LogFormat, CfgValue::Str(format)) => log_format_reason(format),
        (Check::Uuid, CfgValue::Str(uuid)) => uuid_reason(uuid),
        (check, CfgValue::Number(number)) => number_reason(check, *number),
        _ => None,
    };
    match reason {
        Some(reason) => Err(BoxError::cfg(shown, &reason)),
        None => Ok(()),
    }
}

/// The message 1.6's `box_check_uri` gives for any URI it cannot use.
const URI_REASON: &str = "expected host:service or /unix.socket";

/// Why `uri` is not a usable listen or replication URI, if it is not.
fn uri_reason(uri: &str) -> Option<String> {
    parse_uri(uri).err().map(|_| URI_REASON.to_string())
}

/// Why a `replication_source` value (one URI or a list) is not usable, if it is not.
fn uri_list_reason(value: &CfgValue) -> Option<String> {
    match value {
        CfgValue::Str(uri) => uri_reason(uri),
        CfgValue::Array(items) if items.len() > REPLICATION_SOURCE_COUNT_MAX => {
            Some("too many replicas".to_string())
        }
        CfgValue::Array(items) => items.iter().find_map(|item| match item {
            CfgValue::Str(uri) => uri_reason(uri),
            _ => Some(URI_REASON.to_string()),
        }),
        _ => Some(URI_REASON.to_string()),
    }
}

/// 1.6's `say_check_init_str`: a file name, `file:`, `|`/`pipe:` or `syslog:` with
/// `identity=` and `facility=` options.
fn logger_reason(logger: &str) -> Option<String> {
    let prefixes = ["|", "file:", "pipe:"];
    if let Some(options) = logger.strip_prefix("syslog:") {
        return syslog_options_reason(options);
    }
    if prefixes.iter().any(|prefix| logger.starts_with(prefix)) || !logger.contains(':') {
        return None;
    }
    Some("expecting a file name or a prefix, such as '|', 'pipe:', 'syslog:'".to_string())
}

/// 1.6's `say_parse_syslog_opts`: comma-separated `identity=` and `facility=`, each once; an
/// empty item ends the list.
fn syslog_options_reason(options: &str) -> Option<String> {
    let mut seen: Vec<&str> = Vec::new();
    for item in options.split(',') {
        if item.is_empty() {
            break;
        }
        let key = ["identity", "facility"].into_iter().find(|key| {
            item.strip_prefix(key)
                .is_some_and(|rest| rest.starts_with('='))
        });
        match key {
            None => return Some(format!("bad option '{item}'")),
            Some(key) if seen.contains(&key) => return Some(format!("duplicate option '{key}'")),
            Some(key) => seen.push(key),
        }
    }
    None
}

/// `log_format` is `plain` or `json` (message as 2.6 prints it).
fn log_format_reason(format: &str) -> Option<String> {
    match format {
        "plain" | "json" => None,
        _ => Some("expected json,plain".to_string()),
    }
}

/// A UUID option holds the 36-character form and is not nil (2.x `box_check_uuid`, whose
/// message for a malformed one is the value itself).
fn uuid_reason(uuid: &str) -> Option<String> {
    let shaped = uuid.len() == 36
        && uuid.char_indices().all(|(at, c)| match at {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        });
    if !shaped {
        return Some(uuid.to_string());
    }
    let nil = uuid.chars().all(|c| c == '0' || c == '-');
    nil.then(|| "nil UUID is reserved".to_string())
}

/// The numeric checks. 1.6 reads integer options with `cfg_geti`, which truncates, so the
/// range checks do too. NaN fails every check (it compares false with any bound).
fn number_reason(check: Check, number: f64) -> Option<String> {
    let whole = if number.is_nan() {
        f64::NEG_INFINITY
    } else {
        number.trunc()
    };
    let negative = number.is_nan() || number < 0.0;
    let reason = match check {
        Check::Readahead if !(128.0..=2147483647.0).contains(&whole) => {
            "specified value is out of bounds"
        }
        Check::SlabAllocMinimal if !(8.0..=1048280.0).contains(&whole) => {
            "specified value is out of bounds"
        }
        Check::RowsPerWal if whole <= 1.0 => "the value must be greater than one",
        Check::SnapshotCount if number.floor() != number => "must be an integer",
        Check::NotNegative | Check::SnapshotCount if negative => {
            "the value must be greater or equal to 0"
        }
        Check::Positive if negative || number == 0.0 => "the value must be greather than 0",
        Check::NetMsgMax if whole < 2.0 => "minimal value is 2",
        _ => return None,
    };
    Some(reason.to_string())
}

// }}}

// {{{ Cfg: the effective values and the two-step update

/// One option a `box.cfg` call changes.
#[derive(Clone, Debug, PartialEq)]
pub struct CfgChange {
    /// The canonical (1.6) name.
    pub name: &'static str,
    /// The new value; `None` when the option is reset to nil.
    pub value: Option<CfgValue>,
    /// The schema position, for `commit`.
    index: usize,
}

/// What one `box.cfg` call changes, validated as a whole, in schema order.
#[derive(Clone, Debug, PartialEq)]
pub struct CfgChanges {
    /// The options whose value changes.
    pub changes: Vec<CfgChange>,
    /// Whether this is the first call (which may set static options and starts the server).
    pub first_call: bool,
}

impl CfgChanges {
    /// Whether nothing changes.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// The change of the canonical option `name`, if it changes.
    pub fn get(&self, name: &str) -> Option<&CfgChange> {
        self.changes.iter().find(|change| change.name == name)
    }
}

/// A staged assignment while a request is checked: the value and the key that set it.
#[derive(Clone, Debug)]
struct Staged {
    /// The key as passed (error messages about the option use it).
    shown: String,
    /// The new value, `None` for nil.
    value: Option<CfgValue>,
}

/// The effective `box.cfg`: one value per schema option (the defaults until the first call).
#[derive(Clone, Debug)]
pub struct Cfg {
    /// Effective values, aligned with `SCHEMA`; `None` is nil.
    values: Vec<Option<CfgValue>>,
    /// Whether the first `box.cfg{}` call has been committed.
    configured: bool,
}

impl Default for Cfg {
    fn default() -> Cfg {
        Cfg::new()
    }
}

impl Cfg {
    /// The defaults, before the first call.
    pub fn new() -> Cfg {
        let values = SCHEMA.iter().map(OptionDef::default_value).collect();
        Cfg {
            values,
            configured: false,
        }
    }

    /// Whether the first `box.cfg{}` call has happened.
    pub fn is_configured(&self) -> bool {
        self.configured
    }

    /// Validate a whole call and list what it changes, without changing anything: any bad
    /// pair fails the call. Pairs are checked in the order given (the first bad one is
    /// reported); the changes come out in schema order.
    pub fn prepare(&self, request: &[(String, CfgValue)]) -> Result<CfgChanges, BoxError> {
        let staged = stage(request)?;
        let mut changes = Vec::new();
        for (index, staged) in staged.into_iter().enumerate() {
            let Some(staged) = staged else { continue };
            self.check_reload(index, &staged)?;
            if self.counts_as_change(index, &staged.value) {
                let name = SCHEMA[index].name;
                changes.push(CfgChange {
                    name,
                    value: staged.value,
                    index,
                });
            }
        }
        Ok(CfgChanges {
            changes,
            first_call: !self.configured,
        })
    }

    /// Make the changes of a successful `prepare` effective. The changes must have been
    /// prepared against this very state.
    pub fn commit(&mut self, changes: CfgChanges) {
        assert_eq!(
            changes.first_call, !self.configured,
            "stale box.cfg changes"
        );
        for change in changes.changes {
            debug_assert_eq!(SCHEMA[change.index].name, change.name);
            self.values[change.index] = change.value;
        }
        self.configured = true;
    }

    /// After the first call: a static option may only be "set" to its current value, and
    /// `wal_mode` may not switch to or from `fsync` (1.6 `box_set_wal_mode`).
    fn check_reload(&self, index: usize, staged: &Staged) -> Result<(), BoxError> {
        let current = &self.values[index];
        if !self.configured || staged.value == *current {
            return Ok(());
        }
        let def = &SCHEMA[index];
        if !def.dynamic {
            return Err(BoxError::new(ErrCode::RELOAD_CFG, &[&staged.shown]));
        }
        let fsync = Some(CfgValue::from(WalMode::Fsync.as_str()));
        if def.check == Check::WalMode && (staged.value == fsync || *current == fsync) {
            return Err(BoxError::cfg("wal_mode", "cannot switch to/from fsync"));
        }
        Ok(())
    }

    /// Whether setting `value` changes the option: it differs, or it is a table (1.6 compares
    /// tables by identity, so a table always counts as new), or it is `replication_source`:
    /// setting that again, even to the same URI, is how replication stopped by an error is
    /// restarted (running appliers of listed sources are left alone).
    fn counts_as_change(&self, index: usize, value: &Option<CfgValue>) -> bool {
        matches!(value, Some(CfgValue::Array(_)))
            || self.values[index] != *value
            || SCHEMA[index].name == "replication_source"
    }

    /// The effective value of the canonical option `name`; `None` if it is nil or unknown.
    pub fn get(&self, name: &str) -> Option<&CfgValue> {
        self.values[schema_index(name)?].as_ref()
    }

    /// The value as `box.cfg.<name>` shows it, for a 1.6 name or an alias (converted back:
    /// `memtx_memory` in bytes, `force_recovery` as `not panic_on_snap_error`).
    pub fn get_by_any_name(&self, name: &str) -> Option<CfgValue> {
        if schema_index(name).is_some() {
            return self.get(name).cloned();
        }
        let alias = find_alias(name)?;
        let value = self.get(alias.targets[0])?;
        match (alias.map, value) {
            (AliasMap::BytesToGib, CfgValue::Number(gib)) => {
                Some(CfgValue::Number((gib * BYTES_PER_GIB).floor()))
            }
            (AliasMap::Inverted, CfgValue::Bool(panic)) => Some(CfgValue::Bool(!panic)),
            (_, value) => Some(value.clone()),
        }
    }

    /// The effective values under their 1.6 names, in schema order, nil ones left out: what
    /// `box.cfg` shows as a table.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &CfgValue)> + '_ {
        let values = self.values.iter();
        SCHEMA
            .iter()
            .zip(values)
            .filter_map(|(def, value)| Some((def.name, value.as_ref()?)))
    }
}

/// Check every pair and collect the assignments per schema option. Two keys that set one
/// option to different values (an option and its alias) are refused with the message 2.x
/// gives for it, naming the 1.6 option.
fn stage(request: &[(String, CfgValue)]) -> Result<Vec<Option<Staged>>, BoxError> {
    let mut staged: Vec<Option<Staged>> = vec![None; SCHEMA.len()];
    for (key, value) in request {
        let (target, assignments) = check_pair(key, value)?;
        for (index, value) in assignments {
            let slot = &mut staged[index];
            if slot.as_ref().is_some_and(|earlier| earlier.value != value) {
                let reason = "can not override a value for a deprecated option";
                return Err(BoxError::cfg(SCHEMA[index].name, reason));
            }
            *slot = Some(Staged {
                shown: target.shown.clone(),
                value,
            });
        }
    }
    Ok(staged)
}

// }}}

// {{{ Typed getters

impl Cfg {
    /// The number of the canonical option `name`, if it is set.
    pub fn get_number(&self, name: &str) -> Option<f64> {
        self.get(name)?.as_number()
    }

    /// The string of the canonical option `name`, if it is set.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name)?.as_str()
    }

    /// The boolean of the canonical option `name` (false when nil).
    pub fn get_bool(&self, name: &str) -> bool {
        self.get(name).and_then(CfgValue::as_bool).unwrap_or(false)
    }

    /// `log_level`, truncated like 1.6's `cfg_geti`.
    pub fn log_level(&self) -> i64 {
        self.get_number("log_level").unwrap_or(5.0) as i64
    }

    /// `wal_mode`.
    pub fn wal_mode(&self) -> WalMode {
        self.get_str("wal_mode")
            .and_then(WalMode::parse)
            .unwrap_or(WalMode::Write)
    }

    /// `listen`, the iproto URI, if set.
    pub fn listen(&self) -> Option<&str> {
        self.get_str("listen")
    }

    /// `replication_source` as a list of URIs (empty when nil).
    pub fn replication_sources(&self) -> Vec<String> {
        match self.get("replication_source") {
            Some(CfgValue::Str(uri)) => vec![uri.clone()],
            Some(CfgValue::Array(items)) => items
                .iter()
                .filter_map(|item| item.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// `read_only`.
    pub fn read_only(&self) -> bool {
        self.get_bool("read_only")
    }

    /// `readahead` in bytes.
    pub fn readahead(&self) -> usize {
        self.get_number("readahead").unwrap_or(16320.0) as usize
    }

    /// `too_long_threshold` in seconds.
    pub fn too_long_threshold(&self) -> f64 {
        self.get_number("too_long_threshold").unwrap_or(0.5)
    }

    /// `rows_per_wal`.
    pub fn rows_per_wal(&self) -> u64 {
        self.get_number("rows_per_wal").unwrap_or(500000.0) as u64
    }

    /// `snapshot_period` in seconds; 0 disables the snapshot daemon.
    pub fn snapshot_period(&self) -> f64 {
        self.get_number("snapshot_period").unwrap_or(0.0)
    }

    /// `snapshot_count`; 0 keeps every snapshot.
    pub fn snapshot_count(&self) -> u64 {
        self.get_number("snapshot_count").unwrap_or(6.0) as u64
    }

    /// `slab_alloc_arena` converted to bytes (the unit of `memtx_memory`).
    pub fn memtx_memory_bytes(&self) -> u64 {
        (self.get_number("slab_alloc_arena").unwrap_or(1.0) * BYTES_PER_GIB) as u64
    }

    /// `work_dir`, if set.
    pub fn work_dir(&self) -> Option<&str> {
        self.get_str("work_dir")
    }

    /// `snap_dir`.
    pub fn snap_dir(&self) -> &str {
        self.get_str("snap_dir").unwrap_or(".")
    }

    /// `wal_dir`.
    pub fn wal_dir(&self) -> &str {
        self.get_str("wal_dir").unwrap_or(".")
    }

    /// `logger`, the log destination, if set (stderr otherwise).
    pub fn logger(&self) -> Option<&str> {
        self.get_str("logger")
    }

    /// `pid_file`, if set.
    pub fn pid_file(&self) -> Option<&str> {
        self.get_str("pid_file")
    }

    /// `replication_timeout` in seconds.
    pub fn replication_timeout(&self) -> f64 {
        self.get_number("replication_timeout").unwrap_or(1.0)
    }

    /// `replication_connect_timeout` in seconds.
    pub fn replication_connect_timeout(&self) -> f64 {
        self.get_number("replication_connect_timeout")
            .unwrap_or(30.0)
    }

    /// `net_msg_max`.
    pub fn net_msg_max(&self) -> usize {
        self.get_number("net_msg_max").unwrap_or(768.0) as usize
    }
}

// }}}

// {{{ URIs

/// A parsed listen or replication URI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Uri {
    /// The user of `user[:password]@...`.
    pub login: Option<String>,
    /// The password of `user:password@...` (possibly empty).
    pub password: Option<String>,
    /// Where to listen or connect.
    pub address: UriAddress,
}

/// The address part of a URI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UriAddress {
    /// `host:service`, `[ipv6]:service` or a bare `service` (host `None`: every interface to
    /// listen on, localhost to connect to).
    Tcp {
        /// The host name or address (IPv6 without its brackets).
        host: Option<String>,
        /// A port number or a service name.
        service: String,
    },
    /// `/path` or `unix/:path`.
    Unix {
        /// The socket path.
        path: String,
    },
}

impl Uri {
    /// The port, for a TCP address whose service is a number that fits.
    pub fn port(&self) -> Option<u16> {
        match &self.address {
            UriAddress::Tcp { service, .. } => service.parse().ok(),
            UriAddress::Unix { .. } => None,
        }
    }
}

/// Why a URI did not parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UriError {
    /// The text is empty.
    Empty,
    /// The `user[:password]@` part has a character a URI user part may not have.
    BadUserInfo,
    /// The host has a character a host name may not have, or is empty.
    BadHost,
    /// No port or service (a bare host, `host:`).
    MissingService,
    /// The service is neither all digits nor all letters.
    BadService,
    /// The socket path is empty.
    EmptyPath,
}

impl fmt::Display for UriError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            UriError::Empty => "empty URI",
            UriError::BadUserInfo => "bad user or password",
            UriError::BadHost => "bad host",
            UriError::MissingService => "no port or service",
            UriError::BadService => "bad port or service",
            UriError::EmptyPath => "empty unix socket path",
        };
        f.write_str(text)
    }
}

impl std::error::Error for UriError {}

/// Parse a URI the way Tarantool's `uri_parse` reads it for `listen` and replication, and
/// insist on a service like `box_check_uri`: `port`, `host:port`, `[ipv6]:port`,
/// `user[:password]@host:port`, `/path/to.sock`, `[user[:password]@]unix/:path`. A service
/// may be a name (`localhost:http`).
pub fn parse_uri(text: &str) -> Result<Uri, UriError> {
    if text.is_empty() {
        return Err(UriError::Empty);
    }
    if text.starts_with('/') || text.starts_with("unix/:") {
        // A socket path may contain '@': no user info is looked for in front of one.
        let address = parse_address(text, false)?;
        return Ok(Uri {
            login: None,
            password: None,
            address,
        });
    }
    let (login, password, rest) = match text.split_once('@') {
        Some((userinfo, rest)) => {
            let (login, password) = parse_userinfo(userinfo)?;
            (Some(login), password, rest)
        }
        None => (None, None, text),
    };
    let address = parse_address(rest, login.is_none())?;
    Ok(Uri {
        login,
        password,
        address,
    })
}

/// `login[:password]`: a non-empty login, an optional (possibly empty) password.
fn parse_userinfo(userinfo: &str) -> Result<(String, Option<String>), UriError> {
    let (login, password) = match userinfo.split_once(':') {
        Some((login, password)) => (login, Some(password)),
        None => (userinfo, None),
    };
    let valid = |part: &str| part.chars().all(is_uri_name_char);
    if login.is_empty() || !valid(login) || !password.is_none_or(valid) {
        return Err(UriError::BadUserInfo);
    }
    Ok((login.to_string(), password.map(str::to_string)))
}

/// The part after the user info. A bare port is only a port when no user info precedes it
/// (in Tarantool's grammar `user@3301` names a host and no service).
fn parse_address(rest: &str, bare_port_allowed: bool) -> Result<UriAddress, UriError> {
    if rest.starts_with('/') {
        return Ok(UriAddress::Unix {
            path: rest.to_string(),
        });
    }
    if let Some(path) = rest.strip_prefix("unix/:") {
        if path.is_empty() {
            return Err(UriError::EmptyPath);
        }
        return Ok(UriAddress::Unix {
            path: path.to_string(),
        });
    }
    if bare_port_allowed && !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(UriAddress::Tcp {
            host: None,
            service: rest.to_string(),
        });
    }
    let (host, service) = split_host_service(rest)?;
    let service_valid = service.bytes().all(|b| b.is_ascii_digit())
        || service.bytes().all(|b| b.is_ascii_alphabetic());
    if service.is_empty() {
        return Err(UriError::MissingService);
    }
    if !service_valid {
        return Err(UriError::BadService);
    }
    Ok(UriAddress::Tcp {
        host: Some(host.to_string()),
        service: service.to_string(),
    })
}

/// Split `host:service` or `[ipv6]:service`, checking the host.
fn split_host_service(rest: &str) -> Result<(&str, &str), UriError> {
    if let Some(bracketed) = rest.strip_prefix('[') {
        let (address, after) = bracketed.split_once(']').ok_or(UriError::BadHost)?;
        let ipv6_char = |c: char| c.is_ascii_hexdigit() || c == ':' || c == '.';
        if address.is_empty() || !address.chars().all(ipv6_char) {
            return Err(UriError::BadHost);
        }
        let service = after.strip_prefix(':').ok_or(UriError::MissingService)?;
        return Ok((address, service));
    }
    let (host, service) = rest.split_once(':').ok_or(UriError::MissingService)?;
    if host.is_empty() || !host.chars().all(is_uri_name_char) {
        return Err(UriError::BadHost);
    }
    if service.contains(':') {
        return Err(UriError::BadService);
    }
    Ok((host, service))
}

/// A character of a host name or user part (RFC 3986 unreserved, sub-delims and `%`).
fn is_uri_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=%".contains(c)
}

// }}}

// {{{ Lua-compatible text

/// A number as Lua's `tostring` (LuaJIT's `%.14g`) prints it: `3301`, `0.5`, `1e+15`.
pub fn lua_number_to_string(number: f64) -> String {
    if number.is_nan() {
        return "nan".to_string();
    }
    if number.is_infinite() {
        return if number > 0.0 { "inf" } else { "-inf" }.to_string();
    }
    let sign = if number.is_sign_negative() { "-" } else { "" };
    if number == 0.0 {
        return format!("{sign}0");
    }
    const PRECISION: usize = 14;
    let (digits, exponent) = significant_digits(number.abs(), PRECISION);
    let body = if exponent < -4 || exponent >= PRECISION as i32 {
        let mantissa = format!("{}.{}", &digits[..1], &digits[1..]);
        let exponent_sign = if exponent < 0 { '-' } else { '+' };
        format!(
            "{}e{exponent_sign}{:02}",
            trim_fraction_zeros(&mantissa),
            exponent.abs()
        )
    } else if exponent >= 0 {
        let (whole, fraction) = digits.split_at(exponent as usize + 1);
        trim_fraction_zeros(&format!("{whole}.{fraction}")).to_string()
    } else {
        let zeros = "0".repeat((-exponent - 1) as usize);
        trim_fraction_zeros(&format!("0.{zeros}{digits}")).to_string()
    };
    format!("{sign}{body}")
}

/// The first `precision` significant decimal digits of a positive finite `number`, rounded
/// half away from zero (as LuaJIT does: 123456789012345 prints as `1.2345678901235e+14`), and
/// the decimal exponent of the first digit.
fn significant_digits(number: f64, precision: usize) -> (String, i32) {
    // 800 fractional digits hold a double's exact decimal expansion (at most 767 significant
    // digits), so the digits below are exact, not already rounded.
    let exact = format!("{number:.800e}");
    let (mantissa, exponent) = exact.split_once('e').unwrap_or((&exact, "0"));
    let mut exponent: i32 = exponent.parse().unwrap_or(0);
    let all: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
    let mut digits = all[..precision].to_vec();
    if all[precision] >= b'5' {
        let mut at = precision;
        while at > 0 && digits[at - 1] == b'9' {
            digits[at - 1] = b'0';
            at -= 1;
        }
        if at == 0 {
            digits.insert(0, b'1');
            digits.truncate(precision);
            exponent += 1;
        } else {
            digits[at - 1] += 1;
        }
    }
    (String::from_utf8(digits).unwrap_or_default(), exponent)
}

/// `1.500` → `1.5`, `2.000` → `2`; text without a fraction is unchanged.
fn trim_fraction_zeros(text: &str) -> &str {
    if !text.contains('.') {
        return text;
    }
    text.trim_end_matches('0').trim_end_matches('.')
}

/// A JSON string literal as Tarantool's json module writes it (it escapes `/` too).
pub fn json_quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '/' => out.push_str("\\/"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

// }}}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request from `(key, value)` pairs.
    fn request(pairs: &[(&str, CfgValue)]) -> Vec<(String, CfgValue)> {
        pairs
            .iter()
            .map(|(key, value)| (key.to_string(), value.clone()))
            .collect()
    }

    /// A `Cfg` after a successful first call with `pairs`.
    fn configured(pairs: &[(&str, CfgValue)]) -> Cfg {
        let mut cfg = Cfg::new();
        let changes = cfg.prepare(&request(pairs)).expect("first call");
        cfg.commit(changes);
        cfg
    }

    /// Apply `pairs` as a call to `cfg`, panicking on an error.
    fn apply(cfg: &mut Cfg, pairs: &[(&str, CfgValue)]) -> CfgChanges {
        let changes = cfg.prepare(&request(pairs)).expect("valid call");
        cfg.commit(changes.clone());
        changes
    }

    /// The message of the error `pairs` give against `cfg`.
    fn error(cfg: &Cfg, pairs: &[(&str, CfgValue)]) -> String {
        cfg.prepare(&request(pairs))
            .expect_err("invalid call")
            .message
    }

    /// The message of the error `pairs` give as a first call.
    fn first_error(pairs: &[(&str, CfgValue)]) -> String {
        error(&Cfg::new(), pairs)
    }

    /// Names of the changes, in order.
    fn names(changes: &CfgChanges) -> Vec<&'static str> {
        changes.changes.iter().map(|change| change.name).collect()
    }

    fn s(text: &str) -> CfgValue {
        CfgValue::from(text)
    }

    fn n(number: f64) -> CfgValue {
        CfgValue::Number(number)
    }

    fn b(flag: bool) -> CfgValue {
        CfgValue::Bool(flag)
    }

    fn list(items: &[CfgValue]) -> CfgValue {
        CfgValue::Array(items.to_vec())
    }

    #[test]
    fn type_error_for_values_lua_cannot_pass_as_cfg() {
        assert_eq!(
            type_error("listen").message,
            "Incorrect value for option 'listen': should be one of types string, number"
        );
        assert_eq!(
            type_error("force_recovery").message,
            "Incorrect value for option 'force_recovery': should be of type boolean"
        );
        assert_eq!(
            type_error("nosuch").message,
            "Incorrect value for option 'nosuch': unexpected option"
        );
    }

    #[test]
    fn schema_is_consistent() {
        for (i, def) in SCHEMA.iter().enumerate() {
            assert!(
                SCHEMA[i + 1..].iter().all(|other| other.name != def.name),
                "{}",
                def.name
            );
            assert!(find_alias(def.name).is_none(), "{} is both", def.name);
            if let Some(default) = def.default_value() {
                assert!(def.types.contains(&default.lua_type()), "{}", def.name);
                assert_eq!(
                    check_value(def.name, def.check, &default),
                    Ok(()),
                    "{}",
                    def.name
                );
            }
        }
        for alias in ALIASES {
            for target in alias.targets {
                assert!(schema_index(target).is_some(), "{} → {target}", alias.name);
            }
        }
    }

    #[test]
    fn defaults_of_1_6() {
        let cfg = Cfg::new();
        assert!(!cfg.is_configured());
        let expected: &[(&str, CfgValue)] = &[
            ("slab_alloc_arena", n(1.0)),
            ("slab_alloc_minimal", n(16.0)),
            ("slab_alloc_maximal", n(1048576.0)),
            ("slab_alloc_factor", n(1.1)),
            ("snap_dir", s(".")),
            ("wal_dir", s(".")),
            ("logger_nonblock", b(true)),
            ("log_level", n(5.0)),
            ("log_format", s("plain")),
            ("readahead", n(16320.0)),
            ("too_long_threshold", n(0.5)),
            ("wal_mode", s("write")),
            ("rows_per_wal", n(500000.0)),
            ("wal_dir_rescan_delay", n(2.0)),
            ("panic_on_snap_error", b(true)),
            ("panic_on_wal_error", b(true)),
            ("hot_standby", b(false)),
            ("replication_timeout", n(1.0)),
            ("replication_connect_timeout", n(30.0)),
            ("replication_skip_conflict", b(false)),
            ("background", b(false)),
            ("coredump", b(false)),
            ("read_only", b(false)),
            ("snapshot_period", n(0.0)),
            ("snapshot_count", n(6.0)),
            ("wal_cleanup_delay", n(14400.0)),
            ("net_msg_max", n(768.0)),
        ];
        let shown: Vec<(&str, CfgValue)> = cfg.iter().map(|(k, v)| (k, v.clone())).collect();
        assert_eq!(shown, expected);
        for nil in [
            "listen",
            "work_dir",
            "logger",
            "io_collect_interval",
            "snap_io_rate_limit",
            "instance_uuid",
            "replicaset_uuid",
            "replication_source",
            "custom_proc_title",
            "pid_file",
            "username",
        ] {
            assert_eq!(cfg.get(nil), None, "{nil}");
            assert!(schema_index(nil).is_some(), "{nil}");
        }
        assert_eq!(cfg.get("nosuch"), None);
        assert_eq!(SCHEMA.len(), expected.len() + 11);
    }

    #[test]
    fn dynamic_and_static_options() {
        let dynamic = [
            "listen",
            "log_level",
            "io_collect_interval",
            "readahead",
            "snap_io_rate_limit",
            "too_long_threshold",
            "wal_mode",
            "wal_dir_rescan_delay",
            "panic_on_wal_error",
            "replication_timeout",
            "replication_connect_timeout",
            "replication_skip_conflict",
            "replication_source",
            "custom_proc_title",
            "read_only",
            "snapshot_period",
            "snapshot_count",
            "wal_cleanup_delay",
            "net_msg_max",
        ];
        for def in SCHEMA {
            assert_eq!(def.dynamic, dynamic.contains(&def.name), "{}", def.name);
            assert_eq!(is_dynamic(def.name), Some(def.dynamic));
        }
        assert_eq!(is_dynamic("replication"), Some(true));
        assert_eq!(is_dynamic("memtx_memory"), Some(false));
        assert_eq!(is_dynamic("checkpoint_count"), Some(true));
        // panic_on_snap_error is static, so the alias that sets it is too.
        assert_eq!(is_dynamic("force_recovery"), Some(false));
        assert_eq!(is_dynamic("nosuch"), None);
    }

    #[test]
    fn alias_resolution() {
        let cases: &[(&str, &[&str])] = &[
            ("replication", &["replication_source"]),
            ("memtx_dir", &["snap_dir"]),
            ("memtx_memory", &["slab_alloc_arena"]),
            ("memtx_min_tuple_size", &["slab_alloc_minimal"]),
            ("memtx_max_tuple_size", &["slab_alloc_maximal"]),
            ("log", &["logger"]),
            ("log_nonblock", &["logger_nonblock"]),
            ("checkpoint_interval", &["snapshot_period"]),
            ("checkpoint_count", &["snapshot_count"]),
            (
                "force_recovery",
                &["panic_on_snap_error", "panic_on_wal_error"],
            ),
            ("wal_dir", &["wal_dir"]),
        ];
        for (name, targets) in cases {
            assert_eq!(resolve_alias(name), Some(*targets), "{name}");
        }
        assert_eq!(resolve_alias("nosuch"), None);
    }

    #[test]
    fn every_same_valued_alias_sets_its_option() {
        let cases: &[(&str, CfgValue)] = &[
            ("replication", s("host:3301")),
            ("memtx_dir", s("/var/snap")),
            ("memtx_min_tuple_size", n(32.0)),
            ("memtx_max_tuple_size", n(2097152.0)),
            ("log", s("tarantula.log")),
            ("log_nonblock", b(false)),
            ("checkpoint_interval", n(3600.0)),
            ("checkpoint_count", n(2.0)),
        ];
        for (alias, value) in cases {
            let cfg = configured(&[(alias, value.clone())]);
            let target = resolve_alias(alias).unwrap()[0];
            assert_eq!(cfg.get(target), Some(value), "{alias}");
            assert_eq!(cfg.get_by_any_name(alias).as_ref(), Some(value), "{alias}");
        }
    }

    #[test]
    fn memtx_memory_is_bytes_of_the_gib_arena() {
        let cfg = configured(&[("memtx_memory", n(536870912.0))]);
        assert_eq!(cfg.get("slab_alloc_arena"), Some(&n(0.5)));
        assert_eq!(cfg.memtx_memory_bytes(), 536870912);
        assert_eq!(cfg.get_by_any_name("memtx_memory"), Some(n(536870912.0)));
        let cfg = configured(&[("memtx_memory", n(3.0 * 1073741824.0))]);
        assert_eq!(cfg.get("slab_alloc_arena"), Some(&n(3.0)));
        assert_eq!(
            Cfg::new().get_by_any_name("memtx_memory"),
            Some(n(1073741824.0))
        );
        assert_eq!(
            first_error(&[("memtx_memory", s("1G"))]),
            "Incorrect value for option 'memtx_memory': should be of type number"
        );
    }

    #[test]
    fn force_recovery_inverts_both_panic_flags() {
        let cfg = configured(&[("force_recovery", b(true))]);
        assert_eq!(cfg.get("panic_on_snap_error"), Some(&b(false)));
        assert_eq!(cfg.get("panic_on_wal_error"), Some(&b(false)));
        assert_eq!(cfg.get_by_any_name("force_recovery"), Some(b(true)));
        let cfg = configured(&[("force_recovery", b(false))]);
        assert_eq!(cfg.get("panic_on_snap_error"), Some(&b(true)));
        assert_eq!(cfg.get_by_any_name("force_recovery"), Some(b(false)));
        assert_eq!(
            first_error(&[("force_recovery", s("yes"))]),
            "Incorrect value for option 'force_recovery': should be of type boolean"
        );
        // Agreeing values are not a conflict.
        let pairs = [
            ("force_recovery", b(true)),
            ("panic_on_wal_error", b(false)),
        ];
        assert_eq!(
            configured(&pairs).get("panic_on_wal_error"),
            Some(&b(false))
        );
    }

    #[test]
    fn option_and_alias_must_agree() {
        let reason = "can not override a value for a deprecated option";
        let pairs = [("memtx_memory", n(1.0)), ("slab_alloc_arena", n(2.0))];
        let expected = format!("Incorrect value for option 'slab_alloc_arena': {reason}");
        assert_eq!(first_error(&pairs), expected);
        let pairs = [("force_recovery", b(true)), ("panic_on_wal_error", b(true))];
        let expected = format!("Incorrect value for option 'panic_on_wal_error': {reason}");
        assert_eq!(first_error(&pairs), expected);
        let pairs = [("replication_source", s("a:1")), ("replication", s("b:1"))];
        let expected = format!("Incorrect value for option 'replication_source': {reason}");
        assert_eq!(first_error(&pairs), expected);
        // The same value twice is fine, in any unit.
        let pairs = [
            ("memtx_memory", n(1073741824.0)),
            ("slab_alloc_arena", n(1.0)),
        ];
        assert_eq!(configured(&pairs).get("slab_alloc_arena"), Some(&n(1.0)));
        let pairs = [
            ("replication", list(&[s("a:1")])),
            ("replication_source", list(&[s("a:1")])),
        ];
        assert_eq!(configured(&pairs).replication_sources(), ["a:1"]);
    }

    #[test]
    fn unknown_option() {
        assert_eq!(
            first_error(&[("nosuch", n(1.0))]),
            "Incorrect value for option 'nosuch': unexpected option"
        );
        let err = Cfg::new()
            .prepare(&request(&[("nosuch", n(1.0))]))
            .unwrap_err();
        assert_eq!(err.code, ErrCode::CFG);
    }

    #[test]
    fn type_messages() {
        let cases: &[(&str, CfgValue, &str)] = &[
            ("log_level", s("info"), "should be of type number"),
            ("wal_dir", n(5.0), "should be of type string"),
            ("read_only", s("true"), "should be of type boolean"),
            ("readahead", list(&[]), "should be of type number"),
            ("listen", b(true), "should be one of types string, number"),
            (
                "listen",
                list(&[s("3301")]),
                "should be one of types string, number",
            ),
            (
                "replication_source",
                b(true),
                "should be one of types string, number, table",
            ),
            (
                "replication",
                b(false),
                "should be one of types string, number, table",
            ),
            ("logger", n(1.0), "should be of type string"),
            ("instance_uuid", n(1.0), "should be of type string"),
        ];
        for (key, value, reason) in cases {
            let expected = format!("Incorrect value for option '{key}': {reason}");
            assert_eq!(first_error(&[(key, value.clone())]), expected);
        }
    }

    #[test]
    fn value_messages() {
        let uri = "expected host:service or /unix.socket";
        let out = "specified value is out of bounds";
        let cases: &[(&str, CfgValue, &str)] = &[
            ("listen", s("localhost"), uri),
            ("listen", n(3301.5), uri),
            ("replication_source", s("x"), uri),
            ("replication", s("x"), uri),
            ("replication", list(&[s("a:1"), s("x")]), uri),
            ("replication_source", list(&[b(true)]), uri),
            ("wal_mode", s("foo"), "foo"),
            ("readahead", n(127.0), out),
            ("readahead", n(2147483648.0), out),
            ("slab_alloc_minimal", n(7.0), out),
            ("slab_alloc_minimal", n(1048281.0), out),
            ("memtx_min_tuple_size", n(7.0), out),
            ("rows_per_wal", n(1.0), "the value must be greater than one"),
            ("rows_per_wal", n(1.9), "the value must be greater than one"),
            ("snapshot_count", n(1.5), "must be an integer"),
            (
                "snapshot_count",
                n(-1.0),
                "the value must be greater or equal to 0",
            ),
            ("checkpoint_count", n(2.5), "must be an integer"),
            (
                "snapshot_period",
                n(-1.0),
                "the value must be greater or equal to 0",
            ),
            (
                "too_long_threshold",
                n(-0.1),
                "the value must be greater or equal to 0",
            ),
            (
                "replication_timeout",
                n(0.0),
                "the value must be greather than 0",
            ),
            (
                "replication_connect_timeout",
                n(-1.0),
                "the value must be greather than 0",
            ),
            ("net_msg_max", n(1.0), "minimal value is 2"),
            ("log_format", s("xml"), "expected json,plain"),
            ("instance_uuid", s("abc"), "abc"),
            (
                "replicaset_uuid",
                s("00000000-0000-0000-0000-000000000000"),
                "nil UUID is reserved",
            ),
            (
                "logger",
                s("foo:bar"),
                "expecting a file name or a prefix, such as '|', 'pipe:', 'syslog:'",
            ),
            ("log", s("syslog:foo=bar"), "bad option 'foo=bar'"),
            (
                "logger",
                s("syslog:identity=a,identity=b"),
                "duplicate option 'identity'",
            ),
        ];
        for (key, value, reason) in cases {
            let expected = format!("Incorrect value for option '{key}': {reason}");
            assert_eq!(
                first_error(&[(key, value.clone())]),
                expected,
                "{key} = {value:?}"
            );
        }
    }

    #[test]
    fn values_at_the_bounds_pass() {
        let pairs = [
            ("readahead", n(128.0)),
            ("slab_alloc_minimal", n(8.0)),
            ("rows_per_wal", n(2.0)),
            ("snapshot_count", n(0.0)),
            ("snapshot_period", n(0.0)),
            ("too_long_threshold", n(0.0)),
            ("replication_timeout", n(0.01)),
            ("net_msg_max", n(2.0)),
            ("log_format", s("json")),
            ("instance_uuid", s("cb8af90d-4699-4636-8594-368691a0120c")),
            ("logger", s("syslog:identity=tarantula,facility=local0")),
            ("wal_mode", s("fsync")),
        ];
        let cfg = configured(&pairs);
        assert_eq!(cfg.readahead(), 128);
        assert_eq!(cfg.wal_mode(), WalMode::Fsync);
        let pairs = [
            ("readahead", n(2147483647.0)),
            ("slab_alloc_minimal", n(1048280.0)),
        ];
        configured(&pairs);
        for logger in ["tarantula.log", "file:x.log", "|cat", "pipe:cat", "syslog:"] {
            configured(&[("logger", s(logger))]);
        }
    }

    #[test]
    fn numbers_become_uri_strings() {
        let cfg = configured(&[("listen", n(3301.0))]);
        assert_eq!(cfg.get("listen"), Some(&s("3301")));
        assert_eq!(cfg.listen(), Some("3301"));
        let sources = list(&[n(3302.0), s("user:pass@host:3303")]);
        let cfg = configured(&[("replication_source", sources)]);
        let expected = list(&[s("3302"), s("user:pass@host:3303")]);
        assert_eq!(cfg.get("replication_source"), Some(&expected));
        assert_eq!(cfg.replication_sources(), ["3302", "user:pass@host:3303"]);
        let cfg = configured(&[("replication", n(3304.0))]);
        assert_eq!(cfg.replication_sources(), ["3304"]);
        assert_eq!(Cfg::new().replication_sources(), Vec::<String>::new());
    }

    #[test]
    fn too_many_replication_sources() {
        let many: Vec<CfgValue> = (0..32).map(|i| s(&format!("host:{}", 3000 + i))).collect();
        assert_eq!(
            first_error(&[("replication_source", CfgValue::Array(many.clone()))]),
            "Incorrect value for option 'replication_source': too many replicas"
        );
        configured(&[("replication_source", CfgValue::Array(many[..31].to_vec()))]);
    }

    #[test]
    fn empty_string_resets_to_the_default() {
        let mut cfg = configured(&[("listen", n(3301.0)), ("log_level", n(6.0))]);
        let changes = apply(&mut cfg, &[("listen", s("")), ("log_level", s(""))]);
        assert_eq!(changes.get("listen").map(|c| c.value.clone()), Some(None));
        assert_eq!(
            changes.get("log_level").map(|c| c.value.clone()),
            Some(Some(n(5.0)))
        );
        assert_eq!(cfg.listen(), None);
        assert_eq!(cfg.log_level(), 5);
        // Resetting a value that already is the default changes nothing.
        assert!(apply(&mut cfg, &[("listen", s(""))]).is_empty());
        // A reset is not type-checked: "" works for any option, on the first call too.
        let cfg = configured(&[
            ("read_only", s("")),
            ("wal_dir", s("")),
            ("memtx_memory", s("")),
        ]);
        assert_eq!(cfg.get("read_only"), Some(&b(false)));
        assert_eq!(cfg.wal_dir(), ".");
        let mut cfg = configured(&[("force_recovery", b(true)), ("replication", s("a:1"))]);
        assert!(
            apply(&mut cfg, &[("replication", s(""))])
                .get("replication_source")
                .is_some()
        );
        assert_eq!(cfg.get("replication_source"), None);
    }

    #[test]
    fn static_options_are_refused_after_the_first_call() {
        let mut cfg = configured(&[("wal_dir", s("/wal")), ("rows_per_wal", n(1000.0))]);
        assert!(cfg.is_configured());
        let err = cfg
            .prepare(&request(&[("wal_dir", s("/other"))]))
            .unwrap_err();
        assert_eq!(err.code, ErrCode::RELOAD_CFG);
        assert_eq!(err.message, "Can't set option 'wal_dir' dynamically");
        assert_eq!(
            error(&cfg, &[("memtx_dir", s("/snap"))]),
            "Can't set option 'memtx_dir' dynamically"
        );
        assert_eq!(
            error(&cfg, &[("force_recovery", b(true))]),
            "Can't set option 'force_recovery' dynamically"
        );
        assert_eq!(
            error(&cfg, &[("log_format", s("json"))]),
            "Can't set option 'log_format' dynamically"
        );
        // The current value again is not a change, and not an error.
        let changes = apply(
            &mut cfg,
            &[("wal_dir", s("/wal")), ("rows_per_wal", n(1000.0))],
        );
        assert!(changes.is_empty());
        assert!(!changes.first_call);
        // Resetting a static option to the default it already has is allowed too.
        assert!(apply(&mut cfg, &[("snap_dir", s(""))]).is_empty());
        // The first call may set any static option.
        assert!(configured(&[("memtx_dir", s("/snap"))]).is_configured());
    }

    #[test]
    fn dynamic_options_change_only_when_different() {
        let mut cfg = configured(&[("log_level", n(5.0)), ("listen", s("3301"))]);
        assert!(apply(&mut cfg, &[("log_level", n(5.0)), ("listen", n(3301.0))]).is_empty());
        let changes = apply(&mut cfg, &[("log_level", n(6.0)), ("read_only", b(false))]);
        assert_eq!(names(&changes), ["log_level"]);
        assert_eq!(cfg.log_level(), 6);
        // A table always counts as a change (1.6 compares tables by identity).
        apply(&mut cfg, &[("replication_source", list(&[s("a:1")]))]);
        let changes = apply(&mut cfg, &[("replication_source", list(&[s("a:1")]))]);
        assert_eq!(names(&changes), ["replication_source"]);
        // Setting the source again, even with the same text, restarts stopped replication.
        apply(&mut cfg, &[("replication_source", s("a:1"))]);
        let changes = apply(&mut cfg, &[("replication", s("a:1"))]);
        assert_eq!(names(&changes), ["replication_source"]);
    }

    #[test]
    fn wal_mode_cannot_switch_to_or_from_fsync() {
        let reason = "Incorrect value for option 'wal_mode': cannot switch to/from fsync";
        let mut cfg = configured(&[]);
        assert_eq!(error(&cfg, &[("wal_mode", s("fsync"))]), reason);
        assert_eq!(
            names(&apply(&mut cfg, &[("wal_mode", s("none"))])),
            ["wal_mode"]
        );
        assert_eq!(cfg.wal_mode(), WalMode::None);
        apply(&mut cfg, &[("wal_mode", s("write"))]);
        let mut cfg = configured(&[("wal_mode", s("fsync"))]);
        assert_eq!(error(&cfg, &[("wal_mode", s("write"))]), reason);
        assert!(apply(&mut cfg, &[("wal_mode", s("fsync"))]).is_empty());
        assert_eq!(error(&cfg, &[("wal_mode", s(""))]), reason);
    }

    #[test]
    fn a_bad_pair_fails_the_whole_call() {
        let mut cfg = configured(&[("log_level", n(5.0))]);
        let pairs = [
            ("log_level", n(7.0)),
            ("listen", s("3301")),
            ("readahead", n(1.0)),
        ];
        assert_eq!(
            error(&cfg, &pairs),
            "Incorrect value for option 'readahead': specified value is out of bounds"
        );
        let pairs = [("log_level", n(7.0)), ("wal_dir", s("/elsewhere"))];
        assert_eq!(
            error(&cfg, &pairs),
            "Can't set option 'wal_dir' dynamically"
        );
        assert_eq!(cfg.log_level(), 5);
        assert_eq!(cfg.listen(), None);
        // The first bad pair in request order is the one reported.
        let pairs = [("nosuch", n(1.0)), ("log_level", s("x"))];
        assert_eq!(
            error(&cfg, &pairs),
            "Incorrect value for option 'nosuch': unexpected option"
        );
        // A failed first call leaves the instance unconfigured.
        let fresh = Cfg::new();
        assert!(fresh.prepare(&request(&[("wal_mode", s("x"))])).is_err());
        assert!(!fresh.is_configured());
        apply(&mut cfg, &[("log_level", n(7.0))]);
        assert_eq!(cfg.log_level(), 7);
    }

    #[test]
    fn changes_come_in_schema_order() {
        let pairs = [
            ("snapshot_count", n(2.0)),
            ("replication", s("a:1")),
            ("replication_timeout", n(5.0)),
            ("listen", n(3301.0)),
            ("log_level", n(6.0)),
        ];
        let mut cfg = configured(&[]);
        let changes = apply(&mut cfg, &pairs);
        assert_eq!(
            names(&changes),
            [
                "listen",
                "log_level",
                "replication_timeout",
                "replication_source",
                "snapshot_count"
            ]
        );
    }

    #[test]
    fn first_call_lists_what_differs_from_the_defaults() {
        let cfg = Cfg::new();
        let pairs = [
            ("wal_dir", s(".")),
            ("work_dir", s("/data")),
            ("log_level", n(5.0)),
        ];
        let changes = cfg.prepare(&request(&pairs)).unwrap();
        assert!(changes.first_call);
        assert_eq!(names(&changes), ["work_dir"]);
        let empty = cfg.prepare(&[]).unwrap();
        assert!(empty.is_empty());
        let mut cfg = cfg;
        cfg.commit(empty);
        assert!(cfg.is_configured());
    }

    #[test]
    #[should_panic(expected = "stale box.cfg changes")]
    fn committing_first_call_changes_twice_is_a_bug() {
        let mut cfg = Cfg::new();
        let changes = cfg.prepare(&[]).unwrap();
        cfg.commit(changes.clone());
        cfg.commit(changes);
    }

    #[test]
    fn typed_getters() {
        let cfg = Cfg::new();
        assert_eq!(cfg.log_level(), 5);
        assert_eq!(cfg.wal_mode(), WalMode::Write);
        assert_eq!(cfg.listen(), None);
        assert!(!cfg.read_only());
        assert_eq!(cfg.readahead(), 16320);
        assert_eq!(cfg.too_long_threshold(), 0.5);
        assert_eq!(cfg.rows_per_wal(), 500000);
        assert_eq!(cfg.snapshot_period(), 0.0);
        assert_eq!(cfg.snapshot_count(), 6);
        assert_eq!(cfg.memtx_memory_bytes(), 1 << 30);
        assert_eq!(
            (cfg.snap_dir(), cfg.wal_dir(), cfg.work_dir()),
            (".", ".", None)
        );
        assert_eq!((cfg.logger(), cfg.pid_file()), (None, None));
        assert_eq!(cfg.replication_timeout(), 1.0);
        assert_eq!(cfg.replication_connect_timeout(), 30.0);
        assert_eq!(cfg.net_msg_max(), 768);
        assert!(cfg.get_bool("logger_nonblock"));
        assert!(!cfg.get_bool("custom_proc_title"));
        let cfg = configured(&[
            ("log_level", n(6.9)),
            ("read_only", b(true)),
            ("pid_file", s("t.pid")),
            ("log", s("t.log")),
            ("work_dir", s("/w")),
        ]);
        assert_eq!(cfg.log_level(), 6);
        assert!(cfg.read_only());
        assert_eq!(
            (cfg.pid_file(), cfg.logger(), cfg.work_dir()),
            (Some("t.pid"), Some("t.log"), Some("/w"))
        );
        assert_eq!(cfg.get_number("log_level"), Some(6.9));
        assert_eq!(cfg.get_str("log_level"), None);
    }

    #[test]
    fn values_print_like_tarantool_json() {
        assert_eq!(
            s("/tmp/a\"b\\c\n\u{1}").to_json(),
            r#""\/tmp\/a\"b\\c\n\u0001""#
        );
        assert_eq!(
            list(&[n(1.0), s("x"), b(true)]).to_json(),
            r#"[1,"x",true]"#
        );
        assert_eq!(list(&[]).to_json(), "[]");
        assert_eq!(n(0.5).to_json(), "0.5");
        assert_eq!(n(3301.0).to_json(), "3301");
    }

    #[test]
    fn numbers_print_like_lua_tostring() {
        let cases = [
            (3301.0, "3301"),
            (0.1, "0.1"),
            (0.5, "0.5"),
            (1e15, "1e+15"),
            (1e14, "1e+14"),
            (123456789012345.0, "1.2345678901235e+14"),
            (-0.0, "-0"),
            (0.0, "0"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (f64::NAN, "nan"),
            (1e-5, "1e-05"),
            (9007199254740992.0, "9.007199254741e+15"),
            (1.0 / 3.0, "0.33333333333333"),
            (100.0, "100"),
            (1e100, "1e+100"),
            (-42.25, "-42.25"),
            (0.0001, "0.0001"),
            (99999999999999.0, "99999999999999"),
            (999999999999999.0, "1e+15"),
            (0.000_099_999_999_999_999_99, "0.0001"),
            (2.5, "2.5"),
            (1e21, "1e+21"),
            (5e-324, "4.9406564584125e-324"),
            (f64::MAX, "1.7976931348623e+308"),
        ];
        for (number, text) in cases {
            assert_eq!(lua_number_to_string(number), text, "{number:?}");
        }
    }

    /// `parse_uri` on text expected to parse, returned for inspection.
    fn uri(text: &str) -> Uri {
        parse_uri(text).unwrap_or_else(|err| panic!("{text}: {err}"))
    }

    fn tcp(host: Option<&str>, service: &str) -> UriAddress {
        UriAddress::Tcp {
            host: host.map(str::to_string),
            service: service.to_string(),
        }
    }

    fn unix(path: &str) -> UriAddress {
        UriAddress::Unix {
            path: path.to_string(),
        }
    }

    #[test]
    fn uri_forms_that_parse() {
        let cases: &[(&str, UriAddress)] = &[
            ("3301", tcp(None, "3301")),
            ("0", tcp(None, "0")),
            ("localhost:3301", tcp(Some("localhost"), "3301")),
            ("0.0.0.0:3301", tcp(Some("0.0.0.0"), "3301")),
            ("*:3301", tcp(Some("*"), "3301")),
            ("localhost:http", tcp(Some("localhost"), "http")),
            ("[::1]:3301", tcp(Some("::1"), "3301")),
            ("a%20b:1", tcp(Some("a%20b"), "1")),
            ("/tmp/t.sock", unix("/tmp/t.sock")),
            ("unix/:/tmp/t.sock", unix("/tmp/t.sock")),
            ("unix/:./t.sock", unix("./t.sock")),
            ("unix/:/tmp/a@b", unix("/tmp/a@b")),
        ];
        for (text, address) in cases {
            let parsed = uri(text);
            assert_eq!(&parsed.address, address, "{text}");
            assert_eq!((parsed.login, parsed.password), (None, None), "{text}");
        }
        assert_eq!(uri("3301").port(), Some(3301));
        assert_eq!(uri("h:http").port(), None);
        assert_eq!(uri("/s").port(), None);
    }

    #[test]
    fn uri_user_info() {
        let parsed = uri("user:pass@localhost:3301");
        assert_eq!(parsed.login.as_deref(), Some("user"));
        assert_eq!(parsed.password.as_deref(), Some("pass"));
        assert_eq!(parsed.address, tcp(Some("localhost"), "3301"));
        let parsed = uri("user@host:3301");
        assert_eq!(
            (parsed.login.as_deref(), parsed.password),
            (Some("user"), None)
        );
        assert_eq!(uri("user:@h:1").password.as_deref(), Some(""));
        let parsed = uri("user:pw@unix/:/tmp/s");
        assert_eq!(
            (parsed.login.as_deref(), parsed.address),
            (Some("user"), unix("/tmp/s"))
        );
        assert_eq!(uri("user@/tmp/s").address, unix("/tmp/s"));
        assert_eq!(uri("u:p@[::1]:3301").address, tcp(Some("::1"), "3301"));
    }

    #[test]
    fn uri_forms_that_do_not() {
        let cases = [
            ("", UriError::Empty),
            ("x", UriError::MissingService),
            ("localhost", UriError::MissingService),
            ("host:", UriError::MissingService),
            ("[::1]", UriError::MissingService),
            (":3301", UriError::BadHost),
            ("::1", UriError::BadHost),
            ("a b:1", UriError::BadHost),
            ("[zz]:1", UriError::BadHost),
            ("[::1:1", UriError::BadHost),
            ("host:port:extra", UriError::BadService),
            ("h:12ab", UriError::BadService),
            ("@h:1", UriError::BadUserInfo),
            ("a/b@h:1", UriError::BadUserInfo),
            ("u:p@3301", UriError::MissingService),
            ("unix/:", UriError::EmptyPath),
            ("./rel.sock", UriError::MissingService),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_uri(text), Err(expected), "{text}");
        }
        assert_eq!(UriError::MissingService.to_string(), "no port or service");
    }

    /// The man page documents every option and alias (as a `.B name` line).
    #[test]
    fn man_page_lists_every_option() {
        let page = include_str!("../man/tarantula.1");
        let documented = |name: &str| page.lines().any(|line| line == format!(".B {name}"));
        for def in SCHEMA {
            assert!(documented(def.name), "man page lacks {}", def.name);
        }
        for alias in ALIASES {
            let mentioned = page.contains(&format!(".B {}", alias.name))
                || page.contains(&format!(".BR {} ", alias.name));
            assert!(mentioned, "man page lacks alias {}", alias.name);
        }
    }

    #[test]
    fn lua_types_and_wal_modes() {
        assert_eq!(s("x").lua_type().as_str(), "string");
        assert_eq!(n(1.0).lua_type().as_str(), "number");
        assert_eq!(b(true).lua_type().as_str(), "boolean");
        assert_eq!(list(&[]).lua_type().as_str(), "table");
        for mode in [WalMode::None, WalMode::Write, WalMode::Fsync] {
            assert_eq!(WalMode::parse(mode.as_str()), Some(mode));
        }
        assert_eq!(WalMode::parse("FSYNC"), None);
        assert_eq!(schema()[0].name, "listen");
        assert_eq!(schema()[0].types(), STRING_NUMBER);
    }
}
