//! The record encoder and decoder each have a fast path for the common record and a general
//! one for everything else; both must give the same bytes and the same answers.
//!
//! - `append` packs the varints of a header-less record into one store when each takes at
//!   most three bytes; `append_at` always takes the general writer. Same records, same
//!   offsets: the batches must be byte-identical.
//! - Record iteration has `next` (a fast path that falls back to a full check) and `fold`
//!   (a local loop, used by `sum`, `collect`, `for_each`), which can also be mixed. On valid
//!   and on damaged bytes they must yield the same records and the same errors.

use crate::common;

use common::{enabled_codecs, fix_crc, headers_of};
use proptest::collection::vec;
use proptest::prelude::*;
use streamlog::{Batch, BatchBuilder, BatchOptions, OwnedRecord};

/// Sizes on both sides of the one- and two-byte varint boundaries (zig-zag doubles a
/// length: 63/64, 8191/8192). Lengths past three bytes take a MiB; the timestamp deltas
/// reach the general writer's long varints instead.
fn sized_bytes() -> impl Strategy<Value = Option<Vec<u8>>> {
    let size = prop_oneof![0..70usize, 8185..8200usize];
    prop_oneof![
        1 => Just(None),
        6 => size.prop_map(|n| Some((0..n).map(|i| (i * 7 % 251) as u8).collect())),
    ]
}

/// Timestamp deltas from the first record across the varint boundaries: small, around the
/// three-byte limit (2^20) and anywhere at all.
fn delta() -> impl Strategy<Value = i64> {
    prop_oneof![
        -70..70i64,
        (1i64 << 20) - 3..(1i64 << 20) + 3,
        -(1i64 << 20) - 3..-(1i64 << 20) + 3,
        any::<i64>(),
    ]
}

/// Header-less records (the fast path's), with the odd record carrying a header (which
/// must go the general way in the middle of a batch).
fn plain_records() -> impl Strategy<Value = Vec<OwnedRecord>> {
    (
        any::<i64>(),
        vec((delta(), sized_bytes(), sized_bytes(), any::<u8>()), 1..6),
    )
        .prop_map(|(base, rows)| {
            rows.into_iter()
                .map(|(delta, key, value, header)| OwnedRecord {
                    offset: 0,
                    timestamp: base.wrapping_add(delta),
                    key,
                    value,
                    headers: if header < 32 {
                        vec![(b"h".to_vec(), Some(vec![header]))]
                    } else {
                        Vec::new()
                    },
                })
                .collect()
        })
}

fn build(records: &[OwnedRecord], opts: BatchOptions, general: bool) -> Vec<u8> {
    let mut b = BatchBuilder::new(opts);
    for (i, r) in records.iter().enumerate() {
        let (key, value, headers) = (r.key.as_deref(), r.value.as_deref(), headers_of(r));
        if general {
            b.append_at(i as i32, r.timestamp, key, value, &headers)
        } else {
            b.append(r.timestamp, key, value, &headers)
        }
        .unwrap();
    }
    b.build().unwrap()
}

/// Every item of the batch's records, each as its debug text (records and errors alike),
/// taking `by_next` items with `next` and the rest with `fold`.
fn items(bytes: &[u8], by_next: usize) -> Option<Vec<String>> {
    let batch = Batch::new(bytes).ok()?;
    let records = batch.records().ok()?;
    let mut iter = records.iter();
    let mut out = Vec::new();
    for _ in 0..by_next {
        match iter.next() {
            Some(item) => out.push(format!("{item:?}")),
            None => break,
        }
    }
    iter.fold((), |(), item| out.push(format!("{item:?}")));
    Some(out)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn fast_and_general_encoders_write_the_same_bytes(records in plain_records()) {
        for codec in enabled_codecs() {
            let opts = BatchOptions::compressed(codec);
            let fast = build(&records, opts, false);
            let general = build(&records, opts, true);
            prop_assert!(fast == general, "{codec}: batches differ");
            let batch = Batch::new(&fast).unwrap();
            batch.validate().unwrap();
            let decoded: Vec<OwnedRecord> = batch
                .records()
                .unwrap()
                .iter()
                .map(|r| r.unwrap().to_owned_record())
                .collect();
            let want: Vec<OwnedRecord> = records
                .iter()
                .enumerate()
                .map(|(i, r)| OwnedRecord { offset: i as i64, ..r.clone() })
                .collect();
            prop_assert_eq!(decoded, want);
        }
    }

    #[test]
    fn next_and_fold_agree_on_valid_and_damaged_batches(
        records in plain_records(),
        edits in vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        by_next in 0..8usize,
    ) {
        // Small records only: damage lands in the fields rather than in long values.
        let records: Vec<OwnedRecord> = records
            .into_iter()
            .map(|r| OwnedRecord {
                key: r.key.map(|k| k.into_iter().take(20).collect()),
                value: r.value.map(|v| v.into_iter().take(20).collect()),
                ..r
            })
            .collect();
        let mut bytes = build(&records, BatchOptions::default(), false);
        let header = streamlog::record::BATCH_HEADER_SIZE;
        let span = bytes.len() - header;
        for (at, value) in &edits {
            bytes[header + at.index(span)] = *value;
        }
        fix_crc(&mut bytes);
        let all_by_next = items(&bytes, usize::MAX);
        prop_assert_eq!(&items(&bytes, 0), &all_by_next);
        prop_assert_eq!(&items(&bytes, by_next), &all_by_next);
        if edits.is_empty() {
            prop_assert_eq!(all_by_next.map(|v| v.len()), Some(records.len()));
        }
    }
}
