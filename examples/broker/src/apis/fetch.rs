//! Fetch: stored batches, as stored, at read_uncommitted or read_committed, long-polling
//! until `min_bytes` are there or `max_wait_ms` passes. The wait is on the logs read
//! (`wait.rs`, streamlog's `Log::watermark_reached`): woken by their appends only.
//!
//! Fetch sessions (KIP-227) are declined: every response carries session id 0, which tells
//! clients to keep sending full fetch requests.
//!
//! On a connection that takes records by `sendfile` (`Context::zero_copy`), partitions read
//! from a segment file answer with the file slice (`zero_copy.rs` frames and sends it);
//! otherwise the batches are read here. Either way bytes read under a truncation are never
//! answered with (`Log::slice_is_current`): a copied read is made again, a sent one closes
//! the connection.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{FetchRequest, FetchResponse, ProducerId, ResponseKind};
use kafka_protocol::ResponseError;
use streamlog::{FileSlice, IsolationLevel, Log};

use super::Outcome;
use crate::broker::Broker;
use crate::errors;
use crate::wait::{self, Seen};
use crate::zero_copy::FileRecords;

/// The longest a fetch may park, whatever the client asks.
const MAX_WAIT_CAP: Duration = Duration::from_secs(30);

/// Fetch at `version`; with `zero_copy`, records in segment files stay there (see the
/// module's docs).
pub async fn handle(
    broker: &Arc<Broker>,
    req: FetchRequest,
    version: i16,
    zero_copy: bool,
) -> Outcome {
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
        let read = match tokio::task::spawn_blocking(move || read_all(&b, &r, zero_copy)).await {
            Ok(read) => read,
            Err(e) => return Outcome::Close(format!("fetch failed: {e}")),
        };
        let done =
            read.bytes >= min_bytes || read.errors || tokio::time::Instant::now() >= deadline;
        if done {
            broker.metrics.fetch.observe(start.elapsed());
            let m = &broker.metrics;
            m.bytes_fetched
                .fetch_add(read.bytes as u64, Ordering::Relaxed);
            m.fetch_copied_bytes
                .fetch_add(read.copied as u64, Ordering::Relaxed);
            let response = Box::new(ResponseKind::Fetch(read.response));
            if read.files.is_empty() {
                return Outcome::Respond(response);
            }
            return Outcome::RespondWithFiles(response, read.files);
        }
        wait::until_any_grows(&read.seen, deadline).await;
    }
}

struct Read {
    response: FetchResponse,
    /// Partitions whose records are left in their files (`records` is `None` in `response`).
    files: Vec<FileRecords>,
    /// Record bytes, read or in files.
    bytes: usize,
    /// Record bytes read into the response.
    copied: usize,
    errors: bool,
    /// The partitions read, with their log end offsets before the read: what a long poll
    /// waits on.
    seen: Vec<Seen>,
}

fn read_all(broker: &Broker, req: &FetchRequest, zero_copy: bool) -> Read {
    let isolation = if req.isolation_level == 1 {
        IsolationLevel::ReadCommitted
    } else {
        IsolationLevel::ReadUncommitted
    };
    let limit = usize::try_from(req.max_bytes)
        .unwrap_or(0)
        .min(broker.config.fetch_max_bytes as usize);
    let mut bytes = 0usize;
    let mut copied = 0usize;
    let mut errors = false;
    let mut seen = Vec::new();
    let mut files = Vec::new();
    let topics = req
        .topics
        .iter()
        .enumerate()
        .map(|(ti, t)| {
            let partitions = t
                .partitions
                .iter()
                .enumerate()
                .map(|(pi, p)| {
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
                    let (data, file) = read_partition(
                        broker,
                        t.topic.as_str(),
                        p,
                        max,
                        isolation,
                        zero_copy,
                        &mut seen,
                    );
                    let read = data.records.as_ref().map_or(0, Bytes::len);
                    copied += read;
                    bytes += read;
                    if let Some((log, slice)) = file {
                        bytes += slice.len() as usize;
                        files.push(FileRecords {
                            topic: ti,
                            partition: pi,
                            log,
                            slice,
                        });
                    }
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
        files,
        bytes,
        copied,
        errors,
        seen,
    }
}

/// One partition's answer; with `zero_copy`, records in an OS file are returned as its slice
/// (and the answer's `records` is `None`) instead of being read.
#[allow(clippy::too_many_arguments)]
fn read_partition(
    broker: &Broker,
    topic: &str,
    p: &kafka_protocol::messages::fetch_request::FetchPartition,
    max_bytes: usize,
    isolation: IsolationLevel,
    zero_copy: bool,
    seen: &mut Vec<Seen>,
) -> (PartitionData, Option<(Arc<Log>, FileSlice)>) {
    let out = PartitionData::default()
        .with_partition_index(p.partition)
        .with_high_watermark(-1)
        .with_aborted_transactions(None)
        .with_records(Some(Bytes::new()));
    let log = match broker.log(topic, p.partition) {
        Ok(log) => log,
        Err(e) => return (out.with_error_code(errors::code(&e)), None),
    };
    seen.push(Seen::before_reading(Arc::clone(&log)));
    let epoch = log.leader_epoch();
    if p.current_leader_epoch >= 0 && p.current_leader_epoch != epoch {
        let e = if p.current_leader_epoch < epoch {
            ResponseError::FencedLeaderEpoch
        } else {
            ResponseError::UnknownLeaderEpoch
        };
        return (out.with_error_code(e.code()), None);
    }
    let hw = Broker::high_watermark(&log);
    let lso = log.last_stable_offset();
    let out = out
        .with_high_watermark(hw)
        .with_last_stable_offset(lso)
        .with_log_start_offset(log.log_start_offset());
    if max_bytes == 0 {
        return (out, None);
    }
    // A read whose bytes a truncation may have changed is made again (`slice_is_current`).
    let (data, records) = loop {
        let data = match log.fetch(p.fetch_offset, max_bytes, isolation) {
            Ok(data) => data,
            Err(e) => return (out.with_error_code(errors::code(&e)), None),
        };
        let Some(slice) = &data.slice else {
            break (data, Records::Bytes(Bytes::new()));
        };
        if zero_copy && slice.std_file().is_some() {
            let slice = slice.clone();
            break (data, Records::File(slice));
        }
        match slice.to_vec() {
            Ok(bytes) if log.slice_is_current(slice) => break (data, Records::Bytes(bytes.into())),
            Ok(_) => continue,
            Err(_) if !log.slice_is_current(slice) => continue,
            Err(e) => return (out.with_error_code(errors::code(&e)), None),
        }
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
    let out = out
        .with_aborted_transactions(aborted)
        .with_last_stable_offset(data.last_stable_offset.unwrap_or(lso));
    match records {
        Records::Bytes(bytes) => (out.with_records(Some(bytes)), None),
        Records::File(slice) => (out.with_records(None), Some((log, slice))),
    }
}

/// A partition's records: read, or left in their file.
enum Records {
    Bytes(Bytes),
    File(FileSlice),
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
        let fetch = tokio::spawn(async move { handle(&b, req, 12, false).await });
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
