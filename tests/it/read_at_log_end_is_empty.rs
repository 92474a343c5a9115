//! Reading exactly at the log end offset is not an error: it returns no batches and
//! `next_offset` stays at the end, on an empty log, after appends, after a roll and after a
//! truncation.

use crate::common::logs;

use logs::{batch, T0};
use streamlog::{Log, LogConfig};

fn assert_empty_at_end(log: &Log) {
    let end = log.log_end_offset();
    for max_bytes in [0, 1, 1 << 20] {
        let data = log.read(end, max_bytes, None).unwrap();
        assert!(data.slice.is_none(), "read at the end {end} returned bytes");
        assert_eq!(data.first_batch_offset, None);
        assert_eq!(data.next_offset, end);
        assert_eq!(data.log_end_offset, end);
        assert!(log.read_bytes(end, max_bytes, None).unwrap().is_empty());
    }
    assert!(log
        .read(end, 1 << 20, Some(end + 10))
        .unwrap()
        .slice
        .is_none());
    assert_eq!(log.records_from(end).count(), 0);
}

#[test]
fn read_at_the_end_returns_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(log.log_end_offset(), 0);
    assert_empty_at_end(&log);

    log.append(&batch(3, T0)).unwrap();
    assert_eq!(log.log_end_offset(), 3);
    assert_empty_at_end(&log);

    log.roll().unwrap();
    assert_eq!(log.segment_base_offsets(), vec![0, 3]);
    assert_empty_at_end(&log);

    log.append(&batch(3, T0)).unwrap();
    log.append(&batch(3, T0)).unwrap();
    log.truncate_to(7).unwrap();
    assert_eq!(log.log_end_offset(), 6);
    assert_empty_at_end(&log);

    log.close().unwrap();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(log.log_end_offset(), 6);
    assert_empty_at_end(&log);
}
