//! One file per enabled codec, left for kafka-python to decode.
//!
//! Each `<codec>.bin` holds two batches (a CreateTime batch from an idempotent producer with
//! keys, null keys, null values, empty values and headers; then a transactional LogAppendTime
//! batch), and `<codec>.json` says what they hold in the schema of tests/data/golden/*.json.
//! `.ci/run` then runs `kafka-python-check <codec>.bin --expect <codec>.json` on them, which
//! decodes the bytes with an independent implementation. Run with `--all-features` to cover
//! zstd and snappy.

use crate::common;

use common::{
    batch_json, build_batch, enabled_codecs, hex, interop_dir, records_json, write_interop_file,
};
use serde_json::Value;
use streamlog::{
    Batch, BatchBuilder, BatchOptions, Batches, Compression, Error, OwnedRecord, TimestampType,
};

const T0: i64 = 1_700_000_000_000;
const APPEND_TIME: i64 = 1_700_000_999_999;

fn sample_records() -> Vec<OwnedRecord> {
    let long_value = b"the quick brown fox jumps over the lazy dog ".repeat(40);
    vec![
        OwnedRecord {
            key: Some(b"user-1".to_vec()),
            value: Some(b"clicked".to_vec()),
            headers: vec![
                (b"trace".to_vec(), Some(b"42".to_vec())),
                (b"trace".to_vec(), None),
                (b"empty".to_vec(), Some(Vec::new())),
            ],
            ..OwnedRecord::new(T0, None, None)
        },
        OwnedRecord::new(T0 + 5, None, Some(b"no key")),
        OwnedRecord::new(T0 + 3, Some(b"user-1"), None),
        OwnedRecord::new(T0 + 9, Some(b""), Some(b"")),
        OwnedRecord::new(T0 + 7, Some(b"user-2"), Some(&long_value)),
    ]
}

fn codec_batches(codec: Compression) -> streamlog::Result<Vec<u8>> {
    let records = sample_records();
    let mut bytes = build_batch(
        BatchOptions {
            compression: codec,
            base_offset: 100,
            partition_leader_epoch: 4,
            producer_id: 9001,
            producer_epoch: 2,
            base_sequence: 17,
            ..BatchOptions::default()
        },
        &records,
    )?;
    bytes.extend(build_batch(
        BatchOptions {
            compression: codec,
            timestamp_type: TimestampType::LogAppendTime,
            log_append_time: APPEND_TIME,
            base_offset: 105,
            partition_leader_epoch: 5,
            producer_id: 9002,
            producer_epoch: 0,
            base_sequence: 0,
            transactional: true,
            ..BatchOptions::default()
        },
        &records[..3],
    )?);
    Ok(bytes)
}

#[test]
fn every_enabled_codec_writes_a_file_for_kafka_python() {
    let dir = interop_dir("codecs");
    let records = sample_records();
    for codec in enabled_codecs() {
        let bytes = codec_batches(codec).unwrap();
        let batches: Vec<Batch<'_>> = Batches::new(&bytes).map(Result::unwrap).collect();
        assert_eq!(batches.len(), 2, "{codec}");
        let json_batches: Vec<Value> = batches.iter().map(batch_json).collect();

        // Our decoder agrees with the input before kafka-python is asked to.
        let first = &json_batches[0];
        assert_eq!(
            first["records"],
            records_json(&records, 100, None),
            "{codec}"
        );
        assert_eq!(first["compression"], codec.name(), "{codec}");
        assert_eq!(first["max_timestamp"], T0 + 9, "{codec}");
        assert_eq!(first["producer_id"], 9001, "{codec}");
        let second = &json_batches[1];
        let want = records_json(&records[..3], 105, Some(APPEND_TIME));
        assert_eq!(second["records"], want, "{codec}");
        assert_eq!(second["timestamp_type"], 1, "{codec}");
        assert_eq!(second["is_transactional"], true, "{codec}");

        let description = format!(
            "streamlog-encoded {codec} batches: CreateTime idempotent, then transactional LogAppendTime"
        );
        let stem = codec.name();
        write_interop_file(&dir, stem, &description, &bytes, Value::Array(json_batches));
    }
}

/// Codecs left out of this build fail loudly, naming the feature, both ways.
#[test]
fn disabled_codecs_are_refused_with_codec_disabled() {
    let disabled: Vec<Compression> = Compression::ALL
        .into_iter()
        .filter(|c| !c.is_enabled())
        .collect();
    let expected_disabled =
        usize::from(!cfg!(feature = "zstd")) + usize::from(!cfg!(feature = "snappy"));
    assert_eq!(disabled.len(), expected_disabled, "{disabled:?}");
    for codec in disabled {
        let err = codec_batches(codec).unwrap_err();
        assert!(
            matches!(err, Error::CodecDisabled { codec: name, feature } if name == codec.name() && feature == codec.name()),
            "{codec}: {err}"
        );

        // A batch that says it uses the codec decodes its header but not its records.
        let mut builder = BatchBuilder::new(BatchOptions::default());
        builder.append(T0, None, Some(b"v"), &[]).unwrap();
        let mut bytes = builder.build().unwrap();
        bytes[22] = (bytes[22] & !0x07) | codec.id();
        common::fix_crc(&mut bytes);
        let batch = Batch::new(&bytes).unwrap();
        batch.validate().unwrap();
        assert_eq!(batch.compression().unwrap(), codec);
        let err = batch.records().map(|_| ()).unwrap_err();
        assert!(
            matches!(err, Error::CodecDisabled { .. }),
            "{codec}: {err} ({})",
            hex(&bytes[21..23])
        );
    }
}
