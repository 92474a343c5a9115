//! Producer state costs (issue 6).
//!
//! - `producer/append`: `Log::append` of the same 10 × 100 B batch as a plain batch and as
//!   an idempotent one (producer id, epoch, increasing sequence: the duplicate, epoch and
//!   sequence checks and the state update). Both patch the sequence field and recompute the
//!   CRC per append, so the only difference is the producer path. Page cache only; the log
//!   is truncated after every sample so it stays small.
//! - `producer/scan`: iterating every record of a log of transactional batches (10 producers,
//!   one batch a transaction, 10 % aborted) with `records_from` (read_uncommitted, control
//!   records included) and `records_committed` (read_committed: aborted and control batches
//!   skipped).
//! - `producer/rebuild`: opening a cleanly closed log of `REBUILD_MIB` MiB written by
//!   10,000 producers with its snapshots removed, so the whole log is replayed into producer
//!   state (Kafka's worst case, a missing snapshot).
//!
//! Criterion measures one variant after the other, so load from other processes (and the
//! page cache's state) can favour one. After criterion, `alternating` runs the two append
//! variants and the two scans in turns (rotating who goes first), 15 rounds, and prints each
//! one's median and the median of the per-round ratios: the figures to compare.
//!
//! Run: `cargo bench --bench producer -- --warm-up-time 1 --measurement-time 3`

mod common;

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use streamlog::{BatchBuilder, BatchOptions, Log, LogConfig, TxnResult};

const RECORDS: usize = 10;
const VALUE_BYTES: usize = 100;
/// Size of the log the rebuild bench replays by default (the target is 1 GiB; set
/// `STREAMLOG_REBUILD_MIB=1024` for it; see BENCHMARKS.md).
const REBUILD_MIB: u64 = 256;
const REBUILD_PRODUCERS: i64 = 10_000;

// RecordBatch v2 header positions (see src/record/header.rs).
const CRC_AT: usize = 17;
const ATTRIBUTES_AT: usize = 21;
const BASE_SEQUENCE_AT: usize = 53;

fn build(pid: i64, seq: i32, transactional: bool, rng: &mut common::Rng) -> Vec<u8> {
    let mut b = BatchBuilder::new(BatchOptions {
        producer_id: pid,
        producer_epoch: if pid >= 0 { 0 } else { -1 },
        base_sequence: seq,
        transactional,
        ..BatchOptions::default()
    });
    let mut value = [0u8; VALUE_BYTES];
    for _ in 0..RECORDS {
        rng.fill_printable(&mut value);
        b.append(1_700_000_000_000, None, Some(&value), &[])
            .expect("record");
    }
    b.build().expect("batch")
}

/// Sets the base sequence (left at -1 for a plain batch) and recomputes the CRC.
fn patch(batch: &mut [u8], seq: i32) {
    batch[BASE_SEQUENCE_AT..BASE_SEQUENCE_AT + 4].copy_from_slice(&seq.to_be_bytes());
    let crc = crc32c::crc32c(&batch[ATTRIBUTES_AT..]);
    batch[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
}

fn append(c: &mut Criterion) {
    let root = common::scratch_root();
    let mut g = c.benchmark_group("producer/append");
    g.throughput(Throughput::Elements(RECORDS as u64));
    let mut rng = common::Rng(1);
    for (name, pid) in [("plain", -1i64), ("idempotent", 7)] {
        let dir = root.path().join(name);
        let log = Log::open(&dir, LogConfig::default()).expect("open");
        let mut batch = build(pid, 0, false, &mut rng);
        let mut seq: i32 = 0;
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    if pid >= 0 {
                        patch(&mut batch, seq);
                        seq = seq.wrapping_add(RECORDS as i32) & i32::MAX;
                    } else {
                        patch(&mut batch, -1);
                    }
                    black_box(log.append(&batch).expect("append"));
                }
                let took = start.elapsed();
                // Truncation forgets the producer: its next batch may carry any sequence.
                log.truncate_to(0).expect("truncate");
                took
            })
        });
    }
    g.finish();
}

/// A log of `batches` transactional batches from 10 producers, each its own transaction,
/// every tenth aborted.
fn transactional_log(dir: &Path, batches: usize) -> Log {
    let log = Log::open(dir, LogConfig::default()).expect("open");
    let mut rng = common::Rng(2);
    let mut seq = [0i32; 10];
    for i in 0..batches {
        let pid = (i % 10) as i64;
        let s = &mut seq[i % 10];
        log.append(&build(pid, *s, true, &mut rng)).expect("append");
        *s += RECORDS as i32;
        let result = if i % 10 == 3 {
            TxnResult::Abort
        } else {
            TxnResult::Commit
        };
        log.write_txn_marker(pid, 0, result, 0).expect("marker");
    }
    log
}

fn scan(c: &mut Criterion) {
    let root = common::scratch_root();
    let batches = 20_000;
    let log = transactional_log(&root.path().join("txn"), batches);
    let mut g = c.benchmark_group("producer/scan");
    g.throughput(Throughput::Elements((batches * RECORDS) as u64));
    g.bench_function("read_uncommitted", |b| {
        b.iter(|| {
            let mut records = log.records_from(0);
            let mut bytes = 0usize;
            while let Some(r) = records.next_record() {
                bytes += r.expect("record").value.map_or(0, <[u8]>::len);
            }
            black_box(bytes)
        })
    });
    g.bench_function("read_committed", |b| {
        b.iter(|| {
            let mut records = log.records_committed(0);
            let mut bytes = 0usize;
            while let Some(r) = records.next_record() {
                bytes += r.expect("record").value.map_or(0, <[u8]>::len);
            }
            black_box(bytes)
        })
    });
    g.finish();
}

fn remove_snapshots(dir: &Path) {
    for e in std::fs::read_dir(dir).expect("list") {
        let p = e.expect("entry").path();
        if p.extension().is_some_and(|e| e == "snapshot") {
            std::fs::remove_file(p).expect("remove snapshot");
        }
    }
}

fn rebuild(c: &mut Criterion) {
    let mib: u64 = std::env::var("STREAMLOG_REBUILD_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(REBUILD_MIB);
    let root = common::scratch_root();
    let dir = root.path().join("rebuild");
    let config = LogConfig::builder()
        .segment_bytes(64 << 20)
        .build()
        .unwrap();
    {
        let log = Log::open(&dir, config.clone()).expect("open");
        let mut rng = common::Rng(3);
        let template = build(0, 0, false, &mut rng);
        let mut batch = template.clone();
        let mut i: i64 = 0;
        while log.size_in_bytes() < mib << 20 {
            let pid = i % REBUILD_PRODUCERS;
            let seq = (i / REBUILD_PRODUCERS) as i32 * RECORDS as i32;
            // Producer id at byte 43, then epoch; the sequence and CRC are patched after.
            batch[43..51].copy_from_slice(&pid.to_be_bytes());
            patch(&mut batch, seq);
            log.append(&batch).expect("append");
            i += 1;
        }
        assert_eq!(log.producer_states().len(), REBUILD_PRODUCERS as usize);
        log.close().expect("close");
    }
    let mut g = c.benchmark_group("producer/rebuild");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(mib << 20));
    g.bench_function(format!("{mib}MiB_10000_producers"), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                remove_snapshots(&dir);
                let start = Instant::now();
                let log = Log::open(&dir, config.clone()).expect("open");
                total += start.elapsed();
                assert_eq!(log.producer_states().len(), REBUILD_PRODUCERS as usize);
                log.close().expect("close");
            }
            total
        })
    });
    g.finish();
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Times `a` and `b` in alternating order for `rounds` rounds; prints both medians and the
/// median of the per-round ratios b / a.
fn alternate(name: &str, rounds: usize, a: &mut dyn FnMut() -> f64, b: &mut dyn FnMut() -> f64) {
    let (mut ta, mut tb, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let (x, y) = if round % 2 == 0 {
            let x = a();
            (x, b())
        } else {
            let y = b();
            (a(), y)
        };
        ta.push(x);
        tb.push(y);
        ratio.push(y / x);
    }
    println!(
        "alternating {name}: {:.1} vs {:.1} (median of {rounds} rounds), median ratio {:.3}",
        median(ta),
        median(tb),
        median(ratio)
    );
}

fn alternating(_: &mut Criterion) {
    let root = common::scratch_root();
    let mut rng = common::Rng(4);
    let appends = 20_000u32;
    let mut append_run = |pid: i64| {
        let log =
            Log::open(root.path().join(format!("alt{pid}")), LogConfig::default()).expect("open");
        let mut batch = build(pid, 0, false, &mut rng);
        move || {
            let start = Instant::now();
            for i in 0..appends {
                let seq = if pid >= 0 {
                    (i * RECORDS as u32) as i32
                } else {
                    -1
                };
                patch(&mut batch, seq);
                black_box(log.append(&batch).expect("append"));
            }
            let ns = start.elapsed().as_nanos() as f64 / f64::from(appends);
            log.truncate_to(0).expect("truncate");
            ns
        }
    };
    let mut plain = append_run(-1);
    let mut idempotent = append_run(7);
    alternate(
        "append ns/batch plain vs idempotent",
        15,
        &mut plain,
        &mut idempotent,
    );

    let log = transactional_log(&root.path().join("alt-txn"), 20_000);
    let scan = |committed: bool| {
        let start = Instant::now();
        let mut records = if committed {
            log.records_committed(0)
        } else {
            log.records_from(0)
        };
        while let Some(r) = records.next_record() {
            black_box(r.expect("record"));
        }
        // Milliseconds for the whole log (the same log either way).
        start.elapsed().as_secs_f64() * 1e3
    };
    alternate(
        "scan ms read_uncommitted vs read_committed",
        15,
        &mut || scan(false),
        &mut || scan(true),
    );
}

criterion_group!(benches, append, scan, rebuild, alternating);
criterion_main!(benches);
