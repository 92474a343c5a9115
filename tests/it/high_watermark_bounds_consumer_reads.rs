//! The high watermark is the log's: consumers read below it (read_uncommitted) or below the
//! last stable offset (read_committed), followers read to the log end; it only moves up
//! (except that a truncation lowers it to the new log end), wakes its waiters, and under
//! `HighWatermarkPolicy::Replicated` survives a reopen through the partition's own
//! `replication-offset-checkpoint`. The default policy keeps single-node behaviour: the high
//! watermark is the log end offset, and no file is added.

use std::sync::Arc;
use std::time::Duration;

use crate::common::logs::batch;
use streamlog::log::{Watermark, REPLICATION_OFFSET_CHECKPOINT};
use streamlog::{HighWatermarkPolicy, IsolationLevel, Log, LogConfig};

fn config(policy: HighWatermarkPolicy) -> LogConfig {
    LogConfig::builder()
        .high_watermark_policy(policy)
        .build()
        .unwrap()
}

fn fetched_offsets(log: &Log, isolation: IsolationLevel) -> i64 {
    log.fetch(0, 1 << 20, isolation).unwrap().next_offset
}

#[test]
fn replicated_log_reads_stop_at_the_high_watermark() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("orders-3");
    let log = Log::open(&dir, config(HighWatermarkPolicy::Replicated)).unwrap();
    for _ in 0..3 {
        log.append(&batch(2, 0)).unwrap();
    }
    assert_eq!((log.log_end_offset(), log.high_watermark()), (6, 0));
    // Consumers see nothing yet; a follower reads everything.
    assert_eq!(fetched_offsets(&log, IsolationLevel::ReadUncommitted), 0);
    assert_eq!(fetched_offsets(&log, IsolationLevel::ReadCommitted), 0);
    assert_eq!(log.read(0, 1 << 20, None).unwrap().next_offset, 6);

    assert_eq!(log.maybe_advance_high_watermark(4).unwrap(), 4);
    assert_eq!(fetched_offsets(&log, IsolationLevel::ReadUncommitted), 4);
    assert_eq!(fetched_offsets(&log, IsolationLevel::ReadCommitted), 4);
    assert_eq!(log.last_stable_offset(), 4);
    // Never backwards, never past the log end.
    assert_eq!(log.maybe_advance_high_watermark(2).unwrap(), 4);
    assert_eq!(log.maybe_advance_high_watermark(100).unwrap(), 6);
    // A truncation lowers it with the log end.
    log.truncate_to(2).unwrap();
    assert_eq!(log.high_watermark(), 2);
    assert_eq!(log.watermark(Watermark::HighWatermark), 2);

    log.append(&batch(2, 0)).unwrap();
    log.maybe_advance_high_watermark(3).unwrap();
    log.close().unwrap();
    let text = std::fs::read_to_string(dir.join(REPLICATION_OFFSET_CHECKPOINT)).unwrap();
    assert_eq!(text, "0\n1\norders 3 3\n");
    drop(log);

    // Restored on open, and a damaged-tail reopen never leaves it above the log end.
    let log = Log::open(&dir, config(HighWatermarkPolicy::Replicated)).unwrap();
    assert_eq!((log.log_end_offset(), log.high_watermark()), (4, 3));
    // (The checkpoint still says 3 when the log, cut to 2, is abandoned.)
    log.truncate_to(2).unwrap();
    log.abandon();
    let log = Log::open(&dir, config(HighWatermarkPolicy::Replicated)).unwrap();
    assert_eq!((log.log_end_offset(), log.high_watermark()), (2, 2));
}

#[test]
fn checkpoint_writes_the_high_watermark_when_it_moved() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    let log = Log::open(&dir, config(HighWatermarkPolicy::Replicated)).unwrap();
    log.append(&batch(5, 0)).unwrap();
    log.maybe_advance_high_watermark(2).unwrap();
    log.checkpoint().unwrap();
    let text = std::fs::read_to_string(dir.join(REPLICATION_OFFSET_CHECKPOINT)).unwrap();
    assert_eq!(text, "0\n1\nt 0 2\n");
    // A crash after the checkpoint: the high watermark comes back from it.
    log.maybe_advance_high_watermark(4).unwrap();
    log.flush().unwrap();
    log.abandon();
    let log = Log::open(&dir, config(HighWatermarkPolicy::Replicated)).unwrap();
    assert_eq!((log.log_end_offset(), log.high_watermark()), (5, 2));
}

#[test]
fn waiters_wake_when_the_high_watermark_advances() {
    let tmp = tempfile::tempdir().unwrap();
    let log = Arc::new(Log::open(tmp.path(), config(HighWatermarkPolicy::Replicated)).unwrap());
    log.append(&batch(3, 0)).unwrap();
    // Appended, not committed: a wait for the high watermark times out.
    assert!(!log
        .wait_for(Watermark::HighWatermark, 3, Duration::from_millis(1))
        .unwrap());
    let leader = Arc::clone(&log);
    let t = std::thread::spawn(move || leader.maybe_advance_high_watermark(3));
    assert!(log
        .wait_for(Watermark::HighWatermark, 3, Duration::from_secs(60))
        .unwrap());
    assert_eq!(t.join().unwrap().unwrap(), 3);
    // The future too.
    let waker = Arc::clone(&log);
    let t = std::thread::spawn(move || {
        waker.append(&batch(1, 0)).unwrap();
        waker.maybe_advance_high_watermark(4)
    });
    let reached = futures_lite_block_on(log.watermark_reached(Watermark::HighWatermark, 4));
    assert!(reached.unwrap());
    t.join().unwrap().unwrap();
}

/// Polls a future to completion on this thread (the log's future needs no runtime).
fn futures_lite_block_on<F: std::future::Future>(f: F) -> F::Output {
    use std::task::{Context, Poll, Wake, Waker};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

#[test]
fn single_node_policies() {
    // LogEnd (the default): the high watermark is the log end, and no file is added.
    let tmp = tempfile::tempdir().unwrap();
    let log = Log::open(tmp.path(), LogConfig::default()).unwrap();
    log.append(&batch(3, 0)).unwrap();
    assert_eq!(log.high_watermark(), 3);
    assert_eq!(log.maybe_advance_high_watermark(1).unwrap(), 3);
    log.close().unwrap();
    assert!(!tmp.path().join(REPLICATION_OFFSET_CHECKPOINT).exists());

    // Flushed: consumers see only what is durable.
    let tmp = tempfile::tempdir().unwrap();
    let log = Log::open(tmp.path(), config(HighWatermarkPolicy::Flushed)).unwrap();
    log.append(&batch(3, 0)).unwrap();
    assert_eq!(log.high_watermark(), 0);
    assert_eq!(fetched_offsets(&log, IsolationLevel::ReadUncommitted), 0);
    log.flush().unwrap();
    assert_eq!(log.high_watermark(), 3);
    assert_eq!(fetched_offsets(&log, IsolationLevel::ReadUncommitted), 3);
}

#[test]
fn log_start_offset_never_passes_the_high_watermark() {
    let tmp = tempfile::tempdir().unwrap();
    let log = Log::open(tmp.path(), config(HighWatermarkPolicy::Replicated)).unwrap();
    log.append(&batch(4, 0)).unwrap();
    log.maybe_advance_high_watermark(2).unwrap();
    assert!(matches!(
        log.delete_records_before(3),
        Err(streamlog::Error::OffsetOutOfRange { .. })
    ));
    log.delete_records_before(2).unwrap();
    assert_eq!(log.log_start_offset(), 2);
}
