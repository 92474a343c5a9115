//! Append throughput of a partition log, side by side with the physical limit (a bare
//! `write()` of the very same batch bytes) and with a peer, the `commitlog` crate, appending
//! the same records.
//!
//! Groups (`append/<record size>Bx<records per batch>`), every figure in a group comparable:
//!
//! - `streamlog`: `Log::append` of pre-built RecordBatch v2 batches (validation of the CRC
//!   and of every record, offset assignment, index upkeep, disk blocks reserved ahead as
//!   `LogConfig::preallocate_bytes` sets by default), page cache only, no fsync.
//! - `bare_write`: `write()` of the same batch bytes, one call a batch, to a fresh file.
//! - `bare_write_reserved`: the same, into a file whose blocks are reserved ahead of the
//!   writes as streamlog reserves them (`fallocate` with `FALLOC_FL_KEEP_SIZE`, steps from
//!   64 KiB doubling to `LogConfig::preallocate_bytes`' default 8 MiB, the calls timed): the
//!   bound for what streamlog itself adds on top of the kernel's work, since reserving
//!   makes the kernel's part of every append cheaper (about a tenth, for 10 KB batches).
//! - `commitlog`: `CommitLog::append` of pre-built `MessageBuf`s holding the same record
//!   values (commitlog's own format; it assigns offsets and writes one index entry a
//!   message). Default `LogOptions` (1 GB segments).
//!
//! Direct I/O (issue 11), beside its own bound:
//!
//! - `streamlog_direct`: the `streamlog` writer with `LogConfig::direct_io` (batches gathered
//!   in memory, written in 1 MiB `O_DIRECT` chunks); the same validation. Its clock stops
//!   after a `Log::flush`, when every appended byte is on the device.
//! - `dd_direct`: the device's bound, as `dd oflag=direct bs=1M conv=fdatasync` measures
//!   it: the same batch bytes copied into a 1 MiB aligned buffer and written with
//!   `O_DIRECT`, 1 MiB a call, then one `fdatasync`. (The passes also run the real
//!   `dd if=/dev/zero oflag=direct bs=1M` once.)
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
//! - cold (skip with `STREAMLOG_BENCH_COLD=0`): 3 rounds (`STREAMLOG_BENCH_COLD_ROUNDS`) of
//!   256 MiB a writer, each after 3 s idle, so the VM has taken the freed memory back and
//!   every page is faulted in anew.
//!
//! Each writer's line also gives its median **thread CPU time** (user and system time of the
//! appending thread: the kernel's copy into the page cache counts, waiting for a core or for
//! the device does not) and the ratio of those to the bare write's: on a machine shared with
//! other work that ratio is the readable one for the buffered writers.
//!
//! Run: `cargo bench --bench append -- --warm-up-time 1 --measurement-time 5`
//! (`STREAMLOG_BENCH_CRITERION=0` runs only the alternating passes).
//!
//! For a profile (`valgrind --tool=callgrind`, which counts instructions exactly on a busy
//! machine), narrow the passes: `STREAMLOG_BENCH_WRITERS=streamlog,bare_write` (names as
//! printed), `STREAMLOG_BENCH_ROUNDS=2` (warm rounds), `STREAMLOG_BENCH_RECORD_SIZES=100`.
//!
//! `STREAMLOG_BENCH_SOURCE_KIB=N` appends the first N KiB of batches over and over, so the
//! source bytes are in cache for every writer (as a batch just read from a socket is); by
//! default no cache holds them, and the first pass over each batch (streamlog's CRC, the bare
//! write's kernel copy) fetches it from memory.

use std::fs::File;
use std::hint::black_box;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::rc::Rc;
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
    /// One streamlog batch per entry (shared: with `STREAMLOG_BENCH_SOURCE_KIB` the same few
    /// batches come round again).
    batches: Vec<Rc<[u8]>>,
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
            let batch: Rc<[u8]> = b.build().expect("batch builds").into();
            bytes += batch.len();
            batches.push(batch);
            messages.push(m);
        }
        // Source in cache: the first batches that fill `STREAMLOG_BENCH_SOURCE_KIB`, over and
        // over, as a broker appends a batch it has just read from a socket (in cache), where
        // by default every batch comes from memory no cache holds.
        if let Some(kib) = source_kib() {
            let mut held = 0;
            let distinct = batches
                .iter()
                .take_while(|b| {
                    held += b.len();
                    held <= kib << 10
                })
                .count()
                .max(1);
            let n = batches.len();
            batches = (0..n).map(|i| Rc::clone(&batches[i % distinct])).collect();
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

/// Reserves disk blocks for `len` bytes at `offset` without changing the file's length.
fn reserve(f: &File, offset: usize, len: usize) {
    use std::os::fd::AsRawFd;
    // SAFETY: `fallocate` takes the descriptor of `f`, open for the call, and integers.
    let rc = unsafe {
        libc::fallocate(
            f.as_raw_fd(),
            libc::FALLOC_FL_KEEP_SIZE,
            offset as libc::off_t,
            len as libc::off_t,
        )
    };
    assert_eq!(rc, 0, "fallocate: {}", std::io::Error::last_os_error());
}

/// The writers; each returns the time its appends took (setup and cleanup untimed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Writer {
    Streamlog,
    BareWrite,
    BareWriteReserved,
    Commitlog,
    StreamlogDirect,
    DdDirect,
}

impl Writer {
    const ALL: [Writer; 6] = [
        Writer::Streamlog,
        Writer::BareWrite,
        Writer::BareWriteReserved,
        Writer::Commitlog,
        Writer::StreamlogDirect,
        Writer::DdDirect,
    ];

    fn name(self) -> &'static str {
        match self {
            Writer::Streamlog => "streamlog",
            Writer::BareWrite => "bare_write",
            Writer::BareWriteReserved => "bare_write_reserved",
            Writer::Commitlog => "commitlog",
            Writer::StreamlogDirect => "streamlog_direct",
            Writer::DdDirect => "dd_direct",
        }
    }

    fn run(self, root: &Path, w: &mut Workload) -> Timing {
        let dir = Scratch::new(root, self.name());
        match self {
            Writer::Streamlog | Writer::StreamlogDirect => {
                let config = if self == Writer::StreamlogDirect {
                    direct_config()
                } else {
                    log_config()
                };
                let log = Log::open(&dir.0, config).expect("open");
                let start = Stopwatch::start();
                for b in &w.batches {
                    black_box(log.append(b).expect("append"));
                }
                if self == Writer::StreamlogDirect {
                    // Every appended byte on the device before the clock stops (chunks may
                    // still be in flight or in memory), as `dd_direct` ends.
                    log.flush().expect("flush");
                }
                let t = start.stop();
                assert_eq!(log.log_end_offset() as u64, w.records);
                drop(log);
                t
            }
            Writer::BareWrite => {
                let mut f = File::create(dir.0.join("bare.log")).expect("create");
                let start = Stopwatch::start();
                for b in &w.batches {
                    f.write_all(b).expect("write");
                }
                start.stop()
            }
            Writer::BareWriteReserved => {
                let path = dir.0.join("bare.log");
                let mut f = File::create(&path).expect("create");
                let most = log_config().preallocate_bytes as usize;
                let start = Stopwatch::start();
                let (mut end, mut reserved) = (0usize, 0usize);
                for b in &w.batches {
                    if end + b.len() > reserved {
                        // As `Segment::reserve`: a step as large as the file, 64 KiB to `most`.
                        let step = end.clamp(64 << 10, most);
                        let to = (end + b.len()).max(end + step);
                        reserve(&f, reserved.max(end), to - reserved.max(end));
                        reserved = to;
                    }
                    f.write_all(b).expect("write");
                    end += b.len();
                }
                start.stop()
            }
            Writer::DdDirect => {
                let mut f = open_direct(&dir.0.join("dd.log"));
                let mut buf = AlignedBuf::with_alignment(DIRECT_CHUNK, DIRECT_ALIGN);
                let start = Stopwatch::start();
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
                // `conv=fdatasync`: the same end as `streamlog_direct`'s flush.
                f.sync_data().expect("fdatasync");
                start.stop()
            }
            Writer::Commitlog => {
                let mut log = CommitLog::new(LogOptions::new(&dir.0)).expect("open");
                let start = Stopwatch::start();
                for m in &mut w.messages {
                    black_box(log.append(m).expect("append"));
                }
                let t = start.stop();
                assert_eq!(log.next_offset(), w.records);
                drop(log);
                t
            }
        }
    }
}

/// What one run of a writer took: wall time, and the CPU time of the thread that appended.
#[derive(Clone, Copy, Debug)]
struct Timing {
    wall: Duration,
    cpu: Duration,
}

struct Stopwatch {
    wall: Instant,
    cpu: Duration,
}

impl Stopwatch {
    fn start() -> Self {
        let cpu = common::thread_cpu_time();
        Stopwatch {
            cpu,
            wall: Instant::now(),
        }
    }

    fn stop(self) -> Timing {
        let wall = self.wall.elapsed();
        Timing {
            wall,
            cpu: common::thread_cpu_time().saturating_sub(self.cpu),
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
                b.iter_custom(|iters| (0..iters).map(|_| writer.run(root, &mut w).wall).sum());
            });
        }
        g.finish();
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// `STREAMLOG_BENCH_SOURCE_KIB`: the batches appended cycle through this many KiB of
/// distinct batches (commitlog's messages stay distinct, so its figure is not comparable).
fn source_kib() -> Option<usize> {
    std::env::var("STREAMLOG_BENCH_SOURCE_KIB")
        .ok()
        .and_then(|v| v.parse().ok())
}

/// The writers the passes run: `STREAMLOG_BENCH_WRITERS` (names, comma-separated), else all.
fn selected_writers() -> Vec<Writer> {
    match std::env::var("STREAMLOG_BENCH_WRITERS") {
        Ok(names) => Writer::ALL
            .into_iter()
            .filter(|w| names.split(',').any(|n| n.trim() == w.name()))
            .collect(),
        Err(_) => Writer::ALL.to_vec(),
    }
}

/// The cases the passes run: `STREAMLOG_BENCH_RECORD_SIZES` (value sizes, comma-separated),
/// else all.
fn selected_cases() -> Vec<&'static Case> {
    let sizes = std::env::var("STREAMLOG_BENCH_RECORD_SIZES").ok();
    CASES
        .iter()
        .filter(|c| {
            sizes
                .as_deref()
                .is_none_or(|s| s.split(',').any(|n| n.trim().parse() == Ok(c.value_size)))
        })
        .collect()
}

/// `name`'s value as a number, else `default`.
fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs the writers in turn, `rounds` times, rotating who goes first, and prints each
/// writer's medians (wall and thread CPU time) and the medians of the per-round ratios
/// against the bare write and `dd_direct`. `idle` before each timed append lets the VM
/// take freed memory back (the cold state).
fn paired(root: &Path, label: &str, bytes: usize, rounds: usize, idle: Duration) {
    let writers = selected_writers();
    for case in selected_cases() {
        let mut w = Workload::new(case, bytes);
        let n = writers.len();
        let mut times: Vec<Vec<Timing>> = vec![Vec::new(); n];
        for round in 0..rounds {
            for k in 0..n {
                let i = (k + round) % n;
                std::thread::sleep(idle);
                if let (Some(writer), Some(t)) = (writers.get(i), times.get_mut(i)) {
                    t.push(writer.run(root, &mut w));
                }
            }
        }
        println!(
            "{} ({label}, {rounds} rounds of {} MiB a writer, alternating):",
            group_name(case),
            bytes >> 20
        );
        let of = |w: Writer| {
            writers
                .iter()
                .position(|x| *x == w)
                .and_then(|i| times.get(i))
                .cloned()
        };
        let (bare, reserved, dd) = (
            of(Writer::BareWrite),
            of(Writer::BareWriteReserved),
            of(Writer::DdDirect),
        );
        // Speed relative to a baseline: the median over rounds of baseline time / this time
        // ("-" when the baseline did not run).
        let ratio = |s: &[Timing], base: &Option<Vec<Timing>>, f: fn(&Timing) -> Duration| {
            base.as_ref().map_or("    -".to_string(), |base| {
                let mut r: Vec<f64> = s
                    .iter()
                    .zip(base)
                    .map(|(a, b)| f(b).as_secs_f64() / f(a).as_secs_f64())
                    .collect();
                format!("{:>5.2}", median(&mut r))
            })
        };
        let wall = |t: &Timing| t.wall;
        let cpu = |t: &Timing| t.cpu;
        for (writer, s) in writers.iter().zip(&times) {
            let t = median(&mut s.iter().map(|t| t.wall.as_secs_f64()).collect::<Vec<_>>());
            let c = median(&mut s.iter().map(|t| t.cpu.as_secs_f64()).collect::<Vec<_>>());
            println!(
                "  {:<19} median {:>7.1} ms  {:>6.2} M records/s  {:>6.3} GB/s  speed/bare_write {}  speed/bare_write_reserved {}  speed/dd_direct {}  | thread CPU {:>7.1} ms, CPU speed/bare_write {}",
                writer.name(),
                t * 1e3,
                w.records as f64 / t / 1e6,
                w.bytes as f64 / t / 1e9,
                ratio(s, &bare, wall),
                ratio(s, &reserved, wall),
                ratio(s, &dd, wall),
                c * 1e3,
                ratio(s, &bare, cpu),
            );
        }
    }
    if selected_writers().contains(&Writer::DdDirect) {
        dd_reference(root, bytes, idle);
    }
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
    let rounds = env_or("STREAMLOG_BENCH_ROUNDS", 15);
    paired(root.path(), "warm", BYTES_PER_ITER, rounds, Duration::ZERO);
    if std::env::var("STREAMLOG_BENCH_COLD").map_or(true, |v| v != "0") {
        let rounds = env_or("STREAMLOG_BENCH_COLD_ROUNDS", 3);
        paired(
            root.path(),
            "cold",
            COLD_BYTES,
            rounds,
            Duration::from_secs(3),
        );
    }
}
