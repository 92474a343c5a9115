//! The producer-state manager of one partition (Kafka's `ProducerStateManager`): the
//! in-memory [`ProducerState`] behind its own lock, and the files that save it (the
//! `.snapshot` files and each segment's `.txnindex`).
//!
//! It knows nothing of the log's segments beyond their base offsets: the log hands it the
//! segment list, and reads batches for a replay through a callback. Its lock is taken after
//! the log's writer lock and before the durability lock (see `log/mod.rs`), and no file is
//! written while it is held: a snapshot is encoded under it and written after it is released,
//! so read_committed fetches (which take it for the last stable offset) never wait on I/O.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard};

use super::append::{AppendCheck, MarkerAppend, ProducerAppend};
use super::state::ProducerState;
use super::{snapshot, AbortedTxn, BatchMetadata, ProducerStateEntry, TxnResult};
use crate::error::{Error, Result};
use crate::io::FileSystem;
use crate::record::{Batch, ControlRecordType};
use crate::segment::txnindex;

/// What the log does with the outcome of a write to one of its files: a failed write poisons
/// the log (the log passes its own `poison_on_io`).
pub(crate) type OnWrite<'a> = &'a dyn Fn(Result<()>) -> Result<()>;

/// Reads the stored batches of `[from, to)` and passes each one with a producer id to the
/// sink, in order: how the manager replays the log without knowing its segments.
pub(crate) type Replay<'a> =
    &'a mut dyn FnMut(i64, i64, &mut dyn FnMut(&Batch<'_>) -> Result<()>) -> Result<()>;

/// The part of the log a recovery scan read, and the first batch with a producer id in it:
/// a replay need not read again what holds no producer batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ScannedRange {
    /// The offset the recovery scan started at: a segment's base offset, or the recovery
    /// point inside it (everything after was scanned too).
    pub scanned_from: Option<i64>,
    /// Base offset of the first valid batch with a producer id among those scanned.
    pub first_producer_batch: Option<i64>,
}

/// A segment as the manager sees it: where it starts and where the next one starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentRange {
    /// The segment's base offset.
    pub base: i64,
    /// The next segment's base offset (`i64::MAX` for the last).
    pub next: i64,
}

impl SegmentRange {
    /// The ranges of segments with these base offsets, ascending.
    pub(crate) fn of(bases: &[i64]) -> Vec<SegmentRange> {
        bases
            .iter()
            .enumerate()
            .map(|(i, &base)| SegmentRange {
                base,
                next: bases.get(i + 1).copied().unwrap_or(i64::MAX),
            })
            .collect()
    }
}

/// A snapshot written at a roll whose fsyncs are deferred until after the writer lock.
#[derive(Debug, Clone)]
struct PendingSnapshot {
    offset: i64,
    /// Segments whose `.txnindex` the snapshot vouches for (the last two at the roll).
    recent_segments: Vec<i64>,
}

/// Producer state of one partition, with its lock and its files.
#[derive(Debug)]
pub(crate) struct ProducerStateManager {
    dir: PathBuf,
    fs: Arc<dyn FileSystem>,
    expiration_ms: i64,
    state: Mutex<ProducerState>,
    /// Snapshots written by rolls and not yet synced (a short lock, never held across I/O).
    unsynced: Mutex<Vec<PendingSnapshot>>,
    /// Whether `unsynced` holds any (read on every append without the lock).
    has_unsynced: AtomicBool,
}

impl ProducerStateManager {
    /// Empty state covering nothing below `start`; [`load`](Self::load) fills it.
    pub(crate) fn new(
        dir: PathBuf,
        fs: Arc<dyn FileSystem>,
        expiration_ms: i64,
        start: i64,
    ) -> Self {
        ProducerStateManager {
            dir,
            fs,
            expiration_ms,
            state: Mutex::new(ProducerState::new(expiration_ms, start)),
            unsynced: Mutex::new(Vec::new()),
            has_unsynced: AtomicBool::new(false),
        }
    }

    /// The state, locked (briefly: never held across file I/O).
    pub(crate) fn lock(&self) -> MutexGuard<'_, ProducerState> {
        self.state.lock()
    }

    /// Rebuilds the state for the log `[start, end)` with these segments: the newest
    /// readable snapshot at or below `end`, the `.txnindex` entries it vouches for, then a
    /// replay of the batches after it. Damaged snapshots are removed; damaged or missing
    /// `.txnindex` files make the replay start at `start` and rewrite them all. Returns where
    /// the replay began.
    pub(crate) fn load(
        &self,
        segments: &[SegmentRange],
        start: i64,
        end: i64,
        scan: ScannedRange,
        replay: Replay<'_>,
        on_write: OnWrite<'_>,
    ) -> Result<i64> {
        let fs = &*self.fs;
        let dir = &self.dir;
        let expiration = self.expiration_ms;
        snapshot::delete_snapshots_above(fs, dir, end)?;
        let mut loaded = None;
        if start < end {
            for offset in snapshot::list_snapshots(fs, dir)?.into_iter().rev() {
                match snapshot::read_snapshot(fs, dir, offset) {
                    Ok(s) => {
                        loaded = Some((offset, s));
                        break;
                    }
                    Err(Error::CorruptSnapshot { path, .. }) => {
                        let _ = fs.remove(&path);
                    }
                    Err(e) => return Err(e),
                }
            }
        } else {
            snapshot::delete_snapshots_below(fs, dir, i64::MAX)?;
        }
        // The `.txnindex` entries below the snapshot are trusted only if they are all there.
        let mut indexed = Vec::new();
        let mut indexes_ok = true;
        for seg in segments {
            match txnindex::load(fs, dir, seg.base, seg.next) {
                Ok(entries) => indexed.extend(entries),
                Err(Error::CorruptTxnIndex { .. }) => indexes_ok = false,
                Err(e) => return Err(e),
            }
        }
        let (from, mut state) = match loaded {
            Some((offset, snap)) if indexes_ok && offset > start => {
                indexed.retain(|t| t.last_offset < offset);
                let expected = snap.aborted_below;
                let found = indexed.iter().filter(|t| t.last_offset >= start).count() as u64;
                if expected.is_some_and(|n| n != found) {
                    (start, ProducerState::new(expiration, start))
                } else {
                    let mut st = ProducerState::from_entries(expiration, offset, snap.entries);
                    st.set_aborted(indexed);
                    (offset, st)
                }
            }
            _ => (start, ProducerState::new(expiration, start)),
        };
        state.truncate_head(start);
        let mut result = Ok(());
        let mut apply = |b: &Batch<'_>| -> Result<()> {
            if b.producer_id() >= 0 {
                apply_unchecked(&mut state, b)?;
            }
            Ok(())
        };
        match scan.scanned_from {
            // The recovery scan read [scanned_from, end) and saw no producer batch before
            // `first_producer_batch`: the replay skips that stretch instead of reading it
            // again (it would apply nothing from it).
            Some(scanned_from) => {
                if from < scanned_from {
                    result = replay(from, scanned_from, &mut apply);
                }
                if result.is_ok() {
                    let resume = scan.first_producer_batch.unwrap_or(end).max(from);
                    result = replay(resume, end, &mut apply);
                }
            }
            None => result = replay(from, end, &mut apply),
        }
        result?;
        // Rewrite the `.txnindex` of every segment the replay covered.
        self.write_txn_indexes(segments, &state, from, on_write)?;
        *self.state.lock() = state;
        Ok(from)
    }

    /// Rewrites every segment's `.txnindex` from the aborted transactions in memory (after
    /// compaction replaced segments), so the next open trusts them instead of replaying.
    pub(crate) fn rewrite_txn_indexes(
        &self,
        segments: &[SegmentRange],
        on_write: OnWrite<'_>,
    ) -> Result<()> {
        let state = self.state.lock().clone();
        self.write_txn_indexes(segments, &state, i64::MIN, on_write)
    }

    /// Writes the `.txnindex` of each segment ending above `from` whose file does not hold
    /// exactly the aborted transactions `state` has for it.
    fn write_txn_indexes(
        &self,
        segments: &[SegmentRange],
        state: &ProducerState,
        from: i64,
        on_write: OnWrite<'_>,
    ) -> Result<()> {
        let fs = &*self.fs;
        for seg in segments {
            if seg.next <= from {
                continue;
            }
            let entries: Vec<AbortedTxn> = state
                .aborted_from(seg.base)
                .iter()
                .take_while(|t| t.last_offset < seg.next)
                .copied()
                .collect();
            let path = txnindex::txn_index_path(&self.dir, seg.base);
            if entries.is_empty() && !fs.exists(&path) {
                continue;
            }
            if txnindex::load(fs, &self.dir, seg.base, seg.next).is_ok_and(|d| d == entries) {
                continue;
            }
            on_write(txnindex::rewrite(fs, &self.dir, seg.base, &entries))?;
        }
        Ok(())
    }

    /// Writes `<log end offset>.snapshot` (at roll and at clean close). The `.txnindex`
    /// files of `recent_segments` (the last two) are made durable first: the snapshot vouches
    /// for the aborted transactions below its offset, and a crash losing them would cost a
    /// full replay at the next open. The state is encoded under the lock and written after it
    /// is released.
    pub(crate) fn take_snapshot(
        &self,
        recent_segments: &[i64],
        log_end_offset: i64,
        on_write: OnWrite<'_>,
    ) -> Result<()> {
        for &base in recent_segments {
            on_write(txnindex::sync(&*self.fs, &self.dir, base))?;
        }
        let (offset, bytes) = {
            let state = self.state.lock();
            let offset = log_end_offset.max(state.map_end_offset());
            (offset, snapshot::encode_snapshot(offset, &state))
        };
        on_write(snapshot::write_snapshot_bytes(
            &*self.fs, &self.dir, offset, &bytes,
        ))
    }

    /// Writes `<log end offset>.snapshot` at a roll without waiting for the disk, as Kafka
    /// does: encoded under the state lock, written (not synced) after it is released, by
    /// the caller holding the log's writer lock, so no truncation can remove snapshots
    /// between. [`sync_unsynced`](Self::sync_unsynced), run outside the writer lock, makes
    /// it durable. A crash before then leaves the file missing or torn, which a load
    /// detects by its CRC and skips: the replay then starts from an older snapshot.
    pub(crate) fn take_snapshot_deferred(
        &self,
        recent_segments: &[i64],
        log_end_offset: i64,
        on_write: OnWrite<'_>,
    ) -> Result<()> {
        let (offset, bytes) = {
            let state = self.state.lock();
            let offset = log_end_offset.max(state.map_end_offset());
            (offset, snapshot::encode_snapshot(offset, &state))
        };
        on_write(snapshot::write_snapshot_unsynced(
            &*self.fs, &self.dir, offset, &bytes,
        ))?;
        self.unsynced.lock().push(PendingSnapshot {
            offset,
            recent_segments: recent_segments.to_vec(),
        });
        self.has_unsynced.store(true, Ordering::Release);
        Ok(())
    }

    /// Whether a roll left a snapshot to sync.
    pub(crate) fn has_unsynced(&self) -> bool {
        self.has_unsynced.load(Ordering::Acquire)
    }

    /// Makes the snapshots rolls wrote durable: the `.txnindex` files each vouches for,
    /// then the snapshot file (the caller syncs the directory after). A snapshot a
    /// truncation removed meanwhile is skipped.
    pub(crate) fn sync_unsynced(&self, on_write: OnWrite<'_>) -> Result<()> {
        let pending = {
            let mut unsynced = self.unsynced.lock();
            self.has_unsynced.store(false, Ordering::Release);
            std::mem::take(&mut *unsynced)
        };
        for (i, p) in pending.iter().enumerate() {
            let synced = p
                .recent_segments
                .iter()
                .try_for_each(|&base| txnindex::sync(&*self.fs, &self.dir, base))
                .and_then(|()| snapshot::sync_snapshot(&*self.fs, &self.dir, p.offset));
            if let Err(e) = synced {
                // Left for the next try (the log is poisoned by then anyway).
                let rest = pending.get(i..).unwrap_or_default();
                self.unsynced.lock().extend_from_slice(rest);
                self.has_unsynced.store(true, Ordering::Release);
                return on_write(Err(e));
            }
        }
        Ok(())
    }

    /// Checks a client batch with a producer id stored at `first_offset`: what to record
    /// once it is written, or `Err(original)` for a duplicate (nothing is to be written).
    pub(crate) fn check_client(
        &self,
        b: &Batch<'_>,
        first_offset: i64,
        max_timestamp: i64,
    ) -> Result<std::result::Result<ProducerAppend, BatchMetadata>> {
        let append = ProducerAppend::of(b, first_offset, max_timestamp);
        match self.state.lock().check_client(&append)? {
            AppendCheck::Duplicate(m) => Ok(Err(m)),
            AppendCheck::Append => Ok(Ok(append)),
        }
    }

    /// Records a checked append once its batch is written.
    pub(crate) fn apply_checked(&self, append: &ProducerAppend) {
        self.state.lock().apply_data(append);
    }

    /// Records a stored batch's producer fields without checks (replication, replay);
    /// returns the `.txnindex` entry of an ABORT marker.
    pub(crate) fn apply_unchecked(&self, b: &Batch<'_>) -> Result<Option<AbortedTxn>> {
        if b.producer_id() < 0 {
            return Ok(None);
        }
        apply_unchecked(&mut self.state.lock(), b)
    }

    /// Checks a transaction marker before it is written.
    pub(crate) fn check_marker(&self, marker: &MarkerAppend) -> Result<()> {
        self.state.lock().check_marker(marker)
    }

    /// Applies a written transaction marker; returns the `.txnindex` entry of an abort.
    pub(crate) fn apply_marker(&self, marker: &MarkerAppend) -> Result<Option<AbortedTxn>> {
        self.state.lock().apply_marker(marker, false)
    }

    /// Appends an abort's entry to the `.txnindex` of the segment based at `segment_base`.
    pub(crate) fn index_abort(
        &self,
        segment_base: i64,
        aborted: Option<AbortedTxn>,
        on_write: OnWrite<'_>,
    ) -> Result<()> {
        if let Some(t) = aborted {
            on_write(txnindex::append(&*self.fs, &self.dir, segment_base, &t))?;
        }
        Ok(())
    }

    /// Forgets the completed transactions whose marker is below the high watermark, which
    /// has moved to `high_watermark` (they are stable for good).
    pub(crate) fn on_high_watermark(&self, high_watermark: i64) {
        self.state.lock().on_high_watermark(high_watermark);
    }

    /// The last stable offset for `high_watermark` (already bounded by the log end
    /// offset), never below `floor` (the log start offset, bounded by it too). A pure query.
    pub(crate) fn stable_offset(&self, high_watermark: i64, floor: i64) -> i64 {
        let hw = high_watermark;
        let state = self.state.lock();
        let lso = state.first_unstable_offset(hw).map_or(hw, |f| f.min(hw));
        lso.max(floor)
    }

    /// Aborted transactions overlapping `[from, upper)`.
    pub(crate) fn aborted_between(&self, from: i64, upper: i64) -> Vec<AbortedTxn> {
        self.state.lock().aborted_between(from, upper)
    }

    /// The state of one producer id, if known.
    pub(crate) fn entry(&self, producer_id: i64) -> Option<ProducerStateEntry> {
        self.state.lock().entry(producer_id).cloned()
    }

    /// Every producer known, by producer id.
    pub(crate) fn entries(&self) -> Vec<ProducerStateEntry> {
        let mut v: Vec<_> = self.state.lock().entries().cloned().collect();
        v.sort_unstable_by_key(|e| e.producer_id);
        v
    }

    /// Each producer's last data batch, by producer id.
    pub(crate) fn last_batches(&self) -> HashMap<i64, BatchMetadata> {
        self.state.lock().last_batches()
    }

    /// Forgets producers idle past the expiration without an open transaction.
    pub(crate) fn remove_expired(&self, now_ms: i64) -> usize {
        self.state.lock().remove_expired(now_ms)
    }

    /// Forgets the aborted transactions whose ABORT marker the cleaner removed.
    pub(crate) fn forget_aborted(&self, markers: &[(i64, i64)]) {
        self.state.lock().forget_aborted(markers);
    }

    /// The log start offset moved to `start` (retention, DeleteRecords): producers whose
    /// last batch is now below it go, with their open transactions.
    pub(crate) fn truncate_head(&self, start: i64) {
        self.state.lock().truncate_head(start);
    }

    /// Removes the snapshots below the first segment (`first_segment_base`), once a prefix
    /// of the log is gone.
    pub(crate) fn delete_snapshots_below(
        &self,
        first_segment_base: i64,
        on_write: OnWrite<'_>,
    ) -> Result<()> {
        on_write(snapshot::delete_snapshots_below(
            &*self.fs,
            &self.dir,
            first_segment_base,
        ))
    }
}

/// Applies one stored batch with a producer id to `state` without checks; returns the
/// `.txnindex` entry of an ABORT marker.
pub(crate) fn apply_unchecked(
    state: &mut ProducerState,
    b: &Batch<'_>,
) -> Result<Option<AbortedTxn>> {
    if b.is_control() {
        if b.record_count() == 0 {
            // A marker the cleaner emptied: its transaction is gone from the log (Kafka
            // skips these too).
            return Ok(None);
        }
        let Some(control) = b.control_record()? else {
            return Ok(None);
        };
        let result = match control.kind {
            ControlRecordType::Commit => TxnResult::Commit,
            ControlRecordType::Abort => TxnResult::Abort,
            ControlRecordType::Unknown(_) => return Ok(None),
        };
        let coordinator_epoch = control.marker.map_or(-1, |m| m.coordinator_epoch);
        let marker = MarkerAppend {
            producer_id: b.producer_id(),
            producer_epoch: b.producer_epoch(),
            result,
            coordinator_epoch,
            offset: b.base_offset(),
            timestamp: b.max_timestamp(),
        };
        return state.apply_marker(&marker, false);
    }
    state.apply_data(&ProducerAppend::of(b, b.base_offset(), b.max_timestamp()));
    Ok(None)
}
