//! An fsync that fails with EIO poisons the log. Linux may drop the dirty pages of a failed
//! fsync, so a retry could report success for data that is gone: the flush errors, every
//! later call that writes or flushes fails with `LogPoisoned`, and the recovery point never
//! moves past what a successful fsync covered. After power loss the log opens, keeps every
//! flushed record, and claims nothing durable that was not.

use crate::common::sim_log;

use sim_log::{append, contents, expected, open, rolling, segment_file, small_indexes};
use streamlog::io::{SimError, SimFs, SimOp};
use streamlog::{Compression, Error, Log, LogConfig};

const SEEDS: u64 = 20;

/// Every call that writes, flushes or checkpoints fails with `LogPoisoned`; reading the
/// recovery point shows it unchanged at `recovery_point`.
fn assert_refuses_everything(log: &Log, recovery_point: i64, context: &str) {
    let poisoned = |what: &str, r: Result<(), Error>| match r {
        Err(Error::LogPoisoned { .. }) => {}
        other => panic!("{context}: {what} after the failed fsync gave {other:?}"),
    };
    assert!(log.is_poisoned(), "{context}");
    let leo = log.log_end_offset();
    poisoned(
        "append_records",
        log.append_records(&sim_log::records(99, leo, 2, 8), Compression::None)
            .map(drop),
    );
    poisoned("append", log.append(&one_batch(leo)).map(drop));
    poisoned(
        "append_replicated",
        log.append_replicated(&one_batch(leo)).map(drop),
    );
    poisoned("flush", log.flush().map(drop));
    poisoned("tick", log.tick(i64::MAX / 2));
    poisoned("checkpoint", log.checkpoint());
    poisoned("roll", log.roll());
    poisoned("truncate_to", log.truncate_to(0));
    poisoned("delete_records_before", log.delete_records_before(leo));
    poisoned("close", log.close());
    assert_eq!(log.recovery_point(), recovery_point, "{context}");
    assert_eq!(
        log.log_end_offset(),
        leo,
        "{context}: a refused call changed the log"
    );
}

/// A batch whose offsets start at `base` (as a replica would send it).
fn one_batch(base: i64) -> Vec<u8> {
    let mut b = streamlog::BatchBuilder::new(streamlog::BatchOptions {
        base_offset: base,
        ..streamlog::BatchOptions::default()
    });
    b.append(sim_log::T0, Some(b"k"), Some(b"never stored"), &[])
        .unwrap();
    b.build().unwrap()
}

/// Reopens after power loss and checks the log holds exactly `want`, claims at most
/// `durable` as its recovery point, and appends and flushes normally again.
fn reopen_after_crash(
    fs: &SimFs,
    config: &LogConfig,
    durable: i64,
    want: &[(u64, i64, usize, usize)],
    context: &str,
) {
    let after = fs.crash();
    let (log, info) = open(&after, config, context);
    assert!(!info.clean_shutdown, "{context}");
    assert!(
        info.recovery_point <= durable,
        "{context}: reopened claiming {} durable, only {durable} was synced",
        info.recovery_point
    );
    assert!(log.recovery_point() <= durable, "{context}");
    assert!(
        !log.is_poisoned(),
        "{context}: a reopened log starts afresh"
    );
    assert_eq!(contents(&log), expected(want), "{context}");
    let end = want.last().map_or(0, |&(_, first, n, _)| first + n as i64);
    assert_eq!(log.log_end_offset(), end, "{context}");
    let next = append(&log, 50, 3, 16, end);
    assert_eq!(log.flush().unwrap(), next, "{context}");
}

#[test]
fn eio_on_the_active_segments_fsync_poisons_the_log() {
    let config = small_indexes();
    for seed in 0..SEEDS {
        let context = format!("seed {seed}");
        let fs = SimFs::new(seed);
        let (log, _) = open(&fs, &config, &context);
        let mut end = 0;
        for tag in 0..3 {
            end = append(&log, tag, 5, 20, end);
        }
        assert_eq!(log.flush().unwrap(), 15);
        log.checkpoint().unwrap();
        for tag in 3..5 {
            end = append(&log, tag, 5, 20, end);
        }
        fs.fail_next(SimOp::Sync, Some(".log"), SimError::Eio);
        let err = log.flush().expect_err("the fsync failed");
        assert!(
            err.to_string().contains("00000000000000000000.log"),
            "{context}: the error names the file whose fsync failed: {err}"
        );
        assert_eq!(log.recovery_point(), 15, "{context}");
        assert_refuses_everything(&log, 15, &context);
        assert_eq!(end, 25);

        // The failed fsync dropped the dirty pages: only what the first flush covered is
        // left, even though reads saw the later batches before the crash.
        reopen_after_crash(
            &fs,
            &config,
            15,
            &[(0, 0, 5, 20), (1, 5, 5, 20), (2, 10, 5, 20)],
            &context,
        );
    }
}

#[test]
fn eio_in_the_flush_that_flush_messages_triggers_fails_the_append() {
    let config = small_indexes()
        .to_builder()
        .flush_messages(Some(5))
        .build()
        .unwrap();
    for seed in 0..SEEDS {
        let context = format!("seed {seed}");
        let fs = SimFs::new(seed);
        let (log, _) = open(&fs, &config, &context);
        let end = append(&log, 0, 5, 20, 0);
        assert_eq!(
            log.recovery_point(),
            end,
            "{context}: flush.messages flushed"
        );
        log.checkpoint().unwrap();
        fs.fail_next(SimOp::Sync, Some(".log"), SimError::Eio);
        let err = log
            .append_records(&sim_log::records(1, end, 5, 20), Compression::None)
            .expect_err("the append's flush failed");
        assert!(
            matches!(err, Error::LogPoisoned { .. } | Error::Io { .. }),
            "{context}: {err:?}"
        );
        assert_refuses_everything(&log, end, &context);
        reopen_after_crash(&fs, &config, end, &[(0, 0, 5, 20)], &context);
    }
}

/// A flush covering several segments syncs each; one failing, on the `.log` or an index,
/// poisons the log and the recovery point stays where it was.
#[test]
fn eio_on_a_sealed_segments_fsync_poisons_the_log() {
    let config = rolling(600);
    for (i, ext) in ["log", "index", "timeindex"].into_iter().enumerate() {
        for seed in 0..SEEDS {
            let fs = SimFs::new(seed * 7 + i as u64);
            let (log, _) = open(&fs, &config, &format!("seed {seed}"));
            let mut end = 0;
            let mut batches = Vec::new();
            for tag in 0..4 {
                batches.push((tag, end, 4, 30));
                end = append(&log, tag, 4, 30, end);
            }
            assert_eq!(log.flush().unwrap(), end);
            log.checkpoint().unwrap();
            let durable = end;
            let flushed = batches.clone();
            for tag in 4..12 {
                batches.push((tag, end, 4, 30));
                end = append(&log, tag, 4, 30, end);
            }
            // A sealed segment holding unflushed batches (not the active one).
            let bases = log.segment_base_offsets();
            let sealed = bases[..bases.len() - 1]
                .iter()
                .rev()
                .find(|&&b| b >= durable)
                .copied()
                .expect("the batches rolled past the recovery point");
            let culprit = segment_file(sealed, ext);
            let culprit = culprit.file_name().unwrap().to_str().unwrap();
            let context = format!("seed {seed}, fsync of {culprit} fails");
            fs.fail_next(SimOp::Sync, Some(culprit), SimError::Eio);
            assert!(log.flush().is_err(), "{context}");
            assert_refuses_everything(&log, durable, &context);

            let after = fs.crash();
            let (log, info) = open(&after, &config, &context);
            assert!(info.recovery_point <= durable, "{context}");
            let got = contents(&log);
            let all = expected(&batches);
            assert!(
                got.len() >= expected(&flushed).len() && all.starts_with(&got),
                "{context}: the flushed records, then a prefix of the rest; got {} records",
                got.len()
            );
            assert_eq!(log.log_end_offset(), got.len() as i64, "{context}");
        }
    }
}

/// Rolling syncs the directory (the new segment's name); that failing fails the append
/// that rolled and poisons the log.
#[test]
fn eio_on_the_directory_fsync_of_a_roll_poisons_the_log() {
    let config = rolling(600);
    for seed in 0..SEEDS {
        let context = format!("seed {seed}");
        let fs = SimFs::new(seed);
        let (log, _) = open(&fs, &config, &context);
        let end = append(&log, 0, 4, 30, 0);
        let end = append(&log, 1, 4, 30, end);
        assert_eq!(log.flush().unwrap(), end);
        log.checkpoint().unwrap();
        assert_eq!(log.segment_count(), 1, "{context}");
        fs.fail_next(SimOp::SyncDir, None, SimError::Eio);
        let err = log
            .append_records(&sim_log::records(2, end, 4, 30), Compression::None)
            .expect_err("the roll's directory fsync failed");
        assert!(
            matches!(err, Error::Io { .. } | Error::LogPoisoned { .. }),
            "{context}: {err:?}"
        );
        assert_eq!(
            log.log_end_offset(),
            end,
            "{context}: the batch was not appended"
        );
        assert_refuses_everything(&log, end, &context);
        reopen_after_crash(&fs, &config, end, &[(0, 0, 4, 30), (1, 4, 4, 30)], &context);
    }
}
