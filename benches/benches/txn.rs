//! Transaction coordinator costs (issue 13).
//!
//! - `txn/short_transaction`: one short transaction through the sans-IO coordinator, a
//!   producer initialised once: AddPartitionsToTxn of one partition, then EndTxn(commit) —
//!   three `__transaction_state` records (Ongoing, PrepareCommit, CompleteCommit) encoded and
//!   reported durable at once, and the COMMIT marker applied in-process with
//!   `Log::write_txn_marker` on a real partition log (page cache). Beside it,
//!   `marker_only`: the bare `Log::write_txn_marker` each transaction needs, the floor.
//!   Target: 10,000 transactions/s (100 µs a transaction).
//! - `txn/load_100k`: loading a `__transaction_state` partition of 100,000 transactional ids
//!   (one record a batch, as the coordinator appends them; each id's last record a
//!   CompleteCommit): `TxnStateLoader::read_log` and `partition_loaded`. Target: < 500 ms.
//!
//! Run: `cargo bench -p streamlog-benches --bench txn -- --warm-up-time 1 --measurement-time 3`

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use streamlog::txn::{
    AddPartitionsToTxnTransaction, EndTxnRequest, InitProducerIdRequest, MarkerOutcome, Output,
    ProducerIdBlock, TopicPartition, TransactionCoordinator, TransactionLogKey,
    TransactionLogValue, TxnCoordinatorConfig, TxnStateLoader, TxnTopicPartitions,
};
use streamlog::{BatchBuilder, BatchOptions, Log, LogConfig};

const IDS: usize = 100_000;

fn coordinator() -> TransactionCoordinator {
    let config = TxnCoordinatorConfig {
        transaction_state_partitions: 1,
        ..TxnCoordinatorConfig::default()
    };
    let mut c = TransactionCoordinator::new(config, 1_700_000_000_000);
    c.producer_ids_reserved(ProducerIdBlock {
        first_producer_id: 0,
        size: 1000,
    });
    c.begin_loading(0, 1);
    c.partition_loaded(TxnStateLoader::new(0, 1));
    c
}

/// Carries out outputs: appends reported durable at once, markers written to `log`.
fn run(c: &mut TransactionCoordinator, log: &Log) {
    while let Some(o) = c.poll_output() {
        match o {
            Output::AppendTxnLog(a) => c.append_completed(a.id, Ok(())),
            Output::WriteTxnMarkers(m) => {
                for p in &m.partitions {
                    log.write_txn_marker(
                        m.producer_id,
                        m.producer_epoch,
                        m.result,
                        m.coordinator_epoch,
                    )
                    .expect("marker");
                    c.marker_written(&m, p, MarkerOutcome::Written);
                }
            }
            Output::Response { response, .. } => {
                black_box(response);
            }
            Output::ReserveProducerIds => {}
        }
    }
}

fn short_transactions(c: &mut Criterion) {
    let root = common::scratch_root();
    let log = Log::open(root.path().join("out-0"), LogConfig::default()).expect("log");
    let marker_log = Log::open(root.path().join("floor-0"), LogConfig::default()).expect("log");
    let mut coord = coordinator();
    coord.init_producer_id(0, InitProducerIdRequest::transactional("bench", 60_000));
    run(&mut coord, &log);
    let tp = TopicPartition::new("out", 0);
    let mut request = 1;
    let mut one = |coord: &mut TransactionCoordinator| {
        coord.add_partitions_to_txn(
            request,
            vec![AddPartitionsToTxnTransaction {
                transactional_id: "bench".into(),
                producer_id: 0,
                producer_epoch: 0,
                verify_only: false,
                partitions: vec![tp.clone()],
            }],
        );
        run(coord, &log);
        coord.end_txn(
            request + 1,
            EndTxnRequest {
                transactional_id: "bench".into(),
                producer_id: 0,
                producer_epoch: 0,
                committed: true,
            },
        );
        run(coord, &log);
        request += 2;
    };
    let mut g = c.benchmark_group("txn");
    g.throughput(Throughput::Elements(1));
    g.bench_function("short_transaction", |b| b.iter(|| one(&mut coord)));
    g.bench_function("marker_only", |b| {
        b.iter(|| {
            marker_log
                .write_txn_marker(0, 0, streamlog::TxnResult::Commit, 1)
                .expect("marker")
        })
    });
    g.finish();
    // Transactions per second over a fixed count, for the note.
    let n = 50_000;
    let started = Instant::now();
    for _ in 0..n {
        one(&mut coord);
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "txn/short_transaction: {n} transactions in {secs:.3} s = {:.0} transactions/s",
        n as f64 / secs
    );
}

/// A `__transaction_state` partition holding `IDS` transactional ids, each written as the
/// coordinator would: Empty after InitProducerId, Ongoing, PrepareCommit, CompleteCommit.
fn state_log(dir: &std::path::Path) -> Log {
    let log = Log::open(dir, LogConfig::default()).expect("log");
    let mut batch = Vec::new();
    for i in 0..IDS {
        let key = TransactionLogKey {
            transactional_id: format!("transactional-id-{i:06}"),
        }
        .encode()
        .expect("key");
        for status in [0i8, 1, 2, 4] {
            let value = TransactionLogValue {
                producer_id: i as i64,
                producer_epoch: 0,
                transaction_timeout_ms: 60_000,
                transaction_status: status,
                transaction_partitions: match status {
                    0 => None,
                    4 => Some(vec![]),
                    _ => Some(vec![TxnTopicPartitions {
                        topic: "orders".into(),
                        partition_ids: vec![(i % 12) as i32],
                    }]),
                },
                transaction_last_update_timestamp_ms: 1_700_000_000_000,
                transaction_start_timestamp_ms: 1_700_000_000_000,
                ..TransactionLogValue::default()
            }
            .encode(0)
            .expect("value");
            let mut b = BatchBuilder::new(BatchOptions::default());
            b.append(1_700_000_000_000, Some(&key), Some(&value), &[])
                .expect("record");
            batch.extend_from_slice(&b.build().expect("batch"));
            if batch.len() > 1 << 20 {
                log.append_replicated(&renumber(&batch, log.log_end_offset()))
                    .expect("append");
                batch.clear();
            }
        }
    }
    log.append_replicated(&renumber(&batch, log.log_end_offset()))
        .expect("append");
    log.flush().expect("flush");
    log
}

/// Gives concatenated single-record batches consecutive base offsets from `from`.
fn renumber(batches: &[u8], from: i64) -> Vec<u8> {
    let mut out = batches.to_vec();
    let mut pos = 0;
    let mut offset = from;
    while pos + 12 <= out.len() {
        out[pos..pos + 8].copy_from_slice(&offset.to_be_bytes());
        let len = i32::from_be_bytes(out[pos + 8..pos + 12].try_into().expect("len")) as usize;
        pos += 12 + len;
        offset += 1;
    }
    out
}

fn load(c: &mut Criterion) {
    let root = common::scratch_root();
    let dir = root.path().join("__transaction_state-0");
    let log = state_log(&dir);
    println!(
        "txn/load_100k: {} records, {} bytes",
        log.log_end_offset(),
        log.size_in_bytes()
    );
    let mut g = c.benchmark_group("txn");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    g.bench_function("load_100k", |b| {
        b.iter(|| {
            let mut loader = TxnStateLoader::new(0, 2);
            loader.read_log(&log).expect("load");
            assert_eq!(loader.len(), IDS);
            let mut c = coordinator();
            c.begin_loading(0, 2);
            assert!(c.partition_loaded(loader));
            c
        })
    });
    g.finish();
}

criterion_group!(benches, short_transactions, load);
criterion_main!(benches);
