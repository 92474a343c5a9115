//! JoinGroup, SyncGroup, Heartbeat and LeaveGroup, and the rebalance they drive (Kafka's
//! `GroupCoordinator` for the classic protocol).

use std::collections::BTreeMap;

use super::group::{Group, GroupState, JoinTimer, Member};
use super::timers::TimerKind;
use super::{
    store_group_error, Api, AppendPurpose, Core, GroupCoordinator, HeartbeatRequest,
    HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupMemberResponse,
    LeaveGroupRequest, LeaveGroupResponse, OffsetsRecord, RequestId, Response, StaticRejoin,
    SyncGroupRequest, SyncGroupResponse,
};
use crate::group::{GroupMetadataKey, GroupMetadataValue, MemberMetadata};
use crate::KafkaCode;

fn join_error(member_id: &str, code: KafkaCode) -> Response {
    Response::JoinGroup(JoinGroupResponse::error(member_id, code))
}

fn sync_error(code: KafkaCode) -> Response {
    Response::SyncGroup(SyncGroupResponse::error(code))
}

impl GroupCoordinator {
    pub(super) fn join_group(&mut self, now: i64, rid: RequestId, req: JoinGroupRequest) {
        if let Some(code) = self.validate_group_status(&req.group_id, Api::JoinGroup) {
            return self.core.respond(rid, join_error(&req.member_id, code));
        }
        let config = &self.core.config;
        if req.session_timeout_ms < config.group_min_session_timeout_ms
            || req.session_timeout_ms > config.group_max_session_timeout_ms
        {
            return self.core.respond(
                rid,
                join_error(&req.member_id, KafkaCode::INVALID_SESSION_TIMEOUT),
            );
        }
        let created = !self.groups.contains_key(&req.group_id);
        if created {
            // A member id for a group that does not exist was never issued here.
            if !req.member_id.is_empty() {
                return self.core.respond(
                    rid,
                    join_error(&req.member_id, KafkaCode::UNKNOWN_MEMBER_ID),
                );
            }
            let partition = self.partition_for(&req.group_id);
            let group = Group::new(req.group_id.clone(), partition, now);
            self.groups.insert(req.group_id.clone(), group);
        }
        let group_id = req.group_id.clone();
        let Some(group) = self.groups.get_mut(&group_id) else {
            return;
        };
        self.core.join(group, now, rid, req);
        // A group Kafka would create for a join it then refused is not kept: nothing about
        // it would be worth listing.
        if created && group.members.is_empty() && group.pending_members.is_empty() {
            self.groups.remove(&group_id);
        }
    }

    pub(super) fn sync_group(&mut self, now: i64, rid: RequestId, req: SyncGroupRequest) {
        match self.validate_group_status(&req.group_id, Api::SyncGroup) {
            // The rebalance's state is lost while loading: rejoin (older clients do not
            // know COORDINATOR_LOAD_IN_PROGRESS here).
            Some(KafkaCode::COORDINATOR_LOAD_IN_PROGRESS) => {
                return self
                    .core
                    .respond(rid, sync_error(KafkaCode::REBALANCE_IN_PROGRESS))
            }
            Some(code) => return self.core.respond(rid, sync_error(code)),
            None => {}
        }
        let Some(group) = self.groups.get_mut(&req.group_id) else {
            return self
                .core
                .respond(rid, sync_error(KafkaCode::UNKNOWN_MEMBER_ID));
        };
        self.core.sync(group, now, rid, req);
    }

    pub(super) fn heartbeat(&mut self, now: i64, rid: RequestId, req: HeartbeatRequest) {
        let code = match self.validate_group_status(&req.group_id, Api::Heartbeat) {
            // Loading: answer blindly, the member finds out at its next JoinGroup/SyncGroup.
            Some(KafkaCode::COORDINATOR_LOAD_IN_PROGRESS) => KafkaCode::NONE,
            Some(code) => code,
            None => match self.groups.get_mut(&req.group_id) {
                None => KafkaCode::UNKNOWN_MEMBER_ID,
                Some(group) => self.core.heartbeat(group, now, &req),
            },
        };
        self.core.respond(
            rid,
            Response::Heartbeat(HeartbeatResponse { error_code: code }),
        );
    }

    pub(super) fn leave_group(&mut self, now: i64, rid: RequestId, req: LeaveGroupRequest) {
        if let Some(code) = self.validate_group_status(&req.group_id, Api::LeaveGroup) {
            return self.core.respond(
                rid,
                Response::LeaveGroup(LeaveGroupResponse {
                    error_code: code,
                    members: Vec::new(),
                }),
            );
        }
        let Some(group) = self.groups.get_mut(&req.group_id) else {
            let members = req
                .members
                .into_iter()
                .map(|m| LeaveGroupMemberResponse {
                    member_id: m.member_id,
                    group_instance_id: m.group_instance_id,
                    error_code: KafkaCode::UNKNOWN_MEMBER_ID,
                })
                .collect();
            return self.core.respond(
                rid,
                Response::LeaveGroup(LeaveGroupResponse {
                    error_code: KafkaCode::NONE,
                    members,
                }),
            );
        };
        let mut results = Vec::with_capacity(req.members.len());
        for leaving in req.members {
            let code = self.core.leave(
                group,
                now,
                &leaving.member_id,
                leaving.group_instance_id.as_deref(),
            );
            results.push(LeaveGroupMemberResponse {
                member_id: leaving.member_id,
                group_instance_id: leaving.group_instance_id,
                error_code: code,
            });
        }
        self.core.respond(
            rid,
            Response::LeaveGroup(LeaveGroupResponse {
                error_code: KafkaCode::NONE,
                members: results,
            }),
        );
    }
}

impl Core {
    fn accept_joining_member(&self, group: &Group, member_id: &str) -> bool {
        let max = self.config.group_max_size;
        match group.state {
            GroupState::Empty | GroupState::Dead => true,
            // Counting the members that rejoined (not the group's size) lets a lowered
            // group.max.size push out the last ones to rejoin.
            GroupState::PreparingRebalance => {
                group
                    .members
                    .get(member_id)
                    .is_some_and(|m| m.awaiting_join.is_some())
                    || group.awaiting_join_count < max
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                group.members.contains_key(member_id) || group.members.len() < max
            }
        }
    }

    fn join(&mut self, group: &mut Group, now: i64, rid: RequestId, req: JoinGroupRequest) {
        if !self.accept_joining_member(group, &req.member_id) {
            if let Some(member) = group.remove(&req.member_id) {
                self.answer_removed(&member);
            }
            self.respond(rid, join_error("", KafkaCode::GROUP_MAX_SIZE_REACHED));
        } else if req.member_id.is_empty() {
            self.new_member_join(group, now, rid, req);
        } else {
            self.current_member_join(group, now, rid, req);
        }
        if group.is(GroupState::PreparingRebalance) {
            self.try_complete_join(group, now);
        }
    }

    fn new_member_join(
        &mut self,
        group: &mut Group,
        now: i64,
        rid: RequestId,
        req: JoinGroupRequest,
    ) {
        if !group.supports_protocols(&req.protocol_type, &req.protocols) {
            return self.respond(rid, join_error("", KafkaCode::INCONSISTENT_GROUP_PROTOCOL));
        }
        let prefix = req.group_instance_id.as_deref().unwrap_or(&req.client_id);
        let new_id = self.member_ids.generate(prefix);
        match req.group_instance_id.clone() {
            Some(instance) => match group.static_members.get(&instance).cloned() {
                Some(old_id) => self.update_static_member_and_rebalance(
                    group, now, rid, req, instance, old_id, new_id,
                ),
                None => self.add_member_and_rebalance(group, now, rid, new_id, req),
            },
            None if req.require_known_member_id => {
                let at = now.saturating_add(i64::from(req.session_timeout_ms));
                group.pending_members.insert(new_id.clone(), at);
                self.timers
                    .schedule(at, &group.id, TimerKind::PendingMember(new_id.clone()));
                self.respond(rid, join_error(&new_id, KafkaCode::MEMBER_ID_REQUIRED));
            }
            None => self.add_member_and_rebalance(group, now, rid, new_id, req),
        }
    }

    fn current_member_join(
        &mut self,
        group: &mut Group,
        now: i64,
        rid: RequestId,
        req: JoinGroupRequest,
    ) {
        let member_id = req.member_id.clone();
        if !group.supports_protocols(&req.protocol_type, &req.protocols) {
            return self.respond(
                rid,
                join_error(&member_id, KafkaCode::INCONSISTENT_GROUP_PROTOCOL),
            );
        }
        if group.is_pending_member(&member_id) {
            // Pending member ids are only handed to dynamic members; Kafka fails such a
            // request with an internal error.
            if req.group_instance_id.is_some() {
                return self.respond(rid, join_error(&member_id, KafkaCode::UNKNOWN_SERVER_ERROR));
            }
            return self.add_member_and_rebalance(group, now, rid, member_id, req);
        }
        if let Some(code) =
            group.validate_current_member(&member_id, req.group_instance_id.as_deref())
        {
            return self.respond(rid, join_error(&member_id, code));
        }
        let Some(member) = group.members.get(&member_id) else {
            return self.respond(rid, join_error(&member_id, KafkaCode::UNKNOWN_MEMBER_ID));
        };
        let same_metadata = member.matches(&req.protocols);
        match group.state {
            GroupState::PreparingRebalance => {
                self.update_member_and_rebalance(group, now, rid, req)
            }
            GroupState::CompletingRebalance if same_metadata => {
                // It missed the JoinGroup answer: send it again.
                let response = self.join_result(group, &member_id);
                self.respond(rid, response);
            }
            GroupState::Stable if same_metadata && !group.is_leader(&member_id) => {
                let mut response = self.join_result(group, &member_id);
                if let Response::JoinGroup(r) = &mut response {
                    r.members.clear();
                }
                self.respond(rid, response);
            }
            // New metadata, or the leader asking for a rebalance (its view of the topics
            // changed).
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.update_member_and_rebalance(group, now, rid, req)
            }
            GroupState::Empty | GroupState::Dead => {
                self.respond(rid, join_error(&member_id, KafkaCode::UNKNOWN_MEMBER_ID))
            }
        }
    }

    /// The successful JoinGroup answer for the current generation.
    fn join_result(&self, group: &Group, member_id: &str) -> Response {
        Response::JoinGroup(JoinGroupResponse {
            error_code: KafkaCode::NONE,
            generation_id: group.generation,
            protocol_type: group.protocol_type.clone(),
            protocol_name: group.protocol_name.clone(),
            leader: group.leader.clone().unwrap_or_default(),
            skip_assignment: false,
            member_id: member_id.to_owned(),
            members: if group.is_leader(member_id) {
                group.current_member_metadata()
            } else {
                Vec::new()
            },
        })
    }

    fn add_member_and_rebalance(
        &mut self,
        group: &mut Group,
        now: i64,
        rid: RequestId,
        member_id: String,
        req: JoinGroupRequest,
    ) {
        let rebalance_timeout_ms = if req.rebalance_timeout_ms > 0 {
            req.rebalance_timeout_ms
        } else {
            req.session_timeout_ms
        };
        let member = Member {
            id: member_id.clone(),
            instance_id: req.group_instance_id,
            client_id: req.client_id,
            client_host: req.client_host,
            rebalance_timeout_ms,
            session_timeout_ms: req.session_timeout_ms,
            protocol_type: req.protocol_type,
            protocols: req.protocols,
            assignment: Vec::new(),
            awaiting_join: Some(rid),
            awaiting_sync: None,
            is_new: true,
            heartbeat_deadline: i64::MAX,
            timer_at: None,
        };
        if group.is(GroupState::PreparingRebalance) && group.generation == 0 {
            group.new_member_added = true;
        }
        group.add(member);
        // A new member cannot heartbeat while its JoinGroup waits, so its join times out
        // instead (if it is still there, it retries).
        let deadline = now.saturating_add(self.config.new_member_join_timeout_ms);
        self.schedule_heartbeat(group, &member_id, deadline);
        self.maybe_prepare_rebalance(group, now);
    }

    fn update_member_and_rebalance(
        &mut self,
        group: &mut Group,
        now: i64,
        rid: RequestId,
        req: JoinGroupRequest,
    ) {
        let rebalance_timeout_ms = if req.rebalance_timeout_ms > 0 {
            req.rebalance_timeout_ms
        } else {
            req.session_timeout_ms
        };
        let superseded = group.update_member(
            &req.member_id,
            req.protocols,
            rebalance_timeout_ms,
            req.session_timeout_ms,
            Some(rid),
        );
        if let Some(old) = superseded {
            // Only the newest JoinGroup of a member gets the rebalance's answer.
            self.respond(
                old,
                join_error(&req.member_id, KafkaCode::REBALANCE_IN_PROGRESS),
            );
        }
        self.maybe_prepare_rebalance(group, now);
    }

    #[allow(clippy::too_many_arguments)]
    fn update_static_member_and_rebalance(
        &mut self,
        group: &mut Group,
        now: i64,
        rid: RequestId,
        req: JoinGroupRequest,
        instance_id: String,
        old_id: String,
        new_id: String,
    ) {
        let previous_leader = group.leader.clone();
        // Read before the new subscription replaces the old one.
        let owes_revocation = group.has_pending_revocation(&old_id);
        let (fenced_join, fenced_sync) =
            group.replace_static_member(&instance_id, &old_id, &new_id);
        if let Some(r) = fenced_join {
            self.respond(r, join_error(&old_id, KafkaCode::FENCED_INSTANCE_ID));
        }
        if let Some(r) = fenced_sync {
            self.respond(r, sync_error(KafkaCode::FENCED_INSTANCE_ID));
        }
        let Some(member) = group.members.get(&new_id) else {
            return;
        };
        let old_protocols = member.protocols.clone();
        let old_rebalance_timeout_ms = member.rebalance_timeout_ms;
        let old_session_timeout_ms = member.session_timeout_ms;
        let deadline = now.saturating_add(i64::from(req.session_timeout_ms));
        self.schedule_heartbeat(group, &new_id, deadline);
        let rebalance_timeout_ms = if req.rebalance_timeout_ms > 0 {
            req.rebalance_timeout_ms
        } else {
            req.session_timeout_ms
        };
        group.update_member(
            &new_id,
            req.protocols,
            rebalance_timeout_ms,
            req.session_timeout_ms,
            Some(rid),
        );
        match group.state {
            GroupState::Stable => {
                // Kafka rebalances here only when the selected protocol would change.
                // This coordinator also rebalances when the old incarnation still owed a revocation (it
                // missed the last join, so the leader held back partitions it claimed and
                // counted on it to revoke and rejoin): the new process owns nothing and
                // would never rejoin, so those partitions would stay without an owner.
                if group.select_protocol() == group.protocol_name && !owes_revocation {
                    // Same protocol: the member takes its old place and assignment; only
                    // the new member id needs persisting.
                    let assignment: BTreeMap<String, Vec<u8>> = group
                        .members
                        .values()
                        .map(|m| (m.id.clone(), m.assignment.clone()))
                        .collect();
                    let record = group_metadata_record(group, &assignment);
                    let purpose = AppendPurpose::StaticRejoin(Box::new(StaticRejoin {
                        group: group.id.clone(),
                        request: rid,
                        instance_id,
                        old_id,
                        new_id,
                        old_protocols,
                        old_rebalance_timeout_ms,
                        old_session_timeout_ms,
                        previous_leader,
                        supports_skip_assignment: req.supports_skip_assignment,
                    }));
                    self.append(group.partition, None, vec![record], purpose);
                } else {
                    self.maybe_prepare_rebalance(group, now);
                }
            }
            // The leader may already be assigning to the old member id: start over.
            GroupState::CompletingRebalance => self.prepare_rebalance(group, now),
            GroupState::PreparingRebalance | GroupState::Empty | GroupState::Dead => {}
        }
    }

    /// The metadata record of a restarted static member is in the log (or not).
    pub(super) fn on_static_rejoin_appended(
        &mut self,
        group: &mut Group,
        rejoin: StaticRejoin,
        result: Result<(), KafkaCode>,
        now: i64,
    ) {
        match result {
            Err(code) => {
                // Undo the replacement, if nothing replaced it since.
                if group.static_members.get(&rejoin.instance_id) == Some(&rejoin.new_id) {
                    group.update_member(
                        &rejoin.new_id,
                        rejoin.old_protocols,
                        rejoin.old_rebalance_timeout_ms,
                        rejoin.old_session_timeout_ms,
                        None,
                    );
                    group.replace_static_member(
                        &rejoin.instance_id,
                        &rejoin.new_id,
                        &rejoin.old_id,
                    );
                    if let Some(session) = group
                        .members
                        .get(&rejoin.old_id)
                        .map(|m| i64::from(m.session_timeout_ms))
                    {
                        self.schedule_heartbeat(group, &rejoin.old_id, now.saturating_add(session));
                    }
                }
                let mut response = JoinGroupResponse::error("", store_group_error(code));
                response.generation_id = group.generation;
                response.protocol_type = group.protocol_type.clone();
                response.protocol_name = group.protocol_name.clone();
                response.leader = rejoin.previous_leader.unwrap_or_default();
                self.respond(rejoin.request, Response::JoinGroup(response));
            }
            Ok(()) => {
                let Some(member) = group.members.get_mut(&rejoin.new_id) else {
                    return;
                };
                // A rebalance may have answered the JoinGroup already.
                if member.awaiting_join != Some(rejoin.request) {
                    return;
                }
                member.awaiting_join = None;
                group.awaiting_join_count = group.awaiting_join_count.saturating_sub(1);
                let is_leader = group.is_leader(&rejoin.new_id);
                let mut response = self.join_result(group, &rejoin.new_id);
                if let Response::JoinGroup(r) = &mut response {
                    if rejoin.supports_skip_assignment {
                        // The leader learns it leads but must not reassign a stable group.
                        r.skip_assignment = is_leader;
                    } else {
                        // Older clients: keep the old leader id so that no member thinks it
                        // must assign.
                        r.members.clear();
                        r.leader = rejoin.previous_leader.unwrap_or_default();
                    }
                }
                self.respond(rejoin.request, response);
            }
        }
    }

    fn sync(&mut self, group: &mut Group, now: i64, rid: RequestId, req: SyncGroupRequest) {
        let error = group
            .validate_current_member(&req.member_id, req.group_instance_id.as_deref())
            .or_else(|| {
                if req.generation_id != group.generation {
                    Some(KafkaCode::ILLEGAL_GENERATION)
                } else if req
                    .protocol_type
                    .as_ref()
                    .is_some_and(|t| group.protocol_type.as_ref() != Some(t))
                    || req
                        .protocol_name
                        .as_ref()
                        .is_some_and(|n| group.protocol_name.as_ref() != Some(n))
                {
                    Some(KafkaCode::INCONSISTENT_GROUP_PROTOCOL)
                } else {
                    None
                }
            });
        if let Some(code) = error {
            return self.respond(rid, sync_error(code));
        }
        match group.state {
            GroupState::Empty | GroupState::Dead => {
                self.respond(rid, sync_error(KafkaCode::UNKNOWN_MEMBER_ID))
            }
            GroupState::PreparingRebalance => {
                self.respond(rid, sync_error(KafkaCode::REBALANCE_IN_PROGRESS))
            }
            GroupState::CompletingRebalance => {
                let Some(member) = group.members.get_mut(&req.member_id) else {
                    return;
                };
                if let Some(old) = member.awaiting_sync.replace(rid) {
                    self.respond(old, sync_error(KafkaCode::REBALANCE_IN_PROGRESS));
                }
                group.pending_sync.remove(&req.member_id);
                if group.is_leader(&req.member_id) {
                    let mut assignment: BTreeMap<String, Vec<u8>> = BTreeMap::new();
                    for a in req.assignments {
                        if group.members.contains_key(&a.member_id) {
                            assignment.insert(a.member_id, a.assignment);
                        }
                    }
                    for id in group.members.keys() {
                        assignment.entry(id.clone()).or_default();
                    }
                    let record = group_metadata_record(group, &assignment);
                    let purpose = AppendPurpose::Assignment {
                        group: group.id.clone(),
                        generation: group.generation,
                        assignment,
                    };
                    self.append(group.partition, None, vec![record], purpose);
                }
            }
            GroupState::Stable => {
                group.pending_sync.remove(&req.member_id);
                let Some(member) = group.members.get(&req.member_id) else {
                    return;
                };
                let response = SyncGroupResponse {
                    error_code: KafkaCode::NONE,
                    protocol_type: group.protocol_type.clone(),
                    protocol_name: group.protocol_name.clone(),
                    assignment: member.assignment.clone(),
                };
                let deadline = now.saturating_add(i64::from(member.session_timeout_ms));
                self.respond(rid, Response::SyncGroup(response));
                self.schedule_heartbeat(group, &req.member_id, deadline);
            }
        }
    }

    /// The leader's assignment is in the log (or not).
    pub(super) fn on_assignment_appended(
        &mut self,
        group: &mut Group,
        generation: i32,
        assignment: BTreeMap<String, Vec<u8>>,
        result: Result<(), KafkaCode>,
        now: i64,
    ) {
        // A member may have joined meanwhile and started another rebalance.
        if !group.is(GroupState::CompletingRebalance) || group.generation != generation {
            return;
        }
        match result {
            Err(code) => {
                self.reset_and_propagate_assignment_error(group, store_group_error(code), now);
                self.maybe_prepare_rebalance(group, now);
            }
            Ok(()) => {
                self.set_and_propagate_assignment(group, assignment, now);
                group.transition_to(GroupState::Stable, now);
            }
        }
    }

    fn heartbeat(&mut self, group: &mut Group, now: i64, req: &HeartbeatRequest) -> KafkaCode {
        if let Some(code) =
            group.validate_current_member(&req.member_id, req.group_instance_id.as_deref())
        {
            return code;
        }
        if req.generation_id != group.generation {
            return KafkaCode::ILLEGAL_GENERATION;
        }
        let code = match group.state {
            GroupState::Empty | GroupState::Dead => return KafkaCode::UNKNOWN_MEMBER_ID,
            GroupState::PreparingRebalance => KafkaCode::REBALANCE_IN_PROGRESS,
            GroupState::CompletingRebalance | GroupState::Stable => KafkaCode::NONE,
        };
        if let Some(member) = group.members.get(&req.member_id) {
            let deadline = now.saturating_add(i64::from(member.session_timeout_ms));
            self.schedule_heartbeat(group, &req.member_id, deadline);
        }
        code
    }

    fn leave(
        &mut self,
        group: &mut Group,
        now: i64,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> KafkaCode {
        if member_id.is_empty() {
            // An admin removing a static member by its instance id.
            let current = instance_id.and_then(|i| group.static_members.get(i).cloned());
            return match current {
                Some(current) => {
                    self.remove_member_and_update_group(group, &current, now);
                    KafkaCode::NONE
                }
                None => KafkaCode::UNKNOWN_MEMBER_ID,
            };
        }
        if group.is_pending_member(member_id) {
            group.pending_members.remove(member_id);
            if group.is(GroupState::PreparingRebalance) {
                self.try_complete_join(group, now);
            }
            return KafkaCode::NONE;
        }
        match group.validate_current_member(member_id, instance_id) {
            Some(code) => code,
            None => {
                self.remove_member_and_update_group(group, member_id, now);
                KafkaCode::NONE
            }
        }
    }

    /// Answers the requests a removed member was waiting on.
    fn answer_removed(&mut self, member: &Member) {
        if let Some(r) = member.awaiting_join {
            self.respond(r, join_error("", KafkaCode::UNKNOWN_MEMBER_ID));
        }
        if let Some(r) = member.awaiting_sync {
            self.respond(r, sync_error(KafkaCode::UNKNOWN_MEMBER_ID));
        }
    }

    /// Answers every request of the group's members with `code` (the group is going away).
    pub(super) fn answer_all(&mut self, group: &mut Group, code: KafkaCode) {
        let mut answers = Vec::new();
        for member in group.members.values_mut() {
            if let Some(r) = member.awaiting_join.take() {
                answers.push((r, join_error(&member.id, code)));
            }
            if let Some(r) = member.awaiting_sync.take() {
                answers.push((r, sync_error(code)));
            }
        }
        group.awaiting_join_count = 0;
        for (r, response) in answers {
            self.respond(r, response);
        }
    }

    fn remove_member_and_update_group(&mut self, group: &mut Group, member_id: &str, now: i64) {
        if let Some(member) = group.remove(member_id) {
            self.answer_removed(&member);
        }
        match group.state {
            GroupState::Dead | GroupState::Empty => {}
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.maybe_prepare_rebalance(group, now)
            }
            GroupState::PreparingRebalance => self.try_complete_join(group, now),
        }
    }

    pub(super) fn schedule_heartbeat(&mut self, group: &mut Group, member_id: &str, deadline: i64) {
        let Some(member) = group.members.get_mut(member_id) else {
            return;
        };
        member.heartbeat_deadline = deadline;
        if member.timer_at.is_none_or(|at| at > deadline) {
            member.timer_at = Some(deadline);
            self.timers.schedule(
                deadline,
                &group.id,
                TimerKind::Heartbeat(member_id.to_owned()),
            );
        }
    }

    fn arm_join(&mut self, group: &mut Group, timer: JoinTimer) {
        group.join_timer = Some(timer);
        self.timers.schedule(timer.at(), &group.id, TimerKind::Join);
    }

    fn maybe_prepare_rebalance(&mut self, group: &mut Group, now: i64) {
        if group.can_rebalance() {
            self.prepare_rebalance(group, now);
        }
    }

    pub(super) fn prepare_rebalance(&mut self, group: &mut Group, now: i64) {
        if group.is(GroupState::CompletingRebalance) {
            self.reset_and_propagate_assignment_error(group, KafkaCode::REBALANCE_IN_PROGRESS, now);
        }
        group.pending_sync.clear();
        group.sync_timer = None;
        let timer = if group.is(GroupState::Empty) {
            let delay = self.config.group_initial_rebalance_delay_ms;
            JoinTimer::Initial {
                at: now.saturating_add(delay),
                remaining: (group.rebalance_timeout_ms() - delay).max(0),
            }
        } else {
            JoinTimer::Regular {
                at: now.saturating_add(group.rebalance_timeout_ms()),
            }
        };
        group.transition_to(GroupState::PreparingRebalance, now);
        self.arm_join(group, timer);
        self.try_complete_join(group, now);
    }

    /// Completes the join phase early when every member rejoined (not during the initial
    /// delay, which always runs its course).
    fn try_complete_join(&mut self, group: &mut Group, now: i64) {
        if group.is(GroupState::PreparingRebalance)
            && matches!(group.join_timer, Some(JoinTimer::Regular { .. }))
            && group.has_all_members_joined()
        {
            self.complete_join(group, now);
        }
    }

    pub(super) fn on_join_timer(&mut self, group: &mut Group, at: i64, now: i64) {
        let Some(timer) = group.join_timer else {
            return;
        };
        if timer.at() != at {
            return;
        }
        if !group.is(GroupState::PreparingRebalance) {
            group.join_timer = None;
            return;
        }
        match timer {
            JoinTimer::Initial { remaining, .. } if group.new_member_added && remaining != 0 => {
                group.new_member_added = false;
                let delay = self.config.group_initial_rebalance_delay_ms.min(remaining);
                self.arm_join(
                    group,
                    JoinTimer::Initial {
                        at: now.saturating_add(delay),
                        remaining: (remaining - delay).max(0),
                    },
                );
            }
            _ => self.complete_join(group, now),
        }
    }

    fn maybe_elect_new_joined_leader(group: &mut Group) -> bool {
        let Some(leader) = group.leader.clone() else {
            return false;
        };
        if group
            .members
            .get(&leader)
            .is_some_and(|m| m.awaiting_join.is_some())
        {
            return true;
        }
        match group.members.values().find(|m| m.awaiting_join.is_some()) {
            Some(joined) => {
                group.leader = Some(joined.id.clone());
                true
            }
            None => false,
        }
    }

    /// The join phase is over (Kafka's `onCompleteJoin`): members that did not rejoin are
    /// dropped (static ones keep their place), and the next generation starts.
    fn complete_join(&mut self, group: &mut Group, now: i64) {
        let not_rejoined: Vec<String> = group
            .members
            .values()
            .filter(|m| m.awaiting_join.is_none() && m.instance_id.is_none())
            .map(|m| m.id.clone())
            .collect();
        for id in not_rejoined {
            if let Some(member) = group.remove(&id) {
                self.answer_removed(&member);
            }
        }
        if !Self::maybe_elect_new_joined_leader(group) && !group.members.is_empty() {
            // Nobody rejoined: wait for session timeouts to clear out the static members.
            let at = now.saturating_add(group.rebalance_timeout_ms());
            self.arm_join(group, JoinTimer::Regular { at });
            return;
        }
        group.join_timer = None;
        group.init_next_generation(now);
        if group.is(GroupState::Empty) {
            // Losing this write is harmless: an old generation with members reloads, and
            // their sessions expire.
            let record = group_metadata_record(group, &BTreeMap::new());
            self.append(group.partition, None, vec![record], AppendPurpose::Nothing);
            return;
        }
        let leader = group.leader.clone().unwrap_or_default();
        let leader_view = group.current_member_metadata();
        let ids: Vec<String> = group.members.keys().cloned().collect();
        for id in ids {
            let Some(member) = group.members.get_mut(&id) else {
                continue;
            };
            let awaiting = member.awaiting_join.take();
            member.is_new = false;
            let deadline = now.saturating_add(i64::from(member.session_timeout_ms));
            if let Some(r) = awaiting {
                group.awaiting_join_count = group.awaiting_join_count.saturating_sub(1);
                let response = JoinGroupResponse {
                    error_code: KafkaCode::NONE,
                    generation_id: group.generation,
                    protocol_type: group.protocol_type.clone(),
                    protocol_name: group.protocol_name.clone(),
                    leader: leader.clone(),
                    skip_assignment: false,
                    member_id: id.clone(),
                    members: if id == leader {
                        leader_view.clone()
                    } else {
                        Vec::new()
                    },
                };
                self.respond(r, Response::JoinGroup(response));
            }
            self.schedule_heartbeat(group, &id, deadline);
            group.pending_sync.insert(id);
        }
        let at = now.saturating_add(group.rebalance_timeout_ms());
        group.sync_timer = Some((at, group.generation));
        self.timers.schedule(at, &group.id, TimerKind::Sync);
    }

    /// Members that never sent SyncGroup after the join are removed (Kafka's
    /// `onExpirePendingSync`).
    pub(super) fn on_sync_timer(&mut self, group: &mut Group, at: i64, now: i64) {
        let Some((sync_at, generation)) = group.sync_timer else {
            return;
        };
        if sync_at != at {
            return;
        }
        group.sync_timer = None;
        if generation != group.generation
            || !matches!(
                group.state,
                GroupState::CompletingRebalance | GroupState::Stable
            )
            || group.pending_sync.is_empty()
        {
            return;
        }
        let late = std::mem::take(&mut group.pending_sync);
        for id in late {
            if let Some(member) = group.remove(&id) {
                self.answer_removed(&member);
            }
        }
        self.prepare_rebalance(group, now);
    }

    pub(super) fn on_heartbeat_timer(
        &mut self,
        group: &mut Group,
        member_id: &str,
        at: i64,
        now: i64,
    ) {
        let Some(member) = group.members.get_mut(member_id) else {
            return;
        };
        if member.timer_at != Some(at) {
            return;
        }
        member.timer_at = None;
        if member.heartbeat_deadline > now {
            let deadline = member.heartbeat_deadline;
            if deadline != i64::MAX {
                member.timer_at = Some(deadline);
                self.timers.schedule(
                    deadline,
                    &group.id,
                    TimerKind::Heartbeat(member_id.to_owned()),
                );
            }
            return;
        }
        // A member waiting in a rebalance needs no heartbeat (unless it is new: then this
        // was its join timeout); the rebalance sets its next deadline.
        if !member.is_new && (member.awaiting_join.is_some() || member.awaiting_sync.is_some()) {
            member.heartbeat_deadline = i64::MAX;
            return;
        }
        self.remove_member_and_update_group(group, member_id, now);
    }

    pub(super) fn on_pending_member_timer(
        &mut self,
        group: &mut Group,
        member_id: &str,
        at: i64,
        now: i64,
    ) {
        if group.pending_members.get(member_id) != Some(&at) {
            return;
        }
        group.pending_members.remove(member_id);
        if group.is(GroupState::PreparingRebalance) {
            self.try_complete_join(group, now);
        }
    }

    fn reset_and_propagate_assignment_error(
        &mut self,
        group: &mut Group,
        code: KafkaCode,
        now: i64,
    ) {
        let mut answered = Vec::new();
        for member in group.members.values_mut() {
            member.assignment.clear();
            if let Some(r) = member.awaiting_sync.take() {
                answered.push((r, member.id.clone(), member.session_timeout_ms));
            }
        }
        for (r, id, session) in answered {
            self.respond(r, sync_error(code));
            self.schedule_heartbeat(group, &id, now.saturating_add(i64::from(session)));
        }
    }

    fn set_and_propagate_assignment(
        &mut self,
        group: &mut Group,
        mut assignment: BTreeMap<String, Vec<u8>>,
        now: i64,
    ) {
        let mut answered = Vec::new();
        for member in group.members.values_mut() {
            member.assignment = assignment.remove(&member.id).unwrap_or_default();
            if let Some(r) = member.awaiting_sync.take() {
                answered.push((
                    r,
                    member.id.clone(),
                    member.session_timeout_ms,
                    member.assignment.clone(),
                ));
            }
        }
        for (r, id, session, assignment) in answered {
            let response = SyncGroupResponse {
                error_code: KafkaCode::NONE,
                protocol_type: group.protocol_type.clone(),
                protocol_name: group.protocol_name.clone(),
                assignment,
            };
            self.respond(r, Response::SyncGroup(response));
            self.schedule_heartbeat(group, &id, now.saturating_add(i64::from(session)));
        }
    }
}

/// The group's metadata record with `assignment` (Kafka writes value version 3).
pub(super) fn group_metadata_record(
    group: &Group,
    assignment: &BTreeMap<String, Vec<u8>>,
) -> OffsetsRecord {
    let protocol = group.protocol_name.as_deref().unwrap_or("");
    let members = group
        .members
        .values()
        .map(|m| MemberMetadata {
            member_id: m.id.clone(),
            group_instance_id: m.instance_id.clone(),
            client_id: m.client_id.clone(),
            client_host: m.client_host.clone(),
            rebalance_timeout: m.rebalance_timeout_ms,
            session_timeout: m.session_timeout_ms,
            subscription: m.metadata(protocol).to_vec(),
            assignment: assignment.get(&m.id).cloned().unwrap_or_default(),
            tagged_fields: Vec::new(),
        })
        .collect();
    OffsetsRecord::GroupMetadata {
        key: GroupMetadataKey::new(group.id.clone()),
        value: Some(GroupMetadataValue {
            version: 3,
            protocol_type: group.protocol_type.clone().unwrap_or_default(),
            generation: group.generation,
            protocol: group.protocol_name.clone(),
            leader: group.leader.clone(),
            current_state_timestamp: group.state_timestamp.unwrap_or(-1),
            members,
            tagged_fields: Vec::new(),
        }),
    }
}
