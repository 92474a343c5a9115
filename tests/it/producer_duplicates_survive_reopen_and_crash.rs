//! Retried batches (one to five back) are recognised and answered with their original
//! offsets after a clean reopen (snapshot), after a reopen without snapshots (replay of the
//! log), and after a crash on the simulated filesystem; a retry six back is out of order.

use crate::common::producers;
use crate::common::sim_log;

use producers::batch;
use streamlog::io::SimFs;
use streamlog::{Error, Log, LogConfig};

const PID: i64 = 1000;

/// Appends six batches of 1..=6 records; returns (sequence, first offset, last offset).
fn six_batches(log: &Log) -> Vec<(i32, i64, i64)> {
    let mut seq = 0;
    let mut out = Vec::new();
    for n in 1..=6 {
        let info = log.append(&batch(PID, 3, seq, n, false)).unwrap();
        assert!(!info.duplicate);
        out.push((seq, info.first_offset, info.last_offset));
        seq += n as i32;
    }
    out
}

/// Retries the last five and the sixth-last; checks nothing more is written.
fn check_retries(log: &Log, sent: &[(i32, i64, i64)]) {
    let end = log.log_end_offset();
    for (back, &(seq, first, last)) in sent.iter().rev().enumerate() {
        let n = (last - first + 1) as usize;
        let retry = log.append(&batch(PID, 3, seq, n, false));
        if back < 5 {
            let info = retry.unwrap_or_else(|e| panic!("retry {} back: {e}", back + 1));
            assert!(info.duplicate, "retry {} back not recognised", back + 1);
            assert_eq!((info.first_offset, info.last_offset), (first, last));
        } else {
            assert!(
                matches!(retry, Err(Error::OutOfOrderSequence { .. })),
                "retry 6 back: {retry:?}"
            );
        }
    }
    assert_eq!(log.log_end_offset(), end, "a retry was written");
    // The producer goes on where it left off.
    let next = sent
        .last()
        .map(|&(s, f, l)| s + (l - f + 1) as i32)
        .unwrap();
    let info = log.append(&batch(PID, 3, next, 2, false)).unwrap();
    assert_eq!(info.first_offset, end);
}

fn snapshot_files(fs: &SimFs) -> Vec<std::path::PathBuf> {
    fs.list_all()
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "snapshot"))
        .collect()
}

/// Six batches over several segments of a log on a fresh `SimFs`, closed cleanly.
fn closed_log(seed: u64) -> (SimFs, LogConfig, Vec<(i32, i64, i64)>) {
    let fs = SimFs::new(seed);
    let config = sim_log::rolling(300);
    let (log, _) = sim_log::open(&fs, &config, "first open");
    let sent = six_batches(&log);
    assert!(log.segment_count() > 2, "batches should span segments");
    log.close().unwrap();
    assert!(!snapshot_files(&fs).is_empty());
    (fs, config, sent)
}

#[test]
fn duplicates_recognised_after_clean_reopen_with_snapshot() {
    let (fs, config, sent) = closed_log(1);
    let (log, info) = sim_log::open(&fs, &config, "reopen");
    assert!(info.clean_shutdown);
    // The close's snapshot holds everything: nothing is replayed.
    assert_eq!(info.producer_state_replayed_from, log.log_end_offset());
    check_retries(&log, &sent);
}

#[test]
fn duplicates_recognised_after_reopen_without_snapshots() {
    let (fs, config, sent) = closed_log(2);
    for p in snapshot_files(&fs) {
        streamlog::io::FileSystem::remove(&fs, &p).unwrap();
    }
    let (log, info) = sim_log::open(&fs, &config, "reopen");
    assert_eq!(
        info.producer_state_replayed_from, 0,
        "the whole log is replayed"
    );
    check_retries(&log, &sent);
}

#[test]
fn duplicates_recognised_after_crash() {
    for segment_bytes in [300, 1 << 20] {
        let fs = SimFs::new(3);
        let config = sim_log::rolling(segment_bytes);
        let (log, _) = sim_log::open(&fs, &config, "first open");
        let sent = six_batches(&log);
        log.flush().unwrap();
        // Unflushed: lost in the crash, so its retry is new data afterwards.
        log.append(&batch(PID, 3, 21, 1, false)).unwrap();
        let crashed = fs.crash();
        drop(log);
        let (log, info) = sim_log::open(&crashed, &config, "reopen after crash");
        assert!(!info.clean_shutdown);
        // With segments rolled, the last roll's snapshot survives the crash and only the
        // active segment is replayed; without, the whole log is.
        let active_base = *log.segment_base_offsets().last().unwrap();
        assert_eq!(info.producer_state_replayed_from, active_base);
        assert_eq!(log.log_end_offset(), sent.last().unwrap().2 + 1);
        check_retries(&log, &sent);
    }
}
