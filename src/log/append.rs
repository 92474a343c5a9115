//! Appending batches: producer appends (offsets assigned) and replica appends (offsets kept).

use super::Log;
use crate::error::{Error, Result};
use crate::record::header::{
    put, ATTRIBUTES as ATTRIBUTES_AT, BASE_OFFSET as BASE_OFFSET_AT, CRC as CRC_AT,
    MAX_TIMESTAMP as MAX_TIMESTAMP_AT, PARTITION_LEADER_EPOCH as LEADER_EPOCH_AT,
};
use crate::record::{
    walk_producer_records, Batch, BatchBuilder, BatchOptions, Batches, Compression, OwnedRecord,
    TimestampType, BATCH_HEADER_SIZE,
};
use crate::segment::BatchPos;

/// What an append stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct AppendInfo {
    /// Offset of the first record.
    pub first_offset: i64,
    /// Offset of the last record.
    pub last_offset: i64,
    /// The batch's max timestamp as stored.
    pub max_timestamp: i64,
    /// The time stamped on the batch under LogAppendTime, else `None`.
    pub log_append_time: Option<i64>,
    /// Records appended.
    pub record_count: u32,
    /// Bytes appended.
    pub size_in_bytes: u64,
    /// The batch was a retry of one of its producer's last five batches: nothing was
    /// written and the offsets are the original's.
    pub duplicate: bool,
}

impl Log {
    /// Appends one producer batch: validates it (frame, CRC, every record), assigns offsets
    /// from the log end offset, stamps the leader epoch and, under LogAppendTime, the append
    /// time. The caller's bytes are written as they are apart from those header fields.
    ///
    /// Under a `compression.type` codec other than the batch's, the batch is re-encoded in
    /// that codec first (before the writer lock is taken) and the re-encoded bytes are what
    /// is stored and counted in [`AppendInfo::size_in_bytes`].
    pub fn append(&self, batch: &[u8]) -> Result<AppendInfo> {
        // One clock reading checks the timestamps and stamps LogAppendTime, as Kafka's
        // `LogValidator` takes one `now` for both; it is read again only after a roll.
        let mut now = self.config().clock.now_ms();
        let b = self.check_producer_batch(batch, now)?;
        let recompressed = self.recompress(&b)?;
        let (batch, b) = match &recompressed {
            Some(bytes) => (bytes.as_slice(), Batch::new(bytes)?),
            None => (batch, b),
        };
        loop {
            let mut w = self.lock_open()?;
            let base = w.log_end_offset;
            let Some(last) = base.checked_add(i64::from(b.last_offset_delta())) else {
                return Err(Error::InvalidBatchHeader {
                    base_offset: base,
                    reason: "last offset overflows from the log end offset",
                });
            };
            let log_append = self.config().message_timestamp_type == TimestampType::LogAppendTime;
            let max_timestamp = self.append_timestamp(&b, now);
            // Idempotent and transactional batches pass the producer checks first; others
            // pay one comparison.
            let producer_check = if b.producer_id() >= 0 {
                match self.check_producer_append(&b, base, max_timestamp)? {
                    Ok(check) => Some(check),
                    Err(duplicate) => return Ok(duplicate),
                }
            } else {
                None
            };
            let size = b.size_in_bytes() as u64;
            if self.maybe_roll(&mut w, size, max_timestamp, base, last, now)? {
                // The roll's fsyncs run with the writer lock released; then the batch is
                // checked and placed again at the log end as it is then.
                drop(w);
                self.finish_roll()?;
                now = self.config().clock.now_ms();
                continue;
            }

            let mut header = [0u8; BATCH_HEADER_SIZE];
            header.copy_from_slice(
                batch
                    .get(..BATCH_HEADER_SIZE)
                    .unwrap_or(&[0; BATCH_HEADER_SIZE]),
            );
            put(&mut header, BASE_OFFSET_AT, &base.to_be_bytes());
            put(&mut header, LEADER_EPOCH_AT, &w.leader_epoch.to_be_bytes());
            let body = batch.get(BATCH_HEADER_SIZE..).unwrap_or_default();
            if log_append {
                let attrs = b
                    .attributes()
                    .with_timestamp_type(TimestampType::LogAppendTime);
                put(&mut header, ATTRIBUTES_AT, &attrs.0.to_be_bytes());
                put(&mut header, MAX_TIMESTAMP_AT, &now.to_be_bytes());
                let crc = crate::record::crc::crc32c_append(
                    crate::record::crc::crc32c(header.get(ATTRIBUTES_AT..).unwrap_or_default()),
                    body,
                );
                put(&mut header, CRC_AT, &crc.to_be_bytes());
            }
            let pos = BatchPos {
                position: 0,
                size: batch.len() as u64,
                base_offset: base,
                last_offset: last,
                max_timestamp,
            };
            self.local
                .write_batch(&mut w, &[&header, body], &pos, &self.durability)?;
            if let Some(append) = &producer_check {
                self.commit_producer_append(append);
            }
            drop(w);
            let record_count = b.record_count().max(0) as u32;
            self.after_append(u64::from(record_count), last)?;
            return Ok(AppendInfo {
                first_offset: base,
                last_offset: last,
                max_timestamp,
                log_append_time: log_append.then_some(now),
                record_count,
                size_in_bytes: batch.len() as u64,
                duplicate: false,
            });
        }
    }

    /// Builds a batch from `records` (their timestamps, keys, values and headers; their
    /// offsets are ignored) and appends it as a producer batch.
    pub fn append_records(
        &self,
        records: &[OwnedRecord],
        compression: Compression,
    ) -> Result<AppendInfo> {
        let mut b = BatchBuilder::new(BatchOptions::compressed(compression));
        for r in records {
            let headers: Vec<crate::record::Header<'_>> = r
                .headers
                .iter()
                .map(|(k, v)| crate::record::Header {
                    key: k,
                    value: v.as_deref(),
                })
                .collect();
            b.append(r.timestamp, r.key.as_deref(), r.value.as_deref(), &headers)?;
        }
        self.append(&b.build()?)
    }

    /// Appends batches that already carry offsets, as a replication follower does: each
    /// must validate and start at or after the offset where the log ends (compacted logs
    /// leave gaps), so the log continues exactly what the leader holds. Their offsets and
    /// partition leader epochs are kept; a batch of a new epoch records it in the
    /// leader-epoch cache (under `HighWatermarkPolicy::Replicated`).
    pub fn append_replicated(&self, batches: &[u8]) -> Result<AppendInfo> {
        let mut checked = Vec::new();
        for b in Batches::with_limits(batches, self.config().decode_limits) {
            let b = b?;
            b.validate()?;
            checked.push(b);
        }
        let (Some(first), Some(last)) = (checked.first(), checked.last()) else {
            return Err(Error::NoBatches);
        };
        let mut w = self.lock_open()?;
        let mut expected = w.log_end_offset;
        for b in &checked {
            if b.base_offset() < expected {
                return Err(Error::UnexpectedAppendOffset {
                    base_offset: b.base_offset(),
                    last_offset: b.last_offset(),
                    log_end_offset: w.log_end_offset,
                });
            }
            expected = b.next_offset();
        }
        let now = self.config().clock.now_ms();
        let mut max_timestamp = crate::record::NO_TIMESTAMP;
        let mut records = 0u32;
        // Whether a batch began a leader epoch: the cache's file is written after the writer
        // lock is released (a leader change is rare; appends in a known epoch never wait).
        let mut new_epoch = false;
        for b in &checked {
            let pos = BatchPos::of(b, 0);
            if self.maybe_roll(
                &mut w,
                pos.size,
                pos.max_timestamp,
                b.base_offset(),
                b.last_offset(),
                now,
            )? {
                // The roll's fsyncs run with the writer lock released; the log must still
                // end where this batch may follow.
                drop(w);
                self.finish_roll()?;
                w = self.lock_open()?;
                if b.base_offset() < w.log_end_offset {
                    return Err(Error::UnexpectedAppendOffset {
                        base_offset: b.base_offset(),
                        last_offset: b.last_offset(),
                        log_end_offset: w.log_end_offset,
                    });
                }
                self.maybe_roll(
                    &mut w,
                    pos.size,
                    pos.max_timestamp,
                    b.base_offset(),
                    b.last_offset(),
                    now,
                )?;
            }
            self.local
                .write_batch(&mut w, &[b.as_bytes()], &pos, &self.durability)?;
            self.apply_replicated_producer_batch(&w, b)?;
            new_epoch |= self.assign_epoch(b.partition_leader_epoch(), b.base_offset());
            max_timestamp = max_timestamp.max(pos.max_timestamp);
            records += b.record_count().max(0) as u32;
        }
        drop(w);
        if new_epoch {
            self.write_leader_epochs()?;
        }
        self.forget_replicated_transactions();
        self.after_append(u64::from(records), last.last_offset())?;
        Ok(AppendInfo {
            first_offset: first.base_offset(),
            last_offset: last.last_offset(),
            max_timestamp,
            log_append_time: None,
            record_count: records,
            size_in_bytes: batches.len() as u64,
            duplicate: false,
        })
    }

    /// The batch re-encoded in the codec `compression.type` names, or `None` when it is
    /// stored as it came (Kafka's `LogValidator`: records, offset deltas, timestamps,
    /// headers and the producer fields are kept; only the codec changes).
    fn recompress(&self, b: &Batch<'_>) -> Result<Option<Vec<u8>>> {
        let source = b.compression()?;
        let target = self.config().compression_type.target(source);
        if target == source {
            return Ok(None);
        }
        let h = b.header();
        let mut builder = BatchBuilder::new(BatchOptions {
            compression: target,
            timestamp_type: b.timestamp_type(),
            log_append_time: h.max_timestamp,
            base_offset: h.base_offset,
            partition_leader_epoch: h.partition_leader_epoch,
            producer_id: h.producer_id,
            producer_epoch: h.producer_epoch,
            base_sequence: h.base_sequence,
            transactional: b.is_transactional(),
            delete_horizon: None,
        });
        let mut scratch = Vec::new();
        for r in &b.records_in(&mut scratch, &self.config().decode_limits)? {
            builder.append_record(&r?)?;
        }
        let bytes = builder.build()?;
        // Kafka checks the size again after a re-encoding changed it.
        let limit = u64::from(self.config().max_message_bytes).min(self.config().segment_bytes);
        if bytes.len() as u64 > limit {
            return Err(Error::MessageTooLarge {
                size: bytes.len() as u64,
                limit,
            });
        }
        Ok(Some(bytes))
    }

    /// The max timestamp a producer batch is stored with at clock time `now`.
    fn append_timestamp(&self, b: &Batch<'_>, now: i64) -> i64 {
        if self.config().message_timestamp_type == TimestampType::LogAppendTime {
            now
        } else {
            b.max_timestamp()
        }
    }

    /// Checks a producer batch completely before anything is written.
    /// `now` is the clock reading the timestamp bounds are taken from.
    fn check_producer_batch<'b>(&self, batch: &'b [u8], now: i64) -> Result<Batch<'b>> {
        // Kafka's rules: no batch above max.message.bytes, and none that could not fit a
        // segment on its own.
        let limit = u64::from(self.config().max_message_bytes).min(self.config().segment_bytes);
        if batch.len() as u64 > limit {
            return Err(Error::MessageTooLarge {
                size: batch.len() as u64,
                limit,
            });
        }
        // The same limits the cleaner reads stored batches with: what an append accepts, the
        // cleaner must be able to read back.
        let limits = self.stored_batch_limits();
        let (b, rest) = Batch::parse(batch, &limits)?;
        if !rest.is_empty() {
            return Err(Error::InvalidBatchHeader {
                base_offset: b.base_offset(),
                reason: "bytes follow the batch's declared length",
            });
        }
        b.validate()?;
        let base_offset = b.base_offset();
        let invalid = |reason| Error::InvalidBatchHeader {
            base_offset,
            reason,
        };
        if b.is_control() {
            return Err(invalid("producers cannot append control batches"));
        }
        if b.record_count() == 0 {
            return Err(invalid("producer batch without records"));
        }
        if b.last_offset_delta() != b.record_count() - 1 {
            return Err(invalid("producer batch offsets are not contiguous"));
        }
        // Every record must be well-formed: a corrupt record must never reach the log.
        let mut scratch = Vec::new();
        let records = b.records_in(&mut scratch, &self.config().decode_limits)?;
        // Kafka refuses records without a key on compacted topics: the cleaner could only
        // drop them.
        let compacted = self.config().cleanup_policy.compacts();
        // Kafka's INVALID_TIMESTAMP: no timestamp below -1, and under CreateTime none outside
        // message.timestamp.before.max.ms / after.max.ms of the clock (KIP-937).
        let (min, max) = self.config().accepted_timestamps(now);
        let log_append_time =
            (b.timestamp_type() == TimestampType::LogAppendTime).then(|| b.max_timestamp());
        let base_timestamp = b.base_timestamp();
        let check = |index: u32, timestamp: i64, key_is_null: bool| {
            if key_is_null && compacted {
                return Err(Error::RecordWithoutKey { base_offset, index });
            }
            if timestamp != crate::record::NO_TIMESTAMP && !(min..=max).contains(&timestamp) {
                return Err(Error::InvalidTimestamp {
                    base_offset,
                    index,
                    timestamp,
                    min,
                    max,
                });
            }
            Ok(())
        };
        // The fast walk over the records' framing (no record decoded into fields) accepts
        // only what the full iterator accepts, and sums up what the checks need: when the
        // whole batch is within bounds, so is every record. On anything else (a walk that
        // gives up, a batch out of bounds) the iterator below checks record by record and
        // names what is wrong. Offset deltas must run 0, 1, 2, ... (the last is count - 1).
        let count = u32::try_from(b.record_count()).unwrap_or(0);
        let within = |timestamp: Option<i64>| timestamp.is_some_and(|t| (min..=max).contains(&t));
        let fast = walk_producer_records(records.as_bytes(), count).is_some_and(|s| {
            let timestamps_ok = match log_append_time {
                Some(t) => within(Some(t)),
                None => {
                    within(base_timestamp.checked_add(s.min_timestamp_delta))
                        && within(base_timestamp.checked_add(s.max_timestamp_delta))
                }
            };
            timestamps_ok && !(compacted && s.any_null_key)
        });
        if !fast {
            for (index, r) in records.iter().enumerate() {
                let r = r?;
                check(
                    u32::try_from(index).unwrap_or(u32::MAX),
                    r.timestamp,
                    r.key.is_none(),
                )?;
            }
        }
        Ok(b)
    }
}
