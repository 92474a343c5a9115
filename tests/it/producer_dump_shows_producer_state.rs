//! `streamlog dump` shows producer ids, sequences, transactional and control batches, and
//! reads producer `.snapshot` and `.txnindex` files.
#![cfg(feature = "cli")]

use crate::common::producers;

use std::path::{Path, PathBuf};
use std::process::Output;

use producers::batch;
use serde_json::Value;
use streamlog::{Log, LogConfig, TxnResult};

fn run(args: &[&str]) -> Output {
    crate::common::child::run(env!("CARGO_BIN_EXE_streamlog"), args, b"")
}

/// The newest file with extension `ext`.
fn file_with(dir: &Path, ext: &str) -> PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .max()
        .unwrap()
}

#[test]
fn dump_shows_producers_transactions_and_their_files() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    log.append(&batch(42, 3, 10, 2, true)).unwrap();
    log.write_txn_marker(42, 3, TxnResult::Abort, 9).unwrap();
    log.append(&batch(43, 0, 0, 1, false)).unwrap();
    log.close().unwrap();
    let d = dir.path().to_str().unwrap();

    let text = String::from_utf8(run(&["dump", d]).stdout).unwrap();
    assert!(text.contains("producerId: 42 producerEpoch: 3 baseSequence: 10 lastSequence: 11 isTransactional: true isControl: false"), "{text}");
    assert!(
        text.contains("controlMarker: ABORT coordinatorEpoch: 9"),
        "{text}"
    );

    let snapshot = file_with(dir.path(), "snapshot");
    let out = run(&["dump", snapshot.to_str().unwrap(), "--json"]);
    assert!(out.status.success());
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let p42 = lines.iter().find(|l| l["producer_id"] == 42).unwrap();
    assert_eq!(p42["producer_epoch"], 3);
    assert_eq!(p42["coordinator_epoch"], 9);
    assert_eq!(p42["batches"][0]["last_sequence"], 11);
    assert_eq!(p42["current_txn_first_offset"], Value::Null);
    let text = String::from_utf8(run(&["dump", snapshot.to_str().unwrap()]).stdout).unwrap();
    assert!(text.contains("producerId: 43 producerEpoch: 0"), "{text}");

    let index = file_with(dir.path(), "txnindex");
    let text = String::from_utf8(run(&["dump", index.to_str().unwrap()]).stdout).unwrap();
    assert!(
        text.contains("producerId: 42 firstOffset: 0 lastOffset: 2 lastStableOffset: 3"),
        "{text}"
    );
    // A damaged index is reported, with exit status 1.
    std::fs::write(&index, b"junk").unwrap();
    let out = run(&["dump", index.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8(out.stdout).unwrap().contains("DAMAGED"));
}
