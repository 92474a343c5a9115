//! The log's side of producer state: loading it at open (newest snapshot plus replay),
//! snapshots at roll and close, transaction markers, the last stable offset, read_committed
//! fetches, and the `.txnindex` files.

use std::collections::HashMap;

use super::{Log, Writer};
use crate::error::{Error, Result};
use crate::producer::{
    self, AbortedTxn, BatchMetadata, IsolationLevel, MarkerAppend, ProducerAppend,
    ProducerStateEntry, ProducerStateManager, TxnResult,
};
use crate::record::{
    Batch, BatchBuilder, BatchOptions, Batches, ControlRecord, ControlRecordType, NO_SEQUENCE,
};
use crate::segment::txnindex;
use crate::segment::BatchPos;
use crate::AppendInfo;

/// Bytes read per step when replaying the log into producer state.
const REPLAY_CHUNK: usize = 1 << 20;

impl Log {
    /// Rebuilds the producer state for the log as it now is: the newest readable snapshot at
    /// or below the log end offset, the `.txnindex` entries it vouches for, then a replay of
    /// the batches after it. Damaged snapshots are removed; damaged or missing `.txnindex`
    /// files make the replay start at the log start offset and rewrite them all. Returns
    /// where the replay began.
    pub(crate) fn load_producer_state(
        &self,
        w: &Writer,
        scan: super::open::ProducerScan,
    ) -> Result<i64> {
        let fs = &*self.fs;
        let (start, end) = (w.log_start_offset, w.log_end_offset);
        let expiration = self.config.producer_id_expiration_ms;
        producer::delete_snapshots_above(fs, &self.dir, end)?;
        let mut loaded = None;
        if start < end {
            for offset in producer::list_snapshots(fs, &self.dir)?.into_iter().rev() {
                match producer::read_snapshot(fs, &self.dir, offset) {
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
            producer::delete_snapshots_below(fs, &self.dir, i64::MAX)?;
        }
        // The `.txnindex` entries below the snapshot are trusted only if they are all there.
        let mut indexed = Vec::new();
        let mut indexes_ok = true;
        for (i, seg) in w.segments.iter().enumerate() {
            let next = w.segments.get(i + 1).map_or(i64::MAX, |s| s.base_offset());
            match txnindex::load(fs, &self.dir, seg.base_offset(), next) {
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
                    (start, ProducerStateManager::new(expiration, start))
                } else {
                    let mut st =
                        ProducerStateManager::from_entries(expiration, offset, snap.entries);
                    st.set_aborted(indexed);
                    (offset, st)
                }
            }
            _ => (start, ProducerStateManager::new(expiration, start)),
        };
        state.truncate_head(start);
        match scan.scanned_from {
            // The recovery scan read [scanned_from, end) and saw no producer batch before
            // `first_producer_batch`: the replay skips that stretch instead of reading it
            // again (it would apply nothing from it).
            Some(scanned_from) => {
                if from < scanned_from {
                    self.replay_into(&mut state, from, scanned_from)?;
                }
                let resume = scan.first_producer_batch.unwrap_or(end).max(from);
                self.replay_into(&mut state, resume, end)?;
            }
            None => self.replay_into(&mut state, from, end)?,
        }
        // Rewrite the `.txnindex` of every segment the replay covered.
        self.write_txn_indexes(w, &state, from)?;
        *self.producers.lock() = state;
        Ok(from)
    }

    /// Applies every batch in `[from, to)` to `state`, without checks.
    fn replay_into(&self, state: &mut ProducerStateManager, from: i64, to: i64) -> Result<()> {
        let view = self.view();
        let mut offset = from;
        let mut buf = Vec::new();
        while offset < to {
            let data = self.read_in(&view, offset, REPLAY_CHUNK, Some(to))?;
            let Some(slice) = data.slice else { break };
            buf.resize(usize::try_from(slice.len()).unwrap_or(0), 0);
            slice.read_into(&mut buf)?;
            for b in Batches::with_limits(&buf, self.config.decode_limits) {
                let b = b?;
                if b.producer_id() >= 0 {
                    apply_unchecked(state, &b)?;
                }
            }
            if data.next_offset <= offset {
                break;
            }
            offset = data.next_offset;
        }
        Ok(())
    }

    /// Rewrites every segment's `.txnindex` from the aborted transactions in memory (after
    /// compaction replaced segments), so the next open trusts them instead of replaying.
    pub(crate) fn rewrite_txn_indexes(&self) -> Result<()> {
        let w = self.lock_open()?;
        let state = self.producers.lock();
        self.write_txn_indexes(&w, &state, i64::MIN)
    }

    /// Writes the `.txnindex` of each segment ending above `from` whose file does not hold
    /// exactly the aborted transactions `state` has for it.
    fn write_txn_indexes(&self, w: &Writer, state: &ProducerStateManager, from: i64) -> Result<()> {
        let fs = &*self.fs;
        for (i, seg) in w.segments.iter().enumerate() {
            let base = seg.base_offset();
            let next = w.segments.get(i + 1).map_or(i64::MAX, |s| s.base_offset());
            if next <= from {
                continue;
            }
            let entries: Vec<AbortedTxn> = state
                .aborted_from(base)
                .iter()
                .take_while(|t| t.last_offset < next)
                .copied()
                .collect();
            let path = txnindex::txn_index_path(&self.dir, base);
            if entries.is_empty() && !fs.exists(&path) {
                continue;
            }
            if txnindex::load(fs, &self.dir, base, next).is_ok_and(|d| d == entries) {
                continue;
            }
            self.poison_on_io(txnindex::rewrite(fs, &self.dir, base, &entries))?;
        }
        Ok(())
    }

    /// Writes `<log end offset>.snapshot` (at roll and at clean close). The `.txnindex`
    /// files of the last two segments are made durable first: the snapshot vouches for the
    /// aborted transactions below its offset, and a crash losing them would cost a full
    /// replay at the next open.
    pub(crate) fn snapshot_producer_state(&self, w: &Writer) -> Result<()> {
        for seg in w.segments.iter().rev().take(2) {
            self.poison_on_io(txnindex::sync(&*self.fs, &self.dir, seg.base_offset()))?;
        }
        let state = self.producers.lock();
        let offset = w.log_end_offset.max(state.map_end_offset());
        self.poison_on_io(producer::write_snapshot(
            &*self.fs, &self.dir, offset, &state,
        ))
    }

    /// Checks a client batch with a producer id stored at `first_offset`: what to record
    /// once it is written, or `Err(info)` for a duplicate (the original's offsets; nothing
    /// is to be written).
    pub(super) fn check_producer_append(
        &self,
        b: &Batch<'_>,
        first_offset: i64,
        max_timestamp: i64,
    ) -> Result<std::result::Result<ProducerAppend, AppendInfo>> {
        let append = ProducerAppend::of(b, first_offset, max_timestamp);
        match self.producers.lock().check_client(&append)? {
            producer::AppendCheck::Duplicate(m) => Ok(Err(duplicate_info(&m))),
            producer::AppendCheck::Append => Ok(Ok(append)),
        }
    }

    /// Records a checked append's producer state once its batch is written.
    pub(super) fn commit_producer_append(&self, append: &ProducerAppend) {
        self.producers.lock().apply_data(append);
    }

    /// Records a replicated batch's producer fields (no checks) once it is written.
    pub(super) fn apply_replicated_producer_batch(&self, w: &Writer, b: &Batch<'_>) -> Result<()> {
        if b.producer_id() < 0 {
            return Ok(());
        }
        let aborted = apply_unchecked(&mut self.producers.lock(), b)?;
        self.index_abort(w, aborted)
    }

    fn index_abort(&self, w: &Writer, aborted: Option<AbortedTxn>) -> Result<()> {
        if let (Some(t), Some(active)) = (aborted, w.segments.last()) {
            self.poison_on_io(txnindex::append(
                &*self.fs,
                &self.dir,
                active.base_offset(),
                &t,
            ))?;
        }
        Ok(())
    }

    /// Appends a transaction marker (a COMMIT or ABORT control batch) for `producer_id`, as
    /// a transaction coordinator does at the end of a transaction. A marker with an epoch
    /// older than the producer's is [`Error::InvalidProducerEpoch`]; one from a coordinator
    /// epoch older than the producer's last marker is
    /// [`Error::TransactionCoordinatorFenced`]. An abort is recorded in the active
    /// segment's `.txnindex`.
    ///
    /// ```
    /// use streamlog::{BatchBuilder, BatchOptions, IsolationLevel, Log, LogConfig, TxnResult};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let log = Log::open(dir.path(), LogConfig::default())?;
    /// let mut b = BatchBuilder::new(BatchOptions {
    ///     producer_id: 42, producer_epoch: 0, base_sequence: 0, transactional: true,
    ///     ..BatchOptions::default()
    /// });
    /// b.append(0, None, Some(b"tx"), &[])?;
    /// log.append(&b.build()?)?;
    /// assert_eq!(log.last_stable_offset(log.log_end_offset()), 0); // undecided
    /// log.write_txn_marker(42, 0, TxnResult::Abort, 0)?;
    /// let hw = log.log_end_offset();
    /// let fetch = log.fetch(0, 1 << 20, hw, IsolationLevel::ReadCommitted)?;
    /// assert_eq!(fetch.aborted_transactions.unwrap()[0].producer_id, 42);
    /// assert_eq!(log.records_committed(0, hw).count(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn write_txn_marker(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        result: TxnResult,
        coordinator_epoch: i32,
    ) -> Result<AppendInfo> {
        if producer_id < 0 {
            return Err(Error::InvalidArgument(format!(
                "transaction marker for producer id {producer_id}"
            )));
        }
        let mut w = self.lock_open()?;
        let now = self.config.clock.now_ms();
        let offset = w.log_end_offset;
        let marker = MarkerAppend {
            producer_id,
            producer_epoch,
            result,
            coordinator_epoch,
            offset,
            timestamp: now,
        };
        self.producers.lock().check_marker(&marker)?;
        let bytes = BatchBuilder::control_batch(
            BatchOptions {
                base_offset: offset,
                partition_leader_epoch: w.leader_epoch,
                producer_id,
                producer_epoch,
                base_sequence: NO_SEQUENCE,
                ..BatchOptions::default()
            },
            &ControlRecord::end_txn(result == TxnResult::Commit, coordinator_epoch),
            now,
        )?;
        let batch = Batch::new(&bytes)?;
        let pos = BatchPos::of(&batch, 0);
        self.maybe_roll(&mut w, pos.size, pos.max_timestamp, offset, offset, now)?;
        self.write_batch(&mut w, &[&bytes], &pos)?;
        let aborted = self.producers.lock().apply_marker(&marker, false)?;
        self.index_abort(&w, aborted)?;
        drop(w);
        self.after_append(1, offset)?;
        Ok(AppendInfo {
            first_offset: offset,
            last_offset: offset,
            max_timestamp: pos.max_timestamp,
            log_append_time: None,
            record_count: 1,
            size_in_bytes: bytes.len() as u64,
            duplicate: false,
        })
    }

    /// The last stable offset for a high watermark (Kafka's LSO): the smaller of
    /// `high_watermark` and the first offset of a transaction not yet decided (or decided
    /// by a marker at or above the high watermark), never below the log start offset. The
    /// high watermark only moves forward: completed transactions below it are forgotten.
    pub fn last_stable_offset(&self, high_watermark: i64) -> i64 {
        self.stable_offset(high_watermark, true)
    }

    /// The last stable offset for `high_watermark`, forgetting the completed transactions
    /// below it when `advance` (the caller's high watermark is real, not a bound).
    pub(crate) fn stable_offset(&self, high_watermark: i64, advance: bool) -> i64 {
        let hw = high_watermark.min(self.log_end_offset());
        let mut state = self.producers.lock();
        if advance {
            state.on_high_watermark(hw);
        }
        let lso = state.first_unstable_offset(hw).map_or(hw, |f| f.min(hw));
        lso.max(self.log_start_offset().min(hw))
    }

    /// [`Log::read`] for a fetch at an isolation level: read_uncommitted reads below the
    /// high watermark; read_committed reads below the last stable offset and lists the
    /// aborted transactions overlapping the batches returned (as Kafka's fetch response
    /// does), so the reader can drop their records.
    pub fn fetch(
        &self,
        offset: i64,
        max_bytes: usize,
        high_watermark: i64,
        isolation: IsolationLevel,
    ) -> Result<crate::FetchData> {
        match isolation {
            IsolationLevel::ReadUncommitted => self.read(offset, max_bytes, Some(high_watermark)),
            IsolationLevel::ReadCommitted => {
                let lso = self.last_stable_offset(high_watermark);
                let mut data = self.read(offset, max_bytes, Some(lso))?;
                let upper = data.next_offset;
                let aborted = if data.slice.is_some() {
                    self.producers
                        .lock()
                        .aborted_between(offset, upper)
                        .iter()
                        .map(AbortedTxn::as_aborted_transaction)
                        .collect()
                } else {
                    Vec::new()
                };
                data.aborted_transactions = Some(aborted);
                data.last_stable_offset = Some(lso);
                Ok(data)
            }
        }
    }

    /// Aborted transactions overlapping `[from, upper)`, from the in-memory copy of the
    /// `.txnindex` files (what compaction removes and read_committed readers skip).
    pub fn aborted_transactions(&self, from: i64, upper: i64) -> Vec<AbortedTxn> {
        self.producers.lock().aborted_between(from, upper)
    }

    /// The state of one producer id, if the log knows it.
    pub fn producer_state(&self, producer_id: i64) -> Option<ProducerStateEntry> {
        self.producers.lock().entry(producer_id).cloned()
    }

    /// Every producer the log knows, by producer id.
    pub fn producer_states(&self) -> Vec<ProducerStateEntry> {
        let mut v: Vec<_> = self.producers.lock().entries().cloned().collect();
        v.sort_unstable_by_key(|e| e.producer_id);
        v
    }

    /// Each producer's last data batch, by producer id: what compaction keeps even when it holds nothing
    /// else worth keeping, so a retry is still recognised.
    pub fn producer_last_batches(&self) -> HashMap<i64, BatchMetadata> {
        self.producers.lock().last_batches()
    }

    /// Forgets producers idle for `producer_id_expiration_ms` (by their last batch's
    /// timestamp) without an open transaction; returns how many. [`Log::tick`] calls it.
    pub fn remove_expired_producers(&self, now_ms: i64) -> usize {
        self.producers.lock().remove_expired(now_ms)
    }

    /// The log start offset moved (retention, DeleteRecords): producers whose last batch is
    /// now below it go, with their open transactions, and snapshots below the first
    /// segment are removed.
    pub(crate) fn on_log_start_offset_moved(&self, w: &Writer) -> Result<()> {
        self.producers.lock().truncate_head(w.log_start_offset);
        let first_base = w.segments.first().map_or(0, |s| s.base_offset());
        self.poison_on_io(producer::delete_snapshots_below(
            &*self.fs, &self.dir, first_base,
        ))
    }
}

/// Applies one stored batch with a producer id to `state` without checks; returns the
/// `.txnindex` entry of an ABORT marker.
fn apply_unchecked(state: &mut ProducerStateManager, b: &Batch<'_>) -> Result<Option<AbortedTxn>> {
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

/// What an append of a duplicate batch returns: the original's offsets.
fn duplicate_info(m: &BatchMetadata) -> AppendInfo {
    AppendInfo {
        first_offset: m.first_offset(),
        last_offset: m.last_offset,
        max_timestamp: m.timestamp,
        log_append_time: None,
        record_count: u32::try_from(m.offset_delta).unwrap_or(0) + 1,
        size_in_bytes: 0,
        duplicate: true,
    }
}

/// The aborted transactions a read_committed iterator skips, by producer.
#[derive(Debug, Default)]
pub(crate) struct AbortedFilter {
    by_producer: HashMap<i64, Vec<(i64, i64)>>,
}

impl AbortedFilter {
    pub(crate) fn new(aborted: &[AbortedTxn]) -> Self {
        let mut by_producer: HashMap<i64, Vec<(i64, i64)>> = HashMap::new();
        for t in aborted {
            by_producer
                .entry(t.producer_id)
                .or_default()
                .push((t.first_offset, t.last_offset));
        }
        AbortedFilter { by_producer }
    }

    /// Whether a read_committed reader drops `batch`: control batches, and transactional
    /// batches inside one of their producer's aborted transactions.
    pub(crate) fn skips(&self, batch: &Batch<'_>) -> bool {
        if batch.is_control() {
            return true;
        }
        if !batch.is_transactional() {
            return false;
        }
        let Some(ranges) = self.by_producer.get(&batch.producer_id()) else {
            return false;
        };
        let offset = batch.base_offset();
        // Ranges of one producer do not overlap and come in order.
        let i = ranges.partition_point(|&(_, last)| last < offset);
        ranges.get(i).is_some_and(|&(first, _)| first <= offset)
    }
}

impl AbortedFilter {
    /// Whether `batch` holds records of an aborted transaction.
    pub(crate) fn is_aborted(&self, batch: &Batch<'_>) -> bool {
        !batch.is_control() && self.skips(batch)
    }
}

/// Compaction decisions from the producer state, after Kafka's log cleaner
/// (`LogCleaner` with `CleanedTransactionMetadata`): an aborted transaction's batches go
/// whole, except a producer's last batch, which stays empty; a producer's last data batch
/// stays (emptied if no record survives) so its sequence is still known after a replay of
/// the log; a transaction marker stays while any batch of its transaction is left in the
/// log, and once none is, it goes after `delete.retention.ms` (a delete horizon, as for
/// tombstones); other batches are compacted. Built by [`Log::producer_compaction_hooks`].
#[derive(Debug, Default)]
pub struct ProducerCompactionHooks {
    aborted: AbortedFilter,
    /// Each producer's last data batch, by its last offset.
    last_batches: HashMap<i64, i64>,
    /// The epoch of each producer known without a data batch: its last entry in the log is
    /// a marker of that epoch, kept for fencing (Kafka's third "last record" case).
    marker_last: HashMap<i64, i16>,
    /// Producers with a transactional batch seen in this cleaning since their last marker.
    seen: parking_lot::Mutex<std::collections::HashSet<i64>>,
    /// (producer id, offset) of the markers this pass removed.
    removed: parking_lot::Mutex<Vec<(i64, i64)>>,
}

impl ProducerCompactionHooks {
    /// (producer id, offset) of the transaction markers the last cleaning removed.
    pub(crate) fn removed_markers(&self) -> Vec<(i64, i64)> {
        self.removed.lock().clone()
    }
}

impl super::cleaner::CompactionHooks for ProducerCompactionHooks {
    fn batch_retention(&self, batch: &Batch<'_>) -> super::cleaner::BatchRetention {
        use super::cleaner::BatchRetention;
        let pid = batch.producer_id();
        if batch.is_control() {
            let had_data = self.seen.lock().remove(&pid);
            if self.marker_last.get(&pid) == Some(&batch.producer_epoch()) {
                return BatchRetention::Retain;
            }
            if batch.record_count() == 0 && !had_data {
                // An emptied marker: nothing of its transaction is left.
                return BatchRetention::Delete;
            }
            return if had_data {
                BatchRetention::Retain
            } else {
                BatchRetention::DeleteAfterHorizon
            };
        }
        if batch.is_transactional() {
            self.seen.lock().insert(pid);
        }
        let last = pid >= 0 && self.last_batches.get(&pid) == Some(&batch.last_offset());
        match (self.aborted.is_aborted(batch), last) {
            (true, true) => BatchRetention::Empty,
            (true, false) => BatchRetention::Delete,
            (false, true) => BatchRetention::RetainEmpty,
            (false, false) => BatchRetention::DeleteEmpty,
        }
    }

    fn start_cleaning(&self) {
        self.seen.lock().clear();
        self.removed.lock().clear();
    }

    fn batch_removed(&self, batch: &Batch<'_>) {
        if batch.is_control() {
            self.removed
                .lock()
                .push((batch.producer_id(), batch.base_offset()));
        }
    }
}

impl Log {
    /// The compaction hooks for this log's producer state now (what [`Log::compact`] uses).
    pub fn producer_compaction_hooks(&self) -> ProducerCompactionHooks {
        let state = self.producers.lock();
        let last_batches: HashMap<i64, i64> = state
            .last_batches()
            .into_iter()
            .map(|(pid, b)| (pid, b.last_offset))
            .collect();
        let marker_last = state
            .entries()
            .filter(|e| !last_batches.contains_key(&e.producer_id))
            .map(|e| (e.producer_id, e.producer_epoch))
            .collect();
        ProducerCompactionHooks {
            aborted: AbortedFilter::new(state.aborted_from(i64::MIN)),
            last_batches,
            marker_last,
            seen: parking_lot::Mutex::default(),
            removed: parking_lot::Mutex::default(),
        }
    }
}

/// A read_committed reader's view for `records_committed`: the LSO and the filter.
pub(crate) fn committed_view(log: &Log, offset: i64, high_watermark: i64) -> (i64, AbortedFilter) {
    let lso = log.last_stable_offset(high_watermark);
    let aborted = log.producers.lock().aborted_between(offset, lso);
    (lso, AbortedFilter::new(&aborted))
}
