//! The offset store: `__consumer_offsets` partitions of a `Storage`.

use std::sync::Arc;

use super::coordinator::{Append, LoadEntry};
use super::partition::{partition_for_group, DEFAULT_OFFSETS_TOPIC_NUM_PARTITIONS, OFFSETS_TOPIC};
use super::records::{GroupMetadataValue, OffsetsRecord};
use super::state::{OffsetAndMetadata, OffsetsState};
use crate::error::{Error, Result};
use crate::kafka_code::KafkaCode;
use crate::log::{AppendInfo, CleanerStats, Log};
use crate::producer::TxnResult;
use crate::record::{Batch, BatchBuilder, BatchOptions, Batches, Compression, ControlRecordType};
use crate::storage::{Storage, TopicConfig, CLEANUP_POLICY, SEGMENT_BYTES};

/// `offsets.topic.num.partitions`: partitions of `__consumer_offsets` when it is created.
pub const OFFSETS_TOPIC_NUM_PARTITIONS: &str = "offsets.topic.num.partitions";
/// `offsets.topic.segment.bytes`: segment size of `__consumer_offsets`.
pub const OFFSETS_TOPIC_SEGMENT_BYTES: &str = "offsets.topic.segment.bytes";
/// `offsets.topic.compression.codec`: codec of the batches the store writes.
pub const OFFSETS_TOPIC_COMPRESSION_CODEC: &str = "offsets.topic.compression.codec";
/// `offset.metadata.max.bytes`: the longest metadata string a commit may carry.
pub const OFFSET_METADATA_MAX_BYTES: &str = "offset.metadata.max.bytes";

/// How the offsets topic is laid out and what commits it accepts (Kafka's broker settings
/// of the same names and defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OffsetsTopicConfig {
    /// `offsets.topic.num.partitions` (50). Only used to create the topic: an existing
    /// topic keeps its partition count, which is what groups map over.
    pub num_partitions: u32,
    /// `offsets.topic.segment.bytes` (100 MiB), the topic's `segment.bytes`.
    pub segment_bytes: u32,
    /// `offsets.topic.compression.codec` (none).
    pub compression: Compression,
    /// `offset.metadata.max.bytes` (4096), counted as Kafka counts a Java string's length
    /// (UTF-16 code units).
    pub offset_metadata_max_bytes: usize,
}

impl Default for OffsetsTopicConfig {
    fn default() -> Self {
        OffsetsTopicConfig {
            num_partitions: DEFAULT_OFFSETS_TOPIC_NUM_PARTITIONS,
            segment_bytes: 100 * 1024 * 1024,
            compression: Compression::None,
            offset_metadata_max_bytes: 4096,
        }
    }
}

impl OffsetsTopicConfig {
    /// Sets one setting from its Kafka name and string value; an unknown name or a bad
    /// value is [`Error::InvalidConfig`] (an unknown key [`Error::UnknownConfig`]) and changes
    /// nothing.
    ///
    /// ```
    /// use streamlog::group::OffsetsTopicConfig;
    ///
    /// let mut config = OffsetsTopicConfig::default();
    /// config.set("offsets.topic.num.partitions", "8")?;
    /// assert_eq!(config.num_partitions, 8);
    /// assert!(config.set("offsets.topic.num.partitions", "0").is_err());
    /// # Ok::<(), streamlog::Error>(())
    /// ```
    pub fn set(&mut self, key: &str, value: &str) -> Result<&mut Self> {
        let bad = |key: &'static str, reason: &'static str| Error::InvalidConfig {
            key,
            value: value.to_string(),
            reason,
        };
        match key {
            OFFSETS_TOPIC_NUM_PARTITIONS => {
                let reason = "a partition count from 1 to the storage's limit";
                let n: u32 = value
                    .parse()
                    .map_err(|_| bad(OFFSETS_TOPIC_NUM_PARTITIONS, reason))?;
                if n == 0 || n > crate::storage::MAX_PARTITIONS {
                    return Err(bad(OFFSETS_TOPIC_NUM_PARTITIONS, reason));
                }
                self.num_partitions = n;
            }
            OFFSETS_TOPIC_SEGMENT_BYTES => {
                let reason = "from 14 to i32::MAX bytes";
                let n: u32 = value
                    .parse()
                    .map_err(|_| bad(OFFSETS_TOPIC_SEGMENT_BYTES, reason))?;
                if n < 14 || n > i32::MAX as u32 {
                    return Err(bad(OFFSETS_TOPIC_SEGMENT_BYTES, reason));
                }
                self.segment_bytes = n;
            }
            OFFSETS_TOPIC_COMPRESSION_CODEC => {
                self.compression = match value {
                    "none" | "0" => Compression::None,
                    "gzip" | "1" => Compression::Gzip,
                    "snappy" | "2" => Compression::Snappy,
                    "lz4" | "3" => Compression::Lz4,
                    "zstd" | "4" => Compression::Zstd,
                    _ => {
                        return Err(bad(
                            OFFSETS_TOPIC_COMPRESSION_CODEC,
                            "none, gzip, snappy, lz4 or zstd (or 0-4)",
                        ))
                    }
                };
            }
            OFFSET_METADATA_MAX_BYTES => {
                self.offset_metadata_max_bytes = value
                    .parse()
                    .map_err(|_| bad(OFFSET_METADATA_MAX_BYTES, "a byte count"))?;
            }
            _ => {
                return Err(Error::UnknownConfig {
                    key: key.to_string(),
                })
            }
        }
        Ok(self)
    }
}

/// One offset to commit: a topic partition and its [`OffsetAndMetadata`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetCommit {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The offset and what comes with it.
    pub offset: OffsetAndMetadata,
}

impl OffsetCommit {
    /// Commit `offset` for `topic`-`partition`.
    pub fn new(topic: impl Into<String>, partition: i32, offset: OffsetAndMetadata) -> Self {
        OffsetCommit {
            topic: topic.into(),
            partition,
            offset,
        }
    }
}

/// Creates `__consumer_offsets` in `storage` if it does not exist (`cleanup.policy=compact`,
/// `segment.bytes` from the config, `config.num_partitions` partitions) and returns its
/// partition count.
pub fn ensure_offsets_topic(storage: &Storage, config: &OffsetsTopicConfig) -> Result<u32> {
    match storage.partition_count(OFFSETS_TOPIC) {
        Ok(n) => return Ok(n),
        Err(Error::UnknownTopic { .. }) => {}
        Err(e) => return Err(e),
    }
    let mut topic = TopicConfig::new();
    topic.set(CLEANUP_POLICY, "compact")?;
    topic.set(SEGMENT_BYTES, &config.segment_bytes.to_string())?;
    match storage.create_topic(OFFSETS_TOPIC, config.num_partitions, topic) {
        // Created meanwhile by another caller: its count stands.
        Ok(()) | Err(Error::TopicExists { .. }) => storage.partition_count(OFFSETS_TOPIC),
        Err(e) => Err(e),
    }
}

/// The error code Kafka answers an offset commit with when writing it failed (Kafka's
/// `GroupMetadataManager` maps the log's errors this way): too large a batch is
/// `INVALID_COMMIT_OFFSET_SIZE`, storage trouble `NOT_COORDINATOR` (the client finds the
/// coordinator again), a fenced producer its own code.
pub fn commit_error_code(error: &Error) -> KafkaCode {
    match error.kafka_code() {
        KafkaCode::MESSAGE_TOO_LARGE | KafkaCode::RECORD_LIST_TOO_LARGE => {
            KafkaCode::INVALID_COMMIT_OFFSET_SIZE
        }
        KafkaCode::UNKNOWN_TOPIC_OR_PARTITION => KafkaCode::COORDINATOR_NOT_AVAILABLE,
        KafkaCode::KAFKA_STORAGE_ERROR | KafkaCode::NOT_LEADER_OR_FOLLOWER => {
            KafkaCode::NOT_COORDINATOR
        }
        KafkaCode::INVALID_PRODUCER_EPOCH => KafkaCode::PRODUCER_FENCED,
        KafkaCode::CORRUPT_MESSAGE | KafkaCode::INVALID_REQUEST => KafkaCode::UNKNOWN_SERVER_ERROR,
        other => other,
    }
}

/// Bytes read from the log per step while loading.
const LOAD_CHUNK: usize = 1 << 20;

/// One partition of `__consumer_offsets`: its log and the state it holds. Writes take
/// `&mut self`: one writer per partition, as in Kafka.
///
/// The offset store: committed offsets and group metadata in the internal compacted topic
/// `__consumer_offsets` of a [`Storage`], one [`OffsetsPartition`] per partition of it.
///
/// A group lives in partition [`partition_for_group`] of the topic. Loading a partition
/// replays it from its log start into an [`OffsetsState`]; every write appends one record
/// batch in Kafka's layout (the key and value bytes of [`OffsetsRecord`]s) and then replays
/// that batch, so memory always says what the log says. A failed write leaves both as they
/// were. Deletions are tombstones, which compaction (the crate's, through
/// [`OffsetsPartition::compact`] or [`Storage::maintain`], since the topic is created with
/// `cleanup.policy=compact`) eventually removes along with the records they replace.
///
/// Transactional offset commits (`TxnOffsetCommit`) are written as transactional batches of
/// the producer, so they stay pending until the transaction coordinator writes the
/// producer's COMMIT or ABORT marker into this partition ([`OffsetsPartition::write_txn_marker`]);
/// a reload replays the same batches and markers, so pending, committed and aborted offsets
/// come back as they were, and the log's last stable offset stays below an undecided
/// transaction for read_committed readers of the topic.
///
/// ```
/// use std::sync::Arc;
/// use streamlog::group::{OffsetAndMetadata, OffsetCommit, OffsetsPartition, OffsetsTopicConfig, partition_for_group};
/// use streamlog::storage::{Storage, StorageConfig};
/// use streamlog::{KafkaCode, TxnResult};
///
/// let dir = tempfile::tempdir()?;
/// let storage = Storage::open(dir.path(), StorageConfig::default())?;
/// let config = OffsetsTopicConfig::default();
/// let p = partition_for_group("payments", config.num_partitions)?;
/// let mut offsets = OffsetsPartition::load(&storage, &config, p)?;
///
/// let codes = offsets.commit_offsets("payments", &[OffsetCommit::new("orders", 0, OffsetAndMetadata::new(42, 1_000))], 1_000)?;
/// assert_eq!(codes, [KafkaCode::NONE]);
///
/// // A transactional commit is invisible until its COMMIT marker.
/// offsets.commit_transactional_offsets("payments", 7, 0, &[OffsetCommit::new("orders", 0, OffsetAndMetadata::new(50, 2_000))], 2_000)?;
/// assert_eq!(offsets.state().committed_offset("payments", "orders", 0).unwrap().offset, 42);
/// offsets.write_txn_marker(7, 0, TxnResult::Commit, 0)?;
/// assert_eq!(offsets.state().committed_offset("payments", "orders", 0).unwrap().offset, 50);
///
/// // Reloading the partition rebuilds the same state from the log.
/// drop(offsets);
/// let again = OffsetsPartition::load(&storage, &config, p)?;
/// assert_eq!(again.state().committed_offset("payments", "orders", 0).unwrap().offset, 50);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct OffsetsPartition {
    partition: u32,
    num_partitions: u32,
    config: OffsetsTopicConfig,
    log: Arc<Log>,
    state: OffsetsState,
}

impl OffsetsPartition {
    /// Opens partition `partition` of `__consumer_offsets` (creating the topic if needed)
    /// and replays it from its log start to its log end.
    pub fn load(storage: &Storage, config: &OffsetsTopicConfig, partition: u32) -> Result<Self> {
        let num_partitions = ensure_offsets_topic(storage, config)?;
        let log = storage.partition(OFFSETS_TOPIC, partition)?;
        let mut state = OffsetsState::new();
        replay_log(&log, &mut state)?;
        Ok(OffsetsPartition {
            partition,
            num_partitions,
            config: config.clone(),
            log,
            state,
        })
    }

    /// The partition number.
    pub fn partition(&self) -> u32 {
        self.partition
    }

    /// The partition's log.
    pub fn log(&self) -> &Arc<Log> {
        &self.log
    }

    /// What the partition holds.
    pub fn state(&self) -> &OffsetsState {
        &self.state
    }

    /// [`Error::NotCoordinator`] unless `group` lives in this partition.
    pub fn check_group(&self, group: &str) -> Result<()> {
        let p = partition_for_group(group, self.num_partitions)?;
        if p == self.partition {
            Ok(())
        } else {
            Err(Error::NotCoordinator {
                group: group.to_string(),
                partition: self.partition,
                coordinator_partition: p,
            })
        }
    }

    /// `OFFSET_METADATA_TOO_LARGE` for metadata over `offset.metadata.max.bytes`.
    fn metadata_code(&self, commit: &OffsetCommit) -> KafkaCode {
        // Kafka compares the Java string's length: UTF-16 code units.
        let len = commit.offset.metadata.encode_utf16().count();
        if len > self.config.offset_metadata_max_bytes {
            KafkaCode::OFFSET_METADATA_TOO_LARGE
        } else {
            KafkaCode::NONE
        }
    }

    /// Commits offsets for `group` (OffsetCommit), stamped `timestamp`. Returns one code
    /// per commit, in order: `OFFSET_METADATA_TOO_LARGE` for those whose metadata is too
    /// long (not written), `NONE` for the others, which are written in one batch. Fails,
    /// writing nothing, when the group lives in another partition or the append fails
    /// (answer the client with [`commit_error_code`]).
    pub fn commit_offsets(
        &mut self,
        group: &str,
        commits: &[OffsetCommit],
        timestamp: i64,
    ) -> Result<Vec<KafkaCode>> {
        self.commit(group, commits, None, timestamp)
    }

    /// Commits offsets for `group` in the transaction of `producer_id` at `producer_epoch`
    /// (TxnOffsetCommit): written as a transactional batch of that producer, pending until
    /// [`write_txn_marker`](Self::write_txn_marker) commits or aborts it. Codes as for
    /// [`commit_offsets`](Self::commit_offsets); an epoch older than the producer's is
    /// [`Error::InvalidProducerEpoch`] (Kafka answers `PRODUCER_FENCED`).
    pub fn commit_transactional_offsets(
        &mut self,
        group: &str,
        producer_id: i64,
        producer_epoch: i16,
        commits: &[OffsetCommit],
        timestamp: i64,
    ) -> Result<Vec<KafkaCode>> {
        if producer_id < 0 {
            return Err(Error::InvalidProducerId {
                producer_id,
                what: "a transactional offset commit",
            });
        }
        self.commit(
            group,
            commits,
            Some((producer_id, producer_epoch)),
            timestamp,
        )
    }

    fn commit(
        &mut self,
        group: &str,
        commits: &[OffsetCommit],
        producer: Option<(i64, i16)>,
        timestamp: i64,
    ) -> Result<Vec<KafkaCode>> {
        self.check_group(group)?;
        let codes: Vec<KafkaCode> = commits.iter().map(|c| self.metadata_code(c)).collect();
        let records: Vec<OffsetsRecord> = commits
            .iter()
            .zip(&codes)
            .filter(|(_, code)| !code.is_error())
            .map(|(c, _)| {
                OffsetsRecord::offset_commit(
                    group,
                    c.topic.clone(),
                    c.partition,
                    c.offset.to_value(),
                )
            })
            .collect();
        if !records.is_empty() {
            self.append(&records, producer, timestamp)?;
        }
        Ok(codes)
    }

    /// Writes `group`'s metadata (what the coordinator persists when a rebalance completes).
    pub fn store_group(
        &mut self,
        group: &str,
        value: &GroupMetadataValue,
        timestamp: i64,
    ) -> Result<()> {
        self.append(
            &[OffsetsRecord::group_metadata(group, value.clone())],
            None,
            timestamp,
        )
        .map(|_| ())
    }

    /// Deletes `group`'s committed offsets of the given partitions (OffsetDelete):
    /// tombstones for those it holds. [`Error::GroupIdNotFound`] when the partition holds
    /// nothing for the group.
    pub fn delete_offsets(
        &mut self,
        group: &str,
        partitions: &[(String, i32)],
        timestamp: i64,
    ) -> Result<()> {
        self.check_group(group)?;
        if !self.state.contains_group(group) {
            return Err(Error::GroupIdNotFound {
                group: group.to_string(),
            });
        }
        let records: Vec<OffsetsRecord> = partitions
            .iter()
            .filter(|(t, p)| self.state.committed_offset(group, t, *p).is_some())
            .map(|(t, p)| OffsetsRecord::offset_tombstone(group, t.clone(), *p))
            .collect();
        if !records.is_empty() {
            self.append(&records, None, timestamp)?;
        }
        Ok(())
    }

    /// Deletes `group` (DeleteGroups): tombstones for every committed offset and for its
    /// metadata. [`Error::GroupIdNotFound`] when the partition holds nothing for the group.
    /// Whether the group may be deleted (it must be empty) is the coordinator's call.
    pub fn delete_group(&mut self, group: &str, timestamp: i64) -> Result<()> {
        self.check_group(group)?;
        if !self.state.contains_group(group) {
            return Err(Error::GroupIdNotFound {
                group: group.to_string(),
            });
        }
        let mut records: Vec<OffsetsRecord> = self
            .state
            .committed_offsets(group)
            .into_keys()
            .map(|(t, p)| OffsetsRecord::offset_tombstone(group, t, p))
            .collect();
        records.push(OffsetsRecord::group_tombstone(group));
        self.append(&records, None, timestamp).map(|_| ())
    }

    /// Writes `producer_id`'s transaction marker into this partition (what the transaction
    /// coordinator's WriteTxnMarkers does) and applies it: COMMIT makes the producer's
    /// pending offsets committed, ABORT drops them. Fenced epochs are the log's errors
    /// ([`Log::write_txn_marker`]); nothing changes then.
    pub fn write_txn_marker(
        &mut self,
        producer_id: i64,
        producer_epoch: i16,
        result: TxnResult,
        coordinator_epoch: i32,
    ) -> Result<AppendInfo> {
        let info =
            self.log
                .write_txn_marker(producer_id, producer_epoch, result, coordinator_epoch)?;
        self.state
            .replay_marker(producer_id, result == TxnResult::Commit);
        Ok(info)
    }

    /// Appends `records` as one batch stamped `timestamp` (transactional for
    /// `producer = Some((producer_id, producer_epoch))`) and replays it. Every record's group
    /// must live in this partition; on any error nothing is written and the state is
    /// unchanged. The group coordinator writes its outputs through this.
    pub fn append(
        &mut self,
        records: &[OffsetsRecord],
        producer: Option<(i64, i16)>,
        timestamp: i64,
    ) -> Result<AppendInfo> {
        for record in records {
            self.check_group(record.group())?;
        }
        let mut bytes = build_batch(
            &self.log,
            self.config.compression,
            records,
            producer,
            timestamp,
        )?;
        let info = self.log.append(&bytes)?;
        // Replay what was stored: the batch with the offsets the log gave it.
        crate::record::BatchMut::new(&mut bytes)?.set_base_offset(info.first_offset);
        self.state.replay_batch(&Batch::new(&bytes)?)?;
        Ok(info)
    }

    /// Appends what the group coordinator asked for ([`Append`] from its outputs) to this
    /// partition, stamped `timestamp`; report the outcome back with
    /// [`append_completed`](super::coordinator::GroupCoordinator::append_completed) (on
    /// error, with [`commit_error_code`]).
    pub fn append_coordinator_records(
        &mut self,
        append: &Append,
        timestamp: i64,
    ) -> Result<AppendInfo> {
        if i64::from(append.partition) != i64::from(self.partition) {
            return Err(Error::WrongOffsetsPartition {
                append_partition: append.partition,
                partition: self.partition,
            });
        }
        let producer = append.producer.map(|p| (p.producer_id, p.producer_epoch));
        self.append(&append.records, producer, timestamp)
    }

    /// Compacts the partition below its log end at `now_ms` (undecided transactions stay
    /// whole), as maintenance would. The state does not change: compaction keeps what it says.
    pub fn compact(&self, now_ms: i64) -> Result<CleanerStats> {
        self.log.compact(self.log.log_end_offset(), now_ms)
    }
}

/// One batch of `records` in Kafka's layout for `log`, stamped `timestamp`, compressed with
/// `compression`: transactional for `producer = Some((producer_id, producer_epoch))`, with
/// the sequence that continues what `log` knows of that producer (the coordinator writes on
/// the producer's behalf; a new epoch starts at 0).
pub(crate) fn build_batch(
    log: &Log,
    compression: Compression,
    records: &[OffsetsRecord],
    producer: Option<(i64, i16)>,
    timestamp: i64,
) -> Result<Vec<u8>> {
    let mut options = BatchOptions::compressed(compression);
    if let Some((producer_id, producer_epoch)) = producer {
        options.producer_id = producer_id;
        options.producer_epoch = producer_epoch;
        options.base_sequence = match log.producer_state(producer_id) {
            Some(e) if e.producer_epoch == producer_epoch && e.last_seq() >= 0 => {
                if e.last_seq() == i32::MAX {
                    0
                } else {
                    e.last_seq() + 1
                }
            }
            _ => 0,
        };
        options.transactional = true;
    }
    let mut builder = BatchBuilder::new(options);
    for record in records {
        let key = record.key_bytes()?;
        let value = record.value_bytes()?;
        builder.append(timestamp, Some(&key), value.as_deref(), &[])?;
    }
    builder.build()
}

/// The entries of an offsets partition's log, from its start to its end, in the form the
/// group coordinator's [`load_partition`](super::coordinator::GroupCoordinator::load_partition)
/// replays: records (with their producer when their batch is transactional) and transaction
/// markers. Records of unknown key versions are left out, as Kafka skips them.
///
/// ```
/// use streamlog::group::{load_entries, OffsetAndMetadata, OffsetCommit, OffsetsPartition, OffsetsTopicConfig};
/// use streamlog::group::coordinator::LoadEntry;
/// use streamlog::storage::{Storage, StorageConfig};
/// use streamlog::TxnResult;
///
/// let dir = tempfile::tempdir()?;
/// let storage = Storage::open(dir.path(), StorageConfig::default())?;
/// let mut config = OffsetsTopicConfig::default();
/// config.set("offsets.topic.num.partitions", "1")?;
/// let mut offsets = OffsetsPartition::load(&storage, &config, 0)?;
/// offsets.commit_transactional_offsets("g", 7, 0, &[OffsetCommit::new("t", 0, OffsetAndMetadata::new(5, 0))], 0)?;
/// offsets.write_txn_marker(7, 0, TxnResult::Commit, 0)?;
///
/// let entries = load_entries(offsets.log())?;
/// assert!(matches!(entries[0], LoadEntry::Record { producer_id: Some(7), .. }));
/// assert_eq!(entries[1], LoadEntry::Marker { producer_id: 7, commit: true });
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn load_entries(log: &Log) -> Result<Vec<LoadEntry>> {
    let mut entries = Vec::new();
    for_each_batch(log, |batch| batch_entries(batch, &mut |e| entries.push(e)))?;
    Ok(entries)
}

/// The entries of an offsets partition's log, read a chunk (1 MiB) at a time as they are
/// consumed: what [`load_entries`] returns, without holding them all at once. Hand it to
/// [`load_partition`](super::coordinator::GroupCoordinator::load_partition) by `&mut`, then
/// check [`finish`](Self::finish): a read or decode error ends the iteration early.
///
/// ```
/// use streamlog::group::{LogEntries, OffsetsPartition, OffsetsTopicConfig};
/// use streamlog::group::coordinator::{GroupCoordinator, GroupCoordinatorConfig};
/// use streamlog::storage::{Storage, StorageConfig};
///
/// let dir = tempfile::tempdir()?;
/// let storage = Storage::open(dir.path(), StorageConfig::default())?;
/// let mut config = OffsetsTopicConfig::default();
/// config.set("offsets.topic.num.partitions", "1")?;
/// let offsets = OffsetsPartition::load(&storage, &config, 0)?;
/// let mut coordinator = GroupCoordinator::new(
///     GroupCoordinatorConfig { offsets_topic_num_partitions: 1, ..Default::default() }, 1);
/// let mut entries = LogEntries::new(offsets.log());
/// coordinator.load_partition(0, 0, &mut entries);
/// entries.finish()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct LogEntries<'a> {
    log: &'a Log,
    offset: i64,
    /// The entries of the chunk read last. Its capacity is kept from chunk to chunk: a
    /// fresh multi-megabyte buffer per chunk would fault its pages in anew each time.
    chunk: std::collections::VecDeque<LoadEntry>,
    error: Option<Error>,
    done: bool,
}

impl<'a> LogEntries<'a> {
    /// The entries of `log` from its start offset.
    pub fn new(log: &'a Log) -> Self {
        LogEntries {
            log,
            offset: log.log_start_offset(),
            chunk: std::collections::VecDeque::new(),
            error: None,
            done: false,
        }
    }

    /// `Ok` if every entry up to the log end was read; the error that stopped it otherwise.
    pub fn finish(self) -> Result<()> {
        self.error.map_or(Ok(()), Err)
    }
}

impl Iterator for LogEntries<'_> {
    type Item = LoadEntry;

    fn next(&mut self) -> Option<LoadEntry> {
        loop {
            if let Some(entry) = self.chunk.pop_front() {
                return Some(entry);
            }
            if self.done {
                return None;
            }
            let chunk = &mut self.chunk;
            match read_chunk(self.log, self.offset, |batch| {
                batch_entries(batch, &mut |e| chunk.push_back(e))
            }) {
                Ok(Some(next)) => self.offset = next,
                Ok(None) => self.done = true,
                Err(e) => {
                    self.error = Some(e);
                    self.done = true;
                    // What was decoded before the error is not handed out: the load fails.
                    self.chunk.clear();
                    return None;
                }
            }
        }
    }
}

/// Hands the entries of one batch to `push`, in order.
fn batch_entries(batch: &Batch<'_>, push: &mut dyn FnMut(LoadEntry)) -> Result<()> {
    let producer_id = batch.producer_id();
    if batch.is_control() {
        if producer_id >= 0 {
            let commit = match batch.control_record()?.map(|c| c.kind) {
                Some(ControlRecordType::Commit) => true,
                Some(ControlRecordType::Abort) => false,
                _ => return Ok(()),
            };
            push(LoadEntry::Marker {
                producer_id,
                commit,
            });
        }
        return Ok(());
    }
    let txn = batch.is_transactional().then_some(producer_id);
    for record in batch.records()?.iter() {
        let record = record?;
        let key = record.key.ok_or(Error::MalformedSchema {
            schema: "__consumer_offsets record",
            reason: "record without a key",
        })?;
        if let Some(decoded) = OffsetsRecord::decode(key, record.value)? {
            push(LoadEntry::Record {
                record: decoded,
                producer_id: txn,
            });
        }
    }
    Ok(())
}

/// Replays `log` from its start to its end into `state`.
pub(crate) fn replay_log(log: &Log, state: &mut OffsetsState) -> Result<()> {
    for_each_batch(log, |batch| state.replay_batch(batch))
}

/// Calls `f` with every batch of `log` from its start to its end, CRC-checked.
fn for_each_batch(log: &Log, mut f: impl FnMut(&Batch<'_>) -> Result<()>) -> Result<()> {
    let mut offset = log.log_start_offset();
    while let Some(next) = read_chunk(log, offset, &mut f)? {
        offset = next;
    }
    Ok(())
}

/// Calls `f` with the batches of one chunk of `log` from `offset`, CRC-checked; returns
/// where the next chunk starts, or `None` at the log end.
fn read_chunk(
    log: &Log,
    offset: i64,
    mut f: impl FnMut(&Batch<'_>) -> Result<()>,
) -> Result<Option<i64>> {
    if offset >= log.log_end_offset() {
        return Ok(None);
    }
    let bytes = log.read_bytes(offset, LOAD_CHUNK, None)?;
    let mut next = offset;
    for batch in Batches::with_limits(&bytes, log.config().decode_limits) {
        let batch = batch?;
        if batch.crc() != batch.compute_crc() {
            return Err(Error::ChecksumMismatch {
                base_offset: batch.base_offset(),
                stored: batch.crc(),
                computed: batch.compute_crc(),
            });
        }
        if batch.next_offset() <= offset {
            continue;
        }
        f(&batch)?;
        next = batch.next_offset();
    }
    // Nothing readable past `offset` although the log end is further: stop rather than
    // loop (a log is never expected to do this).
    Ok((next > offset).then_some(next))
}
