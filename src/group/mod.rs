//! Consumer groups: committed offsets and group metadata in Kafka's `__consumer_offsets`
//! records, the consumer protocol, and (in [`coordinator`]) the group coordinator.
//!
//! This module holds the data half: the record layouts of the offsets topic
//! ([`OffsetsKey`], [`OffsetCommitValue`], [`GroupMetadataValue`]), byte for byte as Kafka
//! writes them, and the consumer protocol's subscription and assignment
//! ([`ConsumerProtocolSubscription`], [`ConsumerProtocolAssignment`]) as Kafka's clients
//! encode them. Decoding takes untrusted bytes: it never panics, and an unknown version is
//! [`Error::UnsupportedSchemaVersion`](crate::Error::UnsupportedSchemaVersion).
//!
//! ```
//! use streamlog::group::{GroupMetadataKey, GroupMetadataValue, MemberMetadata, OffsetsKey};
//!
//! let value = GroupMetadataValue {
//!     version: 3,
//!     protocol_type: "consumer".into(),
//!     generation: 1,
//!     protocol: Some("range".into()),
//!     leader: Some("m-1".into()),
//!     current_state_timestamp: 1_700_000_000_000,
//!     members: vec![MemberMetadata {
//!         member_id: "m-1".into(),
//!         group_instance_id: None,
//!         client_id: "app".into(),
//!         client_host: "/10.0.0.1".into(),
//!         rebalance_timeout: 300_000,
//!         session_timeout: 45_000,
//!         subscription: Vec::new(),
//!         assignment: Vec::new(),
//!         tagged_fields: Vec::new(),
//!     }],
//!     tagged_fields: Vec::new(),
//! };
//! let key = GroupMetadataKey::new("payments").encode()?;
//! assert_eq!(OffsetsKey::decode(&key)?.group(), "payments");
//! assert_eq!(GroupMetadataValue::decode(&value.encode()?)?, value);
//! # Ok::<(), streamlog::Error>(())
//! ```

pub mod assignor;
pub mod coordinator;

mod consumer_protocol;
mod driver;
mod partition;
mod records;
mod state;
mod store;
mod wire;

pub use consumer_protocol::{
    ConsumerProtocolAssignment, ConsumerProtocolSubscription, TopicPartitions,
    CONSUMER_PROTOCOL_MAX_VERSION, CONSUMER_PROTOCOL_TYPE,
};
pub use driver::LocalGroupDriver;
pub use partition::{
    java_string_hash_code, partition_for_group, DEFAULT_OFFSETS_TOPIC_NUM_PARTITIONS, OFFSETS_TOPIC,
};
pub use records::{
    GroupMetadataKey, GroupMetadataValue, MemberMetadata, OffsetCommitKey, OffsetCommitValue,
    OffsetsKey, OffsetsRecord, GROUP_METADATA_KEY_VERSION, GROUP_METADATA_VALUE_MAX_VERSION,
    OFFSET_COMMIT_KEY_VERSION, OFFSET_COMMIT_VALUE_MAX_VERSION,
};
pub use state::{GroupSnapshot, OffsetAndMetadata, OffsetsState};
pub use store::{
    commit_error_code, ensure_offsets_topic, load_entries, OffsetCommit, OffsetsPartition,
    OffsetsTopicConfig, OFFSETS_TOPIC_COMPRESSION_CODEC, OFFSETS_TOPIC_NUM_PARTITIONS,
    OFFSETS_TOPIC_SEGMENT_BYTES, OFFSET_METADATA_MAX_BYTES,
};
pub use wire::TaggedField;
