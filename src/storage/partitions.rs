//! The partition table: lazy opening of partition logs within the budget of file handles
//! and maps, least-recently-used closing, and flushing and closing them all.
//!
//! The table lock is never held while a log opens (a full recovery, for a partition left
//! unclean) or closes: the partition is marked busy, the lock released, the log opened or
//! closed, and the table updated under the lock again. Whoever wants a busy partition waits
//! for it to settle, so a partition is opened once, and never while its previous log is
//! still closing; other partitions are served meanwhile.

use std::sync::Arc;

use parking_lot::MutexGuard;

use super::handles::Cost;
use super::maintenance::Summary;
use super::names::partition_dir_name;
use super::{get_partition, get_topic_in, metadata, Inner, Storage};
use crate::error::{Error, Result};
use crate::log::Log;

/// Logs taken out of the table to be closed outside its lock: (topic, partition, log).
type Closing = Vec<(String, u32, Arc<Log>)>;

/// Room held in the budget for files a log opens beyond its charge (see
/// [`Storage::reserve`]); given back when dropped.
pub(super) struct Reservation<'a> {
    storage: &'a Storage,
    cost: Cost,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.storage
            .inner
            .lock()
            .budget
            .recharge(self.cost, Cost::default());
    }
}

impl Storage {
    /// The log of one partition, opened if it is not open (closing least recently used
    /// logs first when the budget is full). Holding the `Arc` keeps the log open.
    pub fn partition(&self, topic: &str, partition: u32) -> Result<Arc<Log>> {
        let mut inner = self.lock()?;
        self.open_partition(&mut inner, topic, partition)
    }

    /// Number of partition logs open now.
    pub fn open_partitions(&self) -> usize {
        self.inner.lock().budget.open_logs()
    }

    /// File handles the open logs are charged for now (an upper bound of what they hold).
    pub fn open_files_charged(&self) -> usize {
        self.inner.lock().budget.used().files
    }

    /// Waits (releasing the table lock meanwhile) until no partition of `topic` is busy.
    /// Fails with [`Error::StorageClosed`] if the storage was closed meanwhile.
    pub(super) fn wait_topic_settled(
        &self,
        inner: &mut MutexGuard<'_, Inner>,
        topic: &str,
    ) -> Result<()> {
        while inner
            .topics
            .get(topic)
            .is_some_and(|t| t.partitions.iter().any(|p| p.busy))
        {
            self.settled.wait(inner);
        }
        if inner.closed {
            return Err(Error::StorageClosed {
                dir: self.dir.clone(),
            });
        }
        Ok(())
    }

    /// [`Storage::partition`] with the table locked; the lock is released while the log
    /// opens (and while the logs closed to make room close), and held again on return.
    pub(super) fn open_partition(
        &self,
        inner: &mut MutexGuard<'_, Inner>,
        topic: &str,
        partition: u32,
    ) -> Result<Arc<Log>> {
        loop {
            if inner.closed {
                return Err(Error::StorageClosed {
                    dir: self.dir.clone(),
                });
            }
            let Inner { topics, budget, .. } = &mut **inner;
            let part = get_partition(get_topic_in(topics, topic)?, topic, partition)?;
            if part.stale
                && !part.busy
                && part.log.as_ref().is_some_and(|l| Arc::strong_count(l) == 1)
            {
                // Altered while held: now that no caller holds it, reopened under the
                // topic's current settings.
                part.stale = false;
                let logs = take_out(budget, part, topic, partition)
                    .into_iter()
                    .collect();
                self.close_outside(inner, logs)?;
                continue;
            }
            if let Some(log) = &part.log {
                let log = Arc::clone(log);
                let cost = Cost::of_segments(log.segment_count());
                part.tick = budget.touch(part.tick, part.cost, cost);
                part.cost = cost;
                return Ok(log);
            }
            if !part.busy {
                break;
            }
            self.settled.wait(inner);
        }
        let estimate = {
            let Inner { topics, .. } = &mut **inner;
            let part = get_partition(get_topic_in(topics, topic)?, topic, partition)?;
            Cost::of_segments(part.summary.map_or(1, |s| s.segments as usize))
        };
        refresh_charges(inner);
        let (victims, room) = take_victims(inner, estimate, topic, partition);
        if let Err(e) = room {
            // Those already taken are closed all the same, as before they were one by one.
            let closed = self.close_outside(inner, victims);
            return Err(closed.err().unwrap_or(e));
        }
        // Reserved: charged now, so concurrent opens see the budget as it will be.
        let (dir, log_config, high_watermark) = {
            let Inner { topics, budget, .. } = &mut **inner;
            let t = get_topic_in(topics, topic)?;
            let log_config = t.settings.log.clone();
            let part = get_partition(t, topic, partition)?;
            part.busy = true;
            part.cost = estimate;
            part.tick = budget.insert((topic.to_string(), partition), estimate);
            (
                self.dir.join(partition_dir_name(topic, partition)),
                log_config,
                part.high_watermark,
            )
        };
        let closed = self.close_outside(inner, victims);
        let opened = match closed {
            Ok(()) => MutexGuard::unlocked(inner, || {
                // The data directory's lock covers its partitions (as Kafka locks a log
                // directory, not each partition): no lock file, and no file handle, per log.
                crate::log::LogOptions::new(log_config)
                    .fs(Arc::clone(&self.config.fs))
                    .create(true)
                    .locked_by_parent()
                    .high_watermark_from_parent(high_watermark)
                    .open(&dir)
                    .map(|(log, _)| Arc::new(log))
            }),
            Err(e) => Err(e),
        };
        let Inner { topics, budget, .. } = &mut **inner;
        let part = get_partition(get_topic_in(topics, topic)?, topic, partition)?;
        part.busy = false;
        self.settled.notify_all();
        match opened {
            Ok(log) => {
                let cost = Cost::of_segments(log.segment_count());
                part.tick = budget.touch(part.tick, part.cost, cost);
                part.cost = cost;
                part.summary = None;
                part.log = Some(Arc::clone(&log));
                Ok(log)
            }
            Err(e) => {
                budget.remove(part.tick, part.cost);
                part.cost = Cost::default();
                Err(e)
            }
        }
    }

    /// Charges the budget for `segments` more segments' files and maps (what a compaction
    /// of `topic`'s `partition` opens beside the segments it replaces: one cleaned segment
    /// per group, at most one per sealed segment), closing least recently used logs no
    /// caller holds to make room, outside the table lock. The charge is given back when the
    /// returned reservation drops. Fails with [`Error::OpenFileBudgetExhausted`] when held
    /// logs leave no room.
    pub(super) fn reserve(
        &self,
        topic: &str,
        partition: u32,
        segments: usize,
    ) -> Result<Reservation<'_>> {
        let need = Cost::of_segments(segments);
        let mut inner = self.lock()?;
        refresh_charges(&mut inner);
        let (victims, room) = take_victims(&mut inner, need, topic, partition);
        if room.is_ok() {
            // Charged now, before the victims close with the table unlocked, so no open
            // takes the room meanwhile.
            inner.budget.recharge(Cost::default(), need);
        }
        let closed = self.close_outside(&mut inner, victims);
        if let Err(e) = room {
            return Err(closed.err().unwrap_or(e));
        }
        let reservation = Reservation {
            storage: self,
            cost: need,
        };
        closed.map(|()| reservation)
    }

    /// Closes the open logs of `topic`'s `partitions` (topic administration, after the
    /// topic's partitions have settled) with the table unlocked meanwhile, keeping their
    /// summaries. Every listed partition, open or not, stays busy until the table is locked
    /// again, so none is opened meanwhile: the caller finishes its change before anyone
    /// waiting for them wakes. Returns the first error after closing all.
    pub(super) fn close_partitions(
        &self,
        inner: &mut MutexGuard<'_, Inner>,
        topic: &str,
        partitions: &[u32],
    ) -> Result<()> {
        let mut logs = Vec::new();
        let Inner { topics, budget, .. } = &mut **inner;
        let t = get_topic_in(topics, topic)?;
        for &p in partitions {
            let Some(part) = t.partitions.get_mut(p as usize) else {
                continue;
            };
            logs.extend(take_out(budget, part, topic, p));
            part.busy = true;
        }
        let closed = self.close_outside(inner, logs);
        if let Some(t) = inner.topics.get_mut(topic) {
            for &p in partitions {
                if let Some(part) = t.partitions.get_mut(p as usize) {
                    part.busy = false;
                }
            }
        }
        self.settled.notify_all();
        closed
    }

    /// Closes `logs` (taken out of the table, their partitions marked busy) with the table
    /// unlocked, then records their summaries and settles them. Returns the first error.
    fn close_outside(&self, inner: &mut MutexGuard<'_, Inner>, logs: Closing) -> Result<()> {
        if logs.is_empty() {
            return Ok(());
        }
        let closed: Vec<(String, u32, Result<Summary>)> = MutexGuard::unlocked(inner, || {
            logs.into_iter()
                .map(|(t, p, log)| {
                    let r = close_log(&log);
                    (t, p, r)
                })
                .collect()
        });
        let mut first = None;
        for (t, p, r) in closed {
            if let Some(part) = inner
                .topics
                .get_mut(&t)
                .and_then(|t| t.partitions.get_mut(p as usize))
            {
                part.busy = false;
                part.summary = r.as_ref().ok().copied();
            }
            if let Err(e) = r {
                first.get_or_insert(e);
            }
        }
        self.settled.notify_all();
        first.map_or(Ok(()), Err)
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
        let Inner { topics, budget, .. } = &mut *inner;
        let part = get_partition(get_topic_in(topics, topic)?, topic, partition)?;
        let unused = !part.busy && part.log.as_ref().is_some_and(|l| Arc::strong_count(l) == 1);
        if !unused {
            return Ok(());
        }
        let logs = take_out(budget, part, topic, partition)
            .into_iter()
            .collect();
        self.close_outside(&mut inner, logs)
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
    /// with [`Error::StorageClosed`]. Opens in progress finish first; the logs are closed
    /// with the table unlocked.
    pub fn close(&self) -> Result<()> {
        let mut written = self.high_watermarks_written.lock();
        let mut inner = self.lock()?;
        while inner
            .topics
            .values()
            .any(|t| t.partitions.iter().any(|p| p.busy))
        {
            self.settled.wait(&mut inner);
        }
        if inner.closed {
            return Err(Error::StorageClosed {
                dir: self.dir.clone(),
            });
        }
        // No open starts from here on.
        inner.closed = true;
        let open: Vec<(String, u32)> = inner.budget.lru_order().map(|(_, k)| k.clone()).collect();
        let mut logs = Vec::new();
        for (topic, p) in open {
            let Inner { topics, budget, .. } = &mut *inner;
            if let Some(part) = topics
                .get_mut(&topic)
                .and_then(|t| t.partitions.get_mut(p as usize))
            {
                logs.extend(take_out(budget, part, &topic, p));
            }
        }
        let mut first = self.close_outside(&mut inner, logs).err();
        let high_watermarks = super::high_watermark::entries(&inner);
        if let Err(e) = self.write_high_watermarks(&mut written, high_watermarks) {
            first.get_or_insert(e);
        }
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

/// Takes `need` worth of room out of the budget: least recently used logs no caller holds
/// are taken out of the table (their partitions marked busy) for the caller to close
/// outside the lock. Fails, with what it took so far, when not enough can be freed.
fn take_victims(
    inner: &mut Inner,
    need: Cost,
    topic: &str,
    partition: u32,
) -> (Closing, Result<()>) {
    let mut taken = Vec::new();
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
                    .is_some_and(|part| {
                        !part.busy && part.log.as_ref().is_some_and(|l| Arc::strong_count(l) == 1)
                    })
            })
            .cloned();
        let Some((t, p)) = victim else {
            let e = Error::OpenFileBudgetExhausted {
                topic: topic.to_string(),
                partition,
                budget: inner.budget.max_files(),
                open: inner.budget.open_logs(),
            };
            return (taken, Err(e));
        };
        let Inner { topics, budget, .. } = inner;
        if let Some(part) = topics
            .get_mut(&t)
            .and_then(|tp| tp.partitions.get_mut(p as usize))
        {
            taken.extend(take_out(budget, part, &t, p));
        }
    }
    (taken, Ok(()))
}

/// Takes a partition's log out of the table and the budget, marking it busy until it is
/// closed.
fn take_out(
    budget: &mut super::handles::Budget,
    part: &mut super::Partition,
    topic: &str,
    partition: u32,
) -> Option<(String, u32, Arc<Log>)> {
    let log = part.log.take()?;
    part.stale = false;
    budget.remove(part.tick, part.cost);
    part.cost = Cost::default();
    if log.config().high_watermark_policy == crate::HighWatermarkPolicy::Replicated {
        part.high_watermark = Some(log.high_watermark());
    }
    part.busy = true;
    Some((topic.to_string(), partition, log))
}

/// Closes a log cleanly and takes its summary (a log a caller already closed counts as
/// closed). The log is dropped (its files released) even when the close fails; it then
/// has no summary, and its next open recovers.
fn close_log(log: &Log) -> Result<Summary> {
    let summary = Summary::of(log);
    let closed = match log.close() {
        Err(Error::LogClosed { .. }) => Ok(()),
        r => r,
    };
    closed.and(summary)
}
