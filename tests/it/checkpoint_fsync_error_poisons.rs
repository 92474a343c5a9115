//! The recovery-point checkpoint is written tmp → fsync → rename → fsync of the directory.
//! When the fsync of the tmp file or of the directory fails (in `checkpoint()`, `tick()` or
//! `close()`), the call fails and the log is poisoned. After power loss the checkpoint file
//! holds the old recovery point or the new one, whole (never torn, never missing once it
//! existed), and the log opens, keeping every record flushed before.

use crate::common::sim_log;

use std::collections::BTreeSet;

use sim_log::{append, checkpoint_text, contents, expected, file, open};
use streamlog::io::{SimError, SimFs, SimOp};
use streamlog::log::RECOVERY_POINT_CHECKPOINT;
use streamlog::{Error, Log, LogConfig};

const SEEDS: u64 = 40;
const EIO: i32 = 5;

/// The call that writes the checkpoint.
#[derive(Debug, Clone, Copy)]
enum Writer {
    Checkpoint,
    Tick,
    Close,
}

impl Writer {
    fn run(self, log: &Log) -> Result<(), Error> {
        match self {
            Writer::Checkpoint => log.checkpoint(),
            Writer::Tick => log.tick(0),
            Writer::Close => log.close(),
        }
    }
}

/// Which fsync fails.
#[derive(Debug, Clone, Copy)]
enum Fault {
    TmpFile,
    Directory,
}

fn config() -> LogConfig {
    sim_log::small_indexes()
        .to_builder()
        .flush_ms(None)
        .build()
        .unwrap()
}

/// What the checkpoint file holds after a crash: `None` when it is missing.
fn durable_checkpoint(fs: &SimFs) -> Option<String> {
    fs.read_durable(&file(RECOVERY_POINT_CHECKPOINT))
        .map(|b| String::from_utf8(b).expect("a checkpoint is text"))
}

/// Runs the scenario: an old checkpoint at 10 (or none), records flushed to 20 and five more
/// appended (flushed by `close`), then `writer` with `fault` armed. Returns the recovery
/// point the checkpoint file holds after the crash.
fn scenario(seed: u64, writer: Writer, fault: Fault, old_checkpoint: bool) -> Option<i64> {
    let context = format!("seed {seed}, {writer:?}, {fault:?} fsync fails");
    let config = config();
    let fs = SimFs::new(seed);
    let (log, _) = open(&fs, &config, &context);
    let mut want = vec![(0, 0, 10, 20)];
    let mut end = append(&log, 0, 10, 20, 0);
    assert_eq!(log.flush().unwrap(), 10);
    if old_checkpoint {
        log.checkpoint().unwrap();
    }
    want.push((1, end, 10, 20));
    end = append(&log, 1, 10, 20, end);
    assert_eq!(log.flush().unwrap(), 20);
    want.push((2, end, 5, 20));
    end = append(&log, 2, 5, 20, end);
    let new_rp = match writer {
        Writer::Close => end,
        _ => 20,
    };
    let old = old_checkpoint.then(|| checkpoint_text(10));
    assert_eq!(durable_checkpoint(&fs), old, "{context}");

    match fault {
        Fault::TmpFile => fs.fail_next(
            SimOp::Sync,
            Some(&format!("{RECOVERY_POINT_CHECKPOINT}.tmp")),
            SimError::Eio,
        ),
        Fault::Directory => fs.fail_next(SimOp::SyncDir, Some("t-0"), SimError::Eio),
    }
    let err = writer.run(&log).expect_err("the checkpoint's fsync failed");
    let culprit = match fault {
        Fault::TmpFile => format!("{RECOVERY_POINT_CHECKPOINT}.tmp"),
        Fault::Directory => "t-0".to_string(),
    };
    assert!(
        sim_log::is_io_error(&err, &culprit, EIO),
        "{context}: the error names {culprit}: {err:?}"
    );
    assert!(log.is_poisoned(), "{context}");
    for (what, r) in [
        ("checkpoint", log.checkpoint()),
        ("tick", log.tick(0)),
        ("close", log.close()),
        ("flush", log.flush().map(drop)),
        (
            "append",
            log.append_records(
                &sim_log::records(9, end, 1, 1),
                streamlog::Compression::None,
            )
            .map(drop),
        ),
    ] {
        assert!(
            matches!(r, Err(Error::LogPoisoned { .. })),
            "{context}: {what} on the poisoned log gave {r:?}"
        );
    }
    assert!(log.recovery_point() <= end, "{context}");

    let after = fs.crash();
    drop(log);
    let found = durable_checkpoint(&after);
    let new = Some(checkpoint_text(new_rp));
    match fault {
        // The tmp file never reached the disk whole, so it was never renamed.
        Fault::TmpFile => assert_eq!(found, old, "{context}"),
        Fault::Directory => assert!(
            found == old || found == new,
            "{context}: the checkpoint is neither the old nor the new one: {found:?}"
        ),
    }
    let (log, info) = open(&after, &config, &context);
    assert!(!info.clean_shutdown, "{context}: close did not finish");
    let found_rp = found.as_ref().map(|_| info.recovery_point);
    assert_eq!(
        found.map(|t| t
            .trim_end()
            .rsplit(' ')
            .next()
            .unwrap()
            .parse::<i64>()
            .unwrap()),
        found_rp,
        "{context}: open takes the checkpoint's recovery point"
    );
    let got = contents(&log);
    let all = expected(&want);
    let flushed = match writer {
        Writer::Close => all.len(),
        _ => 20,
    };
    assert!(
        got.len() >= flushed && all.starts_with(&got),
        "{context}: every flushed record, then a prefix of the rest; got {}",
        got.len()
    );
    assert!(
        !after
            .list_all()
            .iter()
            .any(|p| p.extension().is_some_and(|e| e == "tmp")),
        "{context}: open removes an interrupted tmp file"
    );
    found_rp
}

#[test]
fn a_failed_fsync_of_the_tmp_file_keeps_the_old_checkpoint() {
    for writer in [Writer::Checkpoint, Writer::Tick, Writer::Close] {
        for seed in 0..SEEDS {
            assert_eq!(
                scenario(seed, writer, Fault::TmpFile, true),
                Some(10),
                "seed {seed}, {writer:?}"
            );
            assert_eq!(scenario(seed, writer, Fault::TmpFile, false), None);
        }
    }
}

#[test]
fn a_failed_fsync_of_the_directory_leaves_the_old_or_the_new_checkpoint() {
    for writer in [Writer::Checkpoint, Writer::Tick, Writer::Close] {
        let mut seen = BTreeSet::new();
        let mut seen_first = BTreeSet::new();
        for seed in 0..SEEDS {
            seen.insert(scenario(seed, writer, Fault::Directory, true));
            seen_first.insert(scenario(seed, writer, Fault::Directory, false));
        }
        let new = match writer {
            Writer::Close => 25,
            _ => 20,
        };
        assert_eq!(
            seen,
            BTreeSet::from([Some(10), Some(new)]),
            "{writer:?}: over {SEEDS} seeds, the rename was lost and kept"
        );
        assert_eq!(seen_first, BTreeSet::from([None, Some(new)]), "{writer:?}");
    }
}
