//! A record stamped in the future must not keep its segment, and with it every later one,
//! until the wall clock catches up (Kafka keeps such a segment and only logs a warning).
//! Retention then measures the segment's age from when it was last written: the `.log`
//! file's modification time, or the timestamp of a later segment's records (appended after
//! it was sealed), whichever is earlier. With neither known, the segment is kept.

use crate::common::logs;

use std::sync::Arc;

use streamlog::io::SimFs;
use streamlog::{Log, LogConfig, SystemClock};

use logs::{batch, small_segments};
use streamlog::Clock;

const HOUR: i64 = 3_600_000;
/// 2200-01-01: far ahead of any test machine's clock.
const FUTURE: i64 = 7_258_118_400_000;

fn config() -> LogConfig {
    small_segments(1 << 20)
        .to_builder()
        .retention_ms(Some(HOUR))
        .build()
        .unwrap()
}

fn log_of(log: &Log, stamps: &[i64]) {
    for (i, &t) in stamps.iter().enumerate() {
        if i > 0 {
            log.roll().unwrap();
        }
        log.append(&batch(5, t)).unwrap();
    }
}

#[test]
fn a_later_segments_sane_timestamp_dates_a_future_stamped_segment() {
    let dir = tempfile::tempdir().unwrap();
    let now = SystemClock.now_ms();
    let log = Log::open(dir.path(), config()).unwrap();
    // Segment 0 claims the year 2200; segment 5's records, appended after it was sealed,
    // are three hours old, and so is segment 0 at least.
    log_of(&log, &[FUTURE, now - 3 * HOUR, now]);
    let out = log.delete_retention_breached(now).unwrap();
    assert_eq!((out.segments_deleted, out.by_time), (2, 2));
    assert_eq!(log.segment_base_offsets(), vec![10]);
}

#[test]
fn the_files_modification_time_dates_it_when_nothing_later_is_sane() {
    let dir = tempfile::tempdir().unwrap();
    let now = SystemClock.now_ms();
    let log = Log::open(dir.path(), config()).unwrap();
    log_of(&log, &[FUTURE, FUTURE + 1, FUTURE + 2]);
    // Written just now: kept.
    assert_eq!(
        log.delete_retention_breached(now).unwrap().segments_deleted,
        0
    );
    // Two hours on (the files were last written two hours before): both sealed ones go.
    let out = log.delete_retention_breached(now + 2 * HOUR).unwrap();
    assert_eq!((out.segments_deleted, out.by_time), (2, 2));
    assert_eq!(log.segment_base_offsets(), vec![10]);
}

#[test]
fn a_sane_largest_timestamp_is_used_as_kafka_uses_it() {
    let dir = tempfile::tempdir().unwrap();
    let now = SystemClock.now_ms();
    let log = Log::open(dir.path(), config()).unwrap();
    // Recent files, old records: the records' time decides.
    log_of(&log, &[now - 2 * HOUR, now - 30 * 60_000, now]);
    let out = log.delete_retention_breached(now).unwrap();
    assert_eq!(out.segments_deleted, 1);
    assert_eq!(log.segment_base_offsets(), vec![5, 10]);
}

#[test]
fn without_modification_times_or_sane_later_stamps_the_segment_is_kept() {
    // SimFs keeps no modification times.
    let fs = SimFs::new(1);
    let (log, _) = Log::open_with(
        Arc::new(fs.clone()),
        std::path::Path::new("/data/t-0"),
        config(),
        &mut |_| Ok(()),
    )
    .unwrap();
    let now = SystemClock.now_ms();
    log_of(&log, &[FUTURE, FUTURE, now]);
    // The active segment's stamp is sane but recent: segment 0 is at most that old.
    assert_eq!(
        log.delete_retention_breached(now + HOUR / 2)
            .unwrap()
            .segments_deleted,
        0
    );
    // Once that stamp is past retention, both future-stamped segments go.
    let out = log.delete_retention_breached(now + 2 * HOUR).unwrap();
    assert_eq!(out.segments_deleted, 2);

    let fs = SimFs::new(2);
    let (log, _) = Log::open_with(
        Arc::new(fs.clone()),
        std::path::Path::new("/data/t-0"),
        config(),
        &mut |_| Ok(()),
    )
    .unwrap();
    log_of(&log, &[FUTURE, FUTURE + 1]);
    assert_eq!(
        log.delete_retention_breached(now + 1000 * HOUR)
            .unwrap()
            .segments_deleted,
        0
    );
}
