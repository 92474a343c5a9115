//! Walking a segment's batches: header scans for reads, and full validation for recovery.

use std::ops::ControlFlow;

use super::{IndexFile, Indexes, OffsetEntry, Segment, WriteState};
use crate::error::{Error, Result};
use crate::io::AlignedBuf;
use crate::record::{
    frames_declared_records_each, Batch, Batches, DecodeLimits, BATCH_HEADER_SIZE, FRAMING_LANES,
    LOG_OVERHEAD, NO_TIMESTAMP,
};

/// Where a batch sits in a segment, and the header fields a log needs without decoding it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchPos {
    pub position: u64,
    pub size: u64,
    pub base_offset: i64,
    pub last_offset: i64,
    pub max_timestamp: i64,
}

impl BatchPos {
    pub(crate) fn of(batch: &Batch<'_>, position: u64) -> Self {
        BatchPos {
            position,
            size: batch.size_in_bytes() as u64,
            base_offset: batch.base_offset(),
            last_offset: batch.last_offset(),
            max_timestamp: batch.max_timestamp(),
        }
    }
}

impl RecoveredSegment {
    /// Bytes of valid batches kept.
    pub(crate) fn valid_bytes(&self) -> u64 {
        self.file_len - self.truncated_bytes
    }
}

/// What recovery found in one segment.
#[derive(Debug)]
pub(crate) struct RecoveredSegment {
    /// The segment's base offset.
    pub base_offset: i64,
    /// Bytes cut off after the last valid batch.
    pub truncated_bytes: u64,
    /// The file's length before recovery.
    pub file_len: u64,
    /// Bytes of the file the scan read: all of it, or what follows a trusted position.
    pub scanned_bytes: u64,
    /// Offset after the last valid batch, if any batch is valid.
    pub next_offset: Option<i64>,
    /// Fresh indexes (writable, not trimmed).
    pub indexes: Indexes,
    /// Write state for appending after the last valid batch.
    pub write_state: WriteState,
}

/// A durable position inside a segment that recovery may start from: the end of the batch
/// at `batch_position`, whose base offset and stored CRC were recorded with it, and the
/// number of index entries (all for bytes before it) that were durable when it was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ResumePosition {
    /// Byte position of the recorded batch.
    pub batch_position: u64,
    /// Its base offset.
    pub batch_base_offset: i64,
    /// Its stored CRC-32C.
    pub batch_crc: u32,
    /// Byte position where it ends: recovery scans from here.
    pub position: u64,
    /// The offset after it.
    pub next_offset: i64,
    /// Offset-index entries for the bytes before `position`.
    pub offset_entries: usize,
    /// Time-index entries for the offsets before `next_offset`.
    pub time_entries: usize,
}

/// Bytes a header scan reads at a time when batches are small: several headers a read.
const SCAN_CHUNK: usize = 16 * 1024;
/// A scan's first read: a few headers when batches are small, and little more than one when
/// they are large. Reads of page-cached bytes that are not in the CPU's caches cost about
/// 0.6 µs a KiB on our VM on top of the call, so a bigger first read would slow lookups.
const FIRST_READ: usize = 512;
/// Batches at least this large are followed by reading just the next header: a whole chunk
/// would hold at most a few headers, and copying it costs more than the extra reads.
const LARGE_BATCH: usize = SCAN_CHUNK / 4;

thread_local! {
    /// The scan buffer, reused so a scan neither allocates nor zeroes 16 KiB; 64-byte
    /// aligned because `read()` into unaligned memory is several times slower.
    static SCAN_BUF: std::cell::RefCell<AlignedBuf> =
        std::cell::RefCell::new(AlignedBuf::new(SCAN_CHUNK));
}
/// Recovery reads this much at a time: small enough that the bytes `read()` copied are
/// still in the core's 1 MiB L2 when the CRC and the framing walk read them (an 8 MiB chunk
/// made recovery 1.4-1.5x a bare read + CRC; 1 MiB about 1.0x, measured in thread CPU
/// time), and, like Kafka's default `max.message.bytes`, at least one typical large batch.
const RECOVERY_CHUNK: usize = 1 << 20;

impl Segment {
    fn corrupt(&self, position: u64, reason: impl Into<String>) -> Error {
        Error::CorruptSegment {
            path: self.log_path().to_path_buf(),
            position,
            reason: reason.into(),
        }
    }

    /// Calls `f` with the header of each batch from byte `from` to byte `end`, stopping when
    /// `f` breaks. Checks only the frame (length, magic): the bytes were validated on append.
    pub(crate) fn scan(
        &self,
        from: u64,
        end: u64,
        mut f: impl FnMut(BatchPos) -> ControlFlow<()>,
    ) -> Result<()> {
        SCAN_BUF.with(|cell| match cell.try_borrow_mut() {
            Ok(mut buf) => self.scan_with(buf.as_mut_slice(), from, end, &mut f),
            // Only if `f` itself scans: give the inner scan a buffer of its own.
            Err(_) => self.scan_with(
                AlignedBuf::new(SCAN_CHUNK).as_mut_slice(),
                from,
                end,
                &mut f,
            ),
        })
    }

    /// [`Segment::scan`] reading through `buf` (at least `BATCH_HEADER_SIZE` bytes).
    ///
    /// Reads only what headers need: after a batch of `LARGE_BATCH` bytes or more the next
    /// header is far away, so just that header is read; after smaller ones a whole chunk,
    /// which holds the next several headers.
    fn scan_with(
        &self,
        buf: &mut [u8],
        from: u64,
        end: u64,
        f: &mut impl FnMut(BatchPos) -> ControlFlow<()>,
    ) -> Result<()> {
        let mut pos = from;
        let mut chunk_start = from;
        let mut chunk_len = 0usize;
        let mut want = FIRST_READ;
        while pos < end {
            let need = BATCH_HEADER_SIZE as u64;
            if end - pos < need {
                return Err(self.corrupt(pos, "partial batch header"));
            }
            if pos + need > chunk_start + chunk_len as u64 {
                let n = usize::try_from((end - pos).min(want as u64))
                    .unwrap_or(want)
                    .clamp(BATCH_HEADER_SIZE, buf.len().max(BATCH_HEADER_SIZE));
                let dst = buf.get_mut(..n).unwrap_or_default();
                self.read_exact(dst, pos)?;
                chunk_start = pos;
                chunk_len = n;
            }
            let at = (pos - chunk_start) as usize;
            let header = buf.get(at..at + BATCH_HEADER_SIZE).unwrap_or_default();
            let b = parse_header(header).ok_or_else(|| self.corrupt(pos, "bad batch header"))?;
            let size = b.0;
            if size > end - pos {
                return Err(self.corrupt(pos, "batch runs past the end of the segment"));
            }
            let bp = BatchPos {
                position: pos,
                size,
                base_offset: b.1,
                last_offset: b.2,
                max_timestamp: b.3,
            };
            if f(bp).is_break() {
                return Ok(());
            }
            pos += size;
            want = if size >= LARGE_BATCH as u64 {
                BATCH_HEADER_SIZE
            } else {
                SCAN_CHUNK
            };
        }
        Ok(())
    }

    /// The batch whose header starts `header` (at least `BATCH_HEADER_SIZE` bytes read
    /// from byte `position`), checked as [`Segment::scan`] checks frames: for callers that
    /// read batches into buffers of their own.
    pub(crate) fn parse_batch_header(
        &self,
        header: &[u8],
        position: u64,
        end: u64,
    ) -> Result<BatchPos> {
        let (size, base_offset, last_offset, max_timestamp) =
            parse_header(header).ok_or_else(|| self.corrupt(position, "bad batch header"))?;
        if size > end.saturating_sub(position) {
            return Err(self.corrupt(position, "batch runs past the end of the segment"));
        }
        Ok(BatchPos {
            position,
            size,
            base_offset,
            last_offset,
            max_timestamp,
        })
    }

    /// The first batch, if the segment holds one.
    pub(crate) fn first_batch(&self) -> Result<Option<BatchPos>> {
        let mut first = None;
        self.scan(0, self.size(), |b| {
            first = Some(b);
            ControlFlow::Break(())
        })?;
        Ok(first)
    }

    /// The first batch whose last offset is at least `offset`, below byte `end`.
    pub(crate) fn find_batch(&self, offset: i64, end: u64) -> Result<Option<BatchPos>> {
        let offsets = &self.indexes()?.offset;
        let relative = offset.saturating_sub(self.base_offset());
        let floor = offsets.floor_offset(relative);
        // The first indexed batch ending at or after `offset` is the one sought when it also
        // starts at or before it: every batch before it ends below its base offset. That
        // takes one header read where scanning from the floor entry's batch (which ends
        // before `offset` unless it ends exactly there) takes two or more.
        let candidate = match floor {
            Some(i) if i64::from(offsets.offset_entry(i).relative_offset) == relative => i,
            Some(i) => i + 1,
            None => 0,
        };
        if candidate < offsets.len() {
            let position = u64::from(offsets.offset_entry(candidate).position);
            if let Some(b) = self.batch_at(position, end)? {
                if b.base_offset <= offset && offset <= b.last_offset {
                    return Ok(Some(b));
                }
            }
        }
        let from = floor.map_or(0, |i| u64::from(offsets.offset_entry(i).position));
        let mut found = None;
        self.scan(from, end, |b| {
            if b.last_offset >= offset {
                found = Some(b);
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })?;
        Ok(found)
    }

    /// The batch whose header is at `position`, if a whole valid frame starts there below
    /// byte `end` (`None` otherwise: the caller falls back to a scan, which reports damage
    /// where it meets it).
    pub(super) fn batch_at(&self, position: u64, end: u64) -> Result<Option<BatchPos>> {
        if end.saturating_sub(position) < BATCH_HEADER_SIZE as u64 {
            return Ok(None);
        }
        let mut header = [0u8; BATCH_HEADER_SIZE];
        self.read_exact(&mut header, position)?;
        Ok(
            parse_header(&header).and_then(|(size, base_offset, last_offset, max_timestamp)| {
                (size <= end - position).then_some(BatchPos {
                    position,
                    size,
                    base_offset,
                    last_offset,
                    max_timestamp,
                })
            }),
        )
    }

    /// Where a read of whole batches starting with `first` can skip to through the offset
    /// index instead of reading every header in between: the start of the last indexed
    /// batch that ends by byte `limit` and whose last offset is below `bound`, when that is
    /// past `first`. Every batch from `first` through that one is within both limits, since
    /// positions and offsets only increase; scanning on from there finds where the read ends.
    pub(crate) fn indexed_batch_within(
        &self,
        first: &BatchPos,
        limit: u64,
        bound: i64,
    ) -> Result<Option<u64>> {
        let offsets = &self.indexes()?.offset;
        // Each batch before the last entry starting by `limit` ends by `limit`.
        let Some(by_bytes) = offsets.floor_position(limit).and_then(|m| m.checked_sub(1)) else {
            return Ok(None);
        };
        // Entries hold a batch's last offset: below `bound` means at most `bound - 1`.
        let relative_bound = bound.saturating_sub(self.base_offset()).saturating_sub(1);
        let Some(by_offset) = offsets.floor_offset(relative_bound) else {
            return Ok(None);
        };
        let position = u64::from(offsets.offset_entry(by_bytes.min(by_offset)).position);
        Ok((position > first.position).then_some(position))
    }

    /// Checks that the last entries of a sealed segment's indexes describe its `.log` as it
    /// is. After a crash the indexes of segments below the recovery point are trusted as
    /// they are on disk, and their writes are not synced with the log's: a truncation's cut
    /// can be lost from an index while the log's is kept, leaving whole, increasing entries
    /// for bytes that were cut and rewritten; and a time index can lose its final entry (the
    /// segment's largest timestamp), which would make timestamp lookups skip the segment.
    /// Stale entries follow the valid ones, so the last entries tell. A scan that meets
    /// damage judges nothing: reads report the damage where they reach it.
    pub(super) fn check_last_entries(
        &self,
        offset: &IndexFile,
        time: &IndexFile,
        size: u64,
    ) -> Result<()> {
        let corrupt = |index: &IndexFile, reason| {
            Err(Error::CorruptIndex {
                path: index.path().to_path_buf(),
                reason,
            })
        };
        let base = self.base_offset();
        // The last offset entry must point at a batch starting at or below its offset
        // (Kafka's older appends indexed the first batch of a multi-batch append under the
        // last offset of all of them), so a lookup scanning from it cannot miss.
        let mut from = 0;
        if let Some(e) = offset.last_offset_entry() {
            from = u64::from(e.position);
            let target = base + i64::from(e.relative_offset);
            if self
                .batch_at(from, size)?
                .is_none_or(|b| b.base_offset > target)
            {
                return corrupt(offset, "the last entry does not point at a batch");
            }
        }
        // No batch after the last offset entry may be later than the last time entry.
        let mut tail_max = NO_TIMESTAMP;
        let scanned = self.scan(from, size, |b| {
            tail_max = tail_max.max(b.max_timestamp);
            ControlFlow::Continue(())
        });
        let Some(t) = time.last_time_entry() else {
            if scanned.is_ok() && tail_max > NO_TIMESTAMP {
                return corrupt(time, "empty for a segment with timestamps");
            }
            return Ok(());
        };
        if scanned.is_ok() && tail_max > t.timestamp {
            return corrupt(
                time,
                "the last entry is below the segment's largest timestamp",
            );
        }
        // And the last time entry's offset is in a batch of exactly its timestamp.
        let target = base + i64::from(t.relative_offset);
        let from = offset
            .lookup_offset(i64::from(t.relative_offset))
            .map_or(0, |e| u64::from(e.position));
        let mut holds = None;
        let scanned = self.scan(from, size, |b| {
            if b.last_offset < target {
                return ControlFlow::Continue(());
            }
            holds = Some(b.base_offset <= target && b.max_timestamp == t.timestamp);
            ControlFlow::Break(())
        });
        if scanned.is_ok() && holds != Some(true) {
            return corrupt(time, "the last entry does not match its batch");
        }
        Ok(())
    }

    /// Byte position to start scanning from for `offset` (the offset index's floor entry).
    pub(crate) fn index_position(&self, offset: i64) -> Result<u64> {
        let ix = self.indexes()?;
        Ok(ix
            .offset
            .lookup_offset(offset.saturating_sub(self.base_offset()))
            .map_or(0, |e| u64::from(e.position)))
    }

    /// Scans and validates every batch (frame, CRC, header fields, records, offsets
    /// increasing within the segment) and rebuilds both indexes as Kafka builds them on
    /// append. `on_batch` sees each valid batch in order. The file is not cut here: the
    /// caller judges the damage first (below the recovery point it may refuse to open, and
    /// then the bytes must still be there), then cuts with [`Segment::cut_invalid_tail`].
    pub(crate) fn recover(
        &self,
        on_batch: &mut dyn FnMut(&Batch<'_>) -> Result<()>,
    ) -> Result<RecoveredSegment> {
        self.scan_and_index(on_batch)
    }

    /// Cuts the `.log` file after the valid batches `rec` found.
    pub(crate) fn cut_invalid_tail(&self, rec: &RecoveredSegment) -> Result<()> {
        let valid = rec.valid_bytes();
        if valid < rec.file_len {
            self.log_file()
                .set_len(valid)
                .map_err(|e| Error::io(self.log_path(), e))?;
        }
        self.size.store(valid, std::sync::atomic::Ordering::Release);
        Ok(())
    }

    /// Rebuilds the indexes of a sealed segment from its valid batches without cutting the
    /// file: damage in the middle of a log is for recovery (or an operator) to judge, not
    /// for a reader that happened to need an index. Reads past the damage fail cleanly.
    pub(crate) fn rebuild_indexes(&self) -> Result<RecoveredSegment> {
        self.scan_and_index(&mut |_| Ok(()))
    }

    fn scan_and_index(
        &self,
        on_batch: &mut dyn FnMut(&Batch<'_>) -> Result<()>,
    ) -> Result<RecoveredSegment> {
        // Both indexes start empty: the scan below refills them from the batches it finds.
        let indexes = self.open_writable_indexes(0, 0)?;
        self.scan_and_index_from(0, None, indexes, WriteState::default(), on_batch)
    }

    /// Recovers from a durable position inside the segment instead of its first byte: the
    /// end of the batch `at` describes, below which the bytes and the first index entries
    /// were made durable before `at` was recorded. Verifies first that the batch is there
    /// as recorded (frame, base offset, CRC) and that the kept index entries describe the
    /// bytes before it; `Ok(None)` when anything disagrees, and the caller scans the whole
    /// segment instead.
    pub(crate) fn recover_from(
        &self,
        at: &ResumePosition,
        on_batch: &mut dyn FnMut(&Batch<'_>) -> Result<()>,
    ) -> Result<Option<RecoveredSegment>> {
        let file_len = self
            .log_file()
            .len()
            .map_err(|e| Error::io(self.log_path(), e))?;
        let Some(state) = self.check_resume_position(at, file_len)? else {
            return Ok(None);
        };
        let indexes = self.open_writable_indexes(at.offset_entries, at.time_entries)?;
        let Some(state) = self.check_resume_indexes(at, &indexes, state)? else {
            return Ok(None);
        };
        self.scan_and_index_from(at.position, Some(at.next_offset), indexes, state, on_batch)
            .map(Some)
    }

    /// The batch ending at `at.position` as recorded, and the write state at its end but
    /// for the index-derived fields; `None` when the segment disagrees.
    fn check_resume_position(
        &self,
        at: &ResumePosition,
        file_len: u64,
    ) -> Result<Option<WriteState>> {
        let Some(size) = at.position.checked_sub(at.batch_position) else {
            return Ok(None);
        };
        if at.position > file_len
            || size < BATCH_HEADER_SIZE as u64
            || at.next_offset <= self.base_offset()
            || at.next_offset - self.base_offset() > i64::from(u32::MAX)
        {
            return Ok(None);
        }
        // One batch: bounded by the file, which holds it whole.
        let Ok(len) = usize::try_from(size) else {
            return Ok(None);
        };
        let mut bytes = AlignedBuf::new(len);
        self.read_exact(bytes.as_mut_slice(), at.batch_position)?;
        let Ok(batch) = Batch::new(bytes.as_slice()) else {
            return Ok(None);
        };
        if batch.base_offset() != at.batch_base_offset
            || batch.crc() != at.batch_crc
            || batch.next_offset() != at.next_offset
            || batch.validate().is_err()
        {
            return Ok(None);
        }
        Ok(Some(WriteState {
            rolling_base_timestamp: self.first_batch()?.map(|b| b.max_timestamp),
            ..WriteState::default()
        }))
    }

    /// Checks the kept index entries against the bytes before `at.position` (increasing,
    /// inside them, the last offset entry on a batch ending at its offset) and derives the
    /// write state there as an active segment's open does; `None` when they disagree.
    fn check_resume_indexes(
        &self,
        at: &ResumePosition,
        indexes: &Indexes,
        mut state: WriteState,
    ) -> Result<Option<WriteState>> {
        let base = self.base_offset();
        let max_relative = at.next_offset - 1 - base;
        let (offset, time) = (&indexes.offset, &indexes.time);
        if offset.len() != at.offset_entries || time.len() != at.time_entries {
            return Ok(None);
        }
        let mut prev: Option<OffsetEntry> = None;
        for i in 0..offset.len() {
            let e = offset.offset_entry(i);
            let increasing = prev
                .is_none_or(|p| e.relative_offset > p.relative_offset && e.position > p.position);
            if !increasing
                || u64::from(e.position) >= at.position
                || i64::from(e.relative_offset) > max_relative
            {
                return Ok(None);
            }
            prev = Some(e);
        }
        let mut prev_time: Option<super::TimeEntry> = None;
        for i in 0..time.len() {
            let t = time.time_entry(i);
            let increasing = prev_time.is_none_or(|p| {
                t.timestamp > p.timestamp && t.relative_offset >= p.relative_offset
            });
            if !increasing || i64::from(t.relative_offset) > max_relative {
                return Ok(None);
            }
            prev_time = Some(t);
        }
        if let Some(t) = prev_time {
            state.max_timestamp = t.timestamp;
            state.offset_of_max_timestamp = base + i64::from(t.relative_offset);
        }
        let last_index_pos = prev.map_or(0, |e| u64::from(e.position));
        if let Some(e) = prev {
            match self.batch_at(last_index_pos, at.position)? {
                Some(b) if b.last_offset == base + i64::from(e.relative_offset) => {}
                _ => return Ok(None),
            }
        }
        // The batches after the last entry: at most an index interval and one batch.
        let mut end = last_index_pos;
        let scanned = self.scan(last_index_pos, at.position, |b| {
            if b.max_timestamp > state.max_timestamp {
                state.max_timestamp = b.max_timestamp;
                state.offset_of_max_timestamp = b.last_offset;
            }
            end = b.position + b.size;
            ControlFlow::Continue(())
        });
        if scanned.is_err() || end != at.position {
            return Ok(None);
        }
        // Kafka's rule counts bytes from the last indexed batch's start.
        state.bytes_since_last_index_entry = at.position - last_index_pos;
        Ok(Some(state))
    }

    fn scan_and_index_from(
        &self,
        start: u64,
        mut next_offset: Option<i64>,
        indexes: Indexes,
        mut state: WriteState,
        on_batch: &mut dyn FnMut(&Batch<'_>) -> Result<()>,
    ) -> Result<RecoveredSegment> {
        let file_len = self
            .log_file()
            .len()
            .map_err(|e| Error::io(self.log_path(), e))?;
        let Indexes { offset, time } = indexes;
        let mut pos = start;
        // Sized to what is left: a small segment must not pay for allocating and zeroing a
        // whole chunk (recovering many small segments did, once per segment).
        let mut buf = AlignedBuf::new(recovery_buffer_len(
            file_len.saturating_sub(aligned_below(start)),
        ));
        let mut big = AlignedBuf::new(0);
        let limits = DecodeLimits {
            max_batch_bytes: usize::MAX,
            ..DecodeLimits::DEFAULT
        };
        'outer: while pos < file_len {
            // Each chunk after the first starts inside a batch cut by the previous one; read
            // from the page boundary below it (at most a page again) so that the file's
            // bytes and the buffer are aligned alike: `read()` copies a misaligned source
            // at about half the speed, which made the copy twice the CRC's time.
            let from = aligned_below(pos);
            let skip = (pos - from) as usize;
            let want =
                usize::try_from((file_len - from).min(buf.len() as u64)).unwrap_or(RECOVERY_CHUNK);
            let chunk = buf.as_mut_slice().get_mut(..want).unwrap_or_default();
            self.read_exact(chunk, from)?;
            let chunk = buf.as_slice().get(skip..want).unwrap_or_default();
            let mut batches = Batches::with_limits(chunk, limits);
            let mut consumed = 0u64;
            loop {
                // A group of whole batches from the chunk, checked together (CRCs, then the
                // framing walks in lockstep: see `record::framing`), then accepted in order.
                let mut group: [Option<Batch<'_>>; FRAMING_LANES] = [None; FRAMING_LANES];
                let mut stopped = None;
                for slot in group.iter_mut() {
                    match batches.next() {
                        Some(Ok(b)) => *slot = Some(b),
                        None => {
                            stopped = Some(None);
                            break;
                        }
                        Some(Err(e)) => {
                            stopped = Some(Some(e));
                            break;
                        }
                    }
                }
                let mut intact = [false; FRAMING_LANES];
                for (b, ok) in group.iter().flatten().zip(intact.iter_mut()) {
                    *ok = b.validate().is_ok();
                }
                let framed = frames_declared_records_each(group.iter().flatten());
                for ((batch, ok), framed) in group.iter().flatten().zip(intact).zip(framed) {
                    if !self.accept(
                        batch,
                        ok && framed != Some(false),
                        pos + consumed,
                        &mut next_offset,
                        &offset,
                        &time,
                        &mut state,
                        on_batch,
                    )? {
                        pos += consumed;
                        break 'outer;
                    }
                    consumed += batch.size_in_bytes() as u64;
                }
                match stopped {
                    // The group was full: on to the next.
                    None => {}
                    Some(None) => break,
                    Some(Some(Error::BatchTruncated { needed, .. }))
                        if pos + consumed + needed <= file_len && consumed > 0 =>
                    {
                        // The batch continues past this chunk: read again from its start.
                        break;
                    }
                    Some(Some(Error::BatchTruncated { needed, .. }))
                        if pos + consumed + needed <= file_len =>
                    {
                        // A single batch larger than the chunk: read it whole, into a
                        // buffer kept for the next one (no allocation and zeroing each).
                        // Also from the page boundary below it, as chunks are read.
                        let len = usize::try_from(needed).unwrap_or(usize::MAX);
                        let Some(padded) = len.checked_add(skip) else {
                            break 'outer;
                        };
                        if big.len() < padded {
                            big = AlignedBuf::new(padded);
                        }
                        let whole = big.as_mut_slice().get_mut(..padded).unwrap_or_default();
                        self.read_exact(whole, from)?;
                        let whole = big.as_slice().get(skip..padded).unwrap_or_default();
                        let (b, _) = match Batch::parse(whole, &limits) {
                            Ok(b) => b,
                            Err(_) => break 'outer,
                        };
                        let intact =
                            b.validate().is_ok() && b.frames_declared_records() != Some(false);
                        if !self.accept(
                            &b,
                            intact,
                            pos,
                            &mut next_offset,
                            &offset,
                            &time,
                            &mut state,
                            on_batch,
                        )? {
                            break 'outer;
                        }
                        consumed = needed;
                        break;
                    }
                    Some(Some(_)) => {
                        pos += consumed;
                        break 'outer;
                    }
                }
            }
            if consumed == 0 {
                break;
            }
            pos += consumed;
        }
        let valid = pos.min(file_len);
        Ok(RecoveredSegment {
            base_offset: self.base_offset(),
            truncated_bytes: file_len - valid,
            scanned_bytes: file_len - start.min(file_len),
            file_len,
            next_offset,
            indexes: Indexes { offset, time },
            write_state: state,
        })
    }

    /// Checks one batch during recovery and indexes it; false means "cut here". `intact`
    /// says whether its bytes passed the checks of the bytes alone: the CRC and header
    /// fields ([`Batch::validate`]) and, uncompressed, the records' framing against the
    /// header's count ([`Batch::frames_declared_records`]). A CRC only proves that some
    /// writer wrote these bytes: records that contradict the header's count would fail
    /// every reader after recovery kept them. Framing them is cheap; compressed records
    /// are left to the CRC and to readers.
    #[allow(clippy::too_many_arguments)]
    fn accept(
        &self,
        batch: &Batch<'_>,
        intact: bool,
        position: u64,
        next_offset: &mut Option<i64>,
        offset_index: &IndexFile,
        time_index: &IndexFile,
        state: &mut WriteState,
        on_batch: &mut dyn FnMut(&Batch<'_>) -> Result<()>,
    ) -> Result<bool> {
        if !intact {
            return Ok(false);
        }
        let base = self.base_offset();
        let expected_min = next_offset.unwrap_or(base);
        if batch.base_offset() < expected_min
            || batch.last_offset() - base > i64::from(i32::MAX)
            || position + batch.size_in_bytes() as u64 > u64::from(u32::MAX) + 1
        {
            return Ok(false);
        }
        on_batch(batch)?;
        let bp = BatchPos::of(batch, position);
        if state.rolling_base_timestamp.is_none() {
            state.rolling_base_timestamp = Some(bp.max_timestamp);
        }
        if bp.max_timestamp > state.max_timestamp {
            state.max_timestamp = bp.max_timestamp;
            state.offset_of_max_timestamp = bp.last_offset;
        }
        if state.bytes_since_last_index_entry > u64::from(self.config.index_interval_bytes) {
            offset_index.push_offset(OffsetEntry {
                relative_offset: (bp.last_offset - base) as u32,
                position: position as u32,
            });
            super::maybe_append_time(time_index, base, state);
            state.bytes_since_last_index_entry = 0;
        }
        state.bytes_since_last_index_entry += bp.size;
        *next_offset = Some(bp.last_offset + 1);
        Ok(true)
    }
}

/// The page boundary at or below byte `pos`: where recovery reads from.
fn aligned_below(pos: u64) -> u64 {
    pos & !(READ_ALIGN - 1)
}

/// Recovery's reads start on this boundary of the file (a page): the buffer is 64-byte
/// aligned, so source and destination of the kernel's copy then agree.
const READ_ALIGN: u64 = 4096;

/// Bytes of the buffer a recovery scan of a `file_len`-byte `.log` reads through: the
/// whole file when it is smaller than a chunk.
fn recovery_buffer_len(file_len: u64) -> usize {
    usize::try_from(file_len).map_or(RECOVERY_CHUNK, |len| len.min(RECOVERY_CHUNK))
}

/// (size, base offset, last offset, max timestamp) from a batch header, or `None` when the
/// frame is not a v2 batch.
fn parse_header(h: &[u8]) -> Option<(u64, i64, i64, i64)> {
    use crate::record::header::{
        BASE_OFFSET, BATCH_LENGTH, LAST_OFFSET_DELTA, MAGIC, MAX_TIMESTAMP,
    };
    let word = |at: usize, n: usize| -> Option<u64> {
        let s = h.get(at..at + n)?;
        Some(s.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    };
    let base = word(BASE_OFFSET, 8)? as i64;
    let length = word(BATCH_LENGTH, 4)? as u32 as i32;
    let magic = *h.get(MAGIC)? as i8;
    if magic != crate::record::MAGIC_V2 || length < (BATCH_HEADER_SIZE - LOG_OVERHEAD) as i32 {
        return None;
    }
    let last_delta = word(LAST_OFFSET_DELTA, 4)? as u32 as i32;
    let max_ts = word(MAX_TIMESTAMP, 8)? as i64;
    Some((
        length as u64 + LOG_OVERHEAD as u64,
        base,
        base.wrapping_add(i64::from(last_delta)),
        max_ts,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_buffer_is_sized_to_the_file() {
        assert_eq!(recovery_buffer_len(0), 0);
        assert_eq!(recovery_buffer_len(1024), 1024);
        assert_eq!(
            recovery_buffer_len(RECOVERY_CHUNK as u64 + 1),
            RECOVERY_CHUNK
        );
        assert_eq!(recovery_buffer_len(u64::MAX), RECOVERY_CHUNK);
    }
}
