//! A local source of producer ids for idempotent producers, until the transaction
//! coordinator (src/txn/) owns them.
//!
//! Ids must never repeat across restarts: a new producer handed an id the log still knows
//! would have its first batch refused as out of sequence. Ids are reserved in blocks; the
//! end of the reserved block is written durably to the data directory before any id in it is
//! handed out, so after a crash the broker starts from a fresh block.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::durable_file;

/// The file holding the first id not yet reserved.
pub const PRODUCER_ID_FILE: &str = "broker-producer-ids";

/// Ids reserved per write of the file.
const BLOCK: i64 = 1000;

/// Hands out producer ids in blocks reserved durably.
#[derive(Debug)]
pub struct ProducerIds {
    path: PathBuf,
    next: i64,
    block_end: i64,
}

impl ProducerIds {
    /// Opens the source in `data_dir`.
    pub fn open(data_dir: &Path) -> anyhow::Result<ProducerIds> {
        let path = data_dir.join(PRODUCER_ID_FILE);
        let next = match std::fs::read_to_string(&path) {
            Ok(text) => text
                .trim()
                .parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .with_context(|| format!("{} is corrupt", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        Ok(ProducerIds {
            path,
            next,
            block_end: next,
        })
    }

    /// The next producer id (epoch 0 is the caller's).
    pub fn next_id(&mut self) -> anyhow::Result<i64> {
        if self.next >= self.block_end {
            let end = self.next + BLOCK;
            durable_file::write(&self.path, &format!("{end}\n"))
                .with_context(|| format!("writing {}", self.path.display()))?;
            self.block_end = end;
        }
        let id = self.next;
        self.next += 1;
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_never_repeat_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut ids = ProducerIds::open(dir.path()).unwrap();
        let a: Vec<i64> = (0..3).map(|_| ids.next_id().unwrap()).collect();
        assert_eq!(a, [0, 1, 2]);
        drop(ids);
        let mut ids = ProducerIds::open(dir.path()).unwrap();
        assert_eq!(ids.next_id().unwrap(), BLOCK);
    }
}
