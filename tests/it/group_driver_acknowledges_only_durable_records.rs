//! `LocalGroupDriver`: the group coordinator on a local `Storage`. A group of three joins,
//! syncs and commits; the driver reopened on the same storage resumes the group (generation,
//! members, assignments) and its offsets. A commit is acknowledged only once it is durable:
//! after a power cut every acknowledged commit is back. A failed fsync is never
//! acknowledged, and the partition stops being served (`NOT_COORDINATOR`).

use std::collections::BTreeMap;
use std::sync::Arc;

use streamlog::group::coordinator::{
    GroupCoordinatorConfig, GroupState, HeartbeatRequest, JoinGroupProtocol, JoinGroupRequest,
    OffsetCommitPartition, OffsetCommitRequest, OffsetFetchRequest, Request, RequestId, Response,
    SyncGroupAssignment, SyncGroupRequest, TopicPartition,
};
use streamlog::group::{LocalGroupDriver, OffsetsTopicConfig};
use streamlog::io::{SimError, SimFs, SimOp};
use streamlog::storage::{Storage, StorageConfig};
use streamlog::KafkaCode;

const GROUP: &str = "orders-app";

fn offsets_config() -> OffsetsTopicConfig {
    let mut c = OffsetsTopicConfig::default();
    c.set("offsets.topic.num.partitions", "4").unwrap();
    c
}

fn open(storage: &Arc<Storage>, seed: u64, now: i64) -> LocalGroupDriver {
    let config = GroupCoordinatorConfig {
        ..Default::default()
    };
    LocalGroupDriver::open(Arc::clone(storage), config, &offsets_config(), seed, now).unwrap()
}

fn on(fs: &SimFs) -> StorageConfig {
    let mut c = StorageConfig::default();
    c.fs = Arc::new(fs.clone());
    c.defaults.log.segment_index_bytes = 4096;
    c
}

/// Sends requests and keeps every answer, early or late.
struct Client {
    driver: LocalGroupDriver,
    next: RequestId,
    answers: BTreeMap<RequestId, Response>,
    now: i64,
}

impl Client {
    fn send(&mut self, request: Request) -> RequestId {
        self.next += 1;
        let answers = self.driver.handle(self.now, self.next, request);
        self.answers.extend(answers);
        self.next
    }

    fn answer(&mut self, id: RequestId) -> Response {
        self.answers.remove(&id).expect("answered")
    }

    fn join(&mut self, member_id: &str) -> RequestId {
        self.send(Request::JoinGroup(JoinGroupRequest {
            group_id: GROUP.into(),
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 30_000,
            member_id: member_id.into(),
            group_instance_id: None,
            protocol_type: "consumer".into(),
            protocols: vec![JoinGroupProtocol {
                name: "range".into(),
                metadata: b"subscription".to_vec(),
            }],
            client_id: "app".into(),
            client_host: "/127.0.0.1".into(),
            require_known_member_id: false,
            supports_skip_assignment: true,
            reason: None,
        }))
    }

    fn sync(
        &mut self,
        member: &str,
        generation: i32,
        assignments: Vec<SyncGroupAssignment>,
    ) -> RequestId {
        self.send(Request::SyncGroup(SyncGroupRequest {
            group_id: GROUP.into(),
            generation_id: generation,
            member_id: member.into(),
            group_instance_id: None,
            protocol_type: Some("consumer".into()),
            protocol_name: Some("range".into()),
            assignments,
        }))
    }

    fn commit(&mut self, member: &str, generation: i32, partition: i32, offset: i64) -> KafkaCode {
        let id = self.send(Request::OffsetCommit(OffsetCommitRequest {
            group_id: GROUP.into(),
            generation_id: generation,
            member_id: member.into(),
            group_instance_id: None,
            retention_time_ms: -1,
            partitions: vec![OffsetCommitPartition {
                topic: "orders".into(),
                partition,
                committed_offset: offset,
                committed_leader_epoch: 3,
                committed_metadata: Some(format!("by {member}")),
            }],
        }));
        match self.answer(id) {
            Response::OffsetCommit(r) => r.partitions[0].error_code,
            other => panic!("{other:?}"),
        }
    }

    fn fetch(&mut self) -> BTreeMap<i32, i64> {
        let id = self.send(Request::OffsetFetch(OffsetFetchRequest {
            group_id: GROUP.into(),
            partitions: None,
            require_stable: true,
        }));
        match self.answer(id) {
            Response::OffsetFetch(r) => {
                assert_eq!(r.error_code, KafkaCode::NONE);
                r.partitions
                    .iter()
                    .map(|p| (p.partition, p.committed_offset))
                    .collect()
            }
            other => panic!("{other:?}"),
        }
    }

    fn heartbeat(&mut self, member: &str, generation: i32) -> KafkaCode {
        let id = self.send(Request::Heartbeat(HeartbeatRequest {
            group_id: GROUP.into(),
            generation_id: generation,
            member_id: member.into(),
            group_instance_id: None,
        }));
        match self.answer(id) {
            Response::Heartbeat(r) => r.error_code,
            other => panic!("{other:?}"),
        }
    }

    /// Three members join; the leader assigns each two of six partitions. Returns the
    /// members and the generation.
    fn form_group(&mut self) -> (Vec<String>, i32) {
        let joins: Vec<RequestId> = (0..3).map(|_| self.join("")).collect();
        // The rebalance completes after group.initial.rebalance.delay.ms, by a tick.
        while joins.iter().any(|id| !self.answers.contains_key(id)) {
            let at = self.driver.next_deadline().expect("a rebalance timer");
            self.now = self.now.max(at);
            let answers = self.driver.tick(self.now);
            self.answers.extend(answers);
        }
        let mut members = Vec::new();
        let mut generation = -1;
        let mut leader = String::new();
        for id in joins {
            let Response::JoinGroup(r) = self.answer(id) else {
                panic!()
            };
            assert_eq!(r.error_code, KafkaCode::NONE);
            assert!(generation == -1 || generation == r.generation_id);
            generation = r.generation_id;
            leader = r.leader.clone();
            members.push(r.member_id);
        }
        let assignments: Vec<SyncGroupAssignment> = members
            .iter()
            .enumerate()
            .map(|(i, m)| SyncGroupAssignment {
                member_id: m.clone(),
                assignment: vec![i as u8 * 2, i as u8 * 2 + 1],
            })
            .collect();
        let syncs: Vec<RequestId> = members
            .clone()
            .iter()
            .map(|m| {
                let a = if *m == leader {
                    assignments.clone()
                } else {
                    Vec::new()
                };
                self.sync(m, generation, a)
            })
            .collect();
        for (i, id) in syncs.into_iter().enumerate() {
            let Response::SyncGroup(r) = self.answer(id) else {
                panic!()
            };
            assert_eq!(r.error_code, KafkaCode::NONE);
            assert_eq!(r.assignment, vec![i as u8 * 2, i as u8 * 2 + 1]);
        }
        (members, generation)
    }
}

#[test]
fn a_reopened_driver_resumes_the_group_and_its_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Arc::new(Storage::open(dir.path(), StorageConfig::default()).unwrap());
    let mut client = Client {
        driver: open(&storage, 1, 1_000),
        next: 0,
        answers: BTreeMap::new(),
        now: 1_000,
    };
    let (members, generation) = client.form_group();
    for (i, m) in members.iter().enumerate() {
        for p in [2 * i as i32, 2 * i as i32 + 1] {
            assert_eq!(
                client.commit(m, generation, p, 100 + i64::from(p)),
                KafkaCode::NONE
            );
        }
    }
    let committed = client.fetch();
    assert_eq!(committed, (0..6).map(|p| (p, 100 + i64::from(p))).collect());

    // Restart: the storage and the driver are opened again from disk.
    drop(client.driver);
    Arc::try_unwrap(storage).ok().unwrap().close().unwrap();
    let storage = Arc::new(Storage::open(dir.path(), StorageConfig::default()).unwrap());
    let now = client.now + 2_000;
    let mut client = Client {
        driver: open(&storage, 2, now),
        next: 100,
        answers: BTreeMap::new(),
        now,
    };
    let c = client.driver.coordinator();
    assert_eq!(c.group_state(GROUP), Some(GroupState::Stable));
    assert_eq!(c.group_generation(GROUP), Some(generation));
    let mut sorted = members.clone();
    sorted.sort();
    assert_eq!(c.group_members(GROUP), sorted);
    let tp = TopicPartition::new("orders", 4);
    let o = c.committed_offset(GROUP, &tp).unwrap();
    assert_eq!(
        (o.offset, o.metadata.as_str()),
        (104, format!("by {}", members[2]).as_str())
    );
    // The members carry on in their generation without a rebalance.
    for m in &members {
        assert_eq!(client.heartbeat(m, generation), KafkaCode::NONE);
    }
    assert_eq!(client.fetch(), committed);
    assert_eq!(
        client.commit(&members[0], generation, 0, 500),
        KafkaCode::NONE
    );
    assert_eq!(client.fetch()[&0], 500);
}

#[test]
fn every_acknowledged_commit_survives_a_power_cut() {
    for seed in 0..16u64 {
        let fs = SimFs::new(seed);
        let storage = Arc::new(Storage::open("/data", on(&fs)).unwrap());
        let mut client = Client {
            driver: open(&storage, seed, 0),
            next: 0,
            answers: BTreeMap::new(),
            now: 0,
        };
        // A consumer without group management commits partition 0 again and again.
        let mut acknowledged = -1;
        for offset in 0..(5 + seed as i64) {
            client.now += 10;
            if client.commit("", -1, 0, offset) == KafkaCode::NONE {
                acknowledged = offset;
            }
        }
        assert_eq!(acknowledged, 4 + seed as i64);
        let after = fs.crash();
        drop(client);
        drop(storage);

        let storage = Arc::new(Storage::open("/data", on(&after)).unwrap());
        let mut client = Client {
            driver: open(&storage, seed + 100, 1_000),
            next: 0,
            answers: BTreeMap::new(),
            now: 1_000,
        };
        assert_eq!(client.fetch().get(&0), Some(&acknowledged), "seed {seed}");
    }
}

#[test]
fn a_failed_fsync_is_not_acknowledged_and_the_partition_is_given_up() {
    let fs = SimFs::new(3);
    let storage = Arc::new(Storage::open("/data", on(&fs)).unwrap());
    let mut client = Client {
        driver: open(&storage, 3, 0),
        next: 0,
        answers: BTreeMap::new(),
        now: 0,
    };
    assert_eq!(client.commit("", -1, 0, 7), KafkaCode::NONE);
    let partition = client.driver.coordinator().partition_for(GROUP);
    let dir = format!("__consumer_offsets-{partition}");
    fs.fail_next(SimOp::Sync, Some(&dir), SimError::Eio);
    // Kafka answers NOT_COORDINATOR for a commit its log could not store.
    assert_eq!(client.commit("", -1, 0, 8), KafkaCode::NOT_COORDINATOR);
    assert!(!client.driver.partitions().contains(&partition));
    // The group is no longer served here; the last durable commit is what a restart sees.
    let id = client.send(Request::OffsetFetch(OffsetFetchRequest {
        group_id: GROUP.into(),
        partitions: None,
        require_stable: false,
    }));
    let Response::OffsetFetch(r) = client.answer(id) else {
        panic!()
    };
    assert_eq!(r.error_code, KafkaCode::NOT_COORDINATOR);
    let after = fs.crash();
    drop(client);
    drop(storage);
    let storage = Arc::new(Storage::open("/data", on(&after)).unwrap());
    let mut client = Client {
        driver: open(&storage, 4, 1_000),
        next: 0,
        answers: BTreeMap::new(),
        now: 1_000,
    };
    assert_eq!(client.fetch().get(&0), Some(&7));
}
