//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use streamlog::{
    Batch, BatchBuilder, BatchOptions, Compression, ControlRecordType, Header, OwnedRecord,
    TimestampType,
};

pub mod child;
pub mod consumer;
pub mod decode;
pub mod gate;
pub mod group_decode;
#[cfg(feature = "ingest")]
pub mod ingest;
pub mod logs;
#[cfg(feature = "ingest-postgres")]
pub mod postgres;
pub mod producers;
#[cfg(feature = "openraft")]
pub mod raft;
pub mod raw;
pub mod recover_segment;
pub mod rng;
pub mod sim_log;
pub mod strategies;

/// tests/data/golden, where the kafka-python-written batches live.
pub fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/golden")
}

/// Every `*.bin` in the golden directory with its parsed JSON expectation, sorted by name.
pub fn golden_files() -> Vec<(String, Vec<u8>, Value)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(golden_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("bin") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let json: Value =
            serde_json::from_str(&std::fs::read_to_string(path.with_extension("json")).unwrap())
                .unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        out.push((name, bytes, json));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(!out.is_empty(), "no golden files found");
    out
}

/// The codecs this build can encode and decode (zstd and snappy need their features).
pub fn enabled_codecs() -> Vec<Compression> {
    Compression::ALL
        .into_iter()
        .filter(|c| c.is_enabled())
        .collect()
}

/// Borrowed headers of an owned record, as the builder takes them.
pub fn headers_of(record: &OwnedRecord) -> Vec<Header<'_>> {
    record
        .headers
        .iter()
        .map(|(key, value)| Header {
            key,
            value: value.as_deref(),
        })
        .collect()
}

/// Builds one batch holding `records` at consecutive offsets (their `offset` is ignored).
pub fn build_batch(opts: BatchOptions, records: &[OwnedRecord]) -> streamlog::Result<Vec<u8>> {
    let mut builder = BatchBuilder::new(opts);
    for r in records {
        builder.append(
            r.timestamp,
            r.key.as_deref(),
            r.value.as_deref(),
            &headers_of(r),
        )?;
    }
    builder.build()
}

/// Validates one batch and decodes all of its records; panics on any error.
pub fn decode_records(bytes: &[u8]) -> Vec<OwnedRecord> {
    let batch = Batch::new(bytes).unwrap();
    batch.validate().unwrap();
    let records = batch.records().unwrap();
    records
        .iter()
        .map(|r| r.unwrap().to_owned_record())
        .collect()
}

/// Rewrites the stored CRC-32C (bytes 17..21, big-endian) to match bytes 21.., so that
/// deliberately altered bytes get past the checksum and reach the parsers behind it.
pub fn fix_crc(batch: &mut [u8]) {
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

/// Lower-case hex, as the golden JSON writes bytes.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Leaves `<stem>.bin` holding `bytes` and `<stem>.json` describing its `batches` (in the
/// schema of [`batch_json`]) in `dir`, for `kafka-python-check --expect` in .ci/run.
pub fn write_interop_file(dir: &Path, stem: &str, description: &str, bytes: &[u8], batches: Value) {
    let doc = json!({
        "file": format!("{stem}.bin"),
        "description": description,
        "batches": batches,
    });
    std::fs::write(dir.join(format!("{stem}.bin")), bytes).unwrap();
    std::fs::write(
        dir.join(format!("{stem}.json")),
        serde_json::to_vec_pretty(&doc).unwrap(),
    )
    .unwrap();
}

/// Directory where tests leave files for the kafka-python interop check in .ci/run.
pub fn interop_dir(sub: &str) -> PathBuf {
    let dir = std::env::var_os("STREAMLOG_INTEROP_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("interop"))
        .join(sub);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Hex of optional bytes, JSON null for `None`.
pub fn opt_hex(b: Option<&[u8]>) -> Value {
    b.map_or(Value::Null, |b| Value::String(hex(b)))
}

/// The `records` array of the golden schema for `records` at consecutive offsets from
/// `base_offset` (all stamped `log_append_time` when given), written from the input rather
/// than by decoding, so tests can compare the decoder against it.
pub fn records_json(
    records: &[OwnedRecord],
    base_offset: i64,
    log_append_time: Option<i64>,
) -> Value {
    let recs: Vec<Value> = records
        .iter()
        .zip(base_offset..)
        .map(|(r, offset)| {
            let headers: Vec<Value> = r
                .headers
                .iter()
                .map(|(k, v)| json!([String::from_utf8(k.clone()).unwrap(), opt_hex(v.as_deref())]))
                .collect();
            json!({
                "offset": offset,
                "timestamp": log_append_time.unwrap_or(r.timestamp),
                "key_hex": opt_hex(r.key.as_deref()),
                "value_hex": opt_hex(r.value.as_deref()),
                "headers": headers,
            })
        })
        .collect();
    Value::Array(recs)
}

/// Decodes one batch into the JSON schema of tests/data/golden/*.json, the schema
/// `kafka-python-check --expect` compares against. Panics if the batch does not decode.
pub fn batch_json(batch: &Batch<'_>) -> Value {
    batch.validate().unwrap();
    let h = batch.header();
    let records = batch.records().unwrap();
    let mut recs = Vec::new();
    for r in &records {
        let r = r.unwrap();
        let headers: Vec<Value> = r
            .headers()
            .map(|h| json!([h.key_str().unwrap(), opt_hex(h.value)]))
            .collect();
        let mut rec = json!({
            "offset": r.offset,
            "timestamp": r.timestamp,
            "key_hex": opt_hex(r.key),
            "value_hex": opt_hex(r.value),
            "headers": headers,
        });
        if batch.is_control() {
            let c = batch.control_record().unwrap().unwrap();
            let name = match c.kind {
                ControlRecordType::Abort => "abort",
                ControlRecordType::Commit => "commit",
                ControlRecordType::Unknown(_) => "unknown",
            };
            rec["control"] = json!({"version": c.version, "type": c.kind.id(), "type_name": name});
        }
        recs.push(rec);
    }
    json!({
        "base_offset": h.base_offset,
        "size_in_bytes": batch.size_in_bytes(),
        "partition_leader_epoch": h.partition_leader_epoch,
        "magic": h.magic,
        "crc": h.crc,
        "attributes": h.attributes.0,
        "compression": batch.compression().unwrap().name(),
        "timestamp_type": match batch.timestamp_type() {
            TimestampType::CreateTime => 0,
            TimestampType::LogAppendTime => 1,
        },
        "is_transactional": batch.is_transactional(),
        "is_control": batch.is_control(),
        "last_offset_delta": h.last_offset_delta,
        "first_timestamp": h.base_timestamp,
        "max_timestamp": h.max_timestamp,
        "producer_id": h.producer_id,
        "producer_epoch": h.producer_epoch,
        "base_sequence": h.base_sequence,
        "records_count": h.record_count,
        "records": recs,
    })
}
