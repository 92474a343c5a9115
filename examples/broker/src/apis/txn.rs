//! Producer ids and transactions, answered by streamlog's transaction coordinator
//! (`streamlog::txn::LocalTxnDriver`): InitProducerId, AddPartitionsToTxn, EndTxn. The driver
//! writes `__transaction_state` and the commit/abort markers itself before it answers.
//! AddOffsetsToTxn and TxnOffsetCommit, the offsets half of a transaction, are in
//! `groups.rs`.

use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, EndTxnRequest, EndTxnResponse,
    InitProducerIdRequest, InitProducerIdResponse, ProducerId, TopicName,
};
use kafka_protocol::ResponseError;
use streamlog::txn::{self, TopicPartition};

use super::str_bytes;
use crate::broker::Broker;

fn storage_error(e: &streamlog::Error) -> i16 {
    tracing::error!(error = %e, "transaction coordinator failed");
    ResponseError::KafkaStorageError.code()
}

/// InitProducerId: a fresh id for an idempotent producer; for a transactional one, its id
/// with a bumped epoch (fencing older instances, completing what they left open).
pub fn init_producer_id(broker: &Broker, req: InitProducerIdRequest) -> InitProducerIdResponse {
    let request = match req.transactional_id.as_ref().filter(|t| !t.is_empty()) {
        Some(id) => txn::InitProducerIdRequest {
            transactional_id: Some(id.as_str().to_string()),
            transaction_timeout_ms: req.transaction_timeout_ms,
            producer_id: req.producer_id.0,
            producer_epoch: req.producer_epoch,
        },
        None => txn::InitProducerIdRequest::idempotent(),
    };
    let resp = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    match broker.txn().init_producer_id(request) {
        Ok(r) => resp
            .with_error_code(r.error.code())
            .with_producer_id(ProducerId(r.producer_id))
            .with_producer_epoch(r.producer_epoch),
        Err(e) => resp.with_error_code(storage_error(&e)),
    }
}

/// AddPartitionsToTxn as clients send it (v0–3: one transaction).
pub fn add_partitions_to_txn(
    broker: &Broker,
    req: AddPartitionsToTxnRequest,
) -> AddPartitionsToTxnResponse {
    let partitions: Vec<TopicPartition> = req
        .v3_and_below_topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|&p| TopicPartition::new(t.name.as_str(), p))
        })
        .collect();
    let outcome = broker.txn().add_partitions_to_txn(
        req.v3_and_below_transactional_id.as_str(),
        req.v3_and_below_producer_id.0,
        req.v3_and_below_producer_epoch,
        partitions.clone(),
    );
    let code_of = |tp: &TopicPartition| -> i16 {
        match &outcome {
            Ok(result) => result
                .partitions
                .iter()
                .find(|(p, _)| p == tp)
                .map_or(0, |(_, e)| e.code()),
            Err(e) => storage_error(e),
        }
    };
    let results = req
        .v3_and_below_topics
        .iter()
        .map(|t| {
            AddPartitionsToTxnTopicResult::default()
                .with_name(TopicName(str_bytes(t.name.as_str())))
                .with_results_by_partition(
                    t.partitions
                        .iter()
                        .map(|&p| {
                            AddPartitionsToTxnPartitionResult::default()
                                .with_partition_index(p)
                                .with_partition_error_code(code_of(&TopicPartition::new(
                                    t.name.as_str(),
                                    p,
                                )))
                        })
                        .collect(),
                )
        })
        .collect();
    AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results)
}

/// EndTxn: commit or abort; the markers are written before the answer.
pub fn end_txn(broker: &Broker, req: EndTxnRequest) -> EndTxnResponse {
    let outcome = broker.txn().end_txn(
        req.transactional_id.as_str(),
        req.producer_id.0,
        req.producer_epoch,
        req.committed,
    );
    match outcome {
        Ok(code) => EndTxnResponse::default().with_error_code(code.code()),
        Err(e) => EndTxnResponse::default().with_error_code(storage_error(&e)),
    }
}
