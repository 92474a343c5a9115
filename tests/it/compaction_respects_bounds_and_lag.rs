//! What a compaction pass may touch: nothing at or above the caller's upper bound (a high
//! watermark or last stable offset), nothing in the active segment, nothing in a segment
//! younger than `min.compaction.lag.ms`; and what `cleanable` reports to a scheduler (dirty
//! ratio against `min.cleanable.dirty.ratio`, `max.compaction.lag.ms`), with progress kept
//! in `cleaner-offset-checkpoint` across a reopen and pulled back by a truncation.

use streamlog::log::CLEANER_OFFSET_CHECKPOINT;
use streamlog::{Compression, Log, LogConfig, OwnedRecord};

const T0: i64 = 1_000_000;

fn config() -> LogConfig {
    LogConfig::builder()
        .segment_bytes(1 << 20)
        .segment_ms(None)
        .min_compaction_lag_ms(500)
        .max_compaction_lag_ms(Some(10_000))
        .build()
        .unwrap()
}

/// Ten records of key `k`, at `ts`, then a roll: one segment.
fn segment(log: &Log, ts: i64) {
    for i in 0..10 {
        let v = format!("{ts}-{i}");
        log.append_records(
            &[OwnedRecord::new(ts, Some(b"k"), Some(v.as_bytes()))],
            Compression::None,
        )
        .unwrap();
    }
    log.roll().unwrap();
}

fn offsets(log: &Log) -> Vec<i64> {
    log.records_from(log.log_start_offset())
        .map(|r| r.unwrap().offset())
        .collect()
}

#[test]
fn passes_stay_below_bound_lag_and_active_segment() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), config()).unwrap();
    segment(&log, T0); // offsets 0..10
    segment(&log, T0 + 1_000); // 10..20
    log.append_records(
        &[OwnedRecord::new(T0 + 2_000, Some(b"k"), Some(b"active"))],
        Compression::None,
    )
    .unwrap(); // 20, in the active segment

    // At T0 + 1_200 the second segment is younger than the lag: only the first is cleanable.
    let info = log.cleanable(i64::MAX, T0 + 1_200).unwrap();
    assert_eq!(info.first_dirty_offset, 0);
    assert_eq!(info.first_uncleanable_offset, 10);
    assert!(info.dirty_ratio > 0.99 && info.should_clean(), "{info:?}");
    // The caller's bound below that wins: nothing at or above offset 5 is touched.
    let stats = log.compact(5, T0 + 1_200).unwrap();
    assert_eq!(stats.end_offset, 5);
    assert_eq!(
        offsets(&log),
        [4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]
    );

    let stats = log.compact(i64::MAX, T0 + 1_200).unwrap();
    assert_eq!((stats.first_dirty_offset, stats.end_offset), (5, 10));
    assert_eq!(offsets(&log)[..2], [9, 10]);

    // Reopened, the pass resumes from the checkpoint, in Kafka's format.
    log.close().unwrap();
    let text = std::fs::read_to_string(dir.path().join(CLEANER_OFFSET_CHECKPOINT)).unwrap();
    assert!(
        text.starts_with("0\n1\n") && text.ends_with(" 10\n"),
        "{text:?}"
    );
    let log = Log::open(dir.path(), config()).unwrap();
    let info = log.cleanable(i64::MAX, T0 + 5_000).unwrap();
    assert_eq!(
        (info.first_dirty_offset, info.first_uncleanable_offset),
        (10, 20)
    );
    assert!(!info.lag_due);
    assert!(log.cleanable(i64::MAX, T0 + 20_000).unwrap().lag_due);

    // Once old enough, the second segment is cleaned; the active segment never is.
    let stats = log.compact(i64::MAX, T0 + 5_000).unwrap();
    assert_eq!((stats.end_offset, stats.complete), (20, true));
    assert_eq!(offsets(&log), [19, 20]);
    let info = log.cleanable(i64::MAX, T0 + 5_000).unwrap();
    assert_eq!(info.cleanable_bytes, 0);
    assert!(!info.should_clean());

    // A truncation below the checkpoint pulls it back, so what is appended again is dirty.
    log.truncate_to(20).unwrap();
    let text = std::fs::read_to_string(dir.path().join(CLEANER_OFFSET_CHECKPOINT)).unwrap();
    assert!(text.ends_with(" 20\n"), "{text:?}");
    log.truncate_to(19).unwrap();
    let leo = log.log_end_offset();
    assert!(leo <= 19);
    let text = std::fs::read_to_string(dir.path().join(CLEANER_OFFSET_CHECKPOINT)).unwrap();
    assert!(
        text.ends_with(&format!(" {leo}\n")),
        "{text:?} (log end {leo})"
    );
}
