//! Bad input to the offset store gets Kafka's error code or a typed error, never a panic,
//! and leaves the log and the in-memory state as they were: oversized metadata
//! (`offset.metadata.max.bytes`, counted in UTF-16 units as Kafka does), unknown groups,
//! groups of another offsets partition, and records in the offsets log that do not decode.

use proptest::prelude::*;
use streamlog::group::{
    partition_for_group, OffsetAndMetadata, OffsetCommit, OffsetsPartition, OffsetsState,
    OffsetsTopicConfig, OFFSETS_TOPIC,
};
use streamlog::storage::{Storage, StorageConfig};
use streamlog::{BatchBuilder, BatchOptions, Compression, Error, KafkaCode, OwnedRecord};

fn one_partition() -> OffsetsTopicConfig {
    let mut c = OffsetsTopicConfig::default();
    c.set("offsets.topic.num.partitions", "1").unwrap();
    c
}

fn with_metadata(p: i32, metadata: String) -> OffsetCommit {
    let mut o = OffsetAndMetadata::new(10, 0);
    o.metadata = metadata;
    OffsetCommit::new("t", p, o)
}

#[test]
fn oversized_metadata_is_refused_per_partition() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(dir.path(), StorageConfig::default()).unwrap();
    let mut part = OffsetsPartition::load(&storage, &one_partition(), 0).unwrap();
    let commits = [
        with_metadata(0, "x".repeat(4096)),
        with_metadata(1, "x".repeat(4097)),
        // 2048 supplementary characters: 8192 bytes, but 4096 UTF-16 units, as Java counts.
        with_metadata(2, "😀".repeat(2048)),
        with_metadata(3, "😀".repeat(2049)),
    ];
    let codes = part.commit_offsets("g", &commits, 1).unwrap();
    assert_eq!(
        codes,
        [
            KafkaCode::NONE,
            KafkaCode::OFFSET_METADATA_TOO_LARGE,
            KafkaCode::NONE,
            KafkaCode::OFFSET_METADATA_TOO_LARGE
        ]
    );
    let state = part.state();
    assert!(state.committed_offset("g", "t", 0).is_some());
    assert!(state.committed_offset("g", "t", 1).is_none());
    assert!(state.committed_offset("g", "t", 2).is_some());
    assert!(state.committed_offset("g", "t", 3).is_none());

    // When every partition is refused nothing is written at all.
    let leo = part.log().log_end_offset();
    let before = part.state().snapshot();
    let codes = part
        .commit_transactional_offsets("g", 1, 0, &[with_metadata(5, "y".repeat(5000))], 2)
        .unwrap();
    assert_eq!(codes, [KafkaCode::OFFSET_METADATA_TOO_LARGE]);
    assert_eq!(part.log().log_end_offset(), leo);
    assert_eq!(part.state().snapshot(), before);

    // The limit is configurable.
    let mut config = one_partition();
    config.set("offset.metadata.max.bytes", "3").unwrap();
    let mut part = OffsetsPartition::load(&storage, &config, 0).unwrap();
    let codes = part
        .commit_offsets(
            "g",
            &[
                with_metadata(0, "abc".into()),
                with_metadata(1, "abcd".into()),
            ],
            3,
        )
        .unwrap();
    assert_eq!(
        codes,
        [KafkaCode::NONE, KafkaCode::OFFSET_METADATA_TOO_LARGE]
    );
}

#[test]
fn unknown_groups_and_foreign_groups_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(dir.path(), StorageConfig::default()).unwrap();
    let config = OffsetsTopicConfig::default();
    let home = partition_for_group("known", 50).unwrap();
    let mut part = OffsetsPartition::load(&storage, &config, home).unwrap();
    part.commit_offsets("known", &[with_metadata(0, String::new())], 1)
        .unwrap();
    let leo = part.log().log_end_offset();
    let before = part.state().snapshot();

    let unknown = (0..)
        .map(|i| format!("never-seen-{i}"))
        .find(|g| partition_for_group(g, 50).unwrap() == home)
        .unwrap();
    let e = part.delete_group(&unknown, 2).unwrap_err();
    assert!(matches!(e, Error::GroupIdNotFound { .. }), "{e:?}");
    assert_eq!(e.kafka_code(), KafkaCode::GROUP_ID_NOT_FOUND);
    let e = part
        .delete_offsets(&unknown, &[("t".into(), 0)], 2)
        .unwrap_err();
    assert_eq!(e.kafka_code(), KafkaCode::GROUP_ID_NOT_FOUND);

    let foreign = (0..)
        .map(|i| format!("elsewhere-{i}"))
        .find(|g| partition_for_group(g, 50).unwrap() != home)
        .unwrap();
    let e = part
        .commit_offsets(&foreign, &[with_metadata(0, String::new())], 2)
        .unwrap_err();
    assert!(matches!(e, Error::NotCoordinator { .. }), "{e:?}");
    assert_eq!(e.kafka_code(), KafkaCode::NOT_COORDINATOR);
    assert_eq!(
        part.delete_group(&foreign, 2).unwrap_err().kafka_code(),
        KafkaCode::NOT_COORDINATOR
    );

    assert_eq!(part.log().log_end_offset(), leo);
    assert_eq!(part.state().snapshot(), before);
    // A partition past the topic's count is the storage's typed error.
    let e = OffsetsPartition::load(&storage, &config, 50).unwrap_err();
    assert_eq!(e.kafka_code(), KafkaCode::UNKNOWN_TOPIC_OR_PARTITION);
}

#[test]
fn undecodable_records_in_the_log_are_a_typed_error_and_unknown_types_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(dir.path(), StorageConfig::default()).unwrap();
    let mut part = OffsetsPartition::load(&storage, &one_partition(), 0).unwrap();
    part.commit_offsets("g", &[with_metadata(0, String::new())], 1)
        .unwrap();
    // A record of Kafka's newer protocol (key version 3: ConsumerGroupMetadataKey).
    let log = storage.partition(OFFSETS_TOPIC, 0).unwrap();
    log.append_records(
        &[OwnedRecord::new(
            2,
            Some(&[0, 3, 0, 1, b'g']),
            Some(&[0, 0, 0]),
        )],
        Compression::None,
    )
    .unwrap();
    drop(part);
    let part = OffsetsPartition::load(&storage, &one_partition(), 0).unwrap();
    assert_eq!(part.state().skipped_records(), 1);
    assert!(part.state().committed_offset("g", "t", 0).is_some());
    drop(part);
    // An offset commit key cut short.
    log.append_records(
        &[OwnedRecord::new(
            3,
            Some(&[0, 1, 0, 9, b'g']),
            Some(&[0, 3]),
        )],
        Compression::None,
    )
    .unwrap();
    let e = OffsetsPartition::load(&storage, &one_partition(), 0).unwrap_err();
    assert!(matches!(e, Error::MalformedSchema { .. }), "{e:?}");
}

fn batch_of(pairs: &[(Vec<u8>, Option<Vec<u8>>)], producer: Option<i64>) -> Vec<u8> {
    let mut options = BatchOptions::default();
    if let Some(pid) = producer {
        options.producer_id = pid;
        options.producer_epoch = 0;
        options.base_sequence = 0;
        options.transactional = true;
    }
    let mut b = BatchBuilder::new(options);
    for (k, v) in pairs {
        b.append(0, Some(k), v.as_deref(), &[]).unwrap();
    }
    b.build().unwrap()
}

fn versioned_bytes() -> impl Strategy<Value = Vec<u8>> {
    (0u8..6, proptest::collection::vec(any::<u8>(), 0..40)).prop_map(|(v, mut rest)| {
        rest.insert(0, v);
        rest.insert(0, 0);
        rest
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Any key and value bytes: replay never panics, and a record that fails leaves the
    /// state exactly as it was.
    #[test]
    fn replaying_arbitrary_records_never_panics(
        records in proptest::collection::vec(
            (versioned_bytes(), proptest::option::of(versioned_bytes()), proptest::option::of(0i64..3)),
            1..20,
        ),
    ) {
        let mut state = OffsetsState::new();
        for (i, (key, value, producer)) in records.iter().enumerate() {
            let before = state.snapshot();
            if state.replay_record(i as i64, *producer, key, value.as_deref()).is_err() {
                prop_assert_eq!(state.snapshot(), before);
            }
        }
        let pairs: Vec<_> = records.iter().map(|(k, v, _)| (k.clone(), v.clone())).collect();
        let bytes = batch_of(&pairs, Some(1));
        let _ = state.replay_batch(&streamlog::Batch::new(&bytes).unwrap());
        state.replay_marker(1, true);
        state.replay_marker(2, false);
    }
}
