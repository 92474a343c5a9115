//! A simulated filesystem for crash-consistency and fault-injection tests.
//!
//! [`SimFs`] keeps every file in memory and behaves across power loss the way a Linux
//! filesystem may, deterministically from a seed:
//!
//! - **Data.** A file has *durable* content (what power loss cannot take) and *current*
//!   content (what reads see: the page cache). `append`, `write_at` and `set_len` change the
//!   current content at once and queue as the file's pending writes; `sync_data` and
//!   [`MappedWords::flush`](super::MappedWords::flush) apply the queue to the durable content and empty it.
//! - **Names.** Creating a file, `rename` and `remove` change what `open`, `list` and
//!   `exists` see at once and queue as pending operations of the parent directory (of both
//!   directories for a rename between two); `sync_dir` applies that directory's queue to the
//!   durable namespace. Directories themselves are durable as soon as `create_dir_all`
//!   returns; renaming a directory (`rename`) or removing an empty one (`remove_dir`) is
//!   durable at once too, as on a filesystem mounted `dirsync`.
//! - **Power loss.** [`SimFs::crash`] keeps, for each directory and then for each surviving
//!   file, the durable state plus a random prefix of its queue, the last kept write perhaps
//!   torn. See its documentation for the exact model.
//! - **Maps.** [`File::map_words`] hands out words copied from the file; stores to them are
//!   dirty page-cache pages, copied back into the current content (and queued as pending
//!   writes) whenever the file is next read, resized, synced, mapped or crashed, and when
//!   the map is dropped.
//! - **Faults.** [`SimFs::fail_next`], [`SimFs::fail_always`] and
//!   [`SimFs::set_space_limit`] make chosen operations fail with `EIO` or `ENOSPC`.

mod file;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Condvar, Mutex, MutexGuard};

use self::file::{Node, SimDirect, SimFile};
use super::{DirectWrite, File, FileLock, FileSystem, OpenMode};
use crate::rng::Rng;

// Linux errno values, so that errors look as the real filesystem's do.
const ENOENT: i32 = 2;
const EIO: i32 = 5;
const EBADF: i32 = 9;
const ENOMEM: i32 = 12;
const EACCES: i32 = 13;
const EEXIST: i32 = 17;
const ENOTDIR: i32 = 20;
const EISDIR: i32 = 21;
const EINVAL: i32 = 22;
const EFBIG: i32 = 27;
const ENOSPC: i32 = 28;
const ENOTEMPTY: i32 = 39;

/// The largest file the simulation holds (1 GiB, Kafka's default segment size): files live
/// in memory, so a wild `write_at` or `set_len` fails with `EFBIG` instead of exhausting it.
const MAX_FILE_SIZE: u64 = 1 << 30;

fn errno(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}

/// An operation that fault injection can target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SimOp {
    /// [`File::read_at`] (and so `read_exact_at`).
    Read,
    /// [`File::append`], [`File::write_at`], and [`File::set_len`] when it grows the file.
    Write,
    /// [`File::sync_data`], and [`MappedWords::flush`](super::MappedWords::flush) of a
    /// writable map.
    Sync,
    /// [`FileSystem::sync_dir`].
    SyncDir,
    /// [`FileSystem::open`].
    Open,
    /// [`FileSystem::rename`]; a path filter matches either path.
    Rename,
    /// [`FileSystem::remove`].
    Remove,
}

/// The error an injected fault returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SimError {
    /// `EIO` (5): the device failed.
    Eio,
    /// `ENOSPC` (28): no space left on the device.
    Enospc,
}

impl SimError {
    /// The Linux errno.
    pub fn raw_os_error(self) -> i32 {
        match self {
            SimError::Eio => EIO,
            SimError::Enospc => ENOSPC,
        }
    }

    /// The error as the real filesystem reports it (`io::Error::from_raw_os_error`, so its
    /// kind is whatever `std` maps the errno to).
    pub fn to_io_error(self) -> io::Error {
        errno(self.raw_os_error())
    }
}

/// What a write does when it does not fit under the space limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SpaceLimitMode {
    /// Writes nothing and fails with `ENOSPC`.
    #[default]
    NothingWritten,
    /// Writes the prefix that fits, then fails with `ENOSPC`, as a real filesystem's short
    /// `write` followed by a failing one does. (`set_len` never grows a file partly.)
    PartialWrite,
}

#[derive(Debug, Clone)]
struct Fault {
    op: SimOp,
    path_contains: Option<String>,
    error: SimError,
    persistent: bool,
}

/// An operation held back until [`SimFs::release_stalls`]: a slow device, made
/// deterministic.
#[derive(Debug, Clone)]
struct Stall {
    op: SimOp,
    path_contains: Option<String>,
}

fn matches(op: SimOp, filter: Option<&str>, wanted: SimOp, paths: &[&Path]) -> bool {
    op == wanted
        && filter.is_none_or(|s| {
            paths
                .iter()
                .any(|p| p.as_os_str().to_string_lossy().contains(s))
        })
}

type NodeId = u64;

/// One pending directory operation: entries set (`Some`) or removed (`None`), atomically.
type DirOp = Vec<(PathBuf, Option<NodeId>)>;

/// Everything behind one [`SimFs`] and its handles.
struct State {
    rng: Rng,
    /// Set by `crash`: the machine lost power, and this state is kept only to look at.
    crashed: bool,
    dirs: BTreeSet<PathBuf>,
    /// The namespace that `open`, `list` and `exists` see.
    names: BTreeMap<PathBuf, NodeId>,
    /// The namespace power loss cannot take.
    durable_names: BTreeMap<PathBuf, NodeId>,
    /// Each directory's operations since its last `sync_dir`, oldest first.
    dir_pending: BTreeMap<PathBuf, Vec<DirOp>>,
    nodes: BTreeMap<NodeId, Node>,
    next_id: NodeId,
    faults: Vec<Fault>,
    stalls: Vec<Stall>,
    /// Operations waiting at a stall now.
    stalled: usize,
    /// Woken when an operation stalls and when stalls are released.
    stall_changed: Arc<Condvar>,
    space_limit: Option<u64>,
    space_mode: SpaceLimitMode,
    ops: u64,
    syncs: u64,
    dir_syncs: u64,
    /// Paths locked by `try_lock`, each with the token of its holder. In memory only: a crash
    /// (the process dies) releases them all.
    locks: BTreeMap<PathBuf, u64>,
    next_lock: u64,
}

impl State {
    fn new(rng: Rng) -> Self {
        State {
            rng,
            crashed: false,
            dirs: BTreeSet::new(),
            names: BTreeMap::new(),
            durable_names: BTreeMap::new(),
            dir_pending: BTreeMap::new(),
            nodes: BTreeMap::new(),
            next_id: 0,
            faults: Vec::new(),
            stalls: Vec::new(),
            stalled: 0,
            stall_changed: Arc::new(Condvar::new()),
            space_limit: None,
            space_mode: SpaceLimitMode::default(),
            ops: 0,
            syncs: 0,
            dir_syncs: 0,
            locks: BTreeMap::new(),
            next_lock: 0,
        }
    }

    fn node(&self, id: NodeId) -> io::Result<&Node> {
        self.nodes.get(&id).ok_or_else(|| errno(EBADF))
    }

    fn node_mut(&mut self, id: NodeId) -> io::Result<&mut Node> {
        self.nodes.get_mut(&id).ok_or_else(|| errno(EBADF))
    }

    /// Fails with the first armed fault for `op` whose filter matches one of `paths`,
    /// disarming it unless it is persistent.
    fn take_fault(&mut self, op: SimOp, paths: &[&Path]) -> io::Result<()> {
        let hit = self
            .faults
            .iter()
            .position(|f| matches(f.op, f.path_contains.as_deref(), op, paths));
        let Some(i) = hit else {
            return Ok(());
        };
        let error = self.faults.get(i).map_or(SimError::Eio, |f| f.error);
        if self.faults.get(i).is_some_and(|f| !f.persistent) {
            self.faults.remove(i);
        }
        Err(error.to_io_error())
    }

    /// Bytes held by files that have a name or an open handle.
    fn used_bytes(&self) -> u64 {
        let named: BTreeSet<NodeId> = self.names.values().copied().collect();
        self.nodes
            .iter()
            .filter(|(id, n)| n.handles > 0 || named.contains(id))
            .map(|(_, n)| n.current.len() as u64)
            .sum()
    }

    /// Bytes files may still grow by, when there is a space limit.
    fn room(&self) -> Option<u64> {
        self.space_limit
            .map(|limit| limit.saturating_sub(self.used_bytes()))
    }

    /// Whether `path` is a directory: one `create_dir_all` made, or a root (`/`, or the
    /// empty path that relative paths start from), which always exists.
    fn dir_exists(&self, path: &Path) -> bool {
        path.parent().is_none() || self.dirs.contains(path)
    }

    /// The directory a new entry at `path` goes in, which must exist.
    fn parent_dir(&self, path: &Path) -> io::Result<PathBuf> {
        if path.file_name().is_none() {
            return Err(errno(EINVAL));
        }
        let parent = parent_of(path);
        if self.names.contains_key(&parent) {
            return Err(errno(ENOTDIR));
        }
        if !self.dir_exists(&parent) {
            return Err(errno(ENOENT));
        }
        Ok(parent)
    }

    fn queue_dir_op(&mut self, dir: PathBuf, op: DirOp) {
        self.dir_pending.entry(dir).or_default().push(op);
    }

    /// Forgets files nothing can reach any more: no name now, none that power loss could
    /// bring back, and no open handle or map.
    fn collect_garbage(&mut self) {
        let mut live: BTreeSet<NodeId> = self
            .names
            .values()
            .chain(self.durable_names.values())
            .copied()
            .collect();
        for ops in self.dir_pending.values() {
            live.extend(ops.iter().flatten().filter_map(|(_, id)| *id));
        }
        self.nodes
            .retain(|id, n| n.handles > 0 || live.contains(id));
    }

    /// What survives power loss now: see [`SimFs::crash`].
    fn crash_outcome(&mut self) -> State {
        if !self.crashed {
            for node in self.nodes.values_mut() {
                node.absorb_maps();
            }
            self.crashed = true;
        }
        let mut names = self.durable_names.clone();
        for ops in self.dir_pending.values() {
            let keep = self.rng.up_to(ops.len());
            for (path, id) in ops.iter().take(keep).flatten() {
                match id {
                    Some(id) => names.insert(path.clone(), *id),
                    None => names.remove(path),
                };
            }
        }
        let mut nodes = BTreeMap::new();
        let survivors: BTreeSet<NodeId> = names.values().copied().collect();
        for id in survivors {
            if let Some(node) = self.nodes.get(&id) {
                nodes.insert(id, node.crash_outcome(&mut self.rng));
            }
        }
        names.retain(|_, id| nodes.contains_key(id));
        let mut after = State::new(self.rng.clone());
        after.dirs = self.dirs.clone();
        after.names = names.clone();
        after.durable_names = names;
        after.nodes = nodes;
        after.next_id = self.next_id;
        after.space_limit = self.space_limit;
        after.space_mode = self.space_mode;
        after
    }
}

impl State {
    /// Renames the directory `from` and everything under it to `to`, which must not exist.
    /// Directory renames are durable at once (as on a filesystem mounted `dirsync`): the
    /// simulation loses files and directory entries, never a directory rename.
    fn rename_dir(&mut self, from: &Path, to: &Path) -> io::Result<()> {
        if from.parent().is_none() {
            return Err(errno(EINVAL));
        }
        if self.names.contains_key(to) || self.dir_exists(to) {
            return Err(errno(EEXIST));
        }
        if to.starts_with(from) {
            return Err(errno(EINVAL));
        }
        self.parent_dir(to)?;
        let moved = |p: &Path| -> PathBuf {
            match p.strip_prefix(from) {
                Ok(rest) if rest.as_os_str().is_empty() => to.to_path_buf(),
                Ok(rest) => to.join(rest),
                Err(_) => p.to_path_buf(),
            }
        };
        self.dirs = self.dirs.iter().map(|p| moved(p)).collect();
        self.names = self.names.iter().map(|(p, id)| (moved(p), *id)).collect();
        self.durable_names = self
            .durable_names
            .iter()
            .map(|(p, id)| (moved(p), *id))
            .collect();
        self.dir_pending = std::mem::take(&mut self.dir_pending)
            .into_iter()
            .map(|(dir, ops)| {
                let ops = ops
                    .into_iter()
                    .map(|op| op.into_iter().map(|(p, id)| (moved(&p), id)).collect())
                    .collect();
                (moved(&dir), ops)
            })
            .collect();
        Ok(())
    }
}

fn parent_of(path: &Path) -> PathBuf {
    path.parent().map(Path::to_path_buf).unwrap_or_default()
}

/// Runs one counted operation, unless the machine has crashed.
fn run<T>(state: &Mutex<State>, f: impl FnOnce(&mut State) -> io::Result<T>) -> io::Result<T> {
    run_op(state, None, f)
}

/// [`run`] for an operation that a stall can hold back: `op` on `paths`. While a matching
/// stall is armed the caller waits, with the state unlocked (a crash can be taken then).
fn run_op<T>(
    state: &Mutex<State>,
    op: Option<(SimOp, &[&Path])>,
    f: impl FnOnce(&mut State) -> io::Result<T>,
) -> io::Result<T> {
    let mut st = state.lock();
    if let Some((op, paths)) = op {
        wait_while_stalled(&mut st, op, paths);
    }
    if st.crashed {
        return Err(io::Error::other(
            "simulated power loss: this handle belongs to a SimFs that crashed; use the one crash() returned",
        ));
    }
    st.ops += 1;
    f(&mut st)
}

fn wait_while_stalled(st: &mut MutexGuard<'_, State>, op: SimOp, paths: &[&Path]) {
    while st
        .stalls
        .iter()
        .any(|s| matches(s.op, s.path_contains.as_deref(), op, paths))
    {
        let changed = Arc::clone(&st.stall_changed);
        st.stalled += 1;
        changed.notify_all();
        changed.wait(st);
        st.stalled -= 1;
    }
}

/// A deterministic, seeded, in-memory filesystem with power loss and fault injection.
///
/// Clones share one filesystem. The same seed and the same sequence of calls always give the
/// same results, including what survives [`crash`](SimFs::crash); nothing in it reads the
/// clock or the operating system's randomness.
///
/// ```
/// use std::path::Path;
/// use streamlog::io::{FileSystem, OpenMode, SimFs};
///
/// let fs = SimFs::new(7);
/// fs.create_dir_all(Path::new("/d"))?;
/// let f = fs.open(Path::new("/d/f"), OpenMode::ReadWrite)?;
/// f.append(&[b"kept"])?;
/// f.sync_data()?;
/// fs.sync_dir(Path::new("/d"))?;
/// f.append(&[b" maybe"])?; // not synced: power loss may drop or tear it
///
/// let after = fs.crash();
/// let bytes = after.read_durable(Path::new("/d/f")).unwrap();
/// assert!(bytes.starts_with(b"kept") && b"kept maybe".starts_with(&bytes));
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct SimFs {
    state: Arc<Mutex<State>>,
}

impl fmt::Debug for SimFs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.state.try_lock() {
            Some(st) => f
                .debug_struct("SimFs")
                .field("files", &st.names.len())
                .field("ops", &st.ops)
                .field("crashed", &st.crashed)
                .finish(),
            None => f.debug_struct("SimFs").finish_non_exhaustive(),
        }
    }
}

impl SimFs {
    /// An empty filesystem whose random choices all come from `seed`.
    pub fn new(seed: u64) -> Self {
        SimFs {
            state: Arc::new(Mutex::new(State::new(Rng::new(seed)))),
        }
    }

    /// Simulates power loss and returns the filesystem as it comes back up.
    ///
    /// The model, in this order (random choices from the seed's stream, which the returned
    /// filesystem continues):
    ///
    /// 1. Stores made through live maps are copied back first, as pending writes.
    /// 2. Names: start from the durable namespace; for each directory with pending
    ///    operations (in path order), apply the first *k* of them in order, *k* uniform in
    ///    `0..=n`. A rename between two directories is two operations, one in each, so it
    ///    may land in one and not the other (the file then has both names or neither).
    /// 3. Data: for each file that has a name afterwards, start from its durable content and
    ///    apply the first *k* of its pending writes in order, *k* uniform in `0..=n`. When
    ///    the last applied one is an `append` or `write_at`, it is torn half the time: only
    ///    a uniformly chosen prefix (possibly empty) of its bytes is written. `set_len`
    ///    applies whole or not at all.
    ///
    /// Everything in the returned filesystem is durable (current equals durable), no faults
    /// are armed, counters start at zero, and the space limit carries over. This
    /// filesystem and every handle from it then fail all operations (with an error saying
    /// so), so a test cannot write to the old machine by mistake; its state stays frozen for
    /// the introspection methods, and calling `crash` on it again draws another outcome from
    /// the same moment.
    pub fn crash(&self) -> SimFs {
        let after = self.state.lock().crash_outcome();
        SimFs {
            state: Arc::new(Mutex::new(after)),
        }
    }

    /// Whether [`crash`](SimFs::crash) has been called on this filesystem.
    pub fn is_crashed(&self) -> bool {
        self.state.lock().crashed
    }

    fn arm(&self, op: SimOp, path_contains: Option<&str>, error: SimError, persistent: bool) {
        self.state.lock().faults.push(Fault {
            op,
            path_contains: path_contains.map(str::to_owned),
            error,
            persistent,
        });
    }

    /// Makes the next `op` on a path containing `path_contains` (any path when `None`) fail
    /// with `error`, once. A failing write writes nothing; a failing sync makes nothing
    /// durable and drops the file's pending writes, as Linux does after a failed writeback:
    /// they stay visible to reads but no later sync writes them, so they are lost at a crash
    /// unless written again. A failing namespace operation changes nothing.
    pub fn fail_next(&self, op: SimOp, path_contains: Option<&str>, error: SimError) {
        self.arm(op, path_contains, error, false);
    }

    /// Like [`fail_next`](SimFs::fail_next), but every matching operation fails until
    /// [`clear_faults`](SimFs::clear_faults).
    pub fn fail_always(&self, op: SimOp, path_contains: Option<&str>, error: SimError) {
        self.arm(op, path_contains, error, true);
    }

    /// Holds back every later `op` on a path containing `path_contains` (any path when
    /// `None`) until [`release_stalls`](SimFs::release_stalls): the caller blocks as on a
    /// slow device, and other operations go on. Reads, writes, syncs, directory syncs,
    /// opens, removes and renames can be stalled. A [`crash`](SimFs::crash) taken while an operation is stalled
    /// sees the filesystem as it was before that operation.
    pub fn stall(&self, op: SimOp, path_contains: Option<&str>) {
        self.state.lock().stalls.push(Stall {
            op,
            path_contains: path_contains.map(str::to_owned),
        });
    }

    /// Releases every stalled operation and disarms every stall.
    pub fn release_stalls(&self) {
        let mut st = self.state.lock();
        st.stalls.clear();
        st.stall_changed.notify_all();
    }

    /// Waits until at least `n` operations are held at a stall, or `timeout` passes (a guard
    /// against a hang, not a measurement); returns whether they are.
    pub fn wait_for_stalled(&self, n: usize, timeout: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        let mut st = self.state.lock();
        while st.stalled < n {
            let changed = Arc::clone(&st.stall_changed);
            if changed.wait_until(&mut st, deadline).timed_out() {
                return st.stalled >= n;
            }
        }
        true
    }

    /// Operations held at a stall now.
    pub fn stalled(&self) -> usize {
        self.state.lock().stalled
    }

    /// Disarms every fault.
    pub fn clear_faults(&self) {
        self.state.lock().faults.clear();
    }

    /// Caps the bytes all files may hold together (files with a name or an open handle,
    /// counting their current length, `set_len` extensions included). A write or `set_len`
    /// that would go past it fails with `ENOSPC`, writing per
    /// [`set_space_limit_mode`](SimFs::set_space_limit_mode). `None` removes the cap.
    pub fn set_space_limit(&self, limit: Option<u64>) {
        self.state.lock().space_limit = limit;
    }

    /// What a write that does not fit under the space limit does (default: nothing).
    pub fn set_space_limit_mode(&self, mode: SpaceLimitMode) {
        self.state.lock().space_mode = mode;
    }

    /// The bytes the space limit counts now.
    pub fn used_bytes(&self) -> u64 {
        self.state.lock().used_bytes()
    }

    /// The durable content of the file that has the durable name `path`: what a crash now
    /// would keep for certain.
    pub fn read_durable(&self, path: &Path) -> Option<Vec<u8>> {
        let st = self.state.lock();
        let id = st.durable_names.get(path)?;
        st.nodes.get(id).map(|n| n.durable.clone())
    }

    /// The current content of the file named `path`, as a read would see it (stores through
    /// maps included). Looking changes nothing, so it cannot change a later crash's outcome.
    pub fn read_current(&self, path: &Path) -> Option<Vec<u8>> {
        let st = self.state.lock();
        let id = st.names.get(path)?;
        st.nodes.get(id).map(Node::view)
    }

    /// Every file's path in the current namespace, sorted.
    pub fn list_all(&self) -> Vec<PathBuf> {
        self.state.lock().names.keys().cloned().collect()
    }

    /// Every file's path in the durable namespace, sorted.
    pub fn list_durable(&self) -> Vec<PathBuf> {
        self.state.lock().durable_names.keys().cloned().collect()
    }

    /// Operations through the traits so far (failed ones included; these introspection
    /// methods excluded).
    pub fn op_count(&self) -> u64 {
        self.state.lock().ops
    }

    /// Successful file syncs so far: `sync_data` and flushes of writable maps.
    pub fn sync_count(&self) -> u64 {
        self.state.lock().syncs
    }

    /// Successful `sync_dir` calls so far.
    pub fn dir_sync_count(&self) -> u64 {
        self.state.lock().dir_syncs
    }
}

/// A lock held on a [`SimFs`] path.
struct SimLock {
    state: Arc<Mutex<State>>,
    path: PathBuf,
    token: u64,
}

impl FileLock for SimLock {}

impl fmt::Debug for SimLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimLock").field("path", &self.path).finish()
    }
}

impl Drop for SimLock {
    fn drop(&mut self) {
        let mut st = self.state.lock();
        if st.locks.get(&self.path) == Some(&self.token) {
            st.locks.remove(&self.path);
        }
    }
}

impl FileSystem for SimFs {
    fn try_lock(&self, path: &Path) -> io::Result<Box<dyn FileLock>> {
        // Not counted as an operation, and never failed by a fault: a lock is process state,
        // not a change to the disk.
        let token = {
            let mut st = self.state.lock();
            if st.crashed {
                return Err(io::Error::other(
                    "simulated power loss: use the SimFs crash() returned",
                ));
            }
            st.parent_dir(path)?;
            if st.locks.contains_key(path) {
                return Err(io::Error::new(
                    io::ErrorKind::WouldBlock,
                    format!("{} is locked", path.display()),
                ));
            }
            let token = st.next_lock;
            st.next_lock += 1;
            st.locks.insert(path.to_path_buf(), token);
            token
        };
        Ok(Box::new(SimLock {
            state: Arc::clone(&self.state),
            path: path.to_path_buf(),
            token,
        }))
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn File>> {
        let id = run_op(&self.state, Some((SimOp::Open, &[path])), |st| {
            st.take_fault(SimOp::Open, &[path])?;
            if st.dir_exists(path) {
                return Err(errno(EISDIR));
            }
            let id = match (st.names.get(path).copied(), mode) {
                (Some(_), OpenMode::CreateNew) => return Err(errno(EEXIST)),
                (Some(id), _) => id,
                (None, OpenMode::Read) => return Err(errno(ENOENT)),
                (None, OpenMode::ReadWrite | OpenMode::CreateNew) => {
                    let parent = st.parent_dir(path)?;
                    let id = st.next_id;
                    st.next_id = id.wrapping_add(1);
                    st.nodes.insert(id, Node::default());
                    st.names.insert(path.to_path_buf(), id);
                    st.queue_dir_op(parent, vec![(path.to_path_buf(), Some(id))]);
                    id
                }
            };
            st.node_mut(id)?.handles += 1;
            Ok(id)
        })?;
        Ok(Arc::new(SimFile::new(
            Arc::clone(&self.state),
            id,
            path,
            mode != OpenMode::Read,
        )))
    }

    /// Direct I/O is modelled: the handle refuses unaligned writes with `EINVAL`, as the
    /// kernel does, and its writes are ordinary pending writes (lost or torn by a crash
    /// until a sync), as on a device with a write cache; faults and stalls of
    /// [`SimOp::Write`] apply to them.
    fn open_direct(&self, path: &Path) -> io::Result<Option<Box<dyn DirectWrite>>> {
        let id = run_op(&self.state, Some((SimOp::Open, &[path])), |st| {
            st.take_fault(SimOp::Open, &[path])?;
            let id = st.names.get(path).copied().ok_or_else(|| errno(ENOENT))?;
            st.node_mut(id)?.handles += 1;
            Ok(id)
        })?;
        Ok(Some(Box::new(SimDirect::new(SimFile::new(
            Arc::clone(&self.state),
            id,
            path,
            true,
        )))))
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        run(&self.state, |st| {
            if st.names.contains_key(path) {
                return Err(errno(EEXIST));
            }
            if path.ancestors().any(|a| st.names.contains_key(a)) {
                return Err(errno(ENOTDIR));
            }
            for a in path.ancestors() {
                if !st.dir_exists(a) {
                    st.dirs.insert(a.to_path_buf());
                }
            }
            Ok(())
        })
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        run(&self.state, |st| {
            if st.names.contains_key(dir) {
                return Err(errno(ENOTDIR));
            }
            if !st.dir_exists(dir) {
                return Err(errno(ENOENT));
            }
            let mut entries: Vec<PathBuf> = st
                .names
                .keys()
                .chain(st.dirs.iter())
                .filter(|p| p.parent() == Some(dir))
                .filter_map(|p| p.file_name().map(|name| dir.join(name)))
                .collect();
            entries.sort();
            entries.dedup();
            Ok(entries)
        })
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        run_op(&self.state, Some((SimOp::Remove, &[path])), |st| {
            st.take_fault(SimOp::Remove, &[path])?;
            if st.names.remove(path).is_none() {
                return Err(errno(if st.dir_exists(path) { EISDIR } else { ENOENT }));
            }
            st.queue_dir_op(parent_of(path), vec![(path.to_path_buf(), None)]);
            st.collect_garbage();
            Ok(())
        })
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        run_op(&self.state, Some((SimOp::Rename, &[from, to])), |st| {
            st.take_fault(SimOp::Rename, &[from, to])?;
            let Some(id) = st.names.get(from).copied() else {
                if st.dir_exists(from) {
                    return st.rename_dir(from, to);
                }
                return Err(errno(ENOENT));
            };
            if st.dir_exists(to) {
                return Err(errno(EISDIR));
            }
            let to_parent = st.parent_dir(to)?;
            if from == to {
                return Ok(());
            }
            let from_parent = parent_of(from);
            st.names.remove(from);
            st.names.insert(to.to_path_buf(), id);
            let unlink = (from.to_path_buf(), None);
            let link = (to.to_path_buf(), Some(id));
            if from_parent == to_parent {
                st.queue_dir_op(from_parent, vec![unlink, link]);
            } else {
                st.queue_dir_op(from_parent, vec![unlink]);
                st.queue_dir_op(to_parent, vec![link]);
            }
            st.collect_garbage();
            Ok(())
        })
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        run_op(&self.state, Some((SimOp::SyncDir, &[dir])), |st| {
            st.take_fault(SimOp::SyncDir, &[dir])?;
            if st.names.contains_key(dir) {
                return Err(errno(ENOTDIR));
            }
            if !st.dir_exists(dir) {
                return Err(errno(ENOENT));
            }
            for (path, id) in st.dir_pending.remove(dir).into_iter().flatten().flatten() {
                match id {
                    Some(id) => st.durable_names.insert(path, id),
                    None => st.durable_names.remove(&path),
                };
            }
            st.dir_syncs += 1;
            st.collect_garbage();
            Ok(())
        })
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        run(&self.state, |st| {
            st.take_fault(SimOp::Remove, &[path])?;
            if st.names.contains_key(path) {
                return Err(errno(ENOTDIR));
            }
            if path.parent().is_none() || !st.dirs.contains(path) {
                return Err(errno(ENOENT));
            }
            let child = |p: &PathBuf| p.parent() == Some(path);
            if st.names.keys().any(child) || st.dirs.iter().any(child) {
                return Err(errno(ENOTEMPTY));
            }
            st.dirs.remove(path);
            // Directory removals are durable at once: entries power loss could have brought
            // back have no directory left to appear in.
            st.durable_names.retain(|p, _| !p.starts_with(path));
            st.dir_pending.retain(|p, _| !p.starts_with(path));
            st.collect_garbage();
            Ok(())
        })
    }

    fn exists(&self, path: &Path) -> bool {
        run(&self.state, |st| {
            Ok(st.names.contains_key(path) || st.dir_exists(path))
        })
        .unwrap_or(false)
    }
}
