//! One source's transactional producer: records are partitioned with Kafka's partitioner,
//! gathered into batches per partition (closed at `batch_size` bytes), appended as
//! transactional batches of the source's producer id, and committed together with the
//! source's positions through the local transaction coordinator.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use parking_lot::Mutex;

use super::error::{IngestError, Result};
use super::positions::{position_key, POSITIONS_TOPIC};
use super::source::{PositionUpdate, RecordSink};
use crate::log::Log;
use crate::partitioner::{NullKeyStrategy, Partitioner};
use crate::record::{BatchBuilder, BatchOptions, Compression, Header};
use crate::storage::Storage;
use crate::txn::{InitProducerIdRequest, LocalTxnDriver, TopicPartition};
use crate::KafkaCode;

/// How a producer batches and commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerSettings {
    /// Codec of the batches (Kafka's `compression.type`).
    pub compression: Compression,
    /// A batch is appended once its records reach this many bytes (Kafka's `batch.size`).
    pub batch_size: usize,
    /// A transaction is committed once this many bytes are pending in it, even before the
    /// linger elapses (bounds what a failure re-reads).
    pub max_transaction_bytes: usize,
    /// `transaction.timeout.ms` registered with the coordinator.
    pub transaction_timeout_ms: i32,
}

impl Default for ProducerSettings {
    fn default() -> Self {
        ProducerSettings {
            compression: Compression::Lz4,
            batch_size: 256 * 1024,
            max_transaction_bytes: 64 * 1024 * 1024,
            transaction_timeout_ms: 60_000,
        }
    }
}

struct Pending {
    log: Arc<Log>,
    builder: Option<BatchBuilder>,
}

/// The transactional producer of one source (Kafka Connect's exactly-once source task
/// producer, KIP-618: records and the source's offsets in one transaction).
pub(crate) struct TxnProducer {
    storage: Arc<Storage>,
    driver: Arc<Mutex<LocalTxnDriver>>,
    transactional_id: String,
    source: String,
    topic: String,
    partitions: u32,
    partitioner: Partitioner,
    settings: ProducerSettings,
    producer_id: i64,
    producer_epoch: i16,
    sequences: HashMap<(String, u32), i32>,
    pending: BTreeMap<u32, Pending>,
    /// Partitions added to the open transaction (data partitions and the positions one).
    added: Vec<TopicPartition>,
    /// Logs written in the open transaction, flushed before it commits.
    written: Vec<Arc<Log>>,
    pending_bytes: usize,
    pending_records: u64,
}

impl TxnProducer {
    /// InitProducerId for `transactional_id`: fences an earlier instance and aborts what it
    /// left open, so the committed positions read afterwards are final.
    pub(crate) fn init(
        storage: Arc<Storage>,
        driver: Arc<Mutex<LocalTxnDriver>>,
        source: &str,
        topic: &str,
        transactional_id: String,
        settings: ProducerSettings,
    ) -> Result<Self> {
        let partitions = storage.partition_count(topic)?;
        let (producer_id, producer_epoch) = {
            let mut d = driver.lock();
            let mut attempt = 0;
            loop {
                let r = d.init_producer_id(InitProducerIdRequest::transactional(
                    &transactional_id,
                    settings.transaction_timeout_ms,
                ))?;
                // CONCURRENT_TRANSACTIONS: the coordinator is aborting what the previous
                // instance left open; the local driver finishes that within the call.
                if r.error == KafkaCode::CONCURRENT_TRANSACTIONS && attempt < 10 {
                    attempt += 1;
                    continue;
                }
                if r.error != KafkaCode::NONE {
                    return Err(IngestError::Transaction {
                        op: "InitProducerId",
                        transactional_id,
                        code: r.error,
                    });
                }
                break (r.producer_id, r.producer_epoch);
            }
        };
        Ok(TxnProducer {
            storage,
            driver,
            transactional_id,
            source: source.to_string(),
            topic: topic.to_string(),
            partitions,
            partitioner: Partitioner::new(NullKeyStrategy::Sticky {
                switch_after_bytes: settings.batch_size as u64,
            }),
            settings,
            producer_id,
            producer_epoch,
            sequences: HashMap::new(),
            pending: BTreeMap::new(),
            added: Vec::new(),
            written: Vec::new(),
            pending_bytes: 0,
            pending_records: 0,
        })
    }

    /// Bytes sent since the last commit.
    pub(crate) fn pending_bytes(&self) -> usize {
        self.pending_bytes
    }

    /// Records sent since the last commit.
    pub(crate) fn pending_records(&self) -> u64 {
        self.pending_records
    }

    /// Whether the open transaction is over its byte budget.
    pub(crate) fn transaction_full(&self) -> bool {
        self.pending_bytes >= self.settings.max_transaction_bytes
    }

    fn options(&self, topic: &str, partition: u32) -> BatchOptions {
        BatchOptions {
            compression: self.settings.compression,
            producer_id: self.producer_id,
            producer_epoch: self.producer_epoch,
            base_sequence: self
                .sequences
                .get(&(topic.to_string(), partition))
                .copied()
                .unwrap_or(0),
            transactional: true,
            ..BatchOptions::default()
        }
    }

    fn add_to_txn(&mut self, tp: TopicPartition) -> Result<()> {
        if self.added.contains(&tp) {
            return Ok(());
        }
        let r = self.driver.lock().add_partitions_to_txn(
            &self.transactional_id,
            self.producer_id,
            self.producer_epoch,
            vec![tp.clone()],
        )?;
        if r.error() != KafkaCode::NONE {
            return Err(IngestError::Transaction {
                op: "AddPartitionsToTxn",
                transactional_id: self.transactional_id.clone(),
                code: r.error(),
            });
        }
        self.added.push(tp);
        Ok(())
    }

    fn append(
        &mut self,
        topic: &str,
        partition: u32,
        log: &Arc<Log>,
        batch: BatchBuilder,
    ) -> Result<()> {
        let count = batch.record_count() as i32;
        if count == 0 {
            return Ok(());
        }
        let bytes = batch.build()?;
        log.append(&bytes)?;
        let seq = self
            .sequences
            .entry((topic.to_string(), partition))
            .or_insert(0);
        // Sequences wrap at i32::MAX as the Java producer's do.
        *seq = if *seq > i32::MAX - count {
            count - (i32::MAX - *seq) - 1
        } else {
            *seq + count
        };
        if !self.written.iter().any(|l| Arc::ptr_eq(l, log)) {
            self.written.push(Arc::clone(log));
        }
        Ok(())
    }

    fn flush_partition(&mut self, partition: u32) -> Result<()> {
        let Some(p) = self.pending.get_mut(&partition) else {
            return Ok(());
        };
        let Some(builder) = p.builder.take() else {
            return Ok(());
        };
        let log = Arc::clone(&p.log);
        let topic = self.topic.clone();
        self.append(&topic, partition, &log, builder)
    }

    /// Appends every open batch and the position updates, flushes the logs written, and
    /// commits the transaction. Nothing to commit is a no-op (`Ok(false)`).
    pub(crate) fn commit(&mut self, positions: Vec<PositionUpdate>) -> Result<bool> {
        if self.pending_records == 0 && positions.is_empty() && self.added.is_empty() {
            return Ok(false);
        }
        let partitions: Vec<u32> = self.pending.keys().copied().collect();
        for p in partitions {
            self.flush_partition(p)?;
        }
        if !positions.is_empty() {
            self.add_to_txn(TopicPartition::new(POSITIONS_TOPIC, 0))?;
            let log = self.storage.partition(POSITIONS_TOPIC, 0)?;
            let mut b = BatchBuilder::new(self.options(POSITIONS_TOPIC, 0));
            let now = now_ms();
            for (key, value) in &positions {
                b.append(
                    now,
                    Some(&position_key(&self.source, key)),
                    value.as_deref(),
                    &[],
                )?;
            }
            self.append(POSITIONS_TOPIC, 0, &log, b)?;
        }
        // Durable before the coordinator writes PrepareCommit: a power cut after the commit
        // decision never finds the records or positions missing.
        for log in &self.written {
            log.flush()?;
        }
        let code = self.driver.lock().end_txn(
            &self.transactional_id,
            self.producer_id,
            self.producer_epoch,
            true,
        )?;
        self.reset_transaction();
        if code != KafkaCode::NONE {
            return Err(IngestError::Transaction {
                op: "EndTxn",
                transactional_id: self.transactional_id.clone(),
                code,
            });
        }
        Ok(true)
    }

    /// Aborts the open transaction (best effort: a fenced or failed producer is re-created
    /// by the agent, whose InitProducerId aborts it anyway).
    pub(crate) fn abort(&mut self) {
        if !self.added.is_empty() {
            let _ = self.driver.lock().end_txn(
                &self.transactional_id,
                self.producer_id,
                self.producer_epoch,
                false,
            );
        }
        self.reset_transaction();
    }

    fn reset_transaction(&mut self) {
        self.pending.clear();
        self.added.clear();
        self.written.clear();
        self.pending_bytes = 0;
        self.pending_records = 0;
    }
}

impl RecordSink for TxnProducer {
    fn send(
        &mut self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[Header<'_>],
    ) -> Result<()> {
        let size = key.map_or(0, <[u8]>::len) + value.map_or(0, <[u8]>::len);
        let partition = self.partitioner.partition(key, size, self.partitions)?;
        if !self.pending.contains_key(&partition) {
            self.add_to_txn(TopicPartition::new(&self.topic, partition as i32))?;
            let log = self.storage.partition(&self.topic, partition)?;
            self.pending
                .insert(partition, Pending { log, builder: None });
        }
        if self
            .pending
            .get(&partition)
            .is_some_and(|p| p.builder.is_none())
        {
            let opts = self.options(&self.topic, partition);
            if let Some(p) = self.pending.get_mut(&partition) {
                p.builder = Some(BatchBuilder::new(opts));
            }
        }
        let full = {
            let Some(b) = self
                .pending
                .get_mut(&partition)
                .and_then(|p| p.builder.as_mut())
            else {
                return Ok(());
            };
            b.append(timestamp, key, value, headers)?;
            b.uncompressed_size() >= self.settings.batch_size
        };
        self.pending_bytes += size;
        self.pending_records += 1;
        if full {
            // Back-pressure: the append runs on the source's thread, so a slow log slows
            // the reading; nothing queues without bound.
            self.flush_partition(partition)?;
        }
        Ok(())
    }
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
