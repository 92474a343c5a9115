//! `compression.type` is applied on append, as Kafka's `LogValidator` applies it: a producer
//! batch in another codec is stored re-encoded in the topic's codec, keeping its records
//! (timestamps, keys, values, headers), offsets and producer fields; `producer` stores the
//! batch as it came. Re-encoded batches are left in `interop_dir("compression-type")` with
//! a JSON of what was appended (written from the input), for `kafka-python-check --expect`
//! in `.ci/run`.

use crate::common;

use std::sync::Arc;

use common::{build_batch, decode_records, enabled_codecs, interop_dir, write_interop_file};
use serde_json::json;
use streamlog::{
    Batch, BatchOptions, Batches, Compression, CompressionType, Error, Log, LogConfig, ManualClock,
    OwnedRecord, Storage, StorageConfig, TimestampType, TopicConfig,
};

const T0: i64 = 1_700_000_000_000;

fn sample_records() -> Vec<OwnedRecord> {
    let long_value = b"compression keeps every byte of this value ".repeat(30);
    vec![
        OwnedRecord {
            headers: vec![
                (b"trace".to_vec(), Some(b"7".to_vec())),
                (b"none".to_vec(), None),
            ],
            ..OwnedRecord::new(T0, Some(b"user-1"), Some(b"clicked"))
        },
        OwnedRecord::new(T0 + 4, None, Some(b"no key")),
        OwnedRecord::new(T0 + 2, Some(b"user-2"), None),
        OwnedRecord::new(T0 + 9, Some(b""), Some(b"")),
        OwnedRecord::new(T0 + 7, Some(b"user-3"), Some(&long_value)),
    ]
}

fn idempotent(codec: Compression, base_sequence: i32) -> BatchOptions {
    BatchOptions {
        compression: codec,
        producer_id: 4242,
        producer_epoch: 3,
        base_sequence,
        ..BatchOptions::default()
    }
}

fn log_config(compression_type: CompressionType, clock: &Arc<ManualClock>) -> LogConfig {
    LogConfig::builder()
        .compression_type(compression_type)
        .clock(clock.clone())
        .build()
        .unwrap()
}

#[test]
fn a_topic_codec_reencodes_producer_batches() {
    let out = interop_dir("compression-type");
    let records = sample_records();
    for target in enabled_codecs() {
        for source in enabled_codecs() {
            let dir = tempfile::tempdir().unwrap();
            let clock = Arc::new(ManualClock::new(T0 + 100));
            let log = Log::open(
                dir.path(),
                log_config(CompressionType::Codec(target), &clock),
            )
            .unwrap();
            let first = build_batch(idempotent(source, 0), &records).unwrap();
            let second = build_batch(idempotent(source, 5), &records[..2]).unwrap();
            let a = log.append(&first).unwrap();
            let b = log.append(&second).unwrap();
            assert_eq!(
                (a.first_offset, a.last_offset),
                (0, 4),
                "{source:?}->{target:?}"
            );
            assert_eq!(
                (b.first_offset, b.last_offset),
                (5, 6),
                "{source:?}->{target:?}"
            );
            // A retry of the first batch is still known by its sequence.
            assert!(log.append(&first).unwrap().duplicate);
            assert_eq!(log.log_end_offset(), 7);

            let stored = log.read_bytes(0, usize::MAX, None).unwrap();
            let batches: Vec<Batch<'_>> = Batches::new(&stored).map(Result::unwrap).collect();
            assert_eq!(batches.len(), 2);
            for (batch, (want, sequence, size)) in batches.iter().zip([
                (&records[..], 0, a.size_in_bytes),
                (&records[..2], 5, b.size_in_bytes),
            ]) {
                batch.validate().unwrap();
                assert_eq!(
                    batch.compression().unwrap(),
                    target,
                    "{source:?}->{target:?}"
                );
                assert_eq!(batch.as_bytes().len() as u64, size);
                let h = batch.header();
                assert_eq!(
                    (h.producer_id, h.producer_epoch, h.base_sequence),
                    (4242, 3, sequence)
                );
                assert_eq!(batch.timestamp_type(), TimestampType::CreateTime);
                assert_eq!(h.base_timestamp, T0);
                let got = decode_records(batch.as_bytes());
                let got: Vec<_> = got
                    .into_iter()
                    .map(|r| (r.timestamp, r.key, r.value, r.headers))
                    .collect();
                let want: Vec<_> = want
                    .iter()
                    .map(|r| {
                        (
                            r.timestamp,
                            r.key.clone(),
                            r.value.clone(),
                            r.headers.clone(),
                        )
                    })
                    .collect();
                assert_eq!(got, want, "{source:?}->{target:?}");
            }
            let expected = json!([
                {
                    "base_offset": 0,
                    "compression": target.name(),
                    "producer_id": 4242,
                    "producer_epoch": 3,
                    "base_sequence": 0,
                    "records": common::records_json(&records, 0, None),
                },
                {
                    "base_offset": 5,
                    "compression": target.name(),
                    "producer_id": 4242,
                    "producer_epoch": 3,
                    "base_sequence": 5,
                    "records": common::records_json(&records[..2], 5, None),
                },
            ]);
            write_interop_file(
                &out,
                &format!("{}_to_{}", source.name(), target.name()),
                "producer batches re-encoded by compression.type on append",
                &stored,
                expected,
            );
        }
    }
}

#[test]
fn producer_keeps_the_batch_as_sent() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0 + 100));
    let log = Log::open(dir.path(), log_config(CompressionType::Producer, &clock)).unwrap();
    for codec in enabled_codecs() {
        let batch = build_batch(BatchOptions::compressed(codec), &sample_records()).unwrap();
        let info = log.append(&batch).unwrap();
        let stored = log.read_bytes(info.first_offset, 1, None).unwrap();
        let stored = Batch::new(&stored).unwrap();
        assert_eq!(stored.compression().unwrap(), codec);
        // Only the header fields an append stamps differ: the records section is the same.
        assert_eq!(stored.as_bytes()[61..], batch[61..]);
    }
}

#[test]
fn reencoding_and_log_append_time_together() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0 + 500));
    let config = LogConfig::builder()
        .compression_type(CompressionType::Codec(Compression::Lz4))
        .message_timestamp_type(TimestampType::LogAppendTime)
        .clock(clock.clone())
        .build()
        .unwrap();
    let log = Log::open(dir.path(), config).unwrap();
    let batch = build_batch(BatchOptions::default(), &sample_records()).unwrap();
    let info = log.append(&batch).unwrap();
    assert_eq!(info.log_append_time, Some(T0 + 500));
    let stored = log.read_bytes(0, 1, None).unwrap();
    let stored = Batch::new(&stored).unwrap();
    stored.validate().unwrap();
    assert_eq!(stored.compression().unwrap(), Compression::Lz4);
    assert_eq!(stored.timestamp_type(), TimestampType::LogAppendTime);
    assert_eq!(stored.max_timestamp(), T0 + 500);
    // Kafka keeps the create-time base timestamp under LogAppendTime.
    assert_eq!(stored.header().base_timestamp, T0);
}

#[test]
fn a_batch_grown_past_the_limit_by_reencoding_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let config = LogConfig::builder()
        .compression_type(CompressionType::Codec(Compression::None))
        .max_message_bytes(4096)
        .clock(clock.clone())
        .build()
        .unwrap();
    let log = Log::open(dir.path(), config).unwrap();
    // 20 KB of zeros compress to far below the limit; stored uncompressed they exceed it.
    let zeros = vec![0u8; 20_000];
    let batch = build_batch(
        BatchOptions::compressed(Compression::Lz4),
        &[OwnedRecord::new(T0, None, Some(&zeros))],
    )
    .unwrap();
    assert!(batch.len() < 4096);
    match log.append(&batch) {
        Err(Error::MessageTooLarge { size, limit }) => {
            assert_eq!(limit, 4096);
            assert!(size > 20_000);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(log.log_end_offset(), 0);
}

#[test]
fn a_storage_topic_override_applies_to_its_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let config = StorageConfig::builder()
        .compression_type(CompressionType::Codec(Compression::Lz4))
        .build()
        .unwrap();
    let storage = Storage::open(dir.path(), config).unwrap();
    storage
        .create_topic("default", 1, TopicConfig::new())
        .unwrap();
    let mut uncompressed = TopicConfig::new();
    uncompressed
        .set("compression.type", "uncompressed")
        .unwrap();
    storage.create_topic("plain", 1, uncompressed).unwrap();
    let gzip = build_batch(
        BatchOptions::compressed(Compression::Gzip),
        &sample_records(),
    )
    .unwrap();
    for (topic, want) in [("default", Compression::Lz4), ("plain", Compression::None)] {
        let log = storage.partition(topic, 0).unwrap();
        log.append(&gzip).unwrap();
        let stored = log.read_bytes(0, 1, None).unwrap();
        assert_eq!(
            Batch::new(&stored).unwrap().compression().unwrap(),
            want,
            "{topic}"
        );
    }
}
