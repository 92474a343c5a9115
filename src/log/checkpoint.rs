//! Kafka's offset checkpoint files, one per partition directory.
//!
//! ```text
//! 0                     version
//! 1                     number of entries
//! <topic> <partition> <offset>
//! ```
//!
//! Kafka keeps one such file per data directory listing every partition; a `Log` owns one
//! partition directory, so it keeps its own files in the same format. They are written
//! through [`write_file_atomic`](crate::io::write_file_atomic): tmp, fsync, rename, fsync dir.

use std::path::Path;

use crate::error::{Error, Result};
use crate::io::FileSystem;

/// The recovery point: offsets below it are known durable.
pub const RECOVERY_POINT_CHECKPOINT: &str = "recovery-point-offset-checkpoint";

/// The high watermark of replicated partitions (Kafka's name and format). A `Storage` keeps
/// one in its data directory listing its partitions, as Kafka does; a `Log` opened on its
/// own keeps one in its partition directory, listing that partition.
pub const REPLICATION_OFFSET_CHECKPOINT: &str = "replication-offset-checkpoint";

/// Where inside its segment the recovery point lies (streamlog's own file; Kafka has none):
/// written beside [`RECOVERY_POINT_CHECKPOINT`] each time that is, so that recovery after a
/// crash scans only what follows the recovery point in its segment instead of the whole
/// segment. Trusted only when it names the same recovery point as the checkpoint and the
/// batch it records is found there (see ARCHITECTURE.md).
pub const RECOVERY_POINT_POSITION: &str = "recovery-point-position";

/// The contents of [`RECOVERY_POINT_POSITION`]: the recovery point, the base offset of the
/// segment it lies in, and where it lies there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecoveryPosition {
    pub recovery_point: i64,
    pub segment_base: i64,
    pub at: crate::segment::ResumePosition,
}

/// Writes `p` to [`RECOVERY_POINT_POSITION`] in `dir`, atomically and durably.
///
/// ```text
/// 0                     version
/// <recovery point> <segment base offset> <batch position> <batch base offset> <batch CRC>
///     <position after the batch> <offset-index entries> <time-index entries>
/// ```
pub(crate) fn write_position(fs: &dyn FileSystem, dir: &Path, p: &RecoveryPosition) -> Result<()> {
    let a = &p.at;
    let text = format!(
        "0\n{} {} {} {} {} {} {} {}\n",
        p.recovery_point,
        p.segment_base,
        a.batch_position,
        a.batch_base_offset,
        a.batch_crc,
        a.position,
        a.offset_entries,
        a.time_entries
    );
    crate::io::write_file_atomic(fs, &dir.join(RECOVERY_POINT_POSITION), text.as_bytes())
}

/// Reads [`RECOVERY_POINT_POSITION`] in `dir`: `None` when it is missing or unreadable
/// (it only saves work: recovery then scans the whole segment).
pub(crate) fn read_position(fs: &dyn FileSystem, dir: &Path) -> Option<RecoveryPosition> {
    let path = dir.join(RECOVERY_POINT_POSITION);
    if !fs.exists(&path) {
        return None;
    }
    let bytes = crate::io::read_file(fs, &path).ok()?;
    let text = std::str::from_utf8(&bytes).ok()?;
    let mut lines = text.lines();
    if lines.next() != Some("0") {
        return None;
    }
    let mut f = lines.next()?.split(' ');
    let mut int = || f.next()?.parse::<i64>().ok();
    let (rp, base, batch_position, batch_base) = (int()?, int()?, int()?, int()?);
    let (crc, position, offset_entries, time_entries) = (int()?, int()?, int()?, int()?);
    Some(RecoveryPosition {
        recovery_point: rp,
        segment_base: base,
        at: crate::segment::ResumePosition {
            batch_position: u64::try_from(batch_position).ok()?,
            batch_base_offset: batch_base,
            batch_crc: u32::try_from(crc).ok()?,
            position: u64::try_from(position).ok()?,
            next_offset: rp,
            offset_entries: usize::try_from(offset_entries).ok()?,
            time_entries: usize::try_from(time_entries).ok()?,
        },
    })
}

/// The topic and partition a directory named `<topic>-<partition>` holds.
fn topic_partition(dir: &Path) -> (String, u32) {
    let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("log");
    match name.rsplit_once('-') {
        Some((topic, p)) => match p.parse::<u32>() {
            Ok(p) => (topic.to_string(), p),
            Err(_) => (name.to_string(), 0),
        },
        None => (name.to_string(), 0),
    }
}

/// Writes `offset` to the checkpoint file `name` in `dir`, atomically and durably.
pub(crate) fn write(fs: &dyn FileSystem, dir: &Path, name: &str, offset: i64) -> Result<()> {
    let (topic, partition) = topic_partition(dir);
    let text = format!("0\n1\n{topic} {partition} {offset}\n");
    crate::io::write_file_atomic(fs, &dir.join(name), text.as_bytes())
}

/// Reads the checkpoint file `name` in `dir`: `None` when it does not exist.
pub(crate) fn read(fs: &dyn FileSystem, dir: &Path, name: &str) -> Result<Option<i64>> {
    Ok(read_entries(fs, dir, name)?.and_then(|entries| entries.last().map(|e| e.2)))
}

/// One line of an offset checkpoint: topic, partition, offset.
pub(crate) type Entry = (String, u32, i64);

/// Writes `entries` to the checkpoint file `name` in `dir` (Kafka's format, one line a
/// partition), atomically and durably.
pub(crate) fn write_entries(
    fs: &dyn FileSystem,
    dir: &Path,
    name: &str,
    entries: &[Entry],
) -> Result<()> {
    let lines = entries
        .iter()
        .map(|(topic, partition, offset)| format!("{topic} {partition} {offset}"));
    write_lines(fs, &dir.join(name), entries.len(), lines)
}

/// Writes Kafka's version-0 checkpoint text (`0`, the entry count, one entry a line) to
/// `path`, atomically and durably.
pub(crate) fn write_lines(
    fs: &dyn FileSystem,
    path: &Path,
    count: usize,
    lines: impl Iterator<Item = String>,
) -> Result<()> {
    let mut text = format!("0\n{count}\n");
    for line in lines {
        text.push_str(&line);
        text.push('\n');
    }
    crate::io::write_file_atomic(fs, path, text.as_bytes())
}

/// Reads Kafka's version-0 checkpoint text at `path`, parsing each of its entries with
/// `parse` (which answers `None` for a bad line): `None` when the file does not exist, and
/// [`Error::CorruptCheckpoint`] for a wrong version, a missing or bad count or entry.
pub(crate) fn read_lines<T>(
    fs: &dyn FileSystem,
    path: &Path,
    mut parse: impl FnMut(&str, &[T]) -> Option<T>,
) -> Result<Option<Vec<T>>> {
    if !fs.exists(path) {
        return Ok(None);
    }
    let bytes = crate::io::read_file(fs, path)?;
    let bad = || Error::CorruptCheckpoint {
        path: path.to_path_buf(),
    };
    let text = std::str::from_utf8(&bytes).map_err(|_| bad())?;
    let mut lines = text.lines();
    if lines.next() != Some("0") {
        return Err(bad());
    }
    let count: usize = lines.next().and_then(|l| l.parse().ok()).ok_or_else(bad)?;
    let mut entries = Vec::new();
    for _ in 0..count {
        let line = lines.next().ok_or_else(bad)?;
        let entry = parse(line, &entries).ok_or_else(bad)?;
        entries.push(entry);
    }
    Ok(Some(entries))
}

/// Every entry of the checkpoint file `name` in `dir`: `None` when it does not exist.
pub(crate) fn read_entries(
    fs: &dyn FileSystem,
    dir: &Path,
    name: &str,
) -> Result<Option<Vec<Entry>>> {
    read_lines(fs, &dir.join(name), |line, _| {
        let mut fields = line.split(' ');
        let (Some(topic), Some(partition), Some(value), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return None;
        };
        let partition = partition.parse::<u32>().ok()?;
        let offset = value.parse::<i64>().ok()?;
        Some((topic.to_string(), partition, offset))
    })
}

/// The topic and partition the checkpoint of the partition directory `dir` names.
pub(crate) fn partition_of(dir: &Path) -> (String, u32) {
    topic_partition(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::RealFs;

    #[test]
    fn round_trip_in_kafka_format() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("orders-7");
        std::fs::create_dir(&dir).unwrap();
        write(&RealFs, &dir, RECOVERY_POINT_CHECKPOINT, 1234).unwrap();
        let text = std::fs::read_to_string(dir.join(RECOVERY_POINT_CHECKPOINT)).unwrap();
        assert_eq!(text, "0\n1\norders 7 1234\n");
        assert_eq!(
            read(&RealFs, &dir, RECOVERY_POINT_CHECKPOINT).unwrap(),
            Some(1234)
        );
        assert_eq!(read(&RealFs, &dir, "missing").unwrap(), None);
        std::fs::write(dir.join("bad"), "0\n1\norders 7\n").unwrap();
        assert!(matches!(
            read(&RealFs, &dir, "bad"),
            Err(Error::CorruptCheckpoint { .. })
        ));
    }

    #[test]
    fn many_partitions_round_trip() {
        let tmp = tempfile::tempdir().unwrap();
        let entries = vec![("a".to_string(), 0, 5), ("b-c".to_string(), 3, 0)];
        write_entries(&RealFs, tmp.path(), REPLICATION_OFFSET_CHECKPOINT, &entries).unwrap();
        let text = std::fs::read_to_string(tmp.path().join(REPLICATION_OFFSET_CHECKPOINT)).unwrap();
        assert_eq!(text, "0\n2\na 0 5\nb-c 3 0\n");
        let back = read_entries(&RealFs, tmp.path(), REPLICATION_OFFSET_CHECKPOINT).unwrap();
        assert_eq!(back, Some(entries));
    }
}
