//! A CRC proves the bytes are what some writer wrote, not that they make sense. A batch
//! at the tail of the last `.log` whose CRC is right (recomputed after the damage, or over
//! fields it does not cover) but whose fields are impossible — a negative record count, a
//! last offset delta too small for the count, a base offset inside the previous batch, magic
//! 1, a length past the end of the file, a record count that disagrees with the records —
//! is cut by recovery like any torn tail. When the recovery-point checkpoint claims that
//! batch durable, opening fails with `DamageBelowRecoveryPoint`, unless
//! `truncate_damage_below_recovery_point` is set: then it is cut and reported.

use crate::common::logs;

use std::path::Path;

use logs::{append_to_file, fill, fix_crc, offsets_from, segment_file, span, T0};
use streamlog::io::RealFs;
use streamlog::{BatchBuilder, BatchOptions, Error, Log, LogConfig, RecoveryInfo};

/// Records in the log before the crafted batch.
const END: i64 = 15;
/// Records the crafted batch holds (or claims to).
const CRAFTED: i64 = 3;

fn config() -> LogConfig {
    logs::small_segments(1 << 20)
        .to_builder()
        .segment_index_bytes(4096)
        .build()
        .unwrap()
}

/// A valid, uncompressed batch of three records at `END`, to be damaged.
fn good_batch() -> Vec<u8> {
    let mut b = BatchBuilder::new(BatchOptions {
        base_offset: END,
        ..BatchOptions::default()
    });
    for i in 0..CRAFTED {
        let value = format!("crafted-{i}");
        b.append(T0 + 50, Some(b"k"), Some(value.as_bytes()), &[])
            .unwrap();
    }
    b.build().unwrap()
}

fn put_i32(b: &mut [u8], at: usize, v: i32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

// Header positions (record/header.rs): base offset 0, length 8, magic 16, CRC 17,
// attributes 21, last offset delta 23, record count 57.
const LENGTH: usize = 8;
const MAGIC: usize = 16;
const ATTRIBUTES: usize = 21;
const LAST_OFFSET_DELTA: usize = 23;
const RECORD_COUNT: usize = 57;

/// Each impossible batch: what is wrong, and the bytes.
fn crafted() -> Vec<(&'static str, Vec<u8>)> {
    let mut out = Vec::new();
    let mut case = |name, damage: &dyn Fn(&mut Vec<u8>)| {
        let mut b = good_batch();
        damage(&mut b);
        out.push((name, b));
    };
    case("negative record count", &|b| {
        put_i32(b, RECORD_COUNT, -1);
        fix_crc(b);
    });
    case("last offset delta smaller than count - 1", &|b| {
        put_i32(b, LAST_OFFSET_DELTA, 1);
        fix_crc(b);
    });
    case("negative last offset delta", &|b| {
        put_i32(b, LAST_OFFSET_DELTA, -1);
        fix_crc(b);
    });
    // The base offset is outside the CRC by Kafka's design.
    case("base offset inside the previous batch", &|b| {
        b[..8].copy_from_slice(&(END - 2).to_be_bytes());
    });
    case("base offset far below the previous batch", &|b| {
        b[..8].copy_from_slice(&0i64.to_be_bytes());
    });
    // Magic and length come before the CRC's range.
    case("magic 1", &|b| b[MAGIC] = 1);
    case("length past the end of the file", &|b| {
        let len = i32::from_be_bytes(b[LENGTH..LENGTH + 4].try_into().unwrap());
        put_i32(b, LENGTH, len + 100);
    });
    case("length below a header's", &|b| put_i32(b, LENGTH, 20));
    case("unknown compression codec", &|b| {
        b[ATTRIBUTES + 1] |= 0x07;
        fix_crc(b);
    });
    case("record count above the records held", &|b| {
        put_i32(b, RECORD_COUNT, CRAFTED as i32 + 1);
        put_i32(b, LAST_OFFSET_DELTA, CRAFTED as i32);
        fix_crc(b);
    });
    case("record count below the records held", &|b| {
        put_i32(b, RECORD_COUNT, CRAFTED as i32 - 1);
        fix_crc(b);
    });
    case("records past the last offset delta", &|b| {
        // Count 2 and delta 1 agree with each other, but three records are stored.
        put_i32(b, RECORD_COUNT, 2);
        put_i32(b, LAST_OFFSET_DELTA, 1);
        fix_crc(b);
    });
    out
}

/// A crashed log holding offsets `0..END` in two segments, with `tail` written after its
/// last batch and the recovery-point checkpoint saying `recovery_point`. Returns the last
/// segment's `.log` path and its length before `tail`.
fn damaged_log(dir: &Path, tail: &[u8], recovery_point: i64) -> (std::path::PathBuf, u64) {
    let log = Log::open(dir, config()).unwrap();
    fill(&log, 2, 3);
    log.roll().unwrap();
    fill(&log, 3, 3);
    assert_eq!(log.log_end_offset(), END);
    let base = *log.segment_base_offsets().last().unwrap();
    log.flush().unwrap();
    drop(log);
    let path = segment_file(dir, base, "log");
    let len = std::fs::metadata(&path).unwrap().len();
    append_to_file(&path, tail);
    // Kafka's format, written by hand: "0\n1\n<topic> <partition> <offset>\n".
    std::fs::write(
        dir.join("recovery-point-offset-checkpoint"),
        format!("0\n1\nt 0 {recovery_point}\n"),
    )
    .unwrap();
    (path, len)
}

fn try_open(dir: &Path, config: LogConfig) -> Result<(Log, RecoveryInfo, Vec<i64>), Error> {
    let mut seen = Vec::new();
    let (log, info) = Log::open_with(RealFs::shared(), dir, config, &mut |b| {
        seen.push(b.base_offset());
        Ok(())
    })?;
    Ok((log, info, seen))
}

/// The log is back to `0..END`, cut exactly after the last good batch, and appends there.
fn assert_cut(log: &Log, info: &RecoveryInfo, path: &Path, len: u64, tail: u64, what: &str) {
    assert!(!info.clean_shutdown, "{what}");
    assert_eq!(info.bytes_truncated, tail, "{what}: bytes_truncated");
    assert_eq!(std::fs::metadata(path).unwrap().len(), len, "{what}");
    assert_eq!(log.log_end_offset(), END, "{what}");
    assert_eq!(offsets_from(log, 0), span(0, END), "{what}");
    let info = log
        .append(&logs::batch(2, T0 + 99))
        .unwrap_or_else(|e| panic!("{what}: append after recovery: {e}"));
    assert_eq!(info.first_offset, END, "{what}");
    assert_eq!(offsets_from(log, 0), span(0, END + 2), "{what}");
}

#[test]
fn recovery_cuts_an_impossible_batch_past_the_recovery_point() {
    for (what, bytes) in crafted() {
        let dir = tempfile::tempdir().unwrap();
        let (path, len) = damaged_log(dir.path(), &bytes, END);
        let (log, info, seen) =
            try_open(dir.path(), config()).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(info.recovery_point, END, "{what}");
        assert!(seen.is_empty(), "{what}: the hook saw {seen:?}");
        assert_cut(&log, &info, &path, len, bytes.len() as u64, what);
    }
}

/// A valid batch after the impossible one goes too: nothing after the first invalid byte
/// can be trusted to continue the log.
#[test]
fn recovery_cuts_everything_after_an_impossible_batch() {
    for (what, bytes) in crafted() {
        let dir = tempfile::tempdir().unwrap();
        let mut tail = bytes.clone();
        tail.extend(logs::replica_batch(END + CRAFTED, 2, 0, T0 + 60));
        let (path, len) = damaged_log(dir.path(), &tail, END);
        let (log, info, _) =
            try_open(dir.path(), config()).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_cut(&log, &info, &path, len, tail.len() as u64, what);
    }
}

#[test]
fn an_impossible_batch_below_the_recovery_point_fails_the_open() {
    for (what, bytes) in crafted() {
        let dir = tempfile::tempdir().unwrap();
        let (path, len) = damaged_log(dir.path(), &bytes, END + CRAFTED);
        match try_open(dir.path(), config()) {
            Err(Error::DamageBelowRecoveryPoint {
                path: p,
                position,
                offset,
                recovery_point,
            }) => {
                assert_eq!(p, path, "{what}");
                assert_eq!(
                    position, len,
                    "{what}: the damage starts after the good bytes"
                );
                assert_eq!(offset, END, "{what}: the offset expected there");
                assert_eq!(recovery_point, END + CRAFTED, "{what}");
            }
            Err(e) => panic!("{what}: wrong error {e:?}"),
            Ok(_) => panic!("{what}: opened over damage below the recovery point"),
        }
        // Refusing changed nothing on disk.
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            len + bytes.len() as u64,
            "{what}"
        );

        let truncate = config()
            .to_builder()
            .truncate_damage_below_recovery_point(true)
            .build()
            .unwrap();
        let (log, info, _) =
            try_open(dir.path(), truncate).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(
            info.recovery_point, END,
            "{what}: the recovery point comes down to what is left"
        );
        assert_cut(&log, &info, &path, len, bytes.len() as u64, what);
        assert_eq!(log.flush().unwrap(), END + 2, "{what}");
    }
}

/// Segments below the recovery point's are trusted at open, as Kafka trusts them: not
/// scanned. A batch there whose base offset goes back below the batch before it is found
/// by the reader instead, as a typed error, after the records before it, and never makes
/// record iteration hand out an offset twice or loop.
#[test]
fn a_batch_going_back_in_a_trusted_segment_fails_the_read() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), config()).unwrap();
    fill(&log, 3, 3);
    let first_end = log.log_end_offset();
    log.roll().unwrap();
    fill(&log, 2, 3);
    log.flush().unwrap();
    log.checkpoint().unwrap();
    drop(log);
    // Appended to the first segment: offsets 3.. again, where 6.. was expected.
    append_to_file(
        &segment_file(dir.path(), 0, "log"),
        &logs::replica_batch(first_end - 3, 3, 0, T0),
    );
    let (log, info, _) = try_open(dir.path(), config()).unwrap();
    assert_eq!(info.segments_recovered, 1, "the first segment is trusted");
    let mut offsets = Vec::new();
    let mut error = None;
    for r in log.records_from(0) {
        match r {
            Ok(r) => offsets.push(r.offset()),
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    assert_eq!(offsets, span(0, first_end));
    assert!(
        matches!(error, Some(Error::InvalidBatchHeader { base_offset, .. }) if base_offset == first_end - 3),
        "{error:?}"
    );
}
