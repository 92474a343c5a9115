//! The group coordinator (sans-IO) over the offset store: what it asks to append is written
//! to `__consumer_offsets` by `OffsetsPartition`, transaction markers go through the store,
//! and a new coordinator loaded from the log (`load_entries`) serves the same committed
//! offsets as the old one and as the store's own replay.

use streamlog::group::coordinator::{
    GroupCoordinator, GroupCoordinatorConfig, OffsetCommitPartition, OffsetCommitRequest, Output,
    Request, TopicPartition, TxnOffsetCommitRequest,
};
use streamlog::group::{load_entries, OffsetsPartition, OffsetsTopicConfig};
use streamlog::storage::{Storage, StorageConfig};
use streamlog::TxnResult;

fn coordinator() -> GroupCoordinator {
    let config = GroupCoordinatorConfig {
        offsets_topic_num_partitions: 1,
        ..Default::default()
    };
    GroupCoordinator::new(config, 7)
}

fn offsets_config() -> OffsetsTopicConfig {
    let mut c = OffsetsTopicConfig::default();
    c.set("offsets.topic.num.partitions", "1").unwrap();
    c
}

/// Writes what the coordinator asks for through the store; returns the responses' count.
fn pump(coordinator: &mut GroupCoordinator, store: &mut OffsetsPartition, now: i64) -> usize {
    let mut responses = 0;
    while let Some(output) = coordinator.poll_output() {
        match output {
            Output::Append(append) => {
                let result = store
                    .append_coordinator_records(&append, now)
                    .map(|_| ())
                    .map_err(|e| streamlog::group::commit_error_code(&e));
                coordinator.append_completed(now, append.id, result);
            }
            Output::Response { .. } => responses += 1,
        }
    }
    responses
}

fn partition(topic: &str, p: i32, offset: i64) -> OffsetCommitPartition {
    OffsetCommitPartition {
        topic: topic.into(),
        partition: p,
        committed_offset: offset,
        committed_leader_epoch: -1,
        committed_metadata: Some(String::new()),
    }
}

#[test]
fn coordinator_outputs_written_by_the_store_reload_into_a_new_coordinator() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(dir.path(), StorageConfig::default()).unwrap();
    let mut store = OffsetsPartition::load(&storage, &offsets_config(), 0).unwrap();
    let mut c = coordinator();
    c.load_partition(0, 0, load_entries(store.log()).unwrap());

    let mut request_id = 0;
    let mut send = |c: &mut GroupCoordinator, store: &mut OffsetsPartition, r: Request| {
        request_id += 1;
        c.handle(10, request_id, r);
        pump(c, store, 10)
    };
    // Plain commits of a group without members (generation -1), then a transaction's.
    let commit = OffsetCommitRequest {
        group_id: "etl".into(),
        generation_id: -1,
        member_id: String::new(),
        group_instance_id: None,
        retention_time_ms: -1,
        partitions: vec![partition("in", 0, 5), partition("in", 1, 6)],
    };
    assert_eq!(send(&mut c, &mut store, Request::OffsetCommit(commit)), 1);
    let txn = TxnOffsetCommitRequest {
        transactional_id: "tx".into(),
        group_id: "etl".into(),
        producer_id: 42,
        producer_epoch: 0,
        generation_id: -1,
        member_id: String::new(),
        group_instance_id: None,
        partitions: vec![partition("in", 0, 50)],
    };
    assert_eq!(send(&mut c, &mut store, Request::TxnOffsetCommit(txn)), 1);
    assert!(store
        .state()
        .has_pending_transactional_offset("etl", "in", 0));

    // The transaction coordinator's COMMIT marker, written to the log and told to both.
    store.write_txn_marker(42, 0, TxnResult::Commit, 0).unwrap();
    c.complete_transaction(42, &[0], true);

    let tp0 = TopicPartition::new("in", 0);
    let tp1 = TopicPartition::new("in", 1);
    assert_eq!(c.committed_offset("etl", &tp0).map(|o| o.offset), Some(50));
    assert_eq!(c.committed_offset("etl", &tp1).map(|o| o.offset), Some(6));
    assert_eq!(
        store
            .state()
            .committed_offset("etl", "in", 0)
            .map(|o| o.offset),
        Some(50)
    );

    // Restart: a new coordinator and a new store from the same log agree.
    drop(store);
    storage.close().unwrap();
    let storage = Storage::open(dir.path(), StorageConfig::default()).unwrap();
    let store = OffsetsPartition::load(&storage, &offsets_config(), 0).unwrap();
    let mut again = coordinator();
    again.load_partition(100, 0, load_entries(store.log()).unwrap());
    for (tp, expected) in [(&tp0, 50), (&tp1, 6)] {
        assert_eq!(
            again.committed_offset("etl", tp).map(|o| o.offset),
            Some(expected)
        );
        assert_eq!(
            store
                .state()
                .committed_offset("etl", &tp.topic, tp.partition)
                .map(|o| o.offset),
            Some(expected)
        );
    }
}
