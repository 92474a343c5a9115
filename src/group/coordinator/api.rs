//! The coordinator's requests and responses: plain structs a broker fills from (and turns
//! into) Kafka's wire messages. Field names follow Kafka's message schemas; where Kafka's
//! message nests partitions under topics, these carry flat `(topic, partition)` lists, and
//! the broker regroups them.

use crate::KafkaCode;

/// Identifies one request to the application: the coordinator hands it back with the
/// response (a connection and correlation id, say). The coordinator never looks inside.
pub type RequestId = u64;

/// A request the coordinator answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// JoinGroup (API key 11).
    JoinGroup(JoinGroupRequest),
    /// SyncGroup (API key 14).
    SyncGroup(SyncGroupRequest),
    /// Heartbeat (API key 12).
    Heartbeat(HeartbeatRequest),
    /// LeaveGroup (API key 13).
    LeaveGroup(LeaveGroupRequest),
    /// OffsetCommit (API key 8).
    OffsetCommit(OffsetCommitRequest),
    /// OffsetFetch (API key 9), one group (v0–7, or one group of a v8+ request).
    OffsetFetch(OffsetFetchRequest),
    /// OffsetFetch v8+ (API key 9) with several groups, answered together.
    OffsetFetchGroups(OffsetFetchGroupsRequest),
    /// TxnOffsetCommit (API key 28).
    TxnOffsetCommit(TxnOffsetCommitRequest),
    /// DescribeGroups (API key 15).
    DescribeGroups(DescribeGroupsRequest),
    /// ListGroups (API key 16).
    ListGroups(ListGroupsRequest),
    /// DeleteGroups (API key 42).
    DeleteGroups(DeleteGroupsRequest),
    /// OffsetDelete (API key 47).
    OffsetDelete(OffsetDeleteRequest),
}

/// The coordinator's answer to a [`Request`] of the same name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// Answer to [`Request::JoinGroup`].
    JoinGroup(JoinGroupResponse),
    /// Answer to [`Request::SyncGroup`].
    SyncGroup(SyncGroupResponse),
    /// Answer to [`Request::Heartbeat`].
    Heartbeat(HeartbeatResponse),
    /// Answer to [`Request::LeaveGroup`].
    LeaveGroup(LeaveGroupResponse),
    /// Answer to [`Request::OffsetCommit`].
    OffsetCommit(OffsetCommitResponse),
    /// Answer to [`Request::OffsetFetch`].
    OffsetFetch(OffsetFetchResponse),
    /// Answer to [`Request::OffsetFetchGroups`].
    OffsetFetchGroups(OffsetFetchGroupsResponse),
    /// Answer to [`Request::TxnOffsetCommit`].
    TxnOffsetCommit(OffsetCommitResponse),
    /// Answer to [`Request::DescribeGroups`].
    DescribeGroups(DescribeGroupsResponse),
    /// Answer to [`Request::ListGroups`].
    ListGroups(ListGroupsResponse),
    /// Answer to [`Request::DeleteGroups`].
    DeleteGroups(DeleteGroupsResponse),
    /// Answer to [`Request::OffsetDelete`].
    OffsetDelete(OffsetDeleteResponse),
}

/// A topic partition named by topic and index.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// The topic name.
    pub topic: String,
    /// The partition index.
    pub partition: i32,
}

impl TopicPartition {
    /// Partition `partition` of `topic`.
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }
}

/// One protocol (for consumers: one assignor) a joining member supports, with its metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinGroupProtocol {
    /// The protocol name (`range`, `cooperative-sticky`, …).
    pub name: String,
    /// The member's metadata for it (for consumers an encoded subscription).
    pub metadata: Vec<u8>,
}

/// JoinGroup: become a member, or rejoin for the next generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinGroupRequest {
    /// The group id.
    pub group_id: String,
    /// `session.timeout.ms`.
    pub session_timeout_ms: i32,
    /// `rebalance.timeout.ms` (v0 has none: pass the session timeout).
    pub rebalance_timeout_ms: i32,
    /// The member id: empty on the first join.
    pub member_id: String,
    /// `group.instance.id` of a static member (v5+).
    pub group_instance_id: Option<String>,
    /// The protocol type (`consumer`).
    pub protocol_type: String,
    /// The protocols the member supports, in order of preference.
    pub protocols: Vec<JoinGroupProtocol>,
    /// The client's `client.id` (from the request header).
    pub client_id: String,
    /// The client's host, as the broker saw it.
    pub client_host: String,
    /// True for JoinGroup v4+: a first join is answered `MEMBER_ID_REQUIRED` with the
    /// member id to rejoin with.
    pub require_known_member_id: bool,
    /// True for JoinGroup v9+: a restarting static leader may be told to skip the assignment.
    pub supports_skip_assignment: bool,
    /// Why the member joins (v8+; informational).
    pub reason: Option<String>,
}

/// One member in the leader's JoinGroup response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinGroupResponseMember {
    /// The member id.
    pub member_id: String,
    /// Its `group.instance.id`.
    pub group_instance_id: Option<String>,
    /// Its metadata for the selected protocol.
    pub metadata: Vec<u8>,
}

/// The answer to a JoinGroup: the generation and, for the leader, every member's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinGroupResponse {
    /// Kafka's error code.
    pub error_code: KafkaCode,
    /// The generation id (-1 on error).
    pub generation_id: i32,
    /// The group's protocol type.
    pub protocol_type: Option<String>,
    /// The selected protocol.
    pub protocol_name: Option<String>,
    /// The leader's member id (empty on error).
    pub leader: String,
    /// True when the (static, restarting) leader must not run the assignor (v9+).
    pub skip_assignment: bool,
    /// The member id the member is known by (also on `MEMBER_ID_REQUIRED`).
    pub member_id: String,
    /// Every member with its metadata; only in the leader's response.
    pub members: Vec<JoinGroupResponseMember>,
}

impl JoinGroupResponse {
    /// An error answer, as Kafka sends one.
    pub fn error(member_id: impl Into<String>, error_code: KafkaCode) -> Self {
        JoinGroupResponse {
            error_code,
            generation_id: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            skip_assignment: false,
            member_id: member_id.into(),
            members: Vec::new(),
        }
    }
}

/// One member's assignment in the leader's SyncGroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncGroupAssignment {
    /// The member id.
    pub member_id: String,
    /// Its assignment (for consumers an encoded assignment).
    pub assignment: Vec<u8>,
}

/// SyncGroup: the leader hands in the assignment; every member gets its own back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncGroupRequest {
    /// The group id.
    pub group_id: String,
    /// The generation the member joined.
    pub generation_id: i32,
    /// The member id.
    pub member_id: String,
    /// `group.instance.id` of a static member.
    pub group_instance_id: Option<String>,
    /// The protocol type (v5+), checked against the group's.
    pub protocol_type: Option<String>,
    /// The protocol name (v5+), checked against the group's.
    pub protocol_name: Option<String>,
    /// The leader's assignment; empty for followers.
    pub assignments: Vec<SyncGroupAssignment>,
}

/// The answer to a SyncGroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncGroupResponse {
    /// Kafka's error code.
    pub error_code: KafkaCode,
    /// The group's protocol type (v5+).
    pub protocol_type: Option<String>,
    /// The group's protocol (v5+).
    pub protocol_name: Option<String>,
    /// This member's assignment.
    pub assignment: Vec<u8>,
}

impl SyncGroupResponse {
    /// An error answer.
    pub fn error(error_code: KafkaCode) -> Self {
        SyncGroupResponse {
            error_code,
            protocol_type: None,
            protocol_name: None,
            assignment: Vec::new(),
        }
    }
}

/// Heartbeat: the member is alive in this generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatRequest {
    /// The group id.
    pub group_id: String,
    /// The member's generation.
    pub generation_id: i32,
    /// The member id.
    pub member_id: String,
    /// `group.instance.id` of a static member.
    pub group_instance_id: Option<String>,
}

/// The answer to a Heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeartbeatResponse {
    /// Kafka's error code (`REBALANCE_IN_PROGRESS` tells the member to rejoin).
    pub error_code: KafkaCode,
}

/// One member leaving (LeaveGroup v3+ batches them; v0–2 carry one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberIdentity {
    /// The member id; empty when an admin removes a static member by instance id.
    pub member_id: String,
    /// `group.instance.id` of a static member.
    pub group_instance_id: Option<String>,
    /// Why it leaves (v5+; informational).
    pub reason: Option<String>,
}

/// LeaveGroup: members leave the group (a rebalance follows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaveGroupRequest {
    /// The group id.
    pub group_id: String,
    /// The leaving members.
    pub members: Vec<MemberIdentity>,
}

/// One member's result in a LeaveGroup response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaveGroupMemberResponse {
    /// The member id.
    pub member_id: String,
    /// Its `group.instance.id`.
    pub group_instance_id: Option<String>,
    /// Kafka's error code for this member.
    pub error_code: KafkaCode,
}

/// The answer to a LeaveGroup. For v0–2 the broker answers with the one member's code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaveGroupResponse {
    /// The top-level error code.
    pub error_code: KafkaCode,
    /// Per-member results (empty when the top-level code is an error).
    pub members: Vec<LeaveGroupMemberResponse>,
}

/// One partition's offset to commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetCommitPartition {
    /// The topic name.
    pub topic: String,
    /// The partition index.
    pub partition: i32,
    /// The offset to commit (the next record to consume).
    pub committed_offset: i64,
    /// The leader epoch of the last consumed record (-1 if unknown).
    pub committed_leader_epoch: i32,
    /// Free-form metadata (at most `offset.metadata.max.bytes`).
    pub committed_metadata: Option<String>,
}

/// OffsetCommit: store the consumed positions of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetCommitRequest {
    /// The group id (may be empty, for compatibility).
    pub group_id: String,
    /// The member's generation; -1 for a client that does not use group management.
    pub generation_id: i32,
    /// The member id; empty for a client that does not use group management.
    pub member_id: String,
    /// `group.instance.id` of a static member.
    pub group_instance_id: Option<String>,
    /// Retention for these offsets in ms (v2–4); -1 for the broker's retention.
    pub retention_time_ms: i64,
    /// The offsets.
    pub partitions: Vec<OffsetCommitPartition>,
}

/// TxnOffsetCommit: offsets that become visible when the producer's transaction commits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnOffsetCommitRequest {
    /// The producer's `transactional.id`.
    pub transactional_id: String,
    /// The group id.
    pub group_id: String,
    /// The producer id.
    pub producer_id: i64,
    /// The producer epoch.
    pub producer_epoch: i16,
    /// The member's generation (v3+; -1 otherwise).
    pub generation_id: i32,
    /// The member id (v3+; empty otherwise).
    pub member_id: String,
    /// `group.instance.id` (v3+).
    pub group_instance_id: Option<String>,
    /// The offsets.
    pub partitions: Vec<OffsetCommitPartition>,
}

/// One partition's result of an OffsetCommit or TxnOffsetCommit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionResult {
    /// The topic name.
    pub topic: String,
    /// The partition index.
    pub partition: i32,
    /// Kafka's error code.
    pub error_code: KafkaCode,
}

/// The answer to an OffsetCommit or TxnOffsetCommit: one code per partition, in request order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetCommitResponse {
    /// Per-partition results.
    pub partitions: Vec<PartitionResult>,
}

/// OffsetFetch for one group (v8+ batches groups: the broker sends one of these per group).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetFetchRequest {
    /// The group id.
    pub group_id: String,
    /// The partitions to fetch; `None` fetches every committed offset of the group.
    pub partitions: Option<Vec<TopicPartition>>,
    /// `require_stable` (v7+): answer `UNSTABLE_OFFSET_COMMIT` for a partition with a
    /// pending (transactional or not yet written) commit.
    pub require_stable: bool,
}

/// One partition's committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetFetchPartition {
    /// The topic name.
    pub topic: String,
    /// The partition index.
    pub partition: i32,
    /// The committed offset, -1 if none.
    pub committed_offset: i64,
    /// The committed leader epoch, -1 if none.
    pub committed_leader_epoch: i32,
    /// The committed metadata.
    pub metadata: Option<String>,
    /// Kafka's error code for this partition.
    pub error_code: KafkaCode,
}

/// The answer to an OffsetFetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetFetchResponse {
    /// The group-level error code.
    pub error_code: KafkaCode,
    /// The partitions.
    pub partitions: Vec<OffsetFetchPartition>,
}

/// OffsetFetch v8+ for several groups (each entry's `require_stable` is the request's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetFetchGroupsRequest {
    /// One entry per group, in request order.
    pub groups: Vec<OffsetFetchRequest>,
}

/// One group's part of an [`OffsetFetchGroupsResponse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetFetchGroupResponse {
    /// The group id.
    pub group_id: String,
    /// Its answer, as for a single-group OffsetFetch.
    pub response: OffsetFetchResponse,
}

/// The answer to an OffsetFetch v8+, one entry per requested group, in request order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetFetchGroupsResponse {
    /// The groups.
    pub groups: Vec<OffsetFetchGroupResponse>,
}

/// DescribeGroups.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DescribeGroupsRequest {
    /// The group ids.
    pub groups: Vec<String>,
    /// True for DescribeGroups v6+ (KIP-1043): a group the coordinator does not hold is
    /// answered `GROUP_ID_NOT_FOUND` (with a message); older versions answer it as a `Dead`
    /// group without error.
    pub report_unknown_groups: bool,
}

/// One member as DescribeGroups shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedGroupMember {
    /// The member id.
    pub member_id: String,
    /// Its `group.instance.id`.
    pub group_instance_id: Option<String>,
    /// Its `client.id`.
    pub client_id: String,
    /// Its host.
    pub client_host: String,
    /// Its metadata for the selected protocol (empty unless the group is Stable).
    pub member_metadata: Vec<u8>,
    /// Its assignment (empty unless the group is Stable).
    pub member_assignment: Vec<u8>,
}

/// One group as DescribeGroups shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedGroup {
    /// Kafka's error code.
    pub error_code: KafkaCode,
    /// Why, for some errors (v6+).
    pub error_message: Option<String>,
    /// The group id.
    pub group_id: String,
    /// The state: `Empty`, `PreparingRebalance`, `CompletingRebalance`, `Stable` or `Dead`
    /// (empty on error).
    pub group_state: String,
    /// The protocol type.
    pub protocol_type: String,
    /// The selected protocol (empty unless Stable).
    pub protocol_data: String,
    /// The members.
    pub members: Vec<DescribedGroupMember>,
}

/// The answer to a DescribeGroups, one entry per requested group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribeGroupsResponse {
    /// The groups.
    pub groups: Vec<DescribedGroup>,
}

/// ListGroups.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListGroupsRequest {
    /// States to list (v4+, case-insensitive); empty lists every group.
    pub states_filter: Vec<String>,
    /// Group types to list (v5+, case-insensitive: `classic`, `consumer`, `share`); empty
    /// lists every type. Every group this coordinator holds is `classic`.
    pub types_filter: Vec<String>,
}

/// One group in a ListGroups answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedGroup {
    /// The group id.
    pub group_id: String,
    /// Its protocol type.
    pub protocol_type: String,
    /// Its state (v4+).
    pub group_state: String,
    /// Its type (v5+): `classic`, the only type this coordinator runs.
    pub group_type: String,
}

/// The answer to a ListGroups, sorted by group id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListGroupsResponse {
    /// `COORDINATOR_LOAD_IN_PROGRESS` while a partition loads (the list is partial).
    pub error_code: KafkaCode,
    /// The groups.
    pub groups: Vec<ListedGroup>,
}

/// DeleteGroups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteGroupsRequest {
    /// The group ids.
    pub groups_names: Vec<String>,
}

/// One group's result of a DeleteGroups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletedGroup {
    /// The group id.
    pub group_id: String,
    /// Kafka's error code.
    pub error_code: KafkaCode,
}

/// The answer to a DeleteGroups, in request order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteGroupsResponse {
    /// The results.
    pub results: Vec<DeletedGroup>,
}

/// OffsetDelete: remove committed offsets of partitions the group no longer consumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetDeleteRequest {
    /// The group id.
    pub group_id: String,
    /// The partitions.
    pub partitions: Vec<TopicPartition>,
}

/// The answer to an OffsetDelete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetDeleteResponse {
    /// The group-level error code; when set, `partitions` is empty.
    pub error_code: KafkaCode,
    /// Per-partition results.
    pub partitions: Vec<PartitionResult>,
}
