//! An in-memory transport and controller: replicas in one process (tests, the simulation,
//! examples). Deterministic: messages wait in one queue in the order sent, and the caller
//! decides when (and whether) each is delivered.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex;

use super::{AlterPartition, Controller, Envelope, PartitionState, ReplicaId, Transport};
use crate::KafkaCode;

#[derive(Debug, Default)]
struct NetworkState {
    queue: VecDeque<Envelope>,
    /// Directed links that drop what is sent over them.
    cut: BTreeSet<(ReplicaId, ReplicaId)>,
}

/// Messages in flight between replicas, in one queue. Cloning shares the queue.
#[derive(Debug, Clone, Default)]
pub struct InMemoryNetwork {
    state: Arc<Mutex<NetworkState>>,
}

/// A [`Transport`] onto an [`InMemoryNetwork`].
#[derive(Debug, Clone)]
pub struct InMemoryTransport {
    network: InMemoryNetwork,
}

impl InMemoryNetwork {
    /// An empty network with every link up.
    pub fn new() -> Self {
        Self::default()
    }

    /// A transport that sends onto this network.
    pub fn transport(&self) -> InMemoryTransport {
        InMemoryTransport {
            network: self.clone(),
        }
    }

    /// Takes the oldest message in flight.
    pub fn deliver_next(&self) -> Option<Envelope> {
        self.state.lock().queue.pop_front()
    }

    /// Takes the message at `index` in the queue (0 is the oldest): a simulator delivers
    /// out of order with it.
    pub fn take(&self, index: usize) -> Option<Envelope> {
        self.state.lock().queue.remove(index)
    }

    /// How many messages are in flight.
    pub fn in_flight(&self) -> usize {
        self.state.lock().queue.len()
    }

    /// Drops every message in flight to or from `replica` (it crashed).
    pub fn drop_messages_of(&self, replica: ReplicaId) {
        self.state
            .lock()
            .queue
            .retain(|e| e.from != replica && e.to != replica);
    }

    /// Cuts (or restores) both directions between `a` and `b`: messages sent over a cut
    /// link are dropped.
    pub fn set_link(&self, a: ReplicaId, b: ReplicaId, up: bool) {
        let mut st = self.state.lock();
        for link in [(a, b), (b, a)] {
            if up {
                st.cut.remove(&link);
            } else {
                st.cut.insert(link);
            }
        }
    }

    /// Restores every link.
    pub fn heal(&self) {
        self.state.lock().cut.clear();
    }
}

impl Transport for InMemoryTransport {
    fn send(&mut self, envelope: Envelope) {
        let mut st = self.network.state.lock();
        if !st.cut.contains(&(envelope.from, envelope.to)) {
            st.queue.push_back(envelope);
        }
    }
}

/// A controller of one partition in memory: it queues the leader's proposals and applies
/// them when asked, elects leaders with [`PartitionState`]'s rules, and hands back each new
/// state for the caller to give every replica.
#[derive(Debug, Clone)]
pub struct InMemoryController {
    state: PartitionState,
    min_insync_replicas: usize,
    unclean_leader_election_enable: bool,
    proposals: Vec<AlterPartition>,
    rejected: Vec<(ReplicaId, KafkaCode)>,
}

impl InMemoryController {
    /// A controller of a new partition on `replicas` ([`PartitionState::new`]).
    pub fn new(
        replicas: Vec<ReplicaId>,
        min_insync_replicas: usize,
        unclean_leader_election_enable: bool,
    ) -> Self {
        InMemoryController {
            state: PartitionState::new(replicas),
            min_insync_replicas,
            unclean_leader_election_enable,
            proposals: Vec::new(),
            rejected: Vec::new(),
        }
    }

    /// The current state.
    pub fn state(&self) -> &PartitionState {
        &self.state
    }

    /// The state, to change by hand (a simulator's elections and fencing).
    pub fn state_mut(&mut self) -> &mut PartitionState {
        &mut self.state
    }

    /// Applies the queued proposals in order; returns the new state after each one
    /// accepted. Refused ones are kept for [`take_rejections`](Self::take_rejections).
    pub fn apply_pending(&mut self) -> Vec<PartitionState> {
        let mut states = Vec::new();
        for p in std::mem::take(&mut self.proposals) {
            match self
                .state
                .apply_alter_partition(&p, self.min_insync_replicas)
            {
                Ok(()) => states.push(self.state.clone()),
                Err(code) => self.rejected.push((p.leader, code)),
            }
        }
        states
    }

    /// The proposals refused since the last call: (the proposer, the error).
    pub fn take_rejections(&mut self) -> Vec<(ReplicaId, KafkaCode)> {
        std::mem::take(&mut self.rejected)
    }

    /// A replica's broker went away ([`PartitionState::fence_replica`]); returns the new
    /// state.
    pub fn fence_replica(
        &mut self,
        replica: ReplicaId,
        alive: impl Fn(ReplicaId) -> bool,
    ) -> PartitionState {
        self.state.fence_replica(
            replica,
            self.min_insync_replicas,
            alive,
            self.unclean_leader_election_enable,
        );
        self.state.clone()
    }

    /// Elects a leader ([`PartitionState::elect_leader`]); returns the new state.
    pub fn elect_leader(
        &mut self,
        alive: impl Fn(ReplicaId) -> bool,
    ) -> Result<PartitionState, KafkaCode> {
        self.state
            .elect_leader(alive, self.unclean_leader_election_enable)?;
        Ok(self.state.clone())
    }
}

impl Controller for InMemoryController {
    fn alter_partition(&mut self, request: AlterPartition) {
        self.proposals.push(request);
    }
}
