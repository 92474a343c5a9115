//! Three `metadata-cluster` node processes on loopback, each with its own data directory.
//! A writer creates topics without pause while the test SIGKILLs the leader three times,
//! restarting it each time. At the end every acknowledged write is on every node, applied
//! once at the same log index, the nodes' states are equal and their logs agree entry by
//! entry.
//!
//! Bounded in time: every wait has a deadline (node start, each write, each phase, the whole
//! test), the nodes are killed when the test ends however it ends, and progress is awaited
//! on events (acknowledgements, a node's "ready" line, openraft's applied index), never by
//! sleeping.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use openraft::EntryPayload;
use streamlog_metadata_cluster::client::Client;
use streamlog_metadata_cluster::metadata::{Command, Metadata, Response};
use streamlog_metadata_cluster::rpc::{Call, Reply};
use streamlog_metadata_cluster::Tcp;
use tokio::sync::watch;

const NODES: u64 = 3;
const KILLS: usize = 3;
/// Acknowledged writes to wait for before each kill and after it (with the new leader).
const WRITES_PER_PHASE: usize = 15;
const TEST_DEADLINE: Duration = Duration::from_secs(240);
const START_DEADLINE: Duration = Duration::from_secs(30);

struct Cluster {
    dir: PathBuf,
    addrs: Vec<String>,
    children: BTreeMap<u64, Child>,
}

impl Cluster {
    fn members(&self) -> String {
        (1..=NODES)
            .map(|id| format!("{id}={}", self.addr(id)))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn addr(&self, id: u64) -> &str {
        &self.addrs[(id - 1) as usize]
    }

    /// Starts node `id` and waits (bounded) for its "ready" line.
    fn start(&mut self, id: u64, init: bool) {
        let mut cmd = Process::new(env!("CARGO_BIN_EXE_metadata-cluster"));
        cmd.arg("node")
            .arg("--id")
            .arg(id.to_string())
            .arg("--dir")
            .arg(node_dir(&self.dir, id))
            .arg("--listen")
            .arg(self.addr(id));
        if init {
            cmd.arg("--init").arg(self.members());
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if line.starts_with("ready") {
                    let _ = tx.send(());
                }
            }
        });
        self.children.insert(id, child);
        rx.recv_timeout(START_DEADLINE)
            .unwrap_or_else(|_| panic!("node {id} not ready within {START_DEADLINE:?}"));
    }

    fn kill(&mut self, id: u64) {
        if let Some(mut child) = self.children.remove(&id) {
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in self.children.values_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn node_dir(root: &Path, id: u64) -> PathBuf {
    root.join(format!("node{id}"))
}

/// Free loopback ports: bound to port 0, then released for the nodes to take.
fn free_addrs(n: u64) -> Vec<String> {
    let listeners: Vec<_> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().to_string())
        .collect()
}

/// The leader, as the nodes that answer report it (retrying until one names a leader
/// that is among the running nodes).
async fn find_leader(client: &mut Client<Tcp>, cluster: &Cluster) -> u64 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        for id in cluster.children.keys().copied().collect::<Vec<_>>() {
            if let Ok(s) = client.status(cluster.addr(id)).await {
                if let Some(leader) = s.leader.filter(|l| cluster.children.contains_key(l)) {
                    return leader;
                }
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no leader within 30 s"
        );
        // Wait for the next election instead of spinning: a write is the event that
        // tells (it returns once a leader committed it).
        let _ = client.read(true).await;
    }
}

/// Waits until the writer has `count` acknowledged writes.
async fn wait_acks(acks: &mut watch::Receiver<usize>, count: usize) {
    tokio::time::timeout(Duration::from_secs(60), acks.wait_for(|&n| n >= count))
        .await
        .unwrap_or_else(|_| panic!("fewer than {count} writes acknowledged within 60 s"))
        .unwrap();
}

#[test]
fn acknowledged_writes_survive_leader_kills_on_every_node() {
    let root = tempfile::tempdir().unwrap();
    let mut cluster = Cluster {
        dir: root.path().to_path_buf(),
        addrs: free_addrs(NODES),
        children: BTreeMap::new(),
    };
    for id in 1..=NODES {
        cluster.start(id, id == 1);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        tokio::time::timeout(TEST_DEADLINE, scenario(&mut cluster))
            .await
            .expect("the scenario did not finish within its deadline");
    });
}

async fn scenario(cluster: &mut Cluster) {
    let addrs = cluster.addrs.clone();
    let mut admin = Client::new(Tcp, addrs.clone(), 1);
    for id in 1..=3 {
        let r = admin
            .write(Command::RegisterBroker {
                id,
                address: format!("broker{id}:9092"),
                rack: None,
            })
            .await
            .unwrap();
        assert_eq!(r.1, Response::Ok { topic_id: None });
    }

    // The writer: one topic per write, each acknowledged one recorded with its id.
    let (ack_tx, mut acks) = watch::channel(0usize);
    let (stop_tx, stop) = watch::channel(false);
    let writer = tokio::spawn({
        let addrs = addrs.clone();
        async move {
            let mut client = Client::new(Tcp, addrs, 2);
            let mut acked: BTreeMap<String, String> = BTreeMap::new();
            let mut attempted = 0u64;
            while !*stop.borrow() {
                let name = format!("topic-{attempted}");
                attempted += 1;
                let command = Command::CreateTopic {
                    name: name.clone(),
                    partitions: 2,
                    replication_factor: 2,
                    configs: BTreeMap::new(),
                };
                match client.write(command).await {
                    Ok((_, Response::Ok { topic_id: Some(id) })) => {
                        acked.insert(name, id);
                        ack_tx.send_replace(acked.len());
                    }
                    Ok((_, other)) => panic!("{name}: {other:?}"),
                    // Unknown outcome (no leader within the client's deadline): not
                    // acknowledged, so the test asks nothing of it.
                    Err(_) => {}
                }
            }
            (acked, attempted)
        }
    });

    let mut target = 0;
    for round in 0..KILLS {
        target += WRITES_PER_PHASE;
        wait_acks(&mut acks, target).await;
        let leader = find_leader(&mut admin, cluster).await;
        eprintln!("round {round}: killing leader {leader} after {target} acks");
        cluster.kill(leader);
        target += WRITES_PER_PHASE;
        wait_acks(&mut acks, target).await; // the others elected a leader and go on
        cluster.start(leader, false);
    }
    target += WRITES_PER_PHASE;
    wait_acks(&mut acks, target).await;
    stop_tx.send_replace(true);
    let (acked, attempted) = writer.await.unwrap();
    eprintln!("{} of {attempted} writes acknowledged", acked.len());

    // Everything the leader has committed, applied on every node.
    let (_, applied) = admin.read(true).await.unwrap();
    let last = applied.unwrap().index;
    let mut states: Vec<Metadata> = Vec::new();
    let mut logs = Vec::new();
    for id in 1..=NODES {
        let addr = cluster.addr(id).to_string();
        let reached = admin
            .call(
                &addr,
                &Call::WaitApplied {
                    index: last,
                    timeout_ms: 30_000,
                },
            )
            .await
            .unwrap();
        assert!(
            matches!(reached, Reply::WaitApplied(true)),
            "node {id} applied up to {last}"
        );
        let Reply::Read(Ok((state, _))) = admin
            .call(
                &addr,
                &Call::Read {
                    linearizable: false,
                },
            )
            .await
            .unwrap()
        else {
            panic!("node {id}: no state");
        };
        let Reply::Entries(Ok(entries)) = admin
            .call(
                &addr,
                &Call::Entries {
                    start: 0,
                    end: last + 1,
                },
            )
            .await
            .unwrap()
        else {
            panic!("node {id}: no entries");
        };
        states.push(state);
        logs.push(entries);
    }

    // The logs agree: the same entries (log id and payload) at every index up to `last`.
    for (i, log) in logs.iter().enumerate() {
        assert_eq!(
            log.iter().map(|e| e.log_id.index).collect::<Vec<_>>(),
            (0..=last).collect::<Vec<_>>(),
            "node {}: entries 0..={last} contiguous",
            i + 1
        );
        assert_eq!(log, &logs[0], "node {} log differs from node 1's", i + 1);
    }
    // Every acknowledged write is there, on every node, applied once: created by the
    // first entry that carried it, at the same index everywhere.
    let first_create: BTreeMap<String, u64> = logs[0]
        .iter()
        .rev()
        .flat_map(|e| match &e.payload {
            EntryPayload::Normal(p) => p.requests.iter().map(|r| (r, e.log_id.index)).collect(),
            _ => Vec::new(),
        })
        .filter_map(|(r, index)| match &r.command {
            Command::CreateTopic { name, .. } => Some((name.clone(), index)),
            _ => None,
        })
        .collect();
    for (i, state) in states.iter().enumerate() {
        assert_eq!(state, &states[0], "node {} state differs", i + 1);
        for (name, id) in &acked {
            let topic = state
                .topics
                .get(name)
                .unwrap_or_else(|| panic!("node {}: acknowledged {name} missing", i + 1));
            assert_eq!(&topic.id, id, "{name}");
            assert_eq!(topic.created_at, first_create[name], "{name} applied once");
        }
    }
    // Writes not acknowledged may or may not be there; nothing else is.
    for name in states[0].topics.keys() {
        assert!(first_create.contains_key(name), "{name} never written");
    }
}
