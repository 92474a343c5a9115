//! Index entries store offsets relative to the segment's base in 32 bits, so a replicated
//! batch whose last offset lies more than `i32::MAX` above the active segment's base starts
//! a new segment; up to exactly `i32::MAX` it fits. The new segment starts at the log end
//! offset, so consecutive segments meet exactly; only a gap wider than that range names the
//! new segment after the batch's base offset.

use crate::common::logs;

use logs::{batch_ranges, fetched, replica_batch, segment_file, T0};
use streamlog::{Log, LogConfig};

const MAX_REL: i64 = i32::MAX as i64;

fn offsets(log: &Log) -> Vec<i64> {
    offsets_from(log, log.log_start_offset())
}

fn offsets_from(log: &Log, from: i64) -> Vec<i64> {
    log.records_from(from)
        .map(|r| r.unwrap().offset())
        .collect()
}

#[test]
fn batch_past_i32_range_rolls_at_the_log_end() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    log.append_replicated(&replica_batch(0, 3, 1, T0)).unwrap();
    // Its last offset is out of reach of base 0, within reach of the log end (3).
    let far = MAX_REL + 1;
    log.append_replicated(&replica_batch(far, 3, 1, T0))
        .unwrap();
    assert_eq!(log.segment_base_offsets(), vec![0, 3]);
    assert_eq!(log.log_end_offset(), far + 3);
    assert!(segment_file(dir.path(), 3, "log").exists());
    assert_eq!(offsets(&log), vec![0, 1, 2, far, far + 1, far + 2]);

    // A read in the gap finds the next batch, in the next segment.
    let data = log.read(3, 1 << 20, None).unwrap();
    assert_eq!(data.first_batch_offset, Some(far));
    assert_eq!(batch_ranges(&fetched(&data)), vec![(far, far + 2)]);

    log.close().unwrap();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(log.segment_base_offsets(), vec![0, 3]);
    assert_eq!(log.log_end_offset(), far + 3);
    let info = log
        .append_replicated(&replica_batch(far + 3, 1, 1, T0))
        .unwrap();
    assert_eq!(info.first_offset, far + 3);
    assert_eq!(offsets(&log), vec![0, 1, 2, far, far + 1, far + 2, far + 3]);
}

#[test]
fn gap_wider_than_i32_names_the_segment_after_the_batch() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    log.append_replicated(&replica_batch(0, 3, 1, T0)).unwrap();
    let huge = 3 + MAX_REL + 10; // out of reach of the log end as well
    log.append_replicated(&replica_batch(huge, 3, 1, T0))
        .unwrap();
    assert_eq!(log.segment_base_offsets(), vec![0, huge]);
    assert!(segment_file(dir.path(), huge, "log").exists());
    let expected = vec![0, 1, 2, huge, huge + 1, huge + 2];
    assert_eq!(offsets(&log), expected);
    let data = log.read(3, 1 << 20, None).unwrap();
    assert_eq!(batch_ranges(&fetched(&data)), vec![(huge, huge + 2)]);

    // Clean and unclean reopens keep the gap and both segments.
    log.close().unwrap();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(log.segment_base_offsets(), vec![0, huge]);
    assert_eq!(offsets(&log), expected);
    drop(log);
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(log.segment_base_offsets(), vec![0, huge]);
    assert_eq!(log.log_end_offset(), huge + 3);
    assert_eq!(offsets(&log), expected);
}

#[test]
fn empty_log_with_a_gap_wider_than_i32() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    let huge = MAX_REL + 5;
    log.append_replicated(&replica_batch(huge, 2, 1, T0))
        .unwrap();
    // The empty first segment cannot index the batch and is replaced by one named after it.
    assert_eq!(log.segment_base_offsets(), vec![huge]);
    // Reads from anywhere in the log find the batch rather than nothing.
    for from in [log.log_start_offset(), huge - 1, huge] {
        assert_eq!(
            offsets_from(&log, from),
            vec![huge, huge + 1],
            "from {from}"
        );
        let data = log.read(from, 1, None).unwrap();
        assert_eq!(batch_ranges(&fetched(&data)), vec![(huge, huge + 1)]);
    }
    drop(log);
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(log.log_end_offset(), huge + 2);
    assert_eq!(offsets(&log), vec![huge, huge + 1]);
}

#[test]
fn last_offset_exactly_i32_max_above_base_stays() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    log.append_replicated(&replica_batch(0, 2, 1, T0)).unwrap();
    // Last offset MAX_REL: relative offset i32::MAX still fits.
    log.append_replicated(&replica_batch(MAX_REL - 2, 3, 1, T0))
        .unwrap();
    assert_eq!(log.segment_base_offsets(), vec![0]);
    // One more offset does not.
    log.append_replicated(&replica_batch(MAX_REL + 1, 1, 1, T0))
        .unwrap();
    assert_eq!(log.segment_base_offsets(), vec![0, MAX_REL + 1]);
    assert_eq!(
        offsets(&log),
        vec![0, 1, MAX_REL - 2, MAX_REL - 1, MAX_REL, MAX_REL + 1]
    );
    // The tail is recovered from the files as it was written.
    drop(log);
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(log.segment_base_offsets(), vec![0, MAX_REL + 1]);
    assert_eq!(log.log_end_offset(), MAX_REL + 2);
    assert_eq!(
        offsets(&log),
        vec![0, 1, MAX_REL - 2, MAX_REL - 1, MAX_REL, MAX_REL + 1]
    );
}

#[test]
fn one_call_with_batches_on_both_sides_of_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    let mut bytes = replica_batch(10, 2, 4, T0);
    bytes.extend(replica_batch(20, 2, 4, T0));
    bytes.extend(replica_batch(20 + MAX_REL, 2, 4, T0));
    log.append_replicated(&bytes).unwrap();
    // The first two fit the empty first segment (base 0); the third rolls at the end (22).
    assert_eq!(log.segment_base_offsets(), vec![0, 22]);
    assert_eq!(
        offsets(&log),
        vec![10, 11, 20, 21, 20 + MAX_REL, 21 + MAX_REL]
    );
}
