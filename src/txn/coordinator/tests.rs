//! Flows through the state machine with the application's part played inline.

use super::*;
use crate::txn::ProducerIdBlock;

/// Appends succeed, markers land, responses are collected.
struct H {
    c: TransactionCoordinator,
    responses: Vec<(RequestId, Response)>,
    markers: Vec<TxnMarkerRequest>,
    appends: Vec<TxnLogAppend>,
    auto: bool,
}

impl H {
    fn new() -> H {
        let config = TxnCoordinatorConfig {
            transaction_state_partitions: 1,
            ..TxnCoordinatorConfig::default()
        };
        let mut c = TransactionCoordinator::new(config, 1000);
        c.producer_ids_reserved(ProducerIdBlock {
            first_producer_id: 0,
            size: 10,
        });
        c.begin_loading(0, 1);
        assert!(c.partition_loaded(TxnStateLoader::new(0, 1)));
        H {
            c,
            responses: vec![],
            markers: vec![],
            appends: vec![],
            auto: true,
        }
    }

    fn run(&mut self) {
        while let Some(o) = self.c.poll_output() {
            match o {
                Output::Response { request, response } => self.responses.push((request, response)),
                Output::AppendTxnLog(a) if self.auto => self.c.append_completed(a.id, Ok(())),
                Output::AppendTxnLog(a) => self.appends.push(a),
                Output::WriteTxnMarkers(m) if self.auto => {
                    for p in m.partitions.clone() {
                        self.c.marker_written(&m, &p, MarkerOutcome::Written);
                    }
                    self.markers.push(m);
                }
                Output::WriteTxnMarkers(m) => self.markers.push(m),
                Output::ReserveProducerIds => {}
            }
        }
    }

    fn init(&mut self, tid: &str) -> InitProducerIdResponse {
        self.c
            .init_producer_id(1, InitProducerIdRequest::transactional(tid, 60_000));
        self.run();
        match self.responses.pop() {
            Some((1, Response::InitProducerId(r))) => r,
            other => panic!("{other:?}"),
        }
    }

    fn add(&mut self, tid: &str, pid: i64, epoch: i16, parts: &[i32]) -> KafkaCode {
        let t = AddPartitionsToTxnTransaction {
            transactional_id: tid.into(),
            producer_id: pid,
            producer_epoch: epoch,
            verify_only: false,
            partitions: parts.iter().map(|p| TopicPartition::new("t", *p)).collect(),
        };
        self.c.add_partitions_to_txn(2, vec![t]);
        self.run();
        match self.responses.pop() {
            Some((2, Response::AddPartitionsToTxn(r))) => r[0].error(),
            other => panic!("{other:?}"),
        }
    }

    fn end(&mut self, tid: &str, pid: i64, epoch: i16, commit: bool) -> KafkaCode {
        self.c.end_txn(
            3,
            EndTxnRequest {
                transactional_id: tid.into(),
                producer_id: pid,
                producer_epoch: epoch,
                committed: commit,
            },
        );
        self.run();
        match self.responses.pop() {
            Some((3, Response::EndTxn(e))) => e,
            other => panic!("{other:?}"),
        }
    }

    fn state(&self, tid: &str) -> &'static str {
        self.c.describe_transaction(tid).state
    }
}

#[test]
fn commit_flow_writes_markers_then_completes() {
    let mut h = H::new();
    let p = h.init("a");
    assert_eq!(
        (p.error, p.producer_id, p.producer_epoch),
        (KafkaCode::NONE, 0, 0)
    );
    assert_eq!(h.add("a", 0, 0, &[0, 1]), KafkaCode::NONE);
    assert_eq!(h.state("a"), "Ongoing");
    assert_eq!(h.end("a", 0, 0, true), KafkaCode::NONE);
    assert_eq!(h.state("a"), "CompleteCommit");
    let m = &h.markers[0];
    assert_eq!(
        (m.result, m.producer_epoch, m.coordinator_epoch),
        (TxnResult::Commit, 0, 1)
    );
    assert_eq!(m.partitions.len(), 2);
    // A retried EndTxn(commit) of a completed commit succeeds; an abort is the wrong state.
    assert_eq!(h.end("a", 0, 0, true), KafkaCode::NONE);
    assert_eq!(h.end("a", 0, 0, false), KafkaCode::INVALID_TXN_STATE);
}

#[test]
fn init_on_open_transaction_fences_and_aborts() {
    let mut h = H::new();
    let p = h.init("a");
    assert_eq!(h.add("a", p.producer_id, 0, &[0]), KafkaCode::NONE);
    let r = h.init("a");
    assert_eq!(r.error, KafkaCode::CONCURRENT_TRANSACTIONS);
    let m = h.markers.last().unwrap();
    assert_eq!((m.result, m.producer_epoch), (TxnResult::Abort, 1));
    assert_eq!(h.state("a"), "CompleteAbort");
    let r = h.init("a");
    assert_eq!((r.error, r.producer_epoch), (KafkaCode::NONE, 2));
    assert_eq!(h.add("a", 0, 0, &[0]), KafkaCode::PRODUCER_FENCED);
    assert_eq!(h.end("a", 0, 0, true), KafkaCode::PRODUCER_FENCED);
}

#[test]
fn responses_wait_for_durable_appends_and_failures_change_nothing() {
    let mut h = H::new();
    h.auto = false;
    h.c.init_producer_id(1, InitProducerIdRequest::transactional("a", 60_000));
    h.run();
    assert!(h.responses.is_empty());
    let a = h.appends.pop().unwrap();
    // A concurrent request meanwhile is told to retry.
    h.c.init_producer_id(9, InitProducerIdRequest::transactional("a", 60_000));
    h.run();
    assert!(matches!(
        h.responses.pop(),
        Some((
            9,
            Response::InitProducerId(InitProducerIdResponse {
                error: KafkaCode::CONCURRENT_TRANSACTIONS,
                ..
            })
        ))
    ));
    h.c.append_completed(a.id, Err(KafkaCode::NOT_ENOUGH_REPLICAS));
    h.run();
    assert!(matches!(
        h.responses.pop(),
        Some((
            1,
            Response::InitProducerId(InitProducerIdResponse {
                error: KafkaCode::COORDINATOR_NOT_AVAILABLE,
                ..
            })
        ))
    ));
    assert_eq!(h.c.describe_transaction("a").producer_epoch, -1);
    h.auto = true;
    assert_eq!(h.init("a").producer_epoch, 0);
}

#[test]
fn timed_out_transaction_is_aborted_with_a_bumped_epoch() {
    let mut h = H::new();
    let p = h.init("a");
    assert_eq!(h.add("a", p.producer_id, 0, &[0]), KafkaCode::NONE);
    h.c.tick(1000 + 60_000 + 10_000);
    h.run();
    assert_eq!(h.state("a"), "CompleteAbort");
    assert_eq!(h.markers.last().unwrap().producer_epoch, 1);
    assert_eq!(h.end("a", 0, 0, true), KafkaCode::PRODUCER_FENCED);
}

#[test]
fn reload_resumes_prepare_commit_and_ignores_stale_reports() {
    let mut h = H::new();
    let p = h.init("a");
    assert_eq!(h.add("a", p.producer_id, 0, &[0, 1]), KafkaCode::NONE);
    h.auto = false;
    h.c.end_txn(
        3,
        EndTxnRequest {
            transactional_id: "a".into(),
            producer_id: 0,
            producer_epoch: 0,
            committed: true,
        },
    );
    h.run();
    let prepare = h.appends.pop().unwrap();
    h.c.append_completed(prepare.id, Ok(()));
    h.run();
    let old = h.markers.pop().unwrap();
    // The coordinator fails over: the partition is reloaded from its records.
    let mut loader = TxnStateLoader::new(0, 2);
    for a in h.appends.iter().chain([&prepare]) {
        loader.apply(&a.key, a.value.as_deref()).unwrap();
    }
    h.c.begin_loading(0, 2);
    assert!(h.c.partition_loaded(loader));
    h.run();
    let new = h.markers.pop().unwrap();
    assert_eq!(
        (new.coordinator_epoch, new.result, new.partitions.len()),
        (2, TxnResult::Commit, 2)
    );
    // A report for the old request changes nothing.
    h.c.marker_written(&old, &old.partitions[0], MarkerOutcome::Written);
    h.c.marker_written(&new, &new.partitions[0], MarkerOutcome::Written);
    h.c.marker_written(&new, &new.partitions[0], MarkerOutcome::Written);
    h.run();
    assert_eq!(h.state("a"), "PrepareCommit");
    h.c.marker_written(
        &new,
        &new.partitions[1],
        MarkerOutcome::Failed(KafkaCode::NOT_LEADER_OR_FOLLOWER),
    );
    h.c.tick(5000);
    h.run();
    let retry = h.markers.pop().unwrap();
    assert_eq!(retry.partitions, vec![new.partitions[1].clone()]);
    h.c.marker_written(&retry, &retry.partitions[0], MarkerOutcome::Written);
    h.run();
    let complete = h.appends.pop().unwrap();
    h.c.append_completed(complete.id, Ok(()));
    assert_eq!(h.state("a"), "CompleteCommit");
}

#[test]
fn epoch_exhaustion_rolls_to_a_new_producer_id() {
    let mut h = H::new();
    let p = h.init("a");
    let mut loader = TxnStateLoader::new(0, 2);
    let mut rec = h.c.txn(0, "a").unwrap().rec.clone();
    rec.producer_epoch = i16::MAX - 2;
    let key = TransactionLogKey {
        transactional_id: "a".into(),
    }
    .encode()
    .unwrap();
    loader
        .apply(&key, Some(&rec.to_value().encode(0).unwrap()))
        .unwrap();
    h.c.begin_loading(0, 2);
    h.c.partition_loaded(loader);
    let r = h.init("a");
    assert_eq!(
        (r.producer_id, r.producer_epoch),
        (p.producer_id, i16::MAX - 1)
    );
    let r = h.init("a");
    assert_ne!(r.producer_id, p.producer_id);
    assert_eq!(r.producer_epoch, 0);
}

#[test]
fn bad_requests_get_kafka_codes() {
    let mut h = H::new();
    let p = h.init("a");
    h.c.init_producer_id(5, InitProducerIdRequest::transactional("a", 900_001));
    h.c.init_producer_id(6, InitProducerIdRequest::transactional("", 1000));
    h.c.init_producer_id(7, InitProducerIdRequest::transactional("a", 0));
    h.run();
    let codes: Vec<KafkaCode> = h
        .responses
        .drain(..)
        .map(|(_, r)| match r {
            Response::InitProducerId(r) => r.error,
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(
        codes,
        [
            KafkaCode::INVALID_TRANSACTION_TIMEOUT,
            KafkaCode::INVALID_REQUEST,
            KafkaCode::INVALID_TRANSACTION_TIMEOUT
        ]
    );
    assert_eq!(
        h.add("nobody", 0, 0, &[0]),
        KafkaCode::INVALID_PRODUCER_ID_MAPPING
    );
    assert_eq!(
        h.add("a", p.producer_id + 1, 0, &[0]),
        KafkaCode::INVALID_PRODUCER_ID_MAPPING
    );
    assert_eq!(
        h.add("a", p.producer_id, 3, &[0]),
        KafkaCode::PRODUCER_FENCED
    );
    assert_eq!(
        h.end("a", p.producer_id, 0, true),
        KafkaCode::INVALID_TXN_STATE
    );
    assert_eq!(
        h.c.describe_transaction("nobody").error,
        KafkaCode::TRANSACTIONAL_ID_NOT_FOUND
    );
    assert_eq!(h.state("a"), "Empty");
}
