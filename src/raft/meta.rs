//! The store's small durable files: vote, committed log id, last purged log id.
//!
//! Each holds one JSON value and is replaced whole through the I/O seam: `<name>.tmp`,
//! fsync, rename over `<name>`, fsync of the directory ([`crate::io::write_file_atomic`]).
//! A crash leaves the old value or the new one, never a mix; a leftover `.tmp` is ignored.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::RaftStoreError;
use crate::io::{read_file, write_file_atomic, FileSystem};

/// The last vote (`save_vote`).
pub const VOTE_FILE: &str = "vote";
/// The last committed log id (`save_committed`).
pub const COMMITTED_FILE: &str = "committed";
/// The last purged log id, written before the records go (`purge`).
pub const PURGED_FILE: &str = "purged";

/// Reads the value in `path`; `None` when there is no file.
pub(crate) fn read<T: DeserializeOwned>(
    fs: &dyn FileSystem,
    path: &Path,
) -> Result<Option<T>, RaftStoreError> {
    if !fs.exists(path) {
        return Ok(None);
    }
    let bytes = read_file(fs, path)?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| RaftStoreError::CorruptFile {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
}

/// Replaces the value in `path`, durably, before returning.
pub(crate) fn write<T: Serialize>(
    fs: &dyn FileSystem,
    path: &Path,
    value: &T,
) -> Result<(), RaftStoreError> {
    let bytes = serde_json::to_vec(value).map_err(|source| RaftStoreError::Encode {
        what: "metadata",
        source,
    })?;
    write_file_atomic(fs, path, &bytes)?;
    Ok(())
}
