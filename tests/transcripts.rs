//! Transcript tests in the style of Tarantool's test-run: every `tests/**/*.test.lua` is
//! played through the admin console of a fresh server, one statement per line, and the
//! transcript (each statement followed by its YAML reply) must equal the `.result` file
//! beside it. Run with `TARANTULA_UPDATE_RESULTS=1` to rewrite the `.result` files.
//!
//! Blank lines are skipped. `\set delimiter X` (sent like any line) makes the runner, like
//! the server, treat lines as one statement until a line ends with X.

mod common;

use std::path::{Path, PathBuf};

use common::Server;

fn transcript_files(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            transcript_files(&path, found);
        } else if path.to_string_lossy().ends_with(".test.lua") {
            found.push(path);
        }
    }
}

/// Play one file; returns the transcript.
fn play(test: &Path) -> String {
    let source = std::fs::read_to_string(test).expect("read test file");
    let server = Server::start("");
    let mut console = server.console();
    let mut transcript = String::new();
    let mut delimiter = String::new();
    for line in source.lines() {
        if line.trim().is_empty() {
            continue;
        }
        transcript.push_str(line);
        transcript.push('\n');
        console.send(format!("{line}\n").as_bytes());
        if let Some(rest) = line.strip_prefix("\\set delimiter") {
            delimiter = rest.trim().to_string();
        } else if !delimiter.is_empty() && !line.ends_with(&delimiter) {
            continue;
        }
        transcript.push_str(&console.reply());
    }
    transcript
}

/// A readable difference: the first differing line with some context.
fn diff(expected: &str, actual: &str) -> String {
    let expected: Vec<&str> = expected.lines().collect();
    let actual: Vec<&str> = actual.lines().collect();
    let first = expected
        .iter()
        .zip(actual.iter())
        .position(|(a, b)| a != b)
        .unwrap_or(expected.len().min(actual.len()));
    let from = first.saturating_sub(3);
    let mut text = format!("first difference at line {}\n", first + 1);
    for (n, line) in expected.iter().enumerate().skip(from).take(8) {
        text.push_str(&format!("-{:5} {line}\n", n + 1));
    }
    for (n, line) in actual.iter().enumerate().skip(from).take(8) {
        text.push_str(&format!("+{:5} {line}\n", n + 1));
    }
    text
}

#[test]
fn transcripts_match_their_results() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let mut tests = Vec::new();
    transcript_files(&root, &mut tests);
    tests.sort();
    assert!(
        !tests.is_empty(),
        "no .test.lua files under {}",
        root.display()
    );
    let update = std::env::var_os("TARANTULA_UPDATE_RESULTS").is_some();
    let mut failures = Vec::new();
    for test in &tests {
        let actual = play(test);
        let result = PathBuf::from(test.to_string_lossy().replace(".test.lua", ".result"));
        if update {
            std::fs::write(&result, &actual).expect("write result");
            continue;
        }
        let expected = std::fs::read_to_string(&result).unwrap_or_default();
        if expected != actual {
            failures.push(format!("{}:\n{}", test.display(), diff(&expected, &actual)));
        }
    }
    assert!(
        failures.is_empty(),
        "{} transcript(s) differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
