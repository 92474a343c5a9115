//! A sealed segment's trimmed index files are durable once a clean close has returned, or
//! once a roll of a segment whose data was already flushed has returned (the roll's
//! deferred flush), and in any case before the recovery point passes them: a power cut
//! then reopens without rebuilding any index. Before, `close` synced only the active
//! segment's indexes and no flush covered a segment flushed before it rolled, so after a
//! cut every such segment was reindexed.
//!
//! Each case runs on several seeds (SimFs keeps a random part of unsynced writes at a
//! crash); `STREAMLOG_SIM_SEED=<n>` replays one.

use std::path::PathBuf;

use crate::common::sim_log::{self, append, contents, dir, open};
use streamlog::io::{FileSystem, SimError, SimFs, SimOp};
use streamlog::{Log, LogConfig};

const SEEDS: u64 = 12;

fn seeds() -> Vec<u64> {
    match std::env::var("STREAMLOG_SIM_SEED") {
        Ok(s) => vec![s.parse().expect("STREAMLOG_SIM_SEED is a number")],
        Err(_) => (0..SEEDS).collect(),
    }
}

/// Segments of a few batches each.
fn config() -> LogConfig {
    let mut config = sim_log::rolling(2048);
    config.index_interval_bytes = 64;
    config
}

/// Appends `batches` batches, flushing after each (so every segment's data is durable
/// before it rolls, and no later flush covers it). Returns the log end offset.
fn append_flushed(log: &Log, batches: u64) -> i64 {
    let mut next = 0;
    for tag in 0..batches {
        next = append(log, tag, 4, 100, next);
        log.flush().unwrap();
    }
    next
}

/// The `.index` and `.timeindex` files of every segment but the last (the active one,
/// whose indexes an open makes writable again).
fn sealed_index_files(fs: &SimFs) -> Vec<PathBuf> {
    let mut logs: Vec<PathBuf> = fs
        .list(dir())
        .unwrap()
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    logs.pop();
    logs.iter()
        .flat_map(|p| [p.with_extension("index"), p.with_extension("timeindex")])
        .collect()
}

/// Reopens the crashed `fs` with every write to a sealed segment's index files failing (a
/// rebuild writes them; a load only reads them), and reads every record back.
fn reopen_without_reindexing(fs: SimFs, expected_end: i64, seed: u64) {
    let sealed = sealed_index_files(&fs);
    assert!(
        sealed.len() >= 6,
        "seed {seed}: the test needs sealed segments"
    );
    for path in &sealed {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        fs.fail_always(SimOp::Write, Some(&name), SimError::Eio);
    }
    let (log, _) = open(&fs, &config(), &format!("seed {seed}"));
    let records: Vec<i64> = contents(&log).into_iter().map(|(o, _, _)| o).collect();
    assert_eq!(
        records,
        (0..expected_end).collect::<Vec<_>>(),
        "seed {seed}"
    );
    // Timestamp lookups load every sealed time index.
    assert!(log.segments_info().is_ok(), "seed {seed}");
}

#[test]
fn power_cut_after_a_clean_close_reopens_without_reindexing() {
    for seed in seeds() {
        let fs = SimFs::new(seed);
        let (log, _) = open(&fs, &config(), "first open");
        let end = append_flushed(&log, 24);
        log.close().unwrap();
        drop(log);
        let after = fs.crash();
        assert!(after.exists(&sim_log::file(".kafka_cleanshutdown")));
        reopen_without_reindexing(after, end, seed);
    }
}

#[test]
fn power_cut_after_a_roll_of_flushed_data_reopens_without_reindexing() {
    for seed in seeds() {
        let fs = SimFs::new(seed);
        let (log, _) = open(&fs, &config(), "first open");
        let end = append_flushed(&log, 24);
        log.roll().unwrap();
        // The recovery point (past every sealed segment) is checkpointed: an open trusts
        // those segments and loads their indexes as they are.
        log.checkpoint().unwrap();
        assert_eq!(log.recovery_point(), end);
        let after = fs.crash();
        drop(log);
        reopen_without_reindexing(after, end, seed);
    }
}

#[test]
fn recovery_rebuilt_indexes_are_durable_after_the_next_close() {
    for seed in seeds() {
        let fs = SimFs::new(seed);
        let (log, _) = open(&fs, &config(), "first open");
        let end = append_flushed(&log, 24);
        // A power cut without a close: the next open recovers and rebuilds every index.
        let fs = {
            let after = fs.crash();
            drop(log);
            after
        };
        let (log, info) = open(&fs, &config(), "unclean open");
        assert!(info.segments_recovered > 1, "seed {seed}");
        log.close().unwrap();
        drop(log);
        reopen_without_reindexing(fs.crash(), end, seed);
    }
}
