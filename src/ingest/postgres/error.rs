//! What can go wrong in a PostgreSQL source.

use super::pgoutput::PgOutputError;

/// A PostgreSQL source's failure; the agent counts it, aborts the open transaction and
/// rebuilds the source from its committed position (so a server that goes away and comes
/// back loses nothing).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PostgresError {
    /// The client failed: connecting, a query, the server going away.
    #[error("{op}: {error}")]
    Client {
        /// What was attempted.
        op: &'static str,
        /// The client's error.
        #[source]
        error: postgres::Error,
    },
    /// The streaming replication connection failed (connecting, authenticating,
    /// `START_REPLICATION`, the server ending the stream).
    #[error("replication stream: {op}: {reason}")]
    Replication {
        /// What was attempted.
        op: &'static str,
        /// What went wrong.
        reason: String,
    },
    /// A change message could not be decoded.
    #[error(transparent)]
    Decode(#[from] PgOutputError),
    /// The messages are well formed but out of the protocol's order (a change outside a
    /// transaction, a change of a table never described).
    #[error("pgoutput stream out of order: {0}")]
    Protocol(String),
    /// The initial snapshot cannot be read (a table without a key to read it in order,
    /// an unreadable snapshot).
    #[error("initial snapshot: {0}")]
    Snapshot(String),
    /// The slot is not what this source expects (another plugin, another database).
    #[error("replication slot {slot}: {reason}")]
    Slot {
        /// The slot's name.
        slot: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl PostgresError {
    pub(crate) fn client(op: &'static str) -> impl FnOnce(postgres::Error) -> PostgresError {
        move |error| PostgresError::Client { op, error }
    }
}
