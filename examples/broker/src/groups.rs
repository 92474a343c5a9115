//! Consumer groups: streamlog's group coordinator (`streamlog::group::LocalGroupDriver`, the
//! sans-IO `GroupCoordinator` carried out against this broker's `Storage`) behind an async
//! front the connections await.
//!
//! The driver answers some requests later than they arrive: a JoinGroup waits for its
//! rebalance, a SyncGroup for the leader's assignment, and what completes them may be
//! another member's request or a deadline. So each request gets an id and a oneshot
//! channel; every call into the driver hands back whatever answers are ready, and they go
//! to their channels. The driver's deadlines (session timeouts, rebalance timeouts, the
//! initial rebalance delay, offset expiry) run on one tokio task that sleeps until
//! `next_deadline` and is woken early whenever a call may have moved it.
//!
//! Calls into the driver append to `__consumer_offsets` and flush, so they run on tokio's
//! blocking pool, one at a time (the driver is behind a mutex, as Kafka's coordinator
//! serialises a group's requests).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use streamlog::group::coordinator::{Request, RequestId, Response};
use streamlog::group::LocalGroupDriver;
use tokio::sync::{oneshot, Notify};

/// The group coordinator of this broker.
pub struct Groups {
    inner: Mutex<Inner>,
    /// Woken when a call may have changed the next deadline.
    deadline_moved: Notify,
}

struct Inner {
    driver: LocalGroupDriver,
    next_id: RequestId,
    waiting: HashMap<RequestId, oneshot::Sender<Response>>,
}

impl std::fmt::Debug for Groups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Groups").finish_non_exhaustive()
    }
}

/// Wall-clock milliseconds: commit timestamps and offset expiry are wall-clock in Kafka.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Groups {
    /// Wraps a driver opened over the broker's storage.
    pub fn new(driver: LocalGroupDriver) -> Groups {
        Groups {
            inner: Mutex::new(Inner {
                driver,
                next_id: 0,
                waiting: HashMap::new(),
            }),
            deadline_moved: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends `request` to the coordinator and waits for its answer (which may take a
    /// rebalance). `None` when the coordinator dropped it (never, unless the broker is
    /// shutting down).
    pub async fn call(self: &Arc<Self>, request: Request) -> Option<Response> {
        let (tx, rx) = oneshot::channel();
        let me = Arc::clone(self);
        tokio::task::spawn_blocking(move || me.submit(request, tx))
            .await
            .ok()?;
        rx.await.ok()
    }

    fn submit(&self, request: Request, answer: oneshot::Sender<Response>) {
        let mut inner = self.lock();
        let id = inner.next_id;
        inner.next_id = inner.next_id.wrapping_add(1);
        inner.waiting.insert(id, answer);
        let answers = inner.driver.handle(now_ms(), id, request);
        inner.deliver(answers);
        drop(inner);
        self.deadline_moved.notify_one();
    }

    /// Runs the driver's timers when they are due, until the task is dropped.
    pub async fn run_timers(self: Arc<Self>) {
        // Longest sleep without a deadline: a safety net only, every change notifies.
        const IDLE: Duration = Duration::from_secs(60);
        loop {
            let next = self.lock().driver.next_deadline();
            let sleep = next.map_or(IDLE, |at| {
                Duration::from_millis(u64::try_from(at.saturating_sub(now_ms())).unwrap_or(0))
                    .min(IDLE)
            });
            tokio::select! {
                () = tokio::time::sleep(sleep) => {
                    let me = Arc::clone(&self);
                    let _ = tokio::task::spawn_blocking(move || me.tick()).await;
                }
                () = self.deadline_moved.notified() => {}
            }
        }
    }

    fn tick(&self) {
        let mut inner = self.lock();
        let answers = inner.driver.tick(now_ms());
        inner.deliver(answers);
    }
}

impl Inner {
    fn deliver(&mut self, answers: Vec<(RequestId, Response)>) {
        for (id, response) in answers {
            if let Some(tx) = self.waiting.remove(&id) {
                // The connection may be gone; its answer is dropped with it.
                let _ = tx.send(response);
            }
        }
    }
}
