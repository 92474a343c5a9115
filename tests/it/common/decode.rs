//! Everything a reader does with untrusted batch bytes, in one place.
//!
//! Shared by the fuzz target (`fuzz/fuzz_targets/decode_batch.rs` includes this file with
//! `#[path]`), the test that replays the fuzz corpus, and the tests that feed in arbitrary or
//! corrupted bytes. It depends on nothing but `streamlog` so that the fuzz crate can use it.
//!
//! Errors are the expected outcome for bad bytes. A panic is a bug, and so is a batch that
//! decodes without error yet contradicts its own header: the assertions below are the
//! invariants a caller relies on once decoding has succeeded.
#![allow(dead_code)]

use streamlog::{
    Batch, BatchBuilder, BatchOptions, Batches, Compression, DecodeLimits, Error, OwnedRecord,
    Record, Result, TimestampType,
};

/// Limits small enough that hostile input cannot make the decoder allocate much.
pub const SMALL_LIMITS: DecodeLimits = DecodeLimits {
    max_batch_bytes: 1 << 20,
    max_decompressed_bytes: 1 << 20,
};

/// What [`decode_everything`] got out of its input.
#[derive(Debug)]
pub struct DecodeSummary {
    /// Batches that framed correctly when the input was walked with [`Batches`].
    pub framed: usize,
    /// Records decoded from those batches, each batch decoded on its own.
    pub records: usize,
    /// The input read as a log: see [`decode_log`].
    pub log: Result<Vec<OwnedRecord>>,
}

/// Runs every decoding entry point over `data`: the fuzz target's body.
pub fn decode_everything(data: &[u8]) -> DecodeSummary {
    // `data` as exactly one batch, then as a batch followed by anything.
    if let Ok(batch) = Batch::new(data) {
        assert_eq!(batch.size_in_bytes(), data.len());
        let _ = decode_batch(&batch, &SMALL_LIMITS);
    }
    if let Ok((batch, rest)) = Batch::parse(data, &SMALL_LIMITS) {
        assert_eq!(batch.size_in_bytes() + rest.len(), data.len());
        let _ = decode_batch(&batch, &SMALL_LIMITS);
    }

    // Each batch on its own, as a consumer reads a Fetch response.
    let mut framed = 0;
    let mut records = 0;
    let mut consumed = 0u64;
    let mut batches = Batches::with_limits(data, SMALL_LIMITS);
    while let Some(batch) = batches.next() {
        match batch {
            Ok(batch) => {
                framed += 1;
                consumed += batch.size_in_bytes() as u64;
                assert_eq!(
                    batches.position(),
                    consumed,
                    "position after batch {framed}"
                );
                if let Ok(decoded) = decode_batch(&batch, &SMALL_LIMITS) {
                    records += decoded.len();
                }
            }
            Err(_) => {
                assert!(
                    batches.next().is_none(),
                    "Batches yielded more after an error"
                );
                break;
            }
        }
    }

    let log = decode_log(data, None, &SMALL_LIMITS);
    DecodeSummary {
        framed,
        records,
        log,
    }
}

/// Reads `data` the way a log reads a segment: every batch framed, validated and fully
/// decoded, and each batch's base offset equal to the offset after the previous batch.
///
/// The first batch must start at `first_offset` when one is given. The base offset lies
/// outside the CRC, so this check is what catches a corrupted one.
pub fn decode_log(
    data: &[u8],
    first_offset: Option<i64>,
    limits: &DecodeLimits,
) -> Result<Vec<OwnedRecord>> {
    let mut expected = first_offset;
    let mut out = Vec::new();
    for batch in Batches::with_limits(data, *limits) {
        let batch = batch?;
        if expected.is_some_and(|e| e != batch.base_offset()) {
            return Err(Error::InvalidBatchHeader {
                base_offset: batch.base_offset(),
                reason: "base offset is not the offset after the previous batch",
            });
        }
        out.extend(decode_batch(&batch, limits)?);
        expected = Some(batch.next_offset());
    }
    Ok(out)
}

/// Validates `batch` and decodes all of its records, headers and control record, checking
/// that what decodes agrees with the header and survives a re-encoding.
pub fn decode_batch(batch: &Batch<'_>, limits: &DecodeLimits) -> Result<Vec<OwnedRecord>> {
    let header = batch.header();
    assert_eq!(header.base_offset, batch.base_offset());
    batch.validate()?;

    let records = batch.records_with(limits)?;
    assert_eq!(records.declared_count(), batch.record_count());
    let mut out = Vec::new();
    let mut iter = records.iter();
    while let Some(item) = iter.next() {
        let record = match item {
            Ok(record) => record,
            Err(e) => {
                assert!(iter.next().is_none(), "record iterator went on after {e}");
                return Err(e);
            }
        };
        check_record(batch, &record, out.last().map(|r: &OwnedRecord| r.offset));
        out.push(record.to_owned_record());
    }
    assert_eq!(
        i64::try_from(out.len()).ok(),
        Some(i64::from(batch.record_count())),
        "records decoded without error must match the declared count"
    );

    let mut scratch = Vec::new();
    let again = batch
        .records_in(&mut scratch, limits)
        .expect("records_in fails where records_with succeeded");
    let again: Vec<OwnedRecord> = again
        .iter()
        .map(|r| r.expect("second decode failed").to_owned_record())
        .collect();
    assert_eq!(again, out, "records_in and records_with disagree");

    match batch.control_record()? {
        Some(_) => assert!(batch.is_control()),
        None => assert!(!batch.is_control()),
    }

    assert_eq!(reencode(batch, &out), out, "re-encoded records differ");
    Ok(out)
}

/// Checks one successfully decoded record against its batch header.
fn check_record(batch: &Batch<'_>, record: &Record<'_>, previous_offset: Option<i64>) {
    assert!(
        (batch.base_offset()..=batch.last_offset()).contains(&record.offset),
        "offset {} outside the batch's {}..={}",
        record.offset,
        batch.base_offset(),
        batch.last_offset()
    );
    if let Some(previous) = previous_offset {
        assert!(previous < record.offset, "offsets not increasing");
    }
    if batch.timestamp_type() == TimestampType::LogAppendTime {
        assert_eq!(record.timestamp, batch.max_timestamp());
    }
    // Headers were checked when the record parsed, so none may go missing now.
    assert_eq!(record.headers().count(), record.header_count());
}

/// Encodes `records` into a new uncompressed batch with `batch`'s offsets and timestamp
/// scheme, and decodes them back.
fn reencode(batch: &Batch<'_>, records: &[OwnedRecord]) -> Vec<OwnedRecord> {
    let mut builder = BatchBuilder::new(BatchOptions {
        compression: Compression::None,
        timestamp_type: batch.timestamp_type(),
        log_append_time: batch.max_timestamp(),
        base_offset: batch.base_offset(),
        delete_horizon: batch.delete_horizon(),
        ..BatchOptions::default()
    });
    for r in records {
        let headers: Vec<streamlog::Header<'_>> = r
            .headers
            .iter()
            .map(|(k, v)| streamlog::Header {
                key: k,
                value: v.as_deref(),
            })
            .collect();
        let delta = i32::try_from(r.offset - batch.base_offset()).expect("delta fits i32");
        builder
            .append_at(
                delta,
                r.timestamp,
                r.key.as_deref(),
                r.value.as_deref(),
                &headers,
            )
            .expect("re-encoding a decoded record failed");
    }
    let bytes = builder.build().expect("re-encoded batch failed to build");
    let rebuilt = Batch::new(&bytes).expect("re-encoded batch does not frame");
    rebuilt
        .validate()
        .expect("re-encoded batch does not validate");
    let decoded = rebuilt.records().expect("re-encoded records");
    decoded
        .iter()
        .map(|r| r.expect("re-encoded record").to_owned_record())
        .collect()
}
