//! Waking long-polling fetches when data arrives.
//!
//! STOP-GAP until `Log` has its own wait-for-data API: this broker is the only writer of its
//! logs, so it bumps a counter after every append and a waiting fetch sleeps on the counter
//! (no polling, no fixed sleeps) until it changes or `fetch.max.wait.ms` passes. Every
//! waiting fetch wakes on any append and re-reads; with the log's API a fetch will wait on
//! the partitions it reads instead.

use tokio::sync::watch;
use tokio::time::Instant;

/// Appends happened since the broker started, observable by waiters.
#[derive(Debug)]
pub struct AppendSignal {
    appends: watch::Sender<u64>,
}

impl Default for AppendSignal {
    fn default() -> Self {
        AppendSignal {
            appends: watch::Sender::new(0),
        }
    }
}

impl AppendSignal {
    /// Records that data (or a transaction marker) was appended somewhere.
    pub fn appended(&self) {
        self.appends.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A waiter to take *before* reading, so an append racing with the read still wakes it.
    pub fn waiter(&self) -> Waiter {
        let mut rx = self.appends.subscribe();
        rx.mark_unchanged();
        Waiter { rx }
    }
}

/// Waits for the next append after it was made.
#[derive(Debug)]
pub struct Waiter {
    rx: watch::Receiver<u64>,
}

impl Waiter {
    /// Returns when something was appended since the waiter was made (or since the last
    /// call), or at `deadline`.
    pub async fn wait(&mut self, deadline: Instant) {
        let _ = tokio::time::timeout_at(deadline, self.rx.changed()).await;
        self.rx.mark_unchanged();
    }
}
