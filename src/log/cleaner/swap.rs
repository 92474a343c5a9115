//! Swapping a cleaned segment in for the segments it replaces, so that a crash at any
//! point leaves either the old segments or the new one (Kafka's `replaceSegments` and the
//! swap-file handling of its `LogLoader`).
//!
//! ```text
//! 1. <base>.log.cleaned (+ .index.cleaned, .timeindex.cleaned) written, sealed, fsynced
//! 2. rename .index.cleaned, .timeindex.cleaned, then .log.cleaned -> .swap; fsync dir
//!    (the rename of the .log file is the commit point)
//! 3. remove the old segments' files (readers keep their open handles and maps)
//! 4. rename the .swap files to their live names; fsync dir
//! ```
//!
//! At open ([`recover`]): `.cleaned` and `.deleted` files are removed (a cleaning that had
//! not committed: the old segments are all there); for each `<base>.log.swap`, every live
//! segment whose base offset lies in `[base, the swap file's next offset)` is removed and
//! the swap files are renamed to their live names, finishing step 3 and 4. The swap
//! segment's last batch ends where the last replaced segment ended (the cleaner keeps an
//! empty batch there if need be), so that range names exactly the replaced segments.

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

/// Step 2: the cleaned segment at `base` becomes the swap segment, durably.
pub(super) fn commit(fs: &dyn FileSystem, dir: &Path, base: i64) -> Result<()> {
    for ext in EXTENSIONS {
        rename(fs, dir, base, ext, CLEANED_SUFFIX, SWAP_SUFFIX)?;
    }
    fs.sync_dir(dir).map_err(|e| Error::io(dir, e))
}

/// Steps 3 and 4: the replaced segments' files go, the swap files take the live names.
pub(super) fn finish(
    fs: &dyn FileSystem,
    dir: &Path,
    base: i64,
    old: &[Arc<Segment>],
) -> Result<()> {
    for seg in old {
        seg.delete_files()?;
    }
    for ext in EXTENSIONS {
        rename(fs, dir, base, ext, SWAP_SUFFIX, "")?;
    }
    fs.sync_dir(dir).map_err(|e| Error::io(dir, e))
}

/// Completes or undoes what an interrupted cleaning left in `dir`; run before an open
/// lists the segments. Returns whether it changed anything.
pub(crate) fn recover(fs: &Arc<dyn FileSystem>, dir: &Path, config: IndexConfig) -> Result<bool> {
    let mut swaps = Vec::new();
    let mut stray_swaps = Vec::new();
    let mut live = Vec::new();
    let mut changed = false;
    for path in fs.list(dir).map_err(|e| Error::io(dir, e))? {
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if name.ends_with(CLEANED_SUFFIX) || name.ends_with(DELETED_SUFFIX) {
            remove_if_present(&**fs, &path)?;
            changed = true;
        } else if let Some(stem) = name.strip_suffix(SWAP_SUFFIX) {
            match parse_segment_file_name(Path::new(stem), "log") {
                Some(base) => swaps.push(base),
                None => stray_swaps.push(path.clone()),
            }
        } else if let Some(base) = parse_segment_file_name(&path, "log") {
            live.push(base);
        }
    }
    swaps.sort_unstable();
    for &base in &swaps {
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
            let swap = Segment::suffixed_path(dir, base, ext, SWAP_SUFFIX);
            if fs.exists(&swap) {
                rename(&**fs, dir, base, ext, SWAP_SUFFIX, "")?;
            }
        }
        changed = true;
    }
    for path in stray_swaps {
        // Index swap files whose `.log` never reached `.swap`: that cleaning did not commit.
        let committed = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(SWAP_SUFFIX))
            .and_then(|stem| {
                ["index", "timeindex"]
                    .iter()
                    .find_map(|ext| parse_segment_file_name(Path::new(stem), ext))
            })
            .is_some_and(|b| swaps.binary_search(&b).is_ok());
        if !committed {
            remove_if_present(&**fs, &path)?;
            changed = true;
        }
    }
    if changed {
        fs.sync_dir(dir).map_err(|e| Error::io(dir, e))?;
    }
    Ok(changed)
}
