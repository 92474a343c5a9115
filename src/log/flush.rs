//! Durability: flushing with group commit, the recovery point, the flush policy, poisoning.
//!
//! `flush()` makes everything appended before it durable. Callers that arrive while an fsync
//! is running wait for it and then share the next one, so N concurrent flushers cost about
//! two fsyncs, not N. An fsync error poisons the log: Linux may drop the dirty pages of a
//! failed fsync, so a retry could report success for data that is gone; a poisoned log
//! refuses every later append and flush instead.

use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use super::checkpoint::{self, RECOVERY_POINT_CHECKPOINT};
use super::Log;
use crate::error::{Error, Result};

/// Flush bookkeeping, shared by appenders, flushers and the maintenance tick.
#[derive(Debug, Default)]
pub(crate) struct FlushState {
    /// Offsets below this are durable.
    pub recovery_point: i64,
    /// The recovery point last written to the checkpoint file.
    pub checkpointed: i64,
    /// An fsync is running.
    pub in_progress: bool,
    /// Messages appended since the last flush started.
    pub unflushed_messages: u64,
    /// When the last flush finished (clock ms).
    pub last_flush_ms: i64,
    /// Why the log is poisoned, once it is.
    pub poison: Option<String>,
}

/// The flush machinery of a log.
#[derive(Debug, Default)]
pub(crate) struct Flusher {
    pub state: Mutex<FlushState>,
    pub done: Condvar,
}

impl Log {
    /// Makes everything appended before this call durable (fsync of the segments written
    /// since the last flush) and returns the recovery point. Concurrent callers share fsyncs.
    pub fn flush(&self) -> Result<i64> {
        self.check_usable()?;
        let target = self.view().log_end_offset;
        self.flush_to(target)
    }

    /// The recovery point: every offset below it is durable.
    pub fn recovery_point(&self) -> i64 {
        self.flusher.state.lock().recovery_point
    }

    /// Blocks until every offset below `offset` is durable (flushed by another caller, the
    /// flush policy or a background flusher), or `timeout` passes. Returns whether it is
    /// durable; fails when the log is poisoned.
    pub fn wait_durable(&self, offset: i64, timeout: Duration) -> Result<bool> {
        let deadline = std::time::Instant::now() + timeout;
        let mut st = self.flusher.state.lock();
        loop {
            if st.poison.is_some() {
                drop(st);
                return Err(self.poison_error());
            }
            if st.recovery_point >= offset {
                return Ok(true);
            }
            if self.flusher.done.wait_until(&mut st, deadline).timed_out() {
                return Ok(st.recovery_point >= offset);
            }
        }
    }

    /// Whether an fsync failure has poisoned the log.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Acquire)
    }

    pub(crate) fn poison_error(&self) -> Error {
        let reason = self
            .flusher
            .state
            .lock()
            .poison
            .clone()
            .unwrap_or_else(|| "unknown".into());
        Error::LogPoisoned {
            dir: self.dir.clone(),
            reason,
        }
    }

    /// Poisons the log: every later append and flush fails.
    pub(crate) fn poison(&self, reason: String) {
        let mut st = self.flusher.state.lock();
        if st.poison.is_none() {
            st.poison = Some(reason);
        }
        self.poisoned.store(true, Ordering::Release);
        self.flusher.done.notify_all();
        drop(st);
        self.progress.stop();
    }

    /// Fails when the log is closed or poisoned.
    pub(crate) fn check_usable(&self) -> Result<()> {
        if self.poisoned.load(Ordering::Acquire) {
            return Err(self.poison_error());
        }
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::LogClosed {
                dir: self.dir.clone(),
            });
        }
        Ok(())
    }

    pub(crate) fn flush_to(&self, target: i64) -> Result<i64> {
        let mut st = self.flusher.state.lock();
        loop {
            if st.poison.is_some() {
                drop(st);
                return Err(self.poison_error());
            }
            if st.recovery_point >= target {
                return Ok(st.recovery_point);
            }
            if st.in_progress {
                self.flusher.done.wait(&mut st);
                continue;
            }
            st.in_progress = true;
            st.unflushed_messages = 0;
            let from = st.recovery_point;
            drop(st);

            // Everything the view covers was written before it was published.
            let view = self.view();
            let result = self.sync_from(&view, from);
            st = self.flusher.state.lock();
            st.in_progress = false;
            match result {
                Ok(()) => {
                    // A truncation during the fsync may have replaced what was synced.
                    if self.view.read().generation == view.generation {
                        st.recovery_point = st.recovery_point.max(view.log_end_offset);
                    }
                    st.last_flush_ms = self.config.clock.now_ms();
                }
                Err(e) => {
                    let reason = e.to_string();
                    if st.poison.is_none() {
                        st.poison = Some(reason);
                    }
                    self.poisoned.store(true, Ordering::Release);
                    self.progress.stop();
                }
            }
            self.flusher.done.notify_all();
        }
    }

    /// fsyncs every segment that may hold bytes at or above `from`.
    fn sync_from(&self, view: &super::View, from: i64) -> Result<()> {
        let first = view.segment_index(from).unwrap_or(0);
        let last = view.segments.len().saturating_sub(1);
        for (i, seg) in view.segments.iter().enumerate().skip(first) {
            if i == last {
                seg.sync_log()?;
            } else {
                seg.flush()?;
            }
        }
        Ok(())
    }

    /// Counts appended messages and flushes when `flush.messages` says so.
    pub(crate) fn after_append(&self, messages: u64, last_offset: i64) -> Result<()> {
        let Some(every) = self.config.flush_messages else {
            return Ok(());
        };
        let due = {
            let mut st = self.flusher.state.lock();
            st.unflushed_messages += messages;
            st.unflushed_messages >= every.max(1)
        };
        if due {
            self.flush_to(last_offset + 1)?;
        }
        Ok(())
    }

    /// Periodic maintenance, driven by the application (or [`Log::spawn_flusher`]): flushes
    /// when `flush.ms` has passed since the last flush, writes the recovery-point
    /// checkpoint when it has moved, and forgets producer ids idle past
    /// `producer_id_expiration_ms`.
    pub fn tick(&self, now_ms: i64) -> Result<()> {
        self.check_usable()?;
        self.remove_expired_producers(now_ms);
        let (due, rp) = {
            let st = self.flusher.state.lock();
            let due = self
                .config
                .flush_ms
                .is_some_and(|ms| now_ms - st.last_flush_ms >= ms);
            (due, st.recovery_point)
        };
        if due && rp < self.log_end_offset() {
            self.flush()?;
        }
        self.checkpoint()
    }

    /// Writes the recovery-point checkpoint if the recovery point moved since the last one.
    /// A poisoned log refuses, as it refuses every other write.
    pub fn checkpoint(&self) -> Result<()> {
        if self.is_poisoned() {
            return Err(self.poison_error());
        }
        let rp = {
            let st = self.flusher.state.lock();
            if st.recovery_point == st.checkpointed {
                return Ok(());
            }
            st.recovery_point
        };
        self.write_recovery_point(rp)
    }

    pub(crate) fn write_recovery_point(&self, rp: i64) -> Result<()> {
        // A checkpoint whose fsync failed may or may not be on disk: poison, as for data.
        self.poison_on_io(checkpoint::write(
            &*self.fs,
            &self.dir,
            RECOVERY_POINT_CHECKPOINT,
            rp,
        ))?;
        self.flusher.state.lock().checkpointed = rp;
        Ok(())
    }

    /// Lowers the recovery point after a truncation below it, on disk too, so recovery never
    /// expects offsets the log no longer has.
    pub(crate) fn clamp_recovery_point(&self, log_end_offset: i64) -> Result<()> {
        let rewrite = {
            let mut st = self.flusher.state.lock();
            st.recovery_point = st.recovery_point.min(log_end_offset);
            st.checkpointed > log_end_offset
        };
        if rewrite {
            self.write_recovery_point(log_end_offset)?;
        }
        Ok(())
    }

    /// Starts a thread that calls [`Log::tick`] every `interval` until the returned handle
    /// is dropped. Errors from the tick poison nothing by themselves; they are kept for
    /// [`FlusherHandle::stop`] to return.
    pub fn spawn_flusher(log: Arc<Log>, interval: Duration) -> FlusherHandle {
        let thread = BackgroundThread::spawn("flusher", move |stop_rx| loop {
            match stop_rx.recv_timeout(interval) {
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let now = log.config.clock.now_ms();
                    match log.tick(now) {
                        Ok(()) => {}
                        Err(Error::LogClosed { .. }) => return Ok(()),
                        Err(e) => return Err(e),
                    }
                }
                _ => return Ok(()),
            }
        });
        FlusherHandle { thread }
    }
}

/// A background flusher; dropping it stops the thread.
#[derive(Debug)]
pub struct FlusherHandle {
    thread: BackgroundThread,
}

impl FlusherHandle {
    /// Stops the thread and returns the error that ended it, if any.
    pub fn stop(self) -> Result<()> {
        self.thread.stop()
    }
}

/// A thread that runs until told to stop, with the stop-and-join logic the flusher and the
/// storage's maintenance thread (`storage/maintenance.rs`) share, written once so both stop
/// the same way: closing the channel wakes the thread, which returns its result.
#[derive(Debug)]
pub(crate) struct BackgroundThread {
    /// Names the thread in the error when it panicked.
    what: &'static str,
    /// Dropped to tell the thread to stop: its `recv_timeout` then returns `Disconnected`.
    stop: Option<mpsc::Sender<()>>,
    thread: Option<thread::JoinHandle<Result<()>>>,
}

impl BackgroundThread {
    /// Runs `body` on a new thread; it should return once `stop_rx` disconnects.
    pub(crate) fn spawn<F>(what: &'static str, body: F) -> Self
    where
        F: FnOnce(mpsc::Receiver<()>) -> Result<()> + Send + 'static,
    {
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        BackgroundThread {
            what,
            stop: Some(stop_tx),
            thread: Some(thread::spawn(move || body(stop_rx))),
        }
    }

    /// Stops the thread, waits for it and returns its result.
    pub(crate) fn stop(mut self) -> Result<()> {
        self.stop.take();
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(Error::InvalidArgument(format!(
                "{} thread panicked",
                self.what
            ))),
            None => Ok(()),
        }
    }
}

impl Drop for BackgroundThread {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
