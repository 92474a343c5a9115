//! Kafka-style replication of one partition as a sans-IO state machine.
//!
//! A [`Replica`] is one copy of a partition on a [`Log`](crate::Log) opened under
//! [`HighWatermarkPolicy::Replicated`](crate::HighWatermarkPolicy::Replicated). The controller
//! (Kafka's KRaft controller; here anything implementing [`Controller`]) tells each replica
//! the [`PartitionState`]: who leads, in which leader epoch, and the in-sync replicas (ISR).
//! The leader appends producers' batches and answers followers' [`FetchRequest`]s; a
//! follower fetches from its log end offset with the epoch of its last batch, truncates where
//! its log diverges from the leader's (KIP-101, KIP-279, Kafka 2.7's diverging epochs), and
//! appends the leader's batches with their offsets and epochs. The leader's high watermark
//! is the smallest log end offset over the ISR; an `acks=all` produce completes when the high
//! watermark passes it.
//!
//! Nothing here owns a thread, socket, clock or timer: the application feeds messages,
//! partition states and the time ([`Replica::tick`]) in, and takes [`Output`]s out (messages
//! to send through its [`Transport`], ISR proposals for its [`Controller`], produce
//! completions). The log calls it makes are the only I/O. [`InMemoryNetwork`] and
//! [`InMemoryController`] wire replicas together in one process (tests, simulations, the
//! example).
//!
//! ```
//! use std::sync::Arc;
//! use streamlog::replication::{
//!     Acks, InMemoryController, InMemoryNetwork, ProduceOutcome, Replica, ReplicationConfig,
//! };
//! use streamlog::{BatchBuilder, BatchOptions, HighWatermarkPolicy, Log, LogConfig};
//!
//! let dirs = [tempfile::tempdir()?, tempfile::tempdir()?, tempfile::tempdir()?];
//! let config = LogConfig::builder().high_watermark_policy(HighWatermarkPolicy::Replicated).build()?;
//! let repl = ReplicationConfig { min_insync_replicas: 2, ..ReplicationConfig::default() };
//! let mut replicas = Vec::new();
//! for (id, dir) in dirs.iter().enumerate() {
//!     let log = Arc::new(Log::open(dir.path(), config.clone())?);
//!     replicas.push(Replica::new(id as i32, 1, log, repl.clone(), 0)?);
//! }
//! let network = InMemoryNetwork::new();
//! let mut controller = InMemoryController::new(vec![0, 1, 2], repl.min_insync_replicas, false);
//! let state = controller.state().clone();
//! for r in &mut replicas {
//!     r.on_partition_state(state.clone(), 0)?;
//! }
//! let mut batch = BatchBuilder::new(BatchOptions::default());
//! batch.append(0, None, Some(b"hello"), &[])?;
//! let ProduceOutcome::Pending { id, .. } = replicas[0].append(&batch.build()?, Acks::All, 0)? else {
//!     panic!("acks=all waits for the followers");
//! };
//! // Run the cluster until the produce completes.
//! let mut now = 0;
//! let mut done = None;
//! while done.is_none() && now < 10_000 {
//!     now += 1;
//!     for r in &mut replicas {
//!         r.tick(now)?;
//!         for out in r.dispatch(&mut network.transport(), &mut controller) {
//!             if let Some(c) = out.produce_completion() { done = Some(c.clone()); }
//!         }
//!     }
//!     while let Some(envelope) = network.deliver_next() {
//!         replicas[envelope.to as usize].on_message(envelope.from, envelope.message, now)?;
//!     }
//!     for state in controller.apply_pending() {
//!         for r in &mut replicas { r.on_partition_state(state.clone(), now)?; }
//!     }
//! }
//! let done = done.expect("completed");
//! assert_eq!((done.id, done.error), (id, streamlog::KafkaCode::NONE));
//! assert!(replicas.iter().all(|r| r.log().high_watermark() == 1));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod follower;
mod leader;
mod memory;
mod messages;
mod partition_state;
mod replica;
mod transport;

pub use memory::{InMemoryController, InMemoryNetwork, InMemoryTransport};
pub use messages::{
    Envelope, EpochEndOffset, FetchRequest, FetchResponse, Message, OffsetsForLeaderEpochRequest,
    OffsetsForLeaderEpochResponse,
};
pub use partition_state::{AlterPartition, Election, PartitionState};
pub use replica::{Replica, Role};
pub use transport::{Controller, Transport};

use crate::KafkaCode;

/// A replica's id: Kafka's broker id of the broker holding it.
pub type ReplicaId = i32;

/// Kafka's `NO_LEADER` / `-1` replica id in a partition state without a leader.
pub const NO_LEADER: ReplicaId = -1;

/// What a replica reports as the offset it holds, which the leader's high watermark follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum ReplicaDurability {
    /// Kafka's rule: a replica's log end offset, written but perhaps not flushed. A power
    /// loss on every in-sync replica at once may take back records the high watermark
    /// passed (and `acks=all` producers were told are written).
    #[default]
    LogEnd,
    /// Beyond Kafka (Redpanda's default): replicas flush what they append before they report
    /// it (a follower flushes before its next fetch, the leader before it counts its own log
    /// end), so the high watermark never passes data that a power loss on every replica
    /// could take back; consumers never see a record that later vanishes.
    Flushed,
}

/// The replication settings of a partition, with Kafka's names and defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicationConfig {
    /// `replica.lag.time.max.ms` (30 000): a follower that has not caught up with the
    /// leader's log end for this long leaves the ISR.
    pub replica_lag_time_max_ms: i64,
    /// `min.insync.replicas` (1): an `acks=all` produce is refused with NOT_ENOUGH_REPLICAS
    /// while the ISR is smaller, and the high watermark does not advance meanwhile (strict
    /// min ISR, KIP-966).
    pub min_insync_replicas: usize,
    /// `replica.fetch.max.bytes` (1 MiB): the most a fetch answer carries (at least one
    /// batch).
    pub replica_fetch_max_bytes: usize,
    /// `replica.fetch.wait.max.ms` (500): how long the leader holds a fetch that finds
    /// nothing new before answering it empty.
    pub replica_fetch_wait_max_ms: i64,
    /// `replica.fetch.backoff.ms` (1 000): how long a follower waits after a failed fetch.
    pub replica_fetch_backoff_ms: i64,
    /// `replica.socket.timeout.ms` (30 000): a fetch unanswered for this long is sent again
    /// (the transport may lose messages); also how often an unanswered ISR proposal is
    /// repeated.
    pub replica_socket_timeout_ms: i64,
    /// `request.timeout.ms` (30 000): an `acks=all` produce not completed within it fails
    /// with REQUEST_TIMED_OUT (NOT_ENOUGH_REPLICAS_AFTER_APPEND when the ISR is too small).
    pub request_timeout_ms: i64,
    /// What a replica reports as the offset it holds.
    pub durability: ReplicaDurability,
    /// `unclean.leader.election.enable` (false): a follower may truncate below its high
    /// watermark to follow a leader elected from outside the ISR, reporting the offsets it
    /// gives up ([`Output::UncleanTruncation`]).
    pub unclean_leader_election_enable: bool,
}

impl Default for ReplicationConfig {
    fn default() -> Self {
        ReplicationConfig {
            replica_lag_time_max_ms: 30_000,
            min_insync_replicas: 1,
            replica_fetch_max_bytes: 1 << 20,
            replica_fetch_wait_max_ms: 500,
            replica_fetch_backoff_ms: 1_000,
            replica_socket_timeout_ms: 30_000,
            request_timeout_ms: 30_000,
            durability: ReplicaDurability::LogEnd,
            unclean_leader_election_enable: false,
        }
    }
}

/// A producer's `acks`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Acks {
    /// `acks=0`: answered (with nothing) once appended.
    None,
    /// `acks=1`: complete once the leader appended.
    Leader,
    /// `acks=all` (`-1`): complete once the high watermark passes the batch.
    All,
}

/// Identifies an `acks=all` produce waiting for the high watermark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProduceId(pub u64);

/// What [`Replica::append`] did with a producer's batch.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProduceOutcome {
    /// Appended and complete (`acks` 0 or 1, or the high watermark already passed it).
    Completed {
        /// The batch's first offset.
        base_offset: i64,
        /// The batch's last offset.
        last_offset: i64,
    },
    /// Appended; a [`ProduceCompletion`] with this id comes out later.
    Pending {
        /// The completion's id.
        id: ProduceId,
        /// The batch's first offset.
        base_offset: i64,
        /// The batch's last offset.
        last_offset: i64,
    },
    /// Not appended: NOT_LEADER_OR_FOLLOWER, NOT_ENOUGH_REPLICAS, or the log's error
    /// ([`Error::kafka_code`](crate::Error::kafka_code)).
    Rejected(KafkaCode),
}

/// The end of an `acks=all` produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProduceCompletion {
    /// From [`ProduceOutcome::Pending`].
    pub id: ProduceId,
    /// The batch's first offset.
    pub base_offset: i64,
    /// The batch's last offset.
    pub last_offset: i64,
    /// NONE (replicated to the ISR), NOT_ENOUGH_REPLICAS_AFTER_APPEND, REQUEST_TIMED_OUT, or
    /// NOT_LEADER_OR_FOLLOWER (leadership lost first; the batch may still be committed).
    pub error: KafkaCode,
}

/// What a replica asks its application to do.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Output {
    /// Send a message to another replica ([`Transport::send`]).
    Send(Envelope),
    /// Propose a new ISR to the controller (Kafka's AlterPartition, [`Controller::alter_partition`]).
    AlterPartition(AlterPartition),
    /// An `acks=all` produce ended.
    ProduceCompleted(ProduceCompletion),
    /// A follower truncated below its high watermark to follow an uncleanly elected leader
    /// (only with `unclean_leader_election_enable`): the records in
    /// `[truncated_to, high_watermark)` were committed and are given up.
    UncleanTruncation {
        /// The follower's high watermark before.
        high_watermark: i64,
        /// Where its log now ends.
        truncated_to: i64,
        /// Where its log ended before.
        log_end_offset: i64,
    },
}

impl Output {
    /// The produce completion, if this is one.
    pub fn produce_completion(&self) -> Option<&ProduceCompletion> {
        match self {
            Output::ProduceCompleted(c) => Some(c),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests;
