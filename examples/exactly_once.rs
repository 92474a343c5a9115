//! Exactly-once with the transaction coordinator, in one process: a transactional producer
//! writes to two partitions and commits, a second transaction aborts, a zombie (an older
//! instance of the same `transactional.id`) is fenced, and a read_committed reader sees only
//! the committed records.
//!
//! Run with `cargo run --example exactly_once`.

use std::sync::Arc;

use streamlog::storage::{Storage, StorageConfig, TopicConfig};
use streamlog::txn::{
    InitProducerIdRequest, KafkaCode, LocalTxnDriver, TopicPartition, TxnCoordinatorConfig,
};
use streamlog::{BatchBuilder, BatchOptions};

/// A transactional batch of one record, as a producer sends it.
fn batch(pid: i64, epoch: i16, seq: i32, value: &str) -> Result<Vec<u8>, streamlog::Error> {
    let mut b = BatchBuilder::new(BatchOptions {
        producer_id: pid,
        producer_epoch: epoch,
        base_sequence: seq,
        transactional: true,
        ..BatchOptions::default()
    });
    b.append(1_700_000_000_000, None, Some(value.as_bytes()), &[])?;
    b.build()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let storage = Arc::new(Storage::open(dir.path(), StorageConfig::default())?);
    storage.create_topic("payments", 2, TopicConfig::new())?;
    let mut coordinator =
        LocalTxnDriver::open(Arc::clone(&storage), TxnCoordinatorConfig::default())?;
    let out = |p| TopicPartition::new("payments", p);

    // initTransactions(): a producer id and epoch for the transactional id.
    let p = coordinator
        .init_producer_id(InitProducerIdRequest::transactional("payments-app", 60_000))?;
    let (pid, epoch) = (p.producer_id, p.producer_epoch);
    println!("producer id {pid}, epoch {epoch}");

    // Transaction 1: two partitions, committed.
    coordinator.add_partitions_to_txn("payments-app", pid, epoch, vec![out(0), out(1)])?;
    storage
        .partition("payments", 0)?
        .append(&batch(pid, epoch, 0, "debit 10")?)?;
    storage
        .partition("payments", 1)?
        .append(&batch(pid, epoch, 0, "credit 10")?)?;
    assert_eq!(
        coordinator.end_txn("payments-app", pid, epoch, true)?,
        KafkaCode::NONE
    );

    // Transaction 2: aborted.
    coordinator.add_partitions_to_txn("payments-app", pid, epoch, vec![out(0)])?;
    storage
        .partition("payments", 0)?
        .append(&batch(pid, epoch, 1, "debit 99")?)?;
    assert_eq!(
        coordinator.end_txn("payments-app", pid, epoch, false)?,
        KafkaCode::NONE
    );

    // Transaction 3 is left open, and a new instance of the application starts: its
    // InitProducerId fences the old one (the open transaction is aborted with a bumped epoch).
    coordinator.add_partitions_to_txn("payments-app", pid, epoch, vec![out(1)])?;
    storage
        .partition("payments", 1)?
        .append(&batch(pid, epoch, 1, "credit 99")?)?;
    let first = coordinator
        .init_producer_id(InitProducerIdRequest::transactional("payments-app", 60_000))?;
    assert_eq!(first.error, KafkaCode::CONCURRENT_TRANSACTIONS); // retriable: the abort is under way
    let new = coordinator
        .init_producer_id(InitProducerIdRequest::transactional("payments-app", 60_000))?;
    println!(
        "new instance: producer id {}, epoch {}",
        new.producer_id, new.producer_epoch
    );
    // The zombie's next step is refused with Kafka's error code.
    let zombie = coordinator.end_txn("payments-app", pid, epoch, true)?;
    assert_eq!(zombie, KafkaCode::PRODUCER_FENCED);
    println!("zombie commit: {zombie}");

    // A read_committed reader sees the committed transaction only.
    for partition in 0..2 {
        let log = storage.partition("payments", partition)?;
        let hw = log.log_end_offset();
        assert_eq!(log.last_stable_offset(), hw); // nothing left undecided
        let values: Vec<String> = log
            .records_committed(0)
            .map(|r| r.map(|r| String::from_utf8_lossy(r.value().unwrap_or_default()).into_owned()))
            .collect::<Result<_, _>>()?;
        println!("payments-{partition} read_committed: {values:?}");
        assert_eq!(values.len(), 1);
    }
    Ok(())
}
