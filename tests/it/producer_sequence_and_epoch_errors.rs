//! Kafka's producer checks: out-of-order sequences, fenced epochs, a new epoch starting at
//! sequence 0, sequences wrapping at i32::MAX, transactional state, coordinator epochs;
//! every rejected batch leaves the log as it was.

use crate::common::producers;

use producers::batch;
use streamlog::{Error, Log, LogConfig, TxnResult};

fn open() -> (tempfile::TempDir, Log) {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    (dir, log)
}

#[test]
fn out_of_order_sequence_is_rejected_and_nothing_written() {
    let (_d, log) = open();
    log.append(&batch(1, 0, 0, 3, false)).unwrap();
    let end = log.log_end_offset();
    for seq in [2, 4, 100] {
        let e = log.append(&batch(1, 0, seq, 1, false)).unwrap_err();
        assert!(
            matches!(e, Error::OutOfOrderSequence { producer_id: 1, first_sequence, last_sequence: 2, .. } if first_sequence == seq),
            "{e}"
        );
    }
    assert_eq!(log.log_end_offset(), end);
    assert_eq!(
        log.append(&batch(1, 0, 3, 1, false)).unwrap().first_offset,
        3
    );
}

#[test]
fn unknown_producer_may_start_at_any_sequence() {
    // Kafka accepts any sequence from a producer it has no state for (its batches may have
    // been removed by retention).
    let (_d, log) = open();
    assert_eq!(
        log.append(&batch(5, 2, 77, 2, false)).unwrap().first_offset,
        0
    );
    assert_eq!(log.producer_state(5).unwrap().last_seq(), 78);
}

#[test]
fn older_epoch_is_fenced_and_new_epoch_starts_at_zero() {
    let (_d, log) = open();
    log.append(&batch(1, 4, 0, 2, false)).unwrap();
    let e = log.append(&batch(1, 3, 2, 1, false)).unwrap_err();
    assert!(
        matches!(
            e,
            Error::InvalidProducerEpoch {
                producer_epoch: 3,
                current_epoch: 4,
                ..
            }
        ),
        "{e}"
    );
    let e = log.append(&batch(1, 5, 2, 1, false)).unwrap_err();
    assert!(
        matches!(
            e,
            Error::OutOfOrderSequence {
                producer_epoch: 5,
                last_sequence: -1,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(log.log_end_offset(), 2);
    log.append(&batch(1, 5, 0, 1, false)).unwrap();
    // The old epoch's batches are forgotten: its retry is fenced, not a duplicate.
    assert!(matches!(
        log.append(&batch(1, 4, 0, 2, false)),
        Err(Error::InvalidProducerEpoch { .. })
    ));
}

#[test]
fn sequence_wraps_at_i32_max() {
    let (_d, log) = open();
    log.append(&batch(9, 0, i32::MAX - 2, 2, false)).unwrap();
    // A batch crossing the wrap: sequences MAX, 0, 1.
    log.append(&batch(9, 0, i32::MAX, 3, false)).unwrap();
    assert_eq!(log.producer_state(9).unwrap().last_seq(), 1);
    let dup = log.append(&batch(9, 0, i32::MAX, 3, false)).unwrap();
    assert!(dup.duplicate);
    assert_eq!((dup.first_offset, dup.last_offset), (2, 4));
    assert!(matches!(
        log.append(&batch(9, 0, 3, 1, false)),
        Err(Error::OutOfOrderSequence { .. })
    ));
    assert_eq!(
        log.append(&batch(9, 0, 2, 1, false)).unwrap().first_offset,
        5
    );
}

#[test]
fn plain_batches_are_untouched() {
    let (_d, log) = open();
    for _ in 0..3 {
        log.append(&batch(-1, -1, -1, 2, false)).unwrap();
    }
    assert_eq!(log.log_end_offset(), 6);
    assert!(log.producer_states().is_empty());
}

#[test]
fn marker_epochs_are_checked_and_a_marker_epoch_bump_restarts_sequences() {
    let (_d, log) = open();
    log.append(&batch(1, 0, 0, 2, true)).unwrap();
    // A non-transactional batch while the transaction is open.
    assert!(matches!(
        log.append(&batch(1, 0, 2, 1, false)),
        Err(Error::InvalidTxnState { producer_id: 1, .. })
    ));
    log.write_txn_marker(1, 0, TxnResult::Commit, 5).unwrap();
    // An older coordinator epoch is fenced.
    assert!(matches!(
        log.write_txn_marker(1, 0, TxnResult::Abort, 4),
        Err(Error::TransactionCoordinatorFenced {
            coordinator_epoch: 4,
            current_coordinator_epoch: 5,
            ..
        })
    ));
    // The coordinator aborts with a bumped epoch (a timed-out transaction).
    log.append(&batch(1, 0, 2, 1, true)).unwrap();
    log.write_txn_marker(1, 1, TxnResult::Abort, 5).unwrap();
    assert!(matches!(
        log.write_txn_marker(1, 0, TxnResult::Abort, 5),
        Err(Error::InvalidProducerEpoch { .. })
    ));
    // At the new epoch the producer's sequence starts at 0.
    assert!(matches!(
        log.append(&batch(1, 1, 3, 1, true)),
        Err(Error::OutOfOrderSequence { .. })
    ));
    log.append(&batch(1, 1, 0, 1, true)).unwrap();
    let state = log.producer_state(1).unwrap();
    assert_eq!((state.producer_epoch, state.coordinator_epoch), (1, 5));
    assert_eq!(
        state.current_txn_first_offset,
        Some(log.log_end_offset() - 1)
    );
}
