//! Tests of `verify_partition`.

use super::*;
use crate::record::{
    BatchBuilder, BatchOptions, Compression, ControlRecord, OwnedRecord, TimestampType,
};
use crate::{Log, LogConfig};

fn small_segments() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        index_interval_bytes: 256,
        ..LogConfig::default()
    }
}

/// A closed log of several segments: plain, lz4 and control batches.
fn build_log(dir: &Path) -> i64 {
    let log = Log::open(dir, small_segments()).unwrap();
    for i in 0..60i64 {
        let value = format!("value-{i:04}-{}", "x".repeat(40));
        let codec = if i % 3 == 0 {
            Compression::Lz4
        } else {
            Compression::None
        };
        let records = [
            OwnedRecord::new(1_000 + i, Some(b"key"), Some(value.as_bytes())),
            OwnedRecord::new(1_000 + i, None, Some(value.as_bytes())),
        ];
        log.append_records(&records, codec).unwrap();
    }
    let marker = BatchBuilder::control_batch(
        BatchOptions {
            base_offset: log.log_end_offset(),
            producer_id: 7,
            producer_epoch: 0,
            ..BatchOptions::default()
        },
        &ControlRecord::end_txn(true, 3),
        2_000,
    )
    .unwrap();
    log.append_replicated(&marker).unwrap();
    let leo = log.log_end_offset();
    log.close().unwrap();
    leo
}

fn segment_logs(dir: &Path) -> Vec<PathBuf> {
    let logs = list_segment_files(dir).unwrap();
    logs.into_iter().map(|(_, p)| p).collect()
}

/// Size of the first batch in the `.log` file at `path`.
fn first_batch_size(path: &Path) -> usize {
    let mut reader = SegmentReader::open(path).unwrap();
    let (_, batch) = reader.next_batch().unwrap().unwrap();
    batch.size_in_bytes()
}

/// Rewrites the file at `path` through `damage`.
fn rewrite(path: &Path, damage: impl FnOnce(&mut Vec<u8>)) {
    let mut bytes = std::fs::read(path).unwrap();
    damage(&mut bytes);
    std::fs::write(path, &bytes).unwrap();
}

fn kinds(report: &VerifyReport) -> Vec<FindingKind> {
    report.problems.iter().map(|f| f.kind).collect()
}

#[test]
fn good_log_verifies_clean() {
    let dir = tempfile::tempdir().unwrap();
    let leo = build_log(dir.path());
    let report = verify_partition(dir.path()).unwrap();
    assert!(report.is_ok(), "{:#?}", report.problems);
    assert!(
        report.segments > 2,
        "small segments roll: {}",
        report.segments
    );
    assert_eq!(report.batches, 61);
    assert_eq!(report.records, 121);
    assert_eq!(report.first_offset, Some(0));
    assert_eq!(report.last_offset, Some(leo - 1));
    assert!(report.clean_shutdown);
    let on_disk: u64 = segment_logs(dir.path())
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert_eq!(report.bytes, on_disk);
    assert_eq!(report.note_count, 0, "{:#?}", report.notes);
}

#[test]
fn open_log_with_preallocated_indexes_verifies_with_notes() {
    let dir = tempfile::tempdir().unwrap();
    build_log(dir.path());
    let log = Log::open(dir.path(), small_segments()).unwrap();
    log.append_records(&[OwnedRecord::new(5, None, Some(b"v"))], Compression::None)
        .unwrap();
    let mut seen = Vec::new();
    let report = verify_partition_with(&RealFs, dir.path(), &mut |p| seen.push(p)).unwrap();
    assert!(report.is_ok(), "{:#?}", report.problems);
    assert!(!report.clean_shutdown);
    assert!(report
        .notes
        .iter()
        .any(|n| n.kind == FindingKind::PreallocatedIndex));
    let last = seen.last().copied().unwrap();
    assert_eq!(last.bytes_done, last.bytes_total);
    assert_eq!(last.bytes_total, report.bytes);
    assert!(seen.windows(2).all(|w| w[0].bytes_done <= w[1].bytes_done));
    drop(log);
}

#[test]
fn verify_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    build_log(dir.path());
    let snapshot = |dir: &Path| {
        let mut files: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let p = e.unwrap().path();
                let bytes = std::fs::read(&p).unwrap();
                (p, bytes)
            })
            .collect();
        files.sort();
        files
    };
    let before = snapshot(dir.path());
    rewrite(&segment_logs(dir.path())[0], |b| b[70] ^= 0xff);
    let before_damaged = snapshot(dir.path());
    assert_ne!(before, before_damaged);
    verify_partition(dir.path()).unwrap();
    assert_eq!(snapshot(dir.path()), before_damaged);
}

#[test]
fn flipped_byte_is_a_checksum_problem_at_its_batch() {
    let dir = tempfile::tempdir().unwrap();
    build_log(dir.path());
    let path = segment_logs(dir.path())[1].clone();
    let second_at = first_batch_size(&path);
    rewrite(&path, |b| b[second_at + 70] ^= 0x01);
    let report = verify_partition(dir.path()).unwrap();
    assert!(!report.is_ok());
    assert_eq!(kinds(&report), [FindingKind::Checksum]);
    assert_eq!(report.problems[0].path, path);
    assert_eq!(report.problems[0].position, second_at as u64);
    // The walk goes on past a bad CRC: every batch is still counted.
    assert_eq!(report.batches, 61);
}

#[test]
fn truncated_batch_is_a_frame_problem() {
    let dir = tempfile::tempdir().unwrap();
    build_log(dir.path());
    let path = segment_logs(dir.path())[0].clone();
    let first = first_batch_size(&path);
    rewrite(&path, |b| b.truncate(first + 30));
    let report = verify_partition(dir.path()).unwrap();
    let frame: Vec<&Finding> = report
        .problems
        .iter()
        .filter(|f| f.kind == FindingKind::BatchFrame)
        .collect();
    assert_eq!(frame.len(), 1, "{:#?}", report.problems);
    assert_eq!(frame[0].path, path);
    assert_eq!(frame[0].position, first as u64);
    assert!(frame[0].detail.contains("truncated"), "{}", frame[0].detail);
}

#[test]
fn corrupt_offset_index_is_named() {
    let dir = tempfile::tempdir().unwrap();
    build_log(dir.path());
    let index = segment_logs(dir.path())[0].with_extension("index");
    // Point the second entry's position into the middle of a batch.
    rewrite(&index, |b| b[15] = b[15].wrapping_add(1));
    let report = verify_partition(dir.path()).unwrap();
    assert_eq!(
        kinds(&report),
        [FindingKind::OffsetIndex],
        "{:#?}",
        report.problems
    );
    assert_eq!(report.problems[0].path, index);
    assert_eq!(report.problems[0].position, 8);

    rewrite(&index, |b| b.truncate(b.len() - 3));
    let report = verify_partition(dir.path()).unwrap();
    assert!(report
        .problems
        .iter()
        .any(|f| f.detail.contains("not a multiple")));
}

#[test]
fn bad_time_index_entry_is_named() {
    let dir = tempfile::tempdir().unwrap();
    build_log(dir.path());
    let index = segment_logs(dir.path())[0].with_extension("timeindex");
    // A timestamp far above anything in the segment.
    rewrite(&index, |b| b[0] = 0x10);
    let report = verify_partition(dir.path()).unwrap();
    assert!(!report.problems.is_empty());
    assert!(report
        .problems
        .iter()
        .all(|f| f.kind == FindingKind::TimeIndex && f.path == index));
}

#[test]
fn overlapping_segments_are_a_problem_and_gaps_a_note() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    let batch = |base: i64, n: i64| {
        let mut b = BatchBuilder::new(BatchOptions {
            base_offset: base,
            ..BatchOptions::default()
        });
        for i in 0..n {
            b.append(i, None, Some(b"v"), &[]).unwrap();
        }
        b.build().unwrap()
    };
    log.append_replicated(&batch(0, 5)).unwrap();
    log.append_replicated(&batch(10, 5)).unwrap(); // a gap: 5..=9
    log.roll().unwrap();
    log.append_replicated(&batch(15, 5)).unwrap();
    log.close().unwrap();
    let report = verify_partition(dir.path()).unwrap();
    assert!(report.is_ok(), "{:#?}", report.problems);
    assert_eq!(report.note_count, 1);
    assert_eq!(report.notes[0].kind, FindingKind::OffsetGap);
    assert!(report.notes[0].detail.contains("[5, 9]"));

    // A third segment re-using offsets 12..=16.
    let overlapping = batch(12, 5);
    std::fs::write(dir.path().join("00000000000000000012.log"), &overlapping).unwrap();
    let report = verify_partition(dir.path()).unwrap();
    assert!(!report.is_ok());
    assert!(kinds(&report)
        .iter()
        .all(|k| *k == FindingKind::OffsetOverlap));
    assert!(report
        .problems
        .iter()
        .any(|f| f.path.ends_with("00000000000000000012.log")));
}

#[test]
fn batch_below_segment_base_and_bad_names_are_problems() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = BatchBuilder::new(BatchOptions::default());
    b.append(0, None, Some(b"v"), &[]).unwrap();
    let bytes = b.build().unwrap();
    std::fs::write(dir.path().join("00000000000000000100.log"), &bytes).unwrap();
    std::fs::write(dir.path().join("7.log"), &bytes).unwrap();
    std::fs::write(dir.path().join("partition.metadata"), b"ignored").unwrap();
    let report = verify_partition(dir.path()).unwrap();
    let mut found = kinds(&report);
    found.sort_by_key(|k| k.name());
    assert_eq!(
        found,
        [FindingKind::BadFileName, FindingKind::OffsetOutsideSegment]
    );
    assert_eq!(report.segments, 1);
    assert!(report
        .notes
        .iter()
        .all(|n| n.kind == FindingKind::MissingIndex));
}

#[test]
fn garbage_never_panics_and_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut garbage = vec![0u8; 5000];
    for b in &mut garbage {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        *b = state as u8;
    }
    std::fs::write(dir.path().join("00000000000000000000.log"), &garbage).unwrap();
    std::fs::write(
        dir.path().join("00000000000000000000.index"),
        &garbage[..13],
    )
    .unwrap();
    std::fs::write(dir.path().join("00000000000000000000.timeindex"), &garbage).unwrap();
    std::fs::write(dir.path().join(LOG_START_OFFSET_CHECKPOINT), &garbage[..20]).unwrap();
    let report = verify_partition(dir.path()).unwrap();
    assert!(!report.is_ok());
    assert!(kinds(&report).contains(&FindingKind::BatchFrame));
    assert!(kinds(&report).contains(&FindingKind::Checkpoint));
}

#[test]
fn missing_directory_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = verify_partition(&dir.path().join("absent")).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
}

/// No false alarms: whatever sequence of operations the library performs, the
/// directory it leaves (closed cleanly, or dropped open as a crash would leave it)
/// verifies without problems.
#[test]
fn every_log_the_library_writes_verifies() {
    let mut rng = crate::rng::Rng::new(0x9e37_79b9_7f4a_7c15);
    let mut next = move |n: u64| rng.next_u64() % n;
    for round in 0..6 {
        let dir = tempfile::tempdir().unwrap();
        let config = || LogConfig {
            segment_bytes: 1500,
            index_interval_bytes: 100,
            segment_index_bytes: 4096,
            message_timestamp_type: if round % 2 == 0 {
                TimestampType::CreateTime
            } else {
                TimestampType::LogAppendTime
            },
            ..LogConfig::default()
        };
        let mut log = Log::open(dir.path(), config()).unwrap();
        for step in 0..120 {
            match next(20) {
                0 => log.roll().unwrap(),
                1 => {
                    let end = log.log_end_offset();
                    log.truncate_to(end - next(8) as i64).unwrap();
                }
                2 => {
                    let (start, end) = (log.log_start_offset(), log.log_end_offset());
                    let at = start + next((end - start + 1) as u64) as i64;
                    log.delete_records_before(at).unwrap();
                }
                3 => {
                    // A replica batch past a compaction gap.
                    let mut b = BatchBuilder::new(BatchOptions {
                        base_offset: log.log_end_offset() + next(4) as i64,
                        ..BatchOptions::default()
                    });
                    b.append(step, None, Some(b"replica"), &[]).unwrap();
                    log.append_replicated(&b.build().unwrap()).unwrap();
                }
                4 => {
                    // Reopen, cleanly or as after a crash.
                    if next(2) == 0 {
                        log.close().unwrap();
                    }
                    drop(log);
                    log = Log::open(dir.path(), config()).unwrap();
                }
                _ => {
                    let n = 1 + next(4);
                    let records: Vec<OwnedRecord> = (0..n)
                        .map(|i| {
                            let ts = 10_000 + next(1000) as i64 + i as i64;
                            OwnedRecord::new(ts, Some(b"k"), Some(&[b'v'; 40]))
                        })
                        .collect();
                    let codec = [Compression::None, Compression::Lz4][next(2) as usize];
                    log.append_records(&records, codec).unwrap();
                }
            }
            if step % 30 == 29 {
                let report = verify_partition(dir.path()).unwrap();
                assert!(
                    report.is_ok(),
                    "round {round} step {step}: {:#?}",
                    report.problems
                );
            }
        }
        if round % 2 == 0 {
            log.close().unwrap();
        }
        drop(log);
        let report = verify_partition(dir.path()).unwrap();
        assert!(report.is_ok(), "round {round}: {:#?}", report.problems);
    }
}
