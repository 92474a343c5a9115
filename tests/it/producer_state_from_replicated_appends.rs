//! A follower's `append_replicated` skips the producer checks (the leader made them) but
//! records producer state, transactions and aborted transactions as the leader did, so after
//! a failover the follower recognises retries and hides aborted records.

use crate::common::producers;

use producers::batch;
use streamlog::{
    BatchBuilder, BatchMut, BatchOptions, ControlRecord, IsolationLevel, Log, LogConfig,
};

fn at(offset: i64, mut bytes: Vec<u8>) -> Vec<u8> {
    let mut b = BatchMut::new(&mut bytes).unwrap();
    b.set_base_offset(offset);
    bytes
}

fn marker(offset: i64, pid: i64, epoch: i16, commit: bool) -> Vec<u8> {
    BatchBuilder::control_batch(
        BatchOptions {
            base_offset: offset,
            producer_id: pid,
            producer_epoch: epoch,
            ..BatchOptions::default()
        },
        &ControlRecord::end_txn(commit, 3),
        producers::T0,
    )
    .unwrap()
}

#[test]
fn follower_state_matches_the_leaders() {
    let dir = tempfile::tempdir().unwrap();
    let follower = Log::open(dir.path(), LogConfig::default()).unwrap();
    // What a leader accepted: a sequence gap the follower must not second-guess (the leader
    // may have lost state to retention), a transaction aborted, another left open.
    let mut bytes = at(0, batch(1, 0, 0, 2, false));
    bytes.extend(at(2, batch(1, 0, 50, 1, false)));
    bytes.extend(at(3, batch(2, 0, 0, 2, true)));
    bytes.extend(marker(5, 2, 0, false));
    bytes.extend(at(6, batch(3, 0, 0, 1, true)));
    follower.append_replicated(&bytes).unwrap();
    assert_eq!(follower.log_end_offset(), 7);

    assert_eq!(follower.producer_state(1).unwrap().last_seq(), 50);
    let aborted = follower.aborted_transactions(0, 7);
    assert_eq!(aborted.len(), 1);
    assert_eq!(
        (
            aborted[0].producer_id,
            aborted[0].first_offset,
            aborted[0].last_offset
        ),
        (2, 3, 5)
    );
    assert_eq!(follower.last_stable_offset(), 6);
    let f = follower
        .fetch(0, 1 << 20, IsolationLevel::ReadCommitted)
        .unwrap();
    assert_eq!(f.next_offset, 6);
    assert_eq!(f.aborted_transactions.unwrap()[0].first_offset, 3);
    let committed: Vec<i64> = follower
        .records_committed(0)
        .map(|r| r.unwrap().offset())
        .collect();
    assert_eq!(committed, [0, 1, 2]);

    // Promoted to leader: a client's retry is recognised.
    let retry = follower.append(&batch(1, 0, 50, 1, false)).unwrap();
    assert!(retry.duplicate);
    assert_eq!(retry.first_offset, 2);
    // And the state survives a reopen (the `.txnindex` was written on the follower too).
    follower.close().unwrap();
    let reopened = Log::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(reopened.aborted_transactions(0, 7), aborted);
    assert_eq!(reopened.last_stable_offset(), 6);
}
