//! The checks a batch with a producer id passes before it is written (Kafka's
//! `ProducerAppendInfo`): duplicates, epoch fencing, sequence order, transaction state.

use super::entry::{BatchMetadata, ProducerStateEntry};
use super::{in_sequence, TxnResult};
use crate::error::{Error, Result};
use crate::record::{Batch, NO_PRODUCER_EPOCH, NO_SEQUENCE};

/// A transaction closed by a marker (Kafka's `CompletedTxn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CompletedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    pub last_offset: i64,
    pub aborted: bool,
}

/// The producer fields of one data batch, with the offsets it is (or would be) stored at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProducerAppend {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    pub max_timestamp: i64,
    pub transactional: bool,
}

impl ProducerAppend {
    /// The producer fields of `batch`, stored at `first_offset..` with `max_timestamp`.
    pub(crate) fn of(batch: &Batch<'_>, first_offset: i64, max_timestamp: i64) -> Self {
        ProducerAppend {
            producer_id: batch.producer_id(),
            producer_epoch: batch.producer_epoch(),
            first_seq: batch.base_sequence(),
            last_seq: batch.last_sequence(),
            first_offset,
            // Saturating: a batch replayed from disk is not validated again, and its delta
            // may reach past `i64::MAX` from where it is stored.
            last_offset: first_offset.saturating_add(i64::from(batch.last_offset_delta())),
            max_timestamp,
            transactional: batch.is_transactional(),
        }
    }

    fn metadata(&self) -> BatchMetadata {
        BatchMetadata {
            last_seq: self.last_seq,
            last_offset: self.last_offset,
            offset_delta: i32::try_from(self.last_offset - self.first_offset).unwrap_or(0),
            timestamp: self.max_timestamp,
        }
    }
}

/// What the checks decided for a data batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AppendCheck {
    /// A retry of a retained batch: nothing is written, the original offsets are returned.
    Duplicate(BatchMetadata),
    /// Write the batch, then record it with [`apply`] (nothing is copied until then).
    Append,
}

/// Checks a client's data batch against the producer's entry (`None`: unknown producer).
pub(crate) fn check_client(
    entry: Option<&ProducerStateEntry>,
    b: &ProducerAppend,
) -> Result<AppendCheck> {
    let Some(e) = entry else {
        if b.first_seq == NO_SEQUENCE {
            return Err(Error::OutOfOrderSequence {
                producer_id: b.producer_id,
                producer_epoch: b.producer_epoch,
                first_sequence: b.first_seq,
                last_sequence: NO_SEQUENCE,
                offset: b.first_offset,
            });
        }
        return Ok(AppendCheck::Append);
    };
    if let Some(dup) = e.find_duplicate(b.producer_epoch, b.first_seq, b.last_seq) {
        return Ok(AppendCheck::Duplicate(dup));
    }
    check_epoch(e, b.producer_id, b.producer_epoch)?;
    check_sequence(e, b)?;
    if e.current_txn_first_offset.is_some() && !b.transactional {
        return Err(Error::InvalidTxnState {
            producer_id: b.producer_id,
            reason: "non-transactional batch while the producer's transaction is open",
        });
    }
    Ok(AppendCheck::Append)
}

/// Records a data batch in the producer's entry (checked already, or replicated, which
/// Kafka does not check); returns whether it opened a transaction.
pub(crate) fn apply(entry: &mut ProducerStateEntry, b: &ProducerAppend) -> bool {
    let started = entry.current_txn_first_offset.is_none() && b.transactional;
    if started {
        entry.current_txn_first_offset = Some(b.first_offset);
    }
    entry.add_batch(b.producer_epoch, b.metadata());
    started
}

/// An older epoch than the producer's current one is fenced.
fn check_epoch(e: &ProducerStateEntry, producer_id: i64, epoch: i16) -> Result<()> {
    if epoch < e.producer_epoch {
        return Err(Error::InvalidProducerEpoch {
            producer_id,
            producer_epoch: epoch,
            current_epoch: e.producer_epoch,
        });
    }
    Ok(())
}

/// Kafka's `checkSequence`: a new epoch starts at 0 (unless the producer had no epoch);
/// within an epoch the batch continues the last sequence, or the producer's earlier batches
/// are gone (no epoch known) and any sequence is taken.
fn check_sequence(e: &ProducerStateEntry, b: &ProducerAppend) -> Result<()> {
    let ok = if b.producer_epoch != e.producer_epoch {
        b.first_seq == 0 || e.producer_epoch == NO_PRODUCER_EPOCH
    } else {
        e.producer_epoch == NO_PRODUCER_EPOCH || in_sequence(e.last_seq(), b.first_seq)
    };
    if ok {
        Ok(())
    } else {
        Err(Error::OutOfOrderSequence {
            producer_id: b.producer_id,
            producer_epoch: b.producer_epoch,
            first_sequence: b.first_seq,
            last_sequence: if b.producer_epoch == e.producer_epoch {
                e.last_seq()
            } else {
                NO_SEQUENCE
            },
            offset: b.first_offset,
        })
    }
}

/// A transaction marker about to be written (or replayed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MarkerAppend {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub result: TxnResult,
    pub coordinator_epoch: i32,
    pub offset: i64,
    pub timestamp: i64,
}

/// Kafka's `appendEndTxnMarker`: fences older producer and coordinator epochs (unless
/// `checked` is false, for replication and replay), closes the producer's transaction if
/// one is open (a marker without one completes nothing, as in Kafka).
pub(crate) fn check_marker(
    entry: Option<&ProducerStateEntry>,
    m: &MarkerAppend,
    checked: bool,
) -> Result<(ProducerStateEntry, Option<CompletedTxn>)> {
    let mut updated = entry
        .cloned()
        .unwrap_or_else(|| ProducerStateEntry::empty(m.producer_id));
    if checked {
        if entry.is_some() {
            check_epoch(&updated, m.producer_id, m.producer_epoch)?;
        }
        if updated.coordinator_epoch > m.coordinator_epoch {
            return Err(Error::TransactionCoordinatorFenced {
                producer_id: m.producer_id,
                coordinator_epoch: m.coordinator_epoch,
                current_coordinator_epoch: updated.coordinator_epoch,
            });
        }
    }
    let completed = updated
        .current_txn_first_offset
        .map(|first_offset| CompletedTxn {
            producer_id: m.producer_id,
            first_offset,
            last_offset: m.offset,
            aborted: m.result == TxnResult::Abort,
        });
    updated.maybe_update_epoch(m.producer_epoch);
    updated.coordinator_epoch = m.coordinator_epoch;
    updated.current_txn_first_offset = None;
    updated.last_timestamp = m.timestamp;
    Ok((updated, completed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(epoch: i16, first_seq: i32, n: i32, offset: i64) -> ProducerAppend {
        let last = (i64::from(first_seq) + i64::from(n) - 1) % (i64::from(i32::MAX) + 1);
        ProducerAppend {
            producer_id: 7,
            producer_epoch: epoch,
            first_seq,
            last_seq: last as i32,
            first_offset: offset,
            last_offset: offset + i64::from(n) - 1,
            max_timestamp: 0,
            transactional: false,
        }
    }

    fn appended(entry: Option<&ProducerStateEntry>, b: &ProducerAppend) -> ProducerStateEntry {
        assert_eq!(check_client(entry, b).unwrap(), AppendCheck::Append);
        let mut e = entry
            .cloned()
            .unwrap_or_else(|| ProducerStateEntry::empty(b.producer_id));
        apply(&mut e, b);
        e
    }

    #[test]
    fn sequence_rules() {
        let e = appended(None, &batch(0, 0, 3, 0));
        assert!(matches!(
            check_client(Some(&e), &batch(0, 0, 3, 10)).unwrap(),
            AppendCheck::Duplicate(m) if m.last_offset == 2
        ));
        let e = appended(Some(&e), &batch(0, 3, 2, 3));
        assert!(matches!(
            check_client(Some(&e), &batch(0, 6, 1, 5)),
            Err(Error::OutOfOrderSequence {
                last_sequence: 4,
                ..
            })
        ));
        assert!(matches!(
            check_client(Some(&e), &batch(1, 5, 1, 5)),
            Err(Error::OutOfOrderSequence { .. })
        ));
        let e2 = appended(Some(&e), &batch(1, 0, 1, 5));
        assert!(matches!(
            check_client(Some(&e2), &batch(0, 5, 1, 6)),
            Err(Error::InvalidProducerEpoch {
                current_epoch: 1,
                ..
            })
        ));
    }

    #[test]
    fn sequence_wraps_at_i32_max() {
        let e = appended(None, &batch(0, i32::MAX - 1, 2, 0));
        assert_eq!(e.last_seq(), i32::MAX);
        let e = appended(Some(&e), &batch(0, 0, 1, 2));
        assert_eq!(e.last_seq(), 0);
        let wrapped = appended(None, &batch(0, i32::MAX, 3, 0));
        assert_eq!(wrapped.last_seq(), 1);
        assert_eq!(wrapped.last_batch().unwrap().first_seq(), i32::MAX);
    }
}
