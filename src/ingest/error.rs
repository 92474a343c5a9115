//! The ingestion layer's error type.

use std::path::PathBuf;

use crate::KafkaCode;

/// What went wrong in an agent or a source.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IngestError {
    /// The storage refused an operation (append, flush, topic admin).
    #[error(transparent)]
    Storage(#[from] crate::Error),
    /// A file operation of a source failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was attempted (`open`, `read`, `stat`, ...).
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The transaction coordinator answered a request with an error code.
    #[error("transaction coordinator refused {op} for {transactional_id}: {code}")]
    Transaction {
        /// The request (`InitProducerId`, `AddPartitionsToTxn`, `EndTxn`).
        op: &'static str,
        /// The source's transactional id.
        transactional_id: String,
        /// Kafka's error code.
        code: KafkaCode,
    },
    /// The agent's configuration is invalid (an unknown key, a bad value).
    #[error("invalid ingest config: {0}")]
    Config(String),
    /// A committed position could not be read back (written by another version, damaged).
    #[error("unreadable position {key} of source {source_name}: {reason}")]
    BadPosition {
        /// The source.
        source_name: String,
        /// The position's key within the source.
        key: String,
        /// Why it could not be decoded.
        reason: String,
    },
    /// A PostgreSQL source failed (feature `ingest-postgres`).
    #[cfg(feature = "ingest-postgres")]
    #[error("source {source_name}: {error}")]
    Postgres {
        /// The source.
        source_name: String,
        /// What failed.
        #[source]
        error: super::postgres::PostgresError,
    },
    /// A source failed in a way of its own.
    #[error("source {source_name}: {reason}")]
    Source {
        /// The source.
        source_name: String,
        /// What failed.
        reason: String,
    },
}

/// Results of the ingestion layer.
pub type Result<T> = std::result::Result<T, IngestError>;
