//! Cleaning one group of adjacent segments into a single `.cleaned` segment.
//!
//! Each batch is kept as stored when every record in it survives; rebuilt (same base
//! offset, last offset, producer fields, codec) from its surviving records otherwise, or when
//! it holds a tombstone that has no delete horizon yet (KIP-534: the horizon is stamped the
//! first time the cleaner keeps the tombstone, and the tombstone goes at the first cleaning
//! after it); dropped when nothing survives, unless the producer hooks ask for an empty batch
//! or it is the group's last batch (see [`empty_batch`]).

use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;

use super::offset_map::OffsetMap;
use super::stats::CleanerStats;
use super::swap::CLEANED_SUFFIX;
use super::{BatchRetention, CompactionHooks};
use crate::error::{Error, Result};
use crate::io::FileSystem;
use crate::record::header::{
    be_i16, be_i64, put, ATTRIBUTES as ATTRIBUTES_AT, BASE_TIMESTAMP as BASE_TIMESTAMP_AT,
    BATCH_LENGTH as BATCH_LENGTH_AT, CRC as CRC_AT, LAST_OFFSET_DELTA as LAST_OFFSET_DELTA_AT,
    MAX_TIMESTAMP as MAX_TIMESTAMP_AT, RECORD_COUNT as RECORD_COUNT_AT,
};
use crate::record::{
    Attributes, Batch, BatchBuilder, BatchOptions, Compression, DecodeLimits, Record,
    TimestampType, BATCH_HEADER_SIZE, LOG_OVERHEAD,
};
use crate::segment::{BatchPos, IndexConfig, Segment};

/// Bytes read from a segment at a time.
const READ_CHUNK: usize = 1 << 20;

/// What a cleaning pass decides with.
pub(super) struct CleanContext<'a> {
    pub map: &'a OffsetMap,
    pub hooks: &'a dyn CompactionHooks,
    pub now_ms: i64,
    pub delete_retention_ms: i64,
    pub limits: DecodeLimits,
}

/// Reusable buffers of a cleaner.
#[derive(Debug, Default)]
pub(super) struct Buffers {
    pub read: Vec<u8>,
    pub scratch: Vec<u8>,
    pub out: Vec<u8>,
    pub write: Vec<u8>,
}

/// Calls `f` with every batch of a sealed segment, in order, reading it in large chunks.
pub(super) fn for_each_batch(
    seg: &Segment,
    buf: &mut Vec<u8>,
    limits: &DecodeLimits,
    mut f: impl FnMut(&Batch<'_>) -> Result<ControlFlow<()>>,
) -> Result<()> {
    let size = seg.size();
    let mut pos = 0u64;
    while pos < size {
        let want = usize::try_from((size - pos).min(READ_CHUNK as u64)).unwrap_or(READ_CHUNK);
        buf.resize(want, 0);
        seg.read_exact(buf, pos)?;
        let mut used = 0usize;
        loop {
            let rest = buf.get(used..).unwrap_or_default();
            if rest.is_empty() {
                break;
            }
            match Batch::parse(rest, limits) {
                Ok((b, _)) => {
                    used += b.size_in_bytes();
                    if f(&b)?.is_break() {
                        return Ok(());
                    }
                }
                Err(Error::BatchTruncated { needed, .. }) if used == 0 => {
                    // A batch larger than the chunk: read it whole.
                    let needed = usize::try_from(needed).unwrap_or(usize::MAX);
                    if (pos + needed as u64) > size || needed <= buf.len() {
                        return Err(corrupt(seg, pos, "batch runs past the end of the segment"));
                    }
                    buf.resize(needed, 0);
                    seg.read_exact(buf, pos)?;
                }
                Err(Error::BatchTruncated { .. }) => break,
                Err(e) => return Err(corrupt(seg, pos + used as u64, e.to_string())),
            }
        }
        pos += used as u64;
    }
    Ok(())
}

fn corrupt(seg: &Segment, position: u64, reason: impl Into<String>) -> Error {
    Error::CorruptSegment {
        path: seg.log_path().to_path_buf(),
        position,
        reason: reason.into(),
    }
}

/// Cleans `group` into one new segment named after its first segment, with the suffix
/// `.cleaned`, sealed and fsynced. `None` when the group holds no batch at all.
pub(super) fn clean_group(
    fs: &Arc<dyn FileSystem>,
    dir: &Path,
    index_config: IndexConfig,
    group: &[Arc<Segment>],
    ctx: &CleanContext<'_>,
    bufs: &mut Buffers,
    stats: &mut CleanerStats,
) -> Result<Option<Segment>> {
    let Some(first) = group.first() else {
        return Ok(None);
    };
    let out =
        Segment::create_with_suffix(fs, dir, first.base_offset(), index_config, CLEANED_SUFFIX)?;
    match fill(&out, group, ctx, bufs, stats) {
        Ok(true) => {
            out.seal()?;
            out.flush()?;
            Ok(Some(out))
        }
        Ok(false) => {
            out.delete_files()?;
            Ok(None)
        }
        Err(e) => {
            let _ = out.delete_files();
            Err(e)
        }
    }
}

/// Batches on their way to the cleaned segment, written a large run at a time.
struct Output<'s> {
    seg: &'s Segment,
    bytes: Vec<u8>,
    batches: Vec<BatchPos>,
}

/// Bytes gathered before a write.
const WRITE_RUN: usize = 1 << 20;

impl Output<'_> {
    fn push(&mut self, bytes: &[u8], batch: &Batch<'_>) -> Result<()> {
        self.batches.push(BatchPos {
            position: 0,
            size: bytes.len() as u64,
            base_offset: batch.base_offset(),
            last_offset: batch.last_offset(),
            max_timestamp: Batch::new(bytes).map_or(batch.max_timestamp(), |b| b.max_timestamp()),
        });
        self.bytes.extend_from_slice(bytes);
        if self.bytes.len() >= WRITE_RUN {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if !self.batches.is_empty() {
            self.seg.append_batches(&[&self.bytes], &self.batches)?;
        }
        self.bytes.clear();
        self.batches.clear();
        Ok(())
    }
}

/// Writes the group's surviving batches to `out`; false when the group had no batch.
fn fill(
    out: &Segment,
    group: &[Arc<Segment>],
    ctx: &CleanContext<'_>,
    bufs: &mut Buffers,
    stats: &mut CleanerStats,
) -> Result<bool> {
    let Buffers {
        read,
        scratch,
        out: built,
        write,
    } = bufs;
    let mut output = Output {
        seg: out,
        bytes: std::mem::take(write),
        batches: Vec::new(),
    };
    // The header of the last batch read, when it was dropped: the group must still end
    // where it ended (see `empty_batch`).
    let mut dropped_last: Option<[u8; BATCH_HEADER_SIZE]> = None;
    let mut any = false;
    for seg in group {
        for_each_batch(seg, read, &ctx.limits, |b| {
            any = true;
            stats.bytes_read += b.size_in_bytes() as u64;
            match filter_batch(b, ctx, scratch, built, stats)? {
                Filtered::Unchanged => {
                    output.push(b.as_bytes(), b)?;
                    dropped_last = None;
                }
                Filtered::Rebuilt => {
                    output.push(built, b)?;
                    dropped_last = None;
                }
                Filtered::Dropped => {
                    ctx.hooks.batch_removed(b);
                    dropped_last = Some(header_of(b));
                }
            }
            Ok(ControlFlow::Continue(()))
        })?;
    }
    if let Some(header) = dropped_last {
        let empty = empty_batch(&header);
        let b = Batch::new(&empty)?;
        output.push(&empty, &b)?;
    }
    output.flush()?;
    *write = output.bytes;
    Ok(any)
}

enum Filtered {
    Unchanged,
    /// Rebuilt into the output buffer.
    Rebuilt,
    Dropped,
}

fn filter_batch(
    batch: &Batch<'_>,
    ctx: &CleanContext<'_>,
    scratch: &mut Vec<u8>,
    built: &mut Vec<u8>,
    stats: &mut CleanerStats,
) -> Result<Filtered> {
    let count = u64::try_from(batch.record_count()).unwrap_or(0);
    stats.records_read += count;
    if batch.base_offset() > ctx.map.latest_offset() {
        // Past what this pass's key map covers: untouched.
        stats.records_written += count;
        return Ok(Filtered::Unchanged);
    }
    let retention = ctx.hooks.batch_retention(batch);
    match retention {
        BatchRetention::Delete => return Ok(Filtered::Dropped),
        BatchRetention::Empty => {
            if count == 0 {
                return Ok(Filtered::Unchanged);
            }
            *built = empty_batch(&header_of(batch));
            return Ok(Filtered::Rebuilt);
        }
        BatchRetention::DeleteAfterHorizon => match batch.delete_horizon() {
            Some(h) if ctx.now_ms >= h => return Ok(Filtered::Dropped),
            Some(_) => {
                stats.records_written += count;
                return Ok(Filtered::Unchanged);
            }
            None => {
                let records = batch.records_in(scratch, &ctx.limits)?;
                let kept = records.iter().collect::<Result<Vec<_>>>()?;
                stats.records_written += kept.len() as u64;
                let horizon = ctx.now_ms.saturating_add(ctx.delete_retention_ms);
                rebuild(batch, &kept, Some(horizon), built)?;
                return Ok(Filtered::Rebuilt);
            }
        },
        // A control batch's record (a transaction marker) is never compacted by key; only
        // the hooks remove it, whole (Kafka's cleaner does the same).
        _ if batch.is_control() => {
            stats.records_written += count;
            return Ok(Filtered::Unchanged);
        }
        BatchRetention::Retain => {
            stats.records_written += count;
            return Ok(Filtered::Unchanged);
        }
        BatchRetention::DeleteEmpty | BatchRetention::RetainEmpty => {}
    }
    let horizon = batch.delete_horizon();
    let records = batch.records_in(scratch, &ctx.limits)?;
    let mut kept: Vec<Record<'_>> = Vec::new();
    let mut tombstone_kept = false;
    for r in records.iter() {
        let r = r?;
        let Some(key) = r.key else {
            stats.invalid_records += 1;
            continue;
        };
        let newest = ctx
            .map
            .get(ctx.map.hash(key))
            .is_none_or(|latest| r.offset >= latest);
        if !newest {
            continue;
        }
        if r.value.is_none() {
            if horizon.is_some_and(|h| ctx.now_ms >= h) {
                stats.tombstones_removed += 1;
                continue;
            }
            tombstone_kept = true;
        }
        kept.push(r);
    }
    let needs_horizon = tombstone_kept && horizon.is_none();
    if kept.len() as u64 == count && !needs_horizon {
        stats.records_written += count;
        return Ok(Filtered::Unchanged);
    }
    if kept.is_empty() {
        if retention == BatchRetention::RetainEmpty {
            *built = empty_batch(&header_of(batch));
            return Ok(Filtered::Rebuilt);
        }
        return Ok(Filtered::Dropped);
    }
    stats.records_written += kept.len() as u64;
    let new_horizon = if needs_horizon {
        Some(ctx.now_ms.saturating_add(ctx.delete_retention_ms))
    } else {
        horizon
    };
    rebuild(batch, &kept, new_horizon, built)?;
    Ok(Filtered::Rebuilt)
}

/// Re-encodes `kept` (records of `batch`) into `built`: the batch's base offset, last
/// offset (so producer sequences still line up, as Kafka overrides it), producer fields,
/// leader epoch, codec and timestamp type, with `horizon` stamped when given.
fn rebuild(
    batch: &Batch<'_>,
    kept: &[Record<'_>],
    horizon: Option<i64>,
    built: &mut Vec<u8>,
) -> Result<()> {
    let opts = BatchOptions {
        compression: batch.compression()?,
        timestamp_type: batch.timestamp_type(),
        log_append_time: batch.max_timestamp(),
        base_offset: batch.base_offset(),
        partition_leader_epoch: batch.partition_leader_epoch(),
        producer_id: batch.producer_id(),
        producer_epoch: batch.producer_epoch(),
        base_sequence: batch.base_sequence(),
        transactional: batch.is_transactional(),
        delete_horizon: horizon,
    };
    let mut b = BatchBuilder::with_buffer(opts, std::mem::take(built));
    if batch.is_control() {
        b.set_control();
    }
    for r in kept {
        b.append_record(r)?;
    }
    let mut bytes = b.build()?;
    put(
        &mut bytes,
        LAST_OFFSET_DELTA_AT,
        &batch.last_offset_delta().to_be_bytes(),
    );
    fix_crc(&mut bytes);
    *built = bytes;
    Ok(())
}

/// A batch with no records in place of one whose records all went: same base offset, last
/// offset, producer id, epoch and sequence, leader epoch, transactional and control bits,
/// and both timestamps set to its max timestamp (Kafka's `writeEmptyHeader`, used to keep a
/// producer's last batch).
///
/// The cleaner also keeps one for a group's last batch, so a cleaned segment always ends at
/// the offset the segments it replaces ended: the next segment still starts exactly where
/// it ends (what recovery checks), and an interrupted swap finds which old segments the
/// `.swap` file covers from its last offset.
pub(super) fn empty_batch(header: &[u8; BATCH_HEADER_SIZE]) -> Vec<u8> {
    let mut out = header.to_vec();
    let old = Attributes(be_i16(&out, ATTRIBUTES_AT));
    let attrs = Attributes::new(
        Compression::None,
        old.timestamp_type(),
        old.is_transactional(),
        old.is_control(),
        false,
    );
    let max_timestamp = be_i64(&out, MAX_TIMESTAMP_AT);
    let length = (BATCH_HEADER_SIZE - LOG_OVERHEAD) as i32;
    put(&mut out, BATCH_LENGTH_AT, &length.to_be_bytes());
    put(&mut out, ATTRIBUTES_AT, &attrs.0.to_be_bytes());
    put(&mut out, BASE_TIMESTAMP_AT, &max_timestamp.to_be_bytes());
    put(&mut out, RECORD_COUNT_AT, &0i32.to_be_bytes());
    if attrs.timestamp_type() == TimestampType::LogAppendTime {
        put(&mut out, MAX_TIMESTAMP_AT, &max_timestamp.to_be_bytes());
    }
    fix_crc(&mut out);
    out
}

/// The first [`BATCH_HEADER_SIZE`] bytes of `batch`.
fn header_of(batch: &Batch<'_>) -> [u8; BATCH_HEADER_SIZE] {
    let mut header = [0u8; BATCH_HEADER_SIZE];
    if let Some(h) = batch.as_bytes().get(..BATCH_HEADER_SIZE) {
        header.copy_from_slice(h);
    }
    header
}

fn fix_crc(bytes: &mut [u8]) {
    let crc = crate::record::crc::crc32c(bytes.get(ATTRIBUTES_AT..).unwrap_or_default());
    put(bytes, CRC_AT, &crc.to_be_bytes());
}
