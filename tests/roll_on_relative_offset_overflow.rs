//! Index entries store offsets relative to the segment's base in 32 bits, so a replicated
//! batch whose last offset lies more than `i32::MAX` above the active segment's base starts
//! a new segment (named after the batch's base offset); up to exactly `i32::MAX` it fits.

#[path = "common/logs.rs"]
mod logs;

use logs::{batch_ranges, fetched, replica_batch, segment_file, T0};
use streamlog::{Log, LogConfig};

const MAX_REL: i64 = i32::MAX as i64;

fn offsets(log: &Log) -> Vec<i64> {
    log.records_from(0).map(|r| r.unwrap().offset()).collect()
}

#[test]
fn batch_past_i32_range_starts_a_new_segment() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    log.append_replicated(&replica_batch(0, 3, 1, T0)).unwrap();
    let far = MAX_REL + 1; // its first record is already out of reach of base 0
    log.append_replicated(&replica_batch(far, 3, 1, T0))
        .unwrap();
    assert_eq!(log.segment_base_offsets(), vec![0, far]);
    assert_eq!(log.log_end_offset(), far + 3);
    assert!(segment_file(dir.path(), far, "log").exists());
    assert_eq!(offsets(&log), vec![0, 1, 2, far, far + 1, far + 2]);

    // A read in the gap finds the next batch, in the next segment.
    let data = log.read(3, 1 << 20, None).unwrap();
    assert_eq!(data.first_batch_offset, Some(far));
    assert_eq!(batch_ranges(&fetched(&data)), vec![(far, far + 2)]);

    log.close().unwrap();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(log.segment_base_offsets(), vec![0, far]);
    assert_eq!(log.log_end_offset(), far + 3);
    let info = log
        .append_replicated(&replica_batch(far + 3, 1, 1, T0))
        .unwrap();
    assert_eq!(info.first_offset, far + 3);
    assert_eq!(offsets(&log), vec![0, 1, 2, far, far + 1, far + 2, far + 3]);
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
    assert_eq!(log.segment_base_offsets(), vec![10, 20 + MAX_REL]);
    assert_eq!(
        offsets(&log),
        vec![10, 11, 20, 21, 20 + MAX_REL, 21 + MAX_REL]
    );
}
