//! Threads appending to many partitions through one storage, with a budget far smaller than
//! the partition count and maintenance passes running beside them: logs are closed and
//! reopened under the writers' feet, and no append is lost or duplicated.

use crate::storage_util;

use std::sync::Arc;

use storage_util::{append_tagged, config, data_dir, values};
use streamlog::storage::{Storage, TopicConfig};

const THREADS: u32 = 4;
const PARTITIONS: u32 = 40;
const APPENDS_PER_THREAD: u32 = 300;

#[test]
fn concurrent_appends_survive_eviction_and_maintenance() {
    let dir = data_dir();
    // Eight one-segment logs at a time; each writer holds at most one, maintenance one more.
    let storage = Arc::new(Storage::open(dir.path(), config(24)).unwrap());
    storage
        .create_topic("t", PARTITIONS, TopicConfig::new())
        .unwrap();
    let writers: Vec<_> = (0..THREADS)
        .map(|thread| {
            let storage = Arc::clone(&storage);
            std::thread::spawn(move || {
                for i in 0..APPENDS_PER_THREAD {
                    // Thread `thread` writes the partitions p with p % THREADS == thread, in
                    // turn, so each partition's values are in order.
                    let p = thread + THREADS * (i % (PARTITIONS / THREADS));
                    let log = storage.partition("t", p).unwrap();
                    append_tagged(&log, "t", p, i64::from(i), 1_000);
                }
            })
        })
        .collect();
    let maintainer = {
        let storage = Arc::clone(&storage);
        std::thread::spawn(move || {
            for _ in 0..50 {
                let report = storage.maintain(2_000).unwrap();
                assert!(report.failures.is_empty(), "{:?}", report.failures);
            }
        })
    };
    for w in writers {
        w.join().unwrap();
    }
    maintainer.join().unwrap();
    assert!(storage.open_files_charged() <= 24);
    storage.close().unwrap();

    let storage = Storage::open(dir.path(), config(24)).unwrap();
    for p in 0..PARTITIONS {
        let thread = p % THREADS;
        let slot = p / THREADS;
        let expected: Vec<String> = (0..APPENDS_PER_THREAD)
            .filter(|i| i % (PARTITIONS / THREADS) == slot)
            .map(|i| format!("t/{p}/{i}"))
            .collect();
        assert_eq!(
            values(&storage.partition("t", p).unwrap()),
            expected,
            "partition {p} (thread {thread})"
        );
    }
}
