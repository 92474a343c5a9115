//! streamlog's errors as Kafka error codes.

use kafka_protocol::ResponseError;
use streamlog::Error;

/// The Kafka error code a client gets for `e`.
pub fn code(e: &Error) -> i16 {
    kafka_error(e).code()
}

/// The Kafka error for `e`.
pub fn kafka_error(e: &Error) -> ResponseError {
    use ResponseError as K;
    match e {
        Error::UnknownTopic { .. } | Error::UnknownPartition { .. } => K::UnknownTopicOrPartition,
        Error::TopicExists { .. } => K::TopicAlreadyExists,
        Error::InvalidTopicName { .. } => K::InvalidTopicException,
        Error::InvalidTopicConfig { .. } => K::InvalidConfig,
        Error::InvalidPartitionCount { .. } => K::InvalidPartitions,
        Error::OffsetOutOfRange { .. } => K::OffsetOutOfRange,
        Error::MessageTooLarge { .. } | Error::BatchTooLarge { .. } => K::MessageTooLarge,
        Error::BatchTruncated { .. }
        | Error::BatchLengthTooSmall { .. }
        | Error::ChecksumMismatch { .. }
        | Error::CorruptRecord { .. }
        | Error::RecordCountMismatch { .. }
        | Error::InvalidBatchHeader { .. }
        | Error::UnknownCompression { .. }
        | Error::Decompress { .. }
        | Error::DecompressedTooLarge { .. } => K::CorruptMessage,
        Error::UnsupportedMagic { .. } | Error::CodecDisabled { .. } => {
            K::UnsupportedForMessageFormat
        }
        Error::RecordWithoutKey { .. } => K::InvalidRecord,
        Error::InvalidTimestamp { .. } => K::InvalidTimestamp,
        Error::OutOfOrderSequence { .. } => K::OutOfOrderSequenceNumber,
        Error::InvalidProducerEpoch { .. } => K::InvalidProducerEpoch,
        Error::InvalidTxnState { .. } => K::InvalidTxnState,
        Error::TransactionCoordinatorFenced { .. } => K::TransactionCoordinatorFenced,
        Error::LogPoisoned { .. } | Error::Io { .. } | Error::CorruptSegment { .. } => {
            K::KafkaStorageError
        }
        Error::LogClosed { .. } | Error::StorageClosed { .. } => K::NotLeaderOrFollower,
        Error::InvalidArgument(_)
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
        | Error::InvalidProducerId { .. }
        | Error::NegativePartition { .. } => K::InvalidRequest,
        _ => K::UnknownServerError,
    }
}
