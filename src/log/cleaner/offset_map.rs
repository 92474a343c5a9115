//! The cleaner's key map: key hash → the last offset at which that key was seen.
//!
//! Kafka's `SkimpyOffsetMap` in spirit: keys are never stored, only a 128-bit hash of each,
//! in a fixed-budget open-addressing table (linear probing), so memory is bounded by the
//! configured bytes whatever the keys' sizes. Each slot is 24 bytes (two hash words and an
//! offset). Two distinct keys could share a hash and one of them lose records; Kafka accepts
//! that with MD5. Here the 128 bits come from two independent multiply-fold hash chains
//! (the construction of foldhash and wyhash) whose seeds are drawn at random for each map,
//! so no producer can aim at a collision and a chance one needs both 64-bit halves to
//! collide. It is several times faster than SipHash, and the cleaner hashes every record
//! twice.
//!
//! Unlike Kafka's, the table starts small and doubles (the hashes are kept, so nothing is
//! rehashed from keys) up to the budget: a log with few keys does not pay for clearing the
//! whole buffer.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

/// Bytes one slot takes.
pub(crate) const SLOT_BYTES: usize = 24;
/// Slots a fresh table starts with (fewer if the budget is smaller).
const INITIAL_SLOTS: usize = 1 << 10;
/// The smallest table.
const MIN_SLOTS: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    hi: u64,
    lo: u64,
    /// -1: empty.
    offset: i64,
}

const EMPTY: Slot = Slot {
    hi: 0,
    lo: 0,
    offset: -1,
};

/// A key's 128-bit hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KeyHash {
    hi: u64,
    lo: u64,
}

/// Key hash → latest offset, in bounded memory.
#[derive(Debug)]
pub(crate) struct OffsetMap {
    slots: Vec<Slot>,
    /// Largest number of slots the byte budget allows.
    max_slots: usize,
    load_factor: f64,
    entries: usize,
    /// The last offset of the last batch added (Kafka's `latestOffset`); -1 when none.
    latest_offset: i64,
    /// Seeds of the two hash chains.
    seeds: [u64; 4],
}

/// Multiplies and folds the 128-bit product: the mixing step of foldhash and wyhash.
#[inline(always)]
fn fold_mul(a: u64, b: u64) -> u64 {
    let p = u128::from(a).wrapping_mul(u128::from(b));
    (p as u64) ^ ((p >> 64) as u64)
}

/// Odd constants (digits of pi), so a zero seed still mixes.
const K0: u64 = 0x243f_6a88_85a3_08d3;
const K1: u64 = 0x1319_8a2e_0370_7344;
const K2: u64 = 0xa409_3822_299f_31d0;
const K3: u64 = 0x082e_fa98_ec4e_6c89;

impl OffsetMap {
    /// A map using at most `budget_bytes` (at least one initial table), filled to at most
    /// `load_factor` of its slots.
    pub(crate) fn new(budget_bytes: usize, load_factor: f64) -> Self {
        // A power of two, so a probe masks instead of dividing.
        let slots = (budget_bytes / SLOT_BYTES).max(MIN_SLOTS);
        let max_slots = 1usize << (usize::BITS - 1 - slots.leading_zeros());
        OffsetMap {
            slots: Vec::new(),
            max_slots,
            load_factor: load_factor.clamp(0.05, 0.95),
            entries: 0,
            latest_offset: -1,
            seeds: std::array::from_fn(|i| RandomState::new().hash_one(i)),
        }
    }

    /// Empties the map, keeping its memory.
    pub(crate) fn clear(&mut self) {
        if self.slots.is_empty() {
            self.slots = vec![EMPTY; INITIAL_SLOTS.min(self.max_slots)];
        } else {
            self.slots.fill(EMPTY);
        }
        self.entries = 0;
        self.latest_offset = -1;
    }

    /// Room for `n` more keys, whatever they are.
    pub(crate) fn has_room_for(&self, n: usize) -> bool {
        self.entries.saturating_add(n) <= self.max_entries()
    }

    /// Keys held.
    pub(crate) fn len(&self) -> usize {
        self.entries
    }

    /// The most keys the budget can hold at the load factor.
    pub(crate) fn max_entries(&self) -> usize {
        ((self.max_slots as f64) * self.load_factor) as usize
    }

    /// Bytes the table takes now.
    pub(crate) fn allocated_bytes(&self) -> usize {
        self.slots.len() * SLOT_BYTES
    }

    pub(crate) fn latest_offset(&self) -> i64 {
        self.latest_offset
    }

    pub(crate) fn set_latest_offset(&mut self, offset: i64) {
        self.latest_offset = offset;
    }

    /// The key's hash: two seeded multiply-fold chains over its 8-byte words.
    #[inline]
    pub(crate) fn hash(&self, key: &[u8]) -> KeyHash {
        let [s0, s1, s2, s3] = self.seeds;
        let len = key.len() as u64;
        let mut hi = s0 ^ len.wrapping_mul(K0);
        let mut lo = s1 ^ len.wrapping_mul(K1);
        let mut words = key.chunks_exact(8);
        for w in &mut words {
            let mut b = [0u8; 8];
            b.copy_from_slice(w);
            let w = u64::from_le_bytes(b);
            hi = fold_mul(hi ^ w, K2 ^ s2);
            lo = fold_mul(lo ^ w.rotate_left(29), K3 ^ s3);
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut b = [0u8; 8];
            if let Some(dst) = b.get_mut(..rest.len()) {
                dst.copy_from_slice(rest);
            }
            let w = u64::from_le_bytes(b);
            hi = fold_mul(hi ^ w, K2 ^ s2);
            lo = fold_mul(lo ^ w.rotate_left(29), K3 ^ s3);
        }
        KeyHash {
            hi: fold_mul(hi, K1 ^ s3),
            lo: fold_mul(lo, K0 ^ s2),
        }
    }

    fn probe(&self, hash: KeyHash) -> usize {
        // The table's length is a power of two.
        let mask = self.slots.len().wrapping_sub(1);
        let mut i = (hash.hi as usize) & mask;
        loop {
            match self.slots.get(i) {
                Some(s) if s.offset < 0 || (s.hi == hash.hi && s.lo == hash.lo) => return i,
                Some(_) => i = (i + 1) & mask,
                None => return usize::MAX,
            }
        }
    }

    /// Records `offset` as the latest for the key. Returns false, changing nothing, when a
    /// new key would take the map past its budget.
    pub(crate) fn put(&mut self, hash: KeyHash, offset: i64) -> bool {
        if self.slots.is_empty() {
            self.clear();
        }
        let mut i = self.probe(hash);
        if let Some(s) = self.slots.get_mut(i) {
            if s.offset >= 0 {
                s.offset = offset;
                return true;
            }
        }
        if self.entries + 1 > self.max_entries() {
            return false;
        }
        if (self.entries + 1) as f64 > self.slots.len() as f64 * self.load_factor {
            self.grow();
            i = self.probe(hash);
        }
        match self.slots.get_mut(i) {
            Some(s) => {
                *s = Slot {
                    hi: hash.hi,
                    lo: hash.lo,
                    offset,
                };
                self.entries += 1;
                true
            }
            None => false,
        }
    }

    /// The latest offset recorded for the key, if any.
    pub(crate) fn get(&self, hash: KeyHash) -> Option<i64> {
        if self.slots.is_empty() {
            return None;
        }
        let s = self.slots.get(self.probe(hash))?;
        (s.offset >= 0).then_some(s.offset)
    }

    fn grow(&mut self) {
        let new_len = (self.slots.len() * 2).min(self.max_slots);
        if new_len <= self.slots.len() {
            return;
        }
        let old = std::mem::replace(&mut self.slots, vec![EMPTY; new_len]);
        for s in old.into_iter().filter(|s| s.offset >= 0) {
            let i = self.probe(KeyHash { hi: s.hi, lo: s.lo });
            if let Some(slot) = self.slots.get_mut(i) {
                *slot = s;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_latest_offset_per_key_and_grows() {
        let mut m = OffsetMap::new(1 << 20, 0.9);
        m.clear();
        for i in 0..10_000i64 {
            let h = m.hash(format!("k{}", i % 3000).as_bytes());
            assert!(m.put(h, i));
        }
        assert_eq!(m.len(), 3000);
        for k in 0..3000i64 {
            let h = m.hash(format!("k{k}").as_bytes());
            let expect = if k < 1000 { 9000 + k } else { 6000 + k };
            assert_eq!(m.get(h), Some(expect));
        }
        assert_eq!(m.get(m.hash(b"absent")), None);
    }

    #[test]
    fn refuses_new_keys_past_budget() {
        let mut m = OffsetMap::new(SLOT_BYTES * 1024, 0.5);
        m.clear();
        let max = m.max_entries();
        for i in 0..max {
            assert!(m.put(m.hash(&i.to_be_bytes()), i as i64));
        }
        assert!(!m.put(m.hash(b"one too many"), 1));
        // An existing key still updates.
        assert!(m.put(m.hash(&0usize.to_be_bytes()), 99));
        assert_eq!(m.get(m.hash(&0usize.to_be_bytes())), Some(99));
    }
}
