//! The consumer-group decoders over arbitrary bytes: `__consumer_offsets` keys, offset
//! commit values, group metadata values, whole records, and the consumer protocol's
//! subscription, assignment and sticky user data. Each must decode or fail with a typed
//! error, never panic or allocate without bound; what decodes re-encodes to the same value.
//!
//! The routine lives in tests/it/common/group_decode.rs so that
//! `tests/it/fuzz_corpus_group_records.rs` replays this target's corpus in the ordinary test
//! suite with exactly the same code.
//!
//! Run: `cargo +nightly fuzz run group_records` (seed corpus: fuzz/corpus/group_records).
#![no_main]

#[path = "../../tests/it/common/group_decode.rs"]
mod group_decode;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    group_decode::decode_group_bytes(data);
});
