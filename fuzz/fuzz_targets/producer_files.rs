//! The producer-state file loaders over arbitrary bytes: a `.snapshot` and a `.txnindex`
//! must parse or fail with a typed error, never panic or allocate without bound.
//!
//! Run: `cargo +nightly fuzz run producer_files`.
#![no_main]

use std::path::Path;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = streamlog::producer::parse_snapshot_file(Path::new("0.snapshot"), data);
    let _ = streamlog::producer::parse_txn_index_file(
        Path::new("00000000000000000000.txnindex"),
        data,
    );
});
