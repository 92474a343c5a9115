//! The file source end to end: `FILES` files of 100-byte lines (99 bytes and a newline),
//! already in the page cache, tailed by an in-process agent with one file source into a
//! durable lz4 topic of one partition (records and the source's position committed together
//! every `linger` = 90 ms, each commit flushed before EndTxn; the mean interval between
//! commits is printed). Target: ≥ 1,000,000 lines/s with the position committed at least
//! every 100 ms.
//!
//! Beside it, in the same run and on the same files:
//! - `cat` of the files to `/dev/null` (the page-cache read floor);
//! - a plain `Log::append_records` of the same lines into a fresh log: the same batches as
//!   the agent's (closed at `batch_size` = 256 KiB of records), the same codec (lz4), no
//!   transaction, one flush at the end; once with the lines alone, once with the headers
//!   the agent puts on each line (`host`, `path`, `offset`: 60-odd bytes a record here).
//!
//! Each arm reports wall time and CPU time (user + system, of the process for the
//! in-process arms, of the child for `cat`): on a shared machine the CPU time per line is the
//! figure to compare, the wall rate only when the machine is quiet. Arms run `ROUNDS` times,
//! interleaved; medians are printed.
//!
//! `cargo bench -p streamlog-benches --features ingest --bench ingest_files`
//! (`STREAMLOG_BENCH_LINES` total lines, default 2,000,000; `STREAMLOG_BENCH_FILES`, default
//! 4; `STREAMLOG_BENCH_ROUNDS`, default 3). Bounded: the agent arm fails after 600 s.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use streamlog::ingest::{Agent, AgentSettings, FileSourceConfig, SourceMetrics};
use streamlog::storage::{Storage, StorageConfig, TopicConfig};
use streamlog::{BatchBuilder, BatchOptions, Compression, Header, OwnedRecord};

mod common;
use common::Rng;

const LINE: usize = 100;
const BATCH_SIZE: usize = 256 * 1024;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// CPU seconds (user + system) of this process, or of its waited-for children.
fn cpu_seconds(who: libc::c_int) -> f64 {
    // SAFETY: getrusage writes one `rusage` into the zeroed struct we own.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above; `who` is RUSAGE_SELF or RUSAGE_CHILDREN.
    unsafe { libc::getrusage(who, &mut u) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

/// Log-like lines: a timestamp, a level, a sequence number, a random field and padding,
/// 99 bytes and a newline (lz4 gets about what it gets on real logs).
fn write_files(dir: &Path, files: usize, lines: u64) -> Vec<PathBuf> {
    let mut rng = Rng(17);
    let per_file = lines / files as u64;
    let mut paths = Vec::new();
    let mut random = [0u8; 24];
    for f in 0..files {
        let path = dir.join(format!("app-{f}.log"));
        let mut out = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        for n in 0..per_file {
            rng.fill_printable(&mut random);
            let head = format!(
                "2026-12-02T17:{:02}:{:02}.{:03}Z INFO  worker={f} seq={n:09} req=",
                (n / 60_000) % 60,
                (n / 1000) % 60,
                n % 1000
            );
            let mut line = head.into_bytes();
            line.extend_from_slice(&random);
            line.extend_from_slice(b" status=200 path=/api/v1/items");
            line.resize(LINE - 1, b' ');
            line.push(b'\n');
            out.write_all(&line).unwrap();
        }
        out.flush().unwrap();
        paths.push(path);
    }
    paths
}

struct Figures {
    wall: f64,
    cpu: f64,
}

fn cat(paths: &[PathBuf]) -> Figures {
    let before = cpu_seconds(libc::RUSAGE_CHILDREN);
    let started = Instant::now();
    let status = Command::new("cat")
        .args(paths)
        .stdout(std::fs::File::create("/dev/null").unwrap())
        .stderr(Stdio::inherit())
        .status()
        .unwrap();
    let wall = started.elapsed().as_secs_f64();
    assert!(status.success());
    Figures {
        wall,
        cpu: cpu_seconds(libc::RUSAGE_CHILDREN) - before,
    }
}

/// The lines of `paths` as records in the agent's batches (closed at `BATCH_SIZE` bytes of
/// records, as `BatchBuilder::uncompressed_size` counts them); with `headers`, each carries
/// the agent's headers (`host`, `path`, `offset`).
fn batches_of(paths: &[PathBuf], headers: bool) -> Vec<Vec<OwnedRecord>> {
    let mut batches = Vec::new();
    let mut batch = Vec::new();
    let mut probe = BatchBuilder::new(BatchOptions::compressed(Compression::None));
    let now = 1_764_694_000_000i64;
    for path in paths {
        let data = std::fs::read(path).unwrap();
        let mut offset = 0;
        for line in data.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let record = OwnedRecord {
                timestamp: now,
                value: Some(line.to_vec()),
                headers: if headers {
                    vec![
                        (b"host".to_vec(), Some(b"bench-host".to_vec())),
                        (
                            b"path".to_vec(),
                            Some(path.to_string_lossy().into_owned().into_bytes()),
                        ),
                        (b"offset".to_vec(), Some(offset.to_string().into_bytes())),
                    ]
                } else {
                    Vec::new()
                },
                ..OwnedRecord::default()
            };
            offset += line.len() + 1;
            let h: Vec<Header<'_>> = record
                .headers
                .iter()
                .map(|(k, v)| Header {
                    key: k,
                    value: v.as_deref(),
                })
                .collect();
            probe.append(now, None, Some(line), &h).unwrap();
            batch.push(record);
            if probe.uncompressed_size() >= BATCH_SIZE {
                batches.push(std::mem::take(&mut batch));
                probe = BatchBuilder::new(BatchOptions::compressed(Compression::None));
            }
        }
    }
    if !batch.is_empty() {
        batches.push(batch);
    }
    batches
}

fn append_records(root: &Path, batches: &[Vec<OwnedRecord>]) -> Figures {
    let dir = root.join("append");
    let storage = Storage::open(&dir, StorageConfig::default()).unwrap();
    storage
        .create_topic("plain", 1, TopicConfig::new())
        .unwrap();
    let log = storage.partition("plain", 0).unwrap();
    let before = cpu_seconds(libc::RUSAGE_SELF);
    let started = Instant::now();
    for b in batches {
        log.append_records(b, Compression::Lz4).unwrap();
    }
    log.flush().unwrap();
    let wall = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds(libc::RUSAGE_SELF) - before;
    drop(log);
    storage.close().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    Figures { wall, cpu }
}

/// The agent's arm; also returns the number of commits.
fn agent(root: &Path, logs: &Path, lines: u64) -> (Figures, u64) {
    let dir = root.join("agent");
    let storage = Arc::new(Storage::open(&dir, StorageConfig::default()).unwrap());
    let mut settings = AgentSettings::default();
    // A commit is due `linger` after the previous one began and happens at the first check
    // after that (a 256 KiB read later): 90 ms keeps the positions committed every 100 ms.
    settings.linger = Duration::from_millis(90);
    settings.producer.compression = Compression::Lz4;
    settings.producer.batch_size = BATCH_SIZE;
    let mut agent = Agent::new(Arc::clone(&storage), settings).unwrap();
    let mut source = FileSourceConfig::new("files", "lines");
    source.paths = vec![format!("{}/*.log", logs.display())];
    source.host = Some("bench-host".into());
    agent.add_file_source(source).unwrap();
    let before = cpu_seconds(libc::RUSAGE_SELF);
    let started = Instant::now();
    let running = agent.start().unwrap();
    assert!(
        running.wait_for_records("files", lines, Duration::from_secs(600)),
        "{}",
        running.status_line()
    );
    let wall = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds(libc::RUSAGE_SELF) - before;
    let commits = SourceMetrics::get(&running.status()[0].1.commits);
    running.shutdown().unwrap();
    drop(storage);
    std::fs::remove_dir_all(&dir).unwrap();
    (Figures { wall, cpu }, commits)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    // `cargo test --benches` runs bench binaries with no arguments too: keep that cheap.
    if !std::env::args().any(|a| a == "--bench") {
        println!("ingest_files: run with `cargo bench`");
        return;
    }
    let files = env_or("STREAMLOG_BENCH_FILES", 4).max(1) as usize;
    let lines = env_or("STREAMLOG_BENCH_LINES", 2_000_000) / files as u64 * files as u64;
    let rounds = env_or("STREAMLOG_BENCH_ROUNDS", 3).max(1);
    let root = common::scratch_root();
    let logs = root.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let paths = write_files(&logs, files, lines);
    let batches = batches_of(&paths, false);
    let with_headers = batches_of(&paths, true);
    cat(&paths); // into the page cache
    println!(
        "ingest_files: {lines} lines of {LINE} bytes in {files} files, {} batches of ≤ {} KiB, lz4, {rounds} rounds",
        batches.len(),
        BATCH_SIZE / 1024
    );
    let (mut cats, mut appends, mut headed, mut agents) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let c = cat(&paths);
        let a = append_records(root.path(), &batches);
        let h = append_records(root.path(), &with_headers);
        let (g, commits) = agent(root.path(), &logs, lines);
        let per = |f: &Figures| {
            format!(
                "{:>9.0} lines/s wall, {:>5.0} ns CPU/line",
                lines as f64 / f.wall,
                f.cpu * 1e9 / lines as f64
            )
        };
        println!("round {round}: cat            {}", per(&c));
        println!("round {round}: append_records {}", per(&a));
        println!("round {round}: + headers      {}", per(&h));
        println!(
            "round {round}: agent          {}  ({commits} commits, one every {:.0} ms)",
            per(&g),
            g.wall * 1000.0 / commits.max(1) as f64
        );
        cats.push(c);
        appends.push(a);
        headed.push(h);
        agents.push(g);
    }
    let rate = |v: &[Figures]| median(v.iter().map(|f| lines as f64 / f.wall).collect());
    let cpu = |v: &[Figures]| median(v.iter().map(|f| f.cpu * 1e9 / lines as f64).collect());
    println!(
        "median: cat {:.0} lines/s ({:.0} ns CPU/line); append_records {:.0} lines/s ({:.0} ns CPU/line), with headers {:.0} lines/s ({:.0} ns CPU/line); agent {:.0} lines/s ({:.0} ns CPU/line)",
        rate(&cats),
        cpu(&cats),
        rate(&appends),
        cpu(&appends),
        rate(&headed),
        cpu(&headed),
        rate(&agents),
        cpu(&agents)
    );
    println!(
        "agent / append_records: {:.2} of the rate, {:.2}× the CPU per line; agent / append_records with headers: {:.2} of the rate, {:.2}× the CPU per line",
        rate(&agents) / rate(&appends),
        cpu(&agents) / cpu(&appends),
        rate(&agents) / rate(&headed),
        cpu(&agents) / cpu(&headed)
    );
}
