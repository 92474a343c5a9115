//! A compaction run by `Storage::maintain` opens its cleaned segments within the storage's
//! budget of files and maps: room for them is made first, by closing least recently used
//! logs no caller holds, and given back after the pass.

use crate::storage_util::{config, data_dir, open, values};
use streamlog::storage::TopicConfig;
use streamlog::{Compression, OwnedRecord};

/// Three files a segment: the keyed log's four segments and four one-segment logs fill it.
const BUDGET: usize = 24;

#[test]
fn compaction_makes_room_in_the_budget_before_opening_its_files() {
    let dir = data_dir();
    let storage = open(dir.path(), config(BUDGET));
    let mut compact = TopicConfig::new();
    compact.set("cleanup.policy", "compact").unwrap();
    storage.create_topic("keyed", 1, compact).unwrap();
    storage
        .create_topic("other", 4, TopicConfig::new())
        .unwrap();
    let log = storage.partition("keyed", 0).unwrap();
    for round in 0..3 {
        for k in 0..4 {
            let key = format!("k{k}");
            let value = format!("k{k}={round}");
            log.append_records(
                &[OwnedRecord::new(
                    1_000,
                    Some(key.as_bytes()),
                    Some(value.as_bytes()),
                )],
                Compression::None,
            )
            .unwrap();
        }
        log.roll().unwrap();
    }
    assert_eq!(log.segment_count(), 4);
    drop(log);
    for p in 0..4 {
        drop(storage.partition("other", p).unwrap());
    }
    assert_eq!(storage.open_partitions(), 5);
    assert_eq!(storage.open_files_charged(), BUDGET, "the budget is full");

    let report = storage.maintain(10_000).unwrap();
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(report.logs_compacted, 1);
    // Three cleaned segments at most (one per sealed segment): three idle logs closed.
    assert_eq!(
        storage.open_partitions(),
        2,
        "compaction opened its files beyond the budget"
    );
    assert!(storage.open_files_charged() <= BUDGET);
    assert_eq!(
        values(&storage.partition("keyed", 0).unwrap()),
        ["k0=2", "k1=2", "k2=2", "k3=2"]
    );
    storage.close().unwrap();
}
