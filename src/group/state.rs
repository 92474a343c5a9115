//! The in-memory state of one `__consumer_offsets` partition.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::offset_map::{Slot, StoredOffset, Topics};
use super::records::{GroupMetadataValue, OffsetCommitValue, OffsetsKey};
use crate::error::{Error, Result};
use crate::record::{Batch, ControlRecordType};

/// A committed offset as a consumer fetches it (Kafka's `OffsetAndMetadata`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OffsetAndMetadata {
    /// The next offset the group will consume.
    pub offset: i64,
    /// Leader epoch of the last consumed record, if the client sent it.
    pub leader_epoch: Option<i32>,
    /// The client's metadata string.
    pub metadata: String,
    /// When the commit was made (ms since the epoch).
    pub commit_timestamp: i64,
    /// When it expires, if the client asked for a retention (OffsetCommit v1 only).
    pub expire_timestamp: Option<i64>,
}

impl OffsetAndMetadata {
    /// An offset committed at `commit_timestamp`, without leader epoch or metadata.
    pub fn new(offset: i64, commit_timestamp: i64) -> Self {
        OffsetAndMetadata {
            offset,
            leader_epoch: None,
            metadata: String::new(),
            commit_timestamp,
            expire_timestamp: None,
        }
    }

    /// The record value Kafka writes for it: version 3, or version 1 when it carries an
    /// expire timestamp (the only version that can).
    pub fn to_value(&self) -> OffsetCommitValue {
        let mut value = OffsetCommitValue::new(
            self.offset,
            self.leader_epoch.unwrap_or(-1),
            self.metadata.clone(),
            self.commit_timestamp,
        );
        if let Some(expire) = self.expire_timestamp {
            value.version = 1;
            value.leader_epoch = -1;
            value.expire_timestamp = expire;
        }
        value
    }

    /// The offset a record value carries.
    pub fn from_value(value: &OffsetCommitValue) -> Self {
        OffsetAndMetadata {
            offset: value.offset,
            leader_epoch: (value.leader_epoch >= 0).then_some(value.leader_epoch),
            metadata: value.metadata.clone(),
            commit_timestamp: value.commit_timestamp,
            expire_timestamp: (value.expire_timestamp >= 0).then_some(value.expire_timestamp),
        }
    }
}

#[derive(Debug, Default)]
struct Group {
    metadata: Option<Box<GroupMetadataValue>>,
    offsets: HashMap<Slot, StoredOffset>,
    /// Transactional offsets awaiting their marker, per producer id.
    pending: BTreeMap<i64, HashMap<Slot, StoredOffset>>,
}

impl Group {
    fn is_empty(&self) -> bool {
        self.metadata.is_none() && self.offsets.is_empty() && self.pending.is_empty()
    }
}

/// The in-memory state of one `__consumer_offsets` partition.
///
/// What one partition of `__consumer_offsets` says, in memory: each group's committed
/// offsets, its metadata, and the transactional offsets still waiting for their
/// transaction's marker. Built by replaying the partition's batches in order (loading) and
/// kept current by replaying what is appended; no I/O here.
///
/// Replay follows Kafka's `GroupMetadataManager`:
///
/// - an offset commit in a plain batch is committed at once; its tombstone deletes it;
/// - an offset commit in a transactional batch is pending, per producer, until that
///   producer's COMMIT marker (then it becomes the committed offset unless a commit appended
///   later in the log already replaced it: the record further in the log wins) or its ABORT
///   marker (then it is dropped);
/// - a group metadata record replaces the group's metadata; its tombstone removes it;
/// - records of key versions this crate does not know (Kafka's newer group protocols) are
///   skipped and counted.
///
/// Memory: an offset costs its hash-table slot (the key is an interned topic and the
/// partition; the value the offset, epoch, timestamps, the log offset of its record and the
/// metadata string, which allocates only when non-empty), about 70–150 bytes depending on
/// how full the group's table is.
///
/// ```
/// use streamlog::group::{OffsetCommitValue, OffsetsRecord, OffsetsState};
///
/// let mut state = OffsetsState::new();
/// let commit = OffsetsRecord::offset_commit("payments", "orders", 0, OffsetCommitValue::new(42, 3, "", 1_000));
/// let key = commit.key_bytes()?;
/// let value = commit.value_bytes()?;
/// state.replay_record(0, None, &key, value.as_deref())?;
/// assert_eq!(state.committed_offset("payments", "orders", 0).map(|o| o.offset), Some(42));
///
/// // The same commit in a transaction of producer 7 waits for the COMMIT marker.
/// let later = OffsetsRecord::offset_commit("payments", "orders", 0, OffsetCommitValue::new(50, 3, "", 2_000));
/// state.replay_record(1, Some(7), &later.key_bytes()?, later.value_bytes()?.as_deref())?;
/// assert!(state.has_pending_transactional_offset("payments", "orders", 0));
/// assert_eq!(state.committed_offset("payments", "orders", 0).map(|o| o.offset), Some(42));
/// state.replay_marker(7, true);
/// assert_eq!(state.committed_offset("payments", "orders", 0).map(|o| o.offset), Some(50));
/// # Ok::<(), streamlog::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct OffsetsState {
    topics: Topics,
    groups: HashMap<Box<str>, Group>,
    /// Producers with pending transactional offsets, and the groups they touch.
    txn_groups: HashMap<i64, BTreeSet<Box<str>>>,
    skipped_records: u64,
}

/// A group's state, in a form that compares equal exactly when two states say the same
/// thing (see [`OffsetsState::snapshot`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupSnapshot {
    /// The group's metadata, if any.
    pub metadata: Option<GroupMetadataValue>,
    /// Committed offsets by `(topic, partition)`.
    pub offsets: BTreeMap<(String, i32), OffsetAndMetadata>,
    /// Pending transactional offsets by producer id, then `(topic, partition)`.
    pub pending: BTreeMap<i64, BTreeMap<(String, i32), OffsetAndMetadata>>,
}

const RECORD: &str = "__consumer_offsets record";

impl OffsetsState {
    /// An empty state (an empty partition).
    pub fn new() -> Self {
        Self::default()
    }

    fn group_mut(&mut self, group: &str) -> Result<&mut Group> {
        // Looked up before inserting: the key is allocated only for a new group.
        if !self.groups.contains_key(group) {
            self.groups.insert(group.into(), Group::default());
        }
        self.groups.get_mut(group).ok_or(Error::MalformedSchema {
            schema: RECORD,
            reason: "group vanished from the table",
        })
    }

    fn drop_if_empty(&mut self, group: &str) {
        if self.groups.get(group).is_some_and(Group::is_empty) {
            self.groups.remove(group);
        }
    }

    /// Replays one stored batch: its records (offset commits, group metadata) or, for a
    /// control batch, its transaction marker. Fails on a record without a key or with bytes
    /// that do not decode; the records before it have been applied.
    pub fn replay_batch(&mut self, batch: &Batch<'_>) -> Result<()> {
        let producer_id = batch.producer_id();
        if batch.is_control() {
            if producer_id >= 0 {
                match batch.control_record()?.map(|c| c.kind) {
                    Some(ControlRecordType::Commit) => self.replay_marker(producer_id, true),
                    Some(ControlRecordType::Abort) => self.replay_marker(producer_id, false),
                    _ => {}
                }
            }
            return Ok(());
        }
        let txn = batch.is_transactional().then_some(producer_id);
        let records = batch.records()?;
        for record in records.iter() {
            let record = record?;
            let key = record.key.ok_or(Error::MalformedSchema {
                schema: RECORD,
                reason: "record without a key",
            })?;
            self.replay_record(record.offset, txn, key, record.value)?;
        }
        Ok(())
    }

    /// Replays one record stored at `offset`: `producer_id` is the producer of its batch
    /// when the batch is transactional. Records of unknown key versions are skipped.
    pub fn replay_record(
        &mut self,
        offset: i64,
        producer_id: Option<i64>,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<()> {
        let key = match OffsetsKey::decode(key) {
            Ok(key) => key,
            Err(Error::UnsupportedSchemaVersion { .. }) => {
                self.skipped_records += 1;
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        match key {
            OffsetsKey::OffsetCommit(key) => {
                let value = value.map(OffsetCommitValue::decode).transpose()?;
                let topic = self.topics.intern(&key.topic);
                let position = u64::try_from(offset).unwrap_or(0);
                let slot = (topic, key.partition);
                match (producer_id, value) {
                    (None, Some(v)) => {
                        self.group_mut(&key.group)?
                            .offsets
                            .insert(slot, StoredOffset::from_value(&v, position));
                    }
                    (None, None) => {
                        if let Some(g) = self.groups.get_mut(key.group.as_str()) {
                            g.offsets.remove(&slot);
                        }
                        self.drop_if_empty(&key.group);
                    }
                    (Some(pid), Some(v)) => {
                        self.group_mut(&key.group)?
                            .pending
                            .entry(pid)
                            .or_default()
                            .insert(slot, StoredOffset::from_value(&v, position));
                        self.txn_groups
                            .entry(pid)
                            .or_default()
                            .insert(key.group.as_str().into());
                    }
                    (Some(pid), None) => {
                        if let Some(pending) = self
                            .groups
                            .get_mut(key.group.as_str())
                            .and_then(|g| g.pending.get_mut(&pid))
                        {
                            pending.remove(&slot);
                        }
                    }
                }
            }
            OffsetsKey::GroupMetadata(key) => {
                let value = value.map(GroupMetadataValue::decode).transpose()?;
                match value {
                    Some(v) => self.group_mut(&key.group)?.metadata = Some(Box::new(v)),
                    None => {
                        if let Some(g) = self.groups.get_mut(key.group.as_str()) {
                            g.metadata = None;
                        }
                        self.drop_if_empty(&key.group);
                    }
                }
            }
        }
        Ok(())
    }

    /// Replays `producer_id`'s transaction marker: COMMIT (`commit`) makes its pending
    /// offsets committed, unless a record further in the log already replaced them; ABORT
    /// drops them.
    pub fn replay_marker(&mut self, producer_id: i64, commit: bool) {
        let Some(groups) = self.txn_groups.remove(&producer_id) else {
            return;
        };
        for name in groups {
            let Some(group) = self.groups.get_mut(&name) else {
                continue;
            };
            if let Some(pending) = group.pending.remove(&producer_id) {
                if commit {
                    for (slot, stored) in pending {
                        let newer = group
                            .offsets
                            .get(&slot)
                            .is_none_or(|current| current.position < stored.position);
                        if newer {
                            group.offsets.insert(slot, stored);
                        }
                    }
                }
            }
            self.drop_if_empty(&name);
        }
    }

    /// The offset `group` committed for `topic`-`partition`.
    pub fn committed_offset(
        &self,
        group: &str,
        topic: &str,
        partition: i32,
    ) -> Option<OffsetAndMetadata> {
        let topic = self.topics.id(topic)?;
        self.groups
            .get(group)?
            .offsets
            .get(&(topic, partition))
            .map(StoredOffset::to_public)
    }

    /// Every offset `group` committed, by topic and partition.
    pub fn committed_offsets(&self, group: &str) -> BTreeMap<(String, i32), OffsetAndMetadata> {
        self.groups
            .get(group)
            .map(|g| self.public_map(&g.offsets))
            .unwrap_or_default()
    }

    fn public_map(
        &self,
        map: &HashMap<Slot, StoredOffset>,
    ) -> BTreeMap<(String, i32), OffsetAndMetadata> {
        map.iter()
            .map(|(&(t, p), s)| ((self.topics.name(t).to_string(), p), s.to_public()))
            .collect()
    }

    /// Whether a transaction has written an offset for `group`'s `topic`-`partition` that
    /// waits for its marker (an OffsetFetch that requires stable offsets then answers
    /// `UNSTABLE_OFFSET_COMMIT`).
    pub fn has_pending_transactional_offset(
        &self,
        group: &str,
        topic: &str,
        partition: i32,
    ) -> bool {
        let (Some(topic), Some(g)) = (self.topics.id(topic), self.groups.get(group)) else {
            return false;
        };
        g.pending
            .values()
            .any(|p| p.contains_key(&(topic, partition)))
    }

    /// The producers with transactional offsets pending in this partition.
    pub fn pending_producers(&self) -> Vec<i64> {
        let mut v: Vec<i64> = self.txn_groups.keys().copied().collect();
        v.sort_unstable();
        v
    }

    /// `group`'s metadata, as last written.
    pub fn group_metadata(&self, group: &str) -> Option<&GroupMetadataValue> {
        self.groups.get(group)?.metadata.as_deref()
    }

    /// Whether the partition holds anything for `group` (metadata, offsets, or pending
    /// transactional offsets).
    pub fn contains_group(&self, group: &str) -> bool {
        self.groups.contains_key(group)
    }

    /// The groups the partition holds anything for, sorted.
    pub fn groups(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.groups.keys().map(|g| &**g).collect();
        v.sort_unstable();
        v
    }

    /// Committed offsets held, over all groups.
    pub fn offset_count(&self) -> usize {
        self.groups.values().map(|g| g.offsets.len()).sum()
    }

    /// Records skipped because their key version is unknown.
    pub fn skipped_records(&self) -> u64 {
        self.skipped_records
    }

    /// The whole state in sorted, comparable form (for tests, tools and debugging: it
    /// copies everything).
    pub fn snapshot(&self) -> BTreeMap<String, GroupSnapshot> {
        self.groups
            .iter()
            .map(|(name, g)| {
                let snapshot = GroupSnapshot {
                    metadata: g.metadata.as_deref().cloned(),
                    offsets: self.public_map(&g.offsets),
                    pending: g
                        .pending
                        .iter()
                        .map(|(pid, p)| (*pid, self.public_map(p)))
                        .collect(),
                };
                (name.to_string(), snapshot)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::OffsetsRecord;

    fn replay(state: &mut OffsetsState, offset: i64, pid: Option<i64>, r: &OffsetsRecord) {
        let (k, v) = (r.key_bytes().unwrap(), r.value_bytes().unwrap());
        state.replay_record(offset, pid, &k, v.as_deref()).unwrap();
    }

    fn commit(group: &str, p: i32, offset: i64) -> OffsetsRecord {
        OffsetsRecord::offset_commit(group, "t", p, OffsetCommitValue::new(offset, -1, "", 0))
    }

    fn offset(state: &OffsetsState, group: &str, p: i32) -> Option<i64> {
        state.committed_offset(group, "t", p).map(|o| o.offset)
    }

    #[test]
    fn later_record_wins_between_plain_and_transactional_commits() {
        let mut s = OffsetsState::new();
        // Plain commit before the transactional one: the transaction's commit wins.
        replay(&mut s, 0, None, &commit("g", 0, 10));
        replay(&mut s, 1, Some(5), &commit("g", 0, 20));
        // Plain commit after the transactional record: it stays when the transaction commits.
        replay(&mut s, 2, Some(5), &commit("g", 1, 30));
        replay(&mut s, 3, None, &commit("g", 1, 40));
        assert_eq!(offset(&s, "g", 0), Some(10));
        assert!(s.has_pending_transactional_offset("g", "t", 0));
        s.replay_marker(5, true);
        assert_eq!(offset(&s, "g", 0), Some(20));
        assert_eq!(offset(&s, "g", 1), Some(40));
        assert!(!s.has_pending_transactional_offset("g", "t", 0));
        assert!(s.pending_producers().is_empty());
    }

    #[test]
    fn abort_drops_and_tombstones_delete() {
        let mut s = OffsetsState::new();
        replay(&mut s, 0, Some(9), &commit("g", 0, 10));
        s.replay_marker(9, false);
        assert_eq!(offset(&s, "g", 0), None);
        assert!(!s.contains_group("g"));
        replay(&mut s, 1, None, &commit("g", 0, 11));
        replay(
            &mut s,
            2,
            None,
            &OffsetsRecord::offset_tombstone("g", "t", 0),
        );
        assert_eq!(offset(&s, "g", 0), None);
        assert!(!s.contains_group("g"));
        // A marker for a producer with nothing pending changes nothing.
        s.replay_marker(77, true);
        assert!(s.snapshot().is_empty());
    }
}
