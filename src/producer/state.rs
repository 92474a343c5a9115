//! The in-memory producer state of one partition (what Kafka's `ProducerStateManager` keeps): every producer's
//! entry, the open transactions, the completed ones not yet below the high watermark, and
//! the aborted ones readers must skip.

use std::collections::{BTreeMap, HashMap};

use super::append::{self, AppendCheck, CompletedTxn, MarkerAppend, ProducerAppend};
use super::entry::{BatchMetadata, ProducerStateEntry};
use super::AbortedTxn;
use crate::error::Result;

/// Producer state of one partition.
#[derive(Debug, Clone)]
pub(crate) struct ProducerState {
    producers: HashMap<i64, ProducerStateEntry>,
    /// Open transactions: first offset -> producer id.
    ongoing: BTreeMap<i64, i64>,
    /// Completed transactions whose marker may still be at or above the high watermark:
    /// first offset -> marker offset. They hold the last stable offset back until the
    /// marker is below the high watermark, as in Kafka.
    unreplicated: BTreeMap<i64, i64>,
    /// Aborted transactions, in marker order (ascending last offset).
    aborted: Vec<AbortedTxn>,
    /// The state covers every batch below this offset.
    map_end_offset: i64,
    expiration_ms: i64,
}

impl ProducerState {
    /// Empty state covering nothing below `start`.
    pub(crate) fn new(expiration_ms: i64, start: i64) -> Self {
        ProducerState {
            producers: HashMap::new(),
            ongoing: BTreeMap::new(),
            unreplicated: BTreeMap::new(),
            aborted: Vec::new(),
            map_end_offset: start,
            expiration_ms,
        }
    }

    /// State loaded from a snapshot taken at `offset`.
    pub(crate) fn from_entries(
        expiration_ms: i64,
        offset: i64,
        entries: Vec<ProducerStateEntry>,
    ) -> Self {
        let mut s = ProducerState::new(expiration_ms, offset);
        for e in entries {
            if let Some(first) = e.current_txn_first_offset {
                s.ongoing.insert(first, e.producer_id);
            }
            s.producers.insert(e.producer_id, e);
        }
        s
    }

    /// The offset below which every batch is reflected.
    pub(crate) fn map_end_offset(&self) -> i64 {
        self.map_end_offset
    }

    pub(crate) fn entry(&self, producer_id: i64) -> Option<&ProducerStateEntry> {
        self.producers.get(&producer_id)
    }

    /// All producers' entries, in no particular order.
    pub(crate) fn entries(&self) -> impl Iterator<Item = &ProducerStateEntry> {
        self.producers.values()
    }

    pub(crate) fn producer_count(&self) -> usize {
        self.producers.len()
    }

    /// Checks a client batch (nothing changes until [`apply_data`](Self::apply_data)).
    pub(crate) fn check_client(&self, b: &ProducerAppend) -> Result<AppendCheck> {
        append::check_client(self.producers.get(&b.producer_id), b)
    }

    /// Records a data batch once it is written (checked by [`check_client`](Self::check_client)
    /// for a client, unchecked for replication and replay).
    pub(crate) fn apply_data(&mut self, b: &ProducerAppend) {
        let entry = self
            .producers
            .entry(b.producer_id)
            .or_insert_with(|| ProducerStateEntry::empty(b.producer_id));
        if append::apply(entry, b) {
            self.ongoing.insert(b.first_offset, b.producer_id);
        }
        self.map_end_offset = self.map_end_offset.max(b.last_offset.saturating_add(1));
    }

    /// Checks (when `checked`) and applies a transaction marker written at `m.offset`;
    /// returns, for an abort of an open transaction, its `.txnindex` entry.
    pub(crate) fn apply_marker(
        &mut self,
        m: &MarkerAppend,
        checked: bool,
    ) -> Result<Option<AbortedTxn>> {
        let (entry, completed) =
            append::check_marker(self.producers.get(&m.producer_id), m, checked)?;
        self.map_end_offset = self.map_end_offset.max(m.offset.saturating_add(1));
        self.producers.insert(entry.producer_id, entry);
        Ok(completed.and_then(|c| self.complete(c)))
    }

    /// Checks a marker without applying it.
    pub(crate) fn check_marker(&self, m: &MarkerAppend) -> Result<()> {
        append::check_marker(self.producers.get(&m.producer_id), m, true).map(|_| ())
    }

    fn complete(&mut self, c: CompletedTxn) -> Option<AbortedTxn> {
        if self.ongoing.get(&c.first_offset) == Some(&c.producer_id) {
            self.ongoing.remove(&c.first_offset);
        }
        self.unreplicated.insert(c.first_offset, c.last_offset);
        if !c.aborted {
            return None;
        }
        // Kafka's lastStableOffset(completedTxn): the first transaction still open from
        // another producer, else just past the marker.
        let last_stable_offset = self
            .ongoing
            .iter()
            .find(|(_, &pid)| pid != c.producer_id)
            .map_or(c.last_offset.saturating_add(1), |(&first, _)| first);
        let txn = AbortedTxn {
            producer_id: c.producer_id,
            first_offset: c.first_offset,
            last_offset: c.last_offset,
            last_stable_offset,
        };
        self.aborted.push(txn);
        Some(txn)
    }

    /// Installs aborted transactions loaded from `.txnindex` files (marker order).
    pub(crate) fn set_aborted(&mut self, aborted: Vec<AbortedTxn>) {
        self.aborted = aborted;
    }

    /// Forgets the aborted transactions whose ABORT marker the cleaner removed: nothing of
    /// them is left in the log, and a reader must not treat the producer's later batches as
    /// part of them.
    pub(crate) fn forget_aborted(&mut self, markers: &[(i64, i64)]) {
        if !markers.is_empty() {
            self.aborted
                .retain(|t| !markers.contains(&(t.producer_id, t.last_offset)));
        }
    }

    /// Aborted transactions whose marker is at or above `from`.
    pub(crate) fn aborted_from(&self, from: i64) -> &[AbortedTxn] {
        let i = self.aborted.partition_point(|t| t.last_offset < from);
        self.aborted.get(i..).unwrap_or_default()
    }

    /// Aborted transactions overlapping `[from, upper)`, as Kafka's
    /// `collectAbortedTransactions` finds them.
    pub(crate) fn aborted_between(&self, from: i64, upper: i64) -> Vec<AbortedTxn> {
        let mut out = Vec::new();
        for t in self.aborted_from(from) {
            if t.first_offset < upper {
                out.push(*t);
            }
            // No transaction open when this one aborted started below `upper`, and every
            // later one starts after this marker.
            if t.last_stable_offset >= upper {
                break;
            }
        }
        out
    }

    /// The first offset not yet decided: an open transaction's first offset, or a completed
    /// one's whose marker is not below `high_watermark`.
    pub(crate) fn first_unstable_offset(&self, high_watermark: i64) -> Option<i64> {
        let open = self.ongoing.keys().next().copied();
        let unreplicated = self
            .unreplicated
            .iter()
            .find(|(_, &last)| last >= high_watermark)
            .map(|(&first, _)| first);
        match (open, unreplicated) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Forgets completed transactions whose marker is below `high_watermark` (which only
    /// moves forward).
    pub(crate) fn on_high_watermark(&mut self, high_watermark: i64) {
        self.unreplicated.retain(|_, last| *last >= high_watermark);
    }

    /// The log start offset moved to `start`: producers whose last data batch is below it
    /// go, with their open transactions (as Kafka's `truncateHead` did), so the last stable
    /// offset never waits on records that no longer exist. Producers without retained
    /// batches (an epoch bumped by a marker) stay: they still fence older epochs.
    pub(crate) fn truncate_head(&mut self, start: i64) {
        let gone: Vec<i64> = self
            .producers
            .values()
            .filter(|e| e.last_batch().is_some_and(|b| b.last_offset < start))
            .map(|e| e.producer_id)
            .collect();
        for pid in gone {
            self.remove(pid);
        }
        self.unreplicated.retain(|_, last| *last >= start);
        let i = self.aborted.partition_point(|t| t.last_offset < start);
        self.aborted.drain(..i);
        self.map_end_offset = self.map_end_offset.max(start);
    }

    fn remove(&mut self, pid: i64) {
        if let Some(e) = self.producers.remove(&pid) {
            if let Some(first) = e.current_txn_first_offset {
                self.ongoing.remove(&first);
            }
        }
    }

    /// Removes producers idle for `producer.id.expiration.ms` without an open transaction.
    /// Returns how many went.
    pub(crate) fn remove_expired(&mut self, now_ms: i64) -> usize {
        let limit = self.expiration_ms;
        let before = self.producers.len();
        self.producers.retain(|_, e| {
            e.current_txn_first_offset.is_some() || now_ms.saturating_sub(e.last_timestamp) < limit
        });
        before - self.producers.len()
    }

    /// Every producer's last data batch (what compaction must keep).
    pub(crate) fn last_batches(&self) -> HashMap<i64, BatchMetadata> {
        self.producers
            .values()
            .filter_map(|e| e.last_batch().map(|b| (e.producer_id, *b)))
            .collect()
    }

    /// Number of aborted transactions with a marker below `offset`.
    pub(crate) fn aborted_count_below(&self, offset: i64) -> usize {
        self.aborted.partition_point(|t| t.last_offset < offset)
    }
}
