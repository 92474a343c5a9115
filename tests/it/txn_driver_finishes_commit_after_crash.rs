//! `LocalTxnDriver` over a `Storage` on the simulated filesystem: a commit whose
//! PrepareCommit is durable but whose marker could not be written (the partition's disk
//! fails) survives a power loss: the restarted driver loads `__transaction_state`, sends the
//! marker again under a newer coordinator epoch, and read_committed readers see the records.

use std::path::Path;
use std::sync::Arc;

use streamlog::io::{SimError, SimFs, SimOp};
use streamlog::storage::{Storage, StorageConfig, TopicConfig};
use streamlog::txn::{InitProducerIdRequest, LocalTxnDriver, TopicPartition, TxnCoordinatorConfig};
use streamlog::{BatchBuilder, BatchOptions, KafkaCode};

use crate::common::consumer::consume_committed;

fn storage(fs: &SimFs) -> Arc<Storage> {
    let mut config = StorageConfig::default();
    config.fs = Arc::new(fs.clone());
    // Small index files: the simulated filesystem copies a file's maps on every access.
    config.defaults.log.segment_index_bytes = 4096;
    Arc::new(Storage::open(Path::new("/data"), config).unwrap())
}

fn config() -> TxnCoordinatorConfig {
    TxnCoordinatorConfig {
        transaction_state_partitions: 3,
        ..TxnCoordinatorConfig::default()
    }
}

#[test]
fn prepared_commit_is_finished_after_a_crash() {
    let fs = SimFs::new(13);
    let s = storage(&fs);
    s.create_topic("out", 1, TopicConfig::new()).unwrap();
    let mut driver = LocalTxnDriver::open(Arc::clone(&s), config()).unwrap();
    let p = driver
        .init_producer_id(InitProducerIdRequest::transactional("app", 60_000))
        .unwrap();
    assert_eq!(p.error, KafkaCode::NONE);
    let tp = TopicPartition::new("out", 0);
    let added = driver
        .add_partitions_to_txn("app", p.producer_id, p.producer_epoch, vec![tp])
        .unwrap();
    assert_eq!(added.error(), KafkaCode::NONE);
    let mut b = BatchBuilder::new(BatchOptions {
        producer_id: p.producer_id,
        producer_epoch: p.producer_epoch,
        base_sequence: 0,
        transactional: true,
        ..BatchOptions::default()
    });
    b.append(0, None, Some(b"committed"), &[]).unwrap();
    let log = s.partition("out", 0).unwrap();
    log.append(&b.build().unwrap()).unwrap();
    log.flush().unwrap();

    // The output partition's disk fails: the commit is recorded, the marker is not written.
    fs.fail_always(SimOp::Write, Some("out-0"), SimError::Eio);
    let end = driver
        .end_txn("app", p.producer_id, p.producer_epoch, true)
        .unwrap();
    assert_eq!(end, KafkaCode::NONE);
    assert_eq!(
        driver.coordinator().describe_transaction("app").state,
        "PrepareCommit"
    );
    drop((driver, log, s));

    let fs = fs.crash();
    let s = storage(&fs);
    let driver = LocalTxnDriver::open(Arc::clone(&s), config()).unwrap();
    assert_eq!(
        driver.coordinator().describe_transaction("app").state,
        "CompleteCommit"
    );
    let log = s.partition("out", 0).unwrap();
    let hw = log.log_end_offset();
    assert_eq!(log.last_stable_offset(), hw);
    let values: Vec<Vec<u8>> = consume_committed(&log, hw, hw)
        .into_iter()
        .map(|r| r.value.unwrap())
        .collect();
    assert_eq!(values, [b"committed".to_vec()]);

    // The producer id block of the first run is never handed out again.
    drop(driver);
    let mut driver = LocalTxnDriver::open(Arc::clone(&s), config()).unwrap();
    let q = driver
        .init_producer_id(InitProducerIdRequest::idempotent())
        .unwrap();
    assert!(q.producer_id >= 1000, "{}", q.producer_id);
}
