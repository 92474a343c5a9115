//! Compaction throughput: 100 B records (key + value + framing), 10 % distinct keys,
//! uncompressed batches of 100 records, 32 MiB of sealed segments. Each iteration compacts
//! a fresh copy of the log (the copy and open are not timed). Throughput is input bytes.
//!
//! `cargo bench --bench compaction -- --warm-up-time 1 --measurement-time 3`
//!
//! Criterion measures wall time, which on a shared machine includes waiting for a CPU. The
//! bench also prints the pass's own on-CPU time (Linux's `/proc/thread-self/schedstat`) and
//! the throughput per CPU-second, which excludes that wait (and the fsyncs' I/O waits).

mod common;

use std::path::Path;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use streamlog::log::{Cleaner, CleanerConfig};
use streamlog::{Compression, Log, LogConfig, OwnedRecord};

const INPUT_BYTES: u64 = 32 << 20;
const PER_BATCH: usize = 100;

fn config() -> LogConfig {
    LogConfig::builder()
        .segment_bytes(8 << 20)
        .segment_ms(None)
        .build()
        .unwrap()
}

/// Fills `dir` with about `INPUT_BYTES` of 100 B records over `keys` keys; returns the
/// bytes of sealed segments and the record count.
fn build(dir: &Path, distinct_share: u64) -> (u64, u64) {
    let log = Log::open(dir, config()).unwrap();
    let mut rng = common::Rng(42);
    let mut value = [0u8; 80];
    let mut records = Vec::with_capacity(PER_BATCH);
    let mut n = 0u64;
    // A 100 B record: 12 B key, 80 B value, ~8 B of varint framing.
    let estimated_records = INPUT_BYTES / 100;
    let keys = (estimated_records * distinct_share / 100).max(1);
    while log.size_in_bytes() < INPUT_BYTES {
        records.clear();
        for _ in 0..PER_BATCH {
            rng.fill_printable(&mut value);
            let key = format!("key-{:08}", rng.next() % keys);
            records.push(OwnedRecord::new(
                1_700_000_000_000 + n as i64,
                Some(key.as_bytes()),
                Some(&value),
            ));
            n += 1;
        }
        log.append_records(&records, Compression::None).unwrap();
    }
    log.roll().unwrap();
    let bytes = log.size_in_bytes();
    log.close().unwrap();
    (bytes, n)
}

/// Nanoseconds this thread has run on a CPU (Linux), if known.
fn on_cpu_ns() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let p = entry.unwrap().path();
        std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
    }
}

fn compaction(c: &mut Criterion) {
    let root = common::scratch_root();
    let source = root.path().join("source-0");
    let (bytes, records) = build(&source, 10);
    eprintln!("compaction bench: {records} records, {bytes} bytes of segments");
    let mut group = c.benchmark_group("compaction");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(3));
    group.throughput(Throughput::Bytes(bytes));
    let mut cleaner = Cleaner::new(CleanerConfig::default());
    let mut cpu_ns = 0u64;
    let mut wall_ns = 0u128;
    let mut passes = 0u64;
    let mut last = None;
    group.bench_function("100B_records_10pct_keys", |b| {
        b.iter_batched(
            || {
                let copy = tempfile::tempdir_in(root.path()).unwrap();
                let dir = copy.path().join("copy-0");
                copy_dir(&source, &dir);
                (Log::open(&dir, config()).unwrap(), copy)
            },
            |(log, copy)| {
                let cpu_before = on_cpu_ns();
                let stats = cleaner.clean(&log, i64::MAX, 0).unwrap();
                if let (Some(a), Some(b)) = (cpu_before, on_cpu_ns()) {
                    cpu_ns += b - a;
                    wall_ns += stats.duration.as_nanos();
                    passes += 1;
                }
                assert!(stats.complete && stats.records_written < stats.records_read);
                last = Some(stats);
                // Dropped (closed and removed) outside the timed part.
                (log, copy)
            },
            BatchSize::PerIteration,
        );
    });
    group.finish();
    if passes > 0 {
        let cpu_s = cpu_ns as f64 / passes as f64 / 1e9;
        let wall_s = wall_ns as f64 / passes as f64 / 1e9;
        eprintln!(
            "compaction bench: {passes} passes, on-CPU {:.1} ms ({:.0} MB/s per CPU-second), wall {:.1} ms ({:.0} MB/s)",
            cpu_s * 1e3,
            bytes as f64 / cpu_s / 1e6,
            wall_s * 1e3,
            bytes as f64 / wall_s / 1e6,
        );
    }
    if let Some(stats) = last {
        eprintln!("compaction bench: last pass {stats:?}");
    }
}

criterion_group!(benches, compaction);
criterion_main!(benches);
