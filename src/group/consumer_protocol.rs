//! The consumer protocol: subscription and assignment blobs.

use super::wire::{
    put_array_len, put_i16, put_i32, put_nullable_bytes, put_nullable_string, put_string, Reader,
};
use crate::error::{Error, Result};

/// The protocol type of consumer groups in JoinGroup (`consumer`).
pub const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

/// The newest consumer protocol version (subscription and assignment).
pub const CONSUMER_PROTOCOL_MAX_VERSION: i16 = 3;

const SUBSCRIPTION: &str = "ConsumerProtocolSubscription";
const ASSIGNMENT: &str = "ConsumerProtocolAssignment";

/// Partitions of one topic.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartitions {
    /// The topic name.
    pub topic: String,
    /// The partition indexes.
    pub partitions: Vec<i32>,
}

impl TopicPartitions {
    /// Partitions `partitions` of `topic`.
    pub fn new(topic: impl Into<String>, partitions: Vec<i32>) -> Self {
        TopicPartitions {
            topic: topic.into(),
            partitions,
        }
    }

    fn read_list(r: &mut Reader<'_>) -> Result<Vec<TopicPartitions>> {
        // One entry is at least a 2-byte topic length and a 4-byte count.
        let count = r.array_len(false, 6)?;
        let mut out = Vec::with_capacity(count);
        for _ in 0..count {
            let topic = r.string(false)?;
            let n = r.array_len(false, 4)?;
            let mut partitions = Vec::with_capacity(n);
            for _ in 0..n {
                partitions.push(r.i32()?);
            }
            out.push(TopicPartitions { topic, partitions });
        }
        Ok(out)
    }

    fn write_list(out: &mut Vec<u8>, list: &[TopicPartitions]) -> Result<()> {
        put_array_len(out, list.len(), false)?;
        for tp in list {
            put_string(out, &tp.topic, false)?;
            put_array_len(out, tp.partitions.len(), false)?;
            for &p in &tp.partitions {
                put_i32(out, p);
            }
        }
        Ok(())
    }
}

fn read_version(r: &mut Reader<'_>, schema: &'static str) -> Result<(i16, i16)> {
    let version = r.i16()?;
    if version < 0 {
        return Err(Error::UnsupportedSchemaVersion { schema, version });
    }
    Ok((version, version.min(CONSUMER_PROTOCOL_MAX_VERSION)))
}

fn check_version(version: i16, schema: &'static str) -> Result<()> {
    if (0..=CONSUMER_PROTOCOL_MAX_VERSION).contains(&version) {
        Ok(())
    } else {
        Err(Error::UnsupportedSchemaVersion { schema, version })
    }
}

/// A consumer's subscription: JoinGroup's protocol metadata for protocol type `consumer`.
///
/// The consumer protocol: what consumers put in JoinGroup's protocol metadata (their
/// subscription) and what the leader hands back through SyncGroup (each member's
/// assignment), byte for byte as Kafka's clients encode them (`ConsumerProtocolSubscription`
/// and `ConsumerProtocolAssignment` in Kafka's clients).
///
/// ```text
/// ConsumerProtocolSubscription  version int16, topics [string], user_data bytes?,
///                               owned_partitions [topic string, partitions [int32]] (v1+),
///                               generation_id int32 (v2+), rack_id string? (v3+)
/// ConsumerProtocolAssignment    version int16, assigned_partitions [topic, [int32]],
///                               user_data bytes?            (v1 to v3: same layout as v0)
/// ```
///
/// As Kafka's clients do, a version newer than the newest known one (3) is read with the
/// newest layout and whatever follows is ignored, so that newer clients can add fields.
///
/// ```
/// use streamlog::group::{ConsumerProtocolAssignment, ConsumerProtocolSubscription, TopicPartitions};
///
/// let subscription = ConsumerProtocolSubscription::new(vec!["orders".into(), "payments".into()]);
/// let bytes = subscription.encode()?;
/// assert_eq!(ConsumerProtocolSubscription::decode(&bytes)?, subscription);
///
/// let assignment = ConsumerProtocolAssignment::new(vec![TopicPartitions::new("orders", vec![0, 2])]);
/// let bytes = assignment.encode()?;
/// assert_eq!(ConsumerProtocolAssignment::decode(&bytes)?.assigned_partitions[0].partitions, [0, 2]);
/// # Ok::<(), streamlog::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConsumerProtocolSubscription {
    /// The version as read (a version above 3 was read with the v3 layout); encoding needs
    /// 0 to 3.
    pub version: i16,
    /// The topics the member subscribes to.
    pub topics: Vec<String>,
    /// The assignor's user data (the sticky assignors put the member's previous assignment
    /// here).
    pub user_data: Option<Vec<u8>>,
    /// The partitions the member owns now (v1+; cooperative rebalancing relies on it).
    pub owned_partitions: Vec<TopicPartitions>,
    /// The generation the owned partitions are from (v2+; -1 when unknown).
    pub generation_id: i32,
    /// The member's `client.rack` (v3+).
    pub rack_id: Option<String>,
}

impl ConsumerProtocolSubscription {
    /// A subscription to `topics` in the newest version, owning nothing.
    pub fn new(topics: Vec<String>) -> Self {
        ConsumerProtocolSubscription {
            version: CONSUMER_PROTOCOL_MAX_VERSION,
            topics,
            user_data: None,
            owned_partitions: Vec::new(),
            generation_id: -1,
            rack_id: None,
        }
    }

    /// Decodes a subscription. A negative version is [`Error::UnsupportedSchemaVersion`].
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes, SUBSCRIPTION);
        let (version, layout) = read_version(&mut r, SUBSCRIPTION)?;
        let count = r.array_len(false, 2)?;
        let mut topics = Vec::with_capacity(count);
        for _ in 0..count {
            topics.push(r.string(false)?);
        }
        let user_data = r.nullable_bytes(false)?;
        let owned_partitions = if layout >= 1 {
            TopicPartitions::read_list(&mut r)?
        } else {
            Vec::new()
        };
        let generation_id = if layout >= 2 { r.i32()? } else { -1 };
        let rack_id = if layout >= 3 {
            r.nullable_string(false)?
        } else {
            None
        };
        Ok(ConsumerProtocolSubscription {
            version,
            topics,
            user_data,
            owned_partitions,
            generation_id,
            rack_id,
        })
    }

    /// Encodes the subscription in its `version` (fields the version lacks are dropped).
    pub fn encode(&self) -> Result<Vec<u8>> {
        check_version(self.version, SUBSCRIPTION)?;
        let mut out = Vec::with_capacity(64);
        put_i16(&mut out, self.version);
        put_array_len(&mut out, self.topics.len(), false)?;
        for topic in &self.topics {
            put_string(&mut out, topic, false)?;
        }
        put_nullable_bytes(&mut out, self.user_data.as_deref(), false)?;
        if self.version >= 1 {
            TopicPartitions::write_list(&mut out, &self.owned_partitions)?;
        }
        if self.version >= 2 {
            put_i32(&mut out, self.generation_id);
        }
        if self.version >= 3 {
            put_nullable_string(&mut out, self.rack_id.as_deref(), false)?;
        }
        Ok(out)
    }
}

/// A member's assignment: SyncGroup's assignment bytes for protocol type `consumer`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConsumerProtocolAssignment {
    /// The version as read (a version above 3 was read with the v3 layout); encoding needs
    /// 0 to 3.
    pub version: i16,
    /// The partitions assigned to the member.
    pub assigned_partitions: Vec<TopicPartitions>,
    /// The assignor's user data.
    pub user_data: Option<Vec<u8>>,
}

impl ConsumerProtocolAssignment {
    /// An assignment of `assigned_partitions` in the newest version.
    pub fn new(assigned_partitions: Vec<TopicPartitions>) -> Self {
        ConsumerProtocolAssignment {
            version: CONSUMER_PROTOCOL_MAX_VERSION,
            assigned_partitions,
            user_data: None,
        }
    }

    /// Decodes an assignment. A negative version is [`Error::UnsupportedSchemaVersion`].
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes, ASSIGNMENT);
        let (version, _) = read_version(&mut r, ASSIGNMENT)?;
        let assigned_partitions = TopicPartitions::read_list(&mut r)?;
        let user_data = r.nullable_bytes(false)?;
        Ok(ConsumerProtocolAssignment {
            version,
            assigned_partitions,
            user_data,
        })
    }

    /// Encodes the assignment in its `version`.
    pub fn encode(&self) -> Result<Vec<u8>> {
        check_version(self.version, ASSIGNMENT)?;
        let mut out = Vec::with_capacity(64);
        put_i16(&mut out, self.version);
        TopicPartitions::write_list(&mut out, &self.assigned_partitions)?;
        put_nullable_bytes(&mut out, self.user_data.as_deref(), false)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn subscription_versions_round_trip() {
        for version in 0..=3 {
            let mut s = ConsumerProtocolSubscription::new(vec!["a".into(), "b".into()]);
            s.version = version;
            s.user_data = Some(vec![1, 2]);
            if version >= 1 {
                s.owned_partitions = vec![TopicPartitions::new("a", vec![0, 1])];
            }
            if version >= 2 {
                s.generation_id = 4;
            }
            if version >= 3 {
                s.rack_id = Some("rack-1".into());
            }
            let bytes = s.encode().unwrap();
            assert_eq!(ConsumerProtocolSubscription::decode(&bytes).unwrap(), s);
        }
    }

    #[test]
    fn newer_versions_read_with_the_newest_layout() {
        let mut s = ConsumerProtocolSubscription::new(vec!["t".into()]);
        s.rack_id = Some("r".into());
        let mut bytes = s.encode().unwrap();
        bytes[1] = 9;
        bytes.extend_from_slice(b"future fields");
        let read = ConsumerProtocolSubscription::decode(&bytes).unwrap();
        assert_eq!(read.version, 9);
        assert_eq!(read.rack_id.as_deref(), Some("r"));
        assert!(read.encode().is_err());
        assert!(matches!(
            ConsumerProtocolAssignment::decode(&[0xff, 0xff]),
            Err(Error::UnsupportedSchemaVersion { .. })
        ));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = ConsumerProtocolSubscription::decode(&bytes);
            let _ = ConsumerProtocolAssignment::decode(&bytes);
        }
    }
}
