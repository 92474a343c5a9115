//! What a source is to the agent: something that reads records from outside, hands them to
//! a sink, and can say at any moment where it stands (its position), so the agent can commit
//! that position in the same transaction as the records.

use std::collections::BTreeMap;
use std::sync::mpsc::Sender;
use std::time::Instant;

use super::error::Result;
use crate::record::Header;

/// Where a source's records go: the agent's transactional producer for that source.
///
/// A record handed to `send` belongs to the transaction that the next commit closes; the
/// position the source reports at that commit must cover it.
pub trait RecordSink {
    /// Queues one record for the source's topic (`key` chooses the partition with Kafka's
    /// partitioner; `None` is keyless). May block while the log is slow (back-pressure).
    fn send(
        &mut self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[Header<'_>],
    ) -> Result<()>;
}

/// A change to a source's committed positions: the key within the source, and the new value
/// (`None` deletes it, a tombstone in the positions topic).
pub type PositionUpdate = (Vec<u8>, Option<Vec<u8>>);

/// What a poll found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Poll {
    /// Records were sent or state changed; poll again soon.
    Progress,
    /// Nothing new: the agent commits what is pending and waits.
    Idle,
    /// Nothing to read yet, but the source is not caught up (a replication stream behind
    /// the server's WAL): the agent waits as for `Idle`, without counting the source as
    /// caught up ([`RunningAgent::is_idle`](crate::ingest::RunningAgent::is_idle)).
    Waiting,
}

/// A source of records, driven by the agent on a thread of its own.
///
/// The contract that makes delivery exactly once: after [`restore`](Source::restore) with
/// the positions of the last committed transaction, the source hands out exactly the records
/// that follow them; [`take_positions`](Source::take_positions) at any moment returns the
/// changes that make the committed positions cover every record handed out so far, and no
/// more. If a commit fails the agent drops the source and builds it again from the last
/// committed positions.
pub trait Source: Send {
    /// The source's name (unique in the agent; the prefix of its positions and its
    /// transactional id).
    fn name(&self) -> &str;

    /// The topic its records go to.
    fn topic(&self) -> &str;

    /// Called once, before the first poll, with the source's committed positions.
    fn restore(&mut self, committed: &BTreeMap<Vec<u8>, Vec<u8>>) -> Result<()>;

    /// Reads what is available and hands it to `sink`, returning by about `deadline` (the
    /// agent's next commit).
    fn poll(&mut self, sink: &mut dyn RecordSink, deadline: Instant) -> Result<Poll>;

    /// The position changes since the last call, covering every record sent so far.
    fn take_positions(&mut self) -> Vec<PositionUpdate>;

    /// Called after the transaction holding the last positions committed (a database source
    /// confirms its slot here, never before).
    fn committed(&mut self) -> Result<()> {
        Ok(())
    }

    /// When the source wants its next poll though nothing woke it, asked after a poll that
    /// found nothing: its own poll or refresh interval, a partial line's idle timeout, a
    /// heartbeat. `None`: only when woken (its waker, a commit, shutdown).
    ///
    /// The agent waits for whichever comes first of this instant, the source's waker, the
    /// linger deadline of a pending transaction, the commit interval and shutdown; there is
    /// no other timer, so a source with nothing to read costs nothing between its wakes.
    fn next_poll(&self) -> Option<Instant>;

    /// The sender that wakes the agent's wait for this source (a file watcher's events, a
    /// database's notification): a `send` makes the agent poll the source again at once.
    fn set_waker(&mut self, _wake: Sender<()>) {}
}
