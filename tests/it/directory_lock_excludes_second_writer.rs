//! One writer per directory: a second `Log` or `Storage` open of a directory that is open
//! for writing fails with a typed error naming it, in this process and from another; closing
//! or dropping the first frees it; on `SimFs` the lock lives in memory and a crash frees it.

use std::path::PathBuf;
use std::sync::Arc;

use streamlog::io::{FileSystem, SimFs};
use streamlog::{Error, Log, LogConfig, Storage, StorageConfig};

fn locked_dir(e: Error) -> (PathBuf, Option<u32>) {
    match e {
        Error::DirectoryLocked { dir, holder_pid } => (dir, holder_pid),
        other => panic!("expected DirectoryLocked, got {other}"),
    }
}

#[test]
fn second_log_open_in_one_process_fails_until_the_first_closes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    let first = Log::open(&dir, LogConfig::default()).unwrap();
    let (named, pid) = locked_dir(Log::open(&dir, LogConfig::default()).unwrap_err());
    assert_eq!(named, dir);
    assert_eq!(pid, Some(std::process::id()));
    let message = Log::open(&dir, LogConfig::default())
        .unwrap_err()
        .to_string();
    assert!(message.contains(dir.to_str().unwrap()), "{message}");

    first.close().unwrap();
    // Closed but still alive (a reader may hold it): the directory is free.
    let second = Log::open(&dir, LogConfig::default()).unwrap();
    drop(second);
    // Dropped: free again.
    Log::open(&dir, LogConfig::default()).unwrap();
    drop(first);
}

#[test]
fn second_storage_open_fails_until_the_first_closes() {
    let tmp = tempfile::tempdir().unwrap();
    let first = Storage::open(tmp.path(), StorageConfig::default()).unwrap();
    let (named, _) = locked_dir(Storage::open(tmp.path(), StorageConfig::default()).unwrap_err());
    assert_eq!(named, tmp.path());
    first.close().unwrap();
    let second = Storage::open(tmp.path(), StorageConfig::default()).unwrap();
    drop(second);
    Storage::open(tmp.path(), StorageConfig::default()).unwrap();
}

#[test]
fn a_partition_of_an_open_storage_is_the_storage_s() {
    let tmp = tempfile::tempdir().unwrap();
    let storage = Storage::open(tmp.path(), StorageConfig::default()).unwrap();
    storage
        .create_topic("t", 1, streamlog::TopicConfig::new())
        .unwrap();
    let log = storage.partition("t", 0).unwrap();
    // The storage holds the data directory's lock, which covers its partitions.
    let (named, _) =
        locked_dir(Log::open(tmp.path().join("t-0"), LogConfig::default()).unwrap_err());
    assert_eq!(named, tmp.path());
    // Readers are welcome.
    Log::open_read_only(tmp.path().join("t-0"), LogConfig::default()).unwrap();
    drop(log);
    storage.close().unwrap();
    Log::open(tmp.path().join("t-0"), LogConfig::default())
        .unwrap()
        .close()
        .unwrap();
}

#[test]
fn simfs_models_the_lock_in_memory_and_a_crash_frees_it() {
    let fs = SimFs::new(7);
    let shared: Arc<dyn FileSystem> = Arc::new(fs.clone());
    let dir = PathBuf::from("/data/t-0");
    let open = |fs: &Arc<dyn FileSystem>| {
        Log::open_with(Arc::clone(fs), &dir, LogConfig::default(), &mut |_| Ok(()))
    };
    let (first, _) = open(&shared).unwrap();
    let (named, pid) = locked_dir(open(&shared).map(|(l, _)| l).unwrap_err());
    assert_eq!((named, pid), (dir.clone(), None));
    // No lock file is written on SimFs: listings stay as the crash tests expect them.
    assert!(!fs.list_all().iter().any(|p| p.ends_with(".lock")));
    // The machine loses power with the log open: the restarted one has no lock held.
    let after: Arc<dyn FileSystem> = Arc::new(fs.crash());
    let (reopened, _) = open(&after).unwrap();
    drop(first);
    reopened.close().unwrap();
}

#[cfg(feature = "cli")]
#[test]
fn a_writer_in_another_process_holds_the_lock() {
    use crate::common::child::CliChild;

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    let mut producer = CliChild::spawn(
        env!("CARGO_BIN_EXE_streamlog"),
        &["produce", dir.to_str().unwrap()],
    );
    producer.write("hello\n");
    // Its offset printed, the line is appended: the producer has the log open.
    assert_eq!(producer.line(), "0");
    let (named, pid) = locked_dir(Log::open(&dir, LogConfig::default()).unwrap_err());
    assert_eq!(named, dir);
    assert_eq!(pid, Some(producer.id()));
    let (ok, _) = producer.finish();
    assert!(ok);
    // The producer exited: the directory is free.
    Log::open(&dir, LogConfig::default())
        .unwrap()
        .close()
        .unwrap();
}
