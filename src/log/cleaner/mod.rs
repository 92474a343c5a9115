//! Key-based compaction (`cleanup.policy=compact`), as Kafka's `LogCleaner` does it.
//!
//! A pass over one log:
//!
//! 1. **Bounds.** The dirty part starts at the cleaner checkpoint (`cleaner-offset-checkpoint`)
//!    and the cleanable part ends at the first uncleanable offset: the smallest of the
//!    caller's upper bound (high watermark or last stable offset), the active segment's base
//!    offset, and the base offset of the first segment whose largest timestamp is younger
//!    than `min.compaction.lag.ms`.
//! 2. **Key map.** Every keyed record of the dirty part's batches (control batches and
//!    batches the hooks delete excepted) goes into a bounded offset map (`offset_map.rs`):
//!    key hash → last offset. When the map is full the pass stops after the last whole batch
//!    it took, and the next pass goes on from there (Kafka's behaviour).
//! 3. **Clean.** The sealed segments from the log's start up to the end of what the map
//!    covers are grouped (adjacent segments whose sizes and index sizes fit one segment,
//!    Kafka's `groupSegmentsBySize`) and each group is rewritten into one `.cleaned` segment
//!    keeping, for each key, only the record at the offset the map holds; offsets are kept,
//!    so a compacted log has gaps. Records without a key are removed (Kafka's cleaner drops
//!    them as invalid); a log whose `cleanup.policy` compacts refuses them at append, as
//!    Kafka does ([`crate::Error::RecordWithoutKey`]), so they reach
//!    it only from replication or from before the policy changed. Tombstones
//!    (null values) stay until `delete.retention.ms` after the cleaner first keeps them:
//!    that first time it stamps the batch's delete horizon (attribute bit 6, base timestamp,
//!    KIP-534), and a later pass past the horizon removes them.
//! 4. **Swap.** The cleaned segments replace their groups through `.swap` files, all in
//!    one commit (`swap.rs`): a crash leaves the log as it was before the pass or after it.
//!    Readers holding an older view go on reading the old segments' open files.
//! 5. **Checkpoint** the new first dirty offset.
//!
//! Producer state (transactions, idempotence) plugs in through [`CompactionHooks`]: Kafka
//! keeps each producer's last batch even when all its records go
//! ([`BatchRetention::RetainEmpty`], or [`BatchRetention::Empty`] when it belongs to an
//! aborted transaction), removes aborted transactions' batches ([`BatchRetention::Delete`])
//! and, once nothing of their transaction is left, transaction markers past their delete
//! horizon ([`BatchRetention::DeleteAfterHorizon`]). Without
//! producer state, [`DefaultCompactionHooks`] keeps control batches whole and compacts
//! everything else.

mod checkpoint;
mod clean;
mod offset_map;
mod stats;
pub(crate) mod swap;

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Instant;

/// The cleaner's state in one log: the lock a compaction pass holds for its whole run, so
/// one pass per log runs at a time. First in the log's lock order (`log/mod.rs`).
#[derive(Debug, Default)]
pub(crate) struct CleanerState {
    pass: Mutex<()>,
}

impl CleanerState {
    /// Held for a whole pass.
    pub(crate) fn lock_pass(&self) -> parking_lot::MutexGuard<'_, ()> {
        self.pass.lock()
    }
}

pub use checkpoint::CLEANER_OFFSET_CHECKPOINT;
pub use stats::{CleanableInfo, CleanerStats};

use super::{LocalLog, Log, View};
use crate::error::{Error, Result};
use crate::record::{Batch, DecodeLimits};
use crate::segment::Segment;
use clean::{Buffers, CleanContext};
use offset_map::OffsetMap;
use parking_lot::Mutex;

/// What the cleaner does with one batch (Kafka's `BatchRetention`, extended with `Retain`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BatchRetention {
    /// Remove the whole batch (an aborted transaction's data, a marker past its horizon).
    Delete,
    /// Compact its records; drop the batch if none remains (the default for data).
    DeleteEmpty,
    /// Compact its records; keep an empty batch if none remains (a producer's last batch,
    /// so its sequence survives).
    RetainEmpty,
    /// Keep the batch exactly as stored (control batches, when nothing says otherwise).
    Retain,
    /// Drop every record but keep the batch, empty (Kafka's `RETAIN_EMPTY` with all records
    /// discarded): an aborted transaction's batch that is its producer's last, so the
    /// producer's epoch and sequence survive a replay of the log.
    Empty,
    /// A transaction marker whose transaction has no data left in the log: the first pass
    /// that sees it stamps its delete horizon (`delete.retention.ms` from then, as for
    /// tombstones, KIP-534), and the first pass past that horizon removes it.
    DeleteAfterHorizon,
}

/// Decisions the cleaner asks the producer state for. The cleaner calls
/// [`batch_retention`](CompactionHooks::batch_retention) for every batch it cleans (those in
/// the key map's range, in offset order, once in each of its two passes).
pub trait CompactionHooks {
    /// What to do with `batch`.
    fn batch_retention(&self, batch: &Batch<'_>) -> BatchRetention;

    /// Called once a pass has built its key map and before it cleans: from then on
    /// [`batch_retention`](CompactionHooks::batch_retention) sees every batch from the log's
    /// first cleaned segment on, in offset order, once. Hooks that decide from what they
    /// saw earlier in the pass (transaction markers) start over here.
    fn start_cleaning(&self) {}

    /// Called for each batch the cleaning drops whole (the pass may still be abandoned
    /// before its swap: see [`CleanerStats::aborted`]).
    fn batch_removed(&self, _batch: &Batch<'_>) {}
}

/// The hooks without producer state: control batches are kept whole, data batches compacted.
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultCompactionHooks;

impl CompactionHooks for DefaultCompactionHooks {
    fn batch_retention(&self, batch: &Batch<'_>) -> BatchRetention {
        if batch.is_control() {
            BatchRetention::Retain
        } else {
            BatchRetention::DeleteEmpty
        }
    }
}

/// Settings of a [`Cleaner`], with Kafka's broker-level names and defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CleanerConfig {
    /// `log.cleaner.dedupe.buffer.size`: the most bytes the key map may take (default
    /// 128 MiB; the table starts small and grows as keys arrive, 24 bytes a slot).
    pub dedupe_buffer_bytes: usize,
    /// `log.cleaner.io.buffer.load.factor`: how full the key map may get (default 0.9).
    pub dedupe_buffer_load_factor: f64,
}

impl Default for CleanerConfig {
    fn default() -> Self {
        CleanerConfig {
            dedupe_buffer_bytes: 128 << 20,
            dedupe_buffer_load_factor: 0.9,
        }
    }
}

/// A compactor with a bounded key map, reusable across logs (one per cleaner thread).
///
/// ```
/// use streamlog::{Log, LogConfig, OwnedRecord, Compression};
/// use streamlog::log::{Cleaner, CleanerConfig};
///
/// let dir = tempfile::tempdir()?;
/// let log = Log::open(dir.path(), LogConfig::default())?;
/// for v in [&b"1"[..], b"2", b"3"] {
///     log.append_records(&[OwnedRecord::new(0, Some(b"k"), Some(v))], Compression::None)?;
/// }
/// log.roll()?; // only sealed segments are cleaned
/// let mut cleaner = Cleaner::new(CleanerConfig::default());
/// let stats = cleaner.clean(&log, log.log_end_offset(), 0)?;
/// assert_eq!((stats.records_read, stats.records_written), (3, 1));
/// let records: Vec<_> = log.records_from(0).collect::<Result<_, _>>()?;
/// assert_eq!((records[0].offset(), records[0].value()), (2, Some(&b"3"[..])));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Cleaner {
    map: OffsetMap,
    bufs: Buffers,
}

impl Cleaner {
    /// A cleaner whose key map takes at most `config.dedupe_buffer_bytes`.
    pub fn new(config: CleanerConfig) -> Self {
        Cleaner {
            map: OffsetMap::new(config.dedupe_buffer_bytes, config.dedupe_buffer_load_factor),
            bufs: Buffers::default(),
        }
    }

    /// Compacts `log` below `upper_bound` (its high watermark or last stable offset) at
    /// time `now_ms`, with [`DefaultCompactionHooks`].
    pub fn clean(&mut self, log: &Log, upper_bound: i64, now_ms: i64) -> Result<CleanerStats> {
        self.clean_with(log, upper_bound, now_ms, &DefaultCompactionHooks)
    }

    /// [`Cleaner::clean`] with producer-state hooks.
    pub fn clean_with(
        &mut self,
        log: &Log,
        upper_bound: i64,
        now_ms: i64,
        hooks: &dyn CompactionHooks,
    ) -> Result<CleanerStats> {
        let started = Instant::now();
        let _one_pass = log.cleaner.lock_pass();
        log.durability.check_usable()?;
        let view = log.view();
        let (first_dirty, first_uncleanable) = log.cleanable_range(&view, upper_bound, now_ms)?;
        let mut stats = CleanerStats {
            first_dirty_offset: first_dirty,
            end_offset: first_dirty,
            ..CleanerStats::default()
        };
        let limits = log.stored_batch_limits();
        let sealed = view.segments.len().saturating_sub(1);
        let sealed = view.segments.get(..sealed).unwrap_or_default();
        let full = self.build_map(
            &view,
            sealed,
            first_dirty,
            first_uncleanable,
            hooks,
            &limits,
            &mut stats,
        )?;
        stats.map_duration = started.elapsed();
        stats.keys = self.map.len();
        stats.map_bytes = self.map.allocated_bytes();
        let latest = self.map.latest_offset();
        if latest < first_dirty {
            if full {
                return Err(Error::CleanerMapTooSmall {
                    dir: log.local.dir.clone(),
                    offset: first_dirty,
                    max_keys: self.map.max_entries(),
                });
            }
            stats.complete = true;
            stats.duration = started.elapsed();
            return Ok(stats);
        }
        let end = latest + 1;
        hooks.start_cleaning();
        let ctx = CleanContext {
            map: &self.map,
            hooks,
            now_ms,
            delete_retention_ms: log.config().delete_retention_ms,
            limits,
        };
        let to_clean: Vec<Arc<Segment>> = sealed
            .iter()
            .take_while(|s| s.base_offset() < end)
            .cloned()
            .collect();
        // Every group is cleaned before any is swapped in, so the whole pass commits at
        // once (see `swap`): a crash leaves the log before the pass or after it.
        let mut replacements: Vec<(Segment, Vec<Arc<Segment>>)> = Vec::new();
        for group in group_segments_by_size(log, &to_clean, first_uncleanable)? {
            let cleaned = clean::clean_group(
                &log.local.fs,
                &log.local.dir,
                LocalLog::index_config(log.config()),
                &group,
                &ctx,
                &mut self.bufs,
                &mut stats,
            );
            match cleaned {
                Ok(Some(cleaned)) => {
                    stats.bytes_written += cleaned.size();
                    stats.segments_before += group.len();
                    stats.segments_after += 1;
                    replacements.push((cleaned, group));
                }
                Ok(None) => {}
                Err(e) => {
                    for (cleaned, _) in &replacements {
                        let _ = cleaned.delete_files();
                    }
                    return Err(e);
                }
            }
        }
        let swap_started = Instant::now();
        if !log.swap_in(replacements, end)? {
            stats.aborted = true;
            stats.segments_before = 0;
            stats.segments_after = 0;
            stats.duration = started.elapsed();
            return Ok(stats);
        }
        stats.swap_duration = swap_started.elapsed();
        stats.end_offset = end;
        stats.complete = !full && end >= first_uncleanable;
        stats.duration = started.elapsed();
        Ok(stats)
    }

    /// Fills the key map from the dirty batches; true when it filled up before the end.
    #[allow(clippy::too_many_arguments)]
    fn build_map(
        &mut self,
        view: &View,
        sealed: &[Arc<Segment>],
        first_dirty: i64,
        first_uncleanable: i64,
        hooks: &dyn CompactionHooks,
        limits: &DecodeLimits,
        stats: &mut CleanerStats,
    ) -> Result<bool> {
        self.map.clear();
        let map = &mut self.map;
        let start = view.segment_index(first_dirty).unwrap_or(0);
        let mut full = false;
        let mut done = false;
        for seg in sealed.iter().skip(start) {
            if done || seg.base_offset() >= first_uncleanable {
                break;
            }
            clean::for_each_batch(seg, &mut self.bufs.read, limits, |b| {
                if b.last_offset() < first_dirty {
                    return Ok(ControlFlow::Continue(()));
                }
                if b.last_offset() >= first_uncleanable {
                    done = true;
                    return Ok(ControlFlow::Break(()));
                }
                stats.map_bytes_read += b.size_in_bytes() as u64;
                let retention = hooks.batch_retention(b);
                if !b.is_control()
                    && matches!(
                        retention,
                        BatchRetention::DeleteEmpty | BatchRetention::RetainEmpty
                    )
                {
                    // Whole batches only: the map then describes exactly the offsets up to
                    // its latest offset, and the pass ends at a batch boundary.
                    let count = usize::try_from(b.record_count()).unwrap_or(0);
                    if !map.has_room_for(count) {
                        full = true;
                        done = true;
                        return Ok(ControlFlow::Break(()));
                    }
                    let records = b.records_in(&mut self.bufs.scratch, limits)?;
                    for r in records.iter() {
                        let r = r?;
                        if let Some(key) = r.key {
                            if r.offset >= first_dirty {
                                map.put(map.hash(key), r.offset);
                            }
                        }
                    }
                }
                map.set_latest_offset(b.last_offset());
                Ok(ControlFlow::Continue(()))
            })?;
        }
        Ok(full)
    }
}

/// Adjacent segments that fit one segment together: total size within `segment.bytes`
/// (and u32 positions), each index's total within `segment.index.bytes`, offsets within
/// i32 of the group's base (Kafka's `groupSegmentsBySize`).
fn group_segments_by_size(
    log: &Log,
    segs: &[Arc<Segment>],
    first_uncleanable: i64,
) -> Result<Vec<Vec<Arc<Segment>>>> {
    let max_bytes = log.config().segment_bytes.min(u64::from(u32::MAX));
    let max_index = u64::from(log.config().segment_index_bytes);
    let index_sizes = |s: &Segment| -> Result<(u64, u64)> {
        // Loaded now, they stay mapped for readers of the old segments after the swap.
        let ix = s.indexes()?;
        Ok((ix.offset.len() as u64 * 8, ix.time.len() as u64 * 12))
    };
    let mut groups: Vec<Vec<Arc<Segment>>> = Vec::new();
    let mut i = 0;
    while let Some(first) = segs.get(i) {
        let (mut off_ix, mut time_ix) = index_sizes(first)?;
        let mut size = first.size();
        let mut group = vec![Arc::clone(first)];
        i += 1;
        while let Some(next) = segs.get(i) {
            let (o, t) = index_sizes(next)?;
            // The group would then hold offsets up to where the segment after `next` starts.
            let next_end = segs
                .get(i + 1)
                .map_or(first_uncleanable, |s| s.base_offset())
                .max(next.base_offset());
            let fits = size + next.size() <= max_bytes
                && off_ix + o <= max_index
                && time_ix + t <= max_index
                && next_end - first.base_offset() <= i64::from(i32::MAX);
            if !fits {
                break;
            }
            size += next.size();
            off_ix += o;
            time_ix += t;
            group.push(Arc::clone(next));
            i += 1;
        }
        groups.push(group);
    }
    Ok(groups)
}

impl Log {
    /// Compacts the log below `upper_bound` (its high watermark or last stable offset) at
    /// time `now_ms`, with a [`Cleaner`] of the default configuration; see the
    /// [module docs](self) for what a pass does. Reuse a [`Cleaner`] to compact many logs
    /// with one key map.
    ///
    /// The producer state decides what happens to transactional data (see
    /// [`ProducerCompactionHooks`](super::ProducerCompactionHooks)), and nothing at or above
    /// the last stable offset for `upper_bound` is cleaned: undecided transactions stay
    /// whole.
    pub fn compact(&self, upper_bound: i64, now_ms: i64) -> Result<CleanerStats> {
        let upper_bound = self.stable_offset(upper_bound).min(upper_bound);
        let hooks = self.producer_compaction_hooks();
        let stats =
            Cleaner::new(CleanerConfig::default()).clean_with(self, upper_bound, now_ms, &hooks)?;
        if !stats.aborted {
            // Their ABORT markers gone, those transactions no longer exist for readers.
            self.producers.forget_aborted(&hooks.removed_markers());
        }
        // Merged segments took their `.txnindex` files with them.
        self.rewrite_txn_indexes()?;
        Ok(stats)
    }

    /// How much of the log below `upper_bound` awaits cleaning at `now_ms`, and whether it
    /// is due by `min.cleanable.dirty.ratio` or `max.compaction.lag.ms`.
    pub fn cleanable(&self, upper_bound: i64, now_ms: i64) -> Result<CleanableInfo> {
        let view = self.view();
        let (first_dirty, first_uncleanable) = self.cleanable_range(&view, upper_bound, now_ms)?;
        let sealed = view.segments.len().saturating_sub(1);
        let dirty_index = view.segment_index(first_dirty).unwrap_or(0);
        let mut clean_bytes = 0;
        let mut cleanable_bytes = 0;
        for (i, s) in view.segments.iter().enumerate().take(sealed) {
            if i < dirty_index {
                clean_bytes += s.size();
            } else if s.base_offset() < first_uncleanable {
                cleanable_bytes += s.size();
            }
        }
        let total = clean_bytes + cleanable_bytes;
        let dirty_ratio = if total == 0 {
            0.0
        } else {
            cleanable_bytes as f64 / total as f64
        };
        let lag_due = match (
            self.config().max_compaction_lag_ms,
            view.segments.get(dirty_index),
        ) {
            (Some(max_lag), Some(seg)) if dirty_index < sealed => seg
                .first_batch()?
                .is_some_and(|b| now_ms.saturating_sub(b.max_timestamp) > max_lag),
            _ => false,
        };
        Ok(CleanableInfo {
            first_dirty_offset: first_dirty,
            first_uncleanable_offset: first_uncleanable,
            clean_bytes,
            cleanable_bytes,
            dirty_ratio,
            ratio_due: total > 0 && dirty_ratio >= self.config().min_cleanable_dirty_ratio,
            lag_due,
        })
    }

    /// The first dirty and first uncleanable offsets.
    fn cleanable_range(&self, view: &View, upper_bound: i64, now_ms: i64) -> Result<(i64, i64)> {
        let checkpointed = checkpoint::read(&*self.local.fs, &self.local.dir)?;
        let first_dirty = checkpoint::first_dirty_offset(
            checkpointed,
            view.log_start_offset,
            view.log_end_offset,
        );
        let active_base = view
            .segments
            .last()
            .map_or(view.log_end_offset, |s| s.base_offset());
        let mut uncleanable = upper_bound.min(active_base).min(view.log_end_offset);
        let lag = self.config().min_compaction_lag_ms;
        if lag > 0 {
            let start = view.segment_index(first_dirty).unwrap_or(0);
            let sealed = view.segments.len().saturating_sub(1);
            for seg in view.segments.iter().take(sealed).skip(start) {
                if seg.base_offset() >= uncleanable {
                    break;
                }
                if seg.max_timestamp()? > now_ms.saturating_sub(lag) {
                    uncleanable = seg.base_offset();
                    break;
                }
            }
        }
        Ok((first_dirty, uncleanable.max(first_dirty)))
    }

    /// Decode limits for batches already stored (appends allow up to `max.message.bytes`).
    /// Appends check incoming batches with the same limits (`log/append.rs`).
    pub(crate) fn stored_batch_limits(&self) -> DecodeLimits {
        DecodeLimits {
            max_batch_bytes: self
                .config()
                .decode_limits
                .max_batch_bytes
                .max(self.config().max_message_bytes as usize),
            ..self.config().decode_limits
        }
    }

    /// Replaces each group of adjacent sealed segments with its cleaned segment, on disk
    /// (all at once) and in the view, then checkpoints `end` as the first dirty offset.
    /// False, with the cleaned files removed, when a group is no longer in the log (a
    /// truncation or deletion ran meanwhile).
    ///
    /// Runs under the segment-files lock, so no truncation, deletion or close slips in; the
    /// writer lock is taken only to find the groups and to splice the new segments in, and
    /// the renames, removals and fsyncs of the swap run between, with appends going on
    /// (they only add at the end, behind the groups).
    fn swap_in(&self, replacements: Vec<(Segment, Vec<Arc<Segment>>)>, end: i64) -> Result<bool> {
        let files = self.local.files.lock();
        let positions = {
            let w = self.lock_open()?;
            let positions = if end > w.log_end_offset {
                // Truncated below the pass's end meanwhile (its groups were not touched).
                None
            } else {
                locate_groups(&w.segments, &replacements)
            };
            drop(w);
            match positions {
                Some(p) => p,
                None => {
                    for (cleaned, _) in &replacements {
                        cleaned.delete_files()?;
                    }
                    return Ok(false);
                }
            }
        };
        if replacements.is_empty() {
            self.poison_on_io(checkpoint::write(&*self.local.fs, &self.local.dir, end))?;
            return Ok(true);
        }
        let bases: Vec<i64> = replacements.iter().map(|(c, _)| c.base_offset()).collect();
        let olds: Vec<Vec<Arc<Segment>>> = replacements.into_iter().map(|(_, old)| old).collect();
        self.poison_on_io(swap::commit(&*self.local.fs, &self.local.dir, &bases))?;
        self.poison_on_io(swap::finish(
            &*self.local.fs,
            &self.local.dir,
            &bases,
            &olds,
        ))?;
        let mut opened = Vec::with_capacity(bases.len());
        for &base in &bases {
            let seg = Segment::open(
                &self.local.fs,
                &self.local.dir,
                base,
                LocalLog::index_config(self.config()),
            );
            opened.push(Arc::new(self.poison_on_io(seg)?));
        }
        {
            let mut w = self.lock_open()?;
            // Only appends ran since the groups were found, and they add at the end.
            let still = opened.len() == positions.len()
                && olds.iter().zip(&positions).all(|(old, &at)| {
                    old.iter()
                        .enumerate()
                        .all(|(i, s)| w.segments.get(at + i).is_some_and(|c| Arc::ptr_eq(c, s)))
                });
            if !still {
                self.durability
                    .poison("a compaction swap found its segments moved".to_string());
                return Err(self.durability.poison_error());
            }
            // Spliced from the last group back, so earlier positions stay valid.
            for ((seg, old), &at) in opened.into_iter().zip(&olds).zip(&positions).rev() {
                w.segments.splice(at..at + old.len(), [seg]);
            }
            w.generation += 1;
            self.local.publish(&w);
        }
        self.poison_on_io(checkpoint::write(&*self.local.fs, &self.local.dir, end))?;
        drop(files);
        Ok(true)
    }
}

/// Where each group of `replacements` lies in `segments` (all of it, adjacent and sealed),
/// or `None` when one is no longer there.
fn locate_groups(
    segments: &[Arc<Segment>],
    replacements: &[(Segment, Vec<Arc<Segment>>)],
) -> Option<Vec<usize>> {
    replacements
        .iter()
        .map(|(_, old)| {
            let at = old
                .first()
                .and_then(|first| segments.iter().position(|s| Arc::ptr_eq(s, first)))?;
            let in_place = at + old.len() < segments.len()
                && old
                    .iter()
                    .enumerate()
                    .all(|(i, s)| segments.get(at + i).is_some_and(|cur| Arc::ptr_eq(cur, s)));
            in_place.then_some(at)
        })
        .collect()
}
