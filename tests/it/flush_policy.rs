//! The flush policy: `flush.messages`, `flush.ms` through `tick`, the background flusher,
//! group commit, and the recovery point that reports what is durable.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use streamlog::io::{FileSystem, SimFs};
use streamlog::{Clock, Compression, Log, LogConfig, ManualClock, OwnedRecord};

fn records(n: usize) -> Vec<OwnedRecord> {
    (0..n)
        .map(|i| OwnedRecord::new(1_700_000_000_000 + i as i64, None, Some(b"durable?")))
        .collect()
}

fn open(fs: &SimFs, config: LogConfig) -> Log {
    let fs: Arc<dyn FileSystem> = Arc::new(fs.clone());
    Log::open_with(fs, Path::new("/data/flush-0"), config, &mut |_| Ok(()))
        .unwrap()
        .0
}

fn small() -> LogConfig {
    LogConfig::builder()
        .segment_index_bytes(4096)
        .build()
        .unwrap()
}

#[test]
fn flush_messages_makes_every_nth_message_durable() {
    let fs = SimFs::new(1);
    let log = open(
        &fs,
        small()
            .to_builder()
            .flush_messages(Some(10))
            .build()
            .unwrap(),
    );
    log.append_records(&records(4), Compression::None).unwrap();
    log.append_records(&records(4), Compression::None).unwrap();
    assert_eq!(log.recovery_point(), 0, "8 messages: below flush.messages");
    let syncs = fs.sync_count();
    log.append_records(&records(4), Compression::None).unwrap();
    assert_eq!(
        log.recovery_point(),
        12,
        "the 10th message triggers a flush of everything"
    );
    assert!(fs.sync_count() > syncs);
    // What the recovery point covers survives a crash.
    let after = fs.crash();
    drop(log);
    let log = open(&after, small());
    assert_eq!(log.log_end_offset(), 12);
}

#[test]
fn flush_every_append_reports_each_batch_durable() {
    let fs = SimFs::new(2);
    let log = open(
        &fs,
        small()
            .to_builder()
            .flush_messages(Some(1))
            .build()
            .unwrap(),
    );
    for i in 0..5 {
        let info = log.append_records(&records(3), Compression::Lz4).unwrap();
        assert_eq!(log.recovery_point(), info.last_offset + 1, "append {i}");
    }
}

#[test]
fn flush_ms_flushes_on_tick_when_due() {
    let fs = SimFs::new(3);
    let clock = Arc::new(ManualClock::new(1_000_000));
    let log = open(
        &fs,
        small()
            .to_builder()
            .flush_ms(Some(500))
            .clock(clock.clone())
            .build()
            .unwrap(),
    );
    log.append_records(&records(5), Compression::None).unwrap();
    clock.advance(499);
    log.tick(clock.now_ms()).unwrap();
    assert_eq!(log.recovery_point(), 0, "not due yet");
    clock.advance(1);
    log.tick(clock.now_ms()).unwrap();
    assert_eq!(log.recovery_point(), 5, "due: flushed");
    // The tick also wrote the recovery-point checkpoint.
    let text = fs
        .read_current(Path::new("/data/flush-0/recovery-point-offset-checkpoint"))
        .unwrap();
    assert_eq!(String::from_utf8(text).unwrap(), "0\n1\nflush 0 5\n");
}

#[test]
fn background_flusher_makes_appends_durable() {
    let fs = SimFs::new(4);
    let log = Arc::new(open(
        &fs,
        small().to_builder().flush_ms(Some(0)).build().unwrap(),
    ));
    let flusher = Log::spawn_flusher(Arc::clone(&log), Duration::from_millis(1));
    let info = log.append_records(&records(7), Compression::None).unwrap();
    // Waits on the flusher's completion signal; the timeout only bounds a failing run.
    assert!(log
        .wait_durable(info.last_offset + 1, Duration::from_secs(60))
        .unwrap());
    flusher.stop().unwrap();
    assert!(log.recovery_point() >= 7);
}

#[test]
fn concurrent_flushes_each_cover_their_own_append_and_share_fsyncs() {
    let fs = SimFs::new(5);
    let log = Arc::new(open(&fs, small()));
    let before = fs.sync_count();
    let threads = 8;
    let per_thread = 20;
    std::thread::scope(|s| {
        for _ in 0..threads {
            let log = Arc::clone(&log);
            s.spawn(move || {
                for _ in 0..per_thread {
                    let info = log.append_records(&records(2), Compression::None).unwrap();
                    let durable = log.flush().unwrap();
                    assert!(
                        durable > info.last_offset,
                        "flush returned before its append was durable"
                    );
                }
            });
        }
    });
    let syncs = fs.sync_count() - before;
    assert!(
        syncs <= (threads * per_thread) as u64,
        "{syncs} fsyncs for {} flushes",
        threads * per_thread
    );
    assert_eq!(log.recovery_point(), log.log_end_offset());
    let after = fs.crash();
    let expected = log.log_end_offset();
    drop(log);
    assert_eq!(open(&after, small()).log_end_offset(), expected);
}

#[test]
fn truncation_lowers_the_recovery_point_on_disk() {
    let fs = SimFs::new(6);
    let log = open(&fs, small());
    log.append_records(&records(10), Compression::None).unwrap();
    log.append_records(&records(10), Compression::None).unwrap();
    log.flush().unwrap();
    log.checkpoint().unwrap();
    log.truncate_to(10).unwrap();
    assert_eq!(log.recovery_point(), 10);
    log.append_records(&records(3), Compression::None).unwrap();
    // A crash now must not make recovery expect offsets 10..20 of the old tail.
    let after = fs.crash();
    drop(log);
    let log = open(&after, small());
    assert!(log.log_end_offset() >= 10);
}
