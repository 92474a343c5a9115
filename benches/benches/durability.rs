//! Durability costs, each beside its physical baseline in the same run.
//!
//! - `durable_append/streamlog_8_threads`: 8 producer threads, each appending a batch and then
//!   calling `Log::flush()` (returns once the batch is durable) in a loop; concurrent flushes
//!   share fsyncs (group commit). Throughput in bytes of batches.
//! - `durable_append/bare_write_fdatasync`: one thread writing the same batches to a file
//!   with `write()` + `fdatasync()` after each one: what durability per batch costs without
//!   group commit.
//! - `recovery/streamlog_open_unclean`: opening a log whose 1 GiB was never flushed nor
//!   checkpointed (no recovery point, no clean-shutdown marker): every batch is read,
//!   CRC-checked and indexed.
//! - `recovery/bare_read_crc` and `recovery/bare_read_crc_1MiB`: reading the same segment
//!   files with `read()` into an aligned 8 MiB (or 1 MiB, recovery's own chunk) buffer and
//!   CRC-32C over every byte; compare recovery with the faster of the two.
//!
//! Run: `cargo bench --bench durability -- --warm-up-time 1 --measurement-time 10`
//! (`STREAMLOG_BENCH_CPU_TIME=1` times the recovery pair in thread CPU time instead of wall
//! time, for a shared machine)
//! (`STREAMLOG_BENCH_RECOVERY_MB` sets the recovery size, default 1024).

use std::fs::File;
use std::hint::black_box;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use streamlog::io::AlignedBuf;
use streamlog::{BatchBuilder, BatchOptions, Log, LogConfig};

mod common;

const THREADS: usize = 8;
const BATCHES_PER_THREAD: usize = 64;
const RECORDS_PER_BATCH: usize = 16;
const VALUE_SIZE: usize = 256;

fn batch(records: usize, value_size: usize) -> Vec<u8> {
    let mut b = BatchBuilder::new(BatchOptions::default());
    let mut value = vec![0u8; value_size];
    for i in 0..records {
        for (j, v) in value.iter_mut().enumerate() {
            *v = b'a' + ((i + j) % 26) as u8;
        }
        b.append(
            1_700_000_000_000 + i as i64,
            Some(&(i as u32).to_be_bytes()),
            Some(&value),
            &[],
        )
        .expect("record encodes");
    }
    b.build().expect("batch builds")
}

fn fresh_dir(root: &Path, name: &str) -> PathBuf {
    let dir = root.join(name);
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn durable_appends(c: &mut Criterion) {
    let root = tempfile::tempdir().expect("tempdir");
    let bytes = batch(RECORDS_PER_BATCH, VALUE_SIZE);
    let total = (bytes.len() * THREADS * BATCHES_PER_THREAD) as u64;
    let mut g = c.benchmark_group("durable_append");
    g.throughput(Throughput::Bytes(total));
    g.sample_size(10);

    g.bench_function("streamlog_8_threads", |b| {
        b.iter_custom(|iters| {
            let mut elapsed = Duration::ZERO;
            for _ in 0..iters {
                let dir = fresh_dir(root.path(), "durable-0");
                let log = Arc::new(Log::open(&dir, LogConfig::default()).expect("open"));
                let start = Instant::now();
                std::thread::scope(|s| {
                    for _ in 0..THREADS {
                        let log = Arc::clone(&log);
                        let bytes = &bytes;
                        s.spawn(move || {
                            for _ in 0..BATCHES_PER_THREAD {
                                let info = log.append(bytes).expect("append");
                                let durable = log.flush().expect("flush");
                                assert!(durable > info.last_offset);
                            }
                        });
                    }
                });
                elapsed += start.elapsed();
                drop(log);
                let _ = std::fs::remove_dir_all(&dir);
            }
            elapsed
        })
    });

    g.bench_function("bare_write_fdatasync", |b| {
        b.iter_custom(|iters| {
            let mut elapsed = Duration::ZERO;
            for _ in 0..iters {
                let path = root.path().join("bare.log");
                let mut f = File::create(&path).expect("create");
                let start = Instant::now();
                for _ in 0..THREADS * BATCHES_PER_THREAD {
                    f.write_all(&bytes).expect("write");
                    f.sync_data().expect("fdatasync");
                }
                elapsed += start.elapsed();
                drop(f);
                let _ = std::fs::remove_file(&path);
            }
            elapsed
        })
    });
    g.finish();
}

/// Wall time, or with `STREAMLOG_BENCH_CPU_TIME=1` the calling thread's CPU time (user and
/// system: the copies in `read()` count, time spent waiting for a core does not), which
/// keeps the ratio readable on a machine shared with other work.
enum Clock {
    Wall(Instant),
    Cpu(Duration),
}

impl Clock {
    fn now() -> Self {
        if std::env::var_os("STREAMLOG_BENCH_CPU_TIME").is_some_and(|v| v == "1") {
            Clock::Cpu(common::thread_cpu_time())
        } else {
            Clock::Wall(Instant::now())
        }
    }

    fn elapsed(&self) -> Duration {
        match self {
            Clock::Wall(t) => t.elapsed(),
            Clock::Cpu(t) => common::thread_cpu_time().saturating_sub(*t),
        }
    }
}

/// Builds an unflushed, never-checkpointed log of about `mb` MiB.
fn build_unclean_log(dir: &Path, mb: usize) -> u64 {
    let log = Log::open(dir, LogConfig::default()).expect("open");
    let bytes = batch(100, 100);
    let n = (mb << 20) / bytes.len();
    for _ in 0..n {
        log.append(&bytes).expect("append");
    }
    let size = log.size_in_bytes();
    // No close: no marker, no checkpoint (a drop would now close the log cleanly).
    log.abandon();
    // The data itself is written back now, outside the log: otherwise the kernel's
    // writeback of this 1 GiB runs during the first measurements (recovery's, as they come
    // first) and makes them bimodal in wall time. Recovery still scans every byte, as the
    // log holds no recovery point nor marker.
    for entry in std::fs::read_dir(dir).expect("dir") {
        let path = entry.expect("entry").path();
        if path.is_file() {
            File::open(&path).and_then(|f| f.sync_all()).expect("sync");
        }
    }
    size
}

fn recovery(c: &mut Criterion) {
    let mb: usize = std::env::var("STREAMLOG_BENCH_RECOVERY_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("recover-0");
    let size = build_unclean_log(&dir, mb);
    let mut g = c.benchmark_group("recovery");
    g.throughput(Throughput::Bytes(size));
    g.sample_size(10);

    g.bench_function("streamlog_open_unclean", |b| {
        b.iter_custom(|iters| {
            let mut elapsed = Duration::ZERO;
            for _ in 0..iters {
                let start = Clock::now();
                // Leave no marker or checkpoint behind for the next iteration.
                let (log, info) = Log::open_with(
                    streamlog::io::RealFs::shared(),
                    &dir,
                    LogConfig::default(),
                    &mut |_| Ok(()),
                )
                .expect("open");
                elapsed += start.elapsed();
                assert!(!info.clean_shutdown && info.segments_recovered > 0);
                black_box(log.log_end_offset());
                log.abandon();
            }
            elapsed
        })
    });

    // Two buffer sizes: recovery reads in 1 MiB chunks, and the baseline is the faster of
    // the two bare loops, so neither side gets a slower read than it could have.
    for (name, chunk) in [("bare_read_crc", 8 << 20), ("bare_read_crc_1MiB", 1 << 20)] {
        g.bench_function(name, |b| {
            let mut buf = AlignedBuf::new(chunk);
            b.iter_custom(|iters| {
                let mut elapsed = Duration::ZERO;
                for _ in 0..iters {
                    let start = Clock::now();
                    // The CRC-32C the log's recovery uses (crc-fast), so the bound compares
                    // like with like.
                    let mut crc = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32Iscsi);
                    for p in common::log_files(&dir) {
                        let mut f = File::open(p).expect("open");
                        loop {
                            let n = f.read(buf.as_mut_slice()).expect("read");
                            if n == 0 {
                                break;
                            }
                            crc.update(&buf.as_slice()[..n]);
                        }
                    }
                    elapsed += start.elapsed();
                    black_box(crc.finalize());
                }
                elapsed
            })
        });
    }
    g.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    durable_appends(&mut c);
    recovery(&mut c);
    c.final_summary();
}
