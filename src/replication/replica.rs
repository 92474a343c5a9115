//! One replica of a partition: the role it plays in the current [`PartitionState`], the
//! inputs it takes and the [`Output`]s it queues.

use std::collections::VecDeque;
use std::sync::Arc;

use super::follower::FollowerState;
use super::leader::LeaderState;
use super::{
    Controller, Envelope, FetchResponse, Message, Output, PartitionState, ReplicaId,
    ReplicationConfig, Transport, NO_LEADER,
};
use crate::config::HighWatermarkPolicy;
use crate::error::{Error, Result};
use crate::{KafkaCode, Log};

/// The part a replica plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Not told its partition state yet, or the partition has no leader.
    None,
    /// The leader of `leader_epoch`.
    Leader {
        /// The epoch.
        leader_epoch: i32,
    },
    /// A follower of `leader` in `leader_epoch`.
    Follower {
        /// The leader it fetches from.
        leader: ReplicaId,
        /// The epoch.
        leader_epoch: i32,
    },
}

pub(super) enum RoleState {
    None,
    Leader(LeaderState),
    Follower(FollowerState),
}

/// One replica of a partition, over its [`Log`]: a leader or a follower as the partition
/// state says. Sans-IO apart from its log: the application feeds it messages
/// ([`on_message`](Self::on_message)), partition states from the controller
/// ([`on_partition_state`](Self::on_partition_state)), producers' batches
/// ([`append`](Self::append)) and the time ([`tick`](Self::tick)), and carries out its
/// [`Output`]s ([`dispatch`](Self::dispatch) or [`poll_output`](Self::poll_output)).
/// Times are milliseconds on any clock that does not go backwards.
pub struct Replica {
    pub(super) id: ReplicaId,
    pub(super) replica_epoch: i64,
    pub(super) log: Arc<Log>,
    pub(super) config: ReplicationConfig,
    pub(super) state: Option<PartitionState>,
    pub(super) role: RoleState,
    pub(super) outputs: VecDeque<Output>,
    pub(super) next_correlation_id: u64,
    pub(super) next_produce_id: u64,
}

impl std::fmt::Debug for Replica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replica")
            .field("id", &self.id)
            .field("role", &self.role())
            .field("log_end_offset", &self.log.log_end_offset())
            .field("high_watermark", &self.log.high_watermark())
            .finish_non_exhaustive()
    }
}

impl Replica {
    /// Replica `id` (its broker id) over `log`, in incarnation `replica_epoch` (Kafka's broker
    /// epoch: it must grow with every restart of the replica, so that the leader tells this
    /// life's fetches from an earlier one's). The log must be opened under
    /// [`HighWatermarkPolicy::Replicated`] (else [`Error::ReplicaNeedsReplicatedPolicy`]). The replica
    /// does nothing until it is told its [`PartitionState`].
    pub fn new(
        id: ReplicaId,
        replica_epoch: i64,
        log: Arc<Log>,
        config: ReplicationConfig,
        _now: i64,
    ) -> Result<Replica> {
        if log.config().high_watermark_policy != HighWatermarkPolicy::Replicated {
            return Err(Error::ReplicaNeedsReplicatedPolicy {
                found: log.config().high_watermark_policy,
            });
        }
        if id < 0 {
            return Err(Error::NegativeReplicaId { replica_id: id });
        }
        Ok(Replica {
            id,
            replica_epoch,
            log,
            config,
            state: None,
            role: RoleState::None,
            outputs: VecDeque::new(),
            // Correlation ids of different incarnations never meet.
            next_correlation_id: (replica_epoch.max(0) as u64) << 32,
            next_produce_id: 0,
        })
    }

    /// This replica's id.
    pub fn id(&self) -> ReplicaId {
        self.id
    }

    /// Its log.
    pub fn log(&self) -> &Arc<Log> {
        &self.log
    }

    /// Gives back its log (to close it, or to abandon it as a crash would in a test).
    pub fn into_log(self) -> Arc<Log> {
        self.log
    }

    /// Its settings.
    pub fn config(&self) -> &ReplicationConfig {
        &self.config
    }

    /// The latest partition state it was told.
    pub fn partition_state(&self) -> Option<&PartitionState> {
        self.state.as_ref()
    }

    /// The part it plays now.
    pub fn role(&self) -> Role {
        match &self.role {
            RoleState::None => Role::None,
            RoleState::Leader(l) => Role::Leader {
                leader_epoch: l.epoch,
            },
            RoleState::Follower(f) => Role::Follower {
                leader: f.leader,
                leader_epoch: f.epoch,
            },
        }
    }

    /// The controller's partition state (after an election, an accepted ISR change, or at
    /// start). States older than the latest one seen (by leader epoch, then partition
    /// epoch) are ignored. Becoming leader stamps the new epoch on the log
    /// ([`Log::set_leader_epoch`], which records where it starts); becoming follower starts
    /// fetching; losing leadership fails the `acks=all` produces still waiting.
    pub fn on_partition_state(&mut self, state: PartitionState, now: i64) -> Result<()> {
        if let Some(cur) = &self.state {
            if (state.leader_epoch, state.partition_epoch)
                <= (cur.leader_epoch, cur.partition_epoch)
            {
                return Ok(());
            }
        }
        let new_epoch = self
            .state
            .as_ref()
            .is_none_or(|cur| cur.leader_epoch != state.leader_epoch);
        let leader = state.leader;
        let epoch = state.leader_epoch;
        let member = state.replicas.contains(&self.id);
        self.state = Some(state);
        if leader == self.id && member {
            if new_epoch || !matches!(self.role, RoleState::Leader(_)) {
                self.resign(now);
                self.become_leader(epoch, now)?;
            } else {
                self.leader_on_state_update(now)?;
            }
        } else if leader != NO_LEADER && member {
            let same = matches!(&self.role, RoleState::Follower(f) if f.leader == leader && f.epoch == epoch);
            if !same {
                self.resign(now);
                self.role = RoleState::Follower(FollowerState::new(leader, epoch, now));
                self.follower_tick(now)?;
            }
        } else {
            self.resign(now);
        }
        Ok(())
    }

    /// The controller refused this replica's ISR proposal (FENCED_LEADER_EPOCH,
    /// INVALID_UPDATE_VERSION, INELIGIBLE_REPLICA): the proposal is dropped, and a later
    /// tick proposes again if it still holds.
    pub fn on_alter_partition_error(&mut self, _error: KafkaCode, _now: i64) {
        if let RoleState::Leader(l) = &mut self.role {
            l.pending_isr = None;
        }
    }

    /// A message from replica `from`. Answers to requests this replica is not waiting for
    /// (late, duplicated, from an earlier epoch) are ignored.
    pub fn on_message(&mut self, from: ReplicaId, message: Message, now: i64) -> Result<()> {
        match message {
            Message::Fetch(req) => {
                if matches!(self.role, RoleState::Leader(_)) {
                    self.leader_on_fetch(req, now)
                } else {
                    let answer = self.not_leader_fetch_answer(req.correlation_id);
                    self.send(from, Message::FetchResponse(answer));
                    Ok(())
                }
            }
            Message::FetchResponse(resp) => self.follower_on_fetch_response(from, resp, now),
            Message::OffsetsForLeaderEpoch(req) => {
                let answer = self.answer_offsets_for_leader_epoch(&req);
                self.send(from, Message::OffsetsForLeaderEpochResponse(answer));
                Ok(())
            }
            // This replica's follower truncates on the Fetch answer's diverging epoch and
            // asks no epochs; an answer is never awaited.
            Message::OffsetsForLeaderEpochResponse(_) => Ok(()),
        }
    }

    /// Moves time to `now`: a follower fetches (again, if its fetch went unanswered); a
    /// leader shrinks the ISR, answers fetches it held long enough, repeats an unanswered
    /// ISR proposal and times out `acks=all` produces.
    pub fn tick(&mut self, now: i64) -> Result<()> {
        match self.role {
            RoleState::None => Ok(()),
            RoleState::Leader(_) => self.leader_tick(now),
            RoleState::Follower(_) => self.follower_tick(now),
        }
    }

    /// The next output, oldest first.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// Sends the queued messages through `transport` and the ISR proposals to `controller`;
    /// returns the other outputs (produce completions, reports), oldest first.
    pub fn dispatch(
        &mut self,
        mut transport: impl Transport,
        mut controller: impl Controller,
    ) -> Vec<Output> {
        let mut rest = Vec::new();
        while let Some(out) = self.outputs.pop_front() {
            match out {
                Output::Send(envelope) => transport.send(envelope),
                Output::AlterPartition(request) => controller.alter_partition(request),
                other => rest.push(other),
            }
        }
        rest
    }

    pub(super) fn send(&mut self, to: ReplicaId, message: Message) {
        self.outputs.push_back(Output::Send(Envelope {
            from: self.id,
            to,
            message,
        }));
    }

    pub(super) fn current_leader_epoch(&self) -> i32 {
        self.state.as_ref().map_or(-1, |s| s.leader_epoch)
    }

    pub(super) fn not_leader_fetch_answer(&self, correlation_id: u64) -> FetchResponse {
        FetchResponse {
            correlation_id,
            error: KafkaCode::NOT_LEADER_OR_FOLLOWER,
            leader_epoch: self.current_leader_epoch(),
            high_watermark: -1,
            log_start_offset: -1,
            log_end_offset: -1,
            diverging_epoch: None,
            records: Vec::new(),
        }
    }

    /// Leaves the current role: a leader fails its waiting produces and held fetches.
    fn resign(&mut self, _now: i64) {
        let role = std::mem::replace(&mut self.role, RoleState::None);
        if let RoleState::Leader(leader) = role {
            for p in leader.produces {
                self.outputs
                    .push_back(Output::ProduceCompleted(super::ProduceCompletion {
                        id: p.id,
                        base_offset: p.base_offset,
                        last_offset: p.last_offset,
                        error: KafkaCode::NOT_LEADER_OR_FOLLOWER,
                    }));
            }
            for parked in leader.parked {
                let answer = self.not_leader_fetch_answer(parked.request.correlation_id);
                self.send(parked.request.replica_id, Message::FetchResponse(answer));
            }
        }
    }
}
