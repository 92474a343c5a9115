//! 10,000 partitions created, appended to, closed and reopened in one storage, with the
//! process's open files and memory maps (counted in /proc/self) held under the budget.

use crate::storage_util;

use storage_util::{append_tagged, config, data_dir, maps, open, open_fds, values};
use streamlog::storage::TopicConfig;

const TOPICS: u32 = 10;
const PER_TOPIC: u32 = 1_000;
const BUDGET: usize = 512;

fn topic(i: u32) -> String {
    format!("topic-{i}")
}

/// Files and maps the last log used may hold beyond its charge: the budget is enforced when
/// a log opens, and two segments rolled since (3 files, 2 maps each) are counted at the next.
const GROWTH_SINCE_LAST_OPEN: usize = 6;

/// Asserts the process holds no more files and maps than the budget allows beyond what it
/// held before the storage opened anything.
fn check_within_budget(base_fds: usize, base_maps: usize, at: &str) {
    let fds = open_fds().saturating_sub(base_fds);
    let mapped = maps().saturating_sub(base_maps);
    let limit = BUDGET + GROWTH_SINCE_LAST_OPEN;
    assert!(fds <= limit, "{at}: {fds} files open beyond the baseline");
    assert!(mapped <= limit, "{at}: {mapped} maps beyond the baseline");
}

#[test]
fn ten_thousand_partitions_stay_within_the_file_budget() {
    let dir = data_dir();
    let base_fds = open_fds();
    let base_maps = maps();
    let storage = open(dir.path(), config(BUDGET));
    for t in 0..TOPICS {
        storage
            .create_topic(&topic(t), PER_TOPIC, TopicConfig::new())
            .unwrap();
    }
    let mut peak_fds = 0;
    for t in 0..TOPICS {
        for p in 0..PER_TOPIC {
            let log = storage.partition(&topic(t), p).unwrap();
            assert_eq!(append_tagged(&log, &topic(t), p, 0, 1_000), 0);
            if p % 10 == 0 {
                // Segments rolled through a held log count against the budget too.
                log.roll().unwrap();
                log.roll().unwrap();
            }
            drop(log);
            if p % 100 == 0 {
                check_within_budget(base_fds, base_maps, "appending");
                peak_fds = peak_fds.max(open_fds() - base_fds);
            }
        }
        assert!(storage.open_files_charged() <= BUDGET);
    }
    // The budget is used, not just respected: hundreds of logs stay open.
    assert!(storage.open_partitions() > 100);
    assert!(peak_fds > 300, "peak {peak_fds}");
    storage.close().unwrap();
    assert!(open_fds() <= base_fds + 2, "files left open after close");
    drop(storage);

    // Every partition closed cleanly: its next open loads indexes without a scan.
    for t in 0..TOPICS {
        for p in (0..PER_TOPIC).step_by(97) {
            let marker = dir
                .path()
                .join(format!("{}-{p}/.kafka_cleanshutdown", topic(t)));
            assert!(marker.exists(), "{}", marker.display());
        }
    }

    let storage = open(dir.path(), config(BUDGET));
    assert_eq!(storage.topics().len(), TOPICS as usize);
    for t in 0..TOPICS {
        for p in 0..PER_TOPIC {
            let log = storage.partition(&topic(t), p).unwrap();
            assert_eq!(values(&log), [format!("{}/{p}/0", topic(t))]);
            append_tagged(&log, &topic(t), p, 1, 2_000);
            drop(log);
            if p % 100 == 0 {
                check_within_budget(base_fds, base_maps, "reopening");
            }
        }
    }
    // Idle partitions need no open for maintenance: each has a summary from its close.
    let report = storage.maintain(3_000).unwrap();
    assert_eq!(report.partitions, (TOPICS * PER_TOPIC) as usize);
    assert_eq!(report.opened, 0);
    assert!(report.failures.is_empty());
    storage.close().unwrap();
}
