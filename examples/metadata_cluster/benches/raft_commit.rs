//! Raft commit costs on streamlog, each beside its baseline in the same run.
//!
//! - `single_node/raft_P`: one openraft node (log store on a streamlog `Log`, group commit
//!   thread, metadata state machine), P concurrent proposers calling `Node::write` until
//!   512 requests are committed and applied (the node's proposer puts the requests waiting
//!   together into one entry). Throughput in requests.
//! - `single_node/direct_P`: the same, each request its own entry through openraft's
//!   `client_write` (one fsync per request: openraft 0.9 waits for each append's flush
//!   before it takes the next write). Shows what the proposer buys.
//! - `single_node/log_P`: the same 512 requests, each as the record a one-request entry
//!   is (one record, the JSON payload, the `raft.leader` header), appended to a bare `Log`
//!   by P threads, each `append` then `flush` (concurrent flushes share fsyncs: the log's
//!   group commit). The target: `raft_P` ≥ 80 % of `log_P`.
//! - printed after the group: `single_node/paired/P`, the same two subjects run back to
//!   back 9 times (order alternating), the median of the per-pair ratios: on a shared
//!   machine whose load drifts over seconds, the figure to quote.
//! - `three_node/raft_P`: three nodes on loopback TCP (each its own data directory), P
//!   clients writing through the leader until 512 entries are committed.
//! - printed after the groups: three-node commit latency p50/p99 of one client writing
//!   sequentially, beside `write` + `fdatasync` of the same-size record on a file in the
//!   same directory, from the same run.
//!
//! Run: `taskset -c 1 cargo bench -p streamlog-metadata-cluster --bench raft_commit`
//! (`-- --quick` for a short run).

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use openraft::{BasicNode, EntryPayload};
use streamlog::raft::LEADER_HEADER;
use streamlog::{BatchBuilder, BatchOptions, Header, Log, LogConfig};
use streamlog_metadata_cluster::client::Client;
use streamlog_metadata_cluster::metadata::{Command, Proposal, Request};
use streamlog_metadata_cluster::node::{Node, NodeOptions};
use streamlog_metadata_cluster::{Tcp, TypeConfig};
use tokio::runtime::Runtime;

const ENTRIES: usize = 512;
const PROPOSERS: [usize; 3] = [1, 8, 64];
const LATENCY_SAMPLES: usize = 300;
/// Back-to-back runs of Raft and the bare log per proposer count (see `single_node`).
const PAIRS: usize = 9;

fn command(proposer: usize) -> Command {
    Command::RegisterBroker {
        id: proposer as i32,
        address: format!("broker-{proposer}.example.com:9092"),
        rack: Some("rack-a".into()),
    }
}

/// The batch the Raft store writes for an entry of `request` alone (see `streamlog::raft`'s
/// codec).
fn entry_batch(request: Request) -> Vec<u8> {
    let proposal = Proposal {
        requests: vec![request],
    };
    let payload = serde_json::to_vec(&EntryPayload::<TypeConfig>::Normal(proposal)).unwrap();
    let mut b = BatchBuilder::new(BatchOptions::default());
    b.append(
        1_700_000_000_000,
        None,
        Some(&payload),
        &[Header::new(LEADER_HEADER, Some(b"1"))],
    )
    .unwrap();
    b.build().unwrap()
}

fn runtime() -> Runtime {
    // As many workers as the CPUs the process may use (tokio's default, which honours
    // `taskset`), as the node binary does: two workers pinned to one CPU woke each other
    // across threads on every commit (1 proposer: median 0.82 of the log with two, 0.85
    // with one, 7 alternating runs each). `STREAMLOG_BENCH_WORKERS=N` sets another count.
    let mut b = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = std::env::var("STREAMLOG_BENCH_WORKERS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        b.worker_threads(n);
    }
    b.enable_all().build().unwrap()
}

fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

/// Starts nodes `1..=n` on loopback under `root`, serving TCP, initialized; returns them
/// once node 1 leads.
async fn cluster(root: &Path, n: u64) -> (Vec<Arc<Node>>, Vec<String>) {
    let addrs: Vec<String> = (0..n).map(|_| free_addr()).collect();
    let mut nodes = Vec::new();
    for id in 1..=n {
        let addr = addrs[(id - 1) as usize].clone();
        let listener = tokio::net::TcpListener::bind(&addr).await.unwrap();
        let node = Node::open(&root.join(format!("node{id}")), NodeOptions::new(id), Tcp)
            .await
            .unwrap();
        tokio::spawn({
            let node = Arc::clone(&node);
            async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(Arc::clone(&node).serve(stream));
                }
            }
        });
        nodes.push(node);
    }
    let members: BTreeMap<u64, BasicNode> = (1..=n)
        .map(|id| (id, BasicNode::new(addrs[(id - 1) as usize].clone())))
        .collect();
    nodes[0].raft().initialize(members).await.unwrap();
    nodes[0]
        .raft()
        .wait(Some(Duration::from_secs(30)))
        .current_leader(1, "leader")
        .await
        .unwrap();
    (nodes, addrs)
}

/// The single-node subjects: 512 requests through Raft (batched by the node's proposer,
/// or `direct`ly one entry each) or appended + flushed on a bare log, by `p` proposers.
struct SingleNode {
    rt: Runtime,
    node: Arc<Node>,
    log: Arc<Log>,
    seq: u64,
}

impl SingleNode {
    fn raft(&mut self, p: usize, direct: bool) -> Duration {
        self.seq += 1;
        let base = self.seq;
        let start = Instant::now();
        self.rt.block_on(async {
            let tasks: Vec<_> = (0..p)
                .map(|proposer| {
                    let node = Arc::clone(&self.node);
                    tokio::spawn(async move {
                        for i in 0..ENTRIES / p {
                            let request = Request {
                                client: proposer as u64,
                                seq: base * 1_000_000 + i as u64,
                                command: command(proposer),
                            };
                            if direct {
                                let requests = vec![request];
                                let proposal = Proposal { requests };
                                node.raft().client_write(proposal).await.unwrap();
                            } else {
                                node.write(request).await.unwrap();
                            }
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
        });
        start.elapsed()
    }

    fn log(&self, batches: &[Vec<u8>]) -> Duration {
        let p = batches.len();
        let start = Instant::now();
        std::thread::scope(|s| {
            for batch in batches {
                let log = &self.log;
                s.spawn(move || {
                    for _ in 0..ENTRIES / p {
                        log.append(batch).unwrap();
                        log.flush().unwrap();
                    }
                });
            }
        });
        start.elapsed()
    }
}

/// The records the `log_P` subject appends: what an entry of one request is, per proposer.
fn log_batches(p: usize) -> Vec<Vec<u8>> {
    (0..p)
        .map(|proposer| {
            entry_batch(Request {
                client: proposer as u64,
                seq: 1_000_000,
                command: command(proposer),
            })
        })
        .collect()
}

fn single_node(c: &mut Criterion) {
    let root = tempfile::tempdir().unwrap();
    let rt = runtime();
    let (nodes, _) = rt.block_on(cluster(&root.path().join("raft"), 1));
    let node = Arc::clone(&nodes[0]);
    let log = Arc::new(Log::open(root.path().join("log"), LogConfig::default()).unwrap());
    let mut subject = SingleNode {
        rt,
        node,
        log,
        seq: 0,
    };
    let mut group = c.benchmark_group("single_node");
    group.throughput(Throughput::Elements(ENTRIES as u64));
    group.sample_size(10);
    for p in PROPOSERS {
        for direct in [false, true] {
            let name = if direct { "direct" } else { "raft" };
            group.bench_function(BenchmarkId::new(name, p), |b| {
                b.iter_custom(|iters| (0..iters).map(|_| subject.raft(p, direct)).sum())
            });
        }
        let batches = log_batches(p);
        group.bench_function(BenchmarkId::new("log", p), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| subject.log(&batches)).sum())
        });
    }
    group.finish();

    // The same comparison in pairs run back to back (order alternating), so that the load
    // of a shared machine, which drifts over seconds, hits both sides of each ratio alike.
    for p in PROPOSERS {
        let batches = log_batches(p);
        let mut ratios = Vec::with_capacity(PAIRS);
        let (mut raft, mut log) = (Vec::new(), Vec::new());
        for i in 0..PAIRS {
            let (r, l) = if i % 2 == 0 {
                let r = subject.raft(p, false);
                (r, subject.log(&batches))
            } else {
                let l = subject.log(&batches);
                (subject.raft(p, false), l)
            };
            ratios.push(l.as_secs_f64() / r.as_secs_f64());
            raft.push(ENTRIES as f64 / r.as_secs_f64());
            log.push(ENTRIES as f64 / l.as_secs_f64());
        }
        println!(
            "single_node/paired/{p} ({PAIRS} pairs of {ENTRIES} requests): raft {:.0}/s, \
             log {:.0}/s, ratio raft/log median {:.2} (min {:.2}, max {:.2})",
            median(&mut raft),
            median(&mut log),
            median(&mut ratios),
            ratios.first().unwrap(),
            ratios.last().unwrap(),
        );
    }
    subject.rt.block_on(async {
        for n in nodes {
            n.shutdown().await;
        }
    });
}

/// Sorts `v` and returns its median.
fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn three_nodes(c: &mut Criterion) {
    let mut group = c.benchmark_group("three_node");
    group.throughput(Throughput::Elements(ENTRIES as u64));
    group.sample_size(10);
    let root = tempfile::tempdir().unwrap();
    let rt = runtime();
    let (nodes, addrs) = rt.block_on(cluster(root.path(), 3));
    let mut client_ids = 1_000u64;
    for p in [1usize, 8, 64] {
        group.bench_function(BenchmarkId::new("raft", p), |b| {
            b.iter_custom(|iters| {
                let mut clients: Vec<Client<Tcp>> = (0..p)
                    .map(|_| {
                        client_ids += 1;
                        Client::new(Tcp, addrs.clone(), client_ids)
                    })
                    .collect();
                let start = Instant::now();
                for _ in 0..iters {
                    clients = rt.block_on(async {
                        let tasks: Vec<_> = clients
                            .into_iter()
                            .enumerate()
                            .map(|(i, mut client)| {
                                tokio::spawn(async move {
                                    for _ in 0..ENTRIES / p {
                                        client.write(command(i)).await.unwrap();
                                    }
                                    client
                                })
                            })
                            .collect();
                        let mut back = Vec::new();
                        for t in tasks {
                            back.push(t.await.unwrap());
                        }
                        back
                    });
                }
                start.elapsed()
            })
        });
    }
    group.finish();

    // Latency of one client writing sequentially, beside a bare write + fdatasync.
    let mut raft = rt.block_on(async {
        let mut client = Client::new(Tcp, addrs.clone(), 99);
        // Warm the connection to the leader.
        client.write(command(0)).await.unwrap();
        let mut samples = Vec::with_capacity(LATENCY_SAMPLES);
        for _ in 0..LATENCY_SAMPLES {
            let start = Instant::now();
            client.write(command(0)).await.unwrap();
            samples.push(start.elapsed());
        }
        samples
    });
    let record = entry_batch(Request {
        client: 99,
        seq: 1,
        command: command(0),
    });
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(root.path().join("fdatasync.bin"))
        .unwrap();
    let mut sync = Vec::with_capacity(LATENCY_SAMPLES);
    for _ in 0..LATENCY_SAMPLES {
        let start = Instant::now();
        file.write_all(&record).unwrap();
        file.sync_data().unwrap();
        sync.push(start.elapsed());
    }
    let p = |v: &mut Vec<Duration>, q: f64| {
        v.sort();
        v[((v.len() as f64 * q) as usize).min(v.len() - 1)]
    };
    let (r50, r99) = (p(&mut raft, 0.50), p(&mut raft, 0.99));
    let (s50, s99) = (p(&mut sync, 0.50), p(&mut sync, 0.99));
    println!(
        "three_node/commit_latency ({} B entries, {LATENCY_SAMPLES} sequential writes): \
         p50 {r50:?} p99 {r99:?}; bare write+fdatasync: p50 {s50:?} p99 {s99:?}; \
         ratio p50 {:.2}",
        record.len(),
        r50.as_secs_f64() / s50.as_secs_f64()
    );
    rt.block_on(async {
        for n in nodes {
            n.shutdown().await;
        }
    });
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    single_node(&mut c);
    three_nodes(&mut c);
    c.final_summary();
}
