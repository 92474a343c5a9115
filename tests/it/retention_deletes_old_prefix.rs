//! `delete_retention_breached` deletes a prefix of sealed segments by time (`retention.ms`),
//! by size (`retention.bytes`) and below the log start offset, never the active segment;
//! the new log start offset is checkpointed and survives clean and unclean reopens; a
//! compact-only policy deletes only below the log start offset.

use crate::common::logs;

use logs::{batch, offsets_from, segment_file, small_segments, span, T0};
use streamlog::{CleanupPolicy, Error, Log, LogConfig, RetentionRule};

const MIN: i64 = 60_000;

/// A log with one 5-record batch per segment, stamped `stamps[i]`; the last stamp's batch
/// is in the active segment. Segments start at offsets 0, 5, 10, ...
fn log_of(dir: &std::path::Path, cfg: &LogConfig, stamps: &[i64]) -> Log {
    let log = Log::open(dir, cfg.clone()).unwrap();
    for (i, &t) in stamps.iter().enumerate() {
        if i > 0 {
            log.roll().unwrap();
        }
        log.append(&batch(5, t)).unwrap();
    }
    assert_eq!(
        log.segment_base_offsets(),
        (0..stamps.len() as i64).map(|i| i * 5).collect::<Vec<_>>()
    );
    log
}

fn config(retention_ms: Option<i64>, retention_bytes: Option<u64>) -> LogConfig {
    small_segments(1 << 20)
        .to_builder()
        .retention_ms(retention_ms)
        .retention_bytes(retention_bytes)
        .build()
        .unwrap()
}

fn segment_size() -> u64 {
    batch(5, T0).len() as u64
}

fn assert_gone(dir: &std::path::Path, base: i64) {
    for ext in ["log", "index", "timeindex"] {
        assert!(
            !segment_file(dir, base, ext).exists(),
            "{base}.{ext} still there"
        );
    }
}

#[test]
fn by_time_deletes_expired_segments_and_stops_at_the_first_kept() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(Some(10 * MIN), None);
    // Segment 15 is old again, but segment 10 (recent) stops the pass before it.
    let log = log_of(
        dir.path(),
        &cfg,
        &[T0, T0 + MIN, T0 + 20 * MIN, T0, T0 + 25 * MIN],
    );
    let now = T0 + 21 * MIN;

    let out = log.delete_retention_breached(now).unwrap();
    assert_eq!((out.segments_deleted, out.by_time, out.by_size), (2, 2, 0));
    assert_eq!(out.bytes_freed, 2 * segment_size());
    assert_eq!(out.log_start_offset, 10);
    assert_eq!(out.rules_fired().collect::<Vec<_>>(), [RetentionRule::Time]);
    assert_eq!(log.segment_base_offsets(), vec![10, 15, 20]);
    assert_gone(dir.path(), 0);
    assert_gone(dir.path(), 5);
    assert_eq!(log.log_start_offset(), 10);
    assert_eq!(offsets_from(&log, 10), span(10, 25));
    assert!(matches!(
        log.read(9, 1, None),
        Err(Error::OffsetOutOfRange {
            log_start_offset: 10,
            ..
        })
    ));

    // Exactly at the limit is not past it (Kafka: now - largest > retention.ms).
    let again = log.delete_retention_breached(T0 + 30 * MIN).unwrap();
    assert_eq!(again.segments_deleted, 0);
    let out = log.delete_retention_breached(T0 + 30 * MIN + 1).unwrap();
    assert_eq!((out.segments_deleted, out.log_start_offset), (2, 20));
}

#[test]
fn the_active_segment_is_never_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(Some(MIN), Some(1));
    let log = log_of(dir.path(), &cfg, &[T0, T0, T0]);
    let out = log.delete_retention_breached(T0 + 100 * MIN).unwrap();
    assert_eq!(out.segments_deleted, 2);
    assert_eq!(log.segment_base_offsets(), vec![10]);
    assert_eq!(offsets_from(&log, 10), span(10, 15));
    // Nothing more to delete, however old and however large.
    let out = log.delete_retention_breached(T0 + 1000 * MIN).unwrap();
    assert_eq!(out.segments_deleted, 0);
    assert_eq!(log.log_end_offset(), 15);
    assert_eq!(log.append(&batch(1, T0)).unwrap().first_offset, 15);
}

#[test]
fn by_size_deletes_oldest_while_what_remains_stays_at_or_above_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let s = segment_size();
    // Five segments of `s` bytes; a limit of 2.5 s leaves three (3 s >= 2.5 s; 2 s would not).
    let cfg = config(None, Some(s * 5 / 2));
    let log = log_of(dir.path(), &cfg, &[T0; 5]);
    let out = log.delete_retention_breached(T0 + 1000 * MIN).unwrap();
    assert_eq!((out.segments_deleted, out.by_size, out.by_time), (2, 2, 0));
    assert_eq!(out.bytes_freed, 2 * s);
    assert_eq!(log.segment_base_offsets(), vec![10, 15, 20]);
    assert_eq!(log.size_in_bytes(), 3 * s);
    // A limit exactly the size deletes nothing.
    let cfg = config(None, Some(3 * s));
    drop(log);
    let log = Log::open(dir.path(), cfg).unwrap();
    assert_eq!(
        log.delete_retention_breached(T0).unwrap().segments_deleted,
        0
    );
}

#[test]
fn time_and_size_together_delete_what_either_would() {
    let dir = tempfile::tempdir().unwrap();
    let s = segment_size();
    // Size alone would delete one segment (limit 3.5 s of 5 s); time alone two.
    let cfg = config(Some(10 * MIN), Some(s * 7 / 2));
    let log = log_of(
        dir.path(),
        &cfg,
        &[
            T0 + 20 * MIN,
            T0,
            T0 + 25 * MIN,
            T0 + 25 * MIN,
            T0 + 25 * MIN,
        ],
    );
    let out = log.delete_retention_breached(T0 + 26 * MIN).unwrap();
    // Segment 0 goes by size, segment 5 by time; segment 10 is recent and the size is met.
    assert_eq!((out.by_size, out.by_time, out.segments_deleted), (1, 1, 2));
    assert_eq!(
        out.rules_fired().collect::<Vec<_>>(),
        [RetentionRule::Size, RetentionRule::Time]
    );
    assert_eq!(log.segment_base_offsets(), vec![10, 15, 20]);
}

#[test]
fn unlimited_and_compact_policies_delete_nothing_by_time_or_size() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_of(dir.path(), &config(None, None), &[T0, T0, T0]);
    assert_eq!(
        log.delete_retention_breached(i64::MAX)
            .unwrap()
            .segments_deleted,
        0
    );
    drop(log);
    let cfg = config(Some(MIN), Some(1))
        .to_builder()
        .cleanup_policy(CleanupPolicy::Compact)
        .build()
        .unwrap();
    let log = Log::open(dir.path(), cfg).unwrap();
    let out = log.delete_retention_breached(T0 + 100 * MIN).unwrap();
    assert_eq!(out.segments_deleted, 0);
    assert_eq!(log.segment_base_offsets(), vec![0, 5, 10]);
}

#[test]
fn log_start_offset_rule_deletes_segments_left_below_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(Some(MIN), None)
        .to_builder()
        .cleanup_policy(CleanupPolicy::Compact)
        .build()
        .unwrap();
    let log = log_of(dir.path(), &cfg, &[T0, T0, T0, T0]);
    log.close().unwrap();
    // As a crash between the checkpoint and the removals leaves it: the start at 12, the
    // segments below it still on disk.
    std::fs::write(
        dir.path().join("log-start-offset-checkpoint"),
        format!(
            "0\n1\n{} 0 12\n",
            dir.path().file_name().unwrap().to_str().unwrap()
        ),
    )
    .unwrap();
    let log = Log::open(dir.path(), cfg).unwrap();
    assert_eq!(log.log_start_offset(), 12);
    assert_eq!(log.segment_base_offsets(), vec![0, 5, 10, 15]);
    let out = log.delete_retention_breached(T0).unwrap();
    assert_eq!((out.by_log_start_offset, out.segments_deleted), (2, 2));
    assert_eq!(
        out.rules_fired().collect::<Vec<_>>(),
        [RetentionRule::LogStartOffset]
    );
    assert_eq!(out.log_start_offset, 12);
    assert_eq!(log.segment_base_offsets(), vec![10, 15]);
    assert_eq!(offsets_from(&log, 12), span(12, 20));
}

#[test]
fn the_new_start_survives_clean_and_unclean_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(Some(MIN), None);
    let log = log_of(dir.path(), &cfg, &[T0, T0, T0 + 10 * MIN, T0 + 10 * MIN]);
    let out = log.delete_retention_breached(T0 + 10 * MIN).unwrap();
    assert_eq!(out.log_start_offset, 10);
    log.close().unwrap();

    let log = Log::open(dir.path(), cfg.clone()).unwrap();
    assert_eq!(log.log_start_offset(), 10);
    assert_eq!(log.segment_base_offsets(), vec![10, 15]);
    assert_eq!(offsets_from(&log, 10), span(10, 20));
    let info = log.segments_info().unwrap();
    assert_eq!(info.len(), 2);
    assert_eq!(
        (info[0].base_offset, info[0].end_offset, info[0].is_active),
        (10, 15, false)
    );
    assert_eq!(info[0].largest_timestamp, T0 + 10 * MIN);
    assert_eq!(info[0].size_bytes, segment_size());
    assert!(info[1].is_active);
    assert_eq!(info[1].end_offset, 20);

    // Retention again, then a crash (no close): the start still holds.
    let out = log.delete_retention_breached(T0 + 20 * MIN).unwrap();
    assert_eq!(out.log_start_offset, 15);
    drop(log);
    let log = Log::open(dir.path(), cfg).unwrap();
    assert_eq!(log.log_start_offset(), 15);
    assert_eq!(log.segment_base_offsets(), vec![15]);
    assert_eq!(offsets_from(&log, 15), span(15, 20));
    assert_eq!(log.append(&batch(1, T0)).unwrap().first_offset, 20);
}

#[test]
fn no_segment_reaching_the_high_watermark_is_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_of(dir.path(), &config(Some(MIN), Some(1)), &[T0, T0, T0, T0]);
    // Segment 5 ends at 10: deleting it would put the start past a high watermark of 9.
    let out = log
        .delete_retention_breached_below(T0 + 100 * MIN, Some(9))
        .unwrap();
    assert_eq!((out.segments_deleted, out.log_start_offset), (1, 5));
    let out = log
        .delete_retention_breached_below(T0 + 100 * MIN, Some(10))
        .unwrap();
    assert_eq!((out.segments_deleted, out.log_start_offset), (1, 10));
    assert_eq!(log.segment_base_offsets(), vec![10, 15]);
}
