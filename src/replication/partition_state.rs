//! A partition's replication state as the controller keeps it (Kafka's `PartitionRegistration`:
//! replicas, ISR, eligible leader replicas, leader, leader epoch, partition epoch), and the
//! controller's rules for changing it: an ISR proposal (AlterPartition) and a leader election.
//! Pure functions of the state, so any controller — a test's, a Raft-replicated one — applies
//! them the same way.

use super::{ReplicaId, NO_LEADER};
use crate::KafkaCode;

/// Who leads a partition, in which epoch, and who is in sync.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PartitionState {
    /// The leader's id, or [`NO_LEADER`].
    pub leader: ReplicaId,
    /// Grows with every new leader.
    pub leader_epoch: i32,
    /// Grows with every change of this state (Kafka's partition epoch); an AlterPartition
    /// must name the current one.
    pub partition_epoch: i32,
    /// Every replica, in preference order.
    pub replicas: Vec<ReplicaId>,
    /// The in-sync replicas: they hold everything below the high watermark.
    pub isr: Vec<ReplicaId>,
    /// Eligible leader replicas (KIP-966): replicas that left the ISR while it was smaller
    /// than `min.insync.replicas` (so the high watermark could not move without them) and
    /// still hold everything committed; a leader may be elected from them when no ISR member
    /// is alive.
    pub elr: Vec<ReplicaId>,
}

/// An ISR proposal from the leader (Kafka's AlterPartition request).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AlterPartition {
    /// The proposing leader.
    pub leader: ReplicaId,
    /// Its leader epoch.
    pub leader_epoch: i32,
    /// The partition epoch the proposal is based on.
    pub partition_epoch: i32,
    /// The ISR proposed.
    pub new_isr: Vec<ReplicaId>,
}

/// The result of [`PartitionState::elect_leader`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Election {
    /// The new leader.
    pub leader: ReplicaId,
    /// It came from neither the ISR nor the ELR (`unclean.leader.election.enable`):
    /// committed records it lacks are lost; followers report what they give up
    /// ([`Output::UncleanTruncation`](super::Output::UncleanTruncation)).
    pub unclean: bool,
}

impl PartitionState {
    /// A new partition on `replicas`, led by the first one, every replica in sync, epoch 0.
    pub fn new(replicas: Vec<ReplicaId>) -> Self {
        PartitionState {
            leader: replicas.first().copied().unwrap_or(NO_LEADER),
            leader_epoch: 0,
            partition_epoch: 0,
            isr: replicas.clone(),
            replicas,
            elr: Vec::new(),
        }
    }

    /// Applies an AlterPartition as Kafka's controller does: the proposer must be the
    /// current leader in the current leader epoch (else FENCED_LEADER_EPOCH), name the
    /// current partition epoch (else INVALID_UPDATE_VERSION), and propose an ISR of
    /// replicas that includes itself (else INELIGIBLE_REPLICA). Replicas leaving an ISR
    /// smaller than `min_insync_replicas` become eligible leader replicas; members of an
    /// ISR at least that large need none.
    pub fn apply_alter_partition(
        &mut self,
        request: &AlterPartition,
        min_insync_replicas: usize,
    ) -> Result<(), KafkaCode> {
        if request.leader != self.leader || request.leader_epoch != self.leader_epoch {
            return Err(KafkaCode::FENCED_LEADER_EPOCH);
        }
        if request.partition_epoch != self.partition_epoch {
            return Err(KafkaCode::INVALID_UPDATE_VERSION);
        }
        let mut isr: Vec<ReplicaId> = Vec::new();
        for r in &request.new_isr {
            if !self.replicas.contains(r) {
                return Err(KafkaCode::INELIGIBLE_REPLICA);
            }
            if !isr.contains(r) {
                isr.push(*r);
            }
        }
        if !isr.contains(&self.leader) {
            return Err(KafkaCode::INELIGIBLE_REPLICA);
        }
        self.set_isr(isr, min_insync_replicas);
        self.partition_epoch += 1;
        Ok(())
    }

    /// The ISR becomes `isr`, with KIP-966's rules for the ELR.
    fn set_isr(&mut self, isr: Vec<ReplicaId>, min_insync_replicas: usize) {
        if isr.len() >= min_insync_replicas {
            self.elr.clear();
        } else {
            for r in &self.isr {
                if !isr.contains(r) && !self.elr.contains(r) {
                    self.elr.push(*r);
                }
            }
            self.elr.retain(|r| !isr.contains(r));
        }
        self.isr = isr;
    }

    /// A replica's broker went away (Kafka fences a broker whose heartbeats stop): it leaves
    /// the ISR unless it is the last member (Kafka keeps the last one, so the partition
    /// knows who holds its data), and a leader is elected when it led. The partition epoch
    /// grows when anything changed.
    pub fn fence_replica(
        &mut self,
        replica: ReplicaId,
        min_insync_replicas: usize,
        alive: impl Fn(ReplicaId) -> bool,
        unclean_leader_election_enable: bool,
    ) -> Option<Election> {
        let before = self.clone();
        if self.isr.contains(&replica) && self.isr.len() > 1 {
            let isr = self.isr.iter().copied().filter(|r| *r != replica).collect();
            self.set_isr(isr, min_insync_replicas);
        }
        let election = if self.leader == replica || self.leader == NO_LEADER {
            self.elect_leader(alive, unclean_leader_election_enable)
                .ok()
        } else {
            None
        };
        if *self != before && election.is_none() {
            self.partition_epoch += 1;
        }
        election
    }

    /// A replica came back after an unclean shutdown (it may have lost data that was not
    /// flushed): it is no longer an eligible leader replica (KIP-966).
    pub fn unclean_shutdown(&mut self, replica: ReplicaId) {
        if self.elr.contains(&replica) {
            self.elr.retain(|r| *r != replica);
            self.partition_epoch += 1;
        }
    }

    /// Elects a leader among the replicas for which `alive` holds: the first ISR member in
    /// preference order; else the first eligible leader replica (which becomes the ISR);
    /// else, only with `unclean_leader_election_enable`, any replica (the ISR becomes just
    /// it, and the election says it was unclean). The leader epoch and partition epoch grow.
    /// With nobody to elect the partition is left without a leader and the answer is
    /// ELIGIBLE_LEADERS_NOT_AVAILABLE.
    pub fn elect_leader(
        &mut self,
        alive: impl Fn(ReplicaId) -> bool,
        unclean_leader_election_enable: bool,
    ) -> Result<Election, KafkaCode> {
        let in_order = |set: &[ReplicaId]| {
            self.replicas
                .iter()
                .copied()
                .find(|r| set.contains(r) && alive(*r))
        };
        let election = if let Some(leader) = in_order(&self.isr) {
            Election {
                leader,
                unclean: false,
            }
        } else if let Some(leader) = in_order(&self.elr) {
            self.elr.retain(|r| *r != leader);
            self.isr = vec![leader];
            Election {
                leader,
                unclean: false,
            }
        } else if let Some(leader) = unclean_leader_election_enable
            .then(|| in_order(&self.replicas))
            .flatten()
        {
            self.isr = vec![leader];
            self.elr.clear();
            Election {
                leader,
                unclean: true,
            }
        } else {
            if self.leader != NO_LEADER {
                self.leader = NO_LEADER;
                self.partition_epoch += 1;
            }
            return Err(KafkaCode::ELIGIBLE_LEADERS_NOT_AVAILABLE);
        };
        self.leader = election.leader;
        self.leader_epoch += 1;
        self.partition_epoch += 1;
        Ok(election)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proposal(s: &PartitionState, isr: &[ReplicaId]) -> AlterPartition {
        AlterPartition {
            leader: s.leader,
            leader_epoch: s.leader_epoch,
            partition_epoch: s.partition_epoch,
            new_isr: isr.to_vec(),
        }
    }

    #[test]
    fn alter_partition_checks_leader_and_version() {
        let mut s = PartitionState::new(vec![1, 2, 3]);
        let mut stale = proposal(&s, &[1, 2]);
        stale.leader_epoch = -1;
        assert_eq!(
            s.apply_alter_partition(&stale, 2),
            Err(KafkaCode::FENCED_LEADER_EPOCH)
        );
        let mut old = proposal(&s, &[1, 2]);
        old.partition_epoch = 7;
        assert_eq!(
            s.apply_alter_partition(&old, 2),
            Err(KafkaCode::INVALID_UPDATE_VERSION)
        );
        assert_eq!(
            s.apply_alter_partition(&proposal(&s, &[2, 3]), 2),
            Err(KafkaCode::INELIGIBLE_REPLICA)
        );
        assert_eq!(
            s.apply_alter_partition(&proposal(&s, &[1, 4]), 2),
            Err(KafkaCode::INELIGIBLE_REPLICA)
        );
        s.apply_alter_partition(&proposal(&s, &[1, 2]), 2).unwrap();
        assert_eq!((s.isr.clone(), s.partition_epoch), (vec![1, 2], 1));
        assert!(s.elr.is_empty());
    }

    #[test]
    fn replicas_leaving_an_isr_below_min_become_eligible() {
        let mut s = PartitionState::new(vec![1, 2, 3]);
        s.apply_alter_partition(&proposal(&s, &[1, 2]), 2).unwrap();
        s.apply_alter_partition(&proposal(&s, &[1]), 2).unwrap();
        assert_eq!(s.elr, vec![2]);
        // The leader dies: the ISR keeps its last member, and the ELR member is elected.
        let e = s.fence_replica(1, 2, |r| r != 1, false).unwrap();
        assert_eq!(
            e,
            Election {
                leader: 2,
                unclean: false
            }
        );
        assert_eq!((s.isr.clone(), s.leader_epoch), (vec![2], 1));
        assert!(s.elr.is_empty());
    }

    #[test]
    fn unclean_election_only_when_enabled() {
        let mut s = PartitionState::new(vec![1, 2, 3]);
        s.apply_alter_partition(&proposal(&s, &[1]), 1).unwrap();
        assert!(s.elr.is_empty(), "ISR at min: no ELR");
        let mut clean = s.clone();
        assert_eq!(
            clean.elect_leader(|r| r == 3, false),
            Err(KafkaCode::ELIGIBLE_LEADERS_NOT_AVAILABLE)
        );
        assert_eq!(clean.leader, NO_LEADER);
        let e = s.elect_leader(|r| r == 3, true).unwrap();
        assert_eq!(
            e,
            Election {
                leader: 3,
                unclean: true
            }
        );
        assert_eq!(s.isr, vec![3]);
    }

    #[test]
    fn unclean_shutdown_leaves_the_elr() {
        let mut s = PartitionState::new(vec![1, 2]);
        s.apply_alter_partition(&proposal(&s, &[1]), 2).unwrap();
        assert_eq!(s.elr, vec![2]);
        s.unclean_shutdown(2);
        assert!(s.elr.is_empty());
    }
}
