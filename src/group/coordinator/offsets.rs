//! One group's committed offsets as the coordinator caches them (Kafka's offsets, pending
//! offset commits and pending transactional offset commits of `GroupMetadata`).
//!
//! A commit becomes visible when its record is appended; a transactional one when, in
//! addition, the producer's COMMIT marker is. "Newer" means appended later: each record the
//! coordinator writes carries its append id, which grows in the order the records are
//! written (records loaded from the log are ordered by their position, and older than
//! every new one).

use std::collections::{BTreeMap, BTreeSet};

use super::api::TopicPartition;
use crate::group::OffsetCommitValue;

/// A committed offset with what Kafka stores beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetAndMetadata {
    /// The committed offset.
    pub offset: i64,
    /// The leader epoch of the last consumed record, -1 if unknown.
    pub leader_epoch: i32,
    /// Free-form metadata.
    pub metadata: String,
    /// When it was committed (ms).
    pub commit_timestamp: i64,
    /// When it expires, if the commit asked for its own retention (OffsetCommit v2–4).
    pub expire_timestamp: Option<i64>,
}

impl OffsetAndMetadata {
    /// The stored value (Kafka writes v1 when there is an expire timestamp, v3 otherwise).
    pub(super) fn to_value(&self) -> OffsetCommitValue {
        let mut value = OffsetCommitValue::new(
            self.offset,
            self.leader_epoch,
            self.metadata.clone(),
            self.commit_timestamp,
        );
        if let Some(expire) = self.expire_timestamp {
            value.version = 1;
            value.expire_timestamp = expire;
        }
        value
    }

    pub(super) fn from_value(value: &OffsetCommitValue) -> Self {
        OffsetAndMetadata {
            offset: value.offset,
            leader_epoch: value.leader_epoch,
            metadata: value.metadata.clone(),
            commit_timestamp: value.commit_timestamp,
            expire_timestamp: (value.version == 1 && value.expire_timestamp >= 0)
                .then_some(value.expire_timestamp),
        }
    }
}

#[derive(Debug, Clone)]
struct Committed {
    value: OffsetAndMetadata,
    /// Append id of the record (its position, for records loaded from the log).
    order: u64,
}

#[derive(Debug, Clone)]
struct PendingTxn {
    value: OffsetAndMetadata,
    /// Append id once the record is in the log.
    appended: Option<u64>,
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
    committed: BTreeMap<TopicPartition, Committed>,
    /// Partitions with a commit record in flight, and the append id of the latest one.
    pending: BTreeMap<TopicPartition, u64>,
    pending_txn: BTreeMap<i64, BTreeMap<TopicPartition, PendingTxn>>,
}

impl GroupOffsets {
    pub(super) fn get(&self, tp: &TopicPartition) -> Option<&OffsetAndMetadata> {
        self.committed.get(tp).map(|c| &c.value)
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (&TopicPartition, &OffsetAndMetadata)> {
        self.committed.iter().map(|(tp, c)| (tp, &c.value))
    }

    /// Kafka's `hasOffsets`: anything committed or in flight.
    pub(super) fn has_offsets(&self) -> bool {
        !self.committed.is_empty() || !self.pending.is_empty() || !self.pending_txn.is_empty()
    }

    pub(super) fn has_pending(&self, tp: &TopicPartition) -> bool {
        self.pending.contains_key(tp) || self.pending_txn.values().any(|p| p.contains_key(tp))
    }

    pub(super) fn has_pending_txn(&self, producer_id: i64) -> bool {
        self.pending_txn.contains_key(&producer_id)
    }

    /// Sets an offset loaded from the log; `order` is its position there.
    pub(super) fn load(&mut self, tp: TopicPartition, value: OffsetAndMetadata, order: u64) {
        self.committed.insert(tp, Committed { value, order });
    }

    /// A transactional offset found in the log with no marker yet.
    pub(super) fn load_pending_txn(
        &mut self,
        producer_id: i64,
        tp: TopicPartition,
        value: OffsetAndMetadata,
        order: u64,
    ) {
        self.pending_txn.entry(producer_id).or_default().insert(
            tp,
            PendingTxn {
                value,
                appended: Some(order),
            },
        );
    }

    pub(super) fn prepare_commit(&mut self, append_id: u64, tp: &TopicPartition) {
        self.pending.insert(tp.clone(), append_id);
    }

    /// The record of a plain commit is in the log.
    pub(super) fn on_commit_appended(
        &mut self,
        append_id: u64,
        tp: &TopicPartition,
        value: &OffsetAndMetadata,
    ) {
        // Without a pending entry the partition's offsets were deleted meanwhile: the
        // deletion's tombstone follows this record in the log, so the commit stays deleted.
        if self.pending.contains_key(tp) {
            let newer = self
                .committed
                .get(tp)
                .is_none_or(|current| current.order < append_id);
            if newer {
                self.committed.insert(
                    tp.clone(),
                    Committed {
                        value: value.clone(),
                        order: append_id,
                    },
                );
            }
        }
        if self.pending.get(tp) == Some(&append_id) {
            self.pending.remove(tp);
        }
    }

    pub(super) fn fail_commit(&mut self, append_id: u64, tp: &TopicPartition) {
        if self.pending.get(tp) == Some(&append_id) {
            self.pending.remove(tp);
        }
    }

    pub(super) fn prepare_txn(
        &mut self,
        producer_id: i64,
        tp: &TopicPartition,
        value: &OffsetAndMetadata,
    ) {
        self.pending_txn.entry(producer_id).or_default().insert(
            tp.clone(),
            PendingTxn {
                value: value.clone(),
                appended: None,
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
        if let Some(pending) = self
            .pending_txn
            .get_mut(&producer_id)
            .and_then(|p| p.get_mut(tp))
        {
            if pending.value == *value {
                pending.appended = Some(append_id);
            }
        }
    }

    pub(super) fn fail_txn(&mut self, producer_id: i64, tp: &TopicPartition) {
        if let Some(pending) = self.pending_txn.get_mut(&producer_id) {
            pending.remove(tp);
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
        for (tp, entry) in pending {
            // A record that never reached the log cannot be committed by the marker.
            let Some(appended) = entry.appended else {
                continue;
            };
            let newer = self
                .committed
                .get(&tp)
                .is_none_or(|current| current.order < appended);
            if newer {
                self.committed.insert(
                    tp,
                    Committed {
                        value: entry.value,
                        order: appended,
                    },
                );
            }
        }
    }

    /// Removes the partitions' offsets, in flight ones included; returns the partitions that
    /// had a committed offset (each needs a tombstone).
    pub(super) fn remove(&mut self, tps: &[TopicPartition]) -> Vec<TopicPartition> {
        let mut removed = Vec::new();
        for tp in tps {
            self.pending.remove(tp);
            for pending in self.pending_txn.values_mut() {
                pending.remove(tp);
            }
            if self.committed.remove(tp).is_some() {
                removed.push(tp.clone());
            }
        }
        self.pending_txn.retain(|_, p| !p.is_empty());
        removed
    }

    pub(super) fn remove_all(&mut self) -> Vec<TopicPartition> {
        let all: Vec<TopicPartition> = self.committed.keys().cloned().collect();
        let removed = self.remove(&all);
        self.pending.clear();
        self.pending_txn.clear();
        removed
    }

    /// Removes what is expired at `now` (Kafka's `removeExpiredOffsets`); offsets with a
    /// commit in flight never expire.
    pub(super) fn remove_expired(
        &mut self,
        now: i64,
        retention_ms: i64,
        expiry: Expiry<'_>,
    ) -> Vec<TopicPartition> {
        let expired: Vec<TopicPartition> = self
            .committed
            .iter()
            .filter(|(tp, c)| {
                if self.pending.contains_key(*tp) {
                    return false;
                }
                let base = match &expiry {
                    Expiry::Empty { since } => since.unwrap_or(c.value.commit_timestamp),
                    Expiry::NotSubscribed(topics) => {
                        if topics.contains(&tp.topic) {
                            return false;
                        }
                        c.value.commit_timestamp
                    }
                    Expiry::Standalone => c.value.commit_timestamp,
                };
                match c.value.expire_timestamp {
                    Some(expire) => now >= expire,
                    None => now.saturating_sub(base) >= retention_ms,
                }
            })
            .map(|(tp, _)| tp.clone())
            .collect();
        for tp in &expired {
            self.committed.remove(tp);
        }
        expired
    }
}
