//! Transactional offset commits (TxnOffsetCommit) are written as transactional batches of
//! the producer and stay pending until the producer's COMMIT marker lands in the offsets
//! partition (then visible) or its ABORT marker (then dropped), as in Kafka's
//! `GroupMetadataManager`; a plain commit racing a pending one: the record further in the
//! log wins. A crash between the offsets batch and the marker reloads to the same state,
//! and read_committed readers of the offsets log see the same before and after the reload.

use std::sync::Arc;

use streamlog::group::{
    commit_error_code, partition_for_group, OffsetAndMetadata, OffsetCommit, OffsetCommitValue,
    OffsetsPartition, OffsetsRecord, OffsetsTopicConfig, OFFSETS_TOPIC,
};
use streamlog::io::SimFs;
use streamlog::storage::{Storage, StorageConfig};
use streamlog::{Error, KafkaCode, TxnResult};

use crate::common::consumer::consume_committed;

const GROUP: &str = "payments";

/// A storage config on the simulated filesystem `fs`.
fn on(fs: &SimFs) -> StorageConfig {
    let mut c = StorageConfig::default();
    c.fs = Arc::new(fs.clone());
    // Small index files: the simulated filesystem keeps every byte in memory.
    c.defaults.log.segment_index_bytes = 4096;
    c
}

fn config() -> OffsetsTopicConfig {
    let mut c = OffsetsTopicConfig::default();
    c.set("offsets.topic.num.partitions", "3").unwrap();
    c
}

fn partition() -> u32 {
    partition_for_group(GROUP, 3).unwrap()
}

fn commit(p: i32, offset: i64) -> OffsetCommit {
    OffsetCommit::new("orders", p, OffsetAndMetadata::new(offset, 1_000 + offset))
}

fn offset_of(part: &OffsetsPartition, p: i32) -> Option<i64> {
    part.state()
        .committed_offset(GROUP, "orders", p)
        .map(|o| o.offset)
}

/// What a read_committed reader of the offsets partition sees, latest value per key.
fn committed_view(part: &OffsetsPartition) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    let log = part.log();
    let leo = log.log_end_offset();
    let lso = log.last_stable_offset();
    let mut latest = std::collections::BTreeMap::new();
    for r in consume_committed(log, leo, lso) {
        latest.insert(r.key.unwrap(), r.value);
    }
    latest.into_iter().collect()
}

#[test]
fn pending_until_commit_marker_then_visible() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(dir.path(), StorageConfig::default()).unwrap();
    let mut part = OffsetsPartition::load(&storage, &config(), partition()).unwrap();
    part.commit_offsets(GROUP, &[commit(0, 5)], 1).unwrap();
    let txn_start = part.log().log_end_offset();
    // Two TxnOffsetCommits in one transaction: the producer's sequence continues.
    part.commit_transactional_offsets(GROUP, 7, 0, &[commit(0, 10)], 2)
        .unwrap();
    part.commit_transactional_offsets(GROUP, 7, 0, &[commit(1, 11)], 3)
        .unwrap();
    assert_eq!(offset_of(&part, 0), Some(5));
    assert_eq!(offset_of(&part, 1), None);
    assert!(part
        .state()
        .has_pending_transactional_offset(GROUP, "orders", 0));
    assert!(part
        .state()
        .has_pending_transactional_offset(GROUP, "orders", 1));
    assert_eq!(part.state().pending_producers(), [7]);
    // read_committed readers stop at the undecided transaction.
    assert_eq!(part.log().last_stable_offset(), txn_start);

    part.write_txn_marker(7, 0, TxnResult::Commit, 0).unwrap();
    assert_eq!(offset_of(&part, 0), Some(10));
    assert_eq!(offset_of(&part, 1), Some(11));
    assert!(!part
        .state()
        .has_pending_transactional_offset(GROUP, "orders", 0));
    let leo = part.log().log_end_offset();
    assert_eq!(part.log().last_stable_offset(), leo);

    // A second transaction of the same producer, a new epoch: sequences restart.
    part.commit_transactional_offsets(GROUP, 7, 1, &[commit(0, 20)], 4)
        .unwrap();
    part.write_txn_marker(7, 1, TxnResult::Commit, 0).unwrap();
    assert_eq!(offset_of(&part, 0), Some(20));
}

#[test]
fn abort_marker_drops_pending_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(dir.path(), StorageConfig::default()).unwrap();
    let mut part = OffsetsPartition::load(&storage, &config(), partition()).unwrap();
    part.commit_offsets(GROUP, &[commit(0, 5)], 1).unwrap();
    part.commit_transactional_offsets(GROUP, 9, 0, &[commit(0, 50), commit(2, 52)], 2)
        .unwrap();
    part.write_txn_marker(9, 0, TxnResult::Abort, 0).unwrap();
    assert_eq!(offset_of(&part, 0), Some(5));
    assert_eq!(offset_of(&part, 2), None);
    assert!(part.state().pending_producers().is_empty());
    let view = committed_view(&part);
    assert_eq!(
        view.len(),
        1,
        "only the plain commit is visible to read_committed"
    );
    drop(part);
    let part = OffsetsPartition::load(&storage, &config(), partition()).unwrap();
    assert_eq!(offset_of(&part, 0), Some(5));
    assert_eq!(offset_of(&part, 2), None);
    assert_eq!(committed_view(&part), view);
}

#[test]
fn plain_commit_racing_a_pending_one_later_record_wins() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(dir.path(), StorageConfig::default()).unwrap();
    let mut part = OffsetsPartition::load(&storage, &config(), partition()).unwrap();
    // Partition 0: plain commit before the transactional record -> the transaction wins.
    part.commit_offsets(GROUP, &[commit(0, 100)], 1).unwrap();
    part.commit_transactional_offsets(GROUP, 3, 0, &[commit(0, 200), commit(1, 201)], 2)
        .unwrap();
    // Partition 1: plain commit after the transactional record -> the plain one stays.
    part.commit_offsets(GROUP, &[commit(1, 300)], 3).unwrap();
    assert_eq!(offset_of(&part, 0), Some(100));
    assert_eq!(offset_of(&part, 1), Some(300));
    let before_marker = part.state().snapshot();
    part.write_txn_marker(3, 0, TxnResult::Commit, 0).unwrap();
    assert_eq!(offset_of(&part, 0), Some(200));
    assert_eq!(offset_of(&part, 1), Some(300));
    let after = part.state().snapshot();
    assert_ne!(before_marker, after);
    drop(part);
    let part = OffsetsPartition::load(&storage, &config(), partition()).unwrap();
    assert_eq!(part.state().snapshot(), after);
}

#[test]
fn fenced_producer_epoch_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(dir.path(), StorageConfig::default()).unwrap();
    let mut part = OffsetsPartition::load(&storage, &config(), partition()).unwrap();
    part.commit_transactional_offsets(GROUP, 4, 2, &[commit(0, 10)], 1)
        .unwrap();
    part.write_txn_marker(4, 2, TxnResult::Commit, 0).unwrap();
    let leo = part.log().log_end_offset();
    let before = part.state().snapshot();
    let e = part
        .commit_transactional_offsets(GROUP, 4, 1, &[commit(0, 99)], 2)
        .unwrap_err();
    assert!(matches!(e, Error::InvalidProducerEpoch { .. }), "{e:?}");
    assert_eq!(commit_error_code(&e), KafkaCode::PRODUCER_FENCED);
    assert!(part.write_txn_marker(4, 1, TxnResult::Commit, 0).is_err());
    assert_eq!(part.log().log_end_offset(), leo);
    assert_eq!(part.state().snapshot(), before);
}

#[test]
fn crash_between_offsets_batch_and_marker_reloads_the_same_state() {
    // How often the marker survived, and how often it was lost.
    let mut outcomes = [0u32; 2];
    for seed in 0..24u64 {
        let result = if seed % 2 == 0 {
            TxnResult::Commit
        } else {
            TxnResult::Abort
        };
        let fs = SimFs::new(seed);
        let storage = Storage::open("/data", on(&fs)).unwrap();
        let mut part = OffsetsPartition::load(&storage, &config(), partition()).unwrap();
        part.commit_offsets(GROUP, &[commit(0, 1), commit(1, 2)], 1)
            .unwrap();
        part.commit_transactional_offsets(GROUP, 11, 0, &[commit(0, 10), commit(3, 13)], 2)
            .unwrap();
        part.commit_offsets(GROUP, &[commit(3, 30)], 3).unwrap();
        storage.flush().unwrap();
        let pending_state = part.state().snapshot();
        let pending_leo = part.log().log_end_offset();
        let pending_lso = part.log().last_stable_offset();
        let pending_view = committed_view(&part);
        // The marker is written but not synced when the power goes.
        part.write_txn_marker(11, 0, result, 0).unwrap();
        let decided_state = part.state().snapshot();
        let decided_view = committed_view(&part);
        // Power goes before anything closes (a clean close would sync the marker).
        let fs_after = fs.crash();
        drop(part);
        drop(storage);
        let fs = fs_after;

        let storage = Storage::open("/data", on(&fs)).unwrap();
        let mut part = OffsetsPartition::load(&storage, &config(), partition()).unwrap();
        let leo = part.log().log_end_offset();
        assert!(
            leo == pending_leo || leo == pending_leo + 1,
            "seed {seed}: leo {leo}"
        );
        outcomes[usize::from(leo == pending_leo)] += 1;
        if leo == pending_leo {
            // The marker was lost: still pending, exactly as before, for readers too.
            assert_eq!(part.state().snapshot(), pending_state, "seed {seed}");
            assert_eq!(part.log().last_stable_offset(), pending_lso, "seed {seed}");
            assert_eq!(committed_view(&part), pending_view, "seed {seed}");
            // The transaction coordinator writes the marker again.
            part.write_txn_marker(11, 0, result, 0).unwrap();
        }
        assert_eq!(part.state().snapshot(), decided_state, "seed {seed}");
        assert_eq!(committed_view(&part), decided_view, "seed {seed}");
        let leo = part.log().log_end_offset();
        assert_eq!(part.log().last_stable_offset(), leo);
        let expected_p0 = if result == TxnResult::Commit { 10 } else { 1 };
        assert_eq!(offset_of(&part, 0), Some(expected_p0), "seed {seed}");
        // The plain commit of partition 3 came after the transactional record: it stays.
        assert_eq!(offset_of(&part, 3), Some(30), "seed {seed}");
        assert_eq!(storage.partition_count(OFFSETS_TOPIC).unwrap(), 3);
    }
    assert!(
        outcomes[0] > 0 && outcomes[1] > 0,
        "both outcomes seen: {outcomes:?}"
    );
}

#[test]
fn transactional_tombstone_deletes_only_on_commit() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(dir.path(), StorageConfig::default()).unwrap();
    let mut part = OffsetsPartition::load(&storage, &config(), partition()).unwrap();
    part.commit_transactional_offsets(GROUP, 5, 0, &[commit(0, 10), commit(1, 11)], 1)
        .unwrap();
    // A tombstone in the same transaction takes partition 1 back out of it.
    part.append(
        &[OffsetsRecord::offset_tombstone(GROUP, "orders", 1)],
        Some((5, 0)),
        2,
    )
    .unwrap();
    part.write_txn_marker(5, 0, TxnResult::Commit, 0).unwrap();
    assert_eq!(offset_of(&part, 0), Some(10));
    assert_eq!(offset_of(&part, 1), None);
    // Records of other groups' partitions are refused before anything is written.
    let other = (0..)
        .map(|i| format!("g{i}"))
        .find(|g| partition_for_group(g, 3).unwrap() != partition())
        .unwrap();
    let leo = part.log().log_end_offset();
    let e = part
        .append(
            &[OffsetsRecord::offset_commit(
                other,
                "t",
                0,
                OffsetCommitValue::new(1, -1, "", 0),
            )],
            None,
            3,
        )
        .unwrap_err();
    assert_eq!(e.kafka_code(), KafkaCode::NOT_COORDINATOR);
    assert_eq!(part.log().log_end_offset(), leo);
}
