//! File-system events (`notify`: inotify on Linux) that wake the source before its next
//! poll. Only a hint: the poll decides what to read, so a missed or coalesced event costs
//! at most one refresh interval.
//!
//! Only events that can change what a poll reads wake it: a change (create, write,
//! rename, remove, attributes) to a path one of the globs matches, or the OS saying events
//! were lost. Access events are dropped: the poll's own listing opens the watched
//! directories and its reads open files, and waking on those would make an idle source
//! poll itself in a loop.

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
        let globs: Vec<glob::Pattern> = patterns
            .iter()
            .filter_map(|p| glob::Pattern::new(p).ok())
            .collect();
        let mut inner = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if wakes(&event, &globs) {
                let _ = wake.send(());
            }
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

/// Whether `event` can change what a poll finds.
fn wakes(event: &notify::Result<notify::Event>, globs: &[glob::Pattern]) -> bool {
    let Ok(event) = event else {
        return true; // the watcher failed: poll to be safe
    };
    if event.need_rescan() || event.paths.is_empty() {
        return true;
    }
    match event.kind {
        notify::EventKind::Access(_) => false,
        _ => event
            .paths
            .iter()
            .any(|p| globs.iter().any(|g| g.matches_path(p))),
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

    #[test]
    fn only_changes_to_matching_paths_wake() {
        use notify::event::{AccessKind, CreateKind, ModifyKind};
        use notify::{Event, EventKind};
        let globs = [glob::Pattern::new("/logs/app.log*").unwrap()];
        let event = |kind, path: &str| Ok(Event::new(kind).add_path(PathBuf::from(path)));
        let write = EventKind::Modify(ModifyKind::Any);
        assert!(wakes(&event(write, "/logs/app.log"), &globs));
        assert!(wakes(
            &event(EventKind::Create(CreateKind::File), "/logs/app.log.1"),
            &globs
        ));
        // The poll's own listing and reads, and files the globs do not match: no wake.
        assert!(!wakes(
            &event(EventKind::Access(AccessKind::Any), "/logs"),
            &globs
        ));
        assert!(!wakes(
            &event(EventKind::Access(AccessKind::Any), "/logs/app.log"),
            &globs
        ));
        assert!(!wakes(&event(write, "/logs/other.txt"), &globs));
        // Lost events: poll.
        assert!(wakes(&Ok(Event::new(EventKind::Any)), &globs));
    }
}
