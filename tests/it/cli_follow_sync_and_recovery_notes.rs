//! The CLI as a new user meets it: `consume --follow` tails a live `produce`, `produce
//! --sync` makes what standard input already holds durable with one flush, `produce`
//! checkpoints its recovery point while it runs, takes the log settings, and both commands
//! say when recovery cut (or left out) part of a damaged log; `consume` refuses what is not a
//! partition and `verify` of a directory without segments is not OK.
#![cfg(feature = "cli")]

use std::path::Path;
use std::process::Output;

use crate::common::child::CliChild;
use streamlog::{Log, LogConfig};

const EXE: &str = env!("CARGO_BIN_EXE_streamlog");

fn run(args: &[&str], stdin: &[u8]) -> Output {
    crate::common::child::run(EXE, args, stdin)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn lines(n: usize) -> String {
    (0..n).map(|i| format!("line-{i}\n")).collect()
}

#[test]
fn consume_follow_prints_what_a_live_producer_appends() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    let mut producer = CliChild::spawn(EXE, &["produce", s(&dir), "--segment-bytes", "4096"]);
    producer.write("first\n");
    assert_eq!(producer.line(), "0");
    let follower = CliChild::spawn(EXE, &["consume", s(&dir), "--follow", "--max", "301"]);
    assert!(follower.line().starts_with("0\t"));
    // Appended after the follower opened (and across rolls): it must see them all.
    let mut expected = 1;
    for round in 0..3 {
        producer.write(
            &(0..100)
                .map(|i| format!("r{round}-{i}\n"))
                .collect::<String>(),
        );
        for i in 0..100 {
            let line = follower.line();
            let fields: Vec<&str> = line.split('\t').collect();
            assert_eq!(fields[0], expected.to_string(), "{line}");
            assert_eq!(fields[3], format!("r{round}-{i}"));
            expected += 1;
        }
    }
    // Three hundred and one printed in all (with the first): `--max` ends the follower.
    let (ok, rest) = follower.finish();
    assert!(ok && rest.is_empty(), "{rest:?}");
    let (ok, _) = producer.finish();
    assert!(ok);
}

#[test]
fn produce_sync_flushes_once_for_what_stdin_already_holds() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    let out = run(
        &["produce", s(&dir), "--sync", "--summary"],
        lines(1000).as_bytes(),
    );
    assert!(out.status.success());
    let printed: Vec<i64> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(printed, (0..1000).collect::<Vec<_>>());
    let stderr = String::from_utf8(out.stderr).unwrap();
    let flushes: u64 = stderr
        .split("batches with ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .unwrap_or_else(|| panic!("no summary: {stderr}"))
        .parse()
        .unwrap();
    // One batch a line, but the input arrives in a few reads: a few flushes, not 1000.
    assert!(flushes <= 20, "{flushes} flushes for 1000 lines: {stderr}");
    assert!(
        stderr.contains("produced 1000 records in 1000 batches"),
        "{stderr}"
    );
}

#[test]
fn produce_checkpoints_its_recovery_point_while_running() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    let mut producer = CliChild::spawn(
        EXE,
        &[
            "produce",
            s(&dir),
            "--sync",
            "--flush-offset-checkpoint-interval-ms",
            "0",
        ],
    );
    producer.write(&lines(50));
    let mut last = String::new();
    while last != "49" {
        last = producer.line();
    }
    // Killed, not closed: only what it checkpointed while running tells the next open.
    drop(producer);
    let log = Log::open(&dir, LogConfig::default()).unwrap();
    let info = log.recovery_info();
    assert!(!info.clean_shutdown);
    assert_eq!(info.recovery_point, 50);
    assert_eq!(log.log_end_offset(), 50);
    log.close().unwrap();
}

#[test]
fn produce_takes_log_settings() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    let out = run(
        &[
            "produce",
            s(&dir),
            "--segment-bytes",
            "1024",
            "--batch",
            "5",
        ],
        lines(500).as_bytes(),
    );
    assert!(out.status.success());
    let log = Log::open_read_only(&dir, LogConfig::default()).unwrap();
    assert!(log.segment_count() > 5, "{} segments", log.segment_count());
    assert_eq!(log.log_end_offset(), 500);
}

#[test]
fn recovery_that_cuts_a_damaged_tail_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    assert!(run(&["produce", s(&dir)], lines(20).as_bytes())
        .status
        .success());
    let segment = dir.join(format!("{:020}.log", 0));
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes.extend_from_slice(&[7u8; 50]);
    std::fs::write(&segment, bytes).unwrap();
    std::fs::remove_file(dir.join(streamlog::log::CLEAN_SHUTDOWN_FILE)).unwrap();

    let consumed = run(&["consume", s(&dir)], b"");
    assert!(consumed.status.success());
    assert_eq!(
        String::from_utf8(consumed.stdout).unwrap().lines().count(),
        20
    );
    let note = String::from_utf8(consumed.stderr).unwrap();
    assert!(
        note.contains("left out") && note.contains("50 bytes"),
        "{note}"
    );
    // consume changed nothing: the junk is still there for the writer's own recovery.
    let produced = run(&["produce", s(&dir)], b"more\n");
    assert!(produced.status.success());
    assert_eq!(String::from_utf8(produced.stdout).unwrap(), "20\n");
    let note = String::from_utf8(produced.stderr).unwrap();
    assert!(
        note.contains(" cut ") && note.contains("50 bytes"),
        "{note}"
    );
}

#[test]
fn consume_and_verify_refuse_what_is_not_a_partition() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let consumed = run(&["consume", s(&empty)], b"");
    assert_eq!(consumed.status.code(), Some(2));
    assert!(String::from_utf8(consumed.stderr)
        .unwrap()
        .contains("not a partition"));
    // Nothing was created in it.
    assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0);
    let verified = run(&["verify", s(&empty)], b"");
    assert_eq!(verified.status.code(), Some(1));
    let report = String::from_utf8(verified.stdout).unwrap();
    assert!(
        report.contains("DAMAGED") && report.contains("no segment"),
        "{report}"
    );
}
