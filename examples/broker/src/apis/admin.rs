//! Topic administration: CreateTopics, DeleteTopics, CreatePartitions, DescribeConfigs.
//! Every change goes through streamlog's `Storage`, which makes it crash-safe.

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use streamlog::storage::{
    TopicConfig, TopicSettings, CLEANUP_POLICY, COMPRESSION_TYPE, DELETE_RETENTION_MS,
    FLUSH_MESSAGES, FLUSH_MS, INDEX_INTERVAL_BYTES, MAX_COMPACTION_LAG_MS, MAX_MESSAGE_BYTES,
    MESSAGE_TIMESTAMP_AFTER_MAX_MS, MESSAGE_TIMESTAMP_BEFORE_MAX_MS, MESSAGE_TIMESTAMP_TYPE,
    MIN_CLEANABLE_DIRTY_RATIO, MIN_COMPACTION_LAG_MS, RETENTION_BYTES, RETENTION_MS, SEGMENT_BYTES,
    SEGMENT_INDEX_BYTES, SEGMENT_MS, TOPIC_CONFIG_KEYS,
};
use streamlog::TimestampType;

use super::str_bytes;
use crate::broker::Broker;
use crate::errors;

/// Kafka's ConfigResource types.
pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;
/// Kafka's ConfigSource values.
const SOURCE_DYNAMIC_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;

type Failure = (ResponseError, String);

/// CreateTopics: single-node topics (replication factor 1), with Kafka's topic configs.
pub fn create_topics(
    broker: &Broker,
    req: CreateTopicsRequest,
    version: i16,
) -> CreateTopicsResponse {
    let results = req
        .topics
        .into_iter()
        .map(|topic| {
            let name = topic.name.clone();
            let mut result = CreatableTopicResult::default().with_name(name.clone());
            match create_one(broker, topic, req.validate_only) {
                Ok((partitions, config)) => {
                    if version >= 5 {
                        let settings = config.resolve(&broker.storage.config().defaults);
                        result = result
                            .with_num_partitions(partitions as i32)
                            .with_replication_factor(1)
                            .with_configs(Some(
                                topic_configs(&config, &settings)
                                    .into_iter()
                                    .map(|(k, v, source)| {
                                        CreatableTopicConfigs::default()
                                            .with_name(str_bytes(k))
                                            .with_value(Some(str_bytes(v)))
                                            .with_config_source(source)
                                    })
                                    .collect(),
                            ));
                    }
                    result
                }
                Err((e, msg)) => {
                    tracing::debug!(topic = %name.as_str(), error = %msg, "CreateTopics refused");
                    result
                        .with_error_code(e.code())
                        .with_error_message(Some(str_bytes(msg)))
                }
            }
        })
        .collect();
    CreateTopicsResponse::default().with_topics(results)
}

fn create_one(
    broker: &Broker,
    topic: CreatableTopic,
    validate_only: bool,
) -> Result<(u32, TopicConfig), Failure> {
    let name = topic.name.as_str();
    if !matches!(topic.replication_factor, -1 | 1) {
        return Err((
            ResponseError::InvalidReplicationFactor,
            format!(
                "replication factor {} on a single-node cluster",
                topic.replication_factor
            ),
        ));
    }
    let partitions = if topic.assignments.is_empty() {
        match topic.num_partitions {
            -1 => broker.config.num_partitions,
            n if n > 0 => n as u32,
            n => return Err((ResponseError::InvalidPartitions, format!("{n} partitions"))),
        }
    } else {
        let me = broker.node_id();
        let ok = topic.num_partitions == -1
            && topic.assignments.iter().enumerate().all(|(i, a)| {
                a.partition_index == i as i32 && a.broker_ids.iter().all(|b| b.0 == me)
            });
        if !ok {
            return Err((
                ResponseError::InvalidReplicaAssignment,
                format!("assignments must name partitions 0.. on node {me}"),
            ));
        }
        topic.assignments.len() as u32
    };
    let mut config = TopicConfig::new();
    for c in &topic.configs {
        let Some(value) = &c.value else { continue };
        config
            .set(c.name.as_str(), value.as_str())
            .map_err(|e| (ResponseError::InvalidConfig, e.to_string()))?;
    }
    streamlog::storage::validate_topic_name(name).map_err(fail)?;
    // Keys that bound each other (min/max.compaction.lag.ms), over the broker's defaults.
    config
        .resolve_checked(&broker.storage.config().defaults)
        .map_err(fail)?;
    if validate_only {
        if broker.storage.partition_count(name).is_ok() {
            return Err((
                ResponseError::TopicAlreadyExists,
                format!("topic {name} already exists"),
            ));
        }
        return Ok((partitions, config));
    }
    broker
        .storage
        .create_topic(name, partitions, config.clone())
        .map_err(fail)?;
    tracing::info!(topic = name, partitions, "created topic");
    Ok((partitions, config))
}

fn fail(e: streamlog::Error) -> Failure {
    (errors::kafka_error(&e), e.to_string())
}

/// DeleteTopics by name.
pub fn delete_topics(broker: &Broker, req: DeleteTopicsRequest) -> DeleteTopicsResponse {
    let responses = req
        .topic_names
        .into_iter()
        .map(|name| {
            let result = DeletableTopicResult::default().with_name(Some(name.clone()));
            match broker.storage.delete_topic(name.as_str()) {
                Ok(()) => {
                    tracing::info!(topic = %name.as_str(), "deleted topic");
                    result
                }
                Err(e) => result
                    .with_error_code(errors::code(&e))
                    .with_error_message(Some(str_bytes(e.to_string()))),
            }
        })
        .collect();
    DeleteTopicsResponse::default().with_responses(responses)
}

/// CreatePartitions: raises partition counts (never lowers them, as Kafka).
pub fn create_partitions(
    broker: &Broker,
    req: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let results = req
        .topics
        .into_iter()
        .map(|t| {
            let result = CreatePartitionsTopicResult::default().with_name(t.name.clone());
            let name = t.name.as_str();
            let outcome = match broker.storage.partition_count(name) {
                Err(e) => Err(fail(e)),
                Ok(current) if t.count <= current as i32 => Err((
                    ResponseError::InvalidPartitions,
                    format!(
                        "topic {name} has {current} partitions, asked for {}",
                        t.count
                    ),
                )),
                Ok(_) if req.validate_only => Ok(()),
                Ok(_) => broker
                    .storage
                    .add_partitions(name, t.count as u32)
                    .map_err(fail),
            };
            match outcome {
                Ok(()) => result,
                Err((e, msg)) => result
                    .with_error_code(e.code())
                    .with_error_message(Some(str_bytes(msg))),
            }
        })
        .collect();
    CreatePartitionsResponse::default().with_results(results)
}

/// DescribeConfigs for topics (overrides and defaults) and this broker.
pub fn describe_configs(broker: &Broker, req: DescribeConfigsRequest) -> DescribeConfigsResponse {
    let results = req
        .resources
        .into_iter()
        .map(|r| {
            let result = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            let wanted = |k: &str| {
                r.configuration_keys
                    .as_ref()
                    .is_none_or(|keys| keys.iter().any(|w| w.as_str() == k))
            };
            let entries: Result<Vec<(String, String, i8)>, Failure> = match r.resource_type {
                RESOURCE_TOPIC => {
                    let name = r.resource_name.as_str();
                    broker
                        .storage
                        .topic_config(name)
                        .and_then(|c| Ok((c, broker.storage.topic_settings(name)?)))
                        .map(|(c, s)| topic_configs(&c, &s))
                        .map_err(fail)
                }
                RESOURCE_BROKER => Ok(broker_configs(broker)),
                t => Err((
                    ResponseError::InvalidRequest,
                    format!("resource type {t} is not supported"),
                )),
            };
            match entries {
                Ok(entries) => result.with_configs(
                    entries
                        .into_iter()
                        .filter(|(k, _, _)| wanted(k))
                        .map(|(k, v, source)| {
                            DescribeConfigsResourceResult::default()
                                .with_name(str_bytes(k))
                                .with_value(Some(str_bytes(v)))
                                .with_config_source(source)
                                .with_read_only(source == SOURCE_STATIC_BROKER)
                        })
                        .collect(),
                ),
                Err((e, msg)) => result
                    .with_error_code(e.code())
                    .with_error_message(Some(StrBytes::from_string(msg))),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

/// Every topic config with its effective value and where it comes from.
fn topic_configs(overrides: &TopicConfig, settings: &TopicSettings) -> Vec<(String, String, i8)> {
    let set = overrides.to_map();
    TOPIC_CONFIG_KEYS
        .iter()
        .map(|&k| {
            let source = if set.contains_key(k) {
                SOURCE_DYNAMIC_TOPIC
            } else {
                SOURCE_DEFAULT
            };
            (k.to_string(), effective(settings, k), source)
        })
        // Kafka's configs that change nothing here, as they were set.
        .chain(
            overrides
                .without_effect
                .iter()
                .map(|(k, v)| (k.clone(), v.clone(), SOURCE_DYNAMIC_TOPIC)),
        )
        .collect()
}

fn effective(s: &TopicSettings, key: &str) -> String {
    let log = &s.log;
    match key {
        RETENTION_MS => log.retention_ms.unwrap_or(-1).to_string(),
        RETENTION_BYTES => log.retention_bytes.map_or(-1, |b| b as i64).to_string(),
        SEGMENT_BYTES => log.segment_bytes.to_string(),
        // streamlog's "never roll on time" is Kafka's largest value.
        SEGMENT_MS => log.segment_ms.unwrap_or(i64::MAX).to_string(),
        CLEANUP_POLICY => log.cleanup_policy.as_str().to_string(),
        MIN_CLEANABLE_DIRTY_RATIO => log.min_cleanable_dirty_ratio.to_string(),
        DELETE_RETENTION_MS => log.delete_retention_ms.to_string(),
        MIN_COMPACTION_LAG_MS => log.min_compaction_lag_ms.to_string(),
        MAX_MESSAGE_BYTES => log.max_message_bytes.to_string(),
        MESSAGE_TIMESTAMP_TYPE => match log.message_timestamp_type {
            TimestampType::LogAppendTime => "LogAppendTime".into(),
            _ => "CreateTime".into(),
        },
        COMPRESSION_TYPE => s.compression_type.name().to_string(),
        MESSAGE_TIMESTAMP_BEFORE_MAX_MS => log.message_timestamp_before_max_ms.to_string(),
        MESSAGE_TIMESTAMP_AFTER_MAX_MS => log.message_timestamp_after_max_ms.to_string(),
        SEGMENT_INDEX_BYTES => log.segment_index_bytes.to_string(),
        INDEX_INTERVAL_BYTES => log.index_interval_bytes.to_string(),
        // streamlog's "never" is Kafka's default, Long.MAX_VALUE.
        FLUSH_MESSAGES => log
            .flush_messages
            .map_or(i64::MAX, |v| i64::try_from(v).unwrap_or(i64::MAX))
            .to_string(),
        FLUSH_MS => log.flush_ms.unwrap_or(i64::MAX).to_string(),
        MAX_COMPACTION_LAG_MS => log.max_compaction_lag_ms.unwrap_or(i64::MAX).to_string(),
        _ => String::new(),
    }
}

fn broker_configs(broker: &Broker) -> Vec<(String, String, i8)> {
    let c = &broker.config;
    [
        ("node.id", c.node_id.to_string()),
        ("broker.id", c.node_id.to_string()),
        ("log.dirs", c.data_dir.display().to_string()),
        ("num.partitions", c.num_partitions.to_string()),
        (
            "auto.create.topics.enable",
            c.auto_create_topics_enable.to_string(),
        ),
        (
            "socket.request.max.bytes",
            c.socket_request_max_bytes.to_string(),
        ),
        ("max.connections", c.max_connections.to_string()),
        (
            "connections.max.idle.ms",
            c.connections_max_idle_ms.to_string(),
        ),
        ("fetch.max.bytes", c.fetch_max_bytes.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v, SOURCE_STATIC_BROKER))
    .collect()
}
