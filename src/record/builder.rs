//! Encoding records into a RecordBatch v2.

use super::header::*;
use super::record::{body_size, write_record, Header, Headers, Record, RecordFields};
use super::varint::{packed_varint, put_packed};
use super::{Compression, ControlRecord};
use crate::error::{Error, Result};

/// Timestamp of a batch without records.
pub const NO_TIMESTAMP: i64 = -1;

/// Header fields and codec of a batch to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchOptions {
    /// Codec for the records section.
    pub compression: Compression,
    /// CreateTime, or LogAppendTime with `log_append_time` as every record's timestamp.
    pub timestamp_type: TimestampType,
    /// Max timestamp written under LogAppendTime.
    pub log_append_time: i64,
    /// Offset of the first record (a log overwrites it on append).
    pub base_offset: i64,
    /// Leader epoch to stamp (a log overwrites it on append).
    pub partition_leader_epoch: i32,
    /// Idempotent producer id, or -1.
    pub producer_id: i64,
    /// Producer epoch, or -1.
    pub producer_epoch: i16,
    /// Sequence of the first record, or -1.
    pub base_sequence: i32,
    /// Marks the batch as part of a transaction.
    pub transactional: bool,
    /// Compaction's delete horizon: becomes the base timestamp and sets attribute bit 6.
    pub delete_horizon: Option<i64>,
}

impl Default for BatchOptions {
    fn default() -> Self {
        BatchOptions {
            compression: Compression::None,
            timestamp_type: TimestampType::CreateTime,
            log_append_time: NO_TIMESTAMP,
            base_offset: 0,
            partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            base_sequence: NO_SEQUENCE,
            transactional: false,
            delete_horizon: None,
        }
    }
}

impl BatchOptions {
    /// Default options with a codec.
    pub fn compressed(compression: Compression) -> Self {
        BatchOptions {
            compression,
            ..BatchOptions::default()
        }
    }
}

/// Builds one batch, record by record.
///
/// Uncompressed records are encoded straight into the output buffer, with no allocation per
/// record; compressed ones go to a scratch buffer that is compressed once at [`build`].
///
/// ```
/// use streamlog::{BatchBuilder, BatchOptions, Compression, Header};
///
/// let mut b = BatchBuilder::new(BatchOptions::compressed(Compression::Lz4));
/// b.append(1_700_000_000_000, Some(b"user-1"), Some(b"clicked"), &[Header::new("trace", Some(b"42"))])?;
/// b.append(1_700_000_000_005, None, None, &[])?; // null key, tombstone value
/// let bytes = b.build()?;
/// assert_eq!(streamlog::Batch::new(&bytes)?.record_count(), 2);
/// # Ok::<(), streamlog::Error>(())
/// ```
///
/// [`build`]: BatchBuilder::build
#[derive(Debug, Clone)]
pub struct BatchBuilder {
    opts: BatchOptions,
    control: bool,
    out: Vec<u8>,
    scratch: Vec<u8>,
    count: i32,
    base_timestamp: Option<i64>,
    max_timestamp: i64,
    last_offset_delta: Option<i32>,
}

impl BatchBuilder {
    /// A builder with the given header fields and codec.
    pub fn new(opts: BatchOptions) -> Self {
        BatchBuilder::with_buffer(opts, Vec::new())
    }

    /// Marks the batch being built as a control batch (the cleaner re-encodes markers).
    pub(crate) fn set_control(&mut self) {
        self.control = true;
    }

    /// A builder writing into `buffer` (cleared first), to reuse its allocation.
    pub fn with_buffer(opts: BatchOptions, mut buffer: Vec<u8>) -> Self {
        buffer.clear();
        buffer.resize(BATCH_HEADER_SIZE, 0);
        BatchBuilder {
            opts,
            control: false,
            out: buffer,
            scratch: if opts.compression == Compression::None {
                Vec::new()
            } else {
                take_scratch()
            },
            count: 0,
            base_timestamp: None,
            max_timestamp: NO_TIMESTAMP,
            last_offset_delta: None,
        }
    }

    /// Reserves room for `bytes` more bytes of records.
    pub fn reserve(&mut self, bytes: usize) {
        self.records_buf().reserve(bytes);
    }

    /// Records appended so far.
    pub fn record_count(&self) -> usize {
        self.count as usize
    }

    /// Bytes of encoded records so far plus the header (before compression).
    pub fn uncompressed_size(&self) -> usize {
        self.out.len() + self.scratch.len()
    }

    fn records_buf(&mut self) -> &mut Vec<u8> {
        if self.opts.compression == Compression::None {
            &mut self.out
        } else {
            &mut self.scratch
        }
    }

    /// Appends a record at the next offset.
    #[inline]
    pub fn append(
        &mut self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[Header<'_>],
    ) -> Result<()> {
        if headers.is_empty() && self.append_packed(timestamp, key, value).is_some() {
            return Ok(());
        }
        self.append_general(timestamp, key, value, headers)
    }

    /// [`append`](Self::append) for records with headers or long varints, kept out of line
    /// so the fast path stays small where it is inlined.
    #[inline(never)]
    fn append_general(
        &mut self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[Header<'_>],
    ) -> Result<()> {
        let delta = self.next_delta()?;
        self.push(delta, timestamp, key, value, headers.iter().copied())
    }

    /// [`append`](Self::append) for the common record: no headers and every varint at most
    /// three bytes. The varints before the key go out as one packed store and the value's
    /// length as another, with no separate sizing pass. `None` (nothing written) sends the
    /// record down the general path.
    #[inline(always)]
    fn append_packed(
        &mut self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
    ) -> Option<()> {
        let delta = match self.last_offset_delta {
            None => 0,
            Some(d) => d.checked_add(1)?,
        };
        let base_timestamp = self
            .base_timestamp
            .unwrap_or(self.opts.delete_horizon.unwrap_or(timestamp));
        let (ts, ts_n) = packed_varint(timestamp.wrapping_sub(base_timestamp))?;
        let (od, od_n) = packed_varint(i64::from(delta))?;
        let key_len = key.map_or(0, <[u8]>::len);
        let value_len = value.map_or(0, <[u8]>::len);
        let (kl, kl_n) = packed_varint(key.map_or(-1, |_| key_len as i64))?;
        let (vl, vl_n) = packed_varint(value.map_or(-1, |_| value_len as i64))?;
        // attributes, the varints, the bytes, a zero header count.
        let body = 1 + ts_n + od_n + kl_n + key_len + vl_n + value_len + 1;
        let (len, len_n) = packed_varint(body as i64)?;
        let mut head = u128::from(len);
        let mut n = len_n + 1;
        head |= u128::from(ts) << (8 * n);
        n += ts_n;
        head |= u128::from(od) << (8 * n);
        n += od_n;
        head |= u128::from(kl) << (8 * n);
        n += kl_n;
        let out = self.records_buf();
        // Room for the record and the slack of the packed stores.
        out.reserve(len_n + body + 16);
        put_packed(out, &head.to_le_bytes(), n);
        if let Some(key) = key {
            out.extend_from_slice(key);
        }
        put_packed(out, &u64::from(vl).to_le_bytes(), vl_n);
        if let Some(value) = value {
            out.extend_from_slice(value);
        }
        out.push(0);
        self.base_timestamp = Some(base_timestamp);
        self.count += 1;
        self.max_timestamp = self.max_timestamp.max(timestamp);
        self.last_offset_delta = Some(delta);
        Some(())
    }

    /// Appends a record at `offset_delta` from the base offset; deltas must increase but may
    /// leave gaps (as compaction leaves them).
    pub fn append_at(
        &mut self,
        offset_delta: i32,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[Header<'_>],
    ) -> Result<()> {
        self.push(offset_delta, timestamp, key, value, headers.iter().copied())
    }

    /// Re-encodes a decoded record, keeping its offset (relative to this batch's base offset),
    /// timestamp, key, value and headers.
    pub fn append_record(&mut self, record: &Record<'_>) -> Result<()> {
        let delta = record
            .offset
            .checked_sub(self.opts.base_offset)
            .and_then(|d| i32::try_from(d).ok())
            .ok_or(Error::OffsetDeltaOutOfRange {
                offset: record.offset,
                base_offset: self.opts.base_offset,
            })?;
        self.push::<Headers<'_>>(
            delta,
            record.timestamp,
            record.key,
            record.value,
            record.headers(),
        )
    }

    fn next_delta(&self) -> Result<i32> {
        match self.last_offset_delta {
            None => Ok(0),
            Some(d) => d.checked_add(1).ok_or(Error::BatchFull),
        }
    }

    fn push<'h, H: Iterator<Item = Header<'h>> + Clone>(
        &mut self,
        offset_delta: i32,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: H,
    ) -> Result<()> {
        if self.last_offset_delta.is_some_and(|d| offset_delta <= d) || offset_delta < 0 {
            return Err(Error::OffsetDeltaNotIncreasing {
                offset_delta,
                previous: self.last_offset_delta,
            });
        }
        let base_timestamp = *self
            .base_timestamp
            .get_or_insert(self.opts.delete_horizon.unwrap_or(timestamp));
        let fields = RecordFields {
            timestamp_delta: timestamp.wrapping_sub(base_timestamp),
            offset_delta,
            key,
            value,
            headers,
        };
        let (body, header_count) = body_size(&fields)
            .filter(|(b, _)| i32::try_from(*b).is_ok())
            .ok_or(Error::TooLargeToEncode { what: "record" })?;
        write_record(self.records_buf(), fields, body, header_count);
        self.count += 1;
        self.max_timestamp = self.max_timestamp.max(timestamp);
        self.last_offset_delta = Some(offset_delta);
        Ok(())
    }

    /// Finishes the batch: compresses if needed, fills in the header and the CRC.
    pub fn build(self) -> Result<Vec<u8>> {
        let BatchBuilder {
            opts,
            control,
            mut out,
            scratch,
            count,
            base_timestamp,
            max_timestamp,
            last_offset_delta,
        } = self;
        if opts.compression != Compression::None {
            let compressed = opts.compression.compress(&scratch, &mut out);
            give_back_scratch(scratch);
            compressed?;
        }
        let length = i32::try_from(out.len() - LOG_OVERHEAD)
            .map_err(|_| Error::TooLargeToEncode { what: "batch" })?;
        let max_timestamp = match opts.timestamp_type {
            TimestampType::LogAppendTime => opts.log_append_time,
            TimestampType::CreateTime => max_timestamp,
        };
        let attrs = Attributes::new(
            opts.compression,
            opts.timestamp_type,
            opts.transactional || control,
            control,
            opts.delete_horizon.is_some(),
        );
        let base_timestamp = base_timestamp
            .or(opts.delete_horizon)
            .unwrap_or(NO_TIMESTAMP);
        put(&mut out, BASE_OFFSET, &opts.base_offset.to_be_bytes());
        put(&mut out, BATCH_LENGTH, &length.to_be_bytes());
        put(
            &mut out,
            PARTITION_LEADER_EPOCH,
            &opts.partition_leader_epoch.to_be_bytes(),
        );
        put(&mut out, MAGIC, &[MAGIC_V2 as u8]);
        put(&mut out, ATTRIBUTES, &attrs.0.to_be_bytes());
        put(
            &mut out,
            LAST_OFFSET_DELTA,
            &last_offset_delta.unwrap_or(0).to_be_bytes(),
        );
        put(&mut out, BASE_TIMESTAMP, &base_timestamp.to_be_bytes());
        put(&mut out, MAX_TIMESTAMP, &max_timestamp.to_be_bytes());
        put(&mut out, PRODUCER_ID, &opts.producer_id.to_be_bytes());
        put(&mut out, PRODUCER_EPOCH, &opts.producer_epoch.to_be_bytes());
        put(&mut out, BASE_SEQUENCE, &opts.base_sequence.to_be_bytes());
        put(&mut out, RECORD_COUNT, &count.to_be_bytes());
        let crc = crate::record::crc::crc32c(out.get(ATTRIBUTES..).unwrap_or_default());
        put(&mut out, CRC, &crc.to_be_bytes());
        Ok(out)
    }

    /// Builds a control batch holding one control record (a COMMIT or ABORT marker).
    ///
    /// The batch is transactional and uncompressed, as Kafka writes markers.
    pub fn control_batch(
        opts: BatchOptions,
        control: &ControlRecord,
        timestamp: i64,
    ) -> Result<Vec<u8>> {
        let mut b = BatchBuilder::new(BatchOptions {
            compression: Compression::None,
            transactional: true,
            ..opts
        });
        b.control = true;
        let key = control.key_bytes();
        let value = control.value_bytes();
        b.append(timestamp, Some(&key), value.as_ref().map(|v| &v[..]), &[])?;
        b.build()
    }
}

thread_local! {
    /// The uncompressed records of the last compressed batch this thread built: the next
    /// builder starts from its allocation instead of growing a new buffer by doubling
    /// (a producer building batch after batch would otherwise reallocate and copy about
    /// ten times a batch).
    static SCRATCH: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Largest buffer kept for reuse: above Kafka's default `max.message.bytes`, so common
/// batches reuse it, and a one-off huge batch does not pin its memory to the thread.
const MAX_KEPT_SCRATCH: usize = 4 << 20;

fn take_scratch() -> Vec<u8> {
    let mut buf = SCRATCH.with(std::cell::Cell::take);
    buf.clear();
    buf
}

fn give_back_scratch(buf: Vec<u8>) {
    if buf.capacity() <= MAX_KEPT_SCRATCH {
        SCRATCH.with(|slot| slot.set(buf));
    }
}
