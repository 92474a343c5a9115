//! Record timestamps Kafka refuses with `INVALID_TIMESTAMP`: below -1 always, and under
//! CreateTime anything further from the log's clock than `message.timestamp.before.max.ms`
//! / `message.timestamp.after.max.ms` (KIP-937; Kafka 4.0's defaults: no limit before, one
//! hour after). The batch is refused with `Error::InvalidTimestamp` naming the batch and
//! the record, and nothing of it is stored (nor its producer's sequence). -1 (no timestamp)
//! always passes; LogAppendTime logs do not judge the producer's clock; replica appends keep
//! what the leader accepted.

use std::sync::Arc;

use crate::common::{logs, producers};

use logs::{build, file_len, replica_batch, segment_file};
use streamlog::storage::{Storage, StorageConfig, TopicConfig};
use streamlog::{Compression, Error, Log, LogConfig, ManualClock, OwnedRecord, TimestampType};

const NOW: i64 = 1_700_000_000_000;
const HOUR: i64 = 3_600_000;

fn open(dir: &std::path::Path, config: LogConfig) -> (Log, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(NOW));
    let config = config.to_builder().clock(clock.clone()).build().unwrap();
    (Log::open(dir, config).unwrap(), clock)
}

fn stamped(timestamps: &[i64]) -> Vec<OwnedRecord> {
    timestamps
        .iter()
        .map(|&t| OwnedRecord::new(t, Some(b"k"), Some(b"v")))
        .collect()
}

/// Asserts the append is refused for record `index` with `timestamp` and the window
/// `[min, max]`, and that the log did not change.
fn refused(log: &Log, batch: &[u8], index: u32, timestamp: i64, window: (i64, i64)) {
    let (leo, size) = (log.log_end_offset(), log.size_in_bytes());
    match log.append(batch) {
        Err(Error::InvalidTimestamp {
            base_offset,
            index: i,
            timestamp: t,
            min,
            max,
        }) => {
            assert_eq!(base_offset, 0, "names the batch by its base offset");
            assert_eq!((i, t), (index, timestamp));
            assert_eq!((min, max), window);
        }
        other => panic!("expected InvalidTimestamp for {timestamp}, got {other:?}"),
    }
    assert_eq!((log.log_end_offset(), log.size_in_bytes()), (leo, size));
    assert_eq!(file_len(&segment_file(log.dir(), 0, "log")), size);
}

#[test]
fn create_time_defaults_refuse_below_minus_one_and_more_than_an_hour_ahead() {
    let dir = tempfile::tempdir().unwrap();
    let (log, clock) = open(dir.path(), LogConfig::default());
    let window = (0, NOW + HOUR);
    refused(&log, &build(&stamped(&[NOW, -2])), 1, -2, window);
    refused(&log, &build(&stamped(&[i64::MIN])), 0, i64::MIN, window);
    refused(
        &log,
        &build(&stamped(&[NOW + HOUR + 1])),
        0,
        NOW + HOUR + 1,
        window,
    );

    // -1 (no timestamp), the epoch, and exactly an hour ahead pass; the past has no limit.
    let info = log
        .append(&build(&stamped(&[-1, 0, 1, NOW + HOUR])))
        .unwrap();
    assert_eq!((info.first_offset, info.last_offset), (0, 3));

    // The window moves with the log's clock.
    clock.advance(1);
    log.append(&build(&stamped(&[NOW + HOUR + 1]))).unwrap();
    assert_eq!(log.log_end_offset(), 5);
}

#[test]
fn configured_windows_are_enforced_to_the_millisecond() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig::builder()
        .message_timestamp_before_max_ms(1_000)
        .message_timestamp_after_max_ms(0)
        .build()
        .unwrap();
    let (log, _clock) = open(dir.path(), config);
    let window = (NOW - 1_000, NOW);
    refused(
        &log,
        &build(&stamped(&[NOW, NOW - 1_001])),
        1,
        NOW - 1_001,
        window,
    );
    refused(&log, &build(&stamped(&[NOW + 1])), 0, NOW + 1, window);
    // Compressed batches are judged record by record too.
    let mut b = streamlog::BatchBuilder::new(streamlog::BatchOptions::compressed(Compression::Lz4));
    for t in [NOW, NOW - 5, NOW - 2_000] {
        b.append(t, Some(b"k"), Some(b"v"), &[]).unwrap();
    }
    refused(&log, &b.build().unwrap(), 2, NOW - 2_000, window);
    assert!(matches!(
        log.append_records(&stamped(&[NOW - 1_001]), Compression::Gzip),
        Err(Error::InvalidTimestamp { .. })
    ));

    log.append(&build(&stamped(&[NOW - 1_000, NOW, -1])))
        .unwrap();
    assert_eq!(log.log_end_offset(), 3);
}

#[test]
fn a_refused_producer_batch_leaves_its_sequence_unused() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _clock) = open(dir.path(), LogConfig::default());
    let bad = producers::batch_at(7, 0, 0, 2, false, NOW + 2 * HOUR);
    refused(&log, &bad, 0, NOW + 2 * HOUR, (0, NOW + HOUR));
    assert!(log.producer_state(7).is_none());
    let good = producers::batch_at(7, 0, 0, 2, false, NOW);
    let info = log.append(&good).unwrap();
    assert!(!info.duplicate);
    assert_eq!(log.producer_state(7).unwrap().last_seq(), 1);
}

#[test]
fn log_append_time_ignores_the_producer_clock_but_not_negative_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig::builder()
        .message_timestamp_type(TimestampType::LogAppendTime)
        .message_timestamp_after_max_ms(0)
        .message_timestamp_before_max_ms(0)
        .build()
        .unwrap();
    let (log, _clock) = open(dir.path(), config);
    let info = log
        .append(&build(&stamped(&[0, NOW + 10 * HOUR, -1])))
        .unwrap();
    assert_eq!(info.log_append_time, Some(NOW));
    refused(&log, &build(&stamped(&[NOW, -7])), 1, -7, (0, i64::MAX));
}

#[test]
fn replica_appends_keep_what_the_leader_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig::builder()
        .message_timestamp_after_max_ms(0)
        .build()
        .unwrap();
    let (log, _clock) = open(dir.path(), config);
    log.append_replicated(&replica_batch(0, 3, 1, NOW + 10 * HOUR))
        .unwrap();
    assert_eq!(log.log_end_offset(), 3);
}

#[test]
fn topic_configs_set_the_windows() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(NOW));
    let mut config = StorageConfig::default();
    config.defaults.log.clock = clock;
    let storage = Storage::open(dir.path(), config).unwrap();
    let mut topic = TopicConfig::new();
    topic
        .set("message.timestamp.after.max.ms", "10")
        .unwrap()
        .set("message.timestamp.before.max.ms", "20")
        .unwrap();
    assert!(TopicConfig::new()
        .set("message.timestamp.after.max.ms", "-1")
        .is_err());
    storage.create_topic("t", 1, topic).unwrap();
    let log = storage.partition("t", 0).unwrap();
    assert_eq!(log.config().message_timestamp_after_max_ms, 10);
    assert_eq!(log.config().message_timestamp_before_max_ms, 20);
    refused(
        &log,
        &build(&stamped(&[NOW + 11])),
        0,
        NOW + 11,
        (NOW - 20, NOW + 10),
    );
    refused(
        &log,
        &build(&stamped(&[NOW - 21])),
        0,
        NOW - 21,
        (NOW - 20, NOW + 10),
    );
    log.append(&build(&stamped(&[NOW + 10, NOW - 20]))).unwrap();
    drop(log);
    storage.close().unwrap();
}
