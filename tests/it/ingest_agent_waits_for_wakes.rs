//! The agent's idle wait: a source with nothing to read is polled again only when something
//! can have changed — its waker (a file event), its own next-poll instant (a partial line's
//! idle timeout), a commit that is due — never on a timer of the agent's. Asserted as polls
//! per event, never as times.

use std::collections::{BTreeMap, VecDeque};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::ingest::CountedPosition;
use parking_lot::Mutex;
use streamlog::ingest::{
    Agent, AgentSettings, FileSourceConfig, Poll, PositionUpdate, RecordSink, RunningAgent, Source,
    SourceMetrics,
};
use streamlog::storage::{Storage, StorageConfig};

const PATIENCE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

/// What the test hands the scripted source, and the waker the agent gave it.
#[derive(Default)]
struct Script {
    lines: VecDeque<String>,
    waker: Option<Sender<()>>,
}

/// A source with no timer of its own: it has data only when the test pushes some, and says
/// so through its waker (as the file watcher does).
struct Scripted {
    script: Arc<Mutex<Script>>,
    position: CountedPosition,
}

impl Source for Scripted {
    fn name(&self) -> &str {
        "scripted"
    }
    fn topic(&self) -> &str {
        "scripted"
    }
    fn restore(
        &mut self,
        _committed: &BTreeMap<Vec<u8>, Vec<u8>>,
    ) -> streamlog::ingest::Result<()> {
        Ok(())
    }
    fn poll(
        &mut self,
        sink: &mut dyn RecordSink,
        _deadline: Instant,
    ) -> streamlog::ingest::Result<Poll> {
        let lines: Vec<String> = self.script.lock().lines.drain(..).collect();
        for l in &lines {
            sink.send(0, None, Some(l.as_bytes()), &[])?;
            self.position.sent += 1;
        }
        Ok(if lines.is_empty() {
            Poll::Idle
        } else {
            Poll::Progress
        })
    }
    fn take_positions(&mut self) -> Vec<PositionUpdate> {
        self.position.take()
    }
    fn next_poll(&self) -> Option<Instant> {
        None
    }
    fn set_waker(&mut self, wake: Sender<()>) {
        self.script.lock().waker = Some(wake);
    }
}

fn settings() -> AgentSettings {
    let mut s = AgentSettings::default();
    s.linger = Duration::from_millis(10);
    s.offset_flush_interval = HOUR;
    s
}

fn metrics(running: &RunningAgent) -> Arc<SourceMetrics> {
    Arc::clone(&running.status()[0].1)
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let end = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Data that arrives while the agent waits is read on the waker's wake (there is no other
/// timer: the source has none and the commit interval is an hour), and each event costs a
/// bounded number of polls, however long the test takes.
#[test]
fn ingest_scripted_source_is_polled_on_its_wakes_only() {
    let data = tempfile::tempdir().unwrap();
    let storage = Arc::new(Storage::open(data.path(), StorageConfig::default()).unwrap());
    let script = Arc::new(Mutex::new(Script::default()));
    let mut agent = Agent::new(Arc::clone(&storage), settings()).unwrap();
    let shared = Arc::clone(&script);
    agent
        .add_source(
            1,
            Box::new(move |_| {
                Ok(Box::new(Scripted {
                    script: Arc::clone(&shared),
                    position: CountedPosition::default(),
                }))
            }),
        )
        .unwrap();
    let running = agent.start().unwrap();
    let m = metrics(&running);
    // Quiet, waiting: its first poll found nothing.
    wait_until("the first idle poll", || {
        SourceMetrics::get(&m.idle_streak) >= 1 && script.lock().waker.is_some()
    });

    const EVENTS: u64 = 20;
    for i in 1..=EVENTS {
        {
            let mut s = script.lock();
            s.lines.push_back(format!("line {i}"));
            s.waker.as_ref().unwrap().send(()).unwrap();
        }
        assert!(
            running.wait_for_records("scripted", i, PATIENCE),
            "event {i} not read: {}",
            running.status_line()
        );
    }
    let (polls, wakes) = (SourceMetrics::get(&m.polls), SourceMetrics::get(&m.wakes));
    // An event: the wake's poll reads it, the next finds nothing, the poll after the commit
    // finds nothing; a wake landing in one of those polls costs one more.
    assert!(
        polls <= 4 * EVENTS + 2,
        "{polls} polls for {EVENTS} events: the agent polls a quiet source on its own"
    );
    assert!(
        (1..=EVENTS).contains(&wakes),
        "{wakes} wakes for {EVENTS} events"
    );
    running.shutdown().unwrap();

    let log = storage.partition("scripted", 0).unwrap();
    let values: Vec<String> = log
        .records_committed(0)
        .map(|r| String::from_utf8(r.unwrap().value().unwrap().to_vec()).unwrap())
        .collect();
    let expected: Vec<String> = (1..=EVENTS).map(|i| format!("line {i}")).collect();
    assert_eq!(values, expected);
}

/// A file source with a watcher and an hour's refresh interval: lines appended while it
/// waits are read on the file events; a partial last line is emitted at its idle timeout,
/// the one instant the source asks for; and the poll's own listing and reads (which open
/// the watched directory and files) do not wake it, so polls stay bounded by the events.
#[test]
fn ingest_file_source_wakes_on_events_and_its_idle_timeout_only() {
    let logs = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let path = logs.path().join("app.log");
    fs::write(&path, "").unwrap();
    let storage = Arc::new(Storage::open(data.path(), StorageConfig::default()).unwrap());
    let mut agent = Agent::new(Arc::clone(&storage), settings()).unwrap();
    let mut files = FileSourceConfig::new("app", "app-logs");
    files.paths = vec![format!("{}/*.log", logs.path().display())];
    files.refresh_interval_ms = HOUR.as_millis() as u64;
    files.poll_interval_ms = HOUR.as_millis() as u64;
    files.idle_timeout_ms = 2000;
    agent.add_file_source(files).unwrap();
    let running = agent.start().unwrap();
    let m = metrics(&running);
    wait_until("the first idle poll", || {
        SourceMetrics::get(&m.idle_streak) >= 1
    });

    const EVENTS: u64 = 10;
    for i in 1..=EVENTS {
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(format!("line {i}\n").as_bytes()).unwrap();
        drop(f);
        assert!(
            running.wait_for_records("app", i, PATIENCE),
            "line {i} not read on its event (no watcher?): {}",
            running.status_line()
        );
    }
    let polls = SourceMetrics::get(&m.polls);
    assert!(SourceMetrics::get(&m.wakes) >= 1);
    // Each write: its event's poll, one that finds nothing, one after the commit, and one
    // more for an event that lands in a poll.
    assert!(
        polls <= 4 * EVENTS + 2,
        "{polls} polls for {EVENTS} events: the source polls without cause"
    );

    // A partial line: read on its event, held, emitted at its idle timeout (two seconds in
    // which nothing else may poll it), then committed.
    let mut f = OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(b"partial").unwrap();
    drop(f);
    assert!(
        running.wait_for_records("app", EVENTS + 1, PATIENCE),
        "the partial line was not emitted: {}",
        running.status_line()
    );
    assert_eq!(SourceMetrics::get(&m.partial_lines), 1);
    let partial_polls = SourceMetrics::get(&m.polls) - polls;
    // The event's poll (reads, holds), one finding nothing, the idle timeout's (emits), one
    // finding nothing, one after the commit; one more if a poll catches the event early.
    assert!(
        partial_polls <= 6,
        "{partial_polls} polls for a partial line: polled before its idle timeout without cause"
    );
    running.shutdown().unwrap();
}
