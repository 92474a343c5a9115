//! The file source through each kind of rotation, with crashes between commits: every line
//! is delivered exactly once and in order, and the counters say what happened.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use streamlog::ingest::{FileSourceConfig, KeyMode};

use crate::common::ingest::{gzip, Harness};

fn append(path: &Path, lines: &[&str]) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for l in lines {
        writeln!(f, "{l}").unwrap();
    }
}

/// A temporary directory, its `app.log`, and a harness following `app.log*` there (no
/// watcher, no idle flush) with `tune`'s changes to the settings.
fn setup(tune: impl FnOnce(&mut FileSourceConfig)) -> (tempfile::TempDir, PathBuf, Harness) {
    let dir = tempfile::tempdir().unwrap();
    let mut c = FileSourceConfig::new("app", "logs");
    c.paths = vec![format!("{}/app.log*", dir.path().display())];
    c.watch = false;
    c.idle_timeout_ms = 3_600_000;
    tune(&mut c);
    let log = dir.path().join("app.log");
    (dir, log, Harness::new(c))
}

#[test]
fn rename_rotation_finishes_the_old_file_then_follows_the_new() {
    let (dir, log, mut h) = setup(|_| {});
    append(&log, &["1", "2"]);
    h.poll_commit();
    append(&log, &["3"]);
    fs::rename(&log, dir.path().join("app.log.1")).unwrap();
    append(&log, &["4"]);
    h.poll_commit();
    h.crash();
    append(&log, &["5"]);
    append(&dir.path().join("app.log.1"), &["late"]); // the writer had not reopened yet
    h.poll_commit();
    assert_eq!(h.texts(), ["1", "2", "3", "4", "late", "5"]);
    let offsets: Vec<&str> = h
        .delivered
        .iter()
        .map(|s| s.headers["offset"].as_str())
        .collect();
    assert_eq!(offsets, ["0", "2", "4", "0", "6", "2"]);
}

#[test]
fn crash_before_commit_rereads_exactly_the_uncommitted_lines() {
    let (_dir, log, mut h) = setup(|_| {});
    append(&log, &["a", "b"]);
    h.poll_commit();
    append(&log, &["c", "d"]);
    h.poll(); // read, not committed
    h.crash();
    h.poll_commit();
    h.crash();
    h.poll_commit(); // nothing new
    assert_eq!(h.texts(), ["a", "b", "c", "d"]);
}

#[test]
fn copytruncate_continues_in_the_copy_then_the_new_content() {
    let (dir, log, mut h) = setup(|_| {});
    append(&log, &["line 1", "line 2"]);
    h.poll_commit();
    append(&log, &["line 3", "line 4"]);
    fs::copy(&log, dir.path().join("app.log.1")).unwrap();
    // The copy is not read while the original still holds its bytes.
    h.poll();
    assert_eq!(
        h.pending.0.len(),
        2,
        "line 3 and 4 read once, from the original"
    );
    h.crash(); // ...and lost with the crash: they must come from the copy
    OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&log, &["line 5"]);
    h.poll_commit();
    assert_eq!(
        h.texts(),
        ["line 1", "line 2", "line 3", "line 4", "line 5"]
    );
    // Truncated while the agent was down: counted as a truncation, since a plain copy
    // held its rest (not as an inode holding another file).
    assert_eq!(h.count(|m| &m.truncations), 1);
    assert_eq!(h.count(|m| &m.identity_changes), 0);
    assert_eq!(h.count(|m| &m.copies_followed), 1);
    // Later polls read nothing again: the copy is sealed at its end.
    h.poll_commit();
    append(&log, &["line 6"]);
    h.crash();
    h.poll_commit();
    assert_eq!(h.texts().len(), 6);
}

#[test]
fn copytruncate_window_lines_read_before_the_truncation_are_kept_once() {
    let (dir, log, mut h) = setup(|_| {});
    append(&log, &["w1", "w2"]);
    h.poll_commit();
    fs::copy(&log, dir.path().join("app.log.1")).unwrap();
    append(&log, &["w3-window"]); // after the copy, before the truncation
    h.poll_commit(); // the agent happened to read it from the original
    OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&log, &["w4"]);
    h.poll_commit();
    assert_eq!(h.texts(), ["w1", "w2", "w3-window", "w4"]);
    assert_eq!(h.count(|m| &m.truncations), 1);
    assert_eq!(h.count(|m| &m.copies_followed), 1);
}

/// The copy of a copytruncated file is compressed (and the plain copy removed) and the
/// original deleted before the agent looks again: reading the original through its
/// descriptor finds it shorter than the position, so its rest is unknown, and no new file
/// is read until the compressed copy is complete. (Reading the descriptor to its end and
/// calling the file finished let the new file's lines come before the copy's.)
#[test]
fn truncated_file_gone_waits_for_its_rest_before_new_files() {
    use std::io::Write as _;
    let (dir, log, mut h) = setup(|_| {});
    append(
        &log,
        &[
            "old 1 of the first generation",
            "old 2 of the first generation",
        ],
    );
    h.poll_commit();
    append(
        &log,
        &["old 3 (only in the copy)", "old 4 (only in the copy)"],
    );
    let copy = dir.path().join("app.log.1");
    fs::copy(&log, &copy).unwrap();
    OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    // Shorter than the position; deleted with the file below.
    append(&log, &["lost"]);
    // gzip of the copy, half written so far; the plain copy and the original are gone.
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(&fs::read(&copy).unwrap()).unwrap();
    let gz_bytes = enc.finish().unwrap();
    let gz = dir.path().join("app.log.1.gz");
    fs::write(&gz, &gz_bytes[..gz_bytes.len() / 2]).unwrap();
    fs::remove_file(&copy).unwrap();
    fs::remove_file(&log).unwrap();
    append(&log, &["new 1 of a later file"]);
    h.poll();
    h.poll();
    assert!(
        h.pending.0.is_empty(),
        "nothing may come before the copy's rest: {:?}",
        h.pending.0
    );
    fs::write(&gz, &gz_bytes).unwrap();
    h.poll_commit();
    assert_eq!(
        h.texts(),
        [
            "old 1 of the first generation",
            "old 2 of the first generation",
            "old 3 (only in the copy)",
            "old 4 (only in the copy)",
            "new 1 of a later file"
        ]
    );
    assert_eq!(h.count(|m| &m.truncations), 1);
}

#[test]
fn gzip_of_a_rotated_file_finishes_it_after_a_restart() {
    let (dir, log, mut h) = setup(|_| {});
    append(&log, &["g1", "g2"]);
    h.poll_commit();
    append(&log, &["g3", "g4"]);
    h.poll();
    h.crash(); // g3, g4 lost with the crash; the agent stays down while logrotate runs
    fs::rename(&log, dir.path().join("app.log.1")).unwrap();
    gzip(&dir.path().join("app.log.1"));
    append(&log, &["g5"]);
    h.poll_commit();
    assert_eq!(h.texts(), ["g1", "g2", "g3", "g4", "g5"]);
    assert_eq!(h.count(|m| &m.gzip_reads), 1);
    // The gzip file is not read again, nor after another restart.
    h.crash();
    h.poll_commit();
    assert_eq!(h.texts().len(), 5);
}

#[test]
fn file_gzipped_while_down_is_finished_before_a_newer_followed_file() {
    let (dir, log, mut h) = setup(|_| {});
    let old = dir.path().join("app.log.1");
    append(&log, &["o1"]);
    h.poll_commit();
    fs::rename(&log, &old).unwrap();
    append(&log, &["n1"]);
    // Both files followed, both positions committed.
    h.poll_commit();
    // The rotated file's writer had not reopened yet: its last line, then the new file's.
    append(&old, &["o2 (only in the gzip file)"]);
    append(&log, &["n2"]);
    h.crash();
    gzip(&old); // while the agent is down: the plain file is gone at the restart
    h.poll_commit();
    assert_eq!(h.texts(), ["o1", "n1", "o2 (only in the gzip file)", "n2"]);
    assert_eq!(h.count(|m| &m.gzip_reads), 1);
}

#[test]
fn gzip_while_running_needs_no_decompression() {
    let (dir, log, mut h) = setup(|_| {});
    append(&log, &["r1"]);
    h.poll_commit();
    append(&log, &["r2"]);
    fs::rename(&log, dir.path().join("app.log.1")).unwrap();
    gzip(&dir.path().join("app.log.1"));
    h.poll_commit(); // the descriptor kept open still reads the deleted file
    assert_eq!(h.texts(), ["r1", "r2"]);
    assert_eq!(h.count(|m| &m.gzip_reads), 0);
}

#[test]
fn inode_holding_another_file_after_a_restart_is_read_from_its_start() {
    let (_dir, log, mut h) = setup(|_| {});
    append(&log, &["old file, first line", "old 2"]);
    h.poll_commit();
    h.crash();
    // Same inode, other content, longer than the committed offset.
    fs::write(&log, "new file, first line\nnew 2\nnew 3\n").unwrap();
    h.poll_commit();
    assert_eq!(
        h.texts(),
        [
            "old file, first line",
            "old 2",
            "new file, first line",
            "new 2",
            "new 3"
        ]
    );
    assert_eq!(h.count(|m| &m.identity_changes), 1);
}

#[test]
fn deleted_while_read_is_read_to_its_end() {
    let (_dir, log, mut h) = setup(|_| {});
    append(&log, &["d1"]);
    h.poll_commit();
    append(&log, &["d2", "partial"]);
    let mut f = OpenOptions::new().append(true).open(&log).unwrap();
    f.write_all(b"no newline").unwrap();
    fs::remove_file(&log).unwrap();
    h.poll_commit();
    assert_eq!(h.texts(), ["d1", "d2", "partial", "no newline"]);
    let last = h.delivered.last().unwrap();
    assert_eq!(last.headers["split.index"], "0");
    h.crash();
    h.poll_commit();
    assert_eq!(h.texts().len(), 4);
}

#[test]
fn framing_long_lines_multiline_partial_and_keys() {
    let (_dir, log, mut h) = setup(|c| {
        c.max_line_bytes = 8;
        c.key = KeyMode::Regex;
        c.key_regex = Some(r"^(\w+):".into());
    });
    append(&log, &["user1:hello", "x"]);
    h.poll_commit();
    assert_eq!(h.texts(), ["user1:he", "llo", "x"]);
    assert_eq!(h.delivered[0].key.as_deref(), Some(&b"user1"[..]));
    assert_eq!(h.delivered[1].headers["split.last"], "true");
    assert_eq!(h.delivered[2].key, None);
    assert_eq!(h.count(|m| &m.lines_split), 1);

    // Multi-line events, and a partial last line flushed after the idle timeout.
    let (_dir, log, mut h) = setup(|c| {
        c.multiline_start = Some(r"^\d{4}-".into());
        c.key = KeyMode::Path;
        c.idle_timeout_ms = 0;
    });
    fs::write(
        &log,
        "2024-01-01 boom\n  at a\n  at b\n2024-01-01 ok\n2024-01-02 tail",
    )
    .unwrap();
    h.poll_commit();
    assert_eq!(
        h.texts(),
        [
            "2024-01-01 boom\n  at a\n  at b",
            "2024-01-01 ok",
            "2024-01-02 tail"
        ]
    );
    assert_eq!(
        h.delivered[0].key.as_deref(),
        Some(log.to_string_lossy().as_bytes())
    );
    assert!(h.delivered.iter().all(|s| s.headers.contains_key("host")));
    // The rest of the flushed line is its next piece.
    append(&log, &[" end"]);
    h.crash();
    h.poll_commit();
    assert_eq!(h.texts().last().unwrap(), " end");
    assert_eq!(h.delivered.last().unwrap().headers["split.index"], "1");
}

#[test]
fn binary_garbage_and_a_huge_line_are_records_not_errors() {
    let (_dir, log, mut h) = setup(|c| {
        c.max_line_bytes = 1024 * 1024;
    });
    let mut garbage: Vec<u8> = (0..=255u8).filter(|b| *b != b'\n').collect();
    garbage.push(b'\n');
    fs::write(&log, &garbage).unwrap();
    // A 100 MB line: 100 records of 1 MiB (the last shorter), nothing held beyond 1 MiB.
    let mut f = OpenOptions::new().append(true).open(&log).unwrap();
    let chunk = vec![b'z'; 1024 * 1024];
    for _ in 0..100 {
        f.write_all(&chunk).unwrap();
    }
    f.write_all(b"\nafter\n").unwrap();
    h.poll_commit();
    assert_eq!(h.delivered[0].value, garbage[..255]);
    let pieces = &h.delivered[1..h.delivered.len() - 1];
    assert_eq!(pieces.len(), 100);
    assert!(pieces.iter().all(|p| p.value.len() == 1024 * 1024));
    assert_eq!(pieces[99].headers["split.last"], "true");
    assert_eq!(h.texts().last().unwrap(), "after");
    assert_eq!(h.count(|m| &m.lines_split), 1);
}
