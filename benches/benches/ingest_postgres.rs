//! The PostgreSQL CDC source end to end: a private PostgreSQL server (Debian's binaries, as
//! the `postgres` user when run as root), an agent with one `cdc` source into a durable lz4
//! topic.
//!
//! 1. Throughput: `ROWS` rows are inserted (transactions of 1,000) before the agent starts;
//!    the time from its start until every change is committed in the topic gives changed
//!    rows/s (target ≥ 20,000).
//! 2. Lag: a writer inserts at a steady rate (`RATE` rows/s, transactions of 100) while a
//!    reader follows the topic (read_committed); a record's lag is the time it became
//!    readable minus its transaction's commit time (the record timestamp): p50 / p99.
//!
//! `cargo bench -p streamlog-benches --features ingest-postgres --bench ingest_postgres`
//! (`STREAMLOG_BENCH_ROWS`, `STREAMLOG_BENCH_RATE` override the sizes). Bounded: every wait
//! has a deadline and the server is stopped at the end.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use streamlog::ingest::postgres::PostgresSourceConfig;
use streamlog::ingest::{Agent, AgentSettings};
use streamlog::storage::{Storage, StorageConfig};

const TOPIC: &str = "bench-cdc";

struct Server {
    dir: tempfile::TempDir,
    bin: PathBuf,
    user: Option<&'static str>,
    port: u16,
}

impl Server {
    fn command(&self, program: &str) -> Command {
        let exe = self.bin.join(program);
        match self.user {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(exe);
                c
            }
            None => Command::new(exe),
        }
    }

    fn start() -> Server {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL's binaries (apt-get install postgresql)")
            .flatten()
            .map(|e| e.path().join("bin"))
            .filter(|b| b.join("initdb").exists())
            .max()
            .expect("no /usr/lib/postgresql/N/bin/initdb");
        // SAFETY: geteuid has no preconditions.
        let user = (unsafe { libc::geteuid() } == 0).then_some("postgres");
        let dir = tempfile::Builder::new()
            .prefix("streamlog-pg-bench-")
            .tempdir_in(std::env::temp_dir())
            .unwrap();
        if let Some(user) = user {
            run(Command::new("chown")
                .arg(format!("{user}:"))
                .arg(dir.path()));
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let server = Server {
            dir,
            bin,
            user,
            port,
        };
        run(server
            .command("initdb")
            .arg("-D")
            .arg(server.dir.path().join("data"))
            .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"]));
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {port} -k {} -c wal_level=logical \
             -c max_replication_slots=4 -c shared_buffers=256MB -c max_wal_size=4GB",
            server.dir.path().display()
        );
        run(server
            .command("pg_ctl")
            .arg("-D")
            .arg(server.dir.path().join("data"))
            .arg("-l")
            .arg(server.dir.path().join("server.log"))
            .args(["-w", "-t", "60", "-o", &options, "start"]));
        server
    }

    fn conninfo(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres",
            self.port
        )
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-w", "-t", "30", "-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .status();
    }
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    // `cargo test --benches` runs bench binaries with no arguments too: keep that cheap.
    if !std::env::args().any(|a| a == "--bench") {
        println!("ingest_postgres: run with `cargo bench` (needs PostgreSQL)");
        return;
    }
    let rows = env_or("STREAMLOG_BENCH_ROWS", 200_000);
    let rate = env_or("STREAMLOG_BENCH_RATE", 5_000);
    let server = Server::start();
    let mut db = postgres::Client::connect(&server.conninfo(), postgres::NoTls).unwrap();
    db.batch_execute(
        "CREATE TABLE events (id bigint PRIMARY KEY, account int NOT NULL, amount bigint NOT NULL, note text)",
    )
    .unwrap();
    // The slot must exist before the rows are written: create it as the source would.
    db.batch_execute("CREATE PUBLICATION streamlog_bench FOR TABLE events")
        .unwrap();
    db.batch_execute("SELECT pg_create_logical_replication_slot('streamlog_bench', 'pgoutput')")
        .unwrap();
    let started = Instant::now();
    let mut t = db.transaction().unwrap();
    for id in 0..rows as i64 {
        if id > 0 && id % 1000 == 0 {
            t.commit().unwrap();
            t = db.transaction().unwrap();
        }
        t.execute(
            "INSERT INTO events VALUES ($1, $2, $3, 'a note of some forty bytes, for the row')",
            &[&id, &((id % 977) as i32), &(id * 7)],
        )
        .unwrap();
    }
    t.commit().unwrap();
    let write_s = started.elapsed().as_secs_f64();

    let data = server.path().join("streamlog");
    let storage = Arc::new(Storage::open(&data, StorageConfig::default()).unwrap());
    let mut settings = AgentSettings::default();
    settings.linger = Duration::from_millis(20);
    let mut agent = Agent::new(Arc::clone(&storage), settings).unwrap();
    let mut config =
        PostgresSourceConfig::new("bench", TOPIC, &server.conninfo(), &["public.events"]);
    config.max_changes_per_poll = 50_000;
    // The rows were written after the slot: stream them (an initial snapshot would read the
    // table instead and drop the stream's copies, measuring something else).
    config.snapshot_mode = "never".into();
    agent.add_postgres_source(config).unwrap();
    let started = Instant::now();
    let running = agent.start().unwrap();
    assert!(
        running.wait_for_records("bench", rows, Duration::from_secs(600)),
        "{}",
        running.status_line()
    );
    let cdc_s = started.elapsed().as_secs_f64();
    println!(
        "ingest_postgres throughput: {rows} inserted rows (written in {write_s:.1} s) captured and committed in {cdc_s:.2} s = {:.0} changed rows/s",
        rows as f64 / cdc_s
    );

    // Lag at a steady rate: a writer thread, a reader following the topic.
    let seconds = 10u64;
    let conninfo = server.conninfo();
    let writer = std::thread::spawn(move || {
        let mut db = postgres::Client::connect(&conninfo, postgres::NoTls).unwrap();
        let begin = Instant::now();
        let per_txn = 100u64;
        let total = rate * seconds;
        let mut id = 10_000_000i64;
        for n in 0..total / per_txn {
            let due = begin + Duration::from_secs_f64((n * per_txn) as f64 / rate as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            let mut t = db.transaction().unwrap();
            for _ in 0..per_txn {
                t.execute(
                    "UPDATE events SET amount = amount + 1 WHERE id = $1",
                    &[&(id % rows as i64)],
                )
                .unwrap();
                id += 1;
            }
            t.commit().unwrap();
        }
        total
    });
    let log = storage.partition(TOPIC, 0).unwrap();
    let mut next = log.last_stable_offset();
    let expect = rate * seconds / 100 * 100;
    let mut lags = Vec::with_capacity(expect as usize);
    let deadline = Instant::now() + Duration::from_secs(seconds + 120);
    while (lags.len() as u64) < expect && Instant::now() < deadline {
        let end = log.last_stable_offset();
        if end == next {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        let seen = now_ms();
        for r in log.records_committed(next) {
            let r = r.unwrap();
            if r.offset() >= end {
                break;
            }
            lags.push(seen - r.timestamp());
        }
        next = end;
    }
    writer.join().unwrap();
    running.shutdown().unwrap();
    lags.sort_unstable();
    println!(
        "ingest_postgres lag at {rate} rows/s (transactions of 100, linger 20 ms): {} records, p50 {} ms, p99 {} ms, max {} ms",
        lags.len(),
        percentile(&lags, 0.50),
        percentile(&lags, 0.99),
        lags.last().copied().unwrap_or(0)
    );
}
