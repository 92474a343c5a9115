//! Small metadata files written so that a crash leaves the old or the new contents, never a
//! mix: write a temporary file, fsync it, rename it over the old one, fsync the directory.

use std::io::Write;
use std::path::Path;

/// Replaces `path`'s contents with `text`, crash-safely.
pub fn write(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}
