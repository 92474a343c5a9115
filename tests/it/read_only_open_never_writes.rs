//! A read-only open reads a live or damaged log as it stands: nothing on disk changes (no
//! cut, no rebuilt index, no marker or checkpoint touched, no lock taken), recovery's work is
//! done in memory, and a writer in another process is not harmed while it reads.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use streamlog::io::{FileSystem, SimFs};
use streamlog::log::LogOptions;
use streamlog::{Compression, Error, Log, LogConfig, OwnedRecord};

const T0: i64 = 1_700_000_000_000;

fn config() -> LogConfig {
    let mut c = LogConfig::default();
    c.segment_bytes = 4096;
    c.index_interval_bytes = 128;
    c.segment_index_bytes = 4096;
    c.segment_ms = None;
    c
}

fn append(log: &Log, n: i64) {
    for _ in 0..n {
        let offset = log.log_end_offset();
        let value = format!("value-{offset}");
        log.append_records(
            &[OwnedRecord::new(T0 + offset, None, Some(value.as_bytes()))],
            Compression::None,
        )
        .unwrap();
    }
}

fn values(log: &Log) -> Vec<(i64, String)> {
    log.records_from(log.log_start_offset())
        .map(|r| {
            let r = r.unwrap();
            (
                r.offset(),
                String::from_utf8(r.value().unwrap().to_vec()).unwrap(),
            )
        })
        .collect()
}

fn check_prefix(read: &[(i64, String)]) {
    for (i, (offset, value)) in read.iter().enumerate() {
        assert_eq!(*offset, i as i64);
        assert_eq!(value, &format!("value-{offset}"));
    }
}

/// Every file of the tree under `root` with its bytes.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(root).unwrap() {
        let path = entry.unwrap().path();
        out.insert(path.clone(), std::fs::read(&path).unwrap());
    }
    out
}

#[test]
fn damaged_log_is_read_as_it_stands_and_left_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    let log = Log::open(&dir, config()).unwrap();
    append(&log, 300);
    drop(log.close());
    drop(log);
    // A torn tail on the last segment, and a wrecked index on the first.
    let mut logs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    assert!(logs.len() > 2);
    let last = logs.last().unwrap();
    let mut bytes = std::fs::read(last).unwrap();
    bytes.extend_from_slice(&[0xAB; 37]);
    std::fs::write(last, &bytes).unwrap();
    std::fs::write(logs[0].with_extension("index"), [0xFF; 13]).unwrap();
    std::fs::remove_file(dir.join(streamlog::log::CLEAN_SHUTDOWN_FILE)).unwrap();
    let before = snapshot(&dir);

    let (reader, info) = LogOptions::new(config())
        .read_only(true)
        .open(&dir)
        .unwrap();
    assert!(reader.is_read_only());
    assert!(!info.clean_shutdown);
    assert_eq!(info.bytes_truncated, 37);
    assert_eq!(reader.recovery_info().bytes_truncated, 37);
    let read = values(&reader);
    assert_eq!(read.len(), 300);
    check_prefix(&read);
    assert!(matches!(
        reader.append_records(&[OwnedRecord::new(T0, None, Some(b"x"))], Compression::None),
        Err(Error::ReadOnlyLog { .. })
    ));
    assert!(matches!(
        reader.truncate_to(5),
        Err(Error::ReadOnlyLog { .. })
    ));
    reader.close().unwrap();
    drop(reader);
    assert_eq!(
        snapshot(&dir),
        before,
        "a read-only open changed the directory"
    );
}

#[test]
fn read_only_open_on_simfs_changes_nothing_even_after_a_crash() {
    let fs = SimFs::new(11);
    let dir = Path::new("/data/t-0");
    let shared: Arc<dyn FileSystem> = Arc::new(fs.clone());
    let (log, _) = Log::open_with(Arc::clone(&shared), dir, config(), &mut |_| Ok(())).unwrap();
    append(&log, 200);
    log.flush().unwrap();
    append(&log, 50);
    // Power lost with the last appends unsynced: the files as the machine comes back.
    let after = fs.crash();
    drop(log);
    let files = after.list_all();
    let contents: Vec<_> = files.iter().map(|p| after.read_current(p)).collect();

    let (reader, info) = LogOptions::new(config())
        .fs(Arc::new(after.clone()))
        .read_only(true)
        .open(dir)
        .unwrap();
    assert!(!info.clean_shutdown);
    let read = values(&reader);
    assert!(read.len() >= 200, "{} records", read.len());
    check_prefix(&read);
    drop(reader);
    assert_eq!(after.list_all(), files);
    let now: Vec<_> = files.iter().map(|p| after.read_current(p)).collect();
    assert_eq!(now, contents, "a read-only open wrote to the disk");
    assert_eq!(after.sync_count(), 0);
    assert_eq!(after.dir_sync_count(), 0);
}

#[test]
fn read_only_open_takes_no_lock_and_refuses_what_is_not_a_partition() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    let writer = Log::open(&dir, config()).unwrap();
    append(&writer, 10);
    // The writer holds the lock; readers open all the same.
    let reader = Log::open_read_only(&dir, config()).unwrap();
    assert_eq!(values(&reader).len(), 10);

    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    for missing in [&empty, &tmp.path().join("missing")] {
        assert!(matches!(
            Log::open_read_only(missing, config()),
            Err(Error::NotAPartition { .. })
        ));
        assert!(matches!(
            Log::open_existing(missing, config()),
            Err(Error::NotAPartition { .. })
        ));
    }
    // Refused, and left as it was: no segment, no lock file.
    assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0);
    assert!(!tmp.path().join("missing").exists());
    writer.close().unwrap();
}

#[cfg(feature = "cli")]
#[test]
fn readers_do_not_harm_a_live_writer_in_another_process() {
    use crate::common::child::CliChild;

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    let exe = env!("CARGO_BIN_EXE_streamlog");
    // Small segments: the writer rolls (and trims its indexes) while readers read.
    let mut producer = CliChild::spawn(
        exe,
        &[
            "produce",
            dir.to_str().unwrap(),
            "--batch",
            "10",
            "--segment-bytes",
            "8192",
            "--index-interval-bytes",
            "256",
        ],
    );
    let mut written = 0i64;
    for round in 0..8 {
        let lines: String = (0..500)
            .map(|i| format!("value-{}\n", written + i))
            .collect();
        producer.write(&lines);
        written += 500;
        // The last offset of this round printed: the writer is live and has appended it.
        let mut last = String::new();
        while last != (written - 1).to_string() {
            last = producer.line();
        }
        let reader = Log::open_read_only(&dir, LogConfig::default()).unwrap();
        let read = values(&reader);
        assert!(
            read.len() as i64 >= written,
            "round {round}: {}",
            read.len()
        );
        check_prefix(&read);
        drop(reader);
        // And a whole `consume` process, which must exit cleanly without touching the log.
        let consume = CliChild::spawn(exe, &["consume", dir.to_str().unwrap(), "--max", "3"]);
        let (ok, printed) = consume.finish();
        assert!(ok, "round {round}: consume failed");
        assert_eq!(printed.len(), 3);
    }
    let (ok, rest) = producer.finish();
    assert!(ok, "the producer died (a reader harmed it?)");
    assert!(rest.is_empty());
    let log = Log::open(&dir, LogConfig::default()).unwrap();
    assert!(log.recovery_info().clean_shutdown);
    let read = values(&log);
    assert_eq!(read.len() as i64, written);
    check_prefix(&read);
    log.close().unwrap();
}
