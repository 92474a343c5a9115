//! A crash can cut the last `.log` file anywhere inside its last batch: inside the 61-byte
//! header (so not even the length field may be whole) or inside the body. For every such
//! cut, opening recovers to the batch before it, reports exactly the bytes it cut, and
//! appends continue at the cut batch's base offset. Cutting exactly at a batch boundary
//! cuts nothing.

use crate::common::logs;

use std::path::Path;

use logs::{fill, offsets_from, open_recording, segment_file, small_segments, span, T0};
use streamlog::{Compression, Log, LogConfig, OwnedRecord};

const HEADER: u64 = 61;

fn config() -> LogConfig {
    small_segments(2048)
        .to_builder()
        .segment_index_bytes(4096)
        .build()
        .unwrap()
}

/// A crashed (never closed) log of several segments; returns the last segment's base, the
/// position and size of its last batch, that batch's base offset, and the log end offset.
fn crashed_log(dir: &Path) -> (i64, u64, u64, i64, i64) {
    let log = Log::open(dir, config()).unwrap();
    fill(&log, 24, 3);
    // The last batch mixes record sizes so its body is not uniform.
    let last: Vec<OwnedRecord> = (0..4)
        .map(|i| OwnedRecord::new(T0 + 100, Some(b"key"), Some(&vec![b'v'; 10 + 7 * i])))
        .collect();
    let info = log.append_records(&last, Compression::None).unwrap();
    let end = log.log_end_offset();
    let base = *log.segment_base_offsets().last().unwrap();
    assert!(
        log.segment_count() > 2,
        "the cut is in the last of several segments"
    );
    assert!(
        base < info.first_offset,
        "the last segment holds an earlier batch too"
    );
    let size = info.size_in_bytes;
    drop(log);
    let path = segment_file(dir, base, "log");
    let file_len = std::fs::metadata(&path).unwrap().len();
    (base, file_len - size, size, info.first_offset, end)
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let p = entry.unwrap().path();
        std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
    }
}

/// Cuts the last segment of a copy of `original` to `len` bytes and opens it.
fn cut_and_open(original: &Path, segment_base: i64, len: u64) -> (tempfile::TempDir, Log, u64) {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(original, dir.path());
    let path = segment_file(dir.path(), segment_base, "log");
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(len).unwrap();
    drop(f);
    let (log, info, _) = open_recording(dir.path(), config());
    assert!(!info.clean_shutdown);
    (dir, log, info.bytes_truncated)
}

#[test]
fn every_cut_inside_the_last_batch_recovers_to_the_batch_before() {
    let original = tempfile::tempdir().unwrap();
    let (seg, position, size, batch_base, end) = crashed_log(original.path());
    assert!(size > HEADER + 40);
    let mut header_cuts = 0;
    let mut body_cuts = 0;
    for inside in 1..size {
        let (dir, log, truncated) = cut_and_open(original.path(), seg, position + inside);
        let context = format!("cut {inside} bytes into the {size}-byte last batch");
        assert_eq!(truncated, inside, "{context}: bytes_truncated");
        assert_eq!(
            std::fs::metadata(segment_file(dir.path(), seg, "log"))
                .unwrap()
                .len(),
            position,
            "{context}: the file ends after the batch before"
        );
        assert_eq!(log.log_end_offset(), batch_base, "{context}");
        assert_eq!(offsets_from(&log, 0), span(0, batch_base), "{context}");
        let info = log
            .append_records(
                &[OwnedRecord::new(
                    T0 + 200,
                    Some(b"k"),
                    Some(b"after the cut"),
                )],
                Compression::Lz4,
            )
            .unwrap();
        assert_eq!(
            info.first_offset, batch_base,
            "{context}: appends continue there"
        );
        // A clean reopen keeps that (checked for some cuts only: closing fsyncs).
        if inside % 13 == 1 {
            log.close().unwrap();
            drop(log);
            let (log, info, _) = open_recording(dir.path(), config());
            assert!(
                info.clean_shutdown && info.bytes_truncated == 0,
                "{context}"
            );
            assert_eq!(offsets_from(&log, 0), span(0, batch_base + 1), "{context}");
        }
        if inside < HEADER {
            header_cuts += 1;
        } else {
            body_cuts += 1;
        }
    }
    assert_eq!(header_cuts, HEADER - 1);
    assert!(body_cuts > 40);

    // Cut exactly at the batch's start, and not at all: nothing is truncated.
    for (len, leo) in [(position, batch_base), (position + size, end)] {
        let (_dir, log, truncated) = cut_and_open(original.path(), seg, len);
        assert_eq!(
            truncated, 0,
            "a file of {len} bytes ends on a batch boundary"
        );
        assert_eq!(log.log_end_offset(), leo);
        assert_eq!(offsets_from(&log, 0), span(0, leo));
    }
}

/// The same cuts when the last batch is the segment's only one: recovery empties the
/// segment, which stays the active one at its base offset.
#[test]
fn every_cut_inside_a_segments_only_batch_empties_it() {
    let original = tempfile::tempdir().unwrap();
    let log = Log::open(original.path(), config()).unwrap();
    fill(&log, 4, 3);
    log.roll().unwrap();
    let base = log.log_end_offset();
    let info = log
        .append_records(
            &[OwnedRecord::new(T0, Some(b"only"), Some(&[7u8; 90]))],
            Compression::Gzip,
        )
        .unwrap();
    assert_eq!(info.first_offset, base);
    let size = info.size_in_bytes;
    drop(log);
    for inside in 1..size {
        let (_dir, log, truncated) = cut_and_open(original.path(), base, inside);
        assert_eq!(truncated, inside, "cut at {inside}");
        assert_eq!(log.log_end_offset(), base, "cut at {inside}");
        assert_eq!(*log.segment_base_offsets().last().unwrap(), base);
        assert_eq!(offsets_from(&log, 0), span(0, base), "cut at {inside}");
        let info = log
            .append_records(&[OwnedRecord::new(T0, None, Some(b"x"))], Compression::None)
            .unwrap();
        assert_eq!(info.first_offset, base, "cut at {inside}");
    }
}
