//! A roll's fsyncs (the new segment's directory entry, the producer snapshot, the sealed
//! segment's indexes) run after the writer lock is released, as Kafka flushes a rolled
//! segment asynchronously: while they are stalled another append completes, and a power
//! cut between a roll and its deferred flush loses nothing acknowledged durable.
//!
//! `SimFs` holds the deferred operation back (`stall`), the test takes the crash image
//! while it is held, then releases it. No sleeps: the test waits on the stall itself, with a
//! generous bound that only guards against a hang.

use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::common::sim_log::{self, append, contents, expected, open};
use streamlog::io::{SimFs, SimOp};
use streamlog::LogConfig;

const HANG_GUARD: Duration = Duration::from_secs(120);

/// Three batches (of 4 records of 100 bytes) fill a segment; the fourth rolls.
fn config() -> LogConfig {
    let fs = SimFs::new(0);
    let (log, _) = open(&fs, &sim_log::rolling(1 << 20), "measuring a batch");
    append(&log, 0, 4, 100, 0);
    let batch = log.size_in_bytes();
    sim_log::rolling(3 * batch + batch / 2)
}

/// The log with three flushed batches (acknowledged durable), then a thread whose append
/// rolls while `op` on paths containing `path` is stalled. Returns what a power cut taken
/// while it is stalled reopens to, after checking that an append by another caller
/// completes meanwhile.
fn crash_during_deferred(seed: u64, op: SimOp, path: Option<&str>) {
    let fs = SimFs::new(seed);
    let config = config();
    let (log, _) = open(&fs, &config, "first open");
    let mut next = 0;
    for tag in 0..3 {
        next = append(&log, tag, 4, 100, next);
    }
    assert_eq!(log.segment_count(), 1, "three batches fit one segment");
    let durable = log.flush().unwrap();
    assert_eq!(durable, next);
    let segments = log.segment_count();
    let log = Arc::new(log);

    fs.stall(op, path);
    let roller = {
        let log = Arc::clone(&log);
        thread::spawn(move || {
            log.append_records(
                &sim_log::records(3, next, 4, 100),
                streamlog::Compression::None,
            )
        })
    };
    assert!(
        fs.wait_for_stalled(1, HANG_GUARD),
        "seed {seed}: the roll's deferred {op:?} never ran"
    );
    assert_eq!(
        log.segment_count(),
        segments + 1,
        "seed {seed}: the roll is done"
    );

    // The writer lock is free: another append goes through while the fsync is held (into
    // the new segment; the rolling append writes its batch once its roll is durable).
    let (done_tx, done_rx) = mpsc::channel();
    let other = {
        let log = Arc::clone(&log);
        thread::spawn(move || {
            let r = log.append_records(
                &sim_log::records(4, next, 1, 10),
                streamlog::Compression::None,
            );
            let _ = done_tx.send(r.map(|i| i.first_offset));
        })
    };
    let appended = done_rx.recv_timeout(HANG_GUARD);
    let crashed = fs.crash();
    fs.release_stalls();
    let _ = roller.join();
    let _ = other.join();
    assert_eq!(
        appended.map(|r| r.ok()),
        Ok(Some(next)),
        "seed {seed}: an append waited for the roll's {op:?}"
    );

    // Everything acknowledged durable survives the cut; the log opens and appends again.
    let (log, _) = open(&crashed, &config, &format!("seed {seed}: reopen"));
    let got = contents(&log);
    let want = expected(&[(0, 0, 4, 100), (1, 4, 4, 100), (2, 8, 4, 100)]);
    assert!(
        got.len() >= want.len(),
        "seed {seed}: lost acknowledged records"
    );
    assert_eq!(got.get(..want.len()), Some(&want[..]), "seed {seed}");
    let end = log.log_end_offset();
    append(&log, 9, 2, 10, end);
    log.flush().unwrap();
}

#[test]
fn a_stalled_directory_sync_after_a_roll_blocks_no_append_and_loses_nothing() {
    for seed in 0..8 {
        crash_during_deferred(seed, SimOp::SyncDir, None);
    }
}

#[test]
fn a_stalled_snapshot_fsync_after_a_roll_blocks_no_append_and_loses_nothing() {
    for seed in 0..8 {
        crash_during_deferred(seed, SimOp::Sync, Some(".snapshot"));
    }
}

#[test]
fn a_stalled_index_fsync_after_a_roll_blocks_no_append_and_loses_nothing() {
    for seed in 0..8 {
        crash_during_deferred(seed, SimOp::Sync, Some(".index"));
    }
}
