//! After a crash, recovery scans the segment holding the recovery point only from where the
//! recovery point lies in it, when the periodic checkpoint recorded that position
//! (`recovery-point-position`) and the batch recorded there is found: not the whole active
//! segment. A torn tail past that position is still cut, and a position that does not check
//! out (wrong CRC, another recovery point, bytes rewritten since, garbage) makes recovery
//! scan the whole segment, as before.
//!
//! Each case runs on a few `SimFs` seeds (`STREAMLOG_SIM_SEED=<n>` replays one).

use crate::common::sim_log::{self, append, contents, expected};

use streamlog::io::{FileSystem, OpenMode, SimFs};
use streamlog::log::{RECOVERY_POINT_CHECKPOINT, RECOVERY_POINT_POSITION};
use streamlog::LogConfig;

const SEEDS: u64 = 8;

fn seeds() -> Vec<u64> {
    match std::env::var("STREAMLOG_SIM_SEED") {
        Ok(s) => vec![s.parse().expect("STREAMLOG_SIM_SEED is a number")],
        Err(_) => (0..SEEDS).collect(),
    }
}

/// Index entries every few batches, one segment.
fn config() -> LogConfig {
    LogConfig::builder()
        .segment_index_bytes(4096)
        .index_interval_bytes(300)
        .segment_ms(None)
        .build()
        .unwrap()
}

const N: usize = 4;
const LEN: usize = 40;

/// Appends batches `tags` (each `N` records of `LEN` bytes) from `first`; returns their
/// descriptions and the offset after them.
fn batches(
    log: &streamlog::Log,
    tags: std::ops::Range<u64>,
    mut first: i64,
) -> (Vec<(u64, i64, usize, usize)>, i64) {
    let mut out = Vec::new();
    for tag in tags {
        out.push((tag, first, N, LEN));
        first = append(log, tag, N, LEN, first);
    }
    (out, first)
}

fn log_len(fs: &SimFs) -> u64 {
    fs.read_current(&sim_log::segment_file(0, "log"))
        .map_or(0, |b| b.len() as u64)
}

/// Reads each offset on its own: the rebuilt or kept index entries find every batch.
fn check_lookups(log: &streamlog::Log, want: &[(i64, Vec<u8>, Vec<u8>)], seed: u64) {
    for (offset, _, value) in want {
        let got = log
            .records_from(*offset)
            .next()
            .unwrap_or_else(|| panic!("seed {seed}: nothing at {offset}"))
            .unwrap_or_else(|e| panic!("seed {seed}: read at {offset}: {e}"));
        assert_eq!(got.offset(), *offset, "seed {seed}");
        assert_eq!(got.value().unwrap_or_default(), &value[..], "seed {seed}");
    }
}

#[test]
fn power_loss_after_checkpoint_scans_only_past_it() {
    for seed in seeds() {
        let fs = SimFs::new(seed);
        let (log, _) = sim_log::open(&fs, &config(), "first open");
        let (mut durable, end) = batches(&log, 0..40, 0);
        log.flush().unwrap();
        log.checkpoint().unwrap();
        let checkpointed_len = log.size_in_bytes();
        assert!(fs
            .read_current(&sim_log::file(RECOVERY_POINT_POSITION))
            .is_some());
        // Flushed but not checkpointed, then not flushed at all: both may be scanned.
        let (more, end2) = batches(&log, 40..50, end);
        log.flush().unwrap();
        let (_lost, _) = batches(&log, 50..55, end2);
        let fs = fs.crash();
        drop(log);
        let len = log_len(&fs);
        let (log, info) = sim_log::open(&fs, &config(), "after power loss");
        assert!(!info.clean_shutdown, "seed {seed}");
        assert_eq!(info.recovery_point, end, "seed {seed}");
        assert_eq!(
            info.bytes_scanned,
            len - checkpointed_len,
            "seed {seed}: recovery scanned from the checkpointed position"
        );
        // Everything flushed survived, and what follows it is a prefix of what was appended.
        durable.extend(more);
        let want = expected(&durable);
        let got = contents(&log);
        assert!(got.len() >= want.len(), "seed {seed}: lost flushed records");
        assert_eq!(&got[..want.len()], &want[..], "seed {seed}");
        check_lookups(&log, &want, seed);
        // The log goes on: appends, a clean close, a reopen that scans nothing.
        let next = log.log_end_offset();
        let (tail, _) = batches(&log, 100..103, next);
        log.close().unwrap();
        let (log, info) = sim_log::open(&fs, &config(), "clean reopen");
        assert!(info.clean_shutdown, "seed {seed}");
        let mut want_all = got.clone();
        want_all.extend(expected(&tail));
        assert_eq!(contents(&log), want_all, "seed {seed}");
        check_lookups(&log, &want_all, seed);
    }
}

#[test]
fn torn_tail_after_checkpointed_position_is_cut() {
    for seed in seeds() {
        let fs = SimFs::new(seed);
        let (log, _) = sim_log::open(&fs, &config(), "first open");
        let (mut durable, end) = batches(&log, 0..30, 0);
        log.flush().unwrap();
        log.checkpoint().unwrap();
        let checkpointed_len = log.size_in_bytes();
        let (more, _) = batches(&log, 30..35, end);
        log.flush().unwrap();
        let fs = fs.crash();
        drop(log);
        // A torn write after the flushed bytes: a batch header cut short, then garbage.
        let file = fs
            .open(&sim_log::segment_file(0, "log"), OpenMode::ReadWrite)
            .unwrap();
        let garbage: Vec<u8> = (0..37u8).map(|i| i.wrapping_mul(seed as u8 | 1)).collect();
        file.append(&[&garbage]).unwrap();
        file.sync_data().unwrap();
        drop(file);
        let len = log_len(&fs);
        let (log, info) = sim_log::open(&fs, &config(), "after the torn write");
        assert_eq!(info.bytes_truncated, garbage.len() as u64, "seed {seed}");
        assert_eq!(info.bytes_scanned, len - checkpointed_len, "seed {seed}");
        durable.extend(more);
        let want = expected(&durable);
        assert_eq!(contents(&log), want, "seed {seed}");
        check_lookups(&log, &want, seed);
    }
}

/// Opens after a crash with the position file as `edit` leaves it: recovery must scan the
/// whole segment and find what `want` says.
fn full_scan_when(edit: impl Fn(&SimFs, &str) -> String, what: &str) {
    for seed in seeds() {
        let fs = SimFs::new(seed);
        let (log, _) = sim_log::open(&fs, &config(), "first open");
        let (durable, end) = batches(&log, 0..30, 0);
        log.flush().unwrap();
        log.checkpoint().unwrap();
        let fs = fs.crash();
        drop(log);
        let path = sim_log::file(RECOVERY_POINT_POSITION);
        let text = String::from_utf8(fs.read_current(&path).unwrap()).unwrap();
        let edited = edit(&fs, &text);
        streamlog::io::write_file_atomic(&fs, &path, edited.as_bytes()).unwrap();
        let len = log_len(&fs);
        let (log, info) = sim_log::open(&fs, &config(), what);
        assert_eq!(info.bytes_scanned, len, "seed {seed}: {what}: a full scan");
        assert_eq!(info.recovery_point, end, "seed {seed}: {what}");
        let want = expected(&durable);
        assert_eq!(contents(&log), want, "seed {seed}: {what}");
        check_lookups(&log, &want, seed);
    }
}

/// Replaces field `i` (0-based, on the second line) of the position file's text.
fn with_field(text: &str, i: usize, f: impl Fn(i64) -> i64) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut fields: Vec<i64> = lines[1].split(' ').map(|v| v.parse().unwrap()).collect();
    fields[i] = f(fields[i]);
    lines[1] = fields
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(" ");
    lines.join("\n") + "\n"
}

#[test]
fn position_with_a_wrong_crc_means_a_full_scan() {
    full_scan_when(|_, t| with_field(t, 4, |crc| crc ^ 1), "wrong CRC");
}

#[test]
fn position_for_another_recovery_point_means_a_full_scan() {
    full_scan_when(
        |_, t| with_field(t, 0, |rp| rp - 4),
        "another recovery point",
    );
}

#[test]
fn position_past_the_file_means_a_full_scan() {
    full_scan_when(
        |_, t| with_field(t, 5, |p| p + 1_000_000),
        "position past the end",
    );
}

#[test]
fn unreadable_position_means_a_full_scan() {
    full_scan_when(|_, _| "0\nnot numbers\n".to_string(), "garbage");
}

#[test]
fn position_with_too_many_index_entries_means_a_full_scan() {
    full_scan_when(
        |_, t| with_field(t, 6, |n| n + 3),
        "index entries never synced",
    );
}

/// A position left from before a truncation, beside a recovery-point checkpoint that names
/// the same offset again: the bytes there are another batch now, whose CRC differs.
#[test]
fn stale_position_over_rewritten_bytes_means_a_full_scan() {
    for seed in seeds() {
        let fs = SimFs::new(seed);
        let (log, _) = sim_log::open(&fs, &config(), "first open");
        let (_, end) = batches(&log, 0..30, 0);
        log.flush().unwrap();
        log.checkpoint().unwrap();
        let path = sim_log::file(RECOVERY_POINT_POSITION);
        let stale = fs.read_current(&path).unwrap();
        // Cut back and write other batches (other values) over the same offsets.
        log.truncate_to(end - 4 * N as i64).unwrap();
        let (rewritten, end2) = batches(&log, 500..504, end - 4 * N as i64);
        assert_eq!(end2, end);
        log.flush().unwrap();
        let fs = fs.crash();
        drop(log);
        streamlog::io::write_file_atomic(&fs, &path, &stale).unwrap();
        streamlog::io::write_file_atomic(
            &fs,
            &sim_log::file(RECOVERY_POINT_CHECKPOINT),
            sim_log::checkpoint_text(end).as_bytes(),
        )
        .unwrap();
        let len = log_len(&fs);
        let (log, info) = sim_log::open(&fs, &config(), "stale position");
        assert_eq!(info.bytes_scanned, len, "seed {seed}: a full scan");
        let got = contents(&log);
        let want_tail = expected(&rewritten);
        assert_eq!(
            &got[got.len() - want_tail.len()..],
            &want_tail[..],
            "seed {seed}"
        );
        check_lookups(&log, &want_tail, seed);
    }
}
