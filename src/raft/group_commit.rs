//! Group commit of Raft appends: one thread fsyncs for every append waiting.
//!
//! `append` writes the entries into the log (the page cache) and queues openraft's
//! callback here; the committer thread takes every callback queued, calls [`Log::flush`]
//! once for all of them, and completes them. Appends that arrive during an fsync share
//! the next one, so N pipelined appends cost about two fsyncs, not N. A callback is
//! completed only after a flush that began after its entries were written.
//!
//! The committed log id is written here too, after a flush: the file then never names an
//! entry the log has not made durable. Its writes are coalesced (when nothing waits, or
//! every [`COMMITTED_EVERY_ROUNDS`] rounds under load): losing the latest value in a crash
//! only makes openraft re-apply fewer entries at start-up.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;

use openraft::{LogId, RaftTypeConfig};
use parking_lot::{Condvar, Mutex};

use super::{meta, RaftStoreError};
use crate::io::FileSystem;
use crate::Log;

/// Under sustained appends, the committed log id is written at least this often (rounds).
pub(crate) const COMMITTED_EVERY_ROUNDS: u32 = 64;

/// Called once the entries written before it was queued are durable, or with the error
/// that keeps them from being so.
pub(crate) type OnDurable = Box<dyn FnOnce(io::Result<()>) + Send>;

/// What the thread works through.
struct Queue<C: RaftTypeConfig> {
    /// Callbacks of appends written but not yet flushed, oldest first.
    waiting: Vec<OnDurable>,
    /// The thread is flushing for callbacks it took from `waiting`.
    in_flight: bool,
    /// The latest committed log id saved, and whether the file is behind it.
    committed: Option<LogId<C::NodeId>>,
    committed_dirty: bool,
    /// Rounds since the committed file was last written.
    rounds_since_committed: u32,
    /// Why a background write failed; reported to the next caller.
    failed: Option<String>,
    stop: bool,
}

struct Shared<C: RaftTypeConfig> {
    log: Arc<Log>,
    fs: Arc<dyn FileSystem>,
    committed_path: PathBuf,
    queue: Mutex<Queue<C>>,
    /// Wakes the thread.
    work: Condvar,
    /// Wakes callers of `drain`.
    idle: Condvar,
}

/// The committer thread and its queue; dropping it completes what is queued and stops it.
pub(crate) struct GroupCommit<C: RaftTypeConfig> {
    shared: Arc<Shared<C>>,
    thread: Option<JoinHandle<()>>,
}

impl<C: RaftTypeConfig> GroupCommit<C> {
    pub(crate) fn start(
        log: Arc<Log>,
        fs: Arc<dyn FileSystem>,
        committed_path: PathBuf,
        committed: Option<LogId<C::NodeId>>,
    ) -> Self {
        let shared = Arc::new(Shared {
            log,
            fs,
            committed_path,
            queue: Mutex::new(Queue {
                waiting: Vec::new(),
                in_flight: false,
                committed,
                committed_dirty: false,
                rounds_since_committed: 0,
                failed: None,
                stop: false,
            }),
            work: Condvar::new(),
            idle: Condvar::new(),
        });
        let thread = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("raft-group-commit".into())
                .spawn(move || run(&shared))
                .ok()
        };
        GroupCommit { shared, thread }
    }

    /// Queues `callback`, completed once everything written before this call is durable.
    pub(crate) fn submit(&self, callback: OnDurable) -> Result<(), RaftStoreError> {
        if self.thread.is_none() {
            // No thread could be started: flush here, one fsync per call.
            let result = self
                .shared
                .log
                .flush()
                .map(|_| ())
                .map_err(io::Error::other);
            callback(result);
            return Ok(());
        }
        let mut q = self.shared.queue.lock();
        if let Some(reason) = &q.failed {
            return Err(RaftStoreError::Background(reason.clone()));
        }
        q.waiting.push(callback);
        self.shared.work.notify_one();
        Ok(())
    }

    /// Records the committed log id, written after the next flush.
    pub(crate) fn save_committed(
        &self,
        committed: Option<LogId<C::NodeId>>,
    ) -> Result<(), RaftStoreError> {
        let mut q = self.shared.queue.lock();
        if let Some(reason) = &q.failed {
            return Err(RaftStoreError::Background(reason.clone()));
        }
        if q.committed != committed {
            q.committed = committed;
            q.committed_dirty = true;
            self.shared.work.notify_one();
        }
        let value = q.committed.clone();
        drop(q);
        if self.thread.is_none() {
            // No thread: make the entries it names durable first, here.
            self.shared.log.flush()?;
            meta::write(&*self.shared.fs, &self.shared.committed_path, &value)?;
        }
        Ok(())
    }

    /// The latest committed log id saved (durable or about to be).
    pub(crate) fn committed(&self) -> Option<LogId<C::NodeId>> {
        self.shared.queue.lock().committed.clone()
    }

    /// Waits until every queued callback is completed (before the log is cut).
    pub(crate) fn drain(&self) {
        let mut q = self.shared.queue.lock();
        while self.thread.is_some() && (!q.waiting.is_empty() || q.in_flight) {
            self.shared.idle.wait(&mut q);
        }
    }
}

impl<C: RaftTypeConfig> GroupCommit<C> {
    /// Completes what is queued, writes the committed log id and stops the thread.
    pub(crate) fn stop(&mut self) {
        self.shared.queue.lock().stop = true;
        self.shared.work.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl<C: RaftTypeConfig> Drop for GroupCommit<C> {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The thread: one flush per round for every callback waiting, until told to stop.
fn run<C: RaftTypeConfig>(shared: &Shared<C>) {
    loop {
        let (callbacks, committed) = {
            let mut q = shared.queue.lock();
            while q.waiting.is_empty() && !q.committed_dirty && !q.stop {
                shared.work.wait(&mut q);
            }
            if q.waiting.is_empty() && !q.committed_dirty {
                return; // stopped, and nothing left to do
            }
            q.in_flight = true;
            q.rounds_since_committed = q.rounds_since_committed.saturating_add(1);
            let write_committed_now = q.committed_dirty
                && (q.waiting.is_empty()
                    || q.stop
                    || q.rounds_since_committed >= COMMITTED_EVERY_ROUNDS);
            // Taken before the flush: the value saved later may name entries it misses.
            let committed = write_committed_now.then(|| q.committed.clone());
            (std::mem::take(&mut q.waiting), committed)
        };
        let flushed = shared.log.flush().map(|_| ());
        for callback in callbacks {
            let result = match &flushed {
                Ok(()) => Ok(()),
                Err(e) => Err(io::Error::other(e.to_string())),
            };
            callback(result);
        }
        let written = match (&flushed, &committed) {
            (Ok(()), Some(value)) => Some(meta::write(&*shared.fs, &shared.committed_path, value)),
            _ => None,
        };
        let mut q = shared.queue.lock();
        q.in_flight = false;
        match written {
            Some(Ok(())) => {
                q.rounds_since_committed = 0;
                if committed.as_ref() == Some(&q.committed) {
                    q.committed_dirty = false;
                }
            }
            Some(Err(e)) => {
                q.failed.get_or_insert(e.to_string());
                q.committed_dirty = false;
            }
            None => {}
        }
        if flushed.is_err() {
            // The log is poisoned: nothing more will be made durable.
            q.committed_dirty = false;
        }
        shared.idle.notify_all();
    }
}
