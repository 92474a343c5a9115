//! Waiting for the log to grow: a reader (a long-poll fetch, a tailing consumer, later
//! `acks=all` and replication) waits until a watermark reaches an offset, blocking with a
//! deadline or as a [`Future`], without polling and without holding any lock of the log.
//!
//! Each watermark readers can wait on has a [`Notifier`]: its latest value in an atomic and an
//! [`event_listener::Event`] fired when the value moves up. The writer publishes a new value
//! after the bytes it covers are readable (the view is published first), so a woken reader
//! finds them. A waiter registers its listener *before* checking the value a second time: an
//! advance that lands between the first check and the registration is seen by the second
//! check, and one that lands after it wakes the listener. Nothing is lost and no lock is held
//! while waiting.
//!
//! Adding a watermark is one [`Watermark`] variant, one [`Notifier`] in [`Progress`] and
//! one `advance` call where the value moves. The high watermark's notifier holds the log's
//! high watermark itself; it changes only through [`Progress::published`] (after each view
//! is published) and [`Progress::raise_high_watermark`], under one small lock, so a raise
//! racing with a truncation never leaves it above the log end.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use event_listener::{Event, EventListener, Listener};

use super::Log;
use crate::error::Result;

/// An offset of the log that readers can wait on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Watermark {
    /// The log end offset: the offset the next appended record gets. It reaches `n + 1` once
    /// the record at offset `n` is readable.
    LogEnd,
    /// The high watermark (see [`Log::high_watermark`]): what consumers may read. It reaches
    /// `n + 1` once the record at offset `n` is committed (replicated to the in-sync replicas,
    /// or appended or flushed on a single replica, as
    /// [`HighWatermarkPolicy`](crate::HighWatermarkPolicy) says). A long-poll fetch and an
    /// `acks=all` produce wait on it.
    HighWatermark,
}

/// One watermark: its latest value and the event that wakes its waiters.
#[derive(Debug)]
pub(crate) struct Notifier {
    value: AtomicI64,
    /// Waiters that registered (or are about to register) a listener: an advance with none
    /// skips the event, whose `notify` takes a lock every time (an append's cost otherwise).
    waiters: AtomicUsize,
    event: Event,
}

impl Notifier {
    fn new(value: i64) -> Self {
        Notifier {
            value: AtomicI64::new(value),
            waiters: AtomicUsize::new(0),
            event: Event::new(),
        }
    }

    /// Counts a waiter in, then registers its listener; the waiter checks the value again
    /// after this. Either an advance sees the count (it is after the count in the total
    /// order of these `SeqCst` operations) and notifies, or it swapped the value before the
    /// count went up, and the waiter's check after it sees the new value.
    fn listen(&self) -> (Waiting<'_>, EventListener) {
        self.waiters.fetch_add(1, Ordering::SeqCst);
        (Waiting(&self.waiters), self.event.listen())
    }

    fn get(&self) -> i64 {
        self.value.load(Ordering::SeqCst)
    }

    /// Sets the value (a truncation may lower it) and wakes every waiter when it rose.
    pub(crate) fn advance(&self, value: i64) {
        let previous = self.value.swap(value, Ordering::SeqCst);
        if value > previous && self.waiters.load(Ordering::SeqCst) > 0 {
            // `notify` begins with a SeqCst fence: a waiter that registered before this
            // point is woken, one that registers after it sees the new value.
            self.event.notify(usize::MAX);
        }
    }
}

/// A waiter counted in [`Notifier::waiters`] while this lives.
#[derive(Debug)]
pub(crate) struct Waiting<'n>(&'n AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Every watermark of a log, and whether the log has stopped (closed or poisoned: waiters
/// then return the log's error instead of waiting for offsets that will never come).
#[derive(Debug)]
pub(crate) struct Progress {
    log_end: Notifier,
    /// The high watermark's value is the log's high watermark (there is no other copy).
    high_watermark: Notifier,
    /// Serialises changes of the high watermark (the value is read without it): held only to
    /// compare and store, innermost of the log's locks.
    high_watermark_change: parking_lot::Mutex<()>,
    stopped: AtomicBool,
}

impl Progress {
    pub(crate) fn new(log_end_offset: i64, high_watermark: i64) -> Self {
        Progress {
            log_end: Notifier::new(log_end_offset),
            high_watermark: Notifier::new(high_watermark.min(log_end_offset)),
            high_watermark_change: parking_lot::Mutex::new(()),
            stopped: AtomicBool::new(false),
        }
    }

    pub(crate) fn notifier(&self, mark: Watermark) -> &Notifier {
        match mark {
            Watermark::LogEnd => &self.log_end,
            Watermark::HighWatermark => &self.high_watermark,
        }
    }

    /// The log now spans `[log_start, log_end)` (the view covering it is published): the log
    /// end moves, and the high watermark follows it (`follow_end`) or is kept within the log
    /// (a truncation lowers it, a deletion of a prefix raises it to the new start).
    pub(crate) fn published(&self, log_start: i64, log_end: i64, follow_end: bool) {
        self.log_end.advance(log_end);
        if follow_end {
            // Nothing else moves it under this policy (the writer lock serialises publishes).
            self.high_watermark.advance(log_end);
            return;
        }
        let _one = self.high_watermark_change.lock();
        let hw = self.high_watermark.get();
        let new = hw.max(log_start).min(log_end);
        if new != hw {
            self.high_watermark.advance(new);
        }
    }

    /// Raises the high watermark to `offset` bounded by `[log_start, log_end]` of the log as
    /// published now (`bounds`, read under the lock: a view published later is clamped again
    /// by [`Progress::published`]); never lowers it. Returns the high watermark after.
    pub(crate) fn raise_high_watermark(
        &self,
        offset: i64,
        bounds: impl FnOnce() -> (i64, i64),
    ) -> i64 {
        let _one = self.high_watermark_change.lock();
        let (log_start, log_end) = bounds();
        let hw = self.high_watermark.get();
        let new = offset.max(log_start).min(log_end);
        if new > hw {
            self.high_watermark.advance(new);
            new
        } else {
            hw
        }
    }

    /// Wakes every waiter of every watermark for good: the log will not move again.
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.log_end.event.notify(usize::MAX);
        self.high_watermark.event.notify(usize::MAX);
    }

    fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }
}

impl Log {
    /// The current value of `mark`.
    pub fn watermark(&self, mark: Watermark) -> i64 {
        self.local.progress.notifier(mark).get()
    }

    /// Whether `mark` has reached `target`: `Some(Ok(true))` when it has, `Some(Err)` when the
    /// log stopped (closed or poisoned) short of it, `None` when waiting makes sense.
    fn reached(&self, mark: Watermark, target: i64) -> Option<Result<bool>> {
        if self.local.progress.notifier(mark).get() >= target {
            return Some(Ok(true));
        }
        if self.local.progress.is_stopped() {
            return Some(self.durability.check_usable().map(|()| false));
        }
        None
    }

    /// Blocks until `mark` reaches at least `target` or `timeout` passes; returns whether it
    /// reached it. To wait for the record at offset `n`, wait for [`Watermark::LogEnd`] to
    /// reach `n + 1`. Fails when the log is closed or poisoned before then.
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamlog::{log::Watermark, Log, LogConfig, OwnedRecord, Compression};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let log = std::sync::Arc::new(Log::open(dir.path(), LogConfig::default())?);
    /// let writer = std::sync::Arc::clone(&log);
    /// let t = std::thread::spawn(move || {
    ///     writer.append_records(&[OwnedRecord::new(0, None, Some(b"v"))], Compression::None)
    /// });
    /// assert!(log.wait_for(Watermark::LogEnd, 1, Duration::from_secs(60))?);
    /// t.join().unwrap()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn wait_for(&self, mark: Watermark, target: i64, timeout: Duration) -> Result<bool> {
        match Instant::now().checked_add(timeout) {
            Some(deadline) => self.wait_until(mark, target, deadline),
            None => self.wait_until(mark, target, far_future()),
        }
    }

    /// [`Log::wait_for`] with a deadline instead of a timeout.
    pub fn wait_until(&self, mark: Watermark, target: i64, deadline: Instant) -> Result<bool> {
        loop {
            if let Some(r) = self.reached(mark, target) {
                return r;
            }
            let (_waiting, listener) = self.local.progress.notifier(mark).listen();
            if let Some(r) = self.reached(mark, target) {
                return r;
            }
            if listener.wait_deadline(deadline).is_none() {
                return self.reached(mark, target).unwrap_or(Ok(false));
            }
        }
    }

    /// A future that completes when `mark` reaches at least `target` (with `Ok(true)`), or
    /// with the log's error when it is closed or poisoned first. It needs no particular
    /// runtime (it is woken by the appending thread); bound it in time with your runtime's
    /// timeout. Dropping it stops waiting.
    ///
    /// ```
    /// # async fn tail(log: &streamlog::Log, next: i64) -> streamlog::Result<()> {
    /// use streamlog::log::Watermark;
    /// log.watermark_reached(Watermark::LogEnd, next + 1).await?;
    /// for record in log.records_from(next) { let _ = record?; }
    /// # Ok(()) }
    /// ```
    pub fn watermark_reached(&self, mark: Watermark, target: i64) -> WatermarkReached<'_> {
        WatermarkReached {
            log: self,
            mark,
            target,
            listener: None,
        }
    }
}

/// A deadline no wait reaches (for timeouts too large to add to now).
fn far_future() -> Instant {
    let now = Instant::now();
    let year = Duration::from_secs(365 * 24 * 3600);
    now.checked_add(year * 100).unwrap_or(now + year)
}

/// The future of [`Log::watermark_reached`].
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct WatermarkReached<'l> {
    log: &'l Log,
    mark: Watermark,
    target: i64,
    listener: Option<(Waiting<'l>, EventListener)>,
}

impl Future for WatermarkReached<'_> {
    type Output = Result<bool>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        loop {
            if let Some(r) = this.log.reached(this.mark, this.target) {
                return Poll::Ready(r);
            }
            match this.listener.as_mut() {
                // Registered, then checked again at the top of the loop.
                None => {
                    this.listener = Some(this.log.local.progress.notifier(this.mark).listen());
                }
                Some((_, listener)) => {
                    if Pin::new(listener).poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    this.listener = None;
                }
            }
        }
    }
}
