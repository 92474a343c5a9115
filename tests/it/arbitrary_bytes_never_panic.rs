//! Hostile bytes never panic the decoder: every failure is an `Err`, and memory stays bounded
//! by the configured limits rather than by what the bytes claim.
//!
//! Arbitrary bytes mostly die at the frame or CRC check, so the property tests also take
//! valid batches, overwrite bytes, and then recompute the CRC: those bytes reach the header
//! checks, the codecs and the record parser.

use crate::common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use common::decode::{decode_everything, SMALL_LIMITS};
use common::strategies::record;
use common::strategies::{batch_options, records};
use common::{build_batch, enabled_codecs, fix_crc, golden_files, raw};
use proptest::collection::vec;
use proptest::prelude::*;
use streamlog::{Batch, BatchBuilder, BatchOptions, Compression, DecodeLimits, Error};

/// Counts the bytes each thread allocates, so a test can bound what one call costs without
/// seeing the allocations of tests running on other threads. (zstd's C library allocates its
/// own state with `malloc`, which this does not see; the output buffers it fills are Rust's.)
struct CountingAllocator;

thread_local! {
    static ALLOCATED: Cell<usize> = const { Cell::new(0) };
}

fn count(bytes: usize) {
    // `try_with`: the slot may already be gone while a thread is being torn down.
    let _ = ALLOCATED.try_with(|a| a.set(a.get().saturating_add(bytes)));
}

// SAFETY: every call is forwarded unchanged to the system allocator; the counter is a
// const-initialised thread-local `Cell` with no destructor, so updating it never allocates.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: same layout contract as our caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: same layout contract as our caller's.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        // SAFETY: `ptr` came from `System` with `layout`; the caller guarantees `new_size`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Runs `f` and returns its result with the bytes this thread allocated meanwhile.
fn allocated_by<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let before = ALLOCATED.with(Cell::get);
    let out = f();
    (out, ALLOCATED.with(Cell::get) - before)
}

/// A valid batch of `records`, in one of the enabled codecs.
fn valid_batch() -> impl Strategy<Value = Vec<u8>> {
    (records(6), batch_options(), any::<prop::sample::Index>()).prop_map(
        |(records, opts, codec)| {
            let compression = *codec.get(&enabled_codecs());
            build_batch(
                BatchOptions {
                    compression,
                    ..opts
                },
                &records,
            )
            .unwrap()
        },
    )
}

/// Overwrites bytes at the given (position, value) pairs, positions taken modulo the part of
/// `bytes` from `from` on.
fn overwrite(bytes: &mut [u8], from: usize, edits: &[(prop::sample::Index, u8)]) {
    let span = bytes.len() - from;
    for (at, value) in edits {
        bytes[from + at.index(span)] = *value;
    }
}

/// Recomputes the CRC of a damaged batch, then decodes it: the damage now gets past the
/// checksum to whatever parses the bytes behind it.
fn decode_with_crc_fixed(bytes: &mut [u8]) {
    fix_crc(bytes);
    let batch = Batch::new(bytes).unwrap();
    assert!(
        !matches!(batch.validate(), Err(Error::ChecksumMismatch { .. })),
        "CRC not fixed"
    );
    decode_everything(bytes);
}

/// Up to `max - 1` overwrites for [`overwrite`].
fn edits(max: usize) -> impl Strategy<Value = Vec<(prop::sample::Index, u8)>> {
    vec((any::<prop::sample::Index>(), any::<u8>()), 1..max)
}

/// Values for a lying field: the boundaries parsers get wrong, and anything at all.
fn edge_value() -> impl Strategy<Value = i64> {
    prop_oneof![
        Just(-2i64),
        Just(-1i64),
        Just(0i64),
        Just(1i64),
        Just(i64::from(i32::MAX)),
        Just(i64::from(i32::MIN)),
        Just(i64::MAX),
        Just(i64::MIN),
        -3..64i64,
        any::<i64>(),
    ]
}

/// Which field of a record lies: `None` for its length prefix, else one of its tokens (see
/// `raw::record_tokens`). The length prefix gets a third of the lies, being what frames the
/// rest.
fn lied_field() -> impl Strategy<Value = Option<prop::sample::Index>> {
    prop_oneof![1 => Just(None), 2 => any::<prop::sample::Index>().prop_map(Some)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes(bytes in vec(any::<u8>(), 0..2048)) {
        decode_everything(&bytes);
    }

    /// Arbitrary bytes behind a plausible frame: length matching, magic 2, CRC correct.
    #[test]
    fn arbitrary_bytes_behind_a_valid_frame(mut bytes in vec(any::<u8>(), 61..2048)) {
        let length = i32::try_from(bytes.len() - 12).unwrap();
        bytes[8..12].copy_from_slice(&length.to_be_bytes());
        bytes[16] = 2;
        decode_with_crc_fixed(&mut bytes);
    }

    /// Damage anywhere, CRC left stale: framing or the CRC must catch it, without panicking.
    #[test]
    fn damaged_batches(
        mut bytes in valid_batch(),
        edits in edits(8),
    ) {
        overwrite(&mut bytes, 0, &edits);
        decode_everything(&bytes);
    }

    /// Damage after the CRC field, CRC then recomputed: header checks, codecs and the record
    /// parser see it.
    #[test]
    fn damaged_batches_with_valid_crc(
        mut bytes in valid_batch(),
        edits in edits(8),
    ) {
        overwrite(&mut bytes, 21, &edits);
        decode_with_crc_fixed(&mut bytes);
    }

    /// Damaged records, compressed after the damage so they decompress cleanly and reach the
    /// record parser in every codec.
    #[test]
    fn damaged_records_inside_every_codec(
        records in records(6),
        opts in batch_options(),
        edits in edits(6),
    ) {
        let mut bytes = build_batch(opts, &records).unwrap();
        if bytes.len() > 61 {
            overwrite(&mut bytes, 61, &edits);
        }
        for codec in enabled_codecs() {
            decode_everything(&raw::batch(&bytes, &bytes[61..], codec));
        }
    }

    /// Hand-encoded records in which some fields lie (a length, a count, a delta, a varint
    /// replaced by an edge value), in every codec; without lies they must decode exactly.
    #[test]
    fn records_with_lying_fields(
        records in vec(record(), 1..5),
        lies in vec((any::<prop::sample::Index>(), lied_field(), edge_value()), 0..4),
        count_lie in prop::option::of(edge_value()),
    ) {
        let mut section = Vec::new();
        for (i, r) in records.iter().enumerate() {
            let mut tokens = raw::record_tokens(r, r.timestamp, i as i32);
            let mut length_lie = None;
            for (which, field, value) in &lies {
                if which.index(records.len()) != i {
                    continue;
                }
                match field {
                    None => length_lie = Some(*value),
                    Some(at) => *at.get_mut(&mut tokens) = raw::varint(*value),
                }
            }
            match length_lie {
                None => section.extend(raw::frame_record(&tokens)),
                Some(length) => {
                    section.extend(raw::varint(length));
                    section.extend(tokens.concat());
                }
            }
        }
        let n = records.len() as i32;
        let count = count_lie.map_or(n, |c| c as i32);
        let header = raw::header(count, (n.max(count) - 1).max(0), false);
        for codec in enabled_codecs() {
            let bytes = raw::batch(&header, &section, codec);
            let summary = decode_everything(&bytes);
            if lies.is_empty() && count_lie.is_none() {
                let want: Vec<_> = records
                    .iter()
                    .zip(0..)
                    .map(|(r, offset)| streamlog::OwnedRecord { offset, ..r.clone() })
                    .collect();
                prop_assert_eq!(summary.log.unwrap(), want);
            }
        }
    }

    /// Golden files, damaged and re-checksummed batch by batch, back to back.
    #[test]
    fn damaged_golden_files(
        file in any::<prop::sample::Index>(),
        edits in edits(6),
    ) {
        let golden = golden_files();
        let (_, bytes, _) = file.get(&golden);
        let mut out = Vec::new();
        for batch in streamlog::Batches::new(bytes) {
            let mut batch = batch.unwrap().as_bytes().to_vec();
            overwrite(&mut batch, 21, &edits);
            fix_crc(&mut batch);
            out.extend_from_slice(&batch);
        }
        decode_everything(&out);
    }
}

/// A tiny compressed batch whose records inflate far past `max_decompressed_bytes` is refused
/// with `DecompressedTooLarge`, having cost about the limit in memory, not the inflated size.
#[test]
fn decompression_bomb_is_refused() {
    const INFLATED: usize = 4 << 20;
    const LIMIT: usize = 32 << 10;
    let limits = DecodeLimits {
        max_decompressed_bytes: LIMIT,
        ..DecodeLimits::DEFAULT
    };
    let zeros = vec![0u8; INFLATED];
    for codec in enabled_codecs()
        .into_iter()
        .filter(|c| *c != Compression::None)
    {
        let mut builder = BatchBuilder::new(BatchOptions::compressed(codec));
        builder.append(0, None, Some(&zeros), &[]).unwrap();
        let bytes = builder.build().unwrap();
        assert!(
            bytes.len() < INFLATED / 16,
            "{codec}: {} bytes",
            bytes.len()
        );
        let batch = Batch::new(&bytes).unwrap();
        batch.validate().unwrap();

        let (result, cost) = allocated_by(|| batch.records_with(&limits).map(|_| ()));
        let err = result.unwrap_err();
        assert!(
            matches!(err, Error::DecompressedTooLarge { limit, .. } if limit == LIMIT as u64),
            "{codec}: {err}"
        );
        assert!(cost < INFLATED / 8, "{codec}: {cost} bytes allocated");

        let mut scratch = Vec::new();
        let err = batch
            .records_in(&mut scratch, &limits)
            .map(|_| ())
            .unwrap_err();
        assert!(
            matches!(err, Error::DecompressedTooLarge { .. }),
            "{codec}: {err}"
        );

        // The same batch decodes under limits that allow it.
        let records = batch.records().unwrap();
        let values: Vec<usize> = records
            .iter()
            .map(|r| r.unwrap().value.unwrap().len())
            .collect();
        assert_eq!(values, [INFLATED], "{codec}");
    }
}

/// A batch that declares `i32::MAX` records but holds one is an error, and decoding it
/// allocates nothing in proportion to the declared count.
#[test]
fn huge_record_count_is_an_error_without_allocating_for_it() {
    for codec in enabled_codecs() {
        let mut builder = BatchBuilder::new(BatchOptions::compressed(codec));
        builder.append(0, Some(b"k"), Some(b"v"), &[]).unwrap();
        let mut bytes = builder.build().unwrap();
        bytes[23..27].copy_from_slice(&(i32::MAX - 1).to_be_bytes()); // last offset delta
        bytes[57..61].copy_from_slice(&i32::MAX.to_be_bytes()); // record count
        fix_crc(&mut bytes);
        let batch = Batch::new(&bytes).unwrap();
        batch.validate().unwrap();

        let (result, cost) = allocated_by(|| {
            let records = batch.records_with(&SMALL_LIMITS)?;
            records
                .iter()
                .collect::<Result<Vec<_>, _>>()
                .map(|r| r.len())
        });
        let err = result.unwrap_err();
        assert!(
            matches!(
                err,
                Error::RecordCountMismatch {
                    declared: i32::MAX,
                    found: 1,
                    ..
                }
            ),
            "{codec}: {err}"
        );
        assert!(cost < 1 << 20, "{codec}: {cost} bytes allocated");
    }
}
