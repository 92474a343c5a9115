//! The offset store keeps committed offsets and group metadata in `__consumer_offsets`:
//! reloading a partition rebuilds exactly the state that was written (offsets, metadata,
//! tombstones), compaction shrinks the log without changing what it says, and groups land
//! in the partition Kafka's rule picks.

use std::collections::BTreeMap;

use streamlog::group::{
    ensure_offsets_topic, partition_for_group, GroupMetadataValue, MemberMetadata,
    OffsetAndMetadata, OffsetCommit, OffsetsPartition, OffsetsTopicConfig, OFFSETS_TOPIC,
};
use streamlog::storage::{Storage, StorageConfig};
use streamlog::KafkaCode;

use crate::common::rng::Rng;

fn metadata(generation: i32, members: usize) -> GroupMetadataValue {
    GroupMetadataValue {
        version: 3,
        protocol_type: "consumer".into(),
        generation,
        protocol: Some("range".into()),
        leader: (members > 0).then(|| "m-0".to_string()),
        current_state_timestamp: 1_000 + i64::from(generation),
        members: (0..members)
            .map(|i| MemberMetadata {
                member_id: format!("m-{i}"),
                group_instance_id: None,
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout: 300_000,
                session_timeout: 45_000,
                subscription: vec![0, 3, 0, 0, 0, 0],
                assignment: vec![i as u8],
                tagged_fields: Vec::new(),
            })
            .collect(),
        tagged_fields: Vec::new(),
    }
}

/// Groups that all live in offsets partition `p` of `n`.
fn groups_in(p: u32, n: u32, count: usize) -> Vec<String> {
    (0..)
        .map(|i| format!("group-{i}"))
        .filter(|g| partition_for_group(g, n).unwrap() == p)
        .take(count)
        .collect()
}

#[test]
fn reload_rebuilds_offsets_metadata_and_deletions() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(dir.path(), StorageConfig::default()).unwrap();
    let mut config = OffsetsTopicConfig::default();
    config.set("offsets.topic.num.partitions", "4").unwrap();
    assert_eq!(ensure_offsets_topic(&storage, &config).unwrap(), 4);
    let groups = groups_in(2, 4, 5);
    let mut part = OffsetsPartition::load(&storage, &config, 2).unwrap();
    let mut rng = Rng(12);
    // The model: what each group's offsets should be.
    let mut model: BTreeMap<String, BTreeMap<(String, i32), i64>> = BTreeMap::new();
    for round in 0..200i64 {
        let g = &groups[rng.below(groups.len() as u64) as usize];
        match rng.below(10) {
            0 => {
                part.store_group(g, &metadata(round as i32, 1 + (round % 3) as usize), round)
                    .unwrap();
            }
            1 if model.get(g).is_some_and(|m| !m.is_empty()) => {
                let m = model.get_mut(g).unwrap();
                let tp = m.keys().next().unwrap().clone();
                part.delete_offsets(g, &[tp.clone(), ("absent".into(), 9)], round)
                    .unwrap();
                m.remove(&tp);
            }
            _ => {
                let commits: Vec<OffsetCommit> = (0..1 + rng.below(4))
                    .map(|_| {
                        let topic = format!("topic-{}", rng.below(3));
                        let p = rng.below(6) as i32;
                        let mut o =
                            OffsetAndMetadata::new(round * 10 + rng.below(10) as i64, round);
                        o.leader_epoch = Some(rng.below(5) as i32);
                        if rng.below(4) == 0 {
                            o.metadata = format!("meta-{round}");
                        }
                        OffsetCommit::new(topic, p, o)
                    })
                    .collect();
                let codes = part.commit_offsets(g, &commits, round).unwrap();
                assert!(codes.iter().all(|c| *c == KafkaCode::NONE));
                for c in commits {
                    model
                        .entry(g.clone())
                        .or_default()
                        .insert((c.topic, c.partition), c.offset.offset);
                }
            }
        }
    }
    // The deleted group's offsets and metadata go.
    let gone = &groups[0];
    if part.state().contains_group(gone) {
        part.delete_group(gone, 999).unwrap();
    }
    model.remove(gone);
    assert!(!part.state().contains_group(gone));

    for (g, offsets) in &model {
        let have: BTreeMap<(String, i32), i64> = part
            .state()
            .committed_offsets(g)
            .into_iter()
            .map(|(k, v)| (k, v.offset))
            .collect();
        assert_eq!(&have, offsets, "group {g}");
    }
    let before = part.state().snapshot();
    drop(part);
    storage.close().unwrap();

    let storage = Storage::open(dir.path(), StorageConfig::default()).unwrap();
    let part = OffsetsPartition::load(&storage, &config, 2).unwrap();
    assert_eq!(part.state().snapshot(), before);
    assert_eq!(storage.partition_count(OFFSETS_TOPIC).unwrap(), 4);
}

#[test]
fn compaction_shrinks_the_log_and_keeps_the_state() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(dir.path(), StorageConfig::default()).unwrap();
    let mut config = OffsetsTopicConfig::default();
    config.set("offsets.topic.num.partitions", "1").unwrap();
    config.set("offsets.topic.segment.bytes", "4096").unwrap();
    let mut part = OffsetsPartition::load(&storage, &config, 0).unwrap();
    // The same 20 offsets committed over and over, then half deleted.
    for round in 0..200 {
        let commits: Vec<OffsetCommit> = (0..20)
            .map(|p| OffsetCommit::new("t", p, OffsetAndMetadata::new(round, round)))
            .collect();
        part.commit_offsets("g", &commits, round).unwrap();
    }
    let gone: Vec<(String, i32)> = (0..10).map(|p| ("t".to_string(), p)).collect();
    part.delete_offsets("g", &gone, 300).unwrap();
    part.store_group("g", &metadata(7, 2), 301).unwrap();
    // Roll so everything written is in sealed segments the cleaner may rewrite.
    part.log().roll().unwrap();
    let size_before = part.log().size_in_bytes();
    let before = part.state().snapshot();
    // Far past delete.retention.ms: tombstones go too.
    let stats = part.compact(10 * 24 * 3600 * 1000).unwrap();
    assert!(stats.records_written < stats.records_read);
    let size_after = part.log().size_in_bytes();
    assert!(
        size_after * 10 < size_before,
        "{size_before} -> {size_after}"
    );
    assert_eq!(part.state().snapshot(), before);
    drop(part);
    let part = OffsetsPartition::load(&storage, &config, 0).unwrap();
    assert_eq!(part.state().snapshot(), before);
    assert_eq!(part.state().offset_count(), 10);
}
