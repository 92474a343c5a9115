//! Replays the `decode_batch` fuzz target's corpus (fuzz/corpus/decode_batch) through the
//! same routine the target runs, so every input the fuzzer saved stays a regression test
//! without needing nightly Rust or cargo-fuzz.

use crate::common;

use std::path::Path;

use common::decode::decode_everything;
use common::golden_files;

#[test]
fn fuzz_corpus_decodes_without_panicking() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/decode_batch");
    let golden = golden_files();
    let mut files = 0;
    let mut seeds = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if !path.is_file() {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let summary = decode_everything(&bytes);
        files += 1;
        // Seeds copied from the golden files must still decode completely, or the corpus
        // has gone stale and the fuzzer starts from noise.
        if let Some((name, _, json)) = golden.iter().find(|(_, b, _)| *b == bytes) {
            let records = summary
                .log
                .unwrap_or_else(|e| panic!("{}: seed {name} failed: {e}", path.display()));
            let want: usize = json["batches"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b["records"].as_array().unwrap().len())
                .sum();
            assert_eq!(records.len(), want, "{name}");
            assert_eq!(summary.records, want, "{name}");
            seeds += 1;
        }
    }
    assert!(files > 0, "empty corpus in {}", dir.display());
    assert_eq!(seeds, golden.len(), "every golden file should be a seed");
}
