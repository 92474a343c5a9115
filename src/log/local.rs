//! The local log (Kafka's `LocalLog`): the ordered segments, the view published to readers,
//! and the segment mechanics of roll, write, read, truncation and deletion of a prefix.
//!
//! It owns the writer lock and the view. It knows nothing of producer state, the cleaner or
//! the flush policy: the [`Log`](super::Log) facade runs those around its calls. It asks
//! [`Durability`] only to poison the log when an I/O failure leaves the files in doubt.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard, RwLock};

use super::checkpoint;
use super::durability::Durability;
use super::read::FetchData;
use super::timestamp;
use super::LOG_START_OFFSET_CHECKPOINT;
use crate::config::{HighWatermarkPolicy, LogConfig};
use crate::error::{Error, Result};
use crate::io::FileSystem;
use crate::segment::{BatchPos, IndexConfig, Segment};

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

impl Writer {
    /// The segments' base offsets, ascending.
    pub(crate) fn segment_bases(&self) -> Vec<i64> {
        self.segments.iter().map(|s| s.base_offset()).collect()
    }
}

/// What [`LocalLog::roll_decision`] found a batch needs before it is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RollDecision {
    /// The active segment takes it.
    None,
    /// The active segment is empty but cannot index it: replace it with one based here.
    ReplaceEmpty(i64),
    /// Seal the active segment and start a new one based here.
    Roll(i64),
}

/// A prefix of the log taken out in memory, whose files are still to go (see
/// [`LocalLog::delete_prefix`]).
#[derive(Debug)]
pub(crate) struct PrefixDeletion {
    /// The new log start offset to checkpoint first, when it moved.
    pub checkpoint: Option<i64>,
    /// The segments taken out, oldest first.
    pub doomed: Vec<Arc<Segment>>,
}

impl PrefixDeletion {
    /// Whether the log changed (its start moved or segments went).
    pub(crate) fn changed(&self) -> bool {
        self.checkpoint.is_some() || !self.doomed.is_empty()
    }
}

/// One partition's segments, its writer lock and its published view.
#[derive(Debug)]
pub(crate) struct LocalLog {
    pub(crate) dir: PathBuf,
    pub(crate) config: LogConfig,
    pub(crate) fs: Arc<dyn FileSystem>,
    pub(crate) writer: Mutex<Writer>,
    pub(crate) view: RwLock<Arc<View>>,
    /// The watermarks readers wait on (`wait.rs`), advanced after each publish.
    pub(crate) progress: Arc<super::wait::Progress>,
    /// A roll created a segment file whose directory entry is not yet durable.
    dir_sync_pending: AtomicBool,
    /// Serialises the work rolls defer (see [`LocalLog::finish_deferred`]); held across its
    /// fsyncs, and never by an append or a read.
    pub(crate) deferred: Mutex<()>,
    /// The segment-files lock: taken before the writer lock by whatever removes, replaces
    /// or cuts segment files (retention, DeleteRecords, the cleaner's swap, truncation) and
    /// by a close, and held across their file work after the writer lock is released, so
    /// those changes happen one at a time while appends and reads go on.
    pub(crate) files: Mutex<()>,
}

impl LocalLog {
    /// A local log over `writer`'s segments; nothing is published until
    /// [`publish`](Self::publish).
    pub(crate) fn new(
        dir: PathBuf,
        config: LogConfig,
        fs: Arc<dyn FileSystem>,
        writer: Writer,
        high_watermark: i64,
    ) -> Self {
        let view = View {
            segments: Arc::from([]),
            log_start_offset: writer.log_start_offset,
            log_end_offset: writer.log_end_offset,
            active_size: 0,
            generation: 0,
            segment_times: timestamp::new_segment_times(),
        };
        let progress = Arc::new(super::wait::Progress::new(
            writer.log_end_offset,
            high_watermark.max(writer.log_start_offset),
        ));
        LocalLog {
            dir,
            config,
            fs,
            progress,
            writer: Mutex::new(writer),
            view: RwLock::new(Arc::new(view)),
            dir_sync_pending: AtomicBool::new(false),
            deferred: Mutex::new(()),
            files: Mutex::new(()),
        }
    }

    pub(crate) fn index_config(config: &LogConfig) -> IndexConfig {
        IndexConfig {
            max_index_bytes: config.segment_index_bytes,
            index_interval_bytes: config.index_interval_bytes,
            direct_write_bytes: config
                .direct_io
                .then_some(config.direct_io_write_bytes as usize),
            direct_writes_in_flight: config.direct_io_writes_in_flight as usize,
            // Direct-I/O appends write whole aligned blocks of their own; the reservation
            // is for the page cache's per-page allocation.
            preallocate_bytes: if config.direct_io {
                0
            } else {
                u64::from(config.preallocate_bytes)
            },
        }
    }

    /// The writer lock, once the log is known usable.
    pub(crate) fn lock(&self, durability: &Durability) -> Result<MutexGuard<'_, Writer>> {
        let w = self.writer.lock();
        durability.check_usable()?;
        Ok(w)
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
        self.published(w);
    }

    /// The watermarks follow a view just published: the log end, and the high watermark
    /// (equal to it under [`HighWatermarkPolicy::LogEnd`], else kept within the log).
    fn published(&self, w: &Writer) {
        let follow_end = self.config.high_watermark_policy == HighWatermarkPolicy::LogEnd;
        self.progress
            .published(w.log_start_offset, w.log_end_offset, follow_end);
    }

    /// Raises the high watermark to `offset`, within the log as published (see
    /// [`Log::maybe_advance_high_watermark`](super::Log::maybe_advance_high_watermark)).
    pub(crate) fn raise_high_watermark(&self, offset: i64) -> i64 {
        self.progress.raise_high_watermark(offset, || {
            let v = self.view.read();
            (v.log_start_offset, v.log_end_offset)
        })
    }

    /// Publishes only new offsets and size when the view's segment list still ends with
    /// `active` (the append fast path); false (nothing published) when it does not. A view
    /// no reader holds a clone of is updated in place, under the view's write lock (readers
    /// clone it under the read lock, so none can take it meanwhile): no allocation a batch.
    /// A view a reader holds stays as it is, and a new one replaces it.
    pub(crate) fn publish_append(&self, w: &Writer, active: &Arc<Segment>) -> bool {
        let mut view = self.view.write();
        if !view.segments.last().is_some_and(|s| Arc::ptr_eq(s, active)) {
            return false;
        }
        let active_size = active.size();
        if let Some(v) = Arc::get_mut(&mut view) {
            v.log_start_offset = w.log_start_offset;
            v.log_end_offset = w.log_end_offset;
            v.active_size = active_size;
            v.generation = w.generation;
        } else {
            let next = View {
                segments: Arc::clone(&view.segments),
                log_start_offset: w.log_start_offset,
                log_end_offset: w.log_end_offset,
                active_size,
                generation: w.generation,
                segment_times: Arc::clone(&view.segment_times),
            };
            *view = Arc::new(next);
        }
        drop(view);
        self.published(w);
        true
    }

    /// Seals the active segment and starts a new one at `base_offset` (the log end offset,
    /// or a replicated batch's base when the gap to it is too wide for relative offsets).
    /// False when the active segment is empty and nothing was rolled.
    pub(crate) fn roll_at(
        &self,
        w: &mut Writer,
        base_offset: i64,
        durability: &Durability,
    ) -> Result<bool> {
        if w.segments.last().is_some_and(|active| active.size() == 0) {
            return Ok(false); // already empty: nothing to roll away from
        }
        // The new segment first: if it cannot be made (no space for its preallocated
        // indexes), the active segment is left as it was, unsealed, and takes the batches
        // that still fit it. Sealed first, it would go on taking them with its indexes
        // trimmed under their maps.
        let seg = Segment::create(
            &self.fs,
            &self.dir,
            base_offset,
            LocalLog::index_config(&self.config),
        )?;
        if let Some(active) = w.segments.last() {
            // Sealing trims the indexes; durability of the sealed data is the flush
            // policy's business, not the roll's.
            if let Err(e) = active.seal() {
                let _ = seg.delete_files();
                return durability.poison_on_io(Err(e));
            }
        }
        w.segments.push(Arc::new(seg));
        w.active_since_ms = self.config.clock.now_ms();
        // The directory entry is made durable after the writer lock is released
        // (`finish_deferred`), and in any case before a flush counts the new segment's
        // bytes as durable: until then a crash may lose the new segment, which holds
        // nothing durable yet.
        self.defer_dir_sync();
        Ok(true)
    }

    /// Asks the next [`finish_deferred`](Self::finish_deferred) to sync the directory.
    pub(crate) fn defer_dir_sync(&self) {
        self.dir_sync_pending.store(true, Ordering::Release);
    }

    /// Whether a roll left work for [`finish_deferred`](Self::finish_deferred).
    pub(crate) fn has_deferred(&self) -> bool {
        self.dir_sync_pending.load(Ordering::Acquire)
    }

    /// The work rolls leave until after the writer lock, with the `deferred` lock held
    /// (`_one`): the directory entries of new segments, then the index files of sealed
    /// segments, of all of them (`all_indexes`: before a flush moves the recovery point or
    /// a clean close writes its marker) or of those whose data is already durable (below
    /// `recovery_point`: no later flush would cover them).
    pub(crate) fn finish_deferred(
        &self,
        _one: &MutexGuard<'_, ()>,
        all_indexes: bool,
        recovery_point: i64,
        durability: &Durability,
    ) -> Result<()> {
        if self.dir_sync_pending.swap(false, Ordering::AcqRel) {
            if let Err(e) = self.sync_dir(durability) {
                self.dir_sync_pending.store(true, Ordering::Release);
                return Err(e);
            }
        }
        let view = self.view();
        let sealed = view.segments.len().saturating_sub(1);
        for (i, seg) in view.segments.iter().enumerate().take(sealed) {
            if !seg.index_sync_pending() {
                continue;
            }
            let end = view
                .segments
                .get(i + 1)
                .map_or(view.log_end_offset, |s| s.base_offset());
            if all_indexes || end <= recovery_point {
                durability.poison_on_io(seg.sync_indexes())?;
            }
        }
        Ok(())
    }

    /// Whether a batch of `size` bytes, `max_timestamp`, and offsets `base_offset..=last_offset`
    /// needs a roll first (Kafka's `LogSegment.shouldRoll`), at clock time `now`.
    pub(crate) fn roll_decision(
        &self,
        w: &Writer,
        size: u64,
        max_timestamp: i64,
        base_offset: i64,
        last_offset: i64,
        now: i64,
    ) -> Result<RollDecision> {
        let Some(active) = w.segments.last() else {
            return Ok(RollDecision::None);
        };
        let seg_size = active.size();
        // A new segment starts where the log ends, so consecutive segments meet exactly and
        // recovery can tell a lost tail from a legitimate gap; only a gap too wide for u32
        // relative offsets names the new segment after the batch instead.
        let gap_overflows = last_offset - w.log_end_offset > i64::from(i32::MAX);
        let roll_base = if gap_overflows {
            base_offset
        } else {
            w.log_end_offset
        };
        if seg_size == 0 {
            if last_offset - active.base_offset() > i64::from(i32::MAX) {
                // An empty active segment that cannot index this batch: replace it.
                return Ok(RollDecision::ReplaceEmpty(roll_base));
            }
            return Ok(RollDecision::None);
        }
        let st = active.write_state();
        // Kafka's LogSegment.timeWaitedForRoll: from the first batch's max timestamp, or,
        // when that batch carries none (-1), from when the segment was created or opened.
        let waited = match st.rolling_base_timestamp {
            Some(t) if t >= 0 => max_timestamp.saturating_sub(t),
            _ => now.saturating_sub(w.active_since_ms),
        };
        let time_up = self.config.segment_ms.is_some_and(|ms| waited > ms);
        let too_big = seg_size.saturating_add(size) > self.config.segment_bytes;
        let offset_overflow = last_offset - active.base_offset() > i64::from(i32::MAX);
        let position_overflow = seg_size.saturating_add(size) > u64::from(u32::MAX);
        if time_up || too_big || offset_overflow || position_overflow || active.indexes_full()? {
            return Ok(RollDecision::Roll(roll_base));
        }
        Ok(RollDecision::None)
    }

    /// Replaces the empty active segment with a new one at `base_offset`, and publishes.
    pub(crate) fn replace_empty_active(
        &self,
        w: &mut Writer,
        base_offset: i64,
        now: i64,
        durability: &Durability,
    ) -> Result<()> {
        if let Some(old) = w.segments.pop() {
            old.delete_files()?;
        }
        let seg = Segment::create(
            &self.fs,
            &self.dir,
            base_offset,
            LocalLog::index_config(&self.config),
        )?;
        w.segments.push(Arc::new(seg));
        w.active_since_ms = now;
        self.sync_dir(durability)?;
        self.publish(w);
        Ok(())
    }

    /// Writes a batch to the active segment and publishes the new end.
    pub(crate) fn write_batch(
        &self,
        w: &mut Writer,
        parts: &[&[u8]],
        pos: &BatchPos,
        durability: &Durability,
    ) -> Result<()> {
        let Some(active) = w.segments.last().cloned() else {
            return Err(Error::NoActiveSegment {
                dir: self.dir.clone(),
            });
        };
        if let Err(e) = active.append(parts, pos) {
            // The segment cut any partial write; if the file still disagrees with what the
            // log believes it holds, later appends would land after garbage: stop here.
            let consistent = active
                .log_file()
                .len()
                .is_ok_and(|len| len == active.size());
            if !consistent {
                durability.poison(format!(
                    "append to {} failed and could not be undone: {e}",
                    active.log_path().display()
                ));
            }
            return Err(e);
        }
        w.log_end_offset = pos.last_offset + 1;
        if !self.publish_append(w, &active) {
            self.publish(w);
        }
        Ok(())
    }

    /// Drops every batch at and above `offset` (see [`Log::truncate_to`](super::Log::truncate_to)
    /// for the rules) and publishes; returns the new log end offset.
    pub(crate) fn truncate(
        &self,
        w: &mut Writer,
        offset: i64,
        durability: &Durability,
    ) -> Result<i64> {
        w.generation += 1;
        // The recovery-point checkpoint on disk goes down first, to at most where the log
        // will end (the base of the segment the cut lands in, or `offset` when the log
        // restarts): a crash part-way through the cut must not leave a log ending below its
        // checkpoint, which the next open would take for acknowledged data lost. (The
        // recovery point itself goes to the exact end once the cut is made.)
        let lowest_end = if offset <= w.log_start_offset {
            offset.max(0)
        } else {
            w.segments
                .iter()
                .rev()
                .map(|s| s.base_offset())
                .find(|&base| base < offset)
                .unwrap_or(offset)
        };
        durability.lower_checkpoint(lowest_end)?;
        if offset <= w.log_start_offset {
            return self.truncate_fully(w, offset.max(0), durability);
        }
        // Drop whole segments at or above the offset.
        let mut dropped = false;
        while w.segments.len() > 1 && w.segments.last().is_some_and(|s| s.base_offset() >= offset) {
            if let Some(seg) = w.segments.pop() {
                seg.delete_files()?;
                dropped = true;
            }
        }
        if dropped {
            // Their removal reaches the disk before the cut below: a crash between the two
            // must not bring them back behind a cut segment, with a hole before them.
            self.sync_dir(durability)?;
        }
        let Some(last) = w.segments.last().cloned() else {
            return self.truncate_fully(w, offset, durability);
        };
        if last.base_offset() > offset {
            // Only a first segment that starts past `offset` is left (a replica's log whose
            // first batch lay past its log start offset): all of it goes, and the log
            // restarts at `offset`, as Kafka's truncateTo does below the first segment. Cut
            // in place, the segment would be named past its own log end offset.
            return self.truncate_fully(w, offset, durability);
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
            LocalLog::index_config(&self.config),
            Some((position, new_leo)),
        );
        // Readers were already shown the cut log: a writer that cannot follow must stop.
        let active = match active {
            Ok(a) => a,
            Err(e) => {
                durability.poison(format!(
                    "truncation of {} failed: {e}",
                    last.log_path().display()
                ));
                return Err(e);
            }
        };
        // Make the cut durable now: batches truncated away (a follower's divergent tail)
        // must not come back after a crash.
        durability.poison_on_io(active.sync_log())?;
        if let Some(slot) = w.segments.last_mut() {
            *slot = Arc::new(active);
        }
        w.log_end_offset = new_leo;
        if new_leo < w.log_start_offset {
            // The batch holding `offset` (or the gap before it) also held the log start
            // offset and went whole: the log is left empty where it now ends (a log never
            // starts after it ends, and a follower refetches the batch from its base).
            w.log_start_offset = new_leo;
            self.write_log_start_checkpoint(new_leo, durability)?;
        }
        self.sync_dir(durability)?;
        self.publish(w);
        Ok(new_leo)
    }

    pub(crate) fn truncate_fully(
        &self,
        w: &mut Writer,
        offset: i64,
        durability: &Durability,
    ) -> Result<i64> {
        // Newest first: a crash keeps some of these removals, in order, and whatever they
        // leave must be a prefix of the log, never its tail with a hole before it.
        for seg in w.segments.drain(..).rev() {
            seg.delete_files()?;
        }
        let seg = Segment::create(
            &self.fs,
            &self.dir,
            offset,
            LocalLog::index_config(&self.config),
        )?;
        w.segments.push(Arc::new(seg));
        w.active_since_ms = self.config.clock.now_ms();
        w.log_start_offset = offset;
        w.log_end_offset = offset;
        self.write_log_start_checkpoint(offset, durability)?;
        self.sync_dir(durability)?;
        self.publish(w);
        Ok(offset)
    }

    /// Takes the first `count` segments (never the active one) out of the log and moves the
    /// log start offset up to `new_start`, in memory, and publishes: readers see the shorter
    /// log at once. The files are left for [`checkpoint_prefix_deletion`](Self::checkpoint_prefix_deletion) and
    /// [`remove_prefix_files`](Self::remove_prefix_files), run after the writer lock is released.
    pub(crate) fn delete_prefix(
        &self,
        w: &mut Writer,
        count: usize,
        new_start: i64,
    ) -> PrefixDeletion {
        let moved = new_start > w.log_start_offset;
        if moved {
            w.log_start_offset = new_start;
        }
        let count = count.min(w.segments.len().saturating_sub(1));
        let doomed: Vec<Arc<Segment>> = w.segments.drain(..count).collect();
        if moved || count > 0 {
            self.publish(w);
        }
        PrefixDeletion {
            checkpoint: moved.then_some(new_start),
            doomed,
        }
    }

    /// The first half of the file work of a [`delete_prefix`](Self::delete_prefix), with the
    /// segment-files lock held (`_files`, taken before the writer lock, so no truncation or
    /// other deletion touches the files meanwhile): the new log start offset is
    /// checkpointed, durably, before any file is removed, so a crash from then on leaves a
    /// log whose start offset already lies past what is being deleted, and the next open or
    /// retention pass removes the rest. A crash before it leaves the log as it was.
    pub(crate) fn checkpoint_prefix_deletion(
        &self,
        _files: &MutexGuard<'_, ()>,
        deletion: &PrefixDeletion,
        durability: &Durability,
    ) -> Result<()> {
        match deletion.checkpoint {
            Some(start) => self.write_log_start_checkpoint(start, durability),
            None => Ok(()),
        }
    }

    /// Puts back a prefix whose checkpoint failed (nothing was removed; the log is
    /// poisoned by then, so nothing else changed it meanwhile): readers see the log as it
    /// was. Takes the writer lock (after the segment-files lock `_files`).
    pub(crate) fn restore_prefix(
        &self,
        _files: &MutexGuard<'_, ()>,
        deletion: PrefixDeletion,
        old_start: i64,
    ) {
        let mut w = self.writer.lock();
        let next_base = deletion.doomed.last().map(|s| s.base_offset());
        let untouched = w.log_start_offset == deletion.checkpoint.unwrap_or(old_start)
            && match (next_base, w.segments.first()) {
                (Some(last), Some(first)) => first.base_offset() > last,
                (None, _) => true,
                (Some(_), None) => false,
            };
        if !untouched {
            return;
        }
        w.log_start_offset = old_start;
        w.segments.splice(0..0, deletion.doomed);
        self.publish(&w);
    }

    /// The second half: the files go, and the directory is synced. Returns the segments
    /// and `.log` bytes removed.
    pub(crate) fn remove_prefix_files(
        &self,
        _files: &MutexGuard<'_, ()>,
        deletion: PrefixDeletion,
        durability: &Durability,
    ) -> Result<(usize, u64)> {
        let mut bytes = 0;
        for seg in &deletion.doomed {
            // Readers holding an older view may still look this segment up: with its
            // indexes mapped before the files go, they read on from the open handles.
            let _ = seg.indexes();
            bytes += seg.size();
            // Files the log no longer lists but could not remove: stop and let the next
            // open clean up (the log start offset is already past them).
            durability.poison_on_io(seg.delete_files())?;
        }
        if !deletion.doomed.is_empty() {
            self.sync_dir(durability)?;
        }
        Ok((deletion.doomed.len(), bytes))
    }

    pub(crate) fn write_log_start_checkpoint(
        &self,
        offset: i64,
        durability: &Durability,
    ) -> Result<()> {
        durability.poison_on_io(checkpoint::write(
            &*self.fs,
            &self.dir,
            LOG_START_OFFSET_CHECKPOINT,
            offset,
        ))
    }

    /// fsyncs the partition directory (after segments are created, renamed or removed).
    pub(crate) fn sync_dir(&self, durability: &Durability) -> Result<()> {
        let r = self
            .fs
            .sync_dir(&self.dir)
            .map_err(|e| Error::io(&self.dir, e));
        durability.poison_on_io(r)
    }

    /// fsyncs every segment of `view` that may hold bytes at or above `from`.
    pub(crate) fn sync_from(&self, view: &View, from: i64) -> Result<()> {
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

    /// Whole batches from `offset` under `view` (see [`Log::read`](super::Log::read)).
    pub(crate) fn read_in(
        &self,
        view: &View,
        offset: i64,
        max_bytes: usize,
        upper_bound: Option<i64>,
    ) -> Result<FetchData> {
        super::read::read_in(view, offset, max_bytes, upper_bound)
    }
}
