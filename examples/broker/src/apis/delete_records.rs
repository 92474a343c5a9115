//! DeleteRecords: moves partitions' log start offsets forward (`Log::delete_records_before`),
//! which hides the records below it at once and deletes the segments wholly below it.
//! Kafka's rules: offset -1 means the high watermark; an offset past the high watermark
//! is OFFSET_OUT_OF_RANGE; a topic whose cleanup.policy does not include `delete` refuses
//! with POLICY_VIOLATION. The answer carries each partition's new log start offset (its
//! "low watermark").

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};
use kafka_protocol::ResponseError;

use crate::broker::Broker;
use crate::errors;

/// Kafka's "up to the high watermark" offset.
const HIGH_WATERMARK: i64 = -1;

/// DeleteRecords for every partition asked about.
pub fn delete_records(broker: &Broker, req: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let name = t.name.as_str();
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let out = DeleteRecordsPartitionResult::default()
                        .with_partition_index(p.partition_index)
                        .with_low_watermark(-1);
                    match delete_one(broker, name, p.partition_index, p.offset) {
                        Ok(low_watermark) => out.with_low_watermark(low_watermark),
                        Err(code) => out.with_error_code(code),
                    }
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics)
}

fn delete_one(broker: &Broker, topic: &str, partition: i32, offset: i64) -> Result<i64, i16> {
    let log = broker.log(topic, partition).map_err(|e| errors::code(&e))?;
    let high_watermark = Broker::high_watermark(&log);
    let offset = if offset == HIGH_WATERMARK {
        high_watermark
    } else {
        offset
    };
    if offset < 0 || offset > high_watermark {
        return Err(ResponseError::OffsetOutOfRange.code());
    }
    let settings = broker
        .storage
        .topic_settings(topic)
        .map_err(|e| errors::code(&e))?;
    if !settings.log.cleanup_policy.deletes() {
        return Err(ResponseError::PolicyViolation.code());
    }
    log.delete_records_before(offset).map_err(|e| {
        tracing::warn!(topic, partition, offset, error = %e, "DeleteRecords failed");
        errors::code(&e)
    })?;
    tracing::info!(
        topic,
        partition,
        log_start_offset = log.log_start_offset(),
        "records deleted"
    );
    Ok(log.log_start_offset())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::delete_records_request::{
        DeleteRecordsPartition, DeleteRecordsTopic,
    };
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::protocol::StrBytes;
    use streamlog::storage::TopicConfig;
    use streamlog::{Compression, OwnedRecord};

    fn ask(broker: &Broker, topic: &str, offset: i64) -> (i16, i64) {
        let req = DeleteRecordsRequest::default().with_topics(vec![DeleteRecordsTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.into())))
            .with_partitions(vec![DeleteRecordsPartition::default()
                .with_partition_index(0)
                .with_offset(offset)])]);
        let p = &delete_records(broker, req).topics[0].partitions[0];
        (p.error_code, p.low_watermark)
    }

    #[test]
    fn moves_the_log_start_by_kafkas_rules() {
        let dir = tempfile::tempdir().unwrap();
        let broker = crate::broker::test_broker(dir.path(), |_| {});
        broker
            .storage
            .create_topic("t", 1, TopicConfig::new())
            .unwrap();
        let mut compacted = TopicConfig::new();
        compacted.set("cleanup.policy", "compact").unwrap();
        broker.storage.create_topic("c", 1, compacted).unwrap();
        for topic in ["t", "c"] {
            let log = broker.log(topic, 0).unwrap();
            for i in 0..10u8 {
                log.append_records(
                    &[OwnedRecord::new(0, Some(&[i]), Some(b"v"))],
                    Compression::None,
                )
                .unwrap();
            }
        }
        assert_eq!(ask(&broker, "t", 4), (0, 4));
        // Never backwards: an offset below the start leaves it where it is.
        assert_eq!(ask(&broker, "t", 2), (0, 4));
        assert_eq!(
            ask(&broker, "t", 11).0,
            ResponseError::OffsetOutOfRange.code()
        );
        assert_eq!(
            ask(&broker, "t", -5).0,
            ResponseError::OffsetOutOfRange.code()
        );
        assert_eq!(ask(&broker, "t", HIGH_WATERMARK), (0, 10));
        let log = broker.log("t", 0).unwrap();
        assert_eq!(log.log_start_offset(), 10);
        assert!(log.records_from(10).next().is_none());
        assert_eq!(
            ask(&broker, "c", 3).0,
            ResponseError::PolicyViolation.code()
        );
        assert_eq!(broker.log("c", 0).unwrap().log_start_offset(), 0);
        assert_eq!(
            ask(&broker, "missing", 0).0,
            ResponseError::UnknownTopicOrPartition.code()
        );
    }
}
