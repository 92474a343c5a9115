//! Loading a `__transaction_state` partition: the latest record of each transactional id
//! wins, a tombstone removes it (Kafka's `loadTransactionMetadata`).

use std::collections::HashMap;

use super::log_record::{TransactionLogKey, TransactionLogValue};
use super::metadata::TxnRecord;
use crate::error::Result;
use crate::log::Log;
use crate::record::Batches;

/// The bytes read per step while loading a `__transaction_state` partition.
const LOAD_CHUNK: usize = 1 << 20;

/// Collects the state of one `__transaction_state` partition from its records, in log
/// order, for [`TransactionCoordinator::partition_loaded`](super::TransactionCoordinator::partition_loaded).
///
/// ```
/// use streamlog::txn::{TransactionLogKey, TxnStateLoader};
///
/// let mut loader = TxnStateLoader::new(0, 1);
/// let key = TransactionLogKey { transactional_id: "app-1".into() }.encode()?;
/// loader.apply(&key, None)?; // a tombstone for an id never seen: nothing to remove
/// assert_eq!(loader.len(), 0);
/// assert!(loader.apply(&key, Some(&[0, 0, 1])).is_err()); // a torn value is an error
/// # Ok::<(), streamlog::Error>(())
/// ```
#[derive(Debug)]
pub struct TxnStateLoader {
    partition: u32,
    coordinator_epoch: i32,
    txns: HashMap<String, TxnRecord>,
    skipped: u64,
}

impl TxnStateLoader {
    /// An empty load of `partition` at `coordinator_epoch`.
    pub fn new(partition: u32, coordinator_epoch: i32) -> Self {
        TxnStateLoader {
            partition,
            coordinator_epoch,
            txns: HashMap::new(),
            skipped: 0,
        }
    }

    /// Applies one record (key and value bytes; `None` value for a tombstone). Records with a
    /// key version this crate does not know are skipped, as Kafka does; a record that does
    /// not decode is an error and changes nothing.
    pub fn apply(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<()> {
        let Some(key) = TransactionLogKey::decode(key)? else {
            self.skipped += 1;
            return Ok(());
        };
        match value {
            None => {
                self.txns.remove(&key.transactional_id);
            }
            Some(v) => {
                let (_, value) = TransactionLogValue::decode(v)?;
                let rec = TxnRecord::from_value(&value)?;
                self.txns.insert(key.transactional_id, rec);
            }
        }
        Ok(())
    }

    /// Applies every record of a `__transaction_state` partition log, from its start to its
    /// end (control batches skipped). Returns the highest partition leader epoch found (-1
    /// for none): a coordinator loading under a newer epoch than any it wrote fences its
    /// earlier markers.
    pub fn read_log(&mut self, log: &Log) -> Result<i32> {
        let mut max_epoch = -1;
        let mut offset = log.log_start_offset();
        let end = log.log_end_offset();
        while offset < end {
            let bytes = log.read_bytes(offset, LOAD_CHUNK, None)?;
            let mut next = offset;
            for batch in Batches::new(&bytes) {
                let batch = batch?;
                max_epoch = max_epoch.max(batch.partition_leader_epoch());
                next = batch.last_offset() + 1;
                if batch.is_control() {
                    continue;
                }
                let records = batch.records()?;
                for r in &records {
                    let r = r?;
                    if let Some(key) = r.key {
                        self.apply(key, r.value)?;
                    }
                }
            }
            if next <= offset {
                break;
            }
            offset = next;
        }
        Ok(max_epoch)
    }

    /// Transactional ids loaded so far.
    pub fn len(&self) -> usize {
        self.txns.len()
    }

    /// Whether no transactional id is loaded.
    pub fn is_empty(&self) -> bool {
        self.txns.is_empty()
    }

    /// Records skipped for an unknown key version.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// The partition being loaded.
    pub fn partition(&self) -> u32 {
        self.partition
    }

    pub(crate) fn set_coordinator_epoch(&mut self, epoch: i32) {
        self.coordinator_epoch = epoch;
    }

    pub(crate) fn into_parts(self) -> (u32, i32, HashMap<String, TxnRecord>) {
        (self.partition, self.coordinator_epoch, self.txns)
    }
}
