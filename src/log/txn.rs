//! The facade's side of producer state: transaction markers, the last stable offset,
//! read_committed fetches, and the replay that rebuilds the state from the log. The state
//! itself, its lock and its files are the producer-state manager's
//! (`crate::producer::ProducerStateManager`).

use std::collections::HashMap;

use super::{LocalLog, Log, View, Writer};
use crate::error::{Error, Result};
use crate::producer::{
    AbortedFilter, AbortedTxn, BatchMetadata, IsolationLevel, MarkerAppend, ProducerAppend,
    ProducerStateEntry, TxnResult,
};
use crate::record::{
    Batch, BatchBuilder, BatchOptions, Batches, ControlRecord, DecodeLimits, NO_SEQUENCE,
};
use crate::segment::BatchPos;
use crate::AppendInfo;

/// Bytes read per step when replaying the log into producer state.
const REPLAY_CHUNK: usize = 1 << 20;

/// Reads every batch in `[from, to)` under `view` and passes those with a producer id to
/// `sink`, in order: the replay the producer-state manager rebuilds its state from.
pub(super) fn replay(
    local: &LocalLog,
    view: &View,
    limits: DecodeLimits,
    from: i64,
    to: i64,
    sink: &mut dyn FnMut(&Batch<'_>) -> Result<()>,
) -> Result<()> {
    let mut offset = from;
    let mut buf = Vec::new();
    while offset < to {
        let data = local.read_in(view, offset, REPLAY_CHUNK, Some(to))?;
        let Some(slice) = data.slice else { break };
        buf.resize(usize::try_from(slice.len()).unwrap_or(0), 0);
        slice.read_into(&mut buf)?;
        for b in Batches::with_limits(&buf, limits) {
            let b = b?;
            if b.producer_id() >= 0 {
                sink(&b)?;
            }
        }
        if data.next_offset <= offset {
            break;
        }
        offset = data.next_offset;
    }
    Ok(())
}

impl Log {
    /// Rewrites every segment's `.txnindex` from the aborted transactions in memory (after
    /// compaction replaced segments), so the next open trusts them instead of replaying.
    pub(crate) fn rewrite_txn_indexes(&self) -> Result<()> {
        let w = self.lock_open()?;
        let segments = crate::producer::SegmentRange::of(&w.segment_bases());
        self.producers
            .rewrite_txn_indexes(&segments, &|r| self.poison_on_io(r))
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
        Ok(self
            .producers
            .check_client(b, first_offset, max_timestamp)?
            .map_err(|m| duplicate_info(&m)))
    }

    /// Records a checked append's producer state once its batch is written.
    pub(super) fn commit_producer_append(&self, append: &ProducerAppend) {
        self.producers.apply_checked(append);
    }

    /// Records a replicated batch's producer fields (no checks) once it is written.
    pub(super) fn apply_replicated_producer_batch(&self, w: &Writer, b: &Batch<'_>) -> Result<()> {
        let aborted = self.producers.apply_unchecked(b)?;
        self.index_abort(w, aborted)
    }

    fn index_abort(&self, w: &Writer, aborted: Option<AbortedTxn>) -> Result<()> {
        match w.segments.last() {
            Some(active) => self
                .producers
                .index_abort(active.base_offset(), aborted, &|r| self.poison_on_io(r)),
            None => Ok(()),
        }
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
    /// assert_eq!(log.last_stable_offset(), 0); // undecided
    /// log.write_txn_marker(42, 0, TxnResult::Abort, 0)?;
    /// let fetch = log.fetch(0, 1 << 20, IsolationLevel::ReadCommitted)?;
    /// assert_eq!(fetch.aborted_transactions.unwrap()[0].producer_id, 42);
    /// assert_eq!(log.records_committed(0).count(), 0);
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
            return Err(Error::InvalidProducerId {
                producer_id,
                what: "a transaction marker",
            });
        }
        let mut w = self.lock_open()?;
        let now = self.config().clock.now_ms();
        let offset = w.log_end_offset;
        let marker = MarkerAppend {
            producer_id,
            producer_epoch,
            result,
            coordinator_epoch,
            offset,
            timestamp: now,
        };
        self.producers.check_marker(&marker)?;
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
        // A roll needed first is finished (its fsyncs) with the writer lock released;
        // the marker is then built again at the log end as it is after.
        if self.maybe_roll(&mut w, pos.size, pos.max_timestamp, offset, offset, now)? {
            drop(w);
            self.finish_roll()?;
            return self.write_txn_marker(producer_id, producer_epoch, result, coordinator_epoch);
        }
        self.local
            .write_batch(&mut w, &[&bytes], &pos, &self.durability)?;
        let aborted = self.producers.apply_marker(&marker)?;
        self.index_abort(&w, aborted)?;
        drop(w);
        self.forget_replicated_transactions();
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

    /// The last stable offset as it would be with the high watermark at `bound` (capped by
    /// the log end offset): what compaction may clean below.
    pub(crate) fn stable_offset(&self, bound: i64) -> i64 {
        let view = self.view();
        let hw = bound.min(view.log_end_offset);
        self.producers
            .stable_offset(hw, view.log_start_offset.min(hw))
    }

    /// [`Log::read`] for a consumer's fetch at an isolation level: read_uncommitted reads
    /// below the high watermark; read_committed reads below the last stable offset and lists
    /// the aborted transactions overlapping the batches returned (as Kafka's fetch response
    /// does), so the reader can drop their records. (A follower reads to the log end with
    /// [`Log::read`].)
    pub fn fetch(
        &self,
        offset: i64,
        max_bytes: usize,
        isolation: IsolationLevel,
    ) -> Result<crate::FetchData> {
        match isolation {
            IsolationLevel::ReadUncommitted => {
                self.read(offset, max_bytes, Some(self.high_watermark()))
            }
            IsolationLevel::ReadCommitted => {
                let lso = self.last_stable_offset();
                let mut data = self.read(offset, max_bytes, Some(lso))?;
                let upper = data.next_offset;
                let aborted = if data.slice.is_some() {
                    self.producers
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
        self.producers.aborted_between(from, upper)
    }

    /// The state of one producer id, if the log knows it.
    pub fn producer_state(&self, producer_id: i64) -> Option<ProducerStateEntry> {
        self.producers.entry(producer_id)
    }

    /// Every producer the log knows, by producer id.
    pub fn producer_states(&self) -> Vec<ProducerStateEntry> {
        self.producers.entries()
    }

    /// Each producer's last data batch, by producer id: what compaction keeps even when it holds nothing
    /// else worth keeping, so a retry is still recognised.
    pub fn producer_last_batches(&self) -> HashMap<i64, BatchMetadata> {
        self.producers.last_batches()
    }

    /// Forgets producers idle for `producer_id_expiration_ms` (by their last batch's
    /// timestamp) without an open transaction; returns how many. [`Log::tick`] calls it.
    pub fn remove_expired_producers(&self, now_ms: i64) -> usize {
        self.producers.remove_expired(now_ms)
    }
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

impl crate::log::cleaner::CompactionHooks for ProducerCompactionHooks {
    fn batch_retention(&self, batch: &Batch<'_>) -> crate::log::cleaner::BatchRetention {
        use crate::log::cleaner::BatchRetention;
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
pub(crate) fn committed_view(log: &Log, offset: i64) -> (i64, AbortedFilter) {
    let lso = log.last_stable_offset();
    let aborted = log.producers.aborted_between(offset, lso);
    (lso, AbortedFilter::new(&aborted))
}
