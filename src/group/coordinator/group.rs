//! One classic group's membership state (Kafka's `GroupMetadata`/`MemberMetadata`): members,
//! static members, the generation, the leader, protocol votes. No timers or outputs here;
//! the coordinator drives the transitions.

use std::collections::{BTreeMap, BTreeSet};

use super::api::{JoinGroupProtocol, JoinGroupResponseMember, RequestId};
use super::offsets::GroupOffsets;
use crate::group::{
    ConsumerProtocolAssignment, ConsumerProtocolSubscription, CONSUMER_PROTOCOL_TYPE,
};

/// The state of a classic group, with Kafka's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupState {
    /// No members; committed offsets may remain.
    Empty,
    /// A rebalance started: waiting for members to (re)join.
    PreparingRebalance,
    /// Everyone joined; waiting for the leader's assignment.
    CompletingRebalance,
    /// Members hold their assignment.
    Stable,
    /// The group is gone (deleted, expired or unloaded).
    Dead,
}

impl GroupState {
    /// Kafka's name for the state, as DescribeGroups and ListGroups show it.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// What the join phase is waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum JoinTimer {
    /// `group.initial.rebalance.delay.ms` on a group that was empty: the join waits the
    /// whole delay (and one more delay each time a new member arrives, up to the
    /// rebalance timeout).
    Initial { at: i64, remaining: i64 },
    /// A rebalance of a non-empty group: it completes when everyone rejoined, or at `at`.
    Regular { at: i64 },
}

impl JoinTimer {
    pub(super) fn at(self) -> i64 {
        match self {
            JoinTimer::Initial { at, .. } | JoinTimer::Regular { at } => at,
        }
    }
}

#[derive(Debug, Clone)]
pub(super) struct Member {
    pub(super) id: String,
    pub(super) instance_id: Option<String>,
    pub(super) client_id: String,
    pub(super) client_host: String,
    pub(super) rebalance_timeout_ms: i32,
    pub(super) session_timeout_ms: i32,
    pub(super) protocol_type: String,
    pub(super) protocols: Vec<JoinGroupProtocol>,
    pub(super) assignment: Vec<u8>,
    /// The JoinGroup request waiting for the rebalance to complete.
    pub(super) awaiting_join: Option<RequestId>,
    /// The SyncGroup request waiting for the leader's assignment.
    pub(super) awaiting_sync: Option<RequestId>,
    /// Joined in the current rebalance for the first time.
    pub(super) is_new: bool,
    /// When the member is removed unless it heartbeats (or `i64::MAX`: no expectation).
    pub(super) heartbeat_deadline: i64,
    /// The time of the one timer entry watching this member, if any.
    pub(super) timer_at: Option<i64>,
}

impl Member {
    pub(super) fn metadata(&self, protocol: &str) -> &[u8] {
        self.protocols
            .iter()
            .find(|p| p.name == protocol)
            .map_or(&[][..], |p| p.metadata.as_slice())
    }

    /// Same protocols with the same metadata, in the same order.
    pub(super) fn matches(&self, protocols: &[JoinGroupProtocol]) -> bool {
        self.protocols == protocols
    }

    fn vote<'a>(&'a self, candidates: &BTreeSet<&str>) -> Option<&'a str> {
        self.protocols
            .iter()
            .map(|p| p.name.as_str())
            .find(|name| candidates.contains(name))
    }
}

#[derive(Debug)]
pub(super) struct Group {
    pub(super) id: String,
    pub(super) partition: i32,
    pub(super) state: GroupState,
    /// When the state last changed (`None` for a group loaded from an old record).
    pub(super) state_timestamp: Option<i64>,
    pub(super) protocol_type: Option<String>,
    pub(super) protocol_name: Option<String>,
    pub(super) generation: i32,
    pub(super) leader: Option<String>,
    pub(super) members: BTreeMap<String, Member>,
    /// `group.instance.id` → member id.
    pub(super) static_members: BTreeMap<String, String>,
    /// Member ids handed out with `MEMBER_ID_REQUIRED`, with the time they expire.
    pub(super) pending_members: BTreeMap<String, i64>,
    /// Members of the new generation that have not sent SyncGroup yet.
    pub(super) pending_sync: BTreeSet<String>,
    pub(super) awaiting_join_count: usize,
    /// How many members support each protocol.
    pub(super) supported_protocols: BTreeMap<String, usize>,
    pub(super) new_member_added: bool,
    pub(super) join_timer: Option<JoinTimer>,
    /// The pending-sync deadline and the generation it watches.
    pub(super) sync_timer: Option<(i64, i32)>,
    /// Topics the members subscribe to, when the consumer protocol says (`None`: unknown).
    pub(super) subscribed_topics: Option<BTreeSet<String>>,
    pub(super) offsets: GroupOffsets,
}

impl Group {
    pub(super) fn new(id: String, partition: i32, now: i64) -> Self {
        Group {
            id,
            partition,
            state: GroupState::Empty,
            state_timestamp: Some(now),
            protocol_type: None,
            protocol_name: None,
            generation: 0,
            leader: None,
            members: BTreeMap::new(),
            static_members: BTreeMap::new(),
            pending_members: BTreeMap::new(),
            pending_sync: BTreeSet::new(),
            awaiting_join_count: 0,
            supported_protocols: BTreeMap::new(),
            new_member_added: false,
            join_timer: None,
            sync_timer: None,
            subscribed_topics: None,
            offsets: GroupOffsets::default(),
        }
    }

    pub(super) fn is(&self, state: GroupState) -> bool {
        self.state == state
    }

    pub(super) fn transition_to(&mut self, state: GroupState, now: i64) {
        self.state = state;
        self.state_timestamp = Some(now);
    }

    pub(super) fn can_rebalance(&self) -> bool {
        matches!(
            self.state,
            GroupState::Stable | GroupState::CompletingRebalance | GroupState::Empty
        )
    }

    pub(super) fn is_leader(&self, member_id: &str) -> bool {
        self.leader.as_deref() == Some(member_id)
    }

    pub(super) fn is_pending_member(&self, member_id: &str) -> bool {
        self.pending_members.contains_key(member_id) && !self.members.contains_key(member_id)
    }

    pub(super) fn has_all_members_joined(&self) -> bool {
        self.members.len() == self.awaiting_join_count && self.pending_members.is_empty()
    }

    pub(super) fn rebalance_timeout_ms(&self) -> i64 {
        self.members
            .values()
            .map(|m| i64::from(m.rebalance_timeout_ms))
            .max()
            .unwrap_or(0)
    }

    pub(super) fn is_consumer_group(&self) -> bool {
        self.protocol_type.as_deref() == Some(CONSUMER_PROTOCOL_TYPE)
    }

    /// Kafka's `supportsProtocols`: an empty group takes any non-empty protocol list; a
    /// non-empty group needs the same protocol type and one protocol every member supports.
    pub(super) fn supports_protocols(
        &self,
        protocol_type: &str,
        protocols: &[JoinGroupProtocol],
    ) -> bool {
        if self.is(GroupState::Empty) {
            !protocol_type.is_empty() && !protocols.is_empty()
        } else {
            self.protocol_type.as_deref() == Some(protocol_type)
                && protocols.iter().any(|p| {
                    self.supported_protocols.get(&p.name).copied() == Some(self.members.len())
                })
        }
    }

    fn count_protocols(&mut self, protocols: &[JoinGroupProtocol], add: bool) {
        // A member listing one name twice still casts one vote for it.
        let mut seen = BTreeSet::new();
        for p in protocols {
            if !seen.insert(p.name.as_str()) {
                continue;
            }
            if add {
                *self.supported_protocols.entry(p.name.clone()).or_insert(0) += 1;
            } else if let Some(count) = self.supported_protocols.get_mut(&p.name) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    self.supported_protocols.remove(&p.name);
                }
            }
        }
    }

    /// Adds a member (Kafka's `add`): the first member sets the protocol type, and becomes
    /// the leader if there is none.
    pub(super) fn add(&mut self, member: Member) {
        if self.members.is_empty() {
            self.protocol_type = Some(member.protocol_type.clone());
        }
        if self.leader.is_none() {
            self.leader = Some(member.id.clone());
        }
        self.count_protocols(&member.protocols, true);
        if member.awaiting_join.is_some() {
            self.awaiting_join_count += 1;
        }
        if let Some(instance) = &member.instance_id {
            self.static_members
                .insert(instance.clone(), member.id.clone());
        }
        self.pending_members.remove(&member.id);
        self.members.insert(member.id.clone(), member);
    }

    /// Removes a member (Kafka's `remove`), handing back its pending requests so the
    /// caller can answer them. A new leader is picked if it was the leader.
    pub(super) fn remove(&mut self, member_id: &str) -> Option<Member> {
        self.pending_members.remove(member_id);
        self.pending_sync.remove(member_id);
        let member = self.members.remove(member_id)?;
        self.count_protocols(&member.protocols, false);
        if member.awaiting_join.is_some() {
            self.awaiting_join_count = self.awaiting_join_count.saturating_sub(1);
        }
        if let Some(instance) = &member.instance_id {
            if self.static_members.get(instance).map(String::as_str) == Some(member_id) {
                self.static_members.remove(instance);
            }
        }
        if self.is_leader(member_id) {
            self.leader = self.members.keys().next().cloned();
        }
        Some(member)
    }

    /// Replaces a member's protocols and timeouts (Kafka's `updateMember`); returns the
    /// JoinGroup request it was awaiting with before, if a new one replaces it.
    pub(super) fn update_member(
        &mut self,
        member_id: &str,
        protocols: Vec<JoinGroupProtocol>,
        rebalance_timeout_ms: i32,
        session_timeout_ms: i32,
        awaiting_join: Option<RequestId>,
    ) -> Option<RequestId> {
        let old_protocols = match self.members.get_mut(member_id) {
            Some(member) => std::mem::replace(&mut member.protocols, protocols),
            None => return None,
        };
        self.count_protocols(&old_protocols, false);
        let (new_protocols, was_awaiting, superseded) = match self.members.get_mut(member_id) {
            Some(member) => {
                member.rebalance_timeout_ms = rebalance_timeout_ms;
                member.session_timeout_ms = session_timeout_ms;
                let was = member.awaiting_join.is_some();
                let old = std::mem::replace(&mut member.awaiting_join, awaiting_join);
                (member.protocols.clone(), was, old)
            }
            None => return None,
        };
        self.count_protocols(&new_protocols, true);
        match (was_awaiting, awaiting_join.is_some()) {
            (false, true) => self.awaiting_join_count += 1,
            (true, false) => self.awaiting_join_count = self.awaiting_join_count.saturating_sub(1),
            _ => {}
        }
        superseded
    }

    /// Moves a static member to a new member id (Kafka's `replaceStaticMember`); returns the
    /// requests the old incarnation was waiting on, to be fenced.
    pub(super) fn replace_static_member(
        &mut self,
        instance_id: &str,
        old_id: &str,
        new_id: &str,
    ) -> (Option<RequestId>, Option<RequestId>) {
        let Some(mut member) = self.members.remove(old_id) else {
            return (None, None);
        };
        let join = member.awaiting_join.take();
        if join.is_some() {
            self.awaiting_join_count = self.awaiting_join_count.saturating_sub(1);
        }
        let sync = member.awaiting_sync.take();
        member.id = new_id.to_owned();
        member.timer_at = None;
        self.members.insert(new_id.to_owned(), member);
        if self.is_leader(old_id) {
            self.leader = Some(new_id.to_owned());
        }
        if self.pending_sync.remove(old_id) {
            self.pending_sync.insert(new_id.to_owned());
        }
        self.static_members
            .insert(instance_id.to_owned(), new_id.to_owned());
        (join, sync)
    }

    /// The protocol every member supports that most members prefer (Kafka's vote); ties go
    /// to the name that sorts first, so the choice is deterministic.
    pub(super) fn select_protocol(&self) -> Option<String> {
        let n = self.members.len();
        let candidates: BTreeSet<&str> = self
            .supported_protocols
            .iter()
            .filter(|(_, &count)| count == n)
            .map(|(name, _)| name.as_str())
            .collect();
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for member in self.members.values() {
            if let Some(name) = member.vote(&candidates) {
                *votes.entry(name).or_insert(0) += 1;
            }
        }
        let mut best: Option<(&str, usize)> = None;
        for (name, count) in votes {
            if best.is_none_or(|(_, c)| count > c) {
                best = Some((name, count));
            }
        }
        best.map(|(name, _)| name.to_owned())
    }

    /// Kafka's `initNextGeneration`.
    pub(super) fn init_next_generation(&mut self, now: i64) {
        self.generation = self.generation.wrapping_add(1).max(1);
        if self.members.is_empty() {
            self.protocol_name = None;
            self.transition_to(GroupState::Empty, now);
        } else {
            self.protocol_name = self.select_protocol();
            self.transition_to(GroupState::CompletingRebalance, now);
        }
        self.subscribed_topics = self.compute_subscribed_topics();
        self.pending_sync.clear();
    }

    /// The topics the members subscribe to, if the group speaks the consumer protocol and
    /// every subscription decodes.
    pub(super) fn compute_subscribed_topics(&self) -> Option<BTreeSet<String>> {
        if !self.is_consumer_group() {
            return None;
        }
        if self.members.is_empty() {
            return Some(BTreeSet::new());
        }
        let protocol = self.protocol_name.as_deref()?;
        let mut topics = BTreeSet::new();
        for member in self.members.values() {
            let subscription =
                ConsumerProtocolSubscription::decode(member.metadata(protocol)).ok()?;
            topics.extend(subscription.topics);
        }
        Some(topics)
    }

    /// True when a consumer-protocol member's last subscription claims partitions its
    /// current assignment no longer gives it (cooperative protocol): it owes the group a
    /// revocation and a rejoin, and the partitions it claims stay unassigned until the next
    /// rebalance. A member that missed the join deadline keeps such a stale claim.
    pub(super) fn has_pending_revocation(&self, member_id: &str) -> bool {
        let (Some(member), Some(protocol)) =
            (self.members.get(member_id), self.protocol_name.as_deref())
        else {
            return false;
        };
        if !self.is_consumer_group() {
            return false;
        }
        let Ok(subscription) = ConsumerProtocolSubscription::decode(member.metadata(protocol))
        else {
            return false;
        };
        let assigned = if member.assignment.is_empty() {
            Vec::new()
        } else {
            match ConsumerProtocolAssignment::decode(&member.assignment) {
                Ok(a) => a.assigned_partitions,
                Err(_) => return false,
            }
        };
        subscription.owned_partitions.iter().any(|owned| {
            owned.partitions.iter().any(|p| {
                !assigned
                    .iter()
                    .any(|a| a.topic == owned.topic && a.partitions.contains(p))
            })
        })
    }

    pub(super) fn is_subscribed_to_topic(&self, topic: &str) -> bool {
        self.subscribed_topics
            .as_ref()
            .is_none_or(|topics| topics.contains(topic))
    }

    /// Every member with its metadata for the selected protocol (the leader's JoinGroup).
    pub(super) fn current_member_metadata(&self) -> Vec<JoinGroupResponseMember> {
        let protocol = self.protocol_name.as_deref().unwrap_or("");
        self.members
            .values()
            .map(|m| JoinGroupResponseMember {
                member_id: m.id.clone(),
                group_instance_id: m.instance_id.clone(),
                metadata: m.metadata(protocol).to_vec(),
            })
            .collect()
    }

    /// Kafka's `validateCurrentMember`: a static member's instance id must map to this
    /// member id, and the member must exist.
    pub(super) fn validate_current_member(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Option<crate::KafkaCode> {
        use crate::KafkaCode;
        if let Some(instance) = instance_id {
            return match self.static_members.get(instance) {
                Some(current) if current != member_id => Some(KafkaCode::FENCED_INSTANCE_ID),
                Some(_) => None,
                None => Some(KafkaCode::UNKNOWN_MEMBER_ID),
            };
        }
        if self.members.contains_key(member_id) {
            None
        } else {
            Some(KafkaCode::UNKNOWN_MEMBER_ID)
        }
    }
}
