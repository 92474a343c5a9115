//! What one compaction did, and how much of a log is waiting to be cleaned.

use std::time::Duration;

/// What [`Log::compact`](crate::Log::compact) did.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct CleanerStats {
    /// Where this pass started reading new (dirty) records.
    pub first_dirty_offset: i64,
    /// Everything below this offset is now cleaned (the new checkpoint). Less than the
    /// cleanable end when the key map filled up: the next pass goes on from here.
    pub end_offset: i64,
    /// Whether the pass reached the end of the cleanable part (the key map held every key).
    pub complete: bool,
    /// Distinct keys found in the dirty part (entries in the key map).
    pub keys: usize,
    /// Bytes of batches read while cleaning (the segments rewritten).
    pub bytes_read: u64,
    /// Bytes of batches written.
    pub bytes_written: u64,
    /// Records read while cleaning.
    pub records_read: u64,
    /// Records kept.
    pub records_written: u64,
    /// Bytes of dirty batches read to build the key map.
    pub map_bytes_read: u64,
    /// Records without a key, removed (Kafka's cleaner drops them as invalid).
    pub invalid_records: u64,
    /// Tombstones removed because their delete horizon had passed.
    pub tombstones_removed: u64,
    /// Segments replaced.
    pub segments_before: usize,
    /// Segments written in their place.
    pub segments_after: usize,
    /// Bytes the key map's table took.
    pub map_bytes: usize,
    /// Wall time of the whole pass.
    pub duration: Duration,
    /// Of which building the key map (Kafka's "buffer time").
    pub map_duration: Duration,
    /// Of which swapping in and checkpointing (renames, removals, directory fsyncs).
    pub swap_duration: Duration,
    /// Set when a truncation or deletion changed the segments being cleaned while the pass
    /// ran: nothing was swapped in, and the next pass starts again.
    pub aborted: bool,
}

/// How much of a log is dirty: what a scheduler needs to choose the next log to clean
/// (Kafka's `LogToClean`).
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct CleanableInfo {
    /// Where the uncleaned part starts (the cleaner checkpoint, bounded by the log).
    pub first_dirty_offset: i64,
    /// Where the cleanable part ends: the smallest of the caller's upper bound, the active
    /// segment's base offset and the first segment younger than `min.compaction.lag.ms`.
    pub first_uncleanable_offset: i64,
    /// Bytes of segments below the first dirty offset's segment.
    pub clean_bytes: u64,
    /// Bytes of segments from there up to the first uncleanable offset.
    pub cleanable_bytes: u64,
    /// `cleanable_bytes / (clean_bytes + cleanable_bytes)`, 0 for an empty log.
    pub dirty_ratio: f64,
    /// Whether the dirty ratio reaches `min.cleanable.dirty.ratio`.
    pub ratio_due: bool,
    /// Whether the oldest uncleaned record is older than `max.compaction.lag.ms`.
    pub lag_due: bool,
}

impl CleanableInfo {
    /// Whether a scheduler should compact this log now.
    pub fn should_clean(&self) -> bool {
        self.cleanable_bytes > 0 && (self.ratio_due || self.lag_due)
    }
}
