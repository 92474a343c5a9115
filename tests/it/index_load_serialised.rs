//! The lazy load (and rebuild) of a sealed segment's indexes is serialised: while one reader
//! loads them, a second reader of the same segment waits for that reader's indexes instead
//! of opening, rebuilding and trimming the same files at once (each would map a file the
//! other trims).
//!
//! `SimFs` holds the first reader at the open of the segment's `.index` file (`stall`). A
//! second reader then starts: with the load serialised it waits on the first, and never
//! reaches that open. The bounded wait for a second stalled open only gives an unserialised
//! load the time to show itself; on correct code no second open can ever stall, whatever the
//! timing. Once released, both readers read the right records and the index is whole.

use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::common::sim_log::{self, append, contents, expected, open, segment_file};
use streamlog::io::{FileSystem, SimFs, SimOp};

const HANG_GUARD: Duration = Duration::from_secs(120);

#[test]
fn a_second_reader_waits_for_the_first_ones_index_load() {
    let fs = SimFs::new(11);
    let config = sim_log::rolling(4096);
    let (log, _) = open(&fs, &config, "first open");
    let mut next = 0;
    for tag in 0..12 {
        next = append(&log, tag, 4, 200, next);
    }
    log.flush().unwrap();
    assert!(log.segment_count() > 2);
    log.close().unwrap();
    // The first segment's offset index is lost: its load is a rebuild from the `.log`.
    let index = segment_file(0, "index");
    fs.remove(&index).unwrap();

    let (log, _) = open(&fs, &config, "reopen");
    let log = Arc::new(log);
    fs.stall(SimOp::Open, Some("00000000000000000000.index"));
    let first = {
        let log = Arc::clone(&log);
        thread::spawn(move || log.read_bytes(5, 1, None))
    };
    assert!(
        fs.wait_for_stalled(1, HANG_GUARD),
        "the first load never opened the index"
    );
    let second = {
        let log = Arc::clone(&log);
        thread::spawn(move || log.read_bytes(9, 1, None))
    };
    assert!(
        !fs.wait_for_stalled(2, Duration::from_millis(500)),
        "a second reader loaded the same indexes at once"
    );
    assert_eq!(fs.stalled(), 1);
    fs.release_stalls();
    for (reader, offset) in [(first, 5), (second, 9)] {
        let bytes = reader.join().unwrap().unwrap();
        let batch = streamlog::Batch::new(&bytes).unwrap();
        assert!((batch.base_offset()..=batch.last_offset()).contains(&offset));
    }
    let want: Vec<(u64, i64, usize, usize)> = (0..12).map(|t| (t, 4 * t as i64, 4, 200)).collect();
    assert_eq!(contents(&log), expected(&want));
    assert!(fs.exists(&index));
}
