//! Configuration of a partition log, with Kafka's names and defaults.

use std::fmt;
use std::sync::Arc;

use crate::record::{DecodeLimits, TimestampType};

/// Milliseconds since the Unix epoch, from a source the log can be given.
pub trait Clock: Send + Sync {
    /// The current time in milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    }
}

/// A clock that only moves when told to: for tests and simulations.
#[derive(Debug, Default)]
pub struct ManualClock(std::sync::atomic::AtomicI64);

impl ManualClock {
    /// A clock reading `now_ms`.
    pub fn new(now_ms: i64) -> Self {
        ManualClock(std::sync::atomic::AtomicI64::new(now_ms))
    }

    /// Sets the time.
    pub fn set(&self, now_ms: i64) {
        self.0.store(now_ms, std::sync::atomic::Ordering::SeqCst);
    }

    /// Moves the time forward.
    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Kafka's default `producer.id.expiration.ms`: one day.
pub const DEFAULT_PRODUCER_ID_EXPIRATION_MS: i64 = 24 * 60 * 60 * 1000;

/// Settings of one partition log. Field names follow Kafka's topic configs.
///
/// ```
/// use streamlog::LogConfig;
/// let config = LogConfig { segment_bytes: 64 << 20, ..LogConfig::default() };
/// assert_eq!(config.index_interval_bytes, 4096);
/// ```
#[derive(Clone)]
pub struct LogConfig {
    /// `segment.bytes`: roll when the active segment would grow past this (default 1 GiB).
    pub segment_bytes: u64,
    /// `segment.ms`: roll when this long has passed since the active segment's first
    /// timestamp (default 7 days). `None` never rolls on time.
    pub segment_ms: Option<i64>,
    /// `segment.index.bytes`: size each index file is preallocated to (default 10 MiB).
    pub segment_index_bytes: u32,
    /// `index.interval.bytes`: bytes of batches between offset-index entries (default 4096).
    pub index_interval_bytes: u32,
    /// `max.message.bytes`: largest batch a producer may append (default 1 MiB + 12).
    pub max_message_bytes: u32,
    /// `message.timestamp.type`: CreateTime, or LogAppendTime to stamp batches on append.
    pub message_timestamp_type: TimestampType,
    /// Limits for decoding stored batches (record iteration, validation of compressed data).
    pub decode_limits: DecodeLimits,
    /// `flush.messages`: fsync after this many appended messages (`Some(1)`: every append).
    /// `None` (Kafka's default) leaves flushing to `flush()`, `flush_ms` and the OS.
    pub flush_messages: Option<u64>,
    /// `flush.ms`: fsync when this long has passed since the last flush, checked by
    /// [`Log::tick`](crate::Log::tick) or a background flusher. `None` never flushes on time.
    pub flush_ms: Option<i64>,
    /// What opening does with damage below the recovery point (data acknowledged durable):
    /// `false` (default) fails with `DamageBelowRecoveryPoint`; `true` truncates it and
    /// reports it in `RecoveryInfo`.
    pub truncate_damage_below_recovery_point: bool,
    /// `producer.id.expiration.ms`: a producer id idle this long, without an open
    /// transaction, is forgotten (default 1 day).
    pub producer_id_expiration_ms: i64,
    /// Where the log reads the time (`segment.ms`, LogAppendTime, `flush.ms`).
    pub clock: Arc<dyn Clock>,
    /// `delete.retention.ms`: how long compaction keeps a tombstone after it first marks
    /// the tombstone's batch with a delete horizon (default 1 day).
    pub delete_retention_ms: i64,
    /// `min.cleanable.dirty.ratio`: the share of the log's bytes that must be uncleaned
    /// before a scheduler compacts it (default 0.5); see `Log::cleanable`.
    pub min_cleanable_dirty_ratio: f64,
    /// `min.compaction.lag.ms`: a record stays uncompacted at least this long after its
    /// segment's largest timestamp (default 0).
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`: a log whose oldest uncleaned record is older than this is due
    /// for compaction whatever its dirty ratio (default `None`: never forced).
    pub max_compaction_lag_ms: Option<i64>,
    /// `retention.ms`: delete sealed segments whose records are all older than this
    /// (default 7 days). `None` is Kafka's -1: no limit by time.
    pub retention_ms: Option<i64>,
    /// `retention.bytes`: delete the oldest sealed segments while the partition holds more
    /// than this. `None` (Kafka's default, -1): no limit by size.
    pub retention_bytes: Option<u64>,
    /// `cleanup.policy`: what happens to old segments (default [`CleanupPolicy::Delete`]).
    pub cleanup_policy: CleanupPolicy,
}

/// Kafka's `cleanup.policy`: whether old segments are deleted by retention, compacted, or
/// both. Its text form is Kafka's: `delete`, `compact`, `compact,delete`.
///
/// ```
/// use streamlog::CleanupPolicy;
/// let p: CleanupPolicy = "delete,compact".parse()?;
/// assert_eq!(p, CleanupPolicy::CompactDelete);
/// assert_eq!(p.to_string(), "compact,delete");
/// assert!(p.deletes() && p.compacts());
/// # Ok::<(), streamlog::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum CleanupPolicy {
    /// `delete`: retention by time and size deletes old segments.
    #[default]
    Delete,
    /// `compact`: the cleaner keeps the last record per key; retention deletes nothing by
    /// time or size (only segments below the log start offset go).
    Compact,
    /// `compact,delete`: both.
    CompactDelete,
}

impl CleanupPolicy {
    /// Whether retention by time and size applies.
    pub fn deletes(self) -> bool {
        matches!(self, CleanupPolicy::Delete | CleanupPolicy::CompactDelete)
    }

    /// Whether the log is compacted.
    pub fn compacts(self) -> bool {
        matches!(self, CleanupPolicy::Compact | CleanupPolicy::CompactDelete)
    }

    /// Kafka's name for the policy.
    pub fn as_str(self) -> &'static str {
        match self {
            CleanupPolicy::Delete => "delete",
            CleanupPolicy::Compact => "compact",
            CleanupPolicy::CompactDelete => "compact,delete",
        }
    }
}

impl fmt::Display for CleanupPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for CleanupPolicy {
    type Err = crate::Error;

    /// Parses Kafka's list form: comma-separated `delete` and `compact`, in any order,
    /// surrounding spaces and repeats allowed (Kafka accepts `delete,compact` too).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (mut delete, mut compact) = (false, false);
        for part in s.split(',') {
            match part.trim() {
                "delete" => delete = true,
                "compact" => compact = true,
                _ => {
                    return Err(crate::Error::InvalidCleanupPolicy {
                        value: s.to_string(),
                    })
                }
            }
        }
        match (compact, delete) {
            (true, true) => Ok(CleanupPolicy::CompactDelete),
            (true, false) => Ok(CleanupPolicy::Compact),
            (false, true) => Ok(CleanupPolicy::Delete),
            (false, false) => Err(crate::Error::InvalidCleanupPolicy {
                value: s.to_string(),
            }),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: Some(7 * 24 * 60 * 60 * 1000),
            segment_index_bytes: 10 << 20,
            index_interval_bytes: 4096,
            max_message_bytes: 1_048_588,
            message_timestamp_type: TimestampType::CreateTime,
            decode_limits: DecodeLimits::DEFAULT,
            flush_messages: None,
            flush_ms: None,
            truncate_damage_below_recovery_point: false,
            producer_id_expiration_ms: DEFAULT_PRODUCER_ID_EXPIRATION_MS,
            clock: Arc::new(SystemClock),
            retention_ms: Some(7 * 24 * 60 * 60 * 1000),
            retention_bytes: None,
            cleanup_policy: CleanupPolicy::Delete,
            delete_retention_ms: 24 * 60 * 60 * 1000,
            min_cleanable_dirty_ratio: 0.5,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: None,
        }
    }
}

impl fmt::Debug for LogConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogConfig")
            .field("segment_bytes", &self.segment_bytes)
            .field("segment_ms", &self.segment_ms)
            .field("segment_index_bytes", &self.segment_index_bytes)
            .field("index_interval_bytes", &self.index_interval_bytes)
            .field("max_message_bytes", &self.max_message_bytes)
            .field("message_timestamp_type", &self.message_timestamp_type)
            .field("decode_limits", &self.decode_limits)
            .field("flush_messages", &self.flush_messages)
            .field("flush_ms", &self.flush_ms)
            .field(
                "truncate_damage_below_recovery_point",
                &self.truncate_damage_below_recovery_point,
            )
            .field("retention_ms", &self.retention_ms)
            .field("retention_bytes", &self.retention_bytes)
            .field("cleanup_policy", &self.cleanup_policy)
            .field("delete_retention_ms", &self.delete_retention_ms)
            .field("min_cleanable_dirty_ratio", &self.min_cleanable_dirty_ratio)
            .field("min_compaction_lag_ms", &self.min_compaction_lag_ms)
            .field("max_compaction_lag_ms", &self.max_compaction_lag_ms)
            .field("producer_id_expiration_ms", &self.producer_id_expiration_ms)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleanup_policy_round_trips_kafkas_strings_and_rejects_others() {
        for (text, policy) in [
            ("delete", CleanupPolicy::Delete),
            ("compact", CleanupPolicy::Compact),
            ("compact,delete", CleanupPolicy::CompactDelete),
            ("delete,compact", CleanupPolicy::CompactDelete),
            (" compact , delete ", CleanupPolicy::CompactDelete),
            ("delete,delete", CleanupPolicy::Delete),
        ] {
            assert_eq!(text.parse::<CleanupPolicy>().unwrap(), policy, "{text:?}");
            assert_eq!(policy.to_string().parse::<CleanupPolicy>().unwrap(), policy);
        }
        for bad in ["", ",", "Delete", "compact,", "delete,foo", "none"] {
            assert!(
                matches!(
                    bad.parse::<CleanupPolicy>(),
                    Err(crate::Error::InvalidCleanupPolicy { ref value }) if value == bad
                ),
                "{bad:?}"
            );
        }
        assert_eq!(LogConfig::default().cleanup_policy, CleanupPolicy::Delete);
        assert_eq!(LogConfig::default().retention_ms, Some(604_800_000));
        assert_eq!(LogConfig::default().retention_bytes, None);
    }
}
