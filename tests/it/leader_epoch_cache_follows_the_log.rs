//! The leader-epoch cache of a replica (`HighWatermarkPolicy::Replicated`): kept in Kafka's
//! `leader-epoch-checkpoint` format, fed by becoming leader and by replicated batches of a new
//! epoch, cut with the log at both ends, rebuilt from the batches when the file is missing,
//! damaged or behind, and answering OffsetsForLeaderEpoch as Kafka's cache does. The epoch a
//! log stamps survives a reopen, replicated or not.

use std::path::Path;

use crate::common::logs::{batch, replica_batch, T0};
use streamlog::log::{EpochEntry, LEADER_EPOCH_CHECKPOINT};
use streamlog::{HighWatermarkPolicy, Log, LogConfig};

fn replicated() -> LogConfig {
    LogConfig::builder()
        .high_watermark_policy(HighWatermarkPolicy::Replicated)
        .build()
        .unwrap()
}

fn epochs(log: &Log) -> Vec<(i32, i64)> {
    log.leader_epochs()
        .iter()
        .map(|e: &EpochEntry| (e.epoch, e.start_offset))
        .collect()
}

fn file(dir: &Path) -> String {
    std::fs::read_to_string(dir.join(LEADER_EPOCH_CHECKPOINT)).unwrap()
}

#[test]
fn leader_epochs_are_recorded_cut_and_survive_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let log = Log::open(dir, replicated()).unwrap();
    log.set_leader_epoch(1).unwrap();
    log.append(&batch(2, T0)).unwrap();
    log.set_leader_epoch(3).unwrap();
    log.append(&batch(2, T0)).unwrap();
    assert_eq!(epochs(&log), [(1, 0), (3, 2)]);
    assert_eq!(file(dir), "0\n2\n1 0\n3 2\n");
    assert_eq!(log.end_offset_for_epoch(3), Some((3, 4)));
    assert_eq!(log.end_offset_for_epoch(2), Some((1, 2)));
    assert_eq!(log.end_offset_for_epoch(0), Some((0, 0)));
    assert_eq!(log.end_offset_for_epoch(4), None);
    // An older epoch set again changes nothing in the cache.
    log.set_leader_epoch(2).unwrap();
    assert_eq!(epochs(&log), [(1, 0), (3, 2)]);
    log.set_leader_epoch(3).unwrap();
    log.close().unwrap();
    drop(log);

    let log = Log::open(dir, replicated()).unwrap();
    assert_eq!(log.leader_epoch(), 3);
    assert_eq!(epochs(&log), [(1, 0), (3, 2)]);
    // A truncation cuts the epochs that start at or past the new end.
    log.truncate_to(2).unwrap();
    assert_eq!(epochs(&log), [(1, 0)]);
    assert_eq!(file(dir), "0\n1\n1 0\n");
    // A new leader with no batch yet: its epoch starts at the log end, and stays after a
    // reopen.
    log.set_leader_epoch(6).unwrap();
    log.close().unwrap();
    drop(log);
    let log = Log::open(dir, replicated()).unwrap();
    assert_eq!(epochs(&log), [(1, 0), (6, 2)]);
    assert_eq!(log.leader_epoch(), 6);
}

#[test]
fn replicated_batches_feed_the_cache_and_the_start_cuts_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let log = Log::open(dir, replicated()).unwrap();
    let mut bytes = replica_batch(0, 3, 2, T0);
    bytes.extend(replica_batch(3, 2, 2, T0));
    bytes.extend(replica_batch(5, 2, 5, T0));
    log.append_replicated(&bytes).unwrap();
    log.append_replicated(&replica_batch(7, 1, 5, T0)).unwrap();
    assert_eq!(epochs(&log), [(2, 0), (5, 5)]);
    assert_eq!(log.end_offset_for_epoch(4), Some((2, 5)));
    assert_eq!(log.end_offset_for_epoch(5), Some((5, 8)));
    // Followers stamp nothing of their own: the log's epoch is the newest it holds after a
    // reopen.
    log.maybe_advance_high_watermark(8).unwrap();
    log.delete_records_before(6).unwrap();
    assert_eq!(epochs(&log), [(5, 6)]);
    assert_eq!(file(dir), "0\n1\n5 6\n");
    log.close().unwrap();
    drop(log);
    let log = Log::open(dir, replicated()).unwrap();
    assert_eq!(log.leader_epoch(), 5);
}

#[test]
fn missing_damaged_or_stale_cache_is_rebuilt_from_the_batches() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let log = Log::open(dir, replicated()).unwrap();
    let mut bytes = replica_batch(0, 2, 1, T0);
    bytes.extend(replica_batch(2, 2, 4, T0));
    bytes.extend(replica_batch(4, 2, 7, T0));
    log.append_replicated(&bytes).unwrap();
    let expected = [(1, 0), (4, 2), (7, 4)];
    assert_eq!(epochs(&log), expected);
    log.close().unwrap();
    drop(log);
    for damage in [
        None,
        Some("0\n3\n1 0\n"),
        Some("0\n1\n1 0\n"),
        Some("0\n2\n1 0\n4 2\n"),
    ] {
        match damage {
            None => std::fs::remove_file(dir.join(LEADER_EPOCH_CHECKPOINT)).unwrap(),
            Some(text) => std::fs::write(dir.join(LEADER_EPOCH_CHECKPOINT), text).unwrap(),
        }
        let log = Log::open(dir, replicated()).unwrap();
        assert_eq!(epochs(&log), expected, "{damage:?}");
        assert_eq!(file(dir), "0\n3\n1 0\n4 2\n7 4\n", "{damage:?}");
        assert_eq!(log.leader_epoch(), 7);
        log.close().unwrap();
    }
}

#[test]
fn a_single_replica_keeps_its_epoch_without_a_cache_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let log = Log::open(dir, LogConfig::default()).unwrap();
    log.set_leader_epoch(7).unwrap();
    log.append(&batch(1, T0)).unwrap();
    log.close().unwrap();
    drop(log);
    let log = Log::open(dir, LogConfig::default()).unwrap();
    assert_eq!(log.leader_epoch(), 7);
    assert!(log.leader_epochs().is_empty());
    assert!(!dir.join(LEADER_EPOCH_CHECKPOINT).exists());
}
