//! `.txnindex` and `.snapshot` files are derived data: damaged, truncated or missing, they
//! cost a longer replay at open, never a wrong answer. The producer state, the aborted
//! transactions and what read_committed readers see come out as before the damage.

use crate::common::producers;

use std::path::{Path, PathBuf};

use producers::batch;
use streamlog::{AbortedTxn, Log, LogConfig, ProducerStateEntry, TxnResult};

fn config() -> LogConfig {
    LogConfig::builder()
        .segment_bytes(500)
        .segment_index_bytes(4096)
        .segment_ms(None)
        .build()
        .unwrap()
}

/// Three producers, transactions committed and aborted across several segments.
fn build(dir: &Path) {
    let log = Log::open(dir, config()).unwrap();
    let mut seq = [0i32; 3];
    for round in 0..12i32 {
        for pid in 0..3i64 {
            let s = &mut seq[pid as usize];
            log.append(&batch(pid, 0, *s, 2, true)).unwrap();
            *s += 2;
        }
        for pid in 0..3i64 {
            let result = if (i64::from(round) + pid) % 3 == 0 {
                TxnResult::Abort
            } else {
                TxnResult::Commit
            };
            log.write_txn_marker(pid, 0, result, 1).unwrap();
        }
        log.append(&batch(7, 0, round * 3, 3, false)).unwrap();
    }
    // One transaction left open: the last stable offset waits on it.
    log.append(&batch(1, 0, seq[1], 1, true)).unwrap();
    log.close().unwrap();
}

#[derive(Debug, PartialEq)]
struct Observed {
    states: Vec<ProducerStateEntry>,
    aborted: Vec<AbortedTxn>,
    lso: i64,
    committed: Vec<Vec<u8>>,
}

fn observe(dir: &Path) -> Observed {
    observe_with(dir).0
}

/// What the log shows, where its producer-state replay began, and its log end offset.
fn observe_with(dir: &Path) -> (Observed, i64, i64) {
    let fs = streamlog::io::RealFs::shared();
    let (log, info) = Log::open_with(fs, dir, config(), &mut |_| Ok(())).unwrap();
    let hw = log.log_end_offset();
    let observed = Observed {
        states: log.producer_states(),
        aborted: log.aborted_transactions(0, hw),
        lso: log.last_stable_offset(),
        committed: log
            .records_committed(0)
            .map(|r| r.unwrap().value().unwrap().to_vec())
            .collect(),
    };
    log.close().unwrap();
    (observed, info.producer_state_replayed_from, hw)
}

fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    v
}

/// Damages the files, reopens, and checks everything reads as before; returns where the
/// replay began and the log end offset.
fn check_after(damage: impl FnOnce(&Path)) -> (i64, i64) {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    let before = observe(dir.path());
    assert_eq!(before.aborted.len(), 12);
    assert!(before.lso < Log::open(dir.path(), config()).unwrap().log_end_offset());
    let indexes: Vec<(PathBuf, Vec<u8>)> = files(dir.path(), "txnindex")
        .into_iter()
        .map(|f| (f.clone(), std::fs::read(f).unwrap()))
        .collect();
    assert!(indexes.len() > 1);
    damage(dir.path());
    let (after, replayed_from, end) = observe_with(dir.path());
    assert_eq!(after, before);
    let rebuilt: Vec<(PathBuf, Vec<u8>)> = files(dir.path(), "txnindex")
        .into_iter()
        .map(|f| (f.clone(), std::fs::read(f).unwrap()))
        .collect();
    assert_eq!(
        rebuilt, indexes,
        "the .txnindex files were not rebuilt as they were"
    );
    (replayed_from, end)
}

#[test]
fn txnindex_with_a_torn_entry_is_rebuilt() {
    let (from, _) = check_after(|dir| {
        let f = files(dir, "txnindex")[0].clone();
        let mut bytes = std::fs::read(&f).unwrap();
        bytes.truncate(bytes.len() - 5);
        std::fs::write(&f, bytes).unwrap();
    });
    assert_eq!(
        from, 0,
        "a damaged .txnindex makes the replay start at the log start"
    );
}

#[test]
fn txnindex_with_garbage_is_rebuilt() {
    check_after(|dir| {
        let f = files(dir, "txnindex")[1].clone();
        let len = std::fs::metadata(&f).unwrap().len() as usize;
        std::fs::write(&f, vec![0x5a; len]).unwrap();
    });
}

#[test]
fn missing_txnindex_is_rebuilt() {
    let (from, _) = check_after(|dir| {
        let before = files(dir, "txnindex");
        std::fs::remove_file(&before[0]).unwrap();
    });
    assert_eq!(
        from, 0,
        "the snapshot's count of aborted transactions catches the loss"
    );
}

#[test]
fn corrupt_snapshot_is_ignored() {
    let (from, end) = check_after(|dir| {
        let newest = files(dir, "snapshot").pop().unwrap();
        let mut bytes = std::fs::read(&newest).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x40;
        std::fs::write(&newest, bytes).unwrap();
    });
    // The next newest snapshot (the last roll's) is used instead.
    assert!(from > 0 && from < end, "replay from {from}, log end {end}");
}

#[test]
fn truncated_snapshots_are_ignored() {
    check_after(|dir| {
        for f in files(dir, "snapshot") {
            let bytes = std::fs::read(&f).unwrap();
            std::fs::write(&f, &bytes[..3]).unwrap();
        }
    });
}

#[test]
fn no_snapshots_and_a_damaged_txnindex() {
    check_after(|dir| {
        for f in files(dir, "snapshot") {
            std::fs::remove_file(f).unwrap();
        }
        let f = files(dir, "txnindex").pop().unwrap();
        std::fs::write(&f, b"not an index").unwrap();
    });
}
