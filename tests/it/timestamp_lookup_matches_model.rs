//! ListOffsets against a brute-force model under proptest: random non-monotonic timestamps
//! (repeats, small ones, -1), plain and compressed batches, many small segments, with rolls,
//! DeleteRecords, retention, truncation and clean or unclean reopens in between. After every
//! step each lookup (every timestamp the log has seen, and its neighbours; earliest, latest,
//! max timestamp) must answer what a scan of the live records answers.
//!
//! `PROPTEST_CASES` raises the number of cases (32 by default).

use proptest::collection::vec;
use proptest::prelude::*;
use streamlog::{Compression, ListOffsetsSpec, Log, LogConfig, OwnedRecord, TimestampAndOffset};

const T0: i64 = 1_700_000_000_000;

#[derive(Debug, Clone)]
enum Op {
    /// A batch of records with these timestamps (offsets from `T0`, or absolute when
    /// `absolute`), compressed or not.
    Append {
        stamps: Vec<i64>,
        absolute: bool,
        lz4: bool,
    },
    Roll,
    /// DeleteRecords to a point `fraction`/1000 of the way from the start to the end.
    DeleteRecords(u16),
    /// Retention at `T0 + now`.
    Retention(i64),
    /// Truncate to a point `fraction`/1000 of the way from the start to the end.
    Truncate(u16),
    Reopen {
        clean: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (
            vec(-40i64..40, 1..8),
            prop::bool::weighted(0.1),
            prop::bool::weighted(0.2),
        )
            .prop_map(|(stamps, absolute, lz4)| Op::Append { stamps, absolute, lz4 }),
        1 => Just(Op::Roll),
        1 => (0u16..=1000).prop_map(Op::DeleteRecords),
        1 => (-10i64..60).prop_map(Op::Retention),
        1 => (0u16..=1000).prop_map(Op::Truncate),
        1 => any::<bool>().prop_map(|clean| Op::Reopen { clean }),
    ]
}

fn config() -> LogConfig {
    LogConfig::builder()
        .segment_bytes(400)
        .segment_ms(None)
        .segment_index_bytes(4096)
        .index_interval_bytes(100)
        .retention_ms(Some(20))
        .retention_bytes(Some(2_000))
        .build()
        .unwrap()
}

/// Every record ever appended that the log may still hold, by offset.
#[derive(Debug, Default)]
struct Model {
    records: Vec<(i64, i64)>,
}

impl Model {
    fn live(&self, log: &Log) -> impl Iterator<Item = (i64, i64)> + '_ {
        let (start, end) = (log.log_start_offset(), log.log_end_offset());
        self.records
            .iter()
            .copied()
            .filter(move |&(o, _)| start <= o && o < end)
    }

    fn first_at_or_after(&self, log: &Log, t: i64) -> Option<(i64, i64)> {
        self.live(log).find(|&(_, ts)| ts >= t)
    }

    fn max_timestamp(&self, log: &Log) -> Option<(i64, i64)> {
        let mut best: Option<(i64, i64)> = None;
        for (o, ts) in self.live(log) {
            if best.is_none_or(|(_, b)| ts > b) {
                best = Some((o, ts));
            }
        }
        best
    }
}

fn pick(log: &Log, fraction: u16) -> i64 {
    let (start, end) = (log.log_start_offset(), log.log_end_offset());
    start + (end - start) * i64::from(fraction) / 1000
}

fn pair(r: Option<TimestampAndOffset>) -> Option<(i64, i64)> {
    r.map(|r| (r.offset, r.timestamp))
}

fn check(log: &Log, model: &Model, step: usize) -> Result<(), TestCaseError> {
    let mut targets: Vec<i64> = model
        .records
        .iter()
        .flat_map(|&(_, t)| [t - 1, t, t + 1])
        .chain([i64::MIN, -2, -1, 0, T0, i64::MAX])
        .collect();
    targets.sort_unstable();
    targets.dedup();
    for t in targets {
        let want = model.first_at_or_after(log, t);
        let got = pair(log.list_offsets(ListOffsetsSpec::Timestamp(t)).unwrap());
        prop_assert_eq!(got, want, "step {}: timestamp {}", step, t);
        prop_assert_eq!(log.offset_for_timestamp(t).unwrap(), want);
    }
    prop_assert_eq!(
        pair(log.list_offsets(ListOffsetsSpec::MaxTimestamp).unwrap()),
        model.max_timestamp(log),
        "step {}: max timestamp",
        step
    );
    prop_assert_eq!(
        pair(log.list_offsets(ListOffsetsSpec::Earliest).unwrap()),
        Some((log.log_start_offset(), -1))
    );
    prop_assert_eq!(
        pair(log.list_offsets(ListOffsetsSpec::Latest).unwrap()),
        Some((log.log_end_offset(), -1))
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(32),
        ..ProptestConfig::default()
    })]

    #[test]
    fn list_offsets_matches_a_scan_of_the_live_records(ops in vec(op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path(), config()).unwrap();
        let mut model = Model::default();
        for (step, op) in ops.into_iter().enumerate() {
            match op {
                Op::Append { stamps, absolute, lz4 } => {
                    let records: Vec<_> = stamps
                        .iter()
                        .map(|&s| {
                            // Kafka rejects timestamps below -1 (NO_TIMESTAMP); a batch's
                            // max timestamp never goes below -1.
                            let t = if absolute { s.max(-1) } else { T0 + s };
                            OwnedRecord::new(t, Some(b"k"), Some(b"value"))
                        })
                        .collect();
                    let codec = if lz4 { Compression::Lz4 } else { Compression::None };
                    let info = log.append_records(&records, codec).unwrap();
                    for (i, r) in records.iter().enumerate() {
                        model.records.push((info.first_offset + i as i64, r.timestamp));
                    }
                }
                Op::Roll => log.roll().unwrap(),
                Op::DeleteRecords(f) => log.delete_records_before(pick(&log, f)).unwrap(),
                Op::Retention(now) => {
                    let before = log.log_start_offset();
                    log.delete_retention_breached(T0 + now).unwrap();
                    prop_assert!(log.log_start_offset() >= before);
                }
                Op::Truncate(f) => {
                    log.truncate_to(pick(&log, f)).unwrap();
                    let end = log.log_end_offset();
                    model.records.retain(|&(o, _)| o < end);
                }
                Op::Reopen { clean } => {
                    if clean {
                        log.close().unwrap();
                    }
                    drop(log);
                    log = Log::open(dir.path(), config()).unwrap();
                }
            }
            check(&log, &model, step)?;
        }
    }
}
