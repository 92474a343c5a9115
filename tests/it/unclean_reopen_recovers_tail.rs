//! A log dropped without `close` is recovered on open: the segments from the one holding
//! the recovery point on are scanned and validated, whatever follows the last valid batch
//! (garbage, a torn half batch, a batch with a bad CRC or going backwards, zero fill) is cut
//! off and counted in `RecoveryInfo::bytes_truncated`, and the recovery hook sees every
//! valid batch from the recovery point, in order. Appends then continue where the valid
//! data ends.

use crate::common::logs;

use logs::{
    batch, file_len, fill, offsets_from, open_recording, replica_batch, segment_file,
    small_segments, span, T0,
};
use streamlog::{Log, LogConfig};

/// Offsets the crashed log holds: 30 flushed batches × 4 records, then 3 unflushed ones.
const FLUSHED_END: i64 = 120;
const END: i64 = 132;

/// A multi-segment log flushed (recovery point checkpointed) at offset 120, then three more
/// batches appended, then dropped without close. Returns its config, the batches after the
/// recovery point, and the last segment's `.log` path and size.
fn crashed_log(dir: &std::path::Path) -> (LogConfig, Vec<(i64, i64)>, std::path::PathBuf, u64) {
    let cfg = small_segments(1024);
    let log = Log::open(dir, cfg.clone()).unwrap();
    fill(&log, 30, 4);
    assert_eq!(log.flush().unwrap(), FLUSHED_END);
    log.checkpoint().unwrap();
    let unflushed: Vec<_> = (0..3)
        .map(|i| {
            let info = log.append(&batch(4, T0 + 100 + i)).unwrap();
            (info.first_offset, info.last_offset)
        })
        .collect();
    assert_eq!(log.log_end_offset(), END);
    let tail_base = *log.segment_base_offsets().last().unwrap();
    assert!(log.segment_count() > 3);
    log.abandon();
    let path = segment_file(dir, tail_base, "log");
    let size = file_len(&path);
    (cfg, unflushed, path, size)
}

/// Appends `junk` to the last segment, reopens, and checks recovery cut exactly `junk`.
fn recovers_from(junk: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, unflushed, path, size) = crashed_log(dir.path());
    logs::append_to_file(&path, junk);

    let (log, info, seen) = open_recording(dir.path(), cfg.clone());
    assert!(!info.clean_shutdown);
    assert_eq!(info.recovery_point, FLUSHED_END);
    assert!(info.segments_recovered >= 1 && info.segments_recovered <= 2);
    assert_eq!(info.bytes_truncated, junk.len() as u64);
    assert_eq!(
        seen, unflushed,
        "the hook sees the batches after the recovery point"
    );
    assert_eq!(file_len(&path), size);
    assert_eq!(log.log_end_offset(), END);
    assert_eq!(offsets_from(&log, 0), span(0, END));

    let info = log.append(&batch(3, T0 + 500)).unwrap();
    assert_eq!(info.first_offset, END);
    log.close().unwrap();
    let (log, info, seen) = open_recording(dir.path(), cfg);
    assert!(info.clean_shutdown);
    assert!(seen.is_empty());
    assert_eq!(offsets_from(&log, 0), span(0, END + 3));
}

#[test]
fn garbage_after_the_last_batch() {
    recovers_from(&[0xab; 333]);
}

#[test]
fn half_a_batch() {
    let next = replica_batch(END, 4, 0, T0);
    recovers_from(&next[..next.len() / 2]);
    recovers_from(&next[..7]);
}

#[test]
fn whole_batch_with_a_bad_crc() {
    let mut next = replica_batch(END, 4, 0, T0);
    *next.last_mut().unwrap() ^= 0xff;
    recovers_from(&next);
}

#[test]
fn batch_whose_offsets_go_backwards() {
    // A whole, valid batch (CRC and all) whose offsets fall below the end already reached.
    recovers_from(&replica_batch(100, 4, 0, T0));
}

#[test]
fn zero_fill() {
    recovers_from(&[0; 4096]);
}

#[test]
fn valid_batch_then_junk_keeps_the_valid_batch() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, mut unflushed, path, _) = crashed_log(dir.path());
    // A whole valid batch made it to disk after the last published one; then a torn write.
    let extra = replica_batch(END, 2, 0, T0);
    logs::append_to_file(&path, &extra);
    logs::append_to_file(&path, &[1, 2, 3]);
    let (log, info, seen) = open_recording(dir.path(), cfg);
    assert_eq!(info.bytes_truncated, 3);
    unflushed.push((END, END + 1));
    assert_eq!(seen, unflushed);
    assert_eq!(log.log_end_offset(), END + 2);
    assert_eq!(offsets_from(&log, 0), span(0, END + 2));
}

#[test]
fn never_flushed_log_is_recovered_whole() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = small_segments(1024);
    let log = Log::open(dir.path(), cfg.clone()).unwrap();
    let appended = fill(&log, 30, 4);
    let segments = log.segment_count();
    let tail_base = *log.segment_base_offsets().last().unwrap();
    log.abandon();
    logs::append_to_file(&segment_file(dir.path(), tail_base, "log"), &[9; 100]);
    let (log, info, seen) = open_recording(dir.path(), cfg);
    assert_eq!(info.recovery_point, 0);
    assert_eq!(info.segments_recovered, segments);
    assert_eq!(info.bytes_truncated, 100);
    assert_eq!(seen, appended, "the hook sees every batch, in order");
    assert_eq!(offsets_from(&log, 0), span(0, 120));
}

#[test]
fn empty_tail_segment_with_only_junk() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = small_segments(1024);
    let log = Log::open(dir.path(), cfg.clone()).unwrap();
    let appended = fill(&log, 3, 4);
    log.roll().unwrap();
    assert_eq!(log.segment_base_offsets(), vec![0, 12]);
    log.abandon();
    logs::append_to_file(&segment_file(dir.path(), 12, "log"), &[7; 50]);
    let (log, info, seen) = open_recording(dir.path(), cfg);
    assert_eq!(info.bytes_truncated, 50);
    assert_eq!(seen, appended, "never flushed: every segment is scanned");
    assert_eq!(log.log_end_offset(), 12);
    assert_eq!(offsets_from(&log, 0), span(0, 12));
    assert_eq!(log.append(&batch(1, T0)).unwrap().first_offset, 12);
}

#[test]
fn hook_error_fails_the_open() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, _, _, _) = crashed_log(dir.path());
    let result = Log::open_with(
        streamlog::io::RealFs::shared(),
        dir.path(),
        cfg,
        &mut |_| {
            Err(streamlog::Error::InvalidArgument(
                "producer state refused".into(),
            ))
        },
    );
    assert!(matches!(result, Err(streamlog::Error::InvalidArgument(_))));
}
