//! Print `.xlog` and `.snap` files as YAML, or check them.
//!
//! ```text
//! xlog_cat [--space ID]... [--server ID]... [--from LSN] [--to LSN] [--check] FILE...
//! ```
//!
//! The output follows `tarantoolctl cat` (TARANTOOL-2.6-OBSERVED.md §3.4): a line
//! `Processing file '<path>'`, then one YAML document per row with `HEADER:` (lsn, server_id,
//! type, timestamp; 1.6 names the origin `server_id` where 2.x says `replica_id`) and `BODY:`
//! (iproto key names: space_id, index_id, key, tuple, ops, ...). Before the rows, a `META:`
//! document shows the file's text header. Unlike tarantoolctl, rows of system spaces are
//! shown too: this is a debugging tool; use `--space` to narrow it.
//!
//! Filters: `--space` and `--server` may repeat (a row passes if it matches any); `--from`
//! is inclusive and `--to` exclusive, as in tarantoolctl.
//!
//! `--check` prints nothing per row: it reads every row, verifies its checksum and that it
//! decodes (header map, body map), and prints `<path>: OK N rows` or the first damaged offset.
//!
//! Exit status: 0 when every file read to its end; 1 if a file is damaged (or is a snapshot
//! without its EOF marker), with a message on stderr; 2 on bad arguments.

use std::io::{self, Write};
use std::path::Path;

use tarantula::proto::iproto_constants::{key, request_type};
use tarantula::proto::xrow;
use tarantula::wal::xlog::{FileKind, ReadError, VERSION, XlogReader};

/// What to print.
struct Config {
    /// The files, in the order given.
    files: Vec<String>,
    /// Rows of these spaces only (all when empty).
    spaces: Vec<u64>,
    /// Rows from these server ids only (all when empty).
    servers: Vec<u32>,
    /// Rows with lsn >= this only.
    lsn_from: Option<u64>,
    /// Rows with lsn < this only.
    lsn_to: Option<u64>,
    /// Verify instead of printing.
    check: bool,
}

/// How one file ended.
enum Outcome {
    /// Read to its end; `complete` says whether the EOF marker was there.
    Read { rows: u64, complete: bool },
    /// Damage at an offset (or an I/O error), already described.
    Damaged(String),
}

fn options() -> getopts::Options {
    let mut opts = getopts::Options::new();
    opts.optmulti("", "space", "only rows of this space id (repeatable)", "ID");
    opts.optmulti(
        "",
        "server",
        "only rows from this server id (repeatable)",
        "ID",
    );
    opts.optopt("", "from", "only rows with lsn >= LSN", "LSN");
    opts.optopt("", "to", "only rows with lsn < LSN", "LSN");
    opts.optflag(
        "",
        "check",
        "verify every row; print 'OK N rows' or the first damage",
    );
    opts.optflag("h", "help", "print this help");
    opts
}

fn usage(opts: &getopts::Options) -> String {
    opts.usage(
        "Usage: xlog_cat [options] FILE...\n\n\
         Prints tarantula .xlog/.snap files as YAML (format 0.12-crc32).",
    )
}

fn numbers<T: std::str::FromStr>(matches: &getopts::Matches, name: &str) -> Result<Vec<T>, String> {
    matches
        .opt_strs(name)
        .iter()
        .map(|text| {
            text.parse()
                .map_err(|_| format!("--{name}: not a valid number: {text:?}"))
        })
        .collect()
}

fn parse_args(args: &[String]) -> Result<Option<Config>, String> {
    let opts = options();
    let matches = opts.parse(args).map_err(|error| error.to_string())?;
    if matches.opt_present("help") {
        println!("{}", usage(&opts));
        return Ok(None);
    }
    if matches.free.is_empty() {
        return Err("no files given".to_string());
    }
    Ok(Some(Config {
        files: matches.free.clone(),
        spaces: numbers(&matches, "space")?,
        servers: numbers(&matches, "server")?,
        lsn_from: numbers(&matches, "from")?.pop(),
        lsn_to: numbers(&matches, "to")?.pop(),
        check: matches.opt_present("check"),
    }))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let config = match parse_args(&args) {
        Ok(Some(config)) => config,
        Ok(None) => return,
        Err(error) => {
            eprintln!("xlog_cat: {error}\n{}", usage(&options()));
            std::process::exit(2);
        }
    };
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let mut failed = false;
    for file in &config.files {
        match cat_file(&mut out, &config, Path::new(file)) {
            Ok(ok) => failed |= !ok,
            // A closed pipe (`xlog_cat f | head`) is not an error.
            Err(error) if error.kind() == io::ErrorKind::BrokenPipe => return,
            Err(error) => {
                eprintln!("xlog_cat: {error}");
                std::process::exit(1);
            }
        }
    }
    if out.flush().is_err() {
        return;
    }
    std::process::exit(i32::from(failed));
}

/// Print or check one file; false if it is damaged. Errors are of stdout only.
fn cat_file(out: &mut impl Write, config: &Config, path: &Path) -> io::Result<bool> {
    let mut reader = match XlogReader::open(path) {
        Ok(reader) => reader,
        Err(error) => {
            out.flush()?;
            eprintln!("xlog_cat: {}: {error}", path.display());
            return Ok(false);
        }
    };
    if !config.check {
        writeln!(out, "Processing file '{}'", path.display())?;
        write_meta(out, &reader)?;
    }
    let outcome = read_rows(out, config, &mut reader)?;
    out.flush()?;
    let garbage = reader.garbage();
    if garbage.regions > 0 {
        eprintln!(
            "xlog_cat: {}: skipped {} bytes of garbage in {} places (the last at offset {})",
            path.display(),
            garbage.bytes,
            garbage.regions,
            garbage.last_offset
        );
    }
    let snap = reader.meta().kind == FileKind::Snap;
    match outcome {
        Outcome::Damaged(reason) => {
            eprintln!("xlog_cat: {}: damaged {reason}", path.display());
            Ok(false)
        }
        Outcome::Read { rows, complete } => {
            if config.check && (complete || !snap) {
                writeln!(out, "{}: OK {rows} rows", path.display())?;
            }
            if !complete {
                let what = if snap { "damaged" } else { "warning" };
                eprintln!(
                    "xlog_cat: {}: {what}: no EOF marker (the file was not closed)",
                    path.display()
                );
            }
            Ok(complete || !snap)
        }
    }
}

/// The META document: the file's text header.
fn write_meta(out: &mut impl Write, reader: &XlogReader) -> io::Result<()> {
    let meta = reader.meta();
    writeln!(out, "---")?;
    writeln!(out, "META:")?;
    writeln!(out, "  type: {}", meta.kind.type_line())?;
    writeln!(out, "  version: {VERSION}")?;
    writeln!(out, "  server: {}", meta.instance_uuid)?;
    writeln!(out, "  vclock: {}", meta.vclock.to_text())
}

/// Read every row, printing those that pass the filters.
fn read_rows(
    out: &mut impl Write,
    config: &Config,
    reader: &mut XlogReader,
) -> io::Result<Outcome> {
    let mut printed = false;
    loop {
        let (offset, row) = match reader.next_row_ref() {
            Ok(Some(next)) => next,
            Ok(None) => break,
            Err(ReadError::Damaged { offset, reason }) => {
                return Ok(Outcome::Damaged(format!("at offset {offset}: {reason}")));
            }
            Err(ReadError::Io(error)) => return Ok(Outcome::Damaged(error.to_string())),
        };
        let decoded = decode_row(row);
        let (header, body) = match decoded {
            Ok(decoded) => decoded,
            Err(reason) => {
                return Ok(Outcome::Damaged(format!("at offset {offset}: {reason}")));
            }
        };
        if config.check || !passes(config, &header, body.as_ref()) {
            continue;
        }
        write_row(out, &header, body.as_ref())?;
        printed = true;
    }
    if printed {
        writeln!(out, "...")?;
    }
    Ok(Outcome::Read {
        rows: reader.rows(),
        complete: reader.is_complete(),
    })
}

/// A row's header and body (None when the row has no body).
fn decode_row(row: &[u8]) -> Result<(xrow::Header, Option<rmpv::Value>), String> {
    let (header, mut rest) =
        xrow::decode_header(row).map_err(|_| "row header is not valid msgpack".to_string())?;
    if rest.is_empty() {
        return Ok((header, None));
    }
    let body = rmpv::decode::read_value(&mut rest).map_err(|_| "row body is not valid msgpack")?;
    if !body.is_map() {
        return Err("row body is not a map".to_string());
    }
    if !rest.is_empty() {
        return Err(format!("{} bytes after the row body", rest.len()));
    }
    Ok((header, Some(body)))
}

/// The value of body key `code`.
fn body_field(body: Option<&rmpv::Value>, code: u8) -> Option<&rmpv::Value> {
    let map = body?.as_map()?;
    map.iter()
        .find(|(name, _)| name.as_u64() == Some(u64::from(code)))
        .map(|(_, value)| value)
}

fn passes(config: &Config, header: &xrow::Header, body: Option<&rmpv::Value>) -> bool {
    let space = body_field(body, key::SPACE_ID).and_then(rmpv::Value::as_u64);
    (config.spaces.is_empty() || space.is_some_and(|space| config.spaces.contains(&space)))
        && (config.servers.is_empty() || config.servers.contains(&header.server_id))
        && config.lsn_from.is_none_or(|from| header.lsn >= from)
        && config.lsn_to.is_none_or(|to| header.lsn < to)
}

fn write_row(
    out: &mut impl Write,
    header: &xrow::Header,
    body: Option<&rmpv::Value>,
) -> io::Result<()> {
    writeln!(out, "---")?;
    writeln!(out, "HEADER:")?;
    if header.lsn != 0 {
        writeln!(out, "  lsn: {}", header.lsn)?;
    }
    if header.server_id != 0 {
        writeln!(out, "  server_id: {}", header.server_id)?;
    }
    writeln!(out, "  type: {}", type_name(header.kind))?;
    if header.timestamp != 0.0 {
        writeln!(out, "  timestamp: {}", format_double(header.timestamp))?;
    }
    let Some(map) = body.and_then(rmpv::Value::as_map) else {
        return Ok(());
    };
    writeln!(out, "BODY:")?;
    for (name, value) in map {
        let name = match name.as_u64().and_then(|code| u8::try_from(code).ok()) {
            Some(code) => key_name(code).map_or_else(|| code.to_string(), str::to_string),
            None => flow(name),
        };
        writeln!(out, "  {name}: {}", flow(value))?;
    }
    Ok(())
}

/// A request type by name, as tarantoolctl prints it.
fn type_name(kind: u32) -> String {
    let name = match kind {
        request_type::OK => "OK",
        request_type::SELECT => "SELECT",
        request_type::INSERT => "INSERT",
        request_type::REPLACE => "REPLACE",
        request_type::UPDATE => "UPDATE",
        request_type::DELETE => "DELETE",
        request_type::CALL_16 => "CALL_16",
        request_type::AUTH => "AUTH",
        request_type::EVAL => "EVAL",
        request_type::UPSERT => "UPSERT",
        request_type::CALL => "CALL",
        request_type::NOP => "NOP",
        request_type::PING => "PING",
        request_type::JOIN => "JOIN",
        request_type::SUBSCRIBE => "SUBSCRIBE",
        other => return other.to_string(),
    };
    name.to_string()
}

/// A body key by name, as tarantoolctl prints it.
fn key_name(code: u8) -> Option<&'static str> {
    Some(match code {
        key::SPACE_ID => "space_id",
        key::INDEX_ID => "index_id",
        key::LIMIT => "limit",
        key::OFFSET => "offset",
        key::ITERATOR => "iterator",
        key::INDEX_BASE => "index_base",
        key::KEY => "key",
        key::TUPLE => "tuple",
        key::FUNCTION_NAME => "function_name",
        key::USER_NAME => "user_name",
        key::SERVER_UUID => "server_uuid",
        key::CLUSTER_UUID => "cluster_uuid",
        key::VCLOCK => "vclock",
        key::EXPR => "expression",
        key::OPS => "operations",
        _ => return None,
    })
}

/// A double as Lua's `%.14g` prints it (what tarantoolctl shows).
fn format_double(value: f64) -> String {
    if !value.is_finite() {
        return if value.is_nan() {
            "nan".into()
        } else if value > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    let scientific = format!("{value:.13e}");
    let (mantissa, exponent) = scientific.split_once('e').expect("{:e} has an exponent");
    let exponent: i32 = exponent.parse().expect("{:e} exponent");
    if (-5..14).contains(&exponent) {
        let decimals = (13 - exponent).max(0) as usize;
        let fixed = format!("{value:.decimals$}");
        return trim_zeros(&fixed).to_string();
    }
    format!(
        "{}e{}{:02}",
        trim_zeros(mantissa),
        if exponent < 0 { '-' } else { '+' },
        exponent.abs()
    )
}

fn trim_zeros(text: &str) -> &str {
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        text
    }
}

/// A value in YAML flow style, the way tarantoolctl's serializer prints tuples.
fn flow(value: &rmpv::Value) -> String {
    use rmpv::Value;
    match value {
        Value::Nil => "null".to_string(),
        Value::Boolean(flag) => flag.to_string(),
        Value::Integer(number) => number.to_string(),
        Value::F32(number) => format_double(f64::from(*number)),
        Value::F64(number) => format_double(*number),
        Value::String(text) => match text.as_str() {
            Some(text) => quote(text),
            None => format!("!!binary {}", base64_encode(text.as_bytes())),
        },
        Value::Binary(bytes) => format!("!!binary {}", base64_encode(bytes)),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(flow).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Map(pairs) => {
            let pairs: Vec<String> = pairs
                .iter()
                .map(|(name, value)| format!("{}: {}", flow(name), flow(value)))
                .collect();
            format!("{{{}}}", pairs.join(", "))
        }
        Value::Ext(kind, bytes) => format!("!!ext{kind} {}", base64_encode(bytes)),
    }
}

/// A string in single quotes (`'` doubled), or double quotes with escapes if it holds
/// control characters.
fn quote(text: &str) -> String {
    if text.chars().any(char::is_control) {
        return format!("\"{}\"", text.escape_default());
    }
    format!("'{}'", text.replace('\'', "''"))
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
