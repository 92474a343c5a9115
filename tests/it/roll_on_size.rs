//! `segment.bytes`: the log rolls to a new segment before a batch that would take the active
//! segment past the limit, never after, and sealed segments keep trimmed indexes.

use crate::common::logs;

use logs::{batch, file_len, offsets_from, segment_file, segment_files, span, T0};
use streamlog::{Log, LogConfig};

fn config(segment_bytes: u64) -> LogConfig {
    LogConfig::builder()
        .segment_bytes(segment_bytes)
        .segment_ms(None)
        .build()
        .unwrap()
}

#[test]
fn rolls_before_the_batch_that_would_overflow() {
    let dir = tempfile::tempdir().unwrap();
    let size = batch(5, T0).len() as u64;
    // Three batches fit, a fourth would not.
    let log = Log::open(dir.path(), config(size * 3 + size / 2)).unwrap();
    for i in 0..10 {
        let info = log.append(&batch(5, T0 + i)).unwrap();
        assert_eq!(info.first_offset, i * 5);
        assert_eq!(info.size_in_bytes, size);
    }
    assert_eq!(log.segment_base_offsets(), vec![0, 15, 30, 45]);
    let logs = segment_files(dir.path(), "log");
    assert_eq!(logs.len(), 4);
    for path in &logs[..3] {
        assert_eq!(file_len(path), size * 3, "{}", path.display());
    }
    assert_eq!(file_len(&logs[3]), size);
    assert_eq!(log.size_in_bytes(), size * 10);
    assert_eq!(offsets_from(&log, 0), span(0, 50));
    log.close().unwrap();

    let log = Log::open(dir.path(), config(size * 3 + size / 2)).unwrap();
    assert_eq!(log.segment_base_offsets(), vec![0, 15, 30, 45]);
    // The reopened active segment keeps filling up to the limit, then rolls.
    for i in 10..13 {
        log.append(&batch(5, T0 + i)).unwrap();
    }
    assert_eq!(log.segment_base_offsets(), vec![0, 15, 30, 45, 60]);
    assert_eq!(offsets_from(&log, 0), span(0, 65));
}

#[test]
fn a_batch_that_exactly_fills_the_segment_stays_in_it() {
    let dir = tempfile::tempdir().unwrap();
    let size = batch(3, T0).len() as u64;
    let log = Log::open(dir.path(), config(size * 2)).unwrap();
    for i in 0..5 {
        log.append(&batch(3, T0 + i)).unwrap();
    }
    assert_eq!(log.segment_base_offsets(), vec![0, 6, 12]);
    for path in segment_files(dir.path(), "log") {
        assert!(file_len(&path) <= size * 2, "{}", path.display());
    }
}

#[test]
fn rolled_segments_are_sealed_with_trimmed_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let size = batch(4, T0).len() as u64;
    let cfg = config(size * 4)
        .to_builder()
        .index_interval_bytes(1)
        .build()
        .unwrap();
    let index_bytes = u64::from(cfg.segment_index_bytes);
    let log = Log::open(dir.path(), cfg).unwrap();
    for i in 0..9 {
        log.append(&batch(4, T0 + i)).unwrap();
    }
    assert_eq!(log.segment_base_offsets(), vec![0, 16, 32]);
    for base in [0, 16] {
        // Four batches, the first never indexed: three offset entries; timestamps grow, so
        // three time entries (the seal adds none, the max timestamp is already indexed).
        assert_eq!(file_len(&segment_file(dir.path(), base, "index")), 3 * 8);
        assert_eq!(
            file_len(&segment_file(dir.path(), base, "timeindex")),
            3 * 12
        );
    }
    // The active segment's indexes stay preallocated until it is sealed.
    assert_eq!(
        file_len(&segment_file(dir.path(), 32, "index")),
        index_bytes / 8 * 8
    );
    // Closing seals it: one batch, so no offset entry, and the seal's time entry.
    log.close().unwrap();
    assert_eq!(file_len(&segment_file(dir.path(), 32, "index")), 0);
    assert_eq!(file_len(&segment_file(dir.path(), 32, "timeindex")), 12);
}
