//! One handler per Kafka API. [`handle`] routes a decoded request to its handler and says
//! what to send back.
//!
//! Handlers that touch the disk run on tokio's blocking pool; Fetch stays async because it
//! long-polls, and so do the group APIs, whose answers may wait for a rebalance. Adding an
//! API is a row in [`versions`], an arm in [`handle`] and a handler.

pub mod acls;
pub mod admin;
pub mod alter_configs;
pub mod authz;
pub mod delete_records;
pub mod fetch;
pub mod groups;
pub mod leader_epoch;
pub mod list_offsets;
pub mod metadata;
pub mod produce;
pub mod txn;
pub mod versions;

use std::sync::Arc;

use kafka_protocol::messages::{ApiKey, ApiVersionsResponse, RequestKind, ResponseKind};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;

/// What a request gets.
#[derive(Debug)]
pub enum Outcome {
    /// A response (boxed: response bodies are large, the other outcomes small).
    Respond(Box<ResponseKind>),
    /// A Fetch response some of whose partitions' records are still in segment files, to be
    /// sent from there (`zero_copy.rs`); only for a connection whose `Context::zero_copy` is on.
    RespondWithFiles(Box<ResponseKind>, Vec<crate::zero_copy::FileRecords>),
    /// Nothing: a Produce with acks=0 that succeeded.
    NoResponse,
    /// The connection is closed (Kafka's answer to an acks=0 produce that failed, and to
    /// requests it cannot serve).
    Close(String),
}

impl Outcome {
    /// A response.
    pub fn respond(body: ResponseKind) -> Outcome {
        Outcome::Respond(Box::new(body))
    }
}

/// Who sent a request: what the coordinators record about a client.
#[derive(Debug, Clone)]
pub struct Context {
    /// The request header's `client.id`.
    pub client_id: String,
    /// The client's address as this broker sees it.
    pub client_host: String,
    /// Who the client is (`User:NAME`; `User:ANONYMOUS` when it did not authenticate): what
    /// ACLs are checked against.
    pub principal: String,
    /// Whether Fetch may leave records in their segment files for the server to send with
    /// `sendfile`: a plaintext connection with `fetch_sendfile` on.
    pub zero_copy: bool,
}

impl Default for Context {
    fn default() -> Self {
        Context {
            client_id: String::new(),
            client_host: String::new(),
            principal: crate::acl::ANONYMOUS.to_string(),
            zero_copy: false,
        }
    }
}

/// Handles one request of `version`: authorizes it (`authz`), then runs its handler.
pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &Context,
    api_key: ApiKey,
    version: i16,
    mut body: RequestKind,
) -> Outcome {
    let fixup = match authz::check(broker, ctx, version, &mut body) {
        authz::Check::Answer(outcome) => return outcome,
        authz::Check::Pass(fixup) => fixup,
    };
    match dispatch(broker, ctx, api_key, version, body).await {
        Outcome::Respond(mut resp) => {
            fixup.apply(broker, &mut resp);
            producer_fenced_for_old_clients(version, &mut resp);
            Outcome::Respond(resp)
        }
        Outcome::RespondWithFiles(mut resp, files) => {
            // Denied partitions are appended after the ones read: the files' indexes hold.
            fixup.apply(broker, &mut resp);
            Outcome::RespondWithFiles(resp, files)
        }
        other => other,
    }
}

async fn dispatch(
    broker: &Arc<Broker>,
    ctx: &Context,
    api_key: ApiKey,
    version: i16,
    body: RequestKind,
) -> Outcome {
    use RequestKind as Rq;
    match body {
        Rq::ApiVersions(_) => Outcome::respond(ResponseKind::ApiVersions(
            ApiVersionsResponse::default().with_api_keys(versions::api_versions()),
        )),
        Rq::Fetch(req) => fetch::handle(broker, req, version, ctx.zero_copy).await,
        // The group APIs wait on the group coordinator (a JoinGroup for its rebalance).
        Rq::JoinGroup(r) => groups::join_group(broker, ctx, r, version).await,
        Rq::SyncGroup(r) => groups::sync_group(broker, r).await,
        Rq::Heartbeat(r) => groups::heartbeat(broker, r).await,
        Rq::LeaveGroup(r) => groups::leave_group(broker, r, version).await,
        Rq::OffsetCommit(r) => groups::offset_commit(broker, r, version).await,
        Rq::OffsetFetch(r) => groups::offset_fetch(broker, r, version).await,
        Rq::TxnOffsetCommit(r) => groups::txn_offset_commit(broker, r, version).await,
        Rq::DescribeGroups(r) => groups::describe_groups(broker, r, version).await,
        Rq::ListGroups(r) => groups::list_groups(broker, r, version).await,
        Rq::DeleteGroups(r) => groups::delete_groups(broker, r).await,
        Rq::OffsetDelete(r) => groups::offset_delete(broker, r).await,
        other => {
            let broker = Arc::clone(broker);
            let ctx = ctx.clone();
            match tokio::task::spawn_blocking(move || {
                handle_blocking(&broker, &ctx, version, other)
            })
            .await
            {
                Ok(outcome) => outcome,
                Err(e) => Outcome::Close(format!("{api_key:?} handler failed: {e}")),
            }
        }
    }
}

fn handle_blocking(broker: &Broker, ctx: &Context, version: i16, body: RequestKind) -> Outcome {
    let respond = Outcome::respond;
    use RequestKind as Rq;
    use ResponseKind as Rs;
    match body {
        Rq::Metadata(r) => respond(Rs::Metadata(metadata::metadata(broker, r, version))),
        Rq::DescribeCluster(_) => respond(Rs::DescribeCluster(metadata::describe_cluster(broker))),
        Rq::FindCoordinator(r) => respond(Rs::FindCoordinator(metadata::find_coordinator(
            broker, r, version,
        ))),
        Rq::CreateTopics(r) => respond(Rs::CreateTopics(admin::create_topics(broker, r, version))),
        Rq::DeleteTopics(r) => respond(Rs::DeleteTopics(admin::delete_topics(broker, r))),
        Rq::CreatePartitions(r) => {
            respond(Rs::CreatePartitions(admin::create_partitions(broker, r)))
        }
        Rq::DescribeConfigs(r) => respond(Rs::DescribeConfigs(admin::describe_configs(broker, r))),
        Rq::AlterConfigs(r) => respond(Rs::AlterConfigs(alter_configs::alter_configs(broker, r))),
        Rq::IncrementalAlterConfigs(r) => respond(Rs::IncrementalAlterConfigs(
            alter_configs::incremental_alter_configs(broker, r),
        )),
        Rq::DeleteRecords(r) => {
            respond(Rs::DeleteRecords(delete_records::delete_records(broker, r)))
        }
        Rq::OffsetForLeaderEpoch(r) => respond(Rs::OffsetForLeaderEpoch(
            leader_epoch::offset_for_leader_epoch(broker, r),
        )),
        Rq::Produce(r) => produce::produce(broker, r),
        Rq::InitProducerId(r) => respond(Rs::InitProducerId(txn::init_producer_id(broker, r))),
        Rq::AddPartitionsToTxn(r) => respond(Rs::AddPartitionsToTxn(txn::add_partitions_to_txn(
            broker, r,
        ))),
        Rq::EndTxn(r) => respond(Rs::EndTxn(txn::end_txn(broker, r))),
        Rq::AddOffsetsToTxn(r) => {
            respond(Rs::AddOffsetsToTxn(groups::add_offsets_to_txn(broker, r)))
        }
        Rq::ListOffsets(r) => respond(Rs::ListOffsets(list_offsets::list_offsets(
            broker, r, version,
        ))),
        Rq::DescribeAcls(r) => respond(Rs::DescribeAcls(acls::describe_acls(broker, ctx, r))),
        Rq::CreateAcls(r) => respond(Rs::CreateAcls(acls::create_acls(broker, ctx, r))),
        Rq::DeleteAcls(r) => respond(Rs::DeleteAcls(acls::delete_acls(broker, ctx, r))),
        other => Outcome::Close(format!("no handler for {other:?}")),
    }
}

/// PRODUCER_FENCED (KIP-588) is answered only to request versions that know it: InitProducerId
/// v4+, AddPartitionsToTxn, AddOffsetsToTxn and EndTxn v2+, TxnOffsetCommit v3+. Older ones get
/// INVALID_PRODUCER_EPOCH, as Kafka translates it.
fn producer_fenced_for_old_clients(version: i16, resp: &mut ResponseKind) {
    const PRODUCER_FENCED: i16 = 90;
    const INVALID_PRODUCER_EPOCH: i16 = 47;
    let fix = |code: &mut i16, first_knowing: i16| {
        if *code == PRODUCER_FENCED && version < first_knowing {
            *code = INVALID_PRODUCER_EPOCH;
        }
    };
    match resp {
        ResponseKind::InitProducerId(r) => fix(&mut r.error_code, 4),
        ResponseKind::EndTxn(r) => fix(&mut r.error_code, 2),
        ResponseKind::AddOffsetsToTxn(r) => fix(&mut r.error_code, 2),
        ResponseKind::AddPartitionsToTxn(r) => {
            for t in &mut r.results_by_topic_v3_and_below {
                for p in &mut t.results_by_partition {
                    fix(&mut p.partition_error_code, 2);
                }
            }
        }
        ResponseKind::TxnOffsetCommit(r) => {
            for t in &mut r.topics {
                for p in &mut t.partitions {
                    fix(&mut p.error_code, 3);
                }
            }
        }
        _ => {}
    }
}

/// The response's first error code, top-level or per topic/partition (0 when none), for
/// the metrics' requests-by-error-code counter.
pub fn error_code(resp: &ResponseKind) -> i16 {
    fn first(codes: impl IntoIterator<Item = i16>) -> i16 {
        codes.into_iter().find(|c| *c != 0).unwrap_or(0)
    }
    match resp {
        ResponseKind::Produce(r) => first(
            r.responses
                .iter()
                .flat_map(|t| t.partition_responses.iter().map(|p| p.error_code)),
        ),
        ResponseKind::Fetch(r) => first(
            std::iter::once(r.error_code).chain(
                r.responses
                    .iter()
                    .flat_map(|t| t.partitions.iter().map(|p| p.error_code)),
            ),
        ),
        ResponseKind::ListOffsets(r) => first(
            r.topics
                .iter()
                .flat_map(|t| t.partitions.iter().map(|p| p.error_code)),
        ),
        ResponseKind::Metadata(r) => first(r.topics.iter().map(|t| t.error_code)),
        ResponseKind::CreateTopics(r) => first(r.topics.iter().map(|t| t.error_code)),
        ResponseKind::DeleteTopics(r) => first(r.responses.iter().map(|t| t.error_code)),
        ResponseKind::CreatePartitions(r) => first(r.results.iter().map(|t| t.error_code)),
        ResponseKind::DescribeConfigs(r) => first(r.results.iter().map(|t| t.error_code)),
        ResponseKind::AlterConfigs(r) => first(r.responses.iter().map(|t| t.error_code)),
        ResponseKind::IncrementalAlterConfigs(r) => first(r.responses.iter().map(|t| t.error_code)),
        ResponseKind::DeleteRecords(r) => first(
            r.topics
                .iter()
                .flat_map(|t| t.partitions.iter().map(|p| p.error_code)),
        ),
        ResponseKind::OffsetForLeaderEpoch(r) => first(
            r.topics
                .iter()
                .flat_map(|t| t.partitions.iter().map(|p| p.error_code)),
        ),
        ResponseKind::InitProducerId(r) => r.error_code,
        ResponseKind::JoinGroup(r) => r.error_code,
        ResponseKind::SyncGroup(r) => r.error_code,
        ResponseKind::Heartbeat(r) => r.error_code,
        ResponseKind::LeaveGroup(r) => {
            first(std::iter::once(r.error_code).chain(r.members.iter().map(|m| m.error_code)))
        }
        ResponseKind::OffsetCommit(r) => first(
            r.topics
                .iter()
                .flat_map(|t| t.partitions.iter().map(|p| p.error_code)),
        ),
        ResponseKind::TxnOffsetCommit(r) => first(
            r.topics
                .iter()
                .flat_map(|t| t.partitions.iter().map(|p| p.error_code)),
        ),
        ResponseKind::OffsetFetch(r) => first(
            std::iter::once(r.error_code)
                .chain(r.groups.iter().flat_map(|g| {
                    std::iter::once(g.error_code).chain(
                        g.topics
                            .iter()
                            .flat_map(|t| t.partitions.iter().map(|p| p.error_code)),
                    )
                }))
                .chain(
                    r.topics
                        .iter()
                        .flat_map(|t| t.partitions.iter().map(|p| p.error_code)),
                ),
        ),
        ResponseKind::DescribeGroups(r) => first(r.groups.iter().map(|g| g.error_code)),
        ResponseKind::ListGroups(r) => r.error_code,
        ResponseKind::DeleteGroups(r) => first(r.results.iter().map(|g| g.error_code)),
        ResponseKind::OffsetDelete(r) => first(
            std::iter::once(r.error_code).chain(
                r.topics
                    .iter()
                    .flat_map(|t| t.partitions.iter().map(|p| p.error_code)),
            ),
        ),
        ResponseKind::AddOffsetsToTxn(r) => r.error_code,
        ResponseKind::EndTxn(r) => r.error_code,
        ResponseKind::AddPartitionsToTxn(r) => {
            first(r.results_by_topic_v3_and_below.iter().flat_map(|t| {
                t.results_by_partition
                    .iter()
                    .map(|p| p.partition_error_code)
            }))
        }
        ResponseKind::ApiVersions(r) => r.error_code,
        ResponseKind::DescribeCluster(r) => r.error_code,
        ResponseKind::DescribeAcls(r) => r.error_code,
        ResponseKind::CreateAcls(r) => first(r.results.iter().map(|a| a.error_code)),
        ResponseKind::DeleteAcls(r) => first(r.filter_results.iter().map(|a| a.error_code)),
        _ => 0,
    }
}

/// An owned string as the protocol's string type.
pub fn str_bytes(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{decode_request, encode_response, Decoded};
    use bytes::BytesMut;
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::Encodable;
    use streamlog::{BatchBuilder, BatchOptions};

    fn str(s: &str) -> StrBytes {
        StrBytes::from_string(s.to_string())
    }

    /// A request of each served API, with one topic or partition where it takes them.
    fn request(api: ApiKey, version: i16, batch: &bytes::Bytes) -> RequestKind {
        let topic = TopicName(str("t"));
        match api {
            ApiKey::Produce => {
                RequestKind::Produce(ProduceRequest::default().with_acks(-1).with_topic_data(
                    vec![produce_request::TopicProduceData::default()
                        .with_name(topic)
                        .with_partition_data(vec![
                            produce_request::PartitionProduceData::default()
                                .with_index(0)
                                .with_records(Some(batch.clone())),
                        ])],
                ))
            }
            ApiKey::Fetch => RequestKind::Fetch(
                FetchRequest::default()
                    .with_max_bytes(1 << 20)
                    .with_isolation_level((version % 2) as i8)
                    .with_topics(vec![fetch_request::FetchTopic::default()
                        .with_topic(topic)
                        .with_partitions(vec![fetch_request::FetchPartition::default()
                            .with_partition_max_bytes(1 << 20)])]),
            ),
            ApiKey::ListOffsets => {
                RequestKind::ListOffsets(ListOffsetsRequest::default().with_topics(vec![
                    list_offsets_request::ListOffsetsTopic::default()
                        .with_name(topic)
                        .with_partitions(vec![list_offsets_request::ListOffsetsPartition::default()
                            .with_timestamp(-1)]),
                ]))
            }
            ApiKey::Metadata => {
                RequestKind::Metadata(MetadataRequest::default().with_topics(Some(vec![
                    metadata_request::MetadataRequestTopic::default().with_name(Some(topic)),
                    metadata_request::MetadataRequestTopic::default()
                        .with_name(Some(TopicName(str("bad name!")))),
                ])))
            }
            ApiKey::FindCoordinator if version >= 4 => RequestKind::FindCoordinator(
                FindCoordinatorRequest::default().with_coordinator_keys(vec![str("g")]),
            ),
            ApiKey::FindCoordinator => {
                RequestKind::FindCoordinator(FindCoordinatorRequest::default().with_key(str("g")))
            }
            ApiKey::ApiVersions => RequestKind::ApiVersions(ApiVersionsRequest::default()),
            ApiKey::CreateTopics => {
                RequestKind::CreateTopics(CreateTopicsRequest::default().with_topics(vec![
                    create_topics_request::CreatableTopic::default()
                        .with_name(TopicName(str(&format!("new-{version}"))))
                        .with_num_partitions(2)
                        .with_replication_factor(1),
                    create_topics_request::CreatableTopic::default()
                        .with_name(topic)
                        .with_num_partitions(1)
                        .with_replication_factor(3),
                ]))
            }
            ApiKey::DeleteTopics => RequestKind::DeleteTopics(
                DeleteTopicsRequest::default()
                    .with_topic_names(vec![TopicName(str("new-2")), TopicName(str("missing"))]),
            ),
            ApiKey::InitProducerId => RequestKind::InitProducerId(
                InitProducerIdRequest::default()
                    .with_producer_id(ProducerId(-1))
                    .with_producer_epoch(-1),
            ),
            ApiKey::DescribeConfigs => RequestKind::DescribeConfigs(
                DescribeConfigsRequest::default().with_resources(vec![
                    describe_configs_request::DescribeConfigsResource::default()
                        .with_resource_type(2)
                        .with_resource_name(str("t")),
                    describe_configs_request::DescribeConfigsResource::default()
                        .with_resource_type(4)
                        .with_resource_name(str("1")),
                    describe_configs_request::DescribeConfigsResource::default()
                        .with_resource_type(2)
                        .with_resource_name(str("missing")),
                ]),
            ),
            ApiKey::CreatePartitions => {
                RequestKind::CreatePartitions(CreatePartitionsRequest::default().with_topics(vec![
                    create_partitions_request::CreatePartitionsTopic::default()
                        .with_name(topic)
                        .with_count(i32::from(version) + 2),
                ]))
            }
            ApiKey::DescribeCluster => {
                RequestKind::DescribeCluster(DescribeClusterRequest::default())
            }
            ApiKey::AddPartitionsToTxn => RequestKind::AddPartitionsToTxn(
                AddPartitionsToTxnRequest::default()
                    .with_v3_and_below_transactional_id(TransactionalId(str("tx")))
                    .with_v3_and_below_producer_id(ProducerId(0))
                    .with_v3_and_below_topics(vec![
                        add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                            .with_name(topic)
                            .with_partitions(vec![0]),
                    ]),
            ),
            ApiKey::EndTxn => RequestKind::EndTxn(
                EndTxnRequest::default().with_transactional_id(TransactionalId(str("tx"))),
            ),
            ApiKey::AlterConfigs => {
                RequestKind::AlterConfigs(AlterConfigsRequest::default().with_resources(vec![
                    alter_configs_request::AlterConfigsResource::default()
                        .with_resource_type(2)
                        .with_resource_name(str("t"))
                        .with_configs(vec![alter_configs_request::AlterableConfig::default()
                            .with_name(str("retention.ms"))
                            .with_value(Some(str("86400000")))]),
                ]))
            }
            ApiKey::IncrementalAlterConfigs => RequestKind::IncrementalAlterConfigs(
                IncrementalAlterConfigsRequest::default().with_resources(vec![
                    incremental_alter_configs_request::AlterConfigsResource::default()
                        .with_resource_type(2)
                        .with_resource_name(str("t"))
                        .with_configs(vec![
                            incremental_alter_configs_request::AlterableConfig::default()
                                .with_name(str("retention.bytes"))
                                .with_value(Some(str("1048576000"))),
                        ]),
                ]),
            ),
            ApiKey::DeleteRecords => {
                RequestKind::DeleteRecords(DeleteRecordsRequest::default().with_topics(vec![
                    delete_records_request::DeleteRecordsTopic::default()
                        .with_name(topic)
                        .with_partitions(vec![
                            delete_records_request::DeleteRecordsPartition::default()
                                .with_offset(0),
                        ]),
                ]))
            }
            ApiKey::OffsetForLeaderEpoch => RequestKind::OffsetForLeaderEpoch(
                OffsetForLeaderEpochRequest::default().with_topics(vec![
                    offset_for_leader_epoch_request::OffsetForLeaderTopic::default()
                        .with_topic(topic)
                        .with_partitions(vec![
                            offset_for_leader_epoch_request::OffsetForLeaderPartition::default(),
                        ]),
                ]),
            ),
            ApiKey::JoinGroup => RequestKind::JoinGroup(
                JoinGroupRequest::default()
                    .with_group_id(GroupId(str(&format!("join-{version}"))))
                    .with_session_timeout_ms(10_000)
                    .with_rebalance_timeout_ms(10_000)
                    .with_protocol_type(str("consumer"))
                    .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default(
                    )
                    .with_name(str("range"))]),
            ),
            ApiKey::SyncGroup => RequestKind::SyncGroup(
                SyncGroupRequest::default()
                    .with_group_id(GroupId(str("g")))
                    .with_member_id(str("nobody")),
            ),
            ApiKey::Heartbeat => RequestKind::Heartbeat(
                HeartbeatRequest::default()
                    .with_group_id(GroupId(str("g")))
                    .with_member_id(str("nobody")),
            ),
            ApiKey::LeaveGroup if version >= 3 => RequestKind::LeaveGroup(
                LeaveGroupRequest::default()
                    .with_group_id(GroupId(str("g")))
                    .with_members(vec![leave_group_request::MemberIdentity::default()
                        .with_member_id(str("nobody"))]),
            ),
            ApiKey::LeaveGroup => RequestKind::LeaveGroup(
                LeaveGroupRequest::default()
                    .with_group_id(GroupId(str("g")))
                    .with_member_id(str("nobody")),
            ),
            ApiKey::OffsetCommit => RequestKind::OffsetCommit(
                OffsetCommitRequest::default()
                    .with_group_id(GroupId(str("simple")))
                    .with_generation_id_or_member_epoch(-1)
                    .with_topics(vec![
                        offset_commit_request::OffsetCommitRequestTopic::default()
                            .with_name(topic)
                            .with_partitions(vec![
                                offset_commit_request::OffsetCommitRequestPartition::default()
                                    .with_committed_offset(1),
                            ]),
                    ]),
            ),
            ApiKey::OffsetFetch if version >= 8 => {
                RequestKind::OffsetFetch(OffsetFetchRequest::default().with_groups(vec![
                    offset_fetch_request::OffsetFetchRequestGroup::default()
                        .with_group_id(GroupId(str("simple")))
                        .with_topics(None),
                ]))
            }
            ApiKey::OffsetFetch => RequestKind::OffsetFetch(
                OffsetFetchRequest::default()
                    .with_group_id(GroupId(str("simple")))
                    .with_topics(Some(vec![
                        offset_fetch_request::OffsetFetchRequestTopic::default()
                            .with_name(topic)
                            .with_partition_indexes(vec![0]),
                    ])),
            ),
            ApiKey::DescribeGroups => RequestKind::DescribeGroups(
                DescribeGroupsRequest::default()
                    .with_groups(vec![GroupId(str("simple")), GroupId(str("missing"))]),
            ),
            ApiKey::ListGroups => RequestKind::ListGroups(ListGroupsRequest::default()),
            ApiKey::DeleteGroups => RequestKind::DeleteGroups(
                DeleteGroupsRequest::default().with_groups_names(vec![GroupId(str("missing"))]),
            ),
            ApiKey::OffsetDelete => RequestKind::OffsetDelete(
                OffsetDeleteRequest::default()
                    .with_group_id(GroupId(str("simple")))
                    .with_topics(vec![
                        offset_delete_request::OffsetDeleteRequestTopic::default()
                            .with_name(topic)
                            .with_partitions(vec![
                                offset_delete_request::OffsetDeleteRequestPartition::default(),
                            ]),
                    ]),
            ),
            ApiKey::TxnOffsetCommit => RequestKind::TxnOffsetCommit(
                TxnOffsetCommitRequest::default()
                    .with_transactional_id(TransactionalId(str("tx")))
                    .with_group_id(GroupId(str("simple")))
                    .with_topics(vec![
                        txn_offset_commit_request::TxnOffsetCommitRequestTopic::default()
                            .with_name(topic)
                            .with_partitions(vec![
                                txn_offset_commit_request::TxnOffsetCommitRequestPartition::default(
                                ),
                            ]),
                    ]),
            ),
            ApiKey::AddOffsetsToTxn => RequestKind::AddOffsetsToTxn(
                AddOffsetsToTxnRequest::default()
                    .with_transactional_id(TransactionalId(str("tx")))
                    .with_group_id(GroupId(str("simple"))),
            ),
            ApiKey::DescribeAcls => RequestKind::DescribeAcls(
                DescribeAclsRequest::default()
                    .with_resource_type_filter(1)
                    .with_pattern_type_filter(1)
                    .with_operation(1)
                    .with_permission_type(1),
            ),
            ApiKey::CreateAcls => {
                RequestKind::CreateAcls(CreateAclsRequest::default().with_creations(
                    vec![create_acls_request::AclCreation::default()
                    .with_resource_type(2)
                    .with_resource_name(str("t"))
                    .with_resource_pattern_type(3)
                    .with_principal(str("User:alice"))
                    .with_host(str("*"))
                    .with_operation(3)
                    .with_permission_type(3)],
                ))
            }
            ApiKey::DeleteAcls => {
                RequestKind::DeleteAcls(DeleteAclsRequest::default().with_filters(
                    vec![delete_acls_request::DeleteAclsFilter::default()
                    .with_resource_type_filter(1)
                    .with_pattern_type_filter(1)
                    .with_operation(1)
                    .with_permission_type(1)],
                ))
            }
            other => panic!("no test request for {other:?}"),
        }
    }

    #[test]
    fn producer_fenced_is_invalid_producer_epoch_for_versions_before_kip_588() {
        let end = |v| {
            let mut r = ResponseKind::EndTxn(EndTxnResponse::default().with_error_code(90));
            producer_fenced_for_old_clients(v, &mut r);
            error_code(&r)
        };
        assert_eq!((end(1), end(2)), (47, 90));
        let init = |v| {
            let mut r =
                ResponseKind::InitProducerId(InitProducerIdResponse::default().with_error_code(90));
            producer_fenced_for_old_clients(v, &mut r);
            error_code(&r)
        };
        assert_eq!((init(3), init(4)), (47, 90));
    }

    /// Every served API at every served version: the request decodes, the handler answers,
    /// and the answer encodes at that version (kafka-protocol refuses fields a version lacks).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_api_at_every_version_answers() {
        let dir = tempfile::tempdir().unwrap();
        let broker = Arc::new(crate::broker::test_broker(dir.path(), |_| {}));
        broker
            .storage
            .create_topic("t", 1, streamlog::storage::TopicConfig::new())
            .unwrap();
        // JoinGroup v0-3 waits for its rebalance, which completes on the coordinator's timer.
        let timers = tokio::spawn(Arc::clone(&broker.groups).run_timers());
        let mut b = BatchBuilder::new(BatchOptions::default());
        b.append(1, Some(b"k"), Some(b"v"), &[]).unwrap();
        let batch = bytes::Bytes::from(b.build().unwrap());
        // SASL requests are a connection's own business (server.rs, sasl.rs).
        let served_here = versions::all()
            .filter(|(a, _)| !matches!(a, ApiKey::SaslHandshake | ApiKey::SaslAuthenticate));
        for (api, version) in served_here {
            let mut frame = BytesMut::new();
            RequestHeader::default()
                .with_request_api_key(api as i16)
                .with_request_api_version(version)
                .with_correlation_id(42)
                .encode(&mut frame, api.request_header_version(version))
                .unwrap();
            request(api, version, &batch)
                .encode(&mut frame, version)
                .unwrap_or_else(|e| panic!("{api:?} v{version} request: {e}"));
            let Decoded::Request { header, body, .. } = decode_request(frame.freeze()) else {
                panic!("{api:?} v{version} did not decode");
            };
            match handle(&broker, &Context::default(), api, version, *body).await {
                Outcome::Respond(resp) => {
                    encode_response(api, version, header.correlation_id, &resp)
                        .unwrap_or_else(|e| panic!("{api:?} v{version} response: {e}"));
                }
                other => panic!("{api:?} v{version}: {other:?}"),
            }
        }
        // One acks=all produce per Produce version, each durable and at the next offset.
        let log = broker.log("t", 0).unwrap();
        let produces = versions::supported(ApiKey::Produce).unwrap();
        assert_eq!(
            log.log_end_offset(),
            i64::from(produces.max - produces.min + 1)
        );
        assert_eq!(log.recovery_point(), log.log_end_offset());
        timers.abort();
    }
}
