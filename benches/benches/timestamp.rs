//! ListOffsets by timestamp on a large multi-segment log (target: at most 5 µs a lookup).
//!
//! Two logs of 10 M records each (16 B values, batches of 10, 1 MiB segments: about 290
//! segments) are built once under the target directory, closed and opened again. Record
//! timestamps rise with the offset (1 ms an offset) but jitter, so they are not monotonic:
//! by up to ±10 ms in one log (`jitter_10ms`: one producer's clock, batches a little out of
//! order), by up to ±2 s in the other (`jitter_2s`: skewed clocks; a lookup's time-index
//! entry then lies on average 6 KiB of batches before the batch sought).
//!
//! - `timestamp/<log>/random`: `list_offsets(Timestamp(t))` for a random `t` across the
//!   log's time range (a fixed sequence of 4096 targets, cycled).
//! - `timestamp/<log>/max_timestamp`: `list_offsets(MaxTimestamp)`.
//! - `timestamp/control/pread_{512,4k,16k}`: a bare `pread` of that many bytes at a random
//!   position of the page-cached segment files into an aligned buffer: what one read of a
//!   lookup's scan costs on this machine at this moment, to read the lookups' figures
//!   against.
//! - `timestamp/control/latest`: `list_offsets(Latest)`, taking a view and nothing else.
//! - `timestamp/first_lookup_after_reopen`: open the closed `jitter_2s` log and look one
//!   timestamp up (the open, plus loading every sealed segment's time index on the first
//!   lookup), for scale.
//!
//! Run: `cargo bench --bench timestamp -- --warm-up-time 1 --measurement-time 3`

use std::fs::File;
use std::hint::black_box;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Instant;

use criterion::Criterion;
use streamlog::io::AlignedBuf;
use streamlog::{BatchBuilder, BatchOptions, ListOffsetsSpec, Log, LogConfig};

mod common;
use common::{log_files, scratch_root, Rng};

const RECORDS: i64 = 10_000_000;
const RECORDS_PER_BATCH: i64 = 10;
const VALUE_SIZE: usize = 16;
const T0: i64 = 1_700_000_000_000;

fn config() -> LogConfig {
    LogConfig::builder()
        .segment_bytes(1 << 20)
        .segment_index_bytes(1 << 20)
        .segment_ms(None)
        .build()
        .unwrap()
}

/// A log whose record at offset `o` is stamped `T0 + o` ± up to `jitter_ms`.
fn build_log(dir: &Path, jitter_ms: u64) -> Log {
    let started = Instant::now();
    let log = Log::open(dir, config()).expect("open");
    let mut rng = Rng(11);
    let mut value = [0u8; VALUE_SIZE];
    let mut offset = 0i64;
    while offset < RECORDS {
        let mut b = BatchBuilder::new(BatchOptions::default());
        for i in 0..RECORDS_PER_BATCH {
            rng.fill_printable(&mut value);
            let jitter = (rng.next() % (2 * jitter_ms + 1)) as i64 - jitter_ms as i64;
            b.append(T0 + offset + i + jitter, None, Some(&value), &[])
                .expect("record fits");
        }
        log.append(&b.build().expect("batch builds"))
            .expect("append");
        offset += RECORDS_PER_BATCH;
    }
    log.close().expect("close");
    drop(log);
    let log = Log::open(dir, config()).expect("reopen");
    eprintln!(
        "built {} records, {} bytes in {} segments in {:.1} s (jitter ±{jitter_ms} ms)",
        log.log_end_offset(),
        log.size_in_bytes(),
        log.segment_count(),
        started.elapsed().as_secs_f64()
    );
    log
}

fn targets() -> Vec<i64> {
    let mut rng = Rng(5);
    (0..4096)
        .map(|_| T0 + (rng.next() % RECORDS as u64) as i64)
        .collect()
}

/// Every target lies inside the log's time range, so each lookup finds a record; the first
/// pass also loads the time indexes and pages the batches in.
fn warm(log: &Log, targets: &[i64]) {
    for &t in targets {
        let found = log
            .list_offsets(ListOffsetsSpec::Timestamp(t))
            .expect("lookup")
            .expect("a record at or after t");
        assert!(found.timestamp >= t);
    }
}

fn main() {
    let root = scratch_root();
    let targets = targets();
    let logs: Vec<(&str, std::path::PathBuf, Log)> = [("jitter_10ms", 10), ("jitter_2s", 2_000)]
        .into_iter()
        .map(|(name, jitter)| {
            let dir = root.path().join(name);
            let log = build_log(&dir, jitter);
            warm(&log, &targets);
            (name, dir, log)
        })
        .collect();

    let mut c = Criterion::default().configure_from_args();
    for (name, _, log) in &logs {
        let mut g = c.benchmark_group(format!("timestamp/{name}"));
        let mut i = 0usize;
        g.bench_function("random", |b| {
            b.iter(|| {
                i = (i + 1) % targets.len();
                black_box(
                    log.list_offsets(ListOffsetsSpec::Timestamp(targets[i]))
                        .expect("lookup"),
                )
            })
        });
        g.bench_function("max_timestamp", |b| {
            b.iter(|| {
                black_box(
                    log.list_offsets(ListOffsetsSpec::MaxTimestamp)
                        .expect("max"),
                )
            })
        });
        g.finish();
    }

    let (_, dir, log) = &logs[1];
    let files: Vec<(File, u64)> = log_files(dir)
        .iter()
        .map(|p| {
            let f = File::open(p).expect("open");
            let len = f.metadata().expect("metadata").len();
            (f, len)
        })
        .collect();
    let mut buf = AlignedBuf::new(16 << 10);
    let mut rng = Rng(9);
    let mut g = c.benchmark_group("timestamp/control");
    for (name, size) in [
        ("pread_512", 512usize),
        ("pread_4k", 4 << 10),
        ("pread_16k", 16 << 10),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let (f, len) = &files[(rng.next() % files.len() as u64) as usize];
                let pos = rng.next() % len.saturating_sub(size as u64).max(1);
                let dst = &mut buf.as_mut_slice()[..size];
                black_box(f.read_at(dst, pos).expect("read"))
            })
        });
    }
    g.bench_function("latest", |b| {
        b.iter(|| black_box(log.list_offsets(ListOffsetsSpec::Latest).expect("latest")))
    });
    g.finish();

    for (_, _, log) in &logs {
        log.close().expect("close");
    }
    drop(logs);
    let dir = root.path().join("jitter_2s");
    let mut g = c.benchmark_group("timestamp");
    g.sample_size(10);
    g.bench_function("first_lookup_after_reopen", |b| {
        b.iter(|| {
            let log = Log::open(&dir, config()).expect("open");
            let found = log
                .list_offsets(ListOffsetsSpec::Timestamp(T0 + RECORDS / 2))
                .expect("lookup");
            log.close().expect("close");
            black_box(found)
        })
    });
    g.finish();
    c.final_summary();
}
