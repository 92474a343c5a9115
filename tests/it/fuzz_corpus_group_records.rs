//! Replays the `group_records` fuzz target's corpus (fuzz/corpus/group_records) through the
//! routine the target runs, without nightly Rust or cargo-fuzz: every seed (kafka-python's
//! bytes, one decoder each) decodes and round-trips, and seeded mutations of them (bytes
//! flipped, cut, grown) never panic.

use std::path::Path;

use crate::common::group_decode::{decode_group_bytes, DECODERS};
use crate::common::rng::Rng;

fn corpus() -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/group_records");
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect();
    files.sort();
    files
}

#[test]
fn group_records_corpus_decodes_and_round_trips() {
    let files = corpus();
    assert!(files.len() >= 20, "seed corpus missing");
    let mut decoders = std::collections::BTreeSet::new();
    for (name, bytes) in &files {
        assert!(
            decode_group_bytes(bytes),
            "{name}: a seed no longer decodes"
        );
        decoders.insert(bytes[0] % DECODERS);
    }
    assert_eq!(
        decoders.len(),
        usize::from(DECODERS),
        "a decoder without a seed"
    );
}

#[test]
fn mutated_group_records_never_panic() {
    let files = corpus();
    let mut rng = Rng(12);
    let mut decoded = 0;
    for _ in 0..20_000 {
        let (_, seed) = &files[rng.below(files.len() as u64) as usize];
        let mut bytes = seed.clone();
        for _ in 0..rng.range(1, 4) {
            let at = rng.below(bytes.len() as u64) as usize;
            match rng.below(4) {
                0 => bytes[at] = rng.below(256) as u8,
                1 => bytes[at] ^= 1 << rng.below(8),
                2 => bytes.truncate(at.max(1)),
                _ => bytes.insert(at, rng.below(256) as u8),
            }
        }
        if decode_group_bytes(&bytes) {
            decoded += 1;
        }
    }
    // Some mutations must still decode, or the round-trip check never ran on odd inputs.
    assert!(decoded > 100, "{decoded}");
}
