//! The `streamlog` binary on real directories built with the library: produce/consume round
//! trips, dump in text and JSON, verify on good and damaged logs, and errors that exit
//! non-zero with a message instead of a panic.
#![cfg(feature = "cli")]

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;
use streamlog::{
    Batch, BatchBuilder, BatchOptions, Compression, ControlRecord, Header, Log, LogConfig,
    OwnedRecord,
};

/// A command that fails early may exit before reading its input (`child::run` allows it).
fn run(args: &[&str], stdin: &[u8]) -> Output {
    crate::common::child::run(env!("CARGO_BIN_EXE_streamlog"), args, stdin)
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

fn json_lines(o: &Output) -> Vec<Value> {
    stdout(o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Small segments with index entries every few batches.
fn small_segments() -> LogConfig {
    LogConfig::builder()
        .segment_bytes(2048)
        .index_interval_bytes(200)
        .build()
        .unwrap()
}

/// A closed log of several segments, 20 batches of 3 records each.
fn multi_segment_log(dir: &Path) {
    let log = Log::open(dir, small_segments()).unwrap();
    for i in 0..20i64 {
        let records: Vec<OwnedRecord> = (0..3)
            .map(|j| {
                let value = format!("batch {i} record {j} {}", "-".repeat(30));
                OwnedRecord::new(1_000 + i, Some(b"k"), Some(value.as_bytes()))
            })
            .collect();
        log.append_records(&records, Compression::None).unwrap();
    }
    log.close().unwrap();
    assert!(segment_list(dir).len() > 1);
}

#[test]
fn produce_then_consume_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let part = dir.path().join("events-0");
    let input = "user-1=clicked\nuser-2=viewed=twice\nno key here\n\nuser-3=left\r\n";
    let out = run(
        &[
            "produce",
            s(&part),
            "--key-separator",
            "=",
            "--batch",
            "2",
            "--codec",
            "lz4",
        ],
        input.as_bytes(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "0\n1\n2\n3\n4\n");

    let out = run(&["consume", s(&part), "--from", "earliest"], b"");
    assert!(out.status.success(), "{}", stderr(&out));
    let rows: Vec<Vec<String>> = stdout(&out)
        .lines()
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect();
    let kv: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| (r[0].clone(), r[2].clone(), r[3].clone()))
        .collect();
    let expected = [
        ("0", "user-1", "clicked"),
        ("1", "user-2", "viewed=twice"),
        ("2", "null", "no key here"),
        ("3", "null", ""),
        ("4", "user-3", "left"),
    ];
    let expected: Vec<(String, String, String)> = expected
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect();
    assert_eq!(kv, expected);

    let out = run(
        &["consume", s(&part), "--from", "1", "--max", "2", "--json"],
        b"",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let records = json_lines(&out);
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["offset"], 1);
    assert_eq!(records[0]["key"], "user-2");
    assert_eq!(records[0]["key_encoding"], "utf8");
    assert_eq!(records[1]["key"], Value::Null);
    assert_eq!(records[1]["value"], "no key here");

    let out = run(&["consume", s(&part), "--from", "latest"], b"");
    assert!(out.status.success());
    assert_eq!(stdout(&out), "");

    // The library reads what the CLI wrote, and the CLI left the log cleanly closed.
    assert!(part.join(".kafka_cleanshutdown").exists());
    let log = Log::open(&part, LogConfig::default()).unwrap();
    let values: Vec<Vec<u8>> = log
        .records_from(0)
        .map(|r| r.unwrap().value().unwrap().to_vec())
        .collect();
    assert_eq!(values[4], b"left");
    log.close().unwrap();

    // A second produce continues the log.
    let out = run(&["produce", s(&part)], b"more\n");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "5\n");
}

#[test]
fn produce_sync_prints_durable_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let part = dir.path().join("t-0");
    let input: String = (0..10).map(|i| format!("line {i}\n")).collect();
    let out = run(
        &[
            "produce",
            s(&part),
            "--sync",
            "--batch",
            "3",
            "--codec",
            "gzip",
        ],
        input.as_bytes(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let offsets: Vec<i64> = stdout(&out).lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(offsets, (0..10).collect::<Vec<_>>());
    let log = Log::open(&part, LogConfig::default()).unwrap();
    assert_eq!(log.log_end_offset(), 10);
    assert_eq!(log.recovery_point(), 10);
    let batches = run(&["dump", s(&part), "--json", "--batches-only"], b"");
    let batches = json_lines(&batches);
    assert_eq!(batches.len(), 4, "batches of 3, 3, 3 and 1");
    assert!(batches.iter().all(|b| b["codec"] == "gzip"));
    log.close().unwrap();
}

#[test]
fn produce_rejects_unknown_codec() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        &["produce", s(&dir.path().join("p")), "--codec", "brotli"],
        b"x\n",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("unknown codec"), "{}", stderr(&out));
}

/// A log holding a plain batch with headers and a binary key, an lz4 batch, and a COMMIT
/// marker appended as a replica would; returns the control batch's offset.
fn mixed_log(dir: &Path) -> i64 {
    let log = Log::open(dir, LogConfig::default()).unwrap();
    let mut plain = BatchBuilder::new(BatchOptions::default());
    plain
        .append(
            1_700_000_000_000,
            Some(&[0xff, 0x00, 0x01]),
            Some(b"hello"),
            &[
                Header::new("trace", Some(b"42")),
                Header::new("empty", None),
            ],
        )
        .unwrap();
    plain
        .append(1_700_000_000_001, Some(b"k2"), None, &[])
        .unwrap();
    log.append(&plain.build().unwrap()).unwrap();
    let compressed: Vec<OwnedRecord> = (0..3)
        .map(|i| OwnedRecord::new(1_700_000_000_010 + i, None, Some(b"squeeze me")))
        .collect();
    log.append_records(&compressed, Compression::Lz4).unwrap();
    let at = log.log_end_offset();
    let marker = BatchBuilder::control_batch(
        BatchOptions {
            base_offset: at,
            producer_id: 42,
            producer_epoch: 3,
            partition_leader_epoch: 0,
            ..BatchOptions::default()
        },
        &ControlRecord::end_txn(true, 5),
        1_700_000_000_020,
    )
    .unwrap();
    log.append_replicated(&marker).unwrap();
    log.close().unwrap();
    at
}

#[test]
fn dump_json_matches_what_was_written() {
    let dir = tempfile::tempdir().unwrap();
    let control_at = mixed_log(dir.path());
    let out = run(&["dump", s(dir.path()), "--json"], b"");
    assert!(out.status.success(), "{}", stderr(&out));
    let batches = json_lines(&out);
    assert_eq!(batches.len(), 3);
    assert!(batches.iter().all(|b| b["type"] == "batch"
        && b["crc_valid"] == true
        && b["error"].is_null()
        && b["magic"] == 2));

    let plain = &batches[0];
    assert_eq!(plain["base_offset"], 0);
    assert_eq!(plain["last_offset"], 1);
    assert_eq!(plain["count"], 2);
    assert_eq!(plain["position"], 0);
    assert_eq!(plain["codec"], "none");
    assert_eq!(plain["timestamp_type"], "CreateTime");
    let r0 = &plain["records"][0];
    assert_eq!(r0["offset"], 0);
    assert_eq!(r0["timestamp"], 1_700_000_000_000i64);
    assert_eq!(r0["key"], "ff0001");
    assert_eq!(r0["key_encoding"], "hex");
    assert_eq!(r0["value"], "hello");
    assert_eq!(r0["headers"][0]["key"], "trace");
    assert_eq!(r0["headers"][0]["value"], "42");
    assert_eq!(r0["headers"][1]["value"], Value::Null);
    assert_eq!(plain["records"][1]["value"], Value::Null);

    let lz4 = &batches[1];
    assert_eq!(lz4["codec"], "lz4");
    assert_eq!(lz4["base_offset"], 2);
    assert_eq!(lz4["position"], plain["size"]);
    let values: Vec<&Value> = lz4["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["value"])
        .collect();
    assert_eq!(values, ["squeeze me"; 3]);

    let control = &batches[2];
    assert_eq!(control["base_offset"], control_at);
    assert_eq!(control["control"], true);
    assert_eq!(control["transactional"], true);
    assert_eq!(control["producer_id"], 42);
    assert_eq!(control["producer_epoch"], 3);
    assert_eq!(control["control_marker"]["type"], "COMMIT");
    assert_eq!(control["control_marker"]["coordinator_epoch"], 5);

    // The same batches as the library sees them.
    let bytes = std::fs::read(&segment_list(dir.path())[0]).unwrap();
    let library: Vec<(i64, usize)> = streamlog::Batches::new(&bytes)
        .map(|b| {
            let b = b.unwrap();
            (b.base_offset(), b.size_in_bytes())
        })
        .collect();
    let dumped: Vec<(i64, usize)> = batches
        .iter()
        .map(|b| {
            (
                b["base_offset"].as_i64().unwrap(),
                b["size"].as_u64().unwrap() as usize,
            )
        })
        .collect();
    assert_eq!(dumped, library);

    // One line per record, and headers only.
    let out = run(&["dump", s(dir.path()), "--json", "--records"], b"");
    let records = json_lines(&out);
    assert_eq!(records.len(), 6, "2 + 3 records and the control record");
    assert!(records.iter().all(|r| r["type"] == "record"));
    assert_eq!(records[3]["batch_base_offset"], 2);
    let out = run(&["dump", s(dir.path()), "--json", "--batches-only"], b"");
    assert!(json_lines(&out).iter().all(|b| b.get("records").is_none()));
}

#[test]
fn dump_text_shows_batches_records_and_markers() {
    let dir = tempfile::tempdir().unwrap();
    mixed_log(dir.path());
    let segment = segment_list(dir.path())[0].clone();
    let out = run(&["dump", s(&segment)], b"");
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with(&format!("Dumping {}", segment.display())));
    assert!(text.contains("baseOffset: 0 lastOffset: 1 count: 2 position: 0"));
    assert!(text.contains("codec: lz4"));
    assert!(text.contains("crcValid: true"));
    assert!(text.contains("| offset: 0 timestamp: 1700000000000 key: 0xff0001 value: hello headers: [trace=42, empty=null]"));
    assert!(text.contains("producerId: 42 producerEpoch: 3"));
    assert!(text.contains("isTransactional: true isControl: true"));
    assert!(text.contains("isControl: true controlMarker: COMMIT coordinatorEpoch: 5\n"));
    let out = run(&["dump", s(&segment), "--batches-only"], b"");
    let text = stdout(&out);
    assert_eq!(text.lines().filter(|l| l.starts_with('|')).count(), 0);
    assert_eq!(
        text.lines().filter(|l| l.starts_with("baseOffset")).count(),
        3
    );
    assert!(text.contains("controlMarker: COMMIT"));
}

fn segment_list(dir: &Path) -> Vec<PathBuf> {
    let logs = streamlog::log::list_segment_files(dir).unwrap();
    logs.into_iter().map(|(_, p)| p).collect()
}

/// Size of the first batch of a `.log` file: where the second batch starts.
fn second_batch_at(path: &Path) -> usize {
    let bytes = std::fs::read(path).unwrap();
    let (first, _) = Batch::parse(&bytes, &Default::default()).unwrap();
    first.size_in_bytes()
}

/// Rewrites the file at `path` through `damage`.
fn rewrite(path: &Path, damage: impl FnOnce(&mut Vec<u8>)) {
    let mut bytes = std::fs::read(path).unwrap();
    damage(&mut bytes);
    std::fs::write(path, &bytes).unwrap();
}

#[test]
fn dump_reports_damage_instead_of_crashing() {
    let dir = tempfile::tempdir().unwrap();
    multi_segment_log(dir.path());
    let path = segment_list(dir.path())[0].clone();
    let at = second_batch_at(&path);
    rewrite(&path, |b| b[at + 80] ^= 0x20);
    let out = run(&["dump", s(dir.path()), "--json"], b"");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let lines = json_lines(&out);
    let damaged: Vec<&Value> = lines.iter().filter(|b| b["crc_valid"] == false).collect();
    assert_eq!(damaged.len(), 1);
    assert_eq!(damaged[0]["position"], at);
    assert!(damaged[0]["error"].as_str().unwrap().contains("CRC"));
    assert_eq!(lines.len(), 20, "every batch is still dumped");

    // A file cut mid-batch: what precedes the cut, then a damage line.
    rewrite(&path, |b| b.truncate(at + 10));
    let out = run(&["dump", s(&path), "--json"], b"");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let lines = json_lines(&out);
    let last = lines.last().unwrap();
    assert_eq!(last["type"], "damage");
    assert_eq!(last["position"], at);
    let out = run(&["dump", s(&path)], b"");
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains(&format!("DAMAGED at byte {at}")));
}

#[test]
fn verify_passes_on_a_good_directory() {
    let dir = tempfile::tempdir().unwrap();
    multi_segment_log(dir.path());
    mixed_log(&dir.path().join("mixed"));
    let out = run(&["verify", s(dir.path())], b"");
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(text.starts_with("OK: segments: "), "{text}");
    assert!(text.contains("batches: 20 records: 60"), "{text}");
    assert!(text.contains("problems: 0"), "{text}");

    let out = run(&["verify", s(&dir.path().join("mixed")), "--json"], b"");
    assert_eq!(out.status.code(), Some(0));
    let report = &json_lines(&out)[0];
    assert_eq!(report["ok"], true);
    assert_eq!(report["batches"], 3);
    assert_eq!(report["records"], 6);
    assert_eq!(report["clean_shutdown"], true);
}

/// One way to damage a good log: what it does, and the problem verify must name.
struct Damage {
    name: &'static str,
    /// Damages the log in the directory; returns the file and byte position to be named.
    apply: fn(&Path) -> (PathBuf, usize),
    kind: &'static str,
}

const DAMAGES: [Damage; 4] = [
    Damage {
        name: "flipped byte in a .log",
        apply: |dir| {
            let path = segment_list(dir)[0].clone();
            let at = second_batch_at(&path);
            rewrite(&path, |b| b[at + 80] ^= 0x20);
            (path, at)
        },
        kind: "checksum",
    },
    Damage {
        name: ".log truncated mid-batch",
        apply: |dir| {
            let path = segment_list(dir)[0].clone();
            let at = second_batch_at(&path);
            rewrite(&path, |b| b.truncate(at + 40));
            (path, at)
        },
        kind: "batch-frame",
    },
    Damage {
        name: "corrupt .index entry",
        apply: |dir| {
            let index = segment_list(dir)[0].with_extension("index");
            // The first entry's position moved off its batch start.
            rewrite(&index, |b| b[7] = b[7].wrapping_add(3));
            (index, 0)
        },
        kind: "offset-index",
    },
    Damage {
        name: "overlapping offsets",
        apply: |dir| {
            // The last segment's first batch renumbered into the previous segment.
            let last = segment_list(dir).pop().unwrap();
            rewrite(&last, |b| {
                let base = i64::from_be_bytes(b[..8].try_into().unwrap());
                b[..8].copy_from_slice(&(base - 3).to_be_bytes());
            });
            (last, 0)
        },
        kind: "offset-overlap",
    },
];

#[test]
fn verify_fails_and_names_the_damage() {
    for damage in &DAMAGES {
        let dir = tempfile::tempdir().unwrap();
        multi_segment_log(dir.path());
        let (file, position) = (damage.apply)(dir.path());
        let name = damage.name;

        let out = run(&["verify", s(dir.path())], b"");
        assert_eq!(out.status.code(), Some(1), "{name}: {}", stdout(&out));
        let text = stdout(&out);
        let line = format!(
            "problem: {} at byte {position}: {}",
            file.display(),
            damage.kind
        );
        assert!(text.contains(&line), "{name}: {text}");
        assert!(
            text.lines().last().unwrap().starts_with("DAMAGED: "),
            "{name}: {text}"
        );

        let out = run(&["verify", s(dir.path()), "--json"], b"");
        assert_eq!(out.status.code(), Some(1), "{name}");
        let report = json_lines(&out).remove(0);
        assert_eq!(report["ok"], false, "{name}");
        let named = report["problems"].as_array().unwrap().iter().any(|p| {
            p["kind"] == damage.kind && p["file"] == s(&file) && p["position"] == position
        });
        assert!(named, "{name}: {report}");
    }
}

#[test]
fn errors_exit_non_zero_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("absent");
    for args in [
        vec!["verify", s(&missing)],
        vec!["consume", s(&missing)],
        vec!["dump", s(&missing)],
    ] {
        let out = run(&args, b"");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            stderr(&out).starts_with("streamlog: error: "),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    assert!(!missing.exists(), "consume must not create a directory");

    let part = dir.path().join("p");
    run(&["produce", s(&part)], b"a\nb\n");
    let out = run(&["consume", s(&part), "--from", "7"], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("out of range"), "{}", stderr(&out));

    // Garbage where a segment should be: damage reported, never a panic.
    let junk = dir.path().join("junk");
    std::fs::create_dir(&junk).unwrap();
    std::fs::write(junk.join("00000000000000000000.log"), [0xab; 300]).unwrap();
    for args in [vec!["dump", s(&junk)], vec!["verify", s(&junk)]] {
        let out = run(&args, b"");
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
    }
}
