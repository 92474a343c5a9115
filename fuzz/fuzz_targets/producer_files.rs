//! The producer-state file loaders over arbitrary bytes: a `.snapshot` and a `.txnindex`
//! must parse or fail with a typed error, never panic or allocate without bound.
//!
//! Random bytes almost never carry a matching CRC-32C, which would leave the snapshot
//! parsers behind the checksum unreached; so each input is also parsed with its CRC field
//! (bytes 2..6, over the bytes from 6 on) set to match, which reaches them on every run.
//! Seeds of both versions (ours, 2, and Kafka's 1) are in `corpus/producer_files/`.
//!
//! Run: `cargo +nightly fuzz run producer_files`.
#![no_main]

use std::path::Path;

/// Where a snapshot's CRC field and the bytes it covers start.
const CRC_AT: usize = 2;
const BODY_AT: usize = 6;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let path = Path::new("0.snapshot");
    let _ = streamlog::producer::parse_snapshot_file(path, data);
    if let Some(body) = data.get(BODY_AT..) {
        let mut fixed = data.to_vec();
        fixed[CRC_AT..BODY_AT].copy_from_slice(&crc32c::crc32c(body).to_be_bytes());
        let _ = streamlog::producer::parse_snapshot_file(path, &fixed);
    }
    let _ = streamlog::producer::parse_txn_index_file(
        Path::new("00000000000000000000.txnindex"),
        data,
    );
});
