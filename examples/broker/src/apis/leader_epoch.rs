//! OffsetForLeaderEpoch: the end offset of a leader epoch (the first offset of the next
//! higher epoch, or the log end offset for the current one), as Kafka's leader-epoch cache
//! answers it. Consumers ask after a leader change to detect a log truncated under them.
//!
//! The answer comes from the stored batches' partition leader epochs. Epochs never go down
//! along a log, so the first batch of a higher epoch is found by a binary search over
//! offsets, reading one batch header per step, instead of a scan.

use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};
use kafka_protocol::ResponseError;
use streamlog::Log;

use crate::broker::Broker;
use crate::errors;

/// Kafka's "no epoch" and "no offset" answers.
const UNDEFINED_EPOCH: i32 = -1;
const UNDEFINED_EPOCH_OFFSET: i64 = -1;

/// OffsetForLeaderEpoch for every partition asked about.
pub fn offset_for_leader_epoch(
    broker: &Broker,
    req: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let out = EpochEndOffset::default()
                        .with_partition(p.partition)
                        .with_leader_epoch(UNDEFINED_EPOCH)
                        .with_end_offset(UNDEFINED_EPOCH_OFFSET);
                    let answer = broker.log(t.topic.as_str(), p.partition).and_then(|log| {
                        let current = log.leader_epoch();
                        if p.current_leader_epoch >= 0 && p.current_leader_epoch != current {
                            return Ok(Err(if p.current_leader_epoch < current {
                                ResponseError::FencedLeaderEpoch
                            } else {
                                ResponseError::UnknownLeaderEpoch
                            }));
                        }
                        end_offset_for(&log, p.leader_epoch).map(Ok)
                    });
                    match answer {
                        Ok(Ok((epoch, offset))) => {
                            out.with_leader_epoch(epoch).with_end_offset(offset)
                        }
                        Ok(Err(code)) => out.with_error_code(code.code()),
                        Err(e) => out.with_error_code(errors::code(&e)),
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic.clone())
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}

/// `(epoch, end offset)` for `requested`, by Kafka's rules: the current epoch ends at the
/// log end offset; an older one at the first offset of the next higher epoch, reported
/// with the largest epoch at or below the one asked (or the one asked, when the log holds
/// none that low); an epoch above the current one, or none, is undefined.
pub fn end_offset_for(log: &Log, requested: i32) -> streamlog::Result<(i32, i64)> {
    let start = log.log_start_offset();
    let end = log.log_end_offset();
    let last = if end > start {
        epoch_at(log, end - 1)?
    } else {
        None
    };
    // The leader's epoch counts from when it became leader, before any batch of it.
    let latest = last.map_or(log.leader_epoch(), |(_, e)| e.max(log.leader_epoch()));
    if requested == UNDEFINED_EPOCH || requested > latest {
        return Ok((UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET));
    }
    if requested == latest {
        return Ok((latest, end));
    }
    // The first offset whose batch has an epoch above `requested`.
    let (mut lo, mut hi) = (start, end);
    let mut higher_start = end;
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        match epoch_at(log, mid)? {
            Some((base, epoch)) if epoch > requested => {
                higher_start = base.max(start);
                hi = mid;
            }
            Some(_) => lo = mid + 1,
            // Nothing at or after `mid`: the end (only a concurrent truncation gets here).
            None => hi = mid,
        }
    }
    let floor = if lo > start {
        epoch_at(log, lo - 1)?.map(|(_, e)| e)
    } else {
        None
    };
    Ok((floor.unwrap_or(requested), higher_start))
}

/// The base offset and partition leader epoch of the batch holding `offset` (or the next
/// one, in a compacted log), from its first 16 bytes:
///
/// ```text
/// baseOffset: int64 | batchLength: int32 | partitionLeaderEpoch: int32 | ...
/// ```
fn epoch_at(log: &Log, offset: i64) -> streamlog::Result<Option<(i64, i32)>> {
    let data = log.read(offset, 1, None)?;
    let Some(slice) = data.slice.filter(|s| s.len() >= 16) else {
        return Ok(None);
    };
    let mut head = [0u8; 16];
    slice.read_into(&mut head)?;
    let [b0, b1, b2, b3, b4, b5, b6, b7, _, _, _, _, e0, e1, e2, e3] = head;
    Ok(Some((
        i64::from_be_bytes([b0, b1, b2, b3, b4, b5, b6, b7]),
        i32::from_be_bytes([e0, e1, e2, e3]),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use streamlog::{Compression, LogConfig, OwnedRecord};

    fn append(log: &Log, n: usize) {
        let records: Vec<_> = (0..n)
            .map(|_| OwnedRecord::new(0, None, Some(b"v")))
            .collect();
        log.append_records(&records, Compression::None).unwrap();
    }

    /// Epochs 0 (offsets 0..5), 2 (5..8), 3 (8..10), with tiny segments so the search
    /// crosses segment files; every question answered as Kafka's cache would.
    #[test]
    fn epoch_end_offsets_from_batch_epochs() {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig::builder().segment_bytes(200).build().unwrap();
        let log = Log::open(dir.path(), config).unwrap();
        assert_eq!(end_offset_for(&log, 0).unwrap(), (0, 0));
        assert_eq!(end_offset_for(&log, 1).unwrap(), (-1, -1));
        for _ in 0..5 {
            append(&log, 1);
        }
        log.set_leader_epoch(2).unwrap();
        append(&log, 2);
        append(&log, 1);
        log.set_leader_epoch(3).unwrap();
        append(&log, 2);
        assert!(log.segment_count() > 2, "{}", log.segment_count());
        assert_eq!(end_offset_for(&log, 3).unwrap(), (3, 10));
        assert_eq!(end_offset_for(&log, 2).unwrap(), (2, 8));
        // Epoch 1 never led: the largest epoch below it and where the next one starts.
        assert_eq!(end_offset_for(&log, 1).unwrap(), (0, 5));
        assert_eq!(end_offset_for(&log, 0).unwrap(), (0, 5));
        assert_eq!(end_offset_for(&log, 4).unwrap(), (-1, -1));
        assert_eq!(end_offset_for(&log, -1).unwrap(), (-1, -1));
        // With the start moved past epoch 0's batches, epoch 0 is below the log: it ends
        // where epoch 2 starts, and is reported as asked.
        log.delete_records_before(6).unwrap();
        assert_eq!(end_offset_for(&log, 0).unwrap(), (0, 6));
        // A new leader epoch with no batch yet ends at the log end.
        log.set_leader_epoch(5).unwrap();
        assert_eq!(end_offset_for(&log, 5).unwrap(), (5, 10));
        assert_eq!(end_offset_for(&log, 3).unwrap(), (3, 10));
    }
}
