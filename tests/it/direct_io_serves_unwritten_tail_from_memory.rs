//! Direct-I/O appends (`LogConfig::direct_io`) on the real filesystem: batches are held in
//! memory until a full write's worth has gathered, and readers see them at once, served
//! from memory; a flush, a roll and a close each put every byte in the file, and a log
//! written this way reopens (either way) with every record.

use std::path::Path;

use streamlog::{Compression, Log, LogConfig, OwnedRecord};

const WRITE: u32 = 64 * 1024;

fn config(direct: bool) -> LogConfig {
    config_in_flight(direct, 0)
}

/// With `in_flight` writes in flight, a writer thread writes full chunks while appends go
/// on (0: the appending thread writes each as it fills).
fn config_in_flight(direct: bool, in_flight: u32) -> LogConfig {
    LogConfig::builder()
        .direct_io(direct)
        .direct_io_write_bytes(WRITE)
        .direct_io_writes_in_flight(in_flight)
        .segment_bytes(1 << 20)
        .build()
        .unwrap()
}

fn value(offset: i64) -> Vec<u8> {
    let mut v = format!("v{offset}:").into_bytes();
    v.resize(100, b'a' + (offset % 26) as u8);
    v
}

fn append(log: &Log, n: i64) {
    for _ in 0..n {
        let first = log.log_end_offset();
        let records: Vec<OwnedRecord> = (first..first + 10)
            .map(|o| OwnedRecord::new(1_700_000_000_000 + o, None, Some(&value(o))))
            .collect();
        log.append_records(&records, Compression::None).unwrap();
    }
}

fn check_all(log: &Log) {
    let mut expected = 0i64;
    for r in log.records_from(0) {
        let r = r.unwrap();
        assert_eq!(r.offset(), expected);
        assert_eq!(r.value(), Some(&value(expected)[..]));
        expected += 1;
    }
    assert_eq!(expected, log.log_end_offset());
}

fn file_len(dir: &Path, base: i64) -> u64 {
    std::fs::metadata(dir.join(format!("{base:020}.log")))
        .unwrap()
        .len()
}

#[test]
fn unwritten_tail_is_read_from_memory_and_reaches_the_file_on_flush_roll_and_close() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("topic-0");
    let log = Log::open(&dir, config(true)).unwrap();
    append(&log, 5); // ~6 KB: less than one write
    assert_eq!(file_len(&dir, 0), 0, "nothing written before a full chunk");
    check_all(&log);
    let fetch = log.read(0, 1 << 20, None).unwrap();
    let slice = fetch.slice.unwrap();
    assert!(
        slice.std_file().is_none(),
        "no sendfile of bytes the file lacks"
    );
    let bytes = log.read_bytes(0, 1 << 20, None).unwrap();
    assert_eq!(bytes.len() as u64, slice.len());

    log.flush().unwrap();
    let size = file_len(&dir, 0);
    assert!(size > 0);
    append(&log, 100); // past one write: whole chunks reach the file
    let written = file_len(&dir, 0);
    assert!(
        written >= u64::from(WRITE) && written % 4096 == 0,
        "{written}"
    );
    check_all(&log);

    log.roll().unwrap();
    let bases = log.segment_base_offsets();
    let sealed_end = *bases.last().unwrap();
    assert!(sealed_end > 0);
    // The sealed segment's file is whole: every batch up to the new segment's base.
    let sealed = std::fs::read(dir.join(format!("{:020}.log", 0))).unwrap();
    let last = streamlog::Batches::new(&sealed)
        .map(|b| b.unwrap().last_offset())
        .last()
        .unwrap();
    assert_eq!(last + 1, sealed_end);
    append(&log, 3);
    check_all(&log);
    let mut leo = log.log_end_offset();
    log.close().unwrap();
    drop(log);

    for direct in [false, true] {
        let log = Log::open(&dir, config(direct)).unwrap();
        assert_eq!(log.log_end_offset(), leo);
        check_all(&log);
        append(&log, 2);
        check_all(&log);
        leo = log.log_end_offset();
        log.close().unwrap();
    }
}

#[test]
fn a_log_dropped_without_close_keeps_what_was_appended() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("topic-0");
    let log = Log::open(&dir, config(true)).unwrap();
    append(&log, 7);
    let leo = log.log_end_offset();
    drop(log);
    let log = Log::open(&dir, config(true)).unwrap();
    assert_eq!(log.log_end_offset(), leo);
    check_all(&log);
}

/// With writes in flight (a writer thread writes full chunks while appends go on), a reader
/// running beside the appender reads every record below the log end it saw, whether its
/// bytes are in the file, in a chunk being written or in the buffer; a flush puts every
/// byte in the file; and the log reopens, either way, with every record.
#[test]
fn writes_in_flight_are_read_from_memory_and_reach_the_file_on_flush() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("topic-0");
    let log = Arc::new(Log::open(&dir, config_in_flight(true, 2)).unwrap());
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (log, done) = (Arc::clone(&log), Arc::clone(&done));
        std::thread::spawn(move || {
            let mut passes = 0u32;
            while !done.load(Ordering::Acquire) {
                let end = log.log_end_offset();
                let mut expected = 0i64;
                for r in log.records_from(0) {
                    let r = r.unwrap();
                    if r.offset() >= end {
                        break;
                    }
                    assert_eq!(r.offset(), expected);
                    assert_eq!(r.value(), Some(&value(expected)[..]));
                    expected += 1;
                }
                assert!(expected >= end, "read {expected} of {end}");
                passes += 1;
            }
            passes
        })
    };
    // About 6 chunks of 64 KiB, in batches of about 1.2 KB.
    append(&log, 320);
    done.store(true, Ordering::Release);
    reader.join().unwrap();
    check_all(&log);
    log.flush().unwrap();
    assert_eq!(file_len(&dir, 0), log.size_in_bytes());
    let leo = log.log_end_offset();
    Arc::try_unwrap(log).unwrap().close().unwrap();
    for direct in [false, true] {
        let log = Log::open(&dir, config_in_flight(direct, 1)).unwrap();
        assert_eq!(log.log_end_offset(), leo);
        check_all(&log);
        log.close().unwrap();
    }
}
