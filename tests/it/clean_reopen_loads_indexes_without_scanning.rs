//! After `close`, opening the log trusts its files: `RecoveryInfo` says the shutdown was
//! clean and no segment was recovered, the recovery hook sees no batch, the sealed
//! segments' index files are used as they are, and everything reads back. The clean marker
//! is consumed, so a crash after that open is treated as unclean.

use crate::common::logs;

use logs::{fill, offsets_from, open_recording, segment_files, small_segments, span, T0};
use streamlog::{Error, Log};

#[test]
fn clean_open_scans_nothing_and_reads_everything() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = small_segments(1024);
    let log = Log::open(dir.path(), cfg.clone()).unwrap();
    let appended = fill(&log, 30, 4);
    let bases = log.segment_base_offsets();
    assert!(bases.len() > 3);
    log.close().unwrap();

    let index_files: Vec<_> = segment_files(dir.path(), "index")
        .into_iter()
        .chain(segment_files(dir.path(), "timeindex"))
        .collect();
    let before: Vec<Vec<u8>> = index_files
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    assert!(before.iter().any(|b| !b.is_empty()));

    let (log, info, seen) = open_recording(dir.path(), cfg.clone());
    assert!(info.clean_shutdown);
    assert_eq!(info.segments_recovered, 0);
    assert_eq!(info.bytes_truncated, 0);
    assert!(seen.is_empty(), "the hook saw {seen:?}");
    assert_eq!(log.segment_base_offsets(), bases);
    assert_eq!(log.log_end_offset(), 120);
    assert_eq!(offsets_from(&log, 0), span(0, 120));
    for &(base, last) in &appended {
        let data = log.read(last, 1, None).unwrap();
        assert_eq!(data.first_batch_offset, Some(base));
        assert_eq!(data.next_offset, last + 1);
    }
    for b in 0..30 {
        assert_eq!(
            log.offset_for_timestamp(T0 + b).unwrap(),
            Some((appended[b as usize].0, T0 + b))
        );
    }
    // The sealed segments' indexes were read, not rebuilt.
    for (path, bytes) in index_files.iter().zip(&before) {
        let base_of_active = format!("{:020}", bases.last().unwrap());
        if path.to_string_lossy().contains(&base_of_active) {
            continue; // the active segment's indexes are reopened for writing
        }
        assert!(
            &std::fs::read(path).unwrap() == bytes,
            "{} changed",
            path.display()
        );
    }

    // Appends continue; the marker is gone, so dropping without close is a crash.
    let info = log
        .append_records(
            &logs::records(99, 2, T0 + 99, 4),
            streamlog::Compression::None,
        )
        .unwrap();
    assert_eq!(info.first_offset, 120);
    log.abandon();
    let (log, info, seen) = open_recording(dir.path(), cfg);
    assert!(!info.clean_shutdown);
    assert_eq!(info.segments_recovered, 1);
    assert!(!seen.is_empty());
    assert_eq!(seen.last(), Some(&(120, 121)));
    assert_eq!(offsets_from(&log, 0), span(0, 122));
}

#[test]
fn a_closed_log_refuses_everything() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small_segments(1024)).unwrap();
    fill(&log, 2, 2);
    log.close().unwrap();
    let closed = |r: streamlog::Result<()>| matches!(r, Err(Error::LogClosed { .. }));
    assert!(closed(log.close()));
    assert!(closed(log.append(&logs::batch(1, T0)).map(|_| ())));
    assert!(closed(
        log.append_replicated(&logs::replica_batch(4, 1, 0, T0))
            .map(|_| ())
    ));
    assert!(closed(log.roll()));
    assert!(closed(log.flush().map(|_| ())));
    assert!(closed(log.truncate_to(1)));
    assert!(closed(log.delete_records_before(1)));
    // Nothing changed on disk: a clean open sees all four records.
    let (log, info, _) = open_recording(dir.path(), small_segments(1024));
    assert!(info.clean_shutdown);
    assert_eq!(offsets_from(&log, 0), span(0, 4));
}
