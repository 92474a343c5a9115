//! One segment: a `.log` file of batches plus its `.index` and `.timeindex`.
//!
//! A segment is shared (`Arc`) between the log's one writer and its readers. Readers use
//! positioned reads and the indexes' published entries; the writer appends, then publishes.

mod index;
mod scan;
pub(crate) mod txnindex;

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;

pub(crate) use index::{IndexFile, IndexKind, OffsetEntry, TimeEntry};
pub(crate) use scan::{BatchPos, ResumePosition};

use crate::config::MIN_PREALLOCATE_BYTES;
use crate::error::{Error, Result};
use crate::io::{File, FileSystem, OpenMode};
use crate::record::NO_TIMESTAMP;

/// Trims indexes rebuilt by recovery to their entries, with the final time-index entry a
/// sealed segment has, so they load as a cleanly closed segment's would.
pub(crate) fn finish_rebuilt_indexes(rec: &scan::RecoveredSegment) -> Result<()> {
    maybe_append_time(&rec.indexes.time, rec.base_offset, &rec.write_state);
    rec.indexes.offset.trim()?;
    rec.indexes.time.trim()
}

/// `<20-digit base offset>.<ext>`, Kafka's segment file name.
pub fn segment_file_name(base_offset: i64, ext: &str) -> String {
    format!("{base_offset:020}.{ext}")
}

/// The highest base offset a segment may have: every offset in it (the base plus a `u32`
/// relative offset) and the next offset after them fit an `i64`.
pub const MAX_BASE_OFFSET: i64 = i64::MAX - u32::MAX as i64 - 1;

/// `Segment::reserved_to` once the file refused a reservation: no more are asked for.
const NOT_RESERVING: u64 = u64::MAX;

/// Refuses a segment file whose base offset is above [`MAX_BASE_OFFSET`]: offsets computed
/// from it (base plus relative) would overflow.
pub(crate) fn check_segment_base(path: &Path, base_offset: i64) -> Result<()> {
    if base_offset > MAX_BASE_OFFSET {
        return Err(Error::SegmentBaseOutOfRange {
            path: path.to_path_buf(),
            base_offset,
        });
    }
    Ok(())
}

/// The base offset of a segment file named `<20 digits>.log`, if `path` is one.
pub fn parse_segment_file_name(path: &Path, ext: &str) -> Option<i64> {
    let name = path.file_name()?.to_str()?;
    let stem = name.strip_suffix(ext)?.strip_suffix('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// Index settings a segment needs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IndexConfig {
    pub max_index_bytes: u32,
    pub index_interval_bytes: u32,
    /// Append to active segments through direct I/O in writes of this many bytes
    /// (`LogConfig::direct_io`); `None` appends through the page cache.
    pub direct_write_bytes: Option<usize>,
    /// Full direct-I/O writes that may be in flight while appends go on.
    pub direct_writes_in_flight: usize,
    /// The largest step of disk blocks reserved ahead of appends (`LogConfig::preallocate_bytes`);
    /// 0 reserves nothing.
    pub preallocate_bytes: u64,
}

/// The offset and time indexes of a segment.
#[derive(Debug)]
pub(crate) struct Indexes {
    pub offset: IndexFile,
    pub time: IndexFile,
}

/// What only the writer touches: where the next index entries go and the largest timestamp.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WriteState {
    pub bytes_since_last_index_entry: u64,
    pub max_timestamp: i64,
    pub offset_of_max_timestamp: i64,
    /// The first batch's max timestamp: what `segment.ms` is measured from.
    pub rolling_base_timestamp: Option<i64>,
}

impl Default for WriteState {
    fn default() -> Self {
        WriteState {
            bytes_since_last_index_entry: 0,
            max_timestamp: NO_TIMESTAMP,
            offset_of_max_timestamp: -1,
            rolling_base_timestamp: None,
        }
    }
}

/// One `.log` file and its indexes.
#[derive(Debug)]
pub(crate) struct Segment {
    base_offset: i64,
    dir: PathBuf,
    log_path: PathBuf,
    log: Arc<dyn File>,
    fs: Arc<dyn FileSystem>,
    config: IndexConfig,
    /// Bytes of whole batches in the file.
    size: AtomicU64,
    indexes: OnceLock<Arc<Indexes>>,
    sealed: AtomicBool,
    /// Set when the files are removed; readers holding the segment then must not recreate
    /// its indexes.
    deleted: AtomicBool,
    /// The index files were trimmed (sealed) or rebuilt since they were last made durable:
    /// a flush, or the log's deferred work after a roll, must sync them before the recovery
    /// point or the clean-shutdown marker vouches for them.
    index_sync_pending: AtomicBool,
    /// Held while the indexes are loaded or rebuilt, so two readers never rebuild the same
    /// index files at once (each mapping them while the other trims them).
    index_load: Mutex<()>,
    /// Where the disk blocks this process reserved ahead of appends end (0: none;
    /// `NOT_RESERVING` once the file refused). Only the writer moves it.
    reserved_to: AtomicU64,
    write_state: Mutex<WriteState>,
    /// Appended to every file name: empty for a live segment, `.cleaned` or `.swap` while
    /// the cleaner builds a replacement (see `log/cleaner/swap.rs`).
    suffix: &'static str,
}

impl Segment {
    fn path_for(dir: &Path, base_offset: i64, ext: &str) -> PathBuf {
        dir.join(segment_file_name(base_offset, ext))
    }

    /// Path of this segment's file with extension `ext`.
    pub(crate) fn file_path(&self, ext: &str) -> PathBuf {
        Segment::suffixed_path(&self.dir, self.base_offset, ext, self.suffix)
    }

    /// `<dir>/<base>.<ext><suffix>`.
    pub(crate) fn suffixed_path(dir: &Path, base_offset: i64, ext: &str, suffix: &str) -> PathBuf {
        let mut name = segment_file_name(base_offset, ext);
        name.push_str(suffix);
        dir.join(name)
    }

    /// Creates a new, empty, active segment (reusing an empty `.log` file of the same name).
    pub(crate) fn create(
        fs: &Arc<dyn FileSystem>,
        dir: &Path,
        base_offset: i64,
        config: IndexConfig,
    ) -> Result<Self> {
        Segment::create_with_suffix(fs, dir, base_offset, config, "")
    }

    /// [`Segment::create`] with `suffix` after every file name: the cleaner writes its output
    /// as `<base>.log.cleaned` (and indexes) this way, invisible to an open until swapped in.
    pub(crate) fn create_with_suffix(
        fs: &Arc<dyn FileSystem>,
        dir: &Path,
        base_offset: i64,
        config: IndexConfig,
        suffix: &'static str,
    ) -> Result<Self> {
        // A segment no open could take back: refused before any file is made.
        check_segment_base(
            &dir.join(segment_file_name(base_offset, "log")),
            base_offset,
        )?;
        let seg = Segment::open_log(fs, dir, base_offset, config, suffix, true)?;
        let indexes = match seg.open_writable_indexes(0, 0) {
            Ok(ix) => ix,
            Err(e) => {
                // No half-made segment left behind (no space to preallocate an index): an
                // empty `.log` named at the log end would become the active segment at the
                // next open, below batches the caller goes on appending elsewhere.
                let _ = seg.delete_files();
                return Err(e);
            }
        };
        let _ = seg.indexes.set(Arc::new(indexes));
        Ok(seg)
    }

    /// Opens an existing segment file. Indexes are loaded on first use.
    pub(crate) fn open(
        fs: &Arc<dyn FileSystem>,
        dir: &Path,
        base_offset: i64,
        config: IndexConfig,
    ) -> Result<Self> {
        Segment::open_with_suffix(fs, dir, base_offset, config, "")
    }

    /// [`Segment::open`] for files named with `suffix` (a `.swap` segment found at open).
    pub(crate) fn open_with_suffix(
        fs: &Arc<dyn FileSystem>,
        dir: &Path,
        base_offset: i64,
        config: IndexConfig,
        suffix: &'static str,
    ) -> Result<Self> {
        let seg = Segment::open_log(fs, dir, base_offset, config, suffix, false)?;
        seg.sealed.store(true, Ordering::Release);
        Ok(seg)
    }

    /// The part [`Segment::create_with_suffix`] and [`Segment::open_with_suffix`] share, kept
    /// in one place so both name, open and size the `.log` file the same way: opens
    /// `<base>.log<suffix>` read-write and wraps it in a segment without indexes. With `empty`,
    /// whatever the file holds is cut first (a new segment reusing a leftover file).
    fn open_log(
        fs: &Arc<dyn FileSystem>,
        dir: &Path,
        base_offset: i64,
        config: IndexConfig,
        suffix: &'static str,
        empty: bool,
    ) -> Result<Self> {
        let log_path = Segment::suffixed_path(dir, base_offset, "log", suffix);
        let log = fs
            .open(&log_path, OpenMode::ReadWrite)
            .map_err(|e| Error::io(&log_path, e))?;
        let mut size = log.len().map_err(|e| Error::io(&log_path, e))?;
        // Only cut a file that holds something: on ext4, truncating a file to zero marks it
        // for a forced writeback of everything written to it when it is closed
        // (`auto_da_alloc`), which a brand-new segment has no reason to pay for.
        if empty && size != 0 {
            log.set_len(0).map_err(|e| Error::io(&log_path, e))?;
            size = 0;
        }
        // A new live segment is the active one: appended to, directly if so configured.
        let log = if empty && suffix.is_empty() {
            Segment::appendable(fs, &log_path, log, config)?
        } else {
            log
        };
        let mut seg = Segment::new(fs, dir, base_offset, log, size, config);
        seg.set_suffix(suffix);
        Ok(seg)
    }

    /// The handle appends go through: `log` itself, or with direct I/O configured, `log`
    /// behind an aligned write buffer (`io::direct`).
    fn appendable(
        fs: &Arc<dyn FileSystem>,
        log_path: &Path,
        log: Arc<dyn File>,
        config: IndexConfig,
    ) -> Result<Arc<dyn File>> {
        let Some(chunk) = config.direct_write_bytes else {
            return Ok(log);
        };
        let io = |e| Error::io(log_path, e);
        let direct = fs.open_direct(log_path).map_err(io)?;
        crate::io::direct_append_file(log, direct, chunk, config.direct_writes_in_flight)
            .map_err(io)
    }

    fn set_suffix(&mut self, suffix: &'static str) {
        self.suffix = suffix;
        self.log_path = self.file_path("log");
    }

    fn new(
        fs: &Arc<dyn FileSystem>,
        dir: &Path,
        base_offset: i64,
        log: Arc<dyn File>,
        size: u64,
        config: IndexConfig,
    ) -> Self {
        Segment {
            base_offset,
            dir: dir.to_path_buf(),
            log_path: Segment::path_for(dir, base_offset, "log"),
            log,
            fs: Arc::clone(fs),
            config,
            size: AtomicU64::new(size),
            indexes: OnceLock::new(),
            sealed: AtomicBool::new(false),
            deleted: AtomicBool::new(false),
            index_sync_pending: AtomicBool::new(false),
            index_load: Mutex::new(()),
            reserved_to: AtomicU64::new(0),
            write_state: Mutex::new(WriteState::default()),
            suffix: "",
        }
    }

    fn open_writable_indexes(&self, offset_entries: usize, time_entries: usize) -> Result<Indexes> {
        Ok(Indexes {
            offset: IndexFile::open_writable(
                &*self.fs,
                &self.file_path(IndexKind::Offset.extension()),
                IndexKind::Offset,
                self.config.max_index_bytes,
                offset_entries,
            )?,
            time: IndexFile::open_writable(
                &*self.fs,
                &self.file_path(IndexKind::Time.extension()),
                IndexKind::Time,
                self.config.max_index_bytes,
                time_entries,
            )?,
        })
    }

    pub(crate) fn base_offset(&self) -> i64 {
        self.base_offset
    }

    pub(crate) fn log_path(&self) -> &Path {
        &self.log_path
    }

    pub(crate) fn log_file(&self) -> &Arc<dyn File> {
        &self.log
    }

    /// Bytes of whole batches in the `.log` file.
    pub(crate) fn size(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }

    pub(crate) fn is_sealed(&self) -> bool {
        self.sealed.load(Ordering::Acquire)
    }

    pub(crate) fn write_state(&self) -> WriteState {
        *self.write_state.lock()
    }

    pub(crate) fn set_write_state(&self, state: WriteState) {
        *self.write_state.lock() = state;
    }

    /// The indexes, loading (and if need be rebuilding) them on first use. Loads are
    /// serialised: a second reader waits for the first one's indexes instead of loading (or
    /// rebuilding) the same files again.
    pub(crate) fn indexes(&self) -> Result<&Arc<Indexes>> {
        if let Some(ix) = self.indexes.get() {
            return Ok(ix);
        }
        let _loading = self.index_load.lock();
        if let Some(ix) = self.indexes.get() {
            return Ok(ix);
        }
        if self.deleted.load(Ordering::Acquire) {
            return Err(Error::SegmentDeleted {
                path: self.log_path.clone(),
            });
        }
        let loaded = match self.load_sealed_indexes() {
            Ok(ix) => ix,
            Err(Error::CorruptIndex { .. }) | Err(Error::Io { .. }) => {
                let rebuilt = self.rebuild_indexes()?;
                maybe_append_time(
                    &rebuilt.indexes.time,
                    self.base_offset,
                    &rebuilt.write_state,
                );
                rebuilt.indexes.offset.trim()?;
                rebuilt.indexes.time.trim()?;
                self.index_sync_pending.store(true, Ordering::Release);
                rebuilt.indexes
            }
            Err(e) => return Err(e),
        };
        Ok(self.indexes.get_or_init(|| Arc::new(loaded)))
    }

    fn load_sealed_indexes(&self) -> Result<Indexes> {
        let size = self.size();
        let offset =
            IndexFile::open_sealed(&*self.fs, &self.file_path("index"), IndexKind::Offset)?;
        let time =
            IndexFile::open_sealed(&*self.fs, &self.file_path("timeindex"), IndexKind::Time)?;
        let max_rel = i64::from(u32::MAX);
        offset.sanity_check(size, max_rel)?;
        time.sanity_check(size, max_rel)?;
        if size > 0 && offset.len() == 0 && size > u64::from(self.config.index_interval_bytes) * 2 {
            // A segment this large always gets index entries; an empty index lost them.
            return Err(Error::CorruptIndex {
                path: offset.path().to_path_buf(),
                reason: "empty index for a large segment",
            });
        }
        self.check_last_entries(&offset, &time, size)?;
        Ok(Indexes { offset, time })
    }

    /// Opens an existing segment as the active one: its indexes writable and preallocated,
    /// cut back to `truncate_at` bytes when given (entries at or past it dropped, and time
    /// entries at or past `next_offset`), and its write state derived from what it holds.
    pub(crate) fn open_active(
        fs: &Arc<dyn FileSystem>,
        dir: &Path,
        base_offset: i64,
        config: IndexConfig,
        truncate_at: Option<(u64, i64)>,
    ) -> Result<Self> {
        let sealed = Segment::open(fs, dir, base_offset, config)?;
        let (mut off_n, mut time_n) = {
            let ix = sealed.indexes()?;
            (ix.offset.len(), ix.time.len())
        };
        let mut size = sealed.size();
        if let Some((position, next_offset)) = truncate_at {
            if position < size {
                sealed
                    .log
                    .set_len(position)
                    .map_err(|e| Error::io(&sealed.log_path, e))?;
                size = position;
            }
            let ix = sealed.indexes()?;
            off_n = (0..off_n)
                .take_while(|&i| u64::from(ix.offset.offset_entry(i).position) < position)
                .count();
            time_n = (0..time_n)
                .take_while(|&i| {
                    base_offset + i64::from(ix.time.time_entry(i).relative_offset) < next_offset
                })
                .count();
        }
        let log_path = sealed.log_path.clone();
        let log = Arc::clone(&sealed.log);
        drop(sealed);
        let log = Segment::appendable(fs, &log_path, log, config)?;
        let seg = Segment::new(fs, dir, base_offset, log, size, config);
        let ix = seg.open_writable_indexes(off_n, time_n)?;
        let mut state = WriteState::default();
        if let Some(t) = ix.time.last_time_entry() {
            state.max_timestamp = t.timestamp;
            state.offset_of_max_timestamp = base_offset + i64::from(t.relative_offset);
        }
        let last_index_pos = ix.offset.last_offset_entry().map(|e| u64::from(e.position));
        let _ = seg.indexes.set(Arc::new(ix));
        let mut first = true;
        seg.scan(last_index_pos.unwrap_or(0), size, |b| {
            if first && last_index_pos.is_none() {
                state.rolling_base_timestamp = Some(b.max_timestamp);
            }
            first = false;
            if b.max_timestamp > state.max_timestamp {
                state.max_timestamp = b.max_timestamp;
                state.offset_of_max_timestamp = b.last_offset;
            }
            ControlFlow::Continue(())
        })?;
        // Kafka's rule counts bytes from the last indexed batch's start.
        state.bytes_since_last_index_entry = size - last_index_pos.unwrap_or(0);
        if state.rolling_base_timestamp.is_none() {
            state.rolling_base_timestamp = seg.first_batch()?.map(|b| b.max_timestamp);
        }
        seg.set_write_state(state);
        Ok(seg)
    }

    /// Appends one batch: `header` (its first bytes, possibly rewritten) then `body`.
    pub(crate) fn append(&self, parts: &[&[u8]], batch: &BatchPos) -> Result<()> {
        self.append_batches(parts, std::slice::from_ref(batch))
    }

    /// Appends whole batches, their bytes back to back in `parts`, with one write (the
    /// cleaner writes its output this way).
    pub(crate) fn append_batches(&self, parts: &[&[u8]], batches: &[BatchPos]) -> Result<()> {
        if self.is_sealed() {
            // Its index files are trimmed below their mappings: never write them again.
            return Err(Error::SegmentSealed {
                path: self.log_path.clone(),
            });
        }
        let start = self.size();
        let len = parts.iter().map(|p| p.len() as u64).sum::<u64>();
        self.reserve(start, start.saturating_add(len));
        if let Err(e) = self.log.append(parts) {
            // Cut any partial write so the file holds only whole batches; if even that
            // fails, the error below still stops the append. The cut frees the blocks
            // reserved past it too.
            let _ = self.log.set_len(start);
            if self.reserved_to.load(Ordering::Relaxed) != NOT_RESERVING {
                self.reserved_to.store(0, Ordering::Relaxed);
            }
            return Err(Error::io(&self.log_path, e));
        }
        self.index_appended(start, batches)
    }

    /// Before the bytes `start..end` are appended, reserves disk blocks for them and past
    /// them when the reservation made so far does not cover them: past `start`, as many
    /// bytes as the segment holds, from
    /// `MIN_PREALLOCATE_BYTES` up to `preallocate_bytes`, so the reservation doubles while
    /// the segment grows and a segment that takes little reserves little. A file that
    /// refuses (no `fallocate`, a filesystem without it, no space) is not asked again; the
    /// append then goes on as it would have without (a hint failing is no append failing:
    /// the write reports its own error).
    fn reserve(&self, start: u64, end: u64) {
        let most = self.config.preallocate_bytes;
        let reserved = self.reserved_to.load(Ordering::Relaxed);
        if most == 0 || end <= reserved || reserved == NOT_RESERVING {
            return;
        }
        let step = start.clamp(u64::from(MIN_PREALLOCATE_BYTES).min(most), most);
        let from = reserved.max(start);
        let to = end.max(start.saturating_add(step));
        let next = match self.log.preallocate(from, to - from) {
            Ok(true) => to,
            Ok(false) | Err(_) => NOT_RESERVING,
        };
        self.reserved_to.store(next, Ordering::Relaxed);
    }

    /// Releases the disk blocks reserved past the end of the file (a cut to its own length
    /// frees them), once no more appends come. Best effort: blocks left reserved are only
    /// space, freed when the file is removed.
    fn release_reserved(&self) {
        let reserved = self.reserved_to.swap(0, Ordering::Relaxed);
        if reserved != NOT_RESERVING && reserved > self.size() {
            let _ = self.log.set_len(self.size());
        }
    }

    /// Takes in batches that are already in the file from byte `start` on (written by this
    /// segment's `append_batches`, or by a writer in another process that a read-only log
    /// follows): index entries, the largest timestamp, and the size readers may read.
    pub(crate) fn index_appended(&self, start: u64, batches: &[BatchPos]) -> Result<()> {
        let ix = self.indexes()?;
        let mut st = self.write_state.lock();
        let mut position = start;
        for batch in batches {
            if st.rolling_base_timestamp.is_none() {
                st.rolling_base_timestamp = Some(batch.max_timestamp);
            }
            if batch.max_timestamp > st.max_timestamp {
                st.max_timestamp = batch.max_timestamp;
                st.offset_of_max_timestamp = batch.last_offset;
            }
            if st.bytes_since_last_index_entry > u64::from(self.config.index_interval_bytes) {
                let relative = self.relative(batch.last_offset);
                ix.offset.push_offset(OffsetEntry {
                    relative_offset: relative,
                    position: position as u32,
                });
                maybe_append_time(&ix.time, self.base_offset, &st);
                st.bytes_since_last_index_entry = 0;
            }
            st.bytes_since_last_index_entry += batch.size;
            position += batch.size;
        }
        self.size.store(position, Ordering::Release);
        Ok(())
    }

    fn relative(&self, offset: i64) -> u32 {
        u32::try_from(offset.saturating_sub(self.base_offset)).unwrap_or(u32::MAX)
    }

    /// Whether the next index entries may not fit.
    pub(crate) fn indexes_full(&self) -> Result<bool> {
        let ix = self.indexes()?;
        // One time-index slot stays free for the entry `seal` adds.
        Ok(ix.offset.is_full() || ix.time.len() + 1 >= ix.time.capacity())
    }

    /// Seals the segment: a final time-index entry, then indexes trimmed to their entries.
    pub(crate) fn seal(&self) -> Result<()> {
        if self.is_sealed() {
            return Ok(());
        }
        // Bytes a direct-I/O segment still holds in memory go to the file now: a sealed
        // segment's file is whole (its memory freed), whoever reads it.
        self.log
            .write_back()
            .map_err(|e| Error::io(&self.log_path, e))?;
        let ix = self.indexes()?;
        let st = self.write_state();
        maybe_append_time(&ix.time, self.base_offset, &st);
        ix.offset.trim()?;
        ix.time.trim()?;
        self.release_reserved();
        self.index_sync_pending.store(true, Ordering::Release);
        self.sealed.store(true, Ordering::Release);
        Ok(())
    }

    /// Whether the index files changed (sealed, rebuilt) since they were last synced.
    pub(crate) fn index_sync_pending(&self) -> bool {
        self.index_sync_pending.load(Ordering::Acquire)
    }

    /// Marks the index files as written but not yet durable (rebuilt by recovery).
    pub(crate) fn set_index_sync_pending(&self) {
        self.index_sync_pending.store(true, Ordering::Release);
    }

    /// Makes the index files durable if they changed since they were last synced: through
    /// their maps when loaded, else by syncing the files (a segment recovery rebuilt and
    /// reopened). Files already removed have nothing to sync.
    pub(crate) fn sync_indexes(&self) -> Result<()> {
        if !self.index_sync_pending() {
            return Ok(());
        }
        if let Some(ix) = self.indexes.get() {
            ix.offset.sync()?;
            ix.time.sync()?;
        } else {
            for kind in [IndexKind::Offset, IndexKind::Time] {
                let path = self.file_path(kind.extension());
                match self.fs.open(&path, OpenMode::Read) {
                    Ok(file) => file.sync_data().map_err(|e| Error::io(&path, e))?,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::io(&path, e)),
                }
            }
        }
        self.index_sync_pending.store(false, Ordering::Release);
        Ok(())
    }

    /// fsyncs the `.log` file only (the indexes are rebuilt from it after a crash).
    pub(crate) fn sync_log(&self) -> Result<()> {
        self.log
            .sync_data()
            .map_err(|e| Error::io(&self.log_path, e))
    }

    /// Flushes the log file and the index maps.
    pub(crate) fn flush(&self) -> Result<()> {
        self.log
            .sync_data()
            .map_err(|e| Error::io(&self.log_path, e))?;
        if self.index_sync_pending() {
            return self.sync_indexes();
        }
        if let Some(ix) = self.indexes.get() {
            ix.offset.flush()?;
            ix.time.flush()?;
        }
        Ok(())
    }

    /// Removes the segment's files.
    pub(crate) fn delete_files(&self) -> Result<()> {
        self.deleted.store(true, Ordering::Release);
        for ext in ["log", "index", "timeindex", "txnindex"] {
            let p = self.file_path(ext);
            match self.fs.remove(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(p, e)),
            }
        }
        Ok(())
    }

    /// The largest timestamp in the segment (from the time index, or the write state).
    pub(crate) fn max_timestamp(&self) -> Result<i64> {
        if !self.is_sealed() {
            return Ok(self.write_state().max_timestamp);
        }
        Ok(self
            .indexes()?
            .time
            .last_time_entry()
            .map_or(NO_TIMESTAMP, |e| e.timestamp))
    }

    /// Reads `buf.len()` bytes at `position`.
    pub(crate) fn read_exact(&self, buf: &mut [u8], position: u64) -> Result<()> {
        self.log
            .read_exact_at(buf, position)
            .map_err(|e| Error::io(&self.log_path, e))
    }
}

fn maybe_append_time(time: &IndexFile, base_offset: i64, st: &WriteState) {
    if st.max_timestamp == NO_TIMESTAMP && st.offset_of_max_timestamp < 0 {
        return;
    }
    let grew = time
        .last_time_entry()
        .is_none_or(|last| st.max_timestamp > last.timestamp);
    if grew {
        // A batch from disk may claim any offset (a clean shutdown's last segment is not
        // scanned for offsets): one outside the segment's range is indexed at its base.
        let relative = st
            .offset_of_max_timestamp
            .checked_sub(base_offset)
            .and_then(|d| u32::try_from(d).ok())
            .unwrap_or(0);
        time.push_time(TimeEntry {
            timestamp: st.max_timestamp,
            relative_offset: relative,
        });
    }
}
