//! Consumer-group bytes match what kafka-python produces: `__consumer_offsets` records,
//! consumer protocol blobs and sticky user data decode to the fields the generator wrote
//! and re-encode to the same bytes; group ids map to the offsets partitions Kafka picks.
//! Vectors from `tests/data/group/generate.py` (kafka-python 3.0.12), committed in
//! `tests/data/group/vectors.json`.

use serde_json::Value;
use streamlog::group::assignor::StickyAssignorUserData;
use streamlog::group::{
    java_string_hash_code, partition_for_group, ConsumerProtocolAssignment,
    ConsumerProtocolSubscription, GroupMetadataValue, OffsetCommitValue, OffsetsKey, TaggedField,
    TopicPartitions,
};

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn opt_hex(v: &Value) -> Option<Vec<u8>> {
    v.as_str().map(hex)
}

fn opt_str(v: &Value) -> Option<String> {
    v.as_str().map(str::to_string)
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap()
}

fn tags(v: &Value) -> Vec<TaggedField> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|t| TaggedField {
            tag: int(&t["tag"]) as u32,
            data: hex(t["data_hex"].as_str().unwrap()),
        })
        .collect()
}

fn topic_partitions(v: &Value) -> Vec<TopicPartitions> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|tp| {
            TopicPartitions::new(
                tp["topic"].as_str().unwrap(),
                tp["partitions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| int(p) as i32)
                    .collect(),
            )
        })
        .collect()
}

fn vectors() -> Vec<Value> {
    let text = include_str!("../data/group/vectors.json");
    serde_json::from_str::<Value>(text)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn group_bytes_round_trip_against_kafka_python() {
    let mut checked = std::collections::BTreeMap::<String, usize>::new();
    for v in vectors() {
        let kind = v["kind"].as_str().unwrap();
        let f = &v["fields"];
        let bytes = v["hex"].as_str().map(hex);
        match kind {
            "offset_commit_key" | "group_metadata_key" => {
                let bytes = bytes.unwrap();
                let key = OffsetsKey::decode(&bytes).unwrap();
                match &key {
                    OffsetsKey::OffsetCommit(k) => {
                        assert_eq!(kind, "offset_commit_key");
                        assert_eq!(i64::from(k.version), int(&f["version"]));
                        assert_eq!(k.group, f["group"].as_str().unwrap());
                        assert_eq!(k.topic, f["topic"].as_str().unwrap());
                        assert_eq!(i64::from(k.partition), int(&f["partition"]));
                    }
                    OffsetsKey::GroupMetadata(k) => {
                        assert_eq!(kind, "group_metadata_key");
                        assert_eq!(k.group, f["group"].as_str().unwrap());
                    }
                }
                assert_eq!(key.encode().unwrap(), bytes, "{kind} re-encodes");
            }
            "offset_commit_value" => {
                let bytes = bytes.unwrap();
                let value = OffsetCommitValue::decode(&bytes).unwrap();
                let expected = OffsetCommitValue {
                    version: int(&f["version"]) as i16,
                    offset: int(&f["offset"]),
                    leader_epoch: int(&f["leader_epoch"]) as i32,
                    metadata: f["metadata"].as_str().unwrap().to_string(),
                    commit_timestamp: int(&f["commit_timestamp"]),
                    expire_timestamp: int(&f["expire_timestamp"]),
                    tagged_fields: tags(&f["tagged_fields"]),
                };
                assert_eq!(value, expected);
                assert_eq!(value.encode().unwrap(), bytes);
            }
            "group_metadata_value" => {
                let bytes = bytes.unwrap();
                let value = GroupMetadataValue::decode(&bytes).unwrap();
                assert_eq!(i64::from(value.version), int(&f["version"]));
                assert_eq!(value.protocol_type, f["protocol_type"].as_str().unwrap());
                assert_eq!(i64::from(value.generation), int(&f["generation"]));
                assert_eq!(value.protocol, opt_str(&f["protocol"]));
                assert_eq!(value.leader, opt_str(&f["leader"]));
                assert_eq!(
                    value.current_state_timestamp,
                    int(&f["current_state_timestamp"])
                );
                assert_eq!(value.tagged_fields, tags(&f["tagged_fields"]));
                let members = f["members"].as_array().unwrap();
                assert_eq!(value.members.len(), members.len());
                for (m, e) in value.members.iter().zip(members) {
                    assert_eq!(m.member_id, e["member_id"].as_str().unwrap());
                    assert_eq!(m.group_instance_id, opt_str(&e["group_instance_id"]));
                    assert_eq!(m.client_id, e["client_id"].as_str().unwrap());
                    assert_eq!(m.client_host, e["client_host"].as_str().unwrap());
                    assert_eq!(i64::from(m.rebalance_timeout), int(&e["rebalance_timeout"]));
                    assert_eq!(i64::from(m.session_timeout), int(&e["session_timeout"]));
                    assert_eq!(m.subscription, hex(e["subscription_hex"].as_str().unwrap()));
                    assert_eq!(m.assignment, hex(e["assignment_hex"].as_str().unwrap()));
                    assert_eq!(m.tagged_fields, tags(&e["tagged_fields"]));
                    // The members' blobs are kafka-python's consumer protocol bytes too.
                    let sub = ConsumerProtocolSubscription::decode(&m.subscription).unwrap();
                    assert_eq!(sub.encode().unwrap(), m.subscription);
                    let asg = ConsumerProtocolAssignment::decode(&m.assignment).unwrap();
                    assert_eq!(asg.encode().unwrap(), m.assignment);
                }
                assert_eq!(value.encode().unwrap(), bytes);
            }
            "consumer_subscription" => {
                let bytes = bytes.unwrap();
                let s = ConsumerProtocolSubscription::decode(&bytes).unwrap();
                let expected = ConsumerProtocolSubscription {
                    version: int(&f["version"]) as i16,
                    topics: f["topics"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|t| t.as_str().unwrap().to_string())
                        .collect(),
                    user_data: opt_hex(&f["user_data_hex"]),
                    owned_partitions: topic_partitions(&f["owned_partitions"]),
                    generation_id: int(&f["generation_id"]) as i32,
                    rack_id: opt_str(&f["rack_id"]),
                };
                assert_eq!(s, expected);
                assert_eq!(s.encode().unwrap(), bytes);
            }
            "consumer_assignment" => {
                let bytes = bytes.unwrap();
                let a = ConsumerProtocolAssignment::decode(&bytes).unwrap();
                let expected = ConsumerProtocolAssignment {
                    version: int(&f["version"]) as i16,
                    assigned_partitions: topic_partitions(&f["assigned_partitions"]),
                    user_data: opt_hex(&f["user_data_hex"]),
                };
                assert_eq!(a, expected);
                assert_eq!(a.encode().unwrap(), bytes);
            }
            "sticky_user_data" => {
                let bytes = bytes.unwrap();
                let d = StickyAssignorUserData::decode(&bytes).unwrap();
                let expected = StickyAssignorUserData {
                    previous_assignment: topic_partitions(&f["previous_assignment"]),
                    generation: f["generation"].as_i64().map(|g| g as i32),
                };
                assert_eq!(d, expected);
                assert_eq!(d.encode().unwrap(), bytes);
            }
            "coordinator_partition" => {
                let group = f["group"].as_str().unwrap();
                assert_eq!(
                    i64::from(java_string_hash_code(group)),
                    int(&f["hash_code"]),
                    "{group:?}"
                );
                for (n, expected) in f["partitions"].as_object().unwrap() {
                    let n: u32 = n.parse().unwrap();
                    assert_eq!(
                        i64::from(partition_for_group(group, n).unwrap()),
                        int(expected)
                    );
                }
            }
            other => panic!("unknown vector kind {other}"),
        }
        *checked.entry(kind.to_string()).or_default() += 1;
    }
    // Every kind is present, with every version of the versioned ones.
    for (kind, at_least) in [
        ("offset_commit_key", 5),
        ("group_metadata_key", 3),
        ("offset_commit_value", 15),
        ("group_metadata_value", 15),
        ("consumer_subscription", 16),
        ("consumer_assignment", 16),
        ("sticky_user_data", 3),
        ("coordinator_partition", 50),
    ] {
        assert!(
            checked.get(kind).copied().unwrap_or(0) >= at_least,
            "{kind}: {checked:?}"
        );
    }
}
