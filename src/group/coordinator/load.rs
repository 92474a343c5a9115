//! Taking over and giving up offsets partitions: a load replays the partition's records
//! (Kafka's `GroupMetadataManager.loadGroupsAndOffsets`) and resumes every group with its
//! generation, members and assignments; an unload drops them and answers what waited.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::api::JoinGroupProtocol;
use super::group::{Group, GroupState, Member};
use super::{
    AppendPurpose, GroupCoordinator, LoadEntry, OffsetCommitResponse, OffsetsRecord,
    PartitionState, Response,
};
use crate::group::GroupMetadataValue;
use crate::KafkaCode;

impl GroupCoordinator {
    /// This node became leader of offsets partition `partition` and starts reading it:
    /// requests for its groups are answered `COORDINATOR_LOAD_IN_PROGRESS` until
    /// [`load_partition`](Self::load_partition). Groups already held for it are dropped.
    pub fn begin_loading(&mut self, partition: i32) {
        self.unload_partition(partition);
        self.partitions.insert(partition, PartitionState::Loading);
    }

    /// Rebuilds the groups of offsets partition `partition` from its entries, in log order,
    /// and starts serving them: groups with members resume Stable in their generation (their
    /// members must heartbeat within their session timeout), the others Empty.
    pub fn load_partition(
        &mut self,
        now: i64,
        partition: i32,
        entries: impl IntoIterator<Item = LoadEntry>,
    ) {
        self.drop_groups(partition, KafkaCode::NOT_COORDINATOR);
        // Offsets go straight into their groups' tables, each with its position in the log
        // (a transaction's offsets replace a plain commit only if written after it); the
        // metadata of a group, of which only the last record counts, is applied at the end.
        // Hashed while loading (a lookup per record), ordered once at the end.
        let mut groups: HashMap<String, Group> = HashMap::new();
        let mut metadata: HashMap<String, Option<GroupMetadataValue>> = HashMap::new();
        let mut txn_groups: HashMap<i64, BTreeSet<String>> = HashMap::new();
        let mut position = 0u64;
        for entry in entries {
            position += 1;
            match entry {
                LoadEntry::Record {
                    record: OffsetsRecord::OffsetCommit { key, value },
                    producer_id,
                } => {
                    let group = match (groups.get_mut(&key.group), &value) {
                        (Some(group), _) => group,
                        // A tombstone for a group with nothing loaded yet changes nothing.
                        (None, None) => continue,
                        (None, Some(_)) => groups
                            .entry(key.group.clone())
                            .or_insert_with_key(|id| Group::new(id.clone(), partition, now)),
                    };
                    match producer_id {
                        None => {
                            group
                                .offsets
                                .load(&key.topic, key.partition, value.as_ref(), position)
                        }
                        Some(pid) => {
                            group.offsets.load_pending_txn(
                                pid,
                                &key.topic,
                                key.partition,
                                value.as_ref(),
                                position,
                            );
                            if value.is_some() {
                                txn_groups.entry(pid).or_default().insert(key.group);
                            }
                        }
                    }
                }
                LoadEntry::Record {
                    record: OffsetsRecord::GroupMetadata { key, value },
                    ..
                } => {
                    metadata.insert(key.group, value);
                }
                LoadEntry::Marker {
                    producer_id,
                    commit,
                } => {
                    for id in txn_groups.remove(&producer_id).unwrap_or_default() {
                        if let Some(group) = groups.get_mut(&id) {
                            group.offsets.complete_txn(producer_id, commit);
                        }
                    }
                }
            }
        }
        // Groups whose offsets were all deleted and that have no metadata are gone.
        groups.retain(|id, g| g.offsets.has_offsets() || matches!(metadata.get(id), Some(Some(_))));
        for (id, value) in metadata {
            if let Some(value) = value {
                let group = groups
                    .entry(id)
                    .or_insert_with_key(|id| Group::new(id.clone(), partition, now));
                apply_metadata(group, value);
            }
        }
        // Records written from now on are newer than everything loaded.
        self.core.next_append_id = self.core.next_append_id.max(position);

        // In id order: timers of the same deadline then fire in the same order every run.
        let groups: BTreeMap<String, Group> = groups.into_iter().collect();
        for (id, mut group) in groups {
            let sessions: Vec<(String, i64)> = group
                .members
                .values()
                .map(|m| (m.id.clone(), i64::from(m.session_timeout_ms)))
                .collect();
            for (member_id, session) in sessions {
                self.core
                    .schedule_heartbeat(&mut group, &member_id, now.saturating_add(session));
            }
            // A lowered group.max.size: rebalance so that the extra members get
            // GROUP_MAX_SIZE_REACHED when they rejoin.
            if group.members.len() > self.core.config.group_max_size {
                self.core.prepare_rebalance(&mut group, now);
            }
            self.groups.insert(id, group);
        }
        self.partitions.insert(partition, PartitionState::Active);
        if self.core.retention_at.is_none() {
            self.core.arm_retention(now);
        }
    }

    /// This node no longer leads offsets partition `partition`: its groups are dropped, and
    /// everything waiting on them is answered `NOT_COORDINATOR` (the clients find the new
    /// coordinator). Appends still in flight for it are forgotten.
    pub fn unload_partition(&mut self, partition: i32) {
        self.drop_groups(partition, KafkaCode::NOT_COORDINATOR);
        self.partitions.remove(&partition);
    }

    fn drop_groups(&mut self, partition: i32, code: KafkaCode) {
        let ids: Vec<String> = self
            .groups
            .values()
            .filter(|g| g.partition == partition)
            .map(|g| g.id.clone())
            .collect();
        for id in ids {
            if let Some(mut group) = self.groups.remove(&id) {
                self.core.answer_all(&mut group, code);
            }
        }
        let mut appends: Vec<u64> = self
            .core
            .appends
            .iter()
            .filter(|(_, a)| a.partition == partition)
            .map(|(id, _)| *id)
            .collect();
        // Answer in the order the requests came (deterministic for a simulation).
        appends.sort_unstable();
        for id in appends {
            let Some(append) = self.core.appends.remove(&id) else {
                continue;
            };
            if let AppendPurpose::Commit {
                request,
                mut results,
                written,
                producer_id,
                ..
            } = append.purpose
            {
                for (index, _, _) in written {
                    if let Some(r) = results.get_mut(index) {
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
        }
    }
}

/// Resumes a group as its last metadata record says (generation, protocol, members with
/// their subscriptions and assignments, leader).
fn apply_metadata(group: &mut Group, value: GroupMetadataValue) {
    group.generation = value.generation;
    group.protocol_type = (!value.protocol_type.is_empty()).then_some(value.protocol_type.clone());
    group.protocol_name = value.protocol.clone();
    group.state_timestamp =
        (value.current_state_timestamp >= 0).then_some(value.current_state_timestamp);
    let protocol = value.protocol.clone().unwrap_or_default();
    for m in value.members {
        let rebalance_timeout_ms = if m.rebalance_timeout > 0 {
            m.rebalance_timeout
        } else {
            m.session_timeout
        };
        group.add(Member {
            id: m.member_id,
            instance_id: m.group_instance_id,
            client_id: m.client_id,
            client_host: m.client_host,
            rebalance_timeout_ms,
            session_timeout_ms: m.session_timeout,
            protocol_type: value.protocol_type.clone(),
            protocols: vec![JoinGroupProtocol {
                name: protocol.clone(),
                metadata: m.subscription,
            }],
            assignment: m.assignment,
            awaiting_join: None,
            awaiting_sync: None,
            is_new: false,
            heartbeat_deadline: i64::MAX,
            timer_at: None,
        });
    }
    // `add` made the first member the leader; the record says who leads.
    if let Some(leader) = value.leader {
        if group.members.contains_key(&leader) {
            group.leader = Some(leader);
        }
    }
    if !group.members.is_empty() {
        group.state = GroupState::Stable;
    }
    group.subscribed_topics = group.compute_subscribed_topics();
}
