//! Group coordinator costs (issue 12). Targets: 10,000 heartbeats/s within 5 % of one core
//! (at most 5 µs a heartbeat), and a 100-member, 1,000-partition rebalance (join → sync →
//! stable) in under 10 ms of CPU.
//!
//! - `group/heartbeat/{10,100,1000}_members`: one Heartbeat of a member of a Stable group of
//!   that many members (the coordinator also holds 1,000 other groups), the answer taken
//!   out; the request is cloned per call, as a broker would build one.
//! - `group/rebalance/100x1000/coordinator`: a Stable group of 100 members subscribed to 10
//!   topics of 100 partitions rebalances: the leader's JoinGroup starts it, the 99 others
//!   rejoin (the last one completes the join), every member sends SyncGroup (the leader's
//!   with the assignment, precomputed here), the assignment record is appended, and every
//!   member has its assignment: the coordinator's whole share.
//! - `group/rebalance/100x1000/with_range_assignor`: the same with the leader's range
//!   assignment computed and encoded inside the measurement (what the leader's client adds).
//!
//! Wall time of a single-threaded loop with no I/O: CPU time, on an idle core.
//!
//! Run: `cargo bench --bench group_coordinator -- --warm-up-time 1 --measurement-time 3`

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use streamlog::group::assignor::{encode_assignment, Assignor, AssignorMember};
use streamlog::group::coordinator::{
    GroupCoordinator, GroupCoordinatorConfig, HeartbeatRequest, JoinGroupProtocol,
    JoinGroupRequest, JoinGroupResponse, OffsetCommitPartition, OffsetCommitRequest, Output,
    Request, RequestId, Response, SyncGroupAssignment, SyncGroupRequest,
};
use streamlog::group::ConsumerProtocolSubscription;

const TOPICS: usize = 10;
const PARTITIONS_PER_TOPIC: u32 = 100;

fn topics() -> Vec<String> {
    (0..TOPICS).map(|t| format!("topic-{t}")).collect()
}

fn join(group: &str, member_id: &str, client: usize) -> Request {
    Request::JoinGroup(JoinGroupRequest {
        group_id: group.into(),
        session_timeout_ms: 45_000,
        rebalance_timeout_ms: 300_000,
        member_id: member_id.into(),
        group_instance_id: None,
        protocol_type: "consumer".into(),
        protocols: vec![JoinGroupProtocol {
            name: "range".into(),
            metadata: ConsumerProtocolSubscription::new(topics())
                .encode()
                .unwrap(),
        }],
        client_id: format!("consumer-{client}"),
        client_host: "/10.0.0.1".into(),
        require_known_member_id: false,
        supports_skip_assignment: true,
        reason: None,
    })
}

fn sync(
    group: &str,
    member_id: &str,
    generation: i32,
    assignments: Vec<SyncGroupAssignment>,
) -> Request {
    Request::SyncGroup(SyncGroupRequest {
        group_id: group.into(),
        generation_id: generation,
        member_id: member_id.into(),
        group_instance_id: None,
        protocol_type: Some("consumer".into()),
        protocol_name: Some("range".into()),
        assignments,
    })
}

/// Takes every output: appends complete at once; returns the JoinGroup answers.
fn pump(
    c: &mut GroupCoordinator,
    now: i64,
    joins: &mut Vec<(RequestId, JoinGroupResponse)>,
) -> usize {
    let mut answers = 0;
    while let Some(output) = c.poll_output() {
        match output {
            Output::Append(append) => c.append_completed(now, append.id, Ok(())),
            Output::Response { request, response } => {
                answers += 1;
                if let Response::JoinGroup(r) = response {
                    joins.push((request, r));
                }
            }
        }
    }
    answers
}

fn range_assignment(leader: &JoinGroupResponse) -> Vec<SyncGroupAssignment> {
    let members: Vec<AssignorMember> = leader
        .members
        .iter()
        .map(|m| AssignorMember {
            member_id: m.member_id.clone(),
            group_instance_id: m.group_instance_id.clone(),
            subscription: ConsumerProtocolSubscription::decode(&m.metadata).unwrap(),
        })
        .collect();
    let counts: BTreeMap<String, u32> = topics()
        .into_iter()
        .map(|t| (t, PARTITIONS_PER_TOPIC))
        .collect();
    Assignor::Range
        .assign(&counts, &members)
        .unwrap()
        .into_iter()
        .map(|(member_id, partitions)| SyncGroupAssignment {
            member_id,
            assignment: encode_assignment(&partitions).unwrap(),
        })
        .collect()
}

/// A coordinator holding `group` Stable with `members` members (ids sorted, leader first),
/// at time `now`; with its generation.
struct Stable {
    c: GroupCoordinator,
    group: String,
    members: Vec<String>,
    leader: String,
    generation: i32,
    now: i64,
    next_request: RequestId,
}

fn stable_group(c: GroupCoordinator, group: &str, members: usize) -> Stable {
    let mut c = c;
    let mut now = 1_000;
    let mut joins = Vec::new();
    for i in 0..members {
        c.handle(now, i as RequestId + 1, join(group, "", i));
        pump(&mut c, now, &mut joins);
    }
    while joins.len() < members {
        now = c.next_deadline().unwrap();
        c.tick(now);
        pump(&mut c, now, &mut joins);
    }
    let leader_join = joins
        .iter()
        .find(|(_, r)| r.leader == r.member_id)
        .unwrap()
        .1
        .clone();
    let assignments = range_assignment(&leader_join);
    let mut next_request = 10_000;
    for (_, r) in &joins {
        let a = if r.member_id == r.leader {
            assignments.clone()
        } else {
            Vec::new()
        };
        next_request += 1;
        c.handle(
            now,
            next_request,
            sync(group, &r.member_id, r.generation_id, a),
        );
    }
    pump(&mut c, now, &mut Vec::new());
    let mut ids: Vec<String> = joins.iter().map(|(_, r)| r.member_id.clone()).collect();
    ids.sort();
    Stable {
        c,
        group: group.into(),
        leader: leader_join.leader.clone(),
        members: ids,
        generation: leader_join.generation_id,
        now,
        next_request,
    }
}

fn coordinator_with_other_groups(others: usize) -> GroupCoordinator {
    let config = GroupCoordinatorConfig {
        offsets_topic_num_partitions: 1,
        ..Default::default()
    };
    let mut c = GroupCoordinator::new(config, 7);
    c.load_partition(0, 0, Vec::new());
    // Other groups the coordinator holds meanwhile: groups that only commit offsets.
    for g in 0..others {
        let commit = Request::OffsetCommit(OffsetCommitRequest {
            group_id: format!("other-{g}"),
            generation_id: -1,
            member_id: String::new(),
            group_instance_id: None,
            retention_time_ms: -1,
            partitions: vec![OffsetCommitPartition {
                topic: "topic-0".into(),
                partition: 0,
                committed_offset: 42,
                committed_leader_epoch: -1,
                committed_metadata: None,
            }],
        });
        c.handle(0, g as RequestId, commit);
        pump(&mut c, 0, &mut Vec::new());
    }
    c
}

fn heartbeat(c: &mut Criterion) {
    let mut group = c.benchmark_group("group/heartbeat");
    group.throughput(Throughput::Elements(1));
    for members in [10usize, 100, 1000] {
        let mut s = stable_group(coordinator_with_other_groups(1_000), "app", members);
        let requests: Vec<Request> = s
            .members
            .iter()
            .map(|m| {
                Request::Heartbeat(HeartbeatRequest {
                    group_id: s.group.clone(),
                    generation_id: s.generation,
                    member_id: m.clone(),
                    group_instance_id: None,
                })
            })
            .collect();
        let mut i = 0usize;
        group.bench_function(format!("{members}_members"), |b| {
            b.iter(|| {
                i = (i + 1) % requests.len();
                s.next_request += 1;
                // Heartbeats within the session timeout, time moving on a little.
                s.now += 1;
                s.c.handle(s.now, s.next_request, requests[i].clone());
                black_box(s.c.poll_output())
            })
        });
    }
    group.finish();
}

/// One full rebalance of a stable group; returns how many answers went out.
fn rebalance_once(s: &mut Stable, precomputed: Option<&[SyncGroupAssignment]>) -> usize {
    let now = s.now + 10;
    let mut joins = Vec::new();
    let mut answers = 0;
    // The leader rejoins first (that starts the rebalance), then everyone else.
    let order = std::iter::once(&s.leader).chain(s.members.iter().filter(|m| **m != s.leader));
    for (i, m) in order.enumerate() {
        s.c.handle(now, 20_000 + i as RequestId, join(&s.group, m, i));
        answers += pump(&mut s.c, now, &mut joins);
    }
    assert_eq!(
        joins.len(),
        s.members.len(),
        "the join completes when the last member rejoins"
    );
    let leader = joins
        .iter()
        .find(|(_, r)| r.member_id == r.leader)
        .unwrap()
        .1
        .clone();
    let assignments = match precomputed {
        Some(a) => a.to_vec(),
        None => range_assignment(&leader),
    };
    for (i, (_, r)) in joins.iter().enumerate() {
        let a = if r.member_id == r.leader {
            assignments.clone()
        } else {
            Vec::new()
        };
        s.c.handle(
            now,
            30_000 + i as RequestId,
            sync(&s.group, &r.member_id, r.generation_id, a),
        );
        answers += pump(&mut s.c, now, &mut Vec::new());
    }
    s.generation = leader.generation_id;
    s.now = now;
    answers
}

fn rebalance(c: &mut Criterion) {
    let mut group = c.benchmark_group("group/rebalance/100x1000");
    group.sample_size(30);
    let fresh = || stable_group(coordinator_with_other_groups(0), "app", 100);
    let probe = {
        let mut s = fresh();
        // The assignment the leader will send (member ids do not change in a rebalance).
        let mut joins = Vec::new();
        let now = s.now + 10;
        s.c.handle(now, 1, join(&s.group, &s.leader.clone(), 0));
        pump(&mut s.c, now, &mut joins);
        for (i, m) in s
            .members
            .clone()
            .iter()
            .filter(|m| **m != s.leader)
            .enumerate()
        {
            s.c.handle(now, 2 + i as RequestId, join(&s.group, m, i));
            pump(&mut s.c, now, &mut joins);
        }
        let leader = joins
            .iter()
            .find(|(_, r)| r.member_id == r.leader)
            .unwrap()
            .1
            .clone();
        range_assignment(&leader)
    };
    group.bench_function("coordinator", |b| {
        b.iter_batched(
            fresh,
            |mut s| {
                let answers = rebalance_once(&mut s, Some(&probe));
                // 100 JoinGroups and 100 SyncGroups answered.
                assert_eq!(answers, 200);
                s
            },
            BatchSize::PerIteration,
        )
    });
    group.bench_function("with_range_assignor", |b| {
        b.iter_batched(
            fresh,
            |mut s| {
                assert_eq!(rebalance_once(&mut s, None), 200);
                s
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

/// The figures the issue asks for, from medians of a few plain runs (printed).
fn summary(_: &mut Criterion) {
    let mut s = stable_group(coordinator_with_other_groups(1_000), "app", 100);
    let requests: Vec<Request> = s
        .members
        .iter()
        .map(|m| {
            Request::Heartbeat(HeartbeatRequest {
                group_id: s.group.clone(),
                generation_id: s.generation,
                member_id: m.clone(),
                group_instance_id: None,
            })
        })
        .collect();
    let mut per_heartbeat = Vec::new();
    for _ in 0..9 {
        let n = 100_000;
        let start = Instant::now();
        for i in 0..n {
            s.next_request += 1;
            s.now += 1;
            s.c.handle(s.now, s.next_request, requests[i % requests.len()].clone());
            black_box(s.c.poll_output());
        }
        per_heartbeat.push(start.elapsed().as_nanos() as f64 / n as f64);
    }
    per_heartbeat.sort_by(f64::total_cmp);
    let ns = per_heartbeat[per_heartbeat.len() / 2];
    println!(
        "summary: heartbeat median {ns:.0} ns => 10,000 heartbeats/s use {:.3} % of one core (target <= 5 %)",
        ns * 10_000.0 / 1e9 * 100.0
    );
    let mut times = Vec::new();
    for _ in 0..15 {
        let mut s = stable_group(coordinator_with_other_groups(0), "app", 100);
        let start = Instant::now();
        rebalance_once(&mut s, None);
        times.push(start.elapsed());
    }
    times.sort();
    let median: Duration = times[times.len() / 2];
    println!(
        "summary: 100-member 1,000-partition rebalance (join, range assignment, sync, stable) median {:.2} ms (target < 10 ms)",
        median.as_secs_f64() * 1e3
    );
}

criterion_group!(benches, heartbeat, rebalance, summary);
criterion_main!(benches);
