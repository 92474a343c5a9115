//! Producer id allocation, after Kafka's `ProducerIdManager`: ids are handed out from blocks,
//! and a block is reserved durably before any id in it is used, so an id is never handed out
//! twice, even across crashes (a crash only skips the rest of the block).
//!
//! ```text
//! <dir>/producer-id-block    the first id of the next block to reserve
//!
//! offset  size  field
//!      0     2  version (0), big-endian
//!      2     8  next block start, big-endian i64
//!     10     4  CRC-32C of bytes 0..10, big-endian
//! ```
//!
//! The file is replaced whole (tmp → fsync → rename → fsync dir) through the crate's
//! [`FileSystem`], so the simulated filesystem's crash tests apply to it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::io::{read_file, write_file_atomic, FileSystem};

/// Ids per block, as Kafka's controller hands them out (`ProducerIdsBlock.PRODUCER_ID_BLOCK_SIZE`).
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;

/// Name of the block file in the directory given to [`ProducerIdManager::open`].
pub const PRODUCER_ID_BLOCK_FILE: &str = "producer-id-block";

const VERSION: i16 = 0;
const VERSION_AT: usize = 0;
const NEXT_AT: usize = 2;
const CRC_AT: usize = 10;
const FILE_LEN: usize = 14;

/// A range of producer ids reserved for one coordinator (Kafka's `ProducerIdsBlock`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProducerIdBlock {
    /// The first id of the block.
    pub first_producer_id: i64,
    /// How many ids the block holds.
    pub size: i64,
}

impl ProducerIdBlock {
    /// The last id of the block.
    pub fn last_producer_id(&self) -> i64 {
        self.first_producer_id.saturating_add(self.size - 1)
    }

    /// The first id after the block.
    pub fn next_block_first_id(&self) -> i64 {
        self.first_producer_id.saturating_add(self.size)
    }
}

/// Hands out producer ids from durably reserved blocks.
///
/// [`reserve_block`](Self::reserve_block) makes the block's end durable before returning it;
/// [`generate_producer_id`](Self::generate_producer_id) hands ids out one by one, reserving a
/// new block when the current one is used up. The sans-IO
/// [`TransactionCoordinator`](super::TransactionCoordinator) asks for blocks with
/// [`Output::ReserveProducerIds`](super::Output::ReserveProducerIds) and the application answers
/// with a block from here.
///
/// ```
/// use std::sync::Arc;
/// use streamlog::io::RealFs;
/// use streamlog::txn::ProducerIdManager;
///
/// let dir = tempfile::tempdir()?;
/// let mut ids = ProducerIdManager::open(Arc::new(RealFs), dir.path())?;
/// assert_eq!(ids.generate_producer_id()?, 0);
/// assert_eq!(ids.generate_producer_id()?, 1);
/// drop(ids);
/// // After a restart the rest of the first block is skipped, never reused.
/// let mut ids = ProducerIdManager::open(Arc::new(RealFs), dir.path())?;
/// assert_eq!(ids.generate_producer_id()?, 1000);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct ProducerIdManager {
    fs: Arc<dyn FileSystem>,
    path: PathBuf,
    block_size: i64,
    /// The first id of the next block to reserve (what the file says).
    next_block_start: i64,
    /// Ids left in the current block: `[next, end)`.
    next: i64,
    end: i64,
}

impl ProducerIdManager {
    /// Opens the block file in `dir` (created on the first reservation), with Kafka's block
    /// size of 1,000.
    pub fn open(fs: Arc<dyn FileSystem>, dir: &Path) -> Result<Self> {
        Self::with_block_size(fs, dir, PRODUCER_ID_BLOCK_SIZE)
    }

    /// [`open`](Self::open) with another block size (at least 1).
    pub fn with_block_size(fs: Arc<dyn FileSystem>, dir: &Path, block_size: i64) -> Result<Self> {
        if block_size < 1 {
            return Err(Error::InvalidConfig {
                key: "producer id block size",
                value: block_size.to_string(),
                reason: "at least 1",
            });
        }
        let path = dir.join(PRODUCER_ID_BLOCK_FILE);
        let next_block_start = if fs.exists(&path) {
            decode(&path, &read_file(&*fs, &path)?)?
        } else {
            0
        };
        Ok(ProducerIdManager {
            fs,
            path,
            block_size,
            next_block_start,
            next: 0,
            end: 0,
        })
    }

    /// The first id of the block the next reservation will return.
    pub fn next_block_start(&self) -> i64 {
        self.next_block_start
    }

    /// Reserves the next block durably and returns it. On error nothing is reserved and the
    /// next call tries the same block again.
    pub fn reserve_block(&mut self) -> Result<ProducerIdBlock> {
        let first = self.next_block_start;
        let Some(after) = first.checked_add(self.block_size) else {
            return Err(Error::ProducerIdsExhausted {
                next_block_start: first,
            });
        };
        write_file_atomic(&*self.fs, &self.path, &encode(after))?;
        self.next_block_start = after;
        Ok(ProducerIdBlock {
            first_producer_id: first,
            size: self.block_size,
        })
    }

    /// The next unused producer id, reserving a new block first when the current one is
    /// used up.
    pub fn generate_producer_id(&mut self) -> Result<i64> {
        if self.next >= self.end {
            let block = self.reserve_block()?;
            self.next = block.first_producer_id;
            self.end = block.next_block_first_id();
        }
        let id = self.next;
        self.next += 1;
        Ok(id)
    }
}

fn encode(next_block_start: i64) -> [u8; FILE_LEN] {
    let mut b = [0u8; FILE_LEN];
    b[VERSION_AT..NEXT_AT].copy_from_slice(&VERSION.to_be_bytes());
    b[NEXT_AT..CRC_AT].copy_from_slice(&next_block_start.to_be_bytes());
    let crc = crate::record::crc::crc32c(&b[..CRC_AT]);
    b[CRC_AT..].copy_from_slice(&crc.to_be_bytes());
    b
}

fn decode(path: &Path, bytes: &[u8]) -> Result<i64> {
    let corrupt = |reason| Error::CorruptProducerIdBlock {
        path: path.to_path_buf(),
        reason,
    };
    let b: &[u8; FILE_LEN] = bytes.try_into().map_err(|_| corrupt("wrong length"))?;
    let [v0, v1, n @ .., c0, c1, c2, c3] = *b;
    let crc = u32::from_be_bytes([c0, c1, c2, c3]);
    if crate::record::crc::crc32c(b.get(..CRC_AT).unwrap_or_default()) != crc {
        return Err(corrupt("CRC-32C mismatch"));
    }
    if i16::from_be_bytes([v0, v1]) != VERSION {
        return Err(corrupt("unknown version"));
    }
    let next = i64::from_be_bytes(n);
    if next < 0 {
        return Err(corrupt("negative next block start"));
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::SimFs;

    #[test]
    fn ids_are_never_reused_across_crashes() {
        let fs = SimFs::new(7);
        let dir = Path::new("/coord");
        fs.create_dir_all(dir).unwrap();
        let mut seen = std::collections::HashSet::new();
        let mut fs_now = fs.clone();
        for round in 0..5 {
            let mut ids =
                ProducerIdManager::with_block_size(Arc::new(fs_now.clone()), dir, 10).unwrap();
            for _ in 0..(round * 7 + 3) {
                assert!(seen.insert(ids.generate_producer_id().unwrap()));
            }
            fs_now = fs_now.crash();
        }
    }

    #[test]
    fn failed_reservation_reserves_nothing() {
        let fs = SimFs::new(1);
        let dir = Path::new("/coord");
        fs.create_dir_all(dir).unwrap();
        let mut ids = ProducerIdManager::with_block_size(Arc::new(fs.clone()), dir, 10).unwrap();
        fs.fail_next(
            crate::io::SimOp::Sync,
            Some("producer-id-block"),
            crate::io::SimError::Eio,
        );
        assert!(ids.reserve_block().is_err());
        assert_eq!(ids.reserve_block().unwrap().first_producer_id, 0);
        assert_eq!(ids.reserve_block().unwrap().first_producer_id, 10);
    }

    #[test]
    fn corrupt_file_is_an_error_not_a_guess() {
        let fs = SimFs::new(2);
        let dir = Path::new("/coord");
        fs.create_dir_all(dir).unwrap();
        let path = dir.join(PRODUCER_ID_BLOCK_FILE);
        let mut bytes = encode(5000);
        bytes[5] ^= 1;
        write_file_atomic(&fs, &path, &bytes).unwrap();
        assert!(matches!(
            ProducerIdManager::open(Arc::new(fs.clone()), dir),
            Err(Error::CorruptProducerIdBlock { .. })
        ));
        for len in 0..FILE_LEN + 2 {
            let _ = decode(&path, &vec![0xff; len]);
        }
        assert_eq!(decode(&path, &encode(5000)).unwrap(), 5000);
    }

    #[test]
    fn exhaustion_is_an_error() {
        let fs = SimFs::new(3);
        let dir = Path::new("/coord");
        fs.create_dir_all(dir).unwrap();
        write_file_atomic(
            &fs,
            &dir.join(PRODUCER_ID_BLOCK_FILE),
            &encode(i64::MAX - 5),
        )
        .unwrap();
        let mut ids = ProducerIdManager::with_block_size(Arc::new(fs), dir, 10).unwrap();
        assert!(matches!(
            ids.generate_producer_id(),
            Err(Error::ProducerIdsExhausted { .. })
        ));
    }
}
