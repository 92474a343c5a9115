//! ListOffsets: the earliest and latest offsets, the offset for a time, and the record with
//! the largest timestamp, from `Log::list_offsets`.

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use kafka_protocol::ResponseError;
use streamlog::ListOffsetsSpec;

use crate::broker::Broker;
use crate::errors;

/// Kafka's special timestamps.
const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;

/// ListOffsets. As Kafka's `fetchOffsetForTimestamp`: "latest" is the last offset a consumer
/// may fetch, the high watermark (read_uncommitted) or the last stable offset
/// (`isolation_level` 1, read_committed), and a lookup by time finds only offsets below it.
pub fn list_offsets(broker: &Broker, req: ListOffsetsRequest, version: i16) -> ListOffsetsResponse {
    let read_committed = req.isolation_level == 1;
    // The leader epoch is in responses from v4 on.
    let epoch_of = |log: &streamlog::Log| if version >= 4 { log.leader_epoch() } else { -1 };
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let r = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_timestamp(-1)
                        .with_offset(-1);
                    let log = match broker.log(t.name.as_str(), p.partition_index) {
                        Ok(log) => log,
                        Err(e) => return r.with_error_code(errors::code(&e)),
                    };
                    let fetchable = if read_committed {
                        log.last_stable_offset()
                    } else {
                        log.high_watermark()
                    };
                    let spec = match p.timestamp {
                        LATEST => {
                            return r.with_offset(fetchable).with_leader_epoch(epoch_of(&log))
                        }
                        EARLIEST => ListOffsetsSpec::Earliest,
                        MAX_TIMESTAMP => ListOffsetsSpec::MaxTimestamp,
                        t if t >= 0 => ListOffsetsSpec::Timestamp(t),
                        _ => return r.with_error_code(ResponseError::InvalidRequest.code()),
                    };
                    match log.list_offsets(spec) {
                        Ok(Some(found)) if found.offset < fetchable || p.timestamp == EARLIEST => r
                            .with_offset(found.offset)
                            .with_timestamp(found.timestamp)
                            .with_leader_epoch(epoch_of(&log)),
                        Ok(_) => r,
                        Err(e) => r.with_error_code(errors::code(&e)),
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}
