//! A seeded simulation of one consumer group driving the sans-IO group coordinator:
//! members join, consume, commit, leave, crash (and stop heartbeating), restart (static ones
//! with their `group.instance.id`), sync slowly, lose their network for a while; requests
//! are delayed and duplicated; the coordinator crashes and a new one loads the offsets
//! partition from exactly the records that reached the log.
//!
//! Half the seeds run the eager protocol (`range`), half the cooperative one
//! (`cooperative-sticky`, KIP-429): members keep their partitions through a rebalance, say
//! which they own when they join, revoke what the new assignment takes away (committing
//! first) and rejoin at once, so a moved partition reaches its new owner one rebalance
//! later. There the leader's assignment never hands out a partition another member of the
//! same rebalance still owns.
//!
//! In both, some members are static. As Kafka's consumer, a member refused with
//! ILLEGAL_GENERATION keeps its member id (so its rejoin with new metadata rebalances) and
//! one refused with UNKNOWN_MEMBER_ID drops it; a fenced one (FENCED_INSTANCE_ID) exits. A
//! static member that missed a generation (its JoinGroup answer skips one) treats what it
//! owned as lost, not revoked: no commit, since others may have consumed it meanwhile.
//!
//! One seed drives every choice. Chaos phases alternate with quiet phases; after every quiet
//! phase each partition has exactly one owner among the live members, all in the
//! coordinator's current generation. Throughout: no two members of one generation own the
//! same partition, no member is handed a partition another current member still consumes,
//! a committed offset never moves backwards, an OffsetFetch never answers below a commit
//! the coordinator acknowledged (so a member that restarts, or takes a partition over,
//! resumes from the last commit), and every request the coordinator received is answered
//! within a bound.
//!
//! `STREAMLOG_SIM_SEEDS=N` runs N seeds (default 1000); `STREAMLOG_SIM_SEED=S` replays one
//! seed and prints its trace. A failing seed is printed with its trace.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use streamlog::group::assignor::{encode_assignment, Assignor, AssignorMember};
use streamlog::group::coordinator::{
    Append, DescribeGroupsRequest, GroupCoordinator, GroupCoordinatorConfig, GroupState,
    HeartbeatRequest, JoinGroupProtocol, JoinGroupRequest, JoinGroupResponse,
    JoinGroupResponseMember, LeaveGroupRequest, ListGroupsRequest, LoadEntry, MemberIdentity,
    OffsetCommitPartition, OffsetCommitRequest, OffsetFetchRequest, Output, Request, RequestId,
    Response, SyncGroupAssignment, SyncGroupRequest, TopicPartition,
};
use streamlog::group::{ConsumerProtocolAssignment, ConsumerProtocolSubscription, TopicPartitions};
use streamlog::KafkaCode;

use crate::common::rng::Rng;

const GROUP: &str = "sim";
const TOPIC: &str = "t";
const SESSION_MS: i32 = 6_000;
const REBALANCE_MS: i32 = 3_000;
const HEARTBEAT_MS: i64 = 1_000;
const COMMIT_MS: i64 = 1_500;
const JOIN_TIMEOUT_MS: i64 = REBALANCE_MS as i64 + 5_000;
const REQUEST_TIMEOUT_MS: i64 = 5_000;
const NEW_MEMBER_JOIN_TIMEOUT_MS: i64 = 15_000;
/// Every request the coordinator receives is answered within this long.
const ANSWER_BOUND_MS: i64 = NEW_MEMBER_JOIN_TIMEOUT_MS + 2 * REBALANCE_MS as i64 + 5_000;
const QUIET_MS: i64 = 30_000;
const ADMIN: usize = usize::MAX;

fn config() -> GroupCoordinatorConfig {
    GroupCoordinatorConfig {
        offsets_topic_num_partitions: 1,
        group_min_session_timeout_ms: 1_000,
        group_initial_rebalance_delay_ms: 500,
        new_member_join_timeout_ms: NEW_MEMBER_JOIN_TIMEOUT_MS,
        ..GroupCoordinatorConfig::default()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Down,
    Joining,
    Syncing,
    Stable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Join,
    Sync,
}

struct Client {
    name: String,
    instance_id: Option<String>,
    phase: Phase,
    /// Bumped at every crash and restart: events of an older incarnation are dropped.
    incarnation: u32,
    member_id: String,
    generation: i32,
    /// The join or sync in flight, with when it times out.
    group_request: Option<(RequestId, Kind, i64)>,
    heartbeat: Option<(RequestId, i64)>,
    commit: Option<(RequestId, i64)>,
    /// The generation the commit in flight was sent in.
    commit_generation: i32,
    fetch: Option<(RequestId, i64)>,
    assignment: Vec<i32>,
    /// Partitions being consumed, with the position (after the offset fetch).
    positions: BTreeMap<i32, i64>,
    next_heartbeat: i64,
    next_commit: i64,
    /// A join or sync to send at this time (backoff, slow sync).
    send_at: Option<(i64, Kind)>,
    /// The leader's assignment for a delayed SyncGroup.
    sync_assignments: Vec<SyncGroupAssignment>,
    partitioned_until: i64,
    /// The last JoinGroup answer skipped a generation (see `on_join`).
    missed_generation: bool,
    /// A stalled process (a long GC pause): it acts on nothing until then, and afterwards
    /// carries on from its stale state, a zombie of its old generation.
    paused_until: i64,
    restart_at: Option<i64>,
    wake_at: i64,
}

enum Event {
    ToCoordinator {
        coordinator: u32,
        rid: RequestId,
        request: Request,
    },
    ToClient {
        client: usize,
        incarnation: u32,
        coordinator: u32,
        rid: RequestId,
        response: Response,
    },
    AppendDone {
        coordinator: u32,
        append: Append,
        ok: bool,
    },
    LoadDone {
        coordinator: u32,
    },
    Disconnect {
        client: usize,
        incarnation: u32,
    },
    Wake {
        client: usize,
    },
}

struct Sim {
    rng: Rng,
    /// The cooperative rebalance protocol (`cooperative-sticky`) rather than the eager one.
    cooperative: bool,
    now: i64,
    seq: u64,
    events: BTreeMap<(i64, u64), Event>,
    coordinator: GroupCoordinator,
    coordinator_incarnation: u32,
    coordinator_up: bool,
    /// What reached the offsets partition, in order.
    records: Vec<LoadEntry>,
    /// Appends of the current coordinator not yet in the log, in order.
    in_flight: Vec<Append>,
    last_append_at: i64,
    clients: Vec<Client>,
    partitions: i32,
    next_rid: RequestId,
    rid_owner: HashMap<RequestId, (usize, u32)>,
    /// Requests the current coordinator received and has not answered: when it got them.
    unanswered: BTreeMap<RequestId, i64>,
    /// Per client, when its last message to (and from) the coordinator arrives: channels
    /// keep their order, like a TCP connection.
    to_coordinator_at: Vec<i64>,
    to_client_at: Vec<i64>,
    chaos: bool,
    /// Highest committed offset seen per partition.
    committed_seen: BTreeMap<i32, i64>,
    /// Highest offset the coordinator acknowledged a commit of, per partition.
    acked: BTreeMap<i32, i64>,
    /// Per generation, who was handed each partition (instance id for static members).
    owners: BTreeMap<i32, BTreeMap<i32, String>>,
    trace: Option<Vec<String>>,
    stats: Stats,
    max_generation: i32,
    offsets_may_have_moved: bool,
    next_answer_check: i64,
}

#[derive(Default, Debug, Clone, Copy)]
struct Stats {
    rebalances_seen: u64,
    static_rejoins_without_rebalance: u64,
    coordinator_restarts: u64,
    crashes: u64,
    fenced: u64,
    cooperative_seeds: u64,
    /// Cooperative seeds with at least one static member.
    cooperative_static_seeds: u64,
    revocations: u64,
}

/// A member's subscription: for the cooperative protocol with the partitions it owns now
/// and their generation.
fn subscription(owned: &[i32], generation: i32) -> Vec<u8> {
    let mut s = ConsumerProtocolSubscription::new(vec![TOPIC.to_owned()]);
    if !owned.is_empty() {
        s.owned_partitions = vec![TopicPartitions::new(TOPIC, owned.to_vec())];
        s.generation_id = generation;
    }
    s.encode().unwrap()
}

fn protocol(cooperative: bool) -> Assignor {
    if cooperative {
        Assignor::CooperativeSticky
    } else {
        Assignor::Range
    }
}

/// The leader's assignment: Kafka's range or cooperative-sticky assignor (the crate's)
/// over its view of the members. For the cooperative protocol, checks KIP-429's rule on
/// what it hands out: never a partition another member of this rebalance says it owns (that
/// member revokes it first; the next rebalance assigns it).
fn assign(
    members: &[JoinGroupResponseMember],
    partitions: i32,
    cooperative: bool,
) -> Vec<SyncGroupAssignment> {
    let members: Vec<AssignorMember> = members
        .iter()
        .map(|m| AssignorMember {
            member_id: m.member_id.clone(),
            group_instance_id: m.group_instance_id.clone(),
            subscription: ConsumerProtocolSubscription::decode(&m.metadata).unwrap(),
        })
        .collect();
    let counts = BTreeMap::from([(TOPIC.to_owned(), partitions as u32)]);
    let assignment = protocol(cooperative).assign(&counts, &members).unwrap();
    if cooperative {
        for (member_id, assigned) in &assignment {
            for p in assigned.iter().flat_map(|t| t.partitions.iter()) {
                let owner = members.iter().find(|m| {
                    m.member_id != *member_id
                        && m.subscription
                            .owned_partitions
                            .iter()
                            .any(|t| t.partitions.contains(p))
                });
                assert!(
                    owner.is_none(),
                    "partition {p} assigned to {member_id} in the rebalance that revokes it from {}",
                    owner.map_or("", |m| m.member_id.as_str())
                );
            }
        }
    }
    assignment
        .into_iter()
        .map(|(member_id, assigned)| SyncGroupAssignment {
            member_id,
            assignment: encode_assignment(&assigned).unwrap(),
        })
        .collect()
}

fn decode_assignment(bytes: &[u8]) -> Vec<i32> {
    if bytes.is_empty() {
        return Vec::new();
    }
    let assignment = ConsumerProtocolAssignment::decode(bytes).unwrap();
    assignment
        .assigned_partitions
        .iter()
        .filter(|t| t.topic == TOPIC)
        .flat_map(|t| t.partitions.iter().copied())
        .collect()
}

impl Sim {
    fn new(seed: u64, trace: bool) -> Self {
        let mut rng = Rng(seed);
        let members = rng.range(2, 6) as usize;
        let partitions = rng.range(3, 12) as i32;
        let cooperative = rng.chance(50);
        // Both protocols mix static and dynamic members.
        let clients = (0..members)
            .map(|i| Client {
                name: format!("c{i}"),
                instance_id: rng.chance(40).then(|| format!("instance-{i}")),
                phase: Phase::Down,
                incarnation: 0,
                member_id: String::new(),
                generation: -1,
                group_request: None,
                heartbeat: None,
                commit: None,
                commit_generation: -1,
                fetch: None,
                assignment: Vec::new(),
                positions: BTreeMap::new(),
                next_heartbeat: i64::MAX,
                next_commit: i64::MAX,
                send_at: None,
                sync_assignments: Vec::new(),
                partitioned_until: 0,
                missed_generation: false,
                paused_until: 0,
                restart_at: Some(rng.range(0, 2_000)),
                wake_at: i64::MAX,
            })
            .collect();
        let mut coordinator = GroupCoordinator::new(config(), rng.next());
        coordinator.load_partition(0, 0, Vec::new());
        let mut sim = Sim {
            rng,
            cooperative,
            now: 0,
            seq: 0,
            events: BTreeMap::new(),
            coordinator,
            coordinator_incarnation: 0,
            coordinator_up: true,
            records: Vec::new(),
            in_flight: Vec::new(),
            last_append_at: 0,
            clients,
            partitions,
            next_rid: 0,
            rid_owner: HashMap::new(),
            unanswered: BTreeMap::new(),
            to_coordinator_at: vec![0; members],
            to_client_at: vec![0; members],
            chaos: true,
            committed_seen: BTreeMap::new(),
            acked: BTreeMap::new(),
            owners: BTreeMap::new(),
            trace: trace.then(Vec::new),
            stats: Stats::default(),
            max_generation: 0,
            offsets_may_have_moved: false,
            next_answer_check: 0,
        };
        for c in 0..members {
            sim.reschedule(c);
        }
        sim
    }

    fn log(&mut self, what: impl FnOnce() -> String) {
        if let Some(trace) = &mut self.trace {
            trace.push(format!("{:>8} {}", self.now, what()));
        }
    }

    fn schedule(&mut self, at: i64, event: Event) {
        self.seq += 1;
        self.events.insert((at, self.seq), event);
    }

    /// Network delay of one message: usually a few ms; in chaos, now and then seconds.
    fn delay(&mut self) -> i64 {
        if self.chaos && self.rng.chance(4) {
            self.rng.range(200, 3_000)
        } else {
            self.rng.range(1, 5)
        }
    }

    fn send(&mut self, client: usize, request: Request) -> RequestId {
        self.next_rid += 1;
        let rid = self.next_rid;
        let incarnation = if client == ADMIN {
            0
        } else {
            self.clients[client].incarnation
        };
        self.rid_owner.insert(rid, (client, incarnation));
        if client != ADMIN && self.clients[client].partitioned_until > self.now {
            self.log(|| format!("{client}: lost {rid}"));
            return rid;
        }
        let delay = self.delay();
        let mut at = self.now + delay;
        if client != ADMIN {
            at = at.max(self.to_coordinator_at[client]);
            self.to_coordinator_at[client] = at;
        }
        let duplicate = self.chaos && self.rng.chance(3);
        if duplicate {
            let again = at + self.rng.range(0, 500);
            if client != ADMIN {
                self.to_coordinator_at[client] = again;
            }
            self.schedule(
                again,
                Event::ToCoordinator {
                    coordinator: self.coordinator_incarnation,
                    rid,
                    request: request.clone(),
                },
            );
        }
        self.schedule(
            at,
            Event::ToCoordinator {
                coordinator: self.coordinator_incarnation,
                rid,
                request,
            },
        );
        rid
    }

    /// Hands the coordinator's outputs to the network and the log, checking each answer.
    fn pump(&mut self) {
        while let Some(output) = self.coordinator.poll_output() {
            match output {
                Output::Append(append) => {
                    let ok = !(self.chaos && self.rng.chance(2));
                    // The partition takes appends in the order they were asked for.
                    let at = (self.now + self.rng.range(1, 20)).max(self.last_append_at);
                    self.last_append_at = at;
                    self.in_flight.push(append.clone());
                    self.schedule(
                        at,
                        Event::AppendDone {
                            coordinator: self.coordinator_incarnation,
                            append,
                            ok,
                        },
                    );
                }
                Output::Response { request, response } => {
                    self.unanswered.remove(&request);
                    self.check_response(&response);
                    let Some(&(client, incarnation)) = self.rid_owner.get(&request) else {
                        continue;
                    };
                    if client == ADMIN {
                        continue;
                    }
                    if self.clients[client].partitioned_until > self.now {
                        continue;
                    }
                    let delay = self.delay();
                    let at = (self.now + delay).max(self.to_client_at[client]);
                    self.to_client_at[client] = at;
                    self.schedule(
                        at,
                        Event::ToClient {
                            client,
                            incarnation,
                            coordinator: self.coordinator_incarnation,
                            rid: request,
                            response,
                        },
                    );
                }
            }
        }
    }

    /// Invariants checked on every answer as the coordinator gives it.
    fn check_response(&mut self, response: &Response) {
        match response {
            Response::OffsetCommit(r) => {
                // The coordinator acknowledges only what is in the log; remember the
                // highest acknowledged offset (the partition's commit record holds it).
                for p in &r.partitions {
                    if p.error_code == KafkaCode::NONE {
                        let committed = self
                            .coordinator
                            .committed_offset(GROUP, &TopicPartition::new(TOPIC, p.partition))
                            .map(|o| o.offset)
                            .unwrap_or(-1);
                        let acked = self.acked.entry(p.partition).or_insert(-1);
                        *acked = (*acked).max(committed);
                    }
                }
            }
            Response::OffsetFetch(r) => {
                for p in &r.partitions {
                    if p.error_code != KafkaCode::NONE {
                        continue;
                    }
                    let acked = self.acked.get(&p.partition).copied().unwrap_or(-1);
                    assert!(
                        p.committed_offset >= acked,
                        "partition {} fetched at {} below the acknowledged commit {}",
                        p.partition,
                        p.committed_offset,
                        acked
                    );
                }
            }
            Response::SyncGroup(r) if r.error_code == KafkaCode::NONE => {
                // Recorded by the client, which knows who it is.
            }
            _ => {}
        }
    }

    fn check_offsets_monotonic(&mut self) {
        for p in 0..self.partitions {
            let Some(committed) = self
                .coordinator
                .committed_offset(GROUP, &TopicPartition::new(TOPIC, p))
                .map(|o| o.offset)
            else {
                continue;
            };
            let seen = self.committed_seen.entry(p).or_insert(-1);
            assert!(
                committed >= *seen,
                "partition {p}: committed offset moved back from {seen} to {committed}"
            );
            *seen = committed;
        }
    }

    fn check_answers_in_time(&self) {
        if let Some((rid, at)) = self
            .unanswered
            .iter()
            .find(|(_, &at)| self.now - at > ANSWER_BOUND_MS)
        {
            panic!(
                "request {rid} received at {at} still unanswered at {}",
                self.now
            );
        }
    }

    fn deliver_to_coordinator(&mut self, rid: RequestId, request: Request) {
        self.log(|| format!("coordinator <- {rid} {}", describe_request(&request)));
        self.unanswered.entry(rid).or_insert(self.now);
        self.coordinator.handle(self.now, rid, request);
        self.pump();
    }

    fn crash_coordinator(&mut self) {
        self.stats.coordinator_restarts += 1;
        // A prefix of the appends in flight made it to the log.
        let landed = self.rng.below(self.in_flight.len() as u64 + 1) as usize;
        let in_flight = std::mem::take(&mut self.in_flight);
        for append in in_flight.into_iter().take(landed) {
            self.append_to_log(&append);
        }
        self.log(|| format!("coordinator crash ({landed} in-flight appends landed)"));
        self.coordinator_incarnation += 1;
        self.coordinator = GroupCoordinator::new(config(), self.rng.next());
        self.coordinator.begin_loading(0);
        self.coordinator_up = false;
        self.unanswered.clear();
        let at = self.now + self.rng.range(0, 500);
        self.schedule(
            at,
            Event::LoadDone {
                coordinator: self.coordinator_incarnation,
            },
        );
        // Every client's connection drops: what it had in flight fails.
        for c in 0..self.clients.len() {
            let incarnation = self.clients[c].incarnation;
            let at = self.now + self.rng.range(1, 50);
            self.schedule(
                at,
                Event::Disconnect {
                    client: c,
                    incarnation,
                },
            );
        }
    }

    fn append_to_log(&mut self, append: &Append) {
        for record in &append.records {
            self.records.push(LoadEntry::Record {
                record: record.clone(),
                producer_id: append.producer.map(|p| p.producer_id),
            });
        }
    }

    fn run_until(&mut self, end: i64) {
        loop {
            let next_event = self.events.keys().next().map(|&(at, _)| at);
            let next_tick = self.coordinator.next_deadline();
            let next = match (next_event, next_tick) {
                (Some(e), Some(t)) => e.min(t),
                (Some(e), None) => e,
                (None, Some(t)) => t,
                (None, None) => break,
            };
            if next > end {
                break;
            }
            self.now = self.now.max(next);
            if next_tick.is_some_and(|t| t <= next) {
                self.coordinator.tick(self.now);
                self.pump();
            }
            if next_event.is_some_and(|e| e <= next) {
                if let Some((_, event)) = self.events.pop_first() {
                    self.on_event(event);
                }
            }
            if self.chaos {
                self.inject_faults();
            }
            if self.offsets_may_have_moved {
                self.offsets_may_have_moved = false;
                self.check_offsets_monotonic();
            }
            if self.now >= self.next_answer_check {
                self.next_answer_check = self.now + 1_000;
                self.check_answers_in_time();
            }
        }
        self.now = end;
    }

    fn inject_faults(&mut self) {
        // Roughly: per event, a small chance of one fault.
        let roll = self.rng.below(10_000);
        match roll {
            0..=3 if self.coordinator_up => self.crash_coordinator(),
            4..=20 => {
                let c = self.rng.below(self.clients.len() as u64) as usize;
                if self.clients[c].phase != Phase::Down {
                    self.crash_client(c);
                }
            }
            21..=30 => {
                let c = self.rng.below(self.clients.len() as u64) as usize;
                if self.clients[c].phase != Phase::Down {
                    self.leave(c);
                }
            }
            31..=40 => {
                let c = self.rng.below(self.clients.len() as u64) as usize;
                let until = self.now + self.rng.range(1_000, 6_000);
                self.log(|| format!("{c}: network partition until {until}"));
                self.clients[c].partitioned_until = until;
            }
            46..=55 => {
                let c = self.rng.below(self.clients.len() as u64) as usize;
                let until = self.now + self.rng.range(500, 6_000);
                self.log(|| format!("{c}: paused until {until}"));
                self.clients[c].paused_until = until;
            }
            41..=45 => {
                let rid_request = if self.rng.chance(50) {
                    Request::DescribeGroups(DescribeGroupsRequest {
                        groups: vec![GROUP.into(), "other".into()],
                        report_unknown_groups: self.rng.chance(50),
                    })
                } else {
                    Request::ListGroups(ListGroupsRequest::default())
                };
                self.send(ADMIN, rid_request);
            }
            _ => {}
        }
    }

    fn crash_client(&mut self, c: usize) {
        self.stats.crashes += 1;
        self.log(|| format!("{c}: crash"));
        let restart = self.now + self.rng.range(0, 2 * i64::from(SESSION_MS));
        self.go_down(c);
        self.clients[c].restart_at = Some(restart);
        self.reschedule(c);
    }

    fn go_down(&mut self, c: usize) {
        let client = &mut self.clients[c];
        client.phase = Phase::Down;
        client.incarnation += 1;
        client.group_request = None;
        client.heartbeat = None;
        client.commit = None;
        client.fetch = None;
        client.send_at = None;
        client.positions.clear();
        client.assignment.clear();
        client.next_heartbeat = i64::MAX;
        client.next_commit = i64::MAX;
    }

    fn leave(&mut self, c: usize) {
        self.log(|| format!("{c}: leaves"));
        let client = &self.clients[c];
        // Static members do not send LeaveGroup on shutdown (KIP-345).
        if client.instance_id.is_none() && !client.member_id.is_empty() {
            let request = Request::LeaveGroup(LeaveGroupRequest {
                group_id: GROUP.into(),
                members: vec![MemberIdentity {
                    member_id: client.member_id.clone(),
                    group_instance_id: None,
                    reason: Some("shutdown".into()),
                }],
            });
            self.send(c, request);
        }
        self.crash_client(c);
    }

    fn on_event(&mut self, event: Event) {
        // A paused client handles its events when it resumes, in their order.
        let paused = match &event {
            Event::ToClient { client, .. }
            | Event::Disconnect { client, .. }
            | Event::Wake { client } => {
                Some(*client).filter(|&c| self.clients[c].paused_until > self.now)
            }
            _ => None,
        };
        if let Some(c) = paused {
            // On resuming, its own timers run before it reads what arrived meanwhile (a
            // consumer commits from its poll loop before it sees the rebalance).
            let mut at = self.clients[c].paused_until;
            if let Event::Wake { .. } = event {
                self.clients[c].wake_at = at;
            } else {
                at += 1;
            }
            self.schedule(at, event);
            return;
        }
        match event {
            Event::ToCoordinator {
                coordinator,
                rid,
                request,
            } => {
                if coordinator == self.coordinator_incarnation {
                    self.deliver_to_coordinator(rid, request);
                }
            }
            Event::ToClient {
                client,
                incarnation,
                coordinator,
                rid,
                response,
            } => {
                if coordinator == self.coordinator_incarnation
                    && self.clients[client].incarnation == incarnation
                    && self.clients[client].partitioned_until <= self.now
                {
                    self.on_response(client, rid, response);
                }
            }
            Event::AppendDone {
                coordinator,
                append,
                ok,
            } => {
                if coordinator != self.coordinator_incarnation {
                    return;
                }
                if let Some(i) = self.in_flight.iter().position(|a| a.id == append.id) {
                    self.in_flight.remove(i);
                }
                if ok {
                    self.append_to_log(&append);
                }
                let result = if ok {
                    Ok(())
                } else {
                    Err(KafkaCode::NOT_ENOUGH_REPLICAS)
                };
                self.log(|| format!("append {} done: {result:?}", append.id));
                self.offsets_may_have_moved = true;
                self.coordinator
                    .append_completed(self.now, append.id, result);
                self.pump();
            }
            Event::LoadDone { coordinator } => {
                if coordinator == self.coordinator_incarnation {
                    let entries = self.records.len();
                    self.log(|| format!("coordinator loaded {entries} entries"));
                    self.coordinator
                        .load_partition(self.now, 0, self.records.clone());
                    self.offsets_may_have_moved = true;
                    self.coordinator_up = true;
                    self.pump();
                }
            }
            Event::Disconnect {
                client,
                incarnation,
            } => {
                if self.clients[client].incarnation == incarnation {
                    self.on_disconnect(client);
                }
            }
            Event::Wake { client } => {
                if self.clients[client].wake_at == self.now {
                    self.clients[client].wake_at = i64::MAX;
                    self.on_wake(client);
                }
            }
        }
        // Client state may have changed: make sure it wakes for its next timer.
        for c in 0..self.clients.len() {
            self.reschedule(c);
        }
    }

    fn reschedule(&mut self, c: usize) {
        let client = &self.clients[c];
        let mut at = client.next_heartbeat.min(client.next_commit);
        if let Some((t, _)) = client.send_at {
            at = at.min(t);
        }
        if let Some(t) = client.restart_at {
            at = at.min(t);
        }
        for timeout in [
            client.group_request.map(|(_, _, t)| t),
            client.heartbeat.map(|(_, t)| t),
            client.commit.map(|(_, t)| t),
            client.fetch.map(|(_, t)| t),
        ]
        .into_iter()
        .flatten()
        {
            at = at.min(timeout);
        }
        let at = at.max(self.now);
        if at != i64::MAX && at < self.clients[c].wake_at {
            self.clients[c].wake_at = at;
            self.schedule(at, Event::Wake { client: c });
        }
    }

    fn on_wake(&mut self, c: usize) {
        let now = self.now;
        if let Some(at) = self.clients[c].restart_at {
            if at <= now && (self.chaos || self.clients[c].phase != Phase::Down) {
                self.clients[c].restart_at = None;
                self.start(c);
            } else if at <= now {
                // Quiet phase: crashed members stay down.
                self.clients[c].restart_at = None;
            }
        }
        let client = &self.clients[c];
        if client.phase == Phase::Down {
            return;
        }
        // Timeouts of requests without an answer.
        if client.group_request.is_some_and(|(_, _, t)| t <= now) {
            self.log(|| format!("{c}: join/sync timed out"));
            self.clients[c].group_request = None;
            self.rejoin_member(c, 0);
        }
        if self.clients[c].heartbeat.is_some_and(|(_, t)| t <= now) {
            self.clients[c].heartbeat = None;
        }
        if self.clients[c].commit.is_some_and(|(_, t)| t <= now) {
            self.clients[c].commit = None;
        }
        if self.clients[c].fetch.is_some_and(|(_, t)| t <= now) {
            self.clients[c].fetch = None;
            self.send_fetch(c);
        }
        if let Some((at, kind)) = self.clients[c].send_at {
            if at <= now {
                self.clients[c].send_at = None;
                match kind {
                    Kind::Join => self.send_join(c),
                    Kind::Sync => self.send_sync(c),
                }
            }
        }
        let client = &self.clients[c];
        if client.next_heartbeat <= now {
            self.clients[c].next_heartbeat = now + HEARTBEAT_MS;
            let client = &self.clients[c];
            if client.heartbeat.is_none() && matches!(client.phase, Phase::Syncing | Phase::Stable)
            {
                let request = Request::Heartbeat(HeartbeatRequest {
                    group_id: GROUP.into(),
                    generation_id: client.generation,
                    member_id: client.member_id.clone(),
                    group_instance_id: client.instance_id.clone(),
                });
                let rid = self.send(c, request);
                self.clients[c].heartbeat = Some((rid, now + i64::from(SESSION_MS)));
            }
        }
        if self.clients[c].next_commit <= now {
            self.clients[c].next_commit = now + COMMIT_MS;
            self.commit(c);
        }
    }

    fn start(&mut self, c: usize) {
        let client = &mut self.clients[c];
        client.incarnation += 1;
        client.phase = Phase::Joining;
        client.member_id.clear();
        client.generation = -1;
        client.partitioned_until = 0;
        self.log(|| format!("{c}: start"));
        self.send_join(c);
    }

    fn send_join(&mut self, c: usize) {
        let client = &self.clients[c];
        let request = Request::JoinGroup(JoinGroupRequest {
            group_id: GROUP.into(),
            session_timeout_ms: SESSION_MS,
            rebalance_timeout_ms: REBALANCE_MS,
            member_id: client.member_id.clone(),
            group_instance_id: client.instance_id.clone(),
            protocol_type: "consumer".into(),
            protocols: vec![JoinGroupProtocol {
                name: protocol(self.cooperative).name().into(),
                metadata: subscription(&client.assignment, client.generation),
            }],
            client_id: client.name.clone(),
            client_host: "/127.0.0.1".into(),
            require_known_member_id: true,
            supports_skip_assignment: true,
            reason: None,
        });
        let rid = self.send(c, request);
        let client = &mut self.clients[c];
        client.phase = Phase::Joining;
        client.group_request = Some((rid, Kind::Join, self.now + JOIN_TIMEOUT_MS));
    }

    fn send_sync(&mut self, c: usize) {
        let client = &mut self.clients[c];
        let request = Request::SyncGroup(SyncGroupRequest {
            group_id: GROUP.into(),
            generation_id: client.generation,
            member_id: client.member_id.clone(),
            group_instance_id: client.instance_id.clone(),
            protocol_type: Some("consumer".into()),
            protocol_name: Some(protocol(self.cooperative).name().into()),
            assignments: std::mem::take(&mut client.sync_assignments),
        });
        let rid = self.send(c, request);
        let client = &mut self.clients[c];
        client.group_request = Some((rid, Kind::Sync, self.now + REQUEST_TIMEOUT_MS));
    }

    fn send_fetch(&mut self, c: usize) {
        let client = &self.clients[c];
        if client.phase != Phase::Stable || client.assignment.is_empty() {
            return;
        }
        let request = Request::OffsetFetch(OffsetFetchRequest {
            group_id: GROUP.into(),
            partitions: Some(
                client
                    .assignment
                    .iter()
                    .map(|&p| TopicPartition::new(TOPIC, p))
                    .collect(),
            ),
            require_stable: true,
        });
        let rid = self.send(c, request);
        self.clients[c].fetch = Some((rid, self.now + REQUEST_TIMEOUT_MS));
    }

    /// Joins again after `backoff` ms, still a member: the eager protocol gives the
    /// assignment up first, the cooperative one keeps it (and says so in the JoinGroup).
    fn rejoin_member(&mut self, c: usize, backoff: i64) {
        if !self.cooperative {
            return self.rejoin(c, backoff);
        }
        let client = &mut self.clients[c];
        client.phase = Phase::Joining;
        client.group_request = None;
        client.send_at = Some((self.now + backoff, Kind::Join));
    }

    /// Gives up the assignment (revoked, or lost with the membership) and joins again after
    /// `backoff` ms.
    fn rejoin(&mut self, c: usize, backoff: i64) {
        let client = &mut self.clients[c];
        client.phase = Phase::Joining;
        client.positions.clear();
        client.assignment.clear();
        client.fetch = None;
        client.group_request = None;
        client.send_at = Some((self.now + backoff, Kind::Join));
    }

    fn reset_member_id(&mut self, c: usize) {
        self.clients[c].member_id.clear();
        self.clients[c].generation = -1;
    }

    /// As Kafka's consumer after a refused heartbeat, sync or commit: the generation is
    /// gone (and with it the partitions); the member id too for UNKNOWN_MEMBER_ID, but not
    /// for ILLEGAL_GENERATION, where it may still be valid. Rejoining with it, and new
    /// metadata (it owns nothing now), makes the coordinator rebalance; a static member
    /// that came back with a fresh member id instead would take its stale place silently.
    fn reset_generation(&mut self, c: usize, code: KafkaCode) {
        if code == KafkaCode::ILLEGAL_GENERATION {
            self.clients[c].generation = -1;
        } else {
            self.reset_member_id(c);
        }
    }

    fn fenced(&mut self, c: usize) {
        // A fenced static member's process exits (Kafka raises a fatal error).
        self.stats.fenced += 1;
        self.log(|| format!("{c}: fenced"));
        self.go_down(c);
        if self.chaos {
            self.clients[c].restart_at = Some(self.now + self.rng.range(0, 2_000));
        }
    }

    fn commit(&mut self, c: usize) {
        let client = &self.clients[c];
        if client.phase != Phase::Stable || client.positions.is_empty() || client.commit.is_some() {
            return;
        }
        let moves: Vec<(i32, i64)> = client.positions.keys().map(|&p| (p, 0)).collect();
        let mut partitions = Vec::new();
        for (p, _) in moves {
            let step = self.rng.range(0, 5);
            let position = self.clients[c].positions.entry(p).or_insert(0);
            *position += step;
            partitions.push(OffsetCommitPartition {
                topic: TOPIC.into(),
                partition: p,
                committed_offset: *position,
                committed_leader_epoch: -1,
                committed_metadata: None,
            });
        }
        let client = &self.clients[c];
        let request = Request::OffsetCommit(OffsetCommitRequest {
            group_id: GROUP.into(),
            generation_id: client.generation,
            member_id: client.member_id.clone(),
            group_instance_id: client.instance_id.clone(),
            retention_time_ms: -1,
            partitions,
        });
        let rid = self.send(c, request);
        self.clients[c].commit = Some((rid, self.now + REQUEST_TIMEOUT_MS));
        self.clients[c].commit_generation = self.clients[c].generation;
    }

    fn on_disconnect(&mut self, c: usize) {
        let client = &mut self.clients[c];
        if client.phase == Phase::Down {
            return;
        }
        client.heartbeat = None;
        client.commit = None;
        let refetch = client.fetch.take().is_some();
        if client.group_request.take().is_some() {
            let backoff = self.rng.range(10, 200);
            self.rejoin_member(c, backoff);
        } else if refetch {
            self.send_fetch(c);
        }
    }

    fn on_response(&mut self, c: usize, rid: RequestId, response: Response) {
        self.log(|| format!("{c} <- {rid} {}", describe_response(&response)));
        let group_request = self.clients[c].group_request.map(|(id, k, _)| (id, k));
        let is_commit = self.clients[c].commit.map(|(id, _)| id) == Some(rid);
        match response {
            Response::JoinGroup(r) if group_request == Some((rid, Kind::Join)) => {
                self.clients[c].group_request = None;
                self.on_join(c, r);
            }
            Response::SyncGroup(r) if group_request == Some((rid, Kind::Sync)) => {
                self.clients[c].group_request = None;
                match r.error_code {
                    KafkaCode::NONE => {
                        let generation = self.clients[c].generation;
                        let assignment = decode_assignment(&r.assignment);
                        self.on_assigned(c, generation, assignment);
                    }
                    KafkaCode::FENCED_INSTANCE_ID => self.fenced(c),
                    code @ (KafkaCode::UNKNOWN_MEMBER_ID | KafkaCode::ILLEGAL_GENERATION) => {
                        self.reset_generation(c, code);
                        self.rejoin(c, 0);
                    }
                    _ => self.rejoin_member(c, 50),
                }
            }
            Response::Heartbeat(r) => {
                if self.clients[c].heartbeat.map(|(id, _)| id) != Some(rid) {
                    return;
                }
                self.clients[c].heartbeat = None;
                if self.clients[c].phase == Phase::Joining {
                    return;
                }
                match r.error_code {
                    KafkaCode::REBALANCE_IN_PROGRESS => {
                        // Commit what was consumed, then rejoin: giving every partition up
                        // (eager) or keeping them (cooperative).
                        self.clients[c].commit = None;
                        self.commit(c);
                        self.rejoin_member(c, 0);
                    }
                    KafkaCode::FENCED_INSTANCE_ID => self.fenced(c),
                    code @ (KafkaCode::UNKNOWN_MEMBER_ID | KafkaCode::ILLEGAL_GENERATION) => {
                        self.reset_generation(c, code);
                        self.rejoin(c, 0);
                    }
                    _ => {}
                }
            }
            Response::OffsetCommit(r) if is_commit => {
                self.clients[c].commit = None;
                // As Kafka's consumer: a commit refused for the membership or the
                // generation (unless the member has moved on since it sent it) means the
                // partitions are lost; it rejoins owning nothing.
                if self.clients[c].generation != self.clients[c].commit_generation {
                    return;
                }
                let code = r
                    .partitions
                    .iter()
                    .map(|p| p.error_code)
                    .find(|&e| e != KafkaCode::NONE);
                match code {
                    Some(KafkaCode::FENCED_INSTANCE_ID) => self.fenced(c),
                    Some(code @ (KafkaCode::UNKNOWN_MEMBER_ID | KafkaCode::ILLEGAL_GENERATION))
                        if self.clients[c].phase != Phase::Down =>
                    {
                        self.log(|| format!("{c}: commit fenced, partitions lost"));
                        self.reset_generation(c, code);
                        self.rejoin(c, 0);
                    }
                    _ => {}
                }
            }
            Response::OffsetFetch(r) => {
                if self.clients[c].fetch.map(|(id, _)| id) != Some(rid) {
                    return;
                }
                self.clients[c].fetch = None;
                if r.error_code != KafkaCode::NONE
                    || r.partitions.iter().any(|p| p.error_code != KafkaCode::NONE)
                {
                    // A commit of the previous owner is still being written: ask again.
                    self.clients[c].fetch = Some((rid, self.now + 50));
                    return;
                }
                let client = &mut self.clients[c];
                for p in r.partitions {
                    // Partitions kept through a cooperative rebalance go on from where the
                    // member is.
                    if client.assignment.contains(&p.partition) {
                        client
                            .positions
                            .entry(p.partition)
                            .or_insert(p.committed_offset.max(0));
                    }
                }
            }
            _ => {}
        }
    }

    fn on_join(&mut self, c: usize, r: JoinGroupResponse) {
        match r.error_code {
            KafkaCode::NONE => {
                let client = &mut self.clients[c];
                let previous_generation = client.generation;
                client.member_id = r.member_id.clone();
                client.generation = r.generation_id;
                client.phase = Phase::Syncing;
                client.next_heartbeat = self.now + HEARTBEAT_MS;
                // A generation went by without this member: it was a static member that
                // missed the join deadline, kept in the group with its stale subscription,
                // and the leader may have handed what it consumed to others meanwhile.
                // What it owned is lost, not revoked: dropped without a commit (its
                // positions may be behind the new owners' commits), fetched again if
                // assigned back.
                // It still rejoins at once if partitions it claimed are held back.
                client.missed_generation =
                    previous_generation >= 0 && r.generation_id > previous_generation + 1;
                // A static member back from a restart, in a generation that already was.
                if client.instance_id.is_some()
                    && previous_generation < 0
                    && r.generation_id <= self.max_generation
                {
                    self.stats.static_rejoins_without_rebalance += 1;
                }
                client.sync_assignments = if r.leader == r.member_id && !r.skip_assignment {
                    assign(&r.members, self.partitions, self.cooperative)
                } else {
                    Vec::new()
                };
                // Now and then a slow SyncGroup, sometimes slower than the rebalance timeout.
                let slow = self.chaos && self.rng.chance(5);
                let delay = if slow {
                    self.rng.range(0, 2 * i64::from(REBALANCE_MS))
                } else {
                    0
                };
                if delay == 0 {
                    self.send_sync(c);
                } else {
                    self.log(|| format!("{c}: slow sync by {delay}"));
                    self.clients[c].send_at = Some((self.now + delay, Kind::Sync));
                }
            }
            KafkaCode::MEMBER_ID_REQUIRED => {
                self.clients[c].member_id = r.member_id;
                self.send_join(c);
            }
            KafkaCode::FENCED_INSTANCE_ID | KafkaCode::GROUP_MAX_SIZE_REACHED => self.fenced(c),
            KafkaCode::UNKNOWN_MEMBER_ID | KafkaCode::ILLEGAL_GENERATION => {
                self.reset_member_id(c);
                self.rejoin(c, 10);
            }
            _ => self.rejoin_member(c, 100),
        }
    }

    fn on_assigned(&mut self, c: usize, generation: i32, assignment: Vec<i32>) {
        self.stats.rebalances_seen += 1;
        self.max_generation = self.max_generation.max(generation);
        let owner = {
            let client = &self.clients[c];
            client
                .instance_id
                .clone()
                .unwrap_or_else(|| client.member_id.clone())
        };
        let owners = self.owners.entry(generation).or_default();
        for &p in &assignment {
            if let Some(other) = owners.get(&p) {
                assert_eq!(
                    other, &owner,
                    "generation {generation}: partition {p} handed to {other} and {owner}"
                );
            }
            owners.insert(p, owner.clone());
        }
        self.check_not_consumed_by_another_member(c, generation, &assignment);
        let revoked: Vec<i32> = self.clients[c]
            .assignment
            .iter()
            .filter(|p| !assignment.contains(p))
            .copied()
            .collect();
        let client = &mut self.clients[c];
        client.phase = Phase::Stable;
        client.next_commit = self.now + COMMIT_MS;
        if !self.cooperative {
            client.assignment = assignment;
            client.positions.clear();
            self.send_fetch(c);
            return;
        }
        // Cooperative: commit what is revoked, stop consuming it, go on with the rest,
        // fetch what was added, and rejoin at once if anything was revoked.
        if client.missed_generation {
            client.positions.clear();
            self.log(|| format!("{c}: missed a generation, partitions lost"));
        } else if !revoked.is_empty() {
            client.commit = None;
            self.commit(c);
        }
        let client = &mut self.clients[c];
        client.positions.retain(|p, _| assignment.contains(p));
        client.assignment = assignment;
        client.fetch = None;
        self.send_fetch(c);
        if !revoked.is_empty() {
            self.stats.revocations += 1;
            self.log(|| format!("{c}: revoked {revoked:?}, rejoins"));
            self.rejoin_member(c, 0);
        }
    }

    /// A member handed `assignment` in `generation` must not get a partition that another
    /// member of the group in that generation still consumes. Members the coordinator
    /// removed, and members of an older generation (a static member that did not rejoin in
    /// time stays in the group with its old generation), are zombies: Kafka fences their
    /// commits (UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION) instead.
    fn check_not_consumed_by_another_member(&self, c: usize, generation: i32, assignment: &[i32]) {
        let members = self.coordinator.group_members(GROUP);
        if !members.contains(&self.clients[c].member_id) {
            return;
        }
        for (other, client) in self.clients.iter().enumerate() {
            if other == c
                || client.phase == Phase::Down
                || client.generation < generation
                || !members.contains(&client.member_id)
            {
                continue;
            }
            if let Some(p) = assignment.iter().find(|p| client.assignment.contains(p)) {
                panic!(
                    "generation {generation}: partition {p} handed to {} while {} (a member) still consumes it",
                    self.clients[c].name, client.name
                );
            }
        }
    }

    /// After a quiet phase: one Stable generation, every partition owned exactly once by a
    /// live member of it.
    fn check_settled(&self) {
        assert!(self.coordinator_up, "coordinator still loading");
        let live: Vec<&Client> = self
            .clients
            .iter()
            .filter(|c| c.phase != Phase::Down)
            .collect();
        let state = self.coordinator.group_state(GROUP);
        if live.is_empty() {
            assert!(
                matches!(state, None | Some(GroupState::Empty)),
                "no live member but the group is {state:?}"
            );
            return;
        }
        assert_eq!(state, Some(GroupState::Stable), "group not stable");
        let generation = self.coordinator.group_generation(GROUP);
        let mut members: Vec<String> = live.iter().map(|c| c.member_id.clone()).collect();
        members.sort();
        assert_eq!(
            self.coordinator.group_members(GROUP),
            members,
            "members differ"
        );
        let mut owned = BTreeMap::new();
        for c in &live {
            assert_eq!(c.phase, Phase::Stable, "{} not stable", c.name);
            assert_eq!(
                Some(c.generation),
                generation,
                "{} in another generation",
                c.name
            );
            for &p in &c.assignment {
                if let Some(other) = owned.insert(p, c.name.clone()) {
                    panic!("partition {p} owned by {other} and {}", c.name);
                }
                assert!(c.positions.contains_key(&p), "{} never fetched {p}", c.name);
            }
        }
        let all: BTreeSet<i32> = (0..self.partitions).collect();
        let covered: BTreeSet<i32> = owned.keys().copied().collect();
        assert_eq!(covered, all, "partitions without an owner");
        if let Some((rid, at)) = self
            .unanswered
            .iter()
            .find(|(_, &at)| self.now - at > 1_000)
        {
            panic!("request {rid} from {at} unanswered after the quiet phase");
        }
    }
}

fn describe_request(request: &Request) -> String {
    match request {
        Request::JoinGroup(r) => format!(
            "JoinGroup member={} instance={:?}",
            r.member_id, r.group_instance_id
        ),
        Request::SyncGroup(r) => format!(
            "SyncGroup member={} gen={} assignments={}",
            r.member_id,
            r.generation_id,
            r.assignments.len()
        ),
        Request::Heartbeat(r) => {
            format!("Heartbeat member={} gen={}", r.member_id, r.generation_id)
        }
        Request::LeaveGroup(r) => format!(
            "LeaveGroup {:?}",
            r.members.iter().map(|m| &m.member_id).collect::<Vec<_>>()
        ),
        Request::OffsetCommit(r) => format!(
            "OffsetCommit member={} gen={} {:?}",
            r.member_id,
            r.generation_id,
            r.partitions
                .iter()
                .map(|p| (p.partition, p.committed_offset))
                .collect::<Vec<_>>()
        ),
        Request::OffsetFetch(_) => "OffsetFetch".into(),
        other => format!("{other:?}").chars().take(60).collect(),
    }
}

fn describe_response(response: &Response) -> String {
    match response {
        Response::JoinGroup(r) => format!(
            "JoinGroup {:?} member={} gen={} leader={} members={} skip={}",
            r.error_code,
            r.member_id,
            r.generation_id,
            r.leader,
            r.members.len(),
            r.skip_assignment
        ),
        Response::SyncGroup(r) => format!(
            "SyncGroup {:?} {:?}",
            r.error_code,
            decode_assignment(&r.assignment)
        ),
        Response::Heartbeat(r) => format!("Heartbeat {:?}", r.error_code),
        Response::OffsetFetch(r) => format!(
            "OffsetFetch {:?}",
            r.partitions
                .iter()
                .map(|p| (p.partition, p.committed_offset, p.error_code))
                .collect::<Vec<_>>()
        ),
        Response::OffsetCommit(r) => format!(
            "OffsetCommit {:?}",
            r.partitions
                .iter()
                .map(|p| (p.partition, p.error_code))
                .collect::<Vec<_>>()
        ),
        other => format!("{other:?}").chars().take(60).collect(),
    }
}

/// Chaos and quiet phases in turn, checking after each quiet phase.
fn drive(sim: &mut Sim) {
    for _ in 0..2 {
        sim.chaos = true;
        let chaos_ms = sim.rng.range(10_000, 25_000);
        let end = sim.now + chaos_ms;
        sim.run_until(end);
        sim.chaos = false;
        for client in &mut sim.clients {
            client.partitioned_until = 0;
            client.paused_until = client.paused_until.min(sim.now);
        }
        let end = sim.now + QUIET_MS;
        sim.run_until(end);
        sim.check_settled();
    }
}

/// Runs a seed with its trace; hands back the trace and the failure, if any.
fn traced(seed: u64) -> (Vec<String>, Option<Box<dyn std::any::Any + Send>>) {
    let mut sim = Sim::new(seed, true);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drive(&mut sim)));
    (sim.trace.take().unwrap_or_default(), result.err())
}

fn seeds() -> Vec<u64> {
    if let Ok(seed) = std::env::var("STREAMLOG_SIM_SEED") {
        return vec![seed.parse().expect("STREAMLOG_SIM_SEED is a number")];
    }
    let n: u64 = std::env::var("STREAMLOG_SIM_SEEDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000);
    (0..n).collect()
}

#[test]
fn group_coordinator_simulation() {
    if let Ok(seed) = std::env::var("STREAMLOG_SIM_SEED") {
        let seed = seed.parse().expect("STREAMLOG_SIM_SEED is a number");
        let (trace, failure) = traced(seed);
        for line in trace {
            println!("{line}");
        }
        if let Some(cause) = failure {
            std::panic::resume_unwind(cause);
        }
        return;
    }
    let seeds = seeds();
    let mut total = Stats::default();
    for &seed in &seeds {
        let result = std::panic::catch_unwind(|| {
            let mut sim = Sim::new(seed, false);
            drive(&mut sim);
            sim.stats.cooperative_seeds = u64::from(sim.cooperative);
            sim.stats.cooperative_static_seeds =
                u64::from(sim.cooperative && sim.clients.iter().any(|c| c.instance_id.is_some()));
            sim.stats
        });
        match result {
            Ok(stats) => {
                total.rebalances_seen += stats.rebalances_seen;
                total.static_rejoins_without_rebalance += stats.static_rejoins_without_rebalance;
                total.coordinator_restarts += stats.coordinator_restarts;
                total.crashes += stats.crashes;
                total.fenced += stats.fenced;
                total.cooperative_seeds += stats.cooperative_seeds;
                total.cooperative_static_seeds += stats.cooperative_static_seeds;
                total.revocations += stats.revocations;
            }
            Err(cause) => {
                // The seed replays exactly: run it again to show how it got there.
                let (trace, _) = traced(seed);
                for line in trace.iter().rev().take(400).rev() {
                    eprintln!("{line}");
                }
                eprintln!("seed {seed} failed; replay with STREAMLOG_SIM_SEED={seed}");
                std::panic::resume_unwind(cause);
            }
        }
    }
    println!("{} seeds passed: {total:?}", seeds.len());
    if seeds.len() >= 100 {
        // The simulation must exercise what it claims to.
        assert!(total.coordinator_restarts > 0);
        assert!(total.crashes > 0);
        assert!(total.fenced > 0);
        assert!(total.static_rejoins_without_rebalance > 0);
        assert!(total.cooperative_seeds > seeds.len() as u64 / 4);
        assert!(total.cooperative_static_seeds > seeds.len() as u64 / 8);
        assert!(total.revocations > 0);
    }
}
