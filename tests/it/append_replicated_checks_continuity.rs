//! A follower's append keeps the leader's offsets and leader epochs byte for byte. A batch
//! starting below the log end offset is refused (`UnexpectedAppendOffset`) and nothing of
//! the call is written; one starting above it is a compaction gap, which reads skip.

use crate::common::logs;

use logs::{batch_ranges, fetched, replica_batch, T0};
use streamlog::{Batch, Error, Log, LogConfig};

fn offsets(log: &Log, from: i64) -> Vec<i64> {
    log.records_from(from)
        .map(|r| r.unwrap().offset())
        .collect()
}

#[test]
fn stores_the_leaders_bytes_as_sent() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    log.set_leader_epoch(9).unwrap(); // the follower's own epoch does not touch replicated batches
    let mut sent = replica_batch(0, 3, 4, T0);
    sent.extend(replica_batch(3, 2, 5, T0 + 1));
    let info = log.append_replicated(&sent).unwrap();
    assert_eq!((info.first_offset, info.last_offset), (0, 4));
    assert_eq!(info.record_count, 5);
    assert_eq!(info.size_in_bytes, sent.len() as u64);
    assert_eq!(log.log_end_offset(), 5);
    let stored = log.read_bytes(0, usize::MAX, None).unwrap();
    assert!(stored == sent, "stored bytes differ from the leader's");
    let first = Batch::new(&stored[..sent.len() - replica_batch(3, 2, 5, T0 + 1).len()]).unwrap();
    assert_eq!(first.partition_leader_epoch(), 4);
}

#[test]
fn base_below_the_log_end_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    log.append_replicated(&replica_batch(0, 10, 1, T0)).unwrap();
    let size = log.size_in_bytes();
    for (base, n) in [(0, 1), (9, 1), (5, 10)] {
        match log.append_replicated(&replica_batch(base, n, 1, T0)) {
            Err(Error::UnexpectedAppendOffset {
                base_offset,
                last_offset,
                log_end_offset,
            }) => assert_eq!(
                (base_offset, last_offset, log_end_offset),
                (base, base + n as i64 - 1, 10)
            ),
            other => panic!("base {base}: expected UnexpectedAppendOffset, got {other:?}"),
        }
    }
    // A call whose first batch is fine but whose second overlaps it writes nothing.
    let mut two = replica_batch(10, 5, 1, T0);
    two.extend(replica_batch(12, 5, 1, T0));
    assert!(matches!(
        log.append_replicated(&two),
        Err(Error::UnexpectedAppendOffset {
            base_offset: 12,
            log_end_offset: 10,
            ..
        })
    ));
    // So does one whose second batch is corrupt.
    let mut two = replica_batch(10, 5, 1, T0);
    let mut bad = replica_batch(15, 5, 1, T0);
    *bad.last_mut().unwrap() ^= 1;
    two.extend(bad);
    assert!(matches!(
        log.append_replicated(&two),
        Err(Error::ChecksumMismatch { .. })
    ));
    assert!(matches!(log.append_replicated(&[]), Err(Error::NoBatches)));
    assert_eq!(log.log_end_offset(), 10);
    assert_eq!(log.size_in_bytes(), size);
    assert_eq!(offsets(&log, 0), (0..10).collect::<Vec<_>>());
}

#[test]
fn base_above_the_log_end_leaves_a_gap_reads_skip() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    log.append_replicated(&replica_batch(0, 5, 1, T0)).unwrap();
    let info = log.append_replicated(&replica_batch(20, 5, 2, T0)).unwrap();
    assert_eq!(info.first_offset, 20);
    assert_eq!(log.log_end_offset(), 25);
    assert_eq!(
        offsets(&log, 0),
        [0, 1, 2, 3, 4, 20, 21, 22, 23, 24].to_vec()
    );
    // Reading in the gap returns the batch after it.
    for offset in [5, 12, 19] {
        let data = log.read(offset, 1, None).unwrap();
        assert_eq!(
            batch_ranges(&fetched(&data)),
            vec![(20, 24)],
            "read({offset})"
        );
        assert_eq!(data.next_offset, 25);
        assert_eq!(offsets(&log, offset), (20..25).collect::<Vec<_>>());
    }
    // The gap is below the end, so it cannot be filled afterwards.
    assert!(log.append_replicated(&replica_batch(10, 1, 2, T0)).is_err());
    // A producer append continues after the gap.
    let info = log.append(&logs::batch(1, T0)).unwrap();
    assert_eq!(info.first_offset, 25);

    log.close().unwrap();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(log.log_end_offset(), 26);
    assert_eq!(offsets(&log, 7), [20, 21, 22, 23, 24, 25].to_vec());
}

#[test]
fn gap_at_the_start_of_an_empty_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    log.append_replicated(&replica_batch(100, 3, 1, T0))
        .unwrap();
    assert_eq!(log.log_end_offset(), 103);
    // The batch fits the empty first segment: the log still starts at 0.
    assert_eq!(log.segment_base_offsets(), vec![0]);
    assert_eq!(log.log_start_offset(), 0);
    // Every offset in the gap finds the first batch rather than nothing.
    for offset in [0, 50, 99, 100] {
        let data = log.read(offset, 1 << 20, None).unwrap();
        assert_eq!(
            batch_ranges(&fetched(&data)),
            vec![(100, 102)],
            "read({offset})"
        );
        assert_eq!(offsets(&log, offset), vec![100, 101, 102], "from {offset}");
    }
    drop(log);
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(log.log_end_offset(), 103);
    assert_eq!(log.log_start_offset(), 0);
    assert_eq!(offsets(&log, 0), vec![100, 101, 102]);
}
