//! Segments after compaction, left for kafka-python to read.
//!
//! A log of keyed records in every enabled codec (duplicates, tombstones, records without a
//! key, idempotent producer fields) is compacted twice: the first pass rewrites batches
//! (stamping the delete horizon on those that keep a tombstone, and keeping an empty batch
//! where a segment group's last batch lost every record), the second, past the horizon,
//! removes the tombstones and merges the small cleaned segments. After each pass every
//! `.log` file is copied to `interop_dir("compaction")`, where `.ci/run` has
//! `kafka-python-check` decode it and check every CRC. The test itself checks what the
//! cleaner promises in the bytes: the delete-horizon bit and base timestamp, offsets kept,
//! last offset deltas kept.

use crate::common;

use std::path::Path;

use common::{enabled_codecs, interop_dir};
use streamlog::{Batch, BatchOptions, Batches, Log, LogConfig, OwnedRecord};

const T0: i64 = 1_700_000_000_000;
const DAY: i64 = 24 * 60 * 60 * 1000;

fn copy_segments(dir: &Path, tag: &str) -> usize {
    let out = interop_dir("compaction");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "log") {
            let name = format!("{tag}-{}", path.file_name().unwrap().to_string_lossy());
            std::fs::copy(&path, out.join(name)).unwrap();
            n += 1;
        }
    }
    n
}

fn all_batches(dir: &Path) -> Vec<Vec<u8>> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let bytes = std::fs::read(f).unwrap();
        for b in Batches::new(&bytes) {
            let b = b.unwrap();
            b.validate().unwrap();
            out.push(b.as_bytes().to_vec());
        }
    }
    out
}

#[test]
fn compacted_segments_are_kafka_readable() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("compacted-0");
    let config = LogConfig::builder()
        .segment_bytes(2048)
        .index_interval_bytes(256)
        .segment_ms(None)
        .build()
        .unwrap();
    let log = Log::open(&dir, config).unwrap();
    let mut ts = T0;
    // The idempotent producer's next sequence: each of its batches continues the last.
    let mut next_sequence = 0i32;
    for (round, codec) in enabled_codecs().into_iter().enumerate() {
        for i in 0..12u32 {
            let records: Vec<OwnedRecord> = (0..3u32)
                .map(|j| {
                    ts += 1;
                    let key = format!("key-{}", (i * 3 + j) % 5);
                    let tombstone = (i + j) % 7 == 3;
                    let value = format!("value-{round}-{i}-{j}");
                    let key = ((i + j) % 11 != 4).then_some(key);
                    OwnedRecord::new(
                        ts,
                        key.as_deref().map(str::as_bytes),
                        (!tombstone).then_some(value.as_bytes()),
                    )
                })
                .collect();
            if i % 4 == 0 {
                // An idempotent producer's batch: its fields survive a rebuild.
                let mut b = streamlog::BatchBuilder::new(BatchOptions {
                    compression: codec,
                    producer_id: 7,
                    producer_epoch: 1,
                    base_sequence: next_sequence,
                    ..BatchOptions::default()
                });
                for r in &records {
                    b.append(r.timestamp, r.key.as_deref(), r.value.as_deref(), &[])
                        .unwrap();
                }
                log.append(&b.build().unwrap()).unwrap();
                next_sequence += records.len() as i32;
            } else {
                log.append_records(&records, codec).unwrap();
            }
        }
    }
    // A key whose last record is a tombstone.
    log.append_records(
        &[
            OwnedRecord::new(ts + 1, Some(b"gone"), Some(b"soon")),
            OwnedRecord::new(ts + 2, Some(b"gone"), None),
        ],
        streamlog::Compression::None,
    )
    .unwrap();
    log.roll().unwrap();
    let before = all_batches(&dir);

    let first = log.compact(log.log_end_offset(), T0).unwrap();
    assert!(first.records_written < first.records_read, "{first:?}");
    let after_first = all_batches(&dir);
    assert!(
        after_first.iter().any(|b| {
            let b = Batch::new(b).unwrap();
            b.delete_horizon() == Some(T0 + DAY) && b.base_timestamp() == T0 + DAY
        }),
        "a batch keeping a tombstone carries the delete horizon"
    );
    assert!(
        after_first
            .iter()
            .any(|b| Batch::new(b).unwrap().record_count() == 0),
        "an emptied batch ends a group"
    );
    // Every batch kept has the base offset and last offset it was stored with.
    let ranges = |bs: &[Vec<u8>]| -> Vec<(i64, i64)> {
        bs.iter()
            .map(|b| {
                let b = Batch::new(b).unwrap();
                (b.base_offset(), b.last_offset())
            })
            .collect()
    };
    let original = ranges(&before);
    for r in ranges(&after_first) {
        assert!(original.contains(&r), "batch {r:?} was never stored");
    }
    assert!(copy_segments(&dir, "pass1") > 0);

    log.append_records(
        &[OwnedRecord::new(T0 + DAY, Some(b"key-0"), Some(b"late"))],
        streamlog::Compression::None,
    )
    .unwrap();
    log.roll().unwrap();
    let second = log.compact(log.log_end_offset(), T0 + DAY).unwrap();
    assert!(second.tombstones_removed > 0, "{second:?}");
    assert!(second.segments_after < second.segments_before, "{second:?}");
    assert!(!all_batches(&dir).iter().any(|b| {
        let b = Batch::new(b).unwrap();
        b.records()
            .unwrap()
            .iter()
            .any(|r| r.unwrap().value.is_none())
    }));
    assert!(copy_segments(&dir, "pass2") > 0);
    log.close().unwrap();
}
