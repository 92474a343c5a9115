//! One partition's log: ordered segments, offsets, append, read, roll and truncation.
//!
//! ```text
//! <dir>/00000000000000000000.log         batches, byte for byte as Kafka stores them
//!      /00000000000000000000.index       sparse offset index
//!      /00000000000000000000.timeindex   sparse time index
//!      /00000000000000001234.log ...     the next segment, named by its base offset
//!      /log-start-offset-checkpoint      the log start offset, when above the first segment
//!      /.kafka_cleanshutdown             present only while the log is cleanly closed
//! ```
//!
//! One writer (appends, rolls, truncations, serialised by a mutex) and any number of
//! readers. The writer publishes an immutable `View` (segments, offsets, the active
//! segment's readable size) after the bytes are in the file; readers clone the current view
//! (a pointer copy under a read lock) and read only what it covers, so they never see a
//! partial batch and never wait for the writer's I/O.

mod append;
mod checkpoint;
pub mod cleaner;
mod flush;
mod iter;
mod open;
mod options;
mod read;
mod refresh;
mod retention;
mod timestamp;
mod txn;
mod verify;
mod wait;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

pub use append::AppendInfo;
pub use checkpoint::RECOVERY_POINT_CHECKPOINT;
pub use cleaner::{
    BatchRetention, CleanableInfo, Cleaner, CleanerConfig, CleanerStats, CompactionHooks,
    DefaultCompactionHooks, CLEANER_OFFSET_CHECKPOINT,
};
pub(crate) use flush::BackgroundThread;
pub use flush::FlusherHandle;
pub use iter::{LogRecord, LogRecords};
pub use open::RecoveryInfo;
pub use options::LogOptions;
pub use read::{FetchData, FileSlice};
pub use retention::{RetentionOutcome, RetentionRule, SegmentInfo};
pub use timestamp::{ListOffsetsSpec, TimestampAndOffset};
pub use txn::ProducerCompactionHooks;
pub use verify::{
    list_segment_files, verify_partition, verify_partition_with, Finding, FindingKind,
    SegmentReader, VerifyProgress, VerifyReport,
};
pub use wait::{Watermark, WatermarkReached};

use crate::config::LogConfig;
use crate::error::{Error, Result};
use crate::io::FileSystem;
use crate::segment::{IndexConfig, Segment};

/// Name of the marker file that says the log was closed cleanly.
pub const CLEAN_SHUTDOWN_FILE: &str = ".kafka_cleanshutdown";
/// Name of the file holding the log start offset.
pub const LOG_START_OFFSET_CHECKPOINT: &str = "log-start-offset-checkpoint";

/// What readers see: an immutable snapshot the writer replaces after every change.
#[derive(Debug)]
pub(crate) struct View {
    pub segments: Arc<[Arc<Segment>]>,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
    /// Readable bytes of the last (active) segment.
    pub active_size: u64,
    /// Bumped by every truncation, so a reader can tell its positions may be stale.
    pub generation: u64,
    /// Largest timestamps of the sealed segments, built by the first timestamp lookup and
    /// shared by every view of the same segment list.
    pub segment_times: timestamp::SegmentTimesCell,
}

impl View {
    /// Index of the segment that holds `offset` (the last with base offset ≤ it).
    pub(crate) fn segment_index(&self, offset: i64) -> Option<usize> {
        self.segments
            .partition_point(|s| s.base_offset() <= offset)
            .checked_sub(1)
    }

    /// Readable size of segment `i` under this view.
    pub(crate) fn readable_size(&self, i: usize) -> u64 {
        if i + 1 == self.segments.len() {
            self.active_size
        } else {
            self.segments.get(i).map_or(0, |s| s.size())
        }
    }
}

/// State only the writer touches.
#[derive(Debug)]
pub(crate) struct Writer {
    pub segments: Vec<Arc<Segment>>,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
    pub leader_epoch: i32,
    pub generation: u64,
    /// When the active segment was created or opened (clock ms): `segment.ms` measures from
    /// here when the segment's first batch carries no timestamp, as Kafka's `LogSegment`
    /// falls back to its creation time.
    pub active_since_ms: i64,
}

/// One partition's log in a directory. `Send + Sync`: share it in an `Arc`.
///
/// ```
/// use streamlog::{Log, LogConfig, OwnedRecord, Compression};
///
/// let dir = tempfile::tempdir()?;
/// let log = Log::open(dir.path(), LogConfig::default())?;
/// let info = log.append_records(
///     &[OwnedRecord::new(1_700_000_000_000, Some(b"k"), Some(b"v"))],
///     Compression::None,
/// )?;
/// assert_eq!(info.first_offset, 0);
/// let records: Vec<_> = log.records_from(0).collect::<Result<_, _>>()?;
/// assert_eq!(records[0].value(), Some(&b"v"[..]));
/// log.close()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Log {
    dir: PathBuf,
    config: LogConfig,
    fs: Arc<dyn FileSystem>,
    writer: Mutex<Writer>,
    view: RwLock<Arc<View>>,
    flusher: flush::Flusher,
    poisoned: AtomicBool,
    closed: AtomicBool,
    /// Held by a compaction pass for its whole run: one pass per log at a time.
    cleaner_lock: Mutex<()>,
    /// Producer state (idempotence, transactions); locked after `writer` when both are.
    producers: Mutex<crate::producer::ProducerStateManager>,
    /// The watermarks readers wait on (`wait.rs`); advanced after each publish.
    progress: wait::Progress,
    /// The directory's exclusive lock, held from open to `close` (none for a read-only log).
    dir_lock: Mutex<Option<Box<dyn crate::io::FileLock>>>,
    /// Opened with [`LogOptions::read_only`]: every change is refused, and the files are
    /// reached through a [`crate::io::ReadOnlyFs`].
    read_only: bool,
    /// What the open did.
    recovery: RecoveryInfo,
    /// The in-memory overlay a read-only log reads through (`refresh.rs` looks past its cuts).
    overlay: Option<Arc<crate::io::ReadOnlyFs>>,
    /// Set once an open (for writing) succeeded: only then may a drop close the log. A log
    /// dropped half-opened, after a failed recovery, must not be marked clean.
    close_on_drop: bool,
}

impl Log {
    /// The partition directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The log's configuration.
    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    pub(crate) fn index_config(config: &LogConfig) -> IndexConfig {
        IndexConfig {
            max_index_bytes: config.segment_index_bytes,
            index_interval_bytes: config.index_interval_bytes,
        }
    }

    pub(crate) fn view(&self) -> Arc<View> {
        Arc::clone(&self.view.read())
    }

    /// Publishes the writer's state to readers.
    pub(crate) fn publish(&self, w: &Writer) {
        let view = View {
            segments: w.segments.iter().cloned().collect(),
            log_start_offset: w.log_start_offset,
            log_end_offset: w.log_end_offset,
            active_size: w.segments.last().map_or(0, |s| s.size()),
            generation: w.generation,
            segment_times: timestamp::new_segment_times(),
        };
        *self.view.write() = Arc::new(view);
        self.progress
            .notifier(Watermark::LogEnd)
            .advance(w.log_end_offset);
    }

    /// Publishes only new offsets and size, keeping the segment list (the append fast path).
    pub(crate) fn publish_append(&self, w: &Writer, current: &View) {
        let view = View {
            segments: Arc::clone(&current.segments),
            log_start_offset: w.log_start_offset,
            log_end_offset: w.log_end_offset,
            active_size: w.segments.last().map_or(0, |s| s.size()),
            generation: w.generation,
            segment_times: Arc::clone(&current.segment_times),
        };
        *self.view.write() = Arc::new(view);
        self.progress
            .notifier(Watermark::LogEnd)
            .advance(w.log_end_offset);
    }

    /// The first offset the log holds.
    pub fn log_start_offset(&self) -> i64 {
        self.view.read().log_start_offset
    }

    /// The offset the next appended record will get.
    pub fn log_end_offset(&self) -> i64 {
        self.view.read().log_end_offset
    }

    /// Number of segments.
    pub fn segment_count(&self) -> usize {
        self.view.read().segments.len()
    }

    /// Base offsets of the segments, ascending.
    pub fn segment_base_offsets(&self) -> Vec<i64> {
        self.view
            .read()
            .segments
            .iter()
            .map(|s| s.base_offset())
            .collect()
    }

    /// Total bytes of the `.log` files.
    pub fn size_in_bytes(&self) -> u64 {
        let v = self.view();
        (0..v.segments.len()).map(|i| v.readable_size(i)).sum()
    }

    /// Sets the leader epoch that `append` stamps on batches.
    pub fn set_leader_epoch(&self, epoch: i32) {
        self.writer.lock().leader_epoch = epoch;
    }

    /// The leader epoch that `append` stamps on batches.
    pub fn leader_epoch(&self) -> i32 {
        self.writer.lock().leader_epoch
    }

    fn lock_open(&self) -> Result<parking_lot::MutexGuard<'_, Writer>> {
        if self.read_only {
            return Err(Error::ReadOnlyLog {
                dir: self.dir.clone(),
            });
        }
        let w = self.writer.lock();
        self.check_usable()?;
        Ok(w)
    }

    /// Seals the active segment and starts a new one at the log end offset.
    pub fn roll(&self) -> Result<()> {
        let mut w = self.lock_open()?;
        self.roll_locked(&mut w)?;
        self.publish(&w);
        Ok(())
    }

    pub(crate) fn roll_locked(&self, w: &mut Writer) -> Result<()> {
        let leo = w.log_end_offset;
        self.roll_locked_at(w, leo)
    }

    /// Seals the active segment and starts a new one at `base_offset` (the log end offset,
    /// or a replicated batch's base when the gap to it is too wide for relative offsets).
    pub(crate) fn roll_locked_at(&self, w: &mut Writer, base_offset: i64) -> Result<()> {
        let leo = base_offset;
        if w.segments.last().is_some_and(|active| active.size() == 0) {
            return Ok(()); // already empty: nothing to roll away from
        }
        // The new segment first: if it cannot be made (no space for its preallocated
        // indexes), the active segment is left as it was, unsealed, and takes the batches
        // that still fit it. Sealed first, it would go on taking them with its indexes
        // trimmed under their maps.
        let seg = Segment::create(&self.fs, &self.dir, leo, Log::index_config(&self.config))?;
        if let Some(active) = w.segments.last() {
            // Sealing trims the indexes; durability of the sealed data is the flush
            // policy's business, not the roll's.
            if let Err(e) = active.seal() {
                let _ = seg.delete_files();
                return self.poison_on_io(Err(e));
            }
        }
        w.segments.push(Arc::new(seg));
        w.active_since_ms = self.config.clock.now_ms();
        self.sync_dir()?;
        // Kafka snapshots producer state at every roll: an open replays at most the
        // active segment.
        self.snapshot_producer_state(w)
    }

    /// Drops every batch at and above `offset`; the log end offset becomes `offset`, or the
    /// base offset of the batch holding `offset` when it falls inside one (logs are cut at
    /// batch boundaries, as Kafka cuts them). Where a compaction gap lies below that point,
    /// the log ends at the gap's start instead, after the last batch kept. Truncating at or
    /// below the log start offset, or below the first segment, empties the log and restarts
    /// it at `offset`; a cut below the log start offset by any of the rules above leaves the
    /// log empty where it now ends.
    pub fn truncate_to(&self, offset: i64) -> Result<()> {
        let mut w = self.lock_open()?;
        if offset >= w.log_end_offset {
            return Ok(());
        }
        let cut = self.truncate_locked(&mut w, offset);
        // Producer state above the cut goes: reloaded from an older snapshot plus a replay.
        let reloaded = self.load_producer_state(&w, open::ProducerScan::default());
        cut.and(reloaded.map(|_| ()))
    }

    fn truncate_locked(&self, w: &mut Writer, offset: i64) -> Result<()> {
        w.generation += 1;
        if offset <= w.log_start_offset {
            return self.truncate_fully_locked(w, offset.max(0));
        }
        // Drop whole segments at or above the offset.
        while w.segments.len() > 1 && w.segments.last().is_some_and(|s| s.base_offset() >= offset) {
            if let Some(seg) = w.segments.pop() {
                seg.delete_files()?;
            }
        }
        let Some(last) = w.segments.last().cloned() else {
            return self.truncate_fully_locked(w, offset);
        };
        if last.base_offset() > offset {
            // Only a first segment that starts past `offset` is left (a replica's log whose
            // first batch lay past its log start offset): all of it goes, and the log
            // restarts at `offset`, as Kafka's truncateTo does below the first segment. Cut
            // in place, the segment would be named past its own log end offset.
            return self.truncate_fully_locked(w, offset);
        }
        // The batch holding `offset` (or, in a compaction gap, the batch after it) goes
        // whole, and the log ends after the last batch kept: never in a gap, which no open
        // could find again (recovery would take the offsets the recovery point covers for
        // lost data).
        let end = last.size();
        let (position, first_dropped) = match last.find_batch(offset, end)? {
            Some(b) => (b.position, b.base_offset.min(offset)),
            None => (end, offset),
        };
        let mut new_leo = last.base_offset();
        last.scan(last.index_position(first_dropped - 1)?, position, |b| {
            new_leo = b.last_offset + 1;
            std::ops::ControlFlow::Continue(())
        })?;
        // Readers must never reach bytes while they are cut: first show them only what is
        // kept, under the new generation (so reads begun on an older view retry), then cut.
        *self.view.write() = Arc::new(View {
            segments: w.segments.iter().cloned().collect(),
            log_start_offset: w.log_start_offset.min(new_leo),
            log_end_offset: new_leo,
            active_size: position,
            generation: w.generation,
            segment_times: timestamp::new_segment_times(),
        });
        // Trimmed first, the indexes reload as they are instead of being rebuilt by a scan.
        last.seal()?;
        let active = Segment::open_active(
            &self.fs,
            &self.dir,
            last.base_offset(),
            Log::index_config(&self.config),
            Some((position, new_leo)),
        );
        // Readers were already shown the cut log: a writer that cannot follow must stop.
        let active = match active {
            Ok(a) => a,
            Err(e) => {
                self.poison(format!(
                    "truncation of {} failed: {e}",
                    last.log_path().display()
                ));
                return Err(e);
            }
        };
        // Make the cut durable now: batches truncated away (a follower's divergent tail)
        // must not come back after a crash.
        self.poison_on_io(active.sync_log())?;
        if let Some(slot) = w.segments.last_mut() {
            *slot = Arc::new(active);
        }
        w.log_end_offset = new_leo;
        if new_leo < w.log_start_offset {
            // The batch holding `offset` (or the gap before it) also held the log start
            // offset and went whole: the log is left empty where it now ends (a log never
            // starts after it ends, and a follower refetches the batch from its base).
            w.log_start_offset = new_leo;
            self.write_log_start_checkpoint(new_leo)?;
        }
        self.sync_dir()?;
        self.publish(w);
        self.clamp_cleaner_checkpoint(new_leo)?;
        self.clamp_recovery_point(new_leo)
    }

    fn truncate_fully_locked(&self, w: &mut Writer, offset: i64) -> Result<()> {
        for seg in w.segments.drain(..) {
            seg.delete_files()?;
        }
        let seg = Segment::create(&self.fs, &self.dir, offset, Log::index_config(&self.config))?;
        w.segments.push(Arc::new(seg));
        w.active_since_ms = self.config.clock.now_ms();
        w.log_start_offset = offset;
        w.log_end_offset = offset;
        self.write_log_start_checkpoint(offset)?;
        self.sync_dir()?;
        self.publish(w);
        self.clamp_cleaner_checkpoint(offset)?;
        self.clamp_recovery_point(offset)
    }

    /// Advances the log start offset to `offset` (Kafka's DeleteRecords) and deletes the
    /// segments entirely below it. The active segment is never deleted.
    pub fn delete_records_before(&self, offset: i64) -> Result<()> {
        let mut w = self.lock_open()?;
        if offset > w.log_end_offset || offset < 0 {
            return Err(Error::OffsetOutOfRange {
                offset,
                log_start_offset: w.log_start_offset,
                log_end_offset: w.log_end_offset,
            });
        }
        // Never moves the start back; segments already wholly below it (left by an earlier
        // call that could not remove them, or by a reopen) still go.
        let start = offset.max(w.log_start_offset);
        // Segments whose successor starts at or below the new start hold nothing readable.
        let below = w
            .segments
            .iter()
            .skip(1)
            .take_while(|next| next.base_offset() <= start)
            .count();
        if start == w.log_start_offset && below == 0 {
            return Ok(());
        }
        self.delete_prefix_locked(&mut w, below, start)?;
        Ok(())
    }

    fn write_log_start_checkpoint(&self, offset: i64) -> Result<()> {
        self.poison_on_io(checkpoint::write(
            &*self.fs,
            &self.dir,
            LOG_START_OFFSET_CHECKPOINT,
            offset,
        ))
    }

    /// fsyncs the partition directory (after segments are created, renamed or removed).
    pub(crate) fn sync_dir(&self) -> Result<()> {
        let r = self
            .fs
            .sync_dir(&self.dir)
            .map_err(|e| Error::io(&self.dir, e));
        self.poison_on_io(r)
    }

    /// An I/O failure while making metadata durable leaves the log unsure what is on disk:
    /// poison it, as for a failed fsync of data.
    pub(crate) fn poison_on_io<T>(&self, r: Result<T>) -> Result<T> {
        if let Err(e @ Error::Io { .. }) = &r {
            self.poison(e.to_string());
        }
        r
    }

    /// Flushes, seals the indexes to their size, writes the checkpoints and marks the log
    /// cleanly closed, so the next open loads indexes without scanning. Later calls fail
    /// with `LogClosed`.
    pub fn close(&self) -> Result<()> {
        if self.read_only {
            // Nothing to write: a read-only log only stops.
            self.closed.store(true, Ordering::Release);
            self.progress.stop();
            return Ok(());
        }
        // The writer lock is held throughout: nothing may append to the sealed segment,
        // whose index files are trimmed below their mappings. Flushing never takes it.
        let w = self.lock_open()?;
        let leo = w.log_end_offset;
        if let Some(active) = w.segments.last() {
            active.seal()?;
        }
        self.flush_to(leo)?;
        if let Some(active) = w.segments.last() {
            // The trimmed indexes, durable before the marker says they can be trusted.
            self.poison_on_io(active.flush())?;
        }
        self.write_recovery_point(leo)?;
        self.snapshot_producer_state(&w)?;
        self.poison_on_io(crate::io::write_file_atomic(
            &*self.fs,
            &self.dir.join(CLEAN_SHUTDOWN_FILE),
            b"",
        ))?;
        self.closed.store(true, Ordering::Release);
        self.progress.stop();
        // Closed, the directory is free for the next open (even while readers keep this
        // `Log` alive).
        self.dir_lock.lock().take();
        drop(w);
        Ok(())
    }
}

impl Log {
    /// Drops the log without closing it, as a crash or a killed process leaves it: no
    /// flush, no checkpoint, no clean-shutdown marker, so the next open recovers. For tests
    /// and failure drills; an application closes its logs (or lets them drop, which closes
    /// them).
    pub fn abandon(self) {
        // Marked closed, the drop below writes nothing.
        self.closed.store(true, Ordering::Release);
        self.progress.stop();
    }
}

impl Drop for Log {
    /// A log dropped without [`Log::close`] is closed here, best effort, so the next open is
    /// clean (loads its indexes without a recovery scan). Errors cannot be reported from a
    /// drop: a log that fails to close is left as a crash would leave it, and the next open
    /// recovers. A poisoned or read-only log is left alone.
    fn drop(&mut self) {
        if self.close_on_drop
            && !self.closed.load(Ordering::Acquire)
            && !self.poisoned.load(Ordering::Acquire)
        {
            let _ = self.close();
        }
    }
}
