//! A segment file named by a base offset so high that the offsets after it (the base plus a
//! 32-bit relative offset, and the next offset after the last) would not fit an `i64`: such
//! a file cannot have been written by a log, and opening it must not compute offsets past
//! `i64::MAX`. Every open (clean or not, writable or read-only) refuses it with
//! `Error::SegmentBaseOutOfRange` naming the file, and leaves the directory as it was (but
//! for the lock file a writable open takes).

use std::path::Path;

use crate::common::logs::{replica_batch, segment_file, T0};
use streamlog::log::CLEAN_SHUTDOWN_FILE;
use streamlog::{BatchBuilder, BatchOptions, Error, Log, LogConfig};

/// The highest base offset a segment may have: its offsets and the one after them fit.
const HIGHEST_BASE: i64 = i64::MAX - u32::MAX as i64 - 1;

/// A partition directory holding one segment at `base`, a one-record batch at that offset in
/// it, and (if `clean`) the clean-shutdown marker.
fn partition_with_segment_at(dir: &Path, base: i64, clean: bool) -> Vec<u8> {
    let mut b = BatchBuilder::new(BatchOptions {
        base_offset: base,
        ..BatchOptions::default()
    });
    b.append(1_700_000_000_000, None, Some(b"v"), &[]).unwrap();
    let bytes = b.build().unwrap();
    std::fs::write(segment_file(dir, base, "log"), &bytes).unwrap();
    if clean {
        std::fs::write(dir.join(CLEAN_SHUTDOWN_FILE), b"").unwrap();
    }
    bytes
}

/// The directory's files and their bytes, but for the `.lock` file a writable open takes.
fn listing(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name() != ".lock")
        .map(|e| {
            let e = e.unwrap();
            let bytes = std::fs::read(e.path()).unwrap_or_default();
            (e.file_name().to_string_lossy().into_owned(), bytes)
        })
        .collect();
    v.sort();
    v
}

#[test]
fn segment_base_above_the_highest_is_refused_by_every_open() {
    for base in [HIGHEST_BASE + 1, i64::MAX - 1, i64::MAX] {
        for clean in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            partition_with_segment_at(dir.path(), base, clean);
            let before = listing(dir.path());
            let writable = Log::open(dir.path(), LogConfig::default());
            let read_only = Log::open_read_only(dir.path(), LogConfig::default());
            for (what, opened) in [("writable", writable), ("read-only", read_only)] {
                match opened {
                    Err(Error::SegmentBaseOutOfRange { path, base_offset }) => {
                        assert_eq!(base_offset, base);
                        assert_eq!(path, segment_file(dir.path(), base, "log"));
                    }
                    other => {
                        panic!("{what} open of a segment at {base} (clean {clean}): {other:?}")
                    }
                }
            }
            assert_eq!(listing(dir.path()), before, "base {base}, clean {clean}");
        }
    }
}

#[test]
fn segment_at_the_highest_base_opens_and_reads() {
    for clean in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let written = partition_with_segment_at(dir.path(), HIGHEST_BASE, clean);
        let log = Log::open(dir.path(), LogConfig::default()).unwrap();
        assert_eq!(log.log_end_offset(), HIGHEST_BASE + 1, "clean {clean}");
        let bytes = log.read_bytes(HIGHEST_BASE, 1 << 20, None).unwrap();
        assert_eq!(bytes, written, "clean {clean}");
        log.close().unwrap();
    }
}

#[test]
fn replicated_batch_needing_a_segment_above_the_highest_base_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    log.append_replicated(&replica_batch(0, 3, 1, T0)).unwrap();
    // A compaction gap too wide for the active segment's relative offsets makes the log
    // roll at the batch's base; one above the highest base is refused, nothing written.
    let far = HIGHEST_BASE + 10;
    match log.append_replicated(&replica_batch(far, 2, 1, T0)) {
        Err(Error::SegmentBaseOutOfRange { base_offset, .. }) => assert_eq!(base_offset, far),
        other => panic!("append at {far}: {other:?}"),
    }
    assert_eq!(log.log_end_offset(), 3);
    assert!(!segment_file(dir.path(), far, "log").exists());
    // And the log goes on: the highest base itself still takes a segment.
    log.append_replicated(&replica_batch(HIGHEST_BASE, 2, 1, T0))
        .unwrap();
    assert_eq!(log.log_end_offset(), HIGHEST_BASE + 2);
    log.close().unwrap();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(log.log_end_offset(), HIGHEST_BASE + 2);
}
