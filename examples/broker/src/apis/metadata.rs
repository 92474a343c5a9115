//! Who is in the cluster and where things are: Metadata, DescribeCluster, FindCoordinator.
//! This broker is the whole cluster: it leads every partition and coordinates every group
//! and transactional id.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, DescribeClusterResponse, FindCoordinatorRequest, FindCoordinatorResponse,
    MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::ResponseError;

use super::str_bytes;
use crate::broker::Broker;

/// Metadata: the broker, and the topics asked for (all when `topics` is null, or empty at
/// v0), auto-creating unknown ones when the request and the config allow it.
pub fn metadata(broker: &Broker, req: MetadataRequest, version: i16) -> MetadataResponse {
    let all = match &req.topics {
        None => true,
        Some(t) => t.is_empty() && version == 0,
    };
    let names: Vec<String> = if all {
        broker.storage.topics()
    } else {
        req.topics
            .iter()
            .flatten()
            .filter_map(|t| t.name.as_ref().map(|n| n.as_str().to_string()))
            .collect()
    };
    // Before v4 every Metadata request may auto-create; from v4 the client says.
    let may_create = !all && (version < 4 || req.allow_auto_topic_creation);
    let topics = names
        .into_iter()
        .map(|name| topic_metadata(broker, &name, may_create))
        .collect();
    MetadataResponse::default()
        .with_brokers(vec![MetadataResponseBroker::default()
            .with_node_id(BrokerId(broker.node_id()))
            .with_host(str_bytes(broker.advertised_host.clone()))
            .with_port(broker.advertised_port)])
        .with_cluster_id(Some(str_bytes(broker.cluster_id.clone())))
        .with_controller_id(BrokerId(broker.node_id()))
        .with_topics(topics)
}

fn topic_metadata(broker: &Broker, name: &str, may_create: bool) -> MetadataResponseTopic {
    let topic = MetadataResponseTopic::default()
        .with_name(Some(TopicName(str_bytes(name))))
        .with_is_internal(name.starts_with("__"));
    if streamlog::storage::validate_topic_name(name).is_err() {
        return topic.with_error_code(ResponseError::InvalidTopicException.code());
    }
    if may_create {
        broker.auto_create(name);
    }
    let Ok(count) = broker.storage.partition_count(name) else {
        return topic.with_error_code(ResponseError::UnknownTopicOrPartition.code());
    };
    let me = BrokerId(broker.node_id());
    let partitions = (0..count)
        .map(|p| {
            MetadataResponsePartition::default()
                .with_partition_index(p as i32)
                .with_leader_id(me)
                .with_leader_epoch(0)
                .with_replica_nodes(vec![me])
                .with_isr_nodes(vec![me])
        })
        .collect();
    topic.with_partitions(partitions)
}

/// DescribeCluster: this broker, as controller and only member.
pub fn describe_cluster(broker: &Broker) -> DescribeClusterResponse {
    DescribeClusterResponse::default()
        .with_cluster_id(str_bytes(broker.cluster_id.clone()))
        .with_controller_id(BrokerId(broker.node_id()))
        .with_brokers(vec![DescribeClusterBroker::default()
            .with_broker_id(BrokerId(broker.node_id()))
            .with_host(str_bytes(broker.advertised_host.clone()))
            .with_port(broker.advertised_port)])
}

/// FindCoordinator: this broker, for every key.
pub fn find_coordinator(
    broker: &Broker,
    req: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let me = BrokerId(broker.node_id());
    let host = str_bytes(broker.advertised_host.clone());
    if version < 4 {
        return FindCoordinatorResponse::default()
            .with_node_id(me)
            .with_host(host)
            .with_port(broker.advertised_port);
    }
    let coordinators = req
        .coordinator_keys
        .into_iter()
        .map(|key| {
            Coordinator::default()
                .with_key(key)
                .with_node_id(me)
                .with_host(host.clone())
                .with_port(broker.advertised_port)
        })
        .collect();
    FindCoordinatorResponse::default().with_coordinators(coordinators)
}
