//! Exactly-once consume-transform-produce on one `Storage`: `LocalTxnDriver` (transactions)
//! and `LocalGroupDriver` (groups) joined by the marker hook. A TxnOffsetCommit stays
//! invisible until EndTxn commits (then OffsetFetch answers it), is dropped when EndTxn
//! aborts, and both drivers reopened from the storage agree with what was acknowledged.

use std::collections::BTreeMap;
use std::sync::Arc;

use streamlog::group::coordinator::{
    GroupCoordinatorConfig, OffsetCommitPartition, OffsetFetchRequest, Request, Response,
    TxnOffsetCommitRequest,
};
use streamlog::group::{LocalGroupDriver, OffsetsTopicConfig};
use streamlog::storage::{Storage, StorageConfig, TopicConfig};
use streamlog::txn::{
    AddOffsetsToTxnRequest, InitProducerIdRequest, KafkaCode, LocalTxnDriver, TopicPartition,
    TxnCoordinatorConfig,
};

const GROUP: &str = "etl";
const OFFSETS_PARTITIONS: u32 = 3;

fn drivers(storage: &Arc<Storage>, seed: u64) -> (LocalTxnDriver, LocalGroupDriver) {
    let mut offsets = OffsetsTopicConfig::default();
    offsets
        .set(
            "offsets.topic.num.partitions",
            &OFFSETS_PARTITIONS.to_string(),
        )
        .unwrap();
    let groups = LocalGroupDriver::open(
        Arc::clone(storage),
        GroupCoordinatorConfig::default(),
        &offsets,
        seed,
        0,
    )
    .unwrap();
    let config = TxnCoordinatorConfig {
        consumer_offsets_partitions: OFFSETS_PARTITIONS,
        transaction_state_partitions: 1,
        ..TxnCoordinatorConfig::default()
    };
    let mut txn = LocalTxnDriver::open(Arc::clone(storage), config).unwrap();
    txn.set_offsets_marker_hook(groups.marker_hook());
    (txn, groups)
}

fn fetch(groups: &mut LocalGroupDriver, id: u64) -> BTreeMap<i32, (i64, KafkaCode)> {
    let answers = groups.handle(
        0,
        id,
        Request::OffsetFetch(OffsetFetchRequest {
            group_id: GROUP.into(),
            partitions: Some(
                (0..2)
                    .map(|p| streamlog::group::coordinator::TopicPartition::new("in", p))
                    .collect(),
            ),
            require_stable: true,
        }),
    );
    let [(_, Response::OffsetFetch(r))] = &answers[..] else {
        panic!("{answers:?}")
    };
    r.partitions
        .iter()
        .map(|p| (p.partition, (p.committed_offset, p.error_code)))
        .collect()
}

/// One transaction: produce a record to `out`, commit `offset` for partition `p` of `in`
/// with it, end it with `commit`.
fn transaction(
    txn: &mut LocalTxnDriver,
    groups: &mut LocalGroupDriver,
    storage: &Storage,
    p: i32,
    offset: i64,
    commit: bool,
) -> (i64, i16) {
    let init = txn
        .init_producer_id(InitProducerIdRequest::transactional("tx", 60_000))
        .unwrap();
    assert_eq!(init.error, KafkaCode::NONE);
    let (pid, epoch) = (init.producer_id, init.producer_epoch);
    let added = txn
        .add_partitions_to_txn("tx", pid, epoch, vec![TopicPartition::new("out", 0)])
        .unwrap();
    assert_eq!(added.error(), KafkaCode::NONE);
    let out = storage.partition("out", 0).unwrap();
    let seq = out.producer_state(pid).map_or(0, |e| {
        if e.producer_epoch == epoch {
            e.last_seq() + 1
        } else {
            0
        }
    });
    let mut b = streamlog::BatchBuilder::new(streamlog::BatchOptions {
        producer_id: pid,
        producer_epoch: epoch,
        base_sequence: seq,
        transactional: true,
        ..streamlog::BatchOptions::default()
    });
    b.append(0, None, Some(b"result"), &[]).unwrap();
    out.append(&b.build().unwrap()).unwrap();
    let code = txn
        .add_offsets_to_txn(AddOffsetsToTxnRequest {
            transactional_id: "tx".into(),
            producer_id: pid,
            producer_epoch: epoch,
            group_id: GROUP.into(),
        })
        .unwrap();
    assert_eq!(code, KafkaCode::NONE);
    let answers = groups.handle(
        0,
        1_000 + offset as u64,
        Request::TxnOffsetCommit(TxnOffsetCommitRequest {
            transactional_id: "tx".into(),
            group_id: GROUP.into(),
            producer_id: pid,
            producer_epoch: epoch,
            generation_id: -1,
            member_id: String::new(),
            group_instance_id: None,
            partitions: vec![OffsetCommitPartition {
                topic: "in".into(),
                partition: p,
                committed_offset: offset,
                committed_leader_epoch: -1,
                committed_metadata: None,
            }],
        }),
    );
    let [(_, Response::TxnOffsetCommit(r))] = &answers[..] else {
        panic!("{answers:?}")
    };
    assert_eq!(r.partitions[0].error_code, KafkaCode::NONE);
    // Pending: a stable fetch says so, and the old value is what a plain fetch would see.
    assert_eq!(
        fetch(groups, 2_000 + offset as u64)[&p].1,
        KafkaCode::UNSTABLE_OFFSET_COMMIT
    );
    assert_eq!(
        txn.end_txn("tx", pid, epoch, commit).unwrap(),
        KafkaCode::NONE
    );
    (pid, epoch)
}

#[test]
fn txn_offset_commits_follow_end_txn_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Arc::new(Storage::open(dir.path(), StorageConfig::default()).unwrap());
    storage.create_topic("out", 1, TopicConfig::new()).unwrap();
    let (mut txn, mut groups) = drivers(&storage, 1);

    transaction(&mut txn, &mut groups, &storage, 0, 10, true);
    let seen = fetch(&mut groups, 1);
    assert_eq!(seen[&0], (10, KafkaCode::NONE));
    assert_eq!(seen[&1], (-1, KafkaCode::NONE));

    transaction(&mut txn, &mut groups, &storage, 1, 20, false);
    transaction(&mut txn, &mut groups, &storage, 0, 30, true);
    let expected = BTreeMap::from([(0, (30, KafkaCode::NONE)), (1, (-1, KafkaCode::NONE))]);
    assert_eq!(fetch(&mut groups, 2), expected);

    // Reopen everything: the offsets partition replays batches and markers alike.
    drop(txn);
    drop(groups);
    Arc::try_unwrap(storage).ok().unwrap().close().unwrap();
    let storage = Arc::new(Storage::open(dir.path(), StorageConfig::default()).unwrap());
    let (_txn, mut groups) = drivers(&storage, 2);
    assert_eq!(fetch(&mut groups, 3), expected);
    // read_committed readers of `out` see the two committed results, not the aborted one.
    let out = storage.partition("out", 0).unwrap();
    let leo = out.log_end_offset();
    assert_eq!(out.last_stable_offset(), leo);
    let committed = crate::common::consumer::consume_committed(&out, leo, leo);
    assert_eq!(committed.len(), 2);
}
