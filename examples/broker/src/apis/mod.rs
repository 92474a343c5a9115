//! One handler per Kafka API. [`handle`] routes a decoded request to its handler and says
//! what to send back.
//!
//! Handlers that touch the disk run on tokio's blocking pool; Fetch stays async because it
//! long-polls. The group and transaction APIs (JoinGroup, OffsetCommit, AddPartitionsToTxn,
//! …) plug in here once their coordinators exist: a row in [`versions`], an arm in
//! [`handle`], a handler file driving the coordinator's state machine.

pub mod admin;
pub mod fetch;
pub mod list_offsets;
pub mod metadata;
pub mod produce;
pub mod versions;

use std::sync::Arc;

use kafka_protocol::messages::{ApiKey, ApiVersionsResponse, RequestKind, ResponseKind};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;

/// What a request gets.
#[derive(Debug)]
pub enum Outcome {
    /// A response.
    Respond(ResponseKind),
    /// Nothing: a Produce with acks=0 that succeeded.
    NoResponse,
    /// The connection is closed (Kafka's answer to an acks=0 produce that failed, and to
    /// requests it cannot serve).
    Close(String),
}

/// Handles one request of `version`.
pub async fn handle(broker: &Arc<Broker>, api_key: ApiKey, version: i16, body: RequestKind) -> Outcome {
    match body {
        RequestKind::ApiVersions(_) => Outcome::Respond(ResponseKind::ApiVersions(
            ApiVersionsResponse::default().with_api_keys(versions::api_versions()),
        )),
        RequestKind::Fetch(req) => fetch::handle(broker, req, version).await,
        other => {
            let broker = Arc::clone(broker);
            match tokio::task::spawn_blocking(move || handle_blocking(&broker, version, other))
                .await
            {
                Ok(outcome) => outcome,
                Err(e) => Outcome::Close(format!("{api_key:?} handler failed: {e}")),
            }
        }
    }
}

fn handle_blocking(broker: &Broker, version: i16, body: RequestKind) -> Outcome {
    use Outcome::Respond;
    use RequestKind as Rq;
    use ResponseKind as Rs;
    match body {
        Rq::Metadata(r) => Respond(Rs::Metadata(metadata::metadata(broker, r, version))),
        Rq::DescribeCluster(_) => Respond(Rs::DescribeCluster(metadata::describe_cluster(broker))),
        Rq::FindCoordinator(r) => Respond(Rs::FindCoordinator(metadata::find_coordinator(
            broker, r, version,
        ))),
        Rq::CreateTopics(r) => Respond(Rs::CreateTopics(admin::create_topics(broker, r, version))),
        Rq::DeleteTopics(r) => Respond(Rs::DeleteTopics(admin::delete_topics(broker, r))),
        Rq::CreatePartitions(r) => Respond(Rs::CreatePartitions(admin::create_partitions(broker, r))),
        Rq::DescribeConfigs(r) => Respond(Rs::DescribeConfigs(admin::describe_configs(broker, r))),
        Rq::Produce(r) => produce::produce(broker, r),
        Rq::InitProducerId(r) => Respond(Rs::InitProducerId(produce::init_producer_id(broker, r))),
        Rq::ListOffsets(r) => Respond(Rs::ListOffsets(list_offsets::list_offsets(broker, r))),
        other => Outcome::Close(format!("no handler for {other:?}")),
    }
}

/// An owned string as the protocol's string type.
pub fn str_bytes(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}
