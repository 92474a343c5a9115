//! Power loss at any point of a retention pass (after the log start offset is checkpointed,
//! part way through removing files, or before the directory is synced) leaves a log that
//! opens, starts at the old or the new log start offset, holds every record from there to
//! its end, and whose next retention pass finishes the deletion.

use crate::common::sim_log;

use sim_log::{append, contents, expected, open, rolling, segment_file};
use streamlog::io::{SimError, SimFs, SimOp};
use streamlog::LogConfig;

/// Six batches of 4 records, one per segment (segments at 0, 4, ..., 20; 20 is active).
const BATCHES: [(u64, i64, usize, usize); 6] = [
    (0, 0, 4, 20),
    (1, 4, 4, 20),
    (2, 8, 4, 20),
    (3, 12, 4, 20),
    (4, 16, 4, 20),
    (5, 20, 4, 20),
];

fn config() -> LogConfig {
    rolling(1 << 20)
        .to_builder()
        // Every record's timestamp is T0 + offset; segments below 12 are past retention.
        .retention_ms(Some(1_000))
        .build()
        .unwrap()
}

/// A durable log of [`BATCHES`] on a fresh SimFs.
fn setup(seed: u64) -> SimFs {
    let fs = SimFs::new(seed);
    let (log, _) = open(&fs, &config(), "setup");
    for (i, &(tag, first, n, len)) in BATCHES.iter().enumerate() {
        if i > 0 {
            log.roll().unwrap();
        }
        append(&log, tag, n, len, first);
    }
    log.flush().unwrap();
    log.close().unwrap();
    fs
}

/// `now` for which segments 0, 4 and 8 (largest timestamps T0 + 3, + 7, + 11) are past
/// retention and segment 12 (T0 + 15) is not.
const NOW: i64 = sim_log::T0 + 1_013;

/// Checks the log after the crash; returns whether it came back with segments still below
/// its start (a pass cut short).
fn check_after_crash(fs: &SimFs, seed: u64) -> bool {
    let (log, _) = open(fs, &config(), &format!("seed {seed}"));
    let start = log.log_start_offset();
    let leftovers = log.segment_base_offsets().first() != Some(&12);
    assert!(start == 0 || start == 12, "seed {seed}: start {start}");
    assert_eq!(log.log_end_offset(), 24, "seed {seed}");
    let want: Vec<_> = expected(&BATCHES)
        .into_iter()
        .filter(|r| r.0 >= start)
        .collect();
    assert_eq!(contents(&log), want, "seed {seed}");
    // The next pass reaches the state an uninterrupted one leaves.
    log.delete_retention_breached(NOW).unwrap();
    assert_eq!(log.log_start_offset(), 12, "seed {seed}");
    assert_eq!(log.segment_base_offsets(), vec![12, 16, 20], "seed {seed}");
    assert_eq!(
        contents(&log),
        expected(&BATCHES[3..]),
        "seed {seed}: after the second pass"
    );
    for base in [0, 4, 8] {
        for ext in ["log", "index", "timeindex"] {
            assert!(
                !fs.list_all().contains(&segment_file(base, ext)),
                "seed {seed}: {base}.{ext} left behind"
            );
        }
    }
    leftovers
}

#[test]
fn crash_after_a_retention_pass_leaves_an_openable_log() {
    for seed in 0..40 {
        let fs = setup(seed);
        let (log, _) = open(&fs, &config(), "before retention");
        let out = log.delete_retention_breached(NOW).unwrap();
        assert_eq!((out.segments_deleted, out.log_start_offset), (3, 12));
        // Power loss with the directory operations perhaps not all durable.
        let after = fs.crash();
        drop(log);
        check_after_crash(&after, seed);
    }
}

#[test]
fn crash_part_way_through_the_removals_leaves_an_openable_log() {
    let mut cut_short = 0;
    for seed in 0..30 {
        for victim in [0, 4, 8] {
            let fs = setup(seed);
            let (log, _) = open(&fs, &config(), "before retention");
            // A removal fails part way through the pass, so the ones before it are not yet
            // durable (no directory sync) when the power goes.
            let name = format!("{victim:020}.timeindex");
            fs.fail_next(SimOp::Remove, Some(&name), SimError::Eio);
            assert!(log.delete_retention_breached(NOW).is_err());
            assert!(log.is_poisoned());
            let after = fs.crash();
            drop(log);
            if check_after_crash(&after, seed) {
                cut_short += 1;
            }
        }
    }
    // The model keeps a random prefix of the pending removals: some runs must come back
    // with segments still below the start.
    assert!(cut_short > 0);
}

#[test]
fn crash_when_the_start_checkpoint_fails_keeps_everything() {
    for seed in 0..5 {
        let fs = setup(seed);
        let (log, _) = open(&fs, &config(), "before retention");
        fs.fail_next(
            SimOp::Rename,
            Some("log-start-offset-checkpoint"),
            SimError::Eio,
        );
        assert!(log.delete_retention_breached(NOW).is_err());
        // Nothing was deleted: the start was never moved.
        assert_eq!(log.segment_count(), 6);
        let after = fs.crash();
        drop(log);
        check_after_crash(&after, seed);
    }
}
