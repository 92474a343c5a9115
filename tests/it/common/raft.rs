//! What the Raft store tests share: a small key-value type config and state machine, entry
//! builders, seeds.

use std::collections::BTreeMap;
use std::io::Cursor;

use openraft::{BasicNode, CommittedLeaderId, Entry, EntryPayload, LogId};
use serde::{Deserialize, Serialize};
use streamlog::raft::StateMachineData;

/// A command of the key-value state machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvRequest {
    /// Sets `key` to `value`.
    Set { key: String, value: String },
}

/// The previous value of the key set, if any.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvResponse(pub Option<String>);

openraft::declare_raft_types!(
    /// The type config of the tests: a key-value state machine on u64 node ids.
    pub KvConfig:
        D = KvRequest,
        R = KvResponse,
        NodeId = u64,
        Node = BasicNode,
        Entry = Entry<KvConfig>,
        SnapshotData = Cursor<Vec<u8>>,
);

/// The key-value state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kv(pub BTreeMap<String, String>);

impl StateMachineData<KvConfig> for Kv {
    fn apply(&mut self, _log_id: &LogId<u64>, command: &KvRequest) -> KvResponse {
        match command {
            KvRequest::Set { key, value } => KvResponse(self.0.insert(key.clone(), value.clone())),
        }
    }
}

pub type Store = streamlog::raft::LogStore<KvConfig>;
pub type Machine = streamlog::raft::StateMachineStore<KvConfig, Kv>;

pub fn log_id(term: u64, node: u64, index: u64) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(term, node), index)
}

/// A normal entry setting `k<index>` to `value`.
pub fn set_entry(term: u64, node: u64, index: u64, value: &str) -> Entry<KvConfig> {
    Entry {
        log_id: log_id(term, node, index),
        payload: EntryPayload::Normal(KvRequest::Set {
            key: format!("k{index}"),
            value: value.to_string(),
        }),
    }
}

/// A log config for the simulated filesystem: small preallocated indexes (SimFs holds
/// files in memory and copies maps back on every sync).
pub fn small_config() -> streamlog::LogConfig {
    streamlog::LogConfig::builder()
        .segment_index_bytes(64 << 10)
        .build()
        .unwrap()
}

/// A current-thread runtime for driving the store's futures.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

/// The seeds to run: `STREAMLOG_SIM_SEED=N` replays one, else `0..count`.
pub fn seeds(count: u64) -> Vec<u64> {
    match std::env::var("STREAMLOG_SIM_SEED") {
        Ok(s) => vec![s.parse().expect("STREAMLOG_SIM_SEED must be a number")],
        Err(_) => (0..count).collect(),
    }
}
