//! One producer's state: epoch, the metadata of its last batches, its open transaction.

use std::collections::VecDeque;

use super::NUM_BATCHES_TO_RETAIN;
use crate::record::{NO_PRODUCER_EPOCH, NO_SEQUENCE};

/// What is remembered of one appended batch (Kafka's `BatchMetadata`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BatchMetadata {
    /// Sequence of the batch's last record.
    pub last_seq: i32,
    /// Offset of the batch's last record.
    pub last_offset: i64,
    /// Last offset minus first offset (also last sequence minus first sequence).
    pub offset_delta: i32,
    /// The batch's max timestamp.
    pub timestamp: i64,
}

impl BatchMetadata {
    /// Sequence of the batch's first record (wrapping at `i32::MAX`).
    pub fn first_seq(&self) -> i32 {
        let first = i64::from(self.last_seq) - i64::from(self.offset_delta);
        if first < 0 {
            (first + i64::from(i32::MAX) + 1) as i32
        } else {
            first as i32
        }
    }

    /// Offset of the batch's first record.
    pub fn first_offset(&self) -> i64 {
        self.last_offset - i64::from(self.offset_delta)
    }
}

/// One producer id's state (Kafka's `ProducerStateEntry`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerStateEntry {
    /// The producer id.
    pub producer_id: i64,
    /// The producer's current epoch.
    pub producer_epoch: i16,
    /// Epoch of the coordinator that wrote this producer's last transaction marker, or -1.
    pub coordinator_epoch: i32,
    /// Offset of the first record of the producer's open transaction.
    pub current_txn_first_offset: Option<i64>,
    /// Timestamp of the producer's last batch or marker (what expiration is measured from).
    pub last_timestamp: i64,
    pub(crate) batches: VecDeque<BatchMetadata>,
}

impl ProducerStateEntry {
    /// A producer with no batches yet.
    pub(crate) fn empty(producer_id: i64) -> Self {
        ProducerStateEntry {
            producer_id,
            producer_epoch: NO_PRODUCER_EPOCH,
            coordinator_epoch: -1,
            current_txn_first_offset: None,
            last_timestamp: crate::record::NO_TIMESTAMP,
            batches: VecDeque::new(),
        }
    }

    /// The retained batches, oldest first (at most five).
    pub fn batches(&self) -> impl Iterator<Item = &BatchMetadata> {
        self.batches.iter()
    }

    /// The last retained batch.
    pub fn last_batch(&self) -> Option<&BatchMetadata> {
        self.batches.back()
    }

    /// Sequence of the last record appended, or -1.
    pub fn last_seq(&self) -> i32 {
        self.batches.back().map_or(NO_SEQUENCE, |b| b.last_seq)
    }

    /// Offset of the last data record appended, or -1.
    pub fn last_data_offset(&self) -> i64 {
        self.batches.back().map_or(-1, |b| b.last_offset)
    }

    /// A retained batch with exactly this epoch and sequence range (a retried batch).
    pub(crate) fn find_duplicate(
        &self,
        epoch: i16,
        first_seq: i32,
        last_seq: i32,
    ) -> Option<BatchMetadata> {
        if epoch != self.producer_epoch {
            return None;
        }
        self.batches
            .iter()
            .find(|b| b.first_seq() == first_seq && b.last_seq == last_seq)
            .copied()
    }

    /// Takes `epoch` as current; a new epoch forgets the old epoch's batches. Returns whether
    /// the epoch changed.
    pub(crate) fn maybe_update_epoch(&mut self, epoch: i16) -> bool {
        if self.producer_epoch != epoch {
            self.batches.clear();
            self.producer_epoch = epoch;
            true
        } else {
            false
        }
    }

    /// Remembers a batch, forgetting the oldest beyond five.
    pub(crate) fn add_batch(&mut self, epoch: i16, batch: BatchMetadata) {
        self.maybe_update_epoch(epoch);
        if self.batches.len() == NUM_BATCHES_TO_RETAIN {
            self.batches.pop_front();
        }
        self.batches.push_back(batch);
        self.last_timestamp = batch.timestamp;
    }
}
