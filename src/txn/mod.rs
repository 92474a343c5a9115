//! The transaction coordinator: producer ids, `__transaction_state`, and two-phase commit
//! (Kafka's `TransactionCoordinator`), as a sans-IO state machine.
//!
//! ```text
//! requests ──▶ TransactionCoordinator ──▶ Output::Response          (to the client)
//!  (InitProducerId,                    ──▶ Output::AppendTxnLog      (append to __transaction_state,
//!   AddPartitionsToTxn,                                                report append_completed)
//!   AddOffsetsToTxn, EndTxn)           ──▶ Output::WriteTxnMarkers   (Log::write_txn_marker on each
//! tick(now), reports ─────────────────▶                                partition, report marker_written)
//!                                      ──▶ Output::ReserveProducerIds (ProducerIdManager::reserve_block,
//!                                                                      report producer_ids_reserved)
//! ```
//!
//! The coordinator owns no thread, socket, clock or file: the application (a broker, or
//! [`LocalTxnDriver`] for one process over a [`Storage`](crate::Storage)) feeds it requests,
//! reports and the time, and carries out its outputs. That is what lets one seeded simulation
//! crash it at every step of the two-phase commit.
//!
//! - [`producer_id`]: durable producer id blocks ([`ProducerIdManager`]).
//! - [`log_record`]: the `__transaction_state` records, byte-exact with Kafka.
//! - [`TransactionCoordinator`]: the state machine; [`TxnStateLoader`] rebuilds a partition.
//! - [`LocalTxnDriver`]: the coordinator wired to a local `Storage`.
//!
//! Implemented: the transaction protocol of transaction version 0/1 (KIP-98, KIP-360
//! epoch bumps, KIP-890 part 1 verification). Not implemented: transaction version 2
//! (KIP-890 part 2, an epoch bump at every EndTxn), ListTransactions.

mod api;
mod coordinator;
mod driver;
mod loader;
pub mod log_record;
mod metadata;
pub mod producer_id;

pub use crate::KafkaCode;
pub use api::{
    AddOffsetsToTxnRequest, AddPartitionsToTxnResult, AddPartitionsToTxnTransaction, EndTxnRequest,
    InitProducerIdRequest, InitProducerIdResponse, MarkerOutcome, Output, RequestId, Response,
    TransactionDescription, TxnLogAppend, TxnMarkerRequest,
};
pub use coordinator::{TransactionCoordinator, TxnCoordinatorConfig};
pub use driver::{LocalTxnDriver, OffsetsMarkerHook};
pub use loader::TxnStateLoader;
pub use log_record::{
    partition_for, TopicPartition, TransactionLogKey, TransactionLogValue, TxnTopicPartitions,
    DEFAULT_TRANSACTION_STATE_PARTITIONS, TRANSACTION_STATE_TOPIC,
};
pub use metadata::{TransactionState, NO_PRODUCER_EPOCH, NO_PRODUCER_ID};
pub use producer_id::{ProducerIdBlock, ProducerIdManager, PRODUCER_ID_BLOCK_SIZE};
