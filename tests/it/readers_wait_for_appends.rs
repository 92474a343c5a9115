//! Readers wait for data: blocking with a deadline and as a future, woken by appends,
//! without lost wake-ups, and released when the log closes.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::Duration;

use streamlog::log::Watermark;
use streamlog::{Compression, Error, Log, LogConfig, OwnedRecord};

/// Long enough never to expire on a slow machine; a lost wake-up shows as a `false` or a
/// hang bounded by it, never as a pass.
const PATIENCE: Duration = Duration::from_secs(60);

fn append_one(log: &Log) -> i64 {
    log.append_records(
        &[OwnedRecord::new(1_700_000_000_000, None, Some(b"v"))],
        Compression::None,
    )
    .unwrap()
    .first_offset
}

/// A waker that unparks the thread that polls.
struct ThreadWaker(Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// The smallest executor: polls on this thread, parks between wake-ups.
fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let waker = Waker::from(Arc::new(ThreadWaker(thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        thread::park();
    }
}

#[test]
fn waiting_threads_wake_on_append() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Log::open(dir.path(), LogConfig::default()).unwrap());
    let waiters: Vec<_> = (0..4)
        .map(|_| {
            let log = Arc::clone(&log);
            thread::spawn(move || log.wait_for(Watermark::LogEnd, 1, PATIENCE))
        })
        .collect();
    assert_eq!(append_one(&log), 0);
    for w in waiters {
        assert!(w.join().unwrap().unwrap());
    }
    assert_eq!(log.watermark(Watermark::LogEnd), 1);
}

#[test]
fn wait_times_out_when_nothing_is_appended() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    append_one(&log);
    assert!(!log
        .wait_for(Watermark::LogEnd, 2, Duration::from_millis(20))
        .unwrap());
    // Already reached: returns at once, whatever the timeout.
    assert!(log
        .wait_for(Watermark::LogEnd, 1, Duration::from_millis(0))
        .unwrap());
}

#[test]
fn future_completes_on_append() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Log::open(dir.path(), LogConfig::default()).unwrap());
    let mut fut = Box::pin(log.watermark_reached(Watermark::LogEnd, 1));
    // Polled once before the append: pending, with its listener registered.
    let waker = Waker::from(Arc::new(ThreadWaker(thread::current())));
    assert!(fut
        .as_mut()
        .poll(&mut Context::from_waker(&waker))
        .is_pending());
    let writer = Arc::clone(&log);
    let t = thread::spawn(move || append_one(&writer));
    assert!(block_on(fut).unwrap());
    t.join().unwrap();
}

#[test]
fn no_lost_wake_up_racing_append_and_wait() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Log::open(dir.path(), LogConfig::default()).unwrap());
    let rounds = 300;
    let writer = {
        let log = Arc::clone(&log);
        thread::spawn(move || {
            for i in 0..rounds {
                // Lockstep: wait for the reader to have seen the previous record, so every
                // append races one wait.
                assert!(log.wait_for(Watermark::LogEnd, i, PATIENCE).unwrap());
                append_one(&log);
            }
        })
    };
    for target in 1..=rounds {
        if target % 2 == 0 {
            assert!(log.wait_for(Watermark::LogEnd, target, PATIENCE).unwrap());
        } else {
            assert!(block_on(log.watermark_reached(Watermark::LogEnd, target)).unwrap());
        }
    }
    writer.join().unwrap();
}

#[test]
fn close_releases_waiters_with_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Log::open(dir.path(), LogConfig::default()).unwrap());
    let waiter = {
        let log = Arc::clone(&log);
        thread::spawn(move || log.wait_for(Watermark::LogEnd, 10, PATIENCE))
    };
    let fut = {
        let log = Arc::clone(&log);
        thread::spawn(move || block_on(log.watermark_reached(Watermark::LogEnd, 10)))
    };
    log.close().unwrap();
    assert!(matches!(
        waiter.join().unwrap(),
        Err(Error::LogClosed { .. })
    ));
    assert!(matches!(fut.join().unwrap(), Err(Error::LogClosed { .. })));
}
