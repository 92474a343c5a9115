//! The most recent entries appended, kept decoded for readers.
//!
//! openraft 0.9's core reads every committed entry back from the log store before it hands
//! it to the state machine, and its replication tasks read the entries they send. Both
//! nearly always ask for entries appended moments before; without this cache each such
//! read is a log read, a CRC check and a JSON decode of what the store had in hand.
//!
//! The cache holds a contiguous run of the last entries appended, the same entries as the
//! log holds at those indexes (they enter only after the log took them), bounded in count
//! and in encoded bytes, oldest dropped first. Truncation drops the cached entries at and
//! above the cut before the log is cut, and purge those at and below the purged index, so
//! the cache never serves an entry the log no longer holds.

use std::collections::VecDeque;

use openraft::{Entry, RaftTypeConfig};

/// The most entries kept.
pub(crate) const MAX_ENTRIES: usize = 4096;
/// The most encoded bytes (the entries' batches) kept.
pub(crate) const MAX_BYTES: usize = 8 << 20;

/// A contiguous run of recent entries, indexes `[first, first + len)`.
pub(crate) struct EntryCache<C: RaftTypeConfig> {
    /// Each entry with the size of its batch in the log.
    entries: VecDeque<(Entry<C>, usize)>,
    bytes: usize,
}

impl<C> EntryCache<C>
where
    C: RaftTypeConfig<Entry = Entry<C>>,
    C::D: Clone,
{
    pub(crate) fn new() -> Self {
        EntryCache {
            entries: VecDeque::new(),
            bytes: 0,
        }
    }

    /// The index of the first entry cached.
    fn first(&self) -> Option<u64> {
        self.entries.front().map(|(e, _)| e.log_id.index)
    }

    /// One past the index of the last entry cached.
    fn end(&self) -> Option<u64> {
        self.entries.back().map(|(e, _)| e.log_id.index + 1)
    }

    /// Adds entries just appended to the log, in order, each with its batch size. Entries
    /// that do not continue the cached run replace it.
    pub(crate) fn extend(&mut self, appended: impl IntoIterator<Item = (Entry<C>, usize)>) {
        for (entry, size) in appended {
            if self.end().is_some_and(|end| end != entry.log_id.index) {
                self.clear();
            }
            self.bytes += size;
            self.entries.push_back((entry, size));
        }
        while self.entries.len() > MAX_ENTRIES || self.bytes > MAX_BYTES {
            match self.entries.pop_front() {
                Some((_, size)) => self.bytes -= size,
                None => break,
            }
        }
    }

    /// Forgets the entries at and above `index` (the log is about to be cut there).
    pub(crate) fn truncate(&mut self, index: u64) {
        while self.end().is_some_and(|end| end > index) {
            if let Some((_, size)) = self.entries.pop_back() {
                self.bytes -= size;
            }
        }
    }

    /// Forgets the entries at and below `index` (purged).
    pub(crate) fn purge(&mut self, index: u64) {
        while self.first().is_some_and(|first| first <= index) {
            if let Some((_, size)) = self.entries.pop_front() {
                self.bytes -= size;
            }
        }
    }

    pub(crate) fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }

    /// Copies of the cached entries in `[start, end)`, and the first index of that range
    /// they cover (`end` when they cover none of it): the caller reads `[start, covered)`
    /// from the log. Only a range reaching into the cache is served from it.
    pub(crate) fn get(&self, start: u64, end: u64) -> (Vec<Entry<C>>, u64) {
        let (Some(first), Some(cached_end)) = (self.first(), self.end()) else {
            return (Vec::new(), end);
        };
        let from = start.max(first);
        let to = end.min(cached_end);
        if from >= to {
            return (Vec::new(), end);
        }
        // `from - first` and `to - first` are within the run (first <= from < to <= end).
        let skip = usize::try_from(from - first).unwrap_or(usize::MAX);
        let take = usize::try_from(to - from).unwrap_or(0);
        let entries = self
            .entries
            .iter()
            .skip(skip)
            .take(take)
            .map(|(e, _)| e.clone())
            .collect();
        (entries, from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::{CommittedLeaderId, EntryPayload, LogId};

    openraft::declare_raft_types!(
        Config: D = u64, R = (), NodeId = u64, Entry = Entry<Config>,
            SnapshotData = std::io::Cursor<Vec<u8>>
    );

    fn entry(index: u64) -> (Entry<Config>, usize) {
        let log_id = LogId::new(CommittedLeaderId::new(1, 1), index);
        (
            Entry {
                log_id,
                payload: EntryPayload::Normal(index),
            },
            100,
        )
    }

    fn indexes(entries: &[Entry<Config>]) -> Vec<u64> {
        entries.iter().map(|e| e.log_id.index).collect()
    }

    #[test]
    fn serves_the_cached_part_of_a_range_and_says_where_it_starts() {
        let mut cache = EntryCache::<Config>::new();
        assert_eq!(cache.get(0, 10).1, 10);
        cache.extend((5..10).map(entry));
        let (got, from) = cache.get(3, 8);
        assert_eq!((indexes(&got), from), (vec![5, 6, 7], 5));
        let (got, from) = cache.get(7, 100);
        assert_eq!((indexes(&got), from), (vec![7, 8, 9], 7));
        assert_eq!(cache.get(0, 5), (Vec::new(), 5));
        assert_eq!(cache.get(10, 12).1, 12);
    }

    #[test]
    fn a_gap_replaces_the_run_and_truncate_and_purge_cut_it() {
        let mut cache = EntryCache::<Config>::new();
        cache.extend((5..10).map(entry));
        cache.extend((20..22).map(entry));
        assert_eq!(indexes(&cache.get(0, 100).0), vec![20, 21]);
        cache.extend((22..30).map(entry));
        cache.truncate(25);
        assert_eq!(indexes(&cache.get(0, 100).0), vec![20, 21, 22, 23, 24]);
        cache.purge(21);
        assert_eq!(indexes(&cache.get(0, 100).0), vec![22, 23, 24]);
        assert_eq!(cache.bytes, 300);
        cache.purge(40);
        cache.truncate(0);
        assert_eq!(cache.get(0, 100).1, 100);
        assert_eq!(cache.bytes, 0);
    }

    #[test]
    fn keeps_at_most_its_bounds() {
        let mut cache = EntryCache::<Config>::new();
        cache.extend((0..MAX_ENTRIES as u64 + 10).map(entry));
        assert_eq!(cache.entries.len(), MAX_ENTRIES);
        assert_eq!(cache.first(), Some(10));
        let big = |i: u64| (entry(i).0, MAX_BYTES / 2);
        cache.extend((MAX_ENTRIES as u64 + 10..MAX_ENTRIES as u64 + 13).map(big));
        assert_eq!(cache.bytes, MAX_BYTES);
        assert_eq!(cache.first(), Some(MAX_ENTRIES as u64 + 11));
    }
}
