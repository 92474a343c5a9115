//! Exclusive directory locks: one writer per partition or data directory, across threads and
//! processes, as Kafka locks its log directories with a `.lock` file.

use std::io;
use std::path::{Path, PathBuf};

use super::{read_file, FileSystem};
use crate::error::{Error, Result};

/// Name of the lock file in a locked directory.
pub const LOCK_FILE: &str = ".lock";

/// An exclusive lock on a file, held until the value is dropped.
pub trait FileLock: Send + Sync + std::fmt::Debug {}

/// The lock of a backend that has none (every request is granted).
#[derive(Debug)]
pub(crate) struct NoLock;

impl FileLock for NoLock {}

/// Takes the exclusive lock on `dir` (its [`LOCK_FILE`]), or fails with
/// [`Error::DirectoryLocked`] naming the directory and, when the holder wrote it, its
/// process id.
pub fn lock_dir(fs: &dyn FileSystem, dir: &Path) -> Result<Box<dyn FileLock>> {
    let path = dir.join(LOCK_FILE);
    match fs.try_lock(&path) {
        Ok(lock) => Ok(lock),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(Error::DirectoryLocked {
            dir: dir.to_path_buf(),
            holder_pid: holder_pid(fs, &path),
        }),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// The process id written in a lock file, if one was.
fn holder_pid(fs: &dyn FileSystem, path: &Path) -> Option<u32> {
    let bytes = read_file(fs, path).ok()?;
    std::str::from_utf8(&bytes).ok()?.trim().parse().ok()
}

/// The path of the lock file of `dir`.
pub fn lock_path(dir: &Path) -> PathBuf {
    dir.join(LOCK_FILE)
}
