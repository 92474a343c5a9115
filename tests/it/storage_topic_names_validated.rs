//! Topic names are checked as Kafka's `Topic.validate` checks them, and nothing a caller
//! passes creates anything outside the data directory.

use crate::storage_util;

use storage_util::{config, data_dir, open};
use streamlog::storage::{validate_topic_name, TopicConfig, MAX_TOPIC_NAME_LEN};
use streamlog::Error;

fn rejected() -> Vec<String> {
    let mut names: Vec<String> = [
        "",
        ".",
        "..",
        "../x",
        "a/b",
        "/abs",
        "a\\b",
        "a b",
        "tab\t",
        "new\nline",
        "nul\0",
        "colon:",
        "star*",
        "question?",
        "ümlaut",
        "emoji🙂",
        "semi;colon",
        "quote'",
        "dollar$",
        "percent%",
        "plus+",
        "comma,",
        "at@",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    names.push("a".repeat(MAX_TOPIC_NAME_LEN + 1));
    names.push("x".repeat(10_000));
    names
}

fn accepted() -> Vec<String> {
    let mut names: Vec<String> = [
        "a",
        "A",
        "0",
        "...",
        ".a",
        "a.",
        "-",
        "_",
        "__consumer_offsets",
        "orders.v2_eu-west-1",
        "topic-1",
        "UPPER.lower_123-xyz",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    names.push("a".repeat(MAX_TOPIC_NAME_LEN));
    names
}

#[test]
fn rejected_names_fail_and_create_nothing() {
    let dir = data_dir();
    let storage = open(dir.path(), config(64));
    let before: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    for name in rejected() {
        assert!(
            matches!(
                validate_topic_name(&name),
                Err(Error::InvalidTopicName { .. })
            ),
            "{name:?} should be rejected"
        );
        let err = storage
            .create_topic(&name, 1, TopicConfig::new())
            .unwrap_err();
        assert!(
            matches!(err, Error::InvalidTopicName { .. }),
            "{name:?}: {err}"
        );
        assert!(matches!(
            storage.partition(&name, 0),
            Err(Error::UnknownTopic { .. })
        ));
    }
    let after: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(before, after);
    assert!(storage.topics().is_empty());
    // Nothing appeared beside the data directory either.
    let parent = dir.path().parent().unwrap();
    assert!(!parent.join("x-0").exists() && !parent.join("abs-0").exists());
}

#[test]
fn accepted_names_make_partition_directories() {
    let dir = data_dir();
    let storage = open(dir.path(), config(64));
    for name in accepted() {
        validate_topic_name(&name).unwrap();
        storage.create_topic(&name, 2, TopicConfig::new()).unwrap();
        assert!(dir.path().join(format!("{name}-1")).is_dir(), "{name}");
        let log = storage.partition(&name, 1).unwrap();
        assert_eq!(log.dir(), dir.path().join(format!("{name}-1")));
    }
    let mut expected = accepted();
    expected.sort();
    assert_eq!(storage.topics(), expected);
    storage.close().unwrap();
    // Reopened, the same topics come back.
    let storage = open(dir.path(), config(64));
    assert_eq!(storage.topics(), expected);
}

#[test]
fn colliding_and_duplicate_names_are_refused() {
    let dir = data_dir();
    let storage = open(dir.path(), config(64));
    storage.create_topic("a.b", 1, TopicConfig::new()).unwrap();
    match storage.create_topic("a_b", 1, TopicConfig::new()) {
        Err(Error::TopicExists { existing, .. }) => assert_eq!(existing.as_deref(), Some("a.b")),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        storage.create_topic("a.b", 1, TopicConfig::new()),
        Err(Error::TopicExists { existing: None, .. })
    ));
    storage.create_topic("a-b", 1, TopicConfig::new()).unwrap();
}

#[test]
fn partition_numbers_and_counts_are_checked() {
    let dir = data_dir();
    let storage = open(dir.path(), config(64));
    assert!(matches!(
        storage.create_topic("t", 0, TopicConfig::new()),
        Err(Error::InvalidPartitionCount { requested: 0, .. })
    ));
    assert!(matches!(
        storage.create_topic("t", u32::MAX, TopicConfig::new()),
        Err(Error::InvalidPartitionCount { .. })
    ));
    assert!(storage.topics().is_empty());
    storage.create_topic("t", 3, TopicConfig::new()).unwrap();
    assert!(matches!(
        storage.partition("t", 3),
        Err(Error::UnknownPartition {
            partition: 3,
            partitions: 3,
            ..
        })
    ));
    assert!(matches!(
        storage.add_partitions("t", 3),
        Err(Error::InvalidPartitionCount { current: 3, .. })
    ));
    storage.add_partitions("t", 5).unwrap();
    assert_eq!(storage.partition_count("t").unwrap(), 5);
    storage.partition("t", 4).unwrap();
    assert!(dir.path().join("t-4").is_dir());
    storage.close().unwrap();
    let storage = open(dir.path(), config(64));
    assert_eq!(storage.partition_count("t").unwrap(), 5);
}
