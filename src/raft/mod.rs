//! Raft on streamlog: an [openraft] (0.9, storage-v2) log store whose entries live in a
//! streamlog partition log, and a state machine with file snapshots (feature `openraft`).
//!
//! - [`LogStore`] is openraft's `RaftLogStorage`: one Raft entry per record batch at offset
//!   = index, the term in the batch's partition leader epoch, the leader's node id in a record
//!   header (the full log id comes back from the log alone); appends are made durable by
//!   [`Log::flush`](crate::Log::flush), in openraft's task (openraft 0.9 awaits each
//!   append's flush, so there is nothing to group) or, for callers that pipeline appends, by
//!   a group-commit thread, one fsync for every append waiting; truncation is
//!   [`Log::truncate_to`](crate::Log::truncate_to), purge is
//!   [`Log::delete_records_before`](crate::Log::delete_records_before); vote, committed and
//!   last purged log ids are small files replaced atomically.
//! - [`StateMachineStore`] is openraft's `RaftStateMachine` for any state implementing
//!   [`StateMachineData`]: kept in memory, snapshotted to a file replaced atomically.
//!
//! Everything goes through the crate's [`FileSystem`](crate::io::FileSystem) seam, so the
//! same store runs on [`SimFs`](crate::io::SimFs) in crash tests. openraft's own storage
//! test suite (`openraft::testing::Suite`) passes against both, on disk and on `SimFs`.
//!
//! ```
//! use std::io::Cursor;
//! use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
//! use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};
//! use streamlog::raft::LogStore;
//! use streamlog::LogConfig;
//!
//! openraft::declare_raft_types!(
//!     pub Config: D = String, R = String, NodeId = u64, Entry = Entry<Config>,
//!         SnapshotData = Cursor<Vec<u8>>
//! );
//!
//! let dir = tempfile::tempdir()?;
//! let runtime = tokio::runtime::Builder::new_current_thread().build()?;
//! runtime.block_on(async {
//!     let mut store = LogStore::<Config>::open(dir.path(), LogConfig::default())?;
//!     let log_id = LogId::new(CommittedLeaderId::new(1, 7), 0);
//!     // Returns once the entry is durable (the callback openraft passes to `append`).
//!     store.blocking_append([Entry { log_id, payload: EntryPayload::Normal("x".into()) }]).await?;
//!     assert_eq!(store.get_log_state().await?.last_log_id, Some(log_id));
//!     // The entry is record 0 of the log, the term its batch's leader epoch.
//!     assert_eq!(store.log().log_end_offset(), 1);
//!     Ok::<_, Box<dyn std::error::Error>>(())
//! })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod codec;
mod entry_cache;
mod error;
mod group_commit;
mod log_store;
mod meta;
mod state_machine;

pub use codec::LEADER_HEADER;
pub use error::RaftStoreError;
pub use log_store::{LogStore, LogStoreReader, LOG_DIR};
pub use meta::{COMMITTED_FILE, PURGED_FILE, VOTE_FILE};
pub use state_machine::{
    SnapshotBuilder, StateMachineData, StateMachineStore, StateReader, SNAPSHOT_FILE,
};
