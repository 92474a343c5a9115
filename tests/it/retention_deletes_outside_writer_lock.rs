//! Retention's file work (the log-start-offset checkpoint, the removal of the deleted
//! segments' files, the directory sync) runs after the writer lock is released: while it
//! is stalled another append completes, and a power cut at that moment (between the
//! in-memory deletion and its checkpoint, or between the removals and their directory
//! sync) reopens to a log that starts at the old or the new log start offset and holds
//! every flushed record from there on.
//!
//! `SimFs` holds one operation of the deferred work back (`stall`), the test takes the
//! crash image while it is held, then releases it. No sleeps: the test waits on the stall
//! itself, with a generous bound that only guards against a hang.

use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::common::sim_log::{self, append, contents, expected, open, T0};
use streamlog::io::{SimFs, SimOp};
use streamlog::LogConfig;

const HANG_GUARD: Duration = Duration::from_secs(120);

/// Ten batches of 4 records; three batches fill a segment.
const BATCHES: u64 = 10;
/// Where the log starts once retention has deleted the first two segments.
const NEW_START: i64 = 24;

/// Segments of three batches (4 records of 100 bytes each), and a `retention.bytes` that
/// the first two segments exceed.
fn config() -> LogConfig {
    let fs = SimFs::new(0);
    let (log, _) = open(&fs, &sim_log::rolling(1 << 20), "measuring a batch");
    append(&log, 0, 4, 100, 0);
    let batch = log.size_in_bytes();
    LogConfig::builder()
        .segment_bytes(3 * batch + batch / 2)
        .segment_index_bytes(4096)
        .index_interval_bytes(1)
        .segment_ms(None)
        .retention_bytes(4 * batch)
        .build()
        .unwrap()
}

fn want_from(start: i64) -> Vec<(i64, Vec<u8>, Vec<u8>)> {
    let batches: Vec<(u64, i64, usize, usize)> = (0..BATCHES)
        .map(|tag| (tag, 4 * tag as i64, 4, 100))
        .filter(|&(_, first, _, _)| first >= start)
        .collect();
    expected(&batches)
}

/// Ten flushed batches in four segments; retention runs in a thread while `op` on paths
/// containing `path` is stalled. Checks that an append by another caller completes
/// meanwhile, then that a power cut taken at that moment reopens to a whole log starting
/// at the old or (when `checkpointed`, the checkpoint being durable by then) the new start.
fn crash_during_retention(seed: u64, op: SimOp, path: &str, checkpointed: bool) {
    let fs = SimFs::new(seed);
    let config = config();
    let (log, _) = open(&fs, &config, "first open");
    let mut next = 0;
    for tag in 0..BATCHES {
        next = append(&log, tag, 4, 100, next);
    }
    assert_eq!(log.segment_count(), 4, "three batches a segment");
    assert_eq!(log.flush().unwrap(), next);
    let log = Arc::new(log);

    fs.stall(op, Some(path));
    let deleter = {
        let log = Arc::clone(&log);
        thread::spawn(move || log.delete_retention_breached(T0 + 1_000))
    };
    assert!(
        fs.wait_for_stalled(1, HANG_GUARD),
        "seed {seed}: retention's deferred {op:?} of {path} never ran"
    );
    assert_eq!(
        log.log_start_offset(),
        NEW_START,
        "seed {seed}: readers see the shorter log before its files go"
    );

    // The writer lock is free: another append goes through while the file work is held.
    let (done_tx, done_rx) = mpsc::channel();
    let other = {
        let log = Arc::clone(&log);
        thread::spawn(move || {
            let r = log.append_records(
                &sim_log::records(BATCHES, next, 1, 10),
                streamlog::Compression::None,
            );
            let _ = done_tx.send(r.map(|i| i.first_offset));
        })
    };
    let appended = done_rx.recv_timeout(HANG_GUARD);
    let crashed = fs.crash();
    fs.release_stalls();
    let outcome = deleter.join().unwrap();
    let _ = other.join();
    assert_eq!(
        appended.map(|r| r.ok()),
        Ok(Some(next)),
        "seed {seed}: an append waited for retention's {op:?}"
    );
    // The crashed machine fails the rest of the deletion, which then poisons the log; its
    // outcome, when it finished first, is the whole deletion.
    if let Ok(outcome) = outcome {
        assert_eq!(
            (outcome.segments_deleted, outcome.log_start_offset),
            (2, NEW_START),
            "seed {seed}"
        );
    }

    // The power cut: the log starts at the old or the new offset, whole from there.
    let (log, _) = open(&crashed, &config, &format!("seed {seed}: reopen"));
    let start = log.log_start_offset();
    if checkpointed {
        assert_eq!(start, NEW_START, "seed {seed}: the checkpoint was durable");
    } else {
        assert!(
            start == 0 || start == NEW_START,
            "seed {seed}: log start {start}"
        );
    }
    let got = contents(&log);
    let want = want_from(start);
    assert!(got.len() >= want.len(), "seed {seed}: lost flushed records");
    assert_eq!(got.get(..want.len()), Some(&want[..]), "seed {seed}");
    // Retention finishes the job and the log takes appends.
    let outcome = log.delete_retention_breached(T0 + 1_000).unwrap();
    assert_eq!(outcome.log_start_offset, NEW_START, "seed {seed}");
    assert_eq!(log.segment_count(), 2, "seed {seed}");
    assert_eq!(
        contents(&log).get(..want_from(NEW_START).len()),
        Some(&want_from(NEW_START)[..])
    );
    let end = log.log_end_offset();
    append(&log, BATCHES + 1, 2, 10, end);
    log.flush().unwrap();
}

#[test]
fn a_stalled_checkpoint_fsync_blocks_no_append_and_a_crash_keeps_the_old_log() {
    for seed in 0..8 {
        crash_during_retention(seed, SimOp::Sync, "log-start-offset-checkpoint", false);
    }
}

#[test]
fn a_stalled_checkpoint_rename_blocks_no_append_and_a_crash_keeps_a_whole_log() {
    for seed in 0..8 {
        crash_during_retention(seed, SimOp::Rename, "log-start-offset-checkpoint", false);
    }
}

#[test]
fn a_crash_between_the_removals_and_their_directory_sync_keeps_the_new_start() {
    for seed in 0..8 {
        // The first segment's files are removed (not yet durably), the second's are next.
        crash_during_retention(seed, SimOp::Remove, "00000000000000000012.log", true);
    }
}
