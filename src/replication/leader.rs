//! The leader's half (Kafka's `Partition` on the leader): followers' progress, the ISR and
//! its changes, the high watermark, fetch answers (held while there is nothing new), and
//! `acks=all` produces waiting for the high watermark.

use std::collections::BTreeMap;

use super::replica::{Replica, RoleState};
use super::{
    Acks, AlterPartition, EpochEndOffset, FetchRequest, FetchResponse, Message,
    OffsetsForLeaderEpochRequest, OffsetsForLeaderEpochResponse, Output, ProduceCompletion,
    ProduceId, ProduceOutcome, ReplicaDurability, ReplicaId,
};
use crate::error::{Error, Result};
use crate::KafkaCode;

/// What the leader knows of one follower (Kafka's `Replica` state on the leader).
#[derive(Debug, Clone)]
pub(super) struct Progress {
    /// The follower's log end offset, as its last fetch said; -1 until it fetches in this
    /// epoch (the high watermark waits for every ISR member to fetch once).
    log_end_offset: i64,
    /// The newest incarnation seen (KIP-903): fetches of older ones are ignored.
    replica_epoch: i64,
    last_fetch_ms: i64,
    /// The last time the follower had everything the leader had (Kafka's
    /// `lastCaughtUpTimeMs`): the ISR shrink compares it with `replica.lag.time.max.ms`.
    last_caught_up_ms: i64,
    /// The leader's log end offset at the follower's previous fetch.
    leader_end_at_last_fetch: i64,
    /// The high watermark last sent to the follower.
    high_watermark_sent: i64,
}

pub(super) struct PendingProduce {
    pub(super) id: ProduceId,
    pub(super) base_offset: i64,
    pub(super) last_offset: i64,
    deadline: i64,
}

pub(super) struct ParkedFetch {
    pub(super) request: FetchRequest,
    deadline: i64,
}

pub(super) struct LeaderState {
    pub(super) epoch: i32,
    /// Where this epoch starts: a follower joins the ISR only once it holds up to here.
    epoch_start_offset: i64,
    followers: BTreeMap<ReplicaId, Progress>,
    /// The ISR proposal the controller has not answered, and when it was sent.
    pub(super) pending_isr: Option<(AlterPartition, i64)>,
    /// `acks=all` produces in offset order.
    pub(super) produces: Vec<PendingProduce>,
    /// Fetches that found nothing new, answered when the log or the high watermark moves
    /// or at their deadline (`replica.fetch.wait.max.ms`).
    pub(super) parked: Vec<ParkedFetch>,
}

impl Replica {
    pub(super) fn become_leader(&mut self, epoch: i32, now: i64) -> Result<()> {
        self.log.set_leader_epoch(epoch)?;
        let leo = self.log.log_end_offset();
        let epoch_start_offset = self
            .log
            .leader_epochs()
            .iter()
            .rev()
            .find(|e| e.epoch == epoch)
            .map_or(leo, |e| e.start_offset);
        let mut followers = BTreeMap::new();
        if let Some(state) = &self.state {
            for r in state.replicas.iter().filter(|r| **r != self.id) {
                // ISR members start caught up (Kafka resets their time to the election).
                let caught_up = if state.isr.contains(r) { now } else { 0 };
                followers.insert(
                    *r,
                    Progress {
                        log_end_offset: -1,
                        replica_epoch: -1,
                        last_fetch_ms: 0,
                        last_caught_up_ms: caught_up,
                        leader_end_at_last_fetch: -1,
                        high_watermark_sent: -1,
                    },
                );
            }
        }
        self.role = RoleState::Leader(LeaderState {
            epoch,
            epoch_start_offset,
            followers,
            pending_isr: None,
            produces: Vec::new(),
            parked: Vec::new(),
        });
        // A leader alone in its ISR commits what it has.
        self.maybe_advance_high_watermark(now)
    }

    fn leader(&mut self) -> Option<&mut LeaderState> {
        match &mut self.role {
            RoleState::Leader(l) => Some(l),
            _ => None,
        }
    }

    /// The ISR as committed by the controller.
    fn isr(&self) -> Vec<ReplicaId> {
        self.state.as_ref().map_or(Vec::new(), |s| s.isr.clone())
    }

    /// Kafka's maximal ISR: the committed ISR plus the replicas a pending proposal adds
    /// (removals count only once committed), what the high watermark waits for.
    fn maximal_isr(&self) -> Vec<ReplicaId> {
        let mut isr = self.isr();
        if let RoleState::Leader(l) = &self.role {
            if let Some((p, _)) = &l.pending_isr {
                for r in &p.new_isr {
                    if !isr.contains(r) {
                        isr.push(*r);
                    }
                }
            }
        }
        isr
    }

    /// A producer's batch (Kafka's `appendRecordsToLeader`): refused with
    /// NOT_LEADER_OR_FOLLOWER on a replica that does not lead, and with NOT_ENOUGH_REPLICAS
    /// for `acks=all` while the ISR is smaller than `min.insync.replicas`; otherwise appended
    /// ([`Log::append`](crate::Log::append): stamped with the leader epoch). An `acks=all`
    /// batch completes when the high watermark passes it, with a
    /// [`ProduceCompletion`] unless it already has. Errors are the log's.
    pub fn append(&mut self, batch: &[u8], acks: Acks, now: i64) -> Result<ProduceOutcome> {
        if !matches!(self.role, RoleState::Leader(_)) {
            return Ok(ProduceOutcome::Rejected(KafkaCode::NOT_LEADER_OR_FOLLOWER));
        }
        if acks == Acks::All && self.isr().len() < self.config.min_insync_replicas {
            return Ok(ProduceOutcome::Rejected(KafkaCode::NOT_ENOUGH_REPLICAS));
        }
        let info = self.log.append(batch)?;
        let (base_offset, last_offset) = (info.first_offset, info.last_offset);
        if acks != Acks::All {
            self.leader_log_moved(now)?;
            return Ok(ProduceOutcome::Completed {
                base_offset,
                last_offset,
            });
        }
        let id = ProduceId(self.next_produce_id);
        self.next_produce_id += 1;
        let deadline = now.saturating_add(self.config.request_timeout_ms);
        if let Some(l) = self.leader() {
            l.produces.push(PendingProduce {
                id,
                base_offset,
                last_offset,
                deadline,
            });
        }
        self.leader_log_moved(now)?;
        // Completed at once (an ISR of the leader alone): take it back from the outputs.
        let done = self.outputs.iter().position(
            |o| matches!(o, Output::ProduceCompleted(c) if c.id == id && c.error == KafkaCode::NONE),
        );
        if let Some(i) = done {
            self.outputs.remove(i);
            return Ok(ProduceOutcome::Completed {
                base_offset,
                last_offset,
            });
        }
        Ok(ProduceOutcome::Pending {
            id,
            base_offset,
            last_offset,
        })
    }

    /// The leader's log grew: the high watermark may move, held fetches have data.
    fn leader_log_moved(&mut self, now: i64) -> Result<()> {
        self.maybe_advance_high_watermark(now)?;
        self.answer_parked(now, true)
    }

    pub(super) fn leader_on_fetch(&mut self, req: FetchRequest, now: i64) -> Result<()> {
        let Some(l) = self.leader() else {
            return Ok(());
        };
        let epoch = l.epoch;
        let error = if req.current_leader_epoch < epoch {
            Some(KafkaCode::FENCED_LEADER_EPOCH)
        } else if req.current_leader_epoch > epoch {
            Some(KafkaCode::UNKNOWN_LEADER_EPOCH)
        } else if !l.followers.contains_key(&req.replica_id) {
            Some(KafkaCode::NOT_LEADER_OR_FOLLOWER)
        } else {
            None
        };
        if let Some(error) = error {
            let mut answer = self.fetch_answer_header(req.correlation_id);
            answer.error = error;
            self.send(req.replica_id, Message::FetchResponse(answer));
            return Ok(());
        }
        let leo = self.log.log_end_offset();
        let Some(l) = self.leader() else {
            return Ok(());
        };
        let Some(p) = l.followers.get_mut(&req.replica_id) else {
            return Ok(());
        };
        if req.replica_epoch < p.replica_epoch {
            return Ok(()); // an earlier life of the follower, still in flight
        }
        p.replica_epoch = req.replica_epoch;
        // A follower holds one fetch at a time: a newer one replaces a held one.
        l.parked.retain(|h| h.request.replica_id != req.replica_id);

        // Does the follower's log agree with ours up to its fetch offset (KIP-595 style
        // divergence check, Kafka 2.7+)?
        if let Some(last) = req.last_fetched_epoch {
            let diverging = match self.log.end_offset_for_epoch(last) {
                None => Some(EpochEndOffset::UNDEFINED),
                Some((e, end)) if e < last || end < req.fetch_offset => Some(EpochEndOffset {
                    epoch: e,
                    end_offset: end,
                }),
                Some(_) => None,
            };
            if diverging.is_some() {
                let mut answer = self.fetch_answer_header(req.correlation_id);
                answer.diverging_epoch = diverging;
                self.send(req.replica_id, Message::FetchResponse(answer));
                return Ok(());
            }
        }
        if req.fetch_offset > leo || req.fetch_offset < self.log.log_start_offset() {
            let mut answer = self.fetch_answer_header(req.correlation_id);
            answer.error = KafkaCode::OFFSET_OUT_OF_RANGE;
            self.send(req.replica_id, Message::FetchResponse(answer));
            return Ok(());
        }

        // Kafka's `updateFetchState`.
        if let Some(p) = self
            .leader()
            .and_then(|l| l.followers.get_mut(&req.replica_id))
        {
            if req.fetch_offset >= leo {
                p.last_caught_up_ms = p.last_caught_up_ms.max(now);
            } else if req.fetch_offset >= p.leader_end_at_last_fetch {
                p.last_caught_up_ms = p.last_caught_up_ms.max(p.last_fetch_ms);
            }
            p.leader_end_at_last_fetch = leo;
            p.last_fetch_ms = now;
            p.log_end_offset = req.fetch_offset;
        }
        self.maybe_expand_isr(req.replica_id, now);
        self.maybe_advance_high_watermark(now)?;

        let hw = self.log.high_watermark();
        let known_hw = self
            .leader()
            .and_then(|l| l.followers.get(&req.replica_id))
            .map_or(-1, |p| p.high_watermark_sent);
        if req.fetch_offset >= self.log.log_end_offset() && known_hw == hw {
            // Nothing new: hold the fetch (Kafka's DelayedFetch).
            let deadline = now.saturating_add(self.config.replica_fetch_wait_max_ms);
            if let Some(l) = self.leader() {
                l.parked.push(ParkedFetch {
                    request: req,
                    deadline,
                });
            }
            return Ok(());
        }
        self.answer_fetch(&req)
    }

    fn fetch_answer_header(&self, correlation_id: u64) -> FetchResponse {
        FetchResponse {
            correlation_id,
            error: KafkaCode::NONE,
            leader_epoch: self.current_leader_epoch(),
            high_watermark: self.log.high_watermark(),
            log_start_offset: self.log.log_start_offset(),
            log_end_offset: self.log.log_end_offset(),
            diverging_epoch: None,
            records: Vec::new(),
        }
    }

    /// Answers a fetch with the batches from its offset.
    fn answer_fetch(&mut self, req: &FetchRequest) -> Result<()> {
        let mut answer = self.fetch_answer_header(req.correlation_id);
        let max_bytes = req
            .max_bytes
            .min(self.config.replica_fetch_max_bytes)
            .max(1);
        match self.log.read_bytes(req.fetch_offset, max_bytes, None) {
            Ok(records) => answer.records = records,
            Err(e @ Error::OffsetOutOfRange { .. }) => answer.error = e.kafka_code(),
            Err(e) => return Err(e),
        }
        let hw = answer.high_watermark;
        if let Some(p) = self
            .leader()
            .and_then(|l| l.followers.get_mut(&req.replica_id))
        {
            p.high_watermark_sent = hw;
        }
        self.send(req.replica_id, Message::FetchResponse(answer));
        Ok(())
    }

    /// Answers held fetches: all of them when `all` (the log or the high watermark moved),
    /// else those past their deadline.
    fn answer_parked(&mut self, now: i64, all: bool) -> Result<()> {
        let Some(l) = self.leader() else {
            return Ok(());
        };
        let (due, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut l.parked)
            .into_iter()
            .partition(|p| all || p.deadline <= now);
        l.parked = keep;
        for p in due {
            self.answer_fetch(&p.request)?;
        }
        Ok(())
    }

    /// Kafka's `maybeExpandIsr`: a follower outside the ISR joins once it holds everything
    /// below the high watermark and everything of earlier epochs (up to where this epoch
    /// starts).
    fn maybe_expand_isr(&mut self, replica: ReplicaId, now: i64) {
        let maximal = self.maximal_isr();
        let hw = self.log.high_watermark();
        let Some(state) = self.state.clone() else {
            return;
        };
        let Some(l) = self.leader() else {
            return;
        };
        if maximal.contains(&replica) || l.pending_isr.is_some() {
            return;
        }
        let Some(p) = l.followers.get(&replica) else {
            return;
        };
        if p.log_end_offset < hw || p.log_end_offset < l.epoch_start_offset {
            return;
        }
        let mut new_isr = state.isr.clone();
        new_isr.push(replica);
        self.propose_isr(new_isr, now);
    }

    fn propose_isr(&mut self, new_isr: Vec<ReplicaId>, now: i64) {
        let Some(state) = &self.state else {
            return;
        };
        let proposal = AlterPartition {
            leader: self.id,
            leader_epoch: state.leader_epoch,
            partition_epoch: state.partition_epoch,
            new_isr,
        };
        if let Some(l) = self.leader() {
            l.pending_isr = Some((proposal.clone(), now));
        }
        self.outputs.push_back(Output::AlterPartition(proposal));
    }

    /// HW = the smallest log end offset over the maximal ISR (the leader's own counts as
    /// what it has flushed under [`ReplicaDurability::Flushed`]), never backwards, and not
    /// at all while the committed ISR is smaller than `min.insync.replicas` (KIP-966).
    /// Completes the `acks=all` produces it passes and wakes held fetches.
    fn maybe_advance_high_watermark(&mut self, now: i64) -> Result<()> {
        if self.isr().len() < self.config.min_insync_replicas {
            return Ok(());
        }
        let own = match self.config.durability {
            ReplicaDurability::LogEnd => self.log.log_end_offset(),
            ReplicaDurability::Flushed => {
                if self.log.recovery_point() < self.log.log_end_offset() {
                    self.log.flush()?;
                }
                self.log.recovery_point()
            }
        };
        let maximal = self.maximal_isr();
        let id = self.id;
        let Some(l) = self.leader() else {
            return Ok(());
        };
        let mut new_hw = own;
        for r in maximal.iter().filter(|r| **r != id) {
            // A replica in the ISR the leader does not know holds nothing it can count.
            let leo = l.followers.get(r).map_or(-1, |p| p.log_end_offset);
            new_hw = new_hw.min(leo);
        }
        let before = self.log.high_watermark();
        if new_hw <= before {
            return Ok(());
        }
        let hw = self.log.maybe_advance_high_watermark(new_hw)?;
        if hw <= before {
            return Ok(());
        }
        self.complete_produces(hw, now);
        self.answer_parked(now, true)
    }

    fn complete_produces(&mut self, hw: i64, _now: i64) {
        let Some(l) = self.leader() else {
            return;
        };
        let split = l.produces.partition_point(|p| p.last_offset < hw);
        let done: Vec<_> = l.produces.drain(..split).collect();
        for p in done {
            self.outputs
                .push_back(Output::ProduceCompleted(ProduceCompletion {
                    id: p.id,
                    base_offset: p.base_offset,
                    last_offset: p.last_offset,
                    error: KafkaCode::NONE,
                }));
        }
    }

    /// A new state in this leader's epoch: an ISR change was committed (or refused by a
    /// newer one).
    pub(super) fn leader_on_state_update(&mut self, now: i64) -> Result<()> {
        let Some(state) = self.state.clone() else {
            return Ok(());
        };
        let id = self.id;
        if let Some(l) = self.leader() {
            if l.pending_isr
                .as_ref()
                .is_some_and(|(p, _)| p.partition_epoch < state.partition_epoch)
            {
                l.pending_isr = None;
            }
            // Replicas added to the partition get a progress entry.
            for r in state.replicas.iter().filter(|r| **r != id) {
                l.followers.entry(*r).or_insert(Progress {
                    log_end_offset: -1,
                    replica_epoch: -1,
                    last_fetch_ms: 0,
                    last_caught_up_ms: 0,
                    leader_end_at_last_fetch: -1,
                    high_watermark_sent: -1,
                });
            }
        }
        // The ISR fell below min.insync.replicas: the HW cannot pass what waits (KIP-966).
        if state.isr.len() < self.config.min_insync_replicas {
            self.fail_produces(KafkaCode::NOT_ENOUGH_REPLICAS_AFTER_APPEND, |_| true);
        }
        self.maybe_advance_high_watermark(now)
    }

    fn fail_produces(&mut self, error: KafkaCode, which: impl Fn(&PendingProduce) -> bool) {
        let Some(l) = self.leader() else {
            return;
        };
        let (failed, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut l.produces)
            .into_iter()
            .partition(|p| which(p));
        l.produces = keep;
        for p in failed {
            self.outputs
                .push_back(Output::ProduceCompleted(ProduceCompletion {
                    id: p.id,
                    base_offset: p.base_offset,
                    last_offset: p.last_offset,
                    error,
                }));
        }
    }

    pub(super) fn leader_tick(&mut self, now: i64) -> Result<()> {
        let leo = self.log.log_end_offset();
        let isr = self.isr();
        let lag = self.config.replica_lag_time_max_ms;
        let retry = self.config.replica_socket_timeout_ms;
        let min_isr = self.config.min_insync_replicas;
        let id = self.id;
        let Some(l) = self.leader() else {
            return Ok(());
        };
        // Kafka's `maybeShrinkIsr`: members not caught up within replica.lag.time.max.ms.
        let mut resend = None;
        match &l.pending_isr {
            Some((p, sent)) if now.saturating_sub(*sent) >= retry => resend = Some(p.clone()),
            Some(_) => {}
            None => {
                let out_of_sync: Vec<ReplicaId> = isr
                    .iter()
                    .copied()
                    .filter(|r| *r != id)
                    .filter(|r| {
                        l.followers.get(r).is_none_or(|p| {
                            p.log_end_offset != leo && now.saturating_sub(p.last_caught_up_ms) > lag
                        })
                    })
                    .collect();
                if !out_of_sync.is_empty() {
                    let new_isr = isr.iter().copied().filter(|r| !out_of_sync.contains(r));
                    let new_isr = new_isr.collect();
                    self.propose_isr(new_isr, now);
                }
            }
        }
        if let Some(p) = resend {
            if let Some(l) = self.leader() {
                l.pending_isr = Some((p.clone(), now));
            }
            self.outputs.push_back(Output::AlterPartition(p));
        }
        // acks=all produces past request.timeout.ms.
        let error = if isr.len() < min_isr {
            KafkaCode::NOT_ENOUGH_REPLICAS_AFTER_APPEND
        } else {
            KafkaCode::REQUEST_TIMED_OUT
        };
        self.fail_produces(error, |p| p.deadline <= now);
        self.answer_parked(now, false)
    }

    /// OffsetsForLeaderEpoch: where `leader_epoch` ends in this (leading) replica's log.
    pub(super) fn answer_offsets_for_leader_epoch(
        &self,
        req: &OffsetsForLeaderEpochRequest,
    ) -> OffsetsForLeaderEpochResponse {
        let epoch = self.current_leader_epoch();
        let error = if !matches!(self.role, RoleState::Leader(_)) {
            KafkaCode::NOT_LEADER_OR_FOLLOWER
        } else if req.current_leader_epoch < epoch {
            KafkaCode::FENCED_LEADER_EPOCH
        } else if req.current_leader_epoch > epoch {
            KafkaCode::UNKNOWN_LEADER_EPOCH
        } else {
            KafkaCode::NONE
        };
        let end_offset = if error == KafkaCode::NONE {
            self.log
                .end_offset_for_epoch(req.leader_epoch)
                .map_or(EpochEndOffset::UNDEFINED, |(epoch, end_offset)| {
                    EpochEndOffset { epoch, end_offset }
                })
        } else {
            EpochEndOffset::UNDEFINED
        };
        OffsetsForLeaderEpochResponse {
            correlation_id: req.correlation_id,
            error,
            end_offset,
        }
    }
}
