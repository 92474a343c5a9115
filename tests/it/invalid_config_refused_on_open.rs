//! A `LogConfig` or `StorageConfig` outside Kafka's bounds is refused when a log or a storage
//! opens, with `Error::InvalidConfig` naming the Kafka key, and nothing is created on disk;
//! the builders refuse the same values, and build configs from outside the crate.

use std::sync::Arc;

use streamlog::io::SimFs;
use streamlog::storage::{CompressionType, Storage, StorageConfig, TopicConfig};
use streamlog::{Compression, Error, Log, LogConfig};

fn key_of<T: std::fmt::Debug>(r: streamlog::Result<T>) -> &'static str {
    match r {
        Err(Error::InvalidConfig { key, .. }) => key,
        other => panic!("expected InvalidConfig, got {other:?}"),
    }
}

#[test]
fn log_open_refuses_a_bad_config_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let part = dir.path().join("t-0");
    let mut config = LogConfig::default();
    config.segment_bytes = 0;
    assert_eq!(key_of(Log::open(&part, config)), "segment.bytes");
    let mut config = LogConfig::default();
    config.segment_index_bytes = 8;
    assert_eq!(key_of(Log::open(&part, config)), "segment.index.bytes");
    let mut config = LogConfig::default();
    config.min_cleanable_dirty_ratio = 2.0;
    assert_eq!(
        key_of(Log::open(&part, config)),
        "min.cleanable.dirty.ratio"
    );
    assert!(!part.exists(), "a refused open leaves no directory");

    let config = LogConfig::builder().segment_bytes(1 << 20).build().unwrap();
    let log = Log::open(&part, config).unwrap();
    assert_eq!(log.config().segment_bytes, 1 << 20);
}

#[test]
fn builders_refuse_what_open_refuses() {
    assert_eq!(
        key_of(LogConfig::builder().flush_messages(0).build()),
        "flush.messages"
    );
    assert_eq!(
        key_of(LogConfig::builder().retention_ms(-2).build()),
        "retention.ms"
    );
    assert_eq!(
        key_of(StorageConfig::builder().max_open_maps(1).build()),
        "max_open_maps"
    );
    let mut bad_log = LogConfig::default();
    bad_log.segment_ms = Some(0);
    assert_eq!(
        key_of(StorageConfig::builder().log(bad_log).build()),
        "segment.ms"
    );
}

#[test]
fn storage_open_refuses_a_bad_config_and_creates_nothing() {
    let fs = Arc::new(SimFs::new(11));
    let mut config = StorageConfig::builder().fs(fs.clone()).build().unwrap();
    config.max_open_files = 2;
    assert_eq!(
        key_of(Storage::open("/data", config.clone())),
        "max_open_files"
    );
    config.max_open_files = 512;
    config.defaults.log.segment_bytes = u64::MAX;
    assert_eq!(key_of(Storage::open("/data", config)), "segment.bytes");
    assert!(
        !streamlog::io::FileSystem::exists(&*fs, std::path::Path::new("/data")),
        "a refused open leaves no directory"
    );

    // Built from outside the crate (a struct literal is E0639 on `#[non_exhaustive]`).
    let config = StorageConfig::builder()
        .log(LogConfig::builder().segment_bytes(4096).build().unwrap())
        .compression_type(CompressionType::Codec(Compression::None))
        .max_open_files(64)
        .fs(fs)
        .build()
        .unwrap();
    let storage = Storage::open("/data", config).unwrap();
    storage.create_topic("t", 1, TopicConfig::new()).unwrap();
    assert_eq!(
        storage.partition("t", 0).unwrap().config().segment_bytes,
        4096
    );
}
