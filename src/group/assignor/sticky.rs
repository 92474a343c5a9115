//! `sticky` and `cooperative-sticky`: balanced assignments that keep as many partitions
//! where they were as balance allows.
//!
//! Previous ownership comes from the `sticky` members' user data ([`StickyAssignorUserData`])
//! or the `cooperative-sticky` members' owned partitions. Only the members of the newest
//! generation are believed; a partition two of them claim counts as unowned.
//!
//! When every member subscribes to the same topics, each member ends with `P / C` or
//! `P / C + 1` partitions (`P` partitions, `C` members), the `P % C` larger shares going to
//! members that already own more than `P / C`, and each member keeps as many of its
//! partitions as its share allows: that moves the fewest partitions any balanced assignment
//! can. Otherwise previous owners keep their partitions, unowned partitions go to the
//! least-loaded member that can take them (partitions with the fewest candidates first), and
//! partitions then move from a member to one with at least two fewer that subscribes to
//! their topic until no such move is left (Kafka's definition of balanced), moving
//! partitions that were not already the giver's first.

use super::{Part, Problem};
use crate::error::Result;
use crate::group::wire::{put_array_len, put_i32, put_string, Reader};
use crate::group::TopicPartitions;

/// The user data `sticky` members put in their subscription: the partitions they were
/// assigned and the generation of that assignment (Kafka's `StickyAssignor` encodes version
/// 1, with the generation; version 0 has no generation). There is no version prefix: a
/// reader tries version 1, then version 0.
///
/// ```text
/// previous_assignment  [topic string, partitions [int32]]
/// generation           int32 (version 1 only)
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StickyAssignorUserData {
    /// The partitions the member was assigned.
    pub previous_assignment: Vec<TopicPartitions>,
    /// The generation of that assignment (`None`: version 0 user data).
    pub generation: Option<i32>,
}

const STICKY_USER_DATA: &str = "StickyAssignorUserData";

impl StickyAssignorUserData {
    /// Decodes user data of either version.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes, STICKY_USER_DATA);
        let count = r.array_len(false, 6)?;
        let mut previous_assignment = Vec::with_capacity(count);
        for _ in 0..count {
            let topic = r.string(false)?;
            let n = r.array_len(false, 4)?;
            let mut partitions = Vec::with_capacity(n);
            for _ in 0..n {
                partitions.push(r.i32()?);
            }
            previous_assignment.push(TopicPartitions { topic, partitions });
        }
        let generation = if r.remaining() >= 4 {
            Some(r.i32()?)
        } else {
            None
        };
        Ok(StickyAssignorUserData {
            previous_assignment,
            generation,
        })
    }

    /// Encodes version 1 (version 0 when `generation` is `None`).
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(64);
        put_array_len(&mut out, self.previous_assignment.len(), false)?;
        for tp in &self.previous_assignment {
            put_string(&mut out, &tp.topic, false)?;
            put_array_len(&mut out, tp.partitions.len(), false)?;
            for &p in &tp.partitions {
                put_i32(&mut out, p);
            }
        }
        if let Some(generation) = self.generation {
            put_i32(&mut out, generation);
        }
        Ok(out)
    }
}

/// The user data `cooperative-sticky` members put in their subscription: the generation of
/// the partitions they own, an `int32` (read when the subscription itself, before v2, does
/// not carry the generation).
pub fn cooperative_sticky_user_data(generation: i32) -> Vec<u8> {
    generation.to_be_bytes().to_vec()
}

/// Generation Kafka's assignors assume when a member sends none.
const DEFAULT_GENERATION: i32 = -1;

/// What a member says it owned, and from which generation.
fn claims(problem: &Problem<'_>, member: usize, cooperative: bool) -> (Vec<Part>, i32) {
    let Some(m) = problem.members.get(member) else {
        return (Vec::new(), DEFAULT_GENERATION);
    };
    let s = &m.subscription;
    let (mut parts, generation) = if cooperative {
        let generation = if s.generation_id >= 0 {
            Some(s.generation_id)
        } else {
            s.user_data
                .as_deref()
                .and_then(|d| d.get(..4))
                .and_then(|d| <[u8; 4]>::try_from(d).ok())
                .map(i32::from_be_bytes)
        };
        (problem.parts_of(&s.owned_partitions), generation)
    } else {
        match s
            .user_data
            .as_deref()
            .filter(|d| !d.is_empty())
            .map(StickyAssignorUserData::decode)
        {
            Some(Ok(data)) => (problem.parts_of(&data.previous_assignment), data.generation),
            _ => (Vec::new(), None),
        }
    };
    parts.sort_unstable();
    parts.dedup();
    (parts, generation.unwrap_or(DEFAULT_GENERATION))
}

pub(super) fn assign(problem: &Problem<'_>, cooperative: bool) -> Vec<Vec<Part>> {
    let members = problem.members.len();
    let total = problem.partition_count();
    if members == 0 {
        return Vec::new();
    }
    let all_claims: Vec<(Vec<Part>, i32)> = (0..members)
        .map(|m| claims(problem, m, cooperative))
        .collect();

    // Ownership believed: claims of the newest generation, one claimant only, of a topic the
    // member still subscribes to.
    let newest = all_claims
        .iter()
        .map(|(_, g)| *g)
        .max()
        .unwrap_or(DEFAULT_GENERATION);
    let mut claimants = vec![0u32; total];
    for (parts, g) in &all_claims {
        if *g == newest {
            for &p in parts {
                if let Some(c) = claimants.get_mut(p) {
                    *c += 1;
                }
            }
        }
    }
    let mut owner: Vec<Option<usize>> = vec![None; total];
    for (m, (parts, g)) in all_claims.iter().enumerate() {
        if *g != newest {
            continue;
        }
        for &p in parts {
            if claimants.get(p) == Some(&1) && problem.subscribes(m, problem.topic_of(p)) {
                if let Some(o) = owner.get_mut(p) {
                    *o = Some(m);
                }
            }
        }
    }

    let uniform = problem.subscribed.windows(2).all(|w| match w {
        [a, b] => a == b,
        _ => true,
    });
    let mut assignment = if uniform {
        constrained(problem, &owner)
    } else {
        general(problem, &owner)
    };

    if cooperative {
        // A partition another member still owns (by any generation's claim) is held back:
        // that member revokes it, rejoins, and the next rebalance assigns it.
        let mut claimed_by: Vec<Option<usize>> = vec![None; total];
        let mut many = vec![false; total];
        for (m, (parts, _)) in all_claims.iter().enumerate() {
            for &p in parts {
                match claimed_by.get(p).copied().flatten() {
                    None => {
                        if let Some(c) = claimed_by.get_mut(p) {
                            *c = Some(m);
                        }
                    }
                    Some(other) if other != m => {
                        if let Some(x) = many.get_mut(p) {
                            *x = true;
                        }
                    }
                    Some(_) => {}
                }
            }
        }
        for (m, parts) in assignment.iter_mut().enumerate() {
            parts.retain(|&p| {
                let by = claimed_by.get(p).copied().flatten();
                let contested = many.get(p).copied().unwrap_or(false);
                by.is_none() || (by == Some(m) && !contested)
            });
        }
    }
    assignment
}

/// Every member subscribes to the same topics: shares of `P / C` or `P / C + 1`.
fn constrained(problem: &Problem<'_>, owner: &[Option<usize>]) -> Vec<Vec<Part>> {
    let members = problem.members.len();
    let total = problem.partition_count();
    let mut owned: Vec<Vec<Part>> = vec![Vec::new(); members];
    for (p, o) in owner.iter().enumerate() {
        if let Some(list) = o.and_then(|m| owned.get_mut(m)) {
            list.push(p);
        }
    }
    let quota = total / members;
    let mut extra_slots = total % members;

    // The larger shares go to members that own more than the smaller share already.
    let mut by_owned: Vec<usize> = (0..members).collect();
    by_owned.sort_by_key(|&m| std::cmp::Reverse(owned.get(m).map_or(0, Vec::len)));
    let mut cap = vec![quota; members];
    for &m in &by_owned {
        if extra_slots > 0 && owned.get(m).map_or(0, Vec::len) > quota {
            if let Some(c) = cap.get_mut(m) {
                *c = quota + 1;
            }
            extra_slots -= 1;
        }
    }

    let mut assigned = vec![false; total];
    let mut out: Vec<Vec<Part>> = vec![Vec::new(); members];
    for (m, list) in owned.iter().enumerate() {
        let keep = cap.get(m).copied().unwrap_or(0);
        if let Some(o) = out.get_mut(m) {
            for &p in list.iter().take(keep) {
                o.push(p);
                if let Some(a) = assigned.get_mut(p) {
                    *a = true;
                }
            }
        }
    }
    let mut pool = (0..total).filter(|&p| !assigned.get(p).copied().unwrap_or(true));
    // Everyone up to the smaller share, then the larger shares left to whoever has room.
    for o in out.iter_mut() {
        while o.len() < quota {
            match pool.next() {
                Some(p) => o.push(p),
                None => break,
            }
        }
    }
    for o in out.iter_mut() {
        if extra_slots == 0 {
            break;
        }
        if o.len() == quota {
            if let Some(p) = pool.next() {
                o.push(p);
                extra_slots -= 1;
            }
        }
    }
    out
}

/// Members subscribe to different topics: keep, fill the least loaded, then even out.
fn general(problem: &Problem<'_>, owner: &[Option<usize>]) -> Vec<Vec<Part>> {
    let members = problem.members.len();
    let total = problem.partition_count();
    let mut out: Vec<Vec<Part>> = vec![Vec::new(); members];
    for (p, o) in owner.iter().enumerate() {
        if let Some(list) = o.and_then(|m| out.get_mut(m)) {
            list.push(p);
        }
    }

    // Candidates per topic, then unowned partitions with the fewest candidates first.
    let candidates: Vec<Vec<usize>> = (0..problem.topics.len())
        .map(|t| (0..members).filter(|&m| problem.subscribes(m, t)).collect())
        .collect();
    let candidates_of = |p: Part| -> &[usize] {
        candidates
            .get(problem.topic_of(p))
            .map_or(&[][..], Vec::as_slice)
    };
    let mut unowned: Vec<Part> = (0..total)
        .filter(|&p| owner.get(p).copied().flatten().is_none())
        .collect();
    unowned.sort_by_key(|&p| (candidates_of(p).len(), p));
    for p in unowned {
        let best = candidates_of(p)
            .iter()
            .copied()
            .min_by_key(|&m| (out.get(m).map_or(0, Vec::len), m));
        if let Some(list) = best.and_then(|m| out.get_mut(m)) {
            list.push(p);
        }
    }

    // Even out: move one partition from a member to one with at least two fewer that can
    // take it, until there is no such move. Each move lowers the sum of squared counts, so
    // this ends.
    loop {
        let mut order: Vec<usize> = (0..members).collect();
        order.sort_by_key(|&m| (out.get(m).map_or(0, Vec::len), m));
        let mut moved = None;
        'search: for &lo in &order {
            let lo_len = out.get(lo).map_or(0, Vec::len);
            for &hi in order.iter().rev() {
                let Some(hi_parts) = out.get(hi) else {
                    continue;
                };
                if hi_parts.len() < lo_len + 2 {
                    break;
                }
                let fits = |p: &Part| problem.subscribes(lo, problem.topic_of(*p));
                // Prefer a partition the giver did not own before this rebalance.
                let pick = hi_parts
                    .iter()
                    .position(|p| fits(p) && owner.get(*p).copied().flatten() != Some(hi))
                    .or_else(|| hi_parts.iter().position(fits));
                if let Some(pos) = pick {
                    moved = Some((hi, pos, lo));
                    break 'search;
                }
            }
        }
        let Some((hi, pos, lo)) = moved else {
            break;
        };
        let p = out.get_mut(hi).map(|list| list.swap_remove(pos));
        if let (Some(p), Some(list)) = (p, out.get_mut(lo)) {
            list.push(p);
        }
    }
    out
}
