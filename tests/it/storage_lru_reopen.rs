//! The open-file budget closes least recently used logs cleanly and reopens them on demand
//! with their data; logs a caller holds are never closed under it.

use crate::storage_util;

use std::path::Path;

use storage_util::{append_tagged, config, data_dir, open, values};
use streamlog::storage::TopicConfig;
use streamlog::Error;

/// Whether a partition's log is closed cleanly on disk (marker present).
fn cleanly_closed(data: &Path, topic: &str, p: u32) -> bool {
    data.join(format!("{topic}-{p}/.kafka_cleanshutdown"))
        .exists()
}

#[test]
fn least_recently_used_logs_close_cleanly_and_reopen_with_their_data() {
    let dir = data_dir();
    // 12 files: four one-segment logs.
    let storage = open(dir.path(), config(12));
    storage.create_topic("t", 10, TopicConfig::new()).unwrap();
    for round in 0..3 {
        for p in 0..10 {
            let log = storage.partition("t", p).unwrap();
            append_tagged(&log, "t", p, round, 1_000);
            drop(log);
            assert!(storage.open_partitions() <= 4);
            assert!(storage.open_files_charged() <= 12);
        }
    }
    // The six least recently used were closed cleanly; the last four are open.
    for p in 0..6 {
        assert!(cleanly_closed(dir.path(), "t", p), "partition {p}");
    }
    for p in 6..10 {
        assert!(!cleanly_closed(dir.path(), "t", p), "partition {p}");
    }
    for p in 0..10 {
        let log = storage.partition("t", p).unwrap();
        let expected: Vec<String> = (0..3).map(|r| format!("t/{p}/{r}")).collect();
        assert_eq!(values(&log), expected);
        assert_eq!(log.log_end_offset(), 3);
    }
}

#[test]
fn eviction_follows_last_use_not_first_open() {
    let dir = data_dir();
    let storage = open(dir.path(), config(12));
    storage.create_topic("t", 6, TopicConfig::new()).unwrap();
    for p in 0..4 {
        storage.partition("t", p).unwrap();
    }
    storage.partition("t", 0).unwrap(); // 0 is now the most recently used
    storage.partition("t", 4).unwrap(); // evicts 1
    assert!(!cleanly_closed(dir.path(), "t", 0));
    assert!(cleanly_closed(dir.path(), "t", 1));
    storage.partition("t", 5).unwrap(); // evicts 2
    assert!(cleanly_closed(dir.path(), "t", 2));
    assert!(!cleanly_closed(dir.path(), "t", 0));
    assert!(!cleanly_closed(dir.path(), "t", 3));
}

#[test]
fn held_logs_are_never_closed_and_a_full_budget_of_held_logs_is_an_error() {
    let dir = data_dir();
    let storage = open(dir.path(), config(12));
    storage.create_topic("t", 8, TopicConfig::new()).unwrap();
    let held = storage.partition("t", 0).unwrap();
    append_tagged(&held, "t", 0, 0, 1_000);
    // Churn through the other partitions: partition 0 is least recently used throughout.
    for round in 0..3 {
        for p in 1..8 {
            append_tagged(&storage.partition("t", p).unwrap(), "t", p, round, 1_000);
        }
        append_tagged(&held, "t", 0, round + 1, 1_000);
    }
    assert!(!cleanly_closed(dir.path(), "t", 0));
    assert_eq!(held.log_end_offset(), 4);
    assert!(std::sync::Arc::ptr_eq(
        &held,
        &storage.partition("t", 0).unwrap()
    ));

    // Hold four logs: the budget is full of logs that cannot be closed.
    let more: Vec<_> = (1..4).map(|p| storage.partition("t", p).unwrap()).collect();
    match storage.partition("t", 7) {
        Err(Error::OpenFileBudgetExhausted {
            partition: 7,
            budget: 12,
            open: 4,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    drop(more);
    let log = storage.partition("t", 7).unwrap();
    assert_eq!(values(&log), ["t/7/0", "t/7/1", "t/7/2"]);
    assert_eq!(values(&held).len(), 4);

    // Closing the storage closes held logs too.
    storage.close().unwrap();
    assert!(matches!(append_result(&held), Err(Error::LogClosed { .. })));
    assert!(matches!(
        storage.partition("t", 0),
        Err(Error::StorageClosed { .. })
    ));
}

fn append_result(log: &streamlog::Log) -> streamlog::Result<streamlog::AppendInfo> {
    log.append_records(
        &[streamlog::OwnedRecord::new(1, None, Some(b"x"))],
        streamlog::Compression::None,
    )
}
