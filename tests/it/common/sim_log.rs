//! Helpers for the fault-scenario tests that run a partition log on `SimFs`: opening the
//! log in a fixed directory, batches whose records say where they belong, and reading the
//! log back.
//!
//! Self-contained, so a test takes it alone: `#[path = "common/sim_log.rs"] mod sim_log;`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use streamlog::io::SimFs;
use streamlog::{Compression, Error, Log, LogConfig, OwnedRecord, RecoveryInfo};

/// The partition directory every simulated log lives in (topic `t`, partition 0).
pub const DIR: &str = "/data/t-0";

/// A timestamp to build records around.
pub const T0: i64 = 1_700_000_000_000;

/// [`DIR`] as a path.
pub fn dir() -> &'static Path {
    Path::new(DIR)
}

/// A file of the partition directory.
pub fn file(name: &str) -> PathBuf {
    dir().join(name)
}

/// A segment file's path: `<dir>/<20-digit base offset>.<ext>`.
pub fn segment_file(base_offset: i64, ext: &str) -> PathBuf {
    file(&format!("{base_offset:020}.{ext}"))
}

/// Small index files (SimFs copies a file's maps on every access to it), default segments.
pub fn small_indexes() -> LogConfig {
    LogConfig::builder()
        .segment_index_bytes(4096)
        .segment_ms(None)
        .build()
        .unwrap()
}

/// Segments of `segment_bytes`, small indexes, an index entry for every batch.
pub fn rolling(segment_bytes: u64) -> LogConfig {
    LogConfig::builder()
        .segment_bytes(segment_bytes)
        .segment_index_bytes(4096)
        .index_interval_bytes(1)
        .segment_ms(None)
        .build()
        .unwrap()
}

/// Opens the log in [`DIR`] on `fs`.
pub fn try_open(fs: &SimFs, config: &LogConfig) -> Result<(Log, RecoveryInfo), Error> {
    Log::open_with(Arc::new(fs.clone()), dir(), config.clone(), &mut |_| Ok(()))
}

/// Opens the log in [`DIR`] on `fs`, panicking with `context` if it does not open.
pub fn open(fs: &SimFs, config: &LogConfig, context: &str) -> (Log, RecoveryInfo) {
    try_open(fs, config).unwrap_or_else(|e| panic!("{context}: open failed: {e}"))
}

/// The value a record at `offset` of batch `tag` carries: it names both, so a record read
/// back at the wrong offset, or from a batch never written there, is caught.
pub fn value(tag: u64, offset: i64, len: usize) -> Vec<u8> {
    let mut v = format!("b{tag}@{offset}:").into_bytes();
    let fill = b'a' + (tag.wrapping_add(offset as u64) % 26) as u8;
    v.resize(v.len().max(len), fill);
    v
}

/// `n` records for offsets `first..first + n` of batch `tag`, values `value_len` bytes.
pub fn records(tag: u64, first: i64, n: usize, value_len: usize) -> Vec<OwnedRecord> {
    (0..n as i64)
        .map(|i| {
            let offset = first + i;
            OwnedRecord::new(
                T0 + offset,
                Some(offset.to_string().as_bytes()),
                Some(&value(tag, offset, value_len)),
            )
        })
        .collect()
}

/// Appends batch `tag`: `n` records of `value_len` bytes at the log end; panics unless it
/// lands at `expected_first`. Returns the offset after it.
pub fn append(log: &Log, tag: u64, n: usize, value_len: usize, expected_first: i64) -> i64 {
    let info = log
        .append_records(
            &records(tag, expected_first, n, value_len),
            Compression::None,
        )
        .unwrap_or_else(|e| panic!("append of batch {tag}: {e}"));
    assert_eq!(info.first_offset, expected_first, "batch {tag}");
    info.last_offset + 1
}

/// `(offset, key, value)` of every record from the log start, failing on any read error.
pub fn contents(log: &Log) -> Vec<(i64, Vec<u8>, Vec<u8>)> {
    log.records_from(log.log_start_offset())
        .map(|r| {
            let r = r.unwrap_or_else(|e| panic!("reading the log: {e}"));
            (
                r.offset(),
                r.key().unwrap_or_default().to_vec(),
                r.value().unwrap_or_default().to_vec(),
            )
        })
        .collect()
}

/// What [`contents`] returns for the records of `batches` (`(tag, first, n, value_len)`).
pub fn expected(batches: &[(u64, i64, usize, usize)]) -> Vec<(i64, Vec<u8>, Vec<u8>)> {
    batches
        .iter()
        .flat_map(|&(tag, first, n, len)| {
            (first..first + n as i64)
                .map(move |o| (o, o.to_string().into_bytes(), value(tag, o, len)))
        })
        .collect()
}

/// The recovery-point checkpoint as Kafka writes it for [`DIR`].
pub fn checkpoint_text(offset: i64) -> String {
    format!("0\n1\nt 0 {offset}\n")
}

/// Whether `e` is an I/O error on a path ending in `suffix` with the OS error `errno`.
pub fn is_io_error(e: &Error, suffix: &str, errno: i32) -> bool {
    matches!(e, Error::Io { path, source }
        if path.to_string_lossy().ends_with(suffix) && source.raw_os_error() == Some(errno))
}
