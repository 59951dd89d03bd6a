//! `xlog_cat`: files written with the library API, printed, filtered and checked by the binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tarantula::wal::vclock::Vclock;
use tarantula::wal::xlog::{FileKind, Meta, XlogWriter, encode_row, write_row_header};

mod common;

use common::TempDir;

const UUID: &str = "e654a428-c96c-4e57-b3eb-4c954186acdc";

/// One row: header fields and a body of (key, msgpack value) pairs.
fn row(kind: u32, server_id: u32, lsn: u64, body: &[(u8, rmpv::Value)]) -> Vec<u8> {
    let mut out = Vec::new();
    write_row_header(&mut out, kind, server_id, lsn, 1795741298.8788147);
    let map = rmpv::Value::Map(
        body.iter()
            .map(|(code, value)| (rmpv::Value::from(*code), value.clone()))
            .collect(),
    );
    rmpv::encode::write_value(&mut out, &map).unwrap();
    out
}

fn tuple(items: Vec<rmpv::Value>) -> rmpv::Value {
    rmpv::Value::Array(items)
}

/// An xlog at vclock {1: 10} with four rows; returns its path.
fn sample(dir: &Path) -> PathBuf {
    let meta = Meta {
        kind: FileKind::Xlog,
        instance_uuid: UUID.to_string(),
        vclock: Vclock::parse("{1: 10}").unwrap(),
    };
    let mut writer = XlogWriter::create(dir, &meta, false).unwrap();
    let rows = [
        row(
            2,
            1,
            11,
            &[
                (0x10, 512.into()),
                (0x21, tuple(vec![1.into(), "it's".into()])),
            ],
        ),
        row(
            3,
            1,
            12,
            &[
                (0x10, 280.into()),
                (0x21, tuple(vec![512.into(), true.into()])),
            ],
        ),
        row(
            5,
            2,
            3,
            &[(0x10, 512.into()), (0x20, tuple(vec![1.into()]))],
        ),
        row(
            4,
            1,
            13,
            &[
                (0x10, 512.into()),
                (0x15, 1.into()),
                (0x20, tuple(vec![2.into()])),
                (
                    0x21,
                    tuple(vec![tuple(vec!["=".into(), 2.into(), 1.5.into()])]),
                ),
            ],
        ),
    ];
    let mut batch = Vec::new();
    for row in &rows {
        encode_row(&mut batch, row);
    }
    writer.write_rows(&batch, rows.len() as u64).unwrap();
    let path = writer.path().to_path_buf();
    writer.close().unwrap();
    path
}

fn xlog_cat(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xlog_cat"))
        .args(args)
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

#[test]
fn prints_header_and_rows() {
    let dir = TempDir::new("print");
    let path = sample(dir.path());
    let output = xlog_cat(&[path.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let expected = format!(
        "Processing file '{path}'
---
META:
  type: XLOG
  version: 0.12-crc32
  server: {UUID}
  vclock: {{1: 10}}
---
HEADER:
  lsn: 11
  server_id: 1
  type: INSERT
  timestamp: 1795741298.8788
BODY:
  space_id: 512
  tuple: [1, 'it''s']
---
HEADER:
  lsn: 12
  server_id: 1
  type: REPLACE
  timestamp: 1795741298.8788
BODY:
  space_id: 280
  tuple: [512, true]
---
HEADER:
  lsn: 3
  server_id: 2
  type: DELETE
  timestamp: 1795741298.8788
BODY:
  space_id: 512
  key: [1]
---
HEADER:
  lsn: 13
  server_id: 1
  type: UPDATE
  timestamp: 1795741298.8788
BODY:
  space_id: 512
  index_base: 1
  key: [2]
  tuple: [['=', 2, 1.5]]
...
",
        path = path.display()
    );
    assert_eq!(stdout(&output), expected);
}

/// The LSNs of the rows printed.
fn lsns(output: &Output) -> Vec<u64> {
    assert!(output.status.success(), "{}", stderr(output));
    stdout(output)
        .lines()
        .filter_map(|line| line.strip_prefix("  lsn: "))
        .map(|lsn| lsn.parse().unwrap())
        .collect()
}

#[test]
fn filters() {
    let dir = TempDir::new("filters");
    let path = sample(dir.path());
    let path = path.to_str().unwrap();
    assert_eq!(lsns(&xlog_cat(&["--space", "512", path])), [11, 3, 13]);
    assert_eq!(
        lsns(&xlog_cat(&["--space", "280", "--space", "9", path])),
        [12]
    );
    assert_eq!(lsns(&xlog_cat(&["--server", "2", path])), [3]);
    assert_eq!(
        lsns(&xlog_cat(&["--from", "11", "--to", "13", path])),
        [11, 12]
    );
    assert_eq!(
        lsns(&xlog_cat(&["--server", "1", "--from", "12", path])),
        [12, 13]
    );
    // Nothing printed: no closing "...".
    let output = xlog_cat(&["--space", "7", path]);
    assert!(!stdout(&output).contains("..."));
    let output = xlog_cat(&["--from", "x", path]);
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn check_reports_ok_or_the_first_damage() {
    let dir = TempDir::new("check");
    let path = sample(dir.path());
    let name = path.to_str().unwrap();
    let output = xlog_cat(&["--check", name]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), format!("{name}: OK 4 rows\n"));

    // Flip a byte inside the second row's payload.
    let mut bytes = std::fs::read(&path).unwrap();
    let header = bytes
        .windows(4)
        .position(|w| w == [0xd5, 0xba, 0x0b, 0xab])
        .unwrap();
    let second = header
        + 4
        + bytes[header + 4..]
            .windows(4)
            .position(|w| w == [0xd5, 0xba, 0x0b, 0xab])
            .unwrap();
    bytes[second + 25] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    let output = xlog_cat(&["--check", name]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(stdout(&output), "");
    let message = stderr(&output);
    assert!(
        message.contains(&format!("damaged at offset {second}: checksum mismatch")),
        "{message}"
    );

    // Cut off the EOF marker and half of the last row: a torn xlog tail.
    bytes[second + 25] ^= 0x01;
    bytes.truncate(bytes.len() - 10);
    std::fs::write(&path, &bytes).unwrap();
    let output = xlog_cat(&["--check", name]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("truncated row"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn check_of_an_unclosed_xlog_and_snap() {
    let dir = TempDir::new("unclosed");
    for (kind, vclock) in [(FileKind::Xlog, "{}"), (FileKind::Snap, "{}")] {
        let meta = Meta {
            kind,
            instance_uuid: UUID.to_string(),
            vclock: Vclock::parse(vclock).unwrap(),
        };
        let mut writer = XlogWriter::create(dir.path(), &meta, false).unwrap();
        let mut batch = Vec::new();
        encode_row(&mut batch, &row(2, 0, 1, &[(0x10, 512.into())]));
        writer.write_rows(&batch, 1).unwrap();
        // Dropped without close: no EOF marker (a snap keeps .inprogress).
        let path = writer.path().to_path_buf();
        drop(writer);
        let output = xlog_cat(&["--check", path.to_str().unwrap()]);
        let message = stderr(&output);
        assert!(message.contains("no EOF marker"), "{message}");
        match kind {
            FileKind::Xlog => {
                assert!(output.status.success());
                assert!(stdout(&output).ends_with(": OK 1 rows\n"));
            }
            FileKind::Snap => assert_eq!(output.status.code(), Some(1)),
        }
    }
}

#[test]
fn refuses_a_tarantool_file() {
    let dir = TempDir::new("tarantool");
    let path = dir.path().join("00000000000000000000.xlog");
    let header =
        format!("XLOG\n0.13\nVersion: 2.6.0-0-g47aa4e01e\nInstance: {UUID}\nVClock: {{}}\n\n");
    std::fs::write(&path, header).unwrap();
    let output = xlog_cat(&[path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(
        message.contains("at offset 5: a Tarantool file (CRC-32C); tarantula files say 0.12-crc32"),
        "{message}"
    );
}

/// Timing of a million rows through the writer, the reader and `xlog_cat --check`:
/// `cargo test --release --test xlog_cat -- --ignored --nocapture`.
#[test]
#[ignore]
fn million_rows_timing() {
    let dir = TempDir::new("million");
    let meta = Meta {
        kind: FileKind::Xlog,
        instance_uuid: UUID.to_string(),
        vclock: Vclock::new(),
    };
    let started = std::time::Instant::now();
    let mut writer = XlogWriter::create(dir.path(), &meta, false).unwrap();
    let mut batch = Vec::new();
    for lsn in 1..=1_000_000u64 {
        let tuple = tuple(vec![lsn.into(), "a twenty-byte string".into()]);
        encode_row(
            &mut batch,
            &row(3, 1, lsn, &[(0x10, 512.into()), (0x21, tuple)]),
        );
        if lsn % 1000 == 0 {
            writer.write_rows(&batch, 1000).unwrap();
            batch.clear();
        }
    }
    let path = writer.path().to_path_buf();
    writer.close().unwrap();
    let written = started.elapsed();
    let started = std::time::Instant::now();
    let mut reader = tarantula::wal::xlog::XlogReader::open(&path).unwrap();
    let mut rows = 0u64;
    while reader.next_row_ref().unwrap().is_some() {
        rows += 1;
    }
    let read = started.elapsed();
    let started = std::time::Instant::now();
    let output = xlog_cat(&["--check", path.to_str().unwrap()]);
    let checked = started.elapsed();
    assert!(output.status.success());
    assert_eq!(rows, 1_000_000);
    let size = std::fs::metadata(&path).unwrap().len();
    println!("{size} bytes; write {written:?}, read {read:?}, xlog_cat --check {checked:?}");
}
