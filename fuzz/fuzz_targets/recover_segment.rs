//! Opening a partition directory of arbitrary bytes: a `.log` with its `.index` and
//! `.timeindex` (and optionally a second segment, checkpoints and a clean-shutdown marker),
//! split from the input as tests/common/recover_segment.rs describes and written into a
//! `SimFs` directory. `Log::open_with` returns `Ok` or a typed error, never panics; an
//! opened log reads back without panicking, and a recovered one returns only batches that
//! validate.
//!
//! The routine lives in tests/common/recover_segment.rs so that
//! `tests/fuzz_corpus_recover_segment.rs` replays this target's corpus in the ordinary test
//! suite with exactly the same code.
//!
//! Run: `cargo +nightly fuzz run recover_segment` (seed corpus: fuzz/corpus/recover_segment).
#![no_main]

#[path = "../../tests/it/common/recover_segment.rs"]
mod recover_segment;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    recover_segment::recover_from_bytes(data);
});
