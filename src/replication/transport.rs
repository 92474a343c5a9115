//! The two traits an application implements to run replicas: how messages reach other
//! replicas, and how ISR proposals reach the controller. Both only hand things over; what
//! arrives goes back in through [`Replica::on_message`](super::Replica::on_message) and
//! [`Replica::on_partition_state`](super::Replica::on_partition_state).

use super::{AlterPartition, Envelope};

/// Carries messages between replicas (TCP, an RPC framework, a channel, a simulator). It
/// may lose, delay, duplicate and reorder them: replicas resend fetches that go unanswered
/// and ignore answers they are not waiting for.
pub trait Transport {
    /// Sends `envelope` to `envelope.to`. Never blocks on the receiver.
    fn send(&mut self, envelope: Envelope);
}

/// The partition's controller (Kafka's KRaft controller, or the application's own): it
/// decides ISR changes and leaders and tells every replica the resulting
/// [`PartitionState`](super::PartitionState).
pub trait Controller {
    /// The leader proposes a new ISR (Kafka's AlterPartition). The controller applies it
    /// (for instance with [`PartitionState::apply_alter_partition`](super::PartitionState::apply_alter_partition))
    /// and sends the new state to the replicas, or answers the leader with an error
    /// ([`Replica::on_alter_partition_error`](super::Replica::on_alter_partition_error)).
    fn alter_partition(&mut self, request: AlterPartition);
}

impl<T: Transport + ?Sized> Transport for &mut T {
    fn send(&mut self, envelope: Envelope) {
        (**self).send(envelope)
    }
}

impl<C: Controller + ?Sized> Controller for &mut C {
    fn alter_partition(&mut self, request: AlterPartition) {
        (**self).alter_partition(request)
    }
}
