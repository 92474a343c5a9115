//! `verify_partition` and the CLI's `verify` parse `.txnindex` and `.snapshot` files too: a
//! damaged one is a finding naming the file and the byte where the damage shows, classed as
//! a note (the next open rebuilds both from the log), and the rest of the directory is still
//! verified.

use crate::common::producers;

use std::path::{Path, PathBuf};

use streamlog::log::{verify_partition, FindingKind};
use streamlog::{Log, LogConfig, TxnResult};

fn only(dir: &Path, ext: &str) -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    found.sort();
    found.remove(0)
}

/// A closed log with two aborted transactions in its first segment and a snapshot.
fn log_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    log.append(&producers::batch(1, 0, 0, 2, true)).unwrap();
    log.write_txn_marker(1, 0, TxnResult::Abort, 0).unwrap();
    log.append(&producers::batch(1, 0, 2, 1, true)).unwrap();
    log.write_txn_marker(1, 0, TxnResult::Abort, 0).unwrap();
    log.roll().unwrap();
    log.append(&producers::batch(2, 0, 0, 1, false)).unwrap();
    log.close().unwrap();
    dir
}

#[test]
fn healthy_producer_files_verify_clean() {
    let dir = log_dir();
    let report = verify_partition(dir.path()).unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    assert!(
        report.notes.iter().all(|n| !matches!(
            n.kind,
            FindingKind::TxnIndexRebuiltOnOpen | FindingKind::SnapshotRebuiltOnOpen
        )),
        "{:?}",
        report.notes
    );
}

#[test]
fn damaged_producer_files_are_rebuildable_findings() {
    let dir = log_dir();
    let healthy = verify_partition(dir.path()).unwrap();
    // The second entry of the .txnindex gets an unknown version.
    let txnindex = only(dir.path(), "txnindex");
    let mut txn_bytes = std::fs::read(&txnindex).unwrap();
    assert_eq!(txn_bytes.len(), 68);
    txn_bytes[34] = 0x7f;
    std::fs::write(&txnindex, &txn_bytes).unwrap();
    // A snapshot's body byte flips: its checksum (bytes 2..6) no longer matches.
    let snapshot = only(dir.path(), "snapshot");
    let mut bytes = std::fs::read(&snapshot).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&snapshot, &bytes).unwrap();

    let report = verify_partition(dir.path()).unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    assert_eq!(
        (report.segments, report.records),
        (healthy.segments, healthy.records),
        "the .log files were still verified"
    );
    let find = |kind| {
        report
            .notes
            .iter()
            .find(|n| n.kind == kind)
            .unwrap_or_else(|| panic!("no {kind} in {:?}", report.notes))
    };
    let t = find(FindingKind::TxnIndexRebuiltOnOpen);
    assert_eq!((t.path.as_path(), t.position), (txnindex.as_path(), 34));
    let s = find(FindingKind::SnapshotRebuiltOnOpen);
    assert_eq!((s.path.as_path(), s.position), (snapshot.as_path(), 2));
    assert!(s.detail.contains("CRC"), "{}", s.detail);

    // The CLI says the same, and does not fail.
    let out = crate::common::child::run(
        env!("CARGO_BIN_EXE_streamlog"),
        &["verify", dir.path().to_str().unwrap()],
        b"",
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let txn_line = format!(
        "{} at byte 34: txn-index-rebuilt-on-open",
        txnindex.display()
    );
    assert!(text.contains(&txn_line), "{text}");
    assert!(text.contains("snapshot-rebuilt-on-open"), "{text}");

    // A truncated .txnindex is found at its last whole entry's end.
    std::fs::write(&txnindex, &txn_bytes[..40]).unwrap();
    let report = verify_partition(dir.path()).unwrap();
    let t = report
        .notes
        .iter()
        .find(|n| n.kind == FindingKind::TxnIndexRebuiltOnOpen)
        .unwrap();
    assert_eq!(t.position, 34, "{t}");
    // And opening the log rewrites the .txnindex from the log.
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(log.aborted_transactions(0, log.log_end_offset()).len(), 2);
    log.close().unwrap();
    let report = verify_partition(dir.path()).unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    assert!(
        report
            .notes
            .iter()
            .all(|n| n.kind != FindingKind::TxnIndexRebuiltOnOpen),
        "{:?}",
        report.notes
    );
}
