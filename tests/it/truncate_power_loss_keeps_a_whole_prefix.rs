//! Power loss at every step of `Log::truncate_to`, on the simulated filesystem.
//!
//! A log of single-record batches over several segments is made durable and closed (its
//! recovery-point checkpoint at the log end). It is reopened, truncated with the machine
//! stopping after the truncation's `k`-th filesystem operation (every later one fails),
//! power is lost, and the log reopened with the default config (which refuses damage below
//! the recovery point), for every `k` until a truncation completes. The reopened log must
//! open, keep every record below the cut, and hold above it at most a contiguous run of the
//! old records: no hole with older records behind it, no log missing its first records
//! (a truncation below the log start removing some of its segments but not all), and no
//! refusal because the log ends below a checkpoint the truncation had not yet lowered.

use std::path::Path;
use std::sync::Arc;

use crate::common::gate::{Gate, GatedFs};
use streamlog::io::{FileSystem, SimFs};
use streamlog::{Compression, Log, LogConfig, OwnedRecord};

const RECORDS: i64 = 40;
const DRAWS: usize = 4;

fn config() -> LogConfig {
    LogConfig::builder()
        .segment_bytes(600)
        .segment_index_bytes(4096)
        .segment_ms(None)
        .build()
        .unwrap()
}

fn value(offset: i64) -> Vec<u8> {
    format!("record-{offset}").into_bytes()
}

/// A durable, cleanly closed log of `RECORDS` single-record batches, its start at `start`.
fn build(seed: u64, start: i64) -> SimFs {
    let sim = SimFs::new(seed);
    let fs: Arc<dyn FileSystem> = Arc::new(sim.clone());
    let (log, _) = Log::open_with(fs, Path::new("/p"), config(), &mut |_| Ok(())).unwrap();
    for i in 0..RECORDS {
        let r = OwnedRecord::new(1_000 + i, None, Some(&value(i)));
        log.append_records(&[r], Compression::None).unwrap();
    }
    log.flush().unwrap();
    if start > 0 {
        log.delete_records_before(start).unwrap();
    }
    log.close().unwrap();
    sim
}

fn offsets_and_values(log: &Log) -> Vec<(i64, Vec<u8>)> {
    log.records_from(log.log_start_offset())
        .map(|r| {
            let r = r.unwrap();
            (r.offset(), r.value().unwrap().to_vec())
        })
        .collect()
}

fn check_cut(seed: u64, start: i64, cut: i64) {
    for k in 0.. {
        let sim = build(seed, start);
        let gate = Gate::new(sim);
        let fs: Arc<dyn FileSystem> = Arc::new(GatedFs(Arc::clone(&gate)));
        let (log, _) = Log::open_with(fs, Path::new("/p"), config(), &mut |_| Ok(())).unwrap();
        gate.arm(k);
        let done = log.truncate_to(cut).is_ok() && !gate.is_cut();
        gate.cut();
        drop(log);
        // Several outcomes of the same power loss (each keeps other unsynced operations).
        for draw in 0..DRAWS {
            let after: Arc<dyn FileSystem> = Arc::new(gate.fs.crash());
            let ctx = format!(
                "seed {seed}, start {start}, cut {cut}, stopped after {k} operations, draw {draw}"
            );
            let log = check_reopened(after, start, cut, &ctx);
            if done {
                assert_eq!(log.log_end_offset(), cut, "{ctx}: end after the cut");
            }
        }
        if done {
            return;
        }
    }
}

fn check_reopened(fs: Arc<dyn FileSystem>, start: i64, cut: i64, ctx: &str) -> Log {
    let (log, _) = Log::open_with(fs, Path::new("/p"), config(), &mut |_| Ok(()))
        .unwrap_or_else(|e| panic!("{ctx}: reopen failed: {e}"));
    let records = offsets_and_values(&log);
    let first = records.first().map_or(start, |r| r.0);
    assert_eq!(first, start, "{ctx}: the log lost its first records");
    for (n, (offset, v)) in records.iter().enumerate() {
        assert_eq!(*offset, first + n as i64, "{ctx}: hole before {offset}");
        assert_eq!(*v, value(*offset), "{ctx}: record {offset}");
    }
    let kept = start.max(0)..cut;
    for offset in kept {
        assert!(
            records.iter().any(|r| r.0 == offset),
            "{ctx}: record {offset} below the cut lost"
        );
    }
    log
}

#[test]
fn power_loss_during_truncation_keeps_a_whole_prefix() {
    // Mid-segment, at a segment base, in the first segment, and below the log start.
    for (seed, start, cut) in [(1, 0, 23), (2, 0, 16), (3, 0, 3), (4, 10, 25), (5, 20, 12)] {
        check_cut(seed, start, cut);
    }
}
