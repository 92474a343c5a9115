//! Durability (the part of Kafka's `UnifiedLog` that flushes): flushing with group commit,
//! the recovery point and its checkpoint, the flush policy, poisoning.
//!
//! `flush()` makes everything appended before it durable. Callers that arrive while an fsync
//! is running wait for it and then share the next one, so N concurrent flushers cost about
//! two fsyncs, not N. An fsync error poisons the log: Linux may drop the dirty pages of a
//! failed fsync, so a retry could report success for data that is gone; a poisoned log
//! refuses every later append and flush instead.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use super::background::BackgroundThread;
use super::checkpoint::{self, RECOVERY_POINT_CHECKPOINT};
use super::Log;
use crate::error::{Error, Result};
use crate::io::FileSystem;

/// Flush bookkeeping, shared by appenders, flushers and the maintenance tick.
#[derive(Debug, Default)]
struct FlushState {
    /// Offsets below this are durable.
    recovery_point: i64,
    /// The recovery point last written to the checkpoint file.
    checkpointed: i64,
    /// An fsync is running.
    in_progress: bool,
    /// Messages appended since the last flush started.
    unflushed_messages: u64,
    /// When the last flush finished (clock ms).
    last_flush_ms: i64,
    /// Why the log is poisoned, once it is.
    poison: Option<String>,
}

/// The durability of one log: what is flushed (the recovery point and its checkpoint), the
/// group commit of concurrent flushes, and the poison an I/O failure leaves. Its lock is the
/// innermost but the view's (see the lock order in `log/mod.rs`); it is never held across an
/// fsync. It knows nothing of segments: [`Durability::flush_to`] is handed the fsync to run.
#[derive(Debug)]
pub(crate) struct Durability {
    dir: PathBuf,
    fs: Arc<dyn FileSystem>,
    state: Mutex<FlushState>,
    done: Condvar,
    poisoned: AtomicBool,
    closed: AtomicBool,
    /// The log's waiters (`wait.rs`), released when the log is poisoned or closed.
    waiters: std::sync::OnceLock<Arc<super::wait::Progress>>,
}

impl Durability {
    /// Durability of a log opened with `recovery_point` durable and `checkpointed` (if any)
    /// in its checkpoint file, at clock time `now_ms`.
    pub(crate) fn new(
        dir: PathBuf,
        fs: Arc<dyn FileSystem>,
        recovery_point: i64,
        checkpointed: Option<i64>,
        now_ms: i64,
    ) -> Self {
        Durability {
            dir,
            fs,
            state: Mutex::new(FlushState {
                recovery_point,
                checkpointed: checkpointed.unwrap_or(i64::MIN),
                last_flush_ms: now_ms,
                ..FlushState::default()
            }),
            done: Condvar::new(),
            poisoned: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            waiters: std::sync::OnceLock::new(),
        }
    }

    /// The recovery point: every offset below it is durable.
    pub(crate) fn recovery_point(&self) -> i64 {
        self.state.lock().recovery_point
    }

    /// When the last flush finished, and the recovery point.
    pub(crate) fn last_flush(&self) -> (i64, i64) {
        let st = self.state.lock();
        (st.last_flush_ms, st.recovery_point)
    }

    /// Blocks until every offset below `offset` is durable or `timeout` passes.
    pub(crate) fn wait_durable(&self, offset: i64, timeout: Duration) -> Result<bool> {
        let deadline = std::time::Instant::now() + timeout;
        let mut st = self.state.lock();
        loop {
            if st.poison.is_some() {
                drop(st);
                return Err(self.poison_error());
            }
            if st.recovery_point >= offset {
                return Ok(true);
            }
            if self.done.wait_until(&mut st, deadline).timed_out() {
                return Ok(st.recovery_point >= offset);
            }
        }
    }

    /// Whether an fsync failure has poisoned the log.
    pub(crate) fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Acquire)
    }

    pub(crate) fn poison_error(&self) -> Error {
        let reason = self
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
        let mut st = self.state.lock();
        if st.poison.is_none() {
            st.poison = Some(reason);
        }
        self.poisoned.store(true, Ordering::Release);
        self.done.notify_all();
        drop(st);
        self.stop_waiters();
    }

    /// An I/O failure while making metadata durable leaves the log unsure what is on disk:
    /// poison it, as for a failed fsync of data.
    pub(crate) fn poison_on_io<T>(&self, r: Result<T>) -> Result<T> {
        if let Err(e @ Error::Io { .. }) = &r {
            self.poison(e.to_string());
        }
        r
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

    /// Whom to release when the log stops (set once, when the log is assembled).
    pub(crate) fn set_waiters(&self, waiters: Arc<super::wait::Progress>) {
        let _ = self.waiters.set(waiters);
    }

    /// Wakes every waiter for good: the log will not move again.
    fn stop_waiters(&self) {
        if let Some(w) = self.waiters.get() {
            w.stop();
        }
    }

    /// Whether the log was closed.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Marks the log closed: later calls fail with `LogClosed`.
    pub(crate) fn mark_closed(&self) {
        self.closed.store(true, Ordering::Release);
        self.stop_waiters();
    }

    /// Makes everything below `target` durable, sharing fsyncs with concurrent callers:
    /// `sync(from)` fsyncs what may hold bytes at or above `from` and returns what it
    /// covered; `covered(&what)`, called under the lock, gives the offset below which that
    /// is now durable (`None` when a truncation replaced it meanwhile). `now_ms` stamps the
    /// flush.
    pub(crate) fn flush_to<V>(
        &self,
        target: i64,
        now_ms: impl Fn() -> i64,
        mut sync: impl FnMut(i64) -> Result<V>,
        covered: impl Fn(&V) -> Option<i64>,
    ) -> Result<i64> {
        let mut st = self.state.lock();
        loop {
            if st.poison.is_some() {
                drop(st);
                return Err(self.poison_error());
            }
            if st.recovery_point >= target {
                return Ok(st.recovery_point);
            }
            if st.in_progress {
                self.done.wait(&mut st);
                continue;
            }
            st.in_progress = true;
            st.unflushed_messages = 0;
            let from = st.recovery_point;
            drop(st);

            let result = sync(from);
            st = self.state.lock();
            st.in_progress = false;
            match result {
                Ok(what) => {
                    if let Some(end) = covered(&what) {
                        st.recovery_point = st.recovery_point.max(end);
                    }
                    st.last_flush_ms = now_ms();
                }
                Err(e) => {
                    let reason = e.to_string();
                    if st.poison.is_none() {
                        st.poison = Some(reason);
                    }
                    self.poisoned.store(true, Ordering::Release);
                    self.stop_waiters();
                }
            }
            self.done.notify_all();
        }
    }

    /// Counts appended messages; true when `every` (`flush.messages`) says to flush.
    pub(crate) fn count_appended(&self, messages: u64, every: u64) -> bool {
        let mut st = self.state.lock();
        st.unflushed_messages += messages;
        st.unflushed_messages >= every.max(1)
    }

    /// The recovery point, if it moved since the last checkpoint was written.
    pub(crate) fn unchecked_recovery_point(&self) -> Option<i64> {
        let st = self.state.lock();
        (st.recovery_point != st.checkpointed).then_some(st.recovery_point)
    }

    pub(crate) fn write_recovery_point(&self, rp: i64) -> Result<()> {
        // A checkpoint whose fsync failed may or may not be on disk: poison, as for data.
        self.poison_on_io(checkpoint::write(
            &*self.fs,
            &self.dir,
            RECOVERY_POINT_CHECKPOINT,
            rp,
        ))?;
        self.state.lock().checkpointed = rp;
        Ok(())
    }

    /// Lowers the recovery-point checkpoint on disk to `offset` if it is above, leaving the
    /// recovery point in memory as it is: what a truncation does before it cuts anything.
    pub(crate) fn lower_checkpoint(&self, offset: i64) -> Result<()> {
        let above = self.state.lock().checkpointed > offset;
        if above {
            self.write_recovery_point(offset)?;
        }
        Ok(())
    }

    /// The log was emptied and restarts at `offset` (a full truncation): nothing below it
    /// is left to flush, so the recovery point is `offset`, on disk too.
    pub(crate) fn restart_at(&self, offset: i64) -> Result<()> {
        self.state.lock().recovery_point = offset;
        self.write_recovery_point(offset)?;
        self.done.notify_all();
        Ok(())
    }

    /// Lowers the recovery point after a truncation below it, on disk too, so recovery never
    /// expects offsets the log no longer has.
    pub(crate) fn clamp_recovery_point(&self, log_end_offset: i64) -> Result<()> {
        let rewrite = {
            let mut st = self.state.lock();
            st.recovery_point = st.recovery_point.min(log_end_offset);
            st.checkpointed > log_end_offset
        };
        if rewrite {
            self.write_recovery_point(log_end_offset)?;
        }
        Ok(())
    }
}

impl Log {
    /// Makes everything appended before this call durable (fsync of the segments written
    /// since the last flush) and returns the recovery point. Concurrent callers share fsyncs.
    pub fn flush(&self) -> Result<i64> {
        self.durability.check_usable()?;
        let target = self.local.view().log_end_offset;
        self.flush_to(target)
    }

    /// The recovery point: every offset below it is durable.
    pub fn recovery_point(&self) -> i64 {
        self.durability.recovery_point()
    }

    /// Blocks until every offset below `offset` is durable (flushed by another caller, the
    /// flush policy or a background flusher), or `timeout` passes. Returns whether it is
    /// durable; fails when the log is poisoned.
    pub fn wait_durable(&self, offset: i64, timeout: Duration) -> Result<bool> {
        self.durability.wait_durable(offset, timeout)
    }

    /// Whether an fsync failure has poisoned the log.
    pub fn is_poisoned(&self) -> bool {
        self.durability.is_poisoned()
    }

    pub(crate) fn flush_to(&self, target: i64) -> Result<i64> {
        let clock = &self.local.config.clock;
        let recovery_point = self.durability.flush_to(
            target,
            || clock.now_ms(),
            |from| {
                // What rolls deferred first: the new segments' directory entries and the
                // sealed segments' trimmed indexes must be durable before the recovery point
                // vouches for what lies past them.
                self.finish_deferred(true)?;
                // Everything the view covers was written before it was published.
                let view = self.local.view();
                self.local.sync_from(&view, from)?;
                Ok(view)
            },
            // A truncation during the fsync may have replaced what was synced.
            |view| {
                (self.local.view.read().generation == view.generation)
                    .then_some(view.log_end_offset)
            },
        )?;
        self.follow_recovery_point(recovery_point);
        Ok(recovery_point)
    }

    /// Counts appended messages and flushes when `flush.messages` says so.
    /// Runs first what a roll during the append deferred.
    pub(crate) fn after_append(&self, messages: u64, last_offset: i64) -> Result<()> {
        self.finish_roll()?;
        let Some(every) = self.config().flush_messages else {
            return Ok(());
        };
        if self.durability.count_appended(messages, every) {
            self.flush_to(last_offset + 1)?;
        }
        Ok(())
    }

    /// Periodic maintenance, driven by the application (or [`Log::spawn_flusher`]): flushes
    /// when `flush.ms` has passed since the last flush, writes the recovery-point
    /// checkpoint when it has moved, and forgets producer ids idle past
    /// `producer_id_expiration_ms`.
    pub fn tick(&self, now_ms: i64) -> Result<()> {
        self.durability.check_usable()?;
        self.remove_expired_producers(now_ms);
        self.flush_if_due(now_ms)?;
        self.checkpoint()
    }

    /// Flushes when `flush.ms` has passed since the last flush and something is unflushed
    /// (Kafka's `LogManager.flushDirtyLogs` for one log); whether it flushed.
    pub(crate) fn flush_if_due(&self, now_ms: i64) -> Result<bool> {
        let (last_flush_ms, rp) = self.durability.last_flush();
        let due = self
            .config()
            .flush_ms
            .is_some_and(|ms| now_ms.saturating_sub(last_flush_ms) >= ms);
        if due && rp < self.log_end_offset() {
            self.flush()?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Writes the recovery-point checkpoint if the recovery point moved since the last one,
    /// and the replication-offset checkpoint if the high watermark did (under
    /// [`HighWatermarkPolicy::Replicated`](crate::HighWatermarkPolicy::Replicated), for a log
    /// not in a `Storage`).
    /// A poisoned log refuses, as it refuses every other write.
    pub fn checkpoint(&self) -> Result<()> {
        if self.durability.is_poisoned() {
            return Err(self.durability.poison_error());
        }
        // What a roll deferred (the indexes of a segment whose data is durable), before the
        // checkpoint vouches for it.
        self.finish_deferred(false)?;
        if let Some(rp) = self.durability.unchecked_recovery_point() {
            self.durability.write_recovery_point(rp)?;
            // Then where the recovery point lies in its segment: recovery trusts it only
            // beside a checkpoint naming the same recovery point and only if the batch it
            // records is found there, so a crash between the two files, or a failed write
            // of this one, costs a full scan of that segment and nothing else (which is why
            // its errors are not the log's). Without it (the point starts its segment, or
            // the segment went meanwhile) recovery scans that segment whole, as before.
            if let Some(p) = self.recovery_position(rp) {
                let _ = checkpoint::write_position(&*self.local.fs, &self.local.dir, &p);
            }
        }
        self.checkpoint_high_watermark()
    }

    /// Where the durable recovery point `rp` lies inside its segment: the batch ending just
    /// before it, and the index entries for the bytes before it, which are made durable here
    /// (an active segment's index maps are otherwise synced only when it rolls or closes).
    /// `None` when `rp` starts its segment or the segment is gone.
    fn recovery_position(&self, rp: i64) -> Option<checkpoint::RecoveryPosition> {
        let view = self.local.view();
        let seg = view.segments.get(view.segment_index(rp - 1)?)?;
        let base = seg.base_offset();
        let b = seg.find_batch(rp - 1, seg.size()).ok()??;
        if b.last_offset != rp - 1 || base >= rp {
            return None;
        }
        let mut header = [0u8; crate::record::BATCH_HEADER_SIZE];
        seg.read_exact(&mut header, b.position).ok()?;
        let at = crate::record::header::CRC;
        let crc = u32::from_be_bytes(header.get(at..at + 4)?.try_into().ok()?);
        let position = b.position + b.size;
        let ix = seg.indexes().ok()?;
        let offset_entries = (0..ix.offset.len())
            .take_while(|&i| u64::from(ix.offset.offset_entry(i).position) < position)
            .count();
        let time_entries = (0..ix.time.len())
            .take_while(|&i| base + i64::from(ix.time.time_entry(i).relative_offset) < rp)
            .count();
        // Counted first, then synced: every entry counted is in what the sync covers.
        ix.offset.flush().ok()?;
        ix.time.flush().ok()?;
        Some(checkpoint::RecoveryPosition {
            recovery_point: rp,
            segment_base: base,
            at: crate::segment::ResumePosition {
                batch_position: b.position,
                batch_base_offset: b.base_offset,
                batch_crc: crc,
                position,
                next_offset: rp,
                offset_entries,
                time_entries,
            },
        })
    }

    /// Starts a thread that calls [`Log::tick`] every `interval` until the returned handle
    /// is dropped. Errors from the tick poison nothing by themselves; they are kept for
    /// [`FlusherHandle::stop`] to return.
    pub fn spawn_flusher(log: Arc<Log>, interval: Duration) -> FlusherHandle {
        let thread = BackgroundThread::spawn("flusher", move |stop_rx| loop {
            match stop_rx.recv_timeout(interval) {
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let now = log.config().clock.now_ms();
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
