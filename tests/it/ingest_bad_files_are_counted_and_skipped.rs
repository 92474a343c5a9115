//! Bad input to the file source: things that are not readable files where the globs expect
//! files, and a line of 100 MB. Each is a counted skip or a counted split; the source keeps
//! reading the good files, and nothing committed is lost or sent again after a crash.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::process::Command;

use streamlog::ingest::FileSourceConfig;

use crate::common::ingest::Harness;

fn append(path: &Path, text: &[u8]) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text).unwrap();
}

fn harness(dir: &Path) -> Harness {
    let mut c = FileSourceConfig::new("app", "logs");
    c.paths = vec![format!("{}/*.log", dir.display())];
    c.watch = false;
    c.idle_timeout_ms = 3_600_000;
    Harness::new(c)
}

/// A directory and a FIFO match the glob (as root, permissions cannot make a file
/// unreadable, so these stand for it): each is skipped and counted once, never opened (a
/// FIFO's open would block the source), and the real file beside them is read as usual.
#[test]
fn a_directory_and_a_fifo_where_files_are_expected_are_skipped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("b-dir.log")).unwrap();
    let fifo = dir.path().join("c-fifo.log");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let good = dir.path().join("a.log");
    append(&good, b"1\n2\n");
    let mut h = harness(dir.path());
    h.poll_commit();
    assert_eq!(h.texts(), ["1", "2"]);
    assert_eq!(h.count(|m| &m.files_skipped), 2);
    // Polled again: counted once each; the good file goes on.
    append(&good, b"3\n");
    h.poll_commit();
    assert_eq!(h.count(|m| &m.files_skipped), 2);
    // After a crash the rebuilt source reports them once more (its counters are shared
    // here, as a restarted agent's are new), and nothing committed is read again.
    h.crash();
    append(&good, b"4\n");
    h.poll_commit();
    assert_eq!(h.texts(), ["1", "2", "3", "4"]);
    assert_eq!(h.count(|m| &m.files_skipped), 4);
    assert_eq!(h.count(|m| &m.errors), 0);
}

/// A line of 100 MB between two short ones, with the default maximum of 1 MiB: it goes out
/// as 100 records of at most 1 MiB with `split.index` / `split.last`, counted once in
/// `lines_split`; the lines after it follow, and a crash after the commit re-sends nothing.
/// (The framer's own test checks that it holds at most the maximum of such a line.)
#[test]
fn a_100_mb_line_is_split_counted_and_the_source_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let total = 100 * 1024 * 1024;
    {
        let mut f = std::io::BufWriter::new(fs::File::create(&log).unwrap());
        f.write_all(b"before\n").unwrap();
        let chunk = vec![b'x'; 1024 * 1024];
        for _ in 0..total / chunk.len() {
            f.write_all(&chunk).unwrap();
        }
        f.write_all(b"\nafter\n").unwrap();
    }
    let mut h = harness(dir.path());
    h.poll_commit();
    let max = h.cfg.max_line_bytes;
    assert_eq!(max, 1024 * 1024);
    let sent = std::mem::take(&mut h.delivered);
    assert_eq!(sent.len(), 1 + 100 + 1);
    assert_eq!(sent[0].text(), "before");
    assert_eq!(sent[101].text(), "after");
    let pieces = &sent[1..101];
    let mut bytes = 0;
    for (i, p) in pieces.iter().enumerate() {
        assert!(p.value.len() <= max);
        assert!(p.value.iter().all(|b| *b == b'x'));
        bytes += p.value.len();
        assert_eq!(p.headers["split.index"], i.to_string());
        let last = if i == 99 { "true" } else { "false" };
        assert_eq!(p.headers["split.last"], last);
        // Each piece's offset header is where its bytes start in the file.
        assert_eq!(p.headers["offset"], (7 + i * max).to_string());
    }
    assert_eq!(bytes, total);
    assert_eq!(h.count(|m| &m.lines_split), 1);
    drop(sent);

    h.crash();
    append(&log, b"more\n");
    h.poll_commit();
    assert_eq!(h.texts(), ["more"]);
    assert_eq!(h.count(|m| &m.errors), 0);
}
