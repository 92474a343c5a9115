//! Configuration of a partition log, with Kafka's names and defaults.

use std::fmt;
use std::sync::Arc;

use crate::record::{Compression, DecodeLimits, TimestampType};

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
/// Build one with [`LogConfig::builder`], which checks every value, or take
/// [`LogConfig::default`] (Kafka's defaults) and set fields. [`Log::open`](crate::Log::open)
/// checks the config again ([`LogConfig::validate`]), so a bad value is refused with
/// [`Error::InvalidConfig`](crate::Error::InvalidConfig) naming the Kafka key either way.
///
/// ```
/// use streamlog::{Error, LogConfig};
///
/// let config = LogConfig::builder().segment_bytes(64 << 20).retention_ms(None).build()?;
/// assert_eq!(config.index_interval_bytes, 4096);
///
/// let mut config = LogConfig::default();
/// config.segment_bytes = 0;
/// assert!(matches!(config.validate(), Err(Error::InvalidConfig { key: "segment.bytes", .. })));
/// # Ok::<(), streamlog::Error>(())
/// ```
#[derive(Clone)]
#[non_exhaustive]
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
    /// `message.timestamp.before.max.ms` (KIP-937): under CreateTime, a producer batch
    /// holding a record timestamp more than this before the log's clock is refused with
    /// [`Error::InvalidTimestamp`](crate::Error::InvalidTimestamp) (default `i64::MAX`:
    /// no limit, Kafka's `Long.MAX_VALUE`).
    pub message_timestamp_before_max_ms: i64,
    /// `message.timestamp.after.max.ms` (KIP-937): under CreateTime, a producer batch
    /// holding a record timestamp more than this after the log's clock is refused with
    /// [`Error::InvalidTimestamp`](crate::Error::InvalidTimestamp) (default 3,600,000: one
    /// hour, Kafka 4.0's default).
    pub message_timestamp_after_max_ms: i64,
    /// Not a Kafka setting: append to the active segment with direct I/O (`O_DIRECT`, see
    /// [`io`](crate::io)), coalescing batches in memory into writes of
    /// `direct_io_write_bytes` that bypass the page cache. Reads of bytes not yet written
    /// are served from memory, and the crash guarantees are the buffered path's (nothing is
    /// durable before a flush; a flush makes every earlier append durable). Each active
    /// segment then holds a buffer of `direct_io_write_bytes`, and another process reading
    /// the directory sees appended bytes only once they are written (each full buffer, a
    /// flush, a roll, a close). Where the filesystem refuses `O_DIRECT` (tmpfs), the same
    /// buffer is written through the page cache. Default `false`.
    pub direct_io: bool,
    /// The size of each direct-I/O write and of the buffer behind it: a multiple of 4096
    /// from 4096 to 64 MiB (default 1 MiB).
    pub direct_io_write_bytes: u32,
    /// Not a Kafka setting: how many full direct-I/O writes may be in flight while appends
    /// go on, 0 to 8 (default 1). From 1, a writer thread of the active segment writes each
    /// full buffer while the appender validates and gathers the next batches in another, so
    /// the device and the CPU work at once; an appender that fills a buffer with this many
    /// writes still in flight waits for the oldest. The segment then holds up to this many
    /// more buffers of `direct_io_write_bytes`. 0 writes each full buffer in the appending
    /// thread, and no thread is started.
    pub direct_io_writes_in_flight: u32,
    /// Not a Kafka setting: how far ahead of the buffered appends the active segment's file
    /// has disk blocks reserved (`fallocate` with `FALLOC_FL_KEEP_SIZE` on Linux; elsewhere,
    /// and on filesystems that refuse it, nothing is reserved). The file's length stays the
    /// end of its last batch, so recovery and readers see what they would without it; only
    /// the filesystem's block allocation is done ahead, in steps that double with what the
    /// segment holds (from 64 KiB up to this many bytes), so a partition that appends
    /// little reserves little. The blocks past the end are released when the segment is
    /// sealed. On ext4 a buffered append into reserved blocks skips the delayed-allocation
    /// bookkeeping of every page (about a tenth of the append's time for 10 KB batches,
    /// BENCHMARKS.md). 0 reserves nothing; otherwise from 65,536 to 1 GiB (default 8 MiB).
    /// Direct-I/O appends ([`direct_io`](Self::direct_io)) never reserve.
    pub preallocate_bytes: u32,
    /// What moves the high watermark (not a Kafka topic config: in Kafka the partition's
    /// replication decides). Default [`HighWatermarkPolicy::LogEnd`], a partition that is its
    /// own only replica.
    pub high_watermark_policy: HighWatermarkPolicy,
    /// `compression.type`: [`CompressionType::Producer`] (default) stores each producer
    /// batch in the codec it came in; a codec re-encodes every producer batch in another
    /// codec before the writer lock is taken, keeping its records, offsets, timestamps and
    /// producer fields (as Kafka's `LogValidator` does). Replicated appends are stored as
    /// the leader wrote them.
    pub compression_type: CompressionType,
}

/// `compression.type` of a topic: keep what the producer sent, or store batches in one codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CompressionType {
    /// `producer`: batches are stored as the producer compressed them (Kafka's default).
    #[default]
    Producer,
    /// `uncompressed`, or one of Kafka's codecs by name.
    Codec(Compression),
}

impl CompressionType {
    /// Kafka's spelling (`uncompressed` for no codec).
    pub fn name(self) -> &'static str {
        match self {
            Self::Producer => "producer",
            Self::Codec(Compression::None) => "uncompressed",
            Self::Codec(c) => c.name(),
        }
    }

    /// The setting of Kafka's spelling, `None` for a name Kafka does not know.
    pub(crate) fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "producer" => Self::Producer,
            "uncompressed" => Self::Codec(Compression::None),
            "gzip" => Self::Codec(Compression::Gzip),
            "snappy" => Self::Codec(Compression::Snappy),
            "lz4" => Self::Codec(Compression::Lz4),
            "zstd" => Self::Codec(Compression::Zstd),
            _ => return None,
        })
    }

    /// The codec a batch arriving in `source` is stored in (Kafka's
    /// `BrokerCompressionType.targetCompression`).
    pub fn target(self, source: Compression) -> Compression {
        match self {
            Self::Producer => source,
            Self::Codec(c) => c,
        }
    }
}

/// What moves a log's high watermark, the offset below which consumers may read
/// (see [`Log::high_watermark`](crate::Log::high_watermark)).
///
/// ```
/// use streamlog::{HighWatermarkPolicy, Log, LogConfig, OwnedRecord, Compression};
///
/// let dir = tempfile::tempdir()?;
/// let config = LogConfig::builder()
///     .high_watermark_policy(HighWatermarkPolicy::Replicated)
///     .build()?;
/// let log = Log::open(dir.path(), config)?;
/// log.append_records(&[OwnedRecord::new(0, None, Some(b"v"))], Compression::None)?;
/// assert_eq!((log.log_end_offset(), log.high_watermark()), (1, 0)); // not replicated yet
/// assert_eq!(log.maybe_advance_high_watermark(1)?, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum HighWatermarkPolicy {
    /// The log is its partition's only replica (Kafka with replication factor 1): the high
    /// watermark is the log end offset after every append, and nothing is persisted for it.
    #[default]
    LogEnd,
    /// The log is its partition's only replica, and consumers see only what is durable: the
    /// high watermark follows the recovery point (every flush moves it), so a power loss
    /// never takes back a record a consumer has read.
    Flushed,
    /// A replica of a replicated partition: only
    /// [`Log::maybe_advance_high_watermark`](crate::Log::maybe_advance_high_watermark) (a
    /// replication leader or follower) moves it. It is persisted in Kafka's
    /// `replication-offset-checkpoint` format (see
    /// [`REPLICATION_OFFSET_CHECKPOINT`](crate::log::REPLICATION_OFFSET_CHECKPOINT)) and
    /// restored on open.
    Replicated,
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
            message_timestamp_before_max_ms: i64::MAX,
            message_timestamp_after_max_ms: DEFAULT_MESSAGE_TIMESTAMP_AFTER_MAX_MS,
            high_watermark_policy: HighWatermarkPolicy::LogEnd,
            direct_io: false,
            direct_io_write_bytes: DEFAULT_DIRECT_IO_WRITE_BYTES,
            direct_io_writes_in_flight: DEFAULT_DIRECT_IO_WRITES_IN_FLIGHT,
            preallocate_bytes: DEFAULT_PREALLOCATE_BYTES,
            compression_type: CompressionType::Producer,
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
            .field(
                "message_timestamp_before_max_ms",
                &self.message_timestamp_before_max_ms,
            )
            .field(
                "message_timestamp_after_max_ms",
                &self.message_timestamp_after_max_ms,
            )
            .field("high_watermark_policy", &self.high_watermark_policy)
            .field("direct_io", &self.direct_io)
            .field("direct_io_write_bytes", &self.direct_io_write_bytes)
            .field(
                "direct_io_writes_in_flight",
                &self.direct_io_writes_in_flight,
            )
            .field("preallocate_bytes", &self.preallocate_bytes)
            .field("compression_type", &self.compression_type)
            .finish_non_exhaustive()
    }
}

/// Kafka 4.0's default `message.timestamp.after.max.ms`: one hour.
pub const DEFAULT_MESSAGE_TIMESTAMP_AFTER_MAX_MS: i64 = 60 * 60 * 1000;

/// The default size of a direct-I/O write (see [`LogConfig::direct_io_write_bytes`]).
pub const DEFAULT_DIRECT_IO_WRITE_BYTES: u32 = 1 << 20;

/// The default number of direct-I/O writes in flight (see
/// [`LogConfig::direct_io_writes_in_flight`]).
pub const DEFAULT_DIRECT_IO_WRITES_IN_FLIGHT: u32 = 1;

/// The default reservation ahead of buffered appends (see [`LogConfig::preallocate_bytes`]).
pub const DEFAULT_PREALLOCATE_BYTES: u32 = 8 << 20;

/// The first and smallest step of a reservation ahead of appends (see
/// [`LogConfig::preallocate_bytes`]).
pub(crate) const MIN_PREALLOCATE_BYTES: u32 = 64 << 10;

/// The most direct-I/O writes in flight (see [`LogConfig::direct_io_writes_in_flight`]).
const MAX_DIRECT_IO_WRITES_IN_FLIGHT: u32 = 8;

/// The largest `segment.bytes` and `segment.index.bytes`: Kafka's `int` configs, and the
/// byte positions an offset-index entry can hold.
const MAX_INT_CONFIG: u64 = i32::MAX as u64;

/// The smallest `segment.bytes` (Kafka's lower bound for the topic config: one legacy
/// record's overhead).
const MIN_SEGMENT_BYTES: u64 = 14;

/// The smallest `segment.index.bytes`: one time-index entry (12 bytes; an offset-index entry
/// is 8), so that each index holds at least one entry.
const MIN_SEGMENT_INDEX_BYTES: u32 = 12;

/// The smallest decode limit for a batch: a RecordBatch v2 header.
const MIN_DECODE_BATCH_BYTES: usize = crate::record::BATCH_HEADER_SIZE;

fn invalid_config(
    key: &'static str,
    value: impl fmt::Display,
    reason: &'static str,
) -> crate::Error {
    crate::Error::InvalidConfig {
        key,
        value: value.to_string(),
        reason,
    }
}

fn at_least(key: &'static str, value: i64, min: i64) -> crate::Result<()> {
    if value < min {
        return Err(invalid_config(
            key,
            value,
            if min == 0 {
                "must not be negative"
            } else {
                "must be at least 1"
            },
        ));
    }
    Ok(())
}

impl LogConfig {
    /// A builder starting from Kafka's defaults; [`LogConfigBuilder::build`] checks the result.
    ///
    /// ```
    /// use streamlog::{CleanupPolicy, LogConfig};
    ///
    /// let config = LogConfig::builder()
    ///     .segment_bytes(1 << 20)
    ///     .cleanup_policy(CleanupPolicy::Compact)
    ///     .flush_messages(1)
    ///     .build()?;
    /// assert_eq!(config.flush_messages, Some(1));
    /// assert!(LogConfig::builder().min_cleanable_dirty_ratio(1.5).build().is_err());
    /// # Ok::<(), streamlog::Error>(())
    /// ```
    pub fn builder() -> LogConfigBuilder {
        LogConfigBuilder {
            config: LogConfig::default(),
        }
    }

    /// A builder starting from this config: to derive a variant of it.
    pub fn to_builder(&self) -> LogConfigBuilder {
        LogConfigBuilder {
            config: self.clone(),
        }
    }

    /// Checks every value against the bounds Kafka puts on its topic config (and the few this
    /// crate adds: a segment's byte positions fit the index's 32-bit field, each index holds
    /// at least one entry). The first bad value is an
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) naming its Kafka key.
    pub fn validate(&self) -> crate::Result<()> {
        let direct = self.direct_io_write_bytes;
        if direct % 4096 != 0 || !(4096..=64 << 20).contains(&direct) {
            return Err(invalid_config(
                "direct_io_write_bytes",
                direct,
                "must be a multiple of 4096 in [4096, 67108864]",
            ));
        }
        if self.direct_io_writes_in_flight > MAX_DIRECT_IO_WRITES_IN_FLIGHT {
            return Err(invalid_config(
                "direct_io_writes_in_flight",
                self.direct_io_writes_in_flight,
                "must be in [0, 8]",
            ));
        }
        let prealloc = self.preallocate_bytes;
        if prealloc != 0 && !(MIN_PREALLOCATE_BYTES..=1 << 30).contains(&prealloc) {
            return Err(invalid_config(
                "preallocate_bytes",
                prealloc,
                "must be 0 or in [65536, 1073741824]",
            ));
        }
        if !(MIN_SEGMENT_BYTES..=MAX_INT_CONFIG).contains(&self.segment_bytes) {
            return Err(invalid_config(
                "segment.bytes",
                self.segment_bytes,
                "must be in [14, 2147483647]",
            ));
        }
        if let Some(ms) = self.segment_ms {
            at_least("segment.ms", ms, 1)?;
        }
        if self.segment_index_bytes < MIN_SEGMENT_INDEX_BYTES
            || u64::from(self.segment_index_bytes) > MAX_INT_CONFIG
        {
            return Err(invalid_config(
                "segment.index.bytes",
                self.segment_index_bytes,
                "must be in [12, 2147483647] (at least one 12-byte time-index entry)",
            ));
        }
        if u64::from(self.index_interval_bytes) > MAX_INT_CONFIG {
            return Err(invalid_config(
                "index.interval.bytes",
                self.index_interval_bytes,
                "must be at most 2147483647",
            ));
        }
        if u64::from(self.max_message_bytes) > MAX_INT_CONFIG {
            return Err(invalid_config(
                "max.message.bytes",
                self.max_message_bytes,
                "must be at most 2147483647",
            ));
        }
        if self.decode_limits.max_batch_bytes < MIN_DECODE_BATCH_BYTES {
            return Err(invalid_config(
                "decode_limits.max_batch_bytes",
                self.decode_limits.max_batch_bytes,
                "must hold at least a batch header (61 bytes)",
            ));
        }
        if self.flush_messages == Some(0) {
            return Err(invalid_config(
                "flush.messages",
                0,
                "must be at least 1 (None: no flush by count)",
            ));
        }
        if let Some(ms) = self.flush_ms {
            at_least("flush.ms", ms, 0)?;
        }
        at_least(
            "producer.id.expiration.ms",
            self.producer_id_expiration_ms,
            1,
        )?;
        at_least("delete.retention.ms", self.delete_retention_ms, 0)?;
        if !(0.0..=1.0).contains(&self.min_cleanable_dirty_ratio) {
            return Err(invalid_config(
                "min.cleanable.dirty.ratio",
                self.min_cleanable_dirty_ratio,
                "must be in [0, 1]",
            ));
        }
        at_least("min.compaction.lag.ms", self.min_compaction_lag_ms, 0)?;
        if let Some(max) = self.max_compaction_lag_ms {
            at_least("max.compaction.lag.ms", max, 1)?;
            if max < self.min_compaction_lag_ms {
                return Err(invalid_config(
                    "max.compaction.lag.ms",
                    max,
                    "must not be below min.compaction.lag.ms",
                ));
            }
        }
        at_least(
            "message.timestamp.before.max.ms",
            self.message_timestamp_before_max_ms,
            0,
        )?;
        at_least(
            "message.timestamp.after.max.ms",
            self.message_timestamp_after_max_ms,
            0,
        )?;
        if let Some(ms) = self.retention_ms {
            if ms < 0 {
                return Err(invalid_config(
                    "retention.ms",
                    ms,
                    "must not be negative (None is Kafka's -1: no limit by time)",
                ));
            }
        }
        Ok(())
    }
}

impl LogConfig {
    /// The record timestamps a producer batch may carry when the log's clock reads `now`,
    /// besides -1 (no timestamp): `[min, max]`. Under CreateTime the window is Kafka's
    /// `message.timestamp.before.max.ms` / `after.max.ms` around `now`; under LogAppendTime
    /// the records' own timestamps are not checked against the clock. Below zero is never in
    /// it.
    pub(crate) fn accepted_timestamps(&self, now: i64) -> (i64, i64) {
        match self.message_timestamp_type {
            TimestampType::CreateTime => (
                now.saturating_sub(self.message_timestamp_before_max_ms)
                    .max(0),
                now.saturating_add(self.message_timestamp_after_max_ms),
            ),
            TimestampType::LogAppendTime => (0, i64::MAX),
        }
    }
}

/// Builds a [`LogConfig`] from Kafka's defaults, one setting at a time, and checks it.
///
/// Settings that Kafka turns off with `-1` take `None` here (`.retention_ms(None)`), and a
/// value or `Some(value)` otherwise.
///
/// ```
/// use streamlog::{Error, LogConfig, TimestampType};
///
/// let config = LogConfig::builder()
///     .segment_bytes(64 << 20)
///     .segment_ms(None)
///     .message_timestamp_type(TimestampType::LogAppendTime)
///     .build()?;
/// assert_eq!(config.segment_ms, None);
///
/// match LogConfig::builder().segment_index_bytes(4).build() {
///     Err(Error::InvalidConfig { key, .. }) => assert_eq!(key, "segment.index.bytes"),
///     other => panic!("{other:?}"),
/// }
/// # Ok::<(), streamlog::Error>(())
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct LogConfigBuilder {
    config: LogConfig,
}

macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident: $ty:ty;)*) => {$(
        $(#[$doc])*
        pub fn $name(mut self, value: $ty) -> Self {
            self.config.$name = value;
            self
        }
    )*};
}

macro_rules! optional_setters {
    ($($(#[$doc:meta])* $name:ident: $ty:ty;)*) => {$(
        $(#[$doc])*
        pub fn $name(mut self, value: impl Into<Option<$ty>>) -> Self {
            self.config.$name = value.into();
            self
        }
    )*};
}

impl LogConfigBuilder {
    setters! {
        /// `segment.bytes` (see [`LogConfig::segment_bytes`]).
        segment_bytes: u64;
        /// `segment.index.bytes` (see [`LogConfig::segment_index_bytes`]).
        segment_index_bytes: u32;
        /// `index.interval.bytes` (see [`LogConfig::index_interval_bytes`]).
        index_interval_bytes: u32;
        /// `max.message.bytes` (see [`LogConfig::max_message_bytes`]).
        max_message_bytes: u32;
        /// `message.timestamp.type` (see [`LogConfig::message_timestamp_type`]).
        message_timestamp_type: TimestampType;
        /// Limits for decoding stored batches (see [`LogConfig::decode_limits`]).
        decode_limits: DecodeLimits;
        /// What opening does with damage below the recovery point (see
        /// [`LogConfig::truncate_damage_below_recovery_point`]).
        truncate_damage_below_recovery_point: bool;
        /// `producer.id.expiration.ms` (see [`LogConfig::producer_id_expiration_ms`]).
        producer_id_expiration_ms: i64;
        /// Where the log reads the time (see [`LogConfig::clock`]).
        clock: Arc<dyn Clock>;
        /// `delete.retention.ms` (see [`LogConfig::delete_retention_ms`]).
        delete_retention_ms: i64;
        /// `min.cleanable.dirty.ratio` (see [`LogConfig::min_cleanable_dirty_ratio`]).
        min_cleanable_dirty_ratio: f64;
        /// `min.compaction.lag.ms` (see [`LogConfig::min_compaction_lag_ms`]).
        min_compaction_lag_ms: i64;
        /// `cleanup.policy` (see [`LogConfig::cleanup_policy`]).
        cleanup_policy: CleanupPolicy;
        /// `message.timestamp.before.max.ms` (see
        /// [`LogConfig::message_timestamp_before_max_ms`]).
        message_timestamp_before_max_ms: i64;
        /// `message.timestamp.after.max.ms` (see
        /// [`LogConfig::message_timestamp_after_max_ms`]).
        message_timestamp_after_max_ms: i64;
        /// What moves the high watermark (see [`LogConfig::high_watermark_policy`]).
        high_watermark_policy: HighWatermarkPolicy;
        /// Direct-I/O appends (see [`LogConfig::direct_io`]).
        direct_io: bool;
        /// The size of each direct-I/O write (see [`LogConfig::direct_io_write_bytes`]).
        direct_io_write_bytes: u32;
        /// Direct-I/O writes in flight (see [`LogConfig::direct_io_writes_in_flight`]).
        direct_io_writes_in_flight: u32;
        /// Disk blocks reserved ahead of buffered appends (see
        /// [`LogConfig::preallocate_bytes`]).
        preallocate_bytes: u32;
        /// `compression.type` (see [`LogConfig::compression_type`]).
        compression_type: CompressionType;
    }

    optional_setters! {
        /// `segment.ms` (see [`LogConfig::segment_ms`]); `None` never rolls on time.
        segment_ms: i64;
        /// `flush.messages` (see [`LogConfig::flush_messages`]); `None` never flushes on count.
        flush_messages: u64;
        /// `flush.ms` (see [`LogConfig::flush_ms`]); `None` never flushes on time.
        flush_ms: i64;
        /// `max.compaction.lag.ms` (see [`LogConfig::max_compaction_lag_ms`]); `None` never
        /// forces compaction.
        max_compaction_lag_ms: i64;
        /// `retention.ms` (see [`LogConfig::retention_ms`]); `None` is Kafka's -1.
        retention_ms: i64;
        /// `retention.bytes` (see [`LogConfig::retention_bytes`]); `None` is Kafka's -1.
        retention_bytes: u64;
    }

    /// The config, if every value is within its bounds ([`LogConfig::validate`]).
    pub fn build(self) -> crate::Result<LogConfig> {
        self.config.validate()?;
        Ok(self.config)
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

    fn rejected_key(config: &LogConfig) -> Option<&'static str> {
        match config.validate() {
            Ok(()) => None,
            Err(crate::Error::InvalidConfig { key, .. }) => Some(key),
            Err(other) => panic!("expected InvalidConfig, got {other:?}"),
        }
    }

    #[test]
    fn every_bad_value_is_refused_naming_its_kafka_key() {
        LogConfig::default().validate().unwrap();
        type Case = (&'static str, Box<dyn Fn(&mut LogConfig)>);
        let cases: Vec<Case> = vec![
            ("segment.bytes", Box::new(|c| c.segment_bytes = 0)),
            ("segment.bytes", Box::new(|c| c.segment_bytes = 13)),
            ("segment.bytes", Box::new(|c| c.segment_bytes = 1 << 31)),
            ("segment.ms", Box::new(|c| c.segment_ms = Some(0))),
            (
                "segment.index.bytes",
                Box::new(|c| c.segment_index_bytes = 0),
            ),
            (
                "segment.index.bytes",
                Box::new(|c| c.segment_index_bytes = 11),
            ),
            (
                "segment.index.bytes",
                Box::new(|c| c.segment_index_bytes = u32::MAX),
            ),
            (
                "index.interval.bytes",
                Box::new(|c| c.index_interval_bytes = u32::MAX),
            ),
            (
                "max.message.bytes",
                Box::new(|c| c.max_message_bytes = 1 << 31),
            ),
            (
                "decode_limits.max_batch_bytes",
                Box::new(|c| c.decode_limits.max_batch_bytes = 60),
            ),
            ("flush.messages", Box::new(|c| c.flush_messages = Some(0))),
            ("flush.ms", Box::new(|c| c.flush_ms = Some(-1))),
            (
                "producer.id.expiration.ms",
                Box::new(|c| c.producer_id_expiration_ms = 0),
            ),
            (
                "delete.retention.ms",
                Box::new(|c| c.delete_retention_ms = -1),
            ),
            (
                "min.cleanable.dirty.ratio",
                Box::new(|c| c.min_cleanable_dirty_ratio = -0.1),
            ),
            (
                "min.cleanable.dirty.ratio",
                Box::new(|c| c.min_cleanable_dirty_ratio = 1.01),
            ),
            (
                "min.cleanable.dirty.ratio",
                Box::new(|c| c.min_cleanable_dirty_ratio = f64::NAN),
            ),
            (
                "min.compaction.lag.ms",
                Box::new(|c| c.min_compaction_lag_ms = -5),
            ),
            (
                "max.compaction.lag.ms",
                Box::new(|c| c.max_compaction_lag_ms = Some(0)),
            ),
            (
                "max.compaction.lag.ms",
                Box::new(|c| {
                    c.min_compaction_lag_ms = 10;
                    c.max_compaction_lag_ms = Some(9);
                }),
            ),
            (
                "message.timestamp.before.max.ms",
                Box::new(|c| c.message_timestamp_before_max_ms = -1),
            ),
            (
                "message.timestamp.after.max.ms",
                Box::new(|c| c.message_timestamp_after_max_ms = i64::MIN),
            ),
            ("retention.ms", Box::new(|c| c.retention_ms = Some(-1))),
            (
                "retention.ms",
                Box::new(|c| c.retention_ms = Some(i64::MIN)),
            ),
        ];
        for (key, set) in cases {
            let mut config = LogConfig::default();
            set(&mut config);
            assert_eq!(rejected_key(&config), Some(key), "{config:?}");
            assert!(config.to_builder().build().is_err());
        }
    }

    #[test]
    fn kafkas_edge_values_are_accepted() {
        let config = LogConfig::builder()
            .segment_bytes(14)
            .segment_bytes(i32::MAX as u64)
            .segment_ms(1)
            .segment_index_bytes(12)
            .index_interval_bytes(0)
            .max_message_bytes(0)
            .flush_messages(1)
            .flush_ms(0)
            .delete_retention_ms(0)
            .min_cleanable_dirty_ratio(0.0)
            .min_compaction_lag_ms(5)
            .max_compaction_lag_ms(5)
            .retention_ms(0)
            .retention_bytes(0)
            .build()
            .unwrap();
        assert_eq!(config.segment_bytes, i32::MAX as u64);
        assert_eq!(config.max_compaction_lag_ms, Some(5));
        let config = config
            .to_builder()
            .min_cleanable_dirty_ratio(1.0)
            .retention_ms(None)
            .segment_ms(None)
            .build()
            .unwrap();
        assert_eq!((config.retention_ms, config.segment_ms), (None, None));
    }

    #[test]
    fn invalid_config_error_names_key_value_and_bound() {
        let err = LogConfig::builder().segment_bytes(0).build().unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid config segment.bytes=0: must be in [14, 2147483647]"
        );
    }
}
