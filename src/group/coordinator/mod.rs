//! The group coordinator (classic protocol) as a sans-IO state machine: requests and
//! `tick(now)` in; responses, records for `__consumer_offsets` and the next deadline out.
//!
//! The application drives it. It feeds every request with [`GroupCoordinator::handle`],
//! calls [`GroupCoordinator::tick`] no later than [`GroupCoordinator::next_deadline`],
//! appends each [`Append`] to the offsets partition it names (in the order given) and
//! reports back with [`GroupCoordinator::append_completed`], and tells the coordinator which
//! offsets partitions it leads ([`GroupCoordinator::begin_loading`],
//! [`GroupCoordinator::load_partition`], [`GroupCoordinator::unload_partition`]). Everything
//! the coordinator has to say comes out of [`GroupCoordinator::poll_output`]. Time is the
//! `now` the application passes (milliseconds); nothing inside reads a clock, spawns, or
//! blocks, so one seed can drive a whole simulation.
//!
//! Behaviour follows Kafka's `GroupCoordinator` for the classic protocol: the states
//! Empty → PreparingRebalance → CompletingRebalance → Stable (and Dead), generations, the
//! `MEMBER_ID_REQUIRED` round trip, the delayed initial rebalance, removal of members that
//! stop heartbeating or never send SyncGroup, static membership (KIP-345), and Kafka's error
//! codes. A JoinGroup is answered when the rebalance completes; a leader's SyncGroup, and
//! every OffsetCommit, when its record is appended. One departure: a restarted static member
//! whose old incarnation owed a cooperative revocation (its stored subscription claims
//! partitions its assignment lacks) rejoins through a rebalance, where Kafka would take it
//! back silently and leave those partitions without an owner until a later rebalance.
//!
//! ```
//! use streamlog::group::coordinator::*;
//! use streamlog::KafkaCode;
//!
//! let config = GroupCoordinatorConfig { offsets_topic_num_partitions: 1, ..Default::default() };
//! let mut coordinator = GroupCoordinator::new(config, 42);
//! coordinator.load_partition(0, 0, Vec::new());
//!
//! let join = |member_id: &str| Request::JoinGroup(JoinGroupRequest {
//!     group_id: "g".into(), session_timeout_ms: 10_000, rebalance_timeout_ms: 30_000,
//!     member_id: member_id.into(), group_instance_id: None, protocol_type: "consumer".into(),
//!     protocols: vec![JoinGroupProtocol { name: "range".into(), metadata: vec![] }],
//!     client_id: "app".into(), client_host: "/127.0.0.1".into(),
//!     require_known_member_id: true, supports_skip_assignment: true, reason: None,
//! });
//! // The first join is answered MEMBER_ID_REQUIRED with the id to rejoin with.
//! coordinator.handle(0, 1, join(""));
//! let Some(Output::Response { response: Response::JoinGroup(r), .. }) = coordinator.poll_output()
//!     else { unreachable!() };
//! assert_eq!(r.error_code, KafkaCode::MEMBER_ID_REQUIRED);
//! // The rejoin waits out group.initial.rebalance.delay.ms (3 s), then completes.
//! coordinator.handle(0, 2, join(&r.member_id));
//! assert!(coordinator.poll_output().is_none());
//! coordinator.tick(coordinator.next_deadline().unwrap());
//! let Some(Output::Response { request: 2, response: Response::JoinGroup(r) }) = coordinator.poll_output()
//!     else { unreachable!() };
//! assert_eq!((r.error_code, r.generation_id), (KafkaCode::NONE, 1));
//! assert_eq!(r.leader, r.member_id);
//! ```

mod api;
mod group;
mod load;
mod member_id;
mod membership;
mod offset_requests;
mod offsets;
mod records;
mod timers;

use std::collections::{BTreeMap, HashMap};

/// A committed offset: the same type the offset store uses.
pub use crate::group::OffsetAndMetadata;
pub use api::*;
pub use group::GroupState;
pub use records::{Append, AppendId, LoadEntry, TxnProducer};

use crate::group::OffsetsRecord;
use crate::KafkaCode;
use group::Group;
use member_id::MemberIdGenerator;
use timers::{TimerKind, Timers};

/// The coordinator's settings, with Kafka's names and defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupCoordinatorConfig {
    /// `offsets.topic.num.partitions` (50): how groups map to offsets partitions.
    pub offsets_topic_num_partitions: u32,
    /// `group.min.session.timeout.ms` (6 s).
    pub group_min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms` (30 min).
    pub group_max_session_timeout_ms: i32,
    /// `group.max.size` (unbounded).
    pub group_max_size: usize,
    /// `group.initial.rebalance.delay.ms` (3 s).
    pub group_initial_rebalance_delay_ms: i64,
    /// `offsets.retention.minutes` in ms (7 days).
    pub offsets_retention_ms: i64,
    /// `offsets.retention.check.interval.ms` (10 min).
    pub offsets_retention_check_interval_ms: i64,
    /// `offset.metadata.max.bytes` (4096).
    pub offset_metadata_max_bytes: usize,
    /// How long a new member's JoinGroup may wait in a rebalance (Kafka's fixed 5 min).
    pub new_member_join_timeout_ms: i64,
}

impl Default for GroupCoordinatorConfig {
    fn default() -> Self {
        GroupCoordinatorConfig {
            offsets_topic_num_partitions: crate::group::DEFAULT_OFFSETS_TOPIC_NUM_PARTITIONS,
            group_min_session_timeout_ms: 6_000,
            group_max_session_timeout_ms: 1_800_000,
            group_max_size: usize::MAX,
            group_initial_rebalance_delay_ms: 3_000,
            offsets_retention_ms: 7 * 24 * 60 * 60 * 1000,
            offsets_retention_check_interval_ms: 600_000,
            offset_metadata_max_bytes: 4096,
            new_member_join_timeout_ms: 300_000,
        }
    }
}

/// Something the coordinator has to say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send `response` as the answer to `request`.
    Response {
        /// The id the request came in with.
        request: RequestId,
        /// The answer.
        response: Response,
    },
    /// Append these records, then call
    /// [`append_completed`](GroupCoordinator::append_completed).
    Append(Append),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PartitionState {
    Loading,
    Active,
}

/// Which request a group-status check is for (Kafka allows an empty group id for some).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    JoinGroup,
    SyncGroup,
    Heartbeat,
    LeaveGroup,
    OffsetCommit,
    OffsetFetch,
    TxnOffsetCommit,
    DescribeGroups,
    DeleteGroups,
    OffsetDelete,
}

/// What the coordinator does when an append it asked for completes.
#[derive(Debug)]
enum AppendPurpose {
    /// OffsetCommit / TxnOffsetCommit: answer per partition.
    Commit {
        group: String,
        request: RequestId,
        results: Vec<PartitionResult>,
        written: Vec<(usize, TopicPartition, OffsetAndMetadata)>,
        producer_id: Option<i64>,
    },
    /// The leader's SyncGroup: install the assignment if the generation still waits for it.
    Assignment {
        group: String,
        generation: i32,
        assignment: BTreeMap<String, Vec<u8>>,
    },
    /// A restarted static member took its old place without a rebalance.
    StaticRejoin(Box<StaticRejoin>),
    /// Nothing waits on it (empty-group metadata, tombstones).
    Nothing,
}

#[derive(Debug)]
struct StaticRejoin {
    group: String,
    request: RequestId,
    instance_id: String,
    old_id: String,
    new_id: String,
    old_protocols: Vec<JoinGroupProtocol>,
    old_rebalance_timeout_ms: i32,
    old_session_timeout_ms: i32,
    previous_leader: Option<String>,
    supports_skip_assignment: bool,
}

#[derive(Debug)]
struct PendingAppend {
    partition: i32,
    purpose: AppendPurpose,
}

/// The parts of the coordinator that group handlers use beside the group itself.
#[derive(Debug)]
struct Core {
    config: GroupCoordinatorConfig,
    outbox: std::collections::VecDeque<Output>,
    timers: Timers,
    next_append_id: AppendId,
    appends: HashMap<AppendId, PendingAppend>,
    member_ids: MemberIdGenerator,
    /// When the armed offset-expiration timer fires.
    retention_at: Option<i64>,
}

impl Core {
    fn respond(&mut self, request: RequestId, response: Response) {
        self.outbox
            .push_back(Output::Response { request, response });
    }

    fn append(
        &mut self,
        partition: i32,
        producer: Option<TxnProducer>,
        records: Vec<OffsetsRecord>,
        purpose: AppendPurpose,
    ) -> AppendId {
        self.next_append_id += 1;
        let id = self.next_append_id;
        self.appends
            .insert(id, PendingAppend { partition, purpose });
        self.outbox.push_back(Output::Append(Append {
            id,
            partition,
            producer,
            records,
        }));
        id
    }
}

/// The classic-protocol group coordinator for the offsets partitions this node leads.
/// See the [module docs](self).
#[derive(Debug)]
pub struct GroupCoordinator {
    partitions: BTreeMap<i32, PartitionState>,
    groups: BTreeMap<String, Group>,
    core: Core,
}

impl GroupCoordinator {
    /// A coordinator leading no partition yet. `seed` drives the random part of member ids:
    /// give each coordinator (and each restart) a fresh one, e.g. from the OS.
    pub fn new(config: GroupCoordinatorConfig, seed: u64) -> Self {
        GroupCoordinator {
            partitions: BTreeMap::new(),
            groups: BTreeMap::new(),
            core: Core {
                config,
                outbox: std::collections::VecDeque::new(),
                timers: Timers::default(),
                next_append_id: 0,
                appends: HashMap::new(),
                member_ids: MemberIdGenerator::new(seed),
                retention_at: None,
            },
        }
    }

    /// The settings.
    pub fn config(&self) -> &GroupCoordinatorConfig {
        &self.core.config
    }

    /// The offsets partition of `group_id` (Kafka's rule, see
    /// [`partition_for_group`](crate::group::partition_for_group)).
    pub fn partition_for(&self, group_id: &str) -> i32 {
        let partitions = self.core.config.offsets_topic_num_partitions.max(1);
        crate::group::partition_for_group(group_id, partitions)
            .map_or(0, |p| i32::try_from(p).unwrap_or(0))
    }

    /// Handles one request at time `now` (ms). The answer comes out of
    /// [`poll_output`](Self::poll_output), now or (JoinGroup, SyncGroup, commits) later.
    pub fn handle(&mut self, now: i64, request_id: RequestId, request: Request) {
        match request {
            Request::JoinGroup(r) => self.join_group(now, request_id, r),
            Request::SyncGroup(r) => self.sync_group(now, request_id, r),
            Request::Heartbeat(r) => self.heartbeat(now, request_id, r),
            Request::LeaveGroup(r) => self.leave_group(now, request_id, r),
            Request::OffsetCommit(r) => self.offset_commit(now, request_id, r),
            Request::OffsetFetch(r) => self.offset_fetch(request_id, r),
            Request::OffsetFetchGroups(r) => self.offset_fetch_groups(request_id, r),
            Request::TxnOffsetCommit(r) => self.txn_offset_commit(now, request_id, r),
            Request::DescribeGroups(r) => self.describe_groups(request_id, r),
            Request::ListGroups(r) => self.list_groups(request_id, r),
            Request::DeleteGroups(r) => self.delete_groups(now, request_id, r),
            Request::OffsetDelete(r) => self.offset_delete(request_id, r),
        }
    }

    /// The next output, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.core.outbox.pop_front()
    }

    /// Every output so far.
    pub fn drain_outputs(&mut self) -> Vec<Output> {
        self.core.outbox.drain(..).collect()
    }

    /// When [`tick`](Self::tick) must be called next (ms), if anything waits on time. An
    /// early tick is harmless.
    pub fn next_deadline(&self) -> Option<i64> {
        self.core.timers.next()
    }

    /// Fires every timer due at `now`: session timeouts, rebalance and sync deadlines,
    /// the delayed initial rebalance, offset expiration.
    pub fn tick(&mut self, now: i64) {
        while let Some((at, timer)) = self.core.timers.pop_due(now) {
            match timer.kind {
                TimerKind::Retention => self.expire_offsets(now, at),
                kind => {
                    let Some(group) = self.groups.get_mut(&timer.group) else {
                        continue;
                    };
                    match kind {
                        TimerKind::Heartbeat(member) => {
                            self.core.on_heartbeat_timer(group, &member, at, now)
                        }
                        TimerKind::PendingMember(member) => {
                            self.core.on_pending_member_timer(group, &member, at, now)
                        }
                        TimerKind::Join => self.core.on_join_timer(group, at, now),
                        TimerKind::Sync => self.core.on_sync_timer(group, at, now),
                        TimerKind::Retention => {}
                    }
                }
            }
        }
    }

    /// The state of a group this coordinator holds, if any.
    pub fn group_state(&self, group_id: &str) -> Option<GroupState> {
        self.groups.get(group_id).map(|g| g.state)
    }

    /// The generation of a group this coordinator holds, if any.
    pub fn group_generation(&self, group_id: &str) -> Option<i32> {
        self.groups.get(group_id).map(|g| g.generation)
    }

    /// The member ids of a group, sorted.
    pub fn group_members(&self, group_id: &str) -> Vec<String> {
        self.groups
            .get(group_id)
            .map(|g| g.members.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The committed offset of a group for a partition, as OffsetFetch would answer it.
    pub fn committed_offset(
        &self,
        group_id: &str,
        tp: &TopicPartition,
    ) -> Option<OffsetAndMetadata> {
        self.groups.get(group_id).and_then(|g| g.offsets.get(tp))
    }

    /// How many committed offsets the coordinator holds, over every group.
    pub fn committed_offset_count(&self) -> usize {
        self.groups.values().map(|g| g.offsets.len()).sum()
    }

    /// Kafka's `validateGroupStatus`: a valid id, in a partition this node leads and has
    /// loaded.
    fn validate_group_status(&self, group_id: &str, api: Api) -> Option<KafkaCode> {
        let empty_allowed = matches!(
            api,
            Api::OffsetCommit | Api::OffsetFetch | Api::DescribeGroups | Api::DeleteGroups
        );
        if group_id.is_empty() && !empty_allowed {
            return Some(KafkaCode::INVALID_GROUP_ID);
        }
        match self.partitions.get(&self.partition_for(group_id)) {
            None => Some(KafkaCode::NOT_COORDINATOR),
            Some(PartitionState::Loading) => Some(KafkaCode::COORDINATOR_LOAD_IN_PROGRESS),
            Some(PartitionState::Active) => None,
        }
    }
}

/// Kafka's mapping of an append error for group metadata (`storeGroup`).
fn store_group_error(code: KafkaCode) -> KafkaCode {
    match code {
        KafkaCode::UNKNOWN_TOPIC_OR_PARTITION
        | KafkaCode::NOT_ENOUGH_REPLICAS
        | KafkaCode::NOT_ENOUGH_REPLICAS_AFTER_APPEND
        | KafkaCode::REQUEST_TIMED_OUT => KafkaCode::COORDINATOR_NOT_AVAILABLE,
        KafkaCode::NOT_LEADER_OR_FOLLOWER | KafkaCode::KAFKA_STORAGE_ERROR => {
            KafkaCode::NOT_COORDINATOR
        }
        KafkaCode::MESSAGE_TOO_LARGE
        | KafkaCode::RECORD_LIST_TOO_LARGE
        | KafkaCode::INVALID_FETCH_SIZE => KafkaCode::UNKNOWN_SERVER_ERROR,
        other => other,
    }
}

/// Kafka's mapping of an append error for offset commits.
fn commit_error(code: KafkaCode) -> KafkaCode {
    match code {
        KafkaCode::MESSAGE_TOO_LARGE
        | KafkaCode::RECORD_LIST_TOO_LARGE
        | KafkaCode::INVALID_FETCH_SIZE => KafkaCode::INVALID_COMMIT_OFFSET_SIZE,
        other => store_group_error(other),
    }
}

#[cfg(test)]
mod tests;
