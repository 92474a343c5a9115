//! One group's committed offsets as the coordinator caches them (Kafka's offsets, pending
//! offset commits and pending transactional offset commits of `GroupMetadata`).
//!
//! A commit becomes visible when its record is appended; a transactional one when, in
//! addition, the producer's COMMIT marker is. "Newer" means appended later: each record the
//! coordinator writes carries its append id, which grows in the order the records are
//! written (records loaded from the log are ordered by their position, and older than
//! every new one).
//!
//! Offsets are held as the offset store holds them ([`StoredOffset`] under an interned
//! topic): this is the only copy a node running the coordinator keeps.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::api::TopicPartition;
use crate::group::offset_map::{Slot, StoredOffset, Topics};
use crate::group::{OffsetAndMetadata, OffsetCommitValue};

#[derive(Debug, Clone)]
struct PendingTxn {
    /// Its position is set once the record is in the log.
    value: StoredOffset,
    appended: bool,
}

/// How old offsets of a group are judged (Kafka's `removeExpiredOffsets` cases).
pub(super) enum Expiry<'a> {
    /// An empty group with a protocol type: everything expires `retention` after the group
    /// became empty (or after the commit, for a group loaded without a state timestamp).
    Empty { since: Option<i64> },
    /// A consumer group that knows its subscriptions: offsets of other topics expire
    /// `retention` after their commit.
    NotSubscribed(&'a BTreeSet<String>),
    /// A group without a protocol type (it only stores offsets): `retention` after commit.
    Standalone,
}

/// One group's offsets.
#[derive(Debug, Default)]
pub(super) struct GroupOffsets {
    topics: Topics,
    committed: HashMap<Slot, StoredOffset>,
    /// Partitions with a commit record in flight, and the append id of the latest one.
    pending: HashMap<Slot, u64>,
    pending_txn: BTreeMap<i64, HashMap<Slot, PendingTxn>>,
}

impl GroupOffsets {
    fn slot(&self, tp: &TopicPartition) -> Option<Slot> {
        self.topics.id(&tp.topic).map(|t| (t, tp.partition))
    }

    fn intern(&mut self, topic: &str, partition: i32) -> Slot {
        (self.topics.intern(topic), partition)
    }

    fn topic_partition(&self, slot: Slot) -> TopicPartition {
        TopicPartition::new(self.topics.name(slot.0), slot.1)
    }

    pub(super) fn get(&self, tp: &TopicPartition) -> Option<OffsetAndMetadata> {
        self.committed
            .get(&self.slot(tp)?)
            .map(StoredOffset::to_public)
    }

    /// Every committed offset, sorted by topic and partition.
    pub(super) fn all(&self) -> Vec<(TopicPartition, OffsetAndMetadata)> {
        let mut all: Vec<(TopicPartition, OffsetAndMetadata)> = self
            .committed
            .iter()
            .map(|(&slot, o)| (self.topic_partition(slot), o.to_public()))
            .collect();
        all.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// How many offsets are committed.
    pub(super) fn len(&self) -> usize {
        self.committed.len()
    }

    /// Kafka's `hasOffsets`: anything committed or in flight.
    pub(super) fn has_offsets(&self) -> bool {
        !self.committed.is_empty() || !self.pending.is_empty() || !self.pending_txn.is_empty()
    }

    pub(super) fn has_pending(&self, tp: &TopicPartition) -> bool {
        let Some(slot) = self.slot(tp) else {
            return false;
        };
        self.pending.contains_key(&slot) || self.pending_txn.values().any(|p| p.contains_key(&slot))
    }

    pub(super) fn has_pending_txn(&self, producer_id: i64) -> bool {
        self.pending_txn.contains_key(&producer_id)
    }

    /// Replays a plain commit record found at `position` of the log (`None`: a tombstone).
    pub(super) fn load(
        &mut self,
        topic: &str,
        partition: i32,
        value: Option<&OffsetCommitValue>,
        position: u64,
    ) {
        match value {
            Some(v) => {
                let slot = self.intern(topic, partition);
                self.committed
                    .insert(slot, StoredOffset::from_value(v, position));
            }
            None => {
                if let Some(t) = self.topics.id(topic) {
                    self.committed.remove(&(t, partition));
                }
            }
        }
    }

    /// Replays a transactional commit record of `producer_id` found at `position` of the log,
    /// pending until the producer's marker (`None`: a tombstone in the transaction).
    pub(super) fn load_pending_txn(
        &mut self,
        producer_id: i64,
        topic: &str,
        partition: i32,
        value: Option<&OffsetCommitValue>,
        position: u64,
    ) {
        match value {
            Some(v) => {
                let slot = self.intern(topic, partition);
                self.pending_txn.entry(producer_id).or_default().insert(
                    slot,
                    PendingTxn {
                        value: StoredOffset::from_value(v, position),
                        appended: true,
                    },
                );
            }
            None => {
                let slot = self.topics.id(topic).map(|t| (t, partition));
                if let (Some(slot), Some(p)) = (slot, self.pending_txn.get_mut(&producer_id)) {
                    p.remove(&slot);
                }
            }
        }
    }

    pub(super) fn prepare_commit(&mut self, append_id: u64, tp: &TopicPartition) {
        let slot = self.intern(&tp.topic, tp.partition);
        self.pending.insert(slot, append_id);
    }

    /// The record of a plain commit is in the log.
    pub(super) fn on_commit_appended(
        &mut self,
        append_id: u64,
        tp: &TopicPartition,
        value: &OffsetAndMetadata,
    ) {
        let Some(slot) = self.slot(tp) else {
            return;
        };
        // Without a pending entry the partition's offsets were deleted meanwhile: the
        // deletion's tombstone follows this record in the log, so the commit stays deleted.
        if self.pending.contains_key(&slot) {
            let newer = self
                .committed
                .get(&slot)
                .is_none_or(|current| current.position < append_id);
            if newer {
                self.committed
                    .insert(slot, StoredOffset::new(value, append_id));
            }
        }
        if self.pending.get(&slot) == Some(&append_id) {
            self.pending.remove(&slot);
        }
    }

    pub(super) fn fail_commit(&mut self, append_id: u64, tp: &TopicPartition) {
        if let Some(slot) = self.slot(tp) {
            if self.pending.get(&slot) == Some(&append_id) {
                self.pending.remove(&slot);
            }
        }
    }

    pub(super) fn prepare_txn(
        &mut self,
        producer_id: i64,
        tp: &TopicPartition,
        value: &OffsetAndMetadata,
    ) {
        let slot = self.intern(&tp.topic, tp.partition);
        self.pending_txn.entry(producer_id).or_default().insert(
            slot,
            PendingTxn {
                value: StoredOffset::new(value, 0),
                appended: false,
            },
        );
    }

    pub(super) fn on_txn_appended(
        &mut self,
        producer_id: i64,
        append_id: u64,
        tp: &TopicPartition,
        value: &OffsetAndMetadata,
    ) {
        let Some(slot) = self.slot(tp) else {
            return;
        };
        if let Some(pending) = self
            .pending_txn
            .get_mut(&producer_id)
            .and_then(|p| p.get_mut(&slot))
        {
            // Only if a later TxnOffsetCommit of the producer did not replace it meanwhile.
            let written = StoredOffset::new(value, pending.value.position);
            if pending.value == written {
                pending.value.position = append_id;
                pending.appended = true;
            }
        }
    }

    pub(super) fn fail_txn(&mut self, producer_id: i64, tp: &TopicPartition) {
        let Some(slot) = self.slot(tp) else {
            return;
        };
        if let Some(pending) = self.pending_txn.get_mut(&producer_id) {
            pending.remove(&slot);
            if pending.is_empty() {
                self.pending_txn.remove(&producer_id);
            }
        }
    }

    /// The producer's COMMIT or ABORT marker is in the log (Kafka's
    /// `completePendingTxnOffsetCommit`): on COMMIT each offset replaces the cached one
    /// unless a plain commit was appended after it.
    pub(super) fn complete_txn(&mut self, producer_id: i64, commit: bool) {
        let Some(pending) = self.pending_txn.remove(&producer_id) else {
            return;
        };
        if !commit {
            return;
        }
        for (slot, entry) in pending {
            // A record that never reached the log cannot be committed by the marker.
            if !entry.appended {
                continue;
            }
            let newer = self
                .committed
                .get(&slot)
                .is_none_or(|current| current.position < entry.value.position);
            if newer {
                self.committed.insert(slot, entry.value);
            }
        }
    }

    /// Removes the partitions' offsets, in flight ones included; returns the partitions that
    /// had a committed offset (each needs a tombstone).
    pub(super) fn remove(&mut self, tps: &[TopicPartition]) -> Vec<TopicPartition> {
        let mut removed = Vec::new();
        for tp in tps {
            let Some(slot) = self.slot(tp) else {
                continue;
            };
            self.pending.remove(&slot);
            for pending in self.pending_txn.values_mut() {
                pending.remove(&slot);
            }
            if self.committed.remove(&slot).is_some() {
                removed.push(tp.clone());
            }
        }
        self.pending_txn.retain(|_, p| !p.is_empty());
        removed
    }

    pub(super) fn remove_all(&mut self) -> Vec<TopicPartition> {
        let mut removed: Vec<TopicPartition> = self
            .committed
            .keys()
            .map(|&slot| self.topic_partition(slot))
            .collect();
        removed.sort_unstable();
        self.committed.clear();
        self.pending.clear();
        self.pending_txn.clear();
        removed
    }

    /// Removes what is expired at `now` (Kafka's `removeExpiredOffsets`); offsets with a
    /// commit in flight never expire. Returns them sorted.
    pub(super) fn remove_expired(
        &mut self,
        now: i64,
        retention_ms: i64,
        expiry: Expiry<'_>,
    ) -> Vec<TopicPartition> {
        let mut expired: Vec<Slot> = self
            .committed
            .iter()
            .filter(|(slot, c)| {
                if self.pending.contains_key(*slot) {
                    return false;
                }
                let base = match &expiry {
                    Expiry::Empty { since } => since.unwrap_or(c.commit_timestamp),
                    Expiry::NotSubscribed(topics) => {
                        if topics.contains(self.topics.name(slot.0)) {
                            return false;
                        }
                        c.commit_timestamp
                    }
                    Expiry::Standalone => c.commit_timestamp,
                };
                match c.expire_timestamp() {
                    Some(expire) => now >= expire,
                    None => now.saturating_sub(base) >= retention_ms,
                }
            })
            .map(|(slot, _)| *slot)
            .collect();
        for slot in &expired {
            self.committed.remove(slot);
        }
        expired.sort_unstable_by(|a, b| {
            (self.topics.name(a.0), a.1).cmp(&(self.topics.name(b.0), b.1))
        });
        expired
            .into_iter()
            .map(|slot| self.topic_partition(slot))
            .collect()
    }
}
