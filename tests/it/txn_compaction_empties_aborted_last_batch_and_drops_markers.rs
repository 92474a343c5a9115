//! Compaction and transaction state, as Kafka's cleaner handles it: an aborted batch that is
//! its producer's last stays in the log empty (its epoch and sequence survive a replay), and
//! a COMMIT/ABORT marker goes once no batch of its transaction is left, after
//! `delete.retention.ms` (a delete horizon stamped on the marker's first cleaning).

use crate::common::producers;

use producers::{keyed_batch, T0};
use streamlog::{Batches, Log, LogConfig, TxnResult};

const DELETE_RETENTION_MS: i64 = 1_000;

fn config() -> LogConfig {
    LogConfig::builder()
        .segment_bytes(1 << 20)
        .segment_ms(None)
        .delete_retention_ms(DELETE_RETENTION_MS)
        .build()
        .unwrap()
}

fn keyed(pid: i64, seq: i32, txn: bool, keys: &[&str]) -> Vec<u8> {
    let records: Vec<(&str, &str)> = keys.iter().map(|k| (*k, "v")).collect();
    keyed_batch(pid, seq, txn, &records)
}

/// (base offset, producer id, control, record count) of every batch in the log.
fn batches(log: &Log) -> Vec<(i64, i64, bool, i32)> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let f = log.read(offset, 1 << 20, None).unwrap();
        let Some(slice) = f.slice else { break };
        let bytes = slice.to_vec().unwrap();
        for b in Batches::new(&bytes) {
            let b = b.unwrap();
            if b.last_offset() >= offset {
                out.push((
                    b.base_offset(),
                    b.producer_id(),
                    b.is_control(),
                    b.record_count(),
                ));
            }
        }
        offset = f.next_offset;
    }
    out
}

fn reopen_without_snapshots(log: Log, dir: &std::path::Path) -> Log {
    log.close().unwrap();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "snapshot") {
            std::fs::remove_file(p).unwrap();
        }
    }
    Log::open(dir, config()).unwrap()
}

#[test]
fn aborted_last_batch_of_a_producer_stays_empty() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), config()).unwrap();
    // Producer 2's only batch belongs to a transaction it aborts.
    log.append(&keyed(2, 0, true, &["a", "b", "c"])).unwrap();
    log.write_txn_marker(2, 0, TxnResult::Abort, 0).unwrap();
    log.append(&keyed(-1, 0, false, &["x"])).unwrap();
    log.roll().unwrap();
    log.append(&keyed(-1, 0, false, &["y"])).unwrap();
    let end = log.log_end_offset();
    log.compact(end, T0).unwrap();
    let b = batches(&log);
    assert_eq!(b.first(), Some(&(0, 2, false, 0)), "{b:?}");
    // Rebuilt from the log alone, the producer still has its last sequence: the retry of
    // the aborted batch is a duplicate, a gap is out of order.
    let log = reopen_without_snapshots(log, dir.path());
    let state = log.producer_state(2).unwrap();
    assert_eq!(state.last_seq(), 2);
    assert!(
        log.append(&keyed(2, 0, true, &["a", "b", "c"]))
            .unwrap()
            .duplicate
    );
    assert!(log.append(&keyed(2, 7, false, &["a"])).is_err());
    assert!(log
        .records_committed(0)
        .all(|r| r.unwrap().key() != Some(b"a")));
}

#[test]
fn markers_go_after_the_horizon_once_their_transaction_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), config()).unwrap();
    // Producer 1 aborts a transaction, then writes an idempotent batch (its last).
    log.append(&keyed(1, 0, true, &["a"])).unwrap(); // 0
    log.write_txn_marker(1, 0, TxnResult::Abort, 0).unwrap(); // 1
    log.append(&keyed(1, 1, false, &["b"])).unwrap(); // 2
                                                      // Producer 3 commits "c", superseded later; producer 4 commits "d", never superseded.
    log.append(&keyed(3, 0, true, &["c"])).unwrap(); // 3
    log.write_txn_marker(3, 0, TxnResult::Commit, 0).unwrap(); // 4
    log.append(&keyed(4, 0, true, &["d"])).unwrap(); // 5
    log.write_txn_marker(4, 0, TxnResult::Commit, 0).unwrap(); // 6
    log.append(&keyed(-1, 0, false, &["c"])).unwrap(); // 7
    log.append(&keyed(3, 1, false, &["e"])).unwrap(); // 8: producer 3's last batch
                                                      // Each pass needs new dirty data to run: a record superseding "z", in a sealed segment.
    let pass = |log: &Log, now: i64| {
        log.append(&keyed(-1, 0, false, &["z"])).unwrap();
        log.roll().unwrap();
        log.compact(log.log_end_offset(), now).unwrap();
    };
    let markers = |log: &Log| -> Vec<i64> {
        batches(log)
            .into_iter()
            .filter(|b| b.2)
            .map(|b| b.0)
            .collect()
    };

    // Pass 1 removes the aborted data and producer 3's superseded "c"; the markers saw
    // their data in this pass, so they all stay.
    pass(&log, T0);
    assert_eq!(markers(&log), [1, 4, 6]);
    // Pass 2: markers 1 and 4 have no data left: they get a horizon, and stay until it.
    pass(&log, T0 + 10);
    assert_eq!(markers(&log), [1, 4, 6]);
    pass(&log, T0 + 10 + DELETE_RETENTION_MS - 1);
    assert_eq!(markers(&log), [1, 4, 6]);
    // Past the horizon they go; producer 4's commit keeps its data "d", so it stays.
    pass(&log, T0 + 10 + DELETE_RETENTION_MS);
    assert_eq!(markers(&log), [6]);
    let end = log.log_end_offset();
    // With its marker, the aborted transaction left the `.txnindex`: a consumer does not
    // take producer 1's later batches for part of it.
    assert!(log.aborted_transactions(0, end).is_empty());

    let committed = |log: &Log| -> Vec<(i64, Vec<u8>)> {
        log.records_committed(0)
            .map(|r| r.unwrap())
            .map(|r| (r.offset(), r.key().unwrap().to_vec()))
            .filter(|r| r.1 != b"z")
            .collect()
    };
    let before = committed(&log);
    assert_eq!(before.iter().map(|r| r.0).collect::<Vec<_>>(), [2, 5, 7, 8]);
    assert_eq!(log.last_stable_offset(), end);
    // A replay of the compacted log rebuilds the same state: nothing open, nothing aborted
    // shown.
    let log = reopen_without_snapshots(log, dir.path());
    assert_eq!(log.last_stable_offset(), end);
    assert_eq!(committed(&log), before);
    assert_eq!(log.producer_state(1).unwrap().last_seq(), 1);
}
