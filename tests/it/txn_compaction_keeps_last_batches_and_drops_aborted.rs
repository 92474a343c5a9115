//! Compaction follows the producer state, as Kafka's log cleaner does: an aborted
//! transaction's records go, each producer's last batch stays (emptied when all its
//! records are superseded) so a retry is still recognised after a replay of the log, and
//! nothing of an undecided transaction is cleaned.

use crate::common::producers;

use producers::{keyed_batch, T0};
use streamlog::{Log, LogConfig, TxnResult};

fn config() -> LogConfig {
    LogConfig::builder()
        .segment_bytes(1 << 20)
        .segment_ms(None)
        .build()
        .unwrap()
}

/// A batch from producer `pid` (or -1) with one record per key, values naming `tag`.
fn keyed(pid: i64, seq: i32, txn: bool, keys: &[&str], tag: &str) -> Vec<u8> {
    let records: Vec<(&str, String)> = keys.iter().map(|k| (*k, format!("{tag}:{k}"))).collect();
    keyed_batch(pid, seq, txn, &records)
}

fn values(log: &Log) -> Vec<String> {
    log.records_from(0)
        .map(|r| r.unwrap())
        .filter(|r| r.key().is_some_and(|k| k.len() == 1))
        .map(|r| String::from_utf8(r.value().unwrap().to_vec()).unwrap())
        .collect()
}

#[test]
fn aborted_records_go_and_last_batches_stay() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), config()).unwrap();
    // Producer 1: an idempotent batch whose keys are all superseded later.
    log.append(&keyed(1, 0, false, &["a", "b"], "p1")).unwrap();
    // Producer 2: a transaction that aborts, with a key nobody else writes.
    log.append(&keyed(2, 0, true, &["c", "z"], "aborted"))
        .unwrap();
    log.write_txn_marker(2, 0, TxnResult::Abort, 0).unwrap();
    // Producer 3: a committed transaction.
    log.append(&keyed(3, 0, true, &["d"], "committed")).unwrap();
    log.write_txn_marker(3, 0, TxnResult::Commit, 0).unwrap();
    // Plain batches superseding producer 1's keys.
    log.append(&keyed(-1, 0, false, &["a", "b"], "plain"))
        .unwrap();
    // Producer 4: a transaction still open: nothing from it on may be cleaned.
    log.append(&keyed(4, 0, true, &["a"], "open")).unwrap();
    log.roll().unwrap();
    log.append(&keyed(-1, 0, false, &["e"], "tail")).unwrap();
    let end = log.log_end_offset();

    let stats = log.compact(end, T0 + 1_000).unwrap();
    assert!(stats.end_offset <= log.last_stable_offset(), "{stats:?}");
    assert_eq!(
        values(&log),
        ["committed:d", "plain:a", "plain:b", "open:a", "tail:e"]
    );
    // Producer 1's batch stays, empty, where it was: its retry is still a duplicate even
    // after the state is rebuilt from the log alone.
    log.close().unwrap();
    for e in std::fs::read_dir(dir.path()).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "snapshot") {
            std::fs::remove_file(p).unwrap();
        }
    }
    let log = Log::open(dir.path(), config()).unwrap();
    let retry = log.append(&keyed(1, 0, false, &["a", "b"], "p1")).unwrap();
    assert!(retry.duplicate);
    assert_eq!((retry.first_offset, retry.last_offset), (0, 1));
    assert_eq!(
        log.producer_state(4).unwrap().current_txn_first_offset,
        Some(9)
    );
}

#[test]
fn merged_segments_keep_their_aborted_transactions_indexed() {
    let dir = tempfile::tempdir().unwrap();
    let small = config().to_builder().segment_bytes(400).build().unwrap();
    let log = Log::open(dir.path(), small).unwrap();
    let mut seq = [0i32; 3];
    for round in 0..8 {
        let pid = round % 3;
        let s = &mut seq[pid as usize];
        log.append(&keyed(pid, *s, true, &["k", "x"], &format!("r{round}")))
            .unwrap();
        *s += 2;
        let result = if round % 2 == 0 {
            TxnResult::Abort
        } else {
            TxnResult::Commit
        };
        log.write_txn_marker(pid, 0, result, 0).unwrap();
    }
    log.append(&keyed(-1, 0, false, &["t"], "tail")).unwrap();
    // Reopened with large segments, the cleaner merges the small ones.
    log.close().unwrap();
    let log = Log::open(dir.path(), config()).unwrap();
    let end = log.log_end_offset();
    let segments_before = log.segment_count();
    let committed_before: Vec<i64> = log
        .records_committed(0)
        .map(|r| r.unwrap().offset())
        .collect();
    log.compact(end, T0 + 1_000).unwrap();
    assert!(
        log.segment_count() < segments_before,
        "no segments were merged"
    );
    let aborted = log.aborted_transactions(0, end);
    assert_eq!(aborted.len(), 4);
    // Committed records survive compaction only as the latest per key.
    let committed_after: Vec<i64> = log
        .records_committed(0)
        .map(|r| r.unwrap().offset())
        .collect();
    assert!(committed_after.iter().all(|o| committed_before.contains(o)));
    log.close().unwrap();
    let fs = streamlog::io::RealFs::shared();
    let (log, info) = Log::open_with(fs, dir.path(), config(), &mut |_| Ok(())).unwrap();
    assert_eq!(
        info.producer_state_replayed_from,
        log.log_end_offset(),
        "the rewritten .txnindex files were trusted"
    );
    assert_eq!(log.aborted_transactions(0, end), aborted);
}
