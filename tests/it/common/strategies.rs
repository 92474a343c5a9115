//! proptest strategies for records and batch header fields.

use proptest::collection::vec;
use proptest::prelude::*;
use streamlog::{BatchOptions, OwnedRecord};

/// Timestamps of every kind: realistic, arbitrary, negative and the extremes.
pub fn timestamp() -> impl Strategy<Value = i64> {
    prop_oneof![
        3 => 1_600_000_000_000..1_800_000_000_000i64,
        3 => any::<i64>(),
        1 => Just(i64::MIN),
        1 => Just(i64::MAX),
        1 => Just(-1i64),
        1 => Just(0i64),
        1 => -1_000i64..0,
    ]
}

/// Null, empty, short or a few KiB of arbitrary bytes.
pub fn nullable_bytes() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop_oneof![
        2 => Just(None),
        2 => Just(Some(Vec::new())),
        4 => vec(any::<u8>(), 1..32).prop_map(Some),
        1 => vec(any::<u8>(), 0..4096).prop_map(Some),
    ]
}

/// Header keys drawn from a small set so that duplicates are common, or arbitrary bytes.
fn header_key() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"trace".to_vec()),
        Just(b"k".to_vec()),
        Just(Vec::new()),
        vec(any::<u8>(), 0..16),
    ]
}

/// 0 to 4 headers, keys possibly repeated, values possibly null.
pub fn headers() -> impl Strategy<Value = Vec<(Vec<u8>, Option<Vec<u8>>)>> {
    vec((header_key(), nullable_bytes()), 0..5)
}

/// One record; its offset is left 0 (batches assign offsets).
pub fn record() -> impl Strategy<Value = OwnedRecord> {
    (timestamp(), nullable_bytes(), nullable_bytes(), headers()).prop_map(
        |(timestamp, key, value, headers)| OwnedRecord {
            offset: 0,
            timestamp,
            key,
            value,
            headers,
        },
    )
}

/// Up to `max - 1` records.
pub fn records(max: usize) -> impl Strategy<Value = Vec<OwnedRecord>> {
    vec(record(), 0..max)
}

/// Base offsets anywhere a batch of up to `i32::MAX` offsets still fits without overflow.
pub fn base_offset() -> impl Strategy<Value = i64> {
    let top = i64::MAX - i64::from(i32::MAX);
    prop_oneof![0..1_000_000i64, 0..=top, Just(top), i64::MIN..0,]
}

/// Uncompressed CreateTime options with arbitrary offset, leader epoch, producer fields and
/// transactional flag.
pub fn batch_options() -> impl Strategy<Value = BatchOptions> {
    (
        base_offset(),
        any::<i32>(),
        any::<i64>(),
        any::<i16>(),
        any::<i32>(),
        any::<bool>(),
    )
        .prop_map(
            |(base_offset, epoch, producer_id, producer_epoch, base_sequence, transactional)| {
                BatchOptions {
                    base_offset,
                    partition_leader_epoch: epoch,
                    producer_id,
                    producer_epoch,
                    base_sequence,
                    transactional,
                    ..BatchOptions::default()
                }
            },
        )
}
