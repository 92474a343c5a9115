//! A LogAppendTime batch as Kafka stores it (tests/data/log_append_time, made by
//! kafka-python and stamped as Kafka's broker stamps: see its generate.py) is what this crate
//! writes, byte for byte, both ways it can come about: `BatchBuilder` with LogAppendTime
//! keeps each record's create-time delta from the first record's timestamp and sets only the
//! max timestamp and the attribute bit, and a log under LogAppendTime stamps a CreateTime
//! producer batch into the same bytes.

use crate::common;

use std::path::PathBuf;
use std::sync::Arc;

use common::{batch_json, hex, interop_dir};
use serde_json::Value;
use streamlog::{
    Batch, BatchBuilder, BatchOptions, Header, Log, LogConfig, ManualClock, TimestampType,
};

const APPEND_TIME: i64 = 1_700_000_999_999;
const CREATE: [i64; 4] = [
    1_700_000_000_000,
    1_700_000_000_040,
    1_699_999_999_990,
    1_700_000_000_700,
];

type Rec = (
    Option<&'static [u8]>,
    Option<&'static [u8]>,
    &'static [(&'static str, Option<&'static [u8]>)],
);

/// The records of generate.py, in order.
const RECORDS: [Rec; 4] = [
    (
        Some(b"user-1"),
        Some(b"clicked"),
        &[("trace", Some(b"42")), ("empty", Some(b""))],
    ),
    (None, Some(b"no key"), &[]),
    (Some(b"user-2"), None, &[("none", None)]),
    (Some(b""), Some(b""), &[]),
];

fn vector() -> (Vec<u8>, Value) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/log_append_time");
    let bytes = std::fs::read(dir.join("kafka_log_append_time.bin")).unwrap();
    let json =
        serde_json::from_slice(&std::fs::read(dir.join("kafka_log_append_time.json")).unwrap())
            .unwrap();
    (bytes, json)
}

fn build(timestamp_type: TimestampType) -> Vec<u8> {
    let mut b = BatchBuilder::new(BatchOptions {
        timestamp_type,
        log_append_time: APPEND_TIME,
        partition_leader_epoch: 0,
        producer_id: 9001,
        producer_epoch: 2,
        base_sequence: 17,
        ..BatchOptions::default()
    });
    for (ts, (key, value, headers)) in CREATE.iter().zip(RECORDS) {
        let headers: Vec<Header<'_>> = headers.iter().map(|(k, v)| Header::new(k, *v)).collect();
        b.append(*ts, key, value, &headers).unwrap();
    }
    b.build().unwrap()
}

#[test]
fn the_vector_decodes_as_kafka_python_decodes_it() {
    let (bytes, json) = vector();
    let batch = Batch::new(&bytes).unwrap();
    let got = batch_json(&batch);
    let want = &json["batches"][0];
    assert_eq!(got["records"], want["records"]);
    for key in [
        "first_timestamp",
        "max_timestamp",
        "timestamp_type",
        "attributes",
        "crc",
    ] {
        assert_eq!(got[key], want[key], "{key}");
    }
    assert_eq!(batch.header().base_timestamp, CREATE[0]);
}

#[test]
fn the_builder_writes_the_vector_byte_for_byte() {
    let (bytes, _) = vector();
    assert_eq!(hex(&build(TimestampType::LogAppendTime)), hex(&bytes));
}

#[test]
fn a_log_stamps_a_create_time_batch_into_the_vector() {
    let (bytes, json) = vector();
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(APPEND_TIME));
    let config = LogConfig::builder()
        .message_timestamp_type(TimestampType::LogAppendTime)
        .clock(clock)
        .build()
        .unwrap();
    let log = Log::open(dir.path(), config).unwrap();
    let info = log.append(&build(TimestampType::CreateTime)).unwrap();
    assert_eq!(info.log_append_time, Some(APPEND_TIME));
    let stored = log.read_bytes(0, usize::MAX, None).unwrap();
    assert_eq!(hex(&stored), hex(&bytes));
    // Left for kafka-python-check beside the expectation it decoded itself.
    let out = interop_dir("log-append-time");
    std::fs::write(out.join("log_stamped.bin"), &stored).unwrap();
    std::fs::write(
        out.join("log_stamped.json"),
        serde_json::to_vec_pretty(&json).unwrap(),
    )
    .unwrap();
}
