//! Offsets the log does not hold (below the log start offset, or past the log end offset)
//! are `Error::OffsetOutOfRange`, carrying the offset asked for and the range the log holds,
//! from every read path.

use crate::common::logs;

use logs::{fill, small_segments};
use streamlog::{Error, Log};

fn expect_out_of_range<T: std::fmt::Debug>(
    r: streamlog::Result<T>,
    offset: i64,
    start: i64,
    end: i64,
) {
    match r {
        Err(Error::OffsetOutOfRange {
            offset: o,
            log_start_offset,
            log_end_offset,
        }) => assert_eq!(
            (o, log_start_offset, log_end_offset),
            (offset, start, end),
            "offset {offset}"
        ),
        other => panic!("offset {offset}: expected OffsetOutOfRange, got {other:?}"),
    }
}

#[test]
fn below_start_and_past_end_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small_segments(1024)).unwrap();
    fill(&log, 20, 5);
    let end = log.log_end_offset();
    assert_eq!(end, 100);
    log.delete_records_before(42).unwrap();
    let start = log.log_start_offset();
    assert_eq!(start, 42);

    for offset in [-1, 0, 41, end + 1, end + 1000, i64::MAX] {
        expect_out_of_range(log.read(offset, 1 << 20, None), offset, start, end);
        expect_out_of_range(log.read(offset, 1 << 20, Some(end)), offset, start, end);
        expect_out_of_range(log.read_bytes(offset, 1, None), offset, start, end);
        let mut records = log.records_from(offset);
        expect_out_of_range(records.next().unwrap(), offset, start, end);
        assert!(records.next().is_none(), "iteration stops after the error");
    }
    // The edges are in range.
    assert!(log.read(start, 1, None).unwrap().slice.is_some());
    assert!(log.read(end, 1, None).unwrap().slice.is_none());
    expect_out_of_range(log.delete_records_before(end + 1), end + 1, start, end);
}

#[test]
fn empty_log_holds_nothing_but_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small_segments(1024)).unwrap();
    expect_out_of_range(log.read(1, 1, None), 1, 0, 0);
    expect_out_of_range(log.read(-1, 1, None), -1, 0, 0);
    assert!(log.read(0, 1, None).unwrap().slice.is_none());
}
