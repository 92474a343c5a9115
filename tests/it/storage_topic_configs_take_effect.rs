//! The topic configs that shape a partition's files and flushes — `segment.index.bytes`,
//! `index.interval.bytes`, `flush.messages`, `flush.ms`, `max.compaction.lag.ms` — set on a
//! topic change what its logs do, beside a topic of the same storage without them.

use crate::storage_util;

use std::path::Path;
use std::sync::Arc;

use storage_util::{data_dir, open, small_log_config};
use streamlog::storage::{Storage, StorageConfig, TopicConfig};
use streamlog::{Compression, Log, ManualClock, OwnedRecord};

/// The time every log of these storages reads (and the records carry).
const T0: i64 = 1_700_000_000_000;

fn storage_at(dir: &Path) -> (Storage, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(T0));
    let mut log = small_log_config();
    log.clock = clock.clone();
    let config = StorageConfig::builder()
        .log(log)
        .max_open_files(256)
        .max_open_maps(256)
        .build()
        .unwrap();
    (open(dir, config), clock)
}

fn topic(storage: &Storage, name: &str, pairs: &[(&str, &str)]) -> Arc<Log> {
    let mut config = TopicConfig::new();
    for (k, v) in pairs {
        config.set(k, v).unwrap();
    }
    storage.create_topic(name, 1, config).unwrap();
    storage.partition(name, 0).unwrap()
}

/// One record a batch, keyed `k{key}`, at `timestamp`.
fn append(log: &Log, key: u32, timestamp: i64) {
    let k = format!("k{key}");
    log.append_records(
        &[OwnedRecord::new(
            timestamp,
            Some(k.as_bytes()),
            Some(b"some value bytes"),
        )],
        Compression::None,
    )
    .unwrap();
}

fn index_len(storage: &Storage, topic: &str, base_offset: i64) -> u64 {
    let path = storage
        .dir()
        .join(format!("{topic}-0"))
        .join(format!("{base_offset:020}.index"));
    std::fs::metadata(path).unwrap().len()
}

#[test]
fn segment_index_bytes_rolls_a_segment_whose_index_is_full() {
    let dir = data_dir();
    let (storage, _) = storage_at(dir.path());
    // An entry for every batch after the first, in indexes of 4 offset / 3 time entries.
    let small = topic(
        &storage,
        "small",
        &[("segment.index.bytes", "36"), ("index.interval.bytes", "0")],
    );
    let plain = topic(&storage, "plain", &[("index.interval.bytes", "0")]);
    for i in 0..20 {
        append(&small, i, T0 + i64::from(i));
        append(&plain, i, T0 + i64::from(i));
    }
    // 20 batches of ~90 bytes fit one 4 KiB segment: only full indexes roll `small`.
    assert_eq!(plain.segment_count(), 1);
    assert!(small.segment_count() >= 5, "{}", small.segment_count());
    let infos = small.segments_info().unwrap();
    for s in infos.iter().filter(|s| !s.is_active) {
        assert!(index_len(&storage, "small", s.base_offset) <= 32);
    }
    assert_eq!(small.log_end_offset(), 20);
}

#[test]
fn index_interval_bytes_sets_how_dense_the_offset_index_is() {
    let dir = data_dir();
    let (storage, _) = storage_at(dir.path());
    let dense = topic(&storage, "dense", &[("index.interval.bytes", "0")]);
    let sparse = topic(&storage, "sparse", &[("index.interval.bytes", "100000")]);
    let default = topic(&storage, "default", &[]); // the storage's 256 bytes
    for log in [&dense, &sparse, &default] {
        for i in 0..10 {
            append(log, i, T0);
        }
        log.roll().unwrap();
    }
    // Sealed indexes are trimmed to their entries, 8 bytes each.
    assert_eq!(index_len(&storage, "dense", 0), 9 * 8);
    assert_eq!(index_len(&storage, "sparse", 0), 0);
    let between = index_len(&storage, "default", 0);
    assert!(between > 0 && between < 9 * 8, "{between}");
}

#[test]
fn flush_messages_flushes_after_that_many_messages() {
    let dir = data_dir();
    let (storage, _) = storage_at(dir.path());
    let every3 = topic(&storage, "every3", &[("flush.messages", "3")]);
    let never = topic(
        &storage,
        "never",
        &[("flush.messages", "9223372036854775807")],
    );
    for i in 0..2 {
        append(&every3, i, T0);
        append(&never, i, T0);
    }
    assert_eq!(every3.recovery_point(), 0);
    append(&every3, 2, T0);
    append(&never, 2, T0);
    assert_eq!(every3.recovery_point(), 3);
    assert_eq!(never.recovery_point(), 0);
    // Altered to every message: the log reopens under it once no caller holds it.
    drop(every3);
    let mut altered = TopicConfig::new();
    altered.set("flush.messages", "1").unwrap();
    storage.alter_topic_config("every3", altered).unwrap();
    let every1 = storage.partition("every3", 0).unwrap();
    append(&every1, 3, T0);
    assert_eq!(every1.recovery_point(), 4);
}

#[test]
fn flush_ms_flushes_once_that_long_has_passed() {
    let dir = data_dir();
    let (storage, clock) = storage_at(dir.path());
    let timed = topic(&storage, "timed", &[("flush.ms", "1000")]);
    let untimed = topic(&storage, "untimed", &[]);
    append(&timed, 0, T0);
    append(&untimed, 0, T0);
    // The logs opened at T0: the first flush is due at T0 + 1000.
    let flush_at = |now| {
        clock.set(now);
        storage.flush_dirty_logs(now).unwrap()
    };
    assert_eq!(flush_at(T0 + 999), 0);
    assert_eq!(timed.recovery_point(), 0);
    assert_eq!(flush_at(T0 + 1000), 1);
    assert_eq!((timed.recovery_point(), untimed.recovery_point()), (1, 0));
    // Nothing new: nothing to flush, however late.
    assert_eq!(flush_at(T0 + 10_000), 0);
    // The maintenance pass applies it too, counting from the last flush (at T0 + 1000).
    append(&timed, 1, T0 + 10_000);
    clock.set(T0 + 1999);
    storage.maintain(T0 + 1999).unwrap();
    assert_eq!(timed.recovery_point(), 1);
    clock.set(T0 + 2000);
    storage.maintain(T0 + 2000).unwrap();
    assert_eq!(timed.recovery_point(), 2);
    assert_eq!(untimed.recovery_point(), 0);
}

#[test]
fn max_compaction_lag_ms_compacts_a_log_below_the_dirty_ratio() {
    let dir = data_dir();
    let (storage, _) = storage_at(dir.path());
    let compacted = [
        ("cleanup.policy", "compact"),
        ("min.cleanable.dirty.ratio", "0.9"),
    ];
    let lagged = {
        let mut pairs = compacted.to_vec();
        pairs.push(("max.compaction.lag.ms", "1000"));
        topic(&storage, "lagged", &pairs)
    };
    let plain = topic(&storage, "plain", &compacted);
    // A first pass cleans what is there (all of it dirty: ratio 1)...
    for log in [&lagged, &plain] {
        for i in 0..40 {
            append(log, i % 4, T0);
        }
        log.roll().unwrap();
    }
    assert_eq!(storage.maintain(T0).unwrap().logs_compacted, 2);
    // ...then one more record: dirty, but far below the ratio.
    for log in [&lagged, &plain] {
        append(log, 0, T0);
        log.roll().unwrap();
    }
    let dirty = |log: &Log, now| {
        log.cleanable(log.last_stable_offset(), now)
            .unwrap()
            .cleanable_bytes
    };
    let report = storage.maintain(T0 + 1000).unwrap();
    assert_eq!(report.logs_compacted, 0, "not older than the lag yet");
    let report = storage.maintain(T0 + 1001).unwrap();
    assert_eq!(report.logs_compacted, 1);
    assert_eq!(dirty(&lagged, T0 + 1001), 0);
    assert!(dirty(&plain, T0 + 1001) > 0);
    assert!(!plain
        .cleanable(plain.last_stable_offset(), i64::MAX / 2)
        .unwrap()
        .should_clean());
}
