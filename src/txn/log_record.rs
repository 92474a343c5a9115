//! The records of the `__transaction_state` topic, byte for byte as Kafka writes them
//! (`TransactionLogKey.json` and `TransactionLogValue.json`, through Kafka's
//! `MessageUtil.toVersionPrefixedBytes`).
//!
//! ```text
//! key   = version:int16 (0) · TransactionalId:string
//! value = version:int16 (0 or 1) · body, or null (a tombstone: the transactional id expired)
//!
//! value v0 (classic encoding)           value v1 (flexible: compact lengths + tagged fields)
//!   ProducerId            int64           int64
//!   ProducerEpoch         int16           int16
//!   TransactionTimeoutMs  int32           int32
//!   TransactionStatus     int8            int8
//!   TransactionPartitions int32 count,    uvarint count+1 (0 = null),
//!                         -1 = null         each: compact string topic,
//!                         each: string      compact [int32] partitions, tagged fields
//!                         topic, int32
//!                         count + int32s
//!   LastUpdateTimestampMs int64           int64
//!   StartTimestampMs      int64           int64
//!                                         tagged fields: 0 PreviousProducerId int64 (default -1),
//!                                         1 NextProducerId int64 (-1), 2 ClientTransactionVersion int16 (0)
//! ```
//! `string` is an int16 length then UTF-8; a compact string is an unsigned varint length+1.
//! Tagged fields are written only when they differ from their default, in tag order.

use crate::error::{Error, Result};

/// The topic the transaction coordinator keeps its state in.
pub const TRANSACTION_STATE_TOPIC: &str = "__transaction_state";

/// Kafka's default `transaction.state.log.num.partitions`.
pub const DEFAULT_TRANSACTION_STATE_PARTITIONS: u32 = 50;

/// The partition of a `partitions`-partition internal topic that owns `id` (a transactional
/// id, or a group id for `__consumer_offsets`): Kafka's `Utils.abs(id.hashCode) % partitions`,
/// where `Utils.abs(Integer.MIN_VALUE)` is 0. `partitions` of 0 is treated as 1.
///
/// ```
/// use streamlog::txn::partition_for;
/// assert_eq!(partition_for("my-txn", 50), 45);
/// ```
pub fn partition_for(id: &str, partitions: u32) -> u32 {
    let h = crate::group::java_string_hash_code(id);
    let abs = if h == i32::MIN { 0 } else { h.unsigned_abs() };
    abs % partitions.max(1)
}

/// A topic partition, as Kafka's `TopicPartition`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
}

impl TopicPartition {
    /// `topic`-`partition`.
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// The key of a `__transaction_state` record (Kafka's `TransactionLogKey`, version 0).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TransactionLogKey {
    /// The transactional id.
    pub transactional_id: String,
}

impl TransactionLogKey {
    /// The version this crate writes (Kafka's highest).
    pub const VERSION: i16 = 0;

    /// The key's bytes: version 0, then the transactional id.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(4 + self.transactional_id.len());
        out.extend_from_slice(&Self::VERSION.to_be_bytes());
        put_string(&mut out, &self.transactional_id)?;
        Ok(out)
    }

    /// Decodes a key. `Ok(None)` for a key version this crate does not know (Kafka skips such
    /// records while loading: another record type, or a left-over of an aborted upgrade).
    pub fn decode(bytes: &[u8]) -> Result<Option<TransactionLogKey>> {
        let mut r = Reader::new(bytes);
        let version = r.i16()?;
        if version != Self::VERSION {
            return Ok(None);
        }
        let transactional_id = r.string()?;
        Ok(Some(TransactionLogKey { transactional_id }))
    }
}

/// The partitions of one topic in a transaction (Kafka's `PartitionsSchema`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TxnTopicPartitions {
    /// The topic.
    pub topic: String,
    /// The partitions of `topic` in the transaction.
    pub partition_ids: Vec<i32>,
}

/// The value of a `__transaction_state` record (Kafka's `TransactionLogValue`, versions 0
/// and 1).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TransactionLogValue {
    /// Producer id in use by the transactional id.
    pub producer_id: i64,
    /// Producer id used by the last committed transaction (v1 tagged field 0; -1 if none).
    pub previous_producer_id: i64,
    /// Latest producer id sent to the producer (v1 tagged field 1; -1 if none).
    pub next_producer_id: i64,
    /// Epoch of the producer id.
    pub producer_epoch: i16,
    /// The transaction timeout in milliseconds.
    pub transaction_timeout_ms: i32,
    /// The [`TransactionState`](super::TransactionState) id.
    pub transaction_status: i8,
    /// Partitions in the transaction; `None` (null) for the Empty state.
    pub transaction_partitions: Option<Vec<TxnTopicPartitions>>,
    /// When the transaction was last updated.
    pub transaction_last_update_timestamp_ms: i64,
    /// When the transaction started (-1 if none is open).
    pub transaction_start_timestamp_ms: i64,
    /// The transaction version the client used (v1 tagged field 2; 0 by default).
    pub client_transaction_version: i16,
    /// Tagged fields this crate does not know, kept to write them back unchanged.
    pub unknown_tagged_fields: Vec<(u32, Vec<u8>)>,
}

impl Default for TransactionLogValue {
    fn default() -> Self {
        TransactionLogValue {
            producer_id: -1,
            previous_producer_id: -1,
            next_producer_id: -1,
            producer_epoch: -1,
            transaction_timeout_ms: 0,
            transaction_status: 0,
            transaction_partitions: None,
            transaction_last_update_timestamp_ms: -1,
            transaction_start_timestamp_ms: -1,
            client_transaction_version: 0,
            unknown_tagged_fields: Vec::new(),
        }
    }
}

const TAG_PREVIOUS_PRODUCER_ID: u32 = 0;
const TAG_NEXT_PRODUCER_ID: u32 = 1;
const TAG_CLIENT_TRANSACTION_VERSION: u32 = 2;

impl TransactionLogValue {
    /// The highest value version this crate reads and writes.
    pub const HIGHEST_VERSION: i16 = 1;

    /// The value's bytes at `version` (0 or 1), version-prefixed. Version 0 cannot carry the
    /// tagged fields; they are dropped, as Kafka does.
    pub fn encode(&self, version: i16) -> Result<Vec<u8>> {
        let flexible = match version {
            0 => false,
            1 => true,
            v => {
                return Err(Error::UnsupportedSchemaVersion {
                    schema: "TransactionLogValue",
                    version: v,
                })
            }
        };
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(&version.to_be_bytes());
        out.extend_from_slice(&self.producer_id.to_be_bytes());
        out.extend_from_slice(&self.producer_epoch.to_be_bytes());
        out.extend_from_slice(&self.transaction_timeout_ms.to_be_bytes());
        out.extend_from_slice(&self.transaction_status.to_be_bytes());
        match &self.transaction_partitions {
            None if flexible => put_uvarint(&mut out, 0),
            None => out.extend_from_slice(&(-1i32).to_be_bytes()),
            Some(topics) => {
                put_len(&mut out, topics.len(), flexible)?;
                for t in topics {
                    if flexible {
                        put_compact_string(&mut out, &t.topic)?;
                    } else {
                        put_string(&mut out, &t.topic)?;
                    }
                    put_len(&mut out, t.partition_ids.len(), flexible)?;
                    for p in &t.partition_ids {
                        out.extend_from_slice(&p.to_be_bytes());
                    }
                    if flexible {
                        put_uvarint(&mut out, 0);
                    }
                }
            }
        }
        out.extend_from_slice(&self.transaction_last_update_timestamp_ms.to_be_bytes());
        out.extend_from_slice(&self.transaction_start_timestamp_ms.to_be_bytes());
        if flexible {
            let mut tags: Vec<(u32, Vec<u8>)> = Vec::new();
            if self.previous_producer_id != -1 {
                tags.push((
                    TAG_PREVIOUS_PRODUCER_ID,
                    self.previous_producer_id.to_be_bytes().to_vec(),
                ));
            }
            if self.next_producer_id != -1 {
                tags.push((
                    TAG_NEXT_PRODUCER_ID,
                    self.next_producer_id.to_be_bytes().to_vec(),
                ));
            }
            if self.client_transaction_version != 0 {
                tags.push((
                    TAG_CLIENT_TRANSACTION_VERSION,
                    self.client_transaction_version.to_be_bytes().to_vec(),
                ));
            }
            tags.extend(self.unknown_tagged_fields.iter().cloned());
            tags.sort_by_key(|(t, _)| *t);
            put_len_raw(&mut out, tags.len())?;
            for (tag, data) in tags {
                put_uvarint(&mut out, tag);
                put_len_raw(&mut out, data.len())?;
                out.extend_from_slice(&data);
            }
        }
        Ok(out)
    }

    /// Decodes a version-prefixed value: its version and fields. Unknown versions, short or
    /// malformed bytes, bad UTF-8 and duplicate or out-of-order tags are errors, never panics.
    pub fn decode(bytes: &[u8]) -> Result<(i16, TransactionLogValue)> {
        let mut r = Reader::new(bytes);
        let version = r.i16()?;
        let flexible = match version {
            0 => false,
            1 => true,
            v => return Err(corrupt(format!("unknown TransactionLogValue version {v}"))),
        };
        let mut v = TransactionLogValue {
            producer_id: r.i64()?,
            producer_epoch: r.i16()?,
            transaction_timeout_ms: r.i32()?,
            transaction_status: r.i8()?,
            ..TransactionLogValue::default()
        };
        let count = if flexible {
            r.compact_len()?
        } else {
            r.array_len()?
        };
        if let Some(count) = count {
            let mut topics = Vec::with_capacity(count.min(1024));
            for _ in 0..count {
                let topic = if flexible {
                    r.compact_string()?
                } else {
                    r.string()?
                };
                let n = if flexible {
                    r.compact_len()?
                } else {
                    r.array_len()?
                }
                .ok_or_else(|| corrupt("null partition list".into()))?;
                if n > r.remaining() / 4 {
                    return Err(corrupt(format!("partition count {n} beyond the record")));
                }
                let mut partition_ids = Vec::with_capacity(n);
                for _ in 0..n {
                    partition_ids.push(r.i32()?);
                }
                if flexible {
                    // The partitions struct's own tagged fields: none are defined.
                    r.skip_tagged_fields()?;
                }
                topics.push(TxnTopicPartitions {
                    topic,
                    partition_ids,
                });
            }
            v.transaction_partitions = Some(topics);
        }
        v.transaction_last_update_timestamp_ms = r.i64()?;
        v.transaction_start_timestamp_ms = r.i64()?;
        if flexible {
            let n = r.uvarint()?;
            let mut last: Option<u32> = None;
            for _ in 0..n {
                let tag = r.uvarint()?;
                if last.is_some_and(|l| tag <= l) {
                    return Err(corrupt(format!("tag {tag} out of order")));
                }
                last = Some(tag);
                let size = r.uvarint()? as usize;
                let data = r.bytes(size)?;
                match tag {
                    TAG_PREVIOUS_PRODUCER_ID => {
                        v.previous_producer_id = i64::from_be_bytes(fixed(data)?);
                    }
                    TAG_NEXT_PRODUCER_ID => {
                        v.next_producer_id = i64::from_be_bytes(fixed(data)?);
                    }
                    TAG_CLIENT_TRANSACTION_VERSION => {
                        v.client_transaction_version = i16::from_be_bytes(fixed(data)?);
                    }
                    _ => v.unknown_tagged_fields.push((tag, data.to_vec())),
                }
            }
        }
        Ok((version, v))
    }
}

fn corrupt(reason: String) -> Error {
    Error::CorruptTxnLogRecord { reason }
}

fn fixed<const N: usize>(data: &[u8]) -> Result<[u8; N]> {
    data.try_into().map_err(|_| {
        corrupt(format!(
            "tagged field of {} bytes, expected {N}",
            data.len()
        ))
    })
}

fn put_string(out: &mut Vec<u8>, s: &str) -> Result<()> {
    let len = i16::try_from(s.len()).map_err(|_| Error::FieldTooLong {
        what: "string",
        len: s.len(),
    })?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

fn put_compact_string(out: &mut Vec<u8>, s: &str) -> Result<()> {
    if s.len() > i16::MAX as usize {
        return Err(Error::FieldTooLong {
            what: "string",
            len: s.len(),
        });
    }
    put_len_raw(out, s.len() + 1)?;
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

/// An array length: int32 (classic) or unsigned varint of length + 1 (compact).
fn put_len(out: &mut Vec<u8>, len: usize, flexible: bool) -> Result<()> {
    if flexible {
        put_len_raw(out, len + 1)
    } else {
        let n = i32::try_from(len).map_err(|_| Error::FieldTooLong { what: "array", len })?;
        out.extend_from_slice(&n.to_be_bytes());
        Ok(())
    }
}

fn put_len_raw(out: &mut Vec<u8>, len: usize) -> Result<()> {
    let n = u32::try_from(len).map_err(|_| Error::FieldTooLong {
        what: "compact length",
        len,
    })?;
    put_uvarint(out, n);
    Ok(())
}

fn put_uvarint(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A bounds-checked reader over record bytes.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes }
    }

    fn remaining(&self) -> usize {
        self.bytes.len()
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.bytes.len() {
            return Err(corrupt(format!(
                "needs {n} more bytes, {} left",
                self.bytes.len()
            )));
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        fixed(self.bytes(N)?)
    }

    fn i8(&mut self) -> Result<i8> {
        Ok(i8::from_be_bytes(self.array()?))
    }
    fn i16(&mut self) -> Result<i16> {
        Ok(i16::from_be_bytes(self.array()?))
    }
    fn i32(&mut self) -> Result<i32> {
        Ok(i32::from_be_bytes(self.array()?))
    }
    fn i64(&mut self) -> Result<i64> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    fn uvarint(&mut self) -> Result<u32> {
        let mut value: u32 = 0;
        for i in 0..5 {
            let [b] = self.array::<1>()?;
            value |= u32::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                if i == 4 && b > 0x0f {
                    break;
                }
                return Ok(value);
            }
        }
        Err(corrupt("unsigned varint longer than 32 bits".into()))
    }

    fn utf8(&mut self, n: usize) -> Result<String> {
        let b = self.bytes(n)?;
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| corrupt("string is not UTF-8".into()))
    }

    fn string(&mut self) -> Result<String> {
        let n = self.i16()?;
        let n = usize::try_from(n).map_err(|_| corrupt(format!("string length {n}")))?;
        self.utf8(n)
    }

    fn compact_string(&mut self) -> Result<String> {
        let n = self
            .compact_len()?
            .ok_or_else(|| corrupt("null compact string".into()))?;
        self.utf8(n)
    }

    /// An int32 array length; `None` for -1 (null).
    fn array_len(&mut self) -> Result<Option<usize>> {
        match self.i32()? {
            -1 => Ok(None),
            n => usize::try_from(n)
                .map(Some)
                .map_err(|_| corrupt(format!("array length {n}"))),
        }
    }

    /// A compact length (unsigned varint of length + 1); `None` for 0 (null).
    fn compact_len(&mut self) -> Result<Option<usize>> {
        Ok(match self.uvarint()? {
            0 => None,
            n => Some(n as usize - 1),
        })
    }

    fn skip_tagged_fields(&mut self) -> Result<()> {
        let n = self.uvarint()?;
        for _ in 0..n {
            self.uvarint()?;
            let size = self.uvarint()? as usize;
            self.bytes(size)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_hash_matches_known_values() {
        // "polygenelubricants" hashes to Integer.MIN_VALUE; Utils.abs maps it to 0.
        assert_eq!(partition_for("polygenelubricants", 50), 0);
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut rng = crate::rng::Rng::new(0x1234_5678);
        for len in 0..200usize {
            for _ in 0..50 {
                let bytes: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
                let _ = TransactionLogKey::decode(&bytes);
                let _ = TransactionLogValue::decode(&bytes);
                let mut v1 = vec![0, 1];
                v1.extend_from_slice(&bytes);
                let _ = TransactionLogValue::decode(&v1);
                let mut v0 = vec![0, 0];
                v0.extend_from_slice(&bytes);
                let _ = TransactionLogValue::decode(&v0);
            }
        }
    }

    #[test]
    fn every_prefix_of_a_valid_value_is_an_error() {
        let v = TransactionLogValue {
            producer_id: 7,
            previous_producer_id: 3,
            producer_epoch: 2,
            transaction_timeout_ms: 60_000,
            transaction_status: 1,
            transaction_partitions: Some(vec![TxnTopicPartitions {
                topic: "t".into(),
                partition_ids: vec![0, 4],
            }]),
            transaction_last_update_timestamp_ms: 10,
            transaction_start_timestamp_ms: 9,
            ..TransactionLogValue::default()
        };
        for version in [0, 1] {
            let bytes = v.encode(version).unwrap();
            for cut in 0..bytes.len() {
                assert!(TransactionLogValue::decode(&bytes[..cut]).is_err());
            }
            let (got_version, got) = TransactionLogValue::decode(&bytes).unwrap();
            assert_eq!(got_version, version);
            assert_eq!(got.producer_id, 7);
            assert_eq!(got.transaction_partitions, v.transaction_partitions);
        }
    }
}
