//! The last stable offset is a pure query of the log's own high watermark: a transaction
//! whose commit marker is written but not yet below the high watermark (not replicated) stays
//! unstable for read_committed readers, whatever else runs meanwhile. Before the high
//! watermark was the log's, `Storage` maintenance asked for the last stable offset at the log
//! end offset, which forgot such a transaction as a side effect, so readers saw it before
//! its marker was replicated.

use crate::common::producers::batch;
use streamlog::storage::{StorageConfig, TopicConfig};
use streamlog::{
    BatchBuilder, BatchOptions, HighWatermarkPolicy, IsolationLevel, LogConfig, Storage, TxnResult,
};

/// `n` keyed records from producer `pid` (a compacted topic refuses keyless ones).
fn keyed(pid: i64, seq: i32, n: usize, transactional: bool) -> Vec<u8> {
    let mut b = BatchBuilder::new(BatchOptions {
        producer_id: pid,
        producer_epoch: 0,
        base_sequence: seq,
        transactional,
        ..BatchOptions::default()
    });
    for i in 0..n {
        let key = format!("k{pid}-{i}");
        b.append(0, Some(key.as_bytes()), Some(b"v"), &[]).unwrap();
    }
    b.build().unwrap()
}

#[test]
fn maintenance_does_not_expose_an_unreplicated_commit() {
    let tmp = tempfile::tempdir().unwrap();
    let log_config = LogConfig::builder()
        .high_watermark_policy(HighWatermarkPolicy::Replicated)
        .build()
        .unwrap();
    let config = StorageConfig::builder().log(log_config).build().unwrap();
    let storage = Storage::open(tmp.path(), config.clone()).unwrap();
    // Compacted: maintenance looks for the last stable offset to bound the cleaning.
    let mut topic = TopicConfig::new();
    topic.set("cleanup.policy", "compact").unwrap();
    storage.create_topic("t", 1, topic).unwrap();
    let log = storage.partition("t", 0).unwrap();
    log.append(&keyed(1, 0, 2, false)).unwrap(); // offsets 0, 1
    log.append(&keyed(7, 0, 3, true)).unwrap(); // offsets 2..=4
    log.write_txn_marker(7, 0, TxnResult::Commit, 0).unwrap(); // offset 5
    assert_eq!(log.log_end_offset(), 6);
    // Replicated up to inside the transaction: the marker is not.
    log.maybe_advance_high_watermark(4).unwrap();
    assert_eq!(log.last_stable_offset(), 2);

    storage.maintain(0).unwrap();
    assert_eq!(log.last_stable_offset(), 2);
    let f = log
        .fetch(0, 1 << 20, IsolationLevel::ReadCommitted)
        .unwrap();
    assert_eq!((f.next_offset, f.last_stable_offset), (2, Some(2)));
    assert_eq!(log.records_committed(0).count(), 2);

    // Once the marker is replicated, the transaction is visible.
    log.maybe_advance_high_watermark(6).unwrap();
    assert_eq!(log.last_stable_offset(), 6);
    assert_eq!(log.records_committed(0).count(), 5);
}

#[test]
fn storage_keeps_high_watermarks_in_its_data_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let log_config = LogConfig::builder()
        .high_watermark_policy(HighWatermarkPolicy::Replicated)
        .build()
        .unwrap();
    let config = StorageConfig::builder().log(log_config).build().unwrap();
    let storage = Storage::open(tmp.path(), config.clone()).unwrap();
    storage.create_topic("a", 2, TopicConfig::new()).unwrap();
    for p in 0..2 {
        let log = storage.partition("a", p).unwrap();
        log.append(&batch(1, 0, 0, 4, false)).unwrap();
        log.maybe_advance_high_watermark(i64::from(p) + 1).unwrap();
    }
    storage.checkpoint_high_watermarks().unwrap();
    let path = tmp
        .path()
        .join(streamlog::log::REPLICATION_OFFSET_CHECKPOINT);
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "0\n2\na 0 1\na 1 2\n"
    );
    // No partition directory holds one of its own.
    assert!(!tmp
        .path()
        .join("a-0")
        .join(streamlog::log::REPLICATION_OFFSET_CHECKPOINT)
        .exists());
    storage
        .partition("a", 1)
        .unwrap()
        .maybe_advance_high_watermark(3)
        .unwrap();
    storage.close().unwrap();
    drop(storage);
    let storage = Storage::open(tmp.path(), config).unwrap();
    assert_eq!(storage.partition("a", 0).unwrap().high_watermark(), 1);
    assert_eq!(storage.partition("a", 1).unwrap().high_watermark(), 3);
}
