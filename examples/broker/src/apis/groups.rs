//! The group APIs: JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch,
//! DescribeGroups, ListGroups, DeleteGroups, OffsetDelete and TxnOffsetCommit, translated
//! between Kafka's wire messages (per version) and streamlog's group coordinator
//! (`crate::groups`); AddOffsetsToTxn goes to the transaction coordinator. The coordinator
//! decides every answer; this file only moves fields.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::{self as wire, GroupId, ResponseKind, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use streamlog::group::coordinator as gc;

use super::{str_bytes, Context, Outcome};
use crate::broker::Broker;

fn s(v: &StrBytes) -> String {
    v.as_str().to_string()
}

fn opt(v: &Option<StrBytes>) -> Option<String> {
    v.as_ref().map(s)
}

fn ostr(v: Option<String>) -> Option<StrBytes> {
    v.map(str_bytes)
}

/// What a request gets when the coordinator dropped it (the broker is stopping).
fn unavailable() -> Outcome {
    Outcome::Close("group coordinator unavailable".into())
}

/// Regroups flat `(topic, partition, T)` results under their topics, topics in first-seen
/// order, as Kafka's responses nest them.
fn by_topic<T>(items: impl IntoIterator<Item = (String, T)>) -> Vec<(String, Vec<T>)> {
    let mut order: Vec<String> = Vec::new();
    let mut map: BTreeMap<String, Vec<T>> = BTreeMap::new();
    for (topic, item) in items {
        if !map.contains_key(&topic) {
            order.push(topic.clone());
        }
        map.entry(topic).or_default().push(item);
    }
    order
        .into_iter()
        .map(|t| {
            let items = map.remove(&t).unwrap_or_default();
            (t, items)
        })
        .collect()
}

/// JoinGroup.
pub async fn join_group(
    broker: &Arc<Broker>,
    ctx: &Context,
    req: wire::JoinGroupRequest,
    version: i16,
) -> Outcome {
    let request = gc::Request::JoinGroup(gc::JoinGroupRequest {
        group_id: s(&req.group_id),
        session_timeout_ms: req.session_timeout_ms,
        // v0 has no rebalance timeout: Kafka uses the session timeout.
        rebalance_timeout_ms: if version >= 1 {
            req.rebalance_timeout_ms
        } else {
            req.session_timeout_ms
        },
        member_id: s(&req.member_id),
        group_instance_id: opt(&req.group_instance_id),
        protocol_type: s(&req.protocol_type),
        protocols: req
            .protocols
            .iter()
            .map(|p| gc::JoinGroupProtocol {
                name: s(&p.name),
                metadata: p.metadata.to_vec(),
            })
            .collect(),
        client_id: ctx.client_id.clone(),
        client_host: ctx.client_host.clone(),
        require_known_member_id: version >= 4,
        supports_skip_assignment: version >= 9,
        reason: opt(&req.reason),
    });
    let Some(gc::Response::JoinGroup(r)) = broker.groups.call(request).await else {
        return unavailable();
    };
    Outcome::respond(ResponseKind::JoinGroup(
        wire::JoinGroupResponse::default()
            .with_error_code(r.error_code.code())
            .with_generation_id(r.generation_id)
            .with_protocol_type(ostr(r.protocol_type))
            .with_protocol_name(ostr(r.protocol_name))
            .with_leader(str_bytes(r.leader))
            .with_skip_assignment(r.skip_assignment)
            .with_member_id(str_bytes(r.member_id))
            .with_members(
                r.members
                    .into_iter()
                    .map(|m| {
                        wire::join_group_response::JoinGroupResponseMember::default()
                            .with_member_id(str_bytes(m.member_id))
                            .with_group_instance_id(ostr(m.group_instance_id))
                            .with_metadata(Bytes::from(m.metadata))
                    })
                    .collect(),
            ),
    ))
}

/// SyncGroup.
pub async fn sync_group(broker: &Arc<Broker>, req: wire::SyncGroupRequest) -> Outcome {
    let request = gc::Request::SyncGroup(gc::SyncGroupRequest {
        group_id: s(&req.group_id),
        generation_id: req.generation_id,
        member_id: s(&req.member_id),
        group_instance_id: opt(&req.group_instance_id),
        protocol_type: opt(&req.protocol_type),
        protocol_name: opt(&req.protocol_name),
        assignments: req
            .assignments
            .iter()
            .map(|a| gc::SyncGroupAssignment {
                member_id: s(&a.member_id),
                assignment: a.assignment.to_vec(),
            })
            .collect(),
    });
    let Some(gc::Response::SyncGroup(r)) = broker.groups.call(request).await else {
        return unavailable();
    };
    Outcome::respond(ResponseKind::SyncGroup(
        wire::SyncGroupResponse::default()
            .with_error_code(r.error_code.code())
            .with_protocol_type(ostr(r.protocol_type))
            .with_protocol_name(ostr(r.protocol_name))
            .with_assignment(Bytes::from(r.assignment)),
    ))
}

/// Heartbeat.
pub async fn heartbeat(broker: &Arc<Broker>, req: wire::HeartbeatRequest) -> Outcome {
    let request = gc::Request::Heartbeat(gc::HeartbeatRequest {
        group_id: s(&req.group_id),
        generation_id: req.generation_id,
        member_id: s(&req.member_id),
        group_instance_id: opt(&req.group_instance_id),
    });
    let Some(gc::Response::Heartbeat(r)) = broker.groups.call(request).await else {
        return unavailable();
    };
    Outcome::respond(ResponseKind::Heartbeat(
        wire::HeartbeatResponse::default().with_error_code(r.error_code.code()),
    ))
}

/// LeaveGroup: v0–2 name one member at the top level, v3+ a list.
pub async fn leave_group(
    broker: &Arc<Broker>,
    req: wire::LeaveGroupRequest,
    version: i16,
) -> Outcome {
    let members = if version >= 3 {
        req.members
            .iter()
            .map(|m| gc::MemberIdentity {
                member_id: s(&m.member_id),
                group_instance_id: opt(&m.group_instance_id),
                reason: opt(&m.reason),
            })
            .collect()
    } else {
        vec![gc::MemberIdentity {
            member_id: s(&req.member_id),
            group_instance_id: None,
            reason: None,
        }]
    };
    let request = gc::Request::LeaveGroup(gc::LeaveGroupRequest {
        group_id: s(&req.group_id),
        members,
    });
    let Some(gc::Response::LeaveGroup(r)) = broker.groups.call(request).await else {
        return unavailable();
    };
    let mut resp = wire::LeaveGroupResponse::default().with_error_code(r.error_code.code());
    if version >= 3 {
        resp = resp.with_members(
            r.members
                .into_iter()
                .map(|m| {
                    wire::leave_group_response::MemberResponse::default()
                        .with_member_id(str_bytes(m.member_id))
                        .with_group_instance_id(ostr(m.group_instance_id))
                        .with_error_code(m.error_code.code())
                })
                .collect(),
        );
    } else if resp.error_code == 0 {
        // One member: its own result is the answer.
        if let Some(m) = r.members.first() {
            resp = resp.with_error_code(m.error_code.code());
        }
    }
    Outcome::respond(ResponseKind::LeaveGroup(resp))
}

/// A commit's partitions as `(partition, offset, leader epoch, metadata)` under their topic:
/// what OffsetCommit and TxnOffsetCommit both carry, in wire types of their own.
type CommitInput<'a> = Vec<(&'a TopicName, Vec<(i32, i64, i32, Option<String>)>)>;

/// A commit request's topics as [`CommitInput`]: `topic` gives a topic's name and
/// partitions, `partition` a partition's fields.
fn commit_input<'a, T, P: 'a>(
    topics: &'a [T],
    topic: impl Fn(&'a T) -> (&'a TopicName, &'a Vec<P>),
    partition: impl Fn(&'a P) -> (i32, i64, i32, Option<String>),
) -> CommitInput<'a> {
    topics
        .iter()
        .map(|t| {
            let (name, parts) = topic(t);
            (name, parts.iter().map(&partition).collect())
        })
        .collect()
}

/// What OffsetCommit and TxnOffsetCommit share. Kafka answers UNKNOWN_TOPIC_OR_PARTITION for
/// a topic it does not know or a partition past its count, and commits the rest: the known
/// partitions go to the coordinator in the request `request` builds (it is not asked at all
/// when only unknown ones were sent, as in Kafka), and every partition's code comes back
/// grouped by topic in the wire types `topic` and `partition` build. `None`: the coordinator
/// dropped the request.
async fn commit<T, P>(
    broker: &Arc<Broker>,
    input: CommitInput<'_>,
    request: impl FnOnce(Vec<gc::OffsetCommitPartition>) -> gc::Request,
    topic: impl Fn(TopicName, Vec<P>) -> T,
    partition: impl Fn(i32, i16) -> P,
) -> Option<Vec<T>> {
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for (name, parts) in input {
        let name = name.as_str();
        let count = broker.storage.partition_count(name).ok();
        for (p, offset, epoch, metadata) in parts {
            if count.is_some_and(|n| u32::try_from(p).is_ok_and(|p| p < n)) {
                known.push(gc::OffsetCommitPartition {
                    topic: name.to_string(),
                    partition: p,
                    committed_offset: offset,
                    committed_leader_epoch: epoch,
                    committed_metadata: metadata,
                });
            } else {
                unknown.push((name.to_string(), p));
            }
        }
    }
    let answered = if known.is_empty() && !unknown.is_empty() {
        Vec::new()
    } else {
        match broker.groups.call(request(known)).await? {
            gc::Response::OffsetCommit(r) => r.partitions,
            gc::Response::TxnOffsetCommit(r) => r.partitions,
            _ => return None,
        }
    };
    let unknown_code = ResponseError::UnknownTopicOrPartition.code();
    let codes = answered
        .into_iter()
        .map(|r| (r.topic, (r.partition, r.error_code.code())))
        .chain(unknown.into_iter().map(|(t, p)| (t, (p, unknown_code))));
    Some(
        by_topic(codes)
            .into_iter()
            .map(|(t, parts)| {
                let parts = parts.into_iter().map(|(p, code)| partition(p, code));
                topic(TopicName(str_bytes(t)), parts.collect())
            })
            .collect(),
    )
}

/// OffsetCommit.
pub async fn offset_commit(
    broker: &Arc<Broker>,
    req: wire::OffsetCommitRequest,
    version: i16,
) -> Outcome {
    use wire::offset_commit_response::{
        OffsetCommitResponsePartition as Partition, OffsetCommitResponseTopic as Topic,
    };
    let epochs = version >= 6;
    let input = commit_input(
        &req.topics,
        |t| (&t.name, &t.partitions),
        |p| {
            let epoch = if epochs { p.committed_leader_epoch } else { -1 };
            (
                p.partition_index,
                p.committed_offset,
                epoch,
                opt(&p.committed_metadata),
            )
        },
    );
    let request = |partitions| {
        gc::Request::OffsetCommit(gc::OffsetCommitRequest {
            group_id: s(&req.group_id),
            generation_id: req.generation_id_or_member_epoch,
            member_id: s(&req.member_id),
            group_instance_id: opt(&req.group_instance_id),
            retention_time_ms: if (2..=4).contains(&version) {
                req.retention_time_ms
            } else {
                -1
            },
            partitions,
        })
    };
    let topics = commit(
        broker,
        input,
        request,
        |name, parts| Topic::default().with_name(name).with_partitions(parts),
        |p, code| {
            Partition::default()
                .with_partition_index(p)
                .with_error_code(code)
        },
    );
    let Some(topics) = topics.await else {
        return unavailable();
    };
    Outcome::respond(ResponseKind::OffsetCommit(
        wire::OffsetCommitResponse::default().with_topics(topics),
    ))
}

/// TxnOffsetCommit: offsets that become visible when the producer's transaction commits.
pub async fn txn_offset_commit(
    broker: &Arc<Broker>,
    req: wire::TxnOffsetCommitRequest,
    version: i16,
) -> Outcome {
    use wire::txn_offset_commit_response::{
        TxnOffsetCommitResponsePartition as Partition, TxnOffsetCommitResponseTopic as Topic,
    };
    let epochs = version >= 2;
    let input = commit_input(
        &req.topics,
        |t| (&t.name, &t.partitions),
        |p| {
            let epoch = if epochs { p.committed_leader_epoch } else { -1 };
            (
                p.partition_index,
                p.committed_offset,
                epoch,
                opt(&p.committed_metadata),
            )
        },
    );
    let v3 = version >= 3;
    let request = |partitions| {
        gc::Request::TxnOffsetCommit(gc::TxnOffsetCommitRequest {
            transactional_id: s(&req.transactional_id),
            group_id: s(&req.group_id),
            producer_id: req.producer_id.0,
            producer_epoch: req.producer_epoch,
            generation_id: if v3 { req.generation_id } else { -1 },
            member_id: if v3 { s(&req.member_id) } else { String::new() },
            group_instance_id: if v3 {
                opt(&req.group_instance_id)
            } else {
                None
            },
            partitions,
        })
    };
    let topics = commit(
        broker,
        input,
        request,
        |name, parts| Topic::default().with_name(name).with_partitions(parts),
        |p, code| {
            Partition::default()
                .with_partition_index(p)
                .with_error_code(code)
        },
    );
    let Some(topics) = topics.await else {
        return unavailable();
    };
    Outcome::respond(ResponseKind::TxnOffsetCommit(
        wire::TxnOffsetCommitResponse::default().with_topics(topics),
    ))
}

/// One group's offsets, as the coordinator answers them.
async fn fetch_one(
    broker: &Arc<Broker>,
    group_id: String,
    partitions: Option<Vec<gc::TopicPartition>>,
    require_stable: bool,
) -> Option<gc::OffsetFetchResponse> {
    match broker
        .groups
        .call(gc::Request::OffsetFetch(gc::OffsetFetchRequest {
            group_id,
            partitions,
            require_stable,
        }))
        .await
    {
        Some(gc::Response::OffsetFetch(r)) => Some(r),
        _ => None,
    }
}

/// OffsetFetch: one group (v0–7) or several (v8+, one coordinator request each).
pub async fn offset_fetch(
    broker: &Arc<Broker>,
    req: wire::OffsetFetchRequest,
    version: i16,
) -> Outcome {
    let require_stable = version >= 7 && req.require_stable;
    if version >= 8 {
        let mut groups = Vec::with_capacity(req.groups.len());
        for g in &req.groups {
            let partitions = g.topics.as_ref().map(|ts| {
                ts.iter()
                    .flat_map(|t| {
                        t.partition_indexes
                            .iter()
                            .map(|&p| gc::TopicPartition::new(t.name.as_str(), p))
                    })
                    .collect()
            });
            let Some(r) = fetch_one(broker, s(&g.group_id), partitions, require_stable).await
            else {
                return unavailable();
            };
            let topics = by_topic(r.partitions.into_iter().map(|p| {
                (
                    p.topic,
                    wire::offset_fetch_response::OffsetFetchResponsePartitions::default()
                        .with_partition_index(p.partition)
                        .with_committed_offset(p.committed_offset)
                        .with_committed_leader_epoch(p.committed_leader_epoch)
                        .with_metadata(ostr(p.metadata))
                        .with_error_code(p.error_code.code()),
                )
            }))
            .into_iter()
            .map(|(t, parts)| {
                wire::offset_fetch_response::OffsetFetchResponseTopics::default()
                    .with_name(TopicName(str_bytes(t)))
                    .with_partitions(parts)
            })
            .collect();
            groups.push(
                wire::offset_fetch_response::OffsetFetchResponseGroup::default()
                    .with_group_id(g.group_id.clone())
                    .with_error_code(r.error_code.code())
                    .with_topics(topics),
            );
        }
        return Outcome::respond(ResponseKind::OffsetFetch(
            wire::OffsetFetchResponse::default().with_groups(groups),
        ));
    }
    let partitions = req.topics.as_ref().map(|ts| {
        ts.iter()
            .flat_map(|t| {
                t.partition_indexes
                    .iter()
                    .map(|&p| gc::TopicPartition::new(t.name.as_str(), p))
            })
            .collect()
    });
    let Some(r) = fetch_one(broker, s(&req.group_id), partitions, require_stable).await else {
        return unavailable();
    };
    let group_error = r.error_code.code();
    let topics = by_topic(r.partitions.into_iter().map(|p| {
        // Before v2 there is no top-level error code: each partition carries it.
        let code = if version < 2 && group_error != 0 {
            group_error
        } else {
            p.error_code.code()
        };
        (
            p.topic,
            wire::offset_fetch_response::OffsetFetchResponsePartition::default()
                .with_partition_index(p.partition)
                .with_committed_offset(p.committed_offset)
                .with_committed_leader_epoch(if version >= 5 {
                    p.committed_leader_epoch
                } else {
                    -1
                })
                .with_metadata(ostr(p.metadata))
                .with_error_code(code),
        )
    }))
    .into_iter()
    .map(|(t, parts)| {
        wire::offset_fetch_response::OffsetFetchResponseTopic::default()
            .with_name(TopicName(str_bytes(t)))
            .with_partitions(parts)
    })
    .collect();
    let mut resp = wire::OffsetFetchResponse::default().with_topics(topics);
    if version >= 2 {
        resp = resp.with_error_code(group_error);
    }
    Outcome::respond(ResponseKind::OffsetFetch(resp))
}

/// DescribeGroups.
pub async fn describe_groups(
    broker: &Arc<Broker>,
    req: wire::DescribeGroupsRequest,
    version: i16,
) -> Outcome {
    let request = gc::Request::DescribeGroups(gc::DescribeGroupsRequest {
        groups: req.groups.iter().map(|g| s(g)).collect(),
        // v6 (KIP-1043): a group the coordinator does not hold is GROUP_ID_NOT_FOUND.
        report_unknown_groups: version >= 6,
    });
    let Some(gc::Response::DescribeGroups(r)) = broker.groups.call(request).await else {
        return unavailable();
    };
    let groups = r
        .groups
        .into_iter()
        .map(|g| {
            wire::describe_groups_response::DescribedGroup::default()
                .with_error_code(g.error_code.code())
                // The message field exists from v6.
                .with_error_message(if version >= 6 {
                    ostr(g.error_message)
                } else {
                    None
                })
                .with_group_id(GroupId(str_bytes(g.group_id)))
                .with_group_state(str_bytes(g.group_state))
                .with_protocol_type(str_bytes(g.protocol_type))
                .with_protocol_data(str_bytes(g.protocol_data))
                // Kafka's "not requested" value.
                .with_authorized_operations(i32::MIN)
                .with_members(
                    g.members
                        .into_iter()
                        .map(|m| {
                            wire::describe_groups_response::DescribedGroupMember::default()
                                .with_member_id(str_bytes(m.member_id))
                                .with_group_instance_id(ostr(m.group_instance_id))
                                .with_client_id(str_bytes(m.client_id))
                                .with_client_host(str_bytes(m.client_host))
                                .with_member_metadata(Bytes::from(m.member_metadata))
                                .with_member_assignment(Bytes::from(m.member_assignment))
                        })
                        .collect(),
                )
        })
        .collect();
    Outcome::respond(ResponseKind::DescribeGroups(
        wire::DescribeGroupsResponse::default().with_groups(groups),
    ))
}

/// ListGroups.
pub async fn list_groups(
    broker: &Arc<Broker>,
    req: wire::ListGroupsRequest,
    version: i16,
) -> Outcome {
    let request = gc::Request::ListGroups(gc::ListGroupsRequest {
        states_filter: req.states_filter.iter().map(s).collect(),
        // v5 (KIP-848) filters by group type; every group here is `classic`.
        types_filter: req.types_filter.iter().map(s).collect(),
    });
    let Some(gc::Response::ListGroups(r)) = broker.groups.call(request).await else {
        return unavailable();
    };
    let groups = r
        .groups
        .into_iter()
        .map(|g| {
            wire::list_groups_response::ListedGroup::default()
                .with_group_id(GroupId(str_bytes(g.group_id)))
                .with_protocol_type(str_bytes(g.protocol_type))
                .with_group_state(str_bytes(g.group_state))
                .with_group_type(if version >= 5 {
                    str_bytes(g.group_type)
                } else {
                    StrBytes::default()
                })
        })
        .collect();
    Outcome::respond(ResponseKind::ListGroups(
        wire::ListGroupsResponse::default()
            .with_error_code(r.error_code.code())
            .with_groups(groups),
    ))
}

/// DeleteGroups.
pub async fn delete_groups(broker: &Arc<Broker>, req: wire::DeleteGroupsRequest) -> Outcome {
    let request = gc::Request::DeleteGroups(gc::DeleteGroupsRequest {
        groups_names: req.groups_names.iter().map(|g| s(g)).collect(),
    });
    let Some(gc::Response::DeleteGroups(r)) = broker.groups.call(request).await else {
        return unavailable();
    };
    let results = r
        .results
        .into_iter()
        .map(|g| {
            wire::delete_groups_response::DeletableGroupResult::default()
                .with_group_id(GroupId(str_bytes(g.group_id)))
                .with_error_code(g.error_code.code())
        })
        .collect();
    Outcome::respond(ResponseKind::DeleteGroups(
        wire::DeleteGroupsResponse::default().with_results(results),
    ))
}

/// OffsetDelete.
pub async fn offset_delete(broker: &Arc<Broker>, req: wire::OffsetDeleteRequest) -> Outcome {
    let request = gc::Request::OffsetDelete(gc::OffsetDeleteRequest {
        group_id: s(&req.group_id),
        partitions: req
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(|p| gc::TopicPartition::new(t.name.as_str(), p.partition_index))
            })
            .collect(),
    });
    let Some(gc::Response::OffsetDelete(r)) = broker.groups.call(request).await else {
        return unavailable();
    };
    let topics = by_topic(r.partitions.into_iter().map(|p| {
        (
            p.topic,
            wire::offset_delete_response::OffsetDeleteResponsePartition::default()
                .with_partition_index(p.partition)
                .with_error_code(p.error_code.code()),
        )
    }))
    .into_iter()
    .map(|(t, parts)| {
        wire::offset_delete_response::OffsetDeleteResponseTopic::default()
            .with_name(TopicName(str_bytes(t)))
            .with_partitions(parts)
    })
    .collect();
    Outcome::respond(ResponseKind::OffsetDelete(
        wire::OffsetDeleteResponse::default()
            .with_error_code(r.error_code.code())
            .with_topics(topics),
    ))
}

/// AddOffsetsToTxn: the transaction will write to the group's `__consumer_offsets`
/// partition (the transaction coordinator adds it to the transaction).
pub fn add_offsets_to_txn(
    broker: &Broker,
    req: wire::AddOffsetsToTxnRequest,
) -> wire::AddOffsetsToTxnResponse {
    let outcome = broker
        .txn()
        .add_offsets_to_txn(streamlog::txn::AddOffsetsToTxnRequest {
            transactional_id: s(&req.transactional_id),
            producer_id: req.producer_id.0,
            producer_epoch: req.producer_epoch,
            group_id: s(&req.group_id),
        });
    let code = match outcome {
        Ok(code) => code.code(),
        Err(e) => {
            tracing::error!(error = %e, "transaction coordinator failed");
            ResponseError::KafkaStorageError.code()
        }
    };
    wire::AddOffsetsToTxnResponse::default().with_error_code(code)
}
