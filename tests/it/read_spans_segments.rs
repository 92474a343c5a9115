//! A log of many segments reads as one sequence: `records_from` crosses segment boundaries
//! on its own; `read` hands back batches of a single segment and the next read, from its
//! `next_offset`, continues in the next one.

use crate::common::logs;

use logs::{batch_ranges, fetched, fill, small_segments};
use streamlog::Log;

const BATCHES: i64 = 40;
const PER_BATCH: usize = 5;

fn segment_of(bases: &[i64], offset: i64) -> usize {
    bases.partition_point(|&b| b <= offset) - 1
}

#[test]
fn read_returns_one_segment_at_a_time_and_continues() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small_segments(1024)).unwrap();
    let appended = fill(&log, BATCHES, PER_BATCH);
    let bases = log.segment_base_offsets();
    assert!(bases.len() >= 8, "{bases:?}");

    let mut offset = 0;
    let mut seen = Vec::new();
    let mut reads = 0;
    while offset < log.log_end_offset() {
        let data = log.read(offset, 1 << 20, None).unwrap();
        let ranges = batch_ranges(&fetched(&data));
        // Everything returned lies in the segment holding `offset`, and all of it.
        let seg = segment_of(&bases, offset);
        let seg_end = bases.get(seg + 1).copied().unwrap_or(log.log_end_offset());
        assert_eq!(ranges.first().unwrap().0, bases[seg]);
        assert_eq!(ranges.last().unwrap().1 + 1, seg_end);
        assert_eq!(data.first_batch_offset, Some(bases[seg]));
        assert_eq!(data.next_offset, seg_end);
        assert_eq!(data.log_end_offset, log.log_end_offset());
        seen.extend(ranges);
        offset = data.next_offset;
        reads += 1;
    }
    assert_eq!(reads, bases.len());
    assert_eq!(seen, appended);
}

#[test]
fn small_reads_walk_batch_by_batch_across_boundaries() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small_segments(1024)).unwrap();
    let appended = fill(&log, BATCHES, PER_BATCH);
    let mut offset = 0;
    for &(base, last) in &appended {
        let data = log.read(offset, 1, None).unwrap();
        assert_eq!(batch_ranges(&fetched(&data)), vec![(base, last)]);
        offset = data.next_offset;
    }
    assert_eq!(offset, log.log_end_offset());
}

#[test]
fn records_from_crosses_segments_from_any_offset() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small_segments(1024)).unwrap();
    fill(&log, BATCHES, PER_BATCH);
    let end = log.log_end_offset();
    assert_eq!(end, BATCHES * PER_BATCH as i64);
    let bases = log.segment_base_offsets();
    // From the start, from a segment base, from just before one, and from inside a batch.
    let mut starts = vec![0, 3, end - 1];
    for &b in &bases[1..] {
        starts.extend([b - 1, b, b + 2]);
    }
    for start in starts {
        let records: Vec<_> = log.records_from(start).map(|r| r.unwrap()).collect();
        let offsets: Vec<i64> = records.iter().map(|r| r.offset()).collect();
        assert_eq!(offsets, (start..end).collect::<Vec<_>>(), "from {start}");
        for r in &records {
            // fill() keys record i of batch b as "k<b>-<i>".
            let (b, i) = (r.offset() / PER_BATCH as i64, r.offset() % PER_BATCH as i64);
            assert_eq!(r.key(), Some(format!("k{b}-{i}").as_bytes()));
            assert_eq!(r.value().map(<[u8]>::len), Some(40));
        }
    }
}
