//! A data directory laid out as Kafka lays it out (partition directories, no streamlog
//! metadata) opens as topics with default configs, and directories left mid-deletion
//! (`<topic>-<partition>.<uuid>-delete`) are removed.

use crate::storage_util;

use storage_util::{append_tagged, data_dir, open, small_log_config, values};
use streamlog::Log;

#[test]
fn partition_directories_without_metadata_become_topics() {
    let dir = data_dir();
    for p in [0u32, 3] {
        let log = Log::open(
            dir.path().join(format!("legacy.events-{p}")),
            small_log_config(),
        )
        .unwrap();
        append_tagged(&log, "legacy.events", p, 0, 1_000);
        log.close().unwrap();
    }
    // Leftovers of an interrupted deletion, and entries that are not partitions.
    let doomed = dir
        .path()
        .join("gone-0.0123456789abcdef0123456789abcdef-delete");
    std::fs::create_dir_all(&doomed).unwrap();
    std::fs::write(doomed.join("00000000000000000000.log"), b"old").unwrap();
    std::fs::write(dir.path().join("meta.properties"), b"version=1\n").unwrap();
    std::fs::create_dir_all(dir.path().join("not-a-partition-x")).unwrap();

    let storage = open(dir.path(), storage_util::config(64));
    assert_eq!(storage.topics(), ["legacy.events"]);
    // Kafka numbers partitions from 0: the count covers the highest one found.
    assert_eq!(storage.partition_count("legacy.events").unwrap(), 4);
    assert_eq!(
        values(&storage.partition("legacy.events", 3).unwrap()),
        ["legacy.events/3/0"]
    );
    assert!(values(&storage.partition("legacy.events", 1).unwrap()).is_empty());
    assert!(!doomed.exists());
    assert!(dir.path().join("meta.properties").exists());
    assert!(dir.path().join("not-a-partition-x").exists());
    storage.close().unwrap();

    // Adopted once, the topic is now recorded like any other.
    let storage = open(dir.path(), storage_util::config(64));
    assert_eq!(storage.partition_count("legacy.events").unwrap(), 4);
    storage.delete_topic("legacy.events").unwrap();
    assert!(storage.topics().is_empty());
    let left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!left.iter().any(|n| n.starts_with("legacy")), "{left:?}");
}
