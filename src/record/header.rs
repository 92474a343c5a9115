//! The fixed 61-byte header of a RecordBatch v2 and its attribute bits.
//!
//! Byte layout, big-endian, as Kafka's `DefaultRecordBatch` writes it:
//!
//! ```text
//! offset len field
//!      0   8 base offset
//!      8   4 batch length (bytes after this field)
//!     12   4 partition leader epoch
//!     16   1 magic (2)
//!     17   4 CRC-32C of bytes 21..end
//!     21   2 attributes
//!     23   4 last offset delta
//!     27   8 base timestamp
//!     35   8 max timestamp
//!     43   8 producer id
//!     51   2 producer epoch
//!     53   4 base sequence
//!     57   4 record count
//!     61     records
//! ```
//!
//! Base offset, batch length, partition leader epoch and magic lie before the CRC'd range, so a
//! log can assign offsets and stamp leader epochs without recomputing the CRC.

use super::Compression;

pub(crate) const BASE_OFFSET: usize = 0;
pub(crate) const BATCH_LENGTH: usize = 8;
pub(crate) const PARTITION_LEADER_EPOCH: usize = 12;
pub(crate) const MAGIC: usize = 16;
pub(crate) const CRC: usize = 17;
pub(crate) const ATTRIBUTES: usize = 21;
pub(crate) const LAST_OFFSET_DELTA: usize = 23;
pub(crate) const BASE_TIMESTAMP: usize = 27;
pub(crate) const MAX_TIMESTAMP: usize = 35;
pub(crate) const PRODUCER_ID: usize = 43;
pub(crate) const PRODUCER_EPOCH: usize = 51;
pub(crate) const BASE_SEQUENCE: usize = 53;
pub(crate) const RECORD_COUNT: usize = 57;

/// Size of the v2 batch header; records start here.
pub const BATCH_HEADER_SIZE: usize = 61;
/// Base offset + batch length: the bytes not counted by the batch length field.
pub const LOG_OVERHEAD: usize = 12;
/// The only magic value streamlog reads and writes.
pub const MAGIC_V2: i8 = 2;
/// Producer id of a batch from a non-idempotent producer.
pub const NO_PRODUCER_ID: i64 = -1;
/// Producer epoch of a batch from a non-idempotent producer.
pub const NO_PRODUCER_EPOCH: i16 = -1;
/// Base sequence of a batch from a non-idempotent producer.
pub const NO_SEQUENCE: i32 = -1;
/// Partition leader epoch of a batch not yet stamped by a leader.
pub const NO_PARTITION_LEADER_EPOCH: i32 = -1;

const COMPRESSION_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_BIT: i16 = 0x08;
const TRANSACTIONAL_BIT: i16 = 0x10;
const CONTROL_BIT: i16 = 0x20;
const DELETE_HORIZON_BIT: i16 = 0x40;

/// How the timestamps of a batch were assigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TimestampType {
    /// Set by the producer when it created each record.
    #[default]
    CreateTime,
    /// Set by the log when it appended the batch; every record reads as the batch's max timestamp.
    LogAppendTime,
}

/// The attributes field of a batch header: codec, timestamp type and flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Attributes(pub i16);

impl Attributes {
    /// The codec id in bits 0-2 (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd).
    pub fn compression_id(self) -> u8 {
        (self.0 & COMPRESSION_MASK) as u8
    }

    /// The codec, or `None` for an id Kafka does not define (5-7).
    pub fn compression(self) -> Option<Compression> {
        Compression::from_id(self.compression_id())
    }

    /// Bit 3.
    pub fn timestamp_type(self) -> TimestampType {
        if self.0 & TIMESTAMP_TYPE_BIT != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    /// Bit 4: the batch belongs to a transaction.
    pub fn is_transactional(self) -> bool {
        self.0 & TRANSACTIONAL_BIT != 0
    }

    /// Bit 5: the batch holds a control record (a transaction marker).
    pub fn is_control(self) -> bool {
        self.0 & CONTROL_BIT != 0
    }

    /// Bit 6: the base timestamp holds the delete horizon set by compaction.
    pub fn has_delete_horizon(self) -> bool {
        self.0 & DELETE_HORIZON_BIT != 0
    }

    /// Builds attributes from their parts.
    pub fn new(
        compression: Compression,
        timestamp_type: TimestampType,
        transactional: bool,
        control: bool,
        delete_horizon: bool,
    ) -> Self {
        let mut bits = i16::from(compression.id());
        if timestamp_type == TimestampType::LogAppendTime {
            bits |= TIMESTAMP_TYPE_BIT;
        }
        if transactional {
            bits |= TRANSACTIONAL_BIT;
        }
        if control {
            bits |= CONTROL_BIT;
        }
        if delete_horizon {
            bits |= DELETE_HORIZON_BIT;
        }
        Attributes(bits)
    }

    /// The same attributes with the timestamp type replaced.
    pub fn with_timestamp_type(self, timestamp_type: TimestampType) -> Self {
        match timestamp_type {
            TimestampType::CreateTime => Attributes(self.0 & !TIMESTAMP_TYPE_BIT),
            TimestampType::LogAppendTime => Attributes(self.0 | TIMESTAMP_TYPE_BIT),
        }
    }
}

/// All header fields of a batch, decoded into a plain struct.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BatchHeader {
    /// Offset of the first record (offset delta 0).
    pub base_offset: i64,
    /// Bytes after the length field; the whole batch is `batch_length + 12` bytes.
    pub batch_length: i32,
    /// Epoch of the leader that appended the batch, or -1.
    pub partition_leader_epoch: i32,
    /// Format version: always 2 here.
    pub magic: i8,
    /// CRC-32C of bytes 21 to the end, as stored.
    pub crc: u32,
    /// Codec, timestamp type and flags.
    pub attributes: Attributes,
    /// Offset of the last record minus the base offset.
    pub last_offset_delta: i32,
    /// Timestamp of the first record (or the delete horizon when that bit is set).
    pub base_timestamp: i64,
    /// Largest record timestamp, or the log append time.
    pub max_timestamp: i64,
    /// Idempotent producer id, or -1.
    pub producer_id: i64,
    /// Producer epoch, or -1.
    pub producer_epoch: i16,
    /// Sequence number of the first record, or -1.
    pub base_sequence: i32,
    /// Number of records in the batch.
    pub record_count: i32,
}

#[inline]
pub(crate) fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        a.copy_from_slice(s);
    }
    i64::from_be_bytes(a)
}

#[inline]
pub(crate) fn be_i32(b: &[u8], at: usize) -> i32 {
    let mut a = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        a.copy_from_slice(s);
    }
    i32::from_be_bytes(a)
}

#[inline]
pub(crate) fn be_i16(b: &[u8], at: usize) -> i16 {
    let mut a = [0u8; 2];
    if let Some(s) = b.get(at..at + 2) {
        a.copy_from_slice(s);
    }
    i16::from_be_bytes(a)
}

#[inline]
pub(crate) fn put(b: &mut [u8], at: usize, bytes: &[u8]) {
    if let Some(s) = b.get_mut(at..at + bytes.len()) {
        s.copy_from_slice(bytes);
    }
}
