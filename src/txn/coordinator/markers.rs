//! The second half of every request: `__transaction_state` appends and their completion,
//! the markers of an ending transaction, the completion record, and the timers (timed-out
//! transactions, expired transactional ids, resends).

use super::*;

impl TransactionCoordinator {
    /// The append `id` (from [`Output::AppendTxnLog`]) is durable (`Ok`) or failed with the
    /// produce error the log gave. The pending state change is applied (or dropped) and its
    /// request answered; after PrepareCommit/PrepareAbort the markers go out. Errors are
    /// mapped as Kafka does: `NOT_ENOUGH_REPLICAS`, `REQUEST_TIMED_OUT`,
    /// `UNKNOWN_TOPIC_OR_PARTITION` → `COORDINATOR_NOT_AVAILABLE`; `NOT_LEADER_OR_FOLLOWER`,
    /// `KAFKA_STORAGE_ERROR` → `NOT_COORDINATOR`; `MESSAGE_TOO_LARGE` →
    /// `UNKNOWN_SERVER_ERROR`. Unknown or stale ids are ignored.
    pub fn append_completed(&mut self, id: u64, result: std::result::Result<(), KafkaCode>) {
        let Some((partition, tid)) = self.appends.remove(&id) else {
            return;
        };
        let Some(txn) = self.txn_mut(partition, &tid) else {
            return;
        };
        if txn.pending.as_ref().map(|p| p.append) != Some(id) {
            return;
        }
        let Some(pending) = txn.pending.take() else {
            return;
        };
        let error = match result {
            Ok(()) => KafkaCode::NONE,
            Err(
                KafkaCode::UNKNOWN_TOPIC_OR_PARTITION
                | KafkaCode::NOT_ENOUGH_REPLICAS
                | KafkaCode::NOT_ENOUGH_REPLICAS_AFTER_APPEND
                | KafkaCode::REQUEST_TIMED_OUT,
            ) => KafkaCode::COORDINATOR_NOT_AVAILABLE,
            Err(KafkaCode::NOT_LEADER_OR_FOLLOWER | KafkaCode::KAFKA_STORAGE_ERROR) => {
                KafkaCode::NOT_COORDINATOR
            }
            Err(KafkaCode::MESSAGE_TOO_LARGE | KafkaCode::RECORD_LIST_TOO_LARGE) => {
                KafkaCode::UNKNOWN_SERVER_ERROR
            }
            Err(KafkaCode::NONE) => KafkaCode::UNKNOWN_SERVER_ERROR,
            Err(other) => other,
        };
        if error.is_error() {
            if pending.then == Then::Complete && error == KafkaCode::COORDINATOR_NOT_AVAILABLE {
                // Kafka retries the completion record; nobody waits on it.
                let epoch = self.partitions.get(&partition).map(|p| p.coordinator_epoch);
                if let Some(coordinator_epoch) = epoch {
                    self.retries.push(Retry {
                        at: self.now.saturating_add(self.config.retry_backoff_ms),
                        partition,
                        coordinator_epoch,
                        transactional_id: tid,
                        what: RetryWhat::Completion,
                    });
                }
                return;
            }
            if let Then::EndTxn(origin) = pending.then {
                if origin.is_fence() {
                    txn.has_failed_epoch_fence = true;
                }
            }
            self.fail_then(pending.then, error);
            return;
        }
        // Applied: the record is durable.
        let then = pending.then;
        if pending.target.state == Dead {
            if let Some(txns) = self.txns_mut(partition) {
                txns.remove(&tid);
            }
            return;
        }
        txn.rec = pending.target;
        if matches!(txn.rec.state, CompleteCommit | CompleteAbort) {
            txn.has_failed_epoch_fence = false;
        }
        let (producer_id, producer_epoch) = (txn.rec.producer_id, txn.rec.producer_epoch);
        match then {
            Then::InitProducerId(request) => self.respond(
                request,
                Response::InitProducerId(InitProducerIdResponse {
                    error: KafkaCode::NONE,
                    producer_id,
                    producer_epoch,
                }),
            ),
            Then::AddPartitions { request, index } => {
                self.add_part_done(request, index, KafkaCode::NONE)
            }
            Then::AddOffsets(request) => {
                self.respond(request, Response::AddOffsetsToTxn(KafkaCode::NONE))
            }
            Then::EndTxn(origin) => {
                match origin {
                    EndOrigin::Client(request) => {
                        self.respond(request, Response::EndTxn(KafkaCode::NONE))
                    }
                    EndOrigin::Fence(request) => self.respond(
                        request,
                        Response::InitProducerId(InitProducerIdResponse {
                            error: KafkaCode::CONCURRENT_TRANSACTIONS,
                            producer_id: -1,
                            producer_epoch: -1,
                        }),
                    ),
                    EndOrigin::Timeout => {}
                }
                self.start_markers(partition, &tid);
            }
            Then::Complete | Then::Expire => {}
        }
    }

    /// A report for one partition of a [`TxnMarkerRequest`]. Written (or deleted) partitions
    /// leave the transaction; once none is left the completion record
    /// (CompleteCommit/CompleteAbort) is appended. Failures are resent after
    /// `retry_backoff_ms`. Reports for requests that are no longer current (duplicates,
    /// late ones, from before a reload) are ignored.
    pub fn marker_written(
        &mut self,
        marker: &TxnMarkerRequest,
        partition: &TopicPartition,
        outcome: MarkerOutcome,
    ) {
        let owner = self.partition_for(&marker.transactional_id);
        match self.partitions.get(&owner) {
            Some(p) if p.coordinator_epoch == marker.coordinator_epoch => {}
            _ => return,
        }
        let now = self.now;
        let backoff = self.config.retry_backoff_ms;
        let Some(txn) = self.txn_mut(owner, &marker.transactional_id) else {
            return;
        };
        let Some(outstanding) = txn.markers.as_mut() else {
            return;
        };
        if outstanding.get(partition) != Some(&marker.id) {
            return;
        }
        outstanding.remove(partition);
        match outcome {
            MarkerOutcome::Written
            | MarkerOutcome::PartitionDeleted
            | MarkerOutcome::Failed(KafkaCode::UNSUPPORTED_FOR_MESSAGE_FORMAT) => {
                txn.rec.partitions.remove(partition);
            }
            MarkerOutcome::Failed(
                KafkaCode::INVALID_PRODUCER_EPOCH | KafkaCode::TRANSACTION_COORDINATOR_FENCED,
            ) => {
                // A newer producer epoch or coordinator has taken over this transaction's
                // partitions: stop sending (Kafka's removeMarkersForTxn).
                txn.markers = None;
                return;
            }
            MarkerOutcome::Failed(_) => {
                self.retries.push(Retry {
                    at: now.saturating_add(backoff),
                    partition: owner,
                    coordinator_epoch: marker.coordinator_epoch,
                    transactional_id: marker.transactional_id.clone(),
                    what: RetryWhat::Markers(vec![partition.clone()]),
                });
                return;
            }
        }
        self.maybe_write_completion(owner, &marker.transactional_id);
    }

    /// Sends the markers of a transaction that has just reached (or was loaded in)
    /// PrepareCommit/PrepareAbort, to every partition in it.
    pub(super) fn start_markers(&mut self, partition: u32, tid: &str) {
        let Some(txn) = self.txn_mut(partition, tid) else {
            return;
        };
        if !matches!(txn.rec.state, PrepareCommit | PrepareAbort) {
            return;
        }
        txn.markers = Some(BTreeMap::new());
        let all: Vec<TopicPartition> = txn.rec.partitions.iter().cloned().collect();
        self.send_markers(partition, tid, all);
        self.maybe_write_completion(partition, tid);
    }

    fn send_markers(&mut self, partition: u32, tid: &str, partitions: Vec<TopicPartition>) {
        let Some(coordinator_epoch) = self.partitions.get(&partition).map(|p| p.coordinator_epoch)
        else {
            return;
        };
        let id = self.next_marker_id;
        let Some(txn) = self.txn_mut(partition, tid) else {
            return;
        };
        let Some(outstanding) = txn.markers.as_mut() else {
            return;
        };
        let partitions: Vec<TopicPartition> = partitions
            .into_iter()
            .filter(|p| txn.rec.partitions.contains(p) && !outstanding.contains_key(p))
            .collect();
        if partitions.is_empty() {
            return;
        }
        for p in &partitions {
            outstanding.insert(p.clone(), id);
        }
        let request = TxnMarkerRequest {
            id,
            transactional_id: tid.to_string(),
            producer_id: txn.rec.producer_id,
            producer_epoch: txn.rec.producer_epoch,
            coordinator_epoch,
            result: if txn.rec.state == PrepareCommit {
                TxnResult::Commit
            } else {
                TxnResult::Abort
            },
            partitions,
        };
        self.next_marker_id += 1;
        self.outputs.push_back(Output::WriteTxnMarkers(request));
    }

    /// Kafka's `maybeWriteTxnCompletion`: once every marker is written, record
    /// CompleteCommit/CompleteAbort.
    fn maybe_write_completion(&mut self, partition: u32, tid: &str) {
        let now = self.now;
        let Some(txn) = self.txn_mut(partition, tid) else {
            return;
        };
        if !txn.rec.partitions.is_empty() || txn.pending.is_some() || txn.markers.is_none() {
            return;
        }
        txn.markers = None;
        let mut target = txn.rec.clone();
        target.state = if txn.rec.state == PrepareCommit {
            CompleteCommit
        } else {
            CompleteAbort
        };
        target.last_update_timestamp = now;
        // Nobody waits for the answer; a failure to encode cannot happen for a record that
        // was encoded before.
        let _ = self.begin_transition(partition, tid, target, Then::Complete);
    }

    pub(super) fn retry(&mut self, r: Retry) {
        match self.partitions.get(&r.partition) {
            Some(p) if p.coordinator_epoch == r.coordinator_epoch && p.txns.is_some() => {}
            _ => return,
        }
        match r.what {
            RetryWhat::Markers(partitions) => {
                self.send_markers(r.partition, &r.transactional_id, partitions)
            }
            RetryWhat::Completion => {
                let now = self.now;
                let Some(txn) = self.txn_mut(r.partition, &r.transactional_id) else {
                    return;
                };
                if txn.pending.is_some() || !matches!(txn.rec.state, PrepareCommit | PrepareAbort) {
                    return;
                }
                let mut target = txn.rec.clone();
                target.partitions.clear();
                target.state = if txn.rec.state == PrepareCommit {
                    CompleteCommit
                } else {
                    CompleteAbort
                };
                target.last_update_timestamp = now;
                let _ =
                    self.begin_transition(r.partition, &r.transactional_id, target, Then::Complete);
            }
        }
    }

    /// Kafka's `abortTimedOutTransactions`: every Ongoing transaction older than its timeout
    /// is aborted with a bumped epoch (fencing its producer).
    pub(super) fn abort_timed_out_transactions(&mut self) {
        let now = self.now;
        let mut timed_out: Vec<(String, i64, i16)> = Vec::new();
        for p in self.partitions.values() {
            for (tid, t) in p.txns.iter().flatten() {
                if t.pending.is_none()
                    && t.rec.state == Ongoing
                    && t.rec
                        .start_timestamp
                        .saturating_add(i64::from(t.rec.timeout_ms))
                        < now
                {
                    if let Ok(epoch) = requests::fence_epoch_of(t) {
                        timed_out.push((tid.clone(), t.rec.producer_id, epoch));
                    }
                }
            }
        }
        timed_out.sort();
        for (tid, producer_id, epoch) in timed_out {
            let _ = self.end_transaction(
                &tid,
                producer_id,
                epoch,
                TxnResult::Abort,
                EndOrigin::Timeout,
            );
        }
    }

    /// Kafka's `removeExpiredTransactionalIds`: tombstones for transactional ids idle longer
    /// than `transactional.id.expiration.ms` with no transaction open.
    pub(super) fn expire_transactional_ids(&mut self) {
        let horizon = self
            .now
            .saturating_sub(self.config.transactional_id_expiration_ms);
        let mut expired: Vec<(u32, String)> = Vec::new();
        for (&partition, p) in &self.partitions {
            for (tid, t) in p.txns.iter().flatten() {
                if t.pending.is_none()
                    && t.rec.state.expiration_allowed()
                    && t.rec.last_update_timestamp <= horizon
                {
                    expired.push((partition, tid.clone()));
                }
            }
        }
        expired.sort();
        for (partition, tid) in expired {
            let Some(t) = self.txn(partition, &tid) else {
                continue;
            };
            let mut target = t.rec.clone();
            target.state = Dead;
            target.partitions.clear();
            let _ = self.begin_transition(partition, &tid, target, Then::Expire);
        }
    }

    /// Starts a state change: the record is emitted for appending and the change kept
    /// pending until [`append_completed`](Self::append_completed).
    pub(super) fn begin_transition(
        &mut self,
        partition: u32,
        tid: &str,
        target: TxnRecord,
        then: Then,
    ) -> ApiResult<()> {
        let coordinator_epoch = self
            .partitions
            .get(&partition)
            .map(|p| p.coordinator_epoch)
            .ok_or(KafkaCode::NOT_COORDINATOR)?;
        let key = TransactionLogKey {
            transactional_id: tid.to_string(),
        }
        .encode()
        .map_err(|_| KafkaCode::INVALID_REQUEST)?;
        let value = if target.state == Dead {
            None
        } else {
            Some(
                target
                    .to_value()
                    .encode(self.config.log_value_version)
                    .map_err(|_| KafkaCode::INVALID_REQUEST)?,
            )
        };
        let id = self.next_append_id;
        let txn = self
            .txn_mut(partition, tid)
            .ok_or(KafkaCode::NOT_COORDINATOR)?;
        txn.pending = Some(Pending {
            append: id,
            target,
            then,
        });
        self.next_append_id += 1;
        self.appends.insert(id, (partition, tid.to_string()));
        self.outputs.push_back(Output::AppendTxnLog(TxnLogAppend {
            id,
            partition,
            coordinator_epoch,
            transactional_id: tid.to_string(),
            key,
            value,
            timestamp: self.now,
        }));
        Ok(())
    }

    /// Answers the request behind a failed state change.
    pub(super) fn fail_then(&mut self, then: Then, error: KafkaCode) {
        match then {
            Then::InitProducerId(request) | Then::EndTxn(EndOrigin::Fence(request)) => self
                .respond(
                    request,
                    Response::InitProducerId(InitProducerIdResponse {
                        error,
                        producer_id: -1,
                        producer_epoch: -1,
                    }),
                ),
            Then::AddPartitions { request, index } => self.add_part_done(request, index, error),
            Then::AddOffsets(request) => self.respond(request, Response::AddOffsetsToTxn(error)),
            Then::EndTxn(EndOrigin::Client(request)) => {
                self.respond(request, Response::EndTxn(error))
            }
            Then::EndTxn(EndOrigin::Timeout) | Then::Complete | Then::Expire => {}
        }
    }

    fn add_part_done(&mut self, request: RequestId, index: usize, error: KafkaCode) {
        let Some(batch) = self.add_batches.get_mut(&request) else {
            return;
        };
        if let Some(r) = batch.results.get_mut(index) {
            for (_, e) in &mut r.partitions {
                *e = error;
            }
        }
        batch.waiting = batch.waiting.saturating_sub(1);
        if batch.waiting == 0 {
            if let Some(batch) = self.add_batches.remove(&request) {
                self.respond(request, Response::AddPartitionsToTxn(batch.results));
            }
        }
    }

    pub(super) fn respond(&mut self, request: RequestId, response: Response) {
        self.outputs
            .push_back(Output::Response { request, response });
    }

    pub(super) fn txn(&self, partition: u32, tid: &str) -> Option<&Txn> {
        self.partitions.get(&partition)?.txns.as_ref()?.get(tid)
    }

    pub(super) fn txn_mut(&mut self, partition: u32, tid: &str) -> Option<&mut Txn> {
        self.partitions
            .get_mut(&partition)?
            .txns
            .as_mut()?
            .get_mut(tid)
    }

    pub(super) fn txns_mut(&mut self, partition: u32) -> Option<&mut HashMap<String, Txn>> {
        self.partitions.get_mut(&partition)?.txns.as_mut()
    }
}
