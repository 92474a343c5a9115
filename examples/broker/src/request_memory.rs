//! `queued.max.request.bytes`: one pool of bytes for the requests being read or handled on
//! every connection. A request's buffer grows as its bytes arrive, and each growth is first
//! taken from the pool; when the pool is empty the connection waits (its socket is not
//! read, as Kafka mutes it) until another request's bytes are returned. Many clients that
//! announce large requests can therefore hold at most the pool, and a client trickling
//! bytes holds only what it sent (the per-request read deadline closes it eventually).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::broker::Broker;

/// The pool: its permits are bytes.
#[derive(Debug)]
pub struct RequestMemory {
    permits: Semaphore,
    broker: Arc<Broker>,
}

impl RequestMemory {
    /// A pool of `queued_max_request_bytes`.
    pub fn new(broker: Arc<Broker>) -> Arc<Self> {
        let cap = usize::try_from(broker.config.queued_max_request_bytes)
            .unwrap_or(usize::MAX)
            .min(Semaphore::MAX_PERMITS);
        Arc::new(RequestMemory {
            permits: Semaphore::new(cap),
            broker,
        })
    }

    /// An empty lease on the pool.
    pub fn lease(self: &Arc<Self>) -> Lease {
        Lease {
            pool: Arc::clone(self),
            bytes: 0,
        }
    }
}

/// Bytes taken from the pool for one request; returned when dropped.
#[derive(Debug)]
pub struct Lease {
    pool: Arc<RequestMemory>,
    bytes: usize,
}

impl Lease {
    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Takes `n` more bytes from the pool, waiting while it is empty. `Err` if the pool can
    /// never hold that much (larger than the whole pool).
    pub async fn grow(&mut self, n: usize) -> Result<(), String> {
        let wanted = u32::try_from(n).map_err(|_| format!("{n} bytes at once"))?;
        let permit = self
            .pool
            .permits
            .acquire_many(wanted)
            .await
            .map_err(|_| "request memory pool closed".to_string())?;
        permit.forget();
        self.bytes += n;
        let metrics = &self.pool.broker.metrics;
        let now = metrics
            .queued_request_bytes
            .fetch_add(n as u64, Ordering::Relaxed)
            + n as u64;
        metrics
            .queued_request_bytes_peak
            .fetch_max(now, Ordering::Relaxed);
        Ok(())
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.bytes > 0 {
            // The gauge goes down before the permits are back, so it never exceeds the pool.
            self.pool
                .broker
                .metrics
                .queued_request_bytes
                .fetch_sub(self.bytes as u64, Ordering::Relaxed);
            self.pool.permits.add_permits(self.bytes);
        }
    }
}
