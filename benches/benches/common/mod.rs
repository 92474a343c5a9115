//! Helpers shared by the partition-log benches (append, read, open).
#![allow(dead_code)] // each bench uses its own subset

use std::path::PathBuf;
use std::time::Duration;

// splitmix64, the same seeded generator the tests use: every run stores the same bytes
// and reads the same offsets.
#[path = "../../../tests/it/common/rng.rs"]
mod rng;
pub use rng::Rng;

impl Rng {
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
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target")));
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

/// The calling thread's CPU time (user and system), for figures that a busy machine's
/// waiting for a core does not inflate.
pub fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the call's duration.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}
