//! The aborted transactions a read_committed reader (or the cleaner) skips, indexed by
//! producer.

use std::collections::HashMap;

use super::AbortedTxn;
use crate::record::Batch;

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
