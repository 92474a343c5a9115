//! What can go wrong in the Raft store, and how it reaches openraft.

use std::path::PathBuf;

use openraft::{AnyError, ErrorSubject, ErrorVerb, StorageError, StorageIOError};

/// An error of the Raft log store or state machine. openraft sees it wrapped in a
/// [`StorageError`] (as its source), which stops the Raft node: storage errors are fatal.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RaftStoreError {
    /// The log (or a file through the crate's I/O seam) failed.
    #[error(transparent)]
    Log(#[from] crate::Error),

    /// A Raft term above what a Kafka partition leader epoch (`i32`) can hold.
    #[error("entry {index}: term {term} does not fit a partition leader epoch (at most 2^31 - 1)")]
    TermTooLarge {
        /// The entry's index.
        index: u64,
        /// The term.
        term: u64,
    },

    /// A Raft index above what a log offset (`i64`) can hold.
    #[error("index {index} does not fit a log offset (at most 2^63 - 1)")]
    IndexTooLarge {
        /// The index.
        index: u64,
    },

    /// Entries handed to `append` that would leave a hole in the log or go back in it.
    #[error("entry {index} appended where entry {expected} is next")]
    NotContiguous {
        /// The index of the entry appended.
        index: u64,
        /// The index the log expects next.
        expected: u64,
    },

    /// A stored batch that does not decode as a Raft entry.
    #[error("entry at offset {offset}: {reason}")]
    CorruptEntry {
        /// The batch's offset (the entry's index).
        offset: i64,
        /// What is wrong.
        reason: String,
    },

    /// A metadata or snapshot file that does not decode.
    #[error("{}: {reason}", path.display())]
    CorruptFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// A value that serde could not encode.
    #[error("encoding {what}: {source}")]
    Encode {
        /// What was being encoded.
        what: &'static str,
        /// serde's error.
        source: serde_json::Error,
    },

    /// A write that ran in the background (the committed log id) failed earlier.
    #[error("background write failed: {0}")]
    Background(String),
}

impl RaftStoreError {
    /// Wraps the error for openraft, naming what was being done.
    pub(crate) fn storage<NID: openraft::NodeId>(
        self,
        subject: ErrorSubject<NID>,
        verb: ErrorVerb,
    ) -> StorageError<NID> {
        StorageIOError::new(subject, verb, AnyError::new(&self)).into()
    }

    pub(crate) fn read_logs<NID: openraft::NodeId>(self) -> StorageError<NID> {
        self.storage(ErrorSubject::Logs, ErrorVerb::Read)
    }

    pub(crate) fn write_logs<NID: openraft::NodeId>(self) -> StorageError<NID> {
        self.storage(ErrorSubject::Logs, ErrorVerb::Write)
    }

    pub(crate) fn delete_logs<NID: openraft::NodeId>(self) -> StorageError<NID> {
        self.storage(ErrorSubject::Logs, ErrorVerb::Delete)
    }
}
