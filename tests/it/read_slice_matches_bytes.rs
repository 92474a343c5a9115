//! The `FileSlice` of a read names the exact bytes of the segment file that `read_bytes`
//! returns: reading `len` bytes at `position` from `std_file()` with positioned reads (what
//! `sendfile` would send) gives the same bytes, which are also the `.log` file's bytes there.

use crate::common::logs;

use std::os::unix::fs::FileExt;

use logs::{batch_ranges, fill, segment_file, small_segments};
use streamlog::Log;

#[test]
fn slice_bytes_equal_read_bytes_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small_segments(1024)).unwrap();
    let appended = fill(&log, 30, 4);
    let bases = log.segment_base_offsets();
    assert!(bases.len() > 3, "{bases:?}");

    let mut checked = 0;
    for max_bytes in [1, 500, 1 << 20] {
        let mut offset = 0;
        let mut walked = Vec::new();
        while offset < log.log_end_offset() {
            let data = log.read(offset, max_bytes, None).unwrap();
            let slice = data.slice.as_ref().unwrap();
            assert!(!slice.is_empty());
            let expected = log.read_bytes(offset, max_bytes, None).unwrap();
            assert_eq!(slice.len(), expected.len() as u64);

            let file = slice.std_file().expect("a real file backs the slice");
            let mut via_file = vec![0u8; slice.len() as usize];
            file.read_exact_at(&mut via_file, slice.position()).unwrap();
            assert_eq!(via_file, expected, "read({offset}, {max_bytes})");
            assert_eq!(slice.to_vec().unwrap(), expected);

            // The same bytes sit at `position` in the segment's .log file.
            let base = bases[bases.partition_point(|&b| b <= offset) - 1];
            let on_disk = std::fs::read(segment_file(dir.path(), base, "log")).unwrap();
            let at = slice.position() as usize;
            assert_eq!(&on_disk[at..at + expected.len()], &expected[..]);
            // And `position` is where the first batch starts: after the segment's earlier
            // batches.
            let before = batch_ranges(&on_disk[..at]);
            assert!(before.iter().all(|&(_, last)| last < offset));
            assert_eq!(before.first().map_or(base, |r| r.0), base);

            walked.extend(batch_ranges(&expected));
            offset = data.next_offset;
            checked += 1;
        }
        assert_eq!(walked, appended);
    }
    assert!(checked > 30 + bases.len());
}
