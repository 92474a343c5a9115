//! Committed offsets as both the offset store ([`OffsetsState`](super::OffsetsState)) and the
//! group coordinator keep them in memory: topics interned per table, and each offset in a
//! 48-byte slot (the metadata string allocates only when non-empty). What goes in and comes
//! out is the one public [`OffsetAndMetadata`](super::OffsetAndMetadata).

use std::collections::HashMap;

use super::records::OffsetCommitValue;
use super::state::OffsetAndMetadata;

/// A topic's number in one table.
pub(crate) type TopicId = u32;
/// A topic partition in one table.
pub(crate) type Slot = (TopicId, i32);

/// Topic names interned: each name is stored once per table, and offsets carry its number.
#[derive(Debug, Default)]
pub(crate) struct Topics {
    names: Vec<Box<str>>,
    ids: HashMap<Box<str>, TopicId>,
}

impl Topics {
    /// The number of `topic`, if it was interned.
    pub(crate) fn id(&self, topic: &str) -> Option<TopicId> {
        self.ids.get(topic).copied()
    }

    /// The number of `topic`, interning it if new.
    pub(crate) fn intern(&mut self, topic: &str) -> TopicId {
        if let Some(&id) = self.ids.get(topic) {
            return id;
        }
        let id = TopicId::try_from(self.names.len()).unwrap_or(TopicId::MAX);
        self.names.push(topic.into());
        self.ids.insert(topic.into(), id);
        id
    }

    /// The name of topic `id` (empty for a number never given out).
    pub(crate) fn name(&self, id: TopicId) -> &str {
        self.names.get(id as usize).map_or("", |n| n)
    }
}

/// One offset in memory (field order packs it into 48 bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredOffset {
    pub(crate) offset: i64,
    pub(crate) commit_timestamp: i64,
    /// -1 when none.
    pub(crate) expire_timestamp: i64,
    /// Where its record is in the offsets log (its offset there, or for the coordinator the
    /// order of its append): of two commits, the later record wins.
    pub(crate) position: u64,
    /// Usually empty: then no allocation, and a thin pointer (8 bytes, where a `String` is
    /// 24) keeps the slot small.
    #[allow(clippy::box_collection)]
    metadata: Option<Box<String>>,
    /// -1 when unknown.
    leader_epoch: i32,
}

impl StoredOffset {
    /// The offset a record value carries, written at `position`.
    pub(crate) fn from_value(value: &OffsetCommitValue, position: u64) -> Self {
        StoredOffset {
            offset: value.offset,
            commit_timestamp: value.commit_timestamp,
            expire_timestamp: value.expire_timestamp.max(-1),
            position,
            metadata: (!value.metadata.is_empty()).then(|| Box::new(value.metadata.clone())),
            leader_epoch: value.leader_epoch.max(-1),
        }
    }

    /// `offset`, written at `position`.
    pub(crate) fn new(offset: &OffsetAndMetadata, position: u64) -> Self {
        StoredOffset {
            offset: offset.offset,
            commit_timestamp: offset.commit_timestamp,
            expire_timestamp: offset.expire_timestamp.map_or(-1, |e| e.max(-1)),
            position,
            metadata: (!offset.metadata.is_empty()).then(|| Box::new(offset.metadata.clone())),
            leader_epoch: offset.leader_epoch.map_or(-1, |e| e.max(-1)),
        }
    }

    /// When it expires, if the commit asked for a retention of its own.
    pub(crate) fn expire_timestamp(&self) -> Option<i64> {
        (self.expire_timestamp >= 0).then_some(self.expire_timestamp)
    }

    /// The public form.
    pub(crate) fn to_public(&self) -> OffsetAndMetadata {
        OffsetAndMetadata {
            offset: self.offset,
            leader_epoch: (self.leader_epoch >= 0).then_some(self.leader_epoch),
            metadata: self.metadata.as_deref().cloned().unwrap_or_default(),
            commit_timestamp: self.commit_timestamp,
            expire_timestamp: self.expire_timestamp(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_offset_is_compact() {
        assert!(std::mem::size_of::<StoredOffset>() <= 48);
        assert!(std::mem::size_of::<(Slot, StoredOffset)>() <= 56);
    }

    #[test]
    fn public_form_round_trips() {
        let mut o = OffsetAndMetadata::new(42, 1_000);
        assert_eq!(StoredOffset::new(&o, 0).to_public(), o);
        o.leader_epoch = Some(3);
        o.metadata = "host-1".into();
        o.expire_timestamp = Some(5_000);
        assert_eq!(StoredOffset::new(&o, 7).to_public(), o);
        assert_eq!(
            StoredOffset::from_value(&o.to_value(), 7)
                .to_public()
                .offset,
            42
        );
        let mut topics = Topics::default();
        assert_eq!(topics.intern("a"), 0);
        assert_eq!(topics.intern("b"), 1);
        assert_eq!(topics.intern("a"), 0);
        assert_eq!((topics.id("b"), topics.id("c")), (Some(1), None));
        assert_eq!(topics.name(1), "b");
    }
}
