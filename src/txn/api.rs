//! What goes into the transaction coordinator and what comes out: Kafka's requests and
//! responses (fields as in Kafka's JSON message schemas), `__transaction_state` appends,
//! marker requests, and the reports the application gives back.

use super::log_record::TopicPartition;
use super::KafkaCode;
use crate::producer::TxnResult;

/// The caller's handle for a request; its response carries it back.
pub type RequestId = u64;

/// InitProducerId (Kafka's API key 22).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitProducerIdRequest {
    /// The transactional id; `None` for an idempotent producer, which gets a fresh id.
    pub transactional_id: Option<String>,
    /// The producer's `transaction.timeout.ms`.
    pub transaction_timeout_ms: i32,
    /// KIP-360: the producer id the client has (-1 if none).
    pub producer_id: i64,
    /// KIP-360: the epoch the client has (-1 if none).
    pub producer_epoch: i16,
}

impl InitProducerIdRequest {
    /// A transactional producer's first InitProducerId.
    pub fn transactional(transactional_id: impl Into<String>, timeout_ms: i32) -> Self {
        InitProducerIdRequest {
            transactional_id: Some(transactional_id.into()),
            transaction_timeout_ms: timeout_ms,
            producer_id: -1,
            producer_epoch: -1,
        }
    }

    /// An idempotent producer's InitProducerId.
    pub fn idempotent() -> Self {
        InitProducerIdRequest {
            transactional_id: None,
            transaction_timeout_ms: i32::MAX,
            producer_id: -1,
            producer_epoch: -1,
        }
    }
}

/// The answer to [`InitProducerIdRequest`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InitProducerIdResponse {
    /// `NONE` or Kafka's error.
    pub error: KafkaCode,
    /// The producer id (-1 on error).
    pub producer_id: i64,
    /// The producer epoch (-1 on error).
    pub producer_epoch: i16,
}

/// One transaction of an AddPartitionsToTxn request (Kafka's API key 24). Versions 0–3 carry
/// one, from a client; versions 4+ batch several, from brokers, each possibly `verify_only`
/// (KIP-890: only check that the partitions are already in the transaction).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddPartitionsToTxnTransaction {
    /// The transactional id.
    pub transactional_id: String,
    /// The producer id.
    pub producer_id: i64,
    /// The producer epoch.
    pub producer_epoch: i16,
    /// Only verify, do not add (v4+).
    pub verify_only: bool,
    /// The partitions.
    pub partitions: Vec<TopicPartition>,
}

/// The per-partition results for one transaction of an AddPartitionsToTxn request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddPartitionsToTxnResult {
    /// The transactional id.
    pub transactional_id: String,
    /// Each partition's error code (`NONE` when added or verified).
    pub partitions: Vec<(TopicPartition, KafkaCode)>,
}

impl AddPartitionsToTxnResult {
    /// The first error among the partitions (`NONE` if all succeeded): the single code a
    /// version 0–3 response effectively carries.
    pub fn error(&self) -> KafkaCode {
        self.partitions
            .iter()
            .map(|(_, e)| *e)
            .find(|e| e.is_error())
            .unwrap_or(KafkaCode::NONE)
    }
}

/// AddOffsetsToTxn (Kafka's API key 25): adds the group's `__consumer_offsets` partition to
/// the transaction, so the group's transactional offset commits share its fate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddOffsetsToTxnRequest {
    /// The transactional id.
    pub transactional_id: String,
    /// The producer id.
    pub producer_id: i64,
    /// The producer epoch.
    pub producer_epoch: i16,
    /// The consumer group whose offsets the transaction will commit.
    pub group_id: String,
}

/// EndTxn (Kafka's API key 26).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndTxnRequest {
    /// The transactional id.
    pub transactional_id: String,
    /// The producer id.
    pub producer_id: i64,
    /// The producer epoch.
    pub producer_epoch: i16,
    /// Commit (`true`) or abort.
    pub committed: bool,
}

/// A response to a request, by kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// To InitProducerId.
    InitProducerId(InitProducerIdResponse),
    /// To AddPartitionsToTxn: one result per transaction, in request order.
    AddPartitionsToTxn(Vec<AddPartitionsToTxnResult>),
    /// To AddOffsetsToTxn.
    AddOffsetsToTxn(KafkaCode),
    /// To EndTxn.
    EndTxn(KafkaCode),
}

/// A record for the application to append to a `__transaction_state` partition, then report
/// with [`TransactionCoordinator::append_completed`](super::TransactionCoordinator::append_completed)
/// once it is durable (acks=all).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnLogAppend {
    /// Names this append in the report.
    pub id: u64,
    /// The `__transaction_state` partition.
    pub partition: u32,
    /// The coordinator epoch the append was made under.
    pub coordinator_epoch: i32,
    /// The transactional id.
    pub transactional_id: String,
    /// The record key (a TransactionLogKey).
    pub key: Vec<u8>,
    /// The record value (a TransactionLogValue), `None` for a tombstone.
    pub value: Option<Vec<u8>>,
    /// The record timestamp.
    pub timestamp: i64,
}

/// Markers to write (Kafka's WriteTxnMarkers entry): a COMMIT or ABORT control batch for
/// `producer_id` at `producer_epoch`, under `coordinator_epoch`, to each partition. Report
/// each partition with
/// [`TransactionCoordinator::marker_written`](super::TransactionCoordinator::marker_written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnMarkerRequest {
    /// Names this request in the reports.
    pub id: u64,
    /// The transactional id whose transaction the markers end.
    pub transactional_id: String,
    /// The producer id.
    pub producer_id: i64,
    /// The producer epoch to write the markers with.
    pub producer_epoch: i16,
    /// The coordinator epoch (the markers carry it; partitions fence older ones).
    pub coordinator_epoch: i32,
    /// Commit or abort.
    pub result: TxnResult,
    /// The partitions to write to.
    pub partitions: Vec<TopicPartition>,
}

/// What happened to a marker on one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkerOutcome {
    /// The marker is written.
    Written,
    /// The partition no longer exists (its topic was deleted): nothing to write.
    PartitionDeleted,
    /// The write failed with this error code (as a WriteTxnMarkers response carries it).
    /// Retriable codes are retried after a backoff; `INVALID_PRODUCER_EPOCH` and
    /// `TRANSACTION_COORDINATOR_FENCED` stop sending (a newer producer or coordinator took
    /// over); any other code is retried too.
    Failed(KafkaCode),
}

/// What the coordinator asks of the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send this response for the request.
    Response {
        /// The request answered.
        request: RequestId,
        /// The response.
        response: Response,
    },
    /// Append a record to `__transaction_state`.
    AppendTxnLog(TxnLogAppend),
    /// Write transaction markers.
    WriteTxnMarkers(TxnMarkerRequest),
    /// Reserve the next block of producer ids (with a
    /// [`ProducerIdManager`](super::ProducerIdManager)) and hand it over with
    /// [`TransactionCoordinator::producer_ids_reserved`](super::TransactionCoordinator::producer_ids_reserved).
    ReserveProducerIds,
}

/// A transactional id's state as DescribeTransactions reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionDescription {
    /// `NONE`, or why there is no description (`NOT_COORDINATOR`,
    /// `COORDINATOR_LOAD_IN_PROGRESS`, `TRANSACTIONAL_ID_NOT_FOUND`).
    pub error: KafkaCode,
    /// Kafka's state name.
    pub state: &'static str,
    /// The producer id.
    pub producer_id: i64,
    /// The producer epoch.
    pub producer_epoch: i16,
    /// The transaction timeout.
    pub transaction_timeout_ms: i32,
    /// When the open transaction started (-1 if none).
    pub transaction_start_time_ms: i64,
    /// The partitions in the transaction (those still waiting for a marker while it ends).
    pub partitions: Vec<TopicPartition>,
}
