//! Segment files as a log writes them, left for kafka-python to read.
//!
//! Two logs (CreateTime, and LogAppendTime stamped by the log) are filled with batches in
//! every enabled codec: plain, idempotent, transactional with COMMIT and ABORT markers, a
//! replicated batch from a leader, keys and values null or empty, headers. Small segments
//! make several `.log` files of each. Every `.log` file is copied to
//! `interop_dir("segments")`, where `.ci/run` has `kafka-python-check` decode it and check
//! every CRC; the whole log is also left as one `.bin` with a `.json` of what was appended
//! (written from the input, not from our decoder), so kafka-python checks the contents too.
//! Run with `--all-features` to cover zstd and snappy.

use crate::common;

use std::path::Path;
use std::sync::Arc;

use common::{build_batch, enabled_codecs, interop_dir};
use serde_json::{json, Value};
use streamlog::{
    Batch, BatchBuilder, BatchOptions, Batches, Compression, ControlRecord, Log, LogConfig,
    ManualClock, OwnedRecord, TimestampType,
};

const START_MS: i64 = 1_700_000_000_000;

/// A batch as appended, in the golden JSON schema (only the fields we can state from the
/// input; kafka-python-check compares just the fields present).
fn expected_batch(
    base_offset: i64,
    leader_epoch: i32,
    opts: &BatchOptions,
    control: bool,
    records: &[OwnedRecord],
    log_append_time: Option<i64>,
) -> Value {
    let mut recs = common::records_json(records, base_offset, log_append_time);
    if control {
        // A transaction marker's key is its version and type, both i16.
        for (rec, r) in recs.as_array_mut().unwrap().iter_mut().zip(records) {
            let key = r.key.as_deref().unwrap();
            let kind = i16::from_be_bytes([key[2], key[3]]);
            let name = if kind == 1 { "commit" } else { "abort" };
            rec["control"] = json!({"version": 0, "type": kind, "type_name": name});
        }
    }
    let max_timestamp =
        log_append_time.unwrap_or_else(|| records.iter().map(|r| r.timestamp).fold(-1, i64::max));
    let stamped = log_append_time.is_some() || opts.timestamp_type == TimestampType::LogAppendTime;
    json!({
        "base_offset": base_offset,
        "partition_leader_epoch": leader_epoch,
        "magic": 2,
        "compression": opts.compression.name(),
        "timestamp_type": u8::from(stamped),
        "is_transactional": opts.transactional || control,
        "is_control": control,
        "last_offset_delta": records.len() - 1,
        "max_timestamp": max_timestamp,
        "producer_id": opts.producer_id,
        "producer_epoch": opts.producer_epoch,
        "base_sequence": opts.base_sequence,
        "records_count": records.len(),
        "records": recs,
    })
}

/// Appends to a log and remembers what each batch must read back as.
struct Scenario {
    log: Log,
    clock: Arc<ManualClock>,
    log_append_time: bool,
    expected: Vec<Value>,
    sequence: i32,
}

impl Scenario {
    fn now(&self) -> i64 {
        use streamlog::Clock;
        self.clock.now_ms()
    }

    /// The batch the log stored at `base_offset`, read back through `read`.
    fn stored(&self, base_offset: i64) -> Vec<u8> {
        let bytes = self.log.read_bytes(base_offset, 1, None).unwrap();
        let batch = Batch::new(&bytes).unwrap();
        assert_eq!(batch.base_offset(), base_offset);
        bytes
    }

    #[allow(clippy::too_many_arguments)]
    fn push_expected(
        &mut self,
        base_offset: i64,
        leader_epoch: i32,
        opts: &BatchOptions,
        control: bool,
        records: &[OwnedRecord],
        stamped: Option<i64>,
    ) {
        let bytes = self.stored(base_offset);
        let stored = Batch::new(&bytes).unwrap();
        let expected = expected_batch(base_offset, leader_epoch, opts, control, records, stamped);
        // Our own decoder agrees with the input first.
        let ours = common::batch_json(&stored);
        for (k, v) in expected.as_object().unwrap() {
            assert_eq!(&ours[k], v, "batch {base_offset}: {k}");
        }
        self.expected.push(expected);
    }

    /// A producer batch through `append` (so its producer fields are kept).
    fn produce(&mut self, opts: BatchOptions, records: &[OwnedRecord]) -> i64 {
        self.clock.advance(37);
        let bytes = build_batch(opts, records).unwrap();
        let info = self.log.append(&bytes).unwrap();
        let stamped = info.log_append_time;
        assert_eq!(stamped.is_some(), self.log_append_time);
        if let Some(t) = stamped {
            assert_eq!(t, self.now());
        }
        let epoch = self.log.leader_epoch();
        self.push_expected(info.first_offset, epoch, &opts, false, records, stamped);
        info.first_offset
    }

    /// A batch as a leader sends it, appended at the log end offset.
    fn replicate(&mut self, opts: BatchOptions, records: &[OwnedRecord]) {
        let opts = BatchOptions {
            base_offset: self.log.log_end_offset(),
            ..opts
        };
        let bytes = build_batch(opts, records).unwrap();
        self.log.append_replicated(&bytes).unwrap();
        let stamped =
            (opts.timestamp_type == TimestampType::LogAppendTime).then_some(opts.log_append_time);
        let epoch = opts.partition_leader_epoch;
        self.push_expected(opts.base_offset, epoch, &opts, false, records, stamped);
    }

    /// A COMMIT or ABORT marker for `producer`, as the leader writes it.
    fn end_transaction(&mut self, producer: &BatchOptions, commit: bool) {
        let marker = ControlRecord::end_txn(commit, 3);
        let opts = BatchOptions {
            base_offset: self.log.log_end_offset(),
            partition_leader_epoch: 7,
            base_sequence: -1,
            ..*producer
        };
        let bytes = BatchBuilder::control_batch(opts, &marker, self.now()).unwrap();
        self.log.append_replicated(&bytes).unwrap();
        let record = OwnedRecord::new(
            self.now(),
            Some(&marker.key_bytes()),
            marker.value_bytes().as_ref().map(|v| &v[..]),
        );
        let opts = BatchOptions {
            compression: Compression::None,
            transactional: true,
            ..opts
        };
        self.push_expected(opts.base_offset, 7, &opts, true, &[record], None);
    }

    fn records(&mut self, tag: &str, n: usize) -> Vec<OwnedRecord> {
        let now = self.now();
        (0..n)
            .map(|i| {
                let key = format!("{tag}-{i}");
                let value = format!("{tag} value {i} ").repeat(1 + i * 3);
                let mut r = OwnedRecord::new(
                    now - (i as i64 % 3) * 11,
                    (i % 4 != 1).then_some(key.as_bytes()),
                    (i % 5 != 2).then_some(value.as_bytes()),
                );
                if i % 4 == 3 {
                    r.key = Some(Vec::new());
                    r.value = Some(Vec::new());
                }
                if i % 2 == 0 {
                    r.headers = vec![
                        (b"trace".to_vec(), Some(format!("{i}").into_bytes())),
                        (b"null".to_vec(), None),
                        (b"trace".to_vec(), Some(Vec::new())),
                    ];
                }
                r
            })
            .collect()
    }

    /// One round of every kind of batch in `codec`.
    fn round(&mut self, codec: Compression, round: usize) {
        let tag = format!("{codec}-{round}");
        let records = self.records(&format!("{tag}-plain"), 5);
        self.produce(BatchOptions::compressed(codec), &records);

        let idempotent = BatchOptions {
            producer_id: 4_000 + round as i64,
            producer_epoch: 1,
            base_sequence: self.sequence,
            ..BatchOptions::compressed(codec)
        };
        let records = self.records(&format!("{tag}-idempotent"), 7);
        self.sequence += records.len() as i32;
        self.produce(idempotent, &records);

        for commit in [true, false] {
            let transactional = BatchOptions {
                // One producer per round and codec, whose two transactions follow each
                // other in sequence.
                producer_id: 5_000 + 100 * round as i64 + i64::from(codec.id()),
                producer_epoch: 2,
                // The second transaction continues the producer's sequence: a batch
                // repeating the first's would be a retried duplicate, and not stored.
                base_sequence: if commit { 0 } else { 4 },
                transactional: true,
                ..BatchOptions::compressed(codec)
            };
            let records = self.records(&format!("{tag}-txn-{commit}"), 4);
            self.produce(transactional, &records);
            self.end_transaction(&transactional, commit);
        }

        let from_leader = BatchOptions {
            partition_leader_epoch: 6,
            producer_id: 6_000,
            producer_epoch: 0,
            base_sequence: round as i32 * 3,
            timestamp_type: if round % 2 == 0 {
                TimestampType::LogAppendTime
            } else {
                TimestampType::CreateTime
            },
            log_append_time: self.now() - 1,
            ..BatchOptions::compressed(codec)
        };
        let records = self.records(&format!("{tag}-replica"), 3);
        self.replicate(from_leader, &records);
    }
}

/// Removes what an earlier run left under `prefix` in `dir`.
fn clear(dir: &Path, prefix: &str) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with(prefix) {
            std::fs::remove_file(&path).unwrap();
        }
    }
}

fn write_segments(name: &str, log_append_time: bool) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join(format!("{name}-0"));
    let clock = Arc::new(ManualClock::new(START_MS));
    let config = LogConfig::builder()
        .segment_bytes(4 * 1024)
        .index_interval_bytes(512)
        .message_timestamp_type(if log_append_time {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        })
        .clock(clock.clone())
        .build()
        .unwrap();
    let mut s = Scenario {
        log: Log::open(&dir, config).unwrap(),
        clock,
        log_append_time,
        expected: Vec::new(),
        sequence: 0,
    };
    for round in 0..2 {
        for (i, codec) in enabled_codecs().into_iter().enumerate() {
            s.log.set_leader_epoch((round * 10 + i) as i32).unwrap();
            s.round(codec, round);
        }
    }
    let bases = s.log.segment_base_offsets();
    assert!(bases.len() >= 3, "{name}: only {} segments", bases.len());
    s.log.close().unwrap();

    let out = interop_dir("segments");
    clear(&out, &format!("{name}-"));
    let mut whole = Vec::new();
    for base in &bases {
        let bytes = std::fs::read(dir.join(format!("{base:020}.log"))).unwrap();
        // Every file holds whole, valid batches.
        let mut size = 0;
        for batch in Batches::new(&bytes) {
            let batch = batch.unwrap();
            batch.validate().unwrap();
            size += batch.size_in_bytes();
        }
        assert_eq!(size, bytes.len(), "{name}: {base:020}.log");
        std::fs::write(out.join(format!("{name}-{base:020}.log")), &bytes).unwrap();
        whole.extend(bytes);
    }
    let stored = Batches::new(&whole).map(Result::unwrap).count();
    assert_eq!(stored, s.expected.len(), "{name}: batches on disk");
    common::write_interop_file(
        &out,
        &format!("{name}-log"),
        &format!("every segment of a streamlog log ({name}), in order"),
        &whole,
        Value::Array(s.expected),
    );
}

#[test]
fn create_time_segments_for_kafka_python() {
    write_segments("create-time", false);
}

#[test]
fn log_append_time_segments_for_kafka_python() {
    write_segments("log-append-time", true);
}
