//! Power loss at every step of a compaction, on the simulated filesystem.
//!
//! A log with several durable segments of keyed records (duplicates, tombstones, records
//! without a key; some already compacted, small enough to be merged) is compacted once without a crash, counting the filesystem operations the
//! pass makes (`N`) and noting the contents before and after. Then, for every `k` in
//! `0..=N`, the same log is built again on a fresh `SimFs` of the same seed, the pass is
//! stopped after its `k`-th operation (every later operation fails, as if the machine had
//! stopped there), power is lost (`SimFs::crash`, which also drops or tears what was not
//! synced), and the log reopened. It must open (with the default config, which refuses
//! damage below the recovery point), hold exactly the old contents or exactly the new ones,
//! leave no `.cleaned`, `.swap` or `.deleted` file behind, and a new pass must then give the
//! new contents. For the first crash of each kind that leaves the open work to do (undo an
//! uncommitted pass, finish a committed one), power is also lost at every step of that
//! open, with the same demands on the open after it.

use crate::common::gate::{Gate, GatedFs};
use crate::common::sim_log;

use std::path::PathBuf;
use std::sync::Arc;

use streamlog::io::SimFs;
use streamlog::{Compression, Log, LogConfig, OwnedRecord};

const NOW: i64 = sim_log::T0 + 1_000;

fn config() -> LogConfig {
    LogConfig::builder()
        .segment_bytes(700)
        .segment_index_bytes(4096)
        .index_interval_bytes(100)
        .segment_ms(None)
        .build()
        .unwrap()
}

type Contents = Vec<(i64, Option<Vec<u8>>, Option<Vec<u8>>)>;

fn contents(log: &Log) -> Contents {
    log.records_from(log.log_start_offset())
        .map(|r| {
            let r = r.unwrap();
            (
                r.offset(),
                r.key().map(<[u8]>::to_vec),
                r.value().map(<[u8]>::to_vec),
            )
        })
        .collect()
}

/// The log before compaction, durable, on a fresh filesystem of `seed`, opened through a
/// gate that is not yet armed.
fn build(seed: u64) -> (SimFs, Arc<Gate>, Log) {
    let fs = SimFs::new(seed);
    let gate = Gate::new(fs.clone());
    let (log, _) = Log::open_with(
        Arc::new(GatedFs(Arc::clone(&gate))),
        sim_log::dir(),
        config(),
        &mut |_| Ok(()),
    )
    .unwrap();
    let mut append = |i: u32| {
        let key = (i % 7).to_string();
        let value = (i % 11 != 3).then(|| format!("v{i}"));
        let key = (i % 13 != 5).then_some(key);
        let codec = [Compression::None, Compression::Lz4][(i % 2) as usize];
        log.append_records(
            &[OwnedRecord::new(
                sim_log::T0 + i64::from(i),
                key.as_deref().map(str::as_bytes),
                value.as_deref().map(str::as_bytes),
            )],
            codec,
        )
        .unwrap();
    };
    (0..60).for_each(&mut append);
    log.roll().unwrap();
    // A first pass leaves small cleaned segments, which the pass under test merges.
    log.compact(log.log_end_offset(), NOW).unwrap();
    (60..100).for_each(&mut append);
    log.roll().unwrap();
    log.append_records(
        &[OwnedRecord::new(
            sim_log::T0,
            Some(b"tail"),
            Some(b"active"),
        )],
        Compression::None,
    )
    .unwrap();
    log.flush().unwrap();
    (fs, gate, log)
}

fn reopen(fs: &SimFs, k: u64) -> Log {
    Log::open_with(Arc::new(fs.clone()), sim_log::dir(), config(), &mut |_| {
        Ok(())
    })
    .unwrap_or_else(|e| panic!("crash after step {k}: open failed: {e}"))
    .0
}

#[test]
fn crash_at_every_step_of_compaction_keeps_old_or_new() {
    let (fs, gate, log) = build(7);
    assert!(
        log.segment_count() > 4,
        "the scenario needs several segments"
    );
    let old = contents(&log);
    let before = fs.op_count();
    let stats = log.compact(log.log_end_offset(), NOW).unwrap();
    let steps = fs.op_count() - before;
    assert!(stats.segments_before > stats.segments_after, "{stats:?}");
    let new = contents(&log);
    assert!(new.len() < old.len());
    drop((log, gate));

    let mut saw_old = 0;
    let mut saw_new = 0;
    let mut recovered_kinds = Vec::new();
    for k in 0..=steps {
        let (fs, gate, log) = build(7);
        gate.arm(k as i64);
        let _ = log.compact(log.log_end_offset(), NOW);
        log.abandon();
        let after = fs.crash();
        // Power lost here can leave the open work of a kind not met yet (crashes drawn
        // again from the same moment find it when this one did not).
        let pending = fs
            .list_all()
            .iter()
            .any(|p| p.to_string_lossy().ends_with(".swap"));
        for draw in 0..if pending { 20 } else { 0 } {
            let outcome = if draw == 0 { after.clone() } else { fs.crash() };
            let kind = leftover_kind(&outcome);
            if kind > 0 && !recovered_kinds.contains(&kind) {
                recovered_kinds.push(kind);
                crash_at_every_step_of_recovery(k, draw, &old, &new);
                break;
            }
            if recovered_kinds.len() == 2 {
                break;
            }
        }
        let log = reopen(&after, k);
        let got = contents(&log);
        if got == old {
            saw_old += 1;
        } else if got == new {
            saw_new += 1;
        } else {
            panic!(
                "crash after step {k} of {steps}: neither the old nor the new contents:\n{got:?}"
            );
        }
        let leftovers: Vec<PathBuf> = after
            .list_all()
            .into_iter()
            .filter(|p| {
                let n = p.to_string_lossy();
                n.ends_with(".cleaned") || n.ends_with(".swap") || n.ends_with(".deleted")
            })
            .collect();
        assert!(leftovers.is_empty(), "step {k}: left behind {leftovers:?}");
        log.compact(log.log_end_offset(), NOW).unwrap();
        assert_eq!(
            contents(&log),
            new,
            "step {k}: a later pass finishes the job"
        );
        // And the result survives another power loss.
        log.flush().unwrap();
        log.abandon();
        let again = reopen(&after.crash(), k);
        assert_eq!(contents(&again), new, "step {k}: after a second crash");
    }
    assert!(saw_old > 0 && saw_new > 0, "old {saw_old}, new {saw_new}");
    recovered_kinds.sort_unstable();
    assert_eq!(
        recovered_kinds,
        [1, 2],
        "passes interrupted both before and after the commit"
    );
}

/// The filesystem after power is lost `k` operations into the pass: the outcome of the
/// `draw`-th crash drawn from that moment.
fn crashed_after(k: u64, draw: usize) -> SimFs {
    let (fs, gate, log) = build(7);
    gate.arm(k as i64);
    let _ = log.compact(log.log_end_offset(), NOW);
    log.abandon();
    let mut after = fs.crash();
    for _ in 0..draw {
        after = fs.crash();
    }
    after
}

/// What an interrupted pass left for the open: 1 to undo (`.cleaned` files left beside
/// `.swap` ones), 2 to finish (a `.log.swap`, no `.cleaned`), 0 nothing of either.
fn leftover_kind(fs: &SimFs) -> usize {
    let names: Vec<String> = fs
        .list_all()
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let cleaned = names.iter().any(|n| n.ends_with(".cleaned"));
    let swap = names.iter().any(|n| n.ends_with(".swap"));
    let log_swap = names.iter().any(|n| n.ends_with(".log.swap"));
    match (cleaned, swap, log_swap) {
        (true, true, _) => 1,
        (false, _, true) => 2,
        _ => 0,
    }
}

/// A second power loss at every step of the open that undoes or finishes the pass
/// interrupted after step `k` still leaves the old or the new contents.
fn crash_at_every_step_of_recovery(k: u64, draw: usize, old: &Contents, new: &Contents) {
    for j in 0.. {
        let after = crashed_after(k, draw);
        let gate = Gate::new(after.clone());
        gate.arm(j);
        let opened = Log::open_with(
            Arc::new(GatedFs(gate)),
            sim_log::dir(),
            config(),
            &mut |_| Ok(()),
        );
        // Past the swap files, the rest of the open is what the other crash tests cover.
        let finished = opened.is_ok() || leftover_kind(&after) == 0;
        drop(opened);
        let got = contents(&reopen(&after.crash(), k));
        assert!(
            &got == old || &got == new,
            "crash after step {k} of the pass, then after step {j} of the open: {got:?}"
        );
        if finished {
            break;
        }
    }
}
