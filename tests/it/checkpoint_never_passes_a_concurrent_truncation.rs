//! A periodic checkpoint that runs while a truncation is cutting the log never writes a
//! recovery point the cut removes. The truncation lowers the checkpoint on disk before it
//! cuts and the recovery point in memory only after; a checkpoint taken in between used to
//! write the old, higher recovery point, and a power cut before the truncation finished then
//! left a log ending below its checkpoint: the next open took the cut offsets for
//! acknowledged data lost and refused to open.
//!
//! The interleaving is forced, not raced for: the truncation is held by a `SimFs` stall at
//! its sync of the cut segment (after the checkpoint went down and the later segment's
//! removal reached the disk), the checkpoint runs meanwhile, and the power cut is taken
//! there. Each seed (`STREAMLOG_SIM_SEED=<n>` replays one) changes what the cut keeps of
//! unsynced writes.

use std::sync::Arc;
use std::time::Duration;

use crate::common::sim_log::{self, append, contents, expected, small_indexes};

use streamlog::io::{SimFs, SimOp};
use streamlog::log::RECOVERY_POINT_CHECKPOINT;
use streamlog::Log;

const SEEDS: u64 = 4;

fn seeds() -> Vec<u64> {
    match std::env::var("STREAMLOG_SIM_SEED") {
        Ok(s) => vec![s.parse().expect("STREAMLOG_SIM_SEED is a number")],
        Err(_) => (0..SEEDS).collect(),
    }
}

/// The offset Kafka's checkpoint text in `bytes` names.
fn checkpointed(bytes: Option<Vec<u8>>) -> Option<i64> {
    let text = String::from_utf8(bytes?).ok()?;
    text.lines().nth(2)?.rsplit(' ').next()?.parse().ok()
}

const BATCH: usize = 5;
const LEN: usize = 30;

/// `(tag, first offset, records, value length)` of an appended batch.
type Batch = (u64, i64, usize, usize);

/// A log of two segments, 0..50 and 50..100, all flushed, the checkpoint at 50; and the
/// batches appended.
fn two_flushed_segments(fs: &SimFs, seed: u64) -> (Arc<Log>, Vec<Batch>) {
    let (log, _) = sim_log::open(fs, &small_indexes(), "first open");
    let mut batches = Vec::new();
    let mut next = 0;
    for tag in 0..20u64 {
        if next == 50 {
            log.roll().unwrap();
            log.flush().unwrap();
            log.checkpoint().unwrap();
        }
        batches.push((tag, next, BATCH, LEN));
        next = append(&log, tag, BATCH, LEN, next);
    }
    log.flush().unwrap();
    assert_eq!(log.recovery_point(), 100, "seed {seed}");
    assert_eq!(checkpoint_on(fs), Some(50), "seed {seed}");
    (Arc::new(log), batches)
}

fn checkpoint_on(fs: &SimFs) -> Option<i64> {
    checkpointed(fs.read_current(&sim_log::file(RECOVERY_POINT_CHECKPOINT)))
}

/// Runs `truncate_to(30)` on another thread, held at its sync of the cut segment (after the
/// checkpoint went down to the segment's base, 0, and the second segment's removal reached
/// the disk), and calls `during` meanwhile; returns what `during` returned and the
/// truncation's result.
fn with_truncation_held<T>(
    fs: &SimFs,
    log: &Arc<Log>,
    seed: u64,
    during: impl FnOnce() -> T,
) -> (T, streamlog::Result<()>) {
    fs.stall(SimOp::Sync, Some("00000000000000000000.log"));
    std::thread::scope(|s| {
        // A failed assertion below must not leave the truncation held: the scope waits
        // for it.
        let _release = ReleaseOnDrop(fs);
        let truncating = Arc::clone(log);
        let truncation = s.spawn(move || truncating.truncate_to(30));
        assert!(
            fs.wait_for_stalled(1, Duration::from_secs(60)),
            "seed {seed}: the truncation never reached its sync"
        );
        assert_eq!(
            checkpoint_on(fs),
            Some(0),
            "seed {seed}: lowered before the cut"
        );
        // The periodic checkpoint, in the middle of the truncation.
        log.checkpoint().unwrap();
        let after = checkpoint_on(fs);
        assert!(
            after.is_some_and(|c| c <= 30),
            "seed {seed}: a checkpoint during the truncation wrote {after:?}, past the cut at 30"
        );
        let out = during();
        fs.release_stalls();
        (out, truncation.join().unwrap())
    })
}

/// Releases every stall when dropped, unwinding included.
struct ReleaseOnDrop<'a>(&'a SimFs);

impl Drop for ReleaseOnDrop<'_> {
    fn drop(&mut self) {
        self.0.release_stalls();
    }
}

#[test]
fn power_cut_during_truncation_after_a_checkpoint_reopens() {
    for seed in seeds() {
        let fs = SimFs::new(seed);
        let (log, batches) = two_flushed_segments(&fs, seed);
        // Power is cut with the truncation still in flight; the old machine then fails
        // every operation, so the truncation ends with an error.
        let (crashed, truncated) = with_truncation_held(&fs, &log, seed, || fs.crash());
        assert!(truncated.is_err(), "seed {seed}");
        drop(log);
        // After the power cut the log opens: whatever of the cut reached the disk, the
        // checkpoint vouches for nothing the truncation took away.
        let (log, info) = sim_log::try_open(&crashed, &small_indexes()).unwrap_or_else(|e| {
            panic!("seed {seed}: open after a power cut during the truncation: {e}")
        });
        assert!(!info.clean_shutdown, "seed {seed}");
        let got = contents(&log);
        let all = expected(&batches);
        assert!(
            got.len() >= 30 && got.len() <= 50,
            "seed {seed}: {} records",
            got.len()
        );
        assert_eq!(got[..], all[..got.len()], "seed {seed}");
    }
}

#[test]
fn checkpoint_skipped_during_truncation_is_written_by_the_next() {
    for seed in seeds() {
        let fs = SimFs::new(seed);
        let (log, batches) = two_flushed_segments(&fs, seed);
        let ((), truncated) = with_truncation_held(&fs, &log, seed, || ());
        truncated.unwrap();
        assert_eq!(log.log_end_offset(), 30, "seed {seed}");
        log.checkpoint().unwrap();
        assert_eq!(checkpoint_on(&fs), Some(30), "seed {seed}");
        // A power cut now keeps the cut log whole.
        let crashed = fs.crash();
        drop(log);
        let (log, _) = sim_log::open(&crashed, &small_indexes(), "after the truncation");
        assert_eq!(contents(&log), expected(&batches)[..30], "seed {seed}");
    }
}
