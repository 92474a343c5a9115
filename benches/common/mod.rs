//! Helpers shared by the partition-log benches (append, read, open).
#![allow(dead_code)] // each bench uses its own subset

use std::path::PathBuf;

/// splitmix64: a deterministic generator, so every run stores the same bytes and reads
/// the same offsets.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Fills `buf` with printable bytes, like typical JSON-ish values.
    pub fn fill_printable(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            for (b, x) in chunk.iter_mut().zip(self.next().to_le_bytes()) {
                *b = b' ' + x % 95;
            }
        }
    }
}

/// A temporary directory next to the build output (`CARGO_TARGET_DIR`, else `target/`):
/// the ext4 volume a log would live on, not a tmpfs.
pub fn scratch_root() -> tempfile::TempDir {
    let base = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target"));
    std::fs::create_dir_all(&base).expect("target dir");
    tempfile::tempdir_in(base).expect("temp dir")
}

/// The `.log` segment files of a partition directory, in offset order.
pub fn log_files(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    logs
}
