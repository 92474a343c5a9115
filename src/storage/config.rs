//! Storage-wide defaults and per-topic overrides under Kafka's topic config names.
//!
//! A topic's overrides are kept as [`TopicConfig`] (only what was set), persisted as
//! `key=value` lines, and resolved against the [`StorageConfig`] defaults into
//! [`TopicSettings`], the typed values a partition uses.

use std::collections::BTreeMap;
use std::sync::Arc;

pub use crate::config::CompressionType;
use crate::config::{CleanupPolicy, LogConfig};
use crate::error::{Error, Result};
use crate::io::{FileSystem, RealFs};
use crate::record::TimestampType;

/// `retention.ms`.
pub const RETENTION_MS: &str = "retention.ms";
/// `retention.bytes`.
pub const RETENTION_BYTES: &str = "retention.bytes";
/// `segment.bytes`.
pub const SEGMENT_BYTES: &str = "segment.bytes";
/// `segment.ms`.
pub const SEGMENT_MS: &str = "segment.ms";
/// `cleanup.policy`.
pub const CLEANUP_POLICY: &str = "cleanup.policy";
/// `min.cleanable.dirty.ratio`.
pub const MIN_CLEANABLE_DIRTY_RATIO: &str = "min.cleanable.dirty.ratio";
/// `delete.retention.ms`.
pub const DELETE_RETENTION_MS: &str = "delete.retention.ms";
/// `min.compaction.lag.ms`.
pub const MIN_COMPACTION_LAG_MS: &str = "min.compaction.lag.ms";
/// `max.message.bytes`.
pub const MAX_MESSAGE_BYTES: &str = "max.message.bytes";
/// `message.timestamp.type`.
pub const MESSAGE_TIMESTAMP_TYPE: &str = "message.timestamp.type";
/// `compression.type`.
pub const COMPRESSION_TYPE: &str = "compression.type";
/// `message.timestamp.before.max.ms`.
pub const MESSAGE_TIMESTAMP_BEFORE_MAX_MS: &str = "message.timestamp.before.max.ms";
/// `message.timestamp.after.max.ms`.
pub const MESSAGE_TIMESTAMP_AFTER_MAX_MS: &str = "message.timestamp.after.max.ms";
/// `segment.index.bytes`.
pub const SEGMENT_INDEX_BYTES: &str = "segment.index.bytes";
/// `index.interval.bytes`.
pub const INDEX_INTERVAL_BYTES: &str = "index.interval.bytes";
/// `flush.messages`.
pub const FLUSH_MESSAGES: &str = "flush.messages";
/// `flush.ms`.
pub const FLUSH_MS: &str = "flush.ms";
/// `max.compaction.lag.ms`.
pub const MAX_COMPACTION_LAG_MS: &str = "max.compaction.lag.ms";

/// Every topic config key a [`TopicConfig`] accepts.
pub const TOPIC_CONFIG_KEYS: [&str; 18] = [
    RETENTION_MS,
    RETENTION_BYTES,
    SEGMENT_BYTES,
    SEGMENT_MS,
    CLEANUP_POLICY,
    MIN_CLEANABLE_DIRTY_RATIO,
    DELETE_RETENTION_MS,
    MIN_COMPACTION_LAG_MS,
    MAX_MESSAGE_BYTES,
    MESSAGE_TIMESTAMP_TYPE,
    COMPRESSION_TYPE,
    MESSAGE_TIMESTAMP_BEFORE_MAX_MS,
    MESSAGE_TIMESTAMP_AFTER_MAX_MS,
    SEGMENT_INDEX_BYTES,
    INDEX_INTERVAL_BYTES,
    FLUSH_MESSAGES,
    FLUSH_MS,
    MAX_COMPACTION_LAG_MS,
];

/// Kafka topic configs a [`TopicConfig`] accepts, validates as Kafka does and keeps (so they
/// persist and can be described) but that change nothing in a single-node storage: they
/// concern replication, a message format streamlog no longer writes (`message.format.version`,
/// which Kafka 3.x also ignores), or file handling streamlog decides itself.
pub const TOPIC_CONFIGS_WITHOUT_EFFECT: [&str; 8] = [
    "message.format.version",
    "message.downconversion.enable",
    "unclean.leader.election.enable",
    "preallocate",
    "segment.jitter.ms",
    "file.delete.delay.ms",
    "leader.replication.throttled.replicas",
    "follower.replication.throttled.replicas",
];

/// Checks a value of one of [`TOPIC_CONFIGS_WITHOUT_EFFECT`] with Kafka's type and bounds.
fn check_without_effect(key: &str, value: &str) -> Result<()> {
    // Stored one `key=value` line each.
    if value.chars().any(char::is_control) {
        return Err(invalid(key, value, "control characters"));
    }
    match key {
        "message.format.version" => {
            // Kafka's version strings: `0.10.0`, `2.8`, `3.0-IV1`.
            let v = value.trim();
            let (version, iv) = v.split_once("-IV").unwrap_or((v, "0"));
            let parts: Vec<&str> = version.split('.').collect();
            let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
            if !(2..=4).contains(&parts.len()) || !parts.iter().all(|p| numeric(p)) || !numeric(iv)
            {
                return Err(invalid(
                    key,
                    value,
                    "not a Kafka version (e.g. 2.8 or 3.0-IV1)",
                ));
            }
        }
        "message.downconversion.enable" | "unclean.leader.election.enable" | "preallocate"
            if !["true", "false"]
                .iter()
                .any(|b| value.trim().eq_ignore_ascii_case(b)) =>
        {
            return Err(invalid(key, value, "expected true or false"));
        }
        "segment.jitter.ms" | "file.delete.delay.ms" => {
            parse_long(key, value, 0)?;
        }
        // Lists of `partition:broker` pairs or `*`; nothing here reads them.
        _ => {}
    }
    Ok(())
}

fn timestamp_type_name(t: TimestampType) -> &'static str {
    match t {
        TimestampType::CreateTime => "CreateTime",
        TimestampType::LogAppendTime => "LogAppendTime",
    }
}

/// Overrides of one topic, under Kafka's names: `None` takes the storage default.
///
/// `retention.ms` and `retention.bytes` use Kafka's `-1` for "unlimited"; `flush.messages`,
/// `flush.ms` and `max.compaction.lag.ms` use Kafka's default, `9223372036854775807`
/// (`i64::MAX`), for "never" (the log's `None`). Each key is checked against Kafka's bounds,
/// with one departure: `segment.index.bytes` must hold one time-index entry (12 bytes; Kafka
/// accepts 4, an index that holds nothing). Keys that bound each other
/// (`min.compaction.lag.ms` ≤ `max.compaction.lag.ms`) are checked together, over the
/// storage defaults, when a topic is created or altered.
///
/// ```
/// use std::collections::BTreeMap;
/// use streamlog::storage::TopicConfig;
///
/// let mut map = BTreeMap::new();
/// map.insert("retention.ms".to_string(), "3600000".to_string());
/// map.insert("cleanup.policy".to_string(), "compact,delete".to_string());
/// let config = TopicConfig::from_map(&map)?;
/// assert_eq!(config.retention_ms, Some(3_600_000));
/// assert_eq!(config.to_map(), map);
/// assert!(TopicConfig::new().set("retention.ms", "soon").is_err());
/// # Ok::<(), streamlog::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct TopicConfig {
    /// `retention.ms` (-1: unlimited).
    pub retention_ms: Option<i64>,
    /// `retention.bytes` per partition (-1: unlimited).
    pub retention_bytes: Option<i64>,
    /// `segment.bytes`.
    pub segment_bytes: Option<u32>,
    /// `segment.ms`.
    pub segment_ms: Option<i64>,
    /// `cleanup.policy`.
    pub cleanup_policy: Option<CleanupPolicy>,
    /// `min.cleanable.dirty.ratio`, in [0, 1].
    pub min_cleanable_dirty_ratio: Option<f64>,
    /// `delete.retention.ms`: how long tombstones outlive compaction.
    pub delete_retention_ms: Option<i64>,
    /// `min.compaction.lag.ms`.
    pub min_compaction_lag_ms: Option<i64>,
    /// `max.message.bytes`.
    pub max_message_bytes: Option<u32>,
    /// `message.timestamp.type`.
    pub message_timestamp_type: Option<TimestampType>,
    /// `compression.type`.
    pub compression_type: Option<CompressionType>,
    /// `message.timestamp.before.max.ms`.
    pub message_timestamp_before_max_ms: Option<i64>,
    /// `message.timestamp.after.max.ms`.
    pub message_timestamp_after_max_ms: Option<i64>,
    /// `segment.index.bytes`: what each index of a new active segment is preallocated to;
    /// a segment whose index is full rolls.
    pub segment_index_bytes: Option<u32>,
    /// `index.interval.bytes`: bytes of batches between offset-index entries.
    pub index_interval_bytes: Option<u32>,
    /// `flush.messages`: fsync after this many appended messages (`i64::MAX`: never).
    pub flush_messages: Option<i64>,
    /// `flush.ms`: fsync when this long has passed since the last flush (`i64::MAX`: never).
    pub flush_ms: Option<i64>,
    /// `max.compaction.lag.ms`: a compacted log whose oldest uncleaned record is older than
    /// this is compacted whatever its dirty ratio (`i64::MAX`: never forced).
    pub max_compaction_lag_ms: Option<i64>,
    /// Keys of [`TOPIC_CONFIGS_WITHOUT_EFFECT`] that are set, with their values as given.
    pub without_effect: BTreeMap<String, String>,
}

fn invalid(key: &str, value: &str, reason: impl Into<String>) -> Error {
    Error::InvalidTopicConfig {
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.into(),
    }
}

fn parse_long(key: &str, value: &str, min: i64) -> Result<i64> {
    let v: i64 = value
        .trim()
        .parse()
        .map_err(|_| invalid(key, value, "not a whole number"))?;
    if v < min {
        return Err(invalid(key, value, format!("below the minimum {min}")));
    }
    Ok(v)
}

fn parse_int(key: &str, value: &str, min: i64) -> Result<u32> {
    let v = parse_long(key, value, min)?;
    u32::try_from(v)
        .ok()
        .filter(|v| i32::try_from(*v).is_ok())
        .ok_or_else(|| invalid(key, value, "above the maximum 2147483647"))
}

impl TopicConfig {
    /// No overrides.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets one key from its string value; an unknown key or a bad value is an
    /// [`Error::InvalidTopicConfig`] and leaves the config unchanged.
    pub fn set(&mut self, key: &str, value: &str) -> Result<&mut Self> {
        match key {
            RETENTION_MS => self.retention_ms = Some(parse_long(key, value, -1)?),
            RETENTION_BYTES => self.retention_bytes = Some(parse_long(key, value, -1)?),
            // Kafka's lower bound: a segment holds at least one record's overhead.
            SEGMENT_BYTES => self.segment_bytes = Some(parse_int(key, value, 14)?),
            SEGMENT_MS => self.segment_ms = Some(parse_long(key, value, 1)?),
            CLEANUP_POLICY => {
                self.cleanup_policy = Some(value.parse().map_err(|_| {
                    invalid(key, value, "expected delete, compact or compact,delete")
                })?)
            }
            MIN_CLEANABLE_DIRTY_RATIO => {
                let v: f64 = value
                    .trim()
                    .parse()
                    .map_err(|_| invalid(key, value, "not a number"))?;
                if !(0.0..=1.0).contains(&v) {
                    return Err(invalid(key, value, "outside [0, 1]"));
                }
                self.min_cleanable_dirty_ratio = Some(v);
            }
            DELETE_RETENTION_MS => self.delete_retention_ms = Some(parse_long(key, value, 0)?),
            MIN_COMPACTION_LAG_MS => self.min_compaction_lag_ms = Some(parse_long(key, value, 0)?),
            MAX_MESSAGE_BYTES => self.max_message_bytes = Some(parse_int(key, value, 0)?),
            MESSAGE_TIMESTAMP_TYPE => {
                self.message_timestamp_type = Some(match value {
                    "CreateTime" => TimestampType::CreateTime,
                    "LogAppendTime" => TimestampType::LogAppendTime,
                    _ => return Err(invalid(key, value, "expected CreateTime or LogAppendTime")),
                })
            }
            COMPRESSION_TYPE => {
                self.compression_type = Some(CompressionType::parse(value).ok_or_else(|| {
                    invalid(
                        key,
                        value,
                        "expected producer, uncompressed, gzip, snappy, lz4 or zstd",
                    )
                })?)
            }
            MESSAGE_TIMESTAMP_BEFORE_MAX_MS => {
                self.message_timestamp_before_max_ms = Some(parse_long(key, value, 0)?)
            }
            MESSAGE_TIMESTAMP_AFTER_MAX_MS => {
                self.message_timestamp_after_max_ms = Some(parse_long(key, value, 0)?)
            }
            // One time-index entry (12 bytes) at least: see the type's docs.
            SEGMENT_INDEX_BYTES => self.segment_index_bytes = Some(parse_int(key, value, 12)?),
            INDEX_INTERVAL_BYTES => self.index_interval_bytes = Some(parse_int(key, value, 0)?),
            FLUSH_MESSAGES => self.flush_messages = Some(parse_long(key, value, 1)?),
            FLUSH_MS => self.flush_ms = Some(parse_long(key, value, 0)?),
            MAX_COMPACTION_LAG_MS => self.max_compaction_lag_ms = Some(parse_long(key, value, 1)?),
            _ if TOPIC_CONFIGS_WITHOUT_EFFECT.contains(&key) => {
                check_without_effect(key, value)?;
                self.without_effect
                    .insert(key.to_string(), value.trim().to_string());
            }
            _ => return Err(invalid(key, value, "unknown topic config")),
        }
        Ok(self)
    }

    /// Parses a whole map; the first bad entry fails it.
    pub fn from_map(map: &BTreeMap<String, String>) -> Result<Self> {
        let mut config = Self::new();
        for (k, v) in map {
            config.set(k, v)?;
        }
        Ok(config)
    }

    /// The overrides as Kafka's `key=value` strings (only keys that are set).
    pub fn to_map(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        let mut put = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                m.insert(k.to_string(), v);
            }
        };
        put(RETENTION_MS, self.retention_ms.map(|v| v.to_string()));
        put(RETENTION_BYTES, self.retention_bytes.map(|v| v.to_string()));
        put(SEGMENT_BYTES, self.segment_bytes.map(|v| v.to_string()));
        put(SEGMENT_MS, self.segment_ms.map(|v| v.to_string()));
        put(
            CLEANUP_POLICY,
            self.cleanup_policy.map(|v| v.as_str().to_string()),
        );
        put(
            MIN_CLEANABLE_DIRTY_RATIO,
            self.min_cleanable_dirty_ratio.map(|v| v.to_string()),
        );
        put(
            DELETE_RETENTION_MS,
            self.delete_retention_ms.map(|v| v.to_string()),
        );
        put(
            MIN_COMPACTION_LAG_MS,
            self.min_compaction_lag_ms.map(|v| v.to_string()),
        );
        put(
            MAX_MESSAGE_BYTES,
            self.max_message_bytes.map(|v| v.to_string()),
        );
        put(
            MESSAGE_TIMESTAMP_TYPE,
            self.message_timestamp_type
                .map(|v| timestamp_type_name(v).to_string()),
        );
        put(
            COMPRESSION_TYPE,
            self.compression_type.map(|v| v.name().to_string()),
        );
        put(
            MESSAGE_TIMESTAMP_BEFORE_MAX_MS,
            self.message_timestamp_before_max_ms.map(|v| v.to_string()),
        );
        put(
            MESSAGE_TIMESTAMP_AFTER_MAX_MS,
            self.message_timestamp_after_max_ms.map(|v| v.to_string()),
        );
        put(
            SEGMENT_INDEX_BYTES,
            self.segment_index_bytes.map(|v| v.to_string()),
        );
        put(
            INDEX_INTERVAL_BYTES,
            self.index_interval_bytes.map(|v| v.to_string()),
        );
        put(FLUSH_MESSAGES, self.flush_messages.map(|v| v.to_string()));
        put(FLUSH_MS, self.flush_ms.map(|v| v.to_string()));
        put(
            MAX_COMPACTION_LAG_MS,
            self.max_compaction_lag_ms.map(|v| v.to_string()),
        );
        for (k, v) in &self.without_effect {
            m.insert(k.clone(), v.clone());
        }
        m
    }

    /// The typed settings a partition of this topic uses: these overrides over `defaults`.
    pub fn resolve(&self, defaults: &TopicSettings) -> TopicSettings {
        let mut log = defaults.log.clone();
        if let Some(v) = self.segment_bytes {
            log.segment_bytes = u64::from(v);
        }
        if let Some(v) = self.segment_ms {
            log.segment_ms = Some(v);
        }
        if let Some(v) = self.max_message_bytes {
            log.max_message_bytes = v;
        }
        if let Some(v) = self.message_timestamp_type {
            log.message_timestamp_type = v;
        }
        if let Some(v) = self.retention_ms {
            log.retention_ms = (v >= 0).then_some(v);
        }
        if let Some(v) = self.retention_bytes {
            log.retention_bytes = u64::try_from(v).ok();
        }
        if let Some(v) = self.cleanup_policy {
            log.cleanup_policy = v;
        }
        if let Some(v) = self.min_cleanable_dirty_ratio {
            log.min_cleanable_dirty_ratio = v;
        }
        if let Some(v) = self.delete_retention_ms {
            log.delete_retention_ms = v;
        }
        if let Some(v) = self.min_compaction_lag_ms {
            log.min_compaction_lag_ms = v;
        }
        if let Some(v) = self.message_timestamp_before_max_ms {
            log.message_timestamp_before_max_ms = v;
        }
        if let Some(v) = self.message_timestamp_after_max_ms {
            log.message_timestamp_after_max_ms = v;
        }
        if let Some(v) = self.segment_index_bytes {
            log.segment_index_bytes = v;
        }
        if let Some(v) = self.index_interval_bytes {
            log.index_interval_bytes = v;
        }
        // Kafka's default, Long.MAX_VALUE, is its "never".
        let unless_never = |v: i64| (v != i64::MAX).then_some(v);
        if let Some(v) = self.flush_messages {
            log.flush_messages = unless_never(v).and_then(|v| u64::try_from(v).ok());
        }
        if let Some(v) = self.flush_ms {
            log.flush_ms = unless_never(v);
        }
        if let Some(v) = self.max_compaction_lag_ms {
            log.max_compaction_lag_ms = unless_never(v);
        }
        let compression_type = self.compression_type.unwrap_or(defaults.compression_type);
        log.compression_type = compression_type;
        TopicSettings {
            log,
            compression_type,
        }
    }

    /// [`resolve`](Self::resolve), then the checks that span keys and defaults
    /// ([`LogConfig::validate`]: `max.compaction.lag.ms` must not be below
    /// `min.compaction.lag.ms`); a conflict is an [`Error::InvalidTopicConfig`] naming the key.
    ///
    /// ```
    /// use streamlog::storage::{TopicConfig, TopicSettings};
    ///
    /// let mut config = TopicConfig::new();
    /// config.set("max.compaction.lag.ms", "1000")?;
    /// config.set("min.compaction.lag.ms", "5000")?;
    /// assert!(config.resolve_checked(&TopicSettings::default()).is_err());
    /// config.set("min.compaction.lag.ms", "1000")?;
    /// let settings = config.resolve_checked(&TopicSettings::default())?;
    /// assert_eq!(settings.log.max_compaction_lag_ms, Some(1000));
    /// # Ok::<(), streamlog::Error>(())
    /// ```
    pub fn resolve_checked(&self, defaults: &TopicSettings) -> Result<TopicSettings> {
        let settings = self.resolve(defaults);
        settings.log.validate().map_err(|e| match e {
            Error::InvalidConfig { key, value, reason } => invalid(key, &value, reason),
            e => e,
        })?;
        Ok(settings)
    }

    /// Serialises as `key=value` lines (the persisted form).
    pub(crate) fn to_properties(&self) -> String {
        let mut s = String::new();
        for (k, v) in self.to_map() {
            s.push_str(&k);
            s.push('=');
            s.push_str(&v);
            s.push('\n');
        }
        s
    }
}

/// The typed settings of one topic's partitions: its overrides resolved over the storage's
/// defaults. The default value is Kafka's broker defaults.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TopicSettings {
    /// The partition log's config, with the topic's overrides applied (its
    /// `compression_type` is the field beside it); in the defaults, the template for every
    /// log, whose `compression_type` the resolved settings replace with the field beside it.
    pub log: LogConfig,
    /// `compression.type` (Kafka: producer); resolved settings copy it into
    /// `log.compression_type`, which a partition's appends apply.
    pub compression_type: CompressionType,
}

impl Default for TopicSettings {
    fn default() -> Self {
        TopicSettings {
            log: LogConfig::default(),
            compression_type: CompressionType::Producer,
        }
    }
}

/// Settings of a [`Storage`](super::Storage): the settings of topics without overrides,
/// and the budget of open files and memory maps.
///
/// Build one with [`StorageConfig::builder`], or take the default and set fields;
/// [`Storage::open`](super::Storage::open) checks it either way ([`StorageConfig::validate`]).
///
/// ```
/// use streamlog::storage::StorageConfig;
/// use streamlog::LogConfig;
///
/// let config = StorageConfig::builder()
///     .log(LogConfig::builder().segment_bytes(64 << 20).retention_ms(None).build()?)
///     .max_open_files(256)
///     .build()?;
/// assert_eq!(config.defaults.log.segment_bytes, 64 << 20);
///
/// let mut config = StorageConfig::default();
/// config.defaults.log.segment_bytes = 64 << 20;
/// config.max_open_files = 256;
/// # Ok::<(), streamlog::Error>(())
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct StorageConfig {
    /// What a topic uses where it has no override (Kafka's defaults unless changed).
    pub defaults: TopicSettings,
    /// Most file handles the open partition logs may hold (default 512, half the usual
    /// limit of 1024). Each segment of an open log counts 3 (`.log`, `.index`,
    /// `.timeindex`).
    pub max_open_files: usize,
    /// Most memory maps the open partition logs may hold (default 1024). Each segment of
    /// an open log counts 2 (its two indexes).
    pub max_open_maps: usize,
    /// The filesystem everything goes through.
    pub fs: Arc<dyn FileSystem>,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            defaults: TopicSettings::default(),
            max_open_files: 512,
            max_open_maps: 1024,
            fs: RealFs::shared(),
        }
    }
}

/// Each segment of an open log holds this many files (`.log`, `.index`, `.timeindex`): the
/// smallest budget that can open a partition.
const MIN_OPEN_FILES: usize = 3;
/// Each segment of an open log maps its two indexes.
const MIN_OPEN_MAPS: usize = 2;

impl StorageConfig {
    /// A builder starting from the defaults; [`StorageConfigBuilder::build`] checks the result.
    pub fn builder() -> StorageConfigBuilder {
        StorageConfigBuilder {
            config: StorageConfig::default(),
        }
    }

    /// Checks the default log config ([`LogConfig::validate`]) and that the budgets can
    /// open at least one segment (3 files, 2 maps); the first bad value is an
    /// [`Error::InvalidConfig`] naming its key.
    pub fn validate(&self) -> Result<()> {
        self.defaults.log.validate()?;
        if self.max_open_files < MIN_OPEN_FILES {
            return Err(Error::InvalidConfig {
                key: "max_open_files",
                value: self.max_open_files.to_string(),
                reason: "must be at least 3 (one segment's files)",
            });
        }
        if self.max_open_maps < MIN_OPEN_MAPS {
            return Err(Error::InvalidConfig {
                key: "max_open_maps",
                value: self.max_open_maps.to_string(),
                reason: "must be at least 2 (one segment's indexes)",
            });
        }
        Ok(())
    }
}

/// Builds a [`StorageConfig`] one setting at a time, and checks it.
///
/// ```
/// use std::sync::Arc;
/// use streamlog::io::SimFs;
/// use streamlog::storage::{CompressionType, StorageConfig};
/// use streamlog::{Compression, Error};
///
/// let config = StorageConfig::builder()
///     .compression_type(CompressionType::Codec(Compression::None))
///     .fs(Arc::new(SimFs::new(7)))
///     .build()?;
/// assert_eq!(config.max_open_files, 512);
/// assert!(matches!(
///     StorageConfig::builder().max_open_files(0).build(),
///     Err(Error::InvalidConfig { key: "max_open_files", .. })
/// ));
/// # Ok::<(), streamlog::Error>(())
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct StorageConfigBuilder {
    config: StorageConfig,
}

impl StorageConfigBuilder {
    /// What a topic uses where it has no override (see [`StorageConfig::defaults`]).
    pub fn defaults(mut self, defaults: TopicSettings) -> Self {
        self.config.defaults = defaults;
        self
    }

    /// The default partition log config (`defaults.log`).
    pub fn log(mut self, log: LogConfig) -> Self {
        self.config.defaults.log = log;
        self
    }

    /// The default `compression.type` (`defaults.compression_type`).
    pub fn compression_type(mut self, compression_type: CompressionType) -> Self {
        self.config.defaults.compression_type = compression_type;
        self
    }

    /// Most file handles the open logs may hold (see [`StorageConfig::max_open_files`]).
    pub fn max_open_files(mut self, max_open_files: usize) -> Self {
        self.config.max_open_files = max_open_files;
        self
    }

    /// Most memory maps the open logs may hold (see [`StorageConfig::max_open_maps`]).
    pub fn max_open_maps(mut self, max_open_maps: usize) -> Self {
        self.config.max_open_maps = max_open_maps;
        self
    }

    /// The filesystem everything goes through (see [`StorageConfig::fs`]).
    pub fn fs(mut self, fs: Arc<dyn FileSystem>) -> Self {
        self.config.fs = fs;
        self
    }

    /// The config, if every value is within its bounds ([`StorageConfig::validate`]).
    pub fn build(self) -> Result<StorageConfig> {
        self.config.validate()?;
        Ok(self.config)
    }
}

impl std::fmt::Debug for StorageConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageConfig")
            .field("defaults", &self.defaults)
            .field("max_open_files", &self.max_open_files)
            .field("max_open_maps", &self.max_open_maps)
            .finish_non_exhaustive()
    }
}

/// Parses the persisted `key=value` lines (blank lines and `#` comments skipped).
pub(crate) fn parse_properties(text: &str) -> Result<BTreeMap<String, String>> {
    let mut map = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (k, v) = line
            .split_once('=')
            .ok_or_else(|| invalid(line, "", "line without '='"))?;
        map.insert(k.trim().to_string(), v.trim().to_string());
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_round_trips() {
        let values = [
            (RETENTION_MS, "-1"),
            (RETENTION_BYTES, "1048576"),
            (SEGMENT_BYTES, "1024"),
            (SEGMENT_MS, "60000"),
            (CLEANUP_POLICY, "compact,delete"),
            (MIN_CLEANABLE_DIRTY_RATIO, "0.25"),
            (DELETE_RETENTION_MS, "0"),
            (MIN_COMPACTION_LAG_MS, "5"),
            (MAX_MESSAGE_BYTES, "100"),
            (MESSAGE_TIMESTAMP_TYPE, "LogAppendTime"),
            (COMPRESSION_TYPE, "uncompressed"),
            (MESSAGE_TIMESTAMP_BEFORE_MAX_MS, "9223372036854775807"),
            (MESSAGE_TIMESTAMP_AFTER_MAX_MS, "0"),
            (SEGMENT_INDEX_BYTES, "4096"),
            (INDEX_INTERVAL_BYTES, "0"),
            (FLUSH_MESSAGES, "1"),
            (FLUSH_MS, "9223372036854775807"),
            (MAX_COMPACTION_LAG_MS, "60000"),
        ];
        let map: BTreeMap<String, String> = values
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(map.len(), TOPIC_CONFIG_KEYS.len());
        let config = TopicConfig::from_map(&map).unwrap();
        assert_eq!(config.to_map(), map);
        let text = config.to_properties();
        assert_eq!(
            TopicConfig::from_map(&parse_properties(&text).unwrap()).unwrap(),
            config
        );
    }

    /// Kafka's "never" (`Long.MAX_VALUE`) is the log's `None`; other values carry over.
    #[test]
    fn never_values_resolve_to_none() {
        let defaults = TopicSettings::default();
        let mut config = TopicConfig::new();
        for k in [FLUSH_MESSAGES, FLUSH_MS, MAX_COMPACTION_LAG_MS] {
            config.set(k, "9223372036854775807").unwrap();
        }
        let log = config.resolve(&defaults).log;
        assert_eq!(
            (log.flush_messages, log.flush_ms, log.max_compaction_lag_ms),
            (None, None, None)
        );
        config.set(FLUSH_MESSAGES, "3").unwrap();
        config.set(FLUSH_MS, "0").unwrap();
        config.set(MAX_COMPACTION_LAG_MS, "7").unwrap();
        config.set(SEGMENT_INDEX_BYTES, "24").unwrap();
        config.set(INDEX_INTERVAL_BYTES, "0").unwrap();
        let log = config.resolve_checked(&defaults).unwrap().log;
        assert_eq!(
            (log.flush_messages, log.flush_ms, log.max_compaction_lag_ms),
            (Some(3), Some(0), Some(7))
        );
        assert_eq!((log.segment_index_bytes, log.index_interval_bytes), (24, 0));
    }

    /// Kafka's lower bounds (and ours for `segment.index.bytes`); a refused value leaves
    /// the config as it was.
    #[test]
    fn wired_keys_are_bounded() {
        let config = TopicConfig::new();
        for (k, v) in [
            (SEGMENT_INDEX_BYTES, "11"),
            (SEGMENT_INDEX_BYTES, "2147483648"),
            (INDEX_INTERVAL_BYTES, "-1"),
            (FLUSH_MESSAGES, "0"),
            (FLUSH_MS, "-1"),
            (MAX_COMPACTION_LAG_MS, "0"),
            (FLUSH_MS, "soon"),
        ] {
            let mut c = config.clone();
            assert!(
                matches!(c.set(k, v), Err(Error::InvalidTopicConfig { .. })),
                "{k}={v}"
            );
            assert_eq!(c, config);
        }
        // A conflict with a default: min.compaction.lag.ms over the topic's maximum.
        let mut defaults = TopicSettings::default();
        defaults.log.min_compaction_lag_ms = 10;
        let mut c = TopicConfig::new();
        c.set(MAX_COMPACTION_LAG_MS, "5").unwrap();
        assert!(matches!(
            c.resolve_checked(&defaults),
            Err(Error::InvalidTopicConfig { key, .. }) if key == MAX_COMPACTION_LAG_MS
        ));
    }

    /// Kafka's configs without effect here are accepted and kept when Kafka would accept
    /// them, refused (INVALID_CONFIG) when Kafka would not.
    #[test]
    fn configs_without_effect_are_validated_and_kept() {
        let mut config = TopicConfig::new();
        config.set("message.format.version", "0.10.0.0").unwrap();
        config
            .set("unclean.leader.election.enable", "true")
            .unwrap();
        config
            .set("leader.replication.throttled.replicas", "0:1,1:1")
            .unwrap();
        let map = config.to_map();
        assert_eq!(map["message.format.version"], "0.10.0.0");
        assert_eq!(map.len(), 3);
        let text = config.to_properties();
        assert_eq!(
            TopicConfig::from_map(&parse_properties(&text).unwrap()).unwrap(),
            config
        );
        for (k, v) in [
            ("message.format.version", "latest"),
            ("message.format.version", "3"),
            ("preallocate", "yes"),
            ("segment.jitter.ms", "-1"),
            (
                "follower.replication.throttled.replicas",
                "a\nretention.ms=1",
            ),
        ] {
            let mut c = config.clone();
            assert!(c.set(k, v).is_err(), "{k}={v}");
            assert_eq!(c, config);
        }
    }
}
