//! The log and what reads hand out cross threads: `Log` is `Send + Sync` (share it in an
//! `Arc`, one writer and many readers), and so are fetch results, file slices, records and
//! the record iterator. Checked at compile time.

use streamlog::{AppendInfo, FetchData, FileSlice, Log, LogRecord, LogRecords, RecoveryInfo};

const fn assert_send_sync<T: Send + Sync + ?Sized>() {}

const _: () = {
    assert_send_sync::<Log>();
    assert_send_sync::<FetchData>();
    assert_send_sync::<FileSlice>();
    assert_send_sync::<LogRecord>();
    assert_send_sync::<LogRecords<'static>>();
    assert_send_sync::<AppendInfo>();
    assert_send_sync::<RecoveryInfo>();
    assert_send_sync::<std::sync::Arc<Log>>();
};

#[test]
fn log_crosses_threads() {
    let dir = tempfile::tempdir().unwrap();
    let log = std::sync::Arc::new(Log::open(dir.path(), streamlog::LogConfig::default()).unwrap());
    let writer = {
        let log = std::sync::Arc::clone(&log);
        std::thread::spawn(move || {
            log.append_records(
                &[streamlog::OwnedRecord::new(0, None, Some(b"x"))],
                streamlog::Compression::None,
            )
            .unwrap()
            .first_offset
        })
    };
    assert_eq!(writer.join().unwrap(), 0);
    // A read result made on one thread is consumed on another.
    let data = log.read(0, 1, None).unwrap();
    let len = std::thread::spawn(move || data.slice.map(|s| s.to_vec().unwrap().len()))
        .join()
        .unwrap();
    assert!(len.is_some_and(|n| n > 61));
}
