//! Authorization of every request, before its handler runs, as Kafka's `KafkaApis` does:
//! resources the principal may not touch are taken out of the request and answered with
//! Kafka's *_AUTHORIZATION_FAILED codes next to the handler's answers for the rest; a request
//! about one group, transactional id or the cluster is answered with the error alone. The
//! handlers never see a denied resource, so they never read or write one.
//!
//! Which operation each API needs is Kafka's (see the table in the README): READ for Fetch,
//! the group APIs and OffsetCommit; WRITE for Produce and the transaction APIs; DESCRIBE for
//! Metadata, ListOffsets, OffsetFetch, FindCoordinator and DescribeGroups; CREATE, DELETE and
//! ALTER for topic admin; DESCRIBE_CONFIGS and ALTER_CONFIGS for configs; IDEMPOTENT_WRITE on
//! the cluster (or WRITE on some topic) for an idempotent producer's id.

use kafka_protocol::messages::{self as wire, GroupId, RequestKind, ResponseKind, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::{Context, Outcome};
use crate::acl::{Operation as Op, ResourceType as Rt, CLUSTER_NAME};
use crate::broker::Broker;

const TOPIC_DENIED: i16 = 29;
const GROUP_DENIED: i16 = 30;
const CLUSTER_DENIED: i16 = 31;
const TXN_ID_DENIED: i16 = 53;

/// What to do with a request after authorization.
#[derive(Debug)]
pub enum Check {
    /// Run the (possibly narrowed) request, then [`Fixup::apply`] to its response.
    Pass(Fixup),
    /// Answer without running the handler.
    Answer(Outcome),
}

/// The answers for what was taken out of a request.
#[derive(Debug, Default)]
pub struct Fixup {
    /// Topic partitions removed, with the code each gets.
    partitions: Vec<(TopicName, Vec<i32>, i16)>,
    /// Named resources removed (topics, groups, coordinator keys, config resources), with
    /// their resource type code (configs) and the code each gets.
    names: Vec<(StrBytes, i8, i16)>,
    /// OffsetFetch v8+: topics removed from one group's request.
    group_topics: Vec<(GroupId, TopicName, Vec<i32>)>,
    /// Keep only topics the principal may describe (listing all topics).
    describable_topics: bool,
    /// Keep only groups the principal may describe (ListGroups without cluster DESCRIBE).
    describable_groups: bool,
    /// The principal's gate, for the response filters.
    gate: Option<Gate>,
}

/// One principal at one host, against the broker's authorizer.
#[derive(Debug, Clone)]
struct Gate {
    principal: String,
    host: String,
}

impl Gate {
    fn can(&self, broker: &Broker, op: Op, rt: Rt, name: &str) -> bool {
        broker
            .acls
            .as_ref()
            .is_none_or(|a| a.authorize(&self.principal, &self.host, op, rt, name))
    }

    fn cluster(&self, broker: &Broker, op: Op) -> bool {
        self.can(broker, op, Rt::Cluster, CLUSTER_NAME)
    }
}

fn respond(body: ResponseKind) -> Check {
    Check::Answer(Outcome::respond(body))
}

/// Moves the items whose topic fails `allowed` out of `items`, as denied partitions.
fn split<T>(
    items: &mut Vec<T>,
    topic: impl Fn(&T) -> &TopicName,
    partitions: impl Fn(&T) -> Vec<i32>,
    mut allowed: impl FnMut(&str) -> bool,
    code: i16,
) -> Vec<(TopicName, Vec<i32>, i16)> {
    let mut denied = Vec::new();
    items.retain(|item| {
        let t = topic(item);
        if allowed(t.0.as_str()) {
            true
        } else {
            denied.push((t.clone(), partitions(item), code));
            false
        }
    });
    denied
}

/// Keeps the items `refusal` has nothing against; each refused one is recorded in `denied` as
/// (name, resource type, error code) for the answer: `split`'s counterpart for requests that
/// name whole resources rather than partitions.
fn keep<T>(
    items: &mut Vec<T>,
    denied: &mut Vec<(StrBytes, i8, i16)>,
    mut refusal: impl FnMut(&T) -> Option<(StrBytes, i8, i16)>,
) {
    items.retain(|item| match refusal(item) {
        None => true,
        Some(d) => {
            denied.push(d);
            false
        }
    });
}

/// Authorizes `body` for the connection's principal; narrows it to what is allowed.
pub fn check(broker: &Broker, ctx: &Context, version: i16, body: &mut RequestKind) -> Check {
    if broker.acls.is_none() {
        return Check::Pass(Fixup::default());
    }
    let gate = Gate {
        principal: ctx.principal.clone(),
        host: ctx.client_host.clone(),
    };
    let can = |op, rt, name: &str| gate.can(broker, op, rt, name);
    let mut fix = Fixup::default();
    use RequestKind as Rq;
    match body {
        Rq::ApiVersions(_) | Rq::SaslHandshake(_) | Rq::SaslAuthenticate(_) => {}
        // The ACL APIs check the cluster themselves (SECURITY_DISABLED comes first).
        Rq::DescribeAcls(_) | Rq::CreateAcls(_) | Rq::DeleteAcls(_) => {}
        Rq::Metadata(r) => {
            let all = match &r.topics {
                None => true,
                Some(t) => t.is_empty() && version == 0,
            };
            if all {
                fix.describable_topics = true;
            } else if let Some(topics) = r.topics.as_mut() {
                let may_create = broker.config.auto_create_topics_enable
                    && (version < 4 || r.allow_auto_topic_creation);
                let create_all = gate.cluster(broker, Op::Create);
                topics.retain(|t| {
                    let Some(name) = t.name.as_ref() else {
                        return true;
                    };
                    let n = name.0.as_str();
                    let ok = can(Op::Describe, Rt::Topic, n)
                        && (!may_create
                            || broker.storage.partition_count(n).is_ok()
                            || create_all
                            || can(Op::Create, Rt::Topic, n));
                    if !ok {
                        fix.names.push((name.0.clone(), 2, TOPIC_DENIED));
                    }
                    ok
                });
            }
        }
        Rq::Produce(r) => {
            let txn_ok = r
                .transactional_id
                .as_ref()
                .filter(|t| !t.0.is_empty())
                .is_none_or(|id| can(Op::Write, Rt::TransactionalId, id.0.as_str()));
            let parts = |t: &wire::produce_request::TopicProduceData| {
                t.partition_data.iter().map(|p| p.index).collect()
            };
            fix.partitions = if txn_ok {
                split(
                    &mut r.topic_data,
                    |t| &t.name,
                    parts,
                    |n| can(Op::Write, Rt::Topic, n),
                    TOPIC_DENIED,
                )
            } else {
                split(
                    &mut r.topic_data,
                    |t| &t.name,
                    parts,
                    |_| false,
                    TXN_ID_DENIED,
                )
            };
            if r.acks == 0 && !fix.partitions.is_empty() {
                // acks=0 has no answer to carry the error: Kafka closes the connection.
                return Check::Answer(Outcome::Close("acks=0 produce not authorized".into()));
            }
        }
        Rq::Fetch(r) => {
            fix.partitions = split(
                &mut r.topics,
                |t| &t.topic,
                |t| t.partitions.iter().map(|p| p.partition).collect(),
                |n| can(Op::Read, Rt::Topic, n),
                TOPIC_DENIED,
            );
            if r.topics.is_empty() && !fix.partitions.is_empty() {
                // Nothing left to wait for.
                let mut resp = ResponseKind::Fetch(wire::FetchResponse::default());
                fix.apply(broker, &mut resp);
                return respond(resp);
            }
        }
        Rq::ListOffsets(r) => {
            fix.partitions = split(
                &mut r.topics,
                |t| &t.name,
                |t| t.partitions.iter().map(|p| p.partition_index).collect(),
                |n| can(Op::Describe, Rt::Topic, n),
                TOPIC_DENIED,
            );
        }
        Rq::OffsetForLeaderEpoch(r) => {
            fix.partitions = split(
                &mut r.topics,
                |t| &t.topic,
                |t| t.partitions.iter().map(|p| p.partition).collect(),
                |n| can(Op::Describe, Rt::Topic, n),
                TOPIC_DENIED,
            );
        }
        Rq::DeleteRecords(r) => {
            fix.partitions = split(
                &mut r.topics,
                |t| &t.name,
                |t| t.partitions.iter().map(|p| p.partition_index).collect(),
                |n| can(Op::Delete, Rt::Topic, n),
                TOPIC_DENIED,
            );
        }
        Rq::CreateTopics(r) => {
            let create_all = gate.cluster(broker, Op::Create);
            keep(&mut r.topics, &mut fix.names, |t| {
                (!create_all && !can(Op::Create, Rt::Topic, t.name.0.as_str()))
                    .then(|| (t.name.0.clone(), 2, TOPIC_DENIED))
            });
        }
        Rq::DeleteTopics(r) => {
            keep(&mut r.topic_names, &mut fix.names, |t| {
                (!can(Op::Delete, Rt::Topic, t.0.as_str())).then(|| (t.0.clone(), 2, TOPIC_DENIED))
            });
        }
        Rq::CreatePartitions(r) => {
            keep(&mut r.topics, &mut fix.names, |t| {
                (!can(Op::Alter, Rt::Topic, t.name.0.as_str()))
                    .then(|| (t.name.0.clone(), 2, TOPIC_DENIED))
            });
        }
        Rq::DescribeConfigs(r) => {
            keep(&mut r.resources, &mut fix.names, |c| {
                let (ok, code) = config_allowed(
                    &gate,
                    broker,
                    Op::DescribeConfigs,
                    c.resource_type,
                    &c.resource_name,
                );
                (!ok).then(|| (c.resource_name.clone(), c.resource_type, code))
            });
        }
        Rq::AlterConfigs(r) => {
            keep(&mut r.resources, &mut fix.names, |c| {
                let (ok, code) = config_allowed(
                    &gate,
                    broker,
                    Op::AlterConfigs,
                    c.resource_type,
                    &c.resource_name,
                );
                (!ok).then(|| (c.resource_name.clone(), c.resource_type, code))
            });
        }
        Rq::IncrementalAlterConfigs(r) => {
            keep(&mut r.resources, &mut fix.names, |c| {
                let (ok, code) = config_allowed(
                    &gate,
                    broker,
                    Op::AlterConfigs,
                    c.resource_type,
                    &c.resource_name,
                );
                (!ok).then(|| (c.resource_name.clone(), c.resource_type, code))
            });
        }
        Rq::FindCoordinator(r) => {
            let (rt, code) = if r.key_type == 1 {
                (Rt::TransactionalId, TXN_ID_DENIED)
            } else {
                (Rt::Group, GROUP_DENIED)
            };
            if version < 4 {
                if !can(Op::Describe, rt, r.key.as_str()) {
                    return respond(ResponseKind::FindCoordinator(
                        wire::FindCoordinatorResponse::default()
                            .with_error_code(code)
                            .with_node_id(wire::BrokerId(-1))
                            .with_port(-1),
                    ));
                }
            } else {
                keep(&mut r.coordinator_keys, &mut fix.names, |k| {
                    (!can(Op::Describe, rt, k.as_str())).then(|| (k.clone(), 0, code))
                });
            }
        }
        Rq::JoinGroup(r) => {
            if !can(Op::Read, Rt::Group, r.group_id.0.as_str()) {
                return respond(ResponseKind::JoinGroup(
                    wire::JoinGroupResponse::default()
                        .with_error_code(GROUP_DENIED)
                        .with_generation_id(-1),
                ));
            }
        }
        Rq::SyncGroup(r) => {
            if !can(Op::Read, Rt::Group, r.group_id.0.as_str()) {
                return respond(ResponseKind::SyncGroup(
                    wire::SyncGroupResponse::default().with_error_code(GROUP_DENIED),
                ));
            }
        }
        Rq::Heartbeat(r) => {
            if !can(Op::Read, Rt::Group, r.group_id.0.as_str()) {
                return respond(ResponseKind::Heartbeat(
                    wire::HeartbeatResponse::default().with_error_code(GROUP_DENIED),
                ));
            }
        }
        Rq::LeaveGroup(r) => {
            if !can(Op::Read, Rt::Group, r.group_id.0.as_str()) {
                return respond(ResponseKind::LeaveGroup(
                    wire::LeaveGroupResponse::default().with_error_code(GROUP_DENIED),
                ));
            }
        }
        Rq::OffsetCommit(r) => {
            let parts = |t: &wire::offset_commit_request::OffsetCommitRequestTopic| {
                t.partitions.iter().map(|p| p.partition_index).collect()
            };
            if !can(Op::Read, Rt::Group, r.group_id.0.as_str()) {
                fix.partitions = split(&mut r.topics, |t| &t.name, parts, |_| false, GROUP_DENIED);
                let mut resp = ResponseKind::OffsetCommit(wire::OffsetCommitResponse::default());
                fix.apply(broker, &mut resp);
                return respond(resp);
            }
            fix.partitions = split(
                &mut r.topics,
                |t| &t.name,
                parts,
                |n| can(Op::Read, Rt::Topic, n),
                TOPIC_DENIED,
            );
        }
        Rq::OffsetFetch(r) if version < 8 => {
            if !can(Op::Describe, Rt::Group, r.group_id.0.as_str()) {
                let mut resp = wire::OffsetFetchResponse::default().with_error_code(GROUP_DENIED);
                // v0-1 have no top-level code: every partition asked for carries it.
                for t in r.topics.iter().flatten() {
                    resp.topics.push(
                        wire::offset_fetch_response::OffsetFetchResponseTopic::default()
                            .with_name(t.name.clone())
                            .with_partitions(
                                t.partition_indexes
                                    .iter()
                                    .map(|p| {
                                        wire::offset_fetch_response::OffsetFetchResponsePartition::default()
                                            .with_partition_index(*p)
                                            .with_committed_offset(-1)
                                            .with_error_code(GROUP_DENIED)
                                    })
                                    .collect(),
                            ),
                    );
                }
                return respond(ResponseKind::OffsetFetch(resp));
            }
            match r.topics.as_mut() {
                None => fix.describable_topics = true,
                Some(topics) => {
                    fix.partitions = split(
                        topics,
                        |t| &t.name,
                        |t| t.partition_indexes.clone(),
                        |n| can(Op::Describe, Rt::Topic, n),
                        TOPIC_DENIED,
                    );
                }
            }
        }
        Rq::OffsetFetch(r) => {
            r.groups.retain_mut(|g| {
                if !can(Op::Describe, Rt::Group, g.group_id.0.as_str()) {
                    fix.names.push((g.group_id.0.clone(), 3, GROUP_DENIED));
                    return false;
                }
                match g.topics.as_mut() {
                    None => fix.describable_topics = true,
                    Some(topics) => topics.retain(|t| {
                        let ok = can(Op::Describe, Rt::Topic, t.name.0.as_str());
                        if !ok {
                            fix.group_topics.push((
                                g.group_id.clone(),
                                t.name.clone(),
                                t.partition_indexes.clone(),
                            ));
                        }
                        ok
                    }),
                }
                true
            });
        }
        Rq::TxnOffsetCommit(r) => {
            let parts = |t: &wire::txn_offset_commit_request::TxnOffsetCommitRequestTopic| {
                t.partitions.iter().map(|p| p.partition_index).collect()
            };
            let whole = if !can(
                Op::Write,
                Rt::TransactionalId,
                r.transactional_id.0.as_str(),
            ) {
                Some(TXN_ID_DENIED)
            } else if !can(Op::Read, Rt::Group, r.group_id.0.as_str()) {
                Some(GROUP_DENIED)
            } else {
                None
            };
            if let Some(code) = whole {
                fix.partitions = split(&mut r.topics, |t| &t.name, parts, |_| false, code);
                let mut resp =
                    ResponseKind::TxnOffsetCommit(wire::TxnOffsetCommitResponse::default());
                fix.apply(broker, &mut resp);
                return respond(resp);
            }
            fix.partitions = split(
                &mut r.topics,
                |t| &t.name,
                parts,
                |n| can(Op::Read, Rt::Topic, n),
                TOPIC_DENIED,
            );
        }
        Rq::DescribeGroups(r) => {
            keep(&mut r.groups, &mut fix.names, |g| {
                (!can(Op::Describe, Rt::Group, g.0.as_str()))
                    .then(|| (g.0.clone(), 3, GROUP_DENIED))
            });
        }
        Rq::ListGroups(_) => {
            fix.describable_groups = !gate.cluster(broker, Op::Describe);
        }
        Rq::DeleteGroups(r) => {
            keep(&mut r.groups_names, &mut fix.names, |g| {
                (!can(Op::Delete, Rt::Group, g.0.as_str())).then(|| (g.0.clone(), 3, GROUP_DENIED))
            });
        }
        Rq::OffsetDelete(r) => {
            if !can(Op::Delete, Rt::Group, r.group_id.0.as_str()) {
                return respond(ResponseKind::OffsetDelete(
                    wire::OffsetDeleteResponse::default().with_error_code(GROUP_DENIED),
                ));
            }
            fix.partitions = split(
                &mut r.topics,
                |t| &t.name,
                |t| t.partitions.iter().map(|p| p.partition_index).collect(),
                |n| can(Op::Read, Rt::Topic, n),
                TOPIC_DENIED,
            );
        }
        Rq::InitProducerId(r) => {
            // An empty transactional id is an idempotent producer's, as the handler reads it.
            let code = match r.transactional_id.as_ref().filter(|t| !t.0.is_empty()) {
                Some(id) if !can(Op::Write, Rt::TransactionalId, id.0.as_str()) => {
                    Some(TXN_ID_DENIED)
                }
                Some(_) => None,
                None => {
                    let idempotent = gate.cluster(broker, Op::IdempotentWrite)
                        || broker.acls.as_ref().is_some_and(|a| {
                            a.authorize_any(&gate.principal, &gate.host, Op::Write, Rt::Topic)
                        });
                    (!idempotent).then_some(CLUSTER_DENIED)
                }
            };
            if let Some(code) = code {
                return respond(ResponseKind::InitProducerId(
                    wire::InitProducerIdResponse::default()
                        .with_error_code(code)
                        .with_producer_id(wire::ProducerId(-1))
                        .with_producer_epoch(-1),
                ));
            }
        }
        Rq::AddPartitionsToTxn(r) => {
            let parts = |t: &wire::add_partitions_to_txn_request::AddPartitionsToTxnTopic| {
                t.partitions.clone()
            };
            let topics = &mut r.v3_and_below_topics;
            if !can(
                Op::Write,
                Rt::TransactionalId,
                r.v3_and_below_transactional_id.0.as_str(),
            ) {
                fix.partitions = split(topics, |t| &t.name, parts, |_| false, TXN_ID_DENIED);
            } else {
                fix.partitions = split(
                    topics,
                    |t| &t.name,
                    parts,
                    |n| can(Op::Write, Rt::Topic, n),
                    TOPIC_DENIED,
                );
                if !fix.partitions.is_empty() {
                    // Kafka adds none of them when any is denied.
                    let rest = split(
                        topics,
                        |t| &t.name,
                        parts,
                        |_| false,
                        ResponseError::OperationNotAttempted.code(),
                    );
                    fix.partitions.extend(rest);
                }
            }
            if topics.is_empty() && !fix.partitions.is_empty() {
                let mut resp =
                    ResponseKind::AddPartitionsToTxn(wire::AddPartitionsToTxnResponse::default());
                fix.apply(broker, &mut resp);
                return respond(resp);
            }
        }
        Rq::AddOffsetsToTxn(r) => {
            let code = if !can(
                Op::Write,
                Rt::TransactionalId,
                r.transactional_id.0.as_str(),
            ) {
                Some(TXN_ID_DENIED)
            } else if !can(Op::Read, Rt::Group, r.group_id.0.as_str()) {
                Some(GROUP_DENIED)
            } else {
                None
            };
            if let Some(code) = code {
                return respond(ResponseKind::AddOffsetsToTxn(
                    wire::AddOffsetsToTxnResponse::default().with_error_code(code),
                ));
            }
        }
        Rq::EndTxn(r) => {
            if !can(
                Op::Write,
                Rt::TransactionalId,
                r.transactional_id.0.as_str(),
            ) {
                return respond(ResponseKind::EndTxn(
                    wire::EndTxnResponse::default().with_error_code(TXN_ID_DENIED),
                ));
            }
        }
        Rq::DescribeCluster(_) => {
            if !gate.cluster(broker, Op::Describe) {
                return respond(ResponseKind::DescribeCluster(
                    wire::DescribeClusterResponse::default().with_error_code(CLUSTER_DENIED),
                ));
            }
        }
        // An API this table does not know is refused rather than served unchecked.
        _ => return Check::Answer(Outcome::Close("request not authorized".into())),
    }
    fix.gate = Some(gate);
    Check::Pass(fix)
}

/// Config resources: topics (2) need the operation on the topic, brokers (4) and broker
/// loggers (8) on the cluster.
fn config_allowed(
    gate: &Gate,
    broker: &Broker,
    op: Op,
    resource_type: i8,
    name: &StrBytes,
) -> (bool, i16) {
    if resource_type == 2 {
        (gate.can(broker, op, Rt::Topic, name.as_str()), TOPIC_DENIED)
    } else {
        (gate.cluster(broker, op), CLUSTER_DENIED)
    }
}

impl Fixup {
    /// Adds the answers for what was taken out of the request, and drops from `resp` what the
    /// principal may not see.
    pub fn apply(self, broker: &Broker, resp: &mut ResponseKind) {
        use wire::*;
        let Fixup {
            partitions,
            names,
            group_topics,
            describable_topics,
            describable_groups,
            gate,
        } = self;
        let can = |op, rt, name: &str| gate.as_ref().is_none_or(|g| g.can(broker, op, rt, name));
        match resp {
            ResponseKind::Metadata(r) => {
                if describable_topics {
                    r.topics.retain(|t| {
                        t.name
                            .as_ref()
                            .is_none_or(|n| can(Op::Describe, Rt::Topic, n.0.as_str()))
                    });
                }
                for (name, _, code) in names {
                    r.topics.push(
                        metadata_response::MetadataResponseTopic::default()
                            .with_name(Some(TopicName(name)))
                            .with_error_code(code),
                    );
                }
            }
            ResponseKind::Produce(r) => {
                for (topic, parts, code) in partitions {
                    r.responses.push(
                        produce_response::TopicProduceResponse::default()
                            .with_name(topic)
                            .with_partition_responses(
                                parts
                                    .into_iter()
                                    .map(|p| {
                                        produce_response::PartitionProduceResponse::default()
                                            .with_index(p)
                                            .with_error_code(code)
                                            .with_base_offset(-1)
                                            .with_log_append_time_ms(-1)
                                            .with_log_start_offset(-1)
                                    })
                                    .collect(),
                            ),
                    );
                }
            }
            ResponseKind::Fetch(r) => {
                for (topic, parts, code) in partitions {
                    r.responses.push(
                        fetch_response::FetchableTopicResponse::default()
                            .with_topic(topic)
                            .with_partitions(
                                parts
                                    .into_iter()
                                    .map(|p| {
                                        fetch_response::PartitionData::default()
                                            .with_partition_index(p)
                                            .with_error_code(code)
                                            .with_high_watermark(-1)
                                            .with_last_stable_offset(-1)
                                            .with_log_start_offset(-1)
                                    })
                                    .collect(),
                            ),
                    );
                }
            }
            ResponseKind::ListOffsets(r) => {
                for (topic, parts, code) in partitions {
                    r.topics.push(
                        list_offsets_response::ListOffsetsTopicResponse::default()
                            .with_name(topic)
                            .with_partitions(
                                parts
                                    .into_iter()
                                    .map(|p| {
                                        list_offsets_response::ListOffsetsPartitionResponse::default()
                                            .with_partition_index(p)
                                            .with_error_code(code)
                                            .with_timestamp(-1)
                                            .with_offset(-1)
                                    })
                                    .collect(),
                            ),
                    );
                }
            }
            ResponseKind::OffsetForLeaderEpoch(r) => {
                for (topic, parts, code) in partitions {
                    r.topics.push(
                        offset_for_leader_epoch_response::OffsetForLeaderTopicResult::default()
                            .with_topic(topic)
                            .with_partitions(
                                parts
                                    .into_iter()
                                    .map(|p| {
                                        offset_for_leader_epoch_response::EpochEndOffset::default()
                                            .with_partition(p)
                                            .with_error_code(code)
                                            .with_leader_epoch(-1)
                                            .with_end_offset(-1)
                                    })
                                    .collect(),
                            ),
                    );
                }
            }
            ResponseKind::DeleteRecords(r) => {
                for (topic, parts, code) in partitions {
                    r.topics.push(
                        delete_records_response::DeleteRecordsTopicResult::default()
                            .with_name(topic)
                            .with_partitions(
                                parts
                                    .into_iter()
                                    .map(|p| {
                                        delete_records_response::DeleteRecordsPartitionResult::default()
                                            .with_partition_index(p)
                                            .with_error_code(code)
                                            .with_low_watermark(-1)
                                    })
                                    .collect(),
                            ),
                    );
                }
            }
            ResponseKind::CreateTopics(r) => {
                for (name, _, code) in names {
                    r.topics.push(
                        create_topics_response::CreatableTopicResult::default()
                            .with_name(TopicName(name))
                            .with_error_code(code)
                            .with_num_partitions(-1)
                            .with_replication_factor(-1),
                    );
                }
            }
            ResponseKind::DeleteTopics(r) => {
                for (name, _, code) in names {
                    r.responses.push(
                        delete_topics_response::DeletableTopicResult::default()
                            .with_name(Some(TopicName(name)))
                            .with_error_code(code),
                    );
                }
            }
            ResponseKind::CreatePartitions(r) => {
                for (name, _, code) in names {
                    r.results.push(
                        create_partitions_response::CreatePartitionsTopicResult::default()
                            .with_name(TopicName(name))
                            .with_error_code(code),
                    );
                }
            }
            ResponseKind::DescribeConfigs(r) => {
                for (name, rt, code) in names {
                    r.results.push(
                        describe_configs_response::DescribeConfigsResult::default()
                            .with_resource_name(name)
                            .with_resource_type(rt)
                            .with_error_code(code),
                    );
                }
            }
            ResponseKind::AlterConfigs(r) => {
                for (name, rt, code) in names {
                    r.responses.push(
                        alter_configs_response::AlterConfigsResourceResponse::default()
                            .with_resource_name(name)
                            .with_resource_type(rt)
                            .with_error_code(code),
                    );
                }
            }
            ResponseKind::IncrementalAlterConfigs(r) => {
                for (name, rt, code) in names {
                    r.responses.push(
                        incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                            .with_resource_name(name)
                            .with_resource_type(rt)
                            .with_error_code(code),
                    );
                }
            }
            ResponseKind::FindCoordinator(r) => {
                for (key, _, code) in names {
                    r.coordinators.push(
                        find_coordinator_response::Coordinator::default()
                            .with_key(key)
                            .with_node_id(BrokerId(-1))
                            .with_port(-1)
                            .with_error_code(code),
                    );
                }
            }
            ResponseKind::OffsetCommit(r) => {
                for (topic, parts, code) in partitions {
                    r.topics.push(
                        offset_commit_response::OffsetCommitResponseTopic::default()
                            .with_name(topic)
                            .with_partitions(
                                parts
                                    .into_iter()
                                    .map(|p| {
                                        offset_commit_response::OffsetCommitResponsePartition::default()
                                            .with_partition_index(p)
                                            .with_error_code(code)
                                    })
                                    .collect(),
                            ),
                    );
                }
            }
            ResponseKind::TxnOffsetCommit(r) => {
                for (topic, parts, code) in partitions {
                    r.topics.push(
                        txn_offset_commit_response::TxnOffsetCommitResponseTopic::default()
                            .with_name(topic)
                            .with_partitions(
                                parts
                                    .into_iter()
                                    .map(|p| {
                                        txn_offset_commit_response::TxnOffsetCommitResponsePartition::default()
                                            .with_partition_index(p)
                                            .with_error_code(code)
                                    })
                                    .collect(),
                            ),
                    );
                }
            }
            ResponseKind::OffsetFetch(r) => {
                if describable_topics {
                    r.topics
                        .retain(|t| can(Op::Describe, Rt::Topic, t.name.0.as_str()));
                    for g in &mut r.groups {
                        g.topics
                            .retain(|t| can(Op::Describe, Rt::Topic, t.name.0.as_str()));
                    }
                }
                let fetch_partition = |p: i32| {
                    offset_fetch_response::OffsetFetchResponsePartition::default()
                        .with_partition_index(p)
                        .with_committed_offset(-1)
                        .with_committed_leader_epoch(-1)
                        .with_error_code(TOPIC_DENIED)
                };
                for (topic, parts, _) in partitions {
                    r.topics.push(
                        offset_fetch_response::OffsetFetchResponseTopic::default()
                            .with_name(topic)
                            .with_partitions(parts.into_iter().map(fetch_partition).collect()),
                    );
                }
                for (group, topic, parts) in group_topics {
                    if let Some(g) = r.groups.iter_mut().find(|g| g.group_id == group) {
                        g.topics.push(
                            offset_fetch_response::OffsetFetchResponseTopics::default()
                                .with_name(topic)
                                .with_partitions(
                                    parts
                                        .into_iter()
                                        .map(|p| {
                                            offset_fetch_response::OffsetFetchResponsePartitions::default()
                                                .with_partition_index(p)
                                                .with_committed_offset(-1)
                                                .with_committed_leader_epoch(-1)
                                                .with_error_code(TOPIC_DENIED)
                                        })
                                        .collect(),
                                ),
                        );
                    }
                }
                for (group, _, code) in names {
                    r.groups.push(
                        offset_fetch_response::OffsetFetchResponseGroup::default()
                            .with_group_id(GroupId(group))
                            .with_error_code(code),
                    );
                }
            }
            ResponseKind::DescribeGroups(r) => {
                for (group, _, code) in names {
                    r.groups.push(
                        describe_groups_response::DescribedGroup::default()
                            .with_group_id(GroupId(group))
                            .with_error_code(code),
                    );
                }
            }
            ResponseKind::ListGroups(r) if describable_groups => {
                r.groups
                    .retain(|g| can(Op::Describe, Rt::Group, g.group_id.0.as_str()));
            }
            ResponseKind::DeleteGroups(r) => {
                for (group, _, code) in names {
                    r.results.push(
                        delete_groups_response::DeletableGroupResult::default()
                            .with_group_id(GroupId(group))
                            .with_error_code(code),
                    );
                }
            }
            ResponseKind::OffsetDelete(r) => {
                for (topic, parts, code) in partitions {
                    r.topics.push(
                        offset_delete_response::OffsetDeleteResponseTopic::default()
                            .with_name(topic)
                            .with_partitions(
                                parts
                                    .into_iter()
                                    .map(|p| {
                                        offset_delete_response::OffsetDeleteResponsePartition::default()
                                            .with_partition_index(p)
                                            .with_error_code(code)
                                    })
                                    .collect(),
                            ),
                    );
                }
            }
            ResponseKind::AddPartitionsToTxn(r) => {
                for (topic, parts, code) in partitions {
                    r.results_by_topic_v3_and_below.push(
                        add_partitions_to_txn_response::AddPartitionsToTxnTopicResult::default()
                            .with_name(topic)
                            .with_results_by_partition(
                                parts
                                    .into_iter()
                                    .map(|p| {
                                        add_partitions_to_txn_response::AddPartitionsToTxnPartitionResult::default()
                                            .with_partition_index(p)
                                            .with_partition_error_code(code)
                                    })
                                    .collect(),
                            ),
                    );
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::StrBytes;
    use streamlog::{BatchBuilder, BatchOptions};

    use crate::acl::AuthorizerConfig;
    use crate::apis::{handle, Context, Outcome};
    use crate::broker::{test_broker, Broker};

    fn s(v: &str) -> StrBytes {
        StrBytes::from_string(v.to_string())
    }

    fn as_user(name: &str) -> Context {
        Context {
            client_id: "test".into(),
            client_host: "127.0.0.1".into(),
            principal: format!("User:{name}"),
            zero_copy: false,
        }
    }

    async fn call(
        broker: &Arc<Broker>,
        who: &str,
        api: ApiKey,
        v: i16,
        body: RequestKind,
    ) -> ResponseKind {
        match handle(broker, &as_user(who), api, v, body).await {
            Outcome::Respond(r) => *r,
            other => panic!("{api:?}: {other:?}"),
        }
    }

    fn produce(topics: &[&str]) -> RequestKind {
        let mut b = BatchBuilder::new(BatchOptions::default());
        b.append(1, None, Some(b"v"), &[]).unwrap();
        let batch = bytes::Bytes::from(b.build().unwrap());
        RequestKind::Produce(
            ProduceRequest::default()
                .with_acks(-1)
                .with_timeout_ms(1000)
                .with_topic_data(
                    topics
                        .iter()
                        .map(|t| {
                            produce_request::TopicProduceData::default()
                                .with_name(TopicName(s(t)))
                                .with_partition_data(vec![
                                    produce_request::PartitionProduceData::default()
                                        .with_records(Some(batch.clone())),
                                ])
                        })
                        .collect(),
                ),
        )
    }

    fn codes(resp: &ResponseKind) -> Vec<(String, i16)> {
        let mut out: Vec<(String, i16)> = match resp {
            ResponseKind::Produce(r) => r
                .responses
                .iter()
                .map(|t| (t.name.0.to_string(), t.partition_responses[0].error_code))
                .collect(),
            ResponseKind::Fetch(r) => r
                .responses
                .iter()
                .map(|t| (t.topic.0.to_string(), t.partitions[0].error_code))
                .collect(),
            ResponseKind::Metadata(r) => r
                .topics
                .iter()
                .map(|t| (t.name.as_ref().unwrap().0.to_string(), t.error_code))
                .collect(),
            other => panic!("{other:?}"),
        };
        out.sort();
        out
    }

    fn acl(
        topic_or_group: (i8, &str),
        principal: &str,
        op: i8,
    ) -> create_acls_request::AclCreation {
        create_acls_request::AclCreation::default()
            .with_resource_type(topic_or_group.0)
            .with_resource_name(s(topic_or_group.1))
            .with_resource_pattern_type(3)
            .with_principal(s(principal))
            .with_host(s("*"))
            .with_operation(op)
            .with_permission_type(3)
    }

    /// alice may read and write topic `t` and read group `g`; bob nothing; admin is a super
    /// user. Each API answers the denied part with Kafka's code and serves the rest.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn denied_resources_get_kafkas_codes_and_allowed_ones_are_served() {
        let dir = tempfile::tempdir().unwrap();
        let open = || {
            Arc::new(test_broker(dir.path(), |c| {
                c.authorizer = Some(AuthorizerConfig {
                    super_users: vec!["User:admin".into()],
                    allow_everyone_if_no_acl_found: false,
                })
            }))
        };
        let broker = open();
        for t in ["t", "secret"] {
            broker
                .storage
                .create_topic(t, 1, streamlog::storage::TopicConfig::new())
                .unwrap();
        }
        let create = RequestKind::CreateAcls(CreateAclsRequest::default().with_creations(vec![
            acl((2, "t"), "User:alice", 3),
            acl((2, "t"), "User:alice", 4),
            acl((3, "g"), "User:alice", 3),
        ]));
        // Only a super user (or ALTER on the cluster) may change ACLs.
        let ResponseKind::CreateAcls(r) =
            call(&broker, "alice", ApiKey::CreateAcls, 3, create.clone()).await
        else {
            panic!()
        };
        assert!(r.results.iter().all(|r| r.error_code == 31));
        let ResponseKind::CreateAcls(r) =
            call(&broker, "admin", ApiKey::CreateAcls, 3, create).await
        else {
            panic!()
        };
        assert!(r.results.iter().all(|r| r.error_code == 0), "{r:?}");

        let resp = call(
            &broker,
            "alice",
            ApiKey::Produce,
            9,
            produce(&["t", "secret"]),
        )
        .await;
        assert_eq!(codes(&resp), [("secret".into(), 29), ("t".into(), 0)]);
        let resp = call(&broker, "bob", ApiKey::Produce, 9, produce(&["t"])).await;
        assert_eq!(codes(&resp), [("t".into(), 29)]);
        assert_eq!(broker.log("t", 0).unwrap().log_end_offset(), 1);
        assert_eq!(broker.log("secret", 0).unwrap().log_end_offset(), 0);

        // A fetch of only denied partitions is answered at once, not after max_wait.
        let fetch = |topics: &[&str]| {
            RequestKind::Fetch(
                FetchRequest::default()
                    .with_max_wait_ms(60_000)
                    .with_min_bytes(1 << 20)
                    .with_max_bytes(1 << 20)
                    .with_topics(
                        topics
                            .iter()
                            .map(|t| {
                                fetch_request::FetchTopic::default()
                                    .with_topic(TopicName(s(t)))
                                    .with_partitions(vec![fetch_request::FetchPartition::default()
                                        .with_partition_max_bytes(1 << 20)])
                            })
                            .collect(),
                    ),
            )
        };
        let resp = call(&broker, "alice", ApiKey::Fetch, 12, fetch(&["secret"])).await;
        assert_eq!(codes(&resp), [("secret".into(), 29)]);
        let resp = call(&broker, "bob", ApiKey::Fetch, 12, fetch(&["t"])).await;
        assert_eq!(codes(&resp), [("t".into(), 29)]);
        if let ResponseKind::Fetch(r) = &resp {
            assert!(r.responses[0].partitions[0]
                .records
                .as_ref()
                .is_none_or(|b| b.is_empty()));
        }

        // Listing all topics shows only the describable ones; naming one denied says so.
        let all = RequestKind::Metadata(MetadataRequest::default().with_topics(None));
        let resp = call(&broker, "alice", ApiKey::Metadata, 9, all.clone()).await;
        assert_eq!(codes(&resp), [("t".into(), 0)]);
        let resp = call(&broker, "bob", ApiKey::Metadata, 9, all).await;
        assert_eq!(codes(&resp), []);
        let named = RequestKind::Metadata(MetadataRequest::default().with_topics(Some(
            vec![metadata_request::MetadataRequestTopic::default(
                )
                .with_name(Some(TopicName(s("secret"))))],
        )));
        let resp = call(&broker, "alice", ApiKey::Metadata, 9, named).await;
        assert_eq!(codes(&resp), [("secret".into(), 29)]);

        // Groups, idempotent producer ids, the cluster.
        let join = |g: &str| {
            RequestKind::JoinGroup(
                JoinGroupRequest::default()
                    .with_group_id(GroupId(s(g)))
                    .with_session_timeout_ms(10_000)
                    .with_rebalance_timeout_ms(10_000)
                    .with_protocol_type(s("consumer")),
            )
        };
        let ResponseKind::JoinGroup(r) =
            call(&broker, "bob", ApiKey::JoinGroup, 9, join("g")).await
        else {
            panic!()
        };
        assert_eq!(r.error_code, 30);
        let ResponseKind::JoinGroup(r) =
            call(&broker, "alice", ApiKey::JoinGroup, 9, join("g")).await
        else {
            panic!()
        };
        assert_ne!(r.error_code, 30);
        let init = RequestKind::InitProducerId(
            InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        );
        let ResponseKind::InitProducerId(r) =
            call(&broker, "alice", ApiKey::InitProducerId, 4, init.clone()).await
        else {
            panic!()
        };
        assert_eq!(r.error_code, 0);
        let ResponseKind::InitProducerId(r) =
            call(&broker, "bob", ApiKey::InitProducerId, 4, init).await
        else {
            panic!()
        };
        assert_eq!(r.error_code, 31);
        let txn = RequestKind::InitProducerId(
            InitProducerIdRequest::default()
                .with_transactional_id(Some(TransactionalId(s("tx"))))
                .with_transaction_timeout_ms(10_000)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        );
        let ResponseKind::InitProducerId(r) =
            call(&broker, "alice", ApiKey::InitProducerId, 4, txn).await
        else {
            panic!()
        };
        assert_eq!(r.error_code, 53);

        // Stored in the data directory: a restarted broker enforces the same ACLs.
        let describe = RequestKind::DescribeAcls(
            DescribeAclsRequest::default()
                .with_resource_name_filter(None)
                .with_principal_filter(None)
                .with_host_filter(None)
                .with_resource_type_filter(1)
                .with_pattern_type_filter(1)
                .with_operation(1)
                .with_permission_type(1),
        );
        let ResponseKind::DescribeAcls(r) =
            call(&broker, "alice", ApiKey::DescribeAcls, 3, describe.clone()).await
        else {
            panic!()
        };
        assert_eq!(r.error_code, 31);
        broker.storage.close().unwrap();
        drop(broker);
        let broker = open();
        let ResponseKind::DescribeAcls(r) =
            call(&broker, "admin", ApiKey::DescribeAcls, 3, describe.clone()).await
        else {
            panic!()
        };
        assert_eq!(r.error_code, 0);
        assert_eq!(r.resources.iter().map(|r| r.acls.len()).sum::<usize>(), 3);
        let resp = call(&broker, "bob", ApiKey::Produce, 9, produce(&["t"])).await;
        assert_eq!(codes(&resp), [("t".into(), 29)]);

        // Without an authorizer, the ACL APIs answer SECURITY_DISABLED.
        let plain_dir = tempfile::tempdir().unwrap();
        let plain = Arc::new(test_broker(plain_dir.path(), |_| {}));
        let ResponseKind::DescribeAcls(r) =
            call(&plain, "admin", ApiKey::DescribeAcls, 3, describe).await
        else {
            panic!()
        };
        assert_eq!(r.error_code, 54);
    }
}
