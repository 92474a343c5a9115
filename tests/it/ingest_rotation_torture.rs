//! Rotation torture: writer threads append numbered lines while a rotator renames,
//! copytruncates and gzips their files, and the `streamlog ingest` process is SIGKILLed at
//! random moments and restarted. At the end every line still on disk (plain or gzip) is in
//! the topic exactly once, each writer's lines are in order, every record is a line that
//! was written (nothing split or merged), and the lines copytruncate's window lost are
//! counted and reported.
//!
//! Each of the ten kill rounds starts the agent, waits (at most 60 s) until it has appended
//! positions, lets it run a random 0-400 ms more and kills it; every round must get that
//! far, so each kill hits an agent that is reading and committing.
//!
//! One seed drives the rotator's choices and the kill times (printed; seed 1 unless
//! `STREAMLOG_SIM_SEED=N` picks another; the threads' interleaving is the machine's, so a
//! replay repeats the choices, not every race). Bounded: every agent run is killed or
//! waited for with a deadline (and killed if the test fails midway).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use streamlog::storage::{Storage, StorageConfig};

use crate::common::ingest::{gzip, spawn_agent};
use crate::common::rng::Rng;

const WRITERS: usize = 3;
const KILL_ROUNDS: usize = 10;
/// The seed CI runs (the rotator's choices and kill times); `STREAMLOG_SIM_SEED=N` runs
/// another (seeds 1-40 each passed their ten kill rounds when the test left `#[ignore]`).
const DEFAULT_SEED: u64 = 1;
const TOPIC: &str = "torture";

fn line(writer: usize, seq: u64) -> String {
    format!("w{writer} {seq:08} {}", "x".repeat((seq % 37) as usize))
}

/// `(writer, seq)` of a well-formed line.
fn parse(text: &str) -> Option<(usize, u64)> {
    let mut parts = text.splitn(3, ' ');
    let w: usize = parts.next()?.strip_prefix('w')?.parse().ok()?;
    let seq: u64 = parts.next()?.parse().ok()?;
    (line(w, seq) == text).then_some((w, seq))
}

struct Shared {
    stop_writers: AtomicBool,
    stop_rotator: AtomicBool,
    /// Bumped by the rotator after renaming a writer's file: reopen.
    reopen: Vec<AtomicU64>,
    /// The generation each writer has opened.
    opened: Vec<AtomicU64>,
    written: Vec<AtomicU64>,
}

fn open_append(path: &Path) -> fs::File {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
}

fn writer(shared: &Shared, logs: &Path, w: usize) {
    let path = logs.join(format!("w{w}.log"));
    let mut gen = shared.reopen[w].load(Ordering::SeqCst);
    let mut f = open_append(&path);
    let mut seq = 0u64;
    while !shared.stop_writers.load(Ordering::SeqCst) {
        let now = shared.reopen[w].load(Ordering::SeqCst);
        if now != gen {
            f = open_append(&path);
            gen = now;
            shared.opened[w].store(gen, Ordering::SeqCst);
        }
        // One write a line (O_APPEND): the line lands whole, as a logger's would.
        f.write_all(format!("{}\n", line(w, seq)).as_bytes())
            .unwrap();
        seq += 1;
        shared.written[w].store(seq, Ordering::SeqCst);
        if seq % 5 == 0 {
            std::thread::sleep(Duration::from_millis(1)); // pacing, not synchronisation
        }
    }
}

#[derive(Default, Debug)]
struct RotationCounts {
    renames: u64,
    copytruncates: u64,
    gzips: u64,
}

fn rotator(shared: &Shared, logs: &Path, seed: u64, counts: &Mutex<RotationCounts>) {
    let mut rng = Rng(seed ^ 0x5eed);
    let mut next = 1u64;
    // Rotated plain files, and the writer generation that must be open before they are
    // final (a renamed file still takes lines until its writer reopens).
    let mut rotated: Vec<(PathBuf, usize, u64)> = Vec::new();
    while !shared.stop_rotator.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(rng.range(20, 120) as u64));
        let w = rng.below(WRITERS as u64) as usize;
        let current = logs.join(format!("w{w}.log"));
        let target = logs.join(format!("w{w}.log.{next}"));
        match rng.below(3) {
            0 => {
                if fs::rename(&current, &target).is_ok() {
                    let gen = shared.reopen[w].fetch_add(1, Ordering::SeqCst) + 1;
                    rotated.push((target, w, gen));
                    next += 1;
                    counts.lock().unwrap().renames += 1;
                }
            }
            1 => {
                if current.exists() && fs::copy(&current, &target).is_ok() {
                    if let Ok(f) = OpenOptions::new().write(true).open(&current) {
                        f.set_len(0).unwrap();
                    }
                    rotated.push((target, w, 0));
                    next += 1;
                    counts.lock().unwrap().copytruncates += 1;
                }
            }
            _ => {
                let ready = rotated
                    .iter()
                    .position(|(_, w, gen)| shared.opened[*w].load(Ordering::SeqCst) >= *gen);
                if let Some(i) = ready {
                    let (path, _, _) = rotated.remove(i);
                    gzip(&path);
                    counts.lock().unwrap().gzips += 1;
                }
            }
        }
    }
}

/// Lines on disk now, per writer (plain and gzip files; a partial last line left out).
fn lines_on_disk(logs: &Path) -> Vec<BTreeSet<u64>> {
    let mut out = vec![BTreeSet::new(); WRITERS];
    for entry in fs::read_dir(logs).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with('w') {
            continue;
        }
        let mut data = Vec::new();
        if name.ends_with(".gz") {
            flate2::read::MultiGzDecoder::new(fs::File::open(&path).unwrap())
                .read_to_end(&mut data)
                .unwrap();
        } else {
            data = fs::read(&path).unwrap();
        }
        let text = String::from_utf8_lossy(&data);
        let complete = text.rsplit_once('\n').map_or("", |(head, _)| head);
        for l in complete.lines() {
            let (w, seq) = parse(l).unwrap_or_else(|| panic!("bad line on disk in {name}: {l:?}"));
            out[w].insert(seq);
        }
    }
    out
}

#[test]
fn rotation_torture_every_line_exactly_once_in_order() {
    let seed: u64 = std::env::var("STREAMLOG_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SEED);
    println!("rotation torture seed {seed} (replay with STREAMLOG_SIM_SEED={seed})");
    let mut rng = Rng(seed);
    let root = tempfile::tempdir().unwrap();
    let logs = root.path().join("logs");
    let data = root.path().join("data");
    fs::create_dir_all(&logs).unwrap();
    let config = root.path().join("agent.toml");
    fs::write(
        &config,
        format!(
            r#"
data_dir = "{}"
linger_ms = 30
compression = "lz4"
status_interval_s = 0
maintenance_interval_s = 1

[[source]]
type = "file"
name = "torture"
topic = "{TOPIC}"
partitions = 2
paths = ["{}/w*.log*"]
key = "regex"
key_regex = '^(w\d+) '
poll_interval_ms = 20
idle_timeout_ms = 600000
"#,
            data.display(),
            logs.display()
        ),
    )
    .unwrap();

    let shared = Arc::new(Shared {
        stop_writers: AtomicBool::new(false),
        stop_rotator: AtomicBool::new(false),
        reopen: (0..WRITERS).map(|_| AtomicU64::new(0)).collect(),
        opened: (0..WRITERS).map(|_| AtomicU64::new(0)).collect(),
        written: (0..WRITERS).map(|_| AtomicU64::new(0)).collect(),
    });
    let counts = Arc::new(Mutex::new(RotationCounts::default()));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (shared, logs) = (Arc::clone(&shared), logs.clone());
            std::thread::spawn(move || writer(&shared, &logs, w))
        })
        .collect();
    let rot = {
        let (shared, logs, counts) = (Arc::clone(&shared), logs.clone(), Arc::clone(&counts));
        std::thread::spawn(move || rotator(&shared, &logs, seed, &counts))
    };

    // Kill rounds: once the agent has appended positions in this round (it is past its
    // start and committing), it runs a random while more, then SIGKILL.
    // The bytes of the positions topic's segments (they only change when positions are
    // appended, or compacted).
    let positions_dir = data.join("__ingest_positions-0");
    let positions_len = || -> u64 {
        fs::read_dir(&positions_dir).map_or(0, |entries| {
            entries
                .filter_map(|e| e.ok())
                .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
    };
    let mut rounds_committing = 0;
    for round in 0..KILL_ROUNDS {
        let before = positions_len();
        let mut agent = spawn_agent(
            &config,
            &root.path().join(format!("agent-{round}.err")),
            false,
        );
        let started = Instant::now();
        while positions_len() == before && started.elapsed() < Duration::from_secs(60) {
            if agent.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5)); // polling a file, bounded
        }
        if positions_len() != before {
            rounds_committing += 1;
        }
        std::thread::sleep(Duration::from_millis(rng.range(0, 400) as u64));
        agent.kill_now(); // SIGKILL
    }
    // Every round got as far as appending positions: the kills hit a working agent.
    assert_eq!(rounds_committing, KILL_ROUNDS, "seed {seed}");
    shared.stop_writers.store(true, Ordering::SeqCst);
    for w in writers {
        w.join().unwrap();
    }
    shared.stop_rotator.store(true, Ordering::SeqCst);
    rot.join().unwrap();

    // The last run catches up and stops by itself (bounded).
    let err_log = root.path().join("agent-final.err");
    let mut agent = spawn_agent(&config, &err_log, true);
    let Some(status) = agent.wait_until(Instant::now() + Duration::from_secs(180)) else {
        panic!(
            "the final agent did not catch up within 180 s: {}",
            fs::read_to_string(&err_log).unwrap_or_default()
        );
    };
    let stderr = fs::read_to_string(&err_log).unwrap_or_default();
    assert!(status.success(), "final agent failed: {stderr}");

    // The topic, read_committed.
    let storage = Storage::open(&data, StorageConfig::default()).unwrap();
    let mut got: Vec<Vec<u64>> = vec![Vec::new(); WRITERS];
    // (path, offset) header of each of `got`'s records, to explain a failure.
    let mut origin: Vec<Vec<String>> = vec![Vec::new(); WRITERS];
    let mut pieces = 0u64;
    for p in 0..storage.partition_count(TOPIC).unwrap() {
        let log = storage.partition(TOPIC, p).unwrap();
        for r in log.records_committed(0) {
            let r = r.unwrap();
            let text = String::from_utf8_lossy(r.value().unwrap()).into_owned();
            let split = r.headers().any(|h| h.key == b"split.index");
            if split {
                // A copy taken in the middle of a line's write ends with part of it; the
                // agent emits that part at the copy's end. It is a prefix of a real line.
                assert!(text.starts_with('w'), "bad piece {text:?}");
                pieces += 1;
                continue;
            }
            let (w, seq) =
                parse(&text).unwrap_or_else(|| panic!("record is not a written line: {text:?}"));
            got[w].push(seq);
            let header = |k: &[u8]| {
                r.headers()
                    .find(|h| h.key == k)
                    .map(|h| String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned())
                    .unwrap_or_default()
            };
            origin[w].push(format!("{}@{}", header(b"path"), header(b"offset")));
        }
    }
    storage.close().unwrap();

    let on_disk = lines_on_disk(&logs);
    let mut report = BTreeMap::new();
    let mut window_lost = 0u64;
    let mut window_kept = 0u64;
    for w in 0..WRITERS {
        let written = shared.written[w].load(Ordering::SeqCst);
        let seqs = &got[w];
        if let Some(i) = seqs.windows(2).position(|p| p[0] >= p[1]) {
            if std::env::var("STREAMLOG_KEEP_DIR").is_ok() {
                println!("kept {}", root.keep().display());
            }
            let around = i.saturating_sub(3)..(i + 4).min(seqs.len());
            let context: Vec<String> = around
                .map(|j| format!("{} from {}", seqs[j], origin[w][j]))
                .collect();
            panic!(
                "writer {w}: lines out of order or duplicated at {i}: {context:#?} (seed {seed})"
            );
        }
        let in_topic: BTreeSet<u64> = seqs.iter().copied().collect();
        let missing: Vec<&u64> = on_disk[w].difference(&in_topic).take(5).collect();
        assert!(
            missing.is_empty(),
            "writer {w}: lines on disk missing from the topic: {missing:?} (seed {seed})"
        );
        assert!(seqs.iter().all(|s| *s < written));
        // Lines neither on disk nor in the topic fell in a copytruncate window.
        let gone = written - on_disk[w].len() as u64;
        let kept = in_topic.difference(&on_disk[w]).count() as u64;
        window_lost += gone - kept;
        window_kept += kept;
        report.insert(format!("w{w}"), (written, seqs.len()));
    }
    let counts = counts.lock().unwrap();
    println!(
        "rotation torture: seed {seed}, {KILL_ROUNDS} kill rounds (each after the agent appended positions), {counts:?}, lines (written, in topic) {report:?}, \
         copytruncate window: {window_lost} lines lost, {window_kept} read before the truncation, \
         {pieces} partial pieces; final agent: {}",
        stderr.lines().last().unwrap_or_default()
    );
    let total: usize = got.iter().map(Vec::len).sum();
    assert!(total > 0);
}
