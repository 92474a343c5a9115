//! A segment whose `.index` or `.timeindex` is missing (deleted by an operator, lost in a
//! crash) gets it rebuilt from its `.log` file, sealed or active, after a clean or an
//! unclean shutdown; lookups answer as before and the rebuilt files equal the originals.

use crate::common::logs;

use logs::{check_indexes_rebuilt, segment_file, small_segments};
use streamlog::Log;

fn rebuilt_after_deleting(exts: &'static [&'static str], clean: bool) {
    check_indexes_rebuilt(|dir, bases| {
        let log = Log::open(dir, small_segments(1024)).unwrap();
        if clean {
            log.close().unwrap();
        } else {
            log.abandon(); // a crash: the active segment's indexes stay preallocated
        }
        for &base in bases {
            for ext in exts {
                std::fs::remove_file(segment_file(dir, base, ext)).unwrap();
            }
        }
    });
}

#[test]
fn both_indexes_missing_after_clean_shutdown() {
    rebuilt_after_deleting(&["index", "timeindex"], true);
}

#[test]
fn both_indexes_missing_after_a_crash() {
    rebuilt_after_deleting(&["index", "timeindex"], false);
}

#[test]
fn offset_index_missing() {
    rebuilt_after_deleting(&["index"], true);
}

#[test]
fn time_index_missing() {
    rebuilt_after_deleting(&["timeindex"], true);
}
