//! Kafka's protocol error codes, shared by every coordinator and protocol layer.
//!
//! A response in Kafka's protocol carries an `int16` error code, and clients act on the code
//! (retry, rejoin the group, abort the transaction). [`KafkaCode`] holds that `int16` with
//! Kafka's names (`Errors` in Kafka's Java client) as associated constants, so code in this
//! crate and in applications speaks the codes Kafka's clients expect. A code this crate does
//! not name (a newer Kafka's) is still carried as is.
//!
//! ```
//! use streamlog::KafkaCode;
//!
//! let code = KafkaCode::from_i16(22);
//! assert_eq!(code, KafkaCode::ILLEGAL_GENERATION);
//! assert_eq!(code.name(), Some("ILLEGAL_GENERATION"));
//! assert!(code.is_error());
//! assert!(!KafkaCode::NONE.is_error());
//! assert_eq!(KafkaCode::from_i16(9999).name(), None);
//! ```

use std::fmt;

use crate::error::Error;

/// A Kafka protocol error code (`Errors` in Kafka's Java client): the `int16` a response
/// carries, with Kafka's names as constants.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct KafkaCode(i16);

macro_rules! kafka_codes {
    ($($name:ident = $code:expr;)*) => {
        impl KafkaCode {
            $(
                #[doc = concat!("`", stringify!($name), "` (", stringify!($code), ").")]
                pub const $name: KafkaCode = KafkaCode($code);
            )*

            /// Kafka's name for this code (`None` for a code this crate does not know).
            pub const fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($code => Some(stringify!($name)),)*
                    _ => None,
                }
            }
        }
    };
}

kafka_codes! {
UNKNOWN_SERVER_ERROR = -1;
NONE = 0;
OFFSET_OUT_OF_RANGE = 1;
CORRUPT_MESSAGE = 2;
UNKNOWN_TOPIC_OR_PARTITION = 3;
INVALID_FETCH_SIZE = 4;
LEADER_NOT_AVAILABLE = 5;
NOT_LEADER_OR_FOLLOWER = 6;
REQUEST_TIMED_OUT = 7;
BROKER_NOT_AVAILABLE = 8;
REPLICA_NOT_AVAILABLE = 9;
MESSAGE_TOO_LARGE = 10;
STALE_CONTROLLER_EPOCH = 11;
OFFSET_METADATA_TOO_LARGE = 12;
NETWORK_EXCEPTION = 13;
COORDINATOR_LOAD_IN_PROGRESS = 14;
COORDINATOR_NOT_AVAILABLE = 15;
NOT_COORDINATOR = 16;
INVALID_TOPIC_EXCEPTION = 17;
RECORD_LIST_TOO_LARGE = 18;
NOT_ENOUGH_REPLICAS = 19;
NOT_ENOUGH_REPLICAS_AFTER_APPEND = 20;
INVALID_REQUIRED_ACKS = 21;
ILLEGAL_GENERATION = 22;
INCONSISTENT_GROUP_PROTOCOL = 23;
INVALID_GROUP_ID = 24;
UNKNOWN_MEMBER_ID = 25;
INVALID_SESSION_TIMEOUT = 26;
REBALANCE_IN_PROGRESS = 27;
INVALID_COMMIT_OFFSET_SIZE = 28;
TOPIC_AUTHORIZATION_FAILED = 29;
GROUP_AUTHORIZATION_FAILED = 30;
CLUSTER_AUTHORIZATION_FAILED = 31;
INVALID_TIMESTAMP = 32;
UNSUPPORTED_SASL_MECHANISM = 33;
ILLEGAL_SASL_STATE = 34;
UNSUPPORTED_VERSION = 35;
TOPIC_ALREADY_EXISTS = 36;
INVALID_PARTITIONS = 37;
INVALID_REPLICATION_FACTOR = 38;
INVALID_REPLICA_ASSIGNMENT = 39;
INVALID_CONFIG = 40;
NOT_CONTROLLER = 41;
INVALID_REQUEST = 42;
UNSUPPORTED_FOR_MESSAGE_FORMAT = 43;
POLICY_VIOLATION = 44;
OUT_OF_ORDER_SEQUENCE_NUMBER = 45;
DUPLICATE_SEQUENCE_NUMBER = 46;
INVALID_PRODUCER_EPOCH = 47;
INVALID_TXN_STATE = 48;
INVALID_PRODUCER_ID_MAPPING = 49;
INVALID_TRANSACTION_TIMEOUT = 50;
CONCURRENT_TRANSACTIONS = 51;
TRANSACTION_COORDINATOR_FENCED = 52;
TRANSACTIONAL_ID_AUTHORIZATION_FAILED = 53;
SECURITY_DISABLED = 54;
OPERATION_NOT_ATTEMPTED = 55;
KAFKA_STORAGE_ERROR = 56;
LOG_DIR_NOT_FOUND = 57;
SASL_AUTHENTICATION_FAILED = 58;
UNKNOWN_PRODUCER_ID = 59;
REASSIGNMENT_IN_PROGRESS = 60;
DELEGATION_TOKEN_AUTH_DISABLED = 61;
DELEGATION_TOKEN_NOT_FOUND = 62;
DELEGATION_TOKEN_OWNER_MISMATCH = 63;
DELEGATION_TOKEN_REQUEST_NOT_ALLOWED = 64;
DELEGATION_TOKEN_AUTHORIZATION_FAILED = 65;
DELEGATION_TOKEN_EXPIRED = 66;
INVALID_PRINCIPAL_TYPE = 67;
NON_EMPTY_GROUP = 68;
GROUP_ID_NOT_FOUND = 69;
FETCH_SESSION_ID_NOT_FOUND = 70;
INVALID_FETCH_SESSION_EPOCH = 71;
LISTENER_NOT_FOUND = 72;
TOPIC_DELETION_DISABLED = 73;
FENCED_LEADER_EPOCH = 74;
UNKNOWN_LEADER_EPOCH = 75;
UNSUPPORTED_COMPRESSION_TYPE = 76;
STALE_BROKER_EPOCH = 77;
OFFSET_NOT_AVAILABLE = 78;
MEMBER_ID_REQUIRED = 79;
PREFERRED_LEADER_NOT_AVAILABLE = 80;
GROUP_MAX_SIZE_REACHED = 81;
FENCED_INSTANCE_ID = 82;
ELIGIBLE_LEADERS_NOT_AVAILABLE = 83;
ELECTION_NOT_NEEDED = 84;
NO_REASSIGNMENT_IN_PROGRESS = 85;
GROUP_SUBSCRIBED_TO_TOPIC = 86;
INVALID_RECORD = 87;
UNSTABLE_OFFSET_COMMIT = 88;
THROTTLING_QUOTA_EXCEEDED = 89;
PRODUCER_FENCED = 90;
RESOURCE_NOT_FOUND = 91;
DUPLICATE_RESOURCE = 92;
UNACCEPTABLE_CREDENTIAL = 93;
INCONSISTENT_VOTER_SET = 94;
INVALID_UPDATE_VERSION = 95;
FEATURE_UPDATE_FAILED = 96;
PRINCIPAL_DESERIALIZATION_FAILURE = 97;
SNAPSHOT_NOT_FOUND = 98;
POSITION_OUT_OF_RANGE = 99;
UNKNOWN_TOPIC_ID = 100;
DUPLICATE_BROKER_REGISTRATION = 101;
BROKER_ID_NOT_REGISTERED = 102;
INCONSISTENT_TOPIC_ID = 103;
INCONSISTENT_CLUSTER_ID = 104;
TRANSACTIONAL_ID_NOT_FOUND = 105;
FETCH_SESSION_TOPIC_ID_ERROR = 106;
INELIGIBLE_REPLICA = 107;
NEW_LEADER_ELECTED = 108;
OFFSET_MOVED_TO_TIERED_STORAGE = 109;
FENCED_MEMBER_EPOCH = 110;
UNRELEASED_INSTANCE_ID = 111;
UNSUPPORTED_ASSIGNOR = 112;
STALE_MEMBER_EPOCH = 113;
MISMATCHED_ENDPOINT_TYPE = 114;
UNSUPPORTED_ENDPOINT_TYPE = 115;
UNKNOWN_CONTROLLER_ID = 116;
UNKNOWN_SUBSCRIPTION_ID = 117;
TELEMETRY_TOO_LARGE = 118;
INVALID_REGISTRATION = 119;
TRANSACTION_ABORTABLE = 120;
INVALID_RECORD_STATE = 121;
SHARE_SESSION_NOT_FOUND = 122;
INVALID_SHARE_SESSION_EPOCH = 123;
FENCED_STATE_EPOCH = 124;
INVALID_VOTER_KEY = 125;
DUPLICATE_VOTER = 126;
VOTER_NOT_FOUND = 127;}

impl KafkaCode {
    /// The code carried by a response's `error_code` field.
    pub const fn from_i16(code: i16) -> KafkaCode {
        KafkaCode(code)
    }

    /// The `int16` to put in a response's `error_code` field.
    pub const fn code(self) -> i16 {
        self.0
    }

    /// Whether this is an error (anything but [`KafkaCode::NONE`]).
    pub const fn is_error(self) -> bool {
        self.0 != 0
    }
}

impl Error {
    /// The Kafka error code a broker answers with for this error.
    ///
    /// ```
    /// use streamlog::{Error, KafkaCode};
    ///
    /// let e = Error::GroupIdNotFound { group: "payments".into() };
    /// assert_eq!(e.kafka_code(), KafkaCode::GROUP_ID_NOT_FOUND);
    /// ```
    pub fn kafka_code(&self) -> KafkaCode {
        match self {
            Error::BatchTruncated { .. }
            | Error::BatchLengthTooSmall { .. }
            | Error::UnsupportedMagic { .. }
            | Error::ChecksumMismatch { .. }
            | Error::InvalidBatchHeader { .. }
            | Error::CorruptRecord { .. }
            | Error::RecordCountMismatch { .. }
            | Error::UnknownCompression { .. }
            | Error::Decompress { .. }
            | Error::DecompressedTooLarge { .. } => KafkaCode::CORRUPT_MESSAGE,
            Error::CodecDisabled { .. } => KafkaCode::UNSUPPORTED_COMPRESSION_TYPE,
            Error::BatchTooLarge { .. } | Error::MessageTooLarge { .. } => {
                KafkaCode::MESSAGE_TOO_LARGE
            }
            Error::OffsetOutOfRange { .. } => KafkaCode::OFFSET_OUT_OF_RANGE,
            Error::RecordWithoutKey { .. } => KafkaCode::INVALID_RECORD,
            Error::InvalidTimestamp { .. } => KafkaCode::INVALID_TIMESTAMP,
            Error::InvalidTopicName { .. } => KafkaCode::INVALID_TOPIC_EXCEPTION,
            Error::InvalidTopicConfig { .. }
            | Error::InvalidCleanupPolicy { .. }
            | Error::InvalidConfig { .. }
            | Error::UnknownConfig { .. } => KafkaCode::INVALID_CONFIG,
            Error::TopicExists { .. } => KafkaCode::TOPIC_ALREADY_EXISTS,
            Error::UnknownTopic { .. }
            | Error::UnknownPartition { .. }
            | Error::NotAPartition { .. } => KafkaCode::UNKNOWN_TOPIC_OR_PARTITION,
            // The partition is not (or no longer) served here for writing: a client refreshes
            // its metadata and retries, as for a replica that moved.
            Error::LogClosed { .. } | Error::StorageClosed { .. } | Error::ReadOnlyLog { .. } => {
                KafkaCode::NOT_LEADER_OR_FOLLOWER
            }
            Error::InvalidPartitionCount { .. } => KafkaCode::INVALID_PARTITIONS,
            Error::OutOfOrderSequence { .. } => KafkaCode::OUT_OF_ORDER_SEQUENCE_NUMBER,
            Error::InvalidProducerEpoch { .. } => KafkaCode::INVALID_PRODUCER_EPOCH,
            Error::InvalidTxnState { .. } => KafkaCode::INVALID_TXN_STATE,
            Error::TransactionCoordinatorFenced { .. } => KafkaCode::TRANSACTION_COORDINATOR_FENCED,
            Error::MalformedSchema { .. }
            | Error::InvalidArgument(_)
            | Error::NoBatches
            | Error::NegativeOffset { .. }
            | Error::OffsetDeltaOutOfRange { .. }
            | Error::OffsetDeltaNotIncreasing { .. }
            | Error::BatchFull
            | Error::TooLargeToEncode { .. }
            | Error::ReplicaNeedsReplicatedPolicy { .. }
            | Error::NegativeReplicaId { .. }
            | Error::NoPartitions
            | Error::FieldTooLong { .. }
            | Error::DuplicateMemberId { .. }
            | Error::NegativePartition { .. }
            | Error::InvalidProducerId { .. } => KafkaCode::INVALID_REQUEST,
            Error::UnsupportedSchemaVersion { .. } => KafkaCode::UNSUPPORTED_VERSION,
            Error::GroupIdNotFound { .. } => KafkaCode::GROUP_ID_NOT_FOUND,
            Error::NotCoordinator { .. } => KafkaCode::NOT_COORDINATOR,
            Error::CorruptIndex { .. }
            | Error::CorruptSegment { .. }
            | Error::SegmentBaseOutOfRange { .. }
            | Error::CorruptCheckpoint { .. }
            | Error::DamageBelowRecoveryPoint { .. }
            | Error::LogPoisoned { .. }
            | Error::SegmentDeleted { .. }
            | Error::CleanerMapTooSmall { .. }
            | Error::OpenFileBudgetExhausted { .. }
            | Error::CorruptSnapshot { .. }
            | Error::CorruptTxnIndex { .. }
            | Error::CorruptProducerIdBlock { .. }
            | Error::CorruptTxnLogRecord { .. }
            | Error::DirectoryLocked { .. }
            | Error::NoActiveSegment { .. }
            | Error::SegmentSealed { .. }
            | Error::BackgroundThreadPanicked { .. }
            | Error::Io { .. } => KafkaCode::KAFKA_STORAGE_ERROR,
            // Failures of this process rather than of the request or the log directory
            // (a codec that failed to compress, a coordinator bug, an exhausted id space,
            // offsets handed to the wrong store) have no closer Kafka code.
            #[allow(unreachable_patterns)]
            _ => KafkaCode::UNKNOWN_SERVER_ERROR,
        }
    }
}

impl From<i16> for KafkaCode {
    fn from(code: i16) -> Self {
        KafkaCode(code)
    }
}

impl From<KafkaCode> for i16 {
    fn from(code: KafkaCode) -> Self {
        code.0
    }
}

impl fmt::Debug for KafkaCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name}({})", self.0),
            None => write!(f, "KafkaCode({})", self.0),
        }
    }
}

impl fmt::Display for KafkaCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_codes() {
        assert_eq!(KafkaCode::UNKNOWN_SERVER_ERROR.code(), -1);
        assert_eq!(KafkaCode::NOT_COORDINATOR.code(), 16);
        assert_eq!(KafkaCode::FENCED_INSTANCE_ID.code(), 82);
        assert_eq!(KafkaCode::from_i16(68).name(), Some("NON_EMPTY_GROUP"));
        assert_eq!(
            format!("{:?}", KafkaCode::GROUP_ID_NOT_FOUND),
            "GROUP_ID_NOT_FOUND(69)"
        );
        assert_eq!(format!("{}", KafkaCode::from_i16(-77)), "KafkaCode(-77)");
        for code in -1..=127i16 {
            assert!(
                KafkaCode::from_i16(code).name().is_some(),
                "code {code} unnamed"
            );
        }
    }

    /// The errors a broker answers most often with a code a client acts on: a timestamp
    /// out of bounds is the client's (it does not retry), a closed log sends it to the
    /// metadata (it retries elsewhere), a locked directory is the log directory's.
    #[test]
    fn errors_map_to_the_codes_clients_act_on() {
        let timestamp = Error::InvalidTimestamp {
            base_offset: 0,
            index: 0,
            timestamp: -5,
            min: 0,
            max: 10,
        };
        assert_eq!(timestamp.kafka_code(), KafkaCode::INVALID_TIMESTAMP);
        let closed = Error::LogClosed { dir: "t-0".into() };
        assert_eq!(closed.kafka_code(), KafkaCode::NOT_LEADER_OR_FOLLOWER);
        let locked = Error::DirectoryLocked {
            dir: "t-0".into(),
            holder_pid: None,
        };
        assert_eq!(locked.kafka_code(), KafkaCode::KAFKA_STORAGE_ERROR);
    }
}
