//! [`LogStore`]: openraft's `RaftLogStorage` on a streamlog partition log.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{
    Entry, ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftLogReader, RaftTypeConfig,
    StorageError, Vote,
};
use parking_lot::{Mutex, RwLock};

use super::codec::{self, index_of, offset_of};
use super::entry_cache::EntryCache;
use super::group_commit::{GroupCommit, OnDurable};
use super::{meta, RaftStoreError};
use crate::io::{FileSystem, RealFs};
use crate::record::Batches;
use crate::{CleanupPolicy, Error, Log, LogConfig};

/// The directory of the Raft log inside the store's directory.
pub const LOG_DIR: &str = "log";

/// Bytes read from the log per step when reading entries.
const READ_CHUNK_BYTES: usize = 1 << 20;

/// What the store and its readers share.
struct Shared<C: RaftTypeConfig> {
    log: Arc<Log>,
    /// The last purged log id: entries at or below it are gone, whatever the log still holds
    /// (the file is written before the records are deleted).
    purged: RwLock<Option<LogId<C::NodeId>>>,
    /// The last entries appended, decoded (see the `entry_cache` module).
    cache: Mutex<EntryCache<C>>,
}

impl<C> Shared<C>
where
    C: RaftTypeConfig<Entry = Entry<C>>,
    C::D: Clone,
{
    /// The entries in `[start, end)` that the log holds above the last purged one: those
    /// still in the cache from it, the rest read from the log.
    fn read_entries(&self, start: u64, end: u64) -> Result<Vec<Entry<C>>, RaftStoreError> {
        let floor = self.purged.read().as_ref().map_or(0, |p| p.index + 1);
        let start = start.max(floor);
        let (cached, covered) = self.cache.lock().get(start, end);
        let mut entries = if covered > start {
            self.read_log(start, covered)?
        } else {
            Vec::new()
        };
        if !cached.is_empty() {
            let next = entries.last().map_or(start, |e| e.log_id.index + 1);
            if next == covered {
                entries.extend(cached);
            } else {
                // The log changed under the read (a truncation or purge raced with it):
                // the log alone answers.
                entries = self.read_log(start, end)?;
            }
        }
        // A purge that raced with the read hides what it covers.
        let floor = self.purged.read().as_ref().map_or(0, |p| p.index + 1);
        entries.retain(|e| e.log_id.index >= floor);
        Ok(entries)
    }

    /// The entries in `[start, end)` that the log holds, decoded from its batches.
    fn read_log(&self, start: u64, end: u64) -> Result<Vec<Entry<C>>, RaftStoreError> {
        let log = &self.log;
        let mut next = offset_of(start)
            .unwrap_or(i64::MAX)
            .max(log.log_start_offset());
        let end = i64::try_from(end)
            .unwrap_or(i64::MAX)
            .min(log.log_end_offset());
        let mut entries = Vec::new();
        while next < end {
            let bytes = match log.read_bytes(next, READ_CHUNK_BYTES, Some(end)) {
                Ok(bytes) => bytes,
                // Purged or truncated meanwhile: what is gone is "not found".
                Err(Error::OffsetOutOfRange { .. }) => break,
                Err(e) => return Err(e.into()),
            };
            let before = next;
            for batch in Batches::with_limits(&bytes, log.config().decode_limits) {
                let batch = batch?;
                if batch.base_offset() >= next {
                    entries.push(codec::decode_entry::<C>(&batch)?);
                }
                next = next.max(batch.next_offset());
            }
            if next == before {
                break; // nothing below `end` from here
            }
        }
        Ok(entries)
    }

    /// The log id of the last entry above the last purged one, else the last purged one.
    fn last_log_id(&self) -> Result<Option<LogId<C::NodeId>>, RaftStoreError> {
        let purged = self.purged.read().clone();
        let end = index_of(self.log.log_end_offset());
        if end == 0 {
            return Ok(purged);
        }
        // One entry per batch: the last is at the log end offset minus one, unless the log
        // ends in a gap (a truncation onto a segment that began past a purge).
        let mut last = self.read_entries(end - 1, end)?.pop();
        if last.is_none() {
            last = self.read_entries(0, end)?.pop();
        }
        Ok(match last {
            Some(entry) => Some(entry.log_id).max(purged),
            None => purged,
        })
    }
}

/// A Raft log on a streamlog [`Log`]: openraft's `RaftLogStorage` (storage-v2).
///
/// ```text
/// <dir>/log/        the entries: a partition log, one batch per entry, offset = index
///                   (the layout of one entry: see the `codec` module's comment)
///      /vote        the vote, JSON, replaced atomically (tmp, fsync, rename, fsync dir)
///      /committed   the committed log id, the same way (written after the log is flushed)
///      /purged      the last purged log id, the same way, before the records are deleted
/// ```
///
/// **Group commit under openraft 0.9.** openraft 0.9's core awaits each append's callback
/// before it makes the next append, so the store never holds two of its appends waiting for
/// an fsync: every `append` costs one [`Log::flush`], whatever the number of clients.
/// `append` therefore flushes in the caller (openraft's task) and completes the callback
/// before it returns, rather than handing the flush to the group-commit thread and back.
/// For concurrent writers to share an fsync, the application puts their commands into one
/// entry (the `metadata_cluster` example's proposer does). The group-commit thread serves
/// callers that pipeline appends without awaiting each one ([`Self::append_with_callback`]):
/// appends queued while it fsyncs share its next fsync. Either way a callback completes only
/// after a flush begun after its entries were written: nothing is acknowledged before it is
/// durable.
///
/// `truncate` is
/// [`Log::truncate_to`], durable before it returns; `purge` is
/// [`Log::delete_records_before`]. Crash recovery is the log's: on open a torn tail is cut,
/// and nothing flushed is lost.
pub struct LogStore<C>
where
    C: RaftTypeConfig,
{
    shared: Arc<Shared<C>>,
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
    /// The log id of the last entry, or the last purged one when there is none.
    last_log_id: Option<LogId<C::NodeId>>,
    vote: Option<Vote<C::NodeId>>,
    commit: GroupCommit<C>,
    /// Reused for the batches of one append.
    buf: Vec<u8>,
}

impl<C: RaftTypeConfig> Debug for LogStore<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore")
            .field("dir", &self.dir)
            .field("last_log_id", &self.last_log_id)
            .field("vote", &self.vote)
            .finish_non_exhaustive()
    }
}

impl<C> LogStore<C>
where
    C: RaftTypeConfig<Entry = Entry<C>>,
    C::D: Clone,
{
    /// Opens (creating if needed) the store in `dir` on the real filesystem.
    ///
    /// `config` configures the log under `dir/log`; retention is turned off (Raft alone
    /// decides what is purged) and so is the `flush.messages` policy (the store flushes).
    pub fn open(dir: impl AsRef<Path>, config: LogConfig) -> Result<Self, RaftStoreError> {
        LogStore::open_with(RealFs::shared(), dir.as_ref(), config)
    }

    /// Opens (creating if needed) the store in `dir` through `fs`.
    pub fn open_with(
        fs: Arc<dyn FileSystem>,
        dir: &Path,
        mut config: LogConfig,
    ) -> Result<Self, RaftStoreError> {
        fs.create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let purged: Option<LogId<C::NodeId>> = meta::read(&*fs, &dir.join(meta::PURGED_FILE))?;
        let vote: Option<Vote<C::NodeId>> = meta::read(&*fs, &dir.join(meta::VOTE_FILE))?;
        let committed: Option<LogId<C::NodeId>> =
            meta::read::<Option<LogId<C::NodeId>>>(&*fs, &dir.join(meta::COMMITTED_FILE))?
                .flatten();
        config.retention_ms = None;
        config.retention_bytes = None;
        config.cleanup_policy = CleanupPolicy::Delete;
        config.flush_messages = None;
        config.flush_ms = None;
        let (log, _) =
            Log::open_with(Arc::clone(&fs), &dir.join(LOG_DIR), config, &mut |_| Ok(()))?;
        let log = Arc::new(log);
        if let Some(p) = &purged {
            // A purge interrupted after its file was written: finish deleting.
            let upto = offset_of(p.index + 1)?.min(log.log_end_offset());
            if upto > log.log_start_offset() {
                log.delete_records_before(upto)?;
            }
        }
        cut_at_first_hole(&log, purged.as_ref())?;
        let shared = Arc::new(Shared {
            log: Arc::clone(&log),
            purged: RwLock::new(purged),
            cache: Mutex::new(EntryCache::new()),
        });
        let last_log_id = shared.last_log_id()?;
        let commit = GroupCommit::start(
            log,
            Arc::clone(&fs),
            dir.join(meta::COMMITTED_FILE),
            committed,
        );
        Ok(LogStore {
            shared,
            fs,
            dir: dir.to_path_buf(),
            last_log_id,
            vote,
            commit,
            buf: Vec::new(),
        })
    }

    /// The streamlog log holding the entries (offset = index).
    pub fn log(&self) -> &Arc<Log> {
        &self.shared.log
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Sets how many group-commit rounds (fsyncs of appended entries) may pass before a
    /// changed committed log id is written to its file (tmp, fsync, rename, fsync dir: about
    /// two fsyncs): default 1,024, under 0.2 % of the rounds' fsyncs; 1 writes it in the
    /// first round after `save_committed`. openraft saves the committed log id at every
    /// commit; a value lost in a crash only makes it re-apply fewer entries at start-up.
    pub fn set_committed_every(&self, rounds: u32) {
        self.commit.set_committed_every(rounds);
    }

    /// Stops the group-commit thread: from now on every append, `append_with_callback` too,
    /// flushes before it returns and completes its callback there (one fsync per call; see
    /// the type's documentation for `append`, which does so already when nothing is
    /// queued). For simulations that run every node on one thread and must replay exactly
    /// from a seed (no thread finishing work at a time of its own).
    pub fn commit_inline(&mut self) {
        self.commit.go_inline();
    }

    /// A reader sharing this store's log, as openraft's replication tasks use.
    pub fn reader(&self) -> LogStoreReader<C> {
        LogStoreReader {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Appends `entries` as openraft's `append` does, calling `on_durable` from the
    /// group-commit thread once they are durable (or with the error that stops them), for
    /// callers outside openraft (openraft's own callback type cannot be made outside it).
    /// Entries must continue the log: the first follows the last entry (or the last purged
    /// one), and each the one before it; entries at or below the last purged index are
    /// skipped (they are gone already).
    pub fn append_with_callback<I, F>(
        &mut self,
        entries: I,
        on_durable: F,
    ) -> Result<(), RaftStoreError>
    where
        I: IntoIterator<Item = Entry<C>>,
        F: FnOnce(std::io::Result<()>) + Send + 'static,
    {
        self.write_entries(entries)?;
        self.commit.submit(Box::new(on_durable), false)
    }

    fn write_entries<I>(&mut self, entries: I) -> Result<(), RaftStoreError>
    where
        I: IntoIterator<Item = Entry<C>>,
    {
        self.buf.clear();
        let mut written = Vec::new();
        let mut last: Option<LogId<C::NodeId>> = None;
        let now = self.shared.log.config().clock.now_ms();
        let purged = self.shared.purged.read().as_ref().map(|p| p.index);
        for entry in entries {
            let index = entry.log_id.index;
            if purged.is_some_and(|p| index <= p) {
                // Covered by the purge (a snapshot holds it): gone already.
                continue;
            }
            // No hole and no going back: the next index follows the last entry, or the
            // last purged one; an empty log takes any first index.
            let expected = last
                .as_ref()
                .or(self.last_log_id.as_ref())
                .map(|l| l.index + 1);
            if let Some(expected) = expected.filter(|&e| e != index) {
                return Err(RaftStoreError::NotContiguous { index, expected });
            }
            let before = self.buf.len();
            codec::encode_entry(&entry, now, &mut self.buf)?;
            last = Some(entry.log_id.clone());
            written.push((entry, self.buf.len() - before));
        }
        if last.is_some() {
            self.shared.log.append_replicated(&self.buf)?;
            self.shared.cache.lock().extend(written);
            self.last_log_id = last;
        }
        Ok(())
    }

    fn truncate_from(&mut self, log_id: &LogId<C::NodeId>) -> Result<(), RaftStoreError> {
        // Callbacks of entries about to go complete first, in order.
        self.commit.drain();
        let offset = offset_of(log_id.index)?;
        self.shared.cache.lock().truncate(log_id.index);
        if offset < self.shared.log.log_end_offset() {
            self.shared.log.truncate_to(offset)?;
        }
        self.last_log_id = self.shared.last_log_id()?;
        Ok(())
    }

    fn purge_upto(&mut self, log_id: LogId<C::NodeId>) -> Result<(), RaftStoreError> {
        if self.shared.purged.read().as_ref() >= Some(&log_id) {
            return Ok(());
        }
        // Durable first: a crash before the records go leaves them hidden, then deleted at
        // the next open; the other order could lose the purged entry's term.
        meta::write(&*self.fs, &self.dir.join(meta::PURGED_FILE), &log_id)?;
        let upto = offset_of(log_id.index + 1)?;
        *self.shared.purged.write() = Some(log_id.clone());
        self.shared.cache.lock().purge(log_id.index);
        let log = &self.shared.log;
        let upto = upto.min(log.log_end_offset());
        if upto > log.log_start_offset() {
            log.delete_records_before(upto)?;
        }
        if self.last_log_id.as_ref() < Some(&log_id) {
            self.last_log_id = Some(log_id);
        }
        Ok(())
    }
}

impl<C: RaftTypeConfig> Drop for LogStore<C> {
    fn drop(&mut self) {
        // The committer stops first (completing what it holds); a clean close then spares
        // the next open its recovery scan. Errors here have nowhere to go: the next open
        // recovers.
        self.commit.stop();
        if Arc::strong_count(&self.shared) == 1 {
            let _ = self.shared.log.close();
        }
    }
}

/// Cuts the log at the first hole among the entries above the last purged one.
///
/// Appends are contiguous, so only a truncation cut short by a crash leaves a hole: the
/// segments past the cut are removed before the cut is made, and their removal may not
/// reach the disk while the cut does (or, for a cut at or below the log start, only some of
/// the removals do). Whatever lies past the hole was being truncated. With one entry per
/// batch, an entry at offset `o` exists exactly when a read at `o` returns a batch based at
/// `o`; holes can only start at a segment's end, or right above the purged entries.
fn cut_at_first_hole<NID: openraft::NodeId>(
    log: &Log,
    purged: Option<&LogId<NID>>,
) -> Result<(), RaftStoreError> {
    let present = |offset: i64| -> Result<bool, RaftStoreError> {
        Ok(log.read(offset, 1, None)?.first_batch_offset == Some(offset))
    };
    let mut floor = log.log_start_offset();
    if let Some(p) = purged {
        // The first entry must be the one right after the purged one.
        let first = offset_of(p.index + 1)?;
        if first < log.log_end_offset() && (first < floor || !present(first)?) {
            log.truncate_to(first)?;
            return Ok(());
        }
        floor = floor.max(first);
    }
    for segment in log.segments_info()? {
        let last = segment.end_offset - 1;
        if segment.is_active || segment.size_bytes == 0 || last < floor {
            continue;
        }
        if !present(last)? {
            log.truncate_to(last)?;
            return Ok(());
        }
    }
    Ok(())
}

/// Converts openraft's range to `[start, end)`.
fn bounds<RB: RangeBounds<u64>>(range: &RB) -> (u64, u64) {
    let start = match range.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&e) => e.saturating_add(1),
        Bound::Excluded(&e) => e,
        Bound::Unbounded => u64::MAX,
    };
    (start, end)
}

/// Reads entries of a [`LogStore`] alongside it (openraft's replication tasks hold these).
pub struct LogStoreReader<C: RaftTypeConfig> {
    shared: Arc<Shared<C>>,
}

impl<C: RaftTypeConfig> Debug for LogStoreReader<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStoreReader")
            .field("dir", &self.shared.log.dir())
            .finish_non_exhaustive()
    }
}

/// openraft's `RaftLogReader` for the store and its readers alike: both read through the
/// shared log (`Shared::read_entries`).
macro_rules! impl_log_reader {
    ($reader:ident) => {
        impl<C> RaftLogReader<C> for $reader<C>
        where
            C: RaftTypeConfig<Entry = Entry<C>>,
            C::D: Clone,
        {
            async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
                &mut self,
                range: RB,
            ) -> Result<Vec<Entry<C>>, StorageError<C::NodeId>> {
                let (start, end) = bounds(&range);
                self.shared
                    .read_entries(start, end)
                    .map_err(RaftStoreError::read_logs)
            }
        }
    };
}

impl_log_reader!(LogStore);
impl_log_reader!(LogStoreReader);

impl<C> RaftLogStorage<C> for LogStore<C>
where
    C: RaftTypeConfig<Entry = Entry<C>>,
    C::D: Clone,
{
    type LogReader = LogStoreReader<C>;

    async fn get_log_state(&mut self) -> Result<LogState<C>, StorageError<C::NodeId>> {
        let last_purged_log_id = self.shared.purged.read().clone();
        let last_log_id = self.last_log_id.clone().max(last_purged_log_id.clone());
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.reader()
    }

    async fn save_vote(&mut self, vote: &Vote<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        meta::write(&*self.fs, &self.dir.join(meta::VOTE_FILE), vote)
            .map_err(|e| e.storage(ErrorSubject::Vote, ErrorVerb::Write))?;
        self.vote = Some(vote.clone());
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<C::NodeId>>, StorageError<C::NodeId>> {
        Ok(self.vote.clone())
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<C::NodeId>>,
    ) -> Result<(), StorageError<C::NodeId>> {
        self.commit
            .save_committed(committed)
            .map_err(|e| e.storage(ErrorSubject::Store, ErrorVerb::Write))
    }

    async fn read_committed(
        &mut self,
    ) -> Result<Option<LogId<C::NodeId>>, StorageError<C::NodeId>> {
        Ok(self.commit.committed())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<C>,
    ) -> Result<(), StorageError<C::NodeId>>
    where
        I: IntoIterator<Item = Entry<C>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let on_durable: OnDurable = Box::new(move |result| callback.log_io_completed(result));
        self.write_entries(entries)
            .and_then(|()| self.commit.submit(on_durable, true))
            .map_err(RaftStoreError::write_logs)
    }

    async fn truncate(&mut self, log_id: LogId<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        self.truncate_from(&log_id)
            .map_err(RaftStoreError::delete_logs)
    }

    async fn purge(&mut self, log_id: LogId<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        self.purge_upto(log_id).map_err(RaftStoreError::delete_logs)
    }
}
