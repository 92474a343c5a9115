//! Power loss at random points while a Raft log store appends, truncates, purges, votes and
//! saves the committed log id, on the simulated filesystem.
//!
//! Each seed runs several cycles. A cycle opens the store through a gate that lets a random
//! number of filesystem operations through and fails every one after (the machine stops
//! there, possibly inside an operation or inside the open itself), runs random operations
//! until one fails (or cuts power between two), loses power (`SimFs::crash`: unsynced
//! writes dropped or torn), reopens, and checks Raft's storage contract against a model:
//!
//! - every entry whose append was acknowledged is there, unless a truncation (or purge)
//!   acknowledged since removed it, or the operation cut short was a truncation covering it;
//! - every entry there is the one the model holds at its index (before or after the
//!   operation cut short): no entry of a truncated term comes back, no torn or stray entry;
//! - the entries are contiguous, right after the last purged log id, and the log state
//!   names the last of them;
//! - the vote is the last one acknowledged, or the one being saved: it never goes back;
//!   the purged log id likewise; the committed log id is one that was saved.
//!
//! The committer thread only works while the test waits for it, so a seed replays exactly:
//! `STREAMLOG_SIM_SEED=N` runs seed N alone.
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
use openraft::{Entry, LogId, RaftLogReader, Vote};
use streamlog::io::{FileSystem, SimFs};
use streamlog::LogConfig;

use crate::common::gate::{Gate, GatedFs};
use crate::common::raft::*;
use crate::common::rng::Rng;

const SEEDS: u64 = 40;
const CYCLES: usize = 8;
const MAX_OPS: usize = 40;

fn config() -> LogConfig {
    small_config()
        .to_builder()
        .segment_bytes(600)
        .build()
        .unwrap()
}

/// What the store holds as far as the test knows.
#[derive(Debug, Clone, Default)]
struct Model {
    entries: BTreeMap<u64, Entry<KvConfig>>,
    /// Indexes of entries acknowledged durable and not removed since.
    acked: BTreeSet<u64>,
    purged: Option<LogId<u64>>,
    vote: Option<Vote<u64>>,
    /// Every committed log id ever saved.
    committed_saved: BTreeSet<Option<LogId<u64>>>,
    /// The term new entries get; raised by every truncation (a new leader's).
    term: u64,
}

impl Model {
    fn last_index(&self) -> Option<u64> {
        self.entries
            .keys()
            .next_back()
            .copied()
            .or(self.purged.map(|p| p.index))
    }
}

/// An operation, and what it changes if it takes effect.
#[derive(Debug, Clone)]
enum Op {
    Append(Vec<Entry<KvConfig>>),
    Truncate(u64),
    Purge(LogId<u64>),
    Vote(Vote<u64>),
    Commit(Option<LogId<u64>>),
}

impl Op {
    fn apply(&self, m: &mut Model, acked: bool) {
        match self {
            Op::Append(entries) => {
                for e in entries {
                    m.entries.insert(e.log_id.index, e.clone());
                    if acked {
                        m.acked.insert(e.log_id.index);
                    }
                }
            }
            Op::Truncate(i) => {
                m.entries.split_off(i);
                m.acked.split_off(i);
                m.term += 1;
            }
            Op::Purge(p) => {
                m.entries = m.entries.split_off(&(p.index + 1));
                m.acked = m.acked.split_off(&(p.index + 1));
                m.purged = Some(*p);
            }
            Op::Vote(v) => {
                m.vote = Some(*v);
                m.term = m.term.max(v.leader_id.term);
            }
            Op::Commit(c) => {
                m.committed_saved.insert(*c);
            }
        }
    }
}

fn random_op(rng: &mut Rng, m: &Model, serial: &mut u64) -> Option<Op> {
    let first = m.purged.map_or(0, |p| p.index + 1);
    let next = m.last_index().map_or(0, |l| l + 1);
    Some(match rng.below(100) {
        0..=44 => {
            let n = 1 + rng.below(5);
            let entries = (next..next + n)
                .map(|i| {
                    *serial += 1;
                    set_entry(m.term, m.term % 3, i, &format!("v{serial}"))
                })
                .collect();
            Op::Append(entries)
        }
        45..=59 => {
            if next <= first {
                return None;
            }
            Op::Truncate(first + rng.below(next - first))
        }
        60..=74 => {
            // Raft purges only what is applied, so acknowledged entries.
            let acked: Vec<u64> = m.acked.iter().copied().collect();
            let i = *acked.get(rng.below(acked.len() as u64) as usize)?;
            Op::Purge(m.entries.get(&i)?.log_id)
        }
        75..=89 => {
            let prev = m.vote.unwrap_or_default();
            let term = prev.leader_id.term.max(m.term) + 1;
            let node = rng.below(3);
            Op::Vote(if rng.chance(50) {
                Vote::new_committed(term, node)
            } else {
                Vote::new(term, node)
            })
        }
        _ => {
            let i = m.acked.iter().next_back().copied();
            Op::Commit(i.and_then(|i| m.entries.get(&i)).map(|e| e.log_id))
        }
    })
}

/// Runs `op`; whether it was acknowledged.
async fn run(store: &mut Store, op: &Op) -> bool {
    match op {
        Op::Append(entries) => store.blocking_append(entries.clone()).await.is_ok(),
        Op::Truncate(i) => {
            let log_id = LogId::new(Default::default(), *i);
            store.truncate(log_id).await.is_ok()
        }
        Op::Purge(p) => store.purge(*p).await.is_ok(),
        Op::Vote(v) => store.save_vote(v).await.is_ok(),
        // Written in the next round: acknowledged once an append completes after it.
        Op::Commit(c) => {
            store.save_committed(*c).await.is_ok() && store.blocking_append([]).await.is_ok()
        }
    }
}

/// Checks the reopened store against the model before (`pre`) and after (`post`) the
/// operation cut short, and returns the model of what it holds.
async fn check(store: &mut Store, pre: &Model, post: &Model, cut: Option<&Op>, seed: u64) -> Model {
    let ctx = format!("seed {seed}, cut during {cut:?}");
    // Vote and purged: the acknowledged one, or the one being saved.
    let vote = store.read_vote().await.unwrap();
    assert!(
        vote == pre.vote || vote == post.vote,
        "{ctx}: vote {vote:?}, model {:?}",
        pre.vote
    );
    let state = store.get_log_state().await.unwrap();
    let purged = state.last_purged_log_id;
    assert!(
        purged == pre.purged || purged == post.purged,
        "{ctx}: purged {purged:?}, model {:?} / {:?}",
        pre.purged,
        post.purged
    );
    let committed = store.read_committed().await.unwrap();
    assert!(
        committed.is_none() || post.committed_saved.contains(&committed),
        "{ctx}: committed {committed:?} never saved"
    );
    // Entries: contiguous after the purged one, each the model's.
    let entries = store.try_get_log_entries(0..u64::MAX).await.unwrap();
    let mut expected_index = purged.map(|p| p.index + 1);
    for e in &entries {
        let i = e.log_id.index;
        if let Some(x) = expected_index {
            assert_eq!(i, x, "{ctx}: hole or disorder at {i}");
        }
        expected_index = Some(i + 1);
        let known = [pre.entries.get(&i), post.entries.get(&i)];
        assert!(
            known.contains(&Some(e)),
            "{ctx}: entry {:?} at {i} is not the model's ({known:?})",
            e.log_id
        );
    }
    let last = entries.last().map(|e| e.log_id).or(purged);
    assert_eq!(state.last_log_id, last, "{ctx}: log state");
    // Nothing acknowledged lost (unless the cut operation may have removed it).
    let present: BTreeSet<u64> = entries.iter().map(|e| e.log_id.index).collect();
    let floor = purged.map_or(0, |p| p.index + 1);
    for i in pre.acked.range(floor..) {
        let may_go = matches!(cut, Some(Op::Truncate(t)) if i >= t);
        assert!(
            may_go || present.contains(i),
            "{ctx}: acknowledged entry {i} lost (present {present:?})"
        );
    }
    // After power loss, everything there is durable.
    Model {
        acked: present,
        entries: entries.into_iter().map(|e| (e.log_id.index, e)).collect(),
        purged,
        vote,
        committed_saved: post.committed_saved.clone(),
        term: post.term.max(vote.map_or(0, |v| v.leader_id.term)),
    }
}

fn open(fs: Arc<dyn FileSystem>) -> Result<Store, streamlog::raft::RaftStoreError> {
    let store = Store::open_with(fs, Path::new("/raft"), config())?;
    Ok(store)
}

fn run_seed(seed: u64) {
    let rt = runtime();
    let mut rng = Rng(seed);
    let mut sim = SimFs::new(seed);
    let mut model = Model::default();
    let mut serial = 0;
    let trace = std::env::var_os("STREAMLOG_SIM_TRACE").is_some();
    for cycle in 0..CYCLES {
        let gate = Gate::new(sim);
        let budget = rng.range(1, 600);
        gate.arm(budget);
        if trace {
            eprintln!("cycle {cycle}: budget {budget}");
        }
        let fs: Arc<dyn FileSystem> = Arc::new(GatedFs(Arc::clone(&gate)));
        let mut pre = model.clone();
        let mut post = model.clone();
        let mut cut = None;
        let opened = open(fs);
        if trace {
            eprintln!("  open: {:?}", opened.as_ref().err());
        }
        if let Ok(mut store) = opened {
            store.set_committed_every(1 + rng.below(3) as u32);
            for _ in 0..MAX_OPS {
                let Some(op) = random_op(&mut rng, &model, &mut serial) else {
                    continue;
                };
                let acked = rt.block_on(run(&mut store, &op));
                if trace {
                    eprintln!("  {op:?} -> {acked}");
                }
                pre = model.clone();
                op.apply(&mut model, acked);
                post = model.clone();
                if !acked {
                    cut = Some(op);
                    break;
                }
                pre = model.clone();
            }
            gate.cut();
            drop(store);
        }
        sim = gate.fs.crash();
        if trace {
            for p in sim.list_all() {
                let bytes = sim.read_current(&p).unwrap_or_default();
                let mut offs = Vec::new();
                if p.extension().is_some_and(|e| e == "log") {
                    for b in streamlog::Batches::new(&bytes) {
                        match b {
                            Ok(b) => offs.push(format!(
                                "{}@{}",
                                b.base_offset(),
                                b.partition_leader_epoch()
                            )),
                            Err(e) => {
                                offs.push(format!("ERR {e}"));
                                break;
                            }
                        }
                    }
                }
                eprintln!("    {} {} {:?}", p.display(), bytes.len(), offs);
            }
        }
        let fs: Arc<dyn FileSystem> = Arc::new(sim.clone());
        let mut store = open(fs).unwrap_or_else(|e| panic!("seed {seed}: reopen failed: {e}"));
        model = rt.block_on(check(&mut store, &pre, &post, cut.as_ref(), seed));
        // A clean close, then the next cycle starts from what is on disk.
        drop(store);
        sim = sim_after_close(sim);
    }
}

/// The filesystem as the next cycle finds it: the store closed cleanly, so everything it
/// wrote is durable; a crash now keeps it all.
fn sim_after_close(sim: SimFs) -> SimFs {
    sim.crash()
}

#[test]
fn power_loss_never_loses_an_acknowledged_entry_or_vote() {
    for seed in seeds(SEEDS) {
        run_seed(seed);
    }
}
