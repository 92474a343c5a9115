//! Index files are only hints: a `.index` or `.timeindex` that cannot be trusted (a size
//! that is not whole entries, entries that do not increase, a position past the end of the
//! `.log`, a zeroed time index) is rebuilt from the `.log` file, for sealed segments and
//! the active one, and every lookup answers as before. The rebuilt files equal the
//! originals.

use crate::common::logs;

use std::path::Path;

use logs::{check_indexes_rebuilt, segment_file};

/// Damages the `ext` index of the first (sealed) and the last (active) segment.
fn rebuilt_after(damage: impl Fn(&Path, &mut Vec<u8>), ext: &str) {
    check_indexes_rebuilt(|dir, bases| {
        for base in [bases[0], *bases.last().unwrap()] {
            let path = segment_file(dir, base, ext);
            let mut bytes = std::fs::read(&path).unwrap();
            damage(&path, &mut bytes);
            std::fs::write(&path, &bytes).unwrap();
        }
    });
}

#[test]
fn odd_sized_offset_index() {
    rebuilt_after(|_, b| b.extend_from_slice(&[1, 2, 3]), "index");
}

#[test]
fn odd_sized_time_index() {
    rebuilt_after(|_, b| b.push(0), "timeindex");
}

#[test]
fn offset_entries_not_increasing() {
    rebuilt_after(
        |p, b| {
            assert!(b.len() >= 16, "{} has fewer than two entries", p.display());
            let (first, second) = b.split_at_mut(8);
            first.swap_with_slice(&mut second[..8]);
        },
        "index",
    );
}

#[test]
fn offset_entry_past_the_end_of_the_log() {
    rebuilt_after(
        |p, b| {
            let n = b.len();
            assert!(n >= 8, "{} has no entries", p.display());
            b[n - 4..].copy_from_slice(&0x00ff_ffffu32.to_be_bytes());
        },
        "index",
    );
}

#[test]
fn zeroed_time_index() {
    rebuilt_after(
        |p, b| {
            assert!(b.len() >= 24, "{} has fewer than two entries", p.display());
            b.fill(0);
        },
        "timeindex",
    );
}
