//! `truncate_to` drops everything from an offset on, cutting at the batch that holds it:
//! segments above it go with their files, the segment holding it is cut back and becomes
//! the active one, appends continue from the new end, time lookups forget the dropped
//! batches, and a reopen (clean or not) sees the same log.

use crate::common::logs;

use logs::{batch, offsets_from, segment_files, small_segments, span, T0};
use streamlog::{Log, LogConfig};

const PER_BATCH: i64 = 5;

/// 20 batches of 5 records (offsets 0..100), batch `b` stamped `T0 + b`, several segments.
fn setup(dir: &std::path::Path) -> (Log, LogConfig) {
    let size = batch(PER_BATCH as usize, T0).len() as u64;
    let cfg = small_segments(size * 4); // four batches (20 offsets) a segment
    let log = Log::open(dir, cfg.clone()).unwrap();
    for b in 0..20 {
        log.append(&batch(PER_BATCH as usize, T0 + b)).unwrap();
    }
    assert_eq!(log.segment_base_offsets(), vec![0, 20, 40, 60, 80]);
    (log, cfg)
}

fn check(log: &Log, end: i64, bases: &[i64]) {
    assert_eq!(log.log_end_offset(), end);
    assert_eq!(log.segment_base_offsets(), bases);
    assert_eq!(offsets_from(log, 0), span(0, end));
    for b in 0..20 {
        let first = b * PER_BATCH;
        let found = log.offset_for_timestamp(T0 + b).unwrap();
        if first < end {
            assert_eq!(found, Some((first, T0 + b)), "timestamp of batch {b}");
        } else {
            assert_eq!(found, None, "timestamp of dropped batch {b}");
        }
    }
}

/// Appends after the truncation, then checks the log, a clean reopen and an unclean one.
fn continue_and_reopen(log: Log, cfg: &LogConfig, dir: &std::path::Path, end: i64, bases: &[i64]) {
    check(&log, end, bases);
    assert_eq!(
        segment_files(dir, "log").len(),
        bases.len(),
        "dropped segments' files are gone"
    );
    let info = log.append(&batch(2, T0 + 100)).unwrap();
    assert_eq!(info.first_offset, end);
    let end = end + 2;
    assert_eq!(offsets_from(&log, 0), span(0, end));
    assert_eq!(
        log.offset_for_timestamp(T0 + 100).unwrap(),
        Some((end - 2, T0 + 100))
    );
    log.close().unwrap();

    let log = Log::open(dir, cfg.clone()).unwrap();
    assert_eq!(log.log_end_offset(), end);
    assert_eq!(offsets_from(&log, 0), span(0, end));
    log.append(&batch(1, T0 + 101)).unwrap();
    drop(log);

    let log = Log::open(dir, cfg.clone()).unwrap();
    assert_eq!(log.log_end_offset(), end + 1);
    assert_eq!(offsets_from(&log, 0), span(0, end + 1));
    assert_eq!(
        log.offset_for_timestamp(T0 + 101).unwrap(),
        Some((end, T0 + 101))
    );
}

#[test]
fn mid_batch_in_the_active_segment() {
    let dir = tempfile::tempdir().unwrap();
    let (log, cfg) = setup(dir.path());
    log.truncate_to(87).unwrap(); // batch [85, 89] goes whole
    continue_and_reopen(log, &cfg, dir.path(), 85, &[0, 20, 40, 60, 80]);
}

#[test]
fn mid_batch_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let (log, cfg) = setup(dir.path());
    log.truncate_to(33).unwrap(); // drops segments 40.. and batch [30, 34]
    continue_and_reopen(log, &cfg, dir.path(), 30, &[0, 20]);
}

#[test]
fn at_a_segment_base() {
    let dir = tempfile::tempdir().unwrap();
    let (log, cfg) = setup(dir.path());
    log.truncate_to(40).unwrap();
    continue_and_reopen(log, &cfg, dir.path(), 40, &[0, 20]);
}

#[test]
fn after_a_clean_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (log, cfg) = setup(dir.path());
    log.close().unwrap();
    let log = Log::open(dir.path(), cfg.clone()).unwrap();
    log.truncate_to(51).unwrap();
    continue_and_reopen(log, &cfg, dir.path(), 50, &[0, 20, 40]);
}

#[test]
fn truncated_segment_keeps_filling_and_rolling() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = setup(dir.path());
    log.truncate_to(27).unwrap(); // segment 20 keeps one batch and is active again
    for b in 0..4 {
        log.append(&batch(PER_BATCH as usize, T0 + 200 + b))
            .unwrap();
    }
    // Three more batches fill segment 20 back to four; the fourth rolls.
    assert_eq!(log.segment_base_offsets(), vec![0, 20, 40]);
    assert_eq!(offsets_from(&log, 0), span(0, 45));
}

#[test]
fn at_or_past_the_end_is_a_no_op() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = setup(dir.path());
    log.truncate_to(100).unwrap();
    log.truncate_to(1000).unwrap();
    check(&log, 100, &[0, 20, 40, 60, 80]);
}

#[test]
fn at_or_below_the_log_start_empties_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let (log, cfg) = setup(dir.path());
    log.delete_records_before(30).unwrap();
    log.truncate_to(10).unwrap();
    assert_eq!(log.log_start_offset(), 10);
    assert_eq!(log.log_end_offset(), 10);
    assert_eq!(log.segment_base_offsets(), vec![10]);
    assert_eq!(log.records_from(10).count(), 0);
    assert_eq!(log.offset_for_timestamp(T0).unwrap(), None);
    let info = log.append(&batch(3, T0)).unwrap();
    assert_eq!(info.first_offset, 10);
    drop(log);
    let log = Log::open(dir.path(), cfg).unwrap();
    assert_eq!(log.log_start_offset(), 10);
    assert_eq!(log.log_end_offset(), 13);
    assert_eq!(offsets_from(&log, 10), span(10, 13));
}
