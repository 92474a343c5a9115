//! A seeded simulation of exactly-once consume-transform-produce: the transaction
//! coordinator and the group coordinator driving real partition logs of a `Storage`.
//!
//! Each transactional id owns one input partition (as a Kafka Streams task does). Its
//! producer instance initialises, fetches the group's committed offset (require_stable),
//! then loops: read a few input records from its position, write their transformations to
//! some output partitions, AddOffsetsToTxn, TxnOffsetCommit of the position after them
//! (through the group coordinator, appended to `__consumer_offsets` as a transactional
//! batch), and EndTxn (mostly commit; after an abort it rewinds to the committed offset).
//! New instances of a transactional id turn the old ones into zombies that keep going with
//! their old epoch.
//!
//! Faults: the transaction coordinator crashes at every step of the two-phase commit (right
//! after PrepareCommit/PrepareAbort is durable, between markers, before and after the
//! completion record is durable, and at random); `__transaction_state` appends fail; marker
//! requests are delayed, reordered, duplicated or fail; reports are duplicated; producers
//! stall past their transaction timeout; the group coordinator restarts (its queued appends
//! written or lost, its state reloaded from the offsets log) and its appends are delayed.
//! One seed drives everything; a failing seed is printed and replays with
//! `STREAMLOG_SIM_SEED=N`; `STREAMLOG_SIM_SEEDS=N` runs more seeds.
//!
//! Invariants: a read_committed consumer of every output partition and of the offsets
//! partition sees all of a transaction's records (its offset commit included) or none, each
//! output record once, only transactions whose commit was requested by their producer, and
//! all of every transaction whose commit was acknowledged; the group's committed offset of
//! each input partition is exactly the one written by the last committed transaction, and
//! the committed outputs transform each input record below it exactly once and none at or
//! above it; the group coordinator's offsets, a group coordinator reloaded from the log, and
//! the offset store agree, with nothing left pending; no transaction stays Ongoing past its
//! timeout plus a bound; once the faults stop, every transaction is decided and every
//! partition's LSO reaches its log end.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use streamlog::group::coordinator::{
    self as gc, GroupCoordinator, GroupCoordinatorConfig, OffsetCommitPartition,
    OffsetFetchRequest, TxnOffsetCommitRequest,
};
use streamlog::group::{
    load_entries, OffsetCommitValue, OffsetsKey, OffsetsPartition, OffsetsRecord,
    OffsetsTopicConfig, OFFSETS_TOPIC,
};
use streamlog::io::{FileSystem, SimFs};
use streamlog::storage::{Storage, StorageConfig, TopicConfig};
use streamlog::txn::{
    AddOffsetsToTxnRequest, AddPartitionsToTxnTransaction, EndTxnRequest, InitProducerIdRequest,
    MarkerOutcome, Output, ProducerIdManager, RequestId, Response, TopicPartition,
    TransactionCoordinator, TransactionLogValue, TransactionState, TxnCoordinatorConfig,
    TxnLogAppend, TxnMarkerRequest, TxnStateLoader,
};
use streamlog::{BatchBuilder, BatchOptions, Error, KafkaCode, Log, TxnResult};

use crate::common::consumer::consume_committed;
use crate::common::rng::Rng;

const TXN_STATE_PARTITIONS: u32 = 2;
const TIMEOUT_MS: i32 = 1_000;
const ABORT_INTERVAL_MS: i64 = 100;
/// How long past its timeout a transaction may stay Ongoing (the abort check runs every
/// 100 ms; the abort's append may fail and be retried).
const UNDECIDED_BOUND_MS: i64 = 3_000;
const TRANSACTIONAL_IDS: usize = 3;
const OUTPUT_PARTITIONS: i32 = 3;
/// Records in each input partition.
const INPUT_RECORDS: i64 = 40;
const TXNS_PER_INSTANCE: u32 = 8;
const GROUP: &str = "sim-group";
const INPUT: &str = "in";
const OUTPUT: &str = "out";

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

fn offsets_config() -> OffsetsTopicConfig {
    let mut c = OffsetsTopicConfig::default();
    c.set("offsets.topic.num.partitions", "1").unwrap();
    c
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
    GroupCoordinator,
}

/// A bug planted on purpose, to show the checks catch it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plant {
    /// The group coordinator is not told of markers written to the offsets partition (its
    /// consumers then wait on UNSTABLE_OFFSET_COMMIT for ever).
    GroupMissesMarkers,
    /// The group coordinator takes every marker for a COMMIT (a restarted task then skips
    /// the input of aborted transactions).
    GroupCommitsOnAbort,
    /// Transactional offset commits are written as plain (non-transactional) batches (an
    /// aborted transaction's offsets then stay visible without its output).
    PlainOffsetCommits,
}

/// Counts over all seeds, to show the checks were not vacuous.
#[derive(Debug, Default)]
struct Stats {
    crashes: BTreeMap<CrashPoint, usize>,
    /// Input records below the final committed offsets.
    committed_input: i64,
    /// TxnOffsetCommits a fenced epoch had refused.
    offset_commits_fenced: usize,
    /// Transactions whose offset commit was aborted after being written.
    offset_commits_aborted: usize,
}

struct Coordinator {
    c: TransactionCoordinator,
    logs: Vec<Log>,
    ids: ProducerIdManager,
    incarnation: i32,
    appends: Vec<TxnLogAppend>,
}

/// The group coordinator of the one `__consumer_offsets` partition, over its offset store.
struct Groups {
    c: GroupCoordinator,
    store: OffsetsPartition,
    incarnation: u64,
    /// Appends asked for and not yet written, in order.
    appends: Vec<gc::Append>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Init,
    Fetch,
    Begin,
    Add,
    Write,
    AddOffsets,
    CommitOffsets,
    End,
    Done,
}

/// Which coordinator a request went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum To {
    Txn,
    Group,
}

enum Reply {
    Txn(Response),
    Group(gc::Response),
}

struct Instance {
    tid: String,
    /// The input partition (the transactional id's task).
    input: i32,
    no: u32,
    pid: i64,
    epoch: i16,
    step: Step,
    waiting: Option<(RequestId, To)>,
    seqs: HashMap<TopicPartition, i32>,
    txns: u32,
    key: String,
    parts: Vec<TopicPartition>,
    /// The next input offset to consume.
    position: i64,
    /// The input records of the open transaction, and the position after them.
    batch: Vec<String>,
    batch_end: i64,
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
    /// Values appended (accepted by the partition logs), the offset commit included.
    written: HashSet<String>,
}

struct World {
    rng: Rng,
    now: i64,
    fs: SimFs,
    storage: Storage,
    /// The output partitions and the offsets partition.
    data: BTreeMap<TopicPartition, Arc<Log>>,
    inputs: Vec<Arc<Log>>,
    offsets_tp: TopicPartition,
    coord: Coordinator,
    groups: Groups,
    /// Marker requests on the wire: (sender incarnation, request, partition).
    markers: Vec<(i32, TxnMarkerRequest, TopicPartition)>,
    /// Reports on the wire back to the coordinator.
    reports: Vec<(i32, TxnMarkerRequest, TopicPartition, MarkerOutcome)>,
    /// Responses on the wire to producers.
    responses: Vec<(RequestId, Reply)>,
    producers: Vec<Instance>,
    next_request: RequestId,
    fates: BTreeMap<String, Fate>,
    faults: bool,
    stats: Stats,
    plant: Option<Plant>,
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

/// A group coordinator (incarnation `incarnation`) that loads the offsets partition from
/// its log, over a freshly loaded offset store.
fn open_groups(storage: &Storage, incarnation: u64, now: i64) -> Groups {
    let store = OffsetsPartition::load(storage, &offsets_config(), 0).unwrap();
    let config = GroupCoordinatorConfig {
        offsets_topic_num_partitions: 1,
        ..GroupCoordinatorConfig::default()
    };
    let mut c = GroupCoordinator::new(config, incarnation);
    c.begin_loading(0);
    c.load_partition(now, 0, load_entries(store.log()).unwrap());
    Groups {
        c,
        store,
        incarnation,
        appends: Vec::new(),
    }
}

fn txn_batch(pid: i64, epoch: i16, seq: i32, values: &[String]) -> Vec<u8> {
    let mut b = BatchBuilder::new(BatchOptions {
        producer_id: pid,
        producer_epoch: epoch,
        base_sequence: seq,
        transactional: true,
        ..BatchOptions::default()
    });
    for v in values {
        b.append(0, None, Some(v.as_bytes()), &[]).unwrap();
    }
    b.build().unwrap()
}

fn plain_batch(values: &[String]) -> Vec<u8> {
    let mut b = BatchBuilder::new(BatchOptions::default());
    for v in values {
        b.append(0, None, Some(v.as_bytes()), &[]).unwrap();
    }
    b.build().unwrap()
}

fn is_retriable(e: KafkaCode) -> bool {
    matches!(
        e,
        KafkaCode::CONCURRENT_TRANSACTIONS
            | KafkaCode::NOT_COORDINATOR
            | KafkaCode::COORDINATOR_LOAD_IN_PROGRESS
            | KafkaCode::COORDINATOR_NOT_AVAILABLE
            | KafkaCode::UNSTABLE_OFFSET_COMMIT
    )
}

/// The input record an output value transforms: `tid-0.1.2|in-0-17` → 17.
fn input_offset(value: &str) -> i64 {
    value.rsplit('-').next().unwrap().parse().unwrap()
}

/// What the committed offset of a transaction's TxnOffsetCommit is recorded as.
fn offsets_value(key: &str, offset: i64) -> String {
    format!("{key}|offsets@{offset}")
}

impl World {
    fn new(seed: u64, plant: Option<Plant>) -> World {
        let fs = SimFs::new(seed);
        fs.create_dir_all(Path::new("/coord")).unwrap();
        let mut storage_config = StorageConfig::default();
        storage_config.fs = Arc::new(SimFs::new(seed ^ 0x5eed));
        storage_config.defaults.log = crate::common::sim_log::small_indexes();
        let storage = Storage::open("/data", storage_config).unwrap();
        storage
            .create_topic(INPUT, TRANSACTIONAL_IDS as u32, TopicConfig::new())
            .unwrap();
        storage
            .create_topic(OUTPUT, OUTPUT_PARTITIONS as u32, TopicConfig::new())
            .unwrap();
        let inputs: Vec<Arc<Log>> = (0..TRANSACTIONAL_IDS as u32)
            .map(|p| storage.partition(INPUT, p).unwrap())
            .collect();
        for (p, log) in inputs.iter().enumerate() {
            let values: Vec<String> = (0..INPUT_RECORDS)
                .map(|o| format!("{INPUT}-{p}-{o}"))
                .collect();
            log.append(&plain_batch(&values)).unwrap();
        }
        let coord = open_coordinator(&fs, 1, 0);
        let groups = open_groups(&storage, 1, 0);
        let offsets_tp = coord.c.offsets_partition_for(GROUP);
        assert_eq!(offsets_tp, TopicPartition::new(OFFSETS_TOPIC, 0));
        let mut data = BTreeMap::new();
        for p in 0..OUTPUT_PARTITIONS {
            let log = storage.partition(OUTPUT, p as u32).unwrap();
            data.insert(TopicPartition::new(OUTPUT, p), log);
        }
        data.insert(offsets_tp.clone(), Arc::clone(groups.store.log()));
        let producers = (0..TRANSACTIONAL_IDS)
            .map(|i| Instance::new(i, 0))
            .collect();
        World {
            rng: Rng(seed),
            now: 0,
            fs,
            storage,
            data,
            inputs,
            offsets_tp,
            coord,
            groups,
            markers: Vec::new(),
            reports: Vec::new(),
            responses: Vec::new(),
            producers,
            next_request: 0,
            fates: BTreeMap::new(),
            faults: true,
            stats: Stats::default(),
            plant,
        }
    }

    /// Producers waiting for an answer from `to` that is not on the wire will never get it.
    fn forget_unanswered(&mut self, to: To) {
        let answered: HashSet<RequestId> = self.responses.iter().map(|(r, _)| *r).collect();
        for p in &mut self.producers {
            if p.waiting
                .is_some_and(|(r, t)| t == to && !answered.contains(&r))
            {
                p.waiting = None;
            }
        }
    }

    fn crash(&mut self, point: CrashPoint) {
        *self.stats.crashes.entry(point).or_default() += 1;
        self.fs = self.fs.crash();
        // The dead coordinator's reports and unanswered requests are gone; its marker
        // requests already on the wire may still land.
        self.reports.clear();
        self.forget_unanswered(To::Txn);
        let incarnation = self.coord.incarnation + 1;
        self.coord = open_coordinator(&self.fs, incarnation, self.now);
    }

    /// The group coordinator restarts: each append it had asked for was written or is lost
    /// (unanswered either way), and the new one loads the partition from the log.
    fn restart_groups(&mut self) {
        *self
            .stats
            .crashes
            .entry(CrashPoint::GroupCoordinator)
            .or_default() += 1;
        for a in std::mem::take(&mut self.groups.appends) {
            if self.rng.chance(50) {
                let _ = self.groups.store.append_coordinator_records(&a, self.now);
            }
        }
        self.forget_unanswered(To::Group);
        let incarnation = self.groups.incarnation + 1;
        self.groups = open_groups(&self.storage, incarnation, self.now);
    }

    /// Routes both coordinators' outputs onto the wire.
    fn drain(&mut self) {
        while let Some(out) = self.coord.c.poll_output() {
            match out {
                Output::Response { request, response } => {
                    self.responses.push((request, Reply::Txn(response)))
                }
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
        while let Some(out) = self.groups.c.poll_output() {
            match out {
                gc::Output::Response { request, response } => {
                    self.responses.push((request, Reply::Group(response)))
                }
                gc::Output::Append(a) => self.groups.appends.push(a),
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
        if self.faults && completes && self.rng.chance(5) {
            // Written but not yet durable: the crash may or may not keep it.
            self.crash(CrashPoint::BeforeCompleteDurable);
            return true;
        }
        log.flush().unwrap();
        if self.faults && self.rng.chance(6) {
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

    /// The oldest pending `__consumer_offsets` append is written through the offset store
    /// (a fenced producer's is refused by the log) and reported to the group coordinator.
    fn complete_group_append(&mut self) -> bool {
        if self.groups.appends.is_empty() {
            return false;
        }
        let mut a = self.groups.appends.remove(0);
        if self.plant == Some(Plant::PlainOffsetCommits) {
            a.producer = None;
        }
        let result = match self.groups.store.append_coordinator_records(&a, self.now) {
            Ok(_) => {
                // Every commit of this simulation is a TxnOffsetCommit naming its transaction.
                for r in &a.records {
                    if let OffsetsRecord::OffsetCommit { value: Some(v), .. } = r {
                        self.fates
                            .entry(v.metadata.clone())
                            .or_default()
                            .written
                            .insert(offsets_value(&v.metadata, v.offset));
                    }
                }
                Ok(())
            }
            Err(e) => {
                let code = streamlog::group::commit_error_code(&e);
                assert_eq!(code, KafkaCode::PRODUCER_FENCED, "offsets append: {e}");
                self.stats.offset_commits_fenced += 1;
                Err(code)
            }
        };
        self.groups.c.append_completed(self.now, a.id, result);
        true
    }

    /// Writes a marker to its partition: the offsets partition's through the offset store,
    /// and then the group coordinator hears of it (Kafka's `onTransactionCompleted`).
    fn write_marker(&mut self, m: &TxnMarkerRequest, tp: &TopicPartition) -> MarkerOutcome {
        let written = if *tp == self.offsets_tp {
            self.groups.store.write_txn_marker(
                m.producer_id,
                m.producer_epoch,
                m.result,
                m.coordinator_epoch,
            )
        } else {
            self.data[tp].write_txn_marker(
                m.producer_id,
                m.producer_epoch,
                m.result,
                m.coordinator_epoch,
            )
        };
        match written {
            Ok(_) => {
                if *tp == self.offsets_tp && self.plant != Some(Plant::GroupMissesMarkers) {
                    let commit = m.result == TxnResult::Commit
                        || self.plant == Some(Plant::GroupCommitsOnAbort);
                    self.groups
                        .c
                        .complete_transaction(m.producer_id, &[tp.partition], commit);
                }
                MarkerOutcome::Written
            }
            Err(Error::InvalidProducerEpoch { .. }) => {
                MarkerOutcome::Failed(KafkaCode::INVALID_PRODUCER_EPOCH)
            }
            Err(Error::TransactionCoordinatorFenced { .. }) => {
                MarkerOutcome::Failed(KafkaCode::TRANSACTION_COORDINATOR_FENCED)
            }
            Err(e) => panic!("marker on {tp}: {e}"),
        }
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
            let outcome = self.write_marker(&m, &tp);
            if self.faults && self.rng.chance(10) {
                // Delivered twice (a transport retransmission).
                let _ = self.write_marker(&m, &tp);
            }
            outcome
        };
        if from == self.coord.incarnation {
            self.reports.push((from, m.clone(), tp.clone(), outcome));
            if self.faults && self.rng.chance(10) {
                self.reports.push((from, m, tp, outcome));
            }
        }
        if self.faults && self.rng.chance(1) {
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
        let (request, reply) = self.responses.swap_remove(i);
        let Some(pi) = self
            .producers
            .iter()
            .position(|p| p.waiting.is_some_and(|(r, _)| r == request))
        else {
            return true;
        };
        let faults = self.faults;
        let p = &mut self.producers[pi];
        p.waiting = None;
        let error = match reply {
            Reply::Txn(Response::InitProducerId(r)) => {
                if r.error == KafkaCode::NONE {
                    p.pid = r.producer_id;
                    p.epoch = r.producer_epoch;
                    p.seqs.clear();
                    p.step = Step::Fetch;
                }
                r.error
            }
            Reply::Txn(Response::AddPartitionsToTxn(r)) => {
                let e = r[0].error();
                if e == KafkaCode::NONE {
                    p.step = Step::Write;
                }
                e
            }
            Reply::Txn(Response::AddOffsetsToTxn(e)) => {
                if e == KafkaCode::NONE {
                    p.step = Step::CommitOffsets;
                }
                e
            }
            Reply::Txn(Response::EndTxn(e)) => {
                if e == KafkaCode::NONE {
                    self.fates.entry(p.key.clone()).or_default().acked = true;
                    if p.commit {
                        p.position = p.batch_end;
                        p.step = if p.txns >= TXNS_PER_INSTANCE || !faults {
                            Step::Done
                        } else {
                            Step::Begin
                        };
                    } else {
                        // Aborted: rewind to what the group committed.
                        p.step = Step::Fetch;
                    }
                }
                e
            }
            Reply::Group(gc::Response::OffsetFetch(r)) => {
                let e = if r.error_code.is_error() {
                    r.error_code
                } else {
                    r.partitions[0].error_code
                };
                if e == KafkaCode::NONE {
                    p.position = r.partitions[0].committed_offset.max(0);
                    p.step = if faults { Step::Begin } else { Step::Done };
                }
                e
            }
            Reply::Group(gc::Response::TxnOffsetCommit(r)) => {
                let e = r.partitions[0].error_code;
                if e == KafkaCode::NONE {
                    p.step = Step::End;
                }
                e
            }
            Reply::Group(r) => panic!("unexpected {r:?}"),
        };
        if error.is_error() && !is_retriable(error) {
            p.dead = true;
        }
        true
    }

    /// One producer acts (sends its next request, or reads its input and writes its output).
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
        match self.producers[pi].step {
            Step::Init => {
                let p = &mut self.producers[pi];
                p.waiting = Some((request, To::Txn));
                let tid = p.tid.clone();
                self.coord.c.init_producer_id(
                    request,
                    InitProducerIdRequest::transactional(tid, TIMEOUT_MS),
                );
            }
            Step::Fetch => {
                let p = &mut self.producers[pi];
                p.waiting = Some((request, To::Group));
                let input = p.input;
                self.groups.c.handle(
                    self.now,
                    request,
                    gc::Request::OffsetFetch(OffsetFetchRequest {
                        group_id: GROUP.into(),
                        partitions: Some(vec![gc::TopicPartition::new(INPUT, input)]),
                        require_stable: true,
                    }),
                );
            }
            Step::Begin => self.begin(pi, request),
            Step::Add | Step::AddOffsets | Step::CommitOffsets | Step::End => {
                self.send(pi, request)
            }
            Step::Write => self.write(pi),
            Step::Done => {}
        }
        true
    }

    /// Starts a transaction: reads the next input records.
    fn begin(&mut self, pi: usize, request: RequestId) {
        let position = self.producers[pi].position;
        if !self.faults || position >= INPUT_RECORDS {
            self.producers[pi].step = Step::Done;
            return;
        }
        let end = (position + self.rng.range(1, 3)).min(INPUT_RECORDS);
        let input = &self.inputs[self.producers[pi].input as usize];
        let batch: Vec<String> = input
            .records_from(position)
            .take((end - position) as usize)
            .map(|r| String::from_utf8(r.unwrap().value().unwrap().to_vec()).unwrap())
            .collect();
        assert_eq!(batch.len() as i64, end - position);
        let mut parts: Vec<TopicPartition> = (0..OUTPUT_PARTITIONS)
            .filter(|_| self.rng.chance(50))
            .map(|p| TopicPartition::new(OUTPUT, p))
            .collect();
        if parts.is_empty() {
            parts.push(TopicPartition::new(
                OUTPUT,
                self.rng.below(OUTPUT_PARTITIONS as u64) as i32,
            ));
        }
        let commit = self.rng.chance(80);
        let stall = self.rng.chance(4);
        let now = self.now;
        let p = &mut self.producers[pi];
        p.txns += 1;
        p.key = format!("{}.{}.{}", p.tid, p.no, p.txns);
        p.parts = parts;
        p.batch = batch;
        p.batch_end = end;
        p.commit = commit;
        if stall {
            p.stall_until = now + i64::from(TIMEOUT_MS) * 2;
        }
        p.step = Step::Add;
        self.send(pi, request);
    }

    /// Writes the transformed records, each to one of the transaction's partitions.
    fn write(&mut self, pi: usize) {
        let mut by_partition: BTreeMap<TopicPartition, Vec<String>> = BTreeMap::new();
        let parts = self.producers[pi].parts.clone();
        for record in self.producers[pi].batch.clone() {
            let tp = parts[self.rng.below(parts.len() as u64) as usize].clone();
            let value = format!("{}|{record}", self.producers[pi].key);
            by_partition.entry(tp).or_default().push(value);
        }
        for (tp, values) in by_partition {
            let p = &mut self.producers[pi];
            let seq = p.seqs.get(&tp).copied().unwrap_or(0);
            let bytes = txn_batch(p.pid, p.epoch, seq, &values);
            match self.data[&tp].append(&bytes) {
                Ok(_) => {
                    p.seqs.insert(tp.clone(), seq + values.len() as i32);
                    self.fates
                        .entry(p.key.clone())
                        .or_default()
                        .written
                        .extend(values);
                }
                Err(Error::InvalidProducerEpoch { .. }) => {
                    p.dead = true;
                    return;
                }
                Err(e) => panic!("append by {} to {tp}: {e}", p.key),
            }
        }
        self.producers[pi].step = Step::AddOffsets;
    }

    fn send(&mut self, pi: usize, request: RequestId) {
        let p = &mut self.producers[pi];
        let (tid, pid, epoch) = (p.tid.clone(), p.pid, p.epoch);
        p.waiting = Some((request, To::Txn));
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
            Step::CommitOffsets => {
                p.waiting = Some((request, To::Group));
                let commit = TxnOffsetCommitRequest {
                    transactional_id: tid,
                    group_id: GROUP.into(),
                    producer_id: pid,
                    producer_epoch: epoch,
                    generation_id: -1,
                    member_id: String::new(),
                    group_instance_id: None,
                    partitions: vec![OffsetCommitPartition {
                        topic: INPUT.into(),
                        partition: p.input,
                        committed_offset: p.batch_end,
                        committed_leader_epoch: -1,
                        // The transaction's key: the checks tie the offset to its transaction.
                        committed_metadata: Some(p.key.clone()),
                    }],
                };
                self.groups
                    .c
                    .handle(self.now, request, gc::Request::TxnOffsetCommit(commit));
            }
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
    }

    /// A transactional id gets a new producer instance; the old one becomes a zombie.
    fn restart_a_producer(&mut self) {
        let i = self.rng.below(TRANSACTIONAL_IDS as u64) as usize;
        let instances = self
            .producers
            .iter()
            .filter(|p| p.input == i as i32)
            .count() as u32;
        if instances < 3 {
            self.producers.push(Instance::new(i, instances));
        }
    }

    fn step(&mut self) {
        self.now += self.rng.range(1, 15);
        self.coord.c.tick(self.now);
        self.groups.c.tick(self.now);
        self.drain();
        if self.faults && self.rng.below(300) == 0 {
            self.crash(CrashPoint::Random);
        }
        if self.faults && self.rng.below(250) == 0 {
            self.restart_groups();
        }
        if self.faults && self.rng.chance(1) {
            self.restart_a_producer();
        }
        let acted = match self.rng.below(6) {
            0 => self.complete_append(),
            1 => self.deliver_marker(),
            2 => self.deliver_report(),
            3 => self.deliver_response(),
            4 => self.complete_group_append(),
            _ => self.producer_step(),
        };
        if !acted {
            let _ = self.complete_append()
                || self.complete_group_append()
                || self.deliver_marker()
                || self.deliver_report()
                || self.deliver_response()
                || self.producer_step();
        }
        self.drain();
    }

    fn idle(&self) -> bool {
        self.coord.appends.is_empty()
            && self.groups.appends.is_empty()
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

    /// What read_committed consumers of the output partitions and of the offsets partition
    /// see, by transaction.
    fn check_consumers(&mut self, seed: u64) -> BTreeMap<String, HashSet<String>> {
        let mut visible: BTreeMap<String, HashSet<String>> = BTreeMap::new();
        for (tp, log) in &self.data {
            let hw = log.log_end_offset();
            let lso = log.last_stable_offset();
            assert_eq!(
                lso, hw,
                "seed {seed}: {tp} LSO stuck at {lso}, log end {hw}"
            );
            let mut seen = HashSet::new();
            for r in consume_committed(log, hw, lso) {
                if *tp == self.offsets_tp {
                    // Only transactional commits are made: each names its transaction. A
                    // retried TxnOffsetCommit writes its record again, in the same transaction.
                    let OffsetsKey::OffsetCommit(_) = OffsetsKey::decode(&r.key.unwrap()).unwrap()
                    else {
                        continue;
                    };
                    let v = OffsetCommitValue::decode(&r.value.unwrap()).unwrap();
                    visible
                        .entry(v.metadata.clone())
                        .or_default()
                        .insert(offsets_value(&v.metadata, v.offset));
                    continue;
                }
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
            let offsets_written = fate.written.iter().any(|v| v.contains("|offsets@"));
            if offsets_written && !visible.contains_key(key) {
                self.stats.offset_commits_aborted += 1;
            }
        }
        visible
    }

    /// The group's committed offsets say exactly what the committed transactions wrote, in
    /// the group coordinator, in one reloaded from the log, and in the offset store.
    fn check_group_offsets(&mut self, seed: u64, visible: &BTreeMap<String, HashSet<String>>) {
        let reloaded = open_groups(&self.storage, u64::MAX, self.now);
        assert_eq!(
            self.groups.store.state().snapshot(),
            reloaded.store.state().snapshot(),
            "seed {seed}: the offset store differs from a reload of its log"
        );
        assert!(
            self.groups.store.state().pending_producers().is_empty(),
            "seed {seed}: transactional offsets left pending"
        );
        for i in 0..TRANSACTIONAL_IDS as i32 {
            let tp = gc::TopicPartition::new(INPUT, i);
            let live = self.groups.c.committed_offset(GROUP, &tp);
            let again = reloaded.c.committed_offset(GROUP, &tp);
            let stored = self.groups.store.state().committed_offset(GROUP, INPUT, i);
            let pair = live.as_ref().map(|o| (o.offset, o.metadata.clone()));
            assert_eq!(
                pair,
                again.as_ref().map(|o| (o.offset, o.metadata.clone())),
                "seed {seed}: {INPUT}-{i} committed offset differs after a reload"
            );
            assert_eq!(
                pair,
                stored.as_ref().map(|o| (o.offset, o.metadata.clone())),
                "seed {seed}: {INPUT}-{i} group coordinator and offset store disagree"
            );
            assert!(
                !self
                    .groups
                    .store
                    .state()
                    .has_pending_transactional_offset(GROUP, INPUT, i),
                "seed {seed}: {INPUT}-{i} offset still pending"
            );
            let committed = live.as_ref().map_or(0, |o| o.offset);
            if let Some(o) = &live {
                // Written by a committed transaction, which is the one that wrote it last.
                let by = visible.get(&o.metadata);
                assert!(
                    by.is_some_and(|v| v.contains(&offsets_value(&o.metadata, o.offset))),
                    "seed {seed}: {INPUT}-{i} committed at {} by {}, not a committed transaction",
                    o.offset,
                    o.metadata
                );
            }
            // Exactly once: the committed transactions of this task transformed each input
            // record below the committed offset once, and none at or above it.
            let prefix = format!("tid-{i}.");
            let mut counts: BTreeMap<i64, usize> = BTreeMap::new();
            for (key, values) in visible {
                if !key.starts_with(&prefix) {
                    continue;
                }
                for v in values.iter().filter(|v| !v.contains("|offsets@")) {
                    *counts.entry(input_offset(v)).or_default() += 1;
                }
            }
            let expected: BTreeMap<i64, usize> = (0..committed).map(|o| (o, 1)).collect();
            assert_eq!(
                counts, expected,
                "seed {seed}: {INPUT}-{i} committed at {committed}: outputs per input record"
            );
            self.stats.committed_input += committed;
        }
    }
}

impl Instance {
    fn new(input: usize, no: u32) -> Instance {
        Instance {
            tid: format!("tid-{input}"),
            input: input as i32,
            no,
            pid: -1,
            epoch: -1,
            step: Step::Init,
            waiting: None,
            seqs: HashMap::new(),
            txns: 0,
            key: String::new(),
            parts: Vec::new(),
            position: 0,
            batch: Vec::new(),
            batch_end: 0,
            commit: false,
            stall_until: 0,
            dead: false,
        }
    }
}

/// Runs one seed; returns its counts.
fn run(seed: u64, plant: Option<Plant>) -> Stats {
    let mut w = World::new(seed, plant);
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
    let visible = w.check_consumers(seed);
    w.check_group_offsets(seed, &visible);
    w.stats
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
    let mut total = Stats::default();
    for &seed in &seeds {
        let result = std::panic::catch_unwind(|| run(seed, None));
        match result {
            Ok(stats) => {
                for (p, n) in stats.crashes {
                    *total.crashes.entry(p).or_default() += n;
                }
                total.committed_input += stats.committed_input;
                total.offset_commits_fenced += stats.offset_commits_fenced;
                total.offset_commits_aborted += stats.offset_commits_aborted;
            }
            Err(e) => {
                eprintln!("txn coordinator simulation failed at seed {seed}; replay with STREAMLOG_SIM_SEED={seed}");
                std::panic::resume_unwind(e);
            }
        }
    }
    eprintln!("{} seeds: {total:?}", seeds.len());
    if seeds.len() >= 100 {
        for point in [
            CrashPoint::AfterPrepareDurable,
            CrashPoint::BetweenMarkers,
            CrashPoint::BeforeCompleteDurable,
            CrashPoint::AfterCompleteDurable,
            CrashPoint::Random,
            CrashPoint::GroupCoordinator,
        ] {
            assert!(
                total.crashes.get(&point).copied().unwrap_or(0) >= 10,
                "crash point {point:?} hardly exercised: {total:?}"
            );
        }
        let n = seeds.len();
        assert!(
            total.committed_input >= n as i64 * 3,
            "little input committed: {total:?}"
        );
        assert!(
            total.offset_commits_aborted >= n / 10,
            "few aborted offset commits: {total:?}"
        );
        assert!(
            total.offset_commits_fenced > 0,
            "no zombie offset commit fenced: {total:?}"
        );
    }
}

/// The checks are not vacuous: each planted bug fails one of the first seeds, at the check
/// meant to catch it.
#[test]
fn planted_bugs_are_caught() {
    for (plant, check) in [
        (Plant::GroupMissesMarkers, "not settled"),
        (Plant::GroupCommitsOnAbort, "outputs per input record"),
        (Plant::PlainOffsetCommits, "partly visible"),
    ] {
        eprintln!("planted bug {plant:?}: a seed is expected to fail with {check:?}");
        let caught = (0..20u64).find_map(|seed| {
            let e = std::panic::catch_unwind(|| run(seed, Some(plant))).err()?;
            let message = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Some(message)
        });
        let message =
            caught.unwrap_or_else(|| panic!("planted bug {plant:?} unnoticed in 20 seeds"));
        assert!(
            message.contains(check),
            "planted bug {plant:?} failed elsewhere: {message}"
        );
    }
}
