//! The partition table: lazy opening of partition logs within the budget of file handles
//! and maps, least-recently-used closing, and flushing and closing them all.

use std::sync::Arc;

use super::handles::Cost;
use super::maintenance::Summary;
use super::names::partition_dir_name;
use super::{get_partition, get_topic, get_topic_in, metadata, Inner, Storage};
use crate::error::{Error, Result};
use crate::log::Log;

impl Storage {
    /// The log of one partition, opened if it is not open (closing least recently used
    /// logs first when the budget is full). Holding the `Arc` keeps the log open.
    pub fn partition(&self, topic: &str, partition: u32) -> Result<Arc<Log>> {
        let mut inner = self.lock()?;
        self.open_locked(&mut inner, topic, partition)
    }

    /// Number of partition logs open now.
    pub fn open_partitions(&self) -> usize {
        self.inner.lock().budget.open_logs()
    }

    /// File handles the open logs are charged for now (an upper bound of what they hold).
    pub fn open_files_charged(&self) -> usize {
        self.inner.lock().budget.used().files
    }

    pub(super) fn open_locked(
        &self,
        inner: &mut Inner,
        topic: &str,
        partition: u32,
    ) -> Result<Arc<Log>> {
        let Inner { topics, budget, .. } = &mut *inner;
        let t = get_topic_in(topics, topic)?;
        let part = get_partition(t, topic, partition)?;
        if let Some(log) = &part.log {
            let log = Arc::clone(log);
            let cost = Cost::of_segments(log.segment_count());
            part.tick = budget.touch(part.tick, part.cost, cost);
            part.cost = cost;
            return Ok(log);
        }
        let estimate = Cost::of_segments(part.summary.map_or(1, |s| s.segments as usize));
        refresh_charges(inner);
        make_room(inner, estimate, topic, partition)?;
        let Inner { topics, budget, .. } = &mut *inner;
        let t = get_topic_in(topics, topic)?;
        let log_config = t.settings.log.clone();
        let part = get_partition(t, topic, partition)?;
        let dir = self.dir.join(partition_dir_name(topic, partition));
        // The data directory's lock covers its partitions (as Kafka locks a log directory,
        // not each partition): no lock file, and no file handle, per open log.
        let (log, _) = crate::log::LogOptions::new(log_config)
            .fs(Arc::clone(&self.config.fs))
            .create(true)
            .locked_by_parent()
            .high_watermark_from_parent(part.high_watermark)
            .open(&dir)?;
        let log = Arc::new(log);
        part.cost = Cost::of_segments(log.segment_count());
        part.tick = budget.insert((topic.to_string(), partition), part.cost);
        part.summary = None;
        part.log = Some(Arc::clone(&log));
        Ok(log)
    }

    /// The partition's log if it is open now (without touching its place in the LRU order).
    pub(super) fn open_log(&self, topic: &str, partition: u32) -> Result<Option<Arc<Log>>> {
        let inner = self.lock()?;
        Ok(inner
            .topics
            .get(topic)
            .and_then(|t| t.partitions.get(partition as usize))
            .and_then(|part| part.log.clone()))
    }

    /// Closes a partition's log unless a caller holds it.
    pub(super) fn close_if_unused(&self, topic: &str, partition: u32) -> Result<()> {
        let mut inner = self.lock()?;
        let unused = get_partition(get_topic(&mut inner, topic)?, topic, partition)?
            .log
            .as_ref()
            .is_some_and(|l| Arc::strong_count(l) == 1);
        if unused {
            close_partition(&mut inner, topic, partition)?;
        }
        Ok(())
    }

    /// Flushes every open log (see [`Log::flush`]); returns the first error after trying all.
    pub fn flush(&self) -> Result<()> {
        let logs: Vec<Arc<Log>> = {
            let inner = self.lock()?;
            inner
                .topics
                .values()
                .flat_map(|t| t.partitions.iter().filter_map(|p| p.log.clone()))
                .collect()
        };
        let mut first = None;
        for log in logs {
            if let Err(e) = log.flush() {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// Closes every open log cleanly (callers still holding one get [`Error::LogClosed`])
    /// and records the partitions' summaries, so the next open's maintenance needs to open
    /// none of the idle ones. Returns the first error after closing all; later calls fail
    /// with [`Error::StorageClosed`].
    pub fn close(&self) -> Result<()> {
        let mut written = self.high_watermarks_written.lock();
        let mut inner = self.lock()?;
        let open: Vec<(String, u32)> = inner.budget.lru_order().map(|(_, k)| k.clone()).collect();
        let mut first = None;
        for (topic, p) in open {
            if let Err(e) = close_partition(&mut inner, &topic, p) {
                first.get_or_insert(e);
            }
        }
        let high_watermarks = super::high_watermark::entries(&inner);
        if let Err(e) = self.write_high_watermarks(&mut written, high_watermarks) {
            first.get_or_insert(e);
        }
        inner.closed = true;
        let summaries: Vec<(&str, u32, Summary)> = inner
            .topics
            .iter()
            .flat_map(|(name, t)| {
                t.partitions.iter().enumerate().filter_map(|(p, part)| {
                    Some((name.as_str(), u32::try_from(p).ok()?, part.summary?))
                })
            })
            .collect();
        if let Err(e) = metadata::write_summaries(self.fs(), &self.dir, &summaries) {
            first.get_or_insert(e);
        }
        self.dir_lock.lock().take();
        first.map_or(Ok(()), Err)
    }
}

impl Drop for Storage {
    fn drop(&mut self) {
        if !self.inner.lock().closed {
            let _ = self.close();
        }
    }
}

/// Recounts what every open log is charged: callers holding a log may have rolled new
/// segments since it was last charged.
fn refresh_charges(inner: &mut Inner) {
    let Inner { topics, budget, .. } = inner;
    let (mut was, mut now) = (Cost::default(), Cost::default());
    for (_, (t, p)) in budget.lru_order() {
        let Some(part) = topics
            .get_mut(t.as_str())
            .and_then(|t| t.partitions.get_mut(*p as usize))
        else {
            continue;
        };
        if let Some(log) = &part.log {
            let cost = Cost::of_segments(log.segment_count());
            was = was.plus(part.cost);
            now = now.plus(cost);
            part.cost = cost;
        }
    }
    budget.recharge(was, now);
}

/// Closes least recently used logs no caller holds until `need` more fits the budget.
fn make_room(inner: &mut Inner, need: Cost, topic: &str, partition: u32) -> Result<()> {
    while !inner.budget.fits(need) {
        let victim = inner
            .budget
            .lru_order()
            .map(|(_, k)| k)
            .find(|(t, p)| {
                inner
                    .topics
                    .get(t)
                    .and_then(|t| t.partitions.get(*p as usize))
                    .and_then(|part| part.log.as_ref())
                    .is_some_and(|l| Arc::strong_count(l) == 1)
            })
            .cloned();
        let Some((t, p)) = victim else {
            return Err(Error::OpenFileBudgetExhausted {
                topic: topic.to_string(),
                partition,
                budget: inner.budget.max_files(),
                open: inner.budget.open_logs(),
            });
        };
        close_partition(inner, &t, p)?;
    }
    Ok(())
}

/// Closes one partition's log cleanly, keeping its summary. The log is dropped (its files
/// released) even when the close fails; it then has no summary, and its next open recovers.
pub(super) fn close_partition(inner: &mut Inner, topic: &str, partition: u32) -> Result<()> {
    let Inner { topics, budget, .. } = inner;
    let part = get_partition(get_topic_in(topics, topic)?, topic, partition)?;
    let Some(log) = part.log.take() else {
        return Ok(());
    };
    budget.remove(part.tick, part.cost);
    part.cost = Cost::default();
    if log.config().high_watermark_policy == crate::HighWatermarkPolicy::Replicated {
        part.high_watermark = Some(log.high_watermark());
    }
    let summary = Summary::of(&log);
    let closed = match log.close() {
        Err(Error::LogClosed { .. }) => Ok(()),
        r => r,
    };
    match (summary, closed) {
        (Ok(s), Ok(())) => {
            part.summary = Some(s);
            Ok(())
        }
        (Err(e), _) | (_, Err(e)) => Err(e),
    }
}
