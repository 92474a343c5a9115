//! Offset lookup by time, with Kafka's ListOffsets semantics: the first offset whose record
//! is stamped at or after a time, the earliest and latest offsets, and the record with the
//! largest timestamp (KIP-734).
//!
//! Timestamps are not monotonic, so segments cannot be binary-searched by their largest
//! timestamps; Kafka scans them for the first whose largest timestamp reaches the target.
//! The same segment is the first whose *running maximum* of largest timestamps reaches it,
//! and running maxima never decrease: [`SegmentTimes`] keeps them for the sealed segments of
//! a segment list (built once, on the first lookup, shared by every view of that list), so
//! finding the segment is a binary search. Within it the time index and the offset index
//! lead to the batch, and only that batch is read, into a reused buffer.

use std::cell::RefCell;
use std::sync::{Arc, OnceLock};

use super::{Log, View};
use crate::error::{Error, Result};
use crate::io::AlignedBuf;
use crate::record::{Batch, BATCH_HEADER_SIZE, NO_TIMESTAMP};
use crate::segment::{BatchPos, Segment};

/// What a ListOffsets request asks for (Kafka's special timestamps -2, -1, -3, or a time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ListOffsetsSpec {
    /// The log start offset (Kafka's `EARLIEST_TIMESTAMP`, -2).
    Earliest,
    /// The log end offset (Kafka's `LATEST_TIMESTAMP`, -1).
    Latest,
    /// The first record with the largest timestamp in the log (`MAX_TIMESTAMP`, -3,
    /// KIP-734).
    MaxTimestamp,
    /// The first record at or above the log start offset stamped at or after this time.
    Timestamp(i64),
}

/// An answer to a ListOffsets request: an offset and the timestamp found there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct TimestampAndOffset {
    /// The offset.
    pub offset: i64,
    /// The record's timestamp; [`NO_TIMESTAMP`] (-1) for `Earliest` and `Latest`.
    pub timestamp: i64,
}

/// Largest timestamps of a segment list's sealed segments, and their running maxima.
#[derive(Debug, Default)]
pub(crate) struct SegmentTimes {
    largest: Box<[i64]>,
    running_max: Box<[i64]>,
}

/// A lazily built [`SegmentTimes`], shared by the views of one segment list.
pub(crate) type SegmentTimesCell = Arc<OnceLock<SegmentTimes>>;

/// A lookup's first read when the time index does not bound the batch sought: one offset
/// index interval (Kafka's default `index.interval.bytes`).
const FIRST_CHUNK: usize = 4096;
/// Read past the offset entry that bounds the batch sought, for that batch's tail: a
/// syscall costs as much as copying several KiB of page-cached bytes, so one read a little
/// too long beats a second one.
const TAIL: usize = 1024;
/// Reads double up to this when the scan goes on.
const MAX_CHUNK: usize = 32 * 1024;
const HEADER: u64 = BATCH_HEADER_SIZE as u64;

thread_local! {
    /// The chunk or batch a lookup reads, reused so lookups do not allocate.
    static BATCH_BUF: RefCell<AlignedBuf> = RefCell::new(AlignedBuf::new(MAX_CHUNK));
}

impl View {
    /// The sealed segments' largest timestamps, loading their time indexes on first use.
    fn segment_times(&self) -> Result<&SegmentTimes> {
        if let Some(t) = self.segment_times.get() {
            return Ok(t);
        }
        let sealed = self.segments.len().saturating_sub(1);
        let mut largest = Vec::with_capacity(sealed);
        let mut running_max = Vec::with_capacity(sealed);
        let mut max = i64::MIN;
        for seg in self.segments.iter().take(sealed) {
            let t = seg.max_timestamp()?;
            max = max.max(t);
            largest.push(t);
            running_max.push(max);
        }
        // Another reader may have filled the cell meanwhile: either copy is the same.
        Ok(self.segment_times.get_or_init(|| SegmentTimes {
            largest: largest.into(),
            running_max: running_max.into(),
        }))
    }

    /// Largest timestamp of segment `i`: from the cache for sealed ones, from the write
    /// state for the active one.
    fn largest_timestamp(&self, times: &SegmentTimes, i: usize) -> Result<i64> {
        match times.largest.get(i) {
            Some(&t) => Ok(t),
            None => self
                .segments
                .get(i)
                .map_or(Ok(NO_TIMESTAMP), |s| s.max_timestamp()),
        }
    }

    /// Index of the first segment holding offsets at or above the log start offset.
    fn first_live_segment(&self) -> usize {
        self.segment_index(self.log_start_offset).unwrap_or(0)
    }
}

impl Log {
    /// Answers a ListOffsets request as Kafka's `UnifiedLog.fetchOffsetByTimestamp` does;
    /// `None` when no record qualifies (a time later than every record, or an empty log
    /// for `MaxTimestamp`).
    ///
    /// ```
    /// use streamlog::{Compression, ListOffsetsSpec, Log, LogConfig, OwnedRecord};
    /// let dir = tempfile::tempdir()?;
    /// let log = Log::open(dir.path(), LogConfig::default())?;
    /// let records: Vec<_> = [300, 100, 500, 200]
    ///     .iter()
    ///     .map(|&t| OwnedRecord::new(t, None, Some(b"v")))
    ///     .collect();
    /// log.append_records(&records, Compression::None)?;
    /// let at = |spec| log.list_offsets(spec).map(|r| r.map(|r| (r.offset, r.timestamp)));
    /// assert_eq!(at(ListOffsetsSpec::Timestamp(150))?, Some((0, 300)));
    /// assert_eq!(at(ListOffsetsSpec::Timestamp(400))?, Some((2, 500)));
    /// assert_eq!(at(ListOffsetsSpec::Timestamp(501))?, None);
    /// assert_eq!(at(ListOffsetsSpec::MaxTimestamp)?, Some((2, 500)));
    /// assert_eq!(at(ListOffsetsSpec::Earliest)?, Some((0, -1)));
    /// assert_eq!(at(ListOffsetsSpec::Latest)?, Some((4, -1)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn list_offsets(&self, spec: ListOffsetsSpec) -> Result<Option<TimestampAndOffset>> {
        let view = self.view();
        let found = match spec {
            ListOffsetsSpec::Earliest => Some((view.log_start_offset, NO_TIMESTAMP)),
            ListOffsetsSpec::Latest => Some((view.log_end_offset, NO_TIMESTAMP)),
            ListOffsetsSpec::Timestamp(t) => self.offset_for_timestamp_in(&view, t)?,
            ListOffsetsSpec::MaxTimestamp => self.max_timestamp_in(&view)?,
        };
        Ok(found.map(|(offset, timestamp)| TimestampAndOffset { offset, timestamp }))
    }

    /// The first offset at or above the log start offset whose record's timestamp is at or
    /// after `timestamp`, with that timestamp (Kafka's ListOffsets by timestamp), found
    /// through the time indexes; `None` when no record is that late.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<(i64, i64)>> {
        let view = self.view();
        self.offset_for_timestamp_in(&view, timestamp)
    }

    fn offset_for_timestamp_in(&self, view: &View, timestamp: i64) -> Result<Option<(i64, i64)>> {
        let times = view.segment_times()?;
        // The first segment whose largest timestamp reaches the target is the first whose
        // running maximum does; the active segment when no sealed one does.
        let first = times.running_max.partition_point(|&m| m < timestamp);
        self.search_from(view, times, first.max(view.first_live_segment()), timestamp)
    }

    /// The first record at or above the log start offset stamped at or after `timestamp`,
    /// in segment `from` or later.
    fn search_from(
        &self,
        view: &View,
        times: &SegmentTimes,
        from: usize,
        timestamp: i64,
    ) -> Result<Option<(i64, i64)>> {
        for i in from..view.segments.len() {
            if view.largest_timestamp(times, i)? < timestamp {
                continue;
            }
            let Some(seg) = view.segments.get(i) else {
                break;
            };
            // A batch can qualify by its max timestamp yet hold no record that does (the
            // late records lie below the log start offset): the search then goes on after
            // it, in this segment and then the next ones.
            if let Some(found) = self.search_segment(view, i, seg, timestamp)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// The first record of segment `i` at or above the log start offset stamped at or after
    /// `timestamp`. The time index bounds where the batch sought lies (after the floor
    /// entry's batch, at or before the next entry's), so the bytes between are read in one
    /// `pread` (a syscall costs as much as copying several KiB here) and the batch is
    /// decoded from them: one read per lookup on the bench's logs, against 1.1 to 1.9 with
    /// chunks of 4 KiB doubling. A batch that qualifies by its max timestamp yet holds no
    /// record that does (the late records lie below the log start offset) sends the scan on.
    fn search_segment(
        &self,
        view: &View,
        i: usize,
        seg: &Segment,
        timestamp: i64,
    ) -> Result<Option<(i64, i64)>> {
        let end = view.readable_size(i);
        let start = view.log_start_offset;
        let ix = seg.indexes()?;
        // The last time entry at or below the target: no batch before its offset's batch
        // reaches the target. The next entry's batch does, so the batch sought lies at or
        // before the offset entry that follows it: reading up to there (and a little more,
        // for that batch's tail) in one go usually takes a single read.
        let time = &ix.time;
        let next = time.floor_time(timestamp).map_or(0, |f| f + 1);
        let by_time = match next.checked_sub(1) {
            Some(f) => seg.index_position(
                seg.base_offset() + i64::from(time.time_entry(f).relative_offset),
            )?,
            None => 0,
        };
        let from = by_time.max(seg.index_position(start)?);
        let reach = (next < time.len())
            .then(|| {
                let relative = i64::from(time.time_entry(next).relative_offset);
                let offsets = &ix.offset;
                let ceil = match offsets.floor_offset(relative) {
                    Some(k) if i64::from(offsets.offset_entry(k).relative_offset) == relative => k,
                    Some(k) => k + 1,
                    None => 0,
                };
                (ceil < offsets.len()).then(|| u64::from(offsets.offset_entry(ceil).position))
            })
            .flatten();
        let first_read = reach.map_or(FIRST_CHUNK, |p| {
            usize::try_from(p.saturating_sub(from))
                .unwrap_or(MAX_CHUNK)
                .saturating_add(TAIL)
                .clamp(TAIL, MAX_CHUNK)
        });
        let decode = |batch: &Batch<'_>| -> Result<Option<(i64, i64)>> {
            let records = batch.records_with(&self.config().decode_limits)?;
            for r in records.iter() {
                let r = r?;
                if r.timestamp >= timestamp && r.offset >= start {
                    return Ok(Some((r.offset, r.timestamp)));
                }
            }
            Ok(None)
        };
        let run = |buf: &mut AlignedBuf| -> Result<Option<(i64, i64)>> {
            let mut pos = from;
            // Bytes of the file from `chunk_start` held at the front of `buf`.
            let (mut chunk_start, mut chunk_len) = (from, 0u64);
            let mut want = first_read;
            while pos < end {
                if pos + HEADER > chunk_start + chunk_len {
                    if end - pos < HEADER {
                        return Err(Error::CorruptSegment {
                            path: seg.log_path().to_path_buf(),
                            position: pos,
                            reason: "partial batch header".into(),
                        });
                    }
                    chunk_len = (end - pos).min(want as u64);
                    buf.resize(chunk_len as usize);
                    seg.read_exact(buf.as_mut_slice(), pos)?;
                    chunk_start = pos;
                    want = (want * 2).min(MAX_CHUNK);
                }
                let at = (pos - chunk_start) as usize;
                let header = buf.as_slice().get(at..).unwrap_or_default();
                let b = seg.parse_batch_header(header, pos, end)?;
                if b.max_timestamp >= timestamp && b.last_offset >= start {
                    let found = if pos + b.size <= chunk_start + chunk_len {
                        let bytes = buf
                            .as_slice()
                            .get(at..at + b.size as usize)
                            .unwrap_or_default();
                        decode(&Batch::new(bytes)?)?
                    } else {
                        // The batch runs past the chunk: read a chunk from its start, the
                        // whole batch at least, which the scan continues in if need be.
                        chunk_len = b.size.max((end - pos).min(want as u64));
                        buf.resize(usize::try_from(chunk_len).map_err(|_| {
                            Error::TooLargeForMemory {
                                what: "batch",
                                size: chunk_len,
                            }
                        })?);
                        seg.read_exact(buf.as_mut_slice(), pos)?;
                        chunk_start = pos;
                        let bytes = buf.as_slice().get(..b.size as usize).unwrap_or_default();
                        decode(&Batch::new(bytes)?)?
                    };
                    if found.is_some() {
                        return Ok(found);
                    }
                }
                pos += b.size;
            }
            Ok(None)
        };
        BATCH_BUF.with(|cell| match cell.try_borrow_mut() {
            Ok(mut buf) => run(&mut buf),
            Err(_) => run(&mut AlignedBuf::new(MAX_CHUNK)),
        })
    }

    /// Reads batch `b` of `seg` into the thread's reused buffer and calls `f` with it.
    fn with_batch<T>(
        &self,
        seg: &Segment,
        b: &BatchPos,
        f: impl FnOnce(&Batch<'_>) -> Result<T>,
    ) -> Result<T> {
        let len = usize::try_from(b.size).map_err(|_| Error::TooLargeForMemory {
            what: "batch",
            size: b.size,
        })?;
        let run = |buf: &mut AlignedBuf| {
            buf.resize(len);
            seg.read_exact(buf.as_mut_slice(), b.position)?;
            f(&Batch::new(buf.as_slice())?)
        };
        BATCH_BUF.with(|cell| match cell.try_borrow_mut() {
            Ok(mut buf) => run(&mut buf),
            Err(_) => run(&mut AlignedBuf::new(len)),
        })
    }

    /// The first record at or above the log start offset with the largest timestamp of all
    /// such records (KIP-734).
    fn max_timestamp_in(&self, view: &View) -> Result<Option<(i64, i64)>> {
        let times = view.segment_times()?;
        let first = view.first_live_segment();
        let count = view.segments.len();
        // The largest timestamp after the first live segment, and the first segment with it.
        let mut later: Option<(i64, usize)> = None;
        for i in first + 1..count {
            let t = view.largest_timestamp(times, i)?;
            if later.is_none_or(|(m, _)| t > m) {
                later = Some((t, i));
            }
        }
        // The first live segment may start below the log start offset: its largest
        // timestamp may belong to a record no longer in the log.
        if let Some(seg) = view.segments.get(first) {
            let largest = view.largest_timestamp(times, first)?;
            if later.is_none_or(|(m, _)| largest >= m) {
                if let Some(found) = self.search_segment(view, first, seg, largest)? {
                    return Ok(Some(found));
                }
                // Its largest timestamp lies below the start: find the live maximum.
                if let Some(live) = self.live_max_timestamp(view, first, seg)? {
                    if later.is_none_or(|(m, _)| live >= m) {
                        return self.search_segment(view, first, seg, live);
                    }
                }
            }
        }
        match later {
            Some((m, i)) => self.search_from(view, times, i, m),
            None => Ok(None),
        }
    }

    /// The largest timestamp of the records of segment `i` at or above the log start
    /// offset, by a scan of its batch headers from there (decoding only the batch the start
    /// falls in). Needed only when the segment's largest timestamp lies below the start.
    fn live_max_timestamp(&self, view: &View, i: usize, seg: &Segment) -> Result<Option<i64>> {
        let start = view.log_start_offset;
        let end = view.readable_size(i);
        let mut batches = Vec::new();
        let mut max: Option<i64> = None;
        seg.scan(seg.index_position(start)?, end, |b| {
            if b.last_offset >= start {
                if b.base_offset >= start {
                    max = Some(max.map_or(b.max_timestamp, |m| m.max(b.max_timestamp)));
                } else {
                    batches.push(b);
                }
            }
            std::ops::ControlFlow::Continue(())
        })?;
        for b in batches {
            self.with_batch(seg, &b, |batch| {
                for r in batch.records_with(&self.config().decode_limits)?.iter() {
                    let r = r?;
                    if r.offset >= start {
                        max = Some(max.map_or(r.timestamp, |m| m.max(r.timestamp)));
                    }
                }
                Ok(())
            })?;
        }
        Ok(max)
    }
}

/// A fresh, empty cache for a new segment list.
pub(crate) fn new_segment_times() -> SegmentTimesCell {
    Arc::new(OnceLock::new())
}
