//! A producer batch that fails any check (CRC, header, a record, framing, control batch) is
//! refused with a typed error before anything is written: the log end offset, the files and
//! what reads return are exactly as before, and the log keeps working.

use crate::common::logs;

use logs::{batch, batch_with, fix_crc, offsets_from, segment_files, span, T0};
use streamlog::{
    BatchBuilder, BatchOptions, Compression, ControlRecord, ControlRecordType, EndTxnMarker, Error,
    Log, LogConfig,
};

/// Byte positions in a batch (see record/header.rs).
const MAGIC: usize = 16;
const ATTRIBUTES: usize = 21;
const LAST_OFFSET_DELTA: usize = 23;
const RECORD_COUNT: usize = 57;
/// The first record's offset delta: after its length, attributes and timestamp delta, each
/// one byte for these small records stamped with the batch's base timestamp.
const FIRST_OFFSET_DELTA: usize = 64;

type Check = fn(&Error) -> bool;

fn bad_batches() -> Vec<(&'static str, Vec<u8>, Check)> {
    let good = batch(3, T0);
    let mut out: Vec<(&'static str, Vec<u8>, Check)> = Vec::new();

    let mut b = good.clone();
    *b.last_mut().unwrap() ^= 0x40;
    out.push(("flipped byte", b, |e| {
        matches!(e, Error::ChecksumMismatch { .. })
    }));

    let mut b = good.clone();
    assert_eq!(b[FIRST_OFFSET_DELTA], 0, "layout assumption");
    b[FIRST_OFFSET_DELTA] = 10; // zig-zag 5: past the last offset delta (2)
    fix_crc(&mut b);
    out.push(("record offset delta", b, |e| {
        matches!(e, Error::CorruptRecord { .. })
    }));

    let mut b = good.clone();
    b[RECORD_COUNT..RECORD_COUNT + 4].copy_from_slice(&2i32.to_be_bytes());
    fix_crc(&mut b);
    out.push(("record count below the records", b, |e| {
        matches!(
            e,
            Error::InvalidBatchHeader { .. } | Error::CorruptRecord { .. }
        )
    }));

    let mut b = good.clone();
    b[LAST_OFFSET_DELTA..LAST_OFFSET_DELTA + 4].copy_from_slice(&5i32.to_be_bytes());
    fix_crc(&mut b);
    out.push(("offset gap inside a producer batch", b, |e| {
        matches!(e, Error::InvalidBatchHeader { .. })
    }));

    let mut b = good.clone();
    b[ATTRIBUTES + 1] |= 0x07; // codec id 7
    fix_crc(&mut b);
    out.push(("unknown codec", b, |e| {
        matches!(e, Error::UnknownCompression { id: 7, .. })
    }));

    let mut b = batch_with(BatchOptions::compressed(Compression::Lz4), 20, T0);
    let n = b.len();
    for x in &mut b[n - 20..n - 8] {
        *x ^= 0x5a;
    }
    fix_crc(&mut b);
    out.push(("garbled lz4 data", b, |e| {
        matches!(
            e,
            Error::Decompress { .. }
                | Error::CorruptRecord { .. }
                | Error::RecordCountMismatch { .. }
        )
    }));

    let marker = ControlRecord {
        version: 0,
        kind: ControlRecordType::Commit,
        marker: Some(EndTxnMarker {
            version: 0,
            coordinator_epoch: 3,
        }),
    };
    let opts = BatchOptions {
        producer_id: 7,
        producer_epoch: 0,
        ..BatchOptions::default()
    };
    out.push((
        "control batch",
        BatchBuilder::control_batch(opts, &marker, T0).unwrap(),
        |e| matches!(e, Error::InvalidBatchHeader { .. }),
    ));

    out.push((
        "no records",
        BatchBuilder::new(BatchOptions::default()).build().unwrap(),
        |e| matches!(e, Error::InvalidBatchHeader { .. }),
    ));

    out.push(("half a batch", good[..good.len() / 2].to_vec(), |e| {
        matches!(e, Error::BatchTruncated { .. })
    }));
    out.push(
        ("a header's worth less one byte", good[..60].to_vec(), |e| {
            matches!(e, Error::BatchTruncated { .. })
        }),
    );
    out.push(("nothing", Vec::new(), |e| {
        matches!(e, Error::BatchTruncated { .. })
    }));

    let mut b = good.clone();
    b.extend_from_slice(&good);
    out.push(("two batches", b, |e| {
        matches!(e, Error::InvalidBatchHeader { .. })
    }));

    let mut b = good.clone();
    b[MAGIC] = 1;
    out.push(("magic 1", b, |e| {
        matches!(e, Error::UnsupportedMagic { magic: 1, .. })
    }));

    let mut b = good.clone();
    b[8..12].copy_from_slice(&10i32.to_be_bytes());
    out.push(("length below a header", b, |e| {
        matches!(e, Error::BatchLengthTooSmall { .. })
    }));

    out
}

/// Everything observable about the log's contents.
fn snapshot(log: &Log, dir: &std::path::Path) -> (i64, u64, Vec<u8>, Vec<Vec<u8>>) {
    let files = segment_files(dir, "log")
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    (
        log.log_end_offset(),
        log.size_in_bytes(),
        log.read_bytes(0, usize::MAX, None).unwrap(),
        files,
    )
}

#[test]
fn bad_batches_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    log.append(&batch(3, T0)).unwrap();
    log.append(&batch(3, T0 + 1)).unwrap();
    let before = snapshot(&log, dir.path());

    for (name, bytes, check) in bad_batches() {
        match log.append(&bytes) {
            Err(e) => assert!(check(&e), "{name}: unexpected error {e:?}"),
            Ok(info) => panic!("{name}: appended as {info:?}"),
        }
        assert!(
            snapshot(&log, dir.path()) == before,
            "{name} changed the log"
        );
    }

    // Still writable, at the same end.
    let info = log.append(&batch(2, T0 + 2)).unwrap();
    assert_eq!(info.first_offset, 6);
    assert_eq!(offsets_from(&log, 0), span(0, 8));
    log.close().unwrap();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(log.log_end_offset(), 8);
    assert_eq!(offsets_from(&log, 0), span(0, 8));
}

#[test]
fn replicated_batches_with_bad_frames_or_crcs_are_refused_too() {
    // A follower stores what the leader wrote (control batches included) and checks frames,
    // CRCs and headers, not records; these fail those checks.
    const REFUSED: &[&str] = &[
        "flipped byte",
        "unknown codec",
        "half a batch",
        "a header's worth less one byte",
        "nothing",
        "two batches",
        "magic 1",
        "length below a header",
    ];
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    log.append(&batch(3, T0)).unwrap();
    let before = snapshot(&log, dir.path());
    let cases: Vec<_> = bad_batches()
        .into_iter()
        .filter(|(name, _, _)| REFUSED.contains(name))
        .collect();
    assert_eq!(cases.len(), REFUSED.len());
    for (name, mut bytes, _) in cases {
        if bytes.len() >= 8 {
            bytes[..8].copy_from_slice(&3i64.to_be_bytes()); // continue the log
        }
        let result = log.append_replicated(&bytes);
        assert!(result.is_err(), "{name}: appended as {result:?}");
        assert!(
            snapshot(&log, dir.path()) == before,
            "{name} changed the log"
        );
    }
}
