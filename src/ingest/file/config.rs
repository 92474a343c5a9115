//! The file source's settings (a `[[source]]` table of `type = "file"` in `agent.toml`).

use serde::Deserialize;

/// How a file record's key is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum KeyMode {
    /// No key: records spread over partitions with Kafka's sticky partitioner.
    #[default]
    None,
    /// The file's path: a file's lines stay in one partition, in order.
    Path,
    /// A capture of `key_regex` on the record (the group named `key`, else group 1);
    /// records it does not match have no key.
    Regex,
}

/// A file source: files matching globs, followed through rotations, one record a line.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct FileSourceConfig {
    /// The source's name: unique in the agent, the key of its positions.
    pub name: String,
    /// The topic its records go to.
    pub topic: String,
    /// Partitions of the topic when the agent creates it.
    #[serde(default = "one")]
    pub partitions: u32,
    /// Glob patterns (`/var/log/app/*.log*`; `**` for any depth). Rotated names must match
    /// too for a rotated file to be finished after a restart, and for copies and gzip files
    /// to be found.
    pub paths: Vec<String>,
    /// How the key is chosen.
    #[serde(default)]
    pub key: KeyMode,
    /// The regex of [`KeyMode::Regex`].
    #[serde(default)]
    pub key_regex: Option<String>,
    /// Lines longer than this are split into records of this many bytes, each with headers
    /// `split.index` and `split.last`.
    #[serde(default = "max_line_bytes")]
    pub max_line_bytes: usize,
    /// A line matching this regex starts a new event; other lines are joined to the event
    /// before them with `\n` (stack traces). None: one record a line.
    #[serde(default)]
    pub multiline_start: Option<String>,
    /// A partial last line (or a held multi-line event) is emitted once its file has not
    /// grown for this long.
    #[serde(default = "idle_timeout_ms")]
    pub idle_timeout_ms: u64,
    /// Without a watcher (`watch = false`, or the OS refused one): how often files are
    /// listed and checked (Flume's `pollDelay`-like; default 250).
    #[serde(default = "poll_interval_ms")]
    pub poll_interval_ms: u64,
    /// With a watcher: how often files are listed and checked when no event arrives, the
    /// net under a missed event (Fluent Bit's `Refresh_Interval`; default 1000).
    #[serde(default = "refresh_interval_ms")]
    pub refresh_interval_ms: u64,
    /// Watch the directories with the OS's notifications (`inotify`): an event wakes the
    /// source at once, and polling stays on at `refresh_interval_ms` as the fallback.
    #[serde(default = "yes")]
    pub watch: bool,
    /// How long a file that vanished or was truncated before being read to its end is
    /// remembered while its rest is looked for in copies and gzip files.
    #[serde(default = "detached_timeout_ms")]
    pub detached_timeout_ms: u64,
    /// The `host` header; the machine's host name when unset.
    #[serde(default)]
    pub host: Option<String>,
}

impl FileSourceConfig {
    /// A source named `name` into `topic`, with no paths yet and the defaults.
    pub fn new(name: impl Into<String>, topic: impl Into<String>) -> Self {
        FileSourceConfig {
            name: name.into(),
            topic: topic.into(),
            partitions: one(),
            paths: Vec::new(),
            key: KeyMode::None,
            key_regex: None,
            max_line_bytes: max_line_bytes(),
            multiline_start: None,
            idle_timeout_ms: idle_timeout_ms(),
            poll_interval_ms: poll_interval_ms(),
            refresh_interval_ms: refresh_interval_ms(),
            watch: true,
            detached_timeout_ms: detached_timeout_ms(),
            host: None,
        }
    }
}

fn one() -> u32 {
    1
}
fn yes() -> bool {
    true
}
fn max_line_bytes() -> usize {
    1024 * 1024
}
fn idle_timeout_ms() -> u64 {
    1000
}
fn poll_interval_ms() -> u64 {
    250
}
fn refresh_interval_ms() -> u64 {
    1000
}
fn detached_timeout_ms() -> u64 {
    300_000
}
