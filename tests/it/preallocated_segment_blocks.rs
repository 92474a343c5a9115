//! Disk blocks reserved ahead of buffered appends (`LogConfig::preallocate_bytes`): the
//! active segment's file has blocks reserved past its end, but its length is always the end
//! of its last batch (what readers, recovery and other processes see); a sealed segment
//! keeps no reserved blocks past its end; a log that reserves nothing stays as before.
//!
//! Block counts come from the filesystem (`st_blocks`): where it cannot reserve
//! (`fallocate` refused, probed first), the tests that need a reservation say so and check
//! only the lengths and contents.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::common::logs::{file_len, read_all_batches, records, segment_file, T0};
use streamlog::io::{FileSystem, OpenMode, RealFs};
use streamlog::{Compression, Error, Log, LogConfig};

/// Whether files in `dir` take a reservation past their end (one probe file, removed).
fn reserves(dir: &Path) -> bool {
    let probe = dir.join("probe");
    let ok = RealFs
        .open(&probe, OpenMode::ReadWrite)
        .and_then(|f| f.preallocate(0, 1 << 20))
        .unwrap_or(false)
        && allocated(&probe) >= 1 << 20;
    std::fs::remove_file(&probe).unwrap();
    ok
}

/// Bytes of disk the file holds.
fn allocated(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().blocks() * 512
}

fn config(segment_bytes: u64, preallocate_bytes: u32) -> LogConfig {
    LogConfig::builder()
        .segment_bytes(segment_bytes)
        .segment_ms(None)
        .preallocate_bytes(preallocate_bytes)
        .build()
        .unwrap()
}

/// Appends batches of 20 records of 1,000 bytes (about 20 KB each) until the log holds
/// `bytes`; returns the offsets of each batch.
fn append_until(log: &Log, bytes: u64) -> Vec<(i64, i64)> {
    let mut held = 0;
    let mut ranges = Vec::new();
    let mut i = 0;
    while held < bytes {
        let info = log
            .append_records(&records(i, 20, T0 + i, 1000), Compression::None)
            .unwrap();
        held += info.size_in_bytes;
        ranges.push((info.first_offset, info.last_offset));
        i += 1;
    }
    ranges
}

#[test]
fn active_segment_reserves_past_its_end_and_keeps_its_length() {
    let dir = tempfile::tempdir().unwrap();
    let can_reserve = reserves(dir.path());
    let log = Log::open(dir.path(), config(1 << 30, 1 << 20)).unwrap();
    let ranges = append_until(&log, 3 << 20);
    let path = segment_file(dir.path(), 0, "log");
    let size = log.segments_info().unwrap().last().unwrap().size_bytes;
    // The length is the data's end, whatever is reserved past it.
    assert_eq!(file_len(&path), size);
    if can_reserve {
        // The step has grown to the most allowed (1 MiB): at least some of it lies past the
        // end, where a log without the reservation holds nothing.
        let past_end = allocated(&path).saturating_sub(size.next_multiple_of(4096));
        assert!(
            past_end > 0 && past_end <= 1 << 20,
            "{past_end} bytes reserved past the end"
        );
    } else {
        eprintln!("this filesystem reserves no blocks: lengths and contents checked only");
    }
    // Every batch reads back, before and after a reopen (the next open finds the file's
    // length as the end, with nothing to recover).
    assert_eq!(read_all_batches(&log, 0, 1 << 30), ranges);
    log.close().unwrap();
    // Closing seals the active segment, which releases what was reserved past its end.
    assert!(allocated(&path) <= size.next_multiple_of(4096) + 4096);
    let log = Log::open(dir.path(), config(1 << 30, 1 << 20)).unwrap();
    assert_eq!(read_all_batches(&log, 0, 1 << 30), ranges);
    assert_eq!(file_len(&path), size);
    // Appends go on after the reopen; the reopened segment reserves again.
    let more = append_until(&log, 1 << 20);
    assert_eq!(more.first().unwrap().0, ranges.last().unwrap().1 + 1);
}

#[test]
fn sealed_segments_keep_no_reserved_blocks_past_their_end() {
    let dir = tempfile::tempdir().unwrap();
    let can_reserve = reserves(dir.path());
    let log = Log::open(dir.path(), config(1 << 20, 8 << 20)).unwrap();
    let ranges = append_until(&log, 5 << 20);
    let infos = log.segments_info().unwrap();
    assert!(infos.len() >= 4, "{} segments", infos.len());
    for info in infos.iter().filter(|i| !i.is_active) {
        let path = segment_file(dir.path(), info.base_offset, "log");
        assert_eq!(file_len(&path), info.size_bytes);
        // What the data needs, to the block (and a block of slack for the filesystem's own
        // extent records); a reservation left behind would be 64 KiB and more.
        let allocated = allocated(&path);
        assert!(
            allocated <= info.size_bytes.next_multiple_of(4096) + 4096,
            "sealed segment {} holds {allocated} bytes of disk for {} bytes",
            info.base_offset,
            info.size_bytes
        );
    }
    if can_reserve {
        let active = infos.last().unwrap();
        let path = segment_file(dir.path(), active.base_offset, "log");
        assert!(allocated(&path) > active.size_bytes.next_multiple_of(4096));
    }
    assert_eq!(read_all_batches(&log, 0, 1 << 30), ranges);
}

#[test]
fn no_reservation_when_set_to_zero() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), config(1 << 30, 0)).unwrap();
    let ranges = append_until(&log, 2 << 20);
    log.flush().unwrap();
    let path = segment_file(dir.path(), 0, "log");
    let size = log.segments_info().unwrap().last().unwrap().size_bytes;
    assert_eq!(file_len(&path), size);
    assert!(allocated(&path) <= size.next_multiple_of(4096) + 4096);
    assert_eq!(read_all_batches(&log, 0, 1 << 30), ranges);
}

#[test]
fn a_reservation_step_out_of_range_is_refused_naming_the_key() {
    for bad in [1, 4096, (64 << 10) - 1, (1 << 30) + 1, u32::MAX] {
        match LogConfig::builder().preallocate_bytes(bad).build() {
            Err(Error::InvalidConfig { key, .. }) => assert_eq!(key, "preallocate_bytes"),
            other => panic!("{bad}: {other:?}"),
        }
    }
    for good in [0, 64 << 10, 8 << 20, 1 << 30] {
        LogConfig::builder()
            .preallocate_bytes(good)
            .build()
            .unwrap();
    }
}
