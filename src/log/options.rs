//! How a log is opened: for writing (creating the directory or not) or read-only.

use std::path::Path;
use std::sync::Arc;

use super::{Log, RecoveryInfo};
use crate::config::LogConfig;
use crate::error::{Error, Result};
use crate::io::{FileSystem, RealFs};
use crate::record::Batch;
use crate::segment::parse_segment_file_name;

/// Options for opening a [`Log`], in the manner of `std::fs::OpenOptions`.
///
/// [`Log::open`] is `LogOptions::new(config).create(true)`: it opens a partition or starts a
/// new one, as every existing caller expects. A tool pointed at a directory by a user wants
/// [`Log::open_existing`] (a directory that is not a partition is refused instead of being
/// turned into one) or [`Log::open_read_only`].
///
/// ```
/// use streamlog::{log::LogOptions, Error, Log, LogConfig};
///
/// let dir = tempfile::tempdir()?;
/// // Not a partition yet: refused unless asked to create it.
/// let refused = LogOptions::new(LogConfig::default()).open(dir.path());
/// assert!(matches!(refused, Err(Error::NotAPartition { .. })));
/// let (log, _) = LogOptions::new(LogConfig::default()).create(true).open(dir.path())?;
/// log.close()?;
/// // A read-only open never writes and takes no lock.
/// let (reader, recovery) = LogOptions::new(LogConfig::default()).read_only(true).open(dir.path())?;
/// assert!(reader.is_read_only() && recovery.clean_shutdown);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct LogOptions {
    pub(crate) config: LogConfig,
    pub(crate) fs: Arc<dyn FileSystem>,
    pub(crate) create: bool,
    pub(crate) read_only: bool,
    /// Whether the directory's own lock is taken (a `Storage` holds its data directory's).
    pub(crate) lock: bool,
    /// `None`: the log keeps its high watermark in its own `replication-offset-checkpoint`;
    /// `Some(hw)`: a `Storage` keeps it (in its data directory's) and hands it over here.
    pub(crate) parent_high_watermark: Option<Option<i64>>,
}

impl LogOptions {
    /// Opens an existing partition for writing, on the real filesystem.
    pub fn new(config: LogConfig) -> Self {
        LogOptions {
            config,
            fs: RealFs::shared(),
            create: false,
            read_only: false,
            lock: true,
            parent_high_watermark: None,
        }
    }

    /// Whether to create the directory and a first segment when it holds no partition.
    /// Ignored by a read-only open, which never creates anything.
    pub fn create(mut self, create: bool) -> Self {
        self.create = create;
        self
    }

    /// Opens without ever writing, truncating or rebuilding anything on disk and without the
    /// directory's lock: a live writer's log (in another process) or a damaged one is read
    /// as it stands. What recovery would change (a torn tail cut, an index rebuilt) is done
    /// in this process's memory only. Appends and other changes fail with
    /// [`Error::ReadOnlyLog`]. The log end offset is the one found at open; see
    /// [`Log::refresh`] to follow a writer.
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// For a `Storage`, which keeps its partitions' high watermarks in its data directory's
    /// `replication-offset-checkpoint`: the log starts from `high_watermark` (the checkpoint's
    /// entry, if any) and writes no file of its own for it.
    pub(crate) fn high_watermark_from_parent(mut self, high_watermark: Option<i64>) -> Self {
        self.parent_high_watermark = Some(high_watermark);
        self
    }

    /// For a `Storage`, which holds its data directory's lock: the partition's own is not
    /// taken.
    pub(crate) fn locked_by_parent(mut self) -> Self {
        self.lock = false;
        self
    }

    /// The filesystem to open through (a [`SimFs`](crate::io::SimFs) in tests).
    pub fn fs(mut self, fs: Arc<dyn FileSystem>) -> Self {
        self.fs = fs;
        self
    }

    /// Opens the log in `dir`, returning what recovery did.
    pub fn open(self, dir: impl AsRef<Path>) -> Result<(Log, RecoveryInfo)> {
        self.open_with(dir.as_ref(), &mut |_| Ok(()))
    }

    /// [`LogOptions::open`], with `on_batch` seeing every batch recovery validates at or
    /// above the recovery point (see [`Log::open_with`]).
    pub fn open_with(
        self,
        dir: &Path,
        on_batch: &mut dyn FnMut(&Batch<'_>) -> Result<()>,
    ) -> Result<(Log, RecoveryInfo)> {
        Log::open_inner(self, dir, on_batch)
    }
}

impl Log {
    /// Opens the partition in `dir`, refusing a directory that is not one
    /// ([`Error::NotAPartition`]) instead of creating it.
    pub fn open_existing(dir: impl AsRef<Path>, config: LogConfig) -> Result<Log> {
        LogOptions::new(config).open(dir).map(|(l, _)| l)
    }

    /// Opens the partition in `dir` read-only (see [`LogOptions::read_only`]).
    pub fn open_read_only(dir: impl AsRef<Path>, config: LogConfig) -> Result<Log> {
        LogOptions::new(config)
            .read_only(true)
            .open(dir)
            .map(|(l, _)| l)
    }

    /// Whether this log was opened read-only.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// What opening this log did: whether it was cleanly closed, and what recovery scanned,
    /// cut and deleted.
    pub fn recovery_info(&self) -> &RecoveryInfo {
        &self.recovery
    }
}

/// Fails unless `dir` holds at least one segment (`.log`) file.
pub(crate) fn require_partition(fs: &dyn FileSystem, dir: &Path) -> Result<()> {
    let listing = match fs.list(dir) {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::NotAPartition {
                dir: dir.to_path_buf(),
                reason: "no such directory",
            })
        }
        Err(e) => return Err(Error::io(dir, e)),
    };
    if listing
        .iter()
        .any(|p| parse_segment_file_name(p, "log").is_some())
    {
        Ok(())
    } else {
        Err(Error::NotAPartition {
            dir: dir.to_path_buf(),
            reason: "it holds no segment (.log) files",
        })
    }
}
