//! Unit tests of the leader and follower rules on three replicas in memory.

use std::sync::Arc;

use super::*;
use crate::io::SimFs;
use crate::log::LogOptions;
use crate::{BatchBuilder, BatchOptions, HighWatermarkPolicy, Log, LogConfig};

struct Cluster {
    fs: Vec<SimFs>,
    replicas: Vec<Replica>,
    network: InMemoryNetwork,
    controller: InMemoryController,
    completions: Vec<ProduceCompletion>,
    reports: Vec<Output>,
    now: i64,
}

fn log_config() -> LogConfig {
    LogConfig::builder()
        .segment_index_bytes(4096)
        .high_watermark_policy(HighWatermarkPolicy::Replicated)
        .build()
        .unwrap()
}

fn open(fs: &SimFs) -> Arc<Log> {
    let (log, _) = LogOptions::new(log_config())
        .create(true)
        .fs(Arc::new(fs.clone()))
        .open("/p/t-0")
        .unwrap();
    Arc::new(log)
}

fn batch(value: &[u8]) -> Vec<u8> {
    let mut b = BatchBuilder::new(BatchOptions::default());
    b.append(0, None, Some(value), &[]).unwrap();
    b.build().unwrap()
}

impl Cluster {
    fn new(n: i32, config: ReplicationConfig) -> Cluster {
        let fs: Vec<SimFs> = (0..n).map(|i| SimFs::new(i as u64)).collect();
        let replicas = fs
            .iter()
            .enumerate()
            .map(|(i, f)| Replica::new(i as i32, 1, open(f), config.clone(), 0).unwrap())
            .collect();
        let controller =
            InMemoryController::new((0..n).collect(), config.min_insync_replicas, false);
        let mut c = Cluster {
            fs,
            replicas,
            network: InMemoryNetwork::new(),
            controller,
            completions: Vec::new(),
            reports: Vec::new(),
            now: 0,
        };
        let state = c.controller.state().clone();
        c.broadcast(state);
        c
    }

    fn broadcast(&mut self, state: PartitionState) {
        for r in &mut self.replicas {
            r.on_partition_state(state.clone(), self.now).unwrap();
        }
    }

    fn collect(&mut self) {
        for r in &mut self.replicas {
            for out in r.dispatch(self.network.transport(), &mut self.controller) {
                match out {
                    Output::ProduceCompleted(c) => self.completions.push(c),
                    other => self.reports.push(other),
                }
            }
        }
    }

    /// Delivers everything in flight (and what it causes), applies proposals.
    fn settle(&mut self) {
        for _ in 0..1000 {
            self.collect();
            let mut moved = false;
            while let Some(e) = self.network.deliver_next() {
                moved = true;
                let to = e.to as usize;
                self.replicas[to]
                    .on_message(e.from, e.message, self.now)
                    .unwrap();
                self.collect();
            }
            for state in self.controller.apply_pending() {
                moved = true;
                self.broadcast(state);
            }
            if !moved {
                return;
            }
        }
        panic!("did not settle");
    }

    fn advance(&mut self, ms: i64) {
        self.now += ms;
        for r in &mut self.replicas {
            r.tick(self.now).unwrap();
        }
        self.settle();
    }

    fn hws(&self) -> Vec<i64> {
        self.replicas
            .iter()
            .map(|r| r.log().high_watermark())
            .collect()
    }

    fn leos(&self) -> Vec<i64> {
        self.replicas
            .iter()
            .map(|r| r.log().log_end_offset())
            .collect()
    }
}

fn config(min_isr: usize) -> ReplicationConfig {
    ReplicationConfig {
        min_insync_replicas: min_isr,
        ..ReplicationConfig::default()
    }
}

#[test]
fn acks_all_completes_when_the_isr_has_it() {
    let mut c = Cluster::new(3, config(2));
    c.settle();
    let ProduceOutcome::Pending { id, .. } =
        c.replicas[0].append(&batch(b"a"), Acks::All, 0).unwrap()
    else {
        panic!("acks=all waits")
    };
    assert_eq!(c.hws(), vec![0, 0, 0]);
    c.settle();
    assert_eq!(c.completions.len(), 1);
    assert_eq!(
        (c.completions[0].id, c.completions[0].error),
        (id, KafkaCode::NONE)
    );
    assert_eq!(c.hws(), vec![1, 1, 1]);
    assert_eq!(c.leos(), vec![1, 1, 1]);
}

#[test]
fn high_watermark_waits_for_the_slowest_isr_member() {
    let mut c = Cluster::new(3, config(1));
    c.settle();
    c.network.set_link(0, 2, false);
    c.replicas[0].append(&batch(b"a"), Acks::Leader, 0).unwrap();
    c.advance(1);
    assert_eq!(c.leos(), vec![1, 1, 0]);
    assert_eq!(
        c.replicas[0].log().high_watermark(),
        0,
        "replica 2 is in the ISR"
    );
    // After replica.lag.time.max.ms replica 2 leaves the ISR and the HW moves.
    c.advance(30_001);
    assert_eq!(c.controller.state().isr, vec![0, 1]);
    assert_eq!(c.replicas[0].log().high_watermark(), 1);
    // Once it can fetch again and catches up, it rejoins.
    c.network.heal();
    c.advance(31_000);
    assert_eq!(c.controller.state().isr, vec![0, 1, 2]);
    assert_eq!(c.hws(), vec![1, 1, 1]);
}

#[test]
fn not_enough_replicas_before_and_after_append() {
    let mut c = Cluster::new(3, config(2));
    c.settle();
    c.network.set_link(0, 1, false);
    c.network.set_link(0, 2, false);
    // Followers at the leader's log end stay in sync however long they are silent (Kafka's
    // rule): give them something to miss.
    c.replicas[0]
        .append(&batch(b"b"), Acks::Leader, c.now)
        .unwrap();
    c.advance(30_001);
    assert_eq!(c.controller.state().isr, vec![0]);
    assert_eq!(c.controller.state().elr, vec![1, 2]);
    assert_eq!(
        c.replicas[0]
            .append(&batch(b"a"), Acks::All, c.now)
            .unwrap(),
        ProduceOutcome::Rejected(KafkaCode::NOT_ENOUGH_REPLICAS)
    );
    // acks=1 was appended, but the HW stays put under min ISR (KIP-966).
    c.advance(1);
    assert_eq!(c.replicas[0].log().high_watermark(), 0);

    // An acks=all produce in flight when the ISR falls below min fails after the append.
    let mut c = Cluster::new(
        3,
        ReplicationConfig {
            request_timeout_ms: 60_000,
            ..config(2)
        },
    );
    c.settle();
    c.network.set_link(0, 1, false);
    c.network.set_link(0, 2, false);
    let ProduceOutcome::Pending { id, .. } =
        c.replicas[0].append(&batch(b"a"), Acks::All, 0).unwrap()
    else {
        panic!("acks=all waits")
    };
    c.advance(30_001);
    assert_eq!(c.completions.len(), 1);
    assert_eq!(c.completions[0].id, id);
    assert_eq!(
        c.completions[0].error,
        KafkaCode::NOT_ENOUGH_REPLICAS_AFTER_APPEND
    );
}

#[test]
fn diverging_follower_truncates_to_the_leader() {
    let mut c = Cluster::new(3, config(1));
    c.settle();
    c.replicas[0].append(&batch(b"a"), Acks::All, 0).unwrap();
    c.settle();
    assert_eq!(c.hws(), vec![1, 1, 1]);
    // The leader appends two records nobody fetches, then loses leadership.
    c.network.set_link(0, 1, false);
    c.network.set_link(0, 2, false);
    c.replicas[0].append(&batch(b"x"), Acks::Leader, 0).unwrap();
    c.replicas[0].append(&batch(b"y"), Acks::Leader, 0).unwrap();
    let state = c.controller.fence_replica(0, |r| r != 0);
    assert_eq!(state.leader, 1);
    c.broadcast(state);
    c.settle();
    c.replicas[1]
        .append(&batch(b"b"), Acks::All, c.now)
        .unwrap();
    c.settle();
    // Replica 0 comes back as a follower: its epoch-0 tail diverges from the leader's
    // epoch-1 record at offset 1.
    c.network.heal();
    let mut state = c.controller.state().clone();
    state.isr.push(0);
    state.partition_epoch += 1;
    c.controller.state_mut().clone_from(&state);
    c.broadcast(state);
    // Its last fetch went nowhere: it asks again after replica.socket.timeout.ms.
    c.advance(30_000);
    assert_eq!(c.leos(), vec![2, 2, 2]);
    for r in &c.replicas {
        let bytes = r.log().read_bytes(0, 1 << 20, None).unwrap();
        let leader = c.replicas[1].log().read_bytes(0, 1 << 20, None).unwrap();
        assert_eq!(bytes, leader, "replica {} agrees with the leader", r.id());
    }
    assert_eq!(c.replicas[0].log().end_offset_for_epoch(0), Some((0, 1)));
}

#[test]
fn follower_never_truncates_below_its_high_watermark() {
    let mut c = Cluster::new(2, config(1));
    c.settle();
    c.replicas[0].append(&batch(b"a"), Acks::All, 0).unwrap();
    c.replicas[0].append(&batch(b"b"), Acks::All, 0).unwrap();
    c.settle();
    assert_eq!(c.hws(), vec![2, 2]);
    let r = &mut c.replicas[1];
    let correlation_id = r.next_correlation_id; // the fetch about to be sent
    r.tick(c.now + 30_000).unwrap();
    let out = r.poll_output();
    assert!(matches!(out, Some(Output::Send(_))), "{out:?}");
    // A leader claims the follower's epoch ends at 0 (it never would without an unclean
    // election): the follower keeps what is below its high watermark.
    let answer = FetchResponse {
        correlation_id,
        error: KafkaCode::NONE,
        leader_epoch: 0,
        high_watermark: 2,
        log_start_offset: 0,
        log_end_offset: 2,
        diverging_epoch: Some(EpochEndOffset {
            epoch: 0,
            end_offset: 0,
        }),
        records: Vec::new(),
    };
    r.on_message(0, Message::FetchResponse(answer), c.now + 30_000)
        .unwrap();
    assert_eq!(r.log().log_end_offset(), 2);
}

#[test]
fn fetches_of_an_old_epoch_or_incarnation_are_refused() {
    let mut c = Cluster::new(2, config(1));
    c.settle();
    let fetch = |epoch: i32, replica_epoch: i64| FetchRequest {
        correlation_id: 9,
        replica_id: 1,
        replica_epoch,
        current_leader_epoch: epoch,
        fetch_offset: 0,
        last_fetched_epoch: None,
        log_start_offset: 0,
        max_bytes: 1024,
    };
    let leader = &mut c.replicas[0];
    leader
        .on_message(1, Message::Fetch(fetch(-5, 1)), 0)
        .unwrap();
    let Some(Output::Send(Envelope {
        message: Message::FetchResponse(r),
        ..
    })) = leader.poll_output()
    else {
        panic!("answered")
    };
    assert_eq!(r.error, KafkaCode::FENCED_LEADER_EPOCH);
    leader
        .on_message(1, Message::Fetch(fetch(7, 1)), 0)
        .unwrap();
    let Some(Output::Send(Envelope {
        message: Message::FetchResponse(r),
        ..
    })) = leader.poll_output()
    else {
        panic!("answered")
    };
    assert_eq!(r.error, KafkaCode::UNKNOWN_LEADER_EPOCH);
    // Incarnation 0 is older than the 1 the follower fetched with: ignored.
    leader
        .on_message(1, Message::Fetch(fetch(0, 0)), 0)
        .unwrap();
    assert_eq!(leader.poll_output(), None);
}

#[test]
fn flushed_mode_counts_only_durable_offsets() {
    let mut c = Cluster::new(
        2,
        ReplicationConfig {
            durability: ReplicaDurability::Flushed,
            ..config(1)
        },
    );
    c.settle();
    c.replicas[0].append(&batch(b"a"), Acks::All, 0).unwrap();
    c.settle();
    assert_eq!(c.hws(), vec![1, 1]);
    for (r, fs) in c.replicas.iter().zip(&c.fs) {
        assert_eq!(r.log().recovery_point(), 1, "replica {} flushed", r.id());
        assert!(fs.sync_count() > 0);
    }
}

#[test]
fn offsets_for_leader_epoch_answers_from_the_cache() {
    let mut c = Cluster::new(2, config(1));
    c.settle();
    c.replicas[0].append(&batch(b"a"), Acks::All, 0).unwrap();
    c.settle();
    let req = OffsetsForLeaderEpochRequest {
        correlation_id: 3,
        replica_id: 1,
        current_leader_epoch: 0,
        leader_epoch: 0,
    };
    c.replicas[0]
        .on_message(1, Message::OffsetsForLeaderEpoch(req), 0)
        .unwrap();
    let Some(Output::Send(Envelope {
        message: Message::OffsetsForLeaderEpochResponse(r),
        ..
    })) = c.replicas[0].poll_output()
    else {
        panic!("answered")
    };
    assert_eq!(r.error, KafkaCode::NONE);
    assert_eq!(
        r.end_offset,
        EpochEndOffset {
            epoch: 0,
            end_offset: 1
        }
    );
}

#[test]
fn replica_needs_a_replicated_log() {
    let fs = SimFs::new(1);
    let (log, _) = LogOptions::new(LogConfig::default())
        .create(true)
        .fs(Arc::new(fs))
        .open("/p/t-0")
        .unwrap();
    assert!(Replica::new(0, 1, Arc::new(log), ReplicationConfig::default(), 0).is_err());
}

#[test]
fn follower_behind_the_leaders_log_start_starts_over_there() {
    let mut c = Cluster::new(3, config(1));
    c.settle();
    c.replicas[0].append(&batch(b"a"), Acks::All, 0).unwrap();
    c.settle();
    assert_eq!(c.leos(), vec![1, 1, 1]);
    // Replica 2 falls behind, leaves the ISR, and the leader deletes what it lacks.
    c.network.set_link(0, 2, false);
    for v in [b"b", b"c", b"d", b"e"] {
        c.replicas[0]
            .append(&batch(v), Acks::Leader, c.now)
            .unwrap();
    }
    c.advance(30_001);
    assert_eq!(c.controller.state().isr, vec![0, 1]);
    assert_eq!(c.replicas[0].log().high_watermark(), 5);
    c.replicas[0].log().delete_records_before(4).unwrap();
    assert_eq!(c.replicas[0].log().log_start_offset(), 4);
    assert_eq!(c.leos(), vec![5, 5, 1]);
    // Its fetch from offset 1 is out of range: it empties its log, restarts at the
    // leader's log start, catches up and rejoins the ISR.
    c.network.heal();
    c.advance(31_000);
    let follower = c.replicas[2].log();
    assert_eq!(
        (follower.log_start_offset(), follower.log_end_offset()),
        (4, 5)
    );
    assert_eq!(follower.high_watermark(), 5);
    let values: Vec<Vec<u8>> = follower
        .records_from(4)
        .map(|r| r.unwrap().value().unwrap().to_vec())
        .collect();
    assert_eq!(values, vec![b"e".to_vec()]);
    assert_eq!(c.controller.state().isr, vec![0, 1, 2]);
    assert!(c
        .reports
        .iter()
        .all(|r| !matches!(r, Output::UncleanTruncation { .. })));
}
