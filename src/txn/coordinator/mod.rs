//! The transaction coordinator's state machine (Kafka's `TransactionCoordinator`,
//! `TransactionStateManager` and the bookkeeping of `TransactionMarkerChannelManager`), sans
//! IO: requests and reports in, [`Output`]s out, time from [`tick`](TransactionCoordinator::tick).
//!
//! A state change is never applied before its `__transaction_state` record is durable: the
//! coordinator emits [`Output::AppendTxnLog`], keeps the change pending (other requests for
//! the transactional id get `CONCURRENT_TRANSACTIONS`), and applies it, answering the request,
//! when the application reports the append with
//! [`append_completed`](TransactionCoordinator::append_completed).

use std::collections::{BTreeMap, HashMap, VecDeque};

mod markers;
mod requests;

use super::api::{
    AddOffsetsToTxnRequest, AddPartitionsToTxnResult, AddPartitionsToTxnTransaction, EndTxnRequest,
    InitProducerIdRequest, InitProducerIdResponse, MarkerOutcome, Output, RequestId, Response,
    TransactionDescription, TxnLogAppend, TxnMarkerRequest,
};
use super::loader::TxnStateLoader;
use super::log_record::{
    partition_for, TopicPartition, TransactionLogKey, DEFAULT_TRANSACTION_STATE_PARTITIONS,
};
use super::metadata::{epoch_exhausted, TransactionState, TxnRecord, NO_PRODUCER_EPOCH};
use super::producer_id::ProducerIdBlock;
use super::KafkaCode;
use crate::group::{DEFAULT_OFFSETS_TOPIC_NUM_PARTITIONS, OFFSETS_TOPIC};
use crate::producer::TxnResult;

use TransactionState::*;

/// The coordinator's settings, with Kafka's names and defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnCoordinatorConfig {
    /// `transaction.state.log.num.partitions` (50).
    pub transaction_state_partitions: u32,
    /// `offsets.topic.num.partitions` (50): where AddOffsetsToTxn finds a group's partition.
    pub consumer_offsets_partitions: u32,
    /// `transaction.max.timeout.ms` (900,000): longer timeouts get
    /// `INVALID_TRANSACTION_TIMEOUT`.
    pub transaction_max_timeout_ms: i32,
    /// `transactional.id.expiration.ms` (7 days): idle transactional ids are removed.
    pub transactional_id_expiration_ms: i64,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms` (10,000).
    pub abort_timed_out_transactions_interval_ms: i64,
    /// `transaction.remove.expired.transaction.cleanup.interval.ms` (3,600,000).
    pub remove_expired_transactional_ids_interval_ms: i64,
    /// How long to wait before resending a failed marker or a failed completion record.
    pub retry_backoff_ms: i64,
    /// The `TransactionLogValue` version written: 0 (Kafka with transaction.version 0) or 1
    /// (flexible, with the previous and next producer ids).
    pub log_value_version: i16,
}

impl Default for TxnCoordinatorConfig {
    fn default() -> Self {
        TxnCoordinatorConfig {
            transaction_state_partitions: DEFAULT_TRANSACTION_STATE_PARTITIONS,
            consumer_offsets_partitions: DEFAULT_OFFSETS_TOPIC_NUM_PARTITIONS,
            transaction_max_timeout_ms: 900_000,
            transactional_id_expiration_ms: 7 * 24 * 60 * 60 * 1000,
            abort_timed_out_transactions_interval_ms: 10_000,
            remove_expired_transactional_ids_interval_ms: 3_600_000,
            retry_backoff_ms: 100,
            log_value_version: 0,
        }
    }
}

/// The transaction coordinator state machine. See the [module docs](super).
#[derive(Debug)]
pub struct TransactionCoordinator {
    config: TxnCoordinatorConfig,
    now: i64,
    partitions: HashMap<u32, TxnPartition>,
    ids: IdBlocks,
    outputs: VecDeque<Output>,
    next_append_id: u64,
    next_marker_id: u64,
    /// Appends not yet reported: which transactional id they belong to.
    appends: HashMap<u64, (u32, String)>,
    /// Batched AddPartitionsToTxn requests waiting for some of their appends.
    add_batches: HashMap<RequestId, AddBatch>,
    /// Marker resends and completion-record retries, by when they are due.
    retries: Vec<Retry>,
    next_timeout_check: i64,
    next_expiration_check: i64,
}

#[derive(Debug)]
struct TxnPartition {
    coordinator_epoch: i32,
    /// `None` while loading.
    txns: Option<HashMap<String, Txn>>,
}

#[derive(Debug)]
struct Txn {
    rec: TxnRecord,
    pending: Option<Pending>,
    has_failed_epoch_fence: bool,
    /// While markers are being written: which request each partition waits on.
    markers: Option<BTreeMap<TopicPartition, u64>>,
}

#[derive(Debug)]
struct Pending {
    append: u64,
    target: TxnRecord,
    then: Then,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Then {
    InitProducerId(RequestId),
    AddPartitions { request: RequestId, index: usize },
    AddOffsets(RequestId),
    EndTxn(EndOrigin),
    Complete,
    Expire,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EndOrigin {
    Client(RequestId),
    /// Aborting a producer's open transaction on InitProducerId; the request is answered
    /// `CONCURRENT_TRANSACTIONS` once the abort is recorded.
    Fence(RequestId),
    Timeout,
}

impl EndOrigin {
    fn is_fence(self) -> bool {
        !matches!(self, EndOrigin::Client(_))
    }
}

#[derive(Debug)]
struct AddBatch {
    results: Vec<AddPartitionsToTxnResult>,
    waiting: usize,
}

#[derive(Debug, Clone)]
struct Retry {
    at: i64,
    partition: u32,
    coordinator_epoch: i32,
    transactional_id: String,
    what: RetryWhat,
}

#[derive(Debug, Clone)]
enum RetryWhat {
    Markers(Vec<TopicPartition>),
    Completion,
}

/// Producer id blocks, after Kafka's `RPCProducerIdManager`: the next block is requested
/// when 90% of the current one is used, and a request that finds none gets
/// `COORDINATOR_LOAD_IN_PROGRESS` (retriable) meanwhile.
#[derive(Debug, Default)]
struct IdBlocks {
    current: Option<ProducerIdBlock>,
    next_id: i64,
    next_block: Option<ProducerIdBlock>,
    requested: bool,
}

type ApiResult<T> = std::result::Result<T, KafkaCode>;

impl TransactionCoordinator {
    /// A coordinator owning no `__transaction_state` partition yet, at time `now` (ms).
    /// Give it a producer id block ([`producer_ids_reserved`](Self::producer_ids_reserved))
    /// and load its partitions ([`partition_loaded`](Self::partition_loaded)).
    pub fn new(config: TxnCoordinatorConfig, now: i64) -> Self {
        TransactionCoordinator {
            next_timeout_check: now.saturating_add(config.abort_timed_out_transactions_interval_ms),
            next_expiration_check: now
                .saturating_add(config.remove_expired_transactional_ids_interval_ms),
            config,
            now,
            partitions: HashMap::new(),
            ids: IdBlocks::default(),
            outputs: VecDeque::new(),
            next_append_id: 0,
            next_marker_id: 0,
            appends: HashMap::new(),
            add_batches: HashMap::new(),
            retries: Vec::new(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &TxnCoordinatorConfig {
        &self.config
    }

    /// The `__transaction_state` partition that owns `transactional_id`.
    pub fn partition_for(&self, transactional_id: &str) -> u32 {
        partition_for(transactional_id, self.config.transaction_state_partitions)
    }

    /// The `__consumer_offsets` partition AddOffsetsToTxn adds for `group_id`.
    pub fn offsets_partition_for(&self, group_id: &str) -> TopicPartition {
        TopicPartition::new(
            OFFSETS_TOPIC,
            partition_for(group_id, self.config.consumer_offsets_partitions) as i32,
        )
    }

    /// The next output, if any. Drain after every input.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// Every output so far.
    pub fn drain_outputs(&mut self) -> std::collections::vec_deque::Drain<'_, Output> {
        self.outputs.drain(..)
    }

    /// When [`tick`](Self::tick) next has work: timed-out transactions to abort, expired
    /// transactional ids, resends.
    pub fn next_deadline(&self) -> i64 {
        let retry = self.retries.iter().map(|r| r.at).min().unwrap_or(i64::MAX);
        retry
            .min(self.next_timeout_check)
            .min(self.next_expiration_check)
    }

    /// Moves the clock to `now` (ms; earlier times are ignored) and does what is due: resends
    /// markers and completion records, aborts (and fences) transactions open longer than their
    /// timeout, and expires idle transactional ids.
    pub fn tick(&mut self, now: i64) {
        self.now = self.now.max(now);
        let now = self.now;
        if self.retries.iter().any(|r| r.at <= now) {
            let (due, later): (Vec<Retry>, Vec<Retry>) =
                self.retries.drain(..).partition(|r| r.at <= now);
            self.retries = later;
            for r in due {
                self.retry(r);
            }
        }
        if now >= self.next_timeout_check {
            self.next_timeout_check =
                now.saturating_add(self.config.abort_timed_out_transactions_interval_ms.max(1));
            self.abort_timed_out_transactions();
        }
        if now >= self.next_expiration_check {
            self.next_expiration_check = now.saturating_add(
                self.config
                    .remove_expired_transactional_ids_interval_ms
                    .max(1),
            );
            self.expire_transactional_ids();
        }
    }

    // ---- producer ids -------------------------------------------------------------------

    /// A block reserved after [`Output::ReserveProducerIds`]. A block overlapping ids already
    /// handed out is ignored.
    pub fn producer_ids_reserved(&mut self, block: ProducerIdBlock) {
        self.ids.requested = false;
        let floor = self
            .ids
            .next_block
            .or(self.ids.current)
            .map_or(0, |b| b.next_block_first_id());
        if block.first_producer_id < floor || block.size < 1 || block.first_producer_id < 0 {
            return;
        }
        if self.ids.current.is_none() {
            self.ids.current = Some(block);
            self.ids.next_id = block.first_producer_id;
        } else {
            self.ids.next_block = Some(block);
        }
    }

    /// The reservation asked for failed; the next request needing an id asks again.
    pub fn producer_id_reservation_failed(&mut self) {
        self.ids.requested = false;
    }

    fn generate_producer_id(&mut self) -> ApiResult<i64> {
        for _ in 0..3 {
            match self.ids.current {
                Some(b) if self.ids.next_id <= b.last_producer_id() => {
                    let id = self.ids.next_id;
                    self.ids.next_id += 1;
                    if id == b.first_producer_id + b.size * 9 / 10 {
                        self.request_ids();
                    }
                    return Ok(id);
                }
                _ => match self.ids.next_block.take() {
                    Some(b) => {
                        self.ids.current = Some(b);
                        self.ids.next_id = b.first_producer_id;
                    }
                    None => break,
                },
            }
        }
        self.request_ids();
        Err(KafkaCode::COORDINATOR_LOAD_IN_PROGRESS)
    }

    fn request_ids(&mut self) {
        if !self.ids.requested && self.ids.next_block.is_none() {
            self.ids.requested = true;
            self.outputs.push_back(Output::ReserveProducerIds);
        }
    }

    // ---- partitions of __transaction_state ----------------------------------------------

    /// This coordinator now leads `partition` at `coordinator_epoch` and is loading it:
    /// requests for its transactional ids get `COORDINATOR_LOAD_IN_PROGRESS` until
    /// [`partition_loaded`](Self::partition_loaded). Whatever was pending for the partition
    /// is answered `NOT_COORDINATOR`.
    pub fn begin_loading(&mut self, partition: u32, coordinator_epoch: i32) {
        self.unload_partition(partition);
        self.partitions.insert(
            partition,
            TxnPartition {
                coordinator_epoch,
                txns: None,
            },
        );
    }

    /// Installs a loaded partition and resumes what the crash or failover interrupted: every
    /// transaction found in PrepareCommit or PrepareAbort has its markers sent again. Returns
    /// `false` (and changes nothing) if the partition is loading under another epoch.
    pub fn partition_loaded(&mut self, loader: TxnStateLoader) -> bool {
        let (partition, coordinator_epoch, records) = loader.into_parts();
        match self.partitions.get(&partition) {
            Some(p) if p.txns.is_some() || p.coordinator_epoch != coordinator_epoch => {
                return false
            }
            _ => {}
        }
        let txns: HashMap<String, Txn> = records
            .into_iter()
            .map(|(tid, rec)| {
                (
                    tid,
                    Txn {
                        rec,
                        pending: None,
                        has_failed_epoch_fence: false,
                        markers: None,
                    },
                )
            })
            .collect();
        let mut resume: Vec<String> = txns
            .iter()
            .filter(|(_, t)| matches!(t.rec.state, PrepareCommit | PrepareAbort))
            .map(|(tid, _)| tid.clone())
            .collect();
        resume.sort();
        self.partitions.insert(
            partition,
            TxnPartition {
                coordinator_epoch,
                txns: Some(txns),
            },
        );
        for tid in resume {
            self.start_markers(partition, &tid);
        }
        true
    }

    /// This coordinator no longer leads `partition`: its state is dropped and whatever was
    /// pending is answered `NOT_COORDINATOR`.
    pub fn unload_partition(&mut self, partition: u32) {
        let Some(p) = self.partitions.remove(&partition) else {
            return;
        };
        self.retries.retain(|r| r.partition != partition);
        let mut thens: Vec<(u64, Then)> = p
            .txns
            .into_iter()
            .flatten()
            .filter_map(|(_, t)| t.pending.map(|pe| (pe.append, pe.then)))
            .collect();
        thens.sort_unstable_by_key(|(id, _)| *id);
        for (id, then) in thens {
            self.appends.remove(&id);
            self.fail_then(then, KafkaCode::NOT_COORDINATOR);
        }
    }

    /// The partitions this coordinator leads (loaded or loading).
    pub fn owned_partitions(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self.partitions.keys().copied().collect();
        v.sort_unstable();
        v
    }
}

#[cfg(test)]
mod tests;
