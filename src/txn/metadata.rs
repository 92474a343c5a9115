//! One transactional id's state (Kafka's `TransactionState` and `TransactionMetadata`), and
//! its conversion to and from the `__transaction_state` record.

use std::collections::BTreeSet;

use super::log_record::{TopicPartition, TransactionLogValue, TxnTopicPartitions};
use crate::error::{Error, Result};

/// Kafka's `RecordBatch.NO_PRODUCER_ID`.
pub const NO_PRODUCER_ID: i64 = -1;
/// Kafka's `RecordBatch.NO_PRODUCER_EPOCH`.
pub const NO_PRODUCER_EPOCH: i16 = -1;

/// Where a transactional id's transaction stands (Kafka's `TransactionState`; the ids are the
/// `TransactionStatus` byte of the `__transaction_state` record).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransactionState {
    /// No transaction open (after InitProducerId).
    Empty,
    /// Partitions were added; the transaction is open.
    Ongoing,
    /// EndTxn(commit) is recorded; COMMIT markers are being written.
    PrepareCommit,
    /// EndTxn(abort), a fence or a timeout is recorded; ABORT markers are being written.
    PrepareAbort,
    /// Every COMMIT marker is written.
    CompleteCommit,
    /// Every ABORT marker is written.
    CompleteAbort,
    /// The transactional id expired and is being removed.
    Dead,
    /// The producer epoch is being bumped to fence a producer mid-transaction (in memory only:
    /// the record written is PrepareAbort).
    PrepareEpochFence,
}

impl TransactionState {
    /// The id stored in `TransactionLogValue.TransactionStatus`.
    pub fn id(self) -> i8 {
        match self {
            TransactionState::Empty => 0,
            TransactionState::Ongoing => 1,
            TransactionState::PrepareCommit => 2,
            TransactionState::PrepareAbort => 3,
            TransactionState::CompleteCommit => 4,
            TransactionState::CompleteAbort => 5,
            TransactionState::Dead => 6,
            TransactionState::PrepareEpochFence => 7,
        }
    }

    /// The state for a stored id; `None` for an unknown one.
    pub fn from_id(id: i8) -> Option<TransactionState> {
        Some(match id {
            0 => TransactionState::Empty,
            1 => TransactionState::Ongoing,
            2 => TransactionState::PrepareCommit,
            3 => TransactionState::PrepareAbort,
            4 => TransactionState::CompleteCommit,
            5 => TransactionState::CompleteAbort,
            6 => TransactionState::Dead,
            7 => TransactionState::PrepareEpochFence,
            _ => return None,
        })
    }

    /// Kafka's name, as DescribeTransactions reports it.
    pub fn name(self) -> &'static str {
        match self {
            TransactionState::Empty => "Empty",
            TransactionState::Ongoing => "Ongoing",
            TransactionState::PrepareCommit => "PrepareCommit",
            TransactionState::PrepareAbort => "PrepareAbort",
            TransactionState::CompleteCommit => "CompleteCommit",
            TransactionState::CompleteAbort => "CompleteAbort",
            TransactionState::Dead => "Dead",
            TransactionState::PrepareEpochFence => "PrepareEpochFence",
        }
    }

    /// Whether a transactional id in this state may expire.
    pub(crate) fn expiration_allowed(self) -> bool {
        matches!(
            self,
            TransactionState::Empty
                | TransactionState::CompleteCommit
                | TransactionState::CompleteAbort
        )
    }
}

/// Kafka's `TransactionMetadata.isEpochExhausted`: the coordinator keeps `i16::MAX` back so
/// it can always fence the current producer.
pub(crate) fn epoch_exhausted(epoch: i16) -> bool {
    epoch >= i16::MAX - 1
}

/// The durable part of a transactional id's state: what a `__transaction_state` record holds
/// (and what a pending transition will make it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TxnRecord {
    pub producer_id: i64,
    pub previous_producer_id: i64,
    pub next_producer_id: i64,
    pub producer_epoch: i16,
    pub last_producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TransactionState,
    pub partitions: BTreeSet<TopicPartition>,
    pub start_timestamp: i64,
    pub last_update_timestamp: i64,
    pub client_transaction_version: i16,
}

impl TxnRecord {
    /// The record value for this state.
    pub fn to_value(&self) -> TransactionLogValue {
        let partitions = if self.state == TransactionState::Empty {
            None
        } else {
            let mut topics: Vec<TxnTopicPartitions> = Vec::new();
            for tp in &self.partitions {
                match topics.last_mut() {
                    Some(t) if t.topic == tp.topic => t.partition_ids.push(tp.partition),
                    _ => topics.push(TxnTopicPartitions {
                        topic: tp.topic.clone(),
                        partition_ids: vec![tp.partition],
                    }),
                }
            }
            Some(topics)
        };
        TransactionLogValue {
            producer_id: self.producer_id,
            previous_producer_id: self.previous_producer_id,
            next_producer_id: self.next_producer_id,
            producer_epoch: self.producer_epoch,
            transaction_timeout_ms: self.timeout_ms,
            transaction_status: self.state.id(),
            transaction_partitions: partitions,
            transaction_last_update_timestamp_ms: self.last_update_timestamp,
            transaction_start_timestamp_ms: self.start_timestamp,
            client_transaction_version: self.client_transaction_version,
            unknown_tagged_fields: Vec::new(),
        }
    }

    /// The state a loaded record value describes.
    pub fn from_value(v: &TransactionLogValue) -> Result<TxnRecord> {
        let state = TransactionState::from_id(v.transaction_status).ok_or_else(|| {
            Error::CorruptTxnLogRecord {
                reason: format!("unknown transaction status {}", v.transaction_status),
            }
        })?;
        let mut partitions = BTreeSet::new();
        if state != TransactionState::Empty {
            for t in v.transaction_partitions.iter().flatten() {
                for &p in &t.partition_ids {
                    partitions.insert(TopicPartition::new(t.topic.clone(), p));
                }
            }
        }
        Ok(TxnRecord {
            producer_id: v.producer_id,
            previous_producer_id: v.previous_producer_id,
            next_producer_id: v.next_producer_id,
            producer_epoch: v.producer_epoch,
            last_producer_epoch: NO_PRODUCER_EPOCH,
            timeout_ms: v.transaction_timeout_ms,
            state,
            partitions,
            start_timestamp: v.transaction_start_timestamp_ms,
            last_update_timestamp: v.transaction_last_update_timestamp_ms,
            client_transaction_version: v.client_transaction_version,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_ids_round_trip() {
        for id in -3..12i8 {
            if let Some(s) = TransactionState::from_id(id) {
                assert_eq!(s.id(), id);
            } else {
                assert!(!(0..=7).contains(&id));
            }
        }
    }

    #[test]
    fn record_value_round_trip_groups_topics() {
        let r = TxnRecord {
            producer_id: 5,
            previous_producer_id: -1,
            next_producer_id: -1,
            producer_epoch: 3,
            last_producer_epoch: -1,
            timeout_ms: 1000,
            state: TransactionState::Ongoing,
            partitions: [("a", 1), ("a", 0), ("b", 2)]
                .iter()
                .map(|(t, p)| TopicPartition::new(*t, *p))
                .collect(),
            start_timestamp: 1,
            last_update_timestamp: 2,
            client_transaction_version: 0,
        };
        let v = r.to_value();
        assert_eq!(v.transaction_partitions.as_ref().unwrap().len(), 2);
        assert_eq!(TxnRecord::from_value(&v).unwrap(), r);
    }
}
