//! Opening a log: finding its segments, loading or rebuilding indexes, recovering the tail.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::sync::atomic::Ordering;

use super::checkpoint::{RECOVERY_POINT_CHECKPOINT, REPLICATION_OFFSET_CHECKPOINT};
use super::{Durability, LocalLog, Log, Writer, CLEAN_SHUTDOWN_FILE, LOG_START_OFFSET_CHECKPOINT};
use crate::config::{HighWatermarkPolicy, LogConfig};
use crate::error::{Error, Result};
use crate::io::{FileSystem, RealFs};
use crate::record::Batch;
use crate::segment::{check_segment_base, parse_segment_file_name, Segment};

/// What opening the log did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecoveryInfo {
    /// Whether the log had been closed cleanly (indexes loaded without scanning).
    pub clean_shutdown: bool,
    /// Segments whose batches were scanned and indexes rebuilt.
    pub segments_recovered: usize,
    /// Segments deleted because they followed the first invalid byte.
    pub segments_deleted: usize,
    /// The offset below which everything was known durable when the log opened.
    pub recovery_point: i64,
    /// Bytes cut from torn or corrupt tails.
    pub bytes_truncated: u64,
    /// Where the replay that rebuilt the producer state began: the offset of the snapshot
    /// it started from, or the log start offset when no usable snapshot (or `.txnindex`)
    /// was found. Equal to the log end offset when nothing needed replaying.
    pub producer_state_replayed_from: i64,
    /// Bytes of `.log` files the recovery scan read (validated and indexed): on an unclean
    /// open, from the recovery point's position inside its segment when that position was
    /// recorded and checks out, else from that segment's first byte.
    pub bytes_scanned: u64,
    /// Time the open took.
    pub duration: Duration,
    /// What the recovery scan saw of producer batches.
    pub(crate) scan: ProducerScan,
}

/// The part of the log the recovery scan read, and the first batch with a producer id in it:
/// rebuilding the producer state then need not read again what holds no producer batch.
pub(crate) type ProducerScan = crate::producer::ScannedRange;

impl Log {
    /// Opens (creating if needed) the log in `dir` on the real filesystem.
    pub fn open(dir: impl AsRef<Path>, config: LogConfig) -> Result<Log> {
        Log::open_with(RealFs::shared(), dir.as_ref(), config, &mut |_| Ok(())).map(|(l, _)| l)
    }

    /// Opens the log in `dir` through `fs`. After an unclean shutdown every segment from
    /// the one holding the recovery point on is scanned, its batches validated and its
    /// indexes rebuilt; `on_batch` sees every valid batch at or above the recovery point, in
    /// order (the hook that producer state and leader-epoch caches are rebuilt from).
    /// Returns what recovery did.
    pub fn open_with(
        fs: Arc<dyn FileSystem>,
        dir: &Path,
        config: LogConfig,
        on_batch: &mut dyn FnMut(&Batch<'_>) -> Result<()>,
    ) -> Result<(Log, RecoveryInfo)> {
        super::LogOptions::new(config)
            .fs(fs)
            .create(true)
            .open_with(dir, on_batch)
    }

    pub(crate) fn open_inner(
        options: super::LogOptions,
        dir: &Path,
        on_batch: &mut dyn FnMut(&Batch<'_>) -> Result<()>,
    ) -> Result<(Log, RecoveryInfo)> {
        let started = Instant::now();
        let super::LogOptions {
            config,
            fs,
            create,
            read_only,
            lock,
            parent_high_watermark,
        } = options;
        config.validate()?;
        let overlay = read_only.then(|| Arc::new(crate::io::ReadOnlyFs::new(Arc::clone(&fs))));
        let (fs, dir_lock) = if let Some(overlay) = &overlay {
            // Everything the open below would change stays in memory.
            let fs: Arc<dyn FileSystem> = Arc::clone(overlay) as Arc<dyn FileSystem>;
            super::options::require_partition(&*fs, dir)?;
            (fs, None)
        } else {
            if lock {
                refuse_if_storage_holds_parent(&*fs, dir)?;
            }
            if create {
                fs.create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
            } else {
                // Checked before the lock, whose file would be the first thing written.
                super::options::require_partition(&*fs, dir)?;
            }
            // Before anything on disk is looked at: a second writer (or a recovery) must
            // never run under a live one.
            let lock = if lock {
                Some(crate::io::lock_dir(&*fs, dir)?)
            } else {
                None
            };
            (fs, lock)
        };
        let index_config = LocalLog::index_config(&config);
        let mut listing = fs.list(dir).map_err(|e| Error::io(dir, e))?;
        if listing
            .iter()
            .any(|p| super::cleaner::swap::is_cleaner_file(p))
        {
            // A compaction interrupted by a crash: finish its swap or drop its output.
            super::cleaner::swap::recover(&fs, dir, index_config)?;
            listing = fs.list(dir).map_err(|e| Error::io(dir, e))?;
        }
        let mut bases = Vec::new();
        let mut index_files = Vec::new();
        for path in listing {
            if let Some(base) = parse_segment_file_name(&path, "log") {
                check_segment_base(&path, base)?;
                bases.push(base);
            } else if parse_segment_file_name(&path, "index").is_some()
                || parse_segment_file_name(&path, "timeindex").is_some()
                || parse_segment_file_name(&path, "txnindex").is_some()
            {
                index_files.push(path);
            } else if path.extension().is_some_and(|e| e == "tmp") {
                // An interrupted atomic write: the real file is intact.
                fs.remove(&path).map_err(|e| Error::io(&path, e))?;
            }
        }
        bases.sort_unstable();
        for path in index_files {
            let orphan = ["index", "timeindex", "txnindex"]
                .iter()
                .filter_map(|ext| parse_segment_file_name(&path, ext))
                .all(|b| bases.binary_search(&b).is_err());
            if orphan {
                fs.remove(&path).map_err(|e| Error::io(&path, e))?;
            }
        }
        let marker = dir.join(CLEAN_SHUTDOWN_FILE);
        let clean = fs.exists(&marker);
        let own_high_watermark = parent_high_watermark.is_none();
        let checkpoints = Checkpoints {
            log_start: super::checkpoint::read(&*fs, dir, LOG_START_OFFSET_CHECKPOINT)?,
            recovery_point: super::checkpoint::read(&*fs, dir, RECOVERY_POINT_CHECKPOINT)?,
            high_watermark: match parent_high_watermark {
                Some(hw) => hw,
                None => super::checkpoint::read(&*fs, dir, REPLICATION_OFFSET_CHECKPOINT)?,
            },
        };
        let checkpoint = checkpoints.log_start;
        let mut info = RecoveryInfo {
            clean_shutdown: clean,
            ..RecoveryInfo::default()
        };

        let mut segments = Vec::with_capacity(bases.len().max(1));
        // Each of the three ways in (empty directory, clean shutdown, recovery) only works out
        // the segments, the log end and the recovery point; they all finish the same way.
        let log_end_offset = match bases.last() {
            None => {
                let start = checkpoint.unwrap_or(0).max(0);
                let seg = Segment::create(&fs, dir, start, index_config)?;
                segments.push(Arc::new(seg));
                fs.sync_dir(dir).map_err(|e| Error::io(dir, e))?;
                info.recovery_point = start;
                start
            }
            Some(&last_base) if clean => {
                for &base in bases.iter().take(bases.len() - 1) {
                    segments.push(Arc::new(Segment::open(&fs, dir, base, index_config)?));
                }
                let active = Segment::open_active(&fs, dir, last_base, index_config, None)?;
                let log_end_offset = active_next_offset(&active)?;
                segments.push(Arc::new(active));
                info.recovery_point = log_end_offset;
                log_end_offset
            }
            Some(_) => {
                let recovery_point = checkpoints.recovery_point.unwrap_or(0);
                // Where inside its segment the recovery point lies, if recorded with it.
                let resume = super::checkpoint::read_position(&*fs, dir)
                    .filter(|p| checkpoints.recovery_point == Some(p.recovery_point));
                let log_end_offset = recover_segments(
                    &fs,
                    dir,
                    &config,
                    &bases,
                    recovery_point,
                    resume,
                    &mut segments,
                    &mut info,
                    on_batch,
                )?;
                // What survived recovery is on disk as it was found; only what is flushed
                // from here on counts as durable.
                info.recovery_point = recovery_point.min(log_end_offset);
                log_end_offset
            }
        };
        let (mut log, info) = Log::finish_open(
            fs,
            dir,
            config,
            segments,
            &checkpoints,
            log_end_offset,
            info,
            started,
        )?;
        *log.dir_lock.lock() = dir_lock;
        log.own_high_watermark_file = own_high_watermark && !read_only;
        log.read_only = read_only;
        log.overlay = overlay;
        log.close_on_drop = !read_only;
        log.load_leader_epochs()?;
        log.recovery = info.clone();
        Ok((log, info))
    }

    #[allow(clippy::too_many_arguments)]
    fn finish_open(
        fs: Arc<dyn FileSystem>,
        dir: &Path,
        config: LogConfig,
        segments: Vec<Arc<Segment>>,
        checkpoints: &Checkpoints,
        log_end_offset: i64,
        mut info: RecoveryInfo,
        started: Instant,
    ) -> Result<(Log, RecoveryInfo)> {
        let first_base = segments.first().map_or(0, |s| s.base_offset());
        let log_start_offset = checkpoints
            .log_start
            .unwrap_or(first_base)
            .max(first_base)
            .min(log_end_offset);
        if checkpoints.log_start.is_some_and(|c| c > log_start_offset) {
            // A crash lost the offsets up to the checkpointed log start: the log now starts
            // where it ends. Left as it is, the checkpoint would move the start forward again
            // at a later open, over records appended since.
            super::checkpoint::write(&*fs, dir, LOG_START_OFFSET_CHECKPOINT, log_start_offset)?;
        }
        let marker = dir.join(CLEAN_SHUTDOWN_FILE);
        if fs.exists(&marker) {
            // From here on a crash must be treated as unclean.
            fs.remove(&marker).map_err(|e| Error::io(&marker, e))?;
            fs.sync_dir(dir).map_err(|e| Error::io(dir, e))?;
        }
        // Under `Replicated` the checkpoint is where the high watermark was; the others derive
        // it (the log clamps it to what it holds).
        let high_watermark = match config.high_watermark_policy {
            HighWatermarkPolicy::LogEnd => log_end_offset,
            HighWatermarkPolicy::Flushed => info.recovery_point,
            _ => checkpoints.high_watermark.unwrap_or(log_start_offset),
        };
        let writer = Writer {
            segments,
            log_start_offset,
            log_end_offset,
            leader_epoch: 0,
            generation: 0,
            active_since_ms: config.clock.now_ms(),
        };
        let now_ms = config.clock.now_ms();
        let local = LocalLog::new(
            dir.to_path_buf(),
            config,
            Arc::clone(&fs),
            writer,
            high_watermark,
        );
        let durability = Durability::new(
            dir.to_path_buf(),
            fs,
            info.recovery_point,
            checkpoints.recovery_point,
            now_ms,
        );
        let (log, replayed_from) = Log::assemble(local, durability, info.scan)?;
        log.high_watermark_checkpointed
            .store(checkpoints.high_watermark.unwrap_or(-1), Ordering::Relaxed);
        log.forget_replicated_transactions();
        info.producer_state_replayed_from = replayed_from;
        info.duration = started.elapsed();
        Ok((log, info))
    }
}

/// A partition of a data directory that a `Storage` has open (it holds the data directory's
/// lock, not each partition's) is that storage's: refused, as a locked partition is. The
/// parent's lock is tried only where its lock file exists, and let go at once.
fn refuse_if_storage_holds_parent(fs: &dyn FileSystem, dir: &Path) -> Result<()> {
    let Some(parent) = dir.parent() else {
        return Ok(());
    };
    if fs.exists(&crate::io::lock_path(parent)) {
        drop(crate::io::lock_dir(fs, parent)?);
    }
    Ok(())
}

/// The checkpoint files found at open.
#[derive(Debug, Clone, Copy)]
struct Checkpoints {
    log_start: Option<i64>,
    recovery_point: Option<i64>,
    /// The replication-offset checkpoint's entry (or the one a `Storage` handed over).
    high_watermark: Option<i64>,
}

/// Scans every segment from the one holding the recovery point: validates each batch,
/// rebuilds the indexes, cuts at the first invalid byte and deletes the segments after it.
/// Returns the log end offset.
#[allow(clippy::too_many_arguments)]
fn recover_segments(
    fs: &Arc<dyn FileSystem>,
    dir: &Path,
    config: &LogConfig,
    bases: &[i64],
    recovery_point: i64,
    resume: Option<super::checkpoint::RecoveryPosition>,
    segments: &mut Vec<Arc<Segment>>,
    info: &mut RecoveryInfo,
    on_batch: &mut dyn FnMut(&Batch<'_>) -> Result<()>,
) -> Result<i64> {
    let index_config = LocalLog::index_config(config);
    // The segment holding the recovery point, and everything after it, may hold unflushed
    // bytes; Kafka trusts the segments below it.
    let first_unsafe = bases
        .partition_point(|&b| b <= recovery_point)
        .saturating_sub(1);
    let mut next_offset: Option<i64> = None;
    let mut cut = false;
    let mut first_producer_batch: Option<i64> = None;
    for (i, &base) in bases.iter().enumerate() {
        if cut {
            let seg = Segment::open(fs, dir, base, index_config)?;
            seg.delete_files()?;
            info.segments_deleted += 1;
            continue;
        }
        if i < first_unsafe {
            segments.push(Arc::new(Segment::open(fs, dir, base, index_config)?));
            continue;
        }
        let seg = Segment::open(fs, dir, base, index_config)?;
        if next_offset.is_some_and(|n| base < n) {
            // Overlaps the previous segment's batches: nothing in it can be trusted.
            check_damage(config, seg.log_path(), 0, base, recovery_point)?;
            seg.delete_files()?;
            info.segments_deleted += 1;
            cut = true;
            continue;
        }
        let file_len = seg
            .log_file()
            .len()
            .map_err(|e| Error::io(seg.log_path(), e))?;
        let mut scan_batch = |b: &Batch<'_>| {
            if b.producer_id() >= 0 {
                first_producer_batch.get_or_insert(b.base_offset());
            }
            if b.base_offset() < recovery_point {
                return Ok(());
            }
            on_batch(b)
        };
        // The segment holding the recovery point is durable up to it: when where it lies
        // was recorded and checks out, scan only what follows.
        let resumed = match resume.filter(|p| i == first_unsafe && p.segment_base == base) {
            Some(p) => seg.recover_from(&p.at, &mut scan_batch)?,
            None => None,
        };
        let rec = match resumed {
            Some(rec) => {
                info.scan.scanned_from.get_or_insert(recovery_point);
                rec
            }
            None => {
                info.scan.scanned_from.get_or_insert(base);
                seg.recover(&mut scan_batch)?
            }
        };
        info.segments_recovered += 1;
        info.bytes_scanned += rec.scanned_bytes;
        if rec.truncated_bytes > 0 {
            let damaged_at = rec.next_offset.unwrap_or(base);
            check_damage(
                config,
                seg.log_path(),
                file_len - rec.truncated_bytes,
                damaged_at,
                recovery_point,
            )?;
            seg.cut_invalid_tail(&rec)?;
            info.bytes_truncated += rec.truncated_bytes;
            cut = true;
        }
        // Segments are rolled where the log ends, so the next one must start exactly where
        // this one's batches end. Each file's unflushed tail survives a crash on its own: a
        // tail lost at a batch boundary, with a later segment kept, would leave a hole that
        // recovery must not paper over. Cut there (everything after was unflushed).
        let this_next = rec.next_offset.unwrap_or(base);
        if !cut {
            if let Some(&next_base) = bases.get(i + 1) {
                if next_base != this_next {
                    check_damage(
                        config,
                        seg.log_path(),
                        rec.valid_bytes(),
                        this_next,
                        recovery_point,
                    )?;
                    cut = true;
                }
            }
        }
        // Trimmed, the rebuilt indexes load as a clean segment's would.
        super::super::segment::finish_rebuilt_indexes(&rec)?;
        next_offset = Some(
            rec.next_offset
                .unwrap_or(base)
                .max(next_offset.unwrap_or(base)),
        );
        drop(rec);
        drop(seg);
        if cut || i + 1 == bases.len() {
            segments.push(Arc::new(Segment::open_active(
                fs,
                dir,
                base,
                index_config,
                None,
            )?));
        } else {
            let seg = Segment::open(fs, dir, base, index_config)?;
            // Rebuilt and trimmed, but not synced: the first flush (or close) makes them
            // durable before anything vouches for them.
            seg.set_index_sync_pending();
            segments.push(Arc::new(seg));
        }
    }
    info.scan.first_producer_batch = first_producer_batch;
    if !segments.is_empty() {
        fs.sync_dir(dir).map_err(|e| Error::io(dir, e))?;
    }
    let log_end_offset = match segments.last() {
        Some(last) if next_offset.is_none() => active_next_offset(last)?,
        _ => next_offset.unwrap_or(0),
    };
    if log_end_offset < recovery_point {
        // Offsets acknowledged durable are gone (the files end early).
        let path = segments
            .last()
            .map_or_else(|| dir.to_path_buf(), |s| s.log_path().to_path_buf());
        let size = segments.last().map_or(0, |s| s.size());
        check_damage(config, &path, size, log_end_offset, recovery_point)?;
    }
    Ok(log_end_offset)
}

/// Damage at offsets below the recovery point was acknowledged as durable: an error unless
/// the configuration says to truncate it.
fn check_damage(
    config: &LogConfig,
    path: &Path,
    position: u64,
    offset: i64,
    recovery_point: i64,
) -> Result<()> {
    if offset < recovery_point && !config.truncate_damage_below_recovery_point {
        return Err(Error::DamageBelowRecoveryPoint {
            path: path.to_path_buf(),
            position,
            offset,
            recovery_point,
        });
    }
    Ok(())
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
