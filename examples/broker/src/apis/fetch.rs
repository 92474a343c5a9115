//! Fetch: stored batches, as stored, at read_uncommitted or read_committed, long-polling
//! until `min_bytes` are there or `max_wait_ms` passes. The wait is on the logs read
//! (`wait.rs`, streamlog's `Log::watermark_reached`): woken by their appends only.
//!
//! Fetch sessions (KIP-227) are declined: every response carries session id 0, which tells
//! clients to keep sending full fetch requests.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{FetchRequest, FetchResponse, ProducerId, ResponseKind};
use kafka_protocol::ResponseError;
use streamlog::IsolationLevel;

use super::Outcome;
use crate::broker::Broker;
use crate::errors;
use crate::wait::{self, Seen};

/// The longest a fetch may park, whatever the client asks.
const MAX_WAIT_CAP: Duration = Duration::from_secs(30);

/// Fetch at `version`.
pub async fn handle(broker: &Arc<Broker>, req: FetchRequest, version: i16) -> Outcome {
    let start = Instant::now();
    if version >= 7 && req.session_id != 0 {
        // This broker never hands out a session id, so one that is not 0 is not ours.
        return Outcome::respond(ResponseKind::Fetch(
            FetchResponse::default().with_error_code(ResponseError::FetchSessionIdNotFound.code()),
        ));
    }
    let wait = Duration::from_millis(u64::try_from(req.max_wait_ms).unwrap_or(0)).min(MAX_WAIT_CAP);
    let deadline = tokio::time::Instant::now() + wait;
    let min_bytes = usize::try_from(req.min_bytes).unwrap_or(0);
    let req = Arc::new(req);
    loop {
        let (b, r) = (Arc::clone(broker), Arc::clone(&req));
        let read = match tokio::task::spawn_blocking(move || read_all(&b, &r)).await {
            Ok(read) => read,
            Err(e) => return Outcome::Close(format!("fetch failed: {e}")),
        };
        let done =
            read.bytes >= min_bytes || read.errors || tokio::time::Instant::now() >= deadline;
        if done {
            broker.metrics.fetch.observe(start.elapsed());
            broker
                .metrics
                .bytes_fetched
                .fetch_add(read.bytes as u64, std::sync::atomic::Ordering::Relaxed);
            return Outcome::respond(ResponseKind::Fetch(read.response));
        }
        wait::until_any_grows(&read.seen, deadline).await;
    }
}

struct Read {
    response: FetchResponse,
    bytes: usize,
    errors: bool,
    /// The partitions read, with their log end offsets before the read: what a long poll
    /// waits on.
    seen: Vec<Seen>,
}

fn read_all(broker: &Broker, req: &FetchRequest) -> Read {
    let isolation = if req.isolation_level == 1 {
        IsolationLevel::ReadCommitted
    } else {
        IsolationLevel::ReadUncommitted
    };
    let limit = usize::try_from(req.max_bytes)
        .unwrap_or(0)
        .min(broker.config.fetch_max_bytes as usize);
    let mut bytes = 0usize;
    let mut errors = false;
    let mut seen = Vec::new();
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    // Past the response limit, later partitions get no records (Kafka's
                    // fetch.max.bytes); the first one with data always gets one whole batch.
                    let room = if bytes == 0 {
                        limit.max(1)
                    } else {
                        limit.saturating_sub(bytes)
                    };
                    let max = usize::try_from(p.partition_max_bytes)
                        .unwrap_or(0)
                        .min(room);
                    let data =
                        read_partition(broker, t.topic.as_str(), p, max, isolation, &mut seen);
                    bytes += data.records.as_ref().map_or(0, Bytes::len);
                    errors |= data.error_code != 0;
                    data
                })
                .collect();
            FetchableTopicResponse::default()
                .with_topic(t.topic.clone())
                .with_partitions(partitions)
        })
        .collect();
    Read {
        response: FetchResponse::default().with_responses(topics),
        bytes,
        errors,
        seen,
    }
}

fn read_partition(
    broker: &Broker,
    topic: &str,
    p: &kafka_protocol::messages::fetch_request::FetchPartition,
    max_bytes: usize,
    isolation: IsolationLevel,
    seen: &mut Vec<Seen>,
) -> PartitionData {
    let out = PartitionData::default()
        .with_partition_index(p.partition)
        .with_high_watermark(-1)
        .with_aborted_transactions(None)
        .with_records(Some(Bytes::new()));
    let log = match broker.log(topic, p.partition) {
        Ok(log) => log,
        Err(e) => return out.with_error_code(errors::code(&e)),
    };
    seen.push(Seen::before_reading(Arc::clone(&log)));
    let epoch = log.leader_epoch();
    if p.current_leader_epoch >= 0 && p.current_leader_epoch != epoch {
        let e = if p.current_leader_epoch < epoch {
            ResponseError::FencedLeaderEpoch
        } else {
            ResponseError::UnknownLeaderEpoch
        };
        return out.with_error_code(e.code());
    }
    let hw = Broker::high_watermark(&log);
    let lso = log.last_stable_offset();
    let out = out
        .with_high_watermark(hw)
        .with_last_stable_offset(lso)
        .with_log_start_offset(log.log_start_offset());
    if max_bytes == 0 {
        return out;
    }
    let data = match log.fetch(p.fetch_offset, max_bytes, isolation) {
        Ok(data) => data,
        Err(e) => return out.with_error_code(errors::code(&e)),
    };
    let records = match data.slice.as_ref().map(|s| s.to_vec()).transpose() {
        Ok(records) => Bytes::from(records.unwrap_or_default()),
        Err(e) => return out.with_error_code(errors::code(&e)),
    };
    let aborted = data.aborted_transactions.map(|list| {
        list.into_iter()
            .map(|a| {
                AbortedTransaction::default()
                    .with_producer_id(ProducerId(a.producer_id))
                    .with_first_offset(a.first_offset)
            })
            .collect()
    });
    out.with_aborted_transactions(aborted)
        .with_last_stable_offset(data.last_stable_offset.unwrap_or(lso))
        .with_records(Some(records))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::protocol::StrBytes;
    use streamlog::storage::TopicConfig;
    use streamlog::{Compression, OwnedRecord};

    fn fetch_request(topics: &[(&str, i32, i64)], max_wait_ms: i32) -> FetchRequest {
        FetchRequest::default()
            .with_max_wait_ms(max_wait_ms)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_topics(
                topics
                    .iter()
                    .map(|&(t, p, offset)| {
                        FetchTopic::default()
                            .with_topic(TopicName(StrBytes::from_string(t.into())))
                            .with_partitions(vec![FetchPartition::default()
                                .with_partition(p)
                                .with_fetch_offset(offset)
                                .with_partition_max_bytes(1 << 20)])
                    })
                    .collect(),
            )
    }

    fn records(outcome: Outcome) -> Vec<(String, i32, usize)> {
        let Outcome::Respond(resp) = outcome else {
            panic!("no response")
        };
        let ResponseKind::Fetch(resp) = *resp else {
            panic!("not a fetch response")
        };
        resp.responses
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(|p| {
                    assert_eq!(p.error_code, 0);
                    (
                        t.topic.as_str().to_string(),
                        p.partition_index,
                        p.records.as_ref().map_or(0, Bytes::len),
                    )
                })
            })
            .collect()
    }

    /// A long-poll fetch of two partitions parks (its wait is far longer than the test's
    /// bound) and is answered with the data once the second partition gets an append.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn long_poll_is_answered_by_an_append_to_a_partition_it_reads() {
        let dir = tempfile::tempdir().unwrap();
        let broker = Arc::new(crate::broker::test_broker(dir.path(), |_| {}));
        broker
            .storage
            .create_topic("t", 2, TopicConfig::new())
            .unwrap();
        let req = fetch_request(&[("t", 0, 0), ("t", 1, 0)], 30_000);
        let b = Arc::clone(&broker);
        let fetch = tokio::spawn(async move { handle(&b, req, 12).await });
        let log = broker.log("t", 1).unwrap();
        tokio::task::spawn_blocking(move || {
            log.append_records(&[OwnedRecord::new(0, None, Some(b"v"))], Compression::None)
        })
        .await
        .unwrap()
        .unwrap();
        let got = tokio::time::timeout(std::time::Duration::from_secs(20), fetch)
            .await
            .expect("the append answers the fetch before its 30 s wait")
            .unwrap();
        let got = records(got);
        assert_eq!(got[0], ("t".into(), 0, 0));
        assert_eq!(got[1].1, 1);
        assert!(got[1].2 > 0, "{got:?}");
    }
}
