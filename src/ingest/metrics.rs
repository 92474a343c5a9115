//! Counters of a source, shared between its thread and whoever reports status.

use std::sync::atomic::{AtomicU64, Ordering};

/// A source's counters. Everything is cumulative since the agent started.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct SourceMetrics {
    /// Records handed to the producer.
    pub records: AtomicU64,
    /// Bytes of record values handed to the producer.
    pub bytes: AtomicU64,
    /// Records in committed transactions.
    pub committed_records: AtomicU64,
    /// Transactions committed.
    pub commits: AtomicU64,
    /// Failures (a commit, a read) after which the source was rebuilt from its committed
    /// positions.
    pub errors: AtomicU64,
    /// Lines longer than the maximum, split into several records.
    pub lines_split: AtomicU64,
    /// Partial last lines emitted after the idle timeout.
    pub partial_lines: AtomicU64,
    /// Files seen truncated (copytruncate): while followed, or while the agent was down
    /// (on restart the inode is shorter than the position or holds other first bytes, and a
    /// plain copy holding the rest is found).
    pub truncations: AtomicU64,
    /// Truncated or vanished files whose rest was found in a copy (plain or gzip).
    pub copies_followed: AtomicU64,
    /// Gzip files read to finish a file whose plain copy was gone.
    pub gzip_reads: AtomicU64,
    /// Inodes found holding another file than the position recorded, with no plain copy
    /// of it (inode reuse, or a rotation whose rest is only in a gzip file or gone).
    pub identity_changes: AtomicU64,
    /// Files given up: unreadable, not a regular file (a directory, FIFO or device matching
    /// the globs), or vanished before being read to the end and never found again within the
    /// detach timeout.
    pub files_skipped: AtomicU64,
    /// Bytes known to be lost (a file gone before it was read to its end).
    pub bytes_lost: AtomicU64,
    /// Files currently followed.
    pub files_open: AtomicU64,
    /// A PostgreSQL source's replication slot lag: bytes of WAL between the server's
    /// current LSN and the position last committed (what the server must keep for it).
    pub slot_lag_bytes: AtomicU64,
    /// Milliseconds since the epoch of the last commit.
    pub last_commit_ms: AtomicU64,
    /// Polls in a row that found nothing new with nothing left uncommitted (0 while
    /// records flow): a source that is caught up.
    pub idle_streak: AtomicU64,
    /// Times the agent polled the source.
    pub polls: AtomicU64,
    /// Waits for more input ended by the source's waker (a file event, say) rather than by
    /// a deadline: a quiet source's polls are its wakes, its own next-poll instants and the
    /// commits due, never a timer of the agent's.
    pub wakes: AtomicU64,
    /// A PostgreSQL CDC source's peeks at its slot (a poll peeks only when the server's
    /// flushed WAL moved since a peek that found nothing).
    pub peeks: AtomicU64,
    /// The last error the source met (it was rebuilt from its committed positions after it).
    pub last_error: parking_lot::Mutex<Option<String>>,
}

impl SourceMetrics {
    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
