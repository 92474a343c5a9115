//! `upper_bound` (a high watermark or last stable offset) limits reads to batches whose last
//! offset is below it: a batch straddling the bound is withheld whole, never cut.

use crate::common::logs;

use logs::{batch, batch_ranges, fetched, T0};
use streamlog::{Log, LogConfig};

fn log_of_three_batches(dir: &std::path::Path) -> Log {
    let log = Log::open(dir, LogConfig::default()).unwrap();
    for i in 0..3 {
        log.append(&batch(5, T0 + i)).unwrap(); // [0,4] [5,9] [10,14]
    }
    log
}

/// (offset, upper bound, batches returned, next offset)
type Case = (i64, i64, &'static [(i64, i64)], i64);

#[test]
fn read_stops_before_the_batch_holding_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_of_three_batches(dir.path());
    let cases: &[Case] = &[
        // (offset, bound, batches, next_offset)
        (0, 15, &[(0, 4), (5, 9), (10, 14)], 15),
        (0, 14, &[(0, 4), (5, 9)], 10),
        (0, 10, &[(0, 4), (5, 9)], 10),
        (0, 6, &[(0, 4)], 5),
        (0, 5, &[(0, 4)], 5),
        (0, 4, &[], 0),
        (0, 0, &[], 0),
        (7, 10, &[(5, 9)], 10),
        (7, 9, &[], 7),
        (10, 10, &[], 10),
        (12, 10, &[], 12),
        // A bound past the end is the end.
        (0, 1000, &[(0, 4), (5, 9), (10, 14)], 15),
    ];
    for &(offset, bound, batches, next) in cases {
        let data = log.read(offset, 1 << 20, Some(bound)).unwrap();
        assert_eq!(
            batch_ranges(&fetched(&data)),
            batches,
            "read({offset}, bound {bound})"
        );
        assert_eq!(data.next_offset, next, "read({offset}, bound {bound})");
        assert_eq!(data.slice.is_none(), batches.is_empty());
        let bytes = log.read_bytes(offset, 1 << 20, Some(bound)).unwrap();
        assert_eq!(batch_ranges(&bytes), batches);
    }
}

#[test]
fn a_bound_does_not_override_at_least_one_batch_or_the_other_way_round() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_of_three_batches(dir.path());
    // max_bytes 1 still returns one batch under the bound...
    let data = log.read(0, 1, Some(15)).unwrap();
    assert_eq!(batch_ranges(&fetched(&data)), vec![(0, 4)]);
    // ...but not one that reaches the bound.
    let data = log.read(0, 1, Some(3)).unwrap();
    assert!(data.slice.is_none());
}

#[test]
fn records_between_honours_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_of_three_batches(dir.path());
    let offsets = |from, bound| -> Vec<i64> {
        log.records_between(from, Some(bound))
            .map(|r| r.unwrap().offset())
            .collect()
    };
    assert_eq!(offsets(0, 12), (0..10).collect::<Vec<_>>());
    assert_eq!(offsets(3, 10), (3..10).collect::<Vec<_>>());
    assert_eq!(offsets(0, 4), Vec::<i64>::new());
    assert_eq!(offsets(0, 15), (0..15).collect::<Vec<_>>());
}
