//! Produce.
//!
//! A partition's records are handed to `Log::append` exactly as they arrived: the log
//! validates the batch once (frame, CRC, records, producer sequence) and stores those bytes.
//! With acks=all the answer waits for `Log::flush` (group commit: concurrent producers share
//! fsyncs), so an acknowledged batch survives a crash or a power cut.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, ResponseKind};
use kafka_protocol::ResponseError;
use streamlog::{AppendInfo, Batch, Error, Log};

use super::{str_bytes, Outcome};
use crate::broker::Broker;
use crate::errors;

/// Produce at acks 0, 1 or -1 (all).
pub fn produce(broker: &Broker, req: ProduceRequest) -> Outcome {
    let start = Instant::now();
    let acks = req.acks;
    let mut appended: Vec<Arc<Log>> = Vec::new();
    let mut failed = false;
    let mut topics = Vec::with_capacity(req.topic_data.len());
    for topic in req.topic_data {
        let name = topic.name.as_str();
        let mut partitions = Vec::with_capacity(topic.partition_data.len());
        for p in topic.partition_data {
            let result = PartitionProduceResponse::default().with_index(p.index);
            let result = if !matches!(acks, -1..=1) {
                result.with_error_code(ResponseError::InvalidRequiredAcks.code())
            } else {
                match append(
                    broker,
                    (name, p.index),
                    p.records,
                    req.transactional_id.is_some(),
                    acks,
                ) {
                    Ok((log, info)) => {
                        let r = result
                            .with_base_offset(info.first_offset)
                            .with_log_append_time_ms(info.log_append_time.unwrap_or(-1))
                            .with_log_start_offset(log.log_start_offset());
                        if !appended.iter().any(|l| Arc::ptr_eq(l, &log)) {
                            appended.push(log);
                        }
                        r
                    }
                    Err(Refused {
                        code,
                        message,
                        record_errors,
                    }) => {
                        tracing::debug!(topic = name, partition = p.index, code, %message, "produce refused");
                        result
                            .with_error_code(code)
                            .with_error_message(Some(str_bytes(message)))
                            .with_record_errors(record_errors)
                    }
                }
            };
            failed |= result.error_code != 0;
            partitions.push(result);
        }
        topics.push(
            TopicProduceResponse::default()
                .with_name(topic.name)
                .with_partition_responses(partitions),
        );
    }
    if acks == -1 {
        // Durable before acknowledged. A flush failure poisons the log; every partition of
        // it in this request is answered with the storage error.
        for log in &appended {
            if let Err(e) = log.flush() {
                tracing::error!(dir = %log.dir().display(), error = %e, "flush failed");
                for t in &mut topics {
                    for p in &mut t.partition_responses {
                        if p.error_code == 0
                            && broker
                                .log(t.name.as_str(), p.index)
                                .is_ok_and(|l| Arc::ptr_eq(&l, log))
                        {
                            p.error_code = ResponseError::KafkaStorageError.code();
                            p.base_offset = -1;
                        }
                    }
                }
                failed = true;
            }
        }
    }
    broker.metrics.produce.observe(start.elapsed());
    if acks == 0 {
        // Kafka's answer to a failed acks=0 produce: close the connection, so the client
        // notices and refreshes its metadata.
        return if failed {
            Outcome::Close("acks=0 produce failed".into())
        } else {
            Outcome::NoResponse
        };
    }
    Outcome::respond(ResponseKind::Produce(
        ProduceResponse::default().with_responses(topics),
    ))
}

/// Why a partition's batch was not appended.
struct Refused {
    code: i16,
    message: String,
    /// Produce v8+: the records (by index in the batch) that made the log refuse it; the
    /// client fails those with the error and the rest of the batch with
    /// `_INVALID_DIFFERENT_RECORD` (it may send them again).
    record_errors: Vec<BatchIndexAndErrorMessage>,
}

impl Refused {
    fn new(code: i16, message: String) -> Self {
        Refused {
            code,
            message,
            record_errors: Vec::new(),
        }
    }

    fn from_log(e: &Error, records: &[u8]) -> Self {
        let mut refused = Refused::new(errors::code(e), e.to_string());
        refused.record_errors = record_errors(e, records);
        refused
    }
}

fn append(
    broker: &Broker,
    (topic, partition): (&str, i32),
    records: Option<Bytes>,
    transactional: bool,
    acks: i16,
) -> Result<(Arc<Log>, AppendInfo), Refused> {
    let log = broker
        .log(topic, partition)
        .map_err(|e| Refused::new(errors::code(&e), e.to_string()))?;
    // One node: the partition's only in-sync replica is this one. Kafka refuses an acks=all
    // produce before appending when the in-sync replicas are fewer than min.insync.replicas.
    if acks == -1 {
        let min_isr = broker
            .storage
            .topic_settings(topic)
            .map_or(1, |s| s.min_insync_replicas);
        if min_isr > 1 {
            return Err(Refused::new(
                ResponseError::NotEnoughReplicas.code(),
                format!("min.insync.replicas is {min_isr}; this partition has 1 in-sync replica"),
            ));
        }
    }
    let records = records.unwrap_or_default();
    // A transactional batch needs its producer's transactional id on the request (the
    // coordinator knows the transaction); the log checks the producer's epoch and sequence.
    let txn_batch = Batch::new(&records).is_ok_and(|b| b.is_transactional());
    if txn_batch && !transactional {
        return Err(Refused::new(
            ResponseError::InvalidTxnState.code(),
            "transactional batch without a transactional id".into(),
        ));
    }
    let info = log
        .append(&records)
        .map_err(|e| Refused::from_log(&e, &records))?;
    broker
        .metrics
        .bytes_appended
        .fetch_add(records.len() as u64, std::sync::atomic::Ordering::Relaxed);
    Ok((log, info))
}

/// The records a refused batch is refused for, as Kafka lists them (`record_errors`).
///
/// The log stops at the first bad record; on this error path only, the broker decodes the
/// batch to name every record the same rule refuses (all keyless records for a compacted
/// topic), so the client fails exactly those and can resend the others.
fn record_errors(e: &Error, records: &[u8]) -> Vec<BatchIndexAndErrorMessage> {
    let entry = |index: u32, message: String| {
        BatchIndexAndErrorMessage::default()
            .with_batch_index(i32::try_from(index).unwrap_or(i32::MAX))
            .with_batch_index_error_message(Some(str_bytes(message)))
    };
    match e {
        Error::RecordWithoutKey { index, .. } => {
            let message = "compacted topic cannot accept a record without a key";
            let keyless: Option<Vec<u32>> = Batch::new(records).ok().and_then(|b| {
                let decoded = b.records().ok()?;
                let mut keyless = Vec::new();
                for (i, r) in decoded.iter().enumerate() {
                    let r = r.ok()?;
                    if r.key.is_none() {
                        keyless.push(u32::try_from(i).ok()?);
                    }
                }
                Some(keyless)
            });
            keyless
                .filter(|k| !k.is_empty())
                .unwrap_or_else(|| vec![*index])
                .into_iter()
                .map(|i| entry(i, message.to_string()))
                .collect()
        }
        Error::InvalidTimestamp { index, .. } => vec![entry(*index, e.to_string())],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BrokerConfig;
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::protocol::StrBytes;
    use streamlog::io::SimFs;
    use streamlog::storage::{StorageConfig, TopicConfig};
    use streamlog::{BatchBuilder, BatchOptions, Storage};

    fn produce_one(broker: &Broker, acks: i16, value: &[u8]) -> i64 {
        let mut b = BatchBuilder::new(BatchOptions::default());
        b.append(1, Some(b"k"), Some(value), &[]).unwrap();
        let req = ProduceRequest::default()
            .with_acks(acks)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str("t")))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(Bytes::from(b.build().unwrap())))])]);
        let Outcome::Respond(resp) = produce(broker, req) else {
            panic!("no response")
        };
        let ResponseKind::Produce(resp) = *resp else {
            panic!("not a produce response")
        };
        let p = &resp.responses[0].partition_responses[0];
        assert_eq!(p.error_code, 0);
        p.base_offset
    }

    /// librdkafka's 0011: a batch with keyless records for a compacted topic is refused
    /// with INVALID_RECORD, naming every keyless record (Produce v8+ `record_errors`) so the
    /// client fails those and resends the others; nothing of the batch is stored.
    #[test]
    fn keyless_records_on_a_compacted_topic_are_each_named() {
        let dir = tempfile::tempdir().unwrap();
        let broker = crate::broker::test_broker(dir.path(), |_| {});
        let mut config = TopicConfig::new();
        config.set("cleanup.policy", "compact").unwrap();
        broker.storage.create_topic("t", 1, config).unwrap();
        let mut b = BatchBuilder::new(BatchOptions::default());
        for i in 0..10i64 {
            let key = (i % 4 != 1).then_some(&b"k"[..]);
            b.append(i, key, Some(b"v"), &[]).unwrap();
        }
        let req = ProduceRequest::default().with_acks(1).with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str("t")))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(Bytes::from(b.build().unwrap())))]),
        ]);
        let Outcome::Respond(resp) = produce(&broker, req) else {
            panic!("no response")
        };
        let ResponseKind::Produce(resp) = *resp else {
            panic!("not a produce response")
        };
        let p = &resp.responses[0].partition_responses[0];
        assert_eq!(p.error_code, ResponseError::InvalidRecord.code());
        let named: Vec<i32> = p.record_errors.iter().map(|e| e.batch_index).collect();
        assert_eq!(named, vec![1, 5, 9]);
        assert!(p.record_errors[0].batch_index_error_message.is_some());
        assert_eq!(broker.log("t", 0).unwrap().log_end_offset(), 0);
        // The same batch encodes at v8 (where the list is sent) and v7 (where it is not).
        for version in [7, 8, 9] {
            crate::codec::encode_response(
                kafka_protocol::messages::ApiKey::Produce,
                version,
                1,
                &ResponseKind::Produce(resp.clone()),
            )
            .unwrap();
        }
    }

    /// `min.insync.replicas` above 1 on a one-node broker: acks=all is refused with
    /// NOT_ENOUGH_REPLICAS before anything is appended (Kafka's answer when the in-sync
    /// replicas are fewer); acks=1 and acks=0 do not wait for replicas and are appended.
    #[test]
    fn min_insync_replicas_above_one_refuses_acks_all() {
        let dir = tempfile::tempdir().unwrap();
        let broker = crate::broker::test_broker(dir.path(), |_| {});
        let mut config = TopicConfig::new();
        config.set("min.insync.replicas", "2").unwrap();
        broker.storage.create_topic("t", 1, config).unwrap();
        let mut b = BatchBuilder::new(BatchOptions::default());
        b.append(1, Some(b"k"), Some(b"v"), &[]).unwrap();
        let batch = Bytes::from(b.build().unwrap());
        let req = ProduceRequest::default()
            .with_acks(-1)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str("t")))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(batch))])]);
        let Outcome::Respond(resp) = produce(&broker, req) else {
            panic!("no response")
        };
        let ResponseKind::Produce(resp) = *resp else {
            panic!("not a produce response")
        };
        let p = &resp.responses[0].partition_responses[0];
        assert_eq!(p.error_code, ResponseError::NotEnoughReplicas.code());
        assert_eq!(broker.log("t", 0).unwrap().log_end_offset(), 0);
        assert_eq!(produce_one(&broker, 1, b"one"), 0);
        // Back to 1 (Kafka's default): acks=all is served again.
        broker
            .storage
            .alter_topic_config("t", TopicConfig::new())
            .unwrap();
        assert_eq!(produce_one(&broker, -1, b"all"), 1);
    }

    /// acks=all is answered only once the batch is durable: after a simulated power cut
    /// (unsynced writes lost or torn, from the seed), every batch acknowledged with acks=all
    /// is there, at its offset, byte for byte.
    #[test]
    fn acks_all_survives_power_loss() {
        // STREAMLOG_SIM_SEED=N replays one seed.
        let seeds: Vec<u64> = match std::env::var("STREAMLOG_SIM_SEED") {
            Ok(s) => vec![s.parse().expect("STREAMLOG_SIM_SEED")],
            Err(_) => (0..4).collect(),
        };
        for seed in seeds {
            println!("seed {seed}");
            let dir = tempfile::tempdir().unwrap();
            let fs = SimFs::new(seed);
            let mut storage = StorageConfig::default();
            storage.fs = Arc::new(fs.clone());
            let config = BrokerConfig {
                data_dir: dir.path().join("data"),
                transaction_state_log_num_partitions: 1,
                offsets_topic_num_partitions: 1,
                ..BrokerConfig::default()
            };
            let broker =
                Broker::open_with(config.clone(), "127.0.0.1:9092".parse().unwrap(), storage)
                    .unwrap();
            broker
                .storage
                .create_topic("t", 1, TopicConfig::new())
                .unwrap();
            let mut acked = Vec::new();
            for i in 0..20u32 {
                let value = format!("v{i}");
                let offset = produce_one(&broker, -1, value.as_bytes());
                acked.push((offset, value));
                // acks=1 batches in between may or may not survive.
                produce_one(&broker, 1, b"maybe");
            }
            let mut after = StorageConfig::default();
            after.fs = Arc::new(fs.crash());
            let storage = Storage::open(&config.data_dir, after).unwrap();
            let log = storage.partition("t", 0).unwrap();
            for (offset, value) in acked {
                let r = log
                    .records_from(offset)
                    .next()
                    .unwrap_or_else(|| panic!("seed {seed}: offset {offset} lost"))
                    .unwrap();
                assert_eq!(r.offset(), offset, "seed {seed}");
                assert_eq!(r.value(), Some(value.as_bytes()), "seed {seed}");
            }
        }
    }
}
