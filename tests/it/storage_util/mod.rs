//! Helpers shared by the storage tests.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use streamlog::io::FileSystem;
use streamlog::storage::{Storage, StorageConfig};
use streamlog::{Compression, Log, LogConfig, OwnedRecord};

/// A temporary data directory, in memory (`/dev/shm`) when the machine has one: these tests
/// are about handles and names, not about how fast the disk syncs.
pub fn data_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(d) = tempfile::tempdir_in(shm) {
            return d;
        }
    }
    tempfile::tempdir().unwrap()
}

/// Small segments and indexes, so thousands of logs stay cheap.
pub fn small_log_config() -> LogConfig {
    LogConfig::builder()
        .segment_bytes(4096)
        .segment_index_bytes(4096)
        .index_interval_bytes(256)
        .build()
        .unwrap()
}

/// Storage defaults with small logs and the given open-file budget.
pub fn config(max_open_files: usize) -> StorageConfig {
    StorageConfig::builder()
        .log(small_log_config())
        .max_open_files(max_open_files)
        .max_open_maps(max_open_files)
        .build()
        .unwrap()
}

/// The same, through `fs`.
pub fn config_on(fs: Arc<dyn FileSystem>, max_open_files: usize) -> StorageConfig {
    StorageConfig::builder()
        .log(small_log_config())
        .max_open_files(max_open_files)
        .max_open_maps(max_open_files)
        .fs(fs)
        .build()
        .unwrap()
}

/// Appends one record whose value names where it went.
pub fn append_tagged(log: &Log, topic: &str, partition: u32, seq: i64, timestamp: i64) -> i64 {
    let value = format!("{topic}/{partition}/{seq}");
    log.append_records(
        &[OwnedRecord::new(
            timestamp,
            Some(b"k"),
            Some(value.as_bytes()),
        )],
        Compression::None,
    )
    .unwrap()
    .first_offset
}

/// The values of every record in a log.
pub fn values(log: &Log) -> Vec<String> {
    log.records_from(log.log_start_offset())
        .map(|r| String::from_utf8(r.unwrap().value().unwrap().to_vec()).unwrap())
        .collect()
}

/// Open file descriptors of this process.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// Memory maps of this process.
pub fn maps() -> usize {
    std::fs::read_to_string("/proc/self/maps").map_or(0, |m| m.lines().count())
}

/// Opens a storage, panicking on error.
pub fn open(dir: &Path, config: StorageConfig) -> Storage {
    Storage::open(dir, config).unwrap()
}
