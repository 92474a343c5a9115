//! After an unclean shutdown the recovery scan reads the unflushed segments once; rebuilding
//! the producer state then skips the stretch the scan saw no producer batch in, and must
//! still know every producer batch after it (retries deduplicated, sequences continued).

use streamlog::{BatchBuilder, BatchOptions, Compression, Error, Log, LogConfig, OwnedRecord};

const T0: i64 = 1_700_000_000_000;

fn producer_batch(pid: i64, seq: i32, n: usize) -> Vec<u8> {
    let mut b = BatchBuilder::new(BatchOptions {
        producer_id: pid,
        producer_epoch: 3,
        base_sequence: seq,
        ..BatchOptions::compressed(Compression::None)
    });
    for i in 0..n {
        b.append(T0 + i as i64, Some(b"k"), Some(b"v"), &[])
            .unwrap();
    }
    b.build().unwrap()
}

fn plain(log: &Log, n: usize) {
    let records: Vec<OwnedRecord> = (0..n)
        .map(|i| OwnedRecord::new(T0 + i as i64, None, Some(b"plain")))
        .collect();
    log.append_records(&records, Compression::None).unwrap();
}

#[test]
fn producers_after_a_plain_prefix_survive_an_unclean_open() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig::builder()
        .segment_bytes(2 << 10)
        // several segments, all unflushed, no snapshots kept
        .build()
        .unwrap();
    let log = Log::open(dir.path(), config.clone()).unwrap();
    for _ in 0..60 {
        plain(&log, 5);
    }
    let first = log.append(&producer_batch(7, 0, 4)).unwrap();
    plain(&log, 5);
    let second = log.append(&producer_batch(7, 4, 4)).unwrap();
    let other = log.append(&producer_batch(9, 0, 2)).unwrap();
    plain(&log, 5);
    assert!(log.segment_count() > 2, "the test wants several segments");
    drop(log); // no close: unclean
               // Snapshots written at rolls would let the replay start late; without them the scan's
               // summary is what saves the second read.
    for e in std::fs::read_dir(dir.path()).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "snapshot") {
            std::fs::remove_file(p).unwrap();
        }
    }

    let (log, info) = Log::open_with(
        streamlog::io::RealFs::shared(),
        dir.path(),
        config,
        &mut |_| Ok(()),
    )
    .unwrap();
    assert!(!info.clean_shutdown);
    assert!(info.segments_recovered > 0);

    // Retries of both producers' last batches are answered with the original offsets.
    let retry = log.append(&producer_batch(7, 4, 4)).unwrap();
    assert!(retry.duplicate);
    assert_eq!(
        (retry.first_offset, retry.last_offset),
        (second.first_offset, second.last_offset)
    );
    let retry = log.append(&producer_batch(7, 0, 4)).unwrap();
    assert!(retry.duplicate);
    assert_eq!(retry.first_offset, first.first_offset);
    let retry = log.append(&producer_batch(9, 0, 2)).unwrap();
    assert!(retry.duplicate);
    assert_eq!(retry.first_offset, other.first_offset);
    // The sequence goes on where it was; a gap is refused.
    assert!(matches!(
        log.append(&producer_batch(7, 9, 1)),
        Err(Error::OutOfOrderSequence { .. })
    ));
    let next = log.append(&producer_batch(7, 8, 1)).unwrap();
    assert!(!next.duplicate);
}
