//! The partition assignors of Kafka's consumers, as plain functions over the members'
//! decoded subscriptions: `range`, `roundrobin`, `sticky` and `cooperative-sticky`.
//!
//! The group leader runs one of these (the protocol every member supports, chosen by the
//! coordinator) over the members' [`ConsumerProtocolSubscription`]s and the partition counts
//! of the subscribed topics, and returns each member's partitions through SyncGroup. Members
//! are ordered as Kafka's clients order them (static members first, by `group.instance.id`,
//! then the others by member id, comparing strings as Java does), so the same input gives
//! the Java client's assignment for `range` and `roundrobin`.
//!
//! - `range`: per topic, partitions in order, split in contiguous ranges over the members
//!   subscribed to it; the first members get one more when it does not divide evenly.
//! - `roundrobin`: every subscribed partition, topic by topic, dealt in turn to the members
//!   subscribed to its topic.
//! - `sticky`: balanced (partition counts differ by at most one wherever subscriptions
//!   allow), and moves as few partitions as possible from the previous assignment, which
//!   each member sends in its user data ([`StickyAssignorUserData`]).
//! - `cooperative-sticky`: the sticky assignment computed from the partitions members say
//!   they own (subscription v1+), minus every partition another member still owns: that
//!   member revokes it first, and the next rebalance assigns it (KIP-429).
//!
//! ```
//! use std::collections::BTreeMap;
//! use streamlog::group::assignor::{Assignor, AssignorMember};
//! use streamlog::group::ConsumerProtocolSubscription;
//!
//! let topics = BTreeMap::from([("orders".to_string(), 6)]);
//! let members: Vec<AssignorMember> = ["a", "b", "c"]
//!     .iter()
//!     .map(|id| AssignorMember::new(*id, ConsumerProtocolSubscription::new(vec!["orders".into()])))
//!     .collect();
//! let assignment = Assignor::Range.assign(&topics, &members)?;
//! assert_eq!(assignment["b"][0].partitions, [2, 3]);
//! # Ok::<(), streamlog::Error>(())
//! ```

mod range;
mod roundrobin;
mod sticky;

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use super::{ConsumerProtocolAssignment, ConsumerProtocolSubscription, TopicPartitions};
use crate::error::{Error, Result};

pub use sticky::{cooperative_sticky_user_data, StickyAssignorUserData};

/// Each member's assigned partitions, by member id: one entry per topic (topics in Java's
/// string order), partitions ascending. Every member given to the assignor has an entry.
pub type Assignments = BTreeMap<String, Vec<TopicPartitions>>;

/// A group member as the assignor sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssignorMember {
    /// The member id.
    pub member_id: String,
    /// The static member's `group.instance.id`.
    pub group_instance_id: Option<String>,
    /// The member's decoded subscription.
    pub subscription: ConsumerProtocolSubscription,
}

impl AssignorMember {
    /// A dynamic member (no `group.instance.id`).
    pub fn new(member_id: impl Into<String>, subscription: ConsumerProtocolSubscription) -> Self {
        AssignorMember {
            member_id: member_id.into(),
            group_instance_id: None,
            subscription,
        }
    }
}

/// How members give up partitions when the assignment changes (KIP-429).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RebalanceProtocol {
    /// Members revoke everything before rejoining.
    Eager,
    /// Members keep their partitions through the rebalance and revoke only what moves.
    Cooperative,
}

/// One of the assignors Kafka's clients ship.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Assignor {
    /// `range` (Kafka's `RangeAssignor`).
    Range,
    /// `roundrobin` (`RoundRobinAssignor`).
    RoundRobin,
    /// `sticky` (`StickyAssignor`).
    Sticky,
    /// `cooperative-sticky` (`CooperativeStickyAssignor`).
    CooperativeSticky,
}

impl Assignor {
    /// Every assignor, in the order above.
    pub const ALL: [Assignor; 4] = [
        Assignor::Range,
        Assignor::RoundRobin,
        Assignor::Sticky,
        Assignor::CooperativeSticky,
    ];

    /// The assignor a JoinGroup protocol name stands for.
    pub fn from_name(name: &str) -> Option<Assignor> {
        Assignor::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The protocol name members put in JoinGroup.
    pub fn name(self) -> &'static str {
        match self {
            Assignor::Range => "range",
            Assignor::RoundRobin => "roundrobin",
            Assignor::Sticky => "sticky",
            Assignor::CooperativeSticky => "cooperative-sticky",
        }
    }

    /// Whether members using this assignor rebalance eagerly or cooperatively.
    pub fn rebalance_protocol(self) -> RebalanceProtocol {
        match self {
            Assignor::CooperativeSticky => RebalanceProtocol::Cooperative,
            _ => RebalanceProtocol::Eager,
        }
    }

    /// Assigns the partitions of the subscribed topics to `members`. `partition_counts`
    /// holds each topic's partition count; subscribed topics missing from it are skipped (as
    /// Kafka's clients skip topics without metadata).
    ///
    /// Fails with [`Error::DuplicateMemberId`] when two members share a member id.
    pub fn assign(
        self,
        partition_counts: &BTreeMap<String, u32>,
        members: &[AssignorMember],
    ) -> Result<Assignments> {
        let problem = Problem::new(partition_counts, members)?;
        let per_member = match self {
            Assignor::Range => range::assign(&problem),
            Assignor::RoundRobin => roundrobin::assign(&problem),
            Assignor::Sticky => sticky::assign(&problem, false),
            Assignor::CooperativeSticky => sticky::assign(&problem, true),
        };
        Ok(problem.into_assignments(per_member))
    }
}

/// An assignment as the bytes SyncGroup carries (version 3, no user data, as Kafka's
/// built-in assignors send it).
pub fn encode_assignment(partitions: &[TopicPartitions]) -> Result<Vec<u8>> {
    ConsumerProtocolAssignment::new(partitions.to_vec()).encode()
}

/// Compares strings as Java's `String.compareTo` does (by UTF-16 code units), which differs
/// from Rust's byte order only around supplementary characters.
pub fn java_string_cmp(a: &str, b: &str) -> Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

/// Kafka's member order: static members first by instance id, then by member id.
fn member_cmp(a: &AssignorMember, b: &AssignorMember) -> Ordering {
    match (&a.group_instance_id, &b.group_instance_id) {
        (Some(x), Some(y)) => java_string_cmp(x, y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => java_string_cmp(&a.member_id, &b.member_id),
    }
}

/// A partition by global index: topics in Java order, each topic's partitions in order.
type Part = usize;

/// The input of one assignment in indexes: members in Kafka's order, the subscribed topics
/// (with metadata) in Java string order, and every partition numbered.
pub(crate) struct Problem<'a> {
    topics: Vec<(&'a str, u32)>,
    /// Global index of each topic's partition 0; one more entry holds the total.
    first: Vec<usize>,
    members: Vec<&'a AssignorMember>,
    /// Per member (same order): indexes of the topics it subscribes to, ascending.
    subscribed: Vec<Vec<usize>>,
}

impl<'a> Problem<'a> {
    fn new(counts: &'a BTreeMap<String, u32>, members: &'a [AssignorMember]) -> Result<Self> {
        let mut sorted: Vec<&AssignorMember> = members.iter().collect();
        sorted.sort_by(|a, b| member_cmp(a, b));
        let mut seen = BTreeSet::new();
        for m in &sorted {
            if !seen.insert(m.member_id.as_str()) {
                return Err(Error::DuplicateMemberId {
                    member_id: m.member_id.clone(),
                });
            }
        }
        let mut names: Vec<&str> = sorted
            .iter()
            .flat_map(|m| m.subscription.topics.iter().map(String::as_str))
            .filter(|t| counts.contains_key(*t))
            .collect();
        names.sort_by(|a, b| java_string_cmp(a, b));
        names.dedup();
        let topics: Vec<(&str, u32)> = names
            .iter()
            .map(|t| (*t, counts.get(*t).copied().unwrap_or(0)))
            .collect();
        let mut first = Vec::with_capacity(topics.len() + 1);
        let mut total = 0usize;
        for (_, n) in &topics {
            first.push(total);
            total += *n as usize;
        }
        first.push(total);
        let subscribed = sorted
            .iter()
            .map(|m| {
                let mut idx: Vec<usize> = m
                    .subscription
                    .topics
                    .iter()
                    .filter_map(|t| names.binary_search_by(|n| java_string_cmp(n, t)).ok())
                    .collect();
                idx.sort_unstable();
                idx.dedup();
                idx
            })
            .collect();
        Ok(Problem {
            topics,
            first,
            members: sorted,
            subscribed,
        })
    }

    fn partition_count(&self) -> usize {
        self.first.last().copied().unwrap_or(0)
    }

    /// The global partitions of topic `t`.
    fn topic_parts(&self, t: usize) -> std::ops::Range<Part> {
        let start = self.first.get(t).copied().unwrap_or(0);
        let end = self.first.get(t + 1).copied().unwrap_or(start);
        start..end
    }

    /// The topic index of global partition `p`.
    fn topic_of(&self, p: Part) -> usize {
        self.first.partition_point(|&f| f <= p).saturating_sub(1)
    }

    /// The global index of `topic`-`partition`, if the problem has it.
    fn part(&self, topic: &str, partition: i32) -> Option<Part> {
        let t = self
            .topics
            .binary_search_by(|(n, _)| java_string_cmp(n, topic))
            .ok()?;
        let (_, count) = self.topics.get(t)?;
        let partition = u32::try_from(partition).ok()?;
        (partition < *count).then(|| self.first.get(t).copied().unwrap_or(0) + partition as usize)
    }

    fn subscribes(&self, member: usize, topic: usize) -> bool {
        self.subscribed
            .get(member)
            .is_some_and(|s| s.binary_search(&topic).is_ok())
    }

    /// Global partitions listed in `list` that exist here (others are dropped).
    fn parts_of(&self, list: &[TopicPartitions]) -> Vec<Part> {
        list.iter()
            .flat_map(|tp| {
                tp.partitions
                    .iter()
                    .filter_map(|&p| self.part(&tp.topic, p))
            })
            .collect()
    }

    fn into_assignments(self, per_member: Vec<Vec<Part>>) -> Assignments {
        let mut out = Assignments::new();
        for (i, member) in self.members.iter().enumerate() {
            let mut parts = per_member.get(i).cloned().unwrap_or_default();
            parts.sort_unstable();
            parts.dedup();
            let mut list: Vec<TopicPartitions> = Vec::new();
            for p in parts {
                let t = self.topic_of(p);
                let Some((name, _)) = self.topics.get(t) else {
                    continue;
                };
                let index = (p - self.first.get(t).copied().unwrap_or(0)) as i32;
                match list.last_mut() {
                    Some(last) if last.topic == *name => last.partitions.push(index),
                    _ => list.push(TopicPartitions::new(*name, vec![index])),
                }
            }
            out.insert(member.member_id.clone(), list);
        }
        out
    }
}

#[cfg(test)]
mod tests;
