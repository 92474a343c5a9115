//! A zero-copy view over the bytes of one stored RecordBatch v2, and in-place header updates.

use std::borrow::Cow;

use super::header::*;
use super::record::RecordContext;
use super::records::Records;
use super::{Compression, ControlRecord};
use crate::error::{Error, Result};

/// Bounds that protect decoding from hostile or corrupt bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest batch accepted, header included.
    pub max_batch_bytes: usize,
    /// Largest decompressed records section accepted (defends against decompression bombs).
    pub max_decompressed_bytes: usize,
}

impl DecodeLimits {
    /// 64 MiB batches, 256 MiB decompressed: above any sane Kafka `max.message.bytes`.
    pub const DEFAULT: DecodeLimits = DecodeLimits {
        max_batch_bytes: 64 << 20,
        max_decompressed_bytes: 256 << 20,
    };
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits::DEFAULT
    }
}

/// One RecordBatch v2, borrowed from a buffer, a segment file or a mapped region.
///
/// Construction checks only that the bytes frame a v2 batch (length field and magic); header
/// fields are then read without decoding anything else. [`Batch::validate`] checks the CRC
/// and header consistency; [`Batch::records`] decodes records lazily.
///
/// ```
/// use streamlog::{Batch, BatchBuilder, BatchOptions};
///
/// let mut builder = BatchBuilder::new(BatchOptions::default());
/// builder.append(1_700_000_000_000, Some(b"k"), Some(b"hello"), &[])?;
/// let bytes = builder.build()?;
///
/// let batch = Batch::new(&bytes)?;
/// batch.validate()?;
/// let records = batch.records()?;
/// for record in &records {
///     assert_eq!(record?.value, Some(&b"hello"[..]));
/// }
/// # Ok::<(), streamlog::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Batch<'a> {
    bytes: &'a [u8],
}

impl std::fmt::Debug for Batch<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("header", &self.header())
            .finish_non_exhaustive()
    }
}

/// Checks that `buf` starts with a v2 batch frame and returns its total size.
pub(super) fn frame_size(buf: &[u8], position: u64, limits: &DecodeLimits) -> Result<usize> {
    if buf.len() < BATCH_HEADER_SIZE {
        return Err(Error::BatchTruncated {
            position,
            needed: BATCH_HEADER_SIZE as u64,
            available: buf.len() as u64,
        });
    }
    let base_offset = be_i64(buf, BASE_OFFSET);
    let length = be_i32(buf, BATCH_LENGTH);
    let min = (BATCH_HEADER_SIZE - LOG_OVERHEAD) as i32;
    if length < min {
        return Err(Error::BatchLengthTooSmall {
            base_offset,
            length,
            min,
        });
    }
    let size = length as usize + LOG_OVERHEAD;
    if size > limits.max_batch_bytes {
        return Err(Error::BatchTooLarge {
            base_offset,
            size: size as u64,
            limit: limits.max_batch_bytes as u64,
        });
    }
    let magic = buf.get(MAGIC).map_or(0, |&m| m as i8);
    if magic != MAGIC_V2 {
        return Err(Error::UnsupportedMagic { base_offset, magic });
    }
    if buf.len() < size {
        return Err(Error::BatchTruncated {
            position,
            needed: size as u64,
            available: buf.len() as u64,
        });
    }
    Ok(size)
}

impl<'a> Batch<'a> {
    /// A batch over bytes already known to frame one (checked by [`frame_size`]).
    pub(super) fn from_framed(bytes: &'a [u8]) -> Self {
        Batch { bytes }
    }

    /// Views `bytes`, which must hold exactly one batch, under the default limits.
    pub fn new(bytes: &'a [u8]) -> Result<Self> {
        let (batch, rest) = Batch::parse(bytes, &DecodeLimits::DEFAULT)?;
        if !rest.is_empty() {
            return Err(Error::InvalidBatchHeader {
                base_offset: batch.base_offset(),
                reason: "bytes follow the batch's declared length",
            });
        }
        Ok(batch)
    }

    /// Splits the first batch off `buf`, returning it and the bytes after it.
    pub fn parse(buf: &'a [u8], limits: &DecodeLimits) -> Result<(Self, &'a [u8])> {
        let size = frame_size(buf, 0, limits)?;
        let (bytes, rest) = buf.split_at(size);
        Ok((Batch { bytes }, rest))
    }

    /// The batch's bytes, exactly as stored.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Total size in bytes (batch length + 12).
    pub fn size_in_bytes(&self) -> usize {
        self.bytes.len()
    }

    /// All header fields.
    pub fn header(&self) -> BatchHeader {
        BatchHeader {
            base_offset: self.base_offset(),
            batch_length: be_i32(self.bytes, BATCH_LENGTH),
            partition_leader_epoch: self.partition_leader_epoch(),
            magic: self.magic(),
            crc: self.crc(),
            attributes: self.attributes(),
            last_offset_delta: self.last_offset_delta(),
            base_timestamp: self.base_timestamp(),
            max_timestamp: self.max_timestamp(),
            producer_id: self.producer_id(),
            producer_epoch: self.producer_epoch(),
            base_sequence: self.base_sequence(),
            record_count: self.record_count(),
        }
    }

    /// Offset of the first record slot.
    pub fn base_offset(&self) -> i64 {
        be_i64(self.bytes, BASE_OFFSET)
    }

    /// Offset of the last record slot (base offset + last offset delta).
    pub fn last_offset(&self) -> i64 {
        self.base_offset()
            .wrapping_add(i64::from(self.last_offset_delta()))
    }

    /// The offset after this batch.
    pub fn next_offset(&self) -> i64 {
        self.last_offset().wrapping_add(1)
    }

    /// Epoch of the leader that appended the batch.
    pub fn partition_leader_epoch(&self) -> i32 {
        be_i32(self.bytes, PARTITION_LEADER_EPOCH)
    }

    /// Format version byte (always 2 for a constructed view).
    pub fn magic(&self) -> i8 {
        self.bytes.get(MAGIC).map_or(0, |&m| m as i8)
    }

    /// CRC-32C as stored.
    pub fn crc(&self) -> u32 {
        be_i32(self.bytes, CRC) as u32
    }

    /// CRC-32C computed over the covered bytes.
    pub fn compute_crc(&self) -> u32 {
        crate::record::crc::crc32c(self.bytes.get(ATTRIBUTES..).unwrap_or_default())
    }

    /// Attribute bits.
    pub fn attributes(&self) -> Attributes {
        Attributes(be_i16(self.bytes, ATTRIBUTES))
    }

    /// The codec, or an error naming an undefined codec id.
    pub fn compression(&self) -> Result<Compression> {
        let attrs = self.attributes();
        attrs.compression().ok_or(Error::UnknownCompression {
            base_offset: self.base_offset(),
            id: attrs.compression_id(),
        })
    }

    /// CreateTime or LogAppendTime.
    pub fn timestamp_type(&self) -> TimestampType {
        self.attributes().timestamp_type()
    }

    /// Whether the batch is part of a transaction.
    pub fn is_transactional(&self) -> bool {
        self.attributes().is_transactional()
    }

    /// Whether the batch holds a control record.
    pub fn is_control(&self) -> bool {
        self.attributes().is_control()
    }

    /// The delete horizon that compaction stamped on the batch, if any.
    pub fn delete_horizon(&self) -> Option<i64> {
        self.attributes()
            .has_delete_horizon()
            .then(|| self.base_timestamp())
    }

    /// Last offset minus base offset.
    pub fn last_offset_delta(&self) -> i32 {
        be_i32(self.bytes, LAST_OFFSET_DELTA)
    }

    /// Timestamp the record deltas are relative to.
    pub fn base_timestamp(&self) -> i64 {
        be_i64(self.bytes, BASE_TIMESTAMP)
    }

    /// Largest timestamp in the batch (the append time under LogAppendTime).
    pub fn max_timestamp(&self) -> i64 {
        be_i64(self.bytes, MAX_TIMESTAMP)
    }

    /// Producer id, or -1.
    pub fn producer_id(&self) -> i64 {
        be_i64(self.bytes, PRODUCER_ID)
    }

    /// Producer epoch, or -1.
    pub fn producer_epoch(&self) -> i16 {
        be_i16(self.bytes, PRODUCER_EPOCH)
    }

    /// Sequence of the first record, or -1.
    pub fn base_sequence(&self) -> i32 {
        be_i32(self.bytes, BASE_SEQUENCE)
    }

    /// Sequence of the last record, wrapping at `i32::MAX` as Kafka's does.
    pub fn last_sequence(&self) -> i32 {
        let base = self.base_sequence();
        if base == NO_SEQUENCE {
            return NO_SEQUENCE;
        }
        let last = i64::from(base) + i64::from(self.last_offset_delta());
        if last > i64::from(i32::MAX) {
            (last - i64::from(i32::MAX) - 1) as i32
        } else {
            last as i32
        }
    }

    /// Number of records the header declares.
    pub fn record_count(&self) -> i32 {
        be_i32(self.bytes, RECORD_COUNT)
    }

    /// Checks the CRC-32C and that the header's fields agree with each other.
    ///
    /// The size and magic were checked when the view was made. What `validate` cannot see:
    /// the base offset and partition leader epoch lie outside the CRC by Kafka's design, so a
    /// reader that knows which offset to expect (a log does) must check it.
    pub fn validate(&self) -> Result<()> {
        let base_offset = self.base_offset();
        let stored = self.crc();
        let computed = self.compute_crc();
        if stored != computed {
            return Err(Error::ChecksumMismatch {
                base_offset,
                stored,
                computed,
            });
        }
        let invalid = |reason| Error::InvalidBatchHeader {
            base_offset,
            reason,
        };
        let count = self.record_count();
        let last_delta = self.last_offset_delta();
        if count < 0 {
            return Err(invalid("negative record count"));
        }
        if last_delta < 0 {
            return Err(invalid("negative last offset delta"));
        }
        if count > 0 && last_delta < count - 1 {
            return Err(invalid(
                "last offset delta smaller than the record count allows",
            ));
        }
        if base_offset.checked_add(i64::from(last_delta)).is_none() {
            return Err(invalid("last offset overflows"));
        }
        self.compression()?;
        if self.is_control() && count > 1 {
            return Err(invalid("control batch with more than one record"));
        }
        Ok(())
    }

    /// The batch's records, decompressing them first when the batch is compressed.
    pub fn records(&self) -> Result<Records<'a>> {
        self.records_with(&DecodeLimits::DEFAULT)
    }

    /// [`Batch::records`] under explicit limits.
    pub fn records_with(&self, limits: &DecodeLimits) -> Result<Records<'a>> {
        let data = match self.compression()? {
            Compression::None => Cow::Borrowed(self.records_section()),
            codec => {
                let mut out = Vec::new();
                codec.decompress(
                    self.records_section(),
                    &mut out,
                    limits.max_decompressed_bytes,
                )?;
                Cow::Owned(out)
            }
        };
        Ok(self.records_over(data))
    }

    /// Like [`Batch::records_with`], decompressing into `scratch` so a caller decoding many
    /// batches reuses one buffer. The decompressed bytes start at `scratch[0]`; `scratch` may
    /// be longer than they are (it keeps the bytes it was grown to, so reusing it costs no
    /// zero-filling), so read records through the returned [`Records`], not `scratch`.
    pub fn records_in<'s>(
        &self,
        scratch: &'s mut Vec<u8>,
        limits: &DecodeLimits,
    ) -> Result<Records<'s>>
    where
        'a: 's,
    {
        let data = match self.compression()? {
            Compression::None => self.records_section(),
            codec => {
                let len = codec.decompress_reusing(
                    self.records_section(),
                    scratch,
                    limits.max_decompressed_bytes,
                )?;
                scratch.get(..len).unwrap_or_default()
            }
        };
        Ok(self.records_over(Cow::Borrowed(data)))
    }

    /// Whether an uncompressed batch's records section frames exactly the records its
    /// header counts: each a varint length and that many bytes, nothing left over. A cheap
    /// structural check (no field is decoded) for recovery, where decoding every record
    /// would cost more than reading and checksumming the file. `None` for a compressed
    /// batch, whose records cannot be framed without decompressing them.
    pub(crate) fn frames_declared_records(&self) -> Option<bool> {
        super::framing::frames_declared_records(self)
    }

    /// The bytes after the header: the records, compressed or not.
    pub fn records_section(&self) -> &'a [u8] {
        self.bytes.get(BATCH_HEADER_SIZE..).unwrap_or_default()
    }

    /// The transaction marker of a control batch, `None` for a data batch.
    pub fn control_record(&self) -> Result<Option<ControlRecord>> {
        if !self.is_control() {
            return Ok(None);
        }
        let records = self.records()?;
        let mut iter = records.iter();
        let record = iter.next().ok_or(Error::InvalidBatchHeader {
            base_offset: self.base_offset(),
            reason: "control batch without a record",
        })??;
        let control =
            ControlRecord::from_record(&record).map_err(|reason| Error::CorruptRecord {
                base_offset: self.base_offset(),
                index: 0,
                reason,
            })?;
        Ok(Some(control))
    }

    fn records_over<'d>(&self, data: Cow<'d, [u8]>) -> Records<'d> {
        let log_append_time =
            (self.timestamp_type() == TimestampType::LogAppendTime).then(|| self.max_timestamp());
        Records::new(
            data,
            RecordContext {
                base_offset: self.base_offset(),
                base_timestamp: self.base_timestamp(),
                log_append_time,
            },
            self.record_count(),
            self.last_offset_delta(),
        )
    }
}

/// Header updates on stored batch bytes, as a log makes when it appends.
#[derive(Debug)]
pub struct BatchMut<'a> {
    bytes: &'a mut [u8],
}

impl<'a> BatchMut<'a> {
    /// Views `bytes`, which must frame exactly one v2 batch.
    pub fn new(bytes: &'a mut [u8]) -> Result<Self> {
        Batch::new(bytes)?;
        Ok(BatchMut { bytes })
    }

    /// Read-only view of the same bytes.
    pub fn as_batch(&self) -> Batch<'_> {
        Batch { bytes: self.bytes }
    }

    /// Sets the base offset; outside the CRC, so the CRC stays valid.
    pub fn set_base_offset(&mut self, base_offset: i64) {
        put(self.bytes, BASE_OFFSET, &base_offset.to_be_bytes());
    }

    /// Sets the partition leader epoch; outside the CRC, so the CRC stays valid.
    pub fn set_partition_leader_epoch(&mut self, epoch: i32) {
        put(self.bytes, PARTITION_LEADER_EPOCH, &epoch.to_be_bytes());
    }

    /// Sets the timestamp type and max timestamp (LogAppendTime stamping) and recomputes the
    /// CRC, since both fields lie inside it.
    pub fn set_max_timestamp(&mut self, timestamp_type: TimestampType, max_timestamp: i64) {
        let attrs = self
            .as_batch()
            .attributes()
            .with_timestamp_type(timestamp_type);
        put(self.bytes, ATTRIBUTES, &attrs.0.to_be_bytes());
        put(self.bytes, MAX_TIMESTAMP, &max_timestamp.to_be_bytes());
        let crc = self.as_batch().compute_crc();
        put(self.bytes, CRC, &crc.to_be_bytes());
    }
}
