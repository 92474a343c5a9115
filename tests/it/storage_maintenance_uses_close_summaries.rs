//! `Storage::maintain` applies retention to every partition, opening a closed one only when
//! the summary taken at its close says retention has something to delete.

use crate::storage_util;

use std::sync::Arc;
use std::time::Duration;

use storage_util::{append_tagged, config, data_dir, open, values};
use streamlog::storage::{Storage, TopicConfig};
use streamlog::{Log, ManualClock};

/// Three sealed segments holding one record each at timestamps 1000, 2000, 3000, and an
/// active one holding a record at 4000.
fn fill(log: &Log, topic: &str, p: u32) {
    for i in 0..4 {
        append_tagged(log, topic, p, i, 1_000 * (i + 1));
        if i < 3 {
            log.roll().unwrap();
        }
    }
}

fn topic_with(key: &str, value: &str) -> TopicConfig {
    let mut c = TopicConfig::new();
    c.set(key, value).unwrap();
    c
}

#[test]
fn time_retention_opens_only_partitions_with_expired_segments() {
    let dir = data_dir();
    let storage = open(dir.path(), config(64));
    storage
        .create_topic("short", 2, topic_with("retention.ms", "1000"))
        .unwrap();
    storage
        .create_topic("forever", 2, topic_with("retention.ms", "-1"))
        .unwrap();
    for t in ["short", "forever"] {
        for p in 0..2 {
            fill(&storage.partition(t, p).unwrap(), t, p);
        }
    }
    storage.close().unwrap();

    let storage = open(dir.path(), config(64));
    // Nothing has expired yet (the oldest segment's largest timestamp is 1000).
    let report = storage.maintain(2_000).unwrap();
    assert_eq!(report.partitions, 4);
    assert_eq!(
        (report.open, report.opened, report.segments_deleted),
        (0, 0, 0)
    );

    // At 3500, the segments of 1000 and 2000 are more than 1000 ms old; only "short" opens.
    let report = storage.maintain(3_500).unwrap();
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(report.opened, 2);
    assert_eq!(report.segments_deleted, 4);
    assert_eq!(
        storage.open_partitions(),
        0,
        "maintenance closes what it opened"
    );
    for p in 0..2 {
        let short = storage.partition("short", p).unwrap();
        assert_eq!(short.log_start_offset(), 2);
        assert_eq!(
            values(&short),
            [format!("short/{p}/2"), format!("short/{p}/3")]
        );
        assert_eq!(values(&storage.partition("forever", p).unwrap()).len(), 4);
    }

    // Open partitions are maintained in place. Far in the future only the active segment
    // is left: it is never deleted.
    let report = storage.maintain(1_000_000).unwrap();
    assert_eq!(report.open, 4);
    assert_eq!(report.opened, 0);
    assert_eq!(report.segments_deleted, 2);
    for p in 0..2 {
        let short = storage.partition("short", p).unwrap();
        assert_eq!(short.segment_count(), 1);
        assert_eq!(values(&short), [format!("short/{p}/3")]);
    }
    storage.close().unwrap();

    // The summaries written at close say nothing more is due.
    let storage = open(dir.path(), config(64));
    let report = storage.maintain(1_000_000).unwrap();
    assert_eq!((report.opened, report.segments_deleted), (0, 0));
}

#[test]
fn size_retention_keeps_the_newest_segments_within_retention_bytes() {
    let dir = data_dir();
    let storage = open(dir.path(), config(64));
    storage.create_topic("t", 1, TopicConfig::new()).unwrap();
    let log = storage.partition("t", 0).unwrap();
    fill(&log, "t", 0);
    let segment_bytes = log.size_in_bytes() / 4;
    drop(log);
    // Room for two segments: the two oldest go.
    storage
        .alter_topic_config(
            "t",
            topic_with("retention.bytes", &(2 * segment_bytes).to_string()),
        )
        .unwrap();
    let report = storage.maintain(5_000).unwrap();
    assert_eq!(report.opened, 1);
    assert_eq!(report.segments_deleted, 2);
    assert_eq!(report.bytes_deleted, 2 * segment_bytes);
    assert_eq!(
        values(&storage.partition("t", 0).unwrap()),
        ["t/0/2", "t/0/3"]
    );
}

#[test]
fn partitions_without_a_summary_are_opened_once() {
    let dir = data_dir();
    let storage = open(dir.path(), config(64));
    storage.create_topic("t", 5, TopicConfig::new()).unwrap();
    for p in 0..5 {
        fill(&storage.partition("t", p).unwrap(), "t", p);
    }
    storage.close().unwrap();
    // As after a crash: no summaries file.
    std::fs::remove_file(dir.path().join("partition-summaries")).unwrap();
    let storage = open(dir.path(), config(64));
    let report = storage.maintain(4_000).unwrap();
    assert_eq!((report.opened, report.segments_deleted), (5, 0));
    let report = storage.maintain(4_000).unwrap();
    assert_eq!(report.opened, 0);
}

#[test]
fn background_maintenance_applies_retention_and_stops() {
    let dir = data_dir();
    let clock = Arc::new(ManualClock::new(0));
    let mut cfg = config(64);
    cfg.defaults.log.clock = clock.clone();
    let storage = Arc::new(Storage::open(dir.path(), cfg).unwrap());
    storage
        .create_topic("t", 1, topic_with("retention.ms", "1000"))
        .unwrap();
    let log = storage.partition("t", 0).unwrap();
    fill(&log, "t", 0);

    // A thread that would wait an hour between passes still stops at once.
    let idle = Storage::spawn_maintenance(Arc::clone(&storage), Duration::from_secs(3600));
    idle.stop().unwrap();
    assert_eq!(log.log_start_offset(), 0);

    clock.set(1_000_000);
    let busy = Storage::spawn_maintenance(Arc::clone(&storage), Duration::from_millis(1));
    // Wait for the thread's effect, not for a duration.
    while log.log_start_offset() < 3 {
        std::thread::yield_now();
    }
    busy.stop().unwrap();
    assert_eq!(values(&log), ["t/0/3"]);
}

#[test]
fn compacted_topics_are_cleaned_when_dirty_and_left_closed_once_clean() {
    use streamlog::{Compression, OwnedRecord};
    let dir = data_dir();
    let storage = open(dir.path(), config(64));
    storage
        .create_topic("keyed", 1, topic_with("cleanup.policy", "compact"))
        .unwrap();
    let log = storage.partition("keyed", 0).unwrap();
    for round in 0..3 {
        for k in 0..4 {
            let key = format!("k{k}");
            let value = format!("k{k}={round}");
            log.append_records(
                &[OwnedRecord::new(
                    1_000,
                    Some(key.as_bytes()),
                    Some(value.as_bytes()),
                )],
                Compression::None,
            )
            .unwrap();
        }
        log.roll().unwrap();
    }
    drop(log);
    storage.close().unwrap();

    let storage = open(dir.path(), config(64));
    let report = storage.maintain(10_000).unwrap();
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!((report.opened, report.logs_compacted), (1, 1));
    assert!(report.compaction_bytes_written < report.compaction_bytes_read);
    assert_eq!(
        values(&storage.partition("keyed", 0).unwrap()),
        ["k0=2", "k1=2", "k2=2", "k3=2"]
    );
    storage.close().unwrap();

    // Clean now: its summary says so, and the next pass leaves it closed.
    let storage = open(dir.path(), config(64));
    let report = storage.maintain(20_000).unwrap();
    assert_eq!((report.opened, report.logs_compacted), (0, 0));
}
