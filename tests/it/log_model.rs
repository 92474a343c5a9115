//! A model test of the partition log: random sequences of appends, replica appends, reads,
//! truncations, DeleteRecords, rolls and reopens (clean and unclean) on logs with tiny
//! segments and indexes, checked after every step against a plain list of batches.
//!
//! `PROPTEST_CASES` raises the number of cases (48 by default, sized for a debug build).

use crate::common;

use std::sync::Arc;

use proptest::collection::vec;
use proptest::prelude::*;
use streamlog::io::RealFs;
use streamlog::{
    Batch, BatchOptions, Batches, Compression, Error, FetchData, Log, LogConfig, ManualClock,
    OwnedRecord, TimestampType,
};

/// Where the manual clock starts: record timestamps are mostly drawn around it.
const START_MS: i64 = 1_700_000_000_000;

// ---------------------------------------------------------------------------------------
// Operations

#[derive(Debug, Clone)]
enum Timestamp {
    /// Milliseconds from the clock's time at the append.
    FromNow(i64),
    /// Any timestamp at all (negative, extreme).
    Fixed(i64),
}

#[derive(Clone)]
struct RecordSpec {
    timestamp: Timestamp,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

/// Sizes rather than bytes, so that a failing case prints in a few lines.
impl std::fmt::Debug for RecordSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let len = |b: &Option<Vec<u8>>| b.as_ref().map(Vec::len);
        write!(
            f,
            "Record({:?}, key {:?}, value {:?}, {} headers)",
            self.timestamp,
            len(&self.key),
            len(&self.value),
            self.headers.len()
        )
    }
}

/// An offset chosen relative to the log's state when the operation runs, so that shrinking
/// the operation list keeps the choices meaningful: a point between two bounds, then nudged.
#[derive(Debug, Clone, Copy)]
struct Pick {
    fraction: u16,
    nudge: i64,
}

impl Pick {
    fn between(self, low: i64, high: i64) -> i64 {
        let span = i128::from(high - low);
        let at = span * i128::from(self.fraction) / i128::from(u16::MAX);
        low + i64::try_from(at).unwrap() + self.nudge
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Producer {
    id: i64,
    epoch: i16,
    base_sequence: i32,
    transactional: bool,
}

const NO_PRODUCER: Producer = Producer {
    id: -1,
    epoch: -1,
    base_sequence: -1,
    transactional: false,
};

#[derive(Debug, Clone, Copy)]
enum ReplicaBase {
    /// The batch starts at the log end offset.
    AtEnd,
    /// The batch starts this far past the log end offset (as a compacted leader sends).
    Gap(i64),
    /// The batch starts below the log end offset: the append must be refused.
    Stale,
}

#[derive(Debug, Clone)]
enum Op {
    /// A producer batch: through `append_records` without producer fields, else built here
    /// and handed to `append`.
    Append {
        records: Vec<RecordSpec>,
        codec: Compression,
        producer: Option<Producer>,
    },
    AppendReplicated {
        records: Vec<RecordSpec>,
        codec: Compression,
        producer: Option<Producer>,
        leader_epoch: i32,
        log_append_time: bool,
        base: ReplicaBase,
    },
    Read {
        offset: Pick,
        max_bytes: usize,
        upper_bound: Option<Pick>,
    },
    Records {
        offset: Pick,
        upper_bound: Option<Pick>,
    },
    /// `offset_for_timestamp` for the timestamp of a stored record (picked like an offset),
    /// nudged, or for any timestamp at all.
    OffsetForTimestamp {
        record: Pick,
        any: Option<i64>,
    },
    TruncateTo(Pick),
    DeleteRecordsBefore(Pick),
    Reopen {
        clean: bool,
    },
    Roll,
    /// `flush()`, then maybe `checkpoint()` so that an unclean reopen starts recovery later.
    Flush {
        checkpoint: bool,
    },
    AdvanceClock(i64),
    SetLeaderEpoch(i32),
}

fn payload() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop_oneof![
        1 => Just(None),
        1 => Just(Some(Vec::new())),
        3 => vec(any::<u8>(), 1..300).prop_map(Some),
        // Runs of one byte, so that the codecs have something to compress.
        2 => (any::<u8>(), 1..300usize).prop_map(|(b, n)| Some(vec![b; n])),
    ]
}

fn record_spec() -> impl Strategy<Value = RecordSpec> {
    let timestamp = prop_oneof![
        8 => (-2_000i64..2_000).prop_map(Timestamp::FromNow),
        1 => common::strategies::timestamp().prop_map(Timestamp::Fixed),
    ];
    let header = (
        vec(any::<u8>(), 0..8),
        prop_oneof![Just(None), vec(any::<u8>(), 0..16).prop_map(Some)],
    );
    (timestamp, payload(), payload(), vec(header, 0..3)).prop_map(
        |(timestamp, key, value, headers)| RecordSpec {
            timestamp,
            key,
            value,
            headers,
        },
    )
}

fn codec() -> impl Strategy<Value = Compression> {
    prop::sample::select(common::enabled_codecs())
}

fn producer() -> impl Strategy<Value = Option<Producer>> {
    prop::option::of((0..1_000i64, 0..5i16, 0..1_000i32, any::<bool>()).prop_map(
        |(id, epoch, base_sequence, transactional)| Producer {
            id,
            epoch,
            base_sequence,
            transactional,
        },
    ))
}

fn pick() -> impl Strategy<Value = Pick> {
    let nudge = prop_oneof![6 => Just(0i64), 1 => -3i64..=3];
    (any::<u16>(), nudge).prop_map(|(fraction, nudge)| Pick { fraction, nudge })
}

fn op() -> impl Strategy<Value = Op> {
    let records = || vec(record_spec(), 1..20);
    let base = prop_oneof![
        8 => Just(ReplicaBase::AtEnd),
        1 => (1..50i64).prop_map(ReplicaBase::Gap),
        1 => Just(ReplicaBase::Stale),
    ];
    let max_bytes = prop_oneof![4 => 0..6_000usize, 1 => Just(usize::MAX)];
    prop_oneof![
        6 => (records(), codec(), producer()).prop_map(|(records, codec, producer)| Op::Append {
            records,
            codec,
            producer,
        }),
        3 => (records(), codec(), producer(), 0..10i32, any::<bool>(), base).prop_map(
            |(records, codec, producer, leader_epoch, log_append_time, base)| {
                Op::AppendReplicated {
                    records,
                    codec,
                    producer,
                    leader_epoch,
                    log_append_time,
                    base,
                }
            }
        ),
        4 => (pick(), max_bytes, prop::option::of(pick())).prop_map(
            |(offset, max_bytes, upper_bound)| Op::Read {
                offset,
                max_bytes,
                upper_bound,
            }
        ),
        2 => (pick(), prop::option::of(pick()))
            .prop_map(|(offset, upper_bound)| Op::Records {
                offset,
                upper_bound
            }),
        1 => (pick(), prop::option::weighted(0.2, common::strategies::timestamp()))
            .prop_map(|(record, any)| Op::OffsetForTimestamp { record, any }),
        2 => pick().prop_map(Op::TruncateTo),
        1 => pick().prop_map(Op::DeleteRecordsBefore),
        2 => any::<bool>().prop_map(|clean| Op::Reopen { clean }),
        1 => Just(Op::Roll),
        1 => any::<bool>().prop_map(|checkpoint| Op::Flush { checkpoint }),
        1 => (0..20_000i64).prop_map(Op::AdvanceClock),
        1 => (0..5i32).prop_map(Op::SetLeaderEpoch),
    ]
}

/// The configuration knobs a case draws: tiny segments and indexes, so that size, time and
/// full indexes all force rolls within a few dozen appends.
#[derive(Debug, Clone)]
struct Setup {
    segment_bytes: u64,
    segment_index_bytes: u32,
    index_interval_bytes: u32,
    segment_ms: Option<i64>,
    log_append_time: bool,
}

fn setup() -> impl Strategy<Value = Setup> {
    (
        1_024..=4_096u64,
        64..=256u32,
        0..=512u32,
        prop::option::of(500..10_000i64),
        prop::bool::weighted(0.25),
    )
        .prop_map(
            |(
                segment_bytes,
                segment_index_bytes,
                index_interval_bytes,
                segment_ms,
                log_append_time,
            )| Setup {
                segment_bytes,
                segment_index_bytes,
                index_interval_bytes,
                segment_ms,
                log_append_time,
            },
        )
}

// ---------------------------------------------------------------------------------------
// The model

/// A batch as the log must hand it back.
#[derive(Debug, Clone)]
struct ModelBatch {
    base: i64,
    last: i64,
    size: usize,
    leader_epoch: i32,
    timestamp_type: TimestampType,
    max_timestamp: i64,
    producer: Producer,
    compression: Compression,
    /// Records with their final offsets and timestamps (the batch's under LogAppendTime).
    records: Vec<OwnedRecord>,
}

#[derive(Debug)]
struct Model {
    /// Batches in offset order, including any below the log start offset (the one holding it
    /// stays on disk, and a truncation can end the log at one of them).
    batches: Vec<ModelBatch>,
    log_start_offset: i64,
    log_end_offset: i64,
    leader_epoch: i32,
}

impl Model {
    /// The first batch whose last offset is at least `offset`.
    fn batch_at(&self, offset: i64) -> Option<usize> {
        self.batches.iter().position(|b| b.last >= offset)
    }

    /// Records at or after the log start offset, in order.
    fn visible_records(&self) -> impl Iterator<Item = &OwnedRecord> {
        let start = self.log_start_offset;
        self.batches
            .iter()
            .flat_map(|b| &b.records)
            .filter(move |r| r.offset >= start)
    }
}

fn owned_records(specs: &[RecordSpec], now: i64) -> Vec<OwnedRecord> {
    specs
        .iter()
        .map(|s| OwnedRecord {
            offset: 0,
            timestamp: match s.timestamp {
                Timestamp::FromNow(d) => now + d,
                Timestamp::Fixed(t) => t,
            },
            key: s.key.clone(),
            value: s.value.clone(),
            headers: s.headers.clone(),
        })
        .collect()
}

fn batch_options(codec: Compression, producer: Option<Producer>) -> BatchOptions {
    let p = producer.unwrap_or(NO_PRODUCER);
    BatchOptions {
        producer_id: p.id,
        producer_epoch: p.epoch,
        base_sequence: p.base_sequence,
        transactional: p.transactional,
        ..BatchOptions::compressed(codec)
    }
}

/// The model of a batch built from `records` with `opts`, stored at `base` with the given
/// leader epoch and, under LogAppendTime, `append_time`.
fn model_batch(
    records: &[OwnedRecord],
    bytes: &[u8],
    opts: &BatchOptions,
    base: i64,
    leader_epoch: i32,
    append_time: Option<i64>,
) -> ModelBatch {
    let built = Batch::new(bytes).unwrap();
    let (timestamp_type, max_timestamp) = match append_time {
        Some(t) => (TimestampType::LogAppendTime, t),
        None => (built.timestamp_type(), built.max_timestamp()),
    };
    let records = records
        .iter()
        .zip(base..)
        .map(|(r, offset)| OwnedRecord {
            offset,
            timestamp: match timestamp_type {
                TimestampType::LogAppendTime => max_timestamp,
                TimestampType::CreateTime => r.timestamp,
            },
            ..r.clone()
        })
        .collect::<Vec<_>>();
    ModelBatch {
        base,
        last: base + i64::from(built.last_offset_delta()),
        size: bytes.len(),
        leader_epoch,
        timestamp_type,
        max_timestamp,
        producer: Producer {
            id: opts.producer_id,
            epoch: opts.producer_epoch,
            base_sequence: opts.base_sequence,
            transactional: opts.transactional,
        },
        compression: opts.compression,
        records,
    }
}

// ---------------------------------------------------------------------------------------
// The harness

struct Harness {
    _tmp: tempfile::TempDir,
    dir: std::path::PathBuf,
    config: LogConfig,
    clock: Arc<ManualClock>,
    log: Option<Log>,
    model: Model,
    /// Producer appends take a producer id never used before: a new producer may start at
    /// any sequence and epoch (Kafka's rule), so the log's producer checks accept every
    /// generated batch and this test stays about storing producer fields byte for byte.
    /// Sequence and epoch rules have their own tests (`producer_*`).
    next_producer_id: i64,
}

impl Harness {
    fn new(setup: &Setup) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("model-0");
        let clock = Arc::new(ManualClock::new(START_MS));
        let config = LogConfig::builder()
            .segment_bytes(setup.segment_bytes)
            .segment_ms(setup.segment_ms)
            .segment_index_bytes(setup.segment_index_bytes)
            .index_interval_bytes(setup.index_interval_bytes)
            .message_timestamp_type(if setup.log_append_time {
                TimestampType::LogAppendTime
            } else {
                TimestampType::CreateTime
            })
            .clock(clock.clone())
            .build()
            .unwrap();
        let log = Log::open(&dir, config.clone()).unwrap();
        Harness {
            _tmp: tmp,
            dir,
            config,
            clock,
            log: Some(log),
            next_producer_id: 1_000_000,
            model: Model {
                batches: Vec::new(),
                log_start_offset: 0,
                log_end_offset: 0,
                leader_epoch: 0,
            },
        }
    }

    fn log(&self) -> &Log {
        self.log.as_ref().unwrap()
    }

    fn now(&self) -> i64 {
        use streamlog::Clock;
        self.clock.now_ms()
    }

    fn run(&mut self, op: &Op) {
        let (start, end) = (self.model.log_start_offset, self.model.log_end_offset);
        match op {
            Op::Append {
                records,
                codec,
                producer,
            } => self.append(records, *codec, *producer),
            Op::AppendReplicated {
                records,
                codec,
                producer,
                leader_epoch,
                log_append_time,
                base,
            } => self.append_replicated(
                records,
                *codec,
                *producer,
                *leader_epoch,
                *log_append_time,
                *base,
            ),
            Op::Read {
                offset,
                max_bytes,
                upper_bound,
            } => {
                let offset = offset.between(start - 2, end + 2);
                let upper_bound = upper_bound.map(|p| p.between(start - 2, end + 2));
                check_read(self.log(), &self.model, offset, *max_bytes, upper_bound);
            }
            Op::Records {
                offset,
                upper_bound,
            } => {
                let offset = offset.between(start - 2, end + 2);
                let upper_bound = upper_bound.map(|p| p.between(start - 2, end + 2));
                check_records(self.log(), &self.model, offset, upper_bound);
            }
            Op::OffsetForTimestamp { record, any } => {
                let records: Vec<&OwnedRecord> = self.model.visible_records().collect();
                let timestamp = match any {
                    Some(t) => *t,
                    None if records.is_empty() => START_MS,
                    None => {
                        let last = records.len() as i64 - 1;
                        let i = record.between(0, last).clamp(0, last) as usize;
                        records[i].timestamp.saturating_add(record.nudge.signum())
                    }
                };
                check_offset_for_timestamp(self.log(), &self.model, timestamp);
            }
            Op::TruncateTo(p) => self.truncate_to(p.between(start - 2, end + 2)),
            Op::DeleteRecordsBefore(p) => self.delete_records_before(p.between(start - 2, end)),
            Op::Reopen { clean } => self.reopen(*clean),
            Op::Roll => {
                let before = self.log().segment_base_offsets();
                self.log().roll().unwrap();
                let after = self.log().segment_base_offsets();
                // A segment starts at the log end offset of its making, and a truncation that
                // empties one ends the log at its start: so the active segment is empty
                // exactly when it starts at the log end offset. Rolling it then does nothing.
                if before.last() == Some(&end) {
                    assert_eq!(after, before, "an empty segment was rolled");
                } else {
                    assert_eq!(after.len(), before.len() + 1, "roll added no segment");
                    assert_eq!(after.last(), Some(&end), "new segment not at the log end");
                }
            }
            Op::Flush { checkpoint } => {
                assert_eq!(
                    self.log().flush().unwrap(),
                    end,
                    "flush returns the recovery point"
                );
                assert_eq!(self.log().recovery_point(), end);
                if *checkpoint {
                    self.log().checkpoint().unwrap();
                }
            }
            Op::AdvanceClock(ms) => self.clock.advance(*ms),
            Op::SetLeaderEpoch(epoch) => {
                self.log().set_leader_epoch(*epoch).unwrap();
                self.model.leader_epoch = *epoch;
            }
        }
    }

    fn append(&mut self, specs: &[RecordSpec], codec: Compression, producer: Option<Producer>) {
        let producer = producer.map(|p| {
            self.next_producer_id += 1;
            Producer {
                id: self.next_producer_id,
                ..p
            }
        });
        let now = self.now();
        let records = owned_records(specs, now);
        let opts = batch_options(codec, producer);
        let bytes = common::build_batch(opts, &records).unwrap();
        let result = match producer {
            None => self.log().append_records(&records, codec),
            Some(_) => self.log().append(&bytes),
        };
        // Kafka refuses a batch that could not fit a segment on its own.
        let limit = u64::from(self.config.max_message_bytes).min(self.config.segment_bytes);
        if bytes.len() as u64 > limit {
            assert!(
                matches!(result, Err(streamlog::Error::MessageTooLarge { .. })),
                "a {}-byte batch must be refused under a {limit}-byte limit: {result:?}",
                bytes.len()
            );
            return;
        }
        // Kafka's INVALID_TIMESTAMP: a record stamped below -1, or (CreateTime) outside
        // message.timestamp.before/after.max.ms of the clock, refuses the batch.
        let create_time = self.config.message_timestamp_type == TimestampType::CreateTime;
        let refused = records.iter().any(|r| {
            let t = r.timestamp;
            t < -1
                || (create_time
                    && t != -1
                    && (t > now.saturating_add(self.config.message_timestamp_after_max_ms)
                        || t < now.saturating_sub(self.config.message_timestamp_before_max_ms)))
        });
        if refused {
            assert!(
                matches!(result, Err(streamlog::Error::InvalidTimestamp { .. })),
                "a batch with timestamps out of range must be refused: {result:?}"
            );
            return;
        }
        let info = result.unwrap();
        let append_time =
            (self.config.message_timestamp_type == TimestampType::LogAppendTime).then_some(now);
        let base = self.model.log_end_offset;
        let expected = model_batch(
            &records,
            &bytes,
            &opts,
            base,
            self.model.leader_epoch,
            append_time,
        );
        assert_eq!(info.first_offset, base);
        assert_eq!(info.last_offset, expected.last);
        assert_eq!(info.record_count as usize, records.len());
        assert_eq!(info.size_in_bytes as usize, bytes.len());
        assert_eq!(info.max_timestamp, expected.max_timestamp);
        assert_eq!(info.log_append_time, append_time);
        self.model.log_end_offset = expected.last + 1;
        self.model.batches.push(expected);
    }

    fn append_replicated(
        &mut self,
        specs: &[RecordSpec],
        codec: Compression,
        producer: Option<Producer>,
        leader_epoch: i32,
        log_append_time: bool,
        base: ReplicaBase,
    ) {
        let now = self.now();
        let records = owned_records(specs, now);
        let end = self.model.log_end_offset;
        let base_offset = match base {
            ReplicaBase::AtEnd => end,
            ReplicaBase::Gap(gap) => end + gap,
            ReplicaBase::Stale => end - 1,
        };
        let opts = BatchOptions {
            base_offset,
            partition_leader_epoch: leader_epoch,
            timestamp_type: if log_append_time {
                TimestampType::LogAppendTime
            } else {
                TimestampType::CreateTime
            },
            log_append_time: now - 7,
            ..batch_options(codec, producer)
        };
        let bytes = common::build_batch(opts, &records).unwrap();
        let result = self.log().append_replicated(&bytes);
        if let ReplicaBase::Stale = base {
            let err = result.expect_err("a batch below the log end offset was accepted");
            if end > 0 {
                assert!(
                    matches!(err, Error::UnexpectedAppendOffset { .. }),
                    "stale replica batch: {err:?}"
                );
            }
            return;
        }
        let info = result.unwrap();
        let expected = model_batch(
            &records,
            &bytes,
            &opts,
            base_offset,
            leader_epoch,
            log_append_time.then_some(now - 7),
        );
        assert_eq!(info.first_offset, base_offset);
        assert_eq!(info.last_offset, expected.last);
        assert_eq!(info.record_count as usize, records.len());
        assert_eq!(info.max_timestamp, expected.max_timestamp);
        assert_eq!(info.log_append_time, None);
        self.model.log_end_offset = expected.last + 1;
        self.model.batches.push(expected);
    }

    fn truncate_to(&mut self, offset: i64) {
        let bases = self.log().segment_base_offsets();
        self.log().truncate_to(offset).unwrap();
        let m = &mut self.model;
        if offset >= m.log_end_offset {
            return;
        }
        // Below the log start offset, or below a first segment that starts past it, the
        // whole log goes and restarts at `offset`.
        if offset <= m.log_start_offset || offset < bases[0] {
            let restart = offset.max(0);
            m.batches.clear();
            m.log_start_offset = restart;
            m.log_end_offset = restart;
            return;
        }
        // Cut at batch boundaries: the batch holding `offset` (or following the gap holding
        // it) goes whole, and so do the segments starting at or past `offset`. The log ends
        // after the last batch kept in the last segment kept, or where that segment starts.
        let cut = m.batch_at(offset).unwrap_or(m.batches.len());
        m.batches.truncate(cut);
        let segment = bases
            .iter()
            .rev()
            .find(|&&b| b < offset)
            .unwrap_or(&bases[0]);
        let end = m
            .batches
            .last()
            .filter(|b| b.base >= *segment)
            .map_or(*segment, |b| b.last + 1);
        m.log_end_offset = end;
        // The log cannot start after it ends: a cut below the log start offset leaves an
        // empty log starting where it now ends.
        m.log_start_offset = m.log_start_offset.min(end);
    }

    fn delete_records_before(&mut self, offset: i64) {
        let result = self.log().delete_records_before(offset);
        let m = &mut self.model;
        if offset < 0 || offset > m.log_end_offset {
            assert!(
                matches!(result, Err(Error::OffsetOutOfRange { .. })),
                "delete_records_before({offset}): {result:?}"
            );
            return;
        }
        result.unwrap();
        m.log_start_offset = m.log_start_offset.max(offset);
        let start = m.log_start_offset;
        let bases = self.log().segment_base_offsets();
        // Segments wholly below the new start are gone; the one holding it stays.
        assert!(
            bases.get(1).is_none_or(|&b| b > start),
            "segment {bases:?} below log start {start} kept"
        );
    }

    fn reopen(&mut self, clean: bool) {
        let log = self.log.take().unwrap();
        let first_base = log.segment_base_offsets()[0];
        if clean {
            log.close().unwrap();
            let late = OwnedRecord::new(self.now(), None, Some(b"late"));
            assert!(
                matches!(
                    log.append_records(&[late], Compression::None),
                    Err(Error::LogClosed { .. })
                ),
                "a closed log accepted an append"
            );
        }
        log.abandon();
        let mut seen = Vec::new();
        let (log, info) =
            Log::open_with(RealFs::shared(), &self.dir, self.config.clone(), &mut |b| {
                seen.push((b.base_offset(), b.last_offset()));
                Ok(())
            })
            .unwrap();
        assert_eq!(info.clean_shutdown, clean);
        assert_eq!(
            info.bytes_truncated, 0,
            "nothing was torn, nothing may be cut"
        );
        if clean {
            assert!(seen.is_empty(), "a clean open scanned {seen:?}");
        } else {
            // Recovery scans from the recovery point: every batch from there on, in order
            // (and batches below the log start offset, which the model has forgotten).
            let start = self.model.log_start_offset;
            let from = info.recovery_point;
            assert!(from <= self.model.log_end_offset, "recovery point {from}");
            let visible: Vec<_> = seen.iter().filter(|(_, last)| *last >= start).collect();
            let expected: Vec<_> = self
                .model
                .batches
                .iter()
                .filter(|b| b.base >= from && b.last >= start)
                .map(|b| (b.base, b.last))
                .collect();
            assert_eq!(
                visible.into_iter().copied().collect::<Vec<_>>(),
                expected,
                "batches recovery saw from recovery point {from}"
            );
        }
        // Opening starts the log at its first segment at the earliest, as Kafka's does: that
        // hides no record, and matters only where the first segment was named after a
        // replica batch too far past the log start offset to index.
        self.model.log_start_offset = self.model.log_start_offset.max(first_base);
        // The epoch survives the reopen: the log stamps the newest it holds, its last batch's
        // (0 when it holds none, or the batch was written without one).
        let end = self.model.log_end_offset;
        self.model.leader_epoch = match self.model.batches.last() {
            Some(b) if end > self.model.log_start_offset && b.last == end - 1 => {
                b.leader_epoch.max(0)
            }
            _ => 0,
        };
        assert_eq!(log.leader_epoch(), self.model.leader_epoch);
        self.log = Some(log);
    }

    /// What must hold after every step.
    fn check(&self) {
        let log = self.log();
        let m = &self.model;
        assert_eq!(
            log.log_start_offset(),
            m.log_start_offset,
            "log start offset"
        );
        assert_eq!(log.log_end_offset(), m.log_end_offset, "log end offset");
        assert!(log.recovery_point() <= m.log_end_offset, "recovery point");
        let bases = log.segment_base_offsets();
        assert!(bases.windows(2).all(|w| w[0] < w[1]), "bases {bases:?}");
        assert!(
            *bases.last().unwrap() <= m.log_end_offset,
            "bases {bases:?}"
        );
        check_records(log, m, m.log_start_offset, None);
        check_read(log, m, m.log_end_offset, 1 << 20, None);
        check_read(log, m, m.log_end_offset + 1, 1 << 20, None);
        check_read(log, m, m.log_start_offset - 1, 1 << 20, None);
        check_read(log, m, m.log_start_offset, usize::MAX, None);
    }
}

// ---------------------------------------------------------------------------------------
// Checks against the model

/// The index of the segment holding a batch based at `base`.
fn segment_of(bases: &[i64], base: i64) -> usize {
    bases.partition_point(|&b| b <= base) - 1
}

fn assert_out_of_range<T: std::fmt::Debug>(result: streamlog::Result<T>, what: &str) {
    assert!(
        matches!(result, Err(Error::OffsetOutOfRange { .. })),
        "{what}: expected OffsetOutOfRange, got {result:?}"
    );
}

fn check_batch(got: &Batch<'_>, want: &ModelBatch) {
    got.validate().unwrap();
    assert_eq!(got.base_offset(), want.base, "base offset");
    assert_eq!(got.last_offset(), want.last, "last offset of {}", want.base);
    assert_eq!(got.size_in_bytes(), want.size, "size of {}", want.base);
    assert_eq!(got.partition_leader_epoch(), want.leader_epoch);
    assert_eq!(got.timestamp_type(), want.timestamp_type);
    assert_eq!(got.max_timestamp(), want.max_timestamp);
    assert_eq!(got.compression().unwrap(), want.compression);
    let producer = Producer {
        id: got.producer_id(),
        epoch: got.producer_epoch(),
        base_sequence: got.base_sequence(),
        transactional: got.is_transactional(),
    };
    assert_eq!(producer, want.producer);
    assert_eq!(common::decode_records(got.as_bytes()), want.records);
}

/// `read(offset, max_bytes, upper_bound)` against the model: whole batches from one
/// segment starting with the one holding `offset`, as many as fit.
fn check_read(log: &Log, m: &Model, offset: i64, max_bytes: usize, upper_bound: Option<i64>) {
    let what = format!("read({offset}, {max_bytes}, {upper_bound:?})");
    let result = log.read(offset, max_bytes, upper_bound);
    if offset < m.log_start_offset || offset > m.log_end_offset {
        assert_out_of_range(result, &what);
        assert_out_of_range(log.read_bytes(offset, max_bytes, upper_bound), &what);
        return;
    }
    let data: FetchData = result.unwrap();
    assert_eq!(data.log_end_offset, m.log_end_offset, "{what}");
    let bytes = data
        .slice
        .as_ref()
        .map_or_else(Vec::new, |s| s.to_vec().unwrap());
    assert_eq!(
        log.read_bytes(offset, max_bytes, upper_bound).unwrap(),
        bytes,
        "{what}: read_bytes and read differ"
    );
    let bound = upper_bound.unwrap_or(i64::MAX).min(m.log_end_offset);
    let first = m.batch_at(offset).filter(|&i| m.batches[i].last < bound);
    let Some(first) = first else {
        assert!(
            data.slice.is_none(),
            "{what}: expected nothing, got {data:?}"
        );
        assert_eq!(data.first_batch_offset, None, "{what}");
        assert_eq!(data.next_offset, offset, "{what}");
        return;
    };
    let batches: Vec<Batch<'_>> = Batches::new(&bytes).collect::<Result<_, _>>().unwrap();
    assert!(!batches.is_empty(), "{what}: no batch returned");
    let want = m
        .batches
        .get(first..first + batches.len())
        .unwrap_or_else(|| {
            panic!(
                "{what}: {} batches returned, the model has {} from {first}",
                batches.len(),
                m.batches.len() - first
            )
        });
    for (got, want) in batches.iter().zip(want) {
        check_batch(got, want);
        assert!(
            want.last < bound,
            "{what}: batch {} crosses the bound",
            want.base
        );
    }
    let last = want.last().unwrap();
    assert_eq!(data.first_batch_offset, Some(want[0].base), "{what}");
    assert_eq!(data.next_offset, last.last + 1, "{what}");
    assert!(
        batches.len() == 1 || bytes.len() <= max_bytes,
        "{what}: {} bytes in {} batches",
        bytes.len(),
        batches.len()
    );
    // As many as fit: the next batch is past the bound, too big, or in another segment.
    if let Some(next) = m.batches.get(first + batches.len()) {
        let bases = log.segment_base_offsets();
        let same_segment = segment_of(&bases, next.base) == segment_of(&bases, want[0].base);
        let fits = bytes.len() as u128 + next.size as u128 <= max_bytes as u128;
        assert!(
            next.last >= bound || !same_segment || !fits,
            "{what}: stopped before batch {} (segments {bases:?})",
            next.base
        );
    }
}

/// `records_between(offset, upper_bound)` against the model: every record at or after
/// `offset` in the batches below the bound, with its offset, timestamp, key, value and
/// headers.
fn check_records(log: &Log, m: &Model, offset: i64, upper_bound: Option<i64>) {
    let what = format!("records_between({offset}, {upper_bound:?})");
    let got: Vec<_> = log.records_between(offset, upper_bound).collect();
    if offset < m.log_start_offset || offset > m.log_end_offset {
        assert_eq!(got.len(), 1, "{what}: one error, then nothing");
        assert!(
            matches!(got[0], Err(Error::OffsetOutOfRange { .. })),
            "{what}: {:?}",
            got[0]
        );
        return;
    }
    let got: Vec<OwnedRecord> = got
        .into_iter()
        .map(|r| r.unwrap().to_owned_record())
        .collect();
    let bound = upper_bound.unwrap_or(i64::MAX).min(m.log_end_offset);
    let want: Vec<&OwnedRecord> = m
        .batches
        .iter()
        .take_while(|b| b.last < bound)
        .flat_map(|b| &b.records)
        .filter(|r| r.offset >= offset)
        .collect();
    assert_eq!(got.len(), want.len(), "{what}: record count");
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g, w, "{what}");
    }
}

/// `offset_for_timestamp(timestamp)` against the model, Kafka's ListOffsets rule: in the
/// first batch whose max timestamp reaches `timestamp` (and so on, should that batch hold no
/// such record at or above the log start offset), the first record that does.
fn check_offset_for_timestamp(log: &Log, m: &Model, timestamp: i64) {
    let want = m
        .batches
        .iter()
        .filter(|b| b.max_timestamp >= timestamp)
        .flat_map(|b| &b.records)
        .find(|r| r.timestamp >= timestamp && r.offset >= m.log_start_offset)
        .map(|r| (r.offset, r.timestamp));
    let got = log.offset_for_timestamp(timestamp).unwrap();
    assert_eq!(got, want, "offset_for_timestamp({timestamp})");
}

// ---------------------------------------------------------------------------------------

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(48)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        max_shrink_iters: 2_000,
        ..ProptestConfig::default()
    })]

    #[test]
    fn log_matches_model(setup in setup(), ops in vec(op(), 1..40)) {
        let mut h = Harness::new(&setup);
        h.check();
        for op in &ops {
            h.run(op);
            h.check();
        }
        h.log().close().unwrap();
    }
}

// ---------------------------------------------------------------------------------------
// The cases the model found, spelled out.

/// A replica batch of one record at `base_offset`.
fn replica(base_offset: i64) -> Vec<u8> {
    let record = OwnedRecord::new(START_MS, None, Some(b"v"));
    let opts = BatchOptions {
        base_offset,
        ..BatchOptions::default()
    };
    common::build_batch(opts, &[record]).unwrap()
}

/// Truncating into a compaction gap once left the log ending inside the gap, an end no open
/// can find again: after a flush and a checkpoint, the next unclean open took the gap for
/// lost data below the recovery point and refused to open.
#[test]
fn truncation_into_a_gap_survives_a_crash() {
    let tmp = tempfile::tempdir().unwrap();
    let log = Log::open(tmp.path(), LogConfig::default()).unwrap();
    log.append_replicated(&replica(0)).unwrap();
    log.append_replicated(&replica(5)).unwrap();
    log.truncate_to(5).unwrap();
    assert_eq!(
        log.log_end_offset(),
        1,
        "the log ends after the last batch kept"
    );
    log.flush().unwrap();
    log.checkpoint().unwrap();
    log.abandon();
    let log = Log::open(tmp.path(), LogConfig::default()).unwrap();
    assert_eq!(log.log_end_offset(), 1);
    assert_eq!(log.append_replicated(&replica(3)).unwrap().first_offset, 3);
}

/// A replica whose first batch lies too far past its log start offset for relative offsets
/// has its one segment named after that batch; truncating below it once left the segment
/// named past the log end offset.
#[test]
fn truncation_below_a_replicas_first_segment_restarts_the_log() {
    let tmp = tempfile::tempdir().unwrap();
    let log = Log::open(tmp.path(), LogConfig::default()).unwrap();
    let far = i64::from(i32::MAX) + 100;
    log.append_replicated(&replica(far)).unwrap();
    assert_eq!(log.segment_base_offsets(), [far]);
    log.truncate_to(2).unwrap();
    assert_eq!(log.segment_base_offsets(), [2]);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (2, 2));
    let info = log
        .append_records(&[OwnedRecord::new(START_MS, None, None)], Compression::None)
        .unwrap();
    assert_eq!(info.first_offset, 2);
}

/// Cutting the batch that holds the log start offset once left the log starting after it
/// ended.
#[test]
fn truncation_through_the_log_start_offset_empties_the_log() {
    let tmp = tempfile::tempdir().unwrap();
    let log = Log::open(tmp.path(), LogConfig::default()).unwrap();
    let records = vec![OwnedRecord::new(START_MS, None, None); 10];
    log.append_records(&records, Compression::None).unwrap();
    log.delete_records_before(4).unwrap();
    log.truncate_to(6).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 0));
    assert!(log.read(0, 1 << 20, None).unwrap().slice.is_none());
}
