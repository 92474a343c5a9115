//! Retention: deleting the oldest sealed segments by time (`retention.ms`), by size
//! (`retention.bytes`) and below the log start offset, as Kafka's `UnifiedLog` does; and the
//! per-segment summary a storage layer caches to plan maintenance cheaply.
//!
//! Kafka deletes a prefix of the log: the scan stops at the first segment that must be
//! kept, and the active segment is never deleted. The log start offset is advanced and
//! checkpointed before any file is removed, so a crash in the middle leaves a log whose
//! start offset already covers whatever remains of the deleted segments; the next open (or
//! the next pass, by the log-start-offset rule) finishes the job.

use std::sync::Arc;

use super::Log;
use crate::error::Result;
use crate::segment::Segment;

/// Which retention rule deleted a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RetentionRule {
    /// The whole segment lay below the log start offset.
    LogStartOffset,
    /// The partition held more than `retention.bytes`.
    Size,
    /// The segment's records were older than `retention.ms`.
    Time,
}

/// What [`Log::delete_retention_breached`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetentionOutcome {
    /// Segments deleted (all of them a prefix of the log).
    pub segments_deleted: usize,
    /// Bytes of `.log` files deleted.
    pub bytes_freed: u64,
    /// The log start offset afterwards.
    pub log_start_offset: i64,
    /// Segments deleted because they lay wholly below the log start offset.
    pub by_log_start_offset: usize,
    /// Segments deleted because the partition exceeded `retention.bytes`.
    pub by_size: usize,
    /// Segments deleted because their records were older than `retention.ms`.
    pub by_time: usize,
}

impl RetentionOutcome {
    /// The rules that deleted at least one segment, in the order Kafka applies them.
    pub fn rules_fired(&self) -> impl Iterator<Item = RetentionRule> + '_ {
        [
            (RetentionRule::LogStartOffset, self.by_log_start_offset),
            (RetentionRule::Size, self.by_size),
            (RetentionRule::Time, self.by_time),
        ]
        .into_iter()
        .filter(|&(_, n)| n > 0)
        .map(|(rule, _)| rule)
    }
}

/// A summary of one segment, cheap to keep per partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SegmentInfo {
    /// The segment's base offset (its file name).
    pub base_offset: i64,
    /// Bytes of batches in its `.log` file.
    pub size_bytes: u64,
    /// The largest record timestamp it holds ([`NO_TIMESTAMP`](crate::record::NO_TIMESTAMP),
    /// -1, when none), from its time index.
    pub largest_timestamp: i64,
    /// The offset after the segment: the next segment's base offset, or the log end offset
    /// for the active segment. Every offset the segment holds lies below it.
    pub end_offset: i64,
    /// Whether this is the active segment (the last, which takes appends).
    pub is_active: bool,
}

impl Log {
    /// A summary of every segment, oldest first. Sealed segments' largest timestamps come
    /// from their time indexes, which are loaded (mapped) on first use.
    ///
    /// ```
    /// use streamlog::{Compression, Log, LogConfig, OwnedRecord};
    /// let dir = tempfile::tempdir()?;
    /// let log = Log::open(dir.path(), LogConfig::default())?;
    /// log.append_records(&[OwnedRecord::new(1_000, None, Some(b"a"))], Compression::None)?;
    /// log.roll()?;
    /// let info = log.segments_info()?;
    /// assert_eq!(info.len(), 2);
    /// assert_eq!((info[0].largest_timestamp, info[0].end_offset), (1_000, 1));
    /// assert!(info[1].is_active && info[1].size_bytes == 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn segments_info(&self) -> Result<Vec<SegmentInfo>> {
        let view = self.view();
        let count = view.segments.len();
        let mut out = Vec::with_capacity(count);
        for (i, seg) in view.segments.iter().enumerate() {
            let is_active = i + 1 == count;
            out.push(SegmentInfo {
                base_offset: seg.base_offset(),
                size_bytes: view.readable_size(i),
                largest_timestamp: seg.max_timestamp()?,
                end_offset: view
                    .segments
                    .get(i + 1)
                    .map_or(view.log_end_offset, |s| s.base_offset()),
                is_active,
            });
        }
        Ok(out)
    }

    /// Deletes the oldest sealed segments that retention no longer keeps, as Kafka's
    /// `deleteOldSegments` does at `now_ms`:
    ///
    /// - **log start offset**: a segment whose successor starts at or below the log start
    ///   offset holds nothing readable;
    /// - **size** (`retention.bytes`): while the partition (active segment included) is
    ///   larger than the limit, its oldest segments go, as long as what remains is still at
    ///   least the limit;
    /// - **time** (`retention.ms`): a segment goes when `now_ms` minus its largest timestamp
    ///   exceeds the limit. A largest timestamp in the future (past `now_ms`) does not count:
    ///   the segment's age is then taken from when it was last written, the `.log` file's
    ///   modification time, and from the largest timestamp of the first later segment that
    ///   is not in the future (its records were appended after this segment was sealed),
    ///   whichever is earlier; with neither, the segment is kept, as Kafka keeps it.
    ///
    /// Size and time apply only when `cleanup.policy` includes `delete`. Segments go as a
    /// prefix: the first one that must be kept stops the pass. The active segment is never
    /// deleted. The log start offset moves to the first kept segment's base (if it was
    /// below) and is checkpointed before any file is removed. Kafka also keeps every segment
    /// that reaches the high watermark, which a `Log` does not know: a replicated log passes
    /// it to [`Log::delete_retention_breached_below`].
    ///
    /// ```
    /// use streamlog::{Compression, Log, LogConfig, OwnedRecord};
    /// let dir = tempfile::tempdir()?;
    /// let config = LogConfig::builder().retention_ms(60_000).build()?;
    /// let log = Log::open(dir.path(), config)?;
    /// log.append_records(&[OwnedRecord::new(1_000, None, Some(b"old"))], Compression::None)?;
    /// log.roll()?;
    /// log.append_records(&[OwnedRecord::new(100_000, None, Some(b"new"))], Compression::None)?;
    /// let outcome = log.delete_retention_breached(100_000)?;
    /// assert_eq!((outcome.segments_deleted, outcome.by_time), (1, 1));
    /// assert_eq!(log.log_start_offset(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn delete_retention_breached(&self, now_ms: i64) -> Result<RetentionOutcome> {
        self.delete_retention_breached_below(now_ms, None)
    }

    /// [`Log::delete_retention_breached`], deleting no segment whose offsets reach
    /// `high_watermark` (a segment goes only when the next one starts at or below it), as
    /// Kafka keeps the log start offset from passing the high watermark. `None`: no bound
    /// but the log's own [`Log::high_watermark`], which always applies.
    ///
    /// ```
    /// use streamlog::{Compression, Log, LogConfig, OwnedRecord};
    /// let dir = tempfile::tempdir()?;
    /// let config = LogConfig::builder().retention_ms(1).build()?;
    /// let log = Log::open(dir.path(), config)?;
    /// for _ in 0..3 {
    ///     log.append_records(&[OwnedRecord::new(0, None, Some(b"v"))], Compression::None)?;
    ///     log.roll()?;
    /// }
    /// // Segments 0, 1 and 2 are sealed and expired; only offsets below 1 are replicated.
    /// let outcome = log.delete_retention_breached_below(1_000, Some(1))?;
    /// assert_eq!((outcome.segments_deleted, log.log_start_offset()), (1, 1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn delete_retention_breached_below(
        &self,
        now_ms: i64,
        high_watermark: Option<i64>,
    ) -> Result<RetentionOutcome> {
        let (files, w) = self.lock_files()?;
        // Never past the log's own high watermark either (the log end offset under
        // `HighWatermarkPolicy::LogEnd`).
        let own = self.high_watermark();
        let high_watermark = Some(high_watermark.map_or(own, |hw| hw.min(own)));
        let mut outcome = RetentionOutcome {
            log_start_offset: w.log_start_offset,
            ..RetentionOutcome::default()
        };
        let deletes = self.config().cleanup_policy.deletes();
        let retention_ms = self.config().retention_ms.filter(|&ms| ms >= 0 && deletes);
        let retention_bytes = self.config().retention_bytes.filter(|_| deletes);
        let total: u64 = w.segments.iter().map(|s| s.size()).sum();
        // How far the partition is over `retention.bytes`.
        let mut excess = retention_bytes.map_or(0, |limit| total.saturating_sub(limit));
        let mut count = 0;
        let sealed = w.segments.len().saturating_sub(1);
        while count < sealed {
            let (Some(seg), Some(next)) = (w.segments.get(count), w.segments.get(count + 1)) else {
                break;
            };
            let size = seg.size();
            if high_watermark.is_some_and(|hw| next.base_offset() > hw) {
                break;
            }
            let rule = if next.base_offset() <= w.log_start_offset {
                RetentionRule::LogStartOffset
            } else if retention_bytes.is_some() && excess >= size && excess > 0 {
                RetentionRule::Size
            } else if retention_ms.is_some_and(|ms| {
                self.retention_timestamp(&w.segments, count, now_ms)
                    .is_some_and(|t| now_ms.saturating_sub(t) > ms)
            }) {
                RetentionRule::Time
            } else {
                break;
            };
            match rule {
                RetentionRule::LogStartOffset => outcome.by_log_start_offset += 1,
                RetentionRule::Size => outcome.by_size += 1,
                RetentionRule::Time => outcome.by_time += 1,
            }
            excess = excess.saturating_sub(size);
            count += 1;
        }
        if count == 0 {
            return Ok(outcome);
        }
        let new_start = w
            .segments
            .get(count)
            .map_or(w.log_start_offset, |s| s.base_offset())
            .max(w.log_start_offset);
        outcome.log_start_offset = new_start;
        let (deleted, bytes) = self.delete_prefix(&files, w, count, new_start)?;
        outcome.segments_deleted = deleted;
        outcome.bytes_freed = bytes;
        Ok(outcome)
    }

    /// The time retention measures segment `i`'s age from: its largest timestamp, unless
    /// that is missing or in the future (a producer's clock far ahead must not pin the
    /// segment, and every later one, for as long as it is ahead). Then the segment was last
    /// written no later than its file's modification time, nor than any timestamp stamped
    /// on a record appended after it was sealed; the earlier of the two that are known.
    fn retention_timestamp(&self, segments: &[Arc<Segment>], i: usize, now_ms: i64) -> Option<i64> {
        let seg = segments.get(i)?;
        // A time index that cannot be read keeps the segment: retention never deletes on
        // a guess.
        let largest = seg.max_timestamp().ok()?;
        let sane = |t: i64| (0..=now_ms).contains(&t);
        if sane(largest) {
            return Some(largest);
        }
        let modified = self
            .local
            .fs
            .modified_ms(seg.log_path())
            .ok()
            .flatten()
            .filter(|&t| t <= now_ms);
        let mut later = None;
        for s in segments.iter().skip(i + 1) {
            let t = s.max_timestamp().ok()?;
            if sane(t) {
                later = Some(t);
                break;
            }
        }
        match (modified, later) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}
