//! Many partitions in one `Storage`: a maintenance pass over 10,000 partitions, and the
//! resources (RSS, open files, memory maps) 10,000 partitions hold under the default budget
//! of 512 open files.
//!
//! Setup: 10 topics of 1,000 partitions, each given two segments of one 100 B record
//! through `Storage::partition` (so retention has a sealed segment to judge), default
//! `LogConfig`. The data directory is on `/dev/shm` when the
//! machine has one (setup closes 20,000 logs, each close several fsyncs; the timed passes
//! touch no file either way), else under `target/`.
//!
//! - `maintain/10000_partitions/lru_full`: a pass while the budget's worth of logs is open
//!   (each open log gets `Log::tick` and a retention check; the rest are judged from their
//!   close-time summaries).
//! - `maintain/10000_partitions/idle`: a pass after a close and reopen: every partition
//!   closed, judged from its summary alone (target: at most 50 ms).
//! - `partition/open_and_evict`: `Storage::partition` of a closed partition with the budget
//!   full: one clean open, one clean close of the least recently used log.
//!
//! Run: `cargo bench --bench storage -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::path::Path;

use criterion::Criterion;
use streamlog::storage::{Storage, StorageConfig, TopicConfig};
use streamlog::{Compression, OwnedRecord};

mod common;
use common::scratch_root;

const TOPICS: u32 = 10;
const PER_TOPIC: u32 = 1_000;
const TIMESTAMP: i64 = 1_700_000_000_000;
/// A week and a minute after the records: nothing is due for retention yet.
const NOW: i64 = TIMESTAMP + 60_000;

fn data_root() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(d) = tempfile::tempdir_in(shm) {
            return d;
        }
    }
    scratch_root()
}

fn topic(t: u32) -> String {
    format!("bench-topic-{t}")
}

/// RSS in KiB, open files and maps of this process.
fn resources() -> (u64, usize, usize) {
    let rss = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0);
    let fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count());
    let maps = std::fs::read_to_string("/proc/self/maps").map_or(0, |m| m.lines().count());
    (rss, fds, maps)
}

fn report(what: &str, base: (u64, usize, usize), storage: &Storage) {
    let (rss, fds, maps) = resources();
    eprintln!(
        "{what}: {} logs open, {} files charged; RSS {} KiB (+{} KiB), open files {} (+{}), maps {} (+{})",
        storage.open_partitions(),
        storage.open_files_charged(),
        rss,
        rss.saturating_sub(base.0),
        fds,
        fds.saturating_sub(base.1),
        maps,
        maps.saturating_sub(base.2),
    );
}

fn main() {
    let root = data_root();
    let dir = root.path().join("data");
    let base = resources();
    let storage = Storage::open(&dir, StorageConfig::default()).expect("open");
    let record = [OwnedRecord::new(
        TIMESTAMP,
        Some(b"key"),
        Some(&[b'x'; 100]),
    )];
    for t in 0..TOPICS {
        storage
            .create_topic(&topic(t), PER_TOPIC, TopicConfig::new())
            .expect("create");
        for p in 0..PER_TOPIC {
            let log = storage.partition(&topic(t), p).expect("partition");
            log.append_records(&record, Compression::None)
                .expect("append");
            log.roll().expect("roll");
            log.append_records(&record, Compression::None)
                .expect("append");
        }
    }
    report("10,000 two-segment partitions, budget full", base, &storage);

    let mut c = Criterion::default().configure_from_args();
    let mut g = c.benchmark_group("maintain/10000_partitions");
    g.bench_function("lru_full", |b| {
        b.iter(|| {
            let r = storage.maintain(NOW).expect("maintain");
            assert_eq!(r.opened, 0);
            black_box(r)
        })
    });
    storage.close().expect("close");
    drop(storage);

    let storage = Storage::open(&dir, StorageConfig::default()).expect("reopen");
    report("10,000 partitions after close and reopen", base, &storage);
    g.bench_function("idle", |b| {
        b.iter(|| {
            let r = storage.maintain(NOW).expect("maintain");
            assert_eq!((r.open, r.opened), (0, 0));
            black_box(r)
        })
    });
    g.finish();

    // Fill the budget, then time opens of partitions that are closed (each evicts one).
    for p in 0..PER_TOPIC {
        drop(storage.partition(&topic(0), p).expect("partition"));
    }
    report("budget full again", base, &storage);
    let mut next = 0u32;
    c.bench_function("partition/open_and_evict", |b| {
        b.iter(|| {
            // Topics 1.. are closed; cycling through them always misses.
            let t = 1 + next / PER_TOPIC % (TOPICS - 1);
            let p = next % PER_TOPIC;
            next += 1;
            black_box(storage.partition(&topic(t), p).expect("partition"))
        })
    });
    report("after the open/evict bench", base, &storage);
    storage.close().expect("close");
}
