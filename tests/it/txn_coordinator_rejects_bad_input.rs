//! Bad requests to the transaction coordinator get Kafka's error code, append nothing to
//! `__transaction_state` and leave the transaction as it was; random requests and random
//! `__transaction_state` bytes never panic.

use streamlog::txn::{
    AddOffsetsToTxnRequest, AddPartitionsToTxnTransaction, EndTxnRequest, InitProducerIdRequest,
    MarkerOutcome, Output, ProducerIdBlock, Response, TopicPartition, TransactionCoordinator,
    TransactionDescription, TxnCoordinatorConfig, TxnStateLoader,
};
use streamlog::KafkaCode;

use crate::common::rng::Rng;

struct H {
    c: TransactionCoordinator,
    next: u64,
}

impl H {
    /// A coordinator owning partition 0 of a one-partition `__transaction_state`, where
    /// "app" has an open transaction on t-0 (producer id 0, epoch 0).
    fn new() -> H {
        let config = TxnCoordinatorConfig {
            transaction_state_partitions: 1,
            ..TxnCoordinatorConfig::default()
        };
        let mut c = TransactionCoordinator::new(config, 1_000);
        c.producer_ids_reserved(ProducerIdBlock {
            first_producer_id: 0,
            size: 1000,
        });
        c.begin_loading(0, 1);
        assert!(c.partition_loaded(TxnStateLoader::new(0, 1)));
        let mut h = H { c, next: 0 };
        let r = h.one(|c, id| {
            c.init_producer_id(id, InitProducerIdRequest::transactional("app", 60_000))
        });
        assert!(matches!(r, Response::InitProducerId(r) if r.error == KafkaCode::NONE));
        assert_eq!(h.add("app", 0, 0, "t", 0), KafkaCode::NONE);
        h
    }

    /// Sends one request, completing appends and markers; returns its response.
    fn one(&mut self, send: impl FnOnce(&mut TransactionCoordinator, u64)) -> Response {
        self.next += 1;
        let id = self.next;
        send(&mut self.c, id);
        let mut response = None;
        while let Some(o) = self.c.poll_output() {
            match o {
                Output::Response {
                    request,
                    response: r,
                } if request == id => response = Some(r),
                Output::AppendTxnLog(a) => self.c.append_completed(a.id, Ok(())),
                Output::WriteTxnMarkers(m) => {
                    for p in m.partitions.clone() {
                        self.c.marker_written(&m, &p, MarkerOutcome::Written);
                    }
                }
                _ => {}
            }
        }
        response.expect("answered")
    }

    /// Sends a request that must be refused: returns the code; checks nothing was appended
    /// and "app" is unchanged.
    fn refused(&mut self, send: impl FnOnce(&mut TransactionCoordinator, u64)) -> KafkaCode {
        let before = self.c.describe_transaction("app");
        self.next += 1;
        let id = self.next;
        send(&mut self.c, id);
        let outputs: Vec<Output> = self.c.drain_outputs().collect();
        assert_eq!(outputs.len(), 1, "{outputs:?}");
        assert_eq!(self.c.describe_transaction("app"), before);
        match &outputs[0] {
            Output::Response { request, response } => {
                assert_eq!(*request, id);
                code(response)
            }
            other => panic!("{other:?}"),
        }
    }

    fn add(&mut self, tid: &str, pid: i64, epoch: i16, topic: &str, p: i32) -> KafkaCode {
        let r = self
            .one(|c, id| c.add_partitions_to_txn(id, vec![txn(tid, pid, epoch, topic, p, false)]));
        code(&r)
    }
}

fn txn(
    tid: &str,
    pid: i64,
    epoch: i16,
    topic: &str,
    p: i32,
    verify: bool,
) -> AddPartitionsToTxnTransaction {
    AddPartitionsToTxnTransaction {
        transactional_id: tid.into(),
        producer_id: pid,
        producer_epoch: epoch,
        verify_only: verify,
        partitions: vec![TopicPartition::new(topic, p)],
    }
}

fn end(tid: &str, pid: i64, epoch: i16, committed: bool) -> EndTxnRequest {
    EndTxnRequest {
        transactional_id: tid.into(),
        producer_id: pid,
        producer_epoch: epoch,
        committed,
    }
}

fn code(r: &Response) -> KafkaCode {
    match r {
        Response::InitProducerId(r) => r.error,
        Response::AddPartitionsToTxn(r) => r[0].error(),
        Response::AddOffsetsToTxn(e) | Response::EndTxn(e) => *e,
    }
}

#[test]
fn unknown_transactional_ids() {
    let mut h = H::new();
    assert_eq!(
        h.refused(|c, id| c.add_partitions_to_txn(id, vec![txn("ghost", 0, 0, "t", 0, false)])),
        KafkaCode::INVALID_PRODUCER_ID_MAPPING
    );
    assert_eq!(
        h.refused(|c, id| c.end_txn(id, end("ghost", 0, 0, true))),
        KafkaCode::INVALID_PRODUCER_ID_MAPPING
    );
    assert_eq!(
        h.refused(|c, id| c.add_offsets_to_txn(
            id,
            AddOffsetsToTxnRequest {
                transactional_id: "ghost".into(),
                producer_id: 0,
                producer_epoch: 0,
                group_id: "g".into()
            }
        )),
        KafkaCode::INVALID_PRODUCER_ID_MAPPING
    );
    assert_eq!(
        h.refused(|c, id| c.add_partitions_to_txn(id, vec![txn("ghost", 0, 0, "t", 0, true)])),
        KafkaCode::INVALID_PRODUCER_ID_MAPPING
    );
    assert_eq!(
        h.c.describe_transaction("ghost").error,
        KafkaCode::TRANSACTIONAL_ID_NOT_FOUND
    );
    assert_eq!(
        h.refused(|c, id| c.end_txn(id, end("", 0, 0, true))),
        KafkaCode::INVALID_REQUEST
    );
}

#[test]
fn wrong_producer_ids_and_epochs() {
    let mut h = H::new();
    for (pid, epoch, expected) in [
        (0, 1, KafkaCode::PRODUCER_FENCED),
        (0, -1, KafkaCode::PRODUCER_FENCED),
        (0, i16::MAX, KafkaCode::PRODUCER_FENCED),
        (7, 0, KafkaCode::INVALID_PRODUCER_ID_MAPPING),
        (-1, 0, KafkaCode::INVALID_PRODUCER_ID_MAPPING),
    ] {
        assert_eq!(
            h.refused(
                |c, id| c.add_partitions_to_txn(id, vec![txn("app", pid, epoch, "t", 1, false)])
            ),
            expected
        );
        assert_eq!(
            h.refused(|c, id| c.end_txn(id, end("app", pid, epoch, true))),
            expected
        );
    }
    // KIP-360 with a producer id that is not this transactional id's.
    let r = h.refused(|c, id| {
        c.init_producer_id(
            id,
            InitProducerIdRequest {
                transactional_id: Some("app".into()),
                transaction_timeout_ms: 60_000,
                producer_id: 99,
                producer_epoch: 0,
            },
        )
    });
    assert_eq!(r, KafkaCode::PRODUCER_FENCED);
    // A producer id without an epoch.
    let r = h.refused(|c, id| {
        c.init_producer_id(
            id,
            InitProducerIdRequest {
                transactional_id: Some("app".into()),
                transaction_timeout_ms: 60_000,
                producer_id: 0,
                producer_epoch: -1,
            },
        )
    });
    assert_eq!(r, KafkaCode::INVALID_REQUEST);
}

#[test]
fn partitions_added_after_end_txn() {
    let mut h = H::new();
    // EndTxn recorded, markers not yet written: adding waits for the end.
    h.next += 1;
    h.c.end_txn(h.next, end("app", 0, 0, true));
    let mut marker = None;
    while let Some(o) = h.c.poll_output() {
        match o {
            Output::AppendTxnLog(a) => h.c.append_completed(a.id, Ok(())),
            Output::WriteTxnMarkers(m) => marker = Some(m),
            _ => {}
        }
    }
    assert_eq!(h.c.describe_transaction("app").state, "PrepareCommit");
    assert_eq!(
        h.refused(|c, id| c.add_partitions_to_txn(id, vec![txn("app", 0, 0, "t", 5, false)])),
        KafkaCode::CONCURRENT_TRANSACTIONS
    );
    assert_eq!(
        h.refused(|c, id| c.end_txn(id, end("app", 0, 0, false))),
        KafkaCode::INVALID_TXN_STATE
    );
    assert_eq!(
        h.refused(|c, id| c.end_txn(id, end("app", 0, 0, true))),
        KafkaCode::CONCURRENT_TRANSACTIONS
    );
    assert_eq!(
        h.refused(|c, id| c.add_partitions_to_txn(id, vec![txn("app", 0, 0, "t", 0, true)])),
        KafkaCode::CONCURRENT_TRANSACTIONS
    );
    let m = marker.unwrap();
    h.c.marker_written(&m, &m.partitions[0], MarkerOutcome::Written);
    while let Some(o) = h.c.poll_output() {
        if let Output::AppendTxnLog(a) = o {
            h.c.append_completed(a.id, Ok(()));
        }
    }
    assert_eq!(h.c.describe_transaction("app").state, "CompleteCommit");
    // Completed: an abort of it is the wrong state; a verify finds the partition gone.
    assert_eq!(
        h.refused(|c, id| c.end_txn(id, end("app", 0, 0, false))),
        KafkaCode::INVALID_TXN_STATE
    );
    assert_eq!(
        h.refused(|c, id| c.add_partitions_to_txn(id, vec![txn("app", 0, 0, "t", 0, true)])),
        KafkaCode::TRANSACTION_ABORTABLE
    );
}

#[test]
fn absurd_timeouts() {
    let mut h = H::new();
    for timeout in [0, -1, i32::MIN, 900_001, i32::MAX] {
        for tid in ["app", "other"] {
            let r = h.refused(|c, id| {
                c.init_producer_id(id, InitProducerIdRequest::transactional(tid, timeout))
            });
            assert_eq!(r, KafkaCode::INVALID_TRANSACTION_TIMEOUT, "{timeout}");
        }
    }
    assert_eq!(
        h.c.describe_transaction("other").error,
        KafkaCode::TRANSACTIONAL_ID_NOT_FOUND
    );
}

#[test]
fn not_coordinator_and_loading() {
    let mut c = TransactionCoordinator::new(TxnCoordinatorConfig::default(), 0);
    c.producer_ids_reserved(ProducerIdBlock {
        first_producer_id: 0,
        size: 10,
    });
    let p = c.partition_for("app");
    c.init_producer_id(1, InitProducerIdRequest::transactional("app", 1000));
    c.begin_loading(p, 3);
    c.init_producer_id(2, InitProducerIdRequest::transactional("app", 1000));
    assert!(!c.partition_loaded(TxnStateLoader::new(p, 2)));
    let codes: Vec<KafkaCode> = c
        .drain_outputs()
        .map(|o| match o {
            Output::Response { response, .. } => code(&response),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        codes,
        [
            KafkaCode::NOT_COORDINATOR,
            KafkaCode::COORDINATOR_LOAD_IN_PROGRESS
        ]
    );
    assert_eq!(
        c.describe_transaction("app").error,
        KafkaCode::COORDINATOR_LOAD_IN_PROGRESS
    );
}

#[test]
fn random_requests_and_bytes_never_panic() {
    let mut rng = Rng(42);
    let mut h = H::new();
    let tids = ["app", "b", "", "c"];
    for _ in 0..20_000 {
        let tid = tids[rng.below(4) as usize].to_string();
        let pid = rng.range(-2, 3);
        let epoch = rng.range(-2, 3) as i16;
        h.next += 1;
        let id = h.next;
        match rng.below(6) {
            0 => h.c.init_producer_id(
                id,
                InitProducerIdRequest {
                    transactional_id: (!rng.chance(10)).then_some(tid),
                    transaction_timeout_ms: rng.range(-10, 1_000_000) as i32,
                    producer_id: if rng.chance(50) { -1 } else { pid },
                    producer_epoch: if rng.chance(50) { -1 } else { epoch },
                },
            ),
            1 => {
                let t = txn(
                    &tid,
                    pid,
                    epoch,
                    if rng.chance(5) { "" } else { "t" },
                    rng.range(-1, 3) as i32,
                    rng.chance(30),
                );
                h.c.add_partitions_to_txn(id, vec![t.clone(), t]);
            }
            2 => h.c.add_offsets_to_txn(
                id,
                AddOffsetsToTxnRequest {
                    transactional_id: tid,
                    producer_id: pid,
                    producer_epoch: epoch,
                    group_id: "g".into(),
                },
            ),
            3 => h.c.end_txn(id, end(&tid, pid, epoch, rng.chance(50))),
            4 => h.c.tick(1_000 + rng.range(0, 10_000_000)),
            _ => {
                let _: TransactionDescription = h.c.describe_transaction(&tid);
            }
        }
        let outputs: Vec<Output> = h.c.drain_outputs().collect();
        for o in outputs {
            match o {
                Output::AppendTxnLog(a) => {
                    let result = if rng.chance(20) {
                        Err(KafkaCode::NOT_ENOUGH_REPLICAS)
                    } else {
                        Ok(())
                    };
                    h.c.append_completed(a.id, result);
                    h.c.append_completed(a.id, Ok(()));
                }
                Output::WriteTxnMarkers(m) => {
                    for p in &m.partitions {
                        let outcome = if rng.chance(20) {
                            MarkerOutcome::Failed(KafkaCode::REQUEST_TIMED_OUT)
                        } else {
                            MarkerOutcome::Written
                        };
                        h.c.marker_written(&m, p, outcome);
                    }
                }
                Output::ReserveProducerIds => h.c.producer_ids_reserved(ProducerIdBlock {
                    first_producer_id: rng.range(0, 5000),
                    size: 10,
                }),
                Output::Response { .. } => {}
            }
        }
    }
    let mut loader = TxnStateLoader::new(0, 1);
    for len in 0..64 {
        for _ in 0..200 {
            let key: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            let value: Vec<u8> = (0..rng.below(80)).map(|_| rng.next() as u8).collect();
            let _ = loader.apply(&key, Some(&value));
            let _ = loader.apply(&[0, 0, 0, 1, b'a'], Some(&value));
        }
    }
}
