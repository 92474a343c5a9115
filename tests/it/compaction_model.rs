//! Compaction against a model, under proptest: random keyed appends (null keys and
//! tombstones included, every codec), rolls, clean reopens, and compaction passes with
//! random upper bounds, times and key-map sizes. After every step the log must hold:
//!
//! - only records that were appended, at the offsets they were given, in order;
//! - every record at or above the cleaned point (the cleaner checkpoint) untouched;
//! - below it, for each key exactly the last record, unless it is a tombstone whose delete
//!   horizon (stamped `delete.retention.ms` after the first pass that kept it) had passed at
//!   a later pass that cleaned new records, which must then have removed it; no record
//!   without a key.

use std::collections::{BTreeMap, HashMap};

use proptest::collection::vec;
use proptest::prelude::*;
use streamlog::log::{Cleaner, CleanerConfig};
use streamlog::{Compression, Log, LogConfig, OwnedRecord};

const DELETE_RETENTION_MS: i64 = 100;

#[derive(Debug, Clone)]
enum Op {
    Append(Vec<(Option<u8>, Option<u8>)>, Compression),
    Roll,
    Reopen,
    /// Upper bound as a share (0..=100) of the log end offset, time advance, map budget in
    /// slots (small budgets force several passes).
    Compact(u8, i64, bool),
}

fn op() -> impl Strategy<Value = Op> {
    let record = (
        prop_oneof![1 => Just(None), 9 => (0u8..6).prop_map(Some)],
        prop_oneof![1 => Just(None), 4 => any::<u8>().prop_map(Some)],
    );
    let codec = prop_oneof![
        Just(Compression::None),
        Just(Compression::Lz4),
        Just(Compression::Gzip)
    ];
    prop_oneof![
        6 => (vec(record, 1..5), codec).prop_map(|(r, c)| Op::Append(r, c)),
        1 => Just(Op::Roll),
        1 => Just(Op::Reopen),
        3 => (0u8..=100, 0i64..80, any::<bool>()).prop_map(|(u, t, s)| Op::Compact(u, t, s)),
    ]
}

#[derive(Debug, Clone)]
struct Appended {
    key: Option<u8>,
    value: Option<u8>,
}

#[derive(Default)]
struct Model {
    /// Every record appended, by offset.
    history: BTreeMap<i64, Appended>,
    /// Everything below it has been cleaned at least once.
    cleaned_upto: i64,
    /// Time of the first pass that covered each offset (the tombstone's horizon starts there).
    first_cover: HashMap<i64, i64>,
    /// (time, end offset) of every pass.
    passes: Vec<(i64, i64)>,
}

fn config() -> LogConfig {
    LogConfig::builder()
        .segment_bytes(400)
        .segment_index_bytes(4096)
        .index_interval_bytes(64)
        .segment_ms(None)
        .delete_retention_ms(DELETE_RETENTION_MS)
        .build()
        .unwrap()
}

/// A record's key and value as read back.
type KeyValue = (Option<Vec<u8>>, Option<Vec<u8>>);

fn check(log: &Log, m: &Model) {
    let got: Vec<(i64, KeyValue)> = log
        .records_from(log.log_start_offset())
        .map(|r| {
            let r = r.unwrap();
            (
                r.offset(),
                (r.key().map(<[u8]>::to_vec), r.value().map(<[u8]>::to_vec)),
            )
        })
        .collect();
    assert!(
        got.windows(2).all(|w| w[0].0 < w[1].0),
        "offsets increase: {got:?}"
    );
    let present: BTreeMap<i64, KeyValue> = got.into_iter().collect();
    for (&o, (k, v)) in &present {
        let a = m
            .history
            .get(&o)
            .unwrap_or_else(|| panic!("offset {o} never appended"));
        assert_eq!(k, &a.key.map(|k| vec![k]), "key at {o}");
        assert_eq!(v, &a.value.map(|v| vec![v]), "value at {o}");
    }
    let end = m.cleaned_upto;
    for (&o, a) in &m.history {
        let here = present.contains_key(&o);
        if o >= end {
            assert!(
                here,
                "offset {o} at or above the cleaned point {end} must be kept"
            );
            continue;
        }
        let Some(key) = a.key else {
            assert!(!here, "record without a key at {o} below {end} must go");
            continue;
        };
        let superseded = m.history.range(o + 1..end).any(|(_, b)| b.key == Some(key));
        if superseded {
            assert!(
                !here,
                "offset {o} (key {key}) superseded below {end} must go"
            );
            continue;
        }
        if a.value.is_some() {
            assert!(here, "last value for key {key} at {o} must be kept");
            continue;
        }
        let horizon = m.first_cover[&o] + DELETE_RETENTION_MS;
        let expired_pass = m.passes.iter().any(|&(t, e)| t >= horizon && o < e);
        assert_eq!(
            here, !expired_pass,
            "tombstone at {o}: horizon {horizon}, passes {:?}",
            m.passes
        );
    }
}

fn run(ops: Vec<Op>) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), config()).unwrap();
    let mut m = Model::default();
    let mut now = 1_000i64;
    for op in ops {
        match op {
            Op::Append(records, codec) => {
                let owned: Vec<OwnedRecord> = records
                    .iter()
                    .map(|(k, v)| {
                        OwnedRecord::new(
                            now,
                            k.map(|k| vec![k]).as_deref(),
                            v.map(|v| vec![v]).as_deref(),
                        )
                    })
                    .collect();
                let info = log.append_records(&owned, codec).unwrap();
                for (i, (k, v)) in records.into_iter().enumerate() {
                    m.history
                        .insert(info.first_offset + i as i64, Appended { key: k, value: v });
                }
            }
            Op::Roll => log.roll().unwrap(),
            Op::Reopen => {
                log.close().unwrap();
                log = Log::open(dir.path(), config()).unwrap();
            }
            Op::Compact(share, advance, small) => {
                now += advance;
                let upper = log.log_end_offset() * i64::from(share) / 100;
                // A small map holds 4 keys: passes stop early and the next goes on.
                let mut cleaner = Cleaner::new(CleanerConfig {
                    dedupe_buffer_bytes: if small { 24 * 8 } else { 1 << 20 },
                    dedupe_buffer_load_factor: if small { 0.5 } else { 0.9 },
                });
                let before = log.cleanable(upper, now).unwrap();
                let stats = cleaner.clean(&log, upper, now).unwrap();
                assert!(!stats.aborted);
                assert!(
                    stats.end_offset
                        <= before
                            .first_uncleanable_offset
                            .max(stats.first_dirty_offset)
                );
                assert!(stats.records_written <= stats.records_read);
                for o in m.cleaned_upto..stats.end_offset {
                    m.first_cover.entry(o).or_insert(now);
                }
                m.cleaned_upto = m.cleaned_upto.max(stats.end_offset);
                if stats.end_offset > stats.first_dirty_offset {
                    // As in Kafka, a pass with no dirty records rewrites nothing (expired
                    // tombstones wait for the next pass that has new records to clean).
                    m.passes.push((now, stats.end_offset));
                }
            }
        }
        check(&log, &m);
    }
    // Reopened after a clean close, the log holds the same records.
    log.close().unwrap();
    let log = Log::open(dir.path(), config()).unwrap();
    check(&log, &m);
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(32),
        max_shrink_iters: 2_000,
        ..ProptestConfig::default()
    })]

    #[test]
    fn compaction_matches_model(ops in vec(op(), 1..60)) {
        run(ops);
    }
}
