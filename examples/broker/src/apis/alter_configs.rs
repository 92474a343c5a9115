//! AlterConfigs (replace a resource's whole set of overrides) and IncrementalAlterConfigs
//! (SET, DELETE, APPEND, SUBTRACT per key), for topics. Overrides go through
//! `Storage::alter_topic_config`, which persists them before they take effect; a request
//! whose change does not validate leaves the topic's overrides as they were.
//!
//! Broker configs are static here (the TOML file): a broker resource gets Kafka's answer
//! for configs that cannot be updated dynamically, INVALID_REQUEST.

use std::collections::BTreeMap;

use kafka_protocol::messages::{
    alter_configs_response, incremental_alter_configs_response, AlterConfigsRequest,
    AlterConfigsResponse, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use kafka_protocol::ResponseError;
use streamlog::storage::{TopicConfig, CLEANUP_POLICY};

use super::admin::{RESOURCE_BROKER, RESOURCE_TOPIC};
use super::str_bytes;
use crate::broker::Broker;
use crate::errors;

type Failure = (ResponseError, String);

/// IncrementalAlterConfigs' operations, Kafka's `OpType` values.
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

/// AlterConfigs: each topic's overrides become exactly the ones given.
pub fn alter_configs(broker: &Broker, req: AlterConfigsRequest) -> AlterConfigsResponse {
    let responses = req
        .resources
        .into_iter()
        .map(|r| {
            let result = alter_configs_response::AlterConfigsResourceResponse::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            let outcome = check_resource(r.resource_type).and_then(|()| {
                let mut wanted = BTreeMap::new();
                for c in &r.configs {
                    // A null value in the legacy API removes the key, as an absent one does.
                    if let Some(v) = &c.value {
                        wanted.insert(c.name.as_str().to_string(), v.as_str().to_string());
                    }
                }
                apply(broker, r.resource_name.as_str(), wanted, req.validate_only)
            });
            match outcome {
                Ok(()) => result,
                Err((e, msg)) => result
                    .with_error_code(e.code())
                    .with_error_message(Some(str_bytes(msg))),
            }
        })
        .collect();
    AlterConfigsResponse::default().with_responses(responses)
}

/// IncrementalAlterConfigs: each key changed as its operation says, the others kept.
pub fn incremental_alter_configs(
    broker: &Broker,
    req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let responses = req
        .resources
        .into_iter()
        .map(|r| {
            let result =
                incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                    .with_resource_type(r.resource_type)
                    .with_resource_name(r.resource_name.clone());
            let topic = r.resource_name.as_str();
            let outcome = check_resource(r.resource_type)
                .and_then(|()| {
                    let current = broker.storage.topic_config(topic).map_err(fail)?;
                    let settings = broker.storage.topic_settings(topic).map_err(fail)?;
                    Ok((current, settings))
                })
                .and_then(|(current, settings)| {
                    let mut map = current.to_map();
                    // APPEND and SUBTRACT start from the effective value, default included.
                    let policy = settings.log.cleanup_policy.as_str();
                    for c in &r.configs {
                        let value = c.value.as_ref().map(|v| v.as_str());
                        edit(&mut map, c.name.as_str(), c.config_operation, value, policy)?;
                    }
                    apply(broker, topic, map, req.validate_only)
                });
            match outcome {
                Ok(()) => result,
                Err((e, msg)) => result
                    .with_error_code(e.code())
                    .with_error_message(Some(str_bytes(msg))),
            }
        })
        .collect();
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

fn check_resource(resource_type: i8) -> Result<(), Failure> {
    match resource_type {
        RESOURCE_TOPIC => Ok(()),
        RESOURCE_BROKER => Err((
            ResponseError::InvalidRequest,
            "broker configs are static (the broker's TOML file) and cannot be updated \
             dynamically"
                .into(),
        )),
        t => Err((
            ResponseError::InvalidRequest,
            format!("resource type {t} is not supported"),
        )),
    }
}

/// One IncrementalAlterConfigs operation on a topic's overrides.
fn edit(
    map: &mut BTreeMap<String, String>,
    key: &str,
    op: i8,
    value: Option<&str>,
    effective_policy: &str,
) -> Result<(), Failure> {
    let invalid = |msg: String| (ResponseError::InvalidConfig, msg);
    match op {
        OP_SET => {
            let v = value.ok_or_else(|| invalid(format!("SET of {key} without a value")))?;
            map.insert(key.to_string(), v.to_string());
        }
        OP_DELETE => {
            map.remove(key);
        }
        // Only list-valued configs take APPEND and SUBTRACT; of the topic configs served
        // that is cleanup.policy (Kafka's rule).
        OP_APPEND | OP_SUBTRACT if key == CLEANUP_POLICY => {
            let v = value.ok_or_else(|| invalid(format!("{key}: operation without a value")))?;
            let mut items: Vec<String> = map
                .get(key)
                .map_or(effective_policy, String::as_str)
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
            for item in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                if op == OP_APPEND {
                    if !items.iter().any(|i| i == item) {
                        items.push(item.to_string());
                    }
                } else {
                    items.retain(|i| i != item);
                }
            }
            if items.is_empty() {
                return Err(invalid(format!("{key} cannot be left empty")));
            }
            map.insert(key.to_string(), items.join(","));
        }
        OP_APPEND | OP_SUBTRACT => {
            return Err(invalid(format!(
                "{key} is not a list: APPEND and SUBTRACT do not apply"
            )))
        }
        other => {
            return Err((
                ResponseError::InvalidRequest,
                format!("unknown config operation {other}"),
            ))
        }
    }
    Ok(())
}

/// Validates the new overrides as a whole, then (unless validating only) stores them.
fn apply(
    broker: &Broker,
    topic: &str,
    map: BTreeMap<String, String>,
    validate_only: bool,
) -> Result<(), Failure> {
    // The topic must exist, whatever else is wrong.
    broker.storage.topic_config(topic).map_err(fail)?;
    let config = TopicConfig::from_map(&map).map_err(fail)?;
    config
        .resolve_checked(&broker.storage.config().defaults)
        .map_err(fail)?;
    if !validate_only {
        broker
            .storage
            .alter_topic_config(topic, config)
            .map_err(fail)?;
        tracing::info!(topic, ?map, "altered topic config");
    }
    Ok(())
}

fn fail(e: streamlog::Error) -> Failure {
    (errors::kafka_error(&e), e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::alter_configs_request as legacy;
    use kafka_protocol::messages::incremental_alter_configs_request as inc;
    use kafka_protocol::protocol::StrBytes;
    use streamlog::storage::RETENTION_MS;

    fn broker() -> (tempfile::TempDir, Broker) {
        let dir = tempfile::tempdir().unwrap();
        let broker = crate::broker::test_broker(dir.path(), |_| {});
        broker
            .storage
            .create_topic("t", 1, TopicConfig::new())
            .unwrap();
        (dir, broker)
    }

    fn s(v: &str) -> StrBytes {
        StrBytes::from_string(v.to_string())
    }

    fn incremental(
        broker: &Broker,
        topic: &str,
        ops: &[(&str, i8, Option<&str>)],
        validate_only: bool,
    ) -> i16 {
        let req = IncrementalAlterConfigsRequest::default()
            .with_validate_only(validate_only)
            .with_resources(vec![inc::AlterConfigsResource::default()
                .with_resource_type(RESOURCE_TOPIC)
                .with_resource_name(s(topic))
                .with_configs(
                    ops.iter()
                        .map(|&(k, op, v)| {
                            inc::AlterableConfig::default()
                                .with_name(s(k))
                                .with_config_operation(op)
                                .with_value(v.map(s))
                        })
                        .collect(),
                )]);
        incremental_alter_configs(broker, req).responses[0].error_code
    }

    fn overrides(broker: &Broker) -> BTreeMap<String, String> {
        broker.storage.topic_config("t").unwrap().to_map()
    }

    #[test]
    fn incremental_operations_change_only_their_keys() {
        let (_dir, broker) = broker();
        assert_eq!(
            incremental(&broker, "t", &[(RETENTION_MS, OP_SET, Some("1000"))], false),
            0
        );
        assert_eq!(
            incremental(
                &broker,
                "t",
                &[(CLEANUP_POLICY, OP_APPEND, Some("compact"))],
                false
            ),
            0
        );
        let m = overrides(&broker);
        assert_eq!(m[RETENTION_MS], "1000");
        assert_eq!(m[CLEANUP_POLICY], "compact,delete");
        assert_eq!(
            broker
                .storage
                .topic_settings("t")
                .unwrap()
                .log
                .cleanup_policy,
            streamlog::CleanupPolicy::CompactDelete
        );
        assert_eq!(
            incremental(
                &broker,
                "t",
                &[(CLEANUP_POLICY, OP_SUBTRACT, Some("delete"))],
                false
            ),
            0
        );
        assert_eq!(overrides(&broker)[CLEANUP_POLICY], "compact");
        assert_eq!(
            incremental(&broker, "t", &[(RETENTION_MS, OP_DELETE, None)], false),
            0
        );
        assert!(!overrides(&broker).contains_key(RETENTION_MS));
    }

    #[test]
    fn bad_changes_are_refused_and_leave_the_overrides_alone() {
        let (_dir, broker) = broker();
        incremental(&broker, "t", &[(RETENTION_MS, OP_SET, Some("1000"))], false);
        let before = overrides(&broker);
        let bad_value = ResponseError::InvalidConfig.code();
        // The second change is bad: neither is applied.
        assert_eq!(
            incremental(
                &broker,
                "t",
                &[
                    (RETENTION_MS, OP_SET, Some("5")),
                    ("segment.bytes", OP_SET, Some("lots"))
                ],
                false
            ),
            bad_value
        );
        assert_eq!(
            incremental(&broker, "t", &[("no.such.key", OP_SET, Some("1"))], false),
            bad_value
        );
        assert_eq!(
            incremental(&broker, "t", &[(RETENTION_MS, OP_APPEND, Some("1"))], false),
            bad_value
        );
        assert_eq!(
            incremental(
                &broker,
                "t",
                &[(CLEANUP_POLICY, OP_SUBTRACT, Some("delete"))],
                false
            ),
            bad_value
        );
        assert_eq!(
            incremental(&broker, "t", &[(RETENTION_MS, 9, Some("1"))], false),
            ResponseError::InvalidRequest.code()
        );
        assert_eq!(
            incremental(
                &broker,
                "missing",
                &[(RETENTION_MS, OP_SET, Some("1"))],
                false
            ),
            ResponseError::UnknownTopicOrPartition.code()
        );
        // Valid, but only validated.
        assert_eq!(
            incremental(&broker, "t", &[(RETENTION_MS, OP_SET, Some("7"))], true),
            0
        );
        assert_eq!(overrides(&broker), before);
    }

    /// The configs wired to the log's settings reach the log the broker serves and are
    /// described with their values (Kafka's Long.MAX_VALUE for "never").
    #[test]
    fn wired_log_configs_reach_the_served_log() {
        let (_dir, broker) = broker();
        let set = [
            ("segment.index.bytes", "24"),
            ("index.interval.bytes", "0"),
            ("flush.messages", "1"),
            ("flush.ms", "250"),
            ("max.compaction.lag.ms", "60000"),
        ];
        let ops: Vec<_> = set.iter().map(|&(k, v)| (k, OP_SET, Some(v))).collect();
        assert_eq!(incremental(&broker, "t", &ops, false), 0);
        let log = broker.log("t", 0).unwrap();
        let c = log.config();
        assert_eq!((c.segment_index_bytes, c.index_interval_bytes), (24, 0));
        assert_eq!(c.flush_messages, Some(1));
        assert_eq!(c.flush_ms, Some(250));
        assert_eq!(c.max_compaction_lag_ms, Some(60_000));
        // flush.messages=1: durable as soon as appended; the tiny index rolls segments.
        for i in 0..6 {
            log.append_records(
                &[streamlog::OwnedRecord::new(i, None, Some(b"v"))],
                streamlog::Compression::None,
            )
            .unwrap();
            assert_eq!(log.recovery_point(), i + 1);
        }
        assert!(log.segment_count() > 1);
        drop(log);
        // A conflict between keys is refused whole.
        assert_eq!(
            incremental(
                &broker,
                "t",
                &[("min.compaction.lag.ms", OP_SET, Some("60001"))],
                false
            ),
            ResponseError::InvalidConfig.code()
        );
        // Deleted, the defaults come back, described as Kafka describes them.
        let ops: Vec<_> = set.iter().map(|&(k, _)| (k, OP_DELETE, None)).collect();
        assert_eq!(incremental(&broker, "t", &ops, false), 0);
        assert_eq!(broker.log("t", 0).unwrap().config().flush_messages, None);
        let req = kafka_protocol::messages::DescribeConfigsRequest::default().with_resources(vec![
            kafka_protocol::messages::describe_configs_request::DescribeConfigsResource::default()
                .with_resource_type(RESOURCE_TOPIC)
                .with_resource_name(s("t"))
                .with_configuration_keys(None),
        ]);
        let described: BTreeMap<String, String> =
            super::super::admin::describe_configs(&broker, req).results[0]
                .configs
                .iter()
                .map(|c| {
                    let v = c.value.as_ref().map_or("", |v| v.as_str());
                    (c.name.to_string(), v.to_string())
                })
                .collect();
        assert_eq!(described["flush.messages"], i64::MAX.to_string());
        assert_eq!(described["flush.ms"], i64::MAX.to_string());
        assert_eq!(described["max.compaction.lag.ms"], i64::MAX.to_string());
        assert_eq!(described["segment.index.bytes"], (10 << 20).to_string());
        assert_eq!(described["index.interval.bytes"], "4096");
    }

    #[test]
    fn legacy_alter_replaces_every_override_and_refuses_broker_resources() {
        let (_dir, broker) = broker();
        incremental(&broker, "t", &[(RETENTION_MS, OP_SET, Some("1000"))], false);
        let req = AlterConfigsRequest::default().with_resources(vec![
            legacy::AlterConfigsResource::default()
                .with_resource_type(RESOURCE_TOPIC)
                .with_resource_name(s("t"))
                .with_configs(vec![legacy::AlterableConfig::default()
                    .with_name(s("segment.bytes"))
                    .with_value(Some(s("1048576")))]),
            legacy::AlterConfigsResource::default()
                .with_resource_type(RESOURCE_BROKER)
                .with_resource_name(s("1")),
        ]);
        let resp = alter_configs(&broker, req);
        assert_eq!(resp.responses[0].error_code, 0);
        assert_eq!(
            resp.responses[1].error_code,
            ResponseError::InvalidRequest.code()
        );
        let m = overrides(&broker);
        assert_eq!(m.len(), 1, "{m:?}");
        assert_eq!(m["segment.bytes"], "1048576");
    }
}
