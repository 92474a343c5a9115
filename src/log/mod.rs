//! One partition's log: ordered segments, offsets, append, read, roll and truncation.
//!
//! ```text
//! <dir>/00000000000000000000.log         batches, byte for byte as Kafka stores them
//!      /00000000000000000000.index       sparse offset index
//!      /00000000000000000000.timeindex   sparse time index
//!      /00000000000000001234.log ...     the next segment, named by its base offset
//!      /log-start-offset-checkpoint      the log start offset, when above the first segment
//!      /leader-epoch-checkpoint          leader epochs and their start offsets (`Replicated`)
//!      /replication-offset-checkpoint    the high watermark (`HighWatermarkPolicy::Replicated`,
//!                                        a log opened on its own; a `Storage` keeps one file
//!                                        for its data directory)
//!      /.kafka_cleanshutdown             present only while the log is cleanly closed
//! ```
//!
//! One writer (appends, rolls, truncations, serialised by a mutex) and any number of
//! readers. The writer publishes an immutable `View` (segments, offsets, the active
//! segment's readable size) after the bytes are in the file; readers clone the current view
//! (a pointer copy under a read lock) and read only what it covers, so they never see a
//! partial batch and never wait for the writer's I/O.
//!
//! # Shape
//!
//! [`Log`] is a thin facade, as Kafka's `UnifiedLog` is over its parts. Each part has its
//! own state and its own lock, and knows nothing of the parts composed beside it:
//!
//! - the **local log** (`local.rs`, Kafka's `LocalLog`): the segments, the writer lock, the
//!   published view; roll, write, read, truncation, deletion of a prefix. Recovery at open
//!   (`open.rs`) builds it.
//! - the **producer-state manager** (`crate::producer::ProducerStateManager`): idempotence,
//!   transactions, the last stable offset, `.snapshot` and `.txnindex` files.
//! - **durability** (`durability.rs`): flush with group commit, the recovery point and its
//!   checkpoint, the flush policy, poisoning.
//! - the **cleaner** (`cleaner/`): compaction, one pass at a time per log, and its
//!   checkpoint.
//!
//! The facade's methods (`append.rs`, `txn.rs`, `retention.rs`, ...) run them in order:
//! check with the producer state, write through the local log, record in the producer
//! state, then let durability flush.
//!
//! # Lock order
//!
//! Locks are taken in this order and never the other way (a lock may be skipped):
//!
//! 1. the cleaner's pass lock (`cleaner::CleanerState`), held for a whole compaction pass;
//! 2. the local log's segment-files lock (`LocalLog::files`), taken by whatever removes,
//!    replaces or cuts segment files (retention and DeleteRecords, the cleaner's swap,
//!    truncation) and by a close; held across that file work, which runs with the writer
//!    lock released (retention's checkpoint and removals, the swap's renames and fsyncs),
//!    and never by an append, a roll, a flush or a read; a checkpoint tries it (never
//!    waits) and holds it from reading the recovery point until the recovery-point files
//!    are written, so no truncation runs in between;
//! 3. the local log's writer lock (`LocalLog::writer`), never held across an fsync on the
//!    append path (a roll's fsyncs are deferred until it is released), nor by retention or
//!    the cleaner's swap across their file work;
//! 4. the local log's deferred-work lock (`LocalLog::deferred`), held across the fsyncs a
//!    roll leaves (`Log::finish_roll`, a flush, a clean close) and never by an append or
//!    a read;
//! 5. the producer-state lock (`ProducerStateManager`), never held across file I/O (nor is
//!    its list of unsynced snapshots); then the leader-epoch file lock (`Log::epoch_file`,
//!    held across a write of `leader-epoch-checkpoint`, never taken by an append in the
//!    log's own epoch) and the leader-epoch cache lock (`Log::epochs`, memory only);
//! 6. the durability lock (`Durability`), never held across an fsync; then the
//!    high-watermark lock (`wait::Progress`), held only to compare and store the high
//!    watermark (a raise reads the view's bounds under it; a publish takes it after
//!    swapping the view);
//! 7. the view lock (`LocalLog::view`), held only to copy or swap an `Arc`;
//! 8. a segment's own locks: its index-load lock (held while one reader loads or rebuilds
//!    the indexes; others wait for its result), then its write state, innermost.
//!
//! `Storage`'s table lock is above all of these and is not held while a log opens or
//! closes.

mod append;
mod background;
pub(crate) mod checkpoint;
pub mod cleaner;
mod durability;
mod epoch;
mod high_watermark;
mod iter;
mod local;
mod open;
mod options;
mod read;
mod refresh;
mod retention;
mod timestamp;
mod txn;
mod verify;
mod wait;

use std::path::Path;
use std::sync::Arc;

pub use append::AppendInfo;
pub(crate) use background::BackgroundThread;
pub use checkpoint::{
    RECOVERY_POINT_CHECKPOINT, RECOVERY_POINT_POSITION, REPLICATION_OFFSET_CHECKPOINT,
};
pub use cleaner::{
    BatchRetention, CleanableInfo, Cleaner, CleanerConfig, CleanerStats, CompactionHooks,
    DefaultCompactionHooks, CLEANER_OFFSET_CHECKPOINT,
};
pub use durability::FlusherHandle;
pub use epoch::{EpochEntry, LEADER_EPOCH_CHECKPOINT};
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

pub(crate) use durability::Durability;
pub(crate) use local::{LocalLog, RollDecision, View, Writer};

use crate::config::LogConfig;
use crate::error::{Error, Result};
use crate::producer::{ProducerStateManager, ScannedRange, SegmentRange};

/// Name of the marker file that says the log was closed cleanly.
pub const CLEAN_SHUTDOWN_FILE: &str = ".kafka_cleanshutdown";
/// Name of the file holding the log start offset.
pub const LOG_START_OFFSET_CHECKPOINT: &str = "log-start-offset-checkpoint";

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
    /// Segments, the writer lock and the published view.
    local: LocalLog,
    /// Idempotence and transactions, with their own lock and files.
    producers: ProducerStateManager,
    /// Flushes, the recovery point, poisoning.
    durability: Durability,
    /// One compaction pass at a time.
    cleaner: cleaner::CleanerState,
    /// The directory's exclusive lock, held from open to `close` (none for a read-only log
    /// or a partition of a `Storage`, whose data directory's lock covers it).
    dir_lock: parking_lot::Mutex<Option<Box<dyn crate::io::FileLock>>>,
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
    /// Whether the high watermark is persisted in this directory's own
    /// `replication-offset-checkpoint` (not for a partition of a `Storage`, which keeps its
    /// data directory's, nor for a read-only log).
    own_high_watermark_file: bool,
    /// The high watermark last written to that checkpoint (-1: none).
    high_watermark_checkpointed: std::sync::atomic::AtomicI64,
    /// The leader-epoch cache (under `HighWatermarkPolicy::Replicated`; empty otherwise).
    epochs: parking_lot::Mutex<epoch::LeaderEpochCache>,
    /// Serialises writes of `leader-epoch-checkpoint` (held across them, taken before
    /// `epochs`, never by an append of the log's own epoch).
    epoch_file: parking_lot::Mutex<()>,
}

impl Log {
    /// Composes a log from its parts, after an open found its segments; loads the producer
    /// state (`scan` says what recovery already read) and returns where its replay began.
    pub(crate) fn assemble(
        local: LocalLog,
        durability: Durability,
        scan: ScannedRange,
    ) -> Result<(Log, i64)> {
        let (start, expiration) = {
            let w = local.writer.lock();
            (w.log_start_offset, local.config.producer_id_expiration_ms)
        };
        let producers =
            ProducerStateManager::new(local.dir.clone(), Arc::clone(&local.fs), expiration, start);
        durability.set_waiters(Arc::clone(&local.progress));
        let log = Log {
            local,
            producers,
            durability,
            cleaner: cleaner::CleanerState::default(),
            dir_lock: parking_lot::Mutex::new(None),
            read_only: false,
            recovery: RecoveryInfo::default(),
            overlay: None,
            close_on_drop: false,
            own_high_watermark_file: false,
            high_watermark_checkpointed: std::sync::atomic::AtomicI64::new(-1),
            epochs: parking_lot::Mutex::default(),
            epoch_file: parking_lot::Mutex::new(()),
        };
        let replayed_from = {
            let w = log.local.writer.lock();
            log.local.publish(&w);
            log.load_producer_state(&w, scan)?
        };
        Ok((log, replayed_from))
    }

    /// The partition directory.
    pub fn dir(&self) -> &Path {
        &self.local.dir
    }

    /// The log's configuration.
    pub fn config(&self) -> &LogConfig {
        &self.local.config
    }

    pub(crate) fn view(&self) -> Arc<View> {
        self.local.view()
    }

    /// The first offset the log holds.
    pub fn log_start_offset(&self) -> i64 {
        self.local.view.read().log_start_offset
    }

    /// The offset the next appended record will get.
    pub fn log_end_offset(&self) -> i64 {
        self.local.view.read().log_end_offset
    }

    /// Number of segments.
    pub fn segment_count(&self) -> usize {
        self.local.view.read().segments.len()
    }

    /// Base offsets of the segments, ascending.
    pub fn segment_base_offsets(&self) -> Vec<i64> {
        self.local
            .view
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

    /// Sets the leader epoch that `append` stamps on batches (a replica becoming leader).
    /// Under [`HighWatermarkPolicy::Replicated`](crate::HighWatermarkPolicy::Replicated) an
    /// epoch newer than the leader-epoch cache's latest is recorded there as starting at the
    /// log end offset, and the cache's file written (a failure poisons the log).
    pub fn set_leader_epoch(&self, epoch: i32) -> Result<()> {
        let changed = {
            let mut w = self.local.writer.lock();
            w.leader_epoch = epoch;
            self.assign_newer_epoch(epoch, w.log_end_offset)
        };
        if changed {
            self.write_leader_epochs()?;
        }
        Ok(())
    }

    /// The leader epoch that `append` stamps on batches.
    pub fn leader_epoch(&self) -> i32 {
        self.local.writer.lock().leader_epoch
    }

    /// The segment-files lock, then the writer lock, once the log is known usable (see the
    /// lock order above).
    fn lock_files(
        &self,
    ) -> Result<(
        parking_lot::MutexGuard<'_, ()>,
        parking_lot::MutexGuard<'_, Writer>,
    )> {
        let files = self.local.files.lock();
        Ok((files, self.lock_open()?))
    }

    fn lock_open(&self) -> Result<parking_lot::MutexGuard<'_, Writer>> {
        if self.read_only {
            return Err(Error::ReadOnlyLog {
                dir: self.local.dir.clone(),
            });
        }
        self.local.lock(&self.durability)
    }

    /// An I/O failure while making metadata durable poisons the log.
    pub(crate) fn poison_on_io<T>(&self, r: Result<T>) -> Result<T> {
        self.durability.poison_on_io(r)
    }

    /// Seals the active segment and starts a new one at the log end offset.
    pub fn roll(&self) -> Result<()> {
        let mut w = self.lock_open()?;
        let leo = w.log_end_offset;
        self.roll_locked_at(&mut w, leo)?;
        self.local.publish(&w);
        drop(w);
        self.finish_roll()
    }

    /// Rolls the local log at `base_offset`; Kafka snapshots producer state at every roll,
    /// so an open replays at most the active segment.
    /// Its fsyncs (the new segment's directory entry, the snapshot, the sealed segment's
    /// indexes) are left to [`Log::finish_roll`], after the writer lock is released.
    pub(crate) fn roll_locked_at(&self, w: &mut Writer, base_offset: i64) -> Result<()> {
        if self.local.roll_at(w, base_offset, &self.durability)? {
            let recent = recent_segments(w);
            self.producers
                .take_snapshot_deferred(&recent, w.log_end_offset, &|r| self.poison_on_io(r))?;
        }
        Ok(())
    }

    /// The deferred part of a roll (Kafka flushes a rolled segment asynchronously), run by
    /// the caller that rolled once it has released the writer lock: the snapshot's fsyncs,
    /// the directory's, and the sealed segment's index files when its data is already
    /// durable (else the flush that makes it durable syncs them). Cheap when nothing is
    /// pending.
    /// When another caller is already at it, this one does not wait: that caller, or the
    /// next flush, close or checkpoint (which do wait), finishes the work.
    pub(crate) fn finish_roll(&self) -> Result<()> {
        if !(self.local.has_deferred() || self.producers.has_unsynced()) {
            return Ok(());
        }
        match self.local.deferred.try_lock() {
            Some(one) => self.finish_deferred_locked(&one, false),
            None => Ok(()),
        }
    }

    /// Everything rolls left undone (with `all_indexes`, the index files of every sealed
    /// segment that changed, whether or not its data is durable yet).
    pub(crate) fn finish_deferred(&self, all_indexes: bool) -> Result<()> {
        let one = self.local.deferred.lock();
        self.finish_deferred_locked(&one, all_indexes)
    }

    fn finish_deferred_locked(
        &self,
        one: &parking_lot::MutexGuard<'_, ()>,
        all_indexes: bool,
    ) -> Result<()> {
        self.producers.sync_unsynced(&|r| self.poison_on_io(r))?;
        let recovery_point = self.durability.recovery_point();
        self.local
            .finish_deferred(one, all_indexes, recovery_point, &self.durability)
    }

    /// Rolls first when the batch would not fit the active segment's rules. True when it
    /// rolled: the caller then releases the writer lock, runs [`Log::finish_roll`] (the
    /// roll's fsyncs) and starts over, so the batch is written only once the roll is
    /// durable, and nothing waits on those fsyncs under the writer lock.
    pub(crate) fn maybe_roll(
        &self,
        w: &mut Writer,
        size: u64,
        max_timestamp: i64,
        base_offset: i64,
        last_offset: i64,
        now: i64,
    ) -> Result<bool> {
        match self
            .local
            .roll_decision(w, size, max_timestamp, base_offset, last_offset, now)?
        {
            RollDecision::None => Ok(false),
            RollDecision::ReplaceEmpty(base) => {
                self.local
                    .replace_empty_active(w, base, now, &self.durability)?;
                Ok(false)
            }
            RollDecision::Roll(base) => {
                self.roll_locked_at(w, base)?;
                self.local.publish(w);
                Ok(true)
            }
        }
    }

    /// Writes `<log end offset>.snapshot` of the producer state durably (at clean close).
    pub(crate) fn snapshot_producer_state(&self, w: &Writer) -> Result<()> {
        self.producers
            .take_snapshot(&recent_segments(w), w.log_end_offset, &|r| {
                self.poison_on_io(r)
            })
    }

    /// Rebuilds the producer state for the log as it now is (see
    /// [`ProducerStateManager::load`]); returns where the replay began.
    pub(crate) fn load_producer_state(&self, w: &Writer, scan: ScannedRange) -> Result<i64> {
        let segments = SegmentRange::of(&w.segment_bases());
        let view = self.view();
        let limits = self.config().decode_limits;
        self.producers.load(
            &segments,
            w.log_start_offset,
            w.log_end_offset,
            scan,
            &mut |from, to, sink| txn::replay(&self.local, &view, limits, from, to, sink),
            &|r| self.poison_on_io(r),
        )
    }

    /// Drops every batch at and above `offset`; the log end offset becomes `offset`, or the
    /// base offset of the batch holding `offset` when it falls inside one (logs are cut at
    /// batch boundaries, as Kafka cuts them). Where a compaction gap lies below that point,
    /// the log ends at the gap's start instead, after the last batch kept. Truncating at or
    /// below the log start offset, or below the first segment, empties the log and restarts
    /// it at `offset`; a cut below the log start offset by any of the rules above leaves the
    /// log empty where it now ends.
    pub fn truncate_to(&self, offset: i64) -> Result<()> {
        // The file work of a deletion or a compaction swap finishes first: it must not
        // remove files the cut creates, nor checkpoint a log start offset the cut lowered.
        let (_files, mut w) = self.lock_files()?;
        if offset >= w.log_end_offset {
            return Ok(());
        }
        let cut = self
            .local
            .truncate(&mut w, offset, &self.durability)
            .and_then(|new_leo| {
                self.clamp_cleaner_checkpoint(new_leo)?;
                if self.truncate_epochs_from_end(new_leo) {
                    self.write_leader_epochs()?;
                }
                self.durability.clamp_recovery_point(new_leo)
            });
        // Producer state above the cut goes: reloaded from an older snapshot plus a replay.
        let reloaded = self.load_producer_state(&w, ScannedRange::default());
        self.forget_replicated_transactions();
        cut.and(reloaded.map(|_| ()))
    }

    /// Empties the log and restarts it at `offset` (Kafka's `truncateFullyAndStartAt`): every
    /// segment goes, the log start and end offsets, the recovery point and (under
    /// `HighWatermarkPolicy::Replicated`) the high watermark become `offset`, the leader-epoch
    /// cache and the producer state are cleared. What a replication follower does when the
    /// leader's log start offset has passed its log end offset (the leader deleted the records
    /// the follower still needs). A negative `offset` is [`Error::NegativeOffset`].
    ///
    /// ```
    /// use streamlog::{Log, LogConfig, OwnedRecord, Compression};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let log = Log::open(dir.path(), LogConfig::default())?;
    /// log.append_records(&[OwnedRecord::new(0, None, Some(b"v"))], Compression::None)?;
    /// log.truncate_fully_and_start_at(100)?;
    /// assert_eq!((log.log_start_offset(), log.log_end_offset()), (100, 100));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn truncate_fully_and_start_at(&self, offset: i64) -> Result<()> {
        if offset < 0 {
            return Err(Error::NegativeOffset {
                what: "a log cannot start",
                offset,
            });
        }
        let (_files, mut w) = self.lock_files()?;
        // As in `truncate_to`: the checkpoint on disk never vouches for more than the log
        // holds while the segments go.
        let cut = self
            .durability
            .lower_checkpoint(offset.min(w.log_start_offset))
            .and_then(|()| self.local.truncate_fully(&mut w, offset, &self.durability))
            .and_then(|new_leo| {
                self.clamp_cleaner_checkpoint(new_leo)?;
                // Nothing is left of any epoch (a log cut to end at 0 keeps none).
                if self.truncate_epochs_from_end(0) {
                    self.write_leader_epochs()?;
                }
                self.durability.restart_at(new_leo)
            });
        let reloaded = self.load_producer_state(&w, ScannedRange::default());
        drop(w);
        cut?;
        reloaded?;
        self.maybe_advance_high_watermark(offset)?;
        self.forget_replicated_transactions();
        Ok(())
    }

    /// Advances the log start offset to `offset` (Kafka's DeleteRecords) and deletes the
    /// segments entirely below it. The active segment is never deleted. An `offset` above the
    /// high watermark is [`Error::OffsetOutOfRange`], as in Kafka.
    pub fn delete_records_before(&self, offset: i64) -> Result<()> {
        let (files, w) = self.lock_files()?;
        // Kafka never moves the log start offset past the high watermark.
        if offset > self.high_watermark() || offset < 0 {
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
        self.delete_prefix(&files, w, below, start)?;
        Ok(())
    }

    /// Removes the first `count` segments after moving the log start offset to `new_start`
    /// (see [`LocalLog::delete_prefix`]); producers whose last batch is now below the log
    /// start offset go, with their open transactions, and so do snapshots below the first
    /// segment. Returns the segments and `.log` bytes removed.
    ///
    /// Only the memory changes under the writer lock `w`; the checkpoint, the removals and
    /// their fsyncs run once it is released, under the segment-files lock (`files`, taken
    /// before `w`) alone, so appends and reads go on meanwhile and a truncation, another
    /// deletion or a compaction swap waits for them.
    pub(crate) fn delete_prefix(
        &self,
        files: &parking_lot::MutexGuard<'_, ()>,
        mut w: parking_lot::MutexGuard<'_, Writer>,
        count: usize,
        new_start: i64,
    ) -> Result<(usize, u64)> {
        let old_start = w.log_start_offset;
        let deletion = self.local.delete_prefix(&mut w, count, new_start);
        let changed = deletion.changed();
        let first_base = w.segments.first().map_or(0, |s| s.base_offset());
        if changed {
            self.truncate_epochs_from_start(w.log_start_offset);
            self.producers.truncate_head(w.log_start_offset);
        }
        drop(w);
        let checkpointed =
            self.local
                .checkpoint_prefix_deletion(files, &deletion, &self.durability);
        if let Err(e) = checkpointed {
            self.local.restore_prefix(files, deletion, old_start);
            return Err(e);
        }
        let removed = self
            .local
            .remove_prefix_files(files, deletion, &self.durability)?;
        if changed {
            self.write_leader_epochs()?;
            self.producers
                .delete_snapshots_below(first_base, &|r| self.poison_on_io(r))?;
        }
        Ok(removed)
    }

    /// Flushes, seals the indexes to their size, writes the checkpoints and marks the log
    /// cleanly closed, so the next open loads indexes without scanning. Later calls fail
    /// with `LogClosed`.
    pub fn close(&self) -> Result<()> {
        if self.read_only {
            // Nothing to write: a read-only log only stops.
            self.durability.mark_closed();
            return Ok(());
        }
        // The writer lock is held throughout: nothing may append to the sealed segment,
        // whose index files are trimmed below their mappings. Flushing never takes it. The
        // segment-files lock first: a deletion's or a swap's file work finishes before.
        let (_files, w) = self.lock_files()?;
        let leo = w.log_end_offset;
        if let Some(active) = w.segments.last() {
            active.seal()?;
        }
        self.flush_to(leo)?;
        // Every trimmed index (the active segment's just now, and any sealed segment's a
        // roll or a rebuild left unsynced), durable before the marker says they can be
        // trusted.
        self.finish_deferred(true)?;
        if let Some(active) = w.segments.last() {
            self.poison_on_io(active.flush())?;
        }
        self.durability.write_recovery_point(leo)?;
        self.checkpoint_high_watermark()?;
        self.snapshot_producer_state(&w)?;
        self.poison_on_io(crate::io::write_file_atomic(
            &*self.local.fs,
            &self.local.dir.join(CLEAN_SHUTDOWN_FILE),
            b"",
        ))?;
        self.durability.mark_closed();
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
        self.durability.mark_closed();
    }
}

impl Drop for Log {
    /// A log dropped without [`Log::close`] is closed here, best effort, so the next open is
    /// clean (loads its indexes without a recovery scan). Errors cannot be reported from a
    /// drop: a log that fails to close is left as a crash would leave it, and the next open
    /// recovers. A poisoned or read-only log is left alone.
    fn drop(&mut self) {
        if self.close_on_drop && !self.durability.is_closed() && !self.durability.is_poisoned() {
            let _ = self.close();
        }
    }
}

/// The segments whose `.txnindex` a snapshot taken now vouches for: the last two.
fn recent_segments(w: &Writer) -> Vec<i64> {
    w.segments
        .iter()
        .rev()
        .take(2)
        .map(|s| s.base_offset())
        .collect()
}
