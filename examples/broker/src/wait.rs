//! Long-poll fetches wait on the logs they read, through streamlog's wait-for-data API
//! (`Log::watermark_reached`): a fetch that found too little parks until one of its
//! partitions' log end offsets moves past what it saw, or its deadline passes. Nothing polls
//! and nothing sleeps a fixed time; a fetch is woken only by the partitions it reads (an
//! append, or a transaction marker, which moves the last stable offset too), and by a log
//! that closes (a deleted topic), whereupon the next read reports the error.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use streamlog::log::Watermark;
use streamlog::Log;
use tokio::time::Instant;

/// A partition a fetch read, and its log end offset as it was *before* the read: an append
/// that raced with the read has already moved it, so the wait ends at once and the fetch
/// reads again.
#[derive(Debug)]
pub struct Seen {
    /// The partition's log.
    pub log: Arc<Log>,
    /// Its log end offset before the read.
    pub log_end_offset: i64,
}

impl Seen {
    /// Notes `log`'s log end offset now; call before reading it.
    pub fn before_reading(log: Arc<Log>) -> Seen {
        let log_end_offset = log.watermark(Watermark::LogEnd);
        Seen {
            log,
            log_end_offset,
        }
    }
}

/// Returns when any of `seen` has grown past the offset noted, or at `deadline`.
pub async fn until_any_grows(seen: &[Seen], deadline: Instant) {
    let waits: Vec<_> = seen
        .iter()
        .map(|s| {
            s.log
                .watermark_reached(Watermark::LogEnd, s.log_end_offset.saturating_add(1))
        })
        .collect();
    // A fetch of nothing readable (unknown partitions only) just waits out its time, as
    // Kafka's does.
    let _ = tokio::time::timeout_at(deadline, AnyReady(waits)).await;
}

/// Ready when any of its futures is (each is a `WatermarkReached`, woken by the appending
/// thread; its result is left for the next read to find).
struct AnyReady<F>(Vec<F>);

impl<F: Future + Unpin> Future for AnyReady<F> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0.iter_mut().any(|f| Pin::new(f).poll(cx).is_ready()) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use streamlog::{Compression, LogConfig, OwnedRecord};

    fn append(log: &Log) {
        log.append_records(&[OwnedRecord::new(0, None, Some(b"v"))], Compression::None)
            .unwrap();
    }

    /// A waiter on two logs wakes when the second grows, not before: the first growing
    /// past an offset the waiter never asked about is not enough.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn wakes_on_any_watched_log_and_only_past_what_it_saw() {
        let dir = tempfile::tempdir().unwrap();
        let a = Arc::new(Log::open(dir.path().join("a"), LogConfig::default()).unwrap());
        let b = Arc::new(Log::open(dir.path().join("b"), LogConfig::default()).unwrap());
        let seen = vec![
            Seen::before_reading(Arc::clone(&a)),
            Seen::before_reading(Arc::clone(&b)),
        ];
        // Grown before the wait starts: the wait returns at once.
        append(&b);
        let far = Instant::now() + Duration::from_secs(600);
        tokio::time::timeout(Duration::from_secs(60), until_any_grows(&seen, far))
            .await
            .expect("an append before the wait is seen");

        // Grown while waiting, from another thread: woken.
        let seen = vec![Seen::before_reading(Arc::clone(&a))];
        let writer = Arc::clone(&a);
        let waiter = tokio::spawn(async move {
            until_any_grows(&seen, Instant::now() + Duration::from_secs(600)).await;
        });
        tokio::task::spawn_blocking(move || append(&writer))
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(60), waiter)
            .await
            .expect("woken by the append")
            .unwrap();
    }

    /// Nothing grows: the wait ends at its deadline (on tokio's paused clock, so the test
    /// takes no time and asserts no timing).
    #[tokio::test(start_paused = true)]
    async fn ends_at_the_deadline_when_nothing_grows() {
        let dir = tempfile::tempdir().unwrap();
        let a = Arc::new(Log::open(dir.path().join("a"), LogConfig::default()).unwrap());
        let seen = vec![Seen::before_reading(Arc::clone(&a))];
        let deadline = Instant::now() + Duration::from_millis(500);
        until_any_grows(&seen, deadline).await;
        assert!(Instant::now() >= deadline);
        assert_eq!(a.log_end_offset(), 0);
    }

    /// A log that closes wakes its waiters (the next read reports the error).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_closed_log_wakes_its_waiters() {
        let dir = tempfile::tempdir().unwrap();
        let a = Arc::new(Log::open(dir.path().join("a"), LogConfig::default()).unwrap());
        let seen = vec![Seen::before_reading(Arc::clone(&a))];
        let waiter = tokio::spawn(async move {
            until_any_grows(&seen, Instant::now() + Duration::from_secs(600)).await;
        });
        tokio::task::spawn_blocking(move || a.close().unwrap())
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(60), waiter)
            .await
            .expect("woken by the close")
            .unwrap();
    }
}
