//! The coordinator wired to one process's [`Storage`]: `__transaction_state` is a compacted
//! topic of the storage, markers are written in-process with [`Log::write_txn_marker`], and
//! producer id blocks live in `<data>/producer-id-block`. Every call runs the coordinator
//! until it has nothing left to do, so requests are answered on return.
//!
//! The coordinator epoch of each `__transaction_state` partition is one more than the
//! highest partition leader epoch found in it, and is stamped on what this driver appends:
//! a restart always loads under a newer epoch than anything it has recorded, so markers of a
//! previous run are fenced by the partitions that already saw the new ones.

use std::collections::HashMap;
use std::sync::Arc;

use super::api::{
    AddOffsetsToTxnRequest, AddPartitionsToTxnResult, AddPartitionsToTxnTransaction, EndTxnRequest,
    InitProducerIdRequest, InitProducerIdResponse, MarkerOutcome, Output, Response, TxnLogAppend,
    TxnMarkerRequest,
};
use super::coordinator::{TransactionCoordinator, TxnCoordinatorConfig};
use super::loader::TxnStateLoader;
use super::log_record::{TopicPartition, TRANSACTION_STATE_TOPIC};
use super::producer_id::ProducerIdManager;
use super::KafkaCode;
use crate::config::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::log::Log;
use crate::producer::TxnResult;
use crate::record::{BatchBuilder, BatchOptions};
use crate::storage::{Storage, TopicConfig};

/// Called for every marker written to a `__consumer_offsets` partition (the partition, the
/// producer id, commit or abort): the group coordinator's cue to make the producer's
/// transactional offset commits visible or drop them.
pub type OffsetsMarkerHook = Box<dyn FnMut(&TopicPartition, i64, TxnResult) + Send>;

/// A [`TransactionCoordinator`] driving a local [`Storage`]: exactly-once for a single-node
/// broker or an embedded application in a few lines.
///
/// ```
/// use std::sync::Arc;
/// use streamlog::storage::{Storage, StorageConfig, TopicConfig};
/// use streamlog::txn::{InitProducerIdRequest, KafkaCode, LocalTxnDriver, TopicPartition, TxnCoordinatorConfig};
///
/// let dir = tempfile::tempdir()?;
/// let storage = Arc::new(Storage::open(dir.path(), StorageConfig::default())?);
/// storage.create_topic("out", 1, TopicConfig::new())?;
/// let mut txn = LocalTxnDriver::open(Arc::clone(&storage), TxnCoordinatorConfig::default())?;
/// let p = txn.init_producer_id(InitProducerIdRequest::transactional("app", 60_000))?;
/// assert_eq!((p.error, p.producer_epoch), (KafkaCode::NONE, 0));
/// let added = txn.add_partitions_to_txn("app", p.producer_id, p.producer_epoch, vec![TopicPartition::new("out", 0)])?;
/// assert_eq!(added.error(), KafkaCode::NONE);
/// assert_eq!(txn.end_txn("app", p.producer_id, p.producer_epoch, true)?, KafkaCode::NONE);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct LocalTxnDriver {
    storage: Arc<Storage>,
    coordinator: TransactionCoordinator,
    ids: ProducerIdManager,
    clock: Arc<dyn Clock>,
    responses: HashMap<u64, Response>,
    next_request: u64,
    offsets_hook: Option<OffsetsMarkerHook>,
    logs: HashMap<u32, Arc<Log>>,
}

impl std::fmt::Debug for LocalTxnDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalTxnDriver")
            .field("coordinator", &self.coordinator)
            .finish_non_exhaustive()
    }
}

impl LocalTxnDriver {
    /// Opens the coordinator over `storage` with the system clock: creates the compacted
    /// `__transaction_state` topic if missing, loads every partition of it (completing the
    /// transactions a crash left in PrepareCommit/PrepareAbort), and reserves a producer id
    /// block.
    pub fn open(storage: Arc<Storage>, config: TxnCoordinatorConfig) -> Result<Self> {
        Self::with_clock(storage, config, Arc::new(SystemClock))
    }

    /// [`open`](Self::open) with a clock of the caller's.
    pub fn with_clock(
        storage: Arc<Storage>,
        config: TxnCoordinatorConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self> {
        let partitions = config.transaction_state_partitions.max(1);
        if !storage
            .topics()
            .iter()
            .any(|t| t == TRANSACTION_STATE_TOPIC)
        {
            let mut topic = TopicConfig::new();
            topic.set("cleanup.policy", "compact")?;
            storage.create_topic(TRANSACTION_STATE_TOPIC, partitions, topic)?;
        }
        let fs = Arc::clone(&storage.config().fs);
        let ids = ProducerIdManager::open(fs, storage.dir())?;
        let now = clock.now_ms();
        let mut driver = LocalTxnDriver {
            coordinator: TransactionCoordinator::new(config, now),
            storage,
            ids,
            clock,
            responses: HashMap::new(),
            next_request: 0,
            offsets_hook: None,
            logs: HashMap::new(),
        };
        let block = driver.ids.reserve_block()?;
        driver.coordinator.producer_ids_reserved(block);
        for partition in 0..partitions {
            let log = driver
                .storage
                .partition(TRANSACTION_STATE_TOPIC, partition)?;
            let (loader, epoch) = load_partition(&log, partition)?;
            log.set_leader_epoch(epoch)?;
            driver.logs.insert(partition, log);
            driver.coordinator.begin_loading(partition, epoch);
            driver.coordinator.partition_loaded(loader);
        }
        driver.run();
        Ok(driver)
    }

    /// Calls `hook` for every marker written to a `__consumer_offsets` partition.
    pub fn set_offsets_marker_hook(&mut self, hook: OffsetsMarkerHook) {
        self.offsets_hook = Some(hook);
    }

    /// The state machine, for inspection ([`describe_transaction`](TransactionCoordinator::describe_transaction)).
    pub fn coordinator(&self) -> &TransactionCoordinator {
        &self.coordinator
    }

    /// InitProducerId.
    pub fn init_producer_id(
        &mut self,
        req: InitProducerIdRequest,
    ) -> Result<InitProducerIdResponse> {
        let id = self.request_id();
        self.coordinator.init_producer_id(id, req);
        match self.finish(id, "InitProducerId")? {
            Response::InitProducerId(r) => Ok(r),
            _ => Err(unanswered("InitProducerId")),
        }
    }

    /// AddPartitionsToTxn (one transaction, as a client sends it).
    pub fn add_partitions_to_txn(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: Vec<TopicPartition>,
    ) -> Result<AddPartitionsToTxnResult> {
        let id = self.request_id();
        self.coordinator.add_partitions_to_txn(
            id,
            vec![AddPartitionsToTxnTransaction {
                transactional_id: transactional_id.to_string(),
                producer_id,
                producer_epoch,
                verify_only: false,
                partitions,
            }],
        );
        match self.finish(id, "AddPartitionsToTxn")? {
            Response::AddPartitionsToTxn(mut r) if r.len() == 1 => {
                r.pop().ok_or_else(|| unanswered("AddPartitionsToTxn"))
            }
            _ => Err(unanswered("AddPartitionsToTxn")),
        }
    }

    /// AddOffsetsToTxn.
    pub fn add_offsets_to_txn(&mut self, req: AddOffsetsToTxnRequest) -> Result<KafkaCode> {
        let id = self.request_id();
        self.coordinator.add_offsets_to_txn(id, req);
        match self.finish(id, "AddOffsetsToTxn")? {
            Response::AddOffsetsToTxn(e) => Ok(e),
            _ => Err(unanswered("AddOffsetsToTxn")),
        }
    }

    /// EndTxn; on success the markers are written before this returns.
    pub fn end_txn(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        committed: bool,
    ) -> Result<KafkaCode> {
        let id = self.request_id();
        self.coordinator.end_txn(
            id,
            EndTxnRequest {
                transactional_id: transactional_id.to_string(),
                producer_id,
                producer_epoch,
                committed,
            },
        );
        match self.finish(id, "EndTxn")? {
            Response::EndTxn(e) => Ok(e),
            _ => Err(unanswered("EndTxn")),
        }
    }

    /// Runs the coordinator's timers at the clock's time: aborts timed-out transactions,
    /// expires idle transactional ids, resends failed markers. Call it periodically (by
    /// [`next_deadline`](TransactionCoordinator::next_deadline)).
    pub fn tick(&mut self) {
        self.coordinator.tick(self.clock.now_ms());
        self.run();
    }

    fn request_id(&mut self) -> u64 {
        self.next_request += 1;
        self.coordinator.tick(self.clock.now_ms());
        self.next_request
    }

    fn finish(&mut self, id: u64, request: &'static str) -> Result<Response> {
        self.run();
        self.responses
            .remove(&id)
            .ok_or_else(|| unanswered(request))
    }

    /// Carries out outputs until there are none.
    fn run(&mut self) {
        while let Some(out) = self.coordinator.poll_output() {
            match out {
                Output::Response { request, response } => {
                    self.responses.insert(request, response);
                }
                Output::AppendTxnLog(a) => {
                    let result = self.append(&a);
                    self.coordinator.append_completed(a.id, result);
                }
                Output::WriteTxnMarkers(m) => {
                    for tp in &m.partitions {
                        let outcome = self.write_marker(&m, tp);
                        self.coordinator.marker_written(&m, tp, outcome);
                    }
                }
                Output::ReserveProducerIds => match self.ids.reserve_block() {
                    Ok(block) => self.coordinator.producer_ids_reserved(block),
                    Err(_) => self.coordinator.producer_id_reservation_failed(),
                },
            }
        }
    }

    /// Appends and fsyncs (the coordinator's acks=all).
    fn append(&self, a: &TxnLogAppend) -> std::result::Result<(), KafkaCode> {
        let log = self
            .logs
            .get(&a.partition)
            .ok_or(KafkaCode::NOT_LEADER_OR_FOLLOWER)?;
        if log.leader_epoch() != a.coordinator_epoch {
            return Err(KafkaCode::NOT_LEADER_OR_FOLLOWER);
        }
        let mut b = BatchBuilder::new(BatchOptions::default());
        b.append(a.timestamp, Some(&a.key), a.value.as_deref(), &[])
            .map_err(|_| KafkaCode::UNKNOWN_SERVER_ERROR)?;
        let bytes = b.build().map_err(|_| KafkaCode::UNKNOWN_SERVER_ERROR)?;
        log.append(&bytes).map_err(|e| match e {
            Error::MessageTooLarge { .. } => KafkaCode::MESSAGE_TOO_LARGE,
            _ => KafkaCode::KAFKA_STORAGE_ERROR,
        })?;
        log.flush().map_err(|_| KafkaCode::KAFKA_STORAGE_ERROR)?;
        Ok(())
    }

    fn write_marker(&mut self, m: &TxnMarkerRequest, tp: &TopicPartition) -> MarkerOutcome {
        let Ok(partition) = u32::try_from(tp.partition) else {
            return MarkerOutcome::PartitionDeleted;
        };
        let log = match self.storage.partition(&tp.topic, partition) {
            Ok(log) => log,
            Err(Error::UnknownTopic { .. } | Error::UnknownPartition { .. }) => {
                // Kafka skips partitions whose topic is gone; the group hook still hears of
                // an offsets partition the storage does not hold.
                self.notify_offsets(tp, m);
                return MarkerOutcome::PartitionDeleted;
            }
            Err(_) => return MarkerOutcome::Failed(KafkaCode::KAFKA_STORAGE_ERROR),
        };
        match log.write_txn_marker(
            m.producer_id,
            m.producer_epoch,
            m.result,
            m.coordinator_epoch,
        ) {
            Ok(_) => {
                self.notify_offsets(tp, m);
                MarkerOutcome::Written
            }
            Err(Error::InvalidProducerEpoch { .. }) => {
                MarkerOutcome::Failed(KafkaCode::INVALID_PRODUCER_EPOCH)
            }
            Err(Error::TransactionCoordinatorFenced { .. }) => {
                MarkerOutcome::Failed(KafkaCode::TRANSACTION_COORDINATOR_FENCED)
            }
            Err(_) => MarkerOutcome::Failed(KafkaCode::KAFKA_STORAGE_ERROR),
        }
    }

    fn notify_offsets(&mut self, tp: &TopicPartition, m: &TxnMarkerRequest) {
        if tp.topic == crate::group::OFFSETS_TOPIC {
            if let Some(hook) = self.offsets_hook.as_mut() {
                hook(tp, m.producer_id, m.result);
            }
        }
    }
}

fn unanswered(request: &'static str) -> Error {
    Error::CoordinatorUnanswered {
        coordinator: "transaction",
        request,
    }
}

/// Reads a `__transaction_state` partition into a loader; returns it with the coordinator
/// epoch to load it under (one more than any leader epoch in it).
pub(crate) fn load_partition(log: &Log, partition: u32) -> Result<(TxnStateLoader, i32)> {
    let mut loader = TxnStateLoader::new(partition, 0);
    let max_epoch = loader.read_log(log)?.max(log.leader_epoch());
    let epoch = max_epoch.saturating_add(1);
    loader.set_coordinator_epoch(epoch);
    Ok((loader, epoch))
}
