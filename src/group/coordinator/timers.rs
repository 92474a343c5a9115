//! The coordinator's timers: one ordered queue of deadlines. Entries are never removed
//! early; each names what it watches, and a fired entry that no longer matches the state
//! (the member heartbeated, the rebalance completed) is ignored. A member's session timer is
//! re-armed only when it fires, so a heartbeat costs no queue operation.

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum TimerKind {
    /// A member's session (or a new member's join) deadline.
    Heartbeat(String),
    /// A member id handed out with `MEMBER_ID_REQUIRED` and not used yet.
    PendingMember(String),
    /// The join phase of a rebalance.
    Join,
    /// Members that did not send SyncGroup after the join.
    Sync,
    /// The periodic offset expiration.
    Retention,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Timer {
    pub(super) group: String,
    pub(super) kind: TimerKind,
}

#[derive(Debug, Default)]
pub(super) struct Timers {
    queue: BTreeMap<(i64, u64), Timer>,
    seq: u64,
}

impl Timers {
    pub(super) fn schedule(&mut self, at: i64, group: &str, kind: TimerKind) {
        self.seq += 1;
        self.queue.insert(
            (at, self.seq),
            Timer {
                group: group.to_owned(),
                kind,
            },
        );
    }

    pub(super) fn next(&self) -> Option<i64> {
        self.queue.keys().next().map(|&(at, _)| at)
    }

    pub(super) fn pop_due(&mut self, now: i64) -> Option<(i64, Timer)> {
        let (&(at, _), _) = self.queue.iter().next()?;
        if at > now {
            return None;
        }
        self.queue.pop_first().map(|((at, _), timer)| (at, timer))
    }
}
