//! A read with `max_bytes` smaller than the first batch still returns that whole batch (as
//! Kafka does, so a consumer with a small fetch size can always make progress); further
//! batches are only added while they fit.

use crate::common::logs;

use logs::{batch, batch_ranges, fetched, T0};
use streamlog::{Log, LogConfig};

#[test]
fn returns_the_whole_first_batch_whatever_max_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    let big = batch(100, T0);
    let small = batch(2, T0);
    log.append(&big).unwrap(); // 0..=99
    log.append(&small).unwrap(); // 100..=101
    log.append(&small).unwrap(); // 102..=103
    let (big_len, small_len) = (big.len(), small.len());

    for max_bytes in [0, 1, 61, big_len - 1, big_len] {
        let data = log.read(0, max_bytes, None).unwrap();
        let slice = data.slice.as_ref().unwrap();
        assert_eq!(slice.len(), big_len as u64, "max_bytes {max_bytes}");
        assert_eq!(batch_ranges(&fetched(&data)), vec![(0, 99)]);
        assert_eq!(data.next_offset, 100);
    }
    // From inside the batch: still the whole batch, from its base.
    let data = log.read(57, 1, None).unwrap();
    assert_eq!(data.first_batch_offset, Some(0));
    assert_eq!(batch_ranges(&fetched(&data)), vec![(0, 99)]);

    // Following batches only while they fit.
    let data = log.read(0, big_len + small_len - 1, None).unwrap();
    assert_eq!(batch_ranges(&fetched(&data)), vec![(0, 99)]);
    let data = log.read(0, big_len + small_len, None).unwrap();
    assert_eq!(batch_ranges(&fetched(&data)), vec![(0, 99), (100, 101)]);
    assert_eq!(data.next_offset, 102);
    let data = log.read(0, usize::MAX, None).unwrap();
    assert_eq!(
        batch_ranges(&fetched(&data)),
        vec![(0, 99), (100, 101), (102, 103)]
    );

    // read_bytes agrees.
    let first = log.read_bytes(0, 1, None).unwrap();
    assert_eq!(first.len(), big_len);
    assert_eq!(batch_ranges(&first), vec![(0, 99)]);
    let tail = log.read_bytes(101, 0, None).unwrap();
    assert_eq!(batch_ranges(&tail), vec![(100, 101)]);
}
