//! Opening a log: finding its segments, loading or rebuilding indexes, recovering the tail.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};

use super::{Log, View, Writer, CLEAN_SHUTDOWN_FILE, LOG_START_OFFSET_CHECKPOINT};
use crate::config::LogConfig;
use crate::error::{Error, Result};
use crate::io::{FileSystem, RealFs};
use crate::record::Batch;
use crate::segment::{parse_segment_file_name, Segment};

/// What opening the log did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecoveryInfo {
    /// Whether the log had been closed cleanly (indexes loaded without scanning).
    pub clean_shutdown: bool,
    /// Segments whose batches were scanned and indexes rebuilt.
    pub segments_recovered: usize,
    /// Bytes cut from torn or corrupt tails.
    pub bytes_truncated: u64,
    /// Time the open took.
    pub duration: Duration,
}

impl Log {
    /// Opens (creating if needed) the log in `dir` on the real filesystem.
    pub fn open(dir: impl AsRef<Path>, config: LogConfig) -> Result<Log> {
        Log::open_with(RealFs::shared(), dir.as_ref(), config, &mut |_| Ok(())).map(|(l, _)| l)
    }

    /// Opens the log in `dir` through `fs`. After an unclean shutdown the tail segment is
    /// scanned, and `on_batch` sees every valid batch found there, in order (the hook that
    /// producer state and leader-epoch caches are rebuilt from). Returns what recovery did.
    pub fn open_with(
        fs: Arc<dyn FileSystem>,
        dir: &Path,
        config: LogConfig,
        on_batch: &mut dyn FnMut(&Batch<'_>) -> Result<()>,
    ) -> Result<(Log, RecoveryInfo)> {
        let started = Instant::now();
        fs.create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let index_config = Log::index_config(&config);
        let mut bases = Vec::new();
        let mut index_files = Vec::new();
        for path in fs.list(dir).map_err(|e| Error::io(dir, e))? {
            if let Some(base) = parse_segment_file_name(&path, "log") {
                bases.push(base);
            } else if parse_segment_file_name(&path, "index").is_some()
                || parse_segment_file_name(&path, "timeindex").is_some()
            {
                index_files.push(path);
            } else if path.extension().is_some_and(|e| e == "tmp") {
                // An interrupted atomic write: the real file is intact.
                fs.remove(&path).map_err(|e| Error::io(&path, e))?;
            }
        }
        bases.sort_unstable();
        for path in index_files {
            let orphan = ["index", "timeindex"]
                .iter()
                .filter_map(|ext| parse_segment_file_name(&path, ext))
                .all(|b| bases.binary_search(&b).is_err());
            if orphan {
                fs.remove(&path).map_err(|e| Error::io(&path, e))?;
            }
        }
        let marker = dir.join(CLEAN_SHUTDOWN_FILE);
        let clean = fs.exists(&marker);
        let checkpoint = read_log_start_checkpoint(&*fs, dir)?;
        let mut info = RecoveryInfo {
            clean_shutdown: clean,
            ..RecoveryInfo::default()
        };

        let mut segments = Vec::with_capacity(bases.len().max(1));
        let Some((&last_base, older)) = bases.split_last() else {
            let start = checkpoint.unwrap_or(0).max(0);
            let seg = Segment::create(&fs, dir, start, index_config)?;
            segments.push(Arc::new(seg));
            fs.sync_dir(dir).map_err(|e| Error::io(dir, e))?;
            return Log::finish_open(fs, dir, config, segments, checkpoint, start, info, started);
        };
        for &base in older {
            segments.push(Arc::new(Segment::open(&fs, dir, base, index_config)?));
        }
        let log_end_offset;
        if clean {
            let active = Segment::open_active(&fs, dir, last_base, index_config, None)?;
            log_end_offset = active_next_offset(&active)?;
            segments.push(Arc::new(active));
        } else {
            let seg = Segment::open(&fs, dir, last_base, index_config)?;
            let rec = seg.recover(on_batch)?;
            info.segments_recovered += 1;
            info.bytes_truncated += rec.truncated_bytes;
            log_end_offset = rec.next_offset.unwrap_or(last_base);
            // Trimmed, the rebuilt indexes load as a clean segment's would.
            rec.indexes.offset.trim()?;
            rec.indexes.time.trim()?;
            drop(rec);
            // Reopen as active over the rebuilt (writable) indexes.
            let active = Segment::open_active(&fs, dir, last_base, index_config, None)?;
            segments.push(Arc::new(active));
        }
        Log::finish_open(
            fs,
            dir,
            config,
            segments,
            checkpoint,
            log_end_offset,
            info,
            started,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn finish_open(
        fs: Arc<dyn FileSystem>,
        dir: &Path,
        config: LogConfig,
        segments: Vec<Arc<Segment>>,
        checkpoint: Option<i64>,
        log_end_offset: i64,
        mut info: RecoveryInfo,
        started: Instant,
    ) -> Result<(Log, RecoveryInfo)> {
        let first_base = segments.first().map_or(0, |s| s.base_offset());
        let log_start_offset = checkpoint
            .unwrap_or(first_base)
            .max(first_base)
            .min(log_end_offset);
        let marker = dir.join(CLEAN_SHUTDOWN_FILE);
        if fs.exists(&marker) {
            // From here on a crash must be treated as unclean.
            fs.remove(&marker).map_err(|e| Error::io(&marker, e))?;
            fs.sync_dir(dir).map_err(|e| Error::io(dir, e))?;
        }
        let writer = Writer {
            segments,
            log_start_offset,
            log_end_offset,
            leader_epoch: 0,
            generation: 0,
            closed: false,
        };
        let view = View {
            segments: Arc::from([]),
            log_start_offset,
            log_end_offset,
            active_size: 0,
            generation: 0,
        };
        let log = Log {
            dir: dir.to_path_buf(),
            config,
            fs,
            writer: Mutex::new(writer),
            view: RwLock::new(Arc::new(view)),
        };
        log.publish(&log.writer.lock());
        info.duration = started.elapsed();
        Ok((log, info))
    }
}

/// The offset after the last batch of an active segment opened cleanly.
fn active_next_offset(seg: &Segment) -> Result<i64> {
    let from = seg
        .indexes()?
        .offset
        .last_offset_entry()
        .map_or(0, |e| u64::from(e.position));
    let mut next = seg.base_offset();
    seg.scan(from, seg.size(), |b| {
        next = b.last_offset + 1;
        std::ops::ControlFlow::Continue(())
    })?;
    Ok(next)
}

/// Reads the log start offset checkpoint (Kafka's format: version, count, entries).
fn read_log_start_checkpoint(fs: &dyn FileSystem, dir: &Path) -> Result<Option<i64>> {
    let path = dir.join(LOG_START_OFFSET_CHECKPOINT);
    if !fs.exists(&path) {
        return Ok(None);
    }
    let bytes = crate::io::read_file(fs, &path)?;
    let bad = || Error::CorruptCheckpoint { path: path.clone() };
    let text = std::str::from_utf8(&bytes).map_err(|_| bad())?;
    let mut lines = text.lines();
    if lines.next() != Some("0") {
        return Err(bad());
    }
    let count: usize = lines.next().and_then(|l| l.parse().ok()).ok_or_else(bad)?;
    let mut offset = None;
    for _ in 0..count {
        let line = lines.next().ok_or_else(bad)?;
        let value = line
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse::<i64>().ok())
            .ok_or_else(bad)?;
        offset = Some(value);
    }
    Ok(offset)
}
