//! The records of the `__consumer_offsets` topic.

use super::wire::{
    put_bytes, put_i16, put_i32, put_i64, put_nullable_string, put_string, put_tagged_fields,
    Reader, TaggedField,
};
use crate::error::{Error, Result};

/// The key version of an [`OffsetCommitKey`] Kafka writes (version 0 has the same layout
/// and is still read).
pub const OFFSET_COMMIT_KEY_VERSION: i16 = 1;

/// The key version of a [`GroupMetadataKey`].
pub const GROUP_METADATA_KEY_VERSION: i16 = 2;

/// The highest [`OffsetCommitValue`] version (the first flexible one).
pub const OFFSET_COMMIT_VALUE_MAX_VERSION: i16 = 4;

/// The highest [`GroupMetadataValue`] version (the first flexible one).
pub const GROUP_METADATA_VALUE_MAX_VERSION: i16 = 4;

const KEY: &str = "__consumer_offsets key";
const OFFSET_COMMIT_VALUE: &str = "OffsetCommitValue";
const GROUP_METADATA_VALUE: &str = "GroupMetadataValue";

fn unsupported(schema: &'static str, version: i16) -> Error {
    Error::UnsupportedSchemaVersion { schema, version }
}

/// The key of a `__consumer_offsets` record: which kind of record it is, and what it is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum OffsetsKey {
    /// A committed offset (key version 0 or 1).
    OffsetCommit(OffsetCommitKey),
    /// A group's metadata (key version 2).
    GroupMetadata(GroupMetadataKey),
}

impl OffsetsKey {
    /// Decodes a record key. Key versions other than 0, 1 and 2 (the records of Kafka's newer
    /// consumer protocol, or garbage) are [`Error::UnsupportedSchemaVersion`].
    pub fn decode(bytes: &[u8]) -> Result<OffsetsKey> {
        let mut r = Reader::new(bytes, KEY);
        let version = r.i16()?;
        match version {
            0 | 1 => Ok(OffsetsKey::OffsetCommit(OffsetCommitKey {
                version,
                group: r.string(false)?,
                topic: r.string(false)?,
                partition: r.i32()?,
            })),
            GROUP_METADATA_KEY_VERSION => Ok(OffsetsKey::GroupMetadata(GroupMetadataKey {
                group: r.string(false)?,
            })),
            _ => Err(unsupported(KEY, version)),
        }
    }

    /// Encodes the key, version prefix included.
    pub fn encode(&self) -> Result<Vec<u8>> {
        match self {
            OffsetsKey::OffsetCommit(key) => key.encode(),
            OffsetsKey::GroupMetadata(key) => key.encode(),
        }
    }

    /// The group the record belongs to.
    pub fn group(&self) -> &str {
        match self {
            OffsetsKey::OffsetCommit(key) => &key.group,
            OffsetsKey::GroupMetadata(key) => &key.group,
        }
    }
}

/// One record of the offsets topic, key and value decoded: what the group coordinator
/// writes and what loading a partition replays. A `None` value is a tombstone.
///
/// The records of the `__consumer_offsets` topic, byte for byte as Kafka writes them.
///
/// Each record's key and value start with an `int16` version; the key's version says which
/// kind of record it is. The layouts follow Kafka's schemas (`OffsetCommitKey.json`,
/// `OffsetCommitValue.json`, `GroupMetadataKey.json`, `GroupMetadataValue.json` in Kafka's
/// group coordinator):
///
/// ```text
/// key version 0 or 1: OffsetCommitKey       group string, topic string, partition int32
/// key version 2:      GroupMetadataKey      group string
///
/// OffsetCommitValue   v0: offset int64, metadata string, commit_timestamp int64
///                     v1: v0 + expire_timestamp int64 (only v1 has it)
///                     v2: as v0
///                     v3: offset, leader_epoch int32, metadata, commit_timestamp
///                     v4: as v3, flexible (compact string, tagged fields)
/// GroupMetadataValue  protocol_type string, generation int32, protocol string?,
///                     leader string?, current_state_timestamp int64 (v2+),
///                     members [member_id, group_instance_id string? (v3+), client_id,
///                     client_host, rebalance_timeout int32 (v1+), session_timeout int32,
///                     subscription bytes, assignment bytes]; v4 flexible
/// ```
///
/// A null value is a tombstone: the offset or group is deleted. A field a version does not
/// carry decodes as Kafka's default (-1 for the epochs and timestamps, null for the group
/// instance id, 0 for a v0 member's rebalance timeout) and is dropped when encoding that
/// version, as Kafka does with its "ignorable" fields.
///
/// ```
/// use streamlog::group::{OffsetCommitKey, OffsetCommitValue, OffsetsKey};
///
/// let key = OffsetCommitKey::new("payments", "orders", 3);
/// let value = OffsetCommitValue::new(42, 7, "", 1_700_000_000_000);
/// let (key_bytes, value_bytes) = (key.encode()?, value.encode()?);
/// assert_eq!(&key_bytes[..2], [0, 1]); // key version 1: an offset commit
/// assert_eq!(&value_bytes[..2], [0, 3]); // value version 3, as Kafka writes it
///
/// assert_eq!(OffsetsKey::decode(&key_bytes)?, OffsetsKey::OffsetCommit(key));
/// assert_eq!(OffsetCommitValue::decode(&value_bytes)?, value);
/// # Ok::<(), streamlog::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OffsetsRecord {
    /// A committed offset, or its deletion.
    OffsetCommit {
        /// The key: group, topic, partition.
        key: OffsetCommitKey,
        /// The committed offset (`None`: delete it).
        value: Option<OffsetCommitValue>,
    },
    /// A group's metadata, or the group's deletion.
    GroupMetadata {
        /// The key: the group.
        key: GroupMetadataKey,
        /// The metadata (`None`: delete the group).
        value: Option<GroupMetadataValue>,
    },
}

impl OffsetsRecord {
    /// A commit of `value` for `group`'s `topic`-`partition`.
    pub fn offset_commit(
        group: impl Into<String>,
        topic: impl Into<String>,
        partition: i32,
        value: OffsetCommitValue,
    ) -> Self {
        OffsetsRecord::OffsetCommit {
            key: OffsetCommitKey::new(group, topic, partition),
            value: Some(value),
        }
    }

    /// The tombstone that deletes `group`'s offset for `topic`-`partition`.
    pub fn offset_tombstone(
        group: impl Into<String>,
        topic: impl Into<String>,
        partition: i32,
    ) -> Self {
        OffsetsRecord::OffsetCommit {
            key: OffsetCommitKey::new(group, topic, partition),
            value: None,
        }
    }

    /// `group`'s metadata.
    pub fn group_metadata(group: impl Into<String>, value: GroupMetadataValue) -> Self {
        OffsetsRecord::GroupMetadata {
            key: GroupMetadataKey::new(group),
            value: Some(value),
        }
    }

    /// The tombstone that deletes `group`'s metadata.
    pub fn group_tombstone(group: impl Into<String>) -> Self {
        OffsetsRecord::GroupMetadata {
            key: GroupMetadataKey::new(group),
            value: None,
        }
    }

    /// Decodes a record from its key and value bytes. `Ok(None)` for a key version this
    /// crate does not know (the records of Kafka's newer group protocols, which a loader
    /// skips as Kafka skips unknown record types).
    pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<Option<Self>> {
        let key = match OffsetsKey::decode(key) {
            Ok(key) => key,
            Err(Error::UnsupportedSchemaVersion { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(Some(match key {
            OffsetsKey::OffsetCommit(key) => OffsetsRecord::OffsetCommit {
                key,
                value: value.map(OffsetCommitValue::decode).transpose()?,
            },
            OffsetsKey::GroupMetadata(key) => OffsetsRecord::GroupMetadata {
                key,
                value: value.map(GroupMetadataValue::decode).transpose()?,
            },
        }))
    }

    /// The group the record is about.
    pub fn group(&self) -> &str {
        match self {
            OffsetsRecord::OffsetCommit { key, .. } => &key.group,
            OffsetsRecord::GroupMetadata { key, .. } => &key.group,
        }
    }

    /// The key's bytes.
    pub fn key_bytes(&self) -> Result<Vec<u8>> {
        match self {
            OffsetsRecord::OffsetCommit { key, .. } => key.encode(),
            OffsetsRecord::GroupMetadata { key, .. } => key.encode(),
        }
    }

    /// The value's bytes (`None` for a tombstone).
    pub fn value_bytes(&self) -> Result<Option<Vec<u8>>> {
        match self {
            OffsetsRecord::OffsetCommit { value, .. } => {
                value.as_ref().map(|v| v.encode()).transpose()
            }
            OffsetsRecord::GroupMetadata { value, .. } => {
                value.as_ref().map(|v| v.encode()).transpose()
            }
        }
    }
}

/// The key of a committed offset: `(group, topic, partition)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OffsetCommitKey {
    /// Key version: 0 or 1 (same layout; Kafka writes 1).
    pub version: i16,
    /// The consumer group id.
    pub group: String,
    /// The topic name.
    pub topic: String,
    /// The partition index.
    pub partition: i32,
}

impl OffsetCommitKey {
    /// A key as Kafka writes it (version [`OFFSET_COMMIT_KEY_VERSION`]).
    pub fn new(group: impl Into<String>, topic: impl Into<String>, partition: i32) -> Self {
        OffsetCommitKey {
            version: OFFSET_COMMIT_KEY_VERSION,
            group: group.into(),
            topic: topic.into(),
            partition,
        }
    }

    /// Encodes the key, version prefix included.
    pub fn encode(&self) -> Result<Vec<u8>> {
        encode_offset_commit_key(self.version, &self.group, &self.topic, self.partition)
    }
}

/// Encodes an offset-commit key from borrowed parts (no `OffsetCommitKey` to build).
pub(crate) fn encode_offset_commit_key(
    version: i16,
    group: &str,
    topic: &str,
    partition: i32,
) -> Result<Vec<u8>> {
    if !matches!(version, 0 | 1) {
        return Err(unsupported("OffsetCommitKey", version));
    }
    let mut out = Vec::with_capacity(2 + 2 + group.len() + 2 + topic.len() + 4);
    put_i16(&mut out, version);
    put_string(&mut out, group, false)?;
    put_string(&mut out, topic, false)?;
    put_i32(&mut out, partition);
    Ok(out)
}

/// The key of a group's metadata record.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GroupMetadataKey {
    /// The group id.
    pub group: String,
}

impl GroupMetadataKey {
    /// The key of `group`'s metadata.
    pub fn new(group: impl Into<String>) -> Self {
        GroupMetadataKey {
            group: group.into(),
        }
    }

    /// Encodes the key, version prefix ([`GROUP_METADATA_KEY_VERSION`]) included.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(4 + self.group.len());
        put_i16(&mut out, GROUP_METADATA_KEY_VERSION);
        put_string(&mut out, &self.group, false)?;
        Ok(out)
    }
}

/// A committed offset: the value of an [`OffsetCommitKey`] record.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OffsetCommitValue {
    /// Value version, 0 to 4. Kafka writes 3, or 1 when the commit carries an expire timestamp.
    pub version: i16,
    /// The committed offset: the next offset the group will consume.
    pub offset: i64,
    /// Leader epoch of the last consumed record (v3+; -1 when unknown).
    pub leader_epoch: i32,
    /// The client's metadata string.
    pub metadata: String,
    /// When the commit was made (ms since the epoch).
    pub commit_timestamp: i64,
    /// When the commit expires (v1 only; -1 otherwise).
    pub expire_timestamp: i64,
    /// Tagged fields of a flexible version (v4), kept as stored.
    pub tagged_fields: Vec<TaggedField>,
}

impl OffsetCommitValue {
    /// A value as Kafka writes it today (version 3, no expire timestamp). A negative
    /// `leader_epoch` means unknown and is stored as -1.
    pub fn new(
        offset: i64,
        leader_epoch: i32,
        metadata: impl Into<String>,
        commit_timestamp: i64,
    ) -> Self {
        OffsetCommitValue {
            version: 3,
            offset,
            leader_epoch: leader_epoch.max(-1),
            metadata: metadata.into(),
            commit_timestamp,
            expire_timestamp: -1,
            tagged_fields: Vec::new(),
        }
    }

    /// Decodes a value; versions above [`OFFSET_COMMIT_VALUE_MAX_VERSION`] are
    /// [`Error::UnsupportedSchemaVersion`].
    pub fn decode(bytes: &[u8]) -> Result<OffsetCommitValue> {
        let mut r = Reader::new(bytes, OFFSET_COMMIT_VALUE);
        let version = r.i16()?;
        if !(0..=OFFSET_COMMIT_VALUE_MAX_VERSION).contains(&version) {
            return Err(unsupported(OFFSET_COMMIT_VALUE, version));
        }
        let flexible = version >= 4;
        let offset = r.i64()?;
        let leader_epoch = if version >= 3 { r.i32()? } else { -1 };
        let metadata = r.string(flexible)?;
        let commit_timestamp = r.i64()?;
        let expire_timestamp = if version == 1 { r.i64()? } else { -1 };
        let tagged_fields = if flexible {
            r.tagged_fields()?
        } else {
            Vec::new()
        };
        Ok(OffsetCommitValue {
            version,
            offset,
            leader_epoch,
            metadata,
            commit_timestamp,
            expire_timestamp,
            tagged_fields,
        })
    }

    /// Encodes the value in its `version`, version prefix included.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(32 + self.metadata.len());
        self.encode_into(&mut out)?;
        Ok(out)
    }

    /// Appends the encoded value to `out` (on error `out` may hold part of it).
    pub fn encode_into(&self, out: &mut Vec<u8>) -> Result<()> {
        let version = self.version;
        if !(0..=OFFSET_COMMIT_VALUE_MAX_VERSION).contains(&version) {
            return Err(unsupported(OFFSET_COMMIT_VALUE, version));
        }
        let flexible = version >= 4;
        put_i16(out, version);
        put_i64(out, self.offset);
        if version >= 3 {
            put_i32(out, self.leader_epoch);
        }
        put_string(out, &self.metadata, flexible)?;
        put_i64(out, self.commit_timestamp);
        if version == 1 {
            put_i64(out, self.expire_timestamp);
        }
        if flexible {
            put_tagged_fields(out, &self.tagged_fields)?;
        }
        Ok(())
    }
}

/// A group's metadata: the value of a [`GroupMetadataKey`] record, written when a
/// rebalance completes (and, with no members, when the group empties).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GroupMetadataValue {
    /// Value version, 0 to 4 (Kafka writes 3).
    pub version: i16,
    /// The protocol type (`consumer` for consumer groups; empty for a group that only
    /// commits offsets).
    pub protocol_type: String,
    /// The generation id.
    pub generation: i32,
    /// The selected protocol (the assignor's name for consumer groups), if any.
    pub protocol: Option<String>,
    /// The leader's member id, if any.
    pub leader: Option<String>,
    /// When the group last changed state (ms since the epoch; v2+, -1 otherwise).
    pub current_state_timestamp: i64,
    /// The members and their assignments.
    pub members: Vec<MemberMetadata>,
    /// Tagged fields of a flexible version (v4), kept as stored.
    pub tagged_fields: Vec<TaggedField>,
}

/// One member of a group, as stored in a [`GroupMetadataValue`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MemberMetadata {
    /// The member id the coordinator issued.
    pub member_id: String,
    /// The static member's `group.instance.id` (v3+).
    pub group_instance_id: Option<String>,
    /// The client's `client.id`.
    pub client_id: String,
    /// The client's host.
    pub client_host: String,
    /// `rebalance.timeout.ms` (v1+; 0 in a v0 record, where Kafka used the session timeout).
    pub rebalance_timeout: i32,
    /// `session.timeout.ms`.
    pub session_timeout: i32,
    /// The member's metadata for the selected protocol (for consumer groups an encoded
    /// [`ConsumerProtocolSubscription`](super::ConsumerProtocolSubscription)).
    pub subscription: Vec<u8>,
    /// The member's assignment (for consumer groups an encoded
    /// [`ConsumerProtocolAssignment`](super::ConsumerProtocolAssignment)).
    pub assignment: Vec<u8>,
    /// Tagged fields of a flexible version (v4), kept as stored.
    pub tagged_fields: Vec<TaggedField>,
}

/// The fewest bytes one member takes in a record (four empty strings, two int32, two empty
/// byte fields in the compact form), bounding the member count by the bytes left.
const MIN_MEMBER_BYTES: usize = 4 + 8 + 2;

impl GroupMetadataValue {
    /// Decodes a value; versions above [`GROUP_METADATA_VALUE_MAX_VERSION`] are
    /// [`Error::UnsupportedSchemaVersion`].
    pub fn decode(bytes: &[u8]) -> Result<GroupMetadataValue> {
        let mut r = Reader::new(bytes, GROUP_METADATA_VALUE);
        let version = r.i16()?;
        if !(0..=GROUP_METADATA_VALUE_MAX_VERSION).contains(&version) {
            return Err(unsupported(GROUP_METADATA_VALUE, version));
        }
        let flexible = version >= 4;
        let protocol_type = r.string(flexible)?;
        let generation = r.i32()?;
        let protocol = r.nullable_string(flexible)?;
        let leader = r.nullable_string(flexible)?;
        let current_state_timestamp = if version >= 2 { r.i64()? } else { -1 };
        let count = r.array_len(flexible, MIN_MEMBER_BYTES)?;
        let mut members = Vec::with_capacity(count);
        for _ in 0..count {
            members.push(MemberMetadata::read(&mut r, version)?);
        }
        let tagged_fields = if flexible {
            r.tagged_fields()?
        } else {
            Vec::new()
        };
        Ok(GroupMetadataValue {
            version,
            protocol_type,
            generation,
            protocol,
            leader,
            current_state_timestamp,
            members,
            tagged_fields,
        })
    }

    /// Encodes the value in its `version`, version prefix included.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(64 + 128 * self.members.len());
        self.encode_into(&mut out)?;
        Ok(out)
    }

    /// Appends the encoded value to `out` (on error `out` may hold part of it).
    pub fn encode_into(&self, out: &mut Vec<u8>) -> Result<()> {
        let version = self.version;
        if !(0..=GROUP_METADATA_VALUE_MAX_VERSION).contains(&version) {
            return Err(unsupported(GROUP_METADATA_VALUE, version));
        }
        let flexible = version >= 4;
        put_i16(out, version);
        put_string(out, &self.protocol_type, flexible)?;
        put_i32(out, self.generation);
        put_nullable_string(out, self.protocol.as_deref(), flexible)?;
        put_nullable_string(out, self.leader.as_deref(), flexible)?;
        if version >= 2 {
            put_i64(out, self.current_state_timestamp);
        }
        super::wire::put_array_len(out, self.members.len(), flexible)?;
        for member in &self.members {
            member.write(out, version)?;
        }
        if flexible {
            put_tagged_fields(out, &self.tagged_fields)?;
        }
        Ok(())
    }
}

impl MemberMetadata {
    fn read(r: &mut Reader<'_>, version: i16) -> Result<MemberMetadata> {
        let flexible = version >= 4;
        let member_id = r.string(flexible)?;
        let group_instance_id = if version >= 3 {
            r.nullable_string(flexible)?
        } else {
            None
        };
        let client_id = r.string(flexible)?;
        let client_host = r.string(flexible)?;
        let rebalance_timeout = if version >= 1 { r.i32()? } else { 0 };
        let session_timeout = r.i32()?;
        let subscription = r.bytes(flexible)?;
        let assignment = r.bytes(flexible)?;
        let tagged_fields = if flexible {
            r.tagged_fields()?
        } else {
            Vec::new()
        };
        Ok(MemberMetadata {
            member_id,
            group_instance_id,
            client_id,
            client_host,
            rebalance_timeout,
            session_timeout,
            subscription,
            assignment,
            tagged_fields,
        })
    }

    fn write(&self, out: &mut Vec<u8>, version: i16) -> Result<()> {
        let flexible = version >= 4;
        put_string(out, &self.member_id, flexible)?;
        if version >= 3 {
            put_nullable_string(out, self.group_instance_id.as_deref(), flexible)?;
        }
        put_string(out, &self.client_id, flexible)?;
        put_string(out, &self.client_host, flexible)?;
        if version >= 1 {
            put_i32(out, self.rebalance_timeout);
        }
        put_i32(out, self.session_timeout);
        put_bytes(out, &self.subscription, flexible)?;
        put_bytes(out, &self.assignment, flexible)?;
        if flexible {
            put_tagged_fields(out, &self.tagged_fields)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn member(i: u8) -> MemberMetadata {
        MemberMetadata {
            member_id: format!("consumer-{i}"),
            group_instance_id: Some(format!("instance-{i}")),
            client_id: "client".into(),
            client_host: "/127.0.0.1".into(),
            rebalance_timeout: 300_000,
            session_timeout: 45_000,
            subscription: vec![i; 3],
            assignment: vec![i, i],
            tagged_fields: Vec::new(),
        }
    }

    #[test]
    fn offset_commit_value_versions_round_trip() {
        for version in 0..=4 {
            let mut value = OffsetCommitValue::new(100, 5, "meta", 1234);
            value.version = version;
            if version < 3 {
                value.leader_epoch = -1;
            }
            if version == 1 {
                value.expire_timestamp = 9999;
            }
            if version == 4 {
                value.tagged_fields.push(TaggedField {
                    tag: 7,
                    data: vec![1, 2, 3],
                });
            }
            let bytes = value.encode().unwrap();
            assert_eq!(
                OffsetCommitValue::decode(&bytes).unwrap(),
                value,
                "v{version}"
            );
        }
        // v3 layout: version, offset, leader epoch, metadata, commit timestamp.
        let bytes = OffsetCommitValue::new(1, 2, "m", 3).encode().unwrap();
        assert_eq!(
            bytes,
            [0, 3, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 1, b'm', 0, 0, 0, 0, 0, 0, 0, 3]
        );
    }

    #[test]
    fn group_metadata_value_versions_round_trip() {
        for version in 0..=4 {
            let mut value = GroupMetadataValue {
                version,
                protocol_type: "consumer".into(),
                generation: 3,
                protocol: Some("range".into()),
                leader: Some("consumer-1".into()),
                current_state_timestamp: if version >= 2 { 77 } else { -1 },
                members: vec![member(1), member(2)],
                tagged_fields: Vec::new(),
            };
            for m in &mut value.members {
                if version < 3 {
                    m.group_instance_id = None;
                }
                if version < 1 {
                    m.rebalance_timeout = 0;
                }
            }
            let bytes = value.encode().unwrap();
            assert_eq!(
                GroupMetadataValue::decode(&bytes).unwrap(),
                value,
                "v{version}"
            );
        }
    }

    #[test]
    fn unknown_versions_are_typed_errors() {
        for bytes in [&[0u8, 3, 0, 0][..], &[0xff, 0xff]] {
            assert!(matches!(
                OffsetsKey::decode(bytes),
                Err(Error::UnsupportedSchemaVersion { .. })
            ));
        }
        assert!(matches!(
            OffsetCommitValue::decode(&[0, 5, 0]),
            Err(Error::UnsupportedSchemaVersion { version: 5, .. })
        ));
        assert!(matches!(
            GroupMetadataValue::decode(&[0x80, 0]),
            Err(Error::UnsupportedSchemaVersion { .. })
        ));
        assert!(matches!(
            OffsetCommitValue::decode(&[0]),
            Err(Error::MalformedSchema { .. })
        ));
    }

    #[test]
    fn offsets_records_decode_with_tombstones_and_skip_unknown_types() {
        let commit =
            OffsetsRecord::offset_commit("g", "t", 1, OffsetCommitValue::new(5, -1, "", 9));
        let (k, v) = (commit.key_bytes().unwrap(), commit.value_bytes().unwrap());
        assert_eq!(
            OffsetsRecord::decode(&k, v.as_deref()).unwrap(),
            Some(commit)
        );
        let tomb = OffsetsRecord::group_tombstone("g");
        let k = tomb.key_bytes().unwrap();
        assert_eq!(tomb.value_bytes().unwrap(), None);
        assert_eq!(OffsetsRecord::decode(&k, None).unwrap(), Some(tomb));
        // Key version 3: a record of Kafka's newer consumer protocol, skipped.
        assert_eq!(
            OffsetsRecord::decode(&[0, 3, 0, 1, b'g'], Some(&[0, 0])).unwrap(),
            None
        );
        // A known key with a broken value is an error.
        assert!(OffsetsRecord::decode(&k, Some(&[0, 3])).is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = OffsetsKey::decode(&bytes);
            let _ = OffsetCommitValue::decode(&bytes);
            let _ = GroupMetadataValue::decode(&bytes);
        }

        #[test]
        fn versioned_prefixes_never_panic(
            version in 0i16..=5,
            bytes in proptest::collection::vec(any::<u8>(), 0..256),
        ) {
            let mut input = version.to_be_bytes().to_vec();
            input.extend_from_slice(&bytes);
            let _ = OffsetsKey::decode(&input);
            if let Ok(v) = OffsetCommitValue::decode(&input) {
                // Whatever decodes re-encodes, and decodes to the same value again.
                let again = v.encode().unwrap();
                prop_assert_eq!(OffsetCommitValue::decode(&again).unwrap(), v);
            }
            if let Ok(v) = GroupMetadataValue::decode(&input) {
                let again = v.encode().unwrap();
                prop_assert_eq!(GroupMetadataValue::decode(&again).unwrap(), v);
            }
        }
    }
}
