//! `.xlog` and `.snap` files: the text header, the row codec, a writer and a reader.
//!
//! The codec is pure; an `XlogWriter` is owned by the thread writing the file (the WAL thread
//! for xlogs, the snapshot thread for snaps) and an `XlogReader` by the thread reading it
//! (recovery in TX at start, a relay thread, `xlog_cat`).
//!
//! # Layout (Tarantool 1.6's, PROTOCOL.md §6.1-6.2, with one deliberate difference)
//!
//! ```text
//!   "XLOG\n" | "SNAP\n"            file type
//!   "0.12-crc32\n"                  format version: 1.6's layout, checksums are CRC-32 (IEEE)
//!   "Server: <uuid>\n"              instance that wrote the file ("Instance:" is read too)
//!   "VClock: {1: 10, 2: 5}\n"       vclock at file start; its signature names the file
//!   "\n"                            end of header (unknown "Key: value" lines are skipped)
//!   row*
//!   [d5 10 ad ed]                   EOF marker, written on a clean close
//!
//!   row := fixheader (19 bytes) payload (len bytes)
//!   offset  0  4 bytes  row marker d5 ba 0b ab
//!   offset  4           msgpack uint len (shortest encoding)
//!           .           msgpack uint previous crc (always 0)
//!           .           msgpack uint crc: CRC-32 (IEEE, crc32fast) of the payload
//!           .           msgpack str padding of zero bytes, up to offset 19 (none if full)
//!   offset 19 len bytes payload: one row, header map + body map (as in iproto, no length)
//! ```
//!
//! Why the version line differs: Tarantool checksums with CRC-32C (Castagnoli, initial 0, no
//! final XOR); we use crc32fast's CRC-32 (IEEE). Had we kept "0.12", each program would read
//! the other's files and call every row damaged. With "0.12-crc32" Tarantool refuses our
//! files at the header, and we refuse "0.12"/"0.13" with the message "a Tarantool file
//! (CRC-32C); tarantula files say 0.12-crc32".
//!
//! # Reading rules (PROTOCOL.md §6.2)
//!
//! - Bytes between rows that do not start with a marker are garbage: skipped up to the next
//!   marker, with a warning.
//! - A bad fixheader, a CRC mismatch or a truncated row end reading: the reader reports
//!   `ReadError::Damaged` once and then behaves as at the end. The caller decides whether that
//!   is fatal (a snap without its EOF marker always is; an xlog tail under
//!   `panic_on_wal_error = false` is not).
//! - The EOF marker makes the file complete; data after it is damage.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::constants::IPROTO_PACKET_SIZE_MAX;
use crate::proto::iproto_constants::key;

use super::vclock::Vclock;
use super::xdir;

// {{{ constants

/// Starts every row (big-endian 0xd5ba0bab; a msgpack fixext2 header, so a row never looks
/// like plain msgpack).
pub const ROW_MARKER: [u8; 4] = [0xd5, 0xba, 0x0b, 0xab];

/// Ends a file that was closed cleanly.
pub const EOF_MARKER: [u8; 4] = [0xd5, 0x10, 0xad, 0xed];

/// Bytes of a row's fixed header: marker, three msgpack uints, padding.
pub const FIXHEADER_SIZE: usize = 19;

/// The format version line of our files (see the module doc for why it is not "0.12").
pub const VERSION: &str = "0.12-crc32";

/// Largest row payload. A row is one request (an iproto packet at most) or one snapshot
/// tuple (far smaller); anything larger in a fixheader is damage, not a row to allocate for.
pub const ROW_SIZE_MAX: usize = IPROTO_PACKET_SIZE_MAX;
const _: () = assert!(ROW_SIZE_MAX <= u32::MAX as usize);

/// Largest text header. A full vclock takes under 1 KiB; the rest leaves room for keys a
/// later version may add, and bounds what a garbage file makes the reader hold.
pub const META_SIZE_MAX: usize = 64 * 1024;

/// Bytes the reader asks the kernel for at a time: big enough that a recovery of a million
/// rows makes a few hundred reads, small enough to keep per file.
const READ_CHUNK_SIZE: usize = 1024 * 1024;

/// Bytes read for a header alone (`read_meta`, directory scans).
const META_CHUNK_SIZE: usize = 4096;

/// What `open` says of a Tarantool file.
const TARANTOOL_FILE_REASON: &str = "a Tarantool file (CRC-32C); tarantula files say 0.12-crc32";

// }}}

// {{{ meta

/// The two kinds of file: a write-ahead log and a snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// `.xlog`: rows as they were committed, in LSN order per server.
    Xlog,
    /// `.snap`: every tuple at one vclock, as INSERT rows.
    Snap,
}

impl FileKind {
    /// The file name extension, without the dot.
    pub fn ext(self) -> &'static str {
        match self {
            FileKind::Xlog => "xlog",
            FileKind::Snap => "snap",
        }
    }

    /// The first line of the file, without its newline.
    pub fn type_line(self) -> &'static str {
        match self {
            FileKind::Xlog => "XLOG",
            FileKind::Snap => "SNAP",
        }
    }

    fn from_type_line(line: &str) -> Option<FileKind> {
        match line {
            "XLOG" => Some(FileKind::Xlog),
            "SNAP" => Some(FileKind::Snap),
            _ => None,
        }
    }
}

/// The text header of a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Meta {
    /// What the first line says.
    pub kind: FileKind,
    /// The UUID of the instance that wrote the file, as text.
    pub instance_uuid: String,
    /// The vclock when the file was started: its signature is the file's name.
    pub vclock: Vclock,
}

impl Meta {
    /// The header bytes, blank line included.
    pub fn encode(&self) -> Vec<u8> {
        assert!(!self.instance_uuid.contains('\n'), "a UUID is one line");
        format!(
            "{}\n{}\nServer: {}\nVClock: {}\n\n",
            self.kind.type_line(),
            VERSION,
            self.instance_uuid,
            self.vclock.to_text()
        )
        .into_bytes()
    }
}

/// Why a header could not be parsed (yet).
#[derive(Debug, PartialEq, Eq)]
enum MetaError {
    /// The blank line is not in `data` yet.
    Incomplete,
    /// The header is wrong at this offset.
    Bad { offset: u64, reason: String },
}

fn meta_error(offset: usize, reason: impl Into<String>) -> MetaError {
    MetaError::Bad {
        offset: offset as u64,
        reason: reason.into(),
    }
}

/// Parse a header at the front of `data`: the meta and the header's size in bytes.
fn parse_meta(data: &[u8]) -> Result<(Meta, usize), MetaError> {
    let mut lines = Vec::new();
    let mut start = 0;
    while let Some(newline) = data[start..].iter().position(|byte| *byte == b'\n') {
        let line = &data[start..start + newline];
        if line.is_empty() && lines.len() >= 2 {
            return meta_from_lines(&lines).map(|meta| (meta, start + 1));
        }
        lines.push((start, line));
        // The first two lines decide early whether this is our file at all.
        if lines.len() <= 2 {
            check_meta_line(lines.len() - 1, start, line)?;
        }
        start += newline + 1;
    }
    if data.is_empty() {
        return Err(MetaError::Incomplete);
    }
    // A first line longer than any type line is not going to become one.
    if lines.is_empty() && data.len() > 16 {
        return Err(meta_error(0, "not an xlog/snap file: no file type line"));
    }
    Err(MetaError::Incomplete)
}

/// Check the type line (index 0) or the version line (index 1).
fn check_meta_line(index: usize, offset: usize, line: &[u8]) -> Result<(), MetaError> {
    let text = String::from_utf8_lossy(line);
    if index == 0 {
        if FileKind::from_type_line(&text).is_none() {
            return Err(meta_error(offset, format!("unknown file type '{text}'")));
        }
        return Ok(());
    }
    match &*text {
        VERSION => Ok(()),
        "0.12" | "0.13" => Err(meta_error(offset, TARANTOOL_FILE_REASON)),
        _ => Err(meta_error(
            offset,
            format!("unsupported format version '{text}'; tarantula files say {VERSION}"),
        )),
    }
}

/// Build the meta from the header lines (type and version already checked).
fn meta_from_lines(lines: &[(usize, &[u8])]) -> Result<Meta, MetaError> {
    let kind = FileKind::from_type_line(&String::from_utf8_lossy(lines[0].1)).expect("checked");
    let mut instance_uuid = None;
    let mut vclock = None;
    for &(offset, line) in &lines[2..] {
        let Ok(text) = std::str::from_utf8(line) else {
            return Err(meta_error(offset, "header line is not UTF-8"));
        };
        let Some((name, value)) = text.split_once(": ") else {
            return Err(meta_error(offset, format!("invalid header line '{text}'")));
        };
        match name {
            "Server" | "Instance" => {
                if uuid::Uuid::parse_str(value).is_err() {
                    return Err(meta_error(offset, format!("invalid UUID '{value}'")));
                }
                instance_uuid = Some(value.to_string());
            }
            "VClock" => match Vclock::parse(value) {
                Some(parsed) => vclock = Some(parsed),
                None => return Err(meta_error(offset, format!("invalid vclock '{value}'"))),
            },
            // Unknown keys are skipped, as 1.6 does.
            _ => {}
        }
    }
    let end = lines.last().map_or(0, |(offset, line)| offset + line.len());
    Ok(Meta {
        kind,
        instance_uuid: instance_uuid.ok_or_else(|| meta_error(end, "no Server: line"))?,
        vclock: vclock.ok_or_else(|| meta_error(end, "no VClock: line"))?,
    })
}

// }}}

// {{{ row codec

/// Append the msgpack header map of a WAL or snapshot row: `{type, server_id if ≠ 0, lsn if
/// ≠ 0, timestamp if ≠ 0}`, as 1.6 writes it (never SYNC).
pub fn write_row_header(out: &mut Vec<u8>, kind: u32, server_id: u32, lsn: u64, timestamp: f64) {
    let count = 1 + u32::from(server_id != 0) + u32::from(lsn != 0) + u32::from(timestamp != 0.0);
    rmp::encode::write_map_len(out, count).expect("Vec write");
    rmp::encode::write_uint(out, u64::from(key::REQUEST_TYPE)).expect("Vec write");
    rmp::encode::write_uint(out, u64::from(kind)).expect("Vec write");
    if server_id != 0 {
        rmp::encode::write_uint(out, u64::from(key::SERVER_ID)).expect("Vec write");
        rmp::encode::write_uint(out, u64::from(server_id)).expect("Vec write");
    }
    if lsn != 0 {
        rmp::encode::write_uint(out, u64::from(key::LSN)).expect("Vec write");
        rmp::encode::write_uint(out, lsn).expect("Vec write");
    }
    if timestamp != 0.0 {
        rmp::encode::write_uint(out, u64::from(key::TIMESTAMP)).expect("Vec write");
        rmp::encode::write_f64(out, timestamp).expect("Vec write");
    }
}

/// Reserve a fixheader at the end of `out`; write the row (header map, body map) after it,
/// then call `end_row` with the returned start. Encodes in place, without a copy.
pub fn begin_row(out: &mut Vec<u8>) -> usize {
    let start = out.len();
    out.resize(start + FIXHEADER_SIZE, 0);
    start
}

/// Fill in the fixheader reserved by `begin_row` at `start`, for the bytes after it.
pub fn end_row(out: &mut [u8], start: usize) {
    let payload = &out[start + FIXHEADER_SIZE..];
    assert!(!payload.is_empty(), "a row has a header");
    assert!(
        payload.len() <= ROW_SIZE_MAX,
        "row of {} bytes",
        payload.len()
    );
    let fixheader = encode_fixheader(payload.len() as u32, crc32fast::hash(payload));
    out[start..start + FIXHEADER_SIZE].copy_from_slice(&fixheader);
}

/// Append a fixheader and `row` (header map + body map) to `out`.
pub fn encode_row(out: &mut Vec<u8>, row: &[u8]) {
    let start = begin_row(out);
    out.extend_from_slice(row);
    end_row(out, start);
}

/// Append a msgpack uint in its shortest encoding to a fixed buffer.
fn put_uint(buffer: &mut [u8; FIXHEADER_SIZE], at: &mut usize, value: u32) {
    let mut slice = &mut buffer[*at..];
    let before = slice.len();
    rmp::encode::write_uint(&mut slice, u64::from(value)).expect("fits in a fixheader");
    *at += before - slice.len();
}

/// The 19 fixheader bytes of a payload of `len` bytes with checksum `crc`.
pub fn encode_fixheader(len: u32, crc: u32) -> [u8; FIXHEADER_SIZE] {
    let mut buffer = [0u8; FIXHEADER_SIZE];
    buffer[..4].copy_from_slice(&ROW_MARKER);
    let mut at = 4;
    put_uint(&mut buffer, &mut at, len);
    put_uint(&mut buffer, &mut at, 0);
    put_uint(&mut buffer, &mut at, crc);
    // At most 4 + 5 + 1 + 5 = 15 bytes are used: there is always room for a fixstr header.
    let padding = FIXHEADER_SIZE - at - 1;
    debug_assert!(padding < 32);
    buffer[at] = 0xa0 | padding as u8;
    buffer
}

/// Decode a fixheader (the marker is checked): payload length and checksum.
pub fn decode_fixheader(bytes: &[u8; FIXHEADER_SIZE]) -> Result<(u32, u32), String> {
    if bytes[..4] != ROW_MARKER {
        return Err("no row marker".to_string());
    }
    let mut data = &bytes[4..];
    let mut uint = |what: &str| -> Result<u64, String> {
        rmp::decode::read_int::<u64, _>(&mut data).map_err(|_| format!("{what} is not a uint"))
    };
    let len = uint("length")?;
    let _previous_crc = uint("previous checksum")?;
    let crc = uint("checksum")?;
    if len == 0 || len > ROW_SIZE_MAX as u64 {
        return Err(format!("row length {len} is out of range"));
    }
    let crc = u32::try_from(crc).map_err(|_| format!("checksum {crc} is over 32 bits"))?;
    if !data.is_empty() {
        let padding = rmp::decode::read_str_len(&mut data)
            .map_err(|_| "padding is not a msgpack str".to_string())?;
        if padding as usize != data.len() {
            return Err("padding does not end at byte 19".to_string());
        }
    }
    Ok((len as u32, crc))
}

/// Walk a buffer of `encode_row` output: the number of rows, or what is wrong with it.
/// The writer asserts it on every batch in debug builds (the pair of the reader's checks).
pub fn count_encoded_rows(mut encoded: &[u8]) -> Result<u64, String> {
    let mut rows = 0;
    while !encoded.is_empty() {
        let Some(fixheader) = encoded.first_chunk::<FIXHEADER_SIZE>() else {
            return Err(format!("row {rows}: truncated fixheader"));
        };
        let (len, crc) =
            decode_fixheader(fixheader).map_err(|error| format!("row {rows}: {error}"))?;
        let Some(payload) = encoded.get(FIXHEADER_SIZE..FIXHEADER_SIZE + len as usize) else {
            return Err(format!("row {rows}: truncated payload"));
        };
        if crc32fast::hash(payload) != crc {
            return Err(format!("row {rows}: checksum mismatch"));
        }
        encoded = &encoded[FIXHEADER_SIZE + len as usize..];
        rows += 1;
    }
    Ok(rows)
}

// }}}

// {{{ writer

/// One file being written. Rows go in batches (`write_rows`), each with one `pwrite`.
/// I/O errors are returned as the OS gave them (errno kept: ENOSPC, EFBIG, EIO); `path()`
/// names the file.
///
/// ```text
///   create: <dir>/<signature>.<ext>.inprogress (O_EXCL; O_DSYNC if asked), header, then
///           xlog: fsync, rename to <signature>.xlog, fsync dir  (relays never see a
///                 headerless xlog)
///   close:  EOF marker, fsync; snap: rename .inprogress away, fsync dir
/// ```
pub struct XlogWriter {
    file: File,
    /// Where the file is now: `.inprogress` for a snap until `close`.
    path: PathBuf,
    /// The name the file has once complete.
    final_path: PathBuf,
    kind: FileKind,
    /// Bytes in the file: header plus whole batches. The next batch goes here.
    size: u64,
    /// Rows written after the header.
    rows: u64,
    /// A failed write could not be truncated away: retry before the next write.
    tail_dirty: bool,
    /// Fault injection: the next write stores this many bytes and then fails.
    injected_failure: Option<usize>,
}

impl XlogWriter {
    /// Create `<dir>/<%020 signature>.<ext>.inprogress` with O_EXCL (refusing if the final name
    /// exists) and write the header. An xlog is renamed to its final name right after the
    /// header is written and synced; a snap keeps `.inprogress` until `close`. With
    /// `sync_each_write` (wal_mode `fsync`) the file is opened with O_DSYNC: each write
    /// returns once its bytes and the file size that reaches them are on disk; the
    /// timestamps O_SYNC would also wait for are not needed to read the rows back.
    pub fn create(dir: &Path, meta: &Meta, sync_each_write: bool) -> io::Result<XlogWriter> {
        let name = xdir::file_name(meta.vclock.signature(), meta.kind);
        let final_path = dir.join(&name);
        let inprogress_path = dir.join(format!("{name}.inprogress"));
        if final_path.exists() {
            return Err(exists_error(&final_path));
        }
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        if sync_each_write {
            options.custom_flags(libc::O_DSYNC);
        }
        let file = options.open(&inprogress_path)?;
        let header = meta.encode();
        let mut writer = XlogWriter {
            file,
            path: inprogress_path,
            final_path,
            kind: meta.kind,
            size: 0,
            rows: 0,
            tail_dirty: false,
            injected_failure: None,
        };
        if let Err(error) = writer.create_finish(&header) {
            let _ = std::fs::remove_file(&writer.path);
            return Err(error);
        }
        Ok(writer)
    }

    /// Write the header; an xlog then gets its final name.
    fn create_finish(&mut self, header: &[u8]) -> io::Result<()> {
        self.file.write_all_at(header, 0)?;
        self.size = header.len() as u64;
        if self.kind == FileKind::Xlog {
            self.file.sync_all()?;
            self.rename_final()?;
        }
        Ok(())
    }

    /// Rename `.inprogress` to the final name (never over an existing file) and make the
    /// rename durable.
    fn rename_final(&mut self) -> io::Result<()> {
        if self.final_path.exists() {
            return Err(exists_error(&self.final_path));
        }
        std::fs::rename(&self.path, &self.final_path)?;
        self.path = self.final_path.clone();
        let dir = self.final_path.parent().unwrap_or(Path::new("."));
        xdir::sync_dir(dir)
    }

    /// Where the file is now (`.inprogress` for a snap until `close`).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Bytes in the file: the header and every whole batch.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Append `rows` already-encoded rows (`encode_row` output) with one write. On an error
    /// the file is truncated back to its size before the call, so it ends at the last whole
    /// batch, and the error is returned; the writer stays usable.
    pub fn write_rows(&mut self, encoded: &[u8], rows: u64) -> io::Result<()> {
        assert!(
            encoded.is_empty() || encoded.starts_with(&ROW_MARKER),
            "encoded rows"
        );
        assert_eq!(encoded.is_empty(), rows == 0, "rows and bytes go together");
        debug_assert_eq!(
            count_encoded_rows(encoded),
            Ok(rows),
            "a batch of whole rows"
        );
        self.clean_tail()?;
        let offset = self.size;
        let result = match self.injected_failure.take() {
            Some(stored) => {
                let stored = stored.min(encoded.len());
                self.file
                    .write_all_at(&encoded[..stored], offset)
                    .and(Err(io::Error::other("injected write failure")))
            }
            None => self.file.write_all_at(encoded, offset),
        };
        if let Err(error) = result {
            self.tail_dirty = true;
            if let Err(truncate_error) = self.clean_tail() {
                log::error!(
                    "{}: can't truncate a failed write back to {offset}: {truncate_error}",
                    self.path.display()
                );
            }
            return Err(error);
        }
        self.size += encoded.len() as u64;
        self.rows += rows;
        Ok(())
    }

    /// Cut bytes of a failed write off the end of the file.
    fn clean_tail(&mut self) -> io::Result<()> {
        if self.tail_dirty {
            self.file.set_len(self.size)?;
            self.tail_dirty = false;
        }
        Ok(())
    }

    /// Fault injection (errinj, tests): the next `write_rows` stores only the first
    /// `stored_bytes` bytes of its batch and then fails, as a full disk would.
    pub fn inject_write_failure(&mut self, stored_bytes: usize) {
        self.injected_failure = Some(stored_bytes);
    }

    /// Flush the written data to disk (fdatasync).
    pub fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// Append the EOF marker and sync; a snap then gets its final name.
    pub fn close(mut self) -> io::Result<()> {
        self.seal()?;
        self.publish()
    }

    /// Append the EOF marker and sync, keeping the current name: a snapshot stays
    /// `.inprogress` until `publish` (its writer may still have to wait for TX's word).
    pub fn seal(&mut self) -> io::Result<()> {
        self.clean_tail()?;
        self.file.write_all_at(&EOF_MARKER, self.size)?;
        self.size += EOF_MARKER.len() as u64;
        self.file.sync_all()
    }

    /// Give a sealed file its final name (nothing to do for an xlog, renamed at create).
    pub fn publish(mut self) -> io::Result<()> {
        if self.path != self.final_path {
            self.rename_final()?;
        }
        Ok(())
    }

    /// Drop an unfinished file: it is removed if it still has its `.inprogress` name.
    pub fn discard(self) -> io::Result<()> {
        if self.path != self.final_path {
            std::fs::remove_file(&self.path)?;
        }
        Ok(())
    }
}

fn exists_error(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!("{}: file exists", path.display()),
    )
}

// }}}

// {{{ reader

/// Why reading stopped.
#[derive(Debug)]
pub enum ReadError {
    /// The bytes at `offset` are not a valid header or row.
    Damaged {
        offset: u64,
        reason: String,
    },
    Io(io::Error),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Damaged { offset, reason } => write!(f, "at offset {offset}: {reason}"),
            ReadError::Io(error) => write!(f, "{error}"),
        }
    }
}

impl std::error::Error for ReadError {}

impl From<io::Error> for ReadError {
    fn from(error: io::Error) -> ReadError {
        ReadError::Io(error)
    }
}

/// Garbage skipped between rows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Garbage {
    /// Stretches of garbage skipped.
    pub regions: u64,
    /// Bytes skipped in all.
    pub bytes: u64,
    /// Where the last stretch started.
    pub last_offset: u64,
}

/// Reads one file row by row, in big chunks.
///
/// ```text
///   file:    | header | row | row | row | ...  (read so far) | not read yet
///   buffer:           [ consumed  | pos ... end ) scratch
///                     ^ buffer_offset
/// ```
///
/// After the end (Ok(None) or a reported damage) it can `resume` and read what was
/// appended since: a relay follows a growing xlog that way.
pub struct XlogReader {
    /// Read with `read_at`, so `resume` needs no seek.
    file: File,
    path: PathBuf,
    /// The header, parsed by `open`.
    meta: Meta,
    /// File bytes from `buffer_offset` on, up to `end`; `buffer[pos..end]` is not consumed
    /// yet. The bytes after `end` are scratch space for the next read, kept zeroed once:
    /// zeroing a fresh chunk per read cost a relay following a busy WAL a third of its CPU.
    buffer: Vec<u8>,
    pos: usize,
    end: usize,
    buffer_offset: u64,
    /// The EOF marker was read.
    complete: bool,
    /// Damage was reported: `next_row` returns Ok(None) until `resume`.
    stopped: bool,
    /// The last damage was a row cut short at the end of the file.
    partial_tail: bool,
    /// Garbage skipped so far.
    garbage: Garbage,
    /// Rows returned so far.
    rows: u64,
}

impl XlogReader {
    /// Open a file and parse its header.
    pub fn open(path: &Path) -> Result<XlogReader, ReadError> {
        let file = File::open(path)?;
        let mut reader = XlogReader {
            file,
            path: path.to_path_buf(),
            meta: Meta {
                kind: FileKind::Xlog,
                instance_uuid: String::new(),
                vclock: Vclock::new(),
            },
            buffer: Vec::new(),
            pos: 0,
            end: 0,
            buffer_offset: 0,
            complete: false,
            stopped: false,
            partial_tail: false,
            garbage: Garbage::default(),
            rows: 0,
        };
        let (meta, size) = reader.read_meta_bytes()?;
        reader.meta = meta;
        reader.pos = size;
        Ok(reader)
    }

    /// Read into the buffer until it holds a whole header.
    fn read_meta_bytes(&mut self) -> Result<(Meta, usize), ReadError> {
        loop {
            match parse_meta(&self.buffer[..self.end]) {
                Ok(parsed) => return Ok(parsed),
                Err(MetaError::Bad { offset, reason }) => {
                    return Err(ReadError::Damaged { offset, reason });
                }
                Err(MetaError::Incomplete) => {}
            }
            let have = self.end;
            if have >= META_SIZE_MAX {
                return Err(damaged(0, format!("header is over {META_SIZE_MAX} bytes")));
            }
            if !self.fill(have + 1, META_CHUNK_SIZE)? {
                let reason = if have == 0 {
                    "empty file"
                } else {
                    "header is cut short"
                };
                return Err(damaged(have as u64, reason));
            }
        }
    }

    /// The file's header.
    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the EOF marker was read.
    pub fn is_complete(&self) -> bool {
        self.complete
    }

    /// Rows returned so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The file offset after the last row returned (or the header).
    pub fn position(&self) -> u64 {
        self.buffer_offset + self.pos as u64
    }

    /// Garbage skipped so far.
    pub fn garbage(&self) -> Garbage {
        self.garbage
    }

    /// Whether the damage reported last was a row cut short by the end of the file (a torn
    /// write, or a write still in progress for a reader following the file).
    pub fn stopped_at_partial_row(&self) -> bool {
        self.partial_tail
    }

    /// After the end or a reported damage: forget the bytes read past the last good row, so
    /// the next `next_row` reads the file again from there (what was appended, or rewritten
    /// after a failed write was truncated).
    pub fn resume(&mut self) {
        self.end = self.pos;
        self.stopped = false;
        self.partial_tail = false;
    }

    /// The next row (header map + body map bytes, with its file offset), Ok(None) at the end.
    /// Garbage between rows is skipped to the next marker with a warning; a bad fixheader, a
    /// CRC mismatch or a truncated row ends reading, returning `Err(Damaged)` once (the caller
    /// decides whether that is fatal); the EOF marker sets `is_complete()`.
    pub fn next_row(&mut self) -> Result<Option<(u64, Vec<u8>)>, ReadError> {
        Ok(self
            .next_row_ref()?
            .map(|(offset, row)| (offset, row.to_vec())))
    }

    /// `next_row` without the copy: the row borrows the reader's buffer.
    pub fn next_row_ref(&mut self) -> Result<Option<(u64, &[u8])>, ReadError> {
        if self.stopped || self.complete {
            return Ok(None);
        }
        let result = self.next_row_locate();
        match result {
            Ok(Some((start, end))) => {
                self.rows += 1;
                Ok(Some((
                    self.buffer_offset + start as u64 - FIXHEADER_SIZE as u64,
                    &self.buffer[start..end],
                )))
            }
            Ok(None) => Ok(None),
            Err(error) => {
                self.stopped = true;
                Err(error)
            }
        }
    }

    /// Find the next row and consume it: its payload is `buffer[start..end]`.
    fn next_row_locate(&mut self) -> Result<Option<(usize, usize)>, ReadError> {
        loop {
            if !self.fill_available(EOF_MARKER.len())? {
                if self.available() == 0 {
                    return Ok(None);
                }
                self.partial_tail = true;
                return Err(damaged(self.position(), "truncated row marker"));
            }
            let magic = &self.buffer[self.pos..self.pos + 4];
            if magic == ROW_MARKER {
                return self.next_row_payload().map(Some);
            }
            if magic == EOF_MARKER {
                return self.next_row_eof().map(|()| None);
            }
            self.skip_garbage()?;
        }
    }

    /// At a row marker: check the fixheader and the checksum, and consume the row.
    fn next_row_payload(&mut self) -> Result<(usize, usize), ReadError> {
        let offset = self.position();
        if !self.fill_available(FIXHEADER_SIZE)? {
            self.partial_tail = true;
            return Err(damaged(offset, "truncated fixheader"));
        }
        let fixheader: &[u8; FIXHEADER_SIZE] = self.buffer[self.pos..self.pos + FIXHEADER_SIZE]
            .try_into()
            .expect("19 bytes");
        let (len, crc) = decode_fixheader(fixheader)
            .map_err(|reason| damaged(offset, format!("bad fixheader: {reason}")))?;
        let size = FIXHEADER_SIZE + len as usize;
        if !self.fill_available(size)? {
            self.partial_tail = true;
            let present = self.available() - FIXHEADER_SIZE;
            let reason = format!("truncated row: {len} bytes announced, {present} present");
            return Err(damaged(offset, reason));
        }
        let start = self.pos + FIXHEADER_SIZE;
        let end = self.pos + size;
        let actual = crc32fast::hash(&self.buffer[start..end]);
        if actual != crc {
            let reason =
                format!("checksum mismatch: header says {crc:#010x}, row has {actual:#010x}");
            return Err(damaged(offset, reason));
        }
        self.pos = end;
        Ok((start, end))
    }

    /// At the EOF marker: it must be the last thing in the file.
    fn next_row_eof(&mut self) -> Result<(), ReadError> {
        let offset = self.position();
        if self.fill_available(EOF_MARKER.len() + 1)? {
            return Err(damaged(offset + 4, "data after the EOF marker"));
        }
        self.pos += EOF_MARKER.len();
        self.complete = true;
        Ok(())
    }

    /// Skip bytes up to the next row or EOF marker, with a warning. At the end of the file
    /// everything is skipped but a last 1-3 bytes that could start a marker: reading then
    /// stops at them as at a torn row.
    fn skip_garbage(&mut self) -> Result<(), ReadError> {
        let offset = self.position();
        // The first byte starts no marker (else we would not be here).
        let mut checked = 1;
        loop {
            let data = &self.buffer[self.pos..self.end];
            let found = data[checked..]
                .windows(4)
                .position(|window| window == ROW_MARKER || window == EOF_MARKER);
            if let Some(at) = found {
                self.pos += checked + at;
                break;
            }
            // Keep the last 3 bytes: they may start a marker that the next read completes.
            let keep = 3.min(data.len() - checked);
            self.pos += data.len() - keep;
            checked = 0;
            if !self.fill_available(4)? {
                let tail = &self.buffer[self.pos..self.end];
                let partial = (1..=tail.len()).rev().find(|len| {
                    let suffix = &tail[tail.len() - len..];
                    ROW_MARKER.starts_with(suffix) || EOF_MARKER.starts_with(suffix)
                });
                self.pos = self.end - partial.unwrap_or(0);
                break;
            }
        }
        let bytes = self.position() - offset;
        self.garbage.regions += 1;
        self.garbage.bytes += bytes;
        self.garbage.last_offset = offset;
        log::warn!(
            "{}: skipped {bytes} bytes of garbage at offset {offset}",
            self.path.display()
        );
        Ok(())
    }

    /// Bytes read and not consumed.
    fn available(&self) -> usize {
        self.end - self.pos
    }

    /// Make `need` unconsumed bytes available; false if the file ends first.
    fn fill_available(&mut self, need: usize) -> io::Result<bool> {
        if self.available() >= need {
            return Ok(true);
        }
        // Drop consumed bytes before reading more.
        if self.pos > 0 {
            self.buffer.copy_within(self.pos..self.end, 0);
            self.end -= self.pos;
            self.buffer_offset += self.pos as u64;
            self.pos = 0;
        }
        self.fill(need, READ_CHUNK_SIZE)
    }

    /// Read until the buffer holds `need` bytes, `chunk` bytes or more at a time.
    fn fill(&mut self, need: usize, chunk: usize) -> io::Result<bool> {
        while self.end < need {
            let have = self.end;
            let want = (need - have).max(chunk);
            if self.buffer.len() < have + want {
                self.buffer.resize(have + want, 0);
            }
            let offset = self.buffer_offset + have as u64;
            let read = loop {
                match self
                    .file
                    .read_at(&mut self.buffer[have..have + want], offset)
                {
                    Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                    other => break other,
                }
            }?;
            self.end = have + read;
            if read == 0 {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

fn damaged(offset: u64, reason: impl Into<String>) -> ReadError {
    ReadError::Damaged {
        offset,
        reason: reason.into(),
    }
}

/// Read only the header of a file (directory scans).
pub fn read_meta(path: &Path) -> Result<Meta, ReadError> {
    XlogReader::open(path).map(|reader| reader.meta)
}

// }}}

#[cfg(test)]
mod tests {
    use super::*;

    const UUID: &str = "e654a428-c96c-4e57-b3eb-4c954186acdc";

    /// A fresh directory under the system temp dir, removed on drop.
    use crate::wal::TempDir;

    fn meta(kind: FileKind, vclock: &str) -> Meta {
        Meta {
            kind,
            instance_uuid: UUID.to_string(),
            vclock: Vclock::parse(vclock).unwrap(),
        }
    }

    /// Row `lsn`: an INSERT of `[lsn, "row <lsn>"]` into space 512 from server 1.
    fn row(lsn: u64) -> Vec<u8> {
        let mut out = Vec::new();
        write_row_header(&mut out, 2, 1, lsn, 1795741298.5);
        rmp::encode::write_map_len(&mut out, 2).unwrap();
        rmp::encode::write_uint(&mut out, 0x10).unwrap();
        rmp::encode::write_uint(&mut out, 512).unwrap();
        rmp::encode::write_uint(&mut out, 0x21).unwrap();
        rmp::encode::write_array_len(&mut out, 2).unwrap();
        rmp::encode::write_uint(&mut out, lsn).unwrap();
        rmp::encode::write_str(&mut out, &format!("row {lsn}")).unwrap();
        out
    }

    fn encoded(lsns: std::ops::RangeInclusive<u64>) -> Vec<u8> {
        let mut out = Vec::new();
        for lsn in lsns {
            encode_row(&mut out, &row(lsn));
        }
        out
    }

    /// A file of `body` after an xlog header (vclock {}), in `dir`.
    fn file_with(dir: &TempDir, body: &[u8]) -> (PathBuf, u64) {
        let path = dir.0.join("00000000000000000000.xlog");
        let mut bytes = meta(FileKind::Xlog, "{}").encode();
        let header_size = bytes.len() as u64;
        bytes.extend_from_slice(body);
        std::fs::write(&path, bytes).unwrap();
        (path, header_size)
    }

    /// Every row until the end or damage: (offsets, the damage).
    /// The rows with their offsets, the damage reported (offset, reason), the reader.
    type ReadAll = (Vec<(u64, Vec<u8>)>, Option<(u64, String)>, XlogReader);

    fn read_all(path: &Path) -> ReadAll {
        let mut reader = XlogReader::open(path).unwrap();
        let mut rows = Vec::new();
        loop {
            match reader.next_row() {
                Ok(Some(row)) => rows.push(row),
                Ok(None) => return (rows, None, reader),
                Err(ReadError::Damaged { offset, reason }) => {
                    // Reported once, then the end.
                    assert!(matches!(reader.next_row(), Ok(None)));
                    return (rows, Some((offset, reason)), reader);
                }
                Err(ReadError::Io(error)) => panic!("{error}"),
            }
        }
    }

    #[test]
    fn fixheader_bytes() {
        // The CRC-32 (IEEE) check value: crc32("123456789") = 0xcbf43926.
        let mut out = Vec::new();
        encode_row(&mut out, b"123456789");
        let mut expected = vec![
            0xd5, 0xba, 0x0b, 0xab, 0x09, 0x00, 0xce, 0xcb, 0xf4, 0x39, 0x26,
        ];
        expected.extend_from_slice(&[0xa7, 0, 0, 0, 0, 0, 0, 0]);
        expected.extend_from_slice(b"123456789");
        assert_eq!(out, expected);
        // Wider uints leave less padding.
        let fixheader = encode_fixheader(300, 5);
        assert_eq!(
            fixheader[..10],
            [0xd5, 0xba, 0x0b, 0xab, 0xcd, 0x01, 0x2c, 0x00, 0x05, 0xa9]
        );
        assert_eq!(fixheader[10..], [0; 9]);
        assert_eq!(decode_fixheader(&fixheader), Ok((300, 5)));
        let fixheader = encode_fixheader(ROW_SIZE_MAX as u32, u32::MAX);
        assert_eq!(
            fixheader[4..],
            [
                0xce, 0x08, 0, 0, 0, 0x00, 0xce, 0xff, 0xff, 0xff, 0xff, 0xa3, 0, 0, 0
            ]
        );
        assert_eq!(
            decode_fixheader(&fixheader),
            Ok((ROW_SIZE_MAX as u32, u32::MAX))
        );
        // begin_row/end_row encode the same bytes in place.
        let mut in_place = Vec::new();
        let start = begin_row(&mut in_place);
        in_place.extend_from_slice(b"123456789");
        end_row(&mut in_place, start);
        assert_eq!(in_place, out);
    }

    #[test]
    fn count_encoded_rows_checks_a_batch() {
        let batch = encoded(1..=3);
        assert_eq!(count_encoded_rows(&batch), Ok(3));
        assert_eq!(count_encoded_rows(&[]), Ok(0));
        assert!(
            count_encoded_rows(&batch[..batch.len() - 1])
                .unwrap_err()
                .contains("row 2")
        );
        let mut flipped = batch.clone();
        flipped[FIXHEADER_SIZE + 2] ^= 1;
        assert_eq!(
            count_encoded_rows(&flipped),
            Err("row 0: checksum mismatch".into())
        );
    }

    #[test]
    fn fixheader_damage() {
        let good = encode_fixheader(9, 0xcbf43926);
        let mut zero_length = good;
        zero_length[4] = 0x00;
        let mut not_uint = good;
        not_uint[4] = 0xc1;
        let mut short_padding = good;
        short_padding[11] = 0xa6;
        let mut too_long = good;
        too_long[4..9].copy_from_slice(&[0xce, 0xff, 0xff, 0xff, 0xff]);
        for (bad, reason) in [
            (zero_length, "out of range"),
            (not_uint, "not a uint"),
            (short_padding, "padding"),
        ] {
            let error = decode_fixheader(&bad).unwrap_err();
            assert!(error.contains(reason), "{error}");
        }
        assert!(decode_fixheader(&too_long).is_err());
    }

    #[test]
    fn row_header_encoding() {
        let mut out = Vec::new();
        write_row_header(&mut out, 2, 0, 1, 0.0);
        assert_eq!(out, [0x82, 0x00, 0x02, 0x03, 0x01]);
        out.clear();
        write_row_header(&mut out, 3, 1, 300, 1.5);
        let (header, rest) = crate::proto::xrow::decode_header(&out).unwrap();
        assert!(rest.is_empty());
        assert_eq!((header.kind, header.server_id, header.lsn), (3, 1, 300));
        assert_eq!(header.timestamp, 1.5);
    }

    #[test]
    fn meta_round_trip() {
        let meta = meta(FileKind::Xlog, "{1: 10, 2: 5}");
        let text = format!("XLOG\n0.12-crc32\nServer: {UUID}\nVClock: {{1: 10, 2: 5}}\n\n");
        assert_eq!(meta.encode(), text.as_bytes());
        let mut bytes = text.clone().into_bytes();
        bytes.extend_from_slice(&ROW_MARKER);
        assert_eq!(parse_meta(&bytes), Ok((meta.clone(), text.len())));
        for cut in 0..text.len() {
            assert_eq!(
                parse_meta(&bytes[..cut]),
                Err(MetaError::Incomplete),
                "{cut}"
            );
        }
        // Unknown keys are skipped; 2.x's key name for the UUID is read too.
        let other = format!("SNAP\n0.12-crc32\nVersion: 9\nInstance: {UUID}\nVClock: {{}}\n\n");
        let (parsed, size) = parse_meta(other.as_bytes()).unwrap();
        assert_eq!(
            (parsed.kind, parsed.vclock, size),
            (FileKind::Snap, Vclock::new(), other.len())
        );
    }

    #[test]
    fn meta_damage() {
        let bad = |text: &str| match parse_meta(text.as_bytes()) {
            Err(MetaError::Bad { offset, reason }) => (offset, reason),
            other => panic!("{text:?}: {other:?}"),
        };
        let tarantool =
            format!("XLOG\n0.13\nVersion: 2.6.0-0-g47aa4e01e\nInstance: {UUID}\nVClock: {{}}\n\n");
        assert_eq!(bad(&tarantool), (5, TARANTOOL_FILE_REASON.to_string()));
        assert_eq!(bad("SNAP\n0.12\n").1, TARANTOOL_FILE_REASON);
        assert!(
            bad("XLOG\n0.11\n")
                .1
                .contains("unsupported format version '0.11'")
        );
        assert!(bad("PNG\n").1.contains("unknown file type"));
        assert!(
            bad("\u{1}\u{2}\u{3} not a header at all, long enough")
                .1
                .contains("no file type")
        );
        let no_vclock = format!("XLOG\n0.12-crc32\nServer: {UUID}\n\n");
        assert!(bad(&no_vclock).1.contains("no VClock"));
        let bad_vclock = format!("XLOG\n0.12-crc32\nServer: {UUID}\nVClock: {{1: x}}\n\n");
        assert_eq!(bad(&bad_vclock).0, 17 + UUID.len() as u64 + 8);
        assert!(
            bad("XLOG\n0.12-crc32\nServer: nope\nVClock: {}\n\n")
                .1
                .contains("invalid UUID")
        );
        assert!(
            bad("XLOG\n0.12-crc32\nServer\n\n")
                .1
                .contains("invalid header line")
        );
    }

    #[test]
    fn write_and_read_back() {
        let dir = TempDir::new("xlog");
        let mut writer =
            XlogWriter::create(&dir.0, &meta(FileKind::Xlog, "{1: 10}"), false).unwrap();
        let final_path = dir.0.join("00000000000000000010.xlog");
        // An xlog has its final name as soon as its header is on disk.
        assert_eq!(writer.path(), final_path);
        assert!(final_path.exists());
        let header_size = writer.size();
        writer.write_rows(&encoded(11..=13), 3).unwrap();
        writer.write_rows(&encoded(14..=14), 1).unwrap();
        writer.sync().unwrap();
        assert_eq!(writer.rows(), 4);
        let size = writer.size();
        writer.close().unwrap();
        assert_eq!(std::fs::metadata(&final_path).unwrap().len(), size + 4);
        let (rows, damage, reader) = read_all(&final_path);
        assert_eq!(damage, None);
        assert!(reader.is_complete());
        assert_eq!(reader.meta(), &meta(FileKind::Xlog, "{1: 10}"));
        assert_eq!(rows.len(), 4);
        let mut offset = header_size;
        for (lsn, (at, bytes)) in (11..).zip(&rows) {
            assert_eq!(*at, offset);
            assert_eq!(*bytes, row(lsn));
            offset += (FIXHEADER_SIZE + bytes.len()) as u64;
        }
        assert_eq!(reader.position(), size + 4);
        // The same name again is refused.
        let error = XlogWriter::create(&dir.0, &meta(FileKind::Xlog, "{1: 10}"), true)
            .err()
            .unwrap();
        assert_eq!(error.kind(), io::ErrorKind::AlreadyExists);
    }

    #[test]
    fn snap_keeps_inprogress_until_close() {
        let dir = TempDir::new("xlog");
        let mut writer =
            XlogWriter::create(&dir.0, &meta(FileKind::Snap, "{1: 3, 2: 4}"), true).unwrap();
        let inprogress = dir.0.join("00000000000000000007.snap.inprogress");
        assert_eq!(writer.path(), inprogress);
        writer.write_rows(&encoded(1..=5), 5).unwrap();
        assert!(!dir.0.join("00000000000000000007.snap").exists());
        // A second writer of the same snapshot is refused (O_EXCL).
        let error = XlogWriter::create(&dir.0, &meta(FileKind::Snap, "{1: 7}"), false)
            .err()
            .unwrap();
        assert_eq!(error.kind(), io::ErrorKind::AlreadyExists);
        writer.close().unwrap();
        assert!(!inprogress.exists());
        let (rows, damage, reader) = read_all(&dir.0.join("00000000000000000007.snap"));
        assert_eq!((rows.len(), damage), (5, None));
        assert!(reader.is_complete());
        assert_eq!(reader.meta().kind, FileKind::Snap);
    }

    #[test]
    fn failed_write_is_truncated_away() {
        let dir = TempDir::new("xlog");
        let mut writer = XlogWriter::create(&dir.0, &meta(FileKind::Xlog, "{}"), false).unwrap();
        writer.write_rows(&encoded(1..=2), 2).unwrap();
        let size = writer.size();
        let batch = encoded(3..=5);
        writer.inject_write_failure(batch.len() - 7);
        let error = writer.write_rows(&batch, 3).unwrap_err();
        assert!(error.to_string().contains("injected"), "{error}");
        assert_eq!((writer.size(), writer.rows()), (size, 2));
        assert_eq!(std::fs::metadata(writer.path()).unwrap().len(), size);
        // The writer goes on where the last whole batch ended.
        writer.write_rows(&encoded(3..=3), 1).unwrap();
        let path = writer.path().to_path_buf();
        writer.close().unwrap();
        let (rows, damage, reader) = read_all(&path);
        assert_eq!((rows.len(), damage), (3, None));
        assert!(reader.is_complete());
    }

    #[test]
    fn flipped_byte_is_a_checksum_error() {
        let dir = TempDir::new("xlog");
        let mut body = encoded(1..=3);
        let second = FIXHEADER_SIZE + row(1).len();
        body[second + FIXHEADER_SIZE + 3] ^= 0x40;
        let (path, header_size) = file_with(&dir, &body);
        let (rows, damage, reader) = read_all(&path);
        assert_eq!(rows.len(), 1);
        let (offset, reason) = damage.unwrap();
        assert_eq!(offset, header_size + second as u64);
        assert!(reason.contains("checksum mismatch"), "{reason}");
        assert!(!reader.stopped_at_partial_row());
        assert!(!reader.is_complete());
    }

    #[test]
    fn truncated_last_row() {
        let dir = TempDir::new("xlog");
        let body = encoded(1..=3);
        let last = body.len() - (FIXHEADER_SIZE + row(3).len());
        // Cut in the payload, in the fixheader, and in the marker.
        for cut in [body.len() - 1, last + 10, last + 2] {
            let (path, header_size) = file_with(&dir, &body[..cut]);
            let (rows, damage, reader) = read_all(&path);
            assert_eq!(rows.len(), 2, "{cut}");
            let (offset, reason) = damage.unwrap();
            assert_eq!(offset, header_size + last as u64);
            assert!(reason.contains("truncated"), "{reason}");
            assert!(reader.stopped_at_partial_row());
        }
    }

    #[test]
    fn bad_fixheader() {
        let dir = TempDir::new("xlog");
        let mut body = encoded(1..=2);
        let second = FIXHEADER_SIZE + row(1).len();
        body[second + 4] = 0xc1;
        let (path, header_size) = file_with(&dir, &body);
        let (rows, damage, _) = read_all(&path);
        assert_eq!(rows.len(), 1);
        let (offset, reason) = damage.unwrap();
        assert_eq!(offset, header_size + second as u64);
        assert!(reason.starts_with("bad fixheader"), "{reason}");
    }

    #[test]
    fn garbage_between_rows_is_skipped() {
        let dir = TempDir::new("xlog");
        let mut body = encoded(1..=1);
        let garbage_at = body.len();
        body.extend_from_slice(&[0xd5, 0xba, 0x0b, 0x00, 1, 2, 3, 0xd5]);
        body.extend_from_slice(&encoded(2..=3));
        body.extend_from_slice(b"junk");
        body.extend_from_slice(&EOF_MARKER);
        let (path, header_size) = file_with(&dir, &body);
        let (rows, damage, reader) = read_all(&path);
        assert_eq!(damage, None);
        assert_eq!(
            rows.iter().map(|(_, row)| row.clone()).collect::<Vec<_>>(),
            [row(1), row(2), row(3)]
        );
        assert_eq!(rows[1].0, header_size + garbage_at as u64 + 8);
        assert!(reader.is_complete());
        let garbage = reader.garbage();
        assert_eq!((garbage.regions, garbage.bytes), (2, 12));
        // Garbage at the very end: skipped, the file is not complete.
        let mut body = encoded(1..=1);
        body.extend_from_slice(&[7; 5000]);
        let (path, _) = file_with(&dir, &body);
        let (rows, damage, reader) = read_all(&path);
        assert_eq!((rows.len(), damage), (1, None));
        assert!(!reader.is_complete());
        assert_eq!(reader.garbage().bytes, 5000);
    }

    #[test]
    fn missing_eof_marker_and_data_after_it() {
        let dir = TempDir::new("xlog");
        let (path, _) = file_with(&dir, &encoded(1..=2));
        let (rows, damage, reader) = read_all(&path);
        assert_eq!((rows.len(), damage), (2, None));
        assert!(!reader.is_complete());
        let mut body = encoded(1..=2);
        body.extend_from_slice(&EOF_MARKER);
        body.push(0);
        let (path, header_size) = file_with(&dir, &body);
        let (rows, damage, _) = read_all(&path);
        assert_eq!(rows.len(), 2);
        let (offset, reason) = damage.unwrap();
        assert_eq!(offset, header_size + body.len() as u64 - 1);
        assert_eq!(reason, "data after the EOF marker");
        // A header-only file is a file of no rows.
        let (path, _) = file_with(&dir, &EOF_MARKER);
        let (rows, damage, reader) = read_all(&path);
        assert_eq!((rows.len(), damage, reader.is_complete()), (0, None, true));
    }

    #[test]
    fn open_refuses_bad_headers() {
        let dir = TempDir::new("xlog");
        let path = dir.0.join("x.xlog");
        for (bytes, reason) in [
            (&b""[..], "empty file"),
            (b"XLOG\n0.12-crc32\n", "cut short"),
            (b"XLOG\n0.13\nVersion: 2.6.0\n", TARANTOOL_FILE_REASON),
        ] {
            std::fs::write(&path, bytes).unwrap();
            match XlogReader::open(&path) {
                Err(ReadError::Damaged { reason: actual, .. }) => {
                    assert!(actual.contains(reason), "{actual}")
                }
                Err(error) => panic!("{error}"),
                Ok(_) => panic!("opened {bytes:?}"),
            }
        }
        assert!(matches!(
            XlogReader::open(&dir.0.join("missing")),
            Err(ReadError::Io(_))
        ));
    }

    #[test]
    fn follow_a_growing_file() {
        let dir = TempDir::new("xlog");
        let mut writer = XlogWriter::create(&dir.0, &meta(FileKind::Xlog, "{}"), false).unwrap();
        writer.write_rows(&encoded(1..=2), 2).unwrap();
        let mut reader = XlogReader::open(writer.path()).unwrap();
        assert!(reader.next_row().unwrap().is_some());
        assert!(reader.next_row().unwrap().is_some());
        assert!(reader.next_row().unwrap().is_none());
        // Half a batch on disk (a write in progress): a partial row, then the rest.
        let batch = encoded(3..=4);
        let offset = writer.size();
        let file = OpenOptions::new().write(true).open(writer.path()).unwrap();
        file.write_all_at(&batch[..batch.len() - 5], offset)
            .unwrap();
        reader.resume();
        assert_eq!(reader.next_row().unwrap().unwrap().1, row(3));
        assert!(matches!(reader.next_row(), Err(ReadError::Damaged { .. })));
        assert!(reader.stopped_at_partial_row());
        writer.write_rows(&batch, 2).unwrap();
        writer.close().unwrap();
        reader.resume();
        assert_eq!(reader.next_row().unwrap().unwrap().1, row(4));
        assert!(reader.next_row().unwrap().is_none());
        assert!(reader.is_complete());
        assert_eq!(reader.rows(), 4);
    }

    #[test]
    fn a_torn_tail_rewritten_is_read_as_rewritten() {
        let dir = TempDir::new("xlog");
        let mut writer = XlogWriter::create(&dir.0, &meta(FileKind::Xlog, "{}"), false).unwrap();
        writer.write_rows(&encoded(1..=1), 1).unwrap();
        // A long row torn at its end: the reader stops at it...
        let mut long = Vec::new();
        write_row_header(&mut long, 2, 1, 100, 0.0);
        rmp::encode::write_map_len(&mut long, 1).unwrap();
        rmp::encode::write_uint(&mut long, 0x21).unwrap();
        rmp::encode::write_bin(&mut long, &[0xd5; 300]).unwrap();
        let mut torn = Vec::new();
        encode_row(&mut torn, &long);
        let offset = writer.size();
        let file = OpenOptions::new().write(true).open(writer.path()).unwrap();
        file.write_all_at(&torn[..torn.len() - 3], offset).unwrap();
        let mut reader = XlogReader::open(writer.path()).unwrap();
        assert_eq!(reader.next_row().unwrap().unwrap().1, row(1));
        assert!(matches!(reader.next_row(), Err(ReadError::Damaged { .. })));
        assert!(reader.stopped_at_partial_row());
        // ...which is truncated away and written again, shorter: the reader sees only the
        // new bytes (a stale byte past them would be "data after the EOF marker").
        file.set_len(offset).unwrap();
        writer.write_rows(&encoded(2..=3), 2).unwrap();
        writer.close().unwrap();
        reader.resume();
        assert_eq!(reader.next_row().unwrap().unwrap().1, row(2));
        assert_eq!(reader.next_row().unwrap().unwrap().1, row(3));
        assert!(reader.next_row().unwrap().is_none());
        assert!(reader.is_complete());
    }

    #[test]
    fn big_rows_and_many_rows() {
        let dir = TempDir::new("xlog");
        let mut writer = XlogWriter::create(&dir.0, &meta(FileKind::Snap, "{}"), false).unwrap();
        // Rows larger than a read chunk, and enough small ones to cross many chunks.
        let mut big = Vec::new();
        write_row_header(&mut big, 2, 0, 1, 0.0);
        rmp::encode::write_map_len(&mut big, 1).unwrap();
        rmp::encode::write_uint(&mut big, 0x21).unwrap();
        rmp::encode::write_bin(&mut big, &vec![0xd5; 3 * READ_CHUNK_SIZE]).unwrap();
        let mut batch = Vec::new();
        encode_row(&mut batch, &big);
        writer.write_rows(&batch, 1).unwrap();
        let small = encoded(1..=50_000);
        writer.write_rows(&small, 50_000).unwrap();
        writer.write_rows(&batch, 1).unwrap();
        writer.close().unwrap();
        let mut reader = XlogReader::open(&dir.0.join("00000000000000000000.snap")).unwrap();
        let mut count = 0;
        while let Some((_, row)) = reader.next_row_ref().unwrap() {
            assert!(row.len() == big.len() || row.len() < 64);
            count += 1;
        }
        assert_eq!(count, 50_002);
        assert!(reader.is_complete());
    }
}
