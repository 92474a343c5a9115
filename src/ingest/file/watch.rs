//! File-system events (`notify`: inotify on Linux) that wake the source before its next
//! poll. Only a hint: the poll decides what to read, so a missed or coalesced event costs
//! at most one poll interval.

use std::path::{Component, PathBuf};
use std::sync::mpsc::Sender;

use notify::{RecursiveMode, Watcher as _};

pub(crate) struct Watcher {
    _inner: notify::RecommendedWatcher,
}

impl Watcher {
    /// Watches the fixed directory part of each pattern; None when the OS refuses (the
    /// source then polls only).
    pub(crate) fn start(patterns: &[String], wake: Sender<()>) -> Option<Self> {
        let mut inner =
            notify::recommended_watcher(move |_event: notify::Result<notify::Event>| {
                let _ = wake.send(());
            })
            .ok()?;
        let mut watching = false;
        for pattern in patterns {
            let (dir, recursive) = fixed_dir(pattern);
            let mode = if recursive {
                RecursiveMode::Recursive
            } else {
                RecursiveMode::NonRecursive
            };
            watching |= inner.watch(&dir, mode).is_ok();
        }
        watching.then_some(Watcher { _inner: inner })
    }
}

/// The longest leading directory of `pattern` without glob characters, and whether the
/// rest can match at any depth.
fn fixed_dir(pattern: &str) -> (PathBuf, bool) {
    let path = PathBuf::from(pattern);
    let mut dir = PathBuf::new();
    let mut globbed = false;
    let parts: Vec<Component<'_>> = path.components().collect();
    let last = parts.len().saturating_sub(1);
    for (i, c) in parts.iter().enumerate() {
        let s = c.as_os_str().to_string_lossy();
        if i == last || s.contains(['*', '?', '[', '{']) {
            globbed = i != last;
            break;
        }
        dir.push(c);
    }
    if dir.as_os_str().is_empty() {
        dir.push(".");
    }
    (dir, globbed || pattern.contains("**"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_dir_of_patterns() {
        assert_eq!(
            fixed_dir("/var/log/app/*.log"),
            (PathBuf::from("/var/log/app"), false)
        );
        assert_eq!(
            fixed_dir("/var/log/*/x.log"),
            (PathBuf::from("/var/log"), true)
        );
        assert_eq!(
            fixed_dir("/var/log/**/x.log"),
            (PathBuf::from("/var/log"), true)
        );
        assert_eq!(fixed_dir("x.log"), (PathBuf::from("."), false));
    }
}
