//! The messages replicas exchange (Kafka's Fetch and OffsetsForLeaderEpoch, the fields
//! replication uses). The application carries them over its [`Transport`](super::Transport)
//! in whatever encoding it likes.

use super::ReplicaId;
use crate::KafkaCode;

/// A leader epoch and the offset where the log's next epoch starts (Kafka's
/// `EpochEndOffset`); `-1`/`-1` is UNDEFINED_EPOCH / UNDEFINED_EPOCH_OFFSET.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EpochEndOffset {
    /// The epoch (`-1` undefined).
    pub epoch: i32,
    /// Where the epoch ends (`-1` undefined).
    pub end_offset: i64,
}

impl EpochEndOffset {
    /// Kafka's UNDEFINED_EPOCH / UNDEFINED_EPOCH_OFFSET.
    pub const UNDEFINED: EpochEndOffset = EpochEndOffset {
        epoch: -1,
        end_offset: -1,
    };

    /// Whether this is [`EpochEndOffset::UNDEFINED`] (or any negative epoch).
    pub fn is_undefined(&self) -> bool {
        self.epoch < 0 || self.end_offset < 0
    }
}

/// A follower's fetch (Kafka's Fetch request from a replica, version 12 and later).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchRequest {
    /// Matches the answer to the request; unique within the follower's incarnation.
    pub correlation_id: u64,
    /// The follower.
    pub replica_id: ReplicaId,
    /// The follower's broker epoch (KIP-903): an incarnation number that grows with every
    /// restart, so the leader ignores fetches of an earlier life still in flight.
    pub replica_epoch: i64,
    /// The leader epoch the follower believes current (`CurrentLeaderEpoch`).
    pub current_leader_epoch: i32,
    /// Where the follower's log ends: what it has, and where the answer starts.
    pub fetch_offset: i64,
    /// The epoch of the follower's last batch (`LastFetchedEpoch`), `None` on an empty log.
    pub last_fetched_epoch: Option<i32>,
    /// The follower's log start offset.
    pub log_start_offset: i64,
    /// At most this many bytes of batches (at least one batch).
    pub max_bytes: usize,
}

/// The leader's answer to a [`FetchRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchResponse {
    /// The request's correlation id.
    pub correlation_id: u64,
    /// NONE, NOT_LEADER_OR_FOLLOWER, FENCED_LEADER_EPOCH, UNKNOWN_LEADER_EPOCH,
    /// OFFSET_OUT_OF_RANGE, or the leader's storage error.
    pub error: KafkaCode,
    /// The leader's epoch.
    pub leader_epoch: i32,
    /// The leader's high watermark.
    pub high_watermark: i64,
    /// The leader's log start offset.
    pub log_start_offset: i64,
    /// The leader's log end offset (tells a follower ahead of it where to cut after an
    /// OFFSET_OUT_OF_RANGE).
    pub log_end_offset: i64,
    /// Set when the follower's log diverges from the leader's at `fetch_offset` (Kafka 2.7+
    /// `DivergingEpoch`): the largest epoch the leader holds at or below the follower's
    /// last fetched epoch and where it ends. No records come with it.
    pub diverging_epoch: Option<EpochEndOffset>,
    /// Whole batches from `fetch_offset`, as stored by the leader.
    pub records: Vec<u8>,
}

/// Kafka's OffsetsForLeaderEpoch from a replica: where does `leader_epoch` end on the
/// leader?
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetsForLeaderEpochRequest {
    /// Matches the answer to the request.
    pub correlation_id: u64,
    /// The asking replica.
    pub replica_id: ReplicaId,
    /// The leader epoch the asker believes current.
    pub current_leader_epoch: i32,
    /// The epoch asked about.
    pub leader_epoch: i32,
}

/// The answer to an [`OffsetsForLeaderEpochRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetsForLeaderEpochResponse {
    /// The request's correlation id.
    pub correlation_id: u64,
    /// NONE, NOT_LEADER_OR_FOLLOWER, FENCED_LEADER_EPOCH or UNKNOWN_LEADER_EPOCH.
    pub error: KafkaCode,
    /// The largest epoch at or below the one asked about, and where it ends.
    pub end_offset: EpochEndOffset,
}

/// A message between replicas.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Message {
    /// A follower's fetch.
    Fetch(FetchRequest),
    /// The leader's answer.
    FetchResponse(FetchResponse),
    /// An epoch query.
    OffsetsForLeaderEpoch(OffsetsForLeaderEpochRequest),
    /// Its answer.
    OffsetsForLeaderEpochResponse(OffsetsForLeaderEpochResponse),
}

/// A message with its sender and receiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The sender.
    pub from: ReplicaId,
    /// The receiver.
    pub to: ReplicaId,
    /// The message.
    pub message: Message,
}
