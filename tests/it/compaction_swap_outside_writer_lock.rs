//! The cleaner's swap (renames of the cleaned files, removal of the old segments, their
//! directory fsyncs, the cleaner checkpoint) runs with the writer lock released: while any
//! of those operations is stalled another append completes, and a power cut at that moment
//! reopens to exactly the old or exactly the new contents (the new ones once the commit's
//! directory sync is through).
//!
//! `SimFs` holds one operation back (`stall`), the test takes the crash image while it is
//! held, then releases it. No sleeps: the test waits on the stall itself, with a generous
//! bound that only guards against a hang.

use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::common::sim_log;
use streamlog::io::{SimFs, SimOp};
use streamlog::{Compression, Log, LogConfig, OwnedRecord};

const HANG_GUARD: Duration = Duration::from_secs(120);
const NOW: i64 = sim_log::T0 + 1_000;

fn config() -> LogConfig {
    LogConfig::builder()
        .segment_bytes(700)
        .segment_index_bytes(4096)
        .index_interval_bytes(100)
        .segment_ms(None)
        .build()
        .unwrap()
}

type Contents = Vec<(i64, Option<Vec<u8>>, Option<Vec<u8>>)>;

/// The records below `end`.
fn contents(log: &Log, end: i64) -> Contents {
    log.records_from(log.log_start_offset())
        .map(|r| {
            let r = r.unwrap();
            (
                r.offset(),
                r.key().map(<[u8]>::to_vec),
                r.value().map(<[u8]>::to_vec),
            )
        })
        .filter(|r| r.0 < end)
        .collect()
}

/// A durable log of keyed records with duplicates over several segments, and an active
/// segment holding one record.
fn build(seed: u64) -> (SimFs, Arc<Log>) {
    let fs = SimFs::new(seed);
    let (log, _) = sim_log::open(&fs, &config(), "first open");
    for i in 0..80u32 {
        let key = (i % 7).to_string();
        let value = format!("v{i}");
        log.append_records(
            &[OwnedRecord::new(
                sim_log::T0 + i64::from(i),
                Some(key.as_bytes()),
                Some(value.as_bytes()),
            )],
            Compression::None,
        )
        .unwrap();
    }
    log.roll().unwrap();
    log.append_records(
        &[OwnedRecord::new(
            sim_log::T0,
            Some(b"tail"),
            Some(b"active"),
        )],
        Compression::None,
    )
    .unwrap();
    log.flush().unwrap();
    (fs, Arc::new(log))
}

/// The contents before and after a compaction pass without faults.
fn old_and_new(seed: u64) -> (Contents, Contents, i64) {
    let (_fs, log) = build(seed);
    let end = log.log_end_offset();
    let old = contents(&log, end);
    let stats = log.compact(end, NOW).unwrap();
    assert!(stats.segments_after > 0, "{stats:?}");
    let new = contents(&log, end);
    assert!(new.len() < old.len());
    (old, new, end)
}

/// Compacts while `op` on paths containing `path` is stalled; checks that an append by
/// another caller completes meanwhile and that a power cut then reopens to the old or
/// (`committed`) the new contents.
fn crash_during_swap(seed: u64, op: SimOp, path: &str, committed: bool) {
    let (old, new, end) = old_and_new(seed);
    let (fs, log) = build(seed);
    assert!(
        log.segment_count() > 3,
        "the scenario needs several segments"
    );

    fs.stall(op, Some(path));
    let cleaner = {
        let log = Arc::clone(&log);
        thread::spawn(move || log.compact(end, NOW))
    };
    assert!(
        fs.wait_for_stalled(1, HANG_GUARD),
        "seed {seed}: the swap's {op:?} of {path} never ran"
    );
    let swapping = fs.list_all().iter().any(|p| {
        let n = p.to_string_lossy();
        n.ends_with(".swap") || n.ends_with(".cleaned")
    }) || op == SimOp::Sync;
    assert!(swapping, "seed {seed}: stalled outside the swap");

    let (done_tx, done_rx) = mpsc::channel();
    let other = {
        let log = Arc::clone(&log);
        thread::spawn(move || {
            let r = log.append_records(
                &[OwnedRecord::new(NOW, Some(b"late"), Some(b"append"))],
                Compression::None,
            );
            let _ = done_tx.send(r.map(|i| i.first_offset));
        })
    };
    let appended = done_rx.recv_timeout(HANG_GUARD);
    let crashed = fs.crash();
    fs.release_stalls();
    let _ = cleaner.join().unwrap();
    let _ = other.join();
    assert_eq!(
        appended.map(|r| r.ok()),
        Ok(Some(end)),
        "seed {seed}: an append waited for the swap's {op:?}"
    );

    let (reopened, _) = sim_log::open(&crashed, &config(), &format!("seed {seed}: reopen"));
    let got = contents(&reopened, end);
    if committed {
        assert_eq!(got, new, "seed {seed}: the pass had committed");
    } else {
        assert!(got == old || got == new, "seed {seed}: a mix:\n{got:?}");
    }
    let leftovers: Vec<_> = crashed
        .list_all()
        .into_iter()
        .filter(|p| {
            let n = p.to_string_lossy();
            n.ends_with(".cleaned") || n.ends_with(".swap") || n.ends_with(".deleted")
        })
        .collect();
    assert!(
        leftovers.is_empty(),
        "seed {seed}: left behind {leftovers:?}"
    );
    reopened.compact(end, NOW).unwrap();
    assert_eq!(contents(&reopened, end), new, "seed {seed}: a later pass");
}

#[test]
fn a_stalled_commit_rename_blocks_no_append_and_a_crash_keeps_the_old_log() {
    for seed in 0..6 {
        crash_during_swap(seed, SimOp::Rename, ".log.cleaned", false);
    }
}

#[test]
fn a_stalled_commit_directory_sync_blocks_no_append_and_a_crash_keeps_old_or_new() {
    for seed in 0..6 {
        crash_during_swap(seed, SimOp::SyncDir, "t-0", false);
    }
}

#[test]
fn a_crash_between_the_swap_and_its_directory_sync_keeps_the_new_log() {
    for seed in 0..6 {
        // The old segments' files go once the commit is durable; the swap files are
        // renamed to their live names after, and only then is the directory synced.
        crash_during_swap(seed, SimOp::Remove, ".log", true);
    }
}

#[test]
fn a_stalled_cleaner_checkpoint_blocks_no_append_and_a_crash_keeps_the_new_log() {
    for seed in 0..6 {
        crash_during_swap(seed, SimOp::Sync, "cleaner-offset-checkpoint", true);
    }
}
