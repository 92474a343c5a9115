//! Swapping cleaned segments in for the segments they replace, so that a crash at any point
//! leaves the log as it was before the compaction pass or as it is after it, never a mix
//! (Kafka's `replaceSegments` and the swap-file handling of its `LogLoader`, extended so a
//! pass of several groups commits at once).
//!
//! ```text
//! 1. <base>.log.cleaned (+ .index.cleaned, .timeindex.cleaned) written, sealed, fsynced,
//!    one segment per group
//! 2. rename every .index.cleaned and .timeindex.cleaned, then every .log.cleaned, to .swap;
//!    fsync dir. The pass has committed once no .log.cleaned is left.
//! 3. remove the old segments' files (readers keep their open handles and maps)
//! 4. rename the .swap files to their live names; fsync dir
//! ```
//!
//! At open ([`recover`]), when a `.log.cleaned` file is left the pass had not committed: its
//! `.swap` files are removed (then, after an fsync of the directory, its `.cleaned` files),
//! and the old segments, all still there, stay. Otherwise, for each `<base>.log.swap`,
//! every live segment whose base offset lies in `[base, the swap file's next offset)` is
//! removed and the swap files are renamed to their live names, finishing steps 3 and 4. A
//! cleaned segment's last batch ends where the last segment it replaces ended (the cleaner
//! keeps an empty batch there if need be), so that range names exactly the replaced
//! segments. `.deleted` files (Kafka's, for deletion in the background) are removed.

use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::io::FileSystem;
use crate::segment::{parse_segment_file_name, IndexConfig, Segment};

/// Suffix of files the cleaner is still writing.
pub(crate) const CLEANED_SUFFIX: &str = ".cleaned";
/// Suffix of cleaned files committed but not yet renamed to their live names.
pub(crate) const SWAP_SUFFIX: &str = ".swap";
/// Suffix Kafka gives files waiting for asynchronous deletion.
pub(crate) const DELETED_SUFFIX: &str = ".deleted";

/// A segment's files; the `.log` last, so its rename is the one that commits.
const EXTENSIONS: [&str; 3] = ["index", "timeindex", "log"];

fn rename(
    fs: &dyn FileSystem,
    dir: &Path,
    base: i64,
    ext: &str,
    from: &str,
    to: &str,
) -> Result<()> {
    let src = Segment::suffixed_path(dir, base, ext, from);
    let dst = Segment::suffixed_path(dir, base, ext, to);
    fs.rename(&src, &dst).map_err(|e| Error::io(&src, e))
}

fn remove_if_present(fs: &dyn FileSystem, path: &Path) -> Result<()> {
    match fs.remove(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// Step 2: the cleaned segments at `bases` become swap segments, durably; the last
/// rename commits the pass.
pub(super) fn commit(fs: &dyn FileSystem, dir: &Path, bases: &[i64]) -> Result<()> {
    for ext in ["index", "timeindex", "log"] {
        for &base in bases {
            rename(fs, dir, base, ext, CLEANED_SUFFIX, SWAP_SUFFIX)?;
        }
    }
    fs.sync_dir(dir).map_err(|e| Error::io(dir, e))
}

/// Steps 3 and 4: the replaced segments' files go, the swap files take the live names.
pub(super) fn finish(
    fs: &dyn FileSystem,
    dir: &Path,
    bases: &[i64],
    olds: &[Vec<Arc<Segment>>],
) -> Result<()> {
    for seg in olds.iter().flatten() {
        seg.delete_files()?;
    }
    for &base in bases {
        for ext in EXTENSIONS {
            rename(fs, dir, base, ext, SWAP_SUFFIX, "")?;
        }
    }
    fs.sync_dir(dir).map_err(|e| Error::io(dir, e))
}

/// Whether `path` is a file only an interrupted compaction leaves behind.
pub(crate) fn is_cleaner_file(path: &Path) -> bool {
    path.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
        n.ends_with(CLEANED_SUFFIX) || n.ends_with(SWAP_SUFFIX) || n.ends_with(DELETED_SUFFIX)
    })
}

/// Completes or undoes what an interrupted compaction left in `dir`; run before an open
/// lists the segments. Returns whether it changed anything.
pub(crate) fn recover(fs: &Arc<dyn FileSystem>, dir: &Path, config: IndexConfig) -> Result<bool> {
    let mut swap_logs = Vec::new();
    let mut swap_files = Vec::new();
    let mut leftovers = Vec::new();
    let mut uncommitted = false;
    let mut live = Vec::new();
    for path in fs.list(dir).map_err(|e| Error::io(dir, e))? {
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if let Some(stem) = name.strip_suffix(CLEANED_SUFFIX) {
            uncommitted |= parse_segment_file_name(Path::new(stem), "log").is_some();
            leftovers.push(path.clone());
        } else if name.ends_with(DELETED_SUFFIX) {
            leftovers.push(path.clone());
        } else if let Some(stem) = name.strip_suffix(SWAP_SUFFIX) {
            if let Some(base) = parse_segment_file_name(Path::new(stem), "log") {
                swap_logs.push(base);
            }
            swap_files.push(path.clone());
        } else if let Some(base) = parse_segment_file_name(&path, "log") {
            live.push(base);
        }
    }
    let changed = !leftovers.is_empty() || !swap_files.is_empty();
    if uncommitted || swap_logs.is_empty() {
        // Not committed: the old segments are whole. The swap files go first (and that is
        // made durable), so a crash while undoing still finds a `.cleaned` log and undoes.
        for path in &swap_files {
            remove_if_present(&**fs, path)?;
        }
        if !swap_files.is_empty() {
            fs.sync_dir(dir).map_err(|e| Error::io(dir, e))?;
        }
    } else {
        swap_logs.sort_unstable();
        for &base in &swap_logs {
            finish_swap(fs, dir, config, base, &live)?;
        }
    }
    for path in &leftovers {
        remove_if_present(&**fs, path)?;
    }
    if changed {
        fs.sync_dir(dir).map_err(|e| Error::io(dir, e))?;
    }
    Ok(changed)
}

/// Steps 3 and 4 for the committed swap segment at `base`.
fn finish_swap(
    fs: &Arc<dyn FileSystem>,
    dir: &Path,
    config: IndexConfig,
    base: i64,
    live: &[i64],
) -> Result<()> {
    let next = {
        let seg = Segment::open_with_suffix(fs, dir, base, config, SWAP_SUFFIX)?;
        let mut next = base;
        seg.scan(0, seg.size(), |b| {
            next = b.last_offset + 1;
            ControlFlow::Continue(())
        })?;
        next
    };
    for &old in live
        .iter()
        .filter(|&&b| b == base || (b > base && b < next))
    {
        for ext in EXTENSIONS {
            remove_if_present(&**fs, &Segment::suffixed_path(dir, old, ext, ""))?;
        }
    }
    for ext in EXTENSIONS {
        if fs.exists(&Segment::suffixed_path(dir, base, ext, SWAP_SUFFIX)) {
            rename(&**fs, dir, base, ext, SWAP_SUFFIX, "")?;
        }
    }
    Ok(())
}
