//! The group coordinator wired to one process's [`Storage`]: `__consumer_offsets` is a
//! compacted topic of the storage, every partition of it is led here, and the coordinator's
//! records are appended and flushed before any answer that depends on them is released.
//! Time is the caller's: every call takes `now` (ms), so an application passes its clock and
//! a simulation its own time.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use super::coordinator::{
    Append, AppendId, GroupCoordinator, GroupCoordinatorConfig, Output, Request, RequestId,
    Response,
};
use super::partition::OFFSETS_TOPIC;
use super::store::{build_batch, ensure_offsets_topic, LogEntries, OffsetsTopicConfig};
use crate::error::{Error, Result};
use crate::kafka_code::KafkaCode;
use crate::log::Log;
use crate::producer::TxnResult;
use crate::storage::Storage;
use crate::txn::OffsetsMarkerHook;

/// A transaction marker written to an offsets partition, waiting to be applied.
type MarkerNote = (i32, i64, bool);

/// A [`GroupCoordinator`] driving a local [`Storage`]: consumer groups for a single-node
/// broker or an embedded application in a few lines.
///
/// Feed it every group request with [`handle`](Self::handle) and call
/// [`tick`](Self::tick) no later than [`next_deadline`](Self::next_deadline); both return
/// the answers that are ready, which may include answers to earlier requests (a JoinGroup is
/// answered when its rebalance completes, by whichever call completes it). Records the
/// coordinator asks for are appended to their `__consumer_offsets` partition, then the
/// partition is flushed, and only then does the coordinator hear that they are written: a
/// commit or an assignment is acknowledged only once it is durable.
///
/// A partition whose append or flush fails (the log is then poisoned) is unloaded: what
/// waited on it is answered `NOT_COORDINATOR`, and so is every later request for its groups
/// until it is loaded again ([`load_partition`](Self::load_partition), after the storage is
/// reopened).
///
/// Transactional offset commits become visible when the producer's COMMIT marker is in the
/// offsets partition: write it with [`write_txn_marker`](Self::write_txn_marker), or let the
/// transaction coordinator write it and tell this driver through
/// [`marker_hook`](Self::marker_hook) (for [`LocalTxnDriver::set_offsets_marker_hook`](crate::txn::LocalTxnDriver::set_offsets_marker_hook)).
///
/// ```
/// use std::sync::Arc;
/// use streamlog::group::coordinator::*;
/// use streamlog::group::{LocalGroupDriver, OffsetsTopicConfig};
/// use streamlog::storage::{Storage, StorageConfig};
/// use streamlog::KafkaCode;
///
/// let dir = tempfile::tempdir()?;
/// let storage = Arc::new(Storage::open(dir.path(), StorageConfig::default())?);
/// let mut groups = LocalGroupDriver::open(
///     Arc::clone(&storage), GroupCoordinatorConfig::default(), &OffsetsTopicConfig::default(), 7, 0)?;
///
/// // A consumer without group management commits, and the commit is durable on return.
/// let commit = Request::OffsetCommit(OffsetCommitRequest {
///     group_id: "etl".into(), generation_id: -1, member_id: String::new(),
///     group_instance_id: None, retention_time_ms: -1,
///     partitions: vec![OffsetCommitPartition { topic: "in".into(), partition: 0,
///         committed_offset: 42, committed_leader_epoch: -1, committed_metadata: None }],
/// });
/// let answers = groups.handle(1_000, 1, commit);
/// assert!(matches!(&answers[..], [(1, Response::OffsetCommit(r))] if r.partitions[0].error_code == KafkaCode::NONE));
///
/// // A restart loads the offsets back from `__consumer_offsets`.
/// drop(groups);
/// let mut groups = LocalGroupDriver::open(
///     storage, GroupCoordinatorConfig::default(), &OffsetsTopicConfig::default(), 8, 2_000)?;
/// let fetch = Request::OffsetFetch(OffsetFetchRequest {
///     group_id: "etl".into(), partitions: None, require_stable: true });
/// let answers = groups.handle(2_000, 2, fetch);
/// assert!(matches!(&answers[..], [(2, Response::OffsetFetch(r))] if r.partitions[0].committed_offset == 42));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct LocalGroupDriver {
    storage: Arc<Storage>,
    coordinator: GroupCoordinator,
    offsets: OffsetsTopicConfig,
    logs: BTreeMap<i32, Arc<Log>>,
    answers: Vec<(RequestId, Response)>,
    markers: Arc<Mutex<Vec<MarkerNote>>>,
}

impl std::fmt::Debug for LocalGroupDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalGroupDriver")
            .field("coordinator", &self.coordinator)
            .field("partitions", &self.logs.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl LocalGroupDriver {
    /// Opens the coordinator over `storage` at time `now`: creates the compacted
    /// `__consumer_offsets` topic if it is missing (with `offsets`' settings), and loads
    /// every partition of it, so every group resumes with its generation, members and
    /// offsets. An existing topic keeps its partition count, which is what groups map over
    /// (it overrides `config.offsets_topic_num_partitions`). `seed` drives the random part of
    /// member ids: give each open a fresh one (from the OS, say). Fails when a partition
    /// cannot be read.
    pub fn open(
        storage: Arc<Storage>,
        mut config: GroupCoordinatorConfig,
        offsets: &OffsetsTopicConfig,
        seed: u64,
        now: i64,
    ) -> Result<Self> {
        let partitions = ensure_offsets_topic(&storage, offsets)?;
        config.offsets_topic_num_partitions = partitions;
        config.offset_metadata_max_bytes = offsets.offset_metadata_max_bytes;
        let mut driver = LocalGroupDriver {
            storage,
            coordinator: GroupCoordinator::new(config, seed),
            offsets: offsets.clone(),
            logs: BTreeMap::new(),
            answers: Vec::new(),
            markers: Arc::new(Mutex::new(Vec::new())),
        };
        for partition in 0..partitions {
            let partition = i32::try_from(partition).map_err(|_| Error::InvalidConfig {
                key: "offsets.topic.num.partitions",
                value: partitions.to_string(),
                reason: "above i32::MAX",
            })?;
            driver.load_partition(now, partition)?;
        }
        Ok(driver)
    }

    /// The state machine, for inspection (group states, members, committed offsets).
    pub fn coordinator(&self) -> &GroupCoordinator {
        &self.coordinator
    }

    /// The offsets partitions loaded here.
    pub fn partitions(&self) -> Vec<i32> {
        self.logs.keys().copied().collect()
    }

    /// Handles one request at time `now`; returns every answer ready now (this request's,
    /// unless it waits for a rebalance, and any earlier one this request completed).
    pub fn handle(
        &mut self,
        now: i64,
        request_id: RequestId,
        request: Request,
    ) -> Vec<(RequestId, Response)> {
        self.apply_markers();
        self.coordinator.tick(now);
        self.coordinator.handle(now, request_id, request);
        self.run(now)
    }

    /// Fires the coordinator's timers due at `now` (session timeouts, rebalance deadlines,
    /// offset expiry) and returns the answers that completes.
    pub fn tick(&mut self, now: i64) -> Vec<(RequestId, Response)> {
        self.apply_markers();
        self.coordinator.tick(now);
        self.run(now)
    }

    /// When [`tick`](Self::tick) must be called next, if anything waits on time.
    pub fn next_deadline(&self) -> Option<i64> {
        self.coordinator.next_deadline()
    }

    /// (Re)loads offsets partition `partition` from its log and starts serving its groups.
    /// Groups already held for it are dropped first (what waited on them is answered
    /// `NOT_COORDINATOR`, returned by the next call). Fails, leaving the partition unloaded,
    /// when its log cannot be read.
    pub fn load_partition(&mut self, now: i64, partition: i32) -> Result<()> {
        self.coordinator.begin_loading(partition);
        let loaded = u32::try_from(partition)
            .map_err(|_| Error::NegativePartition {
                topic: OFFSETS_TOPIC.to_string(),
                partition,
            })
            .and_then(|p| self.storage.partition(OFFSETS_TOPIC, p))
            .and_then(|log| {
                // Streamed a chunk at a time: the coordinator's tables are the only copy.
                let mut entries = LogEntries::new(&log);
                self.coordinator
                    .load_partition(now, partition, &mut entries);
                entries.finish()?;
                Ok(log)
            });
        match loaded {
            Ok(log) => {
                self.logs.insert(partition, log);
                self.answers = self.run(now);
                Ok(())
            }
            Err(e) => {
                self.unload(partition, now);
                Err(e)
            }
        }
    }

    /// Stops serving offsets partition `partition` (another node leads it now): its groups
    /// are dropped and what waited on them is answered `NOT_COORDINATOR`.
    pub fn unload_partition(&mut self, now: i64, partition: i32) -> Vec<(RequestId, Response)> {
        self.unload(partition, now);
        std::mem::take(&mut self.answers)
    }

    /// Writes `producer_id`'s transaction marker (COMMIT or ABORT) into offsets partition
    /// `partition` and applies it: its transactional offset commits there become visible or
    /// are dropped. What a transaction coordinator in this process calls when it has no hook;
    /// fenced epochs are the log's errors, and nothing changes then.
    pub fn write_txn_marker(
        &mut self,
        partition: i32,
        producer_id: i64,
        producer_epoch: i16,
        result: TxnResult,
        coordinator_epoch: i32,
    ) -> Result<()> {
        let log = self.logs.get(&partition).ok_or(Error::NotCoordinator {
            group: String::new(),
            partition: u32::try_from(partition).unwrap_or(u32::MAX),
            coordinator_partition: u32::try_from(partition).unwrap_or(u32::MAX),
        })?;
        log.write_txn_marker(producer_id, producer_epoch, result, coordinator_epoch)?;
        self.coordinator.complete_transaction(
            producer_id,
            &[partition],
            result == TxnResult::Commit,
        );
        Ok(())
    }

    /// A hook for [`LocalTxnDriver::set_offsets_marker_hook`](crate::txn::LocalTxnDriver::set_offsets_marker_hook):
    /// the transaction coordinator reports each marker it writes to `__consumer_offsets`,
    /// and this driver applies it at the start of its next call (before the request that
    /// call handles), so an OffsetFetch after a committed EndTxn sees the offsets.
    pub fn marker_hook(&self) -> OffsetsMarkerHook {
        let markers = Arc::clone(&self.markers);
        Box::new(move |tp, producer_id, result| {
            if tp.topic == OFFSETS_TOPIC {
                markers
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push((tp.partition, producer_id, result == TxnResult::Commit));
            }
        })
    }

    /// Markers the transaction coordinator reported since the last call.
    fn apply_markers(&mut self) {
        let notes =
            std::mem::take(&mut *self.markers.lock().unwrap_or_else(PoisonError::into_inner));
        for (partition, producer_id, commit) in notes {
            self.coordinator
                .complete_transaction(producer_id, &[partition], commit);
        }
    }

    fn unload(&mut self, partition: i32, now: i64) {
        self.coordinator.unload_partition(partition);
        self.logs.remove(&partition);
        let answers = self.run(now);
        self.answers = answers;
    }

    /// Carries out the coordinator's outputs until there are none: answers are collected;
    /// appends are written, each partition written to is flushed once, and only then are
    /// the appends reported (which may produce more answers and appends). A partition whose
    /// append or flush fails for the storage's sake is unloaded after the round.
    fn run(&mut self, now: i64) -> Vec<(RequestId, Response)> {
        let mut answers = std::mem::take(&mut self.answers);
        loop {
            let mut written: Vec<(AppendId, i32, std::result::Result<(), KafkaCode>)> = Vec::new();
            let mut failed: Vec<i32> = Vec::new();
            while let Some(output) = self.coordinator.poll_output() {
                match output {
                    Output::Response { request, response } => answers.push((request, response)),
                    Output::Append(append) => {
                        let result = self.append(&append, now);
                        if result == Err(KafkaCode::KAFKA_STORAGE_ERROR) {
                            // Nothing more is written there: append order is commit order.
                            self.logs.remove(&append.partition);
                            failed.push(append.partition);
                        }
                        written.push((append.id, append.partition, result));
                    }
                }
            }
            if written.is_empty() {
                return answers;
            }
            // One flush per partition for everything appended to it in this round.
            let mut touched: Vec<i32> = written
                .iter()
                .filter(|(_, _, r)| r.is_ok())
                .map(|(_, p, _)| *p)
                .collect();
            touched.sort_unstable();
            touched.dedup();
            for partition in touched {
                let flushed = self.logs.get(&partition).map(|log| log.flush());
                if !matches!(flushed, Some(Ok(_))) {
                    self.logs.remove(&partition);
                    failed.push(partition);
                }
            }
            for (id, partition, mut result) in written {
                if failed.contains(&partition) {
                    result = Err(KafkaCode::KAFKA_STORAGE_ERROR);
                }
                self.coordinator.append_completed(now, id, result);
            }
            failed.sort_unstable();
            failed.dedup();
            for partition in failed {
                self.coordinator.unload_partition(partition);
            }
        }
    }

    /// Appends one of the coordinator's batches (not yet flushed).
    fn append(&self, append: &Append, now: i64) -> std::result::Result<(), KafkaCode> {
        let log = self
            .logs
            .get(&append.partition)
            .ok_or(KafkaCode::NOT_LEADER_OR_FOLLOWER)?;
        let producer = append.producer.map(|p| (p.producer_id, p.producer_epoch));
        let written = build_batch(
            log,
            self.offsets.compression,
            &append.records,
            producer,
            now,
        )
        .and_then(|bytes| log.append(&bytes));
        match written {
            Ok(_) => Ok(()),
            // A fenced producer's TxnOffsetCommit (Kafka answers PRODUCER_FENCED).
            Err(Error::InvalidProducerEpoch { .. }) if producer.is_some() => {
                Err(KafkaCode::PRODUCER_FENCED)
            }
            Err(e) => Err(e.kafka_code()),
        }
    }
}
