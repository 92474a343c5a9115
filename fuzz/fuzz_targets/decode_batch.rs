//! Every decoding entry point over arbitrary bytes: framing, `validate`, `records_with` under
//! small limits, record and header iteration, `control_record`, re-encoding.
//!
//! The routine lives in tests/common/decode.rs so that `tests/fuzz_corpus.rs` replays this
//! target's corpus in the ordinary test suite with exactly the same code.
//!
//! Run: `cargo +nightly fuzz run decode_batch` (seed corpus: fuzz/corpus/decode_batch).
#![no_main]

#[path = "../../tests/it/common/decode.rs"]
mod decode;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    decode::decode_everything(data);
});
