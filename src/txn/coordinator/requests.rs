//! The client requests: InitProducerId, AddPartitionsToTxn (incl. verify-only),
//! AddOffsetsToTxn, EndTxn, and DescribeTransactions. Checks follow Kafka's
//! `TransactionCoordinator`, in its order, so the same request gets the same error code.

use super::*;

/// Longest transactional id a `__transaction_state` key can hold.
const MAX_TRANSACTIONAL_ID_BYTES: usize = i16::MAX as usize;

impl TransactionCoordinator {
    /// InitProducerId. Without a transactional id: a fresh producer id at epoch 0, at once.
    /// With one: the epoch is bumped (a new producer id once epochs run out) and recorded
    /// before the answer; a producer found mid-transaction is fenced (its transaction aborted
    /// with the bumped epoch) and the request answered `CONCURRENT_TRANSACTIONS`, for the
    /// client to retry.
    pub fn init_producer_id(&mut self, request: RequestId, req: InitProducerIdRequest) {
        if let Err(error) = self.try_init_producer_id(request, req) {
            self.respond(
                request,
                Response::InitProducerId(InitProducerIdResponse {
                    error,
                    producer_id: -1,
                    producer_epoch: -1,
                }),
            );
        }
    }

    fn try_init_producer_id(
        &mut self,
        request: RequestId,
        req: InitProducerIdRequest,
    ) -> ApiResult<()> {
        if (req.producer_id == -1) != (req.producer_epoch == -1) {
            return Err(KafkaCode::INVALID_REQUEST);
        }
        let Some(tid) = req.transactional_id else {
            let producer_id = self.generate_producer_id()?;
            self.respond(
                request,
                Response::InitProducerId(InitProducerIdResponse {
                    error: KafkaCode::NONE,
                    producer_id,
                    producer_epoch: 0,
                }),
            );
            return Ok(());
        };
        if tid.is_empty() || tid.len() > MAX_TRANSACTIONAL_ID_BYTES {
            return Err(KafkaCode::INVALID_REQUEST);
        }
        let timeout = req.transaction_timeout_ms;
        if timeout <= 0 || timeout > self.config.transaction_max_timeout_ms {
            return Err(KafkaCode::INVALID_TRANSACTION_TIMEOUT);
        }
        let (partition, _) = self.owner(&tid)?;
        if self.txn(partition, &tid).is_none() {
            let producer_id = self.generate_producer_id()?;
            let now = self.now;
            let txns = self.txns_mut(partition).ok_or(KafkaCode::NOT_COORDINATOR)?;
            txns.insert(
                tid.clone(),
                Txn {
                    rec: TxnRecord {
                        producer_id,
                        previous_producer_id: -1,
                        next_producer_id: -1,
                        producer_epoch: NO_PRODUCER_EPOCH,
                        last_producer_epoch: NO_PRODUCER_EPOCH,
                        timeout_ms: timeout,
                        state: Empty,
                        partitions: Default::default(),
                        start_timestamp: -1,
                        last_update_timestamp: now,
                        client_transaction_version: 0,
                    },
                    pending: None,
                    has_failed_epoch_fence: false,
                    markers: None,
                },
            );
        }
        let expected = (req.producer_id != -1).then_some((req.producer_id, req.producer_epoch));
        let txn = self
            .txn(partition, &tid)
            .ok_or(KafkaCode::NOT_COORDINATOR)?;
        if txn.pending.is_some() {
            return Err(KafkaCode::CONCURRENT_TRANSACTIONS);
        }
        let rec = &txn.rec;
        // KIP-360: the producer id the client has must be this one (or the previous one, when
        // a rotation's answer was lost), unless the metadata was just created.
        let valid_id = |(pid, epoch): (i64, i16)| {
            rec.producer_epoch == NO_PRODUCER_EPOCH
                || pid == rec.producer_id
                || (pid == rec.previous_producer_id && epoch_exhausted(epoch))
        };
        if !expected.is_none_or(valid_id) {
            return Err(KafkaCode::PRODUCER_FENCED);
        }
        match rec.state {
            PrepareAbort | PrepareCommit => Err(KafkaCode::CONCURRENT_TRANSACTIONS),
            CompleteAbort | CompleteCommit | Empty => {
                let mut target = rec.clone();
                target.state = Empty;
                target.timeout_ms = timeout;
                target.partitions.clear();
                target.start_timestamp = -1;
                target.last_update_timestamp = self.now;
                target.previous_producer_id = rec.producer_id;
                target.next_producer_id = -1;
                if epoch_exhausted(rec.producer_epoch)
                    && expected.is_none_or(|(_, e)| e == rec.producer_epoch)
                {
                    let old_epoch = rec.producer_epoch;
                    let new_id = self.generate_producer_id()?;
                    target.producer_id = new_id;
                    target.producer_epoch = 0;
                    target.last_producer_epoch = if expected.is_some() {
                        old_epoch
                    } else {
                        NO_PRODUCER_EPOCH
                    };
                } else {
                    let bumped = rec.producer_epoch.saturating_add(1);
                    let (epoch, last) = match expected {
                        None => (bumped, NO_PRODUCER_EPOCH),
                        Some((_, e))
                            if rec.producer_epoch == NO_PRODUCER_EPOCH
                                || e == rec.producer_epoch =>
                        {
                            (bumped, rec.producer_epoch)
                        }
                        // A retry of a bump that succeeded: answer the same epoch again.
                        Some((_, e)) if e == rec.last_producer_epoch => {
                            (rec.producer_epoch, rec.last_producer_epoch)
                        }
                        Some(_) => return Err(KafkaCode::PRODUCER_FENCED),
                    };
                    target.producer_epoch = epoch;
                    target.last_producer_epoch = last;
                }
                self.begin_transition(partition, &tid, target, Then::InitProducerId(request))
            }
            Ongoing => {
                let epoch = fence_epoch(txn)?;
                let producer_id = rec.producer_id;
                self.end_transaction(
                    &tid,
                    producer_id,
                    epoch,
                    TxnResult::Abort,
                    EndOrigin::Fence(request),
                )
            }
            Dead | PrepareEpochFence => Err(KafkaCode::UNKNOWN_SERVER_ERROR),
        }
    }

    /// AddPartitionsToTxn, any version: versions 0–3 send one transaction, versions 4+ a
    /// batch. The response (one result per transaction, in order) comes once every added
    /// partition set is recorded.
    pub fn add_partitions_to_txn(
        &mut self,
        request: RequestId,
        transactions: Vec<AddPartitionsToTxnTransaction>,
    ) {
        let mut batch = AddBatch {
            results: Vec::with_capacity(transactions.len()),
            waiting: 0,
        };
        for (index, t) in transactions.into_iter().enumerate() {
            let result = if t.verify_only {
                self.verify_partitions(&t)
            } else {
                match self.try_add_partitions(
                    &t.transactional_id,
                    t.producer_id,
                    t.producer_epoch,
                    &t.partitions,
                    Then::AddPartitions { request, index },
                ) {
                    Ok(started) => {
                        if started {
                            batch.waiting += 1;
                        }
                        all(&t, KafkaCode::NONE)
                    }
                    Err(e) => all(&t, e),
                }
            };
            batch.results.push(result);
        }
        if batch.waiting == 0 {
            self.respond(request, Response::AddPartitionsToTxn(batch.results));
        } else {
            self.add_batches.insert(request, batch);
        }
    }

    /// AddOffsetsToTxn: adds the group's `__consumer_offsets` partition to the transaction,
    /// exactly as AddPartitionsToTxn would.
    pub fn add_offsets_to_txn(&mut self, request: RequestId, req: AddOffsetsToTxnRequest) {
        let tp = self.offsets_partition_for(&req.group_id);
        match self.try_add_partitions(
            &req.transactional_id,
            req.producer_id,
            req.producer_epoch,
            std::slice::from_ref(&tp),
            Then::AddOffsets(request),
        ) {
            Ok(true) => {}
            Ok(false) => self.respond(request, Response::AddOffsetsToTxn(KafkaCode::NONE)),
            Err(e) => self.respond(request, Response::AddOffsetsToTxn(e)),
        }
    }

    /// EndTxn: records PrepareCommit or PrepareAbort, answers, then drives the markers.
    pub fn end_txn(&mut self, request: RequestId, req: EndTxnRequest) {
        let result = if req.committed {
            TxnResult::Commit
        } else {
            TxnResult::Abort
        };
        if let Err(e) = self.end_transaction(
            &req.transactional_id,
            req.producer_id,
            req.producer_epoch,
            result,
            EndOrigin::Client(request),
        ) {
            self.respond(request, Response::EndTxn(e));
        }
    }

    /// DescribeTransactions for one transactional id.
    pub fn describe_transaction(&self, transactional_id: &str) -> TransactionDescription {
        let mut d = TransactionDescription {
            error: KafkaCode::NONE,
            state: "",
            producer_id: -1,
            producer_epoch: -1,
            transaction_timeout_ms: 0,
            transaction_start_time_ms: -1,
            partitions: Vec::new(),
        };
        if transactional_id.is_empty() {
            d.error = KafkaCode::INVALID_REQUEST;
            return d;
        }
        let partition = match self.owner(transactional_id) {
            Ok((p, _)) => p,
            Err(e) => {
                d.error = e;
                return d;
            }
        };
        match self.txn(partition, transactional_id) {
            Some(t) if t.rec.state != Dead => {
                d.state = t.rec.state.name();
                d.producer_id = t.rec.producer_id;
                d.producer_epoch = t.rec.producer_epoch;
                d.transaction_timeout_ms = t.rec.timeout_ms;
                d.transaction_start_time_ms = t.rec.start_timestamp;
                d.partitions = t.rec.partitions.iter().cloned().collect();
            }
            _ => d.error = KafkaCode::TRANSACTIONAL_ID_NOT_FOUND,
        }
        d
    }

    /// The checks of Kafka's `handleAddPartitionsToTransaction`; `Ok(true)` when an append
    /// was started (the answer comes with its completion), `Ok(false)` when the partitions
    /// are already in the transaction.
    fn try_add_partitions(
        &mut self,
        tid: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[TopicPartition],
        then: Then,
    ) -> ApiResult<bool> {
        if tid.is_empty() {
            return Err(KafkaCode::INVALID_REQUEST);
        }
        let (partition, _) = self.owner(tid)?;
        let txn = self
            .txn(partition, tid)
            .ok_or(KafkaCode::INVALID_PRODUCER_ID_MAPPING)?;
        let rec = &txn.rec;
        if rec.producer_id != producer_id {
            return Err(KafkaCode::INVALID_PRODUCER_ID_MAPPING);
        }
        if rec.producer_epoch != producer_epoch {
            return Err(KafkaCode::PRODUCER_FENCED);
        }
        if txn.pending.is_some() || matches!(rec.state, PrepareCommit | PrepareAbort) {
            return Err(KafkaCode::CONCURRENT_TRANSACTIONS);
        }
        if rec.state == Ongoing && partitions.iter().all(|p| rec.partitions.contains(p)) {
            return Ok(false);
        }
        if matches!(rec.state, Dead | PrepareEpochFence) {
            return Err(KafkaCode::UNKNOWN_SERVER_ERROR);
        }
        if partitions
            .iter()
            .any(|p| crate::storage::validate_topic_name(&p.topic).is_err() || p.partition < 0)
        {
            return Err(KafkaCode::INVALID_REQUEST);
        }
        let mut target = rec.clone();
        if matches!(rec.state, Empty | CompleteAbort | CompleteCommit) {
            target.start_timestamp = self.now;
        }
        target.state = Ongoing;
        target.partitions.extend(partitions.iter().cloned());
        target.last_update_timestamp = self.now;
        self.begin_transition(partition, tid, target, then)?;
        Ok(true)
    }

    /// Kafka's `handleVerifyPartitionsInTransaction` (AddPartitionsToTxn v4+ `verify_only`).
    fn verify_partitions(&self, t: &AddPartitionsToTxnTransaction) -> AddPartitionsToTxnResult {
        let check = || -> ApiResult<&Txn> {
            if t.transactional_id.is_empty() {
                return Err(KafkaCode::INVALID_REQUEST);
            }
            let (partition, _) = self.owner(&t.transactional_id)?;
            let txn = self
                .txn(partition, &t.transactional_id)
                .ok_or(KafkaCode::INVALID_PRODUCER_ID_MAPPING)?;
            if txn.rec.producer_id != t.producer_id {
                return Err(KafkaCode::INVALID_PRODUCER_ID_MAPPING);
            }
            if txn.rec.producer_epoch != t.producer_epoch {
                return Err(KafkaCode::PRODUCER_FENCED);
            }
            if matches!(txn.rec.state, PrepareCommit | PrepareAbort) {
                return Err(KafkaCode::CONCURRENT_TRANSACTIONS);
            }
            Ok(txn)
        };
        match check() {
            Err(e) => all(t, e),
            Ok(txn) => AddPartitionsToTxnResult {
                transactional_id: t.transactional_id.clone(),
                partitions: t
                    .partitions
                    .iter()
                    .map(|p| {
                        let e = if txn.rec.partitions.contains(p) {
                            KafkaCode::NONE
                        } else {
                            KafkaCode::TRANSACTION_ABORTABLE
                        };
                        (p.clone(), e)
                    })
                    .collect(),
            },
        }
    }

    /// Kafka's `endTransaction` (transaction version 0/1 rules): from a client, or to fence
    /// a producer (InitProducerId, timeout) with a bumped epoch.
    pub(super) fn end_transaction(
        &mut self,
        tid: &str,
        producer_id: i64,
        producer_epoch: i16,
        result: TxnResult,
        origin: EndOrigin,
    ) -> ApiResult<()> {
        if tid.is_empty() {
            return Err(KafkaCode::INVALID_REQUEST);
        }
        let (partition, _) = self.owner(tid)?;
        let now = self.now;
        let txn = self
            .txn(partition, tid)
            .ok_or(KafkaCode::INVALID_PRODUCER_ID_MAPPING)?;
        let rec = &txn.rec;
        if rec.producer_id != producer_id {
            return Err(KafkaCode::INVALID_PRODUCER_ID_MAPPING);
        }
        let from_client = !origin.is_fence();
        if (from_client && producer_epoch != rec.producer_epoch)
            || producer_epoch < rec.producer_epoch
        {
            return Err(KafkaCode::PRODUCER_FENCED);
        }
        if txn.pending.is_some() {
            return Err(KafkaCode::CONCURRENT_TRANSACTIONS);
        }
        let commit = result == TxnResult::Commit;
        match rec.state {
            Ongoing => {
                let mut target = rec.clone();
                target.state = if commit { PrepareCommit } else { PrepareAbort };
                target.last_update_timestamp = now;
                if origin.is_fence() {
                    // The bumped epoch takes effect at once (the old producer's requests are
                    // fenced from now on), though it is only answered to anyone once the
                    // abort is recorded.
                    target.producer_epoch = producer_epoch;
                    target.last_producer_epoch = NO_PRODUCER_EPOCH;
                    let txn = self
                        .txn_mut(partition, tid)
                        .ok_or(KafkaCode::NOT_COORDINATOR)?;
                    txn.rec.producer_epoch = producer_epoch;
                    txn.rec.last_producer_epoch = NO_PRODUCER_EPOCH;
                }
                self.begin_transition(partition, tid, target, Then::EndTxn(origin))
            }
            CompleteCommit if commit => self.answer_end(origin, KafkaCode::NONE),
            CompleteAbort if !commit => self.answer_end(origin, KafkaCode::NONE),
            PrepareCommit if commit => Err(KafkaCode::CONCURRENT_TRANSACTIONS),
            PrepareAbort if !commit => Err(KafkaCode::CONCURRENT_TRANSACTIONS),
            Dead | PrepareEpochFence => Err(KafkaCode::UNKNOWN_SERVER_ERROR),
            _ => Err(KafkaCode::INVALID_TXN_STATE),
        }
    }

    fn answer_end(&mut self, origin: EndOrigin, error: KafkaCode) -> ApiResult<()> {
        if let EndOrigin::Client(request) = origin {
            self.respond(request, Response::EndTxn(error));
        }
        Ok(())
    }

    /// The partition owning `tid` and its coordinator epoch, or why not.
    pub(super) fn owner(&self, tid: &str) -> ApiResult<(u32, i32)> {
        let partition = self.partition_for(tid);
        match self.partitions.get(&partition) {
            None => Err(KafkaCode::NOT_COORDINATOR),
            Some(p) if p.txns.is_none() => Err(KafkaCode::COORDINATOR_LOAD_IN_PROGRESS),
            Some(p) => Ok((partition, p.coordinator_epoch)),
        }
    }
}

/// The epoch to fence a producer with: one more, unless a previous fence already bumped it
/// in memory but failed to record it.
fn fence_epoch(txn: &Txn) -> ApiResult<i16> {
    if txn.has_failed_epoch_fence {
        Ok(txn.rec.producer_epoch)
    } else if txn.rec.producer_epoch == i16::MAX {
        Err(KafkaCode::UNKNOWN_SERVER_ERROR)
    } else {
        Ok(txn.rec.producer_epoch + 1)
    }
}

pub(super) fn fence_epoch_of(txn: &Txn) -> ApiResult<i16> {
    fence_epoch(txn)
}

fn all(t: &AddPartitionsToTxnTransaction, e: KafkaCode) -> AddPartitionsToTxnResult {
    AddPartitionsToTxnResult {
        transactional_id: t.transactional_id.clone(),
        partitions: t.partitions.iter().map(|p| (p.clone(), e)).collect(),
    }
}
