//! Records encoded by `BatchBuilder` decode to exactly what went in, under every codec this
//! build enables, with every header field intact; and the in-place header updates a log
//! makes on append keep the batch valid.

use crate::common;

use common::strategies::{base_offset, batch_options, record, records, timestamp};
use common::{build_batch, decode_records, enabled_codecs, headers_of};
use proptest::collection::vec;
use proptest::prelude::*;
use streamlog::record::NO_TIMESTAMP;
use streamlog::{
    Batch, BatchBuilder, BatchMut, BatchOptions, Compression, ControlRecord, Error, OwnedRecord,
    TimestampType,
};

/// What decoding `records` from a batch at `base_offset` must give: the same records at
/// consecutive offsets.
fn at_offsets(records: &[OwnedRecord], base_offset: i64) -> Vec<OwnedRecord> {
    records
        .iter()
        .zip(base_offset..)
        .map(|(r, offset)| OwnedRecord {
            offset,
            ..r.clone()
        })
        .collect()
}

/// Kafka's max timestamp for a CreateTime batch: the largest record timestamp, but never
/// below `NO_TIMESTAMP` (-1), the value `MemoryRecordsBuilder` starts from.
fn kafka_max_timestamp(records: &[OwnedRecord]) -> i64 {
    records
        .iter()
        .map(|r| r.timestamp)
        .fold(NO_TIMESTAMP, i64::max)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn records_and_header_fields_round_trip(records in records(8), opts in batch_options()) {
        for codec in enabled_codecs() {
            let opts = BatchOptions { compression: codec, ..opts };
            let bytes = build_batch(opts, &records).unwrap();
            let batch = Batch::new(&bytes).unwrap();
            batch.validate().unwrap();

            let n = records.len() as i32;
            prop_assert_eq!(batch.compression().unwrap(), codec);
            prop_assert_eq!(batch.base_offset(), opts.base_offset);
            prop_assert_eq!(batch.partition_leader_epoch(), opts.partition_leader_epoch);
            prop_assert_eq!(batch.producer_id(), opts.producer_id);
            prop_assert_eq!(batch.producer_epoch(), opts.producer_epoch);
            prop_assert_eq!(batch.base_sequence(), opts.base_sequence);
            prop_assert_eq!(batch.is_transactional(), opts.transactional);
            prop_assert!(!batch.is_control());
            prop_assert_eq!(batch.control_record().unwrap(), None);
            prop_assert_eq!(batch.timestamp_type(), TimestampType::CreateTime);
            prop_assert_eq!(batch.record_count(), n);
            prop_assert_eq!(batch.last_offset_delta(), (n - 1).max(0));
            prop_assert_eq!(batch.max_timestamp(), kafka_max_timestamp(&records));
            let first_timestamp = records.first().map_or(NO_TIMESTAMP, |r| r.timestamp);
            prop_assert_eq!(batch.base_timestamp(), first_timestamp);
            if n > 0 {
                prop_assert_eq!(batch.next_offset(), opts.base_offset + i64::from(n));
            }

            prop_assert_eq!(decode_records(&bytes), at_offsets(&records, opts.base_offset));
        }
    }

    #[test]
    fn log_append_time_replaces_every_timestamp(
        records in records(6),
        append_time in timestamp(),
        base in base_offset(),
    ) {
        for codec in enabled_codecs() {
            let opts = BatchOptions {
                compression: codec,
                timestamp_type: TimestampType::LogAppendTime,
                log_append_time: append_time,
                base_offset: base,
                ..BatchOptions::default()
            };
            let bytes = build_batch(opts, &records).unwrap();
            let batch = Batch::new(&bytes).unwrap();
            prop_assert_eq!(batch.timestamp_type(), TimestampType::LogAppendTime);
            prop_assert_eq!(batch.max_timestamp(), append_time);
            let want: Vec<OwnedRecord> = at_offsets(&records, base)
                .into_iter()
                .map(|r| OwnedRecord { timestamp: append_time, ..r })
                .collect();
            prop_assert_eq!(decode_records(&bytes), want);
        }
    }

    #[test]
    fn append_at_keeps_gaps_in_offset_deltas(
        first_delta in 0..1_000i32,
        rest in vec((record(), prop_oneof![1..4i32, 1..1_000_000i32, Just(i32::MAX / 16)]), 0..8),
        first in record(),
        base in base_offset(),
    ) {
        let mut delta = first_delta;
        let mut placed = vec![(first_delta, first)];
        for (r, gap) in rest {
            delta += gap;
            placed.push((delta, r));
        }
        let want: Vec<OwnedRecord> = placed
            .iter()
            .map(|(d, r)| OwnedRecord { offset: base + i64::from(*d), ..r.clone() })
            .collect();
        for codec in enabled_codecs() {
            let mut builder = BatchBuilder::new(BatchOptions {
                compression: codec,
                base_offset: base,
                ..BatchOptions::default()
            });
            for (d, r) in &placed {
                builder
                    .append_at(*d, r.timestamp, r.key.as_deref(), r.value.as_deref(), &headers_of(r))
                    .unwrap();
            }
            let bytes = builder.build().unwrap();
            let batch = Batch::new(&bytes).unwrap();
            batch.validate().unwrap();
            prop_assert_eq!(batch.record_count(), placed.len() as i32);
            prop_assert_eq!(batch.last_offset_delta(), delta);
            prop_assert_eq!(batch.next_offset(), base + i64::from(delta) + 1);
            prop_assert_eq!(decode_records(&bytes), want.clone());
        }
    }

    #[test]
    fn header_updates_keep_the_crc_valid(
        records in records(6),
        codec_index in any::<prop::sample::Index>(),
        new_base in base_offset(),
        new_epoch in any::<i32>(),
        append_time in timestamp(),
    ) {
        let codec = *codec_index.get(&enabled_codecs());
        let opts = BatchOptions::compressed(codec);
        let mut bytes = build_batch(opts, &records).unwrap();
        let crc = Batch::new(&bytes).unwrap().crc();

        // Base offset and leader epoch lie outside the CRC: it must not change.
        let mut batch = BatchMut::new(&mut bytes).unwrap();
        batch.set_base_offset(new_base);
        batch.set_partition_leader_epoch(new_epoch);
        let view = batch.as_batch();
        prop_assert_eq!(view.crc(), crc);
        view.validate().unwrap();
        prop_assert_eq!(view.base_offset(), new_base);
        prop_assert_eq!(view.partition_leader_epoch(), new_epoch);
        prop_assert_eq!(decode_records(&bytes), at_offsets(&records, new_base));

        // LogAppendTime stamping rewrites covered bytes, so the CRC must be recomputed.
        let before = bytes.clone();
        let mut batch = BatchMut::new(&mut bytes).unwrap();
        batch.set_max_timestamp(TimestampType::LogAppendTime, append_time);
        let view = batch.as_batch();
        view.validate().unwrap();
        prop_assert_eq!(view.crc(), view.compute_crc());
        prop_assert_ne!(&before[21..], &bytes[21..]);
        let stamped: Vec<OwnedRecord> = at_offsets(&records, new_base)
            .into_iter()
            .map(|r| OwnedRecord { timestamp: append_time, ..r })
            .collect();
        prop_assert_eq!(decode_records(&bytes), stamped);

        // Back to CreateTime: the records' own timestamps read again.
        let mut batch = BatchMut::new(&mut bytes).unwrap();
        batch.set_max_timestamp(TimestampType::CreateTime, kafka_max_timestamp(&records));
        batch.as_batch().validate().unwrap();
        prop_assert_eq!(decode_records(&bytes), at_offsets(&records, new_base));
    }

    #[test]
    fn control_batches_round_trip(
        commit in any::<bool>(),
        coordinator_epoch in any::<i32>(),
        opts in batch_options(),
        ts in timestamp(),
    ) {
        let marker = ControlRecord::end_txn(commit, coordinator_epoch);
        let bytes = BatchBuilder::control_batch(opts, &marker, ts).unwrap();
        let batch = Batch::new(&bytes).unwrap();
        batch.validate().unwrap();
        prop_assert!(batch.is_control());
        prop_assert!(batch.is_transactional());
        prop_assert_eq!(batch.compression().unwrap(), Compression::None);
        prop_assert_eq!(batch.record_count(), 1);
        prop_assert_eq!(batch.base_offset(), opts.base_offset);
        prop_assert_eq!(batch.producer_id(), opts.producer_id);
        prop_assert_eq!(batch.producer_epoch(), opts.producer_epoch);
        prop_assert_eq!(batch.control_record().unwrap(), Some(marker));
        let decoded = decode_records(&bytes);
        prop_assert_eq!(decoded.len(), 1);
        prop_assert_eq!(decoded[0].offset, opts.base_offset);
        prop_assert_eq!(decoded[0].timestamp, ts);
        // Kafka's layout: key = version 0, type (0 abort, 1 commit); value = version 0, epoch.
        prop_assert_eq!(decoded[0].key.as_deref(), Some(&[0, 0, 0, u8::from(commit)][..]));
        let mut value = vec![0, 0];
        value.extend_from_slice(&coordinator_epoch.to_be_bytes());
        prop_assert_eq!(decoded[0].value.as_deref(), Some(&value[..]));
    }
}

/// Null and empty are different things for keys, values and header values, in every codec.
#[test]
fn null_and_empty_stay_distinct() {
    let records = [
        OwnedRecord {
            key: None,
            value: Some(Vec::new()),
            headers: vec![(b"h".to_vec(), None), (b"h".to_vec(), Some(Vec::new()))],
            ..OwnedRecord::default()
        },
        OwnedRecord {
            key: Some(Vec::new()),
            value: None,
            ..OwnedRecord::default()
        },
        OwnedRecord::default(),
    ];
    for codec in enabled_codecs() {
        let bytes = build_batch(BatchOptions::compressed(codec), &records).unwrap();
        let decoded = decode_records(&bytes);
        assert_eq!(decoded, at_offsets(&records, 0), "{codec}");
        assert_eq!(decoded[0].key, None, "{codec}");
        assert_eq!(decoded[0].value, Some(Vec::new()), "{codec}");
        assert_eq!(decoded[1].key, Some(Vec::new()), "{codec}");
        assert_eq!(decoded[1].value, None, "{codec}");
    }
}

#[test]
fn append_at_rejects_deltas_that_do_not_increase() {
    let mut builder = BatchBuilder::new(BatchOptions::default());
    builder.append_at(5, 0, None, Some(b"a"), &[]).unwrap();
    for bad in [5, 4, -1] {
        let err = builder
            .append_at(bad, 0, None, Some(b"b"), &[])
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::OffsetDeltaNotIncreasing {
                    offset_delta,
                    previous: Some(5)
                } if offset_delta == bad
            ),
            "delta {bad}: {err}"
        );
    }
    let err = BatchBuilder::new(BatchOptions::default())
        .append_at(-1, 0, None, None, &[])
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::OffsetDeltaNotIncreasing {
                offset_delta: -1,
                previous: None
            }
        ),
        "{err}"
    );
    // The rejected appends left nothing behind.
    let bytes = builder.build().unwrap();
    assert_eq!(decode_records(&bytes).len(), 1);
}
