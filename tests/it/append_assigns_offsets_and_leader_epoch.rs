//! A producer batch gets its offsets from the log, whatever base offset it was built with,
//! and carries the log's current leader epoch; both fields lie outside the CRC, so the
//! stored batch still validates and keeps the producer's CRC.

use crate::common::logs;

use logs::{batch_with, records, T0};
use streamlog::{Batch, BatchOptions, Compression, Log, LogConfig};

fn stored(log: &Log, offset: i64) -> Vec<u8> {
    log.read_bytes(offset, 1, None).unwrap()
}

#[test]
fn offsets_come_from_the_log_end_and_epoch_from_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    let first = log
        .append_records(&records(0, 3, T0, 10), Compression::None)
        .unwrap();
    assert_eq!((first.first_offset, first.last_offset), (0, 2));

    log.set_leader_epoch(7).unwrap();
    assert_eq!(log.leader_epoch(), 7);
    for codec in [Compression::None, Compression::Lz4, Compression::Gzip] {
        let opts = BatchOptions {
            base_offset: 999,
            partition_leader_epoch: 42,
            ..BatchOptions::compressed(codec)
        };
        let sent = batch_with(opts, 4, T0 + 5);
        let sent_crc = Batch::new(&sent).unwrap().crc();
        let end = log.log_end_offset();
        let info = log.append(&sent).unwrap();
        assert_eq!((info.first_offset, info.last_offset), (end, end + 3));
        assert_eq!(info.record_count, 4);
        assert_eq!(info.size_in_bytes, sent.len() as u64);
        assert_eq!(info.max_timestamp, T0 + 5);
        assert_eq!(info.log_append_time, None);

        let bytes = stored(&log, end);
        assert_eq!(bytes.len(), sent.len());
        let b = Batch::new(&bytes).unwrap();
        b.validate().unwrap();
        assert_eq!(b.base_offset(), end);
        assert_eq!(b.last_offset(), end + 3);
        assert_eq!(b.partition_leader_epoch(), 7);
        assert_eq!(b.crc(), sent_crc);
        // Apart from those two fields, the producer's bytes are stored as sent.
        assert_eq!(bytes[8..12], sent[8..12]);
        assert_eq!(bytes[16..], sent[16..]);
        let offsets: Vec<i64> = b
            .records()
            .unwrap()
            .iter()
            .map(|r| r.unwrap().offset)
            .collect();
        assert_eq!(offsets, (end..end + 4).collect::<Vec<_>>());
    }

    // A new epoch applies to later batches only.
    log.set_leader_epoch(9).unwrap();
    let info = log
        .append_records(&records(1, 1, T0, 10), Compression::None)
        .unwrap();
    assert_eq!(
        Batch::new(&stored(&log, info.first_offset))
            .unwrap()
            .partition_leader_epoch(),
        9
    );
    assert_eq!(
        Batch::new(&stored(&log, 3))
            .unwrap()
            .partition_leader_epoch(),
        7
    );

    // The records iterator agrees, after a reopen too.
    let all: Vec<i64> = log.records_from(0).map(|r| r.unwrap().offset()).collect();
    assert_eq!(all, (0..info.last_offset + 1).collect::<Vec<_>>());
    log.close().unwrap();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(
        Batch::new(&stored(&log, 3))
            .unwrap()
            .partition_leader_epoch(),
        7
    );
    let again: Vec<i64> = log.records_from(0).map(|r| r.unwrap().offset()).collect();
    assert_eq!(again, all);
}
