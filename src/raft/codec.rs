//! One Raft entry ↔ one record batch holding one record.
//!
//! ```text
//! batch base offset              the entry's index (offset = index: the one fixed rule)
//! batch partition leader epoch   the entry's term (Kafka's leader epoch is Raft's term)
//! record header "raft.leader"    the node id of the term's leader, JSON
//! record value                   openraft's EntryPayload, JSON (blank, normal, membership)
//! record key                     null
//! record timestamp               the log's clock when appended (CreateTime)
//! ```
//!
//! The full log id (term, leader node, index) is read back from the batch and its record,
//! with no side table. One entry per batch, not many: the log truncates at batch
//! boundaries, and Raft truncates at any index.

use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, RaftTypeConfig};

use super::RaftStoreError;
use crate::record::{Batch, BatchBuilder, BatchOptions, Header};

/// The record header naming the leader whose term wrote the entry.
pub const LEADER_HEADER: &str = "raft.leader";

/// The log offset of a Raft index.
pub(crate) fn offset_of(index: u64) -> Result<i64, RaftStoreError> {
    i64::try_from(index).map_err(|_| RaftStoreError::IndexTooLarge { index })
}

/// The Raft index of a log offset (offsets are never negative).
pub(crate) fn index_of(offset: i64) -> u64 {
    u64::try_from(offset).unwrap_or(0)
}

/// Appends the batch for `entry` to `out`.
pub(crate) fn encode_entry<C>(
    entry: &Entry<C>,
    timestamp: i64,
    out: &mut Vec<u8>,
) -> Result<(), RaftStoreError>
where
    C: RaftTypeConfig,
{
    let index = entry.log_id.index;
    let term = entry.log_id.leader_id.term;
    let epoch = i32::try_from(term).map_err(|_| RaftStoreError::TermTooLarge { index, term })?;
    let leader = serde_json::to_vec(&entry.log_id.leader_id.node_id).map_err(|source| {
        RaftStoreError::Encode {
            what: "node id",
            source,
        }
    })?;
    let payload = serde_json::to_vec(&entry.payload).map_err(|source| RaftStoreError::Encode {
        what: "entry payload",
        source,
    })?;
    let mut builder = BatchBuilder::new(BatchOptions {
        base_offset: offset_of(index)?,
        partition_leader_epoch: epoch,
        ..BatchOptions::default()
    });
    builder.append(
        timestamp,
        None,
        Some(&payload),
        &[Header::new(LEADER_HEADER, Some(&leader))],
    )?;
    out.extend_from_slice(&builder.build()?);
    Ok(())
}

/// The entry a stored batch holds; the batch's CRC is checked first.
pub(crate) fn decode_entry<C>(batch: &Batch<'_>) -> Result<Entry<C>, RaftStoreError>
where
    C: RaftTypeConfig,
{
    let offset = batch.base_offset();
    let corrupt = |reason: String| RaftStoreError::CorruptEntry { offset, reason };
    batch.validate()?;
    let term = u64::try_from(batch.partition_leader_epoch())
        .map_err(|_| corrupt(format!("epoch {}", batch.partition_leader_epoch())))?;
    if batch.record_count() != 1 {
        return Err(corrupt(format!("{} records", batch.record_count())));
    }
    let records = batch.records()?;
    let record = records
        .iter()
        .next()
        .ok_or_else(|| corrupt("no record".into()))??;
    if record.offset != offset {
        return Err(corrupt(format!("record offset {}", record.offset)));
    }
    let leader = record
        .headers()
        .find(|h| h.key == LEADER_HEADER.as_bytes())
        .and_then(|h| h.value)
        .ok_or_else(|| corrupt(format!("no {LEADER_HEADER} header")))?;
    let node_id: C::NodeId =
        serde_json::from_slice(leader).map_err(|e| corrupt(format!("leader node id: {e}")))?;
    let value = record.value.ok_or_else(|| corrupt("null value".into()))?;
    let payload: EntryPayload<C> =
        serde_json::from_slice(value).map_err(|e| corrupt(format!("payload: {e}")))?;
    Ok(Entry {
        log_id: LogId::new(CommittedLeaderId::new(term, node_id), index_of(offset)),
        payload,
    })
}
