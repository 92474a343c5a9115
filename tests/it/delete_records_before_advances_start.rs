//! `delete_records_before` (Kafka's DeleteRecords) moves the log start offset up, deletes
//! the segments wholly below it with their files, never deletes the active segment, and the
//! new start survives a clean or unclean reopen.

use crate::common::logs;

use logs::{batch, offsets_from, segment_file, segment_files, small_segments, span, T0};
use streamlog::{Error, Log, LogConfig};

/// 20 batches of 5 records (offsets 0..100), four batches a segment.
fn setup(dir: &std::path::Path) -> (Log, LogConfig) {
    let size = batch(5, T0).len() as u64;
    let cfg = small_segments(size * 4);
    let log = Log::open(dir, cfg.clone()).unwrap();
    for b in 0..20 {
        log.append(&batch(5, T0 + b)).unwrap();
    }
    assert_eq!(log.segment_base_offsets(), vec![0, 20, 40, 60, 80]);
    (log, cfg)
}

fn check_start(log: &Log, start: i64, end: i64) {
    assert_eq!(log.log_start_offset(), start);
    assert_eq!(log.log_end_offset(), end);
    assert_eq!(offsets_from(log, start), span(start, end));
    if start > 0 {
        assert!(matches!(
            log.read(start - 1, 1, None),
            Err(Error::OffsetOutOfRange { log_start_offset, .. }) if log_start_offset == start
        ));
    }
}

#[test]
fn deletes_segments_wholly_below_and_persists() {
    let dir = tempfile::tempdir().unwrap();
    let (log, cfg) = setup(dir.path());
    log.delete_records_before(47).unwrap();
    // Segment 40 holds 47, so it stays; 0 and 20 go with their files.
    assert_eq!(log.segment_base_offsets(), vec![40, 60, 80]);
    for base in [0, 20] {
        for ext in ["log", "index", "timeindex"] {
            assert!(
                !segment_file(dir.path(), base, ext).exists(),
                "{base}.{ext}"
            );
        }
    }
    check_start(&log, 47, 100);
    // A read at the start returns the batch holding it; records start exactly there.
    let data = log.read(47, 1, None).unwrap();
    assert_eq!(data.first_batch_offset, Some(45));
    assert_eq!(offsets_from(&log, 47).first(), Some(&47));
    // Time lookups do not answer with deleted offsets.
    assert_eq!(log.offset_for_timestamp(T0).unwrap(), Some((47, T0 + 9)));

    // Lower or equal requests change nothing.
    log.delete_records_before(10).unwrap();
    log.delete_records_before(47).unwrap();
    check_start(&log, 47, 100);

    log.close().unwrap();
    let log = Log::open(dir.path(), cfg.clone()).unwrap();
    check_start(&log, 47, 100);
    assert_eq!(log.segment_base_offsets(), vec![40, 60, 80]);
    log.delete_records_before(61).unwrap();
    assert_eq!(log.segment_base_offsets(), vec![60, 80]);
    drop(log);
    let log = Log::open(dir.path(), cfg).unwrap();
    check_start(&log, 61, 100);
    let info = log.append(&batch(1, T0)).unwrap();
    assert_eq!(info.first_offset, 100);
}

#[test]
fn up_to_the_end_keeps_only_the_active_segment() {
    let dir = tempfile::tempdir().unwrap();
    let (log, cfg) = setup(dir.path());
    log.delete_records_before(100).unwrap();
    assert_eq!(log.segment_base_offsets(), vec![80]);
    assert_eq!(segment_files(dir.path(), "log").len(), 1);
    check_start(&log, 100, 100);
    assert!(log.read(100, 1, None).unwrap().slice.is_none());
    assert_eq!(log.offset_for_timestamp(T0).unwrap(), None);
    let info = log.append(&batch(2, T0 + 50)).unwrap();
    assert_eq!(info.first_offset, 100);
    check_start(&log, 100, 102);
    log.close().unwrap();
    let log = Log::open(dir.path(), cfg).unwrap();
    check_start(&log, 100, 102);
}

#[test]
fn after_a_roll_the_empty_active_segment_stays() {
    let dir = tempfile::tempdir().unwrap();
    let (log, cfg) = setup(dir.path());
    log.roll().unwrap();
    assert_eq!(log.segment_base_offsets(), vec![0, 20, 40, 60, 80, 100]);
    log.delete_records_before(100).unwrap();
    assert_eq!(log.segment_base_offsets(), vec![100]);
    check_start(&log, 100, 100);
    drop(log);
    let log = Log::open(dir.path(), cfg).unwrap();
    check_start(&log, 100, 100);
    assert_eq!(log.segment_base_offsets(), vec![100]);
}

#[test]
fn past_the_end_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = setup(dir.path());
    for offset in [101, -1] {
        assert!(matches!(
            log.delete_records_before(offset),
            Err(Error::OffsetOutOfRange { offset: o, log_start_offset: 0, log_end_offset: 100 }) if o == offset
        ));
    }
    check_start(&log, 0, 100);
    assert_eq!(log.segment_count(), 5);
}

#[test]
fn time_lookups_skip_records_below_the_start() {
    use streamlog::{Compression, OwnedRecord};
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    let rec = |ts| OwnedRecord::new(ts, None, Some(b"v"));
    // Offsets 0..=2: the batch's late record is its first.
    log.append_records(&[rec(T0 + 100), rec(T0), rec(T0)], Compression::None)
        .unwrap();
    // Offsets 3..=4.
    log.append_records(&[rec(T0 + 60), rec(T0 + 60)], Compression::None)
        .unwrap();
    assert_eq!(
        log.offset_for_timestamp(T0 + 50).unwrap(),
        Some((0, T0 + 100))
    );
    log.delete_records_before(1).unwrap();
    // The first batch still qualifies by its max timestamp, but its late record is gone:
    // the answer is in the next batch.
    assert_eq!(
        log.offset_for_timestamp(T0 + 50).unwrap(),
        Some((3, T0 + 60))
    );
    assert_eq!(log.offset_for_timestamp(T0).unwrap(), Some((1, T0)));
    assert_eq!(log.offset_for_timestamp(T0 + 61).unwrap(), None);
}
