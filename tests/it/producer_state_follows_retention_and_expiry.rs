//! Producer state follows the log's life: idle producer ids expire after
//! `producer_id_expiration_ms` (never while a transaction is open), the log start offset
//! moving past a producer's batches forgets it and its open transaction (the last stable
//! offset never waits on deleted records), and truncation forgets what it cut.

use crate::common::producers;

use std::sync::Arc;

use producers::{batch, batch_at, T0};
use streamlog::{Error, Log, LogConfig, ManualClock, TxnResult};

fn config(clock: &Arc<ManualClock>) -> LogConfig {
    LogConfig::builder()
        .segment_bytes(300)
        .segment_index_bytes(4096)
        .segment_ms(None)
        .producer_id_expiration_ms(60_000)
        .clock(clock.clone())
        .build()
        .unwrap()
}

#[test]
fn idle_producers_expire_but_not_with_an_open_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let log = Log::open(dir.path(), config(&clock)).unwrap();
    log.append(&batch_at(1, 0, 0, 1, false, T0)).unwrap();
    log.append(&batch_at(2, 0, 0, 1, true, T0)).unwrap();
    log.append(&batch_at(3, 0, 0, 1, false, T0 + 30_000))
        .unwrap();
    log.tick(T0 + 59_999).unwrap();
    assert_eq!(log.producer_states().len(), 3);
    log.tick(T0 + 60_000).unwrap();
    let left: Vec<i64> = log
        .producer_states()
        .iter()
        .map(|e| e.producer_id)
        .collect();
    assert_eq!(
        left,
        [2, 3],
        "producer 1 expired; 2 holds an open transaction"
    );
    // An expired producer is unknown: its retry is no longer recognised, any sequence goes.
    let info = log.append(&batch_at(1, 0, 0, 1, false, T0)).unwrap();
    assert!(!info.duplicate);
    // Expiry survives a reopen (the snapshot holds what is left).
    log.close().unwrap();
    let log = Log::open(dir.path(), config(&clock)).unwrap();
    assert_eq!(log.producer_states().len(), 3);
    assert!(log
        .producer_state(2)
        .unwrap()
        .current_txn_first_offset
        .is_some());
}

#[test]
fn log_start_offset_past_an_open_transaction_expires_it() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let log = Log::open(dir.path(), config(&clock)).unwrap();
    log.append(&batch(1, 0, 0, 2, true)).unwrap(); // open, offsets 0-1
    for i in 0..10 {
        log.append(&batch(2, 0, i * 2, 2, false)).unwrap();
    }
    let hw = log.log_end_offset();
    assert_eq!(log.last_stable_offset(), 0);
    log.delete_records_before(6).unwrap();
    assert!(
        log.producer_state(1).is_none(),
        "the producer of the open transaction goes with its batches"
    );
    assert_eq!(log.last_stable_offset(), hw);
    assert_eq!(log.records_committed(6).count() as i64, hw - 6);
    // Survives a reopen too.
    log.close().unwrap();
    let log = Log::open(dir.path(), config(&clock)).unwrap();
    assert_eq!(log.last_stable_offset(), hw);
    assert!(log.producer_state(1).is_none());
}

#[test]
fn truncation_forgets_the_cut_batches_and_markers() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let log = Log::open(dir.path(), config(&clock)).unwrap();
    for i in 0..6 {
        log.append(&batch(1, 0, i * 3, 3, false)).unwrap();
    }
    log.append(&batch(2, 0, 0, 1, true)).unwrap(); // offset 18
    log.write_txn_marker(2, 0, TxnResult::Abort, 0).unwrap(); // offset 19
    assert_eq!(log.aborted_transactions(0, 20).len(), 1);
    // Cut the marker and producer 1's last two batches.
    log.truncate_to(12).unwrap();
    assert!(log.aborted_transactions(0, 20).is_empty());
    assert!(log.producer_state(2).is_none());
    assert_eq!(log.producer_state(1).unwrap().last_seq(), 11);
    assert!(matches!(
        log.append(&batch(1, 0, 15, 3, false)),
        Err(Error::OutOfOrderSequence {
            last_sequence: 11,
            ..
        })
    ));
    assert_eq!(
        log.append(&batch(1, 0, 12, 3, false)).unwrap().first_offset,
        12
    );
    // A retry from before the cut is still recognised.
    let dup = log.append(&batch(1, 0, 9, 3, false)).unwrap();
    assert!(dup.duplicate);
    assert_eq!(dup.first_offset, 9);
}

#[test]
fn an_epoch_bumped_by_a_marker_still_fences_after_the_log_start_moves() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let log = Log::open(dir.path(), config(&clock)).unwrap();
    log.append(&batch(1, 0, 0, 2, true)).unwrap();
    // The coordinator aborts with a bumped epoch: the producer's batches are forgotten.
    log.write_txn_marker(1, 1, TxnResult::Abort, 0).unwrap();
    for i in 0..3 {
        log.append(&batch(2, 0, i, 1, false)).unwrap();
    }
    log.delete_records_before(4).unwrap();
    let fenced = |log: &Log| {
        matches!(
            log.append(&batch(1, 0, 2, 1, true)),
            Err(Error::InvalidProducerEpoch {
                current_epoch: 1,
                ..
            })
        )
    };
    assert!(fenced(&log));
    log.close().unwrap();
    let log = Log::open(dir.path(), config(&clock)).unwrap();
    assert!(fenced(&log));
}
