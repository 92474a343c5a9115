//! Loading a `__consumer_offsets` partition holding 1,000,000 committed offsets (after
//! compaction), and the memory the loaded state takes per offset.
//!
//! Setup: one offsets partition (`offsets.topic.num.partitions=1`), 1,000 groups each
//! committing 10 topics × 100 partitions (1,000,000 offsets), every offset committed twice
//! (an older and a newer value; every tenth with a metadata string), 1,000 commits per
//! batch, then rolled and compacted, so the log holds one record per offset. The data
//! directory is under `target/` (ext4), read from the page cache.
//!
//! - `load/1000000_offsets`: `OffsetsPartition::load` (open the log, read every batch,
//!   CRC-check it, decode keys and values, build the state). Target: under 1 s.
//! - `load/1000000_offsets/coordinator`: what `LocalGroupDriver` does on open: the group
//!   coordinator loads the partition, streamed from the log with `LogEntries` (its tables
//!   are the node's only copy of the offsets). Target: under 1 s.
//! - `load/1000000_offsets/read_only`: the bare baseline beside them: the same batches read
//!   and CRC-checked with `Log::read_bytes`, nothing decoded.
//!
//! Memory: a counting global allocator measures the bytes the loaded state holds (allocated
//! minus freed during a load, with the state alive), printed per live offset, for the
//! store's `OffsetsState` and for the coordinator. Target: under 200 B.
//!
//! Run: `cargo bench -p streamlog-benches --bench group_offsets -- --warm-up-time 1 --measurement-time 10`

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicIsize, Ordering};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use streamlog::group::coordinator::{GroupCoordinator, GroupCoordinatorConfig};
use streamlog::group::{
    LogEntries, OffsetAndMetadata, OffsetCommit, OffsetsPartition, OffsetsTopicConfig,
    OFFSETS_TOPIC,
};
use streamlog::storage::{Storage, StorageConfig};
use streamlog::Batches;
use streamlog::Log;

mod common;
use common::scratch_root;

/// Counts the bytes held by live allocations.
struct Counting;

static HELD: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded to the system allocator with the caller's layout; the
// counter is only arithmetic beside it.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        HELD.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract for `alloc` is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        HELD.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: `ptr` came from `System` through `alloc`/`realloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        HELD.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: the caller's contract for `realloc` is passed on unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const GROUPS: usize = 1_000;
const TOPICS: usize = 10;
const PARTITIONS: i32 = 100;
const OFFSETS: usize = GROUPS * TOPICS * PARTITIONS as usize;
const TIMESTAMP: i64 = 1_700_000_000_000;

fn config() -> OffsetsTopicConfig {
    let mut c = OffsetsTopicConfig::default();
    c.set("offsets.topic.num.partitions", "1").expect("config");
    c
}

/// The group coordinator with offsets partition 0 loaded from `log`.
fn load_coordinator(log: &Log) -> GroupCoordinator {
    let config = GroupCoordinatorConfig {
        offsets_topic_num_partitions: 1,
        ..GroupCoordinatorConfig::default()
    };
    let mut coordinator = GroupCoordinator::new(config, 1);
    let mut entries = LogEntries::new(log);
    coordinator.load_partition(TIMESTAMP, 0, &mut entries);
    entries.finish().expect("load");
    coordinator
}

fn build(storage: &Storage) {
    let mut part = OffsetsPartition::load(storage, &config(), 0).expect("load");
    for round in 0..2i64 {
        for g in 0..GROUPS {
            let group = format!("consumer-group-{g:04}");
            let commits: Vec<OffsetCommit> = (0..TOPICS)
                .flat_map(|t| {
                    (0..PARTITIONS).map(move |p| {
                        let mut o = OffsetAndMetadata::new(
                            round * 1_000_000 + i64::from(p) * 17,
                            TIMESTAMP + round,
                        );
                        o.leader_epoch = Some(3);
                        if p % 10 == 0 {
                            o.metadata = format!("host-{t}-{p}");
                        }
                        OffsetCommit::new(format!("topic-{t:02}"), p, o)
                    })
                })
                .collect();
            part.commit_offsets(&group, &commits, TIMESTAMP + round)
                .expect("commit");
        }
    }
    part.log().roll().expect("roll");
    let stats = part.compact(TIMESTAMP + 10).expect("compact");
    assert_eq!(
        stats.records_written as usize, OFFSETS,
        "compaction kept one per key"
    );
    assert_eq!(part.state().offset_count(), OFFSETS);
}

fn bench(c: &mut Criterion) {
    let dir = scratch_root();
    let storage = Storage::open(dir.path(), StorageConfig::default()).expect("open");
    build(&storage);
    let log = storage.partition(OFFSETS_TOPIC, 0).expect("log");
    eprintln!(
        "offsets partition: {} bytes in {} segments after compaction",
        log.size_in_bytes(),
        log.segment_count()
    );

    // Memory held by one loaded state.
    let before = HELD.load(Ordering::Relaxed);
    let part = OffsetsPartition::load(&storage, &config(), 0).expect("load");
    let held = HELD.load(Ordering::Relaxed) - before;
    assert_eq!(part.state().offset_count(), OFFSETS);
    eprintln!(
        "loaded state: {held} bytes held, {:.1} B per live committed offset",
        held as f64 / OFFSETS as f64
    );
    drop(part);
    let before = HELD.load(Ordering::Relaxed);
    let coordinator = load_coordinator(&log);
    let held = HELD.load(Ordering::Relaxed) - before;
    assert_eq!(coordinator.committed_offset_count(), OFFSETS);
    eprintln!(
        "loaded coordinator: {held} bytes held, {:.1} B per live committed offset",
        held as f64 / OFFSETS as f64
    );
    drop(coordinator);

    let mut g = c.benchmark_group("load");
    g.sample_size(10);
    g.throughput(Throughput::Elements(OFFSETS as u64));
    g.bench_function("1000000_offsets", |b| {
        b.iter(|| {
            let part = OffsetsPartition::load(&storage, &config(), 0).expect("load");
            black_box(part.state().offset_count())
        })
    });
    g.bench_function("1000000_offsets/coordinator", |b| {
        b.iter(|| black_box(load_coordinator(&log).committed_offset_count()))
    });
    g.bench_function("1000000_offsets/read_only", |b| {
        b.iter(|| {
            let mut offset = log.log_start_offset();
            let mut batches = 0usize;
            while offset < log.log_end_offset() {
                let bytes = log.read_bytes(offset, 1 << 20, None).expect("read");
                for batch in Batches::new(&bytes) {
                    let batch = batch.expect("batch");
                    assert_eq!(batch.crc(), batch.compute_crc());
                    offset = batch.next_offset();
                    batches += 1;
                }
            }
            black_box(batches)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
