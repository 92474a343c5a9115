//! [`StateMachineStore`]: openraft's `RaftStateMachine` for an application state kept in
//! memory, with snapshots as files installed atomically.
//!
//! The state lives in memory; what makes it durable is the last snapshot (a file) plus the
//! Raft log: at start-up openraft re-applies the committed entries after the snapshot (the
//! log store keeps the committed log id). A snapshot file is replaced whole through the I/O
//! seam (`snapshot.tmp`, fsync, rename, fsync of the directory), so a crash leaves the old
//! snapshot or the new one.
//!
//! ```text
//! <dir>/snapshot
//!   0   8  magic "SLRAFTSN"
//!   8   4  length of the metadata, big-endian
//!  12   n  metadata: openraft's SnapshotMeta, JSON
//!  12+n m  the snapshot data: the application state, JSON (what openraft sends to followers)
//!   end 4  CRC-32C of everything before it, big-endian
//! ```

use std::fmt::Debug;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    Entry, EntryPayload, ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftSnapshotBuilder,
    RaftTypeConfig, SnapshotMeta, StorageError, StoredMembership,
};
use parking_lot::{Mutex, RwLock};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::RaftStoreError;
use crate::io::{read_file, write_file_atomic, FileSystem, RealFs};
use crate::Error;

/// The snapshot file in the state machine's directory.
pub const SNAPSHOT_FILE: &str = "snapshot";

const MAGIC: &[u8; 8] = b"SLRAFTSN";
const META_LEN_AT: usize = 8;
const META_AT: usize = 12;
const CRC_LEN: usize = 4;

/// The application's state: what one command does to it. It is serialized with serde (JSON)
/// into snapshots, so a follower far behind receives it whole.
pub trait StateMachineData<C: RaftTypeConfig>:
    Default + Clone + Serialize + DeserializeOwned + Send + Sync + 'static
{
    /// Applies the command of the entry at `log_id` and returns the response for the
    /// client that proposed it. Must be deterministic: every node applies the same
    /// commands in the same order and must reach the same state.
    fn apply(&mut self, log_id: &LogId<C::NodeId>, command: &C::D) -> C::R;
}

type Meta<C> = SnapshotMeta<<C as RaftTypeConfig>::NodeId, <C as RaftTypeConfig>::Node>;

/// A snapshot as stored: its metadata and the serialized state.
struct StoredSnapshot<C: RaftTypeConfig> {
    meta: Meta<C>,
    data: Vec<u8>,
}

/// The snapshot file and its in-memory copy, shared with snapshot builders.
struct Snapshots<C: RaftTypeConfig> {
    fs: Arc<dyn FileSystem>,
    path: PathBuf,
    current: Mutex<Option<StoredSnapshot<C>>>,
    /// Numbers snapshots built by this process, so that ids never repeat.
    built: AtomicU64,
}

impl<C: RaftTypeConfig> Snapshots<C> {
    /// Makes `meta` and `data` the current snapshot, durably, unless a newer one is already
    /// there (a build racing with an install).
    fn store(&self, meta: &Meta<C>, data: &[u8]) -> Result<(), RaftStoreError> {
        let mut current = self.current.lock();
        if current
            .as_ref()
            .is_some_and(|c| c.meta.last_log_id > meta.last_log_id)
        {
            return Ok(());
        }
        let bytes = encode_file::<C>(meta, data)?;
        write_file_atomic(&*self.fs, &self.path, &bytes)?;
        *current = Some(StoredSnapshot {
            meta: meta.clone(),
            data: data.to_vec(),
        });
        Ok(())
    }

    fn current(&self) -> Option<Snapshot<C>>
    where
        C: RaftTypeConfig<SnapshotData = Cursor<Vec<u8>>>,
    {
        self.current.lock().as_ref().map(|s| Snapshot {
            meta: s.meta.clone(),
            snapshot: Box::new(Cursor::new(s.data.clone())),
        })
    }
}

fn encode_file<C: RaftTypeConfig>(meta: &Meta<C>, data: &[u8]) -> Result<Vec<u8>, RaftStoreError> {
    let meta = serde_json::to_vec(meta).map_err(|source| RaftStoreError::Encode {
        what: "snapshot metadata",
        source,
    })?;
    let meta_len = u32::try_from(meta.len()).map_err(|_| Error::FieldTooLong {
        what: "snapshot metadata",
        len: meta.len(),
    })?;
    let mut out = Vec::with_capacity(META_AT + meta.len() + data.len() + CRC_LEN);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&meta_len.to_be_bytes());
    out.extend_from_slice(&meta);
    out.extend_from_slice(data);
    let crc = crate::record::crc::crc32c(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    Ok(out)
}

fn decode_file<C: RaftTypeConfig>(
    path: &Path,
    bytes: &[u8],
) -> Result<StoredSnapshot<C>, RaftStoreError> {
    let corrupt = |reason: String| RaftStoreError::CorruptFile {
        path: path.to_path_buf(),
        reason,
    };
    let body_len = bytes
        .len()
        .checked_sub(CRC_LEN)
        .filter(|&n| n >= META_AT)
        .ok_or_else(|| corrupt(format!("{} bytes", bytes.len())))?;
    let (body, crc) = bytes.split_at(body_len);
    let stored = u32::from_be_bytes(crc.try_into().map_err(|_| corrupt("crc".into()))?);
    let computed = crate::record::crc::crc32c(body);
    if stored != computed {
        return Err(corrupt(format!(
            "CRC-32C mismatch, stored {stored:#010x}, computed {computed:#010x}"
        )));
    }
    if body.get(..META_AT - 4) != Some(MAGIC.as_slice()) {
        return Err(corrupt("not a snapshot file".into()));
    }
    let meta_len = body
        .get(META_LEN_AT..META_AT)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_be_bytes)
        .ok_or_else(|| corrupt("no metadata length".into()))?;
    let meta_end = META_AT.saturating_add(meta_len as usize);
    let meta = body
        .get(META_AT..meta_end)
        .ok_or_else(|| corrupt(format!("metadata length {meta_len} past the end")))?;
    let meta: Meta<C> =
        serde_json::from_slice(meta).map_err(|e| corrupt(format!("metadata: {e}")))?;
    let data = body.get(meta_end..).unwrap_or_default().to_vec();
    Ok(StoredSnapshot { meta, data })
}

fn decode_data<C: RaftTypeConfig, M: DeserializeOwned>(
    meta: &Meta<C>,
    data: &[u8],
) -> Result<M, RaftStoreError> {
    serde_json::from_slice(data).map_err(|e| RaftStoreError::CorruptFile {
        path: PathBuf::from(SNAPSHOT_FILE),
        reason: format!("snapshot {}: {e}", meta.snapshot_id),
    })
}

/// The applied state: what the state machine and its readers share.
struct Applied<C: RaftTypeConfig, M> {
    applied: Option<LogId<C::NodeId>>,
    membership: StoredMembership<C::NodeId, C::Node>,
    data: M,
}

/// A state machine of application state `M`, kept in memory, snapshotted to a file in its
/// directory: openraft's `RaftStateMachine` (storage-v2).
///
/// openraft owns the state machine once the node runs; [`StateMachineStore::reader`] hands
/// the application a [`StateReader`] for its queries (local reads, or linearizable ones
/// after `Raft::ensure_linearizable`).
pub struct StateMachineStore<C, M>
where
    C: RaftTypeConfig,
{
    state: Arc<RwLock<Applied<C, M>>>,
    snapshots: Arc<Snapshots<C>>,
}

impl<C: RaftTypeConfig, M> Debug for StateMachineStore<C, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateMachineStore")
            .field("dir", &self.snapshots.path.parent())
            .field("applied", &self.state.read().applied)
            .finish_non_exhaustive()
    }
}

/// Reads the application state of a [`StateMachineStore`] while openraft runs it.
pub struct StateReader<C: RaftTypeConfig, M> {
    state: Arc<RwLock<Applied<C, M>>>,
}

impl<C: RaftTypeConfig, M> Clone for StateReader<C, M> {
    fn clone(&self) -> Self {
        StateReader {
            state: Arc::clone(&self.state),
        }
    }
}

impl<C: RaftTypeConfig, M> Debug for StateReader<C, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateReader")
            .field("applied", &self.state.read().applied)
            .finish_non_exhaustive()
    }
}

impl<C: RaftTypeConfig, M> StateReader<C, M> {
    /// Calls `f` with the state and the log id of the last entry applied to it, holding
    /// off `apply` meanwhile (keep `f` short).
    pub fn read<T>(&self, f: impl FnOnce(&M, Option<&LogId<C::NodeId>>) -> T) -> T {
        let state = self.state.read();
        f(&state.data, state.applied.as_ref())
    }
}

impl<C, M> StateMachineStore<C, M>
where
    C: RaftTypeConfig<Entry = Entry<C>, SnapshotData = Cursor<Vec<u8>>>,
    M: StateMachineData<C>,
{
    /// Opens the state machine in `dir` on the real filesystem: the state of the snapshot
    /// there, or the empty state.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, RaftStoreError> {
        StateMachineStore::open_with(RealFs::shared(), dir.as_ref())
    }

    /// Opens the state machine in `dir` through `fs`.
    pub fn open_with(fs: Arc<dyn FileSystem>, dir: &Path) -> Result<Self, RaftStoreError> {
        fs.create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let path = dir.join(SNAPSHOT_FILE);
        let current = if fs.exists(&path) {
            Some(decode_file::<C>(&path, &read_file(&*fs, &path)?)?)
        } else {
            None
        };
        let (applied, membership, data) = match &current {
            Some(s) => {
                let data =
                    serde_json::from_slice(&s.data).map_err(|e| RaftStoreError::CorruptFile {
                        path: path.clone(),
                        reason: format!("state: {e}"),
                    })?;
                (
                    s.meta.last_log_id.clone(),
                    s.meta.last_membership.clone(),
                    data,
                )
            }
            None => (None, StoredMembership::default(), M::default()),
        };
        Ok(StateMachineStore {
            state: Arc::new(RwLock::new(Applied {
                applied,
                membership,
                data,
            })),
            snapshots: Arc::new(Snapshots {
                fs,
                path,
                current: Mutex::new(current),
                built: AtomicU64::new(0),
            }),
        })
    }

    /// A copy of the application state, as of the last applied entry.
    pub fn data(&self) -> M {
        self.state.read().data.clone()
    }

    /// The log id of the last entry applied.
    pub fn applied(&self) -> Option<LogId<C::NodeId>> {
        self.state.read().applied.clone()
    }

    /// A handle reading the state while openraft owns the state machine.
    pub fn reader(&self) -> StateReader<C, M> {
        StateReader {
            state: Arc::clone(&self.state),
        }
    }
}

/// Builds a snapshot of the state as it was when the builder was made.
pub struct SnapshotBuilder<C: RaftTypeConfig, M> {
    applied: Option<LogId<C::NodeId>>,
    membership: StoredMembership<C::NodeId, C::Node>,
    data: M,
    snapshots: Arc<Snapshots<C>>,
}

impl<C: RaftTypeConfig, M> Debug for SnapshotBuilder<C, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotBuilder")
            .field("applied", &self.applied)
            .finish_non_exhaustive()
    }
}

impl<C, M> RaftSnapshotBuilder<C> for SnapshotBuilder<C, M>
where
    C: RaftTypeConfig<Entry = Entry<C>, SnapshotData = Cursor<Vec<u8>>>,
    M: StateMachineData<C>,
{
    async fn build_snapshot(&mut self) -> Result<Snapshot<C>, StorageError<C::NodeId>> {
        let write_err =
            |e: RaftStoreError| e.storage(ErrorSubject::Snapshot(None), ErrorVerb::Write);
        let data = serde_json::to_vec(&self.data)
            .map_err(|source| RaftStoreError::Encode {
                what: "state",
                source,
            })
            .map_err(write_err)?;
        let n = self.snapshots.built.fetch_add(1, Ordering::Relaxed) + 1;
        let snapshot_id = match &self.applied {
            Some(last) => format!("{}-{}-{n}", last.leader_id, last.index),
            None => format!("--{n}"),
        };
        let meta = SnapshotMeta {
            last_log_id: self.applied.clone(),
            last_membership: self.membership.clone(),
            snapshot_id,
        };
        self.snapshots.store(&meta, &data).map_err(write_err)?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl<C, M> RaftStateMachine<C> for StateMachineStore<C, M>
where
    C: RaftTypeConfig<Entry = Entry<C>, SnapshotData = Cursor<Vec<u8>>>,
    C::R: Default,
    M: StateMachineData<C>,
{
    type SnapshotBuilder = SnapshotBuilder<C, M>;

    async fn applied_state(
        &mut self,
    ) -> Result<
        (
            Option<LogId<C::NodeId>>,
            StoredMembership<C::NodeId, C::Node>,
        ),
        StorageError<C::NodeId>,
    > {
        let state = self.state.read();
        Ok((state.applied.clone(), state.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<C::R>, StorageError<C::NodeId>>
    where
        I: IntoIterator<Item = Entry<C>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut responses = Vec::new();
        let mut state = self.state.write();
        for entry in entries {
            let response = match &entry.payload {
                EntryPayload::Blank => C::R::default(),
                EntryPayload::Normal(command) => state.data.apply(&entry.log_id, command),
                EntryPayload::Membership(membership) => {
                    state.membership =
                        StoredMembership::new(Some(entry.log_id.clone()), membership.clone());
                    C::R::default()
                }
            };
            state.applied = Some(entry.log_id);
            responses.push(response);
        }
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        let state = self.state.read();
        SnapshotBuilder {
            applied: state.applied.clone(),
            membership: state.membership.clone(),
            data: state.data.clone(),
            snapshots: Arc::clone(&self.snapshots),
        }
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<C::NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<C::NodeId, C::Node>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<C::NodeId>> {
        let bytes = snapshot.into_inner();
        // Decoded before anything changes: a bad snapshot leaves the state as it was.
        let data: M = decode_data::<C, M>(meta, &bytes).map_err(|e| {
            e.storage(
                ErrorSubject::Snapshot(Some(meta.signature())),
                ErrorVerb::Read,
            )
        })?;
        self.snapshots.store(meta, &bytes).map_err(|e| {
            e.storage(
                ErrorSubject::Snapshot(Some(meta.signature())),
                ErrorVerb::Write,
            )
        })?;
        let mut state = self.state.write();
        state.data = data;
        state.applied = meta.last_log_id.clone();
        state.membership = meta.last_membership.clone();
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<C>>, StorageError<C::NodeId>> {
        Ok(self.snapshots.current())
    }
}
