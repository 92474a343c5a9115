//! Three replicas of one partition over TCP on loopback, each with its own data directory.
//!
//! The replication core (`streamlog::replication`) is sans-IO: a [`Replica`] takes
//! messages, partition states, producers' batches and the time (`tick(now)`) in, and hands
//! back outputs. This example is the application around it, with std threads and
//! `std::net` only:
//!
//! - a **transport** ([`Transport`]): each message is framed (`u32` length, then the fields
//!   big-endian) and written to the peer's listener by a writer thread per peer; reader
//!   threads decode what arrives into the node's inbox. A message to a dead peer is lost,
//!   which the core tolerates (it fetches again).
//! - a **controller** ([`Controller`]): one in-process object holding the partition state.
//!   It applies the leader's ISR proposals (Kafka's AlterPartition), elects a new leader
//!   from the ISR when a broker goes away, and tells every live node the new state.
//! - a **node** per replica: a thread that owns its `Replica` and loops: take an input
//!   (or time out after 10 ms), `tick(now)`, send the outputs.
//!
//! The run: produce with `acks=all` and print the high watermark of every replica; stop
//! the leader; the controller elects a new leader from the ISR; produce more; check that
//! every acknowledged record is on the new leader below its high watermark; restart the old
//! leader on its data directory and watch it catch up and rejoin the ISR.
//!
//! ```text
//! cargo run --example replication [DIR]
//! ```
//! Without DIR the three data directories live in a temporary directory removed at the
//! end. Every wait has a deadline: a run that cannot finish fails instead of hanging.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use streamlog::replication::{
    Acks, AlterPartition, Controller, Envelope, EpochEndOffset, FetchRequest, FetchResponse,
    InMemoryController, Message, OffsetsForLeaderEpochRequest, OffsetsForLeaderEpochResponse,
    Output, PartitionState, ProduceId, ProduceOutcome, Replica, ReplicaId, ReplicationConfig,
    Transport,
};
use streamlog::{BatchBuilder, BatchOptions, HighWatermarkPolicy, KafkaCode, Log, LogConfig};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How long any one wait of the run may take before it fails.
const DEADLINE: Duration = Duration::from_secs(20);
/// Socket connect, read and write timeouts.
const SOCKET_TIMEOUT: Duration = Duration::from_secs(2);
/// The largest frame a node accepts.
const MAX_FRAME: usize = 16 << 20;

fn main() -> Result<(), BoxError> {
    let tmp;
    let root = match std::env::args().nth(1) {
        Some(d) => PathBuf::from(d),
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let report = run(&root, 5, true)?;
    println!(
        "done: {} acknowledged records, all on the new leader; old leader back in sync",
        report.acknowledged
    );
    Ok(())
}

/// What a run shows.
#[derive(Debug)]
pub struct Report {
    /// Records acknowledged with acks=all.
    pub acknowledged: usize,
    /// The leader before and after the stop.
    pub leaders: (ReplicaId, ReplicaId),
}

/// Runs the whole scenario with `batches` acks=all batches before and after the failover,
/// with data directories under `root`.
pub fn run(root: &Path, batches: usize, verbose: bool) -> Result<Report, BoxError> {
    let say = |s: String| {
        if verbose {
            println!("{s}");
        }
    };
    let replicas: Vec<ReplicaId> = vec![0, 1, 2];
    let repl = ReplicationConfig {
        min_insync_replicas: 2,
        replica_fetch_wait_max_ms: 200,
        replica_fetch_backoff_ms: 50,
        replica_socket_timeout_ms: 1_000,
        replica_lag_time_max_ms: 5_000,
        request_timeout_ms: 10_000,
        ..ReplicationConfig::default()
    };
    let mut cluster = Cluster::new(root, replicas.clone(), repl)?;
    for id in &replicas {
        cluster.start(*id)?;
    }
    cluster.publish_state();
    let first = cluster.leader();
    say(format!(
        "three replicas on loopback: {}",
        cluster
            .addrs
            .iter()
            .map(|(id, a)| format!("{id}@{a}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    say(format!("leader {first}, ISR {:?}", cluster.state().isr));

    // 1. acks=all: each produce completes once every ISR member has the batch.
    let mut acknowledged = Vec::new();
    for i in 0..batches {
        let values = produce_batch(&mut cluster, first, i, 4)?;
        acknowledged.extend(values);
        say(format!(
            "produce {i} acknowledged (acks=all); {}",
            cluster.describe()?
        ));
    }

    // 2. Stop the leader; the controller elects from the ISR.
    say(format!("stopping the leader, replica {first}"));
    cluster.stop(first)?;
    let second = cluster.fence(first);
    let state = cluster.state();
    if second < 0 || second == first {
        return Err(format!("no new leader after stopping {first}: {state:?}").into());
    }
    say(format!(
        "controller elected replica {second} (leader epoch {}), ISR {:?}",
        state.leader_epoch, state.isr
    ));
    for i in batches..2 * batches {
        let values = produce_batch(&mut cluster, second, i, 4)?;
        acknowledged.extend(values);
        say(format!(
            "produce {i} acknowledged (acks=all); {}",
            cluster.describe()?
        ));
    }

    // 3. No acknowledged record lost: all of them are on the new leader, below its HW.
    let committed = cluster.committed_values(second)?;
    for v in &acknowledged {
        if !committed.contains(v) {
            return Err(format!("acknowledged record {v} missing on leader {second}").into());
        }
    }
    say(format!(
        "all {} acknowledged records are on leader {second} below its high watermark",
        acknowledged.len()
    ));

    // 4. The old leader restarts on its data directory, catches up and rejoins the ISR.
    say(format!("restarting replica {first} on its data directory"));
    cluster.start(first)?;
    cluster.publish_state();
    cluster.wait_for_isr(first)?;
    let end = cluster.status(second)?.log_end_offset;
    for id in cluster.live_ids() {
        cluster.wait_high_watermark(id, end)?;
    }
    say(format!(
        "replica {first} is back in the ISR {:?}; {}",
        cluster.state().isr,
        cluster.describe()?
    ));
    let back = cluster.committed_values(first)?;
    if back != committed {
        return Err(format!("replica {first} differs from the leader after catching up").into());
    }
    cluster.shutdown()?;
    Ok(Report {
        acknowledged: acknowledged.len(),
        leaders: (first, second),
    })
}

/// Produces one batch of `records` values to `leader` with acks=all and waits for the
/// acknowledgement. Returns the values.
fn produce_batch(
    cluster: &mut Cluster,
    leader: ReplicaId,
    n: usize,
    records: usize,
) -> Result<Vec<String>, BoxError> {
    let mut builder = BatchBuilder::new(BatchOptions::default());
    let mut values = Vec::new();
    for r in 0..records {
        let v = format!("batch {n} record {r}");
        builder.append(0, None, Some(v.as_bytes()), &[])?;
        values.push(v);
    }
    let (tx, rx) = mpsc::channel();
    cluster.send(leader, Event::Produce(builder.build()?.to_vec(), tx))?;
    match rx.recv_timeout(DEADLINE) {
        Ok(KafkaCode::NONE) => Ok(values),
        Ok(code) => Err(format!("produce {n} failed: {code:?}").into()),
        Err(_) => Err(format!("produce {n} not acknowledged within {DEADLINE:?}").into()),
    }
}

// ---------------------------------------------------------------------------------------
// The cluster: nodes, their addresses, the controller.

/// What a node thread takes in.
enum Event {
    /// A message from a peer (read from a socket).
    Message(Envelope),
    /// The controller's new partition state.
    State(PartitionState),
    /// The controller refused this node's ISR proposal.
    AlterPartitionError(KafkaCode),
    /// A producer's batch, acks=all; the answer is the produce's error code.
    Produce(Vec<u8>, Sender<KafkaCode>),
    /// Answer once the high watermark is at least this.
    WaitHighWatermark(i64, Sender<Status>),
    /// The values of the records below the high watermark.
    ReadCommitted(Sender<Vec<String>>),
    /// Stop the node (closes its sockets and its log).
    Stop,
}

#[derive(Debug, Clone, Copy)]
struct Status {
    log_end_offset: i64,
    high_watermark: i64,
}

struct Node {
    inbox: Sender<Event>,
    thread: JoinHandle<Result<(), String>>,
    listener_stop: Arc<AtomicBool>,
    listener_thread: JoinHandle<()>,
}

struct ControllerState {
    inner: InMemoryController,
    /// Inboxes of the live nodes.
    live: BTreeMap<ReplicaId, Sender<Event>>,
}

/// The application's controller: an [`InMemoryController`] behind a lock, shared by the
/// nodes (who propose ISR changes) and the driver (who reports stopped brokers). The
/// condition variable wakes the driver when the partition state changes.
#[derive(Clone)]
struct LocalController(Arc<(Mutex<ControllerState>, Condvar)>);

impl LocalController {
    fn lock(&self) -> MutexGuard<'_, ControllerState> {
        self.0
             .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Tells every live node `partition`, and wakes whoever waits for a change.
    fn broadcast(&self, state: &ControllerState, partition: &PartitionState) {
        for inbox in state.live.values() {
            let _ = inbox.send(Event::State(partition.clone()));
        }
        self.0 .1.notify_all();
    }

    /// Waits (at most `DEADLINE`) until `done` holds of the partition state.
    fn wait_until(&self, done: impl Fn(&PartitionState) -> bool) -> bool {
        let guard = self.lock();
        let waited = self
            .0
             .1
            .wait_timeout_while(guard, DEADLINE, |st| !done(st.inner.state()));
        match waited {
            Ok((_, timeout)) => !timeout.timed_out(),
            Err(_) => false,
        }
    }
}

impl Controller for LocalController {
    fn alter_partition(&mut self, request: AlterPartition) {
        let mut st = self.lock();
        st.inner.alter_partition(request);
        for new_state in st.inner.apply_pending() {
            self.broadcast(&st, &new_state);
        }
        for (proposer, code) in st.inner.take_rejections() {
            if let Some(inbox) = st.live.get(&proposer) {
                let _ = inbox.send(Event::AlterPartitionError(code));
            }
        }
    }
}

struct Cluster {
    root: PathBuf,
    config: ReplicationConfig,
    addrs: BTreeMap<ReplicaId, SocketAddr>,
    listeners: BTreeMap<ReplicaId, TcpListener>,
    nodes: BTreeMap<ReplicaId, Node>,
    incarnations: BTreeMap<ReplicaId, i64>,
    controller: LocalController,
    clock: Instant,
}

impl Cluster {
    fn new(root: &Path, replicas: Vec<ReplicaId>, config: ReplicationConfig) -> io::Result<Self> {
        // Bind every listener first, so each node knows its peers' addresses.
        let mut addrs = BTreeMap::new();
        let mut listeners = BTreeMap::new();
        for id in &replicas {
            let listener = TcpListener::bind("127.0.0.1:0")?;
            addrs.insert(*id, listener.local_addr()?);
            listeners.insert(*id, listener);
        }
        let state = ControllerState {
            inner: InMemoryController::new(replicas, config.min_insync_replicas, false),
            live: BTreeMap::new(),
        };
        let controller = LocalController(Arc::new((Mutex::new(state), Condvar::new())));
        Ok(Cluster {
            root: root.to_path_buf(),
            config,
            addrs,
            listeners,
            nodes: BTreeMap::new(),
            incarnations: BTreeMap::new(),
            controller,
            clock: Instant::now(),
        })
    }

    fn state(&self) -> PartitionState {
        self.controller.lock().inner.state().clone()
    }

    fn leader(&self) -> ReplicaId {
        self.state().leader
    }

    fn live_ids(&self) -> Vec<ReplicaId> {
        self.nodes.keys().copied().collect()
    }

    /// Tells every live node the current partition state.
    fn publish_state(&self) {
        let st = self.controller.lock();
        let partition = st.inner.state().clone();
        self.controller.broadcast(&st, &partition);
    }

    /// Starts replica `id` on `<root>/replica-<id>/orders-0`, listening where it did before.
    fn start(&mut self, id: ReplicaId) -> Result<(), BoxError> {
        let listener = match self.listeners.remove(&id) {
            Some(l) => l,
            None => TcpListener::bind(self.addrs[&id])?,
        };
        let incarnation = self.incarnations.entry(id).or_insert(0);
        *incarnation += 1;
        let dir = self.root.join(format!("replica-{id}")).join("orders-0");
        let config = LogConfig::builder()
            .high_watermark_policy(HighWatermarkPolicy::Replicated)
            .build()?;
        let log = Arc::new(Log::open(&dir, config)?);
        let replica = Replica::new(id, *incarnation, log, self.config.clone(), self.now())?;

        let (inbox, events) = mpsc::channel();
        let listener_stop = Arc::new(AtomicBool::new(false));
        let listener_thread = spawn_listener(listener, inbox.clone(), listener_stop.clone());
        let peers = self
            .addrs
            .iter()
            .filter(|(p, _)| **p != id)
            .map(|(p, a)| (*p, *a))
            .collect();
        let controller = self.controller.clone();
        let clock = self.clock;
        let thread = std::thread::Builder::new()
            .name(format!("replica-{id}"))
            .spawn(move || {
                node_loop(replica, events, peers, controller, clock).map_err(|e| e.to_string())
            })?;
        self.controller.lock().live.insert(id, inbox.clone());
        self.nodes.insert(
            id,
            Node {
                inbox,
                thread,
                listener_stop,
                listener_thread,
            },
        );
        Ok(())
    }

    /// Stops replica `id`: its thread ends, its sockets close, its log closes.
    fn stop(&mut self, id: ReplicaId) -> Result<(), BoxError> {
        self.controller.lock().live.remove(&id);
        let node = self.nodes.remove(&id).ok_or("no such node")?;
        let _ = node.inbox.send(Event::Stop);
        node.listener_stop.store(true, Ordering::SeqCst);
        // Wake the blocked accept() so the listener thread sees the flag.
        let _ = TcpStream::connect_timeout(&self.addrs[&id], SOCKET_TIMEOUT);
        node.listener_thread
            .join()
            .map_err(|_| "listener panicked")?;
        node.thread.join().map_err(|_| "node panicked")??;
        Ok(())
    }

    /// The controller learns that `id` went away (its broker session expired): it leaves
    /// the ISR and, if it led, a new leader is elected from the ISR. Returns the leader.
    fn fence(&mut self, id: ReplicaId) -> ReplicaId {
        let mut st = self.controller.lock();
        let live: Vec<ReplicaId> = st.live.keys().copied().collect();
        let state = st.inner.fence_replica(id, |r| live.contains(&r));
        self.controller.broadcast(&st, &state);
        state.leader
    }

    fn send(&self, id: ReplicaId, event: Event) -> Result<(), BoxError> {
        let node = self.nodes.get(&id).ok_or("no such node")?;
        node.inbox.send(event).map_err(|_| "node stopped")?;
        Ok(())
    }

    fn now(&self) -> i64 {
        self.clock.elapsed().as_millis() as i64
    }

    fn wait_high_watermark(&self, id: ReplicaId, at_least: i64) -> Result<Status, BoxError> {
        let (tx, rx) = mpsc::channel();
        self.send(id, Event::WaitHighWatermark(at_least, tx))?;
        rx.recv_timeout(DEADLINE)
            .map_err(|_| format!("replica {id}'s high watermark did not reach {at_least}").into())
    }

    fn status(&self, id: ReplicaId) -> Result<Status, BoxError> {
        self.wait_high_watermark(id, i64::MIN)
    }

    fn committed_values(&self, id: ReplicaId) -> Result<Vec<String>, BoxError> {
        let (tx, rx) = mpsc::channel();
        self.send(id, Event::ReadCommitted(tx))?;
        rx.recv_timeout(DEADLINE)
            .map_err(|_| format!("replica {id} did not answer").into())
    }

    /// Waits (bounded) until the controller's ISR holds `id` again.
    fn wait_for_isr(&self, id: ReplicaId) -> Result<(), BoxError> {
        if self.controller.wait_until(|s| s.isr.contains(&id)) {
            Ok(())
        } else {
            Err(format!("replica {id} did not rejoin the ISR within {DEADLINE:?}").into())
        }
    }

    /// One line: every live replica's log end offset and high watermark.
    fn describe(&self) -> Result<String, BoxError> {
        let mut parts = Vec::new();
        for id in self.live_ids() {
            let s = self.status(id)?;
            parts.push(format!(
                "replica {id}: LEO {} HW {}",
                s.log_end_offset, s.high_watermark
            ));
        }
        Ok(parts.join(", "))
    }

    fn shutdown(mut self) -> Result<(), BoxError> {
        for id in self.live_ids() {
            self.stop(id)?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// A node: the loop around one Replica.

fn node_loop(
    mut replica: Replica,
    events: Receiver<Event>,
    peers: BTreeMap<ReplicaId, SocketAddr>,
    mut controller: LocalController,
    clock: Instant,
) -> Result<(), BoxError> {
    let now = || clock.elapsed().as_millis() as i64;
    let mut transport = TcpTransport::new(replica.id(), peers);
    let mut produces: HashMap<ProduceId, Sender<KafkaCode>> = HashMap::new();
    let mut waiters: Vec<(i64, Sender<Status>)> = Vec::new();
    loop {
        match events.recv_timeout(Duration::from_millis(10)) {
            Ok(Event::Message(envelope)) => {
                replica.on_message(envelope.from, envelope.message, now())?
            }
            Ok(Event::State(state)) => replica.on_partition_state(state, now())?,
            Ok(Event::AlterPartitionError(code)) => replica.on_alter_partition_error(code, now()),
            Ok(Event::Produce(batch, reply)) => match replica.append(&batch, Acks::All, now())? {
                ProduceOutcome::Pending { id, .. } => {
                    produces.insert(id, reply);
                }
                ProduceOutcome::Rejected(code) => {
                    let _ = reply.send(code);
                }
                _ => {
                    let _ = reply.send(KafkaCode::NONE);
                }
            },
            Ok(Event::WaitHighWatermark(at_least, reply)) => waiters.push((at_least, reply)),
            Ok(Event::ReadCommitted(reply)) => {
                let log = replica.log();
                let mut values = Vec::new();
                let mut records = log.records_between(0, Some(log.high_watermark()));
                while let Some(record) = records.next_record() {
                    let record = record?;
                    values.push(String::from_utf8_lossy(record.value.unwrap_or(b"")).into());
                }
                let _ = reply.send(values);
            }
            Ok(Event::Stop) | Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {}
        }
        replica.tick(now())?;
        for output in replica.dispatch(&mut transport, &mut controller) {
            match output {
                Output::ProduceCompleted(done) => {
                    if let Some(reply) = produces.remove(&done.id) {
                        let _ = reply.send(done.error);
                    }
                }
                Output::UncleanTruncation { .. } => {
                    eprintln!("replica {}: {output:?}", replica.id())
                }
                _ => {}
            }
        }
        let status = Status {
            log_end_offset: replica.log().log_end_offset(),
            high_watermark: replica.log().high_watermark(),
        };
        waiters.retain(|(at_least, reply)| {
            if status.high_watermark >= *at_least {
                let _ = reply.send(status);
                false
            } else {
                true
            }
        });
    }
    // Dropping the transport ends the writer threads, which close their sockets.
    drop(transport);
    replica.log().close()?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The transport: framed messages over TCP.

/// Sends each envelope to a writer thread per peer, which connects (again) when needed and
/// drops what it cannot deliver.
struct TcpTransport {
    writers: BTreeMap<ReplicaId, Sender<Envelope>>,
}

impl TcpTransport {
    fn new(me: ReplicaId, peers: BTreeMap<ReplicaId, SocketAddr>) -> Self {
        let writers = peers
            .into_iter()
            .map(|(peer, addr)| {
                let (tx, rx) = mpsc::channel::<Envelope>();
                std::thread::Builder::new()
                    .name(format!("replica-{me}-to-{peer}"))
                    .spawn(move || writer_loop(addr, rx))
                    .map(|_| (peer, tx))
            })
            .filter_map(Result::ok)
            .collect();
        TcpTransport { writers }
    }
}

impl Transport for TcpTransport {
    fn send(&mut self, envelope: Envelope) {
        if let Some(w) = self.writers.get(&envelope.to) {
            let _ = w.send(envelope);
        }
    }
}

fn writer_loop(addr: SocketAddr, envelopes: Receiver<Envelope>) {
    let mut stream: Option<BufWriter<TcpStream>> = None;
    let mut frame = Vec::new();
    while let Ok(envelope) = envelopes.recv() {
        frame.clear();
        encode(&envelope, &mut frame);
        if stream.is_none() {
            stream = TcpStream::connect_timeout(&addr, SOCKET_TIMEOUT)
                .and_then(|s| {
                    s.set_write_timeout(Some(SOCKET_TIMEOUT))?;
                    s.set_nodelay(true)?;
                    Ok(BufWriter::new(s))
                })
                .ok();
        }
        let Some(s) = stream.as_mut() else {
            continue; // the peer is down: the message is lost
        };
        if s.write_all(&frame).and_then(|_| s.flush()).is_err() {
            stream = None;
        }
    }
}

/// Accepts connections and starts a reader thread for each, until `stop` is set.
fn spawn_listener(
    listener: TcpListener,
    inbox: Sender<Event>,
    stop: Arc<AtomicBool>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut readers: Vec<(TcpStream, JoinHandle<()>)> = Vec::new();
        for conn in listener.incoming() {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            let Ok(conn) = conn else { continue };
            let (Ok(handle), Ok(())) = (
                conn.try_clone(),
                conn.set_read_timeout(Some(SOCKET_TIMEOUT)),
            ) else {
                continue;
            };
            let inbox = inbox.clone();
            let stop = stop.clone();
            let thread = std::thread::spawn(move || reader_loop(conn, inbox, stop));
            readers.push((handle, thread));
        }
        // A stopped node closes its connections: the readers' reads fail and they end.
        for (conn, thread) in readers {
            let _ = conn.shutdown(Shutdown::Both);
            let _ = thread.join();
        }
    })
}

fn reader_loop(conn: TcpStream, inbox: Sender<Event>, stop: Arc<AtomicBool>) {
    let mut conn = BufReader::new(conn);
    loop {
        match read_frame(&mut conn) {
            Ok(envelope) => {
                if inbox.send(Event::Message(envelope)).is_err() {
                    return;
                }
            }
            // An idle connection: keep it unless the node stopped.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
            }
            Err(_) => return,
        }
    }
}

// ---------------------------------------------------------------------------------------
// The wire format of the example (any encoding works; the core never sees bytes of it).

fn encode(e: &Envelope, out: &mut Vec<u8>) {
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&e.from.to_be_bytes());
    out.extend_from_slice(&e.to.to_be_bytes());
    match &e.message {
        Message::Fetch(r) => {
            out.push(0);
            out.extend_from_slice(&r.correlation_id.to_be_bytes());
            out.extend_from_slice(&r.replica_id.to_be_bytes());
            out.extend_from_slice(&r.replica_epoch.to_be_bytes());
            out.extend_from_slice(&r.current_leader_epoch.to_be_bytes());
            out.extend_from_slice(&r.fetch_offset.to_be_bytes());
            out.extend_from_slice(&r.last_fetched_epoch.unwrap_or(-1).to_be_bytes());
            out.extend_from_slice(&r.log_start_offset.to_be_bytes());
            out.extend_from_slice(&(r.max_bytes as u64).to_be_bytes());
        }
        Message::FetchResponse(r) => {
            out.push(1);
            out.extend_from_slice(&r.correlation_id.to_be_bytes());
            out.extend_from_slice(&r.error.code().to_be_bytes());
            out.extend_from_slice(&r.leader_epoch.to_be_bytes());
            out.extend_from_slice(&r.high_watermark.to_be_bytes());
            out.extend_from_slice(&r.log_start_offset.to_be_bytes());
            out.extend_from_slice(&r.log_end_offset.to_be_bytes());
            let d = r.diverging_epoch;
            out.push(u8::from(d.is_some()));
            let d = d.unwrap_or(EpochEndOffset::UNDEFINED);
            out.extend_from_slice(&d.epoch.to_be_bytes());
            out.extend_from_slice(&d.end_offset.to_be_bytes());
            out.extend_from_slice(&(r.records.len() as u32).to_be_bytes());
            out.extend_from_slice(&r.records);
        }
        Message::OffsetsForLeaderEpoch(r) => {
            out.push(2);
            out.extend_from_slice(&r.correlation_id.to_be_bytes());
            out.extend_from_slice(&r.replica_id.to_be_bytes());
            out.extend_from_slice(&r.current_leader_epoch.to_be_bytes());
            out.extend_from_slice(&r.leader_epoch.to_be_bytes());
        }
        Message::OffsetsForLeaderEpochResponse(r) => {
            out.push(3);
            out.extend_from_slice(&r.correlation_id.to_be_bytes());
            out.extend_from_slice(&r.error.code().to_be_bytes());
            out.extend_from_slice(&r.end_offset.epoch.to_be_bytes());
            out.extend_from_slice(&r.end_offset.end_offset.to_be_bytes());
        }
        // A message kind this example does not know is sent as an empty frame and skipped.
        _ => out.push(255),
    }
    let len = (out.len() - 4) as u32;
    out[..4].copy_from_slice(&len.to_be_bytes());
}

fn read_frame(r: &mut impl Read) -> io::Result<Envelope> {
    let mut len = [0; 4];
    r.read_exact(&mut len)?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "frame too large",
        ));
    }
    let mut buf = vec![0; len];
    r.read_exact(&mut buf)?;
    decode(&buf).ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad frame"))
}

/// Reads big-endian fields off a frame; `None` when it is too short.
struct Fields<'a>(&'a [u8]);

impl Fields<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take().map(u8::from_be_bytes)
    }
    fn i16(&mut self) -> Option<i16> {
        self.take().map(i16::from_be_bytes)
    }
    fn i32(&mut self) -> Option<i32> {
        self.take().map(i32::from_be_bytes)
    }
    fn i64(&mut self) -> Option<i64> {
        self.take().map(i64::from_be_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take().map(u64::from_be_bytes)
    }
    fn bytes(&mut self) -> Option<Vec<u8>> {
        let len = u32::from_be_bytes(self.take()?) as usize;
        let (head, rest) = self.0.split_at_checked(len)?;
        self.0 = rest;
        Some(head.to_vec())
    }
}

fn decode(buf: &[u8]) -> Option<Envelope> {
    let mut f = Fields(buf);
    let from = f.i32()?;
    let to = f.i32()?;
    let message = match f.u8()? {
        0 => Message::Fetch(FetchRequest {
            correlation_id: f.u64()?,
            replica_id: f.i32()?,
            replica_epoch: f.i64()?,
            current_leader_epoch: f.i32()?,
            fetch_offset: f.i64()?,
            last_fetched_epoch: Some(f.i32()?).filter(|e| *e >= 0),
            log_start_offset: f.i64()?,
            max_bytes: usize::try_from(f.u64()?).ok()?,
        }),
        1 => Message::FetchResponse(FetchResponse {
            correlation_id: f.u64()?,
            error: KafkaCode::from_i16(f.i16()?),
            leader_epoch: f.i32()?,
            high_watermark: f.i64()?,
            log_start_offset: f.i64()?,
            log_end_offset: f.i64()?,
            diverging_epoch: {
                let present = f.u8()? == 1;
                let d = EpochEndOffset {
                    epoch: f.i32()?,
                    end_offset: f.i64()?,
                };
                present.then_some(d)
            },
            records: f.bytes()?,
        }),
        2 => Message::OffsetsForLeaderEpoch(OffsetsForLeaderEpochRequest {
            correlation_id: f.u64()?,
            replica_id: f.i32()?,
            current_leader_epoch: f.i32()?,
            leader_epoch: f.i32()?,
        }),
        3 => Message::OffsetsForLeaderEpochResponse(OffsetsForLeaderEpochResponse {
            correlation_id: f.u64()?,
            error: KafkaCode::from_i16(f.i16()?),
            end_offset: EpochEndOffset {
                epoch: f.i32()?,
                end_offset: f.i64()?,
            },
        }),
        _ => return None,
    };
    Some(Envelope { from, to, message })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The whole run, bounded: every wait in it has a deadline and every socket a timeout.
    #[test]
    fn three_replicas_fail_over_without_losing_acknowledged_records() {
        let dir = tempfile::tempdir().unwrap();
        let report = run(dir.path(), 3, false).unwrap();
        assert_eq!(report.acknowledged, 3 * 2 * 4);
        assert_ne!(report.leaders.0, report.leaders.1);
    }

    #[test]
    fn frames_round_trip() {
        let messages = [
            Message::Fetch(FetchRequest {
                correlation_id: 7,
                replica_id: 1,
                replica_epoch: 3,
                current_leader_epoch: 2,
                fetch_offset: 40,
                last_fetched_epoch: Some(2),
                log_start_offset: 0,
                max_bytes: 1 << 20,
            }),
            Message::FetchResponse(FetchResponse {
                correlation_id: 7,
                error: KafkaCode::OFFSET_OUT_OF_RANGE,
                leader_epoch: 2,
                high_watermark: 10,
                log_start_offset: 0,
                log_end_offset: 12,
                diverging_epoch: Some(EpochEndOffset {
                    epoch: 1,
                    end_offset: 9,
                }),
                records: vec![1, 2, 3],
            }),
        ];
        for message in messages {
            let e = Envelope {
                from: 1,
                to: 2,
                message,
            };
            let mut frame = Vec::new();
            encode(&e, &mut frame);
            assert_eq!(read_frame(&mut &frame[..]).unwrap(), e);
            // Cut anywhere: an error, never a panic.
            for cut in 0..frame.len() {
                assert!(read_frame(&mut &frame[..cut]).is_err());
            }
        }
    }
}
