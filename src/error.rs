//! The crate's one error type.
//!
//! Every variant names what failed: the batch (by base offset), the file (by path), the limit
//! that was exceeded. Variants are added as the crate grows, so the enum is `#[non_exhaustive]`.

use std::path::PathBuf;

/// Result with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in streamlog.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Fewer bytes than a batch header, or than the batch's length field promises.
    #[error("batch at byte {position} truncated: needs {needed} bytes, {available} available")]
    BatchTruncated {
        /// Byte position of the batch within the buffer or file it was read from.
        position: u64,
        /// Bytes the batch needs (header, or header plus declared length).
        needed: u64,
        /// Bytes actually available.
        available: u64,
    },

    /// The batch's length field is smaller than a v2 header can be.
    #[error("batch at offset {base_offset}: length field {length} below the minimum {min}")]
    BatchLengthTooSmall {
        /// Base offset as stored in the batch header.
        base_offset: i64,
        /// The length field's value.
        length: i32,
        /// The smallest legal value.
        min: i32,
    },

    /// The batch is larger than the configured maximum.
    #[error("batch at offset {base_offset}: {size} bytes exceeds the limit of {limit}")]
    BatchTooLarge {
        /// Base offset as stored in the batch header.
        base_offset: i64,
        /// Size of the whole batch in bytes.
        size: u64,
        /// The configured limit.
        limit: u64,
    },

    /// A magic byte other than 2 (only RecordBatch v2 is supported).
    #[error("batch at offset {base_offset}: unsupported magic {magic} (only v2 is supported)")]
    UnsupportedMagic {
        /// Base offset as stored in the batch header.
        base_offset: i64,
        /// The magic byte found.
        magic: i8,
    },

    /// The CRC-32C stored in the batch does not match its bytes.
    #[error("batch at offset {base_offset}: CRC-32C mismatch, stored {stored:#010x}, computed {computed:#010x}")]
    ChecksumMismatch {
        /// Base offset as stored in the batch header.
        base_offset: i64,
        /// CRC stored in the header.
        stored: u32,
        /// CRC computed over the bytes.
        computed: u32,
    },

    /// Header fields that contradict each other or the format.
    #[error("batch at offset {base_offset}: invalid header: {reason}")]
    InvalidBatchHeader {
        /// Base offset as stored in the batch header.
        base_offset: i64,
        /// What is wrong.
        reason: &'static str,
    },

    /// A record inside a batch could not be decoded.
    #[error("batch at offset {base_offset}, record #{index}: {reason}")]
    CorruptRecord {
        /// Base offset of the batch holding the record.
        base_offset: i64,
        /// Index of the record within the batch (0-based).
        index: u32,
        /// What is wrong.
        reason: &'static str,
    },

    /// The number of records decoded differs from the header's record count.
    #[error("batch at offset {base_offset}: header says {declared} records, bytes hold {found}")]
    RecordCountMismatch {
        /// Base offset of the batch.
        base_offset: i64,
        /// Record count from the header.
        declared: i32,
        /// Records actually found.
        found: u32,
    },

    /// A codec id that Kafka does not define.
    #[error("batch at offset {base_offset}: unknown compression codec id {id}")]
    UnknownCompression {
        /// Base offset of the batch.
        base_offset: i64,
        /// The codec bits from the attributes.
        id: u8,
    },

    /// The batch uses a codec whose cargo feature is not enabled in this build.
    #[error("compression codec {codec} needs streamlog's cargo feature `{feature}`")]
    CodecDisabled {
        /// The codec's name.
        codec: &'static str,
        /// The feature that enables it.
        feature: &'static str,
    },

    /// Compressed data that its codec could not decode.
    #[error("{codec} data could not be decompressed: {message}")]
    Decompress {
        /// The codec's name.
        codec: &'static str,
        /// The codec's own explanation.
        message: String,
    },

    /// The codec failed while compressing.
    #[error("{codec} compression failed: {message}")]
    Compress {
        /// The codec's name.
        codec: &'static str,
        /// The codec's own explanation.
        message: String,
    },

    /// Decompression produced more bytes than allowed: a decompression bomb or a misconfiguration.
    #[error("{codec} data decompresses to more than the limit of {limit} bytes")]
    DecompressedTooLarge {
        /// The codec's name.
        codec: &'static str,
        /// The configured limit.
        limit: u64,
    },

    /// An index file that cannot be trusted; the log rebuilds it from its `.log` file.
    #[error("index {path} is corrupt: {reason}")]
    CorruptIndex {
        /// The index file.
        path: PathBuf,
        /// What is wrong.
        reason: &'static str,
    },

    /// A read asked for an offset the log does not hold.
    #[error(
        "offset {offset} is out of range: the log holds [{log_start_offset}, {log_end_offset})"
    )]
    OffsetOutOfRange {
        /// The offset asked for.
        offset: i64,
        /// The first offset the log holds.
        log_start_offset: i64,
        /// The offset the next append will get.
        log_end_offset: i64,
    },

    /// A batch too large for the log's `max.message.bytes`.
    #[error("batch of {size} bytes exceeds max.message.bytes {limit}")]
    MessageTooLarge {
        /// The batch's size.
        size: u64,
        /// The configured limit.
        limit: u64,
    },

    /// A batch appended with offsets that do not continue the log.
    #[error("batch at offsets [{base_offset}, {last_offset}] does not continue the log (log end offset {log_end_offset})")]
    UnexpectedAppendOffset {
        /// The batch's base offset.
        base_offset: i64,
        /// The batch's last offset.
        last_offset: i64,
        /// The log's end offset.
        log_end_offset: i64,
    },

    /// A segment file whose contents contradict the log (found while opening).
    #[error("segment {path} is corrupt at byte {position}: {reason}")]
    CorruptSegment {
        /// The `.log` file.
        path: PathBuf,
        /// Byte position of the damage.
        position: u64,
        /// What is wrong.
        reason: String,
    },

    /// A segment file named by a base offset so high that its offsets (the base plus a
    /// 32-bit relative offset) and the one after them would not fit an `i64`: no log writes
    /// such a file, and opening it is refused before any offset is computed from it.
    #[error("segment {path}: base offset {base_offset} leaves no room for the segment's offsets (at most {max} allowed)", max = crate::segment::MAX_BASE_OFFSET)]
    SegmentBaseOutOfRange {
        /// The `.log` file.
        path: PathBuf,
        /// The base offset its name gives.
        base_offset: i64,
    },

    /// A checkpoint file that does not parse.
    #[error("checkpoint file {path} is corrupt")]
    CorruptCheckpoint {
        /// The checkpoint file.
        path: PathBuf,
    },

    /// Recovery found damage in data the log had acknowledged as durable.
    #[error("{path} is damaged at byte {position} (offset {offset}), below the recovery point {recovery_point}")]
    DamageBelowRecoveryPoint {
        /// The damaged `.log` file.
        path: PathBuf,
        /// Byte position of the first invalid byte.
        position: u64,
        /// The offset expected there.
        offset: i64,
        /// Offsets below this were known durable.
        recovery_point: i64,
    },

    /// An earlier fsync failed: the log no longer knows what is durable and refuses writes.
    #[error("log {dir} is poisoned by an earlier I/O failure: {reason}")]
    LogPoisoned {
        /// The partition directory.
        dir: PathBuf,
        /// The failure that poisoned it.
        reason: String,
    },

    /// A read raced with retention or truncation that removed the segment it was reading.
    #[error("segment {path} was deleted while being read")]
    SegmentDeleted {
        /// The segment's `.log` file.
        path: PathBuf,
    },

    /// A `cleanup.policy` value other than Kafka's `delete`, `compact` or both.
    #[error("invalid cleanup.policy {value:?}: expected delete, compact or compact,delete")]
    InvalidCleanupPolicy {
        /// The value given.
        value: String,
    },

    /// A producer batch holding a record timestamp Kafka refuses (`INVALID_TIMESTAMP`):
    /// below -1, or, under CreateTime, further from the log's clock than
    /// `message.timestamp.before.max.ms` / `message.timestamp.after.max.ms` allow. Nothing
    /// of the batch was written.
    #[error("batch at offset {base_offset}, record #{index}: timestamp {timestamp} is outside [{min}, {max}] (message.timestamp.before.max.ms / after.max.ms; -1 means none)")]
    InvalidTimestamp {
        /// Base offset as stored in the batch header.
        base_offset: i64,
        /// Index of the first such record within the batch (0-based).
        index: u32,
        /// Its timestamp.
        timestamp: i64,
        /// The earliest timestamp accepted at the time of the append.
        min: i64,
        /// The latest timestamp accepted at the time of the append.
        max: i64,
    },

    /// A producer batch for a compacted log (`cleanup.policy` compact) holds a record
    /// without a key, which Kafka refuses (`InvalidRecordException`).
    #[error("batch at offset {base_offset}, record #{index}: compacted logs refuse records without a key")]
    RecordWithoutKey {
        /// Base offset as stored in the batch header.
        base_offset: i64,
        /// Index of the record within the batch (0-based).
        index: u32,
    },

    /// The compaction key map cannot hold the keys of even one batch of the dirty part.
    #[error("log {dir}: the cleaner's key map (at most {max_keys} keys) cannot hold the batch at offset {offset}; raise dedupe_buffer_bytes")]
    CleanerMapTooSmall {
        /// The partition directory.
        dir: PathBuf,
        /// Where the dirty part starts.
        offset: i64,
        /// Keys the map can hold.
        max_keys: usize,
    },

    /// Another `Log` or `Storage`, in this process or another, holds the directory's lock
    /// (its `.lock` file): one writer per directory.
    #[error("directory {dir} is locked by another writer{}", holder_pid.map(|p| format!(" (process {p})")).unwrap_or_default())]
    DirectoryLocked {
        /// The locked directory.
        dir: PathBuf,
        /// The process id the holder wrote into the lock file, when it did.
        holder_pid: Option<u32>,
    },

    /// The directory holds no partition (no segment files), and the open was not asked to
    /// create one.
    #[error("{dir} is not a partition directory: {reason}")]
    NotAPartition {
        /// The directory.
        dir: PathBuf,
        /// What is missing.
        reason: &'static str,
    },

    /// A change was asked of a log opened read-only.
    #[error("log {dir} is open read-only")]
    ReadOnlyLog {
        /// The partition directory.
        dir: PathBuf,
    },

    /// The log was closed; open it again to use it.
    #[error("log {dir} is closed")]
    LogClosed {
        /// The partition directory.
        dir: PathBuf,
    },

    /// A topic name Kafka would refuse (see [`validate_topic_name`](crate::storage::validate_topic_name)).
    #[error("invalid topic name {name:?}: {reason}")]
    InvalidTopicName {
        /// The name given (at most its first 300 characters).
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A topic config key that is unknown, or a value it cannot take.
    #[error("invalid topic config {key}={value:?}: {reason}")]
    InvalidTopicConfig {
        /// The config key.
        key: String,
        /// The value given.
        value: String,
        /// What is wrong.
        reason: String,
    },

    /// A [`LogConfig`](crate::LogConfig) or [`StorageConfig`](crate::StorageConfig) value
    /// outside its bounds, named by its Kafka key (`segment.bytes`, `min.cleanable.dirty.ratio`,
    /// ...) or, for settings Kafka does not have, by the field (`max_open_files`).
    #[error("invalid config {key}={value}: {reason}")]
    InvalidConfig {
        /// The config key.
        key: &'static str,
        /// The value given.
        value: String,
        /// The bound it breaks.
        reason: &'static str,
    },

    /// A topic that already exists, or whose name collides with one that does (Kafka treats
    /// `.` and `_` as the same character in topic names).
    #[error("topic {topic} already exists{}", existing.as_deref().map(|e| format!(" (collides with {e})")).unwrap_or_default())]
    TopicExists {
        /// The topic asked for.
        topic: String,
        /// The existing topic it collides with, when the names differ.
        existing: Option<String>,
    },

    /// A topic the storage does not hold.
    #[error("unknown topic {topic}")]
    UnknownTopic {
        /// The topic asked for.
        topic: String,
    },

    /// A partition number at or past the topic's partition count.
    #[error("topic {topic} has {partitions} partitions; partition {partition} does not exist")]
    UnknownPartition {
        /// The topic.
        topic: String,
        /// The partition asked for.
        partition: u32,
        /// The topic's partition count.
        partitions: u32,
    },

    /// A partition count that is zero, too large, or (when adding partitions) not above the
    /// current one.
    #[error(
        "topic {topic}: invalid partition count {requested} (current {current}, at most {max})"
    )]
    InvalidPartitionCount {
        /// The topic.
        topic: String,
        /// The count asked for.
        requested: u32,
        /// The topic's current count (0 when creating it).
        current: u32,
        /// The largest count allowed.
        max: u32,
    },

    /// Opening one more partition would exceed the open-file budget, and every open
    /// partition is in use (its `Arc<Log>` held by a caller), so none can be closed.
    #[error("opening {topic}-{partition} would exceed the budget of {budget} open files: all {open} open partitions are in use")]
    OpenFileBudgetExhausted {
        /// The topic of the partition that could not be opened.
        topic: String,
        /// Its partition.
        partition: u32,
        /// The configured budget.
        budget: usize,
        /// Partitions open (and held by callers).
        open: usize,
    },

    /// The storage was closed.
    #[error("storage {dir} is closed")]
    StorageClosed {
        /// The data directory.
        dir: PathBuf,
    },

    /// A producer batch whose sequence does not continue the producer's last one (Kafka's
    /// `OutOfOrderSequenceException`); nothing was written.
    #[error("producer {producer_id} epoch {producer_epoch}: sequence {first_sequence} at offset {offset} does not follow the last sequence {last_sequence}")]
    OutOfOrderSequence {
        /// The producer id.
        producer_id: i64,
        /// The batch's producer epoch.
        producer_epoch: i16,
        /// The batch's first sequence.
        first_sequence: i32,
        /// The producer's last sequence in this epoch (-1: a new epoch, which must start at 0).
        last_sequence: i32,
        /// The offset the batch would have had.
        offset: i64,
    },

    /// A producer epoch older than the producer's current one: the producer is fenced
    /// (Kafka's `InvalidProducerEpochException` / `ProducerFencedException`).
    #[error("producer {producer_id}: epoch {producer_epoch} is older than the current epoch {current_epoch}")]
    InvalidProducerEpoch {
        /// The producer id.
        producer_id: i64,
        /// The epoch the batch or marker carried.
        producer_epoch: i16,
        /// The producer's current epoch.
        current_epoch: i16,
    },

    /// A batch that contradicts the producer's transaction state (Kafka's
    /// `InvalidTxnStateException`).
    #[error("producer {producer_id}: invalid transaction state: {reason}")]
    InvalidTxnState {
        /// The producer id.
        producer_id: i64,
        /// What is wrong.
        reason: &'static str,
    },

    /// A transaction marker from a coordinator older than the one that wrote the producer's
    /// last marker (Kafka's `TransactionCoordinatorFencedException`).
    #[error("producer {producer_id}: marker from coordinator epoch {coordinator_epoch}, older than {current_coordinator_epoch}")]
    TransactionCoordinatorFenced {
        /// The producer id.
        producer_id: i64,
        /// The marker's coordinator epoch.
        coordinator_epoch: i32,
        /// The coordinator epoch of the producer's last marker.
        current_coordinator_epoch: i32,
    },

    /// A producer snapshot file that cannot be trusted; opening rebuilds the state from the log.
    #[error("producer snapshot {path} is corrupt: {reason}")]
    CorruptSnapshot {
        /// The `.snapshot` file.
        path: PathBuf,
        /// What is wrong.
        reason: &'static str,
    },

    /// A transaction index that cannot be trusted; opening rebuilds it from the log.
    #[error("transaction index {path} is corrupt: {reason}")]
    CorruptTxnIndex {
        /// The `.txnindex` file.
        path: PathBuf,
        /// What is wrong.
        reason: &'static str,
    },

    /// A log with no segment at all, which every log has from its open on: its state was
    /// damaged by an earlier failure.
    #[error("log {dir} has no active segment")]
    NoActiveSegment {
        /// The partition directory.
        dir: PathBuf,
    },

    /// An append reached a sealed segment (its index files are trimmed below their maps).
    #[error("segment {path} is sealed")]
    SegmentSealed {
        /// The segment's `.log` file.
        path: PathBuf,
    },

    /// Something too large to hold in memory on this platform (a length above `usize`).
    #[error("{what} of {size} bytes does not fit in memory")]
    TooLargeForMemory {
        /// What was to be read.
        what: &'static str,
        /// Its size in bytes.
        size: u64,
    },

    /// A background thread (the flusher, storage maintenance) panicked.
    #[error("the {thread} thread panicked")]
    BackgroundThreadPanicked {
        /// Which thread.
        thread: &'static str,
    },

    /// The producer id block file cannot be trusted: handing out ids from a guess could
    /// reuse one, so the coordinator refuses to start.
    #[error("producer id block file {path} is corrupt: {reason}")]
    CorruptProducerIdBlock {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: &'static str,
    },

    /// Every producer id has been handed out (the next block would pass `i64::MAX`).
    #[error("producer ids exhausted: the next block would start at {next_block_start}")]
    ProducerIdsExhausted {
        /// Where the next block would have started.
        next_block_start: i64,
    },

    /// A `__transaction_state` record that does not decode as Kafka's
    /// TransactionLogKey/TransactionLogValue.
    #[error("corrupt __transaction_state record: {reason}")]
    CorruptTxnLogRecord {
        /// What is wrong.
        reason: String,
    },

    /// Bytes that do not follow a Kafka message schema (a `__consumer_offsets` record, a
    /// consumer protocol blob): truncated, a bad length, a null where none is allowed,
    /// strings that are not UTF-8.
    #[error("malformed {schema}: {reason}")]
    MalformedSchema {
        /// The schema being read.
        schema: &'static str,
        /// What is wrong.
        reason: &'static str,
    },

    /// A Kafka message schema version this crate does not know.
    #[error("{schema}: unsupported version {version}")]
    UnsupportedSchemaVersion {
        /// The schema being read or written.
        schema: &'static str,
        /// The version found or asked for.
        version: i16,
    },

    /// A group the offsets partition holds nothing for (Kafka's `GROUP_ID_NOT_FOUND`).
    #[error("group {group:?} not found")]
    GroupIdNotFound {
        /// The group asked for.
        group: String,
    },

    /// A group whose offsets live in another partition of `__consumer_offsets` than the
    /// one asked to handle it (Kafka's `NOT_COORDINATOR`).
    #[error(
        "group {group:?} belongs to offsets partition {coordinator_partition}, not {partition}"
    )]
    NotCoordinator {
        /// The group.
        group: String,
        /// The offsets partition asked.
        partition: u32,
        /// The offsets partition that holds the group.
        coordinator_partition: u32,
    },

    /// A coordinator driven in process finished a request without answering it (or with
    /// the answer to another request): a bug in the coordinator, not in the caller.
    #[error("the {coordinator} coordinator left a {request} request unanswered")]
    CoordinatorUnanswered {
        /// Which coordinator (`transaction`).
        coordinator: &'static str,
        /// The request, by its Kafka API name.
        request: &'static str,
    },

    /// A value too long for the Kafka schema it is encoded in: a string above 32,767
    /// bytes, an array, bytes field or tagged field whose length its prefix cannot hold.
    #[error("{what} of {len} is too long for Kafka's schema")]
    FieldTooLong {
        /// What was being encoded.
        what: &'static str,
        /// Its length (bytes, or entries for an array).
        len: usize,
    },

    /// A configuration key the component does not have.
    #[error("unknown config {key}")]
    UnknownConfig {
        /// The key given.
        key: String,
    },

    /// The same member id twice in a partition assignor's input.
    #[error("member id {member_id:?} appears twice in the assignor's input")]
    DuplicateMemberId {
        /// The repeated id.
        member_id: String,
    },

    /// Records built for one offsets partition handed to another's store.
    #[error("append for offsets partition {append_partition} given to partition {partition}")]
    WrongOffsetsPartition {
        /// The partition the records were built for.
        append_partition: i32,
        /// The partition of the store they were handed to.
        partition: u32,
    },

    /// A negative partition number where a partition is named.
    #[error("partition {partition} of {topic} is negative")]
    NegativePartition {
        /// The topic.
        topic: String,
        /// The partition given.
        partition: i32,
    },

    /// A producer id that cannot be one (negative where a transaction needs a real one).
    #[error("invalid producer id {producer_id} for {what}")]
    InvalidProducerId {
        /// The id given.
        producer_id: i64,
        /// What needed it.
        what: &'static str,
    },

    /// An append given no batch at all (`Log::append_replicated` of empty bytes).
    #[error("no batches to append")]
    NoBatches,

    /// A negative offset where a log offset is named.
    #[error("{what} at the negative offset {offset}")]
    NegativeOffset {
        /// What was asked for.
        what: &'static str,
        /// The offset given.
        offset: i64,
    },

    /// A record whose offset lies outside what a batch's `i32` offset delta reaches from its
    /// base offset (`BatchBuilder::append_record`).
    #[error("record offset {offset} is not within i32 of the batch's base offset {base_offset}")]
    OffsetDeltaOutOfRange {
        /// The record's offset.
        offset: i64,
        /// The batch's base offset.
        base_offset: i64,
    },

    /// A record appended to a batch at an offset delta that does not follow the previous
    /// record's (deltas must increase, and start at 0 or more).
    #[error("offset delta {offset_delta} does not follow {previous:?}")]
    OffsetDeltaNotIncreasing {
        /// The delta given.
        offset_delta: i32,
        /// The previous record's delta, if the batch holds one.
        previous: Option<i32>,
    },

    /// A batch builder that already holds a record at offset delta `i32::MAX`: no further
    /// record has a delta.
    #[error("the batch holds a record at offset delta i32::MAX: no room for another")]
    BatchFull,

    /// Something an encoder was given whose encoded size would not fit its `i32` length
    /// field (2 GiB).
    #[error("{what} larger than 2 GiB cannot be encoded")]
    TooLargeToEncode {
        /// What was being encoded: `"record"` or `"batch"`.
        what: &'static str,
    },

    /// A replication replica over a log whose high watermark it cannot drive: the log
    /// must be opened with `HighWatermarkPolicy::Replicated`.
    #[error("a replica's log must be opened with HighWatermarkPolicy::Replicated, not {found:?}")]
    ReplicaNeedsReplicatedPolicy {
        /// The policy the log was opened with.
        found: crate::config::HighWatermarkPolicy,
    },

    /// A negative broker id given as a replica's id.
    #[error("replica id {replica_id} is negative")]
    NegativeReplicaId {
        /// The id given.
        replica_id: i32,
    },

    /// A partitioner asked to choose among no partitions.
    #[error("num_partitions is 0: a topic has at least one partition")]
    NoPartitions,

    /// A caller passed something the format cannot represent and no precise variant
    /// describes (the crate itself returns precise variants; kept for callbacks and callers
    /// that need a free-form refusal).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// An I/O error on a named file.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// Wrap an I/O error with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
