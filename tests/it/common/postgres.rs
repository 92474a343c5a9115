//! A private PostgreSQL server for a test: `initdb` into a temporary directory, `postgres`
//! on 127.0.0.1 on a free port with `wal_level = logical`, stopped (immediate mode) when the
//! handle drops, also when the test fails. Every command it runs is bounded in time.
//!
//! PostgreSQL refuses to run as root: when the tests run as root, the server's commands run
//! as the `postgres` user (Debian's packages create it), or `nobody`, through `runuser`.
//!
//! When PostgreSQL is not installed, [`PgServer::start_or_skip`] says so loudly and the test
//! skips — unless `CI` or `STREAMLOG_REQUIRE_POSTGRES=1` is set (`.ci/run` sets both), where
//! a missing server fails the test.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long one server command (initdb, start, stop) may take.
const COMMAND_LIMIT: Duration = Duration::from_secs(90);

pub struct PgServer {
    dir: tempfile::TempDir,
    bin: PathBuf,
    user: Option<String>,
    pub port: u16,
}

/// Whether a missing PostgreSQL fails the test instead of skipping it.
pub fn required() -> bool {
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
    ci || std::env::var("STREAMLOG_REQUIRE_POSTGRES").is_ok_and(|v| v == "1")
}

/// The directory of PostgreSQL's server binaries: `STREAMLOG_PG_BINDIR`, the newest
/// /usr/lib/postgresql/N/bin (Debian), `pg_config --bindir`, or wherever `initdb` is on PATH.
pub fn bin_dir() -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("STREAMLOG_PG_BINDIR") {
        return Some(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() {
            return Some(dir);
        }
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .find(|p| p.join("initdb").exists() && p.join("pg_ctl").exists())
    })
}

fn user_exists(name: &str) -> bool {
    Command::new("id")
        .arg("-u")
        .arg(name)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs `cmd` to its end within `limit`; panics with its output otherwise.
pub fn run_bounded(mut cmd: Command, what: &str, limit: Duration) {
    let out = tempfile::NamedTempFile::new().unwrap();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out.reopen().unwrap())
        .stderr(out.reopen().unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let end = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{what}: still running after {limit:?}:\n{}",
                std::fs::read_to_string(out.path()).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        status.success(),
        "{what} failed ({status}):\n{}",
        std::fs::read_to_string(out.path()).unwrap_or_default()
    );
}

impl PgServer {
    /// Starts a server, or returns `None` (after saying so on stderr) when PostgreSQL is not
    /// installed and not [`required`].
    pub fn start_or_skip(test: &str) -> Option<PgServer> {
        let Some(bin) = bin_dir() else {
            assert!(
                !required(),
                "{test}: PostgreSQL is required here (CI or STREAMLOG_REQUIRE_POSTGRES=1) but \
                 initdb was not found: install Debian's `postgresql` package (.ci/run does)"
            );
            eprintln!(
                "\n!!!!!!!! {test}: SKIPPED: PostgreSQL's initdb not found (apt-get install \
                 postgresql, or set STREAMLOG_PG_BINDIR) !!!!!!!!\n"
            );
            return None;
        };
        // SAFETY: geteuid has no preconditions and cannot fail.
        let root = unsafe { libc::geteuid() } == 0;
        let user = root.then(|| {
            if user_exists("postgres") {
                "postgres".to_string()
            } else {
                "nobody".to_string()
            }
        });
        let dir = tempfile::Builder::new()
            .prefix("streamlog-pg-")
            .tempdir_in(std::env::temp_dir())
            .unwrap();
        let mut server = PgServer {
            dir,
            bin,
            user,
            port: 0,
        };
        if let Some(user) = &server.user {
            let mut chown = Command::new("chown");
            chown.arg(format!("{user}:")).arg(server.dir.path());
            run_bounded(chown, "chown the data directory", COMMAND_LIMIT);
        }
        let mut initdb = server.command("initdb");
        initdb.arg("-D").arg(server.data()).args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
        ]);
        run_bounded(initdb, "initdb", COMMAND_LIMIT);
        // A port free a moment ago may be taken by the time the server binds: try a few.
        let mut last = None;
        for _ in 0..3 {
            server.port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| server.start())) {
                Ok(()) => return Some(server),
                Err(e) => last = Some(e),
            }
        }
        std::panic::resume_unwind(last.unwrap())
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn command(&self, program: &str) -> Command {
        let exe = self.bin.join(program);
        match &self.user {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(exe);
                c
            }
            None => Command::new(exe),
        }
    }

    /// Starts (again) the server on its port.
    pub fn start(&self) {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c wal_level=logical \
             -c max_replication_slots=8 -c max_wal_senders=8 -c max_connections=40 \
             -c fsync=off -c full_page_writes=off",
            self.port,
            self.dir.path().display()
        );
        let mut pg_ctl = self.command("pg_ctl");
        pg_ctl
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.dir.path().join("server.log"))
            .args(["-w", "-t", "60", "-o", &options, "start"]);
        run_bounded(pg_ctl, "pg_ctl start", COMMAND_LIMIT);
    }

    /// Stops the server (`fast`: connections are closed, the server shuts down cleanly).
    pub fn stop(&self) {
        self.stop_mode("fast");
    }

    fn stop_mode(&self, mode: &str) {
        let mut pg_ctl = self.command("pg_ctl");
        pg_ctl
            .arg("-D")
            .arg(self.data())
            .args(["-w", "-t", "60", "-m", mode, "stop"]);
        run_bounded(pg_ctl, "pg_ctl stop", COMMAND_LIMIT);
    }

    /// The server's log (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// A libpq connection string for the superuser `postgres`, database `postgres`.
    pub fn conninfo(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres connect_timeout=10",
            self.port
        )
    }

    /// A new client connection.
    pub fn client(&self) -> postgres::Client {
        postgres::Client::connect(&self.conninfo(), postgres::NoTls).unwrap()
    }

    /// The data directory's parent (scratch space owned by the test).
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let pid = self.data().join("postmaster.pid");
        if pid.exists() {
            let mut pg_ctl = self.command("pg_ctl");
            pg_ctl
                .arg("-D")
                .arg(self.data())
                .args(["-w", "-t", "30", "-m", "immediate", "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            let _ = pg_ctl.status();
        }
    }
}
