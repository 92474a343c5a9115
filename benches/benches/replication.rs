//! Replication costs (issue 14).
//!
//! - `replication/apply`: a follower applying the leader's batches
//!   (`Log::append_replicated`, offsets and epochs kept) beside a local append of the same
//!   batches (`Log::append`, offsets assigned), 4 MiB of 16 KiB batches of 100 B records per
//!   iteration, page cache only; the logs are cut back to offset 1 after each iteration
//!   (untimed; the one-record batch at offset 0 keeps the follower's leader-epoch cache, so
//!   the follower does not rewrite `leader-epoch-checkpoint` every iteration as it would not
//!   in a steady epoch). The follower applies them as fetches bring them: `replicated_fetch` one
//!   `replica.fetch.max.bytes` (1 MiB) answer per call, `replicated_batch` one batch per call
//!   (the same granularity as the local append). Target: ≥ 90 % of the local append.
//! - `replication/fetch_round`: a leader and a follower (`Replica` over two logs) on the
//!   in-memory transport. Untimed: the producer's `Replica::append` of a 16 KiB batch with
//!   acks=all on the leader, the follower's next fetch waiting in the network. Timed, the
//!   round: the leader reads the batch for the fetch, the follower appends it and fetches
//!   again, the leader's high watermark advances and completes the produce, the follower
//!   learns the new high watermark and sends its next fetch (left in the network for the
//!   next round). `leader_append_only` is the leader's `Log::append` of the same batch, the
//!   untimed part, for scale. Target: ≤ 50 µs a round.
//!
//! Criterion measures one variant after the other; afterwards `alternating` runs the local
//! and the replicated append in turns, 15 rounds, and prints the median of the per-round
//! ratios: the figure to compare.
//!
//! Run: `taskset -c 1 cargo bench -p streamlog-benches --bench replication -- --warm-up-time 1 --measurement-time 3`

mod common;

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use streamlog::replication::{
    Acks, InMemoryController, InMemoryNetwork, Output, ProduceOutcome, Replica, ReplicationConfig,
};
use streamlog::{BatchBuilder, BatchOptions, HighWatermarkPolicy, KafkaCode, Log, LogConfig};

const BATCH_BYTES: usize = 16 << 10;
const VALUE_BYTES: usize = 100;
const BATCHES_PER_ITER: usize = 256; // 4 MiB
const FETCH_BYTES: usize = 1 << 20;
/// The fetch-round pair starts over on new logs past this size (untimed).
const ROUND_LOG_LIMIT: u64 = 128 << 20;

fn config() -> LogConfig {
    LogConfig::builder()
        .high_watermark_policy(HighWatermarkPolicy::Replicated)
        .segment_bytes(256 << 20)
        .build()
        .expect("config")
}

/// One 16 KiB batch of 100 B printable records.
fn batch(rng: &mut common::Rng) -> Vec<u8> {
    let mut b = BatchBuilder::new(BatchOptions::default());
    let mut value = [0u8; VALUE_BYTES];
    while b.uncompressed_size() + VALUE_BYTES + 16 < BATCH_BYTES {
        rng.fill_printable(&mut value);
        b.append(1_700_000_000_000, None, Some(&value), &[])
            .expect("record");
    }
    b.build().expect("batch")
}

/// The batches as a producer sends them, and as the leader stores them (with offsets),
/// both whole fetch answers and one batch at a time.
struct Batches {
    produced: Vec<Vec<u8>>,
    fetches: Vec<Vec<u8>>,
    stored: Vec<Vec<u8>>,
}

/// One small batch that stays at offset 0 of every log (see the module doc).
fn first_batch() -> Vec<u8> {
    let mut b = BatchBuilder::new(BatchOptions::default());
    b.append(1_700_000_000_000, None, Some(b"first"), &[])
        .expect("record");
    b.build().expect("batch")
}

fn batches(root: &Path) -> Batches {
    let mut rng = common::Rng(14);
    let produced: Vec<Vec<u8>> = (0..BATCHES_PER_ITER).map(|_| batch(&mut rng)).collect();
    let leader = Log::open(root.join("leader-source"), config()).expect("open");
    leader.set_leader_epoch(1).expect("epoch");
    leader.append(&first_batch()).expect("append");
    for b in &produced {
        leader.append(b).expect("append");
    }
    let end = leader.log_end_offset();
    let mut fetches = Vec::new();
    let mut offset = 1;
    while offset < end {
        let bytes = leader.read_bytes(offset, FETCH_BYTES, None).expect("read");
        let mut next = offset;
        for b in streamlog::Batches::new(&bytes) {
            next = b.expect("batch").next_offset();
        }
        fetches.push(bytes);
        offset = next;
    }
    let mut stored = Vec::new();
    for f in &fetches {
        for b in streamlog::Batches::new(f) {
            stored.push(b.expect("batch").as_bytes().to_vec());
        }
    }
    assert_eq!(stored.len(), BATCHES_PER_ITER);
    leader.close().expect("close");
    Batches {
        produced,
        fetches,
        stored,
    }
}

/// Times one iteration of `append` over `log`, then cuts the log back (untimed).
fn timed(log: &Log, append: &mut dyn FnMut(&Log)) -> Duration {
    let start = Instant::now();
    append(log);
    let took = start.elapsed();
    log.truncate_to(1).expect("truncate");
    took
}

/// A log holding the first batch at offset 0 in leader epoch 1.
fn open_with_first(dir: &Path, leader: bool) -> Log {
    let log = Log::open(dir, config()).expect("open");
    if leader {
        log.set_leader_epoch(1).expect("epoch");
        log.append(&first_batch()).expect("append");
    } else {
        let mut first = first_batch();
        // Stored as the leader stores it: offset 0, epoch 1 (outside the CRC).
        first[12..16].copy_from_slice(&1i32.to_be_bytes());
        log.append_replicated(&first).expect("append_replicated");
    }
    log
}

fn local(batches: &[Vec<u8>]) -> impl FnMut(&Log) + '_ {
    move |log| {
        for b in batches {
            black_box(log.append(b).expect("append"));
        }
    }
}

fn replicated(chunks: &[Vec<u8>]) -> impl FnMut(&Log) + '_ {
    move |log| {
        for c in chunks {
            black_box(log.append_replicated(c).expect("append_replicated"));
        }
    }
}

fn apply(c: &mut Criterion) {
    let root = common::scratch_root();
    let b = batches(root.path());
    let bytes: usize = b.produced.iter().map(Vec::len).sum();
    let mut g = c.benchmark_group("replication/apply");
    g.throughput(Throughput::Bytes(bytes as u64));
    let local_log = open_with_first(&root.path().join("local"), true);
    let follower = open_with_first(&root.path().join("follower"), false);
    assert_eq!(follower.leader_epochs().len(), 1);
    g.bench_function("local_append", |bench| {
        bench.iter_custom(|iters| {
            (0..iters)
                .map(|_| timed(&local_log, &mut local(&b.produced)))
                .sum()
        })
    });
    g.bench_function("replicated_fetch", |bench| {
        bench.iter_custom(|iters| {
            (0..iters)
                .map(|_| timed(&follower, &mut replicated(&b.fetches)))
                .sum()
        })
    });
    g.bench_function("replicated_batch", |bench| {
        bench.iter_custom(|iters| {
            (0..iters)
                .map(|_| timed(&follower, &mut replicated(&b.stored)))
                .sum()
        })
    });
    g.finish();

    // The figures to compare: the variants in turns, same process, same page cache.
    let run = |log: &Log, f: &mut dyn FnMut(&Log)| {
        let t: Duration = (0..8).map(|_| timed(log, f)).sum();
        t.as_secs_f64() * 1e3 / 8.0
    };
    for (name, chunks) in [("fetch", &b.fetches), ("batch", &b.stored)] {
        alternate(
            &format!("apply: local_append vs replicated_{name} (ms per 4 MiB)"),
            15,
            &mut || run(&local_log, &mut local(&b.produced)),
            &mut || run(&follower, &mut replicated(chunks)),
        );
    }
}

/// Times `a` and `b` in alternating order for `rounds` rounds; prints both medians and the
/// median of the per-round throughput ratios a / b (b's throughput as a share of a's).
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
        ratio.push(x / y);
    }
    println!(
        "alternating {name}: {:.3} vs {:.3} (medians of {rounds} rounds), throughput ratio {:.3}",
        median(&mut ta),
        median(&mut tb),
        median(&mut ratio)
    );
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// A leader and a follower on the in-memory transport, the follower's fetch held at the
/// leader.
struct Pair {
    _dir: tempfile::TempDir,
    replicas: [Replica; 2],
    network: InMemoryNetwork,
    controller: InMemoryController,
    now: i64,
}

impl Pair {
    fn new(root: &Path) -> Pair {
        let dir = tempfile::tempdir_in(root).expect("dir");
        let repl = ReplicationConfig {
            min_insync_replicas: 2,
            ..ReplicationConfig::default()
        };
        let replicas = [0, 1].map(|id| {
            let log =
                Arc::new(Log::open(dir.path().join(format!("r{id}")), config()).expect("open"));
            Replica::new(id, 1, log, repl.clone(), 0).expect("replica")
        });
        let controller = InMemoryController::new(vec![0, 1], 2, false);
        let mut pair = Pair {
            _dir: dir,
            replicas,
            network: InMemoryNetwork::new(),
            controller,
            now: 0,
        };
        let state = pair.controller.state().clone();
        for r in &mut pair.replicas {
            r.on_partition_state(state.clone(), 0).expect("state");
        }
        pair.pump();
        pair
    }

    /// Delivers messages until the produce completed, the follower knows the leader's high
    /// watermark and only its next fetch is in flight (left there); returns the completions.
    fn pump(&mut self) -> usize {
        let mut completed = 0;
        loop {
            for r in &mut self.replicas {
                for out in r.dispatch(&mut self.network.transport(), &mut self.controller) {
                    if let Output::ProduceCompleted(done) = out {
                        assert_eq!(done.error, KafkaCode::NONE);
                        completed += 1;
                    }
                }
            }
            let hw = self.replicas[0].log().high_watermark();
            if self.network.in_flight() == 1
                && self.replicas[1].log().high_watermark() == hw
                && hw == self.replicas[0].log().log_end_offset()
            {
                return completed;
            }
            let Some(e) = self.network.deliver_next() else {
                return completed;
            };
            self.replicas[e.to as usize]
                .on_message(e.from, e.message, self.now)
                .expect("message");
        }
    }

    /// The producer's append (untimed), then the timed round.
    fn round(&mut self, batch: &[u8]) -> Duration {
        let outcome = self.replicas[0]
            .append(batch, Acks::All, self.now)
            .expect("append");
        assert!(
            matches!(outcome, ProduceOutcome::Pending { .. }),
            "{outcome:?}"
        );
        let start = Instant::now();
        let completed = self.pump();
        let took = start.elapsed();
        assert_eq!(completed, 1);
        took
    }

    fn size(&self) -> u64 {
        self.replicas[0].log().size_in_bytes()
    }
}

fn fetch_round(c: &mut Criterion) {
    let root = common::scratch_root();
    let mut rng = common::Rng(15);
    let batch = batch(&mut rng);
    let mut g = c.benchmark_group("replication/fetch_round");
    g.throughput(Throughput::Bytes(batch.len() as u64));
    let mut pair = Pair::new(root.path());
    g.bench_function("16KiB", |bench| {
        bench.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                if pair.size() > ROUND_LOG_LIMIT {
                    pair = Pair::new(root.path());
                }
                total += pair.round(&batch);
            }
            total
        })
    });
    let log = Log::open(root.path().join("append-only"), config()).expect("open");
    g.bench_function("leader_append_only", |bench| {
        bench.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                if log.size_in_bytes() > ROUND_LOG_LIMIT {
                    log.truncate_to(0).expect("truncate");
                }
                let start = Instant::now();
                black_box(log.append(&batch).expect("append"));
                total += start.elapsed();
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, apply, fetch_round);
criterion_main!(benches);
