//! Every single-bit flip in every golden file is detected by a reader that decodes the file
//! the way a log does, and every truncation that cuts a batch is an error rather than a panic.
//!
//! "The way a log does" means: walk the batches with `Batches`, `validate()` each one,
//! check that its base offset is the offset the log expects next (the golden JSON's first
//! base offset, then each previous batch's `next_offset()`), and decode all of its records
//! (see `common::decode::decode_log`).
//!
//! Two header fields lie outside Kafka's CRC-32C, which covers bytes 21 to the end of a
//! batch, by design: the broker rewrites them on append without recomputing the checksum.
//!
//! - The base offset (bytes 0..8) is not checksummed, so `validate()` cannot see a flip in
//!   it; the expected-offset check does, which is why a log must always make it.
//! - The partition leader epoch (bytes 12..16) is not checksummed and changes no record, so
//!   a flip there is undetectable by anyone; the test requires only that the records then
//!   decode exactly as before.
//!
//! The batch length (bytes 8..12) and magic (byte 16) are also outside the CRC, but a flip in
//! either changes how the batch frames or whether it is v2 at all, so both are caught. Every
//! other byte is covered by the CRC, and CRC-32C detects every single-bit error.

use crate::common;

use std::ops::Range;
use std::panic::{catch_unwind, AssertUnwindSafe};

use common::decode::decode_log;
use common::{golden_files, raw};
use streamlog::{Batch, Batches, Compression, ControlRecord, DecodeLimits, Error, OwnedRecord};

/// The partition leader epoch, relative to the start of a batch.
const LEADER_EPOCH: Range<usize> = 12..16;

/// The byte ranges of each batch in a well-formed file.
fn batch_spans(bytes: &[u8]) -> Vec<Range<usize>> {
    let mut start = 0;
    Batches::new(bytes)
        .map(|b| {
            let len = b.unwrap().size_in_bytes();
            start += len;
            start - len..start
        })
        .collect()
}

/// Whether byte `at` of the file is part of some batch's partition leader epoch.
fn in_leader_epoch(spans: &[Range<usize>], at: usize) -> bool {
    spans
        .iter()
        .any(|s| s.contains(&at) && LEADER_EPOCH.contains(&(at - s.start)))
}

/// Decodes like a log, turning a panic into a test failure that names the input.
fn decode(what: &str, bytes: &[u8], first_offset: i64) -> streamlog::Result<Vec<OwnedRecord>> {
    catch_unwind(AssertUnwindSafe(|| {
        decode_log(bytes, Some(first_offset), &DecodeLimits::DEFAULT)
    }))
    .unwrap_or_else(|_| panic!("{what}: decoding panicked"))
}

fn first_base_offset(json: &serde_json::Value) -> i64 {
    json["batches"][0]["base_offset"].as_i64().unwrap()
}

#[test]
fn every_single_bit_flip_is_detected() {
    let mut flips = 0;
    let mut undetectable = 0;
    let mut batches = 0;
    for (name, bytes, json) in golden_files() {
        let first_offset = first_base_offset(&json);
        let want = decode(&name, &bytes, first_offset).unwrap();
        assert!(!want.is_empty(), "{name}: golden file without records");
        let spans = batch_spans(&bytes);
        batches += spans.len();
        let mut flipped = bytes.clone();
        for at in 0..bytes.len() {
            for bit in 0..8 {
                flipped[at] ^= 1 << bit;
                let what = format!("{name}: byte {at} bit {bit}");
                match decode(&what, &flipped, first_offset) {
                    Err(_) => {}
                    Ok(got) if in_leader_epoch(&spans, at) => {
                        assert_eq!(got, want, "{what}: leader epoch flip changed the records");
                        undetectable += 1;
                    }
                    Ok(_) => panic!("{what}: flip not detected"),
                }
                flipped[at] ^= 1 << bit;
                flips += 1;
            }
        }
    }
    // Nothing at all can see a leader-epoch flip, so each of their 32 bits per batch must
    // have come through the `Ok` arm above, and nothing else did.
    assert_eq!(undetectable, 32 * batches, "of {flips} flips");
}

#[test]
fn every_truncation_is_an_error_unless_between_batches() {
    for (name, bytes, json) in golden_files() {
        let first_offset = first_base_offset(&json);
        let want = decode(&name, &bytes, first_offset).unwrap();
        let spans = batch_spans(&bytes);
        for len in 0..bytes.len() {
            let what = format!("{name} truncated to {len} bytes");
            let result = decode(&what, &bytes[..len], first_offset);
            // A cut that falls between two batches leaves a shorter, valid log: exactly the
            // records of the batches before the cut. Anywhere else it is an error.
            let whole = spans.iter().filter(|s| s.end <= len).count();
            if len == 0 || spans.iter().any(|s| s.end == len) {
                let got = result.unwrap_or_else(|e| panic!("{what}: {e}"));
                let kept: usize = Batches::new(&bytes[..len])
                    .map(|b| b.unwrap().record_count() as usize)
                    .sum();
                assert_eq!(got, want[..kept], "{what}: {whole} whole batches");
            } else {
                assert!(result.is_err(), "{what}: not an error");
            }
        }
    }
}

/// Records that a valid CRC cannot vouch for: the writer itself got them wrong. Each is an
/// error from record decoding (or from `control_record`), in every codec, as Kafka's
/// `DefaultRecord.readFrom` makes it an `InvalidRecordException`.
#[test]
fn malformed_records_behind_a_valid_crc_are_errors() {
    let record = OwnedRecord {
        timestamp: 5,
        key: Some(b"k".to_vec()),
        value: Some(b"v".to_vec()),
        headers: vec![(b"h".to_vec(), Some(b"x".to_vec()))],
        ..OwnedRecord::default()
    };
    // Tokens: 0 attributes, 1 timestamp delta, 2 offset delta, 3 key length, 4 key,
    // 5 value length, 6 value, 7 header count, 8 header key length, 9 header key,
    // 10 header value length, 11 header value.
    let tokens = |delta: i32| raw::record_tokens(&record, 5, delta);
    let good = |delta: i32| raw::frame_record(&tokens(delta));
    let with = |at: usize, token: Vec<u8>| {
        let mut t = tokens(0);
        t[at] = token;
        raw::frame_record(&t)
    };
    let body = tokens(0).concat();
    let prefixed =
        |length: i64, tail: &[u8]| [raw::varint(length), body.clone(), tail.to_vec()].concat();
    let too_long_varint = vec![0x80, 0x80, 0x80, 0x80, 0x80, 0x00];

    let data_cases: Vec<(&str, Vec<u8>, i32, i32)> = vec![
        ("record length 0, nothing after", raw::varint(0), 1, 0),
        ("record length 0, body after", prefixed(0, &[]), 1, 0),
        ("record length -1", prefixed(-1, &[]), 1, 0),
        (
            "record length past the section",
            prefixed(body.len() as i64 + 10, &[]),
            1,
            0,
        ),
        (
            "record length one more than its fields",
            prefixed(body.len() as i64 + 1, &[0]),
            1,
            0,
        ),
        (
            "record length one less than its fields",
            prefixed(body.len() as i64 - 1, &[]),
            1,
            0,
        ),
        (
            "key length past the record",
            with(3, raw::varint(100)),
            1,
            0,
        ),
        (
            "value length past the record",
            with(5, raw::varint(100)),
            1,
            0,
        ),
        ("negative header count", with(7, raw::varint(-1)), 1, 0),
        (
            "header count above the headers present",
            with(7, raw::varint(2)),
            1,
            0,
        ),
        ("null header key", with(8, raw::varint(-1)), 1, 0),
        (
            "offset delta varint of 6 bytes",
            with(2, too_long_varint.clone()),
            1,
            0,
        ),
        (
            "timestamp varlong of 11 bytes",
            with(1, [vec![0x80; 10], vec![0]].concat()),
            1,
            0,
        ),
        ("negative offset delta", with(2, raw::varint(-1)), 1, 0),
        (
            "truncated varint after a record",
            [good(0), vec![0x80]].concat(),
            2,
            1,
        ),
        (
            "bytes after the declared record count",
            [good(0), good(1)].concat(),
            1,
            1,
        ),
        ("fewer records than declared", good(0), 2, 1),
        ("empty section, one record declared", Vec::new(), 1, 0),
        ("offset delta repeated", [good(0), good(0)].concat(), 2, 1),
        ("offset delta past the last offset delta", good(3), 1, 2),
        (
            "offset deltas going backwards",
            [good(1), good(0)].concat(),
            2,
            1,
        ),
    ];
    for codec in common::enabled_codecs() {
        let ok = raw::batch(
            &raw::header(2, 1, false),
            &[good(0), good(1)].concat(),
            codec,
        );
        let records = decode_log(&ok, Some(0), &DecodeLimits::DEFAULT).unwrap();
        assert_eq!(
            records.len(),
            2,
            "{codec}: the hand encoder itself is wrong"
        );
        assert_eq!(
            records[1],
            OwnedRecord {
                offset: 1,
                ..record.clone()
            },
            "{codec}"
        );

        for (what, section, count, last_delta) in &data_cases {
            let bytes = raw::batch(&raw::header(*count, *last_delta, false), section, codec);
            let what = format!("{codec}: {what}");
            let batch = Batch::new(&bytes).unwrap();
            batch
                .validate()
                .unwrap_or_else(|e| panic!("{what}: header rejected: {e}"));
            let err = decode(&what, &bytes, 0).unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::CorruptRecord { .. } | Error::RecordCountMismatch { .. }
                ),
                "{what}: {err}"
            );
        }
    }

    let control = |key: Option<&[u8]>, value: Option<&[u8]>| {
        let r = OwnedRecord::new(0, key, value);
        raw::frame_record(&raw::record_tokens(&r, 0, 0))
    };
    let commit_value = [0, 0, 0, 0, 0, 7];
    let ok = raw::batch(
        &raw::header(1, 0, true),
        &control(Some(&[0, 0, 0, 1]), Some(&commit_value)),
        Compression::None,
    );
    let marker = Batch::new(&ok).unwrap().control_record().unwrap();
    assert_eq!(marker, Some(ControlRecord::end_txn(true, 7)));
    let control_cases: Vec<(&str, Vec<u8>, i32)> = vec![
        ("no record", Vec::new(), 0),
        ("null key", control(None, Some(&commit_value)), 1),
        ("2-byte key", control(Some(&[0, 0]), Some(&commit_value)), 1),
        (
            "commit without a value",
            control(Some(&[0, 0, 0, 1]), None),
            1,
        ),
        (
            "abort with a 5-byte value",
            control(Some(&[0, 0, 0, 0]), Some(&[0; 5])),
            1,
        ),
    ];
    for (what, section, count) in control_cases {
        let bytes = raw::batch(&raw::header(count, 0, true), &section, Compression::None);
        let batch = Batch::new(&bytes).unwrap();
        batch
            .validate()
            .unwrap_or_else(|e| panic!("{what}: header rejected: {e}"));
        assert!(batch.control_record().is_err(), "control batch, {what}");
    }
}

/// Header fields that contradict each other, with a CRC that matches them, are rejected by
/// framing or by `validate()` before any record is read.
#[test]
fn inconsistent_headers_behind_a_valid_crc_are_errors() {
    let record = raw::frame_record(&raw::record_tokens(&OwnedRecord::default(), 0, 0));
    let valid = |count: i32, last_delta: i32, control: bool| {
        raw::batch(
            &raw::header(count, last_delta, control),
            &record,
            Compression::None,
        )
    };
    Batch::new(&valid(1, 0, false)).unwrap().validate().unwrap();

    let patched = |at: usize, bytes: &[u8]| {
        let mut b = valid(1, 0, false);
        b[at..at + bytes.len()].copy_from_slice(bytes);
        common::fix_crc(&mut b);
        b
    };
    let invalid: Vec<(&str, Vec<u8>)> = vec![
        (
            "negative record count",
            raw::batch(&raw::header(-1, 0, false), &[], Compression::None),
        ),
        ("negative last offset delta", valid(1, -1, false)),
        ("more records than offsets", valid(3, 1, false)),
        ("last offset overflows", {
            let mut b = valid(1, 1, false);
            b[..8].copy_from_slice(&i64::MAX.to_be_bytes());
            b
        }),
        ("control batch with two records", valid(2, 1, true)),
        ("codec id 5", patched(22, &[5])),
        ("codec id 6", patched(22, &[6])),
        ("codec id 7", patched(22, &[7])),
    ];
    for (what, bytes) in invalid {
        let (batch, rest) = Batch::parse(&bytes, &DecodeLimits::DEFAULT).unwrap();
        assert!(rest.is_empty(), "{what}");
        let err = batch.validate().expect_err(what);
        assert!(
            matches!(
                err,
                Error::InvalidBatchHeader { .. } | Error::UnknownCompression { .. }
            ),
            "{what}: {err}"
        );
        assert!(
            decode_log(&bytes, None, &DecodeLimits::DEFAULT).is_err(),
            "{what}"
        );
    }

    let unframed: Vec<(&str, Vec<u8>)> = vec![
        ("magic 1", patched(16, &[1])),
        ("magic 3", patched(16, &[3])),
        ("length below a header", patched(8, &48i32.to_be_bytes())),
        ("negative length", patched(8, &(-1i32).to_be_bytes())),
        ("length past the end", patched(8, &1000i32.to_be_bytes())),
    ];
    for (what, bytes) in unframed {
        let err = Batch::new(&bytes).expect_err(what);
        assert!(
            matches!(
                err,
                Error::UnsupportedMagic { .. }
                    | Error::BatchLengthTooSmall { .. }
                    | Error::BatchTruncated { .. }
            ),
            "{what}: {err}"
        );
        assert!(Batches::new(&bytes).next().unwrap().is_err(), "{what}");
    }

    let small = DecodeLimits {
        max_batch_bytes: 64,
        ..DecodeLimits::DEFAULT
    };
    let big = valid(1, 0, false);
    assert!(big.len() > 64);
    let err = Batch::parse(&big, &small).unwrap_err();
    assert!(
        matches!(err, Error::BatchTooLarge { limit: 64, .. }),
        "{err}"
    );
}
