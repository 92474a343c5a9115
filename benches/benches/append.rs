//! Append throughput of a partition log, side by side with the physical limit (a bare
//! `write()` of the very same batch bytes) and with a peer, the `commitlog` crate, appending
//! the same records.
//!
//! Groups (`append/<record size>Bx<records per batch>`), every figure in a group comparable:
//!
//! - `streamlog`: `Log::append` of pre-built RecordBatch v2 batches (validation of the CRC
//!   and of every record, offset assignment, index upkeep), page cache only, no fsync.
//! - `bare_write`: `write()` of the same batch bytes, one call a batch, to a fresh file.
//! - `commitlog`: `CommitLog::append` of pre-built `MessageBuf`s holding the same record
//!   values (commitlog's own format; it assigns offsets and writes one index entry a
//!   message). Default `LogOptions` (1 GB segments).
//!
//! Direct I/O (issue 11), beside its own bound:
//!
//! - `streamlog_direct`: `Log::append` with `LogConfig::direct_io` (batches gathered in
//!   memory, written in 1 MiB `O_DIRECT` chunks); the same validation as `streamlog`.
//! - `dd_direct`: the device's bound, as `dd oflag=direct bs=1M` measures it: the same
//!   batch bytes copied into a 1 MiB aligned buffer and written with `O_DIRECT`, 1 MiB a
//!   call. (The passes also run the real `dd if=/dev/zero oflag=direct bs=1M` once.)
//!
//! Throughput is records/s for the 100 B case and bytes/s of streamlog's batch bytes for the
//! 1 KiB case (commitlog's on-disk bytes differ a little: 20 B of header a message).
//!
//! Memory state (see shared/MACHINE.md): every iteration appends `BYTES_PER_ITER` to a new
//! log in a new directory, and only the appends are timed; the directory is deleted right
//! after, so the next iteration (of whichever writer) writes into page-cache pages freed a
//! few milliseconds earlier: all three writers run in the **warm** state.
//!
//! Criterion measures the writers one after another, so load from other processes can
//! favour one of them. After criterion, two passes run the three writers **alternately**
//! (rotating who goes first) and print each one's median and the median of the per-round
//! ratios, which is the figure to compare:
//!
//! - warm: 15 rounds of 64 MiB a writer, back to back;
//! - cold (skip with `STREAMLOG_BENCH_COLD=0`): 3 rounds of 256 MiB a writer, each after
//!   3 s idle, so the VM has taken the freed memory back and every page is faulted in anew.
//!
//! Run: `cargo bench --bench append -- --warm-up-time 1 --measurement-time 5`
//! (`STREAMLOG_BENCH_CRITERION=0` runs only the alternating passes).

use std::fs::File;
use std::hint::black_box;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use commitlog::message::MessageBuf;
use commitlog::{CommitLog, LogOptions};
use criterion::{BenchmarkId, Criterion, Throughput};
use streamlog::io::{AlignedBuf, DIRECT_ALIGN};
use streamlog::{BatchBuilder, BatchOptions, Compression, Log, LogConfig};

mod common;
use common::{scratch_root, Rng};

/// Bytes of batches each timed iteration appends (one fresh log per iteration).
const BYTES_PER_ITER: usize = 64 << 20;
/// Bytes each writer appends in one round of the cold pass (more than a warm round, so the
/// 3 s idle before it is a small part of the run).
const COLD_BYTES: usize = 256 << 20;
const TIMESTAMP: i64 = 1_700_000_000_000;

struct Case {
    value_size: usize,
    records_per_batch: usize,
    /// Report records/s (true) or bytes/s (false).
    per_record: bool,
}

const CASES: [Case; 2] = [
    Case {
        value_size: 100,
        records_per_batch: 100,
        per_record: true,
    },
    Case {
        value_size: 1024,
        records_per_batch: 100,
        per_record: false,
    },
];

/// The same records in both formats, ready before anything is timed.
struct Workload {
    /// One streamlog batch per entry.
    batches: Vec<Vec<u8>>,
    /// The same values as commitlog message sets.
    messages: Vec<MessageBuf>,
    records: u64,
    bytes: u64,
}

impl Workload {
    fn new(case: &Case, target_bytes: usize) -> Workload {
        let mut batches = Vec::new();
        let mut messages = Vec::new();
        let mut bytes = 0usize;
        let mut value = vec![0u8; case.value_size];
        let mut rng = Rng(1);
        while bytes < target_bytes {
            let mut b = BatchBuilder::new(BatchOptions::compressed(Compression::None));
            let mut m = MessageBuf::default();
            for i in 0..case.records_per_batch {
                rng.fill_printable(&mut value);
                b.append(TIMESTAMP + i as i64, None, Some(&value), &[])
                    .expect("record fits");
                m.push(&value).expect("message fits");
            }
            let batch = b.build().expect("batch builds");
            bytes += batch.len();
            batches.push(batch);
            messages.push(m);
        }
        Workload {
            records: (batches.len() * case.records_per_batch) as u64,
            bytes: bytes as u64,
            batches,
            messages,
        }
    }
}

/// A scratch directory for one iteration, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(root: &Path, name: &str) -> Scratch {
        let p = root.join(name);
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("scratch dir");
        Scratch(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn log_config() -> LogConfig {
    // Kafka's defaults: 1 GiB segments, 4 KiB index interval, 10 MiB indexes.
    LogConfig::default()
}

fn direct_config() -> LogConfig {
    LogConfig::builder()
        .direct_io(true)
        .direct_io_write_bytes(DIRECT_CHUNK as u32)
        .build()
        .expect("config")
}

/// The size of each direct write, in streamlog and in the `dd` baseline.
const DIRECT_CHUNK: usize = 1 << 20;

/// Opens `path` for `O_DIRECT` writes (as `dd oflag=direct` does).
fn open_direct(path: &Path) -> File {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .expect("O_DIRECT open (is the target directory on a filesystem that supports it?)")
}

/// The writers; each returns the time its appends took (setup and cleanup untimed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Writer {
    Streamlog,
    BareWrite,
    Commitlog,
    StreamlogDirect,
    DdDirect,
}

impl Writer {
    const ALL: [Writer; 5] = [
        Writer::Streamlog,
        Writer::BareWrite,
        Writer::Commitlog,
        Writer::StreamlogDirect,
        Writer::DdDirect,
    ];

    fn name(self) -> &'static str {
        match self {
            Writer::Streamlog => "streamlog",
            Writer::BareWrite => "bare_write",
            Writer::Commitlog => "commitlog",
            Writer::StreamlogDirect => "streamlog_direct",
            Writer::DdDirect => "dd_direct",
        }
    }

    fn run(self, root: &Path, w: &mut Workload) -> Duration {
        let dir = Scratch::new(root, self.name());
        match self {
            Writer::Streamlog => {
                let log = Log::open(&dir.0, log_config()).expect("open");
                let start = Instant::now();
                for b in &w.batches {
                    black_box(log.append(b).expect("append"));
                }
                let t = start.elapsed();
                assert_eq!(log.log_end_offset() as u64, w.records);
                drop(log);
                t
            }
            Writer::BareWrite => {
                let mut f = File::create(dir.0.join("bare.log")).expect("create");
                let start = Instant::now();
                for b in &w.batches {
                    f.write_all(b).expect("write");
                }
                start.elapsed()
            }
            Writer::StreamlogDirect => {
                let log = Log::open(&dir.0, direct_config()).expect("open");
                let start = Instant::now();
                for b in &w.batches {
                    black_box(log.append(b).expect("append"));
                }
                let t = start.elapsed();
                assert_eq!(log.log_end_offset() as u64, w.records);
                drop(log);
                t
            }
            Writer::DdDirect => {
                let mut f = open_direct(&dir.0.join("dd.log"));
                let mut buf = AlignedBuf::with_alignment(DIRECT_CHUNK, DIRECT_ALIGN);
                let start = Instant::now();
                let mut used = 0;
                for b in &w.batches {
                    let mut rest: &[u8] = b;
                    while !rest.is_empty() {
                        let n = (DIRECT_CHUNK - used).min(rest.len());
                        buf.as_mut_slice()[used..used + n].copy_from_slice(&rest[..n]);
                        used += n;
                        rest = &rest[n..];
                        if used == DIRECT_CHUNK {
                            f.write_all(buf.as_slice()).expect("write");
                            used = 0;
                        }
                    }
                }
                // The last partial chunk, padded to the block size as dd's last block is.
                let tail = used.next_multiple_of(DIRECT_ALIGN);
                if tail > 0 {
                    f.write_all(&buf.as_slice()[..tail]).expect("write");
                }
                start.elapsed()
            }
            Writer::Commitlog => {
                let mut log = CommitLog::new(LogOptions::new(&dir.0)).expect("open");
                let start = Instant::now();
                for m in &mut w.messages {
                    black_box(log.append(m).expect("append"));
                }
                let t = start.elapsed();
                assert_eq!(log.next_offset(), w.records);
                drop(log);
                t
            }
        }
    }
}

fn group_name(case: &Case) -> String {
    format!("append/{}Bx{}", case.value_size, case.records_per_batch)
}

fn append(c: &mut Criterion, root: &Path) {
    for case in &CASES {
        let mut w = Workload::new(case, BYTES_PER_ITER);
        let mut g = c.benchmark_group(group_name(case));
        g.sample_size(10);
        g.throughput(if case.per_record {
            Throughput::Elements(w.records)
        } else {
            Throughput::Bytes(w.bytes)
        });
        for writer in Writer::ALL {
            g.bench_function(BenchmarkId::from_parameter(writer.name()), |b| {
                b.iter_custom(|iters| (0..iters).map(|_| writer.run(root, &mut w)).sum());
            });
        }
        g.finish();
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Runs the three writers in turn, `rounds` times, rotating who goes first, and prints each
/// writer's median and the median of the per-round ratios (streamlog / other). `idle`
/// before each timed append lets the VM take freed memory back (the cold state).
fn paired(root: &Path, label: &str, bytes: usize, rounds: usize, idle: Duration) {
    for case in &CASES {
        let mut w = Workload::new(case, bytes);
        let n = Writer::ALL.len();
        let mut secs: Vec<Vec<f64>> = vec![Vec::new(); n];
        for round in 0..rounds {
            for k in 0..n {
                let i = (k + round) % n;
                std::thread::sleep(idle);
                if let (Some(writer), Some(s)) = (Writer::ALL.get(i), secs.get_mut(i)) {
                    s.push(writer.run(root, &mut w).as_secs_f64());
                }
            }
        }
        println!(
            "{} ({label}, {rounds} rounds of {} MiB a writer, alternating):",
            group_name(case),
            bytes >> 20
        );
        let of = |w: Writer| {
            Writer::ALL
                .iter()
                .position(|x| *x == w)
                .and_then(|i| secs.get(i))
                .cloned()
                .unwrap_or_default()
        };
        let (bare, dd) = (of(Writer::BareWrite), of(Writer::DdDirect));
        // Speed relative to a baseline: the median over rounds of baseline time / this time.
        let ratio = |s: &[f64], base: &[f64]| {
            let mut r: Vec<f64> = s.iter().zip(base).map(|(a, b)| b / a).collect();
            median(&mut r)
        };
        for (writer, s) in Writer::ALL.iter().zip(&secs) {
            let mut sorted = s.clone();
            let t = median(&mut sorted);
            println!(
                "  {:<16} median {:>7.1} ms  {:>6.2} M records/s  {:>6.3} GB/s  speed/bare_write {:>5.2}  speed/dd_direct {:>5.2}",
                writer.name(),
                t * 1e3,
                w.records as f64 / t / 1e6,
                w.bytes as f64 / t / 1e9,
                ratio(s, &bare),
                ratio(s, &dd),
            );
        }
    }
    dd_reference(root, bytes, idle);
}

/// The real `dd if=/dev/zero oflag=direct bs=1M` of `bytes` (after `idle`), for reference
/// beside the in-process `dd_direct`; skipped when `dd` is missing.
fn dd_reference(root: &Path, bytes: usize, idle: Duration) {
    let dir = Scratch::new(root, "dd");
    std::thread::sleep(idle);
    let out = dir.0.join("dd.out");
    let start = Instant::now();
    let status = std::process::Command::new("dd")
        .arg("if=/dev/zero")
        .arg(format!("of={}", out.display()))
        .args(["bs=1M", "oflag=direct", "status=none"])
        .arg(format!("count={}", bytes >> 20))
        .status();
    let t = start.elapsed().as_secs_f64();
    match status {
        Ok(s) if s.success() => println!(
            "  dd if=/dev/zero oflag=direct bs=1M count={}: {:.1} ms, {:.3} GB/s (process start included)",
            bytes >> 20,
            t * 1e3,
            bytes as f64 / t / 1e9
        ),
        _ => println!("  dd oflag=direct: not run"),
    }
}

fn main() {
    let root = scratch_root();
    let mut c = Criterion::default().configure_from_args();
    if std::env::var("STREAMLOG_BENCH_CRITERION").map_or(true, |v| v != "0") {
        append(&mut c, root.path());
        c.final_summary();
    }
    if std::env::args().any(|a| a == "--test" || a == "--list" || a == "--profile-time") {
        return;
    }
    println!();
    paired(root.path(), "warm", BYTES_PER_ITER, 15, Duration::ZERO);
    if std::env::var("STREAMLOG_BENCH_COLD").map_or(true, |v| v != "0") {
        paired(root.path(), "cold", COLD_BYTES, 3, Duration::from_secs(3));
    }
}
