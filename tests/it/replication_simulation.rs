//! The deterministic simulation of replication: three replicas of one partition, each on its
//! own `SimFs` disk, an in-memory network that loses, duplicates, reorders and delays
//! messages and is cut into partitions, a controller that fences crashed replicas and
//! elects leaders from the ISR (or the ELR), producers writing `acks=all`, a consumer
//! reading below the high watermark, and a nemesis that crashes replicas (power loss in the
//! fsync mode, a process crash otherwise), cuts links and fails fsyncs. One seed drives all
//! of it; the invariants are checked as it runs:
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
//! `STREAMLOG_SIM_SEED=N` replays seed N (printing its trace); `STREAMLOG_SIM_SEEDS=N` runs
//! N seeds (default 200). A trace hash shows a seed always runs the same.

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

fn repl_config(durability: ReplicaDurability) -> ReplicationConfig {
    ReplicationConfig {
        replica_lag_time_max_ms: 150,
        min_insync_replicas: 2,
        replica_fetch_max_bytes: 1_024,
        replica_fetch_wait_max_ms: 20,
        replica_fetch_backoff_ms: 15,
        replica_socket_timeout_ms: 60,
        request_timeout_ms: 400,
        durability,
        unclean_leader_election_enable: false,
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
}

struct Sim {
    seed: u64,
    rng: Rng,
    now: i64,
    durability: ReplicaDurability,
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
    next_value: u64,
    steps: u64,
    trace: Vec<String>,
    hash: u64,
    verbose: bool,
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
    fn new(seed: u64, verbose: bool) -> Sim {
        let mut rng = Rng(seed);
        let durability = if rng.chance(50) {
            ReplicaDurability::Flushed
        } else {
            ReplicaDurability::LogEnd
        };
        let config = repl_config(durability);
        let nodes = (0..REPLICAS)
            .map(|i| {
                let fs = SimFs::new(seed.wrapping_mul(31).wrapping_add(i as u64));
                let replica = Replica::new(i, 1, open(&fs).unwrap(), config.clone(), 0).unwrap();
                Node {
                    fs,
                    replica: Some(replica),
                    incarnation: 1,
                    restart_at: 0,
                    high_watermark: 0,
                }
            })
            .collect();
        let controller = InMemoryController::new((0..REPLICAS).collect(), 2, false);
        let mut sim = Sim {
            seed,
            rng,
            now: 0,
            durability,
            nodes,
            network: InMemoryNetwork::new(),
            controller,
            pending: BTreeMap::new(),
            acked: BTreeMap::new(),
            consumed: BTreeMap::new(),
            leaders: BTreeMap::new(),
            next_value: 0,
            steps: 0,
            trace: Vec::new(),
            hash: 0xcbf2_9ce4_8422_2325,
            verbose,
        };
        sim.event(format!("start durability={durability:?}"));
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

    fn alive(&self) -> BTreeSet<ReplicaId> {
        (0..REPLICAS)
            .filter(|i| self.nodes[*i as usize].replica.is_some())
            .collect()
    }

    fn broadcast(&mut self, state: PartitionState) {
        self.event(format!(
            "state leader={} epoch={} pe={} isr={:?} elr={:?}",
            state.leader, state.leader_epoch, state.partition_epoch, state.isr, state.elr
        ));
        for i in 0..REPLICAS {
            let r = self.nodes[i as usize].replica.as_mut();
            if let Some(r) = r {
                if let Err(e) = r.on_partition_state(state.clone(), self.now) {
                    self.crash(i, &format!("log error {e}"));
                }
            }
        }
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
        node.restart_at = self.now + self.rng.range(20, 300);
        self.network.drop_messages_of(i);
        // Its clients' acks=all produces are never answered (they time out).
        let incarnation = node.incarnation;
        self.pending
            .retain(|(l, inc, _), _| (*l, *inc) != (i, incarnation));
        self.event(format!("crash {i} ({why})"));
        let alive = self.alive();
        let state = self.controller.fence_replica(i, |r| alive.contains(&r));
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
        let config = repl_config(self.durability);
        node.replica = Some(Replica::new(i, node.incarnation, log, config, self.now).unwrap());
        node.high_watermark = 0;
        self.event(format!("restart {i}"));
        let mut state = self.controller.state().clone();
        if state.leader == NO_LEADER {
            let alive = self.alive();
            if let Ok(s) = self.controller.elect_leader(|r| alive.contains(&r)) {
                state = s;
            }
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
        let Some(l) = self.leader() else {
            return;
        };
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
        let Some(r) = self.nodes[to as usize].replica.as_mut() else {
            return;
        };
        if let Err(e) = r.on_message(envelope.from, envelope.message, now) {
            self.crash(to, &format!("message error {e}"));
            return;
        }
        self.collect(to);
    }

    fn controller_step(&mut self) {
        let states = self.controller.apply_pending();
        for (leader, error) in self.controller.take_rejections() {
            self.event(format!("alter partition of {leader} refused {error:?}"));
            if let Some(r) = self.nodes[leader as usize].replica.as_mut() {
                r.on_alter_partition_error(error, self.now);
            }
        }
        for s in states {
            self.broadcast(s);
        }
    }

    fn tick_all(&mut self) {
        for i in 0..REPLICAS {
            let now = self.now;
            if let Some(r) = self.nodes[i as usize].replica.as_mut() {
                if let Err(e) = r.tick(now) {
                    self.crash(i, &format!("tick error {e}"));
                    continue;
                }
            }
            self.collect(i);
        }
    }

    fn nemesis(&mut self) {
        match self.rng.below(1_000) {
            0..=9 => {
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
            _ => {}
        }
    }

    fn step(&mut self, faults: bool) {
        self.now += self.rng.range(0, 3);
        if faults {
            self.nemesis();
        }
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
        let all: BTreeMap<i64, Vec<u8>> = records(&leader_log, leo).into_iter().collect();
        let by_offset: BTreeMap<i64, Vec<u8>> =
            all.range(..hw).map(|(o, v)| (*o, v.clone())).collect();
        // Acknowledged and consumed records are all on the leader, unchanged.
        for (what, map) in [("acknowledged", &self.acked), ("consumed", &self.consumed)] {
            for (offset, value) in map {
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
            let theirs: Vec<_> = records(log, hw);
            let ours: Vec<_> = by_offset
                .iter()
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

fn seeds() -> Vec<u64> {
    if let Ok(s) = std::env::var("STREAMLOG_SIM_SEED") {
        return vec![s.parse().expect("STREAMLOG_SIM_SEED is a number")];
    }
    let n = std::env::var("STREAMLOG_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    (0..n).collect()
}

fn run_seed(seed: u64, verbose: bool) -> (u64, usize) {
    let mut sim = Sim::new(seed, verbose);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sim.run()));
    if let Err(e) = result {
        eprintln!("seed {seed} failed; replay with STREAMLOG_SIM_SEED={seed}; last events:");
        for e in &sim.trace {
            eprintln!("  {e}");
        }
        std::panic::resume_unwind(e);
    }
    (sim.hash, sim.acked.len())
}

#[test]
fn replication_survives_crashes_partitions_and_message_loss() {
    let verbose = std::env::var("STREAMLOG_SIM_SEED").is_ok();
    let mut acked = 0;
    for seed in seeds() {
        let (hash, n) = run_seed(seed, verbose);
        if verbose {
            eprintln!("seed {seed}: trace hash {hash:016x}, {n} records acknowledged");
        }
        acked += n;
    }
    assert!(acked > 0, "the simulation acknowledged nothing");
}

#[test]
fn a_seed_always_runs_the_same() {
    assert_eq!(run_seed(7, false), run_seed(7, false));
}
