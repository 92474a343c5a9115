//! `segment.ms`: a new segment starts when a batch's max timestamp is more than `segment.ms`
//! past the max timestamp of the active segment's first batch. Under CreateTime that is the
//! producer's timestamps (the clock does not matter); under LogAppendTime it is the clock.

use crate::common::logs;

use std::sync::Arc;

use logs::{batch, offsets_from, span, T0};
use streamlog::{Log, LogConfig, ManualClock, OwnedRecord, TimestampType};

const SEGMENT_MS: i64 = 1000;

fn config(clock: &Arc<ManualClock>) -> LogConfig {
    LogConfig::builder()
        .segment_ms(Some(SEGMENT_MS))
        .clock(clock.clone())
        .build()
        .unwrap()
}

/// A batch of two records stamped `first` and `second` (max timestamp is the larger).
fn two_stamps(first: i64, second: i64) -> Vec<u8> {
    let records = [
        OwnedRecord::new(first, Some(b"a"), Some(b"1")),
        OwnedRecord::new(second, Some(b"b"), Some(b"2")),
    ];
    logs::build(&records)
}

#[test]
fn create_time_rolls_on_batch_timestamps_measured_from_the_first_batch_max() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let log = Log::open(dir.path(), config(&clock)).unwrap();
    // The first batch's max timestamp (T0), not its earliest record, starts the clock.
    log.append(&two_stamps(T0 - 500, T0)).unwrap(); // offsets 0, 1
    log.append(&two_stamps(T0 + SEGMENT_MS, T0 + 10)).unwrap(); // waited exactly segment.ms
    assert_eq!(log.segment_base_offsets(), vec![0]);
    // Later batches are measured against the first batch, not the latest one.
    log.append(&two_stamps(T0 + 3, T0 + SEGMENT_MS + 1))
        .unwrap(); // offsets 4, 5
    assert_eq!(log.segment_base_offsets(), vec![0, 4]);
    // The new segment measures from its own first batch.
    log.append(&batch(1, T0 + 2 * SEGMENT_MS)).unwrap(); // offset 6
    assert_eq!(log.segment_base_offsets(), vec![0, 4]);
    log.append(&batch(1, T0 + 2 * SEGMENT_MS + 2)).unwrap(); // offset 7
    assert_eq!(log.segment_base_offsets(), vec![0, 4, 7]);
    // A batch older than the segment's start never rolls.
    log.append(&batch(1, T0 - 100_000)).unwrap();
    assert_eq!(log.segment_base_offsets(), vec![0, 4, 7]);
    assert_eq!(offsets_from(&log, 0), span(0, 9));
}

#[test]
fn create_time_ignores_the_clock() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let log = Log::open(dir.path(), config(&clock)).unwrap();
    log.append(&batch(2, T0)).unwrap();
    clock.advance(100 * SEGMENT_MS);
    log.append(&batch(2, T0 + 1)).unwrap();
    assert_eq!(log.segment_base_offsets(), vec![0]);
}

#[test]
fn log_append_time_rolls_on_the_clock() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let cfg = config(&clock)
        .to_builder()
        .message_timestamp_type(TimestampType::LogAppendTime)
        .build()
        .unwrap();
    let log = Log::open(dir.path(), cfg).unwrap();
    // Producer timestamps are far apart but replaced by the append time.
    log.append(&batch(3, 0)).unwrap();
    clock.advance(SEGMENT_MS);
    log.append(&batch(3, T0 * 2)).unwrap();
    assert_eq!(log.segment_base_offsets(), vec![0]);
    clock.advance(1);
    let info = log.append(&batch(3, 0)).unwrap();
    assert_eq!(info.log_append_time, Some(T0 + SEGMENT_MS + 1));
    assert_eq!(log.segment_base_offsets(), vec![0, 6]);
}

#[test]
fn no_segment_ms_never_rolls_on_time() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let cfg = config(&clock)
        .to_builder()
        .segment_ms(None)
        .build()
        .unwrap();
    let log = Log::open(dir.path(), cfg).unwrap();
    for i in 0..5 {
        log.append(&batch(1, T0 + i * 365 * 24 * 3600 * 1000))
            .unwrap();
    }
    assert_eq!(log.segment_count(), 1);
}

/// The reopened active segment still measures from its first batch, whether its index has
/// entries (the first batch is found by a scan from the file start) or not.
fn reopened_segment_keeps_its_rolling_base(index_interval_bytes: u32, clean: bool) {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let cfg = config(&clock)
        .to_builder()
        .index_interval_bytes(index_interval_bytes)
        .build()
        .unwrap();
    let log = Log::open(dir.path(), cfg.clone()).unwrap();
    for i in 0..6 {
        log.append(&batch(2, T0 + i)).unwrap();
    }
    if clean {
        log.close().unwrap();
    } else {
        drop(log);
    }
    let log = Log::open(dir.path(), cfg).unwrap();
    assert_eq!(log.log_end_offset(), 12);
    // Measured from the last batch (T0 + 5) this would not roll; from the first (T0) it must.
    log.append(&batch(2, T0 + SEGMENT_MS + 3)).unwrap();
    assert_eq!(log.segment_base_offsets(), vec![0, 12]);
    assert_eq!(offsets_from(&log, 0), span(0, 14));
}

#[test]
fn reopen_keeps_rolling_base_without_index_entries() {
    reopened_segment_keeps_its_rolling_base(4096, true);
}

#[test]
fn reopen_keeps_rolling_base_with_index_entries() {
    reopened_segment_keeps_its_rolling_base(1, true);
}

#[test]
fn unclean_reopen_keeps_rolling_base() {
    reopened_segment_keeps_its_rolling_base(1, false);
    reopened_segment_keeps_its_rolling_base(4096, false);
}

/// Batches without timestamps (-1, as old clients and some pipelines send): `segment.ms`
/// then counts from when the active segment was created or opened, on the log's clock, as
/// Kafka's `LogSegment.timeWaitedForRoll` does; otherwise such a log would never roll on time.
#[test]
fn untimestamped_segment_rolls_on_its_age() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let log = Log::open(dir.path(), config(&clock)).unwrap();
    log.append(&batch(2, -1)).unwrap(); // offsets 0, 1
    clock.advance(SEGMENT_MS);
    log.append(&batch(2, -1)).unwrap(); // exactly segment.ms old: no roll
    assert_eq!(log.segment_base_offsets(), vec![0]);
    clock.advance(1);
    log.append(&batch(2, -1)).unwrap(); // offsets 4, 5 in a new segment
    assert_eq!(log.segment_base_offsets(), vec![0, 4]);
    // The new segment's age starts at its roll.
    clock.advance(SEGMENT_MS);
    log.append(&batch(1, -1)).unwrap();
    assert_eq!(log.segment_base_offsets(), vec![0, 4]);
    // A reopen starts the age again (Kafka: creation time is when the segment was loaded).
    log.close().unwrap();
    clock.advance(10 * SEGMENT_MS);
    let log = Log::open(dir.path(), config(&clock)).unwrap();
    log.append(&batch(1, -1)).unwrap();
    assert_eq!(log.segment_base_offsets(), vec![0, 4]);
    clock.advance(SEGMENT_MS + 1);
    log.append(&batch(1, -1)).unwrap();
    assert_eq!(log.segment_base_offsets(), vec![0, 4, 8]);
    assert_eq!(offsets_from(&log, 0), span(0, 9));
}
