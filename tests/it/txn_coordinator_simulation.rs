//! A seeded simulation of the transaction coordinator driving real partition logs: several
//! transactional producers (new instances of a transactional id turn the old ones into
//! zombies that keep going with their old epoch), the coordinator crashing at every step of
//! the two-phase commit (right after PrepareCommit/PrepareAbort is durable, between markers,
//! before and after the completion record is durable, and at random), `__transaction_state`
//! appends failing, marker requests delayed, reordered, duplicated or failing, and reports
//! duplicated. One seed drives everything; a failing seed is printed and replays with
//! `STREAMLOG_SIM_SEED=N`; `STREAMLOG_SIM_SEEDS=N` runs more seeds.
//!
//! Invariants: a read_committed consumer of every output partition (the offsets partition
//! included, where transactional offset commits go) sees each record of a transaction at
//! most once, all of a transaction's records or none, only transactions whose commit was
//! requested by their producer, and all of every transaction whose commit was acknowledged;
//! no transaction stays Ongoing past its timeout plus a bound; once the faults stop, every
//! transaction is decided and every partition's LSO reaches its log end.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use streamlog::io::{FileSystem, SimFs};
use streamlog::txn::{
    AddOffsetsToTxnRequest, AddPartitionsToTxnTransaction, EndTxnRequest, InitProducerIdRequest,
    MarkerOutcome, Output, ProducerIdManager, RequestId, Response, TopicPartition,
    TransactionCoordinator, TransactionLogValue, TransactionState, TxnCoordinatorConfig,
    TxnLogAppend, TxnMarkerRequest, TxnStateLoader,
};
use streamlog::{BatchBuilder, BatchOptions, Error, KafkaCode, Log};

use crate::common::consumer::consume_committed;
use crate::common::rng::Rng;

const TXN_STATE_PARTITIONS: u32 = 2;
const TIMEOUT_MS: i32 = 1_000;
const ABORT_INTERVAL_MS: i64 = 100;
/// How long past its timeout a transaction may stay Ongoing (the abort check runs every
/// 100 ms; the abort's append may fail and be retried).
const UNDECIDED_BOUND_MS: i64 = 3_000;
const TRANSACTIONAL_IDS: usize = 3;
const TXNS_PER_INSTANCE: u32 = 6;
const GROUP: &str = "sim-group";

fn config() -> TxnCoordinatorConfig {
    TxnCoordinatorConfig {
        transaction_state_partitions: TXN_STATE_PARTITIONS,
        consumer_offsets_partitions: 1,
        transaction_max_timeout_ms: 10_000,
        abort_timed_out_transactions_interval_ms: ABORT_INTERVAL_MS,
        retry_backoff_ms: 20,
        ..TxnCoordinatorConfig::default()
    }
}

fn state_dir(p: u32) -> PathBuf {
    Path::new("/coord").join(format!("__transaction_state-{p}"))
}

/// Where a crash was injected, for the coverage check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum CrashPoint {
    AfterPrepareDurable,
    BetweenMarkers,
    BeforeCompleteDurable,
    AfterCompleteDurable,
    Random,
}

struct Coordinator {
    c: TransactionCoordinator,
    logs: Vec<Log>,
    ids: ProducerIdManager,
    incarnation: i32,
    appends: Vec<TxnLogAppend>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Init,
    Begin,
    Add,
    Write,
    AddOffsets,
    WriteOffsets,
    End,
    Done,
}

struct Instance {
    tid: String,
    no: u32,
    pid: i64,
    epoch: i16,
    step: Step,
    waiting: Option<RequestId>,
    seqs: HashMap<TopicPartition, i32>,
    txns: u32,
    key: String,
    parts: Vec<TopicPartition>,
    offsets: bool,
    commit: bool,
    stall_until: i64,
    dead: bool,
}

#[derive(Default, Debug)]
struct Fate {
    /// The producer asked to commit (`Some(true)`) or abort.
    requested: Option<bool>,
    /// The coordinator answered the EndTxn with NONE.
    acked: bool,
    /// Values appended (accepted by the partition logs).
    written: HashSet<String>,
}

struct World {
    rng: Rng,
    now: i64,
    fs: SimFs,
    data: BTreeMap<TopicPartition, Log>,
    offsets_tp: TopicPartition,
    coord: Coordinator,
    /// Marker requests on the wire: (sender incarnation, request, partition).
    markers: Vec<(i32, TxnMarkerRequest, TopicPartition)>,
    /// Reports on the wire back to the coordinator.
    reports: Vec<(i32, TxnMarkerRequest, TopicPartition, MarkerOutcome)>,
    /// Responses on the wire to producers.
    responses: Vec<(RequestId, Response)>,
    producers: Vec<Instance>,
    next_request: RequestId,
    fates: HashMap<String, Fate>,
    faults: bool,
    crashes: Vec<CrashPoint>,
}

fn open_coordinator(fs: &SimFs, incarnation: i32, now: i64) -> Coordinator {
    let fs_arc: Arc<dyn FileSystem> = Arc::new(fs.clone());
    let mut c = TransactionCoordinator::new(config(), now);
    let mut ids =
        ProducerIdManager::with_block_size(Arc::clone(&fs_arc), Path::new("/coord"), 5).unwrap();
    c.producer_ids_reserved(ids.reserve_block().unwrap());
    let mut logs = Vec::new();
    for p in 0..TXN_STATE_PARTITIONS {
        let (log, _) = Log::open_with(
            Arc::clone(&fs_arc),
            &state_dir(p),
            crate::common::sim_log::small_indexes(),
            &mut |_| Ok(()),
        )
        .unwrap();
        let mut loader = TxnStateLoader::new(p, incarnation);
        let seen = loader.read_log(&log).unwrap();
        assert!(seen < incarnation, "leader epoch {seen} from the future");
        log.set_leader_epoch(incarnation).unwrap();
        c.begin_loading(p, incarnation);
        assert!(c.partition_loaded(loader));
        logs.push(log);
    }
    Coordinator {
        c,
        logs,
        ids,
        incarnation,
        appends: Vec::new(),
    }
}

fn txn_batch(pid: i64, epoch: i16, seq: i32, value: &str) -> Vec<u8> {
    let mut b = BatchBuilder::new(BatchOptions {
        producer_id: pid,
        producer_epoch: epoch,
        base_sequence: seq,
        transactional: true,
        ..BatchOptions::default()
    });
    b.append(0, None, Some(value.as_bytes()), &[]).unwrap();
    b.build().unwrap()
}

fn is_retriable(e: KafkaCode) -> bool {
    matches!(
        e,
        KafkaCode::CONCURRENT_TRANSACTIONS
            | KafkaCode::NOT_COORDINATOR
            | KafkaCode::COORDINATOR_LOAD_IN_PROGRESS
            | KafkaCode::COORDINATOR_NOT_AVAILABLE
    )
}

impl World {
    fn new(seed: u64) -> World {
        let fs = SimFs::new(seed);
        fs.create_dir_all(Path::new("/coord")).unwrap();
        let data_fs: Arc<dyn FileSystem> = Arc::new(SimFs::new(seed ^ 0x5eed));
        let coord = open_coordinator(&fs, 1, 0);
        let offsets_tp = coord.c.offsets_partition_for(GROUP);
        let mut data = BTreeMap::new();
        for tp in (0..3)
            .map(|p| TopicPartition::new("out", p))
            .chain([offsets_tp.clone()])
        {
            let dir = Path::new("/data").join(tp.to_string());
            let (log, _) = Log::open_with(
                Arc::clone(&data_fs),
                &dir,
                crate::common::sim_log::small_indexes(),
                &mut |_| Ok(()),
            )
            .unwrap();
            data.insert(tp, log);
        }
        let producers = (0..TRANSACTIONAL_IDS)
            .map(|i| Instance::new(format!("tid-{i}"), 0))
            .collect();
        World {
            rng: Rng(seed),
            now: 0,
            fs,
            data,
            offsets_tp,
            coord,
            markers: Vec::new(),
            reports: Vec::new(),
            responses: Vec::new(),
            producers,
            next_request: 0,
            fates: HashMap::new(),
            faults: true,
            crashes: Vec::new(),
        }
    }

    fn crash(&mut self, point: CrashPoint) {
        self.crashes.push(point);
        self.fs = self.fs.crash();
        // The dead coordinator's reports and unanswered requests are gone; its marker
        // requests already on the wire may still land.
        self.reports.clear();
        let answered: HashSet<RequestId> = self.responses.iter().map(|(r, _)| *r).collect();
        for p in &mut self.producers {
            if p.waiting.is_some_and(|r| !answered.contains(&r)) {
                p.waiting = None;
            }
        }
        let incarnation = self.coord.incarnation + 1;
        self.coord = open_coordinator(&self.fs, incarnation, self.now);
    }

    /// Routes the coordinator's outputs onto the wire.
    fn drain(&mut self) {
        while let Some(out) = self.coord.c.poll_output() {
            match out {
                Output::Response { request, response } => self.responses.push((request, response)),
                Output::AppendTxnLog(a) => self.coord.appends.push(a),
                Output::WriteTxnMarkers(m) => {
                    for tp in &m.partitions {
                        self.markers
                            .push((self.coord.incarnation, m.clone(), tp.clone()));
                    }
                }
                Output::ReserveProducerIds => match self.coord.ids.reserve_block() {
                    Ok(b) => self.coord.c.producer_ids_reserved(b),
                    Err(_) => self.coord.c.producer_id_reservation_failed(),
                },
            }
        }
    }

    /// The oldest pending `__transaction_state` append becomes durable (or fails), maybe
    /// with a crash around it. Returns false if there was none.
    fn complete_append(&mut self) -> bool {
        if self.coord.appends.is_empty() {
            return false;
        }
        let a = self.coord.appends.remove(0);
        if self.faults && self.rng.chance(8) {
            self.coord
                .c
                .append_completed(a.id, Err(KafkaCode::NOT_ENOUGH_REPLICAS));
            return true;
        }
        let state = a
            .value
            .as_deref()
            .map(|v| TransactionLogValue::decode(v).unwrap().1.transaction_status)
            .and_then(TransactionState::from_id);
        let log = &self.coord.logs[a.partition as usize];
        let mut b = BatchBuilder::new(BatchOptions::default());
        b.append(a.timestamp, Some(&a.key), a.value.as_deref(), &[])
            .unwrap();
        log.append(&b.build().unwrap()).unwrap();
        let completes = matches!(
            state,
            Some(TransactionState::CompleteCommit | TransactionState::CompleteAbort)
        );
        if self.faults && completes && self.rng.chance(10) {
            // Written but not yet durable: the crash may or may not keep it.
            self.crash(CrashPoint::BeforeCompleteDurable);
            return true;
        }
        log.flush().unwrap();
        if self.faults && self.rng.chance(12) {
            match state {
                Some(TransactionState::PrepareCommit | TransactionState::PrepareAbort) => {
                    self.crash(CrashPoint::AfterPrepareDurable);
                    return true;
                }
                _ if completes => {
                    self.crash(CrashPoint::AfterCompleteDurable);
                    return true;
                }
                _ => {}
            }
        }
        self.coord.c.append_completed(a.id, Ok(()));
        true
    }

    /// One marker request (any of those on the wire: delays reorder them) reaches its
    /// partition.
    fn deliver_marker(&mut self) -> bool {
        if self.markers.is_empty() {
            return false;
        }
        let i = self.rng.below(self.markers.len() as u64) as usize;
        let (from, m, tp) = self.markers.swap_remove(i);
        let outcome = if self.faults && self.rng.chance(10) {
            MarkerOutcome::Failed(KafkaCode::NOT_LEADER_OR_FOLLOWER)
        } else {
            let log = &self.data[&tp];
            let write = || match log.write_txn_marker(
                m.producer_id,
                m.producer_epoch,
                m.result,
                m.coordinator_epoch,
            ) {
                Ok(_) => MarkerOutcome::Written,
                Err(Error::InvalidProducerEpoch { .. }) => {
                    MarkerOutcome::Failed(KafkaCode::INVALID_PRODUCER_EPOCH)
                }
                Err(Error::TransactionCoordinatorFenced { .. }) => {
                    MarkerOutcome::Failed(KafkaCode::TRANSACTION_COORDINATOR_FENCED)
                }
                Err(e) => panic!("marker on {tp}: {e}"),
            };
            let outcome = write();
            if self.faults && self.rng.chance(10) {
                // Delivered twice (a transport retransmission).
                let _ = write();
            }
            outcome
        };
        if from == self.coord.incarnation {
            self.reports.push((from, m.clone(), tp.clone(), outcome));
            if self.faults && self.rng.chance(10) {
                self.reports.push((from, m, tp, outcome));
            }
        }
        if self.faults && self.rng.chance(2) {
            self.crash(CrashPoint::BetweenMarkers);
        }
        true
    }

    fn deliver_report(&mut self) -> bool {
        if self.reports.is_empty() {
            return false;
        }
        let i = self.rng.below(self.reports.len() as u64) as usize;
        let (from, m, tp, outcome) = self.reports.swap_remove(i);
        if from == self.coord.incarnation {
            self.coord.c.marker_written(&m, &tp, outcome);
        }
        true
    }

    fn deliver_response(&mut self) -> bool {
        if self.responses.is_empty() {
            return false;
        }
        let i = self.rng.below(self.responses.len() as u64) as usize;
        let (request, response) = self.responses.swap_remove(i);
        let Some(pi) = self
            .producers
            .iter()
            .position(|p| p.waiting == Some(request))
        else {
            return true;
        };
        let p = &mut self.producers[pi];
        p.waiting = None;
        let error = match &response {
            Response::InitProducerId(r) => {
                if r.error == KafkaCode::NONE {
                    p.pid = r.producer_id;
                    p.epoch = r.producer_epoch;
                    p.seqs.clear();
                    p.step = Step::Begin;
                }
                r.error
            }
            Response::AddPartitionsToTxn(r) => {
                let e = r[0].error();
                if e == KafkaCode::NONE {
                    p.step = Step::Write;
                }
                e
            }
            Response::AddOffsetsToTxn(e) => {
                if *e == KafkaCode::NONE {
                    p.step = Step::WriteOffsets;
                }
                *e
            }
            Response::EndTxn(e) => {
                if *e == KafkaCode::NONE {
                    self.fates.entry(p.key.clone()).or_default().acked = true;
                    p.step = if p.txns >= TXNS_PER_INSTANCE || !self.faults {
                        Step::Done
                    } else {
                        Step::Begin
                    };
                }
                *e
            }
        };
        if error.is_error() && !is_retriable(error) {
            p.dead = true;
        }
        true
    }

    /// One producer acts (sends its next request or writes its records).
    fn producer_step(&mut self) -> bool {
        let ready: Vec<usize> = (0..self.producers.len())
            .filter(|&i| {
                let p = &self.producers[i];
                !p.dead && p.waiting.is_none() && p.step != Step::Done && p.stall_until <= self.now
            })
            .collect();
        if ready.is_empty() {
            return false;
        }
        let pi = ready[self.rng.below(ready.len() as u64) as usize];
        let request = self.next_request;
        self.next_request += 1;
        let step = self.producers[pi].step;
        match step {
            Step::Init => {
                let p = &mut self.producers[pi];
                p.waiting = Some(request);
                let tid = p.tid.clone();
                self.coord.c.init_producer_id(
                    request,
                    InitProducerIdRequest::transactional(tid, TIMEOUT_MS),
                );
            }
            Step::Begin => {
                if !self.faults {
                    self.producers[pi].step = Step::Done;
                    return true;
                }
                let mut parts: Vec<TopicPartition> = (0..3)
                    .filter(|_| self.rng.chance(50))
                    .map(|p| TopicPartition::new("out", p))
                    .collect();
                if parts.is_empty() {
                    parts.push(TopicPartition::new("out", self.rng.below(3) as i32));
                }
                let offsets = self.rng.chance(40);
                let commit = self.rng.chance(80);
                let stall = self.rng.chance(4);
                let now = self.now;
                let p = &mut self.producers[pi];
                p.txns += 1;
                p.key = format!("{}.{}.{}", p.tid, p.no, p.txns);
                p.parts = parts;
                p.offsets = offsets;
                p.commit = commit;
                if stall {
                    p.stall_until = now + i64::from(TIMEOUT_MS) * 2;
                }
                p.step = Step::Add;
                return self.producer_step_send(pi, request);
            }
            Step::Add | Step::AddOffsets | Step::End => {
                return self.producer_step_send(pi, request);
            }
            Step::Write | Step::WriteOffsets => {
                let parts = if step == Step::Write {
                    self.producers[pi].parts.clone()
                } else {
                    vec![self.offsets_tp.clone()]
                };
                for tp in parts {
                    let p = &mut self.producers[pi];
                    let seq = p.seqs.get(&tp).copied().unwrap_or(0);
                    let value = format!("{}|{}", p.key, tp);
                    let bytes = txn_batch(p.pid, p.epoch, seq, &value);
                    match self.data[&tp].append(&bytes) {
                        Ok(_) => {
                            p.seqs.insert(tp.clone(), seq + 1);
                            self.fates
                                .entry(p.key.clone())
                                .or_default()
                                .written
                                .insert(value);
                        }
                        Err(Error::InvalidProducerEpoch { .. }) => {
                            p.dead = true;
                            return true;
                        }
                        Err(e) => panic!("append by {} to {tp}: {e}", p.key),
                    }
                }
                let p = &mut self.producers[pi];
                p.step = if step == Step::Write && p.offsets {
                    Step::AddOffsets
                } else {
                    Step::End
                };
            }
            Step::Done => {}
        }
        true
    }

    fn producer_step_send(&mut self, pi: usize, request: RequestId) -> bool {
        let p = &mut self.producers[pi];
        p.waiting = Some(request);
        let (tid, pid, epoch) = (p.tid.clone(), p.pid, p.epoch);
        match p.step {
            Step::Add => self.coord.c.add_partitions_to_txn(
                request,
                vec![AddPartitionsToTxnTransaction {
                    transactional_id: tid,
                    producer_id: pid,
                    producer_epoch: epoch,
                    verify_only: false,
                    partitions: p.parts.clone(),
                }],
            ),
            Step::AddOffsets => self.coord.c.add_offsets_to_txn(
                request,
                AddOffsetsToTxnRequest {
                    transactional_id: tid,
                    producer_id: pid,
                    producer_epoch: epoch,
                    group_id: GROUP.into(),
                },
            ),
            Step::End => {
                let commit = p.commit;
                let fate = self.fates.entry(p.key.clone()).or_default();
                if fate.requested.is_none() {
                    fate.requested = Some(commit);
                }
                self.coord.c.end_txn(
                    request,
                    EndTxnRequest {
                        transactional_id: tid,
                        producer_id: pid,
                        producer_epoch: epoch,
                        committed: commit,
                    },
                )
            }
            _ => unreachable!(),
        }
        true
    }

    /// A transactional id gets a new producer instance; the old one becomes a zombie.
    fn restart_a_producer(&mut self) {
        let i = self.rng.below(TRANSACTIONAL_IDS as u64) as usize;
        let tid = format!("tid-{i}");
        let instances = self.producers.iter().filter(|p| p.tid == tid).count() as u32;
        if instances < 3 {
            self.producers.push(Instance::new(tid, instances));
        }
    }

    fn step(&mut self) {
        self.now += self.rng.range(1, 15);
        self.coord.c.tick(self.now);
        self.drain();
        if self.faults && self.rng.below(200) == 0 {
            self.crash(CrashPoint::Random);
        }
        if self.faults && self.rng.chance(1) {
            self.restart_a_producer();
        }
        let acted = match self.rng.below(5) {
            0 => self.complete_append(),
            1 => self.deliver_marker(),
            2 => self.deliver_report(),
            3 => self.deliver_response(),
            _ => self.producer_step(),
        };
        if !acted {
            let _ = self.complete_append()
                || self.deliver_marker()
                || self.deliver_report()
                || self.deliver_response()
                || self.producer_step();
        }
        self.drain();
    }

    fn idle(&self) -> bool {
        self.coord.appends.is_empty()
            && self.markers.is_empty()
            && self.reports.is_empty()
            && self.responses.is_empty()
            && self
                .producers
                .iter()
                .all(|p| p.dead || p.step == Step::Done)
    }

    fn all_decided(&self) -> bool {
        (0..TRANSACTIONAL_IDS).all(|i| {
            let d = self.coord.c.describe_transaction(&format!("tid-{i}"));
            !matches!(d.state, "Ongoing" | "PrepareCommit" | "PrepareAbort")
        })
    }

    /// No transaction has stayed Ongoing past its timeout plus the bound.
    fn check_undecided(&self, seed: u64) {
        for i in 0..TRANSACTIONAL_IDS {
            let d = self.coord.c.describe_transaction(&format!("tid-{i}"));
            if d.state == "Ongoing" {
                assert!(
                    self.now - d.transaction_start_time_ms
                        <= i64::from(TIMEOUT_MS) + UNDECIDED_BOUND_MS,
                    "seed {seed}: tid-{i} Ongoing since {} at {}",
                    d.transaction_start_time_ms,
                    self.now
                );
            }
        }
    }

    fn check_consumers(&self, seed: u64) {
        let mut visible: HashMap<String, HashSet<String>> = HashMap::new();
        for (tp, log) in &self.data {
            let hw = log.log_end_offset();
            let lso = log.last_stable_offset();
            assert_eq!(
                lso, hw,
                "seed {seed}: {tp} LSO stuck at {lso}, log end {hw}"
            );
            let mut seen = HashSet::new();
            for r in consume_committed(log, hw, lso) {
                let value = String::from_utf8(r.value.unwrap()).unwrap();
                assert!(
                    seen.insert(value.clone()),
                    "seed {seed}: {value} seen twice"
                );
                let key = value.split('|').next().unwrap().to_string();
                visible.entry(key).or_default().insert(value);
            }
        }
        for (key, values) in &visible {
            let fate = &self.fates[key];
            assert_eq!(
                fate.requested,
                Some(true),
                "seed {seed}: {key} visible but its producer did not ask to commit ({fate:?})"
            );
            assert_eq!(values, &fate.written, "seed {seed}: {key} partly visible");
        }
        for (key, fate) in &self.fates {
            if fate.acked && fate.requested == Some(true) {
                let seen = visible.get(key).cloned().unwrap_or_default();
                assert_eq!(
                    seen, fate.written,
                    "seed {seed}: acknowledged commit {key} lost"
                );
            }
        }
    }
}

impl Instance {
    fn new(tid: String, no: u32) -> Instance {
        Instance {
            tid,
            no,
            pid: -1,
            epoch: -1,
            step: Step::Init,
            waiting: None,
            seqs: HashMap::new(),
            txns: 0,
            key: String::new(),
            parts: Vec::new(),
            offsets: false,
            commit: false,
            stall_until: 0,
            dead: false,
        }
    }
}

/// Runs one seed; returns the crashes it injected.
fn run(seed: u64) -> Vec<CrashPoint> {
    let mut w = World::new(seed);
    for i in 0..500 {
        w.step();
        if i % 20 == 0 {
            w.check_undecided(seed);
        }
    }
    // The faults stop; producers finish their current transaction (or are timed out).
    w.faults = false;
    let quiet_from = w.now;
    let deadline = quiet_from + i64::from(TIMEOUT_MS) * 3 + UNDECIDED_BOUND_MS;
    let mut steps = 0;
    while !(w.idle() && w.all_decided()) {
        w.step();
        steps += 1;
        if steps % 20 == 0 {
            w.check_undecided(seed);
        }
        assert!(
            w.now <= deadline,
            "seed {seed}: not settled {} ms after the faults stopped",
            w.now - quiet_from
        );
    }
    w.check_consumers(seed);
    w.crashes
}

fn seeds() -> Vec<u64> {
    if let Ok(s) = std::env::var("STREAMLOG_SIM_SEED") {
        return vec![s.parse().expect("STREAMLOG_SIM_SEED is a number")];
    }
    let n = std::env::var("STREAMLOG_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000u64);
    (0..n).collect()
}

#[test]
fn coordinator_crashes_and_faults_keep_exactly_once() {
    let seeds = seeds();
    let mut crashes: BTreeMap<CrashPoint, usize> = BTreeMap::new();
    for &seed in &seeds {
        let result = std::panic::catch_unwind(|| run(seed));
        match result {
            Ok(points) => {
                for p in points {
                    *crashes.entry(p).or_default() += 1;
                }
            }
            Err(e) => {
                eprintln!("txn coordinator simulation failed at seed {seed}; replay with STREAMLOG_SIM_SEED={seed}");
                std::panic::resume_unwind(e);
            }
        }
    }
    eprintln!("{} seeds, crashes injected: {crashes:?}", seeds.len());
    if seeds.len() >= 100 {
        for point in [
            CrashPoint::AfterPrepareDurable,
            CrashPoint::BetweenMarkers,
            CrashPoint::BeforeCompleteDurable,
            CrashPoint::AfterCompleteDurable,
            CrashPoint::Random,
        ] {
            assert!(
                crashes.get(&point).copied().unwrap_or(0) >= 10,
                "crash point {point:?} hardly exercised: {crashes:?}"
            );
        }
    }
}
