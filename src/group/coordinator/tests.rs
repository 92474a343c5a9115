//! Unit tests of the coordinator's state machine; the seeded simulation lives in
//! `tests/it/group_coordinator_simulation.rs`.

use super::*;
use crate::group::{
    ConsumerProtocolAssignment, ConsumerProtocolSubscription, OffsetsRecord, TopicPartitions,
};

const SESSION: i32 = 10_000;
const REBALANCE: i32 = 20_000;

/// A coordinator leading the one offsets partition, with a log that takes every append.
struct Harness {
    c: GroupCoordinator,
    now: i64,
    next_request: RequestId,
    log: Vec<LoadEntry>,
    /// Append outcome to use; `None` holds appends back in `held`.
    append_result: Option<Result<(), KafkaCode>>,
    held: Vec<Append>,
    responses: Vec<(RequestId, Response)>,
}

impl Harness {
    fn new() -> Self {
        Self::with_config(GroupCoordinatorConfig {
            offsets_topic_num_partitions: 1,
            ..Default::default()
        })
    }

    fn with_config(config: GroupCoordinatorConfig) -> Self {
        let mut c = GroupCoordinator::new(config, 1);
        c.load_partition(0, 0, Vec::new());
        Harness {
            c,
            now: 0,
            next_request: 0,
            log: Vec::new(),
            append_result: Some(Ok(())),
            held: Vec::new(),
            responses: Vec::new(),
        }
    }

    fn pump(&mut self) {
        while let Some(output) = self.c.poll_output() {
            match output {
                Output::Response { request, response } => self.responses.push((request, response)),
                Output::Append(append) => match self.append_result {
                    Some(result) => self.complete(append, result),
                    None => self.held.push(append),
                },
            }
        }
    }

    fn complete(&mut self, append: Append, result: Result<(), KafkaCode>) {
        if result.is_ok() {
            for record in append.records {
                self.log.push(LoadEntry::Record {
                    record,
                    producer_id: append.producer.map(|p| p.producer_id),
                });
            }
        }
        self.c.append_completed(self.now, append.id, result);
    }

    fn release_held(&mut self, result: Result<(), KafkaCode>) {
        for append in std::mem::take(&mut self.held) {
            self.complete(append, result);
        }
        self.pump();
    }

    fn send(&mut self, request: Request) -> RequestId {
        self.next_request += 1;
        let id = self.next_request;
        self.c.handle(self.now, id, request);
        self.pump();
        id
    }

    fn take(&mut self, id: RequestId) -> Option<Response> {
        let i = self.responses.iter().position(|(r, _)| *r == id)?;
        Some(self.responses.remove(i).1)
    }

    fn join_response(&mut self, id: RequestId) -> JoinGroupResponse {
        match self.take(id) {
            Some(Response::JoinGroup(r)) => r,
            other => panic!("no JoinGroup answer for {id}: {other:?}"),
        }
    }

    fn sync_response(&mut self, id: RequestId) -> SyncGroupResponse {
        match self.take(id) {
            Some(Response::SyncGroup(r)) => r,
            other => panic!("no SyncGroup answer for {id}: {other:?}"),
        }
    }

    /// Advances time to `to`, firing every deadline on the way.
    fn advance_to(&mut self, to: i64) {
        while let Some(at) = self.c.next_deadline() {
            if at > to {
                break;
            }
            self.now = self.now.max(at);
            self.c.tick(self.now);
            self.pump();
        }
        self.now = to;
        self.c.tick(to);
        self.pump();
    }

    fn heartbeat(&mut self, member_id: &str, generation: i32) -> KafkaCode {
        let id = self.send(Request::Heartbeat(HeartbeatRequest {
            group_id: "g".into(),
            generation_id: generation,
            member_id: member_id.into(),
            group_instance_id: None,
        }));
        match self.take(id) {
            Some(Response::Heartbeat(r)) => r.error_code,
            other => panic!("no Heartbeat answer: {other:?}"),
        }
    }

    fn restart(&mut self, seed: u64) {
        let config = self.c.config().clone();
        self.c = GroupCoordinator::new(config, seed);
        self.c.begin_loading(0);
        self.c.load_partition(self.now, 0, self.log.clone());
        self.responses.clear();
    }
}

fn subscription(topics: &[&str]) -> Vec<u8> {
    ConsumerProtocolSubscription::new(topics.iter().map(|t| t.to_string()).collect())
        .encode()
        .unwrap()
}

fn join_req(member_id: &str, instance: Option<&str>) -> Request {
    Request::JoinGroup(JoinGroupRequest {
        group_id: "g".into(),
        session_timeout_ms: SESSION,
        rebalance_timeout_ms: REBALANCE,
        member_id: member_id.into(),
        group_instance_id: instance.map(str::to_owned),
        protocol_type: "consumer".into(),
        protocols: vec![JoinGroupProtocol {
            name: "range".into(),
            metadata: subscription(&["t"]),
        }],
        client_id: "client".into(),
        client_host: "/127.0.0.1".into(),
        require_known_member_id: true,
        supports_skip_assignment: true,
        reason: None,
    })
}

fn sync_req(member_id: &str, generation: i32, assignments: Vec<SyncGroupAssignment>) -> Request {
    Request::SyncGroup(SyncGroupRequest {
        group_id: "g".into(),
        generation_id: generation,
        member_id: member_id.into(),
        group_instance_id: None,
        protocol_type: Some("consumer".into()),
        protocol_name: Some("range".into()),
        assignments,
    })
}

fn assignment(partitions: Vec<i32>) -> Vec<u8> {
    ConsumerProtocolAssignment::new(vec![TopicPartitions::new("t", partitions)])
        .encode()
        .unwrap()
}

/// Joins `n` dynamic members (MEMBER_ID_REQUIRED round trip included) and completes the
/// first rebalance; returns their ids (leader first) and the generation.
fn form_group(h: &mut Harness, n: usize) -> (Vec<String>, i32) {
    let mut ids = Vec::new();
    let mut joins = Vec::new();
    for _ in 0..n {
        let first = h.send(join_req("", None));
        let r = h.join_response(first);
        assert_eq!(r.error_code, KafkaCode::MEMBER_ID_REQUIRED);
        joins.push(h.send(join_req(&r.member_id, None)));
        ids.push(r.member_id);
    }
    // Each new member extends the initial delay (up to the rebalance timeout).
    while !joins
        .iter()
        .all(|j| h.responses.iter().any(|(r, _)| r == j))
    {
        h.advance_to(h.now + 3_000);
    }
    let mut leader = String::new();
    let mut generation = 0;
    for j in joins {
        let r = h.join_response(j);
        assert_eq!(r.error_code, KafkaCode::NONE);
        leader = r.leader.clone();
        generation = r.generation_id;
        if r.member_id == r.leader {
            assert_eq!(r.members.len(), n);
        } else {
            assert!(r.members.is_empty());
        }
    }
    ids.sort_by_key(|id| *id != leader);
    let assignments: Vec<SyncGroupAssignment> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| SyncGroupAssignment {
            member_id: id.clone(),
            assignment: assignment(vec![i as i32]),
        })
        .collect();
    let syncs: Vec<RequestId> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            h.send(sync_req(
                id,
                generation,
                if i == 0 {
                    assignments.clone()
                } else {
                    Vec::new()
                },
            ))
        })
        .collect();
    for (i, s) in syncs.into_iter().enumerate() {
        let r = h.sync_response(s);
        assert_eq!(r.error_code, KafkaCode::NONE);
        assert_eq!(r.assignment, assignment(vec![i as i32]));
    }
    assert_eq!(h.c.group_state("g"), Some(GroupState::Stable));
    (ids, generation)
}

#[test]
fn groups_map_to_offsets_partitions_by_kafkas_rule() {
    let c = GroupCoordinator::new(GroupCoordinatorConfig::default(), 0);
    // Java: "payments".hashCode() == 1382682413; 1382682413 % 50 == 13.
    assert_eq!(c.partition_for("payments"), 13);
    // "polygenelubricants".hashCode() is i32::MIN, which Kafka maps to partition 0.
    assert_eq!(c.partition_for("polygenelubricants"), 0);
}

#[test]
fn three_members_form_a_stable_group() {
    let mut h = Harness::new();
    let (ids, generation) = form_group(&mut h, 3);
    assert_eq!(generation, 1);
    for id in &ids {
        assert_eq!(h.heartbeat(id, generation), KafkaCode::NONE);
    }
    assert_eq!(
        h.heartbeat(&ids[0], generation + 1),
        KafkaCode::ILLEGAL_GENERATION
    );
    assert_eq!(
        h.heartbeat("never-issued", generation),
        KafkaCode::UNKNOWN_MEMBER_ID
    );
}

#[test]
fn a_member_that_stops_heartbeating_is_removed_and_the_rest_rebalance() {
    let mut h = Harness::new();
    let (ids, generation) = form_group(&mut h, 2);
    // Only the first member keeps heartbeating.
    for step in 1..=3 {
        h.advance_to(i64::from(SESSION) / 2 * step + 3_000);
        let code = h.heartbeat(&ids[0], generation);
        if code == KafkaCode::REBALANCE_IN_PROGRESS {
            break;
        }
    }
    assert_eq!(h.c.group_state("g"), Some(GroupState::PreparingRebalance));
    assert_eq!(h.c.group_members("g"), vec![ids[0].clone()]);
    let j = h.send(join_req(&ids[0], None));
    // Everyone left rejoined: the join completes at once.
    let r = h.join_response(j);
    assert_eq!(
        (r.error_code, r.generation_id),
        (KafkaCode::NONE, generation + 1)
    );
    assert_eq!(r.leader, ids[0]);
}

#[test]
fn a_rebalance_drops_dynamic_members_that_do_not_rejoin() {
    let mut h = Harness::new();
    let (ids, generation) = form_group(&mut h, 3);
    // The leader rejoins: a rebalance starts; only one other member follows it.
    let j0 = h.send(join_req(&ids[0], None));
    let j1 = h.send(join_req(&ids[1], None));
    assert_eq!(
        h.heartbeat(&ids[2], generation),
        KafkaCode::REBALANCE_IN_PROGRESS
    );
    // Its session runs out before the rebalance timeout: the join completes without it.
    h.advance_to(h.now + i64::from(SESSION));
    assert_eq!(h.join_response(j0).generation_id, generation + 1);
    assert_eq!(h.join_response(j1).generation_id, generation + 1);
    let mut expected = vec![ids[0].clone(), ids[1].clone()];
    expected.sort();
    assert_eq!(h.c.group_members("g"), expected);
    // The dropped member finds out on its next heartbeat.
    assert_eq!(
        h.heartbeat(&ids[2], generation),
        KafkaCode::UNKNOWN_MEMBER_ID
    );
}

#[test]
fn a_member_that_never_syncs_is_removed() {
    let mut h = Harness::new();
    let first = h.send(join_req("", None));
    let id = h.join_response(first).member_id;
    let j = h.send(join_req(&id, None));
    h.advance_to(3_000);
    assert_eq!(h.join_response(j).generation_id, 1);
    assert_eq!(h.c.group_state("g"), Some(GroupState::CompletingRebalance));
    h.advance_to(3_000 + i64::from(REBALANCE));
    assert_eq!(h.c.group_state("g"), Some(GroupState::Empty));
    assert_eq!(h.c.group_generation("g"), Some(2));
}

#[test]
fn static_member_restart_gets_its_assignment_back_without_a_rebalance() {
    let mut h = Harness::new();
    let j = h.send(join_req("", Some("instance-a")));
    h.advance_to(3_000);
    let r = h.join_response(j);
    assert_eq!((r.error_code, r.generation_id), (KafkaCode::NONE, 1));
    let old_id = r.member_id.clone();
    assert!(old_id.starts_with("instance-a-"));
    let s = h.send(sync_req(
        &old_id,
        1,
        vec![SyncGroupAssignment {
            member_id: old_id.clone(),
            assignment: assignment(vec![0, 1]),
        }],
    ));
    assert_eq!(h.sync_response(s).assignment, assignment(vec![0, 1]));

    // The process restarts: it knows its instance id, not its member id.
    let j = h.send(join_req("", Some("instance-a")));
    let r = h.join_response(j);
    assert_eq!((r.error_code, r.generation_id), (KafkaCode::NONE, 1));
    assert_ne!(r.member_id, old_id);
    assert!(
        r.skip_assignment,
        "the static leader must not reassign a stable group"
    );
    assert_eq!(h.c.group_state("g"), Some(GroupState::Stable));
    let mut sync = sync_req(&r.member_id, 1, Vec::new());
    if let Request::SyncGroup(s) = &mut sync {
        s.group_instance_id = Some("instance-a".into());
    }
    let s = h.send(sync);
    assert_eq!(h.sync_response(s).assignment, assignment(vec![0, 1]));

    // The old incarnation is fenced.
    let hb = h.send(Request::Heartbeat(HeartbeatRequest {
        group_id: "g".into(),
        generation_id: 1,
        member_id: old_id,
        group_instance_id: Some("instance-a".into()),
    }));
    assert_eq!(
        h.take(hb),
        Some(Response::Heartbeat(HeartbeatResponse {
            error_code: KafkaCode::FENCED_INSTANCE_ID
        }))
    );
}

/// Kafka gives a restarted static member its old place without a rebalance; when the old
/// incarnation still owed a revocation (its last subscription claims partitions its
/// assignment does not give it, so the leader held them back), this coordinator
/// rebalances instead, or those partitions would stay without an owner.
#[test]
fn static_member_owing_a_revocation_rebalances_when_it_restarts() {
    let mut h = Harness::new();
    let mut join = join_req("", Some("instance-a"));
    if let Request::JoinGroup(j) = &mut join {
        let mut claim = ConsumerProtocolSubscription::new(vec!["t".into()]);
        claim.owned_partitions = vec![TopicPartitions::new("t", vec![0, 1])];
        claim.generation_id = 7;
        j.protocols[0].metadata = claim.encode().unwrap();
    }
    let j = h.send(join);
    h.advance_to(3_000);
    let r = h.join_response(j);
    assert_eq!((r.error_code, r.generation_id), (KafkaCode::NONE, 1));
    let old_id = r.member_id.clone();
    // The leader keeps partition 1 back: the member claims it and must revoke it first.
    let s = h.send(sync_req(
        &old_id,
        1,
        vec![SyncGroupAssignment {
            member_id: old_id.clone(),
            assignment: assignment(vec![0]),
        }],
    ));
    assert_eq!(h.sync_response(s).assignment, assignment(vec![0]));
    assert_eq!(h.c.group_state("g"), Some(GroupState::Stable));

    // The process restarts before it revoked and rejoined: a new generation starts.
    let j = h.send(join_req("", Some("instance-a")));
    let r = h.join_response(j);
    assert_eq!((r.error_code, r.generation_id), (KafkaCode::NONE, 2));
    assert_ne!(r.member_id, old_id);
    assert!(!r.skip_assignment);
    assert_eq!(r.leader, r.member_id);
    assert_eq!(h.c.group_state("g"), Some(GroupState::CompletingRebalance));

    // The old incarnation is fenced all the same.
    let hb = h.send(Request::Heartbeat(HeartbeatRequest {
        group_id: "g".into(),
        generation_id: 1,
        member_id: old_id,
        group_instance_id: Some("instance-a".into()),
    }));
    assert_eq!(
        h.take(hb),
        Some(Response::Heartbeat(HeartbeatResponse {
            error_code: KafkaCode::FENCED_INSTANCE_ID
        }))
    );
}

#[test]
fn a_restarted_coordinator_resumes_the_group_from_its_records() {
    let mut h = Harness::new();
    let (ids, generation) = form_group(&mut h, 3);
    let c = h.send(Request::OffsetCommit(OffsetCommitRequest {
        group_id: "g".into(),
        generation_id: generation,
        member_id: ids[1].clone(),
        group_instance_id: None,
        retention_time_ms: -1,
        partitions: vec![OffsetCommitPartition {
            topic: "t".into(),
            partition: 1,
            committed_offset: 42,
            committed_leader_epoch: 3,
            committed_metadata: Some("m".into()),
        }],
    }));
    assert!(
        matches!(h.take(c), Some(Response::OffsetCommit(r)) if r.partitions[0].error_code == KafkaCode::NONE)
    );
    h.restart(99);
    assert_eq!(h.c.group_state("g"), Some(GroupState::Stable));
    assert_eq!(h.c.group_generation("g"), Some(generation));
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(h.c.group_members("g"), sorted);
    for id in &ids {
        assert_eq!(h.heartbeat(id, generation), KafkaCode::NONE);
    }
    let s = h.send(sync_req(&ids[2], generation, Vec::new()));
    assert_eq!(h.sync_response(s).assignment, assignment(vec![2]));
    let f = h.send(Request::OffsetFetch(OffsetFetchRequest {
        group_id: "g".into(),
        partitions: Some(vec![TopicPartition::new("t", 1)]),
        require_stable: true,
    }));
    let Some(Response::OffsetFetch(r)) = h.take(f) else {
        panic!()
    };
    assert_eq!(
        (
            r.partitions[0].committed_offset,
            r.partitions[0].committed_leader_epoch
        ),
        (42, 3)
    );
}

#[test]
fn requests_while_loading_or_for_other_partitions() {
    let mut h = Harness::with_config(GroupCoordinatorConfig {
        offsets_topic_num_partitions: 2,
        ..Default::default()
    });
    // Partition 0 is loaded; "payments" maps to partition 1 of 2.
    assert_eq!(h.c.partition_for("payments"), 1);
    let mut join = join_req("", None);
    if let Request::JoinGroup(j) = &mut join {
        j.group_id = "payments".into();
    }
    let j = h.send(join.clone());
    assert_eq!(h.join_response(j).error_code, KafkaCode::NOT_COORDINATOR);
    h.c.begin_loading(1);
    let j = h.send(join.clone());
    assert_eq!(
        h.join_response(j).error_code,
        KafkaCode::COORDINATOR_LOAD_IN_PROGRESS
    );
    let hb = h.send(Request::Heartbeat(HeartbeatRequest {
        group_id: "payments".into(),
        generation_id: 1,
        member_id: "m".into(),
        group_instance_id: None,
    }));
    assert_eq!(
        h.take(hb),
        Some(Response::Heartbeat(HeartbeatResponse {
            error_code: KafkaCode::NONE
        }))
    );
    let s = h.send(Request::SyncGroup(SyncGroupRequest {
        group_id: "payments".into(),
        generation_id: 1,
        member_id: "m".into(),
        group_instance_id: None,
        protocol_type: None,
        protocol_name: None,
        assignments: Vec::new(),
    }));
    assert_eq!(
        h.sync_response(s).error_code,
        KafkaCode::REBALANCE_IN_PROGRESS
    );
    h.c.load_partition(h.now, 1, Vec::new());
    let j = h.send(join);
    assert_eq!(h.join_response(j).error_code, KafkaCode::MEMBER_ID_REQUIRED);
}

#[test]
fn bad_input_gets_kafkas_codes_and_changes_nothing() {
    let mut h = Harness::new();
    let (ids, generation) = form_group(&mut h, 2);
    let before = (
        h.c.group_members("g"),
        h.c.group_generation("g"),
        h.c.group_state("g"),
    );

    // Invalid session timeout.
    let mut bad = join_req(&ids[0], None);
    if let Request::JoinGroup(j) = &mut bad {
        j.session_timeout_ms = 1;
    }
    let j = h.send(bad);
    assert_eq!(
        h.join_response(j).error_code,
        KafkaCode::INVALID_SESSION_TIMEOUT
    );
    // A member id never issued, in a known and in an unknown group.
    let j = h.send(join_req("client-never-issued", None));
    assert_eq!(h.join_response(j).error_code, KafkaCode::UNKNOWN_MEMBER_ID);
    let mut unknown_group = join_req("client-never-issued", None);
    if let Request::JoinGroup(j) = &mut unknown_group {
        j.group_id = "no-such-group".into();
    }
    let j = h.send(unknown_group);
    assert_eq!(h.join_response(j).error_code, KafkaCode::UNKNOWN_MEMBER_ID);
    // Hundreds of protocols, none of which the group speaks.
    let mut many = join_req("", None);
    if let Request::JoinGroup(j) = &mut many {
        j.protocols = (0..500)
            .map(|i| JoinGroupProtocol {
                name: format!("assignor-{i}"),
                metadata: vec![0xff; 64],
            })
            .collect();
        j.require_known_member_id = false;
    }
    let j = h.send(many);
    assert_eq!(
        h.join_response(j).error_code,
        KafkaCode::INCONSISTENT_GROUP_PROTOCOL
    );
    // An empty group id.
    let hb = h.send(Request::Heartbeat(HeartbeatRequest {
        group_id: String::new(),
        generation_id: generation,
        member_id: ids[0].clone(),
        group_instance_id: None,
    }));
    assert_eq!(
        h.take(hb),
        Some(Response::Heartbeat(HeartbeatResponse {
            error_code: KafkaCode::INVALID_GROUP_ID
        }))
    );
    // SyncGroup and LeaveGroup with unknown ids.
    let s = h.send(sync_req("never-issued", generation, Vec::new()));
    assert_eq!(h.sync_response(s).error_code, KafkaCode::UNKNOWN_MEMBER_ID);
    let l = h.send(Request::LeaveGroup(LeaveGroupRequest {
        group_id: "g".into(),
        members: vec![MemberIdentity {
            member_id: "never-issued".into(),
            group_instance_id: None,
            reason: None,
        }],
    }));
    let Some(Response::LeaveGroup(r)) = h.take(l) else {
        panic!()
    };
    assert_eq!(r.members[0].error_code, KafkaCode::UNKNOWN_MEMBER_ID);
    // A commit from a generation that never was.
    let c = h.send(Request::OffsetCommit(OffsetCommitRequest {
        group_id: "no-such-group".into(),
        generation_id: 7,
        member_id: "x".into(),
        group_instance_id: None,
        retention_time_ms: -1,
        partitions: vec![OffsetCommitPartition {
            topic: "t".into(),
            partition: 0,
            committed_offset: 1,
            committed_leader_epoch: -1,
            committed_metadata: Some("x".repeat(10_000)),
        }],
    }));
    let Some(Response::OffsetCommit(r)) = h.take(c) else {
        panic!()
    };
    assert_eq!(r.partitions[0].error_code, KafkaCode::ILLEGAL_GENERATION);
    // Deleting a group with members; deleting one that does not exist.
    let d = h.send(Request::DeleteGroups(DeleteGroupsRequest {
        groups_names: vec!["g".into(), "no-such-group".into()],
    }));
    let Some(Response::DeleteGroups(r)) = h.take(d) else {
        panic!()
    };
    assert_eq!(r.results[0].error_code, KafkaCode::NON_EMPTY_GROUP);
    assert_eq!(r.results[1].error_code, KafkaCode::GROUP_ID_NOT_FOUND);

    let after = (
        h.c.group_members("g"),
        h.c.group_generation("g"),
        h.c.group_state("g"),
    );
    assert_eq!(before, after);
    assert_eq!(h.c.group_state("no-such-group"), None);
    let l = h.send(Request::ListGroups(ListGroupsRequest::default()));
    let Some(Response::ListGroups(r)) = h.take(l) else {
        panic!()
    };
    assert_eq!(r.groups.len(), 1);
    assert!(h
        .log
        .iter()
        .all(|e| matches!(e, LoadEntry::Record { record, .. } if record.group() == "g")));
}

#[test]
fn group_max_size_and_session_timeout_limits() {
    let mut h = Harness::with_config(GroupCoordinatorConfig {
        offsets_topic_num_partitions: 1,
        group_max_size: 2,
        ..Default::default()
    });
    let (ids, _) = form_group(&mut h, 2);
    let j = h.send(join_req("", None));
    assert_eq!(
        h.join_response(j).error_code,
        KafkaCode::GROUP_MAX_SIZE_REACHED
    );
    assert_eq!(h.c.group_state("g"), Some(GroupState::Stable));
    // Members already in the group still rejoin (the leader's rejoin starts a rebalance).
    let j = h.send(join_req(&ids[0], None));
    assert!(h.take(j).is_none(), "waits for the rebalance");
    assert_eq!(h.c.group_state("g"), Some(GroupState::PreparingRebalance));
}

#[test]
fn offsets_of_an_empty_group_expire_after_the_retention_with_tombstones() {
    let mut h = Harness::new();
    let (ids, generation) = form_group(&mut h, 1);
    let c = h.send(Request::OffsetCommit(OffsetCommitRequest {
        group_id: "g".into(),
        generation_id: generation,
        member_id: ids[0].clone(),
        group_instance_id: None,
        retention_time_ms: -1,
        partitions: vec![OffsetCommitPartition {
            topic: "t".into(),
            partition: 0,
            committed_offset: 10,
            committed_leader_epoch: -1,
            committed_metadata: None,
        }],
    }));
    assert!(h.take(c).is_some());
    let l = h.send(Request::LeaveGroup(LeaveGroupRequest {
        group_id: "g".into(),
        members: vec![MemberIdentity {
            member_id: ids[0].clone(),
            group_instance_id: None,
            reason: None,
        }],
    }));
    assert!(h.take(l).is_some());
    assert_eq!(h.c.group_state("g"), Some(GroupState::Empty));
    let emptied = h.now;
    let retention = h.c.config().offsets_retention_ms;
    h.advance_to(emptied + retention - 1);
    assert!(h
        .c
        .committed_offset("g", &TopicPartition::new("t", 0))
        .is_some());
    h.advance_to(emptied + retention + h.c.config().offsets_retention_check_interval_ms);
    assert_eq!(h.c.group_state("g"), None);
    let tombstones: Vec<&OffsetsRecord> = h
        .log
        .iter()
        .rev()
        .take(2)
        .filter_map(|e| match e {
            LoadEntry::Record { record, .. } => Some(record),
            LoadEntry::Marker { .. } => None,
        })
        .collect();
    assert!(matches!(
        tombstones[0],
        OffsetsRecord::GroupMetadata { value: None, .. }
    ));
    assert!(matches!(
        tombstones[1],
        OffsetsRecord::OffsetCommit { value: None, .. }
    ));
    h.restart(5);
    assert_eq!(h.c.group_state("g"), None);
}

#[test]
fn transactional_offsets_wait_for_the_commit_marker() {
    let mut h = Harness::new();
    let commit = |h: &mut Harness, pid: i64, offset: i64| {
        h.send(Request::TxnOffsetCommit(TxnOffsetCommitRequest {
            transactional_id: "tx".into(),
            group_id: "g".into(),
            producer_id: pid,
            producer_epoch: 0,
            generation_id: -1,
            member_id: String::new(),
            group_instance_id: None,
            partitions: vec![OffsetCommitPartition {
                topic: "t".into(),
                partition: 0,
                committed_offset: offset,
                committed_leader_epoch: -1,
                committed_metadata: None,
            }],
        }))
    };
    let tp = TopicPartition::new("t", 0);
    let c = commit(&mut h, 7, 100);
    assert!(
        matches!(h.take(c), Some(Response::TxnOffsetCommit(r)) if r.partitions[0].error_code == KafkaCode::NONE)
    );
    assert!(h.c.committed_offset("g", &tp).is_none());
    let f = h.send(Request::OffsetFetch(OffsetFetchRequest {
        group_id: "g".into(),
        partitions: Some(vec![tp.clone()]),
        require_stable: true,
    }));
    let Some(Response::OffsetFetch(r)) = h.take(f) else {
        panic!()
    };
    assert_eq!(
        r.partitions[0].error_code,
        KafkaCode::UNSTABLE_OFFSET_COMMIT
    );
    h.c.complete_transaction(7, &[0], true);
    h.log.push(LoadEntry::Marker {
        producer_id: 7,
        commit: true,
    });
    assert_eq!(h.c.committed_offset("g", &tp).map(|o| o.offset), Some(100));
    let c = commit(&mut h, 8, 200);
    assert!(h.take(c).is_some());
    h.c.complete_transaction(8, &[0], false);
    h.log.push(LoadEntry::Marker {
        producer_id: 8,
        commit: false,
    });
    assert_eq!(h.c.committed_offset("g", &tp).map(|o| o.offset), Some(100));
    // A crash between the offsets batch and the marker: still pending after the reload.
    let c = commit(&mut h, 9, 300);
    assert!(h.take(c).is_some());
    h.restart(3);
    assert_eq!(h.c.committed_offset("g", &tp).map(|o| o.offset), Some(100));
    h.c.complete_transaction(9, &[0], true);
    assert_eq!(h.c.committed_offset("g", &tp).map(|o| o.offset), Some(300));
}

#[test]
fn a_failed_assignment_write_sends_members_back_to_rejoin() {
    let mut h = Harness::new();
    let first = h.send(join_req("", None));
    let id = h.join_response(first).member_id;
    let j = h.send(join_req(&id, None));
    h.advance_to(3_000);
    assert_eq!(h.join_response(j).generation_id, 1);
    h.append_result = None;
    let s = h.send(sync_req(
        &id,
        1,
        vec![SyncGroupAssignment {
            member_id: id.clone(),
            assignment: vec![1],
        }],
    ));
    assert!(
        h.take(s).is_none(),
        "the leader's SyncGroup waits for its record"
    );
    h.release_held(Err(KafkaCode::NOT_LEADER_OR_FOLLOWER));
    assert_eq!(h.sync_response(s).error_code, KafkaCode::NOT_COORDINATOR);
    assert_eq!(h.c.group_state("g"), Some(GroupState::PreparingRebalance));
}

#[test]
fn describe_list_delete_and_offset_delete() {
    let mut h = Harness::new();
    let (ids, generation) = form_group(&mut h, 2);
    let d = h.send(Request::DescribeGroups(DescribeGroupsRequest {
        groups: vec!["g".into(), "other".into()],
        report_unknown_groups: false,
    }));
    let Some(Response::DescribeGroups(r)) = h.take(d) else {
        panic!()
    };
    assert_eq!(r.groups[0].group_state, "Stable");
    assert_eq!(r.groups[0].protocol_data, "range");
    assert_eq!(r.groups[0].members.len(), 2);
    assert_eq!(r.groups[1].group_state, "Dead");
    assert_eq!(r.groups[1].error_code, KafkaCode::NONE);
    // DescribeGroups v6 (KIP-1043): an unknown group is GROUP_ID_NOT_FOUND.
    let d = h.send(Request::DescribeGroups(DescribeGroupsRequest {
        groups: vec!["g".into(), "other".into()],
        report_unknown_groups: true,
    }));
    let Some(Response::DescribeGroups(r)) = h.take(d) else {
        panic!()
    };
    assert_eq!(r.groups[0].error_code, KafkaCode::NONE);
    assert_eq!(r.groups[1].error_code, KafkaCode::GROUP_ID_NOT_FOUND);
    assert_eq!(
        r.groups[1].error_message.as_deref(),
        Some("Group other not found.")
    );
    let commit = h.send(Request::OffsetCommit(OffsetCommitRequest {
        group_id: "g".into(),
        generation_id: generation,
        member_id: ids[0].clone(),
        group_instance_id: None,
        retention_time_ms: -1,
        partitions: vec![
            OffsetCommitPartition {
                topic: "t".into(),
                partition: 0,
                committed_offset: 5,
                committed_leader_epoch: -1,
                committed_metadata: None,
            },
            OffsetCommitPartition {
                topic: "old".into(),
                partition: 0,
                committed_offset: 5,
                committed_leader_epoch: -1,
                committed_metadata: None,
            },
        ],
    }));
    assert!(h.take(commit).is_some());
    let od = h.send(Request::OffsetDelete(OffsetDeleteRequest {
        group_id: "g".into(),
        partitions: vec![TopicPartition::new("t", 0), TopicPartition::new("old", 0)],
    }));
    let Some(Response::OffsetDelete(r)) = h.take(od) else {
        panic!()
    };
    assert_eq!(
        r.partitions[0].error_code,
        KafkaCode::GROUP_SUBSCRIBED_TO_TOPIC
    );
    assert_eq!(r.partitions[1].error_code, KafkaCode::NONE);
    assert!(h
        .c
        .committed_offset("g", &TopicPartition::new("old", 0))
        .is_none());
    for id in &ids {
        let l = h.send(Request::LeaveGroup(LeaveGroupRequest {
            group_id: "g".into(),
            members: vec![MemberIdentity {
                member_id: id.clone(),
                group_instance_id: None,
                reason: None,
            }],
        }));
        assert!(h.take(l).is_some());
    }
    let l = h.send(Request::ListGroups(ListGroupsRequest {
        states_filter: vec!["empty".into()],
        types_filter: Vec::new(),
    }));
    let Some(Response::ListGroups(r)) = h.take(l) else {
        panic!()
    };
    assert_eq!(r.groups.len(), 1);
    assert_eq!(r.groups[0].group_type, "classic");
    // ListGroups v5's type filter: every group here is classic.
    for (types, listed) in [(vec!["Classic"], 1), (vec!["consumer", "share"], 0)] {
        let l = h.send(Request::ListGroups(ListGroupsRequest {
            states_filter: Vec::new(),
            types_filter: types.into_iter().map(String::from).collect(),
        }));
        let Some(Response::ListGroups(r)) = h.take(l) else {
            panic!()
        };
        assert_eq!(r.groups.len(), listed);
    }
    // OffsetFetch v8 with two groups: one answered per group, in order.
    let f = h.send(Request::OffsetFetchGroups(OffsetFetchGroupsRequest {
        groups: vec![
            OffsetFetchRequest {
                group_id: "nobody".into(),
                partitions: None,
                require_stable: true,
            },
            OffsetFetchRequest {
                group_id: "g".into(),
                partitions: None,
                require_stable: true,
            },
        ],
    }));
    let Some(Response::OffsetFetchGroups(r)) = h.take(f) else {
        panic!()
    };
    let ids: Vec<&str> = r.groups.iter().map(|g| g.group_id.as_str()).collect();
    assert_eq!(ids, ["nobody", "g"]);
    assert!(r.groups[0].response.partitions.is_empty());
    assert_eq!(r.groups[1].response.error_code, KafkaCode::NONE);
    assert!(!r.groups[1].response.partitions.is_empty());
    let d = h.send(Request::DeleteGroups(DeleteGroupsRequest {
        groups_names: vec!["g".into()],
    }));
    let Some(Response::DeleteGroups(r)) = h.take(d) else {
        panic!()
    };
    assert_eq!(r.results[0].error_code, KafkaCode::NONE);
    assert_eq!(h.c.group_state("g"), None);
    h.restart(11);
    assert_eq!(h.c.group_state("g"), None);
}

/// The crate's splitmix64, for the random-request test.
use crate::rng::Rng;

/// Random requests, many of them nonsense (unknown groups and members, wild generations,
/// hundreds of protocols, oversized metadata), with appends failing now and then: the
/// coordinator never panics, and every request is answered once time has run on.
#[test]
fn random_requests_never_panic_and_all_get_answers() {
    for seed in 0..20 {
        let mut rng = Rng::new(seed);
        let mut h = Harness::new();
        let mut issued: Vec<String> = vec![String::new()];
        let mut sent = Vec::new();
        for _ in 0..400 {
            let group = ["g", "h", "", "g2"][rng.below(4)].to_string();
            let member = match rng.below(3) {
                0 => issued[rng.below(issued.len())].clone(),
                1 => String::new(),
                _ => format!("junk-{}", rng.below(5)),
            };
            let instance = (rng.below(4) == 0).then(|| format!("i{}", rng.below(3)));
            let generation = [-1, 0, 1, 2, 3, i32::MAX, i32::MIN][rng.below(7)];
            let protocols = (0..[1, 1, 2, 0, 300][rng.below(5)])
                .map(|i| JoinGroupProtocol {
                    name: ["range", "roundrobin", "x"][(i + rng.below(3)) % 3].into(),
                    metadata: vec![rng.below(256) as u8; rng.below(40)],
                })
                .collect();
            let partitions = vec![OffsetCommitPartition {
                topic: "t".into(),
                partition: rng.below(4) as i32 - 1,
                committed_offset: rng.next_u64() as i64,
                committed_leader_epoch: -1,
                committed_metadata: Some("m".repeat([0, 10, 5000][rng.below(3)])),
            }];
            let request = match rng.below(11) {
                0 | 1 => Request::JoinGroup(JoinGroupRequest {
                    group_id: group,
                    session_timeout_ms: [10_000, 1, 6_000, i32::MAX][rng.below(4)],
                    rebalance_timeout_ms: [20_000, -1, 0, i32::MAX][rng.below(4)],
                    member_id: member,
                    group_instance_id: instance,
                    protocol_type: ["consumer", "", "connect"][rng.below(3)].into(),
                    protocols,
                    client_id: "c".into(),
                    client_host: "h".into(),
                    require_known_member_id: rng.below(2) == 0,
                    supports_skip_assignment: rng.below(2) == 0,
                    reason: None,
                }),
                2 => Request::SyncGroup(SyncGroupRequest {
                    group_id: group,
                    generation_id: generation,
                    member_id: member.clone(),
                    group_instance_id: instance,
                    protocol_type: None,
                    protocol_name: None,
                    assignments: vec![SyncGroupAssignment {
                        member_id: member,
                        assignment: vec![1, 2, 3],
                    }],
                }),
                3 | 4 => Request::Heartbeat(HeartbeatRequest {
                    group_id: group,
                    generation_id: generation,
                    member_id: member,
                    group_instance_id: instance,
                }),
                5 => Request::LeaveGroup(LeaveGroupRequest {
                    group_id: group,
                    members: vec![MemberIdentity {
                        member_id: member,
                        group_instance_id: instance,
                        reason: None,
                    }],
                }),
                6 => Request::OffsetCommit(OffsetCommitRequest {
                    group_id: group,
                    generation_id: generation,
                    member_id: member,
                    group_instance_id: instance,
                    retention_time_ms: [-1, 0, 1_000][rng.below(3)],
                    partitions,
                }),
                7 => Request::TxnOffsetCommit(TxnOffsetCommitRequest {
                    transactional_id: "tx".into(),
                    group_id: group,
                    producer_id: rng.below(3) as i64,
                    producer_epoch: 0,
                    generation_id: generation,
                    member_id: member,
                    group_instance_id: instance,
                    partitions,
                }),
                8 => Request::OffsetFetch(OffsetFetchRequest {
                    group_id: group,
                    partitions: (rng.below(2) == 0).then(|| vec![TopicPartition::new("t", 0)]),
                    require_stable: rng.below(2) == 0,
                }),
                9 => Request::DeleteGroups(DeleteGroupsRequest {
                    groups_names: vec![group],
                }),
                _ => Request::OffsetDelete(OffsetDeleteRequest {
                    group_id: group,
                    partitions: vec![TopicPartition::new("t", 0)],
                }),
            };
            h.append_result = match rng.below(10) {
                0 => Some(Err(KafkaCode::NOT_LEADER_OR_FOLLOWER)),
                1 => None,
                _ => Some(Ok(())),
            };
            sent.push(h.send(request));
            h.release_held(Ok(()));
            for (_, response) in &h.responses {
                if let Response::JoinGroup(r) = response {
                    if !r.member_id.is_empty() && !issued.contains(&r.member_id) {
                        issued.push(r.member_id.clone());
                    }
                }
            }
            if rng.below(10) == 0 {
                let to = h.now + rng.below(20_000) as i64;
                h.advance_to(to);
            }
            if rng.below(100) == 0 {
                h.restart(rng.next_u64());
                // A restart drops the connections: what was pending is not answered.
                sent.retain(|_| false);
            }
        }
        h.append_result = Some(Ok(()));
        h.release_held(Ok(()));
        let to = h.now + 10 * 60 * 1000;
        h.advance_to(to);
        for id in sent {
            assert!(
                h.responses.iter().any(|(r, _)| *r == id),
                "seed {seed}: request {id} never answered"
            );
        }
    }
}
