//! Kafka's consumer over read_committed fetches, for the transaction models: aborted
//! transactions (as the fetches list them) become active at their first offset and end at
//! their producer's ABORT marker; control batches (emptied ones included) and the active
//! aborted producers' transactional batches are dropped.
#![allow(dead_code)]

use std::collections::HashSet;

use streamlog::{IsolationLevel, Log, OwnedRecord};

/// The records a read_committed consumer gets from `log`, fetching from the log start
/// offset up to `lso`; checks that the log's high watermark is `hw` and that every fetch
/// reports `lso` and stops at or below it.
pub fn consume_committed(log: &Log, hw: i64, lso: i64) -> Vec<OwnedRecord> {
    assert_eq!(log.high_watermark(), hw);
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    let mut aborted_producers = HashSet::new();
    let mut pending: Vec<streamlog::AbortedTransaction> = Vec::new();
    while offset < lso {
        let f = log
            .fetch(offset, 200, IsolationLevel::ReadCommitted)
            .unwrap();
        assert_eq!(f.last_stable_offset, Some(lso));
        let Some(slice) = &f.slice else { break };
        assert!(f.next_offset <= lso);
        pending.extend(f.aborted_transactions.clone().unwrap());
        pending.sort_by_key(|t| std::cmp::Reverse(t.first_offset));
        pending.dedup();
        let bytes = slice.to_vec().unwrap();
        for b in streamlog::Batches::new(&bytes) {
            let b = b.unwrap();
            if b.last_offset() < offset {
                continue;
            }
            while pending
                .last()
                .is_some_and(|t| t.first_offset <= b.last_offset())
            {
                aborted_producers.insert(pending.pop().unwrap().producer_id);
            }
            if b.is_control() {
                if b.record_count() > 0 {
                    let kind = b.control_record().unwrap().unwrap().kind;
                    if kind == streamlog::ControlRecordType::Abort {
                        aborted_producers.remove(&b.producer_id());
                    }
                }
                continue;
            }
            if b.is_transactional() && aborted_producers.contains(&b.producer_id()) {
                continue;
            }
            for r in b.records().unwrap().iter() {
                out.push(r.unwrap().to_owned_record());
            }
        }
        offset = f.next_offset;
    }
    out
}
