//! The follower's half (Kafka's `ReplicaFetcherThread` and `AbstractFetcherThread` for one
//! partition): fetch from the log end with the last fetched epoch, truncate where the
//! leader says the logs diverge (never below the high watermark), append the leader's
//! batches as they are, follow the leader's high watermark.

use super::replica::{Replica, RoleState};
use super::{
    EpochEndOffset, FetchRequest, FetchResponse, Message, Output, ReplicaDurability, ReplicaId,
};
use crate::error::Result;
use crate::KafkaCode;

pub(super) struct FollowerState {
    pub(super) leader: ReplicaId,
    pub(super) epoch: i32,
    /// The fetch sent and not answered: its correlation id, offset and when it was sent.
    in_flight: Option<(u64, i64, i64)>,
    next_fetch_at: i64,
}

impl FollowerState {
    pub(super) fn new(leader: ReplicaId, epoch: i32, now: i64) -> Self {
        FollowerState {
            leader,
            epoch,
            in_flight: None,
            next_fetch_at: now,
        }
    }
}

impl Replica {
    fn follower(&mut self) -> Option<&mut FollowerState> {
        match &mut self.role {
            RoleState::Follower(f) => Some(f),
            _ => None,
        }
    }

    /// What this replica holds for the leader to count: under
    /// [`ReplicaDurability::Flushed`] it flushes first, so it never reports what a power
    /// loss could take back.
    fn durable_end(&self) -> Result<i64> {
        if self.config.durability == ReplicaDurability::Flushed
            && self.log.recovery_point() < self.log.log_end_offset()
        {
            self.log.flush()?;
        }
        Ok(self.log.log_end_offset())
    }

    /// The epoch of the last batch the log holds (an epoch the cache records at the log
    /// end, as a replica that led without appending leaves, holds no batch).
    fn last_fetched_epoch(&self) -> Option<i32> {
        let leo = self.log.log_end_offset();
        self.log
            .leader_epochs()
            .iter()
            .rev()
            .find(|e| e.start_offset < leo)
            .map(|e| e.epoch)
    }

    pub(super) fn follower_tick(&mut self, now: i64) -> Result<()> {
        let timeout = self.config.replica_socket_timeout_ms;
        let Some(f) = self.follower() else {
            return Ok(());
        };
        if let Some((_, _, sent)) = f.in_flight {
            if now.saturating_sub(sent) < timeout {
                return Ok(());
            }
            f.in_flight = None; // lost on the way: ask again
        }
        if now < f.next_fetch_at {
            return Ok(());
        }
        self.send_fetch(now)
    }

    fn send_fetch(&mut self, now: i64) -> Result<()> {
        let fetch_offset = self.durable_end()?;
        let last_fetched_epoch = self.last_fetched_epoch();
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id += 1;
        let request = FetchRequest {
            correlation_id,
            replica_id: self.id,
            replica_epoch: self.replica_epoch,
            current_leader_epoch: self.current_leader_epoch(),
            fetch_offset,
            last_fetched_epoch,
            log_start_offset: self.log.log_start_offset(),
            max_bytes: self.config.replica_fetch_max_bytes,
        };
        let Some(f) = self.follower() else {
            return Ok(());
        };
        f.in_flight = Some((correlation_id, fetch_offset, now));
        let leader = f.leader;
        self.send(leader, Message::Fetch(request));
        Ok(())
    }

    fn backoff(&mut self, now: i64) {
        let backoff = self.config.replica_fetch_backoff_ms;
        if let Some(f) = self.follower() {
            f.next_fetch_at = now.saturating_add(backoff);
        }
    }

    pub(super) fn follower_on_fetch_response(
        &mut self,
        from: ReplicaId,
        resp: FetchResponse,
        now: i64,
    ) -> Result<()> {
        let Some(f) = self.follower() else {
            return Ok(());
        };
        let Some((correlation_id, fetch_offset, _)) = f.in_flight else {
            return Ok(());
        };
        if from != f.leader || resp.correlation_id != correlation_id {
            return Ok(()); // late, duplicated, or from someone else
        }
        f.in_flight = None;
        let epoch = f.epoch;
        if resp.error != KafkaCode::NONE {
            if resp.error == KafkaCode::OFFSET_OUT_OF_RANGE
                && resp.log_end_offset >= 0
                && self.log.log_end_offset() > resp.log_end_offset
            {
                // Ahead of the leader (it was elected with less): cut to its end.
                self.truncate_for_leader(resp.log_end_offset)?;
                return self.send_fetch(now);
            }
            if resp.error == KafkaCode::OFFSET_OUT_OF_RANGE
                && resp.log_start_offset > self.log.log_end_offset()
            {
                // Behind the leader's log start (it deleted what this replica still lacks,
                // by retention or DeleteRecords): start over where the leader's log starts,
                // as Kafka's fetcher does (`truncateFullyAndStartAt`). Nothing committed is
                // given up: this replica's high watermark is at most its log end.
                self.log
                    .truncate_fully_and_start_at(resp.log_start_offset)?;
                return self.send_fetch(now);
            }
            self.backoff(now);
            return Ok(());
        }
        if resp.leader_epoch != epoch || fetch_offset != self.log.log_end_offset() {
            self.backoff(now);
            return Ok(());
        }
        if let Some(diverging) = resp.diverging_epoch {
            let target = self.truncation_offset(diverging);
            if target >= self.log.log_end_offset() {
                // Nothing to cut, yet the leader sees a divergence: wait for news (a new
                // epoch) rather than spin.
                self.backoff(now);
                return Ok(());
            }
            self.truncate_for_leader(target)?;
            // Repeat until the logs agree (KIP-279).
            return self.send_fetch(now);
        }
        if !resp.records.is_empty() {
            self.log.append_replicated(&resp.records)?;
        }
        let own = self.durable_end()?;
        let hw = resp.high_watermark.min(own);
        if hw > self.log.high_watermark() {
            self.log.maybe_advance_high_watermark(hw)?;
        }
        // The log starts where the leader's does (Kafka's `maybeIncrementLogStartOffset`):
        // what the leader deleted goes here too. It matters beyond disk space: a batch this
        // replica holds below the leader's log start may be one the leader never had (from a
        // leader of an earlier epoch), and no divergence check can find it any more.
        let start = resp.log_start_offset.min(self.log.high_watermark());
        if start > self.log.log_start_offset() {
            self.log.delete_records_before(start)?;
        }
        self.send_fetch(now)
    }

    /// Where the follower cuts its log after the leader reported a divergence (Kafka's
    /// `getOffsetTruncationState`): with the leader's epoch known here, the smaller of the two
    /// ends of that epoch; with only an older one, where that older one ends here (and the
    /// next fetch checks again); with nothing the leader knows, the high watermark.
    fn truncation_offset(&self, leader: EpochEndOffset) -> i64 {
        let leo = self.log.log_end_offset();
        if leader.is_undefined() {
            return self.log.high_watermark().min(leo);
        }
        match self.log.end_offset_for_epoch(leader.epoch) {
            None => leader.end_offset.min(leo),
            Some((epoch, end)) if epoch == leader.epoch => leader.end_offset.min(end).min(leo),
            Some((_, end)) => end.min(leo),
        }
    }

    /// Cuts the log to `target`, never below the high watermark unless unclean leader
    /// election is enabled (then the records given up are reported).
    fn truncate_for_leader(&mut self, target: i64) -> Result<()> {
        let hw = self.log.high_watermark();
        let leo = self.log.log_end_offset();
        let target = if target < hw {
            if !self.config.unclean_leader_election_enable {
                hw
            } else {
                self.outputs.push_back(Output::UncleanTruncation {
                    high_watermark: hw,
                    truncated_to: target,
                    log_end_offset: leo,
                });
                target
            }
        } else {
            target
        };
        if target < leo {
            self.log.truncate_to(target)?;
        }
        Ok(())
    }
}
