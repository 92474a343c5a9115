//! Real-process crash test: a child process appends and flushes after every batch,
//! reporting each durable offset over a pipe; the parent SIGKILLs it at random moments,
//! sometimes corrupts or cuts the unacknowledged tail of the last segment, then reopens the
//! log and checks that every acknowledged record is there and intact, offsets are
//! contiguous, and nothing corrupt or never written comes back.
//!
//! Rounds: `STREAMLOG_KILL_ROUNDS` (default 60); seed: `STREAMLOG_KILL_SEED` (printed).
//! The same test runs again (half the rounds) with direct-I/O appends: the child's
//! unflushed bytes are then in its memory, not the page cache, when it is killed.

use crate::common::rng;
use rng::Rng;

use std::io::{BufRead, BufReader};
use std::sync::mpsc;
use std::time::Duration;

/// How long the test waits for a line from its child before it fails.
const PATIENCE: Duration = Duration::from_secs(60);
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use streamlog::{Batches, Compression, Log, LogConfig, OwnedRecord};

const CHILD_ENV: &str = "STREAMLOG_CRASH_CHILD_DIR";
/// Set (to anything) for a child that appends with direct I/O.
const CHILD_DIRECT_ENV: &str = "STREAMLOG_CRASH_CHILD_DIRECT";

fn config(direct: bool) -> LogConfig {
    LogConfig::builder()
        .segment_bytes(48 * 1024)
        .index_interval_bytes(1024)
        .direct_io(direct)
        // Small writes, so that chunks fill (and are written directly) between flushes.
        .direct_io_write_bytes(8192)
        .build()
        .unwrap()
}

fn value_for(offset: i64) -> Vec<u8> {
    let mut v = format!("value-{offset}-").into_bytes();
    v.resize(40 + (offset % 97) as usize, b'a' + (offset % 26) as u8);
    v
}

/// The child's work: runs only when the parent starts this test binary with CHILD_ENV set.
#[test]
fn crash_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let direct = std::env::var_os(CHILD_DIRECT_ENV).is_some();
    let log = Log::open(PathBuf::from(dir), config(direct)).unwrap();
    let mut round = 0u64;
    loop {
        round += 1;
        let first = log.log_end_offset();
        let n = 1 + (round % 13) as i64;
        let records: Vec<OwnedRecord> = (0..n)
            .map(|i| {
                let off = first + i;
                OwnedRecord::new(
                    1_700_000_000_000 + off,
                    Some(&off.to_be_bytes()),
                    Some(&value_for(off)),
                )
            })
            .collect();
        let codec = if round % 3 == 0 {
            Compression::Lz4
        } else {
            Compression::None
        };
        let info = log.append_records(&records, codec).unwrap();
        assert_eq!(info.first_offset, first);
        let durable = log.flush().unwrap();
        assert!(durable > info.last_offset);
        println!("durable {}", info.last_offset);
    }
}

fn last_segment(dir: &Path) -> Option<PathBuf> {
    // A child killed before it created the directory left nothing to damage.
    let entries = match std::fs::read_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        entries => entries.unwrap(),
    };
    let mut logs: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    logs.pop()
}

/// Damages bytes of the last segment that lie past every acknowledged batch.
fn damage_unacknowledged_tail(dir: &Path, acked: i64, rng: &mut Rng) -> &'static str {
    let Some(path) = last_segment(dir) else {
        return "none";
    };
    let mut bytes = std::fs::read(&path).unwrap();
    // The end of the last acknowledged batch in this file (0 if none is in it).
    let mut safe_end = 0usize;
    let mut pos = 0usize;
    for b in Batches::new(&bytes) {
        let Ok(b) = b else { break };
        pos += b.size_in_bytes();
        if b.last_offset() <= acked {
            safe_end = pos;
        }
    }
    if bytes.len() <= safe_end {
        return "none";
    }
    let span = (bytes.len() - safe_end) as u64;
    if rng.below(2) == 0 {
        let keep = safe_end + rng.below(span) as usize;
        bytes.truncate(keep);
        std::fs::write(&path, &bytes).unwrap();
        "truncated"
    } else {
        for _ in 0..1 + rng.below(8) {
            let at = safe_end + rng.below(span) as usize;
            bytes[at] ^= 1 << rng.below(8);
        }
        std::fs::write(&path, &bytes).unwrap();
        "corrupted"
    }
}

/// Reopens the log and checks it against what the child acknowledged.
fn check(dir: &Path, acked: i64, round: usize, seed: u64, direct: bool) -> i64 {
    let ctx = format!("round {round}, seed {seed}, direct I/O {direct}");
    let log =
        Log::open(dir, config(direct)).unwrap_or_else(|e| panic!("{ctx}: reopen failed: {e}"));
    let leo = log.log_end_offset();
    assert!(
        leo > acked,
        "{ctx}: acknowledged offset {acked} lost (log end {leo})"
    );
    let mut expected = 0i64;
    for r in log.records_from(0) {
        let r = r.unwrap_or_else(|e| panic!("{ctx}: read failed at {expected}: {e}"));
        assert_eq!(r.offset(), expected, "{ctx}: offsets not contiguous");
        assert_eq!(
            r.value(),
            Some(&value_for(expected)[..]),
            "{ctx}: record {expected} corrupt"
        );
        assert_eq!(
            r.key(),
            Some(&expected.to_be_bytes()[..]),
            "{ctx}: key of {expected}"
        );
        expected += 1;
    }
    assert_eq!(
        expected, leo,
        "{ctx}: records end before the log end offset"
    );
    // Close cleanly half the time, so rounds start from both states.
    if round % 2 == 0 {
        log.close().unwrap();
    }
    leo
}

#[test]
fn sigkill_at_random_moments_loses_nothing_acknowledged() {
    kill_rounds(false);
}

#[test]
fn sigkill_with_direct_io_loses_nothing_acknowledged() {
    kill_rounds(true);
}

fn kill_rounds(direct: bool) {
    let rounds: usize = std::env::var("STREAMLOG_KILL_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let rounds = if direct { rounds.div_ceil(2) } else { rounds };
    let seed: u64 = std::env::var("STREAMLOG_KILL_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(7, |d| d.as_nanos() as u64)
        });
    println!("kill test (direct I/O {direct}): {rounds} rounds, STREAMLOG_KILL_SEED={seed}");
    let mut rng = Rng(seed);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("crash-0");
    let exe = std::env::current_exe().unwrap();
    let mut acked = -1i64;
    let mut damaged = 0;
    for round in 0..rounds {
        let mut command = Command::new(&exe);
        command
            .args([
                "crash_kill_process::crash_child",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if direct {
            command.env(CHILD_DIRECT_ENV, "1");
        }
        let mut child = command.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        // Read on a thread of its own so every wait is bounded: a child that hangs fails
        // the test (after it is killed) instead of stalling CI.
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let wait_for = rng.below(25);
        let mut seen = 0;
        while seen < wait_for {
            let line = match lines.recv_timeout(PATIENCE) {
                Ok(line) => line,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("seed {seed}, round {round}: no line from the child in {PATIENCE:?}");
                }
            };
            if let Some(v) = line.strip_prefix("durable ") {
                acked = acked.max(v.trim().parse().unwrap());
                seen += 1;
            }
        }
        child.kill().unwrap();
        // Lines already in the pipe were acknowledged before the kill: count them too. The
        // pipe closes when the killed child is gone, which ends the reader thread.
        loop {
            match lines.recv_timeout(PATIENCE) {
                Ok(line) => {
                    if let Some(v) = line.strip_prefix("durable ") {
                        acked = acked.max(v.trim().parse().unwrap());
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!("seed {seed}, round {round}: the killed child's output never closed")
                }
            }
        }
        child.wait().unwrap();
        if rng.below(2) == 0 && damage_unacknowledged_tail(&dir, acked, &mut rng) != "none" {
            damaged += 1;
        }
        let leo = check(&dir, acked, round, seed, direct);
        acked = acked.max(leo - 1).min(leo - 1);
    }
    println!(
        "kill test: {rounds} rounds passed, {damaged} with a damaged tail, {} records",
        acked + 1
    );
}
