//! OffsetCommit, TxnOffsetCommit, OffsetFetch, OffsetDelete, the admin requests
//! (DescribeGroups, ListGroups, DeleteGroups), offset expiration, and what happens when an
//! append the coordinator asked for completes.

use super::group::{Group, GroupState};
use super::offsets::Expiry;
use super::timers::TimerKind;
use super::{
    commit_error, Api, AppendId, AppendPurpose, Core, DeleteGroupsRequest, DeleteGroupsResponse,
    DeletedGroup, DescribeGroupsRequest, DescribeGroupsResponse, DescribedGroup,
    DescribedGroupMember, GroupCoordinator, ListGroupsRequest, ListGroupsResponse, ListedGroup,
    OffsetCommitPartition, OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest,
    OffsetDeleteResponse, OffsetFetchGroupResponse, OffsetFetchGroupsRequest,
    OffsetFetchGroupsResponse, OffsetFetchPartition, OffsetFetchRequest, OffsetFetchResponse,
    OffsetsRecord, PartitionResult, PartitionState, RequestId, Response, TopicPartition,
    TxnOffsetCommitRequest, TxnProducer,
};
use crate::group::{GroupMetadataKey, OffsetAndMetadata, OffsetCommitKey};
use crate::KafkaCode;

/// The type ListGroups v5+ gives the groups of the classic protocol.
const CLASSIC_GROUP_TYPE: &str = "classic";

fn all_failed(partitions: &[OffsetCommitPartition], code: KafkaCode) -> OffsetCommitResponse {
    OffsetCommitResponse {
        partitions: partitions
            .iter()
            .map(|p| PartitionResult {
                topic: p.topic.clone(),
                partition: p.partition,
                error_code: code,
            })
            .collect(),
    }
}

/// Who is committing, for Kafka's `validateOffsetCommit`.
struct Committer<'a> {
    generation_id: i32,
    member_id: &'a str,
    instance_id: Option<&'a str>,
    transactional: bool,
}

fn validate_offset_commit(group: &Group, c: &Committer<'_>) -> Option<KafkaCode> {
    if c.generation_id < 0 && group.is(GroupState::Empty) {
        // An admin client or a consumer without group management, on an empty group.
        None
    } else if c.generation_id >= 0 || !c.member_id.is_empty() || c.instance_id.is_some() {
        group
            .validate_current_member(c.member_id, c.instance_id)
            .or_else(|| {
                (c.generation_id != group.generation).then_some(KafkaCode::ILLEGAL_GENERATION)
            })
    } else if !c.transactional && !group.is(GroupState::Empty) {
        // Only members commit for a group with members.
        Some(KafkaCode::UNKNOWN_MEMBER_ID)
    } else {
        None
    }
}

impl GroupCoordinator {
    pub(super) fn offset_commit(&mut self, now: i64, rid: RequestId, req: OffsetCommitRequest) {
        if let Some(code) = self.validate_group_status(&req.group_id, Api::OffsetCommit) {
            let response = all_failed(&req.partitions, code);
            return self.core.respond(rid, Response::OffsetCommit(response));
        }
        let committer = Committer {
            generation_id: req.generation_id,
            member_id: &req.member_id,
            instance_id: req.group_instance_id.as_deref(),
            transactional: false,
        };
        let error = match self.groups.get(&req.group_id) {
            // A client without group management creates a simple group by committing.
            None if req.generation_id < 0 => None,
            // Or it is a member of a generation that is gone.
            None => Some(KafkaCode::ILLEGAL_GENERATION),
            Some(group) => validate_offset_commit(group, &committer).or(match group.state {
                // The member got the new generation but not its assignment yet.
                GroupState::CompletingRebalance => Some(KafkaCode::REBALANCE_IN_PROGRESS),
                _ => None,
            }),
        };
        if let Some(code) = error {
            let response = all_failed(&req.partitions, code);
            return self.core.respond(rid, Response::OffsetCommit(response));
        }
        let partition = self.partition_for(&req.group_id);
        let group = self
            .groups
            .entry(req.group_id.clone())
            .or_insert_with(|| Group::new(req.group_id.clone(), partition, now));
        // Committing during a rebalance is allowed (the heartbeat tells the member to
        // rejoin), and counts as a sign of life.
        if let Some(member) = group.members.get(&req.member_id) {
            let deadline = now.saturating_add(i64::from(member.session_timeout_ms));
            self.core
                .schedule_heartbeat(group, &req.member_id, deadline);
        }
        let expire =
            (req.retention_time_ms >= 0).then(|| now.saturating_add(req.retention_time_ms));
        self.core
            .store_offsets(group, now, rid, req.partitions, expire, None);
    }

    pub(super) fn txn_offset_commit(
        &mut self,
        now: i64,
        rid: RequestId,
        req: TxnOffsetCommitRequest,
    ) {
        if let Some(code) = self.validate_group_status(&req.group_id, Api::TxnOffsetCommit) {
            let response = all_failed(&req.partitions, code);
            return self.core.respond(rid, Response::TxnOffsetCommit(response));
        }
        let committer = Committer {
            generation_id: req.generation_id,
            member_id: &req.member_id,
            instance_id: req.group_instance_id.as_deref(),
            transactional: true,
        };
        let error = match self.groups.get(&req.group_id) {
            Some(group) => validate_offset_commit(group, &committer),
            // Kafka creates the group first; an empty group accepts what an empty new one
            // would, so check against a throwaway one.
            None => validate_offset_commit(&Group::new(String::new(), 0, now), &committer),
        };
        if let Some(code) = error {
            let response = all_failed(&req.partitions, code);
            return self.core.respond(rid, Response::TxnOffsetCommit(response));
        }
        let partition = self.partition_for(&req.group_id);
        let group = self
            .groups
            .entry(req.group_id.clone())
            .or_insert_with(|| Group::new(req.group_id.clone(), partition, now));
        let producer = TxnProducer {
            producer_id: req.producer_id,
            producer_epoch: req.producer_epoch,
        };
        self.core
            .store_offsets(group, now, rid, req.partitions, None, Some(producer));
    }

    pub(super) fn offset_fetch(&mut self, rid: RequestId, req: OffsetFetchRequest) {
        let response = self.fetch_offsets(&req);
        self.core.respond(rid, Response::OffsetFetch(response));
    }

    pub(super) fn offset_fetch_groups(&mut self, rid: RequestId, req: OffsetFetchGroupsRequest) {
        let groups = req
            .groups
            .iter()
            .map(|g| OffsetFetchGroupResponse {
                group_id: g.group_id.clone(),
                response: self.fetch_offsets(g),
            })
            .collect();
        self.core.respond(
            rid,
            Response::OffsetFetchGroups(OffsetFetchGroupsResponse { groups }),
        );
    }

    /// One group's OffsetFetch answer.
    fn fetch_offsets(&self, req: &OffsetFetchRequest) -> OffsetFetchResponse {
        if let Some(code) = self.validate_group_status(&req.group_id, Api::OffsetFetch) {
            return OffsetFetchResponse {
                error_code: code,
                partitions: Vec::new(),
            };
        }
        let group = self.groups.get(&req.group_id);
        let none = |tp: &TopicPartition, code: KafkaCode| OffsetFetchPartition {
            topic: tp.topic.clone(),
            partition: tp.partition,
            committed_offset: -1,
            committed_leader_epoch: -1,
            metadata: Some(String::new()),
            error_code: code,
        };
        let found = |tp: &TopicPartition, o: &OffsetAndMetadata| OffsetFetchPartition {
            topic: tp.topic.clone(),
            partition: tp.partition,
            committed_offset: o.offset,
            committed_leader_epoch: o.leader_epoch.unwrap_or(-1),
            metadata: Some(o.metadata.clone()),
            error_code: KafkaCode::NONE,
        };
        let partitions = match (&req.partitions, group) {
            (Some(tps), None) => tps.iter().map(|tp| none(tp, KafkaCode::NONE)).collect(),
            (None, None) => Vec::new(),
            (None, Some(group)) => group
                .offsets
                .all()
                .iter()
                .map(|(tp, o)| found(tp, o))
                .collect(),
            (Some(tps), Some(group)) => tps
                .iter()
                .map(|tp| {
                    if req.require_stable && group.offsets.has_pending(tp) {
                        none(tp, KafkaCode::UNSTABLE_OFFSET_COMMIT)
                    } else {
                        match group.offsets.get(tp) {
                            Some(o) => found(tp, &o),
                            None => none(tp, KafkaCode::NONE),
                        }
                    }
                })
                .collect(),
        };
        OffsetFetchResponse {
            error_code: KafkaCode::NONE,
            partitions,
        }
    }

    pub(super) fn describe_groups(&mut self, rid: RequestId, req: DescribeGroupsRequest) {
        let mut groups = Vec::with_capacity(req.groups.len());
        for group_id in req.groups {
            let described = match self.validate_group_status(&group_id, Api::DescribeGroups) {
                Some(code) => DescribedGroup {
                    error_code: code,
                    error_message: None,
                    group_id,
                    group_state: String::new(),
                    protocol_type: String::new(),
                    protocol_data: String::new(),
                    members: Vec::new(),
                },
                None => match self.groups.get(&group_id) {
                    None if req.report_unknown_groups => DescribedGroup {
                        error_code: KafkaCode::GROUP_ID_NOT_FOUND,
                        error_message: Some(format!("Group {group_id} not found.")),
                        group_id,
                        group_state: GroupState::Dead.name().to_owned(),
                        protocol_type: String::new(),
                        protocol_data: String::new(),
                        members: Vec::new(),
                    },
                    None => DescribedGroup {
                        error_code: KafkaCode::NONE,
                        error_message: None,
                        group_id,
                        group_state: GroupState::Dead.name().to_owned(),
                        protocol_type: String::new(),
                        protocol_data: String::new(),
                        members: Vec::new(),
                    },
                    Some(group) => describe(group),
                },
            };
            groups.push(described);
        }
        self.core.respond(
            rid,
            Response::DescribeGroups(DescribeGroupsResponse { groups }),
        );
    }

    pub(super) fn list_groups(&mut self, rid: RequestId, req: ListGroupsRequest) {
        let loading = self
            .partitions
            .values()
            .any(|s| *s == PartitionState::Loading);
        let wanted: Vec<String> = req.states_filter.iter().map(|s| s.to_lowercase()).collect();
        // Every group here is a classic one (KIP-848's `consumer` groups are not run here).
        let classic = req.types_filter.is_empty()
            || req
                .types_filter
                .iter()
                .any(|t| t.eq_ignore_ascii_case(CLASSIC_GROUP_TYPE));
        let groups = self
            .groups
            .values()
            .filter(|_| classic)
            .filter(|g| wanted.is_empty() || wanted.contains(&g.state.name().to_lowercase()))
            .map(|g| ListedGroup {
                group_id: g.id.clone(),
                protocol_type: g.protocol_type.clone().unwrap_or_default(),
                group_state: g.state.name().to_owned(),
                group_type: CLASSIC_GROUP_TYPE.to_owned(),
            })
            .collect();
        let error_code = if loading {
            KafkaCode::COORDINATOR_LOAD_IN_PROGRESS
        } else {
            KafkaCode::NONE
        };
        self.core.respond(
            rid,
            Response::ListGroups(ListGroupsResponse { error_code, groups }),
        );
    }

    pub(super) fn delete_groups(&mut self, now: i64, rid: RequestId, req: DeleteGroupsRequest) {
        let mut results = Vec::with_capacity(req.groups_names.len());
        for group_id in req.groups_names {
            let code = match self.validate_group_status(&group_id, Api::DeleteGroups) {
                Some(code) => code,
                None => match self.groups.get_mut(&group_id) {
                    None => KafkaCode::GROUP_ID_NOT_FOUND,
                    Some(group) if group.is(GroupState::Empty) => {
                        group.transition_to(GroupState::Dead, now);
                        self.core.cleanup_group(group, |o| o.remove_all());
                        self.groups.remove(&group_id);
                        KafkaCode::NONE
                    }
                    Some(_) => KafkaCode::NON_EMPTY_GROUP,
                },
            };
            results.push(DeletedGroup {
                group_id,
                error_code: code,
            });
        }
        self.core.respond(
            rid,
            Response::DeleteGroups(DeleteGroupsResponse { results }),
        );
    }

    pub(super) fn offset_delete(&mut self, rid: RequestId, req: OffsetDeleteRequest) {
        let reply = |core: &mut Core, error_code: KafkaCode, partitions: Vec<PartitionResult>| {
            core.respond(
                rid,
                Response::OffsetDelete(OffsetDeleteResponse {
                    error_code,
                    partitions,
                }),
            )
        };
        if let Some(code) = self.validate_group_status(&req.group_id, Api::OffsetDelete) {
            return reply(&mut self.core, code, Vec::new());
        }
        let Some(group) = self.groups.get_mut(&req.group_id) else {
            return reply(&mut self.core, KafkaCode::GROUP_ID_NOT_FOUND, Vec::new());
        };
        let result = |tp: &TopicPartition, code: KafkaCode| PartitionResult {
            topic: tp.topic.clone(),
            partition: tp.partition,
            error_code: code,
        };
        let (deletable, results): (Vec<TopicPartition>, Vec<PartitionResult>) = match group.state {
            GroupState::Empty => (req.partitions.clone(), Vec::new()),
            _ if group.is_consumer_group() => {
                let (consumed, not_consumed): (Vec<TopicPartition>, Vec<TopicPartition>) = req
                    .partitions
                    .iter()
                    .cloned()
                    .partition(|tp| group.is_subscribed_to_topic(&tp.topic));
                let results = consumed
                    .iter()
                    .map(|tp| result(tp, KafkaCode::GROUP_SUBSCRIBED_TO_TOPIC))
                    .collect();
                (not_consumed, results)
            }
            _ => return reply(&mut self.core, KafkaCode::NON_EMPTY_GROUP, Vec::new()),
        };
        let mut results = results;
        if !deletable.is_empty() {
            self.core.cleanup_group(group, |o| o.remove(&deletable));
            results.extend(deletable.iter().map(|tp| result(tp, KafkaCode::NONE)));
            if group.is(GroupState::Dead) {
                self.groups.remove(&req.group_id);
            }
        }
        // Kafka answers in request order.
        let order = |r: &PartitionResult| {
            req.partitions
                .iter()
                .position(|tp| tp.topic == r.topic && tp.partition == r.partition)
        };
        results.sort_by_key(order);
        reply(&mut self.core, KafkaCode::NONE, results)
    }

    /// Offset expiration (`offsets.retention.minutes`), every
    /// `offsets.retention.check.interval.ms`.
    pub(super) fn expire_offsets(&mut self, now: i64, at: i64) {
        if self.core.retention_at != Some(at) {
            return;
        }
        let retention = self.core.config.offsets_retention_ms;
        let mut dead = Vec::new();
        for (id, group) in self.groups.iter_mut() {
            let subscribed = group.subscribed_topics.clone();
            let expiry = match (&group.protocol_type, group.state) {
                (Some(_), GroupState::Empty) => Some(Expiry::Empty {
                    since: group.state_timestamp,
                }),
                (Some(_), _) if group.is_consumer_group() && subscribed.is_some() => {
                    subscribed.as_ref().map(Expiry::NotSubscribed)
                }
                (None, _) => Some(Expiry::Standalone),
                _ => None,
            };
            let Some(expiry) = expiry else {
                continue;
            };
            self.core
                .cleanup_group(group, |o| o.remove_expired(now, retention, expiry));
            if group.is(GroupState::Dead) {
                dead.push(id.clone());
            }
        }
        for id in dead {
            self.groups.remove(&id);
        }
        self.core.arm_retention(now);
    }

    /// The outcome of an [`Append`](super::Append) the coordinator asked for: `Ok(())` once
    /// the records are in the log, or the error code the append failed with (for example
    /// `NOT_LEADER_OR_FOLLOWER`). Unknown ids (an append of an unloaded partition) are
    /// ignored.
    pub fn append_completed(&mut self, now: i64, id: AppendId, result: Result<(), KafkaCode>) {
        let Some(pending) = self.core.appends.remove(&id) else {
            return;
        };
        match pending.purpose {
            AppendPurpose::Commit {
                group,
                request,
                mut results,
                written,
                producer_id,
            } => {
                let code = match result {
                    Ok(()) => KafkaCode::NONE,
                    Err(code) => commit_error(code),
                };
                // The group may be gone (deleted): the answer still tells what the log holds.
                if let Some(group) = self.groups.get_mut(&group) {
                    for (_, tp, value) in &written {
                        match (producer_id, result) {
                            (None, Ok(())) => group.offsets.on_commit_appended(id, tp, value),
                            (None, Err(_)) => group.offsets.fail_commit(id, tp),
                            (Some(pid), Ok(())) => {
                                group.offsets.on_txn_appended(pid, id, tp, value)
                            }
                            (Some(pid), Err(_)) => group.offsets.fail_txn(pid, tp),
                        }
                    }
                }
                for (index, _, _) in &written {
                    if let Some(r) = results.get_mut(*index) {
                        r.error_code = code;
                    }
                }
                let response = OffsetCommitResponse {
                    partitions: results,
                };
                let response = if producer_id.is_some() {
                    Response::TxnOffsetCommit(response)
                } else {
                    Response::OffsetCommit(response)
                };
                self.core.respond(request, response);
            }
            AppendPurpose::Assignment {
                group,
                generation,
                assignment,
            } => {
                if let Some(group) = self.groups.get_mut(&group) {
                    self.core
                        .on_assignment_appended(group, generation, assignment, result, now);
                }
            }
            AppendPurpose::StaticRejoin(rejoin) => match self.groups.get_mut(&rejoin.group) {
                Some(group) => self
                    .core
                    .on_static_rejoin_appended(group, *rejoin, result, now),
                None => self.core.respond(
                    rejoin.request,
                    Response::JoinGroup(super::JoinGroupResponse::error(
                        "",
                        KafkaCode::COORDINATOR_NOT_AVAILABLE,
                    )),
                ),
            },
            AppendPurpose::Nothing => {}
        }
    }

    /// The transaction coordinator wrote `producer_id`'s COMMIT (`commit`) or ABORT marker to
    /// these offsets partitions: its transactional offsets become visible, or are dropped.
    pub fn complete_transaction(&mut self, producer_id: i64, partitions: &[i32], commit: bool) {
        for group in self.groups.values_mut() {
            if partitions.contains(&group.partition) && group.offsets.has_pending_txn(producer_id) {
                group.offsets.complete_txn(producer_id, commit);
            }
        }
    }
}

fn describe(group: &Group) -> DescribedGroup {
    let stable = group.is(GroupState::Stable);
    let protocol = group.protocol_name.clone().unwrap_or_default();
    let members = group
        .members
        .values()
        .map(|m| DescribedGroupMember {
            member_id: m.id.clone(),
            group_instance_id: m.instance_id.clone(),
            client_id: m.client_id.clone(),
            client_host: m.client_host.clone(),
            member_metadata: if stable {
                m.metadata(&protocol).to_vec()
            } else {
                Vec::new()
            },
            member_assignment: if stable {
                m.assignment.clone()
            } else {
                Vec::new()
            },
        })
        .collect();
    DescribedGroup {
        error_code: KafkaCode::NONE,
        error_message: None,
        group_id: group.id.clone(),
        group_state: group.state.name().to_owned(),
        protocol_type: group.protocol_type.clone().unwrap_or_default(),
        protocol_data: if stable { protocol } else { String::new() },
        members,
    }
}

impl Core {
    /// Kafka's `storeOffsets`: partitions with oversized metadata fail alone; the others go
    /// to the log as one batch, answered when it is appended.
    fn store_offsets(
        &mut self,
        group: &mut Group,
        now: i64,
        rid: RequestId,
        partitions: Vec<OffsetCommitPartition>,
        expire_timestamp: Option<i64>,
        producer: Option<TxnProducer>,
    ) {
        let mut results = Vec::with_capacity(partitions.len());
        let mut written = Vec::new();
        let mut records = Vec::new();
        for (index, p) in partitions.into_iter().enumerate() {
            let metadata = p.committed_metadata.unwrap_or_default();
            // Kafka compares the Java string's length: UTF-16 code units.
            let too_large = metadata.encode_utf16().count() > self.config.offset_metadata_max_bytes;
            results.push(PartitionResult {
                topic: p.topic.clone(),
                partition: p.partition,
                error_code: if too_large {
                    KafkaCode::OFFSET_METADATA_TOO_LARGE
                } else {
                    KafkaCode::NONE
                },
            });
            if too_large {
                continue;
            }
            let value = OffsetAndMetadata {
                offset: p.committed_offset,
                leader_epoch: (p.committed_leader_epoch >= 0).then_some(p.committed_leader_epoch),
                metadata,
                commit_timestamp: now,
                expire_timestamp,
            };
            records.push(OffsetsRecord::OffsetCommit {
                key: OffsetCommitKey::new(group.id.clone(), p.topic.clone(), p.partition),
                value: Some(value.to_value()),
            });
            written.push((index, TopicPartition::new(p.topic, p.partition), value));
        }
        let response = |results| {
            let r = OffsetCommitResponse {
                partitions: results,
            };
            if producer.is_some() {
                Response::TxnOffsetCommit(r)
            } else {
                Response::OffsetCommit(r)
            }
        };
        if written.is_empty() {
            return self.respond(rid, response(results));
        }
        let id = self.next_append_id + 1;
        for (_, tp, value) in &written {
            match producer {
                None => group.offsets.prepare_commit(id, tp),
                Some(p) => group.offsets.prepare_txn(p.producer_id, tp, value),
            }
        }
        let purpose = AppendPurpose::Commit {
            group: group.id.clone(),
            request: rid,
            results,
            written,
            producer_id: producer.map(|p| p.producer_id),
        };
        let appended = self.append(group.partition, producer, records, purpose);
        debug_assert_eq!(appended, id);
    }

    /// Removes offsets (`remove` picks which) and writes their tombstones; an empty group
    /// left without offsets dies, and its metadata gets a tombstone too (Kafka's
    /// `cleanupGroupMetadata`).
    fn cleanup_group(
        &mut self,
        group: &mut Group,
        remove: impl FnOnce(&mut super::offsets::GroupOffsets) -> Vec<TopicPartition>,
    ) {
        let removed = remove(&mut group.offsets);
        if group.is(GroupState::Empty) && !group.offsets.has_offsets() {
            group.state = GroupState::Dead;
        }
        let mut records: Vec<OffsetsRecord> = removed
            .into_iter()
            .map(|tp| OffsetsRecord::OffsetCommit {
                key: OffsetCommitKey::new(group.id.clone(), tp.topic, tp.partition),
                value: None,
            })
            .collect();
        if group.is(GroupState::Dead) {
            self.answer_all(group, KafkaCode::COORDINATOR_NOT_AVAILABLE);
            // A group that never completed a rebalance has no metadata record to delete.
            if group.generation > 0 {
                records.push(OffsetsRecord::GroupMetadata {
                    key: GroupMetadataKey::new(group.id.clone()),
                    value: None,
                });
            }
        }
        if !records.is_empty() {
            self.append(group.partition, None, records, AppendPurpose::Nothing);
        }
    }

    pub(super) fn arm_retention(&mut self, now: i64) {
        let at = now.saturating_add(self.config.offsets_retention_check_interval_ms.max(1));
        self.retention_at = Some(at);
        self.timers.schedule(at, "", TimerKind::Retention);
    }
}
