//! The agent end to end on a `Storage`: records and positions commit in one transaction,
//! a read_committed reader sees every line once, and a restarted agent resumes from the
//! committed positions.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use streamlog::ingest::{
    load_committed, Agent, AgentSettings, FileSourceConfig, KeyMode, POSITIONS_TOPIC,
};
use streamlog::storage::{Storage, StorageConfig, TopicConfig};

fn append(path: &Path, from: usize, to: usize) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for i in from..to {
        writeln!(f, "line {i:06}").unwrap();
    }
}

fn committed_lines(storage: &Storage, topic: &str) -> Vec<String> {
    let mut out = Vec::new();
    for p in 0..storage.partition_count(topic).unwrap() {
        let log = storage.partition(topic, p).unwrap();
        for r in log.records_committed(0) {
            let r = r.unwrap();
            out.push(String::from_utf8_lossy(r.value().unwrap()).into_owned());
        }
    }
    out
}

fn run_agent(storage: &Arc<Storage>, logs: &Path, expect: u64) {
    let mut agent = Agent::new(Arc::clone(storage), AgentSettings::default()).unwrap();
    let mut files = FileSourceConfig::new("app", "app-logs");
    files.paths = vec![format!("{}/*.log", logs.display())];
    files.key = KeyMode::Path;
    files.partitions = 3;
    agent.add_file_source(files).unwrap();
    let mut other = FileSourceConfig::new("other", "other-logs");
    other.paths = vec![format!("{}/*.txt", logs.display())];
    agent.add_file_source(other).unwrap();
    let running = agent.start().unwrap();
    assert!(
        running.wait_for_records("app", expect, Duration::from_secs(120)),
        "{}",
        running.status_line()
    );
    running.shutdown().unwrap();
}

#[test]
fn agent_restart_resumes_from_committed_positions() {
    let logs = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let app = logs.path().join("app.log");
    append(&app, 0, 3000);
    std::fs::write(logs.path().join("b.txt"), "other 1\n").unwrap();
    let storage = Arc::new(Storage::open(data.path(), StorageConfig::default()).unwrap());

    run_agent(&storage, logs.path(), 3000);
    let expected: Vec<String> = (0..3000).map(|i| format!("line {i:06}")).collect();
    assert_eq!(committed_lines(&storage, "app-logs"), expected);
    // All of one path's lines went to one partition (the key is the path).
    let nonempty = (0..3)
        .filter(|p| storage.partition("app-logs", *p).unwrap().log_end_offset() > 0)
        .count();
    assert_eq!(nonempty, 1);

    // The committed position is the end of the file.
    let positions = load_committed(&storage).unwrap();
    let app_pos = &positions["app"];
    assert_eq!(app_pos.len(), 1);
    let stored: serde_json::Value =
        serde_json::from_slice(app_pos.values().next().unwrap()).unwrap();
    assert_eq!(stored["offset"], std::fs::metadata(&app).unwrap().len());
    assert_eq!(stored["state"], "active");
    assert!(positions.contains_key("other"));

    // More lines while the agent is down; the restarted agent sends only those.
    append(&app, 3000, 3500);
    run_agent(&storage, logs.path(), 500);
    let expected: Vec<String> = (0..3500).map(|i| format!("line {i:06}")).collect();
    assert_eq!(committed_lines(&storage, "app-logs"), expected);
    assert_eq!(committed_lines(&storage, "other-logs"), ["other 1"]);
    // Positions were written transactionally: nothing in the positions topic is undecided.
    let pos = storage.partition(POSITIONS_TOPIC, 0).unwrap();
    assert_eq!(pos.last_stable_offset(), pos.log_end_offset());
    storage.close().unwrap();
}

#[test]
fn positions_topic_compacts_to_each_files_latest_position() {
    let logs = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let app = logs.path().join("app.log");
    let storage = Arc::new(Storage::open(data.path(), StorageConfig::default()).unwrap());
    // The agent keeps an existing positions topic: tiny segments, so every commit's
    // positions land in a segment of their own that compaction can clean.
    let mut config = TopicConfig::new();
    config.set("cleanup.policy", "compact").unwrap();
    config.set("segment.bytes", "600").unwrap();
    storage.create_topic(POSITIONS_TOPIC, 1, config).unwrap();
    for round in 0..8 {
        append(&app, round * 10, round * 10 + 10);
        run_agent(&storage, logs.path(), 10);
    }
    let positions = load_committed(&storage).unwrap();
    let records = |storage: &Storage| {
        let log = storage.partition(POSITIONS_TOPIC, 0).unwrap();
        log.records_committed(log.log_start_offset()).count()
    };
    let before = records(&storage);
    let report = storage.maintain(i64::MAX / 2).unwrap();
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    let after = records(&storage);
    assert!(
        after < before,
        "compaction kept {after} of {before} positions"
    );
    assert_eq!(load_committed(&storage).unwrap(), positions);
    // A restart after compaction resumes where it stood: nothing again, then only new lines.
    append(&app, 80, 90);
    run_agent(&storage, logs.path(), 10);
    let expected: Vec<String> = (0..90).map(|i| format!("line {i:06}")).collect();
    assert_eq!(committed_lines(&storage, "app-logs"), expected);
    storage.close().unwrap();
}
