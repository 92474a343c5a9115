//! The deterministic simulation of replication: three replicas of one partition, each on its
//! own `SimFs` disk, an in-memory network that loses, duplicates, reorders and delays
//! messages and is cut into partitions, a controller that fences crashed replicas and
//! elects leaders from the ISR (or the ELR), producers writing `acks=all`, a consumer
//! reading below the high watermark, and a nemesis that crashes replicas (power loss in the
//! fsync mode, a process crash otherwise), cuts links, fails fsyncs, pauses replicas (a
//! paused replica processes nothing; a long pause ends its broker session and the controller
//! fences it; it resumes with the state it had and the messages and partition states that
//! queued meanwhile), slows disks (every fsync holds the replica back for a while), and
//! deletes the leader's records below its high watermark (DeleteRecords, so followers far
//! behind start over at the leader's log start). Some producers write to whichever replica
//! believes it leads (stale metadata). One seed drives all of it; the invariants are checked
//! as it runs:
//!
//! - no record acknowledged to an `acks=all` producer is lost or changed;
//! - no record a consumer read below the high watermark changes or vanishes;
//! - at most one leader per leader epoch;
//! - a replica's high watermark never goes back within one process lifetime, and in the
//!   fsync mode never passes what an ISR member has flushed;
//! - everything below the leader's high watermark is identical on every live ISR member;
//! - after the faults stop: one leader, the full ISR, HW = LEO everywhere, every produce
//!   answered.
//!
//! With unclean leader election switched on (an explicit opt-in, its own test), a leader may
//! be elected from outside the ISR and ELR; the acknowledged records at and above its high
//! watermark are then given up, and every follower's `UncleanTruncation` report must lie
//! within what the election gave up; the other invariants still hold.
//!
//! `STREAMLOG_SIM_SEED=N` replays seed N (printing its trace); `STREAMLOG_SIM_SEEDS=N` runs
//! N seeds (default 200; 60 for the unclean runs). A trace hash shows a seed always runs the
//! same.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use streamlog::io::SimFs;
use streamlog::io::{SimError, SimOp};
use streamlog::log::LogOptions;
use streamlog::replication::{
    Acks, InMemoryController, InMemoryNetwork, Output, PartitionState, ProduceId, ProduceOutcome,
    Replica, ReplicaDurability, ReplicaId, ReplicationConfig, Role, Transport, NO_LEADER,
};
use streamlog::{BatchBuilder, BatchOptions, HighWatermarkPolicy, KafkaCode, Log, LogConfig};

use crate::common::rng::Rng;

const REPLICAS: i32 = 3;
const FAULT_STEPS: u64 = 600;
const CALM_MS: i64 = 1_000;
/// Invariants are checked every this many steps (and at the end).
const CHECK_EVERY: u64 = 16;
const DIR: &str = "/data/t-0";

fn log_config() -> LogConfig {
    LogConfig::builder()
        .segment_bytes(2_048)
        .segment_index_bytes(4_096)
        .high_watermark_policy(HighWatermarkPolicy::Replicated)
        .build()
        .unwrap()
}

fn repl_config(durability: ReplicaDurability, unclean: bool) -> ReplicationConfig {
    ReplicationConfig {
        replica_lag_time_max_ms: 150,
        min_insync_replicas: 2,
        replica_fetch_max_bytes: 1_024,
        replica_fetch_wait_max_ms: 20,
        replica_fetch_backoff_ms: 15,
        replica_socket_timeout_ms: 60,
        request_timeout_ms: 400,
        durability,
        unclean_leader_election_enable: unclean,
    }
}

struct Node {
    fs: SimFs,
    /// `None` while crashed.
    replica: Option<Replica>,
    incarnation: i64,
    restart_at: i64,
    /// The highest high watermark seen in this incarnation.
    high_watermark: i64,
    /// Paused (processes nothing) until then.
    paused_until: i64,
    /// Its broker session ended during the pause: the controller fenced it.
    fenced: bool,
    /// Partition states sent while it was paused, and when it takes them after resuming
    /// (meanwhile it runs on the state it had).
    deferred: Vec<PartitionState>,
    deferred_at: i64,
    /// A slow disk until then: each fsync holds the replica back `disk_latency_ms`.
    slow_until: i64,
    disk_latency_ms: i64,
    /// Busy with its slow disk until then.
    busy_until: i64,
    /// Its disk's fsyncs counted so far.
    syncs_seen: u64,
}

impl Node {
    fn new(fs: SimFs, replica: Option<Replica>) -> Node {
        Node {
            syncs_seen: fs.sync_count(),
            fs,
            replica,
            incarnation: 1,
            restart_at: 0,
            high_watermark: 0,
            paused_until: 0,
            fenced: false,
            deferred: Vec::new(),
            deferred_at: 0,
            slow_until: 0,
            disk_latency_ms: 0,
            busy_until: 0,
        }
    }

    /// Alive and neither paused nor busy with its disk.
    fn runs(&self, now: i64) -> bool {
        self.replica.is_some() && now >= self.paused_until && now >= self.busy_until
    }
}

struct Sim {
    seed: u64,
    rng: Rng,
    now: i64,
    durability: ReplicaDurability,
    unclean: bool,
    nodes: Vec<Node>,
    network: InMemoryNetwork,
    controller: InMemoryController,
    /// acks=all produces waiting: the leader, its produce id, the value.
    pending: BTreeMap<(ReplicaId, i64, ProduceId), Vec<u8>>,
    /// Records acknowledged to acks=all producers.
    acked: BTreeMap<i64, Vec<u8>>,
    /// Records a consumer read below a leader's high watermark.
    consumed: BTreeMap<i64, Vec<u8>>,
    leaders: BTreeMap<i32, ReplicaId>,
    /// The highest offset DeleteRecords moved a leader's log start to.
    deleted_below: i64,
    /// The latest partition state broadcast.
    last_state: PartitionState,
    /// Offsets at and above this were given up by an unclean election (`i64::MAX`: none).
    given_up_from: i64,
    /// Acknowledged records an unclean election gave up.
    given_up: BTreeMap<i64, Vec<u8>>,
    stats: Stats,
    next_value: u64,
    steps: u64,
    trace: Vec<String>,
    hash: u64,
    verbose: bool,
}

/// What the faults reached, summed over seeds to show each fault path runs.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Stats {
    pauses: u64,
    fenced_pauses: u64,
    slow_disks: u64,
    delete_records: u64,
    /// Followers that emptied their log and restarted at the leader's log start.
    restarted_at_leader_start: u64,
    stale_leader_produces: u64,
    unclean_elections: u64,
    unclean_truncations: u64,
}

impl std::ops::AddAssign for Stats {
    fn add_assign(&mut self, o: Stats) {
        self.pauses += o.pauses;
        self.fenced_pauses += o.fenced_pauses;
        self.slow_disks += o.slow_disks;
        self.delete_records += o.delete_records;
        self.restarted_at_leader_start += o.restarted_at_leader_start;
        self.stale_leader_produces += o.stale_leader_produces;
        self.unclean_elections += o.unclean_elections;
        self.unclean_truncations += o.unclean_truncations;
    }
}

fn batch(value: &[u8]) -> Vec<u8> {
    let mut b = BatchBuilder::new(BatchOptions::default());
    b.append(0, None, Some(value), &[]).unwrap();
    b.build().unwrap()
}

fn open(fs: &SimFs) -> streamlog::Result<Arc<Log>> {
    let (log, _) = LogOptions::new(log_config())
        .create(true)
        .fs(Arc::new(fs.clone()))
        .open(DIR)?;
    Ok(Arc::new(log))
}

/// (offset, value) of every record in `log` below `upper`.
fn records(log: &Log, upper: i64) -> Vec<(i64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut it = log.records_between(log.log_start_offset(), Some(upper));
    while let Some(r) = it.next_record() {
        let r = r.unwrap();
        out.push((r.offset, r.value.unwrap_or_default().to_vec()));
    }
    out
}

impl Sim {
    fn new(seed: u64, verbose: bool, unclean: bool) -> Sim {
        let mut rng = Rng(seed);
        let durability = if rng.chance(50) {
            ReplicaDurability::Flushed
        } else {
            ReplicaDurability::LogEnd
        };
        let config = repl_config(durability, unclean);
        let nodes = (0..REPLICAS)
            .map(|i| {
                let fs = SimFs::new(seed.wrapping_mul(31).wrapping_add(i as u64));
                let replica = Replica::new(i, 1, open(&fs).unwrap(), config.clone(), 0).unwrap();
                Node::new(fs, Some(replica))
            })
            .collect();
        let controller = InMemoryController::new((0..REPLICAS).collect(), 2, unclean);
        let last_state = controller.state().clone();
        let mut sim = Sim {
            seed,
            rng,
            now: 0,
            durability,
            unclean,
            nodes,
            network: InMemoryNetwork::new(),
            controller,
            pending: BTreeMap::new(),
            acked: BTreeMap::new(),
            consumed: BTreeMap::new(),
            leaders: BTreeMap::new(),
            deleted_below: 0,
            last_state,
            given_up_from: i64::MAX,
            given_up: BTreeMap::new(),
            stats: Stats::default(),
            next_value: 0,
            steps: 0,
            trace: Vec::new(),
            hash: 0xcbf2_9ce4_8422_2325,
            verbose,
        };
        sim.event(format!("start durability={durability:?} unclean={unclean}"));
        let state = sim.controller.state().clone();
        sim.broadcast(state);
        sim
    }

    fn event(&mut self, e: String) {
        for b in e.bytes() {
            self.hash = (self.hash ^ b as u64).wrapping_mul(0x100_0000_01b3);
        }
        if self.verbose {
            eprintln!("[{:>6}] {e}", self.now);
        }
        self.trace.push(e);
        if self.trace.len() > 200 {
            self.trace.remove(0);
        }
    }

    /// The replicas the controller counts as alive: running, or paused within their session.
    fn alive(&self) -> BTreeSet<ReplicaId> {
        (0..REPLICAS)
            .filter(|i| {
                let n = &self.nodes[*i as usize];
                n.replica.is_some() && !n.fenced
            })
            .collect()
    }

    /// Charges replica `i` for the fsyncs its last step ran on a slow disk.
    fn charge_disk(&mut self, i: ReplicaId) {
        let now = self.now;
        let node = &mut self.nodes[i as usize];
        let syncs = node.fs.sync_count();
        let new = syncs.saturating_sub(node.syncs_seen);
        node.syncs_seen = syncs;
        if now < node.slow_until && new > 0 {
            node.busy_until = node.busy_until.max(now) + new as i64 * node.disk_latency_ms;
        }
    }

    fn broadcast(&mut self, state: PartitionState) {
        self.event(format!(
            "state leader={} epoch={} pe={} isr={:?} elr={:?}",
            state.leader, state.leader_epoch, state.partition_epoch, state.isr, state.elr
        ));
        for i in 0..REPLICAS {
            let now = self.now;
            let node = &mut self.nodes[i as usize];
            if node.paused_until != 0 {
                node.deferred.push(state.clone());
                continue;
            }
            if let Some(r) = node.replica.as_mut() {
                if let Err(e) = r.on_partition_state(state.clone(), now) {
                    self.crash(i, &format!("log error {e}"));
                    continue;
                }
                self.charge_disk(i);
            }
        }
    }

    /// After every controller call that may elect: a new leader from outside the ISR and
    /// ELR of the state before is an unclean election.
    fn note_election(&mut self) {
        let state = self.controller.state().clone();
        let prev = std::mem::replace(&mut self.last_state, state.clone());
        if state.leader != NO_LEADER
            && state.leader_epoch > prev.leader_epoch
            && !prev.isr.contains(&state.leader)
            && !prev.elr.contains(&state.leader)
        {
            self.unclean_election(state.leader);
        }
    }

    /// A leader from outside the ISR and ELR (only with the opt-in): the acknowledged and
    /// consumed records at and above its high watermark are given up.
    fn unclean_election(&mut self, leader: ReplicaId) {
        assert!(
            self.unclean,
            "seed {}: leader {leader} elected from outside the ISR and ELR without the opt-in",
            self.seed
        );
        let hw = self.nodes[leader as usize]
            .replica
            .as_ref()
            .map_or(0, |r| r.log().high_watermark());
        // Below its high watermark its log is a committed history, but after an earlier
        // unclean election perhaps one given up then (seed 416 of the unclean run).
        let hw = hw.min(self.given_up_from);
        self.given_up_from = hw;
        let lost = self.acked.split_off(&hw);
        self.consumed.split_off(&hw);
        self.event(format!(
            "unclean election of {leader}: gives up offsets from {hw} ({} acknowledged)",
            lost.len()
        ));
        self.given_up.extend(lost);
        self.stats.unclean_elections += 1;
    }

    /// The controller notices a dead replica at once (its broker session ends).
    fn crash(&mut self, i: ReplicaId, why: &str) {
        let node = &mut self.nodes[i as usize];
        let Some(replica) = node.replica.take() else {
            return;
        };
        // Nothing closes: no flush, no checkpoint, as a crash leaves it.
        if let Ok(log) = Arc::try_unwrap(replica.into_log()) {
            log.abandon();
        }
        node.fs = match self.durability {
            // Power loss: whatever was not flushed may be gone.
            ReplicaDurability::Flushed => node.fs.crash(),
            // A process crash: the page cache survives.
            _ => node.fs.clone(),
        };
        node.fs.clear_faults();
        node.paused_until = 0;
        node.deferred_at = 0;
        node.fenced = false;
        node.deferred.clear();
        node.busy_until = 0;
        node.slow_until = 0;
        node.restart_at = self.now + self.rng.range(20, 300);
        self.network.drop_messages_of(i);
        // Its clients' acks=all produces are never answered (they time out).
        let incarnation = node.incarnation;
        self.pending
            .retain(|(l, inc, _), _| (*l, *inc) != (i, incarnation));
        self.event(format!("crash {i} ({why})"));
        let alive = self.alive();
        let state = self.controller.fence_replica(i, |r| alive.contains(&r));
        self.note_election();
        self.broadcast(state);
    }

    fn restart(&mut self, i: ReplicaId) {
        let node = &mut self.nodes[i as usize];
        node.incarnation += 1;
        let log = match open(&node.fs) {
            Ok(log) => log,
            // An injected fault fired during recovery: the replica stays down a while more
            // (the fault is cleared; the next open tries again).
            Err(e) => {
                node.fs.clear_faults();
                node.restart_at = self.now + 50;
                self.event(format!("reopen of {i} failed: {e}"));
                return;
            }
        };
        let config = repl_config(self.durability, self.unclean);
        node.replica = Some(Replica::new(i, node.incarnation, log, config, self.now).unwrap());
        node.high_watermark = 0;
        node.syncs_seen = node.fs.sync_count();
        self.event(format!("restart {i}"));
        let mut state = self.controller.state().clone();
        if state.leader == NO_LEADER {
            let alive = self.alive();
            if let Ok(s) = self.controller.elect_leader(|r| alive.contains(&r)) {
                state = s;
            }
            self.note_election();
        }
        // The restarted replica learns the state (others already know it).
        self.event(format!("tell {i} leader={}", state.leader));
        if let Some(r) = self.nodes[i as usize].replica.as_mut() {
            if let Err(e) = r.on_partition_state(state.clone(), self.now) {
                self.crash(i, &format!("log error {e}"));
                return;
            }
        }
        self.broadcast(state);
    }

    fn collect(&mut self, i: ReplicaId) {
        let Some(r) = self.nodes[i as usize].replica.as_mut() else {
            return;
        };
        let outputs = r.dispatch(self.network.transport(), &mut self.controller);
        for out in outputs {
            match out {
                Output::ProduceCompleted(c) => {
                    let key = (i, self.nodes[i as usize].incarnation, c.id);
                    let value = self
                        .pending
                        .remove(&key)
                        .expect("completion of a known produce");
                    self.event(format!(
                        "produce {:?} at {} -> {:?}",
                        String::from_utf8_lossy(&value),
                        c.base_offset,
                        c.error
                    ));
                    if c.error == KafkaCode::NONE {
                        self.ack(c.base_offset, value);
                    }
                }
                Output::UncleanTruncation {
                    high_watermark,
                    truncated_to,
                    log_end_offset,
                } => {
                    self.event(format!(
                        "{i} unclean truncation to {truncated_to} (HW {high_watermark}, LEO {log_end_offset})"
                    ));
                    assert!(
                        self.unclean,
                        "seed {}: unclean truncation without the opt-in",
                        self.seed
                    );
                    // What it gives up was given up by an unclean election.
                    assert!(
                        truncated_to >= self.given_up_from,
                        "seed {}: {i} gave up offsets from {truncated_to}, the elections only from {}",
                        self.seed,
                        self.given_up_from
                    );
                    // Its high watermark went back with the cut.
                    self.nodes[i as usize].high_watermark = truncated_to;
                    self.stats.unclean_truncations += 1;
                }
                other => panic!("seed {}: unexpected output {other:?}", self.seed),
            }
        }
    }

    fn ack(&mut self, offset: i64, value: Vec<u8>) {
        if let Some(old) = self.acked.insert(offset, value.clone()) {
            panic!(
                "seed {}: offset {offset} acknowledged twice ({:?} then {:?})",
                self.seed,
                String::from_utf8_lossy(&old),
                String::from_utf8_lossy(&value)
            );
        }
    }

    fn leader(&self) -> Option<ReplicaId> {
        let l = self.controller.state().leader;
        (l != NO_LEADER && self.nodes[l as usize].replica.is_some()).then_some(l)
    }

    fn produce(&mut self) {
        let Some(mut l) = self.leader() else {
            return;
        };
        if self.rng.chance(5) {
            // A producer with stale metadata writes to whichever replica believes it leads.
            let believers: Vec<ReplicaId> = (0..REPLICAS)
                .filter(|i| {
                    self.nodes[*i as usize]
                        .replica
                        .as_ref()
                        .is_some_and(|r| matches!(r.role(), Role::Leader { .. }))
                })
                .collect();
            if let Some(b) = believers.get(self.rng.below(believers.len().max(1) as u64) as usize) {
                if *b != l {
                    self.stats.stale_leader_produces += 1;
                }
                l = *b;
            }
        }
        if !self.nodes[l as usize].runs(self.now) {
            return; // the producer's request waits on a paused or busy broker
        }
        let value = format!("v{}", self.next_value).into_bytes();
        self.next_value += 1;
        let now = self.now;
        let incarnation = self.nodes[l as usize].incarnation;
        let r = self.nodes[l as usize].replica.as_mut().unwrap();
        match r.append(&batch(&value), Acks::All, now) {
            Ok(ProduceOutcome::Pending {
                id, base_offset, ..
            }) => {
                self.event(format!(
                    "append {} at {base_offset}",
                    String::from_utf8_lossy(&value)
                ));
                self.pending.insert((l, incarnation, id), value);
            }
            Ok(ProduceOutcome::Completed { base_offset, .. }) => {
                self.event(format!(
                    "append {} at {base_offset} done",
                    String::from_utf8_lossy(&value)
                ));
                self.ack(base_offset, value);
            }
            Ok(other) => self.event(format!("append refused {other:?}")),
            Err(e) => self.crash(l, &format!("append error {e}")),
        }
        self.charge_disk(l);
        self.collect(l);
    }

    /// A consumer reads the leader's log below its high watermark.
    fn consume(&mut self) {
        let Some(l) = self.leader() else {
            return;
        };
        let log = self.nodes[l as usize]
            .replica
            .as_ref()
            .unwrap()
            .log()
            .clone();
        let hw = log.high_watermark();
        for (offset, value) in records(&log, hw) {
            match self.consumed.get(&offset) {
                Some(v) if *v != value => panic!(
                    "seed {}: offset {offset} read as {:?} then {:?}",
                    self.seed,
                    String::from_utf8_lossy(v),
                    String::from_utf8_lossy(&value)
                ),
                Some(_) => {}
                None => {
                    self.consumed.insert(offset, value);
                }
            }
        }
    }

    fn deliver(&mut self) {
        let n = self.network.in_flight();
        if n == 0 {
            return;
        }
        // Reordering: any message in flight may go next; some wait (delay).
        let index = self.rng.below(n as u64) as usize;
        let Some(envelope) = self.network.take(index) else {
            return;
        };
        if self.rng.chance(3) {
            self.event(format!("lose {}->{}", envelope.from, envelope.to));
            return;
        }
        if self.rng.chance(2) {
            // Duplicated: a copy stays in flight.
            Transport::send(&mut self.network.transport(), envelope.clone());
        }
        let to = envelope.to;
        let now = self.now;
        if self.nodes[to as usize].replica.is_some() && !self.nodes[to as usize].runs(now) {
            // Paused or busy: it waits in the socket buffer.
            Transport::send(&mut self.network.transport(), envelope);
            return;
        }
        let Some(r) = self.nodes[to as usize].replica.as_mut() else {
            return;
        };
        let start_before = r.log().log_start_offset();
        if let Err(e) = r.on_message(envelope.from, envelope.message, now) {
            self.crash(to, &format!("message error {e}"));
            return;
        }
        let start_after = r.log().log_start_offset();
        if start_after > start_before && !matches!(r.role(), Role::Leader { .. }) {
            self.stats.restarted_at_leader_start += 1;
            self.event(format!("{to} restarts its log at {start_after}"));
        }
        self.charge_disk(to);
        self.collect(to);
    }

    fn controller_step(&mut self) {
        let states = self.controller.apply_pending();
        self.note_election(); // ISR changes only; keeps the state compared with current
        for (leader, error) in self.controller.take_rejections() {
            self.event(format!("alter partition of {leader} refused {error:?}"));
            let now = self.now;
            let node = &mut self.nodes[leader as usize];
            if node.paused_until != 0 {
                continue; // a paused leader never hears the answer; it asks again later
            }
            if let Some(r) = node.replica.as_mut() {
                r.on_alter_partition_error(error, now);
            }
        }
        for s in states {
            self.broadcast(s);
        }
    }

    fn tick_all(&mut self) {
        for i in 0..REPLICAS {
            let now = self.now;
            if !self.nodes[i as usize].runs(now) {
                continue;
            }
            if let Some(r) = self.nodes[i as usize].replica.as_mut() {
                if let Err(e) = r.tick(now) {
                    self.crash(i, &format!("tick error {e}"));
                    continue;
                }
            }
            self.charge_disk(i);
            self.collect(i);
        }
    }

    fn nemesis(&mut self) {
        let crashes = if self.unclean { 19 } else { 9 };
        match self.rng.below(1_000) {
            n if n <= crashes => {
                let i = self.rng.below(REPLICAS as u64) as ReplicaId;
                self.crash(i, "nemesis");
            }
            10..=13 => {
                let a = self.rng.below(REPLICAS as u64) as ReplicaId;
                let b = (a + 1 + self.rng.below(REPLICAS as u64 - 1) as ReplicaId) % REPLICAS;
                self.network.set_link(a, b, false);
                self.event(format!("cut {a}-{b}"));
            }
            14..=21 => {
                self.network.heal();
                self.event("heal".into());
            }
            22 => {
                // A failing fsync poisons the log: the replica stops (and restarts).
                let i = self.rng.below(REPLICAS as u64) as usize;
                self.nodes[i].fs.fail_next(SimOp::Sync, None, SimError::Eio);
                self.event(format!("fsync of {i} will fail"));
            }
            23..=26 => self.pause(),
            27..=29 => {
                let i = self.rng.below(REPLICAS as u64) as usize;
                let latency = self.rng.range(2, 30);
                let until = self.now + self.rng.range(100, 600);
                let node = &mut self.nodes[i];
                node.disk_latency_ms = latency;
                node.slow_until = until;
                self.stats.slow_disks += 1;
                self.event(format!(
                    "disk of {i} slow: {latency} ms an fsync until {until}"
                ));
            }
            30..=34 => self.delete_records(),
            _ => {}
        }
    }

    /// Pauses a live replica (a long GC, a frozen VM): it processes nothing until it
    /// resumes. A pause longer than the broker session ends the session: the controller
    /// fences it at once, as it fences a crashed replica.
    fn pause(&mut self) {
        let i = self.rng.below(REPLICAS as u64) as ReplicaId;
        let now = self.now;
        let ms = self.rng.range(30, 400);
        let node = &mut self.nodes[i as usize];
        if node.replica.is_none() || node.paused_until != 0 {
            return;
        }
        node.paused_until = now + ms;
        self.stats.pauses += 1;
        self.event(format!("pause {i} for {ms} ms"));
        if ms > 200 {
            self.nodes[i as usize].fenced = true;
            self.stats.fenced_pauses += 1;
            self.event(format!("session of {i} expires"));
            let alive = self.alive();
            let state = self.controller.fence_replica(i, |r| alive.contains(&r));
            self.note_election();
            self.broadcast(state);
        }
    }

    /// Resumes replicas whose pause is over. A resumed replica runs on its stale state for a
    /// while (its queued messages arrive first); then it takes the states that queued, in
    /// order, and a fenced one registers again.
    fn resume(&mut self) {
        for i in 0..REPLICAS {
            let now = self.now;
            let node = &mut self.nodes[i as usize];
            if node.replica.is_none() || node.paused_until == 0 || now < node.paused_until {
                continue;
            }
            if node.deferred_at == 0 {
                let delay = self.rng.range(1, 60);
                let node = &mut self.nodes[i as usize];
                node.deferred_at = now + delay;
                self.event(format!("resume {i}, stale for {delay} ms"));
                continue;
            }
            if now < node.deferred_at {
                continue;
            }
            node.paused_until = 0;
            node.deferred_at = 0;
            let fenced = std::mem::take(&mut node.fenced);
            let deferred = std::mem::take(&mut node.deferred);
            self.event(format!("{i} takes {} queued states", deferred.len()));
            for state in deferred {
                let r = self.nodes[i as usize].replica.as_mut().unwrap();
                if let Err(e) = r.on_partition_state(state, now) {
                    self.crash(i, &format!("log error {e}"));
                    break;
                }
            }
            if fenced && self.controller.state().leader == NO_LEADER {
                let alive = self.alive();
                let elected = self.controller.elect_leader(|r| alive.contains(&r));
                self.note_election();
                if let Ok(state) = elected {
                    self.broadcast(state);
                }
            }
            self.collect(i);
        }
    }

    /// DeleteRecords on the leader: its log start moves up to at most its high watermark.
    fn delete_records(&mut self) {
        let Some(l) = self.leader() else {
            return;
        };
        if !self.nodes[l as usize].runs(self.now) {
            return;
        }
        let log = self.nodes[l as usize]
            .replica
            .as_ref()
            .unwrap()
            .log()
            .clone();
        let (start, hw) = (log.log_start_offset(), log.high_watermark());
        if hw <= start {
            return;
        }
        let offset = self.rng.range(start, hw);
        match log.delete_records_before(offset) {
            Ok(()) => {
                self.deleted_below = self.deleted_below.max(offset);
                self.stats.delete_records += 1;
                self.event(format!("delete records of {l} below {offset}"));
            }
            Err(e) => self.crash(l, &format!("delete records error {e}")),
        }
        self.charge_disk(l);
    }

    fn step(&mut self, faults: bool) {
        self.now += self.rng.range(0, 3);
        if faults {
            self.nemesis();
        }
        self.resume();
        for i in 0..REPLICAS {
            let node = &self.nodes[i as usize];
            if node.replica.is_none() && (self.now >= node.restart_at || !faults) {
                self.restart(i);
            }
        }
        if self.rng.chance(15) {
            self.produce();
        }
        self.tick_all();
        for _ in 0..self.rng.range(0, 6) {
            self.deliver();
        }
        if self.rng.chance(40) {
            self.controller_step();
        }
        self.steps += 1;
        if self.steps % CHECK_EVERY == 0 {
            self.consume();
            self.check();
        }
    }

    fn check(&mut self) {
        let seed = self.seed;
        // At most one leader per epoch; HW monotonic per process lifetime.
        for i in 0..REPLICAS {
            let node = &mut self.nodes[i as usize];
            let Some(r) = node.replica.as_ref() else {
                continue;
            };
            if let Role::Leader { leader_epoch } = r.role() {
                let prev = self.leaders.entry(leader_epoch).or_insert(i);
                assert_eq!(*prev, i, "seed {seed}: two leaders in epoch {leader_epoch}");
            }
            let hw = r.log().high_watermark();
            assert!(
                hw >= node.high_watermark,
                "seed {seed}: replica {i}'s high watermark went from {} to {hw}",
                node.high_watermark
            );
            node.high_watermark = hw;
        }
        let Some(l) = self.leader() else {
            return;
        };
        let leader_log = self.nodes[l as usize]
            .replica
            .as_ref()
            .unwrap()
            .log()
            .clone();
        if !matches!(
            self.nodes[l as usize].replica.as_ref().unwrap().role(),
            Role::Leader { .. }
        ) {
            return;
        }
        let hw = leader_log.high_watermark();
        let leo = leader_log.log_end_offset();
        let start = leader_log.log_start_offset();
        // Only DeleteRecords (or starting over at a leader's start) moves a log start.
        assert!(
            start <= self.deleted_below,
            "seed {seed}: leader {l}'s log starts at {start}, deleted only below {}",
            self.deleted_below
        );
        let all: BTreeMap<i64, Vec<u8>> = records(&leader_log, leo).into_iter().collect();
        let by_offset: BTreeMap<i64, Vec<u8>> =
            all.range(..hw).map(|(o, v)| (*o, v.clone())).collect();
        // Acknowledged and consumed records are all on the leader, unchanged.
        for (what, map) in [("acknowledged", &self.acked), ("consumed", &self.consumed)] {
            for (offset, value) in map.range(start..) {
                let found = all.get(offset);
                assert_eq!(
                    found,
                    Some(value),
                    "seed {seed}: {what} record at {offset} lost or changed on leader {l}"
                );
            }
        }
        // Below the HW, every live ISR member holds the same records.
        let isr = self.controller.state().isr.clone();
        for i in isr.iter().filter(|i| **i != l) {
            let Some(r) = self.nodes[*i as usize].replica.as_ref() else {
                continue;
            };
            let log = r.log();
            let from = start.max(log.log_start_offset());
            let theirs: Vec<_> = records(log, hw)
                .into_iter()
                .filter(|(o, _)| *o >= from)
                .collect();
            let ours: Vec<_> = by_offset
                .range(from..)
                .filter(|(o, _)| **o < log.log_end_offset())
                .map(|(o, v)| (*o, v.clone()))
                .collect();
            assert_eq!(
                theirs, ours,
                "seed {seed}: ISR member {i} differs from leader {l} below HW {hw}"
            );
            if self.durability == ReplicaDurability::Flushed {
                assert!(
                    log.recovery_point() >= hw.min(log.log_end_offset()),
                    "seed {seed}: HW {hw} above ISR member {i}'s flushed offset {}",
                    log.recovery_point()
                );
            }
        }
    }

    fn run(&mut self) {
        for _ in 0..FAULT_STEPS {
            self.step(true);
        }
        self.network.heal();
        self.event("calm".into());
        let calm_until = self.now + CALM_MS;
        while self.now < calm_until {
            self.step(false);
        }
        // Drain: no new produces, let everything settle.
        let drain_until = self.now + 1_500;
        while self.now < drain_until {
            self.now += 1;
            self.tick_all();
            for _ in 0..8 {
                self.deliver();
            }
            self.controller_step();
        }
        self.consume();
        self.check();
        let state = self.controller.state().clone();
        let seed = self.seed;
        assert_ne!(
            state.leader, NO_LEADER,
            "seed {seed}: no leader after the faults"
        );
        assert_eq!(
            state.isr.len(),
            REPLICAS as usize,
            "seed {seed}: ISR {:?}",
            state.isr
        );
        let leo = self.nodes[state.leader as usize]
            .replica
            .as_ref()
            .unwrap()
            .log()
            .log_end_offset();
        for n in &self.nodes {
            let log = n.replica.as_ref().unwrap().log();
            assert_eq!(
                (log.log_end_offset(), log.high_watermark()),
                (leo, leo),
                "seed {seed}: HW = LEO everywhere after the faults"
            );
        }
        assert!(
            self.pending.is_empty(),
            "seed {seed}: produces unanswered {:?}",
            self.pending
        );
    }
}

fn seeds(default: u64) -> Vec<u64> {
    if let Ok(s) = std::env::var("STREAMLOG_SIM_SEED") {
        return vec![s.parse().expect("STREAMLOG_SIM_SEED is a number")];
    }
    let n = std::env::var("STREAMLOG_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default);
    (0..n).collect()
}

fn run_seed(seed: u64, verbose: bool, unclean: bool) -> (u64, usize, Stats) {
    let mut sim = Sim::new(seed, verbose, unclean);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sim.run()));
    if let Err(e) = result {
        eprintln!("seed {seed} failed; replay with STREAMLOG_SIM_SEED={seed}; last events:");
        for e in &sim.trace {
            eprintln!("  {e}");
        }
        std::panic::resume_unwind(e);
    }
    (sim.hash, sim.acked.len(), sim.stats)
}

/// Runs the seeds; returns the records acknowledged and the faults reached.
fn run_seeds(default: u64, unclean: bool) -> (usize, Stats) {
    let verbose = std::env::var("STREAMLOG_SIM_SEED").is_ok();
    let mut acked = 0;
    let mut stats = Stats::default();
    for seed in seeds(default) {
        let (hash, n, s) = run_seed(seed, verbose, unclean);
        if verbose {
            eprintln!("seed {seed}: trace hash {hash:016x}, {n} records acknowledged, {s:?}");
        }
        acked += n;
        stats += s;
    }
    eprintln!("unclean={unclean}: {acked} records acknowledged; {stats:?}");
    (acked, stats)
}

#[test]
fn replication_survives_crashes_partitions_and_message_loss() {
    let (acked, stats) = run_seeds(200, false);
    assert!(acked > 0, "the simulation acknowledged nothing");
    if std::env::var("STREAMLOG_SIM_SEED").is_err() {
        // Every fault path ran somewhere in the seeds.
        assert!(stats.fenced_pauses > 0 && stats.slow_disks > 0, "{stats:?}");
        assert!(stats.restarted_at_leader_start > 0, "{stats:?}");
        assert!(stats.stale_leader_produces > 0, "{stats:?}");
    }
}

#[test]
fn unclean_election_gives_up_only_what_it_reports() {
    let (acked, stats) = run_seeds(60, true);
    assert!(acked > 0, "the simulation acknowledged nothing");
    if std::env::var("STREAMLOG_SIM_SEED").is_err() {
        assert!(stats.unclean_elections > 0, "{stats:?}");
    }
}

#[test]
fn a_seed_always_runs_the_same() {
    assert_eq!(run_seed(7, false, false), run_seed(7, false, false));
    assert_eq!(run_seed(7, false, true), run_seed(7, false, true));
}
