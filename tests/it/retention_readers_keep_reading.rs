//! Readers racing with retention never see a torn or foreign batch: a read either returns
//! whole batches of the log or says the offset is now below the log start offset, and a
//! file range handed out before the segment was deleted can still be read in full.

use crate::common::logs;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use logs::{batch, batch_ranges, fetched, small_segments, T0};
use streamlog::{Error, Log};

#[test]
fn a_slice_from_a_deleted_segment_stays_readable() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = small_segments(1 << 20)
        .to_builder()
        .retention_ms(Some(1))
        .build()
        .unwrap();
    let log = Log::open(dir.path(), cfg).unwrap();
    log.append(&batch(5, T0)).unwrap();
    log.roll().unwrap();
    log.append(&batch(5, T0 + 10)).unwrap();
    let data = log.read(0, 1 << 20, None).unwrap();
    let before = fetched(&data);
    assert_eq!(batch_ranges(&before), [(0, 4)]);
    assert_eq!(
        log.delete_retention_breached(T0 + 10)
            .unwrap()
            .segments_deleted,
        1
    );
    assert_eq!(fetched(&data), before);
    assert!(matches!(
        log.read(0, 1, None),
        Err(Error::OffsetOutOfRange {
            log_start_offset: 5,
            ..
        })
    ));
}

#[test]
fn concurrent_readers_see_whole_batches_or_out_of_range() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = small_segments(batch(5, T0).len() as u64 * 2)
        .to_builder()
        .retention_ms(Some(0))
        .build()
        .unwrap();
    let log = Arc::new(Log::open(dir.path(), cfg).unwrap());
    // 200 batches of 5 records, two a segment, stamped T0 + batch number.
    for b in 0..200 {
        log.append(&batch(5, T0 + b)).unwrap();
    }
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|r| {
            let log = Arc::clone(&log);
            let done = Arc::clone(&done);
            std::thread::spawn(move || {
                let mut reads = 0u64;
                while !done.load(Ordering::Acquire) || reads < 50 {
                    // Read from just at or just below the current start.
                    let offset = (log.log_start_offset() - r).max(0);
                    match log.read_bytes(offset, 64 << 10, None) {
                        Ok(bytes) => {
                            let ranges = batch_ranges(&bytes);
                            assert!(!ranges.is_empty() || offset == log.log_end_offset());
                            for w in ranges.windows(2) {
                                assert_eq!(w[0].1 + 1, w[1].0, "contiguous batches");
                            }
                        }
                        Err(Error::OffsetOutOfRange { .. }) => {}
                        Err(e) => panic!("read at {offset}: {e}"),
                    }
                    for rec in log.records_from(log.log_start_offset()).take(20) {
                        match rec {
                            Ok(_) | Err(Error::OffsetOutOfRange { .. }) => {}
                            Err(e) => panic!("records: {e}"),
                        }
                    }
                    reads += 1;
                }
            })
        })
        .collect();
    // Retention walks the clock forward one batch at a time.
    for b in 0..200 {
        log.delete_retention_breached(T0 + b).unwrap();
    }
    done.store(true, Ordering::Release);
    for r in readers {
        r.join().unwrap();
    }
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log.log_start_offset(), 990);
}
