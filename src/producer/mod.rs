//! Producer state: idempotence (producer id, epoch, sequence), transactions, the last stable
//! offset, and the snapshot files that save it, after Kafka's `ProducerStateManager`.
//!
//! ```text
//! <dir>/00000000000000001234.snapshot   producer state below offset 1234 (CRC-32C checked)
//!      /00000000000000001200.txnindex   aborted transactions whose marker is in that segment
//! ```
//!
//! Every batch with a producer id passes Kafka's `ProducerAppendInfo` checks before it is
//! written (a client append) or is only recorded (a replicated append, a replay at open).
//! The state is rebuilt at open from the newest readable snapshot plus a replay of the log
//! after it; a missing or corrupt snapshot only makes the replay longer.

mod aborted;
mod append;
mod entry;
mod manager;
mod snapshot;
mod state;

pub(crate) use aborted::AbortedFilter;
pub(crate) use append::{MarkerAppend, ProducerAppend};
pub use entry::{BatchMetadata, ProducerStateEntry};
pub(crate) use manager::{ProducerStateManager, ScannedRange, SegmentRange};
pub(crate) use snapshot::parse_at as parse_snapshot_at;
pub use snapshot::parse_snapshot_file;

/// How many batches per producer are kept for duplicate detection (Kafka's
/// `ProducerStateEntry.NUM_BATCHES_TO_RETAIN`).
pub const NUM_BATCHES_TO_RETAIN: usize = 5;

pub use crate::config::DEFAULT_PRODUCER_ID_EXPIRATION_MS;

/// Which records a read may return (Kafka's `IsolationLevel`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum IsolationLevel {
    /// Everything below the high watermark, aborted transactions included.
    #[default]
    ReadUncommitted,
    /// Only below the last stable offset; aborted transactions are listed so the reader
    /// can drop their records.
    ReadCommitted,
}

/// An aborted transaction as a fetch response lists it (Kafka's `AbortedTransaction`): the
/// reader drops this producer's transactional records from `first_offset` up to the
/// producer's ABORT marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AbortedTransaction {
    /// The producer whose transaction was aborted.
    pub producer_id: i64,
    /// Offset of the transaction's first record.
    pub first_offset: i64,
}

/// An aborted transaction as the `.txnindex` stores it (Kafka's `AbortedTxn`). Defined with
/// the file format in the segment layer, which must not know producer state.
pub use crate::segment::txnindex::AbortedTxn;

impl AbortedTxn {
    /// The fetch-response form.
    pub fn as_aborted_transaction(&self) -> AbortedTransaction {
        AbortedTransaction {
            producer_id: self.producer_id,
            first_offset: self.first_offset,
        }
    }
}

/// Whether a transaction marker commits or aborts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxnResult {
    /// The transaction's records become visible to read_committed readers.
    Commit,
    /// The transaction's records are hidden from read_committed readers.
    Abort,
}

/// Parses the bytes of a `.txnindex` file read from `path`: its aborted transactions, or
/// [`Error::CorruptTxnIndex`](crate::Error::CorruptTxnIndex).
pub fn parse_txn_index_file(
    path: &std::path::Path,
    bytes: &[u8],
) -> crate::Result<Vec<AbortedTxn>> {
    let base = crate::segment::parse_segment_file_name(path, "txnindex").unwrap_or(0);
    crate::segment::txnindex::decode(path, bytes, base, i64::MAX)
}

/// Sequence `next` follows `last` (wrapping at `i32::MAX`, Kafka's `inSequence`).
pub(crate) fn in_sequence(last: i32, next: i32) -> bool {
    i64::from(next) == i64::from(last) + 1 || (next == 0 && last == i32::MAX)
}
