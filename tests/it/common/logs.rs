//! Helpers for the partition-log scenario tests: batches of N records, opening a log with a
//! recording recovery hook, walking a log with `read`, and looking at its files.
//!
//! Self-contained, so a test takes it alone: `#[path = "common/logs.rs"] mod logs;`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use streamlog::io::RealFs;
use streamlog::{
    Batch, BatchBuilder, BatchOptions, Batches, Compression, FetchData, Log, LogConfig,
    OwnedRecord, RecoveryInfo,
};

/// A timestamp to build batches around.
pub const T0: i64 = 1_700_000_000_000;

/// `n` records stamped `timestamp`, keyed `k<tag>-<i>`, each with a `value_len`-byte value.
pub fn records(tag: i64, n: usize, timestamp: i64, value_len: usize) -> Vec<OwnedRecord> {
    (0..n)
        .map(|i| {
            let key = format!("k{tag}-{i}");
            let value = vec![(tag as u8).wrapping_add(i as u8); value_len];
            OwnedRecord::new(timestamp, Some(key.as_bytes()), Some(&value))
        })
        .collect()
}

/// An uncompressed producer batch of `n` small records stamped `timestamp`.
pub fn batch(n: usize, timestamp: i64) -> Vec<u8> {
    batch_with(BatchOptions::default(), n, timestamp)
}

/// A batch of `n` small records stamped `timestamp` with the given header fields.
pub fn batch_with(opts: BatchOptions, n: usize, timestamp: i64) -> Vec<u8> {
    build_with(opts, &records(timestamp, n, timestamp, 8))
}

/// An uncompressed batch of `records` (timestamps, keys and values; no headers).
pub fn build(records: &[OwnedRecord]) -> Vec<u8> {
    build_with(BatchOptions::default(), records)
}

fn build_with(opts: BatchOptions, records: &[OwnedRecord]) -> Vec<u8> {
    let mut builder = BatchBuilder::new(opts);
    for r in records {
        builder
            .append(r.timestamp, r.key.as_deref(), r.value.as_deref(), &[])
            .unwrap();
    }
    builder.build().unwrap()
}

/// Recomputes a batch's CRC after a test changed bytes it covers, so the change gets past
/// the checksum to the checks behind it.
pub fn fix_crc(batch: &mut [u8]) {
    let crc = Batch::new(batch).unwrap().compute_crc();
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

/// A replica batch: `n` records from `base_offset`, stamped with leader epoch `epoch`.
pub fn replica_batch(base_offset: i64, n: usize, epoch: i32, timestamp: i64) -> Vec<u8> {
    let opts = BatchOptions {
        base_offset,
        partition_leader_epoch: epoch,
        ..BatchOptions::default()
    };
    batch_with(opts, n, timestamp)
}

/// Opens `dir` on the real filesystem, returning the log, what recovery did, and the
/// `(base offset, last offset)` of every batch the recovery hook saw.
#[allow(clippy::type_complexity)]
pub fn open_recording(dir: &Path, config: LogConfig) -> (Log, RecoveryInfo, Vec<(i64, i64)>) {
    let mut seen = Vec::new();
    let (log, info) = Log::open_with(RealFs::shared(), dir, config, &mut |b: &Batch<'_>| {
        seen.push((b.base_offset(), b.last_offset()));
        Ok(())
    })
    .unwrap();
    (log, info, seen)
}

/// `(base offset, last offset)` of each batch in `bytes`, validating every one (CRC, header
/// and records) and checking the bytes hold nothing but whole batches.
pub fn batch_ranges(bytes: &[u8]) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    let mut batches = Batches::new(bytes);
    for b in batches.by_ref() {
        let b = b.unwrap();
        b.validate().unwrap();
        for r in &b.records().unwrap() {
            r.unwrap();
        }
        out.push((b.base_offset(), b.last_offset()));
    }
    assert_eq!(batches.position(), bytes.len() as u64, "trailing bytes");
    out
}

/// The bytes a read returned (empty when it returned nothing).
pub fn fetched(data: &FetchData) -> Vec<u8> {
    data.slice
        .as_ref()
        .map_or_else(Vec::new, |s| s.to_vec().unwrap())
}

/// Every batch from `from` to the log end, by repeated `read`s of `max_bytes`.
pub fn read_all_batches(log: &Log, from: i64, max_bytes: usize) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    let mut offset = from;
    while offset < log.log_end_offset() {
        let data = log.read(offset, max_bytes, None).unwrap();
        let ranges = batch_ranges(&fetched(&data));
        assert!(!ranges.is_empty(), "read at {offset} returned nothing");
        offset = data.next_offset;
        out.extend(ranges);
    }
    out
}

/// The offsets `records_from(from)` yields.
pub fn offsets_from(log: &Log, from: i64) -> Vec<i64> {
    log.records_from(from)
        .map(|r| r.unwrap().offset())
        .collect()
}

/// `a..b` as a vector.
pub fn span(a: i64, b: i64) -> Vec<i64> {
    (a..b).collect()
}

/// The segment files in `dir` with extension `ext`, sorted by name (so by base offset).
pub fn segment_files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some(ext))
        .collect();
    files.sort();
    files
}

/// A segment file's path: `<dir>/<20-digit base offset>.<ext>`.
pub fn segment_file(dir: &Path, base_offset: i64, ext: &str) -> PathBuf {
    dir.join(format!("{base_offset:020}.{ext}"))
}

/// Length of a file in bytes.
pub fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

/// Appends `bytes` to the end of the file at `path`, as a crash mid-write would leave them.
pub fn append_to_file(path: &Path, bytes: &[u8]) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(bytes).unwrap();
}

/// Appends `count` batches of `per_batch` records, timestamps `T0 + i`, alternating
/// uncompressed and lz4; returns `(base offset, last offset)` of each.
pub fn fill(log: &Log, count: i64, per_batch: usize) -> Vec<(i64, i64)> {
    fill_from(log, 0, count, per_batch)
}

/// [`fill`] from batch number `first` on (batch `i` is stamped `T0 + i`).
pub fn fill_from(log: &Log, first: i64, count: i64, per_batch: usize) -> Vec<(i64, i64)> {
    (first..first + count)
        .map(|i| {
            let codec = if i % 2 == 0 {
                Compression::None
            } else {
                Compression::Lz4
            };
            let info = log
                .append_records(&records(i, per_batch, T0 + i, 40), codec)
                .unwrap();
            (info.first_offset, info.last_offset)
        })
        .collect()
}

/// A config that rolls every few batches and indexes every batch, so small logs have many
/// segments and every index has entries; time never rolls.
pub fn small_segments(segment_bytes: u64) -> LogConfig {
    LogConfig::builder()
        .segment_bytes(segment_bytes)
        .segment_ms(None)
        .index_interval_bytes(1)
        .build()
        .unwrap()
}

/// What lookups answer on a log of batches stamped `T0 + i` (as [`fill`] makes them): for
/// every offset, the first batch and next offset a one-byte `read` returns; for every
/// batch's timestamp, what `offset_for_timestamp` finds.
#[derive(Debug, PartialEq, Eq)]
pub struct Lookups {
    pub reads: Vec<(Option<i64>, i64)>,
    pub times: Vec<Option<(i64, i64)>>,
}

/// The [`Lookups`] of `log`, holding `batches` batches.
pub fn lookups(log: &Log, batches: i64) -> Lookups {
    let reads = (0..log.log_end_offset())
        .map(|o| {
            let d = log.read(o, 1, None).unwrap();
            (d.first_batch_offset, d.next_offset)
        })
        .collect();
    let times = (0..batches)
        .map(|b| log.offset_for_timestamp(T0 + b).unwrap())
        .collect();
    Lookups { reads, times }
}

/// Every `.index` and `.timeindex` file in `dir` with its bytes, sorted by path.
pub fn index_files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files: Vec<PathBuf> = segment_files(dir, "index");
    files.extend(segment_files(dir, "timeindex"));
    files
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

/// The index-rebuild scenario: builds a closed log of several segments (the active one
/// with several batches, so its indexes have entries too), lets `damage` harm its index
/// files (given the directory and the segment base offsets), then reopens it and checks
/// that every lookup answers as before, that appends and truncation work on the rebuilt
/// indexes, and that after a close the index files equal the originals.
pub fn check_indexes_rebuilt(damage: impl FnOnce(&Path, &[i64])) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = small_segments(1024);
    let log = Log::open(dir.path(), cfg.clone()).unwrap();
    let mut batches = 0;
    while batches < 20 || log.log_end_offset() - log.segment_base_offsets().last().unwrap() < 16 {
        fill_from(&log, batches, 1, 4);
        batches += 1;
    }
    let end = log.log_end_offset();
    let bases = log.segment_base_offsets();
    assert!(bases.len() > 3);
    let truth = lookups(&log, batches);
    log.close().unwrap();
    let originals = index_files(dir.path());

    damage(dir.path(), &bases);

    let log = Log::open(dir.path(), cfg.clone()).unwrap();
    assert_eq!(log.segment_base_offsets(), bases);
    assert_eq!(offsets_from(&log, 0), span(0, end));
    assert!(lookups(&log, batches) == truth, "lookups changed");
    let info = log
        .append_records(&records(0, 1, T0 + 1000, 1), Compression::None)
        .unwrap();
    assert_eq!(info.first_offset, end);
    log.truncate_to(end).unwrap();
    log.close().unwrap();

    let rebuilt = index_files(dir.path());
    let names =
        |files: &[(PathBuf, Vec<u8>)]| files.iter().map(|f| f.0.clone()).collect::<Vec<_>>();
    assert_eq!(names(&rebuilt), names(&originals));
    for ((path, after), (_, before)) in rebuilt.iter().zip(&originals) {
        assert!(
            after == before,
            "{} differs from the original",
            path.display()
        );
    }
    let log = Log::open(dir.path(), cfg).unwrap();
    assert!(
        lookups(&log, batches) == truth,
        "lookups changed after the second reopen"
    );
}
