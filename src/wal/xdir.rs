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

    /// A fresh directory under the system temp dir, removed on drop.
    use crate::wal::TempDir;

    /// Write a closed, empty file of `kind` starting at `vclock`.
    fn create(dir: &Path, kind: FileKind, vclock: &str) -> PathBuf {
        let meta = Meta {
            kind,
            instance_uuid: "e654a428-c96c-4e57-b3eb-4c954186acdc".to_string(),
            vclock: Vclock::parse(vclock).unwrap(),
        };
        let writer = super::super::xlog::XlogWriter::create(dir, &meta, false).unwrap();
        writer.close().unwrap();
        dir.join(file_name(meta.vclock.signature(), kind))
    }

    #[test]
    fn scan_newest_and_inprogress() {
        let dir = TempDir::new("scan");
        let zero = create(&dir.0, FileKind::Xlog, "{}");
        let ten = create(&dir.0, FileKind::Xlog, "{1: 10}");
        let fifteen = create(&dir.0, FileKind::Xlog, "{1: 10, 2: 5}");
        let snap = create(&dir.0, FileKind::Snap, "{1: 10}");
        for name in [
            "00000000000000000020.xlog.inprogress",
            "00000000000000000020.snap.inprogress",
        ] {
            std::fs::write(dir.0.join(name), b"").unwrap();
        }
        std::fs::write(dir.0.join("notes.txt"), b"").unwrap();
        let xlogs = scan(&dir.0, FileKind::Xlog).unwrap();
        assert_eq!(xlogs, [(0, zero), (10, ten), (15, fifteen.clone())]);
        assert_eq!(newest(&dir.0, FileKind::Xlog).unwrap(), Some((15, fifteen)));
        assert_eq!(scan(&dir.0, FileKind::Snap).unwrap(), [(10, snap)]);
        let removed = remove_inprogress(&dir.0, FileKind::Xlog).unwrap();
        assert_eq!(
            removed,
            [dir.0.join("00000000000000000020.xlog.inprogress")]
        );
        assert!(dir.0.join("00000000000000000020.snap.inprogress").exists());
        let empty = TempDir::new("empty");
        assert_eq!(newest(&empty.0, FileKind::Snap).unwrap(), None);
    }

    #[test]
    fn files_for_recovery_reads_headers() {
        let dir = TempDir::new("recovery");
        let zero = create(&dir.0, FileKind::Xlog, "{}");
        let ten = create(&dir.0, FileKind::Xlog, "{1: 10}");
        let fifteen = create(&dir.0, FileKind::Xlog, "{1: 10, 2: 5}");
        let from = |text: &str| {
            files_for_recovery(&dir.0, FileKind::Xlog, &Vclock::parse(text).unwrap()).unwrap()
        };
        assert_eq!(from("{}"), [zero.clone(), ten.clone(), fifteen.clone()]);
        assert_eq!(from("{1: 12}"), [ten.clone(), fifteen.clone()]);
        assert_eq!(from("{1: 16}"), [ten, fifteen.clone()]);
        assert_eq!(from("{1: 10, 2: 6}"), [fifteen]);
        // A damaged header of a candidate is an error naming the file.
        std::fs::write(&zero, b"XLOG\n0.13\n").unwrap();
        let error = files_for_recovery(&dir.0, FileKind::Xlog, &Vclock::new()).unwrap_err();
        assert!(
            error.to_string().contains("00000000000000000000.xlog"),
            "{error}"
        );
    }

    #[test]
    fn open_checked_compares_type_and_name() {
        let dir = TempDir::new("checked");
        let ten = create(&dir.0, FileKind::Xlog, "{1: 10}");
        assert!(open_checked(&ten, FileKind::Xlog).is_ok());
        let reason = |result: Result<XlogReader, ReadError>| match result {
            Err(ReadError::Damaged { reason, .. }) => reason,
            Err(error) => panic!("{error}"),
            Ok(_) => panic!("accepted"),
        };
        assert_eq!(
            reason(open_checked(&ten, FileKind::Snap)),
            "file type XLOG, expected SNAP"
        );
        let renamed = dir.0.join(file_name(11, FileKind::Xlog));
        std::fs::rename(&ten, &renamed).unwrap();
        assert!(reason(open_checked(&renamed, FileKind::Xlog)).contains("does not match"));
    }
}
