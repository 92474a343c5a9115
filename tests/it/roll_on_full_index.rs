//! `segment.index.bytes`: when the active segment's offset index or time index has no room
//! for another entry, the log rolls, though the segment is far from `segment.bytes`; every
//! record stays findable by offset and by time, before and after a reopen.

use crate::common::logs;

use logs::{batch, file_len, offsets_from, segment_file, span, T0};
use streamlog::{Log, LogConfig};

/// 96 bytes: room for 12 offset entries or 8 time entries. An entry for every batch but a
/// segment's first.
fn config() -> LogConfig {
    LogConfig::builder()
        .segment_index_bytes(96)
        .index_interval_bytes(1)
        .segment_ms(None)
        .build()
        .unwrap()
}

/// Reads find every batch by offset; `time_lookup(b)` is a timestamp of batch `b` and the
/// offset `offset_for_timestamp` must answer for it.
fn check_lookups(log: &Log, batches: i64, per_batch: i64, time_lookup: impl Fn(i64) -> (i64, i64)) {
    assert_eq!(offsets_from(log, 0), span(0, batches * per_batch));
    for b in 0..batches {
        let first = b * per_batch;
        for offset in [first, first + per_batch - 1] {
            let data = log.read(offset, 1, None).unwrap();
            assert_eq!(data.first_batch_offset, Some(first), "offset {offset}");
            assert_eq!(data.next_offset, first + per_batch);
        }
    }
    for b in 0..batches {
        let (timestamp, expected) = time_lookup(b);
        let found = log.offset_for_timestamp(timestamp).unwrap();
        assert_eq!(found, Some((expected, timestamp)), "batch {b}");
    }
}

#[test]
fn full_offset_index_rolls() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), config()).unwrap();
    // One timestamp throughout: the time index gets one entry, the offset index fills.
    for _ in 0..30 {
        log.append(&batch(2, T0)).unwrap();
    }
    // 13 batches a segment: the first unindexed, then 12 entries fill the index.
    assert_eq!(log.segment_base_offsets(), vec![0, 26, 52]);
    for base in [0, 26] {
        assert_eq!(file_len(&segment_file(dir.path(), base, "index")), 96);
        assert_eq!(file_len(&segment_file(dir.path(), base, "timeindex")), 12);
    }
    check_lookups(&log, 30, 2, |_| (T0, 0));
    log.close().unwrap();
    let log = Log::open(dir.path(), config()).unwrap();
    check_lookups(&log, 30, 2, |_| (T0, 0));
    for _ in 30..40 {
        log.append(&batch(2, T0)).unwrap();
    }
    assert_eq!(log.segment_base_offsets(), vec![0, 26, 52, 78]);
    check_lookups(&log, 40, 2, |_| (T0, 0));
}

#[test]
fn full_time_index_rolls() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), config()).unwrap();
    // Growing timestamps: every index point adds a time entry too, and the time index
    // (8 slots) fills before the offset index (12 slots).
    for i in 0..30 {
        log.append(&batch(2, T0 + i)).unwrap();
    }
    let bases = log.segment_base_offsets();
    assert!(bases.len() >= 3, "{bases:?}");
    for &base in &bases[..bases.len() - 1] {
        let index = file_len(&segment_file(dir.path(), base, "index"));
        let time = file_len(&segment_file(dir.path(), base, "timeindex"));
        assert!(index < 96, "offset index of {base} is full: {index}");
        assert!(
            (96 - 2 * 12..=96).contains(&time),
            "time index of {base}: {time}"
        );
        assert_eq!(time % 12, 0);
    }
    check_lookups(&log, 30, 2, |b| (T0 + b, 2 * b));
    drop(log);
    let log = Log::open(dir.path(), config()).unwrap();
    check_lookups(&log, 30, 2, |b| (T0 + b, 2 * b));
}
