//! A directory of `.xlog` or `.snap` files: names, scans, clean-up, and the choice of the files
//! to replay (PROTOCOL.md §6.3, §7.3).
//!
//! Plain functions over the file system, run by whichever thread needs them (TX at start, the
//! WAL thread at rotation, a relay when it looks for the next file, the snapshot daemon).
//!
//! A file is named after the signature of the vclock it starts at, `%020lld.<ext>`:
//! `00000000000000001234.xlog`. Files being written end in `.inprogress`; scans ignore them.

use std::io;
use std::path::{Path, PathBuf};

use super::vclock::Vclock;
use super::xlog::{FileKind, Meta, ReadError, XlogReader, read_meta};

/// The file name of the file of `kind` starting at vclock signature `signature`.
pub fn file_name(signature: i64, kind: FileKind) -> String {
    assert!(signature >= 0, "negative signature {signature}");
    format!("{signature:020}.{}", kind.ext())
}

/// The signature a file name says, if it is the name of a complete file of `kind` (digits,
/// a dot and the extension; any number of digits, as Tarantool reads them).
pub fn signature_from_name(name: &str, kind: FileKind) -> Option<i64> {
    let digits = name.strip_suffix(kind.ext())?.strip_suffix('.')?;
    if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The complete files of `kind` in `dir` as (signature, path), by signature ascending.
/// Other names (`.inprogress` files among them) are ignored.
pub fn scan(dir: &Path, kind: FileKind) -> io::Result<Vec<(i64, PathBuf)>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(signature) = name
            .to_str()
            .and_then(|name| signature_from_name(name, kind))
        else {
            continue;
        };
        files.push((signature, entry.path()));
    }
    files.sort();
    Ok(files)
}

/// The file of `kind` with the greatest signature, if any.
pub fn newest(dir: &Path, kind: FileKind) -> io::Result<Option<(i64, PathBuf)>> {
    Ok(scan(dir, kind)?.pop())
}

/// Remove `*.<ext>.inprogress` files left by a crash (a snapshot never finished, an xlog
/// whose header never reached the disk); returns what was removed.
pub fn remove_inprogress(dir: &Path, kind: FileKind) -> io::Result<Vec<PathBuf>> {
    let suffix = format!(".{}.inprogress", kind.ext());
    let mut removed = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if !name.to_str().is_some_and(|name| name.ends_with(&suffix)) {
            continue;
        }
        let path = entry.path();
        std::fs::remove_file(&path)?;
        log::info!("removed stale {}", path.display());
        removed.push(path);
    }
    removed.sort();
    Ok(removed)
}

/// The files of `kind` to read to get from vclock `from` to the end: the newest file whose
/// starting vclock is ≤ `from` (component-wise), and every file after it, oldest first. If
/// no file starts at or before `from`, all of them (the caller finds the gap by comparing
/// `from` with the first file's vclock). This is the choice recovery and the relay make.
pub fn files_for_recovery(dir: &Path, kind: FileKind, from: &Vclock) -> io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for (signature, path) in scan(dir, kind)? {
        // Files after `from` are all needed; only the candidates' vclocks matter.
        if signature > from.signature() {
            files.push((signature, path, None));
            continue;
        }
        let meta = read_meta(&path)
            .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, describe(&path, error)))?;
        files.push((signature, path, Some(meta.vclock)));
    }
    let first = first_for_recovery(&files, from);
    Ok(files.drain(first..).map(|(_, path, _)| path).collect())
}

/// The index in `files` (signature ascending; vclock known for every file whose signature is
/// ≤ that of `from`) where reading starts: the last file whose vclock is ≤ `from`, else 0.
pub fn first_for_recovery(files: &[(i64, PathBuf, Option<Vclock>)], from: &Vclock) -> usize {
    files
        .iter()
        .rposition(|(_, _, vclock)| {
            vclock
                .as_ref()
                .is_some_and(|vclock| vclock.compare(from).is_some_and(|order| order.is_le()))
        })
        .unwrap_or(0)
}

/// Open a file for reading and check its header against where it was found: the type must be
/// `kind` and the vclock's signature the number in the name (PROTOCOL.md §6.1).
pub fn open_checked(path: &Path, kind: FileKind) -> Result<XlogReader, ReadError> {
    let reader = XlogReader::open(path)?;
    check_meta(path, reader.meta(), kind)?;
    Ok(reader)
}

/// The checks of `open_checked`.
pub fn check_meta(path: &Path, meta: &Meta, kind: FileKind) -> Result<(), ReadError> {
    let damaged = |reason: String| ReadError::Damaged { offset: 0, reason };
    if meta.kind != kind {
        let found = meta.kind.type_line();
        return Err(damaged(format!(
            "file type {found}, expected {}",
            kind.type_line()
        )));
    }
    let name = path
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or("");
    let name = name.strip_suffix(".inprogress").unwrap_or(name);
    if let Some(signature) = signature_from_name(name, kind)
        && signature != meta.vclock.signature()
    {
        let vclock = meta.vclock.to_text();
        return Err(damaged(format!(
            "vclock {vclock} does not match the file name"
        )));
    }
    Ok(())
}

/// Make creations and renames in `dir` durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// "path: at offset N: reason".
pub fn describe(path: &Path, error: ReadError) -> String {
    format!("{}: {error}", path.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(file_name(0, FileKind::Xlog), "00000000000000000000.xlog");
        assert_eq!(file_name(1234, FileKind::Snap), "00000000000000001234.snap");
        assert_eq!(
            signature_from_name("00000000000000001234.snap", FileKind::Snap),
            Some(1234)
        );
        assert_eq!(signature_from_name("42.xlog", FileKind::Xlog), Some(42));
        for name in [
            "00000000000000001234.snap",
            "00000000000000001234.xlog.inprogress",
            ".xlog",
            "12a.xlog",
            "12xlog",
            "-1.xlog",
        ] {
            assert_eq!(signature_from_name(name, FileKind::Xlog), None, "{name}");
        }
    }

    #[test]
    fn first_for_recovery_picks_the_newest_file_at_or_before() {
        let file = |signature: i64, text: &str| {
            (
                signature,
                PathBuf::from(format!("{signature}")),
                Vclock::parse(text),
            )
        };
        let files = vec![
            file(0, "{}"),
            file(10, "{1: 10}"),
            file(15, "{1: 10, 2: 5}"),
            file(30, "{1: 25, 2: 5}"),
        ];
        let first = |text: &str| first_for_recovery(&files, &Vclock::parse(text).unwrap());
        assert_eq!(first("{}"), 0);
        assert_eq!(first("{1: 9}"), 0);
        assert_eq!(first("{1: 10}"), 1);
        assert_eq!(first("{1: 12, 2: 5}"), 2);
        assert_eq!(first("{1: 40, 2: 7}"), 3);
        // The signature alone would pick file 15 (sum 16 ≥ 15), but {1: 10, 2: 5} is not
        // ≤ {1: 16}: rows of server 2 are in file 10.
        assert_eq!(first("{1: 16}"), 1);
        // Nothing at or before: everything (the caller reports the gap).
        let late = vec![file(10, "{1: 10}"), file(20, "{1: 20}")];
        assert_eq!(
            first_for_recovery(&late, &Vclock::parse("{1: 5}").unwrap()),
            0
        );
    }
}
