//! What the coordinator writes to and reads from `__consumer_offsets`: typed records, the
//! appends it asks for, and the entries a partition load replays.

use crate::group::OffsetsRecord;

/// Identifies one append the coordinator asked for; hand it back to
/// [`append_completed`](super::GroupCoordinator::append_completed).
pub type AppendId = u64;

/// The producer a transactional append is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnProducer {
    /// The producer id.
    pub producer_id: i64,
    /// The producer epoch.
    pub producer_epoch: i16,
}

/// Records the coordinator needs appended to partition `partition` of `__consumer_offsets`,
/// as one batch. Append them in the order the coordinator emits them (per partition), then
/// report the outcome with [`append_completed`](super::GroupCoordinator::append_completed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Append {
    /// Hand back with the outcome.
    pub id: AppendId,
    /// The offsets partition.
    pub partition: i32,
    /// `Some` for a TxnOffsetCommit: write a transactional batch of this producer.
    pub producer: Option<TxnProducer>,
    /// The records.
    pub records: Vec<OffsetsRecord>,
}

/// One entry of an offsets partition, in log order, for
/// [`load_partition`](super::GroupCoordinator::load_partition).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadEntry {
    /// A data record; `producer_id` is `Some` when it sits in a transactional batch.
    Record {
        /// The record.
        record: OffsetsRecord,
        /// The producer of a transactional batch.
        producer_id: Option<i64>,
    },
    /// A transaction marker (control batch) of `producer_id`.
    Marker {
        /// The producer.
        producer_id: i64,
        /// COMMIT (true) or ABORT (false).
        commit: bool,
    },
}
