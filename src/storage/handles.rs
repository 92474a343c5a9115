//! The budget of open files and memory maps, and the least-recently-used order of open logs.
//!
//! An open log is charged for its segments: 3 file handles each (`.log`, `.index`,
//! `.timeindex`) and 2 maps (the indexes). That is an upper bound: sealed segments map their
//! indexes only once read. The charge is refreshed whenever the storage hands the log out
//! or maintains it, so segments rolled in between are counted late, never lost.

use std::collections::BTreeMap;

/// File handles and maps one open log holds (or may hold).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Cost {
    pub files: usize,
    pub maps: usize,
}

impl Cost {
    /// Both charges together.
    pub(crate) fn plus(self, other: Cost) -> Cost {
        Cost {
            files: self.files.saturating_add(other.files),
            maps: self.maps.saturating_add(other.maps),
        }
    }

    /// The charge for a log of `segments` segments.
    pub(crate) fn of_segments(segments: usize) -> Cost {
        let segments = segments.max(1);
        Cost {
            files: segments.saturating_mul(3),
            maps: segments.saturating_mul(2),
        }
    }
}

/// Which partition an LRU entry is.
pub(crate) type Key = (String, u32);

/// What is charged against the budget, and the order open logs were last used in.
#[derive(Debug)]
pub(crate) struct Budget {
    max: Cost,
    used: Cost,
    next_tick: u64,
    /// Last-use tick of every open log, oldest first.
    lru: BTreeMap<u64, Key>,
}

impl Budget {
    pub(crate) fn new(max_files: usize, max_maps: usize) -> Self {
        Budget {
            max: Cost {
                files: max_files,
                maps: max_maps,
            },
            used: Cost::default(),
            next_tick: 0,
            lru: BTreeMap::new(),
        }
    }

    /// The configured limit of open files.
    pub(crate) fn max_files(&self) -> usize {
        self.max.files
    }

    /// What open logs are charged now.
    pub(crate) fn used(&self) -> Cost {
        self.used
    }

    /// Number of open logs.
    pub(crate) fn open_logs(&self) -> usize {
        self.lru.len()
    }

    /// Whether `extra` more fits. An empty storage always takes one log, whatever its size.
    pub(crate) fn fits(&self, extra: Cost) -> bool {
        self.lru.is_empty()
            || (self.used.files.saturating_add(extra.files) <= self.max.files
                && self.used.maps.saturating_add(extra.maps) <= self.max.maps)
    }

    /// Records a newly opened log; returns its tick.
    pub(crate) fn insert(&mut self, key: Key, cost: Cost) -> u64 {
        self.used.files = self.used.files.saturating_add(cost.files);
        self.used.maps = self.used.maps.saturating_add(cost.maps);
        let tick = self.tick();
        self.lru.insert(tick, key);
        tick
    }

    /// Marks the log at `tick` used now, with its charge moved from `old` to `new`; returns
    /// its new tick.
    pub(crate) fn touch(&mut self, tick: u64, old: Cost, new: Cost) -> u64 {
        self.recharge(old, new);
        match self.lru.remove(&tick) {
            Some(key) => {
                let t = self.tick();
                self.lru.insert(t, key);
                t
            }
            None => tick,
        }
    }

    /// Moves a log's charge from `old` to `new` without changing its place.
    pub(crate) fn recharge(&mut self, old: Cost, new: Cost) {
        self.used.files = self
            .used
            .files
            .saturating_sub(old.files)
            .saturating_add(new.files);
        self.used.maps = self
            .used
            .maps
            .saturating_sub(old.maps)
            .saturating_add(new.maps);
    }

    /// Forgets the log at `tick` (closed).
    pub(crate) fn remove(&mut self, tick: u64, cost: Cost) {
        if self.lru.remove(&tick).is_some() {
            self.used.files = self.used.files.saturating_sub(cost.files);
            self.used.maps = self.used.maps.saturating_sub(cost.maps);
        }
    }

    /// Open logs, least recently used first.
    pub(crate) fn lru_order(&self) -> impl Iterator<Item = (u64, &Key)> {
        self.lru.iter().map(|(t, k)| (*t, k))
    }

    fn tick(&mut self) -> u64 {
        self.next_tick += 1;
        self.next_tick
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lru_order_follows_use() {
        let mut b = Budget::new(9, 100);
        let one = Cost::of_segments(1);
        let a = b.insert(("a".into(), 0), one);
        let c = b.insert(("c".into(), 0), one);
        assert!(b.fits(one));
        b.insert(("d".into(), 0), one);
        assert!(!b.fits(one));
        let a = b.touch(a, one, one);
        let order: Vec<_> = b.lru_order().map(|(_, k)| k.0.clone()).collect();
        assert_eq!(order, ["c", "d", "a"]);
        b.remove(c, one);
        assert!(b.fits(one));
        b.remove(a, one);
        assert_eq!(b.used().files, 3);
        assert_eq!(b.open_logs(), 1);
    }
}
