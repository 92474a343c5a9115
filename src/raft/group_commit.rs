//! Group commit of Raft appends: one thread fsyncs for every append waiting.
//!
//! An append writes the entries into the log (the page cache) and hands its callback here.
//! `append_with_callback` queues it: the committer thread takes every callback queued,
//! calls [`Log::flush`] once for all of them, and completes them. Appends that arrive
//! during an fsync share the next one, so N pipelined appends cost about two fsyncs, not N.
//! openraft's `append` runs the round in its caller instead when nothing is queued or being
//! flushed: openraft 0.9's core awaits each append's callback before it makes the next
//! append, so the thread would never find two callbacks to group, and handing it the flush
//! would only add two thread switches to every commit. Either way a callback is completed
//! only after a flush that began after its entries were written.
//!
//! The committed log id is written here too, in a round, after its flush and before its
//! callbacks: the file then never names an entry the log has not made durable. Rounds are
//! started by appends only, so the thread never works while its caller does not wait for
//! it (what keeps crash tests replayable). A changed committed log id is written once
//! every `committed_every` rounds (and when the store closes): openraft saves it at every
//! commit, and losing the latest value in a crash only makes openraft re-apply fewer
//! entries at start-up.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;

use openraft::{LogId, RaftTypeConfig};
use parking_lot::{Condvar, Mutex};

use super::{meta, RaftStoreError};
use crate::io::FileSystem;
use crate::Log;

/// The default of [`super::LogStore::set_committed_every`].
pub(crate) const DEFAULT_COMMITTED_EVERY: u32 = 1024;

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
    /// Rounds since the committed file was last written, and how many may pass.
    rounds_since_committed: u32,
    committed_every: u32,
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
                committed_every: DEFAULT_COMMITTED_EVERY,
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
    ///
    /// With `inline_when_idle`, when no earlier callback is queued or being flushed for, the
    /// round runs here, in the caller, and `callback` is completed before this returns: for
    /// a caller that awaits every callback before its next append (openraft 0.9's core), the
    /// thread could group nothing and would only add two thread switches per append.
    pub(crate) fn submit(
        &self,
        callback: OnDurable,
        inline_when_idle: bool,
    ) -> Result<(), RaftStoreError> {
        let mut q = self.shared.queue.lock();
        if let Some(reason) = &q.failed {
            return Err(RaftStoreError::Background(reason.clone()));
        }
        let idle = q.waiting.is_empty() && !q.in_flight;
        if self.thread.is_none() || (inline_when_idle && idle) {
            // No thread (stopped by `commit_inline`, or none could be started), or nothing
            // for it to group with: a round here, one fsync for this call. `in_flight` keeps
            // `drain` waiting and the thread off the log until the round is done.
            q.in_flight = true;
            drop(q);
            let failure = round(&self.shared, vec![callback], false);
            let mut q = self.shared.queue.lock();
            q.in_flight = false;
            if let Some(reason) = failure {
                q.failed.get_or_insert(reason);
            }
            self.shared.idle.notify_all();
            return Ok(());
        }
        q.waiting.push(callback);
        self.shared.work.notify_one();
        Ok(())
    }

    /// Records the committed log id, written in a later round (see the module's comment).
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
        }
        Ok(())
    }

    /// The latest committed log id saved (durable or about to be).
    pub(crate) fn committed(&self) -> Option<LogId<C::NodeId>> {
        self.shared.queue.lock().committed.clone()
    }

    /// Sets how many rounds may pass before a changed committed log id is written.
    pub(crate) fn set_committed_every(&self, rounds: u32) {
        self.shared.queue.lock().committed_every = rounds.max(1);
    }

    /// Waits until every queued callback is completed (before the log is cut).
    pub(crate) fn drain(&self) {
        let mut q = self.shared.queue.lock();
        while self.thread.is_some() && (!q.waiting.is_empty() || q.in_flight) {
            self.shared.idle.wait(&mut q);
        }
    }

    /// Stops the thread; later submissions flush in the caller (see `LogStore::commit_inline`).
    pub(crate) fn go_inline(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.shared.queue.lock().stop = true;
            self.shared.work.notify_one();
            let _ = thread.join();
            self.shared.queue.lock().stop = false;
        }
    }

    /// Completes what is queued, writes the committed log id and stops the thread.
    pub(crate) fn stop(&mut self) {
        self.shared.queue.lock().stop = true;
        self.shared.work.notify_one();
        match self.thread.take() {
            Some(thread) => {
                let _ = thread.join();
            }
            None => {
                let _ = round(&self.shared, Vec::new(), true);
            }
        }
    }
}

impl<C: RaftTypeConfig> Drop for GroupCommit<C> {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The thread: one round per batch of callbacks waiting, until told to stop.
fn run<C: RaftTypeConfig>(shared: &Shared<C>) {
    loop {
        let (callbacks, last) = {
            let mut q = shared.queue.lock();
            while q.waiting.is_empty() && !q.stop {
                shared.work.wait(&mut q);
            }
            q.in_flight = true;
            let last = q.stop && q.waiting.is_empty();
            (std::mem::take(&mut q.waiting), last)
        };
        let failure = round(shared, callbacks, last);
        let mut q = shared.queue.lock();
        q.in_flight = false;
        if let Some(reason) = failure {
            q.failed.get_or_insert(reason);
        }
        shared.idle.notify_all();
        if last {
            return;
        }
    }
}

/// One flush for `callbacks`, then the committed log id when due, then the callbacks.
/// Returns why the committed log id could not be written, if it could not.
fn round<C: RaftTypeConfig>(
    shared: &Shared<C>,
    callbacks: Vec<OnDurable>,
    last: bool,
) -> Option<String> {
    // Taken before the flush: a value saved later may name entries this flush misses.
    let committed = {
        let mut q = shared.queue.lock();
        q.rounds_since_committed = q.rounds_since_committed.saturating_add(1);
        let due = q.committed_dirty && (last || q.rounds_since_committed >= q.committed_every);
        due.then(|| q.committed.clone())
    };
    let flushed = shared.log.flush().map(|_| ());
    let mut failure = None;
    if let (Ok(()), Some(value)) = (&flushed, &committed) {
        let written = meta::write(&*shared.fs, &shared.committed_path, value);
        let mut q = shared.queue.lock();
        q.rounds_since_committed = 0;
        match written {
            Ok(()) => q.committed_dirty &= q.committed != *value,
            Err(e) => failure = Some(e.to_string()),
        }
    }
    for callback in callbacks {
        callback(match &flushed {
            Ok(()) => Ok(()),
            Err(e) => Err(io::Error::other(e.to_string())),
        });
    }
    failure
}
