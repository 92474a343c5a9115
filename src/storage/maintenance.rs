//! Maintenance of every partition: retention, compaction, and flush.ms for open logs.
//!
//! Open logs are maintained directly. A closed log carries the [`Summary`] taken when it was
//! closed; from it maintenance decides without opening anything whether retention could
//! delete a segment, so a pass over thousands of idle partitions touches no file.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use super::Storage;
use crate::config::LogConfig;
use crate::error::{Error, Result};
use crate::log::{BackgroundThread, Cleaner, CleanerConfig, Log};
use crate::record::NO_TIMESTAMP;

/// What a closed partition looked like when it was closed: enough to decide whether
/// retention has anything to do without opening it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Summary {
    pub log_start_offset: i64,
    pub log_end_offset: i64,
    pub size_bytes: u64,
    pub segments: u32,
    /// Bytes of the first segment.
    pub first_segment_bytes: u64,
    /// Largest timestamp of the first segment, when it is not the active one.
    pub first_segment_max_timestamp: i64,
    /// Base offset of the second segment (`i64::MAX` with a single segment).
    pub second_segment_base: i64,
    /// Compacted topics: bytes of sealed segments already cleaned.
    pub clean_bytes: u64,
    /// Compacted topics: bytes of sealed segments not yet cleaned (whatever their age).
    pub dirty_bytes: u64,
}

impl Summary {
    /// Summarises an open log (the caller is about to close it, so nothing changes it).
    pub(crate) fn of(log: &Log) -> Result<Summary> {
        let segments = log.segments_info()?;
        let (first_bytes, first_max_ts, second_base) = match (segments.first(), segments.get(1)) {
            (Some(first), Some(second)) => (
                first.size_bytes,
                first.largest_timestamp,
                second.base_offset,
            ),
            (Some(first), None) => (first.size_bytes, NO_TIMESTAMP, i64::MAX),
            _ => (0, NO_TIMESTAMP, i64::MAX),
        };
        // Cleanable bytes as they will be once `min.compaction.lag.ms` has passed: nothing
        // changes them while the log is closed but time.
        let (clean_bytes, dirty_bytes) = if log.config().cleanup_policy.compacts() {
            let info = log.cleanable(log.last_stable_offset(), i64::MAX)?;
            (info.clean_bytes, info.cleanable_bytes)
        } else {
            (0, 0)
        };
        Ok(Summary {
            clean_bytes,
            dirty_bytes,
            log_start_offset: log.log_start_offset(),
            log_end_offset: log.log_end_offset(),
            size_bytes: segments.iter().map(|s| s.size_bytes).sum(),
            segments: u32::try_from(segments.len()).unwrap_or(u32::MAX),
            first_segment_bytes: first_bytes,
            first_segment_max_timestamp: first_max_ts,
            second_segment_base: second_base,
        })
    }

    /// Whether [`Log::delete_retention_breached`] could delete the first segment at `now_ms`,
    /// by its rules: below the log start offset; over `retention.bytes`; older than
    /// `retention.ms`. A largest timestamp that is missing or in the future counts as due:
    /// the log then judges the segment's age from file times and later segments, which the
    /// summary does not hold.
    pub(crate) fn retention_due(&self, config: &LogConfig, now_ms: i64) -> bool {
        if self.segments < 2 {
            return false;
        }
        if self.second_segment_base <= self.log_start_offset {
            return true;
        }
        if !config.cleanup_policy.deletes() {
            return false;
        }
        let by_size = config.retention_bytes.is_some_and(|limit| {
            let excess = self.size_bytes.saturating_sub(limit);
            excess > 0 && excess >= self.first_segment_bytes
        });
        let by_time = config.retention_ms.is_some_and(|ms| {
            let t = self.first_segment_max_timestamp;
            ms >= 0 && (!(0..=now_ms).contains(&t) || now_ms.saturating_sub(t) > ms)
        });
        by_size || by_time
    }

    /// Whether compaction may be due: uncleaned bytes reaching `min.cleanable.dirty.ratio`,
    /// or any uncleaned bytes when `max.compaction.lag.ms` may force a pass.
    pub(crate) fn compaction_due(&self, config: &LogConfig) -> bool {
        if !config.cleanup_policy.compacts() || self.dirty_bytes == 0 {
            return false;
        }
        let total = self.clean_bytes.saturating_add(self.dirty_bytes);
        config.max_compaction_lag_ms.is_some()
            || self.dirty_bytes as f64 / total as f64 >= config.min_cleanable_dirty_ratio
    }

    /// The summary's fields as one line of the summaries file.
    pub(crate) fn to_line(self) -> String {
        format!(
            "{} {} {} {} {} {} {} {} {}",
            self.log_start_offset,
            self.log_end_offset,
            self.size_bytes,
            self.segments,
            self.first_segment_bytes,
            self.first_segment_max_timestamp,
            self.second_segment_base,
            self.clean_bytes,
            self.dirty_bytes
        )
    }

    /// Parses [`Summary::to_line`]'s output.
    pub(crate) fn from_line(line: &str) -> Option<Summary> {
        let mut f = line.split(' ');
        let mut next = || f.next();
        Some(Summary {
            log_start_offset: next()?.parse().ok()?,
            log_end_offset: next()?.parse().ok()?,
            size_bytes: next()?.parse().ok()?,
            segments: next()?.parse().ok()?,
            first_segment_bytes: next()?.parse().ok()?,
            first_segment_max_timestamp: next()?.parse().ok()?,
            second_segment_base: next()?.parse().ok()?,
            clean_bytes: next()?.parse().ok()?,
            dirty_bytes: next()?.parse().ok()?,
        })
    }
}

/// What one [`Storage::maintain`] pass did.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct MaintenanceReport {
    /// Partitions looked at.
    pub partitions: usize,
    /// Partitions that were open when the pass began.
    pub open: usize,
    /// Closed partitions the pass had to open (their summaries said retention was due, or
    /// they had no summary yet).
    pub opened: usize,
    /// Segments deleted by retention.
    pub segments_deleted: usize,
    /// Bytes of the segments deleted.
    pub bytes_deleted: u64,
    /// Logs compacted (their `cleanup.policy` includes compact and
    /// [`Log::cleanable`] said they were due).
    pub logs_compacted: usize,
    /// Bytes the compactions read (the segments rewritten).
    pub compaction_bytes_read: u64,
    /// Bytes the compactions wrote in their place.
    pub compaction_bytes_written: u64,
    /// Partitions whose maintenance failed, with the error; the pass goes on past them.
    pub failures: Vec<(String, u32, Error)>,
}

impl MaintenanceReport {
    fn add(&mut self, topic: &str, partition: u32, r: Result<()>) {
        if let Err(e) = r {
            self.failures.push((topic.to_string(), partition, e));
        }
    }

    /// Retention, then compaction when it is due, on one open log. Compaction cleans below
    /// the last stable offset, taking the log end offset as the high watermark: a storage
    /// has no replication of its own (an application replicating a compacted partition
    /// whose high watermark lags compacts it itself, through [`Cleaner`]).
    ///
    /// The cleaned segments a compaction writes are charged to the storage's budget for the
    /// pass (`storage.reserve`), so it opens its files within it.
    fn maintain_log(
        &mut self,
        storage: &Storage,
        cleaner: &mut Option<Cleaner>,
        (log, topic, partition): (&Log, &str, u32),
        now_ms: i64,
    ) -> Result<()> {
        let done = log.delete_retention_breached(now_ms)?;
        self.segments_deleted += done.segments_deleted;
        self.bytes_deleted += done.bytes_freed;
        if !log.config().cleanup_policy.compacts() {
            return Ok(());
        }
        let end = log.last_stable_offset();
        if !log.cleanable(end, now_ms)?.should_clean() {
            return Ok(());
        }
        let room = storage.reserve(topic, partition, log.segment_count().saturating_sub(1))?;
        let stats = cleaner
            .get_or_insert_with(|| Cleaner::new(CleanerConfig::default()))
            .clean(log, end, now_ms);
        drop(room);
        let stats = stats?;
        self.logs_compacted += 1;
        self.compaction_bytes_read += stats.bytes_read;
        self.compaction_bytes_written += stats.bytes_written;
        Ok(())
    }
}

impl Storage {
    /// One maintenance pass at time `now_ms` over every partition: retention
    /// ([`Log::delete_retention_breached`]), compaction of logs whose `cleanup.policy`
    /// includes compact when [`Log::cleanable`] says it is due (below the last stable
    /// offset, with one [`Cleaner`] for the pass), and, for open logs, [`Log::tick`]
    /// (flush.ms).
    ///
    /// A closed partition is opened only when the summary cached at its close says retention
    /// would delete a segment or compaction may be due (or when it has no summary yet: never
    /// opened since the storage opened, after an unclean shutdown); a partition opened here
    /// is closed again after.
    /// One partition's failure is reported in [`MaintenanceReport::failures`], not returned.
    pub fn maintain(&self, now_ms: i64) -> Result<MaintenanceReport> {
        let mut report = MaintenanceReport::default();
        // Under the lock only the choice of what to do: the work itself (deletions,
        // compaction) runs on the one log this pass holds at a time, so other callers are
        // not kept waiting.
        let mut open_logs = Vec::new();
        let mut to_open = Vec::new();
        {
            let inner = self.lock()?;
            for (name, topic) in &inner.topics {
                for (p, part) in topic.partitions.iter().enumerate() {
                    report.partitions += 1;
                    let p = u32::try_from(p).unwrap_or(u32::MAX);
                    if part.log.is_some() {
                        open_logs.push((name.clone(), p));
                    } else if part.summary.is_none_or(|s| {
                        s.retention_due(&topic.settings.log, now_ms)
                            || s.compaction_due(&topic.settings.log)
                    }) {
                        to_open.push((name.clone(), p));
                    }
                }
            }
        }
        // One key map for the pass, made when the first log needs compacting.
        let mut cleaner = None;
        report.open = open_logs.len();
        for (name, p) in open_logs {
            // Held one at a time: a pass must not pin the whole budget against callers.
            let Some(log) = self.open_log(&name, p)? else {
                continue; // closed meanwhile, with a summary the next pass judges
            };
            let r = log
                .tick(now_ms)
                .and_then(|()| report.maintain_log(self, &mut cleaner, (&log, &name, p), now_ms));
            report.add(&name, p, r);
        }
        for (name, p) in to_open {
            report.opened += 1;
            let log = self.open_partition(&mut self.lock()?, &name, p);
            let r = log.and_then(|log| {
                let done = report.maintain_log(self, &mut cleaner, (&log, &name, p), now_ms);
                drop(log);
                // Closed again unless a caller took it meanwhile.
                let closed = self.close_if_unused(&name, p);
                done.and(closed)
            });
            report.add(&name, p, r);
        }
        // As Kafka's periodic high-watermark checkpoint does.
        self.checkpoint_high_watermarks()?;
        Ok(report)
    }

    /// Flushes each open log whose `flush.ms` has passed since its last flush at `now_ms`
    /// (Kafka's `LogManager.flushDirtyLogs`, which its broker runs every
    /// `log.flush.scheduler.interval.ms`): cheaper than a [`maintain`](Storage::maintain)
    /// pass, so an application can run it as often as its smallest `flush.ms` asks.
    /// Closed logs were flushed when they closed. Returns how many logs it flushed; one
    /// log's failure (which poisons that log) is returned after trying the others.
    pub fn flush_dirty_logs(&self, now_ms: i64) -> Result<usize> {
        let logs: Vec<Arc<Log>> = {
            let inner = self.lock()?;
            inner
                .topics
                .values()
                .filter(|t| t.settings.log.flush_ms.is_some())
                .flat_map(|t| t.partitions.iter().filter_map(|p| p.log.clone()))
                .collect()
        };
        let mut flushed = 0;
        let mut first = None;
        for log in logs {
            match log.flush_if_due(now_ms) {
                Ok(true) => flushed += 1,
                Ok(false) => {}
                Err(e) => {
                    first.get_or_insert(e);
                }
            }
        }
        first.map_or(Ok(flushed), Err)
    }

    /// Starts a thread that calls [`Storage::maintain`] every `interval`, with the time from
    /// the storage's log clock, until the handle is stopped or dropped.
    pub fn spawn_maintenance(storage: Arc<Storage>, interval: Duration) -> MaintenanceHandle {
        let thread = BackgroundThread::spawn("maintenance", move |stop_rx| {
            let mut first_error = None;
            while let Err(mpsc::RecvTimeoutError::Timeout) = stop_rx.recv_timeout(interval) {
                let now = storage.config.defaults.log.clock.now_ms();
                match storage.maintain(now) {
                    Ok(report) => {
                        if first_error.is_none() {
                            first_error = report.failures.into_iter().next().map(|(_, _, e)| e);
                        }
                    }
                    Err(Error::StorageClosed { .. }) => break,
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
            first_error.map_or(Ok(()), Err)
        });
        MaintenanceHandle { thread }
    }
}

/// A background maintenance thread; dropping it stops the thread.
#[derive(Debug)]
pub struct MaintenanceHandle {
    /// Stop-and-join shared with the log's flusher.
    thread: BackgroundThread,
}

impl MaintenanceHandle {
    /// Stops the thread (waiting for a pass under way) and returns the first error a pass
    /// met, if any.
    pub fn stop(self) -> Result<()> {
        self.thread.stop()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_line_round_trips() {
        let s = Summary {
            log_start_offset: 3,
            log_end_offset: 99,
            size_bytes: 12345,
            segments: 4,
            first_segment_bytes: 1000,
            first_segment_max_timestamp: -1,
            second_segment_base: 40,
            clean_bytes: 7,
            dirty_bytes: 8,
        };
        assert_eq!(Summary::from_line(&s.to_line()), Some(s));
        assert_eq!(Summary::from_line("1 2 3"), None);
    }
}
