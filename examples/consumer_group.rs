//! A consumer group driven through the sans-IO group coordinator: three members split six
//! partitions, consume and commit; one crashes (it stops heartbeating), and the other two
//! take its partitions over from its last commit.
//!
//! ```text
//! cargo run --example consumer_group
//! ```
//!
//! The group coordinator runs on a `Storage` through `LocalGroupDriver`: its records go to
//! the compacted `__consumer_offsets` topic in a temporary directory, flushed before a
//! commit is acknowledged. It never reads a clock or touches a socket: this program is its
//! network (requests in, answers out) and its clock (`now`).

use std::collections::BTreeMap;
use std::sync::Arc;

use streamlog::group::assignor::{encode_assignment, Assignor, AssignorMember};
use streamlog::group::coordinator::{
    GroupCoordinatorConfig, HeartbeatRequest, JoinGroupProtocol, JoinGroupRequest,
    JoinGroupResponse, OffsetCommitPartition, OffsetCommitRequest, OffsetFetchRequest, Request,
    RequestId, Response, SyncGroupAssignment, SyncGroupRequest, TopicPartition,
};
use streamlog::group::{
    ConsumerProtocolAssignment, ConsumerProtocolSubscription, LocalGroupDriver, OffsetsTopicConfig,
    OFFSETS_TOPIC,
};
use streamlog::storage::{Storage, StorageConfig};
use streamlog::KafkaCode;

const GROUP: &str = "orders-app";
const TOPIC: &str = "orders";
const PARTITIONS: i32 = 6;
const SESSION_MS: i32 = 10_000;

/// The coordinator with what surrounds it in a broker: storage, a clock, the answers.
struct Broker {
    groups: LocalGroupDriver,
    storage: Arc<Storage>,
    now: i64,
    next_request: RequestId,
    answers: BTreeMap<RequestId, Response>,
    _dir: tempfile::TempDir,
}

impl Broker {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let storage = Arc::new(Storage::open(dir.path(), StorageConfig::default()).unwrap());
        // Creates __consumer_offsets (50 partitions, compacted) and loads it.
        let groups = LocalGroupDriver::open(
            Arc::clone(&storage),
            GroupCoordinatorConfig::default(),
            &OffsetsTopicConfig::default(),
            2026,
            0,
        )
        .unwrap();
        Broker {
            groups,
            storage,
            now: 0,
            next_request: 0,
            answers: BTreeMap::new(),
            _dir: dir,
        }
    }

    /// Delivers a request; returns its id (the answer may come later).
    fn send(&mut self, request: Request) -> RequestId {
        self.next_request += 1;
        let answers = self.groups.handle(self.now, self.next_request, request);
        self.answers.extend(answers);
        self.next_request
    }

    /// Lets time pass, firing the coordinator's timers on the way.
    fn advance(&mut self, ms: i64) {
        let until = self.now + ms;
        while let Some(at) = self.groups.next_deadline().filter(|&at| at <= until) {
            self.now = self.now.max(at);
            let answers = self.groups.tick(self.now);
            self.answers.extend(answers);
        }
        self.now = until;
    }

    fn answer(&mut self, id: RequestId) -> Option<Response> {
        self.answers.remove(&id)
    }

    /// Records in the group's `__consumer_offsets` partition.
    fn offsets_records(&self) -> i64 {
        let partition = self.groups.coordinator().partition_for(GROUP) as u32;
        let log = self.storage.partition(OFFSETS_TOPIC, partition).unwrap();
        log.log_end_offset() - log.log_start_offset()
    }
}

/// One consumer: what it knows of the group and where it is in each partition.
struct Consumer {
    name: &'static str,
    member_id: String,
    generation: i32,
    positions: BTreeMap<i32, i64>,
}

impl Consumer {
    fn join_request(&self) -> Request {
        Request::JoinGroup(JoinGroupRequest {
            group_id: GROUP.into(),
            session_timeout_ms: SESSION_MS,
            rebalance_timeout_ms: 30_000,
            member_id: self.member_id.clone(),
            group_instance_id: None,
            protocol_type: "consumer".into(),
            protocols: vec![JoinGroupProtocol {
                name: "range".into(),
                metadata: ConsumerProtocolSubscription::new(vec![TOPIC.into()])
                    .encode()
                    .unwrap(),
            }],
            client_id: self.name.into(),
            client_host: "/127.0.0.1".into(),
            require_known_member_id: true,
            supports_skip_assignment: true,
            reason: None,
        })
    }

    fn heartbeat(&self, broker: &mut Broker) -> KafkaCode {
        let id = broker.send(Request::Heartbeat(HeartbeatRequest {
            group_id: GROUP.into(),
            generation_id: self.generation,
            member_id: self.member_id.clone(),
            group_instance_id: None,
        }));
        match broker.answer(id) {
            Some(Response::Heartbeat(r)) => r.error_code,
            other => panic!("unexpected {other:?}"),
        }
    }

    /// Commits where it is in every partition it holds.
    fn commit(&self, broker: &mut Broker) {
        let partitions = self
            .positions
            .iter()
            .map(|(&partition, &offset)| OffsetCommitPartition {
                topic: TOPIC.into(),
                partition,
                committed_offset: offset,
                committed_leader_epoch: -1,
                committed_metadata: None,
            })
            .collect();
        let id = broker.send(Request::OffsetCommit(OffsetCommitRequest {
            group_id: GROUP.into(),
            generation_id: self.generation,
            member_id: self.member_id.clone(),
            group_instance_id: None,
            retention_time_ms: -1,
            partitions,
        }));
        let Some(Response::OffsetCommit(r)) = broker.answer(id) else {
            panic!("no commit answer")
        };
        assert!(r.partitions.iter().all(|p| p.error_code == KafkaCode::NONE));
    }
}

/// The leader runs Kafka's range assignor (the crate's) over every member's subscription.
fn range_assign(join: &JoinGroupResponse) -> Vec<SyncGroupAssignment> {
    let members: Vec<AssignorMember> = join
        .members
        .iter()
        .map(|m| AssignorMember {
            member_id: m.member_id.clone(),
            group_instance_id: m.group_instance_id.clone(),
            subscription: ConsumerProtocolSubscription::decode(&m.metadata).unwrap(),
        })
        .collect();
    let partition_counts = BTreeMap::from([(TOPIC.to_owned(), PARTITIONS as u32)]);
    Assignor::Range
        .assign(&partition_counts, &members)
        .unwrap()
        .into_iter()
        .map(|(member_id, assigned)| SyncGroupAssignment {
            member_id,
            assignment: encode_assignment(&assigned).unwrap(),
        })
        .collect()
}

/// Joins (or rejoins) every consumer, lets the leader assign, syncs, and fetches each
/// member's committed offsets: where it resumes.
fn rebalance(broker: &mut Broker, consumers: &mut [&mut Consumer]) {
    let mut joins = Vec::new();
    for consumer in consumers.iter_mut() {
        let mut id = broker.send(consumer.join_request());
        if consumer.member_id.is_empty() {
            // A first JoinGroup is answered MEMBER_ID_REQUIRED: rejoin with that id.
            let Some(Response::JoinGroup(r)) = broker.answer(id) else {
                panic!("no JoinGroup answer")
            };
            assert_eq!(r.error_code, KafkaCode::MEMBER_ID_REQUIRED);
            consumer.member_id = r.member_id;
            id = broker.send(consumer.join_request());
        }
        joins.push(id);
    }
    // The JoinGroups are answered when the rebalance completes (for a new group, after
    // group.initial.rebalance.delay.ms).
    let mut answers = Vec::new();
    for id in joins {
        while !broker.answers.contains_key(&id) {
            broker.advance(1_000);
        }
        let Some(Response::JoinGroup(r)) = broker.answer(id) else {
            unreachable!()
        };
        answers.push(r);
    }
    let mut syncs = Vec::new();
    for (consumer, join) in consumers.iter_mut().zip(&answers) {
        consumer.generation = join.generation_id;
        let assignments = if join.leader == join.member_id {
            range_assign(join)
        } else {
            Vec::new()
        };
        syncs.push(broker.send(Request::SyncGroup(SyncGroupRequest {
            group_id: GROUP.into(),
            generation_id: join.generation_id,
            member_id: consumer.member_id.clone(),
            group_instance_id: None,
            protocol_type: Some("consumer".into()),
            protocol_name: Some("range".into()),
            assignments,
        })));
    }
    for (consumer, id) in consumers.iter_mut().zip(syncs) {
        let Some(Response::SyncGroup(r)) = broker.answer(id) else {
            panic!("no sync answer")
        };
        let assignment = ConsumerProtocolAssignment::decode(&r.assignment).unwrap();
        let partitions: Vec<TopicPartition> = assignment
            .assigned_partitions
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(|&p| TopicPartition::new(&t.topic, p))
            })
            .collect();
        let id = broker.send(Request::OffsetFetch(OffsetFetchRequest {
            group_id: GROUP.into(),
            partitions: Some(partitions),
            require_stable: true,
        }));
        let Some(Response::OffsetFetch(fetched)) = broker.answer(id) else {
            panic!("no fetch answer")
        };
        consumer.positions = fetched
            .partitions
            .iter()
            .map(|p| (p.partition, p.committed_offset.max(0)))
            .collect();
        println!(
            "  {} (generation {}) holds {:?}",
            consumer.name, consumer.generation, consumer.positions
        );
    }
}

fn main() {
    let mut broker = Broker::new();
    let mut a = Consumer {
        name: "a",
        member_id: String::new(),
        generation: -1,
        positions: BTreeMap::new(),
    };
    let mut b = Consumer {
        name: "b",
        member_id: String::new(),
        generation: -1,
        positions: BTreeMap::new(),
    };
    let mut c = Consumer {
        name: "c",
        member_id: String::new(),
        generation: -1,
        positions: BTreeMap::new(),
    };

    println!("three consumers join and split {PARTITIONS} partitions:");
    rebalance(&mut broker, &mut [&mut a, &mut b, &mut c]);
    for consumer in [&a, &b, &c] {
        assert_eq!(consumer.positions.len(), 2);
    }

    // Each consumes some records of every partition it holds and commits.
    for (step, consumer) in [&mut a, &mut b, &mut c].into_iter().enumerate() {
        for position in consumer.positions.values_mut() {
            *position += 100 * (step as i64 + 1);
        }
        consumer.commit(&mut broker);
    }
    let c_commits = c.positions.clone();
    println!("c committed {c_commits:?}, then crashes");

    // c stops heartbeating; a and b carry on. After c's session timeout the coordinator
    // removes it and starts a rebalance, which a and b learn from their heartbeats.
    loop {
        broker.advance(3_000);
        let codes = [a.heartbeat(&mut broker), b.heartbeat(&mut broker)];
        if codes.contains(&KafkaCode::REBALANCE_IN_PROGRESS) {
            break;
        }
    }
    println!("c's session expired; a and b rejoin:");
    rebalance(&mut broker, &mut [&mut a, &mut b]);

    // Every partition is held again, by one of the two; c's partitions resume exactly where c
    // committed.
    let mut held: Vec<i32> = a
        .positions
        .keys()
        .chain(b.positions.keys())
        .copied()
        .collect();
    held.sort_unstable();
    assert_eq!(held, (0..PARTITIONS).collect::<Vec<_>>());
    for (partition, committed) in &c_commits {
        let resumed = a.positions.get(partition).or(b.positions.get(partition));
        assert_eq!(resumed, Some(committed));
    }
    println!(
        "c's partitions {:?} resumed from its last commit; {} records in __consumer_offsets",
        c_commits.keys().collect::<Vec<_>>(),
        broker.offsets_records()
    );
}
