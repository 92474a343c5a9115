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
    let path = dir.join(name);
    if !fs.exists(&path) {
        return Ok(None);
    }
    let bytes = crate::io::read_file(fs, &path)?;
    let bad = || Error::CorruptCheckpoint { path: path.clone() };
    let text = std::str::from_utf8(&bytes).map_err(|_| bad())?;
    let mut lines = text.lines();
    if lines.next() != Some("0") {
        return Err(bad());
    }
    let count: usize = lines.next().and_then(|l| l.parse().ok()).ok_or_else(bad)?;
    let mut offset = None;
    for _ in 0..count {
        let line = lines.next().ok_or_else(bad)?;
        let mut fields = line.split(' ');
        let (Some(_topic), Some(_partition), Some(value), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(bad());
        };
        offset = Some(value.parse::<i64>().map_err(|_| bad())?);
    }
    Ok(offset)
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
}
