//! Opening a cleanly closed partition log of 1,000 segments.
//!
//! The log is built once with small segments (`segment_bytes` 64 KiB, six 10.9 KB batches a
//! segment) and closed. Each iteration times `Log::open` alone; closing it again (so the
//! next open is clean too) is not timed. A clean open lists the directory, opens every
//! `.log` file (indexes of sealed segments load lazily, on first read) and loads the active
//! segment's indexes.
//!
//! `open/1000_segments/list_and_open_files` is the floor beside it: listing the same
//! directory and opening (then closing) each `.log` file with `std::fs`, nothing else.
//!
//! Run: `cargo bench --bench open -- --warm-up-time 1 --measurement-time 5`

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion};
use streamlog::{BatchBuilder, BatchOptions, Compression, Log, LogConfig};

mod common;
use common::scratch_root;

const SEGMENTS: usize = 1_000;
const SEGMENT_BYTES: u64 = 64 << 10;
const TIMESTAMP: i64 = 1_700_000_000_000;

fn config() -> LogConfig {
    LogConfig::builder()
        .segment_bytes(SEGMENT_BYTES)
        .build()
        .unwrap()
}

fn build(dir: &Path) {
    let started = Instant::now();
    let mut b = BatchBuilder::new(BatchOptions::compressed(Compression::None));
    for i in 0..100 {
        b.append(TIMESTAMP + i, None, Some(&[b'x'; 100]), &[])
            .expect("record fits");
    }
    let batch = b.build().expect("batch builds");
    let log = Log::open(dir, config()).expect("open");
    while log.segment_count() < SEGMENTS {
        log.append(&batch).expect("append");
    }
    log.close().expect("close");
    eprintln!(
        "built {SEGMENTS} segments in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

fn main() {
    let root = scratch_root();
    let dir = root.path().join("bench-0");
    build(&dir);

    let mut c = Criterion::default().configure_from_args();
    let mut g = c.benchmark_group("open/1000_segments");
    g.sample_size(20);
    g.bench_function(BenchmarkId::from_parameter("streamlog"), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let log = Log::open(&dir, config()).expect("open");
                total += start.elapsed();
                assert_eq!(log.segment_count(), SEGMENTS);
                log.close().expect("close");
            }
            total
        })
    });
    g.bench_function(BenchmarkId::from_parameter("list_and_open_files"), |b| {
        b.iter(|| {
            let mut n = 0;
            for e in std::fs::read_dir(&dir).expect("list") {
                let p = e.expect("entry").path();
                if p.extension().is_some_and(|e| e == "log") {
                    black_box(std::fs::File::open(&p).expect("open"));
                    n += 1;
                }
            }
            assert_eq!(n, SEGMENTS);
        })
    });
    g.finish();
    c.final_summary();
}
