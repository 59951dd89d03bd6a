//! A real failed write: `XlogWriter::write_rows` hits the file size limit (RLIMIT_FSIZE) in
//! the middle of a batch, after part of it reached the file, and must truncate the file back
//! to the last whole batch, stay usable, and leave a file that reads back clean.
//!
//! This is its own test binary because the limit applies to the whole process: no other test
//! may write files while it is lowered.

use std::path::PathBuf;

use tarantula::wal::vclock::Vclock;
use tarantula::wal::xlog::{FileKind, Meta, XlogReader, XlogWriter, encode_row, write_row_header};

fn batch(lsns: std::ops::RangeInclusive<u64>) -> Vec<u8> {
    let mut out = Vec::new();
    for lsn in lsns {
        let mut row = Vec::new();
        write_row_header(&mut row, 2, 1, lsn, 0.0);
        rmp::encode::write_map_len(&mut row, 2).unwrap();
        rmp::encode::write_uint(&mut row, 0x10).unwrap();
        rmp::encode::write_uint(&mut row, 512).unwrap();
        rmp::encode::write_uint(&mut row, 0x21).unwrap();
        rmp::encode::write_array_len(&mut row, 2).unwrap();
        rmp::encode::write_uint(&mut row, lsn).unwrap();
        rmp::encode::write_str(&mut row, &"x".repeat(100)).unwrap();
        encode_row(&mut out, &row);
    }
    out
}

fn set_file_size_limit(limit: libc::rlim_t) {
    let mut current = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed by pointer, which
    // lives on this stack frame for the whole call.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_FSIZE, &mut current), 0);
        current.rlim_cur = limit.min(current.rlim_max);
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &current), 0);
    }
}

#[test]
fn write_over_the_file_size_limit_is_truncated_away() {
    // Past the limit the kernel sends SIGXFSZ (which kills) before failing with EFBIG.
    // SAFETY: setting a signal to SIG_IGN installs no handler code; nothing else in this
    // process relies on SIGXFSZ.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    let dir: PathBuf = std::env::temp_dir().join(format!(
        "tarantula-xlog-write-failure-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let meta = Meta {
        kind: FileKind::Xlog,
        instance_uuid: "e654a428-c96c-4e57-b3eb-4c954186acdc".to_string(),
        vclock: Vclock::new(),
    };
    let mut writer = XlogWriter::create(&dir, &meta, false).unwrap();
    writer.write_rows(&batch(1..=3), 3).unwrap();
    let size = writer.size();

    // Room for part of the next batch only.
    set_file_size_limit(size + 200);
    let error = writer.write_rows(&batch(4..=10), 7).unwrap_err();
    set_file_size_limit(libc::RLIM_INFINITY);
    assert_eq!(error.raw_os_error(), Some(libc::EFBIG), "{error}");
    assert_eq!((writer.size(), writer.rows()), (size, 3));
    assert_eq!(std::fs::metadata(writer.path()).unwrap().len(), size);

    writer.write_rows(&batch(4..=5), 2).unwrap();
    let path = writer.path().to_path_buf();
    writer.close().unwrap();
    let mut reader = XlogReader::open(&path).unwrap();
    let mut rows = 0;
    while reader.next_row().unwrap().is_some() {
        rows += 1;
    }
    assert_eq!(rows, 5);
    assert!(reader.is_complete());
    std::fs::remove_dir_all(&dir).unwrap();
}
